"""Encoder throughput: albert_tf's AlbertModel against tf-models-official's AlbertEncoder.

Same config, same batch, same device, one process, one run; prints examples/s for the forward
pass and for forward + backward, with and without XLA (`jit_compile`), and the ratios
ours / tf-models-official.

    .venv/bin/python benchmarks/encoder.py --config=base --batch_size=8 --seq_length=128
"""
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from albert_tf import AlbertConfig, AlbertModel  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("config", "base", "A preset (base, large, xlarge, xxlarge) or a JSON file.")
flags.DEFINE_integer("batch_size", 8, "Examples per step.")
flags.DEFINE_integer("seq_length", 128, "Tokens per example.")
flags.DEFINE_integer("steps", 10, "Timed steps per measurement (after 2 warm-up steps).")
flags.DEFINE_list("modes", ["forward", "train"], "What to time: forward, train (fwd + bwd).")
flags.DEFINE_list("jit", ["false", "true"], "jit_compile settings to time.")


def load_config(spec):
    if spec.endswith(".json"):
        return AlbertConfig.from_json_file(spec)
    return AlbertConfig.preset(spec, version=2)


def tfm_encoder(config):
    """tf-models-official's AlbertEncoder with the same hyper-parameters (tf_keras)."""
    import tf_keras
    from official.modeling import tf_utils
    from official.nlp.modeling import networks
    return networks.AlbertEncoder(
        vocab_size=config.vocab_size, hidden_size=config.hidden_size,
        embedding_width=config.embedding_size, num_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        intermediate_size=config.intermediate_size,
        activation=tf_utils.get_activation(config.hidden_act),
        dropout_rate=config.hidden_dropout_prob,
        attention_dropout_rate=config.attention_probs_dropout_prob,
        max_sequence_length=config.max_position_embeddings,
        type_vocab_size=config.type_vocab_size,
        initializer=tf_keras.initializers.TruncatedNormal(stddev=config.initializer_range),
        dict_outputs=True)


def make_step(call, variables, mode, jit):
    if mode == "forward":
        def step(inputs):
            return tf.reduce_sum(call(inputs, False))
    else:
        def step(inputs):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(call(inputs, True))
            grads = tape.gradient(loss, variables)
            return loss + tf.add_n([tf.reduce_sum(g) for g in grads if g is not None])
    return tf.function(step, jit_compile=jit)


def time_step(step, inputs, steps):
    for _ in range(2):
        step(inputs).numpy()
    start = time.perf_counter()
    for _ in range(steps):
        step(inputs).numpy()
    return time.perf_counter() - start


def main(_):
    config = load_config(FLAGS.config)
    # Dropout off in both, so the comparison is the same computation.
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    rng = np.random.default_rng(0)
    B, T = FLAGS.batch_size, FLAGS.seq_length
    ids = rng.integers(5, config.vocab_size, size=(B, T)).astype(np.int32)
    mask = np.ones((B, T), np.int32)
    mask[B // 2:, T * 3 // 4:] = 0
    segments = np.zeros((B, T), np.int32)

    ours = AlbertModel(config)
    theirs = tfm_encoder(config)
    candidates = {
        "albert_tf": (lambda x, training: ours(
            {"input_ids": x[0], "input_mask": x[1], "segment_ids": x[2]},
            training=training)["sequence_output"], ours.trainable_variables),
        "tf-models-official": (lambda x, training: theirs(
            {"input_word_ids": x[0], "input_mask": x[1], "input_type_ids": x[2]},
            training=training)["sequence_output"], None),
    }
    inputs = (tf.constant(ids), tf.constant(mask), tf.constant(segments))
    theirs(dict(input_word_ids=inputs[0], input_mask=inputs[1], input_type_ids=inputs[2]))
    candidates["tf-models-official"] = (candidates["tf-models-official"][0],
                                        theirs.trainable_variables)

    print(f"config={FLAGS.config} batch={B} seq={T} steps={FLAGS.steps} "
          f"devices={[d.name for d in tf.config.list_logical_devices()]}")
    for mode in FLAGS.modes:
        for jit in [j.lower() == "true" for j in FLAGS.jit]:
            rates = {}
            for name, (call, variables) in candidates.items():
                seconds = time_step(make_step(call, variables, mode, jit), inputs, FLAGS.steps)
                rates[name] = B * FLAGS.steps / seconds
            ratio = rates["albert_tf"] / rates["tf-models-official"]
            print(f"{mode:8s} jit={str(jit):5s} albert_tf {rates['albert_tf']:8.1f} ex/s   "
                  f"tf-models-official {rates['tf-models-official']:8.1f} ex/s   "
                  f"ratio {ratio:.2f}x")


if __name__ == "__main__":
    app.run(main)
