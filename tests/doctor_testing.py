"""Corpora and caches for the doctor's tests: small LJSpeech folders of real demo clips, and planted stale caches."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from kurdish_tts.data import PreprocessConfig, load_ljspeech, prepare_dataset
from kurdish_tts.data.demo_corpus import DEMO_CORPUS_DIR
from kurdish_tts.data.preprocess import cache_key


def demo_subset(root: Path, count: int, *, texts: dict[int, str] | None = None, one_speaker: bool = True) -> Path:
    """An LJSpeech folder with the first `count` demo clips (16 kHz espeak-ng speech); `texts` replaces the
    transcripts of some rows (by index). With `one_speaker`, every clip is `speaker_0`."""
    lines = (DEMO_CORPUS_DIR / "metadata.csv").read_text(encoding="utf-8").splitlines()[:count]
    (root / "wavs").mkdir(parents=True, exist_ok=True)
    rows = []
    for index, line in enumerate(lines):
        name, text, _, speaker = line.split("|")
        shutil.copy(DEMO_CORPUS_DIR / "wavs" / f"{name}.flac", root / "wavs" / f"{name}.flac")
        text = (texts or {}).get(index, text)
        rows.append(f"{name}|{text}" if one_speaker else f"{name}|{text}||{speaker}")
    (root / "metadata.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


def plant_stale_cache(corpus: Path, tokenizer, wanted: PreprocessConfig, stale_mel, cache_dir: Path) -> Path:
    """Prepare `corpus` with `stale_mel` and put the result where the cache for `wanted` is looked up, as a cache
    copied from another setup would be. Returns the planted folder."""
    source = load_ljspeech(corpus)
    stale = prepare_dataset(source, tokenizer, dataclasses.replace(wanted, mel=stale_mel), cache_dir / "elsewhere")
    target = cache_dir / cache_key(source, tokenizer, wanted)
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(stale.path, target)
    return target
