"""What the model benchmarks share: configs, tf-models-official's encoder, timing, ratios.

Each benchmark script builds `run(n)` callables (n training or inference steps) for albert_tf
and for tf-models-official on the same config and batch, then `compare` times them in
alternating rounds, so that a busy machine slows both alike, and `print_comparison` prints
the medians and the ratio ours / theirs.
"""

import time

import numpy as np
import tensorflow as tf

from albert_tf.config import AlbertConfig
from albert_tf.optimization import ORIGINAL_EXCLUDE_FROM_WEIGHT_DECAY

OURS, THEIRS = "albert_tf", "tf-models-official"


def define_step_flags(steps, what="", predictions=False, peak_tflops=False):
    """Defines the flags of a benchmark that times train steps of a model: --config,
    --batch_size, --seq_length, --steps (default `steps`), --jit, and with `predictions`
    --max_predictions_per_seq (pretraining), with `peak_tflops` --peak_tflops (for MFU).
    `what` starts the help texts (e.g. "Fine-tuning ")."""
    from absl import flags

    def sentence(text):
        return text[0].upper() + text[1:]

    flags.DEFINE_string("config", "cpu_small", sentence(
        f"{what}model: a preset (base, large, xlarge, xxlarge), a JSON file, or cpu_small "
        "(H 256, 4 layers, V 30000: a size a CPU measures in minutes)."))
    flags.DEFINE_integer("batch_size", 8, sentence(f"{what}examples per step."))
    flags.DEFINE_integer("seq_length", 128, sentence(f"{what}tokens per example."))
    flags.DEFINE_integer("steps", steps, "Timed steps per measurement (after a warm-up call).")
    flags.DEFINE_list("jit", ["false", "true"], "jit_compile settings to time.")
    if predictions:
        flags.DEFINE_integer("max_predictions_per_seq", 20, "Masked positions per example.")
    if peak_tflops:
        flags.DEFINE_float("peak_tflops", None, "Peak TFLOP/s of the device for MFU (default: "
                           "albert_tf's table or the CPU estimate).")


def load_config(spec):
    """A preset name (base, large, xlarge, xxlarge; v2), a JSON file, or `cpu_small`
    (H 256, 4 layers, V 30000: a size a CPU measures in minutes)."""
    if spec == "cpu_small":
        return AlbertConfig(vocab_size=30000, embedding_size=128, hidden_size=256,
                            num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024)
    if spec.endswith(".json"):
        return AlbertConfig.from_json_file(spec)
    return AlbertConfig.preset(spec, version=2)


def describe(name, config):
    return (f"config={name} (H={config.hidden_size} L={config.num_hidden_layers} "
            f"V={config.vocab_size})")


def devices():
    return [d.name for d in tf.config.list_logical_devices()]


def tfm_initializer(config):
    import tf_keras
    return tf_keras.initializers.TruncatedNormal(stddev=config.initializer_range)


def tfm_encoder(config):
    """tf-models-official's AlbertEncoder with the same hyper-parameters (tf_keras)."""
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
        type_vocab_size=config.type_vocab_size, initializer=tfm_initializer(config),
        dict_outputs=True)


def tfm_inputs(batch):
    """tf-models-official's input names for a batch of ours."""
    return {"input_word_ids": batch["input_ids"], "input_mask": batch["input_mask"],
            "input_type_ids": batch["segment_ids"]}


def repeated(step, inputs, jit):
    """run(n): `step(inputs)` n times in one graph call (as a training loop runs it)."""
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


def compare(runs, batch_size, steps, rounds=1, ratio=(OURS, THEIRS)):
    """({name: median examples/s}, [ratio per round]) of {name: run(n)}.

    Each run is first called for 2 steps (tracing, compilation, warm-up); then `rounds`
    measurements of `steps` steps alternate between the runs. `ratio` names the two runs
    whose speed ratio (first / second) is returned, ours / theirs by default.
    """
    for run in runs.values():
        run(2)
    rates = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            rates[name].append(examples_per_second(run, batch_size, steps))
    ratios = [a / b for a, b in zip(rates[ratio[0]], rates[ratio[1]])]
    return {name: float(np.median(values)) for name, values in rates.items()}, ratios


def print_comparison(label, jit, medians, ratios, theirs_name=THEIRS, extra=""):
    rounds = (f" (per round: {', '.join(f'{r:.2f}' for r in ratios)})"
              if len(ratios) > 1 else "")
    print(f"{label} jit={str(jit):5s} {OURS} {medians[OURS]:8.2f} ex/s   "
          f"{theirs_name} {medians[THEIRS]:8.2f} ex/s   "
          f"ratio {np.median(ratios):.2f}x{rounds}{extra}", flush=True)


def pretraining_batch(config, batch_size, seq_length, predictions):
    """A pretraining batch in the original feature names: padded rows, unused predictions."""
    rng = np.random.default_rng(0)
    B, T, P = batch_size, seq_length, predictions
    mask = np.ones((B, T), np.int32)
    mask[B // 2:, T * 3 // 4:] = 0
    positions = np.sort(rng.choice(np.arange(1, T * 3 // 4), size=(B, P)), axis=1)
    weights = np.ones((B, P), np.float32)
    weights[:, P * 3 // 4:] = 0.0
    return {
        "input_ids": tf.constant(rng.integers(5, config.vocab_size, (B, T)), tf.int32),
        "input_mask": tf.constant(mask),
        "segment_ids": tf.constant((np.arange(T) >= T // 2).astype(np.int32)[None].repeat(B, 0)),
        "masked_lm_positions": tf.constant(positions.astype(np.int32)),
        "masked_lm_ids": tf.constant(rng.integers(5, config.vocab_size, (B, P)), tf.int32),
        "masked_lm_weights": tf.constant(weights),
        "next_sentence_labels": tf.constant(rng.integers(0, 2, (B, 1)), tf.int32),
    }


# tf_keras' policy of each --mixed_precision value.
TFM_POLICIES = {"none": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


def default_device():
    return "/gpu:0" if tf.config.list_logical_devices("GPU") else "/cpu:0"


def pretraining_run(config, batch, jit):
    """run(n): n steps of albert_tf's pretraining `Trainer` (`AlbertPretrainer`, the original
    LAMB) on one device, over `batch` repeated."""
    from albert_tf import training
    from albert_tf.heads import AlbertPretrainer
    from albert_tf.optimization import create_optimizer
    from albert_tf.pretraining import pretraining_batch_stats, pretraining_loss
    strategy = tf.distribute.OneDeviceStrategy(default_device())
    with strategy.scope():
        model = AlbertPretrainer(config)
        optimizer = create_optimizer(1e-4, 100000, 0, optimizer="lamb",
                                     aggregate_gradients=False)
        optimizer.build(model.trainable_variables)
    trainer = training.Trainer(strategy, model, optimizer, pretraining_loss,
                               pretraining_batch_stats, jit_compile=jit)
    iterator = iter(tf.data.Dataset.from_tensors(batch).repeat())
    return lambda n: trainer.train(iterator, n)


def tfm_pretraining_run(config, batch, jit, precision="none"):
    """run(n): n steps of tf-models-official's ALBERT pretrainer under `precision`
    (a --mixed_precision value).

    `networks.AlbertEncoder` + `models.BertPretrainerV2` (its masked-LM head) + a 2-way
    sentence-order layer on the pooled output, losses in float32 as the original, global-norm
    clipping at 1.0 and its LAMB (weight decay 0.01, the original exclusions); fp16 scales the
    loss with tf_keras' dynamic `LossScaleOptimizer`. With XLA the whole step is compiled.
    """
    import tf_keras
    from official.modeling import tf_utils
    from official.modeling.optimization import lamb
    from official.nlp.modeling import models

    previous = tf_keras.mixed_precision.global_policy()
    tf_keras.mixed_precision.set_global_policy(TFM_POLICIES[precision])
    try:
        with tf.device(default_device()):
            initializer = tfm_initializer(config)
            encoder = tfm_encoder(config)
            pretrainer = models.BertPretrainerV2(
                encoder, mlm_activation=tf_utils.get_activation(config.hidden_act),
                mlm_initializer=initializer)
            sentence_order = tf_keras.layers.Dense(2, kernel_initializer=initializer,
                                                   name="seq_relationship")
            sentence_order.build((None, config.hidden_size))
            optimizer = lamb.LAMB(
                learning_rate=1e-4, weight_decay_rate=0.01, epsilon=1e-6,
                exclude_from_weight_decay=list(ORIGINAL_EXCLUDE_FROM_WEIGHT_DECAY))
            if precision == "fp16":
                optimizer = tf_keras.mixed_precision.LossScaleOptimizer(optimizer)
            inputs = {**tfm_inputs(batch),
                      "masked_lm_positions": batch["masked_lm_positions"]}
            pretrainer(inputs)
    finally:
        tf_keras.mixed_precision.set_global_policy(previous)
    variables = pretrainer.trainable_variables + sentence_order.trainable_variables

    def step(features):
        with tf.GradientTape() as tape:
            outputs = pretrainer(features, training=True)
            log_probs = tf.nn.log_softmax(tf.cast(outputs["mlm_logits"], tf.float32), -1)
            ids, weights = batch["masked_lm_ids"], batch["masked_lm_weights"]
            nll = -tf.reduce_sum(tf.one_hot(ids, config.vocab_size) * log_probs, -1)
            mlm = tf.reduce_sum(weights * nll) / (tf.reduce_sum(weights) + 1e-5)
            sop_logits = tf.cast(sentence_order(outputs["pooled_output"]), tf.float32)
            labels = tf.reshape(batch["next_sentence_labels"], [-1])
            sop = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=labels, logits=sop_logits))
            loss = mlm + sop
            scaled = optimizer.get_scaled_loss(loss) if precision == "fp16" else loss
        grads = tape.gradient(scaled, variables)
        if precision == "fp16":
            grads = optimizer.get_unscaled_gradients(grads)
        grads, _ = tf.clip_by_global_norm(grads, 1.0)
        optimizer.apply_gradients(zip(grads, variables))
        return loss

    with tf.device(default_device()):
        return repeated(step, inputs, jit)
