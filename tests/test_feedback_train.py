"""`train_feedback.py train`: a promotion when the feedback helps, a refusal when it makes the held-out original
sentences worse, a rollback that restores the previous model byte for byte, and the argument checks.

The previous run is a real `train_vits.py` run of the tiny model on a small synthetic corpus in which every clip has
the same pitch (different noise): 30 steps teach the model that voice well enough for 3 clips of loud white noise to
make it measurably worse (+50 % `loss/mel` on the held-out clips), while 3 more clips of the voice make it better.
"""

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from kurdish_tts.audio.io import to_int16
from kurdish_tts.cli import train_feedback, train_vits
from kurdish_tts.feedback import FeedbackInput, FeedbackStore, ModelVersions, VersionConflict

from .testing_utils import speech_like

SENTENCES = ["Roj baş.", "Şev baş.", "Ez têm.", "Tu çûyî?", "Ew hat.", "Av sar e.", "Dar mezin e.", "Bajar xweş e."]


def voice(seed: int) -> np.ndarray:
    # `speech_like` takes its pitch from the seed (110 + 40 * seed % 90 Hz): multiples of 9 all speak at 110 Hz.
    return speech_like(0.6, 16000, seed=9 * seed)


def tree_hashes(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(Path(folder).rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module")
def previous_run(tmp_path_factory):
    """`runs/run`: a finished tiny-model run (best model, held-out split, summary with its arguments)."""
    root = tmp_path_factory.mktemp("previous")
    corpus = root / "corpus"
    (corpus / "wavs").mkdir(parents=True)
    for index in range(40):
        sf.write(corpus / "wavs" / f"v{index:03d}.wav", to_int16(voice(index)), 16000, subtype="PCM_16")
    lines = [f"v{index:03d}|{SENTENCES[index % len(SENTENCES)]}" for index in range(40)]
    (corpus / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    flags = {
        "data": corpus, "model_size": "tiny", "output_dir": root / "runs" / "run", "cache_dir": root / "cache",
        "min_duration": 0.3, "eval_samples": 4, "per_device_train_batch_size": 4, "per_device_eval_batch_size": 4,
        "max_steps": 30, "learning_rate": 2e-3, "segment_frames": 8, "eval_strategy": "steps", "eval_steps": 15,
        "save_strategy": "no", "logging_steps": 10, "report_to": "none", "dataloader_num_workers": 0,
        "disable_tqdm": "true", "seed": 42,
        # 30 steps of a tiny model make no usable audio; these tests are about the loop, not the voice.
        "best_model_health_check": "false",
    }  # fmt: skip
    assert train_vits.main([item for key, value in flags.items() for item in (f"--{key}", str(value))]) == 0
    return root / "runs"


def make_store(folder: Path, tokenizer, kind: str) -> FeedbackStore:
    """Three corrections: more clips of the voice (`good`), or loud white noise with the same texts (`harmful`)."""
    rng = np.random.default_rng(0)
    inputs = []
    for index, text in enumerate(SENTENCES[:3]):
        if kind == "good":
            waveform = voice(100 + index)
        else:
            waveform = np.clip(0.5 * rng.standard_normal(9600), -0.9, 0.9).astype(np.float32)
        path = folder / "recordings" / f"{index}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, waveform, 16000)
        inputs.append(FeedbackInput(path, text))
    store = FeedbackStore(folder / "store")
    result = store.add_many(inputs, tokenizer=tokenizer)
    assert len(result.added) == 3, result.rejected
    return store


def train(store: FeedbackStore, runs_dir: Path, **overrides) -> int:
    values = {
        "store": store.root, "runs_dir": runs_dir, "max_steps": 8, "eval_steps": 8, "learning_rate": 2e-3,
        "segment_frames": 8, "per_device_train_batch_size": 4, "per_device_eval_batch_size": 4, "logging_steps": 4,
        "report_to": "none", "dataloader_num_workers": 0, "disable_tqdm": "true", "require_healthy_audio": "false",
    }  # fmt: skip
    values.update(overrides)
    return train_feedback.main(
        ["train", *[item for key, value in values.items() for item in (f"--{key}", str(value))]]
    )


def read_report(store: FeedbackStore) -> dict:
    (path,) = (store.root / "runs").glob("*/report.json")
    return json.loads(path.read_text(encoding="utf-8"))


def test_helpful_feedback_is_promoted_and_rollback_restores_the_previous_model(
    previous_run, tmp_dir, tokenizer, capsys
):
    store = make_store(tmp_dir, tokenizer, "good")
    original = tree_hashes(previous_run / "run" / "best_model")

    assert train(store, previous_run, replay_ratio=2) == 0
    assert "promoted as v0002" in capsys.readouterr().out
    report = read_report(store)
    regression, feedback = report["regression"], report["feedback"]
    assert report["decision"] == "promoted" and report["new_version"] == "v0002" and report["current"] == "v0002"
    assert regression["after"]["loss/mel"] < regression["before"]["loss/mel"]
    assert feedback["after"]["loss/mel"] < feedback["before"]["loss/mel"]
    assert regression["clips"] == 4 and regression["run_dir"] == str(previous_run / "run")
    assert report["items"]["used"] == 3 and report["items"]["skipped"] == []
    assert report["replay"] == {"ratio": 2.0, "clips": 6, "pool": 36}
    assert report["training"]["steps"] == 8
    assert (store.root / "runs" / Path(report["output_dir"]).name / "report.md").read_text().startswith("# Feedback")

    versions = ModelVersions(store)
    assert versions.names() == ["v0001", "v0002"] and versions.current() == "v0002"
    # v0001 is the run's best model as it was; the current model is a stock VitsModel folder.
    assert tree_hashes(versions.path("v0001")) == original
    assert tree_hashes(store.root / "models" / "current") != original
    from transformers import VitsModel

    assert isinstance(VitsModel.from_pretrained(store.root / "models" / "current"), VitsModel)
    assert versions.record("v0002")["feedback_ids"] == [item["id"] for item in store.items()]

    assert train_feedback.main(["rollback", "--store", str(store.root)]) == 0
    assert "current model: v0001 (was v0002)" in capsys.readouterr().out
    assert versions.current() == "v0001"
    assert tree_hashes(store.root / "models" / "current") == original
    # Nothing before the first version; forward again by name.
    assert train_feedback.main(["rollback", "--store", str(store.root)]) == 1
    assert "nothing to roll back to" in capsys.readouterr().err
    assert train_feedback.main(["rollback", "--store", str(store.root), "--to", "v0002"]) == 0
    assert [event["event"] for event in versions.history()] == ["imported", "promoted", "rollback", "rollback"]


def test_harmful_feedback_is_refused_and_the_current_model_kept(previous_run, tmp_dir, tokenizer, capsys):
    store = make_store(tmp_dir, tokenizer, "harmful")
    original = tree_hashes(previous_run / "run" / "best_model")

    # Twice the helpful run's learning rate and steps, no replay: the noise must hurt clearly, not by a few percent.
    assert train(store, previous_run, replay_ratio=0, learning_rate=4e-3, max_steps=16, eval_steps=16) == 1
    out = capsys.readouterr().out
    assert "not promoted" in out and "beyond the tolerance of +2.0%" in out
    report = read_report(store)
    regression = report["regression"]
    assert report["decision"] == "refused" and report["new_version"] is None and report["current"] == "v0001"
    assert regression["after"]["loss/mel"] > 1.1 * regression["before"]["loss/mel"]
    assert "v0001 stays the current model" in report["reason"]
    versions = ModelVersions(store)
    assert versions.names() == ["v0001"] and tree_hashes(store.root / "models" / "current") == original
    assert versions.history()[-1]["event"] == "refused"
    # The candidate stays in the run folder, for a listen.
    assert (Path(report["candidate"]) / "model.safetensors").is_file()


def test_train_argument_errors(previous_run, tmp_dir, tokenizer, capsys):
    empty = FeedbackStore(tmp_dir / "empty")
    assert train(empty, previous_run) == 1
    assert "holds no feedback items" in capsys.readouterr().err
    assert not (empty.root / "models").exists()

    store = make_store(tmp_dir, tokenizer, "good")
    assert train(store, tmp_dir / "no_runs") == 2
    assert "nothing to start from" in capsys.readouterr().err
    assert train(store, previous_run, replay_ratio=-1) == 2
    assert "--replay_ratio must be >= 0" in capsys.readouterr().err
    assert train(store, previous_run, regression_metric="loss/nope") == 2
    assert train(store, previous_run, model_dir=tmp_dir) == 2
    assert "not a model folder" in capsys.readouterr().err
    recipe = tmp_dir / "bad.yaml"
    recipe.write_text("replay_ratio: 2\nreplay_ration: 3\n")
    assert train(store, previous_run, recipe=recipe) == 2
    assert "replay_ration" in capsys.readouterr().err
    assert not (store.root / "models").exists()


def test_defaults_come_from_the_run_and_the_recipe(previous_run, tmp_dir, tokenizer):
    store = make_store(tmp_dir, tokenizer, "good")
    feedback_args, data_args, training_args, _, lineage = train_feedback.parse_train(
        ["--store", str(store.root), "--runs_dir", str(previous_run), "--recipe", "feedback_finetune", "--seed", "7"]
    )
    # The run's data (recorded in run_summary.json), the recipe, then the flags.
    assert Path(data_args.data) == previous_run.parent / "corpus"
    assert data_args.min_duration == 0.3
    assert feedback_args.target_minutes == 20 and training_args.fp16 and training_args.seed == 7
    assert training_args.learning_rate == 1e-5  # the feedback default; the recipe does not set it
    assert Path(training_args.output_dir).parent == store.root / "runs"
    assert lineage.version is None and lineage.model_dir == previous_run / "run" / "best_model"
    assert len(lineage.regression_ids) == 4


@pytest.mark.slow
def test_target_minutes_plans_the_run(previous_run, tmp_dir, tokenizer, capsys):
    store = make_store(tmp_dir, tokenizer, "good")
    code = train(store, previous_run, target_minutes=1.5, budget_probe_steps=4, budget_warmup_steps=1, max_steps=-1)
    assert code in (0, 1)
    report = read_report(store)
    assert report["training"]["steps"] > 0
    assert (Path(report["output_dir"]) / "plan.md").is_file()


def test_a_promotion_never_replaces_a_model_it_was_not_compared_with(tmp_dir):
    """A rollback (or another train) between the start of a run and its promotion makes the promotion fail whole."""
    models = []
    for index in range(3):
        folder = tmp_dir / f"model{index}"
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"index": index}))
        models.append(folder)
    versions = ModelVersions(FeedbackStore(tmp_dir / "store"))
    assert versions.add(models[0], {}, make_current=True, event="imported") == "v0001"
    assert versions.add(models[1], {}, make_current=True, event="promoted") == "v0002"
    assert versions.rollback() == ("v0002", "v0001")
    with pytest.raises(VersionConflict, match="changed from v0002 to v0001"):
        versions.add(models[2], {}, make_current=True, expected_current="v0002", check_current=True)
    assert versions.names() == ["v0001", "v0002"] and versions.current() == "v0001"
    assert sorted(path.name for path in versions.root.iterdir()) == [
        "current", "current.txt", "history.json", "v0001", "v0001.json", "v0002", "v0002.json"
    ]  # fmt: skip
    assert os.readlink(versions.root / "current") == "v0001"  # relative: the store can move


def test_a_model_whose_audio_is_broken_is_never_promoted(previous_run, tmp_dir, tokenizer, capsys):
    """The tiny model's regression-set audio fails the waveform-health checks, so even helpful feedback that keeps
    the regression metric in tolerance is refused, and the report says why."""
    store = make_store(tmp_dir, tokenizer, "good")
    assert train(store, previous_run, require_healthy_audio="true", regression_tolerance=10.0) == 1
    report = read_report(store)
    assert report["decision"] == "refused" and report["new_version"] is None and report["current"] == "v0001"
    assert "audio on the regression set is broken" in report["reason"]
