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
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from albert_tf import finetuning  # noqa: E402
from albert_tf.config import AlbertConfig  # noqa: E402
from albert_tf.heads import AlbertClassifier  # noqa: E402
from albert_tf.tasks import glue  # noqa: E402

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


def load_config(spec):
    if spec == "cpu_small":
        return AlbertConfig(vocab_size=30000, embedding_size=128, hidden_size=256,
                            num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024)
    if spec.endswith(".json"):
        return AlbertConfig.from_json_file(spec)
    return AlbertConfig.preset(spec, version=2)


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
    trainer = tuner.make_trainer(glue.classifier_loss_fn(task))
    iterator = iter(tf.data.Dataset.from_tensors(batch).repeat())
    return lambda n: trainer.train(iterator, n)


def theirs(config, task, batch, jit):
    """(run(n)) for tf-models-official's BertClassifier on its AlbertEncoder, its AdamW."""
    import tf_keras
    from official.modeling import tf_utils
    from official.nlp import optimization
    from official.nlp.modeling import models, networks

    initializer = tf_keras.initializers.TruncatedNormal(stddev=config.initializer_range)
    encoder = networks.AlbertEncoder(
        vocab_size=config.vocab_size, hidden_size=config.hidden_size,
        embedding_width=config.embedding_size, num_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        intermediate_size=config.intermediate_size,
        activation=tf_utils.get_activation(config.hidden_act),
        dropout_rate=config.hidden_dropout_prob,
        attention_dropout_rate=config.attention_probs_dropout_prob,
        max_sequence_length=config.max_position_embeddings,
        type_vocab_size=config.type_vocab_size, initializer=initializer, dict_outputs=True)
    classifier = models.BertClassifier(encoder, num_classes=task.num_labels,
                                       initializer=initializer, dropout_rate=0.0)
    optimizer = optimization.create_optimizer(3e-5, 100000, 1000, optimizer_type="adamw")
    inputs = {"input_word_ids": batch["input_ids"], "input_mask": batch["input_mask"],
              "input_type_ids": batch["segment_ids"]}
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

    step = tf.function(step, jit_compile=jit)

    @tf.function
    def loop(n):
        total = step(inputs)
        for _ in tf.range(n - 1):
            total += step(inputs)
        return total

    return lambda n: float(loop(tf.constant(n)))


def examples_per_second(run, batch_size, steps):
    start = time.perf_counter()
    run(steps)
    return batch_size * steps / (time.perf_counter() - start)


def main(_):
    config = load_config(FLAGS.config)
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    task = glue.get_task(FLAGS.task)
    B, T = FLAGS.batch_size, FLAGS.seq_length
    batch = make_batch(config, task, B, T)
    print(f"config={FLAGS.config} (H={config.hidden_size} L={config.num_hidden_layers} "
          f"V={config.vocab_size}) task={task.name} ({task.num_labels} output(s)) batch={B} "
          f"seq={T} steps={FLAGS.steps} "
          f"devices={[d.name for d in tf.config.list_logical_devices()]}")
    for jit in [j.strip().lower() == "true" for j in FLAGS.jit]:
        runs = {"albert_tf": ours(config, task, batch, jit),
                "tf-models-official": theirs(config, task, batch, jit)}
        for run in runs.values():
            run(2)  # trace, compile and warm up
        rates = {name: [] for name in runs}
        for _ in range(FLAGS.rounds):
            for name, run in runs.items():
                rates[name].append(examples_per_second(run, B, FLAGS.steps))
        ratios = [a / b for a, b in zip(rates["albert_tf"], rates["tf-models-official"])]
        median = {name: float(np.median(values)) for name, values in rates.items()}
        print(f"fine-tuning step jit={str(jit):5s} albert_tf {median['albert_tf']:8.2f} ex/s   "
              f"tf-models-official {median['tf-models-official']:8.2f} ex/s   "
              f"ratio {np.median(ratios):.2f}x (per round: "
              f"{', '.join(f'{r:.2f}' for r in ratios)})", flush=True)


if __name__ == "__main__":
    app.run(main)
