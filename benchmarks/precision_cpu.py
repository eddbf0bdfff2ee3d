"""Pretraining train-step throughput in float32, bf16 and fp16, with and without XLA.

The step is the one run_pretraining.py runs: the model and optimizer of
`albert_tf.pretraining.build_pretraining_model` (LAMB; for fp16 wrapped in Keras' dynamic
`LossScaleOptimizer`) under the `--mixed_precision` policy, `pretraining_loss`, and
`albert_tf.training.Trainer` on one device. Each precision runs `--steps` steps per
`tf.function` call after a warm-up call; `--rounds` measurements alternate between the
precisions (a busy machine slows all alike), and the script prints the median examples/s,
MFU and the speed ratio of each precision to float32 (per round for bf16).

Whether 16 bits pay off on a CPU depends on its instructions: AVX512_BF16 or AMX-BF16 run bf16
matmuls natively (check `lscpu | grep -i -E "avx512_bf16|amx"`); without them TensorFlow
converts to float32 around each op and bf16 is slower. Measured with the command below on 2
AMD EPYC cores without them (AVX2 only; a busy machine, alternating rounds): without XLA
fp32 3.84, bf16 1.72 (0.45x), fp16 0.53 ex/s (0.14x); with XLA fp32 2.80, bf16 2.22 (0.79x),
fp16 2.62 ex/s (0.93x). On GPUs and TPUs bf16 / fp16 use
the tensor cores (see benchmarks/gpu_check.sh).

`ours_run` and `bench_common.tfm_pretraining_run` (tf-models-official's ALBERT pretrainer and its LAMB under the
same precision; `--with_tfm` times it too) are shared with benchmarks/gpu_check.py.

    .venv/bin/python benchmarks/precision_cpu.py --config=cpu_small --batch_size=8 \
        --seq_length=128 --max_predictions_per_seq=20 --steps=5 --rounds=3
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402
import tensorflow as tf  # noqa: E402

import bench_common  # noqa: E402
from albert_tf import training  # noqa: E402
from albert_tf.pretraining import (PretrainingSettings, build_pretraining_model,  # noqa: E402
                                   pretraining_batch_stats, pretraining_flops_per_example,
                                   pretraining_loss)

PRECISIONS = ("none", "bf16", "fp16")
LABELS = {"none": "fp32", "bf16": "bf16", "fp16": "fp16"}


def ours_run(config, batch, precision, jit):
    """run(n): n pretraining steps of albert_tf as run_pretraining.py builds them."""
    settings = PretrainingSettings(input_file="unused", output_dir="unused",
                                   learning_rate=1e-4, num_train_steps=100000,
                                   num_warmup_steps=0, mixed_precision=precision)
    strategy = tf.distribute.OneDeviceStrategy(bench_common.default_device())
    with training.mixed_precision_policy(precision):
        model, optimizer = build_pretraining_model(config, settings, strategy)
    trainer = training.Trainer(strategy, model, optimizer, pretraining_loss,
                               pretraining_batch_stats, jit_compile=jit)
    iterator = iter(tf.data.Dataset.from_tensors(batch).repeat())

    def run(n):
        with training.mixed_precision_policy(precision):
            return trainer.train(iterator, n)["loss"]

    return run


def peak_flops(precision, peak_tflops=None):
    """(peak FLOP/s of the default device for this precision, description) or (None, why)."""
    strategy = tf.distribute.OneDeviceStrategy(bench_common.default_device())
    return training.peak_flops_per_second(strategy, precision, peak_tflops)


def mfu_text(examples_per_second, flops_per_example, peak):
    return f"{100 * examples_per_second * flops_per_example / peak:.1f}%" if peak else "n/a"


def define_flags():
    bench_common.define_step_flags(steps=5, predictions=True, peak_tflops=True)
    flags.adopt_module_key_flags(bench_common)   # listed by --help
    flags.DEFINE_integer("rounds", 3, "Alternating measurements per precision.")
    flags.DEFINE_list("precisions", list(PRECISIONS), "--mixed_precision values to time.")
    flags.DEFINE_bool("with_tfm", False, "Also time tf-models-official's pretrainer.")


def main(_):
    FLAGS = flags.FLAGS
    config = bench_common.load_config(FLAGS.config)
    # Dropout off: every precision computes the same function.
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    B, T, P = FLAGS.batch_size, FLAGS.seq_length, FLAGS.max_predictions_per_seq
    batch = bench_common.pretraining_batch(config, B, T, P)
    flops = pretraining_flops_per_example(config, T, P)
    precisions = [p.strip() for p in FLAGS.precisions]
    unknown = sorted(set(precisions) - set(PRECISIONS))
    if unknown or "none" not in precisions:
        raise app.UsageError(f"--precisions must include none (float32, the baseline) and "
                             f"only {PRECISIONS}; got {FLAGS.precisions}.")
    print(f"{bench_common.describe(FLAGS.config, config)} batch={B} seq={T} predictions={P} "
          f"steps={FLAGS.steps} rounds={FLAGS.rounds} devices={bench_common.devices()}")
    print(f"{flops / 1e9:.2f} GFLOPs per example (train)")
    for jit in [j.strip().lower() == "true" for j in FLAGS.jit]:
        runs = {}
        for precision in precisions:
            runs[precision] = ours_run(config, batch, precision, jit)
            if FLAGS.with_tfm:
                runs["tfm " + precision] = bench_common.tfm_pretraining_run(config, batch, jit, precision)
        second = "bf16" if "bf16" in precisions else precisions[-1]
        medians, ratios = bench_common.compare(runs, B, FLAGS.steps, FLAGS.rounds,
                                               ratio=(second, "none"))
        for name, rate in medians.items():
            precision = name.split()[-1]
            peak, _ = peak_flops(precision, FLAGS.peak_tflops)
            side = bench_common.THEIRS if name.startswith("tfm") else bench_common.OURS
            versus = medians[name.replace(precision, "none")]
            rounds = (f" (per round: {', '.join(f'{r:.2f}' for r in ratios)})"
                      if precision == second and not name.startswith("tfm") else "")
            print(f"train step jit={str(jit):5s} {side:18s} {LABELS[precision]} "
                  f"{rate:8.2f} ex/s   /fp32 {rate / versus:.2f}x{rounds}   "
                  f"MFU {mfu_text(rate, flops, peak)}", flush=True)


if __name__ == "__main__":
    define_flags()
    app.run(main)
