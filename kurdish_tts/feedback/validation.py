"""What a correction is, and whether it can train a model: the checks an item passes before it enters the store.

The checks are those that preprocessing applies to training data (`kurdish_tts.data.preprocess.process_sample`: the
audio decodes, its duration is within bounds, it is not silent, its text normalizes to characters the model can speak,
the text fits the audio), with the store's own bounds, plus a clipping check. A rejection names the reason and says
what to do about it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from ..audio.features import MelConfig
from ..data.preprocess import PreprocessConfig, process_sample
from ..data.sources import DEFAULT_SPEAKER
from ..errors import InputFileError, UserError, read_text
from ..text import tokenizer_characters

# What to do about each reason for a rejection; the validation's own message says what was measured.
REJECTION_HINTS = {
    "undecodable_audio": "give a WAV, FLAC, OGG or MP3 file that plays",
    "empty_audio": "the file holds no audio; record it again",
    "too_short": "record the whole word or sentence",
    "too_long": "split the recording into sentences and add them one by one",
    "silent_audio": "nothing was recorded: check the microphone and its input level",
    "clipped_audio": "the recording is distorted: record it again with a lower input gain",
    "empty_text": "give the sentence that the recording says",
    "unknown_characters": "write the text in Kurmanji Latin letters (numbers are spelled out by themselves)",
    "too_many_tokens": "split the text and its recording into shorter sentences",
    "fewer_frames_than_tokens": "the recording is too short for this text: check that the two belong together",
    "unreadable_text": "save the text file as UTF-8",
    "missing_text": "put the sentence the recording says into a .txt file of the same name",
    "missing_audio": "put the recording next to it, with the same name (x.wav for x.txt)",
}
# Reasons of `process_sample` about the text, or about the text and the audio together; the others are the audio's.
_TEXT_REASONS = {"empty_text", "unknown_characters", "too_many_tokens", "fewer_frames_than_tokens"}


class FeedbackError(UserError, RuntimeError):
    """A feedback command cannot do what was asked; the message says why and what to do (exit status 1)."""

    exit_code = 1


@dataclass
class FeedbackValidationConfig:
    r"""
    What a recording must satisfy to enter the store.

    sampling_rate (`int`, *optional*, defaults to `16000`):
        Rate the audio is resampled to and stored at (that of MMS models).
    min_duration (`float`, *optional*, defaults to `0.5`):
        Shorter recordings (seconds) are rejected as `too_short`.
    max_duration (`float`, *optional*, defaults to `15.0`):
        Longer recordings are rejected as `too_long`.
    min_rms_db (`float`, *optional*, defaults to `-50.0`):
        Quieter recordings (RMS in dBFS) are rejected as `silent_audio`. Stricter than preprocessing's -70, which only
        catches digital silence: a correction is recorded on purpose, so a level this low means a muted microphone.
    max_clipped_fraction (`float`, *optional*, defaults to `0.001`):
        Recordings with a larger share of samples at full scale are rejected as `clipped_audio`.
    max_input_length (`int`, *optional*, defaults to `600`):
        Texts with more token ids (blanks included) are rejected as `too_many_tokens`.
    """

    sampling_rate: int = field(default=16000, metadata={"help": "Rate the audio is stored at."})
    min_duration: float = field(default=0.5, metadata={"help": "Reject recordings shorter than this (seconds)."})
    max_duration: float = field(default=15.0, metadata={"help": "Reject recordings longer than this (seconds)."})
    min_rms_db: float = field(default=-50.0, metadata={"help": "Reject recordings quieter than this (dBFS RMS)."})
    max_clipped_fraction: float = field(
        default=0.001, metadata={"help": "Reject recordings with more samples than this share at full scale."}
    )
    max_input_length: int = field(default=600, metadata={"help": "Reject texts with more token ids than this."})

    def preprocess_config(self) -> PreprocessConfig:
        """The preprocessing checks of training data, with this store's bounds (the same code decides both)."""
        mel = MelConfig(sampling_rate=self.sampling_rate, fmax=min(MelConfig.fmax, self.sampling_rate / 2))
        return PreprocessConfig(
            mel=mel,
            min_duration=self.min_duration,
            max_duration=self.max_duration,
            max_input_length=self.max_input_length,
            min_rms_db=self.min_rms_db,
        )


@dataclass
class FeedbackInput:
    """One correction to add: a recording (path or bytes), the sentence it says, and optionally its speaker and a note."""

    audio: str | os.PathLike | bytes
    text: str
    speaker: str | None = None
    note: str | None = None

    @property
    def source(self) -> str:
        return f"<{len(self.audio)} bytes>" if isinstance(self.audio, bytes) else str(self.audio)


@dataclass
class Rejection:
    """An input that was not added: where it came from, a reason code and a message that says what to do."""

    source: str
    reason: str
    message: str

    def __str__(self) -> str:
        return f"{self.source}: {self.reason}: {self.message}"


@dataclass
class ValidatedClip:
    """A recording that passed validation.

    Args:
        pcm (`np.ndarray` of shape `(samples,)`, int16):
            Mono audio at the store's rate, exactly what is stored.
        normalized_text (`str`):
            The text as the model will read it.
        audio_sha1 (`str`):
            Hash of `pcm`, the item's identity.
        duration (`float`):
            Seconds.
        stripped (`dict[str, int]`):
            Punctuation the model cannot speak, removed from the text (letters and digits reject the item instead).
    """

    pcm: np.ndarray
    normalized_text: str
    audio_sha1: str
    duration: float
    stripped: dict[str, int]


def validate_clip(
    audio, text: str, *, tokenizer, config: FeedbackValidationConfig | None = None, source: str | None = None
) -> ValidatedClip | Rejection:
    """Check one recording and its text with the preprocessing of training data, plus a clipping check.

    Args:
        audio (`str`, `os.PathLike` or `bytes`):
            The recording, in any format soundfile reads.
        text (`str`):
            The sentence it says.
        tokenizer (`VitsTokenizer`):
            The tokenizer of the model the item will train: its vocabulary decides what is speakable.
        config (`FeedbackValidationConfig`, *optional*):
            Bounds; the defaults when omitted.
        source (`str`, *optional*):
            Name used in messages (the path by default).

    Returns:
        `ValidatedClip`, or `Rejection` with a reason from `REJECTION_HINTS`.
    """
    config = config or FeedbackValidationConfig()
    source = source or (str(audio) if not isinstance(audio, bytes) else "<bytes>")
    if not isinstance(audio, bytes):
        audio = os.fspath(audio)
    row = process_sample(
        source,
        audio,
        text,
        DEFAULT_SPEAKER,
        tokenizer=tokenizer,
        allowed=tokenizer_characters(tokenizer),
        config=config.preprocess_config(),
    )
    reason, message = row["drop_reason"], row["error"]
    removed = json.loads(row["unknown_chars"])
    # A clipped recording must be made again whatever its text, so that is what to hear about first.
    if reason in _TEXT_REASONS | {""} and row["clipped_fraction"] > config.max_clipped_fraction:
        reason = "clipped_audio"
        message = (
            f"{row['clipped_fraction']:.2%} of the samples are at full scale (at most "
            f"{config.max_clipped_fraction:.2%} allowed)"
        )
    if reason == "unknown_characters":
        letters = {char: count for char, count in removed.items() if char.isalnum()}
        listed = ", ".join(f"{char!r} ({count}x)" for char, count in sorted(letters.items()))
        message = f"the model cannot speak {listed} in {text!r}"
    if reason:
        return Rejection(source, reason, f"{message}; {REJECTION_HINTS[reason]}")
    return ValidatedClip(
        pcm=np.asarray(row["waveform"], dtype=np.int16),
        normalized_text=row["text"],
        audio_sha1=row["audio_hash"],
        duration=float(row["duration"]),
        stripped=removed,
    )


def find_pairs(
    directory: str | os.PathLike, *, speaker: str | None = None, note: str | None = None
) -> tuple[list[FeedbackInput], list[Rejection]]:
    """The recordings of a folder paired with their texts (`x.wav` + `x.txt`, any format soundfile reads).

    A recording without a text and a text without a recording are returned as rejections, so they are counted.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FeedbackError(f"{directory} is not a folder; give a folder of recordings with their .txt files")
    audio_suffixes = {f".{name.lower()}" for name in sf.available_formats()}
    files = sorted(path for path in directory.iterdir() if path.is_file() and not path.name.startswith("."))
    texts = {path.stem: path for path in files if path.suffix.lower() == ".txt"}
    inputs, rejected, paired = [], [], set()
    for path in files:
        if path.suffix.lower() not in audio_suffixes:
            continue
        text_file = texts.get(path.stem)
        if text_file is None:
            rejected.append(
                Rejection(
                    str(path), "missing_text", f"no {path.stem}.txt next to it; {REJECTION_HINTS['missing_text']}"
                )
            )
            continue
        paired.add(path.stem)
        try:
            text = read_text(text_file).strip()
        except InputFileError as error:
            # The message names the line and column of the first byte that is not UTF-8, and how to convert it.
            rejected.append(Rejection(str(text_file), "unreadable_text", str(error)))
            continue
        inputs.append(FeedbackInput(path, text, speaker, note))
    for stem, text_file in texts.items():
        if stem not in paired:
            rejected.append(
                Rejection(
                    str(text_file), "missing_audio", f"no recording named {stem}.*; {REJECTION_HINTS['missing_audio']}"
                )
            )
    return inputs, rejected
