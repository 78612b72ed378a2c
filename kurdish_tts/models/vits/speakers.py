"""Turn a single-speaker `VitsModel` (e.g. facebook/mms-tts-kmr-script_latin) into a multi-speaker one, losslessly.

A `VitsModel` with `num_speakers > 1` has a speaker embedding table (`embed_speaker`) and, because
`speaker_embedding_size > 0`, one 1x1 convolution per conditioned module that adds a projection of the embedding:

- `posterior_encoder.wavenet.cond_layer` and `flow.flows.<i>.wavenet.cond_layer` (weight-normed, one slice of the
  output per WaveNet layer, added inside the gated activation),
- `duration_predictor.cond` (stochastic or deterministic predictor; fed a detached embedding),
- `decoder.cond` (HiFi-GAN, added after its input convolution).

`add_speaker_embeddings` builds the model with those layers, copies every existing weight and starts the new
convolutions at exactly zero, so each one adds `0` and the new model computes the base model's output for every
speaker id, bit for bit. Training then moves the voices apart from the base voice. The set of new layers is not
hard-coded: it is the difference between the stock model's state dict with and without speakers, so a transformers
release that conditions another module is covered too.

Starting at zero has one consequence in the first step: the gradient that reaches the embedding passes through the
zero weights, so it is exactly zero, and the weight-normed layers' direction `v` (whose gradient is scaled by the zero
magnitude `g`) gets none either. The zero layers' own weights (`g` for weight-normed ones) and biases do get gradients,
and from the second step on everything trains.
"""

from __future__ import annotations

import copy
import logging

import torch
from torch import nn
from transformers import VitsConfig, VitsModel

from .modeling_vits_training import VitsForTraining

logger = logging.getLogger(__name__)

# The size of a speaker vector in the original VITS multi-speaker (VCTK) model.
DEFAULT_SPEAKER_EMBEDDING_SIZE = 256
_WEIGHT_NORM_DIRECTION_SUFFIXES = (".parametrizations.weight.original1", ".weight_v")


def _state_shapes(config: VitsConfig) -> dict[str, torch.Size]:
    # Meta tensors: the key set and shapes of a stock model without allocating or initializing 36M parameters.
    with torch.device("meta"):
        model = VitsModel(config)
    return {key: tensor.shape for key, tensor in model.state_dict().items()}


def _with_speakers(config: VitsConfig, num_speakers: int, embedding_size: int) -> VitsConfig:
    config = copy.deepcopy(config)
    config.num_speakers = num_speakers
    config.speaker_embedding_size = embedding_size
    return config


def speaker_conditioning_keys(config: VitsConfig) -> list[str]:
    """State-dict keys that exist only because of speakers (the embedding and every conditioning layer).

    Args:
        config (`VitsConfig`):
            A multi-speaker config (`num_speakers > 1`, `speaker_embedding_size > 0`).

    Returns:
        `list[str]`: sorted keys, e.g. `decoder.cond.weight`, `embed_speaker.weight`,
        `posterior_encoder.wavenet.cond_layer.parametrizations.weight.original0`. Useful to give these parameters
        their own learning rate.
    """
    without = _state_shapes(_with_speakers(config, 1, 0))
    return sorted(set(_state_shapes(config)) - set(without))


def _module_path(key: str) -> str:
    return key.split(".parametrizations.")[0] if ".parametrizations." in key else key.rsplit(".", 1)[0]


def _check_stock_layout(vits: VitsModel) -> None:
    expected = _state_shapes(vits.config)
    actual = {key: tensor.shape for key, tensor in vits.state_dict().items()}
    if expected != actual:
        differing = sorted(set(expected) ^ set(actual)) or [k for k in expected if expected[k] != actual[k]]
        raise ValueError(
            "the model's weights do not match a stock VitsModel of its config (was weight norm removed for export, "
            f"or the model edited?); first differing keys: {differing[:5]}"
        )


def _zero_conditioning_layers(vits: VitsModel, keys: list[str]) -> None:
    """Zero the new conditioning layers' effective weights and biases, and check that they really are zero."""
    state = vits.state_dict()
    modules = {_module_path(key) for key in keys if not key.startswith("embed_speaker.")}
    with torch.no_grad():
        for key in keys:
            if key.startswith("embed_speaker.") or key.endswith(_WEIGHT_NORM_DIRECTION_SUFFIXES):
                # A weight-normed layer is g * v / |v|: zero v would divide by zero, so its magnitude g is zeroed and
                # the random direction v kept.
                continue
            state[key].zero_()
        for path in sorted(modules):
            module = vits.get_submodule(path)
            for name in ("weight", "bias"):
                value = getattr(module, name, None)
                if value is not None and torch.count_nonzero(value) != 0:
                    raise RuntimeError(f"{path}.{name} should start at zero but does not; unexpected layer layout")


def add_speaker_embeddings(
    model: VitsForTraining | VitsModel,
    num_speakers: int,
    embedding_size: int | None = None,
    *,
    init_std: float = 1.0,
) -> VitsForTraining | VitsModel:
    """A copy of `model` with a speaker embedding table and speaker-conditioned layers, producing the same output.

    For a single-speaker model (`config.num_speakers <= 1`), the result has `num_speakers` embedding rows drawn from
    `N(0, init_std²)` and zero-initialized conditioning layers (see the module docstring), so that
    `result(input_ids, speaker_id=k)` equals `model(input_ids)` for every `k` under the same random seed, in inference
    and in the training forward. For a model that already has speakers, the table grows to `num_speakers` rows: the
    existing rows and all conditioning layers are kept, and each new row is drawn from a normal with the existing
    rows' per-dimension mean and standard deviation, so a new speaker starts where the conditioning layers have been
    trained. Asking for the current count returns an unchanged copy (so a resumed script may call this again).

    The result is a new model with new parameter objects, on the device and in the dtype of `model`, in the same
    train/eval mode, with the same `requires_grad` flags on the copied weights. `model` is left untouched. Call this
    before building an optimizer, `compile_submodules` or `gradient_checkpointing_enable`. Its `save_pretrained`
    directory loads with stock `VitsModel.from_pretrained` and `pipeline("text-to-speech", model=dir)`, with
    `forward_params={"speaker_id": k}`.

    Example:

    ```python
    >>> from kurdish_tts.data import build_speaker_to_id, filter_speakers, save_speaker_map
    >>> from kurdish_tts.models.vits import VitsForTraining, add_speaker_embeddings
    >>> speaker_to_id = build_speaker_to_id(train, min_clips=20)
    >>> train, dropped = filter_speakers(train, speaker_to_id)
    >>> model = VitsForTraining.from_pretrained("facebook/mms-tts-kmr-script_latin")
    >>> model = add_speaker_embeddings(model, len(speaker_to_id))
    >>> save_speaker_map(output_dir, speaker_to_id, speaker_table(train))
    ```

    Args:
        model (`VitsForTraining` or `VitsModel`):
            The base model. A `VitsForTraining` is returned as a new `VitsForTraining` around the new generator,
            sharing `model`'s discriminator (not a copy), mel config and segment length.
        num_speakers (`int`):
            Rows of the embedding table; at least 2 (transformers builds no table for one speaker) and not fewer than
            the model already has.
        embedding_size (`int`, *optional*):
            Size of a speaker vector. Defaults to 256 (as in VITS) for a single-speaker model and to the existing size
            for a multi-speaker one, which cannot be changed.
        init_std (`float`, *optional*, defaults to `1.0`):
            Standard deviation of a fresh table (as `nn.Embedding` and VITS). It sets the size of the first gradients
            of the zero-initialized layers, which are proportional to the embedding.

    Returns:
        `VitsForTraining` or `VitsModel`: the same type as `model`.
    """
    if isinstance(model, VitsForTraining):
        vits = model.vits
    elif isinstance(model, VitsModel):
        vits = model
    else:
        raise TypeError(f"expected a VitsForTraining or a VitsModel, got {type(model).__name__}")
    config = vits.config
    current = config.num_speakers if config.num_speakers > 1 else 0
    if num_speakers < 2:
        raise ValueError(
            f"num_speakers must be at least 2 (got {num_speakers}): transformers builds no speaker embedding for one "
            "speaker. To train one voice, keep the single-speaker model and select the speaker's clips with "
            "kurdish_tts.data.select_speaker."
        )
    if current:
        size = config.speaker_embedding_size
        if embedding_size not in (None, size):
            raise ValueError(
                f"the model already has {current} speakers with {size}-dimensional embeddings; the embedding size "
                f"cannot change to {embedding_size} (leave embedding_size unset to grow the table)"
            )
        if num_speakers < current:
            raise ValueError(
                f"the model already has {current} speakers; cannot shrink the table to {num_speakers} (that would "
                "drop trained speakers). Pass num_speakers >= the current count, or start from the single-speaker "
                "base model."
            )
    else:
        size = DEFAULT_SPEAKER_EMBEDDING_SIZE if embedding_size is None else embedding_size
        if size < 1:
            raise ValueError(f"embedding_size must be positive, got {size}")
    if init_std <= 0:
        raise ValueError(f"init_std must be positive, got {init_std}")
    _check_stock_layout(vits)

    new_config = _with_speakers(config, num_speakers, size)
    conditioning = speaker_conditioning_keys(new_config)
    reference = next(vits.parameters())
    new_vits = VitsModel(new_config).to(device=reference.device, dtype=reference.dtype)
    old_state, new_state = vits.state_dict(), new_vits.state_dict()
    # A single-speaker config with speaker_embedding_size > 0 has conditioning layers that nothing ever called; they
    # are re-initialized like missing ones rather than copied, so that the output stays the base model's.
    shared = [key for key in new_state if key in old_state and (current or key not in conditioning)]
    with torch.no_grad():
        for key in shared:
            if key == "embed_speaker.weight":
                continue
            new_state[key].copy_(old_state[key])
        table = new_vits.embed_speaker.weight
        if current:
            old_rows = vits.embed_speaker.weight.detach().to(table.dtype)
            table[:current].copy_(old_rows)
            if num_speakers > current:
                mean, std = old_rows.float().mean(0), old_rows.float().std(0)
                rows = mean + std * torch.randn(num_speakers - current, size, device=table.device)
                table[current:].copy_(rows.to(table.dtype))
        else:
            nn.init.normal_(table, std=init_std)
    if not current:
        _zero_conditioning_layers(new_vits, conditioning)

    old_parameters = dict(vits.named_parameters())
    for name, parameter in new_vits.named_parameters():
        if name in old_parameters:
            parameter.requires_grad_(old_parameters[name].requires_grad)
    # Runtime overrides of the inference settings (e.g. a slower speaking rate) survive the rebuild.
    for attribute in ("speaking_rate", "noise_scale", "noise_scale_duration"):
        setattr(new_vits, attribute, getattr(vits, attribute))
    new_vits.train(vits.training)
    added = sum(new_state[key].numel() for key in conditioning) - sum(
        old_state[key].numel() for key in conditioning if key in old_state and current
    )
    logger.info(
        "Speaker embeddings: %d → %d speakers (%d-dimensional), %d new parameters%s",
        max(current, 1),
        num_speakers,
        size,
        added,
        "" if current else "; conditioning layers start at zero, so every speaker speaks as the base model",
    )

    if isinstance(model, VitsForTraining):
        wrapped = VitsForTraining(new_vits, model.discriminator, model.mel_config, model.segment_frames)
        return wrapped.train(model.training)
    return new_vits
