"""Clone a held-out voice with a trained XTTS-style model and score every clone (issue 20's table).

    python benchmarks/xtts_clone_eval.py --model runs/xtts/best_model --corpus gpu/xtts_corpus --out OUT --items 8

The corpus is one of `benchmarks/make_xtts_clone_corpus.py` (its `split.json` names the held-out voice, its
held-out sentences and its reference clips). The first reference clip of 3-6 s is the voice to clone; each held-out
sentence is cloned (`kurdish_tts.clone.VoiceCloner`, the same path as `kurdish-tts clone`) and scored against the
held-out voice's recording of it (`kurdish_tts.evaluation.xtts_clone.score_clone`): duration ratio, stop-head firing,
the attention path, waveform health, MCD, and the speaker similarity of the clone to the reference against the
training voices. Every vocoder of `--vocoders` voices the same generated mels (`griffin-lim`, Griffin-Lim with more
iterations as `griffin-lim-100`, or a local neural vocoder folder); one that cannot be loaded offline is reported,
not skipped silently.

Writes to `--out`: `clone_table.md` and `clone_table.json`, `wavs/` (reference, recordings, clones per vocoder),
`attention/` (one PNG per clone, decoder steps against text tokens), `spectrograms/` (the recording and the first
vocoder's clone, full band from 0 Hz to Nyquist, where a DC offset or a tone would show).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kurdish_tts.atomic import write_json_atomically, write_text_atomically  # noqa: E402
from kurdish_tts.audio.io import load_audio, write_audio  # noqa: E402
from kurdish_tts.clone import VoiceCloner  # noqa: E402
from kurdish_tts.evaluation.plots import alignment_figure, full_band_spectrogram_figure, save_figure  # noqa: E402
from kurdish_tts.evaluation.xtts_clone import score_clone, speaker_similarity, summarize_clones  # noqa: E402
from kurdish_tts.models.xtts.vocoder import GriffinLimVocoder, load_vocoder  # noqa: E402


def read_corpus(corpus: Path):
    split = json.loads((corpus / "split.json").read_text(encoding="utf-8"))
    rows = {}
    for line in (corpus / "metadata.csv").read_text(encoding="utf-8").splitlines():
        clip_id, text, _, speaker = line.split("|")
        rows[clip_id] = (text, speaker)
    return split, rows


def clip_path(corpus: Path, clip_id: str) -> Path:
    for suffix in (".ogg", ".flac", ".wav"):
        path = corpus / "wavs" / f"{clip_id}{suffix}"
        if path.is_file():
            return path
    raise FileNotFoundError(f"no audio for {clip_id} in {corpus / 'wavs'}")


def make_vocoders(names: list[str], mel_config) -> tuple[dict, dict]:
    vocoders, unavailable = {}, {}
    for name in names:
        try:
            if name == "griffin-lim-100":
                vocoders[name] = GriffinLimVocoder(mel_config, n_iter=100)
            else:
                vocoders[name] = load_vocoder(name, mel_config)
        except (OSError, ValueError) as error:
            unavailable[name] = str(error).splitlines()[0]
            print(f"vocoder {name} unavailable: {unavailable[name]}", flush=True)
    return vocoders, unavailable


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="saved XTTS model folder (e.g. a run's best_model)")
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--items", type=int, default=8, help="held-out sentences to clone")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--vocoders",
        default="griffin-lim,griffin-lim-100,microsoft/speecht5_hifigan",
        help="comma-separated: griffin-lim, griffin-lim-100, or a neural vocoder folder / Hub id",
    )
    parser.add_argument("--max_seconds", type=float, default=20.0, help="generation's length cap per clone")
    parser.add_argument("--label", default="", help="what model this is, for the table's heading")
    options = parser.parse_args(argv)
    corpus, out = Path(options.corpus), Path(options.out)
    split, rows = read_corpus(corpus)
    cloner = VoiceCloner.from_pretrained(options.model, options.device, max_seconds=options.max_seconds)
    rate = cloner.sampling_rate
    config = cloner.model.config
    seconds_per_step = config.reduction_factor * config.mel_config.hop_length / rate

    references = [load_audio(str(clip_path(corpus, i)), rate).waveform for i in split["references"]]
    durations = [len(r) / rate for r in references]
    chosen = next(
        (k for k, d in enumerate(durations) if 3.0 <= d <= 6.0), int(np.argmin(np.abs(np.subtract(durations, 4.5))))
    )
    reference = references[chosen]
    reference_id = split["references"][chosen]
    voices = {}
    for clip_id, (_, speaker) in rows.items():
        if speaker != split["held_out_voice"] and speaker not in voices:
            voices[speaker] = load_audio(str(clip_path(corpus, clip_id)), rate).waveform
    vocoders, unavailable = make_vocoders([v for v in options.vocoders.split(",") if v], config.mel_config)
    (out / "wavs").mkdir(parents=True, exist_ok=True)
    (out / "attention").mkdir(parents=True, exist_ok=True)
    (out / "spectrograms").mkdir(parents=True, exist_ok=True)
    write_audio(out / "wavs" / "reference.wav", reference, rate)
    reference_mel = cloner.reference_mel(reference)

    scores = {name: [] for name in vocoders}

    def save():
        return write_results(
            out, options, scores, unavailable, recording_similarity, reference_id, reference, rate, split, voices
        )

    # The ceiling of the similarity measure: the held-out voice's own recordings against its reference and the
    # training voices. A clone cannot be expected to beat it, and if its margin is small the measure cannot tell
    # these voices apart.
    recording_similarity = []
    for index, clip_id in enumerate(split["held_out"][: options.items]):
        text = rows[clip_id][0]
        recording = load_audio(str(clip_path(corpus, clip_id)), rate).waveform
        write_audio(out / "wavs" / f"{index:02d}-recording.wav", recording, rate)
        recording_similarity.append(speaker_similarity(recording, reference, voices))
        for name, vocoder in vocoders.items():
            result = cloner.clone(text, reference_mel, vocoder=vocoder)
            tag = name.replace("/", "_")
            result.save(out / "wavs" / f"{index:02d}-clone-{tag}.wav")
            score = score_clone(
                f"{index:02d}",
                np.clip(result.waveform, -1, 1),
                recording,
                rate,
                result.attention,
                result.hit_max_length,
                seconds_per_step,
                reference,
                voices,
                synthesis_seconds=result.seconds,
                gain_db=result.gain_db,
            )
            scores[name].append(score)
            if name == next(iter(vocoders)):
                figure = alignment_figure(
                    result.attention.T,
                    title=f"clone {index:02d}: {text[:60]}",
                    xlabel=f"decoder step ({config.reduction_factor} mel frames each)",
                )
                save_figure(figure, out / "attention" / f"{index:02d}.png")
                clips = [("recording", recording), (f"clone ({name})", np.clip(result.waveform, -1, 1))]
                figure = full_band_spectrogram_figure(clips, rate, title=f"clone {index:02d}: {text[:60]}")
                save_figure(figure, out / "spectrograms" / f"{index:02d}.png")
            print(
                f"{index:02d} {name}: ratio {score.duration_ratio:.2f} stop {score.stopped_by_head} reads "
                f"{score.reads_text} (cov {score.coverage:.2f}, mono {score.monotonic_fraction:.2f}) mcd "
                f"{score.mcd:.2f} sim {score.similarity['to_reference']:.3f}/{score.similarity['to_others_max']:.3f}",
                flush=True,
            )
        save()
    payload = save()
    print(render(payload))
    return 0


def write_results(
    out, options, scores, unavailable, recording_similarity, reference_id, reference, rate, split, voices
):
    """The table so far (markdown and JSON): written after every clip, so a run cut short still leaves its rows."""
    summaries = {name: summarize_clones(items) for name, items in scores.items()}
    payload = {
        "model": options.model,
        "label": options.label,
        "reference": reference_id,
        "reference_seconds": len(reference) / rate,
        "held_out_voice": split["held_out_voice"],
        "training_voices": sorted(voices),
        "unavailable_vocoders": unavailable,
        "recording_similarity": {
            key: float(np.mean([r[key] for r in recording_similarity])) for key in ("to_reference", "margin")
        },
        "summaries": summaries,
        "clips": {name: [s.to_dict() for s in items] for name, items in scores.items()},
    }
    write_json_atomically(out / "clone_table.json", payload, indent=1)
    write_text_atomically(out / "clone_table.md", render(payload))
    return payload


def _f(value, digits=2):
    return "–" if value is None or (isinstance(value, float) and not np.isfinite(value)) else f"{value:.{digits}f}"


def render(payload: dict) -> str:
    lines = [
        f"# Cloning the held-out voice `{payload['held_out_voice']}` {payload['label']}".rstrip(),
        "",
        f"Model `{payload['model']}`; reference clip `{payload['reference']}` ({payload['reference_seconds']:.1f} s); "
        f"training voices: {', '.join(payload['training_voices'])}. Per clone: duration ratio (clone / recording, "
        "0.8-1.25 wanted), stopped by the head within 0.3 s of the text's end, attention path monotonic and covering "
        "every token, waveform-health problems, MCD (dB, DTW) against the recording, speaker similarity (cosine of "
        "mean mel-cepstra) to the reference and to the nearest training voice, real-time factor, and the gain that "
        "brought the clone to the reference's speech level (the model's own output was that much quieter).",
        "",
    ]
    for name, clips in payload["clips"].items():
        lines += [
            f"## Vocoder `{name}`",
            "",
            "| clip | duration ratio | stopped by head | reads text (coverage, monotonic) | health problems | MCD | "
            "sim. to reference | sim. to nearest other | RTF | level gain (dB) |",
            "| --- | ---: | --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for c in clips:
            sim = c["similarity"]
            lines.append(
                f"| {c['name']} | {_f(c['duration_ratio'])} | {'yes' if c['stopped_by_head'] else 'no'} | "
                f"{'yes' if c['reads_text'] else 'no'} ({_f(c['coverage'])}, {_f(c['monotonic_fraction'])}) | "
                f"{', '.join(c['health_problems']) or 'none'} | {_f(c['mcd'])} | {_f(sim['to_reference'], 3)} | "
                f"{_f(sim['to_others_max'], 3)} ({sim['closest_other']}) | {_f(c['rtf'], 3)} | "
                f"{_f(c.get('gain_db'), 1)} |"
            )
        s = payload["summaries"][name]
        lines += [
            "",
            f"Mean over {s['clips']} clones: duration ratio {_f(s['duration_ratio'])} ({_f(100 * s['duration_in_range'], 0)} % "
            f"in 0.8-1.25), stopped by head {_f(100 * s['stopped_by_head'], 0)} %, reads text "
            f"{_f(100 * s['reads_text'], 0)} %, healthy {_f(100 * s['healthy'], 0)} %, MCD {_f(s['mcd'])} dB, "
            f"similarity to reference {_f(s['similarity_to_reference'], 3)} (margin over nearest training voice "
            f"{_f(s['similarity_margin'], 3)}), RTF {_f(s['rtf'], 3)}, level gain {_f(s.get('gain_db'), 1)} dB.",
            "",
        ]
    ceiling = payload["recording_similarity"]
    lines += [
        f"The held-out voice's own recordings score {_f(ceiling['to_reference'], 3)} against the reference (margin over "
        f"the nearest training voice {_f(ceiling['margin'], 3)}): the ceiling of the similarity columns.",
        "",
    ]
    for name, reason in payload["unavailable_vocoders"].items():
        lines += [f"Vocoder `{name}` could not be used: {reason}", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
