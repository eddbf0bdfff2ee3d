"""Reading and writing original-format checkpoints: names, round trips, and every bad input.

References: tests/fixtures/original_tiny/variables.json (what `tf.train.list_variables` reports
for a checkpoint of the original code) and `tf.train.load_variable` (the TF1 reader).
"""
import json
import shutil

import numpy as np
import pytest
import tensorflow as tf

from albert_tf import AlbertClassifier, AlbertConfig, AlbertModel, AlbertPretrainer
from albert_tf.checkpoints import (CheckpointMismatchError, load_original_checkpoint,
                                   save_original_checkpoint)
from conftest import ORIGINAL_TINY, tiny_config


def write_checkpoint(prefix, tensors):
    """A name-based checkpoint as TF1's Saver writes it (SaveV2)."""
    names = sorted(tensors)
    tf.raw_ops.SaveV2(prefix=str(prefix), tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.constant(tensors[n]) for n in names])
    return str(prefix)


def fixture_tensors():
    reader = tf.train.load_checkpoint(str(ORIGINAL_TINY / "model.ckpt"))
    return {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()}


def test_save_writes_exactly_the_original_variables(tmp_path):
    model = AlbertPretrainer(tiny_config())
    load_original_checkpoint(model, ORIGINAL_TINY, strict=True)
    prefix = save_original_checkpoint(model, tmp_path / "model.ckpt")
    written = {n: s for n, s in tf.train.list_variables(prefix)}
    expected = {n: s for n, s in json.loads((ORIGINAL_TINY / "variables.json").read_text())}
    expected["global_step"] = []
    assert written == expected
    for name, value in fixture_tensors().items():
        np.testing.assert_array_equal(tf.train.load_variable(prefix, name), value)


def test_round_trip_is_bit_exact(tmp_path):
    model = AlbertPretrainer(tiny_config())          # random initialisation
    prefix = save_original_checkpoint(model, tmp_path / "model.ckpt")
    other = AlbertPretrainer(tiny_config())
    report = load_original_checkpoint(other, prefix, strict=True)
    assert report.skipped == ["global_step"] and not report.unused
    for a, b in zip(model.weights, other.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


def test_save_is_atomic_and_indexes_the_directory(tmp_path):
    model = AlbertModel(tiny_config())
    save_original_checkpoint(model, tmp_path / "model.ckpt-7", global_step=7)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint", "model.ckpt-7.data-00000-of-00001", "model.ckpt-7.index"]
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith("model.ckpt-7")
    assert tf.train.load_variable(str(tmp_path / "model.ckpt-7"), "global_step") == 7


def test_directory_without_index_file_picks_newest_step(tmp_path):
    tensors = fixture_tensors()
    write_checkpoint(tmp_path / "model.ckpt-100", tensors)
    changed = dict(tensors)
    changed["bert/pooler/dense/bias"] = np.full_like(tensors["bert/pooler/dense/bias"], 0.5)
    write_checkpoint(tmp_path / "model.ckpt-2000", changed)
    model = AlbertPretrainer(tiny_config())
    report = load_original_checkpoint(model, tmp_path)
    assert report.checkpoint.endswith("model.ckpt-2000")
    np.testing.assert_array_equal(model.encoder.pooler.bias.numpy(), 0.5)


def test_hub_module_prefix_and_optimizer_slots_are_handled(tmp_path):
    tensors = {}
    for name, value in fixture_tensors().items():
        tensors["module/" + name] = value
        tensors[name + "/adam_m"] = np.zeros_like(value)
        tensors[name + "/adam_v"] = np.zeros_like(value)
    tensors["global_step"] = np.int64(12)
    prefix = write_checkpoint(tmp_path / "hub", tensors)
    report = load_original_checkpoint(AlbertPretrainer(tiny_config()), prefix, strict=True)
    assert not report.missing and not report.unused
    assert "global_step" in report.skipped and len(report.skipped) == 1 + 2 * 112


def test_encoder_only_checkpoint_into_pretrainer_reports_heads_missing(tmp_path):
    tensors = {n: v for n, v in fixture_tensors().items() if n.startswith("bert/")}
    prefix = write_checkpoint(tmp_path / "encoder", tensors)
    model = AlbertPretrainer(tiny_config())
    report = load_original_checkpoint(model, prefix)
    assert sorted(report.missing) == sorted(
        n for n in json.loads((ORIGINAL_TINY / "variables.json").read_text())
        for n in [n[0]] if n.startswith("cls/"))
    with pytest.raises(CheckpointMismatchError, match="cls/predictions/output_bias"):
        load_original_checkpoint(AlbertPretrainer(tiny_config()), prefix, strict=True)


def test_pretraining_checkpoint_into_classifier_leaves_head_and_reports_unused():
    model = AlbertClassifier(tiny_config(), num_labels=3)
    report = load_original_checkpoint(model, ORIGINAL_TINY)
    assert sorted(report.missing) == ["output_bias", "output_weights"]
    assert "cls/seq_relationship/output_weights" in report.unused


def test_nothing_matching_is_an_error(tmp_path):
    prefix = write_checkpoint(tmp_path / "other", {"resnet/conv1/kernel": np.zeros((3, 3))})
    with pytest.raises(CheckpointMismatchError, match="No variable of the model matched"):
        load_original_checkpoint(AlbertModel(tiny_config()), prefix)


def test_shape_mismatch_names_variable_and_both_shapes():
    config = AlbertConfig.from_dict(dict(tiny_config().to_dict(), vocab_size=301))
    with pytest.raises(CheckpointMismatchError,
                       match=r"bert/embeddings/word_embeddings.*\[301, 8\].*\[300, 8\]"):
        load_original_checkpoint(AlbertModel(config), ORIGINAL_TINY)


def test_missing_path_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_original_checkpoint(AlbertModel(tiny_config()), tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="neither"):
        load_original_checkpoint(AlbertModel(tiny_config()), tmp_path)


def test_init_from_group0_fills_every_group_from_group_0(tmp_path):
    one_group = dict(tiny_config().to_dict(), num_hidden_groups=1)
    source = AlbertModel(AlbertConfig.from_dict(one_group))
    prefix = save_original_checkpoint(source, tmp_path / "g1")
    target = AlbertModel(tiny_config())                 # 3 groups
    report = load_original_checkpoint(target, prefix, init_from_group0=True, strict=True)
    assert report.renamed
    for g in target.group_indices:
        np.testing.assert_array_equal(
            target.group(g)[1].ffn.output_dense.kernel.numpy(),
            source.group(0)[1].ffn.output_dense.kernel.numpy())


def test_loading_copies_from_a_read_only_directory(tmp_path):
    target = tmp_path / "ro"
    shutil.copytree(ORIGINAL_TINY, target)
    for path in target.iterdir():
        path.chmod(0o444)
    report = load_original_checkpoint(AlbertPretrainer(tiny_config()), target, strict=True)
    assert len(report.loaded) == 112


def test_object_checkpoint_tracks_every_variable(tmp_path):
    """tf.train.Checkpoint (training state, SavedModel) must see all weights, groups included."""
    model = AlbertPretrainer(tiny_config())
    path = tf.train.Checkpoint(model=model).write(str(tmp_path / "state"))
    stored = [name for name, _ in tf.train.list_variables(path) if "VARIABLE_VALUE" in name]
    assert len(stored) == len(model.weights) == 112
    other = AlbertPretrainer(tiny_config())
    tf.train.Checkpoint(model=other).read(path).assert_consumed()
    for a, b in zip(model.weights, other.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


def test_save_and_load_on_ram_filesystem(ram_dir):
    """Original-format export and import on an object-store path (ram://, as gs://): the
    files appear under their final names only, the `checkpoint` file indexes them, and a
    folder or a prefix loads bit for bit."""
    model = AlbertPretrainer(tiny_config())
    load_original_checkpoint(model, str(ORIGINAL_TINY / "model.ckpt"))
    prefix = save_original_checkpoint(model, f"{ram_dir}/out/model.ckpt-3", global_step=3)
    assert prefix == f"{ram_dir}/out/model.ckpt-3"
    assert sorted(tf.io.gfile.listdir(f"{ram_dir}/out")) == [
        "checkpoint", "model.ckpt-3.data-00000-of-00001", "model.ckpt-3.index"]
    assert tf.train.latest_checkpoint(f"{ram_dir}/out") == prefix
    # (tf.train.load_variable would take the prefix for a ram:// folder.)
    assert tf.compat.v1.train.NewCheckpointReader(prefix).get_tensor("global_step") == 3
    other = AlbertPretrainer(tiny_config())
    report = load_original_checkpoint(other, f"{ram_dir}/out", strict=True)
    assert report.checkpoint == prefix
    for a, b in zip(model.weights, other.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
