"""Mixed precision (bf16, fp16) against the original code's float32 outputs and training.

Reference: tests/fixtures/original_tiny, written by the original modeling.py and
run_pretraining.py heads in float32 (5 layers, 3 groups x 2 inner groups, E != H, a padded
batch of 3 x 16 with 4 predictions). Under `--mixed_precision=bf16` / `fp16` the encoder's
matmuls run in 16 bits (bf16 keeps 8 bits of mantissa, fp16 11), while the variables, the
LayerNorms, the attention softmax, the heads and the losses stay float32; so the outputs
agree with the original float32 ones only up to 16-bit rounding. The bounds below are about
3x the errors measured on the 2-core CPU this project is developed on (x86-64, TensorFlow
2.20; the figures are in each table), so they hold on other kernels (GPU tensor cores) too
while still catching a wrong cast (which gives errors of order 1).

Errors are stated as max |ours - original| / max |original| over the tensor ("relative to
its scale": single elements near zero have no meaningful relative error), losses as
|ours - original| / original.

On a GPU (benchmarks/gpu_check.sh runs this file there) the steps run on it, with
TensorFloat-32 off so that "float32" is float32, as in the original.
"""
import keras
import numpy as np
import pytest
import tensorflow as tf

from albert_tf import AlbertPretrainer, pretraining_losses, training
from albert_tf.checkpoints import load_original_checkpoint
from albert_tf.pretraining import (PretrainingSettings, build_pretraining_model,
                                   pretraining_batch_stats, pretraining_loss)
from conftest import ORIGINAL_TINY, original_reference, tiny_config

ENCODER_INPUTS = ("input_ids", "input_mask", "segment_ids", "masked_lm_positions")

# Measured (CPU, TF 2.20) max error relative to the tensor's scale; the bound is ~3x that.
# bf16: sequence 1.51e-2, pooled 1.56e-2, MLM log-probs 2.51e-4, SOP log-probs 3.30e-5,
#       masked-LM loss 3.36e-5, sentence-order loss 6.2e-6, total loss 3.06e-5.
# fp16: sequence 1.76e-3, pooled 1.67e-3, MLM log-probs 4.05e-5, SOP log-probs 1.63e-5,
#       masked-LM loss 4.9e-6, sentence-order loss 3.0e-6, total loss 4.6e-6.
# (float32 for comparison: sequence 4.7e-7, the rest <= 2.7e-7.)
OUTPUT_BOUNDS = {
    "bf16": {"sequence_output": 5e-2, "pooled_output": 5e-2, "mlm_log_probs": 1e-3,
             "sop_log_probs": 1e-4, "masked_lm_loss": 1e-4, "sentence_order_loss": 2e-5,
             "total_loss": 1e-4},
    "fp16": {"sequence_output": 6e-3, "pooled_output": 6e-3, "mlm_log_probs": 1.5e-4,
             "sop_log_probs": 5e-5, "masked_lm_loss": 1.5e-5, "sentence_order_loss": 1e-5,
             "total_loss": 1.5e-5},
}
COMPUTE_DTYPES = {"bf16": tf.bfloat16, "fp16": tf.float16}
PRECISIONS = sorted(OUTPUT_BOUNDS)

# Training: 8 LAMB steps (lr 1e-2, no warm-up, no dropout) from the original checkpoint on
# the fixture batch. Measured max relative difference of the per-step training loss from
# float32's: bf16 3.06e-5, fp16 4.63e-6 (the float32 loss falls from 6.385 to 5.802); the
# bounds are ~3x.
TRAIN_STEPS = 8
TRAIN_LEARNING_RATE = 1e-2
TRAIN_BOUNDS = {"bf16": 1e-4, "fp16": 1.5e-5}


DEVICE = "/gpu:0" if tf.config.list_physical_devices("GPU") else "/cpu:0"


@pytest.fixture(scope="module", autouse=True)
def true_float32():
    """TensorFloat-32 (10-bit mantissa matmuls, on by default on recent GPUs) off."""
    previous = tf.config.experimental.tensor_float_32_execution_enabled()
    tf.config.experimental.enable_tensor_float_32_execution(False)
    yield
    tf.config.experimental.enable_tensor_float_32_execution(previous)


# The Keras global policy of `--mixed_precision=name` while inside, restored afterwards.
precision = training.mixed_precision_policy


def relative_to_scale(ours, original):
    ours = tf.cast(ours, tf.float32).numpy()
    return float(np.max(np.abs(ours - original)) / np.max(np.abs(original)))


@pytest.fixture(scope="module")
def reference():
    return original_reference(ORIGINAL_TINY)


@pytest.fixture(scope="module")
def runs(reference):
    """{precision: (model, outputs, losses)} of the original checkpoint on the fixture batch."""
    results = {}
    for name in ["none"] + PRECISIONS:
        with precision(name):
            model = AlbertPretrainer(tiny_config())
            load_original_checkpoint(model, ORIGINAL_TINY, strict=True)
            outputs = model({k: reference[k] for k in ENCODER_INPUTS}, training=False)
            losses = pretraining_losses(outputs, {
                "masked_lm_ids": reference["masked_lm_ids"],
                "masked_lm_weights": reference["masked_lm_weights"],
                "next_sentence_labels": reference["sentence_order_labels"]})
        results[name] = (model, outputs, losses)
    return results


# --- The policy takes effect, variables stay float32 ---------------------------------------

@pytest.mark.parametrize("name", PRECISIONS)
def test_encoder_computes_in_16_bits_with_float32_variables(runs, name):
    model, outputs, _ = runs[name]
    assert outputs["sequence_output"].dtype == COMPUTE_DTYPES[name]
    assert {v.dtype for v in model.weights} == {"float32"}
    # The heads and their logits stay float32 whatever the policy.
    assert outputs["mlm_logits"].dtype == tf.float32
    assert outputs["sop_logits"].dtype == tf.float32


# --- Outputs against the original's float32 ------------------------------------------------

@pytest.mark.parametrize("name", PRECISIONS)
def test_sequence_output_agrees_with_original_float32(runs, reference, name):
    real = reference["input_mask"].astype(bool)   # padded positions are not meaningful
    ours = tf.cast(runs[name][1]["sequence_output"], tf.float32).numpy()[real]
    error = relative_to_scale(ours, reference["sequence_output"][real])
    assert error <= OUTPUT_BOUNDS[name]["sequence_output"]


@pytest.mark.parametrize("name", PRECISIONS)
def test_pooled_output_agrees_with_original_float32(runs, reference, name):
    error = relative_to_scale(runs[name][1]["pooled_output"], reference["pooled_output"])
    assert error <= OUTPUT_BOUNDS[name]["pooled_output"]


@pytest.mark.parametrize("name", PRECISIONS)
def test_mlm_log_probs_agree_with_original_float32(runs, reference, name):
    log_probs = tf.nn.log_softmax(runs[name][1]["mlm_logits"]).numpy()
    # The original flattens predictions batch-major: [B * P, V].
    error = relative_to_scale(log_probs.reshape(-1, log_probs.shape[-1]),
                              reference["mlm_log_probs"])
    assert error <= OUTPUT_BOUNDS[name]["mlm_log_probs"]


@pytest.mark.parametrize("name", PRECISIONS)
def test_sop_log_probs_agree_with_original_float32(runs, reference, name):
    error = relative_to_scale(tf.nn.log_softmax(runs[name][1]["sop_logits"]),
                              reference["sop_log_probs"])
    assert error <= OUTPUT_BOUNDS[name]["sop_log_probs"]


@pytest.mark.parametrize("name", PRECISIONS)
@pytest.mark.parametrize("loss,original", [("masked_lm_loss", "mlm_loss"),
                                           ("sentence_order_loss", "sop_loss"),
                                           ("total_loss", "total_loss")])
def test_losses_agree_with_original_float32(runs, reference, name, loss, original):
    ours = float(runs[name][2][loss])
    assert ours == pytest.approx(float(reference[original]), rel=OUTPUT_BOUNDS[name][loss])


def test_mixed_precision_is_not_float32_in_disguise(runs, reference):
    """The 16-bit errors are far above float32's: the comparisons above are not vacuous."""
    real = reference["input_mask"].astype(bool)
    errors = {name: relative_to_scale(
        tf.cast(runs[name][1]["sequence_output"], tf.float32).numpy()[real],
        reference["sequence_output"][real]) for name in runs}
    assert errors["none"] < 1e-5
    assert errors["fp16"] > 10 * errors["none"]
    assert errors["bf16"] > 3 * errors["fp16"]   # 8 bits of mantissa against 11


# --- Training: the pretraining step ---------------------------------------------------------

def _fixture_batch(reference):
    batch = {k: tf.constant(reference[k]) for k in ENCODER_INPUTS + (
        "masked_lm_ids", "masked_lm_weights")}
    batch["next_sentence_labels"] = tf.constant(reference["sentence_order_labels"][:, None])
    return batch


@pytest.fixture(scope="module")
def trained(reference):
    """{precision: Run(losses of steps 1..TRAIN_STEPS, trainer, iterator)}: LAMB steps from
    the original weights on the fixture batch, with the model and optimizer `run_pretraining`
    builds (`build_pretraining_model`: LAMB, in a LossScaleOptimizer for fp16), its loss and
    `Trainer`, on one device."""
    config = tiny_config()
    # No dropout: every precision then computes the same function.
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    batch = _fixture_batch(reference)
    results = {}
    for name in ["none"] + PRECISIONS:
        settings = PretrainingSettings(input_file="unused", output_dir="unused",
                                       num_train_steps=10, num_warmup_steps=0,
                                       learning_rate=TRAIN_LEARNING_RATE, mixed_precision=name)
        strategy = tf.distribute.OneDeviceStrategy(DEVICE)
        with precision(name):
            model, optimizer = build_pretraining_model(config, settings, strategy)
            load_original_checkpoint(model, ORIGINAL_TINY, strict=True)
            trainer = training.Trainer(strategy, model, optimizer, pretraining_loss,
                                       pretraining_batch_stats)
            iterator = iter(tf.data.Dataset.from_tensors(batch).repeat())
            losses = [trainer.train(iterator, 1)["loss"] for _ in range(TRAIN_STEPS)]
        results[name] = Run(losses, trainer, iterator)
    return results


class Run:
    def __init__(self, losses, trainer, iterator):
        self.losses, self.trainer, self.iterator = losses, trainer, iterator


def test_float32_training_starts_at_the_original_loss_and_falls(trained, reference):
    losses = trained["none"].losses
    # Step 1's loss is computed on the original weights: the original's total loss.
    assert losses[0] == pytest.approx(float(reference["total_loss"]), rel=1e-6)
    assert losses[-1] < losses[0] - 0.5


@pytest.mark.parametrize("name", PRECISIONS)
def test_mixed_precision_training_follows_float32(trained, name):
    worst = max(abs(ours - original) / original
                for ours, original in zip(trained[name].losses, trained["none"].losses))
    assert worst <= TRAIN_BOUNDS[name]


@pytest.mark.parametrize("name", ["none"] + PRECISIONS)
def test_trained_variables_and_optimizer_state_stay_float32(trained, name):
    trainer = trained[name].trainer
    assert {v.dtype for v in trainer.model.weights} == {"float32"}
    assert {v.dtype for v in trainer.optimizer.variables
            if v.dtype.startswith("float")} == {"float32"}


# --- Loss scaling: fp16 only ---------------------------------------------------------------

def test_fp16_uses_dynamic_loss_scaling(trained):
    optimizer = trained["fp16"].trainer.optimizer
    assert isinstance(optimizer, keras.mixed_precision.LossScaleOptimizer)
    # Keras' initial scale; it grows only after 2,000 steps without overflow.
    assert float(optimizer.dynamic_scale) == 2.0 ** 15


@pytest.mark.parametrize("name", ["none", "bf16"])
def test_float32_and_bf16_need_no_loss_scaling(trained, name):
    # bf16 has float32's exponent range: its gradients do not underflow.
    assert not isinstance(trained[name].trainer.optimizer,
                          keras.mixed_precision.LossScaleOptimizer)


def test_fp16_step_with_overflowing_gradients_is_skipped_and_the_scale_halves(trained):
    """A scale so large that the float16 backward pass overflows: the step leaves the weights
    alone and halves the scale, step after step; with a scale float16 can hold, training
    goes on. (Runs after the parity tests: it changes the fp16 run's state.)"""
    run = trained["fp16"]
    model, optimizer = run.trainer.model, run.trainer.optimizer
    optimizer.dynamic_scale.assign(2.0 ** 40)
    before = [v.numpy() for v in model.trainable_variables]
    with precision("fp16"):
        run.trainer.train(run.iterator, 3)
    assert float(optimizer.dynamic_scale) == 2.0 ** 37
    for old, variable in zip(before, model.trainable_variables):
        np.testing.assert_array_equal(variable.numpy(), old)
    optimizer.dynamic_scale.assign(2.0 ** 10)
    with precision("fp16"):
        run.trainer.train(run.iterator, 1)
    assert any(not np.array_equal(v.numpy(), old)
               for old, v in zip(before, model.trainable_variables))
