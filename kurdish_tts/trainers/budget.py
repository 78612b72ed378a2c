"""Fit a training run to a wall-clock budget: time real steps, plan `max_steps`, stop gracefully at the deadline.

`accelerate launch scripts/train_vits.py --target_hours 9.5` should train for as many steps as fit in 9.5 hours,
with the learning-rate schedule (warm-up, then decay) spanning exactly those steps. The schedule is fixed when
`train()` starts, so the number of steps must be known beforehand. Four pieces do this:

1. `measure_step_time` runs a short probe, a real `trainer.train()` of a few steps on this machine with the real
   dataloader, and puts the model and the trainer back exactly as they were.
2. `plan_run` (or `plan_remaining` for a resumed run) chooses `max_steps` so that the steps, the periodic evaluations
   and checkpoints, and the final evaluation and save fit in what is left of the budget.
3. `apply_plan` sets `args.max_steps` and attaches a `TimeBudgetCallback`.
4. `TimeBudgetCallback` stops the run early, with time left for the final evaluation and save, if it runs slower
   than planned; it also records the budget spent in `budget.json`, so that a resumed run plans with the rest.

Example:

```python
>>> from kurdish_tts.trainers.budget import apply_plan, measure_step_time, plan_remaining, plan_run
>>> started = time.time()  # before loading data, if the budget covers the whole job
>>> trainer = VitsTrainer(model, args, train_dataset=train, eval_dataset=dev, processing_class=tokenizer)
>>> timing = measure_step_time(trainer)
>>> if last_checkpoint is None:
...     plan = plan_run(timing, 9.5 * 3600, args=args, num_train_samples=len(train),
...                     elapsed_seconds=time.time() - started)
... else:
...     plan = plan_remaining(timing, 9.5 * 3600, checkpoint=last_checkpoint, args=args,
...                           num_train_samples=len(train), elapsed_seconds=time.time() - started)
>>> apply_plan(trainer, plan)
>>> trainer.train(resume_from_checkpoint=last_checkpoint)
>>> trainer.save_model(); trainer.evaluate()
```
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import math
import os
import random
import shutil
import statistics
import tempfile
import time
from collections import deque
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from transformers import (
    DefaultFlowCallback,
    ProgressCallback,
    Trainer,
    TrainerCallback,
    TrainerControl,
    TrainerState,
    TrainingArguments,
)
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, IntervalStrategy, SaveStrategy

from ..atomic import write_json_atomically

logger = logging.getLogger(__name__)

# The clocks of every measurement and deadline below, looked up at each call: tests put one simulated clock in both,
# advanced by what each step, evaluation and save is declared to take, so that no test depends on the machine's speed.
wall_clock = time.time  # instants: the budget's start, its deadline, plans
interval_clock = time.perf_counter  # durations within this process: the probe's steps

BUDGET_NAME = "budget.json"
# `lr_scheduler_type`s whose transformers schedule is a `LambdaLR` of `functools.partial`s with a
# `num_training_steps` keyword (or none at all), so that the end of the run can be moved while it trains.
RETARGETABLE_SCHEDULES = {
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "inverse_sqrt",
    "cosine_with_min_lr",
}
# Attributes that the probe's `train()` may leave wrapped (DDP, torch.compile): a later `train()` reuses the wrapper
# rather than wrapping the model a second time, so they are kept rather than put back.
_WRAPPER_ATTRIBUTES = ("model", "model_wrapped", "deepspeed")


@dataclass
class StepTiming:
    """What `measure_step_time` measured on this machine, identical on every process of a distributed run.

    Args:
        seconds_per_step (`float`):
            Mean wall time of one optimizer step over the timed steps, data loading and the Trainer's per-step work
            (logging at `logging_steps`) included. A plan multiplies it by the number of steps, so it is the mean
            (span of the timed steps over their number, with CUDA synchronized at both ends), not the median: the
            median drops periodic costs, such as an epoch boundary, that the real run pays too.
        median_seconds_per_step (`float`):
            Median of the individual timed steps; far below `seconds_per_step` means spikes during the probe.
        samples_per_second (`float`):
            `train_batch_size / seconds_per_step`.
        train_batch_size (`int`):
            Samples per optimizer step, over all processes and accumulation steps.
        steps_per_epoch (`int`, *optional*):
            Optimizer steps per epoch, as the Trainer counts them; `None` for a dataset without a length.
        eval_seconds (`float`):
            One `trainer.evaluate()` call; `0.0` without an evaluation dataset.
        checkpoint_seconds (`float`):
            One checkpoint as the Trainer writes it during training (weights, optimizer, scheduler, RNG and trainer
            state); `0.0` when `save_strategy="no"`.
        save_model_seconds (`float`):
            One `trainer.save_model(...)` call, the final save of a script.
        train_setup_seconds (`float`):
            From the `train()` call to its first step: dataloader, optimizer and scheduler, `accelerator.prepare`.
        train_teardown_seconds (`float`):
            From the end of the last step to the return of `train()`, its checkpoint left out: the last log, the end of
            the epoch, the final training metrics.
        probe_seconds (`float`):
            Wall time of the whole measurement, which the budget has spent.
        step_seconds (`list[float]`):
            The individual timed steps (the warm-up steps excluded).
        one_off_steps (`int`, *optional*, defaults to `0`):
            Timed steps that did one-off work the run does not repeat (a CUDA graph capture), left out of
            `seconds_per_step`.
    """

    seconds_per_step: float
    median_seconds_per_step: float
    samples_per_second: float
    train_batch_size: int
    steps_per_epoch: int | None
    eval_seconds: float
    checkpoint_seconds: float
    save_model_seconds: float
    train_setup_seconds: float
    train_teardown_seconds: float
    probe_seconds: float
    step_seconds: list[float]
    one_off_steps: int = 0


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


class _ProbeTimer(TrainerCallback):
    """Timestamps of the probe's `train()`. On its last step it asks for a log, which flushes the metrics that the
    probe's steps accumulated in the trainer, and for a checkpoint, so that one real checkpoint is timed."""

    def __init__(self, warmup_steps: int, save_checkpoint: bool, one_off_count=None):
        self.warmup_steps = warmup_steps
        self.save_checkpoint = save_checkpoint
        self.one_off_count = one_off_count or (lambda: 0)
        # The start of training, then the end of each step; with each, the trainer's count of one-off steps.
        self.stamps: list[float] = []
        self.one_offs: list[int] = []
        self.last_log = None
        self.checkpoint_end = None
        self.updates_per_epoch = None

    def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):
        self.stamps = [interval_clock()]
        self.one_offs = [self.one_off_count()]
        if train_dataloader is not None and _has_length(train_dataloader):
            # The Trainer's own count of optimizer steps per epoch (`set_initial_training_values`).
            batches = len(train_dataloader)
            self.updates_per_epoch = max(math.ceil(batches / args.gradient_accumulation_steps), 1)

    def on_step_end(self, args, state, control, **kwargs):
        last = state.global_step >= state.max_steps
        # Only at the two ends of the timed span, so that the steps in between keep their usual overlap of host and
        # device work.
        if last or state.global_step == self.warmup_steps:
            _synchronize()
        self.stamps.append(interval_clock())
        self.one_offs.append(self.one_off_count())
        if last:
            control.should_log = True
            control.should_save = self.save_checkpoint
        return control

    def on_log(self, args, state, control, **kwargs):
        # The log of the last step, just before its checkpoint; `train()` logs once more at its end.
        if self.checkpoint_end is None:
            self.last_log = interval_clock()

    def on_save(self, args, state, control, **kwargs):
        _synchronize()
        self.checkpoint_end = interval_clock()


def measure_step_time(trainer: Trainer, probe_steps: int = 20, warmup_steps: int = 5) -> StepTiming:
    """Time real training steps of `trainer` on this machine, then put the model and the trainer back.

    The probe is a short `trainer.train()` of `warmup_steps + probe_steps` steps with the trainer's own dataloader,
    collator, precision, compilation and accumulation, into a temporary folder inside `args.output_dir` (so that the
    timed checkpoint goes to the disk the real ones go to). Periodic evaluation, checkpoints and hub pushes are off,
    and only the Trainer's flow control and the probe's timer see the events, so the probe reaches no logger, tracker
    or sample callback. After it, one `trainer.evaluate()` (if there is an evaluation dataset) and one
    `trainer.save_model()` are timed.

    Then everything goes back: the model's weights (from a CPU copy of its `state_dict`), every attribute of the
    trainer (so `optimizer` and `lr_scheduler`, including VitsTrainer's discriminator ones, are `None` again and the
    next `train()` builds them fresh, with the planned number of steps), the state, the control flags, the gradient
    scalers and the random number generators. The final run is then the run that would have happened without the
    probe; only the model wrappers (DDP, `torch.compile`) are kept, since `train()` reuses them.

    Under `accelerate launch`, every process must call this; the timings are the maximum over the processes, so that
    every process plans the same number of steps.

    Args:
        trainer (`transformers.Trainer`):
            A trainer with a training dataset that has not been given an optimizer of its own.
        probe_steps (`int`, *optional*, defaults to `20`):
            Steps timed after the warm-up.
        warmup_steps (`int`, *optional*, defaults to `5`):
            First steps left out of the timing (allocations, kernel selection, compilation, loader start-up).

    Returns:
        `StepTiming`
    """
    if probe_steps < 1 or warmup_steps < 0:
        raise ValueError(f"need probe_steps >= 1 and warmup_steps >= 0, got {probe_steps} and {warmup_steps}")
    if trainer.train_dataset is None:
        raise ValueError("measure_step_time needs a trainer with a train_dataset")
    if trainer.optimizer is not None or trainer.lr_scheduler is not None:
        # Its state would be advanced by the probe, and its schedule was built for a step count the plan changes.
        raise ValueError(
            "measure_step_time needs a trainer that builds its own optimizer and scheduler at train(); "
            "this one was given `optimizers=`"
        )
    args = trainer.args
    started = interval_clock()
    model = trainer.model
    weights = {name: tensor.detach().to("cpu", copy=True) for name, tensor in model.state_dict().items()}
    was_training = model.training
    attributes = dict(vars(trainer))
    handler_attributes = dict(vars(trainer.callback_handler))
    control = copy.deepcopy(trainer.control)
    scalers = [v for v in (*attributes.values(), trainer.accelerator.scaler) if isinstance(v, torch.amp.GradScaler)]
    scaler_states = [copy.deepcopy(scaler.state_dict()) for scaler in scalers]
    rng_states = _rng_states()
    overrides = {
        "max_steps": warmup_steps + probe_steps,
        "eval_strategy": IntervalStrategy.NO,
        "eval_on_start": False,
        "save_strategy": SaveStrategy.NO,
        "push_to_hub": False,
    }
    saved_args = {name: getattr(args, name) for name in (*overrides, "output_dir")}
    os.makedirs(args.output_dir, exist_ok=True)
    probe_dir = tempfile.mkdtemp(prefix="budget-probe-", dir=args.output_dir)
    # A trainer may count steps that did work the run will not repeat (VitsTrainer: CUDA graph captures, one per batch
    # shape); at the start of a run most probe steps can be such steps, which made one H100 plan 2.7x too slow.
    timer = _ProbeTimer(
        warmup_steps,
        save_checkpoint=args.save_strategy != SaveStrategy.NO,
        one_off_count=lambda: getattr(trainer, "one_off_step_count", 0),
    )
    try:
        for name, value in overrides.items():
            setattr(args, name, value)
        args.output_dir = probe_dir
        trainer.callback_handler.callbacks = [DefaultFlowCallback(), timer]
        train_call = interval_clock()
        trainer.train()
        train_return = interval_clock()

        eval_seconds = 0.0
        if trainer.eval_dataset is not None:
            begin = interval_clock()
            trainer.evaluate()
            _synchronize()
            eval_seconds = interval_clock() - begin
        begin = interval_clock()
        trainer.save_model(os.path.join(probe_dir, "model"))
        _synchronize()
        save_model_seconds = interval_clock() - begin
    finally:
        for name, value in saved_args.items():
            setattr(args, name, value)
        for name in set(vars(trainer)) - set(attributes) - set(_WRAPPER_ATTRIBUTES):
            delattr(trainer, name)
        for name, value in attributes.items():
            if name not in _WRAPPER_ATTRIBUTES:
                setattr(trainer, name, value)
        vars(trainer.callback_handler).update(handler_attributes)
        trainer.control = control
        model.load_state_dict(weights)
        model.train(was_training)
        for scaler, state in zip(scalers, scaler_states):
            scaler.load_state_dict(state)
        _set_rng_states(rng_states)
        shutil.rmtree(probe_dir, ignore_errors=True)

    stamps = timer.stamps
    timed = np.diff(stamps[warmup_steps:])  # (probe_steps,)
    one_off = np.diff(timer.one_offs[warmup_steps:]) > 0
    if one_off.any() and not one_off.all():
        seconds_per_step = float(timed[~one_off].mean())
    else:
        seconds_per_step = (stamps[-1] - stamps[warmup_steps]) / probe_steps
    checkpoint_seconds = timer.checkpoint_end - timer.last_log if timer.checkpoint_end is not None else 0.0
    setup = stamps[0] - train_call
    teardown = max(train_return - stamps[-1] - checkpoint_seconds, 0.0)
    values = [
        seconds_per_step,
        float(np.median(timed)),
        eval_seconds,
        checkpoint_seconds,
        save_model_seconds,
        setup,
        teardown,
        interval_clock() - started,
    ]
    seconds_per_step, median, eval_seconds, checkpoint_seconds, save_model_seconds, setup, teardown, probe = (
        _max_over_processes(values, args.device)
    )
    batch_size = trainer.get_total_train_batch_size(args)
    timing = StepTiming(
        seconds_per_step=seconds_per_step,
        median_seconds_per_step=median,
        samples_per_second=batch_size / seconds_per_step,
        train_batch_size=batch_size,
        steps_per_epoch=timer.updates_per_epoch,
        eval_seconds=eval_seconds,
        checkpoint_seconds=checkpoint_seconds,
        save_model_seconds=save_model_seconds,
        train_setup_seconds=setup,
        train_teardown_seconds=teardown,
        probe_seconds=probe,
        step_seconds=[float(s) for s in timed],
        one_off_steps=int(one_off.sum()),
    )
    if args.should_log:
        logger.info(
            f"Probe: {seconds_per_step:.4f} s per step (median {median:.4f}) over {probe_steps} steps after "
            f"{warmup_steps} warm-up steps"
            + (f" ({timing.one_off_steps} with one-off work left out)" if timing.one_off_steps else "")
            + f", {timing.samples_per_second:.2f} samples/s; evaluation {eval_seconds:.2f} "
            f"s, checkpoint {checkpoint_seconds:.2f} s, save_model {save_model_seconds:.2f} s; probe took {probe:.1f} s"
        )
    return timing


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
        planned_at=wall_clock(),
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


def apply_plan(trainer: Trainer, plan: TrainingPlan, headroom: float = 1.0) -> TimeBudgetCallback:
    """Make `trainer` run `plan`: set `args.max_steps` and attach a `TimeBudgetCallback` for its deadline.

    The learning-rate schedule (warm-up, as a count or a ratio, then decay) spans exactly the planned steps. The
    callback re-plans once the run has measured its own pace (`TimeBudgetCallback.replan_fractions`), moving the end
    and stretching or shrinking the schedule with it, so that a probe that was a little slow or fast does not leave
    part of the budget unused or make the run stop early. The Trainer fixes its number of epochs from `max_steps` when
    `train()` starts, so `args.max_steps` is set `headroom` above the plan: the room a re-plan can grow into (a
    bound on the epoch loop only: the run ends at the plan's step). It is wide (2x) because a probe can be far off:
    with CUDA graphs an H100 ran 2.6x faster than its probe when the room was 25 %, and ended 46 % early. For
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
        now = wall_clock()
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
        now = wall_clock()
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
        now = wall_clock()
        if self._last_event is not None:
            self._eval_durations.append(now - self._last_event)
            self.eval_seconds = _typical_duration(self._eval_durations, self.eval_seconds)
        self._last_event = now
        self._interrupted = True

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        now = wall_clock()
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
        now = wall_clock()
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


def _retarget_schedules(trainer: Trainer, total_steps: int, warmup_steps: int) -> bool:
    """Make every learning-rate schedule of `trainer` (the Trainer's, and others it holds, such as VitsTrainer's
    discriminator schedule) end at `total_steps`, from the current step on; warm-up keeps `warmup_steps`.

    transformers' schedules are `LambdaLR`s over `functools.partial`s that carry `num_training_steps`: each partial is
    replaced by one with the new values and the current rates are recomputed, from `base_lrs`, so that a rate that NaN
    recovery lowered stays lowered. Returns `False` if a schedule is of another kind.
    """
    schedulers = [trainer.lr_scheduler, *(v for k, v in vars(trainer).items() if k.endswith("_scheduler"))]
    done = set()
    for scheduler in schedulers:
        scheduler = getattr(scheduler, "scheduler", scheduler)  # accelerate's AcceleratedScheduler wraps it
        if not isinstance(scheduler, torch.optim.lr_scheduler.LRScheduler) or id(scheduler) in done:
            continue
        done.add(id(scheduler))
        if not isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR):
            return False
        lambdas = []
        for function in scheduler.lr_lambdas:
            if isinstance(function, functools.partial) and "num_training_steps" in function.keywords:
                keywords = {**function.keywords, "num_training_steps": total_steps}
                if "num_warmup_steps" in keywords:
                    keywords["num_warmup_steps"] = warmup_steps
                function = functools.partial(function.func, *function.args, **keywords)
            elif isinstance(function, functools.partial) and "num_warmup_steps" in function.keywords:
                function = functools.partial(
                    function.func, *function.args, **{**function.keywords, "num_warmup_steps": warmup_steps}
                )
            lambdas.append(function)
        scheduler.lr_lambdas = lambdas
        step = scheduler.last_epoch
        rates = [base * function(step) for base, function in zip(scheduler.base_lrs, lambdas)]
        for group, rate in zip(scheduler.optimizer.param_groups, rates):
            group["lr"] = rate
        scheduler._last_lr = rates
    return True


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


def _max_over_processes(values: list[float], device: torch.device) -> list[float]:
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [float(value) for value in values]
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tensor.tolist()


def _any_process(flag: bool, device: torch.device) -> bool:
    return bool(_max_over_processes([float(flag)], device)[0])


def _synchronize() -> None:
    # Kernels run asynchronously: without this, a timestamp can precede the end of the work it is meant to close.
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def _rng_states() -> dict:
    states = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states:
        torch.cuda.set_rng_state_all(states["cuda"])


def _has_length(dataloader) -> bool:
    try:
        return len(dataloader) > 0
    except TypeError:
        return False


def _duration(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds)))
