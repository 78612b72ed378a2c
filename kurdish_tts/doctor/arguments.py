"""`DoctorArguments`: the doctor's own knobs, parsed next to every argument of `kurdish-tts train`."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DOCTOR_DIR_NAME = "doctor"


@dataclass
class DoctorArguments:
    r"""
    What the doctor runs, on top of the training arguments it checks.

    > Parameters that choose the probes

    skip_training_probe (`bool`, *optional*, defaults to `False`):
        Do not train on one repeated batch (the gradient, frozen-layer, NaN and loss checks).
    skip_throughput_probe (`bool`, *optional*, defaults to `False`):
        Do not time the real dataloader and training step, and do not size the batch (GPU memory).
    training_probe_steps (`int`, *optional*, defaults to `30`):
        Optimizer steps of the training probe, all on the same batch.
    throughput_probe_steps (`int`, *optional*, defaults to `20`):
        Training steps timed by the throughput probe.
    throughput_warmup_steps (`int`, *optional*, defaults to `5`):
        Steps run before timing starts (allocations, loader start-up, CUDA-graph captures).

    > Parameters that control the batch-size suggestion (CUDA only)

    memory_headroom (`float`, *optional*, defaults to `0.1`):
        Share of the GPU's memory the suggested batch leaves free, for fragmentation and longer batches than measured.
    verify_batch_suggestion (`bool`, *optional*, defaults to `True`):
        Run a few steps at the largest batch the memory model predicts to fit, to confirm it.

    > Parameters that control the output

    doctor_dir (`str`, *optional*):
        The doctor's own folder, for everything it writes (the data report, the split, the probes' scratch folders,
        the JSON report); `output_dir/doctor` when unset, so that a finished run's files are never touched.
    report (`str`, *optional*):
        Where to write the JSON report; `doctor_dir/doctor_report.json` when unset.
    """

    skip_training_probe: bool = field(
        default=False, metadata={"help": "Skip the short training probe on one repeated batch."}
    )
    skip_throughput_probe: bool = field(
        default=False, metadata={"help": "Skip the dataloader/step timing and the batch-size suggestion."}
    )
    training_probe_steps: int = field(default=30, metadata={"help": "Optimizer steps of the training probe."})
    throughput_probe_steps: int = field(default=20, metadata={"help": "Steps timed by the throughput probe."})
    throughput_warmup_steps: int = field(default=5, metadata={"help": "Untimed steps before the throughput probe."})
    memory_headroom: float = field(
        default=0.1, metadata={"help": "Share of GPU memory the suggested batch leaves free."}
    )
    verify_batch_suggestion: bool = field(
        default=True, metadata={"help": "Confirm the largest fitting batch with a few real steps (CUDA)."}
    )
    doctor_dir: str | None = field(
        default=None, metadata={"help": "Folder for everything the doctor writes (default: output_dir/doctor)."}
    )
    report: str | None = field(
        default=None, metadata={"help": "Path of the JSON report (default: doctor_dir/doctor_report.json)."}
    )

    def folder(self, output_dir: str | os.PathLike) -> Path:
        """Where the doctor writes, for a run whose `--output_dir` is `output_dir`."""
        return Path(self.doctor_dir) if self.doctor_dir else Path(output_dir) / DOCTOR_DIR_NAME

    def __post_init__(self):
        # The speaker-conditioning layers of a multi-speaker model start at zero and get their first gradient in the
        # second step, so one step cannot tell a dead parameter from a zero-initialized one.
        if self.training_probe_steps < 2:
            raise ValueError(f"--training_probe_steps must be at least 2, got {self.training_probe_steps}")
        if self.throughput_probe_steps < 1 or self.throughput_warmup_steps < 0:
            raise ValueError(
                "--throughput_probe_steps must be at least 1 and --throughput_warmup_steps at least 0, got "
                f"{self.throughput_probe_steps} and {self.throughput_warmup_steps}"
            )
        if not 0 <= self.memory_headroom < 1:
            raise ValueError(f"--memory_headroom must be in [0, 1), got {self.memory_headroom}")
