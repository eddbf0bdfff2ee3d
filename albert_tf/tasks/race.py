"""RACE fine-tuning, as the original run_race.py and race_utils.py, on `finetuning`.

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
                    change never reuses a stale file.
    compute_metrics the original's `eval_accuracy` and `eval_loss` (all questions), plus the
                    accuracy of each level (`eval_accuracy_middle`, `eval_accuracy_high`), as
                    RACE results are reported (RACE-M, RACE-H, RACE).
    prediction_lines    `test_predictions.tsv`: one line per test question with its article
                    id, question index, level, predicted letter, answer and the four
                    probabilities.

`run_race` strings them together on `albert_tf.finetuning.FineTuner`, with the
`AlbertMultipleChoice` head (one logit per option from the pooled output, mean cross-entropy
over the softmax of the four).
"""

import dataclasses
import hashlib
import json
import re
import time

from absl import logging
import numpy as np
import tensorflow as tf

from albert_tf import files
from albert_tf import finetuning
from albert_tf import tokenization
from albert_tf import training
from albert_tf.settings import RaceSettings  # noqa: F401 (re-exported)
from albert_tf.tasks import TaskDataError

LEVELS = ("middle", "high")      # the original reads middle school first
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


def serialize_features(features):
    """A `tf.train.Example` (bytes) of the original record: the choices flattened."""
    def ints(values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values))

    feature = {name: ints([v for row in features[name] for v in row])
               for name in ("input_ids", "input_mask", "segment_ids")}
    feature["label_ids"] = ints([features["label_ids"]])
    feature["is_real_example"] = ints([features["is_real_example"]])
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def write_features(examples, tokenizer, max_seq_length, max_qa_length, path):
    """Converts `examples` into a TFRecord file at `path` (atomically); returns the count."""
    def records():
        # The questions of one article follow each other: tokenize each article once.
        last_article, last_tokens = None, None
        for index, example in enumerate(examples):
            if example.article is not last_article:
                last_article = example.article
                last_tokens = tokenizer.tokenize(example.article)
            features = convert_example(example, tokenizer, max_seq_length, max_qa_length,
                                       article_tokens=last_tokens)
            if index < 2:
                logging.info("Example %s question %d (label %s): %s", example.example_id,
                             example.question_index, features["label_ids"],
                             " | ".join(" ".join(t) for t in features["tokens"]))
            yield serialize_features(features)

    start = time.time()
    count = files.write_records(path, records(), len(examples), "questions", log=logging.info)
    logging.info("Wrote %d questions to %s in %.1f s.", count, path, time.time() - start)
    return count


# Bump when the features change, so that old caches are not reused.
_FEATURE_FORMAT = 1


def cache_settings(examples, split, tokenizer, max_seq_length, max_qa_length):
    """What a feature file depends on: recorded beside it, compared when it is reused."""
    from albert_tf.tasks.glue import tokenizer_fingerprint
    digest = hashlib.sha256()
    for e in examples:
        digest.update(json.dumps([e.example_id, e.question_index, e.level, e.article,
                                  list(e.choices), e.label]).encode())
        digest.update(b"\n")
    return {
        "format": _FEATURE_FORMAT,
        "split": split,
        "max_seq_length": int(max_seq_length),
        "max_qa_length": int(max_qa_length),
        "tokenizer": tokenizer_fingerprint(tokenizer),
        "examples_sha256": digest.hexdigest(),
        "num_examples": len(examples),
    }


def _settings_key(settings):
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def settings_path(feature_file):
    """Where the settings of a feature file are recorded: the side file
    `<folder>/_<name>.settings.json`, which globs of the data files (`<name>*`) skip."""
    return files.side_file(feature_file, "settings.json")


def _recorded_settings(feature_file):
    """The settings recorded beside a feature file (also under the older name
    `<file>.settings.json`), or None."""
    for path in (settings_path(feature_file), feature_file + ".settings.json"):
        if tf.io.gfile.exists(path):
            return files.read_json(path, "feature-cache settings file")
    return None


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


count_records = files.count_records


def _check_foreign_file(path, max_seq_length, num_examples):
    """Checks a feature file without recorded settings (e.g. the original's)."""
    for record in tf.data.TFRecordDataset(path).take(1):
        features = tf.train.Example.FromString(record.numpy()).features.feature
        missing = [name for name in feature_spec(max_seq_length) if name not in features]
        length = len(features["input_ids"].int64_list.value) if "input_ids" in features else 0
        if missing or length != NUM_CHOICES * max_seq_length:
            raise TaskDataError(
                f"{path} does not hold RACE features for --max_seq_length={max_seq_length}: "
                + (f"it lacks {missing}" if missing else
                   f"its input_ids have {length} values, expected {NUM_CHOICES} x "
                   f"{max_seq_length}") + ". Delete it to rebuild it, or pass another path.")
    if num_examples is not None:
        count = count_records(path)
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

    Returns the path. The side file `settings_path(path)` records the settings of the files
    we write.
    """
    wanted = cache_settings(examples, split, tokenizer, max_seq_length, max_qa_length)
    path = feature_file or files.join(
        cache_dir, f"race_{split}.len{max_seq_length}.qa{max_qa_length}."
                   f"{_settings_key(wanted)}.tf_record")
    if tf.io.gfile.exists(path):
        recorded = _recorded_settings(path)
        if recorded is None:
            _check_foreign_file(path, max_seq_length, len(examples) if check_count else None)
        else:
            diffs = [f"{key}: {recorded.get(key)!r} there, {value!r} now"
                     for key, value in wanted.items() if recorded.get(key) != value]
            if diffs:
                raise TaskDataError(
                    f"The feature file {path} was built with other settings or data "
                    f"({'; '.join(diffs)}). Delete it (and {settings_path(path)}) to rebuild "
                    "it, or pass another path.")
        logging.info("Using the cached RACE %s features %s (%d questions).", split, path,
                     len(examples))
        return path
    write_features(examples, tokenizer, max_seq_length, max_qa_length, path)
    files.write_json(settings_path(path), wanted, sort_keys=True)
    return path


def _parser(max_seq_length):
    spec = feature_spec(max_seq_length)
    shape = [NUM_CHOICES, max_seq_length]

    def parse(record):
        example = tf.io.parse_single_example(record, spec)
        # int64 in tf.Example; int32 for the model (and TPUs), as the original casts.
        features = {name: tf.cast(t, tf.int32) for name, t in example.items()}
        for name in ("input_ids", "input_mask", "segment_ids"):
            features[name] = tf.reshape(features[name], shape)
        return features

    return parse


def load_features(path, max_seq_length):
    """An unbatched dataset of a features file, in file order.

    Elements: `input_ids`, `input_mask`, `segment_ids` int32 [4, max_seq_length],
    `label_ids`, `is_real_example` int32 [].
    """
    return tf.data.TFRecordDataset(path).map(_parser(max_seq_length),
                                             num_parallel_calls=tf.data.AUTOTUNE)


def train_input(path, max_seq_length, seed=None):
    """`dataset_fn(batch_size, num_shards, shard_index)` for `FineTuner.train`.

    As the original: no shuffling before the file is written and a shuffle buffer of only
    100 records after `repeat`, so training starts on middle-school questions (the file's
    first part) and epochs blend; the remainder of a batch is dropped.
    """
    parse = _parser(max_seq_length)

    def dataset_fn(batch_size, num_shards=1, shard_index=0):
        dataset = tf.data.TFRecordDataset(path)
        if num_shards > 1:
            dataset = dataset.shard(num_shards, shard_index)
        dataset = dataset.repeat().shuffle(100, seed=seed)
        dataset = dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
        return dataset.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)

    return dataset_fn


# =========================================================================================
# Loss and metrics
# =========================================================================================


def per_example_loss(logits, labels):
    """Cross-entropy of the softmax over the options against the answer, [B] float32.

    The original's loss is the mean of these over the batch.
    """
    log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)
    return -tf.gather(log_probs, tf.cast(labels, tf.int32), batch_dims=1)


def race_loss_fn(model, batch, training):
    """`loss_fn(model, batch, training) -> [B]` for `FineTuner.train`."""
    return per_example_loss(model(batch, training=training)["logits"], batch["label_ids"])


def race_output_fn(model, batch):
    """`output_fn(model, batch)` for `FineTuner.predict`: logits, probabilities, loss."""
    logits = tf.cast(model(batch, training=False)["logits"], tf.float32)
    return {"logits": logits, "probabilities": tf.nn.softmax(logits, axis=-1),
            "loss": per_example_loss(logits, batch["label_ids"])}


def compute_metrics(logits, labels, losses, levels=None, batch_size=None):
    """RACE metrics under the original's names, with the accuracy of each level.

    Args:
      logits: [N, 4] float.
      labels: [N] answer indices.
      losses: [N] per-question losses.
      levels: [N] "middle"/"high" per question (None: no per-level figures).
      batch_size: the eval batch size, for `loss` (the mean over batches of each batch's
        mean, as the Estimator reports it); None: the mean over questions.

    Returns a dict of floats: `eval_accuracy`, `eval_loss` (over all questions; the
    original's), `loss`, and for each level present `eval_accuracy_<level>` and
    `eval_loss_<level>`.
    """
    logits = np.asarray(logits, np.float64)
    labels = np.asarray(labels, np.int64)
    losses = np.asarray(losses, np.float64)
    correct = np.argmax(logits, axis=-1) == labels
    results = {"eval_accuracy": float(np.mean(correct)), "eval_loss": float(np.mean(losses))}
    if batch_size:
        results["loss"] = float(np.mean([np.mean(losses[i:i + batch_size])
                                         for i in range(0, len(losses), batch_size)]))
    else:
        results["loss"] = results["eval_loss"]
    if levels is not None:
        levels = np.asarray(levels)
        for level in LEVELS:
            mask = levels == level
            if mask.any():
                results[f"eval_accuracy_{level}"] = float(np.mean(correct[mask]))
                results[f"eval_loss_{level}"] = float(np.mean(losses[mask]))
    return results


def predict_split(tuner, features_path, examples, max_seq_length, batch_size):
    """Runs the model over a features file; returns {logits, probabilities, loss, label_ids}."""
    return tuner.predict(load_features(features_path, max_seq_length), race_output_fn,
                         batch_size=batch_size, keep=("label_ids",),
                         num_examples=len(examples))


def make_evaluator(features_path, examples, max_seq_length, batch_size):
    """`evaluate_fn(tuner) -> metrics` on a dev features file, for `FineTuner`."""
    levels = [e.level for e in examples]

    def evaluate_fn(tuner):
        outputs = predict_split(tuner, features_path, examples, max_seq_length, batch_size)
        return compute_metrics(outputs["logits"], outputs["label_ids"], outputs["loss"],
                               levels, batch_size)

    return evaluate_fn


# =========================================================================================
# Prediction files
# =========================================================================================

PREDICTIONS_HEADER = ("id", "question_index", "level", "prediction", "answer", "prob_A",
                      "prob_B", "prob_C", "prob_D")


def prediction_lines(examples, probabilities):
    """Tab-separated lines: `PREDICTIONS_HEADER`, then one per question (answer "" if
    unknown; probabilities as float32 text)."""
    probabilities = np.asarray(probabilities, np.float32)
    if len(probabilities) != len(examples):
        raise ValueError(f"{len(probabilities)} predictions for {len(examples)} questions.")
    lines = ["\t".join(PREDICTIONS_HEADER)]
    for example, row in zip(examples, probabilities):
        answer = "" if example.label is None else LABELS[example.label]
        lines.append("\t".join([example.example_id, str(example.question_index), example.level,
                                LABELS[int(np.argmax(row))], answer]
                               + [str(p) for p in row]))
    return lines


def write_results(path, results, title=None, best=None):
    """`key = value` lines (sorted), as the original's eval_results / predict_results."""
    lines = [f"***** {title} *****"] if title else []
    lines += [f"{key} = {results[key]}" for key in sorted(results)]
    if best is not None:
        lines.append(f"best = {best}")
    files.write_text(path, "".join(line + "\n" for line in lines))


# =========================================================================================
# The run
# =========================================================================================


def _check(config, settings, race):
    r = race
    if not (r.do_train or r.do_eval or r.do_predict):
        raise training.SettingsError(
            "At least one of --do_train, --do_eval or --do_predict must be set.")
    if r.high_only and r.middle_only:
        raise training.SettingsError("--high_only and --middle_only exclude each other; "
                                     "set at most one (neither: both levels).")
    if settings.max_seq_length > config.max_position_embeddings:
        raise training.SettingsError(
            f"Cannot use --max_seq_length={settings.max_seq_length}: the model has only "
            f"{config.max_position_embeddings} position embeddings.")
    if settings.max_seq_length < 4:
        raise training.SettingsError(f"--max_seq_length must be at least 4 ([CLS] article "
                                     f"[SEP] qa [SEP]), got {settings.max_seq_length}.")
    if r.max_qa_length < 1:
        raise training.SettingsError(f"--max_qa_length must be at least 1, got "
                                     f"{r.max_qa_length}.")
    if r.max_qa_length > settings.max_seq_length - 3:
        logging.warning("--max_qa_length=%d leaves no room for the article in "
                        "--max_seq_length=%d: question + option keep their last %d pieces.",
                        r.max_qa_length, settings.max_seq_length, settings.max_seq_length - 3)
    if not (r.spm_model_file or r.vocab_file):
        raise training.SettingsError(
            "Set --spm_model_file (SentencePiece) or --vocab_file (WordPiece).")
    if not r.data_dir:
        raise training.SettingsError("Set --data_dir (the folder that holds RACE/).")


def run_race(config, settings, race, strategy=None):
    """Fine-tunes, evaluates and predicts RACE, as run_race.py.

    Args:
      config: the `AlbertConfig`.
      settings: `finetuning.FinetuningSettings` (the loop's flags; `max_seq_length` per
        choice sequence).
      race: `RaceSettings`.
      strategy: a `tf.distribute.Strategy` (default: one device).

    Every split the phases need is read and checked before the model is built, and
    `init_checkpoint` is loaded before features are converted, so bad input stops the run
    before any work. Written to `settings.output_dir`: the checkpoints and records of
    `finetuning` (`eval_results.txt` with `eval_accuracy`, `eval_loss` and the per-level
    accuracies of every checkpoint, `best_trial.txt`, `model.ckpt-best`); with
    `do_predict`, `predict_results.txt` (the test metrics of `model.ckpt-best`, when the
    test answers are known) and `test_predictions.tsv` (`prediction_lines`); the keyed
    feature files.

    Returns a dict: `result` (the `FinetuningResult`, or None), `test_metrics` (or None),
    `predictions` (the predictions file, or None), `skipped` ({split: skipped questions}).
    """
    from albert_tf.heads import AlbertMultipleChoice
    from albert_tf.modeling import AlbertModel

    r, s = race, settings
    _check(config, s, r)
    tokenizer = make_tokenizer(r.spm_model_file, r.vocab_file, r.do_lower_case)
    use_spm = bool(r.spm_model_file)

    # 1. Read everything first: a missing file or a bad article stops the run here.
    def read(split):
        data = read_split(r.data_dir, split, r.do_lower_case, use_spm, r.levels,
                          r.skip_bad_examples)
        counts = {level: sum(e.level == level for e in data.examples) for level in r.levels}
        logging.info("RACE %s: %d questions (%s) from %d file(s).", split, len(data.examples),
                     ", ".join(f"{n} {level}" for level, n in counts.items()), len(data.files))
        return data

    train = read("train") if r.do_train else None
    dev = read("dev") if r.do_eval else None
    test = read("test") if r.do_predict else None
    outcome = {"result": None, "test_metrics": None, "predictions": None,
               "skipped": {name: data.skipped_questions for name, data in
                           (("train", train), ("dev", dev), ("test", test)) if data}}

    # 2. The model, warm-started (a checkpoint that does not fit stops the run here).
    def build_model(model_config):
        encoder = AlbertModel(model_config, use_one_hot_embeddings=s.use_one_hot_embeddings)
        return AlbertMultipleChoice(model_config, NUM_CHOICES, r.dropout_prob, encoder=encoder)

    tuner = finetuning.FineTuner(config, s, build_model, strategy)
    if r.do_train:
        tuner.initialize()

    # 3. Features (cached), then the phases.
    cache_dir = r.cache_dir or s.output_dir

    def features(split, data, feature_file, check_count=True):
        return cached_features(data.examples, split, tokenizer, s.max_seq_length,
                               r.max_qa_length, cache_dir, feature_file, check_count)

    evaluate_fn = None
    if dev is not None:
        evaluate_fn = make_evaluator(features("dev", dev, r.eval_file), dev.examples,
                                     s.max_seq_length, s.eval_batch_size)
    if r.do_train:
        train_path = features("train", train, r.train_file, check_count=False)
        # Four sequences per question: the encoder's cost is four times a single one's.
        flops = NUM_CHOICES * finetuning.encoder_flops_per_example(config, s.max_seq_length)
        outcome["result"] = tuner.train(race_loss_fn,
                                        train_input(train_path, s.max_seq_length, s.seed),
                                        evaluate_fn=evaluate_fn, metric_key=METRIC,
                                        flops_per_example=flops)
    elif evaluate_fn is not None:
        outcome["result"] = tuner.evaluate_checkpoints(evaluate_fn, METRIC)
    result = outcome["result"]
    if result is not None and result.best_step is not None:
        best = result.evaluations.get(result.best_step, {})
        logging.info("Best checkpoint: step %d, %s = %.4f%s.", result.best_step, METRIC,
                     result.best_value, "".join(
                         f", {k} = {best[k]:.4f}" for k in sorted(best)
                         if k.startswith("eval_accuracy_")))

    if test is not None:
        tuner.restore_best()
        test_path = features("test", test, r.predict_file)
        outputs = predict_split(tuner, test_path, test.examples, s.max_seq_length,
                                s.predict_batch_size)
        if tuner.is_chief:
            path = files.join(s.output_dir, "test_predictions.tsv")
            lines = prediction_lines(test.examples, outputs["probabilities"])
            files.write_text(path, "".join(line + "\n" for line in lines))
            outcome["predictions"] = path
            logging.info("Test predictions: %s", path)
        if all(e.label is not None for e in test.examples):
            metrics = compute_metrics(outputs["logits"], outputs["label_ids"],
                                      outputs["loss"], [e.level for e in test.examples],
                                      s.predict_batch_size)
            outcome["test_metrics"] = metrics
            record = finetuning.EvaluationRecord(s.output_dir, METRIC, write=False)
            if record.best_step is not None:
                metrics["global_step"] = record.best_step
            if tuner.is_chief:
                write_results(files.join(s.output_dir, "predict_results.txt"), metrics,
                              title="Predict results",
                              best=-1 if record.best_value is None else record.best_value)
            logging.info("Test (model.ckpt-best): %s", ", ".join(
                f"{k} = {v:.4f}" for k, v in sorted(metrics.items())))
        else:
            logging.info("The test data have no answers: predictions only, no metrics.")
    return outcome
