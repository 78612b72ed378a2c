"""How closely a `--target_hours` run of `scripts/train_vits.py` ends at its target.

    python benchmarks/bench_budget_run.py --target_minutes 10 -- --data demo --model_size mms --bf16 true \
        --per_device_train_batch_size 32 --eval_steps 100 --save_steps 200 --dataloader_num_workers 4 \
        --dataloader_persistent_workers true --report_to none
    python benchmarks/bench_budget_run.py --target_minutes 1.5 -- --recipe demo --report_to none   # CPU, small scale

Runs the training script as a child process (arguments after `--` go to it; `--target_hours` and `--output_dir` are
set here) and reports, against the target: when the job's work ended (its `run_summary.json`: final evaluation, save
and sample written) and when the process exited, both counted from the process start as the budget is; the plan
(steps, seconds per step) and the re-plans. Prints a Markdown table and appends it to `--out` when given.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def device_name() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name()
    except ImportError:
        pass
    return f"CPU ({platform.machine()}, {os.cpu_count()} cores)"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    script_args = argv[argv.index("--") + 1 :] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target_minutes", type=float, required=True)
    parser.add_argument("--output_dir", default=None, help="the run's folder (default: a temporary one)")
    parser.add_argument("--out", default=None, help="Markdown file to append the result to")
    args = parser.parse_args(own)
    output_dir = Path(args.output_dir or tempfile.mkdtemp(prefix="budget-run-"))
    target = args.target_minutes * 60
    command = [sys.executable, str(REPO / "scripts" / "train_vits.py"), *script_args]
    command += ["--target_hours", str(target / 3600), "--output_dir", str(output_dir), "--disable_tqdm", "true"]

    started = time.time()
    result = subprocess.run(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    exited = time.time() - started
    if result.returncode != 0:
        print(result.stdout[-5000:])
        print(f"the training script failed with exit status {result.returncode}", file=sys.stderr)
        return result.returncode
    summary = json.loads((output_dir / "run_summary.json").read_text(encoding="utf-8"))
    record = json.loads((output_dir / "budget.json").read_text(encoding="utf-8"))
    budget, plan = summary["budget"], record["plan"]
    # The child's budget starts at its own process start, a few milliseconds after `started`.
    job_end = budget["actual_seconds"]
    replans = " → ".join([f"{plan['steps']:,}", *(f"{r['to_steps']:,}" for r in record["replans"])])
    lines = [
        f"{time.strftime('%Y-%m-%d')}, {device_name()}, target {args.target_minutes:g} min, "
        f"script arguments: `{' '.join(script_args)}`",
        "",
        "| | seconds | of target |",
        "| --- | --- | --- |",
        f"| Target | {target:.1f} | 100 % |",
        f"| Planned end (target less the safety margin) | {budget['planned_seconds']:.1f} | "
        f"{budget['planned_seconds'] / target:.1%} |",
        f"| Job end (final evaluation, save and sample written) | {job_end:.1f} | {job_end / target:.1%} |",
        f"| Process exit | {exited:.1f} | {exited / target:.1%} |",
        "",
        f"Probe {plan['seconds_per_step']:.4f} s/step ({plan['samples_per_second']:.1f} samples/s), "
        f"{plan['elapsed_seconds']:.1f} s spent before training; steps {replans}; trained "
        f"{summary['global_step']:,}; stopped early by the deadline: {record['stopped_early']}.",
        "",
    ]
    print("\n".join(lines))
    if args.out:
        with open(args.out, "a", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
