"""`XttsTrainingArguments`: a `TrainingArguments` subclass with the XTTS-style loss weights and stability settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import TrainingArguments

MEL_LOSSES = ("huber", "l1")


@dataclass
class XttsTrainingArguments(TrainingArguments):
    r"""
    Configuration of an `XttsTrainer` run. Everything `TrainingArguments` offers works as usual (gradient accumulation,
    `fp16`/`bf16`, `max_grad_norm`, `train_sampling_strategy="group_by_length"`, DDP under `accelerate launch`,
    `resume_from_checkpoint`).

    The defaults come from the seeds' values (Huber delta 0.6, stop smoothing 0.06, text smoothing 0.025, clip 0.8)
    checked by a small CPU experiment on the demo corpus with the tiny model (`benchmarks/results/xtts_defaults_cpu.md`,
    with the command that produced it). That is weak evidence, a few hundred steps of a tiny model; the GPU stability
    run of `benchmarks/bench_xtts.py` (3,000 steps of the small model in fp16 and bf16) is the stronger check.

    > Parameters that control the mel losses

    mel_loss (`str`, *optional*, defaults to `"huber"`):
        `"huber"` or `"l1"`, on the pre- and post-net mels, masked by the real frames. Huber's gradient is bounded by
        `huber_delta` for large errors, which early in training (random outputs, errors of ~10 nats) keeps the first
        steps from blowing the weights up; near convergence it acts like a (halved) squared error.
    huber_delta (`float`, *optional*, defaults to `0.6`):
        Where the Huber loss turns from quadratic to linear, in log-mel units (nats).
    loss_weight_mel_before (`float`, *optional*, defaults to `1.0`):
        Weight of the mel loss on the decoder's own (pre-postnet) prediction.
    loss_weight_mel_after (`float`, *optional*, defaults to `1.0`):
        Weight of the mel loss on the postnet-refined prediction.

    > Parameters that control the stop loss

    loss_weight_stop (`float`, *optional*, defaults to `1.0`):
        Weight of the stop BCE.
    stop_label_smoothing (`float`, *optional*, defaults to `0.06`):
        Targets become `y (1 - s) + s / 2`, so the stop logit is pulled toward a finite value rather than to ±∞ (a
        saturated logit is one of the routes to non-finite fp16 activations).
    stop_pos_weight (`float`, *optional*, defaults to `5.0`):
        Weight of the positive (stop) class: one step per clip says "stop" against tens to hundreds that say "go
        on"; without it the head learns to never stop.

    > Parameters that control the text loss

    loss_weight_text (`float`, *optional*, defaults to `0.01`):
        Weight of the auxiliary next-text-token cross-entropy (as in XTTS, small: it regularizes the text
        representation, it is not the task). `0` skips it.
    text_label_smoothing (`float`, *optional*, defaults to `0.025`):
        Label smoothing of the text cross-entropy.

    > Parameters that control the guided attention

    loss_weight_guided_attention (`float`, *optional*, defaults to `1.0`):
        Weight of the guided-attention term (Tachibana et al., 2017, https://arxiv.org/abs/1710.08969), which pulls
        the text→mel attention of `XttsConfig.guided_attention_layers` toward the diagonal. It needs the
        attention weights, so steps that use it run the backbone's eager attention; `0` turns it off (and keeps the
        fast attention path).
    guided_attention_sigma (`float`, *optional*, defaults to `0.2`):
        Width of the diagonal band, in fractions of the text and mel lengths.
    guided_attention_reduction (`str`, *optional*, defaults to `"step"`):
        `"step"`: the term is each decoder step's expected penalty, averaged over steps (0 to about 1 whatever the
        text length); `"element"`: the mean over all (step, token) pairs, i.e. that divided by the text length, the
        scale before issue 20, which was too weak to align the model (`models.xtts.losses.guided_attention_loss`).
    guided_attention_decay_steps (`int`, *optional*):
        Lower the guided-attention weight linearly to 0 over this many optimizer steps (the alignment only needs the
        help early on); once it is 0 the fast attention path is used again. Constant when unset.

    > Parameters that control teacher forcing

    scheduled_sampling (`float`, *optional*, defaults to `0.0`):
        Share of decoder steps (drawn per step, per batch) whose input frames are the model's own teacher-forced
        prediction (from a first pass without gradients) instead of the recording's, so that the decoder learns to
        keep its place in the text from frames like the ones it will generate. Costs one extra forward pass per step.
        `0` is plain teacher forcing.

    > Parameters that control the data

    reference_max_frames (`int`, *optional*, defaults to `250`):
        Reference clips (another clip of the same speaker, for the conditioning encoder) are cropped to at most this
        many frames: randomly in training, from the middle in evaluation. 250 frames are 4 s at 16 kHz, hop 256.
    pad_to_multiple_of (`int`, *optional*):
        Round padded text, mel and reference lengths up to a multiple of this, so that kernels see fewer shapes.

    NOTE: defaults changed from `TrainingArguments`: `learning_rate` 1e-4, `max_grad_norm` 0.8, `warmup_steps`
    0.02 (a fraction of the run), `length_column_name` `"num_frames"` (for `train_sampling_strategy="group_by_length"`),
    `logging_steps` 10.
    """

    mel_loss: str = field(
        default="huber", metadata={"help": "Mel loss: 'huber' or 'l1' (pre- and post-net).", "choices": MEL_LOSSES}
    )
    huber_delta: float = field(default=0.6, metadata={"help": "Huber delta of the mel loss (log-mel units)."})
    loss_weight_mel_before: float = field(default=1.0, metadata={"help": "Weight of the pre-postnet mel loss."})
    loss_weight_mel_after: float = field(default=1.0, metadata={"help": "Weight of the post-net mel loss."})
    loss_weight_stop: float = field(default=1.0, metadata={"help": "Weight of the stop BCE."})
    stop_label_smoothing: float = field(default=0.06, metadata={"help": "Label smoothing of the stop targets."})
    stop_pos_weight: float = field(default=5.0, metadata={"help": "Positive-class weight of the stop BCE."})
    loss_weight_text: float = field(default=0.01, metadata={"help": "Weight of the next-text-token cross-entropy."})
    text_label_smoothing: float = field(default=0.025, metadata={"help": "Label smoothing of the text loss."})
    loss_weight_guided_attention: float = field(
        default=1.0, metadata={"help": "Weight of the guided-attention term (0 = off)."}
    )
    guided_attention_sigma: float = field(default=0.2, metadata={"help": "Width of the guided-attention diagonal."})
    guided_attention_reduction: str = field(
        default="step",
        metadata={"help": "Guided-attention reduction: 'step' or 'element'.", "choices": ["step", "element"]},
    )
    guided_attention_decay_steps: int | None = field(
        default=None, metadata={"help": "Decay the guided-attention weight linearly to 0 over this many steps."}
    )
    scheduled_sampling: float = field(
        default=0.0, metadata={"help": "Share of decoder steps fed the model's own prediction (0 = teacher forcing)."}
    )
    reference_max_frames: int = field(default=250, metadata={"help": "Crop reference clips to this many frames."})
    pad_to_multiple_of: int | None = field(
        default=None, metadata={"help": "Pad text, mel and reference lengths to a multiple of this."}
    )

    learning_rate: float = field(default=1e-4, metadata={"help": "Peak learning rate."})
    max_grad_norm: float = field(default=0.8, metadata={"help": "Gradient clipping norm."})
    warmup_steps: float = field(default=0.02, metadata={"help": "Warm-up steps (a fraction of the run if < 1)."})
    length_column_name: str = field(
        default="num_frames", metadata={"help": "Length column for length-grouped sampling."}
    )
    logging_steps: float = field(default=10, metadata={"help": "Log every X update steps."})

    def __post_init__(self):
        super().__post_init__()
        weights = ("mel_before", "mel_after", "stop", "text", "guided_attention")
        for name in weights:
            value = getattr(self, f"loss_weight_{name}")
            if not value >= 0:
                raise ValueError(f"loss_weight_{name} must be >= 0, got {value}")
        if self.loss_weight_mel_before == 0 and self.loss_weight_mel_after == 0:
            raise ValueError(
                "loss_weight_mel_before and loss_weight_mel_after are both 0: nothing would learn the mel"
            )
        if self.mel_loss not in MEL_LOSSES:
            raise ValueError(f"mel_loss must be one of {', '.join(MEL_LOSSES)}, got {self.mel_loss!r}")
        if not self.huber_delta > 0:
            raise ValueError(f"huber_delta must be positive (in log-mel units, e.g. 0.6), got {self.huber_delta}")
        for name in ("stop_label_smoothing", "text_label_smoothing"):
            value = getattr(self, name)
            if not 0 <= value < 1:
                raise ValueError(f"{name} must be in [0, 1) (0 turns smoothing off), got {value}")
        if not self.stop_pos_weight > 0:
            raise ValueError(f"stop_pos_weight must be positive (1 = unweighted), got {self.stop_pos_weight}")
        if not self.guided_attention_sigma > 0:
            raise ValueError(f"guided_attention_sigma must be positive, got {self.guided_attention_sigma}")
        if self.guided_attention_reduction not in ("step", "element"):
            raise ValueError(
                f"guided_attention_reduction must be 'step' or 'element', got {self.guided_attention_reduction!r}"
            )
        if self.guided_attention_decay_steps is not None and self.guided_attention_decay_steps < 1:
            raise ValueError(
                f"guided_attention_decay_steps must be a positive number of steps (or unset for a constant weight), "
                f"got {self.guided_attention_decay_steps}"
            )
        if not 0 <= self.scheduled_sampling <= 1:
            raise ValueError(f"scheduled_sampling must be in [0, 1], got {self.scheduled_sampling}")
        if self.reference_max_frames < 1:
            raise ValueError(f"reference_max_frames must be >= 1, got {self.reference_max_frames}")
        if self.pad_to_multiple_of is not None and self.pad_to_multiple_of < 1:
            raise ValueError(f"pad_to_multiple_of must be >= 1 or unset, got {self.pad_to_multiple_of}")

    def guided_attention_weight(self, step: int) -> float:
        """The guided-attention weight at optimizer step `step` (after `guided_attention_decay_steps`' decay)."""
        if self.guided_attention_decay_steps is None:
            return self.loss_weight_guided_attention
        remaining = max(0.0, 1.0 - step / self.guided_attention_decay_steps)
        return self.loss_weight_guided_attention * remaining
