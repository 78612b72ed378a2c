"""`scripts/train_vits.py`: argument errors, the offline demo end to end, offline failure, SIGKILL and resume."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import huggingface_hub
import pytest
import torch

from kurdish_tts.cli import train_vits
from kurdish_tts.models.vits import VitsDiscriminator, VitsDiscriminatorConfig, VitsForTraining, save_discriminator
from kurdish_tts.trainers.budget import budget_spent

from .testing_utils import checkout_env

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "train_vits.py"


@pytest.fixture(scope="module")
def demo_cache(tmp_path_factory):
    """One cache folder for the module: the demo corpus is prepared once for the tiny model, then reused."""
    return tmp_path_factory.mktemp("demo_cache")


def tiny_flags(output_dir, cache_dir, **overrides):
    """A short tiny-model run on the demo corpus, quiet, on the CPU."""
    values = {
        "data": "demo",
        "model_size": "tiny",
        "output_dir": output_dir,
        "cache_dir": cache_dir,
        "eval_samples": 4,
        "per_device_train_batch_size": 8,
        "per_device_eval_batch_size": 4,
        "max_steps": 4,
        "eval_strategy": "steps",
        "eval_steps": 2,
        "save_steps": 2,
        "logging_steps": 1,
        "report_to": "none",
        "dataloader_num_workers": 0,
        "disable_tqdm": "true",
        # Four steps of a tiny model make no usable audio; these tests are about the command, not the voice.
        "best_model_health_check": "false",
    }
    values.update(overrides)
    return [item for key, value in values.items() for item in (f"--{key}", str(value))]


class TestBadArguments:
    """Each fails before any data or model is touched, with exit status 2 and a message that says what to do."""

    def test_unknown_recipe_lists_the_recipes(self, capsys, tmp_dir):
        assert train_vits.main(["--recipe", "no_such_recipe", "--output_dir", str(tmp_dir)]) == 2
        error = capsys.readouterr().err
        assert "unknown recipe 'no_such_recipe'" in error
        for name in ("demo", "rtx2070_finetune", "h100_finetune"):
            assert name in error

    @pytest.mark.parametrize("hours", ["-1", "0"])
    def test_non_positive_hours(self, capsys, tmp_dir, hours):
        assert train_vits.main(["--recipe", "demo", "--target_hours", hours, "--output_dir", str(tmp_dir)]) == 2
        assert "--target_hours must be a positive number of hours" in capsys.readouterr().err

    def test_missing_data(self, capsys, tmp_dir):
        missing = tmp_dir / "no_such_corpus"
        code = train_vits.main(["--data", str(missing), "--model_size", "tiny", "--output_dir", str(tmp_dir / "o")])
        assert code == 2
        assert str(missing) in capsys.readouterr().err

    def test_one_voice_and_all_voices_conflict(self, capsys, tmp_dir):
        argv = ["--recipe", "demo", "--speaker", "most_hours", "--multi_speaker", "--output_dir", str(tmp_dir)]
        assert train_vits.main(argv) == 2
        assert "choose one" in capsys.readouterr().err

    def test_builtin_tokenizer_needs_random_init(self, capsys, tmp_dir):
        assert train_vits.main(["--data", "demo", "--tokenizer", "kurmanji", "--output_dir", str(tmp_dir)]) == 2
        assert "--model_size" in capsys.readouterr().err

    def test_duration_predictor_choice_needs_random_init(self, capsys, tmp_dir):
        argv = ["--data", "demo", "--duration_predictor", "deterministic", "--output_dir", str(tmp_dir)]
        assert train_vits.main(argv) == 2
        assert "keeps its own duration predictor" in capsys.readouterr().err

    @pytest.mark.parametrize("choice, stochastic", [(None, True), ("stochastic", True), ("deterministic", False)])
    def test_duration_predictor_of_a_random_init(self, tokenizer, tmp_dir, choice, stochastic):
        from kurdish_tts.runs import VitsRun

        argv = ["--recipe", "demo", "--output_dir", str(tmp_dir)]
        argv += [] if choice is None else ["--duration_predictor", choice]
        model = VitsRun(*train_vits.parse(argv)).build_model(tokenizer, None)
        assert model.vits.config.use_stochastic_duration_prediction is stochastic
        predictor = type(model.vits.duration_predictor).__name__
        assert predictor == ("VitsStochasticDurationPredictor" if stochastic else "VitsDurationPredictor")

    def test_recipe_with_unknown_argument(self, capsys, tmp_dir):
        recipe = tmp_dir / "mine.yaml"
        recipe.write_text("data: demo\nlearning_rat: 1.0e-4\n")
        assert train_vits.main(["--recipe", str(recipe), "--output_dir", str(tmp_dir / "o")]) == 2
        assert "learning_rat" in capsys.readouterr().err

    def test_flags_override_the_recipe(self, tmp_dir):
        model_args, data_args, run_args, args = train_vits.parse(
            ["--recipe", "demo", "--learning_rate", "1e-5", "--output_dir", str(tmp_dir)]
        )
        assert args.learning_rate == 1e-5 and args.per_device_train_batch_size == 8  # flag, recipe
        assert model_args.model_size == "tiny" and data_args.tokenizer == "kurmanji" and run_args.target_hours == 0.05

    def test_tokenizer_follows_the_base_model(self, tmp_dir):
        _, data_args, _, _ = train_vits.parse(["--model_name_or_path", "runs/x/best_model", "--output_dir", "o"])
        assert data_args.tokenizer == "runs/x/best_model"


class TestDiscriminatorOption:
    """`--discriminator` as the run uses it; where each source leads is tested in test_discriminator_source.py."""

    @staticmethod
    def run_for(argv):
        from kurdish_tts.runs import VitsRun

        return VitsRun(*train_vits.parse(argv))

    @staticmethod
    def same_weights(first, second) -> bool:
        return all(torch.equal(t, second.state_dict()[n]) for n, t in first.state_dict().items())

    def test_default_is_auto(self, tmp_dir):
        model_args, *_ = train_vits.parse(["--data", "demo", "--output_dir", str(tmp_dir)])
        assert model_args.discriminator == "auto"

    def test_missing_path_stops_before_anything_runs(self, capsys, tmp_dir):
        argv = ["--recipe", "demo", "--discriminator", str(tmp_dir / "D_1.pth"), "--output_dir", str(tmp_dir / "o")]
        assert train_vits.main(argv) == 2
        assert f"--discriminator {tmp_dir / 'D_1.pth'}: no such file or folder; pass auto, none" in (
            capsys.readouterr().err
        )
        assert not (tmp_dir / "o").exists()

    def test_random_init_with_a_saved_discriminator(self, tokenizer, tmp_dir):
        saved = VitsDiscriminator(VitsDiscriminatorConfig.tiny())
        save_discriminator(saved, tmp_dir / "disc")
        run = self.run_for(
            ["--recipe", "demo", "--discriminator", str(tmp_dir / "disc"), "--output_dir", str(tmp_dir)]
        )
        assert self.same_weights(run.build_model(tokenizer, None).discriminator, saved)

    def test_base_model_own_discriminator_or_none(self, tokenizer, tmp_dir):
        base = VitsForTraining.from_size("tiny", tokenizer.vocab_size)
        base.save_pretrained(tmp_dir / "base", tokenizer=tokenizer)
        argv = ["--data", "demo", "--model_name_or_path", str(tmp_dir / "base"), "--output_dir", str(tmp_dir / "o")]
        own = self.run_for(argv).build_model(tokenizer, None).discriminator
        assert self.same_weights(own, base.discriminator)
        fresh = self.run_for([*argv, "--discriminator", "none"]).build_model(tokenizer, None).discriminator
        assert not self.same_weights(fresh, base.discriminator)
        assert fresh.config.to_diff_dict() == VitsDiscriminatorConfig().to_diff_dict()

    def test_mms_base_model_gets_the_mms_discriminator(self, tmp_dir, monkeypatch):
        requests = []

        def download(repo_id, filename, **kwargs):
            requests.append((repo_id, filename))
            return str(tmp_dir / "D_100000.pth")

        (tmp_dir / "D_100000.pth").write_bytes(b"")
        monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
        source = self.run_for(["--data", "demo", "--output_dir", str(tmp_dir / "o")]).discriminator_source
        assert requests == [("facebook/mms-tts", "full_models/kmr-script_latin/D_100000.pth")]
        assert (
            source.kind == "original" and "MMS's pretrained discriminator for kmr-script_latin" in source.description
        )

    def test_mms_base_model_offline_is_a_usage_error(self, tmp_dir):
        run = self.run_for(["--data", "demo", "--output_dir", str(tmp_dir / "o")])
        with pytest.raises(train_vits.UsageError, match="--discriminator PATH"):
            _ = run.discriminator_source

    def test_offline_hub_discriminator_stops_before_the_data_work(self, capsys, tmp_dir):
        argv = ["--recipe", "demo", "--discriminator", "hf://me/x/D_1.pth", "--output_dir", str(tmp_dir / "o")]
        argv += ["--cache_dir", str(tmp_dir / "cache")]
        assert train_vits.main(argv) == 2
        error = capsys.readouterr().err
        assert "hf://me/x/D_1.pth is not on this machine" in error and "--discriminator none" in error
        assert not (tmp_dir / "cache").exists() and not (tmp_dir / "o" / "data_report").exists()

    def test_a_hub_discriminator_needs_the_hub(self, tmp_dir):
        argv = ["--recipe", "demo", "--output_dir", str(tmp_dir)]
        assert not self.run_for(argv).needs_hub()
        assert self.run_for([*argv, "--discriminator", "hf://me/x/D_1.pth"]).needs_hub()

    def test_resuming_starts_from_the_checkpoint(self, tmp_dir):
        save_discriminator(VitsDiscriminator(VitsDiscriminatorConfig.tiny()), tmp_dir / "run" / "checkpoint-2")
        # A Hub source would fail offline; the checkpoint's discriminator is what resuming restores anyway.
        run = self.run_for(
            ["--recipe", "demo", "--discriminator", "hf://me/x/D_1.pth", "--output_dir", str(tmp_dir / "run")]
        )
        run.resume_checkpoint = str(tmp_dir / "run" / "checkpoint-2")
        assert run.discriminator_source.kind == "saved"
        assert run.discriminator_source.path == tmp_dir / "run" / "checkpoint-2"


def test_demo_run_end_to_end(demo_cache, tmp_dir, capsys):
    """The README's main command, with a 25 s budget instead of 3 minutes. How long it takes depends on this machine
    and its load, so nothing here is about wall time (benchmarks/ measures that): on a machine too slow for the budget
    the demo trains its minimum number of steps and says so, rather than refusing."""
    output = tmp_dir / "demo"
    argv = ["--recipe", "demo", "--output_dir", str(output), "--cache_dir", str(demo_cache), "--target_hours",
            str(25 / 3600), "--eval_steps", "10", "--save_steps", "10", "--report_to", "none", "--disable_tqdm", "true"]  # fmt: skip
    assert train_vits.main(argv) == 0
    printed = capsys.readouterr().out

    summary = json.loads((output / "run_summary.json").read_text())
    best = output / "best_model"
    if summary["best_model"] is None:
        # 30 steps of a tiny model from random weights are quieter than the recordings: no evaluation passes the
        # waveform-health gate, and the run says so instead of handing out a best model.
        assert summary["audio_problems"] and "best model : none" in printed and not best.exists()
        assert "no best model: the audio of every evaluation was broken" in printed
        best = output
    else:
        assert summary["best_model"] == str(best) and str(best) in printed and summary["audio_problems"] == []
    assert summary["discriminator"] == "a fresh discriminator, as the generator starts from random weights"
    assert (output / "sample.wav").stat().st_size > 1000 and (output / "loss_curve.png").is_file()
    assert (output / "plan.md").is_file() and (output / "data_report" / "report.md").is_file()
    # The budget covers the whole job (data, model, probe, training, final evaluation and save): 25 s asked, or more
    # when the demo's minimum of 30 steps needed more on this machine.
    budget = summary["budget"]
    assert budget["requested_target_seconds"] == pytest.approx(25.0)
    assert budget["target_seconds"] >= 25.0 and summary["global_step"] >= 1
    if budget["target_seconds"] > 25.0:
        assert budget["planned_steps"] == 30 and "raised from" in (output / "plan.md").read_text()
    split = json.loads((output / "data_split.json").read_text())
    assert len(split["eval_ids"]) == 8

    from transformers import VitsModel, pipeline

    assert isinstance(VitsModel.from_pretrained(best), VitsModel)
    speech = pipeline("text-to-speech", model=str(best))("roj baş")
    assert speech["sampling_rate"] == 16000 and speech["audio"].size > 0


def test_existing_checkpoints_need_resume_or_new_folder(demo_cache, tmp_dir, capsys):
    output = tmp_dir / "run"
    (output / "checkpoint-2").mkdir(parents=True)
    (output / "checkpoint-2" / "trainer_state.json").write_text("{}")
    assert train_vits.main(tiny_flags(output, demo_cache)) == 2
    error = capsys.readouterr().err
    assert "--resume_from_checkpoint last" in error and "--output_dir" in error


def test_offline_hub_failure_is_fast(tmp_dir):
    """No network (an endpoint nobody listens on) and no offline variables: the default base model fails at once with
    the offline options, instead of huggingface_hub's ~30 s of retries (which it announces: "Retrying in ...")."""
    env = {k: v for k, v in checkout_env().items() if not k.endswith("_OFFLINE")}
    env["HF_ENDPOINT"] = "http://127.0.0.1:9"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--data", "demo", "--output_dir", str(tmp_dir / "o")],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    assert "--model_size" in result.stderr and "--recipe demo" in result.stderr
    assert "unreachable: offline mode" in result.stderr and "Retrying" not in result.stderr, result.stderr[-2000:]


# Runs the training script with the Trainer's checkpoint write held at step 8, after the weights and the optimizer
# and before the RNG states and trainer_state.json, and says so in a file: the test kills the process there.
STALLED_SAVE = """
import os, runpy, sys, time
import transformers

original = transformers.Trainer._save_rng_state

def stalled(self, output_dir):
    if self.state.global_step == 8:
        open(os.environ["STALLED_MARKER"], "w").close()
        time.sleep(3600)
    return original(self, output_dir)

transformers.Trainer._save_rng_state = stalled
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_sigkill_during_a_checkpoint_write_then_resume_last(demo_cache, tmp_dir):
    """SIGKILL while the Trainer writes checkpoint-8 leaves a folder with weights and optimizer but no
    trainer_state.json (issue 18). `--resume_from_checkpoint last` skips it (and says so), sets it aside, resumes from
    checkpoint-4 and reaches the planned end; the time budget's record in checkpoint-4 stays readable."""
    output = tmp_dir / "run"
    marker = tmp_dir / "stalled"
    # A budget far longer than the run, so that the checkpoints carry the budget's record (`budget.json`).
    budget = ["--target_hours", "1", "--budget_probe_steps", "2", "--budget_warmup_steps", "1"]
    flags = tiny_flags(output, demo_cache, save_steps=4, eval_steps=4, synthesis_metrics="")
    env = checkout_env(PYTHONUNBUFFERED="1", STALLED_MARKER=str(marker))
    process = subprocess.Popen([sys.executable, "-c", STALLED_SAVE, str(SCRIPT), *flags, *budget], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 400
        while not marker.exists():
            assert process.poll() is None, process.stderr.read()[-3000:]
            assert time.monotonic() < deadline, "the run never reached the checkpoint at step 8"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL
    half = output / "checkpoint-8"
    assert (half / "model.safetensors").is_file() and not (half / "trainer_state.json").exists()
    with pytest.raises(ValueError, match="not a complete checkpoint"):
        budget_spent(half)

    assert not (output / "run_summary.json").exists()

    # Without --resume_from_checkpoint the folder is refused; with `last` the run continues to step 12.
    flags = tiny_flags(output, demo_cache, max_steps=12, save_steps=4, eval_steps=4, synthesis_metrics="")
    assert (
        subprocess.run([sys.executable, str(SCRIPT), *flags], env=checkout_env(), capture_output=True).returncode == 2
    )
    resumed = subprocess.run([sys.executable, str(SCRIPT), *flags, "--resume_from_checkpoint", "last"],
                             env=checkout_env(), capture_output=True, text=True, timeout=400)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    log = resumed.stdout + resumed.stderr
    assert f"skipping {half}: it has no trainer_state.json" in log, log[-3000:]
    assert f"resuming from {output / 'checkpoint-4'}" in log
    # Set aside, not deleted; the Trainer's own rotation never sees it.
    assert (output / "incomplete-checkpoint-8" / "model.safetensors").is_file()
    state = json.loads((output / "trainer_state.json").read_text())
    steps = [entry["step"] for entry in state["log_history"] if "loss" in entry]
    # The resumed run's history goes on from the checkpoint it started from, with no step twice.
    assert steps == sorted(set(steps)) and steps[-1] == 12
    summary = json.loads((output / "run_summary.json").read_text())
    assert summary["global_step"] == 12
    assert summary["discriminator"] == f"the one in {output / 'checkpoint-4'}, the checkpoint training resumes from"
    # The history goes on from checkpoint-4's, with no step twice.
    assert state["global_step"] == 12 and steps == sorted(set(steps)) and steps[-1] == 12, steps
    assert (output / "checkpoint-8" / "trainer_state.json").is_file()  # written again, completely, this time
    assert json.loads((output / "run_summary.json").read_text())["global_step"] == 12
    assert (output / "best_model" / "model.safetensors").is_file()
    # The checkpoint the run resumed from kept the first run's budget record.
    spent, step = budget_spent(output / "checkpoint-4")
    assert step == 4 and spent > 0


def test_an_incomplete_checkpoint_named_by_path_is_refused(demo_cache, tmp_dir, capsys):
    output = tmp_dir / "run"
    (output / "checkpoint-6").mkdir(parents=True)
    (output / "checkpoint-6" / "trainer_state.json").write_text('{"global_step": 6, "log_hi')
    argv = [*tiny_flags(output, demo_cache), "--resume_from_checkpoint", str(output / "checkpoint-6")]
    assert train_vits.main(argv) == 2
    error = capsys.readouterr().err
    assert "trainer_state.json is unreadable or cut short" in error and "--resume_from_checkpoint last" in error
    assert train_vits.main([*tiny_flags(output, demo_cache), "--resume_from_checkpoint", "last"]) == 2
    assert "holds no complete checkpoint-* folder" in capsys.readouterr().err


def test_the_demo_on_a_machine_too_slow_for_its_budget_trains_its_minimum_late(tmp_dir, monkeypatch, caplog):
    """The busy-CPU case of issue 18, with a hand-made probe: 150 s already spent of the demo's 180 s, and 2.5 s per
    step. The demo used to refuse; it now plans its 30 minimum steps with a raised budget, and warns."""
    from types import SimpleNamespace

    from kurdish_tts.runs import training_run, vits_run
    from kurdish_tts.trainers.budget import StepTiming

    timing = StepTiming(
        seconds_per_step=2.5, median_seconds_per_step=2.5, samples_per_second=3.2, train_batch_size=8,
        steps_per_epoch=9, eval_seconds=4.0, checkpoint_seconds=1.0, save_model_seconds=1.0, train_setup_seconds=1.0,
        train_teardown_seconds=0.5, probe_seconds=110.0, step_seconds=[2.5],
    )  # fmt: skip
    monkeypatch.setattr(training_run, "measure_step_time", lambda trainer, **kwargs: timing)
    run = vits_run.VitsRun(
        *train_vits.parse(["--recipe", "demo", "--output_dir", str(tmp_dir)]), started=time.time() - 150
    )
    run.synthesis_metrics = None
    run.output_dir.mkdir(parents=True, exist_ok=True)
    trainer = SimpleNamespace(args=run.args, pop_callback=lambda callback: None, add_callback=lambda callback: None)
    with caplog.at_level("WARNING", logger="kurdish_tts.train_vits"):
        plan = run.plan_budget(trainer, None, num_train_samples=72)
    assert plan.steps == 30 and plan.requested_target_seconds == pytest.approx(180.0)
    assert plan.target_seconds > 180.0 and plan.deadline > time.time() + 30 * 2.5
    assert "too slow (or too busy) for --target_hours 0.05" in caplog.text and "30 steps" in caplog.text

    # Without a minimum (every recipe but the demos), a budget that holds no step is refused, with what to do.
    run.run_args.budget_min_steps = 0
    run.started = time.time() - 178
    with pytest.raises(train_vits.UsageError, match="pass --budget_min_steps N to train N steps anyway"):
        run.plan_budget(trainer, None, num_train_samples=72)
