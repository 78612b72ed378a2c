"""Batch prepared samples into padded tensors for VITS training."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# Columns of the prepared cache the collator reads; the trainer keeps exactly these (plus `speaker` and `id`).
VITS_COLUMNS = ["input_ids", "waveform", "num_samples", "mel", "num_frames"]
# Batch key of the samples' `id` column: not a model input, it lets callbacks name the samples of a step.
SAMPLE_IDS = "sample_ids"


def _round_up(value: int, multiple: int | None) -> int:
    return value if not multiple else -(-value // multiple) * multiple


@dataclass
class DataCollatorForVits:
    """Pad token ids, waveforms and mels of prepared samples (`kurdish_tts.data.prepare_dataset`) into a batch.

    Masks come from lengths, never from pad values: the MMS Kurmanji tokenizer's pad token is the letter `n`.

    Args:
        hop_length (`int`, *optional*, defaults to `256`):
            Samples per frame; waveforms are padded to `frames * hop_length`.
        pad_token_id (`int`, *optional*, defaults to `0`):
            Fills padded token positions (ignored through `attention_mask`).
        min_frames (`int`, *optional*, defaults to `0`):
            Pad every batch to at least this many frames, e.g. the training segment size, so that a segment can always
            be sliced.
        pad_to_multiple_of (`int`, *optional*):
            Round the padded text and frame lengths up to a multiple of this, so that compiled kernels and cuDNN see
            few distinct shapes.
        speaker_to_id (`dict[str, int]`, *optional*):
            Maps the `speaker` column to embedding ids for multi-speaker models; `None` for single-speaker training.
        return_sample_ids (`bool`, *optional*, defaults to `False`):
            Add the samples' `id` column as `sample_ids`. Off by default, so that `model(**batch)` keeps working;
            `VitsTrainer` turns it on for its training batches.

    Returns (from `__call__`): a dict with `input_ids` and `attention_mask` `(batch, text_length)`, `waveform`
    `(batch, frames * hop_length)` int16 PCM, `mel` `(batch, n_mels, frames)` float16, `mel_lengths` `(batch,)`, and
    `speaker_id` `(batch,)` when `speaker_to_id` is set, and `sample_ids` (a list of `str`, not a model input) with
    `return_sample_ids` when the samples have an `id` column. Audio stays in the cache's compact dtypes on its way
    from the loader workers to the GPU (a quarter and a half of float32's bytes); `VitsForTraining` widens it on the
    device.
    """

    hop_length: int = 256
    pad_token_id: int = 0
    min_frames: int = 0
    pad_to_multiple_of: int | None = None
    speaker_to_id: dict[str, int] | None = None
    return_sample_ids: bool = False

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        batch_size = len(features)
        ids = [np.asarray(f["input_ids"], dtype=np.int64) for f in features]
        mels = [np.asarray(f["mel"], dtype=np.float16) for f in features]  # each (frames, n_mels)
        frames = np.asarray([f["num_frames"] for f in features], dtype=np.int64)
        text_lengths = np.asarray([len(i) for i in ids], dtype=np.int64)
        max_text = _round_up(int(text_lengths.max()), self.pad_to_multiple_of)
        max_frames = _round_up(max(int(frames.max()), self.min_frames), self.pad_to_multiple_of)
        n_mels = mels[0].shape[1]

        input_ids = np.full((batch_size, max_text), self.pad_token_id, dtype=np.int64)
        attention_mask = np.zeros((batch_size, max_text), dtype=np.int64)
        waveform = np.zeros((batch_size, max_frames * self.hop_length), dtype=np.int16)
        mel = np.zeros((batch_size, n_mels, max_frames), dtype=np.float16)
        for row, feature in enumerate(features):
            input_ids[row, : text_lengths[row]] = ids[row]
            attention_mask[row, : text_lengths[row]] = 1
            # Only whole frames are used: the waveform beyond frames * hop has no spectrogram frame of its own.
            samples = min(int(feature["num_samples"]), int(frames[row]) * self.hop_length)
            waveform[row, :samples] = np.asarray(feature["waveform"][:samples], dtype=np.int16)
            mel[row, :, : frames[row]] = mels[row].T
        batch = {
            "input_ids": torch.from_numpy(input_ids),
            "attention_mask": torch.from_numpy(attention_mask),
            "waveform": torch.from_numpy(waveform),
            "mel": torch.from_numpy(mel),
            "mel_lengths": torch.from_numpy(frames),
        }
        if self.speaker_to_id is not None:
            try:
                speakers = [self.speaker_to_id[f["speaker"]] for f in features]
            except KeyError as error:
                raise KeyError(
                    f"speaker {error.args[0]!r} has no embedding id; rebuild speaker_to_id from the training data"
                ) from error
            batch["speaker_id"] = torch.tensor(speakers, dtype=torch.long)
        if self.return_sample_ids and "id" in features[0]:
            batch[SAMPLE_IDS] = [str(f["id"]) for f in features]
        return batch
