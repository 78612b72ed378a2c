import unicodedata

import pytest

from kurdish_tts.text import KURMANJI_LETTERS, PUNCTUATION, NormalizedText, normalize_text

VOCAB = set(KURMANJI_LETTERS) | set(PUNCTUATION) | {" "}


# Real Common Voice sentences from /work/shared/data/kmr_sentences.txt (line numbers in the comments), normalized
# against the from-scratch vocabulary.
CORPUS_CASES = [
    # 6
    ("Amerîka ji hikûmeta Îranê bawer nake.", "amerîka ji hikûmeta îranê bawer nake.", {}),
    # 514: the capital I of "Iraqê" is a Kurmanji i, not a Turkish dotless one.
    (
        "Artêşa Iraqê di derbarê Şingalê de daxuyaniyek belav kir.",
        "artêşa iraqê di derbarê şingalê de daxuyaniyek belav kir.",
        {},
    ),
    # 390
    (
        "Dema tu ketî hundir min ferq kir… Lewma ez hatim ba te.",
        "dema tu ketî hundir min ferq kir... lewma ez hatim ba te.",
        {},
    ),
    # 1397
    (
        "We çawa dest bi çêkirina pirtûkên Qur’anê kevn kir?",
        "we çawa dest bi çêkirina pirtûkên qur'anê kevn kir?",
        {},
    ),
    # 565
    ("Di kitêba “Jiyanek Dijwar” de", "di kitêba jiyanek dijwar de", {'"': 2}),
    # 972: the quote carries the case ending, so removing it must not split "time" from "ê".
    ('Min di kovara "Time"ê de gotarek xwend.', "min di kovara timeê de gotarek xwend.", {'"': 2}),
    # 1613
    (
        "Mele Osmanê Goyê gotiye;” Şêx Evdirehmanê Garisî helbestvanekî bi navûdeng bûye.",
        "mele osmanê goyê gotiye şêx evdirehmanê garisî helbestvanekî bi navûdeng bûye.",
        {";": 1, '"': 1},
    ),
    # 997
    ("Bedewî: rind, xweşik, delal, spehî.", "bedewî rind, xweşik, delal, spehî.", {":": 1}),
    # 111: "ū" is no Kurmanji letter (a typo for û), so the pair must be dropped.
    ("Ev doza jî, bi beraatê encam bū", "ev doza jî, bi beraatê encam b", {"ū": 1}),
]

# Sentences from the corpus with their spelled-out number written as digits: expansion must give back the original.
CORPUS_NUMBER_CASES = [
    ("Ez 17 salî me.", "ez hevdeh salî me."),
    ("Berfê rêyên 400 gundên Bakurê Kurdistan girt.", "berfê rêyên çar sed gundên bakurê kurdistan girt."),
    ("120 cihên şûnwarî li Efrînê hatine talankirin.", "sed û bîst cihên şûnwarî li efrînê hatine talankirin."),
    (
        "Rubleyê Rûsî li hember Dolarê Amerîkî %30 bihayê xwe ji dest da.",
        "rubleyê rûsî li hember dolarê amerîkî ji sedî sî bihayê xwe ji dest da.",
    ),
    ("Hin meh 30 roj, hin jî 31 roj in.", "hin meh sî roj, hin jî sî û yek roj in."),
    ("Amedspor bi encama 2 û 0 Bursasporê têk bir.", "amedspor bi encama du û sifir bursasporê têk bir."),
]


class TestNormalizeText:
    @pytest.mark.parametrize(
        "precomposed",
        ["ç", "ê", "î", "ş", "û", "Ç", "Ê", "Î", "Ş", "Û", "Çîroka şêrê û rûvî", "Şêx û Çiyayê Îranê"],
    )
    def test_normalize_text_nfd_equals_nfc(self, precomposed):
        decomposed = unicodedata.normalize("NFD", precomposed)
        assert decomposed != precomposed
        assert normalize_text(decomposed, VOCAB) == normalize_text(precomposed, VOCAB)
        assert normalize_text(decomposed).text == precomposed.lower()

    def test_normalize_text_nfd_letter_is_one_code_point(self):
        result = normalize_text("s\u0327e\u0302r")
        assert result.text == "şêr"
        assert len(result.text) == 3

    @pytest.mark.parametrize(
        "raw, normalized",
        [
            ("ısot", "isot"),
            ("İstanbul", "istanbul"),
            ("I\u0307stanbul", "istanbul"),
            ("i\u0307stanbul", "istanbul"),
            ("KURDISTAN", "kurdistan"),
            ("DIYARBEKIR", "diyarbekir"),
        ],
    )
    def test_normalize_text_turkish_i(self, raw, normalized):
        result = normalize_text(raw, VOCAB)
        assert result.text == normalized
        assert result.removed == {}

    @pytest.mark.parametrize(
        "raw, normalized",
        [
            ("Qur’an", "qur'an"),
            ("Qur‘an", "qur'an"),
            ("Qur`an", "qur'an"),
            ("Qur´an", "qur'an"),
            ("sal‚ê", "sal'ê"),
            ("“Ez” „tu”", '"ez" "tu"'),
            ("«Ez» ‹tu›", '"ez" "tu"'),
            ("Amed – Wan", "amed - wan"),
            ("Amed — Wan", "amed - wan"),
            ("Amed ‒ Wan ― Mûş", "amed - wan - mûş"),
            ("du−yek", "du-yek"),
            ("nizanim…", "nizanim..."),
        ],
    )
    def test_normalize_text_quotes_dashes_ellipsis(self, raw, normalized):
        assert normalize_text(raw).text == normalized

    @pytest.mark.parametrize(
        "raw",
        [
            "ez  diçim",
            " ez diçim ",
            "ez\tdiçim",
            "ez\ndiçim\n",
            "ez\u00a0diçim",
            "ez\u202fdiçim",
            "ez \r\n  diçim",
        ],
    )
    def test_normalize_text_collapses_whitespace(self, raw):
        assert normalize_text(raw, VOCAB).text == "ez diçim"

    @pytest.mark.parametrize("raw, normalized", [("ﬁlm", "film"), ("ＫＵＲＤ", "kurd"), ("１２", "dazdeh")])
    def test_normalize_text_folds_compatibility_forms(self, raw, normalized):
        assert normalize_text(raw, VOCAB).text == normalized

    @pytest.mark.parametrize("invisible", ["\u200b", "\u200c", "\u00ad", "\ufeff", "\u200f"])
    def test_normalize_text_reports_invisible_characters(self, invisible):
        result = normalize_text(f"ker{invisible}em")
        assert result.text == "kerem"
        assert result.removed == {invisible: 1}
        assert result.removed_letters == {}

    @pytest.mark.parametrize("raw, normalized", CORPUS_NUMBER_CASES)
    def test_normalize_text_numbers_inside_sentences(self, raw, normalized):
        result = normalize_text(raw, VOCAB)
        assert result.text == normalized
        assert result.removed == {}

    @pytest.mark.parametrize(
        "raw, normalized",
        [
            ("Germahî −5 pile bû.", "germahî kêm pênc pile bû."),
            # The apostrophe only separates digits from their ending; spelled out, the ending is glued on.
            ("Di 18’ê Adarê de", "di hejdehê adarê de"),
            ("Di 18ê Adarê de", "di hejdehê adarê de"),
            ("Di Sala 2024AN de", "di sala du hezar û bîst û çaran de"),
            ("Saet 14:30 e.", "saet çardeh sî e."),
        ],
    )
    def test_normalize_text_number_forms_after_mapping(self, raw, normalized):
        assert normalize_text(raw, VOCAB).text == normalized

    def test_normalize_text_keeps_digits_when_not_expanding(self):
        result = normalize_text("Ez 17 salî me.", VOCAB, expand_numbers=False)
        assert result.text == "ez salî me."
        assert result.removed == {"1": 1, "7": 1}
        assert result.removed_letters == {"1": 1, "7": 1}

    @pytest.mark.parametrize("raw, normalized, removed", CORPUS_CASES)
    def test_normalize_text_corpus_sentences(self, raw, normalized, removed):
        result = normalize_text(raw, VOCAB)
        assert result.text == normalized
        assert result.removed == removed

    def test_normalize_text_counts_every_removed_character(self):
        raw = "Çäy: ñan, ñan; ä & ä #1"
        result = normalize_text(raw, VOCAB, expand_numbers=False)
        assert result.removed == {"ä": 3, ":": 1, "ñ": 2, ";": 1, "&": 1, "#": 1, "1": 1}
        assert result.text == "çy an, an"
        # Nothing vanished unaccounted for: every character of the (lowercased) input is kept or counted.
        kept = sum(char != " " for char in result.text)
        assert kept + sum(result.removed.values()) == sum(char != " " for char in raw)

    def test_normalize_text_removed_letters_are_letters_and_digits_only(self):
        result = normalize_text("Café «5» ñ; ū!", VOCAB, expand_numbers=False)
        assert result.removed == {"é": 1, '"': 2, "5": 1, "ñ": 1, ";": 1, "ū": 1}
        assert result.removed_letters == {"é": 1, "5": 1, "ñ": 1, "ū": 1}

    def test_normalize_text_without_allowed_characters_keeps_everything(self):
        result = normalize_text("Café ñ; ū «x»")
        assert result == NormalizedText(text='café ñ; ū "x"', removed={})

    def test_normalize_text_removal_without_space_in_vocabulary(self):
        result = normalize_text("ez tu", set("eztu"))
        assert result.text == "eztu"
        assert result.removed == {" ": 1}

    def test_normalize_text_is_idempotent(self):
        raw = "«Di sala 1991ê de» ji %40 zêdetir… İro, Çarşem — 3,5 km!"
        once = normalize_text(raw, VOCAB)
        twice = normalize_text(once.text, VOCAB)
        assert twice.text == once.text
        assert twice.removed == {}
