"""`InGraphTokenizer` gives what the Python path gives, in every setting it is used in.

References: the ORIGINAL tokenizer's ids (tests/fixtures/original_tokenizer/reference.json),
and, for the 100+ tricky strings, pairs and truncation, the Python path
(`FullTokenizer` + `encode_inputs`), itself checked against the original and the
`sentencepiece` package in test_tokenization.py.
"""

import json
import pathlib
import shutil

import numpy as np
import pytest
import tensorflow as tf

from albert_tf.tokenization import (FullTokenizer, InGraphTokenizer, MissingTokenError,
                                    encode_inputs, preprocess_text)
from test_tokenization import (DIGIT_COMMA_EXPECTATIONS, DIGIT_COMMA_PIECES, TRICKY_STRINGS,
                               build_model_proto)

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
SPM1K = FIXTURES / "original_tokenizer" / "spm1k.model"
CASES = json.loads((FIXTURES / "original_tokenizer" / "reference.json")
                   .read_text(encoding="utf-8"))["cases"]
KEYS = ("input_ids", "input_mask", "segment_ids")


def python_features(tokenizer, texts_a, texts_b, max_seq_length):
    rows = [encode_inputs(tokenizer, a, b, max_seq_length)
            for a, b in zip(texts_a, texts_b or [None] * len(texts_a))]
    return {k: np.array([r[k] for r in rows], np.int32) for k in KEYS}


def assert_same_features(got, want, texts):
    for key in KEYS:
        got_key = np.asarray(got[key])
        bad = np.flatnonzero(np.any(got_key != want[key], axis=1))
        assert bad.size == 0, (key, [texts[i] for i in bad[:5]], got_key[bad[:1]],
                               want[key][bad[:1]])


@pytest.fixture(scope="module")
def layers():
    return {lower: InGraphTokenizer(str(SPM1K), do_lower_case=lower, max_seq_length=128)
            for lower in (True, False)}


@pytest.fixture(scope="module")
def python_tokenizers():
    return {lower: FullTokenizer(None, lower, str(SPM1K)) for lower in (True, False)}


@pytest.mark.parametrize("lower", [True, False])
def test_ids_match_original_reference(layers, lower):
    cases = [c for c in CASES if c["do_lower_case"] == lower]
    out = layers[lower](tf.constant([c["text"] for c in cases]))
    for case, ids, mask in zip(cases, out["input_ids"].numpy(), out["input_mask"].numpy()):
        assert list(ids[:mask.sum()]) == [2] + case["ids"] + [3], case["text"]


@pytest.mark.parametrize("lower", [True, False])
def test_single_texts_match_python(layers, python_tokenizers, lower):
    got = layers[lower](tf.constant(TRICKY_STRINGS))
    assert_same_features(got, python_features(python_tokenizers[lower], TRICKY_STRINGS, None,
                                              128), TRICKY_STRINGS)


@pytest.mark.parametrize("lower", [True, False])
def test_pairs_match_python(layers, python_tokenizers, lower):
    texts_b = TRICKY_STRINGS[7:] + TRICKY_STRINGS[:7]
    got = layers[lower](tf.constant(TRICKY_STRINGS), tf.constant(texts_b))
    assert_same_features(got, python_features(python_tokenizers[lower], TRICKY_STRINGS,
                                              texts_b, 128), TRICKY_STRINGS)


@pytest.mark.parametrize("max_seq_length", [3, 4, 11])
def test_truncation_matches_python(python_tokenizers, max_seq_length):
    # Short limits make nearly every pair truncate, on both sides and on ties; 3 and 4 cut
    # b to nothing (no second [SEP]).
    layer = InGraphTokenizer(str(SPM1K), True, max_seq_length)
    texts_b = TRICKY_STRINGS[3:] + TRICKY_STRINGS[:3]
    tok = python_tokenizers[True]
    got = layer(tf.constant(TRICKY_STRINGS), tf.constant(texts_b))
    assert_same_features(got, python_features(tok, TRICKY_STRINGS, texts_b, max_seq_length),
                         TRICKY_STRINGS)
    got = layer(tf.constant(TRICKY_STRINGS))
    assert_same_features(got, python_features(tok, TRICKY_STRINGS, None, max_seq_length),
                         TRICKY_STRINGS)


def test_tokenize_gives_ragged_ids_of_the_python_path(layers, python_tokenizers):
    tok = python_tokenizers[True]
    ids = layers[True].tokenize(tf.constant(TRICKY_STRINGS)).to_list()
    assert ids == [tok.convert_tokens_to_ids(tok.tokenize(t)) for t in TRICKY_STRINGS]


def test_preprocess_matches_python(layers):
    got = [s.decode("utf-8") for s in layers[True].preprocess(tf.constant(TRICKY_STRINGS))
           .numpy()]
    assert got == [preprocess_text(t, lower=True) for t in TRICKY_STRINGS]


@pytest.mark.parametrize("text, expected", DIGIT_COMMA_EXPECTATIONS)
def test_digit_comma_rule_hand_written(tmp_path_factory, text, expected):
    path = tmp_path_factory.getbasetemp() / "digit_comma_in_graph.model"
    if not path.exists():
        path.write_bytes(build_model_proto(DIGIT_COMMA_PIECES))
    python = FullTokenizer(None, True, str(path))
    layer = InGraphTokenizer(str(path), True, 16)
    assert layer.tokenize(tf.constant([text])).to_list() == \
        [python.convert_tokens_to_ids(expected)]


@pytest.mark.parametrize("texts", [
    ["plain ascii", "only  ASCII\there"],          # the short path alone
    ["naïve", "東京", "a\x00b"],                  # the full path alone
    [],                                            # an empty batch
], ids=["ascii", "unicode", "empty-batch"])
def test_batches_of_one_kind_match_python(layers, python_tokenizers, texts):
    got = layers[True](tf.constant(texts, tf.string), tf.constant(texts[::-1], tf.string))
    assert got["input_ids"].shape == [len(texts), 128]
    if texts:
        assert_same_features(got, python_features(python_tokenizers[True], texts, texts[::-1],
                                                  128), texts)


def test_empty_texts_give_cls_sep(layers):
    out = layers[True](tf.constant(["", "  \t"]), tf.constant(["", ""]))
    np.testing.assert_array_equal(out["input_ids"].numpy()[:, :3], [[2, 3, 0], [2, 3, 0]])
    np.testing.assert_array_equal(out["input_mask"].numpy().sum(axis=1), [2, 2])


def test_invalid_utf8_is_dropped_like_python(layers, python_tokenizers):
    texts = [b"caf\xc3\xa9 \xff\xfe ok", b"\xe2\x82A", b"\xed\xa0\x80z", b"\xc0\xafq",
             b"trunc\xe2\x82"]
    got = layers[True](tf.constant(texts))
    assert_same_features(got, python_features(python_tokenizers[True], texts, None, 128), texts)


def test_scalar_input_gives_unbatched_features(layers, python_tokenizers):
    out = layers[True](tf.constant("Hello, world"), tf.constant("again"))
    assert out["input_ids"].shape == [128]
    want = encode_inputs(python_tokenizers[True], "Hello, world", "again", 128)
    assert out["input_ids"].numpy().tolist() == want["input_ids"]


def test_works_in_tf_data_and_tf_function(layers, python_tokenizers):
    texts_b = TRICKY_STRINGS[1:] + TRICKY_STRINGS[:1]
    want = python_features(python_tokenizers[True], TRICKY_STRINGS, texts_b, 128)
    dataset = (tf.data.Dataset.from_tensor_slices((TRICKY_STRINGS, texts_b)).batch(32)
               .map(layers[True], num_parallel_calls=tf.data.AUTOTUNE))
    rows = list(dataset.unbatch().as_numpy_iterator())
    got = {k: np.stack([r[k] for r in rows]) for k in KEYS}
    assert_same_features(got, want, TRICKY_STRINGS)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)] * 2)
    def wrapped(a, b):
        return layers[True](a, b)

    assert_same_features(wrapped(tf.constant(TRICKY_STRINGS), tf.constant(texts_b)), want,
                         TRICKY_STRINGS)


@pytest.fixture(scope="module")
def reloaded(tmp_path_factory):
    """A SavedModel of the layer, reloaded after its .model file is gone."""
    work = tmp_path_factory.mktemp("saved")
    model_copy = work / "copy.model"
    shutil.copy(SPM1K, model_copy)
    layer = InGraphTokenizer(str(model_copy), do_lower_case=True, max_seq_length=64)
    layer.save(work / "tokenizer")
    model_copy.unlink()  # The SavedModel must carry the SentencePiece model itself.
    return tf.saved_model.load(str(work / "tokenizer"))


def test_saved_model_matches_python(reloaded, python_tokenizers):
    texts_b = TRICKY_STRINGS[5:] + TRICKY_STRINGS[:5]
    tok = python_tokenizers[True]
    assert_same_features(reloaded(tf.constant(TRICKY_STRINGS)),
                         python_features(tok, TRICKY_STRINGS, None, 64), TRICKY_STRINGS)
    assert_same_features(reloaded(tf.constant(TRICKY_STRINGS), tf.constant(texts_b)),
                         python_features(tok, TRICKY_STRINGS, texts_b, 64), TRICKY_STRINGS)
    serving = reloaded.signatures["pair"](text_a=tf.constant(TRICKY_STRINGS),
                                          text_b=tf.constant(texts_b))
    assert_same_features(serving, python_features(tok, TRICKY_STRINGS, texts_b, 64),
                         TRICKY_STRINGS)


@pytest.mark.slow
def test_whole_pydoc_corpus_matches_python(layers, python_tokenizers):
    """11,395 lines of English prose, singly and in pairs (about a minute on 2 cores)."""
    import gzip

    path = FIXTURES / "original_pretraining_data" / "pydoc_corpus.txt.gz"
    with gzip.open(path, "rt", encoding="utf-8") as f:
        lines = [line for line in f if line.strip()]
    tok = python_tokenizers[True]
    for start in range(0, len(lines), 2048):
        chunk = lines[start:start + 2048]
        assert_same_features(layers[True](tf.constant(chunk)),
                             python_features(tok, chunk, None, 128), chunk)
        shifted = chunk[1:] + chunk[:1]
        assert_same_features(layers[True](tf.constant(chunk), tf.constant(shifted)),
                             python_features(tok, chunk, shifted, 128), chunk)


# --------------------------------------------------------------------------------------------
# Offsets.
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def offsets_layer():
    return InGraphTokenizer(str(SPM1K), True, 128, return_offsets=True)


def test_offsets_locate_each_piece_in_the_preprocessed_text(offsets_layer, python_tokenizers):
    tok = python_tokenizers[True]
    texts = ["Hello,  WORLD 1,000!", "the quick brown fox", "Résumé of the naïve façade",
             "東京は日本の首都です", "Emoji: 🎉🚀 ok"]
    out = offsets_layer(tf.constant(texts))
    for i, text in enumerate(texts):
        pre = preprocess_text(text, lower=True)
        pieces = tok.tokenize(text)
        n = len(pieces)
        starts = out["start_offsets"].numpy()[i, 1:n + 1]
        ends = out["end_offsets"].numpy()[i, 1:n + 1]
        # Each piece is its span of the preprocessed text, "▁" standing for the space before
        # it (none at the start of the text). These strings have no character that
        # SentencePiece's own normaliser rewrites.
        spans = [pre[s:e] for s, e in zip(starts, ends)]
        expected = [p.replace("\u2581", " ") for p in pieces]
        expected = [x.lstrip(" ") if s == 0 else x for x, s in zip(expected, starts)]
        assert spans == expected, text
        assert out["start_offsets"].numpy()[i, 0] == 0  # [CLS]


def test_offsets_mode_keeps_python_ids(offsets_layer, python_tokenizers):
    texts_b = TRICKY_STRINGS[2:] + TRICKY_STRINGS[:2]
    got = offsets_layer(tf.constant(TRICKY_STRINGS), tf.constant(texts_b))
    assert_same_features(got, python_features(python_tokenizers[True], TRICKY_STRINGS,
                                              texts_b, 128), TRICKY_STRINGS)


def test_offsets_are_minus_one_where_tf_text_segments_differently(offsets_layer):
    """The only case of -1 offsets: TF Text's offset kernel disagrees with the ids."""
    import tensorflow_text as tf_text

    # A line of the pydoc corpus where TF Text's SentencepieceTokenizer breaks a tie
    # differently from the sentencepiece package (found by comparing the whole corpus).
    texts = ["adapted from https://www.python.org/download/releases/2.3/mro/.", "the end"]
    other = tf_text.SentencepieceTokenizer(SPM1K.read_bytes())
    fast = tf_text.FastSentencepieceTokenizer(SPM1K.read_bytes())
    pre = offsets_layer.preprocess(tf.constant(texts))
    differs = [a != b for a, b in zip(other.tokenize(pre).to_list(), fast.tokenize(pre).to_list())]
    out = offsets_layer(tf.constant(texts))
    mask = out["input_mask"].numpy().astype(bool)
    for row, row_differs in enumerate(differs):
        tokens = out["start_offsets"].numpy()[row][mask[row]][1:-1]
        assert bool(np.all(tokens == -1)) == row_differs
        assert bool(np.all(tokens >= 0)) == (not row_differs)


# --------------------------------------------------------------------------------------------
# Bad models.
# --------------------------------------------------------------------------------------------


def test_missing_model_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="gone.model"):
        InGraphTokenizer(str(tmp_path / "gone.model"))


def test_corrupt_model_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "corrupt.model"
    bad.write_bytes(b"\x00\x01 definitely not a model")
    with pytest.raises(ValueError, match="corrupt.model"):
        InGraphTokenizer(str(bad))


def test_model_without_cls_is_a_clear_error(tmp_path):
    path = tmp_path / "no_cls.model"
    path.write_bytes(build_model_proto([("\u2581", -1.0), (",", -1.0)], control=("[SEP]",)))
    with pytest.raises(MissingTokenError, match=r"'\[CLS\]'.*no_cls\.model"):
        InGraphTokenizer(str(path))


def test_max_seq_length_below_three_is_a_clear_error():
    with pytest.raises(ValueError, match="at least 3"):
        InGraphTokenizer(str(SPM1K), max_seq_length=2)
