"""The XTTS loss terms against values worked out by hand on small tensors."""

import math

import pytest
import torch

from kurdish_tts.models.xtts import losses


def _bce(probability_logit: float, target: float, pos_weight: float = 1.0) -> float:
    """-(w y log σ(x) + (1 - y) log(1 - σ(x))), written out."""
    sigmoid = 1.0 / (1.0 + math.exp(-probability_logit))
    return -(pos_weight * target * math.log(sigmoid) + (1 - target) * math.log(1 - sigmoid))


class TestMaskedHuber:
    def test_quadratic_and_linear_branches_and_masking(self):
        # Example 0 has 2 real frames, example 1 has 1; errors of 0.5 (quadratic) and 2.0 (linear) with delta 1.
        prediction = torch.tensor([[[0.5], [2.0], [99.0]], [[-2.0], [50.0], [50.0]]])
        target = torch.zeros_like(prediction)
        loss = losses.masked_huber_loss(prediction, target, torch.tensor([2, 1]), delta=1.0)
        # 0.5 * 0.5² = 0.125; 1 * (2 - 0.5) = 1.5 (twice); mean over the 3 real elements.
        assert loss.item() == pytest.approx((0.125 + 1.5 + 1.5) / 3)

    def test_delta_moves_the_branch_point(self):
        prediction = torch.tensor([[[2.0]]])
        target = torch.zeros_like(prediction)
        # |x| = 2 <= delta 3: quadratic 0.5 * 4; delta 0.6: 0.6 * (2 - 0.3).
        assert losses.masked_huber_loss(prediction, target, torch.tensor([1]), delta=3.0).item() == pytest.approx(2.0)
        assert losses.masked_huber_loss(prediction, target, torch.tensor([1]), delta=0.6).item() == pytest.approx(
            0.6 * 1.7
        )

    def test_mask_and_lengths_agree_and_mean_covers_mel_bins(self):
        prediction = torch.arange(12.0).reshape(1, 3, 4) / 10
        target = torch.zeros_like(prediction)
        by_lengths = losses.masked_huber_loss(prediction, target, torch.tensor([2]), delta=10.0)
        by_mask = losses.masked_huber_loss(prediction, target, torch.tensor([[1, 1, 0]]), delta=10.0)
        expected = sum(0.5 * (v / 10) ** 2 for v in range(8)) / 8
        assert by_lengths.item() == pytest.approx(expected)
        assert by_mask.item() == pytest.approx(expected)

    def test_gradient_is_finite_and_bounded_by_delta_at_large_errors(self):
        prediction = torch.full((1, 2, 3), 1e4, requires_grad=True)
        loss = losses.masked_huber_loss(prediction, torch.zeros(1, 2, 3), torch.tensor([2]), delta=0.6)
        loss.backward()
        assert torch.isfinite(loss)
        # d/dx of delta * (|x| - delta / 2), divided by the 6 averaged elements.
        assert torch.allclose(prediction.grad, torch.full_like(prediction, 0.6 / 6))

    def test_half_precision_inputs_do_not_overflow(self):
        prediction = torch.full((1, 1, 2), 300.0, dtype=torch.float16)
        loss = losses.masked_huber_loss(prediction, torch.zeros_like(prediction), torch.tensor([1]), delta=1000.0)
        # 0.5 * 300² = 45000 fits float32 but its square-sum path would overflow float16 (max 65504) at 2 elements.
        assert loss.dtype == torch.float32 and loss.item() == pytest.approx(45000.0)

    def test_non_positive_delta_is_refused(self):
        with pytest.raises(ValueError, match="delta must be positive"):
            losses.masked_huber_loss(torch.zeros(1, 1, 1), torch.zeros(1, 1, 1), torch.tensor([1]), delta=0.0)

    def test_l1(self):
        prediction = torch.tensor([[[1.0, -3.0], [7.0, 7.0]]])
        loss = losses.masked_l1_loss(prediction, torch.zeros_like(prediction), torch.tensor([1]))
        assert loss.item() == pytest.approx(2.0)


class TestStopTargets:
    def test_convention_with_reduction_factor(self):
        # r = 2: 5 frames -> 3 real steps (the last holds frame 4); 4 frames -> 2 steps; 1 frame -> 1 step.
        targets, mask = losses.stop_targets(torch.tensor([5, 4, 1]), num_steps=4, reduction_factor=2)
        assert targets.tolist() == [[0, 0, 1, 1], [0, 1, 1, 1], [1, 1, 1, 1]]
        assert mask.tolist() == [
            [True, True, True, False],
            [True, True, False, False],
            [True, False, False, False],
        ]

    def test_reduction_factor_one(self):
        targets, mask = losses.stop_targets(torch.tensor([3]), num_steps=3, reduction_factor=1)
        assert targets.tolist() == [[0, 0, 1]] and mask.tolist() == [[True, True, True]]


class TestSmoothedStopBce:
    def test_smoothing_and_pos_weight_by_hand(self):
        logits = torch.tensor([[2.0, -1.0, 5.0]])
        targets = torch.tensor([[0.0, 1.0, 1.0]])
        mask = torch.tensor([[True, True, False]])
        loss = losses.smoothed_stop_bce(logits, targets, mask, smoothing=0.1, pos_weight=3.0)
        # Smoothed targets: 0 -> 0.05, 1 -> 0.95; the third step is masked out.
        expected = (_bce(2.0, 0.05, 3.0) + _bce(-1.0, 0.95, 3.0)) / 2
        assert loss.item() == pytest.approx(expected, rel=1e-6)

    def test_without_smoothing_matches_plain_bce(self):
        logits = torch.tensor([[0.3, -0.7]])
        targets = torch.tensor([[1.0, 0.0]])
        loss = losses.smoothed_stop_bce(logits, targets, torch.ones(1, 2, dtype=torch.bool), 0.0, 1.0)
        assert loss.item() == pytest.approx((_bce(0.3, 1.0) + _bce(-0.7, 0.0)) / 2, rel=1e-6)

    def test_smoothing_keeps_the_optimum_finite(self):
        # With smoothing s the loss of a positive step is minimal at sigmoid(x) = w(1 - s/2) / (w(1 - s/2) + s/2).
        logits = torch.linspace(-10, 20, 3001)
        targets = torch.ones_like(logits)
        per_logit = [
            losses.smoothed_stop_bce(x.view(1, 1), t.view(1, 1), torch.ones(1, 1, dtype=torch.bool), 0.06, 1.0)
            for x, t in zip(logits, targets)
        ]
        best = logits[int(torch.stack(per_logit).argmin())].item()
        assert best == pytest.approx(math.log(0.97 / 0.03), abs=0.02)

    @pytest.mark.parametrize("smoothing, pos_weight", [(1.0, 1.0), (-0.1, 1.0), (0.1, 0.0)])
    def test_bad_values_are_refused(self, smoothing, pos_weight):
        with pytest.raises(ValueError):
            losses.smoothed_stop_bce(torch.zeros(1, 1), torch.zeros(1, 1), torch.ones(1, 1), smoothing, pos_weight)


class TestSmoothedTextCrossEntropy:
    def test_by_hand_with_ignored_positions(self):
        logits = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [9.0, 9.0, 9.0]]])
        labels = torch.tensor([[0, 2, -100]])
        loss = losses.smoothed_text_cross_entropy(logits, labels, smoothing=0.3)

        def smoothed(row, label):
            log_probs = torch.log_softmax(torch.tensor(row), dim=0)
            target = torch.full((3,), 0.3 / 3)
            target[label] += 0.7
            return -(target * log_probs).sum().item()

        expected = (smoothed([2.0, 0.0, 0.0], 0) + smoothed([0.0, 1.0, 0.0], 2)) / 2
        assert loss.item() == pytest.approx(expected, rel=1e-6)

    def test_all_ignored_gives_zero_and_a_gradient(self):
        logits = torch.zeros(1, 2, 4, requires_grad=True)
        loss = losses.smoothed_text_cross_entropy(logits, torch.full((1, 2), -100), smoothing=0.1)
        loss.backward()
        assert loss.item() == 0.0 and logits.grad is not None


class TestGuidedAttention:
    def test_prior_by_hand(self):
        weights, mask = losses.diagonal_prior(torch.tensor([2]), torch.tensor([2]), steps=3, positions=3, sigma=0.5)
        # W[t, n] = 1 - exp(-(n/2 - t/2)² / 0.5): 0 on the diagonal, 1 - exp(-0.5) one position off.
        assert weights[0, 0, 0].item() == pytest.approx(0.0)
        assert weights[0, 1, 0].item() == pytest.approx(1 - math.exp(-0.5))
        assert weights[0, 0, 1].item() == pytest.approx(1 - math.exp(-0.5))
        assert mask[0].tolist() == [[True, True, False], [True, True, False], [False, False, False]]

    def test_diagonal_attention_costs_less_than_off_diagonal(self):
        diagonal = torch.eye(4).unsqueeze(0)
        reversed_ = torch.eye(4).flip(-1).unsqueeze(0)
        lengths = torch.tensor([4])
        assert losses.guided_attention_loss(diagonal, lengths, lengths).item() == pytest.approx(0.0)
        assert losses.guided_attention_loss(reversed_, lengths, lengths).item() > 0.1

    def test_mean_over_real_region_only(self):
        attention = torch.zeros(1, 3, 3)
        attention[0, 1, 0] = 1.0  # real region: 2 steps x 2 positions
        attention[0, 2, 2] = 100.0  # padding: must not count
        lengths = torch.tensor([2])
        # Per step (the default): step 1's penalty over its tokens, averaged over the 2 real steps.
        loss = losses.guided_attention_loss(attention, lengths, lengths, sigma=0.5)
        assert loss.item() == pytest.approx((1 - math.exp(-0.5)) / 2)
        # Per element: the same over the 2 x 2 real pairs, i.e. divided by the text length too.
        loss = losses.guided_attention_loss(attention, lengths, lengths, sigma=0.5, reduction="element")
        assert loss.item() == pytest.approx((1 - math.exp(-0.5)) / 4)

    def test_per_step_penalty_does_not_shrink_with_text_length(self):
        # The same off-diagonal attention (every step on the last token) for a short and a long text: the "element"
        # term falls with the text length, the per-step term does not (the reason it became the default).
        def off_diagonal(tokens):
            attention = torch.zeros(1, 8, tokens)
            attention[0, :4, -1] = 1.0
            return losses.guided_attention_loss(attention, torch.tensor([tokens]), torch.tensor([8]), reduction="step")

        assert off_diagonal(40).item() == pytest.approx(off_diagonal(10).item(), rel=0.1)
        element = [
            losses.guided_attention_loss(
                torch.nn.functional.one_hot(torch.full((1, 8), n - 1), n).float(),
                torch.tensor([n]),
                torch.tensor([8]),
                reduction="element",
            ).item()
            for n in (10, 40)
        ]
        assert element[1] < element[0] / 3

    def test_unknown_reduction_is_refused(self):
        with pytest.raises(ValueError, match="reduction"):
            losses.guided_attention_loss(torch.zeros(1, 2, 2), torch.tensor([2]), torch.tensor([2]), reduction="sum")


def test_length_mask():
    assert losses.length_mask(torch.tensor([0, 2]), 3).tolist() == [[False, False, False], [True, True, False]]
