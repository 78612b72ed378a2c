"""Autoregressive synthesis for the XTTS-style model: batched, with the KV cache, stopping per example."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from transformers import DynamicCache
from transformers.utils import ModelOutput

from .attention import _causal_mask, _length_mask


@dataclass
class XttsGenerationOutput(ModelOutput):
    """
    Output of [`XttsForTextToSpeech.generate_mel`].

    Args:
        mel (`torch.FloatTensor` of shape `(batch, frames, n_mels)`):
            Post-net log-mel; frames beyond an example's length hold the silence value `log(mel.log_clamp)`.
        mel_lengths (`torch.LongTensor` of shape `(batch,)`):
            Frames of each example.
        hit_max_length (`torch.BoolTensor` of shape `(batch,)`):
            Whether an example ran into the length limit instead of predicting its end.
        mel_before (`torch.FloatTensor` of shape `(batch, frames, n_mels)`):
            The pre-postnet frames, as fed back to the model step by step (padded like `mel`).
        text_mel_attention (`torch.FloatTensor` of shape `(batch, steps, text_length)`, *optional*):
            With `output_attentions=True`: each generated decoder step's attention to the text, as
            `XttsOutput.text_mel_attention` (mean over the heads of `config.guided_attention_layers`, renormalized over
            the text); steps after an example stopped are zero.
    """

    mel: torch.FloatTensor | None = None
    mel_lengths: torch.LongTensor | None = None
    hit_max_length: torch.BoolTensor | None = None
    mel_before: torch.FloatTensor | None = None
    text_mel_attention: torch.FloatTensor | None = None


class XttsGenerationMixin:
    """`generate_mel` and `synthesize` of [`XttsForTextToSpeech`] (kept apart from the teacher-forced model code)."""

    @torch.no_grad()
    def generate_mel(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.LongTensor | None = None,
        *,
        reference_mel: torch.FloatTensor | None = None,
        reference_mel_lengths: torch.LongTensor | None = None,
        conditioning_latents: torch.FloatTensor | None = None,
        max_new_frames: int | None = None,
        stop_threshold: float = 0.5,
        output_attentions: bool = False,
    ) -> XttsGenerationOutput:
        r"""
        Autoregressive synthesis of log-mels, batched, with the KV cache.

        Each example stops at its first step whose stop probability exceeds `stop_threshold` (that step's frames are
        kept), or at `max_new_frames`. The batch runs until every example has stopped. Call it in eval mode (as
        `transformers`' `generate`): dropout is not switched off here.

        Args:
            input_ids (`torch.LongTensor` of shape `(batch, text_length)`):
                Text token ids, right-padded.
            attention_mask (`torch.LongTensor` of shape `(batch, text_length)`, *optional*):
                1 for real tokens; all real when unset.
            reference_mel, reference_mel_lengths, conditioning_latents:
                The voice, as for `forward`.
            max_new_frames (`int`, *optional*):
                Length limit in frames; `config.max_mel_steps * reduction_factor` (the most the model can take) when
                unset.
            stop_threshold (`float`, *optional*, defaults to `0.5`):
                Stop probability above which an example ends.
            output_attentions (`bool`, *optional*, defaults to `False`):
                Whether to return `text_mel_attention`, the free-running alignment (what the alignment checks of
                `kurdish_tts.evaluation.xtts_clone` read). The guided layers then compute their weights explicitly.

        Returns:
            [`XttsGenerationOutput`].
        """
        config = self.config
        reduction = config.reduction_factor
        if max_new_frames is None:
            max_new_frames = config.max_mel_frames
        if not 1 <= max_new_frames <= config.max_mel_frames:
            raise ValueError(
                f"max_new_frames must lie between 1 and max_mel_steps * reduction_factor = {config.max_mel_frames}, "
                f"got {max_new_frames}"
            )
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        batch = input_ids.shape[0]
        device = input_ids.device
        latents = self._conditioning(reference_mel, reference_mel_lengths, conditioning_latents)
        text = self._text_embeddings(input_ids, attention_mask)
        start = self.mel_start.to(text.dtype).expand(batch, 1, -1) + self.mel_position_embedding.weight[:1]
        step_input = torch.cat([latents.to(text.dtype), text, start], dim=1)
        key_valid = torch.cat(
            [torch.ones(batch, latents.shape[1], dtype=torch.bool, device=device), attention_mask.bool()], dim=1
        )
        cache = DynamicCache(config=self.backbone.config)
        max_steps = math.ceil(max_new_frames / reduction)
        stopped_at = torch.full((batch,), -1, dtype=torch.long, device=device)
        frames, attentions = [], []
        text_start, text_end = latents.shape[1], latents.shape[1] + input_ids.shape[1]
        for step in range(max_steps):
            # Every step adds one key: the start vector at step 0 (after the prefix), the new step afterwards.
            key_valid = torch.cat([key_valid, key_valid.new_ones(batch, 1)], dim=1)
            store = dict.fromkeys(config.guided_attention_layers) if output_attentions else None
            hidden = self.backbone(
                inputs_embeds=step_input,
                attention_mask=_causal_mask(key_valid, step_input.shape[1]),
                past_key_values=cache,
                use_cache=True,
                xtts_attention_store=store,
            ).last_hidden_state[:, -1]  # (batch, hidden)
            if store is not None:
                # The last query is this step's; its weights over the text keys, mean over layers and heads.
                text = torch.stack([p[:, :, -1, text_start:text_end] for p in store.values()]).mean(dim=(0, 2))
                attention = text / text.sum(dim=-1, keepdim=True).clamp_min(1e-8)
                attentions.append(attention.masked_fill((stopped_at >= 0).unsqueeze(-1), 0.0))
            step_frames = self.mel_head(hidden)  # (batch, r * n_mels), normalized
            frames.append(step_frames)
            stops = torch.sigmoid(self.stop_head(hidden).squeeze(-1).float()) > stop_threshold
            stopped_at = torch.where((stopped_at < 0) & stops, step, stopped_at)
            if bool((stopped_at >= 0).all()):
                break
            if step + 1 < max_steps:
                step_input = self._step_embeddings(step_frames.unsqueeze(1), first_step=step + 1)

        hit_max_length = stopped_at < 0
        steps_run = len(frames)
        lengths = torch.where(hit_max_length, steps_run * reduction, (stopped_at + 1) * reduction)
        lengths = lengths.clamp(max=max_new_frames)
        total = int(lengths.max())
        mel_before = torch.stack(frames, dim=1).reshape(batch, steps_run * reduction, config.n_mels)[:, :total]
        frame_mask = _length_mask(lengths, total)
        mel_after = self.postnet(mel_before, frame_mask)
        silence = math.log(config.mel_config.log_clamp)
        padding = ~frame_mask.unsqueeze(-1)
        return XttsGenerationOutput(
            mel=self._denormalize(mel_after).masked_fill(padding, silence),
            mel_lengths=lengths,
            hit_max_length=hit_max_length,
            mel_before=self._denormalize(mel_before).masked_fill(padding, silence),
            text_mel_attention=torch.stack(attentions, dim=1).float() if output_attentions else None,
        )

    @torch.no_grad()
    def synthesize(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.LongTensor | None = None,
        *,
        reference_mel: torch.FloatTensor | None = None,
        reference_mel_lengths: torch.LongTensor | None = None,
        conditioning_latents: torch.FloatTensor | None = None,
        max_new_frames: int | None = None,
        stop_threshold: float = 0.5,
        vocoder=None,
    ) -> tuple[list[np.ndarray], list[bool]]:
        r"""
        Text to waveforms: [`~XttsForTextToSpeech.generate_mel`], then a vocoder.

        Args:
            input_ids, attention_mask, reference_mel, reference_mel_lengths, conditioning_latents, max_new_frames,
            stop_threshold:
                As for `generate_mel`.
            vocoder (`Callable`, *optional*):
                `(log_mel (batch, frames, n_mels), lengths) -> list of 1-D waveforms`, e.g. from
                `kurdish_tts.models.xtts.load_vocoder`; Griffin-Lim on the model's mel settings when unset.

        Returns:
            `tuple[list[np.ndarray], list[bool]]`: one float32 waveform per example, at `config.mel["sampling_rate"]`,
            and whether each hit the length limit.
        """
        generated = self.generate_mel(
            input_ids,
            attention_mask,
            reference_mel=reference_mel,
            reference_mel_lengths=reference_mel_lengths,
            conditioning_latents=conditioning_latents,
            max_new_frames=max_new_frames,
            stop_threshold=stop_threshold,
        )
        if vocoder is None:
            from .vocoder import GriffinLimVocoder

            vocoder = GriffinLimVocoder(self.config.mel_config)
        waveforms = vocoder(generated.mel.float(), generated.mel_lengths)
        return [waveform.float().cpu().numpy() for waveform in waveforms], generated.hit_max_length.tolist()
