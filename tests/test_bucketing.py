"""Length buckets: every head gives the same outputs at any padding length; batches are cut to
a few bucket lengths; evaluation and prediction score every example once, in order.

Reference: the same model on the same examples padded to the full length (the original's
fixed `max_seq_length`); the attention mask makes padded positions contribute exactly zero.
"""
import numpy as np
import pytest
import tensorflow as tf

from albert_tf import AlbertConfig, bucketing, finetuning
from albert_tf.heads import (AlbertClassifier, AlbertMultipleChoice, AlbertPretrainer,
                             AlbertSquadV1, AlbertSquadV2)

CONFIG = AlbertConfig(vocab_size=40, embedding_size=8, hidden_size=16, num_hidden_layers=2,
                      num_attention_heads=2, intermediate_size=32, max_position_embeddings=512)
LENGTHS = (5, 17, 40, 9)   # real tokens per example; all fit the smallest padding (64)


def padded(lengths, seq_length, seed=0, choices=None):
    """Examples with the given real lengths, zero-padded to `seq_length` (the original's
    layout: ids, mask 1 and segment ids on the real tokens, zeros after)."""
    rng = np.random.default_rng(seed)
    shape = (len(lengths),) + ((choices,) if choices else ()) + (seq_length,)
    ids = np.zeros(shape, np.int32)
    mask = np.zeros(shape, np.int32)
    segments = np.zeros(shape, np.int32)
    for i, n in enumerate(lengths):
        ids[i, ..., :n] = rng.integers(5, CONFIG.vocab_size, (choices, n) if choices else n)
        mask[i, ..., :n] = 1
        segments[i, ..., n // 2:n] = 1
    return {"input_ids": ids, "input_mask": mask, "segment_ids": segments}


def outputs_at(model, seq_length, extra=None, choices=None):
    batch = padded(LENGTHS, seq_length, choices=choices)
    batch.update(extra(seq_length) if extra else {})
    return {k: v.numpy() for k, v in model({k: tf.constant(v) for k, v in batch.items()}).items()}


def assert_same_at_64_128_512(model, keys, extra=None, choices=None, per_token=()):
    reference = outputs_at(model, 512, extra, choices)
    for seq_length in (64, 128):
        out = outputs_at(model, seq_length, extra, choices)
        for key in keys:
            want = reference[key]
            if key in per_token:   # [B, S]: compare the real positions
                want = want[:, :seq_length]
            np.testing.assert_allclose(out[key], want, rtol=1e-5, atol=1e-5, err_msg=key)


# --- Outputs do not depend on the padding length ------------------------------------------


def test_classifier_and_regression_outputs_do_not_depend_on_padding():
    assert_same_at_64_128_512(AlbertClassifier(CONFIG, 3), ["logits", "probabilities"])
    assert_same_at_64_128_512(AlbertClassifier(CONFIG, 1), ["logits", "predictions"])


def test_race_outputs_do_not_depend_on_padding():
    assert_same_at_64_128_512(AlbertMultipleChoice(CONFIG, 4), ["logits", "probabilities"],
                              choices=4)


def test_squad_v1_logits_at_real_positions_do_not_depend_on_padding():
    model = AlbertSquadV1(CONFIG)
    reference = outputs_at(model, 512)
    out = outputs_at(model, 64)
    for key in ("start_logits", "end_logits"):
        for i, n in enumerate(LENGTHS):
            np.testing.assert_allclose(out[key][i, :n], reference[key][i, :n], rtol=1e-5,
                                       atol=1e-5)


def test_squad_v2_beam_and_answer_logit_do_not_depend_on_padding():
    def p_mask(seq_length):
        mask = padded(LENGTHS, seq_length)["input_mask"]
        p = 1 - mask
        p[:, :3] = 1    # question tokens
        return {"p_mask": p}

    assert_same_at_64_128_512(
        AlbertSquadV2(CONFIG, start_n_top=3, end_n_top=2),
        ["start_top_log_probs", "start_top_index", "end_top_log_probs", "end_top_index",
         "cls_logits"], extra=p_mask)


def test_pretraining_heads_do_not_depend_on_padding():
    def positions(_):
        return {"masked_lm_positions": np.array([[1, 3, 0], [2, 10, 16], [7, 30, 39],
                                                 [4, 8, 0]], np.int32)}

    assert_same_at_64_128_512(AlbertPretrainer(CONFIG), ["mlm_logits", "sop_logits"],
                              extra=positions)


# --- Buckets and cutting -------------------------------------------------------------------


def test_bucket_lengths_end_with_max_seq_length():
    assert bucketing.bucket_lengths(512) == (64, 128, 256, 512)
    assert bucketing.bucket_lengths(384, (64, 128, 256, 384, 512)) == (64, 128, 256, 384)
    assert bucketing.bucket_lengths(128, ()) == (128,)


def test_length_buckets_flag_values():
    assert bucketing.parse_buckets("default") == bucketing.DEFAULT_BUCKETS
    assert bucketing.parse_buckets("none") == ()
    assert bucketing.parse_buckets("32, 96") == (32, 96)
    with pytest.raises(bucketing.BucketError, match="--length_buckets"):
        bucketing.parse_buckets("64,abc")


def test_batch_is_cut_to_the_bucket_of_its_longest_example():
    batch = {k: tf.constant(v) for k, v in padded((5, 70), 512).items()}
    batch["label_ids"] = tf.constant([0, 1])
    cut = bucketing.trim_to_bucket(batch, (64, 128, 256, 512))
    assert cut["input_ids"].shape == (2, 128)
    np.testing.assert_array_equal(cut["input_ids"], batch["input_ids"][:, :128])
    assert cut["label_ids"].shape == (2,)


def test_race_choices_are_cut_on_their_last_axis():
    batch = {k: tf.constant(v) for k, v in padded((5, 30), 512, choices=4).items()}
    cut = bucketing.trim_to_bucket(batch, (64, 512))
    assert cut["input_mask"].shape == (2, 4, 64)


def _examples(lengths, seq_length=512):
    data = padded(lengths, seq_length)
    data["label_ids"] = np.arange(len(lengths), dtype=np.int32)
    return tf.data.Dataset.from_tensor_slices(data)


def test_grouped_training_batches_hold_one_bucket_each():
    lengths = [5, 300, 6, 70, 7, 80, 8, 310] * 3
    buckets = (64, 128, 512)
    batches = list(bucketing.training_batches(_examples(lengths), 2, buckets))
    shapes = {int(b["input_ids"].shape[1]) for b in batches}
    assert shapes == set(buckets)
    for b in batches:
        assert int(bucketing.batch_length(b)) > {64: 0, 128: 64, 512: 128}[b["input_ids"].shape[1]]
    seen = np.sort(np.concatenate([b["label_ids"].numpy() for b in batches]))
    np.testing.assert_array_equal(seen, np.arange(len(lengths)))


def test_without_grouping_training_batches_keep_the_original_order():
    lengths = [5, 300, 6, 70, 7, 80]
    batches = list(bucketing.training_batches(_examples(lengths), 2, (64, 128, 512),
                                              group_by_length=False))
    np.testing.assert_array_equal(np.concatenate([b["label_ids"] for b in batches]),
                                  np.arange(6))
    assert [b["input_ids"].shape[1] for b in batches] == [512, 128, 128]


# --- Evaluation and prediction ----------------------------------------------------------


def _tuner(tmp_path, strategy=None):
    settings = finetuning.FinetuningSettings(
        output_dir=str(tmp_path), max_seq_length=128, train_batch_size=4, eval_batch_size=4,
        predict_batch_size=4, learning_rate=1e-3, train_step=1, warmup_step=0,
        length_buckets="16,64")
    return finetuning.FineTuner(CONFIG, settings, lambda c: AlbertClassifier(c, 2),
                                strategy)


@pytest.mark.parametrize("replicas", [1, 2])
def test_predict_scores_every_example_once_in_order_with_one_shape_per_bucket(tmp_path,
                                                                               replicas):
    strategy = (tf.distribute.MirroredStrategy(
        [d.name for d in tf.config.list_logical_devices("CPU")][:2]) if replicas == 2
        else None)
    tuner = _tuner(tmp_path, strategy)
    # 11 examples in buckets 16 (6), 64 (3) and 128 (2): no bucket fills whole batches of 4.
    lengths = [5, 100, 9, 40, 3, 120, 12, 50, 7, 16, 60]
    data = padded(lengths, 128, seed=3)
    data["label_ids"] = np.arange(len(lengths), dtype=np.int32)
    outputs = tuner.predict(tf.data.Dataset.from_tensor_slices(data), keep=("label_ids",))
    np.testing.assert_array_equal(outputs["label_ids"], np.arange(len(lengths)))
    expected = tuner.model({k: tf.constant(v) for k, v in data.items()})["logits"].numpy()
    np.testing.assert_allclose(outputs["logits"], expected, rtol=1e-5, atol=1e-5)
    step = next(iter(tuner._predict_steps.values()))
    assert step.experimental_get_tracing_count() == 3   # buckets 16, 64 and 128


# --- Serving -----------------------------------------------------------------------------


def _export_tiny_encoder(tmp_path, fixtures_dir, max_seq_length, **kwargs):
    """A SavedModel of a tiny random encoder with text signatures; returns its folder."""
    from albert_tf import export
    from albert_tf.modeling import AlbertModel
    config = AlbertConfig(vocab_size=1000, embedding_size=8, hidden_size=16,
                          num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                          max_position_embeddings=max_seq_length)
    spm = str(fixtures_dir / "original_tokenizer" / "spm1k.model")
    return export.export_saved_model(AlbertModel(config), str(tmp_path / "export"), spm,
                                     max_seq_length=max_seq_length, **kwargs)


@pytest.mark.slow   # a SavedModel export and load: about a minute on a loaded CPU
def test_text_signature_cuts_short_requests_and_keeps_the_outputs(tmp_path, fixtures_dir):
    folder = _export_tiny_encoder(tmp_path, fixtures_dir, 128)
    loaded = tf.saved_model.load(folder)
    got = loaded.signatures["text"](text_a=tf.constant(["a short text", "another one"]))
    # The same packed rows, at their full length of 128, through the uncut signature.
    full = loaded.signatures["tokens"](**{k: got[k] for k in ("input_ids", "input_mask",
                                                              "segment_ids")})
    assert got["sequence_output"].shape == (2, 128, 16)
    np.testing.assert_allclose(got["pooled_output"], full["pooled_output"], atol=1e-5)
    np.testing.assert_allclose(got["sequence_output"][:, :64], full["sequence_output"][:, :64],
                               atol=1e-5)
    np.testing.assert_array_equal(got["sequence_output"][:, 64:], 0.0)   # cut to 64


def test_text_requests_are_cut_to_the_export_s_length_buckets():
    from albert_tf.export_serving import _cut_to_bucket
    features = {k: tf.constant(v) for k, v in padded((20, 7), 512).items()}
    for value, want in (("default", 64), ("none", 512), ("32,128", 32), ((32, 128), 32),
                        ((), 512)):
        cut = _cut_to_bucket(features, bucketing.parse_buckets(value))
        assert {k: v.shape for k, v in cut.items()} == {k: (2, want) for k in features}, value
        np.testing.assert_array_equal(cut["input_ids"], features["input_ids"][:, :want])


@pytest.mark.parametrize("value", ["abc", "0", "64,-1"])
def test_export_with_bad_length_buckets_writes_nothing(tmp_path, value):
    from albert_tf import export
    from albert_tf.modeling import AlbertModel
    target = tmp_path / "export"
    with pytest.raises(bucketing.BucketError, match="--length_buckets"):
        export.export_saved_model(AlbertModel(CONFIG), str(target), "missing.model",
                                  max_seq_length=64, length_buckets=value, versioned=True)
    assert list(tmp_path.iterdir()) == []


def test_export_records_its_length_buckets(tmp_path, fixtures_dir):
    import json
    from albert_tf import export
    folder = _export_tiny_encoder(tmp_path, fixtures_dir, 64, length_buckets="none")
    info = json.loads((tmp_path / "export" / "assets" / export.EXPORT_INFO).read_text())
    assert folder == str(tmp_path / "export") and info["length_buckets"] == [64]
