"""Pretraining data for ALBERT: text corpus -> TFRecords of masked-LM + sentence-order examples.

Command line (every flag of the original script keeps its name, meaning and default):

    python -m albert_tf.create_pretraining_data \\
      --input_file="corpus/*.txt" --output_file=tfrecords/train.tfrecord \\
      --spm_model_file=30k-clean.model --vocab_file=unused --do_lower_case \\
      --max_seq_length=512 --max_predictions_per_seq=20 --masked_lm_prob=0.15 \\
      --dupe_factor=10 --short_seq_prob=0.1 --ngram=3 --random_seed=12345 \\
      --num_workers=8 --num_output_shards=64

From Python: `create_pretraining_data(...)` runs the whole job and returns its summary;
`create_instances(...)` turns a few documents into `TrainingInstance`s (tests, notebooks).

Every path (inputs, outputs, the vocabulary, the job's own files) may be on any filesystem
`tf.io.gfile` knows: local, `gs://`, `ram://`, ... All reading and writing goes through
`albert_tf.files`; the worker processes only compute (the main process reads and writes).

Input: UTF-8 text (optionally gzip-compressed), one sentence per line, a blank line between
documents; a new file does not start a new document (as in the original). `input_file` is a
comma-separated list of glob patterns; a pattern that matches nothing is an error.

Output: the original feature names, kinds and lengths (SPEC Part 2, 3.5), read by the
original `run_pretraining.py` and by ours. `output_file` is a comma-separated list of files
that receive the instances round-robin, as in the original; or, with `num_output_shards=K`
and one `output_file` "train.tfrecord", the files "train.tfrecord-00000-of-0000K" ... Beside
the first output file, "_train.tfrecord.summary.json" holds the summary (instances per
shard, tokens, masking statistics) and is written last: it marks the output as complete.
The job's side files start with "_" (`files.side_file`), so `--input_file=train.tfrecord*`
of the pretraining selects the TFRecords only.

The code: this module is the API and the command line; `_pretraining_instances` the
original's algorithm on token codes, `_pretraining_records` the TFRecord encoding,
`_pretraining_tasks` the chunk reader and the tasks run on the workers, `_pretraining_job`
the job's state, checkpoints, shard writer and progress lines.

The algorithm is the original's (target lengths, segment accumulation, sentence-order or
random-next-sentence labels with the one-segment random-document quirk, truncation, n-gram
and whole-word masking, 80/10/10 replacement, token_boundary; see `_pretraining_instances`).
What differs, because this version streams and runs on several processes:

* The corpus is cut, in reading order, into chunks of documents (`chunk_bytes` of text, at
  least `min_documents_per_chunk` documents). Documents are shuffled within their chunk, and
  the random-document B segment is drawn from the chunk's documents, not from the whole
  corpus (the original holds the whole corpus in memory).
* Passes are the outer loop: pass 1 over all chunks, then pass 2, ... (`dupe_factor`
  passes; the tokenized chunks are cached on disk in between), and instances are shuffled
  within windows of about `shuffle_buffer_size` instances, then dealt round-robin to the
  output files. The original shuffles all instances of all passes at once, in memory.
* Every random choice is seeded from `random_seed`, the chunk index and the pass (the
  original leaves the n-gram length to NumPy's unseeded global generator), so the same
  settings give byte-identical files whatever `num_workers` is. The output is not the
  original's byte for byte: only its distribution is (the original's is not reproducible
  either).
* Invalid UTF-8 is an error naming the file and line (or skipped and counted with
  `skip_bad_lines`); the original reads it with TensorFlow's text mode and fails.
* "\\r" characters are removed from lines, as TensorFlow's `GFile.readline` (which the
  original reads with) does.

Each output file is written in pieces inside the job's work folder
("_train.tfrecord.work") and appears under its name only when complete. The job checkpoints
its progress (every `checkpoint_seconds`, the open pieces are closed, which on an object
store is when they are uploaded); an interrupted run continues with `resume=True`
(`--resume`), and a finished one is not redone when run again with the same settings.
"""

import dataclasses
import hashlib
import json
import os
import time

import tensorflow as tf

from albert_tf import _pretraining_instances as instances_lib
from albert_tf import _pretraining_job as job_lib
from albert_tf import _pretraining_tasks as tasks_lib
from albert_tf import files
from albert_tf import tokenization
from albert_tf._pretraining_instances import InstanceOptions, PretrainingDataError

_FORMAT_VERSION = 1
_KIB = 1024
# The unit of work of the job's tasks, looked up here when a job runs (so that it can be
# replaced, e.g. to interrupt a job in tests).
_run_task = tasks_lib.run_task


# --------------------------------------------------------------------------------------------
# Public API.
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class TrainingInstance:
    """One instance, as the original's `TrainingInstance` (pieces, before padding).

    Attributes:
      tokens: pieces of `[CLS] A [SEP] B [SEP]` after masking ("[MASK]", kept or random).
        A piece SentencePiece did not know reads "<unk>".
      segment_ids: 0 up to and including the first [SEP], 1 after.
      token_boundary: 1 for word-start pieces and [CLS]/[SEP], 0 for continuations.
      masked_lm_positions: sorted positions of the predictions.
      masked_lm_labels: the original pieces at those positions.
      is_random_next: the label (1 = swapped order, or B from a random document).
    """

    tokens: list
    segment_ids: list
    token_boundary: list
    masked_lm_positions: list
    masked_lm_labels: list
    is_random_next: bool


def create_instances(documents, tokenizer, *, random_seed=12345, dupe_factor=1,
                     **options):
    """Instances from a few documents held in memory (the original's algorithm, one pool).

    Args:
      documents: list of documents, each a list of sentences (`str`). Sentences are
        tokenized with `tokenizer.tokenize`; empty ones are dropped, as are empty documents.
      tokenizer: an `albert_tf.tokenization.FullTokenizer`.
      random_seed: seed of every random choice.
      dupe_factor: passes over the documents.
      **options: fields of `InstanceOptions` (max_seq_length, max_predictions_per_seq,
        masked_lm_prob, short_seq_prob, ngram, favor_shorter_ngram, do_whole_word_mask,
        do_permutation, random_next_sentence), original defaults.

    Returns:
      list of `TrainingInstance`, in creation order (the job shuffles them; this does not).
    """
    instance_options = InstanceOptions(**options)
    coder = instances_lib.PieceCoder(tokenizer)
    vocab = coder.vocabulary
    tokenized = []
    for document in documents:
        segments = [coder.encode(tokenizer.tokenize(s)) for s in document]
        segments = [s for s in segments if s]
        if segments:
            tokenized.append(segments)
    if not tokenized:
        return []
    cumulative = instance_options.ngram_cumulative_weights()
    compact = []
    for pass_index in range(dupe_factor):
        rng = instances_lib.seeded_rng(random_seed, "instances", 0, pass_index)
        for d in range(len(tokenized)):
            compact.extend(instances_lib.create_instances_from_document(
                tokenized, d, instance_options, vocab, rng, cumulative))
    inv_vocab = tokenizer.inv_vocab
    result = []
    for codes, len_a, is_random_next, positions, new_ids in compact:
        ids = [c >> 1 for c in codes]
        sorted_positions = sorted(positions)
        label_ids = [ids[p] for p in sorted_positions]
        for p, new in zip(positions, new_ids):
            ids[p] = new
        result.append(TrainingInstance(
            tokens=[inv_vocab[i] for i in ids],
            segment_ids=[0] * (len_a + 2) + [1] * (len(codes) - len_a - 2),
            token_boundary=[c & 1 for c in codes],
            masked_lm_positions=sorted_positions,
            masked_lm_labels=[inv_vocab[i] for i in label_ids],
            is_random_next=bool(is_random_next)))
    return result


def create_pretraining_data(
        input_file, output_file, *, vocab_file=None, spm_model_file=None, do_lower_case=True,
        max_seq_length=512, max_predictions_per_seq=20, masked_lm_prob=0.15,
        short_seq_prob=0.1, ngram=3, favor_shorter_ngram=True, do_whole_word_mask=True,
        do_permutation=False, random_next_sentence=False, random_seed=12345, dupe_factor=40,
        num_workers=None, num_output_shards=0, resume=False, skip_bad_lines=False,
        shuffle_buffer_size=20000, chunk_bytes=256 * _KIB, min_documents_per_chunk=16,
        progress=True, checkpoint_seconds=60.0):
    """Runs the whole job: reads the corpus, writes the TFRecords and the summary.

    Args:
      input_file: comma-separated glob patterns (or a list of them); plain or gzip text.
      output_file: comma-separated output paths (or a list), filled round-robin; or one path
        used as the base name with `num_output_shards`. Missing directories are created.
      vocab_file: WordPiece vocabulary (used only without `spm_model_file`).
      spm_model_file: SentencePiece model; selects the SentencePiece path.
      do_lower_case .. random_next_sentence: the original flags (see `InstanceOptions`).
      random_seed: seed of every random choice.
      dupe_factor: passes over the corpus, each with different masks.
      num_workers: processes that tokenize and build instances (default: all cores). The
        output does not depend on it.
      num_output_shards: K > 0 writes `<output_file>-0000i-of-0000K`; 0 uses `output_file`.
      resume: continue an interrupted run with the same settings from its last checkpoint.
      skip_bad_lines: skip (and count) lines that are not valid UTF-8 instead of failing.
      shuffle_buffer_size: instances shuffled together before being dealt to the files.
      chunk_bytes: text per chunk (the unit of work and the random-document pool).
      min_documents_per_chunk: a chunk grows past `chunk_bytes` until it has this many.
      progress: print progress lines and the summary on stderr.
      checkpoint_seconds: least time between two checkpoints.

    Returns:
      The summary dict (also written to "<folder>/_<first output>.summary.json", see
      `summary_path`).

    Raises:
      files.FileError: an input pattern matches nothing, or a file cannot be read (named).
      FileNotFoundError: the vocabulary or SentencePiece model file is missing.
      PretrainingDataError: bad settings, an empty corpus, or invalid UTF-8 (file and line
        named). Both errors derive from `albert_tf.errors.UserError`; PretrainingDataError
        is also a ValueError.
    """
    started = time.time()
    options = InstanceOptions(
        max_seq_length=max_seq_length, max_predictions_per_seq=max_predictions_per_seq,
        masked_lm_prob=masked_lm_prob, short_seq_prob=short_seq_prob, ngram=ngram,
        favor_shorter_ngram=favor_shorter_ngram, do_whole_word_mask=do_whole_word_mask,
        do_permutation=do_permutation, random_next_sentence=random_next_sentence)
    if dupe_factor < 1:
        raise PretrainingDataError(f"dupe_factor must be >= 1, got {dupe_factor}.")
    if num_workers is None or num_workers == 0:
        num_workers = os.cpu_count() or 1
    if num_workers < 1:
        raise PretrainingDataError(f"num_workers must be >= 1 (or 0/None for all cores), got "
                                   f"{num_workers}.")
    if shuffle_buffer_size < 1 or chunk_bytes < 1 or min_documents_per_chunk < 1:
        raise PretrainingDataError(
            "shuffle_buffer_size, chunk_bytes and min_documents_per_chunk must be >= 1; got "
            f"{shuffle_buffer_size}, {chunk_bytes}, {min_documents_per_chunk}.")
    if not spm_model_file and not vocab_file:
        raise PretrainingDataError(
            "Give spm_model_file (SentencePiece models, e.g. 30k-clean.model) or vocab_file "
            "(WordPiece vocabulary); both are empty.")

    input_files = resolve_input_files(input_file)
    input_sizes = [job_lib.file_size(path) for path in input_files]
    output_files = resolve_output_files(output_file, num_output_shards)
    report = job_lib.Progress(progress)

    tokenizer = tokenization.FullTokenizer(vocab_file, do_lower_case=do_lower_case,
                                           spm_model_file=spm_model_file)
    vocab_bytes = (tokenizer.spm_model_proto if tokenizer.sp_model is not None
                   else files.read_bytes(vocab_file, "WordPiece vocabulary file"))
    settings = {
        "format_version": _FORMAT_VERSION,
        "inputs": [[path, size] for path, size in zip(input_files, input_sizes)],
        "vocabulary_sha256": hashlib.sha256(vocab_bytes).hexdigest(),
        "sentencepiece": tokenizer.sp_model is not None,
        "do_lower_case": bool(do_lower_case),
        "options": dataclasses.asdict(options),
        "random_seed": random_seed, "dupe_factor": dupe_factor,
        "outputs": output_files, "skip_bad_lines": bool(skip_bad_lines),
        "shuffle_buffer_size": shuffle_buffer_size, "chunk_bytes": chunk_bytes,
        "min_documents_per_chunk": min_documents_per_chunk,
    }
    fingerprint = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()

    paths = job_lib.JobPaths(output_files)
    finished = job_lib.read_finished_summary(paths, fingerprint, output_files)
    if finished is not None:
        report.line(f"output already complete ({paths.summary}); nothing to do. Delete it "
                    "to write the data again.")
        return finished

    state = None
    if resume:
        data = job_lib.load_state(paths, fingerprint, output_files)
        if data is None:
            report.line("no checkpoint to resume from; starting from the beginning.")
        else:
            state = job_lib.JobState(data)
    if state is None:
        job_lib.start_fresh(paths, output_files)
        state = job_lib.JobState.new(fingerprint, len(output_files), options)
    else:
        report.line(f"resuming at task {state.next_task} ({state.records_written} instances "
                    "already written).")

    report.line(
        f"{len(input_files)} input file(s), {sum(input_sizes) / 1e6:.1f} MB; "
        f"{dupe_factor} pass(es); {num_workers} worker(s); writing {len(output_files)} "
        f"file(s) named like {output_files[0]}")
    context = tasks_lib.TaskContext(tokenizer=tokenizer, options=options,
                                    random_seed=random_seed, dupe_factor=dupe_factor)
    reader = tasks_lib.ChunkReader(input_files, input_sizes, chunk_bytes,
                                   min_documents_per_chunk, skip_bad_lines)
    writer = job_lib.ShardWriter(output_files, paths, state, random_seed, shuffle_buffer_size,
                                 checkpoint_seconds)
    try:
        tasks_lib.run_tasks(context, reader, writer, state, num_workers, report,
                            paths.cache_dir, run_task=_run_task)
        if state.stats.instances == 0:
            raise PretrainingDataError(
                f"No instance could be made from {input_files}: the documents hold no "
                "tokens. Expected one sentence per line with blank lines between documents.")
        summary = writer.finish(settings, time.time() - started)
    except BaseException:
        writer.abort()
        if writer.has_checkpoint():
            report.line(f"stopped; progress is saved in {paths.work_dir}. Run again with "
                        "--resume (resume=True) to continue.")
        else:
            job_lib.remove_tree(paths.work_dir)
        raise
    report.summary(summary, paths.summary)
    return summary


def resolve_input_files(input_file):
    """Files matched by comma-separated glob patterns (or a list), in pattern order, sorted.

    Any `tf.io.gfile` filesystem. A pattern that names a file is that file (even if it holds
    "[" or "*"). Folders are left out, and so are names starting with `_` or `.` that a
    wildcard matched (side and temporary files, see `files.expand_globs`). A file matched
    twice is read once.

    Raises:
      files.FileError: a pattern matches no file, or no pattern is given (naming it).
    """
    patterns = input_file.split(",") if isinstance(input_file, str) else list(input_file)
    patterns = [p.strip() for p in patterns if p.strip()]
    if not patterns:
        raise files.FileError(f"No input file given (input_file={input_file!r}).")
    found = []
    try:
        for pattern in patterns:
            literal = files.exists(pattern) and not tf.io.gfile.isdir(pattern)
            found += [pattern] if literal else files.expand_globs(pattern, what="input file")
    except files.FileError as error:
        raise files.FileError(f"{error} Check the path (working directory {os.getcwd()!r}); "
                              "quote globs so the shell does not expand them.") from None
    found = [path for path in dict.fromkeys(found) if not tf.io.gfile.isdir(path)]
    if not found:
        raise files.FileError(f"The input patterns {input_file!r} match only folders; give "
                              "the text files (e.g. 'corpus/*.txt').")
    return found


def resolve_output_files(output_file, num_output_shards=0):
    """The output paths: the comma list as given, or K sharded names of one base path."""
    names = output_file.split(",") if isinstance(output_file, str) else list(output_file)
    names = [n.strip() for n in names if n.strip()]
    if not names:
        raise PretrainingDataError(f"No output file given (output_file={output_file!r}).")
    if num_output_shards < 0:
        raise PretrainingDataError(f"num_output_shards must be >= 0, got {num_output_shards}.")
    if num_output_shards:
        if len(names) != 1:
            raise PretrainingDataError(
                f"num_output_shards={num_output_shards} needs one output_file as the base "
                f"name, got {len(names)}: {names}. Give one path, or a list without "
                "num_output_shards.")
        names = [f"{names[0]}-{i:05d}-of-{num_output_shards:05d}"
                 for i in range(num_output_shards)]
    if len(set(names)) != len(names):
        raise PretrainingDataError(f"Output files must be distinct, got {names}.")
    for name in names:
        # (an object store has no empty folders, and ram:// calls any name prefix a folder)
        if tf.io.gfile.isdir(name) and (not files.has_scheme(name) or tf.io.gfile.listdir(name)):
            raise PretrainingDataError(
                f"--output_file={name} is a folder; give a file name inside it (e.g. "
                f"{files.join(name, 'train.tfrecord')}).")
    return names


# --------------------------------------------------------------------------------------------
# Command line.
# --------------------------------------------------------------------------------------------


def _options():
    """The flags of `python -m albert_tf.create_pretraining_data` (the original's, and the
    new ones), named as the arguments of `create_pretraining_data`."""
    from albert_tf import cli
    return [
        cli.Option("input_file", None, "Input text files: comma-separated glob patterns, any "
                   "tf.io.gfile path (gs://...). One sentence per line, blank line between "
                   "documents; UTF-8, optionally gzip."),
        cli.Option("output_file", None, "Output TFRecord files (comma-separated, filled "
                   "round-robin), or the base name with --num_output_shards."),
        *cli.options("vocab_file", "spm_model_file", "do_lower_case"),
        cli.Option("input_file_mode", "r", "Kept for compatibility and ignored: the input is "
                   "always read as UTF-8 (or gzip-compressed UTF-8)."),
        cli.Option("do_whole_word_mask", True, "Mask whole words rather than single pieces.",
                   bool),
        cli.Option("do_permutation", False, "Add permuted positions as extra predictions (the "
                   "masked-LM features are then 2 * max_predictions_per_seq long).", bool),
        cli.Option("favor_shorter_ngram", True, "n-gram lengths with probability 1/n (shorter "
                   "spans favoured); otherwise reversed.", bool),
        cli.Option("random_next_sentence", False, "Negatives take B from a random document "
                   "(BERT's next-sentence task) instead of swapping A and B (ALBERT's sentence "
                   "order). The original's help text says the opposite of what it does.", bool),
        cli.Option("max_seq_length", 512,
                   "Maximum sequence length, [CLS] and [SEP]s included.", int),
        cli.Option("ngram", 3, "Longest n-gram (in words) masked as one span.", int),
        cli.Option("max_predictions_per_seq", 20,
                   "Maximum masked-LM predictions per sequence.", int),
        cli.Option("random_seed", 12345, "Seed of every random choice.", int),
        cli.Option("dupe_factor", 40, "Passes over the corpus, each with different masks.",
                   int),
        cli.Option("masked_lm_prob", 0.15, "Masked LM probability.", float),
        cli.Option("short_seq_prob", 0.1, "Probability of a shorter target length.", float),
        cli.Option("num_workers", None, "Worker processes (default: all cores). The output "
                   "does not depend on it.", int),
        cli.Option("num_output_shards", 0, "Write K files <output_file>-0000i-of-0000K (0: the "
                   "files of --output_file).", int),
        cli.Option("resume", False, "Continue an interrupted run with the same flags from its "
                   "last checkpoint.", bool),
        cli.Option("skip_bad_lines", False, "Skip and count lines that are not valid UTF-8 "
                   "instead of stopping.", bool),
        cli.Option("shuffle_buffer_size", 20000, "Instances shuffled together before being "
                   "dealt to the output files (memory: about this many serialized examples).",
                   int),
    ]


def _define_flags():
    """Defines the script's flags; see `cli.run`."""
    from absl import flags

    from albert_tf import cli
    cli.define(_options())
    return flags.FLAGS


def main(argv):
    """The command line: `python -m albert_tf.create_pretraining_data --input_file=...`.
    Bad input is one `ERROR:` line (exit status 1); Ctrl-C stops with the progress saved."""
    from albert_tf import cli
    with cli.script_main(argv) as FLAGS:
        values = cli.values_of(_options(), FLAGS)
        del values["input_file_mode"]   # the original's, ignored
        create_pretraining_data(**values)


if __name__ == "__main__":
    from albert_tf import cli
    cli.run(main, _define_flags, required=["input_file", "output_file"])
