"""Atomic file writes: a reader, or a run resumed after a crash, sees the old file or the new one, never half of one.

Every file the package writes for others to read (audio, images, reports, JSON records, weights) goes through here.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path next to `path` to write to; when the block ends without an error it replaces `path`, otherwise
    it is removed. Parent folders are created.

    The temporary file is in the target's folder, so `os.replace` is a rename on one filesystem, which is atomic, and
    it keeps the target's suffix, for writers that choose the format from it.

    Example:

    ```python
    >>> with atomic_path("report.png") as tmp:
    ...     figure.savefig(tmp)
    ```
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(descriptor)
    # mkstemp creates 0600 files, which would hide the outputs from other users of a shared folder.
    os.chmod(temporary, 0o644)
    try:
        yield Path(temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_bytes_atomically(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically, synced to disk before the rename (checkpoints must survive a power cut)."""
    with atomic_path(path) as temporary, open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return Path(path)


def write_text_atomically(path: str | os.PathLike, text: str) -> Path:
    return write_bytes_atomically(path, text.encode("utf-8"))


def write_json_atomically(path: str | os.PathLike, values, **dumps_kwargs) -> Path:
    """`values` as indented UTF-8 JSON with a final newline; `dumps_kwargs` go to `json.dumps`."""
    text = json.dumps(values, **{"indent": 2, "ensure_ascii": False, **dumps_kwargs}) + "\n"
    return write_text_atomically(path, text)
