"""Preprocess a data source into the Arrow cache that training reads.

kurdish-tts prepare --data demo --tokenizer kurmanji
python scripts/prepare_data.py --data /data/cv-corpus-kmr --tokenizer facebook/mms-tts-kmr-script_latin
"""

from __future__ import annotations

from pathlib import Path

from ..data.arguments import DataArguments
from ..data.preprocess import PreparedData, prepare_dataset
from ..data.validate import describe
from . import parse_arguments
from .entry_point import CommandParser, check_output_folder, entry_point


def make_parser() -> CommandParser:
    return CommandParser(DataArguments, description=__doc__.splitlines()[0])


def prepare(data_args: DataArguments) -> PreparedData:
    """Load the source and tokenizer named by `data_args` and prepare (or reload) the cache."""
    check_output_folder(data_args.cache_dir, "--cache_dir")
    if any(
        name not in {"demo", "kurmanji"} and not Path(name).exists() for name in (data_args.data, data_args.tokenizer)
    ):
        from ..offline import go_offline_if_hub_unreachable

        # A Hub name without a network would otherwise spend ~30 s in huggingface_hub's retries before failing.
        go_offline_if_hub_unreachable()
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


def prepare_and_describe(data_args: DataArguments) -> PreparedData:
    """`prepare` for the command line: prints the summary."""
    prepared = prepare(data_args)
    print(describe(prepared))
    return prepared


@entry_point
def main(argv: list[str] | None = None) -> int:
    (data_args,) = parse_arguments(make_parser(), argv)
    prepared = prepare_and_describe(data_args)
    if not len(prepared.dataset):
        print("error: no clip survived preprocessing; run `kurdish-tts validate` with the same options to see why")
        return 1
    return 0
