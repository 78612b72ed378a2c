"""Audio decoding, resampling and writing.

Decoding goes through soundfile (libsndfile: WAV, FLAC, OGG/Vorbis, MP3 since libsndfile 1.1) and resampling through
librosa (soxr). `datasets` >= 4 decodes `Audio` columns only through torchcodec, which needs FFmpeg and breaks on some
platforms, so the data pipeline keeps audio columns as `Audio(decode=False)` and calls `load_audio` on the raw
`{"bytes", "path"}` dictionaries itself.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import librosa
import numpy as np
import soundfile as sf

from ..atomic import atomic_path

# A sample this close to full scale is counted as clipped: float decoders of 16-bit audio give at most 32767/32768.
CLIPPING_LEVEL = 0.999
SILENCE_FLOOR_DB = -120.0

AudioSource = str | os.PathLike | bytes | dict


class AudioDecodeError(ValueError):
    """Raised when an audio file or byte string cannot be decoded; the message names the source and the cause."""


@dataclass
class DecodedAudio:
    """A decoded, mono, resampled clip plus what was measured on the original signal.

    Args:
        waveform (`np.ndarray` of shape `(samples,)`, float32):
            Mono audio at `sampling_rate`, in [-1, 1].
        sampling_rate (`int`):
            Rate of `waveform`.
        orig_sampling_rate (`int`):
            Rate of the source file.
        orig_channels (`int`):
            Channel count of the source file (stereo sources are averaged to mono).
        peak (`float`):
            Max |x| of the source signal before any normalization.
        clipped_fraction (`float`):
            Share of source samples at or beyond `CLIPPING_LEVEL`.
    """

    waveform: np.ndarray
    sampling_rate: int
    orig_sampling_rate: int
    orig_channels: int
    peak: float
    clipped_fraction: float

    @property
    def duration(self) -> float:
        return len(self.waveform) / self.sampling_rate


def _describe(source: Any) -> str:
    if isinstance(source, dict):
        return str(source.get("path") or "<bytes>")
    if isinstance(source, bytes | bytearray):
        return f"<{len(source)} bytes>"
    return str(source)


def read_audio(source: AudioSource) -> tuple[np.ndarray, int]:
    """Decode `source` (a path, raw bytes, or a `datasets` `{"bytes", "path"}` dict) to float32 `(frames, channels)`.

    Raises:
        `AudioDecodeError`: the file is missing, empty, or not in a format libsndfile reads.
    """
    if isinstance(source, dict):
        data = source.get("bytes")
        target: Any = io.BytesIO(data) if data else source.get("path")
        if target is None:
            raise AudioDecodeError("audio entry has neither bytes nor a path")
    elif isinstance(source, bytes | bytearray):
        target = io.BytesIO(source)
    else:
        target = os.fspath(source)
    if isinstance(target, str) and not os.path.exists(target):
        raise AudioDecodeError(f"audio file not found: {target}")
    try:
        samples, rate = sf.read(target, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as error:
        if isinstance(target, str):
            # libsndfile's own words can mislead: a damaged MP3 is "File does not exist or is not a regular file".
            raise AudioDecodeError(
                f"cannot decode audio {target} ({os.path.getsize(target):,} bytes): the file exists but is damaged, "
                f"empty or not in a format libsndfile reads (WAV, FLAC, OGG/Vorbis, MP3); convert it, e.g. with "
                f"`ffmpeg -i <file> <file>.wav` (libsndfile: {error})"
            ) from error
        raise AudioDecodeError(f"cannot decode audio {_describe(source)}: {error}") from error
    return samples, int(rate)


def resample(waveform: np.ndarray, orig_sampling_rate: int, sampling_rate: int) -> np.ndarray:
    """Resample mono float audio with librosa's soxr backend (fast and high quality); a no-op at equal rates."""
    if orig_sampling_rate == sampling_rate:
        return waveform
    return librosa.resample(waveform, orig_sr=orig_sampling_rate, target_sr=sampling_rate, res_type="soxr_hq")


def trim_silence(waveform: np.ndarray, sampling_rate: int, top_db: float, margin_seconds: float = 0.05) -> np.ndarray:
    """Cut leading and trailing audio quieter than `top_db` below the clip's peak, keeping a short margin.

    The margin keeps plosive onsets and decaying endings that the frame-level energy test would clip.
    """
    if len(waveform) == 0:
        return waveform
    _, (start, end) = librosa.effects.trim(waveform, top_db=top_db, frame_length=1024, hop_length=256)
    margin = int(margin_seconds * sampling_rate)
    return waveform[max(0, start - margin) : min(len(waveform), end + margin)]


def load_audio(
    source: AudioSource,
    sampling_rate: int,
    *,
    peak_normalize: float | None = None,
    trim_top_db: float | None = None,
) -> DecodedAudio:
    """Decode, mix to mono, resample, and optionally trim edge silence and peak-normalize one clip.

    Args:
        source (`str`, `os.PathLike`, `bytes` or `dict`):
            A path, the file's bytes, or a `datasets` `Audio(decode=False)` value `{"bytes": ..., "path": ...}`.
        sampling_rate (`int`):
            Target rate (16000 for MMS).
        peak_normalize (`float`, *optional*):
            Scale the clip so that its peak is this linear level (e.g. `0.95`); `None` keeps the level.
        trim_top_db (`float`, *optional*):
            Trim edges quieter than this many dB below the peak; `None` keeps the edges.

    Raises:
        `AudioDecodeError`: the audio cannot be decoded.
    """
    samples, orig_rate = read_audio(source)
    channels = samples.shape[1]
    mono = samples.mean(axis=1) if channels > 1 else samples[:, 0]
    magnitude = np.abs(samples)
    peak = float(magnitude.max()) if magnitude.size else 0.0
    clipped = float((magnitude >= CLIPPING_LEVEL).mean()) if magnitude.size else 0.0
    waveform = resample(np.ascontiguousarray(mono, dtype=np.float32), orig_rate, sampling_rate)
    if trim_top_db is not None:
        waveform = trim_silence(waveform, sampling_rate, trim_top_db)
    if peak_normalize is not None and waveform.size:
        current = float(np.abs(waveform).max())
        if current > 0:
            waveform = waveform * (peak_normalize / current)
    # soxr can overshoot slightly past full scale on clipped input; 16-bit storage must not wrap around.
    waveform = np.clip(waveform, -1.0, 1.0).astype(np.float32, copy=False)
    return DecodedAudio(waveform, sampling_rate, orig_rate, channels, peak, clipped)


def rms_db(waveform: np.ndarray) -> float:
    """RMS level in dBFS, floored at `SILENCE_FLOOR_DB` so that digital silence stays a finite number."""
    if waveform.size == 0:
        return SILENCE_FLOOR_DB
    rms = float(np.sqrt(np.mean(np.square(waveform, dtype=np.float64))))
    return max(SILENCE_FLOOR_DB, 20.0 * np.log10(rms)) if rms > 0 else SILENCE_FLOOR_DB


def to_int16(waveform: np.ndarray) -> np.ndarray:
    """Quantize float audio in [-1, 1] to 16-bit PCM, the form the Arrow cache stores (half of float32's size)."""
    return np.round(np.clip(waveform, -1.0, 1.0) * 32767.0).astype(np.int16)


def from_int16(pcm: np.ndarray) -> np.ndarray:
    """Inverse of `to_int16`."""
    return np.asarray(pcm, dtype=np.float32) / 32767.0


def write_audio(path: str | os.PathLike, waveform: np.ndarray, sampling_rate: int, *, subtype: str = "PCM_16") -> Path:
    """Write a clip atomically (temporary file in the same folder, then rename), so readers never see half a file.

    The format follows the suffix (`.wav`, `.flac`, `.ogg`, `.mp3`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = path.suffix.lstrip(".").upper()
    if fmt == "MP3":
        subtype = "MPEG_LAYER_III"
    elif fmt == "OGG":
        subtype = "VORBIS"
    with atomic_path(path) as temporary:
        sf.write(temporary, waveform, sampling_rate, format=fmt, subtype=subtype)
    return path
