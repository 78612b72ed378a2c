"""Fine-tune (or train from scratch) a Kurmanji VITS/MMS model within a time budget.

    accelerate launch scripts/train_vits.py --target_hours 9.5
    python scripts/train_vits.py --recipe demo                      # offline: demo corpus, tiny model, 3 minutes
    kurdish-tts train --recipe rtx2070_finetune --learning_rate 1e-5

Prepares (or reuses) the data cache, validates it, holds out an evaluation set, measures a few real training steps
and sets `max_steps` so that training, evaluations and saves fill `--target_hours`, trains with NaN recovery,
throughput logging and best-model saving, and writes a sample WAV through stock `pipeline("text-to-speech")`.
"""

from __future__ import annotations

from pathlib import Path

from ..data.arguments import DataArguments
from ..errors import UsageError
from ..hub import HubUsageError, check_repo_id
from ..runs.arguments import RunArguments, VitsModelArguments
from ..text import KURMANJI_TOKENIZER_NAME
from ..trainers.vits_arguments import VitsTrainingArguments
from .entry_point import CommandParser, entry_point
from .training_command import check_run_arguments, parse_run_arguments, run_training


def make_parser() -> CommandParser:
    return CommandParser(
        (VitsModelArguments, DataArguments, RunArguments, VitsTrainingArguments),
        description=__doc__.splitlines()[0],
    )


def parse(argv: list[str] | None = None):
    """The four argument dataclasses, from a recipe (`--recipe`) overridden by the command-line flags."""
    parser = make_parser()
    # The tokenizer follows the model unless given (see below).
    parser.set_defaults(tokenizer=None, output_dir="runs/vits")
    model_args, data_args, run_args, training_args = parse_run_arguments(parser, argv)
    # The base model's own tokenizer, or the built-in Kurmanji one for a random init.
    if data_args.tokenizer is None:
        data_args.tokenizer = (
            KURMANJI_TOKENIZER_NAME if model_args.model_size is not None else model_args.model_name_or_path
        )
    _check(model_args, data_args, run_args, training_args)
    return model_args, data_args, run_args, training_args


def _check(model_args: VitsModelArguments, data_args: DataArguments, run_args: RunArguments, training_args) -> None:
    check_run_arguments(data_args, run_args, training_args)
    if model_args.speaker is not None and model_args.multi_speaker:
        raise UsageError("--speaker trains one voice and --multi_speaker trains all of them; choose one")
    if model_args.min_speaker_clips < 1:
        raise UsageError(f"--min_speaker_clips must be at least 1, got {model_args.min_speaker_clips}")
    if training_args.push_to_hub:
        # The Trainer's default repository name: the output folder's.
        repo_id = training_args.hub_model_id or Path(training_args.output_dir).absolute().name
        try:
            check_repo_id(repo_id)
        except HubUsageError as error:
            raise UsageError(f"--hub_model_id: {error}") from None
    _check_discriminator(model_args.discriminator)
    if model_args.model_size is None and model_args.duration_predictor is not None:
        raise UsageError(
            f"--duration_predictor goes with a random init (--model_size tiny|small|mms); the base model "
            f"{model_args.model_name_or_path} keeps its own duration predictor"
        )
    if model_args.model_size is None and data_args.tokenizer == KURMANJI_TOKENIZER_NAME:
        raise UsageError(
            f"--tokenizer {KURMANJI_TOKENIZER_NAME} goes with a random init (--model_size tiny|small|mms); "
            f"a pretrained model ({model_args.model_name_or_path}) must use its own tokenizer, which is the default"
        )


def _check_discriminator(discriminator: str) -> None:
    # Only what needs no download: a Hub file or MMS's discriminator is fetched when the model is built.
    if discriminator in {"auto", "none"} or discriminator.startswith("hf://") or Path(discriminator).exists():
        return
    raise UsageError(
        f"--discriminator {discriminator}: no such file or folder; pass auto, none, a folder holding "
        "discriminator.safetensors, an original VITS checkpoint (D_*.pth), or hf://OWNER/REPO/PATH"
    )


@entry_point
def main(argv: list[str] | None = None, *, started: float | None = None) -> int:
    return run_training(parse, "VitsRun", argv, started)


if __name__ == "__main__":
    raise SystemExit(main())
