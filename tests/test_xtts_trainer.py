"""`XttsTrainer` and `XttsTrainingArguments` on the tiny XTTS model with real demo clips, on the CPU."""

import math

import pytest
import torch
from transformers import TrainerCallback

from kurdish_tts.models.vits import VitsForTraining
from kurdish_tts.models.xtts import XttsConfig, XttsForTextToSpeech
from kurdish_tts.trainers.nan_recovery import NanRecoveryCallback, load_quarantine
from kurdish_tts.trainers.xtts_arguments import XttsTrainingArguments
from kurdish_tts.trainers.xtts_trainer import LOSS_NAMES, XttsTrainer


@pytest.fixture(scope="module")
def tiny_config(tokenizer):
    # The tiny_demo cache holds mels in the tiny VITS geometry; the model must use the same.
    mel = VitsForTraining.from_size("tiny", tokenizer.vocab_size).mel_config
    config = XttsConfig.for_size("tiny", vocab_size=tokenizer.vocab_size, pad_token_id=tokenizer.pad_token_id, mel=mel)
    assert config.mel_config == mel
    return config


def _args(tmp_dir, **overrides):
    values = {
        "output_dir": str(tmp_dir),
        "report_to": "none",
        "per_device_train_batch_size": 4,
        "per_device_eval_batch_size": 4,
        "max_steps": 4,
        "logging_steps": 1,
        "save_strategy": "no",
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        "use_cpu": True,
        "seed": 0,
    }
    values.update(overrides)
    return XttsTrainingArguments(**values)


class _StepLosses(TrainerCallback):
    def __init__(self):
        self.losses = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.losses.append(logs["loss"])


@pytest.fixture(scope="module")
def short_clips(tiny_demo):
    """Four clips cut to their first 96 frames (24 decoder steps of the tiny model): real speech, fast steps."""

    def crop(row):
        return {"mel": row["mel"][:96], "num_frames": min(row["num_frames"], 96)}

    return tiny_demo.select(range(4)).map(crop)


class TestTraining:
    def test_overfits_one_batch(self, tiny_config, short_clips, tokenizer, tmp_dir):
        recorder = _StepLosses()
        args = _args(tmp_dir, max_steps=30, learning_rate=5e-3, warmup_steps=0, lr_scheduler_type="constant")
        trainer = XttsTrainer(
            XttsForTextToSpeech(tiny_config),
            args,
            train_dataset=short_clips,
            processing_class=tokenizer,
            callbacks=[recorder],
        )
        trainer.train()
        start, end = recorder.losses[0], min(recorder.losses[-5:])
        assert all(math.isfinite(loss) for loss in recorder.losses)
        assert end < 0.5 * start, recorder.losses

    def test_every_term_is_logged_and_finite(self, tiny_config, short_clips, tmp_dir):
        trainer = XttsTrainer(XttsForTextToSpeech(tiny_config), _args(tmp_dir, max_steps=2), train_dataset=short_clips)
        trainer.train()
        logged = [entry for entry in trainer.state.log_history if "loss" in entry]
        for name in LOSS_NAMES:
            values = [entry[f"loss/{name}"] for entry in logged]
            assert len(values) == 2 and all(math.isfinite(v) for v in values), name

    def test_zero_weights_skip_terms_and_guided_attention_decays(self, tiny_config, short_clips, tmp_dir):
        args = _args(tmp_dir, max_steps=3, loss_weight_text=0.0, guided_attention_decay_steps=2)
        trainer = XttsTrainer(XttsForTextToSpeech(tiny_config), args, train_dataset=short_clips)
        trainer.train()
        logged = [entry for entry in trainer.state.log_history if "loss" in entry]
        assert all("loss/text" not in entry for entry in logged)
        # Weight 1 at step 0, 0.5 at step 1, 0 from step 2 on: no attention is requested any more.
        assert ["loss/guided_attention" in entry for entry in logged] == [True, True, False]
        assert [entry["loss_weight/guided_attention"] for entry in logged] == [1.0, 0.5, 0.0]

    def test_evaluation_reports_loss_and_mel_distance(self, tiny_config, tiny_demo, tmp_dir):
        train, held_out = tiny_demo.select(range(4)), tiny_demo.select([4, 5])
        trainer = XttsTrainer(
            XttsForTextToSpeech(tiny_config), _args(tmp_dir), train_dataset=train, eval_dataset=held_out
        )
        metrics = trainer.evaluate()
        assert math.isfinite(metrics["eval_loss"]) and metrics["eval_mel"] > 0
        for name in LOSS_NAMES:
            assert math.isfinite(metrics[f"eval_loss/{name}"])
        # Evaluation is deterministic (references and crops): the same weights score the same.
        assert trainer.evaluate()["eval_mel"] == pytest.approx(metrics["eval_mel"], rel=1e-6)

    def test_evaluation_references_come_from_the_training_clips_too(self, tiny_config, tiny_demo, tmp_dir):
        # Row 4 (speaker m1) is held out alone; its reference must be m1's training clip (row 0), not itself.
        trainer = XttsTrainer(
            XttsForTextToSpeech(tiny_config),
            _args(tmp_dir),
            train_dataset=tiny_demo.select(range(4)),
            eval_dataset=tiny_demo.select([4]),
        )
        batch = next(iter(trainer.get_eval_dataloader()))
        reference = torch.as_tensor(tiny_demo.with_format("numpy")[0]["mel"], dtype=torch.float32)
        crop = batch["reference_mel"][0, : int(batch["reference_mel_lengths"][0])]
        start = (len(reference) - len(crop)) // 2
        assert torch.equal(crop, reference[start : start + len(crop)])


class TestNanRecovery:
    def test_nan_step_is_undone_and_its_samples_quarantined(self, tiny_config, short_clips, tmp_dir):
        model = XttsForTextToSpeech(tiny_config)
        trainer = XttsTrainer(model, _args(tmp_dir, max_steps=5), train_dataset=short_clips)
        recovery = NanRecoveryCallback(lr_factor=0.5, max_recoveries=2, snapshot_steps=1).attach(trainer)

        def poison_step_3(module, inputs, output):
            if module.training and trainer.state.global_step + 1 == 3:
                output["mel_before"] = output.mel_before * float("nan")
            return output

        model.register_forward_hook(poison_step_3)
        trainer.train()
        assert recovery.recoveries == 1 and not recovery.gave_up
        assert recovery.events[0]["step"] == 3
        assert all(torch.isfinite(p).all() for p in model.parameters())
        assert len(load_quarantine(tmp_dir)) == 4
        assert trainer.optimizer.param_groups[0]["lr"] <= 0.5 * trainer.args.learning_rate


class TestArguments:
    @pytest.mark.parametrize(
        "overrides, message",
        [
            ({"huber_delta": 0.0}, "huber_delta must be positive"),
            ({"stop_label_smoothing": 1.0}, "stop_label_smoothing must be in"),
            ({"text_label_smoothing": -0.1}, "text_label_smoothing must be in"),
            ({"stop_pos_weight": 0.0}, "stop_pos_weight must be positive"),
            ({"loss_weight_stop": -1.0}, "loss_weight_stop must be >= 0"),
            ({"loss_weight_mel_before": 0.0, "loss_weight_mel_after": 0.0}, "nothing would learn the mel"),
            ({"mel_loss": "l2"}, "mel_loss must be one of"),
            ({"guided_attention_sigma": 0.0}, "guided_attention_sigma must be positive"),
            ({"guided_attention_decay_steps": 0}, "guided_attention_decay_steps must be a positive"),
            ({"reference_max_frames": 0}, "reference_max_frames must be"),
        ],
    )
    def test_bad_values_say_what_is_wrong(self, tmp_dir, overrides, message):
        with pytest.raises(ValueError, match=message):
            XttsTrainingArguments(str(tmp_dir), report_to="none", **overrides)

    def test_guided_attention_decay_schedule(self, tmp_dir):
        args = XttsTrainingArguments(
            str(tmp_dir), report_to="none", loss_weight_guided_attention=2.0, guided_attention_decay_steps=4
        )
        assert [args.guided_attention_weight(step) for step in range(6)] == [2.0, 1.5, 1.0, 0.5, 0.0, 0.0]
        constant = XttsTrainingArguments(str(tmp_dir), report_to="none")
        assert constant.guided_attention_weight(10_000) == constant.loss_weight_guided_attention
