"""GPU pretraining check: albert_tf against tf-models-official, fp32 / bf16 / fp16, XLA on/off.

For each configuration (model size x precision x XLA) both sides run the same pretraining
step on the same batch, in one process (see benchmarks/precision_cpu.py: `ours_run` is the
step run_pretraining.py builds, `bench_common.tfm_pretraining_run` tf-models-official's ALBERT pretrainer and
LAMB), timed in alternating rounds; the script prints examples/s, model FLOPs utilisation
(`albert_tf.training.peak_flops_per_second`: the dense tensor-core peak for bf16/fp16, the
TF32 peak for float32 on Ampere and later, where TensorFlow uses TF32 by default) and the
ratio ours / theirs.

Configurations run in order of interest (XLA first, bf16 first; base before large) until
`--budget_s` is spent: a configuration that would not finish within the budget (judged by
the longest one so far) is skipped, and the skipped ones are listed at the end. A failure
(e.g. out of memory) is printed and the next configuration runs.

benchmarks/gpu_check.sh installs the GPU stack, runs tests/test_precision.py on the GPU and
then this script. Locally, a quick CPU run of the same code:

    .venv/bin/python benchmarks/gpu_check.py --quick --config=tiny
"""
import gc
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402
import tensorflow as tf  # noqa: E402

import bench_common  # noqa: E402
import precision_cpu  # noqa: E402
from albert_tf.config import AlbertConfig  # noqa: E402
from albert_tf.pretraining import pretraining_flops_per_example  # noqa: E402

TESTS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests")
# (batch, sequence length, masked positions) per config; 512 x 20 as the paper's pretraining.
SHAPES = {"base": (64, 512, 20), "large": (32, 512, 20), "xlarge": (16, 512, 20),
          "cpu_small": (8, 128, 20), "tiny": (4, 32, 4)}

FLAGS = flags.FLAGS
flags.DEFINE_list("configs", ["base", "large"],
                  "Model sizes: presets (base, large, xlarge, xxlarge), cpu_small, or tiny (the "
                  "test fixture's 5-layer config, for a quick run on a CPU).")
flags.DEFINE_string("config", None, "One config (overrides --configs).")
flags.DEFINE_list("precisions", ["bf16", "none", "fp16"], "--mixed_precision values, in order.")
flags.DEFINE_list("jit", ["true", "false"], "jit_compile settings, in order.")
flags.DEFINE_integer("batch_size", None, "Examples per step (default: per config, SHAPES).")
flags.DEFINE_integer("seq_length", None, "Tokens per example (default: per config).")
flags.DEFINE_integer("max_predictions_per_seq", None, "Masked positions (default: per config).")
flags.DEFINE_integer("steps", 10, "Timed steps per measurement (after a warm-up call).")
flags.DEFINE_integer("rounds", 2, "Alternating measurements per configuration.")
flags.DEFINE_float("budget_s", 330.0, "Seconds for all configurations; the rest are skipped.")
flags.DEFINE_bool("quick", False, "Base only, bf16 and fp32, XLA only, 5 steps, 1 round.")
flags.DEFINE_bool("with_tfm", True, "Time tf-models-official's pretrainer beside ours.")
flags.DEFINE_float("peak_tflops", None, "Peak TFLOP/s per device for MFU (default: "
                   "albert_tf's table, e.g. H200 989 bf16/fp16, 495 TF32).")
flags.DEFINE_string("results_json", None, "Also write the results to this JSON file.")


def load_config(name):
    if name == "tiny":
        return AlbertConfig.from_json_file(
            os.path.join(TESTS_DIR, "fixtures", "original_tiny", "albert_config.json"))
    return bench_common.load_config(name)


def configurations():
    """[(config name, precision, jit)] in the order they run."""
    if FLAGS.quick:
        names = [FLAGS.config or "base"]
        precisions, jits = ["bf16", "none"], [True]
    else:
        names = [FLAGS.config] if FLAGS.config else FLAGS.configs
        precisions = [p.strip() for p in FLAGS.precisions]
        jits = [j.strip().lower() == "true" for j in FLAGS.jit]
    unknown = sorted(set(precisions) - set(precision_cpu.PRECISIONS))
    if unknown:
        raise app.UsageError(f"--precisions: unknown {unknown}; expected some of "
                             f"{precision_cpu.PRECISIONS}.")
    return [(name, precision, jit) for jit in jits for name in names
            for precision in precisions]


def measure(name, precision, jit, steps, rounds):
    """One configuration: a result dict (examples/s, MFU, ratio) for ours and theirs."""
    config = load_config(name)
    # Dropout off on both sides: the same computation.
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    B, T, P = SHAPES.get(name, SHAPES["base"])
    B, T, P = (FLAGS.batch_size or B, FLAGS.seq_length or T,
               FLAGS.max_predictions_per_seq or P)
    batch = bench_common.pretraining_batch(config, B, T, P)
    runs = {bench_common.OURS: precision_cpu.ours_run(config, batch, precision, jit)}
    note = None
    if FLAGS.with_tfm:
        # Their failure (e.g. a step XLA cannot compile) still leaves ours measured.
        try:
            theirs = bench_common.tfm_pretraining_run(config, batch, jit, precision)
            theirs(1)
            runs[bench_common.THEIRS] = theirs
        except Exception as error:  # noqa: BLE001
            note = f"{bench_common.THEIRS} failed: {type(error).__name__}: " + (
                str(error).strip().splitlines() or [""])[0][:200]
    ratio = (bench_common.OURS, bench_common.THEIRS if bench_common.THEIRS in runs
             else bench_common.OURS)
    medians, ratios = bench_common.compare(runs, B, steps, rounds, ratio=ratio)
    flops = pretraining_flops_per_example(config, T, P)
    peak, peak_source = precision_cpu.peak_flops(precision, FLAGS.peak_tflops)
    result = {"config": name, "precision": precision_cpu.LABELS[precision], "jit": jit,
              "batch": B, "seq_length": T, "predictions": P,
              "tflops_per_example": flops / 1e12, "peak": peak_source}
    for side, rate in medians.items():
        result[side] = {"examples_per_second": rate,
                        "mfu": rate * flops / peak if peak else None}
    if bench_common.THEIRS in runs:
        result["ratio"] = float(sorted(ratios)[len(ratios) // 2])
    if note:
        result["note"] = note
    return result


def line(result):
    parts = [f"{result['config']:9s} {result['precision']} xla={str(result['jit']):5s} "
             f"b={result['batch']} s={result['seq_length']}"]
    for side in (bench_common.OURS, bench_common.THEIRS):
        if side in result:
            mfu = result[side]["mfu"]
            parts.append(f"{side} {result[side]['examples_per_second']:9.2f} ex/s"
                         + (f" MFU {100 * mfu:5.1f}%" if mfu is not None else ""))
    if "ratio" in result:
        parts.append(f"ratio {result['ratio']:.2f}x")
    if "note" in result:
        parts.append(result["note"])
    return " | ".join(parts)


def main(_):
    start = time.perf_counter()
    steps, rounds = (5, 1) if FLAGS.quick else (FLAGS.steps, FLAGS.rounds)
    gpus = tf.config.list_physical_devices("GPU")
    names = [tf.config.experimental.get_device_details(g).get("device_name", "?") for g in gpus]
    print(f"TensorFlow {tf.__version__}; GPUs: {names or 'none (running on the CPU)'}; "
          f"budget {FLAGS.budget_s:.0f} s; {steps} steps x {rounds} round(s)", flush=True)
    todo = configurations()
    results, skipped, failed, longest = [], [], [], 0.0
    for index, (name, precision, jit) in enumerate(todo):
        label = f"{name} {precision_cpu.LABELS[precision]} xla={jit}"
        elapsed = time.perf_counter() - start
        if elapsed + longest > FLAGS.budget_s:
            skipped.append(label)
            continue
        began = time.perf_counter()
        try:
            result = measure(name, precision, jit, steps, rounds)
        except Exception as error:  # noqa: BLE001 - report and go on to the next one
            message = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
            failed.append(f"{label}: {type(error).__name__}: {message}")
            print(f"FAILED {failed[-1]}", flush=True)
        else:
            result["seconds"] = time.perf_counter() - began
            results.append(result)
            print(line(result) + f" | {result['seconds']:.0f} s", flush=True)
        longest = max(longest, time.perf_counter() - began)
        gc.collect()
    print(f"\n{len(results)} configuration(s) measured, {len(failed)} failed, "
          f"{len(skipped)} skipped (budget), in {time.perf_counter() - start:.0f} s.")
    for result in results:
        print("  " + line(result))
    for label in failed:
        print(f"  failed: {label}")
    if skipped:
        print(f"  skipped: {', '.join(skipped)}")
    if FLAGS.results_json:
        with tf.io.gfile.GFile(FLAGS.results_json, "w") as f:
            json.dump({"results": results, "failed": failed, "skipped": skipped}, f, indent=1)
    return 1 if failed and not results else 0


if __name__ == "__main__":
    app.run(main)
