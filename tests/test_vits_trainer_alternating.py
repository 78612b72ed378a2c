"""`VitsTrainer` with `gan_update="alternating"` (VITS's D-then-G steps): tiny model, demo-corpus speech, CPU."""

import math
import os

import pytest
import torch

from kurdish_tts.models.vits import losses
from kurdish_tts.trainers import VitsTrainer, VitsTrainingArguments
from kurdish_tts.trainers.vits_trainer import (
    DISCRIMINATOR_OPTIMIZER_NAME,
    DISCRIMINATOR_SCALER_NAME,
    DISCRIMINATOR_SCHEDULER_NAME,
    LOSS_NAMES,
)

from .testing_utils import tiny_model, tiny_training_args


@pytest.fixture(scope="module")
def prepared(tiny_demo):
    return tiny_demo.select(range(4))


def training_args(tmp_dir, **overrides):
    return tiny_training_args(tmp_dir, **{"gan_update": "alternating", **overrides})


def optimizer_parameter_ids(optimizer):
    return {id(p) for group in optimizer.param_groups for p in group["params"]}


class TestAlternatingGanUpdate:
    def test_two_steps_move_both_networks_with_separate_optimizers(self, prepared, tokenizer, tmp_dir):
        model = tiny_model(tokenizer)
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        trainer = VitsTrainer(model, training_args(tmp_dir, max_steps=2), train_dataset=prepared)
        trainer.train()

        moved = {n.split(".")[0] for n, p in model.named_parameters() if not torch.equal(before[n], p.detach())}
        assert moved == {"vits", "discriminator"}
        assert optimizer_parameter_ids(trainer.optimizer) == {id(p) for p in model.vits.parameters()}
        assert optimizer_parameter_ids(trainer._discriminator_optimizer) == {
            id(p) for p in model.discriminator.parameters()
        }
        logged = [h for h in trainer.state.log_history if "loss" in h]
        assert len(logged) == 2
        for entry in logged:
            for name in LOSS_NAMES:
                assert math.isfinite(entry[f"loss/{name}"]), (name, entry)
            assert math.isfinite(entry["grad_norm/disc"]) and entry["grad_norm/disc"] > 0
        # Both schedules are linear decay over the same 2 steps.
        assert trainer._discriminator_scheduler.get_last_lr() == trainer.lr_scheduler.get_last_lr()[:1] * 2

    def test_generator_terms_see_the_updated_discriminator(self, prepared, tokenizer, tmp_dir, monkeypatch):
        trainer = VitsTrainer(tiny_model(tokenizer), training_args(tmp_dir, max_steps=2), train_dataset=prepared)
        events = []
        discriminator_step = trainer._discriminator_step
        adversarial_loss = losses.generator_adversarial_loss
        monkeypatch.setattr(trainer, "_discriminator_step", lambda d: events.append("D") or discriminator_step(d))
        monkeypatch.setattr(losses, "generator_adversarial_loss", lambda x: events.append("G") or adversarial_loss(x))
        trainer.train()
        assert events == ["D", "G", "D", "G"]

    def test_discriminator_learning_rate(self, prepared, tokenizer, tmp_dir):
        args = training_args(tmp_dir, max_steps=1, discriminator_learning_rate=1e-3)
        trainer = VitsTrainer(tiny_model(tokenizer), args, train_dataset=prepared)
        trainer.train()
        assert {g["initial_lr"] for g in trainer._discriminator_optimizer.param_groups} == {1e-3}
        assert {g["initial_lr"] for g in trainer.optimizer.param_groups} == {2e-4}

    def test_discriminator_warmup_freezes_the_generator_then_releases_it(self, prepared, tokenizer, tmp_dir):
        model = tiny_model(tokenizer)
        generator_before = {n: p.detach().clone() for n, p in model.vits.named_parameters()}
        discriminator_before = {n: p.detach().clone() for n, p in model.discriminator.named_parameters()}
        args = training_args(tmp_dir, max_steps=2, discriminator_warmup_steps=2)
        trainer = VitsTrainer(model, args, train_dataset=prepared)
        trainer.train()
        assert all(torch.equal(generator_before[n], p) for n, p in model.vits.named_parameters())
        assert not all(torch.equal(discriminator_before[n], p) for n, p in model.discriminator.named_parameters())
        assert all("loss/gen" not in h for h in trainer.state.log_history if "loss" in h)

        args = training_args(tmp_dir, max_steps=2, discriminator_warmup_steps=1)
        VitsTrainer(model, args, train_dataset=prepared).train()
        assert not all(torch.equal(generator_before[n], p) for n, p in model.vits.named_parameters())

    def test_resume_restores_both_networks_and_the_discriminator_optimizer(self, prepared, tokenizer, tmp_dir):
        straight = tiny_model(tokenizer)
        straight_trainer = VitsTrainer(straight, training_args(tmp_dir / "a", max_steps=4), train_dataset=prepared)
        straight_trainer.train()

        interrupted = tiny_model(tokenizer)
        args = training_args(tmp_dir / "b", max_steps=4, save_strategy="steps", save_steps=2)
        VitsTrainer(interrupted, args, train_dataset=prepared, processing_class=tokenizer).train()
        checkpoint = tmp_dir / "b" / "checkpoint-2"
        assert {
            "model.safetensors",
            "discriminator.safetensors",
            "optimizer.pt",
            "scheduler.pt",
            DISCRIMINATOR_OPTIMIZER_NAME,
            DISCRIMINATOR_SCHEDULER_NAME,
        } <= set(os.listdir(checkpoint))

        resumed = tiny_model(tokenizer, seed=123)  # different init: everything must come from the checkpoint
        trainer = VitsTrainer(resumed, args, train_dataset=prepared, processing_class=tokenizer)
        trainer.train(resume_from_checkpoint=str(checkpoint))
        assert trainer.state.global_step == 4
        for (name, a), b in zip(straight.named_parameters(), resumed.parameters()):
            torch.testing.assert_close(a, b, msg=name, atol=1e-5, rtol=1e-4)
        # The discriminator's Adam moments went on from step 2, not from zero.
        expected = straight_trainer._discriminator_optimizer.state_dict()
        restored = trainer._discriminator_optimizer.state_dict()
        assert {int(s["step"]) for s in restored["state"].values()} == {4}
        for index, state in expected["state"].items():
            torch.testing.assert_close(restored["state"][index]["exp_avg_sq"], state["exp_avg_sq"], rtol=1e-3, atol=0)
        assert trainer._discriminator_scheduler.state_dict()["last_epoch"] == 4

    def test_gradient_accumulation_logs_the_same_loss_scale_and_steps_once(self, prepared, tokenizer, tmp_dir):
        data = prepared.select(range(2))
        losses = {}
        for batch, accumulation in ((2, 1), (1, 2)):
            args = training_args(
                tmp_dir / f"{batch}",
                max_steps=1,
                per_device_train_batch_size=batch,
                gradient_accumulation_steps=accumulation,
            )
            trainer = VitsTrainer(tiny_model(tokenizer), args, train_dataset=data)
            trainer.train()
            losses[accumulation] = trainer.state.log_history[0]["loss"]
            # One discriminator step per optimizer step, however many micro-batches.
            steps = {int(s["step"]) for s in trainer._discriminator_optimizer.state_dict()["state"].values()}
            assert steps == {1}
        # A wrong accumulation scale is off by the factor 2 (0.5 or 2.0); the items of the two micro-batches differ,
        # which moves the ratio by a third either way (0.63 with the reference HiFi-GAN decoder init).
        assert 0.55 < losses[2] / losses[1] < 1.8, losses

    def test_fp16_discriminator_scaler_is_logged_saved_and_restored(self, prepared, tokenizer, tmp_dir):
        # fp16 autocast and GradScaler both run on CPU, so the discriminator's scaler is exercised here too.
        args = training_args(tmp_dir, max_steps=2, fp16=True, save_strategy="steps", save_steps=1)
        trainer = VitsTrainer(tiny_model(tokenizer), args, train_dataset=prepared)
        trainer.train()
        assert trainer.state.log_history[0]["amp/disc_loss_scale"] == 2.0**16
        scaler_path = tmp_dir / "checkpoint-1" / DISCRIMINATOR_SCALER_NAME
        state = torch.load(scaler_path, weights_only=True)
        torch.save({**state, "scale": 1024.0}, scaler_path)
        trainer = VitsTrainer(tiny_model(tokenizer), args, train_dataset=prepared)
        trainer.train(resume_from_checkpoint=str(tmp_dir / "checkpoint-1"))
        assert [h["amp/disc_loss_scale"] for h in trainer.state.log_history if "loss" in h][-1] == 1024.0

    def test_fp16_discriminator_warmup_with_a_generator_scaler(self, prepared, tokenizer, tmp_dir):
        # On a GPU, accelerate scales the generator's loss with a GradScaler, whose step() raises for an optimizer
        # without any gradient (the generator during warm-up). CPU fp16 runs without one, so install one.
        model = tiny_model(tokenizer)
        generator_before = {n: p.detach().clone() for n, p in model.vits.named_parameters()}
        args = training_args(tmp_dir, max_steps=1, fp16=True, discriminator_warmup_steps=1)
        trainer = VitsTrainer(model, args, train_dataset=prepared)
        trainer.accelerator.scaler = torch.amp.GradScaler("cpu")
        trainer.train()
        assert all(torch.equal(generator_before[n], p) for n, p in model.vits.named_parameters())

    def test_multi_process_is_refused(self, prepared, tokenizer, tmp_dir, monkeypatch):
        args = training_args(tmp_dir, max_steps=1)
        monkeypatch.setattr(VitsTrainingArguments, "world_size", property(lambda self: 2))
        with pytest.raises(ValueError, match="use gan_update='fused' for multi-GPU"):
            VitsTrainer(tiny_model(tokenizer), args, train_dataset=prepared)

    def test_unknown_gan_update_is_refused(self, tmp_dir):
        with pytest.raises(ValueError, match="gan_update"):
            training_args(tmp_dir, gan_update="simultaneous")
