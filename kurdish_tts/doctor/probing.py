"""Short trainer runs next to the real run: their arguments, their scratch folder, one repeated batch, clean-up.

Every probe trains the real model with the run's own `VitsTrainingArguments`, changed only where a probe must differ
(number of steps, no evaluation, checkpoints, trackers or hub pushes) and writing into a temporary folder inside
`output_dir`, so that nothing a probe does (a NaN-recovery quarantine list, a best-model folder) reaches the real
run's outputs.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import os
import shutil
import tempfile
from collections.abc import Iterator

import torch
from transformers.trainer_utils import IntervalStrategy, SaveStrategy, SchedulerType

# What no probe may do: evaluate, save, report to trackers, push, print a progress bar.
_QUIET = {
    "eval_strategy": IntervalStrategy.NO,
    "eval_on_start": False,
    "save_strategy": SaveStrategy.NO,
    "load_best_model_at_end": False,
    "report_to": [],
    "push_to_hub": False,
    "disable_tqdm": True,
    "resume_from_checkpoint": None,
}


# Overrides that hold the learning rate at its peak: a probe of a few steps tests the rate the run reaches after its
# warm-up (inside a warm-up of 1,000 steps it would test nothing).
PEAK_LEARNING_RATE = {"lr_scheduler_type": SchedulerType.CONSTANT, "warmup_steps": 0}


def probe_arguments(args, output_dir: str, **overrides):
    """A copy of the run's training arguments for a probe: quiet, into `output_dir`, with `overrides`.

    The copy is deep, so the run's own arguments stay as they were; the values are set after `__post_init__`, as the
    Trainer would see them (enums where the Trainer compares enums).
    """
    probe = copy.deepcopy(args)
    for name, value in {**_QUIET, "output_dir": output_dir, **overrides}.items():
        setattr(probe, name, value)
    return probe


def one_batch_arguments(args, output_dir: str, *, steps: int, batch_size: int, **overrides):
    """Arguments for training `steps` optimizer steps on the same batch of `batch_size` rows, in order."""
    return probe_arguments(
        args,
        output_dir,
        max_steps=steps,
        per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=1,
        train_sampling_strategy="sequential",
        dataloader_num_workers=0,
        dataloader_persistent_workers=False,
        dataloader_drop_last=False,
        **overrides,
    )


def repeated_rows(dataset, indices: list[int], times: int):
    """`dataset` rows `indices`, `times` over, as one dataset: with sequential sampling and a batch of
    `len(indices)`, every batch is the same batch."""
    return dataset.select(list(indices) * times)


@contextlib.contextmanager
def probe_directory(output_dir: str | os.PathLike) -> Iterator[str]:
    """A temporary folder inside `output_dir` (the disk the run writes to), removed afterwards."""
    os.makedirs(output_dir, exist_ok=True)
    path = tempfile.mkdtemp(prefix="doctor-probe-", dir=output_dir)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def release_memory() -> None:
    """Free what a finished probe's trainer held (optimizer states, CUDA graphs) before the next one measures."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def restore_weights(model: torch.nn.Module, weights: dict[str, torch.Tensor]) -> None:
    """Put back the weights the doctor started with, so each probe starts from the model the run would start from."""
    model.load_state_dict(weights)


def snapshot_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A CPU copy of the state dict: on an 8 GB card a second copy on the GPU could be what runs out of memory."""
    return {name: tensor.detach().to("cpu", copy=True) for name, tensor in model.state_dict().items()}
