"""The encoder and pretraining heads against the original code's own outputs.

Reference: tests/fixtures/original_tiny, written by the original modeling.py and
run_pretraining.py heads (3 groups x 2 inner groups, E != H, a padded batch, is_training=False).
"""
import json

import numpy as np
import pytest
import tensorflow as tf

from albert_tf import AlbertConfig, AlbertModel, AlbertPretrainer, pretraining_losses
from albert_tf.checkpoints import load_original_checkpoint
from conftest import ORIGINAL_TINY, original_reference, tiny_config

ATOL = 1e-5
ENCODER_INPUTS = ("input_ids", "input_mask", "segment_ids")


@pytest.fixture(scope="module")
def reference():
    return original_reference(ORIGINAL_TINY)


@pytest.fixture(scope="module")
def pretrainer():
    model = AlbertPretrainer(tiny_config())
    load_original_checkpoint(model, ORIGINAL_TINY, strict=True)
    return model


@pytest.fixture(scope="module")
def outputs(pretrainer, reference):
    inputs = {k: reference[k] for k in ENCODER_INPUTS + ("masked_lm_positions",)}
    return pretrainer(inputs, training=False)


def test_variable_paths_are_the_original_names_and_shapes():
    expected = {name: shape for name, shape in
                json.loads((ORIGINAL_TINY / "variables.json").read_text())}
    model = AlbertPretrainer(tiny_config())
    ours = {v.path: list(v.shape) for v in model.weights}
    assert ours == expected


def test_sequence_output_matches_original(outputs, reference):
    real = reference["input_mask"].astype(bool)   # padded positions are not meaningful
    np.testing.assert_allclose(outputs["sequence_output"].numpy()[real],
                               reference["sequence_output"][real], atol=ATOL, rtol=0)


def test_pooled_output_matches_original(outputs, reference):
    np.testing.assert_allclose(outputs["pooled_output"], reference["pooled_output"],
                               atol=ATOL, rtol=0)


def test_mlm_log_probs_match_original(outputs, reference):
    log_probs = tf.nn.log_softmax(outputs["mlm_logits"]).numpy()
    # The original flattens predictions batch-major: [B * P, V].
    np.testing.assert_allclose(log_probs.reshape(-1, log_probs.shape[-1]),
                               reference["mlm_log_probs"], atol=ATOL, rtol=0)


def test_sop_log_probs_match_original(outputs, reference):
    np.testing.assert_allclose(tf.nn.log_softmax(outputs["sop_logits"]),
                               reference["sop_log_probs"], atol=ATOL, rtol=0)


def test_losses_match_original(outputs, reference):
    losses = pretraining_losses(outputs, {
        "masked_lm_ids": reference["masked_lm_ids"],
        "masked_lm_weights": reference["masked_lm_weights"],
        "next_sentence_labels": reference["sentence_order_labels"]})
    assert losses["masked_lm_loss"].numpy() == pytest.approx(reference["mlm_loss"], abs=ATOL)
    assert losses["sentence_order_loss"].numpy() == pytest.approx(reference["sop_loss"], abs=ATOL)
    assert losses["total_loss"].numpy() == pytest.approx(reference["total_loss"], abs=ATOL)


def test_heads_match_a_numpy_computation_from_checkpoint_values(pretrainer, outputs, reference):
    """MLM: gather, dense+gelu(tanh), LayerNorm(1e-12), tied table + bias; SOP: pooled W^T + b."""
    reader = tf.train.load_checkpoint(str(ORIGINAL_TINY / "model.ckpt"))
    get = reader.get_tensor
    seq = outputs["sequence_output"].numpy()
    pos = reference["masked_lm_positions"]
    x = np.stack([seq[b, pos[b]] for b in range(seq.shape[0])])          # [B, P, H]
    x = x @ get("cls/predictions/transform/dense/kernel") + get(
        "cls/predictions/transform/dense/bias")
    x = 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    x = (x - mean) / np.sqrt(var + 1e-12) * get("cls/predictions/transform/LayerNorm/gamma") + get(
        "cls/predictions/transform/LayerNorm/beta")
    logits = x @ get("bert/embeddings/word_embeddings").T + get("cls/predictions/output_bias")
    np.testing.assert_allclose(outputs["mlm_logits"], logits, atol=ATOL, rtol=0)
    pooled = outputs["pooled_output"].numpy()
    sop = pooled @ get("cls/seq_relationship/output_weights").T + get(
        "cls/seq_relationship/output_bias")
    np.testing.assert_allclose(outputs["sop_logits"], sop, atol=ATOL, rtol=0)


def test_pooler_is_tanh_dense_on_first_token(pretrainer, outputs):
    reader = tf.train.load_checkpoint(str(ORIGINAL_TINY / "model.ckpt"))
    first = outputs["sequence_output"].numpy()[:, 0]
    expected = np.tanh(first @ reader.get_tensor("bert/pooler/dense/kernel")
                       + reader.get_tensor("bert/pooler/dense/bias"))
    np.testing.assert_allclose(outputs["pooled_output"], expected, atol=1e-6, rtol=0)


def test_all_encoder_layers_has_one_entry_per_sub_block(pretrainer, reference):
    inputs = {k: reference[k] for k in ENCODER_INPUTS}
    out = pretrainer.encoder(inputs, output_all_layers=True)
    config = pretrainer.config
    assert len(out["all_encoder_layers"]) == config.num_hidden_layers * config.inner_group_num
    np.testing.assert_array_equal(out["all_encoder_layers"][-1], out["sequence_output"])
    assert out["embedding_output"].shape == (3, 16, config.embedding_size)


def test_default_mask_and_segments_are_ones_and_zeros(pretrainer, reference):
    ids = reference["input_ids"][:1]
    explicit = pretrainer.encoder({"input_ids": ids, "input_mask": np.ones_like(ids),
                                   "segment_ids": np.zeros_like(ids)})
    default = pretrainer.encoder({"input_ids": ids})
    np.testing.assert_array_equal(explicit["sequence_output"], default["sequence_output"])


def test_sequence_longer_than_positions_is_refused():
    config = tiny_config()
    model = AlbertModel(config)
    ids = np.ones((1, config.max_position_embeddings + 1), np.int32)
    with pytest.raises(ValueError, match="max_position_embeddings"):
        model({"input_ids": ids})


def test_dropout_only_in_training(pretrainer, reference):
    inputs = {k: reference[k] for k in ENCODER_INPUTS}
    a = pretrainer.encoder(inputs, training=False)["pooled_output"]
    b = pretrainer.encoder(inputs, training=False)["pooled_output"]
    c = pretrainer.encoder(inputs, training=True)["pooled_output"]   # config dropout 0.1
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-4


def test_unknown_activation_is_refused():
    config = AlbertConfig(vocab_size=10, hidden_size=8, num_attention_heads=2,
                          intermediate_size=8, hidden_act="swishy")
    with pytest.raises(ValueError, match="swishy"):
        AlbertModel(config)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_keeps_float32_variables_and_logits(policy, reference):
    import keras
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        model = AlbertPretrainer(tiny_config())
        load_original_checkpoint(model, ORIGINAL_TINY, strict=True)
        out = model({k: reference[k] for k in ENCODER_INPUTS + ("masked_lm_positions",)})
    finally:
        keras.config.set_dtype_policy(previous)
    assert all(v.dtype == "float32" for v in model.weights)
    assert out["mlm_logits"].dtype == tf.float32 and out["sop_logits"].dtype == tf.float32
    log_probs = tf.nn.log_softmax(out["mlm_logits"]).numpy().reshape(-1, 300)
    # Low precision matmuls, same function: close to the fp32 original.
    np.testing.assert_allclose(log_probs, reference["mlm_log_probs"], atol=0.1)


def test_runs_under_mirrored_strategy_with_two_replicas(reference):
    devices = tf.config.list_logical_devices("CPU")
    if len(devices) < 2:
        pytest.skip("needs two logical CPU devices (configured in conftest)")
    strategy = tf.distribute.MirroredStrategy([d.name for d in devices[:2]])
    with strategy.scope():
        model = AlbertPretrainer(tiny_config())
    load_original_checkpoint(model, ORIGINAL_TINY, strict=True)
    inputs = {k: reference[k][:2] for k in ENCODER_INPUTS + ("masked_lm_positions",)}

    @tf.function
    def step(batch):
        return model(batch)["pooled_output"]

    dataset = strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensor_slices(inputs).batch(2))
    per_replica = strategy.run(step, args=(next(iter(dataset)),))
    pooled = np.concatenate([t.numpy() for t in strategy.experimental_local_results(per_replica)])
    np.testing.assert_allclose(pooled, reference["pooled_output"][:2], atol=ATOL, rtol=0)
