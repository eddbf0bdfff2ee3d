"""The generic fine-tuning loop: best-checkpoint selection, resume, the eval pass, predict.

References: the original run_classifier.py's evaluation loop as SPEC G.5 describes it
(`best_trial.txt` = `global_step:best_step:best_value`, `eval_results.txt` blocks with
`best = <best before>`, strictly greater wins, `model.ckpt-best`), an uninterrupted run for
resume, and direct model calls for `predict`.
"""
import pathlib

import numpy as np
import pytest
import tensorflow as tf

from albert_tf import AlbertConfig, AlbertModel, checkpoints, finetuning, training
from albert_tf.heads import AlbertClassifier
from albert_tf.tasks import base

CONFIG = AlbertConfig(vocab_size=30, embedding_size=8, hidden_size=16, num_hidden_layers=1,
                      num_attention_heads=2, intermediate_size=32, max_position_embeddings=16,
                      hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
SEQ = 8


def build_model(config):
    # No dropout anywhere: runs are deterministic, so a resumed run can be compared exactly.
    return AlbertClassifier(config, 2, dropout_prob=0.0)


def features(count=64, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, 30, size=(count, SEQ)).astype(np.int32)
    return {"input_ids": ids, "input_mask": np.ones_like(ids), "segment_ids": np.zeros_like(ids),
            "label_ids": (ids[:, 1] > 17).astype(np.int32)}


def train_input(batch_size, num_shards=1, shard_index=0):
    dataset = tf.data.Dataset.from_tensor_slices(features()).shard(num_shards, shard_index)
    return dataset.repeat().shuffle(32, seed=3).batch(batch_size, drop_remainder=True)


def loss_fn(model, batch, training):
    logits = model(batch, training=training)["logits"]
    return tf.nn.sparse_softmax_cross_entropy_with_logits(batch["label_ids"], logits)


def settings(output_dir, **overrides):
    values = dict(output_dir=str(output_dir), max_seq_length=SEQ, train_batch_size=8,
                  eval_batch_size=4, predict_batch_size=4, learning_rate=1e-3, train_step=8,
                  warmup_step=2, save_checkpoints_steps=2, log_steps=2, seed=7)
    values.update(overrides)
    return finetuning.FinetuningSettings(**values)


class Scripted(base.Task):
    """A task training with `loss_fn` on `train_input`, whose dev metrics are the given
    accuracies in turn (None: no dev set). With `seen`, each evaluation records the weights
    of `self.model` (set it to the tuner's model)."""

    metric_key = "eval_accuracy"

    def __init__(self, values=None, seen=None):
        super().__init__(CONFIG, None)
        self.values = None if values is None else iter(values)
        self.seen, self.model = seen, None

    def per_example_loss(self, model, batch, training):
        return loss_fn(model, batch, training)

    def train_input(self):
        return train_input

    def eval_input(self):
        if self.values is None:
            return None
        return base.PredictInput(tf.data.Dataset.from_tensor_slices(features(4)))

    def metrics(self, predictions):
        assert predictions["logits"].shape == (4, 2)
        if self.seen is not None:
            self.seen.append([w.numpy().copy() for w in self.model.weights])
        return {"eval_accuracy": next(self.values), "eval_loss": 0.5}


def scripted(values, seen=None):
    return Scripted(values, seen)


def weights_of(prefix, model):
    _, values = checkpoints.read_checkpoint(prefix)
    return [values[checkpoints.original_name(w)] for w in model.weights]


def eval_blocks(path):
    text = pathlib.Path(path).read_text()
    return [dict(line.split(" = ") for line in block.strip().splitlines())
            for block in text.split("=" * 50) if block.strip()]


# --- Selection of the best checkpoint ----------------------------------------------------


@pytest.fixture(scope="module")
def selection_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("selection")
    seen = []
    tuner = finetuning.FineTuner(CONFIG, settings(out, keep_checkpoint_max=2), build_model)
    task = scripted([0.5, 0.7, 0.7, 0.6], seen)
    task.model = tuner.model
    result = tuner.train(task)
    final = [w.numpy().copy() for w in tuner.model.weights]
    return out, tuner, result, seen, final


def test_a_tie_keeps_the_earlier_checkpoint(selection_run):
    _, _, result, _, _ = selection_run
    assert (result.best_step, result.best_value) == (4, 0.7)


def test_best_trial_holds_last_step_best_step_and_value(selection_run):
    out, _, _, _, _ = selection_run
    assert (out / "best_trial.txt").read_text() == "8:4:0.7"


def test_eval_results_list_each_checkpoint_with_the_best_before_it(selection_run):
    out, _, _, _, _ = selection_run
    blocks = eval_blocks(out / "eval_results.txt")
    assert [(b["global_step"], b["eval_accuracy"], b["best"]) for b in blocks] == [
        ("2", "0.5", "-1"), ("4", "0.7", "0.5"), ("6", "0.7", "0.7"), ("8", "0.6", "0.7")]


def test_model_ckpt_best_holds_the_weights_evaluated_at_the_best_step(selection_run):
    out, tuner, _, seen, _ = selection_run
    stored = weights_of(str(out / "model.ckpt-best"), tuner.model)
    for ours, expected in zip(stored, seen[1]):   # the second evaluation was step 4
        np.testing.assert_array_equal(ours, expected)
    assert tf.train.load_variable(str(out / "model.ckpt-best"), "global_step") == 4


def test_restore_best_loads_model_ckpt_best(selection_run):
    out, tuner, _, seen, _ = selection_run
    tuner.restore_best()
    for weight, expected in zip(tuner.model.weights, seen[1]):
        np.testing.assert_array_equal(weight.numpy(), expected)


def test_progress_and_evaluations_go_to_tensorboard(selection_run):
    out, _, _, _, _ = selection_run
    for kind, tag in (("train", "loss"), ("eval", "eval_accuracy")):
        events = list((out / "summaries" / kind).glob("events.out.tfevents.*"))
        assert events, kind
        tags = {value.tag for event in tf.compat.v1.train.summary_iterator(str(events[0]))
                for value in event.summary.value}
        assert tag in tags


def test_resumable_states_are_limited_to_keep_checkpoint_max(selection_run):
    out, _, _, _, _ = selection_run
    # Four saves with keep_checkpoint_max=2: the last two stay.
    states = sorted(p.name for p in (out / "train_state").glob("ckpt-*.index"))
    assert states == ["ckpt-6.index", "ckpt-8.index"]


# --- Resume after a crash ----------------------------------------------------------------


class Crash(Exception):
    pass


def test_a_crashed_run_resumes_and_ends_with_the_weights_of_an_uninterrupted_one(
        tmp_path, selection_run):
    # The selection run: the same settings, data and seed, never interrupted.
    _, _, _, _, uninterrupted = selection_run

    def crash_at_second_evaluation():
        yield 0.1
        raise Crash()   # after the step-4 state was saved, before its evaluation

    crashed = finetuning.FineTuner(CONFIG, settings(tmp_path / "crashed"), build_model)
    with pytest.raises(Crash):
        crashed.train(scripted(crash_at_second_evaluation()))
    resumed = finetuning.FineTuner(CONFIG, settings(tmp_path / "crashed"), build_model)
    result = resumed.train(scripted([0.2, 0.3, 0.4]))
    # The step-4 checkpoint, whose evaluation the crash lost, is evaluated on resume.
    assert sorted(result.evaluations) == [4, 6, 8]
    assert int(resumed.optimizer.iterations.numpy()) == 8
    for expected, weight in zip(uninterrupted, resumed.model.weights):
        np.testing.assert_allclose(weight.numpy(), expected, rtol=0, atol=1e-6,
                                   err_msg=weight.path)


# --- Train-only runs and the separate evaluation pass ------------------------------------


def test_train_only_snapshots_then_the_eval_pass_keeps_only_the_best(tmp_path):
    tuner = finetuning.FineTuner(CONFIG, settings(tmp_path, train_step=6), build_model)
    tuner.train(Scripted())
    assert sorted(tuner.snapshots()) == [2, 4, 6]
    expected = weights_of(tuner.snapshots()[4], tuner.model)

    evaluator = finetuning.FineTuner(CONFIG, settings(tmp_path, train_step=6), build_model)
    result = evaluator.evaluate_checkpoints(scripted([0.3, 0.9, 0.9]))
    assert (result.best_step, result.best_value) == (4, 0.9)
    assert evaluator.snapshots() == {}            # non-best deleted, best renamed
    for ours, theirs in zip(weights_of(str(tmp_path / "model.ckpt-best"), tuner.model),
                            expected):
        np.testing.assert_array_equal(ours, theirs)
    assert (tmp_path / "best_trial.txt").read_text() == "6:4:0.9"

    # A finished evaluation is not repeated (the original's loop failed here).
    again = evaluator.evaluate_checkpoints(scripted([]))   # any evaluation would fail
    assert (again.best_step, again.best_value) == (4, 0.9)


def test_eval_pass_without_checkpoints_is_an_error(tmp_path):
    tuner = finetuning.FineTuner(CONFIG, settings(tmp_path), build_model)
    with pytest.raises(FileNotFoundError, match="No checkpoint to evaluate"):
        tuner.evaluate_checkpoints(scripted([1.0]))


# --- Warm start --------------------------------------------------------------------------


def test_warm_start_loads_the_encoder_and_leaves_the_new_head(tmp_path):
    encoder = AlbertModel(CONFIG)
    checkpoints.save_original_checkpoint(encoder, str(tmp_path / "pretrained" / "model.ckpt"))
    tuner = finetuning.FineTuner(
        CONFIG, settings(tmp_path / "out", init_checkpoint=str(tmp_path / "pretrained")),
        build_model)
    report = tuner.initialize()
    assert sorted(report.missing) == ["output_bias", "output_weights"]
    np.testing.assert_array_equal(tuner.model.encoder.word_embeddings.numpy(),
                                  encoder.word_embeddings.numpy())


def test_init_checkpoint_matching_nothing_stops_before_training(tmp_path):
    import keras
    other = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="unrelated")])
    checkpoints.save_original_checkpoint(other, str(tmp_path / "other" / "model.ckpt"))
    tuner = finetuning.FineTuner(
        CONFIG, settings(tmp_path / "out", init_checkpoint=str(tmp_path / "other")),
        build_model)
    with pytest.raises(checkpoints.CheckpointMismatchError, match="No variable of the model"):
        tuner.train(Scripted())
    assert not (tmp_path / "out" / "train_state").exists()


# --- Predict -----------------------------------------------------------------------------


def test_predict_returns_every_example_in_order_on_two_replicas(tmp_path):
    strategy = tf.distribute.MirroredStrategy(
        [d.name for d in tf.config.list_logical_devices("CPU")][:2])
    assert strategy.num_replicas_in_sync == 2
    tuner = finetuning.FineTuner(CONFIG, settings(tmp_path), build_model, strategy)
    data = features(13, seed=5)   # 13 = 3 batches of 4 + 1: padding on the last batch
    outputs = tuner.predict(tf.data.Dataset.from_tensor_slices(data), batch_size=4,
                            keep=("label_ids",))
    expected = tuner.model({k: tf.constant(v) for k, v in data.items()})["logits"].numpy()
    np.testing.assert_allclose(outputs["logits"], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(outputs["label_ids"], data["label_ids"])


def test_settings_are_checked_before_anything_runs(tmp_path):
    with pytest.raises(finetuning.training.SettingsError, match="--warmup_step"):
        finetuning.FineTuner(CONFIG, settings(tmp_path, warmup_step=-1), build_model)
    with pytest.raises(finetuning.training.SettingsError, match="--optimizer='sgd'"):
        finetuning.FineTuner(CONFIG, settings(tmp_path, optimizer="sgd"), build_model)


def test_a_progress_line_is_written_as_its_step_is_reached(tmp_path, monkeypatch):
    # Fine-tuning ends each call into the compiled loop at a --log_steps multiple (as well
    # as at checkpoints), so progress shows while training runs, not after a long call.
    calls = []
    train_steps = training.Trainer.train_steps

    def counted(trainer, iterator, num_steps):
        calls.append(num_steps)
        return train_steps(trainer, iterator, num_steps)

    monkeypatch.setattr(training.Trainer, "train_steps", counted)
    tuner = finetuning.FineTuner(CONFIG, settings(tmp_path, train_step=6, log_steps=3,
                                                  save_checkpoints_steps=6,
                                                  iterations_per_loop=1000), build_model)
    tuner.train(Scripted())
    assert calls == [3, 3]
