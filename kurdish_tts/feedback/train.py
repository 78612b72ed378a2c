"""`train_feedback.py train`: fine-tune the current model on the feedback items mixed with a replay of its original
training data, and promote the result only if the original held-out sentences did not get worse.

The steps are methods of `FeedbackTraining`, in order:

1. Lineage (`kurdish_tts.feedback.lineage`): the model to start from (the store's current version, else the best model of the last
   training run, which then becomes version 1) and the run it descends from: that run's data arguments, voices and
   held-out clips.
2. Data: the run's data, prepared for the model (the cache is shared with training runs) and split as the run split
   it, so that its held-out clips, the *regression set*, stay frozen; the feedback items, prepared the same way (items
   the model cannot use are skipped, counted and listed); a replay sample of the run's training clips,
   `replay_ratio` of them per item, so that the model does not forget what it knew.
3. Before: the start model evaluated on the regression set and on the feedback items.
4. Training: `VitsTrainer` with every callback of a training run (NaN recovery, best model by the regression set,
   throughput, audio samples, and with `--target_minutes` the time budget), at a low learning rate, short.
5. After: the candidate (the fine-tune's best model) evaluated exactly as the start model was, on the same random
   segments (the same seed), so that the difference is the model's.
6. Decision: a new version becomes current if the regression metric rose by at most `regression_tolerance`;
   otherwise the current model stays and the report says why. Either way, `report.json` and `report.md` say what
   changed.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from datasets import Dataset, concatenate_datasets
from transformers import set_seed

from ..atomic import write_json_atomically, write_text_atomically
from ..data.arguments import DataArguments
from ..data.preprocess import prepare_dataset
from ..errors import UsageError
from ..evaluation.waveform_health import health_problems
from ..models.vits import VitsForTraining
from ..offline import go_offline_if_hub_unreachable
from ..runs.arguments import RunArguments, VitsModelArguments
from ..runs.training_run import SPLIT_NAME
from ..runs.vits_run import VitsRun
from ..trainers import VitsTrainer
from ..trainers.vits_arguments import VitsTrainingArguments
from .arguments import FeedbackArguments
from .lineage import Lineage
from .store import FeedbackStore
from .validation import FeedbackError
from .versions import ModelVersions, VersionConflict

logger = logging.getLogger(__name__)

RUNS_DIR = "runs"
FINAL_MODEL_NAME = "final_model"
REPORT_NAME = "report"


@dataclass
class FeedbackData:
    """The datasets of one feedback fine-tune (prepared caches with the same features), and how they were made.

    Args:
        train (`datasets.Dataset`):
            The usable feedback items followed by the replayed clips of the original training data.
        regression (`datasets.Dataset`):
            The original run's held-out clips.
        feedback (`datasets.Dataset`):
            The usable feedback items.
        speaker_to_id (`dict[str, int]` or `None`):
            The voices of a multi-speaker model.
        items_in_store (`int`), skipped (`list[dict]`):
            Items in the store, and those that could not train (`id`, `reason`, `detail`).
        replay_clips (`int`), replay_pool (`int`):
            Original clips replayed, out of the original training clips.
    """

    train: Dataset
    regression: Dataset
    feedback: Dataset
    speaker_to_id: dict[str, int] | None
    items_in_store: int
    skipped: list[dict]
    replay_clips: int
    replay_pool: int


@dataclass
class Decision:
    """Whether the candidate becomes the current model, why (for people), and the relative change of the metric."""

    promote: bool
    reason: str
    change: float | None = None


class FeedbackTraining:
    """One `train_feedback.py train`: see the module docstring for the steps; `execute()` runs them all.

    Args:
        store (`FeedbackStore`):
            The store whose items train, and whose versions receive the result.
        lineage (`Lineage`):
            From `resolve_lineage`.
        feedback_args (`FeedbackArguments`), data_args (`DataArguments`), training_args (`VitsTrainingArguments`):
            The command's arguments; `data_args` names the original run's data, `training_args.output_dir` is this
            run's folder.
        started (`float`, *optional*):
            `time.time()` when the command began, so that `--target_minutes` covers all of it.
    """

    def __init__(
        self,
        store: FeedbackStore,
        lineage: Lineage,
        feedback_args: FeedbackArguments,
        data_args: DataArguments,
        training_args: VitsTrainingArguments,
        *,
        started: float | None = None,
    ):
        self.store = store
        self.versions = ModelVersions(store)
        self.lineage = lineage
        self.feedback_args = feedback_args
        self.data_args = data_args
        self.args = training_args
        self.started = time.time() if started is None else started
        self.output_dir = Path(training_args.output_dir)
        self.run: VitsRun | None = None
        self.current_at_start: str | None = None

    def say(self, message: str) -> None:
        print(message, flush=True)

    # 1. The start model is a version of the store
    def ensure_version(self) -> None:
        """Import a start model that is not yet a version (it becomes current: it is the model in use), then set up
        the training run's steps for it."""
        lineage = self.lineage
        if lineage.version is None:
            record = {"kind": "imported", "source": str(lineage.model_dir), **lineage.record()}
            lineage.version = self.versions.add(lineage.model_dir, record, make_current=True, event="imported")
            lineage.model_dir = self.versions.path(lineage.version)
            self.say(f"model: {record['source']} imported as {lineage.version} (the current model)")
        self.current_at_start = self.versions.current()
        model_args = VitsModelArguments(
            model_name_or_path=str(lineage.model_dir), model_size=None, **lineage.model_arguments
        )
        # The start model's own tokenizer: its vocabulary is the one the embeddings were trained with.
        self.data_args.tokenizer = str(lineage.model_dir)
        target_hours = None if self.feedback_args.target_minutes is None else self.feedback_args.target_minutes / 60
        run_args = RunArguments(
            target_hours=target_hours,
            eval_samples=max(1, len(lineage.regression_ids)),
            budget_probe_steps=self.feedback_args.budget_probe_steps,
            budget_warmup_steps=self.feedback_args.budget_warmup_steps,
        )
        self.run = VitsRun(model_args, self.data_args, run_args, self.args, started=self.started)

    # 2. Data
    def load_data(self) -> FeedbackData:
        run, lineage = self.run, self.lineage
        prepared = run.load_data()
        dataset, speaker_to_id = run.choose_speakers(prepared.dataset)
        # The run's split, frozen: `split` reads it back instead of drawing a new one.
        write_json_atomically(
            self.output_dir / SPLIT_NAME, {"seed": lineage.split_seed, "eval_ids": lineage.regression_ids}
        )
        original, regression = run.split(dataset)
        if len(regression) == 0:
            raise UsageError(
                f"none of the {len(lineage.regression_ids)} held-out clips of {lineage.run_dir} is in the data "
                f"{self.data_args.data!r}: pass the --data (and options) that run was trained with"
            )
        if len(regression) < len(lineage.regression_ids):
            logger.warning(
                f"{len(lineage.regression_ids) - len(regression)} of the {len(lineage.regression_ids)} held-out clips "
                f"of {lineage.run_dir} are not in the data; the regression set has {len(regression)}"
            )

        config = dataclasses.replace(self.data_args.preprocess_config(), mel=run.mel_config())
        with self.args.main_process_first(desc="preparing the feedback items"):
            items_prepared = prepare_dataset(self.store.load_source(), run.tokenizer, config, self.data_args.cache_dir)
        # One row per item that was in the store when it was read, kept or not.
        statistics = items_prepared.statistics.select_columns(["id", "drop_reason", "error"])
        items = len(statistics)
        skipped = [
            {"id": row["id"], "reason": row["drop_reason"], "detail": row["error"]}
            for row in statistics
            if row["drop_reason"]
        ]
        feedback = items_prepared.dataset
        if speaker_to_id is not None:
            unknown = [(i, s) for i, s in zip(feedback["id"], feedback["speaker"]) if s not in speaker_to_id]
            skipped += [
                {
                    "id": i,
                    "reason": "unknown_speaker",
                    "detail": f"the model has no voice {s!r} (see its speakers.json)",
                }
                for i, s in unknown
            ]
            feedback = feedback.select([k for k, s in enumerate(feedback["speaker"]) if s in speaker_to_id])
        if len(feedback) == 0:
            reasons = ", ".join(f"{item['id']}: {item['reason']}" for item in skipped[:10])
            raise FeedbackError(f"none of the {items} feedback items can train this model ({reasons})")

        count = min(len(original), round(self.feedback_args.replay_ratio * len(feedback)))
        rng = np.random.default_rng(self.args.seed)
        replay = original.select(np.sort(rng.choice(len(original), size=count, replace=False)))
        train = concatenate_datasets([feedback, replay]) if count else feedback
        self.say(
            f"feedback: {len(feedback)} of {items} items used ({len(skipped)} skipped); replay: {count} of "
            f"{len(original)} original training clips (ratio {self.feedback_args.replay_ratio:g}); regression set: "
            f"{len(regression)} held-out clips of {lineage.run_dir}"
        )
        return FeedbackData(train, regression, feedback, speaker_to_id, items, skipped, count, len(original))

    # 3 and 5. Evaluation
    def evaluate(self, model_dir: str | Path, data: FeedbackData) -> dict[str, dict[str, float]]:
        """Unweighted eval losses of the model in `model_dir` on the regression set and the feedback items.

        The model is loaded from disk, so what is measured is exactly what would be promoted; the random choices of
        the evaluation (decoder segments, posterior and duration noise) start from the run's seed every time, so that
        two models are compared on the same segments.
        """
        args = dataclasses.replace(self.args, report_to="none", eval_strategy="no")
        model = VitsForTraining.from_pretrained(model_dir)
        trainer = VitsTrainer(model, args, processing_class=self.run.tokenizer, speaker_to_id=data.speaker_to_id)
        results = {}
        for name, dataset in (("regression", data.regression), ("feedback", data.feedback)):
            set_seed(args.seed)
            # As `VitsTrainer` formats the datasets it is given at construction: numpy rows, not Python lists.
            metrics = trainer.evaluate(dataset.with_format("numpy"))
            results[name] = {
                key.removeprefix("eval_"): float(value)
                for key, value in metrics.items()
                if key.startswith(("eval_loss/", "eval_health/"))
            }
        return results

    # 4. Training
    def train(self, data: FeedbackData):
        run = self.run
        model = run.build_model(run.tokenizer, data.speaker_to_id)
        trainer = run.build_trainer(model, run.tokenizer, data.train, data.regression, data.speaker_to_id)
        if run.run_args.target_hours is not None:
            run.plan_budget(trainer, None, len(data.train))
        result = trainer.train()
        trainer.log_metrics("train", result.metrics)
        trainer.save_model(str(self.output_dir / FINAL_MODEL_NAME))
        return trainer, result

    def candidate(self) -> Path:
        """The fine-tune's best model by the regression set, or its final model when it never evaluated."""
        best = self.output_dir / self.run.best_model.folder_name
        return best if (best / "config.json").is_file() else self.output_dir / FINAL_MODEL_NAME

    # 6. Decision
    def decide(self, before: dict, after: dict) -> Decision:
        metric, tolerance = self.feedback_args.regression_metric, self.feedback_args.regression_tolerance
        if self.run.nan_recovery.gave_up:
            return Decision(False, f"training gave up after {self.run.nan_recovery.recoveries} NaN recoveries")
        if metric not in before["regression"]:
            raise FeedbackError(
                f"the evaluation reports no {metric} (it reports {', '.join(sorted(before['regression']))}); choose "
                "one of those with --regression_metric"
            )
        old, new = before["regression"][metric], after["regression"][metric]
        if not math.isfinite(new):
            return Decision(False, f"the regression {metric} of the new model is {new}")
        if self.feedback_args.require_healthy_audio:
            # The regression metric is a mel loss, which cannot hear a tone or an offset.
            problems = health_problems(
                {key.removeprefix("health/"): value for key, value in after["regression"].items()}
            )
            if problems:
                return Decision(
                    False,
                    f"the new model's audio on the regression set is broken ({'; '.join(problems)}), so "
                    f"{self.current_at_start} stays the current model",
                )
        change = (new - old) / abs(old) if old else 0.0
        summary = f"regression {metric} {old:.4g} -> {new:.4g} ({change:+.1%})"
        # Relative to the magnitude, so that the rule also holds for losses that can be negative (the duration NLL).
        if new <= old + tolerance * abs(old):
            return Decision(True, f"{summary}, within the tolerance of +{tolerance:.1%}", change)
        return Decision(
            False,
            f"{summary}, beyond the tolerance of +{tolerance:.1%}: the new model reads the original held-out "
            f"sentences worse, so {self.current_at_start} stays the current model",
            change,
        )

    def promote(self, candidate: Path, data: FeedbackData, decision: Decision, report_path: Path) -> str | None:
        record = {
            "kind": "feedback",
            "source": str(candidate),
            "trained_from": self.lineage.version,
            "report": str(report_path),
            "feedback_ids": [str(item) for item in data.feedback["id"]],
            "decision": decision.reason,
            **self.lineage.record(),
        }
        try:
            return self.versions.add(
                candidate,
                record,
                make_current=True,
                event="promoted",
                expected_current=self.current_at_start,
                check_current=True,
            )
        except VersionConflict as error:
            decision.promote, decision.reason = False, str(error)
            return None

    def execute(self) -> int:
        if not self.store.items():
            raise FeedbackError(f"{self.store.root} holds no feedback items; add corrections with `add` first")
        self.ensure_version()
        if self.run.needs_hub():
            go_offline_if_hub_unreachable()
        self.output_dir.mkdir(parents=True, exist_ok=True)
        data = self.load_data()
        self.say(f"evaluating {self.lineage.version} before training")
        before = self.evaluate(self.lineage.model_dir, data)
        trainer, result = self.train(data)
        candidate = self.candidate()
        self.say(f"evaluating the candidate {candidate}")
        after = self.evaluate(candidate, data)
        decision = self.decide(before, after)
        report_path = self.output_dir / f"{REPORT_NAME}.json"
        new_version = self.promote(candidate, data, decision, report_path) if decision.promote else None
        if new_version is None:
            self.versions.log_event({"event": "refused", "report": str(report_path), "reason": decision.reason})
        report = self.report(data, before, after, decision, candidate, new_version, trainer, result)
        write_json_atomically(report_path, report)
        markdown = write_text_atomically(report_path.with_suffix(".md"), report_markdown(report))
        verdict = f"promoted as {new_version}" if new_version else "not promoted"
        self.say(
            f"\nFeedback training: {verdict}: {decision.reason}.\n"
            f"  current model: {self.versions.root / 'current'} -> {self.versions.current()}\n"
            f"  report       : {markdown}"
        )
        return 0 if new_version else 1

    def report(self, data, before, after, decision, candidate, new_version, trainer, result) -> dict:
        metric = self.feedback_args.regression_metric
        return {
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "store": str(self.store.root),
            "output_dir": str(self.output_dir),
            "decision": "promoted" if new_version else "refused",
            "reason": decision.reason,
            "started_from": {"version": self.lineage.version, "model_dir": str(self.lineage.model_dir)},
            "candidate": str(candidate),
            "new_version": new_version,
            "current": self.versions.current(),
            "regression": {
                "metric": metric,
                "tolerance": self.feedback_args.regression_tolerance,
                "change": decision.change,
                "clips": len(data.regression),
                "run_dir": self.lineage.run_dir,
                "before": before["regression"],
                "after": after["regression"],
            },
            "feedback": {"before": before["feedback"], "after": after["feedback"]},
            "items": {
                "in_store": data.items_in_store,
                "used": len(data.feedback),
                "used_ids": [str(item) for item in data.feedback["id"]],
                "skipped": data.skipped,
            },
            "replay": {"ratio": self.feedback_args.replay_ratio, "clips": data.replay_clips, "pool": data.replay_pool},
            "training": {
                "steps": trainer.state.global_step,
                "learning_rate": self.args.learning_rate,
                "batch_size": self.args.per_device_train_batch_size * self.args.gradient_accumulation_steps,
                "seconds": result.metrics.get("train_runtime"),
                "nan_recoveries": self.run.nan_recovery.recoveries,
                "best_step": self.run.best_model.best_step,
            },
        }


def report_markdown(report: dict) -> str:
    """The report for people: the decision and why, then what changed, as tables."""
    regression, training = report["regression"], report["training"]
    verdict = f"promoted as {report['new_version']}" if report["new_version"] else "not promoted"
    lines = [
        f"# Feedback training, {report['time']}",
        "",
        f"**Decision: {verdict}.** {report['reason']}.",
        "",
        "| | |",
        "| --- | --- |",
        f"| started from | {report['started_from']['version']} (`{report['started_from']['model_dir']}`) |",
        f"| candidate | `{report['candidate']}` (best step {training['best_step']}) |",
        f"| current model | {report['current']} |",
        f"| feedback items | {report['items']['used']} of {report['items']['in_store']} used |",
        f"| replay | {report['replay']['clips']} of {report['replay']['pool']} original training clips "
        f"(ratio {report['replay']['ratio']:g}) |",
        f"| regression set | {regression['clips']} held-out clips of `{regression['run_dir']}` |",
        f"| training | {training['steps']} steps, learning rate {training['learning_rate']:g}, batch "
        f"{training['batch_size']}, {training['seconds'] or 0:.0f} s, {training['nan_recoveries']} NaN recoveries |",
        "",
        f"Promotion rule: {regression['metric']} on the regression set may rise by at most "
        f"{regression['tolerance']:.1%}.",
    ]
    for title, before, after in (
        ("Regression set (held-out original sentences)", regression["before"], regression["after"]),
        ("Feedback items", report["feedback"]["before"], report["feedback"]["after"]),
    ):
        lines += ["", f"## {title}", "", "| loss | before | after | change |", "| --- | ---: | ---: | ---: |"]
        for key in sorted(before):
            old, new = before[key], after.get(key, float("nan"))
            change = f"{(new - old) / abs(old):+.1%}" if old else "-"
            lines.append(f"| {key} | {old:.4g} | {new:.4g} | {change} |")
    skipped = report["items"]["skipped"]
    lines += ["", f"## Skipped items ({len(skipped)})", ""]
    if skipped:
        lines += ["| id | reason | detail |", "| --- | --- | --- |"]
        lines += [f"| {item['id']} | {item['reason']} | {_cell(item['detail'])} |" for item in skipped]
    else:
        lines.append("None.")
    lines += ["", "## Items used", "", ", ".join(report["items"]["used_ids"]), ""]
    return "\n".join(lines)


def _cell(text: str) -> str:
    # A `|` inside a cell would end it.
    return str(text).replace("|", "\\|").replace("\n", " ")
