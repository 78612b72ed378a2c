"""`ThroughputCallback` on short CPU runs of the tiny VITS architecture with the bundled demo corpus."""

import logging
from pathlib import Path
from unittest.mock import patch

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from kurdish_tts.models.vits import VitsForTraining
from kurdish_tts.trainers import VitsTrainer, VitsTrainingArguments
from kurdish_tts.trainers.throughput import ThroughputCallback

PERF_KEYS = ["perf/samples_per_second", "perf/audio_seconds_per_second", "perf/step_seconds", "perf/data_wait_share"]
ETA_KEYS = ["eta/epoch_seconds", "eta/run_seconds"]
BATCH_SIZE = 2


@pytest.fixture(scope="module")
def prepared(tiny_demo):
    return tiny_demo


def make_trainer(prepared, tokenizer, output_dir, eval_dataset=None, **overrides):
    torch.manual_seed(0)
    model = VitsForTraining.from_size("tiny", tokenizer.vocab_size)
    values = {
        "output_dir": str(output_dir),
        "per_device_train_batch_size": BATCH_SIZE,
        "report_to": "none",
        "use_cpu": True,
        "seed": 0,
        "max_steps": 6,
        "logging_steps": 2,
        "save_strategy": "no",
        "disable_tqdm": True,
    }
    args = VitsTrainingArguments(**{**values, **overrides})
    return VitsTrainer(model, args, train_dataset=prepared, eval_dataset=eval_dataset, processing_class=tokenizer)


def attached(trainer, **kwargs):
    mel_config = trainer.model.mel_config
    return ThroughputCallback(
        hop_length=mel_config.hop_length, sampling_rate=mel_config.sampling_rate, **kwargs
    ).attach(trainer)


class SimulatedClock:
    """Seconds that pass only when the test says so: the shares below do not depend on this machine's speed."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def advancing(self, function, seconds: float):
        """`function`, taking `seconds` of this clock each call."""

        def timed(*args, **kwargs):
            result = function(*args, **kwargs)
            self.now += seconds
            return result

        return timed


def train_logs(trainer):
    return [entry for entry in trainer.state.log_history if "loss" in entry]


def tensorboard_scalars(folder: Path) -> dict[str, list[float]]:
    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [event.value for event in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


@pytest.fixture(scope="module")
def six_steps(prepared, tokenizer, tmp_path_factory):
    """One 6-step run reporting to TensorBoard, shared by the tests that only read its logs."""
    output_dir = tmp_path_factory.mktemp("six_steps")
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", str(output_dir / "tb"))
        trainer = make_trainer(prepared, tokenizer, output_dir, report_to=["tensorboard"])
        attached(trainer)
        output = trainer.train()
    return trainer, output, output_dir / "tb"


class TestThroughputCallback:
    def test_attach_puts_the_callback_first_once(self, prepared, tokenizer, tmp_dir):
        trainer = make_trainer(prepared, tokenizer, tmp_dir)
        callback = ThroughputCallback()
        trainer.add_callback(callback)
        assert callback.attach(trainer) is callback
        assert trainer.callback_handler.callbacks[0] is callback
        assert sum(c is callback for c in trainer.callback_handler.callbacks) == 1

    def test_every_train_log_has_sane_perf_and_eta(self, six_steps, prepared):
        trainer, output, _ = six_steps
        logs = train_logs(trainer)
        assert [entry["step"] for entry in logs] == [2, 4, 6]
        for entry in logs:
            assert set(PERF_KEYS + ETA_KEYS) <= set(entry), entry
            assert all(np.isfinite(entry[key]) and entry[key] >= 0 for key in PERF_KEYS + ETA_KEYS), entry
            assert entry["perf/samples_per_second"] == pytest.approx(BATCH_SIZE / entry["perf/step_seconds"])
            assert 0 <= entry["perf/data_wait_share"] <= 1
            # Clip length from the waveforms, independently of `num_frames` (which rounds to whole hops).
            clip_seconds = np.mean(prepared["num_samples"]) / trainer.model.mel_config.sampling_rate
            expected = entry["perf/samples_per_second"] * clip_seconds
            assert entry["perf/audio_seconds_per_second"] == pytest.approx(expected, rel=0.02)
            assert entry["eta/epoch_seconds"] <= entry["eta/run_seconds"] + 1e-9
        # The steps timed are most of the run, and no more than all of it.
        timed = sum(entry["perf/step_seconds"] * 2 for entry in logs)
        assert 0.5 * output.metrics["train_runtime"] < timed <= output.metrics["train_runtime"] * 1.01
        run_etas = [entry["eta/run_seconds"] for entry in logs]
        assert run_etas[0] > run_etas[1] > run_etas[2] == 0
        # 3 steps per epoch: after step 2 one step is left in epoch 1, after step 4 two in epoch 2.
        step_seconds = logs[0]["eta/run_seconds"] / 4
        assert logs[0]["eta/epoch_seconds"] == pytest.approx(step_seconds)
        assert logs[1]["eta/epoch_seconds"] == pytest.approx(logs[1]["eta/run_seconds"])
        assert logs[2]["eta/epoch_seconds"] == 0

    def test_no_memory_keys_on_cpu(self, six_steps):
        trainer, _, _ = six_steps
        assert not any(key.startswith("memory/") for entry in trainer.state.log_history for key in entry)

    def test_keys_reach_tensorboard(self, six_steps):
        _, _, tensorboard_dir = six_steps
        scalars = tensorboard_scalars(tensorboard_dir)
        for key in PERF_KEYS + ETA_KEYS:
            assert len(scalars[f"train/{key}"]) == 3, key
        assert scalars["train/eta/run_seconds"][-1] == 0

    @pytest.mark.parametrize("collate_seconds", [0.0, 0.25])
    def test_slow_collator_raises_data_wait_share(self, prepared, tokenizer, tmp_dir, collate_seconds):
        """In simulated time a step's work takes 0.1 s and collating a batch `collate_seconds`: the data wait is the
        collator's share of the time, whatever this machine's speed or load."""
        clock = SimulatedClock()
        trainer = make_trainer(prepared, tokenizer, tmp_dir, max_steps=4)
        attached(trainer, clock=clock)
        with (
            patch.object(trainer, "training_step", clock.advancing(trainer.training_step, 0.1)),
            patch.object(trainer, "data_collator", clock.advancing(trainer.data_collator, collate_seconds)),
        ):
            trainer.train()
        logs = train_logs(trainer)
        shares = [entry["perf/data_wait_share"] for entry in logs]
        if collate_seconds == 0:
            assert shares == [0.0, 0.0] and [entry["perf/step_seconds"] for entry in logs] == pytest.approx([0.1, 0.1])
        else:
            # Each window waits for at least one collation per step (0.25 s against 0.1 s of work); accelerate's
            # loader fetches one batch ahead, so a window can hold one more.
            assert all(0.25 / 0.35 - 1e-9 <= share <= 0.75 / 0.95 + 1e-9 for share in shares), shares

    def test_evaluation_time_is_not_data_wait(self, prepared, tokenizer, tmp_dir):
        trainer = make_trainer(
            prepared,
            tokenizer,
            tmp_dir,
            eval_dataset=prepared.select(range(2)),
            max_steps=4,
            eval_strategy="steps",
            eval_steps=2,
            per_device_eval_batch_size=2,
        )
        clock = SimulatedClock()
        attached(trainer, clock=clock)
        with (
            patch.object(trainer, "training_step", clock.advancing(trainer.training_step, 0.1)),
            patch.object(trainer, "prediction_step", clock.advancing(trainer.prediction_step, 0.4)),
        ):
            trainer.train()
        logs = train_logs(trainer)
        assert [entry["step"] for entry in logs] == [2, 4]
        # The evaluation after step 2 takes 0.4 s (simulated) right before step 3's batches are fetched: none of it is
        # data wait, and the window is the two steps' work alone.
        assert logs[1]["perf/data_wait_share"] == 0.0 and logs[1]["perf/step_seconds"] == pytest.approx(0.1), logs[1]
        evaluations = [entry for entry in trainer.state.log_history if "eval_loss" in entry]
        assert len(evaluations) == 2
        assert not any(key.startswith(("perf/", "eta/")) for entry in evaluations for key in entry)

    def test_callbacks_argument_runs_after_tensorboard_and_warns(
        self, prepared, tokenizer, tmp_dir, monkeypatch, caplog
    ):
        monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", str(tmp_dir / "tb"))
        trainer = make_trainer(prepared, tokenizer, tmp_dir, max_steps=2, report_to=["tensorboard"])
        trainer.add_callback(ThroughputCallback())
        with caplog.at_level(logging.WARNING, logger="kurdish_tts.trainers.throughput"):
            trainer.train()
        assert "attach(trainer)" in caplog.text
        # log_history and the console still get the keys; TensorBoard, called earlier, does not.
        assert "perf/step_seconds" in train_logs(trainer)[0]
        scalars = tensorboard_scalars(tmp_dir / "tb")
        assert "train/loss" in scalars and not any(tag.startswith("train/perf/") for tag in scalars)
