"""Serving latency and throughput of exported SavedModels: albert_tf against tf-models-official.

Both SavedModels take raw text and return the encoder's pooled output, tokenizing in the
graph with the same SentencePiece model and packing rows of --max_seq_length tokens:

- albert_tf: `export.export_saved_model` of an `AlbertModel` (head "none"), its `text`
  signature (which cuts a request to the length bucket of its longest text:
  `albert_tf.bucketing`);
- tf-models-official: its `AlbertEncoder` behind its `SentencepieceTokenizer` and
  `BertPackInputs` layers (the preprocessing of its TF-Hub exports), saved with one
  string signature; its rows are always --max_seq_length long.

Each SavedModel is loaded back and called through its signature with short texts (about 12
words) and long texts (about 300 words, cut at --max_seq_length): the median latency of a
request of one text, and the throughput (texts/s) of requests of --batch_size texts.
Measurements alternate between the two models.

    .venv/bin/python benchmarks/serving.py --config=cpu_small --max_seq_length=512
"""
import gzip
import os
import pathlib
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import bench_common  # noqa: E402
from albert_tf import export  # noqa: E402
from albert_tf.modeling import AlbertModel  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
SPM = ROOT / "tests/fixtures/original_tokenizer/spm1k.model"
FLAGS = flags.FLAGS
flags.DEFINE_string("config", "cpu_small", "A preset (base, ...), a JSON file or cpu_small.")
flags.DEFINE_integer("max_seq_length", 512, "Row length of the packed inputs.")
flags.DEFINE_integer("batch_size", 32, "Texts per request for the throughput figure.")
flags.DEFINE_integer("requests", 5, "Timed requests per measurement.")
flags.DEFINE_integer("rounds", 3, "Alternating measurements of each model.")


def texts(words, count):
    """`count` texts of about `words` words from the embedded corpus."""
    with gzip.open(ROOT / "data/corpus/docstrings_train.txt.gz", "rt", encoding="utf-8") as f:
        stream = f.read(2_000_000).split()
    return [" ".join(stream[i * words:(i + 1) * words]) for i in range(count)]


def export_ours(config, folder):
    model = AlbertModel(config)
    export.export_saved_model(model, folder, str(SPM), do_lower_case=True,
                              max_seq_length=FLAGS.max_seq_length)
    loaded = tf.saved_model.load(folder)
    text = loaded.signatures["text"]
    return lambda batch: text(text_a=tf.constant(batch))["pooled_output"].numpy()


def export_theirs(config, folder):
    import tf_keras
    from official.nlp.modeling import layers
    tokenizer = layers.SentencepieceTokenizer(lower_case=True, model_file_path=str(SPM))
    packer = layers.BertPackInputs(FLAGS.max_seq_length,
                                   special_tokens_dict=tokenizer.get_special_tokens_dict())
    encoder = bench_common.tfm_encoder(config)
    text = tf_keras.Input(shape=(), dtype=tf.string, name="text_a")
    pooled = encoder(packer([tokenizer(text)]))["pooled_output"]
    model = tf_keras.Model(text, pooled)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text_a")])
    def serve(text_a):
        return {"pooled_output": model(text_a)}

    tf.saved_model.save(model, folder, signatures={"text": serve})
    loaded = tf.saved_model.load(folder)
    signature = loaded.signatures["text"]
    return lambda batch: signature(text_a=tf.constant(batch))["pooled_output"].numpy()


def seconds_per_request(call, batch, requests):
    call(batch)
    start = time.perf_counter()
    for _ in range(requests):
        call(batch)
    return (time.perf_counter() - start) / requests


def main(_):
    config = bench_common.load_config(FLAGS.config)
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} on "
          f"{os.cpu_count()} CPUs; {bench_common.describe(FLAGS.config, config)}; "
          f"max_seq_length={FLAGS.max_seq_length}")
    root = tempfile.mkdtemp(prefix="serving_bench_")
    calls = {bench_common.OURS: export_ours(config, os.path.join(root, "ours")),
             bench_common.THEIRS: export_theirs(config, os.path.join(root, "theirs"))}
    kinds = {"short": texts(12, FLAGS.batch_size), "long": texts(300, FLAGS.batch_size)}
    for kind, batch in kinds.items():
        for size in (1, FLAGS.batch_size):
            times = {name: [] for name in calls}
            for _ in range(FLAGS.rounds):
                for name, call in calls.items():
                    times[name].append(seconds_per_request(call, batch[:size],
                                                           FLAGS.requests))
            ours, theirs = (float(np.median(times[n]))
                            for n in (bench_common.OURS, bench_common.THEIRS))
            figure = (lambda s: f"{1e3 * s:8.1f} ms/request") if size == 1 else (
                lambda s: f"{size / s:8.1f} texts/s")
            print(f"{kind:5s} texts, batch {size:3d}: {bench_common.OURS} {figure(ours)}   "
                  f"{bench_common.THEIRS} {figure(theirs)}   ratio {theirs / ours:.2f}x",
                  flush=True)
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    app.run(main)
