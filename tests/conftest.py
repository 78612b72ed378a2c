"""Shared pytest setup: offline, CPU-only, seeded, with Hugging Face caches kept out of the home folder."""

import os
import tempfile

# Set before transformers/datasets are imported anywhere: nothing may reach the network in tests, and the
# suite must not see a GPU even on a machine that has one (tests are CPU-only by contract).
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["CUDA_VISIBLE_DEVICES"] = ""
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
_HF_HOME = tempfile.mkdtemp(prefix="kurdish_tts_hf_home_")
os.environ["HF_HOME"] = _HF_HOME
os.environ["HF_DATASETS_CACHE"] = os.path.join(_HF_HOME, "datasets")

import pytest  # noqa: E402
import torch  # noqa: E402
from transformers import set_seed  # noqa: E402


@pytest.fixture(autouse=True)
def _seed_everything():
    set_seed(0)
    yield


@pytest.fixture
def tmp_dir(tmp_path):
    return tmp_path


torch.set_num_threads(min(2, os.cpu_count() or 1))
