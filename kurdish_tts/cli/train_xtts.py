"""Train the XTTS-style voice-cloning model on Kurmanji speech within a time budget.

    accelerate launch scripts/train_xtts.py --recipe xtts_h100 --target_hours 9.5
    python scripts/train_xtts.py --recipe xtts_tiny                 # offline: demo corpus, tiny model, ~2 minutes
    kurdish-tts train-xtts --recipe xtts_rtx2070 --learning_rate 5e-5

The same run as `scripts/train_vits.py` (`kurdish_tts.runs`): prepare (or reuse) the data cache, validate it, hold
out an evaluation set, time real steps and set `max_steps` to fill `--target_hours`, train with NaN recovery,
throughput logging and best-model saving (by `eval_mel` unless told otherwise), then write a sample WAV cloned from a
training clip's voice.
"""

from __future__ import annotations

from ..data.arguments import DataArguments
from ..errors import UsageError
from ..evaluation.catalog import LOWER_IS_BETTER
from ..runs.arguments import RunArguments, XttsModelArguments
from ..text import KURMANJI_TOKENIZER_NAME
from ..trainers.xtts_arguments import XttsTrainingArguments
from .entry_point import CommandParser, entry_point
from .training_command import check_run_arguments, parse_run_arguments, run_training

# Lower is better for every metric the XTTS run selects by (the eval mel distance, the losses, MCD, ...).
DEFAULT_BEST_METRIC = "mel"


def make_parser() -> CommandParser:
    return CommandParser(
        (XttsModelArguments, DataArguments, RunArguments, XttsTrainingArguments),
        description=__doc__.splitlines()[0],
    )


def parse(argv: list[str] | None = None):
    """The four argument dataclasses, from a recipe (`--recipe`) overridden by the command-line flags."""
    parser = make_parser()
    parser.set_defaults(
        tokenizer=None,
        output_dir="runs/xtts",
        metric_for_best_model=DEFAULT_BEST_METRIC,
        synthesis_metrics="mcd,duration,rtf,stop_failure",
    )
    model_args, data_args, run_args, training_args = parse_run_arguments(
        parser, argv, lower_is_better=LOWER_IS_BETTER | {DEFAULT_BEST_METRIC}
    )
    if data_args.tokenizer is None:
        data_args.tokenizer = (
            KURMANJI_TOKENIZER_NAME if model_args.model_name_or_path is None else model_args.model_name_or_path
        )
    _check(model_args, data_args, run_args, training_args)
    return model_args, data_args, run_args, training_args


def _check(model_args: XttsModelArguments, data_args: DataArguments, run_args: RunArguments, training_args) -> None:
    check_run_arguments(data_args, run_args, training_args)
    if (model_args.model_size is None) == (model_args.model_name_or_path is None):
        raise UsageError(
            "give exactly one of --model_size tiny|small|base (random init) and --model_name_or_path DIR (continue "
            "from a saved XTTS model); for the offline demo use --recipe xtts_tiny"
        )
    if training_args.push_to_hub:
        raise UsageError(
            "--push_to_hub is not supported for XTTS runs yet (the model card and push are VITS-specific); push the "
            "run's best_model folder with huggingface_hub after training"
        )


@entry_point
def main(argv: list[str] | None = None, *, started: float | None = None) -> int:
    return run_training(parse, "XttsRun", argv, started)


if __name__ == "__main__":
    raise SystemExit(main())
