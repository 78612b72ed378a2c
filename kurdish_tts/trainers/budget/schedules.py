"""Move the end of a running learning-rate schedule (`_retarget_schedules`), for a re-plan that changes the number of
steps."""

from __future__ import annotations

import functools

import torch
from transformers import Trainer

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
