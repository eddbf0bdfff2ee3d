"""SQuAD fine-tuning end to end: files in the official format in, official metrics out.

A tiny ALBERT (hidden 32, 2 layers) is fine-tuned from scratch on a synthetic set where the
answer can only be found from the question: each context lists a few animals ("The yak is
red. The owl is blue. ..."), the question names one of them ("What color is the owl?") and
the answer is that animal's name where the context mentions it. SQuAD 2.0 questions may name
an animal the context does not mention (unanswerable). Guessing one of the context's animals
scores about 1 / (animals per context) = 18% F1 on v1.1; v2.0's baseline is answering null
everywhere (the unanswerable share, about 33%). The reference for the scores is the official
evaluation (tf-models-official's squad_evaluate_v1_1 / v2_0), reached through run_squad.
"""

import json
import os
import random
import subprocess
import sys

import pytest

from albert_tf.config import AlbertConfig
from albert_tf.finetuning import FinetuningSettings
from albert_tf.tasks.squad_task import SquadSettings, run_squad
from conftest import entry_point_flag_defaults, synthetic_squad

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ANIMALS = "cat dog fox owl bee cow pig hen ant bat elk eel yak ram emu gnu".split()
COLORS = "red blue green black white pink gray gold".split()


def _synthetic_squad(num_paragraphs, seed, v2, questions_per_paragraph=3):
    """4 to 7 animals a paragraph; in v2.0 a third of the questions have no answer."""
    return synthetic_squad(random.Random(seed), num_paragraphs, v2,
                           impossible=lambda rng, p, k: rng.random() < 1 / 3,
                           num_animals=lambda rng: rng.randint(4, 7),
                           questions=questions_per_paragraph, qid=f"s{seed}p{{p}}q{{k}}",
                           animals=ANIMALS, colors=COLORS)


@pytest.fixture(scope="module")
def spm_model(tmp_path_factory):
    from albert_tf.train_sentencepiece import train_sentencepiece
    folder = tmp_path_factory.mktemp("squad_spm")
    lines = [f"{w} {w}s {w}." for w in ANIMALS + COLORS + ["the", "is", "what", "color"]
             for _ in range(20)]
    lines += [f"The {a} is {c}. What color is the {a}?" for a in ANIMALS for c in COLORS]
    (folder / "corpus.txt").write_text("\n".join(lines) + "\n")
    return train_sentencepiece(str(folder / "corpus.txt"), str(folder / "spm"),
                               vocab_size=200, num_threads=1,
                               extra_options={"hard_vocab_limit": False})


def _files(tmp_path, v2, train_paragraphs, dev_paragraphs):
    tag = "v2" if v2 else "v1"
    train, dev = tmp_path / f"train_{tag}.json", tmp_path / f"dev_{tag}.json"
    train.write_text(json.dumps(_synthetic_squad(train_paragraphs, 1, v2)))
    dev.write_text(json.dumps(_synthetic_squad(dev_paragraphs, 2, v2)))
    return str(train), str(dev)


def _tiny_config(vocab_size):
    # initializer_range 0.2 (instead of 0.02) lets attention learn from scratch in a few
    # hundred steps; there is no pretrained checkpoint for this vocabulary.
    return AlbertConfig(vocab_size=vocab_size, embedding_size=16, hidden_size=32,
                        num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                        max_position_embeddings=64, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0, initializer_range=0.2)


def _settings(tmp_path, spm_model, version, train, dev, epochs, learning_rate=1e-3,
              save_every=100000):
    out = tmp_path / f"out_{version}"
    settings = FinetuningSettings(output_dir=str(out), max_seq_length=64, train_batch_size=16,
                                  predict_batch_size=32, learning_rate=learning_rate,
                                  save_checkpoints_steps=save_every, log_steps=100, seed=1)
    squad_settings = SquadSettings(
        squad_version=version, train_file=train, predict_file=dev,
        train_feature_file=str(tmp_path / "cache" / f"train_{version}.tfrecord"),
        predict_feature_file=str(tmp_path / "cache" / f"dev_{version}.tfrecord"),
        predict_feature_left_file=str(tmp_path / "cache" / f"dev_{version}.pkl"),
        spm_model_file=spm_model, doc_stride=32, max_query_length=16, do_train=True,
        do_predict=True, num_train_epochs=epochs, n_best_size=5, max_answer_length=5)
    return settings, squad_settings


def _vocab_size(spm_model):
    import sentencepiece as spm
    return spm.SentencePieceProcessor(model_file=spm_model).GetPieceSize()


def test_v1_smoke_writes_the_original_outputs_and_resumes(tmp_path, spm_model):
    train, dev = _files(tmp_path, False, 8, 4)
    settings, squad_settings = _settings(tmp_path, spm_model, "1.1", train, dev, epochs=4,
                                         save_every=3)
    outcome = run_squad(_tiny_config(_vocab_size(spm_model)), settings, squad_settings)
    out = tmp_path / "out_1.1"
    # 24 questions / 16 x 4 epochs = 6 steps (the original's count), checkpoints at 3 and 6.
    assert outcome["result"].global_step == 6
    assert sorted(outcome["result"].evaluations) == [3, 6]
    predictions = json.loads((out / "predictions.json").read_text())
    assert sorted(predictions) == sorted(f"s2p{p}q{k}" for p in range(4) for k in range(3))
    nbest = json.loads((out / "nbest_predictions.json").read_text())
    assert set(nbest["s2p0q0"][0]) == {"text", "probability", "start_log_prob",
                                       "end_log_prob"}
    assert not (out / "null_odds.json").exists()
    assert (out / "model.ckpt-best.index").exists()
    assert set(outcome["metrics"]) == {"exact_match", "f1"}
    results = json.loads((out / "squad_results.json").read_text())
    assert results["f1"] == outcome["metrics"]["f1"]
    assert "Final: model.ckpt-best" in (out / "eval_results.txt").read_text()
    # The same command again: training is finished, the caches are reused as they are.
    stamp = os.stat(squad_settings.train_feature_file).st_mtime_ns
    again = run_squad(_tiny_config(_vocab_size(spm_model)), settings, squad_settings)
    assert again["result"].global_step == 6
    assert os.stat(squad_settings.train_feature_file).st_mtime_ns == stamp
    # --export_dir: a SavedModel of model.ckpt-best giving the same logits as those weights.
    import numpy as np
    import tensorflow as tf
    from albert_tf.checkpoints import load_original_checkpoint
    from albert_tf.export import export_finetuned
    from albert_tf.tasks.squad_task import build_squad_model
    config = _tiny_config(_vocab_size(spm_model))
    exported = tf.saved_model.load(export_finetuned(
        build_squad_model(config, squad_settings), settings.output_dir, str(tmp_path / "export"),
        init_checkpoint=settings.init_checkpoint, max_seq_length=settings.max_seq_length))
    batch = next(iter(eval_batches(squad_settings.predict_feature_file)))
    served = exported.signatures["serving_default"](**batch)
    model = build_squad_model(config, squad_settings)
    load_original_checkpoint(model, str(out / "model.ckpt-best"))
    direct = model(batch, training=False)
    np.testing.assert_allclose(served["start_logits"], direct["start_logits"], atol=1e-5)
    assert served["end_logits"].shape == (4, 64)


def eval_batches(path):
    from albert_tf.tasks.squad_task import eval_dataset
    return eval_dataset(path, 64, is_v2=False).map(
        lambda f: {k: f[k] for k in ("input_ids", "input_mask", "segment_ids")}).batch(4)


def test_v2_command_line_runs_with_the_original_flags(tmp_path, spm_model):
    train, dev = _files(tmp_path, True, 6, 3)
    config = tmp_path / "albert_config.json"
    config.write_text(_tiny_config(_vocab_size(spm_model)).to_json_string())
    out, cache = tmp_path / "out", tmp_path / "cache"
    command = [
        sys.executable, os.path.join(ROOT, "run_squad_v2.py"),
        f"--albert_config_file={config}", f"--spm_model_file={spm_model}",
        f"--output_dir={out}", f"--train_file={train}", f"--predict_file={dev}",
        f"--train_feature_file={cache}/train.tfrecord",
        f"--predict_feature_file={cache}/dev.tfrecord",
        f"--predict_feature_left_file={cache}/dev.pkl", "--do_lower_case", "--do_train",
        "--do_predict", "--max_seq_length=64", "--doc_stride=32", "--max_query_length=16",
        "--train_batch_size=8", "--predict_batch_size=8", "--learning_rate=1e-3",
        "--num_train_epochs=1", "--warmup_proportion=0.1", "--save_checkpoints_steps=5000",
        "--n_best_size=5", "--max_answer_length=5", "--start_n_top=3", "--end_n_top=2",
        "--dropout_prob=0.1"]
    run = subprocess.run(command, capture_output=True, text=True, cwd=str(tmp_path),
                         timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    for name in ("predictions.json", "nbest_predictions.json", "null_odds.json",
                 "model.ckpt-best.index", "squad_results.json"):
        assert (out / name).exists(), name
    results = json.loads((out / "squad_results.json").read_text())
    assert results["squad_version"] == "2.0" and results["total"] == 9
    for key in ("exact", "f1", "null_score_diff_threshold", "HasAns_f1", "NoAns_f1",
                "best_f1", "best_f1_thresh"):
        assert key in results, key


def test_malformed_training_file_stops_the_run_with_one_line(tmp_path, spm_model, capsys):
    bad = tmp_path / "train.json"
    bad.write_text('{"version": "1.1", "data": [}')
    settings, squad_settings = _settings(tmp_path, spm_model, "1.1", str(bad), None, 1)
    squad_settings.do_predict = False
    from albert_tf import cli
    with pytest.raises(SystemExit) as exit_info, cli.user_errors():
        run_squad(_tiny_config(_vocab_size(spm_model)), settings, squad_settings)
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == (f"ERROR: {bad}, line 1, column 29: malformed JSON "
                                       "(Expecting value). Expected a SQuAD v1.1/v2.0 file.\n")


def test_command_line_keeps_every_original_flag_and_default():
    defaults = entry_point_flag_defaults("run_squad", "define_squad_flags")
    # The flags of the original run_squad_v1.py and run_squad_v2.py (SPEC 5.2, 5.3).
    original = {
        "albert_config_file": None, "vocab_file": None, "spm_model_file": None,
        "output_dir": None, "train_file": None, "predict_file": None,
        "train_feature_file": None, "predict_feature_file": None,
        "predict_feature_left_file": None, "init_checkpoint": None,
        "albert_hub_module_handle": None, "do_lower_case": True, "max_seq_length": 384,
        "doc_stride": 128, "max_query_length": 64, "do_train": False, "do_predict": False,
        "train_batch_size": 32, "predict_batch_size": 8, "learning_rate": 5e-5,
        "num_train_epochs": 3.0, "warmup_proportion": 0.1, "save_checkpoints_steps": 1000,
        "iterations_per_loop": 1000, "n_best_size": 20, "max_answer_length": 30,
        "use_tpu": False, "tpu_name": None, "tpu_zone": None, "gcp_project": None,
        "master": None, "num_tpu_cores": 8, "use_einsum": True, "export_dir": None,
        "start_n_top": 5, "end_n_top": 5, "dropout_prob": 0.1}
    assert {k: defaults.get(k, "MISSING") for k in original} == original
    for new in ("squad_version", "distribution_strategy", "mixed_precision", "jit_compile"):
        assert new in defaults


@pytest.mark.slow     # about a minute each on 2 shared CPU cores
@pytest.mark.parametrize("version,baseline", [("1.1", 18.0), ("2.0", 33.0)])
def test_tiny_model_learns_to_locate_the_answer(tmp_path, spm_model, version, baseline):
    train, dev = _files(tmp_path, version == "2.0", 200, 30)
    settings, squad_settings = _settings(tmp_path, spm_model, version, train, dev, epochs=12,
                                         learning_rate=2e-3)
    metrics = run_squad(_tiny_config(_vocab_size(spm_model)), settings,
                        squad_settings)["metrics"]
    print(f"SQuAD {version} on the synthetic dev set: {metrics}")
    # Clearly above guessing (v1.1) / always-null (v2.0); in practice close to 100.
    assert metrics["f1"] > baseline + 40, metrics
    if version == "2.0":
        assert metrics["HasAns_f1"] > 60 and metrics["NoAns_f1"] > 60, metrics
