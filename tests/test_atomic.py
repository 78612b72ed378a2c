"""`kurdish_tts.atomic`: the old file or the new one, never half of one, and no temporary file left behind."""

import json
import stat

import pytest

from kurdish_tts.atomic import atomic_path, write_bytes_atomically, write_json_atomically


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing(tmp_dir):
    target = tmp_dir / "record.json"
    write_json_atomically(target, {"step": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as temporary:
        temporary.write_text('{"step": 2, "half')
        raise RuntimeError("crash mid-write")
    assert json.loads(target.read_text()) == {"step": 1}
    assert sorted(p.name for p in tmp_dir.iterdir()) == ["record.json"]


def test_temporary_keeps_the_suffix_and_the_result_is_readable_by_others(tmp_dir):
    target = tmp_dir / "deep" / "clip.flac"
    with atomic_path(target) as temporary:
        assert temporary.parent == target.parent and temporary.suffix == ".flac" and temporary != target
        temporary.write_bytes(b"x")
    write_bytes_atomically(tmp_dir / "weights.bin", b"abc")
    assert target.read_bytes() == b"x" and (tmp_dir / "weights.bin").read_bytes() == b"abc"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_json_is_utf8_with_a_final_newline(tmp_dir):
    path = write_json_atomically(tmp_dir / "speakers.json", {"name": "Şêrko"})
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n") and "Şêrko" in text
