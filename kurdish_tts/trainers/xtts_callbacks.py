"""`XttsAudioSampleCallback`: `AudioSampleCallback`'s samples and attention plots for the XTTS-style model."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from ..audio import mel_spectrogram, write_audio
from ..audio.io import from_int16
from ..evaluation.plots import alignment_figure, figure_to_array, save_image, spectrogram_figure
from ..evaluation.synthesis import inference
from .callbacks import AudioSampleCallback, _first_rows


def reference_waveforms(dataset, speakers: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """The first clip of each speaker of a prepared cache, as float32 waveforms: the voices samples are cloned from.

    Args:
        dataset (`datasets.Dataset`): A prepared cache (`speaker`, 16-bit `waveform`).
        speakers (`Iterable[str]`, *optional*): Only these speakers (those without a clip are left out); all when
            unset.

    Returns:
        `dict[str, np.ndarray]`: speaker → waveform `(samples,)`, in the dataset's order of first appearance.
    """
    wanted = None if speakers is None else {str(s) for s in speakers}
    rows: dict[str, int] = {}
    for index, speaker in enumerate(dataset["speaker"]):
        speaker = str(speaker)
        if speaker not in rows and (wanted is None or speaker in wanted):
            rows[speaker] = index
    if not rows:
        raise ValueError("no reference clip: the dataset holds no clip of the requested speakers")
    return {
        speaker: from_int16(np.asarray(dataset[index]["waveform"], dtype=np.int16)) for speaker, index in rows.items()
    }


class XttsAudioSampleCallback(AudioSampleCallback):
    """Write audio samples and text→mel attention plots of an `XttsForTextToSpeech` during training.

    Behaves as `AudioSampleCallback` (when, where, TensorBoard tags, failure handling, observe-only); what differs
    is the model call. Each sentence is synthesized by `XttsSynthesizer` (autoregressive generation, then the
    Griffin-Lim vocoder) in the voice of `speaker`'s reference clip; `sample-<i>-attention.png` shows what each
    generated decoder step attended to while speaking (free running), and `alignment-<i>.png` the attention of each
    decoder step to the text teacher forced on an evaluation item (`XttsOutput.text_mel_attention`). Both should
    become a diagonal as the model learns to align; the x axes count decoder steps of `reduction_factor` mel frames.

    Args:
        references (`Mapping[str, np.ndarray]`):
            Speaker → reference waveform (float32, at the model's rate), e.g. `reference_waveforms(train_dataset)`.
        speaker (`str`, *optional*):
            Whose voice the samples use; the first of `references` when unset.
        max_new_frames (`int`, *optional*):
            Generation's length limit; the model's maximum when unset. A model that has not learned to stop yet runs
            to the limit, so a bound near the longest training clip keeps early samples cheap.
        sentences, every_n_steps, max_seconds, num_alignments, logging_dir:
            As for `AudioSampleCallback`.
    """

    def __init__(
        self,
        references: Mapping[str, np.ndarray],
        speaker: str | None = None,
        max_new_frames: int | None = None,
        sentences: Sequence[str] | None = None,
        every_n_steps: int | None = None,
        max_seconds: float = 10.0,
        num_alignments: int = 1,
        logging_dir=None,
    ):
        super().__init__(
            sentences,
            every_n_steps=every_n_steps,
            max_seconds=max_seconds,
            num_alignments=num_alignments,
            logging_dir=logging_dir,
        )
        if not references:
            raise ValueError("references must hold at least one speaker's reference waveform")
        if speaker is not None and speaker not in references:
            raise ValueError(f"speaker {speaker!r} has no reference; choose one of {sorted(references)[:5]}")
        self.references = dict(references)
        self.max_new_frames = max_new_frames
        self.reference_speaker = speaker if speaker is not None else next(iter(self.references))

    def _write_audio_samples(self, args, step: int, model, tokenizer, folder: Path) -> None:
        from ..evaluation.xtts_synthesis import XttsSynthesizer

        synthesizer = XttsSynthesizer(
            model, tokenizer, reference=self.references, seed=self.seed, max_new_frames=self.max_new_frames
        )
        mel_config = synthesizer.mel_config
        max_samples = int(self.max_seconds * synthesizer.sampling_rate)
        writer = self._tensorboard(args)
        for index, sentence in enumerate(self.sentences):
            result = synthesizer.synthesize(sentence, self.reference_speaker)
            # An untrained model's mel can make Griffin-Lim overshoot full scale; 16-bit PCM would wrap it around.
            waveform = np.clip(result.waveform[:max_samples], -1.0, 1.0)
            write_audio(folder / f"sample-{index}.wav", waveform, synthesizer.sampling_rate)
            mel = mel_spectrogram(torch.from_numpy(waveform), mel_config).numpy()  # (n_mels, frames)
            stopped = "hit the length limit" if result.hit_max_length else "stopped"
            image = figure_to_array(spectrogram_figure(mel, title=f"step {step} ({stopped}): {sentence}"))
            save_image(image, folder / f"sample-{index}-mel.png")
            # What the model read while speaking (free running): the teacher-forced alignment plots can look
            # diagonal while generation is stuck on one token.
            attention_image = figure_to_array(
                alignment_figure(
                    result.attention.T,
                    title=f"step {step} ({stopped}, free running): {sentence}",
                    xlabel=f"decoder steps ({model.config.reduction_factor} mel frames each)",
                )
            )
            save_image(attention_image, folder / f"sample-{index}-attention.png")
            if writer is not None:
                writer.add_audio(f"samples/{index}", waveform, step, sample_rate=synthesizer.sampling_rate)
                writer.add_image(f"samples/{index}_mel", image, step, dataformats="HWC")
                writer.add_image(f"samples/{index}_attention", attention_image, step, dataformats="HWC")
        if writer is not None:
            writer.flush()

    def _write_alignments(self, args, step: int, model, eval_dataloader, folder: Path) -> None:
        batch = _first_rows(eval_dataloader, self.num_alignments)
        inputs = {key: value.to(model.device) for key, value in batch.items() if key != "text_labels"}
        reduction_factor = model.config.reduction_factor
        with inference(model, self.seed):
            output = model(**inputs, output_attentions=True)
        if output.text_mel_attention is None:
            raise ValueError("the model returned no text_mel_attention (its guided_attention_layers are empty)")
        writer = self._tensorboard(args)
        for index in range(len(inputs["input_ids"])):
            tokens = int(inputs["attention_mask"][index].sum())
            frames = int(inputs["mel_lengths"][index])
            steps = -(-frames // reduction_factor)
            attention = output.text_mel_attention[index, :steps, :tokens].float().cpu().numpy().T  # (tokens, steps)
            target_mel = inputs["mel"][index, :frames].float().cpu().numpy().T  # (n_mels, frames)
            attention_image = figure_to_array(
                alignment_figure(
                    attention,
                    title=f"step {step}: evaluation item {index} (teacher forced)",
                    xlabel=f"decoder steps ({reduction_factor} mel frames each)",
                )
            )
            target_image = figure_to_array(spectrogram_figure(target_mel, title=f"evaluation item {index}: target"))
            save_image(attention_image, folder / f"alignment-{index}.png")
            save_image(target_image, folder / f"target-{index}-mel.png")
            if writer is not None:
                writer.add_image(f"alignment/{index}", attention_image, step, dataformats="HWC")
                writer.add_image(f"alignment/{index}_target_mel", target_image, step, dataformats="HWC")
        if writer is not None:
            writer.flush()
