"""Evaluation: objective metrics of synthesized speech, reports, and figures.

- `mcd.py`: mel-cepstral distortion with DTW (also an `evaluate` module: `load_mcd_metric()`);
- `metrics.py`: duration ratio, F0 RMSE, real-time factor, stop failures, pooling over a held-out set;
  `catalog.py`: the metric groups, keys, labels and directions;
- `asr.py`: character error rate through a user-named CTC model;
- `synthesis.py`: the `Synthesizer` interface every model family implements, and held-out clips;
  `xtts_synthesis.py`: `XttsSynthesizer`, that interface for the XTTS-style voice-cloning model;
- `evaluator.py`: `evaluate_synthesizer`, used by `scripts/evaluate.py` and during training;
- `waveform_health.py`: clipping, DC offset, power above 7.5 kHz / below 50 Hz, level against the recording, and a
  full-band spectral distance: what the mel metrics cannot see;
- `report.py`: `evaluation.json` and the Markdown table; `plots.py`: figures.

The names below are imported on first use: reading a report or a model card (`report.py`, `catalog.py`) must not pay
for torch, librosa and matplotlib, which the computations need.
"""

import importlib
from pathlib import Path

# The `evaluate` module folder shipped with the package (package data, no __init__.py).
MCD_METRIC_PATH = Path(__file__).parent / "mel_cepstral_distortion"

_EXPORTS = {
    "catalog": ("DEFAULT_METRICS", "LOWER_IS_BETTER", "METRIC_GROUPS", "metric_keys", "parse_metric_groups"),
    "mcd": ("MelCepstralDistortion", "dtw_path", "mel_cepstral_distortion", "mel_cepstrum"),
    "metrics": ("duration_ratio", "f0_contour", "f0_errors", "real_time_factor", "stop_failure_rate"),
    "plots": (
        "alignment_figure",
        "figure_to_array",
        "full_band_spectrogram_figure",
        "loss_curve_figure",
        "save_figure",
        "save_image",
        "spectrogram_figure",
    ),
    "report": ("load_report", "markdown_table", "render_markdown", "write_report"),
    "waveform_health": (
        "HealthThresholds",
        "WaveformHealth",
        "full_band_distance",
        "health_problems",
        "waveform_health",
    ),
    "xtts_synthesis": ("XttsSynthesizer",),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_MODULE_OF[name]}", __name__), name)
    globals()[name] = value
    return value


def load_mcd_metric(**kwargs):
    """`evaluate.load` of the MCD metric shipped with the package: no Hub access. `kwargs` go to `evaluate.load`."""
    # Imported here: `evaluate` imports transformers' pipelines (seconds), which nothing else in this package needs.
    import evaluate

    return evaluate.load(str(MCD_METRIC_PATH), **kwargs)


__all__ = ["MCD_METRIC_PATH", "load_mcd_metric", *sorted(_MODULE_OF)]
