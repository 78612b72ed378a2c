"""The XTTS-style training objective as pure functions on tensors (used by `XttsTrainer.compute_loss`).

Every reduction is a mean over the real (unmasked) elements only, so padding never dilutes a term and a batch's
loss does not depend on how much it was padded. Losses are computed in float32 whatever the autocast dtype: the
squared errors and log-sigmoids of fp16 activations overflow or lose the small differences the terms depend on.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

GUIDED_ATTENTION_REDUCTIONS = ("step", "element")


def length_mask(lengths: torch.Tensor, max_length: int) -> torch.Tensor:
    """`mask[b, t] = t < lengths[b]`: a `(batch, max_length)` bool mask of the real positions."""
    positions = torch.arange(max_length, device=lengths.device)
    return positions.unsqueeze(0) < lengths.unsqueeze(1)


def _frame_mask(lengths_or_mask: torch.Tensor, frames: int) -> torch.Tensor:
    if lengths_or_mask.dim() == 1:
        return length_mask(lengths_or_mask, frames)
    if lengths_or_mask.shape[1] != frames:
        raise ValueError(f"the mask covers {lengths_or_mask.shape[1]} frames but the prediction has {frames}")
    return lengths_or_mask.bool()


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    # A batch without a real element (all-padding) contributes 0, not NaN (0 / 0).
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp_min(1.0)


def masked_huber_loss(
    prediction: torch.Tensor, target: torch.Tensor, lengths_or_mask: torch.Tensor, delta: float
) -> torch.Tensor:
    """Huber loss, `0.5 x²` for `|x| <= delta` else `delta (|x| - 0.5 delta)`, mean over real frames and mel bins.

    Args:
        prediction, target (`torch.Tensor` of shape `(batch, frames, n_mels)`): Predicted and target log-mels.
        lengths_or_mask (`torch.Tensor`): Real frames per example `(batch,)`, or a `(batch, frames)` mask.
        delta (`float`): Where the loss turns from quadratic to linear (> 0); the gradient's size is bounded by it.
    """
    if not delta > 0:
        raise ValueError(f"the Huber delta must be positive, got {delta}")
    mask = _frame_mask(lengths_or_mask, prediction.shape[1]).unsqueeze(-1).expand_as(prediction)
    errors = F.huber_loss(prediction.float(), target.float(), reduction="none", delta=delta)
    return _masked_mean(errors, mask)


def masked_l1_loss(prediction: torch.Tensor, target: torch.Tensor, lengths_or_mask: torch.Tensor) -> torch.Tensor:
    """`|prediction - target|`, mean over real frames and mel bins (shapes as in `masked_huber_loss`)."""
    mask = _frame_mask(lengths_or_mask, prediction.shape[1]).unsqueeze(-1).expand_as(prediction)
    return _masked_mean((prediction.float() - target.float()).abs(), mask)


def stop_targets(
    mel_lengths: torch.Tensor, num_steps: int, reduction_factor: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stop targets and mask of decoder steps; step `k` covers frames `[k r, (k + 1) r)`.

    With `S = ceil(mel_length / r)` real steps, the target is 1 for `k >= S - 1` (the step holding the last real
    frame) and the mask keeps `k < S`: steps made only of padding frames are not trained.

    Returns:
        `tuple(torch.Tensor, torch.Tensor)`: float targets and bool mask, both `(batch, num_steps)`.
    """
    if reduction_factor < 1:
        raise ValueError(f"reduction_factor must be >= 1, got {reduction_factor}")
    real_steps = decoder_steps(mel_lengths, reduction_factor)
    steps = torch.arange(num_steps, device=mel_lengths.device).unsqueeze(0)
    targets = (steps >= real_steps.unsqueeze(1) - 1).float()
    mask = steps < real_steps.unsqueeze(1)
    return targets, mask


def smoothed_stop_bce(
    logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, smoothing: float, pos_weight: float
) -> torch.Tensor:
    """Binary cross-entropy with label smoothing, `y' = y (1 - s) + s / 2`, and positive-class weight `w`:
    `-(w y' log σ(x) + (1 - y') log(1 - σ(x)))`, mean over real steps.

    Args:
        logits, targets (`torch.Tensor` of shape `(batch, steps)`): Stop logits and 0/1 targets (`stop_targets`).
        mask (`torch.Tensor` of shape `(batch, steps)`): Real steps.
        smoothing (`float`): `s` in `[0, 1)`; keeps the logits finite, so the stop head cannot saturate.
        pos_weight (`float`): `w` > 0; one stop step per clip against tens of "go on" steps.
    """
    if not 0 <= smoothing < 1:
        raise ValueError(f"stop label smoothing must be in [0, 1), got {smoothing}")
    if not pos_weight > 0:
        raise ValueError(f"the stop pos_weight must be positive, got {pos_weight}")
    smoothed = targets.float() * (1.0 - smoothing) + smoothing / 2
    weight = torch.tensor(pos_weight, dtype=torch.float32, device=logits.device)
    losses = F.binary_cross_entropy_with_logits(logits.float(), smoothed, pos_weight=weight, reduction="none")
    return _masked_mean(losses, mask)


def smoothed_text_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, smoothing: float, ignore_index: int = -100
) -> torch.Tensor:
    """Cross-entropy against `(1 - s) onehot(y) + s / V`, mean over the positions whose label is not
    `ignore_index`.

    Args:
        logits (`torch.Tensor` of shape `(batch, positions, vocab_size)`): Next-token logits.
        labels (`torch.Tensor` of shape `(batch, positions)`): Token ids, `ignore_index` where nothing is predicted.
        smoothing (`float`): `s` in `[0, 1)`.
    """
    if not 0 <= smoothing < 1:
        raise ValueError(f"text label smoothing must be in [0, 1), got {smoothing}")
    if not (labels != ignore_index).any():
        # cross_entropy's mean over zero targets is NaN; keep the graph connected so backward still works.
        return logits.float().sum() * 0.0
    return F.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]),
        labels.reshape(-1),
        ignore_index=ignore_index,
        label_smoothing=smoothing,
    )


def diagonal_prior(text_lengths: torch.Tensor, step_lengths: torch.Tensor, steps: int, positions: int, sigma: float):
    """Tachibana et al. (2017, arXiv:1710.08969) penalty `W[t, n] = 1 - exp(-(n / N - t / T)² / (2 σ²))` per example,
    with `N` its real text length and `T` its real step count, and the bool mask of that real region.

    Returns:
        `tuple(torch.Tensor, torch.Tensor)`: `W` (float32) and mask, both `(batch, steps, positions)`.
    """
    t = torch.arange(steps, device=text_lengths.device, dtype=torch.float32).view(1, -1, 1)
    n = torch.arange(positions, device=text_lengths.device, dtype=torch.float32).view(1, 1, -1)
    text = text_lengths.float().clamp_min(1).view(-1, 1, 1)
    frames = step_lengths.float().clamp_min(1).view(-1, 1, 1)
    weights = 1.0 - torch.exp(-((n / text - t / frames) ** 2) / (2 * sigma**2))
    mask = (t < step_lengths.view(-1, 1, 1)) & (n < text_lengths.view(-1, 1, 1))
    return weights, mask


def guided_attention_loss(
    attention: torch.Tensor,
    text_lengths: torch.Tensor,
    step_lengths: torch.Tensor,
    sigma: float = 0.2,
    reduction: str = "step",
) -> torch.Tensor:
    """Guided attention: the penalty `Σ_n A[t, n] W[t, n]` of each real decoder step, averaged over the real steps,
    with `W` from `diagonal_prior`. Pulls the attention of mel step `t` toward text position `n ≈ t N / T`.

    `reduction="step"` (the default) is the expected penalty of a step's attention: between 0 (all of it on the
    diagonal) and about 1 (all of it far away), whatever the text length. `"element"` is the mean of `A ⊙ W` over the
    whole real (step, token) region, as ESPnet computes it; since each row of `A` sums to 1, that is the step penalty
    divided by the text length `N`, so its pull weakens with every token (30-100 for a sentence) and at weight 1 it
    was too weak to align the model (`benchmarks/README.md`, "XTTS alignment").

    Args:
        attention (`torch.Tensor` of shape `(batch, steps, text_positions)`):
            Attention of each mel step to the text positions (`XttsOutput.text_mel_attention`).
        text_lengths (`torch.Tensor` of shape `(batch,)`): Real text tokens.
        step_lengths (`torch.Tensor` of shape `(batch,)`): Real decoder steps (`ceil(mel_length / r)`).
        sigma (`float`, *optional*, defaults to `0.2`): Width of the diagonal band, in fractions of the lengths.
        reduction (`str`, *optional*, defaults to `"step"`): `"step"` or `"element"` (see above).
    """
    if not sigma > 0:
        raise ValueError(f"guided attention sigma must be positive, got {sigma}")
    if reduction not in GUIDED_ATTENTION_REDUCTIONS:
        raise ValueError(f"guided attention reduction must be one of {GUIDED_ATTENTION_REDUCTIONS}, got {reduction!r}")
    weights, mask = diagonal_prior(text_lengths, step_lengths, attention.shape[1], attention.shape[2], sigma)
    if reduction == "element":
        return _masked_mean(attention.float() * weights, mask)
    per_step = (attention.float() * weights * mask).sum(dim=-1)  # (batch, steps)
    return _masked_mean(per_step, mask.any(dim=-1))


def decoder_steps(mel_lengths: torch.Tensor, reduction_factor: int) -> torch.Tensor:
    """`ceil(mel_length / r)`: the real decoder steps of each example."""
    return torch.div(mel_lengths + reduction_factor - 1, reduction_factor, rounding_mode="floor")
