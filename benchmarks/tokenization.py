"""Sentences per second: Python `FullTokenizer` vs the in-graph tokenizer in `tf.data`.

Both paths turn the same sentences into the same model inputs (`input_ids`, `input_mask`,
`segment_ids` of `max_seq_length`): the Python path with `encode_inputs` (tokenize, ids,
pack; one sentence at a time, as the original scripts do), the in-graph path with
`InGraphTokenizer` mapped over batches in a `tf.data` pipeline. The benchmark first checks
that both give identical features on the first sentences, then times each and prints both
rates and their ratio.

    python benchmarks/tokenization.py
    python benchmarks/tokenization.py --spm_model_file=30k-clean.model --corpus=all.txt --pairs

Defaults: the 1,000-piece model and the Python-docstring corpus in tests/fixtures.
"""

import gzip
import os
import sys
import time

from absl import app, flags

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _ROOT)


def define_flags():
    flags.DEFINE_string(
        "spm_model_file",
        os.path.join(_ROOT, "tests/fixtures/original_tokenizer/spm1k.model"),
        "SentencePiece model.")
    flags.DEFINE_string(
        "corpus",
        os.path.join(_ROOT, "tests/fixtures/original_pretraining_data/pydoc_corpus.txt.gz"),
        "Text file (optionally .gz), one sentence per line; blank lines are skipped.")
    flags.DEFINE_bool("do_lower_case", True, "Lower-case the text.")
    flags.DEFINE_integer("max_seq_length", 128, "Length of the packed features.")
    flags.DEFINE_integer("batch_size", 512, "Batch size of the tf.data pipeline.")
    flags.DEFINE_bool("pairs", False, "Pack consecutive sentences as (a, b) pairs.")
    flags.DEFINE_integer("max_sentences", 0, "Use at most this many sentences (0: all).")
    flags.DEFINE_integer("repeats", 5, "Timed passes per path, alternating between the paths; "
                         "the best pass is reported.")
    flags.DEFINE_integer("check_sentences", 2000, "Sentences checked for identical features.")


def read_sentences(path, limit):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        lines = [line.strip() for line in f if line.strip()]
    return lines[:limit] if limit else lines


def best_times(fns, repeats):
    """Runs the functions in turn, `repeats` rounds, so that both see the same machine load.

    Returns, per function, its best wall-clock seconds and its least CPU seconds (all
    threads of the process).
    """
    best = {name: [float("inf"), float("inf")] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            best[name][0] = min(best[name][0], time.perf_counter() - wall)
            best[name][1] = min(best[name][1], time.process_time() - cpu)
    return best


def main(argv):
    del argv
    FLAGS = flags.FLAGS
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf

    from albert_tf.tokenization import FullTokenizer, InGraphTokenizer, encode_inputs

    sentences = read_sentences(FLAGS.corpus, FLAGS.max_sentences)
    if FLAGS.pairs:
        text_a, text_b = sentences[0::2], sentences[1::2]
        text_a = text_a[:len(text_b)]
    else:
        text_a, text_b = sentences, None
    examples = len(text_a)
    max_len = FLAGS.max_seq_length

    tokenizer = FullTokenizer(None, FLAGS.do_lower_case, FLAGS.spm_model_file)
    layer = InGraphTokenizer(FLAGS.spm_model_file, FLAGS.do_lower_case, max_len)

    def python_features(start, stop):
        return [encode_inputs(tokenizer, text_a[i], text_b[i] if text_b else None, max_len)
                for i in range(start, stop)]

    # Same work on both sides: identical features on the first sentences.
    check = min(FLAGS.check_sentences, examples)
    expected = python_features(0, check)
    got = layer(tf.constant(text_a[:check]), tf.constant(text_b[:check]) if text_b else None)
    for key in ("input_ids", "input_mask", "segment_ids"):
        want = np.array([f[key] for f in expected], np.int32)
        if not np.array_equal(got[key].numpy(), want):
            bad = int(np.argmax(np.any(got[key].numpy() != want, axis=1)))
            raise SystemExit(f"{key} differs on example {bad}: {text_a[bad]!r}")

    # Built once and iterated on every pass: a new dataset would trace the tokenizer again.
    columns = (text_a, text_b) if text_b else (text_a,)
    pipeline = (tf.data.Dataset.from_tensor_slices(columns).batch(FLAGS.batch_size)
                .map(layer, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE))
    for _ in pipeline.take(2):  # Trace and warm up.
        pass

    def run_python():
        python_features(0, examples)

    def run_graph():
        for _ in pipeline:
            pass

    best = best_times({"python": run_python, "graph": run_graph}, FLAGS.repeats)
    (python_s, python_cpu), (graph_s, graph_cpu) = best["python"], best["graph"]
    python_rate, graph_rate = examples / python_s, examples / graph_s
    unit = "pairs" if FLAGS.pairs else "sentences"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{examples} {unit}, max_seq_length {max_len}, model "
          f"{os.path.basename(FLAGS.spm_model_file)}, {os.cpu_count()} CPUs, "
          f"load average {load:.1f}; features identical on the first {check}")
    print(f"python FullTokenizer + encode_inputs : {python_rate:10.0f} {unit}/s  "
          f"({python_cpu / examples * 1e6:6.1f} CPU-us each)")
    print(f"in-graph, tf.data batch {FLAGS.batch_size:<5d}       : {graph_rate:10.0f} {unit}/s  "
          f"({graph_cpu / examples * 1e6:6.1f} CPU-us each)")
    print(f"ratio in-graph / python              : {graph_rate / python_rate:10.2f}x  "
          f"(CPU time per {unit[:-1]}: {python_cpu / graph_cpu:.2f}x less in-graph)")
    if load > (os.cpu_count() or 1) * 0.5:
        print("note: the machine was busy (load average above half the CPUs): the wall-clock "
              "rates depend on the other work; the CPU-time ratio depends less on it.")


if __name__ == "__main__":
    define_flags()
    app.run(main)
