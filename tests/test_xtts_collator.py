"""`DataCollatorForXtts` and `ReferencePool` on six real demo clips (speakers m1 x2, f2 x2, m3 x1, f4 x1)."""

import logging
import math

import numpy as np
import pytest
import torch

from kurdish_tts.data.xtts_collator import DataCollatorForXtts, ReferencePool

PAD = math.log(1e-5)


@pytest.fixture(scope="module")
def rows(tiny_demo):
    return [tiny_demo.with_format("numpy")[i] for i in range(len(tiny_demo))]


@pytest.fixture
def pool(tiny_demo):
    return ReferencePool(tiny_demo)


def _mel(row):
    return np.asarray(row["mel"], dtype=np.float32)


class TestPadding:
    @pytest.mark.parametrize("reduction_factor, multiple, expected_multiple", [(1, None, 1), (2, None, 2), (2, 3, 6)])
    def test_shapes_lengths_and_pad_values(self, rows, pool, reduction_factor, multiple, expected_multiple):
        collator = DataCollatorForXtts(
            pool, reduction_factor=reduction_factor, pad_token_id=7, pad_to_multiple_of=multiple, training=False
        )
        batch = collator(rows[:3])
        frames = [int(r["num_frames"]) for r in rows[:3]]
        texts = [len(r["input_ids"]) for r in rows[:3]]
        mel = batch["mel"]
        assert mel.dtype == torch.float32 and mel.shape[0] == 3
        assert mel.shape[1] % expected_multiple == 0 and mel.shape[1] - max(frames) < expected_multiple
        assert batch["mel_lengths"].tolist() == frames
        assert batch["attention_mask"].sum(1).tolist() == texts
        if multiple:
            assert batch["input_ids"].shape[1] % multiple == 0
            assert batch["reference_mel"].shape[1] % multiple == 0
        for row, (n_frames, n_text) in enumerate(zip(frames, texts)):
            assert torch.equal(mel[row, :n_frames], torch.from_numpy(_mel(rows[row])))
            assert torch.all(mel[row, n_frames:] == PAD)
            assert torch.all(batch["input_ids"][row, n_text:] == 7)
            reference_length = int(batch["reference_mel_lengths"][row])
            assert torch.all(batch["reference_mel"][row, reference_length:] == PAD)

    def test_text_labels_are_the_next_tokens(self, rows, pool):
        batch = DataCollatorForXtts(pool, training=False)(rows[:2])
        for row in range(2):
            ids = rows[row]["input_ids"].tolist()
            labels = batch["text_labels"][row].tolist()
            assert labels[: len(ids) - 1] == ids[1:]
            assert all(label == -100 for label in labels[len(ids) - 1 :])

    def test_sample_ids_on_request_only(self, rows, pool):
        assert "sample_ids" not in DataCollatorForXtts(pool)(rows[:2])
        batch = DataCollatorForXtts(pool, return_sample_ids=True)(rows[:2])
        assert batch["sample_ids"] == [rows[0]["id"], rows[1]["id"]]


class TestReferences:
    def test_reference_is_the_other_clip_of_the_speaker(self, rows, pool):
        # Rows 0 and 4 are m1's two clips, rows 1 and 5 f2's: each is the other's reference.
        batch = DataCollatorForXtts(pool, reference_max_frames=10_000, training=False)(rows)
        for row, other in [(0, 4), (4, 0), (1, 5), (5, 1)]:
            length = int(batch["reference_mel_lengths"][row])
            assert torch.equal(batch["reference_mel"][row, :length], torch.from_numpy(_mel(rows[other])))

    def test_single_clip_speakers_use_their_own_clip_and_are_reported_once(self, tiny_demo, rows, caplog):
        with caplog.at_level(logging.WARNING, logger="kurdish_tts.data.xtts_collator"):
            pool = ReferencePool(tiny_demo)
        assert pool.single_clip_speakers == ["espeak_ku_f4", "espeak_ku_m3"]
        assert sum("single clip" in record.message for record in caplog.records) == 1
        collator = DataCollatorForXtts(pool, reference_max_frames=10_000)
        batch = collator(rows)
        for row in (2, 3):
            length = int(batch["reference_mel_lengths"][row])
            assert torch.equal(batch["reference_mel"][row, :length], torch.from_numpy(_mel(rows[row])))
        assert collator.self_references == 2

    def test_training_crops_vary_evaluation_crops_do_not(self, rows, pool):
        shortest = min(int(r["num_frames"]) for r in rows)
        limit = shortest // 2
        training = DataCollatorForXtts(pool, reference_max_frames=limit, training=True)
        evaluation = DataCollatorForXtts(pool, reference_max_frames=limit, training=False)
        torch.manual_seed(0)
        first, second = training(rows[:2]), training(rows[:2])
        assert first["reference_mel_lengths"].tolist() == [limit, limit]
        assert not torch.equal(first["reference_mel"], second["reference_mel"])
        assert torch.equal(evaluation(rows[:2])["reference_mel"], evaluation(rows[:2])["reference_mel"])
        # The evaluation crop is the middle of the other clip (row 4 for row 0).
        other = _mel(rows[4])
        start = (len(other) - limit) // 2
        assert torch.equal(evaluation(rows[:1])["reference_mel"][0], torch.from_numpy(other[start : start + limit]))

    def test_training_choice_follows_the_seed(self, rows, tiny_demo):
        # Evaluation clips draw from evaluation + training splits: two m1 candidates for row 0 here.
        pool = ReferencePool(tiny_demo, tiny_demo.select([4]))
        collator = DataCollatorForXtts(pool, reference_max_frames=10_000)
        torch.manual_seed(3)
        one = collator(rows[:1])["reference_mel"]
        torch.manual_seed(3)
        assert torch.equal(one, collator(rows[:1])["reference_mel"])

    def test_pool_without_mels_is_refused(self, tiny_demo):
        with pytest.raises(ValueError, match="lacks the column"):
            ReferencePool(tiny_demo.remove_columns("mel"))

    def test_bad_reduction_factor(self, pool):
        with pytest.raises(ValueError, match="reduction_factor"):
            DataCollatorForXtts(pool, reduction_factor=0)
