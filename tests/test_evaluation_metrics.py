"""Objective metrics: MCD with DTW (and its `evaluate` module, offline), duration, F0, RTF, stop failures, CER, the
evaluator behind a model-agnostic synthesizer, and the report tables."""

import json
import math
import socket

import librosa
import numpy as np
import pytest

from kurdish_tts.audio import load_audio
from kurdish_tts.data.demo_corpus import DEMO_CORPUS_DIR
from kurdish_tts.evaluation import (
    MCD_METRIC_PATH,
    dtw_path,
    duration_ratio,
    f0_contour,
    load_mcd_metric,
    markdown_table,
    mel_cepstral_distortion,
    mel_cepstrum,
    metric_keys,
    parse_metric_groups,
    real_time_factor,
    stop_failure_rate,
)
from kurdish_tts.evaluation.asr import CtcTranscriber, character_error_rate, edit_distance, text_for_cer
from kurdish_tts.evaluation.evaluator import evaluate_synthesizer
from kurdish_tts.evaluation.metrics import F0Errors, ItemScore, f0_errors, summarize
from kurdish_tts.evaluation.report import build_report, format_metric, render_markdown
from kurdish_tts.evaluation.synthesis import EvaluationItem, SynthesisResult

from .tiny_asr import save_tiny_ctc

RATE = 16000


def demo_clip(number: int) -> np.ndarray:
    return load_audio(DEMO_CORPUS_DIR / "wavs" / f"kmr_demo_{number:04d}.flac", RATE).waveform


def tone(f0: float, seconds: float = 0.6, seed: int = 0) -> np.ndarray:
    """A harmonic tone with a little noise: voiced to pYIN at `f0`."""
    t = np.arange(int(seconds * RATE)) / RATE
    signal = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))
    rng = np.random.default_rng(seed)
    return (0.3 * signal / np.abs(signal).max() + 0.002 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.fixture(scope="module")
def speech():
    return demo_clip(1)


class TestMelCepstralDistortion:
    def test_identical_audio_is_zero(self, speech):
        result = mel_cepstral_distortion(speech, speech)
        assert result.mcd == 0.0
        assert result.reference_frames == result.synthesized_frames == result.path_length == len(speech) // 256

    def test_grows_with_added_noise(self, speech):
        rng = np.random.default_rng(0)
        noise = rng.standard_normal(len(speech)).astype(np.float32)
        power = np.sqrt(np.mean(speech**2))
        values = [
            mel_cepstral_distortion(speech, speech + noise * power * 10 ** (-snr / 20)).mcd
            for snr in (40, 30, 20, 10, 0)
        ]
        assert all(later > earlier for earlier, later in zip(values, values[1:])), values
        # The scale of the usual MCD: under a dB for faint noise, several dB for noise as loud as the speech.
        assert values[0] < 1.5 and values[-1] > 4, values

    def test_symmetric_within_dtw_tolerance(self, speech):
        other = demo_clip(2)
        stretched = librosa.effects.time_stretch(speech, rate=0.8)
        for first, second in ((speech, other), (speech, stretched)):
            forward = mel_cepstral_distortion(first, second)
            backward = mel_cepstral_distortion(second, first)
            # The DTW's total cost is exactly symmetric; only the choice among tied paths (the divisor) may differ.
            assert forward.mcd == pytest.approx(backward.mcd, rel=0.02)
            assert (forward.reference_frames, forward.synthesized_frames) == (
                backward.synthesized_frames,
                backward.reference_frames,
            )

    def test_alignment_forgives_timing_but_not_content(self, speech):
        stretched = librosa.effects.time_stretch(speech, rate=0.8)
        same_text_slower = mel_cepstral_distortion(speech, stretched).mcd
        different_sentence = mel_cepstral_distortion(speech, demo_clip(2)).mcd
        assert same_text_slower < different_sentence / 2, (same_text_slower, different_sentence)

    def test_loudness_does_not_count(self, speech):
        # c0 (energy) is left out, so a quieter copy stays close (only the clamped silence floor moves).
        assert mel_cepstral_distortion(speech, 0.5 * speech).mcd < 0.5

    def test_resamples_other_rates_to_the_scoring_geometry(self, speech):
        at_22k = librosa.resample(speech, orig_sr=RATE, target_sr=22050)
        assert mel_cepstral_distortion(at_22k, at_22k, 22050).reference_frames == len(speech) // 256

    def test_cepstrum_shape_and_coefficient_bounds(self, speech):
        assert mel_cepstrum(speech).shape == (len(speech) // 256, 24)
        assert mel_cepstrum(speech, num_coefficients=13).shape[1] == 13
        with pytest.raises(ValueError, match="num_coefficients"):
            mel_cepstrum(speech, num_coefficients=80)

    def test_a_clip_shorter_than_a_frame_is_an_error(self, speech):
        with pytest.raises(ValueError, match="empty sequence"):
            mel_cepstral_distortion(speech, np.zeros(100, dtype=np.float32))

    @pytest.mark.parametrize("shape", [(5, 7), (9, 4), (6, 6)])
    def test_dtw_matches_brute_force_dynamic_programming(self, shape):
        rng = np.random.default_rng(sum(shape))
        a, b = rng.standard_normal((shape[0], 3)), rng.standard_normal((shape[1], 3))
        path, distances = dtw_path(a, b)
        cost = np.linalg.norm(a[:, None] - b[None], axis=-1)
        best = np.full((shape[0] + 1, shape[1] + 1), np.inf)
        best[0, 0] = 0
        for i in range(1, shape[0] + 1):
            for j in range(1, shape[1] + 1):
                best[i, j] = cost[i - 1, j - 1] + min(best[i - 1, j - 1], best[i - 1, j], best[i, j - 1])
        assert distances.sum() == pytest.approx(best[-1, -1])
        assert tuple(path[0]) == (0, 0) and tuple(path[-1]) == (shape[0] - 1, shape[1] - 1)
        steps = np.diff(path, axis=0)
        assert ((steps >= 0) & (steps <= 1)).all() and (steps.sum(axis=1) >= 1).all()


def test_the_evaluate_module_loads_and_computes_without_network(monkeypatch, speech):
    def refuse(*args, **kwargs):
        raise OSError("network access in an offline test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert (MCD_METRIC_PATH / "mel_cepstral_distortion.py").is_file()
    metric = load_mcd_metric()
    noisy = speech + 0.01 * np.random.default_rng(0).standard_normal(len(speech)).astype(np.float32)
    result = metric.compute(predictions=[speech, noisy], references=[speech, speech], sampling_rate=RATE)
    assert result["mcd_per_item"][0] == 0.0
    assert result["mcd_per_item"][1] == pytest.approx(mel_cepstral_distortion(speech, noisy).mcd, rel=1e-5)
    assert result["mcd"] == pytest.approx(np.mean(result["mcd_per_item"]))
    assert result["path_lengths"][0] == len(speech) // 256


class TestProsodyAndSpeed:
    def test_duration_ratio(self):
        assert duration_ratio(2.0, 3.0) == 1.5
        with pytest.raises(ValueError):
            duration_ratio(0.0, 1.0)

    def test_real_time_factor_and_stop_failures(self):
        assert real_time_factor(0.5, 2.0) == 0.25
        assert real_time_factor(1.0, 0.0) == math.inf
        assert stop_failure_rate([True, False, False, False]) == 0.25
        assert math.isnan(stop_failure_rate([]))

    def test_f0_rmse_of_two_tones(self):
        reference, synthesized = f0_contour(tone(150), RATE), f0_contour(tone(160), RATE)
        path = np.stack([np.arange(len(reference))] * 2, axis=1)
        errors = f0_errors(reference, synthesized, path)
        assert errors.voiced_pairs > 0.8 * len(path)
        assert errors.rmse_hz() == pytest.approx(10.0, abs=1.5)
        assert errors.rmse_cents() == pytest.approx(1200 * np.log2(160 / 150), abs=15)
        assert f0_errors(reference, reference, path).rmse_hz() == 0.0

    def test_unvoiced_frames_do_not_count(self):
        noise = (0.1 * np.random.default_rng(0).standard_normal(RATE // 2)).astype(np.float32)
        path = np.stack([np.arange(20)] * 2, axis=1)
        errors = f0_errors(f0_contour(tone(150), RATE), f0_contour(noise, RATE), path)
        assert errors.voiced_pairs == 0 and math.isnan(errors.rmse_hz())

    def test_f0_is_pooled_over_frames_and_cer_over_characters(self):
        scores = [
            ItemScore(
                "a",
                1,
                1,
                1,
                0.1,
                f0=F0Errors(squared_hz=400.0, squared_cents=0, voiced_pairs=1),
                char_edits=1,
                reference_chars=10,
            ),  # fmt: skip
            ItemScore(
                "b",
                1,
                1,
                1,
                0.1,
                f0=F0Errors(squared_hz=0.0, squared_cents=0, voiced_pairs=99),
                char_edits=0,
                reference_chars=30,
            ),  # fmt: skip
        ]
        summary = summarize(scores, ["f0", "cer", "rtf"])
        assert summary["f0_rmse_hz"] == pytest.approx(2.0)  # sqrt(400 / 100), not the mean of 20 and 0
        assert summary["cer"] == pytest.approx(1 / 40)
        assert summary["rtf"] == pytest.approx(0.1)


class TestMetricNames:
    def test_groups_are_validated_and_ordered(self):
        assert parse_metric_groups("f0, mcd") == ("mcd", "f0")
        assert parse_metric_groups("all")[0] == "mcd" and "cer" in parse_metric_groups("all")
        with pytest.raises(ValueError, match="choose from mcd, duration"):
            parse_metric_groups("mcd,pesq")

    def test_keys(self):
        assert metric_keys(["duration", "mcd"]) == ("mcd", "duration_ratio", "duration_error")


class TestCharacterErrorRate:
    @pytest.mark.parametrize(
        "reference, hypothesis, distance",
        [("", "", 0), ("roj", "roj", 0), ("roj", "rojê", 1), ("roj baş", "roj bas", 1), ("abc", "", 3), ("", "ab", 2)],
    )
    def test_edit_distance(self, reference, hypothesis, distance):
        assert edit_distance(reference, hypothesis) == distance

    def test_both_sides_are_normalized(self):
        assert text_for_cer("«Roj BAŞ!»  Sala 2") == "roj baş sala du"
        assert character_error_rate(["Roj baş!"], ["roj bas"]) == pytest.approx(1 / 7)

    def test_empty_references_are_an_error(self):
        with pytest.raises(ValueError, match="no characters"):
            character_error_rate(["?!"], ["a"])


@pytest.fixture(scope="module")
def tiny_ctc(tmp_path_factory):
    return save_tiny_ctc(tmp_path_factory.mktemp("tiny_ctc"))


def test_ctc_transcriber_from_a_local_folder(tiny_ctc):
    transcriber = CtcTranscriber.from_pretrained(str(tiny_ctc))
    # Every frame says `a`; CTC collapses the repeats.
    assert transcriber.transcribe(tone(150, seconds=0.5), RATE) == "a"
    assert transcriber.transcribe(tone(150, seconds=0.5, seed=1)[::2], RATE // 2) == "a"


def test_ctc_transcriber_names_the_alternatives_when_missing(tmp_dir):
    with pytest.raises(OSError, match="--asr_model"):
        CtcTranscriber.from_pretrained(str(tmp_dir / "no_such_model"))


class Playback:
    """A `Synthesizer` that plays recordings back: no model, so the evaluator's bookkeeping is checked exactly."""

    name = "playback"
    sampling_rate = RATE

    def __init__(self, recordings: dict[str, np.ndarray], stuck: set[str] = frozenset()):
        import torch

        self.device = torch.device("cpu")
        self.recordings = recordings
        self.stuck = stuck
        self.calls = []

    def synthesize(self, text, speaker=None):
        self.calls.append(text)
        return SynthesisResult(self.recordings[text], RATE, seconds=0.5, hit_max_length=text in self.stuck)


class TestEvaluator:
    def test_a_model_that_reproduces_the_recordings_scores_perfectly(self, speech):
        items = [EvaluationItem("one", "yek", speech, RATE), EvaluationItem("two", "du", demo_clip(3), RATE)]
        synthesizer = Playback({"yek": speech, "du": demo_clip(3)}, stuck={"du"})
        evaluation = evaluate_synthesizer(synthesizer, items, "mcd,duration,rtf,stop_failure")
        metrics = evaluation.metrics
        assert metrics["mcd"] == 0.0 and metrics["duration_ratio"] == 1.0 and metrics["duration_error"] == 0.0
        assert metrics["stop_failure_rate"] == 0.5
        audio = (len(speech) + len(demo_clip(3))) / RATE
        assert metrics["rtf"] == pytest.approx(1.0 / audio)
        # One untimed warm-up call, then one per item.
        assert synthesizer.calls == ["yek", "yek", "du"]
        assert evaluation.device.startswith("cpu")

    def test_cer_through_the_transcriber(self, tiny_ctc, speech):
        items = [EvaluationItem("one", "ab", speech, RATE)]
        transcriber = CtcTranscriber.from_pretrained(str(tiny_ctc))
        evaluation = evaluate_synthesizer(Playback({"ab": speech}), items, "cer", transcriber=transcriber)
        assert evaluation.items[0].transcript == "a" and evaluation.metrics["cer"] == 0.5
        with pytest.raises(ValueError, match="ASR model"):
            evaluate_synthesizer(Playback({"ab": speech}), items, "cer")

    def test_a_clip_that_cannot_be_scored_is_reported_not_fatal(self, speech):
        items = [EvaluationItem("ok", "ok", speech, RATE), EvaluationItem("short", "short", speech, RATE)]
        synthesizer = Playback({"ok": speech, "short": np.zeros(64, dtype=np.float32)})
        evaluation = evaluate_synthesizer(synthesizer, items, "mcd,duration")
        assert [item.id for item in evaluation.failures] == ["short"]
        assert evaluation.metrics["mcd"] == 0.0  # the mean of the clips that have one
        assert evaluation.to_dict()["failures"] == 1


class TestReport:
    def models(self):
        return [
            {"name": "a", "device": "cpu", "num_items": 2, "metrics": {"mcd": 6.5, "duration_ratio": 1.2, "rtf": 0.1}},
            {
                "name": "b",
                "device": "cpu",
                "num_items": 2,
                "metrics": {"mcd": 5.25, "duration_ratio": 0.9, "rtf": None},
            },
        ]

    def test_side_by_side_table_marks_the_best(self):
        lines = markdown_table(self.models()).splitlines()
        assert lines[0].startswith("| model | clips | MCD (dB) ↓ | duration ratio (→ 1) | RTF ↓ |")
        assert lines[2] == "| `a` | 2 | 6.50 | 1.200 | **0.1** | cpu |"
        # Lower MCD wins; the ratio closest to 1 wins; a missing value is a dash.
        assert lines[3] == "| `b` | 2 | **5.25** | **0.900** | — | cpu |"

    def test_nan_is_written_as_null_and_shown_as_a_dash(self, speech):
        items = [EvaluationItem("one", "yek", speech, RATE)]
        evaluation = evaluate_synthesizer(Playback({"yek": speech}), items, "stop_failure")
        evaluation.metrics["stop_failure_rate"] = math.nan
        report = build_report([evaluation], data={"source": "demo", "clips": 1}, settings={})
        assert json.loads(json.dumps(report))["models"][0]["metrics"]["stop_failure_rate"] is None
        assert "| `playback` | 1 | — |" in render_markdown(report)
        assert format_metric("cer", 0.125) == "12.5 %"
