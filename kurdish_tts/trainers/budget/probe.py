"""Time real training steps on this machine (`measure_step_time`), leaving the model and the trainer as they were."""

from __future__ import annotations

import copy
import logging
import math
import os
import random
import shutil
import tempfile
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from transformers import DefaultFlowCallback, Trainer, TrainerCallback
from transformers.trainer_utils import IntervalStrategy, SaveStrategy

from .. import budget

# One logger for the whole time budget, as before it was split into modules.
logger = logging.getLogger("kurdish_tts.trainers.budget")


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
        self.stamps = [budget.interval_clock()]
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
        self.stamps.append(budget.interval_clock())
        self.one_offs.append(self.one_off_count())
        if last:
            control.should_log = True
            control.should_save = self.save_checkpoint
        return control

    def on_log(self, args, state, control, **kwargs):
        # The log of the last step, just before its checkpoint; `train()` logs once more at its end.
        if self.checkpoint_end is None:
            self.last_log = budget.interval_clock()

    def on_save(self, args, state, control, **kwargs):
        _synchronize()
        self.checkpoint_end = budget.interval_clock()


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
    started = budget.interval_clock()
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
        train_call = budget.interval_clock()
        trainer.train()
        train_return = budget.interval_clock()

        eval_seconds = 0.0
        if trainer.eval_dataset is not None:
            begin = budget.interval_clock()
            trainer.evaluate()
            _synchronize()
            eval_seconds = budget.interval_clock() - begin
        begin = budget.interval_clock()
        trainer.save_model(os.path.join(probe_dir, "model"))
        _synchronize()
        save_model_seconds = budget.interval_clock() - begin
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
        budget.interval_clock() - started,
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


def _max_over_processes(values: list[float], device: torch.device) -> list[float]:
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [float(value) for value in values]
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tensor.tolist()


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
