"""VITS training pieces: the training forward over stock `VitsModel`, discriminator, alignment search, losses."""

from .configuration_discriminator import VitsDiscriminatorConfig
from .convert_discriminator import convert_discriminator_checkpoint, load_original_discriminator
from .discriminator_source import DiscriminatorSource, DiscriminatorSourceError, resolve_discriminator_source
from .modeling_discriminator import VitsDiscriminator, VitsDiscriminatorOutput, load_discriminator, save_discriminator
from .modeling_vits_training import MODEL_SIZES, VitsForTraining, VitsTrainingOutput
from .monotonic_align import maximum_path
from .speakers import add_speaker_embeddings, speaker_conditioning_keys

__all__ = [
    "MODEL_SIZES",
    "DiscriminatorSource",
    "DiscriminatorSourceError",
    "VitsDiscriminator",
    "VitsDiscriminatorConfig",
    "VitsDiscriminatorOutput",
    "VitsForTraining",
    "VitsTrainingOutput",
    "add_speaker_embeddings",
    "convert_discriminator_checkpoint",
    "load_discriminator",
    "load_original_discriminator",
    "maximum_path",
    "resolve_discriminator_source",
    "save_discriminator",
    "speaker_conditioning_keys",
]
