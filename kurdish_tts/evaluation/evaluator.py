"""Score a model on held-out clips: synthesize each text, compare with the recording, pool the metrics.

`evaluate_synthesizer` is what `scripts/evaluate.py` runs for each model folder and what `SynthesisMetricsCallback`
runs inside the Trainer's evaluation, so the numbers during training and after it are the same computation.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from tqdm.auto import tqdm

from ..audio.features import MelConfig
from .asr import CtcTranscriber, edit_distance, text_for_cer
from .metrics import (
    DEFAULT_METRICS,
    DEFAULT_TRIM_TOP_DB,
    ItemScore,
    parse_metric_groups,
    score_pair,
    set_health_problems,
    summarize,
)
from .synthesis import EvaluationItem, Synthesizer, describe_device


@dataclass
class ModelEvaluation:
    """One model's scores on a held-out set.

    Args:
        name (`str`): The model (its folder or Hub id).
        device (`str`): Where synthesis ran, e.g. `"cuda (NVIDIA H100 80GB HBM3)"`; the RTF holds for it only.
        groups (`tuple[str, ...]`): Metric groups computed.
        metrics (`dict[str, float]`): Pooled metrics (see `kurdish_tts.evaluation.metrics`); `NaN` where no clip
            had a value.
        items (`list[ItemScore]`): Per-clip scores.
        asr_model (`str`, *optional*): The ASR model behind `cer`.
        seconds (`float`): Wall-clock time of the whole evaluation.
    """

    name: str
    device: str
    groups: tuple[str, ...]
    metrics: dict[str, float]
    items: list[ItemScore] = field(default_factory=list)
    asr_model: str | None = None
    seconds: float = 0.0

    @property
    def failures(self) -> list[ItemScore]:
        """Clips for which a metric could not be computed (see each one's `error`)."""
        return [item for item in self.items if item.error is not None]

    @property
    def health_problems(self) -> list[str] | None:
        """What is wrong with the model's audio, in plain words (empty: healthy); `None` when `health` was not
        computed."""
        return set_health_problems(self.metrics) if "health" in self.groups else None

    def to_dict(self, with_items: bool = True) -> dict:
        values = {
            "name": self.name,
            "device": self.device,
            "groups": list(self.groups),
            "num_items": len(self.items),
            "metrics": {key: _json_number(value) for key, value in self.metrics.items()},
            "asr_model": self.asr_model,
            "seconds": self.seconds,
            "failures": len(self.failures),
            "health_problems": self.health_problems,
        }
        if with_items:
            values["items"] = [item.to_dict() for item in self.items]
        return values


def evaluate_synthesizer(
    synthesizer: Synthesizer,
    items: Sequence[EvaluationItem],
    groups: Sequence[str] | str = DEFAULT_METRICS,
    *,
    transcriber: CtcTranscriber | None = None,
    trim_top_db: float | None = DEFAULT_TRIM_TOP_DB,
    mel_config: MelConfig | None = None,
    progress: bool = False,
) -> ModelEvaluation:
    """Synthesize every item's text and score it against the item's recording.

    With `rtf` among the groups, one untimed synthesis of the first text runs first, so that one-off costs (CUDA
    kernel selection, lazy allocations) do not count as synthesis time.

    Args:
        synthesizer (`Synthesizer`):
            The model behind the common interface, e.g. `VitsSynthesizer.from_pretrained(folder)`.
        items (`Sequence[EvaluationItem]`):
            Held-out clips.
        groups (`Sequence[str]` or `str`, *optional*):
            Metric groups (`"mcd,duration,f0,rtf,stop_failure,cer"` or a list); defaults to `DEFAULT_METRICS`.
        transcriber (`CtcTranscriber`, *optional*):
            Needed for `cer`.
        trim_top_db (`float`, *optional*, defaults to `40.0`):
            Edge silence trimmed from both clips before scoring; `None` keeps the edges.
        mel_config (`MelConfig`, *optional*):
            The scoring geometry; defaults to `MelConfig()`, the same for every model.
        progress (`bool`, *optional*, defaults to `False`):
            Show a progress bar (stderr).

    Returns:
        [`ModelEvaluation`]
    """
    groups = parse_metric_groups(groups)
    if "cer" in groups and transcriber is None:
        raise ValueError("the cer metric needs an ASR model (a CtcTranscriber); pass one or leave cer out")
    if not items:
        raise ValueError("no items to evaluate")
    began = time.perf_counter()
    if "rtf" in groups:
        synthesizer.synthesize(items[0].text, items[0].speaker)
    scores = []
    for item in tqdm(items, desc=f"evaluating {synthesizer.name}", disable=not progress, unit="clip"):
        result = synthesizer.synthesize(item.text, item.speaker)
        score = score_pair(
            item.id,
            item.waveform,
            item.sampling_rate,
            result.waveform,
            result.sampling_rate,
            groups,
            synthesis_seconds=result.seconds,
            hit_max_length=result.hit_max_length,
            trim_top_db=trim_top_db,
            mel_config=mel_config,
        )
        if "cer" in groups:
            score.transcript = transcriber.transcribe(result.waveform, result.sampling_rate)
            reference = text_for_cer(item.text)
            score.char_edits = edit_distance(reference, text_for_cer(score.transcript))
            score.reference_chars = len(reference)
        scores.append(score)
    return ModelEvaluation(
        name=synthesizer.name,
        device=describe_device(synthesizer.device),
        groups=groups,
        metrics=summarize(scores, groups),
        items=scores,
        asr_model=None if transcriber is None else transcriber.name,
        seconds=time.perf_counter() - began,
    )


def _json_number(value: float) -> float | None:
    # JSON has no NaN: a metric no clip could give is written as null.
    return value if value is None or math.isfinite(value) else None
