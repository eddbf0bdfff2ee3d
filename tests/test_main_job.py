"""The demo job (albert_demo.py, albert_tf/demo/): every step on a reduced setting, its
artefacts, metrics and report.

The reduced setting (`JobSettings.quick()`: a slice of the corpus and of the tasks, a tiny
model, a few steps, a curve of 2 budgets x 2 seeds x 2 inits) runs once per module.
References: the artefacts are read back with the libraries that define their formats
(sentencepiece, tf.train checkpoints, TFRecord parsing, tf.saved_model, PNG signature); the
report's figures are recomputed here from the run's own files by a separate path (the
held-out accuracy from the checkpoint and the TFRecords with NumPy, the test accuracy from
test_results.tsv, the final masked-LM losses from the TensorBoard event files); the
commands in the report are parsed with the real flag definitions of run_pretraining.py and
run_classifier.py; the embedded tasks are checked against their definition on the corpus,
and word_order against a bag-of-words model (scikit-learn).

`-m slow` adds the full run (about 15 minutes on two cores) and runs the report's commands
as a user would.
"""

import json
import os
import pathlib
import re
import shlex
import subprocess
import sys

import numpy as np
import pytest
import sentencepiece as spm
import tensorflow as tf
from absl import flags

from albert_tf import AlbertConfig, AlbertPretrainer
from albert_tf import demo
from albert_tf.checkpoints import load_original_checkpoint
from albert_tf.demo import finetune, label_efficiency, steps, task_data, tfm_check
from albert_tf.demo import report as report_lib

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """(settings, run folder, {step: manifest}, log lines) of one reduced run."""
    settings = demo.JobSettings.quick()
    run_dir = tmp_path_factory.mktemp("runs") / "quick"
    lines = []
    manifests = demo.run_job(settings, run_dir, log=lines.append)
    return settings, run_dir, manifests, lines


def path_of(run_dir, shown):
    path = pathlib.Path(shown)
    return path if path.is_absolute() else demo.ROOT / path


# === Artefacts ===========================================================================


def test_every_step_wrote_its_manifest_last(quick_run):
    settings, run_dir, manifests, _ = quick_run
    assert list(manifests) == list(demo.STEPS)
    for step in demo.STEPS:
        manifest = json.loads((run_dir / step / "manifest.json").read_text())
        assert manifest["fingerprint"] == settings.fingerprint()
        assert manifest["seconds"] >= 0


def test_sentencepiece_model_loads_with_the_recipe_ids(quick_run):
    settings, run_dir, manifests, _ = quick_run
    model = spm.SentencePieceProcessor(
        model_file=str(path_of(run_dir, manifests["spm"]["files"]["spm_model_file"])))
    assert model.GetPieceSize() == settings.vocab_size
    # The original recipe's fixed ids (README's spm_train flags).
    assert [model.IdToPiece(i) for i in range(5)] == ["<pad>", "<unk>", "[CLS]", "[SEP]",
                                                      "[MASK]"]


def test_pretraining_records_parse_with_the_original_schema(quick_run):
    from albert_tf.pretraining_data_input import check_record_schema, resolve_input_files

    settings, run_dir, manifests, _ = quick_run
    for name in ("train", "heldout"):
        files = resolve_input_files(str(path_of(run_dir, manifests["data"]["files"][name])))
        check_record_schema(files, settings.max_seq_length, settings.max_predictions_per_seq)
        count = sum(1 for f in files for _ in tf.data.TFRecordDataset(f))
        assert count == manifests["data"]["figures"][f"{name}_instances"]


def test_checkpoints_reload_strictly(quick_run):
    _, run_dir, manifests, _ = quick_run
    config = AlbertConfig.from_json_file(run_dir / "albert_config.json")
    files = manifests["pretrain"]["files"]
    init = tf.train.load_checkpoint(str(path_of(run_dir, files["init_checkpoint"])))
    final = tf.train.load_checkpoint(str(path_of(run_dir, files["final_checkpoint"])))
    name = "bert/embeddings/word_embeddings"
    assert not np.array_equal(init.get_tensor(name), final.get_tensor(name))  # it trained
    for prefix in (files["init_checkpoint"], files["final_checkpoint"],
                   manifests["export"]["files"]["checkpoint"]):
        report = load_original_checkpoint(AlbertPretrainer(config), path_of(run_dir, prefix),
                                          strict=True)
        assert not report.missing


def test_saved_model_reloads_with_the_hub_signatures(quick_run):
    _, run_dir, manifests, _ = quick_run
    loaded = tf.saved_model.load(str(path_of(run_dir, manifests["export"]["files"]
                                             ["saved_model"])))
    assert {"tokens", "mlm", "sop", "text", "text_pair", "tokenization_info"} <= set(
        loaded.signatures)
    out = loaded.signatures["text"](text_a=tf.constant(["Return the value."]))
    assert out["input_ids"].numpy()[0, 0] == 2     # [CLS]


def test_export_figures_show_agreement(quick_run):
    _, _, manifests, _ = quick_run
    figures = manifests["export"]["figures"]
    assert figures["checkpoint_max_abs_diff"] == 0
    assert figures["saved_model_text_ids_equal_python"] is True
    assert figures["saved_model_tokens_max_abs_diff"] <= 1e-6
    assert figures["saved_model_text_max_abs_diff"] <= 1e-6
    assert figures["eager_vs_graph_max_abs_diff"] <= 1e-4


def test_report_files_exist(quick_run):
    _, run_dir, _, _ = quick_run
    assert (run_dir / "loss_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (run_dir / "report.md").read_text().startswith("# ALBERT demo run")
    json.loads((run_dir / "metrics.json").read_text())


def test_progress_is_printed_per_step_with_the_job_eta(quick_run):
    _, _, _, lines = quick_run
    for index, step in enumerate(demo.STEPS, 1):
        assert any(line.startswith(f"[{index}/{len(demo.STEPS)} {step}] finished")
                   for line in lines), step
        assert any(line.startswith(f"[{index}/{len(demo.STEPS)} {step}] ") and "job ETA"
                   in line for line in lines), step


# === The measurements: label efficiency, baseline, fill-the-mask, tf-models-official ====


def test_metrics_hold_the_curve_as_one_row_per_run(quick_run):
    settings, run_dir, _, _ = quick_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    rows = metrics["label_efficiency"]
    assert len(rows) == len(settings.curve_budgets) * len(settings.curve_seeds) * 2
    train_rows = len((run_dir / "curve_task" / "train.tsv").read_text().splitlines()) - 1
    budgets = {n or train_rows for n in settings.curve_budgets}
    assert {(r["labels"], r["seed"], r["init"]) for r in rows} == {
        (n, seed, init) for n in budgets for seed in settings.curve_seeds
        for init in ("pretrained", "random")}
    for row in rows:
        assert set(row) == {"labels", "seed", "init", "dev_accuracy", "test_accuracy"}
        assert 0 <= row["dev_accuracy"] <= 1 and 0 <= row["test_accuracy"] <= 1


def test_baseline_rows_cover_the_same_budgets_on_both_tasks(quick_run):
    settings, run_dir, _, _ = quick_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    rows = metrics["baseline"]
    assert {r["task"] for r in rows} == {task_data.WORD_ORDER_NAME, task_data.TASK_NAME}
    assert len(rows) == 2 * len(settings.curve_budgets) * len(settings.curve_seeds)
    for row in rows:
        assert set(row) == {"task", "labels", "seed", "dev_accuracy", "test_accuracy"}


def test_mlm_loss_check_is_recomputed_from_both_training_logs(quick_run):
    """albert_tf's value from run_pretraining's TensorBoard scalars, tf-models-official's
    from the tfm_check step's own scalars (read with tf.summary's event format)."""
    settings, run_dir, manifests, _ = quick_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    check = metrics["mlm_loss_check"]
    assert set(check) == {"albert_tf", "tf_models_official"}
    ours = steps.read_scalars(path_of(run_dir, manifests["pretrain"]["files"]["output_dir"])
                              / "summaries" / "train")["masked_lm_loss"]
    theirs = steps.read_scalars(path_of(run_dir, manifests["tfm_check"]["files"]
                                        ["summaries"]))["masked_lm_loss"]
    for value, points in ((check["albert_tf"], ours), (check["tf_models_official"], theirs)):
        assert [step for step, _ in points][-1] == settings.num_train_steps
        assert value == pytest.approx(tfm_check.final_loss(points, total_steps=settings
                                                           .num_train_steps), rel=1e-5)
        assert 0 < value < np.log(settings.vocab_size) + 1


def test_unigram_reference_is_recomputed_from_the_records(quick_run):
    """The frequencies-only figures, recomputed from the TFRecords with NumPy."""
    from albert_tf.pretraining_data_input import parse_record, resolve_input_files

    settings, run_dir, manifests, _ = quick_run
    unigram = json.loads((run_dir / "metrics.json").read_text())["heldout_eval"]["unigram"]

    def targets(name, limit):
        files = resolve_input_files(str(path_of(run_dir, manifests["data"]["files"][name])))
        records = tf.data.TFRecordDataset(files).map(lambda r: parse_record(
            r, settings.max_seq_length, settings.max_predictions_per_seq)).take(limit)
        return np.concatenate([r["masked_lm_ids"].numpy()[r["masked_lm_weights"].numpy() > 0]
                               for r in records])

    figures = manifests["data"]["figures"]
    train = targets("train", figures["train_instances"] // settings.eval_batch_size
                    * settings.eval_batch_size)
    heldout = targets("heldout", manifests["eval"]["figures"]["final"]["examples"])
    counts = np.bincount(train, minlength=settings.vocab_size)
    smoothed = (counts + 1) / (counts.sum() + settings.vocab_size)
    assert unigram["heldout_unigram_loss"] == pytest.approx(-np.log(smoothed[heldout]).mean())
    assert unigram["heldout_most_frequent_accuracy"] == pytest.approx(
        np.mean(heldout == counts.argmax()))


def test_fill_the_mask_shows_top_predictions_before_and_after(quick_run):
    _, run_dir, _, _ = quick_run
    rows = json.loads((run_dir / "metrics.json").read_text())["fill_mask"]
    assert rows
    for row in rows:
        assert "[MASK]" in row["text"] and row["answer"] not in ("", "[MASK]")
        for name in ("init", "pretrained"):
            probabilities = [p for _, p in row[name]]
            assert len(probabilities) == 5 and probabilities == sorted(probabilities,
                                                                       reverse=True)


def test_report_has_every_section_and_the_curve_table(quick_run):
    settings, run_dir, _, _ = quick_run
    text = (run_dir / "report.md").read_text()
    for section in report_lib.SECTIONS:
        assert f"\n## {section}\n" in text, section
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for point in metrics["label_efficiency_table"]:
        if point["init"] == "pretrained":
            assert re.search(rf"\| {point['labels']} \| {len(settings.curve_seeds)} \+ "
                             rf"{len(settings.curve_seeds)} \| "
                             + re.escape(f"{100 * point['test_mean']:.1f}%"), text)


def test_curve_runs_reset_to_the_same_start_as_a_new_model(quick_run):
    """Resetting the shared model and optimizer gives the losses of a freshly built one
    (so the runs of the curve are independent although nothing is traced again)."""
    settings, run_dir, manifests, _ = quick_run
    config = AlbertConfig.from_json_file(run_dir / "albert_config.json")
    checkpoints = {init: path_of(run_dir, manifests["pretrain"]["files"][key])
                   for init, key in (("pretrained", "final_checkpoint"),
                                     ("random", "init_checkpoint"))}
    rng = np.random.default_rng(0)
    features = {"input_ids": rng.integers(5, settings.vocab_size, (8, 16)).astype(np.int32),
                "input_mask": np.ones((8, 16), np.int32),
                "segment_ids": np.zeros((8, 16), np.int32)}
    labels = rng.integers(0, 2, 8).astype(np.int32)
    batches = label_efficiency.batch_order(range(8), 4, 3, seed=1)

    def losses(runner, init, seed):
        runner.reset(init, seed)
        return runner.train(features, labels, batches)

    shared = label_efficiency.CurveRunner(config, checkpoints, 1e-3, 3, 1)
    first = losses(shared, "pretrained", 1)
    losses(shared, "random", 2)                       # another run in between
    again = losses(shared, "pretrained", 1)
    fresh = losses(label_efficiency.CurveRunner(config, checkpoints, 1e-3, 3, 1),
                   "pretrained", 1)
    assert again == pytest.approx(first, abs=1e-6)
    assert fresh == pytest.approx(first, abs=1e-6)
    assert losses(shared, "random", 1) != pytest.approx(first, abs=1e-6)


# === The report's figures come from the run ==============================================


def heldout_mlm_accuracy(config, checkpoint, files, settings):
    """Masked-LM accuracy recomputed with NumPy: argmax of the logits at weighted positions."""
    from albert_tf.pretraining_data_input import parse_record

    model = AlbertPretrainer(config)
    load_original_checkpoint(model, checkpoint, strict=True)
    records = tf.data.TFRecordDataset(files).map(
        lambda r: parse_record(r, settings.max_seq_length, settings.max_predictions_per_seq))
    correct = total = 0.0
    count = 0
    limit = (sum(1 for f in files for _ in tf.data.TFRecordDataset(f))
             // settings.eval_batch_size) * settings.eval_batch_size
    for batch in records.take(limit).batch(settings.eval_batch_size):
        logits = model(batch, training=False)["mlm_logits"].numpy()
        hits = logits.argmax(-1) == batch["masked_lm_ids"].numpy()
        weights = batch["masked_lm_weights"].numpy()
        correct += float((hits * weights).sum())
        total += float(weights.sum())
        count += len(weights)
    return correct / total, count


def test_heldout_accuracy_in_report_is_recomputed_from_the_checkpoints(quick_run):
    from albert_tf.pretraining_data_input import resolve_input_files

    settings, run_dir, manifests, _ = quick_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    config = AlbertConfig.from_json_file(run_dir / "albert_config.json")
    files = resolve_input_files(str(path_of(run_dir, manifests["data"]["files"]["heldout"])))
    for name, key in (("init", "init_checkpoint"), ("pretrained", "final_checkpoint")):
        accuracy, count = heldout_mlm_accuracy(
            config, path_of(run_dir, manifests["pretrain"]["files"][key]), files, settings)
        assert metrics["heldout_masked_lm_accuracy"][name] == pytest.approx(accuracy, abs=1e-6)
    report = (run_dir / "report.md").read_text()
    shown = f"{100 * metrics['heldout_masked_lm_accuracy']['pretrained']:.1f}%"
    assert re.search(r"\| held-out masked-LM accuracy \| [\d.]+% \| " + re.escape(shown),
                     report)
    assert metrics["heldout_eval"]["final"]["examples"] == count


def test_curve_verdict_says_when_neither_initialisation_learnt():
    def table(pretrained, random):
        return [{"init": init, "labels": n, "test_mean": mean}
                for init, means in (("pretrained", pretrained), ("random", random))
                for n, mean in zip((32, 2000), means)]

    assert report_lib.curve_verdict(table((0.51, 0.49), (0.50, 0.52))).startswith(
        "Neither initialisation learnt the task")
    assert report_lib.curve_verdict(table((0.60, 0.80), (0.50, 0.79))).startswith(
        "Pretraining helped at 32 labels")
    assert report_lib.curve_verdict(table((0.50, 0.70), (0.50, 0.80))).startswith(
        "Pretraining did not help")


def test_pooled_spread_is_the_mean_distance_to_the_mean_over_its_norm():
    class Pooled:
        def __init__(self, vectors):
            self.vectors = np.array(vectors, np.float32)

        def __call__(self, inputs, training):
            assert set(inputs) == {"input_ids", "input_mask", "segment_ids",
                                   "masked_lm_positions"} and not training
            return {"pooled_output": self.vectors}

    batch = {k: np.zeros((2, 4), np.int32) for k in ("input_ids", "input_mask", "segment_ids",
                                                     "masked_lm_positions", "masked_lm_ids")}
    # Mean (2, 0), distances 1 and 1: 1 / 2.
    assert steps.pooled_spread(Pooled([[1, 0], [3, 0]]), batch) == pytest.approx(0.5)
    assert steps.pooled_spread(Pooled([[1, 2], [1, 2]]), batch) == 0.0


def test_report_states_the_pooled_spread_before_and_after(quick_run):
    _, run_dir, _, _ = quick_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    init, final = (metrics["heldout_eval"][k]["pooled_spread"] for k in ("init", "final"))
    assert init > 0 and final > 0
    report = (run_dir / "report.md").read_text()
    assert f"| spread of the pooled [CLS] vector over held-out inputs | {init:.3g} | " \
           f"{final:.3g} |" in report
    assert report_lib.spread_note(metrics["heldout_eval"]) in report


def test_finetuning_test_accuracy_is_recomputed_from_predictions(quick_run):
    _, run_dir, _, _ = quick_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    rows = (run_dir / "task" / "test.tsv").read_text().splitlines()[1:]
    labels = np.array([task_data.TASK_LABELS.index(row.split("\t")[1]) for row in rows])
    probabilities = np.loadtxt(run_dir / "finetune" / "pretrained" / "test_results.tsv",
                               ndmin=2)
    accuracy = float(np.mean(probabilities.argmax(-1) == labels))
    assert metrics["finetuning"]["pretrained"]["test_accuracy"] == pytest.approx(accuracy)


def test_report_shows_every_step_command(quick_run):
    _, run_dir, manifests, _ = quick_run
    report = (run_dir / "report.md").read_text()
    for step in demo.STEPS[:-1]:
        for line in manifests[step]["commands"]:
            assert line in report


# === Commands in the report parse as the tools' real flags ==============================


def _parse(argv):
    """Parses a command's flags into absl's global FLAGS (after resetting them)."""
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["prog"] + argv)
    return flags.FLAGS


def test_pretraining_command_gives_the_same_settings(quick_run, monkeypatch):
    from albert_tf import cli

    settings, run_dir, manifests, _ = quick_run
    job = demo.Job(settings, run_dir)
    line = manifests["pretrain"]["commands"][-1]
    argv = shlex.split(line)
    assert argv[:2] == ["python", "run_pretraining.py"]
    cli.define_pretraining_flags()
    monkeypatch.chdir(demo.ROOT)   # the commands' relative paths start at the root
    values = _parse(argv[2:])
    parsed = cli.pretraining_settings_from_flags(values)
    want = steps.pretraining_settings(job)
    for field in ("input_file", "output_dir", "init_checkpoint"):
        setattr(parsed, field, str(pathlib.Path(getattr(parsed, field)).resolve()))
        setattr(want, field, str(pathlib.Path(getattr(want, field)).resolve()))
    assert parsed == want
    flags.FLAGS.unparse_flags()


def test_classifier_commands_give_the_same_settings(quick_run, monkeypatch):
    monkeypatch.syspath_prepend(str(demo.ROOT))
    import run_classifier

    settings, run_dir, manifests, _ = quick_run
    job = demo.Job(settings, run_dir)
    run_classifier.define_flags()
    monkeypatch.chdir(demo.ROOT)
    for line, (run, key) in zip(manifests["finetune"]["commands"], finetune.FINETUNE_RUNS):
        argv = shlex.split(line)
        assert argv[:2] == ["python", "run_classifier.py"]
        values = _parse(argv[2:])
        parsed, parsed_classifier, _ = run_classifier.settings_from_flags(values)
        init = path_of(run_dir, manifests["pretrain"]["files"][key])
        want, want_classifier = finetune.classifier_settings(job, run, init)
        for obj in (parsed, want):
            obj.output_dir = str(pathlib.Path(obj.output_dir).resolve())
            obj.init_checkpoint = str(pathlib.Path(obj.init_checkpoint).resolve())
        for obj in (parsed_classifier, want_classifier):
            obj.threshold_to_export = None      # NaN (unset) on both sides; NaN != NaN
            obj.data_dir = str(pathlib.Path(obj.data_dir).resolve())
            obj.spm_model_file = str(pathlib.Path(obj.spm_model_file).resolve())
        assert parsed == want
        assert parsed_classifier == want_classifier
    flags.FLAGS.unparse_flags()


# === Re-runs ==============================================================================


def test_rerun_reuses_finished_steps(quick_run):
    settings, run_dir, manifests, _ = quick_run
    stamps = {step: (run_dir / step / "manifest.json").stat().st_mtime_ns
              for step in demo.STEPS}
    lines = []
    again = demo.run_job(settings, run_dir, log=lines.append)
    assert all("reusing" in line for line in lines if line.startswith("["))
    assert {step: (run_dir / step / "manifest.json").stat().st_mtime_ns
            for step in demo.STEPS} == stamps
    assert again == manifests


def test_a_step_alone_redone_rewrites_only_its_files(quick_run):
    settings, run_dir, _, _ = quick_run
    before = (run_dir / "eval" / "manifest.json").stat().st_mtime_ns
    report_before = (run_dir / "report" / "manifest.json").stat().st_mtime_ns
    demo.run_job(settings, run_dir, steps=["report"], redo=["report"], log=lambda _: None)
    assert (run_dir / "eval" / "manifest.json").stat().st_mtime_ns == before
    assert (run_dir / "report" / "manifest.json").stat().st_mtime_ns > report_before


def test_a_redone_training_step_starts_clean_and_reproduces_its_figures(quick_run):
    """Redoing finetune trains again from its first step (it does not resume a finished run)
    and, with the same seed, gives the same figures; the report after it is redone too."""
    settings, run_dir, manifests, _ = quick_run
    redone = demo.run_job(settings, run_dir, steps=["finetune", "report"],
                              redo=["finetune"], log=lambda _: None)
    logged = [step for step, _ in redone["finetune"]["curves"]["pretrained"]]
    assert logged and logged[-1] == settings.finetune_steps
    assert (redone["finetune"]["figures"]["pretrained"]["test_accuracy"]
            == manifests["finetune"]["figures"]["pretrained"]["test_accuracy"])
    assert redone["report"]["seconds"] >= 0


def test_a_step_without_its_inputs_says_which_to_run(tmp_path):
    with pytest.raises(RuntimeError, match="'spm' has not run"):
        demo.run_job(demo.JobSettings.quick(), tmp_path / "empty", steps=["data"],
                         log=lambda _: None)


def test_run_folder_is_found_again_for_the_same_settings(quick_run, tmp_path):
    settings, run_dir, _, _ = quick_run
    assert demo.find_run_dir(run_dir.parent, settings) == run_dir
    assert demo.find_run_dir(run_dir.parent, demo.JobSettings.full()) is None


def test_a_run_folder_on_an_object_store_is_refused_by_name(ram_dir):
    # The steps reach the run folder with local file operations: a ram:// or gs:// folder
    # must be an error, not a local folder named "ram:" (which the ram_dir fixture detects).
    with pytest.raises(ValueError, match="--run_dir=ram://.*local disk"):
        demo.run_job(demo.JobSettings.quick(), f"{ram_dir}/run", log=lambda _: None)
    with pytest.raises(ValueError, match="--runs_root=ram://"):
        demo.new_run_dir(f"{ram_dir}/runs")


def test_report_files_are_written_through_gfile(ram_dir):
    """The plot and the corpus slices are written through tf.io.gfile, so any filesystem
    takes them; read back with the PNG signature and gzip."""
    import gzip

    png = f"{ram_dir}/report/loss_curves.png"
    report_lib.plot_curves(png, {"masked_lm_loss": [(1, 3.0), (2, 2.5)]},
                       [{"init": "pretrained", "labels": 32, "test_mean": 0.6, "test_std": 0.1}],
                       finetune_curves={"pretrained": [(1, 0.7), (2, 0.6)]},
                       tfm_curves={"masked_lm_loss": [(1, 3.1), (2, 2.6)]})
    with tf.io.gfile.GFile(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    corpus = f"{ram_dir}/corpus/train.txt.gz"
    documents = [["First sentence.", "Second one."], ["Another document.", "Its end."]]
    demo.job.write_documents(corpus, documents)
    with tf.io.gfile.GFile(corpus, "rb") as f:
        text = gzip.decompress(f.read()).decode("utf-8")
    assert [block.splitlines() for block in text.split("\n\n") if block.strip()] == documents
    assert sorted(tf.io.gfile.listdir(ram_dir)) == ["corpus", "report"]
    assert tf.io.gfile.listdir(f"{ram_dir}/report") == ["loss_curves.png"]


# === The embedded data ====================================================================


@pytest.mark.parametrize("task", sorted(task_data.TASKS))
def test_task_files_are_rebuilt_identically_from_the_corpus(tmp_path, task):
    build, _ = task_data.TASKS[task]
    build(tmp_path)
    for name in ("train.tsv", "dev.tsv", "test.tsv"):
        assert (tmp_path / name).read_bytes() == (demo.DATA / "tasks" / task
                                                  / name).read_bytes(), name


def test_task_labels_follow_their_definition():
    """Each dev/test sentence is in a held-out document of its label's source, never in the
    training documents; labels are balanced. Sources from data/corpus/MANIFEST.json."""
    corpus = demo.DATA / "corpus"
    heldout = task_data.documents_by_source(corpus / "docstrings_heldout.txt.gz")
    train = task_data.documents_by_source(corpus / "docstrings_train.txt.gz")
    seen = {s for docs in train.values() for doc in docs for s in doc}
    folder = demo.DATA / "tasks" / task_data.TASK_NAME
    for name, half in (("dev.tsv", 0), ("test.tsv", 1)):
        rows = (folder / name).read_text(encoding="utf-8").splitlines()
        assert rows[0].split("\t") == list(task_data.TASK_COLUMNS)
        sentences = {label: {s for doc in docs[half::2] for s in doc}
                     for label, docs in heldout.items()}
        labels = []
        for row in rows[1:]:
            sentence, label = row.split("\t")
            labels.append(label)
            assert sentence in sentences[label] and sentence not in seen, row
        assert labels.count("stdlib") == labels.count("sklearn")


def test_word_order_rows_follow_their_definition():
    """An `original` row is a held-out sentence as written; a `swapped` row is one with two
    adjacent lower-case words exchanged (the same words, in another order); no row is a
    training-document sentence; labels are balanced."""
    corpus = demo.DATA / "corpus"
    heldout = demo.job.read_documents(corpus / "docstrings_heldout.txt.gz")
    seen = {s for doc in demo.job.read_documents(corpus / "docstrings_train.txt.gz")
            for s in doc}
    folder = demo.DATA / "tasks" / task_data.WORD_ORDER_NAME
    for name, half in (("dev.tsv", 0), ("test.tsv", 1)):
        sentences = {s for doc in heldout[half::2] for s in doc}
        rows = (folder / name).read_text(encoding="utf-8").splitlines()
        assert rows[0].split("\t") == list(task_data.TASK_COLUMNS)
        labels = []
        for row in rows[1:]:
            text, label = row.split("\t")
            labels.append(label)
            if label == "original":
                assert text in sentences and text not in seen, row
                continue
            words = text.split()
            sources = []
            for i in range(1, len(words) - 1):
                words[i], words[i + 1] = words[i + 1], words[i]
                if " ".join(words) in sentences:
                    sources.append(" ".join(words))
                words[i], words[i + 1] = words[i + 1], words[i]
            assert sources and text not in sentences and sources[0] not in seen, row
        assert labels.count("original") == labels.count("swapped")


def test_word_counts_alone_are_at_chance_on_word_order():
    """The bag-of-words baseline on all training rows scores near 50% on word_order (a swap
    keeps the words) and far above it on docstring_source (a topic task)."""
    rows = {task: label_efficiency.bag_of_words_rows(
        task, demo.DATA / "tasks" / task, labels, [0], [1])[0]
        for task, (_, labels) in task_data.TASKS.items()}
    assert abs(rows[task_data.WORD_ORDER_NAME]["test_accuracy"] - 0.5) < 0.06
    assert rows[task_data.TASK_NAME]["test_accuracy"] > 0.75


def test_corpus_documents_have_two_sentences_or_more():
    for name in ("docstrings_train.txt.gz", "docstrings_heldout.txt.gz"):
        docs = demo.job.read_documents(demo.DATA / "corpus" / name)
        assert docs and min(len(d) for d in docs) >= 2


# === Slow: the full run and the commands as a user types them ===========================


@pytest.mark.slow
def test_full_run_improves_masked_lm_accuracy_and_measures_the_curve(tmp_path):
    settings = demo.JobSettings.full()
    manifests = demo.run_job(settings, tmp_path / "full")
    figures = manifests["eval"]["figures"]
    assert figures["final"]["masked_lm_accuracy"] > figures["init"]["masked_lm_accuracy"] + 0.05
    metrics = json.loads((tmp_path / "full" / "metrics.json").read_text())
    assert len(metrics["label_efficiency"]) == settings.curve_runs >= 4 * 3 * 2
    assert set(metrics["mlm_loss_check"]) == {"albert_tf", "tf_models_official"}
    assert (tmp_path / "full" / "report.md").exists()


@pytest.mark.slow
def test_report_commands_run_as_typed(quick_run, tmp_path):
    """The spm, data and export commands of the report, run in a shell, redo the artefacts."""
    _, run_dir, manifests, _ = quick_run
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    for step in ("spm", "export"):
        for line in manifests[step]["commands"]:
            line = line.replace("--export_dir=", "--overwrite --export_dir=")
            argv = shlex.split(line)
            argv[0] = sys.executable
            result = subprocess.run(argv, cwd=demo.ROOT, env=env, capture_output=True,
                                    text=True, timeout=600)
            assert result.returncode == 0, (line, result.stderr[-2000:])


@pytest.mark.parametrize("bias_correction", [False, True])
def test_tfm_lamb_without_bias_correction_takes_the_original_first_step(bias_correction):
    """One LAMB step on a variable excluded from weight decay and the trust ratio (a bias):
    the original's update is lr * m / (sqrt(v) + eps) with m = 0.1 g, v = 0.001 g^2
    (no division by 1 - beta^t), about 3.16 lr; with Adam's bias correction it is lr."""
    import tf_keras

    import importlib.util

    spec = importlib.util.spec_from_file_location("tfm_pretraining", tfm_check.TFM_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    lamb = module._lamb(
        bias_correction, learning_rate=0.01, weight_decay_rate=0.01, epsilon=1e-6,
        exclude_from_weight_decay=["bias"])
    variable = tf_keras.backend.variable(np.ones(3, np.float32), name="layer/bias")
    gradient = tf.constant([0.5, -2.0, 1.0])
    lamb.apply_gradients([(gradient, variable)])
    g = gradient.numpy().astype(np.float64)
    m, v = 0.1 * g, 0.001 * g * g
    if bias_correction:
        m, v = m / 0.1, v / 0.001
    expected = 1.0 - 0.01 * m / (np.sqrt(v) + 1e-6)
    np.testing.assert_allclose(variable.numpy(), expected, rtol=1e-5)


def test_settings_overrides_read_each_field_as_its_type():
    base = demo.JobSettings.full()
    changed = base.with_overrides(["num_train_steps=800", "curve_learning_rate=3e-4",
                                   "tfm_check=false", "curve_budgets=32:0",
                                   "task_dir=data/tasks/word_order"])
    assert (changed.num_train_steps, changed.curve_learning_rate, changed.tfm_check,
            changed.curve_budgets, changed.task_dir) == (800, 3e-4, False, (32, 0),
                                                         "data/tasks/word_order")
    assert changed.fingerprint() != base.fingerprint()
    assert base.num_train_steps == demo.JobSettings.full().num_train_steps
    for bad, words in (("num_train_step=800", "unknown setting 'num_train_step'"),
                       ("num_train_steps", "expected num_train_steps=value"),
                       ("num_train_steps=many", "'many' does not read as int"),
                       ("tfm_check=maybe", "does not read as bool"),
                       ("curve_budgets=a:b", "integers separated by ':'")):
        with pytest.raises(ValueError, match=words):
            base.with_overrides([bad])


@pytest.mark.parametrize("assignment, words", [
    ("curve_steps=0", "curve_steps=0: expected a number > 0"),
    ("curve_batch_size=-1", "curve_batch_size=-1: expected a number > 0"),
    ("num_warmup_steps=300", "num_warmup_steps=300: expected 0 to num_train_steps"),
    ("masked_lm_prob=1.5", "masked_lm_prob=1.5: expected between 0 and 1"),
    ("curve_budgets=32:-1", "curve_budgets=.*expected one or more label counts"),
])
def test_settings_out_of_range_stop_the_job_before_any_folder(tmp_path, assignment, words):
    settings = demo.JobSettings.full().with_overrides([assignment])
    with pytest.raises(ValueError, match=words):
        demo.run_job(settings, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_run_folder_of_other_settings_is_refused_and_left_alone(quick_run):
    settings, run_dir, _, _ = quick_run
    job_json = (run_dir / "job.json").read_text()
    other = settings.with_overrides(["curve_steps=3"])
    with pytest.raises(ValueError, match="holds a run with other settings"):
        demo.run_job(other, run_dir, steps=["curve"])
    assert (run_dir / "job.json").read_text() == job_json
    with pytest.raises(RuntimeError, match="ran with other settings"):
        demo.Job(other, run_dir).require("spm")
