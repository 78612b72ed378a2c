"""Check model, data and machine before a long run; takes every argument of `kurdish-tts train`.

    python scripts/doctor.py --recipe rtx2070_finetune            # what `kurdish-tts train --recipe rtx2070_finetune` runs
    kurdish-tts doctor --recipe h100_finetune --report runs/h100/doctor_report.json
    kurdish-tts doctor --recipe demo --skip_throughput_probe

Prepares the data and builds the model as training would, then checks the environment, the recipe, the data against
the model, trains a few steps on one repeated batch and times the real dataloader (with a batch-size suggestion on a
GPU). Prints a table, writes a JSON report (`output_dir/doctor_report.json` unless `--report`) and exits with status 1
when a check failed (the run would be wasted), 2 for bad arguments, 0 otherwise.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from transformers import HfArgumentParser

from ..data.sources import DataSourceError
from ..doctor.arguments import DoctorArguments
from ..recipes import RecipeError
from . import train_vits
from .train_vits import UsageError


def make_parser() -> HfArgumentParser:
    # No abbreviations: a flag meant for the training arguments must never be taken for a prefix of a doctor flag.
    return HfArgumentParser(DoctorArguments, description=__doc__.splitlines()[0], allow_abbrev=False)


def parse(argv: list[str]):
    """The doctor's own arguments, then the four dataclasses of `kurdish-tts train` from the rest (recipe included)."""
    (doctor_args, rest) = make_parser().parse_args_into_dataclasses(args=argv, return_remaining_strings=True)
    return doctor_args, train_vits.parse(rest)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if {"-h", "--help"} & set(argv):
        print(make_parser().format_help())
        print("Every argument of `kurdish-tts train` is accepted as well:\n")
        print(train_vits.make_parser().format_help())
        return 0
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.WARNING)
    try:
        doctor_args, (model_args, data_args, run_args, training_args) = parse(argv)
    except (UsageError, RecipeError, ValueError) as error:
        # ValueError: what TrainingArguments refuses, e.g. --tf32 on a GPU older than Ampere.
        print(f"error: {error}", file=sys.stderr)
        return 2
    # Heavy imports after argument checks, so `--help` and bad flags answer at once.
    from ..doctor import REPORT_NAME, run_doctor

    try:
        report = run_doctor(model_args, data_args, run_args, training_args, doctor_args)
    except (UsageError, DataSourceError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    report.context["command"] = ["kurdish-tts", "doctor", *argv]
    print()
    print(report.to_table())
    path = Path(doctor_args.report) if doctor_args.report else Path(training_args.output_dir) / REPORT_NAME
    report.save(path)
    print(f"report: {path}")
    failures = report.failures()
    if failures:
        print(
            f"{len(failures)} check(s) failed; a run started like this would be wasted: "
            + "; ".join(check.title for check in failures),
            file=sys.stderr,
        )
    return report.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
