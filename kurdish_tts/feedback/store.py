"""The feedback store: listeners' corrections (a recording and the sentence it says), validated, deduplicated and kept
in a folder that `datasets` reads as it is.

```
feedback/                   the store (`--store`, default `feedback`)
    metadata.jsonl          the manifest: one JSON object per item, `file_name` first (the audiofolder layout)
    audio/<id>.wav          16 kHz mono 16-bit PCM, decoded and resampled once, when the item was added
    models/                 model versions and the `current` pointer (`kurdish_tts.feedback.versions`)
    runs/<time>/            one folder per `train`: report.json, report.md, the candidate model
    .lock                   the lock that writers hold (`filelock.FileLock`: flock on Unix, LockFileEx on Windows)
```

Reading it:

```python
>>> datasets.load_dataset("json", data_files="feedback/metadata.jsonl", split="train")
>>> kurdish_tts.data.load_source("feedback", text_column="text", speaker_column="speaker", id_column="id")
```

Consistency. The manifest is the truth: an item exists when its line is in `metadata.jsonl`. Writers (add, remove, and
the model versions' promote and rollback) hold an exclusive lock on `.lock` for their whole read-modify-write, so
concurrent `add`s from several processes are serialized and none is lost. The lock is `filelock.FileLock` (installed
with huggingface_hub and datasets), an operating-system lock on every platform (`flock` on Linux and macOS,
`LockFileEx` on Windows): the system drops the lock of a process that dies, so a crash never leaves a stale lock
behind. Every file is replaced atomically (`kurdish_tts.atomic`), the audio
first and the manifest last, so a reader sees the store before or after a change, never half of one. Audio that a
failing writer had already written is deleted before the error propagates, and what a killed writer left is deleted
by the next writer. Readers (list, stats, train) take no lock.

Duplicates. An item is identified by a hash of its decoded, resampled 16-bit samples, not of the file's bytes: the
same recording sent once as WAV and once as FLAC, or with different tags, is the same item. Its id is `fb-` and the
first hex digits of that hash; the prefix keeps feedback ids apart from the ids of the original corpus, which share
the training set and the quarantine list.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from filelock import FileLock, Timeout

from ..atomic import write_text_atomically
from ..audio.io import write_audio
from ..data.sources import DEFAULT_SPEAKER, LoadedSource, load_source
from ..errors import read_json_lines
from ..text import load_tokenizer
from .validation import FeedbackError, FeedbackInput, FeedbackValidationConfig, Rejection, ValidatedClip, validate_clip

logger = logging.getLogger(__name__)

MANIFEST_NAME = "metadata.jsonl"
AUDIO_DIR = "audio"
LOCK_NAME = ".lock"
ID_PREFIX = "fb-"
ID_DIGITS = 10


@dataclass
class AddResult:
    """What an `add` did: the manifest rows added, the inputs already in the store, the inputs rejected."""

    added: list[dict] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (source, id of the stored item)
    rejected: list[Rejection] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class FeedbackStore:
    """A folder of corrections with a manifest that `datasets` loads (see the module docstring for the layout).

    Example:

    ```python
    >>> store = FeedbackStore("feedback")
    >>> result = store.add("fix.wav", "Roj baş, ez bi kurmancî diaxivim.", tokenizer="runs/demo/best_model")
    >>> result.added[0]["id"], result.rejected
    ('fb-3f2a9c1b0e', [])
    >>> store.remove(["fb-3f2a9c1b0e"])
    ```

    Args:
        root (`str` or `os.PathLike`):
            The store's folder; created by the first `add`.
        lock_timeout (`float`, *optional*, defaults to `120.0`):
            Seconds a writer waits for another one before giving up.
    """

    def __init__(self, root: str | os.PathLike, *, lock_timeout: float = 120.0):
        self.root = Path(root)
        self.lock_timeout = lock_timeout

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST_NAME

    @property
    def audio_dir(self) -> Path:
        return self.root / AUDIO_DIR

    def exists(self) -> bool:
        return self.manifest_path.is_file()

    # Reading

    def items(self) -> list[dict]:
        """The manifest's rows, in the order they were added; `[]` for a store that does not exist yet."""
        try:
            return read_json_lines(
                self.manifest_path, error=FeedbackError, fix="it was edited by hand: fix or delete that line"
            )
        except FileNotFoundError:
            return []

    def stats(self) -> dict:
        """Counts and durations, overall and per speaker."""
        rows = self.items()
        durations = np.asarray([row["duration"] for row in rows], dtype=np.float64)
        speakers: dict[str, dict] = {}
        for row in rows:
            entry = speakers.setdefault(row["speaker"], {"items": 0, "seconds": 0.0})
            entry["items"] += 1
            entry["seconds"] += row["duration"]
        return {
            "store": str(self.root),
            "items": len(rows),
            "seconds": float(durations.sum()),
            "duration": None
            if not rows
            else {"min": float(durations.min()), "mean": float(durations.mean()), "max": float(durations.max())},
            "speakers": dict(sorted(speakers.items())),
        }

    def load_source(self) -> LoadedSource:
        """The items as a data source of the common schema (`id`, `audio`, `text`, `speaker`), for `prepare_dataset`."""
        # Under the lock, so that the fingerprint below describes exactly the rows read.
        with self.lock():
            if not self.items():
                raise FeedbackError(f"{self.root} holds no feedback items; add some with `add` or `add-dir` first")
            source = load_source(str(self.root), text_column="text", speaker_column="speaker", id_column="id")
            manifest = self.manifest_path.read_bytes()
        # The manifest names every item's samples by their hash, so its bytes identify the source: the same items
        # reuse the same preprocessing cache (the loader's own fingerprint of an in-memory table changes every time).
        source.fingerprint = hashlib.sha256(manifest).hexdigest()[:16]
        return source

    # Writing

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the store's exclusive write lock (not re-entrant: a nested `lock()` in one process waits forever)."""
        self.root.mkdir(parents=True, exist_ok=True)
        lock = FileLock(self.root / LOCK_NAME)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            logger.warning(
                f"waiting for {self.root}: another feedback command is writing to it (up to {self.lock_timeout:g} s)"
            )
            try:
                lock.acquire(timeout=self.lock_timeout, poll_interval=0.02)
            except Timeout:
                raise FeedbackError(
                    f"{self.root} stayed locked by another feedback command for {self.lock_timeout:g} s; let it "
                    "finish, then try again"
                ) from None
        try:
            yield
        finally:
            lock.release()

    def add(self, audio, text: str, *, speaker: str | None = None, note: str | None = None, **kwargs) -> AddResult:
        """Validate and add one recording; `kwargs` go to `add_many`."""
        return self.add_many([FeedbackInput(audio, text, speaker, note)], **kwargs)

    def add_many(
        self, inputs: Sequence[FeedbackInput], *, tokenizer, config: FeedbackValidationConfig | None = None
    ) -> AddResult:
        """Validate every input (no lock held: decoding is the slow part), then add the valid ones in one transaction.

        Each input is added or rejected on its own. An input whose audio is already stored with the same text is a
        duplicate, skipped; with another text it is rejected (the stored item must be removed to change its text).

        Args:
            inputs (`Sequence[FeedbackInput]`):
                The corrections.
            tokenizer (`VitsTokenizer` or `str`):
                The tokenizer (or its name or folder) of the model the items will train.
            config (`FeedbackValidationConfig`, *optional*):
                Bounds; the defaults when omitted.
        """
        config = config or FeedbackValidationConfig()
        if isinstance(tokenizer, str):
            tokenizer = load_tokenizer(tokenizer)
        result = AddResult()
        valid = []
        for item in inputs:
            checked = validate_clip(item.audio, item.text, tokenizer=tokenizer, config=config, source=item.source)
            if isinstance(checked, Rejection):
                result.rejected.append(checked)
                continue
            if checked.stripped:
                marks = "".join(sorted(checked.stripped))
                result.notes.append(f"{item.source}: the model cannot speak {marks!r}; removed from the text")
            valid.append((item, checked))
        self.add_validated(valid, config=config, result=result)
        return result

    def add_validated(
        self,
        clips: Sequence[tuple[FeedbackInput, ValidatedClip]],
        *,
        config: FeedbackValidationConfig | None = None,
        result: AddResult | None = None,
    ) -> AddResult:
        """Add inputs already checked with `validate_clip` (with the same `config`), in one transaction.

        For callers that validate while the user records, to answer at once, and store later.
        """
        config = config or FeedbackValidationConfig()
        result = result if result is not None else AddResult()
        if clips:
            with self.lock():
                self._commit(clips, config, result)
        return result

    def remove(self, ids: Sequence[str]) -> list[dict]:
        """Remove items by id, all or none: an unknown id removes nothing. Returns the removed rows."""
        with self.lock():
            rows = self.items()
            wanted = set(ids)
            unknown = sorted(wanted - {row["id"] for row in rows})
            if unknown:
                raise FeedbackError(f"no item {', '.join(unknown)} in {self.root}; `list` shows the ids")
            removed = [row for row in rows if row["id"] in wanted]
            self._write_manifest([row for row in rows if row["id"] not in wanted])
            # After the manifest: until then the rows still refer to their audio.
            for row in removed:
                (self.root / row["file_name"]).unlink(missing_ok=True)
        return removed

    def _commit(self, valid: list[tuple[FeedbackInput, ValidatedClip]], config, result: AddResult) -> None:
        rows = self.items()
        self._sweep(rows)
        by_hash = {row["audio_sha1"]: row for row in rows}
        ids = {row["id"] for row in rows}
        new_rows, written = [], []
        try:
            for item, clip in valid:
                stored = by_hash.get(clip.audio_sha1)
                if stored is not None:
                    if stored["normalized_text"] == clip.normalized_text:
                        result.duplicates.append((item.source, stored["id"]))
                    else:
                        result.rejected.append(
                            Rejection(
                                item.source,
                                "duplicate_audio",
                                f"the same recording is already stored as {stored['id']} with the text "
                                f"{stored['text']!r}; to change that text, `remove {stored['id']}` and add it again",
                            )
                        )
                    continue
                item_id = _new_id(clip.audio_sha1, ids)
                file_name = f"{AUDIO_DIR}/{item_id}.wav"
                # int16 samples are written as they are: the stored file decodes to exactly what was validated.
                write_audio(self.root / file_name, clip.pcm, config.sampling_rate)
                written.append(self.root / file_name)
                row = {
                    "file_name": file_name,
                    "id": item_id,
                    "text": item.text.strip(),
                    "normalized_text": clip.normalized_text,
                    "speaker": item.speaker or DEFAULT_SPEAKER,
                    "note": item.note or "",
                    "duration": round(clip.duration, 3),
                    "sampling_rate": config.sampling_rate,
                    "audio_sha1": clip.audio_sha1,
                    "source": item.source,
                    "added": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                }
                new_rows.append(row)
                by_hash[clip.audio_sha1] = row
                ids.add(item_id)
            if new_rows:
                self._write_manifest(rows + new_rows)
        except BaseException:
            for path in written:
                path.unlink(missing_ok=True)
            raise
        result.added.extend(new_rows)

    def _write_manifest(self, rows: list[dict]) -> None:
        text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        write_text_atomically(self.manifest_path, text)

    def _sweep(self, rows: list[dict]) -> None:
        """Delete audio no row refers to: left by a writer killed between its audio and its manifest."""
        if not self.audio_dir.is_dir():
            return
        referenced = {Path(row["file_name"]).name for row in rows}
        for entry in os.scandir(self.audio_dir):
            if entry.name not in referenced and entry.is_file(follow_symlinks=False):
                logger.info(f"removing {entry.path}: left by an interrupted add")
                os.unlink(entry.path)


def _new_id(audio_sha1: str, taken: set[str]) -> str:
    # Ten hex digits make a collision between two different recordings unlikely, not impossible; then take more.
    digits = ID_DIGITS
    while f"{ID_PREFIX}{audio_sha1[:digits]}" in taken:
        digits += 2
    return f"{ID_PREFIX}{audio_sha1[:digits]}"
