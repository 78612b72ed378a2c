"""Throughput, peak memory and mixed-precision stability of `XttsTrainer` training steps.

1. Throughput table: for each model size and precision, `--warmup_steps` untimed then `--steps` timed optimizer steps
   of the real `XttsTrainer` (collator, forward, every loss term, backward, clipping, AdamW) on synthetic batches at
   realistic lengths (text ~120 ids, mel ~400 frames, reference <= 250 frames), with the guided-attention term on
   (eager attention, as early in training) and off (the fast attention path, after its decay). Prints samples/s and
   peak `torch.cuda.max_memory_allocated`.
2. `--stability_steps N`: trains one model size for N steps in each precision with Huber and label smoothing on and
   `NanRecoveryCallback` attached, on a synthetic but learnable corpus (each token is a fixed mel frame repeated for a
   token-dependent duration, plus a per-speaker offset that only the reference clip reveals, plus noise). Counts
   non-finite step losses, NaN recoveries and fp16 skipped steps; writes `stability_loss.png` (if matplotlib is
   installed), `stability_loss.csv`, `bench_xtts.json` and `bench_xtts.md` to `--out`.

    python benchmarks/bench_xtts.py --out benchmarks/results/xtts_h100 --stability_steps 3000     # ~8 min on an H100
    python benchmarks/bench_xtts.py --device cpu --size tiny --steps 3 --stability_steps 3 --out /tmp/bench  # smoke
    torchrun --nproc_per_node 2 benchmarks/bench_xtts.py --out OUT/two_gpus --precisions bf16   # DDP scaling

Under `torchrun`/`accelerate launch` the throughput rows train with DDP (each process `--batch_size` per step, as
`per_device_train_batch_size`), samples/s counts every process's samples, and only the first process prints and writes;
the stability run is single-process only.

Needs no network and no data files: the tokenizer is the package's built-in one, the corpus is generated.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datasets import Array2D, Dataset, Features, List, Value  # noqa: E402
from transformers import TrainerCallback  # noqa: E402

from kurdish_tts.atomic import write_json_atomically, write_text_atomically  # noqa: E402
from kurdish_tts.audio.features import MelConfig  # noqa: E402
from kurdish_tts.models.xtts import XttsConfig, XttsForTextToSpeech  # noqa: E402
from kurdish_tts.text import build_kurmanji_tokenizer  # noqa: E402
from kurdish_tts.trainers.nan_recovery import NanRecoveryCallback  # noqa: E402
from kurdish_tts.trainers.xtts_arguments import XttsTrainingArguments  # noqa: E402
from kurdish_tts.trainers.xtts_trainer import XttsTrainer  # noqa: E402

LOG_FLOOR = math.log(1e-5)


def synthetic_corpus(
    num_clips: int, text_length: int, mel_frames: int, n_mels: int, vocab_size: int, pad_token_id: int, seed: int
) -> Dataset:
    """Clips in the prepared cache's schema whose mels follow from their text and speaker (see the module doc)."""
    rng = np.random.default_rng(seed)
    num_speakers = 8
    templates = rng.normal(-5.0, 2.0, size=(vocab_size, n_mels))
    offsets = rng.normal(0.0, 1.0, size=(num_speakers, n_mels))
    frames_per_token = mel_frames / text_length
    tokens = np.array([t for t in range(vocab_size) if t != pad_token_id])
    rows = {"id": [], "speaker": [], "input_ids": [], "mel": [], "num_frames": []}
    for index in range(num_clips):
        length = int(rng.integers(int(text_length * 0.8), text_length + 1))
        ids = rng.choice(tokens, size=length)
        # Durations of 0.5x to 1.5x the mean frames per token, fixed per token id: learnable from the text alone.
        durations = np.maximum(1, np.rint(frames_per_token * (0.5 + (ids % 4) / 3))).astype(int)
        speaker = index % num_speakers
        mel = templates[np.repeat(ids, durations)] + offsets[speaker]
        mel = np.clip(mel + rng.normal(0, 0.1, size=mel.shape), LOG_FLOOR, 3.0)
        rows["id"].append(f"synthetic_{index:05d}")
        rows["speaker"].append(f"speaker_{speaker}")
        rows["input_ids"].append(ids.astype(np.int32))
        rows["mel"].append(mel.astype(np.float16))
        rows["num_frames"].append(len(mel))
    features = Features(
        {
            "id": Value("string"),
            "speaker": Value("string"),
            "input_ids": List(Value("int32")),
            "mel": Array2D(shape=(None, n_mels), dtype="float16"),
            "num_frames": Value("int32"),
        }
    )
    return Dataset.from_dict(rows, features=features)


class _StepTimer(TrainerCallback):
    """Wall time of the optimizer steps after the first `skip` ones (device synchronized at both ends)."""

    def __init__(self, skip: int, device: torch.device):
        self.skip, self.device = skip, device
        self.started = self.finished = None

    def _sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == self.skip and self.started is None:
            self._sync()
            self.started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == state.max_steps:
            self._sync()
            self.finished = time.perf_counter()


class _Deadline(TrainerCallback):
    """Ends training gracefully after `seconds` of wall time, so that a run cut short still reports its steps."""

    def __init__(self, seconds: float):
        self.seconds, self.began, self.reached = seconds, time.perf_counter(), False

    def on_step_end(self, args, state, control, **kwargs):
        if time.perf_counter() - self.began > self.seconds:
            self.reached = control.should_training_stop = True


class _Progress(TrainerCallback):
    def __init__(self, label: str, every: int):
        self.label, self.every, self.began = label, every, time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step % self.every == 0 or state.global_step == state.max_steps:
            elapsed = time.perf_counter() - self.began
            print(f"  [{self.label}] step {state.global_step}/{state.max_steps} ({elapsed:.0f} s)", flush=True)


def _arguments(output_dir: str, device: torch.device, precision: str, **overrides) -> XttsTrainingArguments:
    values = {
        "output_dir": output_dir,
        "report_to": "none",
        "save_strategy": "no",
        "eval_strategy": "no",
        "logging_steps": 50,
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        "use_cpu": device.type == "cpu",
        "bf16": precision == "bf16",
        "fp16": precision == "fp16",
        "seed": 0,
    }
    values.update(overrides)
    return XttsTrainingArguments(**values)


def _model(size: str, tokenizer, device: torch.device) -> XttsForTextToSpeech:
    config = XttsConfig.for_size(
        size, vocab_size=tokenizer.vocab_size, pad_token_id=tokenizer.pad_token_id, mel=MelConfig()
    )
    return XttsForTextToSpeech(config)


def _peak_memory_gib(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**30


def _processes() -> int:
    """Processes of a `torchrun`/`accelerate launch` job (1 when started plainly)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def _is_main() -> bool:
    return int(os.environ.get("RANK", "0") or 0) == 0


def throughput(options, tokenizer, device: torch.device) -> list[dict]:
    rows = []
    total = options.warmup_steps + options.steps
    processes = _processes()
    for size in options.sizes:
        for precision in options.precisions:
            for guided in (True, False):
                model = _model(size, tokenizer, device)
                # The distributed sampler gives each process its share: enough for `total` full batches each.
                corpus = synthetic_corpus(
                    options.batch_size * total * processes,
                    options.text_length,
                    options.mel_frames,
                    model.config.n_mels,
                    tokenizer.vocab_size,
                    tokenizer.pad_token_id,
                    seed=1,
                )
                timer = _StepTimer(options.warmup_steps, device)
                with tempfile.TemporaryDirectory() as output_dir:
                    args = _arguments(
                        output_dir,
                        device,
                        precision,
                        max_steps=total,
                        per_device_train_batch_size=options.batch_size,
                        reference_max_frames=options.reference_frames,
                        loss_weight_guided_attention=1.0 if guided else 0.0,
                    )
                    trainer = XttsTrainer(model, args, train_dataset=corpus, callbacks=[timer])
                    if args.world_size != processes:
                        raise SystemExit(
                            f"launched as {processes} processes, but the Trainer sees {args.world_size}: on a machine "
                            "without GPUs run with --device cpu (gloo)"
                        )
                    if device.type == "cuda":
                        torch.cuda.reset_peak_memory_stats(args.device)
                    trainer.train()
                seconds = timer.finished - timer.started
                row = {
                    "size": size,
                    "parameters_m": sum(p.numel() for p in model.parameters()) / 1e6,
                    "precision": precision,
                    "guided_attention": guided,
                    "batch_size": options.batch_size,
                    "processes": processes,
                    "samples_per_second": options.batch_size * processes * options.steps / seconds,
                    "step_seconds": seconds / options.steps,
                    "peak_memory_gib": _peak_memory_gib(args.device),
                }
                rows.append(row)
                memory = "-" if row["peak_memory_gib"] is None else f"{row['peak_memory_gib']:.2f} GiB"
                _say(
                    f"{size:>5} {precision:>4} guided={str(guided):5} batch {options.batch_size} x {processes}: "
                    f"{row['samples_per_second']:.1f} samples/s, {row['step_seconds'] * 1000:.0f} ms/step, "
                    f"peak {memory}"
                )
                del trainer, model
                if device.type == "cuda":
                    torch.cuda.empty_cache()
    return rows


def stability(options, tokenizer, device: torch.device, precision: str) -> dict:
    model = _model(options.stability_size, tokenizer, device)
    steps = options.stability_steps
    corpus = synthetic_corpus(
        512,
        options.stability_text_length,
        options.stability_mel_frames,
        model.config.n_mels,
        tokenizer.vocab_size,
        tokenizer.pad_token_id,
        seed=2,
    )
    with tempfile.TemporaryDirectory() as output_dir:
        args = _arguments(
            output_dir,
            device,
            precision,
            max_steps=steps,
            per_device_train_batch_size=options.stability_batch_size,
            lr_scheduler_type="cosine",
            # Guided attention for the first third (eager attention), then the fast path: both paths are exercised.
            guided_attention_decay_steps=max(1, steps // 3),
            dataloader_num_workers=options.stability_workers,
        )
        assert args.mel_loss == "huber" and args.stop_label_smoothing > 0 and args.text_label_smoothing > 0
        trainer = XttsTrainer(model, args, train_dataset=corpus)
        recovery = NanRecoveryCallback(lr_factor=0.5, max_recoveries=10).attach(trainer)
        trainer.add_callback(_Progress(f"stability {precision}", max(1, steps // 10)))
        deadline = _Deadline(options.stability_max_seconds or math.inf)
        trainer.add_callback(deadline)
        step_losses: list[torch.Tensor] = []
        inner = trainer.training_step

        def recording_training_step(model, inputs, *args, **kwargs):
            loss = inner(model, inputs, *args, **kwargs)
            step_losses.append(loss.detach().float())
            return loss

        trainer.training_step = recording_training_step
        began = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - began
        history = trainer.state.log_history
    losses = torch.stack(step_losses).cpu().numpy() if step_losses else np.zeros(0)
    finite = np.isfinite(losses)
    skipped = [entry["amp/skipped_steps"] for entry in history if "amp/skipped_steps" in entry]
    terms = {
        key: [entry[key] for entry in history if key in entry]
        for key in ("loss/mel_before", "loss/mel_after", "loss/stop", "loss/text", "loss/guided_attention")
    }
    window = max(1, min(100, len(losses) // 10))
    return {
        "precision": precision,
        "size": options.stability_size,
        "steps": int(trainer.state.global_step),
        "planned_steps": steps,
        "stopped_by_time_limit": deadline.reached,
        "seconds": seconds,
        "non_finite_losses": int((~finite).sum()),
        "nan_recoveries": recovery.recoveries,
        "fp16_skipped_steps": skipped[-1] if skipped else 0,
        "first_loss": float(np.mean(losses[:window][finite[:window]])) if finite[:window].any() else None,
        "last_loss": float(np.mean(losses[-window:][finite[-window:]])) if finite[-window:].any() else None,
        "loss_window": window,
        "last_terms": {key: values[-1] for key, values in terms.items() if values},
        "losses": [float(x) for x in losses],
    }


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    if len(values) < window:
        return values
    return np.convolve(values, np.ones(window) / window, mode="valid")


def write_loss_curve(runs: list[dict], out: Path) -> str | None:
    lines = ["step," + ",".join(run["precision"] for run in runs)]
    for step in range(max(len(run["losses"]) for run in runs)):
        values = [f"{run['losses'][step]:.6g}" if step < len(run["losses"]) else "" for run in runs]
        lines.append(f"{step + 1}," + ",".join(values))
    write_text_atomically(out / "stability_loss.csv", "\n".join(lines) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: the loss curve is in stability_loss.csv only", flush=True)
        return None
    figure, axis = plt.subplots(figsize=(8, 4.5))
    for run in runs:
        losses = np.asarray(run["losses"], dtype=float)
        window = max(1, len(losses) // 100)
        smoothed = _smooth(np.where(np.isfinite(losses), losses, np.nan), window)
        axis.plot(np.arange(len(smoothed)) + window, smoothed, label=f"{run['precision']} ({run['size']})")
    axis.set_xlabel("optimizer step")
    axis.set_ylabel("training loss (moving average)")
    axis.set_yscale("log")
    axis.set_title("XttsTrainer stability run (Huber + label smoothing, NaN recovery attached)")
    axis.legend()
    figure.tight_layout()
    path = out / "stability_loss.png"
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return str(path)


def _say(message: str) -> None:
    if _is_main():
        print(message, flush=True)


def to_markdown(device_name: str, rows: list[dict], runs: list[dict], options) -> str:
    processes = rows[0]["processes"] if rows else 1
    where = device_name if processes == 1 else f"{processes} processes × {device_name}, DDP"
    lines = [f"## XTTS training throughput ({where})", ""]
    if rows:
        lines += [
            f"Synthetic batches: text ~{options.text_length} ids, mel ~{options.mel_frames} frames, reference <= "
            f"{options.reference_frames} frames; {options.warmup_steps} warm-up + {options.steps} timed steps of "
            "`XttsTrainer` (collator, forward, all loss terms, backward, clip, AdamW)"
            + ("." if processes == 1 else f"; batch per process, samples/s of all {processes} processes."),
            "",
            "| size | params (M) | precision | guided attention | batch | samples/s | ms/step | peak memory (GiB) |",
            "| --- | ---: | --- | --- | ---: | ---: | ---: | ---: |",
        ]
        for row in rows:
            memory = "-" if row["peak_memory_gib"] is None else f"{row['peak_memory_gib']:.2f}"
            lines.append(
                f"| {row['size']} | {row['parameters_m']:.1f} | {row['precision']} | "
                f"{'on (eager)' if row['guided_attention'] else 'off'} | {row['batch_size']} | "
                f"{row['samples_per_second']:.1f} | {row['step_seconds'] * 1000:.0f} | {memory} |"
            )
    if runs:
        lines += [
            "",
            f"## Stability: {options.stability_steps} steps, {options.stability_size} model",
            "",
            f"Batch {options.stability_batch_size}, text ~{options.stability_text_length} ids, mel "
            f"~{options.stability_mel_frames} frames; default `XttsTrainingArguments` (Huber, stop and text label "
            "smoothing, clip) with cosine schedule; guided attention decayed to 0 over the first third. "
            "Loss curve: `stability_loss.png` / `stability_loss.csv`.",
            "",
            "| precision | steps | non-finite losses | NaN recoveries | fp16 skipped steps | "
            "loss, mean of the first → last N steps | "
            "seconds |",
            "| --- | ---: | ---: | ---: | ---: | --- | ---: |",
        ]
        for run in runs:
            first = "-" if run["first_loss"] is None else f"{run['first_loss']:.3f}"
            last = "-" if run["last_loss"] is None else f"{run['last_loss']:.3f}"
            reached = f"{run['steps']}" + (" (time limit)" if run["stopped_by_time_limit"] else "")
            lines.append(
                f"| {run['precision']} | {reached} | {run['non_finite_losses']} | {run['nan_recoveries']} | "
                f"{run['fp16_skipped_steps']} | {first} → {last} (N = {run['loss_window']}) | {run['seconds']:.0f} |"
            )
    return "\n".join(lines) + "\n"


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="Folder for bench_xtts.json/.md and the loss curve.")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sizes", default="small,base", help="Comma-separated model sizes for the throughput table.")
    parser.add_argument(
        "--size", help="One size for both the table and the stability run (e.g. tiny for a smoke test)."
    )
    parser.add_argument("--precisions", help="Comma-separated of bf16, fp16, fp32 (default: bf16,fp16; fp32 on CPU).")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--text_length", type=int, default=120)
    parser.add_argument("--mel_frames", type=int, default=400)
    parser.add_argument("--reference_frames", type=int, default=250)
    parser.add_argument("--warmup_steps", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20, help="Timed steps per throughput row.")
    parser.add_argument("--skip_throughput", action="store_true")
    parser.add_argument("--stability_steps", type=int, default=0, help="Steps of the stability run (0: none).")
    parser.add_argument("--stability_size", default="small")
    parser.add_argument("--stability_batch_size", type=int, default=16)
    parser.add_argument("--stability_text_length", type=int, default=60)
    parser.add_argument("--stability_mel_frames", type=int, default=200)
    parser.add_argument(
        "--stability_workers", type=int, default=0, help="Data loader workers of the stability run (0: in-process)."
    )
    parser.add_argument(
        "--stability_max_seconds",
        type=float,
        default=0,
        help="End each stability run gracefully after this many seconds (0: no limit); the table says so.",
    )
    options = parser.parse_args(argv)
    options.sizes = [options.size] if options.size else options.sizes.split(",")
    if options.size:
        options.stability_size = options.size
    if options.precisions is None:
        options.precisions = "fp32" if options.device == "cpu" else "bf16,fp16"
    options.precisions = options.precisions.split(",")
    unknown = set(options.precisions) - {"bf16", "fp16", "fp32"}
    if unknown:
        parser.error(f"unknown precision(s) {sorted(unknown)}; choose from bf16, fp16, fp32")
    if options.steps < 1 or options.warmup_steps < 0:
        parser.error("--steps must be >= 1 and --warmup_steps >= 0")
    if options.stability_steps and _processes() > 1:
        parser.error("--stability_steps runs in one process; launch it without torchrun/accelerate")
    return options


def main(argv=None) -> int:
    options = parse(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    device = torch.device(options.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({os.cpu_count()} cores)"
    out = Path(options.out)
    if _is_main():
        out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_kurmanji_tokenizer()
    began = time.perf_counter()
    _say(f"bench_xtts on {device_name}" + (f", {_processes()} processes" if _processes() > 1 else ""))
    rows = [] if options.skip_throughput else throughput(options, tokenizer, device)
    if not _is_main():
        return 0
    runs = [stability(options, tokenizer, device, p) for p in options.precisions] if options.stability_steps else []
    curve = write_loss_curve(runs, out) if runs else None
    summary = {
        "device": device_name,
        "torch": torch.__version__,
        "options": {key: value for key, value in vars(options).items()},
        "throughput": rows,
        "stability": [{key: value for key, value in run.items() if key != "losses"} for run in runs],
        "loss_curve": curve,
        "seconds": time.perf_counter() - began,
    }
    write_json_atomically(out / "bench_xtts.json", summary)
    markdown = to_markdown(device_name, rows, runs, options)
    write_text_atomically(out / "bench_xtts.md", markdown)
    print("\n" + markdown, flush=True)
    print(f"total {summary['seconds']:.0f} s; results in {out}", flush=True)
    return 1 if any(run["non_finite_losses"] for run in runs) else 0


if __name__ == "__main__":
    raise SystemExit(main())
