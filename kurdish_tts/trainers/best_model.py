"""`BestModelCallback`: keep `output_dir/best_model`, the best model so far by an evaluation metric, loadable as is."""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.distributed as dist
from accelerate.utils import extract_model_from_parallel
from transformers import Trainer, TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from ..atomic import write_json_atomically
from ..evaluation.catalog import METRIC_GROUPS
from ..evaluation.metrics import set_health_problems
from ..evaluation.waveform_health import health_problems

logger = logging.getLogger(__name__)

BEST_MODEL_INFO_NAME = "best_model.json"
DEFAULT_METRIC = "eval_loss/mel"
# Arguments of this package's trainers worth keeping next to a model, when the arguments have them.
_EXTRA_ARGUMENTS = ("gan_update", "discriminator_learning_rate", "discriminator_warmup_steps", "segment_frames")


class BestModelCallback(TrainerCallback):
    """Keep `output_dir/best_model`: the model of the best evaluation so far, a complete model folder at all times.

    At every evaluation (the Trainer's periodic ones and any later `trainer.evaluate()`), the callback reads one metric
    from the metrics that `evaluate()` returns, which for `VitsTrainer` include the unweighted eval losses
    (`eval_loss/mel`, `eval_loss/kl`, ...). When it beats the best value so far, the model is saved to
    `output_dir/best_model`, replacing the previous one. The folder is what the trainer writes for a checkpoint's model:
    for `VitsTrainer` a stock `VitsModel` folder with the tokenizer (it loads with `VitsModel.from_pretrained` and
    `pipeline("text-to-speech")`) plus `discriminator.safetensors` (for `VitsForTraining.from_pretrained`), and
    `training_args.bin`. Next to them, `best_model.json` records the step, epoch, metric, value, time and a summary of
    the run's configuration; `load_best_model_info` reads it.

    The folder is replaced atomically. The new model is written to a sibling `.best_model.tmp-<pid>` and synced to disk;
    then the old folder is renamed to `.best_model.old`, the new one to `best_model`, and the old one is deleted. A
    failed save (an exception while writing) removes the temporary folder, leaves `best_model` as it was and re-raises.
    A crash between the two renames leaves the previous model in `.best_model.old`, which the next save or the next
    `train()` (`on_train_begin`) moves back, before removing any stale temporary folder.

    Across resumes: at `on_train_begin` the callback reads `best_model.json`, so a resumed run replaces the model only
    with a better one. An existing best model from another run into the same `output_dir` is kept the same way (with a
    warning); delete the folder to start afresh. A record chosen by another metric, or in the other direction, is not
    comparable, and the first evaluation of this run replaces it.

    The metric. As with `metric_for_best_model`, a name without the `eval_` prefix gets one, and the value must come
    from an evaluation whose metrics carry that prefix: an evaluation with another prefix
    (`trainer.evaluate(test_set, metric_key_prefix="test")`, or one dataset of a dict of evaluation datasets, whose
    prefix is `eval_<name>`) is recognized by its `<prefix>_runtime` key and ignored unless the metric name starts
    with that prefix (e.g. `metric_name="eval_dev_loss"`). A metric missing from an evaluation it applies to raises a
    `KeyError` listing the available keys, at the first such evaluation. A NaN or infinite value is never the best.
    A tie does not replace the model.

    Which process writes. Only processes with `args.should_save` touch the disk. Under `accelerate launch`, the main
    process (`args.process_index == 0`) decides, from its own metrics, whether an evaluation is the best, and sends
    the decision and the value to the others (one broadcast per evaluation), so that every process takes the same
    branch even when the processes' metrics differ; with a trainer attached, every process then calls
    `trainer.save_model`, which gathers sharded weights (FSDP, DeepSpeed) where needed.

    How the model is saved. Attached with `attach(trainer)`, the callback saves with `trainer.save_model` (without a
    hub push), the same code that writes the model of every checkpoint, so it works for any `Trainer` subclass, and
    under FSDP and DeepSpeed. Passed with `callbacks=[...]` instead, it saves the model that the callback handler
    passes (unwrapped from DDP and `torch.compile`) with its `save_pretrained`, and `processing_class.save_pretrained`,
    which gives the same folder for `VitsForTraining` and for a `PreTrainedModel`, but not for sharded models: with
    FSDP or DeepSpeed, `attach` is required.

    Example:

    ```python
    >>> from kurdish_tts.trainers.best_model import BestModelCallback, load_best_model_info
    >>> trainer = VitsTrainer(model, args, train_dataset=train, eval_dataset=dev, processing_class=tokenizer)
    >>> BestModelCallback().attach(trainer)  # selects by eval_loss/mel, lower is better
    >>> trainer.train()
    >>> load_best_model_info(args.output_dir)["step"]
    ```

    Args:
        metric_name (`str`, *optional*):
            The evaluation metric to select by, with or without the `eval_` prefix. Defaults to
            `args.metric_for_best_model` when that is set, else `"eval_loss/mel"`. NOTE: `TrainingArguments` sets
            `metric_for_best_model="loss"` (the weighted total loss) by itself with `load_best_model_at_end=True` or a
            plateau schedule; pass `metric_name` to select by something else then.
        greater_is_better (`bool`, *optional*):
            Whether a larger value is better. Defaults to `args.greater_is_better` when the metric is
            `args.metric_for_best_model`, else `False`.
        folder_name (`str`, *optional*, defaults to `"best_model"`):
            Folder inside `args.output_dir`.
        require_healthy_audio (`bool`, *optional*, defaults to `True`):
            Never keep an evaluation whose waveform-health figures fail (`audio_problems`: clipping, a DC offset, a
            tone above 7.5 kHz, a level far from the recordings'), however good its metric; such evaluations are
            logged with what is wrong and listed in `refused`. The mel metrics cannot see these artefacts.

    Attributes:
        best_value (`float` or `None`):
            The best value so far, this run's or the one read from `best_model.json`.
        best_step (`int` or `None`):
            The global step it was evaluated at.
    """

    def __init__(
        self,
        metric_name: str | None = None,
        greater_is_better: bool | None = None,
        folder_name: str = "best_model",
        require_healthy_audio: bool = True,
    ):
        if not folder_name or os.sep in folder_name or folder_name in (".", ".."):
            raise ValueError(f"folder_name must be a plain folder name, got {folder_name!r}")
        self.metric_name = metric_name
        self.greater_is_better = greater_is_better
        self.folder_name = folder_name
        self.require_healthy_audio = require_healthy_audio
        # (step, problems) of evaluations that improved the metric but whose audio failed a health check.
        self.refused: list[tuple[int, list[str]]] = []
        self.best_value: float | None = None
        self.best_step: int | None = None
        self._trainer: Trainer | None = None
        # The output folder whose best model `best_value` describes; None until recovered and read.
        self._started_for: str | None = None
        self._warned: set[str] = set()

    def attach(self, trainer: Trainer) -> BestModelCallback:
        """Save through `trainer.save_model`, and put this callback first in `trainer`'s callbacks.

        First, so that the callbacks that time an evaluation from its `on_evaluate` (`ThroughputCallback`,
        `TimeBudgetCallback`) count the save in the evaluation rather than in the next step; a `ThroughputCallback`
        attached after this one moves itself in front again. Like `ThroughputCallback.attach`, this edits
        `trainer.callback_handler.callbacks`, since `Trainer` has no public way to order callbacks. The callback is
        moved if the trainer already holds it.

        Returns:
            `BestModelCallback`: this callback.
        """
        trainer.pop_callback(self)
        trainer.callback_handler.callbacks.insert(0, self)
        self._trainer = trainer
        return self

    # Metric

    def resolve_metric(self, args: TrainingArguments) -> tuple[str, bool]:
        """The metric name (with its `eval_` prefix) and direction this callback uses with `args`."""
        requested = self.metric_name or args.metric_for_best_model or DEFAULT_METRIC
        name = _with_eval_prefix(requested)
        greater_is_better = self.greater_is_better
        from_args = args.metric_for_best_model is not None and name == _with_eval_prefix(args.metric_for_best_model)
        if greater_is_better is None:
            greater_is_better = bool(args.greater_is_better) if from_args else False
            if from_args and greater_is_better and "loss" in name:
                self._warn_once(
                    "direction",
                    f"BestModelCallback: keeping the model with the *largest* {name}, since "
                    f"args.greater_is_better is True (TrainingArguments sets it for every metric_for_best_model "
                    "that does not end in 'loss', 'loss/mel' included). Pass greater_is_better=False if lower is "
                    "better.",
                )
        return name, greater_is_better

    def _candidate(self, name: str, metrics: dict[str, float]) -> bool:
        """Whether this evaluation is one to select from; raises if it should carry the metric and does not."""
        prefixes = [key.removesuffix("_runtime") for key in metrics if key.endswith("_runtime")]
        # Without a runtime key (metrics passed by hand), the evaluation is taken to be the one the name refers to.
        if prefixes and not any(name.startswith(f"{prefix}_") for prefix in prefixes):
            self._warn_once(
                f"prefix:{prefixes[0]}",
                f"BestModelCallback: evaluations with the metric prefix {prefixes[0]!r} are ignored, since the best "
                f"model is chosen by {name!r}.",
            )
            return False
        if name not in metrics:
            raise KeyError(
                f"BestModelCallback selects the best model by {name!r}, which this evaluation does not report. The "
                f"evaluation's metrics are: {sorted(metrics)}. Pass metric_name= (or set metric_for_best_model) to "
                "one of them."
            )
        return True

    def _improves(self, value: float, greater_is_better: bool, name: str, step: int) -> bool:
        if not math.isfinite(value):
            logger.warning(f"BestModelCallback: {name} is {value} at step {step}; it cannot be the best model.")
            return False
        if self.best_value is None:
            return True
        return value > self.best_value if greater_is_better else value < self.best_value

    # Events

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        if self._trainer is None and (getattr(args, "fsdp", None) or getattr(args, "deepspeed", None)):
            raise ValueError(
                "BestModelCallback cannot save a sharded (FSDP or DeepSpeed) model from the callback arguments; "
                "add it with `BestModelCallback(...).attach(trainer)`, which saves through `trainer.save_model`."
            )
        self._start(args, state, fresh_run=state.global_step == 0)

    def on_evaluate(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        metrics: dict[str, float] | None = None,
        model=None,
        processing_class=None,
        **kwargs,
    ):
        name, greater_is_better = self.resolve_metric(args)
        metrics = metrics or {}
        # The keys are the same on every process, so every process returns here or none does.
        if not self._candidate(name, metrics):
            return
        if self._started_for != args.output_dir:
            # `evaluate()` before any `train()`.
            self._start(args, state, fresh_run=False)
        value = float(metrics[name])
        improved = args.process_index == 0 and self._improves(value, greater_is_better, name, state.global_step)
        problems = audio_problems(metrics, name.split("_", 1)[0]) if self.require_healthy_audio else []
        if improved and problems:
            improved = False
            self.refused.append((state.global_step, problems))
            logger.warning(
                f"BestModelCallback: step {state.global_step} is not kept as the best model although {name} = "
                f"{value:.6g} is the best so far: its audio is broken ({'; '.join(problems)})"
            )
        elif problems and args.process_index == 0:
            # Said at every evaluation, so that a long run tells early that the voice it is making is broken.
            logger.warning(
                f"BestModelCallback: the audio at step {state.global_step} is broken ({'; '.join(problems)})"
            )
        improved, value, pid = _from_main_process([float(improved), value, float(os.getpid())], args.device)
        if not improved:
            return
        record = None
        if args.should_save:
            record = {
                "step": state.global_step,
                "epoch": state.epoch,
                "metric": name,
                "value": value,
                "greater_is_better": greater_is_better,
                "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "config": _config_summary(args, self._trainer.model if self._trainer is not None else model),
            }
        self._save(args, record, model, processing_class, int(pid))
        previous = "none" if self.best_value is None else f"{self.best_value:.6g}"
        self.best_value, self.best_step = value, state.global_step
        if args.should_save:
            logger.info(
                f"BestModelCallback: new best model at step {state.global_step}, {name} = {value:.6g} (previous "
                f"best {previous}), saved to {self._folder(args)}"
            )

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        if not state.is_world_process_zero:
            return
        name, _ = self.resolve_metric(args)
        if self.best_value is None and self.refused:
            step, problems = self.refused[-1]
            logger.warning(
                f"BestModelCallback: no best model was saved: the audio of every evaluation that could have been the "
                f"best was broken ({len(self.refused)} refused; the last, at step {step}: {'; '.join(problems)}). "
                "Listen to the evaluation samples and look at the eval_health/* curves before training longer."
            )
            return
        if self.best_value is None:
            logger.warning(
                f"BestModelCallback: no evaluation reported {name}, so no best model was saved; evaluate during "
                "training (eval_strategy) or call trainer.evaluate()."
            )
            return
        logger.info(
            f"BestModelCallback: the best model is {self._folder(args)}, from step {self.best_step} with "
            f"{name} = {self.best_value:.6g}"
        )

    # Disk

    def _folder(self, args: TrainingArguments) -> Path:
        return Path(args.output_dir) / self.folder_name

    def _start(self, args: TrainingArguments, state: TrainerState, fresh_run: bool) -> None:
        """Repair an interrupted replacement and take the best value from the folder on disk."""
        self._started_for = args.output_dir
        self.best_value = self.best_step = None
        if not args.should_save:
            return
        _recover(Path(args.output_dir), self.folder_name)
        name, greater_is_better = self.resolve_metric(args)
        folder = self._folder(args)
        try:
            record = load_best_model_info(args.output_dir, self.folder_name)
        except (OSError, ValueError) as error:
            logger.warning(f"BestModelCallback: cannot read {folder / BEST_MODEL_INFO_NAME} ({error}); replacing it.")
            return
        if record is None:
            if folder.exists():
                logger.warning(f"BestModelCallback: {folder} holds no {BEST_MODEL_INFO_NAME}; replacing it.")
            return
        if record.get("metric") != name or record.get("greater_is_better") != greater_is_better:
            logger.warning(
                f"BestModelCallback: {folder} was chosen by {record.get('metric')!r} (greater_is_better="
                f"{record.get('greater_is_better')}), not by {name!r} (greater_is_better={greater_is_better}); the "
                "first evaluation replaces it."
            )
            return
        self.best_value, self.best_step = float(record["value"]), record.get("step")
        if fresh_run:
            logger.warning(
                f"BestModelCallback: {folder} holds the model of an earlier run (step {self.best_step}, {name} = "
                f"{self.best_value:.6g}); only a better evaluation replaces it. Delete the folder to start afresh."
            )
        else:
            logger.info(
                f"BestModelCallback: continuing from {folder} (step {self.best_step}, {name} = {self.best_value:.6g})"
            )

    def _save(self, args: TrainingArguments, record: dict | None, model, processing_class, pid: int) -> None:
        output_dir = Path(args.output_dir)
        final = self._folder(args)
        # The main process's pid: under DeepSpeed every process writes its shards into the same folder.
        temporary = output_dir / f".{self.folder_name}.tmp-{pid}"
        if args.should_save:
            shutil.rmtree(temporary, ignore_errors=True)
        together = self._trainer is not None and args.world_size > 1
        if together:
            self._trainer.accelerator.wait_for_everyone()
        try:
            self._write_model(temporary, args, model, processing_class)
            if args.should_save:
                # Last, so that a temporary folder with a record is a complete one.
                write_json_atomically(temporary / BEST_MODEL_INFO_NAME, record)
                _sync_tree(temporary)
        except BaseException:
            if args.should_save:
                shutil.rmtree(temporary, ignore_errors=True)
            raise
        if together:
            # Shards written by other processes must be complete before the folder moves.
            self._trainer.accelerator.wait_for_everyone()
        if args.should_save:
            _recover(output_dir, self.folder_name, keep=temporary.name)
            _replace_folder(temporary, final)

    def _write_model(self, folder: Path, args: TrainingArguments, model, processing_class) -> None:
        if self._trainer is not None:
            # `_internal_call`: a user's `save_model` also pushes to the hub with `push_to_hub=True`.
            self._trainer.save_model(str(folder), _internal_call=True)
            return
        if not args.should_save:
            return
        if model is None:
            raise ValueError(
                "BestModelCallback got no model to save: attach it with `BestModelCallback(...).attach(trainer)`."
            )
        model = extract_model_from_parallel(model, keep_torch_compile=False)
        folder.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(folder)
        if processing_class is not None:
            processing_class.save_pretrained(folder)
        torch.save(args, folder / "training_args.bin")

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            logger.warning(message)


def audio_problems(metrics: dict[str, float], prefix: str = "eval") -> list[str]:
    """What an evaluation's waveform-health figures say is wrong with the model's audio, in plain words.

    Reads the decoded segments' figures (`<prefix>_health/clipped`, ..., which `VitsTrainer` logs at every
    evaluation) and, when `SynthesisMetricsCallback` computed the `health` group, those of the clips synthesized from
    text (`<prefix>_clipped`, ...). Empty when nothing is wrong or no figure was reported.
    """
    segment = {
        key.removeprefix(f"{prefix}_health/"): value
        for key, value in metrics.items()
        if key.startswith(f"{prefix}_health/")
    }
    problems = [f"decoded segments: {problem}" for problem in health_problems(segment)]
    synthesized = {key: metrics[f"{prefix}_{key}"] for key in METRIC_GROUPS["health"] if f"{prefix}_{key}" in metrics}
    if synthesized:
        problems += [f"speech synthesized from text: {problem}" for problem in set_health_problems(synthesized)]
    return problems


def load_best_model_info(output_dir: str | os.PathLike, folder_name: str = "best_model") -> dict | None:
    """The record of the best model that `BestModelCallback` kept in `output_dir`, or `None` if there is none.

    When a crash interrupted a replacement, the record of the model that the next run restores is returned.

    Returns:
        `dict` or `None`: `step`, `epoch`, `metric`, `value`, `greater_is_better`, `time` (ISO 8601, UTC) and
        `config` (`training`: the training arguments that matter; `model`: its class, type, origin and size).
    """
    output_dir = Path(output_dir)
    for folder in (output_dir / folder_name, output_dir / f".{folder_name}.old"):
        path = folder / BEST_MODEL_INFO_NAME
        if path.is_file():
            return json.loads(path.read_text(encoding="utf-8"))
        if folder.is_dir():
            return None
    return None


def _with_eval_prefix(name: str) -> str:
    # The Trainer's rule for `metric_for_best_model`.
    return name if name.startswith("eval_") else f"eval_{name}"


def _config_summary(args: TrainingArguments, model) -> dict:
    training = {
        "learning_rate": args.learning_rate,
        "per_device_train_batch_size": args.per_device_train_batch_size,
        "gradient_accumulation_steps": args.gradient_accumulation_steps,
        "world_size": args.world_size,
        "total_train_batch_size": args.train_batch_size * args.gradient_accumulation_steps * args.world_size,
        "precision": "bf16" if args.bf16 else "fp16" if args.fp16 else "fp32",
        "lr_scheduler_type": getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type),
        "max_steps": args.max_steps,
        "seed": args.seed,
    }
    loss_weights = {
        name.removeprefix("loss_weight_"): value
        for name, value in vars(args).items()
        if name.startswith("loss_weight_")
    }
    if loss_weights:
        training["loss_weights"] = loss_weights
    training.update({name: getattr(args, name) for name in _EXTRA_ARGUMENTS if hasattr(args, name)})
    summary = {"training": training}
    if model is not None:
        model = extract_model_from_parallel(model, keep_torch_compile=False)
        config = getattr(model, "config", None)
        summary["model"] = {
            "class": type(model).__name__,
            "model_type": getattr(config, "model_type", None),
            "name_or_path": getattr(config, "name_or_path", None) or None,
            "num_parameters": sum(parameter.numel() for parameter in model.parameters()),
        }
    return summary


def _from_main_process(values: list[float], device: torch.device) -> list[float]:
    """The main process's `values` on every process."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.broadcast(tensor, src=0)
    return tensor.tolist()


def _recover(output_dir: Path, folder_name: str, keep: str | None = None) -> None:
    """Finish or undo a replacement that a crash interrupted, and remove stale temporary folders but `keep`."""
    final, aside = output_dir / folder_name, output_dir / f".{folder_name}.old"
    if aside.is_dir():
        if final.is_dir():
            # The new folder was in place; only the old one's deletion was missing.
            shutil.rmtree(aside, ignore_errors=True)
        else:
            os.replace(aside, final)
            logger.warning(f"BestModelCallback: restored {final} from {aside.name}, left by an interrupted save.")
    if output_dir.is_dir():
        prefix = f".{folder_name}.tmp-"
        for entry in os.scandir(output_dir):
            if entry.name.startswith(prefix) and entry.name != keep and entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)


def _replace_folder(new: Path, final: Path) -> None:
    aside = final.with_name(f".{final.name}.old")
    if final.exists():
        os.replace(final, aside)
        try:
            os.replace(new, final)
        except BaseException:
            os.replace(aside, final)
            shutil.rmtree(new, ignore_errors=True)
            raise
        # A failure here leaves a complete `final`; `_recover` removes the rest later.
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.replace(new, final)
    _sync_directory(final.parent)


def _sync_tree(folder: Path) -> None:
    # Renames are atomic, but without this a power cut could leave the renamed folder with files not yet on disk.
    for root, _, files in os.walk(folder):
        for name in files:
            with open(os.path.join(root, name), "rb") as handle:
                os.fsync(handle.fileno())
        _sync_directory(Path(root))


def _sync_directory(folder: Path) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        # Some platforms (Windows) cannot open a directory; the rename is then as durable as they make it.
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
