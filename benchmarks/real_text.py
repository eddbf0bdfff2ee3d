"""Fine-tuning, evaluation and prediction on realistic lengths: static padding vs buckets.

The paper's GLUE recipes pad every example to --max_seq_length=512. This script builds
examples whose lengths follow a task's published length statistics, with real text, and
times, at --max_seq_lengths (128 and 512):

- `static`: every batch padded to max_seq_length (`--length_buckets=none`, the original);
- `bucketed`: batches cut to `albert_tf.bucketing`'s buckets (training batches grouped by
  bucket; evaluation and prediction one bucket at a time, as `FineTuner.predict`);
- `tfm`: tf-models-official's `AlbertEncoder` (+ a dense classifier on the pooled output) on
  the same bucketed batches.

Work per measurement: `--train_steps` training steps (forward, backward, Adam update) of
`--train_batch_size` examples, then one evaluation pass and one prediction pass over
`--eval_examples` examples in batches of `--eval_batch_size` (the two passes are the same
computation; both are timed, as run_classifier runs both). Variants alternate within each
round, so a busy machine slows them alike.

Lengths. Approximate published statistics, in words: SST-2 sentences average about 19 words
(standard deviation about 9, at most about 55; Socher et al. 2013's Stanford Sentiment
Treebank); MNLI premises about 22 words and hypotheses about 11 (Williams et al. 2018), a
pair about 33 words (standard deviation about 14). Word counts are drawn from a log-normal
with that mean and deviation, clipped to the maximum, turned into tokens at
--tokens_per_word (1.3, about what ALBERT's 30k SentencePiece vocabulary gives on English;
the 1k-piece test model of tests/fixtures, which tokenizes the text here, splits more and is
reported for comparison), plus [CLS]/[SEP]. Each example's tokens are the next stretch of
the embedded corpus (data/corpus) tokenized: real token ids; only the lengths matter to
the cost.

Goal: at 512, bucketed within 1.5x of the 128 path and at least 4x faster than static on
SST-2-like lengths.

    .venv/bin/python benchmarks/real_text.py --config=cpu_small --tasks=sst2,mnli
"""
import gzip
import os
import pathlib
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import bench_common  # noqa: E402
from albert_tf import bucketing  # noqa: E402
from albert_tf.heads import AlbertClassifier  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
FLAGS = flags.FLAGS
flags.DEFINE_string("config", "cpu_small", "A preset (base, ...), a JSON file or cpu_small.")
flags.DEFINE_list("tasks", ["sst2", "mnli"], "Length profiles: sst2, mnli.")
flags.DEFINE_list("max_seq_lengths", ["128", "512"], "Padded lengths to compare.")
flags.DEFINE_integer("train_steps", 3, "Training steps per measurement.")
flags.DEFINE_integer("train_batch_size", 8, "Training batch.")
flags.DEFINE_integer("eval_examples", 48, "Examples scored by evaluation and by prediction.")
flags.DEFINE_integer("eval_batch_size", 16, "Evaluation / prediction batch.")
flags.DEFINE_integer("rounds", 1, "Alternating rounds (medians are printed).")
flags.DEFINE_list("variants", ["static", "bucketed", "tfm"], "What to time.")
flags.DEFINE_float("tokens_per_word", 1.3, "SentencePiece tokens per word of the vocabulary "
                   "the lengths are for (ALBERT's 30k vocabulary: about 1.3).")

# (mean words, standard deviation, max words) of an example (both segments of a pair).
LENGTH_PROFILES = {"sst2": (19.0, 9.0, 55), "mnli": (33.0, 14.0, 110)}


def corpus_tokens(limit_lines=20000):
    """The embedded corpus as SentencePiece ids, and the measured tokens per word."""
    import sentencepiece as spm
    processor = spm.SentencePieceProcessor(
        model_file=str(ROOT / "tests/fixtures/original_tokenizer/spm1k.model"))
    with gzip.open(ROOT / "data/corpus/docstrings_train.txt.gz", "rt", encoding="utf-8") as f:
        lines = [line.strip() for _, line in zip(range(limit_lines), f) if line.strip()]
    ids = processor.encode(lines)
    words = sum(len(line.split()) for line in lines)
    stream = np.concatenate([np.asarray(x, np.int32) for x in ids])
    return stream, len(stream) / words


def lengths_for(task, count, tokens_per_word, seed):
    """Token lengths (with [CLS]/[SEP]) drawn from the task's log-normal length profile."""
    mean, std, most = LENGTH_PROFILES[task]
    sigma2 = np.log(1 + (std / mean) ** 2)
    words = np.random.default_rng(seed).lognormal(np.log(mean) - sigma2 / 2, np.sqrt(sigma2),
                                                  count)
    words = np.clip(np.round(words), 2, most)
    specials = 3 if task == "mnli" else 2
    return (np.round(words * tokens_per_word) + specials).astype(np.int32)


def examples(task, lengths, max_seq_length, stream, offset=0):
    """Padded features {input_ids, input_mask, segment_ids [N, L], label_ids [N]}."""
    n = len(lengths)
    ids = np.zeros((n, max_seq_length), np.int32)
    mask = np.zeros_like(ids)
    segments = np.zeros_like(ids)
    position = offset
    for i, length in enumerate(np.minimum(lengths, max_seq_length)):
        body = stream[position % (len(stream) - max_seq_length):][:length - 2] + 5
        position += length
        ids[i, 0], ids[i, 1:length - 1], ids[i, length - 1] = 2, body, 3
        mask[i, :length] = 1
        if task == "mnli":
            segments[i, length // 3:length] = 1
    return {"input_ids": ids, "input_mask": mask, "segment_ids": segments,
            "label_ids": (np.arange(n) % 2).astype(np.int32)}


class Ours:
    """albert_tf's classifier: a train step and an inference step (tf.function each)."""

    def __init__(self, config):
        self.model = AlbertClassifier(config, 2)
        self.optimizer = tf.keras.optimizers.Adam(1e-5)
        self.optimizer.build(self.model.trainable_variables)
        self.train_step = tf.function(self._train)
        self.infer_step = tf.function(lambda batch: self.model(batch)["logits"])

    def _train(self, batch):
        with tf.GradientTape() as tape:
            logits = self.model(batch, training=True)["logits"]
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                batch["label_ids"], logits))
        variables = self.model.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss


class Theirs(Ours):
    """tf-models-official's AlbertEncoder + a dense layer on the pooled output (tf_keras)."""

    def __init__(self, config):
        import tf_keras
        self.encoder = bench_common.tfm_encoder(config)
        self.dense = tf_keras.layers.Dense(2)
        self.dense.build((None, config.hidden_size))
        self.optimizer = tf_keras.optimizers.Adam(1e-5)
        self.train_step = tf.function(self._train)
        self.infer_step = tf.function(lambda batch: self._logits(batch, False))

    def _logits(self, batch, training):
        pooled = self.encoder(bench_common.tfm_inputs(batch), training=training)["pooled_output"]
        return self.dense(pooled)

    def _train(self, batch):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                batch["label_ids"], self._logits(batch, True)))
        variables = self.encoder.trainable_variables + self.dense.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss


def train_batches(data, batch_size, buckets, steps):
    dataset = tf.data.Dataset.from_tensor_slices(data).repeat().shuffle(100, seed=1)
    return list(bucketing.training_batches(dataset, batch_size, buckets).take(steps))


def eval_batches(data, batch_size, buckets):
    """Every example once, in batches of one bucket (as `FineTuner.predict`)."""
    dataset = tf.data.Dataset.from_tensor_slices(data)
    padding = bucketing.padding_example(dataset.element_spec)
    batches = []
    for _, count, part in bucketing.prediction_parts(dataset, batch_size, buckets, padding,
                                                     len(data["label_ids"])):
        batches += list(part.batch(batch_size).take(count))
    return batches


def timed(runner, train, evaluation):
    """(train seconds, evaluation + prediction seconds); the steps were traced before."""
    start = time.perf_counter()
    for batch in train:
        runner.train_step(batch).numpy()
    middle = time.perf_counter()
    for _ in range(2):   # evaluation, then prediction
        for batch in evaluation:
            runner.infer_step(batch).numpy()
    return middle - start, time.perf_counter() - middle


def warm_up(runner, batches):
    """Traces each distinct shape once (a compiled step per bucket) outside the timing."""
    seen = set()
    for kind, batch in batches:
        shape = (kind, tuple(batch["input_ids"].shape))
        if shape not in seen:
            seen.add(shape)
            (runner.train_step if kind == "train" else runner.infer_step)(batch)
    return len(seen)


def main(_):
    config = bench_common.load_config(FLAGS.config)
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    stream, tokens_per_word = corpus_tokens()
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} on "
          f"{os.cpu_count()} CPUs; {bench_common.describe(FLAGS.config, config)}; "
          f"{FLAGS.tokens_per_word} tokens per word (the 1k-piece test model: "
          f"{tokens_per_word:.2f} on data/corpus)")
    runners = {"static": Ours(config), "bucketed": None, "tfm": None}
    runners["bucketed"] = runners["static"]   # the same model; only the batches differ
    if "tfm" in FLAGS.variants:
        runners["tfm"] = Theirs(config)
    results = {}
    for task in FLAGS.tasks:
        train_lengths = lengths_for(task, FLAGS.train_steps * FLAGS.train_batch_size * 4,
                                    FLAGS.tokens_per_word, seed=1)
        eval_lengths = lengths_for(task, FLAGS.eval_examples, FLAGS.tokens_per_word, seed=2)
        print(f"{task}: tokens per example mean {eval_lengths.mean():.1f}, "
              f"95th percentile {np.percentile(eval_lengths, 95):.0f}, "
              f"max {eval_lengths.max()}")
        for max_seq_length in [int(x) for x in FLAGS.max_seq_lengths]:
            train_data = examples(task, train_lengths, max_seq_length, stream)
            eval_data = examples(task, eval_lengths, max_seq_length, stream, offset=12345)
            batches = {}
            for variant in FLAGS.variants:
                buckets = bucketing.bucket_lengths(
                    max_seq_length, () if variant == "static" else bucketing.DEFAULT_BUCKETS)
                batches[variant] = (
                    train_batches(train_data, FLAGS.train_batch_size, buckets,
                                  FLAGS.train_steps),
                    eval_batches(eval_data, FLAGS.eval_batch_size, buckets))
                shapes = warm_up(runners[variant],
                                 [("train", b) for b in batches[variant][0]]
                                 + [("eval", b) for b in batches[variant][1]])
                print(f"  {task} L={max_seq_length} {variant}: {shapes} step shapes traced",
                      flush=True)
            times = {variant: [] for variant in FLAGS.variants}
            for _ in range(FLAGS.rounds):
                for variant in FLAGS.variants:
                    times[variant].append(timed(runners[variant], *batches[variant]))
            for variant, values in times.items():
                train_s, eval_s = np.median(np.array(values), axis=0)
                results[task, max_seq_length, variant] = (train_s, eval_s)
                print(f"  {task} L={max_seq_length:4d} {variant:9s} train {train_s:7.2f} s  "
                      f"eval+predict {eval_s:7.2f} s  total {train_s + eval_s:7.2f} s",
                      flush=True)
    print("ratios (total time; > 1 means the second is faster):")
    lengths = [int(x) for x in FLAGS.max_seq_lengths]
    total = {key: sum(value) for key, value in results.items()}
    for task in FLAGS.tasks:
        for L in lengths:
            if (task, L, "static") in total and (task, L, "bucketed") in total:
                print(f"  {task} L={L}: static / bucketed "
                      f"{total[task, L, 'static'] / total[task, L, 'bucketed']:.2f}x")
            if (task, L, "tfm") in total and (task, L, "bucketed") in total:
                print(f"  {task} L={L}: tf-models-official / albert_tf (same batches) "
                      f"{total[task, L, 'tfm'] / total[task, L, 'bucketed']:.2f}x")
        small, big = min(lengths), max(lengths)
        if (task, big, "bucketed") in total and (task, small, "static") in total:
            print(f"  {task}: bucketed at {big} / static at {small} "
                  f"{total[task, big, 'bucketed'] / total[task, small, 'static']:.2f}x "
                  "(goal <= 1.5)")
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    app.run(main)
