"""Score models on held-out clips: MCD, duration ratio, F0 RMSE, real-time factor, stop failures, and CER.

    python scripts/evaluate.py runs/demo --data demo
    python scripts/evaluate.py runs/a/best_model runs/b/best_model --data path/to/cv-corpus/kmr --max_samples 200
    kurdish-tts evaluate runs/mms --data path/to/cv-corpus/kmr --asr_model path/to/kmr-wav2vec2-ctc

Each MODEL_DIR is a model folder or a training run (its `best_model/` is scored). Without `--data`, the data the runs
were trained on is used. Every model synthesizes the same clips: those held out from training by each model's run
(`data_split.json`, intersected), else the first `--max_samples` clips with a warning. Writes `evaluation.json`
(every number, per clip too) and `evaluation.md` (the table, models side by side) into `--output_dir` (default:
`<run>/evaluation` for one run, where the model card of `scripts/push_to_hub.py` finds it).

Of the data options (`kurdish-tts prepare --help`), those that choose the source apply, and `--trim_top_db` (default
40 here: edge silence is trimmed from both clips before scoring). No cache is built: every model must hear the same
clips, whatever its tokenizer.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..data.arguments import DataArguments
from ..errors import UsageError, read_text
from ..evaluation.catalog import DEFAULT_TRIM_TOP_DB
from .entry_point import CommandParser, check_output_folder, entry_point

logger = logging.getLogger("kurdish_tts.evaluate")

# The DataArguments that choose the clips; taken from the runs when --data is not given.
SOURCE_FIELDS = (
    "data",
    "data_kind",
    "split",
    "audio_column",
    "text_column",
    "speaker_column",
    "id_column",
    "min_up_votes",
    "max_down_votes",
)


@dataclass
class EvaluationArguments:
    r"""
    What to compute and where to write it; the models are the positional arguments.

    metrics (`str`, *optional*, defaults to `"mcd,duration,f0,rtf,stop_failure"`):
        Comma-separated metric groups (`mcd`, `duration`, `f0`, `rtf`, `stop_failure`, `cer`) or `all`; `cer` is
        added by `--asr_model`.
    max_samples (`int`, *optional*, defaults to `100`):
        Clips scored (the first ones in id order among the held-out clips).
    asr_model (`str`, *optional*):
        A transformers CTC model (local folder or Hub id) that transcribes the synthesized clips, for CER.
    split_file (`str`, *optional*):
        A `data_split.json` whose `eval_ids` are the clips to score (default: the models' own).
    all_clips (`bool`, *optional*, defaults to `False`):
        Ignore the models' `data_split.json` and score any clip of the data.
    """

    output_dir: str | None = field(
        default=None, metadata={"help": "Where evaluation.json/.md go (default: <run>/evaluation, or ./evaluation)."}
    )
    metrics: str = field(
        default="mcd,duration,f0,rtf,stop_failure",
        metadata={"help": "Comma-separated: mcd, duration, f0, rtf, stop_failure, cer (or all)."},
    )
    max_samples: int | None = field(default=100, metadata={"help": "Clips to score (first ones by id)."})
    asr_model: str | None = field(
        default=None, metadata={"help": "A transformers CTC model (folder or Hub id) for the character error rate."}
    )
    split_file: str | None = field(
        default=None, metadata={"help": "A data_split.json whose eval_ids are the clips (default: the models' own)."}
    )
    all_clips: bool = field(default=False, metadata={"help": "Score any clip, ignoring the models' data_split.json."})
    device: str | None = field(default=None, metadata={"help": "cpu, cuda, cuda:1, ... (default: cuda if available)."})
    seed: int = field(default=0, metadata={"help": "Seed of the synthesis noise."})


def make_parser() -> CommandParser:
    return CommandParser((DataArguments, EvaluationArguments), description=__doc__.splitlines()[0])


def parse(argv: list[str] | None):
    """`(data_args, eval_args, model_dirs, data_given)`: the models are the arguments that are not options;
    `data_given` says whether `--data` was on the command line (else the runs' own data is used)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = make_parser()
    # Edge silence is trimmed from both the recording and the synthesized clip before scoring (DataArguments' flag).
    parser.set_defaults(trim_top_db=DEFAULT_TRIM_TOP_DB)
    data_args, eval_args, rest = parser.parse_args_into_dataclasses(args=argv, return_remaining_strings=True)
    if any(arg.startswith("-") for arg in rest):
        raise UsageError(parser.unknown_arguments_message(rest))
    if not rest:
        raise UsageError("name at least one MODEL_DIR (a model folder or a training run's output folder)")
    if eval_args.max_samples is not None and eval_args.max_samples < 1:
        raise UsageError(f"--max_samples must be at least 1, got {eval_args.max_samples}")
    check_output_folder(eval_args.output_dir, "--output_dir")
    data_given = any(arg == "--data" or arg.startswith("--data=") for arg in argv)
    return data_args, eval_args, rest, data_given


@entry_point
def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.WARNING)
    # The package's progress at INFO; the HTTP client's per-request INFO lines would drown it.
    logging.getLogger("kurdish_tts").setLevel(logging.INFO)
    data_args, eval_args, model_dirs, data_given = parse(argv)
    return run(data_args, eval_args, model_dirs, data_given=data_given)


def run(data_args: DataArguments, eval_args: EvaluationArguments, model_dirs: list[str], *, data_given=True) -> int:
    # Heavy imports after argument checks, so that `--help` and bad flags answer at once.
    import torch

    from ..evaluation.asr import CtcTranscriber
    from ..evaluation.catalog import parse_metric_groups
    from ..evaluation.evaluator import evaluate_synthesizer
    from ..evaluation.mcd import DEFAULT_NUM_COEFFICIENTS
    from ..evaluation.report import build_report, markdown_table, write_report
    from ..evaluation.synthesis import VitsSynthesizer, load_items
    from ..hub import RunFilesError, find_run_files
    from ..offline import go_offline_if_hub_unreachable

    try:
        groups = parse_metric_groups(eval_args.metrics)
    except ValueError as error:
        raise UsageError(f"--metrics: {error}") from None
    if eval_args.asr_model is not None and "cer" not in groups:
        groups = parse_metric_groups([*groups, "cer"])
    if "cer" in groups and eval_args.asr_model is None:
        raise UsageError("the cer metric needs --asr_model (a transformers CTC model)")
    try:
        runs = [find_run_files(path) for path in model_dirs]
    except RunFilesError as error:
        raise UsageError(str(error)) from None
    if not data_given:
        data_args = _data_of_runs(runs, data_args)
    ids, note, held_out = _held_out_ids(runs, eval_args)
    device = eval_args.device or ("cuda" if torch.cuda.is_available() else "cpu")

    if not Path(data_args.data).exists() and data_args.data != "demo":
        go_offline_if_hub_unreachable()
    source = data_args.load_source()
    try:
        items = load_items(source.dataset, ids=ids, max_samples=eval_args.max_samples)
    except ValueError as error:
        raise UsageError(f"{error}; check --data (the clips the models were trained and held out on)") from None
    print(f"{len(items)} clips from {data_args.data}. {note}", flush=True)

    transcriber = None
    if eval_args.asr_model is not None:
        if not Path(eval_args.asr_model).exists():
            go_offline_if_hub_unreachable()
        try:
            transcriber = CtcTranscriber.from_pretrained(eval_args.asr_model, device)
        except OSError as error:
            raise UsageError(str(error)) from None

    evaluations = []
    for index, run_files in enumerate(runs, start=1):
        print(f"model {index}/{len(runs)}: {run_files.model_dir}", flush=True)
        try:
            synthesizer = VitsSynthesizer.from_pretrained(run_files.model_dir, device, seed=eval_args.seed)
        except (OSError, ValueError) as error:
            raise UsageError(f"could not load {run_files.model_dir} as a VITS model: {error}") from None
        evaluation = evaluate_synthesizer(
            synthesizer, items, groups, transcriber=transcriber, trim_top_db=data_args.trim_top_db, progress=True
        )
        evaluations.append(evaluation)
        if evaluation.failures:
            logger.warning(f"{len(evaluation.failures)} clip(s) could not be fully scored; see evaluation.json")

    report = build_report(
        evaluations,
        data={
            "source": data_args.data,
            "clips": len(items),
            "ids": [item.id for item in items],
            "held_out": held_out,
            "note": note,
        },
        settings={
            "metrics": list(groups),
            "trim_top_db": data_args.trim_top_db,
            "num_coefficients": DEFAULT_NUM_COEFFICIENTS,
            "seed": eval_args.seed,
            "device": device,
        },
    )
    output_dir = Path(eval_args.output_dir or _default_output_dir(runs))
    paths = write_report(report, output_dir)
    print("\n" + markdown_table(report["models"]) + "\n")
    print(f"report: {paths['markdown']}\n        {paths['json']}", flush=True)
    if all(not any(value is not None for value in model["metrics"].values()) for model in report["models"]):
        print("error: no metric could be computed for any clip; see the per-clip errors in evaluation.json")
        return 1
    return 0


def _held_out_ids(runs, eval_args: EvaluationArguments) -> tuple[list[str] | None, str, bool]:
    """The clip ids to score, a sentence saying where they come from, and whether they are held out."""
    if eval_args.split_file is not None:
        try:
            ids = json.loads(read_text(eval_args.split_file))["eval_ids"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise UsageError(f"--split_file {eval_args.split_file}: not a data_split.json ({error})") from None
        return ids, f"Clips: the eval_ids of {eval_args.split_file}.", True
    if eval_args.all_clips:
        return None, "Clips: any clip of the data (--all_clips); some may have been trained on.", False
    splits = [set(run.split["eval_ids"]) for run in runs if run.split is not None]
    if not splits:
        logger.warning("no data_split.json next to the models: the clips scored may include training clips")
        return None, "No data_split.json next to the models: the clips may include training clips.", False
    ids = sorted(set.intersection(*splits))
    if not ids:
        raise UsageError(
            "the models' data_split.json files share no held-out clip (they were split differently); pass "
            "--split_file one of them, or --all_clips"
        )
    missing = len(runs) - len(splits)
    note = f"Clips held out from training by every model's data_split.json ({len(ids)} ids)."
    if missing:
        note += f" {missing} model(s) without a data_split.json may have trained on them."
    return ids, note, missing == 0


def _data_of_runs(runs, data_args: DataArguments) -> DataArguments:
    """Without `--data`: the data the models were trained on, when their runs recorded it and agree."""
    recorded = [(run.summary or {}).get("arguments", {}).get("data") for run in runs]
    if not recorded or any(value is None for value in recorded):
        return data_args
    sources = [{name: value.get(name) for name in SOURCE_FIELDS} for value in recorded]
    if any(source != sources[0] for source in sources):
        raise UsageError("the models were trained on different data; name the evaluation data with --data")
    return dataclasses.replace(data_args, **sources[0])


def _default_output_dir(runs) -> Path:
    if len(runs) == 1 and runs[0].run_dir is not None:
        return runs[0].run_dir / "evaluation"
    return Path("evaluation")
