"""`XttsRun`: the training run of the XTTS-style voice-cloning model (`scripts/train_xtts.py`).

What it adds to `TrainingRun`: the mel settings come from `XttsConfig`, every voice is trained together (the model
clones the voice of a reference clip, so there are no speaker embeddings), clips longer than the model's context are
left out, and the trainer, its audio-sample callback, the synthesizer of the synthesis metrics and the sample are
XTTS ones.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np
from transformers import AutoConfig

from ..audio.features import MelConfig
from ..audio.io import write_audio
from ..data.speakers import speaker_table
from ..errors import UsageError
from ..models.xtts import XttsConfig, XttsForTextToSpeech
from ..trainers.xtts_callbacks import XttsAudioSampleCallback, reference_waveforms
from ..trainers.xtts_trainer import XttsTrainer
from .training_run import TrainingRun, offline_message

logger = logging.getLogger("kurdish_tts.train_xtts")


class XttsRun(TrainingRun):
    """One invocation of `train_xtts.py`: `TrainingRun` with the XTTS model (`XttsModelArguments`, `DataArguments`,
    `RunArguments`, `XttsTrainingArguments`)."""

    @functools.cached_property
    def model_config(self) -> XttsConfig:
        """The architecture to train: a named size for the tokenizer, or the saved model's config."""
        model_args = self.model_args
        if model_args.model_size is not None:
            tokenizer = self.tokenizer
            return XttsConfig.for_size(
                model_args.model_size,
                vocab_size=tokenizer.vocab_size,
                pad_token_id=tokenizer.pad_token_id,
                mel=MelConfig() if model_args.mel_settings == "mms" else None,
            )
        try:
            return AutoConfig.from_pretrained(model_args.model_name_or_path)
        except (OSError, ValueError) as error:
            raise UsageError(offline_message(model_args.model_name_or_path, error)) from error

    # 2. Data
    def mel_config(self) -> MelConfig:
        return self.model_config.mel_config

    # 3. Voices
    def choose_speakers(self, dataset):
        """All voices together, minus clips the model cannot take (longer text or mel than its context)."""
        config = self.model_config
        max_frames = config.max_mel_frames
        lengths = dataset.select_columns(["num_frames", "input_length"]).with_format("numpy")[:]
        fits = (lengths["num_frames"] <= max_frames) & (lengths["input_length"] <= config.max_text_length)
        dropped = int((~fits).sum())
        if dropped:
            logger.warning(
                f"{dropped} of {len(dataset)} clips are longer than the model's context ({max_frames} frames or "
                f"{config.max_text_length} tokens) and are left out; lower --max_duration when preparing the data"
            )
            dataset = dataset.select(np.flatnonzero(fits))
        if len(dataset) == 0:
            raise UsageError("no clip fits the model's context; lower --max_duration when preparing the data")
        speakers = speaker_table(dataset)
        self.say(f"voices: {len(speakers)} speakers, cloned from reference clips (no speaker embeddings)")
        return dataset, None

    # 5. Model
    def build_model(self, tokenizer, speaker_to_id) -> XttsForTextToSpeech:
        model_args = self.model_args
        if model_args.model_size is not None:
            return XttsForTextToSpeech(self.model_config)
        return self.load_pretrained(XttsForTextToSpeech, tokenizer)

    # 6. Trainer
    def build_trainer(self, model, tokenizer, train, evaluation, speaker_to_id):
        mel = model.config.mel_config
        # A training clip of each voice that is synthesized (the samples' voice: the first training speaker, and
        # those of the held-out clips the synthesis metrics score) is that voice's reference.
        scored = evaluation.select(range(min(self.run_args.synthesis_metrics_samples, len(evaluation))))
        self.references = reference_waveforms(train, [train[0]["speaker"], *scored["speaker"]])
        self.max_new_frames = generation_limit(model.config, train)
        trainer = XttsTrainer(
            model,
            self.args,
            train_dataset=train,
            eval_dataset=evaluation,
            processing_class=tokenizer,
            callbacks=[XttsAudioSampleCallback(self.references, max_new_frames=self.max_new_frames)],
        )
        return self.attach_callbacks(trainer, evaluation, mel, make_synthesizer=self._make_synthesizer)

    def _make_synthesizer(self, model, tokenizer, speaker_to_id, seed):
        from ..evaluation.xtts_synthesis import XttsSynthesizer

        return XttsSynthesizer(
            model,
            tokenizer,
            reference=self.references,
            seed=seed,
            name="training model",
            max_new_frames=self.max_new_frames,
        )

    # 8. The end: sample
    def synthesize_sample(self, model_dir: Path, speaker_to_id) -> Path:
        """One sentence in the voice of the first training speaker, from the saved best model as a user loads it."""
        from ..evaluation.xtts_synthesis import XttsSynthesizer

        speaker = next(iter(self.references))
        synthesizer = XttsSynthesizer.from_pretrained(
            model_dir, self.args.device, reference=self.references, max_new_frames=self.max_new_frames
        )
        result = synthesizer.synthesize(self.run_args.sample_text, speaker)
        if result.hit_max_length:
            logger.warning(f"the sample hit the model's length limit: {model_dir} has not learned to stop yet")
        return write_audio(self.output_dir / "sample.wav", np.clip(result.waveform, -1, 1), result.sampling_rate)


def generation_limit(config, train) -> int:
    """Frames generation may run to during the run: 1.5 times the longest training clip (rounded up to whole decoder
    steps), at most the model's maximum. The model never heard longer speech, and one that has not learned to stop yet
    would otherwise spend every evaluation generating `max_mel_frames` frames."""
    longest = int(np.max(train.select_columns(["num_frames"]).with_format("numpy")[:]["num_frames"]))
    steps = -(-int(1.5 * longest) // config.reduction_factor)
    return min(steps * config.reduction_factor, config.max_mel_frames)
