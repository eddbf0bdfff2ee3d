"""The demo job's report step: report.md, metrics.json and loss_curves.png in the run folder.

Every figure comes from the steps' manifests; the verdict on pretraining comes from the
label-efficiency curve (label_efficiency.py), stated with its numbers whichever way it
went. `metrics.json` holds, among the rest, `label_efficiency` (one row per fine-tuning
run: labels, seed, init, dev_accuracy, test_accuracy), `baseline` (the bag-of-words rows)
and `mlm_loss_check` ({"albert_tf": x, "tf_models_official": y}, final masked-LM
training losses of the two implementations).
"""

import dataclasses
import io
import json
import math
import os

from albert_tf.demo.job import STEP_TITLES, STEPS, repo_path, shown, write_text
from albert_tf.demo.label_efficiency import losses_of
from albert_tf.demo.task_data import TASK_NAME, WORD_ORDER_NAME

# The report's sections, in order (tests check they are all there).
SECTIONS = ("Results", "Label efficiency", "Fill the mask", "Pretraining against "
            "tf-models-official", "What ran", "The commands of each step", "Serving")
# A difference in mean test accuracy below this is reported as no clear difference.
CLEAR_DIFFERENCE = 0.02
# Mean test accuracies closer than this to chance are "not learnt".
CHANCE_BAND = 0.03


def _pct(value):
    return f"{100 * value:.1f}%"


def plot_curves(path, pretrain_curves, curve_table=(), baseline_table=(), finetune_curves=None,
                tfm_curves=None, task=WORD_ORDER_NAME):
    """loss_curves.png: pretraining losses (ours and tf-models-official's masked-LM loss),
    the label-efficiency curve (mean test accuracy, spread as error bars, the
    bag-of-words baseline) and fine-tuning losses, against the step or the labels."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from albert_tf import files

    figure, (left, middle, right) = plt.subplots(1, 3, figsize=(16, 4.2))
    for tag, label in (("masked_lm_loss", "masked LM (albert_tf)"),
                       ("sentence_order_loss", "sentence order (albert_tf)")):
        points = pretrain_curves.get(tag) or []
        if points:
            left.plot(*zip(*points), label=label)
    for tag, label in (("masked_lm_loss", "masked LM (tf-models-official)"),):
        points = (tfm_curves or {}).get(tag) or []
        if points:
            left.plot(*zip(*points), label=label, linestyle="--")
    left.set(title="Pretraining (LAMB, same records and recipe)", xlabel="step",
             ylabel="training loss")
    left.legend(fontsize=8)
    for init, label in (("pretrained", "pretrained"), ("random", "initial (random) weights")):
        points = [p for p in curve_table if p.get("init") == init]
        if points:
            middle.errorbar([p["labels"] for p in points], [p["test_mean"] for p in points],
                            yerr=[p["test_std"] for p in points], marker="o", capsize=3,
                            label=label)
    points = [p for p in baseline_table if p.get("task") == task]
    if points:
        middle.errorbar([p["labels"] for p in points], [p["test_mean"] for p in points],
                        yerr=[p["test_std"] for p in points], marker="s", capsize=3,
                        linestyle=":", label="bag-of-words logistic regression")
    if curve_table:
        middle.set_xscale("log", base=2)
    middle.set(title=f"Label efficiency on {task} (mean and std over seeds)",
               xlabel="labelled training examples", ylabel="test accuracy")
    middle.legend(fontsize=8)
    for run, points in (finetune_curves or {}).items():
        if points:
            right.plot(*zip(*points), label=run)
    right.set(title="Fine-tuning (AdamW)", xlabel="step", ylabel="training loss")
    if finetune_curves:
        right.legend(fontsize=8)
    figure.tight_layout()
    # Rendered in memory, then written atomically through tf.io.gfile (any filesystem).
    png = io.BytesIO()
    figure.savefig(png, format="png", dpi=100)
    plt.close(figure)
    files.write_bytes(os.fspath(path), png.getvalue())


def _finetune_plot_curves(manifests, settings):
    """The finetune step's loss and, per init, the curve's run on all labels (first seed),
    each smoothed over windows of the logged steps."""
    curves = {f"run_classifier, {TASK_NAME}, pretrained": manifests["finetune"]["curves"]
              .get("pretrained", [])}
    losses = losses_of(repo_path(manifests["curve"]["files"]["losses"]))
    largest = max(row["labels"] for row in manifests["curve"]["rows"])
    for init in ("pretrained", "random"):
        points = losses.get(f"{init}/{largest}/{settings.curve_seeds[0]}", [])
        window = max(1, len(points) // 20)
        curves[f"curve, {largest} labels, {init}"] = [
            (points[i + window - 1][0], sum(v for _, v in points[i:i + window]) / window)
            for i in range(0, len(points) - window + 1, window)]
    return curves


def step_report(job):
    manifests = {step: job.require(step) for step in STEPS[:-1]}
    s = job.settings
    ev = manifests["eval"]["figures"]
    curve = manifests["curve"]
    tfm = manifests["tfm_check"]
    metrics = {
        "settings": dataclasses.asdict(s),
        "seconds": {step: m.get("seconds") for step, m in manifests.items()},
        "heldout_masked_lm_accuracy": {"init": ev["init"]["masked_lm_accuracy"],
                                       "pretrained": ev["final"]["masked_lm_accuracy"]},
        "heldout_sentence_order_accuracy": {"init": ev["init"]["sentence_order_accuracy"],
                                            "pretrained": ev["final"]["sentence_order_accuracy"]},
        "heldout_eval": ev,
        "fill_mask": manifests["eval"].get("fill_mask", []),
        "pretraining": manifests["pretrain"]["figures"],
        "export": manifests["export"]["figures"],
        "finetuning": manifests["finetune"]["figures"],
        "label_efficiency_task": curve["task"],
        "label_efficiency": curve["rows"],
        "label_efficiency_table": curve["table"],
        # What always answering the test split's most frequent label scores (0.5 when
        # balanced, as the full task is).
        "label_efficiency_chance": curve.get("test_majority", 0.5),
        "baseline": curve["baseline"],
        "baseline_table": curve["baseline_table"],
        "mlm_loss_check": (tfm["figures"]["mlm_loss_check"] if not tfm.get("skipped")
                           else None),
        "tfm_check": tfm.get("figures"),
        "data": manifests["data"]["figures"],
    }
    png = job.run_dir / "loss_curves.png"
    plot_curves(png, manifests["pretrain"].get("curves", {}), curve["table"],
                curve["baseline_table"], _finetune_plot_curves(manifests, s),
                tfm.get("curves"), curve["task"])
    write_text(job.run_dir / "metrics.json", json.dumps(metrics, indent=2, sort_keys=True)
               + "\n")
    write_text(job.run_dir / "report.md", render_report(job, manifests, metrics))
    return {"files": {"report": shown(job.run_dir / "report.md"),
                      "metrics": shown(job.run_dir / "metrics.json"),
                      "loss_curves": shown(png)},
            "summary": shown(job.run_dir / "report.md")}


# The pooled [CLS] vector "collapsed" when pretraining shrank its spread over inputs by this.
COLLAPSE_FACTOR = 4


def spread_note(ev):
    """One paragraph on how much the pooled [CLS] vector depends on the input, before and
    after pretraining (`steps.pooled_spread`: mean distance to the mean over its norm)."""
    init, final = ev["init"]["pooled_spread"], ev["final"]["pooled_spread"]
    head = (f"The pooled [CLS] vector, what a classifier reads, varies over held-out inputs "
            f"by {final:.3g} of its norm after pretraining against {init:.3g} at "
            "initialisation (mean distance to the mean vector over its norm).")
    if final * COLLAPSE_FACTOR <= init:
        return (f"{head} Pretraining made it {init / max(final, 1e-12):.0f} times more alike "
                "across inputs: a classifier on top starts from nearly the same vector for "
                "every sentence.")
    return head


def curve_verdict(table, chance=0.5):
    """One paragraph: what the curve says about pretraining, with its numbers (`chance`:
    the accuracy of guessing on the task's balanced test set)."""
    by = {(p["init"], p["labels"]): p for p in table}
    budgets = sorted({p["labels"] for p in table})
    gains = {n: by["pretrained", n]["test_mean"] - by["random", n]["test_mean"]
             for n in budgets}
    parts = [f"{n} labels: {_pct(by['pretrained', n]['test_mean'])} pretrained against "
             f"{_pct(by['random', n]['test_mean'])} from the initial weights "
             f"({100 * gains[n]:+.1f} points)" for n in budgets]
    helped = [n for n in budgets if gains[n] >= CLEAR_DIFFERENCE]
    hurt = [n for n in budgets if gains[n] <= -CLEAR_DIFFERENCE]
    if all(abs(p["test_mean"] - chance) < CHANCE_BAND for p in table):
        head = (f"Neither initialisation learnt the task within the curve's fine-tuning "
                f"recipe: every mean test accuracy is within {100 * CHANCE_BAND:.0f} points "
                f"of chance ({_pct(chance)}), so at this scale the curve cannot tell what "
                "pretraining buys.")
    elif helped and not hurt:
        head = (f"Pretraining helped at {', '.join(map(str, helped))} labels (mean test "
                "accuracy over seeds at least "
                f"{100 * CLEAR_DIFFERENCE:.0f} points above the same model from its initial "
                "weights).")
    elif hurt and not helped:
        head = (f"Pretraining did not help: the model from its initial weights scored at "
                f"least {100 * CLEAR_DIFFERENCE:.0f} points higher at "
                f"{', '.join(map(str, hurt))} labels.")
    elif helped and hurt:
        head = (f"Mixed: pretraining helped at {', '.join(map(str, helped))} labels and "
                f"hurt at {', '.join(map(str, hurt))}.")
    else:
        head = (f"Pretraining made no clear difference at any budget (every gap under "
                f"{100 * CLEAR_DIFFERENCE:.0f} points).")
    return f"{head} Mean test accuracy: {'; '.join(parts)}."


def _curve_table_lines(table, baseline_table, task):
    base = {p["labels"]: p for p in baseline_table if p["task"] == task}
    by = {(p["init"], p["labels"]): p for p in table}
    lines = ["| labels | runs | pretrained: test (dev) | initial weights: test (dev) | "
             "difference | bag-of-words: test |", "|---|---|---|---|---|---|"]
    for n in sorted({p["labels"] for p in table}):
        a, b = by["pretrained", n], by["random", n]
        bow = base.get(n)
        lines.append(
            f"| {n} | {a['runs']} + {b['runs']} | {_pct(a['test_mean'])} ± "
            f"{100 * a['test_std']:.1f} ({_pct(a['dev_mean'])}) | {_pct(b['test_mean'])} ± "
            f"{100 * b['test_std']:.1f} ({_pct(b['dev_mean'])}) | "
            f"{100 * (a['test_mean'] - b['test_mean']):+.1f} | "
            + (f"{_pct(bow['test_mean'])} ± {100 * bow['test_std']:.1f} |" if bow else "- |"))
    return lines


# A gap in final masked-LM training loss up to this is "the same curve" (a few percent of a
# loss near 6, about the spread between seeds of one implementation at this scale).
SAME_LOSS = 0.15


def tfm_verdict(check):
    """One sentence comparing the two implementations' final masked-LM losses."""
    ours, theirs = check["albert_tf"], check["tf_models_official"]
    if abs(ours - theirs) <= SAME_LOSS:
        return (f"Both implementations end at the same masked-LM training loss ({ours:.3f} "
                f"here, {theirs:.3f} for tf-models-official, within {SAME_LOSS}): where the "
                "curve flattens, it is the scale (model, data and steps), not this "
                "implementation.")
    better = "tf-models-official's" if theirs < ours else "ours"
    return (f"The implementations differ: masked-LM training loss {ours:.3f} here against "
            f"{theirs:.3f} for tf-models-official ({better} is lower by "
            f"{abs(ours - theirs):.3f}, more than {SAME_LOSS}).")


def render_report(job, manifests, metrics):
    """report.md: every figure of the run, the command of every step, the plots."""
    s = job.settings
    ev, ft = metrics["heldout_eval"], metrics["finetuning"]["pretrained"]
    ex, pt, data = metrics["export"], metrics["pretraining"], metrics["data"]
    seconds = metrics["seconds"]
    table, task = metrics["label_efficiency_table"], metrics["label_efficiency_task"]
    base = {(p["task"], p["labels"]): p for p in metrics["baseline_table"]}
    all_source = max(n for t, n in base if t == TASK_NAME)
    sequences = pt["steps"] * s.train_batch_size
    ratio = 125_000 * 4096 * 512 / max(1, sequences * s.max_seq_length)
    config = json.loads(job.config_file().read_text())
    lines = [
        f"# ALBERT demo run `{shown(job.run_dir)}`",
        "",
        f"Settings fingerprint `{s.fingerprint()}`; total time "
        f"{sum(v for v in seconds.values() if v):.0f} s "
        f"({', '.join(f'{k} {v:.0f} s' for k, v in seconds.items() if v is not None)}).",
        "",
        "## Results",
        "",
        "| figure | at initialisation | pretrained |",
        "|---|---|---|",
        f"| held-out masked-LM accuracy | {_pct(ev['init']['masked_lm_accuracy'])} | "
        f"{_pct(ev['final']['masked_lm_accuracy'])} |",
        f"| held-out masked-LM loss | {ev['init']['masked_lm_loss']:.3f} | "
        f"{ev['final']['masked_lm_loss']:.3f} |",
        f"| held-out sentence-order accuracy | {_pct(ev['init']['sentence_order_accuracy'])} | "
        f"{_pct(ev['final']['sentence_order_accuracy'])} |",
        f"| spread of the pooled [CLS] vector over held-out inputs | "
        f"{ev['init']['pooled_spread']:.3g} | {ev['final']['pooled_spread']:.3g} |",
        "",
        f"Predicting token frequencies alone (the unigram distribution of the training "
        f"records' masked tokens) gives a held-out masked-LM loss of "
        f"{ev['unigram']['heldout_unigram_loss']:.3f} and, always answering the most frequent "
        f"piece, {_pct(ev['unigram']['heldout_most_frequent_accuracy'])} accuracy: a "
        "pretrained model near these figures has learnt frequencies, not yet how to use the "
        "context.",
        "",
        spread_note(ev),
        "",
        curve_verdict(table, metrics["label_efficiency_chance"]),
        "",
        f"This pretraining saw {sequences:,} sequences of {s.max_seq_length} tokens; "
        "ALBERT's released models saw 125,000 steps of 4,096 sequences of 512 tokens, "
        f"about 10^{round(math.log10(ratio))} times as many tokens. Held-out figures are over "
        f"{ev['final']['examples']} pretraining examples made from documents that "
        "pretraining never saw (always answering the more frequent sentence-order label "
        f"would score {_pct(ev['final']['sentence_order_majority_baseline'])}).",
        "",
        "![loss curves and label efficiency](loss_curves.png)",
        "",
        "## Label efficiency",
        "",
        f"Task `{task}` (data/README.md): is a docstring sentence as written, or were two "
        "adjacent words swapped? Each budget is a balanced random subset of train.tsv drawn "
        "by the seed; both initialisations fine-tune with the same recipe on the same "
        f"subsets and batches (AdamW, learning rate {s.curve_learning_rate:g}, "
        f"{s.curve_steps} steps of {s.curve_batch_size}, warm-up steps: "
        f"{s.curve_warmup_steps}, seeds {', '.join(map(str, s.curve_seeds))}); dev and test accuracy are "
        "those of the final weights. Mean ± standard deviation over seeds, in points; "
        "dev in brackets.",
        "",
        *_curve_table_lines(table, metrics["baseline_table"], task),
        "",
        f"The bag-of-words baseline (logistic regression on word counts, scikit-learn, the "
        f"same subsets) cannot see word order, what `{task}` asks: a swap keeps every word, "
        "so it can only score what the balance of labels allows (always answering the test "
        f"split's most frequent label: {_pct(metrics['label_efficiency_chance'])}). "
        f"On `{TASK_NAME}` (which library a sentence comes from, the finetune step's task) "
        f"the same baseline reaches {_pct(base[TASK_NAME, all_source]['test_mean'])} test "
        f"accuracy with {all_source} labels: that task is about topic words and needs "
        "little knowledge of the language, which is why it cannot show what pretraining "
        f"buys. Fine-tuned from the pretrained weights with run_classifier it scores "
        f"{_pct(ft['test_accuracy'])} (best dev checkpoint, {_pct(ft['best_dev_accuracy'])} "
        "dev).",
        "",
    ]
    lines += _fill_mask_lines(metrics["fill_mask"])
    lines += _tfm_lines(metrics, s)
    lines += [
        "## What ran",
        "",
        f"- Model: `{shown(job.config_file())}` (hidden {config['hidden_size']}, "
        f"{config['num_hidden_layers']} layers sharing {config['num_hidden_groups']} group, "
        f"embedding {config['embedding_size']}, vocabulary {config['vocab_size']}): "
        f"{pt['parameters']:,} parameters with the pretraining heads.",
        f"- Data: {data['train_instances']:,} training and {data['heldout_instances']:,} "
        f"held-out pretraining instances of {s.max_seq_length} tokens.",
        f"- Pretraining: {pt['steps']} LAMB steps of {s.train_batch_size} (learning rate "
        f"{s.learning_rate:g}, warm-up steps: {s.num_warmup_steps}); last logged loss "
        f"{pt['final_train_loss']:.3f}, {pt['examples_per_second'] or 0:.0f} examples/s.",
        f"- Export: the checkpoint reloads with identical values (max difference "
        f"{ex['checkpoint_max_abs_diff']:.1e}); the SavedModel gives the same outputs from "
        f"token ids (max difference {ex['saved_model_tokens_max_abs_diff']:.1e} against the "
        "model in memory run as a graph; run eagerly, which fuses fewer ops, it differs by "
        f"{ex['eager_vs_graph_max_abs_diff']:.1e}) and from raw "
        f"text (ids {'equal to' if ex['saved_model_text_ids_equal_python'] else 'DIFFERENT from'}"
        f" the Python tokenizer's, max difference {ex['saved_model_text_max_abs_diff']:.1e}).",
        "",
        "## The commands of each step",
        "",
        "Each step is one command of the project (run from the repository root); the job "
        "called the same functions in one process.",
        "",
    ]
    for step in STEPS[:-1]:
        lines += [f"### {step}: {STEP_TITLES[step]}", "", "```"]
        lines += manifests[step]["commands"]
        lines += ["```", ""]
    lines += _serving_lines(manifests)
    return "\n".join(lines)


def _fill_mask_lines(rows):
    lines = ["## Fill the mask", "",
             "Held-out sentences (never seen in pretraining) with one word masked; the "
             "model's five most probable pieces, with their probabilities, at "
             "initialisation and after pretraining.", "",
             "| sentence | masked word | at initialisation | pretrained |", "|---|---|---|---|"]
    for row in rows:
        shown_rows = [", ".join(f"`{p}` {q:.3g}" for p, q in row[name])
                      for name in ("init", "pretrained")]
        text = row["text"].replace("|", "\\|")
        lines.append(f"| {text} | `{row['answer']}` | {shown_rows[0]} | {shown_rows[1]} |")
    return lines + [""]


def _tfm_lines(metrics, s):
    lines = ["## Pretraining against tf-models-official", ""]
    check = metrics["mlm_loss_check"]
    if not check:
        return lines + ["Not run (--notfm_check).", ""]
    tfm, ev = metrics["tfm_check"], metrics["heldout_eval"]["final"]
    return lines + [
        "tf-models-official's ALBERT (`networks.AlbertEncoder`, `models.BertPretrainerV2`, "
        "its LAMB) pretrained on the same records, read in the same order, with the same "
        f"recipe for the same {s.num_train_steps} steps (albert_tf/demo/tfm_check.py); the "
        "dashed line of the left plot.",
        "",
        "| figure | albert_tf | tf-models-official |",
        "|---|---|---|",
        f"| masked-LM training loss, mean of the last {tfm['last_steps']} steps | "
        f"{check['albert_tf']:.3f} | {check['tf_models_official']:.3f} |",
        f"| held-out masked-LM loss | {ev['masked_lm_loss']:.3f} | "
        f"{tfm['heldout']['masked_lm_loss']:.3f} |",
        f"| held-out masked-LM accuracy | {_pct(ev['masked_lm_accuracy'])} | "
        f"{_pct(tfm['heldout']['masked_lm_accuracy'])} |",
        "",
        tfm_verdict(check) + " Differences in the check itself: it starts from its own "
        "random weights, and " + (
            "its LAMB applies Adam's bias correction, as shipped (--tfm_bias_correction); "
            "the original's does not, and at this length that alone slows its descent (README)."
            if tfm.get("bias_correction") else
            "its LAMB ran without Adam's bias correction, as the original's LAMB (as shipped "
            "it divides the moments by 1 - beta^t, which at this length alone slows its "
            "descent; --tfm_bias_correction runs it so)."),
        "",
    ]


def _serving_lines(manifests):
    return [
        "## Serving",
        "",
        f"The fine-tuned classifier was exported by run_classifier's "
        f"`--export_dir` to `{manifests['finetune']['files']['classifier_saved_model']}`. "
        "With TensorFlow Serving (`--model_base_path` set to its parent folder, which holds "
        f"it as a numbered version), a request to `POST /v1/models/{TASK_NAME}:predict`:",
        "",
        "```json",
        json.dumps(manifests["finetune"]["rest_request"], indent=2),
        "```",
        "",
        "answers (computed here by `albert_tf.export.rest_predict`, which reads and writes "
        "Serving's REST format; an excerpt: each row also holds the encoder outputs and the "
        "packed ids):",
        "",
        "```json",
        json.dumps(manifests["finetune"]["rest_response"]),
        "```",
        "",
        f"The pretrained encoder's SavedModel `{manifests['export']['files']['saved_model']}` "
        "has the signatures "
        f"{', '.join(f'`{n}`' for n in manifests['export']['signatures'])}. "
        "As a model `albert` (the folder copied to `<base>/albert/1/`), a request to "
        "`POST /v1/models/albert:predict`:",
        "",
        "```json",
        json.dumps(manifests["export"]["rest_request"], indent=2),
        "```",
        "",
        "answers (excerpt):",
        "",
        "```json",
        json.dumps(manifests["export"]["rest_response_excerpt"]),
        "```",
        "",
        "Every figure above is in `metrics.json` beside this file.",
        "",
    ]
