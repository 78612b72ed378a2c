"""The data validation report (`ValidationReport`, its parts and the thresholds it was judged by), and its rendering:
`report.json`, `report.md`, `durations.png`, and the lines that describe a prepared cache.
"""

import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_path, write_text_atomically


@dataclass
class ValidationConfig:
    r"""
    Thresholds of `validate_statistics`.

    Parameters:
        > Parameters that decide whether the data is usable (FAIL)

        min_kept_clips (`int`, *optional*, defaults to `1`):
            Fewer clips than this left after filtering makes the data unusable.
        min_kept_hours (`float`, *optional*, defaults to `0.0`):
            Fewer hours than this left after filtering makes the data unusable. `0.0` disables the check.

        > Parameters that raise warnings (WARN)

        max_dropped_share (`float`, *optional*, defaults to `0.5`):
            Warn when more than this share of the source clips was dropped: the source or the filters are likely wrong.
        max_unknown_char_share (`float`, *optional*, defaults to `0.01`):
            Warn when more than this share of the source clips contains characters the tokenizer cannot speak.
        cps_z_threshold (`float`, *optional*, defaults to `3.5`):
            Robust z-score (median/MAD) of characters per second beyond which a kept clip is flagged as a likely wrong
            or misaligned transcript. 3.5 is the usual cut-off for the modified z-score.
        silence_db (`float`, *optional*, defaults to `-50.0`):
            Kept clips with an RMS level below this (dBFS) are flagged as near-silent.
        clipping_fraction (`float`, *optional*, defaults to `0.001`):
            Kept clips with a larger share of samples at full scale (|x| ≥ 0.999) than this are flagged as clipped.

        > Parameters that control the output

        max_examples (`int`, *optional*, defaults to `5`):
            Examples (clip ids, duplicate groups) listed per finding.
        top_speakers (`int`, *optional*, defaults to `20`):
            Speakers listed in the Markdown summary; the JSON report lists all of them.
    """

    min_kept_clips: int = field(default=1, metadata={"help": "Fewer kept clips than this makes the data unusable."})
    min_kept_hours: float = field(
        default=0.0, metadata={"help": "Fewer kept hours than this makes the data unusable (0 disables)."}
    )
    max_dropped_share: float = field(
        default=0.5, metadata={"help": "Warn when more than this share of the source clips was dropped."}
    )
    max_unknown_char_share: float = field(
        default=0.01, metadata={"help": "Warn when more than this share of clips has characters the tokenizer lacks."}
    )
    cps_z_threshold: float = field(
        default=3.5, metadata={"help": "Robust z-score of characters per second beyond which a clip is flagged."}
    )
    silence_db: float = field(default=-50.0, metadata={"help": "RMS level (dBFS) below which a clip is near-silent."})
    clipping_fraction: float = field(
        default=0.001, metadata={"help": "Share of full-scale samples above which a clip is flagged as clipped."}
    )
    max_examples: int = field(default=5, metadata={"help": "Examples listed per finding."})
    top_speakers: int = field(default=20, metadata={"help": "Speakers listed in the Markdown summary."})

    def __post_init__(self):
        for name in ("max_dropped_share", "max_unknown_char_share", "clipping_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"`{name}` must be between 0 and 1, got {getattr(self, name)}.")
        for name in ("min_kept_clips", "min_kept_hours", "cps_z_threshold", "max_examples", "top_speakers"):
            if getattr(self, name) < 0:
                raise ValueError(f"`{name}` must not be negative, got {getattr(self, name)}.")


@dataclass
class DropReasonSummary:
    """Clips dropped for one reason; `examples` holds `{"id", "error"}` dicts."""

    reason: str
    clips: int
    hours: float
    examples: list[dict[str, str]]


@dataclass
class DistributionSummary:
    """Summary statistics of one numeric column; all `None` when there are no values."""

    count: int
    min: float | None = None
    median: float | None = None
    mean: float | None = None
    max: float | None = None
    std: float | None = None
    percentiles: dict[str, float] = field(default_factory=dict)


@dataclass
class DurationHistogram:
    """Kept and dropped clip counts per duration bin (seconds); dropped clips whose audio was undecodable are absent."""

    bin_edges: list[float]
    kept: list[int]
    dropped: list[int]
    kept_hours: float
    dropped_hours: float


@dataclass
class CharsPerSecondSummary:
    """Speaking rate of the kept clips and its robust outliers; `examples` hold id, speaker, text, duration, cps, z."""

    median: float | None
    mad: float | None
    threshold: float
    outliers: int
    examples: list[dict[str, Any]]


@dataclass
class UnknownCharacter:
    """A character the tokenizer cannot speak, with its total `count`, the number of `clips` holding it and examples."""

    char: str
    code_point: str
    name: str
    count: int
    clips: int
    examples: list[str]


@dataclass
class FlaggedClips:
    """Kept clips beyond `threshold` for one audio check; `examples` hold `{"id", "value"}`, worst first."""

    threshold: float
    clips: int
    examples: list[dict[str, Any]]


@dataclass
class DuplicateGroup:
    """Kept clips sharing one `key` (a normalized text or an audio hash); `ids` is capped at `max_examples`."""

    key: str
    clips: int
    speakers: int
    ids: list[str]


@dataclass
class DuplicateSummary:
    """All duplicate groups of one kind: how many `groups`, how many `clips` they cover, and the largest groups."""

    groups: int
    clips: int
    examples: list[DuplicateGroup]


@dataclass
class SpeakerSummary:
    """Kept clips and hours of one speaker, plus how many of their clips were dropped."""

    speaker: str
    clips: int
    hours: float
    dropped_clips: int


@dataclass
class ValidationReport:
    """
    Findings of `validate_statistics`, as plain data.

    `problems` are FAIL findings (the data cannot be trained on); `warnings` are worth a look but do not block
    training. Each message says why and what to do. `to_dict` is JSON-serializable (no NaN or inf), `to_markdown` is a
    readable summary and `save` writes both plus the duration histogram.

    Args:
        total_clips, kept_clips, kept_hours, dropped_clips, dropped_hours:
            Source clips, and how many clips and hours the filters kept and dropped.
        drop_reasons (`list[DropReasonSummary]`):
            One entry per drop reason, most frequent first.
        durations, input_lengths (`DistributionSummary`):
            Durations (seconds) and token ids (blanks included) of the kept clips.
        duration_histogram (`DurationHistogram`):
            The data behind `durations.png`.
        chars_per_second (`CharsPerSecondSummary`):
            Speaking rate of the kept clips (non-space characters per second) and its outliers.
        unknown_characters (`list[UnknownCharacter]`), unknown_character_clips (`int`):
            Characters the tokenizer cannot speak, over all clips, most frequent first; and how many clips hold any.
        clipped, near_silent (`FlaggedClips`):
            Kept clips with too many full-scale samples, or too low an RMS level.
        sample_rates, channels (`dict[int, int]`):
            Source sample rate and channel count → clips, over all decodable clips.
        duplicate_texts, duplicate_audio (`DuplicateSummary`):
            Kept clips sharing a normalized text, or identical decoded audio.
        speakers (`list[SpeakerSummary]`):
            Every speaker, by kept hours, including those whose clips were all dropped.
        problems, warnings (`list[str]`):
            FAIL and WARN messages.
        config (`ValidationConfig`):
            The thresholds used.
        source_filtered (`dict[str, int]`):
            Rows the source's own filters removed before preprocessing (the Common Voice vote filter: `{"votes": n}`);
            they are not among `total_clips`.
        sampling_rate (`int`, *optional*):
            The rate the clips were resampled to (the model's); clips recorded below it were upsampled.
        upsampled (`FlaggedClips`, *optional*):
            Kept clips recorded below `sampling_rate` (their `value` is the recording's rate).
    """

    total_clips: int
    kept_clips: int
    kept_hours: float
    dropped_clips: int
    dropped_hours: float
    drop_reasons: list[DropReasonSummary]
    durations: DistributionSummary
    input_lengths: DistributionSummary
    duration_histogram: DurationHistogram
    chars_per_second: CharsPerSecondSummary
    unknown_characters: list[UnknownCharacter]
    unknown_character_clips: int
    clipped: FlaggedClips
    near_silent: FlaggedClips
    sample_rates: dict[int, int]
    channels: dict[int, int]
    duplicate_texts: DuplicateSummary
    duplicate_audio: DuplicateSummary
    speakers: list[SpeakerSummary]
    problems: list[str]
    warnings: list[str]
    config: ValidationConfig
    source_filtered: dict[str, int] = field(default_factory=dict)
    sampling_rate: int | None = None
    upsampled: FlaggedClips | None = None

    @property
    def is_usable(self) -> bool:
        return not self.problems

    @property
    def num_speakers(self) -> int:
        """Speakers with at least one kept clip."""
        return sum(1 for speaker in self.speakers if speaker.clips > 0)

    def to_dict(self) -> dict[str, Any]:
        report = asdict(self)
        # Derived values go first so that a reader of report.json sees the verdict without scrolling.
        return _to_json_safe({"is_usable": self.is_usable, "num_speakers": self.num_speakers, **report})

    def to_markdown(self) -> str:
        return _render_markdown(self)

    def save(self, output_dir: str | os.PathLike) -> dict[str, Path]:
        """
        Write `report.json`, `report.md` and `durations.png` to `output_dir` (created if needed).

        Each file is written to a temporary name and moved into place, so a reader never sees a half-written report.

        Returns:
            `dict[str, Path]`: the paths, under the keys `"json"`, `"markdown"` and `"histogram"`.
        """
        output_dir = Path(output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        paths = {
            "json": output_dir / "report.json",
            "markdown": output_dir / "report.md",
            "histogram": output_dir / "durations.png",
        }
        report_json = json.dumps(self.to_dict(), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
        write_text_atomically(paths["json"], report_json)
        write_text_atomically(paths["markdown"], self.to_markdown())
        with atomic_path(paths["histogram"]) as temporary:
            _draw_duration_histogram(self.duration_histogram, temporary)
        return paths


def describe(prepared) -> str:
    """What preparing kept and dropped, and where the cache is (`kurdish_tts.data.prepare_dataset`'s result): the lines
    `kurdish-tts prepare` and a training run print."""
    info = prepared.info
    dropped = ", ".join(f"{count} {reason}" for reason, count in info["dropped"].items()) or "none"
    state = "reused cache" if prepared.from_cache else f"preprocessed in {info['preprocess_seconds']:.1f} s"
    # Rows a source's own filter removed (the Common Voice vote filter) never reach preprocessing: say so here, or
    # "kept 44 of 48" hides that the file had 50.
    filtered = info["source"].get("filtered") or {}
    removed = "".join(
        f"; {count} rows removed before preprocessing by the {reason} filter"
        for reason, count in filtered.items()
        if count
    )
    return (
        f"{info['source']['location']}: kept {info['kept']} of {info['samples']} clips "
        f"({info['kept_hours'] * 60:.1f} min); dropped: {dropped}{removed}; {state}\n"
        f"cache: {prepared.path} (dropped clips with reasons: {prepared.path / 'dropped.csv'})"
    )


def _to_json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _to_json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_json_safe(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        # float32 columns widen to noise like 0.950000011920929; 7 significant digits is all they ever held.
        return float(f"{value:.7g}") if math.isfinite(value) else None
    return value


def _format_hours(hours: float) -> str:
    if hours >= 1:
        return f"{hours:.2f} h"
    return f"{hours * 60:.1f} min" if hours * 60 >= 1 else f"{hours * 3600:.1f} s"


def _draw_duration_histogram(histogram: DurationHistogram, path: Path) -> None:
    # A bare Figure renders through Agg without pyplot, so no global backend or display is touched.
    from matplotlib.figure import Figure

    edges = np.asarray(histogram.bin_edges)
    kept, dropped = np.asarray(histogram.kept), np.asarray(histogram.dropped)
    figure = Figure(figsize=(8, 4.5), dpi=100, layout="constrained")
    axes = figure.subplots()
    axes.stairs(kept, edges, fill=True, color="tab:blue", alpha=0.8, label="kept")
    axes.stairs(kept + dropped, edges, baseline=kept, fill=True, color="tab:red", alpha=0.6, label="dropped")
    axes.set_xlabel("duration (s)")
    axes.set_ylabel("clips")
    axes.set_title(
        f"Clip durations: {int(kept.sum())} kept ({_format_hours(histogram.kept_hours)}), "
        f"{int(dropped.sum())} dropped ({_format_hours(histogram.dropped_hours)})"
    )
    axes.legend()
    figure.savefig(path, format="png")


def _cell(value: Any, width: int = 60) -> str:
    text = value if isinstance(value, str) else _number(value)
    text = " ".join(text.split())
    if len(text) > width:
        text = text[: width - 1] + "…"
    return text.replace("|", "\\|")


def _number(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return str(value)


def _count(count: int, singular: str, plural: str) -> str:
    return f"{count} {singular if count == 1 else plural}"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return lines + [""]


def _printable(char: str) -> str:
    # Invisible characters (ZWNJ, bidi marks) are common in Kurdish text and would print as nothing.
    return f"`{char}`" if char.isprintable() and not char.isspace() else ""


def _render_markdown(report: ValidationReport) -> str:
    config = report.config
    share = (lambda count: f"{count / report.total_clips:.1%}") if report.total_clips else (lambda count: "–")
    lines = ["# Dataset validation report", ""]
    lines += [f"**Status: {'USABLE' if report.is_usable else 'UNUSABLE'}**", ""]

    if report.problems:
        lines += ["## Problems", ""] + [f"- FAIL: {problem}" for problem in report.problems] + [""]
    if report.warnings:
        lines += ["## Warnings", ""] + [f"- WARN: {warning}" for warning in report.warnings] + [""]

    lines += ["## Totals", ""]
    lines += _table(
        ["", "clips", "hours", "share"],
        [
            ["kept", report.kept_clips, report.kept_hours, share(report.kept_clips)],
            ["dropped", report.dropped_clips, report.dropped_hours, share(report.dropped_clips)],
            ["total", report.total_clips, report.kept_hours + report.dropped_hours, share(report.total_clips)],
        ],
    )

    if report.source_filtered:
        removed = ", ".join(f"{count} by the {reason} filter" for reason, count in report.source_filtered.items())
        lines += [
            f"Before preprocessing, the source's own filters removed {removed}; those rows are not counted above "
            "(Common Voice: `--min_up_votes`, `--max_down_votes`).",
            "",
        ]

    lines += ["## Drop reasons", ""]
    if report.drop_reasons:
        lines += _table(
            ["reason", "clips", "hours", "examples"],
            [
                [
                    s.reason,
                    s.clips,
                    s.hours,
                    "; ".join(f"{e['id']}: {e['error']}" if e["error"] else e["id"] for e in s.examples),
                ]
                for s in report.drop_reasons
            ],
        )
    else:
        lines += ["No clip was dropped.", ""]

    lines += ["## Durations of kept clips", ""]
    durations, lengths = report.durations, report.input_lengths
    stat_rows = [
        ["min", durations.min, lengths.min],
        ["median", durations.median, lengths.median],
        ["mean", durations.mean, lengths.mean],
        ["max", durations.max, lengths.max],
    ]
    stat_rows += [[key, durations.percentiles.get(key), lengths.percentiles.get(key)] for key in durations.percentiles]
    lines += _table(["statistic", "duration (s)", "input ids"], stat_rows)
    lines += ["Histogram: `durations.png`.", ""]

    cps = report.chars_per_second
    lines += ["## Characters per second (kept clips)", ""]
    lines += [
        f"Median {_number(cps.median, 2)} chars/s, MAD {_number(cps.mad, 2)}; "
        f"{_count(cps.outliers, 'outlier', 'outliers')} beyond robust z ±{cps.threshold:g} (likely wrong transcripts).",
        "",
    ]
    if cps.examples:
        lines += _table(
            ["id", "speaker", "duration (s)", "chars/s", "z", "text"],
            [[e["id"], e["speaker"], e["duration"], e["cps"], e["z_score"], e["text"]] for e in cps.examples],
        )

    lines += ["## Characters unknown to the tokenizer", ""]
    if report.unknown_characters:
        lines += [f"{report.unknown_character_clips} clips contain characters the tokenizer cannot speak.", ""]
        lines += _table(
            ["char", "code point", "name", "count", "clips", "examples"],
            [
                [_printable(c.char), c.code_point, c.name, c.count, c.clips, ", ".join(c.examples)]
                for c in report.unknown_characters
            ],
        )
    else:
        lines += ["None.", ""]

    lines += ["## Audio levels (kept clips)", ""]
    lines += _table(
        ["check", "threshold", "clips", "examples (value)"],
        [
            [
                "clipped (share of full-scale samples)",
                report.clipped.threshold,
                report.clipped.clips,
                ", ".join(f"{e['id']} ({e['value']:.4f})" for e in report.clipped.examples),
            ],
            [
                "near-silent (RMS dBFS)",
                report.near_silent.threshold,
                report.near_silent.clips,
                ", ".join(f"{e['id']} ({e['value']:.1f})" for e in report.near_silent.examples),
            ],
        ],
    )

    lines += ["## Sample rates and channels (decodable clips)", ""]
    lines += _table(["sample rate (Hz)", "clips"], list(report.sample_rates.items()))
    lines += _table(["channels", "clips"], list(report.channels.items()))

    lines += ["## Duplicates (kept clips)", ""]
    for title, summary in (("Duplicate texts", report.duplicate_texts), ("Duplicate audio", report.duplicate_audio)):
        lines += [f"{title}: {_count(summary.groups, 'group', 'groups')} covering {summary.clips} clips.", ""]
        if summary.examples:
            lines += _table(
                ["key", "clips", "speakers", "ids"],
                [[g.key, g.clips, g.speakers, ", ".join(g.ids)] for g in summary.examples],
            )

    lines += ["## Speakers", ""]
    lines += [f"{_count(report.num_speakers, 'speaker', 'speakers')} with kept clips.", ""]
    shown = report.speakers[: config.top_speakers]
    if shown:
        lines += _table(
            ["speaker", "clips", "hours", "dropped clips"],
            [[s.speaker, s.clips, s.hours, s.dropped_clips] for s in shown],
        )
    if len(report.speakers) > len(shown):
        lines += [f"… and {len(report.speakers) - len(shown)} more in report.json.", ""]
    return "\n".join(lines)
