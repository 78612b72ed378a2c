"""Publishing: a real tiny training run with `--push_to_hub` against a local stand-in for the Hub, the push script
(retries, dry run, refused token), the model card's fields and licence, and the token never showing anywhere."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

from kurdish_tts.cli import push_to_hub as push_script
from kurdish_tts.cli import train_vits
from kurdish_tts.hub import (
    HubPushError,
    build_model_card,
    find_run_files,
    push_to_hub,
    resolve_license,
    take_hub_push,
)
from kurdish_tts.hub.card import RunFiles

from .fake_hub import FakeHub

REPO = Path(__file__).resolve().parents[1]
TOKEN = "hf_kurdishTtsTestToken0123456789abcdef"
MODEL_FILES = {"config.json", "model.safetensors", "vocab.json", "tokenizer_config.json", "added_tokens.json"}


def hub_env(hub: FakeHub, home: Path, token: str | None = TOKEN) -> dict:
    """The environment of a subprocess that talks to `hub`: online mode, its endpoint, a token only in HF_TOKEN."""
    env = {key: value for key, value in os.environ.items() if not key.endswith("_OFFLINE") and key != "HF_TOKEN"}
    env.update(HF_ENDPOINT=hub.url, HF_HOME=str(home), HF_HUB_DISABLE_TELEMETRY="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    if token is not None:
        env["HF_TOKEN"] = token
    return env


def files_holding(root: Path, secret: str) -> list[str]:
    return [str(path) for path in root.rglob("*") if path.is_file() and secret.encode() in path.read_bytes()]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """`scripts/train_vits.py` on the demo corpus, tiny model, 2 steps, best model by MCD, pushed to a fake Hub with
    the token given as `--hub_token` (the riskiest place: TrainingArguments get pickled into every checkpoint)."""
    root = tmp_path_factory.mktemp("hub_run")
    output = root / "run"
    flags = {
        "data": "demo", "model_size": "tiny", "output_dir": output, "cache_dir": root / "cache", "eval_samples": 4,
        "per_device_train_batch_size": 8, "per_device_eval_batch_size": 4, "max_steps": 2, "eval_strategy": "steps",
        "eval_steps": 2, "save_steps": 2, "logging_steps": 1, "report_to": "none", "dataloader_num_workers": 0,
        "disable_tqdm": "true", "synthesis_metrics": "mcd,duration", "synthesis_metrics_samples": 2,
        "metric_for_best_model": "mcd", "push_to_hub": "true", "hub_model_id": "tester/kmr-tiny", "hub_token": TOKEN,
        # Two steps of a tiny model make no usable audio; this run tests the push, not the voice.
        "best_model_health_check": "false",
    }  # fmt: skip
    argv = [item for key, value in flags.items() for item in (f"--{key}", str(value))]
    with FakeHub(TOKEN) as hub:
        result = subprocess.run(
            [sys.executable, str(REPO / "scripts" / "train_vits.py"), *argv],
            env=hub_env(hub, root / "hf_home", token=None), capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return output, result, hub


class TestTrainingWithPushToHub:
    def test_only_the_best_model_and_its_card_are_pushed_once_at_the_end(self, trained):
        output, result, hub = trained
        assert hub.unexpected == []
        assert list(hub.repos) == ["tester/kmr-tiny"] and len(hub.commits) == 1
        kinds = [
            request.path.rsplit("/", 2)[-2] if "/api/models/" in request.path else request.path
            for request in hub.requests
        ]
        assert kinds == ["/api/whoami-v2", "/api/repos/create", "/api/validate-yaml", "preupload", "commit"]
        assert all(request.authorized for request in hub.requests)
        committed = hub.commits[0].files
        assert set(committed) == MODEL_FILES | {"README.md", "sample.wav", "loss_curve.png"}
        assert committed["model.safetensors"] == (output / "best_model" / "model.safetensors").read_bytes()
        assert committed["sample.wav"] == (output / "sample.wav").read_bytes()
        assert "published  : " in result.stdout and "tester/kmr-tiny" in result.stdout

    def test_the_best_model_was_chosen_by_mcd(self, trained):
        output, _, _ = trained
        info = json.loads((output / "best_model" / "best_model.json").read_text())
        assert info["metric"] == "eval_mcd" and info["greater_is_better"] is False

    def test_the_token_never_appears_in_output_files_or_uploads(self, trained):
        output, result, hub = trained
        assert TOKEN not in result.stdout and TOKEN not in result.stderr
        assert files_holding(output, TOKEN) == []  # training_args.bin of every checkpoint included
        assert (output / "best_model" / "training_args.bin").is_file()
        assert not any(TOKEN.encode() in content for content in hub.commits[0].files.values())

    def test_the_model_card_has_every_field(self, trained):
        _, _, hub = trained
        text = hub.commits[0].files["README.md"].decode()
        card = ModelCard(text)
        assert card.data.language == "kmr" and card.data.pipeline_tag == "text-to-speech"
        assert card.data.library_name == "transformers"
        # Random initialization: no base model, the package's licence, and the data is local (no Hub dataset id).
        assert card.data.license == "apache-2.0" and card.data.base_model is None and card.data.datasets is None
        assert "trained from random initialization (`tiny` size)" in text
        assert (
            '<audio controls src="sample.wav"></audio>' in text
            and "![Training and evaluation losses](loss_curve.png)" in text
        )
        assert 'pipeline("text-to-speech", model="tester/kmr-tiny")' in text
        assert "no digits" in text and "from kurdish_tts.text import normalize_text" in text
        assert re.search(r"\| MCD \(dB\) \(`eval_mcd`\) \| \d+\.\d\d \|", text)
        assert "chosen by the lowest `eval_mcd`" in text and "on 4 held-out clips (the synthesis metrics on 2" in text
        assert "- Hardware: CPU (" in text and "- Steps: 2;" in text and "- Wall-clock time:" in text
        assert "demo corpus" in text and "## Licence" in text

    def test_the_usage_snippet_works_with_the_stock_pipeline(self, trained, tmp_dir, monkeypatch):
        output, _, hub = trained
        result = push_to_hub(output, "tester/kmr-tiny", dry_run=True, upload_dir=tmp_dir / "upload")
        snippet = re.search(r"```python\n(.*?)```", (result.folder / "README.md").read_text(), re.S).group(1)
        monkeypatch.chdir(tmp_dir)
        exec(snippet.replace('"tester/kmr-tiny"', repr(str(result.folder))), {})
        assert (tmp_dir / "speech.wav").stat().st_size > 100


class TestPushScript:
    def test_retries_after_injected_failures_and_uploads_the_dry_run_folder(self, trained, tmp_dir, capsys):
        output, _, _ = trained
        dry = tmp_dir / "dry"
        assert (
            push_script.main([str(output), "--repo_id", "tester/kmr-again", "--dry_run", "--upload_dir", str(dry)])
            == 0
        )
        assert "nothing was uploaded" in capsys.readouterr().out
        assert sorted(path.name for path in dry.iterdir()) == sorted(
            MODEL_FILES | {"README.md", "sample.wav", "loss_curve.png"}
        )

        with FakeHub(TOKEN, failures={"create": 1, "commit": 1}) as hub:
            result = subprocess.run(
                [sys.executable, str(REPO / "scripts" / "push_to_hub.py"), str(output), "--repo_id", "tester/kmr-again",
                 "--private", "true", "--retry_wait", "0.05"],
                env=hub_env(hub, tmp_dir / "hf_home"), capture_output=True, text=True, timeout=120,
            )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        statuses = [(request.path, request.status) for request in hub.requests if request.path == "/api/repos/create"]
        assert statuses == [("/api/repos/create", 503), ("/api/repos/create", 200)]
        assert "creating tester/kmr-again failed" in result.stderr and "retrying in 0.05 s" in result.stderr
        assert [request.status for request in hub.requests if request.path.endswith("/commit/main")] == [503, 200]
        assert hub.repos == {"tester/kmr-again": {"visibility": "private"}}
        # The dry run's folder is exactly what was committed.
        assert hub.commits[0].files == {path.name: path.read_bytes() for path in dry.iterdir()}
        assert TOKEN not in result.stdout + result.stderr and all(
            request.has_authorization for request in hub.requests
        )

    def test_a_refused_token_fails_fast_without_retrying(self, trained, tmp_dir):
        output, _, _ = trained
        wrong = "hf_wrongTokenForTheFakeHub000000000000"
        with FakeHub(TOKEN) as hub:
            result = subprocess.run(
                [sys.executable, str(REPO / "scripts" / "push_to_hub.py"), str(output), "--repo_id", "tester/x"],
                env=hub_env(hub, tmp_dir / "hf_home", token=wrong), capture_output=True, text=True, timeout=120,
            )  # fmt: skip
        assert result.returncode == 1
        assert "refused the token (HTTP 401" in result.stderr and "hf auth login" in result.stderr
        assert [request.path for request in hub.requests] == ["/api/whoami-v2"] and hub.commits == []
        assert wrong not in result.stdout + result.stderr

    def test_no_token_is_a_usage_error(self, trained, monkeypatch, capsys):
        monkeypatch.delenv("HF_TOKEN", raising=False)
        assert push_script.main([str(trained[0]), "--repo_id", "tester/x"]) == 2
        assert "hf auth login" in capsys.readouterr().err

    def test_bad_arguments(self, trained, tmp_dir, capsys):
        assert push_script.main([str(trained[0]), "--repo_id", "not a repo id!", "--dry_run"]) == 2
        assert "not a Hub repository id" in capsys.readouterr().err
        assert push_script.main([str(tmp_dir), "--repo_id", "tester/x", "--dry_run"]) == 2
        assert "holds no model" in capsys.readouterr().err
        occupied = tmp_dir / "occupied"
        occupied.mkdir()
        (occupied / "keep.txt").write_text("mine")
        argv = [str(trained[0]), "--repo_id", "tester/x", "--dry_run", "--upload_dir", str(occupied)]
        assert push_script.main(argv) == 2 and (occupied / "keep.txt").is_file()
        assert "is not empty" in capsys.readouterr().err


class TestStaging:
    def test_private_files_stay_home_and_the_discriminator_is_optional(self, trained, tmp_dir):
        output, _, _ = trained
        without = push_to_hub(output, "tester/a", dry_run=True, upload_dir=tmp_dir / "a")
        with_discriminator = push_to_hub(
            output, "tester/a", dry_run=True, upload_dir=tmp_dir / "b", include_discriminator=True
        )
        assert set(with_discriminator.files) - set(without.files) == {
            "discriminator.safetensors",
            "discriminator_config.json",
            "training_config.json",
        }
        for name in ("training_args.bin", "best_model.json", "trainer_state.json", "run_summary.json"):
            assert name not in with_discriminator.files

    def test_a_file_holding_the_token_is_never_sent(self, trained, tmp_dir):
        model = tmp_dir / "model"
        shutil.copytree(trained[0] / "best_model", model)
        config = json.loads((model / "config.json").read_text())
        (model / "config.json").write_text(json.dumps({**config, "note": f"token {TOKEN}"}))
        with pytest.raises(HubPushError, match=r"config\.json contain\(s\) your Hugging Face token") as caught:
            # Nobody listens on port 9: reaching the network would fail differently.
            push_to_hub(model, "tester/x", token=TOKEN, endpoint="http://127.0.0.1:9", max_retries=0)
        assert TOKEN not in str(caught.value)

    def test_a_dry_run_leaves_no_file_holding_the_token(self, trained, tmp_dir):
        """The dry run refuses as the upload would, and the staged folder never appears (issue 18)."""
        model = tmp_dir / "model"
        shutil.copytree(trained[0] / "best_model", model)
        config = json.loads((model / "config.json").read_text())
        (model / "config.json").write_text(json.dumps({**config, "note": f"token {TOKEN}"}))
        with pytest.raises(HubPushError, match=r"config\.json contain\(s\) your Hugging Face token"):
            push_to_hub(model, "tester/x", token=TOKEN, dry_run=True)
        with pytest.raises(HubPushError):
            push_to_hub(model, "tester/x", token=TOKEN, dry_run=True, upload_dir=tmp_dir / "upload")
        assert files_holding(tmp_dir, TOKEN) == [str(model / "config.json")]
        assert not (tmp_dir / "hub_upload").exists() and not (tmp_dir / "upload").exists()

    def test_the_trainers_own_push_is_replaced_and_the_token_taken_out_of_the_arguments(self, tmp_dir):
        from kurdish_tts.trainers import VitsTrainingArguments

        args = VitsTrainingArguments(
            str(tmp_dir / "kmr-run"), push_to_hub=True, hub_token=TOKEN, hub_private_repo=True, report_to="none"
        )
        request = take_hub_push(args)
        assert (request.repo_id, request.private, request.token) == ("kmr-run", True, TOKEN)
        assert args.push_to_hub is False and args.hub_token is None and TOKEN not in repr(request)
        assert take_hub_push(args) is None

    def test_the_training_script_checks_the_repository_id_first(self, tmp_dir, capsys):
        argv = ["--recipe", "demo", "--output_dir", str(tmp_dir), "--push_to_hub", "true", "--hub_model_id", "a/b/c"]
        assert train_vits.main(argv) == 2
        assert "--hub_model_id" in capsys.readouterr().err
        argv = ["--recipe", "demo", "--output_dir", str(tmp_dir), "--metric_for_best_model", "f0_rmse_hz"]
        assert train_vits.main(argv) == 2
        assert "add its group to --synthesis_metrics" in capsys.readouterr().err

    def test_lower_is_better_synthesis_metrics_select_the_lowest(self, tmp_dir):
        *_, training_args = train_vits.parse(
            ["--recipe", "demo", "--output_dir", str(tmp_dir), "--metric_for_best_model", "mcd"]
        )
        assert training_args.greater_is_better is False
        argv = [
            "--recipe",
            "demo",
            "--output_dir",
            str(tmp_dir),
            "--metric_for_best_model",
            "mcd",
            "--greater_is_better",
            "true",
        ]
        assert train_vits.parse(argv)[-1].greater_is_better is True  # said explicitly: kept


def run_files(tmp_dir: Path, trained_output: Path, **summary) -> RunFiles:
    """A copy of the trained run's files with `run_summary.json` amended."""
    run = tmp_dir / "run"
    shutil.copytree(trained_output, run, ignore=shutil.ignore_patterns("checkpoint-*", "runs", "samples"))
    values = json.loads((run / "run_summary.json").read_text())
    for key, value in summary.items():
        values[key] = value if value is not None else values.pop(key, None)
    (run / "run_summary.json").write_text(json.dumps(values))
    return find_run_files(run)


class TestModelCard:
    def test_an_mms_fine_tune_is_non_commercial(self, trained, tmp_dir):
        mms = "facebook/mms-tts-kmr-script_latin"
        run = run_files(tmp_dir, trained[0], arguments={"model": {"model_name_or_path": mms, "model_size": None},
                                                        "data": {"data": "amedcj/kurmanji-commonvoice"}})  # fmt: skip
        card = build_model_card(run, "tester/mms-kmr")
        assert card.data.license == "cc-by-nc-4.0" and card.data.base_model == mms
        assert card.data.datasets == ["amedcj/kurmanji-commonvoice"] and "mms" in card.data.tags
        assert "**Non-commercial.**" in card.text and "CC-BY-NC-4.0" in card.text

    def test_a_local_base_is_followed_to_its_hub_origin(self, trained, tmp_dir):
        base = tmp_dir / "earlier_run" / "best_model"
        base.mkdir(parents=True)
        (base / "README.md").write_text(
            "---\nbase_model: facebook/mms-tts-kmr-script_latin\nlicense: cc-by-nc-4.0\n---\n"
        )
        run = run_files(tmp_dir, trained[0], arguments={"model": {"model_name_or_path": str(base)}, "data": {}})
        assert resolve_license(run, build_model_card(run, "t/x").data.base_model)[0] == "cc-by-nc-4.0"

    def test_an_unknown_base_asks_for_a_licence_and_an_override_wins(self, trained, tmp_dir):
        run = run_files(tmp_dir, trained[0], arguments={"model": {"model_name_or_path": "someone/vits-x"}, "data": {}})
        assert build_model_card(run, "t/x").data.license == "other"
        assert "--license" in build_model_card(run, "t/x").text
        assert build_model_card(run, "t/x", license="mit").data.license == "mit"

    def test_budget_and_evaluation_report_are_rendered(self, trained, tmp_dir):
        budget = {"target_seconds": 34200, "actual_seconds": 33900, "deviation": -0.0088, "planned_steps": 42000,
                  "stopped_early": False}  # fmt: skip
        run_dir = run_files(tmp_dir, trained[0], budget=budget).run_dir
        report = {"data": {"source": "demo", "clips": 8, "held_out": True},
                  "models": [{"name": str(run_dir / "best_model"), "device": "cuda (NVIDIA H100 80GB HBM3)",
                              "num_items": 8, "metrics": {"mcd": 6.25, "rtf": 0.004}, "failures": 0}]}  # fmt: skip
        (run_dir / "evaluation").mkdir()
        (run_dir / "evaluation" / "evaluation.json").write_text(json.dumps(report))
        text = build_model_card(find_run_files(run_dir), "t/x").text
        assert "- Budget: 9.50 h planned, 9.42 h used (-0.9%), 42000 steps planned" in text
        assert "Scored with `scripts/evaluate.py` on 8 clips of `demo` held out from training." in text
        assert "| `this model` | 8 | 6.25 | 0.004 | cuda (NVIDIA H100 80GB HBM3) |" in text
