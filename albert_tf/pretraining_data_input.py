"""Reading pretraining TFRecords (the original run_pretraining.py input), with tf.data.

The record schema is the original's (create_pretraining_data.py writes it, run_pretraining.py
reads it); features not listed here, such as `token_boundary`, are ignored:

    feature                 dtype    values per record
    input_ids               int64    max_seq_length
    input_mask              int64    max_seq_length
    segment_ids             int64    max_seq_length
    masked_lm_positions     int64    max_predictions_per_seq
    masked_lm_ids           int64    max_predictions_per_seq
    masked_lm_weights       float    max_predictions_per_seq   (1.0 real, 0.0 padding)
    next_sentence_labels    int64    1   (the sentence-order label: 0 in order, 1 swapped)

Every int64 feature is cast to int32, as the original does for TPUs.

Training input follows the original order of operations (file names repeated, shuffled per
pass, read `min(4, files)` at a time interleaved, then a 100-record shuffle buffer) and adds
what the original left to the Estimator: per-worker sharding, autotuned parallelism and
prefetching. Evaluation reads the files in order, repeated.
"""

import os

import tensorflow as tf

from albert_tf import bucketing
from albert_tf.errors import UserError
from albert_tf.files import FileError, expand_globs

# The original's reader: name -> (dtype, "seq" | "pred" | 1).
PRETRAINING_FEATURES = {
    "input_ids": (tf.int64, "seq"),
    "input_mask": (tf.int64, "seq"),
    "segment_ids": (tf.int64, "seq"),
    "masked_lm_positions": (tf.int64, "pred"),
    "masked_lm_ids": (tf.int64, "pred"),
    "masked_lm_weights": (tf.float32, "pred"),
    "next_sentence_labels": (tf.int64, 1),
}

# The original reads this many files at once (its num_cpu_threads) and shuffles this many
# records after the interleave.
CYCLE_LENGTH = 4
SHUFFLE_BUFFER = 100


class InputDataError(UserError, ValueError):
    """Pretraining files that do not exist or do not hold what the flags say."""


def feature_lengths(max_seq_length, max_predictions_per_seq):
    """{feature name: (dtype, values per record)} for the given flags."""
    sizes = {"seq": max_seq_length, "pred": max_predictions_per_seq, 1: 1}
    return {name: (dtype, sizes[kind]) for name, (dtype, kind) in PRETRAINING_FEATURES.items()}


def resolve_input_files(input_file):
    """The files matched by comma-separated glob patterns, as the original's `--input_file`.

    Uses `tf.io.gfile`, so `gs://` patterns work as in the original. Each pattern's matches
    are sorted; patterns keep their order; a file matched twice is read once. Names that
    start with `_` or `.` matched by a wildcard are skipped (`albert_tf.files.expand_globs`): so
    `train.tfrecord*` selects the TFRecords of create_pretraining_data, not its
    `_train.tfrecord.summary.json` or work folder. Any filesystem (`gs://`, `ram://`).

    Raises:
      InputDataError: no pattern given, or a pattern that matches no file (named).
    """
    try:
        return expand_globs(input_file, what="pretraining input file")
    except FileError as error:
        raise InputDataError(
            f"{error} Check the path (working directory {os.getcwd()!r}), and quote globs so "
            "the shell does not expand them.") from None


def _first_record(path):
    for record in tf.data.TFRecordDataset(path).take(1):
        return record.numpy()
    return None


def check_record_schema(files, max_seq_length, max_predictions_per_seq, max_files=8):
    """Reads the first record of up to `max_files` files and checks it against the flags.

    A mismatch would otherwise surface as a parse error deep inside tf.data after the model
    is built (or, for a wrong max_predictions_per_seq written by do_permutation, not at all
    until the first batch).

    Raises:
      InputDataError: naming the file, the feature, what the flags expect and what was found.
    """
    expected = feature_lengths(max_seq_length, max_predictions_per_seq)
    step = max(1, len(files) // max_files)
    for path in files[::step][:max_files]:
        try:
            record = _first_record(path)
        except tf.errors.OpError as error:
            raise InputDataError(f"{path} is not a readable TFRecord file: {error.message}")
        if record is None:
            raise InputDataError(f"{path} holds no record.")
        example = tf.train.Example()
        try:
            example.ParseFromString(record)
        except Exception as error:  # protobuf's DecodeError
            raise InputDataError(f"The first record of {path} is not a tf.train.Example "
                                 f"({error}).")
        found = example.features.feature
        for name, (dtype, length) in expected.items():
            if name not in found:
                raise InputDataError(
                    f"{path}: the records have no feature {name!r} (they have "
                    f"{sorted(found)}). Pretraining needs the original schema, as "
                    "create_pretraining_data writes it.")
            feature = found[name]
            kind = feature.WhichOneof("kind")
            want_kind = "float_list" if dtype == tf.float32 else "int64_list"
            if kind != want_kind:
                raise InputDataError(
                    f"{path}: feature {name!r} is a {kind}, expected a {want_kind}.")
            count = len(getattr(feature, kind).value)
            if count != length:
                flag = {"seq": "--max_seq_length", "pred": "--max_predictions_per_seq"}.get(
                    PRETRAINING_FEATURES[name][1])
                hint = (f" The data were written with {flag}={count}: pass that, or re-create "
                        f"the data with {flag}={length}." if flag else "")
                raise InputDataError(
                    f"{path}: feature {name!r} has {count} values per record, the flags "
                    f"expect {length}.{hint}")


def parse_record(record, max_seq_length, max_predictions_per_seq):
    """One serialized example -> dict of int32 / float32 tensors ([S], [P] or [1])."""
    spec = {name: tf.io.FixedLenFeature([length], dtype)
            for name, (dtype, length) in
            feature_lengths(max_seq_length, max_predictions_per_seq).items()}
    example = tf.io.parse_single_example(record, spec)
    return {name: tf.cast(t, tf.int32) if t.dtype == tf.int64 else t
            for name, t in example.items()}


def pretraining_dataset(files, batch_size, max_seq_length, max_predictions_per_seq,
                        is_training, num_shards=1, shard_index=0, seed=None,
                        deterministic=None, length_buckets="default"):
    """A `tf.data.Dataset` of batches of pretraining features.

    Args:
      files: TFRecord paths (see `resolve_input_files`).
      batch_size: examples per batch produced here (per replica or per worker, as the
        caller splits the global batch); the last partial batch is dropped (original).
      max_seq_length, max_predictions_per_seq: the lengths the data were written with.
      is_training: shuffled, interleaved and repeated; otherwise files in order, repeated.
      num_shards, shard_index: this input pipeline's share (multi-worker): whole files
        when there are at least as many files as shards, else every num_shards-th record.
      seed: seeds the shuffles (reproducible order); None draws one, as the original.
      deterministic: interleave order; None means deterministic only when `seed` is set
        (the original reads files "sloppy", i.e. in whatever order they arrive).

      length_buckets: lengths a batch's `input_ids`, `input_mask` and `segment_ids` are cut
        to (the bucket of its longest instance; see `albert_tf.bucketing`); batches are not
        grouped by length (the masked-LM loss is normalised per token over the batch).

    Returns batches {feature: [batch_size, length]} with `next_sentence_labels` [batch, 1].
    """
    files = list(files)
    parse = lambda record: parse_record(record, max_seq_length, max_predictions_per_seq)
    if not is_training:
        records = tf.data.TFRecordDataset(files)
        if num_shards > 1:
            records = records.shard(num_shards, shard_index)
        records = records.repeat()
    else:
        if deterministic is None:
            deterministic = seed is not None
        shard_files = len(files) >= num_shards
        if num_shards > 1 and shard_files:
            files = files[shard_index::num_shards]
        names = tf.data.Dataset.from_tensor_slices(tf.constant(files))
        names = names.repeat().shuffle(len(files), seed=seed)
        records = names.interleave(
            tf.data.TFRecordDataset, cycle_length=min(CYCLE_LENGTH, len(files)),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
        if num_shards > 1 and not shard_files:
            records = records.shard(num_shards, shard_index)
        records = records.shuffle(SHUFFLE_BUFFER, seed=seed)
    dataset = records.map(parse, num_parallel_calls=tf.data.AUTOTUNE,
                          deterministic=True if not is_training else deterministic)
    dataset = bucketing.training_batches(
        dataset, batch_size, bucketing.bucket_lengths(max_seq_length, length_buckets),
        group_by_length=False)
    options = tf.data.Options()
    # Sharding is done above, per pipeline; tf.distribute must not shard again.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)
