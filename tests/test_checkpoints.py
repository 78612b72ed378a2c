"""Which checkpoint folders are complete (`kurdish_tts.trainers.checkpoints`), and how a run picks the one to resume
from (`VitsRun.checkpoint_to_resume`): `last` never picks a folder a kill left half-written."""

import logging
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from transformers import TrainerState

from kurdish_tts.cli import train_vits
from kurdish_tts.errors import UsageError
from kurdish_tts.runs import VitsRun
from kurdish_tts.trainers.budget import budget_spent
from kurdish_tts.trainers.checkpoints import checkpoint_problem, latest_complete_checkpoint


def write_checkpoint(folder, step: int):
    """What the Trainer leaves in a complete checkpoint, as far as the check reads it."""
    folder.mkdir(parents=True)
    save_file({"weight": torch.zeros(4, 4)}, str(folder / "model.safetensors"))
    (folder / "optimizer.pt").write_bytes(b"optimizer")
    TrainerState(global_step=step).save_to_json(str(folder / "trainer_state.json"))
    return folder


class TestCheckpointProblem:
    def test_a_complete_checkpoint_has_none(self, tmp_dir):
        assert checkpoint_problem(write_checkpoint(tmp_dir / "checkpoint-4", 4)) is None

    @pytest.mark.parametrize(
        "damage, problem",
        [
            (lambda f: (f / "trainer_state.json").unlink(), "has no trainer_state.json"),
            (lambda f: (f / "trainer_state.json").write_text('{"global_step": 4, "log_hist'), "cut short"),
            (lambda f: (f / "trainer_state.json").write_text('{"global_step": 2}'), "is for step 2, not 4"),
            (lambda f: (f / "model.safetensors").unlink(), "holds no model weights"),
            (
                lambda f: (f / "model.safetensors").write_bytes((f / "model.safetensors").read_bytes()[:-10]),
                "model.safetensors is cut short",
            ),
            (lambda f: (f / "model.safetensors").write_bytes(b"\x01"), "model.safetensors is unreadable"),
        ],
    )
    def test_what_a_kill_can_leave(self, tmp_dir, damage, problem):
        folder = write_checkpoint(tmp_dir / "checkpoint-4", 4)
        damage(folder)
        assert problem in checkpoint_problem(folder)


def test_latest_complete_checkpoint_skips_the_incomplete_newer_ones(tmp_dir):
    write_checkpoint(tmp_dir / "checkpoint-4", 4)
    write_checkpoint(tmp_dir / "checkpoint-12", 12)
    (tmp_dir / "checkpoint-12" / "trainer_state.json").unlink()
    (tmp_dir / "checkpoint-16").mkdir()  # killed right after the folder appeared
    (tmp_dir / "incomplete-checkpoint-20").mkdir()  # set aside earlier: not a checkpoint any more
    complete, skipped = latest_complete_checkpoint(tmp_dir)
    assert complete == tmp_dir / "checkpoint-4"
    assert [folder.name for folder, _ in skipped] == ["checkpoint-16", "checkpoint-12"]
    assert latest_complete_checkpoint(tmp_dir / "absent") == (None, [])


def test_budget_spent_says_why_instead_of_crashing(tmp_dir):
    folder = write_checkpoint(tmp_dir / "checkpoint-4", 4)
    (folder / "trainer_state.json").unlink()
    with pytest.raises(ValueError, match="checkpoint-4 is not a complete checkpoint"):
        budget_spent(folder)
    folder = write_checkpoint(tmp_dir / "checkpoint-8", 8)
    (folder / "budget.json").write_text('{"global_step": 8, "elapsed_')  # cut short: the next source decides
    assert budget_spent(folder) == (0.0, 8)


class TestResumeLast:
    def run(self, output_dir, resume: str | None):
        argv = ["--recipe", "demo", "--output_dir", str(output_dir)]
        argv += [] if resume is None else ["--resume_from_checkpoint", resume]
        return VitsRun(*train_vits.parse(argv))

    def test_last_picks_the_newest_complete_one_says_why_and_sets_the_rest_aside(self, tmp_dir, caplog):
        write_checkpoint(tmp_dir / "checkpoint-4", 4)
        half = write_checkpoint(tmp_dir / "checkpoint-8", 8)
        (half / "trainer_state.json").unlink()
        with caplog.at_level(logging.WARNING, logger="kurdish_tts.train_vits"):
            assert self.run(tmp_dir, "last").checkpoint_to_resume() == str(tmp_dir / "checkpoint-4")
        assert f"skipping {half}: it has no trainer_state.json" in caplog.text
        assert "incomplete-checkpoint-8" in caplog.text
        assert not half.exists() and (tmp_dir / "incomplete-checkpoint-8" / "model.safetensors").is_file()
        # A second kill at the same step is set aside next to the first.
        (write_checkpoint(tmp_dir / "checkpoint-8", 8) / "trainer_state.json").unlink()
        self.run(tmp_dir, "last").checkpoint_to_resume()
        assert (tmp_dir / "incomplete-checkpoint-8.2").is_dir()

    def test_no_complete_checkpoint_and_an_incomplete_path_are_usage_errors(self, tmp_dir):
        half = tmp_dir / "checkpoint-8"
        half.mkdir()
        with pytest.raises(UsageError, match="holds no complete checkpoint"):
            self.run(tmp_dir, "last").checkpoint_to_resume()
        write_checkpoint(tmp_dir / "checkpoint-4", 4)
        half = tmp_dir / "checkpoint-12"
        half.mkdir()
        with pytest.raises(UsageError, match=r"checkpoint-12 cannot be resumed from.*it would pick .*checkpoint-4"):
            self.run(tmp_dir, str(half)).checkpoint_to_resume()

    def test_a_new_run_still_refuses_a_folder_with_any_checkpoint(self, tmp_dir):
        (tmp_dir / "checkpoint-8").mkdir()
        with pytest.raises(UsageError, match="already holds checkpoints"):
            self.run(tmp_dir, None).checkpoint_to_resume()


def test_the_trainer_writes_trainer_state_last(tmp_dir, tiny_demo, tokenizer, monkeypatch):
    """The premise of the check: when the Trainer writes a checkpoint's trainer_state.json, every other file of the
    checkpoint is already there (the callbacks' own files, such as budget.json, come after and are optional)."""
    from kurdish_tts.trainers import VitsTrainer

    from .testing_utils import tiny_model, tiny_training_args

    present = []
    save_to_json = TrainerState.save_to_json

    def recording(self, path):
        present.append(sorted(entry.name for entry in Path(path).parent.iterdir()))
        return save_to_json(self, path)

    monkeypatch.setattr(TrainerState, "save_to_json", recording)
    args = tiny_training_args(tmp_dir, max_steps=1, save_strategy="steps", save_steps=1)
    VitsTrainer(tiny_model(tokenizer), args, train_dataset=tiny_demo, processing_class=tokenizer).train()
    written = sorted(path.name for path in (tmp_dir / "checkpoint-1").iterdir())
    assert present[0] == [name for name in written if name != "trainer_state.json"]
    assert {"model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pth"} <= set(present[0])
