"""The synchronization-free spline flow against transformers' own (values, log-determinants, gradients)."""

import pytest
import torch
from transformers import VitsConfig
from transformers.models.vits.modeling_vits import VitsConvFlow, _unconstrained_rational_quadratic_spline

from kurdish_tts.models.vits.splines import conv_flow_forward, unconstrained_rational_quadratic_spline


def _spline_inputs(seed: int, bins: int = 10):
    generator = torch.Generator().manual_seed(seed)
    # Scaled so that about a third of the inputs fall outside [-5, 5] (identity tails) and some sit on the bounds.
    inputs = torch.randn(3, 2, 17, generator=generator, dtype=torch.float64) * 5
    inputs[0, 0, :4] = torch.tensor([-5.0, 5.0, 5.0 + 1e-9, -5.0 - 1e-9], dtype=torch.float64)
    widths = torch.randn(3, 2, 17, bins, generator=generator, dtype=torch.float64)
    heights = torch.randn(3, 2, 17, bins, generator=generator, dtype=torch.float64)
    derivatives = torch.randn(3, 2, 17, bins - 1, generator=generator, dtype=torch.float64)
    return inputs, widths, heights, derivatives


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_spline_matches_transformers_values_and_gradients(seed):
    ours_args = [t.clone().requires_grad_() for t in _spline_inputs(seed)]
    stock_args = [t.clone().requires_grad_() for t in _spline_inputs(seed)]
    outside = ours_args[0].detach().abs() > 5
    assert outside.any() and (~outside).any()

    ours, ours_log_det = unconstrained_rational_quadratic_spline(*ours_args, tail_bound=5.0)
    stock, stock_log_det = _unconstrained_rational_quadratic_spline(*stock_args, reverse=False, tail_bound=5.0)

    torch.testing.assert_close(ours, stock, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(ours_log_det, stock_log_det, rtol=1e-10, atol=1e-10)
    assert torch.equal(ours[outside], ours_args[0].detach()[outside]) and (ours_log_det[outside] == 0).all()

    weights = torch.randn_like(ours)
    ((ours * weights).sum() + ours_log_det.sum()).backward()
    ((stock * weights).sum() + stock_log_det.sum()).backward()
    for mine, theirs in zip(ours_args, stock_args):
        torch.testing.assert_close(mine.grad, theirs.grad, rtol=1e-9, atol=1e-10)
        assert torch.isfinite(mine.grad).all()


def test_spline_is_monotonic_and_maps_the_interval_onto_itself():
    inputs = torch.linspace(-6, 6, 241, dtype=torch.float64).reshape(1, 1, -1)
    _, widths, heights, derivatives = _spline_inputs(3)
    shape = (1, 1, inputs.shape[-1], widths.shape[-1])
    outputs, log_det = unconstrained_rational_quadratic_spline(
        inputs, widths[:1, :1, :1].expand(shape), heights[:1, :1, :1].expand(shape),
        derivatives[:1, :1, :1].expand(*shape[:-1], -1),
    )  # fmt: skip
    assert (outputs.diff(dim=-1) > 0).all()
    edges = outputs[0, 0, [20, 220]]  # inputs -5 and 5 (step 0.05 from -6)
    torch.testing.assert_close(edges, torch.tensor([-5.0, 5.0], dtype=torch.float64), rtol=0, atol=1e-9)
    assert torch.isfinite(log_det).all()


def test_conv_flow_forward_matches_the_stock_module():
    torch.manual_seed(0)
    config = VitsConfig(hidden_size=16, depth_separable_channels=2, duration_predictor_flow_bins=10)
    flow = VitsConvFlow(config).double()
    inputs = torch.randn(2, 2, 9, dtype=torch.float64) * 4
    mask = torch.ones(2, 1, 9, dtype=torch.float64)
    mask[1, :, 6:] = 0
    conditioning = torch.randn(2, 16, 9, dtype=torch.float64)

    ours, ours_log_det = conv_flow_forward(flow, inputs, mask, conditioning)
    stock, stock_log_det = flow(inputs, mask, global_conditioning=conditioning)
    torch.testing.assert_close(ours, stock)
    torch.testing.assert_close(ours_log_det, stock_log_det)


def test_nan_inputs_and_parameters_give_nan_not_an_indexing_error():
    inputs, widths, heights, derivatives = _spline_inputs(4)
    inputs[0, 0, 0] = float("nan")
    widths[1, 1, 1] = float("nan")
    outputs, log_det = unconstrained_rational_quadratic_spline(inputs, widths, heights, derivatives)
    assert outputs[0, 0, 0].isnan()
    assert torch.isfinite(outputs[2]).all() and torch.isfinite(log_det[2]).all()
