"""Evaluation: plots now; objective metrics (MCD, duration, RTF) to come."""

from .plots import (
    alignment_figure,
    figure_to_array,
    loss_curve_figure,
    save_figure,
    save_image,
    spectrogram_figure,
)

__all__ = [
    "alignment_figure",
    "figure_to_array",
    "loss_curve_figure",
    "save_figure",
    "save_image",
    "spectrogram_figure",
]
