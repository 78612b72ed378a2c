"""Vocoders of the XTTS path: Griffin-Lim on the shared `MelConfig`, and user-named `transformers` vocoders."""

import json

import numpy as np
import pytest
import torch

from kurdish_tts.audio.features import MelConfig, mel_spectrogram
from kurdish_tts.audio.io import load_audio
from kurdish_tts.data.demo_corpus import DEMO_CORPUS_DIR
from kurdish_tts.models.xtts.vocoder import (
    VOCODER_MEL_CONFIG_NAME,
    GriffinLimVocoder,
    NeuralVocoder,
    VocoderMismatchError,
    load_vocoder,
)

TINY_MEL = MelConfig(n_fft=32, hop_length=16, win_length=32, n_mels=8)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def demo_waveform():
    return torch.from_numpy(load_audio(DEMO_CORPUS_DIR / "wavs" / "kmr_demo_0001.flac", 16000).waveform)


class TestGriffinLimVocoder:
    # Mean |log-mel difference| of the round trip, measured on this clip: 0.151 (MMS mels), 0.106 (tiny mels), with
    # the defaults (32 iterations). Without the half-hop alignment to the package's STFT it is 0.34 (MMS mels).
    @pytest.mark.parametrize("mel_config, tolerance", [(MelConfig(), 0.2), (TINY_MEL, 0.15)])
    def test_griffin_lim_round_trip_reproduces_the_mel(self, demo_waveform, mel_config, tolerance):
        log_mel = mel_spectrogram(demo_waveform, mel_config).T.unsqueeze(0)  # (1, frames, n_mels)
        (waveform,) = GriffinLimVocoder(mel_config)(log_mel)
        frames = log_mel.shape[1]
        assert waveform.shape == (frames * mel_config.hop_length,) and waveform.dtype == torch.float32
        rebuilt = mel_spectrogram(waveform, mel_config).T
        assert rebuilt.shape == log_mel[0].shape
        assert (rebuilt - log_mel[0]).abs().mean() < tolerance
        # A waveform that is not the clip's (the same one delayed by 20 frames) is far from it: the check can fail.
        shifted = mel_spectrogram(torch.roll(waveform, 20 * mel_config.hop_length), mel_config).T
        assert (shifted - log_mel[0]).abs().mean() > 3 * tolerance

    def test_griffin_lim_trims_each_example_to_its_length_and_is_deterministic(self, demo_waveform):
        log_mel = mel_spectrogram(demo_waveform[:8000], TINY_MEL).T
        batch = torch.stack([log_mel, log_mel])  # (2, frames, n_mels)
        vocoder = GriffinLimVocoder(TINY_MEL, n_iter=4)
        first, second = vocoder(batch, torch.tensor([log_mel.shape[0], 100]))
        assert first.shape == (log_mel.shape[0] * 16,) and second.shape == (100 * 16,)
        assert torch.equal(vocoder(batch)[0], first)
        for mel_config in (TINY_MEL, MelConfig()):
            (one_frame,) = GriffinLimVocoder(mel_config, n_iter=2)(torch.full((1, 1, mel_config.n_mels), -3.0))
            assert one_frame.shape == (mel_config.hop_length,) and torch.isfinite(one_frame).all()

    def test_griffin_lim_rejects_mels_of_other_settings(self):
        with pytest.raises(ValueError, match=r"\(batch, frames, 8\)"):
            GriffinLimVocoder(TINY_MEL)(torch.zeros(1, 10, 80))
        with pytest.raises(ValueError, match="momentum"):
            GriffinLimVocoder(TINY_MEL, momentum=1.0)


def save_tiny_hifigan(folder, mel_config: MelConfig, *, upsample_rates=(4, 4), record=None, in_config=False):
    """A random few-hundred-parameter `SpeechT5HifiGan` saved with the given recorded mel settings."""
    from transformers import SpeechT5HifiGan, SpeechT5HifiGanConfig

    config = SpeechT5HifiGanConfig(
        model_in_dim=mel_config.n_mels,
        sampling_rate=mel_config.sampling_rate,
        upsample_initial_channel=8,
        upsample_rates=list(upsample_rates),
        upsample_kernel_sizes=[2 * rate for rate in upsample_rates],
        resblock_kernel_sizes=[3],
        resblock_dilation_sizes=[[1]],
    )
    torch.manual_seed(0)
    SpeechT5HifiGan(config).save_pretrained(folder)
    record = mel_config.to_dict() if record is None else record
    if in_config:
        saved = json.loads((folder / "config.json").read_text())
        saved["kurdish_tts_mel"] = record
        (folder / "config.json").write_text(json.dumps(saved))
    elif record is not False:
        (folder / VOCODER_MEL_CONFIG_NAME).write_text(json.dumps(record))
    return folder


class TestLoadVocoder:
    @pytest.mark.parametrize("name", [None, "griffin-lim", "Griffin_Lim"])
    def test_load_vocoder_defaults_to_griffin_lim(self, name):
        vocoder = load_vocoder(name, TINY_MEL, n_iter=3)
        assert isinstance(vocoder, GriffinLimVocoder) and vocoder.n_iter == 3

    @pytest.mark.parametrize("in_config", [False, True])
    def test_load_vocoder_loads_a_matching_hifigan(self, tmp_dir, in_config):
        folder = save_tiny_hifigan(tmp_dir / "hifigan", TINY_MEL, in_config=in_config)
        vocoder = load_vocoder(folder, TINY_MEL)
        assert isinstance(vocoder, NeuralVocoder) and vocoder.sampling_rate == 16000
        first, second = vocoder(torch.randn(2, 12, 8) - 5, torch.tensor([12, 5]))
        assert first.shape == (12 * 16,) and second.shape == (5 * 16,)
        assert torch.isfinite(first).all()

    def test_load_vocoder_names_every_mismatched_field(self, tmp_dir):
        record = {**TINY_MEL.to_dict(), "fmin": 80.0, "fmax": 7600.0}
        folder = save_tiny_hifigan(tmp_dir / "hifigan", TINY_MEL, record=record)
        with pytest.raises(VocoderMismatchError) as raised:
            load_vocoder(folder, TINY_MEL)
        message = str(raised.value)
        assert "vocoder expects fmin=80.0, this model's mels use fmin=0.0" in message
        assert "vocoder expects fmax=7600.0, this model's mels use fmax=8000.0" in message
        assert "n_mels" not in message and isinstance(raised.value, ValueError)

    def test_load_vocoder_checks_the_network_against_its_record(self, tmp_dir):
        folder = save_tiny_hifigan(tmp_dir / "hifigan", TINY_MEL, upsample_rates=(4, 2))
        with pytest.raises(VocoderMismatchError, match=r"makes 8 samples per frame .* hop_length=16"):
            load_vocoder(folder, TINY_MEL)

    def test_load_vocoder_requires_recorded_mel_settings(self, tmp_dir):
        folder = save_tiny_hifigan(tmp_dir / "hifigan", TINY_MEL, record=False)
        with pytest.raises(VocoderMismatchError, match="mel_config.json"):
            load_vocoder(folder, TINY_MEL)

    def test_model_synthesizes_through_a_named_vocoder(self, tokenizer, tmp_dir):
        from kurdish_tts.models.xtts import XttsConfig, XttsForTextToSpeech

        model = XttsForTextToSpeech(XttsConfig.for_size("tiny", vocab_size=tokenizer.vocab_size)).eval()
        vocoder = load_vocoder(
            save_tiny_hifigan(tmp_dir / "hifigan", model.config.mel_config), model.config.mel_config
        )
        waveforms, hit_max_length = model.synthesize(
            torch.tensor([[3, 5, 7, 9]]),
            reference_mel=torch.randn(1, 30, 8) - 5,
            max_new_frames=12,
            stop_threshold=1.0,
            vocoder=vocoder,
        )
        assert hit_max_length == [True]
        assert waveforms[0].shape == (12 * 16,) and waveforms[0].dtype == np.float32
