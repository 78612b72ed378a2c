"""Will this machine train it well? Samples per second on the real dataloader, data wait, GPU busy share and memory.

`run_throughput_probe` runs the trainer the training script builds (its dataloader, workers, sampler, collator,
precision, CUDA graphs and callbacks, NaN recovery included, since they all cost time) for `warmup + steps` steps,
and reads the numbers `ThroughputCallback` logs for the timed steps: samples per second, the share of wall time spent
waiting for batches and, on a GPU, the peak memory. On a GPU it adds CUDA-event timing of each step:

- `gpu_busy_share`: the share of the timed window in which the GPU was inside a training step (between the events
  recorded at its begin and end). What is left is the GPU idling between steps while the host fetched data, logged or
  synchronized. Idle time *inside* a step (the GPU waiting for the CPU to launch kernels) counts as busy here; the
  next number shows it.
- `gpu_waiting_share`: the share of timed steps at whose start the GPU had already finished everything queued before,
  i.e. waited for the host. A GPU-bound run keeps a queue of work, so this is near 0; a launch-bound eager step or a
  starving dataloader makes it near 1.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field

import torch
from transformers import PrinterCallback, ProgressCallback, TrainerCallback

from .report import Check, Status

SECTION = "throughput"
_GIB = 2**30
# A data wait above this share of the step is time the GPU could have trained.
MAX_DATA_WAIT_SHARE = 0.05
MIN_GPU_BUSY_SHARE = 0.8
MAX_GPU_WAITING_SHARE = 0.5
MIN_MEMORY_HEADROOM = 0.1


@dataclass
class ThroughputResult:
    """What the throughput probe measured (`None` where it does not apply or was not reached).

    Args:
        device (`str`): `cuda` or `cpu`.
        timed_steps (`int`): Steps in the timed window.
        train_batch_size (`int`): Samples per optimizer step (batch × accumulation × processes).
        samples_per_second, seconds_per_step, audio_seconds_per_second, data_wait_share (`float`): From
            `ThroughputCallback` over the timed steps.
        gpu_busy_share, gpu_waiting_share (`float`): See the module docstring.
        peak_memory_gib, total_memory_gib (`float`): `torch.cuda.max_memory_allocated` during the probe, and the
            card's memory.
        workers, cpu_count, processes (`int`): Dataloader workers per process, usable cores, training processes.
        log (`dict`): The timed window's training log (`perf/*`, `memory/*`, `cuda_graphs/*`, losses).
        error (`str`, *optional*): The exception that stopped the probe.
    """

    device: str
    timed_steps: int = 0
    train_batch_size: int = 0
    samples_per_second: float | None = None
    seconds_per_step: float | None = None
    audio_seconds_per_second: float | None = None
    data_wait_share: float | None = None
    gpu_busy_share: float | None = None
    gpu_waiting_share: float | None = None
    peak_memory_gib: float | None = None
    total_memory_gib: float | None = None
    workers: int = 0
    cpu_count: int = 1
    processes: int = 1
    log: dict = field(default_factory=dict)
    error: str | None = None

    @property
    def memory_headroom(self) -> float | None:
        if self.peak_memory_gib is None or not self.total_memory_gib:
            return None
        return 1 - self.peak_memory_gib / self.total_memory_gib

    def measurements(self) -> dict:
        """The headline numbers, under the keys of `DoctorReport.measurements`."""
        return {
            "device": self.device,
            "samples_per_second": self.samples_per_second,
            "seconds_per_step": self.seconds_per_step,
            "train_batch_size": self.train_batch_size,
            "audio_seconds_per_second": self.audio_seconds_per_second,
            "data_wait_share": self.data_wait_share,
            "gpu_busy_share": self.gpu_busy_share,
            "gpu_waiting_share": self.gpu_waiting_share,
            "peak_memory_gib": self.peak_memory_gib,
            "total_memory_gib": self.total_memory_gib,
            "memory_headroom": self.memory_headroom,
            "timed_steps": self.timed_steps,
        }


class _ThroughputWindow(TrainerCallback):
    """Asks for a log at the end of the warm-up and of the last step (so `ThroughputCallback`'s window is exactly the
    timed steps), keeps that log, and times each timed step with CUDA events."""

    def __init__(self, warmup_steps: int, total_steps: int, cuda: bool):
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps
        self.cuda = cuda
        # (global step, log) of the logs that carry throughput keys.
        self.logs: list[tuple[int, dict]] = []
        self.window_start = None
        self.spans: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []
        self.waiting = 0
        self._begin = None
        self._last_end = None

    def _event(self):
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def _timing(self, state) -> bool:
        # `global_step` counts finished steps: during step n (1-based) it is n - 1.
        return self.cuda and state.global_step >= self.warmup_steps

    def on_step_begin(self, args, state, control, **kwargs):
        if not self._timing(state):
            return
        if self.window_start is None:
            self.window_start = self._event()
        elif self._last_end is not None and self._last_end.query():
            # Everything queued up to the previous step's end is done: the GPU is waiting for this step's work.
            self.waiting += 1
        self._begin = self._event()

    def on_step_end(self, args, state, control, **kwargs):
        if self.cuda and self._begin is not None:
            self._last_end = self._event()
            self.spans.append((self._begin, self._last_end))
            self._begin = None
        if state.global_step in (self.warmup_steps, self.total_steps):
            control.should_log = True
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "perf/samples_per_second" in logs:
            self.logs.append((state.global_step, dict(logs)))

    def timed_log(self) -> dict | None:
        """The log that closes the timed window: the one at the last step (whose window began after the warm-up)."""
        for step, log in reversed(self.logs):
            if step == self.total_steps:
                return log
        return None

    def gpu_shares(self) -> tuple[float | None, float | None]:
        if not self.spans or self.window_start is None:
            return None, None
        torch.cuda.synchronize()
        busy = sum(begin.elapsed_time(end) for begin, end in self.spans)
        window = self.window_start.elapsed_time(self.spans[-1][1])
        steps_after_first = max(len(self.spans) - 1, 1)
        return (min(busy / window, 1.0) if window > 0 else None), self.waiting / steps_after_first


def run_throughput_probe(trainer, *, warmup_steps: int = 5, steps: int = 20) -> ThroughputResult:
    """Train `trainer` for `warmup_steps + steps` steps and measure the last `steps`.

    Args:
        trainer (`VitsTrainer`): Built as the training script builds it (`VitsRun.build_trainer`), with
            arguments from `probing.probe_arguments` (no evaluation, checkpoints or trackers; `max_steps` =
            `warmup_steps + steps`; a scratch `output_dir`). Its model's weights change.
        warmup_steps (`int`, *optional*, defaults to `5`): Untimed steps first.
        steps (`int`, *optional*, defaults to `20`): Timed steps.

    Returns:
        `ThroughputResult`
    """
    args = trainer.args
    cuda = args.device.type == "cuda"
    result = ThroughputResult(
        device=args.device.type,
        train_batch_size=args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size,
        workers=args.dataloader_num_workers,
        cpu_count=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1),
        processes=args.world_size,
    )
    window = _ThroughputWindow(warmup_steps, warmup_steps + steps, cuda)
    # The console printer would print the probe's two logs as if they were the run's.
    for callback in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(callback)
    trainer.add_callback(window)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(args.device)
        result.total_memory_gib = torch.cuda.get_device_properties(args.device).total_memory / _GIB
    started = time.perf_counter()
    try:
        trainer.train()
    except Exception as error:  # noqa: BLE001 - reported as a finding (e.g. out of memory on the real batches)
        result.error = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    if cuda:
        result.peak_memory_gib = torch.cuda.max_memory_allocated(args.device) / _GIB
        result.gpu_busy_share, result.gpu_waiting_share = window.gpu_shares()
    log = window.timed_log()
    if log is not None:
        result.log = log
        result.timed_steps = steps
        result.samples_per_second = log.get("perf/samples_per_second")
        result.seconds_per_step = log.get("perf/step_seconds")
        result.audio_seconds_per_second = log.get("perf/audio_seconds_per_second")
        result.data_wait_share = log.get("perf/data_wait_share")
    if result.error is None and trainer.state.global_step < warmup_steps + steps:
        result.error = (
            f"training stopped after {trainer.state.global_step} of {warmup_steps + steps} steps "
            f"({time.perf_counter() - started:.0f} s), e.g. by NaN recovery giving up"
        )
    return result


def suggest_workers(
    data_wait_share: float | None, workers: int, cpu_count: int, processes: int = 1, on_gpu: bool = False
) -> tuple[int, str]:
    """The dataloader workers to use, and why.

    More workers when the step waits for data and cores are free; fewer when the workers outnumber the spare cores;
    otherwise the current number. One core per process stays with the training loop.
    """
    spare = max(cpu_count // max(processes, 1) - 1, 0)
    if data_wait_share is not None and data_wait_share >= MAX_DATA_WAIT_SHARE:
        more = min(max(2 * workers, workers + 2), spare)
        if more > workers:
            return more, f"the step waits for data {data_wait_share:.0%} of the time and {spare} cores are spare"
        return workers, f"the step waits for data {data_wait_share:.0%} of the time with every spare core loading"
    if workers > spare:
        return spare, f"{workers} workers on {spare} spare cores compete with the training process"
    if on_gpu and workers == 0 and spare > 0 and data_wait_share is None:
        return min(4, spare), "the training process would collate every batch itself"
    return workers, "enough: the step rarely waits for data"


def throughput_checks(result: ThroughputResult, *, num_train_samples: int, target_hours: float | None) -> list[Check]:
    """The report's rows for a throughput measurement: speed, data loading, GPU busy share, GPU memory."""
    if result.samples_per_second is None:
        return [
            Check(
                SECTION,
                "training speed",
                Status.FAIL,
                f"the probe measured nothing: {result.error or 'no timed log'}",
                "fix the error above (`kurdish-tts train` would meet it too)",
            )
        ]
    return [
        _speed(result, num_train_samples, target_hours),
        _data_loading(result),
        _gpu_busy(result),
        _gpu_memory(result),
    ]


def _speed(result: ThroughputResult, num_train_samples: int, target_hours: float | None) -> Check:
    evidence = (
        f"{result.samples_per_second:.1f} samples/s ({result.seconds_per_step:.3f} s per step of "
        f"{result.train_batch_size} samples, {result.timed_steps} timed steps on the {result.device})"
    )
    if result.audio_seconds_per_second:
        evidence += f", {result.audio_seconds_per_second:.0f} s of audio per second"
    graphs = {
        key.removeprefix("cuda_graphs/"): value for key, value in result.log.items() if key.startswith("cuda_graphs/")
    }
    if graphs:
        evidence += "; CUDA graphs: " + ", ".join(f"{key} {value:g}" for key, value in graphs.items())
    details = result.measurements()
    if result.error:
        return Check(SECTION, "training speed", Status.WARN, f"{evidence}; then {result.error}", "", details)
    if target_hours and num_train_samples:
        epochs = target_hours * 3600 * result.samples_per_second / num_train_samples
        details["epochs_in_budget"] = epochs
        evidence += f"; about {epochs:.1f} epochs of {num_train_samples} clips fit in {target_hours:g} h"
        if epochs < 1:
            return Check(
                SECTION,
                "training speed",
                Status.WARN,
                evidence + ": the run ends before it has seen every clip once",
                "more time (--target_hours), fewer clips (--max_duration, --speaker), or a faster setup (below)",
                details,
            )
    return Check(SECTION, "training speed", Status.OK, evidence, details=details)


def _data_loading(result: ThroughputResult) -> Check:
    share = result.data_wait_share
    workers, reason = suggest_workers(
        share, result.workers, result.cpu_count, result.processes, result.device == "cuda"
    )
    details = {"data_wait_share": share, "workers": result.workers, "suggested_workers": workers, "why": reason}
    evidence = (
        f"waits for batches {share:.1%} of the time with {result.workers} workers on {result.cpu_count} cores"
        if share is not None
        else f"data wait not measured; {result.workers} workers on {result.cpu_count} cores"
    )
    if workers != result.workers or (share is not None and share >= MAX_DATA_WAIT_SHARE):
        fix = (
            f"--dataloader_num_workers {workers}"
            if workers != result.workers
            else ("the workers are the limit: read the cache from a local disk, or cut --max_duration")
        )
        return Check(SECTION, "data loading", Status.WARN, f"{evidence}: {reason}", fix, details)
    return Check(SECTION, "data loading", Status.OK, f"{evidence}: {reason}", details=details)


def _gpu_busy(result: ThroughputResult) -> Check:
    name = "GPU busy share"
    if result.device != "cuda":
        return Check(SECTION, name, Status.OK, "not applicable: the run trains on the CPU")
    busy, waiting = result.gpu_busy_share, result.gpu_waiting_share
    if busy is None:
        return Check(SECTION, name, Status.WARN, "not measured (no timed step)", "")
    evidence = (
        f"the GPU was inside a training step {busy:.0%} of the time; it had run out of work at the start of "
        f"{waiting:.0%} of the steps"
    )
    details = {"gpu_busy_share": busy, "gpu_waiting_share": waiting}
    if busy < MIN_GPU_BUSY_SHARE or waiting > MAX_GPU_WAITING_SHARE:
        if result.data_wait_share is not None and result.data_wait_share >= MAX_DATA_WAIT_SHARE:
            fix = "feed it faster: more dataloader workers (see data loading)"
        elif not any(key.startswith("cuda_graphs/") for key in result.log):
            fix = "--cuda_graphs true (single GPU): the eager step is bound by launching kernels, not by the GPU"
        else:
            fix = "a larger --per_device_train_batch_size gives the GPU more work per launch (see batch size)"
        return Check(SECTION, name, Status.WARN, evidence + ": the host, not the GPU, sets the pace", fix, details)
    return Check(SECTION, name, Status.OK, evidence, details=details)


def _gpu_memory(result: ThroughputResult) -> Check:
    name = "GPU memory"
    if result.device != "cuda":
        return Check(SECTION, name, Status.OK, "not applicable: the run trains on the CPU")
    headroom = result.memory_headroom
    evidence = (
        f"peak {result.peak_memory_gib:.2f} GiB allocated of {result.total_memory_gib:.1f} GiB"
        f" ({headroom:.0%} free) on the real batches of the probe"
    )
    details = {"peak_memory_gib": result.peak_memory_gib, "total_memory_gib": result.total_memory_gib}
    if headroom is not None and headroom < MIN_MEMORY_HEADROOM:
        return Check(
            SECTION,
            name,
            Status.WARN,
            evidence + ": the allocator's fragmentation or a longer batch can run out of memory",
            "a smaller --per_device_train_batch_size with more --gradient_accumulation_steps (see batch size)",
            details,
        )
    if headroom is not None and not math.isfinite(headroom):
        return Check(SECTION, name, Status.WARN, evidence, "", details)
    return Check(SECTION, name, Status.OK, evidence, details=details)
