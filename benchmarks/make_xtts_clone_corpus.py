"""Make the multi-voice espeak-ng corpus of the XTTS cloning experiment (`benchmarks/xtts_clone_gpu.sh`).

    python benchmarks/make_xtts_clone_corpus.py --output_dir gpu/xtts_corpus --clips_per_voice 260

The GPU machine has no espeak-ng, so the corpus is made here and carried (the device tool carries at most 64 MiB in
all). It is an LJSpeech folder (`metadata.csv` rows `id|text||speaker`, `wavs/<id>.ogg`) plus `split.json`:

- `--training_voices` espeak-ng variants read `--clips_per_voice` sentences each, drawn from the sentences that are
  not held out;
- the held-out voice (`--held_out_voice`) reads only the `--held_out_sentences` held-out sentences (the recordings a
  clone is compared with) and `--references` other sentences (its reference clips, 3-6 s): neither that voice nor
  those held-out sentences occur in any training clip.

Audio is Ogg Vorbis (about 0.42 MB a minute against FLAC's 1.2 for these 16 kHz clips): lossy, but the synthetic
voices are the material, and at FLAC's rate the carry limit would hold three times fewer clips.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kurdish_tts.atomic import write_text_atomically  # noqa: E402
from kurdish_tts.data.demo_corpus import DEMO_SENTENCES_FILE, EspeakVoice, read_sentences, synthesize  # noqa: E402

# Spread in variant, speed and pitch so that the voices differ audibly (the four demo voices come first).
TRAINING_VOICES = (
    EspeakVoice("espeak_ku_m1", "ku+m1", speed=160, pitch=40),
    EspeakVoice("espeak_ku_f2", "ku+f2", speed=150, pitch=60),
    EspeakVoice("espeak_ku_m3", "ku+m3", speed=140, pitch=50),
    EspeakVoice("espeak_ku_f4", "ku+f4", speed=170, pitch=55),
    EspeakVoice("espeak_ku_m2", "ku+m2", speed=150, pitch=30),
    EspeakVoice("espeak_ku_f1", "ku+f1", speed=160, pitch=70),
    EspeakVoice("espeak_ku_m4", "ku+m4", speed=175, pitch=45),
)
HELD_OUT_VOICE = EspeakVoice("espeak_ku_f3_heldout", "ku+f3", speed=155, pitch=62)
SAMPLE_RATE = 16000


def sentence_pool(extra_metadata: list[Path]) -> list[str]:
    """The bundled sentences plus the texts of other espeak corpora's metadata.csv, 20-120 characters, deduplicated."""
    sentences = list(read_sentences(DEMO_SENTENCES_FILE))
    for path in extra_metadata:
        if path.is_file():
            sentences += [line.split("|")[1] for line in path.read_text(encoding="utf-8").splitlines() if "|" in line]
    return [s for s in dict.fromkeys(s.strip() for s in sentences) if 20 <= len(s) <= 120 and "|" not in s]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", default="gpu/xtts_corpus")
    parser.add_argument("--clips_per_voice", type=int, default=260)
    parser.add_argument("--training_voices", type=int, default=len(TRAINING_VOICES))
    parser.add_argument("--held_out_sentences", type=int, default=24)
    parser.add_argument("--references", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--extra_metadata",
        nargs="*",
        default=["/work/main/gpu/espeak_m1/metadata.csv", "/work/main/gpu/espeak_f2/metadata.csv"],
        help="metadata.csv files of other espeak corpora whose sentences join the pool (missing ones are skipped)",
    )
    options = parser.parse_args(argv)
    pool = sentence_pool([Path(p) for p in options.extra_metadata])
    random.Random(options.seed).shuffle(pool)
    held_out = pool[: options.held_out_sentences]
    # References are medium-length sentences (3-6 s at espeak's rates is about 40-90 characters).
    rest = pool[options.held_out_sentences :]
    references = [s for s in rest if 45 <= len(s) <= 90][: options.references]
    training_pool = [s for s in rest if s not in references]
    voices = TRAINING_VOICES[: options.training_voices]
    out = Path(options.output_dir)
    (out / "wavs").mkdir(parents=True, exist_ok=True)
    rows, split, seconds = [], {"held_out_voice": HELD_OUT_VOICE.name, "held_out": [], "references": []}, 0.0
    plan = []
    for v, voice in enumerate(voices):
        # Each voice starts at its own offset of the pool, so the voices read partly different sentences.
        start = (v * len(training_pool)) // len(voices)
        plan += [
            (voice, training_pool[(start + k) % len(training_pool)], None) for k in range(options.clips_per_voice)
        ]
    plan += [(HELD_OUT_VOICE, s, "held_out") for s in held_out]
    plan += [(HELD_OUT_VOICE, s, "references") for s in references]
    for index, (voice, sentence, role) in enumerate(plan, start=1):
        clip_id = f"xc_{index:05d}"
        # `synthesize` gives int16 PCM; Vorbis encodes floats in [-1, 1].
        samples = synthesize(sentence, voice, sample_rate=SAMPLE_RATE).astype(np.float32) / 32768.0
        sf.write(out / "wavs" / f"{clip_id}.ogg", samples, SAMPLE_RATE, format="OGG", subtype="VORBIS")
        seconds += len(samples) / SAMPLE_RATE
        rows.append(f"{clip_id}|{sentence}||{voice.name}\n")
        if role is not None:
            split[role].append(clip_id)
        if index % 100 == 0:
            print(f"{index}/{len(plan)} clips, {seconds / 60:.1f} min", flush=True)
    write_text_atomically(out / "metadata.csv", "".join(rows))
    write_text_atomically(out / "split.json", json.dumps(split, indent=1) + "\n")
    megabytes = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 1e6
    voice_lines = "\n".join(f"| `{v.name}` | `{v.voice}` | {v.speed} | {v.pitch} |" for v in [*voices, HELD_OUT_VOICE])
    readme = (
        "# XTTS cloning corpus (espeak-ng, Ogg Vorbis 16 kHz)\n\n"
        f"`python benchmarks/make_xtts_clone_corpus.py --output_dir {options.output_dir} --clips_per_voice "
        f"{options.clips_per_voice} --training_voices {options.training_voices}`: {len(rows)} clips, "
        f"{seconds / 60:.1f} min, {megabytes:.1f} MB. `split.json` names the held-out voice, its held-out sentences "
        "(read by no training voice) and its reference clips.\n\n| speaker | `-v` | `-s` | `-p` |\n|---|---|---|---|\n"
        f"{voice_lines}\n"
    )
    write_text_atomically(out / "README.md", readme)
    print(f"{len(rows)} clips, {seconds / 60:.1f} min, {megabytes:.1f} MB in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
