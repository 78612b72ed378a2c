"""
Kurmanji text normalization for TTS: one canonical spelling of every character, numbers read out, and an exact
account of every character that had to be dropped.

A TTS tokenizer silently skips characters outside its vocabulary (`VitsTokenizer` does with `normalize=True`). A
skipped letter or digit means the audio says something the text no longer contains, which teaches the model wrong
alignments; so [`normalize_text`] never drops anything silently. Whatever it strips is counted in
[`NormalizedText.removed`], and [`NormalizedText.removed_letters`] picks out the letters and digits among them, the
ones that make a text-audio pair unusable.
"""

import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from .numbers import expand_numbers as _expand_numbers


@dataclass
class NormalizedText:
    """
    The result of [`normalize_text`].

    Args:
        text (`str`):
            The normalized text: NFC, lowercase, plain quotes and dashes, numbers spelled out, single spaces.
        removed (`dict[str, int]`, *optional*, defaults to `{}`):
            Every character stripped because it cannot be spoken (not in `allowed_characters`, or an invisible format
            or control character), with how often it occurred. Keys are the characters after the mapping steps,
            e.g. `'"'` for a stripped `«`.
    """

    text: str
    removed: dict[str, int] = field(default_factory=dict)

    @property
    def removed_letters(self) -> dict[str, int]:
        """The removed letters and digits (`str.isalnum()`): these corrupt text-audio pairs, so callers drop them."""
        return {char: count for char, count in self.removed.items() if char.isalnum()}


# Compatibility forms worth folding: full/half-width forms from East Asian input methods and the Latin ligatures
# (U+FB00-FB06) that PDF text extraction produces. Other compatibility forms (superscripts, fractions, Roman numerals)
# change meaning under NFKC, so they are left for the removal report instead.
_FOLDED_DECOMPOSITION_TAGS = ("<wide>", "<narrow>")
_LATIN_LIGATURES = range(0xFB00, 0xFB07)

# Turkish keyboards type dotless ı for Kurmanji i; after NFC, "I" + U+0307 is already "İ".
_TURKISH_I_MAP = str.maketrans({"ı": "i", "İ": "i"})

_PUNCTUATION_MAP = str.maketrans(
    {
        "‘": "'",
        "’": "'",
        "‚": "'",
        "‛": "'",
        "′": "'",
        "`": "'",
        "´": "'",
        "“": '"',
        "”": '"',
        "„": '"',
        "‟": '"',
        "″": '"',
        "«": '"',
        "»": '"',
        "‹": '"',
        "›": '"',
        "‐": "-",
        "‑": "-",
        "‒": "-",
        "–": "-",
        "—": "-",
        "―": "-",
        "−": "-",
        "…": "...",
    }
)


_QUOTES = frozenset("'\"")


def _unicode_canonical(text: str, removed: Counter) -> str:
    text = unicodedata.normalize("NFC", text)
    characters = []
    for char in text:
        if ord(char) in _LATIN_LIGATURES or unicodedata.decomposition(char).startswith(_FOLDED_DECOMPOSITION_TAGS):
            characters.append(unicodedata.normalize("NFKC", char))
        elif unicodedata.category(char) in ("Cf", "Cc") and not char.isspace():
            # Zero-width spaces, joiners, soft hyphens, BOMs and bidi marks have no sound; they are dropped here,
            # before any later step can see them, and reported like every other dropped character.
            removed[char] += 1
        else:
            characters.append(char)
    return "".join(characters)


def _remove_unspeakable(text: str, allowed: set[str], removed: Counter) -> str:
    # A dropped punctuation mark or symbol separated two words ("14:30", "km/h"), so it leaves a space behind. Quote
    # marks hug the word they quote and may carry its case ending ('kovara "Time"ê'), and a dropped letter, digit or
    # combining mark was part of a word: those leave nothing.
    gap = " " if " " in allowed else ""
    characters = []
    for char in text:
        if char in allowed:
            characters.append(char)
            continue
        removed[char] += 1
        if unicodedata.category(char)[0] in "PSZ" and char not in _QUOTES:
            characters.append(gap)
    return "".join(characters)


def normalize_text(
    text: str, allowed_characters: Iterable[str] | None = None, *, expand_numbers: bool = True
) -> NormalizedText:
    """
    Normalize Kurmanji text for a TTS tokenizer and report every character that could not be kept.

    The steps run in this order:

    1. Unicode NFC, so decomposed input ("c" + U+0327) and precomposed "ç" give identical output, plus folding of
       full-width forms and Latin ligatures; invisible format and control characters are removed (and reported).
    2. Turkish dotless/dotted i: "ı" and "İ" become "i". This must precede lowercasing, because `"İ".lower()` is
       "i" + U+0307, two code points; NFC in step 1 has already turned "I" + U+0307 into "İ".
    3. Lowercasing.
    4. Typographic quotes to "'" (‘ ’ ‚ ‛ ′ ` ´) or '"' (“ ” „ ‟ ″ « » ‹ ›), dashes and minus signs to "-", "…" to
       "...". A '"' the vocabulary lacks is then removed and reported in step 7 like any other character.
    5. Numbers to words ([`~kurdish_tts.text.expand_numbers`]), when `expand_numbers` is set. This comes after
       step 4 so that "−5" is read as a negative number and "1’ê" keeps its ending, after step 3 so endings are
       already lowercase, and before step 6 so that a line break between two numbers is not taken for a thousands
       separator.
    6. Every run of whitespace (tabs, newlines, no-break and thin spaces) becomes one space; the ends are stripped.
    7. When `allowed_characters` is given, every other character is removed and counted in `removed`. A removed
       punctuation mark or symbol other than a quote leaves a space ("14:30" -> "çardeh sî", not "çardehsî"); then
       spaces are collapsed again.

    Args:
        text (`str`):
            Raw text, e.g. a transcript.
        allowed_characters (`Iterable[str]`, *optional*):
            The characters the tokenizer can speak, e.g. [`~kurdish_tts.text.tokenizer_characters`]. When `None`,
            every character survives step 7.
        expand_numbers (`bool`, *optional*, defaults to `True`):
            Spell out numbers. When `False`, digits reach step 7 and, if not allowed, are reported as removed
            letters (they are alphanumeric), so the sample gets dropped rather than mis-aligned.

    Returns:
        [`NormalizedText`]: The text and the count of every removed character.

    Example:

    ```python
    >>> result = normalize_text("«Sala 1991» – ÇÊÎŞÛ", allowed_characters=set("abcçdeêfghiîjklmnopqrsştuûvwxyz -"))
    >>> result.text
    'sala hezar û neh sed û nod û yek - çêîşû'
    >>> result.removed, result.removed_letters
    ({'"': 2}, {})
    ```
    """
    removed: Counter = Counter()
    text = _unicode_canonical(text, removed)
    # "i" + U+0307 is what Python's own "İ".lower() leaves behind in text that was lowercased upstream.
    text = text.translate(_TURKISH_I_MAP).replace("i\u0307", "i")
    text = text.lower()
    text = text.translate(_PUNCTUATION_MAP)
    if expand_numbers:
        text = _expand_numbers(text)
    text = " ".join(text.split())
    if allowed_characters is not None:
        text = _remove_unspeakable(text, set(allowed_characters), removed)
        text = " ".join(text.split())
    return NormalizedText(text=text, removed=dict(removed))
