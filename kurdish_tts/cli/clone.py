"""Speak a text in the voice of a reference clip with a trained XTTS-style model (`kurdish-tts clone`).

    kurdish-tts clone --model runs/xtts/best_model --reference grandmother.wav --text "Ez ê sibê werim." --output out.wav

The reference should hold 3 to 10 seconds of the person speaking; a shorter, silent or narrow-band (below the
model's rate, e.g. 8 kHz) clip is refused with a message saying what to record. The clone is brought to the
reference's speech level (`--keep_model_level` writes it as the model made it). The WAV is written atomically.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import UsageError
from .entry_point import OneLineArgumentParser, entry_point


def make_parser() -> OneLineArgumentParser:
    parser = OneLineArgumentParser(prog="kurdish-tts clone", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="saved XTTS model folder (a run's best_model)")
    parser.add_argument("--reference", required=True, help="audio file of the voice to clone (3-10 s of speech)")
    parser.add_argument("--text", required=True, help="the Kurmanji text to speak")
    parser.add_argument("--output", required=True, help="WAV file to write")
    parser.add_argument(
        "--vocoder", default="griffin-lim", help="griffin-lim (default, offline) or a local neural vocoder folder"
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default: cpu)")
    parser.add_argument("--max_seconds", type=float, default=30.0, help="length cap of the utterance (default 30)")
    parser.add_argument(
        "--keep_model_level",
        action="store_true",
        help="write the clone at the level the model made it, not at the reference's speech level",
    )
    return parser


@entry_point
def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    if not args.text.strip():
        raise UsageError("--text is empty: give the sentence to speak")
    if Path(args.output).suffix.lower() not in (".wav", ".flac", ".ogg"):
        raise UsageError(f"--output {args.output}: give a .wav (or .flac, .ogg) file name")
    if not args.max_seconds > 0:
        raise UsageError(f"--max_seconds must be positive, got {args.max_seconds}")
    # Heavy imports after the argument checks, so mistakes answer at once.
    from transformers.utils import logging as transformers_logging

    from ..clone import VoiceCloner, load_reference
    from ..models.xtts.vocoder import load_vocoder

    # One line of output per clone: no "Loading weights" progress bar in front of the messages.
    transformers_logging.disable_progress_bar()

    cloner = VoiceCloner.from_pretrained(
        args.model, args.device, max_seconds=args.max_seconds, match_reference_level=not args.keep_model_level
    )
    # The reference is checked before the vocoder loads and before any generation.
    reference = load_reference(args.reference, cloner.sampling_rate)
    if args.vocoder.lower() not in ("griffin-lim", "griffin_lim", "griffinlim"):
        try:
            cloner.vocoder = load_vocoder(args.vocoder, cloner.model.config.mel_config)
        except (OSError, ValueError) as error:
            raise UsageError(f"--vocoder {args.vocoder}: {error}") from None
    result = cloner.clone(args.text, reference)
    path = result.save(args.output)
    seconds = len(result.waveform) / result.sampling_rate
    level = "" if args.keep_model_level else f", level matched to the reference: {result.gain_db:+.1f} dB"
    print(f"wrote {path} ({seconds:.1f} s, {result.sampling_rate} Hz{level}) in {result.seconds:.1f} s")
    if result.hit_max_length:
        print(
            f"warning: the model did not stop by itself and was cut at --max_seconds {args.max_seconds:g}: it has not "
            "learned to stop yet (train it longer), or the text is longer than that",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
