"""One training run end to end, whatever the model: `TrainingRun`'s steps, in order, are where to start from, data,
voices, split, model, trainer, time budget, train, best model, sample, summary, publish.

`VitsRun` and `XttsRun` (`vits_run.py`, `xtts_run.py`) add what their model family needs: the mel settings, the voices,
the model, the trainer and its sample. Each step is a method, so a notebook, the doctor and the feedback fine-tune can
run them one by one; `execute()` runs them all. Under `accelerate launch` every process runs every step (they must, for
the collective ones: the probe, training, evaluation); only the main process prepares the cache first, writes files and
prints.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import torch
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint

from ..atomic import write_json_atomically
from ..audio.features import MelConfig
from ..data.preprocess import prepare_dataset
from ..data.validate import ValidationConfig, describe, validate_prepared
from ..errors import UsageError, UserError
from ..evaluation.plots import loss_curve_figure, save_figure
from ..hub import HubPushError, RunFilesError, push_to_hub, take_hub_push
from ..offline import go_offline_if_hub_unreachable
from ..text import KURMANJI_TOKENIZER_NAME
from ..trainers import (
    BestModelCallback,
    NanRecoveryCallback,
    ThroughputCallback,
    apply_plan,
    load_best_model_info,
    load_quarantine,
    measure_step_time,
    plan_remaining,
    plan_run,
)
from ..trainers.budget import BUDGET_NAME
from ..trainers.checkpoints import checkpoint_problem, latest_complete_checkpoint, set_aside
from ..trainers.synthesis_metrics import SynthesisMetricsCallback

# The name predates the XTTS run; logs, and the tests that read them, know the shared steps by it.
logger = logging.getLogger("kurdish_tts.train_vits")

SPLIT_NAME = "data_split.json"
SUMMARY_NAME = "run_summary.json"


def check_launch(training_args, environ=os.environ) -> None:
    """Refuse a multi-process launch that the training arguments do not see as one.

    On a machine without GPUs, `torchrun`/`accelerate launch` start N processes, but accelerate sets up distributed
    training on CPUs only when asked (`--use_cpu true`); otherwise each process believes it is the only one, and N
    copies of the same run write the same output folder at the same time (seen: the best-model folder of one removed
    while another wrote it). GPU launches are set up without being asked.
    """
    launched = int(environ.get("WORLD_SIZE", "1") or 1)
    if launched > 1 and training_args.world_size == 1:
        raise UsageError(
            f"launched as {launched} processes (WORLD_SIZE={launched}), but the training arguments see one process "
            f"({training_args.device}): each would train and write {training_args.output_dir} on its own. On a "
            "machine without GPUs, pass --use_cpu true to train with the processes together (DDP over gloo); "
            "otherwise launch one process."
        )


class TrainingRun:
    """One training run. Arguments are the script's four dataclasses (a model's arguments, `DataArguments`,
    `RunArguments` and the model's `TrainingArguments` subclass); `started` is `time.time()` when the job began, so the
    time budget covers data preparation and model loading too.

    Subclasses define `mel_config`, `choose_speakers`, `build_model`, `build_trainer` (ending in `attach_callbacks`)
    and `synthesize_sample`.
    """

    def __init__(self, model_args, data_args, run_args, training_args, *, started: float | None = None):
        check_launch(training_args)
        self.model_args = model_args
        self.data_args = data_args
        self.run_args = run_args
        self.args = training_args
        self.started = time.time() if started is None else started
        self.output_dir = Path(training_args.output_dir)
        self.is_main = training_args.process_index == 0
        self.plan = None
        self.report_paths = {}
        # Set by `execute` when it resumes; the checkpoint's discriminator then replaces any other.
        self.resume_checkpoint: str | None = None
        # Published once, at the end (the best model with its card), not by the Trainer at every save.
        self.hub_push = take_hub_push(training_args, include_discriminator=run_args.hub_include_discriminator)

    @functools.cached_property
    def tokenizer(self):
        """The tokenizer of the model to train, loaded once (the cache key, the model size and the trainer need it)."""
        return self.data_args.load_tokenizer()

    def say(self, message: str) -> None:
        if self.is_main:
            print(message, flush=True)

    # 1. Where to start from
    def checkpoint_to_resume(self) -> str | None:
        """The checkpoint named by `--resume_from_checkpoint` (a path, or `last`), or `None` for a new run.

        `last` is the newest *complete* checkpoint: a run killed while the Trainer was writing one leaves a folder
        without its `trainer_state.json` (written last), which is skipped, said so, and set aside as
        `incomplete-checkpoint-N` (nothing is deleted). A new run refuses an output folder that already holds
        checkpoints: mixing two runs' checkpoints, budget and best model would make each of them wrong.
        """
        requested = self.args.resume_from_checkpoint
        existing = get_last_checkpoint(str(self.output_dir)) if self.output_dir.is_dir() else None
        if requested is None or str(requested).lower() in {"false", "no", "none"}:
            if existing is not None:
                raise UsageError(
                    f"{self.output_dir} already holds checkpoints (last: {existing}); continue that run with "
                    f"--resume_from_checkpoint last, or start a new one with another --output_dir"
                )
            return None
        complete, incomplete = latest_complete_checkpoint(self.output_dir)
        if str(requested).lower() in {"last", "true", "yes"}:
            for folder, problem in incomplete:
                moved = set_aside(folder) if self.is_main else folder
                logger.warning(
                    f"skipping {folder}: {problem}. Moved to {moved.name}, which nothing reads; delete it when you like"
                    if moved != folder
                    else f"skipping {folder}: {problem}"
                )
            if complete is None:
                raise UsageError(
                    f"--resume_from_checkpoint {requested}: {self.output_dir} holds no complete "
                    f"{PREFIX_CHECKPOINT_DIR}-* folder to resume from; start again with another --output_dir (or "
                    "without --resume_from_checkpoint once the folder is emptied)"
                )
            self.say(f"resuming from {complete}" + (" (the newest complete checkpoint)" if incomplete else ""))
            return str(complete)
        problem = checkpoint_problem(requested) if Path(requested).is_dir() else "it is not a folder"
        if problem is not None:
            newest = f" (it would pick {complete})" if complete is not None else ""
            raise UsageError(
                f"--resume_from_checkpoint {requested} cannot be resumed from: {problem}; resume from the newest "
                f"complete checkpoint with --resume_from_checkpoint last{newest}"
            )
        return str(requested)

    # 2. Data
    def mel_config(self) -> MelConfig:
        """The STFT/mel geometry of the model to train, which the data cache must hold."""
        raise NotImplementedError

    def load_data(self):
        """Prepare (or reuse) the cache on the main process first, then everywhere; validate it."""
        data_args = self.data_args
        # The cache must hold spectrograms in the model's STFT geometry, whatever the tokenizer names.
        config = dataclasses.replace(data_args.preprocess_config(), mel=self.mel_config())
        with self.args.main_process_first(desc="preparing the data cache"):
            prepared = prepare_dataset(
                data_args.load_source(),
                self.tokenizer,
                config,
                data_args.cache_dir,
                num_proc=data_args.preprocessing_num_workers,
                overwrite=data_args.overwrite_cache,
            )
        self.say(describe(prepared))
        report = validate_prepared(prepared, ValidationConfig())
        if self.is_main:
            self.report_paths = report.save(self.output_dir / "data_report")
            self.say(f"data report: {self.report_paths.get('markdown', self.output_dir / 'data_report')}")
        if not report.is_usable:
            raise DataUnusable("the data is unusable:\n- " + "\n- ".join(report.problems))
        return prepared

    # 3. Voices
    def choose_speakers(self, dataset):
        """The clips to train on and the speaker → embedding id mapping (`None` for no speaker embeddings)."""
        raise NotImplementedError

    # 4. Held-out evaluation set
    def split(self, dataset):
        """Hold out `eval_samples` clips (at most a tenth) chosen by a hash of their ids and the seed.

        The choice does not depend on the dataset's order or on clips quarantined later, and it is written to
        `data_split.json`; a resumed run reads it back, so evaluation never sees a clip the model was trained on.
        """
        ids = list(dataset["id"])
        path = self.output_dir / SPLIT_NAME
        saved = _read_json(path)
        if saved is not None:
            eval_ids = set(saved["eval_ids"])
        else:
            count = min(self.run_args.eval_samples, max(1, len(ids) // 10))
            if len(ids) < 2:
                raise UsageError(
                    f"{len(ids)} clip(s) left: training needs at least 2 (one is held out for evaluation)"
                )
            ranked = sorted(ids, key=lambda i: hashlib.sha1(f"{self.args.seed}:{i}".encode()).hexdigest())
            eval_ids = set(ranked[:count])
            if self.is_main:
                write_json_atomically(path, {"seed": self.args.seed, "eval_ids": sorted(eval_ids)})
        is_eval = np.fromiter((i in eval_ids for i in ids), dtype=bool, count=len(ids))
        evaluation = dataset.select(np.flatnonzero(is_eval))
        train = dataset.select(np.flatnonzero(~is_eval))
        quarantined = load_quarantine(self.output_dir)
        if quarantined:
            keep = [index for index, sample_id in enumerate(train["id"]) if sample_id not in quarantined]
            self.say(
                f"quarantine: {len(train) - len(keep)} clips left out (listed in {self.output_dir}/quarantine.json)"
            )
            train = train.select(keep)
        self.say(f"split: {len(train)} training clips, {len(evaluation)} held out for evaluation")
        return train, evaluation

    # 5. Model
    def build_model(self, tokenizer, speaker_to_id: dict[str, int] | None):
        raise NotImplementedError

    def load_pretrained(self, model_class, tokenizer, **kwargs):
        """`model_class.from_pretrained(--model_name_or_path, **kwargs)`; a model that cannot be loaded, or that embeds
        another vocabulary than the tokenizer's, is a usage error that says what to do."""
        name = self.model_args.model_name_or_path
        try:
            model = model_class.from_pretrained(name, **kwargs)
        except OSError as error:
            raise UsageError(offline_message(name, error)) from error
        if model.config.vocab_size != tokenizer.vocab_size:
            raise UsageError(
                f"the tokenizer {self.data_args.tokenizer} has {tokenizer.vocab_size} symbols but the model "
                f"{name} embeds {model.config.vocab_size}: use the model's own tokenizer"
            )
        return model

    # 6. Trainer
    def build_trainer(self, model, tokenizer, train, evaluation, speaker_to_id):
        raise NotImplementedError

    def attach_callbacks(self, trainer, evaluation, mel: MelConfig, **synthesis_options):
        """The callbacks of every run: throughput, NaN recovery, best model and (unless `--synthesis_metrics ''`) the
        synthesis metrics, built with `synthesis_options`."""
        ThroughputCallback(hop_length=mel.hop_length, sampling_rate=mel.sampling_rate).attach(trainer)
        self.nan_recovery = NanRecoveryCallback(
            lr_factor=self.run_args.nan_lr_factor, max_recoveries=self.run_args.nan_max_recoveries
        ).attach(trainer)
        self.best_model = BestModelCallback(require_healthy_audio=self.run_args.best_model_health_check).attach(
            trainer
        )
        self.synthesis_metrics = None
        if self.run_args.synthesis_metrics:
            # After BestModelCallback.attach: it goes in front of it, so the selection sees eval_mcd and the rest.
            self.synthesis_metrics = SynthesisMetricsCallback(
                evaluation,
                self.run_args.synthesis_metrics,
                num_samples=self.run_args.synthesis_metrics_samples,
                every_n_evaluations=self.run_args.synthesis_metrics_every,
                seed=self.args.seed,
                **synthesis_options,
            ).attach(trainer)
        return trainer

    # 7. Time budget
    def plan_budget(self, trainer, checkpoint: str | None, num_train_samples: int):
        target = self.run_args.target_hours * 3600
        timing = measure_step_time(
            trainer, probe_steps=self.run_args.budget_probe_steps, warmup_steps=self.run_args.budget_warmup_steps
        )
        # What follows `train()`: the final evaluation, the best model it may write, the final save.
        final = timing.eval_seconds + 2 * timing.save_model_seconds
        if self.synthesis_metrics is not None:
            # The probe's evaluation runs without callbacks; the synthesis metrics add to every n-th evaluation and
            # to the final one.
            # Timed twice, the second call counts: the first pays one-off costs (JIT compilation in the scoring,
            # first synthesis), which a plan must not charge to every evaluation of the run.
            self.synthesis_metrics.time_evaluation(self.args, trainer.model, trainer.processing_class)
            seconds = self.synthesis_metrics.time_evaluation(self.args, trainer.model, trainer.processing_class)
            every = self.run_args.synthesis_metrics_every
            timing = dataclasses.replace(timing, eval_seconds=timing.eval_seconds + seconds / every)
            final += seconds
        elapsed = time.time() - self.started
        common = {
            "args": self.args,
            "num_train_samples": num_train_samples,
            "final_overhead_seconds": final,
            "min_steps": self.run_args.budget_min_steps,
        }
        try:
            if checkpoint is None:
                plan = plan_run(timing, target, elapsed_seconds=elapsed, **common)
            else:
                plan = plan_remaining(timing, target, checkpoint=checkpoint, elapsed_seconds=elapsed, **common)
        except ValueError as error:
            raise UsageError(
                f"{error}; raise --target_hours, or pass --budget_min_steps N to train N steps anyway and end late"
            ) from error
        if plan.requested_target_seconds is not None:
            logger.warning(
                f"this machine is too slow (or too busy) for --target_hours {self.run_args.target_hours:g}: "
                f"{plan.elapsed_seconds:.0f} s were spent before training and a step takes {plan.seconds_per_step:.2f} "
                f"s, so the {plan.steps - plan.start_step} steps of --budget_min_steps end about "
                f"{plan.target_seconds - plan.requested_target_seconds:.0f} s after the "
                f"{plan.requested_target_seconds:.0f} s asked for"
            )
        apply_plan(trainer, plan)
        self.plan = plan
        if self.is_main:
            (self.output_dir / "plan.md").write_text(plan.to_markdown() + "\n", encoding="utf-8")
        self.say(f"\nTraining plan ({self.output_dir / 'plan.md'}):\n{plan.to_markdown()}\n")
        return plan

    # 8. The end: sample, curve, summary
    def synthesize_sample(self, model_dir: Path, speaker_to_id) -> Path:
        """One sentence (`--sample_text`) synthesized with the saved model in `model_dir`, written to `sample.wav`."""
        raise NotImplementedError

    def needs_hub(self) -> bool:
        """Whether the data, the tokenizer or the base model is named by a Hub id rather than built in or local."""
        local = {"demo", KURMANJI_TOKENIZER_NAME}
        names = [self.data_args.data, self.data_args.tokenizer]
        if self.model_args.model_size is None:
            names.append(self.model_args.model_name_or_path)
        return any(name not in local and not Path(name).exists() for name in names)

    def fetch_before_data(self) -> None:
        """Fetch what may have to come from the Hub before the data work, which can take long (nothing by default)."""

    def execute(self) -> int:
        checkpoint = self.resume_checkpoint = self.checkpoint_to_resume()
        if self.needs_hub():
            go_offline_if_hub_unreachable()
        self.fetch_before_data()
        created = self.is_main and not self.output_dir.exists()
        if self.is_main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
        try:
            prepared = self.load_data()
        except DataUnusable as error:
            print(f"error: {error}")
            return 1
        except BaseException:
            # A source that cannot be read (a wrong --data path) must not leave an empty run folder behind.
            if created and not any(self.output_dir.iterdir()):
                self.output_dir.rmdir()
            raise
        tokenizer = self.tokenizer
        dataset, speaker_to_id = self.choose_speakers(prepared.dataset)
        train, evaluation = self.split(dataset)
        model = self.build_model(tokenizer, speaker_to_id)
        trainer = self.build_trainer(model, tokenizer, train, evaluation, speaker_to_id)
        if self.run_args.target_hours is not None:
            self.plan_budget(trainer, checkpoint, len(train))
        elif checkpoint is None and self.args.max_steps <= 0:
            self.say(f"no --target_hours: training {self.args.num_train_epochs:g} epochs")

        result = trainer.train(resume_from_checkpoint=checkpoint)
        trainer.log_metrics("train", result.metrics)
        trainer.save_metrics("train", result.metrics)
        metrics = trainer.evaluate()
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)
        trainer.save_model()
        trainer.save_state()
        _release_loader_workers(trainer)
        if not self.is_main:
            return 1 if self.nan_recovery.gave_up else 0

        best_dir = self.output_dir / self.best_model.folder_name
        if not (best_dir / "config.json").is_file() and self.best_model.refused:
            # No evaluation passed the waveform-health gate: the sample comes from the final model, and the summary
            # says in plain words that there is no best model to hand out.
            step, problems = self.best_model.refused[-1]
            print(
                f"warning: no best model: the audio of every evaluation was broken (at step {step}: "
                f"{'; '.join(problems)}). The final model is in {self.output_dir}; it is not fit to publish."
            )
            best_dir = self.output_dir
        try:
            sample = self.synthesize_sample(best_dir, speaker_to_id)
        except Exception:
            # The model is trained and saved; a failed sample must not turn the run into a failure.
            logger.exception(f"could not synthesize the sample with {best_dir}")
            sample = None
        curve = save_figure(loss_curve_figure(trainer.state.log_history), self.output_dir / "loss_curve.png")
        summary = self.summarize(trainer, best_dir, sample, curve)
        write_json_atomically(self.output_dir / SUMMARY_NAME, summary)
        if self.nan_recovery.gave_up:
            print(
                f"error: training stopped after {self.nan_recovery.recoveries} NaN recoveries; the last good state is "
                f"in {trainer.state.best_model_checkpoint or self.output_dir}; see {self.output_dir / 'quarantine.json'}"
            )
            return 1
        if self.hub_push is not None:
            if summary["best_model"] is None:
                print(
                    "error: not publishing: no evaluation of this run produced healthy audio, and a broken voice is "
                    "never pushed (see the warning above)"
                )
                return 1
            return self.publish()
        return 0

    # 9. Publish
    def publish(self) -> int:
        """Push the best model with its model card (`kurdish_tts.hub.push_to_hub`); the run's files stay as they are."""
        request = self.hub_push
        try:
            result = push_to_hub(
                self.output_dir,
                request.repo_id,
                token=request.token,
                private=request.private,
                include_discriminator=request.include_discriminator,
            )
        except (HubPushError, RunFilesError) as error:
            print(
                f"error: publishing failed: {error}\nThe trained model is in {self.output_dir}; publish it later with "
                f"python scripts/push_to_hub.py {self.output_dir} --repo_id {request.repo_id}"
            )
            return 1
        print(f"  published  : {result.url} ({len(result.files)} files, commit {result.commit})", flush=True)
        return 0

    def summarize(self, trainer, best_dir: Path, sample: Path, curve: Path) -> dict:
        finished = time.time()
        info = load_best_model_info(self.output_dir, self.best_model.folder_name) or {}
        healthy_best = best_dir != self.output_dir
        summary = {
            "output_dir": str(self.output_dir),
            "best_model": str(best_dir) if healthy_best else None,
            "audio_problems": []
            if healthy_best
            else (self.best_model.refused[-1][1] if self.best_model.refused else []),
            "best_metric": {info.get("metric"): info.get("value")} if info else None,
            "best_step": info.get("step"),
            "global_step": trainer.state.global_step,
            "sample": None if sample is None else str(sample),
            "loss_curve": str(curve),
            "data_report": str(self.report_paths.get("markdown", "")),
            "quarantined": sorted(load_quarantine(self.output_dir)),
            "nan_recoveries": self.nan_recovery.recoveries,
            "job_seconds": finished - self.started,
            "hardware": _hardware(self.args),
            "sample_text": self.run_args.sample_text,
            "synthesis_metrics": {
                "metrics": self.run_args.synthesis_metrics,
                "samples": self.run_args.synthesis_metrics_samples,
                "every_n_evaluations": self.run_args.synthesis_metrics_every,
            },
            # What the run was trained on: `train_feedback.py train` replays this data and re-selects these voices.
            "arguments": {"model": dataclasses.asdict(self.model_args), "data": dataclasses.asdict(self.data_args)},
        }
        summary.update(self.summary_extras())
        lines = [
            "",
            f"Done: {trainer.state.global_step} steps.",
            f"  best model : {best_dir}  (step {info.get('step')}, {info.get('metric')} = {info.get('value', 0):.4g})"
            if healthy_best
            else "  best model : none (no evaluation passed the waveform-health checks; see the warning above)",
            f"  sample     : {sample or 'not written (see the error above)'}",
            f"  loss curve : {curve}",
            f"  data report: {summary['data_report']}",
            f"  TensorBoard: tensorboard --logdir {self.output_dir / 'runs'}",
            f"  quarantine : {len(summary['quarantined'])} clips",
        ]
        if self.plan is not None:
            budget = _read_json(self.output_dir / BUDGET_NAME) or {}
            actual = finished - self.plan.started_at
            summary["budget"] = {
                "target_seconds": self.plan.target_seconds,
                "requested_target_seconds": self.plan.requested_target_seconds or self.plan.target_seconds,
                "planned_seconds": self.plan.elapsed_seconds + self.plan.predicted_seconds,
                "actual_seconds": actual,
                "deviation": actual / self.plan.target_seconds - 1,
                "planned_steps": self.plan.steps,
                "stopped_early": bool(budget.get("stopped_early", False)),
            }
            raised = self.plan.requested_target_seconds
            lines.append(
                f"  budget     : {actual / 60:.1f} min of {self.plan.target_seconds / 60:.1f} min "
                f"({summary['budget']['deviation']:+.1%}); {trainer.state.global_step} of {self.plan.steps} planned steps"
                + (f"; raised from {raised / 60:.1f} min for the minimum steps on this machine" if raised else "")
            )
        print("\n".join(lines), flush=True)
        return summary

    def summary_extras(self) -> dict:
        """What the model family adds to `run_summary.json` (nothing by default)."""
        return {}


def leave_process_group() -> None:
    """End this process's part in a distributed run before the interpreter's shutdown does: a gloo group destroyed
    there, after a peer has already closed its end, can abort the process ("terminate called without an active
    exception") on a busy machine, turning a finished run into exit status -6."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def _hardware(args) -> str:
    """What the run trained on, for its model card: e.g. `1 × NVIDIA H100 80GB HBM3` or `CPU (16 cores)`."""
    if args.device.type == "cuda":
        return f"{args.world_size} × {torch.cuda.get_device_name(args.device)}"
    return f"{args.device.type.upper()} ({os.cpu_count()} cores)" + (
        f" × {args.world_size} processes" if args.world_size > 1 else ""
    )


def _release_loader_workers(trainer) -> None:
    """Stop the evaluation loader's persistent workers now rather than at interpreter exit, where their shutdown was
    seen to hold the process for tens of seconds past the end of the job (and of its time budget)."""
    for loader in getattr(trainer, "_eval_dataloaders", {}).values():
        iterator = getattr(loader, "_iterator", None)
        if iterator is not None and hasattr(iterator, "_shutdown_workers"):
            iterator._shutdown_workers()
    if hasattr(trainer, "_eval_dataloaders"):
        trainer._eval_dataloaders = {}


def offline_message(name: str, error: Exception) -> str:
    return (
        f"could not load the model {name!r} ({type(error).__name__}: {str(error).splitlines()[0]}).\n"
        "Offline? Start from a local model folder (--model_name_or_path runs/<run>/best_model), or from random "
        "weights (--model_size tiny|small|mms; the tokenizer then defaults to the built-in Kurmanji one), "
        "or run the bundled offline demo: --recipe demo"
    )


class DataUnusable(UserError, RuntimeError):
    """The validation report found the prepared data unusable (exit status 1)."""

    exit_code = 1


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError):
        return None
