"""Compare the loss curves of finished `train_vits.py` / `train_xtts.py` runs: a Markdown table and one PNG.

    python benchmarks/compare_runs.py runs/one_gpu runs/one_gpu_seed1 runs/two_gpus \
        --labels "1 GPU" "1 GPU, seed 1" "2 GPUs" --out benchmarks/results/h200x2_ddp/parity

Reads each run's `trainer_state.json` (written at the end of `train_vits.py`). The table lists every evaluation's
`eval_loss/mel` and `eval_loss` and, per logging window, the training `loss/mel`; the last rows give the largest
difference of each run from the first, next to the spread between repeated runs when the labels say which those are
(`--noise_pair 0 1`: runs 0 and 1 differ only by seed). `--keys` names other logged values, e.g. for XTTS runs
`--keys eval_mel eval_loss loss/mel_after`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

KEYS = ("eval_loss/mel", "eval_loss", "loss/mel")


def series(run: Path, key: str) -> dict[int, float]:
    state = json.loads((run / "trainer_state.json").read_text())
    return {entry["step"]: float(entry[key]) for entry in state["log_history"] if key in entry}


def largest_difference(a: dict[int, float], b: dict[int, float]) -> float:
    common = sorted(set(a) & set(b))
    return max((abs(a[step] - b[step]) for step in common), default=float("nan"))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--labels", nargs="+")
    parser.add_argument("--noise_pair", nargs=2, type=int, help="indices of two runs that differ only by seed")
    parser.add_argument("--out", type=Path, required=True, help="writes OUT.md and OUT.png")
    parser.add_argument("--keys", nargs="+", default=list(KEYS), help=f"logged values to compare (default: {KEYS})")
    args = parser.parse_args(argv)
    keys = args.keys
    labels = args.labels or [run.name for run in args.runs]
    if len(labels) != len(args.runs):
        parser.error(f"{len(args.runs)} runs but {len(labels)} labels")

    data = {key: [series(run, key) for run in args.runs] for key in keys}
    missing = [key for key in keys if not any(data[key])]
    if missing:
        parser.error(f"no run logged {missing}; pass --keys with values their trainer_state.json holds")
    lines = []
    for key in keys:
        steps = sorted(set().union(*data[key]))
        lines += [f"\n### {key}\n", "| step | " + " | ".join(labels) + " |", "| --- |" + " --- |" * len(labels)]
        for step in steps:
            cells = [f"{values[step]:.4f}" if step in values else "" for values in data[key]]
            lines.append(f"| {step} | " + " | ".join(cells) + " |")
        differences = [f"{largest_difference(data[key][0], values):.4f}" for values in data[key]]
        lines.append(f"| largest difference from {labels[0]} | " + " | ".join(differences) + " |")
        if args.noise_pair:
            first, second = args.noise_pair
            noise = largest_difference(data[key][first], data[key][second])
            lines.append(
                f"| seed-to-seed ({labels[first]} vs {labels[second]}) | {noise:.4f} |" + " |" * (len(labels) - 1)
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text("\n".join(lines).lstrip() + "\n")
    print("\n".join(lines))

    figure, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 3.5), squeeze=False)
    for axis, key in zip(axes[0], keys):
        for label, values in zip(labels, data[key]):
            steps = sorted(values)
            axis.plot(
                steps, [values[step] for step in steps], label=label, marker="." if key.startswith("eval") else None
            )
        axis.set_title(key)
        axis.set_xlabel("optimizer step")
        axis.grid(alpha=0.3)
    axes[0][0].legend()
    figure.tight_layout()
    figure.savefig(args.out.with_suffix(".png"), dpi=100)


if __name__ == "__main__":
    main()
