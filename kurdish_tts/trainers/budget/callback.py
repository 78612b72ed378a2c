"""Hold a run to its plan: `apply_plan` attaches a `TimeBudgetCallback`, which re-plans with the run's own pace and
stops a late run in time for the final evaluation and save."""

from __future__ import annotations

import logging
import math
import os
import statistics
from collections import deque
from datetime import datetime

import torch
from transformers import ProgressCallback, Trainer, TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, SaveStrategy

from ...atomic import write_json_atomically
from .. import budget
from .plan import BUDGET_NAME, TrainingPlan, _count_evaluations_and_checkpoints, _duration
from .probe import _max_over_processes
from .schedules import RETARGETABLE_SCHEDULES, _retarget_schedules

# One logger for the whole time budget, as before it was split into modules.
logger = logging.getLogger("kurdish_tts.trainers.budget")


def apply_plan(trainer: Trainer, plan: TrainingPlan, headroom: float = 4.0) -> TimeBudgetCallback:
    """Make `trainer` run `plan`: set `args.max_steps` and attach a `TimeBudgetCallback` for its deadline.

    The learning-rate schedule (warm-up, as a count or a ratio, then decay) spans exactly the planned steps. The
    callback re-plans once the run has measured its own pace (`TimeBudgetCallback.replan_fractions`), moving the end
    and stretching or shrinking the schedule with it, so that a probe that was a little slow or fast does not leave
    part of the budget unused or make the run stop early. The Trainer fixes its number of epochs from `max_steps` when
    `train()` starts, so `args.max_steps` is set `headroom` above the plan: the room a re-plan can grow into (a
    bound on the epoch loop only: the run ends at the plan's step). It is wide (5x) because a probe can be far off:
    with CUDA graphs an H100 ran 2.6x faster than its probe when the room was 25 %, and ended 46 % early; the small
    XTTS-style model on an H100 (six loader workers, five warm-up steps) ran 4.3x faster than its probe when the room
    was 2x, and ended after 3.7 of its 5 minutes (`benchmarks/README.md`, "The GPU experiment"). For
    schedules that cannot be re-targeted (`reduce_lr_on_plateau`, custom ones) there is no headroom and no re-plan;
    the callback then only stops a late run.

    A resumed run's schedule is re-targeted in the same way and continues from the checkpoint's step.

    Returns:
        `TimeBudgetCallback`, the callback attached (replacing one attached before).
    """
    if headroom < 0:
        raise ValueError(f"headroom must be >= 0, got {headroom}")
    replan = trainer.args.lr_scheduler_type in RETARGETABLE_SCHEDULES and headroom > 0
    trainer.args.max_steps = math.ceil(plan.steps * (1 + headroom)) if replan else plan.steps
    trainer.pop_callback(TimeBudgetCallback)
    callback = TimeBudgetCallback.from_plan(plan)
    if replan:
        callback.enable_replanning(trainer, max_steps=trainer.args.max_steps)
    # Last, so that the evaluation time it measures includes what other callbacks do on evaluation (a best-model save).
    trainer.add_callback(callback)
    return callback


def _typical_duration(durations: list[float], estimate: float) -> float:
    """What the next evaluation (or checkpoint) will take, from the run's own: the mean of all but the first, which
    pays one-off costs (first synthesis, JIT compilation, folder creation); with only the first, the estimate made
    before the run when there is one."""
    if len(durations) >= 2:
        return sum(durations[1:]) / (len(durations) - 1)
    return estimate if estimate > 0 else durations[0]


class TimeBudgetCallback(TrainerCallback):
    """Stop a run that is late, early enough for the final evaluation and save to finish before the deadline.

    At each optimizer step it estimates the cost of going on: the evaluation and checkpoint that the Trainer is about
    to run at this step, if any, and one more step (the median of the recent steps, which leave out evaluations and
    checkpoints). If that, plus `reserve_seconds`, would pass the deadline, it stops the run here: it sets
    `control.should_training_stop`, sets `control.should_save` unless `save_strategy="no"` (so the last step is kept),
    and clears `control.should_evaluate`, at this step and at the end of its epoch (the final evaluation of the script
    follows at once and would repeat it). It only reads the clock and flips those flags: the learning-rate schedule
    is the planned one, and a run on time ends at `max_steps` without the callback doing anything.

    On the main process it writes `budget.json` atomically into `args.output_dir` when training starts and ends, and
    into each checkpoint folder as the checkpoint is saved: the budget's start, deadline and plan, the global step, and
    the budget spent so far, which `plan_remaining` reads back when the run is resumed.

    Under `accelerate launch` the processes agree (one all-reduce of a flag per step), since a process that stopped
    alone would leave the others waiting.

    Example:

    ```python
    >>> trainer.add_callback(TimeBudgetCallback(deadline=time.time() + 3600, reserve_seconds=120))
    ```

    Args:
        deadline (`float`):
            `time.time()` by which everything, the final evaluation and save included, must be done.
        reserve_seconds (`float`):
            Seconds to keep after the last step: its checkpoint, the end of `train()`, and what follows `train()`.
        step_seconds (`float`, *optional*):
            Expected seconds per step until the run has measured its own.
        eval_seconds (`float`, *optional*, defaults to `0.0`):
            Expected seconds per evaluation; replaced by the mean duration of the run's own evaluations after its
            first one (the first pays one-off costs: it was 8x the others in an H100 run with synthesis metrics), or
            by the first one when no estimate was given.
        checkpoint_seconds (`float`, *optional*, defaults to `0.0`):
            Expected seconds per checkpoint; replaced by the run's own checkpoints' durations in the same way.
        plan (`TrainingPlan`, *optional*):
            Written to `budget.json`; without it, the budget is taken to start when training starts.

    Attributes:
        stopped_early (`bool`):
            Whether the callback stopped the run.
        stopped_at_step (`int` or `None`):
            The global step it stopped at.
    """

    # Recent steps for the estimate: enough for a stable median, few enough to follow a change of pace.
    window = 50
    # Re-plan when these shares of the planned new steps are done (with replanning enabled by `apply_plan`): early,
    # to correct the probe, then late, when what is left to predict (and to get wrong) is short.
    replan_fractions = (0.1, 0.3, 0.6, 0.85, 0.95)
    # Steps whose mean is the pace of a re-plan: recent enough to follow the run's pace (which drifts: clocks, other
    # work on the machine), long enough to average over epoch boundaries.
    pace_window = 200
    # ... provided that many steps were timed since the start (a re-plan on a handful of steps would add noise).
    min_replan_steps = 20

    def __init__(
        self,
        deadline: float,
        reserve_seconds: float,
        step_seconds: float | None = None,
        eval_seconds: float = 0.0,
        checkpoint_seconds: float = 0.0,
        plan: TrainingPlan | None = None,
    ):
        if reserve_seconds < 0:
            raise ValueError(f"reserve_seconds must be >= 0, got {reserve_seconds}")
        self.deadline = deadline
        self.reserve_seconds = reserve_seconds
        self.step_seconds = step_seconds
        self.eval_seconds = eval_seconds
        self.checkpoint_seconds = checkpoint_seconds
        self.plan = plan
        self.started_at = plan.started_at if plan is not None else None
        self.stopped_early = False
        self.stopped_at_step = None
        self._steps = deque(maxlen=self.window)
        self._eval_durations: list[float] = []
        self._checkpoint_durations: list[float] = []
        self._last_event = None
        # Re-planning (`enable_replanning`): the trainer whose schedules are re-targeted, and the bound on the steps.
        self._trainer = None
        self._max_steps = None
        self._replan_steps: list[int] = []
        self._pace = deque(maxlen=self.pace_window)
        self._timed_steps = 0
        self.replans: list[dict] = []
        # Whether an evaluation or a checkpoint ran since the last step end, so the next interval is no step time.
        self._interrupted = True

    @classmethod
    def from_plan(cls, plan: TrainingPlan) -> TimeBudgetCallback:
        return cls(
            deadline=plan.deadline,
            reserve_seconds=plan.reserve_seconds,
            step_seconds=plan.seconds_per_step,
            eval_seconds=plan.eval_seconds,
            checkpoint_seconds=plan.checkpoint_seconds,
            plan=plan,
        )

    def enable_replanning(self, trainer: Trainer, max_steps: int) -> None:
        """Let the callback move the end of the run up to `max_steps` (the `args.max_steps` the Trainer's epochs were
        counted for) and re-target `trainer`'s learning-rate schedules to it. Needs a plan."""
        if self.plan is None:
            raise ValueError(
                "re-planning needs the TrainingPlan the callback was made from (TimeBudgetCallback.from_plan)"
            )
        self._trainer = trainer
        self._max_steps = max_steps
        new_steps = self.plan.steps - self.plan.start_step
        self._replan_steps = sorted(
            {self.plan.start_step + max(1, round(f * new_steps)) for f in self.replan_fractions}
        )

    @property
    def expected_step_seconds(self) -> float:
        """The median of the recent steps, or `step_seconds` before the first one was measured."""
        if self._steps:
            return statistics.median(self._steps)
        return self.step_seconds or 0.0

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        now = budget.wall_clock()
        if self.started_at is None:
            self.started_at = now
        self._last_event = now
        self._interrupted = True
        if self._trainer is not None:
            # The Trainer built the schedule for the bound; the run is the plan until a re-plan says otherwise.
            self._set_max_steps(state, self.plan.steps)
            warmup = args.get_warmup_steps(self.plan.steps)
            retargeted = _retarget_schedules(self._trainer, self.plan.steps, warmup)
            if not retargeted:
                logger.warning("Time budget: the learning-rate schedule cannot be re-targeted; no re-planning")
                self._trainer = None
            self._warmup_steps = warmup
        self._write_record(args, state, [args.output_dir])

    def _set_max_steps(self, state: TrainerState, steps: int) -> None:
        state.max_steps = steps
        # The progress bar was sized when training began.
        for callback in self._trainer.callback_handler.callbacks:
            bar = getattr(callback, "training_bar", None)
            if isinstance(callback, ProgressCallback) and bar is not None:
                bar.total = steps
                bar.refresh()

    def _replan(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, now: float) -> None:
        """Move the end of the run to what the measured pace fits before the plan's own end (the budget less its
        margin, the final evaluation and save, and `train()`'s tear-down)."""
        plan = self.plan
        step = statistics.fmean(self._pace)
        end = plan.started_at + plan.target_seconds * (1 - plan.safety_margin)
        # The evaluation and checkpoint the Trainer runs at this step, after this callback: the steps counted below
        # start with the next one.
        due = self.eval_seconds * control.should_evaluate + self.checkpoint_seconds * control.should_save
        available = end - now - due - plan.final_overhead_seconds - plan.train_overhead_seconds
        steps_per_epoch = math.ceil(plan.steps / plan.epochs) if plan.epochs and plan.epochs == plan.epochs else None

        def cost(steps: int) -> float:
            evaluations, checkpoints = _count_evaluations_and_checkpoints(
                args, state.global_step, steps, steps_per_epoch
            )
            return steps * step + evaluations * self.eval_seconds + checkpoints * self.checkpoint_seconds

        low, high = 1, max(2, int(available / step) + 2)
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (middle, high) if cost(middle) <= available else (low, middle)
        target = min(state.global_step + low, self._max_steps)
        # Every process must end at the same step.
        (negative,) = _max_over_processes([-float(target)], args.device)
        target = int(-negative)
        if target == state.max_steps:
            return
        previous = state.max_steps
        self._set_max_steps(state, target)
        _retarget_schedules(self._trainer, target, self._warmup_steps)
        self.replans.append(
            {"at_step": state.global_step, "from_steps": previous, "to_steps": target, "seconds_per_step": step}
        )
        if args.should_log:
            logger.info(
                f"Time budget: re-planned at step {state.global_step:,} with the run's own pace ({step:.4f} s per "
                f"step against {plan.seconds_per_step:.4f} s from the probe): {previous:,} -> {target:,} steps"
            )

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        now = budget.wall_clock()
        if not self._interrupted:
            self._steps.append(now - self._last_event)
            self._timed_steps += 1
            # The pace for re-planning leaves out the first steps of the run (loader start-up, allocations).
            if self._timed_steps > self.min_replan_steps // 4:
                self._pace.append(now - self._last_event)
        self._last_event = now
        self._interrupted = False
        if state.global_step >= state.max_steps:
            return control
        if (
            self._trainer is not None
            and self._replan_steps
            and state.global_step >= self._replan_steps[0]
            and len(self._pace) >= self.min_replan_steps
        ):
            while self._replan_steps and state.global_step >= self._replan_steps[0]:
                self._replan_steps.pop(0)
            self._replan(args, state, control, now)
            if state.global_step >= state.max_steps:
                control.should_training_stop = True
                return control
        going_on = (
            self.expected_step_seconds
            + self.eval_seconds * control.should_evaluate
            + self.checkpoint_seconds * control.should_save
        )
        late = now + going_on + self.reserve_seconds > self.deadline
        if _any_process(late, args.device):
            control.should_training_stop = True
            control.should_save = control.should_save or args.save_strategy != SaveStrategy.NO
            control.should_evaluate = False
            self.stopped_early = True
            self.stopped_at_step = state.global_step
            if args.should_log:
                logger.warning(
                    f"Time budget: stopping at step {state.global_step:,} of {state.max_steps:,}. "
                    f"{_duration(self.deadline - now)} are left before the deadline "
                    f"({datetime.fromtimestamp(self.deadline).astimezone():%Y-%m-%d %H:%M:%S}), and going on would "
                    f"need {going_on:.1f} s plus {self.reserve_seconds:.0f} s for the last checkpoint and the final "
                    "evaluation and save; the run is slower than planned."
                )
        return control

    def on_epoch_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        if self.stopped_early:
            # The stopped step is already saved; per-epoch strategies would evaluate and save it once more.
            control.should_evaluate = False
            control.should_save = False
        return control

    def on_evaluate(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        now = budget.wall_clock()
        if self._last_event is not None:
            self._eval_durations.append(now - self._last_event)
            self.eval_seconds = _typical_duration(self._eval_durations, self.eval_seconds)
        self._last_event = now
        self._interrupted = True

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        now = budget.wall_clock()
        if self._last_event is not None:
            self._checkpoint_durations.append(now - self._last_event)
            self.checkpoint_seconds = _typical_duration(self._checkpoint_durations, self.checkpoint_seconds)
        self._last_event = now
        self._interrupted = True
        checkpoint = os.path.join(args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}")
        self._write_record(args, state, [args.output_dir, checkpoint])

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        self._write_record(args, state, [args.output_dir])

    def _write_record(self, args: TrainingArguments, state: TrainerState, folders: list[str]) -> None:
        if not state.is_world_process_zero:
            return
        now = budget.wall_clock()
        record = {
            "started_at": self.started_at,
            "deadline": self.deadline,
            "global_step": state.global_step,
            "elapsed_seconds": now - self.started_at,
            "updated_at": now,
            "stopped_early": self.stopped_early,
            "planned_steps": state.max_steps,
            "replans": self.replans,
            "plan": self.plan.to_dict() if self.plan is not None else None,
        }
        os.makedirs(args.output_dir, exist_ok=True)
        for folder in folders:
            # A checkpoint folder exists on the main process only once the Trainer has written it.
            if os.path.isdir(folder):
                write_json_atomically(os.path.join(folder, BUDGET_NAME), record)


def _any_process(flag: bool, device: torch.device) -> bool:
    return bool(_max_over_processes([float(flag)], device)[0])
