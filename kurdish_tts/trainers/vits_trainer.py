"""`VitsTrainer`: fine-tune or train VITS/MMS text-to-speech with the `transformers.Trainer` loop."""

from __future__ import annotations

import os
from collections import defaultdict

import safetensors.torch
import torch
from transformers import Trainer, TrainerCallback

from ..data.collators import VITS_COLUMNS, DataCollatorForVits
from ..models.vits.modeling_discriminator import load_discriminator
from ..models.vits.modeling_vits_training import VitsForTraining
from .vits_arguments import VitsTrainingArguments

LOSS_NAMES = ("mel", "kl", "duration", "gen", "fm", "disc")
# Output field of `VitsTrainingOutput` behind each loss name.
_OUTPUT_FIELDS = {
    "mel": "mel_loss",
    "kl": "kl_loss",
    "duration": "duration_loss",
    "gen": "adversarial_loss",
    "fm": "feature_matching_loss",
    "disc": "discriminator_loss",
}


class _MixedPrecisionMonitor(TrainerCallback):
    """Counts optimizer steps that the fp16 gradient scaler skipped (inf/NaN gradients); the trainer logs the count."""

    def __init__(self):
        self.skipped_steps = 0

    def on_step_end(self, args, state, control, optimizer=None, **kwargs):
        if optimizer is not None and getattr(optimizer, "step_was_skipped", False):
            self.skipped_steps += 1


class VitsTrainer(Trainer):
    """Trainer for VITS (Kim et al., 2021, https://arxiv.org/abs/2106.06103) with a HiFi-GAN discriminator
    (https://arxiv.org/abs/2010.05646), as used by MMS-TTS (https://arxiv.org/abs/2305.13516).

    Example:

    ```python
    >>> from kurdish_tts.models.vits import VitsForTraining
    >>> from kurdish_tts.trainers import VitsTrainer, VitsTrainingArguments
    >>> model = VitsForTraining.from_pretrained("facebook/mms-tts-kmr-script_latin")
    >>> trainer = VitsTrainer(model, VitsTrainingArguments("out", bf16=True), train_dataset=prepared.dataset,
    ...                       processing_class=tokenizer)
    >>> trainer.train()
    ```

    Args:
        model (`VitsForTraining` or `str`):
            The generator + discriminator, or a name/path for `VitsForTraining.from_pretrained`.
        args (`VitsTrainingArguments`):
            The run configuration.
        train_dataset, eval_dataset (`datasets.Dataset`, *optional*):
            Prepared caches (`kurdish_tts.data.prepare_dataset(...).dataset`).
        processing_class (`VitsTokenizer`, *optional*):
            Saved next to every checkpoint, so that checkpoints load with stock `pipeline("text-to-speech")`.
        data_collator (*optional*):
            Defaults to `DataCollatorForVits` configured from the model (hop length, segment size).
        speaker_to_id (`dict[str, int]`, *optional*):
            Speaker label → embedding id for multi-speaker models.

    The GAN update. Generator and discriminator are one module with one optimizer (two parameter groups, so the
    discriminator can have its own learning rate) and one loss: the weighted sum of the generator terms and the
    discriminator term. The discriminator term sees the generated audio detached, and the generator's adversarial and
    feature-matching terms see the discriminator with its parameters out of autograd, so one backward pass gives each
    network exactly its own gradients. Everything the Trainer does for one optimizer then holds for both networks:
    gradient accumulation, fp16 loss scaling with a single healthy scaler, clipping, DDP, checkpoint and resume.
    Compared with VITS's alternating D-then-G steps, the generator sees the discriminator before (not after) this
    step's update; `benchmarks/README.md` records how the two compare.

    Gradient accumulation. Every loss term is a per-batch mean, so the Trainer must divide by the accumulation steps:
    `model_accepts_loss_kwargs` is False and `loss_is_scaled_for_ga` is False (transformers would otherwise guess from
    `**kwargs` in a model's forward).
    """

    _tag_names = ["kurdish_tts", "vits"]

    def __init__(
        self,
        model: VitsForTraining | str,
        args: VitsTrainingArguments,
        data_collator=None,
        train_dataset=None,
        eval_dataset=None,
        processing_class=None,
        callbacks: list[TrainerCallback] | None = None,
        speaker_to_id: dict[str, int] | None = None,
        **kwargs,
    ):
        # Model
        if isinstance(model, str):
            model = VitsForTraining.from_pretrained(model)
        if args.segment_frames is not None:
            model.segment_frames = args.segment_frames

        # Data collator
        if data_collator is None:
            data_collator = DataCollatorForVits(
                hop_length=model.mel_config.hop_length,
                min_frames=model.segment_frames,
                pad_to_multiple_of=args.pad_to_multiple_of,
                speaker_to_id=speaker_to_id,
            )

        # Dataset: numpy rows, so that the collator never walks Python lists of samples.
        train_dataset = _numpy_format(train_dataset)
        eval_dataset = _numpy_format(eval_dataset)

        self._precision_monitor = _MixedPrecisionMonitor()
        super().__init__(
            model=model,
            args=args,
            data_collator=data_collator,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            callbacks=[*(callbacks or []), self._precision_monitor],
            **kwargs,
        )
        self._metrics = {"train": defaultdict(list), "eval": defaultdict(list)}
        self.can_return_loss = True
        self.label_names = []
        self.model_accepts_loss_kwargs = False
        self.loss_is_scaled_for_ga = False

    def _set_signature_columns_if_needed(self):
        if self._signature_columns is None:
            # The audio columns are not forward() arguments, so without this `remove_unused_columns` drops them.
            self._signature_columns = [*VITS_COLUMNS, "speaker"]

    def create_optimizer(self, model=None):
        if self.optimizer is not None:
            return self.optimizer
        if self.args.discriminator_learning_rate is None:
            return super().create_optimizer(model)
        opt_model = self.model if model is None else model
        decay = set(self.get_decay_parameter_names(opt_model))
        groups = []
        for prefix, learning_rate in (("vits.", None), ("discriminator.", self.args.discriminator_learning_rate)):
            named = [(n, p) for n, p in opt_model.named_parameters() if n.startswith(prefix) and p.requires_grad]
            for decayed in (True, False):
                group = {
                    "params": [p for n, p in named if (n in decay) == decayed],
                    "weight_decay": self.args.weight_decay if decayed else 0.0,
                }
                if learning_rate is not None:
                    group["lr"] = learning_rate
                groups.append(group)
        optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
        self.optimizer = optimizer_cls(groups, **optimizer_kwargs)
        return self.optimizer

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mode = "train" if model.training else "eval"
        train_generator = mode == "eval" or self.state.global_step >= self.args.discriminator_warmup_steps
        outputs = model(**inputs, train_generator=train_generator)
        loss = 0.0
        for name in LOSS_NAMES:
            term = getattr(outputs, _OUTPUT_FIELDS[name])
            if term is None:
                continue
            weight = getattr(self.args, f"loss_weight_{name}")
            if weight:
                loss = loss + weight * term
            # Unweighted terms, kept on the device: they are averaged and read once per logging step, so logging
            # costs no host synchronization per step.
            self._metrics[mode][f"loss/{name}"].append(term.detach())
        return (loss, outputs) if return_outputs else loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        mode = "train" if "loss" in logs else "eval"
        metrics = {key: torch.stack(values).float().mean().item() for key, values in self._metrics[mode].items()}
        if mode == "eval":
            metrics = {f"eval_{key}": value for key, value in metrics.items()}
        elif self.args.fp16:
            scaler = getattr(self.accelerator, "scaler", None)
            if scaler is not None:
                metrics["amp/loss_scale"] = float(scaler.get_scale())
            metrics["amp/skipped_steps"] = self._precision_monitor.skipped_steps
        # In place: `evaluate()` returns this very dict, so best-model selection can use e.g. `eval_loss/mel`.
        logs.update(metrics)
        super().log(logs, start_time)
        self._metrics[mode].clear()

    # Saving: a stock VitsModel directory (+ tokenizer) with the discriminator next to it.
    def _save(self, output_dir: str | None = None, state_dict=None) -> None:
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if not self.args.should_save:
            return
        os.makedirs(output_dir, exist_ok=True)
        model = self.accelerator.unwrap_model(self.model, keep_torch_compile=False)
        model.save_pretrained(output_dir, tokenizer=self.processing_class)
        torch.save(self.args, os.path.join(output_dir, "training_args.bin"))

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        _load_training_weights(model if model is not None else self.model, resume_from_checkpoint)

    def _load_best_model(self) -> None:
        _load_training_weights(self.model, self.state.best_model_checkpoint)


def _numpy_format(dataset):
    if dataset is None or not hasattr(dataset, "with_format"):
        return dataset
    return dataset.with_format("numpy")


def _load_training_weights(model: VitsForTraining, checkpoint: str) -> None:
    """Restore generator and discriminator weights in place from a checkpoint written by `VitsTrainer._save`."""
    weights = os.path.join(checkpoint, "model.safetensors")
    if not os.path.isfile(weights):
        raise FileNotFoundError(f"{checkpoint} holds no model.safetensors; is it a VitsTrainer checkpoint?")
    model.vits.load_state_dict(safetensors.torch.load_file(weights, device="cpu"), strict=True)
    discriminator = load_discriminator(checkpoint, model.discriminator.config)
    if discriminator is None:
        raise FileNotFoundError(
            f"{checkpoint} has no discriminator.safetensors, so the discriminator cannot be restored; resume from a "
            "checkpoint written by VitsTrainer, or start a new run from this directory with VitsForTraining."
        )
    model.discriminator.load_state_dict(discriminator.state_dict(), strict=True)
