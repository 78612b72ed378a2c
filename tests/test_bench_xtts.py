"""`benchmarks/bench_xtts.py` on the CPU with the tiny model: the throughput table and a short stability run."""

import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_xtts.py"


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_xtts", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tiny_cpu_run_writes_tables_and_counts_losses(tmp_dir, capsys):
    bench = _load_bench()
    argv = ["--device", "cpu", "--size", "tiny", "--steps", "3", "--warmup_steps", "1", "--batch_size", "2",
            "--text_length", "20", "--mel_frames", "40", "--reference_frames", "30", "--stability_steps", "4",
            "--stability_batch_size", "2", "--stability_text_length", "12", "--stability_mel_frames", "24",
            "--out", str(tmp_dir)]  # fmt: skip
    assert bench.main(argv) == 0
    summary = json.loads((tmp_dir / "bench_xtts.json").read_text())
    rows = summary["throughput"]
    assert [(row["size"], row["precision"], row["guided_attention"]) for row in rows] == [
        ("tiny", "fp32", True),
        ("tiny", "fp32", False),
    ]
    assert all(row["samples_per_second"] > 0 and row["peak_memory_gib"] is None for row in rows)
    (run,) = summary["stability"]
    assert run["steps"] == 4 and run["non_finite_losses"] == 0 and run["nan_recoveries"] == 0
    curve = (tmp_dir / "stability_loss.csv").read_text().splitlines()
    assert curve[0] == "step,fp32" and len(curve) == 5
    markdown = (tmp_dir / "bench_xtts.md").read_text()
    assert "| tiny |" in markdown and "non-finite losses" in markdown


def test_synthetic_corpus_has_the_prepared_schema():
    """No pad id in the text, one mel frame row per counted frame, eight voices."""
    bench = _load_bench()
    corpus = bench.synthetic_corpus(16, 10, 30, 8, vocab_size=20, pad_token_id=0, seed=0).with_format("numpy")
    for row in corpus:
        assert 0 not in row["input_ids"]
        assert row["mel"].shape == (row["num_frames"], 8)
    assert len(set(corpus["speaker"])) == 8


def test_two_processes_train_with_ddp_and_only_the_first_writes(tmp_dir):
    """Under torchrun the rows are DDP steps: samples/s counts both processes' batches, one summary is written."""
    from .testing_utils import torchrun

    argv = ["--device", "cpu", "--size", "tiny", "--steps", "2", "--warmup_steps", "1", "--batch_size", "2",
            "--text_length", "20", "--mel_frames", "40", "--reference_frames", "30", "--out", str(tmp_dir / "out")]  # fmt: skip
    result = torchrun(BENCH, *argv)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_dir / "out" / "bench_xtts.json").read_text())
    assert [row["processes"] for row in summary["throughput"]] == [2, 2]
    for row in summary["throughput"]:
        assert row["samples_per_second"] == pytest.approx(2 * 2 / row["step_seconds"])  # batch 2 on each of 2
    assert result.stdout.count("## XTTS training throughput (2 processes") == 1


def test_the_stability_run_refuses_several_processes(monkeypatch, capsys):
    bench = _load_bench()
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(SystemExit):
        bench.parse(["--out", "x", "--stability_steps", "10"])
    assert "one process" in capsys.readouterr().err
