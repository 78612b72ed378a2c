"""Time every available monotonic alignment search implementation at training-batch sizes.

Prints a markdown table of the median wall time per call. On CUDA each call is bracketed by `torch.cuda.synchronize()`,
so the time covers the kernels and not only their launch; the first calls (Numba and Triton compilation) are warm-up
and not timed. The "same path" column compares each result with the Numba one on the CPU.

    python -m benchmarks.bench_monotonic_align  # from the repository root, so that the checkout is imported
    python -m benchmarks.bench_monotonic_align --batch_sizes 32 --repeats 50 --devices cuda
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import statistics
import time

import torch

from kurdish_tts.models.vits.monotonic_align import maximum_path


def make_batch(batch_size: int, text_length: int, frames: int, seed: int = 0):
    """Random log-likelihoods and a block mask whose lengths vary as in a length-bucketed batch."""
    generator = torch.Generator().manual_seed(seed)
    text_lengths = torch.randint(int(0.7 * text_length), text_length + 1, (batch_size,), generator=generator)
    frame_lengths = torch.randint(int(0.7 * frames), frames + 1, (batch_size,), generator=generator)
    frame_lengths = torch.maximum(frame_lengths, text_lengths)
    text_lengths[0], frame_lengths[0] = text_length, frames  # the batch's padded size is the requested one
    mask = (torch.arange(text_length)[None, :, None] < text_lengths[:, None, None]) & (
        torch.arange(frames)[None, None, :] < frame_lengths[:, None, None]
    )  # (batch, text_length, frames)
    # VITS' log-likelihoods are sums over flow channels of Gaussian log-densities, hence the scale.
    log_likelihood = -torch.rand(batch_size, text_length, frames, generator=generator) * 200.0
    return log_likelihood, mask


def time_call(function, device: torch.device, warmup: int, repeats: int) -> float:
    """Median milliseconds per call, synchronising around each call on CUDA."""

    def synchronize():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        function()
    timings = []
    for _ in range(repeats):
        synchronize()
        start = time.perf_counter()
        function()
        synchronize()
        timings.append((time.perf_counter() - start) * 1e3)
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[8, 32, 64])
    parser.add_argument("--text_length", type=int, default=250, help="token ids per item, blanks included")
    parser.add_argument("--frames", type=int, default=600, help="spectrogram frames per item")
    parser.add_argument("--devices", nargs="+", default=None, help="defaults to cpu, plus cuda when available")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--slow_repeats", type=int, default=3, help="repeats for the Python-loop torch version")
    args = parser.parse_args()

    devices = args.devices or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    implementations = {"cpu": ["numba", "torch"], "cuda": ["torch", "numba"]}
    if importlib.util.find_spec("triton") is not None:
        implementations["cuda"].insert(0, "triton")

    rows = []
    for batch_size in args.batch_sizes:
        log_likelihood, mask = make_batch(batch_size, args.text_length, args.frames)
        reference = maximum_path(log_likelihood, mask, implementation="numba")
        for device_name in devices:
            device = torch.device(device_name)
            device_log_likelihood, device_mask = log_likelihood.to(device), mask.to(device)
            for implementation in implementations[device.type]:
                # The torch version loops over frames in Python; a few repeats are enough to see its scale.
                repeats = args.slow_repeats if implementation == "torch" else args.repeats
                align = functools.partial(
                    maximum_path, device_log_likelihood, device_mask, implementation=implementation
                )
                milliseconds = time_call(align, device, args.warmup, repeats)
                path = align()
                same = torch.equal(path.cpu(), reference)
                # Numba on CUDA tensors is the classic VITS recipe: copy to the host, align, copy back.
                label = (
                    f"{implementation} (host round trip)"
                    if implementation == "numba" and device.type != "cpu"
                    else implementation
                )
                rows.append((label, device_name, batch_size, milliseconds, same))

    print(f"text_length={args.text_length}, frames={args.frames}, torch {torch.__version__}")
    if "cuda" in devices:
        print(f"GPU: {torch.cuda.get_device_name()}")
    print()
    print("| implementation | device | batch | ms | same path as numba |")
    print("|---|---|---:|---:|---|")
    for label, device_name, batch_size, milliseconds, same in rows:
        print(f"| {label} | {device_name} | {batch_size} | {milliseconds:.2f} | {'yes' if same else 'NO'} |")


if __name__ == "__main__":
    main()
