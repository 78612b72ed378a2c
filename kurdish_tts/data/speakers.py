"""Speakers of a prepared dataset: per-speaker hours, choosing one voice, and the speaker → embedding id map.

Crowd-sourced corpora (Common Voice Kurmanji has 450+ `client_id`s, most with a handful of clips) are trained in one
of two ways:

- one voice: `select_speaker(dataset, "most_hours")` (or a speaker id) keeps that speaker's clips;
- many voices: `build_speaker_to_id(dataset, min_clips=...)` numbers the speakers with enough clips,
  `filter_speakers` drops the clips of the others (and says how many), the map goes to `DataCollatorForVits` and
  `kurdish_tts.models.vits.add_speaker_embeddings`, and `save_speaker_map` writes it next to the model so that
  inference can turn a speaker label back into the `speaker_id` the model expects.

Everything here reads only the `speaker` and `duration` columns of the prepared cache (as Arrow, without decoding the
waveform or mel columns), so a table over hundreds of hours takes well under a second.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets import Dataset

from ..atomic import write_json_atomically
from .preprocess import PreparedData

logger = logging.getLogger(__name__)

MOST_HOURS = "most_hours"
SPEAKERS_FILE = "speakers.json"
SPEAKERS_FORMAT_VERSION = 1
# Common Voice client ids are 128 hex characters; this many are plenty to tell 450 speakers apart on screen.
SHORT_ID_LENGTH = 12
# A prefix shorter than this could match a speaker by accident (e.g. "1" for "12").
MIN_PREFIX_LENGTH = 8


@dataclass(frozen=True)
class SpeakerStats:
    """One speaker's share of a dataset.

    Args:
        speaker (`str`):
            The label in the `speaker` column (a Common Voice `client_id`, a metadata column, or the default speaker).
        clips (`int`):
            Number of clips.
        hours (`float`):
            Total audio of those clips, in hours (from the `duration` column, i.e. after trimming).
    """

    speaker: str
    clips: int
    hours: float

    @property
    def short_speaker(self) -> str:
        return shorten_speaker(self.speaker)


def shorten_speaker(speaker: str, length: int = SHORT_ID_LENGTH) -> str:
    """The first `length` characters of a long id followed by `…`; short ids unchanged."""
    return speaker if len(speaker) <= length + 1 else f"{speaker[:length]}…"


def _as_dataset(dataset: Dataset | PreparedData) -> Dataset:
    return dataset.dataset if isinstance(dataset, PreparedData) else dataset


def _speaker_durations(dataset: Dataset) -> pa.Table:
    """The `speaker` and `duration` (float64) columns as one-chunk Arrow arrays, in the dataset's row order."""
    missing = [column for column in ("speaker", "duration") if column not in dataset.column_names]
    if missing:
        raise ValueError(
            f"the dataset has no {' or '.join(repr(c) for c in missing)} column; speaker statistics need the prepared "
            f"cache of kurdish_tts.data.prepare_dataset (columns: {dataset.column_names})"
        )
    mapping = getattr(dataset, "_indices", None)
    indices = getattr(mapping, "table", None)
    if mapping is None or (isinstance(indices, pa.Table) and indices.num_columns == 1):
        # After `shuffle`/`select`, `datasets` gathers rows one Arrow chunk per row (200k rows: 1 s, then 3 s to group);
        # one `take` over its index column is 20 times faster. Falls back to the public route if that layout changes.
        table = dataset.data.table.select(["speaker", "duration"])
        if indices is not None:
            table = table.take(indices.column(0))
    else:
        table = dataset.select_columns(["speaker", "duration"]).with_format("arrow")[:]
    table = table.combine_chunks()
    return table.set_column(1, "duration", pc.cast(table["duration"], pa.float64()))


def _table_from_columns(columns: pa.Table) -> list[SpeakerStats]:
    if columns.num_rows == 0:
        return []
    grouped = columns.group_by("speaker").aggregate([("duration", "sum"), ("duration", "count")]).to_pydict()
    stats = [
        SpeakerStats(speaker, int(clips), float(seconds) / 3600)
        for speaker, seconds, clips in zip(grouped["speaker"], grouped["duration_sum"], grouped["duration_count"])
    ]
    return sorted(stats, key=lambda s: (-s.hours, s.speaker))


def speaker_table(dataset: Dataset | PreparedData) -> list[SpeakerStats]:
    """Clips and hours per speaker, most hours first (ties by speaker id, so the order is deterministic).

    Args:
        dataset (`datasets.Dataset` or `PreparedData`):
            A prepared dataset (only its `speaker` and `duration` columns are read).

    Returns:
        `list[SpeakerStats]`: one entry per speaker; empty for an empty dataset.
    """
    return _table_from_columns(_speaker_durations(_as_dataset(dataset)))


def _format_hours(hours: float) -> str:
    return f"{hours:.2f} h" if hours >= 1 else f"{hours * 60:.1f} min"


def format_speaker_table(table: list[SpeakerStats], limit: int | None = None, *, shorten: bool = True) -> str:
    """Human-readable lines `rank. speaker  duration  clips` for logs and error messages.

    Args:
        table (`list[SpeakerStats]`):
            From `speaker_table`.
        limit (`int`, *optional*):
            Show only the first `limit` speakers (and say how many are left out).
        shorten (`bool`, *optional*, defaults to `True`):
            Shorten long ids (`shorten_speaker`); any unique prefix of 8+ characters selects a speaker.
    """
    shown = table if limit is None else table[:limit]
    names = [(s.short_speaker if shorten else s.speaker) or '""' for s in shown]
    width = max((len(name) for name in names), default=0)
    lines = [
        f"{rank:>4}. {name:<{width}}  {_format_hours(s.hours):>9}  {s.clips:6d} clips"
        for rank, (name, s) in enumerate(zip(names, shown), start=1)
    ]
    if len(shown) < len(table):
        lines.append(f"      … and {len(table) - len(shown)} more")
    return "\n".join(lines)


def _find_speaker(table: list[SpeakerStats], speaker: str) -> SpeakerStats | None:
    for stats in table:
        if stats.speaker == speaker:
            return stats
    if len(speaker) < MIN_PREFIX_LENGTH:
        return None
    matches = [stats for stats in table if stats.speaker.startswith(speaker)]
    if len(matches) > 1:
        raise ValueError(
            f"speaker prefix {speaker!r} matches {len(matches)} speakers; give more characters:\n"
            + format_speaker_table(matches, limit=5, shorten=False)
        )
    return matches[0] if matches else None


def _select_rows(dataset: Dataset, speakers: pa.Table, keep: set[str]) -> Dataset:
    mask = pc.is_in(speakers["speaker"], value_set=pa.array(sorted(keep), type=pa.string()))
    indices = np.flatnonzero(mask.to_numpy(zero_copy_only=False))
    if len(indices) == len(dataset):
        return dataset
    # In memory: the index list is 8 bytes a row, and the default would write a cache file into the prepared cache.
    return dataset.select(indices, keep_in_memory=True)


def select_speaker(dataset: Dataset | PreparedData, speaker: str) -> tuple[Dataset, SpeakerStats]:
    """Keep only one speaker's clips, for training a single voice.

    Args:
        dataset (`datasets.Dataset` or `PreparedData`):
            A prepared dataset.
        speaker (`str`):
            A speaker id, a unique prefix of one (at least 8 characters, as `format_speaker_table` shows long ids),
            or `"most_hours"` for the speaker with the most audio.

    Returns:
        `tuple[datasets.Dataset, SpeakerStats]`: the speaker's rows (in their original order) and their statistics.

    Raises:
        `ValueError`: for an empty dataset, or a speaker that is not in it; the message lists the five speakers with
        the most hours and how to list all of them.
    """
    dataset = _as_dataset(dataset)
    speakers = _speaker_durations(dataset)
    table = _table_from_columns(speakers)
    if not table:
        raise ValueError("the dataset has no clips, so there is no speaker to select")
    chosen = table[0] if speaker == MOST_HOURS else _find_speaker(table, speaker)
    if chosen is None:
        raise ValueError(
            f"speaker {shorten_speaker(speaker, 40)!r} is not in the dataset; the {min(5, len(table))} speakers with "
            f"the most hours (of {len(table)}):\n{format_speaker_table(table, limit=5)}\n"
            f"Pass one of these ids (a unique prefix of {MIN_PREFIX_LENGTH}+ characters is enough) or {MOST_HOURS!r}. "
            "List all speakers with `print(format_speaker_table(speaker_table(dataset)))` from kurdish_tts.data."
        )
    selected = _select_rows(dataset, speakers, {chosen.speaker})
    logger.info(
        "Training one voice: speaker %s, %d clips, %.2f h (%d other speakers left out)",
        chosen.short_speaker,
        chosen.clips,
        chosen.hours,
        len(table) - 1,
    )
    return selected, chosen


def build_speaker_to_id(dataset: Dataset | PreparedData, min_clips: int = 1) -> dict[str, int]:
    """Number the speakers with at least `min_clips` clips: 0 for the most hours, ties by speaker id.

    The numbering depends only on the data, never on row order or hashing, so every process of a distributed run and
    every rerun gets the same map.

    Args:
        dataset (`datasets.Dataset` or `PreparedData`):
            A prepared dataset (the training split: these ids become embedding rows).
        min_clips (`int`, *optional*, defaults to `1`):
            Speakers with fewer clips get no id; remove their clips with `filter_speakers`.

    Returns:
        `dict[str, int]`: speaker → embedding id, ids `0..n-1`, in id order.
    """
    if min_clips < 1:
        raise ValueError(f"min_clips must be at least 1, got {min_clips}")
    table = speaker_table(dataset)
    kept = [stats.speaker for stats in table if stats.clips >= min_clips]
    if not kept:
        most = max((s.clips for s in table), default=0)
        raise ValueError(
            f"no speaker has {min_clips} or more clips (the most any of the {len(table)} speakers has is {most})"
        )
    return {speaker: index for index, speaker in enumerate(kept)}


def filter_speakers(dataset: Dataset | PreparedData, speaker_to_id: dict[str, int]) -> tuple[Dataset, int]:
    """Drop the clips of speakers that have no embedding id, and say how many went.

    Args:
        dataset (`datasets.Dataset` or `PreparedData`):
            A prepared dataset.
        speaker_to_id (`dict[str, int]`):
            From `build_speaker_to_id` (or `load_speaker_map`).

    Returns:
        `tuple[datasets.Dataset, int]`: the remaining rows (original order; the same object when nothing is dropped)
        and the number of clips dropped. A non-zero count is also logged as a warning, with speakers and hours.
    """
    dataset = _as_dataset(dataset)
    speakers = _speaker_durations(dataset)
    kept = _select_rows(dataset, speakers, set(speaker_to_id))
    dropped = len(dataset) - len(kept)
    if dropped:
        known = pc.is_in(speakers["speaker"], value_set=pa.array(sorted(speaker_to_id), type=pa.string()))
        unknown = speakers.filter(pc.invert(known))
        hours = pc.sum(unknown["duration"]).as_py() / 3600
        logger.warning(
            "Dropped %d of %d clips (%.2f h) from %d speakers that have no speaker id (too few clips, or not in the "
            "speaker map); %d clips remain",
            dropped,
            len(dataset),
            hours,
            len(pc.unique(unknown["speaker"])),
            len(kept),
        )
    return kept, dropped


def _speakers_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path if path.suffix == ".json" else path / SPEAKERS_FILE


def _check_ids(speaker_to_id: dict[str, int]) -> None:
    ids = sorted(speaker_to_id.values())
    if ids != list(range(len(ids))):
        raise ValueError(
            f"speaker ids must be 0..{len(ids) - 1}, each once; got {ids[:10]}{'…' if len(ids) > 10 else ''}"
        )


def save_speaker_map(
    save_directory: str | os.PathLike, speaker_to_id: dict[str, int], table: list[SpeakerStats] | None = None
) -> Path:
    """Write `speakers.json` (speaker → id, plus clips and hours) next to a model, atomically.

    The file is written under a temporary name and renamed, so a reader (or a crash) never sees half a file.

    Args:
        save_directory (`str` or `os.PathLike`):
            The model directory (created if missing), or a path ending in `.json`.
        speaker_to_id (`dict[str, int]`):
            Ids `0..n-1`.
        table (`list[SpeakerStats]`, *optional*):
            From `speaker_table` of the training data; adds each speaker's clips and hours (else `null`).

    Returns:
        `Path`: the written file.
    """
    _check_ids(speaker_to_id)
    stats = {s.speaker: s for s in table or []}
    entries = []
    for speaker, index in sorted(speaker_to_id.items(), key=lambda item: item[1]):
        known = stats.get(speaker)
        entries.append(
            {
                "speaker": speaker,
                "id": index,
                "clips": known.clips if known else None,
                "hours": round(known.hours, 6) if known else None,
            }
        )
    content = {"format_version": SPEAKERS_FORMAT_VERSION, "num_speakers": len(entries), "speakers": entries}
    path = _speakers_path(save_directory)
    return write_json_atomically(path, content)


def load_speaker_map(path: str | os.PathLike) -> dict[str, int]:
    """Read the speaker → id map written by `save_speaker_map`.

    Args:
        path (`str` or `os.PathLike`):
            The model directory holding `speakers.json`, or the file itself.

    Returns:
        `dict[str, int]`: speaker → id, in id order.
    """
    path = _speakers_path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no speaker map at {path}; a multi-speaker model saves one with save_speaker_map")
    content = json.loads(path.read_text(encoding="utf-8"))
    if content.get("format_version") != SPEAKERS_FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported speakers.json format_version {content.get('format_version')!r}")
    speaker_to_id = {entry["speaker"]: int(entry["id"]) for entry in content["speakers"]}
    if len(speaker_to_id) != len(content["speakers"]):
        raise ValueError(f"{path}: a speaker appears more than once")
    _check_ids(speaker_to_id)
    return dict(sorted(speaker_to_id.items(), key=lambda item: item[1]))
