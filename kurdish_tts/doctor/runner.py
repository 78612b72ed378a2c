"""`run_doctor`: every check, in the order a run meets the problems, built with the training script's own steps.

The data, the voices, the split, the model and the throughput probe's trainer come from `VitsRun`, the class
`kurdish-tts train` runs, with the same four argument dataclasses: the doctor checks exactly what training would run.
Only the probes' trainers differ, and only where a probe must (see `probing`).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

from transformers.trainer_utils import IntervalStrategy

from ..models.vits.speakers import speaker_conditioning_keys
from ..trainers import AudioSampleCallback, BestModelCallback
from ..trainers.synthesis_metrics import SynthesisMetricsCallback
from .arguments import DoctorArguments
from .batch_size import run_batch_size_probe
from .consistency import check_consistency
from .environment import MachineFacts, check_environment, machine_facts
from .probing import probe_arguments, probe_directory, release_memory, restore_weights, snapshot_weights
from .recipe import check_recipe, check_weight_precision
from .report import Check, DoctorReport, Status, skipped
from .throughput import run_throughput_probe, suggest_workers, throughput_checks
from .training_probe import run_training_probe

logger = logging.getLogger(__name__)
# The rows that stand for whole sections when they cannot run.
_PROBED = (
    ("consistency", "model vs data"),
    ("training probe", "training on one batch"),
    ("throughput", "speed and batch size"),
)


def run_doctor(
    model_args,
    data_args,
    run_args,
    training_args,
    doctor_args: DoctorArguments | None = None,
    *,
    facts: MachineFacts | None = None,
    say: Callable[[str], None] = print,
) -> DoctorReport:
    """Check the machine, the recipe, the data against the model, and (unless skipped) train and time a few steps.

    Example:

    ```python
    >>> from kurdish_tts.cli.train_vits import parse
    >>> from kurdish_tts.doctor import DoctorArguments, run_doctor
    >>> report = run_doctor(*parse(["--recipe", "demo"]), DoctorArguments(skip_throughput_probe=True))
    >>> print(report.to_table()); report.save("runs/demo/doctor_report.json")
    ```

    Args:
        model_args, data_args, run_args, training_args:
            The four argument dataclasses of `kurdish-tts train` (`kurdish_tts.runs.arguments`; `kurdish_tts.cli.train_vits.parse` builds them).
        doctor_args (`DoctorArguments`, *optional*):
            Which probes to run and how long.
        facts (`MachineFacts`, *optional*):
            The machine; read with `machine_facts()` when not given.
        say (`Callable[[str], None]`, *optional*, defaults to `print`):
            Where progress lines go.

    Returns:
        `DoctorReport`: its `exit_code` is 1 when a check failed.

    Raises:
        `UsageError`, `DataSourceError`: what `kurdish-tts train` would stop on at once (a model that cannot be loaded
        offline, missing data): the message says what to do.
    """
    from ..errors import UsageError
    from ..offline import go_offline_if_hub_unreachable
    from ..runs.training_run import SPLIT_NAME, DataUnusable
    from ..runs.vits_run import VitsRun
    from ..trainers.nan_recovery import QUARANTINE_NAME

    doctor_args = doctor_args or DoctorArguments()
    facts = facts or machine_facts()
    if training_args.world_size > 1:
        raise UsageError(
            "run the doctor as one process (python scripts/doctor.py ...), not under accelerate launch or torchrun; "
            "it probes one GPU and judges the workers for all of them"
        )
    fine_tuning = model_args.model_size is None
    report = DoctorReport(
        context={
            "model": model_args.model_name_or_path if fine_tuning else f"random init, size {model_args.model_size}",
            "data": data_args.data,
            "tokenizer": data_args.tokenizer,
            "recipe": run_args.recipe,
            "output_dir": training_args.output_dir,
            "doctor_dir": str(doctor_args.folder(training_args.output_dir)),
            "device": facts.describe_gpu() if facts.has_gpu and not training_args.use_cpu else "cpu",
            "versions": facts.versions,
        }
    )

    say("doctor: checking the environment and the recipe")
    report.add(check_environment(training_args, facts, model_size=model_args.model_size))
    run = VitsRun(model_args, data_args, run_args, training_args)
    # The recipe's stable ranges depend on whether the discriminator is pretrained, which `--discriminator` decides
    # (downloading MMS's here rather than when the model is built).
    discriminator = run.discriminator_source
    report.context["discriminator"] = discriminator.description
    report.add(check_recipe(training_args, fine_tuning=fine_tuning, fresh_discriminator=discriminator.is_fresh))

    # Everything the doctor writes goes to its own folder: a finished run's data report, split and speakers stay as
    # they are. What a resumed run would read from the run's folder (its split, its quarantined clips) is read there.
    run_dir = Path(training_args.output_dir)
    doctor_dir = doctor_args.folder(run_dir)
    doctor_dir.mkdir(parents=True, exist_ok=True)
    for name in (SPLIT_NAME, QUARANTINE_NAME):
        if (run_dir / name).is_file() and not (doctor_dir / name).exists():
            shutil.copy2(run_dir / name, doctor_dir / name)
    training_args = copy.copy(training_args)
    training_args.output_dir = str(doctor_dir)

    say("doctor: preparing the data as `kurdish-tts train` would")
    run = VitsRun(model_args, data_args, run_args, training_args)
    # The discriminator was resolved above (and downloaded, if it had to be); the run in the doctor's folder reuses it.
    run.discriminator_source = discriminator
    if run.needs_hub():
        go_offline_if_hub_unreachable()
    try:
        prepared = run.load_data()
    except DataUnusable as error:
        report.add(
            Check(
                "data",
                "usable data",
                Status.FAIL,
                str(error),
                f"see {Path(training_args.output_dir) / 'data_report' / 'report.md'}; `kurdish-tts validate` with the "
                "same data flags explains each finding",
            )
        )
        for section, name in _PROBED:
            report.add(skipped(section, name, "needs usable data"))
        return report
    dataset, speaker_to_id = run.choose_speakers(prepared.dataset)
    train, evaluation = run.split(dataset)
    report.add(_data_summary(prepared, train, evaluation))

    say("doctor: building the model")
    model = run.build_model(run.tokenizer, speaker_to_id)
    report.add(check_weight_precision(training_args, {p.dtype for p in model.parameters()}))
    expected = dataclasses.replace(data_args.preprocess_config(), mel=run.mel_config())
    report.add(
        check_consistency(
            model, run.tokenizer, prepared, expected, train, speaker_to_id, sample_text=run_args.sample_text
        )
    )
    weights = snapshot_weights(model)

    if doctor_args.skip_training_probe:
        report.add(skipped(*_PROBED[1], "--skip_training_probe"))
    else:
        say(f"doctor: training {doctor_args.training_probe_steps} steps on one repeated batch")
        report.add(_training_probe(model, run, train, speaker_to_id, doctor_args))
        restore_weights(model, weights)
        release_memory()

    if doctor_args.skip_throughput_probe:
        report.add(skipped(*_PROBED[2], "--skip_throughput_probe"))
        return report
    steps, warmup = doctor_args.throughput_probe_steps, doctor_args.throughput_warmup_steps
    say(f"doctor: timing {warmup} + {steps} steps on the real dataloader")
    report.add(_throughput_probe(model, run, train, evaluation, speaker_to_id, doctor_args, report))
    restore_weights(model, weights)
    release_memory()
    if training_args.device.type != "cuda":
        report.add(
            Check(
                "throughput",
                "batch size",
                Status.OK,
                "the suggestion fits the batch to GPU memory and needs a CUDA GPU; this run trains on the CPU",
            )
        )
        return report
    say("doctor: measuring peak GPU memory on the longest clips")
    report.add(_batch_size_probe(model, run, train, speaker_to_id, weights, doctor_args, report))
    return report


def _data_summary(prepared, train, evaluation) -> Check:
    info = prepared.info
    dropped = ", ".join(f"{count} {reason}" for reason, count in info.get("dropped", {}).items()) or "none dropped"
    return Check(
        "data",
        "prepared data",
        Status.OK,
        f"{len(train)} training clips, {len(evaluation)} held out ({info.get('kept_hours', 0.0) * 60:.1f} min kept of "
        f"{info.get('samples')} source clips; {dropped}); cache {prepared.path}",
        details={"train_clips": len(train), "eval_clips": len(evaluation), "cache": str(prepared.path), **info},
    )


def _unused_parameters(model, speaker_to_id) -> set[str]:
    """Speaker-conditioning parameters of a multi-speaker model that this run feeds no speaker ids (the consistency
    check warns about that; the probe should not report the same thing as dead gradients)."""
    if model.config.num_speakers <= 1 or speaker_to_id:
        return set()
    names = {name for name, _ in model.named_parameters()}
    return {f"vits.{key}" for key in speaker_conditioning_keys(model.config)} & names


def _training_probe(model, run, train, speaker_to_id, doctor_args: DoctorArguments) -> list[Check]:
    try:
        result = run_training_probe(
            model,
            run.args,
            train,
            run.tokenizer,
            speaker_to_id,
            steps=doctor_args.training_probe_steps,
            unused_parameters=_unused_parameters(model, speaker_to_id),
        )
    except Exception as error:  # noqa: BLE001 - e.g. the trainer refusing the arguments, as train would
        return [Check("training probe", "training on one batch", Status.FAIL, f"could not start: {error}")]
    return result.checks()


def _throughput_probe(model, run, train, evaluation, speaker_to_id, doctor_args, report: DoctorReport) -> list[Check]:
    args = run.args
    steps, warmup = doctor_args.throughput_probe_steps, doctor_args.throughput_warmup_steps
    with probe_directory(args.output_dir) as scratch:
        probe_args = probe_arguments(
            args,
            scratch,
            max_steps=warmup + steps,
            # Only the probe's own logs (after the warm-up and at the end), so that the timed window is one window.
            logging_strategy=IntervalStrategy.STEPS,
            logging_steps=10**9,
            logging_first_step=False,
        )
        # `build_trainer` reads the run's arguments; for the probe they are the probe's.
        run.args = probe_args
        try:
            trainer = run.build_trainer(model, run.tokenizer, train, evaluation, speaker_to_id)
        except Exception as error:  # noqa: BLE001 - the training script would stop on it too
            return [Check("throughput", "training speed", Status.FAIL, f"the trainer could not be built: {error}")]
        finally:
            run.args = args
        # They act only at evaluations and saves, which the probe turns off, and would say so at its end.
        for callback in (BestModelCallback, AudioSampleCallback, SynthesisMetricsCallback):
            trainer.remove_callback(callback)
        result = run_throughput_probe(trainer, warmup_steps=warmup, steps=steps)
        del trainer
    report.measurements.update(result.measurements())
    workers, why = suggest_workers(
        result.data_wait_share, result.workers, result.cpu_count, result.processes, result.device == "cuda"
    )
    report.measurements["dataloader_workers"] = {
        "current": result.workers,
        "suggested": workers,
        "cpu_count": result.cpu_count,
        "why": why,
    }
    return throughput_checks(result, num_train_samples=len(train), target_hours=run.run_args.target_hours)


def _batch_size_probe(model, run, train, speaker_to_id, weights, doctor_args, report: DoctorReport) -> list[Check]:
    try:
        batch = run_batch_size_probe(
            model,
            run.args,
            train,
            run.tokenizer,
            speaker_to_id,
            weights,
            headroom=doctor_args.memory_headroom,
            verify=doctor_args.verify_batch_suggestion,
            model_size=run.model_args.model_size,
        )
    except Exception as error:  # noqa: BLE001 - reported, so that the other checks still reach the report
        return [Check("throughput", "batch size", Status.FAIL, f"the memory probe raised {error!r}")]
    finally:
        restore_weights(model, weights)
        release_memory()
    report.measurements["batch_suggestion"] = batch.to_dict()
    return batch.checks()
