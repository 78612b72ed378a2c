"""VITS training pieces: the training forward over stock `VitsModel`, discriminator, alignment search, losses."""

from .configuration_discriminator import VitsDiscriminatorConfig
from .modeling_discriminator import VitsDiscriminator, VitsDiscriminatorOutput, load_discriminator, save_discriminator
from .modeling_vits_training import MODEL_SIZES, VitsForTraining, VitsTrainingOutput
from .monotonic_align import maximum_path
from .speakers import add_speaker_embeddings, speaker_conditioning_keys

__all__ = [
    "MODEL_SIZES",
    "VitsDiscriminator",
    "VitsDiscriminatorConfig",
    "VitsDiscriminatorOutput",
    "VitsForTraining",
    "VitsTrainingOutput",
    "add_speaker_embeddings",
    "load_discriminator",
    "maximum_path",
    "save_discriminator",
    "speaker_conditioning_keys",
]
