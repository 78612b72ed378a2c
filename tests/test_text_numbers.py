import pytest

from kurdish_tts.text import (
    CARDINAL_WORDS,
    MAX_NUMBER,
    SPELLING_VARIANTS,
    expand_numbers,
    number_to_words,
    ordinal_to_words,
)

# The first block are the examples and are authoritative; the rest pin down the chosen standard spellings.
CARDINALS = [
    (0, "sifir"),
    (21, "bîst û yek"),
    (100, "sed"),
    (300, "sê sed"),
    (1991, "hezar û neh sed û nod û yek"),
    (2024, "du hezar û bîst û çar"),
    (1000, "hezar"),
    (1_000_000, "milyon"),
    (1, "yek"),
    (2, "du"),
    (3, "sê"),
    (4, "çar"),
    (5, "pênc"),
    (6, "şeş"),
    (7, "heft"),
    (8, "heşt"),
    (9, "neh"),
    (10, "deh"),
    (11, "yazdeh"),
    (12, "dazdeh"),
    (13, "sêzdeh"),
    (14, "çardeh"),
    (15, "pazdeh"),
    (16, "şazdeh"),
    (17, "hevdeh"),
    (18, "hejdeh"),
    (19, "nozdeh"),
    (20, "bîst"),
    (30, "sî"),
    (40, "çil"),
    (50, "pêncî"),
    (60, "şêst"),
    (70, "heftê"),
    (80, "heştê"),
    (90, "nod"),
    (99, "nod û neh"),
    (101, "sed û yek"),
    (110, "sed û deh"),
    (120, "sed û bîst"),
    (123, "sed û bîst û sê"),
    (200, "du sed"),
    (400, "çar sed"),
    (999, "neh sed û nod û neh"),
    (1001, "hezar û yek"),
    (1100, "hezar û sed"),
    (1234, "hezar û du sed û sî û çar"),
    (1500, "hezar û pênc sed"),
    (2000, "du hezar"),
    (10_000, "deh hezar"),
    (12_345, "dazdeh hezar û sê sed û çil û pênc"),
    (100_000, "sed hezar"),
    (101_000, "sed û yek hezar"),
    (187_262, "sed û heştê û heft hezar û du sed û şêst û du"),
    (1_000_001, "milyon û yek"),
    (1_001_000, "milyon û hezar"),
    (2_500_000, "du milyon û pênc sed hezar"),
    (999_999_999, "neh sed û nod û neh milyon û neh sed û nod û neh hezar û neh sed û nod û neh"),
]

ORDINALS = [
    (1, False, "yekem"),
    (2, False, "duyem"),
    (3, False, "sêyem"),
    (4, False, "çarem"),
    (5, False, "pêncem"),
    (10, False, "dehem"),
    (21, False, "bîst û yekem"),
    (30, False, "siyem"),
    (50, False, "pênciyem"),
    (70, False, "heftêyem"),
    (100, False, "sedem"),
    (1000, False, "hezarem"),
    (1, True, "yekemîn"),
    (2, True, "duyemîn"),
    (3, True, "sêyemîn"),
    (21, True, "bîst û yekemîn"),
]

EXPANSIONS = [
    ("sala 1991", "sala hezar û neh sed û nod û yek"),
    ("Di sala 2024an de", "Di sala du hezar û bîst û çaran de"),
    ("sala 2022’an", "sala du hezar û bîst û duyan"),
    ("18ê Kanûnê", "hejdehê Kanûnê"),
    ("roja 1ê", "roja yekê"),
    ("1em", "yekem"),
    ("2yem", "duyem"),
    ("3em", "sêyem"),
    ("3yemîn", "sêyemîn"),
    ("21emîn", "bîst û yekemîn"),
    ("ji 5'ê", "ji pêncê"),
    ("1.000.000 kes", "milyon kes"),
    ("1.000 kes", "hezar kes"),
    ("1 000 kes", "hezar kes"),
    ("1\u00a0000 kes", "hezar kes"),
    ("1,000,000", "milyon"),
    ("3,5 kg", "sê xal pênc kg"),
    ("3.5", "sê xal pênc"),
    ("2,05", "du xal sifir pênc"),
    ("1,25", "yek xal bîst û pênc"),
    ("3,14159", "sê xal yek çar yek pênc neh"),
    ("1.234,5", "hezar û du sed û sî û çar xal pênc"),
    ("%50", "ji sedî pêncî"),
    ("50%", "ji sedî pêncî"),
    ("50 %", "ji sedî pêncî"),
    ("%3,5", "ji sedî sê xal pênc"),
    ("germahî -5 bû", "germahî kêm pênc bû"),
    ("(-12)", "(kêm dazdeh)"),
    ("1990-1995", "hezar û neh sed û nod-hezar û neh sed û nod û pênc"),
    ("1990 - 1995", "hezar û neh sed û nod - hezar û neh sed û nod û pênc"),
    ("COVID-19", "COVID-nozdeh"),
    ("5km", "pênc km"),
    ("covid19", "covid nozdeh"),
    ("007", "sifir sifir heft"),
    ("1234567890", "yek du sê çar pênc şeş heft heşt neh sifir"),
    ("٢٠٢٤", "du hezar û bîst û çar"),
    ("Sala 1991.", "Sala hezar û neh sed û nod û yek."),
    ("bê jimar", "bê jimar"),
]


class TestNumberToWords:
    @pytest.mark.parametrize("number, words", CARDINALS)
    def test_number_to_words_known_values(self, number, words):
        assert number_to_words(number) == words

    @pytest.mark.parametrize("number", [-1, MAX_NUMBER + 1, 10**12])
    def test_number_to_words_out_of_range_raises(self, number):
        with pytest.raises(ValueError, match="outside the range"):
            number_to_words(number)

    @pytest.mark.parametrize("number", [1.0, "12", True])
    def test_number_to_words_rejects_non_int(self, number):
        with pytest.raises(TypeError):
            number_to_words(number)

    def test_number_to_words_uses_only_standard_spellings(self):
        standard = set(" ".join(CARDINAL_WORDS.values()).split()) | {"û"}
        used = {word for n in range(0, 2_000_000, 997) for word in number_to_words(n).split()}
        assert used <= standard
        assert not used & set(SPELLING_VARIANTS)


class TestOrdinalToWords:
    @pytest.mark.parametrize("number, attributive, words", ORDINALS)
    def test_ordinal_to_words_known_values(self, number, attributive, words):
        assert ordinal_to_words(number, attributive=attributive) == words

    def test_ordinal_to_words_out_of_range_raises(self):
        with pytest.raises(ValueError):
            ordinal_to_words(-3)


class TestExpandNumbers:
    @pytest.mark.parametrize("text, expanded", EXPANSIONS)
    def test_expand_numbers_known_texts(self, text, expanded):
        assert expand_numbers(text) == expanded

    @pytest.mark.parametrize("number", [0, 7, 17, 60, 305, 1991, 40_006, 999_999_999])
    def test_expand_numbers_agrees_with_number_to_words(self, number):
        assert expand_numbers(f"a {number} b") == f"a {number_to_words(number)} b"

    @pytest.mark.parametrize("number", [1, 2, 3, 30, 21, 1000])
    def test_expand_numbers_ordinal_suffix_agrees_with_ordinal_to_words(self, number):
        assert expand_numbers(f"{number}em") == ordinal_to_words(number)
        assert expand_numbers(f"{number}yemîn") == ordinal_to_words(number, attributive=True)

    def test_expand_numbers_leaves_no_digits(self):
        text = "1, 22, 333, 4.444, 55 555, 6,5, %7, -8, 9an, 10yem, 12345678901234"
        assert not any(char.isdigit() for char in expand_numbers(text))
