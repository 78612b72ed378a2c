"""Objective metrics of synthesized speech against recordings of the same texts, for every model family.

Each metric group, its keys in reports and in the Trainer's evaluation metrics (with the `eval_` prefix), and how each
is pooled over a held-out set:

| group | keys | per clip | over the set |
| --- | --- | --- | --- |
| `mcd` | `mcd` | mel-cepstral distortion with DTW, dB (`mcd.py`) | mean over clips |
| `duration` | `duration_ratio`, `duration_error` | synthesized / reference length, edge silence trimmed | mean ratio; mean of abs(ratio - 1) |
| `f0` | `f0_rmse_hz`, `f0_rmse_cents` | F0 difference on DTW-aligned frames voiced in both (pYIN) | RMSE over all such frames pooled |
| `rtf` | `rtf` | synthesis wall time / audio length | total time / total audio (device in the report) |
| `stop_failure` | `stop_failure_rate` | generation hit its maximum length (autoregressive models) | share of clips |
| `cer` | `cer` | character edits of an ASR transcript vs the text (`asr.py`) | total edits / total reference characters |
| `health` | `clipped`, `dc_offset`, `high_band`, `low_band`, `level_db`, `spectral_distance`, `unhealthy` | waveform health against the recording (`waveform_health.py`) | mean (absolute DC offset); `unhealthy`: share of clips failing a check |

The mel-based metrics (MCD, the mel loss) give the DC and Nyquist bins no weight, so a full-scale tone or offset
scores well on them; `health` looks at the samples and at every STFT bin.

Everything but `duration_ratio` and `level_db` is lower-is-better (`LOWER_IS_BETTER`); a duration ratio is best at 1, so best-model
selection uses `duration_error`. F0 RMSE is pooled over frames rather than averaged per clip: a clip with three voiced
frames would otherwise weigh as much as one with three hundred. Cents (1200 log2 of the F0 ratio) compare voices of
different registers fairly; Hz is the familiar unit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import librosa
import numpy as np

from ..audio.features import MelConfig
from ..audio.io import resample, trim_silence
from .catalog import (
    DEFAULT_METRICS,
    DEFAULT_TRIM_TOP_DB,
    LOWER_IS_BETTER,
    METRIC_GROUPS,
    METRIC_LABELS,
    metric_keys,
    parse_metric_groups,
)
from .mcd import DEFAULT_NUM_COEFFICIENTS, mel_cepstral_distortion
from .waveform_health import health_problems, waveform_health

__all__ = [
    "DEFAULT_METRICS",
    "DEFAULT_TRIM_TOP_DB",
    "LOWER_IS_BETTER",
    "METRIC_GROUPS",
    "METRIC_LABELS",
    "F0Errors",
    "ItemScore",
    "duration_ratio",
    "f0_contour",
    "f0_errors",
    "metric_keys",
    "parse_metric_groups",
    "real_time_factor",
    "score_pair",
    "set_health_problems",
    "stop_failure_rate",
    "summarize",
]

# A set whose clips fail a health check more often than this fails, whatever its means say.
MAX_UNHEALTHY_SHARE = 0.5
# pYIN's search range: below the lowest adult male voices, above the highest female ones.
F0_MIN_HZ = 60.0
F0_MAX_HZ = 500.0


def duration_ratio(reference_seconds: float, synthesized_seconds: float) -> float:
    """Synthesized length over reference length: above 1, the model speaks more slowly than the speaker."""
    if reference_seconds <= 0:
        raise ValueError(f"the reference clip has no duration ({reference_seconds} s)")
    return synthesized_seconds / reference_seconds


def real_time_factor(synthesis_seconds: float, audio_seconds: float) -> float:
    """Wall-clock synthesis time over the length of the audio it produced; below 1 is faster than real time."""
    if audio_seconds <= 0:
        return math.inf
    return synthesis_seconds / audio_seconds


def stop_failure_rate(hit_max_length: Sequence[bool]) -> float:
    """Share of syntheses that ended at the generation limit instead of by predicting the end of speech."""
    return float(np.mean(hit_max_length)) if len(hit_max_length) else math.nan


def f0_contour(waveform: np.ndarray, sampling_rate: int, hop_length: int = 256) -> np.ndarray:
    """Frame-wise F0 in Hz by pYIN, `NaN` on unvoiced frames.

    Args:
        waveform (`np.ndarray` of shape `(samples,)`):
            Mono audio.
        sampling_rate (`int`):
            Its rate.
        hop_length (`int`, *optional*, defaults to `256`):
            Samples between frames; the mel hop, so that F0 frames line up with the MCD path's frames.

    Returns:
        `np.ndarray` of shape `(samples // hop_length + 1,)`.
    """
    f0, voiced, _ = librosa.pyin(
        np.asarray(waveform, dtype=np.float32),
        fmin=F0_MIN_HZ,
        fmax=F0_MAX_HZ,
        sr=sampling_rate,
        frame_length=4 * hop_length,
        hop_length=hop_length,
    )
    return np.where(voiced, f0, np.nan)


@dataclass
class F0Errors:
    """Sums of squared F0 differences over aligned frame pairs voiced in both clips; pooled over a set by adding.

    Args:
        squared_hz (`float`): Sum of (F0_syn - F0_ref)^2 in Hz^2.
        squared_cents (`float`): Sum of (1200 log2(F0_syn / F0_ref))^2.
        voiced_pairs (`int`): Aligned pairs voiced in both.
        aligned_pairs (`int`): All aligned pairs.
    """

    squared_hz: float = 0.0
    squared_cents: float = 0.0
    voiced_pairs: int = 0
    aligned_pairs: int = 0

    def rmse_hz(self) -> float:
        return math.sqrt(self.squared_hz / self.voiced_pairs) if self.voiced_pairs else math.nan

    def rmse_cents(self) -> float:
        return math.sqrt(self.squared_cents / self.voiced_pairs) if self.voiced_pairs else math.nan


def f0_errors(reference_f0: np.ndarray, synthesized_f0: np.ndarray, path: np.ndarray) -> F0Errors:
    """F0 differences along a frame alignment (the MCD's DTW path), on pairs voiced in both clips.

    pYIN centres frame t on sample t * hop and the mel frame t on t * hop + hop / 2; half a hop (8 ms at 16 kHz) is
    well below the F0's own smoothing, so the indices are used as they are (clipped to each contour's length).
    """
    reference = reference_f0[np.minimum(path[:, 0], len(reference_f0) - 1)]
    synthesized = synthesized_f0[np.minimum(path[:, 1], len(synthesized_f0) - 1)]
    voiced = ~(np.isnan(reference) | np.isnan(synthesized))
    reference, synthesized = reference[voiced], synthesized[voiced]
    return F0Errors(
        squared_hz=float(np.sum(np.square(synthesized - reference))),
        squared_cents=float(np.sum(np.square(1200.0 * np.log2(synthesized / reference)))),
        voiced_pairs=int(voiced.sum()),
        aligned_pairs=len(path),
    )


@dataclass
class ItemScore:
    """What one held-out clip scored; `None` where a metric was not computed.

    Args:
        id (`str`): The clip's id.
        reference_seconds (`float`): Reference length after edge trimming.
        synthesized_seconds (`float`): Synthesized length after edge trimming.
        audio_seconds (`float`): Synthesized length as generated (the RTF's denominator).
        synthesis_seconds (`float`): Wall-clock time of the synthesis.
        hit_max_length (`bool`): Generation stopped at its length limit.
        mcd (`float`, *optional*): MCD in dB.
        path_length (`int`, *optional*): Aligned frame pairs of the MCD.
        duration_ratio (`float`, *optional*): `synthesized_seconds / reference_seconds`.
        f0 (`F0Errors`, *optional*): F0 error sums.
        transcript (`str`, *optional*): The ASR transcript, for CER.
        char_edits (`int`, *optional*): Character edits between transcript and text.
        reference_chars (`int`, *optional*): Characters of the normalized text.
        health (`dict`, *optional*): `WaveformHealth.to_dict()` of the synthesized clip against the recording.
        error (`str`, *optional*): Why a metric could not be computed for this clip (it then counts as missing).
    """

    id: str
    reference_seconds: float
    synthesized_seconds: float
    audio_seconds: float
    synthesis_seconds: float
    hit_max_length: bool = False
    mcd: float | None = None
    path_length: int | None = None
    duration_ratio: float | None = None
    f0: F0Errors | None = None
    transcript: str | None = None
    char_edits: int | None = None
    reference_chars: int | None = None
    health: dict | None = None
    error: str | None = None

    def to_dict(self) -> dict:
        values = asdict(self)
        if self.f0 is not None:
            values["f0"] = {**asdict(self.f0), "rmse_hz": self.f0.rmse_hz(), "rmse_cents": self.f0.rmse_cents()}
        return values


def score_pair(
    item_id: str,
    reference: np.ndarray,
    reference_rate: int,
    synthesized: np.ndarray,
    synthesized_rate: int,
    groups: Sequence[str],
    *,
    synthesis_seconds: float = 0.0,
    hit_max_length: bool = False,
    trim_top_db: float | None = DEFAULT_TRIM_TOP_DB,
    mel_config: MelConfig | None = None,
    num_coefficients: int = DEFAULT_NUM_COEFFICIENTS,
) -> ItemScore:
    """Score one synthesized clip against its reference for the given metric groups (CER is added by the caller).

    Both clips are resampled to the metric rate (`mel_config.sampling_rate`, 16 kHz) and, with `trim_top_db`, their
    edge silence is trimmed. A metric that cannot be computed (a clip shorter than a frame) leaves its value `None`
    and says why in `error`; the other metrics of the clip still count.
    """
    mel_config = mel_config or MelConfig()
    rate = mel_config.sampling_rate
    audio_seconds = len(synthesized) / synthesized_rate
    reference = _prepared(reference, reference_rate, rate, trim_top_db)
    synthesized = _prepared(synthesized, synthesized_rate, rate, trim_top_db)
    score = ItemScore(
        id=item_id,
        reference_seconds=len(reference) / rate,
        synthesized_seconds=len(synthesized) / rate,
        audio_seconds=audio_seconds,
        synthesis_seconds=synthesis_seconds,
        hit_max_length=hit_max_length,
    )
    if "duration" in groups and score.reference_seconds > 0:
        score.duration_ratio = duration_ratio(score.reference_seconds, score.synthesized_seconds)
    if "health" in groups and len(synthesized):
        score.health = waveform_health(synthesized, rate, reference if len(reference) else None).to_dict()
    if "mcd" not in groups and "f0" not in groups:
        return score
    try:
        distortion = mel_cepstral_distortion(
            reference, synthesized, rate, mel_config=mel_config, num_coefficients=num_coefficients
        )
    except ValueError as error:
        score.error = str(error)
        return score
    if "mcd" in groups:
        score.mcd, score.path_length = distortion.mcd, distortion.path_length
    if "f0" in groups:
        score.f0 = f0_errors(
            f0_contour(reference, rate, mel_config.hop_length),
            f0_contour(synthesized, rate, mel_config.hop_length),
            distortion.path,
        )
    return score


def summarize(scores: Sequence[ItemScore], groups: Sequence[str]) -> dict[str, float]:
    """Pool per-clip scores over a set into the keys of `groups` (see the module docstring); `NaN` when no clip
    has a value."""
    summary: dict[str, float] = {}
    if "mcd" in groups:
        summary["mcd"] = _mean(score.mcd for score in scores)
    if "duration" in groups:
        summary["duration_ratio"] = _mean(score.duration_ratio for score in scores)
        summary["duration_error"] = _mean(
            None if score.duration_ratio is None else abs(score.duration_ratio - 1.0) for score in scores
        )
    if "f0" in groups:
        pooled = F0Errors()
        for errors in (score.f0 for score in scores if score.f0 is not None):
            pooled.squared_hz += errors.squared_hz
            pooled.squared_cents += errors.squared_cents
            pooled.voiced_pairs += errors.voiced_pairs
            pooled.aligned_pairs += errors.aligned_pairs
        summary["f0_rmse_hz"] = pooled.rmse_hz()
        summary["f0_rmse_cents"] = pooled.rmse_cents()
    if "rtf" in groups:
        summary["rtf"] = (
            real_time_factor(
                sum(score.synthesis_seconds for score in scores), sum(score.audio_seconds for score in scores)
            )
            if scores
            else math.nan
        )
    if "stop_failure" in groups:
        summary["stop_failure_rate"] = stop_failure_rate([score.hit_max_length for score in scores])
    if "cer" in groups:
        counted = [score for score in scores if score.char_edits is not None]
        characters = sum(score.reference_chars for score in counted)
        summary["cer"] = sum(score.char_edits for score in counted) / characters if characters else math.nan
    if "health" in groups:
        healths = [score.health for score in scores if score.health is not None]
        for key, source in (
            ("clipped", "clipped"),
            ("high_band", "high_band"),
            ("low_band", "low_band"),
            ("level_db", "level_vs_reference_db"),
            ("spectral_distance", "spectral_distance"),
        ):
            summary[key] = _mean(health[source] for health in healths)
        summary["dc_offset"] = _mean(abs(health["dc_offset"]) for health in healths)
        summary["unhealthy"] = float(np.mean([bool(health_problems(h)) for h in healths])) if healths else math.nan
    return summary


def set_health_problems(summary: dict[str, float]) -> list[str]:
    """Plain-word problems of a set's pooled `health` figures (`summarize` keys), empty when it is healthy."""
    figures = {
        "clipped": summary.get("clipped"),
        "dc_offset": summary.get("dc_offset"),
        "high_band": summary.get("high_band"),
        "low_band": summary.get("low_band"),
        "level_vs_reference_db": summary.get("level_db"),
    }
    problems = health_problems(figures)
    unhealthy = summary.get("unhealthy")
    if unhealthy is not None and not math.isnan(unhealthy) and unhealthy > MAX_UNHEALTHY_SHARE:
        problems.append(f"{100 * unhealthy:.0f} % of the clips fail a health check")
    return problems


def _prepared(waveform: np.ndarray, sampling_rate: int, target_rate: int, trim_top_db: float | None) -> np.ndarray:
    waveform = resample(np.asarray(waveform, dtype=np.float32), sampling_rate, target_rate)
    if trim_top_db is None or not np.any(waveform):
        return waveform
    trimmed = trim_silence(waveform, target_rate, trim_top_db)
    # A clip that is all "edge" (a constant tone, a click) is kept whole rather than scored as empty.
    return trimmed if len(trimmed) else waveform


def _mean(values: Iterable[float | None]) -> float:
    present = [value for value in values if value is not None and math.isfinite(value)]
    return float(np.mean(present)) if present else math.nan
