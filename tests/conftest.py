"""Shared pytest setup: offline, CPU-only, seeded, with Hugging Face caches kept out of the home folder."""

import os
import tempfile

# Set before transformers/datasets are imported anywhere: nothing may reach the network in tests.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
_HF_HOME = tempfile.mkdtemp(prefix="kurdish_tts_hf_home_")
os.environ["HF_HOME"] = _HF_HOME
os.environ["HF_DATASETS_CACHE"] = os.path.join(_HF_HOME, "datasets")

import pytest  # noqa: E402
import torch  # noqa: E402
from transformers import set_seed  # noqa: E402


def pytest_configure(config):
    # The default suite is CPU-only by contract, even on a machine with a GPU; `-m gpu` runs the GPU tests. CUDA reads
    # this variable when it initializes, which no import above has triggered yet.
    if "gpu" not in (config.option.markexpr or "") or "not gpu" in config.option.markexpr:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""


@pytest.fixture(autouse=True)
def _seed_everything():
    set_seed(0)
    yield


@pytest.fixture
def tmp_dir(tmp_path):
    return tmp_path


@pytest.fixture(scope="module")
def one_torch_thread():
    """For modules of tiny models (`pytestmark = pytest.mark.usefixtures("one_torch_thread")`): their tensors are a few
    hundred numbers, so a second thread only adds synchronization, and on two busy cores two spinning threads made
    training steps 5x and a vocoder round trip 50x slower (measured)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tokenizer():
    from kurdish_tts.text import build_kurmanji_tokenizer

    return build_kurmanji_tokenizer()


@pytest.fixture(scope="session")
def tiny_demo(tokenizer, tmp_path_factory):
    """Six real (espeak-ng) demo-corpus clips prepared for the tiny model's mel settings."""
    from kurdish_tts.data import PreprocessConfig, load_ljspeech, prepare_dataset
    from kurdish_tts.data.demo_corpus import DEMO_CORPUS_DIR
    from kurdish_tts.models.vits import VitsForTraining

    mel_config = VitsForTraining.from_size("tiny", tokenizer.vocab_size).mel_config
    source = load_ljspeech(DEMO_CORPUS_DIR)
    source.dataset = source.dataset.select(range(6))
    cache = tmp_path_factory.mktemp("tiny_demo_cache")
    return prepare_dataset(source, tokenizer, PreprocessConfig(mel=mel_config), cache).dataset


torch.set_num_threads(min(2, os.cpu_count() or 1))
