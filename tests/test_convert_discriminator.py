"""Tests for converting original VITS discriminator checkpoints (MMS's `D_100000.pth`) into `VitsDiscriminator`.

The reference is the original architecture, written out below the way jaywalnut310/vits builds it: a
`MultiPeriodDiscriminator` whose `discriminators` list holds one scale discriminator and then one period discriminator
per period, every convolution under the old `torch.nn.utils.weight_norm` hooks (state dict keys `weight_g`,
`weight_v`). Its layer numbers are spelled out here, independently of `VitsDiscriminatorConfig`, so that a wrong
default in the config fails the full-size test instead of being copied into the reference.
"""

import warnings
from dataclasses import dataclass

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from kurdish_tts.models.vits.configuration_discriminator import VitsDiscriminatorConfig
from kurdish_tts.models.vits.convert_discriminator import (
    convert_discriminator_checkpoint,
    convert_original_state_dict,
    load_original_discriminator,
    original_key,
    read_original_checkpoint,
)
from kurdish_tts.models.vits.modeling_discriminator import VitsDiscriminator, load_discriminator

SLOPE = 0.1


@dataclass
class OriginalLayout:
    """Layer numbers of an original VITS discriminator: (in, out, kernel, stride, groups) per scale convolution."""

    scale_convs: list[tuple[int, int, int, int, int]]
    period_channels: list[int]
    periods: list[int]


# jaywalnut310/vits models.py: DiscriminatorS and DiscriminatorP(kernel_size=5, stride=3), periods [2, 3, 5, 7, 11].
VITS_LAYOUT = OriginalLayout(
    scale_convs=[
        (1, 16, 15, 1, 1),
        (16, 64, 41, 4, 4),
        (64, 256, 41, 4, 16),
        (256, 1024, 41, 4, 64),
        (1024, 1024, 41, 4, 256),
        (1024, 1024, 5, 1, 1),
    ],
    period_channels=[32, 128, 512, 1024, 1024],
    periods=[2, 3, 5, 7, 11],
)
# The same structure at the sizes of `VitsDiscriminatorConfig.tiny()`.
TINY_LAYOUT = OriginalLayout(
    scale_convs=[(1, 4, 15, 1, 1), (4, 8, 41, 4, 2), (8, 16, 41, 4, 4), (16, 16, 5, 1, 1)],
    period_channels=[4, 8, 8],
    periods=[2, 3],
)


def _weight_norm(module: nn.Module) -> nn.Module:
    with warnings.catch_warnings():
        # Deprecated, but it is what the original code uses and what gives the checkpoints their weight_g/weight_v.
        warnings.simplefilter("ignore", FutureWarning)
        return nn.utils.weight_norm(module)


class OriginalScaleDiscriminator(nn.Module):
    def __init__(self, layout: OriginalLayout):
        super().__init__()
        self.convs = nn.ModuleList(
            _weight_norm(nn.Conv1d(i, o, k, s, groups=g, padding=(k - 1) // 2)) for i, o, k, s, g in layout.scale_convs
        )
        self.conv_post = _weight_norm(nn.Conv1d(layout.scale_convs[-1][1], 1, 3, 1, padding=1))

    def forward(self, x):
        fmap = []
        for layer in self.convs:
            x = F.leaky_relu(layer(x), SLOPE)
            fmap.append(x)
        x = self.conv_post(x)
        fmap.append(x)
        return torch.flatten(x, 1, -1), fmap


class OriginalPeriodDiscriminator(nn.Module):
    def __init__(self, layout: OriginalLayout, period: int, kernel_size: int = 5, stride: int = 3):
        super().__init__()
        self.period = period
        channels = [1] + layout.period_channels
        strides = [stride] * (len(layout.period_channels) - 1) + [1]
        self.convs = nn.ModuleList(
            _weight_norm(nn.Conv2d(i, o, (kernel_size, 1), (s, 1), padding=((kernel_size - 1) // 2, 0)))
            for i, o, s in zip(channels[:-1], channels[1:], strides, strict=True)
        )
        self.conv_post = _weight_norm(nn.Conv2d(channels[-1], 1, (3, 1), 1, padding=(1, 0)))

    def forward(self, x):
        fmap = []
        b, c, t = x.shape
        if t % self.period != 0:
            n_pad = self.period - (t % self.period)
            x = F.pad(x, (0, n_pad), "reflect")
            t = t + n_pad
        x = x.view(b, c, t // self.period, self.period)
        for layer in self.convs:
            x = F.leaky_relu(layer(x), SLOPE)
            fmap.append(x)
        x = self.conv_post(x)
        fmap.append(x)
        return torch.flatten(x, 1, -1), fmap


class OriginalMultiPeriodDiscriminator(nn.Module):
    def __init__(self, layout: OriginalLayout):
        super().__init__()
        self.discriminators = nn.ModuleList(
            [OriginalScaleDiscriminator(layout)] + [OriginalPeriodDiscriminator(layout, p) for p in layout.periods]
        )

    def forward(self, y, y_hat):
        y_d_rs, y_d_gs, fmap_rs, fmap_gs = [], [], [], []
        for d in self.discriminators:
            y_d_r, fmap_r = d(y)
            y_d_g, fmap_g = d(y_hat)
            y_d_rs.append(y_d_r)
            y_d_gs.append(y_d_g)
            fmap_rs.append(fmap_r)
            fmap_gs.append(fmap_g)
        return y_d_rs, y_d_gs, fmap_rs, fmap_gs


def _original(layout: OriginalLayout) -> OriginalMultiPeriodDiscriminator:
    """The original network with random weights; magnitudes g drawn apart from ||v||, so that swapping g and v, or
    dropping g, changes the outputs."""
    model = OriginalMultiPeriodDiscriminator(layout)
    with torch.no_grad():
        for name, tensor in model.named_parameters():
            if name.endswith("weight_g"):
                tensor.mul_(torch.empty_like(tensor).uniform_(0.5, 1.5))
            elif name.endswith("bias"):
                tensor.normal_(0.0, 0.1)
    return model


def _save_original(model: nn.Module, path) -> None:
    """Save as jaywalnut310/vits `utils.save_checkpoint` does: weights, step, optimizer state, learning rate."""
    optimizer = torch.optim.AdamW(model.parameters(), 2e-4, betas=(0.8, 0.99), eps=1e-9)
    torch.save(
        {"model": model.state_dict(), "iteration": 100000, "optimizer": optimizer.state_dict(), "learning_rate": 2e-4},
        path,
    )


def _assert_same_outputs(original, converted, num_samples: int, batch_size: int = 2):
    real = torch.randn(batch_size, 1, num_samples)
    fake = torch.randn(batch_size, 1, num_samples)
    with torch.no_grad():
        real_logits, fake_logits, real_maps, fake_maps = original(real, fake)
        ours_real, ours_fake = converted(torch.cat([real, fake])).chunk()
    for theirs_logits, theirs_maps, ours in ((real_logits, real_maps, ours_real), (fake_logits, fake_maps, ours_fake)):
        assert len(ours.logits) == len(theirs_logits)
        for index, (logits, expected) in enumerate(zip(ours.logits, theirs_logits, strict=True)):
            torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-6, msg=f"logits of discriminator {index}")
        for index, (maps, expected_maps) in enumerate(zip(ours.feature_maps, theirs_maps, strict=True)):
            assert len(maps) == len(expected_maps)
            for layer, (features, expected) in enumerate(zip(maps, expected_maps, strict=True)):
                torch.testing.assert_close(
                    features, expected, rtol=1e-5, atol=1e-6, msg=f"feature map {layer} of discriminator {index}"
                )


@pytest.fixture
def tiny_checkpoint(tmp_dir):
    original = _original(TINY_LAYOUT)
    path = tmp_dir / "D_100000.pth"
    _save_original(original, path)
    return original, path


class TestConvertDiscriminator:
    def test_tiny_conversion_reproduces_the_original_outputs(self, tiny_checkpoint):
        original, path = tiny_checkpoint
        converted = load_original_discriminator(path, VitsDiscriminatorConfig.tiny())
        # Not a multiple of 2 or 3: every period discriminator pads by reflection.
        _assert_same_outputs(original, converted, num_samples=1001)

    def test_full_size_conversion_reproduces_the_original_outputs(self):
        # In memory: the file path is the tiny test's; 187 MB through the disk would only add time.
        original = _original(VITS_LAYOUT)
        with torch.device("meta"):
            names = VitsDiscriminator(VitsDiscriminatorConfig()).state_dict()
        assert {original_key(name) for name in names} == set(original.state_dict())
        converted = VitsDiscriminator(VitsDiscriminatorConfig())  # the default config is the VITS/MMS layout
        converted.load_state_dict(convert_original_state_dict(original.state_dict()), strict=True)
        # 1031 is prime: every period discriminator pads.
        _assert_same_outputs(original, converted, num_samples=1031, batch_size=1)

    def test_original_key_examples(self):
        assert original_key("scale_discriminator.convs.3.parametrizations.weight.original0") == (
            "discriminators.0.convs.3.weight_g"
        )
        assert original_key("period_discriminators.1.conv_post.parametrizations.weight.original1") == (
            "discriminators.2.conv_post.weight_v"
        )
        assert original_key("period_discriminators.4.convs.0.bias") == "discriminators.5.convs.0.bias"
        with pytest.raises(ValueError, match="not a key"):
            original_key("discriminators.0.convs.0.bias")

    def test_convert_writes_what_load_discriminator_reads(self, tiny_checkpoint, tmp_dir):
        original, path = tiny_checkpoint
        converted = convert_discriminator_checkpoint(path, tmp_dir / "model", VitsDiscriminatorConfig.tiny())
        reloaded = load_discriminator(tmp_dir / "model")
        assert reloaded.config.periods == [2, 3]
        for name, tensor in converted.state_dict().items():
            torch.testing.assert_close(reloaded.state_dict()[name], tensor, rtol=0, atol=0)
        _assert_same_outputs(original, reloaded, num_samples=512)

    @pytest.mark.parametrize(
        "edit, message",
        [
            ("missing", "missing tensor 'discriminators.2.convs.1.weight_v' (expected shape (8, 4, 5, 1))"),
            ("extra", "unexpected tensor 'discriminators.3.convs.0.weight_g'"),
            ("shape", "tensor 'discriminators.0.conv_post.bias' has shape (2,), expected (1,)"),
        ],
    )
    def test_wrong_layout_names_the_first_mismatch(self, tiny_checkpoint, edit, message):
        original, _ = tiny_checkpoint
        state_dict = dict(original.state_dict())
        if edit == "missing":
            del state_dict["discriminators.2.convs.1.weight_v"]
        elif edit == "extra":
            state_dict["discriminators.3.convs.0.weight_g"] = torch.ones(4, 1, 1, 1)
        else:
            state_dict["discriminators.0.conv_post.bias"] = torch.zeros(2)
        with pytest.raises(ValueError) as error:
            convert_original_state_dict(state_dict, VitsDiscriminatorConfig.tiny(), source="D_1.pth")
        assert message in str(error.value)
        assert str(error.value).startswith("D_1.pth does not fit the discriminator layout (periods [2, 3]")

    def test_another_architecture_counts_the_mismatches(self, tiny_checkpoint):
        original, path = tiny_checkpoint
        with pytest.raises(ValueError, match=r"convs.0.bias' has shape \(4,\), expected \(16,\); \d+ more mismatches"):
            load_original_discriminator(path)  # tiny weights, full-size config

    def test_generator_checkpoint_is_named(self):
        state_dict = {"enc_p.emb.weight": torch.zeros(3, 2), "dec.conv_pre.bias": torch.zeros(2)}
        with pytest.raises(ValueError, match=r"pass the discriminator checkpoint \(D_\*\.pth\), not the generator"):
            convert_original_state_dict(state_dict, VitsDiscriminatorConfig.tiny())

    def test_spectral_norm_config_is_refused(self, tiny_checkpoint):
        original, _ = tiny_checkpoint
        with pytest.raises(ValueError, match="use weight norm"):
            convert_original_state_dict(original.state_dict(), VitsDiscriminatorConfig.tiny(use_spectral_norm=True))

    @pytest.mark.parametrize("damage", ["truncated", "empty", "text"])
    def test_corrupt_file(self, tiny_checkpoint, tmp_dir, damage):
        _, path = tiny_checkpoint
        data = path.read_bytes()
        corrupt = tmp_dir / "corrupt.pth"
        corrupt.write_bytes({"truncated": data[: len(data) // 2], "empty": b"", "text": b"<html>404</html>"}[damage])
        with pytest.raises(OSError, match=r"corrupt\.pth is not a readable PyTorch checkpoint .*download it again"):
            read_original_checkpoint(corrupt)

    def test_missing_file(self, tmp_dir):
        with pytest.raises(FileNotFoundError, match="D_100000.pth: no such file"):
            read_original_checkpoint(tmp_dir / "D_100000.pth")

    def test_checkpoint_without_model_weights(self, tmp_dir):
        path = tmp_dir / "other.pth"
        torch.save({"state_dict": {"a": torch.zeros(1)}}, path)
        with pytest.raises(ValueError, match=r"holds a dict with keys \['state_dict'\]; .* under 'model'"):
            read_original_checkpoint(path)

    def test_untrusted_objects_are_not_unpickled(self, tmp_dir):
        path = tmp_dir / "pickle.pth"
        torch.save({"model": {"a": torch.zeros(1)}, "extra": OriginalLayout([], [], [])}, path)
        with pytest.raises(OSError, match="not a readable PyTorch checkpoint of tensors"):
            read_original_checkpoint(path)


class TestConvertDiscriminatorCommand:
    @pytest.fixture
    def tiny_config_file(self, tmp_dir):
        path = tmp_dir / "tiny_config.json"
        VitsDiscriminatorConfig.tiny().to_json_file(path)
        return path

    def test_writes_the_discriminator_into_the_folder(self, tiny_checkpoint, tiny_config_file, tmp_dir, capsys):
        from kurdish_tts.cli import main

        original, path = tiny_checkpoint
        destination = tmp_dir / "models" / "mms-copy"
        assert main(["convert-discriminator", str(path), str(destination), "--config", str(tiny_config_file)]) == 0
        assert (
            f"Wrote {destination / 'discriminator.safetensors'} and discriminator_config.json"
            in capsys.readouterr().out
        )
        _assert_same_outputs(original, load_discriminator(destination), num_samples=600)

    def test_missing_source_is_a_usage_error(self, tmp_dir, capsys):
        from kurdish_tts.cli.convert_discriminator import main

        assert main([str(tmp_dir / "D_100000.pth"), str(tmp_dir / "out")]) == 2
        assert "D_100000.pth: no such file" in capsys.readouterr().err

    def test_destination_must_be_a_folder(self, tiny_checkpoint, tmp_dir, capsys):
        from kurdish_tts.cli.convert_discriminator import main

        _, path = tiny_checkpoint
        (tmp_dir / "file").write_text("x")
        assert main([str(path), str(tmp_dir / "file")]) == 2
        assert "is a file; DST is the folder" in capsys.readouterr().err

    def test_unconvertible_file_fails_with_the_reason(self, tiny_checkpoint, tmp_dir, capsys):
        from kurdish_tts.cli.convert_discriminator import main

        _, path = tiny_checkpoint
        # The tiny weights against the default (VITS/MMS) layout.
        assert main([str(path), str(tmp_dir / "out")]) == 1
        assert "does not fit the discriminator layout" in capsys.readouterr().err
        assert not (tmp_dir / "out" / "discriminator.safetensors").exists()
