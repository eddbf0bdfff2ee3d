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
from albert_tf.heads import AlbertPretrainer  # noqa: E402
from albert_tf.optimization import create_optimizer  # noqa
from albert_tf.pretraining import (pretraining_batch_stats, pretraining_flops_per_example,  # noqa
                                   pretraining_loss)

FLAGS = flags.FLAGS
flags.DEFINE_string("config", "cpu_small",
                    "A preset (base, large, xlarge, xxlarge), a JSON file, or cpu_small "
                    "(H 256, 4 layers, V 30000: a size a CPU measures in minutes).")
flags.DEFINE_integer("batch_size", 8, "Examples per step.")
flags.DEFINE_integer("seq_length", 128, "Tokens per example.")
flags.DEFINE_integer("max_predictions_per_seq", 20, "Masked positions per example.")
flags.DEFINE_integer("steps", 10, "Timed steps per measurement (after a warm-up call).")
flags.DEFINE_list("jit", ["false", "true"], "jit_compile settings to time.")
flags.DEFINE_float("peak_tflops", None, "Peak TFLOP/s of the device for MFU (default: "
                   "albert_tf's table or CPU estimate).")



def ours(config, batch, jit):
    """(run(n) -> None) for albert_tf's Trainer on one device."""
    strategy = tf.distribute.OneDeviceStrategy(
        "/gpu:0" if tf.config.list_logical_devices("GPU") else "/cpu:0")
    with strategy.scope():
        model = AlbertPretrainer(config)
        optimizer = create_optimizer(1e-4, 100000, 0, optimizer="lamb",
                                     aggregate_gradients=False)
        optimizer.build(model.trainable_variables)
    trainer = training.Trainer(strategy, model, optimizer, pretraining_loss,
                               pretraining_batch_stats, jit_compile=jit)
    iterator = iter(tf.data.Dataset.from_tensors(batch).repeat())
    return lambda n: trainer.train(iterator, n)


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
        runs = {bench_common.OURS: ours(config, batch, jit),
                bench_common.THEIRS: bench_common.tfm_pretraining_run(config, batch, jit)}
        medians, ratios = bench_common.compare(runs, B, FLAGS.steps)
        mfu = (f"{100 * medians[bench_common.OURS] * flops / peak:.1f}%" if peak else "n/a")
        bench_common.print_comparison("train step", jit, medians, ratios,
                                      extra=f"   albert_tf MFU {mfu}")


if __name__ == "__main__":
    app.run(main)
