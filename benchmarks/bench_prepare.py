"""Preprocessing speed: clips/s and real-time factor for num_proc 1 and 2, cold and warm cache, plus a 10k-clip reload.

    python benchmarks/bench_prepare.py                       # 1000 clips of 3 s, 22.05 kHz WAV (LJSpeech-like)
    python benchmarks/bench_prepare.py --num_clips 2000 --reload_clips 10000

Writes an LJSpeech folder of synthetic speech-like WAV clips (harmonics + envelope + noise, so that the resampler and
the STFT do real work) with real Kurmanji sentences, then times `prepare_dataset` end to end: source loading and
fingerprinting, decoding, resampling, normalization, tokenization, mel, Arrow writing and the final reload. The warm
numbers are a second call with the same inputs (cache hit: fingerprint + memory-mapped reload). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from kurdish_tts.data.demo_corpus import DEMO_SENTENCES_FILE, read_sentences
from kurdish_tts.data.preprocess import PreprocessConfig, prepare_dataset
from kurdish_tts.data.sources import load_ljspeech
from kurdish_tts.text import build_kurmanji_tokenizer, normalize_text, tokenizer_characters


def _clip(seconds: float, sampling_rate: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(seconds * sampling_rate)) / sampling_rate
    f0 = rng.uniform(90, 220)
    signal = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6)) / k for k in range(1, 6))
    envelope = 0.5 * (1 - np.cos(2 * np.pi * 3 * t / seconds)) + 0.1
    signal = signal * envelope + 0.02 * rng.standard_normal(len(t))
    return (0.5 * signal / np.abs(signal).max()).astype(np.float32)


def make_corpus(root: Path, num_clips: int, seconds: float, sampling_rate: int, distinct: int | None = None) -> Path:
    """LJSpeech folder with `num_clips` rows; only `distinct` audio files are synthesized, the rest are symlinks."""
    rng = np.random.default_rng(0)
    # 3 s at 62.5 frames/s fit at most ~93 characters once blanks are interspersed.
    speakable = tokenizer_characters(build_kurmanji_tokenizer())
    sentences = [
        s
        for s in read_sentences(DEMO_SENTENCES_FILE)
        if len(s) <= int(seconds * 62.5 / 2) - 4 and not normalize_text(s, speakable).removed_letters
    ]
    wavs = root / "wavs"
    wavs.mkdir(parents=True, exist_ok=True)
    distinct = min(distinct or num_clips, num_clips)
    lines = []
    for index in range(num_clips):
        name = f"clip{index:06d}"
        if index < distinct:
            sf.write(wavs / f"{name}.wav", _clip(seconds, sampling_rate, rng), sampling_rate, subtype="PCM_16")
        else:
            os.symlink(wavs / f"clip{index % distinct:06d}.wav", wavs / f"{name}.wav")
        lines.append(f"{name}|{sentences[index % len(sentences)]}")
    (root / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def _timed_prepare(corpus: Path, cache: Path, tokenizer, config, num_proc: int):
    start = time.perf_counter()
    prepared = prepare_dataset(load_ljspeech(corpus), tokenizer, config, cache, num_proc=num_proc)
    return time.perf_counter() - start, prepared


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num_clips", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--sampling_rate", type=int, default=22050, help="rate of the source WAVs (resampled to 16k)")
    parser.add_argument("--reload_clips", type=int, default=10000, help="size of the warm-reload test (0 to skip)")
    parser.add_argument("--work_dir", default=None, help="scratch folder (default: a temporary one, removed after)")
    args = parser.parse_args(argv)

    work = Path(args.work_dir or tempfile.mkdtemp(prefix="bench_prepare_"))
    tokenizer = build_kurmanji_tokenizer()
    config = PreprocessConfig()
    corpus = make_corpus(work / "corpus", args.num_clips, args.seconds, args.sampling_rate)
    audio_hours = args.num_clips * args.seconds / 3600
    rows = []
    try:
        for num_proc in (1, 2):
            cache = work / f"cache_np{num_proc}"
            cold, prepared = _timed_prepare(corpus, cache, tokenizer, config, num_proc)
            assert not prepared.from_cache and len(prepared.dataset) == args.num_clips, prepared.info["dropped"]
            warm, again = _timed_prepare(corpus, cache, tokenizer, config, num_proc)
            assert again.from_cache
            for state, seconds in (("cold", cold), ("warm", warm)):
                rows.append((args.num_clips, num_proc, state, seconds))
            cache_bytes = _size(prepared.path / "dataset")
        reload_row = None
        if args.reload_clips:
            big = make_corpus(work / "big", args.reload_clips, args.seconds, args.sampling_rate, distinct=500)
            cold, _ = _timed_prepare(big, work / "cache_big", tokenizer, config, 2)
            warm, again = _timed_prepare(big, work / "cache_big", tokenizer, config, 2)
            assert again.from_cache and len(again.dataset) == args.reload_clips
            rows.append((args.reload_clips, 2, "cold", cold))
            reload_row = (args.reload_clips, 2, "warm", warm)
            rows.append(reload_row)
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)

    print(
        f"\nDevice: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
        f"{args.seconds:g}-second {args.sampling_rate} Hz WAV clips → 16 kHz\n"
    )
    print("| clips | num_proc | cache | seconds | clips/s | real-time factor |")
    print("| --- | --- | --- | --- | --- | --- |")
    for clips, num_proc, state, seconds in rows:
        rtf = clips * args.seconds / seconds
        print(f"| {clips} | {num_proc} | {state} | {seconds:.2f} | {clips / seconds:.0f} | {rtf:.0f}× |")
    print(
        f"\nCache size: {cache_bytes / 1e6:.1f} MB for {audio_hours * 60:.1f} min of audio "
        f"= {cache_bytes / 1e6 / audio_hours:.0f} MB per hour"
    )


if __name__ == "__main__":
    main()
