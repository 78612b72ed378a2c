"""CUDA graphs for a training loss: forward and backward captured once per batch shape, then replayed.

A VITS step is bound by the CPU issuing kernels, not by GPU arithmetic: about 13,600 small kernels per step at MMS
size (`shared/perf`). Replaying a captured graph issues the whole forward, or the whole backward, with one call. What a
step may contain to be captured: fixed shapes (the collator's `pad_to_multiple_of` makes batches few-shaped; each new
shape is captured once, up to a limit), no host synchronization and no host-side randomness (the training forward
avoids both; transformers' text-encoder layer drop draws on the host, so the trainer turns it off while graphs are on).
Random numbers drawn on the GPU (segments, dropout, duration noise) are fresh at every replay.

Why not `torch.cuda.make_graphed_callables`: its backward returns the captured gradient buffers themselves, which
autograd then installs as `.grad` without a copy; the next replay overwrites them, so gradient accumulation over
micro-batches sums the wrong values. Here every backward hands autograd gradients in fresh memory (one flat buffer,
one fused copy), and only the loss is differentiable (the per-term values come back detached).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence

import torch
from torch import nn
from transformers.utils import logging

logger = logging.get_logger(__name__)

# Loss function signature: tensors in, (differentiable scalar loss, detached 1-D tensor of per-term values) out.
LossFunction = Callable[..., tuple[torch.Tensor, torch.Tensor]]


class _Capture:
    """The forward and backward graphs of one input shape, with their static inputs, outputs and gradients."""

    def __init__(
        self,
        loss_function: LossFunction,
        parameters: Sequence[nn.Parameter],
        inputs: Sequence[torch.Tensor],
        pool,
        autocast: Callable[[], contextlib.AbstractContextManager],
        warmup_steps: int,
    ):
        self.parameters = parameters
        self.inputs = [tensor.clone() for tensor in inputs]
        # Warm-up on a side stream, outside any capture: cuDNN algorithm choice, Triton compilation, lazily built
        # constants (window, mel filterbank) and the allocator's first blocks must not happen inside the graph.
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(warmup_steps):
                with autocast():
                    loss, _ = loss_function(*self.inputs)
                torch.autograd.grad(loss, parameters, allow_unused=True)
        torch.cuda.current_stream().wait_stream(side)
        del loss

        # "thread_local": the data loader's pin-memory thread may touch CUDA (pinned buffers, events) while we capture;
        # in the default "global" mode that would invalidate the capture.
        self.forward_graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.forward_graph, pool=pool, capture_error_mode="thread_local"):
            with autocast():
                self.loss, self.terms = loss_function(*self.inputs)
        self.grad_output = torch.ones_like(self.loss)
        self.backward_graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.backward_graph, pool=pool, capture_error_mode="thread_local"):
            self.grads = torch.autograd.grad(self.loss, parameters, self.grad_output, allow_unused=True)
        self.used = [grad is not None for grad in self.grads]
        self._groups = _flat_groups([grad for grad in self.grads if grad is not None])

    def load(self, inputs: Sequence[torch.Tensor]) -> None:
        for static, tensor in zip(self.inputs, inputs):
            static.copy_(tensor, non_blocking=True)

    def fresh_gradients(self) -> list[torch.Tensor | None]:
        """The captured gradients copied into new memory, so that autograd may keep them as `.grad`."""
        copies = iter(_copy_flat(self._groups))
        return [next(copies) if used else None for used in self.used]


def _flat_groups(tensors: list[torch.Tensor]) -> list[tuple[torch.dtype, list[int], list[torch.Tensor]]]:
    """Group tensors by dtype, keeping positions, for one flat copy per dtype."""
    groups: dict[torch.dtype, tuple[list[int], list[torch.Tensor]]] = {}
    for position, tensor in enumerate(tensors):
        positions, members = groups.setdefault(tensor.dtype, ([], []))
        positions.append(position)
        members.append(tensor)
    return [(dtype, positions, members) for dtype, (positions, members) in groups.items()]


def _copy_flat(groups) -> list[torch.Tensor]:
    total = sum(len(positions) for _, positions, _ in groups)
    copies: list[torch.Tensor | None] = [None] * total
    for dtype, positions, members in groups:
        flat = torch.empty(sum(t.numel() for t in members), dtype=dtype, device=members[0].device)
        views = [view.view_as(t) for view, t in zip(flat.split([t.numel() for t in members]), members)]
        torch._foreach_copy_(views, members)
        for position, view in zip(positions, views):
            copies[position] = view
    return copies


class _Replay(torch.autograd.Function):
    @staticmethod
    def forward(ctx, capture: _Capture, *parameters):
        capture.forward_graph.replay()
        ctx.capture = capture
        # Copies: the next replay overwrites the static outputs, and the trainer keeps these until it logs.
        terms = capture.terms.clone()
        ctx.mark_non_differentiable(terms)
        return capture.loss.clone(), terms

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_loss, grad_terms):
        capture = ctx.capture
        capture.grad_output.copy_(grad_loss)
        capture.backward_graph.replay()
        return (None, *capture.fresh_gradients())


class GraphedLoss:
    """Run `loss_function(*inputs)` and its backward as CUDA graphs, one pair per distinct input shape.

    Args:
        loss_function (`Callable`):
            Tensors in, `(loss, terms)` out: a scalar loss to differentiate and a 1-D tensor of detached values to log.
            Must be free of host synchronization and host-side randomness, and use only `parameters` as trainable
            state. Called under `autocast` during capture.
        parameters (`Sequence[nn.Parameter]`):
            Everything the loss trains; they must keep their storage (load weights with `copy_`/`load_state_dict`,
            never by replacing the tensors).
        autocast_dtype (`torch.dtype`, *optional*):
            Mixed precision to capture with (`torch.bfloat16`, `torch.float16`); full precision when `None`.
        max_graphs (`int`, *optional*, defaults to `12`):
            Shapes to capture. Each capture costs a few steps' time and keeps its own gradient buffers (the size of
            the trainable parameters); further shapes run eagerly (`__call__` returns `None`).
        warmup_steps (`int`, *optional*, defaults to `3`):
            Eager forward+backward passes before each capture.

    Calling it returns `(loss, terms)` with `loss` connected to `parameters` in autograd, so `loss.backward()`,
    gradient scaling and accumulation work as with an eager loss; or `None` for a shape it will not capture.
    """

    def __init__(
        self,
        loss_function: LossFunction,
        parameters: Sequence[nn.Parameter],
        *,
        autocast_dtype: torch.dtype | None = None,
        max_graphs: int = 12,
        warmup_steps: int = 3,
    ):
        if not torch.cuda.is_available():
            raise RuntimeError("CUDA graphs need a CUDA device; turn them off on this machine")
        if max_graphs < 1 or warmup_steps < 1:
            raise ValueError(f"need max_graphs >= 1 and warmup_steps >= 1, got {max_graphs} and {warmup_steps}")
        self.loss_function = loss_function
        self.parameters = [parameter for parameter in parameters if parameter.requires_grad]
        self.autocast_dtype = autocast_dtype
        self.max_graphs = max_graphs
        self.warmup_steps = warmup_steps
        self.captures: dict[tuple, _Capture] = {}
        self.capture_seconds = 0.0
        self.eager_calls = 0
        self.replays = 0
        self._pool = torch.cuda.graph_pool_handle()

    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        # Graph capture forbids autocast's weight-cast cache (cached casts would outlive the capture).
        return torch.autocast("cuda", dtype=self.autocast_dtype, cache_enabled=False)

    def __call__(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        key = tuple((tuple(tensor.shape), tensor.dtype, tensor.device) for tensor in inputs)
        capture = self.captures.get(key)
        if capture is None:
            if len(self.captures) >= self.max_graphs:
                self.eager_calls += 1
                return None
            started = time.perf_counter()
            capture = _Capture(
                self.loss_function, self.parameters, inputs, self._pool, self._autocast, self.warmup_steps
            )
            self.captures[key] = capture
            seconds = time.perf_counter() - started
            self.capture_seconds += seconds
            logger.info(
                f"captured CUDA graphs for input shapes {[shape for shape, _, _ in key]} in "
                f"{seconds:.1f} s ({len(self.captures)} of at most {self.max_graphs})"
            )
        capture.load(inputs)
        self.replays += 1
        return _Replay.apply(capture, *self.parameters)

    def stats(self) -> dict[str, float]:
        return {
            "graphs": len(self.captures),
            "replays": self.replays,
            "eager_calls": self.eager_calls,
            "capture_seconds": self.capture_seconds,
        }
