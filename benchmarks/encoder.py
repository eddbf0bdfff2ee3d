"""Encoder throughput: albert_tf's AlbertModel against tf-models-official's AlbertEncoder.

Same config, same batch, same device, one process, one run; prints examples/s for the forward
pass and for forward + backward, with and without XLA (`jit_compile`), and the ratios
ours / tf-models-official: medians of `--rounds` measurements alternating the two sides, each
`--steps` steps inside one graph call.

    .venv/bin/python benchmarks/encoder.py --config=base --batch_size=8 --seq_length=128
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import bench_common  # noqa: E402
from albert_tf import AlbertModel  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("config", "base",
                    "A preset (base, large, xlarge, xxlarge), a JSON file, or cpu_small.")
flags.DEFINE_integer("batch_size", 8, "Examples per step.")
flags.DEFINE_integer("seq_length", 128, "Tokens per example.")
flags.DEFINE_integer("steps", 10, "Timed steps per measurement (after 2 warm-up steps).")
flags.DEFINE_integer("rounds", 3,
                     "Measurements per side, alternating ours and theirs; medians reported.")
flags.DEFINE_list("modes", ["forward", "train"], "What to time: forward, train (fwd + bwd).")
flags.DEFINE_list("jit", ["false", "true"], "jit_compile settings to time.")


def make_step(call, variables, mode):
    """step(inputs) -> a scalar: the forward pass, or forward and backward ("train")."""
    if mode == "forward":
        return lambda inputs: tf.reduce_sum(call(inputs, False))

    def step(inputs):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(call(inputs, True))
        grads = tape.gradient(loss, variables)
        return loss + tf.add_n([tf.reduce_sum(g) for g in grads if g is not None])
    return step


def main(_):
    config = bench_common.load_config(FLAGS.config)
    # Dropout off in both, so the comparison is the same computation.
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    rng = np.random.default_rng(0)
    B, T = FLAGS.batch_size, FLAGS.seq_length
    mask = np.ones((B, T), np.int32)
    mask[B // 2:, T * 3 // 4:] = 0
    batch = {"input_ids": tf.constant(rng.integers(5, config.vocab_size, (B, T)), tf.int32),
             "input_mask": tf.constant(mask), "segment_ids": tf.zeros((B, T), tf.int32)}

    ours = AlbertModel(config)
    ours(batch)
    theirs = bench_common.tfm_encoder(config)
    theirs(bench_common.tfm_inputs(batch))
    candidates = {
        bench_common.OURS: (lambda x, training: ours(x, training=training)["sequence_output"],
                            ours.trainable_variables, batch),
        bench_common.THEIRS: (
            lambda x, training: theirs(x, training=training)["sequence_output"],
            theirs.trainable_variables, bench_common.tfm_inputs(batch)),
    }
    print(f"{bench_common.describe(FLAGS.config, config)} batch={B} seq={T} "
          f"steps={FLAGS.steps} devices={bench_common.devices()}")
    for mode in FLAGS.modes:
        for jit in [j.strip().lower() == "true" for j in FLAGS.jit]:
            runs = {name: bench_common.repeated(make_step(call, variables, mode), inputs, jit)
                    for name, (call, variables, inputs) in candidates.items()}
            medians, ratios = bench_common.compare(runs, B, FLAGS.steps, FLAGS.rounds)
            bench_common.print_comparison(f"{mode:8s}", jit, medians, ratios)


if __name__ == "__main__":
    app.run(main)
