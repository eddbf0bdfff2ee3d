"""GLUE data, as the original run_classifier.py and classifier_utils.py: tasks, readers, features.

One table (`TASKS`) says, for every task, which files it reads under the GLUE root
(`--data_dir`, the layout download_glue_data.py writes), which columns hold the guid, the
texts and the label, whether the first row is a header, the labels in id order, the metric
that picks the best checkpoint and the GLUE-server file each test split is submitted as.
The generic `tsv` task (`tsv_task`) reads one's own train.tsv / dev.tsv / test.tsv with the
columns and labels the user names.

Pipeline (what the original does, and where we add to it):

    read_examples   TSV (tab-split, quotes are plain characters) -> `InputExample`s; a missing
                    file, a short row, an unknown label or an empty split is a `TaskDataError`
                    naming the file and the line.
    cached_features `InputExample`s -> TFRecords of `input_ids`, `input_mask`, `segment_ids`,
                    `label_ids`, `is_real_example` (the original features, so files made by
                    either side feed the other), cached under a name keyed by task, split,
                    sequence length, tokenizer and data, so that a change never reuses a
                    stale file (the original reuses any file of the right name);
                    `albert_tf.feature_cache` writes, keys and reads them.

The run (loss, metrics, prediction files, `run_classifier`) is `albert_tf.tasks.glue_task`.
"""

import csv
import dataclasses
import io
import sys
from typing import Optional

from absl import logging
import tensorflow as tf

from albert_tf import feature_cache
from albert_tf import files
from albert_tf import tokenization
from albert_tf import training
from albert_tf.settings import ClassifierSettings  # noqa: F401 (re-exported)
from albert_tf.tasks import TaskDataError

# =========================================================================================
# The task table
# =========================================================================================


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where the fields of one TSV file are.

    Columns are 0-based indices (negative ones count from the end: -1 is the last column,
    as the original's `line[-1]`) or, for the `tsv` task, header names.

    Attributes:
      text_a: column of the first text.
      text_b: column of the second text, or None for single-sentence tasks.
      label: column of the label, or None when the file has none (test files).
      guid: column of the example id, or None for "<split>-<row index>" (the original's
        generated ids; the row index counts the header).
      header: whether the first row is a header (skipped).
    """

    text_a: object
    text_b: object = None
    label: object = None
    guid: object = None
    header: bool = True


@dataclasses.dataclass(frozen=True)
class SplitFile:
    """One file of a task: its path under the data folder, its layout, its role.

    Attributes:
      name: a short name for logs, result keys and cache files ("dev_mismatched").
      path: relative to `--data_dir` ("MNLI/dev_mismatched.tsv").
      layout: the `Layout` of its columns.
      submission: for test files, the GLUE-server file its predictions go to ("MNLI-mm.tsv").
      optional: a missing file is skipped with a warning instead of an error.
    """

    name: str
    path: str
    layout: Layout
    submission: str = None
    optional: bool = False


@dataclasses.dataclass(frozen=True)
class GlueTask:
    """A GLUE task: its files, labels and metric.

    Attributes:
      name: the `--task_name` key, lower case as the original's (e.g. "sts-b").
      labels: class names in id order, or None for regression (STS-B; one output).
      metric: the dev metric that picks the best checkpoint (greater is better).
      train: the training file, or None (AX has only a test set).
      dev: dev files; the first selects the best checkpoint, the others are evaluated once,
        on the best checkpoint (MNLI's mismatched set).
      test: test files; the first also gives the original's `test_results.tsv` and
        `submit_results.tsv`.
      f1: also report `f1` of class "1" (the official GLUE metric of MRPC and QQP).
      drop_short_rows: skip rows with too few columns in train/dev (the original does so
        silently for QQP) instead of stopping.
      clean_labels: labels go through `preprocess_text` (strip, collapse spaces, lower-case
        with `--do_lower_case`) before the look-up, as the original's processors do.
    """

    name: str
    labels: Optional[tuple]
    metric: str
    train: Optional[SplitFile]
    dev: tuple
    test: tuple
    f1: bool = False
    drop_short_rows: bool = False
    clean_labels: bool = True

    @property
    def is_regression(self):
        return self.labels is None

    @property
    def num_labels(self):
        return 1 if self.labels is None else len(self.labels)

    @property
    def is_pair(self):
        files = ([self.train] if self.train else []) + list(self.dev) + list(self.test)
        return files[0].layout.text_b is not None

    def splits(self, split):
        """The files of "train", "dev" or "test" (a tuple)."""
        if split == "train":
            return (self.train,) if self.train else ()
        return {"dev": self.dev, "test": self.test}[split]


_BINARY = ("0", "1")
_MNLI = ("contradiction", "entailment", "neutral")
_ENTAILMENT = ("entailment", "not_entailment")
# The AX diagnostic set: MNLI's labels, predicted by an MNLI model; test only.
_DIAGNOSTIC = SplitFile("diagnostic", "diagnostic/diagnostic.tsv",
                        Layout(guid=0, text_a=1, text_b=2), submission="AX.tsv")


def _pair_files(folder, train_dev, test, submission):
    """train.tsv / dev.tsv / test.tsv of a task whose train and dev share a layout."""
    return dict(train=SplitFile("train", f"{folder}/train.tsv", train_dev),
                dev=(SplitFile("dev", f"{folder}/dev.tsv", train_dev),),
                test=(SplitFile("test", f"{folder}/test.tsv", test, submission),))


# Columns are those of the GLUE files (SPEC G.2). "guid=None" is the original's generated id.
_TASK_LIST = (
    GlueTask("cola", _BINARY, "matthew_corr", **_pair_files(
        "CoLA", Layout(text_a=3, label=1, header=False),   # no header in train/dev
        Layout(guid=0, text_a=1), "CoLA.tsv")),
    GlueTask("sst-2", _BINARY, "eval_accuracy", **_pair_files(
        "SST-2", Layout(text_a=0, label=1), Layout(guid=0, text_a=1), "SST-2.tsv")),
    GlueTask("mrpc", _BINARY, "eval_accuracy", f1=True, **_pair_files(
        "MRPC", Layout(text_a=3, text_b=4, label=0), Layout(guid=0, text_a=3, text_b=4),
        "MRPC.tsv")),
    GlueTask("sts-b", None, "pearson", **_pair_files(
        "STS-B", Layout(guid=0, text_a=7, text_b=8, label=-1),
        Layout(guid=0, text_a=7, text_b=8), "STS-B.tsv")),
    GlueTask("qqp", _BINARY, "eval_accuracy", f1=True, drop_short_rows=True, **_pair_files(
        "QQP", Layout(guid=0, text_a=3, text_b=4, label=5), Layout(guid=0, text_a=1, text_b=2),
        "QQP.tsv")),
    GlueTask("mnli", _MNLI, "eval_accuracy",
             train=SplitFile("train", "MNLI/train.tsv",
                             Layout(guid=0, text_a=8, text_b=9, label=-1)),
             dev=(SplitFile("dev_matched", "MNLI/dev_matched.tsv",
                            Layout(guid=0, text_a=8, text_b=9, label=-1)),
                  SplitFile("dev_mismatched", "MNLI/dev_mismatched.tsv",
                            Layout(guid=0, text_a=8, text_b=9, label=-1))),
             test=(SplitFile("test_matched", "MNLI/test_matched.tsv",
                             Layout(guid=0, text_a=8, text_b=9), "MNLI-m.tsv"),
                   SplitFile("test_mismatched", "MNLI/test_mismatched.tsv",
                             Layout(guid=0, text_a=8, text_b=9), "MNLI-mm.tsv"),
                   dataclasses.replace(_DIAGNOSTIC, optional=True))),
    # The original's `mismnli`: trains on MNLI, selects and predicts on the mismatched half.
    GlueTask("mismnli", _MNLI, "eval_accuracy",
             train=SplitFile("train", "MNLI/train.tsv",
                             Layout(guid=0, text_a=8, text_b=9, label=-1)),
             dev=(SplitFile("dev_mismatched", "MNLI/dev_mismatched.tsv",
                            Layout(guid=0, text_a=8, text_b=9, label=-1)),),
             test=(SplitFile("test_mismatched", "MNLI/test_mismatched.tsv",
                             Layout(guid=0, text_a=8, text_b=9), "MNLI-mm.tsv"),)),
    GlueTask("qnli", _ENTAILMENT, "eval_accuracy", **_pair_files(
        "QNLI", Layout(guid=0, text_a=1, text_b=2, label=-1),
        Layout(guid=0, text_a=1, text_b=2), "QNLI.tsv")),
    GlueTask("rte", _ENTAILMENT, "eval_accuracy", **_pair_files(
        "RTE", Layout(guid=0, text_a=1, text_b=2, label=-1),
        Layout(guid=0, text_a=1, text_b=2), "RTE.tsv")),
    GlueTask("wnli", _BINARY, "eval_accuracy", **_pair_files(
        "WNLI", Layout(guid=0, text_a=1, text_b=2, label=-1),
        Layout(guid=0, text_a=1, text_b=2), "WNLI.tsv")),
    # Predicted with a model fine-tuned on MNLI (its output_dir's model.ckpt-best).
    GlueTask("ax", _MNLI, "eval_accuracy", train=None, dev=(), test=(_DIAGNOSTIC,)),
)
TASKS = {task.name: task for task in _TASK_LIST}
# Other spellings users reach for.
ALIASES = {"sst2": "sst-2", "stsb": "sts-b", "mnli-mm": "mismnli", "mnli_mismatched": "mismnli",
           "diagnostic": "ax"}


def get_task(name):
    """The `GlueTask` of a `--task_name` (case-insensitive; "tsv" needs `tsv_task`)."""
    key = name.lower()
    key = ALIASES.get(key, key)
    if key not in TASKS:
        raise training.SettingsError(
            f"Unknown task {name!r}; expected one of {sorted(TASKS)} or 'tsv' (your own "
            "train.tsv/dev.tsv/test.tsv with --text_a_column, --text_b_column, --label_column "
            "and --labels).")
    return TASKS[key]


def tsv_task(labels, text_a_column="0", text_b_column=None, label_column="1", header=True,
             metric=None):
    """A task on one's own `train.tsv`, `dev.tsv` and `test.tsv` directly in `--data_dir`.

    Args:
      labels: class names in id order; None or empty for regression (the label column holds
        a number, scored like STS-B).
      text_a_column, text_b_column, label_column: 0-based column indices or, with a header,
        column names (given as strings, e.g. "0", "sentence"). `text_b_column` None: single
        texts.
      header: whether each file starts with a header row.
      metric: the selection metric (default `eval_accuracy`, or `pearson` for regression).

    test.tsv needs the text columns only. Guids are the original's generated ids,
    `<split>-<i>` with i the 0-based line number (the header counts), so the submission of
    test.tsv lists `test-1`, `test-2`, ... in file order.
    """
    labels = tuple(labels) if labels else None
    if labels is not None and len(set(labels)) != len(labels):
        raise training.SettingsError(f"--labels has duplicates: {labels}.")

    def column(value):
        if value is None or str(value) == "":
            return None
        value = str(value)
        return int(value) if value.lstrip("-").isdigit() else value

    text_a, text_b, label = column(text_a_column), column(text_b_column), column(label_column)
    if text_a is None:
        raise training.SettingsError("The tsv task needs --text_a_column.")
    if label is None:
        raise training.SettingsError(
            "The tsv task needs --label_column for train.tsv and dev.tsv.")
    names = [c for c in (text_a, text_b, label) if isinstance(c, str)]
    if names and not header:
        raise training.SettingsError(
            f"Columns given by name ({names}) need files with a header row.")
    labelled = Layout(text_a=text_a, text_b=text_b, label=label, header=header)
    unlabelled = Layout(text_a=text_a, text_b=text_b, header=header)
    return GlueTask(
        "tsv", labels, metric or ("pearson" if labels is None else "eval_accuracy"),
        train=SplitFile("train", "train.tsv", labelled),
        dev=(SplitFile("dev", "dev.tsv", labelled),),
        test=(SplitFile("test", "test.tsv", unlabelled),), clean_labels=False)


# =========================================================================================
# Reading
# =========================================================================================


@dataclasses.dataclass
class InputExample:
    """One example: `guid` (its id in submissions), `text_a`, optional `text_b`, `label`.

    Texts are kept as read: the tokenizer applies the original preprocessing (whitespace,
    accents, lower case), the same whether it runs in Python or inside a SavedModel. `label`
    is a class name, or a float for regression; test files get the task's dummy label (the
    first class, or 0.0), as the original.
    """

    guid: str
    text_a: str
    text_b: str = None
    label: object = None


def read_tsv(path):
    """Rows of a tab-separated file (any `tf.io.gfile` path), as the original reads GLUE files.

    `quotechar=None`: quotes are ordinary characters, so a field may start with `"` and hold
    no closing one (the GLUE files rely on this). Returns a list of lists of str. Raises
    `FileError` for an unreadable file or text that is not UTF-8 (naming file and line),
    `TaskDataError` for a row the csv module cannot split (naming file and line).
    """
    # Some user files have fields longer than the csv module's default limit (128 KiB).
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    text = files.read_text(path, "TSV file")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t", quotechar=None)
    try:
        return list(reader)
    except csv.Error as error:
        raise TaskDataError(f"{path}, line {reader.line_num}: cannot be read as TSV: "
                            f"{error}.") from None


def _resolve_columns(layout, header_row, path):
    """{field: column index} for a file, header names looked up in its first row."""
    fields = {f: getattr(layout, f) for f in ("text_a", "text_b", "label", "guid")}
    resolved = {}
    for field, column in fields.items():
        if column is None or isinstance(column, int):
            resolved[field] = column
            continue
        if header_row is None and layout.header:
            raise TaskDataError(f"{path} is empty: it needs a header row naming its columns "
                                f"({column!r} for {field}) and one example per line.")
        if header_row is None or column not in header_row:
            raise TaskDataError(
                f"{path}, line 1: no column named {column!r} (for {field}); the header has "
                f"{header_row}.")
        resolved[field] = header_row.index(column)
    return resolved


def _columns_needed(columns):
    """Fewest columns a row needs: a negative ("from the end") label must not be a text."""
    positive = [c for c in columns.values() if c is not None and c >= 0]
    negative = [c for c in columns.values() if c is not None and c < 0]
    needed = max(positive, default=-1) + 1
    if negative:
        needed = max(needed + max(-c for c in negative), max(-c for c in negative))
    return needed


def read_examples(task, split_file, data_dir, do_lower_case=True):
    """The `InputExample`s of one file of a task.

    Args:
      task: the `GlueTask`.
      split_file: one of its `SplitFile`s (e.g. `task.dev[0]`).
      data_dir: the GLUE root (or the folder of the tsv task's files).
      do_lower_case: lower-case labels before the look-up (as the original does).

    Raises `TaskDataError` for a missing file, a row with too few columns (except where the
    original skips them: QQP train/dev), a label not in `task.labels` (naming file, line and
    label), a regression label that is not a number, and a file without examples.
    """
    path = files.join(data_dir, split_file.path)
    if not tf.io.gfile.exists(path):
        where = f"the {split_file.path.split('/')[0]}/ folder of " if "/" in split_file.path \
            else ""
        expected = ("the folder of your train.tsv, dev.tsv and test.tsv" if task.name == "tsv"
                    else f"{where}the GLUE data (as download_glue_data.py writes it)")
        raise TaskDataError(
            f"Task {task.name} needs {path} ({split_file.name}), which does not exist. "
            f"--data_dir must be {expected}.")
    rows = read_tsv(path)
    layout = split_file.layout
    columns = _resolve_columns(layout, rows[0] if layout.header and rows else None, path)
    needed = _columns_needed(columns)
    labelled = columns["label"] is not None
    split = split_file.name.split("_")[0]   # "dev_matched" -> "dev", as the original's guids
    examples, dropped = [], []
    for index, row in enumerate(rows):
        line = index + 1
        if (index == 0 and layout.header) or not row:
            continue   # the header; blank lines (a trailing newline) hold no example
        if len(row) < needed:
            if task.drop_short_rows and labelled:
                dropped.append(line)
                continue
            raise TaskDataError(
                f"{path}, line {line}: expected at least {needed} tab-separated columns "
                f"({_describe(columns)}), found {len(row)}. Is this the {split_file.name} file "
                f"of {task.name}?")
        guid = (row[columns["guid"]].strip() if columns["guid"] is not None
                else f"{split}-{index}")
        text_b = row[columns["text_b"]] if columns["text_b"] is not None else None
        if labelled:
            label = _parse_label(task, row[columns["label"]], do_lower_case, path, line)
        else:
            label = 0.0 if task.is_regression else task.labels[0]
        examples.append(InputExample(guid, row[columns["text_a"]], text_b, label))
    if dropped:
        logging.warning("%s: skipped %d row(s) with fewer than %d columns (line(s) %s%s), as "
                        "the original does for %s.", path, len(dropped), needed,
                        ", ".join(map(str, dropped[:5])), ", ..." if len(dropped) > 5 else "",
                        task.name)
    if not examples:
        raise TaskDataError(f"{path} holds no examples ({len(rows)} row(s), header "
                            f"{'skipped' if layout.header else 'none'}).")
    return examples


def _describe(columns):
    return ", ".join(f"{field} in column {c}" for field, c in columns.items() if c is not None)


def _parse_label(task, raw, do_lower_case, path, line):
    if task.is_regression:
        try:
            return float(raw)
        except ValueError:
            raise TaskDataError(
                f"{path}, line {line}: label {raw!r} is not a number; task {task.name} is a "
                "regression" + (" (the tsv task is one when --labels is empty; pass the "
                                "class names with --labels)" if task.name == "tsv" else "")
                + ".") from None
    label = (tokenization.preprocess_text(raw, lower=do_lower_case) if task.clean_labels
             else raw.strip())
    if label not in task.labels:
        raise TaskDataError(f"{path}, line {line}: label {raw!r} is not one of the labels of "
                            f"{task.name}: {list(task.labels)}.")
    return label


# =========================================================================================
# Features and their cache
# =========================================================================================


def convert_example(example, task, max_seq_length, tokenizer):
    """The model features of one example, as the original `convert_single_example`.

    `[CLS] a [SEP]` (a cut to `max_seq_length - 2` tokens) or `[CLS] a [SEP] b [SEP]` (the
    longer text loses its last token until both fit in `max_seq_length - 3`; b on a tie);
    segment ids 0 through the first [SEP], 1 after; 0-padding. A pair whose second text
    gives no tokens is packed as a single text.

    Returns a dict: `input_ids`, `input_mask`, `segment_ids` (lists of `max_seq_length`
    ints), `label_ids` (the label's index, or the float score for regression),
    `is_real_example` (1).
    """
    features = tokenization.encode_inputs(tokenizer, example.text_a, example.text_b,
                                          max_seq_length)
    if task.is_regression:
        features["label_ids"] = float(example.label)
    else:
        features["label_ids"] = task.labels.index(example.label)
    features["is_real_example"] = 1
    return features


def write_features(examples, task, max_seq_length, tokenizer, path):
    """Converts examples and writes them as TFRecords to `path` (atomically); returns count."""
    features = (convert_example(example, task, max_seq_length, tokenizer)
                for example in examples)
    return feature_cache.write_features(path, features,
                                        feature_spec(max_seq_length, task.is_regression),
                                        len(examples), "examples")


# Bump when the feature layout changes, so that old caches are not reused.
_FEATURE_FORMAT = 1


def cache_key(task, split_name, max_seq_length, tokenizer, examples):
    """The key of a features file: task, split, length, tokenizer and the examples' content."""
    header = [_FEATURE_FORMAT, task.name, split_name, int(max_seq_length),
              list(task.labels or ()), feature_cache.tokenizer_fingerprint(tokenizer)]
    rows = ([e.guid, e.text_a, e.text_b, e.label] for e in examples)
    return feature_cache.json_digest(rows, header)[:16]


def cached_features(examples, task, split_name, max_seq_length, tokenizer, cache_dir):
    """The TFRecord file of these examples' features, converting them only if not cached.

    The file is `<cache_dir>/<task>_<split>.len<max_seq_length>.<key>.tf_record`, where the
    key hashes the task, split, length, tokenizer (model bytes, lower-casing) and the
    examples; any change gives another file, never a stale one (`feature_cache.cached`,
    without a settings side file: the name holds the key). Returns the path.
    """
    key = cache_key(task, split_name, max_seq_length, tokenizer, examples)
    path = feature_cache.keyed_path(cache_dir, f"{task.name}_{split_name}.len{max_seq_length}",
                                    key)
    reused, _ = feature_cache.cached(
        path, None, lambda target: write_features(examples, task, max_seq_length, tokenizer,
                                                  target), record=False)
    if reused:
        logging.info("Using cached features %s (%d examples).", path, len(examples))
    return path


def feature_spec(max_seq_length, regression):
    """The `tf.io.parse_single_example` spec of the records (the original's)."""
    return {
        "input_ids": tf.io.FixedLenFeature([max_seq_length], tf.int64),
        "input_mask": tf.io.FixedLenFeature([max_seq_length], tf.int64),
        "segment_ids": tf.io.FixedLenFeature([max_seq_length], tf.int64),
        "label_ids": tf.io.FixedLenFeature([], tf.float32 if regression else tf.int64),
        "is_real_example": tf.io.FixedLenFeature([], tf.int64),
    }


def load_features(path, max_seq_length, regression):
    """An unbatched dataset of the parsed features of a TFRecord file, in file order.

    Elements: `input_ids`, `input_mask`, `segment_ids` int32 [max_seq_length], `label_ids`
    int32 [] (float32 for regression), `is_real_example` int32 [].
    """
    parse = feature_cache.record_parser(feature_spec(max_seq_length, regression))
    return feature_cache.load_dataset(path, parse)


def train_input(path, max_seq_length, regression, seed=None, **batching):
    """`dataset_fn(batch_size, num_shards, shard_index)` for `FineTuner.train`.

    As the original: repeat, then shuffle with a buffer of only 100 records, batches with
    the remainder dropped (so epochs blend and batches follow the file order closely).
    `batching`: `length_buckets`, `group_by_length` (see `feature_cache.train_dataset_fn`).
    """
    parse = feature_cache.record_parser(feature_spec(max_seq_length, regression))
    return feature_cache.train_dataset_fn(path, parse, seed, **batching)
