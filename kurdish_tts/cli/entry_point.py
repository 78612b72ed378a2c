"""The one place where every command turns what a user can cause into a message and an exit status.

Each command's `main(argv) -> int` is wrapped by `entry_point`, so `kurdish-tts prepare ...`, `python
scripts/prepare_data.py ...` and `prepare_data.main([...])` from Python behave alike:

| what happened | what the user sees | exit status |
| --- | --- | --- |
| a usage mistake: unknown flag, bad value, missing argument, conflicting options | `error: ...` on one line, with a pointer to `--help` | 2 |
| a bad input file: not UTF-8, malformed, unreadable, missing | `error: ...` naming the file (and line) and what to do | 2 |
| a folder the command must write is a file, or not writable | `error: ...` naming it and what to do | 2 |
| the disk is full, or another system error with a file name | `error: ...` naming the file | 1 |
| Ctrl-C | `interrupted` | 130 |

Anything else is a bug in this package and keeps its traceback. The parsers (`CommandParser` for the dataclass
commands, `OneLineArgumentParser` for the plain argparse ones) raise `UsageError` instead of printing argparse's
usage block (hundreds of lines for the training commands) and exiting.
"""

from __future__ import annotations

import argparse
import difflib
import errno
import functools
import os
import sys
from pathlib import Path

import yaml
from transformers import HfArgumentParser

from ..errors import UsageError, UserError, read_text

INTERRUPTED_EXIT_CODE = 130

# System errors a user causes with a path they gave (exit 2), as opposed to the machine failing the work (exit 1).
_PATH_ERRORS = {
    errno.ENOENT: "it does not exist: check the path",
    errno.ENOTDIR: "a part of the path is a file, not a folder: check the path",
    errno.EISDIR: "it is a folder where a file is expected: give the file's path",
    errno.EEXIST: "something is already there: choose another path or move it away",
    errno.EACCES: "permission denied: choose a path you can write to, or change its permissions",
    errno.EPERM: "operation not permitted: choose a path you can write to, or change its permissions",
    errno.EROFS: "the file system is read-only: choose another path",
    errno.ENAMETOOLONG: "the path is too long: choose a shorter one",
}
_MACHINE_ERRORS = {
    errno.ENOSPC: "no space left on the device: free some space (or point --output_dir/--cache_dir elsewhere) and "
    "run again",
    errno.EDQUOT: "disk quota exceeded: free some space and run again",
}


def entry_point(main):
    """Wrap a command's `main(argv=None, **kwargs) -> int` (see the module docstring for what it catches)."""

    @functools.wraps(main)
    def wrapped(*args, **kwargs) -> int:
        try:
            return main(*args, **kwargs)
        except SystemExit as exit_:
            # argparse's --help (0); anything else that exits on purpose keeps its status.
            if exit_.code is None or isinstance(exit_.code, int):
                return exit_.code or 0
            return _fail(exit_.code, 1)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return INTERRUPTED_EXIT_CODE
        except UserError as error:
            return _fail(error, error.exit_code)
        except UnicodeDecodeError as error:
            # The readers of the package's own inputs name the file (`kurdish_tts.errors.read_text`); this is a file
            # read by a library (a tokenizer's vocabulary, a dataset's metadata), which does not say which one.
            return _fail(
                f"a text file is not UTF-8 ({error}); save the inputs this command reads (transcripts, metadata, "
                "recipes, vocabularies) as UTF-8 and run again",
                2,
            )
        except OSError as error:
            code, message = describe_os_error(error)
            if message is None:
                raise
            return _fail(message, code)

    return wrapped


def describe_os_error(error: OSError) -> tuple[int, str | None]:
    """`(exit status, message)` for a system error about a file, or `(1, None)` when it names no file (a bug, or a
    failure this package should have caught where it happened)."""
    if error.errno in _MACHINE_ERRORS:
        where = f"{error.filename}: " if error.filename else ""
        return 1, f"{where}{_MACHINE_ERRORS[error.errno]}"
    if error.filename is None:
        return 1, None
    names = str(error.filename) + (f" -> {error.filename2}" if error.filename2 else "")
    advice = _PATH_ERRORS.get(error.errno)
    if advice is None:
        return 1, f"{names}: {error.strerror or error}"
    return 2, f"{names}: {advice}"


def _fail(message, code: int) -> int:
    print(f"error: {message}", file=sys.stderr, flush=True)
    return code


class OneLineErrors:
    """argparse errors as a `UsageError` of one line (what was wrong, and where `--help` is), not a usage block and
    `SystemExit`."""

    def error(self, message: str):
        raise UsageError(f"{message} (see `{self.prog} --help`)")


class OneLineArgumentParser(OneLineErrors, argparse.ArgumentParser):
    """`argparse.ArgumentParser` whose mistakes raise `UsageError`; its subparsers are of the same kind."""


class CommandParser(OneLineErrors, HfArgumentParser):
    """`HfArgumentParser` whose every mistake, including what the dataclasses' own checks refuse, is a `UsageError`.

    Unknown flags are named, with the closest known flag when there is one (`--learnig_rate`: did you mean
    `--learning_rate`?).
    """

    def __init__(self, dataclass_types, **kwargs):
        # No abbreviations: a typo must not silently become another flag that happens to share its prefix.
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(dataclass_types, **kwargs)

    def parse_args_into_dataclasses(self, args=None, return_remaining_strings: bool = False, **kwargs):
        try:
            # No `<script>.args` file read behind the user's back (HfArgumentParser's default).
            kwargs.setdefault("look_for_args_file", False)
            *outputs, remaining = super().parse_args_into_dataclasses(
                args=args, return_remaining_strings=True, **kwargs
            )
        except UserError:
            raise
        except ValueError as error:
            # The dataclasses' `__post_init__` checks (TrainingArguments and ours): the message names the argument.
            raise UsageError(f"{_one_line(error)} (see `{self.prog} --help`)") from None
        if return_remaining_strings:
            return (*outputs, remaining)
        if remaining:
            raise UsageError(self.unknown_arguments_message(remaining))
        return tuple(outputs)

    def unknown_arguments_message(self, remaining: list[str]) -> str:
        flags = [item for item in remaining if item.startswith("-")]
        if not flags:
            return f"unexpected argument(s) {' '.join(remaining)} (see `{self.prog} --help`)"
        known = [option for action in self._actions for option in action.option_strings]
        hints = []
        for flag in flags:
            close = difflib.get_close_matches(flag.split("=", 1)[0], known, n=1, cutoff=0.75)
            if close:
                hints.append(f"{flag}: did you mean {close[0]}?")
        message = f"unknown option(s) {' '.join(flags)}"
        if hints:
            message += " (" + "; ".join(hints) + ")"
        return f"{message}; see `{self.prog} --help` for the options"

    def parse_yaml_recipe(self, path: str | os.PathLike):
        """The dataclasses from a YAML file of `name: value` lines, read as UTF-8 on every platform."""
        try:
            values = yaml.safe_load(read_text(path))
        except yaml.YAMLError as error:
            raise UsageError(f"{path} is not valid YAML: {_one_line(error)}") from None
        if not isinstance(values, dict):
            raise UsageError(f"{path} must be a mapping of argument names to values")
        unknown = sorted(set(values) - {action.dest for action in self._actions})
        if unknown:
            raise UsageError(f"{path} sets unknown argument(s): {', '.join(unknown)}; see `{self.prog} --help`")
        try:
            return self.parse_dict(values)
        except ValueError as error:
            raise UsageError(f"{path}: {_one_line(error)}") from None


def check_output_folder(path: str | os.PathLike | None, flag: str) -> None:
    """Refuse, before any work, a folder to write that cannot be one: an existing file, a path through a file, or a
    place this user cannot write to."""
    if path is None:
        return
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {path} is a file, not a folder: give a folder (it is created if missing)")
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing != path and existing.exists() and not existing.is_dir():
        raise UsageError(f"{flag} {path}: {existing} is a file, so no folder can be made under it; give another path")
    if existing.is_dir() and not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path}: {existing} is not writable by this user; give a folder you can write to")


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())
