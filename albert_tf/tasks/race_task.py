"""RACE fine-tuning as a `tasks.base.Task`: the original run_race.py's run.

    RaceTask        the task the loop runs: `AlbertMultipleChoice` (one logit per option from
                    the pooled output), the mean cross-entropy over the softmax of the four,
                    the features of `albert_tf.tasks.race` as input, the dev metrics.
    compute_metrics the original's `eval_accuracy` and `eval_loss` (all questions), plus the
                    accuracy of each level (`eval_accuracy_middle`, `eval_accuracy_high`), as
                    RACE results are reported (RACE-M, RACE-H, RACE).
    prediction_lines    `test_predictions.tsv`: one line per test question with its article
                    id, question index, level, predicted letter, answer and the four
                    probabilities.

`run_race` runs it with `albert_tf.tasks.base.run`.
"""

from absl import logging
import numpy as np
import tensorflow as tf

from albert_tf import files
from albert_tf import finetuning
from albert_tf import training
from albert_tf.tasks import base
from albert_tf.tasks.race import (LABELS, LEVELS, METRIC, NUM_CHOICES, cached_features,
                                  load_features, make_tokenizer, read_split, train_input)


# =========================================================================================
# Loss and metrics
# =========================================================================================


def per_example_loss(logits, labels):
    """Cross-entropy of the softmax over the options against the answer, [B] float32.

    The original's loss is the mean of these over the batch.
    """
    log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)
    return -tf.gather(log_probs, tf.cast(labels, tf.int32), batch_dims=1)


def race_loss_fn(model, batch, training):
    """`loss_fn(model, batch, training) -> [B]` for `FineTuner.train`."""
    return per_example_loss(model(batch, training=training)["logits"], batch["label_ids"])


def race_output_fn(model, batch):
    """`output_fn(model, batch)` for `FineTuner.predict`: logits, probabilities, loss."""
    logits = tf.cast(model(batch, training=False)["logits"], tf.float32)
    return {"logits": logits, "probabilities": tf.nn.softmax(logits, axis=-1),
            "loss": per_example_loss(logits, batch["label_ids"])}


def compute_metrics(logits, labels, losses, levels=None, batch_size=None):
    """RACE metrics under the original's names, with the accuracy of each level.

    Args:
      logits: [N, 4] float.
      labels: [N] answer indices.
      losses: [N] per-question losses.
      levels: [N] "middle"/"high" per question (None: no per-level figures).
      batch_size: the eval batch size, for `loss` (the mean over batches of each batch's
        mean, as the Estimator reports it); None: the mean over questions.

    Returns a dict of floats: `eval_accuracy`, `eval_loss` (over all questions; the
    original's), `loss`, and for each level present `eval_accuracy_<level>` and
    `eval_loss_<level>`.
    """
    logits = np.asarray(logits, np.float64)
    labels = np.asarray(labels, np.int64)
    losses = np.asarray(losses, np.float64)
    correct = np.argmax(logits, axis=-1) == labels
    results = {"eval_accuracy": float(np.mean(correct)), "eval_loss": float(np.mean(losses))}
    if batch_size:
        results["loss"] = float(np.mean([np.mean(losses[i:i + batch_size])
                                         for i in range(0, len(losses), batch_size)]))
    else:
        results["loss"] = results["eval_loss"]
    if levels is not None:
        levels = np.asarray(levels)
        for level in LEVELS:
            mask = levels == level
            if mask.any():
                results[f"eval_accuracy_{level}"] = float(np.mean(correct[mask]))
                results[f"eval_loss_{level}"] = float(np.mean(losses[mask]))
    return results


def predict_split(tuner, features_path, examples, max_seq_length, batch_size):
    """Runs the model over a features file; returns {logits, probabilities, loss, label_ids}."""
    return tuner.predict(load_features(features_path, max_seq_length), race_output_fn,
                         batch_size=batch_size, keep=("label_ids",),
                         num_examples=len(examples))


# =========================================================================================
# Prediction files
# =========================================================================================

PREDICTIONS_HEADER = ("id", "question_index", "level", "prediction", "answer", "prob_A",
                      "prob_B", "prob_C", "prob_D")


def prediction_lines(examples, probabilities):
    """Tab-separated lines: `PREDICTIONS_HEADER`, then one per question (answer "" if
    unknown; probabilities as float32 text)."""
    probabilities = np.asarray(probabilities, np.float32)
    if len(probabilities) != len(examples):
        raise ValueError(f"{len(probabilities)} predictions for {len(examples)} questions.")
    lines = ["\t".join(PREDICTIONS_HEADER)]
    for example, row in zip(examples, probabilities):
        answer = "" if example.label is None else LABELS[example.label]
        lines.append("\t".join([example.example_id, str(example.question_index), example.level,
                                LABELS[int(np.argmax(row))], answer]
                               + [str(p) for p in row]))
    return lines


def write_results(path, results, title=None, best=None):
    """`key = value` lines (sorted), as the original's eval_results / predict_results."""
    lines = [f"***** {title} *****"] if title else []
    lines += [f"{key} = {results[key]}" for key in sorted(results)]
    if best is not None:
        lines.append(f"best = {best}")
    files.write_text(path, "".join(line + "\n" for line in lines))


# =========================================================================================
# The task and the run
# =========================================================================================


class RaceTask(base.Task):
    """RACE as the fine-tuning loop runs it.

    Args:
      config: the `AlbertConfig`.
      settings: `finetuning.FinetuningSettings` (`max_seq_length` per choice sequence).
      race: `RaceSettings`.
    """

    metric_key = METRIC

    def __init__(self, config, settings, race):
        super().__init__(config, settings)
        self.race = race
        self.do_train = race.do_train
        self.tokenizer = None
        self.train, self.dev, self.test = None, None, None
        self.train_path, self.dev_path = None, None

    def check(self):
        r, s = self.race, self.settings
        if not (r.do_train or r.do_eval or r.do_predict):
            raise training.SettingsError(
                "At least one of --do_train, --do_eval or --do_predict must be set.")
        if r.high_only and r.middle_only:
            raise training.SettingsError("--high_only and --middle_only exclude each other; "
                                         "set at most one (neither: both levels).")
        base.check_sequence_length(self.config, s.max_seq_length, 4,
                                   "[CLS] article [SEP] qa [SEP]")
        if r.max_qa_length < 1:
            raise training.SettingsError(f"--max_qa_length must be at least 1, got "
                                         f"{r.max_qa_length}.")
        if r.max_qa_length > s.max_seq_length - 3:
            logging.warning("--max_qa_length=%d leaves no room for the article in "
                            "--max_seq_length=%d: question + option keep their last %d "
                            "pieces.", r.max_qa_length, s.max_seq_length, s.max_seq_length - 3)
        base.require_tokenizer(r.spm_model_file, r.vocab_file)
        if not r.data_dir:
            raise training.SettingsError("Set --data_dir (the folder that holds RACE/).")

    def read(self):
        r = self.race
        self.tokenizer = make_tokenizer(r.spm_model_file, r.vocab_file, r.do_lower_case)
        use_spm = bool(r.spm_model_file)

        def read(split):
            data = read_split(r.data_dir, split, r.do_lower_case, use_spm, r.levels,
                              r.skip_bad_examples)
            counts = {level: sum(e.level == level for e in data.examples)
                      for level in r.levels}
            logging.info("RACE %s: %d questions (%s) from %d file(s).", split,
                         len(data.examples), ", ".join(f"{n} {level}"
                                                       for level, n in counts.items()),
                         len(data.files))
            return data

        self.train = read("train") if r.do_train else None
        self.dev = read("dev") if r.do_eval else None
        self.test = read("test") if r.do_predict else None

    def _features(self, split, data, feature_file, check_count=True):
        r, s = self.race, self.settings
        return cached_features(data.examples, split, self.tokenizer, s.max_seq_length,
                               r.max_qa_length, r.cache_dir or s.output_dir, feature_file,
                               check_count)

    def prepare(self):
        if self.dev is not None:
            self.dev_path = self._features("dev", self.dev, self.race.eval_file)
        if self.do_train:
            self.train_path = self._features("train", self.train, self.race.train_file,
                                             check_count=False)

    # --- The loop's interface ------------------------------------------------------------

    def build_model(self, config):
        from albert_tf.heads import AlbertMultipleChoice
        from albert_tf.modeling import AlbertModel

        encoder = AlbertModel(config,
                              use_one_hot_embeddings=self.settings.use_one_hot_embeddings)
        return AlbertMultipleChoice(config, NUM_CHOICES, self.race.dropout_prob,
                                    encoder=encoder)

    def per_example_loss(self, model, batch, training):
        return race_loss_fn(model, batch, training)

    def train_input(self):
        return train_input(self.train_path, self.settings.max_seq_length, self.settings.seed,
                           length_buckets=self.settings.length_buckets,
                           group_by_length=self.settings.group_by_length)

    def flops_per_example(self, config, seq_length):
        # Four sequences per question: the encoder's cost is four times a single one's.
        return NUM_CHOICES * super().flops_per_example(config, seq_length)

    def eval_input(self):
        if self.dev_path is None:
            return None
        return base.PredictInput(load_features(self.dev_path, self.settings.max_seq_length),
                                 num_examples=len(self.dev.examples),
                                 batch_size=self.settings.eval_batch_size, keep=("label_ids",))

    def predict_outputs(self, model, batch):
        return race_output_fn(model, batch)

    def metrics(self, predictions):
        return compute_metrics(predictions["logits"], predictions["label_ids"],
                               predictions["loss"], [e.level for e in self.dev.examples],
                               self.settings.eval_batch_size)

    # --- After training: the test predictions -------------------------------------------

    def finish(self, tuner, result):
        s, test = self.settings, self.test
        outcome = {"result": result, "test_metrics": None, "predictions": None,
                   "skipped": {name: data.skipped_questions for name, data in
                               (("train", self.train), ("dev", self.dev), ("test", test))
                               if data}}
        if test is None:
            return outcome
        tuner.restore_best()
        test_path = self._features("test", test, self.race.predict_file)
        outputs = predict_split(tuner, test_path, test.examples, s.max_seq_length,
                                s.predict_batch_size)
        if tuner.is_chief:
            path = files.join(s.output_dir, "test_predictions.tsv")
            lines = prediction_lines(test.examples, outputs["probabilities"])
            files.write_text(path, "".join(line + "\n" for line in lines))
            outcome["predictions"] = path
            logging.info("Test predictions: %s", path)
        if all(e.label is not None for e in test.examples):
            metrics = compute_metrics(outputs["logits"], outputs["label_ids"],
                                      outputs["loss"], [e.level for e in test.examples],
                                      s.predict_batch_size)
            outcome["test_metrics"] = metrics
            record = finetuning.EvaluationRecord(s.output_dir, METRIC, write=False)
            if record.best_step is not None:
                metrics["global_step"] = record.best_step
            if tuner.is_chief:
                write_results(files.join(s.output_dir, "predict_results.txt"), metrics,
                              title="Predict results",
                              best=-1 if record.best_value is None else record.best_value)
            logging.info("Test (model.ckpt-best): %s", ", ".join(
                f"{k} = {v:.4f}" for k, v in sorted(metrics.items())))
        else:
            logging.info("The test data have no answers: predictions only, no metrics.")
        return outcome


def run_race(config, settings, race, strategy=None):
    """Fine-tunes, evaluates and predicts RACE, as run_race.py.

    Args:
      config: the `AlbertConfig`.
      settings: `finetuning.FinetuningSettings` (the loop's flags; `max_seq_length` per
        choice sequence).
      race: `RaceSettings`.
      strategy: a `tf.distribute.Strategy` (default: one device).

    Every split the phases need is read and checked before the model is built, and
    `init_checkpoint` is loaded before features are converted, so bad input stops the run
    before any work. Written to `settings.output_dir`: the checkpoints and records of
    `finetuning` (`eval_results.txt` with `eval_accuracy`, `eval_loss` and the per-level
    accuracies of every checkpoint, `best_trial.txt`, `model.ckpt-best`); with
    `do_predict`, `predict_results.txt` (the test metrics of `model.ckpt-best`, when the
    test answers are known) and `test_predictions.tsv` (`prediction_lines`); the keyed
    feature files.

    Returns a dict: `result` (the `FinetuningResult`, or None), `test_metrics` (or None),
    `predictions` (the predictions file, or None), `skipped` ({split: skipped questions}).
    """
    return base.run(RaceTask(config, settings, race), strategy)
