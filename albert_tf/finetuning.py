"""The fine-tuning loop that GLUE, SQuAD and RACE share: train, evaluate every checkpoint,
keep the best, predict.

It does what the original fine-tuning scripts do around their `model_fn`, on
`albert_tf.training_loop` (the one training loop: resumable checkpoints on a schedule,
input position, progress, non-finite stop) and `albert_tf.training` (strategies, the
replicated train step):

1. Build the task's Keras model in the strategy's scope and warm-start its encoder from an
   original-format checkpoint (`--init_checkpoint`; the head keeps its fresh initialisation).
2. Train `train_step` steps with the original AdamW/LAMB and schedule (`create_optimizer`,
   `warmup_step`), the loss being the mean over the global batch of the task's per-example
   loss. Every `save_checkpoints_steps` (and at the end) the training state is saved to
   `output_dir/train_state/` (keeping `keep_checkpoint_max`); a rerun of the same command
   resumes from the last one, at the same step and input position.
3. Evaluate every saved checkpoint: predict the task's dev set (`task.eval_input()`) and
   score the predictions (`task.metrics(predictions)`), write each result to
   `eval_results.txt` and the best so far to `best_trial.txt`
   (`global_step:best_step:best_value`), and keep the best weights as the original-format
   checkpoint `model.ckpt-best`, from which prediction and export start. As the original, a
   checkpoint becomes the best only with a strictly greater metric (ties keep the earlier).

How the evaluation is scheduled: when the task has a dev set, `train` evaluates each
checkpoint as soon as it is saved, on the weights in memory. Without one (a train-only run,
as the original run_glue.sh starts), `train` also writes every checkpoint's weights as
`output_dir/model.ckpt-<step>`, and a later (or concurrent) `evaluate_checkpoints` call
evaluates them in step order, deletes those that are not the best, and renames the best to
`model.ckpt-best`, as the original's eval loop does.

A task plugs in as an `albert_tf.tasks.base.Task` (see `albert_tf.tasks.glue_task` for a
complete one):

    tuner = FineTuner(config, settings, task.build_model, strategy=strategy)
    tuner.initialize()                        # warm start; a bad --init_checkpoint fails here
    result = tuner.train(task)                # task.per_example_loss, train_input, metrics
    tuner.restore_best()                      # model.ckpt-best into tuner.model
    outputs = tuner.predict(test_dataset, task.predict_outputs)  # {name: np.ndarray [N, ...]}

The tuner runs the predictions itself and hands them to `task.metrics`; a task never calls
back into the tuner.
"""

import dataclasses
import math
import re

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from albert_tf import bucketing
from albert_tf import checkpoints as checkpoints_lib
from albert_tf import files
from albert_tf import heads
from albert_tf import optimization
from albert_tf import summaries as summaries_lib
from albert_tf import training
from albert_tf import training_loop
from albert_tf.settings import FinetuningSettings  # noqa: F401 (re-exported)
from albert_tf.summaries import encoder_flops_per_example  # noqa: F401 (re-exported)

BEST_PREFIX = "model.ckpt-best"
_SNAPSHOT_RE = re.compile(r"^model\.ckpt-(\d+)\.index$")


@dataclasses.dataclass
class FinetuningResult:
    """What a `train` or `evaluate_checkpoints` call ended with.

    Attributes:
      global_step: the last step trained or evaluated.
      best_step, best_value: the best checkpoint so far (None if nothing was evaluated).
      metric_key: the metric that picks it.
      best_checkpoint: the `model.ckpt-best` prefix, if written.
      evaluations: {step: metrics} of the checkpoints evaluated by this call.
    """

    global_step: int
    best_step: int = None
    best_value: float = None
    metric_key: str = None
    best_checkpoint: str = None
    evaluations: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class PredictInput:
    """A finite set of examples for `FineTuner.predict`.

    Attributes:
      dataset: an unbatched `tf.data.Dataset` of feature dicts with fully defined shapes.
      num_examples: its size, if known (else it is counted).
      batch_size: the global batch (None: the settings' `eval_batch_size`).
      keep: feature names copied from the input to the predictions (labels, ids).
    """

    dataset: object
    num_examples: int = None
    batch_size: int = None
    keep: tuple = ()


def resolve_hub_module(handle):
    """(checkpoint prefix, SentencePiece model or None, config JSON or None) of a TF-Hub module.

    `--albert_hub_module_handle` must be the folder of a downloaded ALBERT TF-Hub module
    (`variables/variables.*`, `assets/30k-clean.model`) on any filesystem `tf.io.gfile`
    reads (local, `gs://`, ...); nothing is downloaded at run time, so an `http(s)://` URL
    is a `SettingsError`, and a folder without `variables/variables.index` a
    `FileNotFoundError`. A SavedModel written by `albert_tf.export` is accepted too (see
    `convert.resolve_export`).
    """
    handle = str(handle).rstrip("/") if files.has_scheme(handle) else str(handle)
    if re.match(r"^https?://", handle):
        raise training.SettingsError(
            f"--albert_hub_module_handle={handle}: modules are not downloaded at run time. "
            "Download it (e.g. add '?tf-hub-format=compressed' to the URL), extract it, and "
            "pass its folder.")
    if tf.io.gfile.exists(files.join(handle, "assets", "export_info.json")):
        # A SavedModel of albert_tf.export: its variables, converted to original names.
        from albert_tf import convert
        return convert.resolve_export(handle)
    prefix = files.join(handle, "variables", "variables")
    if not tf.io.gfile.exists(prefix + ".index"):
        raise FileNotFoundError(f"--albert_hub_module_handle={handle}: no {prefix}.index; "
                                "expected the folder of an extracted TF-Hub module.")
    assets = files.join(handle, "assets")
    spm = sorted(tf.io.gfile.glob(files.join(assets, "*.model")))
    config = files.join(assets, "albert_config.json")
    return prefix, (spm[0] if spm else None), (config if tf.io.gfile.exists(config) else None)


# =========================================================================================
# The record of evaluations: best_trial.txt and eval_results.txt
# =========================================================================================


class EvaluationRecord:
    """`best_trial.txt` and `eval_results.txt` of an output directory, as the original.

    best_trial.txt holds `global_step:best_step:best_value` (last evaluated step, best step,
    its metric; -1 each before any evaluation). eval_results.txt gets, per evaluation, the
    results as sorted `key = value` lines, then `best = <best value before it>` and a line
    of 50 "=". Unlike the original, it is not emptied when a run restarts (the evaluations
    of a resumed run stay in it), only when training starts from step 0.

    Args:
      output_dir: the folder.
      metric_key: the result that ranks checkpoints (greater is better).
      write: whether this process writes the files (the chief only).
    """

    def __init__(self, output_dir, metric_key, write=True):
        self.output_dir = str(output_dir)
        self.metric_key = metric_key
        self.write = write
        self.trial_path = files.join(self.output_dir, "best_trial.txt")
        self.results_path = files.join(self.output_dir, "eval_results.txt")
        self.global_step, self.best_step, self.best_value = -1, None, None
        if tf.io.gfile.exists(self.trial_path):
            text = files.read_text(self.trial_path, "evaluation record").strip()
            try:
                step, best_step, value = text.split(":")
                self.global_step = int(step)
                if int(best_step) >= 0:
                    self.best_step, self.best_value = int(best_step), float(value)
            except ValueError:
                raise files.FileError(f"{self.trial_path} should hold 'global_step:best_step:"
                                 f"best_value', found {text!r}; delete it to evaluate "
                                 "every checkpoint again.") from None
        self._text = ""
        if tf.io.gfile.exists(self.results_path):
            self._text = files.read_text(self.results_path, "evaluation results file")

    def reset(self):
        """Forgets earlier evaluations (a run that starts training from step 0)."""
        self.global_step, self.best_step, self.best_value = -1, None, None
        self._text = ""
        if self.write:
            for path in (self.trial_path, self.results_path):
                if tf.io.gfile.exists(path):
                    tf.io.gfile.remove(path)

    def is_better(self, value):
        value = float(value)
        if math.isnan(value):
            return False
        return self.best_value is None or value > self.best_value

    def add(self, step, results):
        """Records the results of checkpoint `step`; returns True if it is the new best."""
        if self.metric_key not in results:
            raise KeyError(f"The evaluation results have no {self.metric_key!r} (the metric "
                           f"that picks the best checkpoint); they have {sorted(results)}.")
        before = -1 if self.best_value is None else self.best_value
        lines = [f"{key} = {results[key]}" for key in sorted(results)]
        lines += [f"best = {before}", "=" * 50]
        self._text += "".join(line + "\n" for line in lines)
        better = self.is_better(results[self.metric_key])
        if better:
            self.best_step, self.best_value = int(step), float(results[self.metric_key])
        self.global_step = max(self.global_step, int(step))
        return better

    def add_section(self, title, results):
        """Appends results that rank nothing (e.g. another dev set on the best checkpoint)."""
        lines = [f"# {title}"] + [f"{key} = {results[key]}" for key in sorted(results)]
        self._text += "".join(line + "\n" for line in lines + ["=" * 50])
        self.flush_results()

    def flush_results(self):
        if self.write:
            files.write_text(self.results_path, self._text)

    def flush_trial(self):
        if self.write:
            best_step = -1 if self.best_step is None else self.best_step
            best_value = -1 if self.best_value is None else self.best_value
            files.write_text(self.trial_path, f"{self.global_step}:{best_step}:{best_value}")


# =========================================================================================
# FineTuner
# =========================================================================================


class FineTuner:
    """A task model, its strategy and its output directory, with train / evaluate / predict.

    Args:
      config: the `AlbertConfig`.
      settings: `FinetuningSettings`.
      build_model: `build_model(config) -> keras.Model`, called in the strategy's scope
        under the settings' mixed-precision policy. The model takes a dict of features
        (what the task's datasets yield) and its variables must exist after construction
        (our ALBERT models and heads do), so a checkpoint can be loaded before any call.
        Heads should use the original variable names so that `model.ckpt-best` is an
        original-format checkpoint.
      strategy: a `tf.distribute.Strategy` (default: one device).

    Attributes: `model`, `strategy`, `settings`, `optimizer` (after `train` starts),
    `is_chief`.
    """

    def __init__(self, config, settings, build_model, strategy=None):
        self.config = config
        self.settings = settings
        self.strategy = strategy or training.create_strategy("one_device")
        _, self.num_workers, self.is_chief = training.worker_info(self.strategy)
        self._check_settings()
        files.makedirs(settings.output_dir)
        if settings.seed is not None:
            keras.utils.set_random_seed(settings.seed)
        # Layers keep the policy they were built with; the global one is left as found.
        with training_loop.global_policy(settings.mixed_precision), self.strategy.scope():
            self.model = build_model(config)
        self.optimizer = None
        self._warm_started = False
        self._predict_steps = {}
        self.state_dir = files.join(settings.output_dir, "train_state")

    # --- Set-up -------------------------------------------------------------------------

    def _check_settings(self):
        s = self.settings
        replicas = self.strategy.num_replicas_in_sync
        for name in ("train_step", "save_checkpoints_steps", "iterations_per_loop",
                     "log_steps", "train_batch_size", "eval_batch_size",
                     "predict_batch_size", "gradient_accumulation_steps"):
            if getattr(s, name) <= 0:
                raise training.SettingsError(f"--{name} must be > 0, got {getattr(s, name)}.")
        if s.warmup_step < 0:
            raise training.SettingsError(f"--warmup_step must be >= 0, got {s.warmup_step}.")
        if s.optimizer not in optimization.OPTIMIZERS:
            raise training.SettingsError(f"--optimizer={s.optimizer!r}; expected one of "
                                         f"{sorted(optimization.OPTIMIZERS)}.")
        per_update = replicas * s.gradient_accumulation_steps
        if s.train_batch_size % per_update:
            raise training.SettingsError(
                f"--train_batch_size={s.train_batch_size} must be divisible by {replicas} "
                f"replica(s) x --gradient_accumulation_steps={s.gradient_accumulation_steps}.")
        for name in ("eval_batch_size", "predict_batch_size"):
            if getattr(s, name) % replicas:
                raise training.SettingsError(f"--{name}={getattr(s, name)} must be divisible "
                                             f"by the {replicas} replica(s).")

    def has_training_state(self):
        """Whether `output_dir` holds a resumable training checkpoint."""
        return tf.train.latest_checkpoint(self.state_dir) is not None

    def initialize(self):
        """Warm-starts the model from `init_checkpoint`, unless training state exists.

        Call it early: a checkpoint that matches no variable or has other shapes raises
        `CheckpointMismatchError` here, before any data is converted or step trained. Only
        weights are taken (moments and step start afresh); variables the checkpoint lacks
        (the new head) keep their initialisation. Returns the `LoadReport`, or None.
        """
        if self._warm_started or self.has_training_state():
            return None
        self._warm_started = True
        if not self.settings.init_checkpoint:
            logging.warning("No --init_checkpoint: fine-tuning starts from random weights.")
            return None
        report = checkpoints_lib.load_original_checkpoint(self.model,
                                                          self.settings.init_checkpoint)
        logging.info("Warm start from %s: %d variables loaded, %d initialised afresh (%s).",
                     report.checkpoint, len(report.loaded), len(report.missing),
                     ", ".join(report.missing) or "none")
        return report

    def _build_optimizer(self):
        s = self.settings
        return training_loop.build_optimizer(
            self.strategy, self.model, s.mixed_precision, s.learning_rate, s.train_step,
            s.warmup_step, optimizer=s.optimizer, bias_correction=s.bias_correction)

    # --- Training -----------------------------------------------------------------------

    def make_trainer(self, loss_fn):
        """The `training.Trainer` whose steps `train` runs (the optimizer is built once).

        `loss_fn(model, batch, training) -> [B]` per-example losses; each step minimises
        their mean over the global batch. Benchmarks time `trainer.train(iterator, n)`.
        """
        if self.optimizer is None:
            self.optimizer = self._build_optimizer()
        s = self.settings
        return training.Trainer(self.strategy, self.model, self.optimizer,
                                global_batch_loss(loss_fn), batch_stats,
                                jit_compile=s.jit_compile,
                                gradient_accumulation_steps=s.gradient_accumulation_steps)

    def train(self, task):
        """Trains `task` to `train_step`, evaluating each saved checkpoint on its dev set.

        Args:
          task: an `albert_tf.tasks.base.Task`: its `per_example_loss(model, batch,
            training) -> [B]` (the training loss is their mean over the global batch), its
            `train_input()` (`dataset_fn(batch_size, num_shards, shard_index)`, repeating
            without end), its `flops_per_example` (for MFU), and for the evaluation its
            `eval_input()` (a `PredictInput`, or None: write `model.ckpt-<step>` snapshots
            for a later `evaluate_checkpoints`), `predict_outputs`, `metrics` and
            `metric_key` (the result that picks the best checkpoint).

        Returns a `FinetuningResult`. Rerunning after a crash resumes from the last
        training checkpoint (and first evaluates it if its evaluation was lost); rerunning
        a finished run returns at once, reading no input.
        """
        s = self.settings
        data = task.eval_input()
        self.initialize()
        if self.optimizer is None:
            self.optimizer = self._build_optimizer()
        state = training.TrainingCheckpoints(self.state_dir, self.strategy,
                                             s.keep_checkpoint_max, model=self.model,
                                             weights=NamedWeights(self.model),
                                             optimizer=self.optimizer)
        record = (EvaluationRecord(s.output_dir, task.metric_key, write=self.is_chief)
                  if data is not None else None)
        result = FinetuningResult(global_step=0, metric_key=task.metric_key)
        summaries = summaries_lib.SummaryWriters(s.output_dir, write=self.is_chief)

        def after_checkpoint(step):
            self._after_checkpoint(step, task, data, record, result, summaries)

        loop = training_loop.TrainingLoop(
            self.make_trainer(task.per_example_loss), state,
            training_loop.Schedule(s.train_step, s.iterations_per_loop,
                                   s.save_checkpoints_steps, s.log_steps,
                                   log_ends_call=True),
            summaries, s.train_batch_size, s.max_seq_length,
            task.flops_per_example(self.config, s.max_seq_length), s.mixed_precision,
            s.peak_tflops)
        step = loop.run(
            lambda *shard: task.train_input()(*shard),
            warm_start=record.reset if record is not None else None,
            on_resume=after_checkpoint, on_checkpoint=after_checkpoint,
            description=f"Learning rate {s.learning_rate:g} ({s.optimizer}, "
                        f"{s.warmup_step} warm-up steps).")
        return self._finish(result, step, record)

    def _after_checkpoint(self, step, task, data, record, result, summaries):
        """Evaluates checkpoint `step` (or snapshots it for a later evaluation)."""
        result.global_step = step
        if data is None:
            prefix = files.join(self.settings.output_dir, f"model.ckpt-{step}")
            if self.is_chief and not tf.io.gfile.exists(prefix + ".index"):
                checkpoints_lib.save_original_checkpoint(self.model, prefix, global_step=step)
            return
        if record.global_step >= step:
            return   # evaluated before a restart
        results = self._evaluate(step, task, data, result, summaries)
        if record.add(step, results) and self.is_chief:
            prefix = files.join(self.settings.output_dir, BEST_PREFIX)
            checkpoints_lib.save_original_checkpoint(self.model, prefix, global_step=step)
            logging.info("New best %s = %s at step %d: saved %s.", record.metric_key,
                         results[record.metric_key], step, prefix)
        record.flush_results()
        record.flush_trial()

    def _evaluate(self, step, task, data, result, summaries):
        results = training_loop.timed_evaluation(summaries, step,
                                                 lambda: self.evaluate(task, data))
        result.evaluations[step] = results
        return results

    def evaluate(self, task, data=None):
        """`task.metrics` of the model's predictions on `data` (default: `task.eval_input()`).

        The predictions ({name: np.ndarray [N, ...]} in dataset order, see `predict`) are
        those of `task.predict_outputs` plus the features in `data.keep`. Returns the
        metrics (a dict of floats), without recording them.
        """
        data = data or task.eval_input()
        predictions = self.predict(data.dataset, task.predict_outputs,
                                   batch_size=data.batch_size or self.settings.eval_batch_size,
                                   keep=data.keep, num_examples=data.num_examples)
        return task.metrics(predictions)

    def _finish(self, result, step, record):
        result.global_step = step
        if record is not None:
            result.best_step, result.best_value = record.best_step, record.best_value
            best = files.join(self.settings.output_dir, BEST_PREFIX)
            if tf.io.gfile.exists(best + ".index"):
                result.best_checkpoint = best
        return result

    # --- Evaluation of saved checkpoints ------------------------------------------------

    def snapshots(self):
        """{step: prefix} of the `model.ckpt-<step>` checkpoints in `output_dir`."""
        found = {}
        for name in tf.io.gfile.listdir(self.settings.output_dir):
            match = _SNAPSHOT_RE.match(name)
            if match:
                found[int(match.group(1))] = files.join(self.settings.output_dir,
                                                          name[:-len(".index")])
        return found

    def evaluate_checkpoints(self, task):
        """The original's eval loop over `model.ckpt-<step>` checkpoints of a training run.

        Evaluates (`evaluate(task)`), in step order, each checkpoint newer than the last one
        recorded in `best_trial.txt`, until one at `train_step` has been evaluated. A
        checkpoint that is not the best (by `task.metric_key`) is deleted once evaluated;
        the best is renamed `model.ckpt-best`. When no new checkpoint is there it waits up
        to `eval_wait_seconds` for the training run to write one (polling every 60 s at
        most), then stops with what it has. A run already evaluated to the end returns its
        record (the original failed there).

        Returns a `FinetuningResult`. Raises FileNotFoundError if there is nothing at all to
        evaluate.
        """
        s, metric_key = self.settings, task.metric_key
        record = EvaluationRecord(s.output_dir, metric_key, write=self.is_chief)
        result = FinetuningResult(global_step=max(record.global_step, 0), metric_key=metric_key)
        summaries = summaries_lib.SummaryWriters(s.output_dir, write=self.is_chief)
        best = files.join(s.output_dir, BEST_PREFIX)
        while record.global_step < s.train_step:
            new = training_loop.wait_for(
                lambda: sorted(step for step in self.snapshots() if step > record.global_step),
                s.output_dir, 60.0, s.eval_wait_seconds)
            if not new:
                if record.best_step is None:
                    raise FileNotFoundError(
                        f"No checkpoint to evaluate in {s.output_dir}: expected "
                        "model.ckpt-<step> files from a training run (--do_train).")
                logging.warning("Stopping evaluation at step %d: no newer checkpoint in %s "
                                "(--train_step=%d).", record.global_step, s.output_dir,
                                s.train_step)
                break
            for step in new:
                prefix = self.snapshots()[step]
                checkpoints_lib.load_original_checkpoint(self.model, prefix, strict=True)
                results = self._evaluate(step, task, None, result, summaries)
                if record.add(step, results):
                    if self.is_chief:
                        training_loop.rename_checkpoint(prefix, best)
                        logging.info("New best %s = %s at step %d: %s renamed %s.",
                                     metric_key, results[metric_key], step, prefix, best)
                elif self.is_chief:
                    training_loop.remove_checkpoint(prefix)
                record.flush_results()
                record.flush_trial()
                result.global_step = step
        return self._finish(result, max(record.global_step, 0), record)

    def add_results_section(self, title, results, metric_key=None):
        """Appends `results` under `# title` to eval_results.txt (not ranked)."""
        if self.is_chief:
            EvaluationRecord(self.settings.output_dir, metric_key).add_section(title, results)

    # --- Restoring and predicting -------------------------------------------------------

    def restore_best(self):
        """Loads `output_dir/model.ckpt-best` into the model; returns its prefix."""
        prefix = files.join(self.settings.output_dir, BEST_PREFIX)
        if not tf.io.gfile.exists(prefix + ".index"):
            raise FileNotFoundError(
                f"No {prefix}.index: prediction and export use the best checkpoint, which "
                "the evaluation picks. Run with --do_eval (after or with --do_train) first.")
        checkpoints_lib.load_original_checkpoint(self.model, prefix, strict=True)
        return prefix

    def predict(self, dataset, output_fn=None, batch_size=None, keep=(), num_examples=None):
        """Runs the model over a finite dataset on every replica; returns per-example arrays.

        Args:
          dataset: an unbatched `tf.data.Dataset` of feature dicts with fully defined shapes.
          output_fn: `output_fn(model, batch) -> dict` of tensors [B, ...] (default: the
            model's head outputs in inference mode, `heads.head_outputs`).
          batch_size: global batch (default `predict_batch_size`).
          keep: feature names copied from the input to the outputs (e.g. labels, ids).
          num_examples: the dataset's size, if known (else it is counted).

        Returns {name: np.ndarray [N, ...]} in dataset order. Examples run in batches of
        one length bucket each (`settings.length_buckets`, see `albert_tf.bucketing`), cut
        to that bucket; each bucket is padded to whole batches with all-zero examples that
        are dropped from the outputs (the original's `PaddingInputExample`), so there is one
        static step shape per bucket (TPUs, XLA).
        """
        strategy = self.strategy
        batch_size = batch_size or self.settings.predict_batch_size
        if batch_size % strategy.num_replicas_in_sync:
            raise training.SettingsError(
                f"The batch size {batch_size} must be divisible by the "
                f"{strategy.num_replicas_in_sync} replica(s).")
        if num_examples is None:
            num_examples = int(dataset.cardinality())
            if num_examples < 0:
                num_examples = int(dataset.reduce(tf.constant(0, tf.int64),
                                                  lambda n, _: n + 1))
        if num_examples == 0:
            raise ValueError("predict() got an empty dataset.")
        indexed = _padded_with_index(dataset, 0)
        # One part per length bucket, each in whole batches of one static shape.
        buckets = bucketing.bucket_lengths(
            indexed.element_spec["input_mask"].shape[-1],
            self.settings.length_buckets)
        parts = bucketing.prediction_parts(
            indexed, batch_size, buckets, bucketing.padding_example(indexed.element_spec),
            num_examples)
        step_fn = self._predict_step(output_fn, tuple(keep))
        chunks = []
        for _, steps, part in parts:
            def dataset_fn(context, d=part):
                if context.num_input_pipelines > 1:
                    d = d.shard(context.num_input_pipelines, context.input_pipeline_id)
                # Repeated so that prefetching past the last step is not an end-of-input
                # error; exactly `steps` batches are taken.
                return d.batch(context.get_per_replica_batch_size(batch_size),
                               drop_remainder=True).repeat().prefetch(tf.data.AUTOTUNE)

            iterator = iter(strategy.distribute_datasets_from_function(dataset_fn))
            chunks += [{name: value.numpy() for name, value in step_fn(iterator).items()}
                       for _ in range(steps)]
        arrays = bucketing.concatenate_outputs(chunks)
        index = arrays.pop("_example_index")
        real = index >= 0
        index = index[real]
        unique, first = np.unique(index, return_index=True)
        if len(unique) != num_examples or unique[-1] != num_examples - 1:
            raise RuntimeError(f"predict() got {len(unique)} distinct examples back of "
                               f"{num_examples} (the dataset has another size?).")
        return {name: values[real][first] for name, values in arrays.items()}

    def _predict_step(self, output_fn, keep):
        key = (output_fn, keep)
        if key not in self._predict_steps:
            def model_outputs(batch):
                if output_fn is None:
                    # The head's outputs only: the encoder's [B, S, H] states are not
                    # gathered over the dataset.
                    return heads.head_outputs(self.model(batch, training=False))
                return dict(output_fn(self.model, batch))

            if self.settings.jit_compile:
                model_outputs = tf.function(model_outputs, jit_compile=True)

            def replica_fn(batch):
                outputs = model_outputs(batch)
                outputs["_example_index"] = batch["_example_index"]
                for name in keep:
                    outputs[name] = batch[name]
                return outputs

            @tf.function
            def step(iterator):
                per_replica = self.strategy.run(replica_fn, args=(next(iterator),))
                return {name: self.strategy.gather(value, axis=0)
                        for name, value in per_replica.items()}

            self._predict_steps[key] = step
        return self._predict_steps[key]


# =========================================================================================
# Helpers
# =========================================================================================


class NamedWeights(tf.Module):
    """Every variable of a model, tracked under its original name.

    Saved beside the model in training checkpoints and SavedModels, so that they hold every
    weight however Keras tracks the model's nested layers (object tracking skips layers kept
    in containers it cannot name, such as a dict with integer keys).
    """

    def __init__(self, model):
        super().__init__(name="named_weights")
        self.by_name = {name.replace("/", "."): variable for name, variable in
                        checkpoints_lib.model_variables_by_original_name(model).items()}


def global_batch_loss(per_example_loss_fn):
    """A `training.Trainer` loss from a per-example one: this replica's (micro-)batch share of
    the mean per-example loss over the global batch (the shares add up to that mean)."""
    def loss_fn(model, batch, totals, training_):
        losses = tf.cast(per_example_loss_fn(model, batch, training_), tf.float32)
        return {"loss": tf.reduce_sum(losses) / totals["examples"]}
    return loss_fn


def batch_stats(batch):
    """The sums `global_batch_loss` normalises by: the number of examples."""
    first = batch[sorted(batch)[0]]
    return {"examples": tf.cast(tf.shape(first)[0], tf.float32)}


def _padded_with_index(dataset, padding):
    """Adds `_example_index` (0, 1, ...) and `padding` all-zero examples with index -1."""
    spec = dataset.element_spec
    if not isinstance(spec, dict):
        raise TypeError(f"predict() needs a dataset of feature dicts, got {spec}.")
    for name, s in spec.items():
        if not s.shape.is_fully_defined():
            raise ValueError(f"predict() needs fully defined feature shapes; {name!r} has "
                             f"{s.shape}.")
    indexed = dataset.enumerate().map(lambda i, features: {**features, "_example_index": i})
    if not padding:
        return indexed
    zeros = {name: (tf.fill(s.shape, "") if s.dtype == tf.string else tf.zeros(s.shape, s.dtype))
             for name, s in spec.items()}
    zeros["_example_index"] = tf.constant(-1, tf.int64)
    return indexed.concatenate(tf.data.Dataset.from_tensors(zeros).repeat(padding))
