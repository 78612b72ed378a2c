"""The training probe on the tiny model: a healthy model passes; a frozen layer, a NaN-producing learning rate, a
layer cut off from the loss, a discriminator that does not move and a learning rate too small to train are caught."""

import pytest
import torch

from kurdish_tts.doctor import Status
from kurdish_tts.doctor.training_probe import run_training_probe
from kurdish_tts.models.vits import add_speaker_embeddings

from .testing_utils import tiny_model, tiny_training_args

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _probe(model, tokenizer, dataset, tmp_dir, steps=4, speaker_to_id=None, **overrides):
    args = tiny_training_args(tmp_dir, per_device_train_batch_size=2, **overrides)
    result = run_training_probe(model, args, dataset, tokenizer, speaker_to_id, steps=steps)
    return result, {check.name: check for check in result.checks()}


def _statuses(checks):
    return {name: check.status for name, check in checks.items()}


def test_healthy_model_passes(tokenizer, tiny_demo, tmp_dir):
    result, checks = _probe(tiny_model(tokenizer), tokenizer, tiny_demo, tmp_dir, steps=8)
    # Eight steps from random weights leave the decoder quieter than the recordings: said, but not a problem.
    waveform = checks.pop("waveform health")
    assert waveform.status == Status.OK and "broken" not in waveform.evidence
    assert set(_statuses(checks).values()) == {Status.OK}, {n: c.evidence for n, c in checks.items()}
    assert result.completed_steps == 8 and result.gradient_max.shape == (8, len(result.names))
    assert result.reconstruction_after < result.reconstruction_before
    assert "finite, non-zero gradients" in checks["gradients reach every parameter"].evidence
    # The probe works in its own folder and leaves nothing behind.
    assert not any(tmp_dir.iterdir())


def test_frozen_layer(tokenizer, tiny_demo, tmp_dir):
    model = tiny_model(tokenizer)
    model.vits.decoder.conv_pre.weight.requires_grad_(False)
    _, checks = _probe(model, tokenizer, tiny_demo, tmp_dir)
    frozen = checks["frozen parameters"]
    assert frozen.status == Status.FAIL
    assert "vits.decoder.conv_pre.weight" in frozen.evidence and "requires_grad" in frozen.fix
    assert checks["finite loss"].status == Status.OK


def test_nan_producing_learning_rate(tokenizer, tiny_demo, tmp_dir):
    _, checks = _probe(tiny_model(tokenizer), tokenizer, tiny_demo, tmp_dir, learning_rate=1e3)
    statuses = _statuses(checks)
    assert statuses["finite loss"] == Status.FAIL
    assert statuses["gradients reach every parameter"] == Status.FAIL
    assert statuses["loss decreases"] == Status.FAIL
    assert "non-finite from step 2" in checks["finite loss"].evidence
    assert checks["finite loss"].fix.startswith("lower --learning_rate (probe: 1000")


def test_layer_cut_off_from_the_loss(tokenizer, tiny_demo, tmp_dir):
    model = tiny_model(tokenizer)
    model.vits.decoder.conv_post.weight.register_hook(lambda gradient: gradient * 0)
    _, checks = _probe(model, tokenizer, tiny_demo, tmp_dir)
    check = checks["gradients reach every parameter"]
    assert check.status == Status.FAIL
    assert check.details["never"] == ["vits.decoder.conv_post.weight"]


def test_zero_initialized_speaker_conditioning_is_not_a_dead_layer(tokenizer, tiny_demo, tmp_dir):
    # The demo clips' four voices on a model whose speaker layers start at zero: their first gradient is exactly 0.
    model = add_speaker_embeddings(tiny_model(tokenizer), 4, 8)
    voices = {speaker: index for index, speaker in enumerate(sorted(set(tiny_demo["speaker"])))}
    result, checks = _probe(model, tokenizer, tiny_demo, tmp_dir, speaker_to_id=voices)
    check = checks["gradients reach every parameter"]
    assert check.status == Status.OK, check.evidence
    late = check.details["first_gradient_after_step_1"]
    assert "vits.embed_speaker.weight" in late and all("cond" in name or "speaker" in name for name in late)
    assert "only from step 2 on" in check.evidence


def test_discriminator_that_does_not_move(tokenizer, tiny_demo, tmp_dir):
    _, checks = _probe(tiny_model(tokenizer), tokenizer, tiny_demo, tmp_dir, discriminator_learning_rate=0.0)
    check = checks["generator and discriminator move"]
    assert check.status == Status.FAIL and "the discriminator did not change" in check.evidence
    assert check.details["generator"]["moved"] == check.details["generator"]["total"]


@pytest.mark.parametrize("learning_rate", [1e-9])
def test_learning_rate_too_small_to_train(tokenizer, tiny_demo, tmp_dir, learning_rate):
    _, checks = _probe(tiny_model(tokenizer), tokenizer, tiny_demo, tmp_dir, learning_rate=learning_rate)
    check = checks["loss decreases"]
    assert check.status == Status.WARN and "--learning_rate" in check.fix
    assert abs(check.details["relative_change"]) < 1e-3


def test_alternating_gan_update_passes(tokenizer, tiny_demo, tmp_dir):
    # The discriminator steps with its own optimizer inside the training step and clears its gradients there.
    result, checks = _probe(tiny_model(tokenizer), tokenizer, tiny_demo, tmp_dir, gan_update="alternating")
    assert checks["gradients reach every parameter"].status == Status.OK
    assert checks["generator and discriminator move"].status == Status.OK
    assert result.stepped_inside and all(name.startswith("discriminator.") for name in result.stepped_inside)
    # Where the probe looks, before the Trainer's optimizer step, their gradients are already gone.
    columns = [index for index, name in enumerate(result.names) if name in result.stepped_inside]
    assert not result.gradient_max[:, columns].any()


def test_a_decoder_at_the_rails_fails_the_waveform_check(tokenizer, tiny_demo, tmp_dir):
    """The decoder drawn as transformers draws it (He-normal): its tanh saturates, which no mel loss can see."""
    model = tiny_model(tokenizer)
    for conv in model.vits.decoder.modules():
        if isinstance(conv, (torch.nn.Conv1d, torch.nn.ConvTranspose1d)):
            torch.nn.init.kaiming_normal_(conv.weight)
    _, checks = _probe(model, tokenizer, tiny_demo, tmp_dir)
    check = checks["waveform health"]
    assert check.status == Status.FAIL and "the decoded audio is broken" in check.evidence
