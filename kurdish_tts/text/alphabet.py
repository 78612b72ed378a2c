"""
The Kurmanji symbol inventory: the letters of the Kurmanji Latin (Hawar) alphabet, the punctuation our own vocabulary
keeps, and the blank symbol that VITS intersperses between characters.

The alphabet has 31 letters, the 26 of the basic Latin alphabet plus ç ê î ş û; the vowels are a e ê i î o u û. Only
lowercase forms are listed: [`~kurdish_tts.text.normalize_text`] lowercases before anything is looked up here.
"""

KURMANJI_LETTERS = "abcçdeêfghiîjklmnopqrsştuûvwxyz"
"""The 31 lowercase letters of the Kurmanji Latin (Hawar) alphabet, in alphabetical order."""

KURMANJI_VOWELS = "aeêiîouû"
"""The eight vowels; number words ending in one of them take a buffer `y` before a vowel-initial suffix (du-y-em)."""

PUNCTUATION = "'-.,?!"
"""Punctuation kept by the from-scratch vocabulary: apostrophe (elision, l'ser), hyphen, and the four marks that
shape prosody. Everything else is reported as removed by the normalizer rather than guessed at."""

BLANK_TOKEN = "_"
"""The VITS blank/pad symbol, id 0: `add_blank=True` puts it between every two characters and at both ends."""

SPACE = " "


def kurmanji_vocabulary() -> list[str]:
    """
    The ordered symbols of the from-scratch Kurmanji vocabulary; a symbol's index is its token id.

    Returns:
        `list[str]`: [`BLANK_TOKEN`] first (it must be id 0, the id `VitsTokenizer` intersperses), then the space,
        the 31 letters of [`KURMANJI_LETTERS`] and the marks of [`PUNCTUATION`]: 39 symbols.
    """
    return [BLANK_TOKEN, SPACE, *KURMANJI_LETTERS, *PUNCTUATION]
