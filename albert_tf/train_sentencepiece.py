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

Sentences are streamed from the files (plain text or gzip, any path `tf.io.gfile` reads:
local, gs://, ...; `--input` takes comma-separated glob patterns) into SentencePiece, which
keeps a uniform random sample of `input_sentence_size` of them (`shuffle_input_sentence`),
so corpora larger than memory train in bounded memory. SentencePiece returns the model as
bytes; the `.model` and `.vocab` files are written through `tf.io.gfile` under temporary
names and renamed when complete.

    python -m albert_tf.train_sentencepiece --input=corpus.txt --model_prefix=30k-clean \\
        --vocab_size=30000
"""

import io
import os
import time

from albert_tf.errors import UserError

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


class SentencePieceTrainingError(UserError, ValueError):
    """Bad settings or corpus for SentencePiece training (a ValueError); names the file or
    the setting. SentencePiece's own refusals (e.g. more pieces than the corpus allows)
    become this error too."""


def iterate_sentences(input_files, do_lower_case=True, log_every=1_000_000):
    """Yields the preprocessed, non-empty lines of `input_files`, one at a time.

    Files are read through `tf.io.gfile` (any filesystem); gzip files (recognised by their
    first bytes) are decompressed. Lines must be UTF-8, as create_pretraining_data requires
    of the same corpus (the vocabulary and the data then see the same text). Logs progress
    every `log_every` lines.

    Raises:
      files.FileError: a file cannot be read (named).
      SentencePieceTrainingError: a line is not UTF-8 (file, line and byte named), or no line
        has text.
    """
    from absl import logging

    from albert_tf import files
    from albert_tf.tokenization import preprocess_text

    count = 0
    for path in input_files:
        with files.open_binary(path, "corpus file", gunzip=True) as f:
            for number, line in enumerate(f, 1):
                try:
                    line = line.decode("utf-8")
                except UnicodeDecodeError as error:
                    raise SentencePieceTrainingError(
                        f"{path}, line {number}: not UTF-8 text (byte {error.start} of the "
                        f"line: {error.reason}). Convert the corpus to UTF-8.") from None
                line = preprocess_text(line, lower=do_lower_case)
                if line:
                    count += 1
                    if log_every and count % log_every == 0:
                        logging.info("read %d sentences (now in %s)", count, path)
                    yield line
    if count == 0:
        raise SentencePieceTrainingError(
            f"No text in the corpus files {list(input_files)}: every line is empty.")


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
      input_files: a path, a list of paths or comma-separated glob patterns (any
        `tf.io.gfile` filesystem): text, one sentence per line (gzip allowed).
      model_prefix: output path without extension (any filesystem); `{model_prefix}.model`
        and `{model_prefix}.vocab` are written (atomically). Parent folders are created.
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

    Raises:
      files.FileError: an input pattern matches no file, or a file cannot be read or written.
      SentencePieceTrainingError: bad settings, an empty corpus, or SentencePiece refusing
        the settings for this corpus (e.g. "Vocabulary size is too high").
    """
    import sentencepiece as spm
    from absl import logging

    from albert_tf import files

    if isinstance(input_files, (str, os.PathLike)):
        input_files = [input_files]
    # A path that names a file is taken as it is (it may hold "[" or "*"); others are globs.
    input_files = [found for path in map(os.fspath, input_files)
                   for found in ([path] if files.exists(path) else
                                 files.expand_globs(path, what="corpus file"))]
    if not input_files:
        raise SentencePieceTrainingError("No corpus file given.")
    minimum = len(CONTROL_SYMBOLS) + len(USER_DEFINED_SYMBOLS) + 3
    if vocab_size < minimum:
        raise SentencePieceTrainingError(
            f"vocab_size must be at least {minimum} (13 fixed pieces and a few learnt ones), "
            f"got {vocab_size}.")
    options = dict(extra_options or {})
    clash = set(options) & (set(RECIPE) | {"input", "model_prefix", "vocab_size"})
    if clash:
        raise SentencePieceTrainingError(
            f"extra_options may not set {sorted(clash)}: the recipe fixes them.")
    options.update(RECIPE)
    options.update(
        vocab_size=vocab_size,
        input_sentence_size=input_sentence_size,
        shuffle_input_sentence=shuffle_input_sentence,
        character_coverage=character_coverage,
        num_threads=num_threads or os.cpu_count() or 1,
    )
    model_prefix = os.fspath(model_prefix)
    parent = files.dirname(model_prefix)
    if parent:
        files.makedirs(parent)

    logging.info("training SentencePiece on %s with %s", input_files, options)
    start = time.time()
    model = io.BytesIO()
    # SentencePiece turns an exception raised by the sentence iterator into a RuntimeError
    # that only quotes it; keep the exception itself to raise it as it is.
    failures = []

    def sentences():
        try:
            yield from iterate_sentences(input_files, do_lower_case)
        except BaseException as error:
            failures.append(error)
            raise

    try:
        spm.SentencePieceTrainer.train(sentence_iterator=sentences(), model_writer=model,
                                       **options)
    except RuntimeError as err:
        if failures:
            raise failures[0] from None
        message = " ".join(str(err).split())
        raise SentencePieceTrainingError(
            f"SentencePiece training on {input_files} failed: {message}") from None
    model_proto = model.getvalue()
    files.write_bytes(model_prefix + ".vocab", vocab_text(model_proto))
    files.write_bytes(model_prefix + ".model", model_proto)
    logging.info("wrote %s.model and %s.vocab in %.1f s", model_prefix, model_prefix,
                 time.time() - start)
    return model_prefix + ".model"


def _options():
    """The flags of `python -m albert_tf.train_sentencepiece`, named as the arguments of
    `train_sentencepiece` (`--input` is `input_files`)."""
    from albert_tf import cli
    return [
        cli.Option("input", None, "Comma-separated text files or glob patterns, any "
                   "tf.io.gfile path (one sentence per line, gzip allowed).", list),
        cli.Option("model_prefix", None, "Output prefix: writes PREFIX.model and PREFIX.vocab "
                   "(any tf.io.gfile path)."),
        cli.Option("vocab_size", 30000, "Vocabulary size (the README's 30000).", int),
        cli.option("do_lower_case", help="Lower-case the corpus, as the tokenizer will."),
        cli.Option("input_sentence_size", 10_000_000,
                   "Train on a uniform sample of at most this many sentences.", int),
        cli.Option("shuffle_input_sentence", True,
                   "Sample the sentences at random (otherwise take the first ones).", bool),
        cli.Option("character_coverage", 0.99995,
                   "Share of the corpus characters the vocabulary covers.", float),
        cli.Option("num_threads", None, "Training threads (default: CPU count).", int),
    ]


def _define_flags():
    """Defines the script's flags; see `cli.run`."""
    from albert_tf import cli
    cli.define(_options())


def main(argv):
    """The command line: `python -m albert_tf.train_sentencepiece --input=... --model_prefix=...`.
    Bad input is one `ERROR:` line (exit status 1)."""
    from albert_tf import cli
    with cli.script_main(argv) as FLAGS:
        values = cli.values_of(_options(), FLAGS)
        train_sentencepiece(values.pop("input"), **values)


if __name__ == "__main__":
    from albert_tf import cli
    cli.run(main, _define_flags, required=["input", "model_prefix"])
