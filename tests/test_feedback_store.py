"""The feedback store: the add/list/stats/remove round trip, rejections with reasons and no partial state, duplicates,
folders of pairs, concurrent adds from several processes, and a manifest that `datasets` reads."""

import hashlib
import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import datasets
import numpy as np
import pytest
import soundfile as sf

from kurdish_tts.audio import load_audio
from kurdish_tts.audio.io import to_int16
from kurdish_tts.cli import train_feedback
from kurdish_tts.data import load_source
from kurdish_tts.feedback import FeedbackInput, FeedbackStore, ValidatedClip, validate_clip

from .testing_utils import speech_like

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "train_feedback.py"
SENTENCE = "Roj baş, ez bi kurmancî diaxivim."


def write_pcm(path: Path, seconds: float = 1.5, rate: int = 16000, seed: int = 0, level: float = 0.3) -> Path:
    """A speech-like clip written as 16-bit samples, so every format decodes to exactly the same samples."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, to_int16(speech_like(seconds, rate, seed=seed, level=level)), rate, subtype="PCM_16")
    return path


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` (hidden ones included) with a hash of its bytes."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def add(store: Path, audio, text: str, *extra: str) -> int:
    return train_feedback.main(["add", "--store", str(store), "--audio", str(audio), "--text", text, *extra])


def test_add_list_stats_remove_round_trip(tmp_dir, capsys):
    store_dir = tmp_dir / "store"
    first = write_pcm(tmp_dir / "in" / "first.wav", 1.2, rate=22050, seed=1)
    second = write_pcm(tmp_dir / "in" / "second.flac", 1.0, seed=2)
    assert add(store_dir, first, SENTENCE, "--note", "ş was read as s") == 0
    assert add(store_dir, second, "Şev baş.", "--speaker", "dengbej") == 0
    capsys.readouterr()

    items = FeedbackStore(store_dir).items()
    assert [item["text"] for item in items] == [SENTENCE, "Şev baş."]
    assert [item["speaker"] for item in items] == ["speaker_0", "dengbej"]
    assert items[0]["note"] == "ş was read as s" and items[0]["normalized_text"] == "roj baş, ez bi kurmancî diaxivim."
    assert all(item["id"].startswith("fb-") for item in items) and items[0]["id"] != items[1]["id"]
    for item, source, seconds in zip(items, (first, second), (1.2, 1.0)):
        stored = store_dir / item["file_name"]
        info = sf.info(stored)
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert item["duration"] == pytest.approx(seconds, abs=1e-3)
        # Resampled once, stored exactly: the file holds the samples that were validated.
        pcm, _ = sf.read(stored, dtype="int16")
        np.testing.assert_array_equal(pcm, to_int16(load_audio(source, 16000).waveform))

    assert train_feedback.main(["list", "--store", str(store_dir)]) == 0
    listed = capsys.readouterr().out
    assert items[0]["id"] in listed and "Şev baş." in listed and "2 items" in listed
    assert train_feedback.main(["list", "--store", str(store_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == items
    assert train_feedback.main(["stats", "--store", str(store_dir), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["items"] == 2 and stats["seconds"] == pytest.approx(2.2, abs=1e-2)
    assert stats["speakers"] == {
        "dengbej": {"items": 1, "seconds": pytest.approx(1.0, abs=1e-3)},
        "speaker_0": {"items": 1, "seconds": pytest.approx(1.2, abs=1e-3)},
    }
    assert stats["models"]["current"] is None and stats["models"]["items_not_in_current_model"] == 2

    before = snapshot(store_dir)
    assert train_feedback.main(["remove", "--store", str(store_dir), items[0]["id"], "fb-0000000000"]) == 1
    assert "fb-0000000000" in capsys.readouterr().err and snapshot(store_dir) == before  # all or nothing
    assert train_feedback.main(["remove", "--store", str(store_dir), items[0]["id"]]) == 0
    assert [item["id"] for item in FeedbackStore(store_dir).items()] == [items[1]["id"]]
    assert sorted(path.name for path in (store_dir / "audio").iterdir()) == [f"{items[1]['id']}.wav"]


def test_the_manifest_loads_with_datasets(tmp_dir, tokenizer):
    store = FeedbackStore(tmp_dir / "store")
    clips = [write_pcm(tmp_dir / f"{name}.wav", 1.5, seed=seed) for seed, name in enumerate(("a", "b"))]
    result = store.add_many(
        [FeedbackInput(clips[0], SENTENCE), FeedbackInput(clips[1], "Şev baş.", speaker="s2")], tokenizer=tokenizer
    )
    assert not result.rejected, result.rejected
    ids = [row["id"] for row in result.added]

    table = datasets.load_dataset("json", data_files=str(store.manifest_path), split="train")
    assert list(table["id"]) == ids and list(table["text"]) == [SENTENCE, "Şev baş."]
    assert all((store.root / name).is_file() for name in table["file_name"])

    # The audiofolder layout: the package's own loader reads it like any other source.
    source = load_source(str(store.root), text_column="text", speaker_column="speaker", id_column="id")
    assert source.kind == "audiofolder"
    assert list(source.dataset["id"]) == ids and list(source.dataset["speaker"]) == ["speaker_0", "s2"]
    assert [Path(audio["path"]).name for audio in source.dataset["audio"]] == [f"{i}.wav" for i in ids]


def _silence(path):
    sf.write(path, np.zeros(16000, dtype=np.int16), 16000)


def _quiet(path):
    noise = np.random.default_rng(0).standard_normal(16000) * 10 ** (-60 / 20)  # -60 dBFS: a muted microphone
    sf.write(path, noise.astype(np.float32), 16000)


def _clipped(path):
    square = np.sign(np.sin(2 * np.pi * 200 * np.arange(16000) / 16000))
    sf.write(path, square.astype(np.float32), 16000)


def _garbage(path):
    path.write_bytes(b"RIFF but not really a wave file")


BAD_INPUTS = [
    # (what is wrong, how to write the audio, text, reason, what the message says)
    ("not audio", _garbage, SENTENCE, "undecodable_audio", "WAV, FLAC"),
    ("missing file", None, SENTENCE, "undecodable_audio", "not found"),
    ("too short", lambda p: write_pcm(p, 0.2), SENTENCE, "too_short", "0.20 s"),
    ("too long", lambda p: write_pcm(p, 16.0), SENTENCE, "too_long", "split the recording"),
    ("digital silence", _silence, SENTENCE, "silent_audio", "microphone"),
    ("muted microphone", _quiet, SENTENCE, "silent_audio", "-60"),
    ("clipped", _clipped, SENTENCE, "clipped_audio", "lower input gain"),
    ("unknown letter", lambda p: write_pcm(p), "Roj baş señor", "unknown_characters", "'ñ' (1x)"),
    ("nothing speakable", lambda p: write_pcm(p), "«» “”", "empty_text", "give the sentence"),
    ("text too long", lambda p: write_pcm(p, 0.6), SENTENCE * 3, "fewer_frames_than_tokens", "belong together"),
]


@pytest.mark.parametrize(("case", "write", "text", "reason", "message"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_inputs_are_rejected_with_a_reason_and_leave_no_trace(tmp_dir, capsys, case, write, text, reason, message):
    store_dir = tmp_dir / "store"
    assert add(store_dir, write_pcm(tmp_dir / "good.wav"), SENTENCE) == 0
    before = snapshot(store_dir)
    audio = tmp_dir / "bad.wav"
    if write is not None:
        write(audio)
    capsys.readouterr()

    assert add(store_dir, audio, text) == 1
    error = capsys.readouterr().err
    assert f"{audio}: {reason}: " in error and message in error, error
    assert snapshot(store_dir) == before


def test_a_failed_write_leaves_the_store_as_it_was(tmp_dir, tokenizer, monkeypatch):
    store = FeedbackStore(tmp_dir / "store")
    store.add(write_pcm(tmp_dir / "a.wav", seed=1), SENTENCE, tokenizer=tokenizer)
    before = snapshot(store.root)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    # The manifest is written last: the audio written before it must go when it fails.
    monkeypatch.setattr("kurdish_tts.feedback.store.write_text_atomically", disk_full)
    with pytest.raises(OSError, match="No space left"):
        store.add(write_pcm(tmp_dir / "b.wav", seed=2), "Şev baş.", tokenizer=tokenizer)
    assert snapshot(store.root) == before
    monkeypatch.undo()

    # Audio left by a writer killed before its manifest (simulated) is removed by the next writer.
    (store.audio_dir / "fb-deadbeef00.wav").write_bytes(b"orphan")
    store.add(write_pcm(tmp_dir / "b.wav", seed=2), "Şev baş.", tokenizer=tokenizer)
    assert len(store.items()) == 2
    assert sorted(p.name for p in store.audio_dir.iterdir()) == sorted(f"{i['id']}.wav" for i in store.items())


def test_duplicates_are_found_by_their_samples(tmp_dir, capsys):
    store_dir = tmp_dir / "store"
    wav = write_pcm(tmp_dir / "take.wav", seed=3)
    flac = tmp_dir / "take.flac"
    sf.write(flac, sf.read(wav, dtype="int16")[0], 16000, subtype="PCM_16")
    assert wav.read_bytes() != flac.read_bytes()
    assert add(store_dir, wav, "Roj baş.") == 0
    stored = FeedbackStore(store_dir).items()[0]["id"]
    capsys.readouterr()

    # The same recording in another format with the same text (up to normalization) is already there.
    assert add(store_dir, flac, "roj baş.") == 0
    assert f"already stored as {stored}" in capsys.readouterr().out
    # With another text it is a conflict, not a silent second copy.
    assert add(store_dir, flac, "Şev baş.") == 1
    error = capsys.readouterr().err
    assert "duplicate_audio" in error and f"remove {stored}" in error
    assert len(FeedbackStore(store_dir).items()) == 1


def test_add_dir_adds_the_pairs_and_counts_what_it_skips(tmp_dir, capsys):
    folder = tmp_dir / "corrections"
    write_pcm(folder / "a.wav", seed=1)
    (folder / "a.txt").write_text("Roj baş.\n", encoding="utf-8")
    write_pcm(folder / "b.flac", seed=2)
    (folder / "b.txt").write_text("Şev baş.", encoding="utf-8")
    write_pcm(folder / "no_text.wav", seed=3)
    (folder / "no_audio.txt").write_text("Ez têm.", encoding="utf-8")
    _silence(folder / "silent.wav")
    (folder / "silent.txt").write_text("Ew hat.", encoding="utf-8")
    store_dir = tmp_dir / "store"

    assert train_feedback.main(["add-dir", str(folder), "--store", str(store_dir), "--speaker", "me"]) == 1
    captured = capsys.readouterr()
    assert "2 added, 0 already stored, 3 rejected" in captured.out
    for reason in ("missing_text", "missing_audio", "silent_audio"):
        assert reason in captured.err
    items = FeedbackStore(store_dir).items()
    assert sorted(item["text"] for item in items) == ["Roj baş.", "Şev baş."]
    assert {item["speaker"] for item in items} == {"me"}

    # Adding the folder again adds nothing twice.
    assert train_feedback.main(["add-dir", str(folder), "--store", str(store_dir)]) == 1
    assert "0 added, 2 already stored, 3 rejected" in capsys.readouterr().out


def test_usage_errors_exit_2(tmp_dir, capsys):
    assert train_feedback.main(["add", "--store", str(tmp_dir / "s"), "--audio", "x.wav"]) == 2
    assert "--text" in capsys.readouterr().err
    assert train_feedback.main(["add-dir", str(tmp_dir / "missing"), "--store", str(tmp_dir / "s")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert train_feedback.main(["frobnicate"]) == 2
    assert train_feedback.main(["list", "--store", str(tmp_dir / "s")]) == 0
    assert "no items" in capsys.readouterr().out


def _add_after_barrier(root: str, item: FeedbackInput, clip: ValidatedClip, barrier) -> None:
    barrier.wait(timeout=60)
    FeedbackStore(root).add_validated([(item, clip)])


def test_concurrent_adds_from_several_processes_all_land(tmp_dir, tokenizer):
    """Eight processes commit eight clips at the same moment, blocked on the lock the test holds until then.

    The clips are validated here, so that the forked processes run no torch code (torch's thread pools do not survive
    a fork); what they race on is the store's lock and its manifest. `test_concurrent_cli_adds` does the same with
    whole `add` commands.
    """
    store = FeedbackStore(tmp_dir / "store")
    store.add(write_pcm(tmp_dir / "first.wav", seed=9), "Ez têm.", tokenizer=tokenizer)
    inputs = [FeedbackInput(write_pcm(tmp_dir / f"clip{i}.wav", seed=i), f"Roj baş {i}.") for i in range(8)]
    clips = [validate_clip(item.audio, item.text, tokenizer=tokenizer) for item in inputs]
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(len(inputs) + 1)
    processes = [
        context.Process(target=_add_after_barrier, args=(str(store.root), item, clip, barrier))
        for item, clip in zip(inputs, clips)
    ]
    with store.lock():
        for process in processes:
            process.start()
        barrier.wait(timeout=60)
        # All eight are now past the barrier and about to wait for the lock.
        time.sleep(0.3)
    for process in processes:
        process.join(timeout=120)
    assert [process.exitcode for process in processes] == [0] * 8
    items = store.items()
    assert sorted(item["text"] for item in items) == ["Ez têm."] + [f"Roj baş {i}." for i in range(8)]
    assert sorted(p.name for p in store.audio_dir.iterdir()) == sorted(f"{item['id']}.wav" for item in items)


def _hold_the_lock(root: str, ready) -> None:
    with FeedbackStore(root).lock():
        ready.set()
        time.sleep(3600)


def test_a_killed_writer_leaves_no_stale_lock(tmp_dir, tokenizer):
    """The lock is the operating system's (filelock): held by a live process it makes others wait, then give up with
    a message; the process killed, the next writer gets it at once."""
    import signal

    from kurdish_tts.feedback import FeedbackError

    root = tmp_dir / "store"
    context = multiprocessing.get_context("fork")
    ready = context.Event()
    holder = context.Process(target=_hold_the_lock, args=(str(root), ready))
    holder.start()
    try:
        assert ready.wait(timeout=120)
        with pytest.raises(FeedbackError, match="stayed locked by another feedback command"):
            with FeedbackStore(root, lock_timeout=0.2).lock():
                pass
        os.kill(holder.pid, signal.SIGKILL)
        holder.join(timeout=60)
    finally:
        if holder.is_alive():
            holder.kill()
    assert holder.exitcode == -signal.SIGKILL and (root / ".lock").exists()
    # Generous: a lock left behind would block this for its whole timeout and then fail.
    store = FeedbackStore(root, lock_timeout=60)
    result = store.add(write_pcm(tmp_dir / "after.wav"), SENTENCE, tokenizer=tokenizer)
    assert len(result.added) == 1 and len(store.items()) == 1


@pytest.mark.slow
def test_concurrent_cli_adds(tmp_dir):
    """Three `add` commands in three processes, started while the test holds the lock; released, they race for it."""
    store = FeedbackStore(tmp_dir / "store")
    clips = [write_pcm(tmp_dir / f"clip{index}.wav", seed=index) for index in range(3)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    with store.lock():
        processes = [
            subprocess.Popen(
                [
                    sys.executable,
                    str(SCRIPT),
                    "add",
                    "--store",
                    str(store.root),
                    "--audio",
                    str(clip),
                    "--text",
                    f"Roj baş {index}.",
                ],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )  # fmt: skip
            for index, clip in enumerate(clips)
        ]
        try:
            for process in processes:
                # Each says it waits once it has validated its clip and found the store locked.
                for line in process.stderr:
                    if "waiting for" in line:
                        break
                else:
                    pytest.fail(f"the process ended without waiting for the lock: {process.wait()}")
        except BaseException:
            for process in processes:
                process.kill()
            raise
    outputs = [process.communicate(timeout=240) for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0], outputs
    items = store.items()
    assert sorted(item["text"] for item in items) == [f"Roj baş {index}." for index in range(3)]
    assert sorted(p.name for p in store.audio_dir.iterdir()) == sorted(f"{item['id']}.wav" for item in items)
