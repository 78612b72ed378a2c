"""Tests for choosing where the discriminator starts from (`--discriminator auto | none | PATH | hf://...`).

The Hub is never reached: downloads go through a stand-in for `huggingface_hub.hf_hub_download` that serves files of
a temporary folder and records what was asked, or through the real function in offline mode (set by conftest).
"""

import logging

import huggingface_hub
import pytest
import torch
from huggingface_hub import constants
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError

from kurdish_tts.models.vits import VitsForTraining
from kurdish_tts.models.vits.configuration_discriminator import VitsDiscriminatorConfig
from kurdish_tts.models.vits.convert_discriminator import original_key
from kurdish_tts.models.vits.discriminator_source import (
    DiscriminatorSourceError,
    local_copy_path,
    mms_language_code,
    resolve_discriminator_source,
)
from kurdish_tts.models.vits.modeling_discriminator import VitsDiscriminator, save_discriminator

MMS_ID = "facebook/mms-tts-kmr-script_latin"
MMS_FILE = "full_models/kmr-script_latin/D_100000.pth"


@pytest.fixture(autouse=True)
def _hf_home(tmp_dir, monkeypatch):
    # Local copies live under HF_HOME; each test gets its own, so none sees another's files.
    monkeypatch.setattr(constants, "HF_HOME", str(tmp_dir / "hf_home"))


@pytest.fixture
def tiny():
    return VitsDiscriminator(VitsDiscriminatorConfig.tiny())


def _save_original_format(discriminator: VitsDiscriminator, path) -> None:
    """Write `discriminator` as the original VITS code saves one (D_<step>.pth)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state_dict = {original_key(name): tensor for name, tensor in discriminator.state_dict().items()}
    torch.save({"model": state_dict, "iteration": 100000, "optimizer": {}, "learning_rate": 2e-4}, path)


def _same_weights(first: VitsDiscriminator, second: VitsDiscriminator) -> bool:
    return all(torch.equal(tensor, second.state_dict()[name]) for name, tensor in first.state_dict().items())


class FakeHub:
    """Stands in for `hf_hub_download`: serves `root/<repo_id>/<filename>`, records the requests, and raises
    `EntryNotFoundError` for files it does not have (as the Hub answers a 404)."""

    def __init__(self, root):
        self.root = root
        self.requests = []

    def add(self, repo_id: str, filename: str):
        path = self.root / repo_id / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def __call__(self, repo_id, filename, **kwargs):
        self.requests.append((repo_id, filename))
        path = self.root / repo_id / filename
        if not path.is_file():
            raise EntryNotFoundError(f"404 Client Error: Entry Not Found for url {repo_id}/{filename}")
        return str(path)


@pytest.fixture
def hub(tmp_dir, monkeypatch):
    fake = FakeHub(tmp_dir / "hub")
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake)
    return fake


class TestMmsLanguageCode:
    @pytest.mark.parametrize(
        "name, code",
        [
            (MMS_ID, "kmr-script_latin"),
            ("facebook/mms-tts-eng", "eng"),
            ("facebook/mms-tts-kmr-script_arabic/", "kmr-script_arabic"),
            ("facebook/mms-tts", None),
            ("someone/mms-tts-kmr-script_latin", None),
            ("facebook/mms-1b-all", None),
            (None, None),
        ],
    )
    def test_model_ids(self, name, code):
        assert mms_language_code(name) == code

    def test_a_local_copy_is_not_recognised(self, tmp_dir, monkeypatch):
        (tmp_dir / "facebook" / "mms-tts-kmr-script_latin").mkdir(parents=True)
        monkeypatch.chdir(tmp_dir)
        assert mms_language_code(MMS_ID) is None


class TestAuto:
    def test_own_safetensors_come_first(self, tiny, tmp_dir, hub, caplog):
        save_discriminator(tiny, tmp_dir / "best_model")
        with caplog.at_level(logging.INFO, logger="kurdish_tts.models.vits.discriminator_source"):
            source = resolve_discriminator_source("auto", tmp_dir / "best_model")
        assert source.kind == "saved" and source.path == tmp_dir / "best_model"
        assert _same_weights(source.load(), tiny)
        assert f"discriminator: the model's own, {tmp_dir / 'best_model' / 'discriminator.safetensors'}" in caplog.text
        assert hub.requests == []

    def test_mms_model_gets_the_mms_discriminator(self, tiny, hub, caplog):
        _save_original_format(tiny, hub.add("facebook/mms-tts", MMS_FILE))
        with caplog.at_level(logging.INFO, logger="kurdish_tts.models.vits.discriminator_source"):
            source = resolve_discriminator_source("auto", MMS_ID)
        assert hub.requests == [("facebook/mms-tts", MMS_FILE)]
        assert source.kind == "original" and not source.is_fresh
        assert source.description.startswith(
            f"MMS's pretrained discriminator for kmr-script_latin (facebook/mms-tts, {MMS_FILE}, CC BY-NC 4.0)"
        )
        assert "discriminator: MMS's pretrained discriminator for kmr-script_latin" in caplog.text
        assert _same_weights(source.load(VitsDiscriminatorConfig.tiny()), tiny)

    def test_mms_language_without_a_discriminator_falls_back_to_fresh(self, hub, caplog):
        source = resolve_discriminator_source("auto", "facebook/mms-tts-xyz")
        assert hub.requests == [("facebook/mms-tts", "full_models/xyz/D_100000.pth")]
        assert source.is_fresh and source.fallback
        assert "MMS published no discriminator for xyz" in caplog.text
        assert caplog.records[-1].levelno == logging.WARNING

    def test_other_hub_model_gets_a_fresh_one_without_asking_the_hub(self, hub, caplog):
        source = resolve_discriminator_source("auto", "someone/vits-kmr")
        assert source.is_fresh and hub.requests == []
        assert "someone/vits-kmr is not an MMS model" in caplog.text
        assert isinstance(source.load(), VitsDiscriminator)

    def test_local_folder_without_discriminator_says_how_to_add_one(self, tmp_dir, hub, caplog):
        (tmp_dir / "mms-copy").mkdir()
        source = resolve_discriminator_source("auto", tmp_dir / "mms-copy")
        assert source.is_fresh and hub.requests == []
        assert f"kurdish-tts convert-discriminator D_100000.pth {tmp_dir / 'mms-copy'}" in caplog.text

    def test_random_init_gets_a_fresh_one(self, hub):
        assert resolve_discriminator_source("auto", None).is_fresh
        assert hub.requests == []

    def test_local_copy_is_used_without_a_download(self, tiny, hub):
        local = local_copy_path("facebook/mms-tts", MMS_FILE)
        _save_original_format(tiny, local)
        source = resolve_discriminator_source("auto", MMS_ID)
        assert hub.requests == [] and source.path == local
        assert f"from the local copy {local}" in source.description

    def test_offline_fails_fast_naming_the_local_path_and_the_alternatives(self):
        # The real download function, in the offline mode conftest sets, with an empty cache.
        assert constants.HF_HUB_OFFLINE
        with pytest.raises(DiscriminatorSourceError) as error:
            resolve_discriminator_source("auto", MMS_ID)
        message = str(error.value)
        assert "cannot be reached (offline mode, HF_HUB_OFFLINE=1)" in message
        assert str(local_copy_path("facebook/mms-tts", MMS_FILE)) in message
        assert f"https://huggingface.co/facebook/mms-tts/resolve/main/{MMS_FILE}" in message
        assert "--discriminator PATH" in message and "--discriminator none" in message

    def test_no_connection_fails_the_same_way(self, monkeypatch):
        def unreachable(**kwargs):
            raise LocalEntryNotFoundError("An error happened while trying to locate the file on the Hub")

        monkeypatch.setattr(huggingface_hub, "hf_hub_download", unreachable)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        with pytest.raises(DiscriminatorSourceError, match=r"cannot be reached \(no connection\)"):
            resolve_discriminator_source("auto", MMS_ID)

    def test_hub_error_says_what_to_do(self, monkeypatch):
        import httpx2

        def failing(**kwargs):
            request = httpx2.Request("GET", "https://huggingface.co/facebook/mms-tts")
            raise HfHubHTTPError(
                "503 Server Error: Service Unavailable", response=httpx2.Response(503, request=request)
            )

        monkeypatch.setattr(huggingface_hub, "hf_hub_download", failing)
        with pytest.raises(DiscriminatorSourceError, match=r"failed \(503 Server Error.*--discriminator none"):
            resolve_discriminator_source("auto", MMS_ID)


class TestExplicitSources:
    def test_none_is_fresh_even_next_to_a_saved_one(self, tiny, tmp_dir):
        save_discriminator(tiny, tmp_dir)
        source = resolve_discriminator_source("none", tmp_dir)
        assert source.is_fresh and source.description == "a fresh discriminator (random weights), as asked"

    def test_folder_and_weights_file(self, tiny, tmp_dir):
        save_discriminator(tiny, tmp_dir / "run")
        for spec in (tmp_dir / "run", tmp_dir / "run" / "discriminator.safetensors"):
            source = resolve_discriminator_source(str(spec), "facebook/mms-tts-eng")
            assert source.kind == "saved" and source.path == tmp_dir / "run"
            assert _same_weights(source.load(), tiny)

    def test_original_checkpoint(self, tiny, tmp_dir, hub):
        _save_original_format(tiny, tmp_dir / "D_5000.pth")
        source = resolve_discriminator_source(str(tmp_dir / "D_5000.pth"), MMS_ID)
        assert source.kind == "original" and hub.requests == []
        assert source.description == f"{tmp_dir / 'D_5000.pth'}, an original VITS checkpoint, converted"
        assert _same_weights(source.load(VitsDiscriminatorConfig.tiny()), tiny)

    def test_corrupt_original_checkpoint_fails_when_loaded(self, tmp_dir):
        (tmp_dir / "D_1.pth").write_bytes(b"not a checkpoint")
        with pytest.raises(OSError, match="D_1.pth is not a readable PyTorch checkpoint"):
            resolve_discriminator_source(str(tmp_dir / "D_1.pth")).load()

    @pytest.mark.parametrize(
        "make, message",
        [
            (lambda root: root / "missing.pth", "no such file or folder; pass auto, none, a folder"),
            (lambda root: root, "the folder holds no discriminator.safetensors; convert an original checkpoint"),
            (lambda root: root / "weights.safetensors", "are read as discriminator.safetensors with"),
        ],
    )
    def test_unusable_paths(self, tmp_dir, make, message):
        (tmp_dir / "weights.safetensors").write_bytes(b"")
        with pytest.raises(DiscriminatorSourceError, match=message):
            resolve_discriminator_source(str(make(tmp_dir)), MMS_ID)

    def test_hub_original_checkpoint(self, tiny, hub):
        _save_original_format(tiny, hub.add("facebook/mms-tts", "full_models/eng/D_100000.pth"))
        source = resolve_discriminator_source("hf://facebook/mms-tts/full_models/eng/D_100000.pth", "someone/model")
        assert hub.requests == [("facebook/mms-tts", "full_models/eng/D_100000.pth")]
        assert source.kind == "original" and "CC BY-NC 4.0" in source.description
        assert _same_weights(source.load(VitsDiscriminatorConfig.tiny()), tiny)

    def test_hub_saved_discriminator_brings_its_config(self, tiny, hub):
        folder = hub.add("me/mms-tts-kmr-cv", "discriminator.safetensors").parent
        save_discriminator(tiny, folder)
        source = resolve_discriminator_source("hf://me/mms-tts-kmr-cv/discriminator.safetensors")
        assert hub.requests == [
            ("me/mms-tts-kmr-cv", "discriminator_config.json"),
            ("me/mms-tts-kmr-cv", "discriminator.safetensors"),
        ]
        assert _same_weights(source.load(), tiny)

    def test_hub_file_that_does_not_exist(self, hub):
        with pytest.raises(DiscriminatorSourceError, match="the Hub has no me/model/D_1.pth"):
            resolve_discriminator_source("hf://me/model/D_1.pth")

    def test_hub_file_offline(self):
        with pytest.raises(DiscriminatorSourceError) as error:
            resolve_discriminator_source("hf://me/model/disc/D_1.pth")
        assert str(local_copy_path("me/model", "disc/D_1.pth")) in str(error.value)

    @pytest.mark.parametrize("spec", ["hf://facebook/mms-tts", "hf://D_100000.pth", "hf://me//D.pth"])
    def test_malformed_hub_file(self, spec):
        with pytest.raises(DiscriminatorSourceError, match="a Hub file is hf://OWNER/REPO/PATH"):
            resolve_discriminator_source(spec)


def test_from_pretrained_uses_a_given_discriminator(tokenizer, tmp_dir, tiny):
    model = VitsForTraining.from_size("tiny", tokenizer.vocab_size)
    model.save_pretrained(tmp_dir / "model")
    assert _same_weights(VitsForTraining.from_pretrained(tmp_dir / "model").discriminator, model.discriminator)
    given = VitsForTraining.from_pretrained(tmp_dir / "model", discriminator=tiny).discriminator
    assert given is tiny
