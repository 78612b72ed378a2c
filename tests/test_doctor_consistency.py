"""Model ↔ data consistency: each planted fault (sampling rate, hop, unknown characters, stale cache, vocabulary,
speakers) is caught with a fix, and a matching model and cache pass."""

import dataclasses

import pytest

from kurdish_tts.data import PreprocessConfig, load_ljspeech, prepare_dataset
from kurdish_tts.doctor import Status
from kurdish_tts.doctor.consistency import check_consistency
from kurdish_tts.models.vits import VitsForTraining, add_speaker_embeddings

from .doctor_testing import demo_subset, plant_stale_cache
from .testing_utils import tiny_model


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return demo_subset(tmp_path_factory.mktemp("doctor_corpus"), 5)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("doctor_caches")


@pytest.fixture(scope="module")
def expected(tokenizer):
    return PreprocessConfig(mel=tiny_model(tokenizer).mel_config)


@pytest.fixture(scope="module")
def prepared(corpus, tokenizer, expected, cache_dir):
    return prepare_dataset(load_ljspeech(corpus), tokenizer, expected, cache_dir)


def _checks(model, tokenizer, prepared, expected, speaker_to_id=None, **kwargs):
    checks = check_consistency(model, tokenizer, prepared, expected, prepared.dataset, speaker_to_id, **kwargs)
    return {check.name: check for check in checks}


def _failed(checks):
    return sorted(name for name, check in checks.items() if check.status == Status.FAIL)


def test_matching_model_and_cache_pass(tokenizer, prepared, expected):
    checks = _checks(tiny_model(tokenizer), tokenizer, prepared, expected, sample_text="Roj baş.")
    assert {check.status for check in checks.values()} == {Status.OK}, {n: c.evidence for n, c in checks.items()}
    assert "every cached clip has samples // 16 frames" in checks["hop length"].evidence


def test_model_with_another_sampling_rate(tokenizer, prepared, expected):
    model = tiny_model(tokenizer)
    # The constructor checks hop and bins against the model, but not the rate.
    planted = VitsForTraining(
        model.vits, model.discriminator, dataclasses.replace(model.mel_config, sampling_rate=22050)
    )
    checks = _checks(planted, tokenizer, prepared, expected)
    assert _failed(checks) == ["mel config of the cache", "sampling rate"]
    assert "loss mel config 22050 Hz" in checks["sampling rate"].evidence
    # The model is off, not the cache: the fix says so.
    for name in _failed(checks):
        assert "MelConfig.from_vits_config" in checks[name].fix


def test_cache_with_another_sampling_rate(corpus, tokenizer, expected, cache_dir):
    stale_mel = dataclasses.replace(expected.mel, sampling_rate=22050)
    plant_stale_cache(corpus, tokenizer, expected, stale_mel, cache_dir / "rate")
    planted = prepare_dataset(load_ljspeech(corpus), tokenizer, expected, cache_dir / "rate")  # finds the planted one
    checks = _checks(tiny_model(tokenizer), tokenizer, planted, expected)
    assert _failed(checks) == ["cache fingerprint", "mel config of the cache", "sampling rate"]
    rate = checks["sampling rate"]
    assert "cache record 22050 Hz" in rate.evidence and "cached audio 22050 Hz" in rate.evidence
    assert str(planted.path) in rate.fix and "--overwrite_cache" in rate.fix
    stale = checks["cache fingerprint"]
    assert "stale cache" in stale.evidence and "mel.sampling_rate 22050 (now 16000)" in stale.evidence


def test_cache_with_another_hop(corpus, tokenizer, expected, cache_dir):
    stale_mel = dataclasses.replace(expected.mel, hop_length=32)
    plant_stale_cache(corpus, tokenizer, expected, stale_mel, cache_dir / "hop")
    planted = prepare_dataset(load_ljspeech(corpus), tokenizer, expected, cache_dir / "hop")
    checks = _checks(tiny_model(tokenizer), tokenizer, planted, expected)
    assert "hop length" in _failed(checks) and "cache fingerprint" in _failed(checks)
    hop = checks["hop length"]
    assert "cache record 32" in hop.evidence and "they imply hop 32" in hop.evidence
    assert hop.details["clips_with_other_frame_count"] == len(planted.dataset)


def test_model_whose_loss_uses_another_hop(tokenizer, prepared, expected):
    model = tiny_model(tokenizer)
    model.mel_config = dataclasses.replace(model.mel_config, hop_length=32)  # after the constructor's check
    checks = _checks(model, tokenizer, prepared, expected)
    assert "hop length" in _failed(checks)
    assert "loss mel config 32" in checks["hop length"].evidence
    assert "from_vits_config" in checks["hop length"].fix


def test_unknown_letters(tmp_dir, tokenizer, expected):
    # Three of five transcripts in a script the Kurmanji vocabulary cannot speak.
    corpus = demo_subset(tmp_dir / "corpus", 5, texts={1: "Жизнь хороша.", 2: "Roj baş λόγος.", 4: "Straße."})
    prepared = prepare_dataset(load_ljspeech(corpus), tokenizer, expected, tmp_dir / "cache")
    checks = _checks(tiny_model(tokenizer), tokenizer, prepared, expected)
    assert _failed(checks) == ["characters the tokenizer cannot speak"]
    check = checks["characters the tokenizer cannot speak"]
    assert "3 of 5 clips (60%)" in check.evidence and "3 clip(s) dropped" in check.evidence
    assert {"ж", "λ", "ß"} <= set(check.details["letters"])
    assert "tokenizer" in check.fix


def test_unspeakable_sample_sentence_warns(tokenizer, prepared, expected):
    checks = _checks(tiny_model(tokenizer), tokenizer, prepared, expected, sample_text="Roj baş, Straße!")
    check = checks["characters the tokenizer cannot speak"]
    assert check.status == Status.WARN and "ß" in check.evidence


def test_vocabulary_larger_than_the_embedding(tokenizer, prepared, expected):
    model = VitsForTraining.from_size("tiny", tokenizer.vocab_size - 10)
    checks = _checks(model, tokenizer, prepared, expected)
    assert _failed(checks) == ["tokenizer vs embedding"]
    assert "tokenizer 39, model config 29, embedding rows 29" in checks["tokenizer vs embedding"].evidence


def test_speakers_against_embeddings(tokenizer, prepared, expected):
    voices = {"speaker_0": 0, "speaker_1": 1, "speaker_2": 2}
    checks = _checks(tiny_model(tokenizer), tokenizer, prepared, expected, speaker_to_id=voices)
    assert _failed(checks) == ["speakers vs speaker embeddings"]
    multi = add_speaker_embeddings(tiny_model(tokenizer), 3, 8)
    assert _checks(multi, tokenizer, prepared, expected, voices)["speakers vs speaker embeddings"].status == Status.OK
    # A multi-speaker model trained without speaker ids.
    assert _checks(multi, tokenizer, prepared, expected)["speakers vs speaker embeddings"].status == Status.WARN
