"""Configuration of the HiFi-GAN discriminator that VITS trains against."""

from transformers import PretrainedConfig


class VitsDiscriminatorConfig(PretrainedConfig):
    r"""
    Configuration of a [`VitsDiscriminator`]: one scale discriminator on the raw waveform plus one period discriminator
    per entry of `periods`, as in VITS ([arXiv 2106.06103](https://arxiv.org/abs/2106.06103)), which takes the
    multi-period discriminator (MPD) of HiFi-GAN ([arXiv 2010.05646](https://arxiv.org/abs/2010.05646)) and keeps only
    the first, un-pooled, sub-discriminator of its multi-scale discriminator (MSD).

    The defaults reproduce the VITS discriminator exactly (46.7M parameters, weight norm included), which is also the
    layout of MMS's pretrained discriminators (`facebook/mms-tts`, `full_models/<language>/D_100000.pth`; the
    `facebook/mms-tts-<language>` model repositories hold only the generator), so those convert into it
    (`convert_discriminator.py`). [`~VitsDiscriminatorConfig.tiny`] gives a few-thousand-parameter one for tests.

    The input is always a mono waveform, so every channel list below gives *output* channels; the first convolution of
    each sub-discriminator reads one channel. Every convolution uses "same" padding `(kernel_size - 1) // 2`, which is
    why kernel sizes must be odd. A last convolution with kernel size 3 (not configurable, as in VITS and HiFi-GAN)
    maps the final features to one logit per frame.

    > Parameters that control the period discriminators

    Args:
        periods (`list[int]`, *optional*, defaults to `[2, 3, 5, 7, 11]`):
            One period discriminator per entry. It folds the waveform into a `(samples / period, period)` image, so
            each column holds the samples that lie `period` apart. Primes keep the columns of different
            sub-discriminators from overlapping.
        period_discriminator_channels (`list[int]`, *optional*, defaults to `[32, 128, 512, 1024, 1024]`):
            Output channels of the successive `(kernel_size, 1)` convolutions of every period discriminator.
        period_discriminator_kernel_size (`int`, *optional*, defaults to `5`):
            Kernel size, along time, of the period discriminators' convolutions.
        period_discriminator_stride (`int`, *optional*, defaults to `3`):
            Stride, along time, of every period-discriminator convolution except the last, which has stride 1 as in
            HiFi-GAN.

    > Parameters that control the scale discriminator

    Args:
        scale_discriminator_channels (`list[int]`, *optional*, defaults to `[16, 64, 256, 1024, 1024, 1024]`):
            Output channels of the successive 1D convolutions of the scale discriminator.
        scale_discriminator_kernel_sizes (`list[int]`, *optional*, defaults to `[15, 41, 41, 41, 41, 5]`):
            Kernel size of each scale-discriminator convolution. Same length as `scale_discriminator_channels`.
        scale_discriminator_strides (`list[int]`, *optional*, defaults to `[1, 4, 4, 4, 4, 1]`):
            Stride of each scale-discriminator convolution. Same length as `scale_discriminator_channels`.
        scale_discriminator_groups (`list[int]`, *optional*, defaults to `[1, 4, 16, 64, 256, 1]`):
            Groups of each scale-discriminator convolution; both its input and output channels must be divisible by
            it. Grouping is what keeps the 41-wide kernels on 1024 channels affordable (168K instead of 43M weights).

    > Parameters shared by all sub-discriminators

    Args:
        leaky_relu_slope (`float`, *optional*, defaults to `0.1`):
            Negative slope of the leaky ReLU after every convolution but the last; must lie in (0, 1).
        use_spectral_norm (`bool`, *optional*, defaults to `False`):
            Whether to wrap every convolution in spectral norm instead of weight norm. VITS uses weight norm for all
            sub-discriminators (HiFi-GAN used spectral norm on its raw-audio scale discriminator only).

    Example:

    ```python
    >>> from kurdish_tts.models.vits.configuration_discriminator import VitsDiscriminatorConfig
    >>> from kurdish_tts.models.vits.modeling_discriminator import VitsDiscriminator

    >>> config = VitsDiscriminatorConfig()  # the VITS discriminator
    >>> discriminator = VitsDiscriminator(config)
    >>> len(config.periods) + 1  # sub-discriminators: the scale one first, then one per period
    6
    ```
    """

    model_type = "vits_discriminator"

    def __init__(
        self,
        periods: list[int] | tuple[int, ...] = (2, 3, 5, 7, 11),
        period_discriminator_channels: list[int] | tuple[int, ...] = (32, 128, 512, 1024, 1024),
        period_discriminator_kernel_size: int = 5,
        period_discriminator_stride: int = 3,
        scale_discriminator_channels: list[int] | tuple[int, ...] = (16, 64, 256, 1024, 1024, 1024),
        scale_discriminator_kernel_sizes: list[int] | tuple[int, ...] = (15, 41, 41, 41, 41, 5),
        scale_discriminator_strides: list[int] | tuple[int, ...] = (1, 4, 4, 4, 4, 1),
        scale_discriminator_groups: list[int] | tuple[int, ...] = (1, 4, 16, 64, 256, 1),
        leaky_relu_slope: float = 0.1,
        use_spectral_norm: bool = False,
        **kwargs,
    ):
        # Tuples as defaults avoid shared mutable defaults; lists are stored so that a config compares equal to its
        # JSON round trip.
        self.periods = _as_list(periods)
        self.period_discriminator_channels = _as_list(period_discriminator_channels)
        self.period_discriminator_kernel_size = period_discriminator_kernel_size
        self.period_discriminator_stride = period_discriminator_stride
        self.scale_discriminator_channels = _as_list(scale_discriminator_channels)
        self.scale_discriminator_kernel_sizes = _as_list(scale_discriminator_kernel_sizes)
        self.scale_discriminator_strides = _as_list(scale_discriminator_strides)
        self.scale_discriminator_groups = _as_list(scale_discriminator_groups)
        self.leaky_relu_slope = leaky_relu_slope
        self.use_spectral_norm = use_spectral_norm
        # Fields are set before `super().__init__`, which may run validators on a complete instance.
        super().__init__(**kwargs)
        self.validate_architecture()

    @classmethod
    def tiny(cls, **kwargs) -> "VitsDiscriminatorConfig":
        r"""
        A few-thousand-parameter discriminator with the same structure as the default one (grouped convolutions,
        stride-1 last layers), for fast tests.

        Args:
            kwargs (`dict[str, Any]`, *optional*):
                Fields that override the tiny defaults.
        """
        tiny_defaults = {
            "periods": [2, 3],
            "period_discriminator_channels": [4, 8, 8],
            "scale_discriminator_channels": [4, 8, 16, 16],
            "scale_discriminator_kernel_sizes": [15, 41, 41, 5],
            "scale_discriminator_strides": [1, 4, 4, 1],
            "scale_discriminator_groups": [1, 2, 4, 1],
        }
        return cls(**{**tiny_defaults, **kwargs})

    @property
    def num_discriminators(self) -> int:
        """Number of sub-discriminators, i.e. of entries in a [`VitsDiscriminatorOutput`]'s lists."""
        return 1 + len(self.periods)

    def validate_architecture(self):
        """Raises a `ValueError` naming the first field that cannot build a discriminator."""
        _check_positive_ints("periods", self.periods)
        if len(set(self.periods)) != len(self.periods):
            raise ValueError(
                f"`periods` must not repeat a period (two identical sub-discriminators), got {self.periods}."
            )
        _check_positive_ints("period_discriminator_channels", self.period_discriminator_channels)
        _check_odd_kernel("period_discriminator_kernel_size", self.period_discriminator_kernel_size)
        _check_positive_int("period_discriminator_stride", self.period_discriminator_stride)

        _check_positive_ints("scale_discriminator_channels", self.scale_discriminator_channels)
        num_layers = len(self.scale_discriminator_channels)
        for name in ("scale_discriminator_kernel_sizes", "scale_discriminator_strides", "scale_discriminator_groups"):
            values = getattr(self, name)
            _check_positive_ints(name, values)
            if len(values) != num_layers:
                raise ValueError(
                    f"`{name}` has {len(values)} entries but `scale_discriminator_channels` has {num_layers}: the "
                    "scale discriminator needs one entry per convolution in each list."
                )
        for kernel_size in self.scale_discriminator_kernel_sizes:
            _check_odd_kernel("scale_discriminator_kernel_sizes", kernel_size)
        in_channels = [1] + self.scale_discriminator_channels[:-1]
        for layer, (in_ch, out_ch, groups) in enumerate(
            zip(in_channels, self.scale_discriminator_channels, self.scale_discriminator_groups, strict=True)
        ):
            if in_ch % groups or out_ch % groups:
                raise ValueError(
                    f"Scale-discriminator convolution {layer} maps {in_ch} to {out_ch} channels in {groups} groups, "
                    "but both channel counts must be divisible by `scale_discriminator_groups`."
                )

        # Zero is excluded: the activations run in place, and autograd cannot invert an in-place ReLU.
        if not _is_real(self.leaky_relu_slope) or not 0.0 < self.leaky_relu_slope < 1.0:
            raise ValueError(f"`leaky_relu_slope` must be a float in (0, 1), got {self.leaky_relu_slope!r}.")
        if not isinstance(self.use_spectral_norm, bool):
            raise ValueError(f"`use_spectral_norm` must be a bool, got {self.use_spectral_norm!r}.")


def _as_list(values):
    # Anything else is left as given, for `validate_architecture` to reject with a message naming the field.
    return list(values) if isinstance(values, (list, tuple)) else values


def _is_positive_int(value) -> bool:
    # `bool` is an `int` subclass; `True` as a channel count is always a typo.
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _is_real(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_positive_int(name: str, value: int):
    if not _is_positive_int(value):
        raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")


def _check_positive_ints(name: str, values: list[int]):
    if not isinstance(values, list) or not values or not all(_is_positive_int(value) for value in values):
        raise ValueError(f"`{name}` must be a non-empty list of positive integers, got {values!r}.")


def _check_odd_kernel(name: str, kernel_size: int):
    _check_positive_int(name, kernel_size)
    if kernel_size % 2 == 0:
        raise ValueError(
            f"`{name}` must be odd so that 'same' padding of (kernel_size - 1) // 2 keeps frames aligned, got "
            f"{kernel_size}."
        )


__all__ = ["VitsDiscriminatorConfig"]
