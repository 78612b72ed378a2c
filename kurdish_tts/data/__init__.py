"""Data sources → one schema → preprocessed Arrow caches → validation report."""

from .arguments import DataArguments
from .preprocess import PreparedData, PreprocessConfig, prepare_dataset
from .sources import (
    DataSourceError,
    LoadedSource,
    load_common_voice,
    load_hf_dataset,
    load_ljspeech,
    load_source,
)
from .validate import ValidationConfig, ValidationReport, validate_statistics

__all__ = [
    "DataArguments",
    "DataSourceError",
    "LoadedSource",
    "PreparedData",
    "PreprocessConfig",
    "ValidationConfig",
    "ValidationReport",
    "load_common_voice",
    "load_hf_dataset",
    "load_ljspeech",
    "load_source",
    "prepare_dataset",
    "validate_statistics",
]
