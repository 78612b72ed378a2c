"""Answer "is my dataset prepared right?" before any GPU time is spent: prepare (or reuse) the cache and report.

    kurdish-tts validate --data demo --tokenizer kurmanji
    python scripts/validate_data.py --data /data/cv-corpus-kmr --report_dir reports/cv

Writes report.md, report.json and durations.png; exits 1 when the data is unusable, saying why.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..data.arguments import DataArguments
from ..data.validate import ValidationConfig, validate_prepared
from . import parse_arguments
from .entry_point import CommandParser, check_output_folder, entry_point
from .prepare_data import prepare_and_describe


@dataclass
class ReportArguments:
    report_dir: str | None = field(
        default=None, metadata={"help": "Where to write the report (default: `report/` inside the data cache)."}
    )


def make_parser() -> CommandParser:
    return CommandParser((DataArguments, ValidationConfig, ReportArguments), description=__doc__.splitlines()[0])


@entry_point
def main(argv: list[str] | None = None) -> int:
    data_args, validation_config, report_args = parse_arguments(make_parser(), argv)
    check_output_folder(report_args.report_dir, "--report_dir")
    prepared = prepare_and_describe(data_args)
    report = validate_prepared(prepared, validation_config)
    paths = report.save(Path(report_args.report_dir) if report_args.report_dir else prepared.path / "report")
    print()
    print(report.to_markdown())
    print("report: " + ", ".join(str(path) for path in paths.values()))
    if not report.is_usable:
        print("error: the data is unusable:\n- " + "\n- ".join(report.problems), file=sys.stderr)
        return 1
    return 0
