"""Configuration of the XTTS-style voice-cloning model."""

from __future__ import annotations

from typing import TYPE_CHECKING

from transformers import PretrainedConfig

if TYPE_CHECKING:
    from transformers import GPT2Config

    from ...audio.features import MelConfig

# Named architectures. Every size shares the structure; `tiny` is for tests, `small` fits an 8 GB card in fp16 at
# batch 16, `base` is GPT-2-base-sized (12 layers, 768 hidden, 12 heads). Parameter counts are in the README.
MODEL_SIZES = {
    "tiny": {
        "hidden_size": 16,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 32,
        "num_conditioning_latents": 4,
        "conditioning_num_layers": 1,
        "prenet_hidden_size": 16,
        "postnet_channels": 16,
        # The tiny mel frames are short (hop 16), so four of them make one step.
        "reduction_factor": 4,
        "max_text_length": 256,
        "max_mel_steps": 2048,
        # No dropout: tests compare outputs and overfit one batch.
        "dropout": 0.0,
        "attention_dropout": 0.0,
        "prenet_dropout": 0.0,
        "postnet_dropout": 0.0,
        "conditioning_dropout": 0.0,
    },
    "small": {
        "hidden_size": 384,
        "num_hidden_layers": 8,
        "num_attention_heads": 6,
        "num_conditioning_latents": 32,
        "conditioning_num_layers": 2,
        "prenet_hidden_size": 256,
        "postnet_channels": 512,
        "reduction_factor": 2,
        "max_text_length": 512,
        "max_mel_steps": 512,
    },
    "base": {
        "hidden_size": 768,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "num_conditioning_latents": 32,
        # One Perceiver block: two would add 4.7M parameters at this width for a per-clip summary.
        "conditioning_num_layers": 1,
        "prenet_hidden_size": 512,
        "postnet_channels": 512,
        "reduction_factor": 2,
        "max_text_length": 512,
        "max_mel_steps": 1024,
    },
}
# The tiny model uses the tiny VITS model's mel geometry (8 bands of a 32-point FFT, hop 16), so that one prepared test
# corpus serves both model families; every other size uses MMS's (`MelConfig()`).
SIZE_MEL = {"tiny": {"n_fft": 32, "hop_length": 16, "win_length": 32, "n_mels": 8}}


POSITION_INITS = ("learned", "aligned")


class XttsConfig(PretrainedConfig):
    r"""
    Configuration of an [`XttsForTextToSpeech`]: an XTTS-style autoregressive text-to-mel model. A GPT-2 backbone
    ([`transformers.GPT2Model`]) reads one sequence `[speaker conditioning latents | text tokens | mel steps]` and
    predicts, at each mel step, the next `reduction_factor` mel frames and a stop logit; the latents come from a
    reference clip of the voice to clone, as in Coqui's XTTS ([arXiv 2406.04904](https://arxiv.org/abs/2406.04904)),
    but the model predicts continuous mel frames (Tacotron 2, [arXiv 1712.05884](https://arxiv.org/abs/1712.05884))
    rather than discrete audio codes, so that it needs no separately trained codec.

    Build one with [`~XttsConfig.for_size`]. The mel settings live in the config (`mel`, a `MelConfig.to_dict()`), so
    that a saved model says which features it reads and writes; `mel_config` gives them back as a `MelConfig`.

    > Parameters that control the backbone

    Args:
        vocab_size (`int`, *optional*, defaults to `39`):
            Text tokens (the Kurmanji tokenizer's `vocab_size`).
        pad_token_id (`int`, *optional*, defaults to `0`):
            The tokenizer's pad id. Padding is read from the attention mask only: the Kurmanji tokenizer's pad id is
            also its blank, which occurs inside real text.
        hidden_size (`int`, *optional*, defaults to `384`):
            Width of the backbone, the conditioning latents and the heads' input.
        num_hidden_layers (`int`, *optional*, defaults to `8`):
            GPT-2 blocks.
        num_attention_heads (`int`, *optional*, defaults to `6`):
            Attention heads; must divide `hidden_size`.
        intermediate_size (`int`, *optional*):
            Width of each block's feed-forward layer; `4 * hidden_size` (GPT-2's) when unset.
        activation_function (`str`, *optional*, defaults to `"gelu_new"`):
            Feed-forward activation (GPT-2's).
        dropout (`float`, *optional*, defaults to `0.1`):
            Dropout on the embeddings and the residual branches of the backbone.
        attention_dropout (`float`, *optional*, defaults to `0.1`):
            Dropout on the attention probabilities.
        layer_norm_epsilon (`float`, *optional*, defaults to `1e-5`):
            Epsilon of every layer norm.
        initializer_range (`float`, *optional*, defaults to `0.02`):
            Standard deviation of the normal initialization of linear and embedding weights.

    > Parameters that control the sequence

    Args:
        max_text_length (`int`, *optional*, defaults to `512`):
            Most text tokens per example (size of the text position table).
        max_mel_steps (`int`, *optional*, defaults to `512`):
            Most decoder steps per example, i.e. `max_mel_steps * reduction_factor` mel frames (size of the mel
            position table). Also generation's default length limit.
        reduction_factor (`int`, *optional*, defaults to `2`):
            Mel frames predicted per decoder step: the sequence is `reduction_factor` times shorter than the mel, which
            makes training and generation that much cheaper.
        guided_attention_layers (`list[int]`, *optional*):
            Backbone layers whose attention of the mel steps to the text is returned as `text_mel_attention` (for the
            guided-attention loss and the alignment plots). These layers compute attention weights explicitly when
            they are asked for; all others always use the fused kernel. Defaults to the middle layer(s), where
            text-to-speech transformers tend to align (and the lower layers may still look at the previous frames).

    > Parameters that control the speaker conditioning

    Args:
        num_conditioning_latents (`int`, *optional*, defaults to `32`):
            Vectors the reference clip is summarized into (XTTS uses 32).
        conditioning_num_layers (`int`, *optional*, defaults to `2`):
            Perceiver blocks: learned queries cross-attending the convolved reference mel, then a feed-forward layer.
        conditioning_kernel_size (`int`, *optional*, defaults to `3`):
            Kernel size of the two convolutions over the reference mel (odd).
        conditioning_dropout (`float`, *optional*, defaults to `0.1`):
            Dropout inside the conditioning encoder.

    > Parameters that control the mel input and output

    Args:
        mel (`dict`, *optional*):
            The `MelConfig` fields (`MelConfig.to_dict()`); MMS's mel settings when unset.
        mel_mean (`float`, *optional*, defaults to `-5.0`):
            Log-mel value the model's mel inputs are centered on and its outputs start from.
        mel_std (`float`, *optional*, defaults to `2.5`):
            Log-mel scale of the same normalization. Log-mels span about -11.5 (silence) to 2, which would make the
            first layers' inputs and the heads' targets several units large; normalizing keeps them near unit scale
            (a fixed affine map, saved with the model, not fitted to the data).
        prenet_hidden_size (`int`, *optional*, defaults to `256`):
            Width of the two-layer prenet that embeds the previous step's frames.
        prenet_dropout (`float`, *optional*, defaults to `0.5`):
            Dropout after each prenet layer. Tacotron 2's high prenet dropout keeps an autoregressive decoder from
            copying its previous frame instead of reading the text.
        postnet_channels (`int`, *optional*, defaults to `512`):
            Channels of the residual convolutional postnet (Tacotron 2's).
        postnet_kernel_size (`int`, *optional*, defaults to `5`):
            Kernel size of the postnet convolutions (odd).
        postnet_num_layers (`int`, *optional*, defaults to `5`):
            Postnet convolutions (at least 2); all but the last are followed by tanh and dropout.
        postnet_dropout (`float`, *optional*, defaults to `0.1`):
            Dropout inside the postnet.
        mark_text_end (`bool`, *optional*, defaults to `True`):
            Add a learned vector to the last real text token. The backbone is causal, so without it no text position
            knows that the text ends there (the tokenizer's last token is a blank, like every second one), and the
            stop head has nothing to tell the end of the sentence from a pause (see `benchmarks/README.md`, "XTTS
            alignment").
        position_init (`str`, *optional*, defaults to `"aligned"`):
            How the (learned) text and mel-step position tables start. `"aligned"`: sinusoids on one time axis, text
            position `n` at `n` and decoder step `t` at `t * text_tokens_per_step`, so that a head comparing positions
            attends near the diagonal from the first step, and generation can follow the text by position while its
            own frames are still too blurred to tell where it is. `"learned"`: random, like every embedding (before
            issue 20; on the CPU experiment its free-running attention stayed on the first tokens, see
            `benchmarks/README.md`, "XTTS alignment"). Only the initialization differs: a saved model loads its tables.
        text_tokens_per_second (`float`, *optional*, defaults to `25.0`):
            With `position_init="aligned"`: the speaking rate in text tokens (blanks included) per second that maps
            decoder steps onto text positions (espeak-ng Kurmanji reads about 12 letters, so 25 tokens, a second).

    Example:

    ```python
    >>> from kurdish_tts.models.xtts import XttsConfig, XttsForTextToSpeech
    >>> from kurdish_tts.text import build_kurmanji_tokenizer

    >>> tokenizer = build_kurmanji_tokenizer()
    >>> config = XttsConfig.for_size("small", vocab_size=tokenizer.vocab_size, pad_token_id=tokenizer.pad_token_id)
    >>> model = XttsForTextToSpeech(config)
    >>> config.mel_config.hop_length, config.reduction_factor
    (256, 2)
    ```
    """

    model_type = "kurdish_xtts"

    def __init__(
        self,
        vocab_size: int = 39,
        pad_token_id: int = 0,
        hidden_size: int = 384,
        num_hidden_layers: int = 8,
        num_attention_heads: int = 6,
        intermediate_size: int | None = None,
        activation_function: str = "gelu_new",
        dropout: float = 0.1,
        attention_dropout: float = 0.1,
        layer_norm_epsilon: float = 1e-5,
        initializer_range: float = 0.02,
        max_text_length: int = 512,
        max_mel_steps: int = 512,
        reduction_factor: int = 2,
        guided_attention_layers: list[int] | tuple[int, ...] | None = None,
        num_conditioning_latents: int = 32,
        conditioning_num_layers: int = 2,
        conditioning_kernel_size: int = 3,
        conditioning_dropout: float = 0.1,
        mel: dict | MelConfig | None = None,
        mel_mean: float = -5.0,
        mel_std: float = 2.5,
        prenet_hidden_size: int = 256,
        prenet_dropout: float = 0.5,
        postnet_channels: int = 512,
        postnet_kernel_size: int = 5,
        postnet_num_layers: int = 5,
        postnet_dropout: float = 0.1,
        mark_text_end: bool = True,
        position_init: str = "aligned",
        text_tokens_per_second: float = 25.0,
        **kwargs,
    ):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size if intermediate_size is not None else 4 * hidden_size
        self.activation_function = activation_function
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.layer_norm_epsilon = layer_norm_epsilon
        self.initializer_range = initializer_range
        self.max_text_length = max_text_length
        self.max_mel_steps = max_mel_steps
        self.reduction_factor = reduction_factor
        if guided_attention_layers is None:
            middle = num_hidden_layers // 2
            guided_attention_layers = [middle - 1, middle] if num_hidden_layers > 2 else [num_hidden_layers - 1]
        self.guided_attention_layers = [int(layer) for layer in guided_attention_layers]
        self.num_conditioning_latents = num_conditioning_latents
        self.conditioning_num_layers = conditioning_num_layers
        self.conditioning_kernel_size = conditioning_kernel_size
        self.conditioning_dropout = conditioning_dropout
        # Imported here: `import kurdish_tts` registers this config with `AutoConfig` when transformers' Auto classes
        # load (see `kurdish_tts.models`), which must not pull in the audio stack (librosa).
        from ...audio.features import MelConfig

        mel = mel.to_dict() if isinstance(mel, MelConfig) else dict(mel or {})
        # Validated (and completed with defaults) here rather than at first use: a bad field fails at construction.
        self.mel = MelConfig(**mel).to_dict()
        self.mel_mean = mel_mean
        self.mel_std = mel_std
        self.prenet_hidden_size = prenet_hidden_size
        self.prenet_dropout = prenet_dropout
        self.postnet_channels = postnet_channels
        self.postnet_kernel_size = postnet_kernel_size
        self.postnet_num_layers = postnet_num_layers
        self.postnet_dropout = postnet_dropout
        self.mark_text_end = mark_text_end
        if position_init not in POSITION_INITS:
            raise ValueError(f"position_init must be one of {POSITION_INITS}, got {position_init!r}")
        self.position_init = position_init
        self.text_tokens_per_second = text_tokens_per_second
        # Fields are set before `super().__init__`, which may run validators on a complete instance.
        super().__init__(pad_token_id=pad_token_id, **kwargs)
        self.validate_architecture()

    @classmethod
    def for_size(
        cls, size: str, *, vocab_size: int, pad_token_id: int = 0, mel: dict | MelConfig | None = None, **overrides
    ) -> XttsConfig:
        r"""
        The configuration of a named size.

        Args:
            size (`str`):
                `"tiny"` (tests), `"small"` or `"base"`.
            vocab_size (`int`):
                The tokenizer's `vocab_size`.
            pad_token_id (`int`, *optional*, defaults to `0`):
                The tokenizer's `pad_token_id`.
            mel (`dict` or `MelConfig`, *optional*):
                Mel settings; the size's own when unset (MMS's, or the tiny geometry for `tiny`).
            overrides (`dict[str, Any]`, *optional*):
                Any other field, e.g. `reduction_factor=1`.
        """
        if size not in MODEL_SIZES:
            raise ValueError(f"unknown XTTS model size {size!r}; choose one of {sorted(MODEL_SIZES)}")
        if mel is None:
            mel = SIZE_MEL.get(size)
        values = {**MODEL_SIZES[size], **overrides}
        return cls(vocab_size=vocab_size, pad_token_id=pad_token_id, mel=mel, **values)

    @property
    def mel_config(self) -> MelConfig:
        """The mel settings as a `MelConfig` (what the data, the vocoder and the evaluation compute with)."""
        from ...audio.features import MelConfig

        return MelConfig(**self.mel)

    @property
    def n_mels(self) -> int:
        """Mel bands per frame."""
        return self.mel["n_mels"]

    @property
    def text_tokens_per_step(self) -> float:
        """Text tokens per decoder step at `text_tokens_per_second` (the slope of `position_init="aligned"`)."""
        mel = self.mel
        return self.text_tokens_per_second * self.reduction_factor * mel["hop_length"] / mel["sampling_rate"]

    @property
    def max_mel_frames(self) -> int:
        """Most mel frames per example: `max_mel_steps * reduction_factor`."""
        return self.max_mel_steps * self.reduction_factor

    def backbone_config(self) -> GPT2Config:
        """The `GPT2Config` of the backbone. Its vocabulary is the text vocabulary (its word embedding embeds the text
        tokens); its own position table is not used (see `XttsForTextToSpeech`), so it gets one row."""
        from transformers import GPT2Config

        return GPT2Config(
            vocab_size=self.vocab_size,
            n_positions=1,
            n_embd=self.hidden_size,
            n_layer=self.num_hidden_layers,
            n_head=self.num_attention_heads,
            n_inner=self.intermediate_size,
            activation_function=self.activation_function,
            resid_pdrop=self.dropout,
            embd_pdrop=self.dropout,
            attn_pdrop=self.attention_dropout,
            layer_norm_epsilon=self.layer_norm_epsilon,
            initializer_range=self.initializer_range,
            bos_token_id=None,
            eos_token_id=None,
            pad_token_id=self.pad_token_id,
            tie_word_embeddings=False,
        )

    def validate_architecture(self) -> None:
        """Raises a `ValueError` naming the first field that cannot build a model."""
        for name in (
            "vocab_size",
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
            "max_text_length",
            "max_mel_steps",
            "reduction_factor",
            "num_conditioning_latents",
            "conditioning_num_layers",
            "prenet_hidden_size",
            "postnet_channels",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"XttsConfig.{name} must be a positive integer, got {value!r}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"XttsConfig.num_attention_heads ({self.num_attention_heads}) must divide hidden_size "
                f"({self.hidden_size})"
            )
        for name in ("conditioning_kernel_size", "postnet_kernel_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1 or value % 2 == 0:
                raise ValueError(f"XttsConfig.{name} must be an odd positive integer (same padding), got {value!r}")
        if not isinstance(self.postnet_num_layers, int) or self.postnet_num_layers < 2:
            raise ValueError(f"XttsConfig.postnet_num_layers must be at least 2, got {self.postnet_num_layers!r}")
        bad_layers = [layer for layer in self.guided_attention_layers if not 0 <= layer < self.num_hidden_layers]
        if bad_layers:
            raise ValueError(
                f"XttsConfig.guided_attention_layers {bad_layers} are not backbone layers: choose from 0 to "
                f"{self.num_hidden_layers - 1}"
            )
        if not self.mel_std > 0:
            raise ValueError(f"XttsConfig.mel_std must be positive, got {self.mel_std!r}")
        for name in ("dropout", "attention_dropout", "conditioning_dropout", "prenet_dropout", "postnet_dropout"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"XttsConfig.{name} must lie in [0, 1), got {value!r}")
