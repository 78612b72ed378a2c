"""`FeedbackArguments`: the script knobs of `train_feedback.py train`, and its training defaults.

Kept apart from `kurdish_tts.feedback.train`, which imports the whole training stack, so that the store's commands,
`--help` and bad flags answer without it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The unweighted evaluation losses that `VitsTrainer` logs (`eval_loss/<name>`), any of which can decide a promotion.
REGRESSION_METRICS = ("loss/mel", "loss/kl", "loss/duration", "loss/gen", "loss/fm", "loss/disc")

# `VitsTrainingArguments` defaults of a feedback fine-tune (a recipe or flags override them). Half the learning rate
# that the recipes fine-tune MMS with (2e-5): corrections should move the pronunciation of some words, not the voice.
# Short, since the feedback is a few hundred items at most; evaluated every 50 steps, so that the best model is kept.
FEEDBACK_TRAINING_DEFAULTS = {
    "learning_rate": 1e-5,
    "max_steps": 200,
    "warmup_steps": 0.1,
    "lr_scheduler_type": "constant_with_warmup",
    "eval_strategy": "steps",
    "eval_steps": 50,
    "save_strategy": "no",
    "logging_steps": 10,
    "seed": 42,
}


@dataclass
class FeedbackArguments:
    r"""
    What `train_feedback.py train` fine-tunes, on what, and when it promotes the result.

    > Parameters that choose the models and the data

    store (`str`, *optional*, defaults to `"feedback"`):
        The feedback store's folder.
    model_dir (`str`, *optional*):
        Start from this model folder. Defaults to the store's current model, else the best model of the last finished
        run in `runs_dir`; a folder that is not yet a version of the store becomes its next version first.
    run_dir (`str`, *optional*):
        The training run whose data is replayed and whose held-out clips (`data_split.json`) are the regression set.
        Defaults to the run recorded with the start model, else the folder that holds `model_dir`.
    runs_dir (`str`, *optional*, defaults to `"runs"`):
        Where to look for the last run (the newest `run_summary.json` next to a `best_model/`).
    recipe (`str`, *optional*):
        A recipe name or YAML path; flags override it.

    > Parameters that control the mix and the promotion

    replay_ratio (`float`, *optional*, defaults to `4.0`):
        Clips of the original training data replayed per feedback item (at most all of them); `0` trains on the
        feedback alone.
    regression_metric (`str`, *optional*, defaults to `"loss/mel"`):
        The evaluation loss that decides (lower is better): one of `loss/mel`, `loss/kl`, `loss/duration`, `loss/gen`,
        `loss/fm`, `loss/disc`.
    regression_tolerance (`float`, *optional*, defaults to `0.02`):
        Promote when the regression metric rose by at most this share of its value before (0.02 = 2 %).
    require_healthy_audio (`bool`, *optional*, defaults to `True`):
        Never promote a model whose decoded regression-set audio fails a waveform-health check (clipping, a DC
        offset, a tone above 7.5 kHz, a level far from the recordings'), however good its regression metric.

    > Parameters that control the length

    target_minutes (`float`, *optional*):
        Wall-clock budget of the command: a probe times real steps and sets `max_steps` to fit (see `train_vits.py
        --target_hours`). Without it, `max_steps` decides.
    budget_probe_steps (`int`, *optional*, defaults to `20`), budget_warmup_steps (`int`, *optional*, defaults to `5`):
        Steps timed, and steps run before timing, by the budget probe.
    """

    store: str = field(default="feedback", metadata={"help": "The feedback store's folder."})
    model_dir: str | None = field(
        default=None, metadata={"help": "Start model (default: the store's current one, else the last run's best)."}
    )
    run_dir: str | None = field(
        default=None, metadata={"help": "The training run whose data is replayed and whose held-out clips are kept."}
    )
    runs_dir: str = field(default="runs", metadata={"help": "Where to find the last training run."})
    recipe: str | None = field(default=None, metadata={"help": "A recipe name or YAML path; flags override it."})
    replay_ratio: float = field(default=4.0, metadata={"help": "Original training clips replayed per feedback item."})
    regression_metric: str = field(
        default="loss/mel",
        metadata={"help": "Evaluation loss that decides the promotion.", "choices": list(REGRESSION_METRICS)},
    )
    regression_tolerance: float = field(
        default=0.02, metadata={"help": "Promote if the regression metric rose by at most this share."}
    )
    require_healthy_audio: bool = field(
        default=True,
        metadata={
            "help": "Refuse to promote a model whose audio on the regression set fails a waveform-health check."
        },
    )
    target_minutes: float | None = field(default=None, metadata={"help": "Wall-clock budget; sets max_steps."})
    budget_probe_steps: int = field(default=20, metadata={"help": "Steps timed to plan the budget."})
    budget_warmup_steps: int = field(default=5, metadata={"help": "Steps run before timing starts."})

    def __post_init__(self):
        if self.replay_ratio < 0:
            raise ValueError(f"--replay_ratio must be >= 0, got {self.replay_ratio}")
        if self.regression_tolerance < 0:
            raise ValueError(f"--regression_tolerance must be >= 0, got {self.regression_tolerance}")
        if self.target_minutes is not None and not self.target_minutes > 0:
            raise ValueError(f"--target_minutes must be a positive number of minutes, got {self.target_minutes}")
