"""Training: `TrainingArguments` subclasses paired with `Trainer` subclasses, and callbacks."""

from .best_model import BestModelCallback, load_best_model_info
from .budget import TimeBudgetCallback, TrainingPlan, apply_plan, measure_step_time, plan_remaining, plan_run
from .callbacks import AudioSampleCallback
from .nan_recovery import NanRecoveryCallback, load_quarantine
from .throughput import ThroughputCallback
from .vits_arguments import VitsTrainingArguments
from .vits_trainer import VitsTrainer
from .xtts_arguments import XttsTrainingArguments
from .xtts_trainer import XttsTrainer

__all__ = [
    "AudioSampleCallback",
    "BestModelCallback",
    "NanRecoveryCallback",
    "ThroughputCallback",
    "TimeBudgetCallback",
    "TrainingPlan",
    "VitsTrainer",
    "VitsTrainingArguments",
    "XttsTrainer",
    "XttsTrainingArguments",
    "apply_plan",
    "load_best_model_info",
    "load_quarantine",
    "measure_step_time",
    "plan_remaining",
    "plan_run",
]
