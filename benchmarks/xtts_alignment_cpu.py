"""Does the XTTS-style model learn to read its text? Train the tiny model on the CPU and score its alignment.

    python benchmarks/xtts_alignment_cpu.py --corpus gpu/xtts_corpus --variant baseline --steps 600

The corpus is the multi-voice espeak-ng corpus of `benchmarks/make_xtts_clone_corpus.py` (its `split.json` names the
held-out voice and sentences). Training uses the first `--train_voices` training voices; scoring uses held-out
sentences read by the held-out voice, cloned from that voice's reference clip, so nothing scored was trained on:

- teacher forced: the text attention's `diagonal_focus` and whether its peak path reads the text
  (`kurdish_tts.evaluation.xtts_clone.attention_path`), and the stop-step error;
- free running (`generate_mel(output_attentions=True)`, capped at 2x the recording): the same path figures, whether
  the stop head ended generation within 0.3 s of the text's end, and the duration ratio (generated / recorded).

Each variant is a named set of `XttsConfig` and `XttsTrainingArguments` overrides (`VARIANTS`); results are appended
as JSON lines to `--out` so the experiments of `benchmarks/README.md` ("XTTS alignment") can be re-read.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kurdish_tts.audio.features import MelConfig  # noqa: E402
from kurdish_tts.data import PreprocessConfig, load_ljspeech, prepare_dataset  # noqa: E402
from kurdish_tts.evaluation.xtts_clone import attention_path, stopped_at_text_end  # noqa: E402
from kurdish_tts.models.xtts import XttsConfig, XttsForTextToSpeech  # noqa: E402
from kurdish_tts.text import build_kurmanji_tokenizer  # noqa: E402
from kurdish_tts.trainers.xtts_arguments import XttsTrainingArguments  # noqa: E402
from kurdish_tts.trainers.xtts_trainer import XttsTrainer  # noqa: E402

# name -> (XttsConfig overrides, XttsTrainingArguments overrides). `baseline` is the `xtts_tiny` recipe's model and
# optimizer (tiny size, MMS mel, r = 4, lr 1e-3 cosine).
# The tiny model 64 wide instead of 16, with aligned position tables.
ALIGNED_W64 = {"position_init": "aligned", "hidden_size": 64, "intermediate_size": 128, "prenet_hidden_size": 64}

VARIANTS: dict[str, tuple[dict, dict]] = {
    # The code before issue 20: no end-of-text marker, the guided term averaged over every (step, token) pair.
    "baseline": ({"mark_text_end": False, "position_init": "learned"}, {"guided_attention_reduction": "element"}),
    "ga_step": ({"mark_text_end": False, "position_init": "learned"}, {}),
    "ga_step_end": ({"position_init": "learned"}, {}),
    "ga_step_end_pos20": ({"position_init": "learned"}, {"stop_pos_weight": 20.0}),
    "ga_element_end": ({"position_init": "learned"}, {"guided_attention_reduction": "element"}),
    "ga_step_end_r2": ({"position_init": "learned", "reduction_factor": 2}, {}),
    # Tacotron 2's prenet dropout (the tiny size has none): the decoder cannot lean on the previous frames.
    "ga_step_end_prenet05": ({"position_init": "learned", "prenet_dropout": 0.5}, {}),
    "ga3_step_end_prenet05": (
        {"position_init": "learned", "prenet_dropout": 0.5},
        {"loss_weight_guided_attention": 3.0},
    ),
    # Position tables that start aligned: text position n and decoder step t on one sinusoidal time axis.
    "aligned_ga_step_end": ({"position_init": "aligned"}, {}),
    "aligned_ga_step_end_prenet05": ({"position_init": "aligned", "prenet_dropout": 0.5}, {}),
    # Half of the decoder steps fed the model's own (teacher-forced) prediction instead of the recording.
    "ga_step_end_ss05": ({"position_init": "learned"}, {"scheduled_sampling": 0.5}),
    "aligned_ga_step_end_ss05": ({"position_init": "aligned"}, {"scheduled_sampling": 0.5}),
    "aligned_ga_step_end_ss05_r2": ({"position_init": "aligned", "reduction_factor": 2}, {"scheduled_sampling": 0.5}),
    # The tiny backbone is 16 wide: 8 sinusoid frequencies cannot resolve 100 text positions sharply.
    "aligned_ga_step_end_ss05_w64": (ALIGNED_W64, {"scheduled_sampling": 0.5}),
    # The same at the small size's reduction factor: two frames (32 ms) per step, so a step passes fewer tokens.
    "aligned_ga_step_end_ss05_w64_r2": ({**ALIGNED_W64, "reduction_factor": 2}, {"scheduled_sampling": 0.5}),
    # And with the prenet dropout of the small and base sizes (0.5; the tiny size has none, for the tests): teacher
    # forced, the decoder above copies the previous frames, and free running it then has nothing to copy.
    "aligned_ga_step_end_ss05_w64_r2_prenet05": (
        {**ALIGNED_W64, "reduction_factor": 2, "prenet_dropout": 0.5},
        {"scheduled_sampling": 0.5},
    ),
}


def load(corpus: Path, train_voices: int, cache_dir: str, config: XttsConfig):
    tokenizer = build_kurmanji_tokenizer()
    split = json.loads((corpus / "split.json").read_text())
    dataset = prepare_dataset(
        load_ljspeech(corpus), tokenizer, PreprocessConfig(mel=config.mel_config), cache_dir
    ).dataset
    ids = dataset["id"]
    speakers = dataset["speaker"]
    voices = [s for s in dict.fromkeys(speakers) if s != split["held_out_voice"]][:train_voices]
    train = dataset.select([i for i, s in enumerate(speakers) if s in voices])
    held_out = dataset.select([ids.index(i) for i in split["held_out"]])
    references = dataset.select([ids.index(i) for i in split["references"]])
    return tokenizer, train, held_out, references


def score(model, tokenizer, held_out, reference_mel, items: int) -> dict:
    """Teacher-forced and free-running alignment figures on the first `items` held-out clips."""
    config = model.config
    r = config.reduction_factor
    seconds_per_step = r * config.mel_config.hop_length / config.mel_config.sampling_rate
    rows = []
    model.eval()
    for index in range(min(items, len(held_out))):
        row = held_out[index]
        ids = torch.tensor([row["input_ids"]])
        mel = torch.tensor(np.asarray(row["mel"], dtype=np.float32)).unsqueeze(0)  # (1, frames, n_mels)
        frames = mel.shape[1]
        padded = -(-frames // r) * r
        mel = torch.nn.functional.pad(mel, (0, 0, 0, padded - frames), value=float(np.log(1e-5)))
        with torch.no_grad():
            forced = model(
                ids, mel=mel, mel_lengths=torch.tensor([frames]), reference_mel=reference_mel, output_attentions=True
            )
            steps = -(-frames // r)
            forced_path = attention_path(forced.text_mel_attention[0, :steps].numpy())
            fired = torch.sigmoid(forced.stop_logits[0, :steps]) > 0.5
            first = int(fired.float().argmax()) if fired.any() else steps
            generated = model.generate_mel(
                ids,
                reference_mel=reference_mel,
                max_new_frames=min(2 * padded, config.max_mel_frames),
                output_attentions=True,
            )
        length = int(generated.mel_lengths[0])
        free_steps = -(-length // r)
        free_path = attention_path(generated.text_mel_attention[0, :free_steps].numpy())
        stopped, overrun = stopped_at_text_end(free_path, bool(generated.hit_max_length[0]), seconds_per_step)
        rows.append(
            {
                "tf_focus": forced_path.diagonal_focus,
                "tf_reads": forced_path.reads_text,
                "tf_stop_error": abs(first - (steps - 1)),
                "free_focus": free_path.diagonal_focus,
                "free_reads": free_path.reads_text,
                "free_coverage": free_path.coverage,
                "free_monotonic": free_path.monotonic_fraction,
                "stopped_by_head": stopped,
                "hit_cap": bool(generated.hit_max_length[0]),
                "duration_ratio": length / frames,
            }
        )
    summary = {key: float(np.mean([row[key] for row in rows])) for key in rows[0]}
    summary["rows"] = rows
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default="gpu/xtts_corpus")
    parser.add_argument("--variant", default="baseline", choices=list(VARIANTS))
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--train_voices", type=int, default=4)
    parser.add_argument("--items", type=int, default=6, help="held-out clips scored")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache_dir", default=".cache/kurdish_tts")
    parser.add_argument("--out", default="benchmarks/results/xtts_alignment_cpu.jsonl")
    parser.add_argument("--save_model", default=None, help="save the trained model and tokenizer to this folder")
    options = parser.parse_args(argv)
    torch.set_num_threads(options.threads)
    config_overrides, arg_overrides = VARIANTS[options.variant]
    tokenizer = build_kurmanji_tokenizer()
    config = XttsConfig.for_size(
        "tiny",
        vocab_size=tokenizer.vocab_size,
        pad_token_id=tokenizer.pad_token_id,
        mel=MelConfig(),
        **config_overrides,
    )
    tokenizer, train, held_out, references = load(
        Path(options.corpus), options.train_voices, options.cache_dir, config
    )
    torch.manual_seed(options.seed)
    model = XttsForTextToSpeech(config)
    args = XttsTrainingArguments(
        **{
            "output_dir": "/tmp/xtts_alignment_cpu",
            "report_to": "none",
            "max_steps": options.steps,
            "per_device_train_batch_size": 8,
            "learning_rate": 1e-3,
            "warmup_steps": 0.05,
            "lr_scheduler_type": "cosine",
            "logging_steps": 50,
            "save_strategy": "no",
            "disable_tqdm": True,
            "dataloader_num_workers": 0,
            "use_cpu": True,
            "seed": options.seed,
            **arg_overrides,
        }
    )
    trainer = XttsTrainer(model, args, train_dataset=train)
    began = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - began
    reference = torch.tensor(np.asarray(references[0]["mel"], dtype=np.float32)).unsqueeze(0)
    result = score(trainer.model, tokenizer, held_out, reference, options.items)
    losses = {k: v for k, v in trainer.state.log_history[-2].items() if k.startswith("loss")}
    record = {
        "variant": options.variant,
        "steps": options.steps,
        "train_clips": len(train),
        "seed": options.seed,
        "train_seconds": round(seconds),
        "last_losses": losses,
        **{k: v for k, v in result.items() if k != "rows"},
        "command": "python benchmarks/xtts_alignment_cpu.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    print(json.dumps(record, indent=1))
    with open(options.out, "a", encoding="utf-8") as file:
        file.write(json.dumps({**record, "rows": result["rows"]}) + "\n")
    if options.save_model:
        trainer.model.save_pretrained(options.save_model)
        tokenizer.save_pretrained(options.save_model)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
