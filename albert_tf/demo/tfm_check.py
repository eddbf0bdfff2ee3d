"""The demo job's tfm_check step: the same pretraining with an independent ALBERT.

tf-models-official's ALBERT (`official.nlp.modeling.networks.AlbertEncoder` with its
masked-LM head, `models.BertPretrainerV2`, and a 2-way sentence-order layer on the pooled
output, as `benchmarks/bench_common.py` builds them; the run itself is the script
`benchmarks/tfm_pretraining.py`, run in a process of its own since it is tf_keras code) is
pretrained on the pretrain step's TFRecords, read by the same input pipeline with the
same seed, with the same recipe: the original losses (masked-LM over the weighted positions, / (sum of weights + 1e-5), plus
the sentence-order cross-entropy), global-norm clipping at 1.0, its LAMB
(`official.modeling.optimization.lamb.LAMB`: weight decay 0.01 and the trust ratio
skipped for LayerNorm/layer_norm/bias, epsilon 1e-6) at the original schedule (linear
warm-up to `learning_rate`, then linear decay to 0 at `num_train_steps`), batch size and
steps. Its training losses are logged over the same windows as ours; both masked-LM loss
curves go into one plot.

Its LAMB divides the moments by 1 - beta^t (Adam's bias correction), the original's does
not: by default the check runs it without (`JobSettings.tfm_bias_correction`, flag
`--tfm_bias_correction`), since that alone changes the curve at this length (README). It
also starts from its own random weights (truncated normal, `initializer_range`), not from
our initial checkpoint.
"""

import dataclasses
import json
import subprocess
import sys

from albert_tf.demo.job import ROOT, repo_path, shown, write_text

LAST_STEPS = 40      # "final" losses: the mean over the last this many steps' windows
# The run itself: tf-models-official is built on tf_keras, which the library neither imports
# nor runs, so it is a script of its own run in another process.
TFM_SCRIPT = ROOT / "benchmarks" / "tfm_pretraining.py"


def final_loss(points, last_steps=LAST_STEPS, total_steps=None):
    """Mean value of the logged (step, value) points after `total_steps - last_steps`."""
    total_steps = total_steps or max(step for step, _ in points)
    tail = [value for step, value in points if step > total_steps - last_steps]
    return sum(tail) / len(tail) if tail else float("nan")


def step_tfm_check(job):
    from albert_tf.demo.steps import pretraining_settings, read_scalars
    from albert_tf.pretraining_data_input import resolve_input_files

    s = job.settings
    data = job.require("data")
    if not s.tfm_check:
        return {"skipped": True, "commands": [], "summary": "skipped (--notfm_check)"}
    settings = pretraining_settings(job)
    folder = job.dir("tfm_check")
    log_dir = folder / "summaries" / "train"
    request, result_file = folder / "request.json", folder / "result.json"
    write_text(request, json.dumps({
        "albert_config_file": str(job.config_file()),
        "input_files": resolve_input_files(settings.input_file),
        "heldout_files": resolve_input_files(str(repo_path(data["files"]["heldout"]))),
        "settings": dataclasses.asdict(settings),
        "num_eval_batches": max(1, data["figures"]["heldout_instances"] // s.eval_batch_size),
        "log_dir": str(log_dir), "bias_correction": s.tfm_bias_correction}, indent=2) + "\n")
    line = ["python", shown(TFM_SCRIPT), shown(request), shown(result_file)]
    result_file.unlink(missing_ok=True)   # of an interrupted earlier try
    done = subprocess.run([sys.executable, str(TFM_SCRIPT), str(request), str(result_file)],
                          cwd=ROOT, check=False)
    if done.returncode != 0 or not result_file.exists():
        raise RuntimeError(f"tf-models-official's pretraining stopped with exit status "
                           f"{done.returncode} (its output is above); to run it alone: "
                           f"{' '.join(line)}")
    result = json.loads(result_file.read_text())
    # Ours is read last: this step trains independently of the pretrain step until here.
    pretrain = job.require("pretrain")
    ours = read_scalars(repo_path(pretrain["files"]["output_dir"]) / "summaries" / "train")
    last_steps = min(LAST_STEPS, s.num_train_steps)
    check = {"albert_tf": final_loss(ours["masked_lm_loss"], last_steps, s.num_train_steps),
             "tf_models_official": final_loss(result["curves"]["masked_lm_loss"], last_steps,
                                              s.num_train_steps)}
    return {
        "figures": {"mlm_loss_check": check, "heldout": result["heldout"],
                    "seconds_per_step": result["seconds_per_step"],
                    "final_sentence_order_loss": final_loss(
                        result["curves"]["sentence_order_loss"], last_steps, s.num_train_steps),
                    "last_steps": last_steps, "bias_correction": s.tfm_bias_correction},
        "curves": result["curves"],
        "files": {"summaries": shown(log_dir)},
        "commands": [f"python albert_demo.py --run_dir={shown(job.run_dir)} --steps=tfm_check",
                     " ".join(line)],
        "summary": (f"masked-LM training loss over the last {last_steps} steps: albert_tf "
                    f"{check['albert_tf']:.3f}, tf-models-official "
                    f"{check['tf_models_official']:.3f}"),
    }
