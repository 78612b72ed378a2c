"""Batch prepared samples for the XTTS-style model: padded text and mels, and a reference clip of the same speaker."""

from __future__ import annotations

import hashlib
import logging
import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import torch

from .collators import SAMPLE_IDS, _round_up

logger = logging.getLogger(__name__)

# Columns of the prepared cache the XTTS collator reads; `XttsTrainer` keeps exactly these.
XTTS_COLUMNS = ["id", "speaker", "input_ids", "mel", "num_frames"]
# The cache's log-mel of silence: natural log of `MelConfig.log_clamp` (1e-5).
DEFAULT_MEL_PAD_VALUE = math.log(1e-5)


class ReferencePool:
    """Where the collator finds *another* clip of a sample's speaker: the clips of one or more prepared datasets,
    indexed by speaker.

    Only the `id` and `speaker` columns are read at construction; a reference's mel is read from the (memory-mapped)
    dataset when a batch needs it, so the pool costs a few bytes per clip and pickles cheaply into loader workers.
    Speakers with a single clip have no other clip: their clips are their own references. They are counted in
    `single_clip_speakers` and reported once, here, with a warning.

    Args:
        *datasets (`datasets.Dataset`):
            Prepared caches with `id`, `speaker` and `mel` columns. For training, the training split; for evaluation,
            the evaluation split *and* the training split (a held-out clip should not be its own reference, and at
            inference any recording of the voice serves as the reference).
    """

    def __init__(self, *datasets):
        if not datasets:
            raise ValueError("ReferencePool needs at least one prepared dataset")
        self.datasets = []
        self._by_speaker: dict[str, list[tuple[int, int]]] = defaultdict(list)
        self._ids: list[list[str]] = []
        for number, dataset in enumerate(datasets):
            missing = {"id", "speaker", "mel"} - set(dataset.column_names)
            if missing:
                raise ValueError(
                    f"dataset {number} of the reference pool lacks the column(s) {sorted(missing)}; pass a cache "
                    "prepared by kurdish_tts.data.prepare_dataset"
                )
            self.datasets.append(dataset.with_format("numpy", columns=["mel"]))
            ids = [str(i) for i in dataset["id"]]
            speakers = [str(s) for s in dataset["speaker"]]
            self._ids.append(ids)
            for row, speaker in enumerate(speakers):
                self._by_speaker[speaker].append((number, row))
        self.single_clip_speakers = sorted(s for s, rows in self._by_speaker.items() if len(rows) == 1)
        if self.single_clip_speakers:
            logger.warning(
                f"{len(self.single_clip_speakers)} of {len(self._by_speaker)} speakers have a single clip; each of "
                f"those clips is its own reference (e.g. {', '.join(self.single_clip_speakers[:3])})"
            )

    def __len__(self) -> int:
        return sum(len(ids) for ids in self._ids)

    def candidates(self, speaker: str, sample_id: str) -> list[tuple[int, int]]:
        """`(dataset, row)` of the speaker's clips other than `sample_id`, in pool order; empty without any."""
        return [(d, r) for d, r in self._by_speaker.get(str(speaker), ()) if self._ids[d][r] != str(sample_id)]

    def mel(self, dataset: int, row: int) -> np.ndarray:
        """The clip's log-mel, `(frames, n_mels)` float16."""
        return self.datasets[dataset][row]["mel"]


@dataclass
class DataCollatorForXtts:
    """Pad prepared samples (`kurdish_tts.data.prepare_dataset`) into a batch for `XttsForTextToSpeech`, with a
    reference mel of another clip of each sample's speaker.

    Masks come from lengths, never from pad values. Mels are padded with `mel_pad_value` (the cache's log-mel of
    silence) to a multiple of `reduction_factor` (and of `pad_to_multiple_of`), since the model predicts
    `reduction_factor` frames per decoder step.

    References. For each sample, a clip of the same speaker other than itself is taken from `reference_pool` (the
    sample's own mel if the speaker has no other clip, or the sample's speaker is not in the pool; `self_references`
    counts those) and cropped to at most `reference_max_frames` frames. With `training=True` the clip and the crop
    are drawn from torch's global random generator, so they change from step to step and epoch to epoch and follow
    the run's seed (in loader workers, each worker's generator, which torch seeds from the run's). With
    `training=False` both are deterministic: the clip chosen by a hash of the sample id and `seed`, the crop taken
    from the middle, so every evaluation scores the same inputs.

    Args:
        reference_pool (`ReferencePool`):
            The clips references are drawn from.
        reduction_factor (`int`, *optional*, defaults to `1`):
            Frames per decoder step (`XttsConfig.reduction_factor`).
        pad_token_id (`int`, *optional*, defaults to `0`):
            Fills padded token positions.
        reference_max_frames (`int`, *optional*, defaults to `250`):
            Longest reference (frames); longer clips are cropped.
        pad_to_multiple_of (`int`, *optional*):
            Round padded text, mel and reference lengths up to a multiple of this (the mel to a common multiple with
            `reduction_factor`), so kernels see few distinct shapes.
        mel_pad_value (`float`, *optional*, defaults to `log(1e-5)`):
            Value of padded mel frames.
        training (`bool`, *optional*, defaults to `True`):
            Random (training) or deterministic (evaluation) reference choice and crop.
        seed (`int`, *optional*, defaults to `0`):
            Seed of the deterministic choice.
        return_sample_ids (`bool`, *optional*, defaults to `False`):
            Add the samples' `id` column as `sample_ids` (for `NanRecoveryCallback`'s quarantine).

    Returns (from `__call__`): a dict with `input_ids`, `attention_mask` `(batch, text_length)`, `mel`
    `(batch, frames, n_mels)` float32, `mel_lengths` `(batch,)`, `reference_mel` `(batch, reference_frames, n_mels)`
    float32, `reference_mel_lengths` `(batch,)` (the forward inputs), `text_labels` `(batch, text_length)` (token
    `i + 1` at position `i`, `-100` where there is none: the next-token target of `XttsOutput.text_logits`), and
    `sample_ids` (a list of `str`) with `return_sample_ids`.
    """

    reference_pool: ReferencePool
    reduction_factor: int = 1
    pad_token_id: int = 0
    reference_max_frames: int = 250
    pad_to_multiple_of: int | None = None
    mel_pad_value: float = DEFAULT_MEL_PAD_VALUE
    training: bool = True
    seed: int = 0
    return_sample_ids: bool = False

    def __post_init__(self):
        if self.reduction_factor < 1:
            raise ValueError(f"reduction_factor must be >= 1, got {self.reduction_factor}")
        if self.reference_max_frames < 1:
            raise ValueError(f"reference_max_frames must be >= 1, got {self.reference_max_frames}")
        self.self_references = 0

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        batch_size = len(features)
        ids = [np.asarray(f["input_ids"], dtype=np.int64) for f in features]
        mels = [np.asarray(f["mel"], dtype=np.float32) for f in features]  # each (frames, n_mels)
        frames = np.asarray([f["num_frames"] for f in features], dtype=np.int64)
        if any(len(m) < n for m, n in zip(mels, frames)):
            raise ValueError("a sample's num_frames exceeds the frames of its mel; re-prepare the data cache")
        text_lengths = np.asarray([len(i) for i in ids], dtype=np.int64)
        if text_lengths.min() < 1:
            raise ValueError("a sample has no input_ids; filter empty texts out before training")
        mel_multiple = self.reduction_factor
        if self.pad_to_multiple_of:
            mel_multiple = math.lcm(mel_multiple, self.pad_to_multiple_of)
        max_text = _round_up(int(text_lengths.max()), self.pad_to_multiple_of)
        max_frames = _round_up(int(frames.max()), mel_multiple)
        n_mels = mels[0].shape[1]

        input_ids = np.full((batch_size, max_text), self.pad_token_id, dtype=np.int64)
        attention_mask = np.zeros((batch_size, max_text), dtype=np.int64)
        text_labels = np.full((batch_size, max_text), -100, dtype=np.int64)
        mel = np.full((batch_size, max_frames, n_mels), self.mel_pad_value, dtype=np.float32)
        for row in range(batch_size):
            length = text_lengths[row]
            input_ids[row, :length] = ids[row]
            attention_mask[row, :length] = 1
            text_labels[row, : length - 1] = ids[row][1:]
            mel[row, : frames[row]] = mels[row][: frames[row]]

        references = [self._reference(f, m[:n]) for f, m, n in zip(features, mels, frames)]
        reference_lengths = np.asarray([len(r) for r in references], dtype=np.int64)
        max_reference = _round_up(int(reference_lengths.max()), self.pad_to_multiple_of)
        reference_mel = np.full((batch_size, max_reference, n_mels), self.mel_pad_value, dtype=np.float32)
        for row, reference in enumerate(references):
            reference_mel[row, : len(reference)] = reference

        batch = {
            "input_ids": torch.from_numpy(input_ids),
            "attention_mask": torch.from_numpy(attention_mask),
            "mel": torch.from_numpy(mel),
            "mel_lengths": torch.from_numpy(frames),
            "reference_mel": torch.from_numpy(reference_mel),
            "reference_mel_lengths": torch.from_numpy(reference_lengths),
            "text_labels": torch.from_numpy(text_labels),
        }
        if self.return_sample_ids and "id" in features[0]:
            batch[SAMPLE_IDS] = [str(f["id"]) for f in features]
        return batch

    def _reference(self, feature: dict, own_mel: np.ndarray) -> np.ndarray:
        """A crop of another clip of the sample's speaker, `(frames, n_mels)` float32."""
        sample_id = str(feature.get("id", ""))
        candidates = self.reference_pool.candidates(feature.get("speaker", ""), sample_id)
        if not candidates:
            self.self_references += 1
            reference = own_mel
        else:
            if self.training:
                choice = int(torch.randint(len(candidates), ()).item())
            else:
                choice = _stable_index(f"{self.seed}:{sample_id}", len(candidates))
            reference = np.asarray(self.reference_pool.mel(*candidates[choice]), dtype=np.float32)
        excess = len(reference) - self.reference_max_frames
        if excess <= 0:
            return reference
        start = int(torch.randint(excess + 1, ()).item()) if self.training else excess // 2
        return reference[start : start + self.reference_max_frames]


def _stable_index(key: str, size: int) -> int:
    # Not `hash()`: Python salts it per process, and evaluation must choose the same reference in every run.
    return int(hashlib.sha1(key.encode()).hexdigest(), 16) % size
