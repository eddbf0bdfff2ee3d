"""SavedModel and original-format exports: what goes in comes back out, in every signature.

References:
- token signatures: the ORIGINAL graphs' outputs (tests/fixtures/original_tiny for the
  pretraining heads, tests/fixtures/original_heads/classifier for the classifier), and the
  in-process Keras model on the same inputs (to 1e-6);
- text signatures: the Python path, `FullTokenizer` + `encode_inputs` (checked against the
  original tokenizer in test_tokenization.py) then the in-process model;
- checkpoints: the original's variable list (original_tiny/variables.json) and the source
  checkpoint's values, read back with `tf.train.load_checkpoint`;
- REST: TensorFlow Serving's documented predict format (row "instances" / columnar "inputs").

One SavedModel is built per head and shared by the module's tests (building one takes tens
of seconds on two cores).
"""

import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from albert_tf import (AlbertClassifier, AlbertConfig, AlbertModel, AlbertMultipleChoice,
                       AlbertPretrainer, AlbertSquadV2)
from albert_tf import export as export_lib
from albert_tf.checkpoints import CheckpointMismatchError, load_original_checkpoint
from albert_tf.tokenization import FullTokenizer, encode_inputs
from conftest import ORIGINAL_HEADS, ORIGINAL_TINY, original_reference, pydoc_spm_model

ROOT = pathlib.Path(__file__).resolve().parent.parent
TOKEN_KEYS = ("input_ids", "input_mask", "segment_ids")
MAX_SEQ_LENGTH = 32
ATOL_ORIGINAL = 1e-5   # against the original graphs (as test_modeling.py)
# Reloaded SavedModel against the in-process (eager) model: the graph runs the same ops, but
# TensorFlow may fuse or order them differently, which moves float32 results by a few ulps.
ATOL_RELOAD = 1e-6
RTOL_RELOAD = 1e-6
TEXTS_A = ["Return the repr() of an object, special-casing types.",
           "A set is a finite, iterable container of 1,000 items!",
           "  Héllo   WORLD  "]
TEXTS_B = ["Unit tests are in test_collections.", "", "Second text of the pair."]


def tokens_of(reference):
    return {key: tf.constant(reference[key]) for key in TOKEN_KEYS}


def python_features(spm_model, texts_a, texts_b=None):
    """Model inputs as the Python path packs them (the reference for the text signatures)."""
    tokenizer = FullTokenizer(None, do_lower_case=True, spm_model_file=str(spm_model))
    rows = [encode_inputs(tokenizer, a, b, MAX_SEQ_LENGTH)
            for a, b in zip(texts_a, texts_b or [None] * len(texts_a))]
    return {key: tf.constant([row[key] for row in rows], tf.int32) for key in TOKEN_KEYS}


def assert_close(got, want, atol, keys):
    rtol = RTOL_RELOAD if atol == ATOL_RELOAD else 0
    for key in keys:
        np.testing.assert_allclose(np.asarray(got[key]), np.asarray(want[key]), atol=atol,
                                   rtol=rtol, err_msg=key)


# === Shared exports ======================================================================


@pytest.fixture(scope="module")
def spm_model(tmp_path_factory):
    return pydoc_spm_model(tmp_path_factory.mktemp("spm"))


@pytest.fixture(scope="module")
def mlm_export(tmp_path_factory, spm_model):
    """(in-process AlbertPretrainer, loaded SavedModel, folder) from the original checkpoint."""
    config = AlbertConfig.from_json_file(ORIGINAL_TINY / "albert_config.json")
    model = AlbertPretrainer(config)
    load_original_checkpoint(model, ORIGINAL_TINY, strict=True)
    folder = tmp_path_factory.mktemp("exports") / "mlm"
    written = export_lib.export_saved_model(model, folder, spm_model, do_lower_case=True,
                                            max_seq_length=MAX_SEQ_LENGTH)
    return model, tf.saved_model.load(written), pathlib.Path(written)


@pytest.fixture(scope="module")
def classifier_export(tmp_path_factory, spm_model):
    """The original classifier checkpoint through `export` (head detected), pair task."""
    directory = ORIGINAL_HEADS / "classifier"
    folder = tmp_path_factory.mktemp("exports") / "classifier"
    written = export_lib.export(directory / "albert_config.json", directory, folder,
                                spm_model_file=spm_model, head="auto",
                                max_seq_length=MAX_SEQ_LENGTH,
                                labels=["contradiction", "entailment", "neutral"],
                                text_pair=True)
    config = AlbertConfig.from_json_file(directory / "albert_config.json")
    model = AlbertClassifier(config, num_labels=3)
    load_original_checkpoint(model, directory, strict=True)
    return model, tf.saved_model.load(written), pathlib.Path(written)


@pytest.fixture(scope="module")
def encoder_export(tmp_path_factory, spm_model):
    """A one-layer encoder with fresh weights (head "none"), versioned folder."""
    keras.utils.set_random_seed(3)
    config = AlbertConfig(vocab_size=300, embedding_size=8, hidden_size=16, num_hidden_layers=1,
                          num_attention_heads=2, intermediate_size=32,
                          max_position_embeddings=40)
    model = AlbertModel(config)
    base = tmp_path_factory.mktemp("exports") / "encoder"
    written = export_lib.export_saved_model(model, base, spm_model, do_lower_case=True,
                                            max_seq_length=MAX_SEQ_LENGTH, versioned=True)
    return model, tf.saved_model.load(written), pathlib.Path(written)


# === Pretraining heads: the original hub module's signatures ============================


def test_tokens_signature_matches_original_graph(mlm_export):
    _, loaded, _ = mlm_export
    ref = original_reference(ORIGINAL_TINY)
    out = loaded.signatures["tokens"](**tokens_of(ref))
    real = ref["input_mask"].astype(bool)   # padded positions are not comparable
    np.testing.assert_allclose(out["sequence_output"].numpy()[real], ref["sequence_output"][real],
                               atol=ATOL_ORIGINAL, rtol=0)
    assert_close(out, ref, ATOL_ORIGINAL, ["pooled_output", "sop_log_probs"])


def test_sop_signature_returns_original_log_probs(mlm_export):
    _, loaded, _ = mlm_export
    ref = original_reference(ORIGINAL_TINY)
    out = loaded.signatures["sop"](**tokens_of(ref))
    assert_close(out, ref, ATOL_ORIGINAL, ["sop_log_probs"])


def test_mlm_signature_matches_original_graph(mlm_export):
    _, loaded, _ = mlm_export
    ref = original_reference(ORIGINAL_TINY)
    out = loaded.signatures["mlm"](**tokens_of(ref),
                                   mlm_positions=tf.constant(ref["masked_lm_positions"]))
    logits = out["mlm_logits"].numpy()
    assert logits.shape == (3, 4, 300)     # [B, M, V]; the original flattens to [B * M, V]
    log_probs = tf.nn.log_softmax(logits.reshape(-1, 300)).numpy()
    np.testing.assert_allclose(log_probs, ref["mlm_log_probs"], atol=ATOL_ORIGINAL, rtol=0)


def test_reloaded_signatures_equal_in_process_model(mlm_export):
    model, loaded, _ = mlm_export
    ref = original_reference(ORIGINAL_TINY)
    positions = tf.constant(ref["masked_lm_positions"])
    want = model({**tokens_of(ref), "masked_lm_positions": positions}, training=False)
    want = {**want, "sop_log_probs": tf.nn.log_softmax(want["sop_logits"]),
            "mlm_logits": want["mlm_logits"]}
    got = loaded.signatures["mlm"](**tokens_of(ref), mlm_positions=positions)
    assert_close(got, want, ATOL_RELOAD,
                 ["sequence_output", "pooled_output", "mlm_logits", "sop_log_probs"])
    assert_close(loaded.signatures["tokens"](**tokens_of(ref)), want, ATOL_RELOAD,
                 ["sequence_output", "pooled_output", "sop_log_probs"])


def test_text_signature_equals_python_tokenizer_then_model(mlm_export, spm_model):
    model, loaded, _ = mlm_export
    features = python_features(spm_model, TEXTS_A)
    want = model({**features, "masked_lm_positions": tf.zeros([3, 1], tf.int32)})
    got = loaded.signatures["text"](text_a=tf.constant(TEXTS_A))
    assert_close(got, features, 0, TOKEN_KEYS)
    assert_close(got, want, ATOL_RELOAD, ["sequence_output", "pooled_output"])
    np.testing.assert_allclose(got["sop_log_probs"], tf.nn.log_softmax(want["sop_logits"]),
                               atol=ATOL_RELOAD, rtol=RTOL_RELOAD)


def test_text_pair_signature_packs_pairs_as_python(mlm_export, spm_model):
    model, loaded, _ = mlm_export
    features = python_features(spm_model, TEXTS_A, TEXTS_B)
    want = model({**features, "masked_lm_positions": tf.zeros([3, 1], tf.int32)})
    got = loaded.signatures["text_pair"](text_a=tf.constant(TEXTS_A),
                                         text_b=tf.constant(TEXTS_B))
    assert_close(got, features, 0, TOKEN_KEYS)
    # The empty second text packs as a single text, as the original scripts do.
    assert got["segment_ids"].numpy()[1].sum() == 0
    assert_close(got, want, ATOL_RELOAD, ["sequence_output", "pooled_output"])


def test_serving_default_is_the_text_signature(mlm_export):
    _, loaded, _ = mlm_export
    inputs = loaded.signatures["serving_default"].structured_input_signature[1]
    assert {name: spec.dtype for name, spec in inputs.items()} == {"text_a": tf.string}


def test_tokenization_info_points_at_the_packed_spm_model(mlm_export, spm_model):
    _, loaded, folder = mlm_export
    info = loaded.signatures["tokenization_info"]()
    vocab_file = pathlib.Path(info["vocab_file"].numpy().decode())
    assert vocab_file.parent == folder / "assets"
    assert vocab_file.read_bytes() == spm_model.read_bytes()
    assert bool(info["do_lower_case"].numpy()) is True


def test_assets_hold_config_vocab_and_export_info(mlm_export, spm_model):
    model, _, folder = mlm_export
    assets = folder / "assets"
    assert AlbertConfig.from_json_file(assets / "albert_config.json") == model.config
    assert (assets / spm_model.with_suffix(".vocab").name).read_bytes() == \
        spm_model.with_suffix(".vocab").read_bytes()
    info = json.loads((assets / "export_info.json").read_text())
    assert info["head"] == "mlm" and info["do_lower_case"] is True
    assert info["max_seq_length"] == MAX_SEQ_LENGTH
    assert set(info["signatures"]) == {"tokens", "sop", "mlm", "text", "text_pair",
                                       "tokenization_info", "serving_default"}


def test_dict_functions_are_callable_from_python(mlm_export, spm_model):
    model, loaded, _ = mlm_export
    features = python_features(spm_model, TEXTS_A, TEXTS_B)
    got = loaded.text({"text_a": tf.constant(TEXTS_A), "text_b": tf.constant(TEXTS_B)})
    assert_close(got, features, 0, TOKEN_KEYS)
    assert_close(loaded.tokens(features), got, ATOL_RELOAD, ["pooled_output"])
    encoded = loaded.tokenizer.encode_pair(tf.constant(TEXTS_A), tf.constant(TEXTS_B))
    assert_close(encoded, features, 0, TOKEN_KEYS)


def test_keras_layer_from_the_saved_model(mlm_export):
    model, _, folder = mlm_export
    ref = original_reference(ORIGINAL_TINY)
    layer = keras.layers.TFSMLayer(str(folder), call_endpoint="tokens",
                                   call_training_endpoint="tokens_training")
    got = layer(tokens_of(ref))
    want = model.encoder(tokens_of(ref), training=False)
    assert_close(got, want, ATOL_RELOAD, ["pooled_output"])
    # The config has dropout 0.1: the training endpoint applies it, as the original "train"
    # module variant does.
    trained = layer(tokens_of(ref), training=True)
    assert np.abs(trained["pooled_output"].numpy() - want["pooled_output"].numpy()).max() > 1e-4


def test_keras_layer_takes_raw_text(mlm_export, spm_model):
    _, _, folder = mlm_export
    layer = keras.layers.TFSMLayer(str(folder), call_endpoint="text")
    got = layer({"text_a": tf.constant(TEXTS_A)})
    assert_close(got, python_features(spm_model, TEXTS_A), 0, TOKEN_KEYS)


# === TensorFlow Serving's REST format ====================================================


def test_rest_row_format_request(mlm_export, spm_model):
    model, loaded, _ = mlm_export
    body = json.dumps({"signature_name": "text_pair",
                       "instances": [{"text_a": a, "text_b": b}
                                     for a, b in zip(TEXTS_A, TEXTS_B)]})
    response = json.loads(json.dumps(export_lib.rest_predict(loaded, body)))
    rows = response["predictions"]
    assert len(rows) == 3
    features = python_features(spm_model, TEXTS_A, TEXTS_B)
    want = model({**features, "masked_lm_positions": tf.zeros([3, 1], tf.int32)})
    for i, row in enumerate(rows):
        assert row["input_ids"] == features["input_ids"].numpy()[i].tolist()
        np.testing.assert_allclose(row["pooled_output"], want["pooled_output"].numpy()[i],
                                   atol=ATOL_RELOAD, rtol=RTOL_RELOAD)


def test_rest_columnar_format_request_with_token_ids(mlm_export):
    model, loaded, _ = mlm_export
    ref = original_reference(ORIGINAL_TINY)
    body = {"signature_name": "mlm",
            "inputs": {key: ref[key].tolist() for key in TOKEN_KEYS}
            | {"mlm_positions": ref["masked_lm_positions"].tolist()}}
    outputs = export_lib.rest_predict(loaded, body)["outputs"]
    log_probs = tf.nn.log_softmax(np.array(outputs["mlm_logits"]).reshape(-1, 300)).numpy()
    np.testing.assert_allclose(log_probs, ref["mlm_log_probs"], atol=ATOL_ORIGINAL, rtol=0)


def test_rest_request_missing_an_input_is_rejected(mlm_export):
    _, loaded, _ = mlm_export
    with pytest.raises(export_lib.ExportError, match="text_b"):
        export_lib.rest_predict(loaded, {"signature_name": "text_pair",
                                         "instances": [{"text_a": "x"}]})


def readme_rest_request():
    """The request body that README.md's "Export and serve" section shows for Serving."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Export and serve", 1)[1].split("\n## ", 1)[0]
    blocks = section.split("```json\n")[1:]
    assert len(blocks) == 1, "one JSON request body expected in the README's export section"
    return json.loads(blocks[0].split("```", 1)[0])


def test_readme_rest_request_is_answered(mlm_export, spm_model):
    """The README's example body, answered as Serving would, gives the Python path's numbers."""
    model, loaded, _ = mlm_export
    body = readme_rest_request()
    rows = export_lib.rest_predict(loaded, json.dumps(body))["predictions"]
    texts_a = [row["text_a"] for row in body["instances"]]
    texts_b = [row["text_b"] or None for row in body["instances"]]
    features = python_features(spm_model, texts_a, texts_b)
    want = model({**features, "masked_lm_positions": tf.zeros([len(rows), 1], tf.int32)})
    for i, row in enumerate(rows):
        assert row["input_ids"] == features["input_ids"].numpy()[i].tolist()
        np.testing.assert_allclose(row["pooled_output"], want["pooled_output"].numpy()[i],
                                   atol=ATOL_RELOAD, rtol=RTOL_RELOAD)
        np.testing.assert_allclose(row["sop_log_probs"],
                                   tf.nn.log_softmax(want["sop_logits"]).numpy()[i],
                                   atol=ATOL_RELOAD, rtol=RTOL_RELOAD)


# === Classifier ==========================================================================


def test_classifier_export_matches_original_graph(classifier_export):
    _, loaded, _ = classifier_export
    ref = original_reference(ORIGINAL_HEADS / "classifier")
    out = loaded.signatures["tokens"](**tokens_of(ref))
    assert_close(out, ref, ATOL_ORIGINAL, ["logits", "probabilities"])
    np.testing.assert_array_equal(out["predictions"], np.argmax(ref["logits"], -1))


def test_classifier_text_pair_serving_with_label_names(classifier_export, spm_model):
    model, loaded, _ = classifier_export
    features = python_features(spm_model, TEXTS_A, TEXTS_B)
    want = model(features, training=False)
    body = {"instances": [{"text_a": a, "text_b": b} for a, b in zip(TEXTS_A, TEXTS_B)]}
    rows = export_lib.rest_predict(loaded, body)["predictions"]   # serving_default
    names = ["contradiction", "entailment", "neutral"]
    for i, row in enumerate(rows):
        np.testing.assert_allclose(row["probabilities"], want["probabilities"].numpy()[i],
                                   atol=ATOL_RELOAD, rtol=RTOL_RELOAD)
        assert row["labels"] == names[int(np.argmax(want["logits"].numpy()[i]))]


def test_classifier_export_has_no_pretraining_signatures(classifier_export):
    _, loaded, _ = classifier_export
    assert set(loaded.signatures) == {"tokens", "text", "text_pair", "tokenization_info",
                                      "serving_default"}


# === SQuAD and RACE: one serving_default over the task's features ==========================

FEATURE_HEADS = {
    "squad_v2": (lambda config: AlbertSquadV2(config, start_n_top=5, end_n_top=5),
                 ["start_top_log_probs", "start_top_index", "end_top_log_probs",
                  "end_top_index", "cls_logits"]),
    "race": (lambda config: AlbertMultipleChoice(config, num_choices=4),
             ["logits", "probabilities"]),
}


@pytest.mark.parametrize("head", sorted(FEATURE_HEADS))
def test_feature_head_export_serves_the_original_outputs(head, tmp_path):
    """SQuAD / RACE: serving_default takes the packed features (no SentencePiece model
    needed) and returns the head's outputs only, equal to the original graph's."""
    build, keys = FEATURE_HEADS[head]
    directory = ORIGINAL_HEADS / head
    model = build(AlbertConfig.from_json_file(directory / "albert_config.json"))
    load_original_checkpoint(model, directory, strict=True)
    ref = original_reference(directory)
    written = export_lib.export_saved_model(model, tmp_path / head, None,
                                            max_seq_length=ref["input_ids"].shape[-1],
                                            head=head, versioned=True)
    loaded = tf.saved_model.load(written)
    assert set(loaded.signatures) == {"serving_default"}
    served = loaded.signatures["serving_default"]
    specs = served.structured_input_signature[1]
    inputs = {k: tf.cast(ref[k], spec.dtype) for k, spec in specs.items()}   # p_mask: int32
    assert sorted(inputs) == sorted(TOKEN_KEYS + (("p_mask",) if head == "squad_v2" else ()))
    out = served(**inputs)
    assert sorted(out) == sorted(keys)
    for key in keys:
        np.testing.assert_allclose(out[key], ref[key], atol=ATOL_ORIGINAL, rtol=0, err_msg=key)


# === Encoder only ========================================================================


def test_encoder_export_round_trip(encoder_export, spm_model):
    model, loaded, folder = encoder_export
    assert folder.name.isdigit()     # a TensorFlow Serving version folder
    features = python_features(spm_model, TEXTS_A, TEXTS_B)
    want = model(features, training=False)
    got = loaded.signatures["tokens"](**features)
    assert set(got) == {"sequence_output", "pooled_output"}
    assert_close(got, want, ATOL_RELOAD, ["sequence_output", "pooled_output"])
    got = loaded.signatures["text_pair"](text_a=tf.constant(TEXTS_A),
                                         text_b=tf.constant(TEXTS_B))
    assert_close(got, want, ATOL_RELOAD, ["sequence_output", "pooled_output"])


def test_export_leaves_no_temporary_folder(encoder_export):
    _, _, folder = encoder_export
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]


def test_existing_export_dir_needs_overwrite(encoder_export, spm_model):
    model, _, folder = encoder_export
    with pytest.raises(export_lib.ExportError, match="overwrite"):
        export_lib.export_saved_model(model, folder, spm_model, True, MAX_SEQ_LENGTH)


def test_head_must_match_the_model(encoder_export, spm_model, tmp_path):
    model, _, _ = encoder_export
    with pytest.raises(export_lib.ExportError, match="head='mlm'"):
        export_lib.export_saved_model(model, tmp_path / "x", spm_model, True, head="mlm")


# === Original-format checkpoints =========================================================


def original_variables(directory):
    """The fixture's variables plus `global_step`: the original export creates and saves one."""
    names = {name: shape for name, shape in
             json.loads((directory / "variables.json").read_text())}
    return {**names, "global_step": []}


def test_checkpoint_export_with_heads_has_the_original_variables(tmp_path, spm_model):
    prefix = export_lib.export(ORIGINAL_TINY / "albert_config.json", ORIGINAL_TINY,
                               tmp_path / "out", spm_model_file=spm_model, head="mlm",
                               format="checkpoint")
    assert pathlib.Path(prefix) == tmp_path / "out" / "model.ckpt-best"
    written = dict(tf.train.list_variables(prefix))
    assert {k: list(v) for k, v in written.items()} == original_variables(ORIGINAL_TINY)
    source = tf.train.load_checkpoint(str(ORIGINAL_TINY / "model.ckpt"))
    target = tf.train.load_checkpoint(prefix)
    for name in set(written) - {"global_step"}:
        np.testing.assert_array_equal(target.get_tensor(name), source.get_tensor(name),
                                      err_msg=name)
    folder = tmp_path / "out"
    assert (folder / spm_model.name).read_bytes() == spm_model.read_bytes()
    assert AlbertConfig.from_json_file(folder / "albert_config.json") == \
        AlbertConfig.from_json_file(ORIGINAL_TINY / "albert_config.json")
    assert tf.train.latest_checkpoint(str(folder)) == prefix


def test_checkpoint_export_without_heads_drops_cls_variables(tmp_path):
    prefix = export_lib.export(ORIGINAL_TINY / "albert_config.json", ORIGINAL_TINY,
                               tmp_path / "out", head="none", format="checkpoint")
    names = {name for name, _ in tf.train.list_variables(prefix)}
    want = {name for name in original_variables(ORIGINAL_TINY) if not name.startswith("cls/")}
    assert names == want


def test_pretraining_heads_missing_from_checkpoint_is_an_error(tmp_path):
    # The original export_checkpoints.py would save random cls/* values without a word.
    with pytest.raises(CheckpointMismatchError, match="--head=none"):
        export_lib.export(ORIGINAL_HEADS / "classifier" / "albert_config.json",
                          ORIGINAL_HEADS / "classifier", tmp_path / "out", head="mlm",
                          format="checkpoint")


def test_head_detected_from_checkpoint_names():
    assert export_lib.checkpoint_head(ORIGINAL_TINY) == "mlm"
    assert export_lib.checkpoint_head(ORIGINAL_HEADS / "classifier") == "classifier"
    assert export_lib.checkpoint_head(ORIGINAL_HEADS / "squad_v1") == "none"


def test_command_line_accepts_the_original_flags(tmp_path):
    # export_checkpoints.py's flags: --albert_directory (config + --checkpoint_name inside)
    # and --export_path.
    directory = tmp_path / "albert_tiny"
    directory.mkdir()
    for path in ORIGINAL_TINY.iterdir():
        if path.name.startswith(("model.ckpt", "albert_config")):
            name = path.name.replace("model.ckpt", "model.ckpt-best")
            (directory / name).write_bytes(path.read_bytes())
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(
        [sys.executable, "-m", "albert_tf.export", f"--albert_directory={directory}",
         f"--export_path={tmp_path / 'exported'}", "--format=checkpoint"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    names = dict(tf.train.list_variables(str(tmp_path / "exported" / "model.ckpt-best")))
    assert {k: list(v) for k, v in names.items()} == original_variables(ORIGINAL_TINY)


def test_random_init_export_is_reproducible_from_its_seed(tmp_path):
    config_file = ORIGINAL_TINY / "albert_config.json"
    prefixes = [export_lib.export(config_file, None, tmp_path / name, head="mlm",
                                  format="checkpoint", random_init=True, seed=seed)
                for name, seed in (("a", 7), ("b", 7), ("c", 8))]
    a, b, c = (tf.train.load_checkpoint(p) for p in prefixes)
    name = "bert/embeddings/word_embeddings"
    np.testing.assert_array_equal(a.get_tensor(name), b.get_tensor(name))
    assert not np.array_equal(a.get_tensor(name), c.get_tensor(name))
    assert {n for n, _ in tf.train.list_variables(prefixes[0])} == set(
        original_variables(ORIGINAL_TINY))


def test_random_init_and_a_checkpoint_are_exclusive(tmp_path):
    with pytest.raises(export_lib.ExportError, match="exactly one"):
        export_lib.export(ORIGINAL_TINY / "albert_config.json", ORIGINAL_TINY, tmp_path / "x",
                          format="checkpoint", random_init=True)
