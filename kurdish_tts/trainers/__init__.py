"""Training: `TrainingArguments` subclasses paired with `Trainer` subclasses, and callbacks."""

from .budget import TimeBudgetCallback, TrainingPlan, apply_plan, measure_step_time, plan_remaining, plan_run
from .callbacks import AudioSampleCallback
from .throughput import ThroughputCallback
from .vits_arguments import VitsTrainingArguments
from .vits_trainer import VitsTrainer

__all__ = [
    "TimeBudgetCallback",
    "TrainingPlan",
    "apply_plan",
    "measure_step_time",
    "plan_remaining",
    "plan_run",
    "AudioSampleCallback",
    "ThroughputCallback",
    "VitsTrainer",
    "VitsTrainingArguments",
]
