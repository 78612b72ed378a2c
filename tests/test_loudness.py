"""Speech level on log-mels and the gain that matches a clone to its reference (`kurdish_tts.audio.loudness`)."""

import numpy as np
import pytest
import torch

from kurdish_tts.audio.features import MelConfig, mel_spectrogram
from kurdish_tts.audio.loudness import (
    MAX_GAIN_DB,
    PEAK_CEILING_DBFS,
    active_level_db,
    apply_gain,
    level_matching_gain_db,
)

CONFIG = MelConfig()
RATE = CONFIG.sampling_rate


def syllables(seconds: float, amplitude: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    envelope = 0.2 + 0.8 * np.sin(2 * np.pi * 3 * t) ** 2
    voiced = np.sin(2 * np.pi * 150 * t) + 0.5 * np.sin(2 * np.pi * 450 * t) + 0.2 * rng.standard_normal(len(t))
    return (amplitude * envelope * voiced / np.abs(voiced).max()).astype(np.float32)


def log_mel(waveform: np.ndarray) -> torch.Tensor:
    return mel_spectrogram(torch.from_numpy(waveform), CONFIG).T


def test_a_gain_shifts_the_active_level_by_as_many_db():
    loud = syllables(2.0, 0.5)
    assert active_level_db(log_mel(loud)) - active_level_db(log_mel(loud * 0.1)) == pytest.approx(20.0, abs=0.05)


def test_pauses_and_edge_silence_do_not_lower_the_active_level():
    speech = syllables(2.0, 0.5)
    padded = np.concatenate([np.zeros(RATE, np.float32), speech, np.zeros(2 * RATE, np.float32)])
    # Plain RMS falls by 10·log10(5/2) ≈ 4 dB with the silence; the active level stays.
    assert active_level_db(log_mel(padded)) == pytest.approx(active_level_db(log_mel(speech)), abs=0.3)


def test_a_quiet_clone_is_raised_to_the_reference_level():
    reference, clone = syllables(3.0, 0.4, seed=1), syllables(2.0, 0.04, seed=2)
    gain = level_matching_gain_db(log_mel(clone), log_mel(reference), float(np.abs(clone).max()))
    assert gain == pytest.approx(20.0, abs=0.5)
    matched = apply_gain(clone, gain)
    assert matched.dtype == np.float32
    assert active_level_db(log_mel(matched)) == pytest.approx(active_level_db(log_mel(reference)), abs=0.05)


def test_the_gain_stops_at_the_peak_ceiling():
    reference, clone = syllables(3.0, 0.9), syllables(2.0, 0.04)
    clone[100] = 0.5  # one click: raising the clone by 27 dB would clip it
    gain = level_matching_gain_db(log_mel(clone), log_mel(reference), float(np.abs(clone).max()))
    assert gain == pytest.approx(PEAK_CEILING_DBFS - 20 * np.log10(0.5))
    assert np.abs(apply_gain(clone, gain)).max() <= 10 ** (PEAK_CEILING_DBFS / 20) + 1e-6


def test_near_silence_is_not_amplified_into_noise():
    reference, hiss = syllables(3.0, 0.5), syllables(2.0, 1e-5)
    gain = level_matching_gain_db(log_mel(hiss), log_mel(reference), float(np.abs(hiss).max()))
    assert gain == MAX_GAIN_DB


def test_a_loud_clone_is_turned_down():
    reference, clone = syllables(3.0, 0.05), syllables(2.0, 0.5)
    assert level_matching_gain_db(log_mel(clone), log_mel(reference), 0.5) == pytest.approx(-20.0, abs=0.5)


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="shape \\(frames, n_mels\\)"):
        active_level_db(torch.zeros(0, 80))
