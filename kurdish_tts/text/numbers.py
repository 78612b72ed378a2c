"""
Numbers to Kurmanji words, so a TTS model hears what a reader would say instead of digits it cannot pronounce.

Cardinals are built the standard way: tens, hundreds, thousands and millions are joined by `û` ("and") at every
level, a count of one is left out before `sed`, `hezar` and `milyon`, and the multiplier is a separate word:

    21 -> bîst û yek          300 -> sê sed              1991 -> hezar û neh sed û nod û yek
    2024 -> du hezar û bîst û çar                       1 000 000 -> milyon     2 500 000 -> du milyon û pênc sed hezar

Spelling. Kurmanji number words have several written forms (regional speech, Sorani or Turkish influence, joined or
separate hundreds). One form is used everywhere ([`CARDINAL_WORDS`]); the others are listed in [`SPELLING_VARIANTS`]
(variant -> standard) so transcripts can be compared with what this module writes:

| value     | standard (used here) | variants seen in writing                   | basis for the choice          |
|-----------|----------------------|--------------------------------------------|-------------------------------|
| 2         | du                   | didu, dido, dudu                           | [W]: the others are dialectal |
| 3         | sê                   | sisê                                       | [W]                           |
| 5         | pênc                 | pênç                                       | [W]: pênç is Turkish spelling |
| 8         | heşt                 | heyşt                                      | [W]                           |
| 11        | yazdeh               | yanzdeh, yazde                             | [W]                           |
| 12        | dazdeh               | diwanzdeh, duwazdeh, dwanzdeh, diwazdeh    | [W]                           |
| 15        | pazdeh               | panzdeh                                    | [W], [C]                      |
| 16        | şazdeh               | şanzdeh                                    | [W], [C]                      |
| 17        | hevdeh               | hivdeh, hefdeh                             | [W], [C]; 2x in [CV]          |
| 18        | hejdeh               | hijdeh                                     | [W], [C]                      |
| 30        | sî                   | sih, sîh                                   | [W]; 4x in [CV]               |
| 60        | şêst                 | şêşt, şest                                 | [Z], [C], [N]                 |
| 90        | nod                  | not, nehwêd                                | [W], [C]                      |
| 200 ..900 | du sed .. neh sed    | dused, sêsed, ... (joined)                 | [I] "sê sed"; [C]; [CV]       |
| 10 000    | deh hezar            | dehhezar (joined)                          | as the hundreds               |
| 10^6      | milyon               | mîlyon, milyonek                           | [W], [C]; no "one", as hezar  |

Other readings:

- Ordinals take `-em` after a consonant and `-yem` after a vowel (yekem, duyem, sêyem, çarem, bîst û yekem); a final
  `î` shortens before the buffer `y` as in all Kurmanji suffixation (sî -> siyem, pêncî -> pênciyem). The `-emîn`
  form (yekemîn, duyemîn) is the one mostly placed before the noun ("yekemîn salvegera"), hence
  `ordinal_to_words(..., attributive=True)`; both are standard [Z], and [CV] has both ("cara yekemîn" too).
- Any vowel-initial suffix written on digits is glued on with the same rule, so case and ordinal endings read as
  they are spoken: "1em" -> yekem, "3yemîn" -> sêyemîn, "1984an" -> ... çaran, "2yan" -> duyan, "1ê" -> yekê.
  A consonant-initial tail ("5km") is read as a separate word.
- Percentages: "%50", "50%", "50 %" -> "ji sedî pêncî" (the usual newspaper reading, [CV] "ji sedî sî"; "bi sedî" is
  also heard).
- Decimals: the mark is read `xal` ("point"; the comma, `bêhnok`, is also heard). Up to three fractional digits are
  read as a number after their leading zeros ("3,5" -> sê xal pênc, "2,05" -> du xal sifir pênc, "1,25" -> yek xal
  bîst û pênc); longer fractions digit by digit. Which mark means what: a dot followed by groups of exactly three
  digits is a thousands separator (European style: "1.000.000"), as are two or more comma groups ("1,000,000") and
  spaces, no-break spaces or thin spaces between groups of three ("1 000"); any other dot or comma between digits
  is a decimal mark.
- Negative numbers: a `-` glued to the digits and not preceded by a letter, digit or closing bracket reads `kêm`
  ("minus"; "mînus" is also heard): "-5" -> kêm pênc, while "1990-1995" and "1990 - 1995" stay ranges.
- Years are plain cardinals ("sala 1991" -> sala hezar û neh sed û nod û yek), as Kurmanji reads them.
- Digit strings outside 0 ... 999 999 999, and those with a leading zero (phone numbers, codes such as "007"), are
  read digit by digit rather than rejected.
- Not handled: dates ("2.3.2015" reads as a decimal then a year), clock times ("14:30"), fractions ("1/2"), Roman
  numerals, and dot-ordinals ("1."), which cannot be told apart from the end of a sentence.

Sources: [I] the examples given in the project issue (authoritative where they speak); [W] the Kurdish Wiktionary
orthography appendix "Pêvek:Rastnivîsî/Hejmar" (ku.wiktionary.org); [Z] Husein Muhammed, "Navên hejmaran û
hejmarsazî", parts 3, 4, 7 and 11 (zimannas.wordpress.com, 2016-2017); [C] CrowdsourceKurdish/Kurdish-Numbers-to-Words
(GitHub); [N] kurd-cc/kurdish-numbers-to-words (npm); [CV] the Common Voice Kurmanji sentences in
/work/shared/data/kmr_sentences.txt.
"""

import re
import unicodedata

from .alphabet import KURMANJI_VOWELS

MAX_NUMBER = 999_999_999
"""The largest number [`number_to_words`] spells; larger digit strings in text are read digit by digit."""

AND_WORD = "û"
HUNDRED_WORD = "sed"
THOUSAND_WORD = "hezar"
MILLION_WORD = "milyon"
DECIMAL_POINT_WORD = "xal"
PERCENT_WORDS = "ji sedî"
MINUS_WORD = "kêm"

CARDINAL_WORDS: dict[int, str] = {
    0: "sifir",
    1: "yek",
    2: "du",
    3: "sê",
    4: "çar",
    5: "pênc",
    6: "şeş",
    7: "heft",
    8: "heşt",
    9: "neh",
    10: "deh",
    11: "yazdeh",
    12: "dazdeh",
    13: "sêzdeh",
    14: "çardeh",
    15: "pazdeh",
    16: "şazdeh",
    17: "hevdeh",
    18: "hejdeh",
    19: "nozdeh",
    20: "bîst",
    30: "sî",
    40: "çil",
    50: "pêncî",
    60: "şêst",
    70: "heftê",
    80: "heştê",
    90: "nod",
    100: HUNDRED_WORD,
    1000: THOUSAND_WORD,
    1_000_000: MILLION_WORD,
}
"""The standard spelling of every number word the cardinals are built from."""

SPELLING_VARIANTS: dict[str, str] = {
    "didu": "du",
    "dido": "du",
    "dudu": "du",
    "sisê": "sê",
    "pênç": "pênc",
    "heyşt": "heşt",
    "yanzdeh": "yazdeh",
    "yazde": "yazdeh",
    "diwanzdeh": "dazdeh",
    "duwazdeh": "dazdeh",
    "dwanzdeh": "dazdeh",
    "diwazdeh": "dazdeh",
    "panzdeh": "pazdeh",
    "şanzdeh": "şazdeh",
    "hivdeh": "hevdeh",
    "hefdeh": "hevdeh",
    "hijdeh": "hejdeh",
    "sih": "sî",
    "sîh": "sî",
    "şêşt": "şêst",
    "şest": "şêst",
    "not": "nod",
    "nehwêd": "nod",
    "dused": "du sed",
    "sêsed": "sê sed",
    "çarsed": "çar sed",
    "pêncsed": "pênc sed",
    "şeşsed": "şeş sed",
    "heftsed": "heft sed",
    "heştsed": "heşt sed",
    "nehsed": "neh sed",
    "dehhezar": "deh hezar",
    "sedhezar": "sed hezar",
    "mîlyon": "milyon",
    "milyonek": "milyon",
}
"""Other written forms of the number words (variant -> the standard form this module writes)."""


def _check_range(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"expected an int, got {type(n).__name__} {n!r}")
    if not 0 <= n <= MAX_NUMBER:
        raise ValueError(
            f"{n} is outside the range 0 ... {MAX_NUMBER:_} that number_to_words spells; "
            "expand_numbers reads such numbers digit by digit"
        )


def _below_thousand(n: int) -> str:
    hundreds, rest = divmod(n, 100)
    parts = []
    if hundreds:
        parts.append(HUNDRED_WORD if hundreds == 1 else f"{CARDINAL_WORDS[hundreds]} {HUNDRED_WORD}")
    if rest:
        tens, units = divmod(rest, 10)
        if rest < 20:
            parts.append(CARDINAL_WORDS[rest])
        else:
            parts.append(CARDINAL_WORDS[tens * 10])
            if units:
                parts.append(CARDINAL_WORDS[units])
    return f" {AND_WORD} ".join(parts)


def number_to_words(n: int) -> str:
    """
    Spell a cardinal number in Kurmanji.

    Args:
        n (`int`):
            The number, 0 ... 999 999 999.

    Returns:
        `str`: The words, lowercase, e.g. `"hezar û neh sed û nod û yek"` for 1991.

    Raises:
        `ValueError`: when `n` is negative or above [`MAX_NUMBER`].
        `TypeError`: when `n` is not an `int` (a `bool` or a `float` included).
    """
    _check_range(n)
    if n == 0:
        return CARDINAL_WORDS[0]
    millions, rest = divmod(n, 1_000_000)
    thousands, units = divmod(rest, 1000)
    parts = []
    for count, scale_word in ((millions, MILLION_WORD), (thousands, THOUSAND_WORD)):
        if count:
            # "hezar", not "yek hezar": a count of one is left out before a scale word, as before "sed".
            parts.append(scale_word if count == 1 else f"{_below_thousand(count)} {scale_word}")
    if units:
        parts.append(_below_thousand(units))
    return f" {AND_WORD} ".join(parts)


def _attach_suffix(words: str, suffix: str) -> str:
    """Glue a vowel-initial suffix onto the last word, inserting the buffer `y` after a vowel (du-y-em, si-y-an)."""
    if len(suffix) > 1 and suffix[0] == "y" and suffix[1] in KURMANJI_VOWELS:
        # Writers put the buffer on or leave it off ("3em", "3yem"); it is recomputed from the spoken word.
        suffix = suffix[1:]
    if words[-1] in KURMANJI_VOWELS:
        if words[-1] == "î":
            words = words[:-1] + "i"
        return f"{words}y{suffix}"
    return words + suffix


def ordinal_to_words(n: int, attributive: bool = False) -> str:
    """
    Spell an ordinal number in Kurmanji: the cardinal with `-em` (after a consonant) or `-yem` (after a vowel).

    Args:
        n (`int`):
            The number, 0 ... 999 999 999.
        attributive (`bool`, *optional*, defaults to `False`):
            Use the `-(y)emîn` form mostly placed before a noun ("yekemîn car") instead of `-(y)em` ("cara yekem").

    Returns:
        `str`: e.g. `"yekem"`, `"duyem"`, `"sêyem"`, `"çarem"`, `"siyem"`, or `"bîst û yekemîn"` for 21 attributive.
    """
    return _attach_suffix(number_to_words(n), "emîn" if attributive else "em")


def _read_digits(digits: str) -> str:
    return " ".join(CARDINAL_WORDS[int(digit)] for digit in digits)


def _read_integer(digits: str) -> str:
    if (len(digits) > 1 and digits[0] == "0") or int(digits) > MAX_NUMBER:
        return _read_digits(digits)
    return number_to_words(int(digits))


def _read_fraction(digits: str) -> str:
    if len(digits) > 3:
        return _read_digits(digits)
    significant = digits.lstrip("0")
    zeros = [CARDINAL_WORDS[0]] * (len(digits) - len(significant))
    return " ".join(zeros + ([number_to_words(int(significant))] if significant else []))


_GROUP_SPACES = " \u00a0\u2009\u202f"
_NUMBER_PATTERN = re.compile(
    rf"""
    (?P<sign>(?<![\w)\]])-(?=[0-9%]))?
    (?P<percent_before>%[ \u00a0]?)?
    (?<![0-9])
    (?P<integer>
        [1-9][0-9]{{0,2}}(?:\.[0-9]{{3}})+(?![0-9])
      | [1-9][0-9]{{0,2}}(?:,[0-9]{{3}}){{2,}}(?![0-9])
      | [1-9][0-9]{{0,2}}(?:[{_GROUP_SPACES}][0-9]{{3}})+(?![0-9])
      | [0-9]+
    )
    (?:[.,](?P<fraction>[0-9]+))?
    (?P<percent_after>[ \u00a0]?%)?
    (?P<suffix>['’`]?[^\W\d_]+)?
    """,
    re.VERBOSE,
)
_NON_ASCII_DIGIT = re.compile(r"(?![0-9])\d")


def _spell_match(match: re.Match, text: str) -> str:
    integer = re.sub(rf"[.,{_GROUP_SPACES}]", "", match["integer"])
    words = _read_integer(integer)
    if match["fraction"] is not None:
        words = f"{words} {DECIMAL_POINT_WORD} {_read_fraction(match['fraction'])}"
    if match["percent_before"] or match["percent_after"]:
        words = f"{PERCENT_WORDS} {words}"
    if match["sign"]:
        words = f"{MINUS_WORD} {words}"
    suffix = (match["suffix"] or "").lstrip("'’`").lower()
    if suffix:
        # Kurmanji endings on numbers start with a vowel or the buffer y ("1ê", "2yan", "3yemîn"); any other tail
        # ("5km") is a separate word.
        is_ending = suffix[0] in KURMANJI_VOWELS or (
            len(suffix) > 1 and suffix[0] == "y" and suffix[1] in KURMANJI_VOWELS
        )
        words = _attach_suffix(words, suffix) if is_ending else f"{words} {suffix}"
    # Digits glued to a word ("covid19") become a separate spoken word, not one long nonsense word.
    if match.start() > 0 and text[match.start() - 1].isalpha():
        words = " " + words
    return words


def expand_numbers(text: str) -> str:
    """
    Replace the numerals in running text with Kurmanji words (see the module docstring for the reading rules).

    Args:
        text (`str`):
            Any text. Non-ASCII decimal digits (Arabic-Indic ٠-٩, Persian ۰-۹, ...) are read like 0-9.

    Returns:
        `str`: The text with every digit spelled out; everything else is left as it was.

    Example:

    ```python
    >>> expand_numbers("Di sala 1991an de ji sedî 50 zêde bû, germahî -5 bû.")
    'Di sala hezar û neh sed û nod û yekan de ji sedî pêncî zêde bû, germahî kêm pênc bû.'
    ```
    """
    text = _NON_ASCII_DIGIT.sub(lambda digit: str(unicodedata.decimal(digit[0])), text)
    return _NUMBER_PATTERN.sub(lambda match: _spell_match(match, text), text)
