import shutil

import numpy as np
import pytest
import soundfile as sf

from kurdish_tts.cli.make_demo_corpus import main
from kurdish_tts.data import demo_corpus
from kurdish_tts.data.demo_corpus import (
    DEFAULT_VOICES,
    DEMO_CORPUS_DIR,
    DEMO_SENTENCES_FILE,
    ESPEAK_INSTALL_HINT,
    EspeakVoice,
    make_demo_corpus,
    read_sentences,
)

SENTENCES = [
    "Ez ji pisîkan hez dikim.",
    "Heyîn jî di nava vê hevsengiyê de ne û hev temam dikin.",
    "Amerîka ji hikûmeta Îranê bawer nake.",
]


@pytest.fixture
def espeak():
    # CI installs espeak-ng, so its absence is a broken environment: fail loudly instead of skipping.
    if shutil.which("espeak-ng") is None:
        pytest.fail(ESPEAK_INSTALL_HINT)


def _read_metadata(corpus_dir):
    lines = (corpus_dir / "metadata.csv").read_text(encoding="utf-8").splitlines()
    return [line.split("|") for line in lines]


def test_bundled_corpus_is_valid():
    rows = _read_metadata(DEMO_CORPUS_DIR)
    sentences = set(read_sentences(DEMO_SENTENCES_FILE))
    assert len(rows) >= 50
    assert len({row[3] for row in rows}) >= 3
    assert len({row[0] for row in rows}) == len(rows)

    total_bytes = (DEMO_CORPUS_DIR / "metadata.csv").stat().st_size
    for clip_id, text, normalized_text, speaker in rows:
        assert clip_id.startswith("kmr_demo_")
        assert text and text in sentences
        assert normalized_text == ""
        assert speaker in {voice.name for voice in DEFAULT_VOICES}
        path = DEMO_CORPUS_DIR / "wavs" / f"{clip_id}.flac"
        info = sf.info(path)
        assert (info.format, info.subtype, info.samplerate, info.channels) == ("FLAC", "PCM_16", 16000, 1)
        assert 0.5 <= info.duration <= 15.0
        total_bytes += path.stat().st_size
    assert total_bytes <= 5_000_000
    assert len(list((DEMO_CORPUS_DIR / "wavs").glob("*.flac"))) == len(rows)


def test_read_sentences_skips_comments_and_blank_lines(tmp_dir):
    path = tmp_dir / "sentences.txt"
    path.write_text("# header\n\nEz ji pisîkan hez dikim.\n  Roj baş.  \n", encoding="utf-8")
    assert read_sentences(path) == ["Ez ji pisîkan hez dikim.", "Roj baş."]


def test_make_demo_corpus_writes_valid_clips(espeak, tmp_dir):
    summary = make_demo_corpus(tmp_dir, SENTENCES, progress=False)

    rows = _read_metadata(tmp_dir)
    assert (summary.clips, summary.speakers) == (3, 3)
    assert sorted(row[1] for row in rows) == sorted(SENTENCES)
    assert [row[3] for row in rows] == [voice.name for voice in DEFAULT_VOICES[:3]]
    for clip_id, *_ in rows:
        samples, sample_rate = sf.read(tmp_dir / "wavs" / f"{clip_id}.flac", dtype="int16")
        assert sample_rate == 16000 and samples.ndim == 1
        assert 0.5 <= len(samples) / sample_rate <= 15.0
        # Peak-normalized to -1 dBFS: loud, but never clipped.
        assert 28000 < np.abs(samples.astype(np.int32)).max() < 32767
    assert summary.seconds > 1.5
    assert not list(tmp_dir.glob("wavs/.*"))  # no temporary files left behind


def test_make_demo_corpus_is_deterministic(espeak, tmp_dir):
    voices = [EspeakVoice("espeak_ku_f2", "ku+f2", speed=150, pitch=60)]
    make_demo_corpus(tmp_dir / "first", SENTENCES[:1], voices=voices, progress=False)
    make_demo_corpus(tmp_dir / "second", SENTENCES[:1], voices=voices, progress=False)

    first, _ = sf.read(tmp_dir / "first" / "wavs" / "kmr_demo_0001.flac", dtype="int16")
    second, _ = sf.read(tmp_dir / "second" / "wavs" / "kmr_demo_0001.flac", dtype="int16")
    np.testing.assert_array_equal(first, second)


def test_extra_clips_reread_sentences_with_other_speakers(espeak, tmp_dir):
    summary = make_demo_corpus(tmp_dir, SENTENCES[:2], voices=DEFAULT_VOICES[:2], num_clips=10, progress=False)

    rows = _read_metadata(tmp_dir)
    # Two sentences times two speakers is every distinct pair; asking for more cannot add anything.
    assert summary.clips == 4
    assert len({(row[1], row[3]) for row in rows}) == 4


def test_byte_budget_stops_early_and_removes_stale_clips(espeak, tmp_dir):
    make_demo_corpus(tmp_dir, SENTENCES, progress=False)
    summary = make_demo_corpus(tmp_dir, SENTENCES, max_bytes=60_000, progress=False)

    assert 1 <= summary.clips < 3
    assert summary.bytes <= 60_000
    assert len(list((tmp_dir / "wavs").glob("*.flac"))) == summary.clips == len(_read_metadata(tmp_dir))


def test_cli_writes_corpus_and_prints_summary(espeak, tmp_dir, capsys):
    sentences_file = tmp_dir / "sentences.txt"
    sentences_file.write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    output_dir = tmp_dir / "corpus"

    exit_code = main(
        ["--output_dir", str(output_dir), "--sentences", str(sentences_file), "--num_clips", "2"]
        + ["--voices", "espeak_ku_m3"]
    )

    assert exit_code == 0
    assert {row[3] for row in _read_metadata(output_dir)} == {"espeak_ku_m3"}
    assert "2 clips, 1 speakers" in capsys.readouterr().out


def test_missing_espeak_gives_install_hint(tmp_dir, monkeypatch):
    monkeypatch.setattr(demo_corpus.shutil, "which", lambda name: None)
    with pytest.raises(FileNotFoundError, match="apt-get install espeak-ng"):
        make_demo_corpus(tmp_dir, SENTENCES, progress=False)
