"""SQuAD throughput: feature conversion, and the fine-tuning train step.

1. Feature conversion (examples/s): `albert_tf.tasks.squad.convert_examples_to_features`
   against the original's approach, re-implemented below as the original runs it (single
   thread; per question: the context tokenized again, the banded LCS cell by cell in Python
   with `preprocess_text` called per cell, back-pointers in a dict, a 1024 x 1024 float32
   score matrix cleared per run). Both convert the same SQuAD-like examples (contexts of
   English sentences from the fixture corpus, 5 questions per context as in SQuAD, answers
   at word boundaries) with the fixture SentencePiece model; the features are checked to be
   identical before the speeds are reported.

2. Fine-tuning step (examples/s), SQuAD v1.1: `AlbertSquadV1` trained by the `Trainer` that
   run_squad uses (`FineTuner.make_trainer` with `squad_v1_loss`) against tf-models-official's
   `models.BertSpanLabeler` on its `networks.AlbertEncoder` (tf_keras) with its AdamW
   (`official.nlp.optimization.create_optimizer("adamw")`, global-norm clipping 1.0) in a
   `tf.function` step; the same batch, the same loss ((CE(start) + CE(end)) / 2), dropout
   off on both sides, with and without XLA, `--rounds` alternating measurements (medians).

    .venv/bin/python benchmarks/squad.py --contexts=40 --config=cpu_small --batch_size=8 \
        --seq_length=128 --steps=10
"""
import collections
import gzip
import os
import pathlib
import random
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import bench_common  # noqa: E402
from albert_tf import finetuning  # noqa: E402
from albert_tf.tasks import squad  # noqa: E402
from albert_tf.tasks.squad_task import (SquadSettings, build_squad_model,  # noqa: E402
                                        squad_v1_loss)
from albert_tf.tokenization import FullTokenizer, preprocess_text  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"

FLAGS = flags.FLAGS
flags.DEFINE_list("parts", ["features", "train"], "What to time: features, train.")
flags.DEFINE_integer("contexts", 40, "Contexts to convert (5 questions each).")
flags.DEFINE_integer("questions_per_context", 5, "Questions per context (SQuAD: ~4.6).")
flags.DEFINE_integer("max_seq_length", 384, "Feature conversion: tokens per window.")
bench_common.define_step_flags(steps=10, what="Fine-tuning ")
flags.adopt_module_key_flags(bench_common)   # listed by --help
flags.DEFINE_integer("rounds", 3, "Measurements per side, alternating; medians reported.")


# =========================================================================================
# 1. Feature conversion
# =========================================================================================

def squad_like_examples(num_contexts, per_context, seed=0):
    """Contexts of ~120 words from the fixture corpus; questions and answers from them."""
    with gzip.open(FIXTURES / "original_pretraining_data" / "pydoc_corpus.txt.gz", "rt",
                   encoding="utf-8") as f:
        sentences = [line.strip() for line in f if len(line.split()) > 4]
    rng = random.Random(seed)
    examples = []
    for c in range(num_contexts):
        words = []
        while len(words) < 120:
            words += rng.choice(sentences).split()
        context = " ".join(words)
        starts = [0] + [i + 1 for i, ch in enumerate(context) if ch == " "]
        for q in range(per_context):
            k = rng.randrange(len(words) - 3)
            span = rng.randint(1, 3)
            answer = " ".join(words[k:k + span])
            question = " ".join(rng.sample(words, 8)) + "?"
            examples.append(squad.SquadExample(f"c{c}q{q}", question, context, answer,
                                               starts[k]))
    return examples


def _original_convert_index(index, pos, m=None, is_start=True):
    # Same rule as squad._convert_index (kept separate: this is the reference program).
    if index[pos] is not None:
        return index[pos]
    n = len(index)
    rear = front = pos
    while rear < n - 1 and index[rear] is None:
        rear += 1
    while front > 0 and index[front] is None:
        front -= 1
    if index[front] is None:
        if index[rear] >= 1:
            return 0 if is_start else index[rear] - 1
        return index[rear]
    if index[rear] is None:
        if m is not None and index[front] < m - 1:
            return index[front] + 1 if is_start else m - 1
        return index[front]
    if index[rear] > index[front] + 1:
        return index[front] + 1 if is_start else index[rear] - 1
    return index[rear] if is_start else index[front]


def original_style_features(examples, tokenizer, max_seq_length, doc_stride,
                            max_query_length, is_training):
    """The original squad_utils conversion as it runs (see the module docstring); returns
    [(input_ids, start_position, end_position)] per feature."""
    sp, lower = tokenizer.sp_model, tokenizer.do_lower_case
    out = []
    scores = np.zeros((1024, 1024), dtype=np.float32)
    for example in examples:
        query = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(example.question_text))
        query = query[:max_query_length]
        pieces = tokenizer.tokenize(example.paragraph_text)
        chartok_to_tok, starts, ends, count = [], [], [], 0
        for i, piece in enumerate(pieces):
            text = piece.replace("\u2581", " ")
            chartok_to_tok.extend([i] * len(text))
            starts.append(count)
            count += len(text)
            ends.append(count - 1)
        paragraph = example.paragraph_text
        joined = "".join(pieces).replace("\u2581", " ")
        n, m = len(paragraph), len(joined)
        if n > scores.shape[0] or m > scores.shape[1]:
            scores = np.zeros((max(n, scores.shape[0]), max(m, scores.shape[1])), np.float32)
        pointers = {}

        def lcs(band):
            scores.fill(0)
            pointers.clear()
            for i in range(n):
                for j in range(i - band, i + band):
                    if j >= m or j < 0:
                        continue
                    if i > 0:
                        pointers[(i, j)] = 0
                        scores[i, j] = scores[i - 1, j]
                    if j > 0 and scores[i, j - 1] > scores[i, j]:
                        pointers[(i, j)] = 1
                        scores[i, j] = scores[i, j - 1]
                    diag = scores[i - 1, j - 1] if i > 0 and j > 0 else 0
                    if (preprocess_text(paragraph[i], lower=lower, remove_space=False)
                            == joined[j] and diag + 1 > scores[i, j]):
                        pointers[(i, j)] = 2
                        scores[i, j] = diag + 1

        band = abs(n - m) + 5
        for _ in range(2):
            lcs(band)
            if scores[n - 1, m - 1] > 0.8 * n:
                break
            band *= 2
        orig_to_chartok, chartok_to_orig = [None] * n, [None] * m
        i, j = n - 1, m - 1
        while i >= 0 and j >= 0 and (i, j) in pointers:
            if pointers[(i, j)] == 2:
                orig_to_chartok[i], chartok_to_orig[j] = j, i
                i, j = i - 1, j - 1
            elif pointers[(i, j)] == 1:
                j -= 1
            else:
                i -= 1
        if all(v is None for v in orig_to_chartok) or scores[n - 1, m - 1] < 0.8 * n:
            continue
        tok_start = [_original_convert_index(chartok_to_orig, s, n, True) for s in starts]
        tok_end = [_original_convert_index(chartok_to_orig, e, n, False) for e in ends]
        del tok_start, tok_end   # built for post-processing; part of the work timed
        if is_training:
            first = chartok_to_tok[_original_convert_index(
                orig_to_chartok, example.start_position, is_start=True)]
            last = chartok_to_tok[_original_convert_index(
                orig_to_chartok, example.start_position + len(example.orig_answer_text) - 1,
                is_start=False)]
        doc = [sp.PieceToId(p) for p in pieces]
        spans = squad.doc_spans(len(doc), max_seq_length - len(query) - 3, doc_stride)
        for index, span in enumerate(spans):
            flags_ = {}
            for k in range(span.length):
                position = span.start + k
                best, best_index = None, None
                for other_index, other in enumerate(spans):
                    end = other.start + other.length - 1
                    if other.start <= position <= end:
                        score = (min(position - other.start, end - position)
                                 + 0.01 * other.length)
                        if best is None or score > best:
                            best, best_index = score, other_index
                flags_[len(query) + 2 + k] = best_index == index
            ids = ([tokenizer.cls_id] + query + [tokenizer.sep_id]
                   + doc[span.start:span.start + span.length] + [tokenizer.sep_id])
            ids += [0] * (max_seq_length - len(ids))
            start = end_ = None
            if is_training:
                if span.start <= first and last <= span.start + span.length - 1:
                    start = first - span.start + len(query) + 2
                    end_ = last - span.start + len(query) + 2
                else:
                    start = end_ = 0
            out.append((ids, start, end_))
    return out


def bench_features():
    tokenizer = FullTokenizer(None, True, str(FIXTURES / "original_tokenizer" / "spm1k.model"))
    examples = squad_like_examples(FLAGS.contexts, FLAGS.questions_per_context)
    # Training order: the original shuffles the questions before converting them.
    random.Random(12345).shuffle(examples)
    args = (tokenizer, FLAGS.max_seq_length, 128, 64, True)
    rates = collections.defaultdict(list)
    outputs = {}
    for _ in range(2):
        for name, convert in (("albert_tf", squad.convert_examples_to_features),
                              ("original approach", original_style_features)):
            start = time.perf_counter()
            features = convert(examples, *args)
            rates[name].append(len(examples) / (time.perf_counter() - start))
            outputs[name] = features
    ours = [(f.input_ids, f.start_position, f.end_position) for f in outputs["albert_tf"]]
    if ours != outputs["original approach"]:
        raise AssertionError("The two conversions disagree; the speeds are not comparable.")
    best = {name: max(values) for name, values in rates.items()}
    print(f"feature conversion: {len(examples)} examples ({FLAGS.contexts} contexts x "
          f"{FLAGS.questions_per_context} questions, shuffled), {len(ours)} features, "
          "identical; "
          f"albert_tf {best['albert_tf']:,.1f} ex/s   original approach "
          f"{best['original approach']:,.1f} ex/s   ratio "
          f"{best['albert_tf'] / best['original approach']:.1f}x", flush=True)
    # Without the per-context reuse (every question on its own context).
    single = [squad.SquadExample(e.qas_id, e.question_text, e.paragraph_text,
                                 e.orig_answer_text, e.start_position)
              for e in examples[:FLAGS.contexts]]
    single = list({e.paragraph_text: e for e in single}.values())
    start = time.perf_counter()
    squad.convert_examples_to_features(single, *args)
    ours_single = len(single) / (time.perf_counter() - start)
    start = time.perf_counter()
    original_style_features(single, *args)
    theirs_single = len(single) / (time.perf_counter() - start)
    print(f"feature conversion, one question per context: albert_tf {ours_single:,.1f} ex/s"
          f"   original approach {theirs_single:,.1f} ex/s   ratio "
          f"{ours_single / theirs_single:.1f}x", flush=True)


# =========================================================================================
# 2. Fine-tuning step
# =========================================================================================


def make_batch(config, batch_size, seq_length):
    """Question + context windows: a quarter question, padding in half the rows."""
    rng = np.random.default_rng(0)
    B, T = batch_size, seq_length
    mask = np.ones((B, T), np.int32)
    mask[B // 2:, T * 3 // 4:] = 0
    segments = (np.arange(T) >= T // 4).astype(np.int32)[None].repeat(B, 0) * mask
    return {
        "input_ids": tf.constant(rng.integers(5, config.vocab_size, (B, T)) * mask, tf.int32),
        "input_mask": tf.constant(mask),
        "segment_ids": tf.constant(segments),
        "start_positions": tf.constant(rng.integers(T // 4, T // 2, B), tf.int32),
        "end_positions": tf.constant(rng.integers(T // 2, T * 3 // 4, B), tf.int32),
    }


def ours(config, batch, jit):
    """run(n) for albert_tf: the Trainer run_squad's FineTuner.train runs, one device."""
    settings = finetuning.FinetuningSettings(
        output_dir=tempfile.mkdtemp(prefix="albert_tf_squad_bench_"),
        max_seq_length=batch["input_ids"].shape[1],
        train_batch_size=batch["input_ids"].shape[0], learning_rate=3e-5, train_step=100000,
        warmup_step=1000, jit_compile=jit)
    tuner = finetuning.FineTuner(config, settings,
                                 lambda c: build_squad_model(c, SquadSettings("1.1")))
    trainer = tuner.make_trainer(squad_v1_loss)
    iterator = iter(tf.data.Dataset.from_tensors(batch).repeat())
    return lambda n: trainer.train(iterator, n)


def theirs(config, batch, jit):
    """run(n) for tf-models-official's BertSpanLabeler on its AlbertEncoder, its AdamW."""
    from official.nlp import optimization
    from official.nlp.modeling import models

    initializer = bench_common.tfm_initializer(config)
    encoder = bench_common.tfm_encoder(config)
    labeler = models.BertSpanLabeler(encoder, initializer=initializer)
    optimizer = optimization.create_optimizer(3e-5, 100000, 1000, optimizer_type="adamw")
    inputs = bench_common.tfm_inputs(batch)
    labeler(inputs)
    variables = labeler.trainable_variables

    def cross_entropy(logits, positions):
        return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=positions,
                                                              logits=logits)

    def step(features):
        with tf.GradientTape() as tape:
            start, end = labeler(features, training=True)
            loss = tf.reduce_mean(
                (cross_entropy(tf.cast(start, tf.float32), batch["start_positions"])
                 + cross_entropy(tf.cast(end, tf.float32), batch["end_positions"])) / 2)
        # Its AdamWeightDecay clips to global norm 1.0 itself (gradient_clip_norm).
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    return bench_common.repeated(step, inputs, jit)



def bench_train():
    config = bench_common.load_config(FLAGS.config)
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    B, T = FLAGS.batch_size, FLAGS.seq_length
    batch = make_batch(config, B, T)
    print(f"fine-tuning {bench_common.describe(FLAGS.config, config)} batch={B} seq={T} "
          f"steps={FLAGS.steps} devices={bench_common.devices()}")
    for jit in [j.strip().lower() == "true" for j in FLAGS.jit]:
        runs = {bench_common.OURS: ours(config, batch, jit),
                bench_common.THEIRS: theirs(config, batch, jit)}
        medians, ratios = bench_common.compare(runs, B, FLAGS.steps, FLAGS.rounds)
        bench_common.print_comparison("SQuAD v1.1 step", jit, medians, ratios,
                                      theirs_name="BertSpanLabeler")


def main(_):
    logging.set_verbosity(logging.WARNING)
    if "features" in FLAGS.parts:
        bench_features()
    if "train" in FLAGS.parts:
        bench_train()


if __name__ == "__main__":
    app.run(main)
