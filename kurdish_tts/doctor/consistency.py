"""Does the data match the model? Sampling rate, STFT geometry, vocabulary, speakers and the cache's own record.

The training script prepares its cache for the model it trains, so these agree by construction, unless something
bypassed that: a `VitsForTraining` built with its own `MelConfig`, a cache folder copied or renamed from another
setup (`prepare_dataset` trusts a folder's name, its key), or data in a script the tokenizer cannot speak. Each check
compares what the model uses with what the cache says it holds (`info.json`) and with what it actually holds (the
cached columns), so a cache whose record and contents disagree is caught too.
"""

from __future__ import annotations

import json
import math
from collections import Counter

import numpy as np
import pyarrow.compute as pc

from ..data.preprocess import PreparedData, PreprocessConfig, _code_fingerprint, tokenizer_fingerprint
from ..models.vits import VitsForTraining
from ..text import find_unknown_characters
from .report import Check, Status

SECTION = "consistency"
# Share of clips lost to (or corrupted by) letters the tokenizer lacks above which the data does not fit the model.
MAX_UNKNOWN_LETTER_SHARE = 0.1
# Cached frame counts must equal `samples // hop` exactly; cached durations may differ from `samples / rate` by
# float32 rounding only.
_RATE_TOLERANCE = 0.01


def check_consistency(
    model: VitsForTraining,
    tokenizer,
    prepared: PreparedData,
    expected: PreprocessConfig,
    train_dataset,
    speaker_to_id: dict[str, int] | None,
    *,
    sample_text: str | None = None,
) -> list[Check]:
    """Compare the model with the prepared cache it would train on.

    Args:
        model (`VitsForTraining`): The model as the run builds it.
        tokenizer (`VitsTokenizer`): The run's tokenizer.
        prepared (`PreparedData`): The cache the run loaded.
        expected (`PreprocessConfig`): The preprocessing the run asks for (data arguments + the model's `MelConfig`).
        train_dataset (`datasets.Dataset`): The clips the run trains on (after choosing voices).
        speaker_to_id (`dict[str, int]`, *optional*): The run's speaker → embedding id mapping (`None`: one voice).
        sample_text (`str`, *optional*): The sentence the run synthesizes at the end.

    Returns:
        `list[Check]`: sampling rate, hop length, spectrogram bins, mel config, vocabulary, unknown characters,
        speakers, cache fingerprint.
    """
    cached = _CacheView(prepared)
    return [
        check_sampling_rate(model, cached),
        check_hop_length(model, cached),
        check_spectrogram_bins(model, cached),
        check_mel_config(model, cached, expected),
        check_vocabulary(model, tokenizer, cached),
        check_unknown_characters(prepared, tokenizer, expected, sample_text),
        check_speakers(model, train_dataset, speaker_to_id),
        check_cache_fingerprint(prepared, tokenizer, expected),
    ]


class _CacheView:
    """The cache's record (`info.json`) and the few columns the checks read, each loaded once through Arrow."""

    def __init__(self, prepared: PreparedData):
        self.prepared = prepared
        self.mel = dict(prepared.info.get("config", {}).get("mel", {}))
        self._columns: dict[str, np.ndarray] = {}

    def column(self, name: str) -> np.ndarray:
        if name not in self._columns:
            table = self.prepared.dataset.select_columns([name]).with_format("arrow")[:]
            self._columns[name] = table[name].to_numpy()
        return self._columns[name]

    @property
    def clips(self) -> int:
        return len(self.prepared.dataset)

    def max_input_id(self) -> int | None:
        if not self.clips:
            return None
        table = self.prepared.dataset.select_columns(["input_ids"]).with_format("arrow")[:]
        return pc.max(pc.list_flatten(table["input_ids"])).as_py()

    def n_mels(self) -> int | None:
        feature = self.prepared.dataset.features.get("mel")
        shape = getattr(feature, "shape", None)
        return shape[-1] if shape else None


def _stale_fix(prepared: PreparedData) -> str:
    return (
        f"delete the cache folder {prepared.path} (or add --overwrite_cache true) and run again, so the data is "
        "prepared for this model"
    )


def check_sampling_rate(model: VitsForTraining, cached: _CacheView) -> Check:
    name = "sampling rate"
    rates = {
        "model": model.config.sampling_rate,
        "loss mel config": model.mel_config.sampling_rate,
        "cache record": cached.mel.get("sampling_rate"),
    }
    if cached.clips:
        durations = cached.column("duration").astype(np.float64)
        samples = cached.column("num_samples").astype(np.float64)
        valid = durations > 0
        if valid.any():
            # The cache stores `duration = samples / rate` of the rate it resampled to.
            rates["cached audio"] = int(round(float(np.median(samples[valid] / durations[valid]))))
    source_rates = Counter()
    statistics = cached.prepared.statistics
    if "orig_sample_rate" in statistics.column_names:
        source_rates.update(int(rate) for rate in statistics["orig_sample_rate"] if rate)
    evidence = ", ".join(f"{where} {rate} Hz" for where, rate in rates.items())
    details = {"rates": rates, "source_rates": dict(source_rates)}
    target = rates["model"]
    differing = [
        where for where, rate in rates.items() if rate is None or abs(rate - target) > _RATE_TOLERANCE * target
    ]
    if differing:
        return Check(
            SECTION,
            name,
            Status.FAIL,
            f"{evidence}: {', '.join(differing)} differ(s) from the model's {target} Hz, so the model would learn "
            "audio played at the wrong speed and pitch",
            _stale_fix(cached.prepared)
            if "model" not in differing and "loss mel config" not in differing
            else "build the model's MelConfig with MelConfig.from_vits_config(model.config)",
            details,
        )
    evidence += _source_rates(source_rates)
    below = sum(count for rate, count in source_rates.items() if rate < target)
    if source_rates and below > sum(source_rates.values()) / 2:
        return Check(
            SECTION,
            name,
            Status.WARN,
            f"{evidence}: most recordings were made below {target} Hz and upsampled, so their top band is empty and "
            "the model learns muffled speech",
            "use recordings at the model's rate or above, or a model trained at their rate",
            details,
        )
    return Check(SECTION, name, Status.OK, evidence, details=details)


def _source_rates(rates: Counter) -> str:
    if not rates:
        return ""
    listed = ", ".join(f"{rate} Hz × {count}" for rate, count in rates.most_common(3))
    return f" (recordings: {listed}{', ...' if len(rates) > 3 else ''})"


def check_hop_length(model: VitsForTraining, cached: _CacheView) -> Check:
    name = "hop length"
    upsample = list(model.config.upsample_rates)
    hop = math.prod(upsample)
    values = {
        f"prod(upsample_rates {upsample})": hop,
        "loss mel config": model.mel_config.hop_length,
        "cache record": cached.mel.get("hop_length"),
    }
    evidence = ", ".join(f"{where} {value}" for where, value in values.items())
    details = {"hops": values}
    mismatched_rows = 0
    if cached.clips:
        frames = cached.column("num_frames").astype(np.int64)
        samples = cached.column("num_samples").astype(np.int64)
        mismatched_rows = int(np.count_nonzero(frames != samples // hop))
        details["clips_with_other_frame_count"] = mismatched_rows
        if mismatched_rows:
            implied = int(round(float(np.median(samples / np.maximum(frames, 1)))))
            details["implied_cached_hop"] = implied
            evidence += f"; {mismatched_rows} of {cached.clips} cached clips do not have samples // {hop} frames (they imply hop {implied})"
        else:
            evidence += f"; every cached clip has samples // {hop} frames"
    differing = [where for where, value in values.items() if value != hop]
    if differing or mismatched_rows:
        model_side = any(where == "loss mel config" for where in differing)
        return Check(
            SECTION,
            name,
            Status.FAIL,
            evidence + ": one decoder frame must be exactly one hop of cached audio, or the alignment, the mel "
            "loss and the decoder's output length all disagree",
            "derive the MelConfig from the model (MelConfig.from_vits_config(model.config))"
            if model_side
            else _stale_fix(cached.prepared),
            details,
        )
    return Check(SECTION, name, Status.OK, evidence, details=details)


def check_spectrogram_bins(model: VitsForTraining, cached: _CacheView) -> Check:
    name = "spectrogram bins"
    bins = model.config.spectrogram_bins
    cached_n_fft = cached.mel.get("n_fft")
    values = {
        "model spectrogram_bins": bins,
        f"loss mel config n_fft {model.mel_config.n_fft} // 2 + 1": model.mel_config.spectrogram_bins,
        f"cache record n_fft {cached_n_fft} // 2 + 1": None if cached_n_fft is None else cached_n_fft // 2 + 1,
    }
    evidence = ", ".join(f"{where} = {value}" for where, value in values.items())
    differing = [where for where, value in values.items() if value != bins]
    if differing:
        return Check(
            SECTION,
            name,
            Status.FAIL,
            f"{evidence}: the posterior encoder expects {bins} linear-spectrogram bins",
            _stale_fix(cached.prepared)
            if all(where.startswith("cache") for where in differing)
            else "derive the MelConfig from the model (MelConfig.from_vits_config(model.config))",
            {"bins": values},
        )
    return Check(SECTION, name, Status.OK, evidence, details={"bins": values})


def check_mel_config(model: VitsForTraining, cached: _CacheView, expected: PreprocessConfig) -> Check:
    name = "mel config of the cache"
    wanted = model.mel_config.to_dict()
    # Which side is off: the run prepares the cache with `expected.mel`, derived from the model's config.
    model_side = model.mel_config != expected.mel
    differing = {key: (cached.mel.get(key), value) for key, value in wanted.items() if cached.mel.get(key) != value}
    n_mels = cached.n_mels()
    if n_mels is not None and n_mels != wanted["n_mels"]:
        differing["cached mel columns"] = (n_mels, wanted["n_mels"])
    details = {"model": wanted, "cache": cached.mel}
    if differing:
        listed = "; ".join(f"{key}: cache {have}, model {want}" for key, (have, want) in differing.items())
        return Check(
            SECTION,
            name,
            Status.FAIL,
            f"{listed}: the mel loss would compare the decoder's output with target mels computed differently",
            "build the model's MelConfig from its config (MelConfig.from_vits_config(model.config)), as the run "
            "prepares the data with it"
            if model_side
            else _stale_fix(cached.prepared),
            details,
        )
    return Check(
        SECTION,
        name,
        Status.OK,
        f"same as the model's ({wanted['n_mels']} mels, n_fft {wanted['n_fft']}, fmax {wanted['fmax']})",
        details=details,
    )


def check_vocabulary(model: VitsForTraining, tokenizer, cached: _CacheView) -> Check:
    name = "tokenizer vs embedding"
    embedding = model.vits.text_encoder.embed_tokens.num_embeddings
    sizes = {"tokenizer": tokenizer.vocab_size, "model config": model.config.vocab_size, "embedding rows": embedding}
    evidence = ", ".join(f"{where} {size}" for where, size in sizes.items())
    largest = cached.max_input_id()
    details = {"sizes": sizes, "max_cached_id": largest}
    if len(set(sizes.values())) > 1:
        return Check(
            SECTION,
            name,
            Status.FAIL,
            f"{evidence}: ids the tokenizer produces would index other (or missing) embedding rows",
            "use the model's own tokenizer (leave --tokenizer unset), or --model_size with --tokenizer kurmanji",
            details,
        )
    if largest is not None and largest >= embedding:
        return Check(
            SECTION,
            name,
            Status.FAIL,
            f"{evidence}; but the cache holds id {largest}: it was tokenized with another vocabulary",
            _stale_fix(cached.prepared),
            details,
        )
    return Check(
        SECTION,
        name,
        Status.OK,
        evidence + (f"; cached ids up to {largest}" if largest is not None else ""),
        details=details,
    )


def check_unknown_characters(
    prepared: PreparedData, tokenizer, expected: PreprocessConfig, sample_text: str | None = None
) -> Check:
    """Characters of the transcripts the tokenizer cannot speak, and what preprocessing did with them.

    Letters and digits are the harm: with `drop_unknown_letters` (the default) their clips are dropped, otherwise the
    text loses them while the audio still says them. Unknown punctuation is stripped, which costs little.
    """
    name = "characters the tokenizer cannot speak"
    statistics = prepared.statistics
    columns = statistics.select_columns(["unknown_chars", "drop_reason"]).to_dict()
    letters, punctuation = Counter(), Counter()
    letter_clips = 0
    for value in columns["unknown_chars"]:
        removed = json.loads(value) if value else {}
        clip_letters = {char: count for char, count in removed.items() if char.isalnum()}
        letter_clips += bool(clip_letters)
        letters.update(clip_letters)
        punctuation.update({char: count for char, count in removed.items() if not char.isalnum()})
    total = len(columns["drop_reason"])
    dropped = sum(reason == "unknown_characters" for reason in columns["drop_reason"])
    share = letter_clips / total if total else 0.0
    in_sample = find_unknown_characters([sample_text], tokenizer) if sample_text else Counter()
    details = {
        "clips": total,
        "clips_with_unknown_letters": letter_clips,
        "dropped_for_unknown_characters": dropped,
        "letters": dict(letters.most_common()),
        "punctuation": dict(punctuation.most_common()),
        "sample_text": dict(in_sample),
    }
    shown = "".join(char for char, _ in letters.most_common(20))
    fix = (
        "use a tokenizer whose vocabulary has these letters (--tokenizer, or the model trained on this script), or "
        "correct the transcripts; `kurdish-tts validate` lists the clips"
    )
    if letters:
        fate = (
            f"{dropped} clip(s) dropped"
            if expected.drop_unknown_letters
            else "kept with the letters deleted from their text while the audio still says them"
        )
        evidence = (
            f"{letter_clips} of {total} clips ({share:.0%}) contain letters or digits it lacks: {shown!r}; {fate}"
        )
        if share > MAX_UNKNOWN_LETTER_SHARE or not expected.drop_unknown_letters:
            return Check(
                SECTION, name, Status.FAIL, evidence + ": the data does not match this tokenizer", fix, details
            )
        return Check(SECTION, name, Status.WARN, evidence, fix, details)
    if in_sample:
        return Check(
            SECTION,
            name,
            Status.WARN,
            f"none in the data, but the sample sentence has {''.join(sorted(in_sample))!r}, which synthesis drops",
            "--sample_text with speakable characters",
            details,
        )
    stripped = "".join(char for char, _ in punctuation.most_common(10))
    evidence = f"none among the letters of {total} clips" + (
        f" (punctuation stripped: {stripped!r})" if punctuation else ""
    )
    return Check(SECTION, name, Status.OK, evidence, details=details)


def check_speakers(model: VitsForTraining, train_dataset, speaker_to_id: dict[str, int] | None) -> Check:
    name = "speakers vs speaker embeddings"
    model_speakers = model.config.num_speakers
    data_speakers = len(set(train_dataset["speaker"])) if "speaker" in train_dataset.column_names else 1
    details = {"model_speakers": model_speakers, "data_speakers": data_speakers}
    if speaker_to_id:
        needed = max(speaker_to_id.values()) + 1
        details["embedding_ids_needed"] = needed
        if model_speakers < needed:
            return Check(
                SECTION,
                name,
                Status.FAIL,
                f"{len(speaker_to_id)} voices need embedding ids up to {needed - 1}, the model has {model_speakers}",
                "let the run add the embeddings (--multi_speaker with the single-speaker base model)",
                details,
            )
        return Check(
            SECTION,
            name,
            Status.OK,
            f"{data_speakers} voices in the training clips, {model_speakers} speaker embeddings",
            details=details,
        )
    if model_speakers > 1:
        return Check(
            SECTION,
            name,
            Status.WARN,
            f"the model has {model_speakers} speaker embeddings but the run feeds no speaker ids, so training moves "
            "the unconditioned voice while synthesis with a speaker id adds conditioning trained for other voices",
            "--multi_speaker true to train with the embeddings",
            details,
        )
    if data_speakers > 1:
        return Check(
            SECTION,
            name,
            Status.WARN,
            f"{data_speakers} speakers in the training clips are trained as one voice, which comes out as a blend",
            "--speaker most_hours (one voice) or --multi_speaker true (speaker embeddings)",
            details,
        )
    return Check(SECTION, name, Status.OK, "one voice, single-speaker model", details=details)


def check_cache_fingerprint(prepared: PreparedData, tokenizer, expected: PreprocessConfig) -> Check:
    """The cache's record against the current preprocessing config, tokenizer and pipeline code.

    A cache is found by its folder name, the hash of exactly these; a folder whose record names other inputs was made
    for another setup (copied, renamed, or written by an older version of the code) and holds stale features.
    """
    name = "cache fingerprint"
    info = prepared.info
    # Through JSON, as `info.json` stored it (tuples become lists, keys strings).
    wanted = {
        "key": prepared.path.name,
        "config": json.loads(json.dumps(expected.to_dict())),
        "tokenizer": tokenizer_fingerprint(tokenizer),
        "code": _code_fingerprint(),
    }
    stale = []
    if info.get("key") != wanted["key"]:
        stale.append(f"its record names key {info.get('key')!r} but the folder is {wanted['key']!r}")
    recorded = info.get("config", {})
    differing = sorted(
        key for key in set(recorded) | set(wanted["config"]) if recorded.get(key) != wanted["config"].get(key)
    )
    if differing:
        parts = []
        for key in differing:
            have, want = recorded.get(key), wanted["config"].get(key)
            if isinstance(have, dict) and isinstance(want, dict):
                parts += [
                    f"{key}.{k} {have.get(k)!r} (now {want.get(k)!r})"
                    for k in sorted(want)
                    if have.get(k) != want.get(k)
                ]
            else:
                parts.append(f"{key} {have!r} (now {want!r})")
        stale.append("preprocessed with " + ", ".join(parts))
    if info.get("tokenizer") != wanted["tokenizer"]:
        stale.append("tokenized with another vocabulary")
    if info.get("code") != wanted["code"]:
        stale.append("made by another version of the preprocessing code")
    details = {"path": str(prepared.path), "recorded": {k: info.get(k) for k in wanted}, "expected": wanted}
    if stale:
        return Check(
            SECTION,
            name,
            Status.FAIL,
            f"stale cache {prepared.path}: " + "; ".join(stale),
            _stale_fix(prepared),
            details,
        )
    return Check(
        SECTION,
        name,
        Status.OK,
        f"{prepared.path.name} matches the current preprocessing config, tokenizer and code",
        details=details,
    )
