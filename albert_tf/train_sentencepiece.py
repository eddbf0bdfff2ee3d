"""Trains a SentencePiece vocabulary with the original ALBERT recipe.

The original README trains the released `30k-clean` vocabulary with one `spm_train` command:

    spm_train --input all.txt --model_prefix=30k-clean --vocab_size=30000 --logtostderr
      --pad_id=0 --unk_id=1 --eos_id=-1 --bos_id=-1
      --control_symbols=[CLS],[SEP],[MASK]
      --user_defined_symbols="(,),\\",-,.,–,£,€"
      --shuffle_input_sentence=true --input_sentence_size=10000000
      --character_coverage=0.99995 --model_type=unigram

`train_sentencepiece` runs the same training through the `sentencepiece` package, with two
additions the README leaves to the user:
* the corpus is preprocessed as the tokenizer will preprocess text (`preprocess_text`:
  whitespace collapse, NFKD, accents removed, and lower-casing when `do_lower_case`), so
  the pieces are learnt on the text they will be applied to;
* the user-defined symbols are passed as a list, so that the `"` symbol keeps id 7 (the
  README's quoting, read by recent SentencePiece as CSV, turns `",-,.,–,£,€` into one bogus
  symbol and shifts the ids after it).

Ids of a model trained this way: 0 `<pad>`, 1 `<unk>`, 2 `[CLS]`, 3 `[SEP]`, 4 `[MASK]`,
5-12 `(` `)` `"` `-` `.` `–` `£` `€`, then the learnt pieces. No BOS/EOS.

Sentences are streamed from the files (plain text or .gz, any path `tf.io.gfile` reads);
SentencePiece keeps a uniform random sample of `input_sentence_size` of them
(`shuffle_input_sentence`), so corpora larger than memory train in bounded memory. The
`.model` and `.vocab` files are written under temporary names and renamed when complete.

    python -m albert_tf.train_sentencepiece --input=corpus.txt --model_prefix=30k-clean \\
        --vocab_size=30000
"""

import gzip
import io
import os
import time

# The README's flags (see the module docstring). `character_coverage` etc. are keyword
# arguments of `train_sentencepiece`; these are fixed by the recipe.
CONTROL_SYMBOLS = ("[CLS]", "[SEP]", "[MASK]")
USER_DEFINED_SYMBOLS = ("(", ")", '"', "-", ".", "\u2013", "\u00a3", "\u20ac")
RECIPE = {
    "model_type": "unigram",
    "pad_id": 0,
    "unk_id": 1,
    "bos_id": -1,
    "eos_id": -1,
    "control_symbols": list(CONTROL_SYMBOLS),
    "user_defined_symbols": list(USER_DEFINED_SYMBOLS),
}


def _open_binary(path):
    """A binary file object for a local path or any URL `tf.io.gfile` reads; .gz unpacked."""
    if "://" in path:
        import tensorflow as tf

        raw = tf.io.gfile.GFile(path, "rb")
    else:
        raw = open(path, "rb")
    return gzip.GzipFile(fileobj=raw) if path.endswith(".gz") else raw


def iterate_sentences(input_files, do_lower_case=True, log_every=1_000_000):
    """Yields the preprocessed, non-empty lines of `input_files`, one at a time.

    Lines are decoded as UTF-8 with invalid bytes dropped (as `convert_to_unicode` does).
    Logs progress every `log_every` lines.
    """
    from absl import logging

    from albert_tf.tokenization import preprocess_text

    count = 0
    for path in input_files:
        with _open_binary(path) as f:
            for line in f:
                # `preprocess_text` decodes bytes as UTF-8, dropping invalid bytes.
                line = preprocess_text(line, lower=do_lower_case)
                if line:
                    count += 1
                    if log_every and count % log_every == 0:
                        logging.info("read %d sentences (now in %s)", count, path)
                    yield line
    if count == 0:
        raise ValueError(f"No text in {list(input_files)}: every line is empty.")


def _write_atomic(path, data):
    """Writes bytes to `path` under a temporary name, then renames it into place."""
    import tensorflow as tf

    tmp = f"{path}.tmp-{os.getpid()}-{time.time_ns()}"
    try:
        with tf.io.gfile.GFile(tmp, "wb") as f:
            f.write(data)
        tf.io.gfile.rename(tmp, path, overwrite=True)
    finally:
        if tf.io.gfile.exists(tmp):
            tf.io.gfile.remove(tmp)


def vocab_text(model_proto):
    """The `.vocab` file spm_train writes: "piece<TAB>score" per line, in id order."""
    from albert_tf.tokenization import sentencepiece_from_proto

    sp_model = sentencepiece_from_proto(model_proto)
    # spm_train prints scores with C++ stream defaults: 6 significant digits, like "%g".
    return "".join(f"{sp_model.IdToPiece(i)}\t{sp_model.GetScore(i):g}\n"
                   for i in range(sp_model.GetPieceSize())).encode("utf-8")


def train_sentencepiece(input_files, model_prefix, vocab_size=30000, do_lower_case=True,
                        input_sentence_size=10_000_000, shuffle_input_sentence=True,
                        character_coverage=0.99995, num_threads=None, extra_options=None):
    """Trains a SentencePiece model with the original recipe; writes `.model` and `.vocab`.

    Args:
      input_files: a path or a list of paths: text, one sentence per line (.gz allowed).
      model_prefix: output path without extension; `{model_prefix}.model` and
        `{model_prefix}.vocab` are written (atomically). Parent folders are created.
      vocab_size: number of pieces, the 13 fixed ones included (README: 30000).
      do_lower_case: lower-case the corpus (use the same value for the tokenizer).
      input_sentence_size: SentencePiece trains on at most this many sentences, a uniform
        sample when `shuffle_input_sentence` (README: 10,000,000, true).
      character_coverage: share of characters covered by the vocabulary (README: 0.99995).
      num_threads: training threads (default: the CPU count).
      extra_options: further `spm_train` options as a dict, e.g. {"max_sentence_length":
        8192}; they may not override the recipe's ids and symbols.

    Returns:
      the path of the `.model` file.
    """
    import sentencepiece as spm
    import tensorflow as tf
    from absl import logging

    if isinstance(input_files, (str, os.PathLike)):
        input_files = [input_files]
    input_files = [os.fspath(p) for p in input_files]
    if not input_files:
        raise ValueError("No input files given.")
    for path in input_files:
        if not tf.io.gfile.exists(path):
            raise FileNotFoundError(f"Corpus file {path!r} does not exist.")
    minimum = len(CONTROL_SYMBOLS) + len(USER_DEFINED_SYMBOLS) + 3
    if vocab_size < minimum:
        raise ValueError(f"vocab_size must be at least {minimum} (13 fixed pieces and a few "
                         f"learnt ones), got {vocab_size}.")
    options = dict(extra_options or {})
    clash = set(options) & (set(RECIPE) | {"input", "model_prefix", "vocab_size"})
    if clash:
        raise ValueError(f"extra_options may not set {sorted(clash)}: the recipe fixes them.")
    options.update(RECIPE)
    options.update(
        vocab_size=vocab_size,
        input_sentence_size=input_sentence_size,
        shuffle_input_sentence=shuffle_input_sentence,
        character_coverage=character_coverage,
        num_threads=num_threads or os.cpu_count() or 1,
    )
    model_prefix = os.fspath(model_prefix)
    parent = os.path.dirname(model_prefix)
    if parent:
        tf.io.gfile.makedirs(parent)

    logging.info("training SentencePiece on %s with %s", input_files, options)
    start = time.time()
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iterate_sentences(input_files, do_lower_case),
            model_writer=model, **options)
    except RuntimeError as err:
        raise RuntimeError(f"SentencePiece training on {input_files} failed: {err}") from None
    model_proto = model.getvalue()
    _write_atomic(model_prefix + ".vocab", vocab_text(model_proto))
    _write_atomic(model_prefix + ".model", model_proto)
    logging.info("wrote %s.model and %s.vocab in %.1f s", model_prefix, model_prefix,
                 time.time() - start)
    return model_prefix + ".model"


def _define_flags():
    from absl import flags

    flags.DEFINE_list("input", None, "Comma-separated text files (one sentence per line, "
                      ".gz allowed).")
    flags.DEFINE_string("model_prefix", None, "Output prefix: writes PREFIX.model and "
                        "PREFIX.vocab.")
    flags.DEFINE_integer("vocab_size", 30000, "Vocabulary size (the README's 30000).")
    flags.DEFINE_bool("do_lower_case", True, "Lower-case the corpus, as the tokenizer will.")
    flags.DEFINE_integer("input_sentence_size", 10_000_000,
                         "Train on a uniform sample of at most this many sentences.")
    flags.DEFINE_bool("shuffle_input_sentence", True,
                      "Sample the sentences at random (otherwise take the first ones).")
    flags.DEFINE_float("character_coverage", 0.99995,
                       "Share of the corpus characters the vocabulary covers.")
    flags.DEFINE_integer("num_threads", None, "Training threads (default: CPU count).")
    flags.mark_flags_as_required(["input", "model_prefix"])


def _main(argv):
    from absl import flags

    del argv
    FLAGS = flags.FLAGS
    train_sentencepiece(
        FLAGS.input, FLAGS.model_prefix, vocab_size=FLAGS.vocab_size,
        do_lower_case=FLAGS.do_lower_case, input_sentence_size=FLAGS.input_sentence_size,
        shuffle_input_sentence=FLAGS.shuffle_input_sentence,
        character_coverage=FLAGS.character_coverage, num_threads=FLAGS.num_threads)


if __name__ == "__main__":
    from absl import app

    _define_flags()
    app.run(_main)
