"""The Python tokenizers (`albert_tf.tokenization`) against independent references.

References:
* tests/fixtures/original_tokenizer/reference.json: what the ORIGINAL tokenization.py gives
  (its `preprocess_text`, its `FullTokenizer.tokenize` on preprocessed and on raw text) on
  spm1k.model, for 61 strings x do_lower_case in {True, False}.
* the `sentencepiece` package itself (`encode_as_pieces` / `encode_as_ids`) on a model
  trained here, after the preprocessing stated in SPEC Part 2 section 1.1, written out below.
* a SentencePiece model assembled piece by piece here, so that the digit-comma rule has
  hand-written expected pieces (SPEC Part 2 section 1.2 and its "in 1990, the" example).
* a hand-written WordPiece vocabulary with hand-written expectations (SPEC 1.5 and the
  original BERT test "UNwant\u00E9d,running").
"""

import json
import pathlib
import unicodedata

import pytest
import sentencepiece as spm

from albert_tf import tokenization
from albert_tf.tokenization import (FullTokenizer, MissingTokenError, encode_inputs,
                                    preprocess_text, truncate_seq_pair)
from conftest import sentencepiece_model

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "original_tokenizer"
SPM1K = FIXTURES / "spm1k.model"
REFERENCE = json.loads((FIXTURES / "reference.json").read_text(encoding="utf-8"))
CASES = REFERENCE["cases"]

# Strings that stress every preprocessing rule and the SentencePiece path. Shared with
# test_in_graph_tokenizer.py.
TRICKY_STRINGS = [
    # accents and compatibility forms
    "Résumé of the naïve façade", "Ångström", "Crème brûlée", "Zoë and Chloë", "piñata",
    "São Paulo", "Dvořák", "Łódź", "İstanbul", "ǅemal ǄǆǅǄ", "Ærøskøbing", "Straße STRASSE",
    "ﬁnancial ﬂow ﬀ ﬃ ﬆ", "Ｆｕｌｌｗｉｄｔｈ　ｔｅｘｔ", "x\u0301 combining", "e\u0301\u0302\u0303",
    "a\u034fb grapheme joiner", "क्षत्रिय", "हिंदी", "ที่นี่", "שָׁלוֹם", "مَرْحَبًا", "ΐ ΰ",
    "Ⅻ ⅻ roman", "ℌ𝔢𝔩𝔩𝔬 𝐁𝐨𝐥𝐝", "™ © ® ℃ ℉", "½ ¼ ¾ ⅓", "H₂O and E=mc²", "…‥",
    # CJK
    "東京は日本の首都です", "我爱北京天安门", "漢字かなカナ", "ｶﾀｶﾅ ﾊﾟﾋﾟ", "가나다 한국어 문장",
    "𠀀𠀁 ext-B", "〜～「引用」", "中文,English,日本語",
    # emoji
    "Emoji: 🎉🚀", "👍🏽 thumbs", "👨\u200d👩\u200d👧 family", "🇫🇷 flag", "❤️ heart",
    "1️⃣ keycap",
    # numbers with commas (the digit-comma rule)
    "1,000", "1,000,000,", "In 1990, the year", "3,14159", "10,000.50,", "¹,²,³,", "①,②,",
    "٣,٤,", "१,२,", "0,", ",5", "1,,2", "99,ab", "$1,234.56,", "−1,5", "1 , 2 ,",
    "2019,2020,2021,", "V8, V12,", "x1,y2,z3,", "It was 1,234,567 bytes long.",
    # quotes
    "“Quoted” ‘text’", "«guillemets»", "``latex quotes''", "\"double\" 'single'",
    "„German“", "won't, shouldn't", "O'Neil's",
    # control and space characters
    "a\x00b", "tab\there", "line\nbreak", "cr\rlf", "\x0bvertical\x0cfeed", "bell\x07",
    "zero\u200bwidth", "soft\u00adhyphen", "rtl\u202eoverride", "bom\ufeffhere",
    "nbsp\u00a0here", "em\u2003space", "\u3000ideographic space", "\x1cfile\x1dgroup\x1erec",
    "next\x85line", "line\u2028sep\u2029para", "\ufffdreplacement", "x  \t y \n z",
    "   leading and trailing   ", "", " ", "\t\n",
    # very long words and texts
    "a" * 300, "pneumonoultramicroscopicsilicovolcanoconiosis", "x" * 1000 + " y",
    " ".join(["word"] * 200), "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB",
    # mixed scripts and cases
    "Hello мир 世界 مرحبا", "καλημέρα κόσμε", "ΣΊΣΥΦΟΣ ΟΔΟΣ", "Москва, Россия",
    "नमस्ते दुनिया", "ไทย", "ქართული", "Ꭰꭰ Cherokee", "ALL CAPS SENTENCE.", "CamelCaseName",
    "snake_case_name", "ABCdefGHI",
    # punctuation, markup, paths
    "C:\\path\\file.txt", "user@example.org", "https://example.org/x?y=1&z=2",
    "<html>&amp;</html>", "e.g. i.e. etc.", "(a) [b] {c} <d>", "–en — em dash",
    "£3 €4 ¥5 $6", "--flag=value", "Ph.D.", "TheEnd.",
]


def reference_preprocess(text, lower):
    """SPEC Part 2 section 1.1, step by step (independent of albert_tf)."""
    text = " ".join(text.strip().split())
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if unicodedata.combining(c) == 0)
    return text.lower() if lower else text


def test_there_are_at_least_100_tricky_strings():
    assert len(TRICKY_STRINGS) >= 100
    assert len(set(TRICKY_STRINGS)) == len(TRICKY_STRINGS)


# --------------------------------------------------------------------------------------------
# The original's outputs (reference.json).
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spm1k():
    return {lower: FullTokenizer(None, lower, str(SPM1K)) for lower in (True, False)}


@pytest.fixture(scope="module")
def spm1k_raw():
    return {lower: FullTokenizer(None, lower, str(SPM1K), preprocess=False)
            for lower in (True, False)}


def _case_id(case):
    return f"{case['text'][:20]!r}-lower={case['do_lower_case']}"


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_preprocess_text_matches_original(case):
    assert preprocess_text(case["text"], lower=case["do_lower_case"]) == case["preprocessed"]


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_tokenize_matches_original_pipeline(spm1k, case):
    tok = spm1k[case["do_lower_case"]]
    tokens = tok.tokenize(case["text"])
    assert tokens == case["tokens"]
    assert tok.convert_tokens_to_ids(tokens) == case["ids"]


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_tokenize_without_preprocess_matches_original_class(spm1k_raw, case):
    assert spm1k_raw[case["do_lower_case"]].tokenize(case["text"]) == \
        case["tokens_without_preprocess"]


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_module_helpers_match_original(spm1k, case):
    sp_model = spm1k[True].sp_model
    assert tokenization.encode_pieces(sp_model, case["preprocessed"]) == case["tokens"]
    assert tokenization.encode_ids(sp_model, case["preprocessed"]) == case["ids"]


def test_fixture_has_122_cases():
    assert len(CASES) == 122


# --------------------------------------------------------------------------------------------
# Against the sentencepiece package on a model trained here.
# --------------------------------------------------------------------------------------------

_CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "A naive cafe serves resume writers (and others) at noon.",
    "Numbers like 12 and 345 appear; so do words - many words.",
    "東京 大阪 京都 はい いいえ", "Москва и Санкт-Петербург", "emoji 🎉 and 🚀 appear too",
    "Quotes \"double\" and 'single' and more text here.",
    "In 1990, 1991, and 2000, we counted 1,000, then 2,000, then 3,000, items.",
] * 40


def _has_digit_comma_piece(pieces):
    return any(len(p) > 1 and p[-1] == "," and p[-2].isdigit() for p in pieces)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 100-piece model trained by the sentencepiece package with the README's flags."""
    prefix = tmp_path_factory.mktemp("spm") / "small"
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_CORPUS), model_prefix=str(prefix), vocab_size=100,
        model_type="unigram", pad_id=0, unk_id=1, bos_id=-1, eos_id=-1,
        control_symbols=["[CLS]", "[SEP]", "[MASK]"],
        user_defined_symbols=["(", ")", '"', "-", ".", "\u2013", "\u00a3", "\u20ac"],
        character_coverage=0.99995, minloglevel=2)
    path = str(prefix) + ".model"
    return path, spm.SentencePieceProcessor(model_file=path)


@pytest.mark.parametrize("lower", [True, False])
def test_ids_equal_sentencepiece_after_preprocessing(trained, lower):
    path, sp = trained
    tok = FullTokenizer(None, lower, path)
    checked = 0
    for text in TRICKY_STRINGS:
        expected_text = reference_preprocess(text, lower)
        if _has_digit_comma_piece(sp.encode_as_pieces(expected_text)):
            continue  # The digit-comma rule is tested on its own below.
        pieces = tok.tokenize(text)
        assert pieces == sp.encode_as_pieces(expected_text), text
        assert tok.convert_tokens_to_ids(pieces) == sp.encode_as_ids(expected_text), text
        checked += 1
    assert checked >= 90


def test_digit_comma_rule_against_sentencepiece(trained):
    """Where the rule applies: the piece's own segmentation (comma and "▁" removed) + ","."""
    path, sp = trained
    tok = FullTokenizer(None, True, path)
    applied = 0
    for text in TRICKY_STRINGS:
        expected = []
        for piece in sp.encode_as_pieces(reference_preprocess(text, True)):
            if len(piece) > 1 and piece.endswith(",") and piece[-2].isdigit():
                expected += sp.encode_as_pieces(piece[:-1].replace("\u2581", "")) + [","]
                applied += 1
            else:
                expected.append(piece)
        assert tok.tokenize(text) == expected, text
    assert applied > 0


# --------------------------------------------------------------------------------------------
# Preprocessing rules, hand-written expectations.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, lower, expected", [
    ("  a \t b\n\nc  ", False, "a b c"),               # strip, collapse whitespace runs
    ("a\u3000b\u00a0c\u2003d", False, "a b c d"),      # Unicode spaces count (str.split)
    ("a\x1cb\x85c", False, "a b c"),                   # so do \x1c and NEL (str.isspace)
    ("Résumé", False, "Resume"),                       # NFKD + combining marks removed
    ("Résumé", True, "resume"),                        # ... then lower-cased
    ("ﬁ ½ ²", False, "fi 1⁄2 2"),                       # compatibility decompositions
    ("a\u034fb", False, "a\u034fb"),                   # U+034F: category Mn but class 0: kept
    ("İ", True, "i"),                                  # I + dot above: the dot goes first
    ("STRASSE Straße", True, "strasse straße"),        # str.lower, no case folding
    ("``quotes''", False, "``quotes''"),               # no LaTeX-quote replacement here
    ("", True, ""),
])
def test_preprocess_text_rules(text, lower, expected):
    assert preprocess_text(text, lower=lower) == expected


def test_preprocess_text_accepts_utf8_bytes_dropping_invalid_bytes():
    assert preprocess_text(b"Caf\xc3\xa9 \xff\xfeok", lower=True) == "cafe ok"


@pytest.mark.parametrize("text", TRICKY_STRINGS[:60])
def test_tokenize_is_idempotent_on_preprocessed_text(spm1k, text):
    tok = spm1k[True]
    assert tok.tokenize(preprocess_text(text, lower=True)) == tok.tokenize(text)


def test_lower_case_model_gives_same_ids_for_upper_and_lower_case(spm1k):
    tok = spm1k[True]
    compared = 0
    for text in TRICKY_STRINGS:
        if text.upper().lower() != text.lower():
            continue  # e.g. "ß".upper() is "SS": a different text, not a different case.
        ids_upper = tok.convert_tokens_to_ids(tok.tokenize(text.upper()))
        assert ids_upper == tok.convert_tokens_to_ids(tok.tokenize(text.lower())), text
        compared += 1
    assert compared >= 90


def test_cased_model_keeps_case(spm1k):
    assert spm1k[False].tokenize("ABC") != spm1k[False].tokenize("abc")


def test_bytes_input_drops_invalid_utf8(spm1k):
    tok = spm1k[True]
    assert tok.tokenize(b"caf\xc3\xa9 \xff\xfe\xe2\x82ok") == tok.tokenize("cafe ok")


def test_empty_and_blank_text_give_no_tokens(spm1k):
    assert spm1k[True].tokenize("") == []
    assert spm1k[True].tokenize(" \t\n\u3000") == []


def test_lone_surrogate_is_a_clear_error(spm1k):
    with pytest.raises(ValueError, match="surrogate"):
        spm1k[True].tokenize("bad \ud800 text")


# --------------------------------------------------------------------------------------------
# The digit-comma rule on a model assembled by hand (scores decide the segmentation).
# --------------------------------------------------------------------------------------------


def build_model_proto(pieces, control=("[CLS]", "[SEP]", "[MASK]")):
    """A unigram model: <pad> 0, <unk> 1, `control`, then (piece, score) pairs; no normaliser
    rules except whitespace handling ("identity"), so the segmentation is readable."""
    model = sentencepiece_model(pieces, control)
    model.normalizer_spec.escape_whitespaces = True
    return model.SerializeToString()


# Multi-character pieces score -1, single characters -10: the fewest pieces win.
DIGIT_COMMA_PIECES = (
    [(p, -1.0) for p in ["\u2581in", "\u2581the", "\u2581199", "0,", "\u25815,", "2,3,", "a,",
                         "\u0663,", "\u00b2,", "\u2581", ","]]
    + [(c, -10.0) for c in "abcdefghijklmnopqrstuvwxyz0123456789\u0663\u00b2"])


@pytest.fixture(scope="module")
def digit_comma_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("hand") / "digit_comma.model"
    path.write_bytes(build_model_proto(DIGIT_COMMA_PIECES))
    return str(path)


# Expected pieces, worked out by hand from the piece scores and SPEC Part 2 section 1.2.
DIGIT_COMMA_EXPECTATIONS = [
    # SPEC's example: "0," is re-segmented as "0" -> "▁" "0" (the original never drops the
    # "▁" it meant to drop), then ",".
    ("in 1990, the", ["▁in", "▁199", "▁", "0", ",", "▁the"]),
    # "▁5," loses its "▁" before re-segmentation: "5" -> "▁" "5".
    ("5,", ["▁", "5", ","]),
    # Only the last comma is split off; the inner one is re-segmented with the digits.
    ("2,3,", ["▁", "▁", "2", ",", "3", ","]),
    # Not a digit before the comma: unchanged.
    ("a,", ["▁", "a,"]),
    # str.isdigit() holds for ARABIC-INDIC DIGIT THREE.
    ("\u0663,", ["▁", "▁", "\u0663", ","]),
]


@pytest.mark.parametrize("text, expected", DIGIT_COMMA_EXPECTATIONS)
def test_digit_comma_rule_hand_written(digit_comma_model, text, expected):
    sp = spm.SentencePieceProcessor(model_file=digit_comma_model)
    tok = FullTokenizer(None, True, digit_comma_model)
    assert tok.tokenize(text) == expected
    assert tok.convert_tokens_to_ids(expected) == [sp.piece_to_id(p) for p in expected]


def test_digit_comma_rule_uses_str_isdigit_on_raw_text(digit_comma_model):
    # "²" is a digit for str.isdigit(); without preprocessing it is not turned into "2".
    tok = FullTokenizer(None, True, digit_comma_model, preprocess=False)
    assert tok.tokenize("\u00b2,") == ["▁", "▁", "\u00b2", ","]
    # With preprocessing NFKD makes it "2", for which the model has no "2," piece.
    assert FullTokenizer(None, True, digit_comma_model).tokenize("\u00b2,") == ["▁", "2", ","]


# --------------------------------------------------------------------------------------------
# Vocabulary, conversions, special tokens, bad files.
# --------------------------------------------------------------------------------------------


def test_vocab_is_every_piece_in_id_order(spm1k):
    tok = spm1k[True]
    lines = (FIXTURES / "spm1k.vocab").read_text(encoding="utf-8").splitlines()
    assert list(tok.vocab) == [line.split("\t")[0] for line in lines]
    assert list(tok.vocab.values()) == list(range(1000))
    assert tok.inv_vocab == {i: p for p, i in tok.vocab.items()}
    assert len(tok.vocab) == 1000


def test_special_tokens_have_the_released_ids(spm1k):
    # SPEC Part 2 section 1.4: <pad> 0, <unk> 1, [CLS] 2, [SEP] 3, [MASK] 4.
    tok = spm1k[True]
    assert tok.convert_tokens_to_ids(["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"]) == \
        [0, 1, 2, 3, 4]
    assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id) == (0, 1, 2, 3, 4)
    # User-defined symbols 5-12, as the README's recipe intends.
    assert tok.convert_ids_to_tokens(range(5, 13)) == ["(", ")", '"', "-", ".", "–", "£", "€"]


def test_special_tokens_are_never_produced_from_text(spm1k):
    assert spm1k[False].tokenize("[CLS] a [SEP] b [MASK]").count("[CLS]") == 0


def test_unknown_piece_maps_to_unk(spm1k):
    assert spm1k[True].convert_tokens_to_ids(["\u6771\u4eac", "\u2581the"]) == [1, 14]


def test_ids_round_trip(spm1k):
    tok = spm1k[True]
    ids = list(range(1000))
    assert tok.convert_tokens_to_ids(tok.convert_ids_to_tokens(ids)) == ids


def test_id_out_of_range_is_a_clear_error(spm1k):
    with pytest.raises(ValueError, match="1000 is not in the SentencePiece model"):
        spm1k[True].convert_ids_to_tokens([5, 1000])


def test_model_without_mask_fails_only_when_mask_is_needed(tmp_path):
    path = tmp_path / "no_mask.model"
    path.write_bytes(build_model_proto([("\u2581", -1.0), ("a", -2.0)],
                                       control=("[CLS]", "[SEP]")))
    tok = FullTokenizer(None, True, str(path))  # Loading and tokenizing work.
    assert tok.tokenize("a") == ["▁", "a"]
    assert tok.convert_tokens_to_ids(["[CLS]", "a", "[SEP]"]) == [2, 5, 3]
    with pytest.raises(MissingTokenError, match=r"'\[MASK\]'.*no_mask\.model"):
        tok.convert_tokens_to_ids(["[MASK]"])
    with pytest.raises(MissingTokenError, match=r"'\[MASK\]'.*no_mask\.model"):
        _ = tok.mask_id


def test_missing_model_file_is_a_clear_error(tmp_path):
    missing = tmp_path / "nope.model"
    with pytest.raises(FileNotFoundError, match="nope.model"):
        FullTokenizer(None, True, str(missing))


@pytest.mark.parametrize("content", [b"", b"not a model at all", (FIXTURES / "spm1k.vocab")
                                     .read_bytes()])
def test_corrupt_model_file_is_a_clear_error(tmp_path, content):
    bad = tmp_path / "bad.model"
    bad.write_bytes(content)
    with pytest.raises(ValueError, match="bad.model"):
        FullTokenizer(None, True, str(bad))


def test_no_vocabulary_at_all_is_a_clear_error():
    with pytest.raises(ValueError, match="spm_model_file"):
        FullTokenizer(None, True, None)


# --------------------------------------------------------------------------------------------
# WordPiece path (a hand-written vocabulary).
# --------------------------------------------------------------------------------------------

WORDPIECE_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un", "##want", "##ed",
                   "runn", "##ing", ",", "want", "我", "爱", "北", "京", "hello", "!", "##s",
                   "cafe", "Hello", ""]


@pytest.fixture
def vocab_file(tmp_path):
    path = tmp_path / "vocab.txt"
    # A blank line is the token " " in the original's load_vocab; "un" repeats (first id
    # kept); "want 123" shows that only the first field counts.
    lines = WORDPIECE_VOCAB[:-1] + ["", "un", "want 123"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def test_load_vocab_reads_first_fields_in_order(vocab_file):
    vocab = tokenization.load_vocab(vocab_file)
    assert list(vocab) == WORDPIECE_VOCAB[:-1] + [" "]
    assert vocab["want"] == 11 and vocab[" "] == 21


@pytest.mark.parametrize("lower, text, expected", [
    # The original BERT test: lower-casing strips the accent of "é".
    (True, "UNwant\u00E9d,running", ["un", "##want", "##ed", ",", "runn", "##ing"]),
    # Each CJK ideograph is a word of its own.
    (True, "我爱北京", ["我", "爱", "北", "京"]),
    # Control characters go, Unicode spaces split; "!" is punctuation.
    (True, "hello\x00\u200b\u00a0hellos!", ["hello", "hello", "##s", "!"]),
    # Without lower-casing neither case nor accents change.
    (False, "Hello café", ["Hello", "[UNK]"]),
    (True, "Hello café", ["hello", "cafe"]),
    # A word with a position no piece matches is [UNK] as a whole.
    (True, "unwantedx", ["[UNK]"]),
    (True, "", []),
])
def test_wordpiece_tokenize(vocab_file, lower, text, expected):
    assert FullTokenizer(vocab_file, lower, None).tokenize(text) == expected


def test_wordpiece_word_over_200_characters_is_unk():
    wordpiece = tokenization.WordpieceTokenizer(vocab={"a": 0, "##a": 1})
    assert wordpiece.tokenize("a" * 200) == ["a"] + ["##a"] * 199
    assert wordpiece.tokenize("a" * 201) == ["[UNK]"]


def test_wordpiece_basic_tokenizer_and_wordpiece_tokenizer_classes():
    basic = tokenization.BasicTokenizer(do_lower_case=True)
    assert basic.tokenize(" \tHeLLo!how  \n Are yoU?  ") == ["hello", "!", "how", "are", "you",
                                                             "?"]
    wordpiece = tokenization.WordpieceTokenizer(
        vocab={"un": 0, "##aff": 1, "##able": 2, "[UNK]": 3})
    assert wordpiece.tokenize("unaffable unfit") == ["un", "##aff", "##able", "[UNK]"]


def test_wordpiece_special_tokens_use_the_chinese_vocab_names(vocab_file):
    tok = FullTokenizer(vocab_file, True, None)
    assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id) == (0, 1, 2, 3, 4)
    assert tok.convert_ids_to_tokens([2, 5, 3]) == ["[CLS]", "un", "[SEP]"]


def test_wordpiece_vocab_without_mask_fails_only_when_needed(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n", encoding="utf-8")
    tok = FullTokenizer(str(path), True, None)
    assert tok.convert_tokens_to_ids(tok.tokenize("hello")) == [4]
    with pytest.raises(MissingTokenError, match=r"'\[MASK\]'.*vocab\.txt"):
        tok.convert_tokens_to_ids(["[MASK]"])
    with pytest.raises(MissingTokenError, match=r"'\[MASK\]'.*vocab\.txt"):
        _ = tok.mask_id


def test_wordpiece_missing_vocab_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="vocab.txt"):
        FullTokenizer(str(tmp_path / "vocab.txt"), True, None)


# --------------------------------------------------------------------------------------------
# Packing model inputs (the original convert_single_example rules).
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("len_a, len_b, budget, kept", [
    (10, 3, 8, (5, 3)),   # the longer list absorbs the whole cut
    (3, 10, 8, (3, 5)),
    (10, 10, 8, (4, 4)),  # equal: b loses first, then they alternate
    (10, 10, 7, (4, 3)),  # odd budget: a keeps the extra token
    (4, 4, 8, (4, 4)),    # fits: unchanged
    (6, 5, 10, (5, 5)),
    (0, 9, 5, (0, 5)),
])
def test_truncate_seq_pair_hand_computed(len_a, len_b, budget, kept):
    a, b = list(range(len_a)), list(range(len_b))
    truncate_seq_pair(a, b, budget)
    assert (len(a), len(b)) == kept
    assert a == list(range(kept[0])) and b == list(range(kept[1]))  # cut from the end


def test_encode_inputs_pair_layout(spm1k):
    # "the" is one piece (id 14) in spm1k; [CLS] 2, [SEP] 3.
    features = encode_inputs(spm1k[True], "the the", "THE", max_seq_length=8)
    assert features["input_ids"] == [2, 14, 14, 3, 14, 3, 0, 0]
    assert features["input_mask"] == [1, 1, 1, 1, 1, 1, 0, 0]
    assert features["segment_ids"] == [0, 0, 0, 0, 1, 1, 0, 0]


def test_encode_inputs_single_text_is_cut_to_max_minus_two(spm1k):
    features = encode_inputs(spm1k[True], "the " * 50, None, max_seq_length=6)
    assert features["input_ids"] == [2, 14, 14, 14, 14, 3]


def test_encode_inputs_pair_with_empty_second_text_is_a_single_text(spm1k):
    # The original tests `if tokens_b:`: no tokens, no second [SEP], cut at max - 2.
    features = encode_inputs(spm1k[True], "the " * 50, "   ", max_seq_length=6)
    assert features["input_ids"] == [2, 14, 14, 14, 14, 3]
    assert features["segment_ids"] == [0] * 6


def test_encode_inputs_empty_text_is_cls_sep(spm1k):
    assert encode_inputs(spm1k[True], "", None, 4)["input_ids"] == [2, 3, 0, 0]
