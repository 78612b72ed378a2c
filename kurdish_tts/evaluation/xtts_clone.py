"""What a voice clone of the XTTS-style model is scored on: does it read its text (a monotonic attention path over
every token), does it stop where the text ends, how long is it, how healthy is its waveform, how far is it from the
recording (MCD) and whose voice is it (speaker similarity).

Pure functions of arrays (plus the package's MCD and waveform-health code), so that the benchmark script
(`benchmarks/xtts_clone_eval.py`), the GPU experiment and the tests score clones the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..audio.features import MelConfig, mel_spectrogram
from .mcd import mel_cepstral_distortion, mel_cepstrum
from .waveform_health import health_problems, waveform_health

# A decoder step's attention peak may fall back by this many tokens without breaking monotonicity: the Kurmanji
# tokenizer intersperses a blank between characters, and a peak that wavers between a character and its blank is
# reading, not going back.
BACKWARD_TOLERANCE = 1
# A path covers a token when some step's peak lies within this many tokens of it (blanks are often skipped over).
COVERAGE_RADIUS = 1
# How close to the end of the text generation must stop (the bound).
STOP_TOLERANCE_SECONDS = 0.3


@dataclass
class AttentionPath:
    """
    The path of an attention matrix's peaks (one per decoder step), and whether it reads the text.

    Args:
        steps (`int`), tokens (`int`): The matrix's size.
        monotonic_fraction (`float`):
            Share of steps (after the first) whose peak lies no more than `BACKWARD_TOLERANCE` tokens before the
            furthest peak of the steps before it.
        coverage (`float`):
            Share of the tokens within `COVERAGE_RADIUS` of some step's peak.
        first_peak (`int`), last_peak (`int`): The peak of the first and of the last step.
        max_jump (`int`): The largest forward move of the peak between two steps, in tokens.
        end_step (`int` or `None`): The first step whose peak reaches the last `COVERAGE_RADIUS + 1` tokens (the
            text's end); `None` if none does.
        diagonal_focus (`float`):
            Mean attention mass within ±10 % of the text of the straight diagonal `n = t N / T` (1 for a perfect
            uniform-rate alignment; about 0.2 for attention spread evenly).
    """

    steps: int
    tokens: int
    monotonic_fraction: float
    coverage: float
    first_peak: int
    last_peak: int
    max_jump: int
    end_step: int | None
    diagonal_focus: float

    @property
    def reads_text(self) -> bool:
        """Monotonic (≥ 95 % of moves), covering every token (≥ 95 %, blanks included), from the start to the end."""
        return (
            self.monotonic_fraction >= 0.95
            and self.coverage >= 0.95
            and self.first_peak <= 2
            and self.end_step is not None
        )

    def to_dict(self) -> dict:
        return {**asdict(self), "reads_text": self.reads_text}


def attention_path(attention: np.ndarray) -> AttentionPath:
    """Score one example's text attention.

    Args:
        attention (`np.ndarray` of shape `(steps, tokens)`):
            Attention of each real decoder step to each real text token (rows sum to 1), e.g. a slice of
            `XttsGenerationOutput.text_mel_attention` or `XttsOutput.text_mel_attention`.

    Returns:
        [`AttentionPath`].
    """
    attention = np.asarray(attention, dtype=np.float64)
    if attention.ndim != 2 or attention.shape[0] == 0 or attention.shape[1] == 0:
        raise ValueError(f"attention must be a non-empty (steps, tokens) matrix, got shape {attention.shape}")
    steps, tokens = attention.shape
    peaks = attention.argmax(axis=1)
    moves = np.diff(peaks)
    # Against the furthest token read so far, not the previous step: a path that slips back one token per step would
    # pass a step-to-step test while reading the text backwards.
    monotonic = (
        float((peaks[1:] >= np.maximum.accumulate(peaks)[:-1] - BACKWARD_TOLERANCE).mean()) if len(moves) else 1.0
    )
    covered = np.zeros(tokens, dtype=bool)
    for offset in range(-COVERAGE_RADIUS, COVERAGE_RADIUS + 1):
        covered[np.clip(peaks + offset, 0, tokens - 1)] = True
    at_end = np.flatnonzero(peaks >= tokens - 1 - COVERAGE_RADIUS)
    t = (np.arange(steps) + 0.5) / steps
    n = (np.arange(tokens) + 0.5) / tokens
    band = np.abs(n[None, :] - t[:, None]) <= 0.1
    return AttentionPath(
        steps=steps,
        tokens=tokens,
        monotonic_fraction=monotonic,
        coverage=float(covered.mean()),
        first_peak=int(peaks[0]),
        last_peak=int(peaks[-1]),
        max_jump=int(moves.max()) if len(moves) and moves.max() > 0 else 0,
        end_step=int(at_end[0]) if len(at_end) else None,
        diagonal_focus=float((attention * band).sum(axis=1).mean()),
    )


def stopped_at_text_end(
    path: AttentionPath, hit_max_length: bool, seconds_per_step: float, tolerance: float = STOP_TOLERANCE_SECONDS
) -> tuple[bool, float | None]:
    """Whether generation was ended by the stop head within `tolerance` seconds after the text's end.

    The text's end is where the attention path first reaches the last tokens (`AttentionPath.end_step`); generation
    ends after `path.steps` steps. A clip that ran into the length cap, or whose path never reaches the end, did not
    stop at the end of its text.

    Returns:
        `tuple[bool, float | None]`: the verdict and the seconds from the text's end to the end of generation (`None`
        when the path never reaches the end).
    """
    if path.end_step is None:
        return False, None
    overrun = (path.steps - 1 - path.end_step) * seconds_per_step
    return (not hit_max_length) and overrun <= tolerance, overrun


def mean_mel_cepstrum(waveform: np.ndarray, mel_config: MelConfig | None = None) -> np.ndarray:
    """The mean mel-cepstrum (c1..c24) of a clip's voiced frames: a crude voice fingerprint for speaker similarity.

    Frames quieter than 40 dB below the clip's loudest are left out, so the pauses do not pull every voice toward
    the same silence cepstrum.
    """
    mel_config = mel_config or MelConfig()
    samples = np.ascontiguousarray(waveform, dtype=np.float32)
    cepstrum = mel_cepstrum(samples, mel_config)  # (frames, 24)
    loudest = mel_spectrogram(torch.from_numpy(samples), mel_config).numpy().max(axis=0)  # (frames,), natural log
    # The mel is a natural-log magnitude: 40 dB below the peak is ln(100) ≈ 4.6 below it.
    voiced = loudest[: len(cepstrum)] >= loudest.max() - np.log(100.0)
    frames = cepstrum[voiced] if voiced.any() else cepstrum
    return frames.mean(axis=0)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))


def speaker_similarity(
    clone: np.ndarray, reference: np.ndarray, others: Mapping[str, np.ndarray], mel_config: MelConfig | None = None
) -> dict[str, float | str]:
    """Cosine of mean mel-cepstra: the clone against its reference voice and against every other voice.

    Args:
        clone, reference (`np.ndarray` of shape `(samples,)`): The clone and a clip of the voice it should have.
        others (`Mapping[str, np.ndarray]`): A clip of each other voice (e.g. the training voices).

    Returns:
        `dict`: `to_reference`, `to_others_max` (the most similar other voice's cosine), `closest_other` (its name),
        and `margin` = `to_reference - to_others_max` (> 0: the clone is nearer the reference than any other voice).
    """
    fingerprint = mean_mel_cepstrum(clone, mel_config)
    to_reference = cosine(fingerprint, mean_mel_cepstrum(reference, mel_config))
    scores = {name: cosine(fingerprint, mean_mel_cepstrum(clip, mel_config)) for name, clip in others.items()}
    if not scores:
        return {
            "to_reference": to_reference,
            "to_others_max": float("nan"),
            "closest_other": "",
            "margin": float("nan"),
        }
    closest = max(scores, key=scores.get)
    return {
        "to_reference": to_reference,
        "to_others_max": scores[closest],
        "closest_other": closest,
        "margin": to_reference - scores[closest],
    }


@dataclass
class CloneScore:
    """One clone's row of the cloning table (see `score_clone`)."""

    name: str
    duration_ratio: float
    stopped_by_head: bool
    stop_overrun_seconds: float | None
    reads_text: bool
    monotonic_fraction: float
    coverage: float
    diagonal_focus: float
    mcd: float
    health: dict
    health_problems: list
    similarity: dict
    rtf: float | None = None
    gain_db: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def score_clone(
    name: str,
    clone: np.ndarray,
    recording: np.ndarray,
    sampling_rate: int,
    attention: np.ndarray,
    hit_max_length: bool,
    seconds_per_step: float,
    reference: np.ndarray,
    other_voices: Mapping[str, np.ndarray],
    synthesis_seconds: float | None = None,
    gain_db: float | None = None,
) -> CloneScore:
    """Every figure of one clone (all clips at `sampling_rate`, mono float in [-1, 1]).

    Args:
        clone: The model's clip. recording: The held-out speaker's recording of the same text.
        attention (`np.ndarray` of shape `(steps, tokens)`): The clone's free-running text attention.
        hit_max_length: Whether generation ran into its cap. seconds_per_step: `reduction_factor * hop / rate`.
        reference: The reference clip the voice was cloned from. other_voices: A clip of each other voice.
        synthesis_seconds: Wall time of the synthesis, for the real-time factor.
        gain_db: The level match applied to the clone (`CloneResult.gain_db`), kept so that the model's own level
            stays visible next to the health figures of the matched clip.
    """
    path = attention_path(attention)
    stopped, overrun = stopped_at_text_end(path, hit_max_length, seconds_per_step)
    health = waveform_health(clone, sampling_rate, reference=recording).to_dict()
    seconds = len(clone) / sampling_rate
    return CloneScore(
        name=name,
        duration_ratio=seconds / max(len(recording) / sampling_rate, 1e-9),
        stopped_by_head=stopped,
        stop_overrun_seconds=overrun,
        reads_text=path.reads_text,
        monotonic_fraction=path.monotonic_fraction,
        coverage=path.coverage,
        diagonal_focus=path.diagonal_focus,
        mcd=mel_cepstral_distortion(recording, clone, sampling_rate).mcd,
        health=health,
        health_problems=health_problems(health),
        similarity=speaker_similarity(clone, reference, other_voices),
        rtf=None if synthesis_seconds is None else synthesis_seconds / max(seconds, 1e-9),
        gain_db=gain_db,
    )


def summarize_clones(scores: Sequence[CloneScore]) -> dict[str, float]:
    """Means and pass rates over clones, for the table's last row and the JSON summary."""
    if not scores:
        return {}

    def mean(values):
        values = [v for v in values if v is not None and np.isfinite(v)]
        return float(np.mean(values)) if values else float("nan")

    return {
        "clips": len(scores),
        "duration_ratio": mean(s.duration_ratio for s in scores),
        "duration_in_range": mean(float(0.8 <= s.duration_ratio <= 1.25) for s in scores),
        "stopped_by_head": mean(float(s.stopped_by_head) for s in scores),
        "reads_text": mean(float(s.reads_text) for s in scores),
        "diagonal_focus": mean(s.diagonal_focus for s in scores),
        "mcd": mean(s.mcd for s in scores),
        "healthy": mean(float(not s.health_problems) for s in scores),
        "similarity_to_reference": mean(s.similarity["to_reference"] for s in scores),
        "similarity_margin": mean(s.similarity["margin"] for s in scores),
        "rtf": mean(s.rtf for s in scores),
        "gain_db": mean(s.gain_db for s in scores),
    }
