"""Pretraining end to end: the loop, strategies, resume, and clear errors on bad input.

References: the original run_pretraining.py behaviour (SPEC Part 3 §4): its loss formula
(recomputed here from `pretraining_losses` on the whole batch), its output files and eval
keys, and the TFRecord schema written here with `tf.train.Example` directly. Runs needing
two logical CPU devices or several processes run in subprocesses, since TensorFlow fixes its
devices at start-up.
"""
import glob
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from albert_tf import training
from albert_tf.checkpoints import CheckpointMismatchError, load_original_checkpoint
from albert_tf.config import AlbertConfig
from albert_tf.heads import AlbertPretrainer, pretraining_losses
from albert_tf.optimization import create_optimizer
from albert_tf.pretraining import (PretrainingSettings, check_pretraining_settings, evaluate_pretraining,
                                   pretraining_batch_stats, pretraining_loss, run_pretraining)
from albert_tf.pretraining_data_input import InputDataError, parse_record, pretraining_dataset

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(TESTS_DIR)
SEQ, PRED, VOCAB = 16, 4, 40


def tiny_config(**overrides):
    values = dict(vocab_size=VOCAB, embedding_size=8, hidden_size=16, num_hidden_layers=2,
                  num_hidden_groups=1, num_attention_heads=2, intermediate_size=32,
                  max_position_embeddings=32, hidden_dropout_prob=0.0,
                  attention_probs_dropout_prob=0.0)
    values.update(overrides)
    return AlbertConfig(**values)


def write_records(path, count, seq_length=SEQ, predictions=PRED, seed=0, drop=None):
    """Pretraining records in the original schema; tokens follow a skewed unigram law,
    so a model can lower the masked-LM loss quickly. `drop` omits one feature."""
    rng = np.random.default_rng(seed)
    probs = 1.0 / np.arange(1, VOCAB - 4) ** 1.2
    probs /= probs.sum()

    def ints(values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))

    with tf.io.TFRecordWriter(os.fspath(path)) as writer:
        for _ in range(count):
            length = int(rng.integers(seq_length // 2, seq_length + 1))
            ids = np.zeros(seq_length, np.int64)
            ids[:length] = 5 + rng.choice(VOCAB - 5, size=length, p=probs)
            mask = (np.arange(seq_length) < length).astype(np.int64)
            segments = ((np.arange(seq_length) >= length // 2) & (mask == 1)).astype(np.int64)
            n = int(rng.integers(1, predictions + 1))
            positions = np.zeros(predictions, np.int64)
            positions[:n] = np.sort(rng.choice(np.arange(1, length), n, replace=False))
            labels = np.zeros(predictions, np.int64)
            labels[:n] = ids[positions[:n]]
            weights = (np.arange(predictions) < n).astype(np.float32)
            features = {
                "input_ids": ints(ids), "input_mask": ints(mask), "segment_ids": ints(segments),
                "masked_lm_positions": ints(positions), "masked_lm_ids": ints(labels),
                "masked_lm_weights": tf.train.Feature(
                    float_list=tf.train.FloatList(value=list(weights))),
                "next_sentence_labels": ints([int(ids[0] % 2)]),
                "token_boundary": ints(np.ones(seq_length, np.int64)),  # ignored, as original
            }
            if drop:
                del features[drop]
            writer.write(tf.train.Example(
                features=tf.train.Features(feature=features)).SerializeToString())
    return os.fspath(path)


def settings_for(tmp_path, input_file, **overrides):
    values = dict(input_file=input_file, output_dir=os.fspath(tmp_path / "out"),
                  max_seq_length=SEQ, max_predictions_per_seq=PRED, train_batch_size=8,
                  eval_batch_size=8, num_train_steps=6, num_warmup_steps=1,
                  learning_rate=1e-2, save_checkpoints_steps=3, log_steps=1,
                  iterations_per_loop=3, max_eval_steps=2, seed=1)
    values.update(overrides)
    return PretrainingSettings(**values)


def read_scalars(logdir, tag):
    """{step: value} of a TensorBoard scalar (later files win)."""
    values = {}
    for path in sorted(glob.glob(os.path.join(logdir, "events.out.tfevents.*")),
                       key=os.path.getmtime):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag == tag:
                    values[event.step] = float(tf.make_ndarray(value.tensor))
    return values


def run_python(script, *args, env=None, timeout=600):
    full_env = dict(os.environ, PYTHONPATH=REPO_ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-c", script, *args], capture_output=True,
                          text=True, env=full_env, timeout=timeout, cwd=REPO_ROOT)


# --- The train step ----------------------------------------------------------------------

def _one_device_trainer(accumulation, batch):
    keras.utils.set_random_seed(3)
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    with strategy.scope():
        model = AlbertPretrainer(tiny_config())
        optimizer = create_optimizer(1e-2, 10, 0, optimizer="lamb", aggregate_gradients=False)
        optimizer.build(model.trainable_variables)
    trainer = training.Trainer(strategy, model, optimizer, pretraining_loss,
                               pretraining_batch_stats, gradient_accumulation_steps=accumulation)
    iterator = iter(tf.data.Dataset.from_tensors(batch).repeat())
    return trainer, model, iterator


def _batch(path, size=8):
    dataset = tf.data.TFRecordDataset(path).map(lambda r: parse_record(r, SEQ, PRED))
    dataset = dataset.batch(size)
    return next(iter(dataset))


@pytest.fixture(scope="module")
def accumulation_runs(tmp_path_factory):
    """Two updates of the same seeded model on one batch, without and with 4 micro-batches,
    and the original's loss of that batch before any update (the reference)."""
    batch = _batch(write_records(tmp_path_factory.mktemp("acc") / "d.tfrecord", 8))
    runs = {}
    for accumulation in (1, 4):
        trainer, model, iterator = _one_device_trainer(accumulation, batch)
        if accumulation == 1:
            runs["expected"] = float(pretraining_losses(model(batch, training=True),
                                                        batch)["total_loss"])
        losses = [trainer.train(iterator, 1) for _ in range(2)]
        runs[accumulation] = (losses, [v.numpy() for v in model.trainable_variables])
    return runs


def test_train_step_loss_is_the_original_formula_on_the_whole_batch(accumulation_runs):
    first = accumulation_runs[1][0][0]
    assert first["loss"] == pytest.approx(accumulation_runs["expected"], rel=1e-6)
    assert first["loss"] == pytest.approx(first["masked_lm_loss"]
                                          + first["sentence_order_loss"], rel=1e-6)


def test_gradient_accumulation_gives_the_big_batch_update(accumulation_runs):
    (losses_1, weights_1), (losses_4, weights_4) = accumulation_runs[1], accumulation_runs[4]
    np.testing.assert_allclose([m["loss"] for m in losses_4], [m["loss"] for m in losses_1],
                               rtol=1e-5)
    for a, b in zip(weights_1, weights_4):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)


# --- One device vs mirrored (two logical CPU devices) -------------------------------------

_STRATEGIES_SCRIPT = textwrap.dedent("""
    import json, os, sys
    from albert_tf import training
    training.configure_cpu_devices(2)
    sys.path.insert(0, sys.argv[1])
    import pathlib
    from test_pretraining import tiny_config, settings_for, read_scalars
    from albert_tf.pretraining import run_pretraining
    tmp = pathlib.Path(sys.argv[2])
    report = {}
    for name in ("one_device", "mirrored"):
        settings = settings_for(tmp / name, sys.argv[3], num_train_steps=16,
                                save_checkpoints_steps=8, iterations_per_loop=4,
                                do_eval=True, max_eval_steps=4, train_batch_size=16,
                                export_original_every=12)
        strategy = training.create_strategy(name)
        results = run_pretraining(tiny_config(), settings, strategy)
        losses = read_scalars(os.path.join(settings.output_dir, "summaries", "train"), "loss")
        report[name] = {"replicas": strategy.num_replicas_in_sync, "eval": results,
                        "losses": [losses[s] for s in sorted(losses)]}
    print(json.dumps(report))
""")


@pytest.fixture(scope="module")
def two_strategies(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("strategies")
    data = write_records(tmp / "train.tfrecord", 200)
    result = run_python(_STRATEGIES_SCRIPT, TESTS_DIR, os.fspath(tmp), data)
    assert result.returncode == 0, result.stderr[-4000:]
    return tmp, json.loads(result.stdout.strip().splitlines()[-1])


def test_mirrored_over_two_devices_agrees_with_one_device(two_strategies):
    _, report = two_strategies
    assert report["mirrored"]["replicas"] == 2
    one, two = report["one_device"]["losses"], report["mirrored"]["losses"]
    assert len(one) == len(two) == 16
    np.testing.assert_allclose(two[:5], one[:5], rtol=1e-4)
    assert report["mirrored"]["eval"]["masked_lm_loss"] == pytest.approx(
        report["one_device"]["eval"]["masked_lm_loss"], rel=1e-3)


def test_loss_falls(two_strategies):
    _, report = two_strategies
    losses = report["one_device"]["losses"]
    assert np.mean(losses[-3:]) < np.mean(losses[:3]) - 0.3


def test_output_files_are_the_originals(two_strategies):
    tmp, report = two_strategies
    out = tmp / "one_device" / "out"
    # Original-format exports (every 12 steps and at the end), the best copy and
    # eval_results.txt (SPEC §4.6); resumable state every 8 steps.
    assert (out / "train_state" / "ckpt-8.index").exists()
    for name in ("model.ckpt-12.index", "model.ckpt-16.index",
                 "model.ckpt-16.data-00000-of-00001",
                 "model.ckpt-best.index", "model.ckpt-best.data-00000-of-00001",
                 "checkpoint", "eval_results.txt"):
        assert (out / name).exists(), name
    lines = (out / "eval_results.txt").read_text().splitlines()
    keys = [line.split(" = ")[0] for line in lines if " = " in line]
    assert keys == ["global_step", "loss", "masked_lm_accuracy", "masked_lm_loss",
                    "sentence_order_accuracy", "sentence_order_loss"]
    assert lines[0] == "global_step = 16"
    assert any(line.startswith("saved ") for line in lines)
    names = {name for name, _ in tf.train.list_variables(os.fspath(out / "model.ckpt-best"))}
    assert {"bert/embeddings/word_embeddings", "cls/predictions/output_bias",
            "cls/seq_relationship/output_weights", "global_step"} <= names
    assert not any("adam" in name for name in names)
    model = AlbertPretrainer(tiny_config())
    report_ = load_original_checkpoint(model, os.fspath(out / "model.ckpt-16"), strict=True)
    assert not report_.unused


def test_finished_run_returns_at_once_and_eval_only_reads_its_state(two_strategies):
    tmp, report = two_strategies
    data = os.fspath(tmp / "train.tfrecord")
    settings = settings_for(tmp / "one_device", data, num_train_steps=16,
                            train_batch_size=16, do_eval=False)
    before = sorted(os.listdir(tmp / "one_device" / "out" / "train_state"))
    start = time.perf_counter()
    assert run_pretraining(tiny_config(), settings) == {"global_step": 16}
    assert time.perf_counter() - start < 30
    assert sorted(os.listdir(tmp / "one_device" / "out" / "train_state")) == before
    eval_only = settings_for(tmp / "one_device", data, num_train_steps=16, do_train=False,
                             do_eval=True, max_eval_steps=4)
    results = run_pretraining(tiny_config(), eval_only)
    assert results["global_step"] == 16
    assert results["masked_lm_loss"] == pytest.approx(
        report["one_device"]["eval"]["masked_lm_loss"], rel=1e-5)


# --- Loops: iterations_per_loop; evaluation's batches ------------------------------------

def test_iterations_per_loop_steps_run_in_one_host_call(tmp_path, monkeypatch):
    """The original's --iterations_per_loop: that many steps inside one call into the
    compiled loop (one trace, reused), ending early only for a due checkpoint; the losses of
    every step are still logged (--log_steps=1)."""
    data = write_records(tmp_path / "d.tfrecord", 40)
    calls, train_steps = [], training.Trainer.train_steps

    def counting(self, iterator, num_steps):
        before = int(self.optimizer.iterations)
        per_step = train_steps(self, iterator, num_steps)
        calls.append((num_steps, int(self.optimizer.iterations) - before, len(per_step["loss"]),
                      self._train_loop.experimental_get_tracing_count()))
        return per_step

    monkeypatch.setattr(training.Trainer, "train_steps", counting)
    settings = settings_for(tmp_path, data, num_train_steps=10, iterations_per_loop=4,
                            save_checkpoints_steps=8, log_steps=1)
    assert run_pretraining(tiny_config(), settings) == {"global_step": 10}
    assert calls == [(4, 4, 4, 1), (4, 4, 4, 1), (2, 2, 2, 1)]
    losses = read_scalars(os.path.join(settings.output_dir, "summaries", "train"), "loss")
    assert sorted(losses) == list(range(1, 11))


def test_eval_reads_max_eval_steps_batches_of_the_training_files_in_order(tmp_path):
    """As the original: `max_eval_steps` static batches of `eval_batch_size` records, read
    from the training files in order and repeated (so a fixed number of steps never runs
    out). Here 3 batches of 4 from 10 records: records 0-9, then 0 and 1 again; every
    metric is over exactly those 12 examples. Reference: numpy on the model's outputs."""
    data = write_records(tmp_path / "d.tfrecord", 10)
    settings = settings_for(tmp_path, data, num_train_steps=1, save_checkpoints_steps=1,
                            iterations_per_loop=1, do_eval=True, eval_batch_size=4,
                            max_eval_steps=3)
    results = run_pretraining(tiny_config(), settings)
    model = AlbertPretrainer(tiny_config())
    load_original_checkpoint(model, os.path.join(settings.output_dir, "model.ckpt-1"),
                             strict=True)
    records = list(tf.data.TFRecordDataset(data).map(lambda r: parse_record(r, SEQ, PRED)))
    assert len(records) == 10
    batch = {name: tf.stack([records[i % 10][name] for i in range(12)])
             for name in records[0]}
    outputs = model(batch, training=False)
    mlm = tf.nn.log_softmax(outputs["mlm_logits"]).numpy()
    sop = tf.nn.log_softmax(outputs["sop_logits"]).numpy()
    ids, weights = batch["masked_lm_ids"].numpy(), batch["masked_lm_weights"].numpy()
    labels = batch["next_sentence_labels"].numpy()[:, 0]
    nll = -np.take_along_axis(mlm, ids[..., None], -1)[..., 0]
    sop_nll = -sop[np.arange(12), labels]
    assert results["global_step"] == 1
    assert results["masked_lm_accuracy"] == pytest.approx(
        np.sum(weights * (mlm.argmax(-1) == ids)) / np.sum(weights), abs=1e-6)
    assert results["masked_lm_loss"] == pytest.approx(
        np.sum(weights * nll) / np.sum(weights), rel=1e-5)
    assert results["sentence_order_accuracy"] == pytest.approx(
        np.mean(sop.argmax(-1) == labels), abs=1e-6)
    assert results["sentence_order_loss"] == pytest.approx(np.mean(sop_nll), rel=1e-5)
    # The same evaluation of given weights, as a library call.
    again = evaluate_pretraining(model, data, settings, global_step=1)
    assert again.keys() == results.keys()
    assert again == pytest.approx(results, rel=1e-6)


def test_tpu_flags_map_onto_the_tpu_strategy(monkeypatch):
    """--use_tpu, --tpu_name (else --master), --tpu_zone and --gcp_project choose TPUStrategy
    with the original's TPU resolution; --iterations_per_loop reaches the settings."""
    from absl import flags
    from albert_tf import cli
    cli.define_pretraining_flags()
    seen = []

    class FakeStrategy:
        num_replicas_in_sync = 8

    def create_strategy(name, **kwargs):
        seen.append((name, kwargs))
        return FakeStrategy()

    monkeypatch.setattr(training, "create_strategy", create_strategy)
    from absl.testing import flagsaver
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()
    with flagsaver.flagsaver(use_tpu=True, tpu_name="my-tpu", tpu_zone="us-central1-b",
                             gcp_project="proj", master="grpc://10.0.0.2:8470",
                             iterations_per_loop=7, input_file="x", output_dir="y"):
        cli.strategy_from_flags(flags.FLAGS)
        settings = cli.pretraining_settings_from_flags(flags.FLAGS)
    with flagsaver.flagsaver(use_tpu=True, master="grpc://10.0.0.2:8470"):
        cli.strategy_from_flags(flags.FLAGS)
    assert seen[0] == ("tpu", dict(num_gpus=None, tpu="my-tpu", tpu_zone="us-central1-b",
                                   gcp_project="proj"))
    assert seen[1][1]["tpu"] == "grpc://10.0.0.2:8470"
    assert settings.iterations_per_loop == 7 and settings.use_one_hot_embeddings
    with flagsaver.flagsaver(use_tpu=True, distribution_strategy="mirrored"):
        with pytest.raises(training.SettingsError, match="--use_tpu contradicts"):
            cli.strategy_from_flags(flags.FLAGS)


# --- Mixed precision ---------------------------------------------------------------------

@pytest.mark.parametrize("precision", [pytest.param("bf16", marks=pytest.mark.slow), "fp16"])
def test_mixed_precision_trains_with_finite_losses(precision, tmp_path):
    data = write_records(tmp_path / "d.tfrecord", 40)
    settings = settings_for(tmp_path, data, mixed_precision=precision, num_train_steps=4,
                            save_checkpoints_steps=4, iterations_per_loop=4, log_steps=4)
    assert run_pretraining(tiny_config(), settings) == {"global_step": 4}
    assert keras.mixed_precision.global_policy().name == "float32"  # restored afterwards
    losses = read_scalars(os.path.join(settings.output_dir, "summaries", "train"), "loss")
    assert np.isfinite(losses[4])


# --- Bad input: clear errors before training ----------------------------------------------

def test_no_matching_input_file_names_the_pattern(tmp_path):
    settings = settings_for(tmp_path, os.fspath(tmp_path / "nothing-*.tfrecord"))
    with pytest.raises(InputDataError, match="nothing-"):
        run_pretraining(tiny_config(), settings)


def test_records_of_another_length_name_feature_expected_and_found(tmp_path):
    data = write_records(tmp_path / "d.tfrecord", 4, seq_length=12)
    settings = settings_for(tmp_path, data)  # expects 16
    with pytest.raises(InputDataError, match=r"'input_ids' has 12 values.*expect 16"):
        run_pretraining(tiny_config(), settings)


def test_records_with_other_predictions_name_the_flag(tmp_path):
    data = write_records(tmp_path / "d.tfrecord", 4, predictions=6)
    with pytest.raises(InputDataError, match="masked_lm_positions.*max_predictions_per_seq=6"):
        run_pretraining(tiny_config(), settings_for(tmp_path, data))


def test_records_missing_a_feature_name_it(tmp_path):
    data = write_records(tmp_path / "d.tfrecord", 4, drop="next_sentence_labels")
    with pytest.raises(InputDataError, match="no feature 'next_sentence_labels'"):
        run_pretraining(tiny_config(), settings_for(tmp_path, data))


def test_init_checkpoint_of_another_config_is_refused(tmp_path, fixtures_dir):
    data = write_records(tmp_path / "d.tfrecord", 16)
    settings = settings_for(tmp_path, data,
                            init_checkpoint=os.fspath(fixtures_dir / "original_tiny" /
                                                      "model.ckpt"))
    with pytest.raises(CheckpointMismatchError, match="Shape mismatch"):
        run_pretraining(tiny_config(), settings)


def test_resuming_with_another_config_is_refused(tmp_path):
    data = write_records(tmp_path / "d.tfrecord", 16)
    os.makedirs(tmp_path / "out")
    (tmp_path / "out" / "albert_config.json").write_text(tiny_config().to_json_string())
    with pytest.raises(training.SettingsError, match="hidden_size 16 there, 24 now"):
        run_pretraining(tiny_config(hidden_size=24), settings_for(tmp_path, data))


@pytest.mark.parametrize("overrides,message", [
    (dict(train_batch_size=9), "divisible by 2 replica"),
    (dict(train_batch_size=8, gradient_accumulation_steps=3), "divisible"),
    (dict(do_train=False, do_eval=False), "do_train or --do_eval"),
    (dict(max_seq_length=64), "max_position_embeddings"),
    (dict(masked_lm_budget=0.2), "online masking"),
])
def test_impossible_settings_are_refused_before_training(overrides, message, tmp_path):
    settings = settings_for(tmp_path, "unused", **overrides)
    with pytest.raises(training.SettingsError, match=message):
        check_pretraining_settings(tiny_config(), settings, num_replicas=2)


def test_nan_loss_stops_and_keeps_the_last_checkpoint(tmp_path):
    data = write_records(tmp_path / "d.tfrecord", 40)
    settings = settings_for(tmp_path, data, optimizer="adamw", learning_rate=1e30,
                            num_warmup_steps=0, num_train_steps=10, save_checkpoints_steps=1,
                            iterations_per_loop=1)
    with pytest.raises(training.NonFiniteLossError, match=r"ckpt-\d+ \(step \d+\)") as error:
        run_pretraining(tiny_config(), settings)
    saved = training.TrainingCheckpoints.step_of(
        tf.train.latest_checkpoint(os.path.join(settings.output_dir, "train_state")))
    assert f"ckpt-{saved} (step {saved})" in str(error.value)
    assert saved < 10


def test_command_line_reports_bad_input_in_one_line(tmp_path):
    config = tmp_path / "config.json"
    config.write_text(tiny_config().to_json_string())
    result = subprocess.run(
        [sys.executable, "run_pretraining.py", f"--input_file={tmp_path}/none-*",
         f"--output_dir={tmp_path}/out", f"--albert_config_file={config}",
         f"--max_seq_length={SEQ}", f"--max_predictions_per_seq={PRED}"],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=300,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert result.returncode == 1
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("ERROR: ")]
    assert len(error_lines) == 1 and "none-*" in error_lines[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr


# --- Slow: kill -9 and resume; two worker processes ---------------------------------------

def _cli_args(tmp_path, data, config, out, steps, extra=()):
    return [sys.executable, "run_pretraining.py", f"--input_file={data}",
            f"--output_dir={out}", f"--albert_config_file={config}",
            f"--max_seq_length={SEQ}", f"--max_predictions_per_seq={PRED}",
            "--train_batch_size=8", f"--num_train_steps={steps}", "--num_warmup_steps=2",
            "--learning_rate=0.01", "--save_checkpoints_steps=4", "--iterations_per_loop=1",
            "--log_steps=1", "--seed=7", *extra]


@pytest.mark.slow
def test_kill_9_then_restart_resumes_at_the_same_step_with_the_same_losses(tmp_path):
    data = write_records(tmp_path / "d.tfrecord", 100)
    config = tmp_path / "config.json"
    config.write_text(tiny_config(hidden_dropout_prob=0.1).to_json_string())
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    steps = 40
    reference = subprocess.run(_cli_args(tmp_path, data, config, tmp_path / "a", steps),
                               cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert reference.returncode == 0, reference.stderr[-3000:]

    out = tmp_path / "b"
    process = subprocess.Popen(_cli_args(tmp_path, data, config, out, steps), cwd=REPO_ROOT,
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = out / "train_state"
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        latest = tf.train.latest_checkpoint(os.fspath(state)) if state.exists() else None
        if latest and training.TrainingCheckpoints.step_of(latest) >= 8:
            break
        time.sleep(0.2)
    assert process.poll() is None, "training ended before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    killed_at = training.TrainingCheckpoints.step_of(tf.train.latest_checkpoint(os.fspath(state)))
    assert killed_at < steps

    resumed = subprocess.run(_cli_args(tmp_path, data, config, out, steps), cwd=REPO_ROOT,
                             env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"Resuming from {state}/ckpt-{killed_at} at step {killed_at}" in resumed.stderr
    want = read_scalars(os.fspath(tmp_path / "a" / "summaries" / "train"), "loss")
    got = read_scalars(os.fspath(out / "summaries" / "train"), "loss")
    after = [s for s in sorted(want) if s > killed_at]
    assert after and max(after) == steps
    np.testing.assert_allclose([got[s] for s in after], [want[s] for s in after], rtol=1e-5)


_WORKER_SCRIPT = textwrap.dedent("""
    import json, os, sys
    sys.path.insert(0, sys.argv[1])
    import pathlib
    from albert_tf import training
    from test_pretraining import tiny_config, settings_for, read_scalars
    from albert_tf.pretraining import run_pretraining
    strategy = training.create_strategy("multi_worker_mirrored")
    settings = settings_for(pathlib.Path(sys.argv[2]), sys.argv[3], num_train_steps=8,
                            save_checkpoints_steps=4, iterations_per_loop=4,
                            train_batch_size=16)
    result = run_pretraining(tiny_config(), settings, strategy)
    print(json.dumps({"replicas": strategy.num_replicas_in_sync, "result": result}))
""")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_multi_worker_mirrored_with_two_processes_trains_on_the_global_batch(tmp_path):
    data = write_records(tmp_path / "d.tfrecord", 200)
    ports = [_free_port(), _free_port()]
    workers = [f"127.0.0.1:{port}" for port in ports]
    processes = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = dict(os.environ, PYTHONPATH=REPO_ROOT, TF_CPP_MIN_LOG_LEVEL="2",
                   TF_CONFIG=json.dumps(tf_config))
        processes.append(subprocess.Popen(
            [sys.executable, "-c", _WORKER_SCRIPT, TESTS_DIR, os.fspath(tmp_path), data],
            env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [p.communicate(timeout=600) for p in processes]
    for process, (stdout, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr[-4000:]
    report = json.loads(outputs[0][0].strip().splitlines()[-1])
    assert report == {"replicas": 2, "result": {"global_step": 8}}
    out = tmp_path / "out"
    assert (out / "model.ckpt-8.index").exists()
    assert not list(out.glob("train_state/.scratch*"))
    assert (out / "train_state" / "input-worker-1").exists()
    distributed = read_scalars(os.fspath(out / "summaries" / "train"), "loss")
    assert sorted(distributed) == list(range(1, 9))

    # Reference for step 1: the original loss of the global batch, i.e. both workers' first
    # batches together (each worker reads its own shard), from the same seeded initial
    # weights, computed here in one process.
    keras.utils.set_random_seed(1)  # the run's global seed also seeds its input shuffles
    parts = [next(iter(pretraining_dataset([data], 8, SEQ, PRED, True, num_shards=2,
                                           shard_index=i, seed=1))) for i in range(2)]
    batch = {name: tf.concat([p[name] for p in parts], 0) for name in parts[0]}
    keras.utils.set_random_seed(1)
    model = AlbertPretrainer(tiny_config())
    expected = pretraining_losses(model(batch, training=True), batch)["total_loss"]
    assert distributed[1] == pytest.approx(float(expected), rel=1e-5)
