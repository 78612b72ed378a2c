"""Train the XTTS-style voice-cloning model on Kurmanji speech within a time budget.

    accelerate launch scripts/train_xtts.py --recipe xtts_h100 --target_hours 9.5
    python scripts/train_xtts.py --recipe xtts_tiny                 # offline: demo corpus, tiny model, ~2 minutes
    kurdish-tts train-xtts --recipe xtts_rtx2070 --learning_rate 5e-5

The same run as `scripts/train_vits.py` (`kurdish_tts.runs`): prepare (or reuse) the data cache,
validate it, hold out an evaluation set, time real steps and set `max_steps` to fill `--target_hours`, train with NaN
recovery, throughput logging and best-model saving (by `eval_mel` unless told otherwise), then write a sample WAV
cloned from a training clip's voice.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

from ..data.arguments import DataArguments
from ..errors import UsageError
from ..evaluation.catalog import LOWER_IS_BETTER
from ..recipes import RecipeError, load_recipe
from ..runs.arguments import RunArguments, XttsModelArguments
from ..text import KURMANJI_TOKENIZER_NAME
from ..trainers.budget import program_start_time
from ..trainers.xtts_arguments import XttsTrainingArguments
from .entry_point import CommandParser, check_output_folder, entry_point
from .train_vits import _check_synthesis_metrics, _recipe_in

logger = logging.getLogger("kurdish_tts.train_xtts")

# Lower is better for every metric the XTTS run selects by (the eval mel distance, the losses, MCD, ...).
DEFAULT_BEST_METRIC = "mel"


def make_parser() -> CommandParser:
    return CommandParser(
        (XttsModelArguments, DataArguments, RunArguments, XttsTrainingArguments),
        description=__doc__.splitlines()[0],
    )


def parse(argv: list[str] | None = None):
    """The four argument dataclasses, from a recipe (`--recipe`) overridden by the command-line flags."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = make_parser()
    parser.set_defaults(
        tokenizer=None,
        output_dir="runs/xtts",
        metric_for_best_model=DEFAULT_BEST_METRIC,
        synthesis_metrics="mcd,duration,rtf,stop_failure",
    )
    recipe = _recipe_in(argv)
    values = {}
    if recipe is not None:
        values = load_recipe(recipe)
        known = {action.dest for action in parser._actions}
        unknown = sorted(set(values) - known)
        if unknown:
            raise RecipeError(f"recipe {recipe!r} sets unknown arguments: {', '.join(unknown)}")
        parser.set_defaults(**{"output_dir": f"runs/{Path(recipe).stem}", **values})
    model_args, data_args, run_args, training_args = parser.parse_args_into_dataclasses(args=argv)
    # TrainingArguments takes every metric not ending in "loss" to be higher-is-better; ours are not.
    given = {arg.lstrip("-").split("=")[0] for arg in argv if arg.startswith("--")} | set(values)
    selected = (training_args.metric_for_best_model or "").removeprefix("eval_")
    if "greater_is_better" not in given and (selected in LOWER_IS_BETTER or selected == DEFAULT_BEST_METRIC):
        training_args.greater_is_better = False
    if data_args.tokenizer is None:
        data_args.tokenizer = (
            KURMANJI_TOKENIZER_NAME if model_args.model_name_or_path is None else model_args.model_name_or_path
        )
    _check(model_args, data_args, run_args, training_args)
    return model_args, data_args, run_args, training_args


def _check(model_args: XttsModelArguments, data_args: DataArguments, run_args: RunArguments, training_args) -> None:
    check_output_folder(training_args.output_dir, "--output_dir")
    check_output_folder(data_args.cache_dir, "--cache_dir")
    if (model_args.model_size is None) == (model_args.model_name_or_path is None):
        raise UsageError(
            "give exactly one of --model_size tiny|small|base (random init) and --model_name_or_path DIR (continue "
            "from a saved XTTS model); for the offline demo use --recipe xtts_tiny"
        )
    if run_args.target_hours is not None and not run_args.target_hours > 0:
        raise UsageError(f"--target_hours must be a positive number of hours, got {run_args.target_hours}")
    if run_args.eval_samples < 1:
        raise UsageError(
            f"--eval_samples must be at least 1 (the best model is chosen on them), got {run_args.eval_samples}"
        )
    if not 0 < run_args.nan_lr_factor <= 1:
        raise UsageError(f"--nan_lr_factor must be in (0, 1], got {run_args.nan_lr_factor}")
    if run_args.budget_min_steps < 0:
        raise UsageError(f"--budget_min_steps must not be negative, got {run_args.budget_min_steps}")
    if training_args.push_to_hub:
        raise UsageError(
            "--push_to_hub is not supported for XTTS runs yet (the model card and push are VITS-specific); push the "
            "run's best_model folder with huggingface_hub after training"
        )
    _check_synthesis_metrics(run_args, training_args)


@entry_point
def main(argv: list[str] | None = None, *, started: float | None = None) -> int:
    if started is None:
        started = program_start_time() if argv is None else time.time()
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    model_args, data_args, run_args, training_args = parse(argv)
    # Heavy imports after argument checks, so `--help` and bad flags answer at once.
    from ..runs import XttsRun, leave_process_group

    run = XttsRun(model_args, data_args, run_args, training_args, started=started)
    code = run.execute()
    leave_process_group()
    return code


if __name__ == "__main__":
    raise SystemExit(main())
