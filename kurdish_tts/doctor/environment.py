"""Will this machine train the run well? Library versions, the GPU, its precisions and the dataloader workers.

`machine_facts()` reads the machine once; `check_environment` judges the training arguments against those facts and
is a pure function, so the tests can describe an RTX 2070 or an H100 without owning one.
"""

from __future__ import annotations

import importlib.metadata
import os
from dataclasses import dataclass, field

import torch

from .report import Check, Status

SECTION = "environment"
_GIB = 2**30
# The packages the issue asks about, reported in this order; every other requirement is checked but not listed.
REPORTED_PACKAGES = ("torch", "transformers", "accelerate", "datasets")
# Below this much GPU memory, the gradient copies CUDA graphs keep per captured shape (~0.33 GB each at MMS size) are
# too large a share of the card (README, "Speed on a data-center GPU").
CUDA_GRAPHS_MIN_GIB = 12
# Above this, the card is a data-center or large consumer GPU where eager VITS steps are launch-bound.
CUDA_GRAPHS_SUGGEST_GIB = 16


@dataclass
class MachineFacts:
    """What the machine offers, as read by `machine_facts()`.

    Args:
        versions (`dict[str, str]`): Installed versions of the reported packages (`None` when not installed).
        unmet_requirements (`list[str]`): kurdish_tts's own requirements the installed versions do not satisfy, as
            `"transformers>=5.17 (installed 5.10.0)"`.
        torch_cuda (`str`, *optional*): The CUDA version torch was built with; `None` for a CPU-only build.
        gpu_count (`int`): Visible CUDA devices.
        gpu_name (`str`, *optional*): Name of the first one.
        gpu_total_bytes (`int`): Its memory.
        compute_capability (`tuple[int, int]`, *optional*): E.g. `(7, 5)` for Turing (RTX 20xx), `(9, 0)` for Hopper.
        bf16_supported (`bool`): Whether it computes in bfloat16 natively.
        cpu_count (`int`): Cores this process may use (its CPU affinity, not the machine's total).
    """

    versions: dict[str, str | None] = field(default_factory=dict)
    unmet_requirements: list[str] = field(default_factory=list)
    torch_cuda: str | None = None
    gpu_count: int = 0
    gpu_name: str | None = None
    gpu_total_bytes: int = 0
    compute_capability: tuple[int, int] | None = None
    bf16_supported: bool = False
    cpu_count: int = 1

    @property
    def has_gpu(self) -> bool:
        return self.gpu_count > 0

    @property
    def gpu_total_gib(self) -> float:
        return self.gpu_total_bytes / _GIB

    def describe_gpu(self) -> str:
        if not self.has_gpu:
            return "no CUDA GPU"
        major, minor = self.compute_capability or (0, 0)
        return f"{self.gpu_name}, {self.gpu_total_gib:.1f} GiB, compute capability {major}.{minor}" + (
            f", {self.gpu_count} GPUs" if self.gpu_count > 1 else ""
        )


def machine_facts() -> MachineFacts:
    """Read versions, the first CUDA device and the usable CPU cores."""
    facts = MachineFacts(
        versions={name: _version(name) for name in REPORTED_PACKAGES},
        unmet_requirements=_unmet_requirements(),
        torch_cuda=torch.version.cuda,
        cpu_count=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1),
    )
    if torch.cuda.is_available():
        properties = torch.cuda.get_device_properties(0)
        facts.gpu_count = torch.cuda.device_count()
        facts.gpu_name = properties.name
        facts.gpu_total_bytes = properties.total_memory
        facts.compute_capability = (properties.major, properties.minor)
        facts.bf16_supported = torch.cuda.is_bf16_supported(including_emulation=False)
    return facts


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _unmet_requirements() -> list[str]:
    """kurdish_tts's `install_requires` (read from its installed metadata, so setup.cfg stays the one list) that the
    installed packages do not satisfy."""
    from packaging.requirements import Requirement
    from packaging.version import InvalidVersion, Version

    try:
        requirements = importlib.metadata.requires("kurdish_tts") or []
    except importlib.metadata.PackageNotFoundError:
        return []
    unmet = []
    for line in requirements:
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue  # an extra (`dev`), not needed to train
        installed = _version(requirement.name)
        try:
            ok = installed is not None and requirement.specifier.contains(Version(installed), prereleases=True)
        except InvalidVersion:
            ok = True
        if not ok:
            unmet.append(f"{requirement} (installed {installed or 'nothing'})")
    return unmet


def check_environment(args, facts: MachineFacts, *, model_size: str | None = None) -> list[Check]:
    """Judge the run's arguments (`VitsTrainingArguments`) against the machine.

    Args:
        args (`VitsTrainingArguments`): The run's training arguments.
        facts (`MachineFacts`): From `machine_facts()`.
        model_size (`str`, *optional*): `--model_size` of the run (`tiny` trains fine on a CPU).

    Returns:
        `list[Check]`: versions, GPU, precision, TF32, dataloader workers, CUDA graphs.
    """
    on_gpu = facts.has_gpu and not args.use_cpu
    return [
        _versions(facts),
        _gpu(args, facts, model_size),
        _precision(args, facts, on_gpu),
        _tf32(args, facts, on_gpu),
        _workers(args, facts, on_gpu),
        _cuda_graphs(args, facts, on_gpu),
    ]


def _versions(facts: MachineFacts) -> Check:
    evidence = ", ".join(f"{name} {facts.versions.get(name) or 'not installed'}" for name in REPORTED_PACKAGES)
    if facts.unmet_requirements:
        return Check(
            SECTION,
            "library versions",
            Status.FAIL,
            f"{evidence}; below what kurdish_tts needs: {'; '.join(facts.unmet_requirements)}",
            "pip install -e . (torch first, see the README) to get the tested versions",
            {"versions": facts.versions, "unmet": facts.unmet_requirements},
        )
    return Check(SECTION, "library versions", Status.OK, evidence, details={"versions": facts.versions})


def _gpu(args, facts: MachineFacts, model_size: str | None) -> Check:
    details = {
        "gpu_count": facts.gpu_count,
        "gpu_name": facts.gpu_name,
        "gpu_total_gib": round(facts.gpu_total_gib, 2),
        "compute_capability": facts.compute_capability,
        "torch_cuda": facts.torch_cuda,
    }
    if facts.has_gpu and args.use_cpu:
        return Check(
            SECTION, "GPU", Status.WARN, f"{facts.describe_gpu()} is visible but --use_cpu is set", "--use_cpu false",
            details,
        )  # fmt: skip
    if facts.has_gpu:
        return Check(SECTION, "GPU", Status.OK, facts.describe_gpu(), details=details)
    why = (
        "torch is a CPU-only build" if facts.torch_cuda is None else f"torch (CUDA {facts.torch_cuda}) sees no device"
    )
    if model_size == "tiny":
        return Check(SECTION, "GPU", Status.OK, f"no CUDA GPU ({why}); the tiny model trains on the CPU", "", details)
    return Check(
        SECTION,
        "GPU",
        Status.WARN,
        f"no CUDA GPU ({why}): {'the ' + model_size + '-size' if model_size else 'an MMS-size'} model trains orders "
        "of magnitude slower on the CPU",
        "run on a machine with a CUDA GPU (check `nvidia-smi`), with the torch build that matches its driver",
        details,
    )


def _precision(args, facts: MachineFacts, on_gpu: bool) -> Check:
    name = "mixed precision"
    gpu = facts.describe_gpu()
    if args.bf16 and args.fp16:
        return Check(SECTION, name, Status.FAIL, "--bf16 and --fp16 are both set", "choose one")
    if args.bf16:
        if on_gpu and not facts.bf16_supported:
            return Check(
                SECTION,
                name,
                Status.FAIL,
                f"--bf16 on {gpu}, which has no native bfloat16 (it needs Ampere, compute capability 8.0, or newer)",
                "--bf16 false --fp16 true (the Trainer adds dynamic loss scaling), as the rtx2070_finetune recipe does",
            )
        where = "this GPU" if on_gpu else "the CPU"
        return Check(SECTION, name, Status.OK, f"bf16 on {where} (no loss scaling needed)")
    if args.fp16:
        if not on_gpu:
            return Check(
                SECTION, name, Status.FAIL, "--fp16 without a CUDA GPU: float16 mixed precision needs one",
                "--fp16 false (train in fp32 on the CPU), or run on a GPU",
            )  # fmt: skip
        if facts.bf16_supported:
            return Check(
                SECTION,
                name,
                Status.OK,
                f"fp16 with dynamic loss scaling; {gpu} also has bf16, which needs no loss scaling",
                "",
            )
        return Check(SECTION, name, Status.OK, f"fp16 with dynamic loss scaling ({gpu} has no bfloat16)")
    if on_gpu:
        better = "--bf16 true" if facts.bf16_supported else "--fp16 true"
        return Check(
            SECTION,
            name,
            Status.WARN,
            f"fp32 training on {gpu}: mixed precision roughly halves activation memory and speeds up the step",
            better,
        )
    return Check(SECTION, name, Status.OK, "fp32 on the CPU")


def _tf32(args, facts: MachineFacts, on_gpu: bool) -> Check:
    name = "TF32"
    if not on_gpu:
        return Check(SECTION, name, Status.OK, "not applicable without a GPU")
    major = (facts.compute_capability or (0, 0))[0]
    if major < 8:
        return Check(SECTION, name, Status.OK, f"not available on {facts.gpu_name} (needs Ampere or newer)")
    if args.tf32:
        return Check(SECTION, name, Status.OK, "on: fp32 matrix products use TF32 tensor cores")
    if args.bf16 or args.fp16:
        return Check(
            SECTION, name, Status.OK, "off; most products already run in reduced precision, the fp32 rest would "
            "gain a little from --tf32 true",
        )  # fmt: skip
    return Check(
        SECTION,
        name,
        Status.WARN,
        f"off while training in fp32 on {facts.gpu_name}: fp32 matrix products run without tensor cores",
        "--tf32 true",
    )


def _workers(args, facts: MachineFacts, on_gpu: bool) -> Check:
    workers = args.dataloader_num_workers
    # Under `accelerate launch` on every visible GPU, each process starts its own workers.
    processes = facts.gpu_count if on_gpu and facts.gpu_count > 1 else 1
    per_process = max(facts.cpu_count // processes, 1)
    details = {"workers": workers, "cpu_count": facts.cpu_count, "processes": processes}
    evidence = f"{workers} dataloader workers per process, {facts.cpu_count} CPU cores" + (
        f" shared by {processes} processes (one per GPU)" if processes > 1 else ""
    )
    if workers > per_process - 1 and workers > 0:
        return Check(
            SECTION,
            "dataloader workers",
            Status.WARN,
            f"{evidence}: more workers than spare cores, so they compete with the training process",
            f"--dataloader_num_workers {max(per_process - 1, 0)}",
            details,
        )
    if on_gpu and workers == 0 and per_process > 1:
        return Check(
            SECTION,
            "dataloader workers",
            Status.WARN,
            f"{evidence}: the training process collates every batch itself while the GPU waits",
            f"--dataloader_num_workers {min(4, per_process - 1)} --dataloader_pin_memory true",
            details,
        )
    return Check(SECTION, "dataloader workers", Status.OK, evidence, details=details)


def _cuda_graphs(args, facts: MachineFacts, on_gpu: bool) -> Check:
    name = "CUDA graphs"
    if args.cuda_graphs:
        if not on_gpu:
            return Check(
                SECTION, name, Status.FAIL, "--cuda_graphs true without a CUDA GPU (the trainer refuses it)",
                "--cuda_graphs false",
            )  # fmt: skip
        if args.world_size > 1:
            return Check(
                SECTION, name, Status.FAIL, f"--cuda_graphs true with {args.world_size} processes (single GPU only)",
                "--cuda_graphs false for multi-GPU runs",
            )  # fmt: skip
        if facts.gpu_total_gib < CUDA_GRAPHS_MIN_GIB:
            return Check(
                SECTION,
                name,
                Status.WARN,
                f"on, with {facts.gpu_total_gib:.1f} GiB: each captured batch shape keeps its own copy of the "
                "gradients (~0.33 GB at MMS size), a large share of this card",
                "--cuda_graphs false, or fewer shapes with --cuda_graphs_max_shapes 4",
            )
        return Check(SECTION, name, Status.OK, f"on (up to {args.cuda_graphs_max_shapes} captured batch shapes)")
    if on_gpu and facts.gpu_total_gib >= CUDA_GRAPHS_SUGGEST_GIB and args.world_size == 1:
        if args.gan_update == "fused":
            return Check(
                SECTION,
                name,
                Status.WARN,
                f"off on {facts.gpu_name}: an eager VITS step is bound by launching thousands of small kernels "
                "(measured on an H100: ~120 samples/s eager against ~305 with graphs at batch 32, bf16)",
                "--cuda_graphs true",
            )
    return Check(SECTION, name, Status.OK, "off")
