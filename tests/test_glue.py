"""GLUE fine-tuning: readers, features, cache, metrics, submission files, the whole run.

References: the GLUE files' official formats (headers and columns as download_glue_data.py
writes them; rows below are shaped like the real ones), the original classifier_utils.py
rules as SPEC G.2/G.3 state them, ids from the `sentencepiece` library itself, metric values
computed by hand, the GLUE server's file names.
"""
import json
import math
import os
import pathlib
import random
import subprocess
import sys

import numpy as np
import pytest
import sentencepiece as spm
import tensorflow as tf

from albert_tf import AlbertConfig, checkpoints, finetuning, tokenization
from albert_tf import export as export_lib
from albert_tf.heads import AlbertClassifier
from albert_tf.tasks import TaskDataError, base, glue, glue_task
from albert_tf.training import SettingsError
from conftest import entry_point_flag_defaults

REPO = pathlib.Path(__file__).resolve().parent.parent

# Every word of the synthetic data is whole in the tiny vocabulary (the corpus repeats it).
POSITIVE = ["good", "great", "happy", "nice", "fine", "bright"]
NEGATIVE = ["bad", "awful", "sad", "poor", "ugly", "dark"]
FILLER = ["the", "movie", "was", "a", "story", "about", "people", "and", "day", "night"]


def write_tsv(path, rows):
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join("\t".join(row) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def spm_model(tmp_path_factory):
    """A ~60-piece SentencePiece model (the original recipe) trained on the test words."""
    from albert_tf.train_sentencepiece import train_sentencepiece
    folder = tmp_path_factory.mktemp("spm")
    corpus = folder / "corpus.txt"
    rng = random.Random(0)
    words = POSITIVE + NEGATIVE + FILLER
    lines = [", ".join([w] * 4) for w in words]
    lines += [" ".join(rng.choice(words) for _ in range(8)) + "." for _ in range(300)]
    corpus.write_text("\n".join(lines) + "\n")
    return train_sentencepiece(str(corpus), str(folder / "tiny"), vocab_size=80,
                               extra_options={"hard_vocab_limit": False})


@pytest.fixture(scope="module")
def tokenizer(spm_model):
    return tokenization.FullTokenizer(None, True, spm_model)


@pytest.fixture(scope="module")
def sp(spm_model):
    return spm.SentencePieceProcessor(model_file=spm_model)


# =========================================================================================
# Readers, one per GLUE format
# =========================================================================================


def read(task_name, split_file_name, data_dir, **kwargs):
    task = glue.get_task(task_name)
    files = {f.name: f for f in ([task.train] if task.train else []) + list(task.dev)
             + list(task.test)}
    return glue.read_examples(task, files[split_file_name], str(data_dir), **kwargs)


def test_cola_train_has_no_header_and_gets_generated_guids(tmp_path):
    # CoLA train/dev: source, label, original annotation, sentence; no header row.
    write_tsv(tmp_path / "CoLA/train.tsv", [
        ["gj04", "1", "", "Our friends won't buy this analysis, let alone the next one."],
        ["gj04", "0", "*", "One more pseudo generalization and I'm giving up."]])
    examples = read("CoLA", "train", tmp_path)
    assert [(e.guid, e.text_a, e.text_b, e.label) for e in examples] == [
        ("train-0", "Our friends won't buy this analysis, let alone the next one.", None, "1"),
        ("train-1", "One more pseudo generalization and I'm giving up.", None, "0")]


def test_cola_test_file_has_header_index_and_sentence(tmp_path):
    write_tsv(tmp_path / "CoLA/test.tsv", [["index", "sentence"],
                                           ["0", "Bill whistled past the house."]])
    (example,) = read("cola", "test", tmp_path)
    # Test labels are the first label as a dummy, as the original.
    assert (example.guid, example.text_a, example.label) == ("0", "Bill whistled past the "
                                                             "house.", "0")


def test_sst2_sentence_then_label_with_header(tmp_path):
    write_tsv(tmp_path / "SST-2/dev.tsv", [["sentence", "label"],
                                           ["it 's a charming and often affecting journey . ",
                                            "1"]])
    write_tsv(tmp_path / "SST-2/test.tsv", [["index", "sentence"],
                                            ["0", "uneasy mishmash of styles and genres ."]])
    (dev,) = read("SST-2", "dev", tmp_path)
    (test,) = read("SST-2", "test", tmp_path)
    assert (dev.guid, dev.label) == ("dev-1", "1")   # row index counts the header
    assert dev.text_a == "it 's a charming and often affecting journey . "
    assert (test.guid, test.text_a) == ("0", "uneasy mishmash of styles and genres .")


def test_mrpc_label_first_texts_in_columns_3_and_4(tmp_path):
    write_tsv(tmp_path / "MRPC/train.tsv", [
        ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"],
        ["1", "702876", "702977", "Amrozi accused his brother .", "Referring to him ."]])
    write_tsv(tmp_path / "MRPC/test.tsv", [
        ["index", "#1 ID", "#2 ID", "#1 String", "#2 String"],
        ["0", "1089874", "1089925", "PCCW 's chief operating officer .", "Current Chief ."]])
    (train,) = read("MRPC", "train", tmp_path)
    (test,) = read("MRPC", "test", tmp_path)
    assert (train.guid, train.text_a, train.text_b, train.label) == (
        "train-1", "Amrozi accused his brother .", "Referring to him .", "1")
    assert (test.guid, test.text_a, test.text_b) == (
        "0", "PCCW 's chief operating officer .", "Current Chief .")


def test_quotes_are_plain_characters_as_with_quotechar_none(tmp_path):
    # With CSV quoting, the opening quote would swallow the tab and the next line.
    write_tsv(tmp_path / "SST-2/train.tsv", [
        ["sentence", "label"], ['" the witness said', "1"], ['a "quoted" word', "0"]])
    examples = read("sst-2", "train", tmp_path)
    assert [(e.text_a, e.label) for e in examples] == [('" the witness said', "1"),
                                                        ('a "quoted" word', "0")]


def test_stsb_score_is_last_column_as_float(tmp_path):
    header = ["index", "genre", "filename", "year", "old_index", "source1", "source2",
              "sentence1", "sentence2"]
    write_tsv(tmp_path / "STS-B/train.tsv", [
        header + ["score"],
        ["0", "main-captions", "MSRvid", "2012test", "0001", "none", "none",
         "A plane is taking off.", "An air plane is taking off.", "5.000"]])
    write_tsv(tmp_path / "STS-B/test.tsv", [
        header, ["0", "main-captions", "MSRvid", "2012test", "0000", "none", "none",
                 "A girl is styling her hair.", "A girl is brushing her hair."]])
    (train,) = read("STS-B", "train", tmp_path)
    (test,) = read("sts-b", "test", tmp_path)
    assert (train.guid, train.text_a, train.text_b, train.label) == (
        "0", "A plane is taking off.", "An air plane is taking off.", 5.0)
    assert (test.text_a, test.text_b, test.label) == ("A girl is styling her hair.",
                                                      "A girl is brushing her hair.", 0.0)


def test_qqp_skips_short_rows_as_the_original(tmp_path, caplog):
    write_tsv(tmp_path / "QQP/dev.tsv", [
        ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"],
        ["133273", "213221", "213222", "How is the life of a math student?",
         "Which level of preparation is enough?", "0"],
        ["5", "11", "12", "a row without its second question"]])
    write_tsv(tmp_path / "QQP/test.tsv", [["id", "question1", "question2"],
                                          ["0", "Why do rockets look white?",
                                           "Why are rockets white?"]])
    with caplog.at_level("WARNING"):
        dev = read("QQP", "dev", tmp_path)
    assert [(e.guid, e.label) for e in dev] == [("133273", "0")]
    assert "line(s) 3" in caplog.text
    (test,) = read("QQP", "test", tmp_path)
    assert (test.guid, test.text_a, test.text_b) == ("0", "Why do rockets look white?",
                                                     "Why are rockets white?")


MNLI_HEAD = ["index", "promptID", "pairID", "genre", "sentence1_binary_parse",
             "sentence2_binary_parse", "sentence1_parse", "sentence2_parse", "sentence1",
             "sentence2"]


def mnli_row(index, a, b, labels=()):
    return [str(index), "31193", "31193n", "government", "( ( bp", "( bp )", "(ROOT (S))",
            "(ROOT (NP))", a, b] + list(labels)


def test_mnli_texts_in_columns_8_and_9_gold_label_last(tmp_path):
    write_tsv(tmp_path / "MNLI/train.tsv", [
        MNLI_HEAD + ["label1", "gold_label"],
        mnli_row(0, "Conceptually cream skimming has two dimensions.",
                 "Product and geography are what make cream skimming work.",
                 ["neutral", "neutral"])])
    write_tsv(tmp_path / "MNLI/dev_matched.tsv", [
        MNLI_HEAD + [f"label{i}" for i in range(1, 6)] + ["gold_label"],
        mnli_row(7, "The new rights are nice enough", "Everyone really likes them",
                 ["neutral", "entailment", "neutral", "neutral", "neutral",
                  "entailment"])])
    (train,) = read("MNLI", "train", tmp_path)
    (dev,) = read("MNLI", "dev_matched", tmp_path)
    assert (train.guid, train.text_a, train.label) == (
        "0", "Conceptually cream skimming has two dimensions.", "neutral")
    assert train.text_b == "Product and geography are what make cream skimming work."
    assert (dev.guid, dev.text_b, dev.label) == ("7", "Everyone really likes them",
                                                 "entailment")


def test_mnli_test_files_and_their_glue_server_names(tmp_path):
    task = glue.get_task("mnli")
    assert [(f.path, f.submission) for f in task.test] == [
        ("MNLI/test_matched.tsv", "MNLI-m.tsv"), ("MNLI/test_mismatched.tsv", "MNLI-mm.tsv"),
        ("diagnostic/diagnostic.tsv", "AX.tsv")]
    assert [f.path for f in task.dev] == ["MNLI/dev_matched.tsv", "MNLI/dev_mismatched.tsv"]
    write_tsv(tmp_path / "MNLI/test_mismatched.tsv",
              [MNLI_HEAD, mnli_row(3, "Your contribution helped.", "It did nothing.")])
    (test,) = read("MNLI", "test_mismatched", tmp_path)
    assert (test.guid, test.text_a, test.label) == ("3", "Your contribution helped.",
                                                    "contradiction")


def test_official_submission_file_names():
    names = {t.name: [f.submission for f in t.test] for t in glue.TASKS.values()}
    assert names == {
        "cola": ["CoLA.tsv"], "sst-2": ["SST-2.tsv"], "mrpc": ["MRPC.tsv"],
        "sts-b": ["STS-B.tsv"], "qqp": ["QQP.tsv"],
        "mnli": ["MNLI-m.tsv", "MNLI-mm.tsv", "AX.tsv"], "mismnli": ["MNLI-mm.tsv"],
        "qnli": ["QNLI.tsv"], "rte": ["RTE.tsv"], "wnli": ["WNLI.tsv"], "ax": ["AX.tsv"]}


@pytest.mark.parametrize("task_name,folder,label", [
    ("QNLI", "QNLI", "not_entailment"), ("RTE", "RTE", "entailment"), ("WNLI", "WNLI", "1")])
def test_index_texts_label_tasks(tmp_path, task_name, folder, label):
    write_tsv(tmp_path / f"{folder}/dev.tsv", [["index", "s1", "s2", "label"],
                                               ["12", "first text", "second text", label]])
    (dev,) = read(task_name, "dev", tmp_path)
    assert (dev.guid, dev.text_a, dev.text_b, dev.label) == ("12", "first text",
                                                             "second text", label)


def test_ax_diagnostic_is_a_test_set_with_mnli_labels(tmp_path):
    write_tsv(tmp_path / "diagnostic/diagnostic.tsv", [
        ["index", "sentence1", "sentence2"],
        ["0", "The cat sat on the mat.", "The cat did not sit on the mat."]])
    (example,) = read("AX", "diagnostic", tmp_path)
    assert (example.guid, example.text_b, example.label) == (
        "0", "The cat did not sit on the mat.", "contradiction")
    assert glue.get_task("ax").labels == ("contradiction", "entailment", "neutral")


def test_labels_are_cleaned_and_lower_cased_as_the_original(tmp_path):
    write_tsv(tmp_path / "RTE/train.tsv", [["index", "s1", "s2", "label"],
                                           ["0", "a", "b", " Not_Entailment "]])
    assert read("RTE", "train", tmp_path)[0].label == "not_entailment"
    with pytest.raises(TaskDataError, match="Not_Entailment"):
        read("RTE", "train", tmp_path, do_lower_case=False)


# --- Bad input ---------------------------------------------------------------------------


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(TaskDataError, match=r"MNLI/dev_matched\.tsv.*does not exist"):
        read("MNLI", "dev_matched", tmp_path)


def test_unknown_label_names_file_line_and_label(tmp_path):
    write_tsv(tmp_path / "SST-2/train.tsv", [["sentence", "label"], ["fine", "1"],
                                             ["meh", "2"]])
    with pytest.raises(TaskDataError, match=r"SST-2/train\.tsv, line 3: label '2' is not one "
                                            r"of the labels of sst-2: \['0', '1'\]"):
        read("SST-2", "train", tmp_path)


def test_row_with_too_few_columns_names_file_and_line(tmp_path):
    write_tsv(tmp_path / "RTE/dev.tsv", [["index", "s1", "s2", "label"],
                                         ["0", "a", "b", "entailment"], ["1", "a", "b"]])
    with pytest.raises(TaskDataError, match=r"RTE/dev\.tsv, line 3: expected at least 4 "
                                            r".*found 3"):
        read("RTE", "dev", tmp_path)


def test_empty_split_is_an_error(tmp_path):
    write_tsv(tmp_path / "WNLI/train.tsv", [["index", "sentence1", "sentence2", "label"]])
    with pytest.raises(TaskDataError, match="holds no examples"):
        read("WNLI", "train", tmp_path)


def test_regression_label_that_is_not_a_number(tmp_path):
    write_tsv(tmp_path / "STS-B/dev.tsv", [["h"] * 10, ["0"] + ["x"] * 8 + ["high"]])
    with pytest.raises(TaskDataError, match=r"line 2: label 'high' is not a number"):
        read("STS-B", "dev", tmp_path)


def test_task_names_are_case_insensitive_and_unknown_ones_are_rejected():
    assert glue.get_task("MNLI") is glue.get_task("mnli")
    assert glue.get_task("SST2").name == "sst-2"
    with pytest.raises(SettingsError, match="Unknown task 'glue'"):
        glue.get_task("glue")


# --- The generic tsv task ----------------------------------------------------------------


def test_tsv_task_reads_columns_by_header_name(tmp_path):
    write_tsv(tmp_path / "train.tsv", [["id", "review", "answer", "stars"],
                                       ["7", "great food", "yes", "pos"]])
    task = glue.tsv_task(["neg", "pos"], text_a_column="review", text_b_column="answer",
                         label_column="stars")
    (example,) = glue.read_examples(task, task.train, str(tmp_path))
    assert (example.guid, example.text_a, example.text_b, example.label) == (
        "train-1", "great food", "yes", "pos")
    write_tsv(tmp_path / "dev.tsv", [["id", "review", "answer", "stars"],
                                     ["8", "cold soup", "no", "Neg"]])
    with pytest.raises(TaskDataError, match=r"dev\.tsv, line 2: label 'Neg'"):
        glue.read_examples(task, task.dev[0], str(tmp_path))


def test_tsv_task_without_labels_is_a_regression(tmp_path):
    write_tsv(tmp_path / "train.tsv", [["text", "score"], ["so so", "2.5"]])
    task = glue.tsv_task(None)
    assert task.is_regression and task.metric == "pearson"
    assert glue.read_examples(task, task.train, str(tmp_path))[0].label == 2.5


# =========================================================================================
# Features
# =========================================================================================


def ids(sp, text):
    return sp.EncodeAsIds(text)


def test_words_of_the_test_vocabulary_are_single_pieces(sp):
    for word in POSITIVE + NEGATIVE + FILLER:
        assert len(sp.EncodeAsIds(word)) == 1, word


def test_pair_features_are_cls_a_sep_b_sep_with_segments_and_padding(tokenizer, sp):
    task = glue.get_task("mrpc")
    example = glue.InputExample("g", "The good Movie", "a sad story", "1")
    f = glue.convert_example(example, task, 12, tokenizer)
    cls, sep = sp.PieceToId("[CLS]"), sp.PieceToId("[SEP]")
    a, b = ids(sp, "the good movie"), ids(sp, "a sad story")   # lower-cased, as the original
    expected = [cls] + a + [sep] + b + [sep]
    assert f["input_ids"] == expected + [0] * (12 - len(expected))
    assert f["input_mask"] == [1] * len(expected) + [0] * (12 - len(expected))
    assert f["segment_ids"] == [0] * (len(a) + 2) + [1] * (len(b) + 1) + [0] * (
        12 - len(expected))
    assert (f["label_ids"], f["is_real_example"]) == (1, 1)


def test_pair_truncation_cuts_the_longer_text_then_b_on_a_tie(tokenizer, sp):
    task = glue.get_task("rte")
    cls, sep = sp.PieceToId("[CLS]"), sp.PieceToId("[SEP]")
    words_a = ["good", "great", "happy", "nice", "fine", "bright"]
    words_b = ["bad", "awful"]
    # Budget 8 - 3 = 5: a (6) loses its last tokens until 3 + 2 = 5.
    f = glue.convert_example(glue.InputExample("g", " ".join(words_a), " ".join(words_b),
                                               "entailment"), task, 8, tokenizer)
    assert f["input_ids"] == [cls] + ids(sp, "good great happy") + [sep] + ids(
        sp, "bad awful") + [sep]
    # Budget 9 - 3 = 6 with 4 + 4: equal lengths drop from b first -> (4, 3) -> (3, 3).
    f = glue.convert_example(glue.InputExample("g", "good great happy nice",
                                               "bad awful sad poor", "entailment"),
                             task, 9, tokenizer)
    assert f["input_ids"] == [cls] + ids(sp, "good great happy") + [sep] + ids(
        sp, "bad awful sad") + [sep]


def test_single_text_keeps_its_first_tokens(tokenizer, sp):
    task = glue.get_task("sst-2")
    f = glue.convert_example(glue.InputExample("g", "good great happy nice fine", None, "0"),
                             task, 5, tokenizer)
    assert f["input_ids"] == [sp.PieceToId("[CLS]")] + ids(sp, "good great happy") + [
        sp.PieceToId("[SEP]")]
    assert f["segment_ids"] == [0] * 5


def test_pair_whose_second_text_is_empty_is_packed_as_a_single_text(tokenizer, sp):
    task = glue.get_task("qqp")
    f = glue.convert_example(glue.InputExample("g", "good day", "   ", "0"), task, 6,
                             tokenizer)
    assert f["input_ids"] == [sp.PieceToId("[CLS]")] + ids(sp, "good day") + [
        sp.PieceToId("[SEP]"), 0, 0]
    assert f["segment_ids"] == [0] * 6


def test_records_have_the_original_feature_names_and_types(tmp_path, tokenizer):
    for task, label, stored in ((glue.get_task("sts-b"), 3.5, 3.5),
                                (glue.get_task("rte"), "not_entailment", 1)):
        path = str(tmp_path / f"{task.name}.tf_record")
        example = glue.InputExample("0", "good day", "bad night", label)
        glue.write_features([example], task, 8, tokenizer, path)
        (record,) = list(tf.data.TFRecordDataset(path).as_numpy_iterator())
        parsed = tf.train.Example.FromString(record).features.feature
        assert sorted(parsed) == ["input_ids", "input_mask", "is_real_example",
                                  "label_ids", "segment_ids"]
        assert len(parsed["input_ids"].int64_list.value) == 8
        label_list = (parsed["label_ids"].float_list if task.is_regression
                      else parsed["label_ids"].int64_list)
        assert list(label_list.value) == [stored]
        assert list(parsed["is_real_example"].int64_list.value) == [1]


# --- Cache -------------------------------------------------------------------------------


def test_second_run_reuses_the_cached_features(tmp_path, tokenizer, monkeypatch):
    task = glue.get_task("sst-2")
    examples = [glue.InputExample("0", "good day", None, "1")]
    first = glue.cached_features(examples, task, "train", 16, tokenizer, str(tmp_path))

    def must_not_convert(*args, **kwargs):
        raise AssertionError("converted again")

    monkeypatch.setattr(glue, "write_features", must_not_convert)
    assert glue.cached_features(examples, task, "train", 16, tokenizer, str(tmp_path)) == first


def test_cache_is_keyed_by_length_tokenizer_split_and_data(tmp_path, tokenizer, spm_model):
    task = glue.get_task("sst-2")
    examples = [glue.InputExample("0", "good day", None, "1")]
    cased = tokenization.FullTokenizer(None, False, spm_model)
    paths = {
        glue.cached_features(examples, task, "train", 16, tokenizer, str(tmp_path)),
        glue.cached_features(examples, task, "train", 32, tokenizer, str(tmp_path)),
        glue.cached_features(examples, task, "train", 16, cased, str(tmp_path)),
        glue.cached_features(examples, task, "dev", 16, tokenizer, str(tmp_path)),
        glue.cached_features([glue.InputExample("0", "bad day", None, "1")], task, "train",
                             16, tokenizer, str(tmp_path)),
    }
    assert len(paths) == 5
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


# =========================================================================================
# Metrics (hand-computed references)
# =========================================================================================


def logits_for(predictions, num_labels=2):
    return np.eye(num_labels)[predictions] * 3.0


def test_accuracy_and_f1_for_mrpc():
    labels = np.array([1, 0, 1, 1, 0])
    predictions = np.array([1, 0, 0, 1, 1])   # tp 2, tn 1, fp 1, fn 1
    m = glue_task.compute_metrics(glue.get_task("mrpc"), logits_for(predictions), labels,
                             np.zeros(5))
    assert m["eval_accuracy"] == pytest.approx(3 / 5)
    assert m["f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    assert "matthew_corr" not in m


def test_matthews_correlation_for_cola():
    labels = np.array([1, 0, 1, 1, 0])
    predictions = np.array([1, 0, 0, 1, 1])
    m = glue_task.compute_metrics(glue.get_task("cola"), logits_for(predictions), labels,
                             np.zeros(5))
    # (tp*tn - fp*fn) / sqrt((tp+fp)(tp+fn)(tn+fp)(tn+fn)) = (2 - 1) / sqrt(3*3*2*2)
    assert m["matthew_corr"] == pytest.approx(1 / 6)
    assert "f1" not in m


def test_pearson_spearman_and_mse_for_stsb():
    predictions = np.array([1.0, 2.0, 3.0, 4.0])
    labels = np.array([1.0, 3.0, 2.0, 40.0])
    m = glue_task.compute_metrics(glue.get_task("sts-b"), predictions[:, None], labels,
                             (predictions - labels) ** 2)
    dx, dy = predictions - 2.5, labels - labels.mean()
    assert m["pearson"] == pytest.approx((dx * dy).sum() / np.sqrt((dx ** 2).sum()
                                                                   * (dy ** 2).sum()))
    # Ranks of labels are 1, 3, 2, 4: Spearman = Pearson of ranks = 4 / 5.
    assert m["spearman"] == pytest.approx(0.8)
    assert m["MSE"] == pytest.approx((0 + 1 + 1 + 36 ** 2) / 4)
    assert m["eval_loss"] == pytest.approx(m["MSE"])


def test_loss_is_the_mean_of_eval_batch_means():
    losses = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    m = glue_task.compute_metrics(glue.get_task("rte"), logits_for(np.zeros(5, int)),
                             np.zeros(5), losses, batch_size=2)
    assert m["eval_loss"] == pytest.approx(3.0)
    assert m["loss"] == pytest.approx((1.5 + 3.5 + 5.0) / 3)


def test_constant_predictions_give_zero_correlation():
    m = glue_task.compute_metrics(glue.get_task("sts-b"), np.ones((3, 1)), np.array([1., 2., 3.]),
                             np.zeros(3))
    assert (m["pearson"], m["spearman"]) == (0.0, 0.0)


# =========================================================================================
# Prediction files
# =========================================================================================


def test_submission_has_header_guids_and_label_names(tmp_path):
    task = glue.get_task("mnli")
    examples = [glue.InputExample("0", "a", "b", "contradiction"),
                glue.InputExample("1", "c", "d", "contradiction")]
    logits = np.array([[0.0, 2.0, 0.0], [0.0, 0.0, 5.0]])
    paths = glue_task.write_predictions(task, task.test[1], examples, logits, str(tmp_path),
                                   primary=False)
    assert paths == [str(tmp_path / "glue_submission" / "MNLI-mm.tsv")]
    assert pathlib.Path(paths[0]).read_text() == "index\tprediction\n0\tentailment\n1\tneutral\n"


def test_primary_test_file_also_gets_the_original_two_files(tmp_path):
    task = glue.get_task("sts-b")
    examples = [glue.InputExample("4", "a", "b", 0.0)]
    glue_task.write_predictions(task, task.test[0], examples, np.array([[3.25]]), str(tmp_path),
                           primary=True)
    assert (tmp_path / "test_results.tsv").read_text() == "3.25\n"
    assert (tmp_path / "submit_results.tsv").read_text() == "index\tprediction\n4\t3.25\n"
    assert (tmp_path / "glue_submission" / "STS-B.tsv").read_text() == \
        "index\tprediction\n4\t3.25\n"


def test_test_results_hold_softmax_probabilities(tmp_path):
    task = glue.get_task("rte")
    examples = [glue.InputExample("0", "a", "b", "entailment")]
    glue_task.write_predictions(task, task.test[0], examples, np.array([[0.0, np.log(3.0)]]),
                           str(tmp_path), primary=True)
    values = [float(v) for v in (tmp_path / "test_results.tsv").read_text().split("\t")]
    assert values == pytest.approx([0.25, 0.75], abs=1e-6)


# =========================================================================================
# End to end: a tiny model on a synthetic task whose label depends on the text
# =========================================================================================


def synthetic_mrpc(root, seed=0):
    """MRPC-format files; label 1 iff text_a is made of 'positive' words (text_b is noise)."""
    rng = random.Random(seed)

    def row(label):
        a = " ".join(rng.choice(POSITIVE if label else NEGATIVE)
                     for _ in range(rng.randint(3, 7)))
        b = " ".join(rng.choice(FILLER) for _ in range(rng.randint(2, 5)))
        return a, b

    header = ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"]
    for split, count in (("train", 192), ("dev", 64)):
        rows = [header]
        for i in range(count):
            label = i % 2
            rows.append([str(label), str(i), str(i + 1000), *row(label)])
        body = rows[1:]
        rng.shuffle(body)
        write_tsv(root / "MRPC" / f"{split}.tsv", [header] + body)
    test = [["index", "#1 ID", "#2 ID", "#1 String", "#2 String"]]
    test += [[str(i), "1", "2", *row(i % 2)] for i in range(10)]
    write_tsv(root / "MRPC" / "test.tsv", test)


TINY = dict(embedding_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=64, max_position_embeddings=64, hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0)


@pytest.fixture(scope="module")
def fine_tuned(tmp_path_factory, spm_model, sp):
    """One whole run: train 60 steps, evaluate every 20, predict, export."""
    root = tmp_path_factory.mktemp("glue_run")
    synthetic_mrpc(root / "glue")
    config = AlbertConfig(vocab_size=sp.GetPieceSize(), **TINY)
    settings = finetuning.FinetuningSettings(
        output_dir=str(root / "out"), max_seq_length=16, train_batch_size=16,
        eval_batch_size=8, predict_batch_size=8, learning_rate=2e-3, train_step=60,
        warmup_step=6, save_checkpoints_steps=20, log_steps=20, seed=1)
    classifier = glue.ClassifierSettings(
        task_name="MRPC", data_dir=str(root / "glue"), spm_model_file=spm_model,
        do_train=True, do_eval=True, do_predict=True, export_dir=str(root / "export"))
    outcome = glue_task.run_classifier(config, settings, classifier)
    return dict(root=root, out=root / "out", config=config, outcome=outcome,
                settings=settings)


def eval_blocks(path):
    blocks, current = [], {}
    for line in pathlib.Path(path).read_text().splitlines():
        if line.startswith("="):
            blocks.append(current)
            current = {}
        elif " = " in line:
            key, value = line.split(" = ")
            current[key] = float(value)
    return blocks


def test_fine_tuning_beats_chance_on_dev(fine_tuned):
    result = fine_tuned["outcome"]["result"]
    assert result.best_value >= 0.85   # balanced dev set: chance is 0.5


def test_every_checkpoint_is_evaluated_with_the_original_metric_names(fine_tuned):
    blocks = eval_blocks(fine_tuned["out"] / "eval_results.txt")
    assert [b["global_step"] for b in blocks] == [20, 40, 60]
    for block in blocks:
        assert {"eval_accuracy", "eval_loss", "loss", "f1", "global_step", "best"} <= set(block)


def test_best_trial_records_the_first_checkpoint_with_the_highest_accuracy(fine_tuned):
    blocks = eval_blocks(fine_tuned["out"] / "eval_results.txt")
    accuracies = [b["eval_accuracy"] for b in blocks]
    best = int(np.argmax(accuracies))   # argmax takes the first of ties, as the original
    text = (fine_tuned["out"] / "best_trial.txt").read_text()
    assert text == f"60:{blocks[best]['global_step']:.0f}:{accuracies[best]}"


def test_model_ckpt_best_holds_the_best_weights(fine_tuned, spm_model):
    # Re-scored independently: load model.ckpt-best, run the dev set, count correct answers.
    model = AlbertClassifier(fine_tuned["config"], 2)
    checkpoints.load_original_checkpoint(model, str(fine_tuned["out"] / "model.ckpt-best"),
                                         strict=True)
    task = glue.get_task("mrpc")
    tok = tokenization.FullTokenizer(None, True, spm_model)
    dev = glue.read_examples(task, task.dev[0], str(fine_tuned["root"] / "glue"))
    features = [glue.convert_example(e, task, 16, tok) for e in dev]
    batch = {k: tf.constant([f[k] for f in features]) for k in ("input_ids", "input_mask",
                                                                 "segment_ids")}
    predictions = np.argmax(model(batch)["logits"].numpy(), -1)
    accuracy = np.mean(predictions == [f["label_ids"] for f in features])
    assert accuracy == pytest.approx(fine_tuned["outcome"]["result"].best_value)


def test_submission_file_lists_every_test_example(fine_tuned):
    lines = (fine_tuned["out"] / "glue_submission" / "MRPC.tsv").read_text().splitlines()
    assert lines[0] == "index\tprediction"
    assert [line.split("\t")[0] for line in lines[1:]] == [str(i) for i in range(10)]
    predictions = [line.split("\t")[1] for line in lines[1:]]
    assert set(predictions) <= {"0", "1"}
    # Test rows alternate negative / positive texts; the model should mostly agree.
    assert np.mean([p == str(i % 2) for i, p in enumerate(predictions)]) >= 0.8
    assert (fine_tuned["out"] / "submit_results.tsv").read_text() == "\n".join(lines) + "\n"


def test_exported_model_gives_the_same_probabilities_on_raw_strings(fine_tuned, spm_model):
    root = fine_tuned["root"]
    task = glue.get_task("mrpc")
    tests = glue.read_examples(task, task.test[0], str(root / "glue"))
    expected = np.array([[float(v) for v in line.split("\t")] for line in
                         (fine_tuned["out"] / "test_results.tsv").read_text().splitlines()])
    served = tf.saved_model.load(fine_tuned["outcome"]["export"]).signatures["serving_default"]
    outputs = served(text_a=tf.constant([e.text_a for e in tests]),
                     text_b=tf.constant([e.text_b for e in tests]))
    np.testing.assert_allclose(outputs["probabilities"].numpy(), expected, atol=1e-6)
    assert [s.decode() for s in outputs["labels"].numpy()] == [
        line.split("\t")[1] for line in
        (fine_tuned["out"] / "submit_results.tsv").read_text().splitlines()[1:]]


def test_rerunning_a_finished_run_trains_nothing_and_keeps_the_record(fine_tuned):
    record_before = (fine_tuned["out"] / "best_trial.txt").read_text()
    tuner = finetuning.FineTuner(fine_tuned["config"], fine_tuned["settings"],
                                 lambda c: AlbertClassifier(c, 2))
    # Neither the input, the loss nor the evaluation may run again.

    class NothingMayRun(base.Task):
        metric_key = "eval_accuracy"

        def eval_input(self):
            return base.PredictInput(tf.data.Dataset.range(1))

        def metrics(self, predictions):
            return 1 / 0

    result = tuner.train(NothingMayRun(fine_tuned["config"], fine_tuned["settings"]))
    assert result.global_step == 60
    assert (fine_tuned["out"] / "best_trial.txt").read_text() == record_before


# =========================================================================================
# The command line
# =========================================================================================


def run_script(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    return subprocess.run([sys.executable, str(REPO / "run_classifier.py"), *args],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=300)


def test_cli_stops_on_a_missing_data_file_before_training(tmp_path, spm_model, sp):
    config = tmp_path / "albert_config.json"
    config.write_text(json.dumps(dict(vocab_size=sp.GetPieceSize(), **TINY)))
    out = tmp_path / "out"
    run = run_script("--task_name=RTE", f"--data_dir={tmp_path / 'glue'}",
                     f"--output_dir={out}", f"--albert_config_file={config}",
                     f"--spm_model_file={spm_model}", "--do_train", "--max_seq_length=16")
    assert run.returncode == 1, run.stderr[-2000:]
    assert f"{tmp_path / 'glue'}/RTE/train.tsv" in run.stderr
    assert "does not exist" in run.stderr
    assert not (out / "train_state").exists()


def test_cli_keeps_the_original_flags_and_defaults():
    defaults = entry_point_flag_defaults("run_classifier", "define_flags")
    # The original run_classifier.py's flags and defaults (SPEC G.1).
    original = {
        "data_dir": None, "albert_config_file": None, "task_name": None, "vocab_file": None,
        "spm_model_file": None, "output_dir": None, "cached_dir": None,
        "init_checkpoint": None, "albert_hub_module_handle": None, "do_lower_case": True,
        "max_seq_length": 512, "do_train": False, "do_eval": False, "do_predict": False,
        "train_batch_size": 32, "eval_batch_size": 8, "predict_batch_size": 8,
        "learning_rate": 5e-5, "train_step": 1000, "warmup_step": 0,
        "save_checkpoints_steps": 1000, "keep_checkpoint_max": 5,
        "iterations_per_loop": 1000, "use_tpu": False, "optimizer": "adamw",
        "tpu_name": None, "tpu_zone": None, "gcp_project": None, "master": None,
        "num_tpu_cores": 8, "export_dir": None}
    assert {k: defaults.get(k, "MISSING") for k in original} == original
    assert math.isnan(defaults["threshold_to_export"])
    for new in ("distribution_strategy", "mixed_precision", "jit_compile"):
        assert new in defaults


def test_run_glue_sh_carries_the_original_recipes(tmp_path):
    # The fake interpreter records each run_classifier.py call instead of running it.
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho \"$@\" >> \"$CALLS\"\n")
    fake.chmod(0o755)
    env = dict(os.environ, PYTHON=str(fake), CALLS=str(tmp_path / "calls"),
               OUTPUT_DIR=str(tmp_path / "out"))
    run = subprocess.run(["bash", str(REPO / "run_glue.sh"), "--seed=3"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    calls = {}
    for line in (tmp_path / "calls").read_text().splitlines():
        args = dict(a[2:].split("=", 1) if "=" in a else (a[2:], True)
                    for a in line.split()[1:])
        calls[args["task_name"]] = args
    # The original run_glue.sh: task, warmup_step, learning_rate, train_step,
    # save_checkpoints_steps, train_batch_size (SPEC G.7).
    original = [("SST-2", "1256", "1e-5", "20935", "100", "32"),
                ("MNLI", "1000", "3e-5", "10000", "100", "128"),
                ("CoLA", "320", "1e-5", "5336", "100", "16"),
                ("QNLI", "1986", "1e-5", "33112", "200", "32"),
                ("QQP", "1000", "5e-5", "14000", "100", "128"),
                ("RTE", "200", "3e-5", "800", "100", "32"),
                ("STS-B", "214", "2e-5", "3598", "100", "16"),
                ("MRPC", "200", "2e-5", "800", "100", "32")]
    assert list(calls) == [row[0] for row in original]
    for task, warmup, lr, steps, save, batch in original:
        args = calls[task]
        assert (args["warmup_step"], args["learning_rate"], args["train_step"],
                args["save_checkpoints_steps"], args["train_batch_size"]) == (
                    warmup, lr, steps, save, batch)
        assert (args["max_seq_length"], args["optimizer"], args["do_lower_case"],
                args["seed"]) == ("512", "adamw", True, "3")


def test_mnli_prediction_writes_matched_mismatched_and_ax_files(tmp_path, spm_model, sp):
    # Predict-only with a given model.ckpt-best, as a second run after training.
    config = AlbertConfig(vocab_size=sp.GetPieceSize(), **TINY)
    out = tmp_path / "out"
    checkpoints.save_original_checkpoint(AlbertClassifier(config, 3),
                                         str(out / "model.ckpt-best"))
    glue_dir = tmp_path / "glue"
    for name, count in (("test_matched", 5), ("test_mismatched", 3)):
        write_tsv(glue_dir / f"MNLI/{name}.tsv", [MNLI_HEAD] + [
            mnli_row(i, "good day", "bad night") for i in range(count)])
    write_tsv(glue_dir / "diagnostic/diagnostic.tsv", [["index", "sentence1", "sentence2"],
                                                       ["0", "a good day", "a bad day"]])
    settings = finetuning.FinetuningSettings(output_dir=str(out), max_seq_length=16)
    classifier = glue.ClassifierSettings(task_name="MNLI", data_dir=str(glue_dir),
                                         spm_model_file=spm_model, do_predict=True)
    glue_task.run_classifier(config, settings, classifier)
    lines = {name: (out / "glue_submission" / name).read_text().splitlines()
             for name in ("MNLI-m.tsv", "MNLI-mm.tsv", "AX.tsv")}
    assert {name: len(rows) - 1 for name, rows in lines.items()} == {
        "MNLI-m.tsv": 5, "MNLI-mm.tsv": 3, "AX.tsv": 1}
    for rows in lines.values():
        assert rows[0] == "index\tprediction"
        assert {row.split("\t")[1] for row in rows[1:]} <= {"contradiction", "entailment",
                                                            "neutral"}
    # The original's two files come from the first test set (matched).
    assert len((out / "submit_results.tsv").read_text().splitlines()) == 6


def test_single_text_export_takes_text_a_and_carries_the_threshold(tmp_path, spm_model, sp,
                                                                   tokenizer):
    config = AlbertConfig(vocab_size=sp.GetPieceSize(), **TINY)
    model = AlbertClassifier(config, 2)
    task = glue.get_task("sst-2")
    folder = export_lib.export_saved_model(model, str(tmp_path / "export"), spm_model, True, 16,
                                           head="classifier", labels=task.labels,
                                           versioned=True, threshold=0.25)
    served = tf.saved_model.load(folder).signatures["serving_default"]
    assert list(served.structured_input_signature[1]) == ["text_a"]
    texts = ["Good  day!", "a sad night"]
    outputs = served(text_a=tf.constant(texts))
    features = [glue.convert_example(glue.InputExample("", t, None, "0"), task, 16, tokenizer)
                for t in texts]
    batch = {k: tf.constant([f[k] for f in features]) for k in ("input_ids", "input_mask",
                                                                 "segment_ids")}
    np.testing.assert_allclose(outputs["probabilities"].numpy(),
                               model(batch)["probabilities"].numpy(), atol=1e-6)
    np.testing.assert_array_equal(outputs["threshold"].numpy(), [0.25, 0.25])


def test_regression_export_returns_the_score_as_the_original(tmp_path, spm_model, sp,
                                                             tokenizer):
    """STS-B: `probabilities` is the raw score [B, 1] (the original's regression output),
    `predictions` the same score [B]; no class names."""
    config = AlbertConfig(vocab_size=sp.GetPieceSize(), **TINY)
    model = AlbertClassifier(config, 1)
    task = glue.get_task("sts-b")
    folder = export_lib.export_saved_model(model, str(tmp_path / "export"), spm_model, True, 16,
                                           head="classifier", text_pair=task.is_pair,
                                           versioned=True)
    served = tf.saved_model.load(folder).signatures["serving_default"]
    assert sorted(served.structured_input_signature[1]) == ["text_a", "text_b"]
    pairs = [("A man plays a guitar.", "Someone plays music."), ("Cats sleep.", "")]
    outputs = served(text_a=tf.constant([a for a, _ in pairs]),
                     text_b=tf.constant([b for _, b in pairs]))
    features = [glue.convert_example(glue.InputExample("", a, b or None, "0.0"), task, 16,
                                     tokenizer) for a, b in pairs]
    batch = {k: tf.constant([f[k] for f in features]) for k in ("input_ids", "input_mask",
                                                                 "segment_ids")}
    logits = model(batch)["logits"].numpy()
    np.testing.assert_allclose(outputs["probabilities"].numpy(), logits, atol=1e-6)
    np.testing.assert_allclose(outputs["predictions"].numpy(), logits[:, 0], atol=1e-6)
    assert "labels" not in outputs
