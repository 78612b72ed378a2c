"""Train the tiny VITS both ways (`gan_update="fused"` and `"alternating"`) and compare speed and held-out losses.

    python benchmarks/compare_gan_update.py --steps 400 --eval_every 50 --seeds 0 1 --out benchmarks/results/gan_update.md

The bundled demo corpus (80 espeak-ng Kurmanji clips, 4 voices) is prepared with the tiny model's mel settings; 8
clips are held out. Each scheme trains from the same seed (same initial weights, same batch order) for the same
number of optimizer steps. Every `--eval_every` steps a callback scores the held-out clips with the training forward
under a fixed RNG seed (same random segments and duration noise for every run and checkpoint, and the training RNG
stream left untouched), so the evaluation differences come from the weights only. Wall and CPU time of these runs
exclude the evaluations.

The machine may be shared, so the speed comparison does not rest on those long runs: a separate measurement
interleaves short runs of the two schemes (`--speed_repeats` rounds of `--speed_steps` steps each) and takes the
median step time after the first few steps, so that background load hits both schemes alike. Prints a Markdown
report and writes it to `--out`.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from collections import defaultdict

import torch
import transformers
from transformers import TrainerCallback

from kurdish_tts.data import PreprocessConfig, load_ljspeech, prepare_dataset
from kurdish_tts.data.collators import DataCollatorForVits
from kurdish_tts.data.demo_corpus import DEMO_CORPUS_DIR
from kurdish_tts.models.vits import VitsForTraining
from kurdish_tts.text import build_kurmanji_tokenizer
from kurdish_tts.trainers import VitsTrainer, VitsTrainingArguments
from kurdish_tts.trainers.vits_trainer import _OUTPUT_FIELDS, LOSS_NAMES

EVAL_SEED = 1234
# Steps left out of each speed measurement (allocator, thread pool and numba warm-up).
SPEED_SKIP_STEPS = 5


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            return next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def prepare_demo_corpus(tokenizer, cache_dir: str, held_out: int = 8):
    """Demo corpus in the tiny model's mel settings, split into (train, eval); the eval clips are every tenth one."""
    mel_config = VitsForTraining.from_size("tiny", tokenizer.vocab_size).mel_config
    dataset = prepare_dataset(load_ljspeech(DEMO_CORPUS_DIR), tokenizer, PreprocessConfig(mel=mel_config), cache_dir)
    dataset = dataset.dataset
    step = len(dataset) // held_out
    eval_rows = [i * step + step - 1 for i in range(held_out)]
    train_rows = [i for i in range(len(dataset)) if i not in set(eval_rows)]
    return dataset.select(train_rows), dataset.select(eval_rows)


@torch.no_grad()
def evaluate(model: VitsForTraining, batch: dict) -> dict[str, float]:
    """Unweighted loss terms of the training forward on `batch`, with a fixed RNG seed, dropout off."""
    was_training = model.training
    model.eval()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(EVAL_SEED)
        output = model(**batch)
    model.train(was_training)
    return {name: float(getattr(output, _OUTPUT_FIELDS[name])) for name in LOSS_NAMES}


class StepClock(TrainerCallback):
    """Wall and process CPU time at the end of every optimizer step."""

    def __init__(self):
        self.wall, self.cpu = [], []

    def on_step_end(self, args, state, control, **kwargs):
        self.wall.append(time.perf_counter())
        self.cpu.append(time.process_time())


class HeldOutEvaluation(TrainerCallback):
    """Scores the held-out batch at step 0 and every `every` steps; keeps its own time out of the training clock."""

    def __init__(self, model: VitsForTraining | None, batch: dict, every: int):
        self.model, self.batch, self.every = model, batch, every
        self.history: dict[int, dict[str, float]] = {}
        self.seconds = self.cpu_seconds = 0.0

    def _score(self, step: int) -> None:
        start, start_cpu = time.perf_counter(), time.process_time()
        self.history[step] = evaluate(self.model, self.batch)
        self.seconds += time.perf_counter() - start
        self.cpu_seconds += time.process_time() - start_cpu

    def on_train_begin(self, args, state, control, **kwargs):
        self._score(0)

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step % self.every == 0 or state.global_step == state.max_steps:
            self._score(state.global_step)


def make_trainer(scheme: str, seed: int, steps: int, train, tokenizer, args, output_dir, callbacks) -> VitsTrainer:
    torch.manual_seed(seed)
    model = VitsForTraining.from_size("tiny", tokenizer.vocab_size)
    training_args = VitsTrainingArguments(
        output_dir,
        gan_update=scheme,
        max_steps=steps,
        per_device_train_batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=seed,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    return VitsTrainer(model, training_args, train_dataset=train, callbacks=callbacks)


def measure_speed(train, tokenizer, args) -> dict[str, dict[str, float]]:
    """Median seconds per optimizer step (wall and CPU) of each scheme, from interleaved short runs."""
    wall, cpu = defaultdict(list), defaultdict(list)
    for _ in range(args.speed_repeats):
        for scheme in args.schemes:
            clock = StepClock()
            with tempfile.TemporaryDirectory() as output_dir:
                trainer = make_trainer(scheme, 0, args.speed_steps, train, tokenizer, args, output_dir, [clock])
                trainer.train()
            wall[scheme] += [b - a for a, b in zip(clock.wall[SPEED_SKIP_STEPS:], clock.wall[SPEED_SKIP_STEPS + 1 :])]
            cpu[scheme] += [b - a for a, b in zip(clock.cpu[SPEED_SKIP_STEPS:], clock.cpu[SPEED_SKIP_STEPS + 1 :])]
    return {
        scheme: {
            "wall": statistics.median(wall[scheme]),
            "cpu": statistics.median(cpu[scheme]),
            "n": len(wall[scheme]),
        }
        for scheme in args.schemes
    }


def run(scheme: str, seed: int, train, eval_batch, tokenizer, args) -> dict:
    evaluation = HeldOutEvaluation(None, eval_batch, args.eval_every)
    with tempfile.TemporaryDirectory() as output_dir:
        trainer = make_trainer(scheme, seed, args.steps, train, tokenizer, args, output_dir, [evaluation])
        evaluation.model = trainer.model
        start, start_cpu = time.perf_counter(), time.process_time()
        trainer.train()
        seconds = time.perf_counter() - start - evaluation.seconds
        cpu_seconds = time.process_time() - start_cpu - evaluation.cpu_seconds
    logs = [h for h in trainer.state.log_history if "loss/mel" in h]
    tail = logs[-args.final_window :]
    return {
        "scheme": scheme,
        "seed": seed,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "history": evaluation.history,
        "final_train": {name: statistics.mean(h[f"loss/{name}"] for h in tail) for name in ("gen", "fm", "disc")},
    }


def report(results: list[dict], speed: dict, args, device: str) -> str:
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    lines = [
        "# GAN update: fused vs alternating (tiny VITS, demo corpus, CPU)",
        "",
        f"{datetime.date.today().isoformat()}, {device}, torch {torch.__version__}, transformers "
        f"{transformers.__version__}.",
        "",
        "```bash",
        command,
        "```",
        "",
        f"Tiny model (`VitsForTraining.from_size('tiny')`), 72 training clips, 8 held out, batch {args.batch_size}, "
        f"lr {args.learning_rate}, {args.steps} optimizer steps per run, seeds {args.seeds}. Held-out losses are "
        f"the unweighted terms of the training forward under a fixed RNG seed (eval mode); `loss/mel` (L1 between "
        "log-mels of the decoded and the recorded segment) is the quality proxy. Final train gen/fm/disc are the means "
        f"of the last {args.final_window} logged steps.",
        "",
        "## Speed",
        "",
        f"Interleaved short runs ({args.speed_repeats} rounds x {args.speed_steps} steps per scheme, the first "
        f"{SPEED_SKIP_STEPS} steps of each left out); median seconds per optimizer step:",
        "",
        "| scheme | wall s/step | process CPU s/step | steps measured |",
        "| --- | --- | --- | --- |",
    ]
    for scheme, m in speed.items():
        lines.append(f"| {scheme} | {m['wall']:.3f} | {m['cpu']:.3f} | {m['n']} |")
    lines += [
        "",
        "The long runs below (evaluations excluded; on a shared machine these absorb background load):",
        "",
        "| scheme | seed | wall time (s) | wall s/step | process CPU s/step |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in results:
        lines.append(
            f"| {r['scheme']} | {r['seed']} | {r['seconds']:.1f} | {r['seconds'] / args.steps:.3f} | "
            f"{r['cpu_seconds'] / args.steps:.3f} |"
        )
    lines += [
        "",
        "## Held-out losses during training",
        "",
        "| step | scheme | seed | eval loss/mel | eval loss/kl | eval loss/duration | eval loss/gen | eval loss/disc |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for step in sorted(results[0]["history"]):
        for r in results:
            h = r["history"][step]
            lines.append(
                f"| {step} | {r['scheme']} | {r['seed']} | {h['mel']:.4f} | {h['kl']:.4f} | {h['duration']:.4f} | "
                f"{h['gen']:.4f} | {h['disc']:.4f} |"
            )
    lines += [
        "",
        "## End of training",
        "",
        "| scheme | seed | eval loss/mel | eval loss/kl | eval loss/duration | train loss/gen | train loss/fm | "
        "train loss/disc |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        h, t = r["history"][args.steps], r["final_train"]
        lines.append(
            f"| {r['scheme']} | {r['seed']} | {h['mel']:.4f} | {h['kl']:.4f} | {h['duration']:.4f} | "
            f"{t['gen']:.4f} | {t['fm']:.4f} | {t['disc']:.4f} |"
        )
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--eval_every", type=int, default=50)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--learning_rate", type=float, default=2e-4)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--schemes", nargs="+", default=["fused", "alternating"])
    parser.add_argument("--final_window", type=int, default=20)
    parser.add_argument("--speed_steps", type=int, default=30)
    parser.add_argument("--speed_repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--cache_dir", default=None, help="Prepared-cache folder (default: a temporary one).")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    tokenizer = build_kurmanji_tokenizer()
    with tempfile.TemporaryDirectory() as scratch:
        train, held_out = prepare_demo_corpus(tokenizer, args.cache_dir or scratch)
        # After preparation: its map function pins the process to one thread (meant for its worker processes).
        torch.set_num_threads(args.threads)
        model = VitsForTraining.from_size("tiny", tokenizer.vocab_size)
        collator = DataCollatorForVits(hop_length=model.mel_config.hop_length, min_frames=model.segment_frames)
        eval_batch = collator([held_out.with_format("numpy")[i] for i in range(len(held_out))])
        speed = measure_speed(train, tokenizer, args)
        results = [
            run(scheme, seed, train, eval_batch, tokenizer, args) for seed in args.seeds for scheme in args.schemes
        ]
    device = (
        f"CPU: {cpu_name()} ({platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"
    )
    text = report(results, speed, args, device)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            handle.write(text)


if __name__ == "__main__":
    main()
