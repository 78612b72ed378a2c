"""`SynthesisMetricsCallback`: synthesis metrics inside the Trainer's evaluation, seen by best-model selection."""

import math
from unittest.mock import patch

import pytest
from transformers import TrainerControl, TrainerState

from kurdish_tts.trainers import VitsTrainer
from kurdish_tts.trainers import synthesis_metrics as synthesis_metrics_module
from kurdish_tts.trainers.best_model import BestModelCallback, load_best_model_info
from kurdish_tts.trainers.synthesis_metrics import SynthesisMetricsCallback

from .testing_utils import tiny_model, tiny_training_args


def make_trainer(prepared, tokenizer, output_dir, **overrides):
    args = tiny_training_args(output_dir, **{"max_steps": 4, "eval_strategy": "steps", "eval_steps": 1, **overrides})
    return VitsTrainer(
        tiny_model(tokenizer),
        args,
        train_dataset=prepared,
        eval_dataset=prepared.select(range(2)),
        processing_class=tokenizer,
    )


@pytest.fixture(scope="module")
def run(tiny_demo, tokenizer, tmp_path_factory):
    """Two steps, an evaluation after each, the best model chosen by MCD; computed every second evaluation."""
    output_dir = tmp_path_factory.mktemp("synthesis_metrics_run")
    trainer = make_trainer(
        tiny_demo, tokenizer, output_dir, max_steps=2, metric_for_best_model="mcd", greater_is_better=False
    )
    # A few tiny-model steps make no usable audio; this test is about selecting by MCD, not the health gate.
    best = BestModelCallback(require_healthy_audio=False).attach(trainer)
    callback = SynthesisMetricsCallback(
        tiny_demo.select(range(2)), "mcd,duration", num_samples=2, every_n_evaluations=2
    ).attach(trainer)
    steps = []
    original = synthesis_metrics_module.evaluate_synthesizer

    def counted(*args, **kwargs):
        steps.append(trainer.state.global_step)
        return original(*args, **kwargs)

    with patch.object(synthesis_metrics_module, "evaluate_synthesizer", side_effect=counted):
        trainer.train()
        final = trainer.evaluate()
    return trainer, best, callback, steps, final, output_dir


class TestDuringTraining:
    def test_computed_at_the_first_every_nth_and_the_final_evaluation(self, run):
        _, _, _, steps, _, _ = run
        # Evaluations at steps 1 and 2 (every second one computes: 1), then the final evaluate() after training,
        # which describes the final model even though step 2's evaluation carried step 1's values.
        assert steps == [1, 2]

    def test_logged_once_per_computation(self, run):
        trainer, _, _, _, _, _ = run
        logged = [entry["step"] for entry in trainer.state.log_history if "eval_mcd" in entry]
        assert logged == [1, 2]
        assert all(
            set(entry) >= {"eval_mcd", "eval_duration_ratio", "eval_duration_error"}
            for entry in trainer.state.log_history
            if "eval_mcd" in entry
        )

    def test_the_best_model_is_chosen_by_mcd(self, run):
        trainer, best, _, _, _, output_dir = run
        info = load_best_model_info(output_dir)
        fresh = {entry["step"]: entry["eval_mcd"] for entry in trainer.state.log_history if "eval_mcd" in entry}
        assert info["metric"] == "eval_mcd" and info["greater_is_better"] is False
        # Step 2's periodic evaluation carried step 1's value (a tie, which never replaces), so the model kept
        # during training is step 1's, unless the final evaluation of step 2 beat it.
        expected_step = 2 if fresh[2] < fresh[1] else 1
        assert info["step"] == expected_step and info["value"] == min(fresh.values())
        # The Trainer's own best-metric tracking saw the key too.
        assert trainer.state.best_metric == fresh[1]

    def test_the_final_evaluation_returns_fresh_metrics(self, run):
        trainer, _, callback, _, final, _ = run
        assert callback.last_step == 2
        assert final["eval_mcd"] == callback.last_metrics["eval_mcd"]
        assert math.isfinite(final["eval_mcd"]) and final["eval_mcd"] > 0
        assert final["eval_duration_ratio"] > 0 and "eval_rtf" not in final

    def test_the_callback_runs_before_the_best_model_callback(self, run):
        trainer, best, callback, _, _, _ = run
        callbacks = trainer.callback_handler.callbacks
        assert callbacks.index(callback) < callbacks.index(best)


def test_attached_in_the_wrong_order_fails_at_train_begin(tiny_demo, tokenizer, tmp_dir):
    trainer = make_trainer(tiny_demo, tokenizer, tmp_dir, max_steps=1)
    callback = SynthesisMetricsCallback(tiny_demo.select(range(1)), "mcd", num_samples=1).attach(trainer)
    BestModelCallback(metric_name="mcd").attach(trainer)  # now in front of it
    with pytest.raises(ValueError, match="attach SynthesisMetricsCallback after BestModelCallback"):
        trainer.train()
    assert callback.last_step is None


class TestDrivenDirectly:
    def callback(self, tiny_demo, **kwargs):
        return SynthesisMetricsCallback(tiny_demo.select(range(1)), "mcd", num_samples=1, **kwargs)

    def evaluate(self, callback, args, step, metrics, model=None, tokenizer=None):
        callback.on_evaluate(
            args, TrainerState(global_step=step), TrainerControl(), metrics=metrics, model=model,
            processing_class=tokenizer,
        )  # fmt: skip
        return metrics

    def test_other_evaluation_prefixes_are_left_alone(self, tiny_demo, tmp_dir):
        callback = self.callback(tiny_demo)
        metrics = self.evaluate(callback, tiny_training_args(tmp_dir), 1, {"test_loss": 1.0, "test_runtime": 0.1})
        assert metrics == {"test_loss": 1.0, "test_runtime": 0.1}

    def test_a_failure_is_nan_and_training_goes_on(self, tiny_demo, tokenizer, tmp_dir, caplog):
        callback = self.callback(tiny_demo)
        metrics = self.evaluate(callback, tiny_training_args(tmp_dir), 1, {"eval_runtime": 0.1}, object(), tokenizer)
        assert math.isnan(metrics["eval_mcd"]) and callback.failures == 1
        assert "synthesizing or scoring the held-out clips failed" in caplog.text

    def test_arguments_are_checked(self, tiny_demo):
        with pytest.raises(ValueError, match="cer metric needs an ASR model"):
            SynthesisMetricsCallback(tiny_demo, "mcd,cer")
        with pytest.raises(ValueError, match="at least 1"):
            SynthesisMetricsCallback(tiny_demo, "mcd", every_n_evaluations=0)
        with pytest.raises(ValueError, match="unknown metric"):
            SynthesisMetricsCallback(tiny_demo, "mos")

    def test_warns_when_a_lower_is_better_metric_would_be_maximized(self, tiny_demo, tmp_dir, caplog):
        args = tiny_training_args(tmp_dir, metric_for_best_model="mcd")  # TrainingArguments then sets True
        assert args.greater_is_better
        self.callback(tiny_demo).on_train_begin(args, TrainerState(), TrainerControl())
        assert "pass --greater_is_better false" in caplog.text


def test_timing_one_computation_for_a_budget_leaves_the_model_alone(tiny_demo, tokenizer, tmp_dir):
    model = tiny_model(tokenizer)
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    callback = SynthesisMetricsCallback(tiny_demo.select(range(1)), "mcd", num_samples=1)
    seconds = callback.time_evaluation(tiny_training_args(tmp_dir), model, tokenizer)
    assert seconds > 0 and callback.failures == 0 and model.training
    assert all((model.state_dict()[name] == tensor).all() for name, tensor in before.items())
