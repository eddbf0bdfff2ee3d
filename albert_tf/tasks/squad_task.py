"""Fine-tuning ALBERT on SQuAD v1.1 / v2.0 as a `tasks.base.Task`, as the original
run_squad_v1.py / run_squad_v2.py.

`run_squad(config, settings, squad)` runs `SquadTask` with `albert_tf.tasks.base.run`, on the
shared fine-tuning loop (`albert_tf.finetuning`: any strategy, mixed precision, XLA,
resumable checkpoints, progress lines):

1. Read the training file (questions count the steps: `int(questions / train_batch_size *
   num_train_epochs)`, warm-up `int(steps * warmup_proportion)`) and the prediction file.
2. Build the model (`AlbertSquadV1` or `AlbertSquadV2`) and warm-start its encoder from
   `init_checkpoint`.
3. Convert features once into the cache files (`--train_feature_file`,
   `--predict_feature_file`, `--predict_feature_left_file`).
4. Train with the original losses (below) and AdamW; evaluate every saved checkpoint on the
   prediction file with the official metric, keep the best (by F1) as `model.ckpt-best`.
5. Score `model.ckpt-best` once more and write its predictions last: predictions.json,
   nbest_predictions.json (and null_odds.json for v2.0), and the metrics in
   `eval_results.txt` and `squad_results.json`.

Losses (per example; the batch loss is their mean, as the original's):
- v1.1: (CE(start) + CE(end)) / 2, softmax cross-entropy of the start / end logits over all
  positions (padding included, as the original).
- v2.0: (NLL(start) + NLL(end)) / 2 from the p_mask-masked log-probabilities, the end ones
  conditioned on the gold start, plus 0.5 x sigmoid cross-entropy of `cls_logits` against
  `is_impossible`.
"""

import dataclasses

from absl import logging
import numpy as np
import tensorflow as tf

from albert_tf import files
from albert_tf import finetuning
from albert_tf import tokenization
from albert_tf import training
from albert_tf.settings import SquadSettings  # noqa: F401 (re-exported)
from albert_tf.tasks import base
from albert_tf.tasks import squad
from albert_tf.tasks import squad_postprocess as post

VERSIONS = ("1.1", "2.0")


def train_steps(num_questions, train_batch_size, num_train_epochs, warmup_proportion):
    """(train steps, warm-up steps) as the original counts them: from questions, not
    windows, truncated to integers."""
    steps = int(num_questions / train_batch_size * num_train_epochs)
    return steps, int(steps * warmup_proportion)


# === Models and losses ==================================================================

def build_squad_model(config, squad_settings, use_one_hot_embeddings=False):
    """`AlbertSquadV1` or `AlbertSquadV2` (with the settings' beam and dropout)."""
    from albert_tf.heads import AlbertSquadV1, AlbertSquadV2
    from albert_tf.modeling import AlbertModel

    encoder = AlbertModel(config, use_one_hot_embeddings=use_one_hot_embeddings)
    if squad_settings.is_v2:
        return AlbertSquadV2(config, start_n_top=squad_settings.start_n_top,
                             end_n_top=squad_settings.end_n_top,
                             dropout_prob=squad_settings.dropout_prob, encoder=encoder)
    return AlbertSquadV1(config, encoder=encoder)


def _picked(log_probs, positions):
    return tf.gather(log_probs, tf.cast(tf.reshape(positions, [-1]), tf.int32), batch_dims=1)


def squad_v1_loss(model, batch, training):
    """Per-example v1.1 loss [B]: (CE(start) + CE(end)) / 2 over all positions."""
    outputs = model(batch, training=training)
    start = _picked(tf.nn.log_softmax(outputs["start_logits"], -1), batch["start_positions"])
    end = _picked(tf.nn.log_softmax(outputs["end_logits"], -1), batch["end_positions"])
    return -(start + end) / 2.0


def squad_v2_loss(model, batch, training):
    """Per-example v2.0 loss [B]: (NLL(start) + NLL(end)) / 2 + 0.5 * BCE(answerability).

    The batch must hold `start_positions` (the head then conditions the end on the gold
    start, as the original in training), `end_positions`, `is_impossible` and `p_mask`.
    """
    outputs = model(batch, training=training)
    start = _picked(outputs["start_log_probs"], batch["start_positions"])
    end = _picked(outputs["end_log_probs"], batch["end_positions"])
    labels = tf.cast(tf.reshape(batch["is_impossible"], [-1]), tf.float32)
    answer = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels,
                                                     logits=outputs["cls_logits"])
    # The original weighs the answerability loss by 0.5 "so that the scale is comparable".
    return -(start + end) * 0.5 + 0.5 * answer


def squad_loss_fn(squad_settings):
    return squad_v2_loss if squad_settings.is_v2 else squad_v1_loss


# === Evaluation =========================================================================

def eval_dataset(feature_file, seq_length, is_v2):
    """Unbatched prediction features (int32) in file order, for `FineTuner.predict`."""
    spec = squad.feature_spec(seq_length, is_training=False, is_v2=is_v2)

    def parse(record):
        parsed = tf.io.parse_single_example(record, spec)
        return {name: tf.cast(t, tf.int32) for name, t in parsed.items()}

    return tf.data.TFRecordDataset(feature_file).map(parse, num_parallel_calls=tf.data.AUTOTUNE)


def raw_results(outputs, is_v2):
    """`RawResultV1` / `RawResultV2` list from `FineTuner.predict` arrays."""
    ids = outputs["unique_ids"]
    if not is_v2:
        return [post.RawResultV1(int(u), s, e) for u, s, e in
                zip(ids, outputs["start_logits"], outputs["end_logits"])]
    return [post.RawResultV2(int(u), a, b, c, d, float(z)) for u, a, b, c, d, z in
            zip(ids, outputs["start_top_log_probs"], outputs["start_top_index"],
                outputs["end_top_log_probs"], outputs["end_top_index"],
                outputs["cls_logits"])]


# === The run ============================================================================

def check_settings(config, settings, squad_settings):
    """Raises SettingsError for flag combinations that cannot work (before any work)."""
    q, s = squad_settings, settings
    error = training.SettingsError
    if q.squad_version not in VERSIONS:
        raise error(f"--squad_version={q.squad_version!r}; expected one of {VERSIONS}.")
    if not q.do_train and not q.do_predict:
        raise error("At least one of --do_train or --do_predict must be set.")
    if q.do_train:
        if not q.train_file:
            raise error("--do_train needs --train_file (the SQuAD training JSON).")
        if not q.train_feature_file:
            raise error("--do_train needs --train_feature_file: where the training features "
                        "are cached (built on the first run, reused afterwards).")
    if q.do_predict:
        for name in ("predict_file", "predict_feature_file", "predict_feature_left_file"):
            if not getattr(q, name):
                raise error(f"--do_predict needs --{name}.")
    if not q.spm_model_file:
        raise error("SQuAD needs --spm_model_file: the original aligns SentencePiece pieces "
                    "with the context's characters.")
    base.check_sequence_length(config, s.max_seq_length, 1, "one token")
    if s.max_seq_length <= q.max_query_length + 3:
        raise error(f"--max_seq_length ({s.max_seq_length}) must be greater than "
                    f"--max_query_length ({q.max_query_length}) + 3.")
    if q.doc_stride <= 0:
        raise error(f"--doc_stride must be positive, got {q.doc_stride}.")
    if q.n_best_size <= 0 or q.max_answer_length <= 0:
        raise error("--n_best_size and --max_answer_length must be positive.")
    if q.is_v2 and (q.start_n_top <= 0 or q.end_n_top <= 0):
        raise error("--start_n_top and --end_n_top must be positive.")
    if q.is_v2 and max(q.start_n_top, q.end_n_top) > s.max_seq_length:
        raise error(f"--start_n_top/--end_n_top cannot exceed --max_seq_length "
                    f"({s.max_seq_length}).")


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def _evaluate_without_training(tuner, task, num_steps):
    """--do_predict alone: the original's eval loop over the output_dir's checkpoints; with
    none there, the `--init_checkpoint` weights (e.g. an already fine-tuned model)."""
    s = tuner.settings
    has_checkpoints = (tuner.snapshots() or tf.io.gfile.exists(
        files.join(s.output_dir, finetuning.BEST_PREFIX + ".index")))
    if has_checkpoints:
        if num_steps is None:
            # Without a training file the final step is unknown: evaluate what is there.
            latest = max(tuner.snapshots() or [0])
            tuner.settings = dataclasses.replace(s, train_step=max(latest, 1))
        try:
            return tuner.evaluate_checkpoints(task)
        except FileNotFoundError:
            if not tf.io.gfile.exists(files.join(s.output_dir,
                                                   finetuning.BEST_PREFIX + ".index")):
                raise
            return finetuning.FinetuningResult(
                global_step=0, metric_key=task.metric_key,
                best_checkpoint=files.join(s.output_dir, finetuning.BEST_PREFIX))
    if not s.init_checkpoint:
        raise FileNotFoundError(
            f"Nothing to evaluate: {s.output_dir} holds no checkpoint (model.ckpt-<step> or "
            "model.ckpt-best) and no --init_checkpoint was given. Train first (--do_train), "
            "or pass a fine-tuned checkpoint as --init_checkpoint.")
    from albert_tf import checkpoints as checkpoints_lib
    report = checkpoints_lib.load_original_checkpoint(tuner.model, s.init_checkpoint)
    if report.missing:
        logging.warning("%s has no %s: those head variables keep their random "
                        "initialisation, so the predictions are meaningless.",
                        s.init_checkpoint, ", ".join(report.missing))
    return None


# === The task and the run ===============================================================

class SquadTask(base.Task):
    """SQuAD v1.1 / v2.0 as the fine-tuning loop runs it.

    Args:
      config: the `AlbertConfig`.
      settings: `finetuning.FinetuningSettings`. `read` replaces its `train_step` and
        `warmup_step` by the counts from the training file (`train_steps`) and sets its
        `eval_batch_size` to `predict_batch_size`.
      squad_settings: `SquadSettings`.
    """

    metric_key = "f1"

    def __init__(self, config, settings, squad_settings):
        super().__init__(config, settings)
        self.q = squad_settings
        self.do_train = squad_settings.do_train
        self.tokenizer = None
        self.reports = {}
        self.train_examples, self.num_steps = None, None
        self.predict_examples, self.dataset_json, self.eval_features = None, None, None

    def check(self):
        check_settings(self.config, self.settings, self.q)

    def read(self):
        q, settings = self.q, self.settings
        self.tokenizer = tokenization.FullTokenizer(None, q.do_lower_case, q.spm_model_file)
        if q.train_file and (q.do_train or tf.io.gfile.exists(q.train_file)):
            self.reports["train"] = squad.ReadReport()
            self.train_examples = squad.read_squad_examples(q.train_file, True,
                                                            self.reports["train"])
            if not self.train_examples:
                raise squad.TaskDataError(f"{q.train_file}: no usable training question.")
            self.num_steps = train_steps(len(self.train_examples), settings.train_batch_size,
                                         q.num_train_epochs, q.warmup_proportion)
        elif q.do_train:
            raise FileNotFoundError(f"--train_file {q.train_file!r} does not exist.")
        if q.do_predict:
            self.reports["predict"] = squad.ReadReport()
            self.predict_examples = squad.read_squad_examples(q.predict_file, False,
                                                              self.reports["predict"])
            self.dataset_json = squad.load_squad_json(q.predict_file)

        if self.num_steps is not None:
            if self.num_steps[0] <= 0:
                raise training.SettingsError(
                    f"{len(self.train_examples)} training questions / --train_batch_size="
                    f"{settings.train_batch_size} x --num_train_epochs={q.num_train_epochs} "
                    "gives no training step.")
            settings = dataclasses.replace(settings, train_step=self.num_steps[0],
                                           warmup_step=self.num_steps[1])
            logging.info("%d training questions: %d steps, %d warm-up steps.",
                         len(self.train_examples), *self.num_steps)
        self.settings = dataclasses.replace(settings,
                                            eval_batch_size=settings.predict_batch_size)

    def prepare(self):
        q, s = self.q, self.settings
        if q.do_predict:
            self.eval_features = squad.prepare_eval_features(
                q.predict_file, self.tokenizer, q.predict_feature_file,
                q.predict_feature_left_file, s.max_seq_length, q.doc_stride,
                q.max_query_length, examples=self.predict_examples)
            if not self.eval_features:
                raise squad.TaskDataError(f"{q.predict_file}: no question gave a feature "
                                          "(empty contexts, or contexts that do not align).")
        if q.do_train:
            num_features = squad.prepare_train_features(
                q.train_file, self.tokenizer, q.train_feature_file, s.max_seq_length,
                q.doc_stride, q.max_query_length, examples=self.train_examples)
            logging.info("Training on %d features (%d questions).", num_features,
                         len(self.train_examples))

    # --- The loop's interface ------------------------------------------------------------

    def build_model(self, config):
        return build_squad_model(config, self.q, self.settings.use_one_hot_embeddings)

    def per_example_loss(self, model, batch, training):
        return squad_loss_fn(self.q)(model, batch, training)

    def train_input(self):
        q, s = self.q, self.settings

        def dataset_fn(batch_size, num_shards, shard_index):
            return squad.squad_dataset(q.train_feature_file, s.max_seq_length, True,
                                       batch_size, is_v2=q.is_v2, num_shards=num_shards,
                                       shard_index=shard_index, seed=s.seed,
                                       length_buckets=s.length_buckets,
                                       group_by_length=s.group_by_length)

        return dataset_fn

    def eval_input(self):
        if not self.q.do_predict:
            return None
        return base.PredictInput(
            eval_dataset(self.q.predict_feature_file, self.settings.max_seq_length,
                         self.q.is_v2),
            num_examples=len(self.eval_features),
            batch_size=self.settings.predict_batch_size, keep=("unique_ids",))

    def metrics(self, predictions):
        """Post-processes the predictions, writes the prediction files (chief only) and
        scores them with the official metric.

        v1.1 returns `exact_match`, `f1`; v2.0 `exact`, `f1`, `total`,
        `null_score_diff_threshold`, `HasAns_*`, `NoAns_*`, `best_*` (`squad_postprocess`).
        """
        q = self.q
        results = raw_results(predictions, q.is_v2)
        directory = self.settings.output_dir if self.is_chief else None
        if q.is_v2:
            return post.evaluate_v2(self.dataset_json, self.predict_examples,
                                    self.eval_features, results, directory, q.n_best_size,
                                    q.max_answer_length)
        return post.evaluate_v1_and_write(self.dataset_json, self.predict_examples,
                                          self.eval_features, results, directory,
                                          q.n_best_size, q.max_answer_length)

    # --- Without training; after training -----------------------------------------------

    def evaluate_without_training(self, tuner):
        return _evaluate_without_training(tuner, self, self.num_steps)

    def finish(self, tuner, result):
        """The best checkpoint, scored again; its prediction files are written last."""
        q, settings = self.q, self.settings
        outcome = {"result": result, "metrics": None, "read_reports": self.reports}
        if not q.do_predict:
            return outcome
        if result is None:
            label = f"{settings.init_checkpoint} (--init_checkpoint)"
        elif result.best_checkpoint:
            tuner.restore_best()
            label = f"model.ckpt-best (step {result.best_step})"
        else:
            label = f"the last weights (step {result.global_step}; no best checkpoint)"
        metrics = tuner.evaluate(self)
        outcome["metrics"] = metrics
        if tuner.is_chief:
            tuner.add_results_section(f"Final: {label}", metrics, self.metric_key)
            files.write_json(
                files.join(settings.output_dir, "squad_results.json"),
                {"squad_version": q.squad_version, "checkpoint": label,
                 **{k: _plain(v) for k, v in metrics.items()}})
        logging.info("SQuAD %s on %s: %s", q.squad_version, label,
                     ", ".join(f"{k} = {v:.4f}" if isinstance(v, float) else f"{k} = {v}"
                               for k, v in sorted(metrics.items())))
        return outcome


def run_squad(config, settings, squad_settings, strategy=None):
    """Fine-tunes and/or evaluates on SQuAD, as run_squad_v1.py / run_squad_v2.py.

    Args:
      config: the `AlbertConfig`.
      settings: `finetuning.FinetuningSettings`. Its `train_step` and `warmup_step` are
        replaced by the counts from the training file (`train_steps`); its
        `eval_batch_size` is set to `predict_batch_size`.
      squad_settings: `SquadSettings`.
      strategy: a `tf.distribute.Strategy` (default: one device).

    Files in `settings.output_dir`: the fine-tuning loop's (train_state/, best_trial.txt,
    eval_results.txt, model.ckpt-best), predictions.json, nbest_predictions.json,
    null_odds.json (v2.0) of the best checkpoint, and squad_results.json (its metrics).

    Returns a dict: `result` (the loop's `FinetuningResult`, or None), `metrics` (of the
    best checkpoint, or None), `read_reports` ({"train"/"predict": `ReadReport`}).
    """
    return base.run(SquadTask(config, settings, squad_settings), strategy)
