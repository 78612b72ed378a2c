"""Where a feedback fine-tune starts: the model, and the training run whose data it replays and whose held-out clips
are its regression set.

A `scripts/train_vits.py` run leaves in its folder the held-out clips (`data_split.json`) and, in `run_summary.json`,
the arguments it was trained with. The first fine-tune reads them from the run; every version of the store records
them (`Lineage.record`), so that later fine-tunes replay the same data and compare on the same clips, even with the
run folder gone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError
from ..runs.training_run import SPLIT_NAME, SUMMARY_NAME
from .arguments import FeedbackArguments
from .store import FeedbackStore
from .versions import ModelVersions

# The voice choices of the original run that replaying its data must repeat.
_MODEL_RECORD_KEYS = ("speaker", "multi_speaker", "min_speaker_clips", "speaker_embedding_size")
# What a version's record keeps of its lineage (`Lineage.record`).
_LINEAGE_RECORD_KEYS = ("run_dir", "data_arguments", "model_arguments", "regression_ids", "split_seed")


@dataclass
class Lineage:
    """Where a feedback fine-tune starts: the model, and the training run whose data it replays.

    Args:
        model_dir (`Path`):
            The start model's folder.
        version (`str` or `None`):
            Its version in the store; `None` for a folder that is imported as a version when training starts.
        run_dir (`str`):
            The original training run.
        data_arguments (`dict` or `None`):
            The run's `DataArguments` (from its `run_summary.json`); `None` for runs that predate that record.
        model_arguments (`dict`):
            The run's voice choices (`speaker`, `multi_speaker`, ...).
        regression_ids (`list[str]`):
            The run's held-out clips.
        split_seed (`int` or `None`):
            The seed that chose them.
    """

    model_dir: Path
    version: str | None
    run_dir: str
    data_arguments: dict | None
    model_arguments: dict
    regression_ids: list[str]
    split_seed: int | None = None

    def record(self) -> dict:
        """What a version made from this lineage records, so that its own fine-tunes find the same data."""
        return {key: getattr(self, key) for key in _LINEAGE_RECORD_KEYS}


def find_last_run(runs_dir: str | Path) -> Path | None:
    """The run folder in `runs_dir` whose `run_summary.json` is the newest, among those with a `best_model/`."""
    runs = [path.parent for path in Path(runs_dir).glob(f"*/{SUMMARY_NAME}") if (path.parent / "best_model").is_dir()]
    return max(runs, key=lambda run: (run / SUMMARY_NAME).stat().st_mtime, default=None)


def read_run(run_dir: str | Path) -> dict:
    """The lineage fields a training run folder provides: its held-out split and, when recorded, its arguments."""
    run_dir = Path(run_dir)
    split_path = run_dir / SPLIT_NAME
    try:
        split = json.loads(split_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(
            f"{run_dir} has no {SPLIT_NAME}: the regression set is the held-out clips of a scripts/train_vits.py run; "
            "pass that run's folder with --run_dir"
        ) from None
    try:
        arguments = json.loads((run_dir / SUMMARY_NAME).read_text(encoding="utf-8")).get("arguments") or {}
    except FileNotFoundError:
        arguments = {}
    model = arguments.get("model") or {}
    return {
        "run_dir": str(run_dir),
        "data_arguments": arguments.get("data"),
        "model_arguments": {key: model[key] for key in _MODEL_RECORD_KEYS if key in model},
        "regression_ids": list(split["eval_ids"]),
        "split_seed": split.get("seed"),
    }


def resolve_lineage(store: FeedbackStore, feedback_args: FeedbackArguments) -> Lineage:
    """Find the start model and its run (reads only; the import into the store happens when training starts)."""
    versions = ModelVersions(store)
    model_dir = feedback_args.model_dir
    run_dir = feedback_args.run_dir
    if model_dir is None and versions.current() is not None:
        model_dir = versions.current_path()
    elif model_dir is None:
        last = find_last_run(feedback_args.runs_dir)
        if last is None:
            raise UsageError(
                f"nothing to start from: {store.root} has no model yet and {feedback_args.runs_dir}/ holds no finished "
                "training run (a folder with run_summary.json and best_model/). Train one with scripts/train_vits.py, "
                "or pass --model_dir and --run_dir"
            )
        model_dir = last / "best_model"
        run_dir = run_dir or str(last)
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise UsageError(f"--model_dir {model_dir} is not a model folder (it has no config.json)")
    version = versions.find(model_dir)
    if version is not None:
        model_dir = versions.path(version)
    recorded = versions.record(version) if version is not None else {}
    if run_dir is not None:
        fields = read_run(run_dir)
    elif recorded.get("regression_ids"):
        fields = {key: recorded.get(key) for key in _LINEAGE_RECORD_KEYS}
    elif (model_dir.resolve().parent / SPLIT_NAME).is_file():
        fields = read_run(model_dir.resolve().parent)
    else:
        raise UsageError(
            f"which training run does {model_dir} come from? Pass --run_dir: the run folder whose data_split.json "
            "holds the held-out clips (the regression set) and whose data is replayed"
        )
    fields["model_arguments"] = fields.get("model_arguments") or {}
    return Lineage(model_dir=model_dir, version=version, **fields)
