"""RACE data, as the original run_race.py and race_utils.py: readers and features.

RACE (Lai et al., 2017) is reading comprehension with four options per question, from
English exams of Chinese middle and high schools. Pipeline (the original's, and where we add
to it):

    read_split      `<data_dir>/RACE/<split>/<level>/all.txt` (one JSON article per line, the
                    original's layout) or, when there is no all.txt, the official download's
                    one-file-per-article `<level>/*.txt` (read in natural order: 1.txt,
                    2.txt, 10.txt); middle school first, then high school. One `RaceExample`
                    per question. A bad article or question (malformed JSON, a question with
                    other than 4 options, an answer other than A-D) is a `TaskDataError`
                    naming the file and line, or, with `skip_bad_examples`, a counted skip.
    convert_example the original features: per option `[CLS] article [SEP] qa [SEP]`, the qa
                    text keeping its LAST `max_qa_length` pieces and the article cut from its
                    end to fit; the four sequences flattened into one record.
    cached_features TFRecords of `input_ids`, `input_mask`, `segment_ids` ([4 x max_seq_length]
                    each), `label_ids`, `is_real_example` (the original's records, so files
                    made by either side feed the other), cached under a name keyed by split,
                    lengths, tokenizer and data, so a second run skips the conversion and a
                    change never reuses a stale file (`albert_tf.feature_cache`).

The run (loss, metrics, prediction files, `run_race`) is `albert_tf.tasks.race_task`, with
the `AlbertMultipleChoice` head (one logit per option from the pooled output, mean
cross-entropy over the softmax of the four).
"""

import dataclasses
import json
import re

from absl import logging
import tensorflow as tf

from albert_tf import feature_cache
from albert_tf import files
from albert_tf import tokenization
from albert_tf.settings import RACE_LEVELS as LEVELS
from albert_tf.settings import RaceSettings  # noqa: F401 (re-exported)
from albert_tf.tasks import TaskDataError

SPLITS = ("train", "dev", "test")
LABELS = ("A", "B", "C", "D")
NUM_CHOICES = len(LABELS)
METRIC = "eval_accuracy"         # picks the best checkpoint, as the original

# =========================================================================================
# Reading
# =========================================================================================


@dataclasses.dataclass
class RaceExample:
    """One question with its article and four options, as the model reads them.

    Attributes:
      example_id: the article's `id` (e.g. "high1234.txt"); shared by its questions.
      question_index: the question's position in its article (0-based).
      level: "middle" or "high".
      article: the article text, preprocessed.
      choices: four texts, the question combined with each option (`combine`), preprocessed.
      label: the answer's index (A=0 ... D=3), or None when the file gives no answers
        (test files without them can still be predicted).
      source: "file, line N" for messages.
    """

    example_id: str
    question_index: int
    level: str
    article: str
    choices: tuple
    label: int = None
    source: str = ""


def process_text(text, do_lower_case=True, use_spm=True):
    """The original `RaceProcessor.process_text`.

    SentencePiece: `preprocess_text` (whitespace collapsed, accents removed, lower-cased if
    `do_lower_case`). WordPiece: the text as is (its tokenizer lower-cases and strips).
    """
    if use_spm:
        return tokenization.preprocess_text(text, lower=do_lower_case)
    return tokenization.convert_to_unicode(text)


def combine(question, option):
    """The text of one choice: the question with the option in its blank, as the original.

    If the question holds `_` (a cloze question: "Tom went to the _ ."), EVERY `_` is
    replaced by the option; otherwise the option follows the question after one space.
    Both come preprocessed.
    """
    if "_" in question:
        return question.replace("_", option)
    return question + " " + option


@dataclasses.dataclass
class SplitData:
    """What `read_split` found.

    Attributes:
      examples: the `RaceExample`s, middle school first, then in file and line order.
      skipped: "file, line N: reason" for each question or article skipped (only with
        `skip_bad_examples`).
      skipped_questions: how many questions were dropped (an article skipped whole counts
        all of its questions, or 1 when they cannot be counted).
      files: the files read.
    """

    examples: list
    skipped: list = dataclasses.field(default_factory=list)
    skipped_questions: int = 0
    files: list = dataclasses.field(default_factory=list)


def _natural_key(name):
    # "2.txt" before "10.txt": the official files are numbered.
    return [(0, int(part), "") if part.isdigit() else (1, 0, part)
            for part in re.split(r"(\d+)", name)]


def level_files(data_dir, split, level):
    """The files of one split and level: ([paths], one_article_per_file).

    `<data_dir>/RACE/<split>/<level>/all.txt` if it exists (JSON lines, the original's form);
    else every `*.txt` file of that folder (the official download: one JSON article per
    file), in natural order. Raises `TaskDataError` if there is neither.
    """
    folder = files.join(data_dir, "RACE", split, level)
    merged = files.join(folder, "all.txt")
    if tf.io.gfile.exists(merged):
        return [merged], False
    names = []
    if tf.io.gfile.isdir(folder):
        names = sorted((n for n in tf.io.gfile.listdir(folder)
                        if n.endswith(".txt") and not n.startswith(".")), key=_natural_key)
    if not names:
        raise TaskDataError(
            f"No RACE {split} data for level {level!r}: expected {merged} (one JSON article per "
            f"line) or the official one-file-per-article {folder}/*.txt. --data_dir must be "
            "the folder that holds RACE/ (train/, dev/, test/, each with middle/ and high/); "
            "pass --middle_only or --high_only to use one level only.")
    return [files.join(folder, n) for n in names], True


class _BadInput(Exception):
    """A bad article or question; becomes a TaskDataError or a counted skip."""

    def __init__(self, message, questions=1):
        super().__init__(message)
        self.questions = questions


def _articles(path, one_per_file):
    """Yields (line number, parsed article or `_BadInput`) of one file."""
    try:
        data = files.read_bytes(path, "RACE file")
    except files.FileError as error:
        raise TaskDataError(f"{path}: cannot be read ({error}).") from None
    chunks = [data] if one_per_file else data.split(b"\n")
    for number, chunk in enumerate(chunks, start=1):
        if not chunk.strip():
            continue
        try:
            text = chunk.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as error:
            yield number, _BadInput(f"not UTF-8 text ({error.reason} at byte {error.start}).")
            continue
        try:
            yield number, json.loads(text)
        except json.JSONDecodeError as error:
            where = (f" (line {error.lineno}, column {error.colno} of the file)"
                     if one_per_file else f" (column {error.colno})")
            yield number, _BadInput(f"not a JSON article: {error.msg}{where}.")


def _article_fields(article, needs_answers):
    """(article text, questions, options, answers or None) of one parsed article."""
    if not isinstance(article, dict):
        raise _BadInput(f"expected a JSON object with article, questions, options, answers "
                        f"and id; found {type(article).__name__}.")
    missing = [k for k in ("article", "questions", "options") if k not in article]
    if needs_answers and "answers" not in article:
        missing.append("answers")
    if missing:
        raise _BadInput(f"the article has no {', '.join(missing)} (it has "
                        f"{', '.join(sorted(article)) or 'nothing'}).")
    text, questions, options = article["article"], article["questions"], article["options"]
    answers = article.get("answers")
    if not isinstance(text, str):
        raise _BadInput(f"'article' must be a string, found {type(text).__name__}.")
    for name, value in (("questions", questions), ("options", options),
                        ("answers", answers)):
        if value is not None and not isinstance(value, list):
            raise _BadInput(f"{name!r} must be a list, found {type(value).__name__}.")
    counts = {"questions": len(questions), "options": len(options)}
    if answers is not None:
        counts["answers"] = len(answers)
    if len(set(counts.values())) > 1:
        raise _BadInput("questions, options and answers must have one entry per question; "
                        "found " + ", ".join(f"{n} {k}" for k, n in counts.items()) + ".",
                        questions=max(counts.values()))
    return text, questions, options, answers


def _question(question, options, answer, index):
    """Checks one question; returns (question, options, label or None)."""
    if not isinstance(question, str):
        raise _BadInput(f"question {index} must be a string, found "
                        f"{type(question).__name__}.")
    if not isinstance(options, list) or len(options) != NUM_CHOICES:
        found = (f"{len(options)} options" if isinstance(options, list)
                 else type(options).__name__)
        raise _BadInput(f"question {index} ({question[:60]!r}) must have {NUM_CHOICES} options "
                        f"(A-D), found {found}.")
    if not all(isinstance(o, str) for o in options):
        raise _BadInput(f"question {index}: every option must be a string, found {options!r}.")
    if answer is None:
        return question, options, None
    letter = answer.strip() if isinstance(answer, str) else answer
    if letter not in LABELS:
        raise _BadInput(f"question {index} ({question[:60]!r}): the answer must be one of "
                        f"{', '.join(LABELS)}, found {answer!r}.")
    return question, options, LABELS.index(letter)


def read_split(data_dir, split, do_lower_case=True, use_spm=True, levels=LEVELS,
               skip_bad_examples=False, needs_answers=None):
    """The questions of one RACE split, as the original `RaceProcessor.read_examples`.

    Args:
      data_dir: the folder that holds `RACE/` (the original's `--data_dir`).
      split: "train", "dev" or "test".
      do_lower_case, use_spm: the text preprocessing (`process_text`).
      levels: the levels to read, in this order (the original: middle, then high).
      skip_bad_examples: skip (and count) bad questions and articles instead of raising.
      needs_answers: whether every article must have `answers` (default: all splits but
        "test"; test articles without answers get `label` None).

    Returns a `SplitData`. Raises `TaskDataError` (file and line named) for a missing or
    unreadable file, a bad article or question (unless skipped), or a split without
    questions. An article without `id` is named after its file (and line).
    """
    if needs_answers is None:
        needs_answers = split != "test"
    data = SplitData(examples=[])
    for level in levels:
        paths, one_per_file = level_files(data_dir, split, level)
        data.files.extend(paths)
        for path in paths:
            for line, article in _articles(path, one_per_file):
                where = f"{path}, line {line}"
                try:
                    if isinstance(article, _BadInput):
                        raise article
                    fallback = (f"{level}{files.basename(path)}" if one_per_file
                                else f"{level}-{files.basename(path)}-{line}")
                    data.examples.extend(_article_examples(
                        article, level, where, fallback, do_lower_case, use_spm,
                        needs_answers, skip_bad_examples, data))
                except _BadInput as error:
                    if not skip_bad_examples:
                        raise TaskDataError(f"{where}: {error} Fix the article, or pass "
                                            "--skip_bad_examples to skip it.") from None
                    data.skipped.append(f"{where}: {error}")
                    data.skipped_questions += error.questions
    if data.skipped:
        logging.warning("RACE %s: skipped %d question(s) (--skip_bad_examples): %s%s", split,
                        data.skipped_questions, "; ".join(data.skipped[:3]),
                        " ..." if len(data.skipped) > 3 else "")
    if not data.examples:
        raise TaskDataError(f"RACE {split} ({', '.join(levels)}) holds no questions; read "
                            f"{len(data.files)} file(s) from {files.join(data_dir, 'RACE')}.")
    return data


def _article_examples(article, level, where, fallback_id, do_lower_case, use_spm,
                      needs_answers, skip_bad_examples, data):
    text, questions, options, answers = _article_fields(article, needs_answers)
    example_id = article.get("id", fallback_id)
    context = process_text(text, do_lower_case, use_spm)
    examples = []
    for i, question in enumerate(questions):
        try:
            question, opts, label = _question(question, options[i],
                                              None if answers is None else answers[i], i)
        except _BadInput as error:
            if not skip_bad_examples:
                raise
            data.skipped.append(f"{where}: {error}")
            data.skipped_questions += 1
            continue
        question = process_text(question, do_lower_case, use_spm)
        choices = tuple(combine(question, process_text(o, do_lower_case, use_spm))
                        for o in opts)
        examples.append(RaceExample(str(example_id), i, level, context, choices, label,
                                    where))
    return examples


# =========================================================================================
# Features and their cache
# =========================================================================================


def make_tokenizer(spm_model_file=None, vocab_file=None, do_lower_case=True):
    """The tokenizer of the original RACE features.

    The texts are preprocessed when read (`process_text`), and the original tokenizer
    segments them as given, so the SentencePiece path does not preprocess again.
    """
    return tokenization.FullTokenizer(vocab_file, do_lower_case, spm_model_file,
                                      preprocess=False)


def convert_example(example, tokenizer, max_seq_length, max_qa_length, article_tokens=None):
    """The model features of one question, as the original `convert_single_example`.

    For each of the four choices: the qa pieces keep their LAST `max_qa_length` pieces
    (and at most `max_seq_length - 3`, where the original would fail), the article pieces
    are cut from their end so that `[CLS] article [SEP] qa [SEP]` fits `max_seq_length`;
    segment ids are 0 for [CLS], the article and the first [SEP], 1 after; 0-padding.

    Args:
      example: a `RaceExample`.
      tokenizer: `make_tokenizer(...)`.
      max_seq_length, max_qa_length: in pieces.
      article_tokens: the article's pieces, if tokenized already (questions of one article
        share them).

    Returns a dict: `input_ids`, `input_mask`, `segment_ids` (4 lists of `max_seq_length`
    ints each), `label_ids` (the answer index, 0 when unknown), `is_real_example` (1), and
    `tokens` (the 4 piece lists, for logs).
    """
    if article_tokens is None:
        article_tokens = tokenizer.tokenize(example.article)
    features = {"input_ids": [], "input_mask": [], "segment_ids": [], "tokens": []}
    qa_limit = min(max_qa_length, max_seq_length - 3)
    for choice in example.choices:
        qa_tokens = tokenizer.tokenize(choice)
        qa_tokens = qa_tokens[-qa_limit:]
        context = article_tokens[:max_seq_length - 3 - len(qa_tokens)]
        tokens = ["[CLS]"] + context + ["[SEP]"] + qa_tokens + ["[SEP]"]
        segment_ids = [0] * (len(context) + 2) + [1] * (len(qa_tokens) + 1)
        input_ids = tokenizer.convert_tokens_to_ids(tokens)
        padding = [0] * (max_seq_length - len(input_ids))
        features["input_ids"].append(input_ids + padding)
        features["input_mask"].append([1] * len(input_ids) + padding)
        features["segment_ids"].append(segment_ids + padding)
        features["tokens"].append(tokens)
    features["label_ids"] = 0 if example.label is None else int(example.label)
    features["is_real_example"] = 1
    return features


def feature_spec(max_seq_length):
    """The `tf.io.parse_single_example` spec of the records (the original's)."""
    flat = [NUM_CHOICES * max_seq_length]
    return {
        "input_ids": tf.io.FixedLenFeature(flat, tf.int64),
        "input_mask": tf.io.FixedLenFeature(flat, tf.int64),
        "segment_ids": tf.io.FixedLenFeature(flat, tf.int64),
        "label_ids": tf.io.FixedLenFeature([], tf.int64),
        "is_real_example": tf.io.FixedLenFeature([], tf.int64),
    }


def serialize_features(features):
    """A `tf.train.Example` (bytes) of the original record: the choices flattened."""
    max_seq_length = len(features["input_ids"][0])
    return feature_cache.encode_example(features, feature_spec(max_seq_length))


def write_features(examples, tokenizer, max_seq_length, max_qa_length, path):
    """Converts `examples` into a TFRecord file at `path` (atomically); returns the count."""
    def features():
        # The questions of one article follow each other: tokenize each article once.
        last_article, last_tokens = None, None
        for index, example in enumerate(examples):
            if example.article is not last_article:
                last_article = example.article
                last_tokens = tokenizer.tokenize(example.article)
            converted = convert_example(example, tokenizer, max_seq_length, max_qa_length,
                                        article_tokens=last_tokens)
            if index < 2:
                logging.info("Example %s question %d (label %s): %s", example.example_id,
                             example.question_index, converted["label_ids"],
                             " | ".join(" ".join(t) for t in converted["tokens"]))
            yield converted

    return feature_cache.write_features(path, features(), feature_spec(max_seq_length),
                                        len(examples), "questions")


# Bump when the features change, so that old caches are not reused.
_FEATURE_FORMAT = 1


def cache_settings(examples, split, tokenizer, max_seq_length, max_qa_length):
    """What a feature file depends on: recorded beside it, compared when it is reused."""
    rows = ([e.example_id, e.question_index, e.level, e.article, list(e.choices), e.label]
            for e in examples)
    return {
        "format": _FEATURE_FORMAT,
        "split": split,
        "max_seq_length": int(max_seq_length),
        "max_qa_length": int(max_qa_length),
        "tokenizer": feature_cache.tokenizer_fingerprint(tokenizer),
        "examples_sha256": feature_cache.json_digest(rows),
        "num_examples": len(examples),
    }


def _check_foreign_file(path, max_seq_length, num_examples):
    """Checks a feature file without recorded settings (e.g. the original's)."""
    mismatch = feature_cache.first_record_mismatch(path, feature_spec(max_seq_length))
    if mismatch is not None:
        missing, length = mismatch
        raise TaskDataError(
            f"{path} does not hold RACE features for --max_seq_length={max_seq_length}: "
            + (f"it lacks {missing}" if missing else
               f"its input_ids have {length} values, expected {NUM_CHOICES} x "
               f"{max_seq_length}") + ". Delete it to rebuild it, or pass another path.")
    if num_examples is not None:
        count = files.count_records(path)
        if count != num_examples:
            raise TaskDataError(
                f"{path} holds {count} records but the data has {num_examples} questions; "
                "it was built from other data. Delete it to rebuild it.")


def cached_features(examples, split, tokenizer, max_seq_length, max_qa_length, cache_dir,
                    feature_file=None, check_count=True):
    """The TFRecord file of these questions' features, converting them only when needed.

    Args:
      examples, split, tokenizer, max_seq_length, max_qa_length: what the features are of.
      cache_dir: where the file goes when `feature_file` is not given:
        `<cache_dir>/race_<split>.len<L>.qa<Q>.<key>.tf_record`, the key hashing the
        settings, tokenizer and data, so any change gives a new file, never a stale one.
      feature_file: an explicit path (the original's `--train_file`, `--eval_file`,
        `--predict_file`): built if missing; if present, reused when its recorded settings
        match (a `TaskDataError` if they do not), or, when it has none (a file the original
        wrote), when its records fit the lengths (and their count the data).
      check_count: count the records of a foreign file (evaluation needs one per question).

    Returns the path. The side file `feature_cache.settings_path(path)` records the
    settings of the files we write (`feature_cache.cached`).
    """
    wanted = cache_settings(examples, split, tokenizer, max_seq_length, max_qa_length)
    path = feature_file or feature_cache.keyed_path(
        cache_dir, f"race_{split}.len{max_seq_length}.qa{max_qa_length}",
        feature_cache.settings_key(wanted))

    def build(target):
        write_features(examples, tokenizer, max_seq_length, max_qa_length, target)

    def check_foreign(target):
        _check_foreign_file(target, max_seq_length, len(examples) if check_count else None)

    reused, _ = feature_cache.cached(path, wanted, build, check_unrecorded=check_foreign)
    if reused:
        logging.info("Using the cached RACE %s features %s (%d questions).", split, path,
                     len(examples))
    return path


def _parser(max_seq_length):
    shape = [NUM_CHOICES, max_seq_length]
    return feature_cache.record_parser(
        feature_spec(max_seq_length),
        {name: shape for name in ("input_ids", "input_mask", "segment_ids")})


def load_features(path, max_seq_length):
    """An unbatched dataset of a features file, in file order.

    Elements: `input_ids`, `input_mask`, `segment_ids` int32 [4, max_seq_length],
    `label_ids`, `is_real_example` int32 [].
    """
    return feature_cache.load_dataset(path, _parser(max_seq_length))


def train_input(path, max_seq_length, seed=None, **batching):
    """`dataset_fn(batch_size, num_shards, shard_index)` for `FineTuner.train`.

    As the original: no shuffling before the file is written and a shuffle buffer of only
    100 records after `repeat`, so training starts on middle-school questions (the file's
    first part) and epochs blend; the remainder of a batch is dropped. `batching`:
    `length_buckets`, `group_by_length` (see `feature_cache.train_dataset_fn`).
    """
    return feature_cache.train_dataset_fn(path, _parser(max_seq_length), seed, **batching)
