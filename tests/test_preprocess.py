import json
from unittest.mock import patch

import numpy as np
import pytest
import torch

from kurdish_tts.audio import MelConfig, mel_spectrogram
from kurdish_tts.audio.io import from_int16
from kurdish_tts.data import preprocess
from kurdish_tts.data.preprocess import PreprocessConfig, prepare_dataset
from kurdish_tts.data.sources import load_ljspeech
from kurdish_tts.text import build_kurmanji_tokenizer

from .testing_utils import KURMANJI_SENTENCES, make_ljspeech, speech_like, write_clip


@pytest.fixture(scope="module")
def tokenizer():
    return build_kurmanji_tokenizer()


def _messy_corpus(root):
    """Good clips plus one of each kind of bad input the issue lists."""
    rows = [(f"good{i}", KURMANJI_SENTENCES[i]) for i in range(4)]
    make_ljspeech(root, rows, sampling_rate=16000, seconds=2.0)
    write_clip(root / "wavs" / "stereo44k.wav", np.stack([speech_like(2.0, 44100), speech_like(2.0, 44100)], 1), 44100)
    (root / "wavs" / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio")
    write_clip(root / "wavs" / "zero.wav", np.zeros(0, dtype=np.float32), 16000)
    write_clip(root / "wavs" / "emptytext.wav", speech_like(2.0, 16000), 16000)
    write_clip(root / "wavs" / "unknown.wav", speech_like(2.0, 16000), 16000)
    write_clip(root / "wavs" / "long.wav", speech_like(4.0, 16000), 16000)
    write_clip(root / "wavs" / "silent.wav", np.zeros(32000, dtype=np.float32), 16000)
    lines = [f"{name}|{text}" for name, text in rows] + [
        "stereo44k|Sala 2024 xweş bû.",
        "corrupt|Ev pel xera ye.",
        "zero|Deng tune ye.",
        "emptytext|   ",
        "unknown|Straneke Almanî: schön, ähnlich.",
        "long|Ev deng pir dirêj e.",
        "silent|Bêdeng.",
        "missing|Ev pel tune ye.",
    ]
    (root / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


CONFIG = PreprocessConfig(min_duration=0.5, max_duration=3.0)


def test_prepare_counts_and_reports_every_bad_input(tmp_dir, tokenizer):
    prepared = prepare_dataset(load_ljspeech(_messy_corpus(tmp_dir / "corpus")), tokenizer, CONFIG, tmp_dir / "cache")
    assert not prepared.from_cache
    assert sorted(prepared.dataset["id"]) == ["good0", "good1", "good2", "good3", "stereo44k"]
    assert prepared.dropped == {
        "empty_audio": 1,
        "empty_text": 1,
        "silent_audio": 1,
        "too_long": 1,
        "undecodable_audio": 2,
        "unknown_characters": 1,
    }
    stats = {row["id"]: row for row in prepared.statistics.to_list()}
    assert len(stats) == 12
    assert stats["stereo44k"]["orig_sample_rate"] == 44100 and stats["stereo44k"]["orig_channels"] == 2
    assert "not found" in stats["missing"]["error"]
    assert json.loads(stats["unknown"]["unknown_chars"])["ä"] == 1
    # The numeral was spelled out before tokenizing.
    assert "du hezar û bîst û çar" in stats["stereo44k"]["text"]
    dropped_csv = (prepared.path / "dropped.csv").read_text(encoding="utf-8")
    assert dropped_csv.count("\n") == 1 + 7 and "corrupt,speaker_0,undecodable_audio" in dropped_csv
    info = json.loads((prepared.path / "info.json").read_text(encoding="utf-8"))
    assert info["kept"] == 5 and info["samples"] == 12


def test_prepared_columns_are_consistent(tmp_dir, tokenizer):
    rows = [(f"a{i}", KURMANJI_SENTENCES[i]) for i in range(3)]
    make_ljspeech(tmp_dir / "c", rows, sampling_rate=22050, seconds=2.5)
    prepared = prepare_dataset(load_ljspeech(tmp_dir / "c"), tokenizer, CONFIG, tmp_dir / "cache")
    assert len(prepared.dataset) == 3
    # Compact storage: 16-bit PCM and float16 mels (the numpy formatter widens them when reading).
    schema = prepared.dataset.data.schema
    assert str(schema.field("waveform").type) == "list<item: int16>"
    assert prepared.dataset.features["mel"].dtype == "float16"
    config = MelConfig()
    for row in prepared.dataset.with_format("numpy"):
        waveform = row["waveform"]
        assert len(waveform) == row["num_samples"]
        assert row["mel"].shape == (row["num_frames"], 80) == (len(waveform) // 256, 80)
        assert len(row["input_ids"]) == row["input_length"] == 2 * len(row["text"]) + 1
        assert row["input_ids"][0] == 0 and row["input_ids"][2] == 0  # interspersed blank
        # The cached mel is the shared MelConfig's mel of the cached waveform (float16 storage error only).
        expected = mel_spectrogram(torch.from_numpy(from_int16(waveform)), config).T.numpy()
        np.testing.assert_allclose(row["mel"].astype(np.float32), expected, atol=0.02)
        assert abs(row["duration"] - len(waveform) / 16000) < 1e-6


def test_second_run_reuses_cache_without_mapping(tmp_dir, tokenizer):
    corpus = make_ljspeech(tmp_dir / "c", [(f"a{i}", KURMANJI_SENTENCES[i]) for i in range(3)])
    first = prepare_dataset(load_ljspeech(corpus), tokenizer, CONFIG, tmp_dir / "cache")
    with patch.object(preprocess, "process_sample", side_effect=AssertionError("map ran again")) as mocked:
        second = prepare_dataset(load_ljspeech(corpus), tokenizer, CONFIG, tmp_dir / "cache")
    assert mocked.call_count == 0 and second.from_cache and second.path == first.path
    assert second.dataset["id"] == first.dataset["id"]
    assert [p.name for p in (tmp_dir / "cache").iterdir()] == [first.path.name]


def test_changed_config_or_audio_recomputes(tmp_dir, tokenizer):
    corpus = make_ljspeech(tmp_dir / "c", [(f"a{i}", KURMANJI_SENTENCES[i]) for i in range(2)])
    first = prepare_dataset(load_ljspeech(corpus), tokenizer, CONFIG, tmp_dir / "cache")
    other = PreprocessConfig(min_duration=0.5, max_duration=3.0, peak_normalize=0.9)
    second = prepare_dataset(load_ljspeech(corpus), tokenizer, other, tmp_dir / "cache")
    assert not second.from_cache and second.path != first.path
    write_clip(corpus / "wavs" / "a1.wav", speech_like(1.0, 22050, seed=7), 22050)
    third = prepare_dataset(load_ljspeech(corpus), tokenizer, CONFIG, tmp_dir / "cache")
    assert not third.from_cache and third.path not in {first.path, second.path}


def test_two_processes_give_the_same_cache(tmp_dir, tokenizer):
    corpus = make_ljspeech(tmp_dir / "c", [(f"a{i}", KURMANJI_SENTENCES[i]) for i in range(6)])
    single = prepare_dataset(load_ljspeech(corpus), tokenizer, CONFIG, tmp_dir / "one", num_proc=1)
    double = prepare_dataset(load_ljspeech(corpus), tokenizer, CONFIG, tmp_dir / "two", num_proc=2, batch_size=2)
    assert single.dataset["id"] == double.dataset["id"]
    for a, b in zip(single.dataset.with_format("numpy"), double.dataset.with_format("numpy")):
        np.testing.assert_array_equal(a["waveform"], b["waveform"])
        np.testing.assert_array_equal(a["mel"], b["mel"])


def test_trim_and_peak_normalize(tmp_dir, tokenizer):
    clip = np.concatenate(
        [np.zeros(16000, np.float32), speech_like(1.0, 16000, level=0.2), np.zeros(8000, np.float32)]
    )
    write_clip(tmp_dir / "c" / "wavs" / "x.wav", clip, 16000)
    (tmp_dir / "c" / "metadata.csv").write_text("x|Roj baş\n", encoding="utf-8")
    config = PreprocessConfig(min_duration=0.2, trim_top_db=40, peak_normalize=0.9)
    row = prepare_dataset(load_ljspeech(tmp_dir / "c"), tokenizer, config, tmp_dir / "cache").dataset[0]
    assert 1.0 <= row["duration"] < 1.3
    assert abs(np.abs(np.asarray(row["waveform"])).max() / 32767 - 0.9) < 0.01


def test_config_rejects_nonsense():
    with pytest.raises(ValueError, match="min_duration < max_duration"):
        PreprocessConfig(min_duration=5, max_duration=1)
    with pytest.raises(ValueError, match="peak_normalize"):
        PreprocessConfig(peak_normalize=3.0)
