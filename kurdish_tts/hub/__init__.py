"""Publishing to the Hugging Face Hub: a model card written from the training run, and a retried, token-safe push.

- `card.py`: `find_run_files` (what a run left behind) and `build_model_card` (a `huggingface_hub.ModelCard`);
- `push.py`: `push_to_hub` (stage the exact repository content, then upload it), `take_hub_push` (the training
  script's `--push_to_hub`).
"""

from .card import RunFiles, RunFilesError, base_model_of, build_model_card, find_run_files, resolve_license
from .push import (
    HubPushError,
    HubPushRequest,
    HubUsageError,
    PushResult,
    check_repo_id,
    push_to_hub,
    stage_upload_folder,
    take_hub_push,
)

__all__ = [
    "HubPushError",
    "HubPushRequest",
    "HubUsageError",
    "PushResult",
    "RunFiles",
    "RunFilesError",
    "base_model_of",
    "build_model_card",
    "check_repo_id",
    "find_run_files",
    "push_to_hub",
    "resolve_license",
    "stage_upload_folder",
    "take_hub_push",
]
