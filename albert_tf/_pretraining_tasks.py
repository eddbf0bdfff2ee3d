"""The work of a `create_pretraining_data` job: reading the corpus in chunks, and the tasks
that turn a chunk (one pass over it) into serialized TFRecord records, run on worker processes.

`ChunkReader` streams the input files as chunks of whole documents in reading order;
`run_tasks` deals the (chunk, pass) tasks to the workers in job order (pass-major), caches
each chunk's tokens between passes and hands every result, in order, to the job's writer
(`_pretraining_job.ShardWriter`). Workers only compute: the main process reads the inputs
and the token cache and writes every file (through `albert_tf.files`), so the output does not
depend on the number of workers.
"""

import collections
import concurrent.futures
import dataclasses
import gc
import io
import multiprocessing
import signal
import sys

import numpy as np

from albert_tf import _pretraining_instances as instances_lib
from albert_tf import _pretraining_records as records_lib
from albert_tf import files
from albert_tf import tokenization
from albert_tf._pretraining_instances import PieceCoder, PretrainingDataError, seeded_rng


# --------------------------------------------------------------------------------------------
# Reading: lines -> documents -> chunks.
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Chunk:
    documents: list  # documents of raw (non-blank) lines
    text_bytes: int
    input_fraction: float  # share of the input file bytes read when the chunk ended


class ChunkReader:
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
        """Yields `Chunk`s; a small last chunk is merged into the one before it."""
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
                    pending = Chunk(documents, size, self._position())
                    documents, size = [], 0
        if document:
            documents.append(document)
        if documents:
            last = Chunk(documents, size, 1.0)
            if pending is not None and (size < self.chunk_bytes // 2
                                        or len(documents) < self.min_documents):
                # Too small to be a good random-document pool on its own.
                last = Chunk(pending.documents + documents, pending.text_bytes + size, 1.0)
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


class TaskContext:
    """Everything a worker needs; created in the parent and inherited (fork) or pickled
    (spawn)."""

    def __init__(self, tokenizer, options, random_seed, dupe_factor):
        self.tokenizer = tokenizer
        self.coder = PieceCoder(tokenizer)
        self.options = options
        self.random_seed = random_seed
        self.dupe_factor = dupe_factor
        self.cumulative = options.ngram_cumulative_weights()
        self.encoder = records_lib.ExampleEncoder(instances_lib.FEATURES)


_CONTEXT = None  # the worker's TaskContext


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


def run_task(task):
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
        seeded_rng(context.random_seed, "documents", task.chunk).shuffle(documents)
        corpus_tokens = sum(len(s) for d in documents for s in d)
        if context.dupe_factor > 1:
            cached = _encode_documents(documents)
    else:
        documents = _decode_documents(task.cached)
    rng = seeded_rng(context.random_seed, "instances", task.chunk, task.pass_index)
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


def run_tasks(context, reader, writer, state, num_workers, report, cache_dir,
              run_task=run_task):
    """Runs every task of the job from `state.next_task` on; `writer.add` gets each result
    in task order, `report.update` follows the progress. `run_task` is the unit of work (a
    picklable function of a `_Task`)."""
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
            in_flight.append(executor.submit(run_task, task))
        while in_flight:
            consume_one()
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
        gc.unfreeze()
