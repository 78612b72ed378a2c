"""The metrics this package reports: their groups, report keys, labels, better directions and defaults.

Kept apart from the computations (`metrics.py`, which loads torch and librosa) so that reading and rendering reports
(`report.py`, the model card in `kurdish_tts.hub`) and checking command-line arguments stay light.
"""

from __future__ import annotations

from collections.abc import Iterable

# group -> the keys it reports.
METRIC_GROUPS: dict[str, tuple[str, ...]] = {
    "mcd": ("mcd",),
    "duration": ("duration_ratio", "duration_error"),
    "f0": ("f0_rmse_hz", "f0_rmse_cents"),
    "rtf": ("rtf",),
    "stop_failure": ("stop_failure_rate",),
    "cer": ("cer",),
    "health": ("clipped", "dc_offset", "high_band", "low_band", "level_db", "spectral_distance", "unhealthy"),
}
LOWER_IS_BETTER = frozenset(
    {
        "mcd",
        "duration_error",
        "f0_rmse_hz",
        "f0_rmse_cents",
        "rtf",
        "stop_failure_rate",
        "cer",
        "clipped",
        "dc_offset",
        "high_band",
        "low_band",
        "spectral_distance",
        "unhealthy",
    }
)
METRIC_LABELS = {
    "mcd": "MCD (dB)",
    "duration_ratio": "duration ratio",
    "duration_error": "duration error",
    "f0_rmse_hz": "F0 RMSE (Hz)",
    "f0_rmse_cents": "F0 RMSE (cents)",
    "rtf": "RTF",
    "stop_failure_rate": "stop failures",
    "cer": "CER",
    "clipped": "clipped samples",
    "dc_offset": "|DC offset|",
    "high_band": "power > 7.5 kHz",
    "low_band": "power < 50 Hz",
    "level_db": "level vs recording (dB)",
    "spectral_distance": "full-band distance (dB)",
    "unhealthy": "unhealthy clips",
}
# What `scripts/evaluate.py` computes by default; `cer` needs an ASR model and is added with `--asr_model`.
DEFAULT_METRICS = ("mcd", "duration", "f0", "rtf", "stop_failure", "health")
# Edge silence below this many dB under the peak is trimmed from both clips before scoring (recordings, Common
# Voice's above all, start and end with silence that a TTS model does not reproduce).
DEFAULT_TRIM_TOP_DB = 40.0


def parse_metric_groups(spec: str | Iterable[str]) -> tuple[str, ...]:
    """Metric groups from a comma-separated string (`"mcd,f0"`, `"all"`) or a list, validated, in canonical order.

    Raises:
        `ValueError`: an unknown name; the message lists the known ones.
    """
    names = [name.strip() for name in (spec.split(",") if isinstance(spec, str) else spec)]
    names = [name for name in names if name]
    if names == ["all"]:
        return tuple(METRIC_GROUPS)
    unknown = [name for name in names if name not in METRIC_GROUPS]
    if unknown:
        raise ValueError(f"unknown metric(s) {', '.join(unknown)}; choose from {', '.join(METRIC_GROUPS)} or all")
    return tuple(group for group in METRIC_GROUPS if group in names)


def metric_keys(groups: Iterable[str]) -> tuple[str, ...]:
    """The report keys of these metric groups, e.g. `("mcd", "duration_ratio", "duration_error")`."""
    return tuple(key for group in parse_metric_groups(list(groups)) for key in METRIC_GROUPS[group])
