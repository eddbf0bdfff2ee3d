"""`python -m albert_tf.export` with every path on an object store (`ram://` standing in for
gs://), and its bad-input errors as a user sees them.

References:
- the ORIGINAL graph's outputs on tests/fixtures/original_tiny (`reference.npz`), to 1e-5;
- the same export with local paths: the SavedModel from ram:// gives the same numbers
  (`-m slow`: one more SavedModel export, a minute or two on two cores);
- the Python tokenizer (`FullTokenizer` + `encode_inputs`) for the `text` signature's ids;
- the fixture checkpoint's own values (`tf.train.load_checkpoint`), bit for bit, for the
  original-format export read back from ram:// with `checkpoints.load_original_checkpoint`.

The exports run in-process (`main` through `run_entry_point`, since ram:// lives in one
process); the bad-input cases run `python -m albert_tf.export` as a user would.
"""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from albert_tf import AlbertConfig, AlbertPretrainer
from albert_tf import export as export_lib
from albert_tf.checkpoints import (load_original_checkpoint,
                                  model_variables_by_original_name)
from albert_tf.tokenization import FullTokenizer, encode_inputs
from conftest import (ORIGINAL_TINY, original_reference, pydoc_spm_model, run_entry_point,
                      stage_to_ram)

ROOT = pathlib.Path(__file__).resolve().parent.parent
TOKEN_KEYS = ("input_ids", "input_mask", "segment_ids")
MAX_SEQ_LENGTH = 32
ATOL_ORIGINAL = 1e-5   # against the original graph (as test_modeling.py)
TEXTS = ["Return the repr() of an object, special-casing types.",
         "A set is a finite, iterable container of 1,000 items!"]


def export_flags(**values):
    """Every flag of the export command: defaults of `python -m albert_tf.export`, then
    `values` (other scripts' tests may have defined some of these flags with other
    defaults in this process)."""
    flags = dict(albert_config_file=None, init_checkpoint=None, spm_model_file=None,
                 do_lower_case=True, export_dir=None, format="saved_model", head="auto",
                 max_seq_length=MAX_SEQ_LENGTH, labels=None, text_pair=False,
                 versioned=False, overwrite=False, random_init=False, seed=None,
                 num_labels=None, albert_directory=None, checkpoint_name="model.ckpt-best",
                 export_path=None)
    flags.update(values)
    return flags


def run_export(**values):
    """`python -m albert_tf.export --<name>=<value> ...` in this process."""
    export_lib._define_flags()
    run_entry_point(export_lib.main, ["albert_tf.export"], **export_flags(**values))


@pytest.fixture(scope="module")
def spm_model(tmp_path_factory):
    return pydoc_spm_model(tmp_path_factory.mktemp("spm"))


def signature_outputs(loaded):
    """{signature: {output: array}} on the fixture's token ids and on `TEXTS`."""
    ref = original_reference(ORIGINAL_TINY)
    tokens = {key: tf.constant(ref[key]) for key in TOKEN_KEYS}
    outputs = {
        "tokens": loaded.signatures["tokens"](**tokens),
        "mlm": loaded.signatures["mlm"](**tokens,
                                        mlm_positions=tf.constant(ref["masked_lm_positions"])),
        "text": loaded.signatures["text"](text_a=tf.constant(TEXTS)),
    }
    return {name: {key: value.numpy() for key, value in out.items()}
            for name, out in outputs.items()}


def stage_inputs(ram_dir, spm_model):
    """The fixture checkpoint folder and the SentencePiece model (+ .vocab) on ram://."""
    model_dir = stage_to_ram(ORIGINAL_TINY, f"{ram_dir}/albert_tiny")
    spm_file = stage_to_ram(spm_model, f"{ram_dir}/vocab/{spm_model.name}")
    stage_to_ram(spm_model.with_suffix(".vocab"),
                 f"{ram_dir}/vocab/{spm_model.with_suffix('.vocab').name}")
    return model_dir, spm_file


# === SavedModel ==========================================================================


def test_saved_model_export_on_ram_gives_the_original_outputs(ram_dir, spm_model):
    model_dir, spm_file = stage_inputs(ram_dir, spm_model)
    versions = f"{ram_dir}/exports/albert_tiny"
    run_export(albert_config_file=f"{model_dir}/albert_config.json",
               init_checkpoint=model_dir, spm_model_file=spm_file, export_dir=versions,
               versioned=True)

    # One Serving version folder (<unix time>), complete, no temporary folder beside it.
    [version] = tf.io.gfile.listdir(versions)
    assert version.rstrip("/").isdigit()
    written = f"{versions}/{version.rstrip('/')}"
    assert tf.io.gfile.exists(f"{written}/saved_model.pb")

    loaded = tf.saved_model.load(written)
    got = signature_outputs(loaded)
    ref = original_reference(ORIGINAL_TINY)
    real = ref["input_mask"].astype(bool)   # padded positions are not comparable
    np.testing.assert_allclose(got["tokens"]["sequence_output"][real],
                               ref["sequence_output"][real], atol=ATOL_ORIGINAL, rtol=0)
    for key in ("pooled_output", "sop_log_probs"):
        np.testing.assert_allclose(got["tokens"][key], ref[key], atol=ATOL_ORIGINAL, rtol=0,
                                   err_msg=key)
    log_probs = tf.nn.log_softmax(got["mlm"]["mlm_logits"].reshape(-1, 300)).numpy()
    np.testing.assert_allclose(log_probs, ref["mlm_log_probs"], atol=ATOL_ORIGINAL, rtol=0)

    # The text signature tokenizes as the Python tokenizer does.
    tokenizer = FullTokenizer(None, do_lower_case=True, spm_model_file=str(spm_model))
    rows = [encode_inputs(tokenizer, text, None, MAX_SEQ_LENGTH) for text in TEXTS]
    for key in TOKEN_KEYS:
        np.testing.assert_array_equal(got["text"][key], [row[key] for row in rows], key)

    # The assets came from ram:// too: the SentencePiece model and its .vocab, the config
    # and export_info.json.
    assets = f"{written}/assets"
    vocab_file = loaded.signatures["tokenization_info"]()["vocab_file"].numpy().decode()
    assert vocab_file == f"{assets}/{spm_model.name}"
    for name, local in ((spm_model.name, spm_model),
                        (spm_model.with_suffix(".vocab").name, spm_model.with_suffix(".vocab"))):
        with tf.io.gfile.GFile(f"{assets}/{name}", "rb") as f:
            assert f.read() == local.read_bytes(), name
    with tf.io.gfile.GFile(f"{assets}/albert_config.json") as f:
        assert AlbertConfig.from_dict(json.loads(f.read())) == \
            AlbertConfig.from_json_file(ORIGINAL_TINY / "albert_config.json")
    with tf.io.gfile.GFile(f"{assets}/export_info.json") as f:
        info = json.loads(f.read())
    assert info["head"] == "mlm" and info["max_seq_length"] == MAX_SEQ_LENGTH
    # No staging folder left beside the versions.
    assert tf.io.gfile.listdir(f"{ram_dir}/exports") == ["albert_tiny"]


@pytest.mark.slow
def test_saved_model_export_on_ram_equals_the_export_on_local_paths(ram_dir, spm_model,
                                                                     tmp_path):
    model_dir, spm_file = stage_inputs(ram_dir, spm_model)
    run_export(albert_config_file=f"{model_dir}/albert_config.json",
               init_checkpoint=f"{model_dir}/model.ckpt", spm_model_file=spm_file,
               export_dir=f"{ram_dir}/saved_model")
    run_export(albert_config_file=str(ORIGINAL_TINY / "albert_config.json"),
               init_checkpoint=str(ORIGINAL_TINY / "model.ckpt"),
               spm_model_file=str(spm_model), export_dir=str(tmp_path / "saved_model"))
    got = signature_outputs(tf.saved_model.load(f"{ram_dir}/saved_model"))
    want = signature_outputs(tf.saved_model.load(str(tmp_path / "saved_model")))
    # The same weights and the same graph: the same numbers.
    for signature, outputs in want.items():
        for key, value in outputs.items():
            np.testing.assert_allclose(got[signature][key], value, atol=1e-6, rtol=0,
                                       err_msg=f"{signature}/{key}")


# === Original-format checkpoint ==========================================================


def test_checkpoint_export_on_ram_reloads_bit_identical(ram_dir, spm_model):
    model_dir, spm_file = stage_inputs(ram_dir, spm_model)
    export_dir = f"{ram_dir}/exports/checkpoint"
    # The original export_checkpoints.py's flags: --albert_directory and --export_path.
    run_export(albert_directory=model_dir, checkpoint_name="model.ckpt",
               spm_model_file=spm_file, export_path=export_dir, format="checkpoint",
               head="mlm")
    prefix = f"{export_dir}/model.ckpt"
    assert tf.train.latest_checkpoint(export_dir) == prefix

    config = AlbertConfig.from_json_file(f"{export_dir}/albert_config.json")
    assert config == AlbertConfig.from_json_file(ORIGINAL_TINY / "albert_config.json")
    model = AlbertPretrainer(config)
    report = load_original_checkpoint(model, export_dir, strict=True)
    assert not report.missing
    source = tf.train.load_checkpoint(str(ORIGINAL_TINY / "model.ckpt"))
    variables = model_variables_by_original_name(model)
    assert set(variables) == set(source.get_variable_to_shape_map()) - {"global_step"}
    for name, variable in variables.items():
        np.testing.assert_array_equal(variable.numpy(), source.get_tensor(name), name)
    with tf.io.gfile.GFile(f"{export_dir}/{spm_model.name}", "rb") as f:
        assert f.read() == spm_model.read_bytes()
    # Every file under its final name only: no temporary names left.
    assert not [name for name in tf.io.gfile.listdir(export_dir) if ".tmp" in name]


def test_checkpoint_export_on_ram_replaces_only_with_overwrite(ram_dir, spm_model, capsys):
    model_dir, _ = stage_inputs(ram_dir, spm_model)
    export_dir = f"{ram_dir}/exports/checkpoint"
    common = dict(albert_config_file=f"{model_dir}/albert_config.json",
                  init_checkpoint=f"{model_dir}/model.ckpt", export_dir=export_dir,
                  format="checkpoint", head="none")
    run_export(**common)
    prefix = f"{export_dir}/model.ckpt-best"
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run_export(**common)
    assert exit_info.value.code == 1
    error = capsys.readouterr().err
    assert f"ERROR: {export_dir} exists and is not empty" in error and "--overwrite" in error
    run_export(**common, overwrite=True)
    # (`tf.train.list_variables` would take a ram:// prefix for a folder.)
    written = tf.compat.v1.train.NewCheckpointReader(prefix).get_variable_to_shape_map()
    assert set(written) - {"global_step"} == {
        name for name, _ in tf.train.list_variables(str(ORIGINAL_TINY / "model.ckpt"))
        if not name.startswith("cls/")}


# === Bad input, as a user sees it ========================================================


@pytest.mark.parametrize("case", ["missing checkpoint", "missing config", "missing flags"])
def test_bad_input_is_one_error_line_naming_it(case, tmp_path):
    config = str(ORIGINAL_TINY / "albert_config.json")
    export_dir = str(tmp_path / "out")
    missing = str(tmp_path / "nowhere" / "model.ckpt-best")
    argv, named = {
        "missing checkpoint": ([f"--albert_config_file={config}", f"--init_checkpoint={missing}",
                                f"--export_dir={export_dir}", "--format=checkpoint"], missing),
        "missing config": ([f"--albert_config_file={tmp_path / 'no_config.json'}",
                            f"--init_checkpoint={ORIGINAL_TINY}", f"--export_dir={export_dir}",
                            "--format=checkpoint"], str(tmp_path / "no_config.json")),
        "missing flags": ([f"--albert_config_file={config}", f"--init_checkpoint={ORIGINAL_TINY}"],
                          "--export_dir"),
    }[case]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run([sys.executable, "-m", "albert_tf.export", *argv], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1, result.stderr[-3000:]
    assert named in errors[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
