"""`ThroughputCallback`: training speed, data-loading stalls, GPU memory and time left, logged with the losses."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import datasets
import pyarrow.compute as pc
import torch
from transformers import Trainer, TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.trainer_utils import has_length

logger = logging.getLogger(__name__)

_GIB = 2**30


class ThroughputCallback(TrainerCallback):
    """Add speed, memory and ETA numbers to every training log, averaged over the steps since the previous log.

    Keys added to each training log (the ones with `loss`), and so to the console, the reporting integrations and
    `trainer.state.log_history`:

    - `perf/samples_per_second`: training samples per wall second, over all processes. A step counts as
      `train_batch_size × gradient_accumulation_steps × world_size` samples, the Trainer's own convention for
      `train_samples_per_second` (a short last batch of an epoch counts as full).
    - `perf/audio_seconds_per_second`: seconds of training audio per wall second, i.e. samples per second times the
      mean clip length of the train dataset (`num_frames × hop_length / sampling_rate`). The mean is over the whole
      dataset, so with length-grouped batches one window can be off while the run average is right. Absent when the
      train dataset is not a `datasets.Dataset` with a `num_frames` column.
    - `perf/step_seconds`: wall seconds per optimizer step (data wait included).
    - `perf/data_wait_share`: the share of that time the loop spent waiting for its next batches (see below).
    - `memory/gpu_allocated_gib`, `memory/gpu_peak_gib`, `memory/gpu_total_gib`: on a CUDA device only. The peak is
      `torch.cuda.max_memory_allocated`, never reset here, so it is the peak since the process started or since
      whatever other code last reset it.
    - `eta/epoch_seconds`, `eta/run_seconds`: steps left in the current epoch and in the run (`state.max_steps`)
      times a smoothed step time. Evaluation and checkpoint time is not in the step time, so it is not in the ETA
      either. `eta/epoch_seconds` is absent when the train dataloader has no length.

    How a step is timed. `on_step_begin` → `on_step_end` is the forward/backward/optimizer work of one optimizer step
    (all its micro-batches). The Trainer fetches a step's batches *before* that step's `on_step_begin`: each
    iteration of its loop calls `get_batch_samples` (`next()` on the dataloader `gradient_accumulation_steps` times)
    and only then calls `on_step_begin` for the first micro-batch. The gap from the previous `on_step_end` to the next
    `on_step_begin` is therefore the data wait, minus the bookkeeping that also happens in that gap: logging,
    evaluation and checkpointing, which end with `on_log`, `on_evaluate` and `on_save`. The gap is measured from the
    latest of those events (and from `on_epoch_begin` for the first step of an epoch, which also covers the start of
    the dataloader workers). Other callbacks' `on_log` after this one (console, TensorBoard: milliseconds) still
    land in the next window's wait. Accelerate's prepared dataloader reads one batch ahead, so a slow batch can show
    up one step early; over a window the total is right. Only `time.perf_counter` runs per step; CUDA is synchronized at logging steps
    only, where the Trainer's loss `.item()` has synchronized already, so the window ends when the GPU work does.

    Where it must sit. The Trainer calls callbacks in list order, passing every `on_log` the same `logs` dict: keys
    added here reach the callbacks after this one. The Trainer's list is `[DefaultFlowCallback, <report_to
    integrations>, <callbacks=...>, <progress or printer>]`, so a callback passed with `callbacks=[...]` (or
    `trainer.add_callback`) runs after TensorBoard and would be missing there. Use `attach(trainer)`, which moves it
    to the front. `log_history`, however, holds a copy of `logs` taken before `on_log`; the keys are added to that
    entry too (the one exception to observe-only, since the Trainer offers no earlier hook).

    The tqdm bar's postfix is left alone: the only way to it is `ProgressCallback.training_bar`, an undocumented
    attribute of another callback. The same numbers are printed with each log line.

    Example:

    ```python
    >>> from kurdish_tts.trainers.throughput import ThroughputCallback
    >>> trainer = VitsTrainer(model, args, train_dataset=train, processing_class=tokenizer)
    >>> ThroughputCallback(hop_length=model.mel_config.hop_length).attach(trainer)
    >>> trainer.train()
    ```

    Args:
        hop_length (`int`, *optional*, defaults to `256`):
            Audio samples per frame of the `num_frames` column (MMS-TTS: 256).
        sampling_rate (`int`, *optional*, defaults to `16000`):
            Sampling rate of the training audio (MMS-TTS: 16 kHz).
        smoothing (`float`, *optional*, defaults to `0.02`):
            Per-step weight of the exponential moving average of the step time behind the ETAs; a window of `n`
            steps weighs `1 - (1 - smoothing) ** n`. Small, so that one slow window (a long batch) barely moves them.
        clock (`Callable[[], float]`, *optional*, defaults to `time.perf_counter`):
            Seconds from an arbitrary origin; tests pass a simulated clock.
    """

    def __init__(
        self,
        hop_length: int = 256,
        sampling_rate: int = 16000,
        smoothing: float = 0.02,
        clock: Callable[[], float] = time.perf_counter,
    ):
        if hop_length <= 0 or sampling_rate <= 0:
            raise ValueError(f"hop_length and sampling_rate must be positive, got {hop_length} and {sampling_rate}")
        if not 0 < smoothing <= 1:
            raise ValueError(f"smoothing must be in (0, 1], got {smoothing}")
        self.hop_length = hop_length
        self.sampling_rate = sampling_rate
        self.smoothing = smoothing
        self.clock = clock
        self._attached = False
        self._reset_run()

    def attach(self, trainer: Trainer) -> ThroughputCallback:
        """Put this callback first in `trainer`'s callbacks, so that every other callback sees its keys.

        `Trainer` has no public way to order callbacks, so this edits `trainer.callback_handler.callbacks`, the list
        that `add_callback` appends to. The callback is moved if the trainer already holds it.

        Returns:
            `ThroughputCallback`: this callback.
        """
        trainer.pop_callback(self)
        trainer.callback_handler.callbacks.insert(0, self)
        self._attached = True
        return self

    def _reset_run(self) -> None:
        self._clip_seconds: float | None = None
        self._steps_per_epoch: int | None = None
        self._step_seconds_ema: float | None = None
        self._reset_window()
        # Start of the current wait for data; None until an epoch has begun.
        self._wait_start: float | None = None
        self._step_start: float | None = None
        self._step_end: float | None = None

    def _reset_window(self) -> None:
        self._steps = 0
        self._busy_seconds = 0.0
        self._wait_seconds = 0.0

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, train_dataloader=None, **kwargs
    ):
        self._reset_run()
        reporting = any(name not in (None, "none") for name in args.report_to)
        if not self._attached and reporting and state.is_world_process_zero:
            logger.warning(
                "ThroughputCallback was added with `callbacks=` or `add_callback`, so it runs after the reporting "
                f"integrations {args.report_to}, which will miss its perf/, memory/ and eta/ keys. Use "
                "`ThroughputCallback(...).attach(trainer)` instead."
            )
        if train_dataloader is None:
            return
        dataset = train_dataloader.dataset
        if isinstance(dataset, datasets.Dataset) and "num_frames" in dataset.column_names and len(dataset) > 0:
            # One column through Arrow: no waveform or mel is read, and a `select`/`shuffle` index is honoured.
            frames = dataset.select_columns(["num_frames"]).with_format("arrow")[:]["num_frames"]
            mean_frames = pc.mean(frames).as_py()
            if mean_frames is not None:
                self._clip_seconds = mean_frames * self.hop_length / self.sampling_rate
        if not has_length(train_dataloader):
            return
        # The Trainer's own count: per-process batches per epoch, a short last accumulation cycle included.
        batches = len(train_dataloader)
        accumulation = args.gradient_accumulation_steps
        self._steps_per_epoch = max(batches // accumulation + int(batches % accumulation > 0), 1)

    def on_epoch_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        # The next `iter(dataloader)` (worker start-up) and first `get_batch_samples` are data wait.
        self._wait_start = self.clock()

    def on_step_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        now = self.clock()
        if self._wait_start is not None:
            self._wait_seconds += now - self._wait_start
        self._step_start = now

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        now = self.clock()
        if self._step_start is None:
            return
        self._busy_seconds += now - self._step_start
        self._steps += 1
        self._step_start = None
        self._step_end = self._wait_start = now

    def on_evaluate(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        self._wait_start = self.clock()

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        self._wait_start = self.clock()

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, logs=None, **kwargs):
        # Evaluation logs and the end-of-training summary carry no `loss`; they only restart the wait below.
        if logs is not None and "loss" in logs and self._steps > 0:
            metrics = self._window_metrics(args, state)
            logs.update(metrics)
            # `Trainer.log` appended a copy, `{**logs, "step": global_step}`, to `log_history` just before `on_log`.
            entry = state.log_history[-1] if state.log_history else None
            if entry is not None and entry.get("step") == state.global_step and "loss" in entry:
                entry.update(metrics)
            self._reset_window()
        self._wait_start = self.clock()

    def _window_metrics(self, args: TrainingArguments, state: TrainerState) -> dict[str, float]:
        cuda = args.device.type == "cuda"
        if cuda:
            # Free here: the Trainer's loss `.item()` has just waited for the GPU. It makes the window end exact
            # without relying on that.
            torch.cuda.synchronize(args.device)
        now = self.clock()
        # From the last step's end to this log: the GPU work still queued at `on_step_end` and the Trainer's loss
        # gathering, both part of training.
        if self._step_end is not None:
            self._busy_seconds += now - self._step_end
        seconds = self._busy_seconds + self._wait_seconds
        if seconds <= 0:
            return {}
        batch_size = state.train_batch_size or args.train_batch_size
        samples = self._steps * batch_size * args.gradient_accumulation_steps * args.world_size
        step_seconds = seconds / self._steps
        metrics = {
            "perf/samples_per_second": samples / seconds,
            "perf/step_seconds": step_seconds,
            "perf/data_wait_share": self._wait_seconds / seconds,
        }
        if self._clip_seconds is not None:
            metrics["perf/audio_seconds_per_second"] = samples / seconds * self._clip_seconds
        if cuda:
            metrics["memory/gpu_allocated_gib"] = torch.cuda.memory_allocated(args.device) / _GIB
            metrics["memory/gpu_peak_gib"] = torch.cuda.max_memory_allocated(args.device) / _GIB
            metrics["memory/gpu_total_gib"] = torch.cuda.get_device_properties(args.device).total_memory / _GIB

        # Weight per step, not per window, so that the smoothing does not depend on `logging_steps`.
        weight = 1 - (1 - self.smoothing) ** self._steps
        if self._step_seconds_ema is None:
            self._step_seconds_ema = step_seconds
        else:
            self._step_seconds_ema += weight * (step_seconds - self._step_seconds_ema)
        steps_left = max(state.max_steps - state.global_step, 0)
        metrics["eta/run_seconds"] = steps_left * self._step_seconds_ema
        if self._steps_per_epoch is not None:
            # The Trainer's epoch arithmetic (`epochs_trained = global_step // num_update_steps_per_epoch`), so a
            # resumed run agrees with it; the run may end before the epoch does.
            done_in_epoch = state.global_step % self._steps_per_epoch
            epoch_left = self._steps_per_epoch - done_in_epoch if done_in_epoch else 0
            metrics["eta/epoch_seconds"] = min(epoch_left, steps_left) * self._step_seconds_ema
        return metrics
