"""SQuAD reading, alignment, windows, features, caches and post-processing.

References, per test: the official SQuAD JSON format (hand-written files); the behaviour of
the original squad_utils.py as SPEC Part 5 sections 1-3 states it (hand-computed windows,
labels, feature layout, n-best rules, null handling, threshold); a plain per-cell
transcription of the original's banded LCS (written out below from the SPEC, independent of
our row-wise numpy version); BERT's max-context example; the official SQuAD scripts
(tf-models-official's squad_evaluate_v1_1 / v2_0) for the metrics; the original's
`InputFeatures` attribute names for its pickle.
"""

import json
import math
import pickle
import sys
import types

import numpy as np
import pytest
import tensorflow as tf

from albert_tf.tasks import TaskDataError
from albert_tf.tasks import squad
from albert_tf.tasks import squad_postprocess as post
from albert_tf.tokenization import FullTokenizer, preprocess_text
from conftest import sentencepiece_model

# --------------------------------------------------------------------------------------------
# Tokenizers: one trained here with the original recipe, one assembled piece by piece.
# --------------------------------------------------------------------------------------------

_CORPUS = [
    "Cafe au lait is served in Paris every morning at the market.",
    "We went to the big market and bought a gallon of milk.",
    "The price was 1,000 dollars, then 2,000 dollars in 1990, 1991.",
    "Aeroskobing is a town; Resume writers meet at noon.",
    "東京は日本の首都です 大阪 京都",
    "the man went to the store and bought a gallon of milk",
    "Who wrote the report? What is the capital? When did it end?",
] * 30


@pytest.fixture(scope="module")
def spm_path(tmp_path_factory):
    from albert_tf.train_sentencepiece import train_sentencepiece
    corpus = tmp_path_factory.mktemp("spm") / "corpus.txt"
    corpus.write_text("\n".join(_CORPUS) + "\n", encoding="utf-8")
    return train_sentencepiece(str(corpus), str(corpus.parent / "tiny"), vocab_size=120,
                               num_threads=1, extra_options={"hard_vocab_limit": False})


@pytest.fixture(scope="module")
def tokenizer(spm_path):
    return FullTokenizer(None, True, spm_path)


@pytest.fixture(scope="module")
def word_tokenizer(tmp_path_factory):
    """Every lower-case letter, alone, is one piece "▁x": windows can be counted by hand."""
    pieces = [(p, score) for letter in "abcdefghijklmnopqrstuvwxyz"
              for p, score in (("\u2581" + letter, -1.0), (letter, -10.0))]
    model = sentencepiece_model(pieces + [("\u2581", -10.0)])
    path = tmp_path_factory.mktemp("words") / "letters.model"
    path.write_bytes(model.SerializeToString())
    return FullTokenizer(None, True, str(path))


def _squad_file(tmp_path, paragraphs, name="data.json", version="1.1"):
    """A file in the official format: {"version", "data": [{"title", "paragraphs"}]}."""
    path = tmp_path / name
    path.write_text(json.dumps({"version": version, "data": [
        {"title": "T", "paragraphs": paragraphs}]}, ensure_ascii=False), encoding="utf-8")
    return str(path)


def _qa(qid, question, answer=None, start=None, impossible=None):
    qa = {"id": qid, "question": question,
          "answers": [] if answer is None else [{"text": answer, "answer_start": start}]}
    if impossible is not None:
        qa["is_impossible"] = impossible
    return qa


# --------------------------------------------------------------------------------------------
# Reading the official format
# --------------------------------------------------------------------------------------------

def test_reads_questions_contexts_and_answers_in_file_order(tmp_path):
    path = _squad_file(tmp_path, [
        {"context": "Paris is in France.", "qas": [_qa("a", "Where is Paris?", "France", 12)]},
        {"context": "Rome is old.", "qas": [_qa("b", "What is old?", "Rome", 0),
                                            _qa("c", "Is Rome old?", "old", 8)]}])
    examples = squad.read_squad_examples(path, is_training=True)
    assert [(e.qas_id, e.question_text, e.orig_answer_text, e.start_position)
            for e in examples] == [("a", "Where is Paris?", "France", 12),
                                   ("b", "What is old?", "Rome", 0),
                                   ("c", "Is Rome old?", "old", 8)]
    assert examples[1].paragraph_text == "Rome is old."
    assert not any(e.is_impossible for e in examples)


def test_v2_unanswerable_question_gets_start_minus_one_and_empty_text(tmp_path):
    path = _squad_file(tmp_path, [{"context": "Rome is old.", "qas": [
        _qa("x", "Is Paris old?", impossible=True), _qa("y", "What?", "Rome", 0, False)]}],
        version="v2.0")
    report = squad.ReadReport()
    impossible, possible = squad.read_squad_examples(path, True, report)
    assert (impossible.is_impossible, impossible.start_position,
            impossible.orig_answer_text) == (True, -1, "")
    assert (possible.is_impossible, possible.start_position) == (False, 0)
    assert report.unanswerable == 1


def test_prediction_mode_ignores_answers_and_is_impossible(tmp_path):
    # SPEC 5.1: eval mode keeps only context, id and question (scoring rereads the file).
    path = _squad_file(tmp_path, [{"context": "Rome is old.", "qas": [
        {"id": "d", "question": "What?", "answers": [{"text": "Rome", "answer_start": 0},
                                                      {"text": "Rome", "answer_start": 0}],
         "is_impossible": True}]}])
    (example,) = squad.read_squad_examples(path, is_training=False)
    assert example.start_position is None and example.orig_answer_text is None
    assert example.is_impossible is False


def test_training_question_with_two_answers_is_an_error_naming_its_place(tmp_path):
    path = _squad_file(tmp_path, [{"context": "Rome is old.", "qas": [
        _qa("ok", "What?", "Rome", 0),
        {"id": "two", "question": "Q?", "answers": [{"text": "Rome", "answer_start": 0},
                                                     {"text": "old", "answer_start": 8}]}]}])
    with pytest.raises(TaskDataError, match=r"data\.json, data\[0\]\.paragraphs\[0\]\.qas\[1\]"
                                            r".*exactly 1 answer, found 2"):
        squad.read_squad_examples(path, is_training=True)


def test_malformed_json_names_file_line_and_column(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"version": "1.1",\n "data": [\n  {"title": "x",, }\n]}')
    with pytest.raises(TaskDataError, match=r"broken\.json, line 3, column 17: malformed JSON"):
        squad.read_squad_examples(str(path), is_training=False)


def test_missing_field_names_its_path(tmp_path):
    path = _squad_file(tmp_path, [{"context": "Rome.", "qas": [{"id": "q", "answers": []}]}])
    with pytest.raises(TaskDataError, match=r"data\[0\]\.paragraphs\[0\]\.qas\[0\]: the field "
                                            r"'question' is missing"):
        squad.read_squad_examples(path, is_training=False)


def test_wrong_type_names_its_path(tmp_path):
    path = _squad_file(tmp_path, [{"context": 7, "qas": []}])
    with pytest.raises(TaskDataError, match=r"data\[0\]\.paragraphs\[0\]\.context: expected a "
                                            r"str, found int 7"):
        squad.read_squad_examples(path, is_training=False)


def test_answer_not_at_its_offset_is_warned_counted_and_skipped_for_training(tmp_path, caplog):
    path = _squad_file(tmp_path, [{"context": "Rome is old.", "qas": [
        _qa("good", "What?", "old", 8), _qa("bad", "Which?", "Rome", 3)]}])
    report = squad.ReadReport()
    examples = squad.read_squad_examples(path, True, report)
    assert [e.qas_id for e in examples] == ["good"]
    assert report.answer_mismatch == 1 and report.questions == 2
    assert "skipped: answer text not found" in report.summary()
    assert any("'bad'" in r.getMessage() and "e is" in r.getMessage() for r in caplog.records)
    # Prediction mode does not look at the answers.
    assert len(squad.read_squad_examples(path, is_training=False)) == 2


def test_empty_context_is_skipped_for_training_and_kept_for_prediction(tmp_path):
    path = _squad_file(tmp_path, [{"context": "  ", "qas": [_qa("e", "What?", impossible=True)]},
                                  {"context": "Rome.", "qas": [_qa("f", "What?", "Rome", 0)]}])
    report = squad.ReadReport()
    assert [e.qas_id for e in squad.read_squad_examples(path, True, report)] == ["f"]
    assert report.empty_context == 1
    assert [e.qas_id for e in squad.read_squad_examples(path, False)] == ["e", "f"]


# --------------------------------------------------------------------------------------------
# Character alignment
# --------------------------------------------------------------------------------------------

def _reference_alignment(paragraph, pieces, lower):
    """The SPEC's description of the original alignment, one cell at a time: a banded LCS
    over j in [i - d, i + d) with d = |n - m| + 5 (doubled once if the LCS is <= 0.8 n),
    pointers up (first), left (if strictly greater), match (if strictly greater), and the
    walk back from (n-1, m-1) until a cell without a pointer."""
    text = "".join(pieces).replace("\u2581", " ")
    n, m = len(paragraph), len(text)

    def run(band):
        f, g = {}, {}
        for i in range(n):
            for j in range(i - band, i + band):
                if not 0 <= j < m:
                    continue
                value = 0
                if i > 0:
                    g[i, j], value = 0, f.get((i - 1, j), 0)
                if j > 0 and f.get((i, j - 1), 0) > value:
                    g[i, j], value = 1, f[i, j - 1]
                diag = f.get((i - 1, j - 1), 0) if i > 0 and j > 0 else 0
                same = preprocess_text(paragraph[i], lower=lower, remove_space=False) == text[j]
                if same and diag + 1 > value:
                    g[i, j], value = 2, diag + 1
                f[i, j] = value
        return f, g

    band = abs(n - m) + 5
    f, g = run(band)
    if not f.get((n - 1, m - 1), 0) > 0.8 * n:
        f, g = run(2 * band)
    orig_to_tok = [None] * n
    i, j = n - 1, m - 1
    while i >= 0 and j >= 0 and (i, j) in g:
        if g[i, j] == 2:
            orig_to_tok[i] = j
            i, j = i - 1, j - 1
        elif g[i, j] == 1:
            j -= 1
        else:
            i -= 1
    return f.get((n - 1, m - 1), 0), orig_to_tok


ALIGNMENT_TEXTS = [
    "Café au lait is served in Paris.",
    "We went to   the   big\t market.",
    "東京は日本の首都です。",
    "The price was 1,000 dollars, in 1990, 1991.",
    "Ærøskøbing  has ﬁne ﬂowers — and Résumé writers!",
    "  leading and trailing spaces  ",
    "ＦＵＬＬＷＩＤＴＨ text and İstanbul",
    "a\u0301 lone accent, x\u0302y",
    "🎉 emoji 🚀 and 中文, English",
]


@pytest.mark.parametrize("lower", [True, False])
@pytest.mark.parametrize("text", ALIGNMENT_TEXTS)
def test_alignment_equals_the_cell_by_cell_recurrence(spm_path, text, lower):
    tok = FullTokenizer(None, lower, spm_path)
    pieces = tok.tokenize(text)
    lcs, orig_to_tok = _reference_alignment(text, pieces, lower)
    alignment = squad.align_context(text, pieces, lower)
    if lcs < 0.8 * len(text) or all(v is None for v in orig_to_tok):
        assert alignment is None
    else:
        assert alignment.lcs == lcs
        assert alignment.orig_to_chartok_index == orig_to_tok


@pytest.mark.parametrize("context,answer", [
    ("Café au lait is served in Paris every morning.", "Café"),          # at the start
    ("We went to   the   big   market.", "big"),                         # multiple spaces
    ("東京は日本の首都です", "東京"),                                        # CJK
    ("The price was 1,000 dollars in 1990, 1991.", "1,000"),             # digit-comma
    ("Ærøskøbing has Résumé writers at noon", "Résumé writers"),         # accents
    ("It was bought at the store and it ended at the very end", "end"),  # at the end
])
def test_answer_maps_to_pieces_that_map_back_to_the_answer_text(tokenizer, context, answer):
    example = squad.SquadExample("q", "Where?", context, answer, context.rindex(answer))
    (feature,) = squad.convert_examples_to_features([example], tokenizer, 128, 64, 16, True)
    assert not feature.is_impossible
    first = feature.tok_start_to_orig_index[feature.start_position - feature.doc_offset]
    last = feature.tok_end_to_orig_index[feature.end_position - feature.doc_offset]
    assert context[first:last + 1].strip() == answer


def test_convert_index_fills_gaps_as_the_original():
    # Hand-computed from SPEC 5.1 step 5 for index = [None, 3, None, None, 7, None].
    index = [None, 3, None, None, 7, None]
    assert squad._convert_index(index, 1) == 3
    assert squad._convert_index(index, 2, is_start=True) == 4      # gap: front + 1
    assert squad._convert_index(index, 2, is_start=False) == 6     # gap: rear - 1
    assert squad._convert_index(index, 0, is_start=True) == 0      # left edge, rear >= 1
    assert squad._convert_index(index, 0, is_start=False) == 2     # left edge: rear - 1
    assert squad._convert_index(index, 5, 10, is_start=True) == 8  # right edge: front + 1
    assert squad._convert_index(index, 5, 10, is_start=False) == 9  # right edge: m - 1
    assert squad._convert_index(index, 5, is_start=False) == 7     # no limit: front
    assert squad._convert_index([None, 3, 4], 0, is_start=True) == 0
    assert squad._convert_index([2, None, 3], 1, is_start=True) == 3   # no room: rear
    assert squad._convert_index([2, None, 3], 1, is_start=False) == 2  # no room: front


def test_context_whose_pieces_spell_something_else_does_not_align():
    # Under 80% of the context's characters matched: the original drops the example
    # ("MISMATCH DETECTED!").
    assert squad.align_context("1234567890", ["\u2581zzzzzzzz"], True) is None
    assert squad.align_context("abcdefghij", ["\u2581abcdefg", "xyz"], True) is None
    assert squad.align_context("abcdefghij", ["\u2581abcdefgh", "iz"], True) is not None


# --------------------------------------------------------------------------------------------
# Windows, labels and the feature layout
# --------------------------------------------------------------------------------------------

def test_doc_spans_hand_computed():
    assert squad.doc_spans(10, 4, 2) == [(0, 4), (2, 4), (4, 4), (6, 4)]
    assert squad.doc_spans(10, 4, 3) == [(0, 4), (3, 4), (6, 4)]
    assert squad.doc_spans(10, 4, 9) == [(0, 4), (4, 4), (8, 2)]    # stride > window
    assert squad.doc_spans(3, 4, 2) == [(0, 3)]
    assert squad.doc_spans(0, 4, 2) == []


def test_max_context_follows_berts_example():
    # BERT's comment: "bought" (token 7) is in span B (left 4, right 0) and span C
    # (left 1, right 3); C gives it the most context.
    spans = [squad.DocSpan(0, 5), squad.DocSpan(3, 5), squad.DocSpan(6, 5)]
    assert squad.max_context_flags(spans, 1)[7 - 3] is False
    assert squad.max_context_flags(spans, 2)[7 - 6] is True


def test_answer_crossing_a_window_edge_labels_only_the_window_holding_all_of_it(
        word_tokenizer):
    # 10 one-piece words; question "z" (1 piece): windows of 8 - 1 - 3 = 4 pieces, stride 2:
    # (0,4) (2,4) (4,4) (6,4). The answer "d e" is pieces 3..4: only window (2,4) holds it,
    # at 3 - 2 + (1 + 2) = 4 .. 5; the others point at [CLS] and are impossible.
    context = "a b c d e f g h i j"
    example = squad.SquadExample("q", "z", context, "d e", 6)
    features = squad.convert_examples_to_features([example], word_tokenizer, 8, 2, 4, True)
    assert [(f.start_position, f.end_position, f.is_impossible) for f in features] == [
        (0, 0, True), (4, 5, False), (0, 0, True), (0, 0, True)]
    assert [f.unique_id for f in features] == [1000000000, 1000000001, 1000000002, 1000000003]
    assert all(f.example_index is None for f in features)      # training, as the original


def test_feature_layout_matches_the_original_table(word_tokenizer):
    # SPEC 5.1 table: [CLS] q [SEP] doc [SEP] pad.
    cls_id, sep_id = word_tokenizer.cls_id, word_tokenizer.sep_id
    ids = word_tokenizer.sp_model.PieceToId
    example = squad.SquadExample("q", "y z", "a b c")
    (f,) = squad.convert_examples_to_features([example], word_tokenizer, 10, 4, 4, False)
    assert f.input_ids == [cls_id, ids("\u2581y"), ids("\u2581z"), sep_id, ids("\u2581a"),
                           ids("\u2581b"), ids("\u2581c"), sep_id, 0, 0]
    assert f.segment_ids == [0, 0, 0, 0, 1, 1, 1, 1, 0, 0]
    assert f.p_mask == [0, 1, 1, 1, 0, 0, 0, 1, 1, 1]
    assert f.input_mask == [1] * 8 + [0] * 2
    assert f.doc_offset == 4 and f.example_index == 0
    # "▁b" starts with the space before "b" (character 1): texts are stripped afterwards.
    assert f.tok_start_to_orig_index == [0, 1, 3] and f.tok_end_to_orig_index == [0, 2, 4]
    assert f.start_position is None


def test_long_question_is_cut_to_its_first_pieces(word_tokenizer):
    example = squad.SquadExample("q", "p q r s t u", "a b")
    report = squad.ConversionReport()
    (f,) = squad.convert_examples_to_features([example], word_tokenizer, 12, 4, 3, False,
                                              report=report)
    ids = word_tokenizer.sp_model.PieceToId
    assert f.input_ids[1:4] == [ids("\u2581p"), ids("\u2581q"), ids("\u2581r")]
    assert f.doc_offset == 5 and report.truncated_questions == 1


def test_unanswerable_question_points_every_window_at_cls(word_tokenizer):
    example = squad.SquadExample("q", "z", "a b c d e f", "", -1, is_impossible=True)
    features = squad.convert_examples_to_features([example], word_tokenizer, 7, 2, 3, True)
    assert len(features) == 3         # windows (0, 3), (2, 3), (4, 2)
    assert all((f.start_position, f.end_position, f.is_impossible) == (0, 0, True)
               for f in features)


def test_features_do_not_depend_on_the_order_of_questions(tokenizer):
    # Contexts are aligned once and reused; shuffled training questions (the original
    # pre-shuffles them) must get the features each would get alone.
    first, second = "Cafe au lait is served in Paris.", "We went to the big market."
    examples = [squad.SquadExample("a", "Where?", first, "Paris", 26),
                squad.SquadExample("b", "What?", second, "big market", 15),
                squad.SquadExample("c", "Which?", first, "Cafe au lait", 0),
                squad.SquadExample("d", "Who?", second, "", -1, is_impossible=True)]

    def key(f):
        return f.input_ids, f.start_position, f.end_position, f.tok_start_to_orig_index

    together = squad.convert_examples_to_features(examples, tokenizer, 32, 8, 8, True)
    alone = [f for e in examples
             for f in squad.convert_examples_to_features([e], tokenizer, 32, 8, 8, True)]
    assert [key(f) for f in together] == [key(f) for f in alone]


def test_empty_context_gives_no_feature(word_tokenizer):
    report = squad.ConversionReport()
    features = squad.convert_examples_to_features(
        [squad.SquadExample("q", "z", "   ")], word_tokenizer, 8, 2, 4, False, report=report)
    assert features == [] and report.no_tokens == 1


def test_settings_that_leave_no_room_for_the_context_are_refused(word_tokenizer):
    with pytest.raises(ValueError, match="must be greater than max_query_length"):
        squad.convert_examples_to_features([], word_tokenizer, 10, 2, 7, False)


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------

def test_training_records_have_the_original_names_and_int64_values(word_tokenizer, tmp_path):
    example = squad.SquadExample("q", "z", "a b c d e f g h i j", "d e", 6)
    path = tmp_path / "train.tfrecord"
    writer = squad.FeatureWriter(str(path), is_training=True)
    squad.convert_examples_to_features([example], word_tokenizer, 8, 2, 4, True,
                                       writer.process_feature)
    writer.close()
    records = [tf.train.Example.FromString(r.numpy())
               for r in tf.data.TFRecordDataset(str(path))]
    assert len(records) == 4
    second = records[1].features.feature
    assert sorted(second) == ["end_positions", "input_ids", "input_mask", "is_impossible",
                              "p_mask", "segment_ids", "start_positions", "unique_ids"]
    assert all(second[name].WhichOneof("kind") == "int64_list" for name in second)
    assert (second["unique_ids"].int64_list.value[0], second["start_positions"].int64_list.
            value[0], second["end_positions"].int64_list.value[0],
            second["is_impossible"].int64_list.value[0]) == (1000000001, 4, 5, 0)
    # The training input yields int32 batches of whole batches only.
    batch = next(iter(squad.squad_dataset(str(path), 8, True, 3, is_v2=True)))
    assert batch["input_ids"].shape == (3, 8) and batch["input_ids"].dtype == tf.int32
    assert batch["start_positions"].shape == (3,)


def test_prediction_cache_is_built_once_and_refused_with_other_settings(word_tokenizer,
                                                                         tmp_path):
    path = _squad_file(tmp_path, [{"context": "a b c d e f", "qas": [_qa("q1", "z"),
                                                                     _qa("q2", "y")]}])
    records, left = str(tmp_path / "dev.tfrecord"), str(tmp_path / "dev.pkl")
    built = squad.prepare_eval_features(path, word_tokenizer, records, left, 8, 2, 4)
    assert [f.unique_id for f in built] == [1000000000, 1000000001, 1000000002,
                                            1000000003]
    stamp = tf.io.gfile.stat(records).mtime_nsec
    again = squad.prepare_eval_features(path, word_tokenizer, records, left, 8, 2, 4)
    assert again == built and tf.io.gfile.stat(records).mtime_nsec == stamp
    with pytest.raises(TaskDataError, match=r"doc_stride: 2 there, 3 now.*Delete"):
        squad.prepare_eval_features(path, word_tokenizer, records, left, 8, 3, 4)


def test_left_file_written_by_the_original_is_read(tmp_path):
    # The original pickles a list of its squad_utils.InputFeatures objects; post-processing
    # needs tokens (for the first [SEP]), the orig maps and token_is_max_context (a dict by
    # absolute position).
    module = types.ModuleType("squad_utils")

    class InputFeatures:
        pass

    InputFeatures.__module__ = "squad_utils"
    InputFeatures.__qualname__ = "InputFeatures"
    module.InputFeatures = InputFeatures
    feature = InputFeatures()
    feature.__dict__.update(
        unique_id=1000000000, example_index=0, doc_span_index=0,
        tok_start_to_orig_index=[0, 2], tok_end_to_orig_index=[0, 3],
        token_is_max_context={3: True, 4: False}, tokens=["[CLS]", "▁z", "[SEP]", "▁a",
                                                          "▁bc", "[SEP]"],
        input_ids=[2, 9, 3, 5, 6, 3], input_mask=[1] * 6, segment_ids=[0, 0, 0, 1, 1, 1],
        paragraph_len=6, start_position=None, end_position=None, is_impossible=False,
        p_mask=[0, 1, 1, 0, 0, 1])
    sys.modules["squad_utils"] = module
    try:
        data = pickle.dumps([feature], protocol=3)     # Python 3.7's default
    finally:
        del sys.modules["squad_utils"]
    path = tmp_path / "left.pkl"
    path.write_bytes(data)
    (loaded,), settings = squad.load_eval_features(str(path))
    assert settings is None
    assert (loaded.unique_id, loaded.example_index, loaded.doc_offset) == (1000000000, 0, 3)
    assert loaded.token_is_max_context == [True, False]
    assert loaded.tok_end_to_orig_index == [0, 3]


def test_left_file_with_foreign_objects_is_refused(tmp_path):
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps([types.SimpleNamespace(a=1)]))
    with pytest.raises(TaskDataError, match="not a SQuAD prediction-feature file"):
        squad.load_eval_features(str(path))


# --------------------------------------------------------------------------------------------
# Post-processing on hand-written outputs
# --------------------------------------------------------------------------------------------

# Context "alpha beta gamma delta": four one-piece words at characters 0-4, 6-9, 11-15,
# 17-21. One window, question of 1 piece: [CLS] q [SEP] alpha beta gamma delta [SEP] pad.
CONTEXT = "alpha beta gamma delta"
STARTS, ENDS = [0, 6, 11, 17], [4, 9, 15, 21]


def _feature(unique_id=1000000000, example_index=0, max_context=(True,) * 4):
    return squad.EvalFeature(unique_id, example_index, 3, STARTS, ENDS, list(max_context))


def _logits(values, length=9):
    out = np.full(length, -10.0, np.float32)
    for position, value in values.items():
        out[position] = value
    return out


def test_v1_best_span_is_the_highest_valid_start_plus_end():
    # Positions: 0 [CLS], 1 question, 2 [SEP], 3 alpha, 4 beta, 5 gamma, 6 delta, 7 [SEP].
    # The best logits overall are [CLS] / the question (starts) and the question / the last
    # [SEP] (ends): not answers. End 3 is before both good starts. Best valid: start 4 (3.0)
    # + end 5 (1.5) = "beta gamma", ahead of 5 + 5 = "gamma" (3.5).
    start = _logits({0: 9.0, 4: 3.0, 5: 2.0, 1: 8.0})
    end = _logits({1: 9.0, 3: 4.0, 5: 1.5, 7: 8.0})
    example = squad.SquadExample("q", "?", CONTEXT)
    predictions, nbest = post.predictions_v1(
        [example], [_feature()], [post.RawResultV1(1000000000, start, end)], 20, 30)
    assert predictions["q"] == "beta gamma"
    assert nbest["q"][0]["start_log_prob"] == 3.0 and nbest["q"][0]["end_log_prob"] == 1.5
    assert nbest["q"][1]["text"] == "gamma"


def test_v1_respects_max_answer_length_and_max_context():
    start = _logits({3: 5.0, 4: 1.0})
    end = _logits({6: 5.0, 4: 2.0})
    example = squad.SquadExample("q", "?", CONTEXT)
    result = [post.RawResultV1(1000000000, start, end)]
    # 3..6 (10.0) is 4 pieces: too long for max_answer_length=3; next best 3..4 (7.0).
    assert post.predictions_v1([example], [_feature()], result, 20, 3)[0]["q"] == "alpha beta"
    assert post.predictions_v1([example], [_feature()], result, 20, 4)[0]["q"] == CONTEXT
    # With alpha not max-context in this window, the start must be beta: 4..6 (6.0).
    feature = _feature(max_context=(False, True, True, True))
    assert post.predictions_v1([example], [feature], result, 20, 3)[0]["q"] == \
        "beta gamma delta"


def test_v1_without_any_valid_span_answers_the_literal_empty():
    start = _logits({0: 5.0})
    example = squad.SquadExample("q", "?", CONTEXT)
    predictions, nbest = post.predictions_v1(
        [example], [_feature()], [post.RawResultV1(1000000000, start, start)], 1, 30)
    assert predictions["q"] == "empty"
    assert nbest["q"] == [{"text": "empty", "probability": 1.0, "start_log_prob": 0.0,
                           "end_log_prob": 0.0}]
    # An example without features (e.g. an empty context) too.
    other = squad.SquadExample("r", "?", "")
    assert post.predictions_v1([example, other], [_feature()],
                               [post.RawResultV1(1000000000, start, start)])[0]["r"] == "empty"


def test_v1_nbest_is_deduplicated_by_text_with_softmax_probabilities():
    # Two windows over the same context both propose "gamma"; it appears once, with the
    # better window's scores. Probabilities: softmax of the n-best score sums.
    start = _logits({5: 2.0, 6: 1.0})
    end = _logits({5: 2.0, 6: 0.0})
    weaker = _logits({5: 1.0})
    example = squad.SquadExample("q", "?", CONTEXT)
    features = [_feature(), _feature(1000000001)]
    results = [post.RawResultV1(1000000000, start, end),
               post.RawResultV1(1000000001, weaker, weaker)]
    _, nbest = post.predictions_v1([example], features, results, 3, 30)
    texts = [entry["text"] for entry in nbest["q"]]
    assert texts == ["gamma", "gamma delta", "delta"]
    sums = [4.0, 2.0, 1.0]
    expected = [math.exp(s) / sum(math.exp(t) for t in sums) for s in sums]
    assert [e["probability"] for e in nbest["q"]] == pytest.approx(expected)


def _v2_result(unique_id, start_top, end_top, cls_logit):
    """start_top: [(position, log_prob)] (k); end_top: per start, [(position, log_prob)] (e)."""
    return post.RawResultV2(
        unique_id, [lp for _, lp in start_top], [p for p, _ in start_top],
        [lp for ends in end_top for _, lp in ends], [p for ends in end_top for p, _ in ends],
        cls_logit)


def test_v2_beam_decoding_pairs_each_start_with_its_own_ends():
    # Beam of 2 starts x 2 ends, start-major. Start 0 ([CLS]) is not an answer; start 4
    # (beta, -1.0) has ends 6 (-0.5) and 3 (-0.1, before the start); start 5 (gamma, -0.2)
    # has ends 5 (-2.0) and 1 (question). Valid: beta..delta -1.5, gamma..gamma -2.2.
    result = _v2_result(1000000000, [(4, -1.0), (5, -0.2)],
                        [[(6, -0.5), (3, -0.1)], [(5, -2.0), (1, -0.3)]], -5.0)
    example = squad.SquadExample("q", "?", CONTEXT)
    predictions, nbest, odds = post.predictions_v2([example], [_feature()], [result], 20, 30)
    assert predictions["q"] == "beta gamma delta"
    assert [(e["text"], e["start_log_prob"], e["end_log_prob"]) for e in nbest["q"]] == [
        ("beta gamma delta", -1.0, -0.5), ("gamma", -0.2, -2.0)]
    assert odds["q"] == -5.0


def test_v2_null_score_is_the_minimum_cls_logit_and_the_threshold_is_inclusive():
    example = squad.SquadExample("q", "?", CONTEXT)
    features = [_feature(), _feature(1000000001)]
    results = [_v2_result(1000000000, [(5, -0.1)], [[(5, -0.1)]], 2.0),
               _v2_result(1000000001, [(5, -0.1)], [[(5, -0.1)]], 0.5)]
    for threshold, answer in [(None, "gamma"), (0.6, "gamma"), (0.5, ""), (0.4, "")]:
        predictions, _, odds = post.predictions_v2([example], features, results, 20, 30,
                                                   threshold)
        assert odds["q"] == 0.5
        assert predictions["q"] == answer, threshold


def test_v2_question_without_candidates_or_windows():
    example = squad.SquadExample("q", "?", CONTEXT)
    orphan = squad.SquadExample("r", "?", "")
    result = _v2_result(1000000000, [(0, -0.1)], [[(0, -0.1)]], -3.0)
    predictions, nbest, odds = post.predictions_v2([example, orphan], [_feature()], [result])
    assert predictions == {"q": "", "r": ""}
    assert nbest["q"][0] == {"text": "", "probability": 1.0, "start_log_prob": -1e6,
                             "end_log_prob": -1e6}
    assert odds["r"] == 1e6          # the original's start value, never lowered


def test_v2_threshold_is_chosen_on_the_evaluated_set(tmp_path):
    # Four questions, each with one window. Null scores: a -3, b -1, c 1, d 2; answers a, c
    # have gold "alpha"; b, d are unanswerable. Predicted spans: all "alpha".
    # The official best-F1 walk (ascending null score, from "all null" = 2 correct):
    # a (has answer, right) -> 3, best at -3; b (no answer, answered) -> 2; c (right) -> 3,
    # not better; d -> 2. Best threshold -3, best F1 75%. The files then answer null where
    # the null score is >= -3: all four, a included (the original's >= against the
    # script's >; SPEC 5.6), which scores 50%.
    dataset = [{"paragraphs": [{"context": CONTEXT, "qas": [
        {"id": qid, "question": "?", "answers": [{"text": "alpha", "answer_start": 0}]
         if has else []} for qid, has in [("a", True), ("b", False), ("c", True),
                                          ("d", False)]]}]}]
    examples = [squad.SquadExample(qid, "?", CONTEXT) for qid in "abcd"]
    features = [_feature(1000000000 + i, i) for i in range(4)]
    results = [_v2_result(1000000000 + i, [(3, -0.1)], [[(3, -0.1)]], logit)
               for i, logit in enumerate([-3.0, -1.0, 1.0, 2.0])]
    scores = post.evaluate_v2(dataset, examples, features, results, str(tmp_path))
    assert scores["null_score_diff_threshold"] == -3.0
    assert scores["best_f1"] == pytest.approx(75.0)
    predictions = json.loads((tmp_path / "predictions.json").read_text())
    assert predictions == {"a": "", "b": "", "c": "", "d": ""}
    assert scores["f1"] == pytest.approx(50.0) and scores["total"] == 4
    assert scores["HasAns_total"] == 2 and scores["NoAns_f1"] == pytest.approx(100.0)
    assert json.loads((tmp_path / "null_odds.json").read_text()) == {
        "a": -3.0, "b": -1.0, "c": 1.0, "d": 2.0}
    assert (tmp_path / "nbest_predictions.json").exists()


def test_v1_metric_is_the_official_one_in_percent():
    # Official normalisation: lower case, no punctuation, no articles a/an/the.
    dataset = [{"paragraphs": [{"context": CONTEXT, "qas": [
        {"id": "a", "question": "?", "answers": [{"text": "the Cat", "answer_start": 0}]},
        {"id": "b", "question": "?", "answers": [{"text": "big red dog", "answer_start": 0},
                                                  {"text": "dog", "answer_start": 0}]}]}]}]
    scores = post.evaluate_v1(dataset, {"a": "cat.", "b": "red dog"})
    # a: exact; b: best over golds: F1("red dog", "big red dog") = 2*(1*2/3)/(1+2/3) = 0.8.
    assert scores["exact_match"] == pytest.approx(50.0)
    assert scores["f1"] == pytest.approx(90.0)


def test_prediction_files_are_written_as_the_original(tmp_path):
    post.write_prediction_files(str(tmp_path), {"q": "x"}, {"q": []}, {"q": 1.5})
    assert (tmp_path / "predictions.json").read_text() == '{\n    "q": "x"\n}\n'
    assert json.loads((tmp_path / "null_odds.json").read_text()) == {"q": 1.5}


# --------------------------------------------------------------------------------------------
# Losses (SPEC 5.2 and 5.3), on hand-written model outputs
# --------------------------------------------------------------------------------------------

def test_v1_loss_is_the_mean_of_start_and_end_cross_entropy():
    from albert_tf.tasks.squad_task import squad_v1_loss
    start = np.array([[1.0, 2.0, 3.0]], np.float32)
    end = np.array([[0.0, 0.0, 1.0]], np.float32)

    def model(batch, training):
        return {"start_logits": tf.constant(start), "end_logits": tf.constant(end)}

    loss = squad_v1_loss(model, {"start_positions": [1], "end_positions": [2]}, True)
    log_softmax = lambda x: x - np.log(np.exp(x).sum())  # noqa: E731
    expected = -(log_softmax(start[0])[1] + log_softmax(end[0])[2]) / 2
    assert float(loss[0]) == pytest.approx(expected, rel=1e-6)


def test_v2_loss_weights_span_and_answerability_by_half():
    from albert_tf.tasks.squad_task import squad_v2_loss
    start_lp = np.log(np.array([[0.5, 0.25, 0.25]], np.float32))
    end_lp = np.log(np.array([[0.1, 0.1, 0.8]], np.float32))

    def model(batch, training):
        assert "start_positions" in batch        # the end head is fed the gold start
        return {"start_log_probs": tf.constant(start_lp), "end_log_probs": tf.constant(end_lp),
                "cls_logits": tf.constant([0.3])}

    loss = squad_v2_loss(model, {"start_positions": [0], "end_positions": [2],
                                 "is_impossible": [1]}, True)
    bce = -math.log(1 / (1 + math.exp(-0.3)))
    expected = 0.5 * (-math.log(0.5) - math.log(0.8)) + 0.5 * bce
    assert float(loss[0]) == pytest.approx(expected, rel=1e-6)


def test_steps_are_counted_in_questions_as_the_original():
    # README v1.1: 87,599 questions, batch 48, 2 epochs -> 3649 steps, 364 warm-up.
    from albert_tf.tasks.squad_task import train_steps
    assert train_steps(87599, 48, 2.0, 0.1) == (3649, 364)
    assert train_steps(130319, 48, 2.0, 0.1) == (5429, 542)
