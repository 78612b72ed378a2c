"""Check a preprocessed dataset from its per-sample statistics table before any GPU time is spent on it.

`kurdish_tts.data.preprocess` saves, next to the training dataset, a statistics table with one row per *source* clip,
kept or dropped. `validate_statistics` turns that table into a `ValidationReport`: totals and hours kept and dropped
(by reason), duration statistics and a histogram, speaking-rate outliers (likely wrong transcripts), characters the
tokenizer cannot speak, clipped and near-silent clips, the sample-rate and channel mix, duplicate texts and audio, and
the speakers with their hours. Findings that make the data unusable go to `problems`; findings worth a look go to
`warnings`. The report itself and its rendering are in `kurdish_tts.data.validation_report`; its names are imported
from here too.

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
import os
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

import datasets
import numpy as np

from ..atomic import atomic_path
from .validation_report import (
    CharsPerSecondSummary,
    DistributionSummary,
    DropReasonSummary,
    DuplicateGroup,
    DuplicateSummary,
    DurationHistogram,
    FlaggedClips,
    SpeakerSummary,
    UnknownCharacter,
    ValidationConfig,
    ValidationReport,
    _count,
    _draw_duration_histogram,
    _format_hours,
    describe,
)

__all__ = [
    "CharsPerSecondSummary",
    "DistributionSummary",
    "DropReasonSummary",
    "DuplicateGroup",
    "DuplicateSummary",
    "DurationHistogram",
    "FlaggedClips",
    "SpeakerSummary",
    "UnknownCharacter",
    "ValidationConfig",
    "ValidationReport",
    "describe",
    "plot_duration_histogram",
    "validate_prepared",
    "validate_statistics",
]

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
