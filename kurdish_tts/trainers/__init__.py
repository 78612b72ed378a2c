"""Training: `TrainingArguments` subclasses paired with `Trainer` subclasses."""

from .vits_arguments import VitsTrainingArguments
from .vits_trainer import VitsTrainer

__all__ = ["VitsTrainer", "VitsTrainingArguments"]
