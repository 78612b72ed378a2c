"""
Kurmanji tokenizers for VITS/MMS: a from-scratch character vocabulary in MMS style, loading of checkpoint tokenizers,
and the checks that keep `VitsTokenizer` from silently dropping characters.

`VitsTokenizer` (with `normalize=True`) lowercases and then deletes every character that is not in its vocabulary,
without a warning. [`tokenizer_characters`] gives the characters a tokenizer can speak, to pass to
[`~kurdish_tts.text.normalize_text`] as `allowed_characters` so that drops are counted instead;
[`find_unknown_characters`] counts them over a corpus; [`encode`] refuses text the tokenizer would shorten.
"""

import json
import os
import tempfile
from collections import Counter
from collections.abc import Iterable

from transformers import VitsTokenizer
from transformers.utils import cached_file

from .alphabet import BLANK_TOKEN, kurmanji_vocabulary
from .normalize import normalize_text

KURMANJI_TOKENIZER_NAME = "kurmanji"
"""The name [`load_tokenizer`] resolves to [`build_kurmanji_tokenizer`]: the tokenizer that needs no download."""

KURMANJI_LANGUAGE = "kmr"
"""ISO 639-3 code of Northern Kurdish (Kurmanji), as used by the MMS checkpoints (`facebook/mms-tts-kmr-...`)."""


def build_kurmanji_tokenizer(save_directory: str | os.PathLike | None = None) -> VitsTokenizer:
    """
    Build the from-scratch Kurmanji character tokenizer: one id per symbol of
    [`~kurdish_tts.text.kurmanji_vocabulary`], the blank `"_"` as id 0 and pad token, blanks interspersed.

    The vocabulary has 39 symbols (`tokenizer.vocab_size`, the size a `VitsConfig` needs). Like the MMS tokenizers,
    it keeps `VitsTokenizer`'s default `unk_token="<unk>"`, which gets id 39, outside the model's embedding table: with
    `normalize=True` it is never produced, and should an unknown symbol reach the model anyway it fails loudly instead
    of being read as some letter.

    Args:
        save_directory (`str` or `os.PathLike`, *optional*):
            When given, the tokenizer is written there with `save_pretrained`, loadable by
            `VitsTokenizer.from_pretrained(save_directory)` and `AutoTokenizer.from_pretrained(save_directory)`.

    Returns:
        `VitsTokenizer`: with `add_blank=True`, `normalize=True`, `phonemize=False` and `language="kmr"`.
    """
    vocab = {symbol: index for index, symbol in enumerate(kurmanji_vocabulary())}
    with tempfile.TemporaryDirectory() as tmp:
        vocab_file = os.path.join(tmp, "vocab.json")
        with open(vocab_file, "w", encoding="utf-8") as handle:
            json.dump(vocab, handle, ensure_ascii=False, indent=2)
        # The vocabulary is read into memory here; nothing refers to the temporary file afterwards. phonemize=False
        # because VitsTokenizer defaults to espeak phonemes, which MMS-style character models do not use.
        tokenizer = VitsTokenizer(
            vocab_file,
            pad_token=BLANK_TOKEN,
            language=KURMANJI_LANGUAGE,
            add_blank=True,
            normalize=True,
            phonemize=False,
        )
    if save_directory is not None:
        tokenizer.save_pretrained(save_directory)
    return tokenizer


def load_tokenizer(name_or_path: str) -> VitsTokenizer:
    """
    Load a `VitsTokenizer` from the Hub or a local model directory, or build the Kurmanji one.

    Args:
        name_or_path (`str`):
            [`KURMANJI_TOKENIZER_NAME`] (`"kurmanji"`) for [`build_kurmanji_tokenizer`], a Hub id such as
            `"facebook/mms-tts-kmr-script_latin"`, or a local directory holding `vocab.json`.

    Returns:
        `VitsTokenizer`

    Raises:
        `OSError`: when the files cannot be found; the message names the offline alternatives.
    """
    if name_or_path == KURMANJI_TOKENIZER_NAME:
        return build_kurmanji_tokenizer()
    try:
        # Resolved first because VitsTokenizer.from_pretrained reports a missing vocab.json as a TypeError
        # (it opens vocab_file=None); cached_file raises an OSError that says what went wrong.
        cached_file(name_or_path, "vocab.json")
        return VitsTokenizer.from_pretrained(name_or_path)
    except OSError as error:
        if os.path.isdir(name_or_path):
            raise OSError(
                f"{name_or_path!r} is a local directory without a VitsTokenizer vocab.json; save one there with "
                f"build_kurmanji_tokenizer({name_or_path!r}) or tokenizer.save_pretrained({name_or_path!r})."
            ) from error
        raise OSError(
            f"Could not load the tokenizer {name_or_path!r}: the Hugging Face Hub is unreachable (no network, or "
            f"HF_HUB_OFFLINE=1) and it is not in the local cache, or no such model exists. Offline, use "
            f"{KURMANJI_TOKENIZER_NAME!r} (the built-in Kurmanji character vocabulary) or the path of a local model "
            f"directory that holds vocab.json. Original error: {error}"
        ) from error


def tokenizer_characters(tokenizer: VitsTokenizer) -> set[str]:
    """
    The single characters a tokenizer can speak: its vocabulary entries of length one.

    The pad token is left out only when it is not a letter, i.e. a dedicated blank such as our `"_"`: a `"_"` in
    text would be encoded as the blank, a silent corruption. MMS checkpoints use a real letter as pad token (the
    Kurmanji one uses `"n"`), and that letter stays.

    Args:
        tokenizer (`VitsTokenizer`):
            Any tokenizer with `get_vocab()`.

    Returns:
        `set[str]`: e.g. the space, the 31 Kurmanji letters and `'-.,?!` for [`build_kurmanji_tokenizer`].
    """
    characters = {token for token in tokenizer.get_vocab() if len(token) == 1}
    pad_token = tokenizer.pad_token
    if pad_token is not None and not pad_token.isalpha():
        characters.discard(pad_token)
    return characters


def find_unknown_characters(texts: Iterable[str], tokenizer: VitsTokenizer, *, expand_numbers: bool = True) -> Counter:
    """
    Count the characters that the tokenizer would silently drop from these texts once they are normalized.

    Args:
        texts (`Iterable[str]`):
            Raw texts, e.g. a dataset's transcripts.
        tokenizer (`VitsTokenizer`):
            The tokenizer the texts are meant for.
        expand_numbers (`bool`, *optional*, defaults to `True`):
            Passed to [`~kurdish_tts.text.normalize_text`]; with `False`, digits show up as unknown characters.

    Returns:
        `collections.Counter`: character -> number of occurrences over all texts; empty when nothing would be lost.
    """
    speakable = tokenizer_characters(tokenizer)
    unknown = Counter()
    for text in texts:
        normalized = normalize_text(text, expand_numbers=expand_numbers).text
        unknown.update(char for char in normalized if char not in speakable)
    return unknown


def encode(text: str, tokenizer: VitsTokenizer) -> list[int]:
    """
    Token ids for already-normalized text (the output of [`~kurdish_tts.text.normalize_text`]).

    With `add_blank=True` a text of n characters gives 2n + 1 ids, the blank id 0 at every even position.

    Args:
        text (`str`):
            Normalized text, holding only [`tokenizer_characters`].
        tokenizer (`VitsTokenizer`):
            The tokenizer; its `add_blank` setting is respected.

    Returns:
        `list[int]`

    Raises:
        `ValueError`: when the text holds characters the tokenizer would silently drop; normalize it with
        `allowed_characters=tokenizer_characters(tokenizer)` first.
    """
    # With normalize=True the tokenizer lowercases before it filters, so only what survives lowercasing counts.
    characters = set(text.lower() if tokenizer.normalize else text)
    unknown = sorted(characters - tokenizer_characters(tokenizer))
    if unknown:
        raise ValueError(
            f"the tokenizer cannot speak {''.join(unknown)!r} and would silently drop it from {text!r}; normalize the "
            "text with normalize_text(text, allowed_characters=tokenizer_characters(tokenizer)) first"
        )
    return tokenizer(text)["input_ids"]
