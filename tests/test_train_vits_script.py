"""`scripts/train_vits.py`: argument errors, the offline demo end to end, offline failure, SIGKILL and resume."""

import json
import os
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
        from kurdish_tts.cli.vits_training_run import VitsTrainingRun

        argv = ["--recipe", "demo", "--output_dir", str(tmp_dir)]
        argv += [] if choice is None else ["--duration_predictor", choice]
        model = VitsTrainingRun(*train_vits.parse(argv)).build_model(tokenizer, None)
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
        from kurdish_tts.cli.vits_training_run import VitsTrainingRun

        return VitsTrainingRun(*train_vits.parse(argv))

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
    """The README's main command, with a 25 s budget instead of 3 minutes."""
    output = tmp_dir / "demo"
    argv = ["--recipe", "demo", "--output_dir", str(output), "--cache_dir", str(demo_cache), "--target_hours",
            str(25 / 3600), "--eval_steps", "10", "--save_steps", "10", "--report_to", "none", "--disable_tqdm", "true"]  # fmt: skip
    began = time.time()
    assert train_vits.main(argv) == 0
    wall = time.time() - began
    printed = capsys.readouterr().out

    summary = json.loads((output / "run_summary.json").read_text())
    best = output / "best_model"
    assert summary["best_model"] == str(best) and str(best) in printed
    assert summary["discriminator"] == "a fresh discriminator, as the generator starts from random weights"
    assert (output / "sample.wav").stat().st_size > 1000 and (output / "loss_curve.png").is_file()
    assert (output / "plan.md").is_file() and (output / "data_report" / "report.md").is_file()
    # The budget covers the whole job (data, model, probe, training, final evaluation and save).
    assert summary["budget"]["target_seconds"] == pytest.approx(25.0)
    assert 0.6 * 25 <= wall <= 1.25 * 25, summary["budget"]
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
    """No network (an endpoint nobody listens on) and no offline variables: the default base model fails in seconds
    with the offline options, instead of huggingface_hub's ~30 s of retries."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_OFFLINE")}
    env["HF_ENDPOINT"] = "http://127.0.0.1:9"
    began = time.time()
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--data", "demo", "--output_dir", str(tmp_dir / "o")],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    elapsed = time.time() - began
    assert result.returncode == 2, result.stderr[-2000:]
    assert "--model_size" in result.stderr and "--recipe demo" in result.stderr
    assert elapsed < 25, elapsed  # interpreter start-up and imports included


def test_sigkill_then_resume_reaches_the_planned_end(demo_cache, tmp_dir):
    output = tmp_dir / "run"
    flags = tiny_flags(output, demo_cache, max_steps=12, save_steps=4, eval_steps=4)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, str(SCRIPT), *flags], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.time() + 240
        while not (output / "checkpoint-8" / "trainer_state.json").is_file():
            assert process.poll() is None, process.stderr.read()[-3000:]
            assert time.time() < deadline, "no checkpoint-8 within 240 s"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL
    assert not (output / "run_summary.json").exists()

    # Without --resume_from_checkpoint the folder is refused; with it the run continues to step 12.
    assert subprocess.run([sys.executable, str(SCRIPT), *flags], env=env, capture_output=True).returncode == 2
    resumed = subprocess.run([sys.executable, str(SCRIPT), *flags, "--resume_from_checkpoint", "last"], env=env,
                             capture_output=True, text=True, timeout=400)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    state = json.loads((output / "trainer_state.json").read_text())
    assert state["global_step"] == 12
    steps = [entry["step"] for entry in state["log_history"] if "loss" in entry]
    # The resumed run's history goes on from the checkpoint it started from, with no step twice.
    assert steps == sorted(set(steps)) and steps[-1] == 12
    summary = json.loads((output / "run_summary.json").read_text())
    assert summary["global_step"] == 12
    assert summary["discriminator"] == f"the one in {output / 'checkpoint-8'}, the checkpoint training resumes from"
    assert (output / "best_model" / "model.safetensors").is_file()
