"""Every command answers what a user can cause with a message and exit status, never a traceback
(`kurdish_tts.cli.entry_point`): usage mistakes in one line with exit 2, bad files named with their line and the fix."""

import errno
import subprocess
import sys
from pathlib import Path

import pytest

from kurdish_tts.cli import (
    doctor,
    evaluate,
    make_demo_corpus,
    prepare_data,
    push_to_hub,
    train_feedback,
    train_vits,
    train_xtts,
    validate_data,
)
from kurdish_tts.cli import main as kurdish_tts_main
from kurdish_tts.cli.entry_point import describe_os_error, entry_point
from kurdish_tts.data.sources import load_source
from kurdish_tts.errors import InputFileError, UsageError, read_text

from .testing_utils import checkout_env, make_ljspeech

REPO = Path(__file__).resolve().parents[1]
MAINS = {
    "prepare": (prepare_data.main, []),
    "validate": (validate_data.main, []),
    "train": (train_vits.main, []),
    "train-xtts": (train_xtts.main, []),
    "doctor": (doctor.main, []),
    "evaluate": (evaluate.main, ["runs/x"]),
    "push": (push_to_hub.main, ["runs/x", "--repo_id", "me/x"]),
    "feedback train": (train_feedback.main, ["train"]),
    "make-demo-corpus": (make_demo_corpus.main, []),
}


def one_line_error(capsys) -> str:
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in captured.err + captured.out, captured.err[-2000:]
    return lines[0]


@pytest.fixture
def latin1_corpus(tmp_dir):
    """An LJSpeech folder whose metadata.csv has one Latin-1 byte (0xea, 'ê') on its second line."""
    root = make_ljspeech(tmp_dir / "corpus", [("a", "Roj baş."), ("b", "Şev baş.")])
    (root / "metadata.csv").write_bytes("a|Roj baş.\n".encode() + b"b|Sib\xea ba" + "ş.\n".encode())
    return root


class TestUsageMistakes:
    @pytest.mark.parametrize("command", sorted(MAINS))
    def test_an_unknown_flag_is_one_line_and_exit_2(self, command, capsys, tmp_dir, monkeypatch):
        monkeypatch.chdir(tmp_dir)
        main, argv = MAINS[command]
        assert main([*argv, "--no_such_flag", "3"]) == 2
        assert "--no_such_flag" in one_line_error(capsys)

    def test_a_misspelt_flag_gets_the_closest_one(self, capsys, tmp_dir):
        assert train_vits.main(["--recipe", "demo", "--learnig_rate", "1e-4", "--output_dir", str(tmp_dir)]) == 2
        assert "did you mean --learning_rate?" in one_line_error(capsys)

    def test_a_bad_value_is_one_line_not_the_usage_block(self, capsys, tmp_dir):
        assert train_vits.main(["--recipe", "demo", "--learning_rate", "abc", "--output_dir", str(tmp_dir)]) == 2
        message = one_line_error(capsys)
        assert "--learning_rate" in message and "'abc'" in message and "--help" in message

    def test_what_training_arguments_refuse_is_a_usage_error(self, capsys, tmp_dir):
        argv = ["--recipe", "demo", "--output_dir", str(tmp_dir), "--load_best_model_at_end", "true",
                "--save_strategy", "epoch"]  # fmt: skip
        assert train_vits.main(argv) == 2
        assert "load_best_model_at_end" in one_line_error(capsys)

    def test_the_dispatcher_and_the_scripts_answer_alike(self, tmp_dir):
        commands = [
            [sys.executable, str(REPO / "scripts" / "train_vits.py"), "--no_such_flag", "3"],
            [sys.executable, "-c", "from kurdish_tts.cli import main; raise SystemExit(main())", "train", "--no_such_flag"],
        ]  # fmt: skip
        for command in commands:
            result = subprocess.run(
                command, capture_output=True, text=True, cwd=tmp_dir, env=checkout_env(), timeout=120
            )
            assert result.returncode == 2, result.stderr[-2000:]
            assert "Traceback" not in result.stderr and result.stderr.strip().count("\n") == 0, result.stderr
            assert "--no_such_flag" in result.stderr
        assert "kurdish-tts train --help" in result.stderr


class TestBadFiles:
    @pytest.mark.parametrize("command", ["prepare", "validate", "train"])
    def test_metadata_that_is_not_utf8_names_file_line_and_fix(self, command, latin1_corpus, tmp_dir, capsys):
        argv = ["--data", str(latin1_corpus), "--tokenizer", "kurmanji", "--cache_dir", str(tmp_dir / "cache")]
        if command == "train":
            argv = [*argv[:2], "--model_size", "tiny", "--cache_dir", str(tmp_dir / "cache"), "--output_dir",
                    str(tmp_dir / "run")]  # fmt: skip
        assert MAINS[command][0](argv) == 2
        message = one_line_error(capsys)
        assert f"{latin1_corpus / 'metadata.csv'}, line 2, column 6: byte 0xea is not UTF-8" in message
        assert "Sib" in message and "UTF-8" in message and "iconv" in message
        # Nothing was left behind: the run's folder is created only once the data could be read.
        assert not (tmp_dir / "run").exists()

    def test_common_voice_tsv_and_audiofolder_jsonl(self, tmp_dir):
        cv = tmp_dir / "cv"
        cv.mkdir()
        (cv / "validated.tsv").write_bytes(
            b"client_id\tpath\tsentence\tup_votes\tdown_votes\ns\ta.mp3\tSib\xea\t2\t0\n"
        )
        with pytest.raises(InputFileError, match=r"validated.tsv, line 2, column 12: byte 0xea"):
            load_source(str(cv))
        folder = tmp_dir / "audiofolder"
        folder.mkdir()
        (folder / "metadata.jsonl").write_text('{"file_name": "a.wav", "sentence": "x"}\n{"file_name": "b.wav",\n')
        with pytest.raises(InputFileError, match=r"metadata.jsonl, line 2, is not valid JSON"):
            load_source(str(folder))

    def test_read_text_drops_a_byte_order_mark_and_counts_lines_in_bytes(self, tmp_dir):
        path = tmp_dir / "t.txt"
        path.write_bytes("\ufeffşev\n".encode() + "ê\n".encode("latin-1"))
        with pytest.raises(InputFileError, match=r"line 2, column 1: byte 0xea"):
            read_text(path)
        path.write_bytes("\ufeffşev\n".encode())
        assert read_text(path) == "şev\n"


class TestFoldersInTheWay:
    @pytest.mark.parametrize("command", ["train", "train-xtts", "doctor"])
    def test_an_output_dir_that_is_a_file_is_refused_before_any_work(self, command, tmp_dir, capsys):
        taken = tmp_dir / "taken"
        taken.write_text("not a folder")
        recipe = "xtts_tiny" if command == "train-xtts" else "demo"
        argv = ["--recipe", recipe, "--output_dir", str(taken), "--cache_dir", str(tmp_dir / "cache")]
        assert MAINS[command][0](argv) == 2
        assert f"--output_dir {taken} is a file, not a folder" in one_line_error(capsys)
        assert not (tmp_dir / "cache").exists()  # no data was prepared

    def test_a_path_through_a_file_and_a_cache_dir_that_is_a_file(self, tmp_dir, capsys):
        taken = tmp_dir / "taken"
        taken.write_text("not a folder")
        assert train_vits.main(["--recipe", "demo", "--output_dir", str(taken / "run")]) == 2
        assert "so no folder can be made under it" in one_line_error(capsys)
        assert prepare_data.main(["--data", "demo", "--tokenizer", "kurmanji", "--cache_dir", str(taken)]) == 2
        assert "--cache_dir" in one_line_error(capsys)

    def test_missing_data_leaves_no_empty_run_folder(self, tmp_dir, capsys):
        output = tmp_dir / "run"
        argv = ["--data", str(tmp_dir / "absent"), "--model_size", "tiny", "--output_dir", str(output)]
        assert train_vits.main(argv) == 2
        assert str(tmp_dir / "absent") in one_line_error(capsys)
        assert not output.exists()


class TestTheOnePlace:
    def run(self, error, capsys):
        @entry_point
        def main(argv=None):
            raise error

        code = main()
        return code, capsys.readouterr().err

    def test_user_errors_keep_their_exit_status(self, capsys):
        assert self.run(UsageError("bad"), capsys) == (2, "error: bad\n")
        from kurdish_tts.feedback import FeedbackError

        assert self.run(FeedbackError("not promoted"), capsys) == (1, "error: not promoted\n")

    def test_system_errors_with_a_file_name_are_messages(self, capsys):
        code, err = self.run(OSError(errno.ENOSPC, "No space left on device", "/data/cache/x.arrow"), capsys)
        assert code == 1 and "/data/cache/x.arrow: no space left on the device" in err
        code, err = self.run(PermissionError(errno.EACCES, "Permission denied", "/runs/demo"), capsys)
        assert code == 2 and "/runs/demo: permission denied" in err
        assert describe_os_error(OSError("no file named")) == (1, None)

    def test_interrupt_and_unnamed_decode_errors(self, capsys):
        assert self.run(KeyboardInterrupt(), capsys) == (130, "interrupted\n")
        code, err = self.run(UnicodeDecodeError("utf-8", b"\xea", 0, 1, "invalid continuation byte"), capsys)
        assert code == 2 and "not UTF-8" in err

    def test_a_bug_keeps_its_traceback(self):
        @entry_point
        def main(argv=None):
            raise RuntimeError("a bug")

        with pytest.raises(RuntimeError, match="a bug"):
            main()

    def test_unknown_command(self, capsys):
        assert kurdish_tts_main(["no-such-command"]) == 2
        assert "choose one of" in capsys.readouterr().err
