"""Check a preprocessed dataset from its per-sample statistics table before any GPU time is spent on it.

`kurdish_tts.data.preprocess` saves, next to the training dataset, a statistics table with one row per *source* clip,
kept or dropped. `validate_statistics` turns that table into a `ValidationReport`: totals and hours kept and dropped
(by reason), duration statistics and a histogram, speaking-rate outliers (likely wrong transcripts), characters the
tokenizer cannot speak, clipped and near-silent clips, the sample-rate and channel mix, duplicate texts and audio, and
the speakers with their hours. Findings that make the data unusable go to `problems`; findings worth a look go to
`warnings`.

Example:

```python
>>> from datasets import load_from_disk
>>> from kurdish_tts.data.validate import validate_statistics
>>> report = validate_statistics(load_from_disk("data/kmr/statistics"))
>>> paths = report.save("data/kmr/validation")  # report.json, report.md, durations.png
>>> print(report.to_markdown())
>>> if not report.is_usable:
...     raise SystemExit("\\n".join(report.problems))
```
"""

import json
import math
import os
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from ..atomic import atomic_path, write_text_atomically

# Only the columns read here are required, so that extra columns added to the table later do not break validation.
_REQUIRED_COLUMNS = (
    "id",
    "speaker",
    "text",
    "drop_reason",
    "error",
    "duration",
    "orig_sample_rate",
    "orig_channels",
    "clipped_fraction",
    "rms_db",
    "audio_hash",
    "unknown_chars",
    "input_length",
)

# What to do when a reason dominates the drops; keys are the `drop_reason` values written by the preprocessing.
_DROP_REASON_ADVICE = {
    "undecodable_audio": "check that the audio files exist, are not truncated and are in a format soundfile can read",
    "empty_audio": "the audio files hold no samples: check the source and the audio column",
    "too_short": "lower min_duration, or check the sample rate and the silence trimming",
    "too_long": "raise max_duration or check the sample rate",
    "empty_text": "check the text column name and what the normalizer strips",
    "unknown_characters": (
        "the tokenizer cannot speak the text's script: check the checkpoint (e.g. script_latin) or extend the normalizer"
    ),
    "too_many_tokens": "raise the token limit or split long utterances",
    "silent_audio": "check the recordings and the silence threshold",
}
_DEFAULT_ADVICE = "check the source data and the preprocessing filters"

_PERCENTILES = (1, 5, 25, 75, 95, 99)

# Scale factors of the modified z-score (Iglewicz & Hoaglin): they make MAD and mean absolute deviation consistent
# with the standard deviation of a normal distribution.
_MAD_SCALE = 0.6745
_MEAN_AD_SCALE = 1.253314


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


def validate_prepared(prepared, config: ValidationConfig | None = None) -> ValidationReport:
    """`validate_statistics` of a prepared cache (`kurdish_tts.data.prepare_dataset`'s result), with what only its
    record knows: the rows the source's filters removed, and the rate the clips were resampled to."""
    info = prepared.info
    return validate_statistics(
        prepared.statistics,
        config,
        source_filtered=info.get("source", {}).get("filtered"),
        sampling_rate=info.get("config", {}).get("mel", {}).get("sampling_rate"),
    )


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


def validate_statistics(
    stats: datasets.Dataset,
    config: ValidationConfig | None = None,
    *,
    source_filtered: dict[str, int] | None = None,
    sampling_rate: int | None = None,
) -> ValidationReport:
    """
    Validate a preprocessed dataset from its per-sample statistics table.

    Args:
        stats (`datasets.Dataset`):
            One row per source clip, kept or dropped, as saved by `kurdish_tts.data.preprocess`. Must have at least the
            columns `id`, `speaker`, `text`, `drop_reason` (`""` when kept), `error`, `duration`, `orig_sample_rate`,
            `orig_channels`, `clipped_fraction`, `rms_db`, `audio_hash`, `unknown_chars` (a JSON object char → count)
            and `input_length`; other columns are ignored.
        config (`ValidationConfig`, *optional*):
            Thresholds; defaults to `ValidationConfig()`.
        source_filtered (`dict[str, int]`, *optional*):
            Rows the source's filters removed before preprocessing, by filter (reported, not judged).
        sampling_rate (`int`, *optional*):
            The rate the clips were resampled to; kept clips recorded below it are flagged as upsampled.

    Returns:
        `ValidationReport`: all findings; `report.is_usable` is `False` when `report.problems` is not empty.
    """
    config = config if config is not None else ValidationConfig()
    missing = [name for name in _REQUIRED_COLUMNS if name not in stats.column_names]
    if missing:
        raise ValueError(
            f"The statistics table lacks the column(s) {missing}; it must come from kurdish_tts.data.preprocess "
            f"(found {stats.column_names})."
        )
    columns = stats.select_columns(list(_REQUIRED_COLUMNS)).to_dict()
    rows = [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)]
    kept = [row for row in rows if row["drop_reason"] == ""]
    dropped = [row for row in rows if row["drop_reason"] != ""]
    n = config.max_examples

    kept_durations = [row["duration"] for row in kept]
    # Undecodable clips have no duration (0.0): plotting them would pile up a fake bar at zero.
    dropped_durations = [row["duration"] for row in dropped if row["drop_reason"] != "undecodable_audio"]
    decodable = [row for row in rows if row["orig_sample_rate"] > 0]

    unknown_characters, unknown_character_clips = _unknown_characters(rows, n)
    report = ValidationReport(
        total_clips=len(rows),
        kept_clips=len(kept),
        kept_hours=_hours(kept_durations),
        dropped_clips=len(dropped),
        dropped_hours=_hours(row["duration"] for row in dropped),
        drop_reasons=_drop_reasons(dropped, n),
        durations=_distribution(kept_durations),
        input_lengths=_distribution([row["input_length"] for row in kept]),
        duration_histogram=_histogram(kept_durations, dropped_durations),
        chars_per_second=_chars_per_second(kept, config.cps_z_threshold, n),
        unknown_characters=unknown_characters,
        unknown_character_clips=unknown_character_clips,
        clipped=_flag(kept, "clipped_fraction", config.clipping_fraction, above=True, max_examples=n),
        near_silent=_flag(kept, "rms_db", config.silence_db, above=False, max_examples=n),
        sample_rates=dict(sorted(Counter(row["orig_sample_rate"] for row in decodable).items())),
        channels=dict(sorted(Counter(row["orig_channels"] for row in decodable).items())),
        duplicate_texts=_duplicates(kept, "text", n),
        duplicate_audio=_duplicates(kept, "audio_hash", n),
        speakers=_speakers(rows),
        problems=[],
        warnings=[],
        config=config,
        source_filtered={reason: int(count) for reason, count in (source_filtered or {}).items() if count},
        sampling_rate=sampling_rate,
        upsampled=None
        if sampling_rate is None
        else _flag(kept, "orig_sample_rate", sampling_rate, above=False, max_examples=n),
    )
    report.problems = _problems(report, config)
    report.warnings = _warnings(report, config)
    return report


def plot_duration_histogram(
    durations_kept: Sequence[float],
    durations_dropped: Sequence[float],
    path: str | os.PathLike,
    bins: int | Sequence[float] = 50,
) -> Path:
    """
    Save a PNG histogram of clip durations, dropped clips stacked on kept ones.

    Args:
        durations_kept (`Sequence[float]`):
            Durations in seconds of the kept clips.
        durations_dropped (`Sequence[float]`):
            Durations in seconds of the dropped clips (leave out clips whose audio could not be decoded).
        path (`str` or `os.PathLike`):
            Where to write the PNG; written atomically, parent folders are created.
        bins (`int` or `Sequence[float]`, *optional*, defaults to `50`):
            Number of bins, or the bin edges, as `numpy.histogram_bin_edges` takes them.

    Returns:
        `Path`: the written file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    histogram = _histogram(durations_kept, durations_dropped, bins=bins)
    with atomic_path(path) as temporary:
        _draw_duration_histogram(histogram, temporary)
    return path


# ---------------------------------------------------------------------------------------------------------------------
# Findings


def _hours(durations) -> float:
    return float(sum(float(duration) for duration in durations)) / 3600.0


def _drop_reasons(dropped: list[dict], max_examples: int) -> list[DropReasonSummary]:
    by_reason = defaultdict(list)
    for row in dropped:
        by_reason[row["drop_reason"]].append(row)
    summaries = [
        DropReasonSummary(
            reason=reason,
            clips=len(group),
            hours=_hours(row["duration"] for row in group),
            examples=[{"id": row["id"], "error": row["error"]} for row in group[:max_examples]],
        )
        for reason, group in by_reason.items()
    ]
    return sorted(summaries, key=lambda summary: (-summary.clips, summary.reason))


def _distribution(values: Sequence[float]) -> DistributionSummary:
    array = np.asarray(values, dtype=np.float64)
    array = array[np.isfinite(array)]
    if array.size == 0:
        return DistributionSummary(count=0)
    return DistributionSummary(
        count=int(array.size),
        min=float(array.min()),
        median=float(np.median(array)),
        mean=float(array.mean()),
        max=float(array.max()),
        std=float(array.std()),
        percentiles={f"p{q}": float(np.percentile(array, q)) for q in _PERCENTILES},
    )


def _histogram(
    durations_kept: Sequence[float], durations_dropped: Sequence[float], bins: int | Sequence[float] = 50
) -> DurationHistogram:
    kept = np.asarray(durations_kept, dtype=np.float64)
    dropped = np.asarray(durations_dropped, dtype=np.float64)
    kept, dropped = kept[np.isfinite(kept)], dropped[np.isfinite(dropped)]
    # Shared edges, so that the two series stack bin by bin; numpy falls back to [0, 1] when both are empty.
    edges = np.histogram_bin_edges(np.concatenate([kept, dropped]), bins=bins)
    return DurationHistogram(
        bin_edges=edges.tolist(),
        kept=np.histogram(kept, bins=edges)[0].tolist(),
        dropped=np.histogram(dropped, bins=edges)[0].tolist(),
        kept_hours=float(kept.sum()) / 3600.0,
        dropped_hours=float(dropped.sum()) / 3600.0,
    )


def _robust_z_scores(values: np.ndarray) -> tuple[np.ndarray, float]:
    median = float(np.median(values))
    deviations = np.abs(values - median)
    mad = float(np.median(deviations))
    if mad > 0:
        return _MAD_SCALE * (values - median) / mad, mad
    # More than half the clips share one rate (e.g. templated prompts): MAD is 0, so fall back to the mean absolute
    # deviation; if that is 0 too, every rate is equal and nothing is an outlier.
    mean_ad = float(deviations.mean())
    if mean_ad > 0:
        return (values - median) / (_MEAN_AD_SCALE * mean_ad), mad
    return np.zeros_like(values), mad


def _chars_per_second(kept: list[dict], threshold: float, max_examples: int) -> CharsPerSecondSummary:
    rows = [row for row in kept if row["duration"] > 0]
    if not rows:
        return CharsPerSecondSummary(median=None, mad=None, threshold=threshold, outliers=0, examples=[])
    # Whitespace is not spoken, so it would only add noise that depends on the punctuation style of the source.
    cps = np.array([len("".join(row["text"].split())) / row["duration"] for row in rows], dtype=np.float64)
    z_scores, mad = _robust_z_scores(cps)
    outliers = sorted(np.flatnonzero(np.abs(z_scores) > threshold), key=lambda i: -abs(z_scores[i]))
    examples = [
        {
            "id": rows[i]["id"],
            "speaker": rows[i]["speaker"],
            "text": rows[i]["text"],
            "duration": float(rows[i]["duration"]),
            "cps": float(cps[i]),
            "z_score": float(z_scores[i]),
        }
        for i in outliers[:max_examples]
    ]
    return CharsPerSecondSummary(
        median=float(np.median(cps)), mad=mad, threshold=threshold, outliers=len(outliers), examples=examples
    )


def _parse_unknown_chars(value: str) -> dict[str, int]:
    if not value:
        return {}
    parsed = json.loads(value)
    if not isinstance(parsed, dict):
        raise ValueError(f"`unknown_chars` must hold a JSON object char -> count, got {value!r}.")
    return {str(char): int(count) for char, count in parsed.items()}


def _unknown_characters(rows: list[dict], max_examples: int) -> tuple[list[UnknownCharacter], int]:
    counts, clip_ids = Counter(), defaultdict(list)
    affected = 0
    for row in rows:
        chars = _parse_unknown_chars(row["unknown_chars"])
        affected += bool(chars)
        for char, count in chars.items():
            counts[char] += count
            clip_ids[char].append(row["id"])
    characters = [
        UnknownCharacter(
            char=char,
            code_point=" ".join(f"U+{ord(c):04X}" for c in char),
            name=" + ".join(unicodedata.name(c, "<unnamed>") for c in char),
            count=count,
            clips=len(clip_ids[char]),
            examples=clip_ids[char][:max_examples],
        )
        for char, count in counts.items()
    ]
    return sorted(characters, key=lambda c: (-c.count, c.char)), affected


def _flag(kept: list[dict], column: str, threshold: float, above: bool, max_examples: int) -> FlaggedClips:
    flagged = [row for row in kept if (row[column] > threshold if above else row[column] < threshold)]
    flagged.sort(key=lambda row: -row[column] if above else row[column])
    return FlaggedClips(
        threshold=threshold,
        clips=len(flagged),
        examples=[{"id": row["id"], "value": float(row[column])} for row in flagged[:max_examples]],
    )


def _duplicates(kept: list[dict], column: str, max_examples: int) -> DuplicateSummary:
    groups = defaultdict(list)
    for row in kept:
        if row[column]:
            groups[row[column]].append(row)
    duplicates = sorted(
        ((key, members) for key, members in groups.items() if len(members) > 1),
        key=lambda item: (-len(item[1]), item[0]),
    )
    return DuplicateSummary(
        groups=len(duplicates),
        clips=sum(len(members) for _, members in duplicates),
        examples=[
            DuplicateGroup(
                key=key,
                clips=len(members),
                speakers=len({row["speaker"] for row in members}),
                ids=[row["id"] for row in members[:max_examples]],
            )
            for key, members in duplicates[:max_examples]
        ],
    )


def _speakers(rows: list[dict]) -> list[SpeakerSummary]:
    clips, seconds, dropped = Counter(), defaultdict(float), Counter()
    for row in rows:
        if row["drop_reason"] == "":
            clips[row["speaker"]] += 1
            seconds[row["speaker"]] += float(row["duration"])
        else:
            dropped[row["speaker"]] += 1
    speakers = [
        SpeakerSummary(
            speaker=speaker, clips=clips[speaker], hours=seconds[speaker] / 3600.0, dropped_clips=dropped[speaker]
        )
        for speaker in set(clips) | set(dropped)
    ]
    return sorted(speakers, key=lambda s: (-s.hours, -s.clips, s.speaker))


# ---------------------------------------------------------------------------------------------------------------------
# Verdict


def _breakdown(drop_reasons: list[DropReasonSummary]) -> str:
    return ", ".join(f"{summary.clips} {summary.reason}" for summary in drop_reasons)


def _dominant_advice(drop_reasons: list[DropReasonSummary]) -> str:
    dominant = drop_reasons[0]
    advice = _DROP_REASON_ADVICE.get(dominant.reason, _DEFAULT_ADVICE)
    first_error = next((example["error"] for example in dominant.examples if example["error"]), "")
    detail = f" (first error: {first_error})" if first_error else ""
    return f"mostly {dominant.reason}: {advice}{detail}"


def _problems(report: ValidationReport, config: ValidationConfig) -> list[str]:
    if report.total_clips == 0:
        return ["The statistics table is empty: no source clips were read. Check the dataset name, split and columns."]
    if report.kept_clips == 0:
        return [
            f"All {report.total_clips} clips were dropped: {_breakdown(report.drop_reasons)} — "
            f"{_dominant_advice(report.drop_reasons)}."
        ]
    problems = []
    hint = f" Drops are {_dominant_advice(report.drop_reasons)}." if report.drop_reasons else ""
    if report.kept_clips < config.min_kept_clips:
        problems.append(
            f"Only {report.kept_clips} of {report.total_clips} clips are left after filtering, fewer than "
            f"min_kept_clips={config.min_kept_clips}: add data or relax the filters.{hint}"
        )
    if report.kept_hours < config.min_kept_hours:
        problems.append(
            f"Only {_format_hours(report.kept_hours)} of audio are left after filtering, less than "
            f"min_kept_hours={config.min_kept_hours}: add data or relax the filters.{hint}"
        )
    return problems


def _ids(examples: list[dict]) -> str:
    return ", ".join(example["id"] for example in examples)


def _warnings(report: ValidationReport, config: ValidationConfig) -> list[str]:
    warnings = []
    total = report.total_clips
    # With nothing kept the FAIL message already gives the breakdown; repeating it as a warning adds nothing.
    if report.kept_clips > 0 and report.dropped_clips / total > config.max_dropped_share:
        warnings.append(
            f"{report.dropped_clips} of {total} clips ({report.dropped_clips / total:.0%}) were dropped "
            f"({_breakdown(report.drop_reasons)}): check your source and the preprocessing filters."
        )
    if total > 0 and report.unknown_character_clips / total > config.max_unknown_char_share:
        top = ", ".join(f"{c.char!r} {c.code_point} ×{c.count}" for c in report.unknown_characters[:5])
        warnings.append(
            f"{report.unknown_character_clips} of {total} clips contain characters the tokenizer cannot speak "
            f"({top}): they were stripped or the clips dropped; map them in the normalizer if they carry sound."
        )
    cps = report.chars_per_second
    if cps.outliers:
        warnings.append(
            f"{_count(cps.outliers, 'kept clip has', 'kept clips have')} an unusual speaking rate (robust z-score "
            f"beyond ±{cps.threshold:g}): likely a wrong or misaligned transcript; listen, e.g. {_ids(cps.examples)}."
        )
    texts, audio = report.duplicate_texts, report.duplicate_audio
    if texts.groups:
        warnings.append(
            f"{_count(texts.groups, 'text occurs', 'texts occur')} in more than one kept clip ({texts.clips} clips): "
            "fine when different speakers read the same prompt, otherwise deduplicate."
        )
    if audio.groups:
        warnings.append(
            f"{_count(audio.groups, 'recording occurs', 'recordings occur')} more than once among the kept clips "
            f"({audio.clips} clips): deduplicate, or they weigh double and may leak into evaluation."
        )
    if report.near_silent.clips:
        warnings.append(
            f"{_count(report.near_silent.clips, 'kept clip is', 'kept clips are')} near-silent (RMS below "
            f"{config.silence_db:g} dBFS): check the audio, e.g. {_ids(report.near_silent.examples)}."
        )
    if report.clipped.clips:
        warnings.append(
            f"{_count(report.clipped.clips, 'kept clip is', 'kept clips are')} clipped (more than "
            f"{config.clipping_fraction:.2%} of samples at full scale): the model learns the distortion; drop or "
            f"replace, e.g. {_ids(report.clipped.examples)}."
        )
    upsampled = report.upsampled
    if upsampled is not None and upsampled.clips:
        rates = sorted({int(example["value"]) for example in upsampled.examples})
        warnings.append(
            f"{_count(upsampled.clips, 'kept clip was', 'kept clips were')} recorded below the model's "
            f"{report.sampling_rate} Hz (e.g. at {', '.join(map(str, rates))} Hz) and upsampled: they hold nothing "
            f"above half their rate, so the model learns muffled speech from them; replace them with recordings at "
            f"{report.sampling_rate} Hz or more, or leave them out, e.g. {_ids(upsampled.examples)}."
        )
    return warnings


# ---------------------------------------------------------------------------------------------------------------------
# Output


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
