"""The fine-tuning tasks' feature files: their records, their cache, and reading them back.

GLUE, RACE and SQuAD convert their examples once into TFRecords of the original's feature
names, dtypes and shapes (so files made by either side feed the other) and reuse them on the
next run. This module is that mechanism, once:

- Records. A task describes its record layout by its `tf.io.parse_single_example` spec
  (`{name: tf.io.FixedLenFeature(shape, dtype)}`); `encode_example` writes a dict of ints and
  floats (scalars, lists, or lists of rows, flattened) in that layout, `write_features` writes
  a whole file atomically (through `files.write_records`), `record_parser`, `load_dataset` and
  `train_dataset_fn` read it back as the original's input functions do.
- What a file depends on. A task names it in a settings dict (the task, the split, the
  lengths, `tokenizer_fingerprint`, a digest of its examples (`json_digest`) or of its source
  file (`file_digest`), its stride...).
- The cache rule (`cached`). A file at a name keyed by its settings (`keyed_path`,
  `settings_key`) is reused as it is: other settings give another name, so a stale file is
  never read and the changed data is converted anew. A file at a path the user chose records
  its settings in the side file `_<name>.settings.json` (`files.side_file`; the older name
  `<file>.settings.json` is read too); a file with other settings is refused with a
  `TaskDataError` that says what differs and what to delete, and a file without settings (one
  the original wrote) is checked by the task (`first_record_mismatch`: are its records of this
  layout?). Files are written under a temporary name and renamed when complete, so an
  interrupted conversion never leaves a file that looks like a cache.

Who uses what: GLUE names its files by a key of everything they depend on, examples
included, and records nothing beside them; RACE keys its names by its settings (or takes the
user's `--train_file`...) and records them; SQuAD's training features live at the user's
path with their settings and counts recorded. SQuAD's prediction features keep their
settings inside the post-processing file that goes with them, so that task compares them
itself, with `check_settings`.

The original reuses any file of the right name and never checks what it was built from.
"""

import hashlib
import json
import time

from absl import logging
import tensorflow as tf

from albert_tf import bucketing
from albert_tf import files
from albert_tf.tasks import TaskDataError

SETTINGS_SUFFIX = "settings.json"


# =========================================================================================
# Records
# =========================================================================================


def example_encoder(spec):
    """`encode(values) -> bytes`: a serialized `tf.train.Example` in the layout of `spec`.

    Args:
      spec: `{name: tf.io.FixedLenFeature}`; a float32 feature is written as a FloatList,
        any other as an Int64List. The features are written in the spec's order.

    `encode(values)` takes `{name: value}` for every name of the spec (other keys are
    ignored); a value is a number, a list of numbers, or a list of rows of numbers (written
    flattened, row after row: RACE's four sequences of a question). Raises KeyError if a
    name of the spec has no value.
    """
    kinds = [(name, feature.dtype == tf.float32) for name, feature in spec.items()]

    def encode(values):
        feature = {}
        for name, is_float in kinds:
            value = values[name]
            if not isinstance(value, (list, tuple)):
                value = [value]
            elif value and isinstance(value[0], (list, tuple)):
                value = [v for row in value for v in row]
            feature[name] = (tf.train.Feature(float_list=tf.train.FloatList(value=value))
                             if is_float else
                             tf.train.Feature(int64_list=tf.train.Int64List(value=value)))
        return tf.train.Example(
            features=tf.train.Features(feature=feature)).SerializeToString()

    return encode


def encode_example(values, spec):
    """`example_encoder(spec)(values)`: one record, as bytes."""
    return example_encoder(spec)(values)


def write_features(path, features, spec, total=None, unit="examples", log=logging.info):
    """Writes feature dicts as the TFRecord file `path` (any filesystem), atomically.

    Args:
      path: the file; it appears only once every record is written (an exception, in the
        conversion too, leaves no file and no temporary file).
      features: an iterable of `{name: value}` dicts (`example_encoder`).
      spec: the record layout.
      total, unit: for the progress reports ("Converted 10000 of 87599 examples").
      log: `log(message)` for progress every 10,000 records and the closing line, or None.

    Returns the number of records written.
    """
    encode = example_encoder(spec)
    start = time.time()
    count = files.write_records(path, (encode(f) for f in features), total, unit, log=log)
    if log is not None:
        log(f"Wrote {count} {unit} to {path} in {time.time() - start:.1f} s.")
    return count


def record_parser(spec, shapes=None):
    """`parse(record) -> {name: tensor}` for one serialized record of the layout `spec`.

    int64 features become int32 (the model's and the TPU's type, as the original casts);
    float features stay float32. `shapes` ({name: shape}) reshapes features after parsing
    (RACE's flattened [4 x max_seq_length] back to [4, max_seq_length]).
    """
    shapes = shapes or {}

    def parse(record):
        example = tf.io.parse_single_example(record, spec)
        features = {name: tf.cast(t, tf.int32) if t.dtype == tf.int64 else t
                    for name, t in example.items()}
        for name, shape in shapes.items():
            features[name] = tf.reshape(features[name], shape)
        return features

    return parse


def load_dataset(path, parse):
    """An unbatched dataset of the parsed records of a TFRecord file, in file order."""
    return tf.data.TFRecordDataset(path).map(parse, num_parallel_calls=tf.data.AUTOTUNE)


def train_dataset_fn(path, parse, seed=None, shuffle_buffer=100, length_buckets="default",
                     group_by_length=True):
    """`dataset_fn(batch_size, num_shards=1, shard_index=0)` for `FineTuner.train`.

    As the original's `file_based_input_fn_builder`: the file (this worker's shard of its
    records), repeated, shuffled in a buffer of only 100 records (the examples keep close to
    the file order and epochs blend), parsed, in batches with the remainder dropped. Batches
    are cut to `length_buckets` and, with `group_by_length`, formed from one bucket each
    (`albert_tf.bucketing.training_batches`).
    """
    def dataset_fn(batch_size, num_shards=1, shard_index=0):
        dataset = tf.data.TFRecordDataset(path)
        if num_shards > 1:
            dataset = dataset.shard(num_shards, shard_index)
        dataset = dataset.repeat().shuffle(shuffle_buffer, seed=seed)
        dataset = dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
        buckets = bucketing.bucket_lengths(dataset.element_spec["input_mask"].shape[-1],
                                           length_buckets)
        dataset = bucketing.training_batches(dataset, batch_size, buckets, group_by_length)
        return dataset.prefetch(tf.data.AUTOTUNE)

    return dataset_fn


def first_record_mismatch(path, spec, key="input_ids"):
    """How the first record of `path` differs from the layout `spec`, or None if it fits.

    Returns None when the file is empty or its first record has every feature of the spec
    and `key` holds as many values as the spec's shape; else `(missing, length)`: the
    names of the spec the record lacks, and the number of values of its `key` (None if it
    has none). For files without recorded settings (the original's).
    """
    expected = 1
    for size in spec[key].shape:
        expected *= size
    for record in tf.data.TFRecordDataset(path).take(1):
        features = tf.train.Example.FromString(record.numpy()).features.feature
        missing = [name for name in spec if name not in features]
        length = len(features[key].int64_list.value) if key in features else None
        if missing or length != expected:
            return missing, length
    return None


# =========================================================================================
# What a feature file depends on
# =========================================================================================


def tokenizer_fingerprint(tokenizer):
    """A SHA-256 (hex) of what decides the ids: the vocabulary bytes (SentencePiece model or
    WordPiece vocabulary) and the preprocessing switches (lower case, preprocess)."""
    digest = hashlib.sha256()
    if tokenizer.spm_model_proto is not None:
        digest.update(b"spm:" + tokenizer.spm_model_proto)
    else:
        digest.update(b"wordpiece:" + files.read_bytes(tokenizer.vocab_path, "vocabulary"))
    digest.update(json.dumps([tokenizer.do_lower_case,
                              getattr(tokenizer, "preprocess", True)]).encode())
    return digest.hexdigest()


def json_digest(rows, header=None):
    """A SHA-256 (hex) of `header` (if given) then of each row, as JSON, a newline after
    each row: the digest of examples' content (rows of JSON-serializable values)."""
    digest = hashlib.sha256()
    if header is not None:
        digest.update(json.dumps(header).encode())
    for row in rows:
        digest.update(json.dumps(row).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def file_digest(path):
    """The SHA-1 (hex) of a file's bytes (any filesystem): names the data a cache was built
    from."""
    digest = hashlib.sha1()
    with tf.io.gfile.GFile(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def settings_key(settings):
    """16 hex digits of the SHA-256 of `settings` (as sorted JSON): a file name's key."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def keyed_path(cache_dir, stem, key):
    """`<cache_dir>/<stem>.<key>.tf_record`: a feature file named by what it depends on."""
    return files.join(cache_dir, f"{stem}.{key}.tf_record")


# =========================================================================================
# The cache
# =========================================================================================


def settings_path(feature_file):
    """The side file that records a feature file's settings: `<folder>/_<name>.settings.json`,
    which globs of the feature files (`<name>*`) skip."""
    return files.side_file(feature_file, SETTINGS_SUFFIX)


def recorded_settings(feature_file):
    """The settings recorded beside `feature_file` (also under the older name
    `<file>.settings.json`), or None if it has none. Raises FileError for unreadable JSON."""
    for path in (settings_path(feature_file), f"{feature_file}.{SETTINGS_SUFFIX}"):
        if files.exists(path):
            return files.read_json(path, "feature-cache settings file")
    return None


def write_settings(feature_file, settings):
    """Records `settings` beside `feature_file` (sorted JSON, atomically)."""
    files.write_json(settings_path(feature_file), settings, sort_keys=True)


def check_settings(path, recorded, wanted, what="feature file", remedy=None):
    """Raises TaskDataError if `recorded` differs from `wanted` in any key of `wanted`.

    Keys recorded but not wanted (counts written after the build) are not compared. The
    message names `path` (as "the <what>"), each difference ("doc_stride: 2 there, 3 now")
    and `remedy` (default: delete the file and its settings side file to rebuild it).
    """
    diffs = [f"{key}: {recorded.get(key)!r} there, {value!r} now"
             for key, value in wanted.items() if recorded.get(key) != value]
    if diffs:
        remedy = remedy or (f"Delete it (and {settings_path(path)}) to rebuild it, or pass "
                            "another path.")
        raise TaskDataError(f"The {what} {path} was built with other settings or data "
                            f"({'; '.join(diffs)}). {remedy}")


def cached(path, wanted, build, record=True, check_unrecorded=None, what="feature file",
           remedy=None):
    """Reuses the feature file `path` if it holds what `wanted` describes, else builds it.

    Args:
      path: the feature file (any filesystem); from `keyed_path` or a user's path.
      wanted: the settings dict the file depends on (JSON values).
      build: `build(path) -> dict or None`, called when `path` does not exist: writes the
        file atomically (`write_features`) and returns values to record beside the settings
        (counts), or None.
      record: record the settings in the side file `settings_path(path)` and compare them on
        reuse. False for a file whose name holds the key of everything it depends on (GLUE),
        which is reused as it is.
      check_unrecorded: `check(path)`, called on reuse of a file without recorded settings
        (one the original wrote); raises if the file does not fit. None: no check.
      what, remedy: how a settings mismatch names the file and what to do
        (`check_settings`).

    Returns:
      `(reused, recorded)`: whether the file existed, and the settings recorded beside it
      (None when built now, unrecorded, or `record` is False).

    Raises:
      TaskDataError: the file records other settings (`check_settings`), or
        `check_unrecorded` refused it.
    """
    if files.exists(path):
        recorded = recorded_settings(path) if record else None
        if recorded is not None:
            check_settings(path, recorded, wanted, what, remedy)
        elif record and check_unrecorded is not None:
            check_unrecorded(path)
        return True, recorded
    extra = build(path)
    if record:
        write_settings(path, {**wanted, **(extra or {})})
    return False, None
