"""Kurmanji text front end: the symbol inventory, numbers to words, normalization and VITS tokenizers."""

from .alphabet import BLANK_TOKEN, KURMANJI_LETTERS, KURMANJI_VOWELS, PUNCTUATION, kurmanji_vocabulary
from .normalize import NormalizedText, normalize_text
from .numbers import (
    CARDINAL_WORDS,
    MAX_NUMBER,
    SPELLING_VARIANTS,
    expand_numbers,
    number_to_words,
    ordinal_to_words,
)
from .tokenizer import (
    KURMANJI_LANGUAGE,
    KURMANJI_TOKENIZER_NAME,
    build_kurmanji_tokenizer,
    encode,
    find_unknown_characters,
    load_tokenizer,
    tokenizer_characters,
)

__all__ = [
    "BLANK_TOKEN",
    "CARDINAL_WORDS",
    "KURMANJI_LANGUAGE",
    "KURMANJI_LETTERS",
    "KURMANJI_TOKENIZER_NAME",
    "KURMANJI_VOWELS",
    "MAX_NUMBER",
    "PUNCTUATION",
    "SPELLING_VARIANTS",
    "NormalizedText",
    "build_kurmanji_tokenizer",
    "encode",
    "expand_numbers",
    "find_unknown_characters",
    "kurmanji_vocabulary",
    "load_tokenizer",
    "normalize_text",
    "number_to_words",
    "ordinal_to_words",
    "tokenizer_characters",
]
