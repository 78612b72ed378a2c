"""The smaller findings of issue 18: what the data commands say about rows filtered by votes, a clip libsndfile cannot
open, text in another script, audio recorded below the model's rate, and a Hub name without a network."""

import subprocess
import sys

import pytest

from kurdish_tts.audio.io import AudioDecodeError, read_audio
from kurdish_tts.cli import validate_data
from kurdish_tts.data.preprocess import PreprocessConfig, process_sample
from kurdish_tts.text import tokenizer_characters

from .testing_utils import checkout_env, make_common_voice, make_ljspeech, speech_like, write_clip


def run_validate(tmp_dir, data, capsys):
    report_dir = tmp_dir / "report"
    argv = ["--data", str(data), "--tokenizer", "kurmanji", "--cache_dir", str(tmp_dir / "cache")]
    code = validate_data.main([*argv, "--report_dir", str(report_dir)])
    return code, capsys.readouterr().out, (report_dir / "report.md").read_text()


def test_rows_removed_by_the_vote_filter_are_named_by_prepare_and_validate(tmp_dir, capsys):
    rows = [
        {"client_id": "s1", "path": f"c{i}.mp3", "sentence": "Roj baş.", "up_votes": 2, "down_votes": 0}
        for i in range(4)
    ]
    rows += [{"client_id": "s2", "path": "v.mp3", "sentence": "Şev baş.", "up_votes": 1, "down_votes": 0, "write_audio": False}]  # fmt: skip
    data = make_common_voice(tmp_dir / "cv", rows)
    code, printed, report = run_validate(tmp_dir, data, capsys)
    assert code == 0
    assert "kept 4 of 4 clips" in printed and "1 rows removed before preprocessing by the votes filter" in printed
    assert "the source's own filters removed 1 by the votes filter" in report and "--min_up_votes" in report


def test_a_clip_that_exists_but_cannot_be_decoded_is_not_called_missing(tmp_dir):
    damaged = tmp_dir / "damaged.mp3"
    damaged.write_text("<html>not found</html>" * 20)
    with pytest.raises(AudioDecodeError) as caught:
        read_audio(damaged)
    message = str(caught.value)
    assert "the file exists but is damaged" in message and "440 bytes" in message and "ffmpeg" in message
    with pytest.raises(AudioDecodeError, match="audio file not found"):
        read_audio(tmp_dir / "absent.wav")


def test_text_in_arabic_script_is_dropped_for_its_letters_not_as_empty(tmp_dir, tokenizer):
    clip = write_clip(tmp_dir / "a.wav", speech_like(2.0, 16000), 16000)
    allowed = tokenizer_characters(tokenizer)
    for drop_unknown_letters in (True, False):
        config = PreprocessConfig(drop_unknown_letters=drop_unknown_letters)
        row = process_sample("a", str(clip), "ڕۆژت باش", "s", tokenizer=tokenizer, allowed=allowed, config=config)
        assert row["drop_reason"] == "unknown_characters", row["error"]
        assert "Arabic script" in row["error"] and "Latin letters" in row["error"]
    config = PreprocessConfig()
    row = process_sample("b", str(clip), "  ", "s", tokenizer=tokenizer, allowed=allowed, config=config)
    assert row["drop_reason"] == "empty_text"


def test_clips_recorded_below_the_models_rate_are_flagged_as_upsampled(tmp_dir, capsys):
    data = make_ljspeech(
        tmp_dir / "corpus", [("a", "Roj baş."), ("b", "Şev baş."), ("c", "Ez têm.")], sampling_rate=16000
    )
    write_clip(data / "wavs" / "b.wav", speech_like(2.5, 8000, seed=1), 8000)
    code, printed, report = run_validate(tmp_dir, data, capsys)
    assert code == 0
    assert "1 kept clip was recorded below the model's 16000 Hz (e.g. at 8000 Hz) and upsampled" in report
    assert "e.g. b." in report


def test_a_hub_dataset_name_without_a_network_fails_at_once(tmp_dir):
    """No network (an endpoint nobody listens on): prepare switches to offline mode at once instead of spending ~30 s
    in huggingface_hub's retries, which it announces on stderr ("Retrying in 8s [Retry 5/5]")."""
    env = {key: value for key, value in checkout_env().items() if not key.endswith("_OFFLINE")}
    env["HF_ENDPOINT"] = "http://127.0.0.1:9"
    command = [sys.executable, "-c", "from kurdish_tts.cli import main; raise SystemExit(main())", "prepare", "--data",
               "no_such_user/no_such_dataset", "--tokenizer", "kurmanji", "--cache_dir", str(tmp_dir / "cache")]  # fmt: skip
    result = subprocess.run(command, env=env, cwd=tmp_dir, capture_output=True, text=True, timeout=600)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "unreachable: offline mode" in result.stderr and "Retrying" not in result.stderr, result.stderr[-2000:]
    assert "--data demo" in result.stderr


def test_feedback_texts_and_a_store_manifest_that_are_not_utf8(tmp_dir, capsys):
    from kurdish_tts.cli import train_feedback

    pairs = tmp_dir / "pairs"
    write_clip(pairs / "fix.wav", speech_like(1.5, 16000), 16000)
    (pairs / "fix.txt").write_bytes(b"Roj ba\xea.")
    store = tmp_dir / "store"
    assert train_feedback.main(["add-dir", str(pairs), "--store", str(store)]) == 1
    rejected = capsys.readouterr().err
    assert "unreadable_text" in rejected and "line 1, column 7: byte 0xea is not UTF-8" in rejected

    store.mkdir(exist_ok=True)
    (store / "metadata.jsonl").write_bytes(b'{"id": "fb-1", "text": "Roj ba\xea"}\n')
    assert train_feedback.main(["list", "--store", str(store)]) == 2
    assert "metadata.jsonl, line 1, column 31: byte 0xea is not UTF-8" in capsys.readouterr().err
