"""Preprocess a data source into the Arrow cache that training reads.

kurdish-tts prepare --data demo --tokenizer kurmanji
python scripts/prepare_data.py --data /data/cv-corpus-kmr --tokenizer facebook/mms-tts-kmr-script_latin
"""

from __future__ import annotations

import sys

from transformers import HfArgumentParser

from ..data.arguments import DataArguments
from ..data.preprocess import PreparedData, prepare_dataset
from ..data.sources import DataSourceError
from . import parse_arguments


def make_parser() -> HfArgumentParser:
    return HfArgumentParser(DataArguments, description=__doc__.splitlines()[0])


def prepare(data_args: DataArguments) -> PreparedData:
    """Load the source and tokenizer named by `data_args` and prepare (or reload) the cache."""
    source = data_args.load_source()
    tokenizer = data_args.load_tokenizer()
    return prepare_dataset(
        source,
        tokenizer,
        data_args.preprocess_config(),
        data_args.cache_dir,
        num_proc=data_args.preprocessing_num_workers,
        overwrite=data_args.overwrite_cache,
    )


def describe(prepared: PreparedData) -> str:
    info = prepared.info
    dropped = ", ".join(f"{count} {reason}" for reason, count in info["dropped"].items()) or "none"
    state = "reused cache" if prepared.from_cache else f"preprocessed in {info['preprocess_seconds']:.1f} s"
    return (
        f"{info['source']['location']}: kept {info['kept']} of {info['samples']} clips "
        f"({info['kept_hours'] * 60:.1f} min); dropped: {dropped}; {state}\n"
        f"cache: {prepared.path} (dropped clips with reasons: {prepared.path / 'dropped.csv'})"
    )


def prepare_and_describe(data_args: DataArguments) -> PreparedData | None:
    """`prepare` for the command line: prints the summary, or the error and `None` when the source can't be read."""
    try:
        prepared = prepare(data_args)
    except (DataSourceError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return None
    print(describe(prepared))
    return prepared


def main(argv: list[str] | None = None) -> int:
    (data_args,) = parse_arguments(make_parser(), argv)
    prepared = prepare_and_describe(data_args)
    if prepared is None:
        return 2
    if not len(prepared.dataset):
        print("error: no clip survived preprocessing; run `kurdish-tts validate` with the same options to see why")
        return 1
    return 0
