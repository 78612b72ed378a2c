"""Spectrogram and log-mel features shared by preprocessing, losses and evaluation.

There is exactly one `MelConfig`: the Arrow cache, the VITS mel loss and the evaluation metrics all read it, so a mel
computed on the CPU during preprocessing and one computed on the GPU from a generated segment are comparable. The
functions are plain torch, so they run on whatever device the waveform lives on.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass

import librosa
import torch


@dataclass(frozen=True)
class MelConfig:
    """STFT and mel parameters. The defaults are MMS-TTS's (`facebook/mms-tts-*`).

    Args:
        sampling_rate (`int`, *optional*, defaults to `16000`):
            Audio rate the features are computed at.
        n_fft (`int`, *optional*, defaults to `1024`):
            FFT size; the linear spectrogram has `n_fft // 2 + 1` bins (`VitsConfig.spectrogram_bins`).
        hop_length (`int`, *optional*, defaults to `256`):
            Samples per frame; must equal the product of the VITS decoder's `upsample_rates`.
        win_length (`int`, *optional*, defaults to `1024`):
            Hann window length.
        n_mels (`int`, *optional*, defaults to `80`):
            Mel bands.
        fmin (`float`, *optional*, defaults to `0.0`):
            Lowest mel band edge in Hz.
        fmax (`float`, *optional*, defaults to `8000.0`):
            Highest mel band edge in Hz (`None` = Nyquist).
        log_clamp (`float`, *optional*, defaults to `1e-5`):
            Magnitudes are clamped to this before the natural log, so silence maps to log(1e-5) ≈ -11.5.
    """

    sampling_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 256
    win_length: int = 1024
    n_mels: int = 80
    fmin: float = 0.0
    fmax: float | None = 8000.0
    log_clamp: float = 1e-5

    def __post_init__(self):
        if self.win_length > self.n_fft:
            raise ValueError(f"win_length ({self.win_length}) must not exceed n_fft ({self.n_fft})")
        if (self.n_fft - self.hop_length) % 2:
            raise ValueError(
                f"n_fft - hop_length must be even (got {self.n_fft} - {self.hop_length}): the signal is padded by "
                "half of it on both sides so that frames == samples // hop_length"
            )
        if self.fmax is not None and self.fmax > self.sampling_rate / 2:
            raise ValueError(f"fmax ({self.fmax}) is above the Nyquist frequency ({self.sampling_rate / 2})")

    @property
    def spectrogram_bins(self) -> int:
        return self.n_fft // 2 + 1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_vits_config(cls, config, **overrides) -> MelConfig:
        """Derive the STFT geometry from a `transformers.VitsConfig` instead of keeping a second copy of it.

        The hop is the product of the decoder's upsample rates (one frame becomes `hop` samples) and `n_fft` follows
        from `spectrogram_bins`; mel-only fields (`n_mels`, `fmin`, `fmax`) keep MMS defaults unless overridden.
        """
        n_fft = (config.spectrogram_bins - 1) * 2
        values = {
            "sampling_rate": config.sampling_rate,
            "n_fft": n_fft,
            "win_length": n_fft,
            "hop_length": math.prod(config.upsample_rates),
        }
        values.update(overrides)
        values.setdefault("fmax", min(cls.fmax, values["sampling_rate"] / 2))
        return cls(**values)

    def num_frames(self, num_samples: int) -> int:
        """Frames produced for a clip of `num_samples` samples (the padding makes this `num_samples // hop`)."""
        return num_samples // self.hop_length


@functools.lru_cache(maxsize=16)
def _mel_basis(config: MelConfig) -> torch.Tensor:
    basis = librosa.filters.mel(
        sr=config.sampling_rate, n_fft=config.n_fft, n_mels=config.n_mels, fmin=config.fmin, fmax=config.fmax
    )
    return torch.from_numpy(basis).float()  # (n_mels, spectrogram_bins)


def mel_filterbank(config: MelConfig, device: torch.device | str | None = None) -> torch.Tensor:
    """Slaney-normalized mel filterbank `(n_mels, spectrogram_bins)`, cached per config and device."""
    return _mel_basis_on(config, torch.device(device) if device is not None else torch.device("cpu"))


@functools.lru_cache(maxsize=16)
def _mel_basis_on(config: MelConfig, device: torch.device) -> torch.Tensor:
    return _mel_basis(config).to(device)


@functools.lru_cache(maxsize=16)
def _hann_window(win_length: int, device: torch.device) -> torch.Tensor:
    return torch.hann_window(win_length, device=device)


def linear_spectrogram(waveform: torch.Tensor, config: MelConfig) -> torch.Tensor:
    """Magnitude spectrogram as the VITS posterior encoder consumes it.

    Args:
        waveform (`torch.Tensor` of shape `(batch, samples)` or `(samples,)`):
            Audio in [-1, 1].

    Returns:
        `torch.Tensor` of shape `(batch, spectrogram_bins, samples // hop_length)` (batch dim kept as given), float32.
    """
    squeeze = waveform.dim() == 1
    if squeeze:
        waveform = waveform.unsqueeze(0)
    # The STFT is numerically sensitive (squared magnitudes of fp16 overflow), so it always runs in float32, also
    # inside a mixed-precision autocast region.
    with torch.autocast(waveform.device.type, enabled=False):
        magnitude = _linear_spectrogram(waveform.float(), config)
    return magnitude.squeeze(0) if squeeze else magnitude


def _linear_spectrogram(waveform: torch.Tensor, config: MelConfig) -> torch.Tensor:
    pad = (config.n_fft - config.hop_length) // 2
    # Reflection padding needs at least pad + 1 samples; shorter clips (a few ms) fall back to zero padding.
    mode = "reflect" if waveform.shape[-1] > pad else "constant"
    padded = torch.nn.functional.pad(waveform.unsqueeze(1), (pad, pad), mode=mode).squeeze(1)
    if padded.shape[-1] < config.n_fft:
        return waveform.new_zeros(waveform.shape[0], config.spectrogram_bins, 0)
    stft = torch.stft(
        padded,
        n_fft=config.n_fft,
        hop_length=config.hop_length,
        win_length=config.win_length,
        window=_hann_window(config.win_length, waveform.device),
        center=False,
        return_complex=True,
    )
    # The epsilon keeps the sqrt differentiable at exact zeros (silence).
    return torch.sqrt(stft.real.square() + stft.imag.square() + 1e-6)


def spectrogram_to_mel(spectrogram: torch.Tensor, config: MelConfig) -> torch.Tensor:
    """Linear magnitudes `(..., spectrogram_bins, frames)` → natural-log mel `(..., n_mels, frames)`."""
    basis = mel_filterbank(config, spectrogram.device)
    # Under autocast the matmul would run in half precision, and log of an fp16 underflow is -inf.
    with torch.autocast(spectrogram.device.type, enabled=False):
        mel = torch.matmul(basis, spectrogram.float())
        return torch.log(torch.clamp(mel, min=config.log_clamp))


def mel_spectrogram(waveform: torch.Tensor, config: MelConfig) -> torch.Tensor:
    """Log-mel spectrogram `(batch, n_mels, frames)` (or `(n_mels, frames)` for a 1-D waveform), float32."""
    return spectrogram_to_mel(linear_spectrogram(waveform, config), config)
