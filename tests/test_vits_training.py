"""VITS training on CPU with the tiny architecture and real (espeak-ng) Kurmanji speech from the demo corpus."""

import math
import os

import numpy as np
import pytest
import torch
from transformers import VitsModel, pipeline

from kurdish_tts.audio import mel_spectrogram
from kurdish_tts.data.collators import DataCollatorForVits
from kurdish_tts.models.vits import VitsForTraining
from kurdish_tts.models.vits.modeling_vits_training import slice_segments
from kurdish_tts.trainers import VitsTrainer

from .testing_utils import tiny_model, tiny_training_args


@pytest.fixture(scope="module")
def prepared(tiny_demo):
    return tiny_demo


def batch_of(prepared, model, indices):
    collator = DataCollatorForVits(hop_length=model.mel_config.hop_length, min_frames=model.segment_frames)
    return collator([prepared.with_format("numpy")[i] for i in indices])


class TestCollator:
    def test_pads_from_lengths(self, prepared, tokenizer):
        model = tiny_model(tokenizer)
        rows = [prepared.with_format("numpy")[i] for i in (0, 1)]
        batch = DataCollatorForVits(hop_length=16, pad_to_multiple_of=8)(rows)
        lengths = [len(r["input_ids"]) for r in rows]
        assert batch["input_ids"].shape[1] % 8 == 0 and batch["mel"].shape[-1] % 8 == 0
        assert batch["attention_mask"].sum(1).tolist() == lengths
        assert batch["mel_lengths"].tolist() == [int(r["num_frames"]) for r in rows]
        assert batch["waveform"].shape[1] == batch["mel"].shape[-1] * 16
        # The mel stored in the cache is the mel of the stored waveform (float16 rounding only).
        assert batch["waveform"].dtype == torch.int16 and batch["mel"].dtype == torch.float16
        frames = int(batch["mel_lengths"][0])
        expected = mel_spectrogram(batch["waveform"][0, : frames * 16].float() / 32767, model.mel_config)
        torch.testing.assert_close(batch["mel"][0, :, :frames].float(), expected, atol=0.02, rtol=0)
        assert batch["mel"][0, :, frames:].abs().sum() == 0 or frames == batch["mel"].shape[-1]

    def test_speaker_ids_and_unknown_speaker(self, prepared):
        rows = [prepared.with_format("numpy")[i] for i in (0, 1)]
        speakers = {r["speaker"] for r in rows}
        batch = DataCollatorForVits(speaker_to_id={s: i for i, s in enumerate(sorted(speakers))})(rows)
        assert batch["speaker_id"].shape == (2,)
        with pytest.raises(KeyError, match="no embedding id"):
            DataCollatorForVits(speaker_to_id={})(rows)


class TestVitsForTraining:
    def test_every_trainable_parameter_gets_a_finite_gradient(self, prepared, tokenizer):
        model = tiny_model(tokenizer)
        output = model(**batch_of(prepared, model, [0, 1, 2]))
        for name in ("mel_loss", "kl_loss", "duration_loss", "adversarial_loss", "feature_matching_loss"):
            assert torch.isfinite(getattr(output, name)), name
        total = sum(
            getattr(output, name)
            for name in (
                "mel_loss",
                "kl_loss",
                "duration_loss",
                "adversarial_loss",
                "feature_matching_loss",
                "discriminator_loss",
            )
        )
        total.backward()
        for name, parameter in model.named_parameters():
            assert parameter.grad is not None, f"{name} received no gradient"
            assert torch.isfinite(parameter.grad).all(), name
            assert parameter.grad.abs().sum() > 0, f"{name} received a zero gradient"

    def test_alignment_is_monotonic_and_covers_every_frame(self, prepared, tokenizer):
        model = tiny_model(tokenizer)
        batch = batch_of(prepared, model, [0, 1])
        output = model(**batch, compute_adversarial=False)
        for item in range(2):
            tokens = int(batch["attention_mask"][item].sum())
            frames = int(batch["mel_lengths"][item])
            path = output.alignment[item, :tokens, :frames]
            assert torch.equal(path.sum(0), torch.ones(frames))  # each frame belongs to exactly one token
            assert output.durations[item, :tokens].sum() == frames
            token_of_frame = path.argmax(0)
            assert (token_of_frame.diff() >= 0).all() and (token_of_frame.diff() <= 1).all()
            assert output.alignment[item, tokens:].sum() == 0 and output.alignment[item, :, frames:].sum() == 0

    def test_generator_terms_do_not_touch_the_discriminator(self, prepared, tokenizer):
        model = tiny_model(tokenizer)
        output = model(**batch_of(prepared, model, [0, 1]))
        (output.adversarial_loss + output.feature_matching_loss).backward()
        assert all(p.grad is None for p in model.discriminator.parameters())
        assert all(p.requires_grad for p in model.discriminator.parameters())
        assert model.vits.decoder.conv_post.weight.grad.abs().sum() > 0

    def test_discriminator_warmup_freezes_the_generator(self, prepared, tokenizer):
        model = tiny_model(tokenizer)
        output = model(**batch_of(prepared, model, [0, 1]), train_generator=False)
        assert output.adversarial_loss is None and not output.mel_loss.requires_grad
        output.discriminator_loss.backward()
        assert all(p.grad is None for p in model.vits.parameters())
        assert all(p.grad is not None for p in model.discriminator.parameters())

    def test_segments_are_sliced_per_item(self):
        inputs = torch.arange(2 * 3 * 10, dtype=torch.float32).view(2, 3, 10)
        segments = slice_segments(inputs, torch.tensor([0, 6]), 4)
        torch.testing.assert_close(segments[0], inputs[0, :, 0:4])
        torch.testing.assert_close(segments[1], inputs[1, :, 6:10])

    def test_mel_config_must_match_the_model(self, tokenizer):
        model = tiny_model(tokenizer)
        from kurdish_tts.audio import MelConfig

        with pytest.raises(ValueError, match="does not match the model"):
            VitsForTraining(model.vits, model.discriminator, MelConfig())


class TestVitsTrainer:
    def test_overfits_one_batch(self, prepared, tokenizer, tmp_dir):
        model = tiny_model(tokenizer)
        one_batch = prepared.select([0, 1])
        args = tiny_training_args(
            tmp_dir, max_steps=40, learning_rate=2e-3, lr_scheduler_type="constant", warmup_steps=0
        )
        trainer = VitsTrainer(model, args, train_dataset=one_batch, processing_class=tokenizer)
        trainer.train()
        logs = [h for h in trainer.state.log_history if "loss" in h]
        first = np.mean([h["loss"] for h in logs[:5]])
        last = np.mean([h["loss"] for h in logs[-5:]])
        assert last < 0.8 * first, (first, last)
        assert np.mean([h["loss/mel"] for h in logs[-5:]]) < np.mean([h["loss/mel"] for h in logs[:5]])

    def test_two_steps_move_both_networks_and_log_finite_terms(self, prepared, tokenizer, tmp_dir):
        model = tiny_model(tokenizer)
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        trainer = VitsTrainer(
            model, tiny_training_args(tmp_dir, max_steps=2), train_dataset=prepared, processing_class=tokenizer
        )
        trainer.train()
        moved = {n.split(".")[0] for n, p in model.named_parameters() if not torch.equal(before[n], p.detach())}
        assert moved == {"vits", "discriminator"}
        logged = [h for h in trainer.state.log_history if "loss" in h]
        assert len(logged) == 2
        for entry in logged:
            for name in ("mel", "kl", "duration", "gen", "fm", "disc"):
                assert math.isfinite(entry[f"loss/{name}"]), (name, entry)

    def test_discriminator_learning_rate_and_warmup(self, prepared, tokenizer, tmp_dir):
        model = tiny_model(tokenizer)
        generator_before = {n: p.detach().clone() for n, p in model.vits.named_parameters()}
        args = tiny_training_args(tmp_dir, max_steps=2, discriminator_learning_rate=1e-3, discriminator_warmup_steps=2)
        trainer = VitsTrainer(model, args, train_dataset=prepared, processing_class=tokenizer)
        trainer.train()
        assert sorted({g["initial_lr"] for g in trainer.optimizer.param_groups}) == [2e-4, 1e-3]
        assert all(torch.equal(generator_before[n], p) for n, p in model.vits.named_parameters())

    def test_eval_losses_and_saved_model_loads_with_stock_transformers(self, prepared, tokenizer, tmp_dir):
        model = tiny_model(tokenizer)
        trainer = VitsTrainer(
            model,
            tiny_training_args(tmp_dir, max_steps=1, per_device_eval_batch_size=2),
            train_dataset=prepared,
            eval_dataset=prepared.select(range(2)),
            processing_class=tokenizer,
        )
        trainer.train()
        metrics = trainer.evaluate()
        assert {f"eval_loss/{n}" for n in ("mel", "kl", "duration", "gen", "fm", "disc")} <= set(metrics)
        assert math.isfinite(metrics["eval_loss"])
        trainer.save_model(str(tmp_dir / "final"))
        assert {"model.safetensors", "config.json", "vocab.json", "discriminator.safetensors"} <= set(
            os.listdir(tmp_dir / "final")
        )
        stock = VitsModel.from_pretrained(tmp_dir / "final")
        for name, tensor in model.vits.state_dict().items():
            torch.testing.assert_close(stock.state_dict()[name], tensor, msg=name)
        speech = pipeline("text-to-speech", model=str(tmp_dir / "final"))("Roj baş, hevalno.")
        assert speech["sampling_rate"] == 16000
        # A random tiny model predicts ~1 frame per token: plausible length is tokens x hop, give or take.
        tokens = len(tokenizer("roj baş, hevalno.")["input_ids"])
        assert tokens * 16 / 4 <= speech["audio"].shape[-1] <= tokens * 16 * 8

    def test_resume_restores_generator_discriminator_and_optimizer(self, prepared, tokenizer, tmp_dir):
        data = prepared.select(range(4))
        straight = tiny_model(tokenizer)
        VitsTrainer(straight, tiny_training_args(tmp_dir / "a", max_steps=4), train_dataset=data).train()

        interrupted = tiny_model(tokenizer)
        args = tiny_training_args(tmp_dir / "b", max_steps=4, save_strategy="steps", save_steps=2)
        VitsTrainer(interrupted, args, train_dataset=data, processing_class=tokenizer).train()
        checkpoint = tmp_dir / "b" / "checkpoint-2"
        assert {"model.safetensors", "discriminator.safetensors", "optimizer.pt", "scheduler.pt"} <= set(
            os.listdir(checkpoint)
        )
        resumed = tiny_model(tokenizer, seed=123)  # different init: everything must come from the checkpoint
        trainer = VitsTrainer(resumed, args, train_dataset=data, processing_class=tokenizer)
        trainer.train(resume_from_checkpoint=str(checkpoint))
        assert trainer.state.global_step == 4
        state = trainer.optimizer.state_dict()["state"]
        assert len(state) == len(list(resumed.parameters()))  # moments for generator and discriminator alike
        for (name, a), b in zip(straight.named_parameters(), resumed.parameters()):
            torch.testing.assert_close(a, b, msg=name, atol=1e-5, rtol=1e-4)

    def test_gradient_accumulation_logs_the_same_loss_scale(self, prepared, tokenizer, tmp_dir):
        data = prepared.select(range(2))
        losses = {}
        for batch, accumulation in ((2, 1), (1, 2)):
            model = tiny_model(tokenizer)
            args = tiny_training_args(
                tmp_dir / f"{batch}",
                max_steps=1,
                per_device_train_batch_size=batch,
                gradient_accumulation_steps=accumulation,
            )
            trainer = VitsTrainer(model, args, train_dataset=data)
            trainer.train()
            losses[accumulation] = trainer.state.log_history[0]["loss"]
        # A wrong accumulation scale is off by the factor 2 (0.5 or 2.0); the items of the two micro-batches differ,
        # which moves the ratio by a third either way (0.63 with the reference HiFi-GAN decoder init).
        assert 0.55 < losses[2] / losses[1] < 1.8, losses


def test_offline_hub_failure_names_the_alternatives():
    with pytest.raises(OSError, match="from_size"):
        VitsForTraining.from_pretrained("facebook/mms-tts-kmr-script_latin")


def test_length_grouped_sampling_and_loader_workers(prepared, tokenizer, tmp_dir):
    model = tiny_model(tokenizer)
    args = tiny_training_args(
        tmp_dir,
        max_steps=2,
        train_sampling_strategy="group_by_length",
        dataloader_num_workers=2,
    )
    trainer = VitsTrainer(model, args, train_dataset=prepared, processing_class=tokenizer)
    trainer.train()
    assert trainer.state.global_step == 2
    assert type(trainer._get_train_sampler()).__name__ == "LengthGroupedSampler"


def test_additive_attention_mask_equals_the_one_transformers_builds():
    from transformers.masking_utils import create_bidirectional_mask

    from kurdish_tts.models.vits.modeling_vits_training import additive_attention_mask

    config = VitsForTraining.from_size("tiny", 40).vits.config
    attention_mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    expected = create_bidirectional_mask(
        config=config, inputs_embeds=torch.zeros(2, 5, 4), attention_mask=attention_mask
    )
    assert torch.equal(additive_attention_mask(attention_mask), expected.expand(2, 1, 5, 5))


def test_saved_model_keeps_its_training_geometry(tmp_path):
    model = VitsForTraining.from_size("tiny", 40)
    model.save_pretrained(tmp_path)
    loaded = VitsForTraining.from_pretrained(tmp_path)
    assert loaded.mel_config == model.mel_config and loaded.mel_config.n_mels == 8
    assert loaded.segment_frames == model.segment_frames == 8
    assert VitsForTraining.from_pretrained(tmp_path, segment_frames=4).segment_frames == 4
