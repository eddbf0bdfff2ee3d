"""Fine-tuning train-step throughput: albert_tf against tf-models-official's BertClassifier.

Both sides run the same work per step, on the same device, in one process, one run: the
ALBERT encoder forward and backward on one batch of sentence pairs, the pooled-output
classifier and its softmax cross-entropy, global-norm clipping at 1.0 and an AdamW update
with weight decay 0.01 and the original exclusions, on a linear warm-up/decay schedule.

- albert_tf: `AlbertClassifier` trained by `FineTuner.make_trainer` (the very `Trainer` that
  `FineTuner.train` and run_classifier.py run) with the GLUE loss of
  `albert_tf.tasks.glue`, on one device.
- tf-models-official: `networks.AlbertEncoder` in `models.BertClassifier`, its
  `official.nlp.optimization.create_optimizer("adamw")` (an AdamWeightDecay that clips to
  global norm 1.0 itself), in a `tf.function` train step;
  with XLA the whole step is compiled (its best case).

Dropout is off on both sides (the same computation). Each side runs `--steps` steps inside
one call after a warm-up call, with and without `jit_compile`, `--rounds` times, alternating
the two sides; the script prints the median examples/s and the median ratio ours / theirs.
tf-models-official (tf_keras) is imported here only.

    .venv/bin/python benchmarks/fine_tuning.py --config=cpu_small --batch_size=8 \
        --seq_length=128 --steps=10
"""
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import bench_common  # noqa: E402
from albert_tf import finetuning  # noqa: E402
from albert_tf.heads import AlbertClassifier  # noqa: E402
from albert_tf.tasks import glue, glue_task  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("config", "cpu_small",
                    "A preset (base, large, xlarge, xxlarge), a JSON file, or cpu_small "
                    "(H 256, 4 layers, V 30000: a size a CPU measures in minutes).")
flags.DEFINE_string("task", "mnli", "A GLUE task (its number of labels and loss).")
flags.DEFINE_integer("batch_size", 8, "Examples per step.")
flags.DEFINE_integer("seq_length", 128, "Tokens per example.")
flags.DEFINE_integer("steps", 10, "Timed steps per measurement (after a warm-up call).")
flags.DEFINE_list("jit", ["false", "true"], "jit_compile settings to time.")
flags.DEFINE_integer("rounds", 3,
                     "Measurements per side, alternating ours and theirs (so that a busy "
                     "machine slows both alike); the medians are reported.")



def make_batch(config, task, batch_size, seq_length):
    """Sentence pairs: half the rows padded from 3/4 of the length, segment 1 after 1/2."""
    rng = np.random.default_rng(0)
    B, T = batch_size, seq_length
    mask = np.ones((B, T), np.int32)
    mask[B // 2:, T * 3 // 4:] = 0
    labels = (rng.random(B).astype(np.float32) * 5 if task.is_regression
              else rng.integers(0, task.num_labels, B).astype(np.int32))
    return {
        "input_ids": tf.constant(rng.integers(5, config.vocab_size, (B, T)), tf.int32),
        "input_mask": tf.constant(mask),
        "segment_ids": tf.constant((np.arange(T) >= T // 2).astype(np.int32)[None].repeat(B, 0)),
        "label_ids": tf.constant(labels),
    }


def ours(config, task, batch, jit):
    """(run(n)) for albert_tf: the Trainer of FineTuner.train on one device."""
    settings = finetuning.FinetuningSettings(
        output_dir=tempfile.mkdtemp(prefix="albert_tf_bench_"), max_seq_length=batch[
            "input_ids"].shape[1], train_batch_size=batch["input_ids"].shape[0],
        learning_rate=3e-5, train_step=100000, warmup_step=1000, jit_compile=jit)
    tuner = finetuning.FineTuner(
        config, settings, lambda c: AlbertClassifier(c, task.num_labels, dropout_prob=0.0))
    trainer = tuner.make_trainer(glue_task.classifier_loss_fn(task))
    iterator = iter(tf.data.Dataset.from_tensors(batch).repeat())
    return lambda n: trainer.train(iterator, n)


def theirs(config, task, batch, jit):
    """(run(n)) for tf-models-official's BertClassifier on its AlbertEncoder, its AdamW."""
    from official.nlp import optimization
    from official.nlp.modeling import models

    initializer = bench_common.tfm_initializer(config)
    encoder = bench_common.tfm_encoder(config)
    classifier = models.BertClassifier(encoder, num_classes=task.num_labels,
                                       initializer=initializer, dropout_rate=0.0)
    optimizer = optimization.create_optimizer(3e-5, 100000, 1000, optimizer_type="adamw")
    inputs = bench_common.tfm_inputs(batch)
    classifier(inputs)
    variables = classifier.trainable_variables
    labels = batch["label_ids"]

    def step(features):
        with tf.GradientTape() as tape:
            logits = tf.cast(classifier(features, training=True), tf.float32)
            if task.is_regression:
                loss = tf.reduce_mean(tf.square(tf.squeeze(logits, -1) - labels))
            else:
                loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                    labels=labels, logits=logits))
        # Its AdamWeightDecay clips to global norm 1.0 itself (gradient_clip_norm).
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    return bench_common.repeated(step, inputs, jit)



def main(_):
    config = bench_common.load_config(FLAGS.config)
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    task = glue.get_task(FLAGS.task)
    B, T = FLAGS.batch_size, FLAGS.seq_length
    batch = make_batch(config, task, B, T)
    print(f"{bench_common.describe(FLAGS.config, config)} task={task.name} "
          f"({task.num_labels} output(s)) batch={B} seq={T} steps={FLAGS.steps} "
          f"devices={bench_common.devices()}")
    for jit in [j.strip().lower() == "true" for j in FLAGS.jit]:
        runs = {bench_common.OURS: ours(config, task, batch, jit),
                bench_common.THEIRS: theirs(config, task, batch, jit)}
        medians, ratios = bench_common.compare(runs, B, FLAGS.steps, FLAGS.rounds)
        bench_common.print_comparison("fine-tuning step", jit, medians, ratios)


if __name__ == "__main__":
    app.run(main)
