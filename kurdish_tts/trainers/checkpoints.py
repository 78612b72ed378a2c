"""Which checkpoint folders of a run are complete, so that a resume never starts from half of one.

The Trainer writes a checkpoint file by file into `checkpoint-N/` (weights, optimizer, scheduler, RNG states) and
`trainer_state.json` last. A run killed in between leaves a folder that `transformers.trainer_utils.get_last_checkpoint`
still returns, since it looks at names only, and resuming from it crashes on the first missing file. `checkpoint_problem`
says what is wrong with a folder; `latest_complete_checkpoint` is `get_last_checkpoint` over complete folders only.
"""

from __future__ import annotations

import json
import os
import re
import struct
from pathlib import Path

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

TRAINER_STATE_NAME = "trainer_state.json"
INCOMPLETE_PREFIX = "incomplete-"
_CHECKPOINT_NAME = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")
# A checkpoint's model, in one of the forms `Trainer.save_model` writes.
_WEIGHT_NAMES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


def checkpoint_step(folder: str | os.PathLike) -> int | None:
    """The step in a `checkpoint-N` folder's name, or `None` for another name."""
    match = _CHECKPOINT_NAME.match(Path(folder).name)
    return int(match.group(1)) if match else None


def checkpoint_problem(folder: str | os.PathLike) -> str | None:
    """What makes `folder` unusable to resume from, or `None` when it is a complete checkpoint.

    Cheap: it reads `trainer_state.json` and the headers of the safetensors files, never the tensors.
    """
    folder = Path(folder)
    state_path = folder / TRAINER_STATE_NAME
    if not state_path.is_file():
        return f"it has no {TRAINER_STATE_NAME}, which the Trainer writes last: the run stopped while writing it"
    try:
        state = json.loads(state_path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as error:
        return f"its {TRAINER_STATE_NAME} is unreadable or cut short ({error})"
    step = checkpoint_step(folder)
    if step is not None and state.get("global_step") != step:
        return f"its {TRAINER_STATE_NAME} is for step {state.get('global_step')}, not {step}"
    weights = [name for name in _WEIGHT_NAMES if (folder / name).is_file()]
    if not weights:
        return "it holds no model weights (model.safetensors)"
    for path in sorted(folder.glob("*.safetensors")):
        problem = _safetensors_problem(path)
        if problem is not None:
            return f"{path.name} {problem}"
    return None


def latest_complete_checkpoint(output_dir: str | os.PathLike) -> tuple[Path | None, list[tuple[Path, str]]]:
    """The complete `checkpoint-N` folder of `output_dir` with the highest step, and the incomplete ones above it,
    each with its problem (newest first). `(None, [...])` when none is complete."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return None, []
    folders = sorted(
        (path for path in output_dir.iterdir() if checkpoint_step(path) is not None and path.is_dir()),
        key=checkpoint_step,
        reverse=True,
    )
    skipped = []
    for folder in folders:
        problem = checkpoint_problem(folder)
        if problem is None:
            return folder, skipped
        skipped.append((folder, problem))
    return None, skipped


def set_aside(folder: str | os.PathLike) -> Path:
    """Rename an incomplete checkpoint to `incomplete-checkpoint-N` (with a number when that exists), out of the way of
    the Trainer, which would count it among the checkpoints it rotates. Nothing is deleted. Returns the new path."""
    folder = Path(folder)
    target = folder.with_name(INCOMPLETE_PREFIX + folder.name)
    number = 1
    while target.exists():
        number += 1
        target = folder.with_name(f"{INCOMPLETE_PREFIX}{folder.name}.{number}")
    os.replace(folder, target)
    return target


def _safetensors_problem(path: Path) -> str | None:
    # The format: an 8-byte little-endian header size, a JSON header whose entries give byte ranges, then the data.
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            (header_size,) = struct.unpack("<Q", handle.read(8))
            if 8 + header_size > size:
                return "is cut short"
            header = json.loads(handle.read(header_size))
        ends = [entry["data_offsets"][1] for name, entry in header.items() if name != "__metadata__"]
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError, struct.error) as error:
        return f"is unreadable ({error})"
    if 8 + header_size + max(ends, default=0) > size:
        return "is cut short"
    return None
