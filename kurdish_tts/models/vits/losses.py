"""The VITS training objective (arXiv 2106.06103, section 2) as pure functions, after jaywalnut310's `losses.py`.

Every function casts its inputs to float32 first, so the result is float32 and stable when the model runs under fp16
or bf16 autocast (none of these ops is on an autocast lower-precision list, so the cast is not undone). Per-term
values returned for logging are detached float32 tensors, never Python floats, so logging them does not synchronise
the device. Loss weights are applied by the caller (`loss_weight_*` in the training arguments).
"""

from __future__ import annotations

import torch


def discriminator_loss(
    real_logits: list[torch.Tensor], fake_logits: list[torch.Tensor]
) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """LSGAN discriminator loss: `sum_k mean((1 - D_k(x))^2) + mean(D_k(G(z))^2)` over sub-discriminators `k`.

    Args:
        real_logits (`list[torch.Tensor]`):
            One output per sub-discriminator for real audio, any shape.
        fake_logits (`list[torch.Tensor]`):
            The same for generated audio, detached from the generator by the caller.

    Returns:
        `tuple(torch.Tensor, list[torch.Tensor], list[torch.Tensor])`: the float32 scalar loss, then the detached
        real and fake terms of each sub-discriminator.
    """
    _check_not_empty(real_logits, "real_logits")
    loss = torch.zeros((), device=real_logits[0].device)
    real_losses, fake_losses = [], []
    for real, fake in zip(real_logits, fake_logits, strict=True):
        real_loss = torch.mean((1 - real.float()) ** 2)
        fake_loss = torch.mean(fake.float() ** 2)
        loss = loss + real_loss + fake_loss
        real_losses.append(real_loss.detach())
        fake_losses.append(fake_loss.detach())
    return loss, real_losses, fake_losses


def generator_adversarial_loss(fake_logits: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """LSGAN generator loss: `sum_k mean((1 - D_k(G(z)))^2)` over sub-discriminators `k`.

    Args:
        fake_logits (`list[torch.Tensor]`):
            One output per sub-discriminator for generated audio, any shape.

    Returns:
        `tuple(torch.Tensor, list[torch.Tensor])`: the float32 scalar loss, then the detached term of each
        sub-discriminator.
    """
    _check_not_empty(fake_logits, "fake_logits")
    loss = torch.zeros((), device=fake_logits[0].device)
    fake_losses = []
    for fake in fake_logits:
        fake_loss = torch.mean((1 - fake.float()) ** 2)
        loss = loss + fake_loss
        fake_losses.append(fake_loss.detach())
    return loss, fake_losses


def feature_matching_loss(
    real_feature_maps: list[list[torch.Tensor]], fake_feature_maps: list[list[torch.Tensor]]
) -> torch.Tensor:
    """Feature matching: `2 * sum_k sum_l mean(|F_kl(x) - F_kl(G(z))|)` with real features `F_kl(x)` detached.

    The factor 2 is HiFi-GAN's feature-matching weight (arXiv 2010.05646, lambda_fm = 2), which VITS folds into the
    loss; keep it here so that `loss_weight_fm=1.0` reproduces VITS. Only the generated features receive gradients.

    Args:
        real_feature_maps (`list[list[torch.Tensor]]`):
            For each sub-discriminator, its intermediate activations on real audio.
        fake_feature_maps (`list[list[torch.Tensor]]`):
            The same activations on generated audio, with the same nesting and shapes.

    Returns:
        `torch.Tensor`: the float32 scalar loss.
    """
    _check_not_empty(real_feature_maps, "real_feature_maps")
    loss = torch.zeros((), device=real_feature_maps[0][0].device)
    for real_maps, fake_maps in zip(real_feature_maps, fake_feature_maps, strict=True):
        for real, fake in zip(real_maps, fake_maps, strict=True):
            loss = loss + torch.mean(torch.abs(real.detach().float() - fake.float()))
    return 2 * loss


def kl_loss(
    prior_latents_through_flow: torch.Tensor,
    posterior_log_variances: torch.Tensor,
    prior_means: torch.Tensor,
    prior_log_variances: torch.Tensor,
    mask: torch.Tensor,
) -> torch.Tensor:
    """KL term: `sum((logs_p - logs_q - 0.5 + 0.5 * (z_p - m_p)^2 * exp(-2 * logs_p)) * mask) / sum(mask)`.

    This is VITS' single-sample estimate of KL(q(z|x) || p(z|c)), summed over channels and averaged over
    valid frames. The "log variances" are log standard deviations, as in transformers' `VitsModel`; the normalisation
    by `sum(mask)` counts frames, not frames times channels, which is why `mask` has a single channel.

    Args:
        prior_latents_through_flow (`torch.Tensor` of shape `(batch_size, flow_size, frames)`):
            Posterior latents mapped through the flow (`z_p` in the paper).
        posterior_log_variances (`torch.Tensor` of shape `(batch_size, flow_size, frames)`):
            Log standard deviations of the posterior (`logs_q`).
        prior_means (`torch.Tensor` of shape `(batch_size, flow_size, frames)`):
            Prior means expanded to frames by the alignment (`m_p`).
        prior_log_variances (`torch.Tensor` of shape `(batch_size, flow_size, frames)`):
            Prior log standard deviations expanded to frames by the alignment (`logs_p`).
        mask (`torch.Tensor` of shape `(batch_size, 1, frames)`):
            1 on valid frames and 0 on padding.

    Returns:
        `torch.Tensor`: the float32 scalar loss.
    """
    prior_latents_through_flow = prior_latents_through_flow.float()
    prior_log_variances = prior_log_variances.float()
    mask = mask.float()
    kl = prior_log_variances - posterior_log_variances.float() - 0.5
    kl = kl + 0.5 * (prior_latents_through_flow - prior_means.float()) ** 2 * torch.exp(-2.0 * prior_log_variances)
    return torch.sum(kl * mask) / torch.sum(mask)


def mel_reconstruction_loss(
    predicted_mel: torch.Tensor, target_mel: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Mel reconstruction: `sum(|mel_pred - mel_target| * mask) / count(mask)`, the L1 mean over valid elements.

    Args:
        predicted_mel (`torch.Tensor` of shape `(batch_size, num_mel_bins, frames)`):
            Log-mel spectrogram of the generated audio.
        target_mel (`torch.Tensor` of shape `(batch_size, num_mel_bins, frames)`):
            Log-mel spectrogram of the real audio.
        mask (`torch.Tensor` of shape `(batch_size, 1, frames)`, *optional*):
            1 on valid frames and 0 on padding, broadcast over mel bins. Without it every element counts, as for the
            fixed-size segments VITS trains the decoder on.

    Returns:
        `torch.Tensor`: the float32 scalar loss.
    """
    difference = torch.abs(predicted_mel.float() - target_mel.float())  # (batch_size, num_mel_bins, frames)
    if mask is None:
        return torch.mean(difference)
    mask = mask.float().expand_as(difference)
    return torch.sum(difference * mask) / torch.sum(mask)


def duration_loss(duration_nll: torch.Tensor, text_lengths: torch.Tensor) -> torch.Tensor:
    """Duration loss: `sum_b nll_b / sum_b text_length_b`, the negative log-likelihood per valid token.

    In training mode (`reverse=False`) transformers' `VitsStochasticDurationPredictor` returns one value per item, its
    negative log-likelihood bound already summed over the item's tokens (shape `(batch_size,)`), as jaywalnut310's
    does; dividing by the total token count matches jaywalnut310's `sum(l_length / sum(x_mask))`.

    Args:
        duration_nll (`torch.Tensor` of shape `(batch_size,)`):
            Per-item negative log-likelihood of the durations, summed over tokens.
        text_lengths (`torch.Tensor` of shape `(batch_size,)`):
            Number of valid tokens of each item (the sum of the text padding mask).

    Returns:
        `torch.Tensor`: the float32 scalar loss.
    """
    return torch.sum(duration_nll.float()) / torch.sum(text_lengths.float())


def _check_not_empty(items: list, name: str) -> None:
    # The result is created on the first input's device, and an empty sum would silently be a constant.
    if not items or (isinstance(items[0], list) and not items[0]):
        raise ValueError(f"{name} is empty")
