"""`XttsTrainer`: train the XTTS-style autoregressive text-to-mel model with the `transformers.Trainer` loop."""

from __future__ import annotations

import dataclasses
import math

import torch
from transformers import Trainer, TrainerCallback
from transformers.utils import logging

from ..data.collators import SAMPLE_IDS
from ..data.xtts_collator import XTTS_COLUMNS, DataCollatorForXtts, ReferencePool
from ..models.xtts import XttsForTextToSpeech, losses
from .eval_batches import require_an_eval_batch
from .loss_terms import mean_loss_terms, track_loss_terms
from .vits_trainer import _MixedPrecisionMonitor, _numpy_format
from .xtts_arguments import XttsTrainingArguments

logger = logging.get_logger(__name__)

LOSS_NAMES = ("mel_before", "mel_after", "stop", "text", "guided_attention")
# Batch keys that are loss targets, not forward() arguments.
_LABEL_KEYS = ("text_labels",)


class XttsTrainer(Trainer):
    """Trainer for the XTTS-style model (`kurdish_tts.models.xtts.XttsForTextToSpeech`): a GPT-2 backbone over
    [speaker conditioning latents | text tokens | mel frames], after Coqui's XTTS (Casanova et al., 2024,
    https://arxiv.org/abs/2406.04904), predicting continuous mel frames as Tacotron 2 does
    (https://arxiv.org/abs/1712.05884).

    Example:

    ```python
    >>> from kurdish_tts.models.xtts import XttsConfig, XttsForTextToSpeech
    >>> from kurdish_tts.trainers import XttsTrainer, XttsTrainingArguments
    >>> config = XttsConfig.for_size("small", vocab_size=tokenizer.vocab_size, pad_token_id=tokenizer.pad_token_id)
    >>> trainer = XttsTrainer(XttsForTextToSpeech(config), XttsTrainingArguments("out", bf16=True),
    ...                       train_dataset=train, eval_dataset=dev, processing_class=tokenizer)
    >>> trainer.train()
    ```

    Args:
        model (`XttsForTextToSpeech` or `str`):
            The model, or a folder/name for `XttsForTextToSpeech.from_pretrained`.
        args (`XttsTrainingArguments`):
            The run configuration: loss weights, Huber delta, smoothing, guided attention, reference crop.
        train_dataset, eval_dataset (`datasets.Dataset`, *optional*):
            Prepared caches (`kurdish_tts.data.prepare_dataset(...).dataset`) with the model's mel settings.
        processing_class (*optional*):
            The tokenizer, saved next to every checkpoint.
        data_collator (*optional*):
            Defaults to `DataCollatorForXtts` configured from the model (reduction factor, pad id, mel floor), drawing
            training references from `train_dataset`. Evaluation batches get a deterministic copy of it whose
            references come from the evaluation *and* training clips (a held-out clip is not its own reference).

    The loss (`compute_loss`), every term a mean over real elements only:

    - `loss/mel_before`, `loss/mel_after`: Huber (`huber_delta`) or L1 between the pre-/post-net mels and the target,
      masked by the mel lengths;
    - `loss/stop`: BCE of the stop logits with label smoothing and a positive-class weight, on the real decoder
      steps (`losses.stop_targets`);
    - `loss/text`: next-text-token cross-entropy with label smoothing (a small auxiliary weight);
    - `loss/guided_attention`: the diagonal prior on the backbone's text→mel attention, with its weight decayed over
      `guided_attention_decay_steps`; the attention is requested from the model only while the weight is positive.

    The total is `Σ loss_weight_* · term`. Evaluation also reports `eval_mel`: the L1 distance (nats) of the post-net
    mel to the held-out clip's, independent of the loss choice, for best-model selection; `eval_loss` weighs the
    guided attention with its undecayed weight, so evaluations at different steps stay comparable.

    Gradient accumulation: every term is a per-batch mean, so the Trainer must divide by the accumulation steps
    (`model_accepts_loss_kwargs` and `loss_is_scaled_for_ga` are False).
    """

    _tag_names = ["kurdish_tts", "xtts"]

    def __init__(
        self,
        model: XttsForTextToSpeech | str,
        args: XttsTrainingArguments,
        data_collator=None,
        train_dataset=None,
        eval_dataset=None,
        processing_class=None,
        callbacks: list[TrainerCallback] | None = None,
        **kwargs,
    ):
        require_an_eval_batch(eval_dataset, args)
        # Model
        if isinstance(model, str):
            model = XttsForTextToSpeech.from_pretrained(model)
        config = model.config

        # Dataset: numpy rows, so that the collator never walks Python lists of samples.
        train_dataset = _numpy_format(train_dataset)
        eval_dataset = _numpy_format(eval_dataset)

        # Data collator
        if data_collator is None:
            if train_dataset is None:
                raise ValueError(
                    "XttsTrainer builds its collator's reference pool from train_dataset; pass a train_dataset, or a "
                    "DataCollatorForXtts as data_collator"
                )
            data_collator = DataCollatorForXtts(
                ReferencePool(train_dataset),
                reduction_factor=config.reduction_factor,
                pad_token_id=config.pad_token_id,
                reference_max_frames=args.reference_max_frames,
                pad_to_multiple_of=args.pad_to_multiple_of,
                mel_pad_value=math.log(config.mel_config.log_clamp),
                seed=args.seed,
            )
        self._eval_collators: dict[int, tuple[object, DataCollatorForXtts]] = {}

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
        track_loss_terms(self)
        self._warned_no_attention = False
        self._guided_attention_weight = args.loss_weight_guided_attention

    def _set_signature_columns_if_needed(self):
        if self._signature_columns is None:
            # `mel` and `speaker` are read by the collator (the target and the reference pool); without this
            # `remove_unused_columns` would drop them.
            self._signature_columns = list(XTTS_COLUMNS)

    def get_train_dataloader(self):
        # Training batches name their samples (`NanRecoveryCallback` quarantines those of a step it undoes).
        collator = self.data_collator
        if not isinstance(collator, DataCollatorForXtts) or collator.return_sample_ids:
            return super().get_train_dataloader()
        self.data_collator = dataclasses.replace(collator, return_sample_ids=True, training=True)
        try:
            return super().get_train_dataloader()
        finally:
            self.data_collator = collator

    def get_eval_dataloader(self, eval_dataset=None):
        collator = self.data_collator
        if isinstance(eval_dataset, str):
            dataset = self.eval_dataset[eval_dataset]
        else:
            dataset = self.eval_dataset if eval_dataset is None else eval_dataset
        if not isinstance(collator, DataCollatorForXtts) or dataset is None:
            return super().get_eval_dataloader(eval_dataset)
        self.data_collator = self.evaluation_collator(dataset)
        try:
            return super().get_eval_dataloader(eval_dataset)
        finally:
            self.data_collator = collator

    def evaluation_collator(self, eval_dataset) -> DataCollatorForXtts:
        """The deterministic collator of `eval_dataset`'s batches: references from its clips and the training clips."""
        # Keyed by identity, holding the dataset too, so that a freed dataset's id cannot be mistaken for a new one's.
        cached = self._eval_collators.get(id(eval_dataset))
        if cached is None or cached[0] is not eval_dataset:
            pools = [eval_dataset] if self.train_dataset is None else [eval_dataset, self.train_dataset]
            collator = dataclasses.replace(
                self.data_collator, reference_pool=ReferencePool(*pools), training=False, return_sample_ids=False
            )
            cached = self._eval_collators[id(eval_dataset)] = (eval_dataset, collator)
        return cached[1]

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mode = "train" if model.training else "eval"
        args = self.args
        inputs = {key: value for key, value in inputs.items() if key != SAMPLE_IDS}
        text_labels = inputs.pop("text_labels")
        guided_weight = (
            args.guided_attention_weight(self.state.global_step)
            if mode == "train"
            else args.loss_weight_guided_attention
        )
        if mode == "train":
            self._guided_attention_weight = guided_weight
        config = self.accelerator.unwrap_model(model).config
        reduction_factor = config.reduction_factor
        target, mel_lengths = inputs["mel"], inputs["mel_lengths"]
        if mode == "train" and args.scheduled_sampling > 0:
            inputs = {**inputs, "mel": self._scheduled_sampling_inputs(model, inputs, reduction_factor)}
        outputs = model(**inputs, output_attentions=guided_weight > 0)

        terms = {}
        if args.loss_weight_mel_before:
            terms["mel_before"] = self._mel_loss(outputs.mel_before, target, mel_lengths)
        if args.loss_weight_mel_after:
            terms["mel_after"] = self._mel_loss(outputs.mel_after, target, mel_lengths)
        stop_targets, stop_mask = losses.stop_targets(mel_lengths, outputs.stop_logits.shape[1], reduction_factor)
        if args.loss_weight_stop:
            terms["stop"] = losses.smoothed_stop_bce(
                outputs.stop_logits, stop_targets, stop_mask, args.stop_label_smoothing, args.stop_pos_weight
            )
        if args.loss_weight_text:
            terms["text"] = losses.smoothed_text_cross_entropy(
                outputs.text_logits, text_labels, args.text_label_smoothing
            )
        if guided_weight > 0:
            if outputs.text_mel_attention is None:
                self._warn_no_attention(config)
            else:
                terms["guided_attention"] = losses.guided_attention_loss(
                    outputs.text_mel_attention,
                    inputs["attention_mask"].sum(dim=1),
                    losses.decoder_steps(mel_lengths, reduction_factor),
                    sigma=args.guided_attention_sigma,
                    reduction=args.guided_attention_reduction,
                )
        weights = {name: getattr(args, f"loss_weight_{name}") for name in LOSS_NAMES}
        weights["guided_attention"] = guided_weight
        loss = sum(weights[name] * term for name, term in terms.items())

        # Unweighted terms, kept on the device: averaged and read once per logging step, so logging costs no host
        # synchronization per step.
        metrics = self._metrics[mode]
        for name, term in terms.items():
            metrics[f"loss/{name}"].append(term.detach())
        if mode == "eval":
            with torch.no_grad():
                metrics["mel"].append(losses.masked_l1_loss(outputs.mel_after, target, mel_lengths).detach())
        return (loss, outputs) if return_outputs else loss

    def _scheduled_sampling_inputs(self, model, inputs, reduction_factor: int) -> torch.Tensor:
        """The decoder's input frames with a share `args.scheduled_sampling` of its steps replaced by the model's own
        teacher-forced predictions (a first pass without gradients): generation feeds back its own, blurrier frames,
        and a decoder that learned to locate itself in the text by the recorded frames loses its place there."""
        target = inputs["mel"]
        with torch.no_grad():
            predicted = model(**inputs).mel_before.to(target.dtype)  # (batch, frames, n_mels)
        batch, frames = target.shape[:2]
        steps = frames // reduction_factor
        replace = torch.rand(batch, steps, device=target.device) < self.args.scheduled_sampling
        replace = replace.repeat_interleave(reduction_factor, dim=1).unsqueeze(-1)  # (batch, frames, 1)
        return torch.where(replace, predicted, target)

    def _mel_loss(self, prediction, target, mel_lengths):
        if self.args.mel_loss == "l1":
            return losses.masked_l1_loss(prediction, target, mel_lengths)
        return losses.masked_huber_loss(prediction, target, mel_lengths, self.args.huber_delta)

    def _warn_no_attention(self, config) -> None:
        if not self._warned_no_attention:
            self._warned_no_attention = True
            logger.warning(
                "loss_weight_guided_attention > 0 but the model returned no text_mel_attention (its "
                f"guided_attention_layers are {getattr(config, 'guided_attention_layers', None)}); the "
                "guided-attention term is skipped. Set loss_weight_guided_attention 0 to silence this."
            )

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        mode = "train" if "loss" in logs else "eval"
        metrics = mean_loss_terms(self, mode)
        if mode == "train":
            if self.args.guided_attention_decay_steps is not None:
                # The weight of the last step's loss (it decays step by step).
                metrics["loss_weight/guided_attention"] = self._guided_attention_weight
            if self.args.fp16:
                scaler = getattr(self.accelerator, "scaler", None)
                if scaler is not None:
                    metrics["amp/loss_scale"] = float(scaler.get_scale())
                metrics["amp/skipped_steps"] = self._precision_monitor.skipped_steps
        # In place: `evaluate()` returns this very dict, so best-model selection can use `eval_mel`.
        logs.update(metrics)
        super().log(logs, start_time)
        self._metrics[mode].clear()
