"""Length buckets: batches cut to the tokens they hold instead of `max_seq_length`.

The paper's recipes pad every example to `--max_seq_length` (512 for GLUE and RACE, 384 for
SQuAD), though an SST-2 sentence has about 20 tokens. This module is the one home for what
avoids paying for that padding:

- `bucket_lengths`: the few fixed lengths a batch may be cut to (so that compiled steps are
  reused: XLA and TPUs see a handful of static shapes, not one per batch).
- `example_length` / `batch_length`: the real length of an example or a batch (one past the
  last position whose `input_mask` is 1; for RACE's [C, L] choices, the longest choice).
- `trim_to_bucket` / `trim`: cut a padded batch's per-token features (`SEQUENCE_FEATURES`, the
  last axis: [B, L] or RACE's [B, C, L]) to the bucket of its longest real sequence.
- `training_batches`: batches for training, optionally grouped so that each batch holds
  examples of one bucket (`group_by_length`); `prediction_parts`: every example of a finite
  dataset once, in batches of one bucket each, for evaluation and prediction.

Why the outputs do not change: every padded position has `input_mask` 0, so the attention
adds -10000 to its score and its softmax weight underflows to exactly 0; real positions see
the same numbers at any padding length (up to float32 rounding of the shorter sums). Position
vectors are rows 0..S-1 of the table, the same rows for the real tokens at any S.

What grouping changes (training): batches are formed from the shuffled stream by bucket
(`tf.data.Dataset.group_by_window`), so a batch holds examples of similar length. Every example
is still seen as often, and with a per-example mean loss (the fine-tuning losses) the expected
gradient is unchanged; the order of examples and the variance of a step's gradient change (a
batch is no longer a uniform mixture of lengths). A loss normalised per token over the batch
(the masked-LM loss) would weight short examples' tokens differently, so pretraining input is
cut to its bucket but not grouped. `group_by_length=False` keeps the original batch order
(batches are still cut, which does not change their numbers); `bucket_lengths(L, ())` (the
flag value `none`) turns cutting off as well.
"""

import numpy as np
import tensorflow as tf

from albert_tf.errors import UserError

# Per-token features, cut along their last axis.
SEQUENCE_FEATURES = ("input_ids", "input_mask", "segment_ids", "p_mask")

# The lengths a batch is cut to, below max_seq_length (which is always the last bucket).
DEFAULT_BUCKETS = (64, 128, 256)


class BucketError(UserError, ValueError):
    """Bucket lengths that are not positive integers (flag `--length_buckets`)."""


def parse_buckets(text):
    """The `--length_buckets` flag value -> a tuple of lengths.

    "default" -> `DEFAULT_BUCKETS`; "none", "off" or "" -> () (no cutting: every batch keeps
    max_seq_length); else comma-separated positive integers, e.g. "64,128,256". A sequence
    of ints is taken as those lengths (empty: no cutting).

    Raises:
      BucketError: a value that is not a positive integer.
    """
    if not isinstance(text, str):
        text = ",".join(str(length) for length in text) or "none"
    text = text.strip().lower()
    if text == "default":
        return DEFAULT_BUCKETS
    if text in ("", "none", "off"):
        return ()
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise BucketError(f"--length_buckets={text!r}: expected 'default', 'none' or "
                          "comma-separated positive lengths such as '64,128,256'.")
    return values


def bucket_lengths(max_seq_length, buckets=DEFAULT_BUCKETS):
    """The sorted lengths batches are cut to: `buckets` below `max_seq_length`, then it.

    Args:
      max_seq_length: the length the features were written with (int).
      buckets: candidate lengths (ints; () means no cutting), or a `--length_buckets` flag
        value (see `parse_buckets`).

    Returns a tuple of ints ending with `max_seq_length`, e.g. (64, 128, 256, 512) for 512.
    """
    max_seq_length = int(max_seq_length)
    if isinstance(buckets, str):
        buckets = parse_buckets(buckets)
    return tuple(sorted({int(b) for b in buckets if int(b) < max_seq_length})) + (
        max_seq_length,)


def _lengths_along_last_axis(mask):
    """[..., L] mask -> [...] int32: one past the last position with mask != 0 (0 if none)."""
    mask = tf.convert_to_tensor(mask)
    positions = tf.range(1, tf.shape(mask)[-1] + 1, dtype=tf.int32)
    return tf.reduce_max(tf.where(tf.not_equal(mask, 0), positions, 0), axis=-1)


def example_length(example):
    """Real length of one unbatched example (scalar int32) from its `input_mask`.

    `input_mask` [L], or [C, L] for multiple choice (the longest choice counts).
    """
    return tf.reduce_max(_lengths_along_last_axis(example["input_mask"]))


def batch_length(batch):
    """Real length of a batch (scalar int32): its longest example, from `input_mask`
    [B, L] or [B, C, L]."""
    return tf.reduce_max(_lengths_along_last_axis(batch["input_mask"]))


def bucket_index(length, buckets):
    """Index (int32 scalar) of the smallest bucket >= `length` in the sorted `buckets`."""
    table = tf.constant(buckets, tf.int32)
    index = tf.searchsorted(table, tf.reshape(tf.cast(length, tf.int32), [1]), side="left")[0]
    return tf.minimum(index, len(buckets) - 1)


def trim(features, length):
    """`features` with each of `SEQUENCE_FEATURES` cut to its first `length` positions
    (last axis). A Python int `length` gives a static shape; other features are unchanged."""
    out = dict(features)
    for name in SEQUENCE_FEATURES:
        if name in out:
            out[name] = out[name][..., :length]
    return out


def trim_to_bucket(batch, buckets):
    """`batch` cut to the smallest of `buckets` that holds its longest real sequence.

    Args:
      batch: dict with `input_mask` [B, L] or [B, C, L] and other features.
      buckets: sorted lengths from `bucket_lengths` (the last one is L).

    Returns the dict with `SEQUENCE_FEATURES` of length bucket <= L on the last axis.
    """
    if len(buckets) == 1:
        return batch
    length = tf.gather(tf.constant(buckets, tf.int32), bucket_index(batch_length(batch), buckets))
    return trim(batch, length)


def training_batches(dataset, batch_size, buckets, group_by_length=True, drop_remainder=True):
    """Batches for training from a (repeated, shuffled) dataset of unbatched examples.

    Args:
      dataset: examples with `input_mask` [L] or [C, L].
      batch_size: examples per batch.
      buckets: from `bucket_lengths`; one bucket means the original padded batches.
      group_by_length: form each batch from examples of one bucket (see the module
        docstring for what that changes); False keeps the original batch order.
      drop_remainder: as `tf.data.Dataset.batch`.

    Returns a dataset of batches whose `SEQUENCE_FEATURES` have one of `buckets` as length.
    """
    if len(buckets) == 1:
        return dataset.batch(batch_size, drop_remainder=drop_remainder)
    if group_by_length:
        dataset = dataset.group_by_window(
            key_func=lambda example: tf.cast(
                bucket_index(example_length(example), buckets), tf.int64),
            reduce_func=lambda _, window: window.batch(batch_size,
                                                       drop_remainder=drop_remainder),
            window_size=batch_size)
    else:
        dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    return dataset.map(lambda batch: trim_to_bucket(batch, buckets),
                       num_parallel_calls=tf.data.AUTOTUNE)


def bucket_counts(dataset, buckets):
    """Number of examples of a finite unbatched dataset in each bucket (list of ints)."""
    counts = dataset.map(lambda e: tf.one_hot(bucket_index(example_length(e), buckets),
                                              len(buckets), dtype=tf.int64),
                         num_parallel_calls=tf.data.AUTOTUNE)
    total = counts.reduce(tf.zeros([len(buckets)], tf.int64), lambda a, b: a + b)
    return [int(n) for n in total.numpy()]


def padding_example(spec, index_key="_example_index"):
    """An all-zero (empty-string) example of element spec `spec`, with `index_key` -1."""
    example = {name: (tf.fill(s.shape, "") if s.dtype == tf.string else tf.zeros(s.shape, s.dtype))
               for name, s in spec.items()}
    if index_key in example:
        example[index_key] = tf.constant(-1, spec[index_key].dtype)
    return example


def prediction_parts(dataset, batch_size, buckets, padding_example, num_examples=None):
    """Every example of a finite dataset once, as one padded, cut dataset per used bucket.

    Args:
      dataset: unbatched examples (feature dicts, fully defined shapes).
      batch_size: examples per batch; a bucket's last batch is completed with copies of
        `padding_example` (the original's `PaddingInputExample`, to be dropped by the caller).
      buckets: from `bucket_lengths`.
      padding_example: a dict like an example (e.g. all zeros, `_example_index` -1).
      num_examples: the dataset's size if known (used with one bucket; else counted).

    Returns a list of (length, num_batches, dataset of unbatched examples whose
    `SEQUENCE_FEATURES` have the static length `length`), in bucket order; a caller batches
    each by `batch_size` (or per-replica shares of it, consecutive batches forming a step)
    and so runs one static shape per bucket. With one bucket, the whole dataset in order.
    """
    counts = ([None] if len(buckets) == 1 else bucket_counts(dataset, buckets))
    padding = tf.data.Dataset.from_tensors(padding_example)
    parts = []
    for index, (length, count) in enumerate(zip(buckets, counts)):
        if count == 0:
            continue
        part = dataset
        if count is None:
            count = (num_examples if num_examples is not None else
                     int(dataset.reduce(tf.constant(0, tf.int64), lambda n, _: n + 1)))
        else:
            part = dataset.filter(lambda e, i=index: tf.equal(
                bucket_index(example_length(e), buckets), i))
        batches = -(-count // batch_size)
        part = part.concatenate(padding.repeat(batches * batch_size - count))
        parts.append((length, batches, part.map(lambda e, n=length: trim(e, n))))
    return parts


def concatenate_outputs(chunks):
    """{name: np.ndarray} per batch -> {name: [N, ...]}, batches of shorter buckets padded.

    Per-token outputs (e.g. SQuAD v1's `start_logits` [B, S]) of a batch cut to a bucket are
    padded back to the longest length among the batches: floats with float32's lowest value
    (a padded position never ranks among the best), integers with 0. Padded positions are
    not answer positions; their values at full padding were not read as answers either.
    """
    arrays = {}
    for name in chunks[0]:
        values = [np.asarray(c[name]) for c in chunks]
        shape = np.max([v.shape for v in values], axis=0)
        padded = []
        for v in values:
            widths = [(0, 0)] + [(0, int(n) - d) for n, d in zip(shape[1:], v.shape[1:])]
            if any(w for _, w in widths):
                fill = (np.finfo(np.float32).min if np.issubdtype(v.dtype, np.floating)
                        else 0)
                v = np.pad(v, widths, constant_values=np.asarray(fill).astype(v.dtype))
            padded.append(v)
        arrays[name] = np.concatenate(padded)
    return arrays
