"""Compare XTTS loss settings on the CPU: the tiny model on the demo corpus, a few hundred steps per variant.

    python benchmarks/xtts_defaults_cpu.py --steps 300 --out benchmarks/results/xtts_defaults_cpu.md

Each variant trains once per seed (`--seeds N`: seeds 0..N-1, each fixing the initialization and the batch order,
the same for every variant) and is scored on 8 held-out
clips: `eval_mel` (L1 in nats of the post-net mel, teacher forced: comparable across loss choices), the stop-step
error (|first step whose stop probability passes 0.5 − the true last step|, teacher forced, mean over clips) and the
number of non-finite training losses; the table gives the mean and the spread (min-max) over the seeds, so that a
difference between variants can be compared with the seed-to-seed one. A tiny model for a few hundred CPU steps is weak evidence for a 90 M model
trained for days; it catches settings that do not learn or do not stop, not fine differences.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kurdish_tts.atomic import write_text_atomically  # noqa: E402
from kurdish_tts.audio.features import MelConfig  # noqa: E402
from kurdish_tts.data import PreprocessConfig, load_ljspeech, prepare_dataset  # noqa: E402
from kurdish_tts.data.demo_corpus import DEMO_CORPUS_DIR  # noqa: E402
from kurdish_tts.models.xtts import XttsConfig, XttsForTextToSpeech  # noqa: E402
from kurdish_tts.text import build_kurmanji_tokenizer  # noqa: E402
from kurdish_tts.trainers.xtts_arguments import XttsTrainingArguments  # noqa: E402
from kurdish_tts.trainers.xtts_trainer import XttsTrainer  # noqa: E402

VARIANTS = {
    "defaults (Huber δ 0.6, smoothing 0.06/0.025)": {},
    "L1 mel loss": {"mel_loss": "l1"},
    "Huber δ 1.0": {"huber_delta": 1.0},
    "no label smoothing": {"stop_label_smoothing": 0.0, "text_label_smoothing": 0.0},
    "Huber δ 0.3": {"huber_delta": 0.3},
    "stop pos_weight 1": {"stop_pos_weight": 1.0},
    "no guided attention": {"loss_weight_guided_attention": 0.0},
}


def stop_step_error(trainer: XttsTrainer, dataset) -> float:
    """Mean |predicted − true| stop step over `dataset`, teacher forced."""
    model = trainer.model.eval()
    loader = trainer.get_eval_dataloader(dataset)
    errors = []
    with torch.no_grad():
        for batch in loader:
            inputs = {k: v for k, v in batch.items() if k != "text_labels"}
            output = model(**inputs)
            r = model.config.reduction_factor
            true_last = torch.div(inputs["mel_lengths"] + r - 1, r, rounding_mode="floor") - 1
            fired = torch.sigmoid(output.stop_logits.float()) > 0.5
            steps = fired.shape[1]
            first = torch.where(fired.any(1), fired.float().argmax(1), torch.full_like(true_last, steps))
            errors.extend((first - true_last).abs().tolist())
    return sum(errors) / len(errors)


def _spread(values: list[float], digits: int) -> str:
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def _write_table(rows: list[dict], options, num_train: int, num_held_out: int) -> None:
    command = (
        f"python benchmarks/xtts_defaults_cpu.py --steps {options.steps} --learning_rate {options.learning_rate} "
        f"--variants {options.variants} --seeds {options.seeds}"
    )
    lines = [
        "# XTTS loss defaults: tiny model, demo corpus, CPU",
        "",
        f"`{command}` — tiny backbone, MMS mel geometry (80 bands, hop 256), r = 2; {num_train} training clips, "
        f"{num_held_out} held out, batch 8, {options.steps} steps, lr {options.learning_rate} cosine, 2 CPU threads, "
        f"seeds {', '.join(str(seed) for seed in range(options.seeds))} for every variant: mean (min-max).",
        "",
        "| variant | seeds | eval_mel (L1, nats) ↓ | stop-step error (steps) ↓ | non-finite losses | train seconds |",
        "| --- | ---: | --- | --- | ---: | ---: |",
    ]
    for variant in dict.fromkeys(row["variant"] for row in rows):
        runs = [row for row in rows if row["variant"] == variant]
        lines.append(
            f"| {variant} | {len(runs)} | {_spread([run['eval_mel'] for run in runs], 3)} | "
            f"{_spread([run['stop_error'] for run in runs], 2)} | {sum(run['non_finite'] for run in runs)} | "
            f"{sum(run['seconds'] for run in runs):.0f} |"
        )
    lines += ["", "A tiny model for a few hundred CPU steps is weak evidence; see the module docstring.", ""]
    write_text_atomically(options.out, "\n".join(lines))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--out", default="benchmarks/results/xtts_defaults_cpu.md")
    parser.add_argument("--cache_dir", default=".cache/kurdish_tts")
    parser.add_argument("--variants", type=int, default=len(VARIANTS), help="Run the first this many variants.")
    parser.add_argument("--seeds", type=int, default=1, help="Train every variant with seeds 0 .. N-1.")
    options = parser.parse_args(argv)
    torch.set_num_threads(2)
    tokenizer = build_kurmanji_tokenizer()
    # The tiny backbone with the real mel geometry (MMS's 80 bands, hop 256) and the small/base reduction factor, so
    # that the mel and stop terms see realistic frames and step counts.
    config = XttsConfig.for_size(
        "tiny",
        vocab_size=tokenizer.vocab_size,
        pad_token_id=tokenizer.pad_token_id,
        mel=MelConfig(),
        reduction_factor=2,
    )
    prepared = prepare_dataset(
        load_ljspeech(DEMO_CORPUS_DIR), tokenizer, PreprocessConfig(mel=config.mel_config), options.cache_dir
    )
    dataset = prepared.dataset
    held_out = dataset.select(range(0, len(dataset), 10))
    train = dataset.select([i for i in range(len(dataset)) if i % 10])
    rows = []
    runs = [(name, overrides, seed) for seed in range(options.seeds) for name, overrides in VARIANTS.items()]
    runs = [run for run in runs if list(VARIANTS).index(run[0]) < options.variants]
    for name, overrides, seed in runs:
        torch.manual_seed(seed)
        model = XttsForTextToSpeech(config)
        args = XttsTrainingArguments(
            output_dir="/tmp/xtts_defaults_cpu",
            report_to="none",
            max_steps=options.steps,
            per_device_train_batch_size=8,
            per_device_eval_batch_size=8,
            learning_rate=options.learning_rate,
            lr_scheduler_type="cosine",
            logging_steps=25,
            save_strategy="no",
            disable_tqdm=True,
            dataloader_num_workers=0,
            use_cpu=True,
            seed=seed,
            **overrides,
        )
        trainer = XttsTrainer(model, args, train_dataset=train, eval_dataset=held_out)
        began = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - began
        losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
        metrics = trainer.evaluate()
        row = {
            "variant": name,
            "seed": seed,
            "eval_mel": metrics["eval_mel"],
            "stop_error": stop_step_error(trainer, held_out),
            "non_finite": sum(not math.isfinite(loss) for loss in losses),
            "seconds": seconds,
        }
        rows.append(row)
        print(row, flush=True)
        # Written after every variant, so that an interrupted comparison still leaves its finished rows.
        _write_table(rows, options, len(train), len(held_out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
