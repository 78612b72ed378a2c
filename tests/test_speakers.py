"""Choosing one voice from a multi-speaker dataset, and adding speaker embeddings to a single-speaker VITS model."""

import json
import logging
import os
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from transformers import VitsModel, pipeline, set_seed

from kurdish_tts.data import (
    PreparedData,
    SpeakerStats,
    build_speaker_to_id,
    filter_speakers,
    format_speaker_table,
    load_speaker_map,
    save_speaker_map,
    select_speaker,
    speaker_table,
)
from kurdish_tts.data.collators import DataCollatorForVits
from kurdish_tts.models.vits import add_speaker_embeddings, speaker_conditioning_keys

from .testing_utils import tiny_model

# Common Voice client ids are 128 hex characters.
LONG_IDS = [f"{index:02x}" * 64 for index in range(7)]


def corpus(speakers: list[str], durations: list[float]) -> Dataset:
    return Dataset.from_dict(
        {
            "id": [f"clip_{i}" for i in range(len(speakers))],
            "speaker": speakers,
            "duration": durations,
            "num_samples": [int(d * 16000) for d in durations],
        }
    )


@pytest.fixture
def crowd():
    # Seven long-id speakers with 1..7 clips of 2 s each: speaker k has k+1 clips, so the last one has the most hours.
    speakers = [speaker for k, speaker in enumerate(LONG_IDS) for _ in range(k + 1)]
    return corpus(speakers, [2.0] * len(speakers))


class TestSpeakerTable:
    def test_sorted_by_hours_with_clip_counts(self, crowd):
        table = speaker_table(crowd)
        assert [s.speaker for s in table] == LONG_IDS[::-1]
        assert [s.clips for s in table] == [7, 6, 5, 4, 3, 2, 1]
        assert table[0].hours == pytest.approx(14 / 3600)

    def test_ties_broken_by_id_and_selected_rows_respected(self):
        data = corpus(["b", "a", "c", "a"], [1.0, 1.0, 0.5, 0.5])
        assert speaker_table(data) == [
            SpeakerStats("a", 2, pytest.approx(1.5 / 3600)),
            SpeakerStats("b", 1, pytest.approx(1 / 3600)),
            SpeakerStats("c", 1, pytest.approx(0.5 / 3600)),
        ]
        assert [s.speaker for s in speaker_table(data.select([0, 2], keep_in_memory=True))] == ["b", "c"]
        assert speaker_table(data.select([])) == []

    def test_shuffled_and_selected_views(self, crowd):
        shuffled = crowd.shuffle(seed=0)
        assert speaker_table(shuffled) == speaker_table(crowd)
        selected, _ = select_speaker(shuffled.select(range(20), keep_in_memory=True), LONG_IDS[5])
        expected = [i for i, s in zip(shuffled["id"][:20], shuffled["speaker"][:20]) if s == LONG_IDS[5]]
        assert selected["id"] == expected and 0 < len(expected) < 6
        assert speaker_table(PreparedData(shuffled, shuffled, Path("."), {}, False)) == speaker_table(crowd)

    def test_real_prepared_clips(self, tiny_demo):
        table = speaker_table(tiny_demo)
        assert sum(s.clips for s in table) == len(tiny_demo) == 6
        assert {s.speaker for s in table} == {"espeak_ku_m1", "espeak_ku_f2", "espeak_ku_m3", "espeak_ku_f4"}
        for stats in table:
            seconds = sum(d for d, s in zip(tiny_demo["duration"], tiny_demo["speaker"]) if s == stats.speaker)
            assert stats.hours == pytest.approx(seconds / 3600, rel=1e-6)
        assert [s.hours for s in table] == sorted((s.hours for s in table), reverse=True)

    def test_needs_the_prepared_columns(self):
        with pytest.raises(ValueError, match="'duration'.*prepare_dataset"):
            speaker_table(Dataset.from_dict({"speaker": ["a"]}))

    def test_format_shortens_long_ids_and_counts_the_rest(self, crowd):
        text = format_speaker_table(speaker_table(crowd), limit=2)
        assert LONG_IDS[6][:12] + "…" in text and LONG_IDS[6] not in text
        assert "5 more" in text and len(text.splitlines()) == 3


class TestSelectSpeaker:
    def test_by_id_and_by_most_hours(self, crowd):
        selected, stats = select_speaker(crowd, LONG_IDS[2])
        assert stats.clips == 3 and len(selected) == 3 and set(selected["speaker"]) == {LONG_IDS[2]}
        assert selected.column_names == crowd.column_names
        selected, stats = select_speaker(crowd, "most_hours")
        assert stats.speaker == LONG_IDS[6] and len(selected) == 7

    def test_unique_prefix_of_a_long_id(self, crowd):
        selected, stats = select_speaker(crowd, LONG_IDS[3][:12])
        assert stats.speaker == LONG_IDS[3] and len(selected) == 4
        with pytest.raises(ValueError, match="not in the dataset"):
            select_speaker(crowd, LONG_IDS[3][:4])  # too short to be taken as a prefix

    def test_unknown_id_names_the_five_largest_speakers_and_how_to_list_all(self, crowd):
        with pytest.raises(ValueError) as error:
            select_speaker(crowd, "no_such_speaker")
        message = str(error.value)
        assert "'no_such_speaker' is not in the dataset" in message and "of 7" in message
        for speaker in LONG_IDS[6:1:-1]:
            assert speaker[:12] + "…" in message
        assert LONG_IDS[1][:12] not in message and LONG_IDS[0][:12] not in message
        assert not any(speaker in message for speaker in LONG_IDS)  # shortened, not 128 characters each
        assert "speaker_table" in message and "most_hours" in message

    def test_real_prepared_clips(self, tiny_demo):
        selected, stats = select_speaker(tiny_demo, "espeak_ku_f2")
        assert len(selected) == stats.clips == 2
        assert selected["id"] == [i for i, s in zip(tiny_demo["id"], tiny_demo["speaker"]) if s == "espeak_ku_f2"]

    def test_empty_dataset(self):
        with pytest.raises(ValueError, match="no clips"):
            select_speaker(corpus([], []), "most_hours")


class TestSpeakerMap:
    def test_deterministic_ids_whatever_the_row_order(self, crowd):
        speaker_to_id = build_speaker_to_id(crowd)
        assert speaker_to_id == {speaker: index for index, speaker in enumerate(LONG_IDS[::-1])}
        assert build_speaker_to_id(crowd.shuffle(seed=1)) == speaker_to_id
        assert build_speaker_to_id(corpus(["b", "a", "c"], [1.0, 1.0, 2.0])) == {"c": 0, "a": 1, "b": 2}

    def test_min_clips_and_filter_counts(self, crowd, caplog):
        speaker_to_id = build_speaker_to_id(crowd, min_clips=3)
        assert list(speaker_to_id) == LONG_IDS[:1:-1][:5] and list(speaker_to_id.values()) == [0, 1, 2, 3, 4]
        with caplog.at_level(logging.WARNING, logger="kurdish_tts.data.speakers"):
            kept, dropped = filter_speakers(crowd, speaker_to_id)
        assert dropped == 3 and len(kept) == len(crowd) - 3
        assert set(kept["speaker"]) == set(speaker_to_id)
        assert "Dropped 3 of 28 clips" in caplog.text and "from 2 speakers" in caplog.text
        with pytest.raises(ValueError, match="no speaker has 8 or more clips"):
            build_speaker_to_id(crowd, min_clips=8)

    def test_filter_without_drops_returns_the_dataset(self, crowd, caplog):
        with caplog.at_level(logging.WARNING, logger="kurdish_tts.data.speakers"):
            kept, dropped = filter_speakers(crowd, build_speaker_to_id(crowd))
        assert kept is crowd and dropped == 0 and not caplog.text

    def test_json_round_trip_with_hours(self, crowd, tmp_dir):
        speaker_to_id = build_speaker_to_id(crowd, min_clips=2)
        path = save_speaker_map(tmp_dir / "model", speaker_to_id, speaker_table(crowd))
        assert path == tmp_dir / "model" / "speakers.json" and os.listdir(tmp_dir / "model") == ["speakers.json"]
        assert load_speaker_map(tmp_dir / "model") == speaker_to_id
        assert list(load_speaker_map(path).values()) == list(range(6))
        content = json.loads(path.read_text(encoding="utf-8"))
        assert content["num_speakers"] == 6
        assert content["speakers"][0] == {"speaker": LONG_IDS[6], "id": 0, "clips": 7, "hours": round(14 / 3600, 6)}
        save_speaker_map(path, {"x": 0, "y": 1})  # overwrites in place, no table → no hours
        assert json.loads(path.read_text(encoding="utf-8"))["speakers"][1]["hours"] is None
        assert os.listdir(tmp_dir / "model") == ["speakers.json"]

    def test_rejects_gaps_in_ids(self, tmp_dir):
        with pytest.raises(ValueError, match="0..1"):
            save_speaker_map(tmp_dir, {"a": 0, "b": 2})
        with pytest.raises(FileNotFoundError):
            load_speaker_map(tmp_dir)


MODEL_INPUTS = ("input_ids", "attention_mask", "waveform", "mel", "mel_lengths", "speaker_id")


def speaker_batch(tiny_demo, model, speaker_to_id, indices=(0, 1, 2, 3)):
    collator = DataCollatorForVits(
        hop_length=model.mel_config.hop_length, min_frames=model.segment_frames, speaker_to_id=speaker_to_id
    )
    batch = collator([tiny_demo.with_format("numpy")[i] for i in indices])
    return {key: batch[key] for key in MODEL_INPUTS}


def conditioning_modules(vits):
    keys = [k for k in speaker_conditioning_keys(vits.config) if not k.startswith("embed_speaker")]
    return sorted(
        {k.split(".parametrizations.")[0] if ".parametrizations." in k else k.rsplit(".", 1)[0] for k in keys}
    )


class TestAddSpeakerEmbeddings:
    def test_new_layers_are_the_conditioning_layers_and_start_at_zero(self, tokenizer):
        base = tiny_model(tokenizer)
        model = add_speaker_embeddings(base, 4, 8)
        config = model.vits.config
        assert (config.num_speakers, config.speaker_embedding_size) == (4, 8)
        assert (base.config.num_speakers, base.config.speaker_embedding_size) == (1, 0)  # base untouched
        modules = conditioning_modules(model.vits)
        assert modules == [
            "decoder.cond",
            "duration_predictor.cond",
            "flow.flows.0.wavenet.cond_layer",
            "flow.flows.1.wavenet.cond_layer",
            "posterior_encoder.wavenet.cond_layer",
        ]
        for path in modules:
            module = model.vits.get_submodule(path)
            assert not module.weight.any() and not module.bias.any(), path
        table = model.vits.embed_speaker.weight
        assert table.shape == (4, 8) and 0.5 < table.std().item() < 1.5
        base_state = base.vits.state_dict()
        for key, tensor in model.vits.state_dict().items():
            if key in base_state:
                assert torch.equal(tensor, base_state[key]), key
        assert model.discriminator is base.discriminator and model.mel_config == base.mel_config

    @pytest.mark.parametrize("as_vits_model", [False, True])
    def test_inference_output_is_the_base_models_for_every_speaker(self, tokenizer, as_vits_model):
        wrapped = tiny_model(tokenizer)
        base = wrapped.vits.eval()
        model = add_speaker_embeddings(base, 5, 8) if as_vits_model else add_speaker_embeddings(wrapped, 5, 8).vits
        assert isinstance(model, VitsModel) and model is not base
        model.eval()
        inputs = tokenizer(["Roj baş, hevalno.", "Ez ji pisîkan hez dikim."], return_tensors="pt", padding=True)
        for seed, speaker_id in [(0, 0), (1, 2), (2, 4)]:
            set_seed(seed)
            expected = base(**inputs).waveform
            set_seed(seed)
            actual = model(**inputs, speaker_id=speaker_id).waveform
            assert torch.equal(actual, expected), speaker_id

    def test_training_forward_equals_the_base_and_gradients_reach_the_new_layers(self, tiny_demo, tokenizer):
        base = tiny_model(tokenizer)
        speaker_to_id = build_speaker_to_id(tiny_demo)
        model = add_speaker_embeddings(base, len(speaker_to_id), 8)
        batch = speaker_batch(tiny_demo, model, speaker_to_id)
        assert batch["speaker_id"].unique().numel() == 4

        set_seed(5)
        expected = base(**{k: v for k, v in batch.items() if k != "speaker_id"})
        set_seed(5)
        output = model(**batch)
        for name in ("mel_loss", "kl_loss", "duration_loss", "adversarial_loss", "feature_matching_loss"):
            assert torch.equal(output[name], expected[name]), name

        def backward(output):
            model.zero_grad(set_to_none=True)
            total = sum(output[n] for n in ("mel_loss", "kl_loss", "duration_loss", "adversarial_loss"))
            (total + output.feature_matching_loss).backward()
            return {n: p.grad for n, p in model.vits.named_parameters()}

        gradients = backward(output)
        conditioning = [k for k in speaker_conditioning_keys(model.config) if k != "embed_speaker.weight"]
        for key in conditioning:
            assert gradients[key] is not None and torch.isfinite(gradients[key]).all(), key
            if key.endswith("original1"):
                # The direction of a weight-normed layer is scaled by its zero magnitude in the first step.
                assert not gradients[key].any(), key
            else:
                assert gradients[key].any(), key
        # The embedding's gradient passes through the zero weights: exactly zero in the first step, non-zero after.
        assert not gradients["embed_speaker.weight"].any()

        with torch.no_grad():
            for parameter in model.vits.parameters():
                if parameter.grad is not None:
                    parameter -= 1e-2 * parameter.grad
        gradients = backward(model(**batch))
        assert all(gradients[key].any() for key in conditioning)
        assert gradients["embed_speaker.weight"].abs().sum(1).gt(0).all()  # every speaker is in the batch

    def test_saved_model_loads_with_stock_transformers_and_the_pipeline(self, tokenizer, tmp_dir):
        base = tiny_model(tokenizer)
        model = add_speaker_embeddings(base, 3, 8)
        model.save_pretrained(tmp_dir / "multi", tokenizer=tokenizer)
        base.save_pretrained(tmp_dir / "base", tokenizer=tokenizer)
        stock = VitsModel.from_pretrained(tmp_dir / "multi")
        assert stock.config.num_speakers == 3 and stock.config.speaker_embedding_size == 8
        for name, tensor in model.vits.state_dict().items():
            assert torch.equal(stock.state_dict()[name], tensor), name

        multi = pipeline("text-to-speech", model=str(tmp_dir / "multi"))
        single = pipeline("text-to-speech", model=str(tmp_dir / "base"))
        set_seed(0)
        expected = single("Roj baş, hevalno.")["audio"]
        for speaker_id in range(3):
            set_seed(0)
            speech = multi("Roj baş, hevalno.", forward_params={"speaker_id": speaker_id})
            assert speech["sampling_rate"] == 16000 and (speech["audio"] == expected).all()
        with pytest.raises(ValueError, match="range 0-2"):
            multi("Roj baş.", forward_params={"speaker_id": 3})

    def test_growing_keeps_trained_speakers(self, tokenizer):
        model = add_speaker_embeddings(tiny_model(tokenizer), 3, 8).vits.eval()
        with torch.no_grad():  # stand-in for training: conditioning layers no longer zero
            for key in speaker_conditioning_keys(model.config):
                model.state_dict()[key].add_(0.1 * torch.randn_like(model.state_dict()[key]))
        grown = add_speaker_embeddings(model, 5)
        assert grown.config.num_speakers == 5 and grown.config.speaker_embedding_size == 8
        state = grown.state_dict()
        for key, tensor in model.state_dict().items():
            if key != "embed_speaker.weight":
                assert torch.equal(state[key], tensor), key
        assert torch.equal(state["embed_speaker.weight"][:3], model.embed_speaker.weight)
        assert torch.isfinite(state["embed_speaker.weight"][3:]).all()
        assert not torch.equal(state["embed_speaker.weight"][3], state["embed_speaker.weight"][4])
        inputs = tokenizer("Roj baş, hevalno.", return_tensors="pt")
        for speaker_id in range(3):
            set_seed(0)
            expected = model(**inputs, speaker_id=speaker_id).waveform
            set_seed(0)
            assert torch.equal(grown(**inputs, speaker_id=speaker_id).waveform, expected)

        same = add_speaker_embeddings(model, 3)
        assert all(torch.equal(same.state_dict()[k], t) for k, t in model.state_dict().items())
        with pytest.raises(ValueError, match="cannot shrink"):
            add_speaker_embeddings(model, 2)
        with pytest.raises(ValueError, match="cannot change to 16"):
            add_speaker_embeddings(model, 6, 16)

    def test_keeps_dtype_mode_and_frozen_parameters(self, tokenizer):
        base = tiny_model(tokenizer).double().eval()
        base.vits.text_encoder.requires_grad_(False)
        base.vits.speaking_rate = 0.8
        model = add_speaker_embeddings(base, 2)
        assert model.config.speaker_embedding_size == 256
        assert all(p.dtype == torch.float64 for p in model.vits.parameters())
        assert not model.training and not model.vits.training
        assert not any(p.requires_grad for p in model.vits.text_encoder.parameters())
        assert model.vits.embed_speaker.weight.requires_grad and model.vits.decoder.cond.weight.requires_grad
        assert model.vits.speaking_rate == 0.8

    def test_rejects_one_speaker_and_other_types(self, tokenizer):
        with pytest.raises(ValueError, match="select_speaker"):
            add_speaker_embeddings(tiny_model(tokenizer), 1)
        with pytest.raises(TypeError):
            add_speaker_embeddings(torch.nn.Linear(2, 2), 4)
