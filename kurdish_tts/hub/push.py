"""Publish a trained model to the Hugging Face Hub: the model, its generated card, the audio sample and the curves.

What is uploaded is staged first, as a folder that is exactly the repository's new content: the model folder's
weights, config and tokenizer files (plus `discriminator.safetensors` when asked, for further fine-tuning), the
`README.md` model card, `sample.wav` and `loss_curve.png`. Never uploaded: `training_args.bin` (a pickle of the run's
arguments, which can hold a Hub token), optimizer and RNG states, and the run's bookkeeping (`best_model.json`,
`trainer_state.json`, ...; what the card needs from them is in the card). `dry_run=True` stops after staging.

The token comes from where huggingface_hub looks (the `token` argument, `HF_TOKEN`, the file `hf auth login`
writes). It is never printed or logged, and the staged files are checked not to contain it before anything is sent.
Transient failures (connection errors, timeouts, HTTP 408/429/5xx) are retried with exponential backoff; an
authentication or permission error (401/403) or a missing repository fails at once, with what to do.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from huggingface_hub import HfApi, get_token
from huggingface_hub.errors import HfHubHTTPError, HFValidationError
from huggingface_hub.utils import validate_repo_id

from ..atomic import write_text_atomically
from ..errors import UserError
from .card import LOSS_CURVE_NAME, SAMPLE_NAME, RunFiles, build_model_card, find_run_files

logger = logging.getLogger(__name__)

T = TypeVar("T")

TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
MODEL_FILE_SUFFIXES = (".json", ".safetensors", ".txt", ".model")
# What only further training needs (the discriminator, the training geometry), published on request.
DISCRIMINATOR_FILES = frozenset({"discriminator.safetensors", "discriminator_config.json", "training_config.json"})
# The run's bookkeeping, which can sit in a model folder (a run's final model is at the run's top).
RUN_FILES = frozenset(
    {
        "best_model.json",
        "trainer_state.json",
        "run_summary.json",
        "budget.json",
        "data_split.json",
        "quarantine.json",
        "all_results.json",
        "eval_results.json",
        "train_results.json",
    }
)
DEFAULT_UPLOAD_DIR = "hub_upload"


class HubPushError(UserError, RuntimeError):
    """Publishing failed; the message says why and what to do, and never holds the token (exit status 1)."""

    exit_code = 1


class HubUsageError(HubPushError):
    """Publishing cannot start: bad arguments, no token, an occupied upload folder (exit status 2)."""

    exit_code = 2


@dataclass
class HubPushRequest:
    """A push asked for on the training command line, to run once training is done.

    Args:
        repo_id (`str`): `namespace/name`, or a bare name for the token owner's namespace.
        private (`bool`, *optional*): Visibility of a repository this push creates.
        include_discriminator (`bool`, *optional*, defaults to `False`): Also publish the discriminator.
        token (`str`, *optional*): A token given on the command line (`--hub_token`); kept out of `repr`.
    """

    repo_id: str
    private: bool | None = None
    include_discriminator: bool = False
    token: str | None = field(default=None, repr=False)


@dataclass
class PushResult:
    """What a push (or a dry run) did.

    Args:
        repo_id (`str`): The repository, with its namespace once the Hub has answered.
        folder (`Path`, *optional*): The staged folder (kept after a dry run; gone after a push without
            `upload_dir`).
        files (`list[str]`): The repository paths uploaded (or that would be).
        url (`str`, *optional*): The repository's page.
        commit (`str`, *optional*): The commit id.
        dry_run (`bool`): Nothing was sent.
    """

    repo_id: str
    folder: Path | None
    files: list[str]
    url: str | None = None
    commit: str | None = None
    dry_run: bool = False


def check_repo_id(repo_id: str) -> None:
    """Raise [`HubUsageError`] unless `repo_id` is `name` or `namespace/name` as the Hub accepts them."""
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise HubUsageError(f"{repo_id!r} is not a Hub repository id ({error}); use namespace/name") from None


def take_hub_push(training_args, include_discriminator: bool = False) -> HubPushRequest | None:
    """Turn the `TrainingArguments` push settings into a push at the end of the run, and off for the Trainer.

    With `push_to_hub=True` the stock Trainer creates the repository when it starts and uploads every checkpoint
    (`hub_strategy`). A run of this package publishes once, at the end: the best model with its card, which needs the
    finished run's files. So `push_to_hub` is switched off in the arguments, and `hub_token` is removed from them:
    the Trainer pickles its arguments into every checkpoint (`training_args.bin`), where a token must not end up.

    Returns:
        [`HubPushRequest`] or `None` when no push was asked for.
    """
    if not training_args.push_to_hub:
        return None
    repo_id = training_args.hub_model_id or Path(training_args.output_dir).absolute().name
    check_repo_id(repo_id)
    request = HubPushRequest(
        repo_id=repo_id,
        private=training_args.hub_private_repo,
        include_discriminator=include_discriminator,
        token=training_args.hub_token,
    )
    training_args.push_to_hub = False
    training_args.hub_token = None
    return request


def stage_upload_folder(
    run: RunFiles,
    folder: str | os.PathLike,
    repo_id: str,
    *,
    include_discriminator: bool = False,
    license: str | None = None,
    datasets: list[str] | None = None,
) -> list[str]:
    """Write the repository's content into `folder` (created; must not exist): model files, `README.md`, sample and
    training curves. Returns the file names."""
    folder = Path(folder)
    folder.mkdir(parents=True)
    for source in sorted(run.model_dir.iterdir()):
        if source.is_file() and _publishable(source.name, include_discriminator):
            shutil.copyfile(source, folder / source.name)
    if include_discriminator and not (folder / "discriminator.safetensors").is_file():
        raise HubUsageError(f"--include_discriminator: {run.model_dir} has no discriminator.safetensors")
    for extra, name in ((run.sample, SAMPLE_NAME), (run.loss_curve, LOSS_CURVE_NAME)):
        if extra is not None:
            shutil.copyfile(extra, folder / name)
    card = build_model_card(run, repo_id, license=license, datasets=datasets)
    write_text_atomically(folder / "README.md", str(card))
    return sorted(path.name for path in folder.iterdir())


def push_to_hub(
    path: str | os.PathLike,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool | None = None,
    include_discriminator: bool = False,
    dry_run: bool = False,
    upload_dir: str | os.PathLike | None = None,
    license: str | None = None,
    datasets: list[str] | None = None,
    evaluation: str | os.PathLike | None = None,
    commit_message: str | None = None,
    max_retries: int = 3,
    retry_wait: float = 2.0,
    endpoint: str | None = None,
) -> PushResult:
    """Publish the model of a training run (or a model folder) with a generated model card.

    Args:
        path (`str` or `os.PathLike`):
            A run folder (its `best_model/` is published) or a model folder.
        repo_id (`str`):
            `namespace/name`, or a bare name for the token owner's namespace.
        token (`str`, *optional*):
            Defaults to huggingface_hub's (`HF_TOKEN`, or `hf auth login`).
        private (`bool`, *optional*):
            Visibility of a repository this push creates; an existing repository keeps its visibility.
        include_discriminator (`bool`, *optional*, defaults to `False`):
            Also publish `discriminator.safetensors`, for whoever fine-tunes the model further.
        dry_run (`bool`, *optional*, defaults to `False`):
            Stage the folder (into `upload_dir`, default `<run>/hub_upload`) and send nothing.
        upload_dir (`str` or `os.PathLike`, *optional*):
            Where to stage. It must not exist or be empty; the default folder is replaced.
        license (`str`, *optional*):
            Overrides the licence inherited from the base model.
        datasets (`list[str]`, *optional*):
            Hub dataset ids for the card's metadata.
        evaluation (`str` or `os.PathLike`, *optional*):
            An `evaluation.json` from `scripts/evaluate.py` for the card (default: `<run>/evaluation/`).
        commit_message (`str`, *optional*):
            Defaults to one naming the step and metric of the published model.
        max_retries (`int`, *optional*, defaults to `3`):
            Retries of each Hub call after a transient failure.
        retry_wait (`float`, *optional*, defaults to `2.0`):
            Seconds before the first retry, doubled for each further one.
        endpoint (`str`, *optional*):
            The Hub's URL; defaults to huggingface_hub's (`HF_ENDPOINT`).

    Returns:
        [`PushResult`]

    Raises:
        [`HubUsageError`]: bad arguments, no token, or an occupied upload folder.
        [`HubPushError`]: the Hub refused or kept failing.
        `kurdish_tts.hub.RunFilesError`: `path` holds no model.
    """
    check_repo_id(repo_id)
    if max_retries < 0 or retry_wait < 0:
        raise HubUsageError(f"max_retries and retry_wait must be >= 0, got {max_retries} and {retry_wait}")
    run = find_run_files(path, evaluation)
    token = token or get_token()
    if dry_run:
        folder = _upload_folder_path(run, upload_dir)
        # Checked before the staged folder is put in place: a dry run must not leave a file holding the token either.
        files = _stage(
            run, folder, repo_id, include_discriminator, license, datasets, replace=upload_dir is None, token=token
        )
        return PushResult(repo_id=repo_id, folder=folder, files=files, dry_run=True)
    if token is None:
        raise HubUsageError(
            "no Hugging Face token: log in with `hf auth login` (or set HF_TOKEN) with a token that may write to "
            f"{repo_id}, or try the upload with --dry_run first"
        )

    def retried(call: Callable[[], T], what: str) -> T:
        return _with_retries(call, what, attempts=max_retries + 1, wait=retry_wait, token=token)

    api = HfApi(endpoint=endpoint, token=token)
    with tempfile.TemporaryDirectory(prefix="kurdish_tts_hub_") as scratch:
        if upload_dir is None:
            folder = Path(scratch) / DEFAULT_UPLOAD_DIR
            files = stage_upload_folder(
                run, folder, repo_id, include_discriminator=include_discriminator, license=license, datasets=datasets
            )
        else:
            folder = Path(upload_dir)
            files = _stage(run, folder, repo_id, include_discriminator, license, datasets, replace=False, token=token)
        _check_no_token(folder, token)
        user = retried(api.whoami, "checking the token")
        logger.info(f"publishing as {user.get('name')} to {repo_id}")
        repo = retried(lambda: api.create_repo(repo_id, private=private, exist_ok=True), f"creating {repo_id}")
        full_id = repo.repo_id
        commit = retried(
            lambda: api.upload_folder(
                repo_id=full_id,
                folder_path=folder,
                commit_message=commit_message or _commit_message(run),
            ),
            f"uploading {len(files)} files to {full_id}",
        )
    return PushResult(
        repo_id=full_id,
        folder=None if upload_dir is None else folder,
        files=files,
        url=f"{api.endpoint}/{full_id}",
        commit=commit.oid,
    )


def _publishable(name: str, include_discriminator: bool) -> bool:
    if name.startswith(".") or name in RUN_FILES or not name.endswith(MODEL_FILE_SUFFIXES):
        return False
    return include_discriminator or name not in DISCRIMINATOR_FILES


def _upload_folder_path(run: RunFiles, upload_dir: str | os.PathLike | None) -> Path:
    if upload_dir is not None:
        return Path(upload_dir)
    return (run.run_dir or run.model_dir.parent) / DEFAULT_UPLOAD_DIR


def _stage(
    run, folder: Path, repo_id, include_discriminator, license, datasets, *, replace: bool, token: str | None = None
) -> list[str]:
    """Stage into `folder` through a sibling temporary folder, so that it appears complete or not at all, and not at
    all when a staged file holds `token`."""
    if folder.exists() and any(folder.iterdir()) and not replace:
        raise HubUsageError(f"the upload folder {folder} is not empty; remove it or choose another --upload_dir")
    folder.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent)) / "staged"
    try:
        files = stage_upload_folder(
            run, temporary, repo_id, include_discriminator=include_discriminator, license=license, datasets=datasets
        )
        if token is not None:
            _check_no_token(temporary, token)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(temporary, folder)
    finally:
        shutil.rmtree(temporary.parent, ignore_errors=True)
    return files


def _check_no_token(folder: Path, token: str) -> None:
    # Defence in depth: nothing the package stages should hold a token, and a leaked token is expensive.
    leaking = [path.name for path in folder.iterdir() if path.is_file() and token.encode() in path.read_bytes()]
    if leaking:
        raise HubPushError(
            f"refusing to upload: {', '.join(leaking)} contain(s) your Hugging Face token; remove it from those files"
        )


def _commit_message(run: RunFiles) -> str:
    best = run.best_model or {}
    if best.get("step") is not None and best.get("metric"):
        return (
            f"kurdish_tts: model of step {best['step']} ({best['metric']} = {best['value']:.4g}) with its model card"
        )
    return "kurdish_tts: model with its model card"


def _with_retries(call: Callable[[], T], what: str, *, attempts: int, wait: float, token: str | None) -> T:
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except Exception as error:
            if not _is_transient(error):
                raise HubPushError(_redact(_explain(error, what), token)) from None
            if attempt == attempts:
                raise HubPushError(
                    _redact(
                        f"{what} failed {attempts} times; the last error: {_describe(error)}. The Hub may be "
                        "down or unreachable: try again later (the model files are unchanged)",
                        token,
                    )  # fmt: skip
                ) from None
            delay = wait * 2 ** (attempt - 1)
            logger.warning(
                _redact(
                    f"{what} failed ({_describe(error)}); retrying in {delay:g} s ({attempt}/{attempts - 1})", token
                )
            )
            time.sleep(delay)
    raise AssertionError("unreachable")


def _is_transient(error: Exception) -> bool:
    if isinstance(error, HfHubHTTPError):
        response = error.response
        return response is not None and response.status_code in TRANSIENT_STATUS
    if isinstance(error, ConnectionError | TimeoutError):
        return True
    # huggingface_hub's HTTP client (httpx, or its httpx2 fork in huggingface_hub 2) raises network errors of its own
    # hierarchy; matched by name so that either works.
    return any(cls.__name__ in {"TransportError", "TimeoutException", "NetworkError"} for cls in type(error).__mro__)


def _explain(error: Exception, what: str) -> str:
    status = error.response.status_code if isinstance(error, HfHubHTTPError) and error.response is not None else None
    if status == 401:
        return (
            f"{what} failed: the Hub refused the token (HTTP 401: invalid or expired). Log in again with "
            "`hf auth login`, or set HF_TOKEN to a valid token"
        )
    if status == 403:
        return (
            f"{what} failed: the token may not write there (HTTP 403). Use a token with write access to the "
            "namespace (a fine-grained token needs write permission on it), or push to your own namespace"
        )
    if status == 404:
        return f"{what} failed: not found (HTTP 404): check the repository id and that the namespace exists"
    return f"{what} failed: {_describe(error)}"


def _describe(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def _redact(text: str, token: str | None) -> str:
    return text.replace(token, "***") if token else text
