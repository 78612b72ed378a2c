"""`VitsTrainingArguments`: a `TrainingArguments` subclass with the VITS loss weights and GAN options."""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import TrainingArguments


@dataclass
class VitsTrainingArguments(TrainingArguments):
    r"""
    Configuration of a `VitsTrainer` run. Everything `TrainingArguments` offers works as usual (gradient accumulation,
    `fp16`/`bf16`, `max_grad_norm`, `train_sampling_strategy="group_by_length"`, dataloader workers, DDP under
    `accelerate launch`, `resume_from_checkpoint`).

    > Parameters that control the losses

    loss_weight_mel (`float`, *optional*, defaults to `45.0`):
        Weight of the L1 mel reconstruction loss (VITS: 45).
    loss_weight_kl (`float`, *optional*, defaults to `1.0`):
        Weight of the KL term between posterior and aligned prior.
    loss_weight_duration (`float`, *optional*, defaults to `1.0`):
        Weight of the stochastic duration predictor's negative log-likelihood.
    loss_weight_gen (`float`, *optional*, defaults to `1.0`):
        Weight of the generator's least-squares adversarial term.
    loss_weight_fm (`float`, *optional*, defaults to `1.0`):
        Weight of the feature-matching term (which already carries HiFi-GAN's factor 2).
    loss_weight_disc (`float`, *optional*, defaults to `1.0`):
        Weight of the discriminator's least-squares loss.

    > Parameters that control the GAN update

    gan_update (`str`, *optional*, defaults to `"fused"`):
        How one optimizer step updates the two networks.

        - `"fused"`: one module, one optimizer, one backward pass. The discriminator loss sees the generated audio
          detached and the generator terms see the discriminator with its parameters out of autograd, so each network
          gets exactly its own gradients; the generator is judged by the discriminator as it was *before* this
          step's update. Works with everything the Trainer offers, DDP included, and costs one discriminator
          forward pass less per step.
        - `"alternating"`: VITS's D-then-G order (jaywalnut310/vits). The discriminator has its own AdamW optimizer,
          learning-rate schedule (same type and warm-up as the main one) and, under fp16, its own gradient scaler; it
          steps first, and the generator's adversarial and feature-matching terms are then computed with the
          *updated* discriminator. Single process only (the discriminator runs outside the DDP-wrapped forward).

        `benchmarks/results/gan_update.md` compares the two.

    > Parameters that control the model and the discriminator

    segment_frames (`int`, *optional*):
        Frames per decoder training segment (VITS: 32 frames = 8192 samples at hop 256); the model's value when unset.
    discriminator_learning_rate (`float`, *optional*):
        Peak learning rate of the discriminator (its parameter group with `gan_update="fused"`, its optimizer with
        `"alternating"`); `learning_rate` when unset. The schedule scales both networks alike.
    discriminator_warmup_steps (`int`, *optional*, defaults to `0`):
        Train only the discriminator for this many optimizer steps (the generator runs without gradients), with
        either `gan_update`. Useful
        when a pretrained generator meets a fresh discriminator (`--discriminator none`, or a base model without a
        pretrained one): a freshly initialized discriminator otherwise feeds it noise-driven adversarial gradients.
    pad_to_multiple_of (`int`, *optional*):
        Round padded text and frame lengths up to a multiple of this, so that kernels see fewer distinct shapes.

    > Parameters that control speed

    cuda_graphs (`bool`, *optional*, defaults to `False`):
        Capture each training batch shape's forward and backward as CUDA graphs and replay them
        (`kurdish_tts.models.vits.cuda_graphs`): the step is bound by launching thousands of small kernels, which a
        replay issues at once. Single GPU, `gan_update="fused"`; turns the text encoder's layer drop off (it is drawn
        on the host); batches are padded to multiples of `pad_to_multiple_of` (64 when unset) so that few shapes
        occur. Each captured shape keeps a copy of the gradients (4 bytes per trainable parameter). So that the CPU
        can queue the next step while the GPU runs this one, it also turns off `logging_nan_inf_filter` (which reads
        every loss on the host) and, with pinned memory, makes batch copies non-blocking
        (`accelerator_config.non_blocking`).
    cuda_graphs_max_shapes (`int`, *optional*, defaults to `12`):
        Batch shapes to capture; batches of further shapes (and of a smaller batch size) train eagerly.

    > Several GPUs (`accelerate launch`, DDP)

    `ddp_find_unused_parameters` keeps the Trainer's default for a model that is not a `PreTrainedModel` (`True`):
    measured on 2 x H200 (`benchmarks/README.md`), DDP trained VITS 8-15 % faster with the unused-parameter search than
    without it. Set it to `False` to train without the search; the text encoder's layer drop, which skips whole layers,
    then keeps each dropped layer in the graph with a zero contribution (`VitsTrainer`), as DDP requires.
    `discriminator_warmup_steps` > 0 needs the search (those steps leave the generator without gradients).

    NOTE: defaults changed from `TrainingArguments`: `learning_rate` 2e-4, `adam_beta1` 0.8, `adam_beta2` 0.99,
    `adam_epsilon` 1e-9 (the VITS optimizer), `length_column_name` `"num_frames"` (the prepared cache's length column
    for `train_sampling_strategy="group_by_length"`), `remove_unused_columns` stays on (the trainer names the audio
    columns it needs, so they are not dropped), `logging_steps` 10.
    """

    loss_weight_mel: float = field(default=45.0, metadata={"help": "Weight of the L1 mel reconstruction loss."})
    loss_weight_kl: float = field(default=1.0, metadata={"help": "Weight of the KL loss."})
    loss_weight_duration: float = field(default=1.0, metadata={"help": "Weight of the duration NLL."})
    loss_weight_gen: float = field(default=1.0, metadata={"help": "Weight of the generator adversarial loss."})
    loss_weight_fm: float = field(default=1.0, metadata={"help": "Weight of the feature-matching loss."})
    loss_weight_disc: float = field(default=1.0, metadata={"help": "Weight of the discriminator loss."})
    gan_update: str = field(
        default="fused",
        metadata={
            "help": "GAN update: 'fused' (one optimizer, one backward) or 'alternating' (VITS's D-then-G steps).",
            "choices": ["fused", "alternating"],
        },
    )
    segment_frames: int | None = field(
        default=None, metadata={"help": "Frames per decoder training segment (default: the model's)."}
    )
    discriminator_learning_rate: float | None = field(
        default=None, metadata={"help": "Peak learning rate of the discriminator (default: learning_rate)."}
    )
    discriminator_warmup_steps: int = field(
        default=0, metadata={"help": "Optimizer steps that train only the discriminator, generator frozen."}
    )
    pad_to_multiple_of: int | None = field(
        default=None, metadata={"help": "Pad text and frame lengths to a multiple of this."}
    )
    cuda_graphs: bool = field(
        default=False, metadata={"help": "Replay each batch shape's training step as CUDA graphs (single GPU)."}
    )
    cuda_graphs_max_shapes: int = field(
        default=12, metadata={"help": "Batch shapes to capture as CUDA graphs; others train eagerly."}
    )

    learning_rate: float = field(default=2e-4, metadata={"help": "Peak learning rate (VITS: 2e-4)."})
    adam_beta1: float = field(default=0.8, metadata={"help": "AdamW beta1 (VITS: 0.8)."})
    adam_beta2: float = field(default=0.99, metadata={"help": "AdamW beta2 (VITS: 0.99)."})
    adam_epsilon: float = field(default=1e-9, metadata={"help": "AdamW epsilon (VITS: 1e-9)."})
    length_column_name: str = field(
        default="num_frames", metadata={"help": "Length column for length-grouped sampling."}
    )
    logging_steps: float = field(default=10, metadata={"help": "Log every X update steps."})

    def __post_init__(self):
        super().__post_init__()
        for name in ("mel", "kl", "duration", "gen", "fm", "disc"):
            if getattr(self, f"loss_weight_{name}") < 0:
                raise ValueError(f"loss_weight_{name} must be >= 0, got {getattr(self, f'loss_weight_{name}')}")
        if self.segment_frames is not None and self.segment_frames < 1:
            raise ValueError(f"segment_frames must be positive, got {self.segment_frames}")
        if self.discriminator_warmup_steps < 0:
            raise ValueError(f"discriminator_warmup_steps must be >= 0, got {self.discriminator_warmup_steps}")
        if self.gan_update not in ("fused", "alternating"):
            raise ValueError(f"gan_update must be 'fused' or 'alternating', got {self.gan_update!r}")
        if self.cuda_graphs:
            if self.gan_update != "fused":
                raise ValueError("cuda_graphs=True needs gan_update='fused' (the graphs capture one fused loss)")
            if self.cuda_graphs_max_shapes < 1:
                raise ValueError(f"cuda_graphs_max_shapes must be >= 1, got {self.cuda_graphs_max_shapes}")
            if self.pad_to_multiple_of is None:
                self.pad_to_multiple_of = 64
            # A replayed step leaves the CPU idle, free to queue the next one while the GPU works, unless something
            # reads a device value on the host each step: the Trainer's NaN/inf log filter does (a non-finite step is
            # handled by `NanRecoveryCallback`; its loss is then logged as it is), and so does a blocking batch copy.
            self.logging_nan_inf_filter = False
            if self.dataloader_pin_memory:
                self.accelerator_config.non_blocking = True
        if self.ddp_find_unused_parameters is False and self.discriminator_warmup_steps > 0:
            raise ValueError(
                "discriminator_warmup_steps > 0 trains only the discriminator at first, leaving the generator's "
                "parameters without gradients, which DDP accepts only with ddp_find_unused_parameters=True (or unset)"
            )
        if self.gan_update == "alternating" and self.lr_scheduler_type == "reduce_lr_on_plateau":
            # The Trainer steps a plateau scheduler with eval metrics, outside any hook the discriminator's copy sees.
            raise ValueError("gan_update='alternating' does not support lr_scheduler_type='reduce_lr_on_plateau'")
