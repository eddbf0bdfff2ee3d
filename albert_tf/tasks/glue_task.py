"""GLUE fine-tuning as a `tasks.base.Task`: the original run_classifier.py's run.

    ClassifierTask  the task the loop runs: `AlbertClassifier`, the original losses, the
                    features of `albert_tf.tasks.glue` as input, the dev metrics.
    compute_metrics the original's `eval_accuracy`, `eval_loss`, `matthew_corr`, `pearson`,
                    `MSE`, plus the official GLUE metrics it lacks: `f1` (MRPC, QQP) and
                    `spearman` (STS-B), with scikit-learn and SciPy.
    write_predictions   `test_results.tsv` and `submit_results.tsv` as the original, and the
                    GLUE-server files (`glue_submission/MNLI-m.tsv`, `AX.tsv`, ...).
    --export_dir    `albert_tf.export.export_saved_model` (head "classifier"): a SavedModel
                    that takes raw strings and returns probabilities.

`run_classifier` runs it with `albert_tf.tasks.base.run`.
"""

from absl import logging
import numpy as np
import tensorflow as tf

from albert_tf import files
from albert_tf import finetuning
from albert_tf import tokenization
from albert_tf import training
from albert_tf.tasks import base
from albert_tf.tasks.glue import (cached_features, get_task, load_features, read_examples,
                                  train_input, tsv_task)


# =========================================================================================
# Loss and metrics
# =========================================================================================


def per_example_loss(task, outputs, labels):
    """Cross-entropy against the label (classification) or squared error (regression), [B].

    The original's losses; the batch loss is their mean.
    """
    logits = tf.cast(outputs["logits"], tf.float32)
    if task.is_regression:
        return tf.square(tf.squeeze(logits, -1) - tf.cast(labels, tf.float32))
    log_probs = tf.nn.log_softmax(logits, axis=-1)
    return -tf.gather(log_probs, tf.cast(labels, tf.int32), batch_dims=1)


def classifier_loss_fn(task):
    """`loss_fn(model, batch, training) -> [B]` for `FineTuner.train`."""
    def loss_fn(model, batch, training):
        return per_example_loss(task, model(batch, training=training), batch["label_ids"])
    return loss_fn


def classifier_output_fn(task):
    """`output_fn(model, batch)` for `FineTuner.predict`: logits and per-example loss."""
    def output_fn(model, batch):
        outputs = model(batch, training=False)
        return {"logits": tf.cast(outputs["logits"], tf.float32),
                "loss": per_example_loss(task, outputs, batch["label_ids"])}
    return output_fn


def _correlation(fn, x, y):
    # Undefined when one side is constant (SciPy returns NaN and warns); 0 then, as the
    # original's Matthews correlation does with a zero denominator.
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return 0.0
    return float(fn(x, y)[0])


def compute_metrics(task, logits, labels, losses, batch_size=None):
    """The dev metrics of a task, under the original's names.

    Args:
      task: the `GlueTask`.
      logits: [N, num_labels] float.
      labels: [N] label ids (int) or scores (float, regression).
      losses: [N] per-example losses.
      batch_size: the eval batch size, for `loss` (the mean over eval batches of each
        batch's mean loss, as the Estimator reports it); None: the mean over examples.

    Returns a dict of floats:
      every task: `eval_loss` (mean per-example loss), `loss`;
      classification: `eval_accuracy`; MRPC and QQP also `f1` (of class "1", the official
        GLUE metric the original lacks); CoLA also `matthew_corr`;
      regression (STS-B): `pearson`, `spearman` (official, not in the original), `MSE`.
    """
    from scipy import stats
    from sklearn import metrics as skm

    logits = np.asarray(logits, np.float64)
    labels = np.asarray(labels)
    losses = np.asarray(losses, np.float64)
    results = {"eval_loss": float(np.mean(losses))}
    if batch_size:
        batches = [losses[i:i + batch_size] for i in range(0, len(losses), batch_size)]
        results["loss"] = float(np.mean([np.mean(b) for b in batches]))
    else:
        results["loss"] = results["eval_loss"]
    if task.is_regression:
        predictions = logits.reshape(-1)
        labels = labels.astype(np.float64)
        results["pearson"] = _correlation(stats.pearsonr, predictions, labels)
        results["spearman"] = _correlation(stats.spearmanr, predictions, labels)
        results["MSE"] = float(skm.mean_squared_error(labels, predictions))
        return results
    predictions = np.argmax(logits, axis=-1)
    labels = labels.astype(np.int64)
    results["eval_accuracy"] = float(skm.accuracy_score(labels, predictions))
    if task.name == "cola":
        results["matthew_corr"] = float(skm.matthews_corrcoef(labels, predictions))
    if task.f1:
        results["f1"] = float(skm.f1_score(labels, predictions, pos_label=1,
                                           zero_division=0.0))
    return results


# =========================================================================================
# Predictions and submission files
# =========================================================================================


def _float_text(value):
    # The original writes numpy float32 values with str().
    return str(np.float32(value))


def prediction_lines(task, examples, logits):
    """(test_results lines, submission lines) of the original's two prediction files.

    test_results: per example the tab-joined probabilities (for regression the raw score).
    submission: a header `index<TAB>prediction`, then `guid<TAB>label name` (or the score).
    """
    logits = np.asarray(logits, np.float32)
    if len(logits) != len(examples):
        raise ValueError(f"{len(logits)} predictions for {len(examples)} examples.")
    results, submission = [], ["index\tprediction"]
    for example, row in zip(examples, logits):
        if task.is_regression:
            results.append(_float_text(row[0]))
            submission.append(f"{example.guid}\t{_float_text(row[0])}")
        else:
            probabilities = np.exp(row - row.max())
            probabilities /= probabilities.sum()
            results.append("\t".join(_float_text(p) for p in probabilities))
            submission.append(f"{example.guid}\t{task.labels[int(np.argmax(row))]}")
    return results, submission


def _write_lines(path, lines):
    files.write_text(path, "".join(line + "\n" for line in lines))


def write_predictions(task, split_file, examples, logits, output_dir, primary):
    """Writes the prediction files of one test file; returns their paths.

    `primary` (the task's first test file): `test_results.tsv` and `submit_results.tsv` in
    `output_dir`, as the original. Every test file with a GLUE-server name also goes to
    `output_dir/glue_submission/<name>` (e.g. `MNLI-m.tsv`), ready to zip and upload.
    """
    results, submission = prediction_lines(task, examples, logits)
    paths = []
    if primary:
        for name, lines in (("test_results.tsv", results), ("submit_results.tsv", submission)):
            paths.append(files.join(output_dir, name))
            _write_lines(paths[-1], lines)
    if split_file.submission:
        folder = files.join(output_dir, "glue_submission")
        paths.append(files.join(folder, split_file.submission))
        _write_lines(paths[-1], submission)
    return paths


# =========================================================================================
# The task and the run
# =========================================================================================


def task_from_settings(classifier):
    """The `GlueTask` that `ClassifierSettings` name."""
    if classifier.task_name.lower() == "tsv":
        return tsv_task(classifier.labels, classifier.text_a_column, classifier.text_b_column,
                        classifier.label_column, classifier.tsv_header)
    return get_task(classifier.task_name)


class ClassifierTask(base.Task):
    """A GLUE (or tsv) task as the fine-tuning loop runs it.

    Args:
      config: the `AlbertConfig`.
      settings: `finetuning.FinetuningSettings` (the loop's flags).
      classifier: `ClassifierSettings` (task, data, tokenizer, phases).
    """

    def __init__(self, config, settings, classifier):
        super().__init__(config, settings)
        self.classifier = classifier
        self.task = task_from_settings(classifier)
        self.metric_key = self.task.metric
        self.do_train = classifier.do_train
        self.tokenizer = None
        self.train_examples, self.dev_sets, self.test_sets = None, [], []
        self.train_path, self.dev_paths = None, []

    def check(self):
        c, s, task = self.classifier, self.settings, self.task
        if not (c.do_train or c.do_eval or c.do_predict or c.export_dir):
            raise training.SettingsError("At least one of --do_train, --do_eval, --do_predict "
                                         "or --export_dir must be set.")
        base.check_sequence_length(self.config, s.max_seq_length, 3, "[CLS] a [SEP]")
        if task.train is None and (c.do_train or c.do_eval):
            raise training.SettingsError(
                f"Task {task.name} has a test set only: predict it with a model fine-tuned on "
                "MNLI (--do_predict with --output_dir set to the MNLI run's folder).")
        best = files.join(s.output_dir, finetuning.BEST_PREFIX + ".index")
        if (c.do_predict or c.export_dir) and not c.do_eval and not tf.io.gfile.exists(best):
            raise training.SettingsError(
                f"--do_predict and --export_dir use {best[:-len('.index')]}, which the "
                "evaluation picks: add --do_eval (it evaluates every checkpoint of the run).")
        base.require_tokenizer(c.spm_model_file, c.vocab_file)

    def read(self):
        c, task = self.classifier, self.task
        self.tokenizer = tokenization.FullTokenizer(c.vocab_file, c.do_lower_case,
                                                    c.spm_model_file)

        def read(split_file):
            return read_examples(task, split_file, c.data_dir, c.do_lower_case)

        self.train_examples = read(task.train) if c.do_train else None
        self.dev_sets = [(f, read(f)) for f in task.dev] if c.do_eval else []
        if c.do_predict:
            for split_file in task.test:
                if split_file.optional and not tf.io.gfile.exists(
                        files.join(c.data_dir, split_file.path)):
                    logging.warning("No %s: its predictions (%s) are skipped.",
                                    files.join(c.data_dir, split_file.path),
                                    split_file.submission)
                    continue
                self.test_sets.append((split_file, read(split_file)))
        named = [("train", self.train_examples)] if self.train_examples else []
        for name, examples in named + [(f.name, e) for f, e in self.dev_sets + self.test_sets]:
            logging.info("%s %s: %d examples.", task.name, name, len(examples))

    def _features(self, split_name, examples):
        return cached_features(examples, self.task, split_name, self.settings.max_seq_length,
                               self.tokenizer,
                               self.classifier.cached_dir or self.settings.output_dir)

    def prepare(self):
        self.dev_paths = [(f, self._features(f.name, e)) for f, e in self.dev_sets]
        if self.do_train:
            self.train_path = self._features("train", self.train_examples)

    # --- The loop's interface ------------------------------------------------------------

    def build_model(self, config):
        from albert_tf.heads import AlbertClassifier
        from albert_tf.modeling import AlbertModel

        encoder = AlbertModel(config,
                              use_one_hot_embeddings=self.settings.use_one_hot_embeddings)
        return AlbertClassifier(config, self.task.num_labels, encoder=encoder)

    def per_example_loss(self, model, batch, training):
        return classifier_loss_fn(self.task)(model, batch, training)

    def train_input(self):
        return train_input(self.train_path, self.settings.max_seq_length,
                           self.task.is_regression, seed=self.settings.seed,
                           length_buckets=self.settings.length_buckets,
                           group_by_length=self.settings.group_by_length)

    def dev_input(self, path):
        """The `PredictInput` of a dev features file (labels kept)."""
        return base.PredictInput(
            load_features(path, self.settings.max_seq_length, self.task.is_regression),
            batch_size=self.settings.eval_batch_size, keep=("label_ids",))

    def eval_input(self):
        return self.dev_input(self.dev_paths[0][1]) if self.dev_paths else None

    def predict_outputs(self, model, batch):
        """Logits (float32) and per-example loss."""
        return classifier_output_fn(self.task)(model, batch)

    def metrics(self, predictions):
        return compute_metrics(self.task, predictions["logits"], predictions["label_ids"],
                               predictions["loss"], self.settings.eval_batch_size)

    # --- After training: other dev sets, predictions, export -----------------------------

    def finish(self, tuner, result):
        c, s, task = self.classifier, self.settings, self.task
        outcome = {"result": result, "extra_eval": {}, "predictions": {}, "export": None}
        if len(self.dev_paths) > 1 or c.do_predict or c.export_dir:
            tuner.restore_best()
        for split_file, path in self.dev_paths[1:]:
            metrics = tuner.evaluate(self, self.dev_input(path))
            outcome["extra_eval"][split_file.name] = metrics
            tuner.add_results_section(f"{split_file.name}, best checkpoint", metrics)
            logging.info("%s on the best checkpoint: %s", split_file.name, metrics)

        for index, (split_file, examples) in enumerate(self.test_sets):
            dataset = load_features(self._features(split_file.name, examples),
                                    s.max_seq_length, task.is_regression)
            outputs = tuner.predict(dataset, self.predict_outputs,
                                    batch_size=s.predict_batch_size,
                                    num_examples=len(examples))
            if tuner.is_chief:
                paths = write_predictions(task, split_file, examples, outputs["logits"],
                                          s.output_dir, primary=index == 0)
                outcome["predictions"][split_file.name] = paths
                logging.info("Predictions for %s: %s", split_file.name, ", ".join(paths))

        if c.export_dir and tuner.is_chief:
            # A SavedModel taking raw text (`text_a`, and `text_b` for pair tasks) in a new
            # version folder, as the original's Estimator export.
            from albert_tf import export as export_lib
            outcome["export"] = export_lib.export_saved_model(
                tuner.model, c.export_dir, c.spm_model_file, c.do_lower_case,
                s.max_seq_length, head="classifier",
                labels=None if task.is_regression else task.labels,
                text_pair=task.is_pair, versioned=True, threshold=c.threshold_to_export,
                length_buckets=s.length_buckets)
        return outcome


def run_classifier(config, settings, classifier, strategy=None):
    """Fine-tunes, evaluates, predicts and exports a GLUE (or tsv) task, as run_classifier.py.

    Args:
      config: the `AlbertConfig`.
      settings: `finetuning.FinetuningSettings` (the loop's flags).
      classifier: `ClassifierSettings` (task, data, tokenizer, phases).
      strategy: a `tf.distribute.Strategy` (default: one device).

    Every input file the phases need is read and checked before the model is built, and
    `init_checkpoint` is loaded before features are converted, so bad input stops the run
    before any work. Files written to `settings.output_dir`: see `finetuning` (checkpoints,
    best_trial.txt, eval_results.txt, model.ckpt-best), `write_predictions`
    (test_results.tsv, submit_results.tsv, glue_submission/) and the feature cache.

    Returns a dict: `result` (the `FinetuningResult` of training/evaluation, or None),
    `extra_eval` ({dev file name: metrics} of the other dev sets, on the best checkpoint),
    `predictions` ({test file name: [paths]}), `export` (the SavedModel folder, or None).
    """
    return base.run(ClassifierTask(config, settings, classifier), strategy)
