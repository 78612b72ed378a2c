"""Monotonic alignment search (MAS): the hard text-to-frame alignment that VITS trains its duration predictor on.

Glow-TTS (arXiv 2005.11129) and VITS (arXiv 2106.06103) align every spectrogram frame to exactly one text token with a
path that starts on the first token, ends on the last one and never moves back, choosing the path that maximises the
summed log-likelihood of the frames under the prior. The dynamic programme is jaywalnut310's:

    Q[j, f] = max(Q[j, f - 1], Q[j - 1, f - 1]) + log_likelihood[j, f]

followed by a backtrack from the last cell. On a tie the backtrack stays on the current token, as in the reference.

Three implementations compute every value the path depends on with the same float32 operations, so they agree bit for
bit:

- `"numba"`: a CPU kernel, the default for CPU tensors.
- `"torch"`: vectorised over batch and text with a Python loop over frames. It runs on any device and never reads a
  device value on the host, but it launches a few kernels per frame.
- `"triton"`: one Triton program per batch item that runs the whole recursion and the backtrack in a single launch,
  the default for CUDA tensors when Triton is installed. Triton is imported on first use only, so this module imports
  on machines without it. Where Triton is installed but cannot build its kernel (Windows ports of Triton need a C
  compiler and a matching CUDA toolkit), the default falls back to `"torch"` once, with a warning.
"""

from __future__ import annotations

import functools
import importlib.util
import logging

import numba
import numpy as np
import torch

logger = logging.getLogger(__name__)

_IMPLEMENTATIONS = ("numba", "torch", "triton")
# Why Triton failed in this process, once it has: the default then stops choosing it.
_triton_failure: Exception | None = None


def maximum_path(
    log_likelihood: torch.Tensor, mask: torch.Tensor, *, implementation: str | None = None
) -> torch.Tensor:
    """Find the monotonic alignment that maximises the summed log-likelihood (VITS section 2.2.1).

    The recursion always runs in float32, whatever the input dtype. Item lengths are read from `mask`, whose valid
    region must be the top-left `text_length x frames` block of each item, as built from text and frame lengths.

    Args:
        log_likelihood (`torch.Tensor` of shape `(batch_size, text_length, frames)`):
            Log-likelihood of each frame under each token's prior distribution (jaywalnut310's `neg_cent`, transposed
            to text-first). Values outside the mask are ignored and may be anything, including non-finite.
        mask (`torch.Tensor` of shape `(batch_size, text_length, frames)`):
            Boolean or 0/1 mask of the valid text-by-frame block of each item.
        implementation (`str`, *optional*):
            `"numba"`, `"torch"` or `"triton"`. By default `"numba"` for CPU tensors, `"triton"` for CUDA tensors when
            Triton is installed, and `"torch"` otherwise. `"numba"` on a non-CPU tensor copies it to the host and back,
            which synchronises the device.

    Returns:
        `torch.Tensor` of shape `(batch_size, text_length, frames)`, with the dtype and device of `log_likelihood`: 1
        on the path and 0 elsewhere, including everywhere outside the mask. Each valid frame has exactly one token.

    Raises:
        `ValueError`: if an item has fewer frames than tokens. This is not checked by the `"torch"` and `"triton"`
        implementations on an accelerator, where it would cost a device-to-host synchronisation: there the data
        pipeline must drop such items, whose path would skip tokens.

    Example:

    ```python
    >>> import torch
    >>> from kurdish_tts.models.vits.monotonic_align import maximum_path

    >>> log_likelihood = torch.tensor([[[0.0, -5.0, -5.0], [-5.0, 0.0, 0.0]]])  # (batch, text_length, frames)
    >>> maximum_path(log_likelihood, torch.ones_like(log_likelihood))
    tensor([[[1., 0., 0.],
             [0., 1., 1.]]])
    ```
    """
    if log_likelihood.dim() != 3 or mask.shape != log_likelihood.shape:
        raise ValueError(
            "log_likelihood and mask must both have shape (batch_size, text_length, frames), got "
            f"{tuple(log_likelihood.shape)} and {tuple(mask.shape)}"
        )
    device = log_likelihood.device
    chosen = implementation is None
    if chosen:
        implementation = default_implementation(device)
    elif implementation not in _IMPLEMENTATIONS:
        raise ValueError(f"implementation must be one of {_IMPLEMENTATIONS}, got {implementation!r}")
    elif implementation == "triton" and device.type != "cuda":
        raise ValueError(f"the triton implementation needs a CUDA tensor, got one on {device}")

    output_dtype = log_likelihood.dtype
    if log_likelihood.numel() == 0:
        return torch.zeros_like(log_likelihood)
    with torch.no_grad():
        # The mask is a top-left block, so its first column and first row hold the lengths (both 0 for an empty item).
        text_lengths = (mask[:, :, 0] != 0).sum(dim=1).to(device)  # (batch,)
        frame_lengths = (mask[:, 0, :] != 0).sum(dim=1).to(device)  # (batch,)
        if device.type == "cpu" or implementation == "numba":
            _check_lengths(text_lengths, frame_lengths)
        # Summing hundreds of fp16/bf16 log-likelihoods would lose the small differences that decide the path.
        log_likelihood = log_likelihood.detach().to(torch.float32)
        if implementation == "numba":
            path = _maximum_path_numba(log_likelihood.cpu(), text_lengths.cpu(), frame_lengths.cpu()).to(device)
        elif implementation == "torch":
            path = _maximum_path_torch(log_likelihood, text_lengths, frame_lengths)
        else:
            try:
                path = _maximum_path_triton(log_likelihood, text_lengths, frame_lengths)
            except Exception as error:  # noqa: BLE001 - any failure to build or launch the kernel
                if not chosen:
                    raise
                global _triton_failure
                _triton_failure = error
                logger.warning(
                    f"the Triton alignment kernel failed ({type(error).__name__}: {error}); using the torch "
                    "implementation, which gives the same paths more slowly"
                )
                path = _maximum_path_torch(log_likelihood, text_lengths, frame_lengths)
        return path.to(output_dtype)


def default_implementation(device: torch.device) -> str:
    """The implementation `maximum_path` uses on `device` when none is named: `numba` on the CPU, `triton` on CUDA
    when Triton is installed and has not failed in this process, `torch` otherwise (other accelerators, no Triton)."""
    if device.type == "cpu":
        return "numba"
    if device.type == "cuda" and _triton_is_installed() and _triton_failure is None:
        return "triton"
    return "torch"


def _check_lengths(text_lengths: torch.Tensor, frame_lengths: torch.Tensor) -> None:
    too_short = (frame_lengths < text_lengths).nonzero().flatten().tolist()
    if too_short:
        items = ", ".join(f"item {i} ({frame_lengths[i]} frames < {text_lengths[i]} tokens)" for i in too_short)
        raise ValueError(f"monotonic alignment needs at least one frame per token, which fails for {items}")


@numba.njit(cache=False, nogil=True)
def _maximum_path_numba_item(path, values, log_likelihood, text_length, frame_length):
    # path, values, log_likelihood: (text_length, frames) float32 views of one item. Rows are filled one token at a
    # time, so the running value stays in a register and the inputs are read contiguously. Only the band of cells that
    # lie on some complete path (token j on frames j .. j + slack) is computed: all their predecessors are in the band
    # or unreachable (-inf), so the band holds exactly the values of the full recursion the other implementations run.
    neg_inf = np.float32(-np.inf)
    slack = frame_length - text_length
    for j in range(text_length):
        current = neg_inf  # token j cannot be reached before frame j
        for f in range(j, j + slack + 1):
            if j > 0:
                diagonal = values[j - 1, f - 1]
            elif f == 0:
                diagonal = np.float32(0.0)
            else:
                diagonal = neg_inf
            if diagonal > current:
                current = diagonal
            current += log_likelihood[j, f]
            values[j, f] = current

    index = text_length - 1
    for f in range(frame_length - 1, -1, -1):
        path[index, f] = 1.0
        if index > 0 and (index == f or values[index, f - 1] < values[index - 1, f - 1]):
            index -= 1


@numba.njit(cache=False, nogil=True)
def _maximum_path_numba_kernel(paths, log_likelihood, text_lengths, frame_lengths):
    values = np.empty_like(log_likelihood)
    for b in range(paths.shape[0]):
        if text_lengths[b] > 0:
            _maximum_path_numba_item(paths[b], values[b], log_likelihood[b], text_lengths[b], frame_lengths[b])


def _maximum_path_numba(
    log_likelihood: torch.Tensor, text_lengths: torch.Tensor, frame_lengths: torch.Tensor
) -> torch.Tensor:
    paths = torch.zeros_like(log_likelihood)  # (batch, text_length, frames)
    _maximum_path_numba_kernel(
        paths.numpy(),
        log_likelihood.contiguous().numpy(),
        text_lengths.to(torch.int64).numpy(),
        frame_lengths.to(torch.int64).numpy(),
    )
    return paths


def _maximum_path_torch(
    log_likelihood: torch.Tensor, text_lengths: torch.Tensor, frame_lengths: torch.Tensor
) -> torch.Tensor:
    batch_size, text_length, frames = log_likelihood.shape
    log_likelihood = log_likelihood.permute(2, 0, 1).contiguous()  # (frames, batch, text_length)

    # Column 0 is a permanent -inf guard standing for token -1, so the diagonal predecessor of token j is column j and
    # both predecessors of a whole frame are views, not copies.
    values = log_likelihood.new_full((frames, batch_size, text_length + 1), float("-inf"))
    values[0, :, 1] = log_likelihood[0, :, 0]
    for f in range(1, frames):
        torch.maximum(values[f - 1, :, 1:], values[f - 1, :, :-1], out=values[f, :, 1:])
        values[f, :, 1:].add_(log_likelihood[f])

    # moves[f - 1, b, j] is 1 when the path through token j at frame f came from token j - 1. Padding frames never
    # move, so every item's backtrack holds its last token until its own last frame.
    moves = values[:-1, :, :-1] > values[:-1, :, 1:]  # (frames - 1, batch, text_length)
    frame_is_valid = torch.arange(1, frames, device=values.device)[:, None] < frame_lengths[None, :]
    moves = (moves & frame_is_valid[:, :, None]).to(torch.uint8)

    index = (text_lengths - 1).clamp_min(0)  # (batch,)
    path_indices = index.new_empty((frames, batch_size))
    for f in range(frames - 1, 0, -1):
        path_indices[f] = index
        # A token that is reached on its first possible frame must have come from the previous one; with finite
        # log-likelihoods -inf does this already, the clamp keeps it true when the input has -inf too.
        index = torch.clamp_max(index - moves[f - 1].gather(1, index[:, None]).squeeze(1), f - 1)
    path_indices[0] = index

    path = log_likelihood.new_zeros((batch_size, text_length, frames))
    path.scatter_(1, path_indices.t()[:, None, :], 1.0)
    # The scatter above wrote one token on every frame, padding included.
    frame_is_valid = torch.arange(frames, device=path.device)[None, :] < frame_lengths[:, None]  # (batch, frames)
    return path * (frame_is_valid & (text_lengths > 0)[:, None])[:, None, :]


@functools.cache
def _triton_is_installed() -> bool:
    return importlib.util.find_spec("triton") is not None


@functools.cache
def _triton_kernel():
    # Built on first use so that importing this module never imports Triton; Triton resolves `tl` through the closure.
    import triton
    import triton.language as tl

    # Padded sizes change from batch to batch; specialising on them would only add compilations.
    @triton.jit(do_not_specialize=["text_length", "frames"])
    def maximum_path_kernel(
        paths_ptr,  # (batch, text_length, frames), zero-filled, any float dtype
        values_ptr,  # (batch, frames, text_length) float32 scratch
        log_likelihood_ptr,  # (batch, frames, text_length) float32
        text_lengths_ptr,  # (batch,) int32
        frame_lengths_ptr,  # (batch,) int32
        text_length,
        frames,
        BLOCK_TEXT: tl.constexpr,
    ):
        item = tl.program_id(0).to(tl.int64)
        item_offset = item * frames * text_length
        paths_ptr += item_offset
        values_ptr += item_offset
        log_likelihood_ptr += item_offset
        item_text_length = tl.load(text_lengths_ptr + item)
        # An item without tokens has no path; skipping its frames also keeps the backtrack's index in bounds.
        item_frames = tl.where(item_text_length > 0, tl.load(frame_lengths_ptr + item), 0)

        tokens = tl.arange(0, BLOCK_TEXT)
        is_token = tokens < item_text_length
        first = tl.load(log_likelihood_ptr + tokens, mask=is_token, other=float("-inf"))
        previous = tl.where(tokens == 0, first, float("-inf"))  # only token 0 is reachable on frame 0
        tl.store(values_ptr + tokens, previous, mask=is_token)
        for f in range(1, item_frames):
            # Token j - 1 of the previous frame lives in another thread's registers; its value comes back through
            # memory, which is only safe once every thread has stored that frame.
            tl.debug_barrier()
            diagonal = tl.load(
                values_ptr + (f - 1) * text_length + tokens - 1, mask=is_token & (tokens > 0), other=float("-inf")
            )
            frame_log_likelihood = tl.load(log_likelihood_ptr + f * text_length + tokens, mask=is_token, other=0.0)
            previous = tl.maximum(previous, diagonal) + frame_log_likelihood
            tl.store(values_ptr + f * text_length + tokens, previous, mask=is_token)
        tl.debug_barrier()

        index = item_text_length - 1
        for step in range(0, item_frames):
            f = item_frames - 1 - step
            tl.store(paths_ptr + index * frames + f, 1.0)
            # Clamped addresses stay in bounds on frame 0 and token 0, where the decision is masked out below.
            row = values_ptr + tl.maximum(f - 1, 0) * text_length
            stay = tl.load(row + index)
            diagonal = tl.load(row + tl.maximum(index - 1, 0))
            move = ((diagonal > stay) & (index > 0)).to(tl.int32)
            index = tl.minimum(index - move, tl.maximum(f - 1, 0))

    return maximum_path_kernel


def _triton_num_warps(block_text: int) -> int:
    # The recursion is latency-bound (one barrier and one dependent load per frame), so few warps are enough: one per
    # 256 tokens keeps eight values per thread.
    return min(max(block_text // 256, 1), 8)


def _maximum_path_triton(
    log_likelihood: torch.Tensor, text_lengths: torch.Tensor, frame_lengths: torch.Tensor
) -> torch.Tensor:
    import triton

    batch_size, text_length, frames = log_likelihood.shape
    # Frame-major so that each frame's tokens are one contiguous, coalesced load.
    log_likelihood = log_likelihood.transpose(1, 2).contiguous()  # (batch, frames, text_length)
    values = torch.empty_like(log_likelihood)  # (batch, frames, text_length)
    paths = log_likelihood.new_zeros((batch_size, text_length, frames))
    if paths.numel() == 0:
        return paths
    block_text = triton.next_power_of_2(text_length)
    _triton_kernel()[(batch_size,)](
        paths,
        values,
        log_likelihood,
        text_lengths.to(torch.int32),
        frame_lengths.to(torch.int32),
        text_length,
        frames,
        BLOCK_TEXT=block_text,
        num_warps=_triton_num_warps(block_text),
    )
    return paths
