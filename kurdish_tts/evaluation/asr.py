"""Intelligibility: character error rate (CER) of an ASR model's transcripts of synthesized speech.

The ASR model is the user's choice (a `transformers` CTC model: a Kurmanji fine-tune of wav2vec2/XLS-R/MMS-1b, a local
folder or a Hub id), decoded greedily. CER compares letters, not spelling conventions: both the text and the transcript
go through the package's normalizer (NFC, Kurmanji-aware lowercasing, numbers spelled out) and keep only letters,
apostrophes and single spaces, since CTC vocabularies usually carry no punctuation.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Sequence

import numpy as np
import torch

from ..audio.io import resample
from ..text import normalize_text

logger = logging.getLogger(__name__)


def text_for_cer(text: str) -> str:
    """The form both sides of the CER comparison take: normalized, letters, apostrophes and single spaces only."""
    normalized = normalize_text(text).text
    kept = "".join(char if unicodedata.category(char).startswith("L") or char == "'" else " " for char in normalized)
    return " ".join(kept.split())


def edit_distance(reference: Sequence, hypothesis: Sequence) -> int:
    """Levenshtein distance (substitutions, insertions, deletions, each costing 1)."""
    previous = list(range(len(hypothesis) + 1))
    for row, expected in enumerate(reference, start=1):
        current = [row]
        for column, produced in enumerate(hypothesis, start=1):
            current.append(
                min(previous[column] + 1, current[column - 1] + 1, previous[column - 1] + (expected != produced))
            )
        previous = current
    return previous[-1]


def character_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus CER: total character edits over total reference characters, after `text_for_cer` on both sides.

    Example:

    ```python
    >>> character_error_rate(["Roj baş!"], ["roj bas"])
    0.14285714285714285
    ```
    """
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    edits = characters = 0
    for reference, hypothesis in zip(references, hypotheses):
        reference, hypothesis = text_for_cer(reference), text_for_cer(hypothesis)
        edits += edit_distance(reference, hypothesis)
        characters += len(reference)
    if characters == 0:
        raise ValueError("the references hold no characters to compare")
    return edits / characters


class CtcTranscriber:
    """Greedy transcription with a `transformers` CTC model (`AutoModelForCTC` + its processor).

    Clips are transcribed one at a time: wav2vec2-style models without an attention mask (the base models with group
    norm) transcribe a padded clip differently from the same clip alone.

    Args:
        model (`transformers.PreTrainedModel`):
            A CTC model (`Wav2Vec2ForCTC`, `HubertForCTC`, ...).
        processor:
            Its processor (feature extractor + tokenizer), e.g. `Wav2Vec2Processor`.
    """

    def __init__(self, model, processor):
        self.model = model.eval()
        self.processor = processor
        self.sampling_rate = int(processor.feature_extractor.sampling_rate)
        self.name = getattr(model.config, "name_or_path", "") or type(model).__name__

    @classmethod
    def from_pretrained(cls, name_or_path: str, device: str | torch.device = "cpu") -> CtcTranscriber:
        """Load a CTC model and its processor from a local folder or the Hub.

        Raises:
            `OSError`: the model cannot be found (offline and not cached, or a wrong path); the message says what to
                pass instead.
        """
        from transformers import AutoModelForCTC, AutoProcessor

        try:
            processor = AutoProcessor.from_pretrained(name_or_path)
            model = AutoModelForCTC.from_pretrained(name_or_path)
        except (OSError, ValueError) as error:
            raise OSError(
                f"could not load the ASR model {name_or_path!r} ({type(error).__name__}: {str(error).splitlines()[0]})."
                " --asr_model takes a transformers CTC model (e.g. a Kurmanji wav2vec2/XLS-R fine-tune) as a local "
                "folder or, online, a Hub id; leave it out to skip CER"
            ) from error
        transcriber = cls(model.to(device), processor)
        transcriber.name = name_or_path
        return transcriber

    @torch.no_grad()
    def transcribe(self, waveform: np.ndarray, sampling_rate: int) -> str:
        """The greedy CTC transcript of one mono clip."""
        audio = resample(np.asarray(waveform, dtype=np.float32), sampling_rate, self.sampling_rate)
        inputs = self.processor(audio, sampling_rate=self.sampling_rate, return_tensors="pt")
        inputs = {name: value.to(self.model.device) for name, value in inputs.items()}
        logits = self.model(**inputs).logits  # (1, frames, vocab)
        ids = logits.argmax(dim=-1)
        return self.processor.batch_decode(ids)[0]
