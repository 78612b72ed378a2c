"""Waveform health: is a synthesized clip audio a listener can use, or an artefact that mel metrics cannot see?

The mel loss, the mel-cepstral distortion and the spectrogram images all go through 80 Slaney mel bands from 0 to
8 kHz, which give the DC bin and the Nyquist bin exactly zero weight. A decoder whose output is a full-scale 8 kHz
tone, or a constant offset at the rail, with the speech 20 dB below it, scores well on all of them. These figures
look at the samples themselves:

| key | what | healthy (`HealthThresholds` defaults) |
| --- | --- | --- |
| `clipped` | share of samples with `abs(x) >= 0.99` | < 0.1 % |
| `dc_offset` | mean sample value | `abs` < 0.01 |
| `high_band` | share of the power above 7.5 kHz (the Nyquist tone) | < 2 % |
| `low_band` | share of the power below 50 Hz (offsets, rumble) | < 20 % |
| `rms_db` | RMS level in dBFS | above −60 dBFS (not silent) |
| `level_vs_reference_db` | RMS relative to the recording of the same text, dB | within ±6 dB |
| `silence` | share of 32 ms windows more than 50 dB under the loudest | < 90 % |
| `spectral_distance` | full-band log-magnitude distance to the recording, dB (`full_band_distance`) | (compared, not gated) |

Both the per-clip figures and the thresholds are plain numbers, so that training evaluations (`eval_health/...`),
best-model selection, the feedback gate, the doctor, `scripts/evaluate.py` and the model card all judge a waveform the
same way. The computations are torch, so a batch of generated segments is judged on the device it lives on.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

__all__ = [
    "HEALTH_KEYS",
    "HealthThresholds",
    "WaveformHealth",
    "batch_health",
    "full_band_distance",
    "health_problems",
    "multi_resolution_stft_distance",
    "pool_health",
    "pooled_segment_health",
    "waveform_health",
]

CLIP_LEVEL = 0.99
HIGH_BAND_HZ = 7500.0
LOW_BAND_HZ = 50.0
# Windows of the silence share: 32 ms at 16 kHz.
SILENCE_WINDOW_SECONDS = 0.032
SILENCE_TOP_DB = 50.0
# (n_fft, hop) pairs of the full-band distance: short windows see clicks and onsets, long ones hum and tones.
STFT_RESOLUTIONS = ((512, 128), (1024, 256), (2048, 512))
# Magnitudes below this (−100 dBFS per bin) count as this: digital silence must not dominate a log distance.
MAGNITUDE_FLOOR = 1e-5

# Report keys, in the order tables show them.
HEALTH_KEYS = (
    "clipped",
    "dc_offset",
    "high_band",
    "low_band",
    "rms_db",
    "level_vs_reference_db",
    "silence",
    "spectral_distance",
)


@dataclass(frozen=True)
class HealthThresholds:
    """Where a waveform stops being usable audio. A clip fails when any check fails.

    Args:
        max_clipped (`float`, *optional*, defaults to `0.001`):
            Largest share of samples at `abs(x) >= 0.99`.
        max_dc_offset (`float`, *optional*, defaults to `0.01`):
            Largest absolute mean sample value.
        max_high_band (`float`, *optional*, defaults to `0.02`):
            Largest share of the power above 7.5 kHz. Speech at 16 kHz holds well under 1 % there.
        max_low_band (`float`, *optional*, defaults to `0.2`):
            Largest share of the power below 50 Hz. Voiced speech starts near 80 Hz; more than this below 50 Hz is
            an offset or a rumble.
        min_rms_db (`float`, *optional*, defaults to `-60.0`):
            Quietest RMS level (dBFS) that still counts as sound rather than silence.
        max_level_difference_db (`float`, *optional*, defaults to `6.0`):
            Largest RMS difference to the recording of the same text, when there is one.
        max_silence (`float`, *optional*, defaults to `0.9`):
            Largest share of windows more than 50 dB below the clip's loudest window.
    """

    max_clipped: float = 0.001
    max_dc_offset: float = 0.01
    max_high_band: float = 0.02
    max_low_band: float = 0.2
    min_rms_db: float = -60.0
    max_level_difference_db: float = 6.0
    max_silence: float = 0.9


@dataclass(frozen=True)
class WaveformHealth:
    """The health figures of one clip (see the module docstring); `None` where there is no reference to compare to."""

    clipped: float
    dc_offset: float
    high_band: float
    low_band: float
    rms_db: float
    silence: float
    level_vs_reference_db: float | None = None
    spectral_distance: float | None = None

    def to_dict(self) -> dict[str, float | None]:
        return asdict(self)

    def problems(self, thresholds: HealthThresholds | None = None) -> list[str]:
        """What is wrong with this clip, in plain words; empty when it is healthy."""
        return health_problems(self.to_dict(), thresholds)

    @property
    def healthy(self) -> bool:
        return not self.problems()


def waveform_health(
    waveform: np.ndarray | torch.Tensor,
    sampling_rate: int,
    reference: np.ndarray | torch.Tensor | None = None,
    reference_sampling_rate: int | None = None,
) -> WaveformHealth:
    """The health of one clip, and with `reference` (the recording of the same text) its level and full-band
    distance to it.

    Args:
        waveform (`np.ndarray` or `torch.Tensor` of shape `(samples,)`):
            The clip, float in [-1, 1] (int16 PCM is scaled).
        sampling_rate (`int`):
            Its rate in Hz.
        reference (`np.ndarray` or `torch.Tensor` of shape `(samples,)`, *optional*):
            The recording; it may differ in length (the distance then aligns frames with DTW).
        reference_sampling_rate (`int`, *optional*):
            The recording's rate, when it differs; it is resampled to `sampling_rate`.
    """
    clip = _as_float_tensor(waveform)
    if clip.dim() != 1:
        raise ValueError(f"waveform_health takes one clip of shape (samples,), got {tuple(clip.shape)}")
    if clip.numel() == 0:
        raise ValueError("waveform_health got an empty clip: the model produced no audio")
    figures = {key: float(value[0]) for key, value in batch_health(clip.unsqueeze(0), sampling_rate).items()}
    level, distance = None, None
    if reference is not None:
        target = _as_float_tensor(reference)
        if reference_sampling_rate is not None and reference_sampling_rate != sampling_rate:
            import librosa

            target = torch.from_numpy(
                librosa.resample(target.numpy(), orig_sr=reference_sampling_rate, target_sr=sampling_rate)
            )
        level = figures["rms_db"] - _rms_db(target.unsqueeze(0))[0].item()
        distance = full_band_distance(clip, target)
    return WaveformHealth(**figures, level_vs_reference_db=level, spectral_distance=distance)


def batch_health(
    waveforms: torch.Tensor, sampling_rate: int, references: torch.Tensor | None = None
) -> dict[str, torch.Tensor]:
    """Per-item health figures of a batch of equal-length clips, as `(batch,)` float32 tensors on their device.

    Args:
        waveforms (`torch.Tensor` of shape `(batch, samples)` or `(batch, 1, samples)`):
            Generated audio in [-1, 1].
        sampling_rate (`int`):
            Their rate in Hz.
        references (`torch.Tensor`, same shape, *optional*):
            The recorded audio of the same segments: adds `level_vs_reference_db` and `spectral_distance`
            (`multi_resolution_stft_distance`, frame by frame, no alignment needed).
    """
    with torch.autocast(waveforms.device.type, enabled=False):
        clips = waveforms.detach().float().reshape(waveforms.shape[0], -1)
        total, high, low = _band_powers(clips, sampling_rate)
        total = total.clamp_min(1e-20)
        figures = {
            "clipped": (clips.abs() >= CLIP_LEVEL).float().mean(-1),
            "dc_offset": clips.mean(-1),
            "high_band": high / total,
            "low_band": low / total,
            "rms_db": _rms_db(clips),
            "silence": _silence_share(clips, sampling_rate),
        }
        if references is not None:
            targets = references.detach().float().reshape(clips.shape)
            figures["level_vs_reference_db"] = figures["rms_db"] - _rms_db(targets)
            figures["spectral_distance"] = multi_resolution_stft_distance(clips, targets)
    return figures


def pooled_segment_health(
    generated: torch.Tensor, target: torch.Tensor, sampling_rate: int
) -> dict[str, torch.Tensor]:
    """Health of a batch of decoded training segments against the recorded ones, pooled over the batch into scalar
    tensors (kept on the device, so that logging them costs no synchronization per batch).

    Segments are short and some are mostly pauses, so per-segment shares and levels are noisy; the band shares and
    the level are pooled by power instead (the batch's power above 7.5 kHz over its total power; its total power
    over the recording's), the clipped share and the absolute DC offset are means over the batch's samples and items,
    and `spectral_distance` is the mean multi-resolution STFT distance.
    """
    with torch.autocast(generated.device.type, enabled=False):
        clips = generated.detach().float().reshape(generated.shape[0], -1)
        targets = target.detach().float().reshape(clips.shape)
        total, high, low = _band_powers(clips, sampling_rate)
        total = total.sum().clamp_min(1e-20)
        return {
            "clipped": (clips.abs() >= CLIP_LEVEL).float().mean(),
            "dc_offset": clips.mean(-1).abs().mean(),
            "high_band": high.sum() / total,
            "low_band": low.sum() / total,
            "level_vs_reference_db": 10
            * torch.log10(clips.square().sum().clamp_min(1e-12) / targets.square().sum().clamp_min(1e-12)),
            "spectral_distance": multi_resolution_stft_distance(clips, targets).mean(),
        }


def multi_resolution_stft_distance(
    generated: torch.Tensor, reference: torch.Tensor, resolutions: Sequence[tuple[int, int]] = STFT_RESOLUTIONS
) -> torch.Tensor:
    """Mean absolute difference of log-magnitude STFTs in dB over every bin, DC and Nyquist included, averaged over
    several resolutions, per item `(batch,)`, for time-aligned clips of equal length (e.g. a decoded segment and the
    recorded one). A resolution whose window is longer than the clips is skipped."""
    generated = generated.float().reshape(generated.shape[0], -1)
    reference = reference.float().reshape(generated.shape)
    distances = []
    for n_fft, hop in resolutions:
        if generated.shape[-1] < n_fft:
            continue
        difference = (_log_magnitude_db(generated, n_fft, hop) - _log_magnitude_db(reference, n_fft, hop)).abs()
        distances.append(difference.mean(dim=(1, 2)))
    if not distances:
        # Segments shorter than every window (a tiny test model's): one resolution that fits them.
        n_fft = 2 ** int(math.log2(max(generated.shape[-1], 4)))
        difference = _log_magnitude_db(generated, n_fft, n_fft // 4) - _log_magnitude_db(reference, n_fft, n_fft // 4)
        distances.append(difference.abs().mean(dim=(1, 2)))
    return torch.stack(distances).mean(0)


def full_band_distance(
    generated: np.ndarray | torch.Tensor, reference: np.ndarray | torch.Tensor, n_fft: int = 1024, hop: int = 256
) -> float:
    """Full-band log-magnitude distance in dB between a synthesized clip and a recording of another length: frames
    are paired along the DTW path of their log-magnitude spectra (every bin, DC and Nyquist included), then the
    mean absolute dB difference of the paired frames is taken. A tone or an offset that the mel metrics ignore
    raises it by tens of dB."""
    from .mcd import dtw_path

    spectra = []
    for clip in (generated, reference):
        clip = _as_float_tensor(clip)
        if clip.numel() < n_fft:
            clip = torch.nn.functional.pad(clip, (0, n_fft - clip.numel()))
        spectra.append(_log_magnitude_db(clip.unsqueeze(0), n_fft, hop)[0].T.numpy())  # (frames, bins)
    synthesized, recorded = spectra
    path, _ = dtw_path(recorded, synthesized)
    return float(np.abs(recorded[path[:, 0]] - synthesized[path[:, 1]]).mean())


def health_problems(figures: Mapping[str, float | None], thresholds: HealthThresholds | None = None) -> list[str]:
    """Plain-word problems of a clip, or of a set's pooled figures, from the health keys (missing keys are skipped:
    a mean over items works as well as one clip).

    Example: `["51.3 % of the samples are clipped (limit 0.1 %)", "99 % of the power is above 7.5 kHz ..."]`.
    """
    limits = thresholds or HealthThresholds()
    found = []

    def value(key):
        number = figures.get(key)
        return None if number is None or (isinstance(number, float) and math.isnan(number)) else float(number)

    if (clipped := value("clipped")) is not None and clipped > limits.max_clipped:
        found.append(f"{100 * clipped:.1f} % of the samples are clipped (limit {100 * limits.max_clipped:g} %)")
    if (offset := value("dc_offset")) is not None and abs(offset) > limits.max_dc_offset:
        found.append(f"a DC offset of {offset:+.3f} (limit ±{limits.max_dc_offset:g})")
    if (high := value("high_band")) is not None and high > limits.max_high_band:
        found.append(
            f"{100 * high:.1f} % of the power is above {HIGH_BAND_HZ / 1000:g} kHz, a tone or hiss "
            f"(limit {100 * limits.max_high_band:g} %)"
        )
    if (low := value("low_band")) is not None and low > limits.max_low_band:
        found.append(
            f"{100 * low:.1f} % of the power is below {LOW_BAND_HZ:g} Hz, an offset or rumble "
            f"(limit {100 * limits.max_low_band:g} %)"
        )
    if (rms := value("rms_db")) is not None and rms < limits.min_rms_db:
        found.append(f"it is nearly silent ({rms:.1f} dBFS RMS, limit {limits.min_rms_db:g} dBFS)")
    if (level := value("level_vs_reference_db")) is not None and abs(level) > limits.max_level_difference_db:
        found.append(
            f"it is {abs(level):.1f} dB {'louder' if level > 0 else 'quieter'} than the recording "
            f"(limit ±{limits.max_level_difference_db:g} dB)"
        )
    if (silence := value("silence")) is not None and silence > limits.max_silence:
        found.append(f"{100 * silence:.0f} % of it is silence (limit {100 * limits.max_silence:g} %)")
    return found


def pool_health(items: Iterable[Mapping[str, float | None]]) -> dict[str, float]:
    """Set-level figures: the mean of each key over items (the absolute DC offset and level difference, so that
    opposite signs do not cancel), and `unhealthy`, the share of items with at least one problem."""
    items = list(items)
    pooled: dict[str, float] = {}
    for key in HEALTH_KEYS:
        values = [item[key] for item in items if item.get(key) is not None]
        if key in ("dc_offset", "level_vs_reference_db"):
            values = [abs(v) for v in values]
        if values:
            pooled[key] = float(np.mean(values))
    if items:
        pooled["unhealthy"] = float(np.mean([bool(health_problems(item)) for item in items]))
    return pooled


def _as_float_tensor(waveform) -> torch.Tensor:
    clip = torch.as_tensor(np.asarray(waveform) if not isinstance(waveform, torch.Tensor) else waveform)
    if not clip.is_floating_point():
        clip = clip.float() / 32768.0
    return clip.detach().float().cpu().reshape(-1)


def _band_powers(clips: torch.Tensor, sampling_rate: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per item `(batch,)`: the total power, the power above `HIGH_BAND_HZ` and below `LOW_BAND_HZ`."""
    power = torch.fft.rfft(clips, dim=-1).abs().square()
    frequencies = torch.fft.rfftfreq(clips.shape[-1], 1.0 / sampling_rate).to(clips.device)
    return power.sum(-1), power[:, frequencies > HIGH_BAND_HZ].sum(-1), power[:, frequencies < LOW_BAND_HZ].sum(-1)


def _rms_db(clips: torch.Tensor) -> torch.Tensor:
    return 10 * torch.log10(clips.square().mean(-1).clamp_min(1e-12))


def _silence_share(clips: torch.Tensor, sampling_rate: int) -> torch.Tensor:
    window = max(1, int(SILENCE_WINDOW_SECONDS * sampling_rate))
    if clips.shape[-1] < window:
        return torch.zeros(clips.shape[0], device=clips.device)
    frames = clips[:, : clips.shape[-1] // window * window].reshape(clips.shape[0], -1, window)
    level = 10 * torch.log10(frames.square().mean(-1).clamp_min(1e-12))  # (batch, windows)
    return (level < level.amax(-1, keepdim=True) - SILENCE_TOP_DB).float().mean(-1)


def _log_magnitude_db(clips: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    window = torch.hann_window(n_fft, device=clips.device)
    spectrum = torch.stft(clips, n_fft, hop, window=window, center=True, pad_mode="reflect", return_complex=True)
    return 20 * torch.log10(spectrum.abs().clamp_min(MAGNITUDE_FLOOR))  # (batch, bins, frames)
