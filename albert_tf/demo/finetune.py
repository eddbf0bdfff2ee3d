"""The demo job's finetune step: run_classifier on the embedded docstring_source task from
the pretrained weights, its classifier exported for serving (raw text in) and asked a
TensorFlow Serving REST request.
"""

import pathlib

from albert_tf.demo.job import command, repo_path, shown
from albert_tf.demo.steps import read_scalars, spm_model
from albert_tf.demo.task_data import TASK_LABELS

# run_classifier runs once, from the pretrained weights; the comparison with the initial
# weights is the label-efficiency curve's (label_efficiency.py).
FINETUNE_RUNS = (("pretrained", "final_checkpoint"),)


def classifier_settings(job, run, init_checkpoint):
    """(FinetuningSettings, ClassifierSettings) of one fine-tuning run."""
    from albert_tf.settings import ClassifierSettings, FinetuningSettings

    s = job.settings
    output_dir = job.run_dir / "finetune" / run
    settings = FinetuningSettings(
        output_dir=str(output_dir), init_checkpoint=str(init_checkpoint),
        max_seq_length=s.max_seq_length, train_batch_size=s.finetune_batch_size,
        eval_batch_size=s.finetune_batch_size, predict_batch_size=s.finetune_batch_size,
        learning_rate=s.finetune_learning_rate, train_step=s.finetune_steps,
        warmup_step=s.finetune_warmup_steps,
        save_checkpoints_steps=s.finetune_checkpoint_steps, log_steps=s.finetune_log_steps,
        iterations_per_loop=s.finetune_log_steps, optimizer="adamw", seed=s.seed)
    classifier = ClassifierSettings(
        task_name="tsv", data_dir=str(job.task_dir()), spm_model_file=spm_model(job),
        do_lower_case=s.do_lower_case, do_train=True, do_eval=True, do_predict=True,
        text_a_column="0", text_b_column=None, label_column="1", labels=TASK_LABELS,
        tsv_header=True,
        # The pretrained model's classifier is also exported for serving (raw text in).
        export_dir=str(output_dir / "saved_model") if run == "pretrained" else None)
    return settings, classifier


def classifier_command(job, settings, classifier):
    f, c = settings, classifier
    return command(["python", "run_classifier.py"], {
        "task_name": c.task_name, "data_dir": pathlib.Path(c.data_dir),
        "text_a_column": c.text_a_column, "text_b_column": c.text_b_column,
        "label_column": c.label_column, "labels": list(c.labels),
        "output_dir": pathlib.Path(f.output_dir),
        "init_checkpoint": pathlib.Path(f.init_checkpoint),
        "albert_config_file": job.config_file(),
        "spm_model_file": pathlib.Path(c.spm_model_file), "do_lower_case": c.do_lower_case,
        "do_train": c.do_train, "do_eval": c.do_eval, "do_predict": c.do_predict,
        "max_seq_length": f.max_seq_length, "train_batch_size": f.train_batch_size,
        "eval_batch_size": f.eval_batch_size, "predict_batch_size": f.predict_batch_size,
        "optimizer": f.optimizer, "learning_rate": f.learning_rate,
        "train_step": f.train_step, "warmup_step": f.warmup_step,
        "save_checkpoints_steps": f.save_checkpoints_steps, "log_steps": f.log_steps,
        "iterations_per_loop": f.iterations_per_loop, "seed": f.seed,
        "export_dir": pathlib.Path(c.export_dir) if c.export_dir else None})


def _test_accuracy(task_dir, output_dir):
    """Accuracy of test_results.tsv (probabilities per row) against test.tsv's labels."""
    lines = (pathlib.Path(task_dir) / "test.tsv").read_text(encoding="utf-8").splitlines()[1:]
    labels = [TASK_LABELS.index(line.split("\t")[1]) for line in lines]
    rows = (pathlib.Path(output_dir) / "test_results.tsv").read_text().splitlines()
    predictions = [max(range(len(TASK_LABELS)), key=lambda i: float(row.split("\t")[i]))
                   for row in rows]
    if len(predictions) != len(labels):
        raise RuntimeError(f"{len(predictions)} test predictions for {len(labels)} rows.")
    return sum(p == y for p, y in zip(predictions, labels)) / len(labels)


def step_finetune(job):
    from albert_tf.config import AlbertConfig
    from albert_tf.tasks.glue_task import run_classifier

    pretrain = job.require("pretrain")
    config = AlbertConfig.from_json_file(job.config_file())
    figures, curves, commands, exported = {}, {}, [], None
    for run, key in FINETUNE_RUNS:
        init = repo_path(pretrain["files"][key])
        settings, classifier = classifier_settings(job, run, init)
        job.log(f"  fine-tuning from the {'pretrained' if run == 'pretrained' else 'initial'}"
                f" weights ({shown(init)})")
        outcome = run_classifier(config, settings, classifier)
        result = outcome["result"]
        evaluations = result.evaluations
        last_step = max(evaluations)
        figures[run] = {
            "best_dev_accuracy": result.best_value, "best_step": result.best_step,
            "final_dev_accuracy": evaluations[last_step]["eval_accuracy"],
            "test_accuracy": _test_accuracy(classifier.data_dir, settings.output_dir),
            "dev_accuracy_by_step": {str(k): v["eval_accuracy"]
                                     for k, v in sorted(evaluations.items())},
        }
        curves[run] = read_scalars(pathlib.Path(settings.output_dir) / "summaries" / "train"
                                   ).get("loss", [])
        commands.append(classifier_command(job, settings, classifier))
        job.log(f"  {run}: best dev accuracy {result.best_value:.4f} (step {result.best_step}),"
                f" test accuracy {figures[run]['test_accuracy']:.4f}")
        if outcome.get("export"):
            exported = outcome["export"]
    if exported is None:
        raise RuntimeError("run_classifier exported no SavedModel (export_dir was set).")
    request, response = _classifier_rest_example(job, exported)
    return {
        "figures": figures,
        "curves": curves, "commands": commands,
        "rest_request": request, "rest_response": response,
        "files": {"task_dir": shown(job.task_dir()),
                  "classifier_saved_model": shown(exported)},
        "summary": (f"test accuracy {figures['pretrained']['test_accuracy']:.3f} from the "
                    "pretrained weights"),
    }


def _classifier_rest_example(job, saved_model):
    """A TF Serving REST request of two test sentences (one per label) and the answer."""
    import tensorflow as tf

    from albert_tf.export import rest_predict

    rows = (job.task_dir() / "test.tsv").read_text(encoding="utf-8").splitlines()[1:]
    firsts = {}
    for row in rows:
        sentence, label = row.split("\t")
        firsts.setdefault(label, sentence)
    request = {"instances": [{"text_a": firsts[label]} for label in TASK_LABELS]}
    response = rest_predict(tf.saved_model.load(str(saved_model)), request)
    head_outputs = ("labels", "predictions", "probabilities", "logits")
    shown = {"predictions": [{key: row[key] for key in head_outputs}
                             for row in response["predictions"]]}
    return request, shown


