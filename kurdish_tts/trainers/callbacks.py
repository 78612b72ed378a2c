"""Trainer callbacks that observe a VITS run: audio samples, mels and alignments written during training.

Every callback of the package can be imported from here; each lives in a module of its own: `NanRecoveryCallback`
(`nan_recovery.py`), `BestModelCallback` (`best_model.py`), `ThroughputCallback` (`throughput.py`) and
`TimeBudgetCallback` (`budget.py`).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from accelerate.utils import extract_model_from_parallel
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from ..audio import mel_spectrogram, write_audio
from ..evaluation.plots import alignment_figure, figure_to_array, save_image, spectrogram_figure

# VITS draws noise from the global generators; `inference` forks them, so training's random stream does not depend
# on whether samples were written.
from ..evaluation.synthesis import inference
from ..text import normalize_text, tokenizer_characters
from .best_model import BestModelCallback
from .budget import TimeBudgetCallback
from .nan_recovery import NanRecoveryCallback
from .throughput import ThroughputCallback

__all__ = [
    "AudioSampleCallback",
    "BestModelCallback",
    "NanRecoveryCallback",
    "ThroughputCallback",
    "TimeBudgetCallback",
]

logger = logging.getLogger(__name__)

# Kurmanji sentences from the Common Voice collection bundled in `kurdish_tts/demo/kmr_sentences.txt` (CC0) and absent
# from the demo training corpus, so that the samples show generalization rather than recall. Together they hold
# ç ê î ş û, a statement and a question.
DEFAULT_SENTENCES = (
    "Qoser di çandiniya dexlûdan de pir pêşketî ye.",
    "Hêz û grûpên çekdar li Efrînê çawa belav bûne?",
    # The collection spells these numbers out ("çar", "bîst û neh"); written as digits here, the sample also checks
    # that the number reader turns them back into the same words.
    "Meha reşemehê her 4 salan carekê dibe 29 roj.",
)


class AudioSampleCallback(TrainerCallback):
    """Synthesize fixed sentences and plot alignments during training, so that a run can be heard and seen.

    In the spirit of TRL's `LogCompletionsCallback`. At every evaluation (and every `every_n_steps` optimizer steps
    when set), on the main process only, it writes to `output_dir/samples/step-<global_step>/`:

    - `sample-<i>.wav` and `sample-<i>-mel.png`: sentence `i` synthesized by the generator (a stock `VitsModel`
      call, as at inference), and its log-mel;
    - `alignment-<i>.png` and `target-<i>-mel.png`: the monotonic alignment the training forward finds for the `i`-th
      evaluation item, and that item's target mel, both cropped to its real tokens and frames.

    With `"tensorboard"` in `args.report_to`, the same audio and images go to TensorBoard under `samples/<i>`,
    `samples/<i>_mel`, `alignment/<i>` and `alignment/<i>_target_mel`.

    The callback only observes: synthesis runs under `torch.no_grad()` in eval mode on the unwrapped model, restores
    each module's train/eval flag afterwards, and draws its noise from a forked random state with a fixed seed. The
    training's random stream is therefore the same with or without the callback, and samples of different steps differ
    only by the weights. A failure is logged with its traceback and counted in `failures`; it never stops training.

    Example:

    ```python
    >>> from kurdish_tts.trainers import VitsTrainer
    >>> from kurdish_tts.trainers.callbacks import AudioSampleCallback
    >>> trainer = VitsTrainer(model, args, train_dataset=train, eval_dataset=dev, processing_class=tokenizer,
    ...                       callbacks=[AudioSampleCallback(every_n_steps=1000)])
    ```

    Args:
        sentences (`list[str]`, *optional*):
            Raw Kurmanji sentences to synthesize; they are normalized for the tokenizer first, so digits are fine.
            Defaults to `DEFAULT_SENTENCES`.
        every_n_steps (`int`, *optional*):
            Also write samples every this many optimizer steps, independently of evaluation. A step that is also an
            evaluation step is written once, at the evaluation, where the alignments are available.
        max_seconds (`float`, *optional*, defaults to `10.0`):
            Samples are cut to this length. An early model can predict absurd durations; this bounds the files, not
            the compute of the generator call.
        speaker_id (`int`, *optional*):
            Speaker embedding to synthesize with, for multi-speaker models.
        num_alignments (`int`, *optional*, defaults to `1`):
            Evaluation items whose alignment is plotted (taken from the start of the evaluation set); `0` turns the
            alignment pass off.
        logging_dir (`str` or `os.PathLike`, *optional*):
            TensorBoard folder. transformers 5 has no `TrainingArguments.logging_dir`; its `TensorBoardCallback` writes
            to `$TENSORBOARD_LOGGING_DIR` or `output_dir/runs/<time>_<host>`. This defaults to
            `$TENSORBOARD_LOGGING_DIR` too (one TensorBoard run with the scalars), else to `output_dir/runs/samples`
            (a run of its own next to the scalars' run).

    Attributes:
        failures (`int`):
            How many sample or alignment passes raised (and were logged as warnings).
    """

    # Fixed, so that samples of different steps use the same noise and differ only by the weights.
    seed = 0

    def __init__(
        self,
        sentences: Sequence[str] | None = None,
        every_n_steps: int | None = None,
        max_seconds: float = 10.0,
        speaker_id: int | None = None,
        num_alignments: int = 1,
        logging_dir: str | os.PathLike | None = None,
    ):
        self.sentences = list(DEFAULT_SENTENCES if sentences is None else sentences)
        if not self.sentences:
            raise ValueError("sentences must not be empty; pass None for the default Kurmanji sentences")
        if every_n_steps is not None and every_n_steps < 1:
            raise ValueError(f"every_n_steps must be a positive number of steps or None, got {every_n_steps}")
        if max_seconds <= 0:
            raise ValueError(f"max_seconds must be positive, got {max_seconds}")
        if num_alignments < 0:
            raise ValueError(f"num_alignments must be >= 0, got {num_alignments}")
        self.every_n_steps = every_n_steps
        self.max_seconds = max_seconds
        self.speaker_id = speaker_id
        self.num_alignments = num_alignments
        self.logging_dir = logging_dir
        self.failures = 0
        self._last_logged_step = -1
        self._writer = None
        self._warned: set[str] = set()

    def on_step_end(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        model=None,
        processing_class=None,
        eval_dataloader=None,
        **kwargs,
    ) -> None:
        if self.every_n_steps is None or state.global_step % self.every_n_steps:
            return
        # `DefaultFlowCallback` runs first and has already decided whether this step evaluates; if it does,
        # `on_evaluate` writes this step, with the evaluation batch for the alignments.
        if control.should_evaluate:
            return
        self._maybe_log_samples(args, state, model, processing_class, eval_dataloader)

    def on_evaluate(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        model=None,
        processing_class=None,
        eval_dataloader=None,
        **kwargs,
    ) -> None:
        self._maybe_log_samples(args, state, model, processing_class, eval_dataloader)

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _maybe_log_samples(self, args, state, model, processing_class, eval_dataloader) -> None:
        # The guard: a step reached twice (an evaluation at the last step followed by `trainer.evaluate()`) is
        # written once.
        if not state.is_world_process_zero or model is None or state.global_step == self._last_logged_step:
            return
        self._last_logged_step = state.global_step
        self._log_samples(args, state, model, processing_class, eval_dataloader)

    def _log_samples(self, args, state, model, processing_class, eval_dataloader) -> None:
        """Write the samples and alignments of the current step; each of the two parts fails on its own."""
        model = extract_model_from_parallel(model, keep_torch_compile=False)
        step = state.global_step
        folder = Path(args.output_dir) / "samples" / f"step-{step}"
        if processing_class is None:
            self._warn_once(
                "no-tokenizer",
                "AudioSampleCallback: the trainer has no processing_class (tokenizer), so no audio samples are "
                "synthesized; pass processing_class=tokenizer to the trainer to hear the model.",
            )
        else:
            with self._reported("audio samples", step):
                self._write_audio_samples(args, step, model, processing_class, folder)
        if eval_dataloader is not None and self.num_alignments:
            with self._reported("alignment plots", step):
                self._write_alignments(args, step, model, eval_dataloader, folder)

    def _write_audio_samples(self, args, step: int, model, tokenizer, folder: Path) -> None:
        sampling_rate = model.vits.config.sampling_rate
        max_samples = int(self.max_seconds * sampling_rate)
        allowed = tokenizer_characters(tokenizer)
        waveforms = []
        with inference(model, self.seed):
            for sentence in self.sentences:
                normalized = normalize_text(sentence, allowed)
                if normalized.removed_letters:
                    self._warn_once(
                        sentence,
                        f"AudioSampleCallback: the tokenizer cannot speak {normalized.removed_letters} of the sample "
                        f"sentence {sentence!r}; the sample says {normalized.text!r}.",
                    )
                inputs = tokenizer(normalized.text, return_tensors="pt").to(model.device)
                output = model.vits(
                    input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], speaker_id=self.speaker_id
                )
                waveforms.append(output.waveform[0, :max_samples].float().cpu().numpy())  # (samples,)

        writer = self._tensorboard(args)
        for index, waveform in enumerate(waveforms):
            # An untrained decoder can overshoot full scale; 16-bit PCM would wrap such samples around.
            waveform = np.clip(waveform, -1.0, 1.0)
            write_audio(folder / f"sample-{index}.wav", waveform, sampling_rate)
            mel = mel_spectrogram(torch.from_numpy(waveform), model.mel_config).numpy()  # (n_mels, frames)
            image = figure_to_array(spectrogram_figure(mel, title=f"step {step}: {self.sentences[index]}"))
            save_image(image, folder / f"sample-{index}-mel.png")
            if writer is not None:
                writer.add_audio(f"samples/{index}", waveform, step, sample_rate=sampling_rate)
                writer.add_image(f"samples/{index}_mel", image, step, dataformats="HWC")
        if writer is not None:
            writer.flush()

    def _write_alignments(self, args, step: int, model, eval_dataloader, folder: Path) -> None:
        batch = _first_rows(eval_dataloader, self.num_alignments)
        batch = {key: value.to(model.device) for key, value in batch.items()}
        with inference(model, self.seed):
            output = model(**batch, compute_adversarial=False)

        writer = self._tensorboard(args)
        for index in range(len(batch["input_ids"])):
            tokens = int(batch["attention_mask"][index].sum())
            frames = int(batch["mel_lengths"][index])
            alignment = output.alignment[index, :tokens, :frames].float().cpu().numpy()  # (tokens, frames)
            target_mel = batch["mel"][index, :, :frames].float().cpu().numpy()  # (n_mels, frames)
            title = f"step {step}: evaluation item {index}"
            alignment_image = figure_to_array(alignment_figure(alignment, title=title))
            target_image = figure_to_array(spectrogram_figure(target_mel, title=f"evaluation item {index}: target"))
            save_image(alignment_image, folder / f"alignment-{index}.png")
            save_image(target_image, folder / f"target-{index}-mel.png")
            if writer is not None:
                writer.add_image(f"alignment/{index}", alignment_image, step, dataformats="HWC")
                writer.add_image(f"alignment/{index}_target_mel", target_image, step, dataformats="HWC")
        if writer is not None:
            writer.flush()

    def _tensorboard(self, args: TrainingArguments):
        if "tensorboard" not in args.report_to:
            return None
        if self._writer is None:
            # Imported here: tensorboard is an optional dependency, needed only when the run reports to it.
            from torch.utils.tensorboard import SummaryWriter

            logging_dir = (
                self.logging_dir
                or os.getenv("TENSORBOARD_LOGGING_DIR")
                or os.path.join(args.output_dir, "runs", "samples")
            )
            self._writer = SummaryWriter(os.fspath(logging_dir))
        return self._writer

    @contextlib.contextmanager
    def _reported(self, what: str, step: int) -> Iterator[None]:
        # A broken sample must not end a long run, and must not pass unnoticed either: warn with the traceback.
        try:
            yield
        except Exception:
            self.failures += 1
            logger.warning(
                "AudioSampleCallback: writing the %s of step %d failed (%d failure(s) so far); training goes on.",
                what,
                step,
                self.failures,
                exc_info=True,
            )

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            logger.warning(message)


def _first_rows(dataloader, size: int) -> dict[str, torch.Tensor]:
    """The first `size` rows of the loader's dataset, collated by the loader's own collate function.

    Not `next(iter(dataloader))`: on an accelerate-prepared loader that can enter collectives (batch dispatch, random
    state synchronization) that only the main process would join, and it would start every worker for one batch.
    """
    dataset = dataloader.dataset
    if isinstance(dataset, torch.utils.data.IterableDataset):
        rows = list(itertools.islice(dataset, size))
    else:
        rows = [dataset[index] for index in range(min(size, len(dataset)))]
    return dataloader.collate_fn(rows)
