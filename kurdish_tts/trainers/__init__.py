"""Training: `TrainingArguments` subclasses paired with `Trainer` subclasses, and callbacks."""

from .callbacks import AudioSampleCallback
from .throughput import ThroughputCallback
from .vits_arguments import VitsTrainingArguments
from .vits_trainer import VitsTrainer

__all__ = ["AudioSampleCallback", "ThroughputCallback", "VitsTrainer", "VitsTrainingArguments"]
