"""Fine-tuning heads against checkpoints and outputs of the original fine-tuning graphs.

Reference: tests/fixtures/original_heads/<head>, written by the original classifier_utils,
race_utils and squad_utils graphs (is_training=False). Each checkpoint loads with strict=True.
"""
import numpy as np
import pytest
import tensorflow as tf

from albert_tf import (AlbertClassifier, AlbertConfig, AlbertMultipleChoice, AlbertSquadV1,
                       AlbertSquadV2)
from albert_tf.checkpoints import load_original_checkpoint
from albert_tf.heads import head_outputs
from conftest import ORIGINAL_HEADS, original_reference

ATOL = 1e-5
HEADS = {
    "classifier": lambda config: AlbertClassifier(config, num_labels=3),
    "regression": lambda config: AlbertClassifier(config, num_labels=1),
    "race": lambda config: AlbertMultipleChoice(config, num_choices=4),
    "squad_v1": AlbertSquadV1,
    "squad_v2": lambda config: AlbertSquadV2(config, start_n_top=5, end_n_top=5),
}
INPUTS = ("input_ids", "input_mask", "segment_ids", "p_mask")


def run_original_head(head):
    directory = ORIGINAL_HEADS / head
    config = AlbertConfig.from_json_file(directory / "albert_config.json")
    model = HEADS[head](config)
    report = load_original_checkpoint(model, directory, strict=True)
    reference = original_reference(directory)
    outputs = model({k: reference[k] for k in INPUTS if k in reference}, training=False)
    return model, report, reference, outputs


@pytest.mark.parametrize("head", sorted(HEADS))
def test_head_loads_original_checkpoint_strictly_with_nothing_unused(head):
    _, report, _, _ = run_original_head(head)
    assert not report.missing and not report.unused


def assert_match_original(out, ref, keys):
    for key in keys:
        np.testing.assert_allclose(out[key], ref[key], atol=ATOL, rtol=0, err_msg=key)


def test_classifier_matches_original():
    _, _, ref, out = run_original_head("classifier")
    assert_match_original(out, ref, ["logits", "probabilities"])


def test_regression_matches_original():
    _, _, ref, out = run_original_head("regression")
    # The original squeezes the single STS-B output to [B].
    np.testing.assert_allclose(out["predictions"], ref["logits"], atol=ATOL, rtol=0)
    assert out["logits"].shape == (3, 1)


def test_multiple_choice_matches_original():
    _, _, ref, out = run_original_head("race")
    assert_match_original(out, ref, ["logits", "probabilities"])


def test_squad_v1_matches_original():
    _, _, ref, out = run_original_head("squad_v1")
    assert_match_original(out, ref, ["start_logits", "end_logits"])


def test_squad_v2_beam_and_answer_class_match_original():
    _, _, ref, out = run_original_head("squad_v2")
    for key in ("start_top_index", "end_top_index"):
        np.testing.assert_array_equal(out[key], ref[key], err_msg=key)
    assert_match_original(out, ref, ["start_top_log_probs", "end_top_log_probs", "cls_logits"])


def test_squad_v2_training_outputs_condition_end_on_true_start():
    model, _, ref, _ = run_original_head("squad_v2")
    inputs = {k: ref[k] for k in INPUTS}
    inference = model(inputs, training=False)
    # Conditioning on a start among the top-k must reproduce that start's end distribution.
    start = inference["start_top_index"][:, 0]
    train_out = model(dict(inputs, start_positions=start), training=False)
    end_top = tf.math.top_k(train_out["end_log_probs"], k=5)
    np.testing.assert_array_equal(end_top.indices, inference["end_top_index"][:, :5])
    np.testing.assert_allclose(end_top.values, inference["end_top_log_probs"][:, :5], atol=1e-5)
    np.testing.assert_allclose(train_out["cls_logits"], inference["cls_logits"], atol=1e-6)


def test_multiple_choice_rejects_flat_inputs():
    config = AlbertConfig.from_json_file(ORIGINAL_HEADS / "race" / "albert_config.json")
    model = AlbertMultipleChoice(config)
    with pytest.raises(ValueError):
        model({"input_ids": np.ones((2, 16), np.int32)})


@pytest.mark.parametrize("head", sorted(HEADS))
def test_head_returns_the_encoder_outputs_with_its_own(head):
    """Every head passes its encoder's outputs on (RACE per option: [B, C, ...]), equal to
    the encoder's own call, so exports serve them without recomputing."""
    model, _, ref, out = run_original_head(head)
    inputs = {k: ref[k] for k in INPUTS[:3]}
    batch_shape = ref["input_ids"].shape[:-1]
    if head == "race":
        inputs = {k: v.reshape(-1, v.shape[-1]) for k, v in inputs.items()}
    encoded = model.encoder(inputs, training=False)
    hidden = model.config.hidden_size
    assert out["sequence_output"].shape == ref["input_ids"].shape + (hidden,)
    assert out["pooled_output"].shape == batch_shape + (hidden,)
    for key in ("sequence_output", "pooled_output", "embedding_output"):
        np.testing.assert_array_equal(np.reshape(out[key], encoded[key].shape), encoded[key],
                                      err_msg=key)
    assert set(head_outputs(out)) == set(out) - {"sequence_output", "pooled_output",
                                                 "embedding_output"}
