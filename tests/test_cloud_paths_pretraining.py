"""run_pretraining.py with every path on an object store (`ram://`), as on `gs://`.

`ram://` is TensorFlow's in-memory filesystem: reached only through `tf.io.gfile`, with no
local folder behind it, so any `open`, `os.path` or `os.replace` on a user path fails or
writes a local `ram:` folder (which the `ram_dir` fixture refuses). The same scenario runs on
a local folder; both must give the same losses, step for step.

The scenario: the entry point's `main`, in this process, trains from the original tiny
fixture (`tests/fixtures/original_tiny`, its checkpoint as `--init_checkpoint` folder) on two
TFRecord files in the original feature layout for 8 steps; the run is interrupted (Ctrl-C)
after the checkpoint of step 4 and run again with the same flags, which resumes at step 4,
trains to 8 and evaluates. References: the loss of the first step recomputed from the
original formula on the first batch, and an uninterrupted run (same losses after the
resume: same weights, optimizer state and input position).
"""
import json
import pathlib
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from albert_tf import training
from albert_tf.checkpoints import load_original_checkpoint
from albert_tf.config import AlbertConfig
from albert_tf.heads import AlbertPretrainer, pretraining_losses
from albert_tf.pretraining_data_input import pretraining_dataset
from conftest import ORIGINAL_TINY, run_entry_point, stage_to_ram
from test_pretraining import PRED, SEQ, write_records

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
import run_pretraining  # noqa: E402

STEPS, INTERRUPT_AT, BATCH = 8, 4, 4


def stage_inputs(root):
    """The run's inputs under `root`: data files, config, init checkpoint folder."""
    tf.io.gfile.makedirs(f"{root}/data")
    for part in range(2):
        write_records(f"{root}/data/part-{part}.tfrecord", 12, seed=part)
    # The fixture's architecture cut to one layer of one sub-block (a quicker trace); its
    # group_0/inner_group_0 weights come from the fixture checkpoint, the rest is unused.
    config = json.loads((ORIGINAL_TINY / "albert_config.json").read_text())
    config.update(num_hidden_layers=1, num_hidden_groups=1, inner_group_num=1)
    tf.io.gfile.makedirs(f"{root}/config")
    with tf.io.gfile.GFile(f"{root}/config/albert_config.json", "w") as f:
        f.write(json.dumps(config))
    init = f"{root}/init"
    tf.io.gfile.makedirs(init)
    for name in ("checkpoint", "model.ckpt.index", "model.ckpt.data-00000-of-00001"):
        stage_to_ram(ORIGINAL_TINY / name, f"{init}/{name}")  # any filesystem, via gfile
    return dict(input_file=f"{root}/data/part-*", output_dir=f"{root}/out",
                albert_config_file=f"{root}/config/albert_config.json", init_checkpoint=init,
                max_seq_length=SEQ, max_predictions_per_seq=PRED, train_batch_size=BATCH,
                eval_batch_size=BATCH, num_train_steps=STEPS, num_warmup_steps=0,
                learning_rate=0.05, save_checkpoints_steps=2, iterations_per_loop=2,
                log_steps=1, max_eval_steps=3, do_train=True, do_eval=True, seed=1)


def run_main(flag_values, interrupt_at=None, monkeypatch=None):
    """Runs run_pretraining's main; with `interrupt_at`, Ctrl-C once training reached that
    step (the entry point then exits with status 130)."""
    run_pretraining.define_flags()
    if interrupt_at is None:
        return run_entry_point(run_pretraining.main, ["run_pretraining.py"], **flag_values)
    train_steps = training.Trainer.train_steps

    def interrupted(self, iterator, num_steps):
        if int(self.optimizer.iterations) >= interrupt_at:
            raise KeyboardInterrupt
        return train_steps(self, iterator, num_steps)

    with monkeypatch.context() as patch:
        patch.setattr(training.Trainer, "train_steps", interrupted)
        with pytest.raises(SystemExit) as exit_:
            run_entry_point(run_pretraining.main, ["run_pretraining.py"], **flag_values)
    assert exit_.value.code == 130


def read_scalars(folder, tag):
    """{step: value} of a TensorBoard scalar, read through tf.io.gfile (later files win)."""
    values = {}
    for path in sorted(tf.io.gfile.glob(f"{folder}/events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag == tag:
                    values[event.step] = float(tf.make_ndarray(value.tensor))
    return values


def interrupted_then_resumed(root, monkeypatch, caplog):
    flag_values = stage_inputs(root)
    out = flag_values["output_dir"]
    run_main(flag_values, interrupt_at=INTERRUPT_AT, monkeypatch=monkeypatch)
    assert tf.train.latest_checkpoint(f"{out}/train_state") == f"{out}/train_state/ckpt-4"
    assert not tf.io.gfile.exists(f"{out}/train_state/ckpt-6.index")
    with caplog.at_level("INFO"):
        run_main(flag_values)
    assert f"Resuming from {out}/train_state/ckpt-4 at step 4" in caplog.text
    return flag_values


_LOSSES = {}


def storage_root(storage, request, tmp_path):
    """A fresh folder on `ram://` (the `ram_dir` fixture) or on the local disk."""
    return request.getfixturevalue("ram_dir") if storage == "ram" else str(tmp_path / "local")


@pytest.mark.parametrize("storage", ["ram", "local"])
def test_pretraining_interrupted_and_resumed_writes_every_output_there(
        storage, request, tmp_path, monkeypatch, caplog):
    flag_values = interrupted_then_resumed(storage_root(storage, request, tmp_path),
                                           monkeypatch, caplog)
    out = flag_values["output_dir"]
    names = set(tf.io.gfile.listdir(out))
    assert {"albert_config.json", "eval_results.txt", "checkpoint", "model.ckpt-8.index",
            "model.ckpt-8.data-00000-of-00001", "model.ckpt-best.index",
            "model.ckpt-best.data-00000-of-00001"} <= names
    assert not [name for name in names if "tmp" in name]  # nothing left half-written
    assert {name.rstrip("/") for name in tf.io.gfile.listdir(f"{out}/train_state")} >= {
        "checkpoint", "ckpt-8.index", "input-worker-0"}
    assert tf.io.gfile.exists(f"{out}/train_state/input-worker-0/ckpt-8.index")
    saved = AlbertConfig.from_json_file(f"{out}/albert_config.json")
    assert saved == AlbertConfig.from_json_file(flag_values["albert_config_file"])

    with tf.io.gfile.GFile(f"{out}/eval_results.txt") as f:
        lines = f.read().splitlines()
    assert lines[0] == "global_step = 8"
    assert f"saved {out}/model.ckpt-8.index to {out}/model.ckpt-best.index" in lines
    best = tf.compat.v1.train.NewCheckpointReader(f"{out}/model.ckpt-best")
    assert best.get_tensor("global_step") == 8

    losses = read_scalars(f"{out}/summaries/train", "loss")
    assert sorted(losses) == list(range(1, STEPS + 1))
    assert read_scalars(f"{out}/summaries/eval", "masked_lm_accuracy").keys() == {8}

    # Step 1's loss: the original formula on the first batch of the same seeded input,
    # from the init checkpoint's weights.
    keras.utils.set_random_seed(1)
    files = sorted(tf.io.gfile.glob(flag_values["input_file"]))
    first = next(iter(pretraining_dataset(files, BATCH, SEQ, PRED, True, seed=1)))
    keras.utils.set_random_seed(1)
    model = AlbertPretrainer(AlbertConfig.from_json_file(flag_values["albert_config_file"]))
    load_original_checkpoint(model, flag_values["init_checkpoint"])
    expected = pretraining_losses(model(first, training=True), first)["total_loss"]
    assert losses[1] == pytest.approx(float(expected), rel=1e-5)
    _LOSSES[storage] = losses


def test_ram_and_local_runs_and_an_uninterrupted_run_give_the_same_losses(
        ram_dir, tmp_path, monkeypatch, caplog):
    """Same losses at every step on ram:// and on a local disk, each interrupted at step 4
    and resumed, and in one uninterrupted run: the resume restored the weights, the
    optimizer, the dropout generators and the input position."""
    for storage, root in (("ram", ram_dir), ("local", str(tmp_path / "local"))):
        if storage not in _LOSSES:
            out = interrupted_then_resumed(root, monkeypatch, caplog)["output_dir"]
            _LOSSES[storage] = read_scalars(f"{out}/summaries/train", "loss")
    flag_values = stage_inputs(str(tmp_path / "uninterrupted"))
    run_main(dict(flag_values, do_eval=False))
    reference = read_scalars(f"{flag_values['output_dir']}/summaries/train", "loss")
    steps = list(range(1, STEPS + 1))
    np.testing.assert_allclose([_LOSSES["ram"][s] for s in steps],
                               [_LOSSES["local"][s] for s in steps], rtol=1e-6)
    np.testing.assert_allclose([_LOSSES["ram"][s] for s in steps],
                               [reference[s] for s in steps], rtol=1e-5)
