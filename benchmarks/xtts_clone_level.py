"""Why clones came out quiet: the XTTS-style model's own level against the recordings, and Griffin–Lim's.

    python benchmarks/xtts_clone_level.py --model M --corpus gpu/xtts_corpus --items 6 [--out results.md]

For each held-out sentence of the cloning corpus (`make_xtts_clone_corpus.py`), cloned from the corpus's first
reference clip of 3-6 s with level matching off (`VoiceCloner(match_reference_level=False)`), and for the recording
itself voiced back from its own mel by Griffin–Lim, prints (and with `--out` writes as markdown) in dB against the
recording: the plain RMS level, the active speech level (`kurdish_tts.audio.loudness`), the mean log-mel (in nats:
the model's average), and the loudest frame's mel power. A model that gets the average right but flattens its loud
frames shows a small mean difference and a large RMS one; a vocoder that loses level shows it in its own row.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from xtts_clone_eval import clip_path, read_corpus  # noqa: E402

from kurdish_tts.atomic import write_text_atomically  # noqa: E402
from kurdish_tts.audio.features import mel_spectrogram  # noqa: E402
from kurdish_tts.audio.io import load_audio, rms_db  # noqa: E402
from kurdish_tts.audio.loudness import active_level_db  # noqa: E402
from kurdish_tts.clone import VoiceCloner  # noqa: E402
from kurdish_tts.models.xtts.vocoder import GriffinLimVocoder  # noqa: E402


def figures(waveform: np.ndarray, mel_config) -> dict[str, float]:
    log_mel = mel_spectrogram(torch.from_numpy(np.ascontiguousarray(waveform, dtype=np.float32)), mel_config).T
    frame_power_db = 10 * torch.log10(torch.exp(2 * log_mel.double()).mean(dim=1))
    return {
        "rms": rms_db(waveform),
        "active": active_level_db(log_mel),
        "mean_log_mel": float(log_mel.mean()),
        "loudest_frame": float(frame_power_db.max()),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--items", type=int, default=6)
    parser.add_argument("--label", default="")
    parser.add_argument("--out", default=None, help="markdown file to write the table to")
    options = parser.parse_args(argv)
    corpus = Path(options.corpus)
    split, rows = read_corpus(corpus)
    cloner = VoiceCloner.from_pretrained(options.model, match_reference_level=False)
    rate, mel_config = cloner.sampling_rate, cloner.model.config.mel_config
    references = [load_audio(str(clip_path(corpus, i)), rate).waveform for i in split["references"]]
    reference = next((r for r in references if 3.0 <= len(r) / rate <= 6.0), references[0])
    reference_mel = cloner.reference_mel(reference)
    vocoder = GriffinLimVocoder(mel_config)

    lines = [
        f"# The clones' own level against the recordings {options.label}".rstrip(),
        "",
        f"`python benchmarks/xtts_clone_level.py --model M --corpus {options.corpus} --items {options.items}`, "
        f"{datetime.date.today()}, {platform.machine()} CPU. Differences to the recording of the same sentence: RMS "
        "and active speech level (dB), mean log-mel (nats), loudest frame's mel power (dB). `clone`: the model, level "
        "matching off; `GL(recording)`: the recording voiced back from its own mel by Griffin–Lim (32 iterations).",
        "",
        "| clip | what | RMS | active level | mean log-mel | loudest frame |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    totals = {"clone": [], "GL(recording)": []}
    for index, clip_id in enumerate(split["held_out"][: options.items]):
        recording = load_audio(str(clip_path(corpus, clip_id)), rate).waveform
        target = figures(recording, mel_config)
        recording_mel = mel_spectrogram(torch.from_numpy(recording), mel_config).T.unsqueeze(0)
        candidates = {
            "clone": cloner.clone(rows[clip_id][0], reference_mel).waveform,
            "GL(recording)": vocoder(recording_mel)[0].numpy(),
        }
        for what, waveform in candidates.items():
            difference = {key: value - target[key] for key, value in figures(waveform, mel_config).items()}
            totals[what].append(difference)
            lines.append(
                f"| {index:02d} | {what} | {difference['rms']:+.1f} | {difference['active']:+.1f} | "
                f"{difference['mean_log_mel']:+.2f} | {difference['loudest_frame']:+.1f} |"
            )
    lines.append("")
    for what, differences in totals.items():
        mean = {key: np.mean([d[key] for d in differences]) for key in differences[0]}
        lines.append(
            f"Mean, {what}: RMS {mean['rms']:+.1f} dB, active level {mean['active']:+.1f} dB, mean log-mel "
            f"{mean['mean_log_mel']:+.2f} nats, loudest frame {mean['loudest_frame']:+.1f} dB."
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if options.out:
        write_text_atomically(Path(options.out), text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
