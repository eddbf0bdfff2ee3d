"""The optimizers and the learning-rate schedule against the original's rules.

References: SPEC Part 3 §1-§3 (the original optimization.py / lamb_optimizer.py), re-written
below as an independent float64 NumPy implementation; schedule values computed by hand from
the original formula; the original's own optimization_test (AdamW fits w to x).
"""
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from albert_tf.optimization import (AdamWeightDecay, Lamb, WarmupPolynomialDecay,
                                    create_optimizer)

EXCLUDED = ("LayerNorm", "layer_norm", "bias")


# --- An independent NumPy version of the original update (SPEC Part 3 §1.3, §2, §3) -------

def numpy_original_steps(params, grads_per_step, lrs, kind, bias_correction=False,
                         weight_decay_rate=0.01, clip_norm=1.0, beta_1=0.9, beta_2=0.999,
                         epsilon=1e-6):
    """Runs the original train op on `params` ({name: array}) for each gradient dict."""
    params = {k: v.astype(np.float64) for k, v in params.items()}
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v = {k: np.zeros_like(p) for k, p in params.items()}
    for t, (grads, lr) in enumerate(zip(grads_per_step, lrs), start=1):
        grads = {k: g.astype(np.float64) for k, g in grads.items()}
        # tf.clip_by_global_norm: t * clip_norm / max(global_norm, clip_norm).
        global_norm = np.sqrt(sum(np.sum(g ** 2) for g in grads.values()))
        if clip_norm:
            grads = {k: g * clip_norm / max(global_norm, clip_norm) for k, g in grads.items()}
        for name, g in grads.items():
            excluded = any(pattern in name for pattern in EXCLUDED)
            m[name] = beta_1 * m[name] + (1 - beta_1) * g
            v[name] = beta_2 * v[name] + (1 - beta_2) * g * g
            m_used, v_used = m[name], v[name]
            if bias_correction:
                m_used = m_used / (1 - beta_1 ** t)
                v_used = v_used / (1 - beta_2 ** t)
            update = m_used / (np.sqrt(v_used) + epsilon)
            if weight_decay_rate and not excluded:
                update = update + weight_decay_rate * params[name]
            ratio = 1.0
            if kind == "lamb" and not excluded:
                w_norm = np.linalg.norm(params[name])
                u_norm = np.linalg.norm(update)
                ratio = w_norm / u_norm if (w_norm > 0 and u_norm > 0) else 1.0
            params[name] = params[name] - ratio * lr * update
    return params, m, v


def hand_schedule(step, lr0, n, w, p=1.0, s0=0):
    """SPEC Part 3 §1.1, written out in plain Python."""
    decay = lr0 * (1 - min(step, n) / n) ** p
    if not w:
        return decay
    k = step - s0
    return lr0 * k / w if k < w else decay


# Names as our models give them (the original TF1 names); the shapes are small stand-ins.
VARIABLE_SHAPES = {
    "bert/embeddings/word_embeddings": (7, 4),
    "bert/embeddings/LayerNorm/gamma": (4,),
    "bert/encoder/transformer/group_0/inner_group_0/attention_1/self/query/kernel": (4, 4),
    "bert/encoder/transformer/group_0/inner_group_0/attention_1/output/dense/bias": (4,),
    "bert/encoder/transformer/group_0/inner_group_0/ffn_1/intermediate/output/dense/kernel":
        (3, 4),
    "bert/encoder/transformer/group_0/inner_group_0/LayerNorm_1/beta": (4,),
    "cls/predictions/output_bias": (7,),
    "cls/seq_relationship/output_weights": (2, 4),
}
ZERO_VARIABLE = "cls/seq_relationship/output_weights"  # ||theta|| = 0: LAMB ratio must be 1.


def make_problem(seed=0, steps=5, grad_scale=3.0):
    rng = np.random.default_rng(seed)
    params = {name: rng.normal(size=shape).astype(np.float32)
              for name, shape in VARIABLE_SHAPES.items()}
    params[ZERO_VARIABLE][:] = 0.0
    grads = [{name: (grad_scale * rng.normal(size=shape)).astype(np.float32)
              for name, shape in VARIABLE_SHAPES.items()} for _ in range(steps)]
    return params, grads


def keras_variables(params):
    """Keras variables whose `path` is the given original name."""
    variables = {}
    for name, value in params.items():
        *scopes, leaf = name.split("/")
        with keras.name_scope(scopes[0]):
            # A nested scope per path component gives exactly `name` as the path.
            context = [keras.name_scope(s) for s in scopes[1:]]
            for c in context:
                c.__enter__()
            variables[name] = keras.Variable(value, name=leaf)
            for c in reversed(context):
                c.__exit__(None, None, None)
        assert variables[name].path == name
    return variables


def run_ours(optimizer, params, grads_per_step):
    variables = keras_variables(params)
    names = list(params)
    lrs = []
    for grads in grads_per_step:
        lrs.append(float(optimizer.learning_rate))
        optimizer.apply_gradients(
            [(tf.constant(grads[n]), variables[n]) for n in names])
    slots = optimizer.original_slot_variables()
    return ({n: variables[n].numpy() for n in names},
            {n: slots[f"{n}/adam_m"].numpy() for n in names},
            {n: slots[f"{n}/adam_v"].numpy() for n in names},
            lrs)


def assert_matches_reference(ours, reference):
    for got, want in zip(ours, reference):
        for name in want:
            np.testing.assert_allclose(got[name], want[name], rtol=2e-5, atol=1e-7,
                                       err_msg=name)


# --- Schedule ---------------------------------------------------------------------------

README_SCHEDULE = dict(init_lr=0.00176, n=125000, w=3125)


@pytest.mark.parametrize("step", [0, 1, 2, 1000, 3124])
def test_schedule_warmup_is_linear_from_zero(step):
    s = WarmupPolynomialDecay(0.00176, 125000, warmup_steps=3125)
    np.testing.assert_allclose(float(s(tf.constant(step, tf.int64))),
                               0.00176 * step / 3125, rtol=1e-6, atol=0)


def test_schedule_is_exactly_zero_at_the_first_step():
    s = WarmupPolynomialDecay(0.00176, 125000, warmup_steps=3125)
    assert float(s(tf.constant(0, tf.int64))) == 0.0


def test_schedule_jumps_to_the_decay_curve_after_warmup():
    # Hand-computed: 0.00176 * (1 - 3125/125000) = 0.00176 * 0.975 = 0.001716.
    s = WarmupPolynomialDecay(0.00176, 125000, warmup_steps=3125)
    np.testing.assert_allclose(float(s(tf.constant(3125, tf.int64))), 0.001716, rtol=1e-6)
    last_warmup = float(s(tf.constant(3124, tf.int64)))
    np.testing.assert_allclose(last_warmup, 0.00176 * 3124 / 3125, rtol=1e-6)


@pytest.mark.parametrize("step,expected", [(62500, 0.00088), (125000, 0.0), (200000, 0.0)])
def test_schedule_decays_linearly_to_zero_and_stays(step, expected):
    s = WarmupPolynomialDecay(0.00176, 125000, warmup_steps=3125)
    np.testing.assert_allclose(float(s(tf.constant(step, tf.int64))), expected, rtol=1e-6,
                               atol=1e-12)


def test_schedule_poly_power_without_warmup():
    # power 2, no warm-up: 1e-3 * (1 - 500/1000)^2 = 2.5e-4; at step 0 the full rate.
    s = WarmupPolynomialDecay(1e-3, 1000, warmup_steps=0, power=2.0)
    np.testing.assert_allclose(float(s(tf.constant(500, tf.int64))), 2.5e-4, rtol=1e-6)
    np.testing.assert_allclose(float(s(tf.constant(0, tf.int64))), 1e-3, rtol=1e-7)


def test_schedule_is_negative_before_start_warmup_step():
    # s0 = 100, W = 10: at g = 50, k = -50 -> 1e-3 * -50/10 = -5e-3 (original quirk);
    # at g = 105 warm-up is half done; at g = 110 the decay curve on the raw g applies.
    s = WarmupPolynomialDecay(1e-3, 1000, warmup_steps=10, start_warmup_step=100)
    np.testing.assert_allclose(float(s(tf.constant(50, tf.int64))), -5e-3, rtol=1e-6)
    np.testing.assert_allclose(float(s(tf.constant(105, tf.int64))), 5e-4, rtol=1e-6)
    np.testing.assert_allclose(float(s(tf.constant(110, tf.int64))), 1e-3 * 0.89, rtol=1e-6)


def test_schedule_matches_the_hand_formula_on_many_steps():
    s = WarmupPolynomialDecay(2e-4, 97, warmup_steps=13, power=1.5, start_warmup_step=3)
    for step in range(0, 120, 7):
        np.testing.assert_allclose(float(s(tf.constant(step, tf.int64))),
                                   hand_schedule(step, 2e-4, 97, 13, 1.5, 3), rtol=2e-6,
                                   atol=1e-12, err_msg=f"step {step}")


def test_schedule_round_trips_through_keras_serialization():
    s = WarmupPolynomialDecay(0.00176, 125000, warmup_steps=3125, power=0.5,
                              start_warmup_step=7)
    restored = keras.optimizers.schedules.deserialize(
        json.loads(json.dumps(keras.optimizers.schedules.serialize(s))))
    assert isinstance(restored, WarmupPolynomialDecay)
    assert restored.get_config() == s.get_config()


def test_schedule_rejects_zero_train_steps():
    with pytest.raises(ValueError, match="num_train_steps"):
        WarmupPolynomialDecay(1e-3, 0, warmup_steps=0)


# --- Optimizer step vs the NumPy original ------------------------------------------------

@pytest.mark.parametrize("kind", ["lamb", "adamw"])
@pytest.mark.parametrize("bias_correction", [False, True])
def test_update_matches_original_rules_over_several_steps(kind, bias_correction):
    params, grads = make_problem(seed=1, steps=5, grad_scale=3.0)  # global norm >> 1: clips
    optimizer = create_optimizer(1e-2, num_train_steps=20, num_warmup_steps=2,
                                 optimizer=kind, bias_correction=bias_correction)
    ours = run_ours(optimizer, params, grads)
    expected_lrs = [hand_schedule(step, 1e-2, 20, 2) for step in range(5)]
    np.testing.assert_allclose(ours[3], expected_lrs, rtol=1e-6)
    reference = numpy_original_steps(params, grads, expected_lrs, kind,
                                     bias_correction=bias_correction)
    assert_matches_reference(ours[:3], reference)


@pytest.mark.parametrize("kind", ["lamb", "adamw"])
def test_update_matches_original_rules_without_clipping(kind):
    params, grads = make_problem(seed=2, steps=3, grad_scale=0.01)  # global norm < 1
    optimizer = create_optimizer(1e-2, num_train_steps=10, num_warmup_steps=0, optimizer=kind)
    ours = run_ours(optimizer, params, grads)
    reference = numpy_original_steps(params, grads, ours[3], kind)
    assert_matches_reference(ours[:3], reference)


def test_clip_norm_counts_each_gathered_row_like_the_original():
    # A table read with tf.gather has an IndexedSlices gradient. tf.clip_by_global_norm (the
    # original's clip) takes its norm over the un-merged rows, so an id looked up twice
    # counts twice: ||[g1, g2]|| instead of ||g1 + g2||. Reference: NumPy, by hand.
    table = keras.Variable(np.ones((3, 2), np.float32), name="token_type_embeddings")
    ids = tf.constant([1, 1, 2])
    row_grads = np.array([[3.0, 0.0], [4.0, 0.0], [0.0, 12.0]], np.float32)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.gather(table, ids) * row_grads)
    grad = tape.gradient(loss, table)
    assert isinstance(grad, tf.IndexedSlices)
    optimizer = AdamWeightDecay(learning_rate=0.1, global_clipnorm=1.0)
    optimizer.apply_gradients([(grad, table)])
    unmerged_norm = np.sqrt(9.0 + 16.0 + 144.0)  # 13, not ||[7, 0], [0, 12]|| = 13.89
    dense = np.array([[0, 0], [7, 0], [0, 12]], np.float32) / unmerged_norm
    m = 0.1 * dense
    v = 0.001 * dense ** 2
    expected = 1.0 - 0.1 * m / (np.sqrt(v) + 1e-6)
    np.testing.assert_allclose(table.numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(optimizer.original_slot_variables()[
        "token_type_embeddings/adam_m"].numpy(), m, rtol=1e-6)


def test_first_step_moves_moments_but_not_weights():
    # With warm-up the rate at step 0 is exactly 0 (SPEC Part 3 §1.1).
    params, grads = make_problem(seed=3, steps=1)
    optimizer = create_optimizer(1e-2, num_train_steps=10, num_warmup_steps=5,
                                 optimizer="lamb")
    after, m, _, lrs = run_ours(optimizer, params, grads)
    assert lrs == [0.0]
    for name in params:
        np.testing.assert_array_equal(after[name], params[name])
        assert np.any(m[name] != 0)
    assert int(optimizer.iterations.numpy()) == 1


def test_weight_decay_and_trust_ratio_follow_name_patterns():
    # One step, lr 1, zero gradient: u = lambda * theta for decayed variables (0 otherwise),
    # so LAMB moves a decayed variable by exactly ||theta|| / ||lambda theta|| * lambda theta
    # = theta (to zero) and leaves excluded ones alone.
    params, _ = make_problem(seed=4, steps=1)
    zero_grads = [{n: np.zeros_like(p) for n, p in params.items()}]
    optimizer = Lamb(learning_rate=1.0, weight_decay_rate=0.01,
                     exclude_from_weight_decay=list(EXCLUDED))
    after, _, _, _ = run_ours(optimizer, params, zero_grads)
    for name in params:
        if any(p in name for p in EXCLUDED):
            np.testing.assert_array_equal(after[name], params[name], err_msg=name)
        else:
            np.testing.assert_allclose(after[name], 0.0, atol=1e-6, err_msg=name)


def test_original_optimization_test_adamw_fits_w_to_x():
    # The original optimization_test.test_adam: lr 0.2, no decay, 100 steps, no clipping.
    w = keras.Variable(np.array([0.1, -0.2, -0.1], np.float32), name="w")
    x = tf.constant([0.4, 0.2, -0.5])
    optimizer = AdamWeightDecay(learning_rate=0.2)
    for _ in range(100):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(x - w))
        optimizer.apply_gradients([(tape.gradient(loss, w), w)])
    np.testing.assert_allclose(w.numpy(), [0.4, 0.2, -0.5], rtol=1e-2, atol=1e-2)


def test_update_inside_tf_function_matches_eager():
    params, grads = make_problem(seed=5, steps=3)
    eager = run_ours(create_optimizer(1e-2, 10, 1, optimizer="lamb"), params, grads)
    optimizer = create_optimizer(1e-2, 10, 1, optimizer="lamb")
    variables = keras_variables(params)
    names = list(params)
    optimizer.build([variables[n] for n in names])

    @tf.function
    def step(gs):
        optimizer.apply_gradients(zip(gs, [variables[n] for n in names]))

    for g in grads:
        step([tf.constant(g[n]) for n in names])
    for name in names:
        np.testing.assert_allclose(variables[name].numpy(), eager[0][name], rtol=1e-6,
                                   atol=1e-8)


def test_unknown_optimizer_name_is_rejected():
    with pytest.raises(ValueError, match="adamw"):
        create_optimizer(1e-3, 10, 0, optimizer="sgd")


def test_keras_per_replica_clipping_arguments_are_rejected():
    with pytest.raises(ValueError, match="global_clipnorm"):
        Lamb(learning_rate=1e-3, clipnorm=1.0)


def test_optimizer_round_trips_through_keras_serialization():
    optimizer = create_optimizer(1e-3, 100, 10, optimizer="lamb", bias_correction=True)
    restored = keras.optimizers.deserialize(
        json.loads(json.dumps(keras.optimizers.serialize(optimizer))))
    assert isinstance(restored, Lamb)
    assert restored.get_config() == optimizer.get_config()


def test_works_inside_a_loss_scale_optimizer():
    # fp16 training wraps ours in Keras's LossScaleOptimizer: scaled gradients must give the
    # unscaled update, and a non-finite gradient must skip the step.
    params, grads = make_problem(seed=6, steps=2)
    reference = run_ours(create_optimizer(1e-2, 10, 0, optimizer="lamb"), params, grads)
    inner = create_optimizer(1e-2, 10, 0, optimizer="lamb")
    optimizer = keras.mixed_precision.LossScaleOptimizer(inner, initial_scale=1024.0)
    variables = keras_variables(params)
    names = list(params)
    for g in grads:
        optimizer.apply_gradients(
            [(tf.constant(g[n] * 1024.0), variables[n]) for n in names])
    for name in names:
        np.testing.assert_allclose(variables[name].numpy(), reference[0][name], rtol=1e-5,
                                   atol=1e-7, err_msg=name)
    before = {n: variables[n].numpy() for n in names}
    bad = [tf.constant(np.full(VARIABLE_SHAPES[n], np.inf, np.float32)) for n in names]
    optimizer.apply_gradients(zip(bad, [variables[n] for n in names]))
    for name in names:
        np.testing.assert_array_equal(variables[name].numpy(), before[name])
    assert float(optimizer.dynamic_scale.numpy()) == 512.0


# --- Under tf.distribute (a fresh process: logical devices must precede TF start-up) ----

_MIRRORED_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np, tensorflow as tf, keras
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    sys.path.insert(0, sys.argv[1])
    from test_optimization import make_problem, keras_variables, run_ours
    from albert_tf.optimization import create_optimizer

    kind = sys.argv[2]
    params, grads_a = make_problem(seed=7, steps=3)
    _, grads_b = make_problem(seed=8, steps=3)
    # One device, the sum of both replicas' gradients (Keras's cross-replica convention).
    summed = [{n: a[n] + b[n] for n in a} for a, b in zip(grads_a, grads_b)]
    reference = run_ours(create_optimizer(1e-2, 10, 1, optimizer=kind), params, summed)

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    names = list(params)
    with strategy.scope():
        variables = keras_variables(params)
        optimizer = create_optimizer(1e-2, 10, 1, optimizer=kind)
        optimizer.build([variables[n] for n in names])

    @tf.function
    def step(ga, gb):
        def replica_fn():
            rid = tf.distribute.get_replica_context().replica_id_in_sync_group
            gs = [tf.where(rid == 0, a, b) for a, b in zip(ga, gb)]
            optimizer.apply_gradients(zip(gs, [variables[n] for n in names]))
        strategy.run(replica_fn)

    for a, b in zip(grads_a, grads_b):
        step([tf.constant(a[n]) for n in names], [tf.constant(b[n]) for n in names])
    diff = max(float(np.max(np.abs(variables[n].numpy() - reference[0][n]))) for n in names)
    print(json.dumps({"max_abs_diff": diff, "steps": int(optimizer.iterations.numpy())}))
""")


@pytest.mark.parametrize("kind", ["lamb", "adamw"])
def test_mirrored_strategy_sums_replicas_then_clips_like_one_device(kind, tmp_path):
    script = tmp_path / "mirrored_check.py"
    script.write_text(_MIRRORED_SCRIPT)
    repo_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=repo_root, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [sys.executable, str(script), os.path.dirname(os.path.abspath(__file__)), kind],
        capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["steps"] == 3
    assert report["max_abs_diff"] < 1e-6
