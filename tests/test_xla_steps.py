"""The whole train step compiles with XLA (`jit_compile=True`) and updates as the plain one.

"The whole step" is forward, backward, gradient accumulation, global-norm clipping and the
LAMB update (moments, weight decay, trust ratio, the step counter): everything one replica
does per step. XLA refuses a function holding any op it cannot compile (a host-side op, a
dynamic shape), so a step that runs under `jit_compile=True` has none. The reference is the
same step run by TensorFlow without XLA, from the same seeded weights, on the same batch:
XLA may only reorder float arithmetic, so variables, optimizer moments and losses agree to
1e-5. Dropout is off (the tiny config has none): XLA draws other random numbers.

`assert_xla_step_matches_plain_step` is the check for any task: the fine-tuning tests call it
with their own trainer factory.
"""
import keras
import numpy as np
import pytest
import tensorflow as tf

from albert_tf import training
from albert_tf.heads import AlbertPretrainer
from albert_tf.optimization import create_optimizer
from albert_tf.pretraining import pretraining_batch_stats, pretraining_loss
from test_pretraining import PRED, SEQ, parse_record, tiny_config, write_records


def assert_xla_step_matches_plain_step(make_trainer, batch, steps=2, atol=1e-5, names=None):
    """Runs `steps` whole train steps under XLA (`training.xla_train_step`) and without it,
    each on a trainer from `make_trainer()` (which must seed its weights the same way each
    time, on a one-device strategy), and asserts that both start from the same weights, that
    the step outputs (`names`, default all), every model and optimizer variable and the step
    counter agree within `atol`, and that the step moved the weights.

    Returns the compiled step's HLO text (for further checks).
    """
    compiled_trainer, plain_trainer = make_trainer(), make_trainer()
    for a, b in zip(compiled_trainer.model.variables, plain_trainer.model.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)   # seeded alike
    compiled = training.xla_train_step(compiled_trainer)
    strategy = plain_trainer.strategy
    plain = tf.function(lambda b: strategy.run(plain_trainer._replica_train_step, args=(b,)))
    initial = [v.numpy() for v in plain_trainer.model.trainable_variables]
    for _ in range(steps):
        got, want = compiled(batch), plain(batch)
        for name in names or want:
            np.testing.assert_allclose(float(got[name]), float(want[name]), rtol=0,
                                       atol=atol, err_msg=name)
    for a, b in zip(compiled_trainer.optimizer.variables, plain_trainer.optimizer.variables):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=atol,
                                   err_msg=a.path)
    assert int(compiled_trainer.optimizer.iterations) == steps
    moved = [not np.array_equal(v.numpy(), w) for v, w in
             zip(compiled_trainer.model.trainable_variables, initial)]
    assert sum(moved) > len(moved) // 2, "the compiled step left most weights unchanged"
    for a, b in zip(compiled_trainer.model.variables, plain_trainer.model.variables):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=atol,
                                   err_msg=a.path)
    return compiled.experimental_get_compiler_ir(batch)(stage="hlo")


# --- Pretraining: masked LM + sentence order, LAMB with clipping -------------------------

@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    path = write_records(tmp_path_factory.mktemp("xla") / "d.tfrecord", 8)
    records = tf.data.TFRecordDataset(path).map(lambda r: parse_record(r, SEQ, PRED))
    return next(iter(records.batch(8, drop_remainder=True)))


def pretraining_trainer(accumulation=1, jit_compile=False, strategy=None, jit_scope=None):
    keras.utils.set_random_seed(3)
    strategy = strategy or tf.distribute.OneDeviceStrategy("/cpu:0")
    with strategy.scope():
        model = AlbertPretrainer(tiny_config())
        # The original's LAMB: clip at global norm 1.0, weight decay 0.01, trust ratio.
        optimizer = create_optimizer(1e-2, 10, 0, optimizer="lamb", aggregate_gradients=False)
        optimizer.build(model.trainable_variables)
    return training.Trainer(strategy, model, optimizer, pretraining_loss,
                            pretraining_batch_stats, jit_compile=jit_compile,
                            gradient_accumulation_steps=accumulation, jit_scope=jit_scope)


def test_clipping_is_active_on_this_batch(batch):
    """The batch's gradient norm exceeds the clip norm, so the steps below clip."""
    trainer = pretraining_trainer()
    totals = pretraining_batch_stats(batch)
    grads, _ = trainer._compute_gradients(batch, totals)
    assert float(tf.linalg.global_norm([g for g in grads if g is not None])) > 1.0


def test_pretraining_step_with_lamb_and_clipping_compiles_whole(batch):
    hlo = assert_xla_step_matches_plain_step(pretraining_trainer, batch)
    # One XLA program holds the update too: the moments' square roots and the trust
    # ratio's norms are in it, next to the forward pass's softmax exponentials.
    assert hlo.count("HloModule") == 1
    assert " sqrt(" in hlo and " exponential(" in hlo


@pytest.mark.slow  # a second XLA compile of the model, with the micro-batch loop
def test_pretraining_step_with_gradient_accumulation_compiles_whole(batch):
    assert_xla_step_matches_plain_step(lambda: pretraining_trainer(accumulation=2), batch)


def test_trainer_loop_with_jit_compile_matches_the_plain_loop(batch):
    """The production path of `--jit_compile --jit_scope=step`: the Trainer runs the
    XLA-compiled whole step inside its many-steps loop, and gives the plain loop's losses
    and weights."""
    compiled = pretraining_trainer(jit_compile=True, jit_scope="step")
    plain = pretraining_trainer()
    assert compiled.jit_scope == "step" and plain.jit_scope is None
    data = tf.data.Dataset.from_tensors(batch).repeat()
    got = compiled.train_steps(iter(data), 3)
    want = plain.train_steps(iter(data), 3)
    np.testing.assert_allclose(got["loss"], want["loss"], rtol=0, atol=1e-5)
    for a, b in zip(compiled.model.trainable_variables, plain.model.trainable_variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=1e-5, err_msg=a.path)


def test_several_replicas_compile_the_gradients_only():
    """The update's cross-replica sum cannot be compiled: with two replicas (the two
    logical CPU devices of conftest) `jit_compile` covers the forward and backward pass."""
    strategy = tf.distribute.MirroredStrategy(
        [d.name for d in tf.config.list_logical_devices("CPU")][:2])
    assert strategy.num_replicas_in_sync == 2
    trainer = pretraining_trainer(jit_compile=True, strategy=strategy, jit_scope="step")
    assert trainer.jit_scope == "gradients"
    with pytest.raises(training.SettingsError, match="one replica"):
        training.xla_train_step(trainer)
