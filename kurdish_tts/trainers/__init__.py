"""Training: `TrainingArguments` subclasses paired with `Trainer` subclasses, and callbacks."""

from .callbacks import AudioSampleCallback
from .vits_arguments import VitsTrainingArguments
from .vits_trainer import VitsTrainer

__all__ = ["AudioSampleCallback", "VitsTrainer", "VitsTrainingArguments"]
