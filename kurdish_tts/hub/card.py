"""The model card of a trained model, written from the files its training run left behind.

A run folder (`scripts/train_vits.py --output_dir`) holds what the card needs: `best_model/` (the model, with
`best_model.json`: step, metric, configuration), `run_summary.json` (the script's model and data arguments,
hardware, budget, sample sentence), `trainer_state.json` (the evaluations), `sample.wav`, `loss_curve.png`,
`data_split.json`, and, when `scripts/evaluate.py` was run into `<run>/evaluation/`, `evaluation.json`. `find_run_files` collects them from a run
folder or from a model folder inside one; `build_model_card` turns them into a `huggingface_hub.ModelCard`.

Licence. A fine-tuned model inherits its base model's licence: MMS checkpoints (`facebook/mms-tts-*`) are
CC-BY-NC-4.0, so their fine-tunes are non-commercial, and the card says so. A model trained from random
initialization carries this package's licence, Apache-2.0 (the training data's terms still apply and the card says
that too). A base model this package cannot place gets `other`, with a note to pass `--license`.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import ModelCard, ModelCardData

from ..evaluation.catalog import METRIC_GROUPS, METRIC_LABELS
from ..evaluation.report import REPORT_JSON, format_metric, markdown_table

PACKAGE_LICENSE = "apache-2.0"
MMS_LICENSE = "cc-by-nc-4.0"
MMS_PREFIX = "facebook/mms-tts"
UNKNOWN_LICENSE = "other"
KURMANJI = "kmr"
SAMPLE_NAME = "sample.wav"
LOSS_CURVE_NAME = "loss_curve.png"
DEMO_DATA = "demo"
# The sentence `scripts/train_vits.py` synthesizes by default (runs before `run_summary.json` recorded it).
DEFAULT_SAMPLE_TEXT = "Roj baş, ez bi kurmancî diaxivim."
# Evaluation bookkeeping that says nothing about the model.
_EVAL_BOOKKEEPING = ("_runtime", "_samples_per_second", "_steps_per_second")


class RunFilesError(ValueError):
    """The folder is not a model folder or a training run; the message says what was expected."""


@dataclass
class RunFiles:
    """What a training run left behind, as far as a model card needs it.

    Args:
        model_dir (`Path`): The model folder to publish (a stock `VitsModel` folder).
        run_dir (`Path`, *optional*): The run folder around it, when there is one.
        config (`dict`): The model's `config.json`.
        best_model (`dict`, *optional*): `best_model.json`.
        summary (`dict`, *optional*): `run_summary.json`.
        trainer_state (`dict`, *optional*): `trainer_state.json`.
        split (`dict`, *optional*): `data_split.json`.
        evaluation (`dict`, *optional*): An `evaluation.json` of `scripts/evaluate.py`.
        speakers (`list[dict]`, *optional*): The voices of a multi-speaker model (`speakers.json`).
        sample (`Path`, *optional*): A synthesized sample.
        loss_curve (`Path`, *optional*): The training-curve image.
    """

    model_dir: Path
    run_dir: Path | None
    config: dict
    best_model: dict | None = None
    summary: dict | None = None
    trainer_state: dict | None = None
    split: dict | None = None
    evaluation: dict | None = None
    speakers: list[dict] | None = None
    sample: Path | None = None
    loss_curve: Path | None = None

    def argument(self, section: str, name: str):
        """A script argument of the run (`run_summary.json` `arguments`: `model` and `data` sections), or `None`."""
        return ((self.summary or {}).get("arguments", {}).get(section) or {}).get(name)


def find_run_files(path: str | os.PathLike, evaluation: str | os.PathLike | None = None) -> RunFiles:
    """Collect the files of a training run.

    Args:
        path (`str` or `os.PathLike`):
            A run folder (its `best_model/` is published, or the final model at its top when there is no best
            model), or a model folder (published as is; the run files are looked for in its parent).
        evaluation (`str` or `os.PathLike`, *optional*):
            An `evaluation.json` (or its folder) from `scripts/evaluate.py`; defaults to `<run>/evaluation/`.

    Raises:
        [`RunFilesError`]: `path` holds no model.
    """
    path = Path(path)
    if (path / "best_model" / "config.json").is_file():
        model_dir, run_dir = path / "best_model", path
    elif (path / "config.json").is_file():
        model_dir = path
        parent = path.parent
        run_dir = (
            parent if (parent / "run_summary.json").is_file() or (parent / "trainer_state.json").is_file() else None
        )
        if run_dir is None and (path / "run_summary.json").is_file():
            run_dir = path
    else:
        raise RunFilesError(
            f"{path} holds no model: pass a training run's output folder (with best_model/) or a model folder "
            "(with config.json and model.safetensors)"
        )
    if not any(model_dir.glob("*.safetensors")) and not (model_dir / "pytorch_model.bin").is_file():
        raise RunFilesError(f"{model_dir} has a config.json but no weights (model.safetensors)")
    run = RunFiles(model_dir=model_dir, run_dir=run_dir, config=_read_json(model_dir / "config.json"))
    run.best_model = _read_json(model_dir / "best_model.json")
    speakers = _read_json(model_dir / "speakers.json")
    run.speakers = speakers.get("speakers") if speakers else None
    folders = [model_dir] + ([run_dir] if run_dir is not None and run_dir != model_dir else [])
    for folder in folders:
        run.summary = run.summary or _read_json(folder / "run_summary.json")
        run.trainer_state = run.trainer_state or _read_json(folder / "trainer_state.json")
        run.split = run.split or _read_json(folder / "data_split.json")
        run.sample = run.sample or _existing(folder / SAMPLE_NAME)
        run.loss_curve = run.loss_curve or _existing(folder / LOSS_CURVE_NAME)
    evaluation_path = Path(evaluation) if evaluation is not None else None
    if evaluation_path is None and run_dir is not None:
        evaluation_path = run_dir / "evaluation" / REPORT_JSON
    if evaluation_path is not None:
        if evaluation_path.is_dir():
            evaluation_path = evaluation_path / REPORT_JSON
        if evaluation is not None and not evaluation_path.is_file():
            raise RunFilesError(f"no evaluation report at {evaluation_path}; run scripts/evaluate.py first")
        run.evaluation = _read_json(evaluation_path)
    return run


def base_model_of(run: RunFiles, _depth: int = 0) -> str | None:
    """The Hub id the model was fine-tuned from, following local base folders back to a Hub id; `None` for a
    random initialization or a base that cannot be traced."""
    if run.argument("model", "model_size"):
        return None
    name = run.argument("model", "model_name_or_path")
    name = name or (run.best_model or {}).get("config", {}).get("model", {}).get("name_or_path")
    if not name or not Path(name).exists():
        return name or None
    # A local base: an earlier run's model folder, whose own card or run files name its base.
    card = Path(name) / "README.md"
    if card.is_file():
        base = ModelCard.load(card).data.base_model
        return base if isinstance(base, str) else None
    if _depth >= 8:
        return None
    try:
        return base_model_of(find_run_files(name), _depth + 1)
    except RunFilesError:
        return None


def resolve_license(run: RunFiles, base_model: str | None, override: str | None = None) -> tuple[str, str]:
    """The licence identifier for the card's metadata and a sentence explaining it (see the module docstring)."""
    if override:
        return override, f"Licence: `{override}`, as set by the publisher."
    if base_model is not None and base_model.startswith(MMS_PREFIX):
        return MMS_LICENSE, (
            f"**Non-commercial.** This model is fine-tuned from [{base_model}](https://huggingface.co/{base_model}), "
            "which Meta released under CC-BY-NC-4.0; a fine-tune inherits that licence, so it may not be used "
            "commercially. Attribution: Pratap et al., *Scaling Speech Technology to 1,000+ Languages* (MMS), 2023."
        )
    if base_model is None and run.argument("model", "model_size"):
        return PACKAGE_LICENSE, (
            "Apache-2.0: the model was trained from random initialization (no base model) with kurdish_tts, whose "
            "licence it carries. The terms of the training data still apply to what you do with it."
        )
    return UNKNOWN_LICENSE, (
        "The licence of the base model applies to this fine-tune and could not be determined here: check it, and "
        "publish with `--license <id>`."
    )


def build_model_card(
    run: RunFiles,
    repo_id: str,
    *,
    license: str | None = None,
    datasets: list[str] | None = None,
) -> ModelCard:
    """The model card: YAML metadata (language `kmr`, text-to-speech, transformers, base model, datasets, licence)
    and a body with the audio sample, usage through stock `pipeline("text-to-speech")`, tokenizer notes, the
    evaluation tables, training budget and hardware, the training curves and the licence.

    Args:
        run (`RunFiles`): From `find_run_files`.
        repo_id (`str`): Where the model will live (used in the usage snippet).
        license (`str`, *optional*): Overrides the inherited licence.
        datasets (`list[str]`, *optional*): Hub dataset ids for the metadata; default: the training data, when it
            was a Hub dataset.
    """
    base_model = base_model_of(run)
    license_id, license_note = resolve_license(run, base_model, license)
    data = run.argument("data", "data")
    if datasets is None:
        datasets = [data] if _is_hub_id(data) else []
    metadata = ModelCardData(
        language=KURMANJI,
        license=license_id,
        library_name="transformers",
        pipeline_tag="text-to-speech",
        base_model=base_model,
        datasets=datasets or None,
        tags=[
            "text-to-speech",
            "vits",
            *(["mms"] if base_model and base_model.startswith(MMS_PREFIX) else []),
            "kurmanji",
            "kurdish",
            "kurdish_tts",
        ],  # fmt: skip
        model_name=repo_id.split("/")[-1],
    )
    body = "\n\n".join(
        part
        for part in (
            _introduction(run, repo_id, base_model),
            _sample_section(run),
            _usage_section(run, repo_id),
            _evaluation_section(run),
            _training_section(run, data),
            f"## Licence\n\n{license_note}",
        )
        if part
    )
    return ModelCard(f"---\n{metadata.to_yaml()}\n---\n\n{body}\n")


def _introduction(run: RunFiles, repo_id: str, base_model: str | None) -> str:
    origin = (
        f"fine-tuned from [{base_model}](https://huggingface.co/{base_model})"
        if base_model
        else f"trained from random initialization (`{run.argument('model', 'model_size') or 'unknown'}` size)"
    )
    parameters = _count_parameters(run.model_dir / "model.safetensors")
    size = f" ({parameters / 1e6:.2f} M parameters)" if parameters else ""
    return (
        f"# {repo_id.split('/')[-1]}\n\n"
        f"Kurmanji (Northern Kurdish, Latin script) text-to-speech: a VITS model{size} {origin} with kurdish_tts. "
        'It is a stock `transformers` `VitsModel`: `pipeline("text-to-speech")` loads it without kurdish_tts.'
    )


def _sample_section(run: RunFiles) -> str:
    if run.sample is None:
        return ""
    text = (run.summary or {}).get("sample_text") or DEFAULT_SAMPLE_TEXT
    return (
        f'<audio controls src="{SAMPLE_NAME}"></audio>\n\n'
        f"*{text}* ([{SAMPLE_NAME}]({SAMPLE_NAME}), synthesized by this model at the end of training)"
    )


def _usage_section(run: RunFiles, repo_id: str) -> str:
    speaker = ', forward_params={"speaker_id": 0}' if run.speakers else ""
    lines = [
        "## Usage",
        "",
        "With stock transformers:",
        "",
        "```python",
        "import soundfile as sf",
        "from transformers import pipeline",
        "",
        f'tts = pipeline("text-to-speech", model="{repo_id}")',
        f'speech = tts("Roj baş, ez bi kurmancî diaxivim."{speaker})',
        'sf.write("speech.wav", speech["audio"].reshape(-1), speech["sampling_rate"])',
        "```",
        "",
        "**The tokenizer speaks letters only.** Its vocabulary is the Kurmanji alphabet, the space and a few punctuation "
        "marks: it has no digits, and it drops every character it lacks *silently* (`2024` and `Sala 2024` would lose "
        "the number). Write numbers as words, or normalize text with kurdish_tts, which spells numbers out in Kurmanji, "
        "lowercases with the dotless/dotted i handled, and unifies quotes and dashes:",
        "",
        "```python",
        "from kurdish_tts.text import normalize_text",
        "",
        f'speech = tts(normalize_text("Sala 2024 baş bû.").text{speaker})  # "sala du hezar û bîst û çar baş bû."',
        "```",
    ]
    if run.speakers:
        voices = ", ".join(f"`{entry['id']}`: {entry['speaker'][:12]}" for entry in run.speakers[:20])
        more = f" (and {len(run.speakers) - 20} more, see `speakers.json`)" if len(run.speakers) > 20 else ""
        lines += ["", f"Voices (`speaker_id`): {voices}{more}."]
    return "\n".join(lines)


def _evaluation_section(run: RunFiles) -> str:
    parts = []
    if run.evaluation is not None:
        report = run.evaluation
        data = report.get("data", {})
        # A comparison report: the card shows this model's row.
        models = [model for model in report["models"] if _same_path(model["name"], run.model_dir)] or report["models"]
        parts += [
            f"Scored with `scripts/evaluate.py` on {data.get('clips', '?')} clips of `{data.get('source', '?')}`"
            + (" held out from training." if data.get("held_out") else ".")
            + " MCD: mel-cepstral distortion (DTW-aligned, dB); duration ratio: synthesized / recorded length; "
            "F0 RMSE on frames voiced in both; RTF: synthesis time / audio time on the device shown; ↓ lower is "
            "better.",
            "",
            markdown_table(models, names=["this model"] if len(models) == 1 else None),
        ]
    best = _best_evaluation(run)
    if best:
        step, metrics = best
        held_out = len((run.split or {}).get("eval_ids", [])) or None
        selected = (run.best_model or {}).get("metric")
        direction = "highest" if (run.best_model or {}).get("greater_is_better") else "lowest"
        synthesized = ((run.summary or {}).get("synthesis_metrics") or {}).get("samples")
        if synthesized and held_out:
            synthesized = min(synthesized, held_out)
        where = f"on {held_out or 'the'} held-out clips" + (
            f" (the synthesis metrics on {synthesized} of them, synthesized by the model)" if synthesized else ""
        )
        chosen = f", chosen by the {direction} `{selected}`" if selected else ""
        rows = "\n".join(f"| {_metric_name(key)} | {_format_eval(key, value)} |" for key, value in metrics.items())
        parts += [
            "",
            f"During training, at step {step} (the checkpoint published here{chosen}), {where}:",
            "",
            "| metric | value |\n| --- | --- |\n" + rows,
        ]
        if any("health" in key or key.removeprefix("eval_") in METRIC_GROUPS["health"] for key in metrics):
            # Imported here: the card is read without torch otherwise.
            from ..trainers.best_model import audio_problems

            problems = audio_problems(metrics)
            parts += [
                "",
                "**Waveform health** (clipping, DC offset, power above 7.5 kHz and below 50 Hz, level against the "
                "recordings; the mel metrics cannot see these): "
                + ("no problem found." if not problems else "BROKEN: " + "; ".join(problems) + "."),
            ]
    if not parts:
        return ""
    return "## Evaluation\n\n" + "\n".join(parts).strip()


def _training_section(run: RunFiles, data: str | None) -> str:
    summary = run.summary or {}
    training = ((run.best_model or {}).get("config") or {}).get("training") or {}
    lines = ["## Training", ""]
    if data == DEMO_DATA:
        lines.append(
            "- Data: the kurdish_tts demo corpus (80 clips of espeak-ng Kurmanji speech in four voice variants; "
            "sentences CC0 from Mozilla Common Voice). A demo of the machinery, not a voice to use."
        )
    elif data:
        lines.append(
            f"- Data: `{data}`" + (f" ([dataset](https://huggingface.co/datasets/{data}))" if _is_hub_id(data) else "")
        )
    if run.split:
        lines.append(f"- Held out for evaluation: {len(run.split.get('eval_ids', []))} clips (never trained on).")
    steps = summary.get("global_step")
    if steps is not None:
        best = (run.best_model or {}).get("step")
        lines.append(f"- Steps: {steps}" + (f"; the published model is from step {best}" if best is not None else ""))
    budget = summary.get("budget")
    if budget:
        lines.append(
            f"- Budget: {_hours(budget['target_seconds'])} planned, {_hours(budget['actual_seconds'])} used "
            f"({budget['deviation']:+.1%}), {budget.get('planned_steps')} steps planned"
            + (", stopped early to keep the budget" if budget.get("stopped_early") else "")
        )
    elif summary.get("job_seconds") is not None:
        lines.append(f"- Wall-clock time: {_hours(summary['job_seconds'])} (no time budget set)")
    hardware = summary.get("hardware")
    if hardware:
        lines.append(f"- Hardware: {hardware}")
    if training:
        lines.append(
            f"- Precision {training.get('precision')}, batch {training.get('total_train_batch_size')} "
            f"({training.get('per_device_train_batch_size')} per device × {training.get('gradient_accumulation_steps')} "
            f"accumulation × {training.get('world_size')} processes), learning rate {training.get('learning_rate')}, "
            f"{training.get('lr_scheduler_type')} schedule, seed {training.get('seed')}"
        )
        if training.get("loss_weights"):
            weights = ", ".join(f"{name} {value:g}" for name, value in training["loss_weights"].items())
            lines.append(f"- Loss weights: {weights}")
    if run.loss_curve is not None:
        lines += ["", f"![Training and evaluation losses]({LOSS_CURVE_NAME})"]
    return "\n".join(lines) if len(lines) > 2 else ""


def _best_evaluation(run: RunFiles) -> tuple[int, dict[str, float]] | None:
    """The evaluation metrics logged at the published model's step (several log entries of one step merged)."""
    step = (run.best_model or {}).get("step")
    history = (run.trainer_state or {}).get("log_history", [])
    if step is None:
        return None
    metrics: dict[str, float] = {}
    for entry in history:
        if entry.get("step") != step:
            continue
        for key, value in entry.items():
            # The first entry is the evaluation that chose the model; a later one at the same step (the final
            # `evaluate()`, whose losses differ by the VITS noise) only adds what the first lacks.
            if key.startswith("eval_") and not key.endswith(_EVAL_BOOKKEEPING) and isinstance(value, int | float):
                metrics.setdefault(key, value)
    if not metrics:
        return None
    # The synthesis metrics first, in their usual order, then the losses.
    order = [f"eval_{key}" for group in METRIC_GROUPS.values() for key in group]
    ranked = sorted(metrics, key=lambda key: (order.index(key) if key in order else len(order), key))
    return step, {key: metrics[key] for key in ranked}


def _metric_name(key: str) -> str:
    bare = key.removeprefix("eval_")
    return f"{METRIC_LABELS[bare]} (`{key}`)" if bare in METRIC_LABELS else f"`{key}`"


def _format_eval(key: str, value: float) -> str:
    bare = key.removeprefix("eval_")
    if bare in METRIC_LABELS:
        return format_metric(bare, value)
    return f"{value:.4g}" if math.isfinite(value) else str(value)


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def _is_hub_id(name: str | None) -> bool:
    return bool(name) and name != DEMO_DATA and name.count("/") == 1 and not Path(name).exists()


def _count_parameters(path: Path) -> int | None:
    """Parameters of a safetensors file, from its header alone (8-byte length, then JSON with every tensor's shape)."""
    try:
        with open(path, "rb") as handle:
            length = int.from_bytes(handle.read(8), "little")
            header = json.loads(handle.read(length))
    except (OSError, ValueError):
        return None
    return sum(math.prod(entry["shape"]) for name, entry in header.items() if name != "__metadata__")


def _same_path(name: str, path: Path) -> bool:
    try:
        return Path(name).resolve() == path.resolve()
    except OSError:
        return False


def _existing(path: Path) -> Path | None:
    return path if path.is_file() else None


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError):
        return None
