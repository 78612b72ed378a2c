import math

import pytest
import torch

from kurdish_tts.models.vits.losses import (
    discriminator_loss,
    duration_loss,
    feature_matching_loss,
    generator_adversarial_loss,
    kl_loss,
    mel_reconstruction_loss,
)


def _kl_inputs(dtype=torch.float32):
    # (batch=1, flow_size=2, frames=3); frame 2 is padding and holds large garbage that the mask must remove.
    z_p = torch.tensor([[[1.0, 0.0, 50.0], [3.0, 0.0, -50.0]]], dtype=dtype)
    logs_q = torch.tensor([[[0.0, 0.5, 7.0], [-1.0, 0.0, 7.0]]], dtype=dtype)
    m_p = torch.tensor([[[0.0, 0.0, -9.0], [1.0, 0.0, 9.0]]], dtype=dtype)
    logs_p = torch.tensor([[[0.0, 0.0, -3.0], [math.log(2.0), 0.0, -3.0]]], dtype=dtype)
    mask = torch.tensor([[[1.0, 1.0, 0.0]]], dtype=dtype)
    return z_p, logs_q, m_p, logs_p, mask


class TestDiscriminatorLoss:
    def test_discriminator_loss_known_value(self):
        real = [torch.tensor([1.0, 0.5]), torch.tensor([[0.0]])]
        fake = [torch.tensor([0.0, 0.5]), torch.tensor([[2.0]])]
        loss, real_losses, fake_losses = discriminator_loss(real, fake)
        # Sub-discriminator 0: real mean(0^2, 0.5^2) = 0.125, fake mean(0^2, 0.5^2) = 0.125.
        # Sub-discriminator 1: real (1 - 0)^2 = 1, fake 2^2 = 4. Total 0.125 + 0.125 + 1 + 4 = 5.25.
        torch.testing.assert_close(loss, torch.tensor(5.25))
        torch.testing.assert_close(torch.stack(real_losses), torch.tensor([0.125, 1.0]))
        torch.testing.assert_close(torch.stack(fake_losses), torch.tensor([0.125, 4.0]))
        assert all(not term.requires_grad for term in real_losses + fake_losses)

    def test_discriminator_loss_gradients_reach_both_inputs(self):
        real = [torch.tensor([0.5], requires_grad=True)]
        fake = [torch.tensor([0.5], requires_grad=True)]
        discriminator_loss(real, fake)[0].backward()
        # d/dr (1 - r)^2 = -2 (1 - r) = -1 and d/df f^2 = 2 f = 1 at 0.5.
        torch.testing.assert_close(real[0].grad, torch.tensor([-1.0]))
        torch.testing.assert_close(fake[0].grad, torch.tensor([1.0]))

    def test_discriminator_loss_rejects_mismatched_lists(self):
        with pytest.raises(ValueError, match="longer"):
            discriminator_loss([torch.zeros(2)], [torch.zeros(2), torch.zeros(2)])


class TestGeneratorAdversarialLoss:
    def test_generator_adversarial_loss_known_value(self):
        fake = [torch.tensor([0.0, 0.5], requires_grad=True), torch.tensor([[2.0]])]
        loss, fake_losses = generator_adversarial_loss(fake)
        # mean((1 - 0)^2, (1 - 0.5)^2) = 0.625, plus (1 - 2)^2 = 1.
        torch.testing.assert_close(loss, torch.tensor(1.625))
        torch.testing.assert_close(torch.stack(fake_losses), torch.tensor([0.625, 1.0]))
        loss.backward()
        # d/df mean((1 - f)^2) = -(1 - f) over 2 elements: -1 and -0.5.
        torch.testing.assert_close(fake[0].grad, torch.tensor([-1.0, -0.5]))


class TestFeatureMatchingLoss:
    def test_feature_matching_loss_known_value(self):
        real = [[torch.tensor([1.0, 2.0]), torch.zeros(2, 2)], [torch.tensor([3.0])]]
        fake = [[torch.tensor([1.5, 1.0]), torch.tensor([[1.0, -1.0], [0.5, 0.5]])], [torch.tensor([1.0])]]
        # Layer means of |real - fake|: (0.5 + 1) / 2 = 0.75, (1 + 1 + 0.5 + 0.5) / 4 = 0.75, |3 - 1| = 2.
        # Sum 3.5, times VITS' factor 2 = 7.
        torch.testing.assert_close(feature_matching_loss(real, fake), torch.tensor(7.0))

    def test_feature_matching_loss_does_not_push_gradient_into_real_features(self):
        real = [[torch.tensor([1.0, 2.0], requires_grad=True)]]
        fake = [[torch.tensor([1.5, 1.0], requires_grad=True)]]
        feature_matching_loss(real, fake).backward()
        assert real[0][0].grad is None
        # d/df 2 * mean(|r - f|) = 2 * sign(f - r) / 2.
        torch.testing.assert_close(fake[0][0].grad, torch.tensor([1.0, -1.0]))


class TestKlLoss:
    def test_kl_loss_known_value(self):
        # Per valid cell, logs_p - logs_q - 0.5 + 0.5 (z_p - m_p)^2 exp(-2 logs_p):
        #   frame 0: channel 0 -> 0 - 0 - 0.5 + 0.5 = 0; channel 1 -> ln 2 + 1 - 0.5 + 0.5 * 4 / 4 = 1 + ln 2
        #   frame 1: channel 0 -> 0 - 0.5 - 0.5 + 0 = -1; channel 1 -> -0.5
        # Sum ln 2 - 0.5 = 0.19314718, over 2 valid frames (not 4 cells) = 0.09657359.
        torch.testing.assert_close(kl_loss(*_kl_inputs()), torch.tensor(0.09657359))

    def test_kl_loss_gradients_vanish_on_padding(self):
        z_p, logs_q, m_p, logs_p, mask = _kl_inputs()
        for tensor in (z_p, logs_q, m_p, logs_p):
            tensor.requires_grad_(True)
        kl_loss(z_p, logs_q, m_p, logs_p, mask).backward()
        for tensor in (z_p, logs_q, m_p, logs_p):
            assert torch.all(tensor.grad[..., 2] == 0)
            assert torch.any(tensor.grad[..., :2] != 0)

    def test_kl_loss_fp16_inputs_give_finite_float32(self):
        # exp(-2 * -6) = 162755 overflows fp16 (max 65504); the loss must not.
        z_p, logs_q, m_p, logs_p, mask = (tensor.half() for tensor in _kl_inputs())
        logs_p = torch.full_like(logs_p, -6.0)
        loss = kl_loss(z_p, logs_q, m_p, logs_p, mask)
        assert loss.dtype == torch.float32 and torch.isfinite(loss)
        expected = kl_loss(z_p.float(), logs_q.float(), m_p.float(), logs_p.float(), mask.float())
        torch.testing.assert_close(loss, expected)


class TestMelReconstructionLoss:
    def test_mel_reconstruction_loss_known_value(self):
        predicted = torch.tensor([[[1.0, 2.0, 100.0], [0.0, 0.0, 100.0]]])  # (batch=1, mel_bins=2, frames=3)
        target = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 1.0, 0.0]]])
        mask = torch.tensor([[[1.0, 1.0, 0.0]]])
        # Valid |differences| 1, 2, 1, 1 -> 5 / 4 = 1.25; unmasked (5 + 100 + 100) / 6 = 34.1666...
        torch.testing.assert_close(mel_reconstruction_loss(predicted, target, mask), torch.tensor(1.25))
        torch.testing.assert_close(mel_reconstruction_loss(predicted, target), torch.tensor(205.0 / 6.0))

    def test_mel_reconstruction_loss_gradients_vanish_on_padding(self):
        predicted = torch.tensor([[[1.0, 2.0, 100.0]]], requires_grad=True)
        mel_reconstruction_loss(predicted, torch.zeros(1, 1, 3), torch.tensor([[[1.0, 1.0, 0.0]]])).backward()
        torch.testing.assert_close(predicted.grad, torch.tensor([[[0.5, 0.5, 0.0]]]))

    def test_mel_reconstruction_loss_fp16_inputs_give_finite_float32(self):
        # The fp16 sum of these differences (4 * 60000) would overflow.
        predicted = torch.full((1, 2, 2), 60000.0, dtype=torch.float16)
        loss = mel_reconstruction_loss(predicted, torch.zeros_like(predicted), torch.ones(1, 1, 2))
        assert loss.dtype == torch.float32
        torch.testing.assert_close(loss, torch.tensor(60000.0))


class TestDurationLoss:
    def test_duration_loss_known_value(self):
        nll = torch.tensor([3.0, 5.0], requires_grad=True)
        loss = duration_loss(nll, torch.tensor([2, 2]))
        # (3 + 5) / (2 + 2) = 2, and d/d nll_b = 1 / 4.
        torch.testing.assert_close(loss, torch.tensor(2.0))
        loss.backward()
        torch.testing.assert_close(nll.grad, torch.tensor([0.25, 0.25]))

    def test_duration_loss_fp16_inputs_give_finite_float32(self):
        # The fp16 sum 2 * 40000 overflows (max 65504).
        loss = duration_loss(torch.tensor([40000.0, 40000.0], dtype=torch.float16), torch.tensor([100, 60]))
        assert loss.dtype == torch.float32
        torch.testing.assert_close(loss, torch.tensor(500.0))


def test_losses_are_float32_under_autocast():
    logits = [torch.rand(2, 8, dtype=torch.bfloat16)]
    features = [[torch.rand(2, 4, 8, dtype=torch.bfloat16)]]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = [
            discriminator_loss(logits, logits)[0],
            generator_adversarial_loss(logits)[0],
            feature_matching_loss(features, features),
            kl_loss(*(tensor.bfloat16() for tensor in _kl_inputs())),
            mel_reconstruction_loss(features[0][0], features[0][0].flip(-1)),
            duration_loss(torch.rand(2, dtype=torch.bfloat16), torch.tensor([3, 4])),
        ]
    for loss in losses:
        assert loss.dtype == torch.float32 and loss.dim() == 0 and torch.isfinite(loss)
