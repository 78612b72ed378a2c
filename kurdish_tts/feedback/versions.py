"""Model versions of a feedback store: immutable copies, and a `current` pointer that moves atomically.

```
feedback/models/
    v0001/              a complete model folder (stock VitsModel + tokenizer + discriminator.safetensors), never changed
    v0001.json          its record: where it came from, the run whose data it replays, its regression set, its report
    v0002/  v0002.json
    current.txt         the version in use, `v0002`: the pointer, on every platform
    current -> v0002    a symbolic link that follows it where the system allows links, for
                        `VitsModel.from_pretrained("feedback/models/current")`
    history.json        every import, promotion, refusal and rollback, oldest first
```

A version folder is copied under a temporary name and renamed when complete, and `current.txt` is replaced atomically
(a new file renamed over it), so a reader always finds a complete model. Windows creates symbolic links only with
Developer Mode or administrator rights, so the pointer is a small text file and the link is a convenience: where
`os.symlink` fails it is not made (a stale one is removed), and `ModelVersions.current_path()` names the folder. A
store made before `current.txt` existed is read through its link. Versions are never modified or deleted: a rollback
moves the pointer back to the version that the current one replaced, so that model returns byte for byte; rolling
forward again is `rollback --to` the newer version. Every change holds the store's write lock.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from datetime import datetime, timezone
from pathlib import Path

from ..atomic import write_json_atomically, write_text_atomically
from .store import FeedbackStore
from .validation import FeedbackError

logger = logging.getLogger(__name__)

MODELS_DIR = "models"
CURRENT_NAME = "current"
POINTER_NAME = "current.txt"
HISTORY_NAME = "history.json"
_VERSION_NAME = re.compile(r"^v(\d{4,})$")


class VersionConflict(FeedbackError):
    """The current model changed while a new version was being made (another `train` or a `rollback` ran)."""


class ModelVersions:
    """The versioned models of a feedback store (see the module docstring for the layout).

    Example:

    ```python
    >>> versions = ModelVersions(FeedbackStore("feedback"))
    >>> versions.add("runs/demo/best_model", {"kind": "imported"}, make_current=True, event="imported")
    'v0001'
    >>> versions.rollback()  # back to what the current version replaced
    ('v0002', 'v0001')
    ```
    """

    def __init__(self, store: FeedbackStore):
        self.store = store
        self.root = store.root / MODELS_DIR

    def names(self) -> list[str]:
        """The versions, oldest first."""
        if not self.root.is_dir():
            return []
        found = [entry.name for entry in os.scandir(self.root) if entry.is_dir(follow_symlinks=False)]
        return sorted((name for name in found if _VERSION_NAME.match(name)), key=_number)

    def path(self, version: str) -> Path:
        return self.root / version

    def record(self, version: str) -> dict:
        try:
            return json.loads((self.root / f"{version}.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}

    def current(self) -> str | None:
        """The version in use, or `None` before the first one."""
        try:
            version = (self.root / POINTER_NAME).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            version = None
        if version:
            return version
        try:
            # A store from before the pointer file: its link was the pointer.
            return os.path.basename(os.readlink(self.root / CURRENT_NAME))
        except (FileNotFoundError, OSError, ValueError):
            return None

    def current_path(self) -> Path | None:
        current = self.current()
        return None if current is None else self.path(current)

    def find(self, model_dir: str | os.PathLike) -> str | None:
        """The version a folder is, when it is one of this store's (through `current` or directly)."""
        resolved = Path(model_dir).resolve()
        if resolved.parent == self.root.resolve() and _VERSION_NAME.match(resolved.name):
            return resolved.name
        return None

    def history(self) -> list[dict]:
        try:
            return json.loads((self.root / HISTORY_NAME).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []

    # Changes (each under the store's lock)

    def add(
        self,
        model_dir: str | os.PathLike,
        record: dict,
        *,
        make_current: bool,
        event: str = "added",
        expected_current: str | None = None,
        check_current: bool = False,
    ) -> str:
        """Copy a model folder in as the next version; with `make_current`, point `current` at it.

        Args:
            model_dir (`str` or `os.PathLike`):
                A complete model folder.
            record (`dict`):
                Written to `vNNNN.json` with `version`, `created` and `replaces` (the version current before) added.
            make_current (`bool`):
                Whether the new version becomes the model in use.
            event (`str`, *optional*, defaults to `"added"`):
                What `history.json` calls the change (`imported`, `promoted`).
            expected_current (`str`, *optional*), check_current (`bool`, *optional*, defaults to `False`):
                With `check_current`, raise `VersionConflict` (and add nothing) unless `current` is still
                `expected_current`: a promotion must not replace a model it was never compared with.

        Returns:
            `str`: the new version's name.
        """
        with self.store.lock():
            current = self.current()
            if check_current and current != expected_current:
                raise VersionConflict(
                    f"the current model changed from {expected_current} to {current} during this run (another train "
                    "or a rollback); nothing was promoted: run train again to compare with the new current model"
                )
            names = self.names()
            version = f"v{(_number(names[-1]) + 1) if names else 1:04d}"
            temporary = self.root / f".{version}.tmp-{os.getpid()}"
            shutil.rmtree(temporary, ignore_errors=True)
            try:
                shutil.copytree(model_dir, temporary)
                _sync_tree(temporary)
                write_json_atomically(
                    self.root / f"{version}.json",
                    {
                        **record,
                        "version": version,
                        "created": _now(),
                        "replaces": current if make_current else None,
                    },
                )
                os.replace(temporary, self.path(version))
            except BaseException:
                shutil.rmtree(temporary, ignore_errors=True)
                raise
            if make_current:
                self._point(version)
            self._log({"event": event, "version": version, "previous": current})
        return version

    def rollback(self, to: str | None = None) -> tuple[str, str]:
        """Point `current` at `to`, or at the version the current one replaced. Returns `(previous, new)`."""
        with self.store.lock():
            current = self.current()
            if current is None:
                raise FeedbackError(f"{self.root} holds no model versions yet; `train` makes the first ones")
            if to is None:
                to = self.record(current).get("replaces")
                if to is None:
                    raise FeedbackError(
                        f"{current} replaced no earlier version: there is nothing to roll back to "
                        f"(versions: {', '.join(self.names())})"
                    )
            if to not in self.names():
                raise FeedbackError(f"no version {to!r} in {self.root}; the versions are {', '.join(self.names())}")
            self._point(to)
            self._log({"event": "rollback", "version": to, "previous": current})
        return current, to

    def log_event(self, event: dict) -> None:
        """Add an event (e.g. a refused promotion) to `history.json`."""
        with self.store.lock():
            self._log(event)

    def _point(self, version: str) -> None:
        write_text_atomically(self.root / POINTER_NAME, version + "\n")
        link = self.root / CURRENT_NAME
        temporary = self.root / f".{CURRENT_NAME}.tmp-{os.getpid()}"
        _remove_link(temporary)
        try:
            # Relative, so the store can be moved or copied as a whole.
            os.symlink(version, temporary, target_is_directory=True)
            os.replace(temporary, link)
        except OSError as error:
            # Windows without Developer Mode (WinError 1314), or a file system without links: the pointer file is
            # enough; a link left from elsewhere would name the wrong model.
            _remove_link(temporary)
            _remove_link(link)
            logger.info(f"{link} is not a link to {version} ({error}); {self.root / POINTER_NAME} names it")
        _sync_directory(self.root)

    def _log(self, event: dict) -> None:
        write_json_atomically(self.root / HISTORY_NAME, [*self.history(), {"time": _now(), **event}])


def _number(version: str) -> int:
    return int(_VERSION_NAME.match(version).group(1))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _sync_tree(folder: Path) -> None:
    # The rename that publishes a version is atomic; this makes sure the files behind it are on disk first.
    for root, _, files in os.walk(folder):
        for name in files:
            with open(os.path.join(root, name), "rb") as handle:
                os.fsync(handle.fileno())
    _sync_directory(folder)


def _remove_link(path: Path) -> None:
    """Remove a symbolic link (or Windows junction) at `path`, never a real folder or file."""
    is_junction = getattr(os.path, "isjunction", lambda _: False)(path)
    if not (os.path.islink(path) or is_junction):
        return
    try:
        os.unlink(path)
    except (IsADirectoryError, PermissionError):
        # A directory link on Windows is removed as a directory (its target stays).
        os.rmdir(path)


def _sync_directory(folder: Path) -> None:
    # Makes a rename in `folder` durable. Windows cannot open a folder to sync it; its renames are journaled anyway.
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except (PermissionError, IsADirectoryError):
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
