import os

import datasets
import pytest
from datasets import Audio, Dataset

from kurdish_tts.audio import load_audio
from kurdish_tts.data.sources import DataSourceError, load_common_voice, load_hf_dataset, load_ljspeech, load_source

from .testing_utils import KURMANJI_SENTENCES, make_common_voice, make_ljspeech, speech_like, write_clip

COLUMNS = ["id", "audio", "text", "speaker"]


class TestLJSpeech:
    def test_ljspeech_two_three_and_four_columns(self, tmp_dir):
        make_ljspeech(tmp_dir, [("a", "x"), ("b", "y"), ("c", "z")])
        (tmp_dir / "metadata.csv").write_text(
            "a|Şev baş\nb|Sala 1991|Sala hezar û neh sed û nod û yek\nc|Çi?||dengbêj_2\n", encoding="utf-8"
        )
        source = load_ljspeech(tmp_dir)
        assert source.dataset.column_names == COLUMNS
        rows = source.dataset.to_list()
        assert [r["id"] for r in rows] == ["a", "b", "c"]
        # A non-empty normalized_text column is what is spoken.
        assert [r["text"] for r in rows] == ["Şev baş", "Sala hezar û neh sed û nod û yek", "Çi?"]
        assert [r["speaker"] for r in rows] == ["speaker_0", "speaker_0", "dengbêj_2"]
        assert rows[0]["audio"]["path"].endswith("wavs/a.wav") and rows[0]["audio"]["bytes"] is None

    def test_ljspeech_missing_audio_is_kept_for_reporting(self, tmp_dir):
        make_ljspeech(tmp_dir, [("a", "yek")])
        with (tmp_dir / "metadata.csv").open("a", encoding="utf-8") as handle:
            handle.write("ghost|du\na|sê\n")
        rows = load_ljspeech(tmp_dir).dataset.to_list()
        assert [r["id"] for r in rows] == ["a", "ghost", "a#2"]
        assert not os.path.exists(rows[1]["audio"]["path"])

    def test_ljspeech_without_metadata_says_what_is_missing(self, tmp_dir):
        with pytest.raises(DataSourceError, match="metadata.csv is missing"):
            load_ljspeech(tmp_dir)

    def test_ljspeech_fingerprint_follows_audio_files(self, tmp_dir):
        make_ljspeech(tmp_dir, [("a", "yek"), ("b", "du")])
        first = load_ljspeech(tmp_dir).fingerprint
        assert load_ljspeech(tmp_dir).fingerprint == first
        write_clip(tmp_dir / "wavs" / "b.wav", speech_like(2.0, 22050, seed=9), 22050)
        os.utime(tmp_dir / "wavs" / "b.wav", ns=(1, 1))
        assert load_ljspeech(tmp_dir).fingerprint != first


class TestCommonVoice:
    ROWS = [
        {"client_id": "spk1", "path": "c1.mp3", "sentence": KURMANJI_SENTENCES[0], "up_votes": 2, "down_votes": 0},
        {"client_id": "spk1", "path": "c2.mp3", "sentence": KURMANJI_SENTENCES[1], "up_votes": 5, "down_votes": 0},
        {"client_id": "spk2", "path": "c3.mp3", "sentence": KURMANJI_SENTENCES[2], "up_votes": 1, "down_votes": 0},
        {"client_id": "spk2", "path": "c4.mp3", "sentence": KURMANJI_SENTENCES[3], "up_votes": 3, "down_votes": 1},
        {"client_id": "spk3", "path": "c5.mp3", "sentence": KURMANJI_SENTENCES[4], "up_votes": "", "down_votes": ""},
    ]

    def test_common_voice_vote_filter_and_speakers(self, tmp_dir):
        make_common_voice(tmp_dir, self.ROWS)
        source = load_common_voice(tmp_dir)
        rows = source.dataset.to_list()
        assert [r["id"] for r in rows] == ["c1", "c2"]
        assert [r["speaker"] for r in rows] == ["spk1", "spk1"]
        assert source.filtered == {"votes": 3}
        assert rows[0]["audio"]["path"].endswith("clips/c1.mp3")
        decoded = load_audio(rows[0]["audio"], 16000)
        assert decoded.orig_sampling_rate == 48000 and abs(decoded.duration - 1.5) < 0.06

    def test_common_voice_thresholds_and_joined_splits(self, tmp_dir):
        make_common_voice(tmp_dir, self.ROWS[:3], split="train")
        make_common_voice(tmp_dir, self.ROWS[3:], split="dev")
        source = load_common_voice(tmp_dir, split="train+dev", min_up_votes=0, max_down_votes=1)
        assert [r["id"] for r in source.dataset.to_list()] == ["c1", "c2", "c3", "c4", "c5"]

    def test_common_voice_missing_split_lists_present_ones(self, tmp_dir):
        make_common_voice(tmp_dir, self.ROWS[:1], split="train")
        with pytest.raises(DataSourceError, match="present: train"):
            load_common_voice(tmp_dir, split="validated")

    def test_common_voice_everything_filtered_is_an_error(self, tmp_dir):
        make_common_voice(tmp_dir, self.ROWS[2:3])
        with pytest.raises(DataSourceError, match="lower --min_up_votes"):
            load_common_voice(tmp_dir)


def _hub_like_dataset(tmp_dir) -> Dataset:
    """A dataset with the column layout of amedcj/kurmanji-commonvoice, audio embedded as bytes."""
    clips = [write_clip(tmp_dir / "src" / f"k{i}.flac", speech_like(1.0, 48000, seed=i), 48000) for i in range(3)]
    data = {
        "client_id": ["s1", "s2", "s2"],
        "path": [{"bytes": c.read_bytes(), "path": c.name} for c in clips],
        "sentence": KURMANJI_SENTENCES[:3],
        "up_votes": [2, 0, 4],
        "down_votes": [0, 0, 0],
    }
    return Dataset.from_dict(data).cast_column("path", Audio(decode=False))


class TestHfDatasets:
    def test_save_to_disk_dataset_with_hub_columns(self, tmp_dir):
        _hub_like_dataset(tmp_dir).save_to_disk(str(tmp_dir / "disk"))
        source = load_hf_dataset(str(tmp_dir / "disk"))
        assert source.kind == "disk" and source.filtered == {"votes": 1}
        rows = source.dataset.to_list()
        assert source.dataset.column_names == COLUMNS
        assert [r["speaker"] for r in rows] == ["s1", "s2"]
        assert [r["id"] for r in rows] == ["k0", "k2"]
        assert rows[0]["audio"]["bytes"] and load_audio(rows[0]["audio"], 16000).orig_sampling_rate == 48000

    def test_parquet_with_custom_columns_and_no_vote_columns(self, tmp_dir):
        dataset = _hub_like_dataset(tmp_dir).remove_columns(["up_votes", "down_votes"])
        dataset = dataset.rename_columns({"path": "clip", "sentence": "transcript", "client_id": "voice"})
        dataset.to_parquet(str(tmp_dir / "data.parquet"))
        source = load_source(
            str(tmp_dir / "data.parquet"), audio_column="clip", text_column="transcript", speaker_column="voice"
        )
        assert source.kind == "parquet" and len(source.dataset) == 3 and source.filtered == {}
        assert source.dataset[1]["speaker"] == "s2"

    def test_audiofolder(self, tmp_dir):
        folder = tmp_dir / "af"
        for i in range(2):
            write_clip(folder / f"f{i}.wav", speech_like(0.8, 16000, seed=i), 16000)
        (folder / "metadata.csv").write_text(
            "file_name,transcription\nf0.wav,Şev baş\nf1.wav,Roj baş\n", encoding="utf-8"
        )
        source = load_source(str(folder), text_column="transcription", audio_column="audio", speaker_column=None)
        assert source.kind == "audiofolder"
        assert sorted(r["text"] for r in source.dataset.to_list()) == ["Roj baş", "Şev baş"]

    def test_missing_column_names_the_fix(self, tmp_dir):
        _hub_like_dataset(tmp_dir).save_to_disk(str(tmp_dir / "disk"))
        with pytest.raises(DataSourceError, match="--text_column"):
            load_hf_dataset(str(tmp_dir / "disk"), text_column="transcript")

    def test_unreachable_hub_names_offline_options(self, monkeypatch):
        def offline(*args, **kwargs):
            raise ConnectionError("Couldn't reach the Hugging Face Hub")

        monkeypatch.setattr(datasets, "load_dataset", offline)
        with pytest.raises(DataSourceError, match="bundled demo corpus"):
            load_source("amedcj/kurmanji-commonvoice")


def test_load_source_detects_each_layout(tmp_dir):
    make_ljspeech(tmp_dir / "lj", [("a", "yek")])
    make_common_voice(tmp_dir / "cv", TestCommonVoice.ROWS[:1])
    assert load_source(str(tmp_dir / "lj")).kind == "ljspeech"
    assert load_source(str(tmp_dir / "cv")).kind == "common_voice"
    with pytest.raises(DataSourceError, match="does not exist"):
        load_source(str(tmp_dir / "nowhere"))
