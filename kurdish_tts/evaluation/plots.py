"""Figures for training diagnostics and model cards: mels, alignments and loss curves.

Every function builds a standalone `matplotlib.figure.Figure` and never touches `pyplot`: pyplot keeps figures in a
global registry (a leak over a long run unless each one is closed) and picks a GUI backend on first use, which fails
or misbehaves inside a Trainer callback on a headless node. A figure from here is garbage-collected like any object.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.image import imsave

from ..atomic import atomic_path

# Prefixes of the log-history keys that `loss_curve_figure` plots: `loss`, `loss/<term>` and their `eval_` forms.
LOSS_KEY_PREFIXES = ("loss", "eval_loss")


def spectrogram_figure(mel: np.ndarray, title: str = "") -> Figure:
    """A log-mel spectrogram as an image, low frequencies at the bottom.

    Args:
        mel (`np.ndarray` of shape `(n_mels, frames)`):
            Log-mel magnitudes, e.g. from `kurdish_tts.audio.mel_spectrogram`.
        title (`str`, *optional*, defaults to `""`):
            Axes title.

    Returns:
        `matplotlib.figure.Figure`
    """
    mel = _as_matrix(mel, "mel")
    figure = _figure(width=10, height=3)
    axes = figure.add_subplot()
    image = axes.imshow(mel, aspect="auto", origin="lower", interpolation="none", cmap="magma")
    figure.colorbar(image, ax=axes, label="log magnitude")
    axes.set(xlabel="frames", ylabel="mel bands", title=title)
    return figure


def full_band_spectrogram_figure(
    waveforms: Sequence[tuple[str, np.ndarray]], sampling_rate: int, title: str = "", n_fft: int = 1024
) -> Figure:
    """Linear-frequency spectrograms in dBFS from 0 Hz to Nyquist, every STFT bin shown, one panel per clip on a
    shared time axis in seconds.

    Unlike a mel spectrogram, whose filters give the DC and Nyquist bins no weight, this shows a constant offset as a
    bright bottom row and an alternating-sample tone as a bright top row.

    Args:
        waveforms (`Sequence[tuple[str, np.ndarray]]`):
            `(label, waveform)` pairs, e.g. `[("recorded", a), ("synthesized", b)]`, float in [-1, 1].
        sampling_rate (`int`):
            Their rate in Hz.
        title (`str`, *optional*, defaults to `""`):
            Title over the first panel.
        n_fft (`int`, *optional*, defaults to `1024`):
            STFT size (hop a quarter of it).
    """
    import torch

    seconds = max(len(waveform) for _, waveform in waveforms) / sampling_rate
    figure = _figure(width=10, height=2.4 * len(waveforms))
    axes = figure.subplots(len(waveforms), 1, sharex=True, squeeze=False)[:, 0]
    window = torch.hann_window(n_fft)
    for ax, (label, waveform) in zip(axes, waveforms):
        clip = torch.as_tensor(np.asarray(waveform, dtype=np.float32))
        if clip.numel() < n_fft:
            clip = torch.nn.functional.pad(clip, (0, n_fft - clip.numel()))
        spectrum = torch.stft(clip, n_fft, n_fft // 4, window=window, center=True, return_complex=True).abs()
        # dBFS: a full-scale sine peaks at 0 dB (the window's sum is the coherent gain).
        decibels = 20 * np.log10(np.maximum(spectrum.numpy() / (window.sum().item() / 2), 1e-6))
        extent = (0, clip.numel() / sampling_rate, 0, sampling_rate / 2000)
        image = ax.imshow(
            decibels,
            aspect="auto",
            origin="lower",
            interpolation="none",
            cmap="magma",
            extent=extent,
            vmin=-100,
            vmax=0,
        )
        ax.set(ylabel=f"{label}\nkHz", xlim=(0, seconds))
        figure.colorbar(image, ax=ax, label="dBFS")
    axes[0].set_title(title)
    axes[-1].set_xlabel("seconds")
    return figure


def alignment_figure(alignment: np.ndarray, title: str = "", xlabel: str = "mel frames") -> Figure:
    """A text-to-frame alignment, tokens on the y axis and frames (or decoder steps) on the x axis.

    A healthy VITS alignment is a staircase from the bottom left to the top right; a blurred or stuck diagonal is the
    first sign that the text encoder and the flow have stopped agreeing.

    Args:
        alignment (`np.ndarray` of shape `(text_length, frames)`):
            Hard (0/1) or soft alignment of one item, cropped to its real tokens and frames.
        title (`str`, *optional*, defaults to `""`):
            Axes title.
        xlabel (`str`, *optional*, defaults to `"mel frames"`):
            What a column is: VITS aligns every mel frame; the XTTS-style model's attention has one column per
            decoder step of `reduction_factor` frames, and says so.

    Returns:
        `matplotlib.figure.Figure`
    """
    alignment = _as_matrix(alignment, "alignment")
    figure = _figure(width=8, height=4)
    axes = figure.add_subplot()
    image = axes.imshow(alignment, aspect="auto", origin="lower", interpolation="none", cmap="viridis")
    figure.colorbar(image, ax=axes)
    axes.set(xlabel=xlabel, ylabel="text tokens", title=title)
    return figure


def loss_curve_figure(log_history: Sequence[dict], keys: Sequence[str] | None = None) -> Figure:
    """Loss curves against the optimizer step, one panel per loss term with its training and evaluation values.

    The VITS terms differ by orders of magnitude (mel L1 around 1-50, the adversarial terms around 1-3), so each term
    gets its own panel instead of sharing one y axis; `loss/mel` and `eval_loss/mel` share a panel.

    Args:
        log_history (`Sequence[dict]`):
            `trainer.state.log_history`: one dict per logging event, each with a `step`.
        keys (`Sequence[str]`, *optional*):
            The keys to plot. Defaults to every key starting with `loss` or `eval_loss` found in `log_history`.

    Returns:
        `matplotlib.figure.Figure`

    Raises:
        `ValueError`: when none of the keys has a finite value in `log_history`.
    """
    series = _loss_series(log_history, keys)
    if not series:
        wanted = list(keys) if keys is not None else [f"{prefix}*" for prefix in LOSS_KEY_PREFIXES]
        raise ValueError(f"log_history holds no finite values for {wanted}; nothing to plot")
    # `loss/mel` and `eval_loss/mel` are the same term, so they share a panel, in first-seen order.
    panels: dict[str, list[str]] = {}
    for key in series:
        panels.setdefault(key.removeprefix("eval_"), []).append(key)

    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    figure = _figure(width=4 * columns, height=2.8 * rows, hspace=0.6, wspace=0.35)
    for index, (term, panel_keys) in enumerate(panels.items()):
        axes = figure.add_subplot(rows, columns, index + 1)
        for key in panel_keys:
            steps, values = series[key]
            evaluation = key.startswith("eval_")
            axes.plot(steps, values, label="eval" if evaluation else "train", marker="o" if evaluation else None)
        axes.set(title=term, xlabel="step")
        axes.grid(alpha=0.3)
        if len(panel_keys) > 1:
            axes.legend()
    return figure


def figure_to_array(figure: Figure) -> np.ndarray:
    """Render a figure to an RGB image, e.g. for `SummaryWriter.add_image(tag, image, step, dataformats="HWC")`.

    Args:
        figure (`matplotlib.figure.Figure`):
            The figure; it gets an Agg canvas if it has none.

    Returns:
        `np.ndarray` of shape `(height, width, 3)`, `uint8`: height and width are the figure size times its dpi.
    """
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    # The Agg buffer is RGBA and owned by the canvas: the copy drops alpha and outlives the figure.
    return np.ascontiguousarray(np.asarray(canvas.buffer_rgba())[..., :3])


def save_figure(figure: Figure, path: str | os.PathLike) -> Path:
    """Write a figure as PNG atomically (temporary file in the same folder, then rename).

    A reader such as a file browser or a sync job polling the samples folder never sees half an image, and a crash
    mid-write leaves no truncated file behind.

    Args:
        figure (`matplotlib.figure.Figure`):
            The figure.
        path (`str` or `os.PathLike`):
            Target file; its parent folders are created.

    Returns:
        `pathlib.Path`: the written path.
    """
    return save_image(figure_to_array(figure), path)


def save_image(image: np.ndarray, path: str | os.PathLike) -> Path:
    """Write an RGB image atomically as PNG, e.g. a `figure_to_array` result that also goes to TensorBoard.

    Rendering is the expensive part of a figure; a caller that needs both the pixels and the file renders once and
    passes the array here, rather than calling `figure_to_array` and `save_figure`.

    Args:
        image (`np.ndarray` of shape `(height, width, 3)`, `uint8`):
            The pixels.
        path (`str` or `os.PathLike`):
            Target file; its parent folders are created.

    Returns:
        `pathlib.Path`: the written path.
    """
    path = Path(path)
    with atomic_path(path) as temporary:
        imsave(temporary, image, format="png")
    return path


def _figure(width: float, height: float, **spacing) -> Figure:
    # Fixed margins in inches rather than a layout engine: constrained/tight layout measure every text box and make a
    # figure three times slower to draw, which a callback drawing a dozen figures per evaluation notices.
    left, right, bottom, top = 0.8, 0.25, 0.55, 0.4
    figure = Figure(figsize=(width, height), dpi=100)
    figure.subplots_adjust(
        left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height, **spacing
    )
    return figure


def _as_matrix(values: np.ndarray, name: str) -> np.ndarray:
    matrix = np.asarray(values, dtype=np.float32)
    if matrix.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {matrix.shape}")
    return matrix


def _loss_series(log_history: Sequence[dict], keys: Sequence[str] | None) -> dict[str, tuple[list, list]]:
    series: dict[str, tuple[list, list]] = {}
    for entry in log_history:
        if "step" not in entry:
            continue
        for key, value in entry.items():
            wanted = key in keys if keys is not None else key.startswith(LOSS_KEY_PREFIXES)
            # NaN/inf losses (a diverged step) would wreck the y range of the whole panel; they are left out.
            if not wanted or not isinstance(value, int | float) or not math.isfinite(value):
                continue
            steps, values = series.setdefault(key, ([], []))
            steps.append(entry["step"])
            values.append(value)
    return series
