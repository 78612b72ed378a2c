"""VITS training speed on one GPU: samples/s, step-time breakdown and peak memory per batch size and precision.

    python benchmarks/bench_train.py                                   # MMS size, batch 16/32/64, bf16 and fp16
    python benchmarks/bench_train.py --batch_sizes 8 --precisions fp16 --frames 937 --text_length 300   # 15 s clips

Two measurements per configuration, on synthetic data with the prepared cache's schema (lengths drawn around
`--frames` and `--text_length`):

1. End to end through `VitsTrainer.train()` with real dataloader workers: steady-state samples/s from the step
   timestamps after `--warmup` steps (no per-step synchronization, so the CPU may run ahead as in real training), the
   share of wall time the main process waited for batches, and the peak GPU memory.
2. A step-time breakdown from a hand-driven loop over the same model with a device synchronization after each phase:
   data (host→device copy), alignment search, generator forward (rest of it), discriminator forward, backward,
   optimizer. The synchronizations cost a little, so the phases add up to slightly more than the end-to-end step.

Prints Markdown tables (and writes them to `--out` when given).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np
import torch
from datasets import Array2D, Dataset, Features, List, Value
from transformers import TrainerCallback

from kurdish_tts.data.collators import DataCollatorForVits
from kurdish_tts.models.vits import VitsForTraining, modeling_vits_training
from kurdish_tts.text import build_kurmanji_tokenizer
from kurdish_tts.trainers import NanRecoveryCallback, VitsTrainer, VitsTrainingArguments
from kurdish_tts.trainers.vits_trainer import _OUTPUT_FIELDS


def synthetic_dataset(
    rows: int, text_length: int, frames: int, hop: int, n_mels: int, vocab: int, seed: int = 0, spread: float = 0.2
):
    """Rows in the prepared-cache schema; lengths vary ±`spread` (20 %: a length-filtered corpus; 0: every row at the
    given lengths, the worst case for memory when they are the recipe's maxima)."""
    rng = np.random.default_rng(seed)
    data = {"input_ids": [], "waveform": [], "num_samples": [], "mel": [], "num_frames": [], "speaker": []}
    for _ in range(rows):
        n_frames = int(frames * rng.uniform(1 - spread, 1 + spread))
        n_text = min(int(text_length * rng.uniform(1 - spread, 1 + spread)), n_frames)
        ids = rng.integers(1, vocab, n_text)
        ids[::2] = 0  # interspersed blanks
        t = np.arange(n_frames * hop) / 16000
        wave = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 250) * t) + 0.02 * rng.standard_normal(len(t))
        data["input_ids"].append(ids.astype(np.int32))
        data["waveform"].append((wave * 32767).astype(np.int16))
        data["num_samples"].append(len(t))
        data["mel"].append(rng.uniform(-11, 2, (n_frames, n_mels)).astype(np.float16))
        data["num_frames"].append(n_frames)
        data["speaker"].append("s0")
    features = Features(
        {
            "input_ids": List(Value("int32")),
            "waveform": List(Value("int16")),
            "num_samples": Value("int32"),
            "mel": Array2D((None, n_mels), "float16"),
            "num_frames": Value("int32"),
            "speaker": Value("string"),
        }
    )
    return Dataset.from_dict(data, features=features)


def _sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class _StepClock(TrainerCallback):
    def __init__(self):
        self.stamps = []

    def on_step_end(self, args, state, control, **kwargs):
        self.stamps.append(time.perf_counter())

    def on_train_end(self, args, state, control, **kwargs):
        _sync()
        self.stamps.append(time.perf_counter())


class _TimedTrainer(VitsTrainer):
    """Measures how long the main process waits for each batch from the dataloader."""

    data_wait = 0.0

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        start = time.perf_counter()
        result = super().get_batch_samples(epoch_iterator, num_batches, device)
        if self.state.global_step >= self._timing_from:
            self.data_wait += time.perf_counter() - start
        return result


def end_to_end(
    model, dataset, batch: int, precision: str, steps: int, warmup: int, workers: int, nan_recovery=False, **extra
) -> dict:
    with tempfile.TemporaryDirectory() as output_dir:
        args = VitsTrainingArguments(
            output_dir=output_dir,
            per_device_train_batch_size=batch,
            max_steps=warmup + steps,
            bf16=precision == "bf16",
            fp16=precision == "fp16",
            dataloader_num_workers=workers,
            dataloader_pin_memory=torch.cuda.is_available(),
            use_cpu=not torch.cuda.is_available(),
            dataloader_persistent_workers=workers > 0,
            logging_steps=warmup + steps,
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
            seed=0,
            **extra,
        )
        clock = _StepClock()
        trainer = _TimedTrainer(model, args, train_dataset=dataset, callbacks=[clock])
        trainer._timing_from = warmup
        if nan_recovery:
            NanRecoveryCallback().attach(trainer)
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        trainer.train()
    elapsed = clock.stamps[-1] - clock.stamps[warmup - 1]
    return {
        # Every process trains `batch` samples per step (DDP under torchrun / accelerate launch).
        "samples_per_second": steps * batch * args.world_size / elapsed,
        "step_ms": 1000 * elapsed / steps,
        "data_wait_share": trainer.data_wait / elapsed,
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan"),
        "scale": trainer.accelerator.scaler.get_scale() if trainer.accelerator.scaler is not None else None,
        "cuda_graphs": _graph_stats(trainer),
    }


def _graph_stats(trainer) -> dict | None:
    """Capture counts, and the GPU time of one replayed forward + backward (no data, no optimizer)."""
    graphed = trainer._graphed_loss
    if graphed is None:
        return None
    stats = graphed.stats()
    capture = next(iter(graphed.captures.values()), None)
    if capture is not None:
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(10):
            capture.forward_graph.replay()
            capture.backward_graph.replay()
        torch.cuda.synchronize()
        stats["replay_ms"] = round(100 * (time.perf_counter() - start), 1)
    return stats


def breakdown(model, dataset, batch: int, precision: str, steps: int, warmup: int) -> dict[str, float]:
    device = model.device
    trainer_args = VitsTrainingArguments(output_dir=tempfile.mkdtemp(), report_to="none")
    collator = DataCollatorForVits(hop_length=model.mel_config.hop_length, min_frames=model.segment_frames)
    rows = dataset.with_format("numpy")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    cuda = device.type == "cuda"
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-4, betas=(0.8, 0.99), eps=1e-9, fused=cuda)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16" and cuda)
    timings: dict[str, list[float]] = {k: [] for k in ("data", "alignment", "generator", "discriminator", "backward")}
    timings["optimizer"] = []
    original_maximum_path = modeling_vits_training.maximum_path
    mas_time = []

    def timed_maximum_path(*args, **kwargs):
        _sync()
        start = time.perf_counter()
        path = original_maximum_path(*args, **kwargs)
        _sync()
        mas_time.append(time.perf_counter() - start)
        return path

    modeling_vits_training.maximum_path = timed_maximum_path
    try:
        model.train()
        for step in range(warmup + steps):
            indices = np.random.default_rng(step).choice(len(rows), batch, replace=False)
            _sync()
            t0 = time.perf_counter()
            inputs = collator([rows[int(i)] for i in indices])
            inputs = {k: (v.pin_memory() if cuda else v).to(device, non_blocking=True) for k, v in inputs.items()}
            _sync()
            t1 = time.perf_counter()
            mas_time.clear()
            with torch.autocast(device.type, dtype=dtype):
                output = model._generator_forward(**inputs, speaker_id=None)
                _sync()
                t2 = time.perf_counter()
                model._adversarial_losses(output, output.generated_waveform, output.target_waveform, True)
                _sync()
                t3 = time.perf_counter()
            loss = sum(
                getattr(trainer_args, f"loss_weight_{name}") * getattr(output, field)
                for name, field in _OUTPUT_FIELDS.items()
            )
            scaler.scale(loss).backward()
            _sync()
            t4 = time.perf_counter()
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            _sync()
            t5 = time.perf_counter()
            if step >= warmup:
                timings["data"].append(t1 - t0)
                timings["alignment"].append(sum(mas_time))
                timings["generator"].append(t2 - t1 - sum(mas_time))
                timings["discriminator"].append(t3 - t2)
                timings["backward"].append(t4 - t3)
                timings["optimizer"].append(t5 - t4)
    finally:
        modeling_vits_training.maximum_path = original_maximum_path
    return {name: 1000 * statistics.median(values) for name, values in timings.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="mms")
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--precisions", nargs="+", default=["bf16", "fp16"], choices=["bf16", "fp16"])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--text_length", type=int, default=121, help="mean token ids per item (blanks included)")
    parser.add_argument("--frames", type=int, default=300, help="mean spectrogram frames per item")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument(
        "--fixed_lengths", action="store_true", help="every item exactly --frames/--text_length long (peak memory)"
    )
    parser.add_argument("--skip_breakdown", action="store_true")
    parser.add_argument("--compile", action="store_true", help="TrainingArguments.torch_compile (end-to-end only)")
    parser.add_argument("--pad_to_multiple_of", type=int, default=None)
    parser.add_argument("--cuda_graphs", action="store_true", help="VitsTrainingArguments.cuda_graphs (end-to-end)")
    parser.add_argument(
        "--nan_recovery", action="store_true", help="attach NanRecoveryCallback, as train_vits.py does"
    )
    parser.add_argument("--dataset_batches", type=int, default=4, help="synthetic rows = this many batches (>= 64)")
    parser.add_argument(
        "--non_blocking", action="store_true", help="asynchronous host-to-device batch copies (accelerator_config)"
    )
    parser.add_argument(
        "--no_nan_inf_filter", action="store_true", help="logging_nan_inf_filter=False (no host read of each loss)"
    )
    parser.add_argument(
        "--compile_modules", nargs="*", default=[], help="VitsForTraining.compile_submodules names (e.g. decoder)"
    )
    parser.add_argument(
        "--cudnn_benchmark",
        action="store_true",
        help="let cuDNN time algorithms per shape (inflates peak memory with its trial workspaces)",
    )
    parser.add_argument(
        "--find_unused",
        choices=["default", "true", "false"],
        default="default",
        help="ddp_find_unused_parameters (default: VitsTrainingArguments' choice)",
    )
    parser.add_argument("--out", default=None)
    parser.add_argument("--cpu_smoke_test", action="store_true", help="run on the CPU (checks the script, no timing)")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available() and not args.cpu_smoke_test:
        raise SystemExit("bench_train.py measures GPU training; no CUDA device is visible")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = args.cudnn_benchmark

    tokenizer = build_kurmanji_tokenizer()
    device_name = torch.cuda.get_device_name() if device == "cuda" else "CPU smoke test"
    lines = [
        f"{time.strftime('%Y-%m-%d')}, {device_name} x {os.environ.get('WORLD_SIZE', '1')} process(es), "
        f"torch {torch.__version__}, size {args.size}, "
        f"{'fixed' if args.fixed_lengths else 'mean'} text {args.text_length} ids, {args.frames} frames, {args.workers} loader workers, "
        f"CUDA graphs {args.cuda_graphs}, non-blocking copies {args.non_blocking or args.cuda_graphs}, "
        f"NaN/inf log filter {not (args.no_nan_inf_filter or args.cuda_graphs)}, NaN recovery {args.nan_recovery}, {args.dataset_batches} batches per epoch, compile {args.compile}, compiled modules {args.compile_modules or 'none'}, pad_to_multiple_of {args.pad_to_multiple_of}, cudnn.benchmark {args.cudnn_benchmark}, "
        f"ddp_find_unused_parameters {args.find_unused}",
        "",
        "| batch | precision | samples/s | step ms | data wait | peak GiB | final fp16 scale |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    details = ["", "| batch | precision | data | alignment | generator | discriminator | backward | optimizer |"]
    details.append("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for batch in args.batch_sizes:
        for precision in args.precisions:
            torch.manual_seed(0)
            model = VitsForTraining.from_size(args.size, tokenizer.vocab_size).to(device)
            if args.compile_modules:
                model.compile_submodules(tuple(args.compile_modules))
            rows = max(args.dataset_batches * batch, 64)
            dataset = synthetic_dataset(
                rows,
                args.text_length,
                args.frames,
                model.mel_config.hop_length,
                model.mel_config.n_mels,
                39,
                spread=0.0 if args.fixed_lengths else 0.2,
            )
            extra = {
                "torch_compile": args.compile,
                "pad_to_multiple_of": args.pad_to_multiple_of,
                "cuda_graphs": args.cuda_graphs,
                "logging_nan_inf_filter": not args.no_nan_inf_filter,
            }
            if args.non_blocking:
                extra["accelerator_config"] = {"non_blocking": True}
            if args.find_unused != "default":
                extra["ddp_find_unused_parameters"] = args.find_unused == "true"
            result = end_to_end(
                model, dataset, batch, precision, args.steps, args.warmup, args.workers, args.nan_recovery, **extra
            )
            scale = "" if result["scale"] is None else f"{result['scale']:g}"
            lines.append(
                f"| {batch} | {precision} | {result['samples_per_second']:.1f} | {result['step_ms']:.0f} | "
                f"{100 * result['data_wait_share']:.1f} % | {result['peak_gib']:.2f} | {scale} |"
            )
            print(lines[-1], flush=True)
            if result["cuda_graphs"] is not None:
                print(f"  CUDA graphs: {result['cuda_graphs']}", flush=True)
            if not args.skip_breakdown and not args.compile and not args.compile_modules:
                phases = breakdown(model, dataset, batch, precision, max(args.steps // 2, 5), 3)
                details.append(
                    f"| {batch} | {precision} | "
                    + " | ".join(f"{phases[k]:.1f}" for k in ("data", "alignment", "generator"))
                    + " | "
                    + " | ".join(f"{phases[k]:.1f}" for k in ("discriminator", "backward", "optimizer"))
                    + " |"
                )
                print(details[-1], flush=True)
            del model
            if device == "cuda":
                torch.cuda.empty_cache()
    report = "\n".join(lines + (details if not args.skip_breakdown else []))
    print("\n" + report)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            handle.write(report + "\n")


if __name__ == "__main__":
    main()
