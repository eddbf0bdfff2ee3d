"""tf-models-official's ALBERT pretrained with the original recipe: the independent run
that the main job's tfm_check step (albert_tf/demo/tfm_check.py) compares its masked-LM loss
curve with.

    python benchmarks/tfm_pretraining.py REQUEST.json RESULT.json

reads what to run from REQUEST.json (`run_request`'s keys) and writes `tfm_pretrain`'s
result to RESULT.json; the demo runs it so, in its own process. It lives beside the
benchmarks, outside the library, because tf-models-official is built on tf_keras, which
`albert_tf` never imports or runs. The encoder, its masked-LM head
(`models.BertPretrainerV2`) and the 2-way sentence-order layer are built as
`bench_common.py` builds them; the recipe is the original's (losses, clipping at 1.0, LAMB
with weight decay 0.01 skipped for LayerNorm/bias, linear warm-up then linear decay). Its
LAMB divides the moments by 1 - beta^t (Adam's bias correction) where the original's does
not; `bias_correction=False` (the main job's default) removes that one difference.
"""

import importlib.util
import pathlib
import time
import warnings


def _load_bench_common():
    # Loaded by path: this file is itself loaded by path from the demo.
    path = pathlib.Path(__file__).with_name("bench_common.py")
    spec = importlib.util.spec_from_file_location("bench_common", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench_common = _load_bench_common()


def _original_schedule(learning_rate, num_train_steps, num_warmup_steps):
    """The original's learning rate as a tf_keras schedule: lr0 * step / W in warm-up,
    else lr0 * (1 - step / N) (ALBERT's optimization.py, poly_power 1, end 0)."""
    import tensorflow as tf
    import tf_keras

    class OriginalSchedule(tf_keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step):
            step = tf.cast(step, tf.float32)
            decayed = learning_rate * (1.0 - tf.minimum(step, num_train_steps) / num_train_steps)
            if not num_warmup_steps:
                return decayed
            warmup = learning_rate * step / num_warmup_steps
            return tf.where(step < num_warmup_steps, warmup, decayed)

        def get_config(self):
            return {}

    return OriginalSchedule()


def _lamb(bias_correction, **kwargs):
    """tf-models-official's LAMB; with `bias_correction=False` its moments are used as the
    original's LAMB uses them (ALBERT's lamb_optimizer.py: m / (sqrt(v) + epsilon), no
    division by 1 - beta^t), everything else (trust ratio, weight decay, exclusions) its own."""
    from official.modeling.optimization import lamb

    if bias_correction:
        return lamb.LAMB(**kwargs)

    class LambWithoutBiasCorrection(lamb.LAMB):
        def _prepare_local(self, var_device, var_dtype, apply_state):
            import tensorflow as tf

            super()._prepare_local(var_device, var_dtype, apply_state)
            state = apply_state[(var_device, var_dtype)]
            # m_hat = m / (1 - beta_1^t) becomes m / 1 (and the same for v).
            state["beta_1_power"] = tf.zeros_like(state["beta_1_power"])
            state["beta_2_power"] = tf.zeros_like(state["beta_2_power"])

    return LambWithoutBiasCorrection(**kwargs)


def tfm_pretrain(config, input_files, heldout_files, settings, num_eval_batches, log_dir,
                 bias_correction=False):
    """Pretrains tf-models-official's ALBERT; returns figures and the logged curves.

    Args:
      config: our `AlbertConfig` (the same hyper-parameters are given to AlbertEncoder).
      input_files, heldout_files: TFRecord paths of the training and held-out records.
      settings: our `PretrainingSettings` (batch, steps, learning rate, warm-up, seed,
        log_steps, eval_batch_size).
      num_eval_batches: held-out batches evaluated at the end.
      log_dir: TensorBoard folder of the training scalars.
      bias_correction: keep the Adam bias correction of tf-models-official's LAMB (as
        shipped); False updates with the raw moments, as the original's LAMB does.

    Returns {"curves": {tag: [(step, mean over the window)]}, "heldout": {masked_lm_loss,
    masked_lm_accuracy}, "seconds_per_step": float}.
    """
    import tensorflow as tf
    import tf_keras
    from official.modeling import tf_utils
    from official.nlp.modeling import models

    from albert_tf import summaries
    from albert_tf.optimization import ORIGINAL_EXCLUDE_FROM_WEIGHT_DECAY
    from albert_tf.pretraining_data_input import pretraining_dataset

    s = settings
    tf_keras.utils.set_random_seed(s.seed)
    initializer = bench_common.tfm_initializer(config)
    pretrainer = models.BertPretrainerV2(
        bench_common.tfm_encoder(config), mlm_activation=tf_utils.get_activation(config.hidden_act),
        mlm_initializer=initializer)
    sentence_order = tf_keras.layers.Dense(2, kernel_initializer=initializer,
                                           name="seq_relationship")
    sentence_order.build((None, config.hidden_size))
    optimizer = _lamb(
        bias_correction,
        learning_rate=_original_schedule(s.learning_rate, s.num_train_steps,
                                         s.num_warmup_steps),
        weight_decay_rate=0.01, epsilon=1e-6,
        exclude_from_weight_decay=list(ORIGINAL_EXCLUDE_FROM_WEIGHT_DECAY))

    def forward(batch, training):
        outputs = pretrainer({**bench_common.tfm_inputs(batch),
                              "masked_lm_positions": batch["masked_lm_positions"]},
                             training=training)
        log_probs = tf.nn.log_softmax(tf.cast(outputs["mlm_logits"], tf.float32), -1)
        ids, weights = batch["masked_lm_ids"], batch["masked_lm_weights"]
        nll = -tf.reduce_sum(tf.one_hot(ids, config.vocab_size) * log_probs, -1)
        mlm = tf.reduce_sum(weights * nll) / (tf.reduce_sum(weights) + 1e-5)
        correct = tf.reduce_sum(weights * tf.cast(
            tf.equal(tf.argmax(log_probs, -1, output_type=tf.int32), ids), tf.float32))
        sop_logits = tf.cast(sentence_order(outputs["pooled_output"]), tf.float32)
        labels = tf.reshape(batch["next_sentence_labels"], [-1])
        sop = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=labels, logits=sop_logits))
        return {"loss": mlm + sop, "masked_lm_loss": mlm, "sentence_order_loss": sop,
                "masked_lm_correct": correct, "masked_lm_weight": tf.reduce_sum(weights)}

    @tf.function
    def train_step(batch):
        variables = pretrainer.trainable_variables + sentence_order.trainable_variables
        with tf.GradientTape() as tape:
            values = forward(batch, True)
        grads = tape.gradient(values["loss"], variables)
        grads, _ = tf.clip_by_global_norm(grads, 1.0)
        optimizer.apply_gradients(zip(grads, variables))
        return {k: values[k] for k in ("loss", "masked_lm_loss", "sentence_order_loss")}

    dataset = pretraining_dataset(input_files, s.train_batch_size, s.max_seq_length,
                                  s.max_predictions_per_seq, is_training=True, seed=s.seed)
    with warnings.catch_warnings():
        # The encoder ignores the masked-LM positions the pretrainer reads, and says so.
        warnings.simplefilter("ignore", UserWarning)
        # Variables are created eagerly, before the step is traced (tf_keras models).
        forward(next(iter(dataset)), False)
    writer = summaries.file_writer(log_dir)
    meter = summaries.ProgressMeter(s.num_train_steps, s.train_batch_size, s.max_seq_length,
                                    summary_writer=writer)
    curves, window = {}, []
    meter.start(0)
    begin = time.perf_counter()
    for step, batch in enumerate(dataset.take(s.num_train_steps), 1):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            window.append(train_step(batch))
        if step % s.log_steps == 0 or step == s.num_train_steps:
            means = {k: sum(float(w[k]) for w in window) / len(window) for k in window[0]}
            for key, value in means.items():
                curves.setdefault(key, []).append((step, value))
            # The learning rate of the update just taken (at optimizer step `step - 1`).
            meter.log(step, means, float(optimizer.learning_rate(step - 1)))
            window = []
    seconds_per_step = (time.perf_counter() - begin) / s.num_train_steps
    writer.flush()

    evaluate = tf.function(lambda batch: forward(batch, False), autograph=False)
    heldout = pretraining_dataset(heldout_files, s.eval_batch_size, s.max_seq_length,
                                  s.max_predictions_per_seq, is_training=False)
    loss_sum = correct = weight = 0.0
    for batch in heldout.take(num_eval_batches):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            values = evaluate(batch)
        batch_weight = float(values["masked_lm_weight"])
        loss_sum += float(values["masked_lm_loss"]) * (batch_weight + 1e-5)
        correct += float(values["masked_lm_correct"])
        weight += batch_weight
    return {"curves": curves, "seconds_per_step": seconds_per_step,
            "heldout": {"masked_lm_loss": loss_sum / max(weight, 1e-30),
                        "masked_lm_accuracy": correct / max(weight, 1e-30)}}


def run_request(request_file, result_file):
    """Runs `tfm_pretrain` as REQUEST.json says and writes its result to RESULT.json.

    REQUEST.json: {"albert_config_file", "input_files", "heldout_files", "settings" (the
    fields of `albert_tf.settings.PretrainingSettings`), "num_eval_batches", "log_dir",
    "bias_correction"}. RESULT.json is written last, through a temporary name.
    """
    import json

    from albert_tf import files
    from albert_tf.config import AlbertConfig
    from albert_tf.settings import PretrainingSettings

    request = json.loads(files.read_text(request_file))
    result = tfm_pretrain(
        AlbertConfig.from_json_file(request["albert_config_file"]), request["input_files"],
        request["heldout_files"], PretrainingSettings(**request["settings"]),
        request["num_eval_batches"], request["log_dir"],
        bias_correction=request["bias_correction"])
    files.write_json(result_file, result)


def main(argv):
    import logging as pylogging
    import sys

    import tensorflow as tf
    from absl import logging

    if len(argv) != 3:
        sys.exit(f"usage: python {argv[0]} REQUEST.json RESULT.json")
    # The progress lines of `summaries.ProgressMeter`, as the demo prints its own.
    tf.get_logger().setLevel(pylogging.WARNING)
    logging.set_verbosity(logging.INFO)
    logging.get_absl_handler().setFormatter(pylogging.Formatter("    %(message)s"))
    run_request(argv[1], argv[2])


if __name__ == "__main__":
    from absl import app

    app.run(main)
