"""Every supported corpus format, read into one schema.

Each loader returns a `LoadedSource` whose `dataset` has exactly the columns of `SOURCE_FEATURES`:

| column | type | meaning |
| --- | --- | --- |
| `id` | string | unique sample id (file stem, Common Voice clip name, or `<row index>` for Hub datasets without one) |
| `audio` | struct `{bytes, path}` | the layout of `Audio(decode=False)`, decoded later by soundfile (never torchcodec) |
| `text` | string | the transcript as the source gives it (normalization happens in preprocessing) |
| `speaker` | string | speaker label (Common Voice `client_id`, a metadata column, or the `default_speaker`) |

Rows are never silently lost here: a row whose audio is missing stays in (preprocessing drops and reports it), and
rows removed on purpose (Common Voice vote filter) are counted in `LoadedSource.filtered`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import datasets
from datasets import Audio, Dataset, Features, Value

from ..errors import InputFileError, read_json_lines, read_text

# The audio column has the Arrow layout of `Audio(decode=False)` ({"bytes", "path"}) but is declared as a plain struct:
# datasets >= 4 imports torchcodec to *encode* any `Audio` value, even a bare path, and this package avoids torchcodec.
AUDIO_FEATURE = {"bytes": Value("binary"), "path": Value("string")}
SOURCE_FEATURES = Features(
    {"id": Value("string"), "audio": AUDIO_FEATURE, "text": Value("string"), "speaker": Value("string")}
)
DEFAULT_HUB_DATASET = "amedcj/kurmanji-commonvoice"
DEFAULT_SPEAKER = "speaker_0"
COMMON_VOICE_SPLITS = ("validated", "train", "dev", "test", "other", "invalidated")


class DataSourceError(InputFileError):
    """A data source cannot be read; the message says what was expected and how to fix it."""


@dataclass
class LoadedSource:
    """A source read into the common schema.

    Args:
        dataset (`datasets.Dataset`):
            Rows with the columns of `SOURCE_FEATURES`.
        kind (`str`):
            `ljspeech`, `common_voice`, `hf_dataset`, `disk`, `parquet` or `audiofolder`.
        location (`str`):
            Folder, file or Hub id it came from.
        fingerprint (`str`):
            Changes whenever the rows, the audio files (size and modification time) or the loader options change;
            part of the preprocessing cache key.
        filtered (`dict[str, int]`):
            Rows removed on purpose, by reason (e.g. `{"votes": 12}`).
    """

    dataset: Dataset
    kind: str
    location: str
    fingerprint: str
    filtered: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict:
        return {
            "kind": self.kind,
            "location": self.location,
            "rows": len(self.dataset),
            "filtered": dict(self.filtered),
            "fingerprint": self.fingerprint,
        }


def _hash(*parts) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(json.dumps(part, sort_keys=True, ensure_ascii=False, default=str).encode())
    return digest.hexdigest()[:16]


def _file_signature(path: str) -> tuple:
    try:
        stat = os.stat(path)
    except OSError:
        return (path, None, None)
    return (path, stat.st_size, stat.st_mtime_ns)


def _from_rows(rows: dict[str, list], kind: str, location: str, options: dict, filtered: dict | None = None):
    # The fingerprint covers the audio files' size and mtime as well as the metadata, so re-recording a clip
    # under the same name invalidates the cache.
    signatures = [_file_signature(path) for path in rows["audio"]]
    fingerprint = _hash(kind, options, rows["id"], rows["text"], rows["speaker"], signatures)
    audio = [{"path": path, "bytes": None} for path in rows["audio"]]
    dataset = Dataset.from_dict({**rows, "audio": audio}, features=SOURCE_FEATURES)
    return LoadedSource(dataset, kind, location, fingerprint, dict(filtered or {}))


def load_ljspeech(directory: str | os.PathLike, *, default_speaker: str = DEFAULT_SPEAKER) -> LoadedSource:
    """Read an LJSpeech-style folder: `metadata.csv` + `wavs/`.

    `metadata.csv` has no header and `|`-separated lines `file|text`, `file|text|normalized_text` or (this package's
    extension for multi-speaker corpora) `file|text|normalized_text|speaker`. `file` is a name without extension
    looked up in `wavs/` as `.wav`, `.flac`, `.ogg` or `.mp3`, or a relative path with extension. A non-empty
    `normalized_text` is what is spoken, so it is the text used for training.
    """
    root = Path(directory)
    metadata = root / "metadata.csv"
    if not metadata.is_file():
        raise DataSourceError(f"{root} is not an LJSpeech folder: {metadata} is missing (expected lines `file|text`)")
    rows: dict[str, list] = {"id": [], "audio": [], "text": [], "speaker": []}
    seen: Counter = Counter()
    for line in read_text(metadata, error=DataSourceError).split("\n"):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        fields = line.split("|")
        name = fields[0].strip()
        text = fields[1] if len(fields) > 1 else ""
        if len(fields) > 2 and fields[2].strip():
            text = fields[2]
        speaker = fields[3].strip() if len(fields) > 3 and fields[3].strip() else default_speaker
        sample_id = Path(name).stem if Path(name).suffix else name
        seen[sample_id] += 1
        if seen[sample_id] > 1:
            # Ids must stay unique (quarantine lists and reports refer to them); keep the row, mark the repeat.
            sample_id = f"{sample_id}#{seen[sample_id]}"
        rows["id"].append(sample_id)
        rows["audio"].append(str(_resolve_ljspeech_audio(root, name)))
        rows["text"].append(text.strip())
        rows["speaker"].append(speaker)
    if not rows["id"]:
        raise DataSourceError(f"{metadata} has no rows; expected lines `file|text`")
    return _from_rows(rows, "ljspeech", str(root), {"default_speaker": default_speaker})


def _resolve_ljspeech_audio(root: Path, name: str) -> Path:
    candidate = root / name
    if candidate.suffix and candidate.is_file():
        return candidate
    for folder in (root / "wavs", root):
        for suffix in (".wav", ".flac", ".ogg", ".mp3"):
            path = folder / f"{name}{suffix}"
            if path.is_file():
                return path
    # Missing audio stays in the dataset so that preprocessing reports it instead of the row vanishing.
    return root / "wavs" / f"{name}.wav"


def load_common_voice(
    directory: str | os.PathLike,
    *,
    split: str = "validated",
    min_up_votes: int = 2,
    max_down_votes: int = 0,
) -> LoadedSource:
    """Read a Mozilla Common Voice release folder (`validated.tsv`, `train.tsv`, … + `clips/*.mp3`).

    Keeps rows with `up_votes >= min_up_votes` and `down_votes <= max_down_votes`; `client_id` becomes the speaker.
    Several splits can be joined with `+` (e.g. `"train+dev"`).
    """
    root = Path(directory)
    rows: dict[str, list] = {"id": [], "audio": [], "text": [], "speaker": []}
    filtered: Counter = Counter()
    for name in split.split("+"):
        table = root / f"{name}.tsv"
        if not table.is_file():
            present = sorted(p.stem for p in root.glob("*.tsv"))
            raise DataSourceError(
                f"{table} not found: not a Common Voice release folder, or no split {name!r} "
                f"(present: {', '.join(present) or 'no .tsv files'})"
            )
        with io.StringIO(read_text(table, error=DataSourceError), newline="") as handle:
            reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
            missing = {"path", "sentence"} - set(reader.fieldnames or [])
            if missing:
                raise DataSourceError(f"{table} lacks the Common Voice columns {sorted(missing)}")
            for record in reader:
                if not _votes_ok(record.get("up_votes"), record.get("down_votes"), min_up_votes, max_down_votes):
                    filtered["votes"] += 1
                    continue
                clip = record["path"]
                rows["id"].append(Path(clip).stem)
                rows["audio"].append(str(root / "clips" / clip))
                rows["text"].append((record.get("sentence") or "").strip())
                rows["speaker"].append(record.get("client_id") or DEFAULT_SPEAKER)
    options = {"split": split, "min_up_votes": min_up_votes, "max_down_votes": max_down_votes}
    if not rows["id"]:
        raise DataSourceError(
            f"no Common Voice rows left in {root} ({split}) after the vote filter "
            f"(up_votes >= {min_up_votes}, down_votes <= {max_down_votes}; {filtered['votes']} rows removed): "
            "lower --min_up_votes or raise --max_down_votes"
        )
    return _from_rows(rows, "common_voice", str(root), options, filtered)


def _votes_ok(up, down, min_up_votes: int, max_down_votes: int) -> bool:
    # Releases leave the vote columns empty for some rows; an unknown count fails an active filter.
    try:
        up_votes = int(up) if up not in (None, "") else None
        down_votes = int(down) if down not in (None, "") else None
    except ValueError:
        return False
    if min_up_votes > 0 and (up_votes is None or up_votes < min_up_votes):
        return False
    if down_votes is not None and down_votes > max_down_votes:
        return False
    return True


def load_hf_dataset(
    name_or_path: str = DEFAULT_HUB_DATASET,
    *,
    split: str = "train",
    config_name: str | None = None,
    audio_column: str = "path",
    text_column: str = "sentence",
    speaker_column: str | None = "client_id",
    id_column: str | None = None,
    min_up_votes: int = 2,
    max_down_votes: int = 0,
    default_speaker: str = DEFAULT_SPEAKER,
    revision: str | None = None,
) -> LoadedSource:
    """Read a Hugging Face dataset: a Hub id, a `save_to_disk` folder, a parquet file/folder or an audiofolder.

    The defaults fit `amedcj/kurmanji-commonvoice` (columns `client_id`, `path` (audio), `sentence`, `up_votes`,
    `down_votes`). When the vote columns exist the Common Voice vote filter applies; set `min_up_votes=0` and a large
    `max_down_votes` to keep everything. Audio is cast to `Audio(decode=False)` before anything touches it.
    """
    dataset, kind = _open_hf_dataset(name_or_path, split=split, config_name=config_name, revision=revision)
    if kind == "audiofolder":
        audio_column = "audio"
    columns = set(dataset.column_names)
    for role, column in (("audio", audio_column), ("text", text_column)):
        if column not in columns:
            raise DataSourceError(
                f"{name_or_path} has no {role} column {column!r} (columns: {sorted(columns)}); "
                f"pass --{role}_column with the right name"
            )
    if isinstance(dataset.features[audio_column], Audio):
        dataset = dataset.cast_column(audio_column, Audio(decode=False))
    filtered: dict[str, int] = {}
    if {"up_votes", "down_votes"} <= columns:
        before = len(dataset)
        dataset = dataset.filter(
            lambda up, down: [_votes_ok(u, d, min_up_votes, max_down_votes) for u, d in zip(up, down)],
            input_columns=["up_votes", "down_votes"],
            batched=True,
            desc="Common Voice vote filter",
        )
        filtered["votes"] = before - len(dataset)
    speakers = speaker_column if speaker_column and speaker_column in columns else None
    ids = id_column if id_column and id_column in columns else None

    def to_schema(batch, indices):
        size = len(batch[text_column])
        audio = [_as_audio_dict(value) for value in batch[audio_column]]
        return {
            "id": [str(v) for v in batch[ids]] if ids else [_default_id(a, i) for a, i in zip(audio, indices)],
            "audio": audio,
            "text": [(t or "").strip() for t in batch[text_column]],
            "speaker": [str(s) for s in batch[speakers]] if speakers else [default_speaker] * size,
        }

    dataset = dataset.map(
        to_schema,
        batched=True,
        with_indices=True,
        remove_columns=dataset.column_names,
        features=SOURCE_FEATURES,
        desc="Reading into the common schema",
    )
    options = {
        "split": split,
        "config_name": config_name,
        "audio_column": audio_column,
        "text_column": text_column,
        "speaker_column": speaker_column,
        "id_column": id_column,
        "min_up_votes": min_up_votes,
        "max_down_votes": max_down_votes,
        "revision": revision,
    }
    return LoadedSource(dataset, kind, str(name_or_path), _hash(kind, options, dataset._fingerprint), filtered)


def _as_audio_dict(value) -> dict:
    if isinstance(value, dict):
        return {"bytes": value.get("bytes"), "path": value.get("path")}
    return {"bytes": None, "path": str(value)}


def _default_id(audio: dict, index: int) -> str:
    path = audio.get("path")
    return Path(path).stem if path else f"{index:08d}"


def _open_hf_dataset(name_or_path: str, *, split: str, config_name: str | None, revision: str | None):
    path = Path(name_or_path)
    if path.exists():
        if path.is_dir() and ((path / "state.json").is_file() or (path / "dataset_dict.json").is_file()):
            loaded = datasets.load_from_disk(str(path))
            if isinstance(loaded, datasets.DatasetDict):
                if split not in loaded:
                    raise DataSourceError(f"{path} has no split {split!r} (splits: {list(loaded)})")
                loaded = loaded[split]
            return loaded, "disk"
        parquet = [str(path)] if path.is_file() else sorted(str(p) for p in path.rglob("*.parquet"))
        if parquet and all(p.endswith(".parquet") for p in parquet):
            return datasets.load_dataset("parquet", data_files=parquet, split="train"), "parquet"
        if path.is_dir():
            return _open_audiofolder(path), "audiofolder"
        raise DataSourceError(f"{path} is neither a dataset folder nor a parquet file")
    try:
        return datasets.load_dataset(name_or_path, config_name, split=split, revision=revision), "hf_dataset"
    except (ConnectionError, OSError, datasets.exceptions.DatasetNotFoundError) as error:
        raise DataSourceError(
            f"could not load the dataset {name_or_path!r} from the Hugging Face Hub ({type(error).__name__}: "
            f"{error}). Offline? Use a local source instead: the bundled demo corpus (--data demo), an LJSpeech "
            "folder, a Common Voice release folder, or a `save_to_disk`/parquet/audiofolder path. If the dataset "
            "is in your local HF cache, set HF_DATASETS_OFFLINE=1."
        ) from error


def _open_audiofolder(root: Path) -> Dataset:
    """Read an audiofolder (`metadata.csv` or `metadata.jsonl` with a `file_name` column) without `datasets`'
    audiofolder builder, which encodes every clip through torchcodec. The audio column is named `audio`."""
    csv_file, jsonl_file = root / "metadata.csv", root / "metadata.jsonl"
    if csv_file.is_file():
        with io.StringIO(read_text(csv_file, error=DataSourceError), newline="") as handle:
            records = list(csv.DictReader(handle))
    elif jsonl_file.is_file():
        records = read_json_lines(
            jsonl_file,
            error=DataSourceError,
            encoding_error=DataSourceError,
            fix='each line must be one JSON object such as {"file_name": "a.wav", "sentence": "..."}: fix or delete '
            "that line",
        )
    else:
        raise DataSourceError(
            f"{root} is not a dataset folder: expected metadata.csv/metadata.jsonl with a `file_name` column "
            "(audiofolder), an LJSpeech metadata.csv, Common Voice .tsv files, or a save_to_disk folder"
        )
    if not records or "file_name" not in records[0]:
        raise DataSourceError(f"the audiofolder metadata in {root} needs a `file_name` column and at least one row")
    columns = {key: [record.get(key) for record in records] for key in records[0] if key != "file_name"}
    columns["audio"] = [{"bytes": None, "path": str(root / record["file_name"])} for record in records]
    return Dataset.from_dict(columns)


def load_source(source: str, kind: str = "auto", **options) -> LoadedSource:
    """Open any supported source; `kind="auto"` looks at what the path contains.

    - the word `demo`: the bundled espeak-ng demo corpus (LJSpeech layout);
    - a folder with `metadata.csv` whose first line has no `file_name` column: LJSpeech;
    - a folder with Common Voice `.tsv` files (`validated.tsv`, `train.tsv`, …): Common Voice release;
    - a `save_to_disk` folder, parquet file/folder, or an audiofolder (`metadata.csv` with `file_name`): HF dataset;
    - anything else: a Hugging Face Hub dataset id.
    """
    if source == "demo":
        from .demo_corpus import DEMO_CORPUS_DIR

        return load_ljspeech(DEMO_CORPUS_DIR, **_pick(options, "default_speaker"))
    path = Path(source)
    if kind == "auto":
        kind = _detect_kind(path)
    if kind == "ljspeech":
        return load_ljspeech(path, **_pick(options, "default_speaker"))
    if kind == "common_voice":
        return load_common_voice(path, **_pick(options, "split", "min_up_votes", "max_down_votes"))
    if kind in {"hf_dataset", "disk", "parquet", "audiofolder"}:
        names = (
            "split",
            "config_name",
            "audio_column",
            "text_column",
            "speaker_column",
            "id_column",
            "min_up_votes",
            "max_down_votes",
            "default_speaker",
            "revision",
        )
        return load_hf_dataset(source, **_pick(options, *names))
    raise DataSourceError(f"unknown source kind {kind!r}; choose ljspeech, common_voice or hf_dataset")


def _pick(options: dict, *names: str) -> dict:
    return {name: options[name] for name in names if options.get(name) is not None}


def _detect_kind(path: Path) -> str:
    if path.is_dir():
        metadata = path / "metadata.csv"
        if metadata.is_file():
            with metadata.open("rb") as handle:
                # Only to tell the layouts apart: an encoding problem is reported by the reader of the whole file.
                first = handle.readline().decode("utf-8", errors="replace")
            return "audiofolder" if "file_name" in first.split(",")[0] else "ljspeech"
        if any((path / f"{name}.tsv").is_file() for name in COMMON_VOICE_SPLITS):
            return "common_voice"
        return "disk" if (path / "state.json").is_file() or (path / "dataset_dict.json").is_file() else "audiofolder"
    if path.is_file():
        return "parquet"
    if path.is_absolute() or str(path).startswith((".", "~")):
        raise DataSourceError(f"data source {path} does not exist")
    return "hf_dataset"
