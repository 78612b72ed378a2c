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
from .speakers import (
    SpeakerStats,
    build_speaker_to_id,
    filter_speakers,
    format_speaker_table,
    load_speaker_map,
    save_speaker_map,
    select_speaker,
    speaker_table,
)
from .validate import ValidationConfig, ValidationReport, validate_prepared, validate_statistics

__all__ = [
    "DataArguments",
    "DataSourceError",
    "LoadedSource",
    "PreparedData",
    "PreprocessConfig",
    "SpeakerStats",
    "ValidationConfig",
    "ValidationReport",
    "build_speaker_to_id",
    "filter_speakers",
    "format_speaker_table",
    "load_common_voice",
    "load_hf_dataset",
    "load_ljspeech",
    "load_source",
    "load_speaker_map",
    "prepare_dataset",
    "save_speaker_map",
    "select_speaker",
    "speaker_table",
    "validate_prepared",
    "validate_statistics",
]
