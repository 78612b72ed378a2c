"""Mel → waveform for the XTTS-style model: Griffin-Lim by default, or a user-named neural vocoder whose mel settings
match the model's."""

from __future__ import annotations

import functools
import json
import math
import os
from pathlib import Path

import torch

from ...audio.features import MelConfig, mel_filterbank

# Where a neural vocoder's folder records the mel settings it was trained on (`MelConfig.to_dict()`).
VOCODER_MEL_CONFIG_NAME = "mel_config.json"
# The same settings as an entry of the vocoder's `config.json`, for vocoders saved with them inside.
VOCODER_MEL_CONFIG_KEY = "kurdish_tts_mel"
GRIFFIN_LIM_NAMES = ("griffin-lim", "griffin_lim", "griffinlim")


class VocoderMismatchError(ValueError):
    """A vocoder was trained on other mel settings than the model's, or does not say which."""


class GriffinLimVocoder:
    r"""
    Log-mel → waveform without a trained network: the mel is mapped back to linear magnitudes through the
    filterbank, then the phase is estimated with fast Griffin-Lim (Perraudin et al., 2013, Griffin-Lim with momentum)
    using the same STFT as `kurdish_tts.audio.features`. Runs on the mel's device.

    The quality is that of Griffin-Lim (audibly phasey), but it works for any `MelConfig` and needs no download, so
    it is the default for evaluation samples during training.

    Args:
        mel_config (`MelConfig`):
            The settings the mels were computed with.
        n_iter (`int`, *optional*, defaults to `32`):
            Griffin-Lim iterations.
        momentum (`float`, *optional*, defaults to `0.99`):
            Momentum of fast Griffin-Lim (0 gives plain Griffin-Lim); must lie in [0, 1).
        nnls_iter (`int`, *optional*, defaults to `10`):
            Multiplicative non-negative least-squares updates that refine the pseudo-inverse magnitudes so that their
            mel matches the input (0 keeps the clamped pseudo-inverse).
        seed (`int`, *optional*, defaults to `0`):
            Seed of the random initial phase, so that the same mel always gives the same waveform.

    Example:

    ```python
    >>> vocoder = GriffinLimVocoder(model.config.mel_config)
    >>> waveforms = vocoder(generated.mel, generated.mel_lengths)  # list of (frames * hop_length,) tensors
    ```
    """

    def __init__(
        self, mel_config: MelConfig, n_iter: int = 32, momentum: float = 0.99, nnls_iter: int = 10, seed: int = 0
    ):
        if n_iter < 1:
            raise ValueError(f"n_iter must be at least 1, got {n_iter}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must lie in [0, 1), got {momentum}")
        if nnls_iter < 0:
            raise ValueError(f"nnls_iter must not be negative, got {nnls_iter}")
        self.mel_config = mel_config
        self.n_iter = n_iter
        self.momentum = momentum
        self.nnls_iter = nnls_iter
        self.seed = seed

    @property
    def sampling_rate(self) -> int:
        return self.mel_config.sampling_rate

    def linear_magnitudes(self, log_mel: torch.Tensor) -> torch.Tensor:
        """`(batch, frames, n_mels)` natural-log mel → non-negative linear magnitudes `(batch, bins, frames)`."""
        config = self.mel_config
        basis = mel_filterbank(config, log_mel.device)  # (n_mels, bins)
        mel = torch.exp(log_mel.float()).transpose(1, 2)  # (batch, n_mels, frames)
        magnitudes = torch.matmul(_pseudo_inverse(config, log_mel.device), mel).clamp_min(1e-8)
        # Multiplicative updates (Lee & Seung) keep the magnitudes non-negative while reducing |basis @ S - mel|².
        gram = basis.T @ basis  # (bins, bins)
        target = basis.T @ mel
        for _ in range(self.nnls_iter):
            magnitudes = magnitudes * target / (gram @ magnitudes).clamp_min(1e-10)
        return magnitudes

    @torch.no_grad()
    def __call__(self, log_mel: torch.Tensor, lengths: torch.Tensor | None = None) -> list[torch.Tensor]:
        """
        Args:
            log_mel (`torch.FloatTensor` of shape `(batch, frames, n_mels)`): Natural-log mels, padded.
            lengths (`torch.LongTensor` of shape `(batch,)`, *optional*): Real frames of each; all when unset.

        Returns:
            `list[torch.FloatTensor]`: one waveform of `length * hop_length` samples per example, on the mel's device.
        """
        config = self.mel_config
        if log_mel.dim() != 3 or log_mel.shape[-1] != config.n_mels:
            raise ValueError(f"log_mel must have shape (batch, frames, {config.n_mels}), got {tuple(log_mel.shape)}")
        batch, frames = log_mel.shape[:2]
        if lengths is None:
            lengths = torch.full((batch,), frames)
        with torch.autocast(log_mel.device.type, enabled=False):
            magnitudes = self.linear_magnitudes(log_mel)
            waveform = self._griffin_lim(magnitudes, frames)  # (batch, frames * hop)
        return [waveform[index, : int(length) * config.hop_length] for index, length in enumerate(lengths.tolist())]

    def _griffin_lim(self, magnitudes: torch.Tensor, frames: int) -> torch.Tensor:
        config = self.mel_config
        device = magnitudes.device
        # A centred STFT of `(columns - 1) * hop` samples has `columns` columns, and its reflection padding needs more
        # than `n_fft / 2` samples: a very short mel is extended by repeating its last frame (and trimmed below).
        min_columns = config.n_fft // (2 * config.hop_length) + 2
        if frames < min_columns:
            magnitudes = torch.cat([magnitudes, magnitudes[..., -1:].expand(-1, -1, min_columns - frames)], dim=-1)
        stft_kwargs = {
            "n_fft": config.n_fft,
            "hop_length": config.hop_length,
            "win_length": config.win_length,
            "window": torch.hann_window(config.win_length, device=device),
            "center": True,
        }
        num_samples = (magnitudes.shape[-1] - 1) * config.hop_length
        generator = torch.Generator().manual_seed(self.seed)
        phase = torch.rand(magnitudes.shape, generator=generator).to(device) * 2 * torch.pi
        angles = torch.polar(torch.ones_like(magnitudes), phase)
        previous = torch.zeros_like(angles)
        for _ in range(self.n_iter):
            signal = torch.istft(magnitudes * angles, length=num_samples, **stft_kwargs)
            rebuilt = torch.stft(signal, return_complex=True, **stft_kwargs)
            angles = rebuilt - previous * (self.momentum / (1 + self.momentum))
            angles = angles / angles.abs().clamp_min(1e-16)
            previous = rebuilt
        signal = torch.istft(magnitudes * angles, length=num_samples, **stft_kwargs)
        # Torch's centred STFT puts column t at sample t * hop; the package's STFT puts frame t at t * hop + hop / 2
        # (it pads by (n_fft - hop) / 2, see `linear_spectrogram`) and covers `frames * hop` samples: shift by half a
        # hop and pad the end to that length.
        shift = config.hop_length // 2
        signal = torch.nn.functional.pad(signal, (shift, frames * config.hop_length - num_samples - shift))
        return signal[:, : frames * config.hop_length]


@functools.lru_cache(maxsize=8)
def _pseudo_inverse(config: MelConfig, device: torch.device) -> torch.Tensor:
    return torch.linalg.pinv(mel_filterbank(config, device))  # (bins, n_mels)


class NeuralVocoder:
    """A `transformers` mel → waveform model (e.g. `SpeechT5HifiGan`) behind the vocoder call signature.

    Args:
        model (`torch.nn.Module`): Maps `(batch, frames, n_mels)` to `(batch, samples)`.
        mel_config (`MelConfig`): The mel settings it was trained on (checked against the model's by `load_vocoder`).
    """

    def __init__(self, model: torch.nn.Module, mel_config: MelConfig):
        self.model = model.eval()
        self.mel_config = mel_config

    @property
    def sampling_rate(self) -> int:
        return self.mel_config.sampling_rate

    @torch.no_grad()
    def __call__(self, log_mel: torch.Tensor, lengths: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Same contract as `GriffinLimVocoder.__call__`; the network is moved to the mel's device."""
        batch, frames = log_mel.shape[:2]
        if lengths is None:
            lengths = torch.full((batch,), frames)
        parameter = next(self.model.parameters())
        if parameter.device != log_mel.device:
            self.model.to(log_mel.device)
        waveform = self.model(log_mel.to(parameter.dtype))
        if waveform.dim() == 1:
            waveform = waveform.unsqueeze(0)
        samples_per_frame = waveform.shape[-1] // max(frames, 1)
        return [
            waveform[index, : int(length) * samples_per_frame].float() for index, length in enumerate(lengths.tolist())
        ]


def load_vocoder(name_or_path: str | os.PathLike | None, mel_config: MelConfig, **kwargs):
    r"""
    The vocoder a user names, checked against the model's mel settings.

    Args:
        name_or_path (`str` or `os.PathLike`, *optional*):
            `None` or `"griffin-lim"`: a [`GriffinLimVocoder`]. Otherwise a folder (or Hub id) of a `transformers`
            mel → waveform model: a `SpeechT5HifiGan` or `FastSpeech2ConformerHifiGan`, or any model `AutoModel`
            loads that maps `(batch, frames, n_mels)` log-mels to `(batch, samples)`. Its
            mel settings must be recorded next to it, in `mel_config.json` (`MelConfig.to_dict()`) or in a
            `kurdish_tts_mel` entry of its `config.json`.
        mel_config (`MelConfig`):
            The model's mel settings (`XttsConfig.mel_config`).
        kwargs (`dict[str, Any]`, *optional*):
            Passed to `GriffinLimVocoder` or to `from_pretrained`.

    Raises:
        `VocoderMismatchError` (a `ValueError`): the vocoder's mel settings differ from the model's (the message names
        each differing field), or are not recorded.
    """
    if name_or_path is None or str(name_or_path).lower() in GRIFFIN_LIM_NAMES:
        return GriffinLimVocoder(mel_config, **kwargs)
    import transformers

    try:
        config = transformers.AutoConfig.from_pretrained(name_or_path)
    except (OSError, ValueError) as error:
        raise OSError(
            f"could not load the vocoder {str(name_or_path)!r}: {error}\nPass a local vocoder folder, or "
            "'griffin-lim' (no download needed)."
        ) from error
    vocoder_mel = _recorded_mel_config(name_or_path, config)
    _check_mel_settings(vocoder_mel, mel_config, name_or_path)
    _check_geometry(config, mel_config, name_or_path)
    # HiFi-GAN vocoders are not in `AutoModel`'s mapping (they are loaded next to the acoustic model that uses them).
    model_class = getattr(transformers, _VOCODER_CLASSES.get(config.model_type, "AutoModel"))
    return NeuralVocoder(model_class.from_pretrained(name_or_path, **kwargs), vocoder_mel)


_VOCODER_CLASSES = {"speecht5_hifigan": "SpeechT5HifiGan", "hifigan": "FastSpeech2ConformerHifiGan"}


def _check_geometry(config, mel_config: MelConfig, name_or_path) -> None:
    """The network's own shape must agree with the recorded settings: input bands and samples per frame."""
    problems = []
    bands = getattr(config, "model_in_dim", None)
    if bands is not None and bands != mel_config.n_mels:
        problems.append(
            f"it reads {bands} mel bands (model_in_dim) but this model's mels have n_mels={mel_config.n_mels}"
        )
    upsampling = getattr(config, "upsample_rates", None)
    if upsampling is not None and math.prod(upsampling) != mel_config.hop_length:
        problems.append(
            f"it makes {math.prod(upsampling)} samples per frame (upsample_rates {list(upsampling)}) but this model's "
            f"mels use hop_length={mel_config.hop_length}"
        )
    if problems:
        raise VocoderMismatchError(
            f"the vocoder {str(name_or_path)!r} does not fit this model: " + "; ".join(problems)
        )


def _recorded_mel_config(name_or_path, config) -> MelConfig:
    recorded = getattr(config, VOCODER_MEL_CONFIG_KEY, None)
    path = Path(name_or_path) / VOCODER_MEL_CONFIG_NAME
    if recorded is None and path.is_file():
        recorded = json.loads(path.read_text(encoding="utf-8"))
    if recorded is None:
        raise VocoderMismatchError(
            f"the vocoder {str(name_or_path)!r} does not say which mel settings it was trained on: write them "
            f"(MelConfig.to_dict()) to {VOCODER_MEL_CONFIG_NAME} next to it, or to a {VOCODER_MEL_CONFIG_KEY!r} "
            "entry of its config.json"
        )
    try:
        return MelConfig(**recorded)
    except (TypeError, ValueError) as error:
        raise VocoderMismatchError(
            f"the vocoder {str(name_or_path)!r} records unusable mel settings: {error}"
        ) from error


def _check_mel_settings(vocoder_mel: MelConfig, model_mel: MelConfig, name_or_path) -> None:
    expected, actual = vocoder_mel.to_dict(), model_mel.to_dict()
    differences = [
        f"vocoder expects {field}={expected[field]}, this model's mels use {field}={actual[field]}"
        for field in expected
        if expected[field] != actual[field]
    ]
    if differences:
        raise VocoderMismatchError(
            f"the vocoder {str(name_or_path)!r} does not match this model's mel settings: "
            + "; ".join(differences)
            + ". Use a vocoder trained on the model's mel settings, or 'griffin-lim'."
        )
