"""The speaker conditioning encoder, the mel prenet and the postnet of the XTTS-style model."""

from __future__ import annotations

import torch
from torch import nn

from .configuration_xtts import XttsConfig


class XttsPerceiverBlock(nn.Module):
    """Learned latents cross-attend a sequence (pre-norm), then a feed-forward layer; both residual."""

    def __init__(self, config: XttsConfig):
        super().__init__()
        hidden = config.hidden_size
        self.latent_norm = nn.LayerNorm(hidden, eps=config.layer_norm_epsilon)
        self.context_norm = nn.LayerNorm(hidden, eps=config.layer_norm_epsilon)
        self.attention = nn.MultiheadAttention(
            hidden, config.num_attention_heads, dropout=config.conditioning_dropout, batch_first=True
        )
        self.feed_forward_norm = nn.LayerNorm(hidden, eps=config.layer_norm_epsilon)
        # A 2x (not GPT-2's 4x) expansion: the block runs once per clip on a few latents, and at `base` size a 4x
        # feed-forward would make the encoder a tenth of the model.
        self.feed_forward = nn.Sequential(
            nn.Linear(hidden, 2 * hidden),
            nn.GELU(),
            nn.Dropout(config.conditioning_dropout),
            nn.Linear(2 * hidden, hidden),
        )
        self.dropout = nn.Dropout(config.conditioning_dropout)

    def forward(self, latents: torch.Tensor, context: torch.Tensor, context_mask: torch.Tensor) -> torch.Tensor:
        # latents: (batch, num_latents, hidden); context: (batch, frames, hidden); context_mask: (batch, frames) bool
        keys = self.context_norm(context)
        attended, _ = self.attention(
            self.latent_norm(latents), keys, keys, key_padding_mask=~context_mask, need_weights=False
        )
        latents = latents + self.dropout(attended)
        return latents + self.dropout(self.feed_forward(self.feed_forward_norm(latents)))


class XttsConditioningEncoder(nn.Module):
    """Summarizes a reference mel into `num_conditioning_latents` vectors.

    Two convolutions give each frame some context; then Perceiver-style learned queries cross-attend the frames (as
    XTTS's conditioning resampler does), so that any clip length gives the same number of latents. Frames beyond a
    clip's length never reach the output: they are zeroed before every convolution and masked out of the attention.
    """

    def __init__(self, config: XttsConfig):
        super().__init__()
        hidden, kernel = config.hidden_size, config.conditioning_kernel_size
        self.input_conv = nn.Conv1d(config.n_mels, hidden, kernel, padding=kernel // 2)
        self.output_conv = nn.Conv1d(hidden, hidden, kernel, padding=kernel // 2)
        self.activation = nn.GELU()
        self.latents = nn.Parameter(torch.zeros(config.num_conditioning_latents, hidden))
        self.blocks = nn.ModuleList([XttsPerceiverBlock(config) for _ in range(config.conditioning_num_layers)])
        self.norm = nn.LayerNorm(hidden, eps=config.layer_norm_epsilon)

    def forward(self, reference_mel: torch.Tensor, reference_mask: torch.Tensor) -> torch.Tensor:
        """`reference_mel` (batch, frames, n_mels), normalized; `reference_mask` (batch, frames) bool →
        latents (batch, num_conditioning_latents, hidden)."""
        frame_mask = reference_mask.unsqueeze(1).to(reference_mel.dtype)  # (batch, 1, frames)
        features = reference_mel.transpose(1, 2) * frame_mask
        features = self.activation(self.input_conv(features)) * frame_mask
        features = features + self.activation(self.output_conv(features)) * frame_mask
        context = features.transpose(1, 2)  # (batch, frames, hidden)
        latents = self.latents.unsqueeze(0).expand(reference_mel.shape[0], -1, -1)
        for block in self.blocks:
            latents = block(latents, context, reference_mask)
        return self.norm(latents)


class XttsPrenet(nn.Module):
    """Embeds the `reduction_factor` frames of the previous decoder step: two ReLU layers with dropout (Tacotron 2)."""

    def __init__(self, config: XttsConfig):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(config.reduction_factor * config.n_mels, config.prenet_hidden_size),
            nn.ReLU(),
            nn.Dropout(config.prenet_dropout),
            nn.Linear(config.prenet_hidden_size, config.hidden_size),
            nn.ReLU(),
            nn.Dropout(config.prenet_dropout),
        )

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        # (batch, steps, reduction_factor * n_mels) -> (batch, steps, hidden)
        return self.layers(frames)


class XttsPostnet(nn.Module):
    """Residual refinement of the predicted mel: `postnet_num_layers` convolutions over time, tanh and dropout after
    all but the last (Tacotron 2's postnet, with layer norm over channels instead of batch norm, which would mix
    padded frames into the statistics and behave differently in evaluation)."""

    def __init__(self, config: XttsConfig):
        super().__init__()
        channels = [config.n_mels] + [config.postnet_channels] * (config.postnet_num_layers - 1) + [config.n_mels]
        kernel = config.postnet_kernel_size
        self.convolutions = nn.ModuleList(
            nn.Conv1d(channels[i], channels[i + 1], kernel, padding=kernel // 2) for i in range(len(channels) - 1)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(width, eps=config.layer_norm_epsilon) for width in channels[1:-1])
        self.dropout = nn.Dropout(config.postnet_dropout)

    def forward(self, mel: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
        """`mel` (batch, frames, n_mels) and `frame_mask` (batch, frames) bool → refined mel (batch, frames, n_mels).
        Frames outside the mask are zeroed before each convolution, so padding does not leak into real frames."""
        mask = frame_mask.unsqueeze(1).to(mel.dtype)  # (batch, 1, frames)
        hidden = mel.transpose(1, 2) * mask
        for index, convolution in enumerate(self.convolutions):
            hidden = convolution(hidden)
            if index < len(self.norms):
                hidden = self.norms[index](hidden.transpose(1, 2)).transpose(1, 2)
                hidden = self.dropout(torch.tanh(hidden)) * mask
        return mel + hidden.transpose(1, 2)
