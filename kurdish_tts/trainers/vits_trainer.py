"""`VitsTrainer`: fine-tune or train VITS/MMS text-to-speech with the `transformers.Trainer` loop."""

from __future__ import annotations

import dataclasses
import functools
import os

import numpy as np
import safetensors.torch
import torch
from transformers import Trainer, TrainerCallback, get_scheduler
from transformers.utils import logging

from ..data.collators import SAMPLE_IDS, VITS_COLUMNS, DataCollatorForVits
from ..evaluation.synthesis import fixed_random_state
from ..evaluation.waveform_health import pooled_segment_health
from ..models.vits import losses
from ..models.vits.cuda_graphs import GraphedLoss
from ..models.vits.modeling_discriminator import load_discriminator
from ..models.vits.modeling_vits_training import VitsForTraining
from .eval_batches import require_an_eval_batch
from .loss_terms import mean_loss_terms, track_loss_terms
from .vits_arguments import VitsTrainingArguments

logger = logging.get_logger(__name__)

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
# Batch fields a captured training step takes, in this order (`speaker_id` only for multi-speaker batches).
_GRAPH_INPUTS = ("input_ids", "attention_mask", "waveform", "mel", "mel_lengths", "speaker_id")
# Evaluations run under `args.seed` plus this, apart from the seed training starts from.
EVAL_SEED_OFFSET = 1234
# Discriminator states of `gan_update="alternating"`, saved in each checkpoint folder next to the Trainer's own.
DISCRIMINATOR_OPTIMIZER_NAME = "discriminator_optimizer.pt"
DISCRIMINATOR_SCHEDULER_NAME = "discriminator_scheduler.pt"
DISCRIMINATOR_SCALER_NAME = "discriminator_scaler.pt"


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

    The GAN update (`args.gan_update`). With `"fused"` (the default), generator and discriminator are one module
    with one optimizer (two parameter groups, so the discriminator can have its own learning rate) and one loss: the
    weighted sum of the generator terms and the discriminator term. The discriminator term sees the generated audio
    detached, and the generator's adversarial and feature-matching terms see the discriminator with its parameters
    out of autograd, so one backward pass gives each network exactly its own gradients. Everything the Trainer does
    for one optimizer then holds for both networks: gradient accumulation, fp16 loss scaling with a single healthy
    scaler, clipping, DDP, checkpoint and resume. The generator sees the discriminator before (not after) this step's
    update.

    With `"alternating"`, `training_step` follows VITS's D-then-G order: one generator forward, then the
    discriminator's loss, backward, clipping (`max_grad_norm`), step of its own AdamW optimizer and schedule (and, in
    fp16, its own `GradScaler`: one scale shared by two optimizers is driven by whichever overflows and collapses),
    and only then the generator's loss against the updated discriminator, returned to the Trainer, whose optimizer
    holds the generator's parameters only. The discriminator's optimizer, schedule and scaler states are saved in
    every checkpoint and restored by `resume_from_checkpoint`. Single process only: the discriminator runs outside
    the DDP-wrapped forward, so DDP could not synchronize it. `benchmarks/results/gan_update.md` compares the two.

    Gradient accumulation. Every loss term is a per-batch mean, so the Trainer must divide by the accumulation steps:
    `model_accepts_loss_kwargs` is False and `loss_is_scaled_for_ga` is False (transformers would otherwise guess from
    `**kwargs` in a model's forward). With `"alternating"`, the discriminator's gradients accumulate over the
    micro-batches in the same way and it steps on the last micro-batch of each cycle, just before that micro-batch's
    generator terms; the earlier micro-batches of a cycle are judged by the discriminator of the previous cycle
    (as with `accelerate`'s `accumulate()` in finetune-hf-vits).
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
        # Args
        require_an_eval_batch(eval_dataset, args)
        if args.gan_update == "alternating" and args.world_size > 1:
            raise ValueError(
                f"gan_update='alternating' runs the discriminator outside the DDP-wrapped forward, which DDP cannot "
                f"synchronize across the {args.world_size} processes of this run: use gan_update='fused' for multi-GPU"
            )

        if args.cuda_graphs and (args.world_size > 1 or args.device.type != "cuda"):
            raise ValueError(
                f"cuda_graphs=True needs exactly one CUDA device; this run has {args.world_size} process(es) on "
                f"{args.device.type}: turn cuda_graphs off"
            )

        # Model
        if isinstance(model, str):
            model = VitsForTraining.from_pretrained(model)
        if args.segment_frames is not None:
            model.segment_frames = args.segment_frames
        if args.cuda_graphs:
            _disable_layer_drop(model)
        elif args.world_size > 1 and not args.ddp_find_unused_parameters:
            _keep_dropped_layers_in_graph(model)

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
        track_loss_terms(self)
        # `gan_update="alternating"` only: built with the main schedule in `create_scheduler`, when the number of
        # steps is known. A disabled scaler passes everything through, so the discriminator step has one code path.
        self._discriminator_optimizer = None
        self._discriminator_scheduler = None
        self._discriminator_scaler = torch.amp.GradScaler(
            self.args.device.type, enabled=self.args.fp16 and self.args.gan_update == "alternating"
        )
        # `cuda_graphs=True` only: built at the first training batch, when the inputs' names are known.
        self._graphed_loss: GraphedLoss | None = None
        self._graph_input_names: tuple[str, ...] = ()

    @property
    def one_off_step_count(self) -> int:
        """Training steps so far that captured a CUDA graph: work the run does not repeat, which the time budget's
        probe (`measure_step_time`) leaves out of the pace it plans with."""
        return 0 if self._graphed_loss is None else len(self._graphed_loss.captures)

    def _set_signature_columns_if_needed(self):
        if self._signature_columns is None:
            # The audio columns are not forward() arguments, so without this `remove_unused_columns` drops them; `id`
            # becomes the training batches' `sample_ids`.
            self._signature_columns = [*VITS_COLUMNS, "speaker", "id"]

    def get_train_dataloader(self):
        # Training batches name their samples (`NanRecoveryCallback` quarantines those of a step it undoes); evaluation
        # batches do not, so that callbacks feeding them to the model with `model(**batch)` keep working.
        collator = self.data_collator
        if not isinstance(collator, DataCollatorForVits) or collator.return_sample_ids:
            return super().get_train_dataloader()
        self.data_collator = dataclasses.replace(collator, return_sample_ids=True)
        try:
            return super().get_train_dataloader()
        finally:
            self.data_collator = collator

    def create_optimizer(self, model=None):
        if self.optimizer is not None:
            return self.optimizer
        alternating = self.args.gan_update == "alternating"
        if self.args.discriminator_learning_rate is None and not alternating:
            return super().create_optimizer(model)
        opt_model = self.model if model is None else model
        # With "alternating" the discriminator has an optimizer of its own (`_create_discriminator_optimizer`).
        networks = [("vits.", None)]
        if not alternating:
            networks.append(("discriminator.", self.args.discriminator_learning_rate))
        decay = set(self.get_decay_parameter_names(opt_model))
        groups = []
        for prefix, learning_rate in networks:
            named = [(n, p) for n, p in opt_model.named_parameters() if n.startswith(prefix) and p.requires_grad]
            groups.extend(_decay_groups(named, decay, self.args.weight_decay, learning_rate))
        optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
        self.optimizer = optimizer_cls(groups, **optimizer_kwargs)
        return self.optimizer

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        rebuilt = self.lr_scheduler is None
        scheduler = super().create_scheduler(num_training_steps, optimizer)
        if self.args.gan_update == "alternating" and (rebuilt or self._discriminator_scheduler is None):
            self._create_discriminator_optimizer(num_training_steps)
        return scheduler

    def _create_discriminator_optimizer(self, num_training_steps: int) -> None:
        """AdamW with the run's betas, epsilon and weight decay, and a schedule of the main one's type and warm-up."""
        if self._discriminator_optimizer is None:
            discriminator = self.model.discriminator
            named = [(n, p) for n, p in discriminator.named_parameters() if p.requires_grad]
            decay = set(self.get_decay_parameter_names(discriminator))
            learning_rate = self.args.discriminator_learning_rate
            self._discriminator_optimizer = torch.optim.AdamW(
                _decay_groups(named, decay, self.args.weight_decay),
                lr=self.args.learning_rate if learning_rate is None else learning_rate,
                betas=(self.args.adam_beta1, self.args.adam_beta2),
                eps=self.args.adam_epsilon,
            )
        self._discriminator_scheduler = get_scheduler(
            self.args.lr_scheduler_type,
            optimizer=self._discriminator_optimizer,
            num_warmup_steps=self.args.get_warmup_steps(num_training_steps),
            num_training_steps=num_training_steps,
            scheduler_specific_kwargs=self.args.lr_scheduler_kwargs,
        )

    def training_step(self, model, inputs, num_items_in_batch=None):
        if self.args.gan_update == "fused":
            return super().training_step(model, inputs, num_items_in_batch)
        model.train()
        inputs = self._prepare_inputs(inputs)
        # Submodules are called directly, past any wrapper's forward (hence single process only).
        networks = self.accelerator.unwrap_model(model)
        train_generator = self.state.global_step >= self.args.discriminator_warmup_steps
        accumulation = self.current_gradient_accumulation_steps
        metrics = self._metrics["train"]
        # Accelerate applies mixed precision by patching the prepared model's `forward`, which this path bypasses, so
        # its autocast is entered explicitly (`compute_loss_context_manager` is empty in recent transformers).
        with self.compute_loss_context_manager(), self.accelerator.autocast():
            with torch.set_grad_enabled(train_generator):
                output = networks._generator_forward(
                    inputs["input_ids"],
                    inputs["attention_mask"],
                    inputs["waveform"],
                    inputs["mel"],
                    inputs["mel_lengths"],
                    inputs.get("speaker_id"),
                )
            generated, target = output.generated_waveform, output.target_waveform  # (batch, 1, segment_samples)

            # 1. The discriminator, on real and detached generated audio.
            scores = networks.discriminator(torch.cat([target, generated.detach()], dim=0))
            real, fake = scores.chunk(2)
            discriminator_loss, _, _ = losses.discriminator_loss(real.logits, fake.logits)
        scaled = self.args.loss_weight_disc * discriminator_loss / accumulation
        self._discriminator_scaler.scale(scaled).backward()
        # The Trainer sets `sync_gradients` before every micro-batch (True on the last one of an accumulation cycle,
        # a short last cycle of an epoch included), in 5.17 as in 5.23: the main optimizer steps on exactly these.
        if self.accelerator.sync_gradients:
            self._discriminator_step(networks.discriminator)

        # 2. The generator, judged by the updated discriminator.
        terms = {"mel": output.mel_loss, "kl": output.kl_loss, "duration": output.duration_loss}
        if train_generator:
            with self.compute_loss_context_manager(), self.accelerator.autocast():
                # Parameters out of autograd: the generator terms reach the generator only, through the audio.
                detached = {name: p.detach() for name, p in networks.discriminator.named_parameters()}
                scores = torch.func.functional_call(
                    networks.discriminator, detached, (torch.cat([target, generated], dim=0),)
                )
                real, fake = scores.chunk(2)
                terms["gen"], _ = losses.generator_adversarial_loss(fake.logits)
                terms["fm"] = losses.feature_matching_loss(real.feature_maps, fake.feature_maps)
        loss = sum(getattr(self.args, f"loss_weight_{name}") * term for name, term in terms.items())
        if train_generator:
            self.accelerator.backward(loss / accumulation)
        elif self.accelerator.scaler is not None:
            # fp16 warm-up: `GradScaler.step` refuses an optimizer none of whose parameters has a gradient ("No inf
            # checks were recorded"). An exact-zero gradient on one generator tensor satisfies it; AdamW then moves
            # that tensor by weight decay only.
            self.accelerator.backward(next(networks.vits.parameters()).sum() * 0.0)

        terms["disc"] = discriminator_loss
        for name, term in terms.items():
            metrics[f"loss/{name}"].append(term.detach())
        # What the Trainer logs as `loss`: the same weighted sum of all terms as with "fused".
        return (loss.detach() + self.args.loss_weight_disc * discriminator_loss.detach()) / accumulation

    def _discriminator_step(self, discriminator: torch.nn.Module) -> None:
        optimizer, scaler = self._discriminator_optimizer, self._discriminator_scaler
        scaler.unscale_(optimizer)
        max_norm = self.args.max_grad_norm if self.args.max_grad_norm > 0 else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(discriminator.parameters(), max_norm)
        self._metrics["train"]["grad_norm/disc"].append(grad_norm.detach())
        scale = scaler.get_scale() if scaler.is_enabled() else None
        scaler.step(optimizer)
        scaler.update()
        # A step the scaler skipped (inf/NaN gradients) lowers the scale; the schedule then waits, as the Trainer's
        # does for the generator.
        if scale is None or scaler.get_scale() >= scale:
            self._discriminator_scheduler.step()
        optimizer.zero_grad(set_to_none=True)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mode = "train" if model.training else "eval"
        train_generator = mode == "eval" or self.state.global_step >= self.args.discriminator_warmup_steps
        # Every path to the model's forward passes here (the alternating `training_step` reads named keys only), with
        # `sample_ids` from training batches or from a collator made with `return_sample_ids=True`.
        inputs = {key: value for key, value in inputs.items() if key != SAMPLE_IDS}
        if mode == "train" and train_generator and self.args.cuda_graphs and not return_outputs:
            graphed = self._graphed_training_loss(model, inputs)
            if graphed is not None:
                loss, terms = graphed
                for name, term in zip(LOSS_NAMES, terms.unbind()):
                    self._metrics[mode][f"loss/{name}"].append(term)
                return loss
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

    def _graphed_training_loss(self, model, inputs) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The fused training loss through CUDA graphs, or `None` when this batch runs eagerly (a batch smaller than
        the configured size, other fields than the first batch's, or a new shape past `cuda_graphs_max_shapes`)."""
        names = tuple(name for name in _GRAPH_INPUTS if name in inputs)
        if self._graphed_loss is None:
            self._graph_input_names = names
            self._graphed_loss = GraphedLoss(
                functools.partial(_fused_loss, self.accelerator.unwrap_model(model), names, self.args),
                [p for p in model.parameters() if p.requires_grad],
                autocast_dtype=torch.bfloat16 if self.args.bf16 else torch.float16 if self.args.fp16 else None,
                max_graphs=self.args.cuda_graphs_max_shapes,
            )
        if names != self._graph_input_names or inputs["input_ids"].shape[0] != self.args.per_device_train_batch_size:
            self._graphed_loss.eager_calls += 1
            return None
        return self._graphed_loss(*(inputs[name] for name in names))

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval"):
        """The Trainer's evaluation under a fixed random state, so that a checkpoint is judged by its weights alone.

        The training forward draws random segments, posterior samples and duration noise; seeded the same way at
        every evaluation, the same weights give the same figures (before, the same weights evaluated twice at one
        step gave eval mel 2.133 and 2.096), and the random state of training continues as if no evaluation ran.
        """
        with fixed_random_state(self.args.device, self.args.seed + EVAL_SEED_OFFSET):
            return super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            loss, outputs = self.compute_loss(model, inputs, return_outputs=True)
        if outputs.generated_waveform is not None:
            # The decoded segments against the recorded ones, sample by sample and over every STFT bin: the mel
            # terms give the DC and Nyquist bins no weight, so they cannot see a tone or an offset.
            unwrapped = self.accelerator.unwrap_model(model)
            health = pooled_segment_health(
                outputs.generated_waveform, outputs.target_waveform, unwrapped.mel_config.sampling_rate
            )
            for key, value in health.items():
                self._metrics["eval"][f"health/{key}"].append(value)
        return loss.detach(), None, None

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        mode = "train" if "loss" in logs else "eval"
        metrics = mean_loss_terms(self, mode)
        if mode == "train" and self.args.fp16:
            scaler = getattr(self.accelerator, "scaler", None)
            if scaler is not None:
                metrics["amp/loss_scale"] = float(scaler.get_scale())
            if self._discriminator_scaler.is_enabled():
                metrics["amp/disc_loss_scale"] = float(self._discriminator_scaler.get_scale())
            metrics["amp/skipped_steps"] = self._precision_monitor.skipped_steps
        if mode == "train" and self._graphed_loss is not None:
            metrics.update({f"cuda_graphs/{key}": value for key, value in self._graphed_loss.stats().items()})
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

    def _save_optimizer_and_scheduler(self, output_dir: str) -> None:
        super()._save_optimizer_and_scheduler(output_dir)
        if self._discriminator_optimizer is None or not self.args.should_save:
            return
        torch.save(self._discriminator_optimizer.state_dict(), os.path.join(output_dir, DISCRIMINATOR_OPTIMIZER_NAME))
        torch.save(self._discriminator_scheduler.state_dict(), os.path.join(output_dir, DISCRIMINATOR_SCHEDULER_NAME))
        if self._discriminator_scaler.is_enabled():
            torch.save(self._discriminator_scaler.state_dict(), os.path.join(output_dir, DISCRIMINATOR_SCALER_NAME))

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        super()._load_optimizer_and_scheduler(checkpoint)
        if checkpoint is None or self._discriminator_optimizer is None:
            return
        optimizer_path = os.path.join(checkpoint, DISCRIMINATOR_OPTIMIZER_NAME)
        if not os.path.isfile(optimizer_path):
            logger.warning(
                f"{checkpoint} holds no {DISCRIMINATOR_OPTIMIZER_NAME}: the discriminator's optimizer starts fresh"
            )
            return
        device = self.args.device
        self._discriminator_optimizer.load_state_dict(
            torch.load(optimizer_path, map_location=device, weights_only=True)
        )
        self._discriminator_scheduler.load_state_dict(
            torch.load(os.path.join(checkpoint, DISCRIMINATOR_SCHEDULER_NAME), weights_only=True)
        )
        scaler_path = os.path.join(checkpoint, DISCRIMINATOR_SCALER_NAME)
        if self._discriminator_scaler.is_enabled() and os.path.isfile(scaler_path):
            self._discriminator_scaler.load_state_dict(torch.load(scaler_path, weights_only=True))

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        _load_training_weights(model if model is not None else self.model, resume_from_checkpoint)

    def _load_best_model(self) -> None:
        _load_training_weights(self.model, self.state.best_model_checkpoint)


def _fused_loss(model: VitsForTraining, names: tuple[str, ...], args, *tensors):
    """The weighted fused loss and the unweighted terms (in `LOSS_NAMES` order) of one batch: what a CUDA graph
    captures. Calls `VitsForTraining.forward` itself, past the mixed-precision wrapper accelerate patches onto the
    instance (the graph capture sets its own autocast)."""
    outputs = VitsForTraining.forward(model, **dict(zip(names, tensors)), train_generator=True)
    terms = [getattr(outputs, _OUTPUT_FIELDS[name]) for name in LOSS_NAMES]
    loss = sum(getattr(args, f"loss_weight_{name}") * term for name, term in zip(LOSS_NAMES, terms))
    return loss, torch.stack([term.detach().float() for term in terms])


def _disable_layer_drop(model: VitsForTraining) -> None:
    """Layer drop in transformers' VITS text encoder decides on the host (numpy) which layers to skip; a graph would
    freeze one such decision for the whole run, so it is turned off while CUDA graphs are on."""
    encoder = model.vits.text_encoder.encoder
    if getattr(encoder, "layerdrop", 0.0) > 0:
        logger.warning(
            f"cuda_graphs=True: the text encoder's layer drop ({encoder.layerdrop}) is drawn on the host and cannot be "
            "replayed from a CUDA graph; training without it"
        )
        encoder.layerdrop = 0.0


def _keep_dropped_layers_in_graph(model: VitsForTraining) -> None:
    """Layer drop that DDP can follow without searching for unused parameters: transformers' text encoder skips a
    dropped layer, leaving its parameters without a gradient, which DDP without `find_unused_parameters` reports as an
    error at the next step. Here every layer runs and a dropped one's output is replaced by its input plus zero times
    its output: the same forward values, a zero gradient for its parameters. The drop is drawn like transformers'
    (numpy, per layer and step), and the encoder's own drop is turned off so that layers are not dropped twice."""
    encoder = model.vits.text_encoder.encoder
    probability = getattr(encoder, "layerdrop", 0.0)
    if probability <= 0 or getattr(encoder, "_ddp_layer_drop", None) is not None:
        return
    encoder.layerdrop = 0.0
    encoder._ddp_layer_drop = probability
    for layer in encoder.layers:
        layer.register_forward_hook(functools.partial(_drop_layer_output, probability=probability), with_kwargs=True)


def _drop_layer_output(module, args, kwargs, output, *, probability: float):
    if not module.training or np.random.uniform(0, 1) >= probability:
        return output
    hidden_in = args[0] if args else kwargs["hidden_states"]
    if isinstance(output, tuple):
        return (hidden_in + 0.0 * output[0], *output[1:])
    return hidden_in + 0.0 * output


def _decay_groups(named_parameters, decay: set[str], weight_decay: float, learning_rate: float | None = None):
    """Two parameter groups, with and without weight decay (the Trainer's rule), optionally with their own lr."""
    groups = []
    for decayed in (True, False):
        group = {
            "params": [p for n, p in named_parameters if (n in decay) == decayed],
            "weight_decay": weight_decay if decayed else 0.0,
        }
        if learning_rate is not None:
            group["lr"] = learning_rate
        groups.append(group)
    return groups


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
