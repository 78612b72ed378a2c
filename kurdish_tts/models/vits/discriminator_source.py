"""Where the discriminator of a VITS run starts from: `--discriminator auto | none | PATH | hf://OWNER/REPO/FILE`.

MMS publishes its TTS models for inference, so `facebook/mms-tts-<language>` holds only the generator. The
discriminators trained with them are in the `facebook/mms-tts` repository as original VITS checkpoints,
`full_models/<language>/D_100000.pth` (CC BY-NC 4.0, like the models). Fine-tuning against that discriminator, the
one the generator was trained with, spares the pretrained generator the adversarial gradients of a random one.
[`resolve_discriminator_source`] decides which discriminator a run uses, and downloads it when it comes from the Hub;
[`DiscriminatorSource.load`] builds it.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import huggingface_hub
from huggingface_hub import constants
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
)

from .configuration_discriminator import VitsDiscriminatorConfig
from .convert_discriminator import load_original_discriminator
from .modeling_discriminator import (
    DISCRIMINATOR_CONFIG_NAME,
    DISCRIMINATOR_WEIGHTS_NAME,
    VitsDiscriminator,
    load_discriminator,
)

logger = logging.getLogger(__name__)

HUB_PREFIX = "hf://"
MMS_DISCRIMINATOR_REPO = "facebook/mms-tts"
MMS_LICENSE = "CC BY-NC 4.0"
# facebook/mms-tts-<ISO 639-3 code>[-script_<script>], e.g. facebook/mms-tts-kmr-script_latin.
_MMS_MODEL_ID = re.compile(r"facebook/mms-tts-(?P<code>[a-z]{3}(?:-script_[a-z]+)?)")
_CHOICES = (
    "auto, none, a folder holding discriminator.safetensors (e.g. a run's best_model), an original VITS checkpoint "
    "(D_*.pth), or hf://OWNER/REPO/PATH for a file on the Hub"
)


class DiscriminatorSourceError(OSError):
    """The requested discriminator cannot be had; the message says why and what to pass instead."""


@dataclass(frozen=True)
class DiscriminatorSource:
    r"""
    A resolved starting point of the discriminator.

    Args:
        kind (`str`):
            `"fresh"` (random initialization), `"saved"` (a folder written by `save_discriminator`) or `"original"` (an
            original VITS checkpoint such as MMS's `D_100000.pth`, converted when loaded).
        path (`Path`, *optional*):
            The local folder (`"saved"`) or file (`"original"`); `None` for `"fresh"`.
        description (`str`):
            Where it comes from, in plain words, for logs and reports.
        fallback (`bool`, *optional*, defaults to `False`):
            Whether `"auto"` looked for a pretrained discriminator, found none and settled for a fresh one (the
            description says why); logged as a warning.
    """

    kind: str
    path: Path | None
    description: str
    fallback: bool = False

    @property
    def is_fresh(self) -> bool:
        return self.kind == "fresh"

    def load(self, config: VitsDiscriminatorConfig | None = None) -> VitsDiscriminator:
        r"""
        Builds the discriminator.

        Args:
            config ([`VitsDiscriminatorConfig`], *optional*):
                Its architecture. A saved discriminator brings its own config (a given one must agree with it); an
                original checkpoint and a fresh discriminator use the VITS (and MMS) layout when unset.

        Raises:
            `OSError`, `ValueError`: the file is unreadable or does not fit the architecture (the message says which
            tensor).
        """
        if self.kind == "fresh":
            return VitsDiscriminator(config or VitsDiscriminatorConfig())
        if self.kind == "saved":
            return load_discriminator(self.path, config)
        return load_original_discriminator(self.path, config)


def mms_language_code(model_name_or_path: str | os.PathLike | None) -> str | None:
    """The MMS language code of an MMS model id (`facebook/mms-tts-kmr-script_latin` -> `kmr-script_latin`), or `None`
    for anything else. A local folder is never matched, even a copy of an MMS model: its name proves nothing."""
    if model_name_or_path is None or os.path.isdir(model_name_or_path):
        return None
    match = _MMS_MODEL_ID.fullmatch(str(model_name_or_path).strip().rstrip("/"))
    return match.group("code") if match else None


def mms_discriminator_file(code: str) -> str:
    """The path of MMS's discriminator for language `code` inside the `facebook/mms-tts` repository."""
    return f"full_models/{code}/D_100000.pth"


def local_copy_path(repo_id: str, filename: str) -> Path:
    r"""
    Where a Hub file used as a discriminator is looked for on this machine before any download: a copy put there by
    hand (for offline machines) is used as is. The layout mirrors the repository, so that
    `hf download REPO FILE --local-dir <HF_HOME>/kurdish_tts/discriminators/REPO` on a connected machine produces it.
    """
    return Path(constants.HF_HOME) / "kurdish_tts" / "discriminators" / repo_id / filename


def resolve_discriminator_source(
    discriminator: str = "auto", model_name_or_path: str | os.PathLike | None = None
) -> DiscriminatorSource:
    r"""
    Decides which discriminator a run starts from, downloading it when it is a Hub file, and logs the decision.

    `"auto"` takes, in this order: the model folder's own `discriminator.safetensors` (an earlier run's output); for
    an MMS model id (`facebook/mms-tts-<language>`), MMS's pretrained discriminator
    (`facebook/mms-tts`, `full_models/<language>/D_100000.pth`, CC BY-NC 4.0); otherwise a fresh one. A local folder
    without `discriminator.safetensors` is never taken for an MMS model (convert MMS's file into it with
    `kurdish-tts convert-discriminator`).

    Args:
        discriminator (`str`, *optional*, defaults to `"auto"`):
            `"auto"`; `"none"` for a fresh discriminator; a local path: a folder holding `discriminator.safetensors`
            (or that file), or an original VITS checkpoint such as `D_100000.pth`; or `hf://OWNER/REPO/PATH`, a file
            on the Hub of either kind (a `discriminator.safetensors` needs its `discriminator_config.json` beside it).
        model_name_or_path (`str` or `os.PathLike`, *optional*):
            The generator's Hub id or folder; `None` for a random initialization.

    Returns:
        [`DiscriminatorSource`]: what to load; `description` says where it comes from.

    Raises:
        [`DiscriminatorSourceError`]: the source does not exist, or it is on the Hub and the Hub cannot be reached
        (offline mode or no connection) and it is not cached; the message names the local path to put the file at
        and the alternatives.
    """
    spec = str(discriminator).strip()
    if spec == "none":
        source = DiscriminatorSource("fresh", None, "a fresh discriminator (random weights), as asked")
    elif spec == "auto":
        source = _auto(model_name_or_path)
    elif spec.startswith(HUB_PREFIX):
        repo_id, filename = _parse_hub_file(spec)
        licence = f", {MMS_LICENSE}" if repo_id == MMS_DISCRIMINATOR_REPO else ""
        source = _hub_file(repo_id, filename, f"{spec}{licence}")
    else:
        source = _local(spec)
    logger.log(logging.WARNING if source.fallback else logging.INFO, f"discriminator: {source.description}")
    return source


def _auto(model_name_or_path) -> DiscriminatorSource:
    if model_name_or_path is None:
        return DiscriminatorSource("fresh", None, "a fresh discriminator, as the generator starts from random weights")
    if os.path.isdir(model_name_or_path):
        weights = Path(model_name_or_path) / DISCRIMINATOR_WEIGHTS_NAME
        if weights.is_file():
            return DiscriminatorSource("saved", weights.parent, f"the model's own, {weights}")
        return _fresh_because(
            f"{model_name_or_path} has no {DISCRIMINATOR_WEIGHTS_NAME}, and a local folder is not recognised as an "
            "MMS model; if it is a copy of one, convert MMS's discriminator into it with kurdish-tts "
            f"convert-discriminator D_100000.pth {model_name_or_path}"
        )
    code = mms_language_code(model_name_or_path)
    if code is None:
        return _fresh_because(
            f"{model_name_or_path} is not an MMS model (facebook/mms-tts-<language>), so no pretrained discriminator "
            "is known for it; pass --discriminator PATH or hf://OWNER/REPO/FILE if there is one"
        )
    filename = mms_discriminator_file(code)
    what = f"MMS's pretrained discriminator for {code} ({MMS_DISCRIMINATOR_REPO}, {filename}, {MMS_LICENSE})"
    source = _hub_file(MMS_DISCRIMINATOR_REPO, filename, what, missing_ok=True)
    if source is None:
        return _fresh_because(f"{MMS_DISCRIMINATOR_REPO} has no {filename}: MMS published no discriminator for {code}")
    return source


def _fresh_because(reason: str) -> DiscriminatorSource:
    return DiscriminatorSource("fresh", None, f"a fresh discriminator: {reason}", fallback=True)


def _local(spec: str) -> DiscriminatorSource:
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / DISCRIMINATOR_WEIGHTS_NAME).is_file():
            raise DiscriminatorSourceError(
                f"--discriminator {spec}: the folder holds no {DISCRIMINATOR_WEIGHTS_NAME}; convert an original "
                f"checkpoint into it with kurdish-tts convert-discriminator D_100000.pth {spec}, or pass {_CHOICES}"
            )
        return DiscriminatorSource("saved", path, str(path / DISCRIMINATOR_WEIGHTS_NAME))
    if not path.is_file():
        raise DiscriminatorSourceError(f"--discriminator {spec}: no such file or folder; pass {_CHOICES}")
    return _file_source(path, spec)


def _file_source(path: Path, what: str) -> DiscriminatorSource:
    if path.name == DISCRIMINATOR_WEIGHTS_NAME:
        return DiscriminatorSource("saved", path.parent, what)
    if path.suffix == ".safetensors":
        raise DiscriminatorSourceError(
            f"{what}: discriminator weights in safetensors are read as {DISCRIMINATOR_WEIGHTS_NAME} with "
            f"{DISCRIMINATOR_CONFIG_NAME} beside it (what training saves); rename it, or pass {_CHOICES}"
        )
    return DiscriminatorSource("original", path, f"{what}, an original VITS checkpoint, converted")


def _parse_hub_file(spec: str) -> tuple[str, str]:
    parts = spec[len(HUB_PREFIX) :].strip("/").split("/")
    if len(parts) < 3 or not all(parts):
        raise DiscriminatorSourceError(
            f"--discriminator {spec}: a Hub file is hf://OWNER/REPO/PATH, e.g. "
            f"hf://{MMS_DISCRIMINATOR_REPO}/{mms_discriminator_file('kmr-script_latin')}"
        )
    return "/".join(parts[:2]), "/".join(parts[2:])


def _hub_file(repo_id: str, filename: str, what: str, *, missing_ok: bool = False) -> DiscriminatorSource | None:
    """A discriminator file on the Hub: the local copy if there is one, else the Hub's (from the cache when offline).
    `None` when the Hub says the repository or file does not exist and `missing_ok`."""
    local = local_copy_path(repo_id, filename)
    if local.is_file():
        return _file_source(local, f"{what}, from the local copy {local}")
    # A saved discriminator is two files; its config is fetched first, so that a missing one is reported as such.
    names = [filename]
    if Path(filename).name == DISCRIMINATOR_WEIGHTS_NAME:
        names.insert(0, str(Path(filename).with_name(DISCRIMINATOR_CONFIG_NAME)))
    try:
        paths = [huggingface_hub.hf_hub_download(repo_id=repo_id, filename=name) for name in names]
    # Offline mode, or no connection, and not in the cache. A subclass of EntryNotFoundError, hence first.
    except (LocalEntryNotFoundError, ConnectionError) as error:
        raise DiscriminatorSourceError(_offline_message(repo_id, filename, what, local, error)) from error
    except (EntryNotFoundError, RepositoryNotFoundError) as error:
        if missing_ok:
            return None
        raise DiscriminatorSourceError(
            f"{what}: the Hub has no {repo_id}/{filename} ({type(error).__name__}); pass {_CHOICES}"
        ) from error
    except HfHubHTTPError as error:
        raise DiscriminatorSourceError(
            f"{what}: downloading {repo_id}/{filename} failed ({str(error).splitlines()[0]}); try again, or pass "
            "--discriminator none for a fresh discriminator"
        ) from error
    return _file_source(Path(paths[-1]), what)


def _offline_message(repo_id: str, filename: str, what: str, local: Path, error: Exception) -> str:
    reason = "offline mode, HF_HUB_OFFLINE=1" if constants.HF_HUB_OFFLINE else "no connection"
    url = f"{constants.ENDPOINT}/{repo_id}/resolve/main/{filename}"
    beside = f" (and its {DISCRIMINATOR_CONFIG_NAME} beside it)" if local.name == DISCRIMINATOR_WEIGHTS_NAME else ""
    return (
        f"{what} is not on this machine, and the Hugging Face Hub cannot be reached ({reason}). Either:\n"
        f"  - put a copy of {url}{beside} at\n      {local}\n    where it is looked for before any download,\n"
        "  - or pass a copy elsewhere: --discriminator PATH (the file itself, or a folder it was converted into with "
        "kurdish-tts convert-discriminator),\n"
        "  - or train a fresh discriminator: --discriminator none"
    )


__all__ = [
    "DiscriminatorSource",
    "DiscriminatorSourceError",
    "HUB_PREFIX",
    "MMS_DISCRIMINATOR_REPO",
    "local_copy_path",
    "mms_discriminator_file",
    "mms_language_code",
    "resolve_discriminator_source",
]
