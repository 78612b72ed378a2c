"""`NanRecoveryCallback` on short CPU runs of the tiny VITS architecture with demo-corpus speech, NaN injected."""

import dataclasses
import json
import logging
import math
import os

import pytest
import safetensors.torch
import torch
from transformers import TrainerCallback

from kurdish_tts.data.collators import SAMPLE_IDS, DataCollatorForVits
from kurdish_tts.trainers import VitsTrainer
from kurdish_tts.trainers.nan_recovery import QUARANTINE_NAME, NanRecoveryCallback, load_quarantine

from .testing_utils import tiny_model, tiny_training_args, torchrun

LEARNING_RATE = 2e-4


@pytest.fixture(scope="module")
def prepared(tiny_demo):
    return tiny_demo


def make_trainer(prepared, tokenizer, output_dir, **overrides):
    # A constant schedule, so that every learning rate of the run is known.
    values = {"max_steps": 8, "learning_rate": LEARNING_RATE, "lr_scheduler_type": "constant", **overrides}
    model = tiny_model(tokenizer)
    return VitsTrainer(model, tiny_training_args(output_dir, **values), train_dataset=prepared)


@dataclasses.dataclass
class RecordingCollator(DataCollatorForVits):
    """Keeps the sample ids of every batch it makes, in order: with one micro-batch per step, step k's are [k - 1]."""

    batches: list = dataclasses.field(default_factory=list)

    def __call__(self, features):
        self.batches.append([str(feature["id"]) for feature in features])
        return super().__call__(features)


def record_batches(trainer) -> list[list[str]]:
    # A `DataCollatorForVits` still, so that the trainer turns on its `sample_ids` for training.
    trainer.data_collator = RecordingCollator(**dataclasses.asdict(trainer.data_collator))
    return trainer.data_collator.batches


def poison_decoder(trainer, steps):
    """Make the generated audio NaN in training steps `steps` (1-based): loss, gradients, then weights turn NaN."""

    def hook(module, args, output):
        if module.training and trainer.state.global_step + 1 in steps:
            return output * float("nan")
        return None

    trainer.model.vits.decoder.register_forward_hook(hook)


def poison_gradient(trainer, steps):
    """Add inf to one weight's gradient in training steps `steps` (1-based); the loss stays finite."""
    weight = trainer.model.vits.decoder.conv_post.weight
    weight.register_hook(lambda grad: grad + float("inf") if trainer.state.global_step + 1 in steps else grad)


def state_copy(trainer, optimizer_names):
    """Copies of the model's tensors and of the named optimizers' (keyed by parameter identity, which
    `Optimizer.load_state_dict` keeps)."""
    copies = {"model": {name: tensor.clone() for name, tensor in trainer.model.state_dict().items()}}
    for name in optimizer_names:
        copies[name] = {
            f"{id(parameter)}.{key}": value.clone()
            for parameter, state in getattr(trainer, name).state.items()
            for key, value in state.items()
            if torch.is_tensor(value)
        }
    return copies


class StateRecorder(TrainerCallback):
    """State copies at the end of chosen steps, and whether all weights were finite at the end of each step, as a
    callback at this place in the list sees them."""

    def __init__(self, trainer, steps, optimizer_names=("optimizer",)):
        self.trainer, self.steps, self.optimizer_names = trainer, steps, optimizer_names
        self.at = {}
        self.finite_at = {}

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step in self.steps:
            self.at[state.global_step] = state_copy(self.trainer, self.optimizer_names)
        parameters = list(self.trainer.model.parameters())
        self.finite_at[state.global_step] = all(torch.isfinite(p).all() for p in parameters)


def assert_same_state(actual, expected):
    assert actual.keys() == expected.keys()
    for part, tensors in expected.items():
        assert actual[part].keys() == tensors.keys(), part
        for key, tensor in tensors.items():
            assert torch.equal(actual[part][key], tensor), (part, key)


def read_quarantine(output_dir):
    with open(os.path.join(output_dir, QUARANTINE_NAME), encoding="utf-8") as handle:
        return json.load(handle)


def lrs(optimizer, key="lr"):
    return [group[key] for group in optimizer.param_groups]


class TestRecovery:
    @pytest.mark.parametrize("gan_update", ["fused", "alternating"])
    def test_poisoned_step_is_undone_quarantined_and_training_goes_on(
        self, prepared, tokenizer, tmp_dir, gan_update, caplog
    ):
        trainer = make_trainer(prepared, tokenizer, tmp_dir, gan_update=gan_update)
        batches = record_batches(trainer)
        poison_decoder(trainer, {5})
        # First in the list, before the recovery: sees the weights that each step itself left.
        before = StateRecorder(trainer, set())
        trainer.callback_handler.callbacks.insert(0, before)
        recovery = NanRecoveryCallback(lr_factor=0.5, snapshot_steps=2).attach(trainer)
        optimizers = ["optimizer"] + (["_discriminator_optimizer"] if gan_update == "alternating" else [])
        after = StateRecorder(trainer, {4, 5}, optimizers)
        trainer.add_callback(after)
        with caplog.at_level(logging.WARNING, logger="kurdish_tts.trainers.nan_recovery"):
            trainer.train()

        assert trainer.state.global_step == 8
        assert recovery.recoveries == 1 and not recovery.gave_up
        assert not before.finite_at[5] and all(before.finite_at[step] for step in (1, 2, 3, 4, 6, 7, 8))
        assert all(after.finite_at.values())
        # The snapshot of step 4 (snapshots every 2 steps) is restored exactly, optimizer moments included.
        assert_same_state(after.at[5], after.at[4])

        record = read_quarantine(tmp_dir)
        (event,) = record["events"]
        assert event["step"] == 5 and event["action"] == "recovered" and event["reason"] == "loss"
        assert event["restored_step"] == 4
        assert event["sample_ids"] == batches[4] and len(batches[4]) == 2
        assert event["losses"] == ["nan"]
        assert record["sample_ids"] == sorted(batches[4])
        assert load_quarantine(tmp_dir) == set(batches[4])
        assert "step 5 had a non-finite loss" in caplog.text and batches[4][0] in caplog.text

        # The learning rate is halved for good: optimizer, warm-up reference and schedule alike.
        for name in optimizers:
            optimizer = getattr(trainer, name)
            assert lrs(optimizer) == pytest.approx([LEARNING_RATE / 2] * len(optimizer.param_groups)), name
            assert lrs(optimizer, "initial_lr") == pytest.approx(lrs(optimizer)), name
        assert trainer.lr_scheduler.base_lrs == pytest.approx(lrs(trainer.optimizer))
        if gan_update == "alternating":
            assert trainer._discriminator_scheduler.base_lrs == pytest.approx([LEARNING_RATE / 2] * 2)
        logged = [entry["learning_rate"] for entry in trainer.state.log_history if "loss" in entry]
        assert logged == pytest.approx([LEARNING_RATE] * 5 + [LEARNING_RATE / 2] * 3)

    def test_deferred_check_finds_the_bad_step_two_steps_late(self, prepared, tokenizer, tmp_dir):
        # No log, evaluation or save in between: step 5's flags are read at the end of step 7.
        trainer = make_trainer(prepared, tokenizer, tmp_dir, logging_steps=100)
        batches = record_batches(trainer)
        poison_decoder(trainer, {5})
        before = StateRecorder(trainer, set())
        trainer.callback_handler.callbacks.insert(0, before)
        recovery = NanRecoveryCallback(snapshot_steps=4, deferred_check=True).attach(trainer)
        after = StateRecorder(trainer, {4, 7})
        trainer.add_callback(after)
        trainer.train()

        assert recovery.recoveries == 1 and trainer.state.global_step == 8
        # Step 5 left NaN weights and steps 6 and 7 trained on them; the recovery at the end of step 7 undid all three.
        assert not any(before.finite_at[step] for step in (5, 6, 7))
        assert not after.finite_at[5] and not after.finite_at[6]  # not known yet
        assert all(after.finite_at[step] for step in (1, 2, 3, 4, 7, 8))
        assert_same_state(after.at[7], after.at[4])
        (event,) = read_quarantine(tmp_dir)["events"]
        assert event["step"] == 5 and event["restored_step"] == 4 and event["sample_ids"] == batches[4]
        assert all(torch.isfinite(p).all() for p in trainer.model.parameters())

    def test_deferred_check_is_read_before_the_step_is_logged_or_ends_training(self, prepared, tokenizer, tmp_dir):
        class StopAtFive(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                control.should_training_stop = state.global_step == 5

        trainer = make_trainer(prepared, tokenizer, tmp_dir, logging_steps=100)
        poison_decoder(trainer, {5})
        recovery = NanRecoveryCallback(snapshot_steps=3, deferred_check=True).attach(trainer)
        # After the recovery callback: it stops training once step 5 is deferred, before anyone read its flags.
        trainer.add_callback(StopAtFive())
        trainer.train()

        assert trainer.state.global_step == 5 and recovery.recoveries == 1
        (event,) = read_quarantine(tmp_dir)["events"]
        assert event["step"] == 5 and event["restored_step"] == 3
        assert all(torch.isfinite(p).all() for p in trainer.model.parameters())

    def test_too_many_recoveries_stop_with_a_good_checkpoint(self, prepared, tokenizer, tmp_dir, caplog):
        trainer = make_trainer(prepared, tokenizer, tmp_dir, max_steps=10)
        poison_decoder(trainer, set(range(4, 11)))
        recovery = NanRecoveryCallback(lr_factor=0.5, max_recoveries=2, snapshot_steps=1).attach(trainer)
        recorder = StateRecorder(trainer, {3})
        trainer.add_callback(recorder)
        with caplog.at_level(logging.WARNING, logger="kurdish_tts.trainers.nan_recovery"):
            trainer.train()

        # Steps 4 and 5 recover; step 6 gives up.
        assert trainer.state.global_step == 6
        assert recovery.gave_up and recovery.recoveries == 2
        events = read_quarantine(tmp_dir)["events"]
        assert [(e["step"], e["action"], e["restored_step"]) for e in events] == [
            (4, "recovered", 3),
            (5, "recovered", 3),
            (6, "gave_up", 3),
        ]
        assert "giving up at step 6" in caplog.text
        for advice in ("checkpoint-6", "lower learning rate", QUARANTINE_NAME, "bf16"):
            assert advice in caplog.text, advice

        # The checkpoint is written although `save_strategy="no"`, and holds the state of step 3.
        checkpoint = tmp_dir / "checkpoint-6"
        weights = safetensors.torch.load_file(checkpoint / "model.safetensors")
        discriminator = safetensors.torch.load_file(checkpoint / "discriminator.safetensors")
        expected = recorder.at[3]["model"]
        for name, tensor in weights.items():
            assert torch.equal(tensor, expected[f"vits.{name}"]), name
        for name, tensor in discriminator.items():
            assert torch.equal(tensor, expected[f"discriminator.{name}"]), name
        saved = torch.load(checkpoint / "optimizer.pt", weights_only=True)
        assert [group["lr"] for group in saved["param_groups"]] == pytest.approx([LEARNING_RATE / 4] * 2)

        # Resuming keeps the lowered rate, and an intact run goes on from the checkpoint.
        resumed = make_trainer(prepared, tokenizer, tmp_dir, max_steps=8)
        NanRecoveryCallback().attach(resumed)
        resumed.train(resume_from_checkpoint=str(checkpoint))
        assert resumed.state.global_step == 8
        assert lrs(resumed.optimizer) == pytest.approx([LEARNING_RATE / 4] * len(resumed.optimizer.param_groups))
        assert all(torch.isfinite(p).all() for p in resumed.model.parameters())
        # The earlier run's events stay in the quarantine file.
        assert len(read_quarantine(tmp_dir)["events"]) == 3

    @pytest.mark.parametrize("norm_source", ["trainer", "callback"])
    def test_infinite_gradient_with_finite_loss_recovers_in_fp32(self, prepared, tokenizer, tmp_dir, norm_source):
        trainer = make_trainer(prepared, tokenizer, tmp_dir, max_steps=4)
        batches = record_batches(trainer)
        poison_gradient(trainer, {3})
        recovery = NanRecoveryCallback(snapshot_steps=1).attach(trainer)
        if norm_source == "callback":
            # The Trainer's norm out of reach (another transformers version): `on_pre_optimizer_step` computes it.
            del trainer._get_grad_norm
        trainer.train()

        assert trainer.state.global_step == 4 and recovery.recoveries == 1
        (event,) = recovery.events
        assert event["step"] == 3 and event["reason"] == "grad_norm" and event["grad_norm"] in ("inf", "nan")
        assert all(math.isfinite(loss) for loss in event["losses"])
        assert event["sample_ids"] == batches[2]
        assert all(torch.isfinite(p).all() for p in trainer.model.parameters())

    def test_every_micro_batch_of_the_step_is_quarantined(self, prepared, tokenizer, tmp_dir):
        # Six batches of one per epoch: two full micro-batches per step.
        trainer = make_trainer(
            prepared, tokenizer, tmp_dir, max_steps=2, per_device_train_batch_size=1, gradient_accumulation_steps=2
        )
        batches = record_batches(trainer)
        poison_decoder(trainer, {2})
        recovery = NanRecoveryCallback().attach(trainer)
        trainer.train()
        (event,) = recovery.events
        assert event["step"] == 2 and event["sample_ids"] == batches[2] + batches[3]
        assert event["losses"] == ["nan", "nan"]

    def test_fp16_skipped_steps_are_not_recoveries_but_a_nan_loss_is(self, prepared, tokenizer, tmp_dir):
        trainer = make_trainer(prepared, tokenizer, tmp_dir, max_steps=3, fp16=True)
        # Accelerate uses a GradScaler on CUDA only; this one runs the same scale/unscale/skip path on the CPU.
        trainer.accelerator.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
        trainer.accelerator.native_amp = True
        poison_gradient(trainer, {2})
        poison_decoder(trainer, {3})
        recovery = NanRecoveryCallback(snapshot_steps=1).attach(trainer)
        trainer.train()

        assert trainer.state.global_step == 3
        # Step 2: inf gradients, skipped by the scaler, which halves its scale; step 3: NaN loss, recovered.
        assert [(event["step"], event["reason"]) for event in recovery.events] == [(3, "loss")]
        assert recovery.recoveries == 1
        assert trainer.accelerator.scaler.get_scale() < 2.0**10
        grad_norms = [entry["grad_norm"] for entry in trainer.state.log_history if "grad_norm" in entry]
        assert math.isinf(grad_norms[1])
        assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


class TestSampleIds:
    def test_collator_passes_ids_through_on_request(self, prepared):
        rows = [prepared.with_format("numpy")[i] for i in (0, 1)]
        batch = DataCollatorForVits(hop_length=16, return_sample_ids=True)(rows)
        assert batch[SAMPLE_IDS] == [str(row["id"]) for row in rows]
        assert all(type(sample_id) is str for sample_id in batch[SAMPLE_IDS])
        # Off by default: `model(**batch)` must keep working.
        assert SAMPLE_IDS not in DataCollatorForVits(hop_length=16)(rows)
        without_ids = [{k: v for k, v in row.items() if k != "id"} for row in rows]
        assert SAMPLE_IDS not in DataCollatorForVits(hop_length=16, return_sample_ids=True)(without_ids)

    def test_trainer_trains_with_ids_and_evaluates_with_or_without(self, prepared, tokenizer, tmp_dir):
        trainer = make_trainer(prepared, tokenizer, tmp_dir, max_steps=2, per_device_eval_batch_size=2)
        seen = []
        training_step = trainer.training_step

        def spying_training_step(model, inputs, *args, **kwargs):
            seen.append(inputs[SAMPLE_IDS])
            return training_step(model, inputs, *args, **kwargs)

        trainer.training_step = spying_training_step
        trainer.train()
        assert len(seen) == 2 and all(len(ids) == 2 for ids in seen)
        assert set(sum(seen, [])) <= set(prepared["id"])
        assert not trainer.data_collator.return_sample_ids

        held_out = prepared.select(range(2))
        assert SAMPLE_IDS not in next(iter(trainer.get_eval_dataloader(held_out)))
        assert math.isfinite(trainer.evaluate(held_out)["eval_loss"])
        # A collator asked for ids gives them to evaluation too; the model never sees them.
        trainer.data_collator = dataclasses.replace(trainer.data_collator, return_sample_ids=True)
        assert SAMPLE_IDS in next(iter(trainer.get_eval_dataloader(held_out)))
        assert math.isfinite(trainer.evaluate(held_out)["eval_loss"])


class TestCallbackSetup:
    def test_attach_places_it_after_the_flow_callback_once(self, prepared, tokenizer, tmp_dir):
        trainer = make_trainer(prepared, tokenizer, tmp_dir)
        callback = NanRecoveryCallback()
        assert callback.attach(trainer) is callback
        wrapped = trainer.training_step
        assert callback.attach(trainer) is callback
        callbacks = trainer.callback_handler.callbacks
        assert type(callbacks[0]).__name__ == "DefaultFlowCallback" and callbacks[1] is callback
        assert sum(c is callback for c in callbacks) == 1
        # Attached twice, wrapped once.
        assert trainer.training_step is wrapped and wrapped._nan_recovery_callback is callback

    def test_added_without_attach_fails_clearly(self, prepared, tokenizer, tmp_dir):
        trainer = make_trainer(prepared, tokenizer, tmp_dir, max_steps=1)
        trainer.add_callback(NanRecoveryCallback())
        with pytest.raises(RuntimeError, match="attach"):
            trainer.train()

    @pytest.mark.parametrize(
        "kwargs", [{"lr_factor": 0}, {"lr_factor": 1.5}, {"max_recoveries": -1}, {"snapshot_steps": 0}]
    )
    def test_invalid_options(self, kwargs):
        with pytest.raises(ValueError):
            NanRecoveryCallback(**kwargs)

    def test_load_quarantine_without_a_file(self, tmp_dir):
        assert load_quarantine(tmp_dir) == set()
        assert load_quarantine(tmp_dir / QUARANTINE_NAME) == set()


DISTRIBUTED_SCRIPT = """
import json, os, sys
import datasets, torch
from kurdish_tts.models.vits import VitsForTraining
from kurdish_tts.text import build_kurmanji_tokenizer
from kurdish_tts.trainers import VitsTrainer, VitsTrainingArguments
from kurdish_tts.trainers.nan_recovery import NanRecoveryCallback

output_dir, data_dir = sys.argv[1:3]
args = VitsTrainingArguments(output_dir, use_cpu=True, report_to="none", max_steps=3, per_device_train_batch_size=1,
                             lr_scheduler_type="constant", save_strategy="no", disable_tqdm=True, seed=0)
rank = args.process_index
tokenizer = build_kurmanji_tokenizer()
torch.manual_seed(0)
model = VitsForTraining.from_size("tiny", tokenizer.vocab_size)
trainer = VitsTrainer(model, args, train_dataset=datasets.load_from_disk(data_dir))
training_step = trainer.training_step

def training_step_reporting_nan_on_rank_1(model, inputs, *args, **kwargs):
    loss = training_step(model, inputs, *args, **kwargs)
    # Only this process's loss, not the gradients: the other process sees nothing wrong of its own.
    return loss * float("nan") if rank == 1 and trainer.state.global_step + 1 == 2 else loss

trainer.training_step = training_step_reporting_nan_on_rank_1
callback = NanRecoveryCallback(snapshot_steps=1).attach(trainer)
trainer.train()
checksum = sum(p.double().sum().item() for p in model.parameters())
result = {"rank": rank, "world_size": args.world_size, "recoveries": callback.recoveries, "events": callback.events,
          "checksum": checksum, "lr": [g["lr"] for g in trainer.optimizer.param_groups]}
# A file per process: the two processes' prints can interleave within a line.
with open(os.path.join(os.path.dirname(output_dir), f"result-{rank}.json"), "w") as handle:
    json.dump(result, handle)

# An orderly end: a gloo group left to the interpreter's shutdown, its peer gone first, can abort a busy machine's run.
if torch.distributed.is_initialized():
    torch.distributed.destroy_process_group()
"""


@pytest.mark.slow
def test_processes_agree_on_a_recovery(prepared, tmp_dir):
    """Two CPU processes (gloo) under torchrun; only one of them sees a non-finite loss. About 15 s."""
    script = tmp_dir / "distributed.py"
    script.write_text(DISTRIBUTED_SCRIPT)
    prepared.save_to_disk(str(tmp_dir / "data"))
    result = torchrun(script, tmp_dir / "out", tmp_dir / "data")
    assert result.returncode == 0, result.stderr[-4000:]
    results = [json.loads((tmp_dir / f"result-{rank}.json").read_text()) for rank in (0, 1)]
    assert [(r["rank"], r["world_size"], r["recoveries"]) for r in results] == [(0, 2, 1), (1, 2, 1)]
    # Both restored and lowered the rate: the replicas are still identical.
    assert results[0]["checksum"] == results[1]["checksum"] and math.isfinite(results[0]["checksum"])
    assert results[0]["lr"] == results[1]["lr"] == pytest.approx([LEARNING_RATE / 2] * 2)
    # One file, by the main process, with the step's samples of both processes and both losses.
    (event,) = read_quarantine(tmp_dir / "out")["events"]
    assert event == results[0]["events"][0]
    assert event["step"] == 2 and len(event["sample_ids"]) == 2 and len(set(event["sample_ids"])) == 2
    assert math.isfinite(event["losses"][0]) and event["losses"][1] == "nan"
