"""Why trained voices were a full-scale tone or offset: train the tiny VITS from random init with one difference from
the reference VITS recipe at a time, and judge the audio sample by sample.

    python benchmarks/gan_health_ablation.py --steps 300 --eval_every 50 --seeds 0 1 \\
        --out benchmarks/results/gan_health_ablation.md

Every variant starts from the same seed on the bundled demo corpus (72 training clips, 8 held out). At step 0 and
every `--eval_every` steps it scores, in eval mode and under a fixed RNG seed: (a) the decoded held-out segments of
the training forward against the recorded segments (waveform health, full-band multi-resolution STFT distance, mel
L1), (b) the held-out texts synthesized from text alone by the stock `VitsModel` (health; level against the
recording). The train discriminator, adversarial and feature-matching losses are the means of the last logged steps.

Variants (each the "after" recipe with one thing changed, except the first):

- `before`: the decoder as transformers initializes it (He-normal convolutions), as every run before this fix;
- `after`: the decoder initialized as the reference HiFi-GAN generator (`_start_decoder_like_hifigan`);
- `after_reference_biases`: the same with PyTorch's default biases instead of zeros (the reference exactly);
- `after_no_clipping`: no gradient-norm clipping (`max_grad_norm=0`; the reference clips nothing, the Trainer 1.0);
- `after_alternating`: `gan_update="alternating"` (D step, then G against the updated D; the reference order).
"""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import statistics
import sys
import tempfile

import torch
import transformers
from torch import nn
from transformers import TrainerCallback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare_gan_update import cpu_name, prepare_demo_corpus  # noqa: E402

from kurdish_tts.data.collators import DataCollatorForVits  # noqa: E402
from kurdish_tts.evaluation.waveform_health import batch_health, health_problems  # noqa: E402
from kurdish_tts.models.vits import VitsForTraining  # noqa: E402
from kurdish_tts.text import build_kurmanji_tokenizer  # noqa: E402
from kurdish_tts.trainers import VitsTrainer, VitsTrainingArguments  # noqa: E402

EVAL_SEED = 1234
VARIANTS = ("before", "after", "after_reference_biases", "after_no_clipping", "after_alternating")


def transformers_decoder_init(model: VitsForTraining) -> None:
    """What `VitsPreTrainedModel._init_weights` draws for the decoder: He-normal weights, uniform biases."""
    for conv in model.vits.decoder.modules():
        if isinstance(conv, (nn.Conv1d, nn.ConvTranspose1d)):
            nn.init.kaiming_normal_(conv.weight)
            if conv.bias is not None:
                bound = (conv.groups / (conv.in_channels * conv.kernel_size[0])) ** 0.5
                nn.init.uniform_(conv.bias, -bound, bound)


def reference_biases(model: VitsForTraining) -> None:
    decoder = model.vits.decoder
    for module in (*decoder.upsampler, *decoder.resblocks, decoder.conv_pre):
        for conv in module.modules():
            if isinstance(conv, (nn.Conv1d, nn.ConvTranspose1d)) and conv.bias is not None:
                weight = conv.weight.detach().clone()
                conv.reset_parameters()
                with torch.no_grad():
                    conv.weight.copy_(weight)


def build(variant: str, seed: int, tokenizer) -> tuple[VitsForTraining, dict]:
    torch.manual_seed(seed)
    model = VitsForTraining.from_size("tiny", tokenizer.vocab_size)
    overrides = {}
    if variant == "before":
        transformers_decoder_init(model)
    elif variant == "after_reference_biases":
        reference_biases(model)
    elif variant == "after_no_clipping":
        overrides["max_grad_norm"] = 0.0
    elif variant == "after_alternating":
        overrides["gan_update"] = "alternating"
    return model, overrides


@torch.no_grad()
def score(model: VitsForTraining, batch: dict, texts: list[dict]) -> dict[str, float]:
    was_training = model.training
    model.eval()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(EVAL_SEED)
        output = model(**batch)
        segments = batch_health(
            output.generated_waveform, model.mel_config.sampling_rate, references=output.target_waveform
        )
        synthesized = []
        for item in texts:
            waveform = model.vits(input_ids=item["input_ids"]).waveform[0]
            figures = batch_health(waveform.unsqueeze(0), model.mel_config.sampling_rate)
            figures = {key: float(value[0]) for key, value in figures.items()}
            figures["level_vs_reference_db"] = figures["rms_db"] - item["rms_db"]
            synthesized.append(figures)
    model.train(was_training)
    result = {
        f"segment_{key}": float(value.abs().mean() if key == "dc_offset" else value.mean())
        for key, value in segments.items()
    }
    result["mel"] = float(output.mel_loss)
    for key in ("clipped", "high_band", "rms_db", "level_vs_reference_db"):
        result[f"text_{key}"] = statistics.mean(item[key] for item in synthesized)
    result["text_dc_offset"] = statistics.mean(abs(item["dc_offset"]) for item in synthesized)
    result["text_unhealthy"] = statistics.mean(bool(health_problems(item)) for item in synthesized)
    return result


class Probe(TrainerCallback):
    def __init__(self, batch, texts, every):
        self.model, self.batch, self.texts, self.every, self.history = None, batch, texts, every, {}

    def on_train_begin(self, args, state, control, **kwargs):
        self.history[0] = score(self.model, self.batch, self.texts)

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step % self.every == 0 or state.global_step == state.max_steps:
            self.history[state.global_step] = score(self.model, self.batch, self.texts)


def run(variant: str, seed: int, train, batch, texts, tokenizer, args) -> dict:
    model, overrides = build(variant, seed, tokenizer)
    probe = Probe(batch, texts, args.eval_every)
    probe.model = model
    with tempfile.TemporaryDirectory() as output_dir:
        training_args = VitsTrainingArguments(
            output_dir,
            max_steps=args.steps,
            per_device_train_batch_size=8,
            learning_rate=2e-4,
            seed=seed,
            use_cpu=True,
            report_to="none",
            save_strategy="no",
            logging_steps=1,
            disable_tqdm=True,
            dataloader_num_workers=0,
            **overrides,
        )
        trainer = VitsTrainer(model, training_args, train_dataset=train, callbacks=[probe])
        trainer.train()
    logs = [h for h in trainer.state.log_history if "loss/disc" in h]
    half = logs[len(logs) // 2 :]
    final = {name: statistics.mean(h[f"loss/{name}"] for h in half) for name in ("disc", "gen", "fm")}
    return {"variant": variant, "seed": seed, "history": probe.history, "second_half": final}


def report(results: list[dict], args, device: str) -> str:
    lines = [
        "# Tone and offset: what the decoder's initialization does (tiny VITS, demo corpus, CPU)",
        "",
        f"{datetime.date.today().isoformat()}, {device}, torch {torch.__version__}, transformers "
        f"{transformers.__version__}.",
        "",
        "```bash",
        "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "```",
        "",
        "Held-out decoded segments (`segment_*`: the decoder on the posterior latents of the recording, against the "
        "recorded segment) and held-out texts synthesized from text by the stock `VitsModel` (`text_*`). clipped: "
        "share of samples at |x| >= 0.99; |DC|: mean absolute offset; >7.5k: share of power above 7.5 kHz; level: "
        "dB against the recording; STFT dist: full-band multi-resolution log-magnitude distance (dB); unhealthy: "
        "share of synthesized clips that fail a health check.",
        "",
        "| variant | seed | step | seg clipped | seg abs DC | seg >7.5k | seg level dB | seg STFT dist | mel L1 | "
        "text clipped | text abs DC | text >7.5k | text level dB | text unhealthy |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        for step, h in sorted(r["history"].items()):
            lines.append(
                f"| {r['variant']} | {r['seed']} | {step} | {h['segment_clipped']:.3f} | {h['segment_dc_offset']:.3f} "
                f"| {h['segment_high_band']:.3f} | {h['segment_level_vs_reference_db']:+.1f} | "
                f"{h['segment_spectral_distance']:.1f} | {h['mel']:.3f} | {h['text_clipped']:.3f} | "
                f"{h['text_dc_offset']:.3f} | {h['text_high_band']:.3f} | {h['text_level_vs_reference_db']:+.1f} | "
                f"{h['text_unhealthy']:.2f} |"
            )
    lines += [
        "",
        "Train losses, mean over the second half of each run:",
        "",
        "| variant | seed | disc | gen (adversarial) | fm |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in results:
        t = r["second_half"]
        lines.append(f"| {r['variant']} | {r['seed']} | {t['disc']:.3f} | {t['gen']:.3f} | {t['fm']:.3f} |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--eval_every", type=int, default=50)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--cache_dir", default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    tokenizer = build_kurmanji_tokenizer()
    with tempfile.TemporaryDirectory() as scratch:
        train, held_out = prepare_demo_corpus(tokenizer, args.cache_dir or scratch)
        torch.set_num_threads(args.threads)
        model = VitsForTraining.from_size("tiny", tokenizer.vocab_size)
        collator = DataCollatorForVits(hop_length=model.mel_config.hop_length, min_frames=model.segment_frames)
        rows = [held_out.with_format("numpy")[i] for i in range(len(held_out))]
        batch = collator(rows)
        texts = []
        for row in rows[:4]:
            waveform = torch.as_tensor(row["waveform"]).float() / 32767.0
            texts.append(
                {
                    "input_ids": torch.as_tensor(row["input_ids"]).long().unsqueeze(0),
                    "rms_db": float(10 * torch.log10(waveform.square().mean().clamp_min(1e-12))),
                }
            )
        results = [run(v, seed, train, batch, texts, tokenizer, args) for seed in args.seeds for v in args.variants]
    device = f"CPU: {cpu_name()} ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"
    text = report(results, args, device)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            handle.write(text)


if __name__ == "__main__":
    main()
