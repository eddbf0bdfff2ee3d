"""One optimizer step on the tiny model matches the ORIGINAL create_optimizer's step.

Reference: tests/fixtures/original_tiny/step_lamb.npz and step_adamw.npz, written by the
original optimization.py / lamb_optimizer.py (TF 1.15 code under compat.v1): one train op on
`total_loss` of the fixture batch from the fixture checkpoint, init_lr 1e-3, 10 train steps,
no warm-up, global-norm clipping 1.0, weight decay 0.01 with the original exclusions.
The four stored variables cover the cases: an embedding table (decay + ratio; shared by the
MLM output), a shared group kernel (decay + ratio), a LayerNorm gamma and the MLM output bias
(neither).
"""
import numpy as np
import pytest
import tensorflow as tf

from albert_tf.checkpoints import load_original_checkpoint, model_variables_by_original_name
from albert_tf.config import AlbertConfig
from albert_tf.heads import AlbertPretrainer, pretraining_losses
from albert_tf.optimization import create_optimizer

FEATURES = ("input_ids", "input_mask", "segment_ids", "masked_lm_positions", "masked_lm_ids",
            "masked_lm_weights", "sentence_order_labels")


@pytest.mark.parametrize("kind", ["lamb", "adamw"])
def test_one_step_matches_the_original_train_op(kind, fixtures_dir):
    tiny = fixtures_dir / "original_tiny"
    expected = np.load(tiny / f"step_{kind}.npz")
    reference = np.load(tiny / "reference.npz")
    features = {name: tf.constant(reference[name]) for name in FEATURES}

    model = AlbertPretrainer(AlbertConfig.from_json_file(tiny / "albert_config.json"))
    load_original_checkpoint(model, tiny / "model.ckpt", strict=True)
    optimizer = create_optimizer(1e-3, num_train_steps=10, num_warmup_steps=0,
                                 optimizer=kind)
    assert float(optimizer.learning_rate) == pytest.approx(float(expected["learning_rate"]))

    variables = model.trainable_variables
    with tf.GradientTape() as tape:
        # The original graph ran without dropout (is_training=False) for the fixture.
        outputs = model(features, training=False)
        loss = pretraining_losses(outputs, features)["total_loss"]
    np.testing.assert_allclose(float(loss), float(reference["total_loss"]), rtol=1e-6)
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))

    by_name = model_variables_by_original_name(model)
    checked = 0
    for key in expected.files:
        if key == "learning_rate":
            continue
        name = key.replace("__", "/")
        np.testing.assert_allclose(by_name[name].numpy(), expected[key], rtol=0, atol=1e-6,
                                   err_msg=name)
        checked += 1
    assert checked == 4
