"""What `VitsTrainer` and `XttsTrainer` share about their losses: each term, collected per batch in `_metrics[mode]`,
is averaged over the run's processes when logged, and the Trainer is told that the loss is a per-batch mean."""

from __future__ import annotations

from collections import defaultdict

import torch
from transformers import Trainer


def track_loss_terms(trainer: Trainer) -> None:
    """Set up `trainer`, after `Trainer.__init__`, for a `compute_loss` that returns a per-batch mean of its terms."""
    trainer._metrics = {"train": defaultdict(list), "eval": defaultdict(list)}
    trainer.can_return_loss = True
    trainer.label_names = []
    trainer.model_accepts_loss_kwargs = False
    trainer.loss_is_scaled_for_ga = False


def mean_loss_terms(trainer: Trainer, mode: str) -> dict[str, float]:
    """The mean of each term collected in `trainer._metrics[mode]` since the last log, over the run's processes;
    evaluation keys carry the `eval_` prefix."""
    keys = sorted(trainer._metrics[mode])
    means = [torch.stack(trainer._metrics[mode][key]).float().mean() for key in keys]
    if means and trainer.args.world_size > 1:
        # Each process averaged its own batches; every process calls `log` at the same points with the same keys,
        # so one all-reduce gives the run's averages (which best-model selection compares).
        means = trainer.accelerator.reduce(torch.stack(means), reduction="mean").unbind()
    metrics = {key: value.item() for key, value in zip(keys, means)}
    if mode == "eval":
        metrics = {f"eval_{key}": value for key, value in metrics.items()}
    return metrics
