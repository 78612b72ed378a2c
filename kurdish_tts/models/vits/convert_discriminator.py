"""Convert a discriminator checkpoint of the original VITS code into a [`VitsDiscriminator`].

The original VITS training code (jaywalnut310/vits), which MMS was trained with, saves its discriminator as
`D_<step>.pth`: `torch.save({"model": state_dict, "iteration": ..., "optimizer": ..., "learning_rate": ...})`. Its
`MultiPeriodDiscriminator` keeps the sub-discriminators in one list, the scale discriminator first, and applies weight
norm with the old `torch.nn.utils.weight_norm` hooks. [`VitsDiscriminator`] names the sub-discriminators and uses the
parametrizations API. Both weight-norm forms store the same two tensors with the same shapes, magnitude `g` and
direction `v`, so converting only renames keys:

    discriminators.0.convs.3.weight_g    -> scale_discriminator.convs.3.parametrizations.weight.original0
    discriminators.2.conv_post.weight_v  -> period_discriminators.1.conv_post.parametrizations.weight.original1
    discriminators.2.conv_post.bias      -> period_discriminators.1.conv_post.bias

The weights do not record which period each period discriminator had. They are taken in the order of
`config.periods`, which is `[2, 3, 5, 7, 11]` for both VITS and MMS.
"""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from pathlib import Path

import torch

from .configuration_discriminator import VitsDiscriminatorConfig
from .modeling_discriminator import VitsDiscriminator, save_discriminator

# Keys of the generator checkpoint (`G_<step>.pth`): its text encoder and decoder. Used only to name the mix-up.
_GENERATOR_PREFIXES = ("enc_p.", "enc_q.", "dec.", "flow.", "dp.")


def original_key(name: str) -> str:
    r"""
    The key in an original VITS discriminator checkpoint that holds the tensor [`VitsDiscriminator`] calls `name`.

    Args:
        name (`str`):
            A key of `VitsDiscriminator.state_dict()` of a weight-norm discriminator, e.g.
            `"period_discriminators.0.convs.1.parametrizations.weight.original0"`.

    Returns:
        `str`: the original key, e.g. `"discriminators.1.convs.1.weight_g"`.
    """
    if name.startswith("scale_discriminator."):
        name = "discriminators.0." + name.removeprefix("scale_discriminator.")
    else:
        match = re.match(r"period_discriminators\.(\d+)\.", name)
        if match is None:
            raise ValueError(f"{name!r} is not a key of a VitsDiscriminator state dict.")
        # The scale discriminator is entry 0 of the original list, so period discriminator k is entry k + 1.
        name = f"discriminators.{int(match.group(1)) + 1}." + name[match.end() :]
    return name.replace(".parametrizations.weight.original0", ".weight_g").replace(
        ".parametrizations.weight.original1", ".weight_v"
    )


def read_original_checkpoint(checkpoint_path: str | os.PathLike) -> dict[str, torch.Tensor]:
    r"""
    Reads the weights of an original VITS checkpoint (e.g. MMS's `D_100000.pth`), safely: `torch.load` runs with
    `weights_only=True`, so a file holding anything but tensors and plain containers is refused, not executed.

    Args:
        checkpoint_path (`str` or `os.PathLike`):
            The `.pth` file.

    Returns:
        `dict[str, torch.Tensor]`: the state dict stored under the checkpoint's `"model"` key, on the CPU.

    Raises:
        `FileNotFoundError`: there is no such file.
        `OSError`: the file is not a readable PyTorch checkpoint (truncated download, another format).
        `ValueError`: it is one, but it holds no state dict under `"model"`.
    """
    path = Path(checkpoint_path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (expected an original VITS checkpoint such as D_100000.pth).")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    # torch.load reports a damaged file as any of these, depending on where the damage is.
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, OSError) as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        raise OSError(
            f"{path} is not a readable PyTorch checkpoint of tensors ({type(error).__name__}: {reason}). If it was "
            "downloaded, the download may be incomplete: download it again."
        ) from error
    state_dict = checkpoint.get("model") if isinstance(checkpoint, dict) else None
    if not isinstance(state_dict, dict) or not all(isinstance(value, torch.Tensor) for value in state_dict.values()):
        found = (
            f"a dict with keys {sorted(checkpoint)[:8]}" if isinstance(checkpoint, dict) else type(checkpoint).__name__
        )
        raise ValueError(
            f"{path} holds {found}; an original VITS checkpoint is a dict with the weights (a dict of tensors) under "
            "'model', as jaywalnut310/vits and MMS save them."
        )
    return state_dict


def convert_original_state_dict(
    state_dict: dict[str, torch.Tensor],
    config: VitsDiscriminatorConfig | None = None,
    *,
    source: str = "the checkpoint",
) -> dict[str, torch.Tensor]:
    r"""
    Renames the weights of an original VITS `MultiPeriodDiscriminator` to the keys of a [`VitsDiscriminator`], after
    checking that every tensor is there with the shape `config` implies, and nothing else.

    Args:
        state_dict (`dict[str, torch.Tensor]`):
            The original state dict (see [`read_original_checkpoint`]).
        config ([`VitsDiscriminatorConfig`], *optional*):
            The architecture the weights must fit; the VITS (and MMS) discriminator when unset. Must use weight norm,
            as the original does.
        source (`str`, *optional*, defaults to `"the checkpoint"`):
            How to name the weights' origin in error messages, e.g. its path.

    Returns:
        `dict[str, torch.Tensor]`: the same tensors under [`VitsDiscriminator`]'s keys.

    Raises:
        `ValueError`: `config` uses spectral norm, or the weights do not fit it; the message names the first tensor
        that is missing, of another shape, or unexpected.
    """
    config = config or VitsDiscriminatorConfig()
    if config.use_spectral_norm:
        raise ValueError(
            "Original VITS discriminators use weight norm (weight_g/weight_v tensors); convert into a config with "
            "use_spectral_norm=False."
        )
    # Only names and shapes are needed here; the meta device gives them without allocating 46.7M weights.
    with torch.device("meta"):
        expected = VitsDiscriminator(config).state_dict()

    converted, mismatches = {}, []
    for name, tensor in expected.items():
        key = original_key(name)
        if key not in state_dict:
            mismatches.append(f"missing tensor {key!r} (expected shape {tuple(tensor.shape)})")
        elif state_dict[key].shape != tensor.shape:
            mismatches.append(
                f"tensor {key!r} has shape {tuple(state_dict[key].shape)}, expected {tuple(tensor.shape)}"
            )
        else:
            converted[name] = state_dict[key]
    known = {original_key(name) for name in expected}
    mismatches += [f"unexpected tensor {key!r}" for key in state_dict if key not in known]
    if mismatches:
        hint = ""
        if any(key.startswith(_GENERATOR_PREFIXES) for key in state_dict):
            hint = " It holds generator weights: pass the discriminator checkpoint (D_*.pth), not the generator's (G_*.pth)."
        raise ValueError(
            f"{source} does not fit the discriminator layout (periods {config.periods}, "
            f"{len(config.scale_discriminator_channels)} scale-discriminator convolutions, "
            f"{len(config.period_discriminator_channels)} per period discriminator): {mismatches[0]}"
            + (f"; {len(mismatches) - 1} more mismatches" if len(mismatches) > 1 else "")
            + f".{hint}"
        )
    return converted


def load_original_discriminator(
    checkpoint_path: str | os.PathLike, config: VitsDiscriminatorConfig | None = None
) -> VitsDiscriminator:
    r"""
    Reads an original VITS discriminator checkpoint (e.g. MMS's `D_100000.pth`) into a [`VitsDiscriminator`].

    Args:
        checkpoint_path (`str` or `os.PathLike`):
            The `.pth` file.
        config ([`VitsDiscriminatorConfig`], *optional*):
            Its architecture; the VITS (and MMS) discriminator when unset.

    Returns:
        [`VitsDiscriminator`]: in training mode, with the checkpoint's weights; its logits and feature maps equal
        those of the original network.

    Example:

    ```python
    >>> from kurdish_tts.models.vits.convert_discriminator import load_original_discriminator

    >>> discriminator = load_original_discriminator("D_100000.pth")  # from facebook/mms-tts, full_models/<language>/
    ```
    """
    state_dict = convert_original_state_dict(
        read_original_checkpoint(checkpoint_path), config, source=str(checkpoint_path)
    )
    discriminator = VitsDiscriminator(config or VitsDiscriminatorConfig())
    discriminator.load_state_dict(state_dict, strict=True)
    return discriminator


def convert_discriminator_checkpoint(
    checkpoint_path: str | os.PathLike,
    model_dir: str | os.PathLike,
    config: VitsDiscriminatorConfig | None = None,
) -> VitsDiscriminator:
    r"""
    Converts an original VITS discriminator checkpoint into `discriminator.safetensors` and
    `discriminator_config.json` in `model_dir` (see [`save_discriminator`]), where `VitsForTraining.from_pretrained`
    and `--discriminator auto` find it. `kurdish-tts convert-discriminator SRC DST` runs this.

    Args:
        checkpoint_path (`str` or `os.PathLike`):
            The original `.pth` file, e.g. MMS's `D_100000.pth`.
        model_dir (`str` or `os.PathLike`):
            The folder to write into, typically a local copy of the VITS model the discriminator belongs to; created
            if missing. Existing discriminator files there are replaced.
        config ([`VitsDiscriminatorConfig`], *optional*):
            The discriminator's architecture; the VITS (and MMS) discriminator when unset.

    Returns:
        [`VitsDiscriminator`]: the converted discriminator.
    """
    discriminator = load_original_discriminator(checkpoint_path, config)
    save_discriminator(discriminator, model_dir)
    return discriminator


__all__ = [
    "convert_discriminator_checkpoint",
    "convert_original_state_dict",
    "load_original_discriminator",
    "original_key",
    "read_original_checkpoint",
]
