"""`XttsSynthesizer`: the evaluation interface in front of the XTTS-style model."""

import numpy as np
import pytest
import torch

from kurdish_tts.audio.features import mel_spectrogram
from kurdish_tts.audio.io import from_int16
from kurdish_tts.evaluation import XttsSynthesizer
from kurdish_tts.evaluation.metrics import real_time_factor
from kurdish_tts.models.xtts import XttsConfig, XttsForTextToSpeech

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def model(tokenizer):
    torch.manual_seed(0)
    # With dropout, so that a forgotten switch to eval mode would show as different outputs.
    config = XttsConfig.for_size("tiny", vocab_size=tokenizer.vocab_size, prenet_dropout=0.5, dropout=0.1)
    return XttsForTextToSpeech(config)


@pytest.fixture(scope="module")
def references(tiny_demo):
    """The first clip of two espeak voices, as float32 waveforms."""
    rows = tiny_demo.select([0, 1]).with_format("numpy")
    return {rows[i]["speaker"]: from_int16(np.asarray(rows[i]["waveform"], dtype=np.int16)) for i in range(2)}


class TestXttsSynthesizer:
    def test_synthesize_returns_audio_at_the_model_rate_and_reports_the_limit(self, model, tokenizer, references):
        synthesizer = XttsSynthesizer(model, tokenizer, reference=references, max_new_frames=64, stop_threshold=1.0)
        assert synthesizer.sampling_rate == 16000 and synthesizer.device == torch.device("cpu")
        assert synthesizer.mel_config == model.config.mel_config
        result = synthesizer.synthesize("Şev baş, ez ê sibê werim.", "espeak_ku_m1")
        assert result.sampling_rate == 16000 and result.waveform.dtype == np.float32
        assert result.waveform.shape == (64 * model.config.mel_config.hop_length,)
        assert result.hit_max_length is True
        assert result.seconds > 0 and 0 < real_time_factor(result.seconds, len(result.waveform) / 16000) < float("inf")
        # The caller's train/eval flag is restored.
        assert model.training

    def test_same_input_gives_the_same_audio_and_voices_differ(self, model, tokenizer, references):
        synthesizer = XttsSynthesizer(model, tokenizer, reference=references, max_new_frames=32, stop_threshold=1.0)
        torch.manual_seed(123)
        first = synthesizer.synthesize("Ez ji pisîkan hez dikim.", "espeak_ku_m1").waveform
        # The caller's random stream (a training run's) is untouched: synthesis draws from a forked one.
        after_synthesis = torch.rand(3)
        torch.manual_seed(123)
        torch.testing.assert_close(after_synthesis, torch.rand(3))
        again = synthesizer.synthesize("Ez ji pisîkan hez dikim.", "espeak_ku_m1").waveform
        np.testing.assert_array_equal(first, again)
        assert np.abs(first).max() > 0
        other_voice = synthesizer.synthesize("Ez ji pisîkan hez dikim.", "espeak_ku_f2").waveform
        assert not np.array_equal(first, other_voice)
        # An unknown speaker falls back to the first reference.
        np.testing.assert_array_equal(synthesizer.synthesize("Ez ji pisîkan hez dikim.", "nobody").waveform, first)

    def test_a_waveform_a_mel_and_a_file_are_the_same_reference(self, model, tokenizer, references, tmp_dir):
        from kurdish_tts.audio.io import write_audio

        waveform = references["espeak_ku_m1"]
        mel = mel_spectrogram(torch.from_numpy(waveform), model.config.mel_config).T  # (frames, n_mels)
        path = write_audio(tmp_dir / "reference.wav", waveform, 16000, subtype="FLOAT")
        mels = [
            XttsSynthesizer(model, tokenizer, reference=reference).reference_mel()
            for reference in (waveform, mel, path)
        ]
        torch.testing.assert_close(mels[0], mel)
        torch.testing.assert_close(mels[1], mel)
        torch.testing.assert_close(mels[2], mel, rtol=0, atol=1e-4)
        with pytest.raises(ValueError, match="pass a waveform"):
            XttsSynthesizer(model, tokenizer, reference=np.zeros((3, 3, 3))).reference_mel()
        with pytest.raises(ValueError, match="at least one clip"):
            XttsSynthesizer(model, tokenizer, reference={})

    def test_from_pretrained_loads_model_and_tokenizer(self, model, tokenizer, references, tmp_dir):
        model.save_pretrained(tmp_dir)
        tokenizer.save_pretrained(tmp_dir)
        synthesizer = XttsSynthesizer.from_pretrained(
            tmp_dir, reference=references["espeak_ku_f2"], max_new_frames=16, stop_threshold=1.0
        )
        expected = XttsSynthesizer(
            model, tokenizer, reference=references["espeak_ku_f2"], max_new_frames=16, stop_threshold=1.0
        ).synthesize("We ew bihîst?")
        assert synthesizer.name == str(tmp_dir)
        np.testing.assert_array_equal(synthesizer.synthesize("We ew bihîst?").waveform, expected.waveform)
