"""The demo job's tfm_check step: the same pretraining with an independent ALBERT.

tf-models-official's ALBERT (`official.nlp.modeling.networks.AlbertEncoder` with its
masked-LM head, `models.BertPretrainerV2`, and a 2-way sentence-order layer on the pooled
output, as `benchmarks/bench_common.py` builds them) is pretrained on the pretrain step's
TFRecords, read by the same input pipeline with the same seed, with the same recipe: the
original losses (masked-LM over the weighted positions, / (sum of weights + 1e-5), plus
the sentence-order cross-entropy), global-norm clipping at 1.0, its LAMB
(`official.modeling.optimization.lamb.LAMB`: weight decay 0.01 and the trust ratio
skipped for LayerNorm/layer_norm/bias, epsilon 1e-6) at the original schedule (linear
warm-up to `learning_rate`, then linear decay to 0 at `num_train_steps`), batch size and
steps. Its training losses are logged over the same windows as ours; both masked-LM loss
curves go into one plot.

Known differences, both in tf-models-official's favour of being independent: its LAMB
applies Adam's bias correction (the original's does not), and it starts from its own
random weights (truncated normal, `initializer_range`), not from our initial checkpoint.
"""

import importlib.util
import time
import warnings

from albert_tf.demo.job import ROOT, repo_path, shown

LAST_STEPS = 100     # "final" losses: the mean over the last this many steps' windows


def _bench_common():
    """benchmarks/bench_common.py (tf-models-official's encoder as the benchmarks build it)."""
    spec = importlib.util.spec_from_file_location("bench_common",
                                                  ROOT / "benchmarks" / "bench_common.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def final_loss(points, last_steps=LAST_STEPS, total_steps=None):
    """Mean value of the logged (step, value) points after `total_steps - last_steps`."""
    total_steps = total_steps or max(step for step, _ in points)
    tail = [value for step, value in points if step > total_steps - last_steps]
    return sum(tail) / len(tail) if tail else float("nan")


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


def tfm_pretrain(config, input_files, heldout_files, settings, num_eval_batches, log_dir):
    """Pretrains tf-models-official's ALBERT; returns figures and the logged curves.

    Args:
      config: our `AlbertConfig` (the same hyper-parameters are given to AlbertEncoder).
      input_files, heldout_files: TFRecord paths of the training and held-out records.
      settings: our `PretrainingSettings` (batch, steps, learning rate, warm-up, seed,
        log_steps, eval_batch_size).
      num_eval_batches: held-out batches evaluated at the end.
      log_dir: TensorBoard folder of the training scalars.

    Returns {"curves": {tag: [(step, mean over the window)]}, "heldout": {masked_lm_loss,
    masked_lm_accuracy}, "seconds_per_step": float}.
    """
    import tensorflow as tf
    import tf_keras
    from official.modeling import tf_utils
    from official.modeling.optimization import lamb
    from official.nlp.modeling import models

    from albert_tf import summaries
    from albert_tf.optimization import ORIGINAL_EXCLUDE_FROM_WEIGHT_DECAY
    from albert_tf.pretraining_data_input import pretraining_dataset

    s = settings
    bench = _bench_common()
    tf_keras.utils.set_random_seed(s.seed)
    initializer = bench.tfm_initializer(config)
    pretrainer = models.BertPretrainerV2(
        bench.tfm_encoder(config), mlm_activation=tf_utils.get_activation(config.hidden_act),
        mlm_initializer=initializer)
    sentence_order = tf_keras.layers.Dense(2, kernel_initializer=initializer,
                                           name="seq_relationship")
    sentence_order.build((None, config.hidden_size))
    optimizer = lamb.LAMB(
        learning_rate=_original_schedule(s.learning_rate, s.num_train_steps,
                                         s.num_warmup_steps),
        weight_decay_rate=0.01, epsilon=1e-6,
        exclude_from_weight_decay=list(ORIGINAL_EXCLUDE_FROM_WEIGHT_DECAY))

    def forward(batch, training):
        outputs = pretrainer({**bench.tfm_inputs(batch),
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
            meter.log(step, means, float(optimizer.learning_rate(step)))
            window = []
    seconds_per_step = (time.perf_counter() - begin) / s.num_train_steps
    writer.flush()

    evaluate = tf.function(lambda batch: forward(batch, False))
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


def step_tfm_check(job):
    from albert_tf.config import AlbertConfig
    from albert_tf.demo.steps import pretraining_settings, read_scalars
    from albert_tf.pretraining_data_input import resolve_input_files

    s = job.settings
    data = job.require("data")
    if not s.tfm_check:
        return {"skipped": True, "commands": [], "summary": "skipped (--notfm_check)"}
    settings = pretraining_settings(job)
    log_dir = job.dir("tfm_check") / "summaries" / "train"
    heldout = resolve_input_files(str(repo_path(data["files"]["heldout"])))
    num_batches = max(1, data["figures"]["heldout_instances"] // s.eval_batch_size)
    result = tfm_pretrain(AlbertConfig.from_json_file(job.config_file()),
                          resolve_input_files(settings.input_file), heldout, settings,
                          num_batches, log_dir)
    # Ours is read last: this step trains independently of the pretrain step until here.
    pretrain = job.require("pretrain")
    ours = read_scalars(repo_path(pretrain["files"]["output_dir"]) / "summaries" / "train")
    check = {"albert_tf": final_loss(ours["masked_lm_loss"], total_steps=s.num_train_steps),
             "tf_models_official": final_loss(result["curves"]["masked_lm_loss"],
                                              total_steps=s.num_train_steps)}
    return {
        "figures": {"mlm_loss_check": check, "heldout": result["heldout"],
                    "seconds_per_step": result["seconds_per_step"],
                    "final_sentence_order_loss": final_loss(
                        result["curves"]["sentence_order_loss"], total_steps=s.num_train_steps),
                    "last_steps": LAST_STEPS},
        "curves": result["curves"],
        "files": {"summaries": shown(log_dir)},
        "commands": [f"python albert_demo.py --run_dir={shown(job.run_dir)} --steps=tfm_check"],
        "summary": (f"masked-LM training loss over the last {LAST_STEPS} steps: albert_tf "
                    f"{check['albert_tf']:.3f}, tf-models-official "
                    f"{check['tf_models_official']:.3f}"),
    }
