"""Does the model learn? A short real training run on one repeated batch, watched parameter by parameter.

`run_training_probe` trains the run's model for `steps` optimizer steps (30 by default) on the same batch, with the
run's `VitsTrainer`, precision, GAN update, clipping and learning rates, held at the peak rate (a probe of 30 steps
inside a warm-up of 1,000 would test nothing). It watches:

- the loss of every step (finite?), and the fp16 loss scale and skipped steps;
- every parameter's gradient at every optimizer step (finite? non-zero in at least one step? The zero-initialized
  speaker conditioning of a multi-speaker model legitimately gets its first gradient in the second step, see
  `kurdish_tts.models.vits.speakers`);
- which parameters are frozen (`requires_grad=False`: the run trains every parameter) and which moved;
- a paired reconstruction loss: the weighted mel + KL + duration loss of the batch, before and after the probe, with
  the same random segments and noise (the same seed), in fp32. The per-step losses are too noisy to compare (each
  step decodes other random segments); the paired loss is not;
- the waveform health of the decoded segments after the probe (`kurdish_tts.evaluation.waveform_health`): clipping,
  a DC offset or a tone above 7.5 kHz fail (the mel loss cannot see them); a level far from the recordings' is said
  but passes, since a decoder trained from random weights starts quiet.

Its trainer has no NaN recovery (which would hide the very NaN the probe looks for), no throughput, sample or
best-model callbacks, and writes nothing outside its scratch folder. The model's weights are restored by the caller.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

import numpy as np
import torch
from transformers import DefaultFlowCallback, TrainerCallback, set_seed

from ..evaluation.waveform_health import health_problems, pooled_segment_health
from ..models.vits import VitsForTraining
from ..trainers import VitsTrainer
from .probing import PEAK_LEARNING_RATE, one_batch_arguments, probe_directory, repeated_rows
from .report import Check, Status

SECTION = "training probe"
# Seeds of the paired reconstruction loss; two, so that one lucky segment draw does not decide.
_PAIRED_SEEDS = (1234, 4321)
# Gradient norms growing this much from the first to the last steps of a probe are exploding, not noisy.
_EXPLODING_FACTOR = 100.0
# In fp16 the scaler starts at 2**16 and halves on every overflow, so the first steps of a run are often skipped.
_MAX_SKIPPED_SHARE = 0.5
_NAMES_SHOWN = 5
# The paired loss of a repeatedly trained batch falls by percents within a few steps at a stable learning rate; less
# than this is a learning rate (or a gradient path) too small to train in the run's time.
MIN_RELATIVE_DECREASE = 1e-3


@dataclass
class TrainingProbeResult:
    """What the probe measured; `checks()` turns it into the report's rows.

    Args:
        steps (`int`): Optimizer steps requested.
        completed_steps (`int`): Steps that ran (fewer when training raised).
        batch_size (`int`): Rows of the repeated batch.
        learning_rate, discriminator_learning_rate (`float`): The peak rates the probe held.
        fp16 (`bool`): Whether fp16 loss scaling was in use.
        logs (`list[dict]`): The trainer's log of every step (`loss`, `loss/*`, `grad_norm`, `amp/loss_scale`).
        skipped (`list[bool]`): Per step, whether the optimizer step was skipped (fp16 overflow).
        names (`list[str]`): Parameter names, in the order of `gradient_max`'s columns.
        generator (`list[bool]`): Per parameter, whether it belongs to the generator (else the discriminator).
        gradient_max (`np.ndarray` of shape `(steps, parameters)`): Largest absolute gradient entry per step and
            parameter after the Trainer's clipping; 0 for no gradient, NaN/inf for non-finite ones.
        frozen (`list[str]`): Parameters with `requires_grad=False`.
        moved (`list[bool]`): Per parameter, whether its values changed.
        unused (`set[str]`): Parameters this run does not use (a multi-speaker model trained without speaker ids).
        stepped_inside (`set[str]`): Parameters whose gradients are applied and cleared inside the training step, before
            the Trainer's optimizer step where the probe looks (the discriminator with `gan_update="alternating"`);
            whether they move is still checked.
        reconstruction_before, reconstruction_after (`float`): The paired loss before and after.
        health (`dict[str, float]`): Waveform health of the decoded segments after the probe (`pooled_segment_health`).
        error (`str`, *optional*): The exception that stopped training, if any.
    """

    steps: int
    completed_steps: int = 0
    batch_size: int = 0
    learning_rate: float = 0.0
    discriminator_learning_rate: float = 0.0
    fp16: bool = False
    max_grad_norm: float = 0.0
    logs: list[dict] = field(default_factory=list)
    skipped: list[bool] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    generator: list[bool] = field(default_factory=list)
    gradient_max: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    frozen: list[str] = field(default_factory=list)
    moved: list[bool] = field(default_factory=list)
    unused: set[str] = field(default_factory=set)
    stepped_inside: set[str] = field(default_factory=set)
    reconstruction_before: float = float("nan")
    reconstruction_after: float = float("nan")
    health: dict[str, float] = field(default_factory=dict)
    error: str | None = None

    def checks(self) -> list[Check]:
        return [
            self._frozen_check(),
            self._finite_loss_check(),
            self._gradient_check(),
            self._update_check(),
            self._loss_decrease_check(),
            self._gradient_norm_check(),
            self._loss_scale_check(),
            self._waveform_health_check(),
        ]

    # Helpers
    def _lower_rate_fix(self) -> str:
        return (
            f"lower --learning_rate (probe: {self.learning_rate:g}; stable: 2e-5 fine-tuning, 2e-4 from scratch)"
            + (
                f" and --discriminator_learning_rate ({self.discriminator_learning_rate:g})"
                if self.discriminator_learning_rate > 2e-3
                else ""
            )
        )

    def _series(self, key: str) -> list[float]:
        return [float(log[key]) for log in self.logs if key in log]

    def _finite_steps(self) -> np.ndarray:
        if not self.gradient_max.size:
            return np.zeros(0, dtype=bool)
        return np.isfinite(self.gradient_max).all(axis=1)

    # Checks
    def _frozen_check(self) -> Check:
        name = "frozen parameters"
        total = len(self.names) + len(self.frozen)
        if self.frozen:
            return Check(
                SECTION,
                name,
                Status.FAIL,
                f"{len(self.frozen)} of {total} parameter tensors have requires_grad=False and will not train: "
                + _shown(self.frozen),
                "remove the code that froze them (or call model.requires_grad_(True)); the run trains every parameter",
                {"frozen": self.frozen},
            )
        return Check(SECTION, name, Status.OK, f"none: all {total} parameter tensors train")

    def _finite_loss_check(self) -> Check:
        name = "finite loss"
        losses = self._series("loss")
        details = {"losses": losses}
        if self.error is not None:
            return Check(
                SECTION,
                name,
                Status.FAIL,
                f"training raised at step {self.completed_steps + 1} of {self.steps}: {self.error}",
                self._lower_rate_fix() + ", or fix the error above",
                details,
            )
        bad = [step for step, value in enumerate(losses, start=1) if not math.isfinite(value)]
        if not losses:
            return Check(SECTION, name, Status.FAIL, "no training step logged a loss", "", details)
        if bad and (not self.fp16 or bad[-1] == len(losses) or len(bad) > _MAX_SKIPPED_SHARE * len(losses)):
            return Check(
                SECTION,
                name,
                Status.FAIL,
                f"the loss is non-finite from step {bad[0]} ({len(bad)} of {len(losses)} steps"
                f"{', including the last' if bad[-1] == len(losses) else ''}) at learning rate {self.learning_rate:g}",
                self._lower_rate_fix(),
                details,
            )
        evidence = (
            f"finite in all {len(losses)} steps ({losses[0]:.4g} at the first, {losses[-1]:.4g} at the last; single "
            "steps vary with their random segments, see 'loss decreases')"
        )
        if bad:
            evidence += f"; {len(bad)} fp16 overflow step(s), skipped by the loss scaler"
        return Check(SECTION, name, Status.OK, evidence, details=details)

    def _gradient_check(self) -> Check:
        name = "gradients reach every parameter"
        if not self.gradient_max.size:
            return Check(SECTION, name, Status.SKIP, "no optimizer step ran")
        finite_steps = self._finite_steps()
        details = {"finite_steps": int(finite_steps.sum()), "steps": len(finite_steps)}
        nonfinite = np.flatnonzero(~finite_steps)
        if len(nonfinite) and not self.fp16:
            first = self.gradient_max[nonfinite[0]]
            affected = [n for n, value in zip(self.names, first) if not math.isfinite(value)]
            details["nonfinite_steps"] = (nonfinite + 1).tolist()
            return Check(
                SECTION,
                name,
                Status.FAIL,
                f"non-finite gradients in {len(nonfinite)} of {len(finite_steps)} steps, from step {nonfinite[0] + 1} "
                f"({len(affected)} parameter tensors, e.g. {_shown(affected, 3)})",
                self._lower_rate_fix(),
                details,
            )
        if not finite_steps.any():
            return Check(
                SECTION, name, Status.FAIL, "every step overflowed in fp16: no finite gradient at all",
                self._lower_rate_fix() + ", or --bf16 true on a GPU that has it", details,
            )  # fmt: skip
        finite = self.gradient_max[finite_steps]
        nonzero = finite > 0
        ever = nonzero.any(axis=0)
        ignored = self.unused | self.stepped_inside
        dead = [n for n, got in zip(self.names, ever) if not got and n not in ignored]
        late = [n for n, got in zip(self.names, nonzero[0]) if not got and n not in ignored and n not in dead]
        details.update(never=dead, first_gradient_after_step_1=late, unused=sorted(self.unused))
        if dead:
            return Check(
                SECTION,
                name,
                Status.FAIL,
                f"{len(dead)} of {len(self.names)} trainable parameter tensors got a zero gradient in every one of "
                f"{int(finite_steps.sum())} steps: {_shown(dead)}",
                "these parameters are cut off from the loss (detached, unused in the training forward, or their "
                "gradient zeroed); undo the change that did it",
                details,
            )
        observed = len(self.names) - len(self.stepped_inside)
        evidence = f"all {observed} trainable parameter tensors got finite, non-zero gradients"
        if late:
            evidence += (
                f" ({len(late)} only from step 2 on, as zero-initialized speaker conditioning does: {_shown(late, 3)})"
            )
        if len(nonfinite):
            evidence += f"; {len(nonfinite)} fp16 overflow step(s) skipped"
        if self.unused:
            evidence += f"; {len(self.unused)} speaker-conditioning tensors unused by this run (no speaker ids)"
        if self.stepped_inside:
            evidence += (
                f"; the discriminator's {len(self.stepped_inside)} tensors step inside the training step "
                "(gan_update alternating), see the next check"
            )
        return Check(SECTION, name, Status.OK, evidence, details=details)

    def _update_check(self) -> Check:
        name = "generator and discriminator move"
        if not self.moved:
            return Check(SECTION, name, Status.SKIP, "no optimizer step ran")
        moved = np.asarray(self.moved)
        generator = np.asarray(self.generator)
        counts = {
            "generator": (int(moved[generator].sum()), int(generator.sum())),
            "discriminator": (int(moved[~generator].sum()), int((~generator).sum())),
        }
        evidence = ", ".join(f"{net}: {done} of {total} tensors changed" for net, (done, total) in counts.items())
        details = {net: {"moved": done, "total": total} for net, (done, total) in counts.items()}
        still = [net for net, (done, total) in counts.items() if total and not done]
        if still:
            return Check(
                SECTION,
                name,
                Status.FAIL,
                f"{evidence}: the {' and the '.join(still)} did not change in {self.completed_steps} steps",
                "check that the optimizer holds its parameters, that its learning rate is above 0 "
                "(--learning_rate / --discriminator_learning_rate) and that its loss weight is not 0",
                details,
            )
        if self.gradient_max.size:
            finite = self.gradient_max[self._finite_steps()]
            with_gradient = (finite > 0).any(axis=0) if finite.size else np.zeros(len(self.names), dtype=bool)
            idle = [n for n, got, did in zip(self.names, with_gradient, moved) if got and not did]
            if idle:
                details["not_updated"] = idle
                return Check(
                    SECTION,
                    name,
                    Status.FAIL,
                    f"{evidence}; {len(idle)} tensors got gradients but never changed, so the optimizer does not hold "
                    f"them: {_shown(idle)}",
                    "build the optimizer after every change to the model (the Trainer does, at train())",
                    details,
                )
        return Check(SECTION, name, Status.OK, evidence, details=details)

    def _loss_decrease_check(self) -> Check:
        name = "loss decreases"
        before, after = self.reconstruction_before, self.reconstruction_after
        details = {"paired_loss_before": before, "paired_loss_after": after}
        if not math.isfinite(before):
            return Check(SECTION, name, Status.FAIL, f"the untrained model's loss is already {before}", "", details)
        if not math.isfinite(after):
            return Check(
                SECTION,
                name,
                Status.FAIL,
                f"the loss of the trained batch went from {before:.4g} to {after} in {self.completed_steps} steps",
                self._lower_rate_fix(),
                details,
            )
        change = (after - before) / before if before else 0.0
        details["relative_change"] = change
        evidence = (
            f"weighted mel + KL + duration loss of the trained batch (same segments and noise): {before:.4g} → "
            f"{after:.4g} ({change:+.1%}) after {self.completed_steps} steps at learning rate {self.learning_rate:g}"
        )
        if change <= -MIN_RELATIVE_DECREASE:
            return Check(SECTION, name, Status.OK, evidence, details=details)
        return Check(
            SECTION,
            name,
            Status.WARN,
            evidence + f": it does not fall (by at least {MIN_RELATIVE_DECREASE:.1%}) even on a batch it trains on "
            "again and again",
            "raise --learning_rate toward the stable range (2e-5 fine-tuning, 2e-4 from scratch) and check the loss "
            "weights",
            details,
        )

    def _gradient_norm_check(self) -> Check:
        name = "gradient norm"
        norms = self._series("grad_norm")
        if not norms:
            return Check(SECTION, name, Status.SKIP, "no step logged a gradient norm")
        finite = [value for value in norms if math.isfinite(value)]
        details = {"grad_norms": norms, "max_grad_norm": self.max_grad_norm}
        if not finite:
            return Check(SECTION, name, Status.FAIL, "non-finite in every step", self._lower_rate_fix(), details)
        evidence = f"median {statistics.median(finite):.4g}, max {max(finite):.4g} over {len(norms)} steps"
        if self.max_grad_norm and self.max_grad_norm > 0:
            clipped = sum(value > self.max_grad_norm for value in finite)
            evidence += f"; clipped to {self.max_grad_norm:g} in {clipped} of them"
        window = max(len(finite) // 5, 1)
        first, last = statistics.median(finite[:window]), statistics.median(finite[-window:])
        if len(finite) >= 4 and first > 0 and last > _EXPLODING_FACTOR * first:
            return Check(
                SECTION,
                name,
                Status.WARN,
                f"{evidence}: grows from {first:.4g} to {last:.4g}, exploding",
                self._lower_rate_fix(),
                details,
            )
        if len(finite) < len(norms) and not self.fp16:
            return Check(SECTION, name, Status.FAIL, f"{evidence}; non-finite in {len(norms) - len(finite)} steps",
                         self._lower_rate_fix(), details)  # fmt: skip
        return Check(SECTION, name, Status.OK, evidence, details=details)

    def _loss_scale_check(self) -> Check:
        name = "fp16 loss scale"
        if not self.fp16:
            return Check(SECTION, name, Status.OK, "not used (bf16 or fp32 need no loss scaling)")
        scales = self._series("amp/loss_scale")
        skipped = sum(self.skipped)
        details = {"loss_scales": scales, "skipped_steps": skipped}
        if not scales:
            return Check(
                SECTION, name, Status.FAIL, "fp16 is on but no loss scale was logged: the loss is not scaled, so small "
                "gradients underflow to zero", "train with --fp16 through the Trainer (not a half-precision model)",
                details,
            )  # fmt: skip
        evidence = f"{scales[0]:g} → {scales[-1]:g}, {skipped} of {len(self.skipped)} steps skipped for overflow"
        if scales[-1] < 1 or skipped > _MAX_SKIPPED_SHARE * max(len(self.skipped), 1):
            return Check(
                SECTION,
                name,
                Status.FAIL,
                f"{evidence}: the scale is collapsing, so the gradients overflow at any scale (the loss itself is too "
                "large for fp16)",
                "--bf16 true on a GPU that has it; otherwise " + self._lower_rate_fix(),
                details,
            )
        return Check(SECTION, name, Status.OK, evidence, details=details)

    def _waveform_health_check(self) -> Check:
        name = "waveform health"
        if not self.health:
            return Check(SECTION, name, Status.SKIP, "no decoded audio after the probe")
        details = ", ".join(f"{key} {value:.4g}" for key, value in self.health.items())
        # Clipping and an offset are broken at any level; the band shares of a decoder still 20 dB or more under the
        # recordings (a few steps from random weights) describe its noise floor, not a tone.
        quiet = self.health.get("level_vs_reference_db", 0.0) < -20.0
        hard = ("clipped", "dc_offset") if quiet else ("clipped", "dc_offset", "high_band", "low_band")
        broken = health_problems({key: self.health[key] for key in hard if key in self.health})
        level = [p for p in health_problems(self.health) if p not in broken]
        if broken:
            return Check(
                SECTION,
                name,
                Status.FAIL,
                "the decoded audio is broken: " + "; ".join(broken),
                "a decoder at the rails of its tanh learns nothing from the GAN; start from a pretrained model or a "
                "random init made by this package (VitsForTraining.from_size), and lower --learning_rate",
                details,
            )
        if level:
            return Check(
                SECTION,
                name,
                Status.OK,
                "; ".join(level) + " (normal for a decoder trained from random weights for a few steps)",
                "",
                details,
            )
        return Check(
            SECTION, name, Status.OK, "no clipping, offset or tone; level near the recordings'", details=details
        )


def _shown(names: list[str], count: int = _NAMES_SHOWN) -> str:
    return ", ".join(names[:count]) + (f" and {len(names) - count} more" if len(names) > count else "")


class _ProbeObserver(TrainerCallback):
    """Per optimizer step: the largest absolute gradient entry of every parameter (kept on the device until the end),
    whether the step was skipped, and the step's log."""

    def __init__(self, parameters: list[torch.nn.Parameter]):
        self.parameters = parameters
        self.gradient_max: list[torch.Tensor] = []
        self.skipped: list[bool] = []
        self.logs: list[dict] = []

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        # After the Trainer's clipping (and fp16 unscaling). The maximum, not the norm: a norm of large finite
        # entries can overflow float32, a maximum is finite exactly when every entry is, and 0 exactly when all are.
        values = [
            p.grad.detach().abs().amax().float() if p.grad is not None else torch.zeros((), device=p.device)
            for p in self.parameters
        ]
        self.gradient_max.append(torch.stack([value.to(values[0].device) for value in values]))

    def on_step_end(self, args, state, control, optimizer=None, **kwargs):
        self.skipped.append(bool(getattr(optimizer, "step_was_skipped", False)))

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.logs.append(dict(logs))


def run_training_probe(
    model: VitsForTraining,
    args,
    train_dataset,
    tokenizer,
    speaker_to_id: dict[str, int] | None = None,
    *,
    steps: int = 30,
    unused_parameters: set[str] | None = None,
) -> TrainingProbeResult:
    """Train `model` for `steps` steps on one batch of `train_dataset` and report what happened.

    Args:
        model (`VitsForTraining`): The run's model; its weights change (the caller restores them).
        args (`VitsTrainingArguments`): The run's arguments; copied, never changed.
        train_dataset (`datasets.Dataset`): The run's training clips; the batch is its first
            `per_device_train_batch_size` rows.
        tokenizer (`VitsTokenizer`): The run's tokenizer.
        speaker_to_id (`dict[str, int]`, *optional*): The run's voices.
        steps (`int`, *optional*, defaults to `30`): Optimizer steps (at least 2).
        unused_parameters (`set[str]`, *optional*): Parameters this run legitimately leaves without gradients.

    Returns:
        `TrainingProbeResult`; its `checks()` are the report's rows.
    """
    if steps < 2:
        raise ValueError(f"the training probe needs at least 2 steps, got {steps}")
    batch_size = min(args.per_device_train_batch_size, len(train_dataset))
    if batch_size < 1:
        raise ValueError("the training probe needs at least one training clip")
    result = TrainingProbeResult(
        steps=steps,
        batch_size=batch_size,
        learning_rate=args.learning_rate,
        discriminator_learning_rate=args.discriminator_learning_rate or args.learning_rate,
        fp16=bool(args.fp16),
        max_grad_norm=args.max_grad_norm,
        unused=set(unused_parameters or ()),
    )
    if args.gan_update == "alternating":
        result.stepped_inside = {name for name, _ in model.discriminator.named_parameters(prefix="discriminator")}
    named = list(model.named_parameters())
    result.frozen = [name for name, p in named if not p.requires_grad]
    trainable = [(name, p) for name, p in named if p.requires_grad]
    result.names = [name for name, _ in trainable]
    result.generator = [name.startswith("vits.") for name in result.names]
    with probe_directory(args.output_dir) as scratch:
        probe_args = one_batch_arguments(
            args,
            scratch,
            steps=steps,
            batch_size=batch_size,
            logging_steps=1,
            # The Trainer would replace a NaN loss by the average of the previous ones in its log.
            logging_nan_inf_filter=False,
            discriminator_warmup_steps=0,
            **PEAK_LEARNING_RATE,
        )
        trainer = VitsTrainer(
            model,
            probe_args,
            train_dataset=repeated_rows(train_dataset, range(batch_size), steps),
            processing_class=tokenizer,
            speaker_to_id=speaker_to_id,
        )
        observer = _ProbeObserver([p for _, p in trainable])
        trainer.callback_handler.callbacks = [DefaultFlowCallback(), observer]
        batch = _first_batch(trainer, batch_size)
        result.reconstruction_before = _paired_loss(model, batch, args)
        before = {name: p.detach().to("cpu", copy=True) for name, p in trainable}
        try:
            trainer.train()
        except Exception as error:  # noqa: BLE001 - a crash is a finding of the probe, reported with its message
            result.error = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        result.completed_steps = trainer.state.global_step
        result.logs = observer.logs
        result.skipped = observer.skipped
        if observer.gradient_max:
            result.gradient_max = torch.stack(observer.gradient_max).cpu().numpy()
        result.moved = [not torch.equal(before[name], p.detach().cpu()) for name, p in trainable]
        if result.error is None:
            result.reconstruction_after = _paired_loss(model, batch, args)
            result.health = _decoded_health(model, batch)
        del trainer
    return result


def _first_batch(trainer: VitsTrainer, batch_size: int) -> dict[str, torch.Tensor]:
    """The probe's batch, collated as the trainer's loader collates it, on the training device."""
    rows = [trainer.train_dataset[index] for index in range(batch_size)]
    batch = trainer.data_collator(rows)
    return {key: value.to(trainer.args.device) for key, value in batch.items() if isinstance(value, torch.Tensor)}


def _decoded_health(model: VitsForTraining, batch: dict[str, torch.Tensor]) -> dict[str, float]:
    """Health of the batch's decoded segments against the recorded ones, in eval mode under a fixed seed."""
    was_training = model.training
    model.eval()
    try:
        set_seed(_PAIRED_SEEDS[0])
        with torch.no_grad():
            output = VitsForTraining.forward(model, **batch, compute_adversarial=False)
        figures = pooled_segment_health(
            output.generated_waveform, output.target_waveform, model.mel_config.sampling_rate
        )
        return {key: float(value) for key, value in figures.items()}
    except Exception:  # noqa: BLE001 - a model broken by the probe may fail anywhere; the other checks say why
        return {}
    finally:
        model.train(was_training)


def _paired_loss(model: VitsForTraining, batch: dict[str, torch.Tensor], args) -> float:
    """The weighted reconstruction loss (mel, KL, duration) of `batch`, in fp32 and eval mode, averaged over fixed
    seeds: the same random segments and noise before and after training, so the difference is the training's."""
    was_training = model.training
    model.eval()
    values = []
    try:
        for seed in _PAIRED_SEEDS:
            set_seed(seed)
            with torch.no_grad():
                # The class's forward: accelerate patches an autocast wrapper onto the instance once it has trained,
                # and both measurements must run in the same (full) precision.
                output = VitsForTraining.forward(model, **batch, compute_adversarial=False)
            loss = (
                args.loss_weight_mel * output.mel_loss
                + args.loss_weight_kl * output.kl_loss
                + args.loss_weight_duration * output.duration_loss
            )
            values.append(float(loss))
    except Exception:  # noqa: BLE001 - a model broken by the probe (NaN weights) may fail anywhere in its forward
        return float("nan")
    finally:
        model.train(was_training)
    return float(np.mean(values))
