"""Tests for `VitsDiscriminatorConfig`, `VitsDiscriminator` and its persistence next to a VITS model directory."""

import inspect
import math
import os

import pytest
import torch

from kurdish_tts.models.vits.configuration_discriminator import VitsDiscriminatorConfig
from kurdish_tts.models.vits.modeling_discriminator import (
    _ARCHITECTURE_FIELDS,
    DISCRIMINATOR_CONFIG_NAME,
    DISCRIMINATOR_WEIGHTS_NAME,
    VitsDiscriminator,
    VitsDiscriminatorOutput,
    load_discriminator,
    save_discriminator,
)

# Not a multiple of 2 or 3 (the tiny periods), so every period discriminator pads.
NUM_SAMPLES = 1001

# The VITS discriminator (jaywalnut310/vits `MultiPeriodDiscriminator`), weight-norm magnitudes included:
# scale discriminator 5,641,362 + 5 period discriminators x 8,221,154 = 46,747,132, i.e. the ~46.7M usually quoted for
# VITS's MPD+MSD (46,730,118 without the 17,014 weight-norm magnitudes).
FULL_NUM_PARAMETERS = 46_747_132


def _expected_frames(num_samples: int, strides: list[int]) -> int:
    # "Same" padding with odd kernels makes every convolution output ceil(length / stride) frames.
    for stride in strides:
        num_samples = math.ceil(num_samples / stride)
    return num_samples


def _expected_shapes(config: VitsDiscriminatorConfig, batch_size: int, num_samples: int):
    """Logit and feature-map shapes per sub-discriminator, scale first, derived from the config alone."""
    logits, feature_maps = [], []
    frames = num_samples
    maps = []
    for channels, stride in zip(config.scale_discriminator_channels, config.scale_discriminator_strides, strict=True):
        frames = math.ceil(frames / stride)
        maps.append((batch_size, channels, frames))
    maps.append((batch_size, 1, frames))
    logits.append((batch_size, frames))
    feature_maps.append(maps)

    num_layers = len(config.period_discriminator_channels)
    period_strides = [config.period_discriminator_stride] * (num_layers - 1) + [1]
    for period in config.periods:
        frames = math.ceil(num_samples / period)  # rows after reflection padding to a multiple of the period
        maps = []
        for channels, stride in zip(config.period_discriminator_channels, period_strides, strict=True):
            frames = math.ceil(frames / stride)
            maps.append((batch_size, channels, frames, period))
        maps.append((batch_size, 1, frames, period))
        logits.append((batch_size, frames * period))
        feature_maps.append(maps)
    return logits, feature_maps


def _shapes(output: VitsDiscriminatorOutput):
    logits = [tuple(scores.shape) for scores in output.logits]
    feature_maps = [[tuple(features.shape) for features in maps] for maps in output.feature_maps]
    return logits, feature_maps


def _assert_outputs_equal(expected: VitsDiscriminatorOutput, actual: VitsDiscriminatorOutput):
    for expected_scores, scores in zip(expected.logits, actual.logits, strict=True):
        torch.testing.assert_close(scores, expected_scores, rtol=0, atol=0)
    for expected_maps, maps in zip(expected.feature_maps, actual.feature_maps, strict=True):
        for expected_features, features in zip(expected_maps, maps, strict=True):
            torch.testing.assert_close(features, expected_features, rtol=0, atol=0)


@pytest.fixture
def discriminator():
    return VitsDiscriminator(VitsDiscriminatorConfig.tiny()).eval()


@pytest.fixture
def waveform():
    return 0.5 * torch.randn(2, 1, NUM_SAMPLES)  # (batch, 1, samples)


class TestVitsDiscriminatorConfig:
    def test_config_defaults_are_the_vits_discriminator(self):
        config = VitsDiscriminatorConfig()
        assert config.periods == [2, 3, 5, 7, 11]
        assert config.period_discriminator_channels == [32, 128, 512, 1024, 1024]
        assert (config.period_discriminator_kernel_size, config.period_discriminator_stride) == (5, 3)
        assert config.scale_discriminator_channels == [16, 64, 256, 1024, 1024, 1024]
        assert config.scale_discriminator_kernel_sizes == [15, 41, 41, 41, 41, 5]
        assert config.scale_discriminator_strides == [1, 4, 4, 4, 4, 1]
        assert config.scale_discriminator_groups == [1, 4, 16, 64, 256, 1]
        assert (config.leaky_relu_slope, config.use_spectral_norm) == (0.1, False)
        assert config.num_discriminators == 6

    def test_config_tiny_accepts_overrides(self):
        config = VitsDiscriminatorConfig.tiny(periods=[2, 5])
        assert config.periods == [2, 5]
        assert config.period_discriminator_channels == [4, 8, 8]

    def test_config_round_trip(self, tmp_dir):
        config = VitsDiscriminatorConfig.tiny(use_spectral_norm=True)
        config.save_pretrained(tmp_dir)
        loaded = VitsDiscriminatorConfig.from_pretrained(tmp_dir)
        assert loaded.to_dict() == config.to_dict()

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"periods": []}, "`periods` must be a non-empty list"),
            ({"periods": 2}, "`periods` must be a non-empty list"),
            ({"periods": [2, 0]}, "`periods` must be a non-empty list"),
            ({"periods": [2, 2]}, "must not repeat"),
            ({"period_discriminator_channels": [32, True]}, "`period_discriminator_channels`"),
            ({"period_discriminator_kernel_size": 4}, "must be odd"),
            ({"period_discriminator_stride": 0}, "`period_discriminator_stride` must be a positive integer"),
            ({"scale_discriminator_strides": [1, 4, 4]}, "`scale_discriminator_strides` has 3 entries"),
            ({"scale_discriminator_kernel_sizes": [15, 40, 41, 5]}, "must be odd"),
            ({"scale_discriminator_groups": [1, 3, 4, 1]}, "divisible"),
            ({"leaky_relu_slope": 0.0}, r"\(0, 1\)"),
            ({"use_spectral_norm": "yes"}, "must be a bool"),
        ],
    )
    def test_config_rejects_invalid_arguments(self, kwargs, message):
        with pytest.raises(ValueError, match=message):
            VitsDiscriminatorConfig.tiny(**kwargs)


class TestVitsDiscriminator:
    def test_forward_output_structure(self, discriminator, waveform):
        with torch.no_grad():
            output = discriminator(waveform)
        assert isinstance(output, VitsDiscriminatorOutput)
        assert len(output.logits) == len(output.feature_maps) == discriminator.config.num_discriminators
        assert _shapes(output) == _expected_shapes(discriminator.config, batch_size=2, num_samples=NUM_SAMPLES)
        # The last feature map is the un-flattened logits, as the feature-matching loss of VITS expects.
        for scores, maps in zip(output.logits, output.feature_maps, strict=True):
            torch.testing.assert_close(maps[-1].flatten(1), scores)

    def test_forward_full_size_shapes(self):
        # The meta device checks every shape of the 46.7M-parameter network without its compute (seconds on CPU).
        config = VitsDiscriminatorConfig()
        with torch.device("meta"):
            output = VitsDiscriminator(config)(torch.empty(2, 1, 4096))
        logits, feature_maps = _expected_shapes(config, batch_size=2, num_samples=4096)
        assert _shapes(output) == (logits, feature_maps)
        assert logits == [(2, 16), (2, 52), (2, 51), (2, 55), (2, 56), (2, 55)]

    def test_full_size_parameter_count(self):
        with torch.device("meta"):
            discriminator = VitsDiscriminator(VitsDiscriminatorConfig())
        assert discriminator.num_parameters() == FULL_NUM_PARAMETERS
        assert sum(p.numel() for p in discriminator.scale_discriminator.parameters()) == 5_641_362

    @pytest.mark.slow
    def test_forward_full_size_on_cpu(self):
        discriminator = VitsDiscriminator(VitsDiscriminatorConfig()).eval()
        with torch.no_grad():
            output = discriminator(0.5 * torch.randn(1, 4096))
        assert _shapes(output) == _expected_shapes(discriminator.config, batch_size=1, num_samples=4096)
        assert all(torch.isfinite(scores).all() for scores in output.logits)

    def test_forward_accepts_batch_by_samples(self, discriminator, waveform):
        with torch.no_grad():
            expected = discriminator(waveform)
            output = discriminator(waveform.squeeze(1))
        _assert_outputs_equal(expected, output)

    @pytest.mark.parametrize("num_samples", [3, 997, 1000, 1002])
    def test_forward_any_number_of_samples(self, discriminator, num_samples):
        with torch.no_grad():
            output = discriminator(torch.randn(1, num_samples))
        assert _shapes(output) == _expected_shapes(discriminator.config, batch_size=1, num_samples=num_samples)

    @pytest.mark.parametrize("shape", [(2, 2, 1000), (1000,), (1, 1, 1, 1000), (1, 2)])
    def test_forward_rejects_bad_shapes(self, discriminator, shape):
        with pytest.raises(ValueError, match="`waveform`"):
            discriminator(torch.randn(shape))

    def test_concatenated_real_and_fake_match_separate_calls(self, discriminator, waveform):
        fake = 0.5 * torch.randn_like(waveform)
        with torch.no_grad():
            real_output, fake_output = discriminator(torch.cat([waveform, fake])).chunk()
            expected_real, expected_fake = discriminator(waveform), discriminator(fake)
        for expected, output in ((expected_real, real_output), (expected_fake, fake_output)):
            assert _shapes(output) == _shapes(expected)
            for expected_scores, scores in zip(expected.logits, output.logits, strict=True):
                torch.testing.assert_close(scores, expected_scores)

    def test_chunk_rejects_uneven_batch(self, discriminator):
        with torch.no_grad():
            output = discriminator(torch.randn(3, 100))
        with pytest.raises(ValueError, match="equal chunks"):
            output.chunk(2)

    @pytest.mark.parametrize("use_spectral_norm", [False, True])
    def test_gradients_reach_every_parameter(self, use_spectral_norm):
        discriminator = VitsDiscriminator(VitsDiscriminatorConfig.tiny(use_spectral_norm=use_spectral_norm)).train()
        waveform = torch.randn(2, 1, NUM_SAMPLES, requires_grad=True)
        output = discriminator(waveform)
        # Least-squares GAN loss plus a feature term, like the trainer's discriminator and feature-matching losses.
        loss = sum((1 - scores).pow(2).mean() for scores in output.logits)
        loss = loss + sum(features.abs().mean() for maps in output.feature_maps for features in maps)
        loss.backward()
        for name, parameter in discriminator.named_parameters():
            assert parameter.grad is not None, name
            assert parameter.grad.abs().sum() > 0, name
        assert waveform.grad.abs().sum() > 0

    def test_init_weights(self, discriminator):
        config = discriminator.config
        for module in discriminator.modules():
            if isinstance(module, (torch.nn.Conv1d, torch.nn.Conv2d)):
                torch.testing.assert_close(module.bias, torch.zeros_like(module.bias))
                # Weight norm starts at g = ||v||, so the effective weight is the normal draw itself.
                torch.testing.assert_close(module.weight, module.parametrizations.weight.original1)
        weights = discriminator.scale_discriminator.convs[-2].weight  # the largest tiny layer: 16 x 16 x 41 / 4
        # He init for leaky ReLU: std = sqrt(2 / (1 + slope^2)) / sqrt(fan_in), fan_in = in_channels / groups * kernel.
        fan_in = weights.shape[1] * weights.shape[2]
        expected = (2 / (1 + config.leaky_relu_slope**2)) ** 0.5 / fan_in**0.5
        assert weights.std().item() == pytest.approx(expected, rel=0.1)


class TestDiscriminatorPersistence:
    def test_save_and_load_discriminator_round_trip(self, discriminator, waveform, tmp_dir):
        save_discriminator(discriminator, tmp_dir)
        assert set(os.listdir(tmp_dir)) == {DISCRIMINATOR_CONFIG_NAME, DISCRIMINATOR_WEIGHTS_NAME}  # no temp files
        # Saving again over existing files goes through the same temp-file-and-replace path.
        save_discriminator(discriminator, tmp_dir)
        loaded = load_discriminator(tmp_dir)
        assert isinstance(loaded, VitsDiscriminator)
        assert loaded.training
        assert loaded.config.to_dict() == discriminator.config.to_dict()
        with torch.no_grad():
            _assert_outputs_equal(discriminator(waveform), loaded.eval()(waveform))

    def test_save_and_load_discriminator_with_spectral_norm(self, waveform, tmp_dir):
        discriminator = VitsDiscriminator(VitsDiscriminatorConfig.tiny(use_spectral_norm=True)).eval()
        save_discriminator(discriminator, tmp_dir)
        loaded = load_discriminator(tmp_dir, config=VitsDiscriminatorConfig.tiny(use_spectral_norm=True)).eval()
        with torch.no_grad():
            _assert_outputs_equal(discriminator(waveform), loaded(waveform))

    def test_save_pretrained_round_trip(self, discriminator, waveform, tmp_dir):
        discriminator.save_pretrained(tmp_dir)
        loaded, loading_info = VitsDiscriminator.from_pretrained(tmp_dir, output_loading_info=True)
        assert not loading_info["missing_keys"] and not loading_info["unexpected_keys"]
        with torch.no_grad():
            _assert_outputs_equal(discriminator(waveform), loaded.eval()(waveform))

    def test_load_discriminator_returns_none_without_weights(self, tmp_dir):
        # A hub MMS checkpoint directory: a generator config but no discriminator.
        (tmp_dir / "config.json").write_text("{}")
        assert load_discriminator(tmp_dir) is None

    def test_load_discriminator_rejects_corrupt_weights(self, discriminator, tmp_dir):
        save_discriminator(discriminator, tmp_dir)
        weights_path = tmp_dir / DISCRIMINATOR_WEIGHTS_NAME
        weights_path.write_bytes(weights_path.read_bytes()[:100])  # a truncated write
        with pytest.raises(OSError, match="corrupt"):
            load_discriminator(tmp_dir)
        weights_path.write_bytes(b"not a safetensors file")
        with pytest.raises(OSError, match="corrupt"):
            load_discriminator(tmp_dir)

    def test_load_discriminator_rejects_corrupt_config(self, discriminator, tmp_dir):
        save_discriminator(discriminator, tmp_dir)
        (tmp_dir / DISCRIMINATOR_CONFIG_NAME).write_text("{ not json")
        with pytest.raises(OSError, match="corrupt"):
            load_discriminator(tmp_dir)

    def test_load_discriminator_rejects_other_config(self, discriminator, tmp_dir):
        save_discriminator(discriminator, tmp_dir)
        with pytest.raises(ValueError, match="periods: saved"):
            load_discriminator(tmp_dir, config=VitsDiscriminatorConfig.tiny(periods=[2, 5]))

    def test_load_discriminator_compares_every_config_field(self):
        # A field added to the config but not to this tuple would slip through the mismatch check.
        fields = set(inspect.signature(VitsDiscriminatorConfig.__init__).parameters) - {"self", "kwargs"}
        assert set(_ARCHITECTURE_FIELDS) == fields

    def test_load_discriminator_rejects_weights_that_do_not_fit(self, discriminator, tmp_dir):
        save_discriminator(discriminator, tmp_dir)
        os.remove(tmp_dir / DISCRIMINATOR_CONFIG_NAME)
        other_config = VitsDiscriminatorConfig.tiny(period_discriminator_channels=[4, 8, 16])
        with pytest.raises(ValueError, match="does not fit"):
            load_discriminator(tmp_dir, config=other_config)

    def test_load_discriminator_needs_a_config(self, discriminator, tmp_dir):
        save_discriminator(discriminator, tmp_dir)
        os.remove(tmp_dir / DISCRIMINATOR_CONFIG_NAME)
        with pytest.raises(OSError, match="pass `config`"):
            load_discriminator(tmp_dir)
        assert load_discriminator(tmp_dir, config=discriminator.config) is not None

    def test_save_discriminator_rejects_wrapped_models(self, discriminator, tmp_dir):
        with pytest.raises(TypeError, match="unwrap"):
            save_discriminator(torch.nn.Sequential(discriminator), tmp_dir)
