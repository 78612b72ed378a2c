"""Multi-process launches of the training scripts: refused when the processes would not train together, and the XTTS
run end to end under two CPU processes (DDP over gloo), as `accelerate launch --num_processes 2` starts it."""

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest

import kurdish_tts
from kurdish_tts.errors import UsageError
from kurdish_tts.runs import check_launch

from .testing_utils import torchrun

SCRIPTS = Path(kurdish_tts.__file__).parents[1] / "scripts"


def arguments(world_size):
    return SimpleNamespace(world_size=world_size, device="cpu", output_dir="runs/x")


class TestCheckLaunch:
    def test_processes_that_do_not_see_each_other_are_refused(self):
        with pytest.raises(UsageError, match="launched as 2 processes.*--use_cpu true"):
            check_launch(arguments(1), environ={"WORLD_SIZE": "2"})

    @pytest.mark.parametrize("environ, world_size", [({}, 1), ({"WORLD_SIZE": "1"}, 1), ({"WORLD_SIZE": "2"}, 2)])
    def test_consistent_launches_pass(self, environ, world_size):
        check_launch(arguments(world_size), environ=environ)


def xtts_argv(output_dir, cache_dir, *extra):
    return [
        *("--data", "demo", "--tokenizer", "kurmanji", "--model_size", "tiny", "--mel_settings", "mms"),
        *("--output_dir", output_dir, "--cache_dir", cache_dir, "--report_to", "none"),
        *("--max_steps", "4", "--eval_strategy", "steps", "--eval_steps", "2", "--save_steps", "2"),
        *("--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "4", "--eval_samples", "4"),
        *("--dataloader_num_workers", "0", "--synthesis_metrics_samples", "1"),
        *extra,
    ]


def test_cpu_processes_without_use_cpu_are_refused_before_writing(tmp_dir):
    output_dir = tmp_dir / "run"
    result = torchrun(SCRIPTS / "train_xtts.py", *xtts_argv(output_dir, tmp_dir / "cache"))
    assert result.returncode != 0
    assert "--use_cpu true" in result.stderr
    assert not output_dir.exists()


def test_xtts_training_with_two_cpu_processes(tmp_dir):
    """Both processes train one model: the sampler splits the 76 training clips between them (an epoch is 10 steps of
    2 × 4 clips, not 19), and only the main process writes the best model, checkpoints and summary."""
    output_dir = tmp_dir / "run"
    argv = xtts_argv(output_dir, tmp_dir / "cache", "--use_cpu", "true")
    result = torchrun(SCRIPTS / "train_xtts.py", *argv)
    assert result.returncode == 0, result.stderr[-3000:]

    summary = json.loads((output_dir / "run_summary.json").read_text())
    assert summary["global_step"] == 4 and summary["hardware"].endswith("× 2 processes")
    held_out = len(json.loads((output_dir / "data_split.json").read_text())["eval_ids"])
    steps_per_epoch = math.ceil((80 - held_out) / (2 * 4))
    assert held_out == 4 and steps_per_epoch == 10
    state = json.loads((output_dir / "trainer_state.json").read_text())
    assert state["epoch"] == pytest.approx(4 / steps_per_epoch)
    assert json.loads((output_dir / "best_model" / "best_model.json").read_text())["step"] in (2, 4)
    assert sorted(path.name for path in output_dir.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    # No temporary folder of an interrupted or doubled write is left behind.
    assert not list(output_dir.glob(".*tmp*"))
