"""`XttsSynthesizer`: the evaluation `Synthesizer` for the XTTS-style voice-cloning model."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from ..audio.features import MelConfig, mel_spectrogram
from ..audio.io import load_audio
from ..text import normalize_text, tokenizer_characters
from .synthesis import SynthesisResult, _synchronize, inference

# A reference: a waveform (1-D, at the model's rate), a log-mel `(frames, n_mels)`, or an audio file to load.
Reference = np.ndarray | torch.Tensor | str | os.PathLike


@dataclass(frozen=True)
class GeneratedSpeech:
    """A waveform generated from text ids and a reference, with what evaluation and cloning report about it."""

    waveform: np.ndarray  # (samples,) float32
    seconds: float  # generation and vocoding, synchronized on a GPU
    hit_max_length: bool  # ended by the length cap, not by the stop head
    attention: np.ndarray  # (decoder steps, text tokens): each step's attention over the text


def generate_speech(
    model,
    inputs: Mapping[str, torch.Tensor],
    reference_mel: torch.Tensor,
    vocoder,
    *,
    seed: int,
    max_new_frames: int,
    stop_threshold: float,
) -> GeneratedSpeech:
    """Tokenized text (`input_ids`, `attention_mask`) and a `(1, frames, n_mels)` reference log-mel to speech, timed,
    under a fixed random state: the one generation path of `XttsSynthesizer` and `VoiceCloner`."""
    with inference(model, seed):
        _synchronize(model.device)
        began = time.perf_counter()
        generated = model.generate_mel(
            inputs["input_ids"],
            inputs["attention_mask"],
            reference_mel=reference_mel,
            max_new_frames=max_new_frames,
            stop_threshold=stop_threshold,
            output_attentions=True,
        )
        waveform = vocoder(generated.mel.float(), generated.mel_lengths)[0]
        _synchronize(model.device)
        seconds = time.perf_counter() - began
    steps = -(-int(generated.mel_lengths[0]) // model.config.reduction_factor)
    return GeneratedSpeech(
        waveform=waveform.float().cpu().numpy(),
        seconds=seconds,
        hit_max_length=bool(generated.hit_max_length[0]),
        attention=generated.text_mel_attention[0, :steps].float().cpu().numpy(),
    )


class XttsSynthesizer:
    r"""
    `Synthesizer` for an [`XttsForTextToSpeech`]: it speaks in the voice of a reference clip.

    Text goes through the package's normalizer, as for `VitsSynthesizer`. The voice comes from `reference`: one clip
    for every call, or a mapping speaker → clip from which `synthesize(text, speaker)` picks (the first clip for a
    speaker it does not know). Each clip is turned into a log-mel once, with the model's mel settings. Every call runs
    in eval mode under `no_grad` with a forked random state seeded from `seed`, and reports whether generation ran
    into its length limit.

    Args:
        model ([`XttsForTextToSpeech`]):
            The model.
        tokenizer (`transformers.VitsTokenizer`):
            Its tokenizer.
        reference (`np.ndarray`, `torch.Tensor`, `str`, `os.PathLike` or a `Mapping[str, ...]` of those):
            A waveform `(samples,)` at the model's rate, a log-mel `(frames, n_mels)`, or an audio file (decoded and
            resampled); or one of those per speaker.
        seed (`int`, *optional*, defaults to `0`):
            Seed of the forked random state.
        name (`str`, *optional*):
            The model's name in reports; defaults to its `name_or_path`.
        vocoder (`Callable`, *optional*):
            Mel → waveform (`kurdish_tts.models.xtts.load_vocoder`); Griffin-Lim on the model's mel settings when
            unset.
        max_new_frames (`int`, *optional*):
            Generation's length limit; the model's maximum when unset.
        stop_threshold (`float`, *optional*, defaults to `0.5`):
            Stop probability that ends generation.
    """

    def __init__(
        self,
        model,
        tokenizer,
        *,
        reference: Reference | Mapping[str, Reference],
        seed: int = 0,
        name: str | None = None,
        vocoder=None,
        max_new_frames: int | None = None,
        stop_threshold: float = 0.5,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.seed = seed
        self.name = name or getattr(model.config, "name_or_path", "") or type(model).__name__
        self.max_new_frames = max_new_frames
        self.stop_threshold = stop_threshold
        self._characters = tokenizer_characters(tokenizer)
        self._references = dict(reference) if isinstance(reference, Mapping) else {None: reference}
        if not self._references:
            raise ValueError("reference must hold at least one clip: the model needs a voice to clone")
        self._reference_mels: dict[str | None, torch.Tensor] = {}
        if vocoder is None:
            from ..models.xtts.vocoder import GriffinLimVocoder

            vocoder = GriffinLimVocoder(self.mel_config)
        self.vocoder = vocoder

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def mel_config(self) -> MelConfig:
        return self.model.config.mel_config

    @property
    def sampling_rate(self) -> int:
        return self.mel_config.sampling_rate

    @classmethod
    def from_pretrained(
        cls,
        model_dir: str | os.PathLike,
        device: str | torch.device = "cpu",
        *,
        reference: Reference | Mapping[str, Reference],
        **kwargs,
    ) -> XttsSynthesizer:
        """Load a saved model folder (model + tokenizer, e.g. a run's `best_model`); `kwargs` go to the constructor."""
        from transformers import AutoTokenizer

        from ..models.xtts.modeling_xtts import XttsForTextToSpeech

        model = XttsForTextToSpeech.from_pretrained(model_dir).to(device)
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        return cls(model, tokenizer, reference=reference, name=str(model_dir), **kwargs)

    def reference_mel(self, speaker: str | None = None) -> torch.Tensor:
        """The log-mel `(frames, n_mels)` of `speaker`'s reference (the first reference for an unknown speaker)."""
        key = speaker if speaker in self._references else next(iter(self._references))
        if key not in self._reference_mels:
            self._reference_mels[key] = self._to_mel(self._references[key], key)
        return self._reference_mels[key]

    def _to_mel(self, reference: Reference, speaker: str | None) -> torch.Tensor:
        config = self.mel_config
        if isinstance(reference, (str, os.PathLike)):
            reference = load_audio(reference, config.sampling_rate).waveform
        values = torch.as_tensor(np.asarray(reference) if not torch.is_tensor(reference) else reference).float()
        if values.dim() == 2 and values.shape[-1] == config.n_mels:
            mel = values
        elif values.dim() == 1:
            mel = mel_spectrogram(values, config).T  # (frames, n_mels)
        else:
            raise ValueError(
                f"the reference of speaker {speaker!r} has shape {tuple(values.shape)}: pass a waveform (samples,) at "
                f"{config.sampling_rate} Hz, a log-mel (frames, {config.n_mels}), or an audio file"
            )
        if mel.shape[0] == 0:
            raise ValueError(f"the reference of speaker {speaker!r} is too short to give a single mel frame")
        return mel

    def synthesize(self, text: str, speaker: str | None = None) -> SynthesisResult:
        normalized = normalize_text(text, self._characters).text
        inputs = self.tokenizer(normalized, return_tensors="pt").to(self.device)
        reference = self.reference_mel(speaker).to(self.device).unsqueeze(0)  # (1, frames, n_mels)
        speech = generate_speech(
            self.model,
            inputs,
            reference,
            self.vocoder,
            seed=self.seed,
            max_new_frames=self.max_new_frames,
            stop_threshold=self.stop_threshold,
        )
        return SynthesisResult(
            waveform=speech.waveform,
            sampling_rate=self.sampling_rate,
            seconds=speech.seconds,
            hit_max_length=speech.hit_max_length,
            attention=speech.attention,
        )
