"""Build the small multi-speaker Kurmanji demo corpus with espeak-ng.

The repository ships a few minutes of synthetic Kurmanji speech in the LJSpeech layout so that the tests and the
README's main command run offline. This module is how that corpus was made, and how a user makes a bigger one:

```
output_dir/
    metadata.csv        id|text|normalized_text|speaker   (no header; empty normalized_text means "same as text")
    wavs/<id>.flac      16 kHz, mono, 16-bit FLAC
    README.md           how the folder was made (voices, espeak-ng version, command pattern)
```

Each "speaker" is one espeak-ng voice variant at a fixed speed and pitch. espeak-ng's output audio is not covered by
its GPL licence; the sentences are CC0 1.0 (see `kurdish_tts/demo/ATTRIBUTION.md`).
"""

import io
import os
import random
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf
from tqdm.auto import tqdm

from ..atomic import atomic_path, write_text_atomically
from ..errors import read_text

DEMO_DIR = Path(__file__).resolve().parent.parent / "demo"
DEMO_CORPUS_DIR = DEMO_DIR / "corpus"
DEMO_SENTENCES_FILE = DEMO_DIR / "kmr_sentences.txt"
# The bundled corpus must stay under 5 MB; the margin leaves room for metadata.csv and README.md.
DEMO_MAX_BYTES = 4_800_000

ESPEAK_INSTALL_HINT = "espeak-ng not found: install it with `apt-get install espeak-ng` (Debian/Ubuntu)"


@dataclass(frozen=True)
class EspeakVoice:
    """
    One synthetic speaker: an espeak-ng voice (with variant) read at a fixed speed and pitch.

    Args:
        name (`str`):
            Speaker name written to the `speaker` column of metadata.csv, e.g. `espeak_ku_m1`.
        voice (`str`):
            Value of espeak-ng's `-v` option: a language plus an optional variant, e.g. `ku+m1`. Variants live in
            espeak-ng-data's `voices/!v` folder.
        speed (`int`, *optional*, defaults to `175`):
            Words per minute, espeak-ng's `-s` option.
        pitch (`int`, *optional*, defaults to `50`):
            Pitch adjustment from 0 to 99, espeak-ng's `-p` option.
    """

    name: str
    voice: str
    speed: int = 175
    pitch: int = 50

    def command(self, executable: str = "espeak-ng") -> list[str]:
        # `-b 1`: the sentence arrives on stdin as UTF-8, which keeps diacritics (ç ê î ş û) intact and means a
        # sentence can never be mistaken for an option.
        return [executable, "-v", self.voice, "-s", str(self.speed), "-p", str(self.pitch), "-b", "1", "--stdout"]


# Two male and two female variants, spread in speed and pitch so that the speakers differ audibly.
DEFAULT_VOICES = (
    EspeakVoice("espeak_ku_m1", "ku+m1", speed=160, pitch=40),
    EspeakVoice("espeak_ku_f2", "ku+f2", speed=150, pitch=60),
    EspeakVoice("espeak_ku_m3", "ku+m3", speed=140, pitch=50),
    EspeakVoice("espeak_ku_f4", "ku+f4", speed=170, pitch=55),
)


@dataclass
class DemoCorpusSummary:
    """
    What `make_demo_corpus` wrote.

    Args:
        clips (`int`):
            Number of audio files (rows of metadata.csv).
        speakers (`int`):
            Number of distinct speakers among the clips.
        seconds (`float`):
            Total audio duration in seconds.
        bytes (`int`):
            Size of the audio files plus metadata.csv, in bytes.
        output_dir (`Path`):
            The corpus folder.
    """

    clips: int
    speakers: int
    seconds: float
    bytes: int
    output_dir: Path

    @property
    def minutes(self) -> float:
        return self.seconds / 60

    @property
    def megabytes(self) -> float:
        return self.bytes / 1e6


def read_sentences(path: str | os.PathLike) -> list[str]:
    """
    Read one sentence per line, skipping empty lines and `#` comment lines.

    Args:
        path (`str` or `os.PathLike`):
            UTF-8 text file.

    Returns:
        `list[str]`: the sentences, stripped of surrounding whitespace, in file order.
    """
    lines = read_text(path).splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def find_espeak() -> str:
    """Return the path of the espeak-ng executable, or raise `FileNotFoundError` with the install hint."""
    executable = shutil.which("espeak-ng")
    if executable is None:
        raise FileNotFoundError(ESPEAK_INSTALL_HINT)
    return executable


def espeak_version(executable: str | None = None) -> str:
    """Return espeak-ng's version string, e.g. `1.51`."""
    output = subprocess.run(
        [executable or find_espeak(), "--version"], capture_output=True, text=True, check=True
    ).stdout
    # "eSpeak NG text-to-speech: 1.51  Data at: ..."
    words = output.split(":", 1)[-1].split()
    return words[0] if words else output.strip()


def synthesize(text: str, voice: EspeakVoice, sample_rate: int = 16000, executable: str | None = None) -> np.ndarray:
    """
    Speak one sentence with espeak-ng and return it as a clean 16-bit waveform.

    espeak-ng writes a 22,050 Hz WAV to stdout; the audio is resampled with soxr, its edge silences are cut down to
    0.1 s and it is peak-normalized to -1 dBFS. The same inputs always give the same samples.

    Args:
        text (`str`):
            The sentence.
        voice (`EspeakVoice`):
            Speaker to use.
        sample_rate (`int`, *optional*, defaults to `16000`):
            Output sample rate in Hz.
        executable (`str`, *optional*):
            Path of espeak-ng; looked up on `PATH` when not given.

    Returns:
        `np.ndarray`: int16 samples of shape `(num_samples,)`.
    """
    command = voice.command(executable or find_espeak())
    result = subprocess.run(command, input=text.encode("utf-8"), capture_output=True)
    if result.returncode != 0 or len(result.stdout) <= 44:
        stderr = result.stderr.decode("utf-8", errors="replace").strip()
        raise RuntimeError(f"espeak-ng failed for voice {voice.voice!r} on {text!r}: {stderr or 'no audio'}")
    # The streamed WAV header carries a placeholder length; libsndfile reads up to the real end of the data.
    waveform, source_rate = sf.read(io.BytesIO(result.stdout), dtype="float32", always_2d=False)
    if waveform.ndim > 1:
        waveform = waveform.mean(axis=1)
    if source_rate != sample_rate:
        waveform = librosa.resample(waveform, orig_sr=source_rate, target_sr=sample_rate, res_type="soxr_hq")
    waveform = _trim_edge_silence(waveform, sample_rate)
    peak = float(np.max(np.abs(waveform))) if waveform.size else 0.0
    if peak == 0.0:
        raise RuntimeError(f"espeak-ng produced silence for voice {voice.voice!r} on {text!r}")
    # -1 dBFS leaves headroom for the rounding below and for any later resampling by users.
    waveform = waveform * (10 ** (-1 / 20) / peak)
    return np.round(waveform * 32767).astype(np.int16)


def _trim_edge_silence(
    waveform: np.ndarray, sample_rate: int, threshold_db: float = -50.0, keep_seconds: float = 0.1
) -> np.ndarray:
    loud = np.flatnonzero(np.abs(waveform) > np.max(np.abs(waveform), initial=0.0) * 10 ** (threshold_db / 20))
    if loud.size == 0:
        return waveform
    keep = int(round(keep_seconds * sample_rate))
    return waveform[max(0, loud[0] - keep) : min(len(waveform), loud[-1] + 1 + keep)]


def _write_flac(path: Path, samples: np.ndarray, sample_rate: int) -> None:
    with atomic_path(path) as temporary:
        sf.write(temporary, samples, sample_rate, format="FLAC", subtype="PCM_16")


def _write_text(path: Path, text: str) -> None:
    write_text_atomically(path, text)


def _plan_clips(sentences: Sequence[str], voices: Sequence[EspeakVoice], count: int, seed: int) -> list[tuple]:
    order = list(sentences)
    random.Random(seed).shuffle(order)
    # Past one pass over the sentences, each later pass gives every sentence the next speaker, so extra clips add
    # new (sentence, speaker) pairs until every speaker has read every sentence.
    count = min(count, len(order) * len(voices))
    return [(order[k % len(order)], voices[(k + k // len(order)) % len(voices)]) for k in range(count)]


def _same_dir(first: Path, second: Path) -> bool:
    return first.resolve() == second.resolve()


def make_demo_corpus(
    output_dir: str | os.PathLike,
    sentences: Sequence[str],
    voices: Sequence[EspeakVoice] = DEFAULT_VOICES,
    num_clips: int | None = None,
    max_bytes: int | None = None,
    sample_rate: int = 16000,
    seed: int = 0,
    progress: bool = True,
    min_chars: int = 20,
    max_chars: int = 120,
    id_prefix: str = "kmr_demo_",
) -> DemoCorpusSummary:
    """
    Synthesize an LJSpeech-style multi-speaker corpus with espeak-ng.

    Sentences of `min_chars` to `max_chars` characters are shuffled with `seed` and read in turn by the voices, so
    the speakers get near-equal shares. Clips are written until `num_clips` is reached, the size budget `max_bytes`
    would be exceeded, or every speaker has read every sentence. With the same arguments the output is the same,
    and a larger `num_clips` or `max_bytes` gives a superset of a smaller run. Clips of an earlier run in
    `output_dir` that this run did not write are removed, so the folder always matches its metadata.csv.

    Args:
        output_dir (`str` or `os.PathLike`):
            Corpus folder; created if missing.
        sentences (`Sequence[str]`):
            Candidate sentences, e.g. from `read_sentences(DEMO_SENTENCES_FILE)`. They go into the `text` column
            exactly as given.
        voices (`Sequence[EspeakVoice]`, *optional*, defaults to `DEFAULT_VOICES`):
            Speakers.
        num_clips (`int`, *optional*):
            Number of clips to write; values above the number of eligible sentences re-read sentences with other
            speakers. Defaults to one clip per eligible sentence, or, when there is a byte budget, to as many clips
            as fit in it.
        max_bytes (`int`, *optional*):
            Budget for the audio files plus metadata.csv. Defaults to `DEMO_MAX_BYTES` when `output_dir` is the
            bundled corpus and to no limit otherwise.
        sample_rate (`int`, *optional*, defaults to `16000`):
            Sample rate of the FLAC files in Hz.
        seed (`int`, *optional*, defaults to `0`):
            Seed of the sentence shuffle.
        progress (`bool`, *optional*, defaults to `True`):
            Show a progress bar with clips per second and time left.
        min_chars (`int`, *optional*, defaults to `20`):
            Shortest sentence used, in characters (about 1.5 s of speech).
        max_chars (`int`, *optional*, defaults to `120`):
            Longest sentence used, in characters (about 8 s of speech).
        id_prefix (`str`, *optional*, defaults to `"kmr_demo_"`):
            Clip ids are this prefix plus a zero-padded 1-based index, e.g. `kmr_demo_0001`.

    Returns:
        `DemoCorpusSummary`: clips, speakers, seconds and bytes written.

    Example:

    ```python
    >>> from kurdish_tts.data.demo_corpus import DEMO_SENTENCES_FILE, make_demo_corpus, read_sentences

    >>> summary = make_demo_corpus("outputs/kmr_espeak_large", read_sentences(DEMO_SENTENCES_FILE), num_clips=2000)
    ```
    """
    executable = find_espeak()
    output_dir = Path(output_dir)
    if not voices:
        raise ValueError("`voices` must name at least one EspeakVoice")
    if len({voice.name for voice in voices}) != len(voices):
        raise ValueError(f"voice names must be unique, got {[voice.name for voice in voices]}")
    if max_bytes is None and _same_dir(output_dir, DEMO_CORPUS_DIR):
        max_bytes = DEMO_MAX_BYTES

    # `|` and line breaks would corrupt metadata.csv; the bundled sentences contain neither.
    eligible = [
        sentence
        for sentence in dict.fromkeys(sentences)
        if min_chars <= len(sentence) <= max_chars and "|" not in sentence and "\n" not in sentence
    ]
    if not eligible:
        raise ValueError(f"no sentence of {min_chars} to {max_chars} characters without '|' among {len(sentences)}")
    if num_clips is None:
        # A byte budget alone may re-read sentences with other speakers; with no limit at all, read each once.
        num_clips = len(eligible) * len(voices) if max_bytes is not None else len(eligible)
    plan = _plan_clips(eligible, voices, num_clips, seed)

    wavs_dir = output_dir / "wavs"
    wavs_dir.mkdir(parents=True, exist_ok=True)
    id_width = max(4, len(str(len(plan))))
    rows, written, speakers, total_bytes, total_samples = [], set(), set(), 0, 0
    bar = tqdm(total=len(plan), unit="clip", desc="espeak-ng", disable=not progress)
    for index, (sentence, voice) in enumerate(plan, start=1):
        clip_id = f"{id_prefix}{index:0{id_width}d}"
        samples = synthesize(sentence, voice, sample_rate=sample_rate, executable=executable)
        path = wavs_dir / f"{clip_id}.flac"
        _write_flac(path, samples, sample_rate)
        row = f"{clip_id}|{sentence}||{voice.name}\n"
        clip_bytes = path.stat().st_size + len(row.encode("utf-8"))
        if max_bytes is not None and total_bytes + clip_bytes > max_bytes:
            path.unlink()
            break
        rows.append(row)
        written.add(path.name)
        speakers.add(voice.name)
        total_bytes += clip_bytes
        total_samples += len(samples)
        bar.update(1)
        if max_bytes is not None:
            # The byte budget, not the plan, usually ends a sized run: re-estimate the total so the ETA is honest.
            expected = index + int((max_bytes - total_bytes) / (total_bytes / index))
            bar.total = min(len(plan), expected)
            bar.refresh()
    bar.close()

    for stale in wavs_dir.glob(f"{id_prefix}*.flac"):
        if stale.name not in written:
            stale.unlink()
    _write_text(output_dir / "metadata.csv", "".join(rows))
    _write_text(
        output_dir / "README.md",
        _corpus_card(
            voices, len(rows), speakers, total_samples / sample_rate, sample_rate, espeak_version(executable)
        ),
    )
    return DemoCorpusSummary(
        clips=len(rows),
        speakers=len(speakers),
        seconds=total_samples / sample_rate,
        bytes=total_bytes,
        output_dir=output_dir,
    )


def _corpus_card(
    voices: Sequence[EspeakVoice],
    clips: int,
    speakers: set[str],
    seconds: float,
    sample_rate: int,
    version: str,
) -> str:
    voice_lines = "\n".join(
        f"| `{voice.name}` | `{voice.voice}` | {voice.speed} | {voice.pitch} |"
        for voice in voices
        if voice.name in speakers
    )
    return f"""# Synthetic Kurmanji speech corpus (espeak-ng)

Made by `kurdish_tts.data.demo_corpus.make_demo_corpus` (`python scripts/make_demo_corpus.py`).

- {clips} clips, {len(speakers)} speakers, {seconds / 60:.1f} minutes; FLAC, {sample_rate} Hz, mono, 16-bit.
- Layout: LJSpeech. `metadata.csv` rows are `id|text|normalized_text|speaker` without a header; an empty
  `normalized_text` means "same as text".
- Text: Kurmanji sentences from the Mozilla Common Voice sentence collection, CC0 1.0.
- Audio: synthesized with espeak-ng {version}, one call per clip, sentence on stdin as UTF-8:
  `espeak-ng -v VOICE -s SPEED -p PITCH -b 1 --stdout`; then resampled to {sample_rate} Hz with soxr (librosa
  `res_type="soxr_hq"`), edge silences cut to 0.1 s, peak-normalized to -1 dBFS.

| speaker | `-v` | `-s` | `-p` |
|---|---|---|---|
{voice_lines}
"""
