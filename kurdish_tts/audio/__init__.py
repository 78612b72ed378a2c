"""Audio I/O (soundfile + librosa) and the one `MelConfig` shared by data, models and evaluation."""

from .features import MelConfig, linear_spectrogram, mel_filterbank, mel_spectrogram, spectrogram_to_mel
from .io import AudioDecodeError, DecodedAudio, load_audio, read_audio, resample, rms_db, trim_silence, write_audio

__all__ = [
    "AudioDecodeError",
    "DecodedAudio",
    "MelConfig",
    "linear_spectrogram",
    "load_audio",
    "mel_filterbank",
    "mel_spectrogram",
    "read_audio",
    "resample",
    "rms_db",
    "spectrogram_to_mel",
    "trim_silence",
    "write_audio",
]
