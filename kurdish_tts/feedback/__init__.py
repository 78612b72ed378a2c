"""The feedback loop: listeners' corrections, checked (`validation`) and kept in a store (`store`), versioned models
(`versions`), and the fine-tune that turns the corrections into a better model only when the original data does not
suffer (`lineage`: what to start from; `train`).

`kurdish_tts.feedback.train` imports the whole training stack, so it is not imported here: `add`, `list` and the
other store commands start without it.
"""

from .arguments import FEEDBACK_TRAINING_DEFAULTS, REGRESSION_METRICS, FeedbackArguments
from .store import AddResult, FeedbackStore
from .validation import (
    REJECTION_HINTS,
    FeedbackError,
    FeedbackInput,
    FeedbackValidationConfig,
    Rejection,
    ValidatedClip,
    find_pairs,
    validate_clip,
)
from .versions import ModelVersions, VersionConflict

__all__ = [
    "FEEDBACK_TRAINING_DEFAULTS",
    "REGRESSION_METRICS",
    "REJECTION_HINTS",
    "AddResult",
    "FeedbackArguments",
    "FeedbackError",
    "FeedbackInput",
    "FeedbackStore",
    "FeedbackValidationConfig",
    "ModelVersions",
    "Rejection",
    "ValidatedClip",
    "VersionConflict",
    "find_pairs",
    "validate_clip",
]
