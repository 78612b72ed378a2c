import json

import pytest
from transformers import AutoTokenizer, VitsTokenizer

from kurdish_tts.text import (
    BLANK_TOKEN,
    KURMANJI_LETTERS,
    KURMANJI_TOKENIZER_NAME,
    PUNCTUATION,
    build_kurmanji_tokenizer,
    encode,
    find_unknown_characters,
    kurmanji_vocabulary,
    load_tokenizer,
    normalize_text,
    tokenizer_characters,
)


def _tiny_tokenizer(directory, symbols, pad_token=BLANK_TOKEN):
    vocab_file = directory / "vocab.json"
    vocab_file.write_text(json.dumps({symbol: i for i, symbol in enumerate(symbols)}), encoding="utf-8")
    return VitsTokenizer(str(vocab_file), pad_token=pad_token, add_blank=True, normalize=True, phonemize=False)


class TestKurmanjiVocabulary:
    def test_alphabet_has_31_distinct_letters(self):
        assert len(KURMANJI_LETTERS) == 31
        assert len(set(KURMANJI_LETTERS)) == 31
        assert set("çêîşû") <= set(KURMANJI_LETTERS)
        assert KURMANJI_LETTERS == KURMANJI_LETTERS.lower()

    def test_kurmanji_vocabulary_order(self):
        vocabulary = kurmanji_vocabulary()
        assert vocabulary[0] == BLANK_TOKEN
        assert vocabulary[1] == " "
        assert "".join(vocabulary[2:33]) == KURMANJI_LETTERS
        assert "".join(vocabulary[33:]) == PUNCTUATION
        assert len(vocabulary) == len(set(vocabulary)) == 39

    def test_kurmanji_vocabulary_returns_a_fresh_list(self):
        kurmanji_vocabulary().append("x")
        assert len(kurmanji_vocabulary()) == 39


class TestBuildKurmanjiTokenizer:
    def test_build_kurmanji_tokenizer_settings(self):
        tokenizer = build_kurmanji_tokenizer()
        assert tokenizer.vocab_size == 39
        assert tokenizer.pad_token == BLANK_TOKEN
        assert tokenizer.pad_token_id == 0
        assert (tokenizer.add_blank, tokenizer.normalize, tokenizer.phonemize) == (True, True, False)
        assert tokenizer.language == "kmr"

    def test_build_kurmanji_tokenizer_round_trip(self, tmp_dir):
        built = build_kurmanji_tokenizer(tmp_dir)
        saved_vocab = json.loads((tmp_dir / "vocab.json").read_text(encoding="utf-8"))
        assert saved_vocab == {symbol: i for i, symbol in enumerate(kurmanji_vocabulary())}
        text = "çima tu li vir î? ez û şêx, her du!"
        for loaded in (VitsTokenizer.from_pretrained(tmp_dir), AutoTokenizer.from_pretrained(tmp_dir)):
            assert isinstance(loaded, VitsTokenizer)
            assert loaded.get_vocab() == built.get_vocab()
            assert (loaded.add_blank, loaded.normalize, loaded.phonemize, loaded.language) == (
                True,
                True,
                False,
                "kmr",
            )
            assert loaded(text)["input_ids"] == built(text)["input_ids"]

    def test_build_kurmanji_tokenizer_add_blank_intersperses_zero(self):
        tokenizer = build_kurmanji_tokenizer()
        text = "şêr û ker"
        ids = encode(text, tokenizer)
        assert len(ids) == 2 * len(text) + 1
        assert ids[0::2] == [0] * (len(text) + 1)
        assert 0 not in ids[1::2]
        assert tokenizer.convert_ids_to_tokens(ids[1::2]) == list(text)

    def test_build_kurmanji_tokenizer_gives_every_letter_its_own_id(self):
        tokenizer = build_kurmanji_tokenizer()
        ids = [encode(letter, tokenizer) for letter in KURMANJI_LETTERS]
        letter_ids = [letter_ids[1] for letter_ids in ids]
        assert all(len(letter_ids) == 3 for letter_ids in ids)
        assert len(set(letter_ids)) == 31
        assert 0 not in letter_ids
        assert tokenizer.convert_ids_to_tokens([encode(c, tokenizer)[1] for c in "çêîşû"]) == list("çêîşû")


class TestLoadTokenizer:
    def test_load_tokenizer_kurmanji_name(self):
        tokenizer = load_tokenizer(KURMANJI_TOKENIZER_NAME)
        assert tokenizer.get_vocab() == build_kurmanji_tokenizer().get_vocab()

    def test_load_tokenizer_local_directory(self, tmp_dir):
        build_kurmanji_tokenizer(tmp_dir)
        assert load_tokenizer(str(tmp_dir)).vocab_size == 39

    def test_load_tokenizer_unreachable_hub_names_offline_options(self):
        # conftest sets HF_HUB_OFFLINE=1 and an empty cache, so this is exactly the "hub unreachable" case.
        with pytest.raises(OSError, match="kurmanji") as raised:
            load_tokenizer("facebook/mms-tts-kmr-script_latin")
        assert "unreachable" in str(raised.value)
        assert "local model directory" in str(raised.value)

    def test_load_tokenizer_directory_without_vocab(self, tmp_dir):
        with pytest.raises(OSError, match="vocab.json"):
            load_tokenizer(str(tmp_dir))


class TestTokenizerCharacters:
    def test_tokenizer_characters_of_kurmanji_tokenizer(self):
        characters = tokenizer_characters(build_kurmanji_tokenizer())
        assert characters == set(KURMANJI_LETTERS) | set(PUNCTUATION) | {" "}
        assert BLANK_TOKEN not in characters
        assert "<unk>" not in characters

    def test_tokenizer_characters_keeps_a_letter_pad_token(self, tmp_dir):
        # MMS checkpoints name a real letter as pad token; it must stay speakable.
        tokenizer = _tiny_tokenizer(tmp_dir, ["n", " ", "a", "e"], pad_token="n")
        assert tokenizer_characters(tokenizer) == {"n", " ", "a", "e"}


class TestUnknownCharacters:
    def test_find_unknown_characters_counts(self):
        tokenizer = build_kurmanji_tokenizer()
        texts = ["Çäy û şîr", "Señor Ä", "Ev doza jî, bi beraatê encam bū", "Sala 1991ê: baş bû"]
        unknown = find_unknown_characters(texts, tokenizer)
        assert unknown == {"ä": 2, "ñ": 1, "ū": 1, ":": 1}

    def test_find_unknown_characters_digits_when_not_expanded(self):
        tokenizer = build_kurmanji_tokenizer()
        assert find_unknown_characters(["Sala 1991"], tokenizer) == {}
        assert find_unknown_characters(["Sala 1991"], tokenizer, expand_numbers=False) == {"1": 2, "9": 2}

    def test_find_unknown_characters_reports_what_vits_tokenizer_drops_silently(self, tmp_dir):
        tokenizer = _tiny_tokenizer(tmp_dir, [BLANK_TOKEN, " ", "a", "b", "e", "r", "s"])
        text = "şêr û ser"
        # The silent drop: VitsTokenizer returns ids for "r  ser" without a word of warning ...
        ids = tokenizer(text)["input_ids"]
        assert tokenizer.convert_tokens_to_string(tokenizer.convert_ids_to_tokens(ids)) == "r  ser"
        assert len(ids) < 2 * len(text) + 1
        # ... which find_unknown_characters reports, and normalize_text counts as removed letters.
        assert find_unknown_characters([text], tokenizer) == {"ş": 1, "ê": 1, "û": 1}
        normalized = normalize_text(text, tokenizer_characters(tokenizer))
        assert normalized.removed_letters == {"ş": 1, "ê": 1, "û": 1}


class TestEncode:
    def test_encode_matches_tokenizer(self):
        tokenizer = build_kurmanji_tokenizer()
        text = normalize_text("Çiyayê Agirî bilind e!", tokenizer_characters(tokenizer)).text
        assert encode(text, tokenizer) == tokenizer(text)["input_ids"]

    def test_encode_without_blank(self, tmp_dir):
        build_kurmanji_tokenizer(tmp_dir)
        tokenizer = VitsTokenizer.from_pretrained(tmp_dir, add_blank=False)
        ids = encode("şêr", tokenizer)
        assert tokenizer.convert_ids_to_tokens(ids) == ["ş", "ê", "r"]

    @pytest.mark.parametrize("text", ["café", "ez_tu", "sala 1991", "İro"])
    def test_encode_refuses_characters_it_would_drop(self, text):
        with pytest.raises(ValueError, match="silently drop"):
            encode(text, build_kurmanji_tokenizer())

    def test_encode_accepts_what_the_tokenizer_lowercases(self):
        tokenizer = build_kurmanji_tokenizer()
        assert encode("ÇÊ", tokenizer) == encode("çê", tokenizer)
