"""The doctor's pure checks: environment (with described machines), recipe ranges, worker and batch-size suggestions."""

import pytest
import torch

from kurdish_tts.cli import train_vits
from kurdish_tts.doctor import MachineFacts, Status
from kurdish_tts.doctor.batch_size import BatchSizeResult, MemoryFit, keep_effective_batch
from kurdish_tts.doctor.environment import check_environment
from kurdish_tts.doctor.recipe import check_recipe, check_weight_precision
from kurdish_tts.doctor.throughput import suggest_workers

from .testing_utils import tiny_training_args

RTX_2070 = MachineFacts(
    versions={"torch": "2.13.0"},
    torch_cuda="12.8",
    gpu_count=1,
    gpu_name="NVIDIA GeForce RTX 2070",
    gpu_total_bytes=8 * 2**30,
    compute_capability=(7, 5),
    bf16_supported=False,
    cpu_count=8,
)
H100 = MachineFacts(
    versions={"torch": "2.13.0"},
    torch_cuda="13.0",
    gpu_count=1,
    gpu_name="NVIDIA H100 80GB HBM3",
    gpu_total_bytes=80 * 2**30,
    compute_capability=(9, 0),
    bf16_supported=True,
    cpu_count=16,
)
LAPTOP = MachineFacts(versions={"torch": "2.13.0"}, cpu_count=2)


class _Args:
    """The attributes the environment check reads, without TrainingArguments refusing bf16/fp16/tf32 on this CPU."""

    def __init__(self, **values):
        defaults = {
            "use_cpu": False,
            "bf16": False,
            "fp16": False,
            "tf32": None,
            "dataloader_num_workers": 4,
            "cuda_graphs": False,
            "cuda_graphs_max_shapes": 12,
            "world_size": 1,
            "gan_update": "fused",
        }
        self.__dict__.update({**defaults, **values})


def _by_name(checks):
    return {check.name: check for check in checks}


class TestEnvironment:
    def test_bf16_on_a_card_without_it_fails_with_the_fp16_fix(self):
        checks = _by_name(check_environment(_Args(bf16=True), RTX_2070))
        precision = checks["mixed precision"]
        assert precision.status == Status.FAIL
        assert "RTX 2070" in precision.evidence and "--fp16 true" in precision.fix

    def test_the_recipes_on_their_cards_pass(self):
        rtx = _by_name(check_environment(_Args(fp16=True), RTX_2070))
        h100 = _by_name(
            check_environment(_Args(bf16=True, tf32=True, cuda_graphs=True, dataloader_num_workers=8), H100)
        )
        for checks in (rtx, h100):
            assert {check.status for check in checks.values()} == {Status.OK}, checks

    def test_fp32_on_an_h100_suggests_bf16_tf32_and_graphs(self):
        checks = _by_name(check_environment(_Args(), H100))
        assert checks["mixed precision"].status == Status.WARN and checks["mixed precision"].fix == "--bf16 true"
        assert checks["TF32"].status == Status.WARN and checks["TF32"].fix == "--tf32 true"
        assert checks["CUDA graphs"].status == Status.WARN and checks["CUDA graphs"].fix == "--cuda_graphs true"

    def test_cuda_graphs_and_fp16_without_a_gpu_fail(self):
        checks = _by_name(check_environment(_Args(cuda_graphs=True, fp16=True, dataloader_num_workers=0), LAPTOP))
        assert checks["CUDA graphs"].status == Status.FAIL and checks["CUDA graphs"].fix == "--cuda_graphs false"
        assert checks["mixed precision"].status == Status.FAIL

    def test_no_gpu_is_fine_for_the_tiny_model_only(self):
        assert (
            _by_name(check_environment(_Args(dataloader_num_workers=0), LAPTOP, model_size="tiny"))["GPU"].status
            == Status.OK
        )
        gpu = _by_name(check_environment(_Args(dataloader_num_workers=0), LAPTOP))["GPU"]
        assert gpu.status == Status.WARN and "CPU-only build" in gpu.evidence

    @pytest.mark.parametrize(
        "facts, workers, status, fix",
        [
            (LAPTOP, 4, Status.WARN, "--dataloader_num_workers 1"),  # 2 cores: one for training, one spare
            (H100, 0, Status.WARN, "--dataloader_num_workers 4 --dataloader_pin_memory true"),
            (H100, 8, Status.OK, ""),
        ],
    )
    def test_workers_against_cores(self, facts, workers, status, fix):
        check = _by_name(check_environment(_Args(dataloader_num_workers=workers), facts))["dataloader workers"]
        assert (check.status, check.fix) == (status, fix)

    def test_unmet_requirements_fail(self):
        facts = MachineFacts(
            versions={"transformers": "4.40.0"}, unmet_requirements=["transformers>=5.17 (installed 4.40.0)"]
        )
        check = _by_name(check_environment(_Args(dataloader_num_workers=0), facts))["library versions"]
        assert check.status == Status.FAIL and "transformers>=5.17" in check.evidence


class TestRecipe:
    @pytest.mark.parametrize("recipe", ["demo", "rtx2070_finetune", "h100_finetune"])
    def test_shipped_recipes_are_in_range(self, recipe, tmp_dir):
        # The GPU recipes' precision flags cannot be parsed on this CPU machine; the recipe check does not read them.
        flags = ["--recipe", recipe, "--output_dir", str(tmp_dir)]
        if recipe != "demo":
            flags += ["--bf16", "false", "--fp16", "false", "--tf32", "false", "--cuda_graphs", "false"]
        model_args, _, _, args = train_vits.parse(flags)
        fine_tuning = model_args.model_size is None
        checks = check_recipe(args, fine_tuning=fine_tuning, fresh_discriminator=True)
        assert {check.status for check in checks} == {Status.OK}, [(c.name, c.evidence) for c in checks]

    def test_nan_producing_learning_rate_fails(self, tmp_dir):
        checks = _by_name(
            check_recipe(tiny_training_args(tmp_dir, learning_rate=1e3), fine_tuning=False, fresh_discriminator=True)
        )
        assert checks["learning rate"].status == Status.FAIL
        assert "NaN" in checks["learning rate"].evidence and "--learning_rate" in checks["learning rate"].fix
        assert checks["discriminator learning rate"].status == Status.FAIL

    def test_fine_tuning_rates(self, tmp_dir):
        args = tiny_training_args(tmp_dir, learning_rate=2e-4, warmup_steps=0)
        checks = _by_name(check_recipe(args, fine_tuning=True, fresh_discriminator=True))
        assert checks["learning rate"].status == Status.WARN  # VITS's from-scratch rate overwrites the base voice
        assert checks["warm-up"].status == Status.WARN and "0.02" in checks["warm-up"].fix
        args = tiny_training_args(tmp_dir, learning_rate=2e-5, warmup_steps=0.02)
        checks = _by_name(check_recipe(args, fine_tuning=True, fresh_discriminator=True))
        assert checks["learning rate"].status == Status.OK
        # The fresh discriminator at the generator's fine-tuning rate lags behind.
        assert checks["discriminator learning rate"].status == Status.WARN
        assert checks["discriminator learning rate"].fix.startswith("--discriminator_learning_rate 2e-4")

    def test_high_mel_weight_with_a_fresh_discriminator_fails(self, tmp_dir):
        args = tiny_training_args(tmp_dir, loss_weight_mel=300.0)
        assert (
            _by_name(check_recipe(args, fine_tuning=False, fresh_discriminator=True))["loss weights"].status
            == Status.FAIL
        )
        assert (
            _by_name(check_recipe(args, fine_tuning=False, fresh_discriminator=False))["loss weights"].status
            == Status.WARN
        )

    def test_switched_off_terms(self, tmp_dir):
        args = tiny_training_args(tmp_dir, loss_weight_kl=0.0, loss_weight_gen=0.0, loss_weight_fm=0.0)
        check = _by_name(check_recipe(args, fine_tuning=False, fresh_discriminator=True))["loss weights"]
        assert check.status == Status.FAIL and "kl 0" in check.evidence and "buzzy" in check.evidence
        assert "--loss_weight_kl 1" in check.fix

    def test_clipping_off_warns(self, tmp_dir):
        check = _by_name(
            check_recipe(tiny_training_args(tmp_dir, max_grad_norm=0.0), fine_tuning=False, fresh_discriminator=True)
        )["gradient clipping"]
        assert check.status == Status.WARN and check.fix.startswith("--max_grad_norm 1.0")

    def test_half_precision_weights_fail(self, tmp_dir):
        args = tiny_training_args(tmp_dir)
        assert check_weight_precision(args, {torch.float32}).status == Status.OK
        check = check_weight_precision(args, {torch.float32, torch.float16})
        assert check.status == Status.FAIL and "loss scaling" in check.evidence


class TestSuggestions:
    @pytest.mark.parametrize(
        "wait, workers, cores, expected",
        [
            (0.30, 2, 16, 4),  # starving with free cores: more
            (0.30, 15, 16, 15),  # starving, no core left: unchanged (the check says so)
            (0.01, 8, 4, 3),  # more workers than spare cores: fewer
            (0.01, 2, 16, 2),  # fine
        ],
    )
    def test_workers(self, wait, workers, cores, expected):
        assert suggest_workers(wait, workers, cores)[0] == expected

    def test_memory_fit_extrapolates_and_rounds(self):
        # 4 GiB fixed + 0.1 GiB per sample, on an 80 GiB card with 10 % left free: (72 - 4) / 0.1 = 680.
        fit = MemoryFit.from_peaks({16: 5.6, 32: 7.2}, total_gib=80.0, headroom=0.1)
        assert fit.fixed_gib == pytest.approx(4.0) and fit.per_sample_gib == pytest.approx(0.1)
        assert fit.max_batch_size() == 680
        assert fit.predicted_peak_gib(680) == pytest.approx(72.0)
        # The fixed part alone exceeds what may be used: nothing fits.
        assert MemoryFit.from_peaks({4: 7.9, 8: 8.1}, total_gib=8.0).max_batch_size() == 0
        with pytest.raises(ValueError, match="does not grow"):
            MemoryFit.from_peaks({4: 3.0, 8: 3.0}, total_gib=8.0)

    @pytest.mark.parametrize(
        "maximum, batch, accumulation, expected",
        [
            (680, 32, 1, (32, 1)),  # fits: keep the recipe's effective batch
            (680, 16, 2, (32, 1)),  # accumulation no longer needed
            (12, 16, 2, (8, 4)),  # 32 = 8 x 4, the least accumulation that fits
            (7, 32, 1, (4, 8)),  # an exact split
            (7, 31, 1, (7, 5)),  # no exact split near: the nearest larger effective batch (35)
        ],
    )
    def test_keep_effective_batch(self, maximum, batch, accumulation, expected):
        assert keep_effective_batch(maximum, batch, accumulation) == expected

    def test_batch_that_does_not_fit_fails_with_a_suggestion(self):
        result = BatchSizeResult(batch_size=32, accumulation=1, peaks_gib={8: 5.0, 16: 7.0, 32: None}, total_gib=8.0)
        result.fit = MemoryFit.from_peaks({8: 5.0, 16: 7.0}, total_gib=8.0)
        result.max_batch_size = result.fit.max_batch_size()
        result.suggested_batch_size, result.suggested_accumulation = keep_effective_batch(result.max_batch_size, 32, 1)
        (check,) = result.checks()
        assert check.status == Status.FAIL
        assert check.fix.startswith("--per_device_train_batch_size 16 --gradient_accumulation_steps 2")
        assert result.to_dict()["max_batch_size"] == 16


class TestBatchSizeProbe:
    """The probe's arithmetic and its confirmation, with a described GPU: peak = 3 GiB + 0.25 GiB per sample, and
    beyond 16 samples a growing extra the straight line does not foresee."""

    @staticmethod
    def _peak(batch_size):
        peak = 3.0 + 0.25 * batch_size + (0.01 * (batch_size - 16) ** 2 if batch_size > 16 else 0.0)
        return None if peak > 16.0 else peak

    def test_fit_confirm_and_suggest(self, monkeypatch, tmp_dir):
        from types import SimpleNamespace

        from datasets import Dataset

        from kurdish_tts.doctor import batch_size

        measured = []

        def fake_measure(model, args, train, tokenizer, speakers, size):
            measured.append(size)
            return self._peak(size)

        monkeypatch.setattr(batch_size, "measure_peak_memory", fake_measure)
        monkeypatch.setattr(
            torch.cuda, "get_device_properties", lambda device: SimpleNamespace(total_memory=16 * 2**30)
        )
        train = Dataset.from_dict({"num_frames": [300, 937, 500] * 20, "input_length": [100, 290, 150] * 20})
        args = tiny_training_args(tmp_dir, per_device_train_batch_size=16, gradient_accumulation_steps=2, fp16=False)
        model = torch.nn.Linear(2, 2)
        result = batch_size.run_batch_size_probe(model, args, train, None, None, model.state_dict(), headroom=0.1)

        # The line through batch 8 (5 GiB) and 16 (7 GiB) predicts 45 → 40; 40 runs out of memory, 36 → 32 fits.
        assert measured == [8, 16, 40, 32]
        assert result.fit.fixed_gib == pytest.approx(3.0) and result.fit.per_sample_gib == pytest.approx(0.25)
        assert result.verified_peaks_gib == {40: None, 32: pytest.approx(13.56)}
        assert result.max_batch_size == 32
        assert (result.suggested_batch_size, result.suggested_accumulation) == (32, 1)
        assert (result.longest_frames, result.longest_input_ids) == (937, 290)
        assert (
            "--batch_sizes 16 32" in result.benchmark_command
            and "--frames 937 --text_length 290" in result.benchmark_command
        )
        (check,) = result.checks()
        assert check.status == Status.WARN  # the same effective batch without accumulation
        assert check.fix.startswith("--per_device_train_batch_size 32 --gradient_accumulation_steps 1")
        assert "13.56 GiB measured" in check.evidence
        suggestion = result.to_dict()
        assert suggestion["max_batch_size"] == 32 and suggestion["effective_batch_size"] == 32
