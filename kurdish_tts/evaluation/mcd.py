"""Mel-cepstral distortion (MCD) between a reference and a synthesized clip, aligned with dynamic time warping.

The mel-cepstrum is the DCT-II of the log-mel spectrogram of the package's one `MelConfig` (natural-log magnitudes),
scaled like a real cepstrum (`c_k = 1/M * sum_m log|S_m| cos(pi k (m + 1/2) / M)` over the M mel bands, so a ripple of
amplitude A in the log spectrum gives `c_k = A / 2`), with the energy coefficient c0 left out, so that loudness
differences do not count:

    MCD = (10 / ln 10) * sqrt(2 * sum_d (c_d - c'_d)^2)        [dB, per aligned frame pair, d = 1..K]

averaged over the frame pairs of the DTW path between the two cepstrograms (the path length is the divisor, as in
ESPnet's MCD). The log-mel is of magnitudes in natural-log units, which is what the `10 / ln 10 * sqrt(2)` factor
expects (it is the dB form of the cepstral distance of log-amplitude spectra).

Comparable numbers. Every model is scored in the same geometry, `MelConfig()` (MMS: 16 kHz, n_fft 1024, hop 256,
80 mels up to 8 kHz), whatever its own STFT settings: audio is resampled to 16 kHz first. MCD from this module is
therefore comparable across this package's runs and models, but not with papers that use SPTK's frequency-warped
mel-cepstra (`mcep`, alpha 0.42), whose values are on another scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import librosa
import numpy as np
import scipy.fft
import torch

from ..audio.features import MelConfig, mel_spectrogram
from ..audio.io import resample

# c1..c24: ESPnet and most VITS papers compare 24 mel-cepstral coefficients (c0 excluded).
DEFAULT_NUM_COEFFICIENTS = 24
# 10 / ln(10) * sqrt(2): a cepstral distance of natural-log amplitude spectra, in dB.
_MCD_DB = 10.0 / math.log(10.0) * math.sqrt(2.0)


@dataclass
class MelCepstralDistortion:
    """The MCD of one clip pair.

    Args:
        mcd (`float`):
            Mean distortion in dB over the aligned frame pairs; `0.0` for identical audio.
        reference_frames (`int`):
            Frames of the reference's mel-cepstrogram.
        synthesized_frames (`int`):
            Frames of the synthesized clip's mel-cepstrogram.
        path_length (`int`):
            Frame pairs on the DTW path (the divisor of the mean).
        path (`np.ndarray` of shape `(path_length, 2)`):
            The aligned `(reference_frame, synthesized_frame)` pairs, in time order; other frame-level metrics
            (F0) reuse it.
    """

    mcd: float
    reference_frames: int
    synthesized_frames: int
    path_length: int
    path: np.ndarray = field(repr=False)


def mel_cepstrum(
    waveform: np.ndarray,
    mel_config: MelConfig | None = None,
    num_coefficients: int = DEFAULT_NUM_COEFFICIENTS,
) -> np.ndarray:
    """Mel-cepstral coefficients c1..cK of a clip: the DCT-II of its log-mel spectrogram in real-cepstrum units, no c0.

    Args:
        waveform (`np.ndarray` of shape `(samples,)`):
            Mono audio in [-1, 1] at `mel_config.sampling_rate`.
        mel_config (`MelConfig`, *optional*):
            Defaults to `MelConfig()` (the MMS geometry every model is scored in).
        num_coefficients (`int`, *optional*, defaults to `24`):
            K; must be below `mel_config.n_mels`.

    Returns:
        `np.ndarray` of shape `(frames, num_coefficients)`, float64.
    """
    mel_config = mel_config or MelConfig()
    if not 0 < num_coefficients < mel_config.n_mels:
        raise ValueError(
            f"num_coefficients must be between 1 and n_mels - 1 = {mel_config.n_mels - 1}, got {num_coefficients}"
        )
    samples = torch.from_numpy(np.ascontiguousarray(waveform, dtype=np.float32))
    log_mel = mel_spectrogram(samples, mel_config).numpy().astype(np.float64)  # (n_mels, frames)
    # scipy's unnormalized DCT-II is 2 * sum(...): dividing by 2M gives real-cepstrum units. The orthonormal DCT of
    # MFCCs would scale every coefficient, and the MCD, by sqrt(2M) (about 12.6 for 80 bands), far from the usual scale.
    cepstrum = scipy.fft.dct(log_mel, type=2, axis=0) / (2 * mel_config.n_mels)  # (n_mels, frames)
    return cepstrum[1 : num_coefficients + 1].T


def dtw_path(reference: np.ndarray, synthesized: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The minimum-cost monotonic alignment of two feature sequences under Euclidean frame distance.

    Steps are (1, 1), (1, 0) and (0, 1) with equal weight, so the problem is symmetric: swapping the arguments
    transposes the cost matrix and gives the same total cost (only the choice among tied paths may differ).

    Args:
        reference (`np.ndarray` of shape `(frames_a, dims)`):
        synthesized (`np.ndarray` of shape `(frames_b, dims)`):

    Returns:
        `(path, distances)`: `path` of shape `(length, 2)` with `(reference_frame, synthesized_frame)` pairs in time
        order, and `distances` of shape `(length,)`, the Euclidean distance of each pair.
    """
    if len(reference) == 0 or len(synthesized) == 0:
        raise ValueError(
            f"cannot align an empty sequence ({len(reference)} reference and {len(synthesized)} synthesized frames)"
        )
    # librosa's DTW takes (dims, frames) and returns the path from the end back to the start.
    _, warping_path = librosa.sequence.dtw(X=reference.T, Y=synthesized.T, metric="euclidean", backtrack=True)
    path = np.ascontiguousarray(warping_path[::-1])
    distances = np.linalg.norm(reference[path[:, 0]] - synthesized[path[:, 1]], axis=1)
    return path, distances


def mel_cepstral_distortion(
    reference: np.ndarray,
    synthesized: np.ndarray,
    sampling_rate: int = 16000,
    *,
    mel_config: MelConfig | None = None,
    num_coefficients: int = DEFAULT_NUM_COEFFICIENTS,
) -> MelCepstralDistortion:
    """MCD with DTW alignment between two mono clips (see the module docstring for the formula).

    Args:
        reference (`np.ndarray` of shape `(samples,)`):
            The recorded clip, in [-1, 1].
        synthesized (`np.ndarray` of shape `(samples,)`):
            The model's clip for the same text.
        sampling_rate (`int`, *optional*, defaults to `16000`):
            Rate of both clips; they are resampled to `mel_config.sampling_rate` when it differs.
        mel_config (`MelConfig`, *optional*):
            Defaults to `MelConfig()`, so that every model is scored in one geometry.
        num_coefficients (`int`, *optional*, defaults to `24`):
            Cepstral coefficients compared (c1..cK).

    Returns:
        [`MelCepstralDistortion`]

    Raises:
        `ValueError`: a clip is shorter than one frame.

    Example:

    ```python
    >>> mel_cepstral_distortion(clip, clip).mcd
    0.0
    ```
    """
    mel_config = mel_config or MelConfig()
    reference_cepstrum = mel_cepstrum(
        resample(np.asarray(reference, dtype=np.float32), sampling_rate, mel_config.sampling_rate),
        mel_config,
        num_coefficients,
    )
    synthesized_cepstrum = mel_cepstrum(
        resample(np.asarray(synthesized, dtype=np.float32), sampling_rate, mel_config.sampling_rate),
        mel_config,
        num_coefficients,
    )
    path, distances = dtw_path(reference_cepstrum, synthesized_cepstrum)
    return MelCepstralDistortion(
        mcd=float(_MCD_DB * distances.mean()),
        reference_frames=len(reference_cepstrum),
        synthesized_frames=len(synthesized_cepstrum),
        path_length=len(path),
        path=path,
    )
