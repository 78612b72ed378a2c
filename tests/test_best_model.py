"""`BestModelCallback`: a tiny CPU run with periodic evaluation, and the callback driven directly with metric dicts."""

import hashlib
import json
import logging
import math
import os
import shutil
from pathlib import Path
from unittest.mock import PropertyMock, patch

import pytest
import torch
from transformers import TrainerCallback, TrainerControl, TrainerState, VitsModel, pipeline

from kurdish_tts.models.vits import VitsForTraining, modeling_vits_training
from kurdish_tts.trainers import VitsTrainer, VitsTrainingArguments
from kurdish_tts.trainers import best_model as best_model_module
from kurdish_tts.trainers.best_model import BEST_MODEL_INFO_NAME, BestModelCallback, load_best_model_info

from .testing_utils import tiny_model, tiny_training_args, torchrun

METRIC = "eval_loss/mel"


@pytest.fixture(scope="module")
def prepared(tiny_demo):
    return tiny_demo


class WeightRecorder(TrainerCallback):
    """Copies the model's weights at every evaluation, to check that the best model holds the right ones."""

    def __init__(self):
        self.weights = {}

    def on_evaluate(self, args, state, control, model=None, **kwargs):
        self.weights[state.global_step] = {name: t.detach().clone() for name, t in model.state_dict().items()}


def digest(folder: Path) -> dict[str, str]:
    """Relative path → SHA-256 of every file under `folder`: equal digests mean byte-identical folders."""
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def leftovers(output_dir: Path) -> list[str]:
    return sorted(name for name in os.listdir(output_dir) if name.startswith(".best_model"))


def assert_weights_equal(actual: dict, expected: dict, prefix: str = "") -> None:
    for name, tensor in actual.items():
        torch.testing.assert_close(tensor, expected[prefix + name], rtol=0, atol=0, msg=name)


def evaluate(callback, args, step, metrics, model=None, tokenizer=None):
    """One evaluation event, as the Trainer sends it after `evaluate()`."""
    if not isinstance(metrics, dict):
        metrics = {METRIC: metrics}
    state = TrainerState(global_step=step, epoch=step / 3)
    callback.on_evaluate(args, state, TrainerControl(), metrics=metrics, model=model, processing_class=tokenizer)


def started(callback, args, step=0):
    callback.on_train_begin(args, TrainerState(global_step=step), TrainerControl())
    return callback


def perturb(model):
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.01)


@pytest.fixture(scope="module")
def run(prepared, tokenizer, tmp_path_factory):
    """Six steps with an evaluation every two, the callback attached; shared by the tests that only read the result."""
    output_dir = tmp_path_factory.mktemp("best_model_run")
    args = tiny_training_args(output_dir, max_steps=6, eval_strategy="steps", eval_steps=2, logging_steps=2)
    recorder = WeightRecorder()
    trainer = VitsTrainer(
        tiny_model(tokenizer),
        args,
        train_dataset=prepared,
        eval_dataset=prepared.select(range(2)),
        processing_class=tokenizer,
        callbacks=[recorder],
    )
    # These tests are about which evaluation is kept and how it is written; six steps of a tiny model make no
    # usable audio yet, which the health gate (TestHealthGate) would rightly refuse.
    callback = BestModelCallback(require_healthy_audio=False).attach(trainer)
    trainer.train()
    return trainer, callback, recorder, output_dir


class TestTrainingRun:
    def test_records_the_evaluation_with_the_lowest_mel_loss(self, run):
        trainer, callback, _, output_dir = run
        evaluations = [entry for entry in trainer.state.log_history if METRIC in entry]
        assert [entry["step"] for entry in evaluations] == [2, 4, 6]
        best = min(evaluations, key=lambda entry: entry[METRIC])
        info = load_best_model_info(output_dir)
        assert info == json.loads((output_dir / "best_model" / BEST_MODEL_INFO_NAME).read_text())
        assert info["step"] == best["step"] and info["value"] == best[METRIC] and info["epoch"] == best["epoch"]
        assert info["metric"] == METRIC and info["greater_is_better"] is False
        assert (callback.best_step, callback.best_value) == (best["step"], best[METRIC])
        training, model = info["config"]["training"], info["config"]["model"]
        assert training["learning_rate"] == 2e-4 and training["total_train_batch_size"] == 2
        assert training["precision"] == "fp32" and training["loss_weights"]["mel"] == 45.0
        assert model["class"] == "VitsForTraining" and model["model_type"] == "vits"
        assert model["num_parameters"] == sum(p.numel() for p in trainer.model.parameters())
        assert leftovers(output_dir) == []

    def test_folder_holds_the_best_steps_weights_and_loads_with_stock_transformers(self, run, tokenizer):
        _, _, recorder, output_dir = run
        folder = output_dir / "best_model"
        expected = recorder.weights[load_best_model_info(output_dir)["step"]]
        assert {"model.safetensors", "config.json", "vocab.json", "discriminator.safetensors"} <= set(
            os.listdir(folder)
        )
        assert_weights_equal(VitsModel.from_pretrained(folder).state_dict(), expected, prefix="vits.")
        speech = pipeline("text-to-speech", model=str(folder))("Roj baş, hevalno.")
        assert speech["sampling_rate"] == 16000 and speech["audio"].size > 0
        assert_weights_equal(
            VitsForTraining.from_pretrained(folder).discriminator.state_dict(), expected, prefix="discriminator."
        )

    def test_attach_puts_the_callback_first_once(self, run):
        trainer, callback, _, _ = run
        callback.attach(trainer)
        callbacks = trainer.callback_handler.callbacks
        assert callbacks[0] is callback and sum(c is callback for c in callbacks) == 1

    def test_a_later_evaluate_call_is_compared_too(self, run):
        trainer, callback, _, output_dir = run
        before = digest(output_dir / "best_model")
        metrics = trainer.evaluate()
        if metrics[METRIC] < load_best_model_info(output_dir)["value"]:
            pytest.skip("the extra evaluation happened to be better; nothing to check")
        assert digest(output_dir / "best_model") == before


HEALTHY = {
    "eval_health/clipped": 0.0,
    "eval_health/dc_offset": 0.002,
    "eval_health/high_band": 0.004,
    "eval_health/low_band": 0.01,
    "eval_health/level_vs_reference_db": -1.5,
}
TONE = {**HEALTHY, "eval_health/clipped": 0.6, "eval_health/high_band": 0.99, "eval_health/level_vs_reference_db": 20}


class TestHealthGate:
    def test_a_better_metric_with_broken_audio_is_refused_and_said_so(self, tokenizer, tmp_dir, caplog):
        model = tiny_model(tokenizer)
        args = tiny_training_args(tmp_dir)
        callback = started(BestModelCallback(), args)
        evaluate(callback, args, 1, {METRIC: 2.0, **HEALTHY}, model, tokenizer)
        kept = digest(tmp_dir / "best_model")
        perturb(model)
        with caplog.at_level("WARNING", logger="kurdish_tts.trainers.best_model"):
            evaluate(callback, args, 2, {METRIC: 1.0, **TONE}, model, tokenizer)
        assert digest(tmp_dir / "best_model") == kept and callback.best_step == 1
        assert callback.refused and callback.refused[0][0] == 2
        assert "step 2 is not kept as the best model" in caplog.text and "above 7.5 kHz" in caplog.text
        evaluate(callback, args, 3, {METRIC: 1.5, **HEALTHY}, model, tokenizer)
        assert callback.best_step == 3 and digest(tmp_dir / "best_model") != kept

    def test_synthesized_speech_is_judged_too(self, tokenizer, tmp_dir):
        args = tiny_training_args(tmp_dir)
        callback = started(BestModelCallback(), args)
        synthesized_tone = {"eval_clipped": 0.5, "eval_dc_offset": 0.0, "eval_high_band": 0.9, "eval_unhealthy": 1.0}
        evaluate(callback, args, 1, {METRIC: 2.0, **HEALTHY, **synthesized_tone}, tiny_model(tokenizer), tokenizer)
        assert callback.best_value is None
        assert any("speech synthesized from text" in problem for problem in callback.refused[0][1])

    def test_no_healthy_evaluation_leaves_no_best_model_and_the_end_says_why(self, tokenizer, tmp_dir, caplog):
        args = tiny_training_args(tmp_dir)
        callback = started(BestModelCallback(), args)
        evaluate(callback, args, 1, {METRIC: 2.0, **TONE}, tiny_model(tokenizer), tokenizer)
        with caplog.at_level("WARNING", logger="kurdish_tts.trainers.best_model"):
            callback.on_train_end(args, TrainerState(global_step=1), TrainerControl())
        assert not (tmp_dir / "best_model").exists()
        assert "no best model was saved: the audio of every evaluation" in caplog.text

    def test_the_gate_can_be_turned_off(self, tokenizer, tmp_dir):
        args = tiny_training_args(tmp_dir)
        callback = started(BestModelCallback(require_healthy_audio=False), args)
        evaluate(callback, args, 1, {METRIC: 2.0, **TONE}, tiny_model(tokenizer), tokenizer)
        assert callback.best_step == 1 and callback.refused == []


class TestSelection:
    def test_a_worse_evaluation_keeps_the_model_and_a_better_one_replaces_it(self, tokenizer, tmp_dir):
        model = tiny_model(tokenizer)
        args = tiny_training_args(tmp_dir)
        callback = started(BestModelCallback(), args)
        folder = tmp_dir / "best_model"

        evaluate(callback, args, 1, 2.0, model, tokenizer)
        first = digest(folder)
        weights_at_1 = {name: t.clone() for name, t in model.state_dict().items()}
        perturb(model)
        for step, value in ((2, 3.0), (3, 2.0), (4, math.nan), (5, math.inf)):  # worse, a tie, not numbers
            evaluate(callback, args, step, value, model, tokenizer)
            assert digest(folder) == first, step
        assert load_best_model_info(tmp_dir)["step"] == 1
        assert_weights_equal(VitsModel.from_pretrained(folder).state_dict(), weights_at_1, prefix="vits.")

        evaluate(callback, args, 6, 1.5, model, tokenizer)
        info = load_best_model_info(tmp_dir)
        assert (info["step"], info["value"], info["epoch"]) == (6, 1.5, 2.0)
        assert (callback.best_step, callback.best_value) == (6, 1.5)
        assert_weights_equal(VitsModel.from_pretrained(folder).state_dict(), model.state_dict(), prefix="vits.")
        assert_weights_equal(
            VitsForTraining.from_pretrained(folder).discriminator.state_dict(),
            model.state_dict(),
            prefix="discriminator.",
        )
        assert leftovers(tmp_dir) == []

    def test_only_processes_that_save_write(self, tokenizer, tmp_dir):
        args = tiny_training_args(tmp_dir)
        callback = started(BestModelCallback(), args)
        with patch.object(VitsTrainingArguments, "should_save", new_callable=PropertyMock, return_value=False):
            evaluate(callback, args, 1, 2.0, tiny_model(tokenizer), tokenizer)
        assert not (tmp_dir / "best_model").exists() and leftovers(tmp_dir) == []

    def test_an_evaluation_before_training_starts_the_callback(self, tokenizer, tmp_dir):
        args = tiny_training_args(tmp_dir)
        evaluate(BestModelCallback(), args, 3, 2.0, tiny_model(tokenizer), tokenizer)
        callback = BestModelCallback()
        evaluate(callback, args, 0, 2.5, tiny_model(tokenizer), tokenizer)
        assert load_best_model_info(tmp_dir)["step"] == 3 and callback.best_value == 2.0

    def test_no_best_model_without_a_folder(self, tmp_dir):
        assert load_best_model_info(tmp_dir) is None

    def test_rejects_a_folder_name_with_a_path(self):
        with pytest.raises(ValueError, match="plain folder name"):
            BestModelCallback(folder_name=os.path.join("a", "b"))


@pytest.fixture(params=["callback arguments", "attached trainer"])
def saving(request, tokenizer, prepared, tmp_dir):
    """A started callback and how to evaluate with it, saving either way the callback can save."""
    model = tiny_model(tokenizer)
    args = tiny_training_args(tmp_dir)
    callback = BestModelCallback()
    if request.param == "attached trainer":
        callback.attach(VitsTrainer(model, args, train_dataset=prepared, processing_class=tokenizer))
    started(callback, args)

    def evaluate_at(step, value):
        evaluate(callback, args, step, value, model, tokenizer)

    return callback, evaluate_at, model


class TestAtomicReplacement:
    def test_a_save_that_fails_midway_leaves_the_previous_model(self, saving, tmp_dir):
        callback, evaluate_at, model = saving
        evaluate_at(1, 2.0)
        before = digest(tmp_dir / "best_model")
        perturb(model)
        written = []

        def fail_after_the_generator(discriminator, model_dir):
            written.extend(os.listdir(model_dir))
            raise RuntimeError("disk full")

        with patch.object(modeling_vits_training, "save_discriminator", fail_after_the_generator):
            with pytest.raises(RuntimeError, match="disk full"):
                evaluate_at(2, 1.0)
        assert "model.safetensors" in written  # the failure came after part of the folder was written
        assert digest(tmp_dir / "best_model") == before
        assert leftovers(tmp_dir) == []
        assert (callback.best_step, callback.best_value) == (1, 2.0)

        evaluate_at(3, 1.0)  # the next improvement saves normally
        assert load_best_model_info(tmp_dir)["step"] == 3 and leftovers(tmp_dir) == []

    def test_a_failed_rename_puts_the_previous_model_back(self, tokenizer, tmp_dir):
        model = tiny_model(tokenizer)
        args = tiny_training_args(tmp_dir)
        callback = started(BestModelCallback(), args)
        evaluate(callback, args, 1, 2.0, model, tokenizer)
        before = digest(tmp_dir / "best_model")
        replace = os.replace
        calls = []

        def fail_moving_the_new_folder_in(source, destination):
            if Path(destination).parent == tmp_dir:  # not the files written inside the new folder
                calls.append((Path(source).name, Path(destination).name))
                if Path(source).name.startswith(".best_model.tmp-"):
                    raise OSError("rename failed")
            replace(source, destination)

        with patch.object(best_model_module.os, "replace", fail_moving_the_new_folder_in):
            with pytest.raises(OSError, match="rename failed"):
                evaluate(callback, args, 2, 1.0, model, tokenizer)
        assert [call[1] for call in calls] == [".best_model.old", "best_model", "best_model"]
        assert digest(tmp_dir / "best_model") == before and leftovers(tmp_dir) == []

    def test_a_crash_between_the_renames_is_recovered_by_the_next_run(self, tokenizer, tmp_dir):
        model = tiny_model(tokenizer)
        args = tiny_training_args(tmp_dir)
        evaluate(started(BestModelCallback(), args), args, 1, 2.0, model, tokenizer)
        before = digest(tmp_dir / "best_model")
        # The state a killed process leaves after the first rename: the old folder aside, the new one complete.
        shutil.copytree(tmp_dir / "best_model", tmp_dir / f".best_model.tmp-{os.getpid() + 1}")
        os.rename(tmp_dir / "best_model", tmp_dir / ".best_model.old")
        assert load_best_model_info(tmp_dir)["step"] == 1  # what the next run restores

        callback = started(BestModelCallback(), args, step=1)
        assert digest(tmp_dir / "best_model") == before and leftovers(tmp_dir) == []
        assert (callback.best_step, callback.best_value) == (1, 2.0)

    def test_a_crash_before_the_old_folder_is_deleted_keeps_the_new_one(self, tokenizer, tmp_dir):
        model = tiny_model(tokenizer)
        args = tiny_training_args(tmp_dir)
        evaluate(started(BestModelCallback(), args), args, 1, 2.0, model, tokenizer)
        shutil.copytree(tmp_dir / "best_model", tmp_dir / ".best_model.old")
        before = digest(tmp_dir / "best_model")
        started(BestModelCallback(), args, step=1)
        assert digest(tmp_dir / "best_model") == before and leftovers(tmp_dir) == []

    def test_the_next_save_recovers_too(self, tokenizer, tmp_dir):
        model = tiny_model(tokenizer)
        args = tiny_training_args(tmp_dir)
        callback = started(BestModelCallback(), args)
        evaluate(callback, args, 1, 2.0, model, tokenizer)
        os.rename(tmp_dir / "best_model", tmp_dir / ".best_model.old")
        evaluate(callback, args, 2, 1.0, model, tokenizer)
        assert load_best_model_info(tmp_dir)["step"] == 2 and leftovers(tmp_dir) == []


class TestMetric:
    def test_custom_metric_where_greater_is_better(self, tokenizer, tmp_dir):
        model = tiny_model(tokenizer)
        args = tiny_training_args(tmp_dir)
        callback = started(BestModelCallback(metric_name="mos", greater_is_better=True), args)
        assert callback.resolve_metric(args) == ("eval_mos", True)
        for step, value in ((1, 3.0), (2, 2.5), (3, 3.5), (4, 3.2)):
            evaluate(callback, args, step, {"eval_mos": value, METRIC: 1.0 / step}, model, tokenizer)
        info = load_best_model_info(tmp_dir)
        assert (info["step"], info["metric"], info["value"], info["greater_is_better"]) == (3, "eval_mos", 3.5, True)

    def test_defaults_follow_the_training_arguments(self, tmp_dir, caplog):
        args = tiny_training_args(tmp_dir, metric_for_best_model="loss/kl", greater_is_better=False)
        assert BestModelCallback().resolve_metric(args) == ("eval_loss/kl", False)
        # The metric named here is not args', so args' direction does not apply to it.
        assert BestModelCallback(metric_name="eval_loss/mel").resolve_metric(args) == (METRIC, False)
        assert BestModelCallback().resolve_metric(tiny_training_args(tmp_dir)) == (METRIC, False)

        # TrainingArguments itself makes every name not ending in "loss" greater-is-better.
        args = tiny_training_args(tmp_dir, metric_for_best_model="loss/mel")
        callback = BestModelCallback()
        with caplog.at_level(logging.WARNING, logger=best_model_module.__name__):
            assert callback.resolve_metric(args) == (METRIC, True)
            callback.resolve_metric(args)
        assert sum("greater_is_better=False" in record.message for record in caplog.records) == 1

    def test_a_missing_metric_is_an_error_that_names_the_available_ones(self, tokenizer, tmp_dir):
        args = tiny_training_args(tmp_dir)
        callback = started(BestModelCallback(metric_name="loss/mel_typo"), args)
        metrics = {"eval_loss": 1.0, METRIC: 0.5, "eval_runtime": 0.1}
        with pytest.raises(KeyError, match=r"'eval_loss/mel_typo'.*\['eval_loss', 'eval_loss/mel', 'eval_runtime'\]"):
            evaluate(callback, args, 1, metrics, tiny_model(tokenizer), tokenizer)
        assert not (tmp_dir / "best_model").exists()

    def test_evaluations_with_another_prefix_are_ignored(self, tokenizer, tmp_dir, caplog):
        model = tiny_model(tokenizer)
        args = tiny_training_args(tmp_dir)
        callback = started(BestModelCallback(), args)
        # `trainer.evaluate(test_set, metric_key_prefix="test")`; VitsTrainer names its loss terms `eval_` regardless.
        test_metrics = {"test_loss": 1.0, "test_runtime": 0.1, METRIC: 0.5}
        with caplog.at_level(logging.WARNING, logger=best_model_module.__name__):
            for step in (1, 2):
                evaluate(callback, args, step, test_metrics, model, tokenizer)
        assert not (tmp_dir / "best_model").exists()
        assert sum("'test'" in record.message for record in caplog.records) == 1
        # One dataset of a dict of evaluation datasets, selected by its prefixed name.
        callback = started(BestModelCallback(metric_name="eval_dev_loss"), args)
        evaluate(callback, args, 3, {"eval_dev_loss": 2.0, "eval_dev_runtime": 0.1}, model, tokenizer)
        evaluate(callback, args, 4, {"eval_other_loss": 1.0, "eval_other_runtime": 0.1}, model, tokenizer)
        assert load_best_model_info(tmp_dir)["step"] == 3


class TestResume:
    def test_a_resumed_run_keeps_a_better_model(self, tokenizer, tmp_dir, caplog):
        model = tiny_model(tokenizer)
        args = tiny_training_args(tmp_dir)
        evaluate(started(BestModelCallback(), args), args, 10, 1.0, model, tokenizer)
        before = digest(tmp_dir / "best_model")
        perturb(model)

        caplog.clear()
        with caplog.at_level(logging.WARNING, logger=best_model_module.__name__):
            callback = started(BestModelCallback(), args, step=12)
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # a resume is the expected case
        assert (callback.best_step, callback.best_value) == (10, 1.0)
        evaluate(callback, args, 14, 1.5, model, tokenizer)
        assert digest(tmp_dir / "best_model") == before
        evaluate(callback, args, 16, 0.5, model, tokenizer)
        assert load_best_model_info(tmp_dir)["step"] == 16

    def test_a_fresh_run_keeps_an_earlier_runs_better_model_with_a_warning(self, tokenizer, tmp_dir, caplog):
        model = tiny_model(tokenizer)
        args = tiny_training_args(tmp_dir)
        evaluate(started(BestModelCallback(), args), args, 10, 1.0, model, tokenizer)
        before = digest(tmp_dir / "best_model")
        with caplog.at_level(logging.WARNING, logger=best_model_module.__name__):
            callback = started(BestModelCallback(), args, step=0)
        assert any("earlier run" in record.message for record in caplog.records)
        evaluate(callback, args, 2, 1.5, model, tokenizer)
        assert digest(tmp_dir / "best_model") == before

    def test_a_model_chosen_by_another_metric_is_replaced(self, tokenizer, tmp_dir, caplog):
        model = tiny_model(tokenizer)
        args = tiny_training_args(tmp_dir)
        kl_callback = started(BestModelCallback(metric_name="loss/kl"), args)
        evaluate(kl_callback, args, 10, {"eval_loss/kl": 0.1}, model, tokenizer)
        with caplog.at_level(logging.WARNING, logger=best_model_module.__name__):
            callback = started(BestModelCallback(), args, step=10)
        assert callback.best_value is None and any("'eval_loss/kl'" in r.message for r in caplog.records)
        evaluate(callback, args, 12, 5.0, model, tokenizer)
        assert load_best_model_info(tmp_dir)["metric"] == METRIC


DISTRIBUTED_SCRIPT = """
import json, os, sys
os.environ["HF_HUB_OFFLINE"] = "1"
import torch
from transformers import TrainerControl, TrainerState
from kurdish_tts.models.vits import VitsForTraining
from kurdish_tts.text import build_kurmanji_tokenizer
from kurdish_tts.trainers import VitsTrainingArguments
from kurdish_tts.trainers.best_model import BestModelCallback

args = VitsTrainingArguments(sys.argv[1], use_cpu=True, report_to="none")
rank = args.process_index
tokenizer = build_kurmanji_tokenizer()
torch.manual_seed(0)
model = VitsForTraining.from_size("tiny", tokenizer.vocab_size)
callback = BestModelCallback()
callback.on_train_begin(args, TrainerState(), TrainerControl())
# The processes disagree, as VitsTrainer's per-process eval losses do: the main process decides for all.
values = {0: [2.0, 3.0, 1.0], 1: [2.0, 1.0, 3.0]}[rank]
for step, value in enumerate(values, start=1):
    metrics = {"eval_loss/mel": value}
    callback.on_evaluate(args, TrainerState(global_step=step), TrainerControl(), metrics=metrics, model=model,
                         processing_class=tokenizer)
print("RESULT", json.dumps({"rank": rank, "world_size": args.world_size, "step": callback.best_step,
                            "value": callback.best_value}), flush=True)

# An orderly end: a gloo group left to the interpreter's shutdown, its peer gone first, can abort a busy machine's run.
if torch.distributed.is_initialized():
    torch.distributed.destroy_process_group()
"""


@pytest.mark.slow
def test_processes_follow_the_main_processs_decision(tmp_dir):
    """Two CPU processes (gloo) under torchrun, each with its own metric values."""
    script = tmp_dir / "distributed.py"
    script.write_text(DISTRIBUTED_SCRIPT)
    result = torchrun(script, tmp_dir / "out")
    assert result.returncode == 0, result.stderr[-4000:]
    results = [json.loads(line.split("RESULT", 1)[1]) for line in result.stdout.splitlines() if "RESULT" in line]
    assert sorted((r["rank"], r["world_size"], r["step"], r["value"]) for r in results) == [
        (0, 2, 3, 1.0),
        (1, 2, 3, 1.0),
    ]
    assert load_best_model_info(tmp_dir / "out")["step"] == 3 and leftovers(tmp_dir / "out") == []
