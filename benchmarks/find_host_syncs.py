"""List the host synchronizations of one VITS training step (forward + backward) on the GPU, with where they happen.

    python -m benchmarks.find_host_syncs --size mms --batch 8

A synchronization stalls the CPU until the GPU has caught up, and a step containing one cannot be captured as a CUDA
graph (`VitsTrainingArguments.cuda_graphs`). Uses `torch.cuda.set_sync_debug_mode("warn")`; prints each distinct
call site (innermost frames in this package or transformers) once, with its count. Exit status 1 if any was found.
"""

from __future__ import annotations

import argparse
import collections
import traceback
import warnings

import torch

from benchmarks.bench_train import synthetic_dataset
from kurdish_tts.data.collators import DataCollatorForVits
from kurdish_tts.models.vits import VitsForTraining
from kurdish_tts.text import build_kurmanji_tokenizer


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="mms")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--precision", default="bf16", choices=["bf16", "fp16", "fp32"])
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("find_host_syncs.py needs a CUDA device")
    tokenizer = build_kurmanji_tokenizer()
    model = VitsForTraining.from_size(args.size, tokenizer.vocab_size).cuda().train()
    data = synthetic_dataset(args.batch, 121, 300, model.mel_config.hop_length, model.mel_config.n_mels, 39)
    collator = DataCollatorForVits(hop_length=model.mel_config.hop_length, min_frames=model.segment_frames)
    batch = {k: v.cuda() for k, v in collator([data.with_format("numpy")[i] for i in range(args.batch)]).items()}
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}[args.precision]

    def step():
        with torch.autocast("cuda", dtype=dtype or torch.float32, enabled=dtype is not None):
            output = model(**batch)
            loss = sum(
                getattr(output, name)
                for name in ("mel_loss", "kl_loss", "duration_loss", "adversarial_loss", "feature_matching_loss")
            )
            loss = loss + output.discriminator_loss
        loss.backward()

    step()  # first call: lazy initialization (cuDNN, Triton, constants) may synchronize legitimately
    torch.cuda.synchronize()
    sites = collections.Counter()
    original = warnings.showwarning

    def record(message, category, filename, lineno, file=None, line=None):
        frames = [
            f for f in traceback.extract_stack()[:-1] if "kurdish_tts" in f.filename or "transformers" in f.filename
        ]
        where = " <- ".join(f"{f.filename.split('site-packages/')[-1]}:{f.lineno} {f.line}" for f in frames[-3:][::-1])
        sites[where or f"{filename}:{lineno}"] += 1

    warnings.showwarning = record
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = record
            torch.cuda.set_sync_debug_mode("warn")
            step()
            torch.cuda.set_sync_debug_mode("default")
    finally:
        warnings.showwarning = original
    print(f"{sum(sites.values())} synchronizations in one training step ({len(sites)} call sites)")
    for where, count in sites.most_common():
        print(f"{count:4d}  {where}")
    return 1 if sites else 0


if __name__ == "__main__":
    raise SystemExit(main())
