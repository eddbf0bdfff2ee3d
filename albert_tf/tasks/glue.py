"""GLUE fine-tuning, as the original run_classifier.py and classifier_utils.py, on `finetuning`.

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
    compute_metrics the original's `eval_accuracy`, `eval_loss`, `matthew_corr`, `pearson`,
                    `MSE`, plus the official GLUE metrics it lacks: `f1` (MRPC, QQP) and
                    `spearman` (STS-B), with scikit-learn and SciPy.
    write_predictions   `test_results.tsv` and `submit_results.tsv` as the original, and the
                    GLUE-server files (`glue_submission/MNLI-m.tsv`, `AX.tsv`, ...).
    export_classifier   a SavedModel that takes raw strings and returns probabilities.

`run_classifier` strings them together on `albert_tf.finetuning.FineTuner`.
"""

import csv
import dataclasses
import io
import sys

from absl import logging
import numpy as np
import tensorflow as tf

from albert_tf import feature_cache
from albert_tf import files
from albert_tf import finetuning
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
    labels: tuple
    metric: str
    train: SplitFile
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


def train_input(path, max_seq_length, regression, seed=None):
    """`dataset_fn(batch_size, num_shards, shard_index)` for `FineTuner.train`.

    As the original: repeat, then shuffle with a buffer of only 100 records, batches with
    the remainder dropped (so epochs blend and batches follow the file order closely).
    """
    parse = feature_cache.record_parser(feature_spec(max_seq_length, regression))
    return feature_cache.train_dataset_fn(path, parse, seed)


# =========================================================================================
# Loss and metrics
# =========================================================================================


def per_example_loss(task, outputs, labels):
    """Cross-entropy against the label (classification) or squared error (regression), [B].

    The original's losses; the batch loss is their mean.
    """
    logits = tf.cast(outputs["logits"], tf.float32)
    if task.is_regression:
        return tf.square(tf.squeeze(logits, -1) - tf.cast(labels, tf.float32))
    log_probs = tf.nn.log_softmax(logits, axis=-1)
    return -tf.gather(log_probs, tf.cast(labels, tf.int32), batch_dims=1)


def classifier_loss_fn(task):
    """`loss_fn(model, batch, training) -> [B]` for `FineTuner.train`."""
    def loss_fn(model, batch, training):
        return per_example_loss(task, model(batch, training=training), batch["label_ids"])
    return loss_fn


def classifier_output_fn(task):
    """`output_fn(model, batch)` for `FineTuner.predict`: logits and per-example loss."""
    def output_fn(model, batch):
        outputs = model(batch, training=False)
        return {"logits": tf.cast(outputs["logits"], tf.float32),
                "loss": per_example_loss(task, outputs, batch["label_ids"])}
    return output_fn


def _correlation(fn, x, y):
    # Undefined when one side is constant (SciPy returns NaN and warns); 0 then, as the
    # original's Matthews correlation does with a zero denominator.
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return 0.0
    return float(fn(x, y)[0])


def compute_metrics(task, logits, labels, losses, batch_size=None):
    """The dev metrics of a task, under the original's names.

    Args:
      task: the `GlueTask`.
      logits: [N, num_labels] float.
      labels: [N] label ids (int) or scores (float, regression).
      losses: [N] per-example losses.
      batch_size: the eval batch size, for `loss` (the mean over eval batches of each
        batch's mean loss, as the Estimator reports it); None: the mean over examples.

    Returns a dict of floats:
      every task: `eval_loss` (mean per-example loss), `loss`;
      classification: `eval_accuracy`; MRPC and QQP also `f1` (of class "1", the official
        GLUE metric the original lacks); CoLA also `matthew_corr`;
      regression (STS-B): `pearson`, `spearman` (official, not in the original), `MSE`.
    """
    from scipy import stats
    from sklearn import metrics as skm

    logits = np.asarray(logits, np.float64)
    labels = np.asarray(labels)
    losses = np.asarray(losses, np.float64)
    results = {"eval_loss": float(np.mean(losses))}
    if batch_size:
        batches = [losses[i:i + batch_size] for i in range(0, len(losses), batch_size)]
        results["loss"] = float(np.mean([np.mean(b) for b in batches]))
    else:
        results["loss"] = results["eval_loss"]
    if task.is_regression:
        predictions = logits.reshape(-1)
        labels = labels.astype(np.float64)
        results["pearson"] = _correlation(stats.pearsonr, predictions, labels)
        results["spearman"] = _correlation(stats.spearmanr, predictions, labels)
        results["MSE"] = float(skm.mean_squared_error(labels, predictions))
        return results
    predictions = np.argmax(logits, axis=-1)
    labels = labels.astype(np.int64)
    results["eval_accuracy"] = float(skm.accuracy_score(labels, predictions))
    if task.name == "cola":
        results["matthew_corr"] = float(skm.matthews_corrcoef(labels, predictions))
    if task.f1:
        results["f1"] = float(skm.f1_score(labels, predictions, pos_label=1,
                                           zero_division=0.0))
    return results


def make_evaluator(task, features_path, max_seq_length, batch_size):
    """`evaluate_fn(tuner) -> metrics` on a dev features file, for `FineTuner`."""
    output_fn = classifier_output_fn(task)

    def evaluate_fn(tuner):
        dataset = load_features(features_path, max_seq_length, task.is_regression)
        outputs = tuner.predict(dataset, output_fn, batch_size=batch_size,
                                keep=("label_ids",))
        return compute_metrics(task, outputs["logits"], outputs["label_ids"],
                               outputs["loss"], batch_size)

    return evaluate_fn


# =========================================================================================
# Predictions and submission files
# =========================================================================================


def _float_text(value):
    # The original writes numpy float32 values with str().
    return str(np.float32(value))


def prediction_lines(task, examples, logits):
    """(test_results lines, submission lines) of the original's two prediction files.

    test_results: per example the tab-joined probabilities (for regression the raw score).
    submission: a header `index<TAB>prediction`, then `guid<TAB>label name` (or the score).
    """
    logits = np.asarray(logits, np.float32)
    if len(logits) != len(examples):
        raise ValueError(f"{len(logits)} predictions for {len(examples)} examples.")
    results, submission = [], ["index\tprediction"]
    for example, row in zip(examples, logits):
        if task.is_regression:
            results.append(_float_text(row[0]))
            submission.append(f"{example.guid}\t{_float_text(row[0])}")
        else:
            probabilities = np.exp(row - row.max())
            probabilities /= probabilities.sum()
            results.append("\t".join(_float_text(p) for p in probabilities))
            submission.append(f"{example.guid}\t{task.labels[int(np.argmax(row))]}")
    return results, submission


def _write_lines(path, lines):
    files.write_text(path, "".join(line + "\n" for line in lines))


def write_predictions(task, split_file, examples, logits, output_dir, primary):
    """Writes the prediction files of one test file; returns their paths.

    `primary` (the task's first test file): `test_results.tsv` and `submit_results.tsv` in
    `output_dir`, as the original. Every test file with a GLUE-server name also goes to
    `output_dir/glue_submission/<name>` (e.g. `MNLI-m.tsv`), ready to zip and upload.
    """
    results, submission = prediction_lines(task, examples, logits)
    paths = []
    if primary:
        for name, lines in (("test_results.tsv", results), ("submit_results.tsv", submission)):
            paths.append(files.join(output_dir, name))
            _write_lines(paths[-1], lines)
    if split_file.submission:
        folder = files.join(output_dir, "glue_submission")
        paths.append(files.join(folder, split_file.submission))
        _write_lines(paths[-1], submission)
    return paths


# =========================================================================================
# Export
# =========================================================================================


def export_classifier(model, export_dir, spm_model_file, do_lower_case, max_seq_length,
                      task, threshold=None):
    """Exports a fine-tuned classifier as a SavedModel that takes raw text.

    `albert_tf.export.export_saved_model` with head "classifier": `serving_default` takes
    `text_a` (and, for pair tasks, `text_b`), string [batch], and returns `probabilities`
    [batch, num_labels] (softmax; for regression the raw score [batch, 1], as the original),
    `predictions` [batch] (class id, or score), `labels` (class name), `logits`, and
    `threshold` when given (the original's `--threshold_to_export`, repeated per example),
    besides the encoder outputs and the packed ids; the `tokens`, `text`, `text_pair` and
    `tokenization_info` signatures are there too.

    Written to `<export_dir>/<unix time>/` (as the original's Estimator export, a versioned
    folder that TF Serving loads), under a temporary name first. Returns that folder.
    """
    from albert_tf import export as export_lib

    if not spm_model_file:
        raise training.SettingsError(
            "Exporting with raw-text inputs needs the SentencePiece model (--spm_model_file).")
    target = export_lib.export_saved_model(
        model, export_dir, spm_model_file, do_lower_case, max_seq_length, head="classifier",
        labels=None if task.is_regression else task.labels, text_pair=task.is_pair,
        versioned=True, threshold=threshold)
    logging.info("Exported the classifier to %s (inputs: %s).", target,
                 "text_a, text_b" if task.is_pair else "text_a")
    return target


# =========================================================================================
# The run
# =========================================================================================


def task_from_settings(classifier):
    """The `GlueTask` that `ClassifierSettings` name."""
    if classifier.task_name.lower() == "tsv":
        return tsv_task(classifier.labels, classifier.text_a_column, classifier.text_b_column,
                        classifier.label_column, classifier.tsv_header)
    return get_task(classifier.task_name)


def _check(config, settings, classifier, task):
    c = classifier
    if not (c.do_train or c.do_eval or c.do_predict or c.export_dir):
        raise training.SettingsError(
            "At least one of --do_train, --do_eval, --do_predict or --export_dir must be set.")
    if settings.max_seq_length > config.max_position_embeddings:
        raise training.SettingsError(
            f"Cannot use --max_seq_length={settings.max_seq_length}: the model has only "
            f"{config.max_position_embeddings} position embeddings.")
    if settings.max_seq_length < 3:
        raise training.SettingsError(
            f"--max_seq_length must be at least 3, got {settings.max_seq_length}.")
    if task.train is None and (c.do_train or c.do_eval):
        raise training.SettingsError(
            f"Task {task.name} has a test set only: predict it with a model fine-tuned on "
            "MNLI (--do_predict with --output_dir set to the MNLI run's folder).")
    best = files.join(settings.output_dir, finetuning.BEST_PREFIX + ".index")
    if (c.do_predict or c.export_dir) and not c.do_eval and not tf.io.gfile.exists(best):
        raise training.SettingsError(
            f"--do_predict and --export_dir use {best[:-len('.index')]}, which the "
            "evaluation picks: add --do_eval (it evaluates every checkpoint of the run).")
    if not (c.spm_model_file or c.vocab_file):
        raise training.SettingsError(
            "Set --spm_model_file (SentencePiece) or --vocab_file (WordPiece).")


def run_classifier(config, settings, classifier, strategy=None):
    """Fine-tunes, evaluates, predicts and exports a GLUE (or tsv) task, as run_classifier.py.

    Args:
      config: the `AlbertConfig`.
      settings: `finetuning.FinetuningSettings` (the loop's flags).
      classifier: `ClassifierSettings` (task, data, tokenizer, phases).
      strategy: a `tf.distribute.Strategy` (default: one device).

    Every input file the phases need is read and checked before the model is built, and
    `init_checkpoint` is loaded before features are converted, so bad input stops the run
    before any work. Files written to `settings.output_dir`: see `finetuning` (checkpoints,
    best_trial.txt, eval_results.txt, model.ckpt-best), `write_predictions`
    (test_results.tsv, submit_results.tsv, glue_submission/) and the feature cache.

    Returns a dict: `result` (the `FinetuningResult` of training/evaluation, or None),
    `extra_eval` ({dev file name: metrics} of the other dev sets, on the best checkpoint),
    `predictions` ({test file name: [paths]}), `export` (the SavedModel folder, or None).
    """
    from albert_tf.heads import AlbertClassifier
    from albert_tf.modeling import AlbertModel

    c, s = classifier, settings
    task = task_from_settings(c)
    _check(config, s, c, task)
    tokenizer = tokenization.FullTokenizer(c.vocab_file, c.do_lower_case, c.spm_model_file)

    def read(split_file):
        return read_examples(task, split_file, c.data_dir, c.do_lower_case)

    # 1. Read everything first: a missing file or a bad row stops the run here.
    train_examples = read(task.train) if c.do_train else None
    dev_sets = [(f, read(f)) for f in task.dev] if c.do_eval else []
    test_sets = []
    if c.do_predict:
        for split_file in task.test:
            if split_file.optional and not tf.io.gfile.exists(
                    files.join(c.data_dir, split_file.path)):
                logging.warning("No %s: its predictions (%s) are skipped.",
                                files.join(c.data_dir, split_file.path),
                                split_file.submission)
                continue
            test_sets.append((split_file, read(split_file)))
    for name, examples in ([("train", train_examples)] if train_examples else []) + [
            (f.name, e) for f, e in dev_sets + test_sets]:
        logging.info("%s %s: %d examples.", task.name, name, len(examples))

    # 2. The model, warm-started (a checkpoint that does not fit stops the run here).
    def build_model(model_config):
        encoder = AlbertModel(model_config, use_one_hot_embeddings=s.use_one_hot_embeddings)
        return AlbertClassifier(model_config, task.num_labels, encoder=encoder)

    tuner = finetuning.FineTuner(config, s, build_model, strategy)
    if c.do_train:
        tuner.initialize()

    # 3. Features (cached), then the phases.
    cache_dir = c.cached_dir or s.output_dir

    def features(split_name, examples):
        return cached_features(examples, task, split_name, s.max_seq_length, tokenizer,
                               cache_dir)

    outcome = {"result": None, "extra_eval": {}, "predictions": {}, "export": None}
    evaluators = [(f, make_evaluator(task, features(f.name, e), s.max_seq_length,
                                     s.eval_batch_size)) for f, e in dev_sets]
    evaluate_fn = evaluators[0][1] if evaluators else None
    if c.do_train:
        outcome["result"] = tuner.train(
            classifier_loss_fn(task),
            train_input(features("train", train_examples), s.max_seq_length,
                        task.is_regression, seed=s.seed),
            evaluate_fn=evaluate_fn, metric_key=task.metric)
    elif evaluate_fn is not None:
        outcome["result"] = tuner.evaluate_checkpoints(evaluate_fn, task.metric)
    result = outcome["result"]
    if result is not None and result.best_step is not None:
        logging.info("Best checkpoint: step %d, %s = %.4f.", result.best_step, task.metric,
                     result.best_value)

    if len(evaluators) > 1 or c.do_predict or c.export_dir:
        tuner.restore_best()
    for split_file, evaluate in evaluators[1:]:
        metrics = evaluate(tuner)
        outcome["extra_eval"][split_file.name] = metrics
        tuner.add_results_section(f"{split_file.name}, best checkpoint", metrics)
        logging.info("%s on the best checkpoint: %s", split_file.name, metrics)

    output_fn = classifier_output_fn(task)
    for index, (split_file, examples) in enumerate(test_sets):
        dataset = load_features(features(split_file.name, examples), s.max_seq_length,
                                task.is_regression)
        outputs = tuner.predict(dataset, output_fn, batch_size=s.predict_batch_size,
                                num_examples=len(examples))
        if tuner.is_chief:
            paths = write_predictions(task, split_file, examples, outputs["logits"],
                                      s.output_dir, primary=index == 0)
            outcome["predictions"][split_file.name] = paths
            logging.info("Predictions for %s: %s", split_file.name, ", ".join(paths))

    if c.export_dir and tuner.is_chief:
        outcome["export"] = export_classifier(tuner.model, c.export_dir, c.spm_model_file,
                                              c.do_lower_case, s.max_seq_length, task,
                                              c.threshold_to_export)
    return outcome
