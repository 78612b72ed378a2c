"""What the doctor found: one `Check` per question, collected in a `DoctorReport` that prints as a table and saves as
JSON.

A check answers one question about the setup ("does the cache's sampling rate match the model's?") with a status, the
evidence it was decided on, and the fix when there is something to fix. `FAIL` means the run as configured would be
wasted (it crashes, produces NaN, or trains on data that does not match the model), so the command exits with status
1; `WARN` means the run works but something is likely worse than it could be; `SKIP` means the check could not run
(its probe was turned off, or an earlier step it needs failed), which is stated rather than passed off as `OK`.
"""

from __future__ import annotations

import math
import os
import shutil
import textwrap
import time
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import write_json_atomically

REPORT_NAME = "doctor_report.json"


class Status(str, Enum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"
    SKIP = "SKIP"


# The order of the table: the order in which a run meets the problems.
SECTIONS = ("environment", "recipe", "data", "consistency", "training probe", "throughput")
# Worst first: the report's overall status is the worst of its checks (a skipped check changes nothing).
_SEVERITY = {Status.FAIL: 3, Status.WARN: 2, Status.OK: 1, Status.SKIP: 0}


@dataclass
class Check:
    """The answer to one question about the setup.

    Args:
        section (`str`):
            The group it belongs to: `environment`, `recipe`, `data`, `consistency`, `training probe` or `throughput`.
        name (`str`):
            What was checked, e.g. `sampling rate`.
        status (`Status`):
            `OK`, `WARN`, `FAIL` or `SKIP`.
        evidence (`str`):
            The values the status was decided on, e.g. `cache 22050 Hz, model 16000 Hz`.
        fix (`str`, *optional*, defaults to `""`):
            What to change, as a flag or a command where there is one; empty when nothing needs fixing.
        details (`dict`, *optional*):
            Measured values for the JSON report (numbers, lists of names), for readers that are programs.
    """

    section: str
    name: str
    status: Status
    evidence: str
    fix: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return f"{self.section}: {self.name}"

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["status"] = self.status.value
        values["details"] = _json_safe(self.details)
        return values


def skipped(section: str, name: str, reason: str) -> Check:
    return Check(section, name, Status.SKIP, reason)


@dataclass
class DoctorReport:
    """Every check of one doctor run, plus the measurements a reader compares against benchmarks.

    Args:
        checks (`list[Check]`):
            In the order they ran.
        measurements (`dict`, *optional*):
            Headline numbers copied from the probes' checks, under fixed keys: `samples_per_second`,
            `data_wait_share`, `gpu_busy_share`, `peak_memory_gib`, `total_memory_gib`, `batch_suggestion`,
            `dataloader_workers`. Absent when the probe that measures them did not run.
        context (`dict`, *optional*):
            What was checked: the command line, the device, the model and data.
    """

    checks: list[Check] = field(default_factory=list)
    measurements: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)

    def add(self, checks: Check | list[Check]) -> None:
        self.checks.extend([checks] if isinstance(checks, Check) else checks)
        # Stable: within a section, checks keep the order they ran in.
        self.checks.sort(
            key=lambda check: SECTIONS.index(check.section) if check.section in SECTIONS else len(SECTIONS)
        )

    @property
    def status(self) -> Status:
        worst = max((check.status for check in self.checks), key=_SEVERITY.__getitem__, default=Status.OK)
        return Status.OK if worst == Status.SKIP else worst

    @property
    def exit_code(self) -> int:
        """1 when any check failed (the run would be wasted), else 0."""
        return 1 if self.status == Status.FAIL else 0

    def failures(self) -> list[Check]:
        return [check for check in self.checks if check.status == Status.FAIL]

    def to_dict(self) -> dict[str, Any]:
        counts = {status.value: sum(check.status == status for check in self.checks) for status in Status}
        return {
            "status": self.status.value,
            "exit_code": self.exit_code,
            "counts": counts,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "context": _json_safe(self.context),
            "measurements": _json_safe(self.measurements),
            "checks": [check.to_dict() for check in self.checks],
        }

    def save(self, path: str | os.PathLike) -> str:
        """Write the report as JSON, atomically (a reader never sees half of it); returns the path."""
        write_json_atomically(path, self.to_dict(), allow_nan=False)
        return str(path)

    def to_table(self, width: int | None = None) -> str:
        """A plain-text table for the terminal: status, check, then the evidence and the fix, wrapped to `width`."""
        width = width or max(shutil.get_terminal_size((120, 20)).columns, 80)
        name_width = min(max((len(check.title) for check in self.checks), default=10), 40)
        text_width = max(width - name_width - 10, 30)
        lines = [f"{'STATUS':<6}  {'CHECK':<{name_width}}  EVIDENCE / FIX", "-" * min(width, 160)]
        for check in self.checks:
            title = textwrap.wrap(check.title, name_width) or [""]
            body = textwrap.wrap(check.evidence, text_width) or [""]
            if check.fix:
                body += textwrap.wrap(f"fix: {check.fix}", text_width, subsequent_indent="     ")
            for index in range(max(len(title), len(body))):
                status = check.status.value if index == 0 else ""
                name = title[index] if index < len(title) else ""
                text = body[index] if index < len(body) else ""
                lines.append(f"{status:<6}  {name:<{name_width}}  {text}".rstrip())
        counts = {status: sum(check.status == status for check in self.checks) for status in Status}
        summary = ", ".join(f"{counts[status]} {status.value}" for status in Status if counts[status])
        lines += ["-" * min(width, 160), f"overall: {self.status.value} ({summary})"]
        return "\n".join(lines)


def _json_safe(value: Any) -> Any:
    """Plain JSON: NaN and infinities become strings (the report is read by other tools, and strict JSON has neither),
    tuples become lists and enums their values."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, np.generic) or (isinstance(value, torch.Tensor) and value.numel() == 1):
        return _json_safe(value.item())
    if isinstance(value, Path):
        return str(value)
    return value
