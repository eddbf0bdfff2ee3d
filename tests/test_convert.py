"""Weights from other hubs into this project: `albert_tf.convert` and `albert_tf.hub_formats`.

References: `tests/fixtures/hf_transformers/` was written by Hugging Face transformers 4.57.6
itself (`save_pretrained`, safetensors) with transformers' own outputs in eval mode;
`tests/fixtures/keras_hub/backbone_tiny/` by keras-hub 0.32 (`save_to_preset`) with its
outputs; `tests/fixtures/original_heads/` by the original ALBERT code. Neither transformers,
torch nor keras-hub is needed to run these tests.
"""

import json
import pathlib
import sys

import numpy as np
import pytest
import tensorflow as tf

from albert_tf import checkpoints, convert, files, hub_formats
from albert_tf.errors import UserError
from albert_tf.tokenization import FullTokenizer
from conftest import FIXTURES, ORIGINAL_HEADS, original_reference, run_entry_point, stage_to_ram

HF = FIXTURES / "hf_transformers"
KERAS_HUB = FIXTURES / "keras_hub" / "backbone_tiny"
SPM = FIXTURES / "original_tokenizer" / "spm1k.model"
ATOL = 1e-5


def token_inputs(reference):
    return {key: tf.constant(reference[key], tf.int32)
            for key in ("input_ids", "input_mask", "segment_ids")}


def real_positions(reference):
    """Where `input_mask` is 1: padded positions of a sequence output are not compared."""
    return reference["input_mask"].astype(bool)


def converted_model(path, **kwargs):
    weights = convert.read_weights(str(path), **kwargs)
    model = convert.build_model(weights)
    report = convert.assign_weights(model, weights)
    return weights, model, report


# === Outputs equal the source library's ==================================================

def test_hf_pretraining_model_gives_transformers_outputs():
    reference = original_reference(HF / "pretraining_tiny")
    weights, model, report = converted_model(HF / "pretraining_tiny")
    assert weights.source_format == "hf" and weights.head == "pretraining"
    assert not report.missing and not report.unused
    batch, length = reference["input_ids"].shape
    inputs = token_inputs(reference)
    inputs["masked_lm_positions"] = tf.constant(np.tile(np.arange(length), (batch, 1)))
    outputs = model(inputs)
    real = real_positions(reference)
    np.testing.assert_allclose(outputs["sequence_output"].numpy()[real],
                               reference["last_hidden_state"][real], atol=ATOL)
    np.testing.assert_allclose(outputs["pooled_output"], reference["pooler_output"], atol=ATOL)
    np.testing.assert_allclose(outputs["mlm_logits"].numpy()[real],
                               reference["prediction_logits"][real], atol=ATOL)
    np.testing.assert_allclose(outputs["sop_logits"], reference["sop_logits"], atol=ATOL)


def test_hf_sequence_classification_gives_transformers_logits():
    reference = original_reference(HF / "classifier2")
    weights, model, _ = converted_model(HF / "classifier2")
    assert weights.head == "classifier" and weights.num_labels == 2
    outputs = model(token_inputs(reference))
    np.testing.assert_allclose(outputs["logits"], reference["logits"], atol=ATOL)
    encoder = model.encoder(token_inputs(reference))
    np.testing.assert_allclose(encoder["pooled_output"], reference["pooler_output"], atol=ATOL)


def test_hf_multiple_choice_gives_transformers_logits():
    reference = original_reference(HF / "multiple_choice")
    weights, model, _ = converted_model(HF / "multiple_choice")
    assert weights.head == "multiple_choice"
    outputs = model(token_inputs(reference))
    np.testing.assert_allclose(outputs["logits"], reference["logits"], atol=ATOL)


def test_keras_hub_backbone_gives_keras_hub_outputs():
    reference = original_reference(KERAS_HUB)
    weights, model, report = converted_model(KERAS_HUB)
    assert weights.source_format == "keras_hub" and weights.head == "none"
    assert not report.missing and not report.unused
    outputs = model(token_inputs(reference))
    real = real_positions(reference)
    np.testing.assert_allclose(outputs["sequence_output"].numpy()[real],
                               reference["sequence_output"][real], atol=ATOL)
    np.testing.assert_allclose(outputs["pooled_output"], reference["pooled_output"], atol=ATOL)


def test_hf_folder_on_ram_loads_like_a_local_one(ram_dir):
    folder = stage_to_ram(HF / "classifier2", f"{ram_dir}/hf")
    reference = original_reference(HF / "classifier2")
    _, model, _ = converted_model(folder)
    np.testing.assert_allclose(model(token_inputs(reference))["logits"], reference["logits"],
                               atol=ATOL)


# === Loading into our models: the report and its errors ==================================

def test_load_weights_reports_in_the_sources_own_names():
    from albert_tf.modeling import AlbertModel
    config = hub_formats.config_from_hf(json.loads((HF / "classifier2" / "config.json")
                                                   .read_text()))
    report = convert.load_weights(AlbertModel(config), str(HF / "classifier2"))
    assert "albert.embeddings.word_embeddings.weight" in report.loaded
    assert report.renamed["bert/pooler/dense/kernel"] == "albert.pooler.weight"
    # The classifier layer has no place in an encoder: unused, in Hugging Face's names.
    assert report.unused == ["classifier.bias", "classifier.weight"]
    assert not report.missing


def test_load_weights_shape_mismatch_names_the_variable_and_both_shapes():
    from albert_tf.modeling import AlbertModel
    config = hub_formats.config_from_hf(json.loads((HF / "classifier2" / "config.json")
                                                   .read_text()))
    config.vocab_size = 999
    with pytest.raises(checkpoints.CheckpointMismatchError,
                       match=r"bert/embeddings/word_embeddings.*\[999, 16\].*\[1000, 16\]"
                             r".*albert\.embeddings\.word_embeddings\.weight"):
        convert.load_weights(AlbertModel(config), str(HF / "classifier2"))


def test_load_weights_of_an_original_checkpoint_is_load_original_checkpoint():
    from albert_tf.heads import AlbertClassifier
    from conftest import tiny_config
    model = AlbertClassifier(tiny_config(), 3)
    report = convert.load_weights(model, str(ORIGINAL_HEADS / "classifier"))
    reference = original_reference(ORIGINAL_HEADS / "classifier")
    np.testing.assert_allclose(model(token_inputs(reference))["logits"], reference["logits"],
                               atol=ATOL)
    assert not report.missing


# === Configs ==============================================================================

def test_hf_gelu_new_is_the_original_tanh_gelu():
    data = json.loads((HF / "pretraining_tiny" / "config.json").read_text())
    config = hub_formats.config_from_hf(data)
    assert config.hidden_act == "gelu"
    assert (config.embedding_size, config.hidden_size, config.num_hidden_groups) == (24, 48, 3)
    assert hub_formats.config_to_hf(config, "pretraining")["hidden_act"] == "gelu_new"


def test_hf_erf_gelu_config_is_refused_with_a_hint():
    data = json.loads((HF / "pretraining_tiny" / "config.json").read_text())
    data["hidden_act"] = "gelu"
    with pytest.raises(hub_formats.ConversionError, match=r"conf\.json: hidden_act 'gelu'.*"
                                                          r"gelu_new"):
        hub_formats.config_from_hf(data, "conf.json")


def test_keras_hub_config_reads_its_own_names():
    data = json.loads((KERAS_HUB / "config.json").read_text())
    config = hub_formats.config_from_keras_hub(data)
    assert (config.vocab_size, config.embedding_size, config.hidden_size,
            config.num_hidden_layers, config.num_attention_heads, config.intermediate_size,
            config.max_position_embeddings) == (1000, 16, 32, 2, 2, 64, 64)
    assert hub_formats.config_to_keras_hub(config)["config"] == data["config"]


def test_hf_classifier_labels_and_regression_are_kept():
    config = hub_formats.config_from_hf(json.loads((HF / "classifier2" / "config.json")
                                                   .read_text()))
    named = hub_formats.config_to_hf(config, "classifier", 3, ["a", "b", "c"])
    assert named["id2label"] == {"0": "a", "1": "b", "2": "c"}
    assert named["label2id"] == {"a": 0, "b": 1, "c": 2}
    assert hub_formats.hf_labels(named) == ["a", "b", "c"]
    assert hub_formats.config_to_hf(config, "classifier", 1)["problem_type"] == "regression"


# === Detecting the format, and bad input =================================================

@pytest.mark.parametrize("path, expected", [
    (HF / "pretraining_tiny", "hf"),
    (KERAS_HUB, "keras_hub"),
    (ORIGINAL_HEADS / "classifier", "original"),
    (ORIGINAL_HEADS / "classifier" / "model.ckpt", "original"),
])
def test_detect_format(path, expected):
    assert convert.detect_format(str(path)) == expected


def test_unknown_folder_layout_is_a_user_error_naming_the_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(UserError, match=f"{tmp_path}: not a folder of ALBERT weights.*notes"):
        convert.detect_format(str(tmp_path))


def test_config_that_does_not_match_the_weights_names_file_and_variable(tmp_path):
    folder = tmp_path / "hf"
    stage_to_ram(HF / "classifier2", str(folder))
    data = json.loads((folder / "config.json").read_text())
    data["intermediate_size"] = 65
    (folder / "config.json").write_text(json.dumps(data))
    # Both shapes in Hugging Face's own [out, in] layout: ffn.weight is [I, H].
    with pytest.raises(hub_formats.ConversionError,
                       match=r"model\.safetensors: .*ffn\.weight has shape \[64, 32\], but its "
                             r"config says \[65, 32\]"):
        convert.read_weights(str(folder))


def test_pytorch_bin_without_torch_says_what_to_install(tmp_path, monkeypatch):
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "config.json").write_text((HF / "classifier2" / "config.json").read_text())
    (folder / "pytorch_model.bin").write_bytes(b"not read")
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(UserError, match=r"pytorch_model\.bin .*pip install torch"):
        convert.read_weights(str(folder))


def test_head_that_hugging_face_has_no_name_for_is_refused(tmp_path):
    weights = convert.read_weights(str(ORIGINAL_HEADS / "squad_v2"))
    assert weights.head == "squad_v2"
    with pytest.raises(UserError, match=r"(answer_class|end_logits|start_logits)/.*no name in "
                                        r"the Hugging Face format.*--head=none"):
        convert.write_weights(weights, str(tmp_path / "out"), "hf")


def test_keras_hub_preset_of_a_model_with_a_head_needs_head_none(tmp_path):
    weights = convert.read_weights(str(HF / "classifier2"))
    with pytest.raises(UserError, match=r"classifier\.weight \(output_weights.*keras-hub"):
        convert.write_weights(weights, str(tmp_path / "kh"), "keras_hub")
    encoder = convert.read_weights(str(HF / "classifier2"), head="none")
    convert.write_weights(encoder, str(tmp_path / "kh"), "keras_hub")
    assert (tmp_path / "kh" / "model.weights.h5").exists()


def test_existing_output_is_not_replaced_without_overwrite(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    weights = convert.read_weights(str(KERAS_HUB))
    with pytest.raises(UserError, match="exists and is not empty.*--overwrite"):
        convert.write_weights(weights, str(tmp_path / "out"), "original")
    assert (tmp_path / "out" / "keep.txt").exists()


# === The tokenizer travels with the weights ==============================================

def test_tokenizer_from_hf_folder_reads_tokenizer_config(tmp_path):
    weights = convert.read_weights(str(HF / "classifier2"), spm_model_file=str(SPM),
                                   do_lower_case=False)
    convert.write_weights(weights, str(tmp_path / "hf"), "hf")
    tokenizer = FullTokenizer.from_hf_folder(str(tmp_path / "hf"))
    assert tokenizer.do_lower_case is False and tokenizer.keep_accents is False
    reference = FullTokenizer(None, do_lower_case=False, spm_model_file=str(SPM))
    text = "Héllo  WORLD, 1,000 cats"
    assert tokenizer.tokenize(text) == reference.tokenize(text)
    config = json.loads((tmp_path / "hf" / "tokenizer_config.json").read_text())
    config["keep_accents"] = True
    (tmp_path / "hf" / "tokenizer_config.json").write_text(json.dumps(config))
    accented = FullTokenizer.from_hf_folder(str(tmp_path / "hf"))
    assert "".join(accented.tokenize("é")).replace("\u2581", "") in ("é", "e\u0301")


def test_tokenizer_from_keras_hub_preset_is_its_sentencepiece_model():
    tokenizer = FullTokenizer.from_keras_hub_preset(str(KERAS_HUB), do_lower_case=True)
    reference = FullTokenizer(None, do_lower_case=True, spm_model_file=str(SPM))
    assert tokenizer.tokenize("The Cat sat.") == reference.tokenize("The Cat sat.")


# === The command ==========================================================================

def test_command_converts_hf_to_original_on_ram(ram_dir, capsys):
    convert._define_flags()
    source = stage_to_ram(HF / "classifier2", f"{ram_dir}/hf")
    run_entry_point(convert.main, ["convert"], input=source, output=f"{ram_dir}/orig",
                    to="original", spm_model_file=str(SPM), do_lower_case=True)
    assert "(hf, head classifier)" in capsys.readouterr().out
    listing = set(tf.io.gfile.listdir(f"{ram_dir}/orig"))
    assert {"albert_config.json", "checkpoint", "model.ckpt-best.index",
            "spiece.model"} <= listing
    config = files.read_json(f"{ram_dir}/orig/albert_config.json")
    assert config["head"] == "classifier" and config["hidden_act"] == "gelu"


def test_command_bad_input_is_one_line_error(tmp_path, capsys):
    from albert_tf import cli
    convert._define_flags()
    cli.define_debug_flag()
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(SystemExit) as exit_info:
        run_entry_point(convert.main, ["convert"], input=str(tmp_path),
                        output=str(tmp_path / "out"), to="hf", debug=False)
    assert exit_info.value.code == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("ERROR: ") and str(tmp_path) in error[0]


# === Original heads to Hugging Face ======================================================

@pytest.mark.parametrize("head, folder, architecture", [
    ("auto", "classifier", "AlbertForSequenceClassification"),
    ("auto", "regression", "AlbertForSequenceClassification"),
    ("multiple_choice", "race", "AlbertForMultipleChoice"),
    ("auto", "squad_v1", "AlbertForQuestionAnswering"),
])
def test_original_heads_get_their_hugging_face_architecture(tmp_path, head, folder,
                                                            architecture):
    weights = convert.read_weights(str(ORIGINAL_HEADS / folder), head=head)
    convert.write_weights(weights, str(tmp_path / "hf"), "hf")
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["architectures"] == [architecture] and config["model_type"] == "albert"
    if folder == "regression":
        assert config["problem_type"] == "regression" and len(config["id2label"]) == 1
    from safetensors.numpy import load_file
    names = set(load_file(str(tmp_path / "hf" / "model.safetensors")))
    # AlbertForQuestionAnswering has no pooler.
    assert ("albert.pooler.weight" in names) == (folder != "squad_v1")


# === TF-Hub modules in the original's format, and transformers' tf_model.h5 ==============

def write_tf1_hub_module(folder, checkpoint, spm_model_file, do_lower_case=True):
    """A TF1 SavedModel laid out as the original's export_to_tfhub.py writes one: the
    variables under their original names, the SentencePiece model as an asset, a
    `tokenization_info` signature (vocab_file, do_lower_case) in the untagged graph, and a
    `tfhub_module.pb` marker."""
    v1 = tf.compat.v1
    _, values = checkpoints.read_checkpoint(str(checkpoint))
    graph = tf.Graph()
    with graph.as_default():
        for name, value in values.items():
            if name != "global_step":
                v1.get_variable(name, initializer=tf.constant(value))
        vocab = v1.constant(str(spm_model_file))
        v1.add_to_collection(v1.GraphKeys.ASSET_FILEPATHS, vocab)
        lower = v1.constant(do_lower_case)
        info = v1.saved_model.signature_def_utils.build_signature_def(
            outputs={"vocab_file": v1.saved_model.utils.build_tensor_info(vocab),
                     "do_lower_case": v1.saved_model.utils.build_tensor_info(lower)})
        with v1.Session(graph=graph) as session:
            session.run(v1.global_variables_initializer())
            builder = v1.saved_model.Builder(str(folder))
            builder.add_meta_graph_and_variables(
                session, [], signature_def_map={"tokenization_info": info},
                assets_collection=v1.get_collection(v1.GraphKeys.ASSET_FILEPATHS))
            builder.save()
    (pathlib.Path(folder) / "tfhub_module.pb").write_bytes(b"\x08\x03")
    return folder


def test_tf1_hub_module_converts_and_gives_its_tokenizer(tmp_path):
    from conftest import ORIGINAL_TINY
    module = write_tf1_hub_module(tmp_path / "module", ORIGINAL_TINY, SPM, do_lower_case=False)
    assert convert.detect_format(str(module)) == "tfhub_module"
    with pytest.raises(UserError, match="--albert_config_file"):
        convert.read_weights(str(module))
    weights = convert.read_weights(str(module), albert_config_file=str(
        ORIGINAL_TINY / "albert_config.json"))
    assert weights.head == "pretraining" and weights.do_lower_case is False
    _, values = checkpoints.read_checkpoint(str(ORIGINAL_TINY))
    for name, value in weights.values.items():
        assert value.tobytes() == values[name].tobytes(), name
    tokenizer = FullTokenizer.from_hub_module(str(module), use_spm=True)
    assert tokenizer.do_lower_case is False
    assert tokenizer.vocab_path == str(module / "assets" / "spm1k.model")


def hf_tf_name(name):
    """transformers' TF name of a PyTorch name (its `convert_tf_weight_name_to_pt_weight_name`
    rule, inverted): list items as `_._<i>`, `/` separators, kernels transposed, LayerNorm
    gamma/beta, position/token-type tables as `embeddings`."""
    parts = name.split(".")
    out = []
    for part in parts:
        if part.isdigit():
            out[-1] = f"{out[-1]}_._{part}"
        else:
            out.append(part)
    leaf, transpose = out[-1], False
    if leaf == "weight":
        owner = out[-2]
        if owner == "LayerNorm" or owner.endswith("layer_norm"):
            leaf = "gamma"
        elif owner in ("position_embeddings", "token_type_embeddings"):
            leaf = "embeddings"
        elif owner != "word_embeddings":
            leaf, transpose = "kernel", True
    elif leaf == "bias" and (out[-2] == "LayerNorm" or out[-2].endswith("layer_norm")):
        leaf = "beta"
    out[-1] = leaf
    return "/".join(out) + ":0", transpose


def test_transformers_tf_model_h5_reads_as_its_safetensors(tmp_path):
    import h5py
    from safetensors.numpy import load_file
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "config.json").write_text((HF / "pretraining_tiny" / "config.json").read_text())
    tensors = load_file(str(HF / "pretraining_tiny" / "model.safetensors"))
    # Keras 2 `save_weights` layout: one group per top-level layer, variables under the
    # model's scope (tf_albert_for_pre_training/...).
    with h5py.File(folder / "tf_model.h5", "w") as f:
        for name, array in tensors.items():
            tf_name, transpose = hf_tf_name(name)
            layer = tf_name.split("/")[0]
            f.create_dataset(f"{layer}/tf_albert_for_pre_training/{tf_name}",
                             data=array.T if transpose else array)
    from_h5 = convert.read_weights(str(folder))
    from_safetensors = convert.read_weights(str(HF / "pretraining_tiny"))
    assert from_h5.source.endswith("tf_model.h5") and from_h5.head == "pretraining"
    assert sorted(from_h5.values) == sorted(from_safetensors.values)
    for name, value in from_safetensors.values.items():
        assert from_h5.values[name].tobytes() == value.tobytes(), name


def test_equal_widths_accept_only_an_identity_projection(tmp_path):
    from safetensors.numpy import save_file
    folder = tmp_path / "hf"
    folder.mkdir()
    config = json.loads((HF / "classifier2" / "config.json").read_text())
    config["embedding_size"] = config["hidden_size"]   # 32
    (folder / "config.json").write_text(json.dumps(config))
    tensors = load_hf(HF / "classifier2")
    tensors = {name: (np.resize(array, (array.shape[0], 32)) if array.ndim == 2
                      and array.shape[1] == 16 else np.resize(array, (32,))
                      if name == "albert.embeddings.LayerNorm.weight"
                      or name == "albert.embeddings.LayerNorm.bias" else array)
               for name, array in tensors.items()}
    tensors["albert.encoder.embedding_hidden_mapping_in.weight"] = np.eye(32, dtype=np.float32)
    tensors["albert.encoder.embedding_hidden_mapping_in.bias"] = np.zeros(32, np.float32)
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    weights = convert.read_weights(str(folder))
    assert "bert/encoder/embedding_hidden_mapping_in/kernel" not in weights.values
    assert not weights.unused
    tensors["albert.encoder.embedding_hidden_mapping_in.bias"][0] = 1.0
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(hub_formats.ConversionError,
                       match=r"embedding_hidden_mapping_in\.weight is not the identity"):
        convert.read_weights(str(folder))


def load_hf(folder):
    from safetensors.numpy import load_file
    return load_file(str(pathlib.Path(folder) / "model.safetensors"))


# === What a new user tried: damaged files, wrong flags, misleading messages ===============

def one_line_user_error(call, *args, **kwargs):
    """The message of the UserError `call` raises, checked to be one line."""
    with pytest.raises(UserError) as error:
        call(*args, **kwargs)
    message = str(error.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def copy_folder(source, target):
    target.mkdir(parents=True)
    for file in source.iterdir():
        if file.is_file():
            (target / file.name).write_bytes(file.read_bytes())
    return target


def hf_copy(tmp_path, case="classifier2", **config_changes):
    folder = copy_folder(HF / case, tmp_path / case)
    data = json.loads((folder / "config.json").read_text())
    data.update(config_changes)
    (folder / "config.json").write_text(json.dumps(data))
    return folder


def truncate(file):
    data = file.read_bytes()
    file.write_bytes(data[:len(data) // 2])


@pytest.mark.parametrize("name", ["model.ckpt.data-00000-of-00001", "model.ckpt.index"])
def test_truncated_original_checkpoint_is_a_user_error_naming_the_file(tmp_path, name):
    from conftest import ORIGINAL_TINY
    folder = copy_folder(ORIGINAL_TINY, tmp_path / "ckpt")
    truncate(folder / name)
    message = one_line_user_error(convert.read_weights, str(folder))
    assert str(folder / name) in message
    assert "truncated" in message


def test_truncated_keras_hub_weights_file_is_a_user_error_naming_it(tmp_path):
    folder = copy_folder(KERAS_HUB, tmp_path / "preset")
    (folder / "assets" / "tokenizer").mkdir(parents=True)
    truncate(folder / "model.weights.h5")
    message = one_line_user_error(convert.read_weights, str(folder))
    assert f"{folder / 'model.weights.h5'} is not a readable HDF5 file" in message


def test_corrupt_transformers_tf_model_h5_is_a_user_error_naming_it(tmp_path):
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "config.json").write_text((HF / "classifier2" / "config.json").read_text())
    (folder / "tf_model.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    message = one_line_user_error(convert.read_weights, str(folder))
    assert f"{folder / 'tf_model.h5'} is not a readable HDF5 file" in message


def test_spm_model_file_that_is_not_sentencepiece_is_refused(tmp_path):
    not_a_model = HF / "classifier2" / "config.json"
    message = one_line_user_error(convert.read_weights, str(HF / "classifier2"),
                                  spm_model_file=str(not_a_model))
    assert f"{not_a_model} is not a SentencePiece model" in message


def test_spm_model_with_more_pieces_than_vocab_size_is_refused():
    # The message of `albert_tf.export` for the same pair: spm1k has 1000 pieces.
    from conftest import ORIGINAL_TINY
    message = one_line_user_error(convert.read_weights, str(ORIGINAL_TINY),
                                  spm_model_file=str(SPM))
    assert (f"The SentencePiece model {SPM} has 1000 pieces, more than the model's "
            "vocab_size (300)") in message


def test_missing_albert_config_file_is_named_as_missing(tmp_path):
    from conftest import ORIGINAL_TINY
    missing = tmp_path / "albert_config.json"
    message = one_line_user_error(convert.read_weights, str(ORIGINAL_TINY),
                                  albert_config_file=str(missing))
    assert message == f"The ALBERT config file {missing} does not exist."


def test_a_weights_file_as_input_says_to_pass_its_folder():
    file = HF / "classifier2" / "model.safetensors"
    message = one_line_user_error(convert.read_weights, str(file))
    assert f"{file} is a file: pass the folder that holds it ({HF / 'classifier2'})" in message
    index = ORIGINAL_HEADS / "classifier" / "model.ckpt.index"
    message = one_line_user_error(convert.read_weights, str(index))
    assert f"pass its prefix {ORIGINAL_HEADS / 'classifier' / 'model.ckpt'}" in message


def test_existing_file_as_output_is_refused_even_with_overwrite(tmp_path):
    (tmp_path / "out").write_text("x")
    weights = convert.read_weights(str(KERAS_HUB))
    message = one_line_user_error(convert.write_weights, weights, str(tmp_path / "out"),
                                  "original", overwrite=True)
    assert message.startswith(f"--output={tmp_path / 'out'} exists and is not a folder")
    assert (tmp_path / "out").read_text() == "x"


def test_edited_hidden_size_reports_the_hugging_face_shape(tmp_path):
    folder = hf_copy(tmp_path, hidden_size=48)
    message = one_line_user_error(convert.read_weights, str(folder))
    # Hugging Face's [out, in] = [H, E]; the original's kernel is [E, H].
    assert ("albert.encoder.embedding_hidden_mapping_in.weight has shape [32, 16], but its "
            "config says [48, 16]") in message


def test_embedding_size_edited_to_hidden_size_reports_the_projection_shape(tmp_path):
    folder = hf_copy(tmp_path, embedding_size=32)
    message = one_line_user_error(convert.read_weights, str(folder))
    assert ("albert.encoder.embedding_hidden_mapping_in.weight has shape [32, 16], but "
            f"{folder / 'config.json'} says embedding_size == hidden_size == 32") in message
    assert "identity" not in message


def test_tensor_missing_from_safetensors_is_named_in_hugging_face_names(tmp_path):
    from safetensors.numpy import save_file
    folder = hf_copy(tmp_path)
    tensors = load_hf(folder)
    del tensors["albert.encoder.albert_layer_groups.0.albert_layers.0.ffn.weight"]
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    message = one_line_user_error(convert.read_weights, str(folder))
    assert ("no albert.encoder.albert_layer_groups.0.albert_layers.0.ffn.weight "
            "(bert/encoder/transformer/group_0/inner_group_0/ffn_1/intermediate/dense/kernel)"
            ) in message


def test_head_multiple_choice_on_a_classifier_says_the_shape_comes_from_head():
    message = one_line_user_error(convert.read_weights, str(HF / "classifier2"),
                                  head="multiple_choice")
    assert "classifier.weight has shape [2, 32], but --head=multiple_choice needs [1, 32]" \
        in message
    assert "config says" not in message


def test_hf_id2label_that_does_not_count_the_classes_is_refused(tmp_path):
    folder = hf_copy(tmp_path, id2label={"0": "a", "1": "b", "2": "c"},
                     label2id={"a": 0, "b": 1, "c": 2})
    message = one_line_user_error(convert.read_weights, str(folder))
    assert message.startswith(f"{folder / 'config.json'}: id2label names 3 labels, but "
                              "classifier.weight")
    assert "has 2 classes" in message


def test_albert_config_file_for_a_hugging_face_folder_must_match_its_config_json(tmp_path):
    config = hub_formats.config_from_hf(json.loads((HF / "classifier2" / "config.json")
                                                   .read_text()))
    given = tmp_path / "albert_config.json"
    given.write_text(config.to_json_string())
    weights = convert.read_weights(str(HF / "classifier2"), albert_config_file=str(given))
    assert weights.config.hidden_size == 32
    config.hidden_size = 48
    given.write_text(config.to_json_string())
    message = one_line_user_error(convert.read_weights, str(HF / "classifier2"),
                                  albert_config_file=str(given))
    assert message.startswith(f"--albert_config_file={given} says hidden_size=48, but the "
                              f"config of {HF / 'classifier2'} is its config.json")


def test_command_refuses_an_existing_output_before_reading_the_input(tmp_path, capsys):
    from albert_tf import cli
    convert._define_flags()
    cli.define_debug_flag()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    # An input that would fail to read: the output's error comes first.
    with pytest.raises(SystemExit):
        run_entry_point(convert.main, ["convert"], input=str(tmp_path / "missing"),
                        output=str(tmp_path / "out"), to="hf", debug=False)
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "exists and is not empty" in error[0]


@pytest.mark.parametrize("output", ["hf", "hf/out", "."])
def test_output_equal_to_inside_or_above_the_input_is_refused(tmp_path, output):
    folder = hf_copy(tmp_path)
    weights = convert.read_weights(str(folder))
    message = one_line_user_error(convert.write_weights, weights,
                                  str(tmp_path / output.replace("hf", "classifier2")), "hf",
                                  overwrite=True)
    assert f"--input={folder}; write the conversion to another folder" in message
    assert (folder / "model.safetensors").exists()


def test_command_logs_the_conversion_and_warns_of_unused_tensors(tmp_path, caplog):
    import logging
    from safetensors.numpy import save_file
    from albert_tf import cli
    convert._define_flags()
    cli.define_debug_flag()
    folder = hf_copy(tmp_path)
    tensors = load_hf(folder)
    tensors["extra.weight"] = np.zeros(3, np.float32)
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    logger = logging.getLogger("tensorflow")
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.INFO, logger="tensorflow"):
            run_entry_point(convert.main, ["convert"], input=str(folder),
                            output=str(tmp_path / "out"), to="original", debug=False)
    finally:
        logger.removeHandler(caplog.handler)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("extra.weight" in message for message in warnings)
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert f"Converted {folder} (hf, head classifier) to {tmp_path / 'out'} (original)." \
        in infos
