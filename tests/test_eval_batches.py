"""A held-out set smaller than one evaluation batch, with --dataloader_drop_last, is refused when the trainer is built
(it used to end the run at its first evaluation with a KeyError from the best-model callback)."""

import pytest

from kurdish_tts.errors import UsageError
from kurdish_tts.trainers import VitsTrainer
from kurdish_tts.trainers.eval_batches import require_an_eval_batch

from .testing_utils import tiny_model, tiny_training_args


@pytest.mark.parametrize(
    "clips, batch, drop_last, refused",
    [(3, 4, True, True), (4, 4, True, False), (3, 4, False, False), (0, 1, True, True)],
)
def test_an_eval_set_smaller_than_a_dropped_batch_is_refused(tmp_dir, clips, batch, drop_last, refused):
    args = tiny_training_args(tmp_dir, per_device_eval_batch_size=batch, dataloader_drop_last=drop_last)
    if not refused:
        require_an_eval_batch(list(range(clips)), args)
        return
    with pytest.raises(UsageError) as raised:
        require_an_eval_batch(list(range(clips)), args)
    message = str(raised.value)
    assert f"has {clips} clips" in message and f"--per_device_eval_batch_size {batch}" in message
    assert (
        f"pass --per_device_eval_batch_size {max(1, clips)}" in message and "--dataloader_drop_last false" in message
    )


def test_no_eval_set_needs_no_batch(tmp_dir):
    require_an_eval_batch(None, tiny_training_args(tmp_dir, dataloader_drop_last=True))


def test_the_vits_trainer_refuses_it_before_training(tiny_demo, tokenizer, tmp_dir):
    args = tiny_training_args(tmp_dir, per_device_eval_batch_size=4, dataloader_drop_last=True)
    with pytest.raises(UsageError, match="the evaluation set has 3 clips"):
        VitsTrainer(
            tiny_model(tokenizer),
            args,
            train_dataset=tiny_demo,
            eval_dataset=tiny_demo.select(range(3)),
            processing_class=tokenizer,
        )
    VitsTrainer(
        tiny_model(tokenizer),
        args,
        train_dataset=tiny_demo,
        eval_dataset=tiny_demo.select(range(4)),
        processing_class=tokenizer,
    )
