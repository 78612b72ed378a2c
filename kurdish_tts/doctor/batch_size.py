"""How large a batch fits on this GPU? Peak memory measured on the longest clips, extrapolated, then confirmed.

The peak memory of a training step is, to a good approximation, a fixed part (weights, gradients, optimizer states,
CUDA-graph buffers, the allocator's workspaces) plus a part proportional to the batch (activations). Both are measured
on the worst batch the data can produce, its longest clips (the collator pads every clip to the longest one), at two
batch sizes (half the run's and the run's), and the line through the two points predicts the largest batch that
leaves `headroom` of the card free. A few real steps at that size confirm it. The suggestion keeps the run's effective
batch (`per_device_train_batch_size × gradient_accumulation_steps`), which the learning rate was chosen for, with as
little accumulation as the memory allows; the largest fitting batch is reported as well.

`benchmarks/bench_train.py --fixed_lengths` measures the same quantity on synthetic clips of the same lengths; the
report gives the exact command, so a suggestion can be checked against it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from transformers import DefaultFlowCallback

from ..trainers import VitsTrainer
from .probing import one_batch_arguments, probe_directory, release_memory, repeated_rows, restore_weights
from .report import Check, Status

SECTION = "throughput"
_GIB = 2**30
# Steps per measurement: the optimizer's states appear in the first step (after its activations are freed), so the
# second step is the first to hold everything at once; a third covers a CUDA-graph replay after the capture.
_MEASURE_STEPS = 3
# Batches of at least this size are rounded down to a multiple of 8 (tensor-core friendly, fewer padded shapes).
_ROUND_FROM = 16


@dataclass
class MemoryFit:
    """Peak memory as `fixed + per_sample × batch`, fitted to measured `(batch, peak)` points.

    Args:
        peaks_gib (`dict[int, float]`): Measured peak per batch size.
        fixed_gib, per_sample_gib (`float`): The line through the two largest measured batches.
        total_gib (`float`): The card's memory.
        headroom (`float`): Share of `total_gib` to leave free.
    """

    peaks_gib: dict[int, float]
    fixed_gib: float
    per_sample_gib: float
    total_gib: float
    headroom: float

    @classmethod
    def from_peaks(cls, peaks_gib: dict[int, float], total_gib: float, headroom: float = 0.1) -> MemoryFit:
        if len(peaks_gib) < 2:
            raise ValueError(f"need peaks at two batch sizes to separate fixed and per-sample memory, got {peaks_gib}")
        (small, small_peak), (large, large_peak) = sorted(peaks_gib.items())[-2:]
        per_sample = (large_peak - small_peak) / (large - small)
        if per_sample <= 0:
            raise ValueError(f"peak memory does not grow with the batch ({peaks_gib}); cannot extrapolate")
        return cls(dict(peaks_gib), large_peak - per_sample * large, per_sample, total_gib, headroom)

    @property
    def capacity_gib(self) -> float:
        return self.total_gib * (1 - self.headroom)

    def predicted_peak_gib(self, batch_size: int) -> float:
        return self.fixed_gib + self.per_sample_gib * batch_size

    def max_batch_size(self) -> int:
        """The largest batch predicted to fit in `capacity_gib` (0 when not even one does)."""
        # The epsilon keeps a quotient that is an integer on paper (680) from landing just below it (679.99...).
        largest = math.floor((self.capacity_gib - self.fixed_gib) / self.per_sample_gib + 1e-9)
        if largest >= _ROUND_FROM:
            largest -= largest % 8
        return max(largest, 0)


def keep_effective_batch(max_batch_size: int, batch_size: int, accumulation: int) -> tuple[int, int]:
    """Per-device batch and accumulation steps that keep `batch_size × accumulation` with little accumulation and a
    per-device batch within `max_batch_size`: an exact split when one is near, else the nearest larger effective
    batch."""
    effective = batch_size * accumulation
    if max_batch_size < 1:
        raise ValueError("nothing fits: max_batch_size is 0")
    if max_batch_size >= effective:
        return effective, 1
    least = math.ceil(effective / max_batch_size)
    # An exact divisor only within twice the least accumulation: a prime effective batch must not end up as 1 × 31.
    for steps in range(least, min(2 * least, effective) + 1):
        if effective % steps == 0 and effective // steps <= max_batch_size:
            return effective // steps, steps
    return math.ceil(effective / least), least


@dataclass
class BatchSizeResult:
    """The measurements and the suggestion; `checks()` gives the report's row.

    Args:
        batch_size, accumulation (`int`): The run's `per_device_train_batch_size` and `gradient_accumulation_steps`.
        peaks_gib (`dict[int, float | None]`): Measured peak per batch size on the longest clips (`None`: out of
            memory).
        total_gib, headroom (`float`): The card's memory and the share to leave free.
        longest_frames, longest_input_ids (`int`): Padded lengths of the measured batches.
        fit (`MemoryFit`, *optional*): The line, when two batch sizes fit.
        max_batch_size (`int`, *optional*): Largest batch that fits (after verification).
        verified_peaks_gib (`dict[int, float | None]`): Peaks measured at the predicted maximum (and below it, when
            it did not fit).
        suggested_batch_size, suggested_accumulation (`int`, *optional*): Keep the effective batch.
        benchmark_command (`str`): The `bench_train.py` line that measures the same batch sizes and lengths.
        error (`str`, *optional*): Why there is no suggestion.
    """

    batch_size: int
    accumulation: int
    peaks_gib: dict[int, float | None] = field(default_factory=dict)
    total_gib: float = 0.0
    headroom: float = 0.1
    longest_frames: int = 0
    longest_input_ids: int = 0
    fit: MemoryFit | None = None
    max_batch_size: int | None = None
    verified_peaks_gib: dict[int, float | None] = field(default_factory=dict)
    suggested_batch_size: int | None = None
    suggested_accumulation: int | None = None
    benchmark_command: str = ""
    error: str | None = None

    def to_dict(self) -> dict:
        """The batch suggestion under fixed keys (the report's `measurements.batch_suggestion`)."""
        fit = self.fit
        return {
            "current_batch_size": self.batch_size,
            "current_accumulation": self.accumulation,
            "effective_batch_size": self.batch_size * self.accumulation,
            "measured_peaks_gib": self.peaks_gib,
            "longest_frames": self.longest_frames,
            "longest_input_ids": self.longest_input_ids,
            "total_gib": self.total_gib,
            "headroom": self.headroom,
            "fixed_gib": None if fit is None else fit.fixed_gib,
            "per_sample_gib": None if fit is None else fit.per_sample_gib,
            "max_batch_size": self.max_batch_size,
            "predicted_peak_gib_at_max": None
            if fit is None or not self.max_batch_size
            else fit.predicted_peak_gib(self.max_batch_size),
            "verified_peaks_gib": self.verified_peaks_gib,
            "suggested_batch_size": self.suggested_batch_size,
            "suggested_accumulation": self.suggested_accumulation,
            "predicted_peak_gib_at_suggested": None
            if fit is None or not self.suggested_batch_size
            else fit.predicted_peak_gib(self.suggested_batch_size),
            "benchmark_command": self.benchmark_command,
            "error": self.error,
        }

    def checks(self) -> list[Check]:
        name = "batch size"
        details = self.to_dict()
        effective = self.batch_size * self.accumulation
        current = f"--per_device_train_batch_size {self.batch_size} --gradient_accumulation_steps {self.accumulation}"
        measured = ", ".join(
            f"batch {size}: " + ("out of memory" if peak is None else f"{peak:.2f} GiB")
            for size, peak in sorted(self.peaks_gib.items())
        )
        where = f"on the longest clips ({self.longest_frames} frames, {self.longest_input_ids} ids), {self.total_gib:.1f} GiB card"
        if self.fit is None or not self.max_batch_size:
            status = Status.FAIL if self.peaks_gib.get(self.batch_size, 0.0) is None else Status.WARN
            return [
                Check(
                    SECTION,
                    name,
                    status,
                    f"peak memory {where}: {measured or 'not measured'}; {self.error or 'no suggestion'}",
                    "a smaller --per_device_train_batch_size with more --gradient_accumulation_steps, or a shorter "
                    "--max_duration"
                    if status == Status.FAIL
                    else "",
                    details,
                )
            ]
        fit = self.fit
        evidence = (
            f"peak memory {where}: {measured}; so {fit.fixed_gib:.2f} GiB + {fit.per_sample_gib:.3f} GiB per sample; "
            f"up to batch {self.max_batch_size} fits with {self.headroom:.0%} left free "
            f"({fit.predicted_peak_gib(self.max_batch_size):.2f} GiB predicted"
        )
        verified = self.verified_peaks_gib.get(self.max_batch_size)
        if verified is None:
            verified = self.peaks_gib.get(self.max_batch_size)
        evidence += f", {verified:.2f} GiB measured)" if verified is not None else ", not run)"
        suggestion = (
            f"--per_device_train_batch_size {self.suggested_batch_size} "
            f"--gradient_accumulation_steps {self.suggested_accumulation}"
        )
        larger = (
            f"; a larger effective batch (up to {self.max_batch_size}) trains more samples/s but needs its learning "
            "rate re-tuned"
            if self.max_batch_size > effective
            else ""
        )
        current_peak = self.peaks_gib.get(self.batch_size)
        if current_peak is None or self.max_batch_size < self.batch_size:
            return [
                Check(
                    SECTION,
                    name,
                    Status.FAIL,
                    f"{evidence}: the run's batch {self.batch_size} does not fit its longest clips",
                    f"{suggestion} (the same effective batch of {effective})",
                    details,
                )
            ]
        if (self.suggested_batch_size, self.suggested_accumulation) != (self.batch_size, self.accumulation):
            return [
                Check(
                    SECTION,
                    name,
                    Status.WARN,
                    f"{evidence}: the effective batch of {effective} needs less accumulation than {current}{larger}",
                    f"{suggestion} (same effective batch, fewer optimizer micro-steps)",
                    details,
                )
            ]
        return [Check(SECTION, name, Status.OK, f"{evidence}: the run's batch fits{larger}", details=details)]


def longest_rows(train_dataset, count: int) -> list[int]:
    """Indices of the `count` clips with the most frames (repeated when the dataset has fewer)."""
    frames = train_dataset.select_columns(["num_frames"]).with_format("arrow")[:]["num_frames"].to_numpy()
    order = np.argsort(-frames, kind="stable")
    return [int(order[i % len(order)]) for i in range(count)]


def measure_peak_memory(model, args, train_dataset, tokenizer, speaker_to_id, batch_size: int) -> float | None:
    """Peak GPU memory (GiB) of a few training steps on the `batch_size` longest clips; `None` when out of memory."""
    rows = longest_rows(train_dataset, batch_size)
    trainer = None
    with probe_directory(args.output_dir) as scratch:
        probe_args = one_batch_arguments(
            args, scratch, steps=_MEASURE_STEPS, batch_size=batch_size, logging_steps=10**9
        )
        try:
            trainer = VitsTrainer(
                model,
                probe_args,
                train_dataset=repeated_rows(train_dataset, rows, _MEASURE_STEPS),
                processing_class=tokenizer,
                speaker_to_id=speaker_to_id,
            )
            trainer.callback_handler.callbacks = [DefaultFlowCallback()]
            release_memory()
            torch.cuda.reset_peak_memory_stats(args.device)
            trainer.train()
            torch.cuda.synchronize(args.device)
            return torch.cuda.max_memory_allocated(args.device) / _GIB
        except torch.OutOfMemoryError:
            return None
        except RuntimeError as error:
            # Out of memory inside cuBLAS/cuDNN or a graph capture surfaces as a plain RuntimeError.
            if "out of memory" in str(error).lower() or "ALLOC_FAILED" in str(error):
                return None
            raise
        finally:
            model.zero_grad(set_to_none=True)
            del trainer
            release_memory()


def run_batch_size_probe(
    model,
    args,
    train_dataset,
    tokenizer,
    speaker_to_id,
    weights: dict[str, torch.Tensor],
    *,
    headroom: float = 0.1,
    verify: bool = True,
    model_size: str | None = None,
) -> BatchSizeResult:
    """Measure, fit, suggest and (optionally) confirm a batch size on the GPU of `args.device`.

    Args:
        model (`VitsForTraining`): The run's model; `weights` are restored after every measurement.
        args (`VitsTrainingArguments`): The run's arguments (copied).
        train_dataset (`datasets.Dataset`): The run's training clips.
        tokenizer, speaker_to_id: As the run has them.
        weights (`dict[str, torch.Tensor]`): The model's starting weights (`probing.snapshot_weights`).
        headroom (`float`, *optional*, defaults to `0.1`): Share of the card to leave free.
        verify (`bool`, *optional*, defaults to `True`): Confirm the predicted maximum with real steps.
        model_size (`str`, *optional*): `--model_size`, for the benchmark command (`mms` otherwise).
    """
    batch_size, accumulation = args.per_device_train_batch_size, args.gradient_accumulation_steps
    result = BatchSizeResult(batch_size=batch_size, accumulation=accumulation, headroom=headroom)
    result.total_gib = torch.cuda.get_device_properties(args.device).total_memory / _GIB

    def measure(size: int) -> float | None:
        peak = measure_peak_memory(model, args, train_dataset, tokenizer, speaker_to_id, size)
        restore_weights(model, weights)
        return peak

    # Two points: half the run's batch and the run's; when the run's does not fit, smaller ones.
    large = max(batch_size, 2)
    for size in (max(large // 2, 1), large):
        result.peaks_gib[size] = measure(size)
    size = large // 4
    while sum(peak is not None for peak in result.peaks_gib.values()) < 2 and size >= 1:
        result.peaks_gib[size] = measure(size)
        size //= 2
    fitting = {size: peak for size, peak in result.peaks_gib.items() if peak is not None}
    try:
        result.fit = MemoryFit.from_peaks(fitting, result.total_gib, headroom)
    except ValueError as error:
        result.error = str(error)
        _measured_lengths(train_dataset, max(result.peaks_gib), result)
        result.benchmark_command = _benchmark_command(args, [batch_size], result, model_size)
        return result
    maximum = result.fit.max_batch_size()
    if maximum < 1:
        result.error = f"even one sample is predicted to need more than {result.fit.capacity_gib:.1f} GiB"
        _measured_lengths(train_dataset, max(result.peaks_gib), result)
        return result
    if verify and maximum > max(fitting):
        maximum = _confirm(maximum, measure, result, fallback=max(fitting))
    result.max_batch_size = maximum
    result.suggested_batch_size, result.suggested_accumulation = keep_effective_batch(
        maximum, batch_size, accumulation
    )
    sizes = sorted({batch_size, result.suggested_batch_size, maximum})
    _measured_lengths(train_dataset, max(sizes), result)
    result.benchmark_command = _benchmark_command(args, sizes, result, model_size)
    return result


def _measured_lengths(train_dataset, batch_size: int, result: BatchSizeResult) -> None:
    """The padded lengths of the largest measured batch (its longest clip's frames, its longest text)."""
    rows = longest_rows(train_dataset, batch_size)
    columns = train_dataset.select(rows).select_columns(["num_frames", "input_length"]).with_format("arrow")[:]
    result.longest_frames = int(max(columns["num_frames"].to_numpy()))
    result.longest_input_ids = int(max(columns["input_length"].to_numpy()))


def _confirm(maximum: int, measure, result: BatchSizeResult, *, fallback: int, attempts: int = 3) -> int:
    """Run real steps at the predicted maximum, the point extrapolated furthest; 10 % smaller each time it does not
    fit (or leaves less than the headroom free). Falls back to the largest measured batch that fit."""
    for _ in range(attempts):
        peak = measure(maximum)
        result.verified_peaks_gib[maximum] = peak
        if peak is not None and peak <= result.fit.capacity_gib:
            return maximum
        smaller = int(maximum * 0.9)
        maximum = smaller - smaller % 8 if smaller >= _ROUND_FROM else smaller
        if maximum <= fallback:
            break
    return fallback


def _benchmark_command(args, sizes: list[int], result: BatchSizeResult, model_size: str | None) -> str:
    """`bench_train.py` on synthetic clips of exactly the measured lengths: its peak GiB column checks the fit."""
    parts = [
        "python benchmarks/bench_train.py",
        f"--size {model_size or 'mms'}",
        "--batch_sizes " + " ".join(str(size) for size in sizes),
        f"--precisions {'fp16' if args.fp16 else 'bf16'}",
        f"--frames {result.longest_frames}",
        f"--text_length {result.longest_input_ids}",
        "--fixed_lengths --skip_breakdown --steps 10 --warmup 3 --dataset_batches 2",
        f"--workers {args.dataloader_num_workers}",
    ]
    if args.cuda_graphs:
        parts.append("--cuda_graphs")
    if args.pad_to_multiple_of:
        parts.append(f"--pad_to_multiple_of {args.pad_to_multiple_of}")
    return " ".join(parts)
