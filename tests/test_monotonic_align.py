import itertools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from kurdish_tts.models.vits.monotonic_align import maximum_path

CPU_IMPLEMENTATIONS = ["numba", "torch"]
# The child process of the GPU test exits with this code when it finds no CUDA device or no Triton.
_SKIP_EXIT_CODE = 77


def _brute_force_path(log_likelihood: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Best monotonic path of one unpadded `(text_length, frames)` item, by enumerating every path.

    A path is a split of the frames into one non-empty run per token, so it is fixed by the `text_length - 1` frames
    on which a new token starts. Returns the path, its float64 score and the score gap to the runner-up.
    """
    text_length, frames = log_likelihood.shape
    scored = []
    for starts in itertools.combinations(range(1, frames), text_length - 1):
        tokens = np.searchsorted(np.array(starts), np.arange(frames), side="right")  # token of each frame
        scored.append((log_likelihood[tokens, np.arange(frames)].astype(np.float64).sum(), tokens))
    scored.sort(key=lambda item: -item[0])
    best_score, best_tokens = scored[0]
    gap = best_score - scored[1][0] if len(scored) > 1 else np.inf
    path = np.zeros((text_length, frames), dtype=np.float32)
    path[best_tokens, np.arange(frames)] = 1.0
    return path, best_score, gap


def _random_batch(generator: torch.Generator, batch_size: int, max_text: int, max_frames: int, min_frames: int = 1):
    """Random log-likelihoods with random valid lengths; the padding holds NaN and inf, which must be ignored."""
    text_lengths = torch.randint(1, max_text + 1, (batch_size,), generator=generator)
    frame_lengths = torch.stack(
        [torch.randint(max(int(t), min_frames), max_frames + 1, (), generator=generator) for t in text_lengths]
    )
    text_length, frames = int(text_lengths.max()), int(frame_lengths.max())
    mask = (torch.arange(text_length)[None, :, None] < text_lengths[:, None, None]) & (
        torch.arange(frames)[None, None, :] < frame_lengths[:, None, None]
    )  # (batch, text_length, frames)
    log_likelihood = torch.randn(batch_size, text_length, frames, generator=generator)
    garbage = torch.tensor([float("nan"), float("inf"), -float("inf"), 1e30])
    garbage = garbage[torch.randint(0, 4, log_likelihood.shape, generator=generator)]
    return torch.where(mask, log_likelihood, garbage), mask, text_lengths, frame_lengths


def _assert_valid_paths(path: torch.Tensor, text_lengths: torch.Tensor, frame_lengths: torch.Tensor):
    for item, (text_length, frames) in enumerate(zip(text_lengths.tolist(), frame_lengths.tolist(), strict=True)):
        block = path[item, :text_length, :frames]
        assert path[item].sum() == block.sum(), f"item {item}: path outside the mask"
        assert torch.all(block.sum(dim=0) == 1), f"item {item}: a frame without exactly one token"
        tokens = block.argmax(dim=0)
        steps = tokens.diff()
        assert torch.all((steps == 0) | (steps == 1)), f"item {item}: not monotone"
        assert tokens[0] == 0 and tokens[-1] == text_length - 1, f"item {item}: wrong endpoints"


class TestMaximumPath:
    @pytest.mark.parametrize("implementation", CPU_IMPLEMENTATIONS)
    def test_maximum_path_matches_brute_force(self, implementation):
        generator = torch.Generator().manual_seed(1234)
        checked = 0
        for _ in range(25):
            log_likelihood, mask, text_lengths, frame_lengths = _random_batch(generator, 8, 4, 7)
            path = maximum_path(log_likelihood, mask, implementation=implementation)
            assert torch.all(path[~mask] == 0)
            for item in range(8):
                text_length, frames = int(text_lengths[item]), int(frame_lengths[item])
                block = log_likelihood[item, :text_length, :frames].numpy()
                expected, best_score, gap = _brute_force_path(block)
                found = path[item, :text_length, :frames].numpy()
                np.testing.assert_allclose((found * block).sum(dtype=np.float64), best_score, rtol=0, atol=1e-5)
                # The DP sums in float32, so only a clear winner is guaranteed to be the same path.
                if gap > 1e-4:
                    np.testing.assert_array_equal(found, expected)
                    checked += 1
        assert checked >= 190  # of 200 items: near-ties must stay rare or the test proves little

    @pytest.mark.parametrize("implementation", CPU_IMPLEMENTATIONS)
    def test_maximum_path_ties_stay_on_the_current_token(self, implementation):
        # Every path scores 0; backtracking from the end and staying on ties gives the last token all spare frames.
        path = maximum_path(torch.zeros(1, 3, 5), torch.ones(1, 3, 5), implementation=implementation)
        expected = torch.tensor([[[1.0, 0, 0, 0, 0], [0, 1, 0, 0, 0], [0, 0, 1, 1, 1]]])
        torch.testing.assert_close(path, expected)

    @pytest.mark.parametrize("implementation", CPU_IMPLEMENTATIONS)
    def test_maximum_path_is_a_valid_alignment(self, implementation):
        generator = torch.Generator().manual_seed(7)
        log_likelihood, mask, text_lengths, frame_lengths = _random_batch(generator, 6, 40, 90, min_frames=30)
        path = maximum_path(log_likelihood, mask, implementation=implementation)
        _assert_valid_paths(path, text_lengths, frame_lengths)

    def test_maximum_path_numba_matches_torch_on_larger_inputs(self):
        generator = torch.Generator().manual_seed(99)
        log_likelihood, mask, _, _ = _random_batch(generator, 6, 60, 150, min_frames=60)
        log_likelihood = log_likelihood * 10  # VITS' log-likelihoods are large, so are their sums
        numba_path = maximum_path(log_likelihood, mask, implementation="numba")
        torch.testing.assert_close(numba_path, maximum_path(log_likelihood, mask, implementation="torch"))

    def test_maximum_path_handles_empty_items_and_a_single_token(self):
        log_likelihood = torch.randn(3, 2, 4)
        mask = torch.zeros(3, 2, 4, dtype=torch.bool)
        mask[1, :1, :3] = True
        mask[2] = True
        expected = maximum_path(log_likelihood, mask, implementation="torch")
        torch.testing.assert_close(maximum_path(log_likelihood, mask, implementation="numba"), expected)
        assert expected[0].sum() == 0
        torch.testing.assert_close(expected[1], torch.tensor([[1.0, 1, 1, 0], [0, 0, 0, 0]]))

    @pytest.mark.parametrize("implementation", CPU_IMPLEMENTATIONS)
    def test_maximum_path_rejects_fewer_frames_than_tokens(self, implementation):
        mask = torch.zeros(3, 4, 6)
        mask[0, :2, :6] = 1
        mask[1, :4, :3] = 1
        mask[2, :4, :4] = 1
        with pytest.raises(ValueError, match=r"item 1 \(3 frames < 4 tokens\)"):
            maximum_path(torch.randn(3, 4, 6), mask, implementation=implementation)

    @pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
    def test_maximum_path_keeps_dtype_and_runs_in_float32(self, dtype):
        generator = torch.Generator().manual_seed(3)
        log_likelihood, mask, _, _ = _random_batch(generator, 4, 12, 30, min_frames=12)
        log_likelihood = (log_likelihood * 100).to(dtype)
        expected = maximum_path(log_likelihood.float(), mask)
        for implementation in CPU_IMPLEMENTATIONS:
            path = maximum_path(log_likelihood, mask, implementation=implementation)
            assert path.dtype == dtype and path.device == log_likelihood.device
            torch.testing.assert_close(path.float(), expected, rtol=0, atol=0)

    def test_maximum_path_accepts_float_masks_and_leaves_inputs_alone(self):
        generator = torch.Generator().manual_seed(5)
        log_likelihood, mask, _, _ = _random_batch(generator, 3, 5, 9)
        log_likelihood = log_likelihood.nan_to_num().requires_grad_(True)
        before = log_likelihood.detach().clone()
        path = maximum_path(log_likelihood, mask.float())
        assert not path.requires_grad
        torch.testing.assert_close(path, maximum_path(log_likelihood, mask))
        torch.testing.assert_close(log_likelihood.detach(), before)

    def test_maximum_path_rejects_bad_arguments(self):
        with pytest.raises(ValueError, match="shape"):
            maximum_path(torch.zeros(2, 3, 4), torch.ones(2, 3, 5))
        with pytest.raises(ValueError, match="implementation must be one of"):
            maximum_path(torch.zeros(1, 2, 3), torch.ones(1, 2, 3), implementation="cython")
        with pytest.raises(ValueError, match="needs a CUDA tensor"):
            maximum_path(torch.zeros(1, 2, 3), torch.ones(1, 2, 3), implementation="triton")


@pytest.mark.gpu
def test_triton_matches_torch():
    # tests/conftest.py hides every GPU from the test process (CUDA_VISIBLE_DEVICES=""), so the comparison runs in a
    # child process that is allowed to see them.
    environment = {name: value for name, value in os.environ.items() if name != "CUDA_VISIBLE_DEVICES"}
    repository_root = Path(__file__).resolve().parents[1]
    # sys.path starts at the script's folder, not the working directory, so put this checkout first.
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(repository_root), environment.get("PYTHONPATH")]))
    child = subprocess.run(
        [sys.executable, __file__], env=environment, cwd=repository_root, capture_output=True, text=True, timeout=900
    )
    if child.returncode == _SKIP_EXIT_CODE:
        pytest.skip(child.stdout.strip())
    assert child.returncode == 0, child.stdout + child.stderr


def _compare_triton_with_torch_on_cuda() -> None:
    """The GPU test's body, run as `python tests/test_monotonic_align.py` in a process that can see the GPU."""
    generator = torch.Generator().manual_seed(2024)
    # A training batch: ~250 token ids with blanks, ~600 frames, lengths varying as after length bucketing.
    log_likelihood, mask, text_lengths, frame_lengths = _random_batch(generator, 32, 250, 600, min_frames=450)
    log_likelihood, mask = (log_likelihood * 30).cuda(), mask.cuda()

    expected = maximum_path(log_likelihood, mask, implementation="torch")
    path = maximum_path(log_likelihood, mask)  # the default on CUDA must be Triton
    torch.cuda.synchronize()
    _assert_valid_paths(path.cpu(), text_lengths, frame_lengths)
    torch.testing.assert_close(path, expected, rtol=0, atol=0)
    torch.testing.assert_close(path.cpu(), maximum_path(log_likelihood.cpu(), mask.cpu()), rtol=0, atol=0)

    # Neither implementation may synchronise the device: sync debug mode turns any sync into an error.
    torch.cuda.set_sync_debug_mode("error")
    try:
        for implementation in ("triton", "torch"):
            maximum_path(log_likelihood, mask, implementation=implementation)
        half_path = maximum_path(log_likelihood.half(), mask)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert half_path.dtype == torch.float16
    torch.testing.assert_close(half_path.float(), maximum_path(log_likelihood.half().float(), mask), rtol=0, atol=0)


if __name__ == "__main__":
    import importlib.util

    if not torch.cuda.is_available() or importlib.util.find_spec("triton") is None:
        print(f"needs CUDA and Triton (CUDA available: {torch.cuda.is_available()})")
        sys.exit(_SKIP_EXIT_CODE)
    _compare_triton_with_torch_on_cuda()
    print("triton matches torch")
