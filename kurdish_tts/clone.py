"""Clone a voice with a trained XTTS-style model: a reference clip of the voice and a text in, a waveform out.

    >>> from kurdish_tts.clone import VoiceCloner
    >>> cloner = VoiceCloner.from_pretrained("runs/xtts/best_model")
    >>> result = cloner.clone("Ez ê sibê werim malê.", "grandmother.wav")
    >>> result.save("out.wav")

The text goes through the same front end as training (`normalize_text`, then the model's tokenizer). The reference is
checked before anything runs (`check_reference`): a clip that is too short, silent, or recorded at a lower rate than
the model's is refused with a `ReferenceClipError` that says what to do. A higher rate is resampled (librosa soxr):
downsampling loses nothing the model reads, while upsampling a narrow-band clip (8 kHz phone audio) cannot restore
the bands the model's mel expects, and the clone would inherit a muffled voice without saying why.

The clone is brought to the reference's speech level (`kurdish_tts.audio.loudness`; never above -1 dBFS, at most
30 dB either way): a model trained on log-mels speaks flatter, hence quieter, than its recordings, and a user asking
for a voice expects it as loud as the clip they gave. `CloneResult.gain_db` says how much was applied, so the model's
own level stays visible; `match_reference_level=False` keeps it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .audio.features import mel_spectrogram
from .audio.io import AudioDecodeError, read_audio, resample, write_audio
from .audio.loudness import apply_gain, level_matching_gain_db
from .errors import UsageError
from .text import normalize_text, tokenizer_characters

# The shortest reference accepted, in seconds of sound (edge silence excluded): below this the conditioning latents
# summarize a few syllables, and the clone's voice drifts toward the training voices.
MIN_REFERENCE_SECONDS = 3.0
# Longer references are cropped to their middle this long: the model was trained on references of at most
# `reference_max_frames` (250 frames, 4 s at hop 256), and its latents do not get better with more.
MAX_REFERENCE_SECONDS = 12.0
# A clip whose loudest 50 ms window is below this level (dBFS) is taken as silent.
SILENCE_DBFS = -50.0


class ReferenceClipError(UsageError):
    """The reference clip cannot be cloned from; the message says why and what to record instead (exit status 2)."""


def _window_levels(waveform: np.ndarray, sampling_rate: int) -> np.ndarray:
    window = max(1, int(0.05 * sampling_rate))
    frames = len(waveform) // window
    if frames == 0:
        return np.array([20 * np.log10(max(float(np.sqrt(np.mean(waveform**2))) if len(waveform) else 0.0, 1e-10))])
    blocks = waveform[: frames * window].reshape(frames, window)
    return 20 * np.log10(np.maximum(np.sqrt((blocks.astype(np.float64) ** 2).mean(axis=1)), 1e-10))


def check_reference(
    waveform: np.ndarray, sampling_rate: int, model_sampling_rate: int, *, name: str = "the reference clip"
) -> np.ndarray:
    """Validate a reference clip and return it as mono float32 at `model_sampling_rate`.

    Args:
        waveform (`np.ndarray` of shape `(samples,)` or `(samples, channels)`): The clip, float in [-1, 1].
        sampling_rate (`int`): Its rate in Hz.
        model_sampling_rate (`int`): The model's rate (`config.mel_config.sampling_rate`).
        name (`str`, *optional*): How messages call the clip (e.g. its path).

    Raises:
        `ReferenceClipError`: lower rate than the model's, silent, or less than `MIN_REFERENCE_SECONDS` of sound.
    """
    samples = np.asarray(waveform, dtype=np.float32)
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    if samples.ndim != 1:
        raise ReferenceClipError(f"{name} must be mono or multi-channel audio, got an array of shape {samples.shape}")
    if sampling_rate < model_sampling_rate:
        raise ReferenceClipError(
            f"{name} is recorded at {sampling_rate} Hz, below the model's {model_sampling_rate} Hz: upsampling cannot "
            f"restore the missing high frequencies and the clone would sound muffled. Record (or export) the voice at "
            f"{model_sampling_rate} Hz or more."
        )
    if sampling_rate != model_sampling_rate:
        samples = resample(samples, sampling_rate, model_sampling_rate)
    levels = _window_levels(samples, model_sampling_rate)
    if float(levels.max()) < SILENCE_DBFS:
        raise ReferenceClipError(
            f"{name} is silent (its loudest 50 ms are at {levels.max():.0f} dBFS, below {SILENCE_DBFS:.0f}): record "
            "3 to 10 seconds of the person speaking, close to the microphone."
        )
    # Seconds of sound: the windows within 40 dB of the loudest (pauses inside the speech count, edge silence not).
    loud = np.flatnonzero(levels >= levels.max() - 40.0)
    sound_seconds = (loud[-1] - loud[0] + 1) * 0.05 if len(loud) else 0.0
    sound_seconds = min(sound_seconds, len(samples) / model_sampling_rate)
    if sound_seconds < MIN_REFERENCE_SECONDS:
        raise ReferenceClipError(
            f"{name} holds {sound_seconds:.1f} s of sound; the model needs at least {MIN_REFERENCE_SECONDS:.0f} s of "
            "the voice to clone it. Record 3 to 10 seconds of the person speaking (one or two sentences)."
        )
    longest = int(MAX_REFERENCE_SECONDS * model_sampling_rate)
    if len(samples) > longest:
        start = (len(samples) - longest) // 2
        samples = samples[start : start + longest]
    return samples


def load_reference(path: str | os.PathLike, model_sampling_rate: int) -> np.ndarray:
    """Read an audio file and `check_reference` it; a missing or undecodable file is a `ReferenceClipError` too."""
    path = Path(path)
    if not path.is_file():
        raise ReferenceClipError(f"the reference clip {path} does not exist")
    try:
        samples, rate = read_audio(str(path))
    except AudioDecodeError as error:
        raise ReferenceClipError(f"cannot read the reference clip {path}: {error}") from error
    return check_reference(samples, rate, model_sampling_rate, name=f"the reference clip {path}")


@dataclass
class CloneResult:
    """
    One cloned utterance.

    Args:
        waveform (`np.ndarray` of shape `(samples,)`): Float32 audio in [-1, 1].
        sampling_rate (`int`): Its rate.
        hit_max_length (`bool`): Generation ran into its length cap instead of stopping at the end of the text (the
            clip is then cut off or runs on past the sentence).
        attention (`np.ndarray` of shape `(steps, tokens)`): The free-running text attention (for plots and checks).
        seconds (`float`): Wall time of generation and vocoding.
        text (`str`): The normalized text that was spoken.
        gain_db (`float`, *optional*, defaults to `0.0`): The gain applied to bring the clone to the reference's speech
            level (0 when level matching is off); positive when the model's own output was quieter.
    """

    waveform: np.ndarray
    sampling_rate: int
    hit_max_length: bool
    attention: np.ndarray
    seconds: float
    text: str
    gain_db: float = 0.0

    def save(self, path: str | os.PathLike) -> Path:
        """Write a 16-bit WAV atomically (a crash never leaves half a file under `path`)."""
        return write_audio(path, np.clip(self.waveform, -1.0, 1.0), self.sampling_rate)


class VoiceCloner:
    r"""
    Speak any Kurmanji text in the voice of a reference clip, with an `XttsForTextToSpeech`.

    Args:
        model ([`XttsForTextToSpeech`]): The model (put in eval mode here).
        tokenizer: Its tokenizer (saved next to it by training).
        vocoder (`Callable`, *optional*): Mel → waveform (`kurdish_tts.models.xtts.load_vocoder`); Griffin-Lim when
            unset (the default: it needs no download; see the README's "Vocoders").
        max_seconds (`float`, *optional*, defaults to `30.0`): Length cap of one utterance; a model that never fires
            its stop head stops here (and `CloneResult.hit_max_length` says so).
        stop_threshold (`float`, *optional*, defaults to `0.5`): Stop probability that ends generation.
        seed (`int`, *optional*, defaults to `0`): Seed of the (dropout-free) generation's random state.
        match_reference_level (`bool`, *optional*, defaults to `True`): Scale each clone to the reference's speech
            level (see the module's docstring); `False` returns the vocoder's output as it is.
    """

    def __init__(
        self,
        model,
        tokenizer,
        *,
        vocoder=None,
        max_seconds: float = 30.0,
        stop_threshold: float = 0.5,
        seed: int = 0,
        match_reference_level: bool = True,
    ):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self._characters = tokenizer_characters(tokenizer)
        if vocoder is None:
            from .models.xtts.vocoder import GriffinLimVocoder

            vocoder = GriffinLimVocoder(model.config.mel_config)
        self.vocoder = vocoder
        mel = model.config.mel_config
        frames = int(max_seconds * mel.sampling_rate / mel.hop_length)
        self.max_new_frames = max(1, min(frames, model.config.max_mel_frames))
        self.stop_threshold = stop_threshold
        self.seed = seed
        self.match_reference_level = match_reference_level

    @classmethod
    def from_pretrained(cls, model_dir: str | os.PathLike, device: str | torch.device = "cpu", **kwargs):
        """Load a saved model folder (model + tokenizer, e.g. a run's `best_model`)."""
        from transformers import AutoTokenizer

        from .models.xtts.modeling_xtts import XttsForTextToSpeech

        model_dir = Path(model_dir)
        if not (model_dir / "config.json").is_file():
            raise UsageError(
                f"{model_dir} is not a saved XTTS model folder (no config.json): pass a run's best_model folder, "
                "e.g. runs/xtts/best_model"
            )
        model = XttsForTextToSpeech.from_pretrained(model_dir).to(device)
        return cls(model, AutoTokenizer.from_pretrained(model_dir), **kwargs)

    @property
    def sampling_rate(self) -> int:
        return self.model.config.mel_config.sampling_rate

    def reference_mel(self, reference: str | os.PathLike | np.ndarray) -> torch.Tensor:
        """A checked reference (a file, or a waveform at the model's rate) as a `(1, frames, n_mels)` log-mel."""
        if isinstance(reference, (str, os.PathLike)):
            waveform = load_reference(reference, self.sampling_rate)
        else:
            waveform = check_reference(reference, self.sampling_rate, self.sampling_rate)
        mel = mel_spectrogram(torch.from_numpy(waveform), self.model.config.mel_config).T  # (frames, n_mels)
        return mel.unsqueeze(0).to(self.model.device)

    def clone(
        self, text: str, reference: str | os.PathLike | np.ndarray | torch.Tensor, *, vocoder=None
    ) -> CloneResult:
        """Speak `text` in the voice of `reference` (an audio file, a waveform at the model's rate, or the
        `(1, frames, n_mels)` log-mel of `reference_mel`); `vocoder` overrides the cloner's for this call."""
        normalized = normalize_text(text, self._characters).text
        if not normalized.strip():
            raise UsageError(
                f"the text {text!r} has nothing the model can read (no Kurmanji letters after normalizing)"
            )
        inputs = self.tokenizer(normalized, return_tensors="pt").to(self.model.device)
        reference_mel = reference if torch.is_tensor(reference) and reference.dim() == 3 else None
        if reference_mel is None:
            reference_mel = self.reference_mel(reference)
        from .evaluation.xtts_synthesis import generate_speech

        speech = generate_speech(
            self.model,
            inputs,
            reference_mel,
            vocoder or self.vocoder,
            seed=self.seed,
            max_new_frames=self.max_new_frames,
            stop_threshold=self.stop_threshold,
        )
        waveform, gain_db = speech.waveform, 0.0
        if self.match_reference_level and len(waveform):
            clone_mel = mel_spectrogram(torch.from_numpy(waveform), self.model.config.mel_config).T
            gain_db = level_matching_gain_db(clone_mel, reference_mel[0].cpu(), float(np.abs(waveform).max()))
            waveform = apply_gain(waveform, gain_db)
        return CloneResult(
            waveform=waveform,
            sampling_rate=self.sampling_rate,
            hit_max_length=speech.hit_max_length,
            attention=speech.attention,
            seconds=speech.seconds,
            text=normalized,
            gain_db=gain_db,
        )
