"""Builders for tiny, offline test corpora in every supported source format."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import soundfile as sf

# Real Kurmanji sentences (CC0, Mozilla Common Voice sentence collection) with all five diacritic letters.
KURMANJI_SENTENCES = [
    "Min bersivên pirsên xwe di Quranê de dîtin.",
    "Amerîka ji hikûmeta Îranê bawer nake.",
    "Heytehola herî mezin, di mejiyê kesên bêdeng de olan dide.",
    "Desteya rêveber a navendî wisa biryar da",
    "We ew bihîst?",
    "Şev baş, ez ê sibê werim.",
]


def speech_like(seconds: float, sampling_rate: int = 16000, seed: int = 0, level: float = 0.3) -> np.ndarray:
    """A voiced-sounding test signal: a few harmonics with a slow amplitude envelope and a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sampling_rate)) / sampling_rate
    f0 = 110 + 40 * seed % 90
    signal = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 5))
    envelope = 0.5 * (1 - np.cos(2 * np.pi * np.minimum(t / max(seconds, 1e-3), 1)))
    signal = signal * envelope + 0.01 * rng.standard_normal(len(t))
    peak = np.abs(signal).max() if len(t) else 1.0
    return (level * signal / peak).astype(np.float32)


def write_clip(path: Path, waveform: np.ndarray, sampling_rate: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = path.suffix.lstrip(".").upper()
    subtype = {"MP3": "MPEG_LAYER_III", "OGG": "VORBIS"}.get(fmt, "PCM_16")
    sf.write(path, waveform, sampling_rate, format=fmt, subtype=subtype)
    return path


def make_ljspeech(root: Path, rows: list[tuple[str, str]], *, sampling_rate: int = 22050, seconds: float = 2.5):
    """LJSpeech folder with `file|text` lines and one WAV per row (ids are the first elements of `rows`)."""
    for index, (name, _) in enumerate(rows):
        write_clip(root / "wavs" / f"{name}.wav", speech_like(seconds, sampling_rate, seed=index), sampling_rate)
    (root / "metadata.csv").write_text("".join(f"{name}|{text}\n" for name, text in rows), encoding="utf-8")
    return root


def make_common_voice(root: Path, rows: list[dict], *, split: str = "validated") -> Path:
    """Common Voice release folder: `<split>.tsv` with the real column set and `clips/*.mp3` at 48 kHz."""
    columns = ["client_id", "path", "sentence", "up_votes", "down_votes", "age", "gender", "accents", "locale"]
    root.mkdir(parents=True, exist_ok=True)
    with (root / f"{split}.tsv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, delimiter="\t", extrasaction="ignore")
        writer.writeheader()
        for index, row in enumerate(rows):
            full = {"age": "", "gender": "", "accents": "", "locale": "kmr", **row}
            writer.writerow(full)
            if row.get("write_audio", True) is not False:
                write_clip(root / "clips" / row["path"], speech_like(1.5, 48000, seed=index), 48000)
    return root


def tiny_model(tokenizer, seed: int = 0):
    """The tiny VITS architecture with a fixed seed (imports kept local: most test files need no torch model)."""
    import torch

    from kurdish_tts.models.vits import VitsForTraining

    torch.manual_seed(seed)
    return VitsForTraining.from_size("tiny", tokenizer.vocab_size)


def tiny_training_args(output_dir, **overrides):
    """CPU, quiet, no saving, a log entry per step; tests override what they exercise."""
    from kurdish_tts.trainers import VitsTrainingArguments

    values = {
        "output_dir": str(output_dir),
        "per_device_train_batch_size": 2,
        "per_device_eval_batch_size": 2,
        "report_to": "none",
        "use_cpu": True,
        "seed": 0,
        "logging_steps": 1,
        "save_strategy": "no",
        "disable_tqdm": True,
    }
    return VitsTrainingArguments(**{**values, **overrides})


def checkout_env(**overrides) -> dict[str, str]:
    """The environment for a subprocess that must import the package from this checkout, wherever the editable
    install points (a script's own folder, not the checkout, is first on its `sys.path`)."""
    import os

    import kurdish_tts

    root = str(Path(kurdish_tts.__file__).parents[1])
    pythonpath = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": pythonpath, **overrides}


def torchrun(script, *script_args, nproc: int = 2, timeout: float = 1200):
    """Run `script` in `nproc` CPU processes (gloo) under torchrun; returns the `CompletedProcess`.

    `timeout` only guards against a hang: on a busy 2-core machine two processes take several times as long as alone.

    The processes import the package from this checkout, wherever the editable install points. The rendezvous uses
    an explicit free port: on `--master_port 0` (what `--standalone` picks) it can wait forever on this machine.
    """
    import os
    import socket
    import subprocess
    import sys

    import kurdish_tts

    root = str(Path(kurdish_tts.__file__).parents[1])
    pythonpath = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": pythonpath}
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc)]
    command += ["--master_addr", "127.0.0.1", "--master_port", port, str(script), *map(str, script_args)]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
