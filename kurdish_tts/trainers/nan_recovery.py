"""`NanRecoveryCallback`: undo an optimizer step with a non-finite loss or gradient, quarantine its samples, go on."""

from __future__ import annotations

import copy
import json
import logging
import math
import os
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from datetime import datetime

import torch
import torch.distributed as dist
from accelerate.utils import gather_object
from transformers import DefaultFlowCallback, Trainer, TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from ..atomic import write_json_atomically
from ..data.collators import SAMPLE_IDS

logger = logging.getLogger(__name__)

QUARANTINE_NAME = "quarantine.json"


def load_quarantine(path: str | os.PathLike) -> set[str]:
    """The sample ids that `NanRecoveryCallback` quarantined, for leaving them out of a resumed or new run.

    Example:

    ```python
    >>> quarantined = load_quarantine(args.output_dir)
    >>> train = train.filter(lambda sample_id: sample_id not in quarantined, input_columns="id")
    ```

    Args:
        path (`str` or `os.PathLike`):
            A run's output folder (its `quarantine.json` is read) or the path of a quarantine file.

    Returns:
        `set[str]`: the ids of every sample in a step that was undone; empty when there is no file.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, QUARANTINE_NAME)
    if not os.path.isfile(path):
        return set()
    with open(path, encoding="utf-8") as handle:
        record = json.load(handle)
    ids = set(record.get("sample_ids", []))
    for event in record.get("events", []):
        ids.update(event.get("sample_ids", []))
    return {str(sample_id) for sample_id in ids}


class NanRecoveryCallback(TrainerCallback):
    """Detect an optimizer step with a non-finite loss or gradient norm, undo it, quarantine its samples and go on.

    What is checked. After every optimizer step: the loss of each of its micro-batches (as `training_step` returned
    it) and, unless an fp16 `GradScaler` is in use, the gradient norm the Trainer computed for clipping and logging.
    With a scaler, inf/NaN gradients are routine (the scaler skips that step and lowers its scale), so only a
    non-finite loss counts. The check is one reduction on the device; under DDP the flags are all-reduced, so every
    process takes the same decision.

    When it is read. Reading the flags on the host waits for the GPU to finish the step, which keeps the CPU from
    queueing the next one meanwhile: with CUDA graphs that wait costs a fifth of the throughput. So on a GPU the
    check is deferred (`deferred_check`): a step's flags are copied to the host asynchronously and read at the end
    of the step `deferred_steps` (2) later, when they are long there; all pending flags are read at once before
    anything leaves a step (a log, an evaluation, a checkpoint, the end of training) and before a snapshot is taken.
    A step found bad late is handled the same way (the steps after it are undone with it; only the bad step's
    samples are quarantined).

    What a recovery does, at the end of the offending step (`on_step_end`, before the Trainer logs, evaluates or
    saves it):

    1. Restore the last good snapshot, a CPU copy of the model's `state_dict` (the discriminator is a submodule of
       `VitsForTraining`, so it is included), of the optimizers' states and of the fp16 gradient scalers: the
       Trainer's, and `VitsTrainer`'s discriminator optimizer and scaler under `gan_update="alternating"` (see
       `optimizer_attributes` and `scaler_attributes`). The first snapshot is taken when training starts, later ones
       after a step whose loss and gradient norm were finite, at least `snapshot_steps` steps after the previous one.
       Good steps since the snapshot are undone too.
    2. Lower the learning rate by `lr_factor`, for good: each parameter group's `lr` and `initial_lr` and each
       scheduler's `base_lrs` (transformers' schedules recompute the rate from `base_lrs` at every step). These are
       in the optimizer and scheduler states that checkpoints save, so a resumed run keeps the lower rate.
       The schedules are *not* rewound to the snapshot: `global_step` keeps counting (the batch is skipped, not
       replayed) and a schedule behind `global_step` would no longer end at `max_steps`, nor agree with it on resume.
    3. Append the step's sample ids (all micro-batches, all processes) to `quarantine.json` in `args.output_dir`,
       written atomically by the main process, and log a warning.

    After `max_recoveries` recoveries the next non-finite step ends the run: the snapshot is restored, the Trainer is
    told to save a checkpoint of it at this step (even with `save_strategy="no"`) and to stop, an error says what to
    do, and `gave_up` is set, for a script to exit non-zero. Recoveries are counted per `train()` call; the
    quarantine file keeps the events of earlier calls in the same output folder.

    Where the numbers come from. The callback events receive neither the loss, nor the batch, nor the gradient norm
    (locals of the Trainer's loop), so `attach` wraps two methods of that trainer instance: `training_step`, to keep
    each micro-batch's detached loss and its batch's `sample_ids` (the dataset's `id` column, which `VitsTrainer`'s
    training batches carry: `DataCollatorForVits(return_sample_ids=True)`), and `_get_grad_norm`, to keep the norm
    the Trainer computed anyway. Without the latter (another transformers version), the norm is computed in
    `on_pre_optimizer_step`. A collator without `sample_ids` still gets recoveries; the quarantine then has no ids.

    Limitations. Snapshots hold a full copy of the weights and optimizer state in host memory on every process
    (MMS-size VITS, 83 M parameters, with AdamW: 0.93 GiB), and taking one costs a device-to-host copy. DeepSpeed and
    FSDP shard that state and are refused. A non-finite *discriminator* gradient with a finite loss under
    `gan_update="alternating"` is not seen (the discriminator steps inside `training_step`); its NaN weights make
    the next step's loss non-finite, which recovers, but quarantines that next batch. A sample that makes every step
    it is in non-finite is met again each epoch: exclude the quarantined ids (`load_quarantine`) when resuming.

    Example:

    ```python
    >>> from kurdish_tts.trainers.nan_recovery import NanRecoveryCallback
    >>> trainer = VitsTrainer(model, args, train_dataset=train, processing_class=tokenizer)
    >>> recovery = NanRecoveryCallback(lr_factor=0.5, max_recoveries=3).attach(trainer)
    >>> trainer.train()
    >>> if recovery.gave_up:
    ...     sys.exit(1)
    ```

    Args:
        lr_factor (`float`, *optional*, defaults to `0.5`):
            Each recovery multiplies the learning rates by this, in `(0, 1]` (`1` keeps them).
        max_recoveries (`int`, *optional*, defaults to `3`):
            Recoveries allowed per run; the next non-finite step stops it. `0` stops at the first one.
        snapshot_steps (`int`, *optional*, defaults to `50`):
            Minimum number of optimizer steps between two snapshots: more steps are undone at a recovery, fewer
            device-to-host copies are made.
        quarantine_file (`str`, *optional*, defaults to `"quarantine.json"`):
            File name in `args.output_dir` (or an absolute path) of the quarantine record.
        deferred_check (`bool`, *optional*):
            Read each step's flags at the end of the next step rather than at once (see above). Defaults to on for
            CUDA devices, off elsewhere (a CPU has nothing to overlap).

    Attributes:
        recoveries (`int`):
            Recoveries made in the current or last `train()` call.
        gave_up (`bool`):
            Whether the run was stopped after `max_recoveries` recoveries.
        events (`list[dict]`):
            This run's quarantine records: `step`, `action` (`"recovered"` or `"gave_up"`), `reason` (`"loss"` or
            `"grad_norm"`), `sample_ids`, `losses`, `grad_norm`, `restored_step`, `learning_rate` (after the event),
            `time`. Non-finite numbers are written as the strings `"nan"`, `"inf"`, `"-inf"`.
    """

    # Trainer attributes holding the optimizers, schedules and gradient scalers of a recovery, besides the
    # accelerator's scaler; those a trainer lacks (or holds `None` in) are skipped.
    optimizer_attributes = ("optimizer", "_discriminator_optimizer")
    scheduler_attributes = ("lr_scheduler", "_discriminator_scheduler")
    scaler_attributes = ("_discriminator_scaler",)
    # How many steps a deferred check may lag: two keep the GPU fed through a slow batch or two.
    deferred_steps = 2

    def __init__(
        self,
        lr_factor: float = 0.5,
        max_recoveries: int = 3,
        snapshot_steps: int = 50,
        quarantine_file: str = QUARANTINE_NAME,
        deferred_check: bool | None = None,
    ):
        if not 0 < lr_factor <= 1:
            raise ValueError(f"lr_factor must be in (0, 1], got {lr_factor}")
        if max_recoveries < 0:
            raise ValueError(f"max_recoveries must be >= 0, got {max_recoveries}")
        if snapshot_steps < 1:
            raise ValueError(f"snapshot_steps must be >= 1, got {snapshot_steps}")
        self.lr_factor = lr_factor
        self.max_recoveries = max_recoveries
        self.snapshot_steps = snapshot_steps
        self.quarantine_file = quarantine_file
        self.deferred_check = deferred_check
        self.recoveries = 0
        self.gave_up = False
        self.events: list[dict] = []
        self._trainer: Trainer | None = None
        self._snapshot: dict | None = None
        self._earlier_events: list[dict] = []
        self._gave_up_at: int | None = None
        self._deferred = False
        # Steps whose flags are on their way to the host, oldest first: records with the host copy and its CUDA event.
        self._pending: list[dict] = []
        self._reset_step()

    def attach(self, trainer: Trainer) -> NanRecoveryCallback:
        """Add this callback to `trainer` and record the losses, sample ids and gradient norms of its steps.

        The callback goes right after `DefaultFlowCallback`, so that the callbacks after it (reporting integrations,
        progress, user callbacks) see the restored model at the end of a step that was undone, and its `on_epoch_end`
        can cancel the epoch-end save and evaluation that would repeat a give-up checkpoint.

        Returns:
            `NanRecoveryCallback`: this callback.
        """
        if getattr(trainer, "is_deepspeed_enabled", False) or getattr(trainer, "is_fsdp_enabled", False):
            raise ValueError(
                "NanRecoveryCallback restores full (unsharded) model and optimizer states, which DeepSpeed and FSDP "
                "do not hold on each process"
            )
        trainer.pop_callback(self)
        callbacks = trainer.callback_handler.callbacks
        flow = [i for i, callback in enumerate(callbacks) if isinstance(callback, DefaultFlowCallback)]
        callbacks.insert(flow[0] + 1 if flow else 0, self)
        self._wrap(trainer)
        self._trainer = trainer
        return self

    def _wrap(self, trainer: Trainer) -> None:
        if getattr(trainer.training_step, "_nan_recovery_callback", None) is self:
            return
        training_step = trainer.training_step

        def recording_training_step(model, inputs, *args, **kwargs):
            sample_ids = inputs.get(SAMPLE_IDS) if isinstance(inputs, Mapping) else None
            loss = training_step(model, inputs, *args, **kwargs)
            # A trainer this callback was moved away from keeps its wrapper, which must then stay silent.
            if self._trainer is trainer:
                self._losses.append(loss.detach())
                if sample_ids is not None:
                    self._sample_ids.extend(str(sample_id) for sample_id in sample_ids)
            return loss

        recording_training_step._nan_recovery_callback = self
        trainer.training_step = recording_training_step

        get_grad_norm = getattr(trainer, "_get_grad_norm", None)
        if get_grad_norm is None:
            return

        def recording_get_grad_norm(*args, **kwargs):
            grad_norm = get_grad_norm(*args, **kwargs)
            if self._trainer is trainer:
                self._grad_norm = grad_norm
            return grad_norm

        trainer._get_grad_norm = recording_get_grad_norm

        log_save_evaluate = getattr(trainer, "_maybe_log_save_evaluate", None)
        if log_save_evaluate is None:
            return

        def resolving_log_save_evaluate(*args, **kwargs):
            # Nothing leaves a step (log, evaluation, checkpoint, end of training) before its flags are read: a NaN
            # model must not be evaluated or saved. The Trainer calls this right after `on_step_end`.
            control = trainer.control
            leaving = (
                control.should_log or control.should_evaluate or control.should_save or control.should_training_stop
            )
            if self._trainer is trainer and self._pending and leaving:
                self._resolve_pending(trainer.args, trainer.state, control)
            return log_save_evaluate(*args, **kwargs)

        trainer._maybe_log_save_evaluate = resolving_log_save_evaluate

    def _reset_step(self) -> None:
        self._losses: list[torch.Tensor] = []
        self._sample_ids: list[str] = []
        self._grad_norm: torch.Tensor | float | None = None

    def _attached_trainer(self) -> Trainer:
        if self._trainer is None:
            raise RuntimeError(
                "NanRecoveryCallback needs the trainer's losses and batches, which callback events do not receive: "
                "add it with `NanRecoveryCallback(...).attach(trainer)`, not `callbacks=` or `add_callback`."
            )
        return self._trainer

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        trainer = self._attached_trainer()
        self.recoveries = 0
        self.gave_up = False
        self.events = []
        self._gave_up_at = None
        self._earlier_events = self._read_events(args) if state.is_world_process_zero else []
        self._pending = []
        deferred = args.device.type == "cuda" if self.deferred_check is None else self.deferred_check
        # Deferring is only safe where the flags can be read before a log, evaluation or save (see `_wrap`).
        self._deferred = deferred and hasattr(trainer, "_maybe_log_save_evaluate")
        self._reset_step()
        # After the Trainer prepared the model and loaded any checkpoint to resume from: the state to start over from.
        self._take_snapshot(trainer, state.global_step)

    def on_step_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        self._reset_step()

    def on_pre_optimizer_step(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, model=None, **kwargs
    ):
        if self._grad_norm is not None or model is None or self._loss_scaling(self._attached_trainer()):
            return
        # The Trainer's norm was not recorded (no `_get_grad_norm` to wrap): the gradients are final here.
        gradients = [p.grad for p in model.parameters() if p.grad is not None]
        if gradients:
            self._grad_norm = torch.nn.utils.get_total_norm(gradients)

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        trainer = self._attached_trainer()
        record = {
            "step": state.global_step,
            "losses": self._losses,
            "sample_ids": self._sample_ids,
            "grad_norm": self._grad_norm,
        }
        flags = self._flags(args, trainer, record)
        snapshot_due = state.global_step - self._snapshot["step"] >= self.snapshot_steps
        if self._deferred and not snapshot_due:
            self._pending.append({**record, "flags": _copy_to_host(flags)})
            if len(self._pending) > self.deferred_steps:
                self._resolve_pending(args, state, control, oldest_only=True)
            return control
        if self._resolve_pending(args, state, control):
            return control  # this step was undone with the bad one before it
        bad = self._check(args, state, control, trainer, record, flags.tolist())
        if not bad and snapshot_due:
            self._take_snapshot(trainer, state.global_step)
        return control

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        # The last step's flags, when a callback after this one stopped training: the model the caller saves next
        # must be a good one.
        self._resolve_pending(args, state, control)
        return control

    def _resolve_pending(self, args, state, control, oldest_only: bool = False) -> bool:
        """Read the deferred flags (all, or the oldest's), oldest first; at the first bad step recover, which undoes
        the later steps too. Whether a step was bad."""
        while self._pending:
            pending = self._pending.pop(0)
            host, event = pending["flags"]
            if event is not None:
                event.synchronize()
            if self._check(args, state, control, self._attached_trainer(), pending, host.tolist()):
                self._pending = []
                return True
            if oldest_only:
                break
        return False

    def _check(self, args, state, control, trainer, record: dict, flags: list[float]) -> bool:
        """Recover when the flags of the step in `record` say it was bad; whether it was."""
        bad_loss, bad_grad_norm = bool(flags[0]), bool(flags[1])
        if not (bad_loss or bad_grad_norm):
            return False
        event = self._describe_step(args, record, "loss" if bad_loss else "grad_norm")
        restored_step = self._snapshot["step"]
        self._restore(trainer)
        if self.recoveries >= self.max_recoveries:
            self.gave_up = True
            self._gave_up_at = state.global_step
            control.should_save = True
            control.should_training_stop = True
            # With `save_strategy="best"` an evaluation now would decide whether the checkpoint is written.
            control.should_evaluate = False
            event["action"] = "gave_up"
        else:
            self._lower_learning_rate(trainer)
            self.recoveries += 1
            event["action"] = "recovered"
        event["restored_step"] = restored_step
        event["learning_rate"] = [_number(group["lr"]) for group in trainer.optimizer.param_groups]
        self.events.append(event)
        quarantine = self._write_events(args, state)

        if args.should_log:
            values = f"losses {event['losses']}, gradient norm {event['grad_norm']}"
            if self.gave_up:
                logger.error(
                    f"NaN recovery: giving up at step {event['step']:,}, non-finite {event['reason']} ({values}) "
                    f"after {self.recoveries} recoveries (max_recoveries={self.max_recoveries}). The model, optimizer "
                    f"and scaler states were restored to step {restored_step:,}, the last known good one, and are "
                    f"being saved as checkpoint-{state.global_step} in {args.output_dir}. To go on, resume from that "
                    f"checkpoint with a lower learning rate (now {event['learning_rate']}), leave out the samples "
                    f"listed in {quarantine} (`load_quarantine`), and if training in fp16, use bf16 or fp32 instead."
                )
            else:
                logger.warning(
                    f"NaN recovery {self.recoveries}/{self.max_recoveries}: step {event['step']:,} had a "
                    f"non-finite {event['reason']} ({values}). Restored the state of step {restored_step:,}, lowered "
                    f"the learning rate by {self.lr_factor} to {event['learning_rate']}, skipped the batch and "
                    f"quarantined its samples {event['sample_ids']} in {quarantine}."
                )
        return True

    def on_epoch_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        if self._gave_up_at is not None and self._gave_up_at == state.global_step:
            # The give-up checkpoint of this step is written; an epoch-end save or evaluation would repeat it.
            control.should_save = False
            control.should_evaluate = False
        return control

    # Detection
    def _loss_scaling(self, trainer: Trainer) -> bool:
        scaler = getattr(trainer.accelerator, "scaler", None)
        return scaler is not None and scaler.is_enabled()

    def _flags(self, args: TrainingArguments, trainer: Trainer, record: dict) -> torch.Tensor:
        """On the device: whether any process had a non-finite micro-batch loss, and a non-finite gradient norm."""
        device = args.device
        flags = torch.zeros(2, device=device)
        if record["losses"]:
            losses = torch.cat([loss.reshape(-1).float().to(device) for loss in record["losses"]])
            flags[0] = (~torch.isfinite(losses)).any()
        if record["grad_norm"] is not None and not self._loss_scaling(trainer):
            grad_norm = torch.as_tensor(record["grad_norm"], dtype=torch.float32, device=device)
            flags[1] = (~torch.isfinite(grad_norm)).any()
        if args.world_size > 1 and dist.is_available() and dist.is_initialized():
            dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        return flags

    def _describe_step(self, args: TrainingArguments, record: dict, reason: str) -> dict:
        own = {
            "sample_ids": list(record["sample_ids"]),
            "losses": [_number(loss) for loss in torch.cat([x.reshape(-1) for x in record["losses"]]).tolist()]
            if record["losses"]
            else [],
        }
        # A collective: every process gets here, since they agreed on the flags.
        processes = gather_object([own]) if args.world_size > 1 else [own]
        grad_norm = record["grad_norm"]
        return {
            "step": record["step"],
            "reason": reason,
            "sample_ids": [sample_id for process in processes for sample_id in process["sample_ids"]],
            "losses": [loss for process in processes for loss in process["losses"]],
            # Under DDP the gradients, and so their norm, are the same on every process.
            "grad_norm": None if grad_norm is None else _number(float(grad_norm)),
            "time": datetime.now().astimezone().isoformat(timespec="seconds"),
        }

    # Snapshot and restore
    def _optimizers(self, trainer: Trainer) -> Iterator[tuple[str, torch.optim.Optimizer]]:
        for name in self.optimizer_attributes:
            optimizer = getattr(trainer, name, None)
            if optimizer is not None:
                yield name, optimizer

    def _scalers(self, trainer: Trainer) -> Iterator[tuple[str, torch.amp.GradScaler]]:
        scalers = [("accelerator.scaler", getattr(trainer.accelerator, "scaler", None))]
        scalers += [(name, getattr(trainer, name, None)) for name in self.scaler_attributes]
        for name, scaler in scalers:
            if scaler is not None and scaler.is_enabled():
                yield name, scaler

    def _take_snapshot(self, trainer: Trainer, step: int) -> None:
        # The previous snapshot's host buffers are refilled in place: host memory never holds two snapshots, and GPU
        # tensors go to pinned buffers asynchronously, in stream order (the snapshot is the state at this point of the
        # queue), with an event to wait for before it is read. Pageable copies made the GPU wait ~0.5 s per snapshot
        # at MMS size.
        previous = self._snapshot or {}
        self._snapshot = {
            "step": step,
            "model": _host_copy(trainer.model.state_dict(), previous.get("model")),
            "optimizers": {
                name: _host_copy(optimizer.state_dict(), previous.get("optimizers", {}).get(name))
                for name, optimizer in self._optimizers(trainer)
            },
            "scalers": {name: scaler.state_dict() for name, scaler in self._scalers(trainer)},
            "copied": _record_event(trainer.args.device),
        }

    def _restore(self, trainer: Trainer) -> None:
        snapshot = self._snapshot
        if snapshot["copied"] is not None:
            snapshot["copied"].synchronize()
        # `load_state_dict` copies into the live tensors, which DDP and the optimizers keep referring to.
        trainer.model.load_state_dict(snapshot["model"])
        for name, optimizer in self._optimizers(trainer):
            if name not in snapshot["optimizers"]:
                continue
            hyperparameters = [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
            # A copy: `Optimizer.load_state_dict` keeps tensors already on the right device, so the snapshot's own
            # tensors would become the live state and later steps would change the snapshot.
            optimizer.load_state_dict(_host_copy(snapshot["optimizers"][name]))
            # The learning rates stay those of the current step, since the schedules are not rewound.
            for group, values in zip(optimizer.param_groups, hyperparameters):
                group.update(values)
        for name, scaler in self._scalers(trainer):
            if name in snapshot["scalers"]:
                scaler.load_state_dict(snapshot["scalers"][name])
        trainer.model.zero_grad(set_to_none=True)

    def _lower_learning_rate(self, trainer: Trainer) -> None:
        factor = self.lr_factor
        for _, optimizer in self._optimizers(trainer):
            for group in optimizer.param_groups:
                group["lr"] = group["lr"] * factor
                if "initial_lr" in group:
                    group["initial_lr"] = group["initial_lr"] * factor
        for name in self.scheduler_attributes:
            scheduler = getattr(trainer, name, None)
            if scheduler is not None:
                _scale_schedule(scheduler, factor)

    # Quarantine file
    def _quarantine_path(self, args: TrainingArguments) -> str:
        return os.path.join(args.output_dir, self.quarantine_file)

    def _read_events(self, args: TrainingArguments) -> list[dict]:
        path = self._quarantine_path(args)
        if not os.path.isfile(path):
            return []
        try:
            with open(path, encoding="utf-8") as handle:
                return list(json.load(handle).get("events", []))
        except (OSError, ValueError, AttributeError) as error:
            logger.warning(f"Could not read {path} ({error}); its quarantine records will be replaced.")
            return []

    def _write_events(self, args: TrainingArguments, state: TrainerState) -> str:
        path = self._quarantine_path(args)
        if state.is_world_process_zero:
            events = self._earlier_events + self.events
            sample_ids = sorted({sample_id for event in events for sample_id in event["sample_ids"]})
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            write_json_atomically(path, {"sample_ids": sample_ids, "events": events})
        return path


def _copy_to_host(flags: torch.Tensor) -> tuple[torch.Tensor, torch.cuda.Event | None]:
    """Start copying the flags to the host without waiting; the event marks when the copy is done."""
    if flags.device.type != "cuda":
        return flags.clone(), None
    host = torch.empty(flags.shape, dtype=flags.dtype, pin_memory=True)
    host.copy_(flags, non_blocking=True)
    return host, _record_event(flags.device)


def _host_copy(value, previous=None):
    """A copy of a (nested) state dict on the host, sharing nothing with `value`.

    CUDA tensors go asynchronously into pinned buffers, reusing those of `previous` (the same structure from an earlier
    call) where shape and dtype match; wait for an event recorded after the call before reading them. Host tensors are
    copied at once.
    """
    if isinstance(value, torch.Tensor):
        if value.device.type != "cuda":
            return value.detach().to("cpu", copy=True)
        buffer = previous
        if not (isinstance(buffer, torch.Tensor) and buffer.shape == value.shape and buffer.dtype == value.dtype):
            buffer = torch.empty(value.shape, dtype=value.dtype, pin_memory=True)
        buffer.copy_(value.detach(), non_blocking=True)
        return buffer
    if isinstance(value, dict):
        earlier = previous if isinstance(previous, dict) else {}
        copied = {key: _host_copy(item, earlier.get(key)) for key, item in value.items()}
        if isinstance(value, OrderedDict):
            copied = OrderedDict(copied)
            # `Module.load_state_dict` reads the modules' state-dict versions from here.
            if hasattr(value, "_metadata"):
                copied._metadata = copy.deepcopy(value._metadata)
        return copied
    if type(value) in (list, tuple):
        earlier = previous if type(previous) is type(value) and len(previous) == len(value) else [None] * len(value)
        return type(value)(_host_copy(item, before) for item, before in zip(value, earlier))
    return copy.deepcopy(value)


def _record_event(device: torch.device) -> torch.cuda.Event | None:
    if device.type != "cuda":
        return None
    event = torch.cuda.Event()
    event.record()
    return event


def _scale_schedule(scheduler, factor: float) -> None:
    if hasattr(scheduler, "base_lrs"):
        scheduler.base_lrs = [lr * factor for lr in scheduler.base_lrs]
    if hasattr(scheduler, "_last_lr"):
        scheduler._last_lr = [lr * factor for lr in scheduler._last_lr]
    # `SequentialLR` and `ChainedScheduler` delegate to the schedules they hold.
    for child in getattr(scheduler, "_schedulers", []):
        _scale_schedule(child, factor)


def _number(value: float) -> float | str:
    # JSON has no NaN or infinity; strict readers reject Python's `NaN` token.
    value = float(value)
    return value if math.isfinite(value) else str(value)
