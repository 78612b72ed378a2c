"""Evaluation reports: one JSON file and one Markdown table for one or several models, side by side.

The JSON (`evaluation.json`) is the record: the data the models were scored on, the scoring settings, every model's
pooled metrics and per-clip scores. The Markdown (`evaluation.md`) is the table a person reads, and what the model
card embeds; `markdown_table` renders it from the JSON alone, so a card can be written long after the evaluation.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import kurdish_tts

from ..atomic import write_json_atomically, write_text_atomically
from .catalog import LOWER_IS_BETTER, METRIC_GROUPS, METRIC_LABELS

if TYPE_CHECKING:
    from .evaluator import ModelEvaluation

REPORT_JSON = "evaluation.json"
REPORT_MARKDOWN = "evaluation.md"


def build_report(evaluations: Sequence[ModelEvaluation], *, data: dict, settings: dict) -> dict:
    """The JSON record of an evaluation run.

    Args:
        evaluations (`Sequence[ModelEvaluation]`): One per model, scored on the same clips.
        data (`dict`): What the clips were: `source`, `clips`, `ids` (the clip ids), `held_out` (whether they
            came from the models' `data_split.json`) and a `note`.
        settings (`dict`): Scoring settings (`trim_top_db`, `mel`, ...).
    """
    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "kurdish_tts_version": kurdish_tts.__version__,
        "data": data,
        "settings": settings,
        "models": [evaluation.to_dict() for evaluation in evaluations],
    }


def write_report(report: dict, output_dir: str | os.PathLike) -> dict[str, Path]:
    """Write `evaluation.json` and `evaluation.md` into `output_dir` (atomically); returns their paths."""
    output_dir = Path(output_dir)
    paths = {"json": output_dir / REPORT_JSON, "markdown": output_dir / REPORT_MARKDOWN}
    write_json_atomically(paths["json"], report)
    write_text_atomically(paths["markdown"], render_markdown(report))
    return paths


def load_report(path: str | os.PathLike) -> dict:
    """Read an `evaluation.json` (or the folder holding it)."""
    path = Path(path)
    if path.is_dir():
        path = path / REPORT_JSON
    return json.loads(path.read_text(encoding="utf-8"))


def metric_columns(models: Sequence[dict]) -> list[str]:
    """The metric keys any of the models reports, in the canonical order."""
    present = {key for model in models for key in model["metrics"]}
    return [key for group in METRIC_GROUPS.values() for key in group if key in present]


def markdown_table(models: Sequence[dict], names: Sequence[str] | None = None) -> str:
    """One row per model, one column per metric; with several models the best value of each column is bold.

    Args:
        models (`Sequence[dict]`): `ModelEvaluation.to_dict()` values (the `models` of `evaluation.json`).
        names (`Sequence[str]`, *optional*): Row labels; default to the models' names.
    """
    columns = metric_columns(models)
    names = list(names) if names is not None else [model["name"] for model in models]
    header = ["model", "clips", *(_label(key) for key in columns), "device"]
    best = {key: _best(key, [model["metrics"].get(key) for model in models]) for key in columns}
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join([" --- "] * len(header)) + "|"]
    for name, model in zip(names, models):
        cells = [f"`{name}`", str(model["num_items"])]
        for key in columns:
            value = model["metrics"].get(key)
            text = format_metric(key, value)
            cells.append(f"**{text}**" if len(models) > 1 and value is not None and value == best[key] else text)
        cells.append(model["device"])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_markdown(report: dict) -> str:
    """The whole Markdown report: what was scored, the table, how to read it."""
    data = report["data"]
    models = report["models"]
    lines = [
        "# Evaluation",
        "",
        f"{data['clips']} clips from `{data['source']}`. {data.get('note', '')}".rstrip(),
        "",
        markdown_table(models),
        "",
        _legend(metric_columns(models)),
    ]
    failures = [(model["name"], model["failures"]) for model in models if model.get("failures")]
    if failures:
        lines += ["", "Clips a metric could not be computed for (listed with their reason in evaluation.json): "
                  + ", ".join(f"`{name}`: {count}" for name, count in failures) + "."]  # fmt: skip
    for model in models:
        problems = model.get("health_problems")
        if problems is not None:
            verdict = "healthy" if not problems else "BROKEN: " + "; ".join(problems)
            lines += ["", f"Waveform health of `{model['name']}`: {verdict}."]
    asr = {model["asr_model"] for model in models if model.get("asr_model")}
    if asr:
        lines += ["", f"CER by the ASR model {', '.join(f'`{name}`' for name in sorted(asr))}."]
    return "\n".join(lines) + "\n"


def format_metric(key: str, value: float | None) -> str:
    """A metric value as the tables show it (`—` when missing)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if key in {"stop_failure_rate", "cer"}:
        return f"{100 * value:.1f} %"
    if key in {"duration_ratio", "duration_error"}:
        return f"{value:.3f}"
    if key == "rtf":
        return f"{value:.3g}"
    if key.startswith("f0_"):
        return f"{value:.1f}"
    return f"{value:.2f}"


def _label(key: str) -> str:
    arrow = " ↓" if key in LOWER_IS_BETTER else " (→ 1)" if key == "duration_ratio" else ""
    return METRIC_LABELS.get(key, key) + arrow


def _best(key: str, values: list[float | None]) -> float | None:
    present = [value for value in values if value is not None and math.isfinite(value)]
    if not present:
        return None
    if key == "duration_ratio":
        return min(present, key=lambda value: abs(value - 1.0))
    return min(present) if key in LOWER_IS_BETTER else max(present)


_LEGEND = {
    "mcd": "MCD: mel-cepstral distortion (c1-c24, DTW-aligned, MMS mel geometry), dB",
    "duration_ratio": "duration ratio: synthesized / recorded length, edge silence trimmed (1 is the speaker's pace)",
    "duration_error": "duration error: mean |ratio - 1|",
    "f0_rmse_hz": "F0 RMSE: pitch error on aligned frames voiced in both clips (pYIN)",
    "rtf": "RTF: synthesis time / audio length on the device shown (below 1 is faster than real time)",
    "stop_failure_rate": "stop failures: share of clips whose generation hit the length limit",
    "cer": "CER: character error rate of an ASR transcript of the synthesized clip",
}


def _legend(columns: Sequence[str]) -> str:
    return "\n".join(f"- {_LEGEND[key]}" for key in columns if key in _LEGEND) + "\n- ↓: lower is better."
