"""Synthesize a run's held-out sentences with its best model, next to the recordings; score each pair by waveform
health, full-band distance and MCD.

    python benchmarks/synthesize_held_out.py RUN_DIR CORPUS OUT_DIR [--count 4] [--device cuda]
    python benchmarks/synthesize_held_out.py --plots_only OUT_DIR   # redraw the PNGs from the WAVs there

RUN_DIR is a `train_vits.py` output folder (its `best_model` and `data_split.json`); CORPUS the LJSpeech-style folder it
trained on. Writes `<id>.synthesized.wav`, `<id>.recorded.wav`, `<id>.png` (the two log-mel spectrograms on one time
axis), `<id>.full_band.png` (the two linear spectrograms from 0 Hz to Nyquist, where an offset or a tone shows) and
`held_out.md` (text, waveform health, full-band distance, MCD, durations) to OUT_DIR: the files a person listens to and
looks at when judging whether the model speaks. `--model_dir` scores another model folder on RUN_DIR's held-out ids.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import soundfile
import torch
from matplotlib.figure import Figure

from kurdish_tts.audio.features import MelConfig, mel_spectrogram
from kurdish_tts.audio.io import load_audio, write_audio
from kurdish_tts.evaluation.mcd import mel_cepstral_distortion
from kurdish_tts.evaluation.plots import full_band_spectrogram_figure, save_figure
from kurdish_tts.evaluation.synthesis import VitsSynthesizer
from kurdish_tts.evaluation.waveform_health import waveform_health


def plot_pair(recorded: np.ndarray, synthesized: np.ndarray, sampling_rate: int, title: str, path: Path) -> Path:
    """Both log-mel spectrograms, one above the other on a shared time axis in seconds: a duration or pause mismatch
    shows as a shift, missing harmonics as a blur."""
    config = MelConfig(sampling_rate=sampling_rate)
    seconds = max(len(recorded), len(synthesized)) / sampling_rate
    figure = Figure(figsize=(10, 5), dpi=100, layout="constrained")
    axes = figure.subplots(2, 1, sharex=True)
    for ax, (name, waveform) in zip(axes, [("recorded", recorded), ("synthesized", synthesized)]):
        mel = mel_spectrogram(torch.from_numpy(waveform).float()[None], config)[0].numpy()
        extent = (0, len(waveform) / sampling_rate, 0, mel.shape[0])
        ax.imshow(mel, aspect="auto", origin="lower", interpolation="none", extent=extent, vmin=-11.5)
        ax.set(ylabel=f"{name}\nmel band", xlim=(0, seconds))
    axes[0].set_title(title)
    axes[1].set_xlabel("seconds")
    return save_figure(figure, path)


def plot_folder(out_dir: Path) -> list[Path]:
    """Redraw `<id>.png` for every `<id>.recorded.wav` / `<id>.synthesized.wav` pair in `out_dir`."""
    written = []
    for recorded_path in sorted(out_dir.glob("*.recorded.wav")):
        sample_id = recorded_path.name.removesuffix(".recorded.wav")
        rate = soundfile.info(str(recorded_path)).samplerate  # the header only: the samples are decoded once, below
        recorded = load_audio(recorded_path, rate).waveform
        synthesized = load_audio(out_dir / f"{sample_id}.synthesized.wav", rate).waveform
        written.append(plot_pair(recorded, synthesized, rate, sample_id, out_dir / f"{sample_id}.png"))
        written.append(plot_full_band(recorded, synthesized, rate, sample_id, out_dir))
    return written


def plot_full_band(recorded: np.ndarray, synthesized: np.ndarray, rate: int, title: str, out_dir: Path) -> Path:
    figure = full_band_spectrogram_figure([("recorded", recorded), ("synthesized", synthesized)], rate, title)
    return save_figure(figure, out_dir / f"{title.split(':')[0]}.full_band.png")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plots_only", type=Path, metavar="OUT_DIR", help="Only redraw the PNGs of OUT_DIR's pairs.")
    parser.add_argument("run_dir", type=Path, nargs="?")
    parser.add_argument("corpus", type=Path, nargs="?")
    parser.add_argument("out_dir", type=Path, nargs="?")
    parser.add_argument("--count", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model_dir", type=Path, default=None, help="Model folder (default: RUN_DIR/best_model).")
    args = parser.parse_args(argv)
    if args.plots_only is not None:
        written = plot_folder(args.plots_only)
        if not written:
            parser.error(f"--plots_only: no <id>.recorded.wav in {args.plots_only}")
        print("\n".join(str(path) for path in written))
        return
    if args.out_dir is None:
        parser.error("RUN_DIR, CORPUS and OUT_DIR are required (or --plots_only OUT_DIR)")

    eval_ids = sorted(json.loads((args.run_dir / "data_split.json").read_text())["eval_ids"])[: args.count]
    with open(args.corpus / "metadata.csv", encoding="utf-8", newline="") as handle:
        texts = {row[0]: row[1] for row in csv.reader(handle, delimiter="|")}
    synthesizer = VitsSynthesizer.from_pretrained(args.model_dir or args.run_dir / "best_model", device=args.device)
    rate = synthesizer.sampling_rate
    args.out_dir.mkdir(parents=True, exist_ok=True)
    lines = [
        "| id | text | clipped | mean | power > 7.5 kHz | level vs recording (dB) | full-band distance (dB) | "
        "MCD (dB) | recorded s | synthesized s | problems |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for sample_id in eval_ids:
        recorded = load_audio(next(args.corpus.glob(f"wavs/{sample_id}.*")), rate).waveform
        result = synthesizer.synthesize(texts[sample_id])
        write_audio(args.out_dir / f"{sample_id}.synthesized.wav", result.waveform, rate)
        write_audio(args.out_dir / f"{sample_id}.recorded.wav", recorded, rate)
        mcd = mel_cepstral_distortion(recorded, result.waveform, sampling_rate=rate).mcd
        health = waveform_health(result.waveform, rate, recorded)
        title = f"{sample_id}: {texts[sample_id]}"
        plot_pair(recorded, result.waveform, rate, title, args.out_dir / f"{sample_id}.png")
        plot_full_band(recorded, result.waveform, rate, title, args.out_dir)
        lines.append(
            f"| {sample_id} | {texts[sample_id]} | {100 * health.clipped:.2f} % | {health.dc_offset:+.4f} | "
            f"{100 * health.high_band:.2f} % | {health.level_vs_reference_db:+.1f} | {health.spectral_distance:.1f} | "
            f"{mcd:.2f} | {len(recorded) / rate:.2f} | {len(result.waveform) / rate:.2f} | "
            f"{'; '.join(health.problems()) or 'none'} |"
        )
    (args.out_dir / "held_out.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
