"""Fine-tune (or train from scratch) a Kurmanji VITS/MMS model within a time budget.

    accelerate launch scripts/train_vits.py --target_hours 9.5
    python scripts/train_vits.py --recipe demo                      # offline: demo corpus, tiny model, 3 minutes
    kurdish-tts train --recipe rtx2070_finetune --learning_rate 1e-5

Prepares (or reuses) the data cache, validates it, holds out an evaluation set, measures a few real training steps
and sets `max_steps` so that training, evaluations and saves fill `--target_hours`, trains with NaN recovery,
throughput logging and best-model saving, and writes a sample WAV through stock `pipeline("text-to-speech")`.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

from ..data.arguments import DataArguments
from ..errors import UsageError
from ..evaluation.catalog import LOWER_IS_BETTER, METRIC_GROUPS, metric_keys, parse_metric_groups
from ..hub import HubUsageError, check_repo_id
from ..recipes import RecipeError, load_recipe
from ..runs.arguments import RunArguments, VitsModelArguments
from ..text import KURMANJI_TOKENIZER_NAME
from ..trainers.budget import program_start_time
from ..trainers.vits_arguments import VitsTrainingArguments
from .entry_point import CommandParser, check_output_folder, entry_point

logger = logging.getLogger("kurdish_tts.train_vits")


def make_parser() -> CommandParser:
    return CommandParser(
        (VitsModelArguments, DataArguments, RunArguments, VitsTrainingArguments),
        description=__doc__.splitlines()[0],
    )


def parse(argv: list[str] | None = None):
    """The four argument dataclasses, from a recipe (`--recipe`) overridden by the command-line flags."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = make_parser()
    # The tokenizer follows the model unless given (see below).
    parser.set_defaults(tokenizer=None, output_dir="runs/vits")
    recipe = _recipe_in(argv)
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
    given = {arg.lstrip("-").split("=")[0] for arg in argv if arg.startswith("--")}
    given |= set(values) if recipe is not None else set()
    selected = training_args.metric_for_best_model
    if selected and selected.removeprefix("eval_") in LOWER_IS_BETTER and "greater_is_better" not in given:
        training_args.greater_is_better = False
    # The base model's own tokenizer, or the built-in Kurmanji one for a random init.
    if data_args.tokenizer is None:
        data_args.tokenizer = (
            KURMANJI_TOKENIZER_NAME if model_args.model_size is not None else model_args.model_name_or_path
        )
    _check(model_args, data_args, run_args, training_args)
    return model_args, data_args, run_args, training_args


def _recipe_in(argv: list[str]) -> str | None:
    for index, arg in enumerate(argv):
        if arg == "--recipe":
            if index + 1 >= len(argv):
                raise RecipeError("--recipe needs a name or a YAML path")
            return argv[index + 1]
        if arg.startswith("--recipe="):
            return arg.split("=", 1)[1]
    return None


def _check(model_args: VitsModelArguments, data_args: DataArguments, run_args: RunArguments, training_args) -> None:
    check_output_folder(training_args.output_dir, "--output_dir")
    check_output_folder(data_args.cache_dir, "--cache_dir")
    if run_args.target_hours is not None and not run_args.target_hours > 0:
        raise UsageError(f"--target_hours must be a positive number of hours, got {run_args.target_hours}")
    if run_args.eval_samples < 1:
        raise UsageError(
            f"--eval_samples must be at least 1 (the best model is chosen on them), got {run_args.eval_samples}"
        )
    if model_args.speaker is not None and model_args.multi_speaker:
        raise UsageError("--speaker trains one voice and --multi_speaker trains all of them; choose one")
    if model_args.min_speaker_clips < 1:
        raise UsageError(f"--min_speaker_clips must be at least 1, got {model_args.min_speaker_clips}")
    if not 0 < run_args.nan_lr_factor <= 1:
        raise UsageError(f"--nan_lr_factor must be in (0, 1], got {run_args.nan_lr_factor}")
    if run_args.budget_min_steps < 0:
        raise UsageError(f"--budget_min_steps must not be negative, got {run_args.budget_min_steps}")
    _check_synthesis_metrics(run_args, training_args)
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


@entry_point
def main(argv: list[str] | None = None, *, started: float | None = None) -> int:
    # From the command line the budget covers this program from its start, its imports included; called from Python
    # (with `argv`), it starts now.
    if started is None:
        started = program_start_time() if argv is None else time.time()
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    model_args, data_args, run_args, training_args = parse(argv)
    # Heavy imports after argument checks, so `--help` and bad flags answer at once.
    from ..runs import VitsRun, leave_process_group

    run = VitsRun(model_args, data_args, run_args, training_args, started=started)
    code = run.execute()
    leave_process_group()
    return code


if __name__ == "__main__":
    raise SystemExit(main())
