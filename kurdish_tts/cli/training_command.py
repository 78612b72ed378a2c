"""What `kurdish-tts train` and `kurdish-tts train-xtts` share: the recipe under the flags, the checks of the run's
arguments, and running a `kurdish_tts.runs` run to its exit status."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

from ..data.arguments import DataArguments
from ..errors import UsageError
from ..evaluation.catalog import LOWER_IS_BETTER, METRIC_GROUPS, metric_keys, parse_metric_groups
from ..recipes import RecipeError, load_recipe
from ..runs.arguments import RunArguments
from ..trainers.budget import program_start_time
from .entry_point import CommandParser, check_output_folder


def parse_run_arguments(parser: CommandParser, argv: list[str] | None, *, lower_is_better=LOWER_IS_BETTER):
    """The four argument dataclasses of `parser`, from a recipe (`--recipe`) overridden by the command-line flags.

    A best-model metric in `lower_is_better` sets `greater_is_better=False`, unless the flags or the recipe set it.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    recipe = _recipe_in(argv)
    values = {}
    if recipe is not None:
        values = load_recipe(recipe)
        known = {action.dest for action in parser._actions}
        unknown = sorted(set(values) - known)
        if unknown:
            raise RecipeError(f"recipe {recipe!r} sets unknown arguments: {', '.join(unknown)}")
        # Recipe values become the defaults, so any flag on the command line still wins.
        parser.set_defaults(**{"output_dir": f"runs/{Path(recipe).stem}", **values})
    model_args, data_args, run_args, training_args = parser.parse_args_into_dataclasses(args=argv)
    # TrainingArguments takes every metric not ending in "loss" to be higher-is-better; the synthesis metrics are not.
    given = {arg.lstrip("-").split("=")[0] for arg in argv if arg.startswith("--")} | set(values)
    selected = (training_args.metric_for_best_model or "").removeprefix("eval_")
    if "greater_is_better" not in given and selected in lower_is_better:
        training_args.greater_is_better = False
    return model_args, data_args, run_args, training_args


def check_run_arguments(data_args: DataArguments, run_args: RunArguments, training_args) -> None:
    """The checks of the arguments every run has; the model's own are the command's."""
    check_output_folder(training_args.output_dir, "--output_dir")
    check_output_folder(data_args.cache_dir, "--cache_dir")
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
    _check_synthesis_metrics(run_args, training_args)


def run_training(parse, run_class: str, argv: list[str] | None, started: float | None) -> int:
    """Parse the arguments (`parse(argv)`), then run `kurdish_tts.runs.<run_class>` with them; the exit status."""
    # From the command line the budget covers this program from its start, its imports included; called from Python
    # (with `argv`), it starts now.
    if started is None:
        started = program_start_time() if argv is None else time.time()
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    arguments = parse(argv)
    # Heavy imports after argument checks, so `--help` and bad flags answer at once.
    from .. import runs

    run = getattr(runs, run_class)(*arguments, started=started)
    code = run.execute()
    runs.leave_process_group()
    return code


def _recipe_in(argv: list[str]) -> str | None:
    for index, arg in enumerate(argv):
        if arg == "--recipe":
            if index + 1 >= len(argv):
                raise RecipeError("--recipe needs a name or a YAML path")
            return argv[index + 1]
        if arg.startswith("--recipe="):
            return arg.split("=", 1)[1]
    return None


def _check_synthesis_metrics(run_args: RunArguments, training_args) -> None:
    try:
        groups = parse_metric_groups(run_args.synthesis_metrics)
    except ValueError as error:
        raise UsageError(f"--synthesis_metrics: {error}") from None
    if "cer" in groups:
        raise UsageError(
            "--synthesis_metrics cer needs an ASR model, which training does not load; score CER after training "
            "with scripts/evaluate.py --asr_model"
        )
    if run_args.synthesis_metrics_samples < 1 or run_args.synthesis_metrics_every < 1:
        raise UsageError("--synthesis_metrics_samples and --synthesis_metrics_every must be at least 1")
    selected = (training_args.metric_for_best_model or "").removeprefix("eval_")
    if selected in metric_keys(METRIC_GROUPS) and selected not in metric_keys(groups):
        raise UsageError(
            f"--metric_for_best_model {selected} is a synthesis metric that --synthesis_metrics "
            f"{run_args.synthesis_metrics!r} does not compute; add its group to --synthesis_metrics"
        )
