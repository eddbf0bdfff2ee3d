"""SQuAD feature files: the TFRecords of the model inputs and the post-processing features.

The original's formats, so files made by either side feed the other:
- training / prediction features: TFRecords with `unique_ids`, `input_ids`, `input_mask`,
  `segment_ids`, `p_mask` and, for training, `start_positions`, `end_positions`,
  `is_impossible` (all int64; `feature_spec`), encoded by `albert_tf.feature_cache`;
- the prediction features post-processing needs (`--predict_feature_left_file`): a pickle.
  Ours holds plain Python values (`EvalFeature` fields) and the settings the features were
  built from; the original's pickle of its `InputFeatures` objects is read too.

`albert_tf.tasks.squad.prepare_train_features` and `prepare_eval_features` build and reuse
them.
"""

import contextlib
import dataclasses
import io
import os
import pickle

from absl import logging
import tensorflow as tf

from albert_tf import bucketing
from albert_tf import feature_cache
from albert_tf import files
from albert_tf.tasks import TaskDataError

# Version tag of our prediction-features pickle.
_LEFT_FILE_FORMAT = "albert_tf.squad.eval_features/1"


# =========================================================================================
# TFRecords (the original's feature names and types)
# =========================================================================================

def feature_spec(seq_length, is_training, is_v2=True):
    """The parsing spec of the original's records (`p_mask` only read for v2, as there)."""
    spec = {
        "unique_ids": tf.io.FixedLenFeature([], tf.int64),
        "input_ids": tf.io.FixedLenFeature([seq_length], tf.int64),
        "input_mask": tf.io.FixedLenFeature([seq_length], tf.int64),
        "segment_ids": tf.io.FixedLenFeature([seq_length], tf.int64),
    }
    if is_v2:
        spec["p_mask"] = tf.io.FixedLenFeature([seq_length], tf.int64)
    if is_training:
        for name in ("start_positions", "end_positions", "is_impossible"):
            spec[name] = tf.io.FixedLenFeature([], tf.int64)
    return spec


def record_values(feature, is_training):
    """An `InputFeatures`' values under the original's record names: `unique_ids`,
    `input_ids`, `input_mask`, `segment_ids`, `p_mask` and, when `is_training`, the labels
    `start_positions`, `end_positions`, `is_impossible` (0 or 1)."""
    values = {
        "unique_ids": feature.unique_id,
        "input_ids": feature.input_ids,
        "input_mask": feature.input_mask,
        "segment_ids": feature.segment_ids,
        "p_mask": feature.p_mask,
    }
    if is_training:
        values["start_positions"] = feature.start_position
        values["end_positions"] = feature.end_position
        values["is_impossible"] = int(bool(feature.is_impossible))
    return values


def feature_to_tf_example(feature, is_training):
    """A `tf.train.Example` with the original's feature names, as bytes."""
    return feature_cache.encode_example(record_values(feature, is_training),
                                        feature_spec(len(feature.input_ids), is_training))


class FeatureWriter:
    """Writes features to a TFRecord file (any `tf.io.gfile` path) through
    `files.atomic_tfrecord_writer`: `close` gives the file its name, `abort` removes it, so
    an interrupted conversion never leaves a cache that looks complete."""

    def __init__(self, filename, is_training):
        self.filename = os.fspath(filename)
        self.is_training = is_training
        self.num_features = 0
        self._encode = None
        self._stack = contextlib.ExitStack()
        self._writer = self._stack.enter_context(files.atomic_tfrecord_writer(self.filename))

    def process_feature(self, feature):
        if self._encode is None:
            self._encode = feature_cache.example_encoder(
                feature_spec(len(feature.input_ids), self.is_training))
        self.num_features += 1
        self._writer.write(self._encode(record_values(feature, self.is_training)))

    def close(self):
        self._stack.close()

    def abort(self):
        # Exiting with an exception removes the temporary file and leaves no final one.
        self._stack.__exit__(RuntimeError, RuntimeError("aborted"), None)


def write_features(path, features, seq_length, is_training):
    """Writes `InputFeatures` as the TFRecord file `path`, atomically (an exception during
    the conversion leaves no file); returns the number written."""
    return feature_cache.write_features(
        path, (record_values(f, is_training) for f in features),
        feature_spec(seq_length, is_training), unit="features", log=None)


def squad_dataset(input_file, seq_length, is_training, batch_size, is_v2=True,
                  drop_remainder=None, num_shards=1, shard_index=0, shuffle_buffer=100,
                  seed=None, length_buckets="default", group_by_length=True):
    """A `tf.data.Dataset` of batches from a feature TFRecord file.

    Training: repeated, shuffled in a buffer of 100 records (the original's input; the
    examples were shuffled before conversion), whole batches only. Prediction: in file
    order, a final partial batch kept. Every int64 feature becomes int32, as the original.
    Training batches are cut to `length_buckets` and, with `group_by_length`, formed from
    windows of one bucket each (`albert_tf.bucketing.training_batches`).

    Returns batches of dicts: `unique_ids` [B], `input_ids`, `input_mask`, `segment_ids`
    (and `p_mask` for v2) [B, seq_length], and in training `start_positions`,
    `end_positions`, `is_impossible` [B].
    """
    spec = feature_spec(seq_length, is_training, is_v2)
    dataset = tf.data.TFRecordDataset(input_file)
    if num_shards > 1:
        dataset = dataset.shard(num_shards, shard_index)
    if is_training:
        dataset = dataset.repeat().shuffle(shuffle_buffer, seed=seed)
    if drop_remainder is None:
        drop_remainder = is_training
    buckets = bucketing.bucket_lengths(seq_length, length_buckets)
    if is_training and len(buckets) > 1:
        dataset = dataset.map(lambda record: {
            name: tf.cast(t, tf.int32)
            for name, t in tf.io.parse_single_example(record, spec).items()})
        return bucketing.training_batches(dataset, batch_size, buckets, group_by_length,
                                          drop_remainder).prefetch(tf.data.AUTOTUNE)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)

    def parse(records):
        parsed = tf.io.parse_example(records, spec)
        return {name: tf.cast(t, tf.int32) for name, t in parsed.items()}

    return dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def check_feature_file(path, seq_length, is_training):
    """Raises TaskDataError if the first record of `path` does not fit the settings."""
    mismatch = feature_cache.first_record_mismatch(path, feature_spec(seq_length, is_training))
    if mismatch is not None:
        missing, length = mismatch
        raise TaskDataError(
            f"{path}: its records do not fit: "
            + (f"missing {missing}" if missing else f"input_ids of length {length}, "
               f"but --max_seq_length={seq_length}")
            + ". Delete the file to rebuild it, or pass another feature file path.")


# =========================================================================================
# Prediction features for post-processing (--predict_feature_left_file)
# =========================================================================================

@dataclasses.dataclass
class EvalFeature:
    """What post-processing needs of a feature (the model outputs come separately).

    Attributes:
      unique_id, example_index, doc_offset: as `InputFeatures` (the example's index in
        the list converted; the window's first piece in the sequence).
      tok_start_to_orig_index, tok_end_to_orig_index, token_is_max_context: per window
        piece, as `InputFeatures`.
    """

    unique_id: int
    example_index: int
    doc_offset: int
    tok_start_to_orig_index: list[int]
    tok_end_to_orig_index: list[int]
    token_is_max_context: list[bool]


def to_eval_feature(feature):
    """The `EvalFeature` of an `InputFeatures`."""
    return EvalFeature(feature.unique_id, feature.example_index, feature.doc_offset,
                       list(feature.tok_start_to_orig_index),
                       list(feature.tok_end_to_orig_index),
                       list(feature.token_is_max_context))


class _OriginalFeatures:
    """Stand-in for the original's `squad_utils.InputFeatures` when unpickling its files."""



class _SafeUnpickler(pickle.Unpickler):
    # Only plain values, and the original's InputFeatures class, may be built.
    _ALLOWED = {("collections", "OrderedDict"), ("builtins", "dict"), ("builtins", "list"),
                ("builtins", "tuple"), ("builtins", "set"), ("builtins", "object")}

    def find_class(self, module, name):
        if name == "InputFeatures" and module.endswith("squad_utils"):
            return _OriginalFeatures
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        if module == "copy_reg" and name == "_reconstructor":   # Python 2 pickles
            return super().find_class("copyreg", "_reconstructor")
        if module == "__builtin__" and name == "object":
            return object
        raise pickle.UnpicklingError(f"unexpected object {module}.{name}")


def _from_original(obj):
    doc_offset = obj.tokens.index("[SEP]") + 1
    flags = [bool(obj.token_is_max_context.get(doc_offset + k, False))
             for k in range(len(obj.tok_start_to_orig_index))]
    return EvalFeature(int(obj.unique_id), obj.example_index, doc_offset,
                       list(obj.tok_start_to_orig_index), list(obj.tok_end_to_orig_index), flags)


def save_eval_features(path, features, settings):
    """Writes the post-processing features (plain values) with the settings they came from,
    atomically."""
    payload = {
        "format": _LEFT_FILE_FORMAT,
        "settings": settings,
        "features": [dataclasses.astuple(f) for f in features],
    }
    files.write_bytes(path, pickle.dumps(payload, protocol=4))


def load_eval_features(path):
    """(features, settings) from a file by `save_eval_features`, or from the original's
    pickle of `InputFeatures` (settings None then)."""
    data = files.read_bytes(path, "SQuAD prediction-feature file")
    try:
        payload = _SafeUnpickler(io.BytesIO(data)).load()
    except Exception as err:  # noqa: BLE001 - any unpickling failure means a bad file
        raise TaskDataError(f"{path}: not a SQuAD prediction-feature file ({err}). Delete it "
                            "and the --predict_feature_file beside it to rebuild both.") \
            from None
    if isinstance(payload, dict) and payload.get("format") == _LEFT_FILE_FORMAT:
        return [EvalFeature(*row) for row in payload["features"]], payload["settings"]
    if isinstance(payload, list) and all(isinstance(x, _OriginalFeatures) for x in payload):
        logging.info("%s was written by the original run_squad; its settings are unknown and "
                     "not checked.", path)
        return [_from_original(x) for x in payload], None
    raise TaskDataError(f"{path}: not a SQuAD prediction-feature file. Delete it and the "
                        "--predict_feature_file beside it to rebuild both.")
