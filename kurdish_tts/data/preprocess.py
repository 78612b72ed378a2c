"""Preprocess a source once into a memory-mapped Arrow cache: token ids, 16-bit waveform, log-mel, lengths.

`prepare_dataset` runs one batched `datasets.map` over the source. Each sample is decoded (soundfile), resampled
(librosa), normalized and tokenized, and its mel is computed with the shared `MelConfig`. A sample that cannot be used
is never an exception: it gets a `drop_reason` and stays in the per-sample statistics table, which the validation
report and `dropped.csv` list.

The result lives in `cache_dir/<key>/`, where the key hashes the source fingerprint (rows, audio file sizes and mtimes,
loader options), the preprocessing config, the tokenizer's vocabulary and the code of the pipeline itself. The same
inputs reuse the cache (a memory-mapped reload takes well under a second); any change recomputes. The folder appears
atomically: it is built under a temporary name and renamed when complete, so a crash never leaves half a cache.

What is cached and why (sizes per hour of 16 kHz audio): the waveform as 16-bit PCM (115 MB/h) because the
discriminator and the posterior encoder's linear spectrogram need it and decoding/resampling is the expensive CPU part;
the 80-bin log-mel as float16 (36 MB/h) because the mel loss slices it; the 513-bin linear spectrogram is NOT cached
(it would be 460 MB/h in float32) since the GPU recomputes it per batch in about a millisecond.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import time
import unicodedata
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import datasets
import numpy as np
import torch
from datasets import Array2D, Dataset, Features, List, Value

import kurdish_tts

from ..audio.features import MelConfig, mel_spectrogram
from ..audio.io import from_int16, load_audio, rms_db, to_int16
from ..text import encode, normalize_text, tokenizer_characters
from .sources import LoadedSource

# Bump when the cached columns change meaning in a way the source-code hash below would not catch.
CACHE_FORMAT_VERSION = 1

TRAINING_COLUMNS = [
    "id",
    "speaker",
    "text",
    "input_ids",
    "input_length",
    "waveform",
    "num_samples",
    "mel",
    "num_frames",
    "duration",
]
STATISTICS_COLUMNS = [
    "id",
    "speaker",
    "raw_text",
    "text",
    "drop_reason",
    "error",
    "duration",
    "orig_sample_rate",
    "orig_channels",
    "peak",
    "clipped_fraction",
    "rms_db",
    "audio_hash",
    "unknown_chars",
    "input_length",
]
DROP_REASONS = (
    "undecodable_audio",
    "empty_audio",
    "too_short",
    "too_long",
    "silent_audio",
    "empty_text",
    "unknown_characters",
    "too_many_tokens",
    "fewer_frames_than_tokens",
)


def _features(n_mels: int) -> Features:
    return Features(
        {
            "id": Value("string"),
            "speaker": Value("string"),
            "raw_text": Value("string"),
            "text": Value("string"),
            "input_ids": List(Value("int32")),
            "input_length": Value("int32"),
            "waveform": List(Value("int16")),
            "num_samples": Value("int32"),
            # (frames, n_mels): Arrow allows only the first dimension to vary, so the cache is time-major.
            "mel": Array2D(shape=(None, n_mels), dtype="float16"),
            "num_frames": Value("int32"),
            "duration": Value("float32"),
            "drop_reason": Value("string"),
            "error": Value("string"),
            "orig_sample_rate": Value("int32"),
            "orig_channels": Value("int32"),
            "peak": Value("float32"),
            "clipped_fraction": Value("float32"),
            "rms_db": Value("float32"),
            "audio_hash": Value("string"),
            "unknown_chars": Value("string"),
        }
    )


@dataclass
class PreprocessConfig:
    """What preprocessing does to each sample; every field is part of the cache key.

    Args:
        mel (`MelConfig`, *optional*):
            Rate and STFT/mel settings; derive it from the model with `MelConfig.from_vits_config`.
        min_duration (`float`, *optional*, defaults to `0.5`):
            Shorter clips (seconds, after trimming) are dropped as `too_short`.
        max_duration (`float`, *optional*, defaults to `15.0`):
            Longer clips are dropped as `too_long` (they dominate padded batch memory).
        max_input_length (`int`, *optional*, defaults to `600`):
            Token sequences longer than this (blanks included) are dropped as `too_many_tokens`.
        peak_normalize (`float`, *optional*):
            Scale every clip to this linear peak (e.g. `0.95`); `None` keeps recorded levels.
        trim_top_db (`float`, *optional*):
            Trim leading/trailing audio this many dB below the peak (e.g. `40`); `None` keeps edges. Crowd-sourced
            clips often start with a second of silence, which the alignment then has to explain.
        min_rms_db (`float`, *optional*, defaults to `-70.0`):
            Clips whose RMS level is below this (dBFS) carry no speech and are dropped as `silent_audio`.
        drop_unknown_letters (`bool`, *optional*, defaults to `True`):
            Drop samples whose text has letters or digits the tokenizer cannot speak (stripping them would pair
            audio with a different text); unknown punctuation is stripped either way and always reported.
        expand_numbers (`bool`, *optional*, defaults to `True`):
            Spell out numerals in Kurmanji before tokenizing.
    """

    mel: MelConfig = field(default_factory=MelConfig)
    min_duration: float = 0.5
    max_duration: float = 15.0
    max_input_length: int = 600
    peak_normalize: float | None = None
    trim_top_db: float | None = None
    min_rms_db: float = -70.0
    drop_unknown_letters: bool = True
    expand_numbers: bool = True

    def __post_init__(self):
        if isinstance(self.mel, dict):
            self.mel = MelConfig(**self.mel)
        if not 0 <= self.min_duration < self.max_duration:
            raise ValueError(f"need 0 <= min_duration < max_duration, got {self.min_duration} and {self.max_duration}")
        if self.max_input_length < 1:
            raise ValueError(f"max_input_length must be positive, got {self.max_input_length}")
        if self.peak_normalize is not None and not 0 < self.peak_normalize <= 1:
            raise ValueError(f"peak_normalize is a linear peak level in (0, 1], got {self.peak_normalize}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class PreparedData:
    """A prepared cache.

    Args:
        dataset (`datasets.Dataset`):
            Kept samples with `TRAINING_COLUMNS`, memory-mapped from `path / "dataset"`.
        statistics (`datasets.Dataset`):
            One row per source sample (kept or dropped) with `STATISTICS_COLUMNS`.
        path (`Path`):
            The cache folder (`dataset/`, `statistics/`, `info.json`, `dropped.csv`).
        info (`dict`):
            Source summary, config, counts and timing.
        from_cache (`bool`):
            Whether this call reused an existing cache instead of running the pipeline.
    """

    dataset: Dataset
    statistics: Dataset
    path: Path
    info: dict
    from_cache: bool

    @property
    def dropped(self) -> dict[str, int]:
        return dict(self.info["dropped"])


def _code_fingerprint() -> str:
    # Hashing the pipeline's own source means an edited normalizer or mel function can never serve stale features.
    package = Path(kurdish_tts.__file__).parent
    digest = hashlib.sha256(f"{kurdish_tts.__version__}:{CACHE_FORMAT_VERSION}".encode())
    files = sorted((package / "text").glob("*.py")) + sorted((package / "audio").glob("*.py"))
    for path in [*files, Path(__file__)]:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def tokenizer_fingerprint(tokenizer) -> str:
    state = {
        "class": type(tokenizer).__name__,
        "vocab": tokenizer.get_vocab(),
        "add_blank": getattr(tokenizer, "add_blank", None),
    }
    return hashlib.sha256(json.dumps(state, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


def cache_key(source: LoadedSource, tokenizer, config: PreprocessConfig) -> str:
    parts = {
        "source": source.fingerprint,
        "config": config.to_dict(),
        "tokenizer": tokenizer_fingerprint(tokenizer),
        "code": _code_fingerprint(),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]


def process_sample(sample_id: str, audio, raw_text: str, speaker: str, *, tokenizer, allowed, config) -> dict:
    """Turn one source row into one output row (training columns + statistics); never raises for bad data."""
    row = {
        "id": sample_id,
        "speaker": speaker,
        "raw_text": raw_text or "",
        "text": "",
        "input_ids": [],
        "input_length": 0,
        "waveform": np.zeros(0, dtype=np.int16),
        "num_samples": 0,
        "mel": np.zeros((0, config.mel.n_mels), dtype=np.float16),
        "num_frames": 0,
        "duration": 0.0,
        "drop_reason": "",
        "error": "",
        "orig_sample_rate": 0,
        "orig_channels": 0,
        "peak": 0.0,
        "clipped_fraction": 0.0,
        "rms_db": -120.0,
        "audio_hash": "",
        "unknown_chars": "{}",
    }
    normalized = normalize_text(row["raw_text"], allowed, expand_numbers=config.expand_numbers)
    row["text"] = normalized.text
    row["unknown_chars"] = json.dumps(normalized.removed, ensure_ascii=False, sort_keys=True)

    def drop(reason: str, error: str = "") -> dict:
        row["drop_reason"], row["error"] = reason, error
        return row

    try:
        decoded = load_audio(
            audio, config.mel.sampling_rate, peak_normalize=config.peak_normalize, trim_top_db=config.trim_top_db
        )
    except Exception as error:  # noqa: BLE001 - any decoder failure is a property of this sample, not of the run
        return drop("undecodable_audio", f"{type(error).__name__}: {error}")
    row.update(
        orig_sample_rate=decoded.orig_sampling_rate,
        orig_channels=decoded.orig_channels,
        peak=decoded.peak,
        clipped_fraction=decoded.clipped_fraction,
    )
    pcm = to_int16(decoded.waveform)
    row["duration"] = len(pcm) / config.mel.sampling_rate
    row["rms_db"] = rms_db(decoded.waveform)
    row["audio_hash"] = hashlib.sha1(pcm.tobytes()).hexdigest() if len(pcm) else ""
    if len(pcm) == 0:
        return drop("empty_audio", "the clip has no samples")
    if row["duration"] < config.min_duration:
        return drop("too_short", f"{row['duration']:.2f} s < min_duration {config.min_duration} s")
    if row["duration"] > config.max_duration:
        return drop("too_long", f"{row['duration']:.2f} s > max_duration {config.max_duration} s")
    if row["rms_db"] < config.min_rms_db:
        return drop("silent_audio", f"RMS {row['rms_db']:.1f} dBFS < min_rms_db {config.min_rms_db}")
    # Before the empty-text check: a text whose letters are all unspeakable (Sorani in Arabic script, say) is empty
    # only because of them, and its reason is theirs.
    if normalized.removed_letters and (config.drop_unknown_letters or not normalized.text.strip()):
        return drop("unknown_characters", unknown_letters_message(normalized.removed_letters))
    if not normalized.text.strip():
        return drop("empty_text", "no speakable characters left after normalization")
    input_ids = encode(normalized.text, tokenizer)
    row["input_ids"], row["input_length"] = input_ids, len(input_ids)
    if len(input_ids) > config.max_input_length:
        return drop("too_many_tokens", f"{len(input_ids)} ids > max_input_length {config.max_input_length}")
    num_frames = config.mel.num_frames(len(pcm))
    if num_frames < len(input_ids):
        # The monotonic alignment needs at least one frame per token; such a clip cannot be aligned at all.
        return drop("fewer_frames_than_tokens", f"{num_frames} frames < {len(input_ids)} token ids")
    mel = mel_spectrogram(torch.from_numpy(from_int16(pcm)), config.mel)  # (n_mels, frames)
    row.update(
        waveform=pcm,
        num_samples=len(pcm),
        mel=mel.T.numpy().astype(np.float16),
        num_frames=mel.shape[-1],
    )
    return row


def unknown_letters_message(letters) -> str:
    """What a text's unspeakable letters are, naming a script other than Latin (the model reads Kurmanji in Latin
    letters: text in Arabic script, such as Sorani, is another writing system, not a few odd characters)."""
    text = "".join(sorted(letters))
    scripts = sorted(
        {unicodedata.name(char, "UNKNOWN").split(" ")[0].title() for char in text if char.isalpha()} - {"Latin"}
    )
    message = f"the tokenizer cannot speak {text!r}"
    if scripts:
        message += (
            f" ({', '.join(scripts)} script: this model reads Kurmanji in Latin letters; transliterate the text or "
            "leave the clip out)"
        )
    return message


def _process_batch(batch: dict, *, tokenizer, allowed, config: PreprocessConfig) -> dict:
    # Workers must not each spawn a full thread pool: num_proc processes × all cores oversubscribes the CPU. Restored
    # afterwards, because with num_proc=1 this runs in the caller's process.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rows = [
            process_sample(i, a, t, s, tokenizer=tokenizer, allowed=allowed, config=config)
            for i, a, t, s in zip(batch["id"], batch["audio"], batch["text"], batch["speaker"])
        ]
    finally:
        torch.set_num_threads(threads)
    return {column: [row[column] for row in rows] for column in rows[0]} if rows else {}


def prepare_dataset(
    source: LoadedSource,
    tokenizer,
    config: PreprocessConfig | None = None,
    cache_dir: str | os.PathLike = ".cache/kurdish_tts",
    *,
    num_proc: int | None = None,
    batch_size: int = 16,
    overwrite: bool = False,
) -> PreparedData:
    """Preprocess `source` into an Arrow cache, or reload the cache when nothing changed.

    Args:
        source (`LoadedSource`):
            From `kurdish_tts.data.load_source` and friends.
        tokenizer (`VitsTokenizer`):
            The model's tokenizer; its vocabulary decides which characters are speakable.
        config (`PreprocessConfig`, *optional*):
            Filters and audio options; MMS defaults when omitted.
        cache_dir (`str` or `os.PathLike`, *optional*, defaults to `".cache/kurdish_tts"`):
            Parent folder of the keyed caches.
        num_proc (`int`, *optional*):
            Worker processes for the map (`None` = 1).
        batch_size (`int`, *optional*, defaults to `16`):
            Rows per map batch.
        overwrite (`bool`, *optional*, defaults to `False`):
            Recompute even when a cache with the same key exists.
    """
    config = config or PreprocessConfig()
    key = cache_key(source, tokenizer, config)
    final = Path(cache_dir) / key
    if final.is_dir() and not overwrite:
        return _load(final, from_cache=True)

    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(cache_dir) / f".tmp-{key}-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        start = time.perf_counter()
        mapped = source.dataset.map(
            _process_batch,
            batched=True,
            batch_size=batch_size,
            num_proc=num_proc if num_proc and num_proc > 1 and len(source.dataset) > 1 else None,
            fn_kwargs={"tokenizer": tokenizer, "allowed": tokenizer_characters(tokenizer), "config": config},
            remove_columns=source.dataset.column_names,
            features=_features(config.mel.n_mels),
            cache_file_name=str(work / "map" / "processed.arrow"),
            new_fingerprint=key,
            writer_batch_size=200,
            desc=f"Preprocessing {source.location}",
        )
        seconds = time.perf_counter() - start
        reasons = mapped["drop_reason"]
        reasons = list(reasons) if not isinstance(reasons, list) else reasons
        kept_indices = [index for index, reason in enumerate(reasons) if not reason]
        # One shard even when nothing was kept: an empty dataset saved with zero shards cannot be loaded again.
        kept = mapped.select(kept_indices).select_columns(TRAINING_COLUMNS)
        kept.save_to_disk(str(work / "dataset"), num_shards=1 if not kept_indices else None)
        statistics = mapped.select_columns(STATISTICS_COLUMNS)
        statistics.save_to_disk(str(work / "statistics"))
        info = _build_info(source, tokenizer, config, key, statistics, seconds)
        _write_dropped_csv(statistics, work / "dropped.csv")
        (work / "info.json").write_text(json.dumps(info, indent=2, ensure_ascii=False), encoding="utf-8")
        del mapped, statistics
        shutil.rmtree(work / "map", ignore_errors=True)
        if overwrite and final.is_dir():
            shutil.rmtree(final)
        try:
            os.rename(work, final)
        except OSError:
            # Another process (e.g. a second DDP rank) finished the same cache first; theirs is identical.
            if not final.is_dir():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return _load(final, from_cache=False)


def _build_info(source, tokenizer, config, key, statistics: Dataset, seconds: float) -> dict:
    reasons = Counter(statistics["drop_reason"])
    durations = np.asarray(statistics["duration"], dtype=np.float64)
    kept_mask = np.asarray([not r for r in statistics["drop_reason"]])
    kept = int(kept_mask.sum())
    return {
        "key": key,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "source": source.summary(),
        "config": config.to_dict(),
        "tokenizer": tokenizer_fingerprint(tokenizer),
        "code": _code_fingerprint(),
        "samples": len(statistics),
        "kept": kept,
        "kept_hours": float(durations[kept_mask].sum() / 3600) if kept else 0.0,
        "dropped": {reason: count for reason, count in sorted(reasons.items()) if reason},
        "preprocess_seconds": round(seconds, 3),
    }


def _write_dropped_csv(statistics: Dataset, path: Path) -> None:
    dropped = statistics.filter(lambda reasons: [bool(r) for r in reasons], input_columns="drop_reason", batched=True)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["id", "speaker", "drop_reason", "error", "raw_text"])
    for row in dropped.select_columns(["id", "speaker", "drop_reason", "error", "raw_text"]):
        writer.writerow([row["id"], row["speaker"], row["drop_reason"], row["error"], row["raw_text"]])
    path.write_text(buffer.getvalue(), encoding="utf-8")


def _load(path: Path, *, from_cache: bool) -> PreparedData:
    info = json.loads((path / "info.json").read_text(encoding="utf-8"))
    dataset = datasets.load_from_disk(str(path / "dataset"))
    statistics = datasets.load_from_disk(str(path / "statistics"))
    return PreparedData(dataset, statistics, path, info, from_cache)
