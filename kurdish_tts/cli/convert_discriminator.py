"""Convert an original VITS discriminator checkpoint (MMS's D_100000.pth) into discriminator.safetensors.

    kurdish-tts convert-discriminator D_100000.pth models/mms-tts-kmr-script_latin
    python scripts/convert_discriminator.py D_100000.pth runs/h100_finetune/best_model

Writes `discriminator.safetensors` and `discriminator_config.json` into the destination folder, normally a local copy of
the VITS model the discriminator was trained with: training from that folder (`--model_name_or_path DST`) then starts
from the pretrained discriminator, with no download (`--discriminator auto` finds it). MMS's checkpoints are at
https://huggingface.co/facebook/mms-tts/tree/main/full_models/<language>/ (e.g. `kmr-script_latin`), under
CC BY-NC 4.0: the converted weights keep that licence. Exit status: 0 written, 1 the file could not be converted (the
message says why), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kurdish-tts convert-discriminator",
        description=__doc__.splitlines()[0],
        epilog="MMS checkpoints: https://huggingface.co/facebook/mms-tts/tree/main/full_models (CC BY-NC 4.0).",
    )
    parser.add_argument("source", metavar="SRC", help="the original checkpoint, e.g. D_100000.pth")
    parser.add_argument(
        "destination", metavar="DST", help="folder to write discriminator.safetensors into, e.g. the model's folder"
    )
    parser.add_argument(
        "--config",
        default=None,
        metavar="JSON",
        help="a discriminator_config.json for a layout other than VITS's and MMS's (default: theirs)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    source, destination = Path(args.source), Path(args.destination)
    if not source.is_file():
        print(
            f"error: {source}: no such file (expected an original VITS checkpoint such as D_100000.pth)",
            file=sys.stderr,
        )
        return 2
    if destination.exists() and not destination.is_dir():
        print(
            f"error: {destination} is a file; DST is the folder to write discriminator.safetensors into",
            file=sys.stderr,
        )
        return 2
    # Heavy imports after argument checks, so `--help` and bad arguments answer at once.
    from ..models.vits.configuration_discriminator import VitsDiscriminatorConfig
    from ..models.vits.convert_discriminator import convert_discriminator_checkpoint
    from ..models.vits.modeling_discriminator import DISCRIMINATOR_CONFIG_NAME, DISCRIMINATOR_WEIGHTS_NAME

    config = None
    if args.config is not None:
        try:
            config = VitsDiscriminatorConfig.from_json_file(args.config)
        except (OSError, ValueError) as error:
            print(f"error: --config {args.config}: {error}", file=sys.stderr)
            return 2
    try:
        discriminator = convert_discriminator_checkpoint(source, destination, config)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(
        f"Wrote {destination / DISCRIMINATOR_WEIGHTS_NAME} and {DISCRIMINATOR_CONFIG_NAME} "
        f"({discriminator.num_parameters() / 1e6:.1f}M parameters, from {source})"
    )
    return 0
