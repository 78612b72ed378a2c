"""Mel-cepstral distortion with DTW alignment, as a Hugging Face `evaluate` metric module.

Shipped inside the package and loaded from its folder, with no network:

    >>> from kurdish_tts.evaluation import load_mcd_metric
    >>> mcd = load_mcd_metric()            # evaluate.load(<this folder>)
    >>> mcd.compute(predictions=[synthesized], references=[recorded], sampling_rate=16000)
    {'mcd': 5.1, 'mcd_per_item': [5.1], 'path_lengths': [212]}

The computation is `kurdish_tts.evaluation.mcd.mel_cepstral_distortion`; this file only adapts it to `evaluate`.
`evaluate.load` copies this script into its modules cache and imports it from there, so it imports the package by its
absolute name, never relatively.
"""

import datasets
import evaluate
import numpy as np

from kurdish_tts.evaluation.mcd import DEFAULT_NUM_COEFFICIENTS, mel_cepstral_distortion

_DESCRIPTION = """
Mel-cepstral distortion (MCD, in dB) between synthesized and reference speech, aligned by dynamic time warping.
Mel-cepstra are the DCT of kurdish_tts's shared log-mel (MMS geometry: 16 kHz, n_fft 1024, hop 256, 80 mels),
c1..c24 (c0, the energy, is left out); MCD = 10/ln10 * sqrt(2 * sum_d (c_d - c'_d)^2), averaged over the DTW path.
0 for identical audio; lower is better.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of 1-D float arrays): synthesized clips, mono, in [-1, 1].
    references (`list` of 1-D float arrays): the recorded clips of the same texts, in the same order.
    sampling_rate (`int`, defaults to 16000): rate of every clip (resampled to 16 kHz when different).
    num_coefficients (`int`, defaults to 24): mel-cepstral coefficients compared (c1..cK).
Returns:
    mcd (`float`): mean MCD over the pairs, in dB.
    mcd_per_item (`list[float]`): MCD of each pair.
    path_lengths (`list[int]`): DTW path length (aligned frame pairs) of each pair.
"""

_CITATION = """
@inproceedings{kubichek1993mcd,
  title={Mel-cepstral distance measure for objective speech quality assessment},
  author={Kubichek, Robert F.},
  booktitle={IEEE Pacific Rim Conference on Communications Computers and Signal Processing},
  year={1993}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MelCepstralDistortion(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.List(datasets.Value("float32")),
                    "references": datasets.List(datasets.Value("float32")),
                }
            ),
        )

    def _compute(self, predictions, references, sampling_rate=16000, num_coefficients=DEFAULT_NUM_COEFFICIENTS):
        results = [
            mel_cepstral_distortion(
                np.asarray(reference, dtype=np.float32),
                np.asarray(prediction, dtype=np.float32),
                sampling_rate,
                num_coefficients=num_coefficients,
            )
            for prediction, reference in zip(predictions, references)
        ]
        per_item = [result.mcd for result in results]
        return {
            "mcd": float(np.mean(per_item)) if per_item else float("nan"),
            "mcd_per_item": per_item,
            "path_lengths": [result.path_length for result in results],
        }
