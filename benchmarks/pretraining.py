"""Pretraining train-step throughput: albert_tf against tf-models-official's ALBERT pretrainer.

Both sides run the same work per step, on the same device, in one process, one run:
ALBERT encoder forward and backward on one batch, masked-LM (tied output embedding) and
sentence-order losses as the original computes them, global-norm clipping at 1.0 and a LAMB
update with weight decay 0.01 and the original exclusions.

- albert_tf: `AlbertPretrainer` + `pretraining_loss` in `albert_tf.training.Trainer` (one
  device), with `albert_tf.optimization`'s LAMB.
- tf-models-official: `networks.AlbertEncoder` + `models.BertPretrainerV2` (its `MaskedLM`
  head) + a 2-way dense layer on the pooled output, its `optimization.lamb.LAMB`, in a
  `tf.function` train step; with XLA the whole step is compiled (its best case).

Each side runs `--steps` steps inside one `tf.function` call after a warm-up call, with and
without `jit_compile`, and the script prints examples/s, the ratio ours / theirs and our MFU.
tf-models-official (tf_keras) is imported here only, never in albert_tf.

    .venv/bin/python benchmarks/pretraining.py --config=cpu_small --batch_size=8 \
        --seq_length=128 --max_predictions_per_seq=20 --steps=10
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402
import tensorflow as tf  # noqa: E402

import bench_common  # noqa: E402
from albert_tf import training  # noqa: E402
from albert_tf.pretraining import pretraining_flops_per_example  # noqa: E402

FLAGS = flags.FLAGS
bench_common.define_step_flags(steps=10, predictions=True, peak_tflops=True)
flags.adopt_module_key_flags(bench_common)   # listed by --help



def main(_):
    config = bench_common.load_config(FLAGS.config)
    # Dropout off on both sides: the same computation.
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    B, T, P = FLAGS.batch_size, FLAGS.seq_length, FLAGS.max_predictions_per_seq
    batch = bench_common.pretraining_batch(config, B, T, P)
    flops = pretraining_flops_per_example(config, T, P)
    peak, peak_source = training.peak_flops_per_second(
        tf.distribute.get_strategy(), "none", FLAGS.peak_tflops)
    print(f"{bench_common.describe(FLAGS.config, config)} batch={B} seq={T} predictions={P} "
          f"steps={FLAGS.steps} devices={bench_common.devices()}")
    print(f"{flops / 1e9:.2f} GFLOPs per example (train); peak "
          + (f"{peak / 1e12:.3f} TFLOP/s ({peak_source})" if peak else peak_source))
    for jit in [j.strip().lower() == "true" for j in FLAGS.jit]:
        runs = {bench_common.OURS: bench_common.pretraining_run(config, batch, jit),
                bench_common.THEIRS: bench_common.tfm_pretraining_run(config, batch, jit)}
        medians, ratios = bench_common.compare(runs, B, FLAGS.steps)
        mfu = (f"{100 * medians[bench_common.OURS] * flops / peak:.1f}%" if peak else "n/a")
        bench_common.print_comparison("train step", jit, medians, ratios,
                                      extra=f"   albert_tf MFU {mfu}")


if __name__ == "__main__":
    app.run(main)
