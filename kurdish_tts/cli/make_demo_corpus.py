"""Synthesize the multi-speaker Kurmanji demo corpus with espeak-ng (`kurdish-tts make-demo-corpus`).

Regenerate the bundled corpus (about 4.8 MB, the default):

    python scripts/make_demo_corpus.py

Make a bigger one elsewhere, e.g. for a full-size GPU run (no size limit unless `--max_megabytes` is given):

    python scripts/make_demo_corpus.py --output_dir outputs/kmr_espeak_large --num_clips 2000
"""

import sys

from ..data.demo_corpus import (
    DEFAULT_VOICES,
    DEMO_CORPUS_DIR,
    DEMO_MAX_BYTES,
    DEMO_SENTENCES_FILE,
    find_espeak,
    make_demo_corpus,
    read_sentences,
)
from .entry_point import OneLineArgumentParser, check_output_folder, entry_point


def make_parser() -> OneLineArgumentParser:
    parser = OneLineArgumentParser(
        prog="kurdish-tts make-demo-corpus",
        description="Synthesize an LJSpeech-style multi-speaker Kurmanji corpus with espeak-ng.",
    )
    parser.add_argument(
        "--output_dir", default=str(DEMO_CORPUS_DIR), help="corpus folder (default: the bundled demo corpus)"
    )
    parser.add_argument(
        "--sentences", default=str(DEMO_SENTENCES_FILE), help="UTF-8 file, one sentence per line (default: bundled)"
    )
    parser.add_argument(
        "--num_clips",
        type=int,
        default=None,
        help="clips to write (default: as many as fit in the size limit; without one, one per sentence)",
    )
    parser.add_argument(
        "--max_megabytes",
        type=float,
        default=None,
        help=f"size limit in MB (default: {DEMO_MAX_BYTES / 1e6:g} for the bundled corpus, none elsewhere)",
    )
    parser.add_argument(
        "--voices",
        nargs="+",
        choices=[voice.name for voice in DEFAULT_VOICES],
        default=None,
        metavar="NAME",
        help=f"speakers to use, from {', '.join(voice.name for voice in DEFAULT_VOICES)} (default: all)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the sentence shuffle (default: 0)")
    return parser


@entry_point
def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    check_output_folder(args.output_dir, "--output_dir")
    try:
        find_espeak()
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    voices = DEFAULT_VOICES
    if args.voices:
        voices = tuple(voice for voice in DEFAULT_VOICES if voice.name in args.voices)
    summary = make_demo_corpus(
        args.output_dir,
        read_sentences(args.sentences),
        voices=voices,
        num_clips=args.num_clips,
        max_bytes=None if args.max_megabytes is None else int(args.max_megabytes * 1e6),
        seed=args.seed,
    )
    print(
        f"Wrote {summary.clips} clips, {summary.speakers} speakers, {summary.minutes:.1f} minutes, "
        f"{summary.megabytes:.2f} MB to {summary.output_dir}"
    )
    return 0
