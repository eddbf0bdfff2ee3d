"""Every entry point defines the original scripts' flags, with their defaults, and its new
ones; every option has help text; settings are built from the flags by name.

The expected names and defaults of the original flags are copied from google-research/ALBERT
(commit cbce824): run_pretraining.py, run_classifier.py, run_squad_v1.py, run_squad_v2.py,
run_race.py, create_pretraining_data.py, export_checkpoints.py and export_to_tfhub.py.
"""
import dataclasses
import math
import os
import runpy
import sys

from absl import flags
from absl.testing import flagsaver
import pytest

from albert_tf import bucketing
from albert_tf import cli
from albert_tf import settings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TPU = {"use_tpu": False, "tpu_name": None, "tpu_zone": None, "gcp_project": None,
       "master": None, "num_tpu_cores": 8}

# === The original scripts' flags =========================================================

ORIGINAL_PRETRAINING = {
    **TPU, "albert_config_file": None, "input_file": None, "output_dir": None,
    "init_checkpoint": None, "max_seq_length": 512, "max_predictions_per_seq": 20,
    "do_train": True, "do_eval": False, "train_batch_size": 4096, "eval_batch_size": 64,
    "optimizer": "lamb", "learning_rate": 0.00176, "poly_power": 1.0,
    "num_train_steps": 125000, "num_warmup_steps": 3125, "start_warmup_step": 0,
    "save_checkpoints_steps": 5000, "keep_checkpoint_max": 5, "iterations_per_loop": 1000,
    "max_eval_steps": 100, "init_from_group0": False, "masked_lm_budget": 0}
# Every fine-tuning script has these.
ORIGINAL_FINETUNING = {
    **TPU, "albert_config_file": None, "vocab_file": None, "spm_model_file": None,
    "output_dir": None, "init_checkpoint": None, "albert_hub_module_handle": None,
    "do_lower_case": True, "predict_batch_size": 8, "iterations_per_loop": 1000}
ORIGINAL_CLASSIFIER = {
    **ORIGINAL_FINETUNING, "data_dir": None, "task_name": None, "cached_dir": None,
    "max_seq_length": 512, "do_train": False, "do_eval": False, "do_predict": False,
    "train_batch_size": 32, "eval_batch_size": 8, "learning_rate": 5e-5, "train_step": 1000,
    "warmup_step": 0, "save_checkpoints_steps": 1000, "keep_checkpoint_max": 5,
    "optimizer": "adamw", "export_dir": None, "threshold_to_export": float("nan")}
ORIGINAL_SQUAD = {
    **ORIGINAL_FINETUNING, "train_file": None, "predict_file": None,
    "train_feature_file": None, "predict_feature_file": None,
    "predict_feature_left_file": None, "max_seq_length": 384, "doc_stride": 128,
    "max_query_length": 64, "do_train": False, "do_predict": False, "train_batch_size": 32,
    "learning_rate": 5e-5, "num_train_epochs": 3.0, "warmup_proportion": 0.1,
    "save_checkpoints_steps": 1000, "n_best_size": 20, "max_answer_length": 30}
ORIGINAL_SQUAD_V1 = {**ORIGINAL_SQUAD, "use_einsum": True, "export_dir": None}
ORIGINAL_SQUAD_V2 = {**ORIGINAL_SQUAD, "start_n_top": 5, "end_n_top": 5, "dropout_prob": 0.1}
ORIGINAL_RACE = {
    **ORIGINAL_FINETUNING, "data_dir": None, "task_name": "race", "train_file": None,
    "eval_file": None, "predict_file": None, "dropout_prob": 0.1, "max_seq_length": 512,
    "max_qa_length": 128, "num_keep_checkpoint": 5, "high_only": False,
    "middle_only": False, "do_train": True, "do_eval": True, "do_predict": False,
    "train_batch_size": 32, "eval_batch_size": 8, "learning_rate": 1e-5, "train_step": 12000,
    "warmup_step": 1000, "save_checkpoints_steps": 100}
ORIGINAL_CREATE_PRETRAINING_DATA = {
    "input_file": None, "output_file": None, "vocab_file": None, "spm_model_file": None,
    "input_file_mode": "r", "do_lower_case": True, "do_whole_word_mask": True,
    "do_permutation": False, "favor_shorter_ngram": True, "random_next_sentence": False,
    "max_seq_length": 512, "ngram": 3, "max_predictions_per_seq": 20, "random_seed": 12345,
    "dupe_factor": 40, "masked_lm_prob": 0.15, "short_seq_prob": 0.1}
# export_checkpoints.py's, and export_to_tfhub.py's (the same and --use_einsum).
ORIGINAL_EXPORT = {"albert_directory": None, "checkpoint_name": "model.ckpt-best",
                   "do_lower_case": True, "export_path": None, "use_einsum": True}

# === The new flags =======================================================================

NEW_RUNTIME = {
    "debug": False, "distribution_strategy": "one_device", "num_gpus": None,
    "num_cpu_devices": 1, "mixed_precision": "none", "jit_compile": False,
    "gradient_accumulation_steps": 1, "bias_correction": False, "log_steps": 100,
    "seed": None, "peak_tflops": None, "length_buckets": "default"}
NEW_FINETUNING = {**NEW_RUNTIME, "eval_wait_seconds": 0.0, "group_by_length": True}
NEW_SQUAD = {**NEW_FINETUNING, "keep_checkpoint_max": 5, **ORIGINAL_SQUAD_V1,
             **ORIGINAL_SQUAD_V2}

EXPECTED = {
    "run_pretraining.py": (
        {**ORIGINAL_PRETRAINING, **NEW_RUNTIME, "jit_scope": "gradients",
         "export_original_every": 0},
        {"input_file", "albert_config_file", "output_dir"}),
    "run_classifier.py": (
        {**ORIGINAL_CLASSIFIER, **NEW_FINETUNING, "text_a_column": "0", "text_b_column": None,
         "label_column": "1", "labels": None, "tsv_header": True},
        {"data_dir", "task_name", "output_dir"}),
    "run_squad.py": ({**NEW_SQUAD, "squad_version": None}, {"output_dir"}),
    "run_squad_v1.py": ({**NEW_SQUAD, "squad_version": "1.1"}, {"output_dir"}),
    "run_squad_v2.py": ({**NEW_SQUAD, "squad_version": "2.0"}, {"output_dir"}),
    "run_race.py": (
        {**ORIGINAL_RACE, **NEW_FINETUNING, "cached_dir": None, "skip_bad_examples": False},
        {"data_dir", "output_dir"}),
    "albert_tf.create_pretraining_data": (
        {**ORIGINAL_CREATE_PRETRAINING_DATA, "debug": False, "num_workers": None,
         "num_output_shards": 0, "resume": False, "skip_bad_lines": False,
         "shuffle_buffer_size": 20000},
        {"input_file", "output_file"}),
    "albert_tf.export": (
        {**ORIGINAL_EXPORT, "debug": False, "albert_config_file": None,
         "init_checkpoint": None, "spm_model_file": None, "export_dir": None,
         "format": "saved_model", "head": "auto", "max_seq_length": 128, "labels": None,
         "text_pair": False, "versioned": False, "overwrite": False, "random_init": False,
         "seed": None, "num_labels": None, "length_buckets": "default"},
        set()),
    # No original script: the original README trains SentencePiece with spm_train.
    "albert_tf.convert": (
        {"debug": False, "input": None, "output": None, "to": None, "head": "auto",
         "albert_config_file": None, "spm_model_file": None, "do_lower_case": None,
         "overwrite": False},
        {"input", "output", "to"}),
    "albert_tf.train_sentencepiece": (
        {"debug": False, "input": None, "model_prefix": None, "vocab_size": 30000,
         "do_lower_case": True, "input_sentence_size": 10_000_000,
         "shuffle_input_sentence": True, "character_coverage": 0.99995, "num_threads": None},
        {"input", "model_prefix"}),
}


def _defined_by(entry_point, monkeypatch):
    """({flag: default}, required flags) that `entry_point` defines when run as __main__
    (its `cli.run` is stopped before parsing)."""
    seen = {}

    def run(main, define_flags=None, required=()):
        if define_flags is not None:
            define_flags()
        cli.define_debug_flag()
        seen.update(flags={name: flags.FLAGS[name].default for name in cli._DEFINED},
                    required=set(required))

    monkeypatch.setattr(cli, "run", run)
    monkeypatch.setattr(cli, "_DEFINED", [])
    monkeypatch.setattr(sys, "argv", [entry_point])
    monkeypatch.syspath_prepend(ROOT)
    flags.FLAGS.unparse_flags()         # each takes its own defaults (`cli.define_flag`)
    if entry_point.endswith(".py"):
        runpy.run_path(os.path.join(ROOT, entry_point), run_name="__main__")
    else:
        runpy.run_module(entry_point, run_name="__main__", alter_sys=False)
    return seen["flags"], seen["required"]


def _same(a, b):
    return a == b or (isinstance(a, float) and isinstance(b, float)
                      and math.isnan(a) and math.isnan(b))


# runpy warns that the tool modules were imported before being run as __main__.
RUN_AS_MAIN = pytest.mark.filterwarnings("ignore:.*found in sys.modules:RuntimeWarning")


@RUN_AS_MAIN
@pytest.mark.parametrize("entry_point", sorted(EXPECTED))
def test_entry_point_defines_the_original_flags_and_its_new_ones(entry_point, monkeypatch):
    defaults, required = _defined_by(entry_point, monkeypatch)
    expected, expected_required = EXPECTED[entry_point]
    assert sorted(defaults) == sorted(expected)
    wrong = {name: (defaults[name], expected[name]) for name in expected
             if not _same(defaults[name], expected[name])}
    assert not wrong, wrong
    assert required == expected_required
    no_help = [name for name in defaults if not flags.FLAGS[name].help.strip()]
    assert not no_help


@pytest.mark.parametrize("settings_class", [
    settings.PretrainingSettings, settings.FinetuningSettings, settings.ClassifierSettings,
    settings.SquadSettings, settings.RaceSettings])
def test_every_settings_field_has_help(settings_class):
    no_help = [f.name for f in dataclasses.fields(settings_class)
               if len(f.metadata.get("help", "")) < 10]
    assert not no_help


def test_settings_are_built_from_the_flags_by_name(monkeypatch):
    monkeypatch.syspath_prepend(ROOT)
    import run_race
    run_race.define_race_flags()
    flags.FLAGS.mark_as_parsed()
    with flagsaver.flagsaver(data_dir="race_data", output_dir="out", num_keep_checkpoint=3,
                             max_qa_length=64, cached_dir="cache", do_train=False,
                             use_tpu=True, albert_config_file="albert_config.json",
                             albert_hub_module_handle=None, init_checkpoint=None):
        loop, race, config_file = run_race.settings_from_flags(flags.FLAGS)
    assert (loop.keep_checkpoint_max, loop.learning_rate, loop.use_one_hot_embeddings) == (
        3, 1e-5, True)                   # --num_keep_checkpoint, run_race's default, --use_tpu
    assert (race.data_dir, race.max_qa_length, race.cache_dir, race.do_train) == (
        "race_data", 64, "cache", False)
    assert config_file == "albert_config.json"


def test_on_a_tpu_batches_keep_one_static_length_unless_buckets_are_given():
    # A training batch cut to its bucket has a run-time length; TPU compilation needs a
    # static one, so --use_tpu pads to --max_seq_length unless --length_buckets is given.
    cli.define_pretraining_flags()
    flags.FLAGS.mark_as_parsed()
    with flagsaver.flagsaver(use_tpu=True):
        assert cli.pretraining_settings_from_flags(flags.FLAGS).length_buckets == "none"
        flags.FLAGS["length_buckets"].parse("64,128")
        assert cli.pretraining_settings_from_flags(flags.FLAGS).length_buckets == "64,128"
    with flagsaver.flagsaver(use_tpu=False):
        assert cli.pretraining_settings_from_flags(flags.FLAGS).length_buckets == "default"


def test_a_list_flag_fills_a_tuple_field(monkeypatch):
    monkeypatch.syspath_prepend(ROOT)
    import run_classifier
    run_classifier.define_flags()
    flags.FLAGS.mark_as_parsed()
    with flagsaver.flagsaver(labels=["neg", "pos"]):
        values = cli.values_of(run_classifier.OPTIONS, flags.FLAGS, settings.ClassifierSettings)
    assert values["labels"] == ("neg", "pos")


@RUN_AS_MAIN
@pytest.mark.parametrize("entry_point", sorted(EXPECTED))
def test_helpshort_lists_every_flag_with_its_help(entry_point, monkeypatch):
    """absl's --help/--helpshort show the key flags of the module run as sys.argv[0];
    `cli.run` makes every flag the entry point defines one (the aliases and the tools'
    too)."""
    path = (os.path.join(ROOT, entry_point) if entry_point.endswith(".py")
            else os.path.join(ROOT, *entry_point.split(".")) + ".py")
    monkeypatch.setattr(sys, "argv", [path])
    monkeypatch.setattr(cli.app, "run", lambda main, flags_parser: None)
    monkeypatch.setattr(flags, "mark_flags_as_required", lambda names: None)
    monkeypatch.setattr(cli, "_DEFINED", [])
    monkeypatch.syspath_prepend(ROOT)
    flags.FLAGS.unparse_flags()
    if entry_point.endswith(".py"):
        runpy.run_path(path, run_name="__main__")
    else:
        runpy.run_module(entry_point, run_name="__main__", alter_sys=False)
    listed = flags.FLAGS.main_module_help()
    missing = [name for name in EXPECTED[entry_point][0]
               if f"--{name}:" not in listed and f"--[no]{name}:" not in listed]
    assert not missing
    assert flags.FLAGS["debug"].help in " ".join(listed.split())



@pytest.mark.parametrize("settings_class, required", [
    (settings.PretrainingSettings, {"input_file": "in", "output_dir": "out"}),
    (settings.FinetuningSettings, {"output_dir": "out"})])
@pytest.mark.parametrize("value", ["abc", "0", "-5", "64,x"])
def test_a_bad_length_buckets_value_is_refused_when_the_settings_are_built(
        settings_class, required, value):
    # So a run stops before any data is read or a feature file written.
    with pytest.raises(bucketing.BucketError, match="--length_buckets"):
        settings_class(**required, length_buckets=value)
