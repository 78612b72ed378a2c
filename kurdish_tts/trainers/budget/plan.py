"""Choose `max_steps` so that the steps, evaluations, checkpoints and the final save fit the budget (`plan_run`,
`plan_remaining`), and read what earlier runs of a resumed job spent (`budget_spent`)."""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta
from pathlib import Path

from transformers import TrainerState, TrainingArguments
from transformers.trainer_utils import IntervalStrategy, SaveStrategy

from .. import budget
from .probe import StepTiming, _max_over_processes

# One logger for the whole time budget, as before it was split into modules.
logger = logging.getLogger("kurdish_tts.trainers.budget")


BUDGET_NAME = "budget.json"


@dataclass
class TrainingPlan:
    """The number of steps that fills a time budget, and what the run is predicted to look like.

    Times are in seconds; `planned_at` is a `time.time()` value. `steps` is the value for `args.max_steps`: the
    global step the run ends at, counted from the start of training, so a resumed run's plan includes the steps of the
    runs before it (`start_step`).

    Args:
        num_train_samples (`int`): Training clips.
        train_batch_size (`int`): Samples per optimizer step, over all processes and accumulation steps.
        samples_per_second (`float`): Training throughput measured by the probe.
        seconds_per_step (`float`): Seconds per optimizer step measured by the probe.
        start_step (`int`): Global step this run starts from (`0` unless resumed).
        steps (`int`): Global step this run ends at: the value for `args.max_steps`.
        epochs (`float`): Epochs at `steps`.
        num_evaluations (`int`): Evaluations during this run, the one at its end included.
        num_checkpoints (`int`): Checkpoints saved during this run, the one at its end included.
        eval_seconds (`float`): One evaluation.
        checkpoint_seconds (`float`): One checkpoint.
        final_overhead_seconds (`float`): What follows `train()`: the script's final evaluation and save.
        train_overhead_seconds (`float`): Set-up and tear-down of the `train()` call, its checkpoint left out.
        target_seconds (`float`): The whole budget.
        elapsed_seconds (`float`): Budget spent when planning (probe and earlier runs included).
        safety_margin (`float`): Fraction of the budget the plan leaves unused, against timing noise.
        predicted_seconds (`float`): Predicted wall time from planning to the end of the final save.
        reserve_seconds (`float`): What must still fit when `TimeBudgetCallback` stops a late run: the checkpoint of
            the last step, the tear-down of `train()`, and the final evaluation and save.
        planned_at (`float`): `time.time()` when the plan was made.
        requested_target_seconds (`float`, *optional*): The budget asked for, when the plan needed more to train
            its minimum number of steps (`plan_run`'s `min_steps`) on this machine; `target_seconds` is then the
            raised budget.
    """

    num_train_samples: int
    train_batch_size: int
    samples_per_second: float
    seconds_per_step: float
    start_step: int
    steps: int
    epochs: float
    num_evaluations: int
    num_checkpoints: int
    eval_seconds: float
    checkpoint_seconds: float
    final_overhead_seconds: float
    train_overhead_seconds: float
    target_seconds: float
    elapsed_seconds: float
    safety_margin: float
    predicted_seconds: float
    reserve_seconds: float
    planned_at: float
    requested_target_seconds: float | None = None

    @property
    def started_at(self) -> float:
        """`time.time()` at which the budget started (earlier runs of a resumed training included)."""
        return self.planned_at - self.elapsed_seconds

    @property
    def deadline(self) -> float:
        """`time.time()` at which the whole budget is spent; the plan itself ends `safety_margin` earlier."""
        return self.started_at + self.target_seconds

    @property
    def predicted_finish(self) -> datetime:
        """Local date and time at which the final save is predicted to end."""
        return datetime.fromtimestamp(self.planned_at + self.predicted_seconds).astimezone()

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainingPlan:
        names = {field.name for field in fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in names})

    def to_markdown(self) -> str:
        new_steps = self.steps - self.start_step
        steps = (
            f"{self.steps:,}"
            if not self.start_step
            else f"{self.steps:,} ({new_steps:,} after step {self.start_step:,})"
        )
        budget = (
            f"{_duration(self.target_seconds)}, {_duration(self.elapsed_seconds)} spent before training, "
            f"{self.safety_margin:.0%} kept as margin"
        )
        if self.requested_target_seconds is not None:
            budget += (
                f" (raised from the {_duration(self.requested_target_seconds)} asked for, which this machine cannot "
                "fill with the minimum number of steps)"
            )
        rows = [
            ("Training clips", f"{self.num_train_samples:,}"),
            ("Samples per second", f"{self.samples_per_second:,.2f} ({self.train_batch_size:,} per step)"),
            ("Seconds per step", f"{self.seconds_per_step:.4f}"),
            ("Steps (`max_steps`)", steps),
            ("Epochs", f"{self.epochs:,.2f}"),
            ("Evaluations", f"{self.num_evaluations:,} x {self.eval_seconds:.1f} s"),
            ("Checkpoints", f"{self.num_checkpoints:,} x {self.checkpoint_seconds:.1f} s"),
            ("Final evaluation and save", f"{self.final_overhead_seconds:.1f} s"),
            ("Budget", budget),
            (
                "Predicted finish",
                f"{self.predicted_finish:%Y-%m-%d %H:%M:%S %Z} (in {_duration(self.predicted_seconds)}; "
                f"deadline {datetime.fromtimestamp(self.deadline).astimezone():%H:%M:%S})",
            ),
        ]
        return "\n".join(["| Plan | |", "|---|---|", *(f"| {name} | {value} |" for name, value in rows)])

    def __str__(self) -> str:
        return self.to_markdown()


def plan_run(
    timing: StepTiming,
    target_seconds: float,
    *,
    args: TrainingArguments,
    num_train_samples: int,
    safety_margin: float = 0.02,
    final_overhead_seconds: float | None = None,
    elapsed_seconds: float | None = None,
    start_step: int = 0,
    min_steps: int = 0,
) -> TrainingPlan:
    """Choose `max_steps` so that the run, its evaluations and checkpoints and the final save fit in the budget.

    The time left, `target_seconds * (1 - safety_margin) - elapsed_seconds`, must hold the set-up and tear-down of
    `train()`, `n` steps, the evaluations and checkpoints that `args` schedules over those steps (as the Trainer's
    `DefaultFlowCallback` does: every `eval_steps`/`save_steps` global steps and once more at the last step with the
    `"steps"` strategies, at every epoch end, a partial last epoch included, with `"epoch"`; as many checkpoints as
    evaluations with `save_strategy="best"`, at most), and the final evaluation and save. The plan is the largest
    such `n`.

    Args:
        timing (`StepTiming`):
            From `measure_step_time`.
        target_seconds (`float`):
            The whole budget (`--target_hours * 3600`).
        args (`TrainingArguments`):
            The run's arguments: evaluation and save strategies, steps and delay.
        num_train_samples (`int`):
            Training clips, for the report.
        safety_margin (`float`, *optional*, defaults to `0.02`):
            Fraction of the budget left unused against timing noise. The run ends this much early as planned; if it is
            slower than measured, `TimeBudgetCallback` stops it before the deadline instead.
        final_overhead_seconds (`float`, *optional*):
            What follows `train()`. Defaults to one evaluation (if the probe had an evaluation dataset) and one
            `save_model`.
        elapsed_seconds (`float`, *optional*):
            Budget already spent, the probe included: pass `time.time() - start` with `start` taken when the job
            started, if the budget covers data preparation and model loading too. Defaults to
            `timing.probe_seconds`.
        start_step (`int`, *optional*, defaults to `0`):
            Global step the run starts from (a resumed run's checkpoint step; see `plan_remaining`).
        min_steps (`int`, *optional*, defaults to `0`):
            The fewest new steps to plan. When the budget cannot hold them on this machine (a slow or busy one), the
            plan has them anyway and its budget is raised to what they need (`requested_target_seconds` keeps the one
            asked for): a demo should show a short run, late, rather than refuse. With `0`, a budget that cannot hold
            a single step raises `ValueError`.

    Returns:
        `TrainingPlan`, also logged as a table.
    """
    if not 0 <= safety_margin < 1:
        raise ValueError(f"safety_margin must be in [0, 1), got {safety_margin}")
    elapsed = timing.probe_seconds if elapsed_seconds is None else elapsed_seconds
    # Every process must plan the same number of steps, or the longer runs wait forever for the others at the end.
    (elapsed,) = _max_over_processes([elapsed], args.device)
    if final_overhead_seconds is None:
        final_overhead_seconds = timing.eval_seconds + timing.save_model_seconds
    fixed = timing.train_setup_seconds + timing.train_teardown_seconds + final_overhead_seconds
    available = target_seconds * (1 - safety_margin) - elapsed - fixed

    def cost(steps: int) -> float:
        evaluations, checkpoints = _count_evaluations_and_checkpoints(args, start_step, steps, timing.steps_per_epoch)
        return (
            steps * timing.seconds_per_step
            + evaluations * timing.eval_seconds
            + checkpoints * timing.checkpoint_seconds
        )

    requested_target = None
    if min_steps > 0 and cost(min_steps) > available:
        requested_target = target_seconds
        # The budget that holds exactly `min_steps`, with the same margin (and a microsecond against rounding): the
        # deadline the run is held to.
        target_seconds = (elapsed + fixed + cost(min_steps)) / (1 - safety_margin) + 1e-6
        available = target_seconds * (1 - safety_margin) - elapsed - fixed
    if cost(1) > available:
        raise ValueError(
            f"--target_hours {target_seconds / 3600:g} ({_duration(target_seconds)}) is shorter than what the run "
            f"needs for a single step: {_duration(elapsed)} already spent (the {timing.probe_seconds:.0f} s probe "
            f"included), {cost(1) + fixed:.0f} s for one step with its evaluation and checkpoint, the set-up and the "
            f"final evaluation and save, and a {safety_margin:.0%} safety margin"
        )
    # `cost` grows with the number of steps, so the largest affordable number is found by bisection.
    low, high = 1, max(2, int(available / timing.seconds_per_step) + 2)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if cost(middle) <= available else (low, middle)
    # Rounding must not lose the last step of a raised budget.
    steps = low if requested_target is None else max(low, min_steps)
    evaluations, checkpoints = _count_evaluations_and_checkpoints(args, start_step, steps, timing.steps_per_epoch)
    # When `TimeBudgetCallback` stops a late run, its last step is saved (not evaluated: the final evaluation follows).
    last_checkpoint = timing.checkpoint_seconds if args.save_strategy != SaveStrategy.NO else 0.0
    total_steps = start_step + steps
    plan = TrainingPlan(
        num_train_samples=num_train_samples,
        train_batch_size=timing.train_batch_size,
        samples_per_second=timing.samples_per_second,
        seconds_per_step=timing.seconds_per_step,
        start_step=start_step,
        steps=total_steps,
        epochs=total_steps / timing.steps_per_epoch if timing.steps_per_epoch else float("nan"),
        num_evaluations=evaluations,
        num_checkpoints=checkpoints,
        eval_seconds=timing.eval_seconds,
        checkpoint_seconds=timing.checkpoint_seconds,
        final_overhead_seconds=final_overhead_seconds,
        train_overhead_seconds=timing.train_setup_seconds + timing.train_teardown_seconds,
        target_seconds=target_seconds,
        elapsed_seconds=elapsed,
        safety_margin=safety_margin,
        predicted_seconds=fixed + cost(steps),
        reserve_seconds=last_checkpoint + timing.train_teardown_seconds + final_overhead_seconds,
        planned_at=budget.wall_clock(),
        requested_target_seconds=requested_target,
    )
    if args.should_log:
        logger.info(f"Training plan for a budget of {_duration(target_seconds)}:\n{plan.to_markdown()}")
    return plan


def plan_remaining(
    timing: StepTiming,
    target_seconds: float,
    *,
    checkpoint: str | os.PathLike,
    args: TrainingArguments,
    num_train_samples: int,
    safety_margin: float = 0.02,
    final_overhead_seconds: float | None = None,
    elapsed_seconds: float | None = None,
    min_steps: int = 0,
) -> TrainingPlan:
    """`plan_run` for a run resumed from `checkpoint`: the budget that the earlier runs spent is deducted, and the
    plan's `steps` is the checkpoint's global step plus the steps that fit in the rest.

    The earlier runs' spending is read by `budget_spent`. Time between the checkpoint and an interruption is lost
    work and is not charged.

    Args:
        checkpoint (`str` or `os.PathLike`):
            The checkpoint folder passed to `train(resume_from_checkpoint=...)`.
        elapsed_seconds (`float`, *optional*):
            Budget spent by *this* process so far, the probe included; defaults to `timing.probe_seconds`.

    The other arguments are those of `plan_run`.
    """
    spent, global_step = budget_spent(checkpoint)
    this_run = timing.probe_seconds if elapsed_seconds is None else elapsed_seconds
    return plan_run(
        timing,
        target_seconds,
        args=args,
        num_train_samples=num_train_samples,
        safety_margin=safety_margin,
        final_overhead_seconds=final_overhead_seconds,
        elapsed_seconds=spent + this_run,
        start_step=global_step,
        min_steps=min_steps,
    )


def budget_spent(checkpoint: str | os.PathLike) -> tuple[float, int]:
    """Budget (seconds) that the runs before `checkpoint` spent up to it, and its global step.

    Read from the `budget.json` that `TimeBudgetCallback` writes into each checkpoint; else from the output folder's
    `budget.json` if it was written at the same step; else the `train_runtime` of the `train()` calls completed before
    the checkpoint (its `trainer_state.json` log history), with a warning, since that misses the probe and the
    interrupted call.

    Raises:
        `ValueError`: `checkpoint` is not a complete checkpoint (a run killed while writing it); the message says why.
    """
    checkpoint = Path(checkpoint)
    try:
        state = TrainerState.load_from_json(str(checkpoint / "trainer_state.json"))
    except (OSError, ValueError) as error:
        raise ValueError(
            f"{checkpoint} is not a complete checkpoint ({type(error).__name__}: {error}); resume from a complete one "
            "(--resume_from_checkpoint last picks the newest)"
        ) from None
    global_step = state.global_step
    for path in (checkpoint / BUDGET_NAME, checkpoint.parent / BUDGET_NAME):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            # Missing, or (from a version that wrote it in place) cut short: the next source decides.
            continue
        if record.get("global_step") == global_step and "elapsed_seconds" in record:
            return float(record["elapsed_seconds"]), global_step
    runtime = sum(entry["train_runtime"] for entry in state.log_history if "train_runtime" in entry)
    logger.warning(
        f"{checkpoint} holds no {BUDGET_NAME} for step {global_step}; counting the earlier runs' train_runtime "
        f"({runtime:.0f} s) as the budget they spent"
    )
    return float(runtime), global_step


def _count_evaluations_and_checkpoints(
    args: TrainingArguments, start_step: int, steps: int, steps_per_epoch: int | None
) -> tuple[int, int]:
    """Evaluations and checkpoints that `DefaultFlowCallback` triggers over global steps `start_step + 1 ...
    start_step + steps`, the end of training included."""
    end = start_step + steps

    def every(interval: float, delay: float = 0) -> int:
        # `eval_steps`/`save_steps` below 1 are fractions of `max_steps` (`TrainerState.compute_steps`).
        interval = math.ceil(end * interval) if interval < 1 else int(interval)
        first = max(start_step, math.ceil(delay) - 1)
        count = max(end // interval - first // interval, 0)
        # The last step gets one more unless it was already one of them.
        return count + int(end % interval != 0 and end >= delay)

    def epoch_ends(delay: float = 0) -> int:
        if steps_per_epoch is None:
            raise ValueError("a per-epoch strategy needs a dataset with a length (steps per epoch)")
        # Epochs `first ... last` end in this run (the last one possibly part-way, at `end`); `state.epoch` at the end
        # of epoch `i` is `i`, so the evaluation delay skips those below it.
        first, last = start_step // steps_per_epoch + 1, math.ceil(end / steps_per_epoch)
        return max(last - max(first, math.ceil(delay)), 0) + int(end / steps_per_epoch >= delay)

    evaluations = 0
    if args.eval_strategy == IntervalStrategy.STEPS:
        evaluations = every(args.eval_steps, args.eval_delay or 0)
    elif args.eval_strategy == IntervalStrategy.EPOCH:
        evaluations = epoch_ends(args.eval_delay or 0)

    checkpoints = 0
    if args.save_strategy == SaveStrategy.STEPS and args.save_steps > 0:
        checkpoints = every(args.save_steps)
    elif args.save_strategy == SaveStrategy.EPOCH:
        checkpoints = epoch_ends()
    elif args.save_strategy == SaveStrategy.BEST:
        # A checkpoint at each evaluation that improves the metric: at most one per evaluation.
        checkpoints = evaluations
    return evaluations, checkpoints


def program_start_time() -> float:
    """`time.time()` at which this program started: when it first imported `kurdish_tts`, before torch and
    transformers, so a budget covers their imports (10 s and more) as part of the job.

    Not the process's start: a shell that `exec`s the program (`bash -c '... && python scripts/train_vits.py'`, as CI
    jobs, scripts and ssh one-liners do) hands it its process, whose start time then includes whatever the shell ran
    first, such as minutes of installs.
    """
    import kurdish_tts

    return kurdish_tts.IMPORTED_AT


def _duration(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds)))
