"""The fine-tuning task interface, and the one run every task goes through.

In the spirit of the Model Garden's `Task`: a task says what is specific to it (its model,
its per-example loss, its inputs, its metrics, its output files); `albert_tf.finetuning`
(`FineTuner`, on the one loop of `albert_tf.training_loop`) trains, evaluates each
checkpoint, keeps the best and predicts. The tuner runs the predictions itself and gives
them to `Task.metrics`; nothing in a task calls back into the tuner during training.

`run(task, strategy)` is the skeleton that run_classifier.py, run_race.py and run_squad.py
share, in the original scripts' order:

    check      settings that cannot work stop the run before any work (`SettingsError`)
    read       every input file the phases need is read and checked
    build      the model, in the strategy's scope, under the mixed-precision policy
    warm start `--init_checkpoint` (a checkpoint that does not fit stops the run here)
    features   converted once into the cache
    train      to `train_step`, evaluating every saved checkpoint (or, without training,
               the original's eval pass over a training run's checkpoints)
    finish     predict with the best checkpoint and write the task's output files

The data code (readers, features) lives in `glue.py`, `race.py`, `squad*.py`; the tasks
that run it in `glue_task.py`, `race_task.py` and `squad_task.py`.
"""

from absl import logging

from albert_tf import finetuning
from albert_tf import heads
from albert_tf import training
from albert_tf.finetuning import PredictInput  # noqa: F401 (part of the interface)
from albert_tf.summaries import encoder_flops_per_example


class Task:
    """A fine-tuning task: what `FineTuner` and `run` need from it.

    Args:
      config: the `AlbertConfig`.
      settings: `finetuning.FinetuningSettings` (the loop's flags).

    Subclasses set `metric_key` (the dev metric that picks the best checkpoint, greater is
    better) and implement the methods that raise NotImplementedError.
    """

    metric_key = None

    def __init__(self, config, settings):
        self.config = config
        self.settings = settings
        self.is_chief = True   # set by `run` from the strategy

    # --- The model and its training ------------------------------------------------------

    def build_model(self, config):
        """The task's Keras model (called in the strategy's scope)."""
        raise NotImplementedError

    def per_example_loss(self, model, batch, training):
        """Per-example training losses [B] (float) of a per-replica batch."""
        raise NotImplementedError

    def train_input(self):
        """`dataset_fn(batch_size, num_shards, shard_index) -> tf.data.Dataset` of training
        batches, repeating without end."""
        raise NotImplementedError

    def flops_per_example(self, config, seq_length):
        """Training FLOPs per example, for MFU (default: one encoder pass and the pooler)."""
        return encoder_flops_per_example(config, seq_length)

    # --- Evaluation ----------------------------------------------------------------------

    def eval_input(self):
        """The dev set each checkpoint is scored on (`PredictInput`), or None (no dev set:
        training writes `model.ckpt-<step>` snapshots for a later evaluation pass)."""
        return None

    def predict_outputs(self, model, batch):
        """The tensors [B, ...] kept per example when predicting (default: the head's)."""
        return heads.head_outputs(model(batch, training=False))

    def metrics(self, predictions):
        """The dev metrics (a dict of floats) from the predictions on `eval_input()`:
        {name: np.ndarray [N, ...]} in dataset order (`predict_outputs` and the kept
        features)."""
        raise NotImplementedError

    # --- The phases of `run` -------------------------------------------------------------

    do_train = False

    def check(self):
        """Raises `training.SettingsError` for settings that cannot work."""

    def read(self):
        """Reads and checks every input file the phases need (before the model is built)."""

    def prepare(self):
        """Converts (or finds in the cache) the features the phases need."""

    def evaluate_without_training(self, tuner):
        """The evaluation when not training: the original's eval pass over the checkpoints
        of a training run in `output_dir` (None when there is no dev set)."""
        if self.eval_input() is None:
            return None
        return tuner.evaluate_checkpoints(self)

    def finish(self, tuner, result):
        """Predicts and writes the task's output files; returns the run's outcome (dict)."""
        return {"result": result}


def run(task, strategy=None):
    """Runs every phase of `task` (see the module docstring); returns `task.finish`'s dict.

    `result` in it is the `finetuning.FinetuningResult` of training or evaluation, or None.
    """
    task.check()
    task.read()
    tuner = finetuning.FineTuner(task.config, task.settings, task.build_model, strategy)
    task.is_chief = tuner.is_chief
    if task.do_train:
        tuner.initialize()
    task.prepare()
    result = tuner.train(task) if task.do_train else task.evaluate_without_training(tuner)
    if result is not None and result.best_step is not None:
        best = result.evaluations.get(result.best_step, {})
        logging.info("Best checkpoint: step %d, %s = %.4f%s.", result.best_step,
                     task.metric_key, result.best_value, "".join(
                         f", {k} = {best[k]:.4f}" for k in sorted(best)
                         if k.startswith(task.metric_key + "_")))
    return task.finish(tuner, result)


def check_sequence_length(config, max_seq_length, minimum, layout):
    """Raises SettingsError unless `minimum <= max_seq_length <= max_position_embeddings`.

    `layout` names what must fit in the minimum (e.g. "[CLS] a [SEP]").
    """
    if max_seq_length > config.max_position_embeddings:
        raise training.SettingsError(
            f"Cannot use --max_seq_length={max_seq_length}: the model has only "
            f"{config.max_position_embeddings} position embeddings.")
    if max_seq_length < minimum:
        raise training.SettingsError(f"--max_seq_length must be at least {minimum} "
                                     f"({layout}), got {max_seq_length}.")


def require_tokenizer(spm_model_file, vocab_file):
    """Raises SettingsError unless a SentencePiece model or a WordPiece vocabulary is set."""
    if not (spm_model_file or vocab_file):
        raise training.SettingsError(
            "Set --spm_model_file (SentencePiece) or --vocab_file (WordPiece).")
