"""`scripts/evaluate.py`: several models side by side on their held-out clips, JSON + Markdown, CER, usage errors."""

import json

import pytest

from kurdish_tts.cli import evaluate

from .testing_utils import tiny_model
from .tiny_asr import save_tiny_ctc


def make_run(root, tokenizer, seed: int, eval_ids: list[str] | None, data: str | None = "demo"):
    """A training run's folder as far as evaluation reads it: `best_model/`, `data_split.json`, `run_summary.json`."""
    root.mkdir(parents=True)
    tiny_model(tokenizer, seed=seed).save_pretrained(root / "best_model", tokenizer=tokenizer)
    if eval_ids is not None:
        (root / "data_split.json").write_text(json.dumps({"seed": seed, "eval_ids": eval_ids}))
    if data is not None:
        summary = {"arguments": {"data": {"data": data, "data_kind": "auto", "split": None}}}
        (root / "run_summary.json").write_text(json.dumps(summary))
    return root


@pytest.fixture(scope="module")
def runs(tokenizer, tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate_runs")
    first = make_run(root / "a", tokenizer, 0, ["kmr_demo_0003", "kmr_demo_0005", "kmr_demo_0007", "kmr_demo_0009"])
    second = make_run(root / "b", tokenizer, 1, ["kmr_demo_0005", "kmr_demo_0007", "kmr_demo_0009", "kmr_demo_0011"])
    return first, second


def test_two_models_side_by_side_on_their_shared_held_out_clips(runs, tmp_dir, capsys):
    first, second = runs
    output = tmp_dir / "report"
    argv = [str(first), str(second / "best_model"), "--max_samples", "2", "--metrics", "mcd,duration,stop_failure",
            "--output_dir", str(output)]  # fmt: skip
    assert evaluate.main(argv) == 0
    captured = capsys.readouterr()
    assert "model 2/2" in captured.out and "evaluating" in captured.err  # progress

    report = json.loads((output / "evaluation.json").read_text())
    # No --data: the runs' own data; the clips held out by both runs, the first two by id.
    assert report["data"]["source"] == "demo" and report["data"]["held_out"] is True
    assert report["data"]["ids"] == ["kmr_demo_0005", "kmr_demo_0007"]
    names = [model["name"] for model in report["models"]]
    assert names == [str(first / "best_model"), str(second / "best_model")]
    for model in report["models"]:
        assert set(model["metrics"]) == {"mcd", "duration_ratio", "duration_error", "stop_failure_rate"}
        assert model["metrics"]["mcd"] > 0 and model["metrics"]["stop_failure_rate"] == 0.0
        assert [item["id"] for item in model["items"]] == ["kmr_demo_0005", "kmr_demo_0007"]
    # Different weights, different scores.
    assert report["models"][0]["metrics"]["mcd"] != report["models"][1]["metrics"]["mcd"]

    table = (output / "evaluation.md").read_text()
    assert "| model | clips | MCD (dB) ↓ |" in table
    assert all(f"`{name}`" in table for name in names) and table.count("**") >= 2


def test_cer_with_a_local_asr_model_into_the_runs_folder(runs, tmp_dir):
    first, _ = runs
    asr = save_tiny_ctc(tmp_dir / "asr")
    argv = [str(first), "--data", "demo", "--max_samples", "1", "--metrics", "duration", "--asr_model", str(asr)]
    assert evaluate.main(argv) == 0
    report = json.loads((first / "evaluation" / "evaluation.json").read_text())
    model = report["models"][0]
    assert model["asr_model"] == str(asr) and 0 <= model["metrics"]["cer"] <= 1
    assert model["items"][0]["transcript"] in {"", "a"}
    assert "CER by the ASR model" in (first / "evaluation" / "evaluation.md").read_text()


def test_without_a_split_the_report_warns_that_clips_may_be_trained_on(tokenizer, tmp_dir, capsys):
    run = make_run(tmp_dir / "no_split", tokenizer, 0, None, data=None)
    argv = [str(run / "best_model"), "--data", "demo", "--max_samples", "1", "--metrics", "duration",
            "--output_dir", str(tmp_dir / "out")]  # fmt: skip
    assert evaluate.main(argv) == 0
    report = json.loads((tmp_dir / "out" / "evaluation.json").read_text())
    assert report["data"]["held_out"] is False and report["data"]["ids"] == ["kmr_demo_0001"]
    assert "may include training clips" in report["data"]["note"]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--metrics", "mcd,pesq"], "unknown metric(s) pesq"),
        (["--metrics", "cer"], "needs --asr_model"),
        (["--bogus", "1"], "unknown option(s) --bogus"),
        (["--max_samples", "0"], "--max_samples must be at least 1"),
    ],
)
def test_bad_arguments_exit_with_status_2(runs, capsys, extra, message):
    assert evaluate.main([str(runs[0]), *extra]) == 2
    assert message in capsys.readouterr().err


def test_bad_model_folders_exit_with_status_2(runs, tokenizer, tmp_dir, capsys):
    assert evaluate.main([]) == 2
    assert "name at least one MODEL_DIR" in capsys.readouterr().err
    assert evaluate.main([str(tmp_dir / "missing")]) == 2
    assert "holds no model" in capsys.readouterr().err
    disjoint = make_run(tmp_dir / "c", tokenizer, 2, ["kmr_demo_0001"])
    assert evaluate.main([str(runs[0]), str(disjoint)]) == 2
    assert "share no held-out clip" in capsys.readouterr().err


def test_the_health_metrics_say_in_words_what_is_wrong(runs, tmp_dir):
    """A few steps of the tiny model make audio far quieter than the recordings: the report says so."""
    first, _ = runs
    output = tmp_dir / "health"
    assert evaluate.main([str(first), "--max_samples", "2", "--metrics", "health", "--output_dir", str(output)]) == 0
    model = json.loads((output / "evaluation.json").read_text())["models"][0]
    assert set(model["metrics"]) == {
        "clipped", "dc_offset", "high_band", "low_band", "level_db", "spectral_distance", "unhealthy"
    }  # fmt: skip
    assert model["health_problems"] and all(isinstance(problem, str) for problem in model["health_problems"])
    assert (
        "Waveform health of" in (output / "evaluation.md").read_text()
        and "BROKEN" in (output / "evaluation.md").read_text()
    )
