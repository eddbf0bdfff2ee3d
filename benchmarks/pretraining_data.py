"""Throughput and peak memory of albert_tf.create_pretraining_data against the original algorithm.

The reference is the original create_pretraining_data.py algorithm as the original runs it,
written out in `reference` below: one process, pure Python, the whole tokenized corpus and
every instance in memory until the end, tokens as piece strings, the word-start test
re-building its character sets on every call, `np.random.choice` per masked span, one
`tf.train.Example` per instance written with `tf.io.TFRecordWriter`. With `--original_dir`
pointing at a clone of google-research/ALBERT, the original script itself is timed too.

Both run on the same corpus, generated from the fixture corpus (Python docstrings): its
documents resampled, with a seed, until the wanted size is reached. Each run is a separate
process. Peak memory is sampled every 50 ms as the resident set of the main process plus the
unique set (pages no other process maps) of each child: forked workers share the parent's
pages, which a plain sum of resident sets would count once per worker. For one process
this is its resident set size. The plain sum is printed too, as an upper bound.

    .venv/bin/python benchmarks/pretraining_data.py --sizes_mb=5,20 --num_workers=2

Prints one table: MB of text per second end to end (interpreter start included) and for the
job alone, peak memory, and the ratios ours / reference.
"""

import argparse
import collections
import gzip
import json
import os
import pathlib
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time

import psutil

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURE_CORPUS = ROOT / "tests" / "fixtures" / "original_pretraining_data" / "pydoc_corpus.txt.gz"
SPM_MODEL = ROOT / "tests" / "fixtures" / "original_tokenizer" / "spm1k.model"


# --------------------------------------------------------------------------------------------
# The reference: the original algorithm, single process, everything in memory.
# --------------------------------------------------------------------------------------------

REFERENCE = r'''
import collections, json, random, sys, time
import numpy as np
import tensorflow as tf
from albert_tf import tokenization

started = time.time()
args = json.loads(sys.argv[1])
tokenizer = tokenization.FullTokenizer(None, args["do_lower_case"], args["spm_model_file"])
rng = random.Random(args["random_seed"])
max_seq_length, max_pred = args["max_seq_length"], args["max_predictions_per_seq"]
masked_lm_prob, short_seq_prob, ngram = args["masked_lm_prob"], args["short_seq_prob"], 3
Instance = collections.namedtuple(
    "Instance", "tokens segment_ids masked_lm_positions masked_lm_labels is_random_next "
    "token_boundary")

def is_start_piece(piece):
    # As the original: the sets are built on every call.
    special = set('!"#$%&"()*+,-./:;?@[\\]^_`{|}~')
    special.add("€".encode("utf-8")); special.add("£".encode("utf-8"))
    letters = set("abcdefghijklmnopqrstuvwxyz")
    return (piece.startswith("\u2581") or piece.startswith("<") or piece in special
            or not all([c.lower() in letters.union(special) for c in piece]))

def mask(tokens):
    candidates, boundary = [], [0] * len(tokens)
    for i, token in enumerate(tokens):
        if token in ("[CLS]", "[SEP]"):
            boundary[i] = 1
            continue
        if candidates and not is_start_piece(token):
            candidates[-1].append(i)
        else:
            candidates.append([i])
            if is_start_piece(token):
                boundary[i] = 1
    output = list(tokens)
    num_to_predict = min(max_pred, max(1, int(round(len(tokens) * masked_lm_prob))))
    ngrams = np.arange(1, ngram + 1, dtype=np.int64)
    pvals = 1. / np.arange(1, ngram + 1)
    pvals /= pvals.sum(keepdims=True)
    spans = [[candidates[k:k + n] for n in ngrams] for k in range(len(candidates))]
    rng.shuffle(spans)
    masked, covered = [], set()
    for span in spans:
        if len(masked) >= num_to_predict:
            break
        n = np.random.choice(ngrams[:len(span)],
                             p=pvals[:len(span)] / pvals[:len(span)].sum(keepdims=True))
        index_set = sum(span[n - 1], [])
        n -= 1
        while len(masked) + len(index_set) > num_to_predict and n > 0:
            index_set = sum(span[n - 1], [])
            n -= 1
        if len(masked) + len(index_set) > num_to_predict:
            continue
        if any(i in covered for i in index_set):
            continue
        for i in index_set:
            covered.add(i)
            if rng.random() < 0.8:
                output[i] = "[MASK]"
            elif rng.random() >= 0.5:
                output[i] = vocab_words[rng.randint(0, len(vocab_words) - 1)]
            masked.append((i, tokens[i]))
    rng.shuffle(spans)
    masked.sort()
    return output, [i for i, _ in masked], [t for _, t in masked], boundary

def truncate(a, b):
    while len(a) + len(b) > max_seq_length - 3:
        longer = a if len(a) > len(b) else b
        if rng.random() < 0.5:
            del longer[0]
        else:
            longer.pop()

def from_document(documents, d):
    document = documents[d]
    max_num_tokens = max_seq_length - 3
    target = max_num_tokens
    if rng.random() < short_seq_prob:
        target = rng.randint(2, max_num_tokens)
    out, chunk, length, i = [], [], 0, 0
    while i < len(document):
        chunk.append(document[i]); length += len(document[i])
        if i == len(document) - 1 or length >= target:
            a_end = rng.randint(1, len(chunk) - 1) if len(chunk) >= 2 else 1
            a = [t for s in chunk[:a_end] for t in s]
            b = []
            if len(chunk) == 1:
                label = True
                for _ in range(10):
                    r = rng.randint(0, len(documents) - 1)
                    if r != d:
                        break
                other = documents[r]
                for j in range(rng.randint(0, len(other) - 1), len(other)):
                    b.extend(other[j])
                    if len(b) >= target - len(a):
                        break
                i -= len(chunk) - a_end
            elif rng.random() < 0.5:
                label = True
                b = [t for s in chunk[a_end:] for t in s]
                a, b = b, a
            else:
                label = False
                b = [t for s in chunk[a_end:] for t in s]
            truncate(a, b)
            tokens = ["[CLS]"] + a + ["[SEP]"] + b + ["[SEP]"]
            segments = [0] * (len(a) + 2) + [1] * (len(b) + 1)
            output, positions, labels, boundary = mask(tokens)
            out.append(Instance(output, segments, positions, labels, label, boundary))
            chunk, length = [], 0
        i += 1
    return out

documents = [[]]
for path in args["input_files"]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = tokenization.preprocess_text(line, lower=args["do_lower_case"])
            if not line:
                documents.append([])
            tokens = tokenizer.tokenize(line)
            if tokens:
                documents[-1].append(tokens)
documents = [d for d in documents if d]
rng.shuffle(documents)
vocab_words = list(tokenizer.vocab.keys())
instances = []
for _ in range(args["dupe_factor"]):
    for d in range(len(documents)):
        instances.extend(from_document(documents, d))
rng.shuffle(instances)

def ints(values):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))

with tf.io.TFRecordWriter(args["output_file"]) as writer:
    for inst in instances:
        ids = tokenizer.convert_tokens_to_ids(inst.tokens)
        pad = max_seq_length - len(ids)
        positions = list(inst.masked_lm_positions)
        label_ids = tokenizer.convert_tokens_to_ids(inst.masked_lm_labels)
        weights = [1.0] * len(label_ids)
        more = max_pred - len(positions)
        features = collections.OrderedDict(
            input_ids=ints(ids + [0] * pad), input_mask=ints([1] * len(ids) + [0] * pad),
            segment_ids=ints(inst.segment_ids + [0] * pad),
            token_boundary=ints(inst.token_boundary + [0] * pad),
            masked_lm_positions=ints(positions + [0] * more),
            masked_lm_ids=ints(label_ids + [0] * more),
            masked_lm_weights=tf.train.Feature(
                float_list=tf.train.FloatList(value=weights + [0.0] * more)),
            next_sentence_labels=ints([int(inst.is_random_next)]))
        example = tf.train.Example(features=tf.train.Features(feature=features))
        writer.write(example.SerializeToString())
print(json.dumps({"instances": len(instances), "seconds": time.time() - started}))
'''


# --------------------------------------------------------------------------------------------
# Measuring.
# --------------------------------------------------------------------------------------------


def make_corpus(path, megabytes, seed=0):
    """Documents of the fixture corpus, resampled until `megabytes` of text."""
    with gzip.open(FIXTURE_CORPUS, "rt", encoding="utf-8") as f:
        documents = [d.strip("\n") + "\n" for d in f.read().split("\n\n") if d.strip()]
    rng = random.Random(seed)
    target = int(megabytes * 1e6)
    size = 0
    with open(path, "w", encoding="utf-8") as out:
        while size < target:
            document = rng.choice(documents)
            out.write(document + "\n")
            size += len(document.encode("utf-8")) + 1
    return size


def measure(command, cwd=ROOT):
    """Runs `command`; returns (wall s, CPU s, peak tree MB, peak RSS-sum MB, stdout).

    CPU seconds (user + system, workers included) do not depend on what else runs on the
    machine; wall seconds do.
    """
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_before = usage.ru_utime + usage.ru_stime
    started = time.time()
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    peaks = {"tree": 0, "rss": 0}
    done = threading.Event()

    def sample():
        root = psutil.Process(process.pid)
        while not done.is_set():
            tree = rss = 0
            try:
                tree = rss = root.memory_info().rss
                for child in root.children(recursive=True):
                    try:
                        info = child.memory_full_info()
                        tree += info.uss
                        rss += info.rss
                    except (psutil.NoSuchProcess, psutil.AccessDenied):
                        pass
            except psutil.NoSuchProcess:
                break
            peaks["tree"] = max(peaks["tree"], tree)
            peaks["rss"] = max(peaks["rss"], rss)
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = process.communicate()
    done.set()
    sampler.join()
    seconds = time.time() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = usage.ru_utime + usage.ru_stime - cpu_before
    if process.returncode != 0:
        raise RuntimeError(f"{command[:3]} failed ({process.returncode}):\n{stderr[-3000:]}")
    return seconds, cpu, peaks["tree"] / 2 ** 20, peaks["rss"] / 2 ** 20, stdout


FLAGS = dict(do_lower_case=True, max_seq_length=128, max_predictions_per_seq=20,
             masked_lm_prob=0.15, short_seq_prob=0.1, random_seed=12345)


def run_ours(corpus, output_dir, dupe_factor, num_workers):
    command = [sys.executable, "-m", "albert_tf.create_pretraining_data",
               f"--input_file={corpus}", f"--output_file={output_dir}/ours.tfrecord",
               f"--spm_model_file={SPM_MODEL}", "--vocab_file=unused",
               f"--dupe_factor={dupe_factor}", f"--num_workers={num_workers}"]
    command += [f"--{k}={v}" for k, v in FLAGS.items() if k != "do_lower_case"]
    command.append("--do_lower_case")
    seconds, cpu, tree, rss, _ = measure(command)
    summary = json.loads(pathlib.Path(f"{output_dir}/_ours.tfrecord.summary.json").read_text())
    os.remove(f"{output_dir}/_ours.tfrecord.summary.json")  # so that the next run redoes it
    return {"wall": seconds, "cpu": cpu, "job": summary["seconds"], "tree": tree, "rss": rss,
            "instances": summary["instances"]}


def run_reference(corpus, output_dir, dupe_factor):
    args = dict(FLAGS, input_files=[corpus], output_file=f"{output_dir}/reference.tfrecord",
                spm_model_file=str(SPM_MODEL), dupe_factor=dupe_factor)
    seconds, cpu, tree, rss, stdout = measure(
        [sys.executable, "-c", REFERENCE, json.dumps(args)])
    result = json.loads(stdout.strip().splitlines()[-1])
    return {"wall": seconds, "cpu": cpu, "job": result["seconds"], "tree": tree, "rss": rss,
            "instances": result["instances"]}


def run_original(original_dir, corpus, output_dir, dupe_factor):
    command = [sys.executable, "-m", "albert.create_pretraining_data",
               f"--input_file={corpus}", f"--output_file={output_dir}/original.tfrecord",
               f"--spm_model_file={SPM_MODEL}", "--vocab_file=unused",
               f"--dupe_factor={dupe_factor}"]
    command += [f"--{k}={v}" for k, v in FLAGS.items() if k != "do_lower_case"]
    command.append("--do_lower_case")
    seconds, cpu, tree, rss, _ = measure(command, cwd=original_dir)
    return {"wall": seconds, "cpu": cpu, "job": seconds, "tree": tree, "rss": rss,
            "instances": None}


def import_baseline():
    """Memory and time of only importing what our command imports (TensorFlow included)."""
    seconds, cpu, tree, rss, _ = measure(
        [sys.executable, "-c", "import albert_tf.create_pretraining_data"])
    return {"wall": seconds, "cpu": cpu, "tree": tree, "rss": rss}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes_mb", default="5,20",
                        help="corpus sizes; ours runs on each, the reference on the first")
    parser.add_argument("--dupe_factor", type=int, default=1)
    parser.add_argument("--num_workers", type=int, default=os.cpu_count())
    parser.add_argument("--reference_on_all_sizes", action="store_true",
                        help="also run the reference on the larger corpora (slow)")
    parser.add_argument("--original_dir", default=None,
                        help="a clone of google-research/ALBERT: time the original script too")
    args = parser.parse_args()
    sizes = [float(s) for s in args.sizes_mb.split(",")]
    rows = collections.OrderedDict()
    with tempfile.TemporaryDirectory(prefix="pretraining_bench_") as tmp:
        baseline = import_baseline()
        for k, size in enumerate(sizes):
            corpus = os.path.join(tmp, f"corpus_{size:g}mb.txt")
            text_mb = make_corpus(corpus, size) / 1e6
            rows[("ours", size)] = dict(run_ours(corpus, tmp, args.dupe_factor,
                                                 args.num_workers), mb=text_mb)
            if k == 0 or args.reference_on_all_sizes:
                rows[("reference", size)] = dict(run_reference(corpus, tmp, args.dupe_factor),
                                                 mb=text_mb)
                if args.original_dir:
                    rows[("original", size)] = dict(run_original(
                        args.original_dir, corpus, tmp, args.dupe_factor), mb=text_mb)
    cpus = os.cpu_count()
    print(f"\ncreate_pretraining_data, dupe_factor={args.dupe_factor}, max_seq_length=128, "
          f"{cpus} CPU cores, ours with --num_workers={args.num_workers}")
    print(f"import only (python -c 'import albert_tf.create_pretraining_data'): "
          f"{baseline['wall']:.1f} s wall, {baseline['cpu']:.1f} s CPU, "
          f"{baseline['tree']:.0f} MB; load average now {os.getloadavg()[0]:.1f}")
    header = (f"{'run':<10}{'corpus MB':>10}{'instances':>11}{'wall s':>9}{'CPU s':>8}"
              f"{'job s':>8}{'MB/s wall':>11}{'MB/s job':>10}{'peak MB':>9}{'RSS sum MB':>12}")
    print(header)
    for (name, size), r in rows.items():
        instances = r["instances"] if r["instances"] is not None else "-"
        print(f"{name:<10}{r['mb']:>10.2f}{instances:>11}{r['wall']:>9.1f}{r['cpu']:>8.1f}"
              f"{r['job']:>8.1f}{r['mb'] / r['wall']:>11.3f}{r['mb'] / r['job']:>10.3f}"
              f"{r['tree']:>9.0f}{r['rss']:>12.0f}")
    first = sizes[0]
    ours, ref = rows[("ours", first)], rows[("reference", first)]
    print(f"throughput ours / reference on {first:g} MB: {ref['wall'] / ours['wall']:.1f}x "
          f"end to end (wall), {ref['job'] / ours['job']:.1f}x job only (wall), "
          f"{ref['cpu'] / ours['cpu']:.1f}x in CPU time")
    if ("original", first) in rows:
        orig = rows[("original", first)]
        print(f"throughput ours / original script on {first:g} MB: "
              f"{orig['wall'] / ours['wall']:.1f}x end to end (wall), "
              f"{orig['cpu'] / ours['cpu']:.1f}x in CPU time")
    last = sizes[-1]
    print(f"peak memory ours on {last:g} MB / reference on {first:g} MB: "
          f"{rows[('ours', last)]['tree']:.0f} / {ref['tree']:.0f} MB")


if __name__ == "__main__":
    main()
