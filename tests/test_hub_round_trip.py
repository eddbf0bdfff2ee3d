"""Round trips between the formats, and this project's SavedModel used as a TF-Hub module.

Round trips must be bit-exact: every conversion is a transpose or reshape of the same float32
values. References: the files written by transformers 4.57.6 and keras-hub 0.32 themselves
(`tests/fixtures/hf_transformers/`, `tests/fixtures/keras_hub/`), the original code's
checkpoint and outputs (`tests/fixtures/original_tiny/`), and, for the SavedModel, its own
`text` signature and the fine-tuning run started from the checkpoint it was exported from.
"""

import io
import json
import pathlib
import sys

import h5py
import numpy as np
import pytest
import tensorflow as tf
from safetensors.numpy import load_file

from albert_tf import checkpoints, convert, hub_formats
from albert_tf.config import AlbertConfig
from albert_tf.heads import AlbertPretrainer
from albert_tf.modeling import AlbertModel
from albert_tf.tokenization import FullTokenizer
from conftest import (FIXTURES, ORIGINAL_TINY, original_reference, rte_rows, run_entry_point,
                      write_race_data)

HF = FIXTURES / "hf_transformers"
KERAS_HUB = FIXTURES / "keras_hub" / "backbone_tiny"
SPM = FIXTURES / "original_tokenizer" / "spm1k.model"
ROOT = pathlib.Path(__file__).resolve().parent.parent


def convert_command(tmp_path, source, to, name, **flags):
    from albert_tf import cli
    convert._define_flags()
    cli.define_debug_flag()
    output = str(tmp_path / name)
    run_entry_point(convert.main, ["convert"], input=str(source), output=output, to=to,
                    **{"head": "auto", "albert_config_file": None, "spm_model_file": None,
                       "do_lower_case": None, "overwrite": False, **flags})
    return pathlib.Path(output)


def h5_entries(data):
    """{path: (attrs, array or None)} of every group and dataset of an h5 file's bytes."""
    entries = {}
    with h5py.File(io.BytesIO(data), "r") as f:
        def visit(name, obj):
            array = obj[()] if isinstance(obj, h5py.Dataset) else None
            entries[name] = (dict(obj.attrs), array)
        f.visititems(visit)
        entries["/"] = (dict(f.attrs), None)
    return entries


def assert_same_arrays(a, b):
    assert sorted(a) == sorted(b)
    for name in a:
        assert a[name].dtype == b[name].dtype and a[name].shape == b[name].shape, name
        assert a[name].tobytes() == b[name].tobytes(), name


# === Hugging Face -> original -> Hugging Face ============================================

@pytest.mark.parametrize("case", ["pretraining_tiny", "classifier2", "multiple_choice"])
def test_hf_to_original_and_back_is_bit_exact(tmp_path, case):
    original = convert_command(tmp_path, HF / case, "original", "original")
    back = convert_command(tmp_path, original, "hf", "hf")
    assert_same_arrays(load_file(str(HF / case / "model.safetensors")),
                       load_file(str(back / "model.safetensors")))
    source_config = json.loads((HF / case / "config.json").read_text())
    config = json.loads((back / "config.json").read_text())
    for key in ("architectures", "model_type", "vocab_size", "embedding_size", "hidden_size",
                "num_hidden_layers", "num_hidden_groups", "num_attention_heads",
                "intermediate_size", "inner_group_num", "hidden_act", "max_position_embeddings",
                "type_vocab_size", "layer_norm_eps"):
        assert config[key] == source_config[key], key


def test_original_checkpoint_written_from_hf_loads_with_load_original_checkpoint(tmp_path):
    original = convert_command(tmp_path, HF / "classifier2", "original", "original")
    config = AlbertConfig.from_json_file(original / "albert_config.json")
    from albert_tf.heads import AlbertClassifier
    model = AlbertClassifier(config, 2)
    report = checkpoints.load_original_checkpoint(model, str(original), strict=True)
    assert not report.missing and not report.unused
    reference = original_reference(HF / "classifier2")
    logits = model({key: reference[key] for key in ("input_ids", "input_mask", "segment_ids")})
    np.testing.assert_allclose(logits["logits"], reference["logits"], atol=1e-5)


# === keras-hub -> original -> keras-hub ==================================================

def test_keras_hub_to_original_and_back_is_bit_exact(tmp_path):
    original = convert_command(tmp_path, KERAS_HUB, "original", "original")
    back = convert_command(tmp_path, original, "keras_hub", "keras_hub")
    source = h5_entries((KERAS_HUB / "model.weights.h5").read_bytes())
    written = h5_entries((back / "model.weights.h5").read_bytes())
    assert sorted(source) == sorted(written)
    for name, (attrs, array) in source.items():
        assert written[name][0] == attrs, name
        if array is not None:
            assert written[name][1].tobytes() == array.tobytes(), name
    assert (json.loads((back / "config.json").read_text())
            == json.loads((KERAS_HUB / "config.json").read_text()))
    assert ((back / "assets" / "tokenizer" / "vocabulary.spm").read_bytes()
            == (KERAS_HUB / "assets" / "tokenizer" / "vocabulary.spm").read_bytes())


# === The original's fixture (3 groups x 2 inner groups) through Hugging Face ============

def test_original_tiny_through_hugging_face_is_bit_exact_and_keeps_the_outputs(tmp_path):
    hf = convert_command(tmp_path, ORIGINAL_TINY, "hf", "hf")
    names = set(load_file(str(hf / "model.safetensors")))
    assert "albert.encoder.albert_layer_groups.2.albert_layers.1.ffn.weight" in names
    back = convert_command(tmp_path, hf, "original", "original")
    _, source = checkpoints.read_checkpoint(str(ORIGINAL_TINY))
    _, written = checkpoints.read_checkpoint(str(back / "model.ckpt-best"))
    source.pop("global_step", None)
    written.pop("global_step", None)
    assert_same_arrays(source, written)
    # Our model loaded from the Hugging Face folder gives the original code's outputs.
    reference = original_reference(ORIGINAL_TINY)
    weights = convert.read_weights(str(hf))
    model = AlbertPretrainer(weights.config)
    convert.assign_weights(model, weights)
    outputs = model({key: reference[key] for key in ("input_ids", "input_mask", "segment_ids",
                                                       "masked_lm_positions")})
    np.testing.assert_allclose(outputs["pooled_output"], reference["pooled_output"], atol=1e-5)


def test_keras_hub_refuses_a_layout_it_cannot_express(tmp_path):
    weights = convert.read_weights(str(ORIGINAL_TINY), head="none")   # 5 layers, 3 groups
    with pytest.raises(hub_formats.ConversionError, match=r"num_hidden_layers \(5\).*"
                                                          r"num_hidden_groups \(3\)"):
        convert.write_weights(weights, str(tmp_path / "kh"), "keras_hub")


def save_with_random_weights(model, folder, seed, scale=1.0):
    """Gives every weight of `model` seeded normal values (x `scale`), then writes it to
    `folder` as an original checkpoint `model.ckpt` with its `albert_config.json`."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        values = rng.normal(size=variable.shape)
        variable.assign((values if scale == 1.0 else values * scale).astype(np.float32))
    checkpoints.save_original_checkpoint(model, str(folder / "model.ckpt"))
    model.config.to_json_file(folder / "albert_config.json")


@pytest.mark.parametrize("to", ["hf", "keras_hub"])
def test_groups_inner_groups_and_equal_widths_survive_both_hubs(tmp_path, to):
    # E == H: neither hub can leave the projection out; we write the identity.
    config = AlbertConfig(vocab_size=50, embedding_size=16, hidden_size=16,
                          num_hidden_layers=4, num_hidden_groups=2, inner_group_num=2,
                          num_attention_heads=4, intermediate_size=24,
                          max_position_embeddings=20)
    model = AlbertModel(config)
    save_with_random_weights(model, tmp_path / "ours", seed=0)
    hub = convert_command(tmp_path, tmp_path / "ours", to, "hub")
    back = convert.read_weights(str(hub))
    reloaded = AlbertModel(back.config)
    convert.assign_weights(reloaded, back, strict=True)
    for a, b in zip(model.weights, reloaded.weights):
        assert a.path == b.path and np.asarray(a).tobytes() == np.asarray(b).tobytes(), a.path
    inputs = {"input_ids": tf.constant([[2, 7, 9, 3, 0]]),
              "input_mask": tf.constant([[1, 1, 1, 1, 0]])}
    np.testing.assert_array_equal(model(inputs)["sequence_output"],
                                  reloaded(inputs)["sequence_output"])


# === Our SavedModel as a TF-Hub module ===================================================

@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The Hugging Face classifier2 encoder in the original format, and a SavedModel of it
    exported by `albert_tf.export` with the fixtures' SentencePiece model."""
    from albert_tf import export
    folder = tmp_path_factory.mktemp("hub")
    weights = convert.read_weights(str(HF / "classifier2"), head="none",
                                   spm_model_file=str(SPM), do_lower_case=True)
    convert.write_weights(weights, str(folder / "original"), "original")
    export.export(str(folder / "original" / "albert_config.json"), str(folder / "original"),
                  str(folder / "saved_model"), spm_model_file=str(SPM), do_lower_case=True,
                  head="none", max_seq_length=24)
    return folder


def test_from_hub_module_gives_the_ids_of_the_exports_text_signature(exported):
    import tensorflow_text  # noqa: F401  (the export's in-graph tokenizer ops)
    tokenizer = FullTokenizer.from_hub_module(str(exported / "saved_model"), use_spm=True)
    assert tokenizer.do_lower_case is True
    loaded = tf.saved_model.load(str(exported / "saved_model"))
    texts = ["The Cat sat on the mat.", "Héllo,  WORLD 1,000 times!"]
    packed = loaded.signatures["text"](text_a=tf.constant(texts))
    for row, text in enumerate(texts):
        pieces = ["[CLS]"] + tokenizer.tokenize(text) + ["[SEP]"]
        ids = tokenizer.convert_tokens_to_ids(pieces)
        assert packed["input_ids"].numpy()[row][:len(ids)].tolist() == ids
        assert packed["input_mask"].numpy()[row].sum() == len(ids)


def test_exported_saved_model_reads_back_as_the_weights_it_was_exported_from(exported):
    weights = convert.read_weights(str(exported / "saved_model"))
    assert weights.source_format == "albert_tf_export" and weights.head == "none"
    _, values = checkpoints.read_checkpoint(str(exported / "original"))
    values.pop("global_step")
    assert_same_arrays(values, weights.values)
    assert weights.spm_model == SPM.read_bytes()
    # --init_checkpoint=<SavedModel> reads the same weights.
    prefix = convert.init_checkpoint_of(str(exported / "saved_model"))
    _, converted = checkpoints.read_checkpoint(prefix)
    converted.pop("global_step")
    assert_same_arrays(values, converted)


# Flags the fine-tuning runs below share (tiny batches, two steps, one CPU device).
FINETUNING_FLAGS = dict(
    vocab_file=None, do_lower_case=True, max_seq_length=24, train_batch_size=4,
    eval_batch_size=4, predict_batch_size=4, learning_rate=1e-3, save_checkpoints_steps=2,
    iterations_per_loop=1000, distribution_strategy="one_device", num_gpus=0,
    num_cpu_devices=1, mixed_precision="none", jit_compile=False, use_tpu=False,
    gradient_accumulation_steps=1, bias_correction=False, log_steps=2, seed=3,
    peak_tflops=1.0, eval_wait_seconds=0.0, debug=True, do_train=True, do_eval=True,
    do_predict=False, train_step=2, warmup_step=1)


def eval_results_from_checkpoint_and_module(exported, tmp_path, main, argv0, **flags):
    """`eval_results.txt` of an entry point run from the exported original checkpoint
    (config, SentencePiece model) and from the exported SavedModel alone
    (`--albert_hub_module_handle`), with the same flags."""
    runs = {
        "checkpoint": dict(init_checkpoint=str(exported / "original"),
                           albert_config_file=str(exported / "original" / "albert_config.json"),
                           spm_model_file=str(SPM), albert_hub_module_handle=None),
        "module": dict(init_checkpoint=None, albert_config_file=None, spm_model_file=None,
                       albert_hub_module_handle=str(exported / "saved_model")),
    }
    results = {}
    for name, values in runs.items():
        output = tmp_path / name
        run_entry_point(main, [argv0], output_dir=str(output),
                        cached_dir=str(tmp_path / f"cache_{name}"), **FINETUNING_FLAGS,
                        **flags, **values)
        results[name] = (output / "eval_results.txt").read_text()
    return results


def test_fine_tuning_through_the_exported_module_equals_fine_tuning_from_its_checkpoint(
        exported, tmp_path):
    sys.path.insert(0, str(ROOT))
    import run_classifier
    from albert_tf import cli
    run_classifier.define_flags()
    cli.define_debug_flag()
    rte = tmp_path / "glue" / "RTE"
    rte.mkdir(parents=True)
    (rte / "train.tsv").write_text(rte_rows(1, 8))
    (rte / "dev.tsv").write_text(rte_rows(2, 5))
    (rte / "test.tsv").write_text(rte_rows(3, 3, labelled=False))
    results = eval_results_from_checkpoint_and_module(
        exported, tmp_path, run_classifier.main, "run_classifier.py", task_name="RTE",
        data_dir=str(tmp_path / "glue"), export_dir=None, keep_checkpoint_max=2,
        optimizer="adamw", threshold_to_export=None)
    assert "eval_accuracy" in results["module"]
    assert results["module"] == results["checkpoint"]


@pytest.mark.slow
def test_run_race_through_the_exported_module_equals_run_race_from_its_checkpoint(
        exported, tmp_path):
    sys.path.insert(0, str(ROOT))
    import run_race
    from albert_tf import cli
    run_race.define_race_flags()
    cli.define_debug_flag()
    write_race_data(tmp_path / "race")
    results = eval_results_from_checkpoint_and_module(
        exported, tmp_path, run_race.main, "run_race.py", task_name="race",
        data_dir=str(tmp_path / "race"), max_qa_length=8, num_keep_checkpoint=2,
        dropout_prob=0.0, high_only=False, middle_only=False, skip_bad_examples=False,
        eval_file=None)
    assert "eval_accuracy" in results["module"]
    assert results["module"] == results["checkpoint"]


# === The libraries themselves, when installed ============================================

@pytest.mark.slow
def test_transformers_loads_what_we_write(tmp_path):
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    # transformers runs a group's inner layers with head_mask slices of L / G entries, so it
    # needs inner_group_num <= num_hidden_layers / num_hidden_groups (original_tiny has not).
    config = AlbertConfig(vocab_size=60, embedding_size=16, hidden_size=32,
                          num_hidden_layers=4, num_hidden_groups=2, inner_group_num=2,
                          num_attention_heads=4, intermediate_size=48,
                          max_position_embeddings=20)
    model = AlbertPretrainer(config)
    save_with_random_weights(model, tmp_path / "ours", seed=1, scale=0.2)
    hf = convert_command(tmp_path, tmp_path / "ours", "hf", "hf")
    theirs = transformers.AlbertForPreTraining.from_pretrained(str(hf)).eval()
    ids = np.array([[2, 17, 33, 8, 3, 0], [2, 40, 3, 9, 9, 3]])
    mask = np.array([[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1]])
    ours = model({"input_ids": ids, "input_mask": mask,
                  "masked_lm_positions": np.tile(np.arange(6), (2, 1))})
    with torch.no_grad():
        out = theirs(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask))
    np.testing.assert_allclose(out.sop_logits.numpy(), ours["sop_logits"], atol=1e-5)
    np.testing.assert_allclose(out.prediction_logits.numpy()[mask == 1],
                               ours["mlm_logits"].numpy()[mask == 1], atol=1e-5)


@pytest.mark.slow
def test_keras_hub_loads_what_we_write(tmp_path):
    keras_hub = pytest.importorskip("keras_hub")
    back = convert_command(tmp_path, KERAS_HUB, "original", "original")
    preset = convert_command(tmp_path, back, "keras_hub", "preset")
    backbone = keras_hub.models.AlbertBackbone.from_preset(str(preset))
    reference = original_reference(KERAS_HUB)
    out = backbone({"token_ids": reference["input_ids"], "segment_ids": reference["segment_ids"],
                    "padding_mask": reference["input_mask"]})
    np.testing.assert_allclose(np.asarray(out["pooled_output"]), reference["pooled_output"],
                               atol=1e-5)
