"""Fine-tune a trained generator with a fresh discriminator, with and without `discriminator_warmup_steps`.

    python benchmarks/compare_discriminator_warmup.py --pretrain_steps 250 --steps 150 --warmups 0 50 \\
        --out benchmarks/results/discriminator_warmup.md

The situation of every MMS checkpoint: a trained generator, no discriminator. The tiny VITS is first trained on the
demo corpus (72 clips; the same 8 clips as in `compare_gan_update.py` held out) for `--pretrain_steps` steps; only its
generator is saved, as a stock `VitsModel` directory. Each fine-tune then loads that generator with a freshly
initialized discriminator (the same one for every run: same seed), and trains for the same `--steps` optimizer steps
from the same seed, the warm-up steps included (the generator is frozen for `warmup` of them). Held-out losses are
scored every `--eval_every` steps with a fixed RNG seed (see `compare_gan_update.py`). Prints a Markdown report and
writes it to `--out`.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import sys
import tempfile
import time

import torch
import transformers
from compare_gan_update import HeldOutEvaluation, cpu_name, prepare_demo_corpus  # benchmarks/ is the script's folder

from kurdish_tts.data.collators import DataCollatorForVits
from kurdish_tts.models.vits import VitsDiscriminatorConfig, VitsForTraining
from kurdish_tts.text import build_kurmanji_tokenizer
from kurdish_tts.trainers import VitsTrainer, VitsTrainingArguments


def train(model, dataset, output_dir, steps, seed, args, callbacks=(), **overrides) -> float:
    """`steps` optimizer steps with `VitsTrainer`; returns the wall time."""
    training_args = VitsTrainingArguments(
        output_dir,
        max_steps=steps,
        per_device_train_batch_size=args.batch_size,
        seed=seed,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        logging_steps=10,
        disable_tqdm=True,
        gan_update=args.gan_update,
        **overrides,
    )
    start = time.perf_counter()
    VitsTrainer(model, training_args, train_dataset=dataset, callbacks=list(callbacks)).train()
    return time.perf_counter() - start


def report(results: dict[int, dict], args, pretrain_seconds: float, device: str) -> str:
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    warmups = sorted(results)
    lines = [
        "# Discriminator warm-up when fine-tuning a generator with a fresh discriminator (tiny VITS, CPU)",
        "",
        f"{datetime.date.today().isoformat()}, {device}, torch {torch.__version__}, transformers "
        f"{transformers.__version__}.",
        "",
        "```bash",
        command,
        "```",
        "",
        f'"Pretrained" model: tiny VITS, seed {args.seed}, {args.pretrain_steps} steps at lr '
        f"{args.pretrain_learning_rate} (constant), batch {args.batch_size}, {pretrain_seconds:.0f} s; generator saved "
        f"alone. Fine-tunes: the saved generator + a fresh tiny discriminator (same init for every run), "
        f"gan_update={args.gan_update!r}, lr {args.learning_rate} (linear decay), batch {args.batch_size}, "
        f"{args.steps} optimizer steps including the warm-up. Held-out = 8 clips, unweighted terms of the training "
        "forward with a fixed RNG seed (eval mode); `loss/mel` is the quality proxy.",
        "",
        "## Held-out loss/mel over the fine-tune",
        "",
        "| step | " + " | ".join(f"warm-up {w}" for w in warmups) + " |",
        "| --- | " + " | ".join("---" for _ in warmups) + " |",
    ]
    for step in sorted(results[warmups[0]]["history"]):
        row = " | ".join(f"{results[w]['history'][step]['mel']:.4f}" for w in warmups)
        lines.append(f"| {step} | {row} |")
    # The same curves against generator updates (steps after the warm-up): does a warmed-up discriminator make each
    # generator update better, setting aside that warm-up spends part of the step budget?
    lines += [
        "",
        "## Held-out loss/mel at equal numbers of generator updates",
        "",
        "| generator updates | " + " | ".join(f"warm-up {w}" for w in warmups) + " |",
        "| --- | " + " | ".join("---" for _ in warmups) + " |",
    ]
    for updates in range(0, args.steps - max(warmups) + 1, args.eval_every):
        values = [results[w]["history"].get(w + updates) for w in warmups]
        row = " | ".join("—" if v is None else f"{v['mel']:.4f}" for v in values)
        lines.append(f"| {updates} | {row} |")
    lines += [
        "",
        "## End of the fine-tune",
        "",
        "| warm-up | eval loss/mel | eval loss/kl | eval loss/duration | eval loss/gen | eval loss/fm | eval loss/disc "
        "| wall time (s) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for w in warmups:
        h = results[w]["history"][args.steps]
        lines.append(
            f"| {w} | {h['mel']:.4f} | {h['kl']:.4f} | {h['duration']:.4f} | {h['gen']:.4f} | {h['fm']:.4f} | "
            f"{h['disc']:.4f} | {results[w]['seconds']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pretrain_steps", type=int, default=250)
    parser.add_argument("--pretrain_learning_rate", type=float, default=1e-3)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--warmups", type=int, nargs="+", default=[0, 50])
    parser.add_argument("--eval_every", type=int, default=10)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--learning_rate", type=float, default=2e-4)
    parser.add_argument("--gan_update", default="fused", choices=["fused", "alternating"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--cache_dir", default=None, help="Prepared-cache folder (default: a temporary one).")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    tokenizer = build_kurmanji_tokenizer()
    with tempfile.TemporaryDirectory() as scratch:
        train_data, held_out = prepare_demo_corpus(tokenizer, args.cache_dir or os.path.join(scratch, "cache"))
        # After preparation: its map function pins the process to one thread (meant for its worker processes).
        torch.set_num_threads(args.threads)

        # 1. The "pretrained" model; only its generator is kept, as for the MMS checkpoints.
        torch.manual_seed(args.seed)
        pretrained = VitsForTraining.from_size("tiny", tokenizer.vocab_size)
        pretrain_seconds = train(
            pretrained,
            train_data,
            os.path.join(scratch, "pretrain"),
            args.pretrain_steps,
            args.seed,
            args,
            learning_rate=args.pretrain_learning_rate,
            lr_scheduler_type="constant",
        )
        generator_dir = os.path.join(scratch, "generator")
        pretrained.vits.save_pretrained(generator_dir)
        collator = DataCollatorForVits(
            hop_length=pretrained.mel_config.hop_length, min_frames=pretrained.segment_frames
        )
        eval_batch = collator([held_out.with_format("numpy")[i] for i in range(len(held_out))])

        # 2. Fine-tunes from the saved generator and a fresh discriminator, the same for each warm-up.
        results = {}
        for warmup in args.warmups:
            torch.manual_seed(args.seed + 1)
            model = VitsForTraining.from_pretrained(
                generator_dir,
                discriminator_config=VitsDiscriminatorConfig.tiny(),
                mel_config=pretrained.mel_config,
                segment_frames=pretrained.segment_frames,
            )
            evaluation = HeldOutEvaluation(model, eval_batch, args.eval_every)
            seconds = train(
                model,
                train_data,
                os.path.join(scratch, f"warmup-{warmup}"),
                args.steps,
                args.seed,
                args,
                callbacks=[evaluation],
                learning_rate=args.learning_rate,
                discriminator_warmup_steps=warmup,
            )
            results[warmup] = {"history": evaluation.history, "seconds": seconds - evaluation.seconds}

    device = (
        f"CPU: {cpu_name()} ({platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"
    )
    text = report(results, args, pretrain_seconds, device)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            handle.write(text)


if __name__ == "__main__":
    main()
