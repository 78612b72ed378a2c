"""The stochastic duration predictor's spline flow, training direction, with no host synchronization.

transformers' `VitsConvFlow` evaluates its rational-quadratic spline only on the inputs inside `[-tail_bound,
tail_bound]`, selected by boolean-mask indexing, and checks the range with a data-dependent assertion. Both read device
values on the host: every flow of every training step stalls the CPU until the GPU catches up, and such a step cannot be
captured in a CUDA graph (`kurdish_tts.models.vits.cuda_graphs`). Here the spline runs on every element (inputs
clamped into the interval, so the unused results stay finite) and `torch.where` keeps the identity outside: the same
values and gradients (tests compare with transformers), fixed shapes, no synchronization.

Only the direction training needs (`reverse=False`, data → noise) is here; inference keeps the stock module.
"""

from __future__ import annotations

import math

import torch
from torch import nn

MIN_BIN_WIDTH = 1e-3
MIN_BIN_HEIGHT = 1e-3
MIN_DERIVATIVE = 1e-3


def _knots(unnormalized: torch.Tensor, tail_bound: float, min_bin_size: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Bin edges `(..., bins + 1)` spanning `[-tail_bound, tail_bound]` exactly, and bin sizes `(..., bins)`."""
    num_bins = unnormalized.shape[-1]
    sizes = min_bin_size + (1 - min_bin_size * num_bins) * nn.functional.softmax(unnormalized, dim=-1)
    inner = 2 * tail_bound * torch.cumsum(sizes[..., :-1], dim=-1) - tail_bound
    # The outer edges are set exactly (the cumulative sum's last value is 1 only up to rounding), as transformers does.
    lower = inner.new_full((*inner.shape[:-1], 1), -tail_bound)
    upper = inner.new_full((*inner.shape[:-1], 1), tail_bound)
    edges = torch.cat([lower, inner, upper], dim=-1)
    return edges, edges[..., 1:] - edges[..., :-1]


def unconstrained_rational_quadratic_spline(
    inputs: torch.Tensor,
    unnormalized_widths: torch.Tensor,
    unnormalized_heights: torch.Tensor,
    unnormalized_derivatives: torch.Tensor,
    tail_bound: float = 5.0,
    min_bin_width: float = MIN_BIN_WIDTH,
    min_bin_height: float = MIN_BIN_HEIGHT,
    min_derivative: float = MIN_DERIVATIVE,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Monotonic rational-quadratic spline inside `[-tail_bound, tail_bound]`, identity outside (Durkan et al., 2019,
    https://arxiv.org/abs/1906.04032), forward direction.

    Args:
        inputs: `(...,)` values to transform.
        unnormalized_widths, unnormalized_heights: `(..., bins)` bin parameters before the softmax.
        unnormalized_derivatives: `(..., bins - 1)` inner knot derivatives before the softplus; the two boundary
            derivatives are 1, so the spline joins the identity tails smoothly.

    Returns:
        `(outputs, log_abs_det)`, both shaped like `inputs`; `log_abs_det` is 0 outside the interval.
    """
    num_bins = unnormalized_widths.shape[-1]
    if min_bin_width * num_bins > 1.0 or min_bin_height * num_bins > 1.0:
        raise ValueError(f"minimal bin sizes ({min_bin_width}, {min_bin_height}) too large for {num_bins} bins")
    inside = (inputs >= -tail_bound) & (inputs <= tail_bound)
    # Outside values take the identity branch; clamping keeps their (discarded) spline branch finite, so that
    # `torch.where`'s zero gradient for it is not turned into NaN by an infinite local derivative.
    x = inputs.clamp(-tail_bound, tail_bound)

    # Boundary derivatives of exactly 1: min_derivative + softplus(constant) == 1.
    constant = math.log(math.expm1(1 - min_derivative))
    derivatives = min_derivative + nn.functional.softplus(
        nn.functional.pad(unnormalized_derivatives, (1, 1), value=constant)
    )
    cumwidths, widths = _knots(unnormalized_widths, tail_bound, min_bin_width)
    cumheights, heights = _knots(unnormalized_heights, tail_bound, min_bin_height)

    # The last edge is nudged up so that x == tail_bound falls into the last bin rather than past it.
    search_edges = torch.cat([cumwidths[..., :-1], cumwidths[..., -1:] + 1e-6], dim=-1)
    bin_index = torch.sum(x.unsqueeze(-1) >= search_edges, dim=-1) - 1
    # A NaN input or bin edge (weights gone bad) would index bin -1: a device-side assert on a GPU, where the stock
    # spline just passes the NaN on (and the NaN recovery then undoes the step).
    bin_index = bin_index.clamp(0, num_bins - 1).unsqueeze(-1)

    def pick(values: torch.Tensor) -> torch.Tensor:
        return values.gather(-1, bin_index).squeeze(-1)

    bin_left, bin_width = pick(cumwidths), pick(widths)
    bin_bottom, bin_height = pick(cumheights), pick(heights)
    slope = pick(heights / widths)
    derivative_left, derivative_right = pick(derivatives[..., :-1]), pick(derivatives[..., 1:])

    theta = (x - bin_left) / bin_width
    theta_one_minus_theta = theta * (1 - theta)
    denominator = slope + (derivative_left + derivative_right - 2 * slope) * theta_one_minus_theta
    spline = bin_bottom + bin_height * (slope * theta.square() + derivative_left * theta_one_minus_theta) / denominator
    derivative_numerator = slope.square() * (
        derivative_right * theta.square() + 2 * slope * theta_one_minus_theta + derivative_left * (1 - theta).square()
    )
    log_abs_det = torch.log(derivative_numerator) - 2 * torch.log(denominator)
    return torch.where(inside, spline, inputs), torch.where(inside, log_abs_det, torch.zeros_like(log_abs_det))


def conv_flow_forward(
    flow: nn.Module, inputs: torch.Tensor, padding_mask: torch.Tensor, global_conditioning: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """`VitsConvFlow.forward(reverse=False)` on the flow's own submodules, with the synchronization-free spline.

    Args:
        flow: a `transformers` `VitsConvFlow`.
        inputs: `(batch, 2 * half_channels, length)`.
        padding_mask: `(batch, 1, length)`.
        global_conditioning: `(batch, filter_channels, length)` or `None`.

    Returns:
        `(outputs, log_determinant)`: outputs like `inputs`, log-determinant per item `(batch,)`.
    """
    first_half, second_half = torch.split(inputs, [flow.half_channels] * 2, dim=1)
    hidden_states = flow.conv_pre(first_half)
    hidden_states = flow.conv_dds(hidden_states, padding_mask, global_conditioning)
    hidden_states = flow.conv_proj(hidden_states) * padding_mask

    batch_size, channels, length = first_half.shape
    hidden_states = hidden_states.reshape(batch_size, channels, -1, length).permute(0, 1, 3, 2)
    bins, scale = flow.num_bins, math.sqrt(flow.filter_channels)
    second_half, log_abs_det = unconstrained_rational_quadratic_spline(
        second_half,
        hidden_states[..., :bins] / scale,
        hidden_states[..., bins : 2 * bins] / scale,
        hidden_states[..., 2 * bins :],
        tail_bound=flow.tail_bound,
    )
    outputs = torch.cat([first_half, second_half], dim=1) * padding_mask
    return outputs, torch.sum(log_abs_det * padding_mask, [1, 2])
