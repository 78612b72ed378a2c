"""`DataArguments`: the script knobs that choose a data source and how it is preprocessed.

Parsed by `transformers.HfArgumentParser` from the command line or a YAML recipe, shared by every script that reads
data (`prepare_data.py`, `validate_data.py`, and the training scripts).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import AutoConfig, VitsConfig

from ..audio.features import MelConfig
from ..errors import UsageError
from ..text import KURMANJI_TOKENIZER_NAME, load_tokenizer
from .preprocess import PreprocessConfig
from .sources import DEFAULT_HUB_DATASET, LoadedSource, load_source

DEFAULT_TOKENIZER = "facebook/mms-tts-kmr-script_latin"


@dataclass
class DataArguments:
    r"""
    Where the data comes from and how it is preprocessed.

    > Parameters that choose the source

    data (`str`, *optional*, defaults to `"amedcj/kurmanji-commonvoice"`):
        `demo` (the bundled corpus), an LJSpeech folder, a Common Voice release folder, a `save_to_disk`/parquet/
        audiofolder path, or a Hugging Face Hub dataset id.
    data_kind (`str`, *optional*, defaults to `"auto"`):
        `auto`, `ljspeech`, `common_voice` or `hf_dataset`.
    split (`str`, *optional*):
        Split to read (`validated` for Common Voice folders, `train` for Hub datasets when not given).

    > Parameters that control preprocessing (all part of the cache key)

    min_duration, max_duration, max_input_length, peak_normalize, trim_top_db, min_rms_db, drop_unknown_letters,
    expand_numbers: see `kurdish_tts.data.PreprocessConfig`.
    """

    data: str = field(
        default=DEFAULT_HUB_DATASET,
        metadata={"help": "`demo`, an LJSpeech/Common Voice/save_to_disk/parquet/audiofolder path, or a Hub id."},
    )
    data_kind: str = field(
        default="auto",
        metadata={"help": "Source format.", "choices": ["auto", "ljspeech", "common_voice", "hf_dataset"]},
    )
    split: str | None = field(default=None, metadata={"help": "Split(s) to read; join several with '+'."})
    audio_column: str | None = field(default=None, metadata={"help": "Audio column of a HF dataset (`path`)."})
    text_column: str | None = field(default=None, metadata={"help": "Text column of a HF dataset (`sentence`)."})
    speaker_column: str | None = field(default=None, metadata={"help": "Speaker column (`client_id`)."})
    id_column: str | None = field(default=None, metadata={"help": "Sample id column (default: file name)."})
    min_up_votes: int = field(
        default=2, metadata={"help": "Common Voice: keep rows with at least this many up votes."}
    )
    max_down_votes: int = field(
        default=0, metadata={"help": "Common Voice: keep rows with at most this many down votes."}
    )
    tokenizer: str = field(
        default=DEFAULT_TOKENIZER,
        metadata={
            "help": f"Tokenizer of the model to train (Hub id or local model dir), or `{KURMANJI_TOKENIZER_NAME}` "
            "for the built-in Kurmanji character vocabulary. Its vocabulary decides which characters are speakable."
        },
    )
    min_duration: float = field(default=0.5, metadata={"help": "Drop clips shorter than this (seconds)."})
    max_duration: float = field(default=15.0, metadata={"help": "Drop clips longer than this (seconds)."})
    max_input_length: int = field(default=600, metadata={"help": "Drop texts with more token ids than this."})
    peak_normalize: float | None = field(default=None, metadata={"help": "Scale clips to this linear peak (0-1]."})
    trim_top_db: float | None = field(default=None, metadata={"help": "Trim edge silence this many dB below peak."})
    min_rms_db: float = field(default=-70.0, metadata={"help": "Drop clips whose RMS is below this (dBFS)."})
    drop_unknown_letters: bool = field(
        default=True, metadata={"help": "Drop texts with letters/digits the tokenizer cannot speak."}
    )
    expand_numbers: bool = field(default=True, metadata={"help": "Spell out numerals in Kurmanji."})
    cache_dir: str = field(default=".cache/kurdish_tts", metadata={"help": "Where the Arrow caches live."})
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes for preprocessing."})
    overwrite_cache: bool = field(default=False, metadata={"help": "Recompute even when a cache exists."})

    def load_source(self) -> LoadedSource:
        options = {
            "split": self.split,
            "audio_column": self.audio_column,
            "text_column": self.text_column,
            "speaker_column": self.speaker_column,
            "id_column": self.id_column,
            "min_up_votes": self.min_up_votes,
            "max_down_votes": self.max_down_votes,
        }
        return load_source(self.data, self.data_kind, **options)

    def load_tokenizer(self):
        try:
            return load_tokenizer(self.tokenizer)
        except OSError as error:
            # The message already says what to do offline; it is about an argument, so it is a usage error.
            raise UsageError(f"--tokenizer {self.tokenizer}: {error}") from None

    def mel_config(self) -> MelConfig:
        """The model's STFT geometry when the tokenizer names a VITS model, MMS defaults otherwise."""
        if self.tokenizer == KURMANJI_TOKENIZER_NAME:
            return MelConfig()
        try:
            config = AutoConfig.from_pretrained(self.tokenizer)
        except (OSError, ValueError):
            return MelConfig()
        return MelConfig.from_vits_config(config) if isinstance(config, VitsConfig) else MelConfig()

    def preprocess_config(self) -> PreprocessConfig:
        return PreprocessConfig(
            mel=self.mel_config(),
            min_duration=self.min_duration,
            max_duration=self.max_duration,
            max_input_length=self.max_input_length,
            peak_normalize=self.peak_normalize,
            trim_top_db=self.trim_top_db,
            min_rms_db=self.min_rms_db,
            drop_unknown_letters=self.drop_unknown_letters,
            expand_numbers=self.expand_numbers,
        )
