"""Speech level: how loud a clip is while someone speaks, and the gain that brings synthesized speech to the level
of a recording.

A model trained with an L1 loss on log-mels predicts the middle of what it has seen: its frames are flatter than a
recording's, the loud vowels lose the most, and since a clip's RMS is dominated by its loudest frames the waveform
comes out quiet (the tiny XTTS-style model's clones were 14-17 dB below the recordings, though their mean log-mel
was only 0.2-0.6 nats lower: `benchmarks/xtts_clone_level.py`). Matching the clone's speech level to the reference clip's puts the voice where the user
recorded it, without touching its spectrum.

Levels are measured on log-mels, so that a reference given as a log-mel (as the cloner and the benchmarks pass it)
and a waveform turned into one with the same `MelConfig` are compared on the same scale: scaling a waveform by `g`
adds `log g` to every mel value, so differences of these levels are differences in dB of the waveforms.
"""

from __future__ import annotations

import math

import numpy as np
import torch

# Frames within this many dB of the loudest count as speech (pauses and edge silence do not): the active level of
# ITU-T P.56 in spirit, simpler in letter.
ACTIVE_RANGE_DB = 40.0
# A level match never puts the waveform's peak above this (dBFS), so that it cannot clip.
PEAK_CEILING_DBFS = -1.0
# Nor does it change the level by more than this: a clone that is near silence is a model failure to be seen, not
# noise to be amplified to speech level.
MAX_GAIN_DB = 30.0


def active_level_db(log_mel: torch.Tensor | np.ndarray) -> float:
    """The mean power of a log-mel's speech frames, in dB on the mel's own scale.

    Args:
        log_mel (`torch.Tensor` or `np.ndarray` of shape `(frames, n_mels)`): A natural-log mel (`mel_spectrogram(...).T`).

    Returns:
        `float`: 10·log10 of the mean over frames within `ACTIVE_RANGE_DB` of the loudest of each frame's mean squared
        mel magnitude. Only differences between two mels of the same `MelConfig` mean something (in dB).
    """
    values = torch.as_tensor(log_mel, dtype=torch.float64)
    if values.dim() != 2 or values.shape[0] == 0:
        raise ValueError(
            f"log_mel must have shape (frames, n_mels) with at least one frame, got {tuple(values.shape)}"
        )
    frame_power = torch.exp(2.0 * values).mean(dim=1)
    active = frame_power >= frame_power.max() * 10.0 ** (-ACTIVE_RANGE_DB / 10.0)
    return float(10.0 * torch.log10(frame_power[active].mean()))


def level_matching_gain_db(
    log_mel: torch.Tensor | np.ndarray,
    target_log_mel: torch.Tensor | np.ndarray,
    peak: float,
    *,
    max_gain_db: float = MAX_GAIN_DB,
    peak_ceiling_dbfs: float = PEAK_CEILING_DBFS,
) -> float:
    """The gain (dB) that brings speech whose log-mel is `log_mel` to the active level of `target_log_mel`.

    Args:
        log_mel (`(frames, n_mels)`): The log-mel of the waveform to scale.
        target_log_mel (`(frames, n_mels)`): The log-mel of the recording whose level is wanted (same `MelConfig`).
        peak (`float`): The waveform's largest absolute sample: the gain stops where the peak reaches
            `peak_ceiling_dbfs`.
        max_gain_db (`float`, *optional*): The largest change either way.
        peak_ceiling_dbfs (`float`, *optional*): The highest peak allowed after the gain.
    """
    gain = active_level_db(target_log_mel) - active_level_db(log_mel)
    gain = min(max(gain, -max_gain_db), max_gain_db)
    if peak > 0:
        gain = min(gain, peak_ceiling_dbfs - 20.0 * math.log10(peak))
    return gain


def apply_gain(waveform: np.ndarray, gain_db: float) -> np.ndarray:
    """`waveform` scaled by `gain_db` decibels, as float32."""
    return (np.asarray(waveform, dtype=np.float32) * np.float32(10.0 ** (gain_db / 20.0))).astype(np.float32)
