"""The resumable side of a `create_pretraining_data` job: its files, state and checkpoints,
the writer of the output shards, and the progress lines.

`JobPaths` names the job's side files beside the first output file; `JobState` holds the
running totals a checkpoint records; `read_finished_summary`, `start_fresh` and `load_state`
decide whether a run is done, starts over or resumes. `ShardWriter` shuffles windows of task
results, deals the instances round-robin to the output files (written as pieces in the work
folder, closed at each checkpoint) and, at the end, moves or concatenates the pieces into the
outputs and writes the summary last. `Progress` prints the progress and summary lines.
"""

import concurrent.futures
import json
import os
import sys
import time

import numpy as np
import tensorflow as tf

from albert_tf import _pretraining_instances as instances_lib
from albert_tf import files
from albert_tf._pretraining_instances import PretrainingDataError, seeded_rng


def file_size(path):
    """The size of `path` in bytes, as stored (any filesystem); FileError naming it."""
    try:
        return tf.io.gfile.stat(path).length
    except tf.errors.OpError as error:
        raise files.FileError(f"Cannot read the input file {path}: {error.message}") from None


# --------------------------------------------------------------------------------------------
# Writing: windows, shards, checkpoints, summary.
# --------------------------------------------------------------------------------------------


class JobPaths:
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


class JobState:
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


def remove_tree(path):
    """Removes the folder `path` and everything under it, if it exists (any filesystem)."""
    if files.exists(path):
        tf.io.gfile.rmtree(path)


def _relative(path, directory):
    """How the summary names an output file: relative to the summary's folder."""
    if files.dirname(path) == directory:
        return files.basename(path)
    if not files.has_scheme(path) and not files.has_scheme(directory):
        return os.path.relpath(os.path.abspath(path), os.path.abspath(directory or "."))
    return path


def read_finished_summary(paths, fingerprint, output_files):
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
        if not files.exists(output) or file_size(output) != shard["bytes"]:
            return None
    if path != paths.summary:
        tf.io.gfile.rename(path, paths.summary, overwrite=True)
    return summary


def start_fresh(paths, output_files):
    """Removes every file of an earlier run of these outputs and creates the work folder."""
    # No file of an older run may stay behind looking complete: the summary goes first.
    for path in [paths.summary, paths.old_summary] + list(output_files):
        _remove(path)
    remove_tree(paths.work_dir)
    remove_tree(paths.old_work_dir)
    for path in output_files:
        _remove(JobPaths.old_partial(path))
    files.makedirs(paths.cache_dir)


def load_state(paths, fingerprint, output_files):
    """The checkpointed state (a dict) to resume from, or None if there is none; pieces
    written after the checkpoint are removed.

    Raises:
      PretrainingDataError: the checkpoint has other settings, or a piece it recorded is
        missing.
    """
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


class ShardWriter:
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
        seeded_rng(self.random_seed, "window", state.window).shuffle(records)
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
        remove_tree(self.paths.work_dir)
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
    _check_size(piece, file_size(piece), expected_bytes)
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


class Progress:
    """The job's progress lines and summary on stderr (every `interval` seconds at most)."""

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
