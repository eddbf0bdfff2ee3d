"""The demo job's curve step: how many labels pretraining saves (ALBERT's claim, measured).

For each label budget (32, 128, 512 and all 2,000 training rows of the word_order task by
default), each seed and each initialisation (`pretrained`: the pretraining step's last
checkpoint; `random`: the same architecture at its initial weights, the checkpoint
pretraining started from), the same fine-tuning recipe runs: a balanced random subset of
that many rows (drawn by the seed), `curve_steps` AdamW steps of `curve_batch_size`
(learning rate with linear warm-up and decay, as run_classifier), then dev and test
accuracy of the final weights. The seed also draws the classifier layer's initial weights,
the batch order and the dropout masks; both initialisations see the same subsets and
batches.

All runs share one model, one optimizer and one compiled train and eval step: between runs
the weights are reset from a snapshot of the checkpoint (plus the seed's classifier layer)
and the optimizer's slots and step count from their values before the first update, so
nothing is traced again. Features are tokenized once.

The baseline needs no network: a bag-of-words logistic regression (scikit-learn) on the
same subsets; on word_order it is at chance by construction (a swap leaves the words of a
sentence unchanged), so what a model scores above it is knowledge of word order. It is
also fitted on docstring_source, the topic task of the finetune step, for comparison.
"""

import math
import pathlib
import random

from albert_tf.demo.job import repo_path, shown, write_text
from albert_tf.demo.steps import spm_model
from albert_tf.demo.task_data import (TASK_LABELS, TASK_NAME, WORD_ORDER_LABELS,
                                      WORD_ORDER_NAME, read_task)

INITS = ("pretrained", "random")
_CHECKPOINT_OF = {"pretrained": "final_checkpoint", "random": "init_checkpoint"}
EVAL_BATCH_SIZE = 100
FEATURES = ("input_ids", "input_mask", "segment_ids")


def budget_subset(labels, budget, seed):
    """Indices of a balanced random subset of `budget` rows (all rows for 0 or a budget at
    least the number of rows), drawn with `random.Random(seed)`; sorted."""
    if not budget or budget >= len(labels):
        return list(range(len(labels)))
    rng = random.Random(seed)
    classes = sorted(set(labels))
    chosen = []
    for rank, label in enumerate(classes):
        rows = [i for i, y in enumerate(labels) if y == label]
        share = budget // len(classes) + (1 if rank < budget % len(classes) else 0)
        chosen.extend(rng.sample(rows, min(share, len(rows))))
    return sorted(chosen)


def batch_order(indices, batch_size, num_steps, seed):
    """[num_steps, batch_size] row indices: shuffled epochs of `indices`, concatenated."""
    rng = random.Random(seed)
    stream = []
    while len(stream) < batch_size * num_steps:
        epoch = list(indices)
        rng.shuffle(epoch)
        stream.extend(epoch)
    return [stream[i * batch_size:(i + 1) * batch_size] for i in range(num_steps)]


def mean_and_spread(values):
    """(mean, sample standard deviation) of a list; the spread is 0 for one value."""
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def summarize(rows, keys=("init",)):
    """[{**keys, labels, runs, test_mean, test_std, dev_mean, dev_std}] per point."""
    points = {}
    for row in rows:
        points.setdefault(tuple(row[k] for k in keys) + (row["labels"],), []).append(row)
    table = []
    for key, group in sorted(points.items(), key=lambda item: (item[0][:-1], item[0][-1])):
        test_mean, test_std = mean_and_spread([r["test_accuracy"] for r in group])
        dev_mean, dev_std = mean_and_spread([r["dev_accuracy"] for r in group])
        table.append({**dict(zip(keys, key[:-1])), "labels": key[-1], "runs": len(group),
                      "test_mean": test_mean, "test_std": test_std,
                      "dev_mean": dev_mean, "dev_std": dev_std})
    return table


# === The network runs ====================================================================


class CurveRunner:
    """One `AlbertClassifier`, optimizer and compiled step, reset between fine-tuning runs.

    Args:
      config: the `AlbertConfig`.
      checkpoints: {init name: original-format checkpoint prefix}.
      learning_rate, num_steps, warmup_steps: the AdamW recipe (`create_optimizer`).
      num_labels: classes of the task.
    """

    def __init__(self, config, checkpoints, learning_rate, num_steps, warmup_steps,
                 num_labels=2):
        import keras
        import numpy as np
        import tensorflow as tf

        from albert_tf import optimization
        from albert_tf.checkpoints import load_original_checkpoint
        from albert_tf.heads import AlbertClassifier

        self.model = AlbertClassifier(config, num_labels)
        self.snapshots = {}
        for name, checkpoint in checkpoints.items():
            load_original_checkpoint(self.model, checkpoint)
            self.snapshots[name] = [np.array(v.numpy()) for v in self.model.weights]
        self.head = (self.model.output_weights, self.model.output_bias)
        self.optimizer = optimization.create_optimizer(learning_rate, num_steps,
                                                       warmup_steps, optimizer="adamw")
        self.optimizer.build(self.model.trainable_variables)
        self.optimizer_start = [np.array(v.numpy()) for v in self.optimizer.variables]
        self.num_steps = num_steps
        self._keras = keras
        model, optimizer = self.model, self.optimizer

        # Batches are cut to their longest real sequence (`cut_batch`), so the steps take
        # any length; the outputs do not depend on it (the attention mask hides padding).
        signature = {k: tf.TensorSpec([None, None], tf.int32) for k in FEATURES}

        @tf.function(input_signature=[signature, tf.TensorSpec([None], tf.int32)])
        def train_step(features, labels):
            with tf.GradientTape() as tape:
                logits = model(features, training=True)["logits"]
                loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                    labels=labels, logits=logits))
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return loss

        @tf.function(input_signature=[signature])
        def predict_step(features):
            return tf.argmax(model(features, training=False)["logits"], -1, output_type=tf.int32)

        self.train_step, self.predict_step = train_step, predict_step

    def reset(self, init, seed):
        """The `init` weights, the seed's classifier layer, a fresh optimizer and dropout."""
        for variable, value in zip(self.model.weights, self.snapshots[init]):
            variable.assign(value)
        weights, bias = self.head
        # The original classifier layer's initializer (truncated normal, stddev 0.02).
        weights.assign(self._keras.initializers.TruncatedNormal(stddev=0.02, seed=seed)(
            weights.shape))
        bias.assign(self._keras.ops.zeros(bias.shape))
        for variable, value in zip(self.optimizer.variables, self.optimizer_start):
            variable.assign(value)
        self.model.dropout.seed_generator.state.assign([seed, 0])

    def train(self, features, labels, batches):
        """Runs one step per batch of row indices; returns the losses (floats)."""
        import tensorflow as tf

        losses = [self.train_step(cut_batch(features, rows), tf.constant(labels[rows]))
                  for rows in batches]
        return [float(loss) for loss in losses]

    def accuracy(self, features, labels):
        """Accuracy of the current weights: rows in batches of `EVAL_BATCH_SIZE` taken in
        order of length, each cut to its longest row (every row scored once)."""
        import numpy as np

        order = np.argsort(features["input_mask"].sum(1), kind="stable")
        predicted = np.empty(len(labels), np.int32)
        for start in range(0, len(order), EVAL_BATCH_SIZE):
            rows = order[start:start + EVAL_BATCH_SIZE]
            predicted[rows] = self.predict_step(cut_batch(features, rows)).numpy()
        return float(np.mean(predicted == labels))


def cut_batch(features, rows):
    """{name: int32 tensor [len(rows), L]}: the rows' features cut to their longest real
    sequence L (from `input_mask`), rounded up to a multiple of 8."""
    import tensorflow as tf

    length = int(features["input_mask"][rows].sum(1).max())
    length = min(-(-length // 8) * 8, features["input_mask"].shape[1])
    return {k: tf.constant(features[k][rows, :length]) for k in FEATURES}


def encode_task(tokenizer, sentences, max_seq_length):
    """{input_ids, input_mask, segment_ids: int32 [N, max_seq_length]} of single sentences."""
    import numpy as np

    from albert_tf.tokenization import encode_inputs

    rows = [encode_inputs(tokenizer, text, None, max_seq_length) for text in sentences]
    return {key: np.array([r[key] for r in rows], np.int32) for key in FEATURES}


def network_curve(job, task_dir, labels_of_task, log):
    """Fine-tuning rows of the curve, and the training losses of each run."""
    import numpy as np

    from albert_tf.config import AlbertConfig
    from albert_tf.tokenization import FullTokenizer

    s = job.settings
    tokenizer = FullTokenizer(None, s.do_lower_case, spm_model(job))
    data = {}
    for split in ("train", "dev", "test"):
        sentences, labels = read_task(task_dir, f"{split}.tsv", labels_of_task)
        data[split] = (encode_task(tokenizer, sentences, s.max_seq_length),
                       np.array(labels, np.int32))
    pretrain = job.require("pretrain")
    checkpoints = {init: repo_path(pretrain["files"][_CHECKPOINT_OF[init]]) for init in INITS}
    runner = CurveRunner(AlbertConfig.from_json_file(job.config_file()), checkpoints,
                         s.curve_learning_rate, s.curve_steps, s.curve_warmup_steps,
                         len(labels_of_task))
    train_features, train_labels = data["train"]
    rows, losses, done = [], {}, 0
    for budget in s.curve_budgets:
        for seed in s.curve_seeds:
            subset = budget_subset(list(train_labels), budget, seed)
            batches = batch_order(subset, s.curve_batch_size, s.curve_steps, seed)
            for init in INITS:
                runner.reset(init, seed)
                run_losses = runner.train(train_features, train_labels, batches)
                row = {"labels": len(subset), "seed": seed, "init": init,
                       "dev_accuracy": runner.accuracy(*data["dev"]),
                       "test_accuracy": runner.accuracy(*data["test"])}
                rows.append(row)
                losses[f"{init}/{len(subset)}/{seed}"] = run_losses
                done += 1
                log(f"  [{done}/{s.curve_runs}] {len(subset)} labels, seed {seed}, {init}: "
                    f"dev {row['dev_accuracy']:.3f}, test {row['test_accuracy']:.3f}, last "
                    f"loss {run_losses[-1]:.3f}")
    return rows, losses


# === The baseline without a network ======================================================


def bag_of_words_rows(task, task_dir, labels_of_task, budgets, seeds):
    """Bag-of-words logistic regression (scikit-learn) on the curve's subsets of a task.

    Word counts of lower-cased words (CountVectorizer's default tokens), an L2-regularised
    logistic regression (C=1, lbfgs). Returns rows like the curve's, with `task`.
    """
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    train_text, train_labels = read_task(task_dir, "train.tsv", labels_of_task)
    splits = {name: read_task(task_dir, f"{name}.tsv", labels_of_task)
              for name in ("dev", "test")}
    rows = []
    for budget in budgets:
        for seed in seeds:
            subset = budget_subset(train_labels, budget, seed)
            vectorizer = CountVectorizer(lowercase=True)
            x = vectorizer.fit_transform([train_text[i] for i in subset])
            y = [train_labels[i] for i in subset]
            classifier = LogisticRegression(C=1.0, max_iter=2000).fit(x, y)
            row = {"task": task, "labels": len(subset), "seed": seed}
            for name, (text, labels) in splits.items():
                predicted = classifier.predict(vectorizer.transform(text))
                row[f"{name}_accuracy"] = float((predicted == labels).mean())
            rows.append(row)
    return rows


def step_curve(job):
    s = job.settings
    task_dir = job.task_dir(s.curve_task_dir, name="curve_task")
    rows, losses = network_curve(job, task_dir, WORD_ORDER_LABELS, job.log)
    _, test_labels = read_task(task_dir, "test.tsv", WORD_ORDER_LABELS)
    baseline = bag_of_words_rows(WORD_ORDER_NAME, task_dir, WORD_ORDER_LABELS,
                                 s.curve_budgets, s.curve_seeds)
    baseline += bag_of_words_rows(TASK_NAME, job.task_dir(), TASK_LABELS, s.curve_budgets,
                                  s.curve_seeds)
    losses_dir = job.dir("curve")
    write_text(losses_dir / "losses.tsv", "run\tstep\tloss\n" + "".join(
        f"{run}\t{step}\t{loss:.6f}\n" for run, values in losses.items()
        for step, loss in enumerate(values, 1)))
    table = summarize(rows)
    by = {(p["init"], p["labels"]): p for p in table}
    largest = max(p["labels"] for p in table)
    smallest = min(p["labels"] for p in table)
    return {
        "task": WORD_ORDER_NAME,
        "rows": rows,
        "table": table,
        "test_majority": max(test_labels.count(y) for y in set(test_labels)) / len(test_labels),
        "baseline": baseline,
        "baseline_table": summarize(baseline, keys=("task",)),
        "files": {"task_dir": shown(task_dir), "losses": shown(losses_dir / "losses.tsv")},
        "commands": [f"python albert_demo.py --run_dir={shown(job.run_dir)} --steps=curve"],
        "summary": (f"{len(rows)} runs; test accuracy at {smallest} labels "
                    f"{by['pretrained', smallest]['test_mean']:.3f} pretrained vs "
                    f"{by['random', smallest]['test_mean']:.3f} random, at {largest} "
                    f"{by['pretrained', largest]['test_mean']:.3f} vs "
                    f"{by['random', largest]['test_mean']:.3f}"),
    }


def losses_of(path):
    """{run: [(step, loss)]} of a curve's losses.tsv."""
    series = {}
    for line in pathlib.Path(path).read_text().splitlines()[1:]:
        run, step, loss = line.split("\t")
        series.setdefault(run, []).append((int(step), float(loss)))
    return series
