"""`scripts/doctor.py` end to end on the CPU: a healthy setup exits 0 with its JSON report; a stale cache and a
NaN-producing learning rate exit 1; bad arguments exit 2."""

import dataclasses
import json

import pytest

from kurdish_tts.cli import doctor
from kurdish_tts.data import DataArguments, PreprocessConfig
from kurdish_tts.doctor import DoctorArguments

from .doctor_testing import demo_subset, plant_stale_cache
from .testing_utils import tiny_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return demo_subset(tmp_path_factory.mktemp("doctor_script_corpus"), 6)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("doctor_script_cache")


def flags(corpus, cache_dir, output_dir, **overrides):
    """The tiny model on six demo clips of one voice, probes cut short, quiet."""
    values = {
        "data": corpus,
        "model_size": "tiny",
        "cache_dir": cache_dir,
        "output_dir": output_dir,
        "eval_samples": 1,
        "per_device_train_batch_size": 2,
        "training_probe_steps": 8,
        "throughput_probe_steps": 2,
        "throughput_warmup_steps": 1,
        "dataloader_num_workers": 0,
        "report_to": "none",
        "seed": 0,
    }
    values.update(overrides)
    return [item for key, value in values.items() for item in (f"--{key}", str(value))]


def _checks(report):
    return {f"{check['section']}: {check['name']}": check for check in report["checks"]}


def test_healthy_setup_passes(corpus, cache_dir, tmp_dir, capsys):
    run = tmp_dir / "run"
    # A finished run's report is there already: the doctor must leave it alone and write into its own folder.
    (run / "data_report").mkdir(parents=True)
    (run / "data_report" / "report.md").write_text("the finished run's report")
    output = run / "doctor"
    assert doctor.main(flags(corpus, cache_dir, run)) == 0
    printed = capsys.readouterr().out
    assert "overall: OK" in printed and f"report: {output / 'doctor_report.json'}" in printed
    assert (run / "data_report" / "report.md").read_text() == "the finished run's report"
    assert sorted(path.name for path in run.iterdir()) == ["data_report", "doctor"]

    report = json.loads((output / "doctor_report.json").read_text())
    assert report["context"]["output_dir"] == str(run) and report["context"]["doctor_dir"] == str(output)
    assert report["status"] == "OK" and report["exit_code"] == 0 and report["counts"]["FAIL"] == 0
    checks = _checks(report)
    for title in (
        "consistency: sampling rate",
        "consistency: hop length",
        "consistency: characters the tokenizer cannot speak",
        "consistency: cache fingerprint",
        "training probe: frozen parameters",
        "training probe: finite loss",
        "training probe: gradients reach every parameter",
        "training probe: loss decreases",
        "throughput: training speed",
        "throughput: batch size",
    ):
        assert checks[title]["status"] == "OK", (title, checks[title]["evidence"])
    # The numbers a reader compares with benchmarks, under fixed keys.
    measured = report["measurements"]
    assert measured["device"] == "cpu" and measured["samples_per_second"] > 0
    assert 0 <= measured["data_wait_share"] <= 1 and measured["timed_steps"] == 2
    assert measured["gpu_busy_share"] is None and "batch_suggestion" not in measured
    assert measured["dataloader_workers"]["current"] == 0
    assert "needs a CUDA GPU" in checks["throughput: batch size"]["evidence"]
    assert report["context"]["discriminator"].startswith("a fresh discriminator")
    # The probes wrote into scratch folders they removed; what stays is what `train` writes before training too.
    assert sorted(path.name for path in output.iterdir()) == ["data_report", "data_split.json", "doctor_report.json"]


def test_stale_cache_fails(corpus, tmp_dir, tokenizer, capsys):
    cache = tmp_dir / "cache"
    wanted = PreprocessConfig(mel=tiny_model(tokenizer).mel_config)
    # Prepared at 22050 Hz, then found where the cache for the model's 16 kHz is looked up.
    stale_mel = dataclasses.replace(wanted.mel, sampling_rate=22050)
    planted = plant_stale_cache(corpus, tokenizer, wanted, stale_mel, cache)
    report_path = tmp_dir / "reports" / "doctor.json"
    argv = flags(corpus, cache, tmp_dir / "run", report=report_path)
    assert doctor.main([*argv, "--skip_training_probe", "--skip_throughput_probe"]) == 1
    error = capsys.readouterr().err
    assert "consistency: cache fingerprint" in error and "consistency: sampling rate" in error

    report = json.loads(report_path.read_text())
    checks = _checks(report)
    assert report["exit_code"] == 1
    assert checks["consistency: sampling rate"]["status"] == "FAIL"
    assert checks["consistency: cache fingerprint"]["status"] == "FAIL"
    assert str(planted) in checks["consistency: cache fingerprint"]["fix"]
    assert checks["training probe: training on one batch"]["status"] == "SKIP"
    assert "samples_per_second" not in report["measurements"]


def test_nan_learning_rate_fails(corpus, cache_dir, tmp_dir):
    argv = flags(corpus, cache_dir, tmp_dir / "run", learning_rate=1e3, training_probe_steps=3)
    assert doctor.main([*argv, "--skip_throughput_probe"]) == 1
    checks = _checks(json.loads((tmp_dir / "run" / "doctor" / "doctor_report.json").read_text()))
    assert checks["recipe: learning rate"]["status"] == "FAIL"
    assert checks["training probe: finite loss"]["status"] == "FAIL"
    assert "--learning_rate" in checks["training probe: finite loss"]["fix"]
    assert checks["consistency: cache fingerprint"]["status"] == "OK"


def test_pretrained_discriminator_is_judged_as_such(corpus, cache_dir, tmp_dir):
    from kurdish_tts.models.vits import VitsDiscriminator, VitsDiscriminatorConfig, save_discriminator

    save_discriminator(VitsDiscriminator(VitsDiscriminatorConfig.tiny()), tmp_dir / "discriminator")
    argv = flags(corpus, cache_dir, tmp_dir / "run", discriminator=tmp_dir / "discriminator")
    assert doctor.main([*argv, "--skip_training_probe", "--skip_throughput_probe"]) == 0
    report = json.loads((tmp_dir / "run" / "doctor" / "doctor_report.json").read_text())
    assert report["context"]["discriminator"] == str(tmp_dir / "discriminator" / "discriminator.safetensors")
    assert "discriminator is pretrained" in _checks(report)["recipe: discriminator learning rate"]["evidence"]


def test_takes_the_training_arguments(tmp_dir):
    doctor_args, (model_args, data_args, run_args, training_args) = doctor.parse(
        ["--recipe", "demo", "--skip_throughput_probe", "--learning_rate", "1e-5", "--output_dir", str(tmp_dir)]
    )
    assert doctor_args == DoctorArguments(skip_throughput_probe=True)
    assert model_args.model_size == "tiny" and data_args.tokenizer == "kurmanji" and run_args.recipe == "demo"
    assert training_args.learning_rate == 1e-5 and training_args.per_device_train_batch_size == 8
    assert isinstance(data_args, DataArguments)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--recipe", "no_such_recipe"], "unknown recipe 'no_such_recipe'"),
        (["--recipe", "demo", "--training_probe_steps", "1"], "--training_probe_steps must be at least 2"),
        (["--recipe", "demo", "--memory_headroom", "1.5"], "--memory_headroom must be in [0, 1)"),
        (["--data", "no/such/corpus", "--model_size", "tiny"], "no/such/corpus"),
        (["--recipe", "demo", "--discriminator", "no/such/D_1.pth"], "--discriminator no/such/D_1.pth: no such file"),
        (["--recipe", "demo", "--discriminator", "hf://me/x/D_1.pth"], "cannot be reached (offline mode"),
    ],
)
def test_bad_arguments_exit_2(argv, message, tmp_dir, capsys):
    assert doctor.main([*argv, "--output_dir", str(tmp_dir / "run")]) == 2
    assert message in capsys.readouterr().err


def test_help_lists_both_argument_sets(capsys):
    assert doctor.main(["--help"]) == 0
    printed = capsys.readouterr().out
    assert "--skip_training_probe" in printed and "--learning_rate" in printed and "--recipe" in printed
