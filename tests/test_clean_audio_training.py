"""The decoder starts (and stays) off the rails, the adversarial term reaches it, and evaluation is repeatable.

Before the fix, transformers' He-normal init made a fresh decoder's `tanh` saturate from step 0 (the tiny model put
99 % of its samples at the rails, MMS size 40 %), where it passes no gradient: every trained voice was a full-scale
tone or offset. These tests fail on that code.
"""

import pytest
import torch
from torch import nn

from kurdish_tts.data.collators import DataCollatorForVits
from kurdish_tts.evaluation.waveform_health import batch_health
from kurdish_tts.models.vits import VitsForTraining
from kurdish_tts.trainers import VitsTrainer

from .testing_utils import tiny_model, tiny_training_args


@pytest.fixture(scope="module")
def tiny_prepared(tiny_demo):
    return tiny_demo


@pytest.fixture
def tiny_batch(tiny_demo, tokenizer):
    model = VitsForTraining.from_size("tiny", tokenizer.vocab_size)
    collator = DataCollatorForVits(hop_length=model.mel_config.hop_length, min_frames=model.segment_frames)
    rows = tiny_demo.with_format("numpy")
    return collator([rows[i] for i in range(2)])


def decode_random_latents(model: VitsForTraining, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    latents = torch.randn(4, model.vits.config.flow_size, 32, generator=generator)
    with torch.no_grad():
        return model.vits.decoder(latents)


def stock_decoder_init(model: VitsForTraining) -> None:
    """What transformers' `_init_weights` draws for the decoder's convolutions (He-normal)."""
    for conv in model.vits.decoder.modules():
        if isinstance(conv, (nn.Conv1d, nn.ConvTranspose1d)):
            nn.init.kaiming_normal_(conv.weight)


@pytest.mark.parametrize("size", ["tiny", "small"])
def test_a_fresh_decoder_is_neither_clipped_nor_offset(size, tokenizer):
    torch.manual_seed(0)
    model = VitsForTraining.from_size(size, tokenizer.vocab_size)
    health = batch_health(decode_random_latents(model), model.mel_config.sampling_rate)
    assert health["clipped"].max() == 0.0
    assert health["dc_offset"].abs().max() < 0.01

    stock_decoder_init(model)  # the cause, for contrast: the same network drawn as transformers draws it
    saturated = batch_health(decode_random_latents(model), model.mel_config.sampling_rate)
    assert saturated["clipped"].mean() > 0.05 or saturated["dc_offset"].abs().mean() > 0.1


def test_the_adversarial_term_reaches_the_decoder_through_an_unsaturated_tanh(tokenizer, tiny_batch):
    torch.manual_seed(0)
    model = VitsForTraining.from_size("tiny", tokenizer.vocab_size)
    output = model(**tiny_batch)
    # The tanh's local gradient 1 - y**2 at every generated sample: near 1 means the adversarial and feature-matching
    # terms pass through to the decoder; at the rails it is ~0 and they are lost.
    passing = 1 - output.generated_waveform.detach().square()
    assert passing.min() > 0.5
    grads = torch.autograd.grad(
        output.adversarial_loss + output.feature_matching_loss,
        [model.vits.decoder.conv_post.weight, model.vits.decoder.conv_pre.weight],
    )
    assert all(torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)


def test_short_training_keeps_the_discriminator_in_the_game(tokenizer, tiny_prepared, tmp_dir):
    """30 steps of the tiny model: the discriminator does not win outright (its loss stays well above 0) and the
    decoded segments never touch the rails."""
    args = tiny_training_args(tmp_dir, max_steps=30, logging_steps=5, eval_strategy="steps", eval_steps=15)
    trainer = VitsTrainer(
        tiny_model(tokenizer),
        args,
        train_dataset=tiny_prepared,
        eval_dataset=tiny_prepared.select(range(4)),
        processing_class=tokenizer,
    )
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "loss/disc" in entry]
    assert min(entry["loss/disc"] for entry in logs) > 0.5
    assert max(entry["loss/gen"] for entry in logs) < 6.0
    evaluations = [entry for entry in trainer.state.log_history if "eval_health/clipped" in entry]
    assert evaluations and all(entry["eval_health/clipped"] == 0.0 for entry in evaluations)
    assert all(abs(entry["eval_health/dc_offset"]) < 0.05 for entry in evaluations)


def test_evaluating_the_same_weights_twice_gives_the_same_figures(tokenizer, tiny_prepared, tmp_dir):
    trainer = VitsTrainer(
        tiny_model(tokenizer),
        tiny_training_args(tmp_dir),
        eval_dataset=tiny_prepared.select(range(4)),
        processing_class=tokenizer,
    )
    torch.manual_seed(1)
    first = trainer.evaluate()
    after_first = torch.rand(1)
    torch.manual_seed(1)
    second = trainer.evaluate()
    after_second = torch.rand(1)
    assert {k: v for k, v in first.items() if "runtime" not in k and "per_second" not in k} == {
        k: v for k, v in second.items() if "runtime" not in k and "per_second" not in k
    }
    # Evaluation hands the training random stream back untouched.
    torch.manual_seed(1)
    assert torch.equal(after_first, torch.rand(1)) and torch.equal(after_second, after_first)
    assert "eval_health/spectral_distance" in first
