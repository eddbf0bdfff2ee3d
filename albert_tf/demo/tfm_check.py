"""The demo job's tfm_check step: the same pretraining with an independent ALBERT.

tf-models-official's ALBERT (`official.nlp.modeling.networks.AlbertEncoder` with its
masked-LM head, `models.BertPretrainerV2`, and a 2-way sentence-order layer on the pooled
output, as `benchmarks/bench_common.py` builds them; the run itself is
`benchmarks/tfm_pretraining.py`, outside the library, since it is tf_keras code) is
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

import importlib.util

from albert_tf.demo.job import ROOT, repo_path, shown

LAST_STEPS = 40      # "final" losses: the mean over the last this many steps' windows


def _tfm_pretraining():
    """benchmarks/tfm_pretraining.py, loaded by path: tf-models-official is built on
    tf_keras, which the library does not import, so its run lives outside the package."""
    spec = importlib.util.spec_from_file_location("tfm_pretraining",
                                                  ROOT / "benchmarks" / "tfm_pretraining.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def final_loss(points, last_steps=LAST_STEPS, total_steps=None):
    """Mean value of the logged (step, value) points after `total_steps - last_steps`."""
    total_steps = total_steps or max(step for step, _ in points)
    tail = [value for step, value in points if step > total_steps - last_steps]
    return sum(tail) / len(tail) if tail else float("nan")


def step_tfm_check(job):
    from albert_tf.config import AlbertConfig
    from albert_tf.demo.steps import pretraining_settings, read_scalars
    from albert_tf.pretraining_data_input import resolve_input_files

    s = job.settings
    data = job.require("data")
    if not s.tfm_check:
        return {"skipped": True, "commands": [], "summary": "skipped (--notfm_check)"}
    settings = pretraining_settings(job)
    log_dir = job.dir("tfm_check") / "summaries" / "train"
    heldout = resolve_input_files(str(repo_path(data["files"]["heldout"])))
    num_batches = max(1, data["figures"]["heldout_instances"] // s.eval_batch_size)
    result = _tfm_pretraining().tfm_pretrain(
        AlbertConfig.from_json_file(job.config_file()), resolve_input_files(settings.input_file),
        heldout, settings, num_batches, log_dir, bias_correction=s.tfm_bias_correction)
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
        "commands": [f"python albert_demo.py --run_dir={shown(job.run_dir)} --steps=tfm_check"],
        "summary": (f"masked-LM training loss over the last {last_steps} steps: albert_tf "
                    f"{check['albert_tf']:.3f}, tf-models-official "
                    f"{check['tf_models_official']:.3f}"),
    }
