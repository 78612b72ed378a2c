"""Check model, data and machine before a long run; takes every argument of `kurdish-tts train`.

    python scripts/doctor.py --recipe rtx2070_finetune            # what `kurdish-tts train --recipe rtx2070_finetune` runs
    kurdish-tts doctor --recipe h100_finetune --report runs/h100/doctor_report.json
    kurdish-tts doctor --recipe demo --skip_throughput_probe

Prepares the data and builds the model as training would, then checks the environment, the recipe, the data against
the model, trains a few steps on one repeated batch and times the real dataloader (with a batch-size suggestion on a
GPU). Prints a table, writes a JSON report (`output_dir/doctor/doctor_report.json` unless `--report`) and exits with
status 1 when a check failed (the run would be wasted), 2 for bad arguments, 0 otherwise. Everything it writes goes to
its own folder (`--doctor_dir`, default `output_dir/doctor`), never over a run's files.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from ..doctor.arguments import DoctorArguments
from . import train_vits
from .entry_point import CommandParser, check_output_folder, entry_point


def make_parser() -> CommandParser:
    # No abbreviations (CommandParser's default): a flag meant for the training arguments must never be taken for a
    # prefix of a doctor flag.
    return CommandParser(DoctorArguments, description=__doc__.splitlines()[0])


def parse(argv: list[str]):
    """The doctor's own arguments, then the four dataclasses of `kurdish-tts train` from the rest (recipe included)."""
    (doctor_args, rest) = make_parser().parse_args_into_dataclasses(args=argv, return_remaining_strings=True)
    return doctor_args, train_vits.parse(rest)


@entry_point
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if {"-h", "--help"} & set(argv):
        print(make_parser().format_help())
        print("Every argument of `kurdish-tts train` is accepted as well:\n")
        print(train_vits.make_parser().format_help())
        return 0
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.WARNING)
    # TrainingArguments' refusals (e.g. --tf32 on a GPU older than Ampere) are usage errors, as any bad flag.
    doctor_args, (model_args, data_args, run_args, training_args) = parse(argv)
    doctor_dir = doctor_args.folder(training_args.output_dir)
    check_output_folder(doctor_dir, "--doctor_dir")
    if doctor_args.report:
        check_output_folder(Path(doctor_args.report).parent, "--report")
    # Heavy imports after argument checks, so `--help` and bad flags answer at once.
    from ..doctor import REPORT_NAME, run_doctor

    report = run_doctor(model_args, data_args, run_args, training_args, doctor_args)
    report.context["command"] = ["kurdish-tts", "doctor", *argv]
    print()
    print(report.to_table())
    path = Path(doctor_args.report) if doctor_args.report else doctor_dir / REPORT_NAME
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
