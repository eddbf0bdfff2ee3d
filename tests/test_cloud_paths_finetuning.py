"""run_classifier, run_squad and run_race with every path on an object store (`ram://`,
TensorFlow's in-memory filesystem, standing in for gs://).

Each script runs in-process (`main` through `run_entry_point`; ram:// lives in one process)
on task files in the official formats built here (GLUE RTE TSVs, a SQuAD v2.0 JSON, a RACE
folder in the official one-file-per-article layout), a SentencePiece model, the config and
the original-format checkpoint of tests/fixtures/original_tiny, all staged to ram://. The
reference is the same command with every path local: the predictions, results and records
read back through tf.io.gfile must be the same, number for number (for SQuAD and RACE that
comparison is under the slow marker; the default run checks the ram:// outputs themselves). The `ram_dir` fixture
fails a test that wrote a local `ram:` folder (a ram:// path treated as a local one).
"""

import json
import logging
import pathlib
import random
import sys

import numpy as np
import pytest
import tensorflow as tf

from albert_tf import files
from albert_tf.train_sentencepiece import train_sentencepiece
from conftest import (ORIGINAL_TINY, rte_rows, run_entry_point, stage_to_ram, synthetic_squad,
                      write_race_data)

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import run_classifier  # noqa: E402
import run_race  # noqa: E402
import run_squad  # noqa: E402

from albert_tf import cli  # noqa: E402

WORDS = "the cat dog fox owl bee cow pig hen is red blue green sees a big small".split()
ANIMALS = "cat dog fox owl bee cow pig hen".split()
COLORS = "red blue green black white".split()
SEQ = 32   # the tiny config has 40 position embeddings


def define_all_flags():
    run_classifier.define_flags()
    run_squad.define_squad_flags()
    run_race.define_race_flags()
    cli.define_debug_flag()


def shared_flags(root, **values):
    """Every flag the three scripts share, set explicitly (they define some with other
    defaults, and the first definition in a process wins), then `values`."""
    flags = dict(
        albert_config_file=f"{root}/model/albert_config.json",
        init_checkpoint=f"{root}/model/model.ckpt", spm_model_file=f"{root}/spm.model",
        vocab_file=None, do_lower_case=True, albert_hub_module_handle=None,
        output_dir=f"{root}/out", max_seq_length=SEQ, train_batch_size=4, eval_batch_size=4,
        predict_batch_size=3, learning_rate=1e-3, save_checkpoints_steps=2,
        iterations_per_loop=1000, distribution_strategy="one_device", num_gpus=0,
        num_cpu_devices=1, mixed_precision="none", jit_compile=False, use_tpu=False,
        gradient_accumulation_steps=1, bias_correction=False, log_steps=2, seed=3,
        peak_tflops=1.0, eval_wait_seconds=0.0, export_dir=None, debug=True,
        do_train=True, do_eval=True, do_predict=True, cached_dir=None, train_file=None,
        predict_file=None)
    flags.update(values)
    return flags


def read(path):
    """A file's text, through tf.io.gfile (either filesystem)."""
    return files.read_text(path)


def same_outputs(local_root, ram_root, names):
    for name in names:
        local, remote = read(f"{local_root}/{name}"), read(f"{ram_root}/{name}")
        assert remote == local, name


def numbers(text):
    """{key: value} of `key = value` lines (eval_results.txt and predict_results.txt)."""
    return {k.strip(): v.strip() for k, _, v in
            (line.partition("=") for line in text.splitlines() if " = " in line)}


# === Task files in the official formats =================================================

def squad_v2(seed, paragraphs):
    """SQuAD v2.0 JSON: the second question of every odd paragraph has no answer."""
    return json.dumps(synthetic_squad(random.Random(seed), paragraphs, True,
                                      impossible=lambda rng, p, k: k == 1 and p % 2,
                                      qid=f"s{seed}p{{p}}q{{k}}"))


def write_task_files(folder):
    """GLUE (RTE), SQuAD v2.0 and RACE files under the local `folder`."""
    folder = pathlib.Path(folder)
    rte = folder / "glue" / "RTE"
    rte.mkdir(parents=True)
    (rte / "train.tsv").write_text(rte_rows(1, 12))
    (rte / "dev.tsv").write_text(rte_rows(2, 7))      # 7: no batch size here divides it
    (rte / "test.tsv").write_text(rte_rows(3, 5, labelled=False))
    (folder / "squad").mkdir()
    (folder / "squad" / "train.json").write_text(squad_v2(1, 6))
    (folder / "squad" / "dev.json").write_text(squad_v2(2, 4))
    write_race_data(folder / "race")


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    """A local folder with the task files, the SentencePiece model and the model files."""
    folder = tmp_path_factory.mktemp("inputs")
    write_task_files(folder)
    corpus = folder / "corpus.txt"
    lines = [f"The {a} is {c}. What color is the {a}? Who is on the farm? The {a} sees a "
             f"{b}." for a in ANIMALS for b in ANIMALS for c in COLORS]
    # The exported in-graph tokenizer needs ',' (its digit-comma rule).
    lines += [f"The {a}, the {b} and 1,000 more." for a in ANIMALS for b in ANIMALS]
    corpus.write_text("\n".join(lines) + "\n")
    train_sentencepiece(str(corpus), str(folder / "spm"), vocab_size=80, num_threads=1,
                        extra_options={"hard_vocab_limit": False})   # ids < 300 (the config)
    model = folder / "model"
    model.mkdir()
    for name in ("albert_config.json", "checkpoint", "model.ckpt.index",
                 "model.ckpt.data-00000-of-00001"):
        (model / name).write_bytes((ORIGINAL_TINY / name).read_bytes())
    return folder


def stage(staged, root):
    """Copies the inputs under `root` (ram:// or local) through tf.io.gfile."""
    if files.has_scheme(root):
        stage_to_ram(staged, root)
    else:
        for path in staged.rglob("*"):
            if path.is_file():
                target = pathlib.Path(root) / path.relative_to(staged)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(path.read_bytes())
    return root


@pytest.fixture(autouse=True)
def _flags():
    define_all_flags()


class LogLines(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@pytest.fixture
def log_lines():
    handler = LogLines()
    logger = logging.getLogger("absl")
    logger.addHandler(handler)
    yield handler.lines
    logger.removeHandler(handler)


# === run_classifier =====================================================================

def classifier_flags(root, **values):
    return shared_flags(root, **{**dict(
        task_name="RTE", data_dir=f"{root}/glue", cached_dir=f"{root}/cache", train_step=4,
        warmup_step=1, keep_checkpoint_max=5, optimizer="adamw", export_dir=f"{root}/export",
        threshold_to_export=0.5), **values})


# The same run on local paths as the reference doubles the time: under the slow marker.
COMPARED_WITH_LOCAL = [False, pytest.param(True, marks=pytest.mark.slow)]


@pytest.mark.parametrize("compare", COMPARED_WITH_LOCAL, ids=["ram", "ram_vs_local"])
def test_run_classifier_on_ram_matches_local_paths(staged, ram_dir, tmp_path, log_lines,
                                                   compare):
    local = stage(staged, str(tmp_path / "local")) if compare else None
    ram = stage(staged, ram_dir)
    for root in (local, ram) if compare else (ram,):
        run_entry_point(run_classifier.main, ["run_classifier.py"], **classifier_flags(root))
    names = ["out/eval_results.txt", "out/best_trial.txt", "out/test_results.tsv",
             "out/submit_results.tsv", "out/glue_submission/RTE.tsv"]
    if compare:
        same_outputs(local, ram, names)
    results = numbers(read(f"{ram}/out/eval_results.txt"))
    assert results["global_step"] == "4" and "eval_accuracy" in results
    assert len(read(f"{ram}/out/test_results.tsv").splitlines()) == 5
    assert tf.io.gfile.exists(f"{ram}/out/model.ckpt-best.index")
    assert tf.io.gfile.glob(f"{ram}/out/summaries/train/*")
    # The feature cache (train, dev, test) is on ram://, without temporary files left.
    cache = tf.io.gfile.listdir(f"{ram}/cache")
    assert sorted(name.split(".")[0] for name in cache) == ["rte_dev", "rte_test", "rte_train"]
    # The export: a versioned SavedModel on ram://; compared, it gives the local export's
    # numbers.
    outputs = []
    for root in (local, ram) if compare else (ram,):
        (version,) = tf.io.gfile.listdir(f"{root}/export")
        folder = files.join(f"{root}/export", version.rstrip("/"))
        assert tf.io.gfile.exists(f"{folder}/saved_model.pb")
        serve = tf.saved_model.load(folder).signatures["serving_default"]
        outputs.append(serve(text_a=tf.constant(["The cat is red."]),
                             text_b=tf.constant(["The dog is red."])))
    if compare:
        np.testing.assert_allclose(outputs[1]["probabilities"].numpy(),
                                   outputs[0]["probabilities"].numpy(), atol=1e-6)
    np.testing.assert_allclose(outputs[-1]["threshold"].numpy(), [0.5])
    first_predictions = read(f"{ram}/out/test_results.tsv")

    # A prediction-only rerun reuses the cached test features on ram:// and predicts
    # model.ckpt-best again.
    log_lines.clear()
    run_entry_point(run_classifier.main, ["run_classifier.py"],
                    **classifier_flags(ram, do_train=False, do_eval=False, export_dir=None))
    assert sum("Using cached features" in line for line in log_lines) == 1, log_lines
    assert sorted(tf.io.gfile.listdir(f"{ram}/cache")) == sorted(cache)
    assert read(f"{ram}/out/test_results.tsv") == first_predictions


# === run_squad ==========================================================================

def squad_flags(root, **values):
    return shared_flags(root, **{**dict(
        squad_version="2.0", train_file=f"{root}/squad/train.json",
        predict_file=f"{root}/squad/dev.json",
        train_feature_file=f"{root}/features/train.tfrecord",
        predict_feature_file=f"{root}/features/dev.tfrecord",
        predict_feature_left_file=f"{root}/features/dev.pkl", doc_stride=16,
        max_query_length=8, num_train_epochs=1.0, warmup_proportion=0.25,
        keep_checkpoint_max=5, n_best_size=4, max_answer_length=4, start_n_top=2,
        end_n_top=2, dropout_prob=0.0, use_einsum=True), **values})


@pytest.mark.parametrize("compare", COMPARED_WITH_LOCAL, ids=["ram", "ram_vs_local"])
def test_run_squad_v2_on_ram_matches_local_paths(staged, ram_dir, tmp_path, log_lines,
                                                 compare):
    local = stage(staged, str(tmp_path / "local")) if compare else None
    ram = stage(staged, ram_dir)
    for root in (local, ram) if compare else (ram,):
        run_entry_point(run_squad.main, ["run_squad.py"],
                        **squad_flags(root, init_checkpoint=f"{root}/model"))  # a folder
    names = ["out/predictions.json", "out/nbest_predictions.json", "out/null_odds.json",
             "out/squad_results.json", "out/eval_results.txt", "out/best_trial.txt"]
    if compare:
        same_outputs(local, ram, names)
    first_predictions = read(f"{ram}/out/predictions.json")
    # 12 questions / batch 4 x 1 epoch = 3 steps (the original's count), checkpoints at 2
    # and 3.
    checkpoint = json.loads(read(f"{ram}/out/squad_results.json"))["checkpoint"]
    assert checkpoint in ("model.ckpt-best (step 2)", "model.ckpt-best (step 3)")
    assert len(json.loads(read(f"{ram}/out/predictions.json"))) == 8
    # The caches' settings are side files that a glob of the feature files skips.
    assert tf.io.gfile.exists(f"{ram}/features/_train.tfrecord.settings.json")
    assert files.expand_globs(f"{ram}/features/train.tfrecord*") == [
        f"{ram}/features/train.tfrecord"]

    # A prediction-only rerun reuses the feature caches and scores model.ckpt-best again.
    log_lines.clear()
    run_entry_point(run_squad.main, ["run_squad.py"],
                    **squad_flags(ram, do_train=False, output_dir=f"{ram}/out"))
    assert any("Using the cached prediction features" in line for line in log_lines)
    assert read(f"{ram}/out/predictions.json") == first_predictions


# === run_race ===========================================================================

def race_flags(root, **values):
    return shared_flags(root, **{**dict(
        task_name="race", data_dir=f"{root}/race", cached_dir=f"{root}/cache", train_step=4,
        warmup_step=1, max_qa_length=8, num_keep_checkpoint=5, dropout_prob=0.0,
        high_only=False, middle_only=False, skip_bad_examples=False, eval_file=None),
        **values})


@pytest.mark.parametrize("compare", COMPARED_WITH_LOCAL, ids=["ram", "ram_vs_local"])
def test_run_race_on_ram_matches_local_paths(staged, ram_dir, tmp_path, log_lines, compare):
    local = stage(staged, str(tmp_path / "local")) if compare else None
    ram = stage(staged, ram_dir)
    for root in (local, ram) if compare else (ram,):
        run_entry_point(run_race.main, ["run_race.py"], **race_flags(root))
    names = ["out/eval_results.txt", "out/best_trial.txt", "out/predict_results.txt",
             "out/test_predictions.tsv"]
    if compare:
        same_outputs(local, ram, names)
    first_predictions = read(f"{ram}/out/test_predictions.tsv")
    rows = read(f"{ram}/out/test_predictions.tsv").splitlines()
    assert len(rows) == 1 + 4   # 2 articles x 2 levels, one question each
    assert [r.split("\t")[0] for r in rows[1:]] == ["middle0.txt", "middle1.txt",
                                                  "high0.txt", "high1.txt"]
    assert numbers(read(f"{ram}/out/eval_results.txt"))["global_step"] == "4"
    # Keyed feature files with their settings as side files, on ram://.
    cache = tf.io.gfile.listdir(f"{ram}/cache")
    assert sum(name.endswith(".tf_record") for name in cache) == 3
    assert sum(name.startswith("_") and name.endswith(".settings.json") for name in cache) == 3

    # A prediction-only rerun reuses the test features and predicts model.ckpt-best again.
    log_lines.clear()
    run_entry_point(run_race.main, ["run_race.py"],
                    **race_flags(ram, do_train=False, do_eval=False))
    assert any("Using the cached RACE test features" in line for line in log_lines)
    assert read(f"{ram}/out/test_predictions.tsv") == first_predictions
