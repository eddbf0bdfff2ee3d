"""SQuAD v1.1 and v2.0 data for ALBERT: reading the official JSON and the cached features.

The pipeline of the original release (its squad_utils.py, shared by run_squad_v1.py and
run_squad_v2.py), and where each step lives:

1. `read_squad_examples` (here): one `SquadExample` per question of the official JSON
   (`data -> paragraphs -> qas`). For training, an answerable question needs exactly one
   answer; a SQuAD 2.0 question with `"is_impossible": true` has none. Beyond the original,
   which never checks it, a training answer whose text is not the context at its
   `answer_start` is warned about, counted and skipped (`ReadReport`); a malformed file or
   field is a `TaskDataError` naming the file and the place inside it.
2. `albert_tf.tasks.squad_alignment`: the raw context's characters aligned with its
   SentencePiece pieces (the original's banded LCS), each piece mapped back to raw
   characters.
3. `albert_tf.tasks.squad_features`: windows of `doc_stride` over the context, packed as
   `[CLS] question [SEP] window [SEP]`, with the answer's piece span as training labels
   (`convert_examples_to_features`).
4. `albert_tf.tasks.squad_records`: the original's TFRecords and the prediction features
   post-processing needs (`--predict_feature_left_file`).
5. `prepare_train_features`, `prepare_eval_features` (here): build those files once and reuse
   them (`albert_tf.feature_cache`). The side file `_<feature file name>.settings.json`
   beside the training features (`files.side_file`, so a glob of the feature files skips
   it), and the settings inside the prediction-feature pickle, record what they were built
   from, so a cache built with other settings or from another file is refused instead of
   silently used (the original never checks).

The names of the modules of steps 2-4 are importable from here too (`squad.align_context`,
`squad.convert_examples_to_features`, `squad.squad_dataset`, ...).
"""

import dataclasses
import hashlib
import json
import os
import random
from typing import Optional

from absl import logging
import tensorflow as tf

from albert_tf import feature_cache
from albert_tf import files
from albert_tf.tasks import TaskDataError
# Steps 2-4, importable from here as before.
from albert_tf.tasks.squad_alignment import (  # noqa: F401
    MIN_ALIGNED_SHARE, ContextAlignment, _convert_index, align_context)
from albert_tf.tasks.squad_features import (  # noqa: F401
    UNIQUE_ID_START, ConversionReport, DocSpan, InputFeatures, best_context_spans,
    convert_examples_to_features, doc_spans, iter_features, max_context_flags)
from albert_tf.tasks.squad_records import (  # noqa: F401
    EvalFeature, FeatureWriter, check_feature_file, feature_spec, feature_to_tf_example,
    load_eval_features, record_values, save_eval_features, squad_dataset, to_eval_feature,
    write_features)


# =========================================================================================
# Reading the official JSON
# =========================================================================================

@dataclasses.dataclass
class SquadExample:
    """One question on one context.

    Attributes:
      qas_id: the question's `id`.
      question_text, paragraph_text: raw strings from the file (`question`, `context`).
      orig_answer_text: training only: the answer text (`""` for an unanswerable question).
      start_position: training only: the answer's first character in `paragraph_text`
        (`answer_start`), -1 for an unanswerable question.
      is_impossible: training only: SQuAD 2.0's `is_impossible` (False in v1.1, and at
        prediction time, as the original reads it).
      answers: all gold answer texts (kept for reference; scoring reads the file again).
    """

    qas_id: str
    question_text: str
    paragraph_text: str
    orig_answer_text: Optional[str] = None
    start_position: Optional[int] = None
    is_impossible: bool = False
    answers: tuple = ()


@dataclasses.dataclass
class ReadReport:
    """What `read_squad_examples` found in a file (its summary is logged)."""

    path: str = ""
    questions: int = 0
    unanswerable: int = 0
    answer_mismatch: int = 0       # training answers whose text is not at answer_start
    empty_context: int = 0         # questions on an empty context (no features)
    examples: int = 0              # questions kept

    def summary(self):
        parts = [f"{self.examples} of {self.questions} questions kept from {self.path}"]
        if self.unanswerable:
            parts.append(f"{self.unanswerable} unanswerable")
        if self.answer_mismatch:
            parts.append(f"{self.answer_mismatch} skipped: answer text not found at its "
                         "answer_start")
        if self.empty_context:
            parts.append(f"{self.empty_context} on an empty context")
        return "; ".join(parts)


def _where(path, location):
    return f"{path}, {location}"


def _expect(value, kind, path, location, hint=""):
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__
                                                                          for k in kind)
        raise TaskDataError(
            f"{_where(path, location)}: expected a {names}, found {type(value).__name__} "
            f"{json.dumps(value)[:80] if _jsonable(value) else repr(value)[:80]}.{hint}")
    return value


def _jsonable(value):
    try:
        json.dumps(value)
        return True
    except (TypeError, ValueError):
        return False


def _field(obj, key, kind, path, location):
    if key not in obj:
        raise TaskDataError(f"{_where(path, location)}: the field {key!r} is missing (found "
                            f"{sorted(obj)[:8]}). Is this a SQuAD JSON file?")
    return _expect(obj[key], kind, path, f"{location}.{key}")


def load_squad_json(input_file):
    """The `data` list of a SQuAD JSON file; malformed JSON raises `TaskDataError`
    naming the file, line and column."""
    path = os.fspath(input_file)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"SQuAD file {path!r} does not exist.")
    raw = files.read_bytes(path, "SQuAD file")
    try:
        document = json.loads(raw)
    except UnicodeDecodeError as err:
        raise TaskDataError(f"{path}: not UTF-8 text ({err}). SQuAD files are UTF-8 JSON.") \
            from None
    except json.JSONDecodeError as err:
        raise TaskDataError(f"{path}, line {err.lineno}, column {err.colno}: malformed JSON "
                            f"({err.msg}). Expected a SQuAD v1.1/v2.0 file.") from None
    _expect(document, dict, path, "top level",
            " A SQuAD file is an object {\"version\": ..., \"data\": [...]}.")
    return _field(document, "data", list, path, "top level")


def read_squad_examples(input_file, is_training, report=None):
    """Reads a SQuAD v1.1 / v2.0 JSON file into a list of `SquadExample`.

    Args:
      input_file: path (anything `tf.io.gfile` reads).
      is_training: read the answers (as the original, only then): an answerable question
        must have exactly one answer; SQuAD 2.0's `is_impossible` is honoured.
      report: an optional `ReadReport` to fill in.

    Returns:
      list of `SquadExample`, in file order. In training, questions whose answer text does
      not match the context at `answer_start` are left out (warned about and counted), and
      so are questions on an empty context.

    Raises:
      TaskDataError: malformed JSON, a missing or mistyped field, or (training) an
        answerable question without exactly one answer; the message names the file and the
        place inside it, e.g. `data[3].paragraphs[0].qas[2].answers`.
    """
    path = os.fspath(input_file)
    report = report if report is not None else ReadReport()
    report.path = path
    data = load_squad_json(path)
    examples = []
    mismatch_logged = 0
    for a, article in enumerate(data):
        where_a = f"data[{a}]"
        _expect(article, dict, path, where_a)
        for p, paragraph in enumerate(_field(article, "paragraphs", list, path, where_a)):
            where_p = f"{where_a}.paragraphs[{p}]"
            _expect(paragraph, dict, path, where_p)
            context = _field(paragraph, "context", str, path, where_p)
            empty_context = not context.strip()
            for q, qa in enumerate(_field(paragraph, "qas", list, path, where_p)):
                where = f"{where_p}.qas[{q}]"
                _expect(qa, dict, path, where)
                report.questions += 1
                qas_id = _field(qa, "id", str, path, where)
                question = _field(qa, "question", str, path, where)
                answers = qa.get("answers", [])
                _expect(answers, list, path, f"{where}.answers")
                example = SquadExample(qas_id, question, context)
                texts = []
                for k, answer in enumerate(answers):
                    _expect(answer, dict, path, f"{where}.answers[{k}]")
                    texts.append(_field(answer, "text", str, path, f"{where}.answers[{k}]"))
                example.answers = tuple(texts)
                if is_training:
                    impossible = qa.get("is_impossible", False)
                    _expect(impossible, bool, path, f"{where}.is_impossible")
                    example.is_impossible = impossible
                    if impossible:
                        report.unanswerable += 1
                        example.orig_answer_text, example.start_position = "", -1
                    else:
                        if len(answers) != 1:
                            raise TaskDataError(
                                f"{_where(path, where)} (id {qas_id!r}): for training, an "
                                f"answerable question needs exactly 1 answer, found "
                                f"{len(answers)} (the original's rule). Official dev files "
                                "list several answers: pass them as --predict_file, or mark "
                                "the question \"is_impossible\": true.")
                        start = _field(answers[0], "answer_start", int, path,
                                       f"{where}.answers[0]")
                        text = texts[0]
                        if not text or context[start:start + len(text)] != text:
                            report.answer_mismatch += 1
                            if mismatch_logged < 10:
                                mismatch_logged += 1
                                logging.warning(
                                    "%s (id %r): answer %r is not the context at its "
                                    "answer_start %d (the context there reads %r); the "
                                    "question is skipped for training.", _where(path, where),
                                    qas_id, text, start, context[start:start + len(text)])
                            continue
                        example.orig_answer_text, example.start_position = text, start
                if empty_context:
                    report.empty_context += 1
                    if is_training:
                        continue
                examples.append(example)
    report.examples = len(examples)
    if report.answer_mismatch > mismatch_logged:
        logging.warning("%d more answers were not found at their answer_start in %s.",
                        report.answer_mismatch - mismatch_logged, path)
    if report.empty_context:
        logging.warning("%s: %d question(s) on an empty context%s.", path,
                        report.empty_context,
                        " were skipped" if is_training else " get the empty prediction")
    logging.info("%s", report.summary())
    return examples


# =========================================================================================
# Cached features: build once, refuse a cache built with other settings
# =========================================================================================

def cache_settings(source_file, tokenizer, max_seq_length, doc_stride, max_query_length,
                   is_training):
    """What a feature cache depends on (recorded with it, compared on reuse): the SHA-1 of
    the SQuAD file and of the SentencePiece model, lower-casing, the lengths and stride."""
    return {
        "source_sha1": feature_cache.file_digest(source_file),
        "spm_model_sha1": hashlib.sha1(tokenizer.spm_model_proto or b"").hexdigest(),
        "do_lower_case": bool(tokenizer.do_lower_case),
        "max_seq_length": int(max_seq_length),
        "doc_stride": int(doc_stride),
        "max_query_length": int(max_query_length),
        "is_training": bool(is_training),
    }


def _remedy(*paths):
    return f"Delete {' and '.join(paths)} to rebuild, or pass other cache paths."


def prepare_train_features(train_file, tokenizer, feature_file, max_seq_length, doc_stride,
                           max_query_length, examples=None, shuffle_seed=12345):
    """Builds the training feature TFRecord unless it exists; returns its feature count.

    Examples are shuffled with `random.Random(shuffle_seed)` before conversion (the
    original's pre-shuffle, which lets the input use a 100-record shuffle buffer). A cache
    written by us records its settings (and counts) in its side file and is refused if they
    differ (`TaskDataError`); one written by the original is used as it is. Either must
    hold records of `max_seq_length` (`check_feature_file`).
    """
    wanted = cache_settings(train_file, tokenizer, max_seq_length, doc_stride,
                            max_query_length, True)
    report = ConversionReport()

    def build(path):
        chosen = list(read_squad_examples(train_file, is_training=True) if examples is None
                      else examples)
        random.Random(shuffle_seed).shuffle(chosen)
        write_features(path, iter_features(chosen, tokenizer, max_seq_length, doc_stride,
                                           max_query_length, True, report),
                       max_seq_length, is_training=True)
        logging.info("SQuAD conversion: %s", report.summary())
        return {"num_features": report.features, "num_examples": report.examples}

    reused, recorded = feature_cache.cached(feature_file, wanted, build, what="feature cache",
                                            remedy=_remedy(feature_file))
    if not reused:
        return report.features
    check_feature_file(feature_file, max_seq_length, is_training=True)
    count = (recorded or {}).get("num_features") or files.count_records(feature_file)
    logging.info("Using the cached training features %s (%d features).", feature_file, count)
    return count


def prepare_eval_features(predict_file, tokenizer, feature_file, left_file, max_seq_length,
                          doc_stride, max_query_length, examples=None):
    """The prediction features: built into `feature_file` (TFRecord) and `left_file` (for
    post-processing, with the settings) unless both exist; returns the list of
    `EvalFeature`. Existing files whose recorded settings differ are refused
    (`TaskDataError`); the original's (no settings) are used as they are."""
    wanted = cache_settings(predict_file, tokenizer, max_seq_length, doc_stride,
                            max_query_length, False)
    if files.exists(feature_file) and files.exists(left_file):
        features, recorded = load_eval_features(left_file)
        if recorded is not None:
            feature_cache.check_settings(left_file, recorded, wanted, "feature cache",
                                         _remedy(left_file, feature_file))
        check_feature_file(feature_file, max_seq_length, is_training=False)
        logging.info("Using the cached prediction features %s and %s (%d features).",
                     feature_file, left_file, len(features))
        return features
    if examples is None:
        examples = read_squad_examples(predict_file, is_training=False)
    report, eval_features = ConversionReport(), []

    def kept(features):
        for feature in features:
            eval_features.append(to_eval_feature(feature))
            yield feature

    write_features(feature_file, kept(iter_features(examples, tokenizer, max_seq_length,
                                                    doc_stride, max_query_length, False,
                                                    report)),
                   max_seq_length, is_training=False)
    logging.info("SQuAD conversion: %s", report.summary())
    save_eval_features(left_file, eval_features, wanted)
    return eval_features
