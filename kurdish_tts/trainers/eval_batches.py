"""A start-up check that evaluation will see at least one batch.

`--dataloader_drop_last` (which CUDA graphs want: every training batch the same shape) applies to the evaluation
loader too, so a held-out set smaller than one evaluation batch yields no batch at all. The evaluation then reports no
`eval_loss/mel`, and the run dies at its first evaluation, minutes or hours in. Checked when the trainer is built.
"""

from __future__ import annotations

from collections.abc import Sized

from transformers import TrainingArguments

from ..errors import UsageError


def require_an_eval_batch(eval_dataset, args: TrainingArguments) -> None:
    """Raises `UsageError` when `args.dataloader_drop_last` would leave `eval_dataset` without a single batch."""
    if eval_dataset is None or not args.dataloader_drop_last or not isinstance(eval_dataset, Sized):
        return
    processes = max(1, args.world_size)
    needed = args.per_device_eval_batch_size * processes
    if len(eval_dataset) >= needed:
        return
    per_process = f" x {processes} processes" if processes > 1 else ""
    raise UsageError(
        f"the evaluation set has {len(eval_dataset)} clips, fewer than one evaluation batch "
        f"(--per_device_eval_batch_size {args.per_device_eval_batch_size}{per_process}), and --dataloader_drop_last "
        f"drops incomplete batches, so no evaluation would see any audio: pass --per_device_eval_batch_size "
        f"{max(1, len(eval_dataset) // processes)}, hold out more clips (--eval_samples; at most a tenth of the "
        f"corpus is held out), or --dataloader_drop_last false"
    )
