"""The one training loop that pretraining and every fine-tuning task run through.

`TrainingLoop.run` owns a run from its first step to its last: it resumes from the latest
training checkpoint (or warm-starts a fresh run), tracks the input position with the state,
calls the compiled loop of `training.Trainer` for `iterations_per_loop` steps at a time
(ending a call early only where a checkpoint or an export is due, so that those land on
their exact steps), logs each step's losses per `log_steps` window (`summaries.ProgressMeter`),
stops on a non-finite loss naming the last good checkpoint, saves on its schedule and hands
each saved step to the caller's evaluation (`on_checkpoint`).

Around it, what the callers share:
- `global_policy`: the Keras mixed-precision policy set for a block, restored after.
- `build_optimizer`: the original optimizer built in the strategy's scope (with loss
  scaling for fp16), as `training.Trainer` needs it.
- `timed_evaluation`: an evaluation's results, timed, logged and written to TensorBoard.
- `wait_for`: the eval-only jobs' polling for a training job's next checkpoint.
- `copy_checkpoint`, `rename_checkpoint`, `remove_checkpoint`: the best checkpoint's files.
"""

import contextlib
import dataclasses
import time

from absl import logging
import keras
import tensorflow as tf

from albert_tf import files
from albert_tf import optimization
from albert_tf import summaries as summaries_lib
from albert_tf import training


# =========================================================================================
# Precision and optimizer
# =========================================================================================


@contextlib.contextmanager
def global_policy(mixed_precision):
    """Sets the Keras global dtype policy ("none", "bf16", "fp16") inside the block.

    Layers keep the policy they were built with, so models built in the block keep it; the
    global policy found on entry is restored on exit, even on an error.
    """
    previous = keras.mixed_precision.global_policy()
    try:
        training.set_mixed_precision(mixed_precision)
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def build_optimizer(strategy, model, mixed_precision, learning_rate, num_train_steps,
                    num_warmup_steps, **options):
    """The original optimizer for `model`, created and built in `strategy`'s scope.

    Args:
      strategy: the run's `tf.distribute.Strategy` (the model was built in its scope).
      model: the Keras model whose trainable variables it updates.
      mixed_precision: "fp16" wraps it in `keras.mixed_precision.LossScaleOptimizer`.
      learning_rate, num_train_steps, num_warmup_steps, **options: as
        `optimization.create_optimizer` (`optimizer`, `poly_power`, `bias_correction`...).

    It expects gradients summed over replicas (`aggregate_gradients=False`), as
    `training.Trainer` gives them.
    """
    with strategy.scope():
        optimizer = optimization.create_optimizer(
            learning_rate, num_train_steps, num_warmup_steps, aggregate_gradients=False,
            **options)
        if mixed_precision == "fp16":
            optimizer = keras.mixed_precision.LossScaleOptimizer(optimizer)
        # A Keras optimizer used inside strategy.run must be built in the scope first.
        optimizer.build(model.trainable_variables)
    return optimizer


# =========================================================================================
# The loop
# =========================================================================================


@dataclasses.dataclass
class Schedule:
    """When a run stops, saves, logs and exports (all in optimizer steps).

    Attributes:
      total_steps: the step training ends at.
      iterations_per_loop: steps per call into the compiled loop (at most).
      save_checkpoints_steps: a resumable checkpoint every this many steps, and at the end.
      log_steps: a progress line (and scalars) per this many steps, and at the end.
      export_every: also end a call at multiples of this (0: never), for `on_export`.
      log_ends_call: also end a call at each multiple of `log_steps`, so that progress
        lines appear as training runs (fine-tuning) rather than after each call.
    """

    total_steps: int
    iterations_per_loop: int
    save_checkpoints_steps: int
    log_steps: int
    export_every: int = 0
    log_ends_call: bool = False


class TrainingLoop:
    """Trains `trainer` to `schedule.total_steps`, saving `state` on the schedule.

    Args:
      trainer: the `training.Trainer` (model, optimizer, loss).
      state: the `training.TrainingCheckpoints` of the run (model, optimizer, ...).
      schedule: a `Schedule`.
      summaries: the run's `summaries.SummaryWriters`.
      batch_size: the global batch (examples per step, micro-batches included).
      seq_length: tokens per example (for tokens/s).
      flops_per_example: training FLOPs per example (for MFU), or None.
      mixed_precision, peak_tflops: what the devices' peak FLOP/s is looked up for.
    """

    def __init__(self, trainer, state, schedule, summaries, batch_size, seq_length,
                 flops_per_example=None, mixed_precision="none", peak_tflops=None):
        self.trainer = trainer
        self.state = state
        self.schedule = schedule
        self.summaries = summaries
        self.batch_size = batch_size
        self.seq_length = seq_length
        self.flops_per_example = flops_per_example
        self.mixed_precision = mixed_precision
        self.peak_tflops = peak_tflops

    def run(self, dataset_fn, warm_start=None, on_resume=None, on_checkpoint=None,
            on_export=None, description=""):
        """Trains from where `state` left off; returns the last step.

        Args:
          dataset_fn: `dataset_fn(batch_size, num_shards, shard_index)` of the train input
            (see `training.make_input_iterator`); not called when training has finished.
          warm_start: `warm_start()` when the run starts from step 0 (no state saved yet).
          on_resume: `on_resume(step)` when the state is restored, at its step (also when
            training had already finished).
          on_checkpoint: `on_checkpoint(step)` after each save.
          on_export: `on_export(step)` at each multiple of `schedule.export_every` short of
            the end (every worker calls it).
          description: added to the line logged at the start.

        Raises NonFiniteLossError on a NaN or infinite loss (nothing after the last
        checkpoint is saved, so a rerun resumes from a finite state).
        """
        state, total = self.state, self.schedule.total_steps
        latest = state.latest()
        if latest is not None and state.step_of(latest) >= total:
            step = state.restore(latest)
            logging.info("Training already finished: %s is at step %d (training to step %d).",
                         latest, step, total)
            if on_resume is not None:
                on_resume(step)
            return step
        iterator = training.make_input_iterator(self.trainer.strategy, dataset_fn,
                                                self.batch_size)
        state.track_iterator(iterator)
        step = state.restore()
        if step is None:
            step = 0
            if warm_start is not None:
                warm_start()
        else:
            logging.info("Resuming from %s at step %d.", state.latest(), step)
            if on_resume is not None:
                on_resume(step)
        return self._train(iterator, step, on_checkpoint, on_export, description)

    def _progress(self, step, description):
        strategy, s = self.trainer.strategy, self.schedule
        peak, peak_source = training.peak_flops_per_second(strategy, self.mixed_precision,
                                                           self.peak_tflops)
        progress = summaries_lib.ProgressMeter(
            s.total_steps, self.batch_size, self.seq_length, self.flops_per_example, peak,
            self.summaries.writer("train"))
        replicas, micro = strategy.num_replicas_in_sync, self.trainer.accumulation
        logging.info(
            "Training steps %d to %d; global batch %d = %d replica(s) x %d micro-batch(es) x "
            "%d; checkpoint every %d steps; %s TFLOPs per example; peak %s.%s", step,
            s.total_steps, self.batch_size, replicas, micro,
            self.batch_size // (replicas * micro), s.save_checkpoints_steps,
            f"{self.flops_per_example / 1e12:.3g}" if self.flops_per_example else "?",
            f"{peak / 1e12:.2f} TFLOP/s ({peak_source})" if peak else peak_source,
            f" {description}" if description else "")
        return progress

    def _train(self, iterator, step, on_checkpoint, on_export, description):
        trainer, state, s = self.trainer, self.state, self.schedule
        optimizer = trainer.optimizer
        progress = self._progress(step, description)

        def next_multiple(every):
            return (step // every + 1) * every if every else s.total_steps

        # Each call into the compiled loop runs --iterations_per_loop steps (the original's
        # TPU loop), ending early only where a checkpoint or an export is due, so that those
        # land on their exact steps (and with `log_ends_call` where a progress line is). The loop returns every step's losses, which are logged
        # per --log_steps window afterwards, the window's time interpolated within the loop.
        progress.start(step)
        window = []
        last_saved = state.step_of(state.latest())
        while step < s.total_steps:
            stop = min(step + s.iterations_per_loop, s.total_steps,
                       next_multiple(s.save_checkpoints_steps), next_multiple(s.export_every),
                       next_multiple(s.log_steps if s.log_ends_call else 0))
            started = time.perf_counter()
            try:
                per_step = trainer.train_steps(iterator, stop - step)
            except training.NonFiniteLossError as error:
                kept = (f"the last checkpoint, saved while the loss was finite, is "
                        f"{state.latest()} (step {last_saved}); rerunning resumes from it"
                        if last_saved is not None else "no checkpoint had been saved yet")
                raise training.NonFiniteLossError(
                    f"{error} Training stopped before step {stop} without saving: {kept}. "
                    "Lower --learning_rate, or check the input data.") from None
            ended = time.perf_counter()
            first = step
            step = int(optimizer.iterations.numpy())
            for done in range(first + 1, step + 1):
                window.append({name: float(values[done - first - 1])
                               for name, values in per_step.items()})
                if done % s.log_steps == 0 or done >= s.total_steps:
                    averaged = {k: sum(m[k] for m in window) / len(window) for k in window[0]}
                    at = started + (ended - started) * (done - first) / (step - first)
                    progress.log(done, averaged, training.learning_rate_at(optimizer, done - 1),
                                 now=at)
                    window = []
            if step % s.save_checkpoints_steps == 0 or step >= s.total_steps:
                state.save(step)
                last_saved = step
                if on_checkpoint is not None:
                    on_checkpoint(step)
            if (on_export is not None and s.export_every and step % s.export_every == 0
                    and step < s.total_steps):
                on_export(step)
        return step


# =========================================================================================
# Evaluation and the best checkpoint
# =========================================================================================


def timed_evaluation(summaries, step, evaluate):
    """Runs `evaluate() -> dict`, adds `global_step`, logs the results with the time they
    took and writes them to the eval summaries; returns them (floats, the step an int)."""
    start = time.time()
    results = {key: float(value) for key, value in dict(evaluate()).items()}
    results["global_step"] = int(step)
    summaries_lib.log_evaluation(summaries, step, results, time.time() - start)
    return results


def wait_for(find, directory, poll_seconds, max_seconds=None):
    """Calls `find()` until it returns something true, waiting `poll_seconds` between looks
    (`max_seconds` in all; None: without end). Returns the last `find()` result."""
    waited = 0.0
    while True:
        found = find()
        if found or (max_seconds is not None and waited >= max_seconds):
            return found
        pause = poll_seconds if max_seconds is None else min(poll_seconds,
                                                             max_seconds - waited)
        logging.info("No new checkpoint in %s; waiting %.0f s.", directory, pause)
        time.sleep(pause)
        waited += pause


# Single-shard checkpoints: the data first, the index last (a reader looks for the index).
CHECKPOINT_SUFFIXES = (".data-00000-of-00001", ".index")


def copy_checkpoint(source, target):
    """Copies a single-shard checkpoint; returns the (source, target) file pairs."""
    pairs = [(source + suffix, target + suffix) for suffix in CHECKPOINT_SUFFIXES]
    for source_file, target_file in pairs:
        files.copy(source_file, target_file)
    return pairs


def rename_checkpoint(source, target):
    """Renames a single-shard checkpoint (over an existing one)."""
    for suffix in CHECKPOINT_SUFFIXES:
        tf.io.gfile.rename(source + suffix, target + suffix, overwrite=True)


def remove_checkpoint(prefix):
    """Removes a single-shard checkpoint (the index first: it is no longer found)."""
    for suffix in reversed(CHECKPOINT_SUFFIXES):
        if tf.io.gfile.exists(prefix + suffix):
            tf.io.gfile.remove(prefix + suffix)
