"""The VITS training forward over a stock `transformers.VitsModel`, plus its discriminator.

transformers ships VITS for inference only (`VitsModel.forward` raises for `labels`). `VitsForTraining` composes a stock
`VitsModel` and calls its submodules — text encoder, posterior encoder, flow, stochastic duration predictor, HiFi-GAN
decoder — in the order of the VITS paper (arXiv 2106.06103, section 2):

1. the text encoder gives the prior `N(m_p, exp(logs_p))` per token;
2. the posterior encoder turns the linear spectrogram (computed here, on the waveform's device) into `z`;
3. the flow maps `z` to `z_p`, and monotonic alignment search finds the hard text→frame alignment maximizing the
   prior's likelihood of `z_p`; its column sums are the duration targets of the stochastic duration predictor;
4. a random segment of `z` is decoded to a waveform and compared, as a mel, with the same segment of the target;
5. the discriminator scores real and generated segments (least-squares GAN plus feature matching).

The discriminator lives inside this module on purpose (the "one module, one optimizer" GAN update): the Trainer's
optimizer, gradient accumulation, mixed precision, DDP and checkpointing then cover both networks with no extra
machinery. The discriminator loss sees the generated audio detached; the generator's adversarial and feature-matching
terms run the discriminator with detached parameters (`torch.func.functional_call`), so they push gradients into the
generator only. What is saved is a stock `VitsModel` directory (loadable without this package) plus `discriminator.safetensors`.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import VitsConfig, VitsModel
from transformers.models.vits.modeling_vits import VitsConvFlow
from transformers.utils import ModelOutput

from ...atomic import write_json_atomically
from ...audio.features import MelConfig, linear_spectrogram, mel_spectrogram
from . import losses
from .configuration_discriminator import VitsDiscriminatorConfig
from .modeling_discriminator import VitsDiscriminator, load_discriminator, save_discriminator
from .monotonic_align import maximum_path
from .splines import conv_flow_forward

# Named architectures for random initialization. `mms` is the architecture of facebook/mms-tts-* (VitsConfig's
# defaults, 36M parameters in the generator); `tiny` is for tests (hop 16, a few thousand parameters per module).
MODEL_SIZES = {
    "mms": {},
    "small": {
        "hidden_size": 96,
        "ffn_dim": 384,
        "num_hidden_layers": 4,
        "flow_size": 96,
        "upsample_initial_channel": 256,
        "duration_predictor_filter_channels": 128,
    },
    "tiny": {
        "hidden_size": 16,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "ffn_dim": 64,
        "flow_size": 16,
        "spectrogram_bins": 17,
        "upsample_initial_channel": 16,
        "upsample_rates": [8, 2],
        "upsample_kernel_sizes": [16, 4],
        "resblock_kernel_sizes": [3],
        "resblock_dilation_sizes": [[1, 3]],
        "prior_encoder_num_flows": 2,
        "prior_encoder_num_wavenet_layers": 2,
        "posterior_encoder_num_wavenet_layers": 2,
        "duration_predictor_num_flows": 2,
        "duration_predictor_filter_channels": 16,
        "window_size": 2,
        # No layer dropout, so that every parameter receives a gradient in every step (what the tests check).
        "layerdrop": 0.0,
    },
}
# The mel bands of the tiny model's 17-bin spectrogram; every other size uses MMS's 80.
SIZE_MEL_OVERRIDES = {"tiny": {"n_mels": 8}}
DEFAULT_SEGMENT_FRAMES = {"tiny": 8}
DISCRIMINATOR_SIZES = {"tiny": VitsDiscriminatorConfig.tiny}


# Speaker names of a multi-speaker model, next to its weights (`kurdish_tts.data.speakers` writes and reads it).
SPEAKERS_NAME = "speakers.json"
# The training geometry (mel bands, segment length) that the VITS config does not hold, next to the weights.
TRAINING_CONFIG_NAME = "training_config.json"

COMPILABLE_SUBMODULES = (
    "decoder",
    "discriminator",
    "text_encoder",
    "posterior_encoder",
    "flow",
    "duration_predictor",
)


def vits_config_for_size(size: str, vocab_size: int, **overrides) -> VitsConfig:
    """A `VitsConfig` for a named size with the given vocabulary (`mms`, `small` or `tiny`)."""
    if size not in MODEL_SIZES:
        raise ValueError(f"unknown model size {size!r}; choose one of {sorted(MODEL_SIZES)}")
    return VitsConfig(vocab_size=vocab_size, **{**MODEL_SIZES[size], **overrides})


def mel_config_for_size(config: VitsConfig, size: str | None = None) -> MelConfig:
    return MelConfig.from_vits_config(config, **SIZE_MEL_OVERRIDES.get(size or "", {}))


@dataclass
class VitsTrainingOutput(ModelOutput):
    """Unweighted VITS loss terms and what the evaluation callbacks look at.

    Args:
        mel_loss (`torch.FloatTensor` of shape `()`):
            L1 between the log-mels of the generated and the target segment.
        kl_loss (`torch.FloatTensor` of shape `()`):
            KL between the posterior (through the flow) and the aligned prior, per frame.
        duration_loss (`torch.FloatTensor` of shape `()`):
            Stochastic duration predictor negative log-likelihood, per token; with the deterministic predictor
            (`use_stochastic_duration_prediction=False`), its squared log-duration error per token.
        adversarial_loss (`torch.FloatTensor` of shape `()`):
            Generator's least-squares adversarial term (discriminator parameters frozen).
        feature_matching_loss (`torch.FloatTensor` of shape `()`):
            L1 between discriminator feature maps of real and generated segments.
        discriminator_loss (`torch.FloatTensor` of shape `()`):
            Discriminator's least-squares loss on real and detached generated segments.
        generated_waveform (`torch.FloatTensor` of shape `(batch, 1, segment_samples)`):
            Decoder output for the random segment.
        target_waveform (`torch.FloatTensor` of shape `(batch, 1, segment_samples)`):
            The same segment of the recording.
        alignment (`torch.FloatTensor` of shape `(batch, text_length, frames)`):
            Hard monotonic alignment (1 where a frame belongs to a token).
        durations (`torch.FloatTensor` of shape `(batch, text_length)`):
            Frames per token from the alignment.
    """

    mel_loss: torch.FloatTensor | None = None
    kl_loss: torch.FloatTensor | None = None
    duration_loss: torch.FloatTensor | None = None
    adversarial_loss: torch.FloatTensor | None = None
    feature_matching_loss: torch.FloatTensor | None = None
    discriminator_loss: torch.FloatTensor | None = None
    generated_waveform: torch.FloatTensor | None = None
    target_waveform: torch.FloatTensor | None = None
    alignment: torch.FloatTensor | None = None
    durations: torch.FloatTensor | None = None


def sequence_mask(lengths: torch.Tensor, max_length: int) -> torch.Tensor:
    """`(batch,)` lengths → `(batch, max_length)` bool mask, True on valid positions."""
    return torch.arange(max_length, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)


def additive_attention_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """`(batch, text)` padding mask → the `(batch, 1, text, text)` float32 bias transformers would build from it
    (0 on real keys, the float32 minimum on padded ones).

    Built here because transformers' mask builder copies a scalar from the host into the bias, a synchronizing copy
    that also cannot be captured in a CUDA graph; a prepared 4-D mask is passed through unchanged."""
    padded = (attention_mask == 0)[:, None, None, :]
    bias = torch.zeros(padded.shape, dtype=torch.float32, device=attention_mask.device)
    bias = bias.masked_fill(padded, torch.finfo(torch.float32).min)
    length = attention_mask.shape[1]
    return bias.expand(-1, -1, length, -1)


def slice_segments(inputs: torch.Tensor, starts: torch.Tensor, size: int) -> torch.Tensor:
    """Gather `inputs[b, :, starts[b] : starts[b] + size]` for every item, with no host round trip."""
    index = starts.unsqueeze(1) + torch.arange(size, device=inputs.device).unsqueeze(0)  # (batch, size)
    return torch.gather(inputs, 2, index.unsqueeze(1).expand(-1, inputs.shape[1], -1))


def alignment_log_likelihood(
    prior_latents: torch.Tensor, prior_means: torch.Tensor, prior_log_stddevs: torch.Tensor
) -> torch.Tensor:
    """Log-density of each frame's `z_p` under each token's prior, `(batch, text_length, frames)`, in float32.

    Args:
        prior_latents: `(batch, flow_size, frames)` — z_p, the posterior sample mapped through the flow.
        prior_means: `(batch, flow_size, text_length)` — m_p.
        prior_log_stddevs: `(batch, flow_size, text_length)` — logs_p.
    """
    z_p, m_p, logs_p = prior_latents.float(), prior_means.float(), prior_log_stddevs.float()
    inverse_variance = torch.exp(-2 * logs_p)  # (batch, flow, text)
    # The Gaussian log-density expanded into four terms so that the frame x token grid needs only two matmuls.
    constant = torch.sum(-0.5 * math.log(2 * math.pi) - logs_p, dim=1, keepdim=True)  # (batch, 1, text)
    quadratic = torch.matmul(-0.5 * z_p.square().transpose(1, 2), inverse_variance)  # (batch, frames, text)
    cross = torch.matmul(z_p.transpose(1, 2), m_p * inverse_variance)  # (batch, frames, text)
    mean_term = torch.sum(-0.5 * m_p.square() * inverse_variance, dim=1, keepdim=True)  # (batch, 1, text)
    return (constant + quadratic + cross + mean_term).transpose(1, 2)


def duration_negative_log_likelihood(
    predictor: nn.Module, hidden_states: torch.Tensor, padding_mask: torch.Tensor, speaker, durations: torch.Tensor
) -> torch.Tensor:
    """The stochastic duration predictor's training branch (variational dequantization + flows), per item `(batch,)`.

    Same computation as `VitsStochasticDurationPredictor.forward(reverse=False)` on the same submodules, except that
    the noise is drawn on the device (the stock code draws it on the CPU and copies it over) and the spline flows use
    `splines.conv_flow_forward` (the stock spline selects its inputs by boolean indexing): no host-device
    synchronization, fixed shapes, so the step can be captured in a CUDA graph. Runs in float32: the spline flows' log-determinants lose too much in half
    precision.
    """
    device_type = hidden_states.device.type
    with torch.autocast(device_type, enabled=False):
        mask = padding_mask.float()  # (batch, 1, text)
        inputs = predictor.conv_pre(hidden_states.detach().float())
        if speaker is not None:
            inputs = inputs + predictor.cond(speaker.detach().float())
        inputs = predictor.conv_proj(predictor.conv_dds(inputs, mask)) * mask
        durations = durations.float()  # (batch, 1, text)
        hidden = predictor.post_conv_proj(predictor.post_conv_dds(predictor.post_conv_pre(durations), mask)) * mask

        noise = torch.randn(durations.shape[0], 2, durations.shape[2], device=durations.device) * mask
        posterior_log_determinant = 0
        latents = noise
        for flow in predictor.post_flows:
            latents, log_determinant = _flow_forward(flow, latents, mask, inputs + hidden)
            latents = torch.flip(latents, [1])
            posterior_log_determinant = posterior_log_determinant + log_determinant
        first, second = torch.split(latents, [1, 1], dim=1)
        posterior_log_determinant = posterior_log_determinant + torch.sum(
            (nn.functional.logsigmoid(first) + nn.functional.logsigmoid(-first)) * mask, [1, 2]
        )
        log_q = torch.sum(-0.5 * (math.log(2 * math.pi) + noise.square()) * mask, [1, 2]) - posterior_log_determinant

        first = torch.log(torch.clamp_min((durations - torch.sigmoid(first)) * mask, 1e-5)) * mask
        log_determinant_sum = torch.sum(-first, [1, 2])
        latents = torch.cat([first, second], dim=1)
        for flow in predictor.flows:
            latents, log_determinant = _flow_forward(flow, latents, mask, inputs)
            latents = torch.flip(latents, [1])
            log_determinant_sum = log_determinant_sum + log_determinant
        nll = torch.sum(0.5 * (math.log(2 * math.pi) + latents.square()) * mask, [1, 2]) - log_determinant_sum
        return nll + log_q


def log_duration_squared_error(
    predictor: nn.Module, hidden_states: torch.Tensor, padding_mask: torch.Tensor, speaker, durations: torch.Tensor
) -> torch.Tensor:
    """The deterministic duration predictor's loss (`use_stochastic_duration_prediction=False`), per item `(batch,)`:
    the squared error of the predicted log-durations against `log(durations)`, summed over the item's tokens, as in
    the original VITS (`losses.duration_loss` then divides by the token count, like the stochastic term).

    `VitsModel`'s inference rounds `exp(log_duration)` up to whole frames, so a token that the alignment gave no frame
    (target `log(1e-6)`) still gets one. The predictor detaches its inputs itself: like the stochastic one, it does
    not train the text encoder. Float32, like the stochastic term.
    """
    with torch.autocast(hidden_states.device.type, enabled=False):
        mask = padding_mask.float()  # (batch, 1, text)
        conditioning = None if speaker is None else speaker.float()
        predicted = predictor(hidden_states.float(), mask, conditioning)  # (batch, 1, text), masked
        target = torch.log(durations.float() + 1e-6) * mask
        return torch.sum((predicted - target).square(), dim=[1, 2])


def saved_mel_config(name_or_path: str | os.PathLike) -> MelConfig | None:
    """The mel settings a model folder written by `VitsForTraining.save_pretrained` was trained with, if recorded."""
    saved = _read_training_config(name_or_path)
    return MelConfig(**saved["mel"]) if "mel" in saved else None


def _read_training_config(name_or_path) -> dict:
    path = os.path.join(name_or_path, TRAINING_CONFIG_NAME)
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _flow_forward(flow: nn.Module, latents, mask, conditioning):
    # Spline flows go through the synchronization-free spline; the elementwise affine flow has no host round trip.
    if isinstance(flow, VitsConvFlow):
        return conv_flow_forward(flow, latents, mask, conditioning)
    return flow(latents, mask, global_conditioning=conditioning)


def _start_from_standard_normal(vits: VitsModel) -> None:
    """Shrink the layers that output the prior's and the posterior's (mean, log-stddev), so both start near N(0, 1).

    transformers initializes these 1x1 convolutions He-normal, which makes the log-stddevs of a fresh model range
    over about ±4: the first KL term is then ~7e4 per frame (measured at MMS size, 57 after this), which collapses the
    fp16 loss scale within a few steps. A small non-zero std (outputs of about ±0.15 at MMS size) rather than zeros
    keeps a gradient flowing into the encoders below from the first step.
    """
    for projection in (vits.text_encoder.project, vits.posterior_encoder.conv_proj):
        nn.init.normal_(projection.weight, std=0.01)
        nn.init.zeros_(projection.bias)


def _start_decoder_like_hifigan(vits: VitsModel) -> None:
    """Re-draw the decoder's weights as the reference HiFi-GAN/VITS generator draws them, so that it starts quiet.

    transformers' `VitsPreTrainedModel._init_weights` draws every convolution of the decoder He-normal. Through the
    upsampling stack and the residual blocks that multiplies the signal at every layer: a fresh MMS-size decoder maps
    standard-normal latents to an RMS of about 0.9 with 40 % of the samples at the rails of its final `tanh` (tiny:
    99 %), whose gradient there is ~0, so training starts (and, measured, stays) with a full-scale offset or tone.
    The reference draws the upsampling and residual convolutions from N(0, 0.01) and leaves the first and last
    convolutions at PyTorch's default, which starts at about -25 dBFS. The biases start at zero: the mel loss is
    blind to a DC offset (its filters give the DC bin no weight), so an offset drawn at init would be left for the
    discriminator alone to remove.
    """
    decoder = vits.decoder
    for module in (*decoder.upsampler, *decoder.resblocks):
        for conv in module.modules():
            if isinstance(conv, (nn.Conv1d, nn.ConvTranspose1d)):
                nn.init.normal_(conv.weight, mean=0.0, std=0.01)
                if conv.bias is not None:
                    nn.init.zeros_(conv.bias)
    for conv in (decoder.conv_pre, decoder.conv_post):
        conv.reset_parameters()
        if conv.bias is not None:
            nn.init.zeros_(conv.bias)


class VitsForTraining(nn.Module):
    """A stock `VitsModel` (the generator) and a `VitsDiscriminator`, with the VITS training forward.

    Args:
        vits (`VitsModel`):
            The generator; exported unchanged, so stock transformers can load it.
        discriminator (`VitsDiscriminator`):
            Multi-period + scale discriminator.
        mel_config (`MelConfig`, *optional*):
            The mel settings of the training data (must match the cache); derived from `vits.config` when omitted.
        segment_frames (`int`, *optional*, defaults to `32`):
            Frames per randomly sliced decoder segment (32 × hop 256 = 8192 samples, as in VITS).

    Attributes:
        speaker_to_id (`dict[str, int]` or `None`):
            Speaker label → embedding row of a multi-speaker model. Saved as `speakers.json` next to the weights
            (stock transformers ignores it) and read back by `from_pretrained`, so a model's voices keep their names.
    """

    def __init__(
        self,
        vits: VitsModel,
        discriminator: VitsDiscriminator,
        mel_config: MelConfig | None = None,
        segment_frames: int = 32,
    ):
        super().__init__()
        self.vits = vits
        self.discriminator = discriminator
        self.mel_config = mel_config or MelConfig.from_vits_config(vits.config)
        self.segment_frames = segment_frames
        self.speaker_to_id: dict[str, int] | None = None
        hop = math.prod(vits.config.upsample_rates)
        if self.mel_config.hop_length != hop or self.mel_config.spectrogram_bins != vits.config.spectrogram_bins:
            raise ValueError(
                f"the mel config (hop {self.mel_config.hop_length}, {self.mel_config.spectrogram_bins} bins) does not "
                f"match the model (hop = prod(upsample_rates) = {hop}, spectrogram_bins = "
                f"{vits.config.spectrogram_bins}); prepare the data with MelConfig.from_vits_config(model.config)"
            )

    # Trainer integration: lets `Trainer` find the config and the device.
    @property
    def config(self) -> VitsConfig:
        return self.vits.config

    @property
    def device(self) -> torch.device:
        return self.vits.device

    @classmethod
    def from_size(
        cls, size: str, vocab_size: int, *, num_speakers: int = 1, segment_frames: int | None = None, **config_kwargs
    ) -> VitsForTraining:
        """Random initialization of a named architecture (`mms`, `small`, `tiny`) for offline or from-scratch use."""
        # pad_token_id 0 is the blank of `add_blank` tokenizers (ours and MMS's); saying so keeps the Trainer from
        # "aligning" the config to the tokenizer with a warning.
        extra = {
            "num_speakers": num_speakers,
            "speaker_embedding_size": 0 if num_speakers <= 1 else 256,
            "pad_token_id": 0,
        }
        if size == "tiny" and num_speakers > 1:
            extra["speaker_embedding_size"] = 8
        config = vits_config_for_size(size, vocab_size, **{**extra, **config_kwargs})
        vits = VitsModel(config)
        _start_from_standard_normal(vits)
        _start_decoder_like_hifigan(vits)
        discriminator_config = DISCRIMINATOR_SIZES.get(size, VitsDiscriminatorConfig)()
        return cls(
            vits,
            VitsDiscriminator(discriminator_config),
            mel_config_for_size(config, size),
            segment_frames or DEFAULT_SEGMENT_FRAMES.get(size, 32),
        )

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        *,
        discriminator_config: VitsDiscriminatorConfig | None = None,
        mel_config: MelConfig | None = None,
        segment_frames: int | None = None,
        discriminator: VitsDiscriminator | None = None,
        **kwargs,
    ) -> VitsForTraining:
        """Load a `VitsModel` (Hub id or local dir) and its `discriminator.safetensors` when present.

        Without that file (a Hub id: the MMS model repositories hold only the generator) a fresh discriminator is
        initialized. A given `discriminator` is used instead of either, e.g. MMS's pretrained one:
        `resolve_discriminator_source("auto", name_or_path).load()` (`discriminator_source.py`). A folder written by
        `save_pretrained` also gives back the mel settings and segment length it was trained with
        (`training_config.json`); arguments win, and without the file they are MMS's (80 mel bands, 32 frames).
        `kwargs` go to `VitsModel.from_pretrained`.
        """
        try:
            vits = VitsModel.from_pretrained(name_or_path, **kwargs)
        except OSError as error:
            raise OSError(
                f"could not load the VITS model {str(name_or_path)!r}: {error}\nOffline? Pass a local model directory "
                "(e.g. a previous run's best model), or start from a random initialization with "
                "VitsForTraining.from_size('mms' | 'small' | 'tiny', vocab_size)."
            ) from error
        if discriminator is None and os.path.isdir(name_or_path):
            discriminator = load_discriminator(name_or_path, discriminator_config)
        if discriminator is None:
            discriminator = VitsDiscriminator(discriminator_config or VitsDiscriminatorConfig())
        saved = _read_training_config(name_or_path)
        if mel_config is None and "mel" in saved:
            mel_config = MelConfig(**saved["mel"])
        if segment_frames is None:
            segment_frames = saved.get("segment_frames", 32)
        model = cls(vits, discriminator, mel_config, segment_frames)
        if os.path.isfile(os.path.join(name_or_path, SPEAKERS_NAME)):
            from ...data.speakers import load_speaker_map

            model.speaker_to_id = load_speaker_map(name_or_path)
        return model

    def save_pretrained(self, save_directory: str | os.PathLike, tokenizer=None, **kwargs) -> Path:
        """Write a stock `VitsModel` directory (+ tokenizer) and `discriminator.safetensors` next to it."""
        save_directory = Path(save_directory)
        self.vits.save_pretrained(save_directory, **kwargs)
        if tokenizer is not None:
            tokenizer.save_pretrained(save_directory)
        save_discriminator(self.discriminator, save_directory)
        write_json_atomically(
            save_directory / TRAINING_CONFIG_NAME,
            {"mel": self.mel_config.to_dict(), "segment_frames": self.segment_frames},
        )
        if self.speaker_to_id is not None:
            # Imported here: the model layer needs the data layer's file format only when a model has named voices.
            from ...data.speakers import save_speaker_map

            save_speaker_map(save_directory, self.speaker_to_id)
        return save_directory

    def generator_parameters(self):
        return self.vits.parameters()

    def compile_submodules(self, names: tuple[str, ...] = COMPILABLE_SUBMODULES, **compile_kwargs) -> None:
        """`torch.compile` the named submodules in place (their state-dict keys stay stock).

        A VITS step is bound by kernel launches, not arithmetic (thousands of small elementwise kernels around the
        convolutions); compiling fuses them. The decoder and the discriminator always see one segment shape, the
        encoders see every padded length (pad to a multiple to bound recompilations). Alignment search, STFT and the
        losses stay eager. `compile_kwargs` go to `nn.Module.compile` (e.g. `dynamic=True`, `mode=...`).
        """
        for name in names:
            if name not in COMPILABLE_SUBMODULES:
                raise ValueError(f"cannot compile {name!r}; choose from {COMPILABLE_SUBMODULES}")
            module = self.discriminator if name == "discriminator" else getattr(self.vits, name)
            module.compile(**compile_kwargs)

    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor,
        waveform: torch.FloatTensor,
        mel: torch.FloatTensor,
        mel_lengths: torch.LongTensor,
        speaker_id: torch.LongTensor | None = None,
        compute_adversarial: bool = True,
        train_generator: bool = True,
    ) -> VitsTrainingOutput:
        r"""
        Args:
            input_ids (`torch.LongTensor` of shape `(batch, text_length)`): token ids (blanks interspersed).
            attention_mask (`torch.Tensor` of shape `(batch, text_length)`): 1 on real tokens.
            waveform (`torch.Tensor` of shape `(batch, frames * hop_length)`): target audio, int16 PCM (as the
                collator sends it) or float in [-1, 1].
            mel (`torch.Tensor` of shape `(batch, n_mels, frames)`): cached target log-mel (float16 or float32).
            mel_lengths (`torch.LongTensor` of shape `(batch,)`): valid frames per item.
            speaker_id (`torch.LongTensor` of shape `(batch,)`, *optional*): for multi-speaker models.
            compute_adversarial (`bool`, *optional*, defaults to `True`): run the discriminator (off for a quick
                reconstruction-only evaluation).
            train_generator (`bool`, *optional*, defaults to `True`): when `False` (discriminator warm-up), the
                generator runs without autograd and only the discriminator loss carries gradients.
        """
        with torch.set_grad_enabled(train_generator and torch.is_grad_enabled()):
            output = self._generator_forward(input_ids, attention_mask, waveform, mel, mel_lengths, speaker_id)
        if compute_adversarial:
            self._adversarial_losses(output, output.generated_waveform, output.target_waveform, train_generator)
        return output

    def _generator_forward(
        self, input_ids, attention_mask, waveform, mel, mel_lengths, speaker_id
    ) -> VitsTrainingOutput:
        vits, config = self.vits, self.vits.config
        if not waveform.is_floating_point():
            waveform = waveform.float() / 32767.0
        mel = mel.float()
        frames = mel.shape[-1]
        text_mask = attention_mask.unsqueeze(1).float()  # (batch, 1, text)
        frame_mask = sequence_mask(mel_lengths, frames).unsqueeze(1).float()  # (batch, 1, frames)
        speaker = None
        if config.num_speakers > 1 and speaker_id is not None:
            speaker = vits.embed_speaker(speaker_id).unsqueeze(-1)  # (batch, speaker_embedding_size, 1)

        encoded = vits.text_encoder(
            input_ids=input_ids,
            padding_mask=text_mask.transpose(1, 2),
            attention_mask=additive_attention_mask(attention_mask),
        )
        hidden_states = encoded.last_hidden_state.transpose(1, 2)  # (batch, hidden, text)
        prior_means = encoded.prior_means.transpose(1, 2)  # (batch, flow, text), m_p
        prior_log_stddevs = encoded.prior_log_variances.transpose(1, 2)  # (batch, flow, text), logs_p

        spectrogram = linear_spectrogram(waveform, self.mel_config)[..., :frames]  # (batch, bins, frames)
        posterior_latents, _, posterior_log_stddevs = vits.posterior_encoder(spectrogram, frame_mask, speaker)  # z
        prior_latents = vits.flow(posterior_latents, frame_mask, speaker)  # z_p

        with torch.no_grad():
            log_likelihood = alignment_log_likelihood(prior_latents, prior_means, prior_log_stddevs)
            alignment_mask = text_mask.transpose(1, 2) * frame_mask  # (batch, text, frames)
            alignment = maximum_path(log_likelihood, alignment_mask)  # (batch, text, frames)
        durations = alignment.sum(2)  # (batch, text)
        if config.use_stochastic_duration_prediction:
            duration_nll = duration_negative_log_likelihood(
                vits.duration_predictor, hidden_states, text_mask, speaker, durations.unsqueeze(1)
            )
        else:
            duration_nll = log_duration_squared_error(
                vits.duration_predictor, hidden_states, text_mask, speaker, durations.unsqueeze(1)
            )

        aligned_means = torch.bmm(prior_means, alignment.to(prior_means.dtype))  # (batch, flow, frames)
        aligned_log_stddevs = torch.bmm(prior_log_stddevs, alignment.to(prior_log_stddevs.dtype))

        # A random segment per item, inside its valid frames (clips shorter than a segment start at 0).
        max_start = (mel_lengths - self.segment_frames).clamp(min=0) + 1
        starts = (torch.rand(mel_lengths.shape, device=mel_lengths.device) * max_start).long()
        hop = self.mel_config.hop_length
        generated = vits.decoder(slice_segments(posterior_latents, starts, self.segment_frames), speaker)
        target = slice_segments(waveform.unsqueeze(1), starts * hop, self.segment_frames * hop)
        generated_mel = mel_spectrogram(generated.squeeze(1), self.mel_config)  # (batch, n_mels, segment)
        target_mel = slice_segments(mel, starts, self.segment_frames)

        output = VitsTrainingOutput(
            mel_loss=losses.mel_reconstruction_loss(generated_mel, target_mel),
            kl_loss=losses.kl_loss(
                prior_latents, posterior_log_stddevs, aligned_means, aligned_log_stddevs, frame_mask
            ),
            duration_loss=losses.duration_loss(duration_nll, attention_mask.sum(1)),
            generated_waveform=generated,
            target_waveform=target,
            alignment=alignment,
            durations=durations,
        )
        return output

    def _adversarial_losses(
        self, output: VitsTrainingOutput, generated: torch.Tensor, target: torch.Tensor, generator_terms: bool
    ) -> None:
        # One discriminator pass over real and detached fake audio trains the discriminator.
        scores = self.discriminator(torch.cat([target, generated.detach()], dim=0))
        real, fake = scores.chunk(2)
        output.discriminator_loss, _, _ = losses.discriminator_loss(real.logits, fake.logits)
        if not generator_terms:
            return
        # A second pass with detached discriminator parameters: the generator's terms reach the generator through the
        # audio, and no discriminator weight gradient is computed for them at all (half the discriminator backward).
        detached = {name: parameter.detach() for name, parameter in self.discriminator.named_parameters()}
        # float32 like the concatenated batch above, so a compiled discriminator sees a single input dtype.
        fake_scores = torch.func.functional_call(self.discriminator, detached, (generated.float(),))
        output.adversarial_loss, _ = losses.generator_adversarial_loss(fake_scores.logits)
        real_features = [[feature.detach() for feature in maps] for maps in real.feature_maps]
        output.feature_matching_loss = losses.feature_matching_loss(real_features, fake_scores.feature_maps)
