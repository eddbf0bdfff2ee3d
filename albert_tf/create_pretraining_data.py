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

import collections
import concurrent.futures
import dataclasses
import gc
import hashlib
import io
import json
import multiprocessing
import os
import random
import signal
import sys
import time

import numpy as np
import tensorflow as tf

from albert_tf import _pretraining_instances as instances_lib
from albert_tf import _pretraining_records as records_lib
from albert_tf import files
from albert_tf import tokenization
from albert_tf._pretraining_instances import (InstanceOptions, PretrainingDataError,
                                              Vocabulary)

_FORMAT_VERSION = 1
_KIB = 1024


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
    coder = _PieceCoder(tokenizer)
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
        rng = _rng(random_seed, "instances", 0, pass_index)
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
    input_sizes = [_file_size(path) for path in input_files]
    output_files = resolve_output_files(output_file, num_output_shards)
    report = _Progress(progress)

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

    paths = _JobPaths(output_files)
    finished = _read_finished_summary(paths, fingerprint, output_files)
    if finished is not None:
        report.line(f"output already complete ({paths.summary}); nothing to do. Delete it "
                    "to write the data again.")
        return finished

    state = None
    if resume:
        data = _load_state(paths, fingerprint, output_files)
        if data is None:
            report.line("no checkpoint to resume from; starting from the beginning.")
        else:
            state = _JobState(data)
    if state is None:
        _start_fresh(paths, output_files)
        state = _JobState.new(fingerprint, len(output_files), options)
    else:
        report.line(f"resuming at task {state.next_task} ({state.records_written} instances "
                    "already written).")

    report.line(
        f"{len(input_files)} input file(s), {sum(input_sizes) / 1e6:.1f} MB; "
        f"{dupe_factor} pass(es); {num_workers} worker(s); writing {len(output_files)} "
        f"file(s) named like {output_files[0]}")
    context = _TaskContext(tokenizer=tokenizer, options=options, random_seed=random_seed,
                           dupe_factor=dupe_factor)
    reader = _ChunkReader(input_files, input_sizes, chunk_bytes, min_documents_per_chunk,
                          skip_bad_lines)
    writer = _ShardWriter(output_files, paths, state, random_seed, shuffle_buffer_size,
                          checkpoint_seconds)
    try:
        _run_tasks(context, reader, writer, state, num_workers, report, paths.cache_dir)
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
            _remove_tree(paths.work_dir)
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


def _file_size(path):
    try:
        return tf.io.gfile.stat(path).length
    except tf.errors.OpError as error:
        raise files.FileError(f"Cannot read the input file {path}: {error.message}") from None


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
# Tokens as codes.
# --------------------------------------------------------------------------------------------


class _PieceCoder:
    """Pieces -> codes (`id * 2 + is_word_start`), with the word-start test cached per piece."""

    _MAX_EXTRA = 100000  # cap on cached unknown pieces, so memory stays bounded

    def __init__(self, tokenizer):
        self.sentencepiece = tokenizer.sp_model is not None
        self._is_start = (instances_lib.is_start_piece_sentencepiece if self.sentencepiece
                          else instances_lib.is_start_piece_wordpiece)
        self._codes = {piece: i * 2 + self._is_start(piece)
                       for piece, i in tokenizer.vocab.items()}
        self._known = len(self._codes)
        self._tokenizer = tokenizer
        ids = tokenizer.convert_tokens_to_ids(["[CLS]", "[SEP]", "[MASK]"])
        self.vocabulary = Vocabulary(cls_id=ids[0], sep_id=ids[1], mask_id=ids[2],
                                     random_ids=tuple(tokenizer.vocab.values()))

    def encode(self, pieces):
        get = self._codes.get
        codes = [get(p, -1) for p in pieces]
        if -1 in codes:
            for k, piece in enumerate(pieces):
                if codes[k] == -1:
                    codes[k] = self._unknown(piece)
        return codes

    def _unknown(self, piece):
        # A piece SentencePiece returns but does not know (an unseen character): the
        # <unk> id, and the word-start test of its own text, as the original computes it.
        code = self._tokenizer.convert_tokens_to_ids([piece])[0] * 2 + self._is_start(piece)
        if len(self._codes) - self._known < self._MAX_EXTRA:
            self._codes[piece] = code
        return code


def _rng(seed, *parts):
    """A `random.Random` for one purpose; str seeds hash with SHA-512 (stable everywhere)."""
    return random.Random(":".join(["albert_tf.pretraining", str(seed), *map(str, parts)]))


# --------------------------------------------------------------------------------------------
# Reading: lines -> documents -> chunks.
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Chunk:
    documents: list  # documents of raw (non-blank) lines
    text_bytes: int
    input_fraction: float  # share of the input file bytes read when the chunk ended


class _ChunkReader:
    """Streams the input files as chunks of whole documents, in reading order."""

    def __init__(self, paths, sizes, chunk_bytes, min_documents, skip_bad_lines):
        self.files = paths
        self.sizes = sizes  # bytes of each file, as stored (compressed for gzip)
        self.chunk_bytes = chunk_bytes
        self.min_documents = min_documents
        self.skip_bad_lines = skip_bad_lines
        self.total_file_bytes = sum(sizes) or 1
        self.lines = 0
        self.bad_lines = 0
        self._done_bytes = 0
        self._current = None

    def _position(self):
        current = self._current.position if self._current is not None else 0
        return min(1.0, (self._done_bytes + current) / self.total_file_bytes)

    def _lines(self):
        for path, size in zip(self.files, self.sizes):
            # Read through tf.io.gfile (any filesystem), gzip recognised by its magic bytes.
            with files.open_binary(path, "input file", gunzip=True) as reader:
                self._current = reader
                yield from self._decode(path, reader)
                self._done_bytes += size
                self._current = None

    def _decode(self, path, stream):
        for number, line in enumerate(stream, 1):
            # TensorFlow's GFile.readline, which the original reads with, drops every "\r":
            # "a\rb" is "ab" there.
            if b"\r" in line:
                line = line.replace(b"\r", b"")
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as err:
                if self.skip_bad_lines:
                    self.bad_lines += 1
                    continue
                raise PretrainingDataError(
                    f"{path}, line {number}: not valid UTF-8 ({err.reason} at byte {err.start} "
                    f"of the line: {line[:60]!r}). Convert the file to UTF-8, or pass "
                    "--skip_bad_lines to skip such lines.") from None
            self.lines += 1
            yield text, len(line)

    def __iter__(self):
        """Yields `_Chunk`s; a small last chunk is merged into the one before it."""
        pending = None
        documents, document, size = [], [], 0
        for text, num_bytes in self._lines():
            if text.strip():
                document.append(text)
                size += num_bytes
                continue
            if document:
                documents.append(document)
                document = []
                if size >= self.chunk_bytes and len(documents) >= self.min_documents:
                    if pending is not None:
                        yield pending
                    pending = _Chunk(documents, size, self._position())
                    documents, size = [], 0
        if document:
            documents.append(document)
        if documents:
            last = _Chunk(documents, size, 1.0)
            if pending is not None and (size < self.chunk_bytes // 2
                                        or len(documents) < self.min_documents):
                # Too small to be a good random-document pool on its own.
                last = _Chunk(pending.documents + documents, pending.text_bytes + size, 1.0)
                pending = None
            if pending is not None:
                yield pending
            yield last
        elif pending is not None:
            pending.input_fraction = 1.0
            yield pending


# --------------------------------------------------------------------------------------------
# Tasks: (chunk, pass) -> serialized records. Run in worker processes, which only compute: the
# main process reads the inputs and the token cache and writes every file (through gfile).
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Task:
    index: int  # position in the job's task order (pass-major)
    chunk: int
    pass_index: int
    documents: list = None  # raw lines, pass 0 only
    cached: bytes = None  # the chunk's tokenized documents (`_encode_documents`), pass > 0


@dataclasses.dataclass
class _TaskResult:
    index: int
    chunk: int
    pass_index: int
    records: bytes  # framed TFRecord records, concatenated
    record_lengths: np.ndarray
    stats: dict  # Statistics state
    documents: int
    corpus_tokens: int
    cached: bytes = None  # pass 0 with dupe_factor > 1: the tokenized documents to cache


class _TaskContext:
    """Everything a worker needs; created in the parent and inherited (fork) or pickled
    (spawn)."""

    def __init__(self, tokenizer, options, random_seed, dupe_factor):
        self.tokenizer = tokenizer
        self.coder = _PieceCoder(tokenizer)
        self.options = options
        self.random_seed = random_seed
        self.dupe_factor = dupe_factor
        self.cumulative = options.ngram_cumulative_weights()
        self.encoder = records_lib.ExampleEncoder(instances_lib.FEATURES)


_CONTEXT = None  # the worker's _TaskContext


def _ignore_interrupts():
    # Ctrl-C reaches every process of the terminal's group. The main process stops the job
    # (workers finish their current task); workers must not die half-way through a result.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _init_spawned_worker(context):
    global _CONTEXT
    _ignore_interrupts()
    _CONTEXT = context


def _tokenize_chunk(context, lines_by_document):
    """Raw lines -> documents of segments (lists of codes), as the original reads lines."""
    tokenizer, coder = context.tokenizer, context.coder
    sentencepiece = coder.sentencepiece
    lower = tokenizer.do_lower_case
    documents = []
    for lines in lines_by_document:
        document = []
        for line in lines:
            if sentencepiece:
                # A line that the preprocessing empties (only combining marks) starts a new
                # document in the original, like a blank line. ASCII lines never empty.
                if not line.isascii() and not tokenization.preprocess_text(line, lower=lower):
                    if document:
                        documents.append(document)
                    document = []
                    continue
                pieces = tokenizer.tokenize(line)
            else:
                pieces = tokenizer.tokenize(line.strip())
            if pieces:
                document.append(coder.encode(pieces))
        if document:
            documents.append(document)
    return documents


def _cache_path(cache_dir, chunk):
    return files.join(cache_dir, f"chunk-{chunk:07d}.npz")


def _encode_documents(documents):
    """Tokenized documents -> the bytes of an .npz file (the token cache between passes)."""
    segments = [s for d in documents for s in d]
    buffer = io.BytesIO()
    np.savez(buffer, codes=np.fromiter((c for s in segments for c in s), dtype=np.int32),
             segment_lengths=np.array([len(s) for s in segments], dtype=np.int32),
             document_sizes=np.array([len(d) for d in documents], dtype=np.int32))
    return buffer.getvalue()


def _decode_documents(data):
    """The inverse of `_encode_documents`."""
    with np.load(io.BytesIO(data)) as arrays:
        codes = arrays["codes"].tolist()
        segment_lengths = arrays["segment_lengths"].tolist()
        document_sizes = arrays["document_sizes"].tolist()
    segments, start = [], 0
    for length in segment_lengths:
        segments.append(codes[start:start + length])
        start += length
    documents, start = [], 0
    for size in document_sizes:
        documents.append(segments[start:start + size])
        start += size
    return documents


def _read_cached_chunk(cache_dir, chunk):
    path = _cache_path(cache_dir, chunk)
    if not files.exists(path):
        raise PretrainingDataError(
            f"Tokenized chunk {path} is missing (the job's work folder was changed). Run "
            "again without --resume to start over.")
    return files.read_bytes(path, "tokenized chunk")


def _run_task(task):
    """One chunk, one pass: documents -> instances -> framed TFRecord records (in order).

    The writer shuffles the records; nothing here depends on which process runs the task.
    """
    context = _CONTEXT
    options = context.options
    corpus_tokens = 0
    cached = None
    if task.pass_index == 0:
        documents = _tokenize_chunk(context, task.documents)
        # The original shuffles the documents once; here, once per chunk, the same order in
        # every pass.
        _rng(context.random_seed, "documents", task.chunk).shuffle(documents)
        corpus_tokens = sum(len(s) for d in documents for s in d)
        if context.dupe_factor > 1:
            cached = _encode_documents(documents)
    else:
        documents = _decode_documents(task.cached)
    rng = _rng(context.random_seed, "instances", task.chunk, task.pass_index)
    vocab = context.coder.vocabulary
    compact = []
    for d in range(len(documents)):
        compact.extend(instances_lib.create_instances_from_document(
            documents, d, options, vocab, rng, context.cumulative))
    stats = instances_lib.Statistics(options.max_seq_length, options.num_prediction_slots)
    if compact:
        arrays = instances_lib.build_arrays(compact, options)
        stats.add_arrays(arrays, vocab.mask_id)
        records = records_lib.frame_records(context.encoder.encode(arrays))
    else:
        records = []
    return _TaskResult(
        index=task.index, chunk=task.chunk, pass_index=task.pass_index,
        records=b"".join(records),
        record_lengths=np.fromiter(map(len, records), dtype=np.int64, count=len(records)),
        stats=stats.to_state(), documents=len(documents) if task.pass_index == 0 else 0,
        corpus_tokens=corpus_tokens, cached=cached)


class _InlineExecutor:
    """Runs tasks in this process (num_workers=1), with the futures interface."""

    def submit(self, fn, *args):
        future = concurrent.futures.Future()
        future.set_result(fn(*args))
        return future

    def shutdown(self, wait=True, cancel_futures=False):
        del wait, cancel_futures


def _make_executor(context, num_workers):
    global _CONTEXT
    _CONTEXT = context
    if num_workers == 1:
        return _InlineExecutor()
    if sys.platform.startswith("linux"):
        # Workers inherit the tokenizer from this process: nothing is re-imported or re-read
        # (TensorFlow is never used in a worker).
        return concurrent.futures.ProcessPoolExecutor(
            num_workers, mp_context=multiprocessing.get_context("fork"),
            initializer=_ignore_interrupts)
    return concurrent.futures.ProcessPoolExecutor(
        num_workers, mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_spawned_worker, initargs=(context,))


def _task_stream(reader, state, dupe_factor):
    """Tasks in job order, pass-major, from `state.next_task` on."""
    start = state.next_task
    if state.num_chunks is None or start < state.num_chunks:
        chunk_sizes = []
        for c, chunk in enumerate(reader):
            chunk_sizes.append(chunk.text_bytes)
            state.note_chunk(c, chunk.text_bytes, chunk.input_fraction)
            if c >= start:
                yield _Task(index=c, chunk=c, pass_index=0, documents=chunk.documents)
        if not chunk_sizes:
            raise PretrainingDataError(
                f"The input files {reader.files} contain no text (only blank lines, or "
                "nothing). Expected one sentence per line with blank lines between "
                "documents.")
        state.reading_done(chunk_sizes, reader.lines, reader.bad_lines)
    num_chunks = state.num_chunks
    for p in range(1, dupe_factor):
        for c in range(num_chunks):
            index = p * num_chunks + c
            if index >= start:
                yield _Task(index=index, chunk=c, pass_index=p)


def _run_tasks(context, reader, writer, state, num_workers, report, cache_dir):
    report.start(state)
    # Forked workers share this process's memory until they write to it; the garbage
    # collector writes to every object it visits, so without this each worker would copy
    # the whole Python heap of this process (hundreds of MB once TensorFlow is imported).
    gc.freeze()
    executor = _make_executor(context, num_workers)
    max_in_flight = 2 * num_workers
    in_flight = collections.deque()

    def consume_one():
        result = in_flight.popleft().result()
        if result.cached is not None:
            # Before `writer.add`, whose checkpoint may record this task as done.
            files.write_bytes(_cache_path(cache_dir, result.chunk), result.cached)
            result.cached = None
        writer.add(result)
        report.update(state, context.dupe_factor)

    try:
        for task in _task_stream(reader, state, context.dupe_factor):
            # A later pass reads the chunk tokenized by pass 0: wait until that task is done.
            while in_flight and (len(in_flight) >= max_in_flight or (
                    task.pass_index > 0 and state.next_task <= task.chunk)):
                consume_one()
            if task.pass_index > 0:
                task.cached = _read_cached_chunk(cache_dir, task.chunk)
            in_flight.append(executor.submit(_run_task, task))
        while in_flight:
            consume_one()
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
        gc.unfreeze()


# --------------------------------------------------------------------------------------------
# Writing: windows, shards, checkpoints, summary.
# --------------------------------------------------------------------------------------------


class _JobPaths:
    """The job's own files, beside the first output file ("train.tfrecord" or its shards):
    "_train.tfrecord.summary.json" and the work folder "_train.tfrecord.work" (checkpoint
    state, token cache, pieces of the output files). Their names start with "_" so that
    `train.tfrecord*` globs (`files.expand_globs`) skip them."""

    def __init__(self, output_files):
        folder, name = files.split(output_files[0])
        # Sharded names share a base: "train.tfrecord-00000-of-00064" -> "train.tfrecord".
        head, sep, tail = name.rpartition("-of-")
        if sep and tail.isdigit() and head[-6:-5] == "-" and head[-5:].isdigit():
            name = head[:-6]
        base = files.join(folder, name) if folder else name
        self.directory = folder
        self.summary = files.side_file(base, "summary.json")
        self.work_dir = files.side_file(base, "work")
        self.state = files.join(self.work_dir, "state.json")
        self.cache_dir = files.join(self.work_dir, "tokens")
        self.pieces_dir = files.join(self.work_dir, "pieces")
        # Names of earlier versions, read (a finished summary) or cleaned up.
        self.old_summary = base + ".summary.json"
        self.old_work_dir = files.join(folder, f".{name}.work") if folder else f".{name}.work"

    def piece(self, output, index):
        """Piece `index` of output file number `output` (pieces are closed at checkpoints)."""
        return files.join(self.pieces_dir, f"output-{output:05d}.piece-{index:05d}")

    @staticmethod
    def old_partial(path):
        folder, name = files.split(path)
        return files.join(folder, f".{name}.partial") if folder else f".{name}.partial"


class _JobState:
    """The running totals of the job; `data` is what a checkpoint records.

    Checkpointed (in `data`, also readable as attributes): next_task, window,
    records_written, shard_bytes, shard_records, documents, corpus_tokens, pieces (the
    closed pieces of each output file), and, once the input is read to the end, num_chunks,
    chunk_text_bytes, lines, bad_lines.
    """

    def __init__(self, data):
        self.data = data
        self.stats = instances_lib.Statistics.from_state(data["stats"])
        # Progress of the reader in this run (for the progress line only).
        self.chunks_seen = 0
        self.seen_text_bytes = 0
        self.seen_fraction = 0.0

    @classmethod
    def new(cls, fingerprint, num_outputs, options):
        stats = instances_lib.Statistics(options.max_seq_length, options.num_prediction_slots)
        return cls({
            "fingerprint": fingerprint, "next_task": 0, "window": 0, "records_written": 0,
            "shard_bytes": [0] * num_outputs, "shard_records": [0] * num_outputs,
            "stats": stats.to_state(), "documents": 0, "corpus_tokens": 0,
            "num_chunks": None, "chunk_text_bytes": None, "lines": None, "bad_lines": None,
            "pieces": 0,
        })

    def note_chunk(self, chunk, text_bytes, fraction):
        self.chunks_seen = chunk + 1
        self.seen_text_bytes += text_bytes
        self.seen_fraction = fraction

    def reading_done(self, chunk_sizes, lines, bad_lines):
        self.data.update(num_chunks=len(chunk_sizes), chunk_text_bytes=chunk_sizes,
                         lines=lines, bad_lines=bad_lines)

    def __getattr__(self, name):  # checkpointed values read as attributes
        data = self.__dict__.get("data", {})
        if name in data:
            return data[name]
        raise AttributeError(name)

    def to_json(self):
        return dict(self.data, stats=self.stats.to_state())


def _read_json(path):
    """The JSON value of `path`, or None if it does not exist or is not valid JSON."""
    if not files.exists(path):
        return None
    try:
        return json.loads(files.read_text(path))
    except (files.FileError, json.JSONDecodeError):
        return None


def _write_json(path, value):
    files.write_json(path, value, indent=1)


def _remove(path):
    if files.exists(path):
        tf.io.gfile.remove(path)


def _remove_tree(path):
    if files.exists(path):
        tf.io.gfile.rmtree(path)


def _relative(path, directory):
    """How the summary names an output file: relative to the summary's folder."""
    if files.dirname(path) == directory:
        return files.basename(path)
    if not files.has_scheme(path) and not files.has_scheme(directory):
        return os.path.relpath(os.path.abspath(path), os.path.abspath(directory or "."))
    return path


def _read_finished_summary(paths, fingerprint, output_files):
    """The summary of a finished run with these settings whose files are all intact, or None.

    A summary under the name of earlier versions ("train.tfrecord.summary.json", which
    `train.tfrecord*` matches) is moved to the side-file name.
    """
    path = paths.summary
    summary = _read_json(path)
    if summary is None:
        path = paths.old_summary
        summary = _read_json(path)
    if not summary or summary.get("fingerprint") != fingerprint:
        return None
    shards = summary.get("shards", [])
    if len(shards) != len(output_files):
        return None
    for output, shard in zip(output_files, shards):
        if not files.exists(output) or _file_size(output) != shard["bytes"]:
            return None
    if path != paths.summary:
        tf.io.gfile.rename(path, paths.summary, overwrite=True)
    return summary


def _start_fresh(paths, output_files):
    # No file of an older run may stay behind looking complete: the summary goes first.
    for path in [paths.summary, paths.old_summary] + list(output_files):
        _remove(path)
    _remove_tree(paths.work_dir)
    _remove_tree(paths.old_work_dir)
    for path in output_files:
        _remove(_JobPaths.old_partial(path))
    files.makedirs(paths.cache_dir)


def _load_state(paths, fingerprint, output_files):
    data = _read_json(paths.state)
    if data is None:
        return None
    if data.get("fingerprint") != fingerprint:
        raise PretrainingDataError(
            f"The checkpoint in {paths.work_dir} was written with other settings (inputs, "
            "vocabulary, flags or output files differ), so --resume cannot continue it. Run "
            "without --resume to start over, or with the settings of that run.")
    closed = data["pieces"]
    present = set(tf.io.gfile.listdir(paths.pieces_dir)) if files.exists(
        paths.pieces_dir) else set()
    for k in range(len(output_files)):
        for index in range(closed):
            name = files.basename(paths.piece(k, index))
            if name not in present:
                raise PretrainingDataError(
                    f"Cannot resume: {paths.piece(k, index)}, recorded by the checkpoint, is "
                    "missing. Run without --resume to start over.")
    for name in present:  # pieces written after the checkpoint are redone
        index = name.rpartition(".piece-")[2]
        if index.isdigit() and int(index) >= closed:
            tf.io.gfile.remove(files.join(paths.pieces_dir, name))
    return data


class _ShardWriter:
    """Shuffles windows of task results and deals the instances round-robin to the files.

    Each output file is written as pieces in the work folder; a checkpoint closes the open
    pieces (durable on every filesystem, uploaded on an object store, which cannot append)
    and records how many there are. `finish` moves a lone piece to the output name, or
    concatenates the pieces into it (atomically either way).
    """

    def __init__(self, output_files, paths, state, random_seed, buffer_size,
                 checkpoint_seconds):
        self.output_files = output_files
        self.paths = paths
        self.random_seed = random_seed
        self.buffer_size = buffer_size
        self.checkpoint_seconds = checkpoint_seconds
        self._last_checkpoint = time.time()
        self._checkpointed = files.exists(paths.state)
        self.state = state
        self._window = []
        self._window_records = 0
        self._files = []
        self._open_pieces()

    def _open_pieces(self):
        files.makedirs(self.paths.pieces_dir)
        index = self.state.pieces
        self._files = [tf.io.gfile.GFile(self.paths.piece(k, index), "wb")
                       for k in range(len(self.output_files))]

    def _close_pieces(self):
        for f in self._files:
            f.close()
        self._files = []

    def has_checkpoint(self):
        return self._checkpointed

    def add(self, result):
        state = self.state
        assert result.index == state.next_task, (result.index, state.next_task)
        self._window.append(result)
        self._window_records += len(result.record_lengths)
        state.stats.merge(instances_lib.Statistics.from_state(result.stats))
        state.data["documents"] += result.documents
        state.data["corpus_tokens"] += result.corpus_tokens
        state.data["next_task"] = result.index + 1
        if self._window_records >= self.buffer_size:
            self._flush_window()
            if time.time() - self._last_checkpoint >= self.checkpoint_seconds:
                self._checkpoint()

    def _flush_window(self):
        state = self.state
        records = []
        for result in self._window:
            view = memoryview(result.records)
            ends = np.cumsum(result.record_lengths).tolist()
            start = 0
            for end in ends:
                records.append(view[start:end])
                start = end
        _rng(self.random_seed, "window", state.window).shuffle(records)
        num_files = len(self._files)
        first = state.records_written
        for k, f in enumerate(self._files):
            # Instance j of the job goes to file j mod K (the original's round-robin).
            mine = records[(k - first) % num_files::num_files]
            if mine:
                f.write(b"".join(mine))
            state.shard_bytes[k] += sum(map(len, mine))
            state.shard_records[k] += len(mine)
        state.data["records_written"] = first + len(records)
        state.data["window"] += 1
        self._window = []
        self._window_records = 0

    def _checkpoint(self):
        # The window is empty here: the files hold every result added so far, and the
        # checkpoint records the state at the end of the last window.
        self._close_pieces()
        self.state.data["pieces"] += 1
        _write_json(self.paths.state, self.state.to_json())
        self._checkpointed = True
        self._last_checkpoint = time.time()
        self._open_pieces()

    def finish(self, settings, seconds):
        state = self.state
        if self._window:
            self._flush_window()
        self._close_pieces()
        num_pieces = state.pieces + 1
        jobs = [([self.paths.piece(k, i) for i in range(num_pieces)], path, size)
                for k, (path, size) in enumerate(zip(self.output_files, state.shard_bytes))]
        if num_pieces == 1:
            for pieces, path, size in jobs:
                _move_piece(pieces[0], path, size)
        else:
            # Object stores answer each read after a delay: several files at once.
            with concurrent.futures.ThreadPoolExecutor(min(8, len(jobs))) as pool:
                list(pool.map(lambda job: _concatenate(*job), jobs))
        stats = state.stats.summary()
        summary = {
            "complete": True,
            "fingerprint": state.fingerprint,
            "shards": [{"path": _relative(p, self.paths.directory), "instances": n, "bytes": b}
                       for p, n, b in zip(self.output_files, state.shard_records,
                                          state.shard_bytes)],
            "instances": state.records_written,
            "documents": state.documents,
            "corpus_tokens": state.corpus_tokens,
            "input_lines": state.lines,
            "bad_lines_skipped": state.bad_lines,
            "statistics": stats,
            "seconds": round(seconds, 3),
            "settings": settings,
        }
        _write_json(self.paths.summary, summary)  # last: marks the output complete
        _remove_tree(self.paths.work_dir)
        return summary

    def abort(self):
        for f in self._files:
            try:
                f.close()
            except tf.errors.OpError:
                pass
        self._files = []


def _check_size(path, size, expected):
    if size != expected:
        raise PretrainingDataError(
            f"{path} holds {size} bytes, the job wrote {expected}: its work folder was "
            "changed during the run. Run again without --resume to start over.")


def _move_piece(piece, path, expected_bytes):
    """Renames a piece to the output name (copies it where a rename cannot, e.g. between
    filesystems)."""
    _check_size(piece, _file_size(piece), expected_bytes)
    folder = files.dirname(path)
    if folder:
        files.makedirs(folder)
    try:
        tf.io.gfile.rename(piece, path, overwrite=True)
    except tf.errors.OpError:
        files.copy(piece, path)
        tf.io.gfile.remove(piece)


def _concatenate(pieces, path, expected_bytes, block=16 << 20):
    """Writes the pieces, in order, as the file `path` (atomically)."""
    total = 0
    with files.atomic_write(path, "wb") as out:
        for piece in pieces:
            with tf.io.gfile.GFile(piece, "rb") as f:
                while True:
                    data = f.read(block)
                    if not data:
                        break
                    out.write(data)
                    total += len(data)
        _check_size(path, total, expected_bytes)


# --------------------------------------------------------------------------------------------
# Progress.
# --------------------------------------------------------------------------------------------


class _Progress:
    def __init__(self, enabled, interval=5.0):
        self.enabled = enabled
        self.interval = interval
        self.started = time.time()
        self._last = 0.0
        self._done_before = None  # work done by an earlier run (resume), not in the rate

    def line(self, text):
        if self.enabled:
            print(f"[create_pretraining_data] {text}", file=sys.stderr, flush=True)

    @staticmethod
    def _work(state):
        """(text bytes processed, text bytes of one pass (estimated while reading), pass)."""
        if state.num_chunks is not None:
            sizes = state.chunk_text_bytes
            full_passes, rest = divmod(state.next_task, state.num_chunks)
            return sum(sizes) * full_passes + sum(sizes[:rest]), sum(sizes), full_passes
        total = state.seen_text_bytes / max(state.seen_fraction, 1e-9)
        done = state.seen_text_bytes * min(1.0, state.next_task / max(state.chunks_seen, 1))
        return done, total, 0

    def start(self, state):
        self.started = time.time()
        self._done_before = self._work(state)[0] if state.num_chunks is not None else 0

    def update(self, state, dupe_factor):
        if not self.enabled:
            return
        now = time.time()
        if now - self._last < self.interval:
            return
        self._last = now
        done, one_pass, pass_index = self._work(state)
        total = max(one_pass * dupe_factor, 1)
        fraction = min(1.0, done / total)
        rate = (done - (self._done_before or 0)) / max(now - self.started, 1e-9)
        eta = (total - done) / rate if rate > 0 else float("nan")
        self.line(
            f"pass {min(pass_index, dupe_factor - 1) + 1}/{dupe_factor}: "
            f"{state.documents:,} documents, {state.stats.instances:,} instances, "
            f"{rate / 1e6:.2f} MB/s of text, {100 * fraction:.1f}% done, ETA {_clock(eta)}")

    def summary(self, summary, path):
        if not self.enabled:
            return
        stats = summary["statistics"]
        shards = summary["shards"]
        counts = [s["instances"] for s in shards]
        self.line(
            f"done in {summary['seconds']:.1f} s: {summary['instances']:,} instances from "
            f"{summary['documents']:,} documents ({summary['corpus_tokens']:,} tokens) in "
            f"{len(shards)} file(s), {min(counts):,}-{max(counts):,} instances each; "
            f"{stats.get('tokens', 0):,} tokens, {stats.get('masked_per_token', 0):.4f} masked "
            f"per token, {stats.get('mask_token_frac', 0):.3f} of them [MASK], label 1: "
            f"{stats.get('sop_pos_frac', 0):.3f}. Summary: {path}")
        if summary.get("bad_lines_skipped"):
            self.line(f"skipped {summary['bad_lines_skipped']:,} lines that were not UTF-8.")


def _clock(seconds):
    if seconds != seconds:  # NaN
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


# --------------------------------------------------------------------------------------------
# Command line.
# --------------------------------------------------------------------------------------------


def _define_flags():
    """Defines the script's flags (the original's, and the new ones); see `cli.run`."""
    from absl import flags

    from albert_tf.cli import define_flag
    f = flags
    define_flag(f.DEFINE_string, "input_file", None, "Input text files: comma-separated glob "
                "patterns, any tf.io.gfile path (gs://...). One sentence per line, blank line "
                "between documents; UTF-8, optionally gzip.")
    define_flag(f.DEFINE_string, "output_file", None, "Output TFRecord files (comma-separated, "
                "filled round-robin), or the base name with --num_output_shards.")
    define_flag(f.DEFINE_string, "vocab_file", None, "WordPiece vocabulary file; ignored with "
                "--spm_model_file.")
    define_flag(f.DEFINE_string, "spm_model_file", None,
                "SentencePiece model file (e.g. 30k-clean.model).")
    define_flag(f.DEFINE_string, "input_file_mode", "r", "Kept for compatibility and ignored: "
                "the input is always read as UTF-8 (or gzip-compressed UTF-8).")
    define_flag(f.DEFINE_bool, "do_lower_case", True,
                "Lower-case the input text (uncased models).")
    define_flag(f.DEFINE_bool, "do_whole_word_mask", True,
                "Mask whole words rather than single pieces.")
    define_flag(f.DEFINE_bool, "do_permutation", False, "Add permuted positions as extra "
                "predictions (the masked-LM features are then 2 * max_predictions_per_seq "
                "long).")
    define_flag(f.DEFINE_bool, "favor_shorter_ngram", True, "n-gram lengths with probability "
                "1/n (shorter spans favoured); otherwise reversed.")
    define_flag(f.DEFINE_bool, "random_next_sentence", False, "Negatives take B from a random "
                "document (BERT's next-sentence task) instead of swapping A and B (ALBERT's "
                "sentence order). The original's help text says the opposite of what it does.")
    define_flag(f.DEFINE_integer, "max_seq_length", 512,
                "Maximum sequence length, [CLS] and [SEP]s included.")
    define_flag(f.DEFINE_integer, "ngram", 3, "Longest n-gram (in words) masked as one span.")
    define_flag(f.DEFINE_integer, "max_predictions_per_seq", 20,
                "Maximum masked-LM predictions per sequence.")
    define_flag(f.DEFINE_integer, "random_seed", 12345, "Seed of every random choice.")
    define_flag(f.DEFINE_integer, "dupe_factor", 40,
                "Passes over the corpus, each with different masks.")
    define_flag(f.DEFINE_float, "masked_lm_prob", 0.15, "Masked LM probability.")
    define_flag(f.DEFINE_float, "short_seq_prob", 0.1,
                "Probability of a shorter target length.")
    define_flag(f.DEFINE_integer, "num_workers", None, "Worker processes (default: all cores). "
                "The output does not depend on it.")
    define_flag(f.DEFINE_integer, "num_output_shards", 0, "Write K files "
                "<output_file>-0000i-of-0000K (0: the files of --output_file).")
    define_flag(f.DEFINE_bool, "resume", False, "Continue an interrupted run with the same "
                "flags from its last checkpoint.")
    define_flag(f.DEFINE_bool, "skip_bad_lines", False, "Skip and count lines that are not "
                "valid UTF-8 instead of stopping.")
    define_flag(f.DEFINE_integer, "shuffle_buffer_size", 20000, "Instances shuffled together "
                "before being dealt to the output files (memory: about this many serialized "
                "examples).")
    return f.FLAGS


def main(argv):
    """The command line: `python -m albert_tf.create_pretraining_data --input_file=...`.
    Bad input is one `ERROR:` line (exit status 1); Ctrl-C stops with the progress saved."""
    from albert_tf import cli
    with cli.script_main(argv) as FLAGS:
        create_pretraining_data(
            FLAGS.input_file, FLAGS.output_file, vocab_file=FLAGS.vocab_file,
            spm_model_file=FLAGS.spm_model_file, do_lower_case=FLAGS.do_lower_case,
            max_seq_length=FLAGS.max_seq_length,
            max_predictions_per_seq=FLAGS.max_predictions_per_seq,
            masked_lm_prob=FLAGS.masked_lm_prob, short_seq_prob=FLAGS.short_seq_prob,
            ngram=FLAGS.ngram, favor_shorter_ngram=FLAGS.favor_shorter_ngram,
            do_whole_word_mask=FLAGS.do_whole_word_mask, do_permutation=FLAGS.do_permutation,
            random_next_sentence=FLAGS.random_next_sentence, random_seed=FLAGS.random_seed,
            dupe_factor=FLAGS.dupe_factor, num_workers=FLAGS.num_workers,
            num_output_shards=FLAGS.num_output_shards, resume=FLAGS.resume,
            skip_bad_lines=FLAGS.skip_bad_lines, shuffle_buffer_size=FLAGS.shuffle_buffer_size)


if __name__ == "__main__":
    from albert_tf import cli
    cli.run(main, _define_flags, required=["input_file", "output_file"])
