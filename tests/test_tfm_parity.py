"""Numerical parity with tf-models-official's own ALBERT, an independent implementation.

A random-initialised model of ours is written with `save_original_checkpoint`, converted by
tf-models-official's `tf2_albert_encoder_checkpoint_converter` into its `AlbertEncoder`, and
both encode the same padded batches. (That converter handles one group only; the original's
fixture covers multi-group layouts in test_modeling.py.)
"""
import numpy as np
import pytest
import tensorflow as tf

from albert_tf import AlbertConfig, AlbertModel
from albert_tf.checkpoints import save_original_checkpoint

tfm_converter = pytest.importorskip("official.nlp.tools.tf2_albert_encoder_checkpoint_converter")
tfm_configs = pytest.importorskip("official.legacy.albert.configs")

CONFIG = dict(vocab_size=120, embedding_size=16, hidden_size=48, num_hidden_layers=3,
              num_attention_heads=4, intermediate_size=96, max_position_embeddings=64,
              hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)


def padded_batch(rng, batch=4, length=24, vocab=120):
    ids = rng.integers(5, vocab, size=(batch, length)).astype(np.int32)
    lengths = [length, length - 7, 5, 1][:batch]
    mask = np.array([[1] * n + [0] * (length - n) for n in lengths], np.int32)
    segments = np.array([[0] * (n // 2) + [1] * (length - n // 2) for n in lengths], np.int32)
    return ids * mask, mask, segments * mask


@pytest.fixture(scope="module")
def both_models(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tfm")
    config = AlbertConfig(**CONFIG)
    ours = AlbertModel(config)
    # Non-trivial biases and LayerNorm parameters, so a swapped or missing one shows.
    rng = np.random.default_rng(0)
    for variable in ours.weights:
        if variable.path.endswith(("bias", "beta", "gamma")):
            variable.assign(rng.normal(0.5, 0.3, variable.shape).astype(np.float32))
    prefix = save_original_checkpoint(ours, tmp / "model.ckpt")
    tfm_config = tfm_configs.AlbertConfig.from_dict(config.to_dict())
    (tmp / "converted" / "temp_v1").mkdir(parents=True)
    converted = str(tmp / "converted" / "encoder")
    tfm_converter.convert_checkpoint(tfm_config, converted, prefix, "encoder", "encoder")
    theirs = tfm_converter._create_albert_model(tfm_config)   # pylint: disable=protected-access
    tf.train.Checkpoint(encoder=theirs).read(
        tf.train.latest_checkpoint(str(tmp / "converted"))).assert_existing_objects_matched()
    return ours, theirs


def test_sequence_and_pooled_outputs_match_tf_models_official(both_models):
    ours, theirs = both_models
    ids, mask, segments = padded_batch(np.random.default_rng(1))
    a = ours({"input_ids": ids, "input_mask": mask, "segment_ids": segments}, training=False)
    b = theirs({"input_word_ids": ids, "input_mask": mask, "input_type_ids": segments},
               training=False)
    if not isinstance(b, dict):   # AlbertEncoder without dict_outputs: [sequence, pooled]
        b = {"sequence_output": b[0], "pooled_output": b[1]}
    real = mask.astype(bool)
    seq_diff = np.abs(a["sequence_output"].numpy() - b["sequence_output"].numpy())[real].max()
    pooled_diff = np.abs(a["pooled_output"].numpy() - b["pooled_output"].numpy()).max()
    print(f"max |ours - tf-models-official|: sequence {seq_diff:.2e}, pooled {pooled_diff:.2e}")
    assert seq_diff <= 1e-5
    assert pooled_diff <= 1e-5
