"""`VitsRun`: the training run of a VITS/MMS model (`scripts/train_vits.py`).

What it adds to `TrainingRun`: the discriminator and where it starts from, the mel settings of a named size or of the
base model, one voice or every voice with speaker embeddings, the model, `VitsTrainer` and a sample through stock
`pipeline("text-to-speech")`.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np
import torch
from transformers import AutoConfig

from ..audio.features import MelConfig
from ..audio.io import write_audio
from ..data.speakers import (
    build_speaker_to_id,
    filter_speakers,
    load_speaker_map,
    save_speaker_map,
    select_speaker,
    speaker_table,
)
from ..errors import UsageError
from ..models.vits import VitsForTraining
from ..models.vits.discriminator_source import (
    HUB_PREFIX,
    DiscriminatorSource,
    DiscriminatorSourceError,
    resolve_discriminator_source,
)
from ..models.vits.modeling_discriminator import DISCRIMINATOR_WEIGHTS_NAME
from ..models.vits.modeling_vits_training import (
    SPEAKERS_NAME,
    mel_config_for_size,
    saved_mel_config,
    vits_config_for_size,
)
from ..models.vits.speakers import add_speaker_embeddings
from ..text import normalize_text
from ..trainers import AudioSampleCallback, VitsTrainer
from .training_run import TrainingRun, offline_message

logger = logging.getLogger("kurdish_tts.train_vits")

DEFAULT_SPEAKER_EMBEDDING = 256


class VitsRun(TrainingRun):
    """One invocation of `train_vits.py`: `TrainingRun` with a VITS model (`VitsModelArguments`, `DataArguments`,
    `RunArguments`, `VitsTrainingArguments`)."""

    @functools.cached_property
    def discriminator_source(self) -> DiscriminatorSource:
        """Where the discriminator starts from (`--discriminator`), decided once: a Hub file is downloaded here."""
        if (
            self.resume_checkpoint is not None
            and (Path(self.resume_checkpoint) / DISCRIMINATOR_WEIGHTS_NAME).is_file()
        ):
            # Resuming restores the checkpoint's discriminator anyway; starting from it needs no download.
            description = f"the one in {self.resume_checkpoint}, the checkpoint training resumes from"
            return DiscriminatorSource("saved", Path(self.resume_checkpoint), description)
        model_args = self.model_args
        base_model = None if model_args.model_size is not None else model_args.model_name_or_path
        try:
            return resolve_discriminator_source(model_args.discriminator, base_model)
        except DiscriminatorSourceError as error:
            raise UsageError(str(error)) from error

    # 2. Data
    def mel_config(self) -> MelConfig:
        """The STFT/mel geometry of the model to train: its named size, or the base model's config."""
        model_args = self.model_args
        if model_args.model_size is not None:
            vocab_size = self.tokenizer.vocab_size
            return mel_config_for_size(vits_config_for_size(model_args.model_size, vocab_size), model_args.model_size)
        saved = (
            saved_mel_config(model_args.model_name_or_path) if Path(model_args.model_name_or_path).is_dir() else None
        )
        if saved is not None:
            return saved
        try:
            config = AutoConfig.from_pretrained(model_args.model_name_or_path)
        except OSError as error:
            raise UsageError(offline_message(model_args.model_name_or_path, error)) from error
        return MelConfig.from_vits_config(config)

    # 3. Voices
    def choose_speakers(self, dataset):
        """One voice (`--speaker`), every voice with embeddings (`--multi_speaker`), or all clips as one voice.

        Returns the dataset and the speaker → embedding id mapping (`None` for one voice).
        """
        model_args = self.model_args
        if model_args.speaker is not None:
            try:
                dataset, stats = select_speaker(dataset, model_args.speaker)
            except ValueError as error:
                raise UsageError(str(error)) from error
            self.say(f"voice: speaker {stats.short_speaker} with {stats.clips} clips ({stats.hours * 60:.1f} min)")
            return dataset, None
        if model_args.multi_speaker:
            try:
                mapping = build_speaker_to_id(dataset, min_clips=model_args.min_speaker_clips)
            except ValueError as error:
                raise UsageError(f"{error}; lower --min_speaker_clips or train one voice with --speaker") from error
            base_map = Path(model_args.model_name_or_path) / SPEAKERS_NAME
            if model_args.model_size is None and base_map.is_file():
                # Keep the ids the base model's embeddings were trained with; new voices get new rows after them.
                known = load_speaker_map(base_map)
                for speaker in mapping:
                    known.setdefault(speaker, len(known))
                mapping = known
            dataset, dropped = filter_speakers(dataset, mapping)
            self.say(
                f"voices: {len(mapping)} speakers with >= {model_args.min_speaker_clips} clips; "
                f"{dropped} clips of rarer speakers left out"
            )
            return dataset, mapping
        speakers = speaker_table(dataset)
        if len(speakers) > 1:
            logger.warning(
                f"the data has {len(speakers)} speakers, trained as one voice; pass --speaker most_hours to train the "
                "best-covered voice, or --multi_speaker for speaker embeddings"
            )
        return dataset, None

    # 5. Model
    def build_model(self, tokenizer, speaker_to_id: dict[str, int] | None) -> VitsForTraining:
        model_args = self.model_args
        num_speakers = 1 if speaker_to_id is None else max(speaker_to_id.values()) + 1
        source = self.discriminator_source
        if model_args.model_size is not None:
            model = VitsForTraining.from_size(
                model_args.model_size,
                tokenizer.vocab_size,
                num_speakers=num_speakers,
                use_stochastic_duration_prediction=model_args.duration_predictor != "deterministic",
            )
            if not source.is_fresh:
                model.discriminator = self._load_discriminator(source)
        else:
            discriminator = self._load_discriminator(source)
            model = self.load_pretrained(VitsForTraining, tokenizer, discriminator=discriminator)
            if num_speakers > 1 and model.config.num_speakers < num_speakers:
                size = (
                    model_args.speaker_embedding_size
                    or model.config.speaker_embedding_size
                    or DEFAULT_SPEAKER_EMBEDDING
                )
                model = add_speaker_embeddings(model, num_speakers, size)
        if speaker_to_id is not None and self.is_main:
            save_speaker_map(self.output_dir, speaker_to_id)
        if speaker_to_id is not None:
            model.speaker_to_id = speaker_to_id
        return model

    def _load_discriminator(self, source: DiscriminatorSource):
        try:
            return source.load()
        except (OSError, ValueError) as error:
            raise UsageError(f"--discriminator {self.model_args.discriminator}: {error}") from error

    # 6. Trainer
    def build_trainer(self, model, tokenizer, train, evaluation, speaker_to_id):
        mel = model.mel_config
        trainer = VitsTrainer(
            model,
            self.args,
            train_dataset=train,
            eval_dataset=evaluation,
            processing_class=tokenizer,
            speaker_to_id=speaker_to_id,
            callbacks=[AudioSampleCallback(speaker_id=0 if speaker_to_id else None)],
        )
        return self.attach_callbacks(trainer, evaluation, mel, speaker_to_id=speaker_to_id)

    # 8. The end: sample, curve, summary
    def synthesize_sample(self, model_dir: Path, speaker_to_id) -> Path:
        """One sentence through stock `transformers.pipeline("text-to-speech")`, as a user of the model would."""
        from transformers import pipeline

        text = normalize_text(self.run_args.sample_text).text
        synthesizer = pipeline("text-to-speech", model=str(model_dir), device=self.args.device)
        forward_params = {"speaker_id": 0} if speaker_to_id else {}
        try:
            speech = synthesizer(text, forward_params=forward_params)
            audio, sampling_rate = speech["audio"], speech["sampling_rate"]
        except TypeError as error:
            if "BatchEncoding.to()" not in str(error):
                raise
            # transformers 5.17 casts the tokenizer's output to the model's dtype, which a BatchEncoding refuses, for
            # every tokenizer-only model (huggingface/transformers#48683, fixed in later releases). Same call, by hand.
            logger.warning(
                f"the text-to-speech pipeline of this transformers version fails ({error}); synthesizing "
                "the sample with the pipeline's model and tokenizer directly"
            )
            inputs = synthesizer.tokenizer(text, return_tensors="pt").to(synthesizer.device)
            with torch.no_grad():
                audio = synthesizer.model(**inputs, **forward_params).waveform.float().cpu().numpy()
            sampling_rate = synthesizer.model.config.sampling_rate
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        return write_audio(self.output_dir / "sample.wav", audio, sampling_rate)

    def needs_hub(self) -> bool:
        return self.model_args.discriminator.startswith(HUB_PREFIX) or super().needs_hub()

    def fetch_before_data(self) -> None:
        """The base model's config first (its errors say more), then the discriminator (cached for `build_model`; one
        download a machine)."""
        self.mel_config()
        with self.args.main_process_first(desc="fetching the discriminator"):
            _ = self.discriminator_source

    def summary_extras(self) -> dict:
        return {"discriminator": self.discriminator_source.description}
