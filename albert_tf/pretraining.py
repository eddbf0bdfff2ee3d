"""ALBERT pretraining (masked LM + sentence order), as the original run_pretraining.py.

`run_pretraining(config, settings, strategy)` trains and/or evaluates with the original's
model, losses, optimizer, schedule, eval metrics and output files, on any
`tf.distribute` strategy, with mixed precision, XLA, gradient accumulation and resumable
checkpoints (the loop of `albert_tf.training_loop`). `PretrainingSettings` holds the original flags
(same names, same defaults) and the new ones.

Every path (`input_file`, `output_dir`, `init_checkpoint`) may be on any `tf.io.gfile`
filesystem (`gs://`, `ram://`); files are written atomically (temporary name, then rename).

Files in `output_dir`:
    train_state/ckpt-<step>.*          resumable state (model, optimizer, input position)
    model.ckpt-<step>.*, checkpoint    original-format checkpoints (end; export_original_every)
    model.ckpt-best.*                  the evaluated checkpoint with the best masked_lm_accuracy
    eval_results.txt                   `key = value` lines, as the original writes them
    albert_config.json                 the config the run was started with
    summaries/train, summaries/eval    TensorBoard scalars
"""


from absl import logging
import keras
import tensorflow as tf

from albert_tf import checkpoints as checkpoints_lib
from albert_tf import files
from albert_tf import optimization
from albert_tf import pretraining_data_input as input_lib
from albert_tf import summaries as summaries_lib
from albert_tf import training
from albert_tf import training_loop
from albert_tf.config import AlbertConfig
from albert_tf.heads import AlbertPretrainer, pretraining_losses
from albert_tf.modeling import AlbertModel
from albert_tf.settings import PretrainingSettings  # noqa: F401 (re-exported)
from albert_tf.summaries import pretraining_flops_per_example  # noqa: F401 (re-exported)


# === Losses and metrics =================================================================

_MLM_EPSILON = 1e-5  # the original's masked-LM denominator is sum(w) + 1e-5


def pretraining_batch_stats(batch):
    """Sums the pretraining loss is normalised by: examples and total masked-LM weight."""
    return {
        "examples": tf.cast(tf.shape(batch["input_ids"])[0], tf.float32),
        "masked_lm_weight": tf.reduce_sum(tf.cast(batch["masked_lm_weights"], tf.float32)),
    }


def pretraining_loss(model, batch, totals, training):
    """This (micro-)batch's share of the original loss of the whole global batch.

    The original (one device): sum(w * nll) / (sum(w) + 1e-5) + mean(sentence-order nll).
    Here each replica computes its local losses with `pretraining_losses` and rescales them
    to the global denominators `totals`, so the shares add up to the original's loss of the
    whole batch; on one device without accumulation the factors are exactly 1.
    """
    losses = pretraining_losses(model(batch, training=training), batch)
    local = pretraining_batch_stats(batch)
    mlm = losses["masked_lm_loss"] * ((local["masked_lm_weight"] + _MLM_EPSILON)
                                      / (totals["masked_lm_weight"] + _MLM_EPSILON))
    sop = losses["sentence_order_loss"] * (local["examples"] / totals["examples"])
    return {"loss": mlm + sop, "masked_lm_loss": mlm, "sentence_order_loss": sop}


def pretraining_eval_sums(model, batch):
    """Additive sums over one eval batch from which the original's eval metrics follow."""
    losses = pretraining_losses(model(batch, training=False), batch)
    weight = losses["masked_lm_weight"]
    examples = tf.cast(tf.shape(batch["input_ids"])[0], tf.float32)
    return {
        "masked_lm_correct": losses["masked_lm_accuracy"] * weight,
        "masked_lm_weight": weight,
        "masked_lm_loss_sum": losses["masked_lm_loss"] * (weight + _MLM_EPSILON),
        "sentence_order_correct": losses["sentence_order_accuracy"] * examples,
        "sentence_order_loss_sum": losses["sentence_order_loss"] * examples,
        "examples": examples,
    }


def _eval_step_loss(sums):
    # The Estimator's `loss` metric: the mean over eval steps of each batch's total loss.
    return {"loss": sums["masked_lm_loss_sum"] / (sums["masked_lm_weight"] + _MLM_EPSILON)
            + sums["sentence_order_loss_sum"] / sums["examples"]}


def pretraining_eval_results(sums, num_steps, global_step):
    """The original's eval metrics (its eval_results.txt names) from the summed values.

    masked_lm_accuracy and masked_lm_loss are weighted by masked_lm_weights over all eval
    batches (tf.metrics.accuracy / mean with weights); the sentence-order ones are plain
    means; `loss` is the mean per-batch total loss.
    """
    weight = max(sums["masked_lm_weight"], 1e-30)
    return {
        "global_step": int(global_step),
        "loss": sums["loss"] / num_steps,
        "masked_lm_accuracy": sums["masked_lm_correct"] / weight,
        "masked_lm_loss": sums["masked_lm_loss_sum"] / weight,
        "sentence_order_accuracy": sums["sentence_order_correct"] / sums["examples"],
        "sentence_order_loss": sums["sentence_order_loss_sum"] / sums["examples"],
    }


# === Set-up =============================================================================

def check_pretraining_settings(config, settings, num_replicas):
    """Raises SettingsError for every problem found before any data is read."""
    s = settings
    if not s.do_train and not s.do_eval:
        raise training.SettingsError("At least one of --do_train or --do_eval must be set.")
    if s.masked_lm_budget:
        raise training.SettingsError(
            f"--masked_lm_budget={s.masked_lm_budget}: online masking is not supported (the "
            "original's is broken: its input drops the masked_lm_* features its model reads). "
            "Mask offline with create_pretraining_data and keep --masked_lm_budget=0.")
    if s.max_seq_length > config.max_position_embeddings:
        raise training.SettingsError(
            f"--max_seq_length={s.max_seq_length} exceeds max_position_embeddings="
            f"{config.max_position_embeddings} of --albert_config_file.")
    if s.max_predictions_per_seq > s.max_seq_length:
        raise training.SettingsError(
            f"--max_predictions_per_seq={s.max_predictions_per_seq} exceeds "
            f"--max_seq_length={s.max_seq_length}.")
    if s.optimizer not in optimization.OPTIMIZERS:
        raise training.SettingsError(f"--optimizer={s.optimizer!r}; expected one of "
                                     f"{sorted(optimization.OPTIMIZERS)}.")
    if s.num_train_steps <= 0:
        raise training.SettingsError(f"--num_train_steps must be > 0, got {s.num_train_steps}.")
    if s.do_train:
        per_update = num_replicas * s.gradient_accumulation_steps
        if s.gradient_accumulation_steps < 1 or s.train_batch_size % per_update:
            raise training.SettingsError(
                f"--train_batch_size={s.train_batch_size} must be divisible by "
                f"{num_replicas} replica(s) x --gradient_accumulation_steps="
                f"{s.gradient_accumulation_steps} = {per_update}.")
        for name in ("save_checkpoints_steps", "iterations_per_loop", "log_steps"):
            if getattr(s, name) <= 0:
                raise training.SettingsError(f"--{name} must be > 0, got {getattr(s, name)}.")
    if s.do_eval and (s.eval_batch_size % num_replicas or s.max_eval_steps <= 0):
        raise training.SettingsError(
            f"--eval_batch_size={s.eval_batch_size} must be divisible by {num_replicas} "
            f"replica(s) and --max_eval_steps ({s.max_eval_steps}) > 0.")


def _check_config_matches_output_dir(config, output_dir):
    """A run resumed in `output_dir` must use the config it was started with."""
    path = files.join(output_dir, "albert_config.json")
    if not files.exists(path):
        config.to_json_file(path)
        return
    saved = AlbertConfig.from_json_file(path).to_dict()
    now = config.to_dict()
    diffs = [f"{key} {saved.get(key)!r} there, {value!r} now"
             for key, value in now.items() if saved.get(key) != value]
    if diffs:
        raise training.SettingsError(
            f"{output_dir} holds a run started with another config ({'; '.join(diffs)}). "
            "Resume it with the same --albert_config_file, or use another --output_dir.")


def build_pretraining_model(config, settings, strategy):
    """(model, optimizer), created and built in the strategy's scope.

    Sets the Keras global dtype policy from `settings.mixed_precision` first.
    """
    training.set_mixed_precision(settings.mixed_precision)
    with strategy.scope():
        encoder = AlbertModel(config, use_one_hot_embeddings=settings.use_one_hot_embeddings)
        model = AlbertPretrainer(config, encoder=encoder)
    optimizer = training_loop.build_optimizer(
        strategy, model, settings.mixed_precision, settings.learning_rate,
        settings.num_train_steps, settings.num_warmup_steps, optimizer=settings.optimizer,
        poly_power=settings.poly_power, start_warmup_step=settings.start_warmup_step,
        bias_correction=settings.bias_correction)
    return model, optimizer


def _dataset(input_files, settings, is_training, batch_size, num_shards=1, shard_index=0):
    return input_lib.pretraining_dataset(
        input_files, batch_size, settings.max_seq_length, settings.max_predictions_per_seq,
        is_training, num_shards=num_shards, shard_index=shard_index, seed=settings.seed,
        length_buckets=settings.length_buckets)


def _export_original(model, output_dir, step):
    prefix = files.join(output_dir, f"model.ckpt-{step}")
    checkpoints_lib.save_original_checkpoint(model, prefix, global_step=step)
    logging.info("Wrote the original-format checkpoint %s", prefix)
    return prefix


def _copy_as_best(prefix, lines):
    """Copies a checkpoint to `<prefix up to its last '-'>-best.*`, as the original."""
    target = prefix.rsplit("-", 1)[0] + "-best"
    for source_file, target_file in training_loop.copy_checkpoint(prefix, target):
        lines.append(f"saved {source_file} to {target_file}")
    return target


# === Evaluation of given weights ========================================================

def evaluate_pretraining(model, input_files, settings, strategy=None, global_step=0):
    """The original's pretraining eval metrics of `model`'s current weights.

    Evaluates exactly as the eval loop of `run_pretraining` does: `settings.max_eval_steps`
    batches of `settings.eval_batch_size` records (`max_seq_length`,
    `max_predictions_per_seq` as written), read in order from the start of `input_files`
    and repeated if they hold fewer records (so every metric is over exactly
    `max_eval_steps * eval_batch_size` examples).

    Args:
      model: an `AlbertPretrainer` (built in `strategy`'s scope when one is given).
      input_files: TFRecord paths, or comma-separated glob patterns (`--input_file`).
      settings: `PretrainingSettings` (only the eval fields above are read).
      strategy: a `tf.distribute.Strategy` (default: one device); `eval_batch_size` must
        be divisible by its replicas.
      global_step: reported as `global_step`.

    Returns {"global_step": int, "loss", "masked_lm_accuracy", "masked_lm_loss",
    "sentence_order_accuracy", "sentence_order_loss": float}, the eval_results.txt keys.

    Raises:
      InputDataError: a pattern that matches no file, or records of another shape.
      SettingsError: an eval batch not divisible by the replicas, or max_eval_steps <= 0.
    """
    strategy = strategy or training.create_strategy("one_device")
    if isinstance(input_files, str):
        input_files = input_lib.resolve_input_files(input_files)
    replicas = strategy.num_replicas_in_sync
    if settings.eval_batch_size % replicas or settings.max_eval_steps <= 0:
        raise training.SettingsError(
            f"--eval_batch_size={settings.eval_batch_size} must be divisible by {replicas} "
            f"replica(s) and --max_eval_steps ({settings.max_eval_steps}) > 0.")
    input_lib.check_record_schema(input_files, settings.max_seq_length,
                                  settings.max_predictions_per_seq)
    evaluator = training.Trainer(strategy, model, None, None, None)
    return _evaluate_weights(evaluator, input_files, settings, strategy, global_step)


def _evaluate_weights(trainer, input_files, s, strategy, step):
    # The original evaluates on the training files, read in order from their start.
    iterator = training.make_input_iterator(
        strategy, lambda *shard: _dataset(input_files, s, False, *shard), s.eval_batch_size)
    sums = trainer.evaluate(iterator, s.max_eval_steps, pretraining_eval_sums,
                            _eval_step_loss)
    return pretraining_eval_results(sums, s.max_eval_steps, step)


# === The run ============================================================================

def run_pretraining(config, settings, strategy=None):
    """Pretrains and/or evaluates ALBERT on TFRecords, as the original run_pretraining.py.

    Args:
      config: the `AlbertConfig`.
      settings: `PretrainingSettings`.
      strategy: a `tf.distribute.Strategy` (default: one device).

    Restarting the same call resumes at the last saved step with the optimizer state and
    input position; a finished run returns at once. Bad settings, unmatched input files,
    records of another shape and a config that does not fit the checkpoint in `output_dir`
    or `init_checkpoint` raise before training starts.

    Returns the eval results (dict) when evaluating, else {"global_step": step}.
    """
    s = settings
    strategy = strategy or training.create_strategy("one_device")
    _, _, is_chief = training.worker_info(strategy)
    check_pretraining_settings(config, s, strategy.num_replicas_in_sync)
    input_files = input_lib.resolve_input_files(s.input_file)
    input_lib.check_record_schema(input_files, s.max_seq_length, s.max_predictions_per_seq)
    logging.info("%d input file(s): %s%s", len(input_files), ", ".join(input_files[:3]),
                 ", ..." if len(input_files) > 3 else "")
    files.makedirs(s.output_dir)
    if is_chief:
        _check_config_matches_output_dir(config, s.output_dir)
    finished = training.TrainingCheckpoints.step_of(
        tf.train.latest_checkpoint(files.join(s.output_dir, "train_state")))
    if s.do_train and not s.do_eval and finished is not None and finished >= s.num_train_steps:
        logging.info("Training already finished in %s at step %d (--num_train_steps=%d); "
                     "nothing to do.", s.output_dir, finished, s.num_train_steps)
        return {"global_step": finished}
    if s.seed is not None:
        keras.utils.set_random_seed(s.seed)

    with training_loop.global_policy(s.mixed_precision):
        model, optimizer = build_pretraining_model(config, s, strategy)
        state = training.TrainingCheckpoints(
            files.join(s.output_dir, "train_state"), strategy, s.keep_checkpoint_max,
            model=model, optimizer=optimizer)
        trainer = training.Trainer(strategy, model, optimizer, pretraining_loss,
                                   pretraining_batch_stats, jit_compile=s.jit_compile,
                                   gradient_accumulation_steps=s.gradient_accumulation_steps,
                                   jit_scope=s.jit_scope)
        summaries = summaries_lib.SummaryWriters(s.output_dir, write=is_chief)
        step = (_train(trainer, state, summaries, input_files, s, is_chief)
                if s.do_train else None)
        if not s.do_eval:
            return {"global_step": step}
        return _evaluate(trainer, state, summaries, input_files, s, is_chief,
                         trained_step=step)


def _train(trainer, state, summaries, input_files, s, is_chief):
    model = trainer.model

    def warm_start():
        if s.init_checkpoint:
            # Weights only: moments and the step start afresh, as in the original.
            checkpoints_lib.load_original_checkpoint(model, s.init_checkpoint,
                                                     init_from_group0=s.init_from_group0)

    def export(step):
        if is_chief:
            _export_original(model, s.output_dir, step)

    def dataset_fn(batch_size, num_shards, shard_index):
        return _dataset(input_files, s, True, batch_size, num_shards, shard_index)

    loop = training_loop.TrainingLoop(
        trainer, state,
        training_loop.Schedule(s.num_train_steps, s.iterations_per_loop,
                               s.save_checkpoints_steps, s.log_steps, s.export_original_every),
        summaries, s.train_batch_size, s.max_seq_length,
        pretraining_flops_per_example(model.config, s.max_seq_length,
                                      s.max_predictions_per_seq),
        s.mixed_precision, s.peak_tflops)
    finished = state.latest() is not None and state.step_of(state.latest()) >= s.num_train_steps
    step = loop.run(dataset_fn, warm_start=warm_start, on_export=export)
    if is_chief and not finished:
        _export_original(model, s.output_dir, step)
    return step


def _evaluate(trainer, state, summaries, input_files, s, is_chief, trained_step=None):
    """The original's eval loop: evaluate new checkpoints until one reaches num_train_steps.

    After training in the same process it runs once, on the weights just trained. As an
    eval-only job it waits for the training job's checkpoints (`eval_poll_seconds`).

    Each evaluation reads, as the original's Estimator did, exactly `max_eval_steps` batches
    of `eval_batch_size` records (static shapes) from the training files in order, from
    their start, repeated: with fewer records than `max_eval_steps * eval_batch_size` the
    first records count again (the original's eval input repeats so that its fixed number
    of steps never runs out), and with more, the rest are not read. Every metric is over
    exactly those examples; none is dropped and no partial batch is padded.
    """
    results, best, lines, evaluated = None, 0.0, [], -1

    def new_checkpoint():
        latest = state.latest()
        step = state.step_of(latest)
        return latest if step is not None and step != evaluated else None

    while evaluated < s.num_train_steps:
        if trained_step is not None:
            step, trained_step = trained_step, None
        else:
            latest = training_loop.wait_for(new_checkpoint, state.directory,
                                            s.eval_poll_seconds)
            step = state.step_of(latest)
            state.restore(latest)
        results = training_loop.timed_evaluation(
            summaries, step,
            lambda: _evaluate_weights(trainer, input_files, s, trainer.strategy, step))
        evaluated = step
        keys = sorted(results)
        lines.append(f"{keys[0]} = {results[keys[0]]}")
        if is_chief and results["masked_lm_accuracy"] > best:
            best = results["masked_lm_accuracy"]
            prefix = files.join(s.output_dir, f"model.ckpt-{step}")
            if not tf.io.gfile.exists(prefix + ".index"):
                _export_original(trainer.model, s.output_dir, step)
            # The original copies inside its loop over the sorted keys, so its
            # "saved ..." lines follow the first key's line.
            _copy_as_best(prefix, lines)
        lines.extend(f"{key} = {results[key]}" for key in keys[1:])
        if is_chief:
            files.write_text(files.join(s.output_dir, "eval_results.txt"),
                             "".join(f"{line}\n" for line in lines))
        if s.do_train:
            break
    return results
