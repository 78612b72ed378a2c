"""The HiFi-GAN discriminator VITS trains against: one scale discriminator plus one period discriminator per period."""

import os
from dataclasses import dataclass

import safetensors.torch
import torch
from safetensors import SafetensorError
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import parametrizations
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from ...atomic import write_bytes_atomically, write_text_atomically
from .configuration_discriminator import VitsDiscriminatorConfig

DISCRIMINATOR_WEIGHTS_NAME = "discriminator.safetensors"
DISCRIMINATOR_CONFIG_NAME = "discriminator_config.json"

# Config fields that change the network or its outputs.
_ARCHITECTURE_FIELDS = (
    "periods",
    "period_discriminator_channels",
    "period_discriminator_kernel_size",
    "period_discriminator_stride",
    "scale_discriminator_channels",
    "scale_discriminator_kernel_sizes",
    "scale_discriminator_strides",
    "scale_discriminator_groups",
    "leaky_relu_slope",
    "use_spectral_norm",
)


@dataclass
class VitsDiscriminatorOutput(ModelOutput):
    r"""
    Outputs of [`VitsDiscriminator`], one list entry per sub-discriminator: the scale discriminator first, then the
    period discriminators in the order of `config.periods`.

    Args:
        logits (`list[torch.FloatTensor]`):
            One tensor of shape `(batch_size, num_frames)` per sub-discriminator: an unbounded realness score per
            output frame (least-squares GAN targets: 1 for real, 0 for generated). `num_frames` differs between
            sub-discriminators.
        feature_maps (`list[list[torch.FloatTensor]]`):
            One list per sub-discriminator with the activation of every convolution, the last entry being the logits
            before flattening, as VITS's feature-matching loss expects. Period discriminators give 4D tensors
            `(batch_size, channels, frames, period)`, the scale discriminator 3D tensors
            `(batch_size, channels, frames)`.
    """

    logits: list[torch.FloatTensor] | None = None
    feature_maps: list[list[torch.FloatTensor]] | None = None

    def chunk(self, chunks: int = 2) -> tuple["VitsDiscriminatorOutput", ...]:
        r"""
        Splits every tensor along the batch, undoing a concatenation of inputs: `discriminator(torch.cat([real,
        fake])).chunk()` returns the outputs for `real` and for `fake`, as views.

        Args:
            chunks (`int`, *optional*, defaults to `2`):
                Number of equal parts; must divide the batch size.
        """
        batch_size = self.logits[0].shape[0]
        if batch_size % chunks:
            raise ValueError(f"Cannot split a batch of {batch_size} into {chunks} equal chunks.")
        logits = [scores.chunk(chunks) for scores in self.logits]
        feature_maps = [[features.chunk(chunks) for features in maps] for maps in self.feature_maps]
        return tuple(
            VitsDiscriminatorOutput(
                logits=[scores[part] for scores in logits],
                feature_maps=[[features[part] for features in maps] for maps in feature_maps],
            )
            for part in range(chunks)
        )


def _normalized(conv: nn.Module, config: VitsDiscriminatorConfig) -> nn.Module:
    # The parametrizations API replaces the deprecated `torch.nn.utils.weight_norm` hooks; its state dict stores
    # `parametrizations.weight.original0` (magnitude g) and `original1` (direction v) for weight norm.
    if config.use_spectral_norm:
        return parametrizations.spectral_norm(conv)
    return parametrizations.weight_norm(conv)


class VitsPeriodDiscriminator(nn.Module):
    """HiFi-GAN period discriminator: 2D convolutions over the waveform folded into columns `period` samples apart."""

    def __init__(self, config: VitsDiscriminatorConfig, period: int):
        super().__init__()
        self.period = period
        self.leaky_relu_slope = config.leaky_relu_slope
        kernel_size = config.period_discriminator_kernel_size
        channels = [1] + config.period_discriminator_channels
        num_layers = len(config.period_discriminator_channels)
        strides = [config.period_discriminator_stride] * (num_layers - 1) + [1]
        # (k, 1) kernels convolve along time within a column only, never across the columns of a period.
        self.convs = nn.ModuleList(
            _normalized(
                nn.Conv2d(
                    channels[layer],
                    channels[layer + 1],
                    kernel_size=(kernel_size, 1),
                    stride=(strides[layer], 1),
                    padding=((kernel_size - 1) // 2, 0),
                ),
                config,
            )
            for layer in range(num_layers)
        )
        self.conv_post = _normalized(nn.Conv2d(channels[-1], 1, kernel_size=(3, 1), padding=(1, 0)), config)

    def forward(self, waveform: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        batch_size, num_channels, num_samples = waveform.shape  # (batch, 1, samples)
        remainder = num_samples % self.period
        if remainder:
            # Reflection, as in VITS, rather than zeros: silence would be an easy tell of the padded tail.
            waveform = F.pad(waveform, (0, self.period - remainder), mode="reflect")
        # (batch, 1, samples / period, period): column j holds samples j, j + period, j + 2 * period, ...
        hidden_states = waveform.view(batch_size, num_channels, -1, self.period)

        feature_maps = []
        for conv in self.convs:
            # In place: the conv output is not needed by any backward, so this saves one activation per layer.
            hidden_states = F.leaky_relu(conv(hidden_states), self.leaky_relu_slope, inplace=True)
            feature_maps.append(hidden_states)  # (batch, channels, frames, period)
        logits = self.conv_post(hidden_states)  # (batch, 1, frames, period)
        feature_maps.append(logits)
        return logits.flatten(1), feature_maps  # (batch, frames * period)


class VitsScaleDiscriminator(nn.Module):
    """HiFi-GAN scale discriminator on the raw waveform: strided, grouped 1D convolutions."""

    def __init__(self, config: VitsDiscriminatorConfig):
        super().__init__()
        self.leaky_relu_slope = config.leaky_relu_slope
        channels = [1] + config.scale_discriminator_channels
        self.convs = nn.ModuleList(
            _normalized(
                nn.Conv1d(
                    channels[layer],
                    channels[layer + 1],
                    kernel_size=kernel_size,
                    stride=stride,
                    groups=groups,
                    padding=(kernel_size - 1) // 2,
                ),
                config,
            )
            for layer, (kernel_size, stride, groups) in enumerate(
                zip(
                    config.scale_discriminator_kernel_sizes,
                    config.scale_discriminator_strides,
                    config.scale_discriminator_groups,
                    strict=True,
                )
            )
        )
        self.conv_post = _normalized(nn.Conv1d(channels[-1], 1, kernel_size=3, padding=1), config)

    def forward(self, waveform: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        hidden_states = waveform  # (batch, 1, samples)
        feature_maps = []
        for conv in self.convs:
            hidden_states = F.leaky_relu(conv(hidden_states), self.leaky_relu_slope, inplace=True)
            feature_maps.append(hidden_states)  # (batch, channels, frames)
        logits = self.conv_post(hidden_states)  # (batch, 1, frames)
        feature_maps.append(logits)
        return logits.flatten(1), feature_maps  # (batch, frames)


class VitsDiscriminator(PreTrainedModel):
    r"""
    The VITS discriminator ([arXiv 2106.06103](https://arxiv.org/abs/2106.06103)): HiFi-GAN's multi-period
    discriminator ([arXiv 2010.05646](https://arxiv.org/abs/2010.05646)) plus one scale discriminator on the raw
    waveform. The MMS model repositories hold only the generator; their discriminators are published apart as original
    VITS checkpoints, which `convert_discriminator.py` reads into this class, and `discriminator_source.py` decides
    which one a run starts from. Keep it next to the generator with [`save_discriminator`] / [`load_discriminator`] to
    resume adversarial training.

    Every sub-discriminator is fully convolutional and treats batch items independently, so the trainer concatenates
    real and generated audio into one batch and splits the result with [`VitsDiscriminatorOutput.chunk`]: one pass
    instead of two halves the kernel launches of each step, and the outputs equal those of two separate calls.

    Args:
        config ([`VitsDiscriminatorConfig`]):
            Architecture of the discriminator. Weights are initialized from it; use `from_pretrained` or
            [`load_discriminator`] to load trained ones.

    Example:

    ```python
    >>> import torch
    >>> from kurdish_tts.models.vits.configuration_discriminator import VitsDiscriminatorConfig
    >>> from kurdish_tts.models.vits.modeling_discriminator import VitsDiscriminator

    >>> discriminator = VitsDiscriminator(VitsDiscriminatorConfig.tiny())
    >>> real, fake = torch.randn(2, 1, 8192), torch.randn(2, 1, 8192)
    >>> real_output, fake_output = discriminator(torch.cat([real, fake])).chunk()
    >>> [scores.shape[0] for scores in fake_output.logits]
    [2, 2, 2]
    ```
    """

    config_class = VitsDiscriminatorConfig
    base_model_prefix = "discriminator"
    main_input_name = "waveform"

    def __init__(self, config: VitsDiscriminatorConfig):
        super().__init__(config)
        self.scale_discriminator = VitsScaleDiscriminator(config)
        self.period_discriminators = nn.ModuleList(
            VitsPeriodDiscriminator(config, period) for period in config.periods
        )
        self.post_init()

    def _init_weights(self, module: nn.Module):
        """He (Kaiming) normal init for leaky-ReLU stacks on every convolution weight, zeros for its bias.

        A fixed small std such as 0.02 shrinks the signal through the scale discriminator's narrow first layers
        (fan-in 15) until the first logits are ~1e-4 and the feature-matching loss starts near zero; He init keeps the
        activation variance roughly constant through the stack, as PyTorch's default init did in VITS and HiFi-GAN.
        """
        # The stock initializer would write to `module.weight`, which a parametrized conv recomputes on every access;
        # the trainable tensors live in `module.parametrizations.weight`.
        if not isinstance(module, (nn.Conv1d, nn.Conv2d)):
            return
        if module.bias is not None:
            init.zeros_(module.bias)
        weight = module.parametrizations.weight
        slope = self.config.leaky_relu_slope
        if self.config.use_spectral_norm:
            init.kaiming_normal_(weight.original, a=slope, nonlinearity="leaky_relu")
            return
        init.kaiming_normal_(weight.original1, a=slope, nonlinearity="leaky_relu")
        # g = ||v|| makes the effective weight g * v / ||v|| the normal draw itself.
        direction_norm = torch.linalg.vector_norm(
            weight.original1, dim=tuple(range(1, weight.original1.dim())), keepdim=True
        )
        init.copy_(weight.original0, direction_norm)

    def forward(self, waveform: torch.Tensor) -> VitsDiscriminatorOutput:
        r"""
        Args:
            waveform (`torch.FloatTensor` of shape `(batch_size, 1, num_samples)` or `(batch_size, num_samples)`):
                Audio at the generator's sampling rate, real or generated. Real and generated audio can be concatenated
                along the batch and split afterwards with [`VitsDiscriminatorOutput.chunk`]. `num_samples` must be at
                least the largest period; it need not be a multiple of any period.

        Returns:
            [`VitsDiscriminatorOutput`]: `logits` and `feature_maps`, one entry per sub-discriminator, scale first.
        """
        if waveform.dim() == 2:
            waveform = waveform.unsqueeze(1)
        if waveform.dim() != 3 or waveform.shape[1] != 1:
            raise ValueError(
                "`waveform` must have shape (batch_size, 1, num_samples) or (batch_size, num_samples), got "
                f"{tuple(waveform.shape)}."
            )
        # Reflection padding needs more samples than it adds; max(periods) samples always suffice.
        if waveform.shape[-1] < max(self.config.periods):
            raise ValueError(
                f"`waveform` has {waveform.shape[-1]} samples, fewer than the largest period "
                f"({max(self.config.periods)})."
            )

        logits, feature_maps = [], []
        for discriminator in (self.scale_discriminator, *self.period_discriminators):
            scores, features = discriminator(waveform)
            logits.append(scores)
            feature_maps.append(features)
        return VitsDiscriminatorOutput(logits=logits, feature_maps=feature_maps)


def save_discriminator(discriminator: VitsDiscriminator, model_dir: str | os.PathLike):
    r"""
    Writes `discriminator.safetensors` and `discriminator_config.json` into `model_dir`, next to a VITS checkpoint.

    Each file is written to a temporary file in `model_dir` and moved into place with `os.replace`, so a crash never
    leaves a half-written file under the final name. The config goes first and the weights last, since the weights
    file is what [`load_discriminator`] looks for: a crash between the two leaves either no weights ("no
    discriminator") or the previous weights, which are checked against the new config when loaded. Call it from the
    main process only.

    Args:
        discriminator ([`VitsDiscriminator`]):
            The model to save, unwrapped (not a DDP, FSDP or `torch.compile` wrapper, whose state dict keys differ).
        model_dir (`str` or `os.PathLike`):
            Directory to write into; created if missing. Existing discriminator files are replaced.
    """
    if not isinstance(discriminator, VitsDiscriminator):
        raise TypeError(
            f"Expected a VitsDiscriminator, got {type(discriminator).__name__}; unwrap it first (e.g. "
            "`accelerator.unwrap_model`)."
        )
    os.makedirs(model_dir, exist_ok=True)
    state_dict = {name: tensor.detach().cpu().contiguous() for name, tensor in discriminator.state_dict().items()}
    weights = safetensors.torch.save(state_dict, metadata={"format": "pt"})
    write_text_atomically(os.path.join(model_dir, DISCRIMINATOR_CONFIG_NAME), discriminator.config.to_json_string())
    write_bytes_atomically(os.path.join(model_dir, DISCRIMINATOR_WEIGHTS_NAME), weights)


def load_discriminator(
    model_dir: str | os.PathLike, config: VitsDiscriminatorConfig | None = None
) -> VitsDiscriminator | None:
    r"""
    Loads the discriminator that [`save_discriminator`] wrote into `model_dir`.

    Args:
        model_dir (`str` or `os.PathLike`):
            Directory holding `discriminator.safetensors` and, normally, `discriminator_config.json`.
        config ([`VitsDiscriminatorConfig`], *optional*):
            Architecture the caller expects. When `discriminator_config.json` exists as well, both must agree on every
            field. Defaults to the saved config.

    Returns:
        [`VitsDiscriminator`] or `None`: the loaded model in training mode, or `None` when `model_dir` has no
        `discriminator.safetensors` (e.g. an MMS model), in which case the caller chooses another source
        (`discriminator_source.py`).

    Raises:
        `OSError`: a discriminator file is unreadable or corrupt, or the config is needed but missing.
        `ValueError`: the saved config and `config` disagree, or the weights do not fit the config.
    """
    weights_path = os.path.join(model_dir, DISCRIMINATOR_WEIGHTS_NAME)
    if not os.path.isfile(weights_path):
        return None
    config_path = os.path.join(model_dir, DISCRIMINATOR_CONFIG_NAME)
    saved_config = _read_config(config_path) if os.path.isfile(config_path) else None
    if config is None:
        if saved_config is None:
            raise OSError(
                f"{weights_path} exists but {config_path} does not; pass `config` to say which architecture the "
                "weights belong to."
            )
        config = saved_config
    elif saved_config is not None:
        differences = [
            f"{name}: saved {getattr(saved_config, name)!r}, given {getattr(config, name)!r}"
            for name in _ARCHITECTURE_FIELDS
            if getattr(saved_config, name) != getattr(config, name)
        ]
        if differences:
            raise ValueError(
                f"The discriminator config in {model_dir} differs from the given one: {'; '.join(differences)}."
            )

    try:
        state_dict = safetensors.torch.load_file(weights_path)
    except (SafetensorError, OSError) as error:
        raise OSError(
            f"{weights_path} is corrupt or unreadable ({error}). Restore it from a checkpoint, or delete it to train "
            "a freshly initialized discriminator."
        ) from error

    discriminator = VitsDiscriminator(config)
    expected = discriminator.state_dict()
    missing = sorted(expected.keys() - state_dict.keys())
    unexpected = sorted(state_dict.keys() - expected.keys())
    mismatched = [
        f"{name} {tuple(state_dict[name].shape)} vs {tuple(expected[name].shape)}"
        for name in sorted(expected.keys() & state_dict.keys())
        if state_dict[name].shape != expected[name].shape
    ]
    if missing or unexpected or mismatched:
        raise ValueError(
            f"{weights_path} does not fit the discriminator config: {len(missing)} missing tensors {missing[:3]}, "
            f"{len(unexpected)} unexpected {unexpected[:3]}, {len(mismatched)} of another shape (saved vs expected) "
            f"{mismatched[:3]}."
        )
    discriminator.load_state_dict(state_dict)
    return discriminator


def _read_config(config_path: str) -> VitsDiscriminatorConfig:
    try:
        return VitsDiscriminatorConfig.from_json_file(config_path)
    except (OSError, ValueError) as error:  # `json.JSONDecodeError` is a `ValueError`
        raise OSError(f"{config_path} is corrupt or unreadable ({error}).") from error


__all__ = [
    "DISCRIMINATOR_CONFIG_NAME",
    "DISCRIMINATOR_WEIGHTS_NAME",
    "VitsDiscriminator",
    "VitsDiscriminatorOutput",
    "load_discriminator",
    "save_discriminator",
]
