"""The XTTS-style text-to-mel model: a GPT-2 backbone over `[conditioning latents | text | mel steps]`."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForTextToSpectrogram,
    GPT2Model,
    PreTrainedModel,
)
from transformers import initialization as init
from transformers.utils import ModelOutput

from .attention import ATTENTION_IMPLEMENTATION, _causal_mask, _length_mask, _NoPositionEmbedding
from .conditioning import XttsConditioningEncoder, XttsPostnet, XttsPrenet
from .configuration_xtts import XttsConfig
from .generation import XttsGenerationMixin


@dataclass
class XttsOutput(ModelOutput):
    """
    Teacher-forced outputs of [`XttsForTextToSpeech`]. No loss: the trainer computes every loss term.

    Args:
        mel_before (`torch.FloatTensor` of shape `(batch, frames, n_mels)`):
            Log-mel prediction of every frame before the postnet; the frames of step `k` (frames `k*r` to `(k+1)*r`)
            see only the target frames before `k*r`.
        mel_after (`torch.FloatTensor` of shape `(batch, frames, n_mels)`):
            The same after the residual postnet (which looks at neighbouring predicted frames, so it is not causal).
        stop_logits (`torch.FloatTensor` of shape `(batch, frames // reduction_factor)`):
            One stop logit per decoder step.
        text_logits (`torch.FloatTensor` of shape `(batch, text_length, vocab_size)`):
            Position `i` predicts text token `i + 1` (the auxiliary text loss); the last position is unused.
        conditioning_latents (`torch.FloatTensor` of shape `(batch, num_conditioning_latents, hidden_size)`):
            The speaker conditioning the sequence started with.
        text_mel_attention (`torch.FloatTensor` of shape `(batch, frames // reduction_factor, text_length)`, *optional*):
            With `output_attentions=True`: attention of each decoder step to the text positions, averaged over the
            heads of `config.guided_attention_layers` and renormalized over the text (padding gets 0), in float32.
    """

    mel_before: torch.FloatTensor | None = None
    mel_after: torch.FloatTensor | None = None
    stop_logits: torch.FloatTensor | None = None
    text_logits: torch.FloatTensor | None = None
    conditioning_latents: torch.FloatTensor | None = None
    text_mel_attention: torch.FloatTensor | None = None


class XttsForTextToSpeech(XttsGenerationMixin, PreTrainedModel):
    r"""
    XTTS-style zero-shot voice cloning: text and a reference clip of a voice in, a log-mel in that voice out.

    One `transformers.GPT2Model` reads the sequence `[conditioning latents | text tokens | mel steps]` with a causal
    mask. The latents summarize a reference mel (`XttsConditioningEncoder`); the text tokens are embedded by the
    backbone's word embedding; decoder step 0 is a learned start vector and step `k > 0` is the prenet of the
    `reduction_factor` frames of step `k - 1`. The text and the mel steps each have their own learned position table
    (as in XTTS) and GPT-2's absolute one is switched off, so a mel step's position does not depend on how long the
    text before it is. Heads read the backbone's output: mel frames (continuous, `r * n_mels` per step, then a
    residual convolutional postnet), a stop logit per step, and the next text token (an auxiliary task).

    Text is right-padded inside its segment; padded positions are masked out as keys, so an example's outputs do not
    depend on the batch it is in (packing each example instead would need per-example position bookkeeping and
    scatter/gather, for no gain in what the model can see).

    Generation ([`~XttsForTextToSpeech.generate_mel`]) is autoregressive with the KV cache, batched, and stops each
    example at its first step whose stop probability exceeds a threshold.

    Args:
        config ([`XttsConfig`]): The architecture.

    Example:

    ```python
    >>> import torch
    >>> from kurdish_tts.models.xtts import XttsConfig, XttsForTextToSpeech

    >>> model = XttsForTextToSpeech(XttsConfig.for_size("tiny", vocab_size=39)).eval()
    >>> reference = torch.randn(1, 50, model.config.n_mels)
    >>> generated = model.generate_mel(torch.tensor([[3, 5, 7]]), reference_mel=reference, max_new_frames=16)
    >>> generated.mel.shape[-1] == model.config.n_mels
    True
    ```
    """

    config_class = XttsConfig
    base_model_prefix = "xtts"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _no_split_modules = ["GPT2Block"]

    def __init__(self, config: XttsConfig):
        super().__init__(config)
        config.validate_architecture()
        backbone_config = config.backbone_config()
        backbone_config._attn_implementation = ATTENTION_IMPLEMENTATION
        self.backbone = GPT2Model(backbone_config)
        self.backbone.wpe = _NoPositionEmbedding()
        hidden = config.hidden_size
        self.text_position_embedding = nn.Embedding(config.max_text_length, hidden)
        self.mel_position_embedding = nn.Embedding(config.max_mel_steps, hidden)
        self.mel_start = nn.Parameter(torch.zeros(hidden))
        self.text_end = nn.Parameter(torch.zeros(hidden)) if config.mark_text_end else None
        self.conditioning_encoder = XttsConditioningEncoder(config)
        self.prenet = XttsPrenet(config)
        self.mel_head = nn.Linear(hidden, config.reduction_factor * config.n_mels)
        self.stop_head = nn.Linear(hidden, 1)
        self.text_head = nn.Linear(hidden, config.vocab_size)
        self.postnet = XttsPostnet(config)
        self.post_init()

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, XttsConditioningEncoder):
            init.normal_(module.latents, mean=0.0, std=self.config.initializer_range)
        elif isinstance(module, XttsForTextToSpeech):
            init.normal_(module.mel_start, mean=0.0, std=self.config.initializer_range)
            if module.text_end is not None:
                init.normal_(module.text_end, mean=0.0, std=self.config.initializer_range)
            if self.config.position_init == "aligned":
                text_positions = torch.arange(self.config.max_text_length, dtype=torch.float32)
                steps = torch.arange(self.config.max_mel_steps, dtype=torch.float32) * self.config.text_tokens_per_step
                init.copy_(module.text_position_embedding.weight, _sinusoids(text_positions, self.config.hidden_size))
                init.copy_(module.mel_position_embedding.weight, _sinusoids(steps, self.config.hidden_size))

    def get_input_embeddings(self) -> nn.Embedding:
        return self.backbone.wte

    def set_input_embeddings(self, embeddings: nn.Embedding) -> None:
        self.backbone.wte = embeddings

    # Mel normalization: the model reads and writes `(log_mel - mel_mean) / mel_std`.
    def _normalize(self, mel: torch.Tensor) -> torch.Tensor:
        return ((mel - self.config.mel_mean) / self.config.mel_std).to(self.mel_head.weight.dtype)

    def _denormalize(self, mel: torch.Tensor) -> torch.Tensor:
        return mel * self.config.mel_std + self.config.mel_mean

    def compute_conditioning(
        self, reference_mel: torch.Tensor, reference_mel_lengths: torch.Tensor | None = None
    ) -> torch.Tensor:
        r"""
        Speaker conditioning latents of reference clips.

        Args:
            reference_mel (`torch.FloatTensor` of shape `(batch, frames, n_mels)`):
                Log-mel of a clip of each voice (any length), padded.
            reference_mel_lengths (`torch.LongTensor` of shape `(batch,)`, *optional*):
                Real frames of each; all frames when unset.

        Returns:
            `torch.FloatTensor` of shape `(batch, num_conditioning_latents, hidden_size)`.
        """
        if reference_mel.dim() != 3 or reference_mel.shape[-1] != self.config.n_mels:
            raise ValueError(
                f"reference_mel must have shape (batch, frames, {self.config.n_mels}), got {tuple(reference_mel.shape)}"
            )
        batch, frames = reference_mel.shape[:2]
        if reference_mel_lengths is None:
            reference_mel_lengths = torch.full((batch,), frames, device=reference_mel.device)
        if frames == 0 or bool((reference_mel_lengths < 1).any()):
            raise ValueError("every reference clip needs at least one mel frame (reference_mel_lengths >= 1)")
        mask = _length_mask(reference_mel_lengths.to(reference_mel.device), frames)
        return self.conditioning_encoder(self._normalize(reference_mel), mask)

    def _conditioning(self, reference_mel, reference_mel_lengths, conditioning_latents) -> torch.Tensor:
        if conditioning_latents is not None:
            return conditioning_latents
        if reference_mel is None:
            raise ValueError(
                "the model needs the voice to speak in: pass reference_mel (a log-mel of another clip of the speaker) "
                "or conditioning_latents (from compute_conditioning)"
            )
        return self.compute_conditioning(reference_mel, reference_mel_lengths)

    def _text_embeddings(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        length = input_ids.shape[1]
        if length > self.config.max_text_length:
            raise ValueError(
                f"the text has {length} tokens but the model takes at most max_text_length="
                f"{self.config.max_text_length}; split the text into sentences"
            )
        positions = torch.arange(length, device=input_ids.device)
        embeddings = self.backbone.wte(input_ids) + self.text_position_embedding(positions)  # (batch, tokens, hidden)
        if self.text_end is not None:
            # The last real token of each (right-padded) text gets the end marker.
            last = (attention_mask.long().sum(dim=1) - 1).clamp_min(0)
            is_last = torch.arange(length, device=input_ids.device).unsqueeze(0) == last.unsqueeze(1)
            embeddings = embeddings + is_last.unsqueeze(-1).to(embeddings.dtype) * self.text_end.to(embeddings.dtype)
        return embeddings

    def _step_embeddings(self, previous_frames: torch.Tensor, first_step: int) -> torch.Tensor:
        """Decoder-step inputs: `previous_frames` (batch, steps, r * n_mels), normalized, are the frames of the steps
        before `first_step`, `first_step + 1`, ...; step 0's input is the learned start vector."""
        batch, steps = previous_frames.shape[:2]
        embeddings = self.prenet(previous_frames)
        if first_step == 0:
            start = self.mel_start.to(embeddings.dtype).expand(batch, 1, -1)
            embeddings = torch.cat([start, embeddings[:, :-1]], dim=1)
        positions = torch.arange(first_step, first_step + steps, device=previous_frames.device)
        return embeddings + self.mel_position_embedding(positions)  # (batch, steps, hidden)

    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.LongTensor | None = None,
        mel: torch.FloatTensor | None = None,
        mel_lengths: torch.LongTensor | None = None,
        reference_mel: torch.FloatTensor | None = None,
        reference_mel_lengths: torch.LongTensor | None = None,
        conditioning_latents: torch.FloatTensor | None = None,
        output_attentions: bool = False,
    ) -> XttsOutput:
        r"""
        Teacher-forced pass over a batch.

        Args:
            input_ids (`torch.LongTensor` of shape `(batch, text_length)`):
                Text token ids, right-padded.
            attention_mask (`torch.LongTensor` of shape `(batch, text_length)`, *optional*):
                1 for real tokens, 0 for padding; all real when unset.
            mel (`torch.FloatTensor` of shape `(batch, frames, n_mels)`):
                Target log-mel (natural log), padded; `frames` must be a multiple of `reduction_factor`.
            mel_lengths (`torch.LongTensor` of shape `(batch,)`, *optional*):
                Real frames of each example (only the postnet reads it); all frames when unset.
            reference_mel (`torch.FloatTensor` of shape `(batch, reference_frames, n_mels)`, *optional*):
                Log-mel of another clip of each example's speaker.
            reference_mel_lengths (`torch.LongTensor` of shape `(batch,)`, *optional*):
                Real frames of each reference.
            conditioning_latents (`torch.FloatTensor`, *optional*):
                Precomputed `compute_conditioning(...)`, instead of `reference_mel`.
            output_attentions (`bool`, *optional*, defaults to `False`):
                Whether to return `text_mel_attention` (computed explicitly in `config.guided_attention_layers`).

        Returns:
            [`XttsOutput`].
        """
        config = self.config
        if mel is None:
            raise ValueError("forward is teacher forced and needs the target mel; use generate_mel to synthesize")
        if mel.dim() != 3 or mel.shape[-1] != config.n_mels:
            raise ValueError(f"mel must have shape (batch, frames, {config.n_mels}), got {tuple(mel.shape)}")
        batch, frames = mel.shape[:2]
        reduction = config.reduction_factor
        if frames % reduction:
            raise ValueError(
                f"mel has {frames} frames, not a multiple of reduction_factor={reduction}: pad it to "
                f"{-(-frames // reduction) * reduction} frames (DataCollatorForXtts does)"
            )
        steps = frames // reduction
        if steps > config.max_mel_steps:
            raise ValueError(
                f"mel has {frames} frames but the model takes at most max_mel_steps * reduction_factor = "
                f"{config.max_mel_frames}; leave out longer clips"
            )
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if mel_lengths is None:
            mel_lengths = torch.full((batch,), frames, device=mel.device)

        latents = self._conditioning(reference_mel, reference_mel_lengths, conditioning_latents)
        num_latents, text_length = latents.shape[1], input_ids.shape[1]
        normalized = self._normalize(mel)
        text = self._text_embeddings(input_ids, attention_mask)
        mel_steps = self._step_embeddings(normalized.reshape(batch, steps, reduction * config.n_mels), first_step=0)
        sequence = torch.cat([latents.to(text.dtype), text, mel_steps], dim=1)  # (batch, L + N + S, hidden)
        key_valid = torch.cat(
            [
                attention_mask.new_ones(batch, num_latents, dtype=torch.bool),
                attention_mask.bool(),
                attention_mask.new_ones(batch, steps, dtype=torch.bool),
            ],
            dim=1,
        )
        # Filled by `_xtts_attention` with the probabilities of the guided layers, (batch, heads, queries, keys) each.
        attention_store = dict.fromkeys(config.guided_attention_layers) if output_attentions else None
        hidden = self.backbone(
            inputs_embeds=sequence,
            attention_mask=_causal_mask(key_valid, sequence.shape[1]),
            use_cache=False,
            xtts_attention_store=attention_store,
        ).last_hidden_state
        text_hidden = hidden[:, num_latents : num_latents + text_length]
        mel_hidden = hidden[:, num_latents + text_length :]  # (batch, steps, hidden)

        mel_before = self.mel_head(mel_hidden).reshape(batch, frames, config.n_mels)
        mel_after = self.postnet(mel_before, _length_mask(mel_lengths.to(mel.device), frames))
        text_mel_attention = None
        if output_attentions:
            text_mel_attention = self._text_mel_attention(attention_store, num_latents, text_length)
        return XttsOutput(
            mel_before=self._denormalize(mel_before),
            mel_after=self._denormalize(mel_after),
            stop_logits=self.stop_head(mel_hidden).squeeze(-1),
            text_logits=self.text_head(text_hidden),
            conditioning_latents=latents,
            text_mel_attention=text_mel_attention,
        )

    def _text_mel_attention(self, attentions: dict, num_latents: int, text_length: int) -> torch.Tensor:
        text_start, mel_start = num_latents, num_latents + text_length
        per_layer = [probabilities[:, :, mel_start:, text_start:mel_start] for probabilities in attentions.values()]
        attention = torch.stack(per_layer).mean(dim=(0, 2))  # (batch, steps, tokens)
        # Much of a step's attention goes to the latents and earlier steps; the guided term is about its distribution
        # over the text only.
        return attention / attention.sum(dim=-1, keepdim=True).clamp_min(1e-8)


def _sinusoids(positions: torch.Tensor, width: int) -> torch.Tensor:
    """`(len(positions), width)` sinusoidal encodings (Vaswani et al.) of real-valued positions, unit norm per row.

    Far larger than the other embeddings' rows (entries of std `initializer_range`): at that smaller scale the tiny
    model's attention did not align on the CPU experiment (`benchmarks/README.md`, "XTTS alignment"). The price is an
    untrained model whose output depends little on the text and the voice until training has grown their share.
    """
    frequencies = torch.exp(-torch.arange(0, width, 2, dtype=torch.float32) * (torch.log(torch.tensor(1e4)) / width))
    angles = positions.unsqueeze(1) * frequencies.unsqueeze(0)  # (positions, width / 2)
    table = torch.zeros(len(positions), width)
    table[:, 0::2] = torch.sin(angles)
    table[:, 1::2] = torch.cos(angles[:, : width // 2])
    return table * (2.0 / width) ** 0.5


AutoConfig.register(XttsConfig.model_type, XttsConfig, exist_ok=True)
AutoModel.register(XttsConfig, XttsForTextToSpeech, exist_ok=True)
AutoModelForTextToSpectrogram.register(XttsConfig, XttsForTextToSpeech, exist_ok=True)
