"""The errors a user can cause, and reading the text files a user wrote.

Every command turns a `UserError` into its message and exit status, without a traceback
(`kurdish_tts.cli.entry_point`); anything else that escapes a command is a bug and keeps its traceback. A `UserError`'s
message says what was wrong and what to do; for a file, it names the file and, where it can, the line.

Text files that people write by hand or export from a spreadsheet (`metadata.csv`, Common Voice TSVs, recipes, the
`x.txt` of a feedback pair) are often saved in a legacy encoding. `read_text` reads them as UTF-8 and, when a byte is
not UTF-8, says where and how to convert the file, instead of a bare `UnicodeDecodeError`.
"""

from __future__ import annotations

import codecs
import json
import os
from pathlib import Path


class UserError(Exception):
    """Something the user can fix: bad arguments, a bad or missing file, a folder in the way.

    Attributes:
        exit_code (`int`): the status a command exits with (2: bad arguments or inputs; 1: the work failed).
    """

    exit_code = 2


class UsageError(UserError, ValueError):
    """Bad arguments or inputs: the message says what was wrong and what to do (exit status 2)."""


class InputFileError(UserError, ValueError):
    """A file the user gave cannot be used: the message names the file, the line when there is one, and the fix."""


def read_text(path: str | os.PathLike, *, error: type[UserError] = InputFileError) -> str:
    """The UTF-8 text of `path` (a byte-order mark is dropped).

    Raises:
        `error` (an `InputFileError` by default): the file is not UTF-8; the message names the line and column of the
            first bad byte, shows that line, and says how to convert the file.
        `FileNotFoundError`, `PermissionError`, ...: as `open` does; commands report them with the path.
    """
    data = Path(path).read_bytes()
    # Dropped by hand rather than by the "utf-8-sig" codec, whose error positions would not count the mark.
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as decode_error:
        raise error(not_utf8_message(path, data, decode_error)) from None


def read_json_lines(
    path: str | os.PathLike,
    *,
    fix: str,
    error: type[UserError] = InputFileError,
    encoding_error: type[UserError] = InputFileError,
) -> list:
    """The values of a JSON-lines file, blank lines skipped.

    Raises:
        `error`: a line is not JSON; the message names the file and the line, then `fix` (what to do about it).
        `encoding_error`: the file is not UTF-8 (`read_text`).
    """
    values = []
    for number, line in enumerate(read_text(path, error=encoding_error).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            values.append(json.loads(line))
        except json.JSONDecodeError as decode_error:
            raise error(f"{path}, line {number}, is not valid JSON ({decode_error}); {fix}") from None
    return values


def not_utf8_message(path: str | os.PathLike, data: bytes, decode_error: UnicodeDecodeError) -> str:
    """Where a file stops being UTF-8, and how to fix it."""
    offset = decode_error.start
    line_start = data.rfind(b"\n", 0, offset) + 1
    line_end = data.find(b"\n", offset)
    line = data[line_start : line_end if line_end >= 0 else len(data)].rstrip(b"\r")
    line_number = data.count(b"\n", 0, offset) + 1
    column = len(data[line_start:offset].decode("utf-8", errors="replace")) + 1
    shown = line.decode("utf-8", errors="replace")
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return (
        f"{path}, line {line_number}, column {column}: byte 0x{data[offset]:02x} is not UTF-8 (the line reads "
        f"{shown!r}). The file was saved in another encoding (often Latin-1 or Windows-1252): save it as UTF-8, e.g. "
        f"`iconv -f WINDOWS-1252 -t UTF-8 {Path(path).name} > utf8.txt` or your editor's 'Save with encoding: "
        "UTF-8', and run again"
    )
