"""Waveform health: planted tones, offsets and clipping are caught where the mel metrics are blind to them."""

import numpy as np
import pytest
import soundfile as sf
import torch

from kurdish_tts.data.demo_corpus import DEMO_CORPUS_DIR
from kurdish_tts.evaluation.mcd import mel_cepstral_distortion
from kurdish_tts.evaluation.metrics import score_pair, set_health_problems, summarize
from kurdish_tts.evaluation.waveform_health import (
    HEALTH_KEYS,
    HealthThresholds,
    WaveformHealth,
    batch_health,
    full_band_distance,
    health_problems,
    multi_resolution_stft_distance,
    pool_health,
    pooled_segment_health,
    waveform_health,
)

RATE = 16000


@pytest.fixture(scope="module")
def recording():
    waveform, rate = sf.read(DEMO_CORPUS_DIR / "wavs" / "kmr_demo_0001.flac", dtype="float32")
    assert rate == RATE
    return waveform


def nyquist_tone(length):
    return np.where(np.arange(length) % 2, 1.0, -1.0).astype(np.float32)


def tone_over(recording, clip=True):
    """What the trained models produced: the speech 14 dB down under a full-scale alternating (8 kHz) tone."""
    broken = 0.2 * recording + nyquist_tone(recording.shape[-1])
    return np.clip(broken, -1, 1) if clip else broken


class TestPlantedArtefacts:
    def test_the_recording_itself_is_healthy(self, recording):
        health = waveform_health(recording, RATE, recording)
        assert health.problems() == [] and health.healthy
        assert health.level_vs_reference_db == pytest.approx(0.0, abs=1e-6)
        assert health.spectral_distance == pytest.approx(0.0, abs=1e-6)

    def test_a_quieter_copy_is_healthy_and_its_level_is_measured(self, recording):
        health = waveform_health(0.7 * recording, RATE, recording)
        assert health.healthy
        assert health.level_vs_reference_db == pytest.approx(20 * np.log10(0.7), abs=1e-3)

    def test_a_nyquist_tone_over_the_speech(self, recording):
        health = waveform_health(tone_over(recording), RATE, recording)
        assert health.high_band > 0.99 and health.clipped > 0.5
        problems = " | ".join(health.problems())
        assert "above 7.5 kHz" in problems and "clipped" in problems and "louder than the recording" in problems

    def test_a_dc_offset_at_the_rail(self, recording):
        health = waveform_health(0.2 * recording - 0.98, RATE, recording)
        assert health.dc_offset == pytest.approx(-0.98, abs=0.01) and health.low_band > 0.99
        problems = " | ".join(health.problems())
        assert "DC offset of -0.98" in problems and "below 50 Hz" in problems

    def test_hard_clipping(self, recording):
        clipped = np.clip(6 * recording, -1, 1)
        health = waveform_health(clipped, RATE)
        assert health.clipped > 0.001 and health.high_band < 0.02 and abs(health.dc_offset) < 0.01
        assert [p for p in health.problems() if "clipped" in p]

    def test_silence(self):
        health = waveform_health(np.zeros(RATE, dtype=np.float32), RATE)
        assert any("silent" in problem for problem in health.problems())

    def test_int16_input_is_scaled(self, recording):
        pcm = (recording * 32767).astype(np.int16)
        assert waveform_health(pcm, RATE).rms_db == pytest.approx(waveform_health(recording, RATE).rms_db, abs=0.01)

    def test_thresholds_are_the_users(self, recording):
        health = waveform_health(np.clip(6 * recording, -1, 1), RATE)
        assert health.problems(HealthThresholds(max_clipped=0.5)) == []

    def test_an_empty_clip_is_refused_with_a_reason(self):
        with pytest.raises(ValueError, match="no audio"):
            waveform_health(np.zeros(0, dtype=np.float32), RATE)


class TestFullBandDistance:
    def test_sees_what_the_mel_cepstral_distortion_does_not(self, recording):
        """The speech at 0.2 under a full-scale Nyquist tone: below the 2.72 dB MCD once reported for a "good" run,
        and over 10 dB away on the full-band distance, where a 6 dB quieter copy stays under 6.5."""
        broken, quieter = tone_over(recording, clip=False), 0.5 * recording
        assert mel_cepstral_distortion(recording, broken, RATE).mcd < 2.72
        assert full_band_distance(broken, recording) > 10
        assert full_band_distance(quieter, recording) < 6.5

    def test_aligned_segments_over_several_resolutions(self, recording):
        segment = torch.from_numpy(recording[: 8192 * 2].reshape(2, 8192).copy())
        same = multi_resolution_stft_distance(segment, segment)
        broken = multi_resolution_stft_distance(torch.from_numpy(tone_over(segment.numpy())), segment)
        assert torch.allclose(same, torch.zeros(2)) and (broken > 10).all()

    def test_segments_shorter_than_every_window_still_get_a_distance(self):
        short = torch.randn(2, 128)
        assert multi_resolution_stft_distance(short, short * 0.5).shape == (2,)


class TestBatches:
    def test_batch_figures_equal_the_one_clip_figures(self, recording):
        clips = torch.from_numpy(np.stack([recording[:8192], tone_over(recording[:8192])]))
        figures = batch_health(clips, RATE)
        for index in range(2):
            one = waveform_health(clips[index], RATE)
            assert figures["clipped"][index] == pytest.approx(one.clipped)
            assert figures["high_band"][index] == pytest.approx(one.high_band)

    def test_pooled_segment_health_flags_a_tone_batch(self, recording):
        target = torch.from_numpy(recording[: 8192 * 3].reshape(3, 1, 8192).copy())
        healthy = pooled_segment_health(target * 0.9, target, RATE)
        broken = pooled_segment_health(torch.from_numpy(tone_over(target.numpy())), target, RATE)
        assert health_problems({k: float(v) for k, v in healthy.items()}) == []
        assert len(health_problems({k: float(v) for k, v in broken.items()})) >= 2
        assert all(value.dim() == 0 for value in broken.values())

    def test_pool_health_counts_unhealthy_clips_and_keeps_signs_from_cancelling(self, recording):
        healthy = waveform_health(recording * 0.9, RATE, recording).to_dict()
        broken = waveform_health(tone_over(recording), RATE, recording).to_dict()
        pooled = pool_health([healthy, broken, {**healthy, "dc_offset": -healthy["dc_offset"]}])
        assert pooled["unhealthy"] == pytest.approx(1 / 3)
        assert pooled["dc_offset"] == pytest.approx((2 * abs(healthy["dc_offset"]) + abs(broken["dc_offset"])) / 3)
        assert pooled["level_vs_reference_db"] > 0
        assert pool_health([]) == {}

    def test_report_keys_are_the_fields_of_a_health_result(self):
        # Tables and pooled figures iterate HEALTH_KEYS; a field added to WaveformHealth must be added there too.
        assert set(HEALTH_KEYS) == set(WaveformHealth.__dataclass_fields__)


class TestScoring:
    def test_score_pair_and_summary_report_health(self, recording):
        good = score_pair("a", recording, RATE, 0.9 * recording, RATE, ["mcd", "health"])
        bad = score_pair("b", recording, RATE, tone_over(recording), RATE, ["mcd", "health"])
        assert good.health["clipped"] == 0.0 and bad.health["high_band"] > 0.99
        summary = summarize([good, bad], ["mcd", "health"])
        assert summary["unhealthy"] == 0.5
        assert summary["clipped"] == pytest.approx((good.health["clipped"] + bad.health["clipped"]) / 2)
        assert any("above 7.5 kHz" in problem for problem in set_health_problems(summary))
        assert set_health_problems(summarize([good], ["health"])) == []

    def test_most_clips_unhealthy_fails_the_set_whatever_the_means(self, recording):
        summary = {"clipped": 0.0, "dc_offset": 0.0, "high_band": 0.0, "low_band": 0.0, "unhealthy": 0.75}
        assert set_health_problems(summary) == ["75 % of the clips fail a health check"]
