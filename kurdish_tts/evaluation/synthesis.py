"""Synthesis for evaluation: held-out clips, and one interface in front of every model family.

The metrics only need text in and audio out, plus two facts a model reports about each call: how long it took and
whether generation hit its length limit. `Synthesizer` is that interface; `VitsSynthesizer` implements it for VITS/MMS
(which never hits a limit: its length comes from predicted durations), and an autoregressive model (the XTTS path)
implements it by reporting when it stopped at `max_length` instead of predicting the end of speech.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from ..audio.io import from_int16, load_audio
from ..data.speakers import SPEAKERS_FILE, load_speaker_map
from ..text import normalize_text, tokenizer_characters


@dataclass
class EvaluationItem:
    """One held-out clip: its id, raw text, speaker and recorded audio.

    Args:
        id (`str`): The clip's id (as in `data_split.json`).
        text (`str`): What was said (normalized by the synthesizer before use).
        waveform (`np.ndarray` of shape `(samples,)`): The recording, mono float32.
        sampling_rate (`int`): Its rate.
        speaker (`str`, *optional*): The speaker label, for multi-speaker models.
    """

    id: str
    text: str
    waveform: np.ndarray
    sampling_rate: int
    speaker: str | None = None

    @classmethod
    def from_prepared(cls, row: dict, sampling_rate: int) -> EvaluationItem:
        """From a row of a prepared cache (`kurdish_tts.data.prepare_dataset`): 16-bit waveform, normalized text."""
        return cls(
            id=row["id"],
            text=row["text"],
            waveform=from_int16(np.asarray(row["waveform"], dtype=np.int16)),
            sampling_rate=sampling_rate,
            speaker=row.get("speaker"),
        )


@dataclass
class SynthesisResult:
    """One synthesized clip.

    Args:
        waveform (`np.ndarray` of shape `(samples,)`): Mono float32 audio.
        sampling_rate (`int`): Its rate.
        seconds (`float`): Wall-clock time of the generation (device synchronized), for the real-time factor.
        hit_max_length (`bool`, *optional*, defaults to `False`):
            Whether generation stopped at its length limit rather than by predicting the end (a stop failure).
        attention (`np.ndarray` of shape `(steps, tokens)`, *optional*):
            For an autoregressive model, the text attention of each generated decoder step (what it read while
            speaking, as opposed to the teacher-forced alignment plots); `None` for VITS.
    """

    waveform: np.ndarray
    sampling_rate: int
    seconds: float
    hit_max_length: bool = False
    attention: np.ndarray | None = None


class Synthesizer(Protocol):
    """What evaluation needs from a model: `synthesize(text, speaker)` and a description of where it runs.

    Attributes:
        name (`str`): The model, for reports.
        device (`torch.device`): Where synthesis runs (reported next to the real-time factor).
        sampling_rate (`int`): Rate of the audio it produces (and of the data it was trained on).
    """

    name: str
    device: torch.device
    sampling_rate: int

    def synthesize(self, text: str, speaker: str | None = None) -> SynthesisResult: ...


class VitsSynthesizer:
    """`Synthesizer` for a stock `transformers.VitsModel` and its `VitsTokenizer`.

    Text goes through the package's normalizer (numbers spelled out, characters the tokenizer lacks dropped), as a
    user of the model is told to do. Every call runs in eval mode under `no_grad` with a forked random state seeded
    from `seed`, so that its noise (VITS samples the prior and the durations) is the same at every evaluation and the
    caller's random stream (a training run's) is untouched; each module's train/eval flag is restored afterwards.

    Args:
        model (`transformers.VitsModel`):
            The generator (for a `VitsForTraining`, its `.vits`).
        tokenizer (`transformers.VitsTokenizer`):
            Its tokenizer.
        speaker_to_id (`dict[str, int]`, *optional*):
            Speaker label → embedding row of a multi-speaker model (its `speakers.json`).
        seed (`int`, *optional*, defaults to `0`):
            Seed of the synthesis noise.
        name (`str`, *optional*):
            The model's name in reports; defaults to its `name_or_path`.
    """

    def __init__(self, model, tokenizer, *, speaker_to_id: dict[str, int] | None = None, seed: int = 0, name=None):
        self.model = model
        self.tokenizer = tokenizer
        self.speaker_to_id = speaker_to_id
        self.seed = seed
        self.name = name or getattr(model.config, "name_or_path", "") or type(model).__name__
        self._characters = tokenizer_characters(tokenizer)

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def sampling_rate(self) -> int:
        return self.model.config.sampling_rate

    @classmethod
    def from_pretrained(cls, model_dir: str | os.PathLike, device: str | torch.device = "cpu", **kwargs):
        """Load a saved model folder (stock `VitsModel` + tokenizer, e.g. a run's `best_model`)."""
        from transformers import AutoTokenizer, VitsModel

        model = VitsModel.from_pretrained(model_dir).to(device)
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        speaker_to_id = load_speaker_map(model_dir) if (Path(model_dir) / SPEAKERS_FILE).is_file() else None
        return cls(model, tokenizer, speaker_to_id=speaker_to_id, name=str(model_dir), **kwargs)

    def speaker_id(self, speaker: str | None) -> int | None:
        """The embedding row for `speaker`: its own for a known voice, the first voice otherwise (multi-speaker
        models only)."""
        if self.model.config.num_speakers <= 1:
            return None
        return (self.speaker_to_id or {}).get(speaker, 0)

    def synthesize(self, text: str, speaker: str | None = None) -> SynthesisResult:
        normalized = normalize_text(text, self._characters).text
        inputs = self.tokenizer(normalized, return_tensors="pt").to(self.device)
        speaker_id = self.speaker_id(speaker)
        extra = {} if speaker_id is None else {"speaker_id": speaker_id}
        with inference(self.model, self.seed):
            _synchronize(self.device)
            began = time.perf_counter()
            output = self.model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], **extra)
            _synchronize(self.device)
            seconds = time.perf_counter() - began
        waveform = output.waveform[0].float().cpu().numpy()  # (samples,)
        return SynthesisResult(waveform=waveform, sampling_rate=self.sampling_rate, seconds=seconds)


@contextlib.contextmanager
def inference(model: torch.nn.Module, seed: int) -> Iterator[None]:
    """Eval mode, no autograd and a forked random state seeded with `seed`; each module's train flag is restored."""
    training = {module: module.training for module in model.modules()}
    model.eval()
    try:
        with torch.no_grad(), fixed_random_state(next(model.parameters()).device, seed):
            yield
    finally:
        for module, flag in training.items():
            module.training = flag


@contextlib.contextmanager
def fixed_random_state(device: torch.device | str, seed: int) -> Iterator[None]:
    """Run the block with torch's random state seeded with `seed` (CPU, and `device` when it is a GPU), then give
    the caller back the random state it had: what the block draws is the same every time, and the draws after it
    are the ones they would have been without it."""
    device = torch.device(device)
    # Only this GPU is forked: touching every visible GPU would create a CUDA context on each.
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, device_type="cuda"):
        torch.random.default_generator.manual_seed(seed)
        if devices:
            with torch.cuda.device(device):
                torch.cuda.manual_seed(seed)
        yield


def describe_device(device: torch.device | str) -> str:
    """The device in words for reports, e.g. `"cuda (NVIDIA H100 80GB HBM3)"` or `"cpu (16 threads)"`."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"{device.type} ({torch.get_num_threads()} threads)"


def load_items(
    source_dataset,
    *,
    ids: Sequence[str] | None = None,
    max_samples: int | None = None,
    sampling_rate: int = 16000,
) -> list[EvaluationItem]:
    """Held-out clips from a source in the package's schema (`kurdish_tts.data.load_source(...).dataset`).

    Args:
        source_dataset (`datasets.Dataset`):
            Rows with `id`, `audio` (`{bytes, path}`), `text`, `speaker`.
        ids (`Sequence[str]`, *optional*):
            Keep only these clips (e.g. a run's `data_split.json` `eval_ids`).
        max_samples (`int`, *optional*):
            Keep the first this many, in id order (deterministic, so that runs and models see the same clips).
        sampling_rate (`int`, *optional*, defaults to `16000`):
            Rate to decode the recordings at.

    Raises:
        `ValueError`: no clip is left.
    """
    all_ids = list(source_dataset["id"])
    wanted = set(all_ids) if ids is None else set(ids) & set(all_ids)
    indices = sorted((index for index, item_id in enumerate(all_ids) if item_id in wanted), key=lambda i: all_ids[i])
    if max_samples is not None:
        indices = indices[:max_samples]
    if not indices:
        raise ValueError(
            f"no evaluation clips: the data has {len(all_ids)} clips"
            + ("" if ids is None else f", none of them among the {len(set(ids))} requested ids")
        )
    items = []
    for row in source_dataset.select(indices):
        audio = load_audio(row["audio"], sampling_rate)
        items.append(EvaluationItem(row["id"], row["text"], audio.waveform, sampling_rate, row.get("speaker")))
    return items


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
