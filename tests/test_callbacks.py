"""`AudioSampleCallback` and the plotting helpers, on the tiny VITS architecture and the bundled demo corpus (CPU)."""

import logging
import os
import unicodedata
from pathlib import Path
from unittest.mock import patch

import numpy as np
import pytest
import soundfile as sf
import torch
from matplotlib.image import imread
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.data import DataLoader
from transformers import TrainerControl, TrainerState

from kurdish_tts.data.collators import DataCollatorForVits
from kurdish_tts.data.demo_corpus import DEMO_CORPUS_DIR
from kurdish_tts.evaluation.plots import (
    alignment_figure,
    figure_to_array,
    loss_curve_figure,
    save_figure,
    save_image,
    spectrogram_figure,
)
from kurdish_tts.text import normalize_text, tokenizer_characters
from kurdish_tts.trainers import VitsTrainer
from kurdish_tts.trainers.callbacks import DEFAULT_SENTENCES, AudioSampleCallback

from .testing_utils import tiny_model, tiny_training_args

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CALLBACK_LOGGER = "kurdish_tts.trainers.callbacks"


@pytest.fixture(scope="module")
def prepared(tiny_demo):
    return tiny_demo.select(range(4))


def eval_loader(prepared, model):
    collator = DataCollatorForVits(hop_length=model.mel_config.hop_length, min_frames=model.segment_frames)
    return DataLoader(prepared.with_format("numpy"), batch_size=2, collate_fn=collator)


def trainer_state(step, main_process=True):
    return TrainerState(global_step=step, is_world_process_zero=main_process)


def is_png(path):
    return Path(path).read_bytes()[:8] == PNG_SIGNATURE


@pytest.fixture(scope="module")
def evaluated_run(prepared, tokenizer, tmp_path_factory):
    """Four training steps with an evaluation every two, reporting to TensorBoard, with the callback attached."""
    root = tmp_path_factory.mktemp("run")
    callback = AudioSampleCallback(logging_dir=root / "tensorboard")
    args = tiny_training_args(
        root / "out", max_steps=4, eval_strategy="steps", eval_steps=2, report_to=["tensorboard"]
    )
    trainer = VitsTrainer(
        tiny_model(tokenizer),
        args,
        train_dataset=prepared,
        eval_dataset=prepared.select(range(2)),
        processing_class=tokenizer,
        callbacks=[callback],
    )
    trainer.train()
    return trainer, callback, root


class TestDefaultSentences:
    def test_default_sentences_are_unseen_and_hold_every_diacritic(self):
        metadata = (Path(DEMO_CORPUS_DIR) / "metadata.csv").read_text(encoding="utf-8")
        collection = (Path(__file__).parents[1] / "kurdish_tts" / "demo" / "kmr_sentences.txt").read_text("utf-8")
        assert len(DEFAULT_SENTENCES) == 3
        for sentence in DEFAULT_SENTENCES:
            assert unicodedata.is_normalized("NFC", sentence)
            assert sentence not in metadata
        assert DEFAULT_SENTENCES[0] in collection and DEFAULT_SENTENCES[1] in collection
        assert set("çêîşû") <= set("".join(DEFAULT_SENTENCES).lower())

    def test_numerals_read_back_as_the_collection_sentence(self, tokenizer):
        allowed = tokenizer_characters(tokenizer)
        spelled = "Meha reşemehê her çar salan carekê dibe bîst û neh roj."
        normalized = normalize_text(DEFAULT_SENTENCES[2], allowed)
        assert normalized.text == normalize_text(spelled, allowed).text and not normalized.removed


class TestAudioSampleCallbackRun:
    def test_writes_one_folder_per_evaluation(self, evaluated_run):
        trainer, callback, root = evaluated_run
        assert sorted(os.listdir(root / "out" / "samples")) == ["step-2", "step-4"]
        assert callback.failures == 0

    def test_samples_are_16khz_wavs_with_mel_and_alignment_pngs(self, evaluated_run, tokenizer):
        _, callback, root = evaluated_run
        for step in (2, 4):
            folder = root / "out" / "samples" / f"step-{step}"
            wavs = sorted(folder.glob("sample-*.wav"))
            assert [w.name for w in wavs] == [f"sample-{i}.wav" for i in range(len(DEFAULT_SENTENCES))]
            for index, wav in enumerate(wavs):
                audio, rate = sf.read(wav)
                assert rate == 16000 and audio.ndim == 1
                # Every token lasts at least one frame (hop 16) and the random model predicts a few.
                tokens = len(tokenizer(normalize_text(DEFAULT_SENTENCES[index]).text)["input_ids"])
                assert tokens * 16 <= len(audio) <= callback.max_seconds * rate
                assert np.abs(audio).max() > 0
                assert is_png(folder / f"sample-{index}-mel.png")
            assert sorted(p.name for p in folder.glob("*.png") if not p.name.startswith("sample-")) == [
                "alignment-0.png",
                "target-0-mel.png",
            ]
            assert is_png(folder / "alignment-0.png") and is_png(folder / "target-0-mel.png")

    def test_tensorboard_holds_audio_and_images_at_each_evaluation(self, evaluated_run):
        _, _, root = evaluated_run
        assert list((root / "tensorboard").glob("events.out.tfevents.*"))
        events = EventAccumulator(str(root / "tensorboard"), size_guidance={"audio": 0, "images": 0})
        events.Reload()
        tags = events.Tags()
        assert set(tags["audio"]) == {f"samples/{i}" for i in range(len(DEFAULT_SENTENCES))}
        assert {"samples/0_mel", "alignment/0", "alignment/0_target_mel"} <= set(tags["images"])
        assert [event.step for event in events.Audio("samples/0")] == [2, 4]
        assert [event.step for event in events.Images("alignment/0")] == [2, 4]
        assert events.Audio("samples/0")[0].sample_rate == 16000

    def test_loss_curve_of_the_real_log_history(self, evaluated_run):
        trainer, _, _ = evaluated_run
        figure = loss_curve_figure(trainer.state.log_history)
        # One panel per term, train and eval sharing: loss plus the six VITS terms.
        assert len(figure.axes) == 7
        titles = {axes.get_title() for axes in figure.axes}
        assert {"loss", "loss/mel", "loss/disc"} <= titles
        mel_panel = next(axes for axes in figure.axes if axes.get_title() == "loss/mel")
        assert [line.get_label() for line in mel_panel.get_lines()] == ["train", "eval"]
        assert list(mel_panel.get_lines()[1].get_xdata()) == [2, 4]


class TestAudioSampleCallbackSchedule:
    def test_every_n_steps_and_evaluations_log_each_step_once(self, prepared, tokenizer, tmp_dir):
        callback = AudioSampleCallback(every_n_steps=3)
        calls = []

        def record(args, state, model, processing_class, eval_dataloader):
            # Right after an evaluation, its metrics for this very step are the last log entry.
            last = state.log_history[-1]
            calls.append((state.global_step, "eval_loss" in last and last["step"] == state.global_step))

        args = tiny_training_args(tmp_dir, max_steps=6, eval_strategy="steps", eval_steps=2)
        trainer = VitsTrainer(
            tiny_model(tokenizer),
            args,
            train_dataset=prepared,
            eval_dataset=prepared.select(range(2)),
            processing_class=tokenizer,
            callbacks=[callback],
        )
        with patch.object(callback, "_log_samples", side_effect=record):
            trainer.train()
            # Step 6 was an evaluation step already: a second evaluation at the same step writes nothing.
            trainer.evaluate()
        # Step 6 is both an every-3 step and an evaluation step: logged once, at the evaluation, which has the
        # evaluation batch for the alignments.
        assert calls == [(2, True), (3, False), (4, True), (6, True)]

    def test_every_n_steps_without_evaluation(self, prepared, tokenizer, tmp_dir):
        callback = AudioSampleCallback(every_n_steps=2)
        trainer = VitsTrainer(
            tiny_model(tokenizer),
            tiny_training_args(tmp_dir, max_steps=5),
            train_dataset=prepared,
            processing_class=tokenizer,
            callbacks=[callback],
        )
        with patch.object(callback, "_log_samples") as log_samples:
            log_samples.side_effect = lambda args, state, *rest: steps.append(state.global_step)
            steps = []
            trainer.train()
        assert steps == [2, 4]

    @pytest.mark.parametrize(
        "kwargs",
        [{"sentences": []}, {"every_n_steps": 0}, {"max_seconds": 0.0}, {"num_alignments": -1}],
    )
    def test_invalid_arguments(self, kwargs):
        with pytest.raises(ValueError):
            AudioSampleCallback(**kwargs)


class TestAudioSampleCallbackDirect:
    def test_non_main_process_writes_nothing(self, prepared, tokenizer, tmp_dir):
        model = tiny_model(tokenizer)
        callback = AudioSampleCallback(every_n_steps=1, logging_dir=tmp_dir / "tensorboard")
        args = tiny_training_args(tmp_dir / "out", report_to=["tensorboard"])
        for event in (callback.on_evaluate, callback.on_step_end):
            event(
                args,
                trainer_state(2, main_process=False),
                TrainerControl(),
                model=model,
                processing_class=tokenizer,
                eval_dataloader=eval_loader(prepared, model),
            )
        assert not (tmp_dir / "out").exists() and not (tmp_dir / "tensorboard").exists()
        assert callback._writer is None

    def test_without_processing_class_warns_once_and_still_plots_alignments(
        self, prepared, tokenizer, tmp_dir, caplog
    ):
        model = tiny_model(tokenizer)
        callback = AudioSampleCallback(num_alignments=2)
        args = tiny_training_args(tmp_dir)
        with caplog.at_level(logging.WARNING, logger=CALLBACK_LOGGER):
            for step, loader in ((1, eval_loader(prepared, model)), (2, None)):
                callback.on_evaluate(
                    args,
                    trainer_state(step),
                    TrainerControl(),
                    model=model,
                    processing_class=None,
                    eval_dataloader=loader,
                )
        warnings = [r for r in caplog.records if "processing_class" in r.getMessage()]
        assert len(warnings) == 1
        assert callback.failures == 0
        assert sorted(os.listdir(tmp_dir / "samples" / "step-1")) == [
            "alignment-0.png",
            "alignment-1.png",
            "target-0-mel.png",
            "target-1-mel.png",
        ]
        # Neither a tokenizer nor an evaluation batch: nothing to write, and no empty folder either.
        assert sorted(os.listdir(tmp_dir / "samples")) == ["step-1"]

    def test_failure_is_logged_with_traceback_counted_and_isolated(self, prepared, tokenizer, tmp_dir, caplog):
        model = tiny_model(tokenizer)
        callback = AudioSampleCallback()
        with (
            patch.object(model.vits, "forward", side_effect=RuntimeError("decoder exploded")),
            caplog.at_level(logging.WARNING, logger=CALLBACK_LOGGER),
        ):
            callback.on_evaluate(
                tiny_training_args(tmp_dir),
                trainer_state(3),
                TrainerControl(),
                model=model,
                processing_class=tokenizer,
                eval_dataloader=eval_loader(prepared, model),
            )
        assert callback.failures == 1
        (record,) = [r for r in caplog.records if "failed" in r.getMessage()]
        assert "audio samples" in record.getMessage() and "step 3" in record.getMessage()
        assert record.exc_info is not None and "decoder exploded" in str(record.exc_info[1])
        # The alignment pass does not go through `vits.forward` and still runs.
        assert sorted(os.listdir(tmp_dir / "samples" / "step-3")) == ["alignment-0.png", "target-0-mel.png"]

    def test_observes_only_and_cuts_to_max_seconds(self, prepared, tokenizer, tmp_dir):
        model = tiny_model(tokenizer)
        model.train()
        model.discriminator.eval()  # a submodule deliberately in eval mode must stay there
        parameters = {name: p.detach().clone() for name, p in model.named_parameters()}
        random_state = torch.get_rng_state()
        callback = AudioSampleCallback(sentences=["Şev baş, ez ê sibê werim."], max_seconds=0.01)
        callback.on_evaluate(
            tiny_training_args(tmp_dir),
            trainer_state(1),
            TrainerControl(),
            model=model,
            processing_class=tokenizer,
            eval_dataloader=eval_loader(prepared, model),
        )
        audio, rate = sf.read(tmp_dir / "samples" / "step-1" / "sample-0.wav")
        assert len(audio) == int(0.01 * rate) == 160
        assert callback.failures == 0
        assert model.training and model.vits.training and not model.discriminator.training
        assert all(torch.equal(parameters[name], p) for name, p in model.named_parameters())
        assert all(p.grad is None for p in model.parameters())
        assert torch.equal(torch.get_rng_state(), random_state)

    def test_samples_are_reproducible_across_calls(self, tokenizer, tmp_dir):
        # The fixed seed: the same weights give the same sample, so step-to-step changes come from training.
        model = tiny_model(tokenizer)
        callback = AudioSampleCallback(sentences=["Roj baş."])
        args = tiny_training_args(tmp_dir)
        for step in (1, 2):
            torch.manual_seed(100 + step)  # the training's random state differs between evaluations
            callback.on_evaluate(args, trainer_state(step), TrainerControl(), model=model, processing_class=tokenizer)
        first, _ = sf.read(tmp_dir / "samples" / "step-1" / "sample-0.wav")
        second, _ = sf.read(tmp_dir / "samples" / "step-2" / "sample-0.wav")
        np.testing.assert_array_equal(first, second)


class TestPlots:
    def test_spectrogram_and_alignment_figures_render_to_rgb_arrays(self):
        mel = np.random.default_rng(0).standard_normal((8, 50)).astype(np.float32)
        figure = spectrogram_figure(mel, title="mel")
        image = figure_to_array(figure)
        width, height = figure.get_size_inches() * figure.dpi
        assert image.shape == (round(height), round(width), 3) and image.dtype == np.uint8
        assert image.std() > 0  # something was drawn

        alignment = np.zeros((5, 12), dtype=np.float32)
        alignment[np.repeat(np.arange(5), [2, 3, 2, 4, 1]), np.arange(12)] = 1
        figure = alignment_figure(alignment)
        axes = figure.axes[0]
        assert axes.get_xlabel() == "mel frames" and axes.get_ylabel() == "text tokens"
        # The XTTS-style attention has one column per decoder step of r frames; its plots say so.
        assert alignment_figure(alignment, xlabel="decoder steps (4 mel frames each)").axes[0].get_xlabel() == (
            "decoder steps (4 mel frames each)"
        )
        assert axes.get_ylim()[0] < axes.get_ylim()[1]  # origin lower: token 0 at the bottom
        assert figure_to_array(figure).shape[2] == 3

    def test_figures_reject_non_matrices(self):
        with pytest.raises(ValueError, match="2-D"):
            spectrogram_figure(np.zeros(10))

    def test_save_figure_writes_a_png_atomically(self, tmp_dir):
        path = save_figure(spectrogram_figure(np.zeros((4, 6))), tmp_dir / "nested" / "mel.png")
        assert path == tmp_dir / "nested" / "mel.png" and is_png(path)
        assert os.listdir(tmp_dir / "nested") == ["mel.png"]  # no temporary file left behind

    def test_save_figure_leaves_no_partial_file_on_error(self, tmp_dir):
        figure = spectrogram_figure(np.zeros((4, 6)))

        def write_half_then_fail(path, image, **kwargs):
            Path(path).write_bytes(PNG_SIGNATURE)
            raise OSError("disk full")

        with patch("kurdish_tts.evaluation.plots.imsave", side_effect=write_half_then_fail), pytest.raises(OSError):
            save_figure(figure, tmp_dir / "mel.png")
        assert os.listdir(tmp_dir) == []

    def test_save_image_round_trips_the_pixels(self, tmp_dir):
        image = figure_to_array(alignment_figure(np.eye(4, 9)))
        save_image(image, tmp_dir / "alignment.png")
        decoded = imread(tmp_dir / "alignment.png")  # float RGB(A) in [0, 1]
        np.testing.assert_array_equal(np.round(decoded[..., :3] * 255).astype(np.uint8), image)

    def test_loss_curve_groups_terms_skips_non_finite_values_and_honours_keys(self):
        history = [
            {"loss": 3.0, "loss/mel": 30.0, "grad_norm": 1.0, "step": 1},
            {"loss": float("nan"), "loss/mel": 20.0, "step": 2},
            {"eval_loss": 2.5, "eval_loss/mel": 25.0, "step": 2},
            {"train_loss": 2.0, "train_runtime": 1.0, "step": 2},
        ]
        figure = loss_curve_figure(history)
        assert [axes.get_title() for axes in figure.axes] == ["loss", "loss/mel"]
        loss_lines = figure.axes[0].get_lines()
        assert list(loss_lines[0].get_xdata()) == [1] and list(loss_lines[1].get_ydata()) == [2.5]

        only_mel = loss_curve_figure(history, keys=["loss/mel"])
        assert [axes.get_title() for axes in only_mel.axes] == ["loss/mel"]
        assert len(only_mel.axes[0].get_lines()) == 1

        with pytest.raises(ValueError, match="no finite values"):
            loss_curve_figure([{"grad_norm": 1.0, "step": 1}])
