"""Is the recipe in the range that trains VITS stably? Learning rates, warm-up, clipping, loss weights, precision.

The ranges differ between fine-tuning a pretrained generator (the MMS checkpoints) and training from random weights,
and a discriminator that starts from random weights (`--discriminator none`, or no pretrained one for the base model)
changes what is safe early in the run. They are what the VITS paper and its fine-tuning practice use, not hard limits:
`WARN` outside them, `FAIL` only where a setting wastes the run (a learning rate an order of magnitude above the
stable range, a loss term switched off that inference needs, weights stored in half precision).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .report import Check, Status

SECTION = "recipe"


@dataclass(frozen=True)
class LearningRateRange:
    """Peak learning rates: `[low, high]` is stable, beyond `fail_above` training diverges (NaN) within steps."""

    low: float
    high: float
    fail_above: float
    typical: str


# VITS trains from scratch at 2e-4 (AdamW, betas 0.8/0.99); fine-tuning MMS uses a tenth of that for the generator
# (the recipes, and finetune-hf-vits).
FINE_TUNING = LearningRateRange(low=5e-6, high=5e-5, fail_above=1e-3, typical="2e-5, as the MMS recipes")
FROM_SCRATCH = LearningRateRange(low=5e-5, high=5e-4, fail_above=2e-3, typical="2e-4, as VITS")
# A fresh discriminator slower than this falls behind the generator it judges.
MIN_FRESH_DISCRIMINATOR_LR = 1e-4
# VITS weighs the mel L1 term 45; far above it the adversarial terms become noise next to it, and with a random
# discriminator the combined gradients are reported to blow up.
VITS_MEL_WEIGHT = 45.0
HIGH_MEL_WEIGHT = 100.0
MAX_WARMUP_SHARE = 0.2


def check_recipe(
    args,
    *,
    fine_tuning: bool,
    fresh_discriminator: bool,
    parameter_dtypes: set[torch.dtype] | None = None,
) -> list[Check]:
    """Judge the training arguments (`VitsTrainingArguments`) against known-stable ranges.

    Args:
        args (`VitsTrainingArguments`): The run's training arguments.
        fine_tuning (`bool`): The generator starts from a pretrained model (not `--model_size`).
        fresh_discriminator (`bool`): The discriminator starts from random weights (`--discriminator none`, a random
            init, or a base model with no pretrained discriminator: see `discriminator_source.py`).
        parameter_dtypes (`set[torch.dtype]`, *optional*): The dtypes of the model's weights, when it is built.

    Returns:
        `list[Check]`: learning rate, discriminator learning rate, warm-up, clipping, loss weights, weight precision.
    """
    mode = "fine-tuning" if fine_tuning else "from scratch"
    checks = [
        _learning_rate(args.learning_rate, FINE_TUNING if fine_tuning else FROM_SCRATCH, mode),
        _discriminator_learning_rate(args, fine_tuning, fresh_discriminator),
        _warmup(args, fine_tuning, fresh_discriminator),
        _clipping(args),
        _loss_weights(args, fine_tuning, fresh_discriminator),
    ]
    if parameter_dtypes is not None:
        checks.append(check_weight_precision(args, parameter_dtypes))
    return checks


def _learning_rate(learning_rate: float, stable: LearningRateRange, mode: str) -> Check:
    evidence = f"{learning_rate:g} {mode} (stable: {stable.low:g} to {stable.high:g}; typical {stable.typical})"
    details = {"learning_rate": learning_rate, "mode": mode, "stable": [stable.low, stable.high]}
    if not learning_rate > 0:
        return Check(SECTION, "learning rate", Status.FAIL, f"{evidence}: nothing will train", "--learning_rate 2e-5")
    if learning_rate > stable.fail_above:
        return Check(
            SECTION,
            "learning rate",
            Status.FAIL,
            f"{evidence}: more than {stable.fail_above:g}, where VITS training diverges to NaN within a few steps",
            f"--learning_rate {stable.high:g} or lower",
            details,
        )
    if learning_rate > stable.high:
        return Check(
            SECTION,
            "learning rate",
            Status.WARN,
            f"{evidence}: above the stable range"
            + (", so the pretrained voice is overwritten quickly" if mode == "fine-tuning" else ""),
            f"--learning_rate {stable.high:g}",
            details,
        )
    if learning_rate < stable.low:
        return Check(
            SECTION,
            "learning rate",
            Status.WARN,
            f"{evidence}: below the stable range, so the loss falls slowly",
            f"--learning_rate {stable.low:g}",
            details,
        )
    return Check(SECTION, "learning rate", Status.OK, evidence, details=details)


def _discriminator_learning_rate(args, fine_tuning: bool, fresh_discriminator: bool) -> Check:
    name = "discriminator learning rate"
    own = args.discriminator_learning_rate
    rate = args.learning_rate if own is None else own
    evidence = (
        f"{rate:g}"
        + (" (= --learning_rate)" if own is None else "")
        + (", discriminator starts from random weights" if fresh_discriminator else ", discriminator is pretrained")
    )
    if rate > FROM_SCRATCH.fail_above:
        return Check(
            SECTION, name, Status.FAIL, f"{evidence}: above {FROM_SCRATCH.fail_above:g}, where it diverges",
            "--discriminator_learning_rate 2e-4",
        )  # fmt: skip
    if rate > FROM_SCRATCH.high:
        return Check(
            SECTION, name, Status.WARN, f"{evidence}: above VITS's stable range", "--discriminator_learning_rate 2e-4"
        )
    if fine_tuning and fresh_discriminator and rate < MIN_FRESH_DISCRIMINATOR_LR:
        return Check(
            SECTION,
            name,
            Status.WARN,
            f"{evidence}: a random discriminator learning at the generator's fine-tuning rate lags behind it, so its "
            "adversarial gradients stay noise for a long time",
            "--discriminator_learning_rate 2e-4 (as the MMS recipes)",
        )
    return Check(SECTION, name, Status.OK, evidence)


def _warmup(args, fine_tuning: bool, fresh_discriminator: bool) -> Check:
    warmup = args.warmup_steps
    # `warmup_steps` below 1 is a share of the run (transformers >= 5), otherwise a number of steps.
    share = warmup if 0 < warmup < 1 else (warmup / args.max_steps if args.max_steps > 0 else None)
    evidence = (
        "none"
        if not warmup
        else (f"{warmup:g} of the run" if warmup < 1 else f"{int(warmup)} steps")
        + (f" ({share:.0%} of {args.max_steps} steps)" if warmup >= 1 and share is not None else "")
    )
    if args.discriminator_warmup_steps:
        evidence += f"; discriminator trained alone for {args.discriminator_warmup_steps} steps first"
    if not warmup and fine_tuning and fresh_discriminator and not args.discriminator_warmup_steps:
        return Check(
            SECTION,
            "warm-up",
            Status.WARN,
            f"{evidence}: the pretrained generator takes full-rate steps from a random discriminator's gradients",
            "--warmup_steps 0.02 (as the MMS recipes)",
        )
    if share is not None and share > MAX_WARMUP_SHARE:
        return Check(
            SECTION, "warm-up", Status.WARN, f"{evidence}: more than {MAX_WARMUP_SHARE:.0%} of the run below the "
            "peak learning rate", "--warmup_steps 0.02",
        )  # fmt: skip
    return Check(SECTION, "warm-up", Status.OK, evidence)


def _clipping(args) -> Check:
    norm = args.max_grad_norm
    if norm is None or norm <= 0 or math.isinf(norm):
        return Check(
            SECTION,
            "gradient clipping",
            Status.WARN,
            "off: one bad batch (a mistranscribed or clipped recording) can throw the weights to NaN",
            "--max_grad_norm 1.0 (as the recipes)",
        )
    return Check(SECTION, "gradient clipping", Status.OK, f"max_grad_norm {norm:g}")


def _loss_weights(args, fine_tuning: bool, fresh_discriminator: bool) -> Check:
    weights = {name: getattr(args, f"loss_weight_{name}") for name in ("mel", "kl", "duration", "gen", "fm", "disc")}
    evidence = ", ".join(f"{name} {value:g}" for name, value in weights.items())
    name = "loss weights"
    failures, warnings, fixes = [], [], []
    if weights["mel"] == 0:
        failures.append("mel 0: nothing teaches the decoder to reproduce the recordings")
        fixes.append(f"--loss_weight_mel {VITS_MEL_WEIGHT:g}")
    elif weights["mel"] > HIGH_MEL_WEIGHT:
        message = f"mel {weights['mel']:g} is more than twice VITS's {VITS_MEL_WEIGHT:g}"
        if fresh_discriminator:
            failures.append(f"{message} with a random discriminator, a combination reported to end in NaN")
        else:
            warnings.append(f"{message}: the adversarial terms barely count")
        fixes.append(f"--loss_weight_mel {VITS_MEL_WEIGHT:g}")
    if weights["kl"] == 0:
        failures.append("kl 0: the prior that synthesis samples from is never fitted to the audio")
        fixes.append("--loss_weight_kl 1")
    if weights["duration"] == 0:
        message = "duration 0: the duration predictor does not train"
        if fine_tuning:
            warnings.append(message + ", so the new voice keeps the base model's rhythm")
        else:
            failures.append(message + ", so synthesized speech has random durations")
        fixes.append("--loss_weight_duration 1")
    if weights["disc"] == 0 and (weights["gen"] or weights["fm"]):
        warnings.append("disc 0 with gen/fm on: the discriminator never learns, so its judgement is noise")
        fixes.append("--loss_weight_disc 1")
    if weights["gen"] == 0 and weights["fm"] == 0:
        warnings.append("gen and fm 0: without adversarial training the audio comes out buzzy and blurred")
        fixes.append("--loss_weight_gen 1 --loss_weight_fm 1")
    fix = " ".join(dict.fromkeys(fixes))
    if failures:
        return Check(SECTION, name, Status.FAIL, f"{evidence}: " + "; ".join(failures + warnings), fix, weights)
    if warnings:
        return Check(SECTION, name, Status.WARN, f"{evidence}: " + "; ".join(warnings), fix, weights)
    return Check(SECTION, name, Status.OK, evidence, details=weights)


def check_weight_precision(args, dtypes: set[torch.dtype]) -> Check:
    """Weights must be float32: the optimizer updates them, mixed precision only computes in half."""
    name = "weight precision"
    half = sorted(str(dtype).removeprefix("torch.") for dtype in dtypes if dtype in (torch.float16, torch.bfloat16))
    listed = ", ".join(sorted(str(dtype).removeprefix("torch.") for dtype in dtypes))
    if half:
        scaling = (
            "fp16 weights without loss scaling lose small gradients to underflow and overflow to NaN"
            if "float16" in half
            else "updates smaller than bfloat16's resolution vanish"
        )
        return Check(
            SECTION,
            name,
            Status.FAIL,
            f"model weights in {listed}: {scaling}",
            "load the model in float32 and let --fp16/--bf16 run the step in mixed precision (the Trainer then scales "
            "the fp16 loss)",
        )
    mixed = (
        "fp16 mixed precision with dynamic loss scaling"
        if args.fp16
        else "bf16 mixed precision"
        if args.bf16
        else "fp32"
    )
    return Check(SECTION, name, Status.OK, f"weights in {listed}, {mixed}")
