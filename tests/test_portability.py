"""What runs on Windows too: no Linux-only module on any import path, a feedback store without symbolic links, and
the fallbacks where the package uses a Linux or CUDA feature (CPU affinity, Triton)."""

import ast
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import kurdish_tts
from kurdish_tts.feedback import FeedbackStore, ModelVersions
from kurdish_tts.feedback import versions as versions_module
from kurdish_tts.models.vits import monotonic_align

from .testing_utils import checkout_env

PACKAGE = Path(kurdish_tts.__file__).parent
# Standard-library modules that exist only on Unix.
UNIX_ONLY = {"fcntl", "termios", "resource", "pwd", "grp", "posix", "tty", "pty", "syslog"}

IMPORT_EVERYTHING = """
import importlib, pkgutil, sys
sys.modules["fcntl"] = None  # `import fcntl` now fails as it does on Windows
import kurdish_tts
failed = []
for module in pkgutil.walk_packages(kurdish_tts.__path__, "kurdish_tts."):
    try:
        importlib.import_module(module.name)
    except ImportError as error:
        failed.append(f"{module.name}: {error}")
print("\\n".join(failed) or "all imported")
"""


def test_every_module_imports_without_fcntl(tmp_dir):
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_EVERYTHING], env=checkout_env(), cwd=tmp_dir, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "all imported", result.stdout


def test_no_module_of_the_package_imports_a_unix_only_module():
    found = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            found += [f"{path.relative_to(PACKAGE)}: {name}" for name in names if name.split(".")[0] in UNIX_ONLY]
    assert not found, found
    assert not [path for path in PACKAGE.rglob("*.py") if "/proc/" in path.read_text(encoding="utf-8")]


def tree_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(folder)).encode() + path.read_bytes())
    return digest.hexdigest()


@pytest.fixture
def models(tmp_dir):
    folders = []
    for index in range(3):
        folder = tmp_dir / f"model{index}"
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"index": index}))
        (folder / "model.safetensors").write_bytes(os.urandom(256))
        folders.append(folder)
    return folders


class TestVersionsWithoutSymlinks:
    def no_symlinks(self, monkeypatch):
        def refuse(*args, **kwargs):
            # What Windows answers without Developer Mode or administrator rights.
            raise OSError(22, "A required privilege is not held by the client", None, 1314)

        monkeypatch.setattr(versions_module.os, "symlink", refuse)

    def test_promote_and_rollback_byte_for_byte(self, tmp_dir, models, monkeypatch):
        self.no_symlinks(monkeypatch)
        versions = ModelVersions(FeedbackStore(tmp_dir / "store"))
        assert versions.add(models[0], {}, make_current=True, event="imported") == "v0001"
        assert versions.add(models[1], {}, make_current=True, event="promoted") == "v0002"
        assert versions.current() == "v0002" and tree_hash(versions.current_path()) == tree_hash(models[1])
        assert not os.path.lexists(versions.root / "current")
        assert (versions.root / "current.txt").read_text() == "v0002\n"
        assert versions.rollback() == ("v0002", "v0001")
        assert versions.current() == "v0001" and tree_hash(versions.current_path()) == tree_hash(models[0])
        assert [event["event"] for event in versions.history()] == ["imported", "promoted", "rollback"]

    def test_a_link_left_from_elsewhere_is_removed_not_trusted(self, tmp_dir, models, monkeypatch):
        versions = ModelVersions(FeedbackStore(tmp_dir / "store"))
        versions.add(models[0], {}, make_current=True, event="imported")
        assert os.readlink(versions.root / "current") == "v0001"  # where links work, the link follows the pointer
        self.no_symlinks(monkeypatch)
        versions.add(models[1], {}, make_current=True, event="promoted")
        assert versions.current() == "v0002" and not os.path.lexists(versions.root / "current")

    def test_a_store_made_before_the_pointer_file_is_read_through_its_link(self, tmp_dir, models):
        versions = ModelVersions(FeedbackStore(tmp_dir / "store"))
        versions.add(models[0], {}, make_current=True, event="imported")
        (versions.root / "current.txt").unlink()
        assert versions.current() == "v0001"
        versions.add(models[1], {}, make_current=True, event="promoted")
        assert (versions.root / "current.txt").read_text() == "v0002\n"


def test_cpu_count_without_sched_getaffinity(monkeypatch):
    from kurdish_tts.doctor.environment import machine_facts

    monkeypatch.delattr(os, "sched_getaffinity", raising=False)  # macOS and Windows have none
    assert machine_facts().cpu_count == (os.cpu_count() or 1)


class TestTritonFallback:
    def test_the_default_without_triton(self, monkeypatch):
        monkeypatch.setattr(monotonic_align, "_triton_is_installed", lambda: False)
        assert monotonic_align.default_implementation(torch.device("cuda")) == "torch"
        assert monotonic_align.default_implementation(torch.device("cpu")) == "numba"
        monkeypatch.setattr(monotonic_align, "_triton_is_installed", lambda: True)
        assert monotonic_align.default_implementation(torch.device("cuda")) == "triton"
        assert monotonic_align.default_implementation(torch.device("mps")) == "torch"

    def test_a_triton_that_cannot_build_its_kernel_falls_back_to_torch(self, monkeypatch, caplog):
        def broken(*args):
            raise RuntimeError("Failed to find C compiler")

        monkeypatch.setattr(monotonic_align, "_triton_failure", None)
        monkeypatch.setattr(monotonic_align, "default_implementation", lambda device: "triton")
        monkeypatch.setattr(monotonic_align, "_maximum_path_triton", broken)
        log_likelihood = torch.randn(2, 5, 12)
        mask = torch.ones_like(log_likelihood)
        mask[1, 3:] = 0
        mask[1, :, 9:] = 0
        path = monotonic_align.maximum_path(log_likelihood, mask)
        assert torch.equal(path, monotonic_align.maximum_path(log_likelihood, mask, implementation="numba"))
        assert "Failed to find C compiler" in caplog.text
        # Once failed, the default stops choosing it.
        assert isinstance(monotonic_align._triton_failure, RuntimeError)


def test_the_budget_starts_when_the_program_starts_not_when_its_shell_did(tmp_dir):
    """`bash -c '...; exec python ...'` hands python the shell's process: /proc's start time would charge what the
    shell ran before (an install, here a sleep) to the budget."""
    program = "from kurdish_tts.trainers.budget import program_start_time; print(repr(program_start_time()))"
    python = sys.executable
    script = f'sleep 2; "{python}" -c "import time; print(repr(time.time()))" > before; exec "{python}" -c "{program}"'
    result = subprocess.run(["bash", "-c", script], env=checkout_env(), cwd=tmp_dir, capture_output=True, text=True,
                            timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    before_exec = float((tmp_dir / "before").read_text())
    assert float(result.stdout.strip()) >= before_exec
