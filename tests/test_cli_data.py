import json
import subprocess
import sys
from pathlib import Path

from kurdish_tts.cli import main as kurdish_tts_main
from kurdish_tts.cli.prepare_data import main as prepare_main
from kurdish_tts.cli.validate_data import main as validate_main

from .testing_utils import make_ljspeech


def test_validate_demo_corpus_end_to_end(tmp_dir, capsys):
    code = validate_main(
        [
            "--data",
            "demo",
            "--tokenizer",
            "kurmanji",
            "--cache_dir",
            str(tmp_dir / "cache"),
            "--report_dir",
            str(tmp_dir / "r"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "kept 80 of 80 clips" in out and "4 speakers" in out
    report = json.loads((tmp_dir / "r" / "report.json").read_text(encoding="utf-8"))
    assert report["is_usable"] is True
    assert (tmp_dir / "r" / "durations.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The second run reuses the cache.
    assert prepare_main(["--data", "demo", "--tokenizer", "kurmanji", "--cache_dir", str(tmp_dir / "cache")]) == 0
    assert "reused cache" in capsys.readouterr().out


def test_validate_fails_when_nothing_survives(tmp_dir, capsys):
    make_ljspeech(tmp_dir / "c", [("a", "Roj baş"), ("b", "Şev baş")], seconds=2.5)
    args = ["--data", str(tmp_dir / "c"), "--tokenizer", "kurmanji", "--cache_dir", str(tmp_dir / "cache")]
    assert validate_main([*args, "--max_duration", "1.0"]) == 1
    err = capsys.readouterr().err
    assert "unusable" in err and "too_long" in err and "max_duration" in err
    assert prepare_main([*args, "--max_duration", "1.0"]) == 1


def test_missing_data_fails_fast_with_a_clear_message(tmp_dir, capsys):
    code = prepare_main(["--data", str(tmp_dir / "absent"), "--tokenizer", "kurmanji", "--cache_dir", str(tmp_dir)])
    assert code == 2
    assert "does not exist" in capsys.readouterr().err


def test_yaml_recipe_and_dispatcher(tmp_dir, capsys):
    recipe = tmp_dir / "data.yaml"
    recipe.write_text(f"data: demo\ntokenizer: kurmanji\ncache_dir: {tmp_dir / 'cache'}\nmax_duration: 5.0\n")
    assert kurdish_tts_main(["prepare", str(recipe)]) == 0
    assert "kept 78 of 80 clips" in capsys.readouterr().out
    assert kurdish_tts_main(["nonsense"]) == 2


def test_scripts_are_thin_shims_over_the_cli():
    result = subprocess.run(
        [sys.executable, str(Path(__file__).parents[1] / "scripts" / "prepare_data.py"), "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--min_up_votes" in result.stdout and "--tokenizer" in result.stdout
