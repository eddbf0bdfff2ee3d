"""One pretraining step, albert_tf against tf-models-official, in alternating rounds; profile.

The step: ALBERT (base by default) forward and backward on a batch of 8 x 128 tokens with 20
masked positions, masked-LM + sentence-order losses, global-norm clipping at 1.0 and LAMB
(weight decay 0.01, the original exclusions), float32.

- albert_tf: `AlbertPretrainer` + `pretraining_loss` in `training.Trainer` with
  `optimization.create_optimizer(..., optimizer="lamb")`.
- tf-models-official: `bench_common.tfm_pretraining_run` (`networks.AlbertEncoder` +
  `BertPretrainerV2`'s `MaskedLM` + its LAMB).

Both run in one process: after a warm-up call each, `--rounds` measurements of `--steps` steps
alternate between them (a busy machine slows both alike); the script prints the median
examples/s of each, the ratio per round and the model FLOPs utilisation of each against the
machine's float32 matmul peak, measured here (the best of a few large matmuls).

`--profile` then records `--profile_steps` steps of each side with the TensorFlow profiler and
prints where the time goes, by kind of work (GEMMs, softmax, LayerNorm, GELU, embedding and
masked-LM gathers, the optimizer update, casts and copies, other element-wise work).

    .venv/bin/python benchmarks/train_step.py --config=base --rounds=3 --steps=2 --profile
"""
import collections
import glob
import json
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import bench_common  # noqa: E402
from albert_tf.pretraining import pretraining_flops_per_example  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("config", "base", "A preset (base, large, ...), a JSON file or cpu_small.")
flags.DEFINE_integer("batch_size", 8, "Examples per step.")
flags.DEFINE_integer("seq_length", 128, "Tokens per example.")
flags.DEFINE_integer("max_predictions_per_seq", 20, "Masked positions per example.")
flags.DEFINE_integer("steps", 2, "Steps per timed measurement.")
flags.DEFINE_integer("rounds", 3, "Alternating measurements of each side.")
flags.DEFINE_bool("jit", False, "jit_compile both steps (XLA).")
flags.DEFINE_bool("profile", False, "Also profile each side and print time by kind of work.")
flags.DEFINE_integer("profile_steps", 1, "Steps recorded by the profiler per side.")

# Kind of work of an op, from its type (first match wins; names from the TF op registry).
CATEGORIES = (
    ("GEMM", ("MatMul", "BatchMatMul", "Einsum", "_FusedMatMul", "Conv")),
    ("softmax", ("Softmax", "LogSoftmax")),
    ("GELU / tanh", ("Tanh", "TanhGrad", "Pow")),
    ("LayerNorm", ("Mean", "SquaredDifference", "Rsqrt", "RsqrtGrad", "FusedBatchNorm")),
    ("gather / scatter", ("Gather", "ResourceGather", "UnsortedSegmentSum", "ScatterNd",
                          "TensorScatter", "OneHot")),
    ("casts / copies", ("Cast", "Identity", "Transpose", "Reshape", "ConcatV2", "Pack",
                        "StridedSlice", "Slice", "Tile", "BroadcastTo", "Fill", "_Recv",
                        "_Send", "Copy")),
    ("optimizer update", ("ResourceApply", "AssignVariable", "AssignAdd", "AssignSub",
                          "ReadVariableOp")),
    ("reductions", ("Sum", "Max", "Min", "Prod", "Norm", "ArgMax")),
)


# run(n): n steps of albert_tf's pretraining Trainer on one device.
ours = bench_common.pretraining_run


def measured_matmul_peak(size=2048, repeats=5):
    """float32 FLOP/s of the best of `repeats` [size, size] x [size, size] matmuls."""
    with tf.device(bench_common.default_device()):
        a = tf.random.normal([size, size])
        b = tf.random.normal([size, size])
        matmul = tf.function(lambda x, y: tf.reduce_sum(tf.matmul(x, y)))
        matmul(a, b).numpy()
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            matmul(a, b).numpy()
            best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best


def category(op_type, op_name):
    if "/LAMB" in op_name or "optimizer" in op_name.lower() or "lamb" in op_name.lower():
        if not any(k in op_type for k in ("MatMul", "Einsum")):
            return "optimizer update"
    for name, types in CATEGORIES:
        if any(op_type.startswith(t) for t in types):
            return name
    return "other element-wise"


def op_profile(run, steps):
    """({category: seconds per step}, [(op type, seconds per step)] top 12) of run(steps)."""
    logdir = tempfile.mkdtemp(prefix="train_step_profile_")
    from tensorflow.python.profiler.internal import _pywrap_profiler_plugin as plugin
    tf.profiler.experimental.start(logdir)
    try:
        run(steps)
    finally:
        tf.profiler.experimental.stop()
    paths = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
    data, ok = plugin.xspace_to_tools_data(paths, "framework_op_stats", {})
    if not ok:
        raise RuntimeError(f"The profiler's op statistics could not be read: {data!r}")
    table = json.loads(data)[0]
    columns = [c["id"] for c in table["cols"]]
    by_category, by_type = collections.Counter(), collections.Counter()
    for row in table["rows"]:
        values = dict(zip(columns, [cell.get("v") for cell in row["c"]]))
        if values.get("type") in ("IDLE", None):
            continue
        seconds = float(values["total_self_time"]) / 1e6 / steps
        by_category[category(values["type"], values.get("operation", ""))] += seconds
        by_type[values["type"]] += seconds
    return by_category, by_type.most_common(12)


def print_profile(name, profile):
    by_category, top = profile
    total = sum(by_category.values())
    print(f"  {name}: {total * 1e3:.0f} ms of op time per step")
    for key, seconds in by_category.most_common():
        print(f"    {key:20s} {seconds * 1e3:9.1f} ms  {100 * seconds / total:5.1f}%")
    print("    top op types: " + ", ".join(f"{t} {s * 1e3:.0f}" for t, s in top))


def main(_):
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} on "
          f"{os.cpu_count()} CPUs")
    peak = measured_matmul_peak()
    B, T, P = FLAGS.batch_size, FLAGS.seq_length, FLAGS.max_predictions_per_seq
    config = bench_common.load_config(FLAGS.config)
    # No dropout on either side, so that both compute the same thing.
    config.attention_probs_dropout_prob = config.hidden_dropout_prob = 0.0
    flops = pretraining_flops_per_example(config, T, P)
    batch = bench_common.pretraining_batch(config, B, T, P)
    print(f"{bench_common.describe(FLAGS.config, config)} batch={B} seq={T} predictions={P} "
          f"steps={FLAGS.steps} rounds={FLAGS.rounds} devices={bench_common.devices()}")
    print(f"{flops / 1e9:.2f} GFLOPs per example (train); measured fp32 matmul peak "
          f"{peak / 1e9:.1f} GFLOP/s")
    runs = {bench_common.OURS: ours(config, batch, FLAGS.jit),
            bench_common.THEIRS: bench_common.tfm_pretraining_run(config, batch, FLAGS.jit)}
    medians, ratios = bench_common.compare(runs, B, FLAGS.steps, rounds=FLAGS.rounds)
    mfu = {name: f"{100 * rate * flops / peak:.1f}%" for name, rate in medians.items()}
    bench_common.print_comparison(
        "train step", FLAGS.jit, medians, ratios,
        extra=f"   MFU {bench_common.OURS} {mfu[bench_common.OURS]}, "
              f"{bench_common.THEIRS} {mfu[bench_common.THEIRS]}")
    print(f"median ratio {np.median(ratios):.2f}x over {len(ratios)} alternating rounds")
    if FLAGS.profile:
        print(f"profile ({FLAGS.profile_steps} step(s) each, self time of ops, summed over "
              "threads):")
        for name, run in runs.items():
            print_profile(name, op_profile(run, FLAGS.profile_steps))
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    app.run(main)
