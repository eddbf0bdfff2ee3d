"""Reading and writing files on any filesystem `tf.io.gfile` knows, atomically.

Every path a user gives may be local, `gs://`, `ram://` (TensorFlow's in-memory filesystem)
or `s3://`/`hdfs://` where a filesystem plugin is installed. The library reaches user paths
only through this module (or through TensorFlow ops that take paths: `tf.data`, checkpoints,
`tf.summary`, `tf.saved_model`), never through `open`, `os.path`, `glob` or `os.replace`.

Atomic writes: a file is written under a temporary name in its own folder
(`.<name>.tmp-<unique>`, which no glob of the form `<name>*` or `*.<extension>` matches) and
renamed to its final name when complete; a failure removes the temporary file. On a local disk
and on HDFS the rename is atomic. On an object store (`gs://`, `s3://`) a rename is a copy then
a delete; a single object still appears whole or not at all (object writes are atomic), so a
reader never sees a half-written file under the final name; a folder (a SavedModel) is renamed
object by object, so `replace_dir` writes the folder's files first and a reader should look for
its marker file (`saved_model.pb`), which `tf.saved_model.save` writes last.

Side files: the project's own files written beside users' data (summaries, settings, caches,
manifests) are named by `side_file`, `_<name>.<suffix>`, and the input globs expanded by
`expand_globs` skip names starting with `_` or `.` when a wildcard matched them (the
convention of Hadoop and Spark: `_SUCCESS`, `_metadata`), so `--input_file=<output_file>*`
selects the data files only.
"""

import contextlib
import gzip
import io
import json
import os
import posixpath
import re
import time
import uuid
import zlib

import tensorflow as tf

from albert_tf.errors import UserError

_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_WILDCARD = re.compile(r"[*?\[]")


class FileError(UserError):
    """A path a user gave cannot be read or written; the message names it."""


# === Paths ===

def has_scheme(path):
    """Whether `path` is a URL-like path (`gs://...`, `ram://...`), not a local one."""
    return bool(_SCHEME.match(str(path)))


def join(*parts):
    """Joins path parts with `/` for URL-like paths, with the local separator otherwise."""
    parts = [str(p) for p in parts]
    if has_scheme(parts[0]):
        return posixpath.join(*parts)
    return os.path.join(*parts)


def split(path):
    """(folder, name) of a path; the folder keeps its scheme (`gs://b/x/y` -> `gs://b/x`, `y`)."""
    path = str(path).rstrip("/") if has_scheme(path) else str(path)
    if has_scheme(path):
        head, _, tail = path.rpartition("/")
        if head.endswith(":/"):  # `ram://name`: the folder is the filesystem root
            head += "/"
        return head, tail
    return os.path.split(path)


def dirname(path):
    """The folder of `path` (`split(path)[0]`)."""
    return split(path)[0]


def basename(path):
    """The last component of `path` (`split(path)[1]`)."""
    return split(path)[1]


def side_file(path, suffix):
    """The name of a side file of the data file `path`: `<folder>/_<name>.<suffix>`.

    E.g. `side_file("gs://b/train.tfrecord", "summary.json")` is
    `gs://b/_train.tfrecord.summary.json`, which `gs://b/train.tfrecord*` does not match.
    """
    folder, name = split(path)
    return join(folder, f"_{name}.{suffix}") if folder else f"_{name}.{suffix}"


def is_hidden(path):
    """Whether the last component starts with `_` or `.` (side and temporary files)."""
    return basename(path).startswith(("_", "."))


def expand_globs(patterns, what="input file"):
    """The files of comma-separated glob patterns, in order, without duplicates.

    Args:
      patterns: a string `"a/*.tfrecord,b/x.tfrecord"` or a list of patterns; any filesystem.
      what: how the error names the files (e.g. "pretraining input file").
    Returns:
      A list of paths: each pattern's matches sorted, in the order of the patterns. Names
      starting with `_` or `.` matched by a wildcard are skipped (side and temporary files);
      a pattern without wildcards is taken as it is.
    Raises:
      FileError: a pattern matches no file (naming the pattern).
    """
    if isinstance(patterns, str):
        patterns = patterns.split(",")
    files, seen = [], set()
    for pattern in (p.strip() for p in patterns):
        if not pattern:
            continue
        try:
            if _WILDCARD.search(pattern):
                matches = [m for m in sorted(tf.io.gfile.glob(pattern)) if not is_hidden(m)]
            else:
                matches = [pattern] if tf.io.gfile.exists(pattern) else []
        except tf.errors.OpError as error:
            raise FileError(f"Cannot list the {what} pattern {pattern!r}: {describe(error)}") from None
        if not matches:
            raise FileError(f"No {what} matches {pattern!r}.")
        for match in matches:
            if match not in seen:
                seen.add(match)
                files.append(match)
    if not files:
        raise FileError(f"No {what} given (the pattern list {patterns!r} is empty).")
    return files


# === Reading ===

def read_bytes(path, what="file"):
    """The bytes of `path`. Raises FileError (naming the path) if it cannot be read."""
    try:
        with tf.io.gfile.GFile(path, "rb") as f:
            return f.read()
    except tf.errors.OpError as error:
        raise FileError(_read_error(path, what, error)) from None


def read_text(path, what="file"):
    """The UTF-8 text of `path`. Raises FileError naming the path (and the byte offset of
    invalid UTF-8)."""
    data = read_bytes(path, what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise FileError(f"The {what} {path} is not UTF-8 text: line {line}, byte "
                        f"{error.start}: {error.reason}.") from None


def read_json(path, what="JSON file"):
    """The parsed JSON of `path`. Raises FileError naming the path and the line."""
    text = read_text(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise FileError(f"The {what} {path} is not valid JSON: line {error.lineno}, "
                        f"column {error.colno}: {error.msg}.") from None


class _RawGFile(io.RawIOBase):
    """A `tf.io.gfile.GFile` opened for reading, as the raw stream under an
    `io.BufferedReader`; `position` counts the bytes read from the file."""

    def __init__(self, gfile):
        super().__init__()
        self._file = gfile
        self.position = 0

    def readable(self):
        return True

    def readinto(self, buffer):
        data = self._file.read(len(buffer))
        buffer[:len(data)] = data
        self.position += len(data)
        return len(data)

    def close(self):
        self._file.close()
        super().close()


class BinaryReader:
    """A file opened by `open_binary`. Iterating yields its lines (bytes, each with its
    `b"\\n"`); `position` is the number of bytes of the file read so far (compressed bytes
    of a gzip file), for progress reports. Read errors raise FileError naming the file."""

    def __init__(self, path, what, stream, raw, gzipped):
        self.path, self.what, self.gzipped = path, what, gzipped
        self._stream, self._raw = stream, raw

    @property
    def position(self):
        return self._raw.position

    def __iter__(self):
        try:
            yield from self._stream
        except tf.errors.OpError as error:
            raise FileError(f"Cannot read the {self.what} {self.path}: {describe(error)}") from None
        except (EOFError, OSError, zlib.error) as error:  # gzip.BadGzipFile is an OSError
            if not self.gzipped:
                raise
            raise FileError(f"The {self.what} {self.path} is not a readable gzip file "
                            f"({error}).") from None


@contextlib.contextmanager
def open_binary(path, what="file", gunzip=False):
    """Yields a `BinaryReader` of `path` (any filesystem) that reads 1 MiB blocks through
    `tf.io.gfile` (iterating its lines is as fast as over a local `open`; GFile's own
    `readline` is about 20 times slower).

    Args:
      gunzip: decompress gzip content, recognised by its magic bytes (whatever the name).
    Raises:
      FileError: the file does not exist or cannot be read (naming it).
    """
    try:
        gfile = tf.io.gfile.GFile(path, "rb")
        raw = _RawGFile(gfile)
        stream = io.BufferedReader(raw, 1 << 20)
        head = stream.peek(2)  # opens the file: a missing one fails here
        gzipped = gunzip and head[:2] == b"\x1f\x8b"
    except tf.errors.OpError as error:
        raise FileError(_read_error(path, what, error)) from None
    try:
        if gzipped:
            stream = gzip.GzipFile(fileobj=stream, mode="rb")
        yield BinaryReader(path, what, stream, raw, gzipped)
    finally:
        stream.close()
        raw.close()


def exists(path):
    """`tf.io.gfile.exists(path)`."""
    return tf.io.gfile.exists(path)


def makedirs(path):
    """Creates the folder `path` and its parents (no error if it exists)."""
    try:
        tf.io.gfile.makedirs(path)
    except tf.errors.OpError as error:
        raise FileError(f"Cannot create the folder {path}: {describe(error)}") from None


def describe(error):
    """The message of a TensorFlow filesystem error as one sentence, with what to install
    when the path's filesystem has no plugin (`s3://`, `hdfs://`)."""
    message = " ".join(str(getattr(error, "message", error)).split()).rstrip(".")
    if "File system scheme" in message and "not implemented" in message:
        message += (" (this filesystem needs a plugin: e.g. `pip install tensorflow-io` and "
                    "`import tensorflow_io` for s3:// or hdfs://)")
    return message + "."


def _read_error(path, what, error):
    if isinstance(error, tf.errors.NotFoundError) or not tf.io.gfile.exists(path):
        return f"The {what} {path} does not exist."
    return f"Cannot read the {what} {path}: {describe(error)}"


# === Atomic writing ===

def temporary_name(path):
    """A unique temporary name beside `path`: `<folder>/.<name>.tmp-<unique>`."""
    folder, name = split(path)
    tmp = f".{name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    return join(folder, tmp) if folder else tmp


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary name beside `path` to write to; renames it to `path` on success.

    For writers that take a path (e.g. `tf.io.TFRecordWriter`, matplotlib's `savefig`). The
    folder is created. On an exception the temporary file is removed and `path` is untouched.
    """
    folder = dirname(path)
    if folder:
        makedirs(folder)
    tmp = temporary_name(path)
    try:
        yield tmp
        tf.io.gfile.rename(tmp, path, overwrite=True)
    finally:
        if tf.io.gfile.exists(tmp):
            tf.io.gfile.remove(tmp)


@contextlib.contextmanager
def atomic_write(path, mode="w"):
    """Yields a `tf.io.gfile.GFile` (mode "w" for text or "wb" for bytes) whose content
    appears under `path` only once the block ends without an exception."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write mode must be 'w' or 'wb', not {mode!r}.")
    with atomic_path(path) as tmp:
        with tf.io.gfile.GFile(tmp, mode) as f:
            yield f


def write_bytes(path, data):
    """Writes `data` (bytes) to `path` atomically."""
    with atomic_write(path, "wb") as f:
        f.write(data)


def write_text(path, text):
    """Writes `text` (str, as UTF-8) to `path` atomically."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path, value, indent=2, sort_keys=False):
    """Writes `value` as JSON (with a trailing newline) to `path` atomically."""
    write_text(path, json.dumps(value, indent=indent, sort_keys=sort_keys) + "\n")


@contextlib.contextmanager
def atomic_tfrecord_writer(path, options=None):
    """Yields a `tf.io.TFRecordWriter` whose file appears under `path` only when complete."""
    with atomic_path(path) as tmp:
        with tf.io.TFRecordWriter(tmp, options) as writer:
            yield writer


def write_records(path, records, total=None, unit="records", log=None):
    """Writes serialized records (an iterable of bytes) as the TFRecord file `path`,
    atomically, logging progress every 10,000 records through `log(message)` if given.
    Returns the number of records written."""
    start, count = time.time(), 0
    with atomic_tfrecord_writer(path) as writer:
        for record in records:
            if log is not None and count and count % 10000 == 0:
                of = f" of {total}" if total else ""
                log(f"Converted {count}{of} {unit} ({count / (time.time() - start):.0f}/s).")
            writer.write(record)
            count += 1
    return count


@contextlib.contextmanager
def replace_dir(path, marker="saved_model.pb"):
    """Yields a temporary folder beside `path` to fill; on success it replaces `path`.

    For writers that make a folder (`tf.saved_model.save`). On a local disk the folder is
    renamed (atomic). Other filesystems have no folder rename (an object store's "folders"
    are name prefixes): the files are copied to `path` one by one, the `marker` file last, so
    a reader that waits for the marker (a SavedModel's `saved_model.pb`) never sees a partial
    folder. On an exception the temporary folder is removed and `path` is untouched.
    """
    parent = dirname(path)
    if parent:
        makedirs(parent)
    tmp = temporary_name(path)
    try:
        yield tmp
        if tf.io.gfile.exists(path):
            tf.io.gfile.rmtree(path)
        if has_scheme(path):
            _copy_tree(tmp, path, marker)
        else:
            tf.io.gfile.rename(tmp, path)
    finally:
        if tf.io.gfile.exists(tmp):
            tf.io.gfile.rmtree(tmp)


def _copy_tree(source, target, marker=None):
    """Copies every file under the folder `source` to the same place under `target`,
    the files named `marker` last."""
    pairs = []
    for folder, _, names in tf.io.gfile.walk(source):
        relative = folder[len(source):].lstrip("/")
        for name in names:
            pairs.append((join(folder, name), join(target, relative, name) if relative
                          else join(target, name)))
    tf.io.gfile.makedirs(target)
    for src, dst in sorted(pairs, key=lambda pair: basename(pair[0]) == marker):
        tf.io.gfile.makedirs(dirname(dst))
        tf.io.gfile.copy(src, dst, overwrite=True)


def copy(source, target):
    """Copies the file `source` to `target` atomically (any filesystems)."""
    with atomic_path(target) as tmp:
        tf.io.gfile.copy(source, tmp, overwrite=True)


def count_records(path):
    """The number of records in the TFRecord file `path` (any filesystem)."""
    return int(tf.data.TFRecordDataset(path).reduce(tf.constant(0, tf.int64),
                                                    lambda count, _: count + 1))
