"""`tf.train.Example` serialization and TFRecord framing for pretraining data, in NumPy.

create_pretraining_data writes millions of records; building each `tf.train.Example` through
the protobuf API and writing it with `tf.io.TFRecordWriter` costs tens of microseconds per
record and ties every worker process to TensorFlow (seconds to import, hundreds of MB each).
The two formats are small and frozen, so this module writes them directly, a whole batch of
equally shaped rows at a time:

* `encode_examples`: one serialized `tf.train.Example` per row, with packed `int64_list` /
  `float_list` features (the proto3 wire format TensorFlow itself writes; any protobuf
  parser reads it).
* `frame_records`: TFRecord framing, i.e. for each record
  `uint64 length | uint32 masked_crc32c(length) | data | uint32 masked_crc32c(data)`, all
  little-endian, with CRC-32C (Castagnoli) computed for all records of a batch at once.

Tests check both against TensorFlow (`tf.io.parse_single_example`, `tf.data.TFRecordDataset`,
`tf.io.TFRecordWriter`), the independent reference.
"""

import struct

import numpy as np

# CRC-32C (Castagnoli), reflected polynomial.
_CRC32C_POLY = 0x82F63B78
_MASK_DELTA = 0xA282EAD8  # TFRecord's CRC masking constant.


def _byte_table():
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ np.uint32(_CRC32C_POLY), table >> 1)
    return table.astype(np.uint32)


_TABLE8 = _byte_table()


def _zero_bytes(register, count):
    """Feeds `count` zero bytes into CRC registers (uint64 array or int)."""
    for _ in range(count):
        register = _TABLE8[register & 0xFF] ^ (register >> 8)
    return register


def _pair_tables():
    """Four tables over 16-bit symbols: symbol (2 bytes) followed by 6, 4, 2, 0 zero bytes.

    The CRC register after 8 bytes b0..b7 (starting from register r) is
    T[0][(b0 b1) ^ r_lo] ^ T[1][(b2 b3) ^ r_hi] ^ T[2][b4 b5] ^ T[3][b6 b7]: the CRC is linear,
    so each byte pair contributes independently, shifted by the zero bytes after it.
    """
    symbols = np.arange(1 << 16, dtype=np.uint32)
    first, second = symbols & 0xFF, symbols >> 8  # little-endian: first byte is the low one
    register = _TABLE8[first]
    register = _TABLE8[(register ^ second) & 0xFF] ^ (register >> 8)
    tables = [register]
    for _ in range(3):
        tables.append(_zero_bytes(tables[-1], 2))
    return tuple(tables[::-1])


_PAIR_TABLES = None  # built on first use (a few ms, 1 MB)


class _ZeroPrefixCorrections:
    """`correction[n]`: register after n zero bytes from 0xFFFFFFFF (the standard initial value).

    Raw CRCs below start from 0, which leading zero bytes do not change, so records of
    different lengths can be left-padded to one width. By linearity the standard CRC of an
    n-byte record is raw ^ correction[n] ^ 0xFFFFFFFF.
    """

    def __init__(self):
        self._values = [0xFFFFFFFF]

    def __call__(self, lengths):
        longest = int(lengths.max()) if len(lengths) else 0
        values = self._values
        while len(values) <= longest:
            r = values[-1]
            values.append(int(_TABLE8[r & 0xFF]) ^ (r >> 8))
        return np.asarray(values, dtype=np.uint32)[lengths]


_CORRECTIONS = _ZeroPrefixCorrections()


def crc32c(data):
    """CRC-32C of `data` (bytes-like); e.g. crc32c(b"123456789") == 0xE3069283."""
    return int(batch_crc32c([bytes(data)])[0])


def batch_crc32c(records):
    """CRC-32C of each bytes object in `records`; returns a uint32 array."""
    global _PAIR_TABLES
    if _PAIR_TABLES is None:
        _PAIR_TABLES = _pair_tables()
    t0, t1, t2, t3 = _PAIR_TABLES
    lengths = np.fromiter((len(r) for r in records), dtype=np.int64, count=len(records))
    if len(records) == 0:
        return np.zeros(0, np.uint32)
    width = max(8, -(-int(lengths.max()) // 8) * 8)
    # Right-align every record in a zero matrix (leading zeros leave a raw CRC unchanged).
    matrix = np.zeros((len(records), width), dtype=np.uint8)
    for row, (record, length) in enumerate(zip(records, lengths)):
        if length:
            matrix[row, width - length:] = np.frombuffer(record, dtype=np.uint8)
    words = np.ascontiguousarray(matrix.view("<u4").T)  # [width / 4, num_records]
    register = np.zeros(len(records), dtype=np.uint32)
    for j in range(0, len(words), 2):
        low = words[j] ^ register
        high = words[j + 1]
        register = t0[low & 0xFFFF] ^ t1[low >> 16] ^ t2[high & 0xFFFF] ^ t3[high >> 16]
    return register ^ _CORRECTIONS(lengths) ^ np.uint32(0xFFFFFFFF)


def _masked(crc):
    crc = crc.astype(np.uint64)  # room for the rotation and the addition before the mask
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


def frame_records(payloads):
    """TFRecord framing of each payload (bytes); returns one bytes object per record."""
    if not payloads:
        return []
    headers = [struct.pack("<Q", len(p)) for p in payloads]
    header_crcs = _masked(batch_crc32c(headers)).astype("<u4")
    data_crcs = _masked(batch_crc32c(payloads)).astype("<u4")
    return [b"".join(parts) for parts in
            zip(headers, _split4(header_crcs), payloads, _split4(data_crcs))]


def _split4(values):
    raw = values.tobytes()
    return [raw[i:i + 4] for i in range(0, len(raw), 4)]


# --------------------------------------------------------------------------------------------
# tf.train.Example wire format.
# --------------------------------------------------------------------------------------------


def _varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _varint_rows(matrix):
    """Packed varint encoding of each row of a non-negative integer matrix [N, W].

    Returns (bytes of all rows concatenated, int64 array of each row's byte length).
    """
    rows = matrix.shape[0]
    if matrix.size == 0:
        return b"", np.zeros(rows, dtype=np.int64)
    if int(matrix.min()) < 0:
        raise ValueError("Pretraining features hold non-negative integers; found "
                         f"{int(matrix.min())}.")
    top = int(matrix.max())
    num_bytes = max(1, (top.bit_length() + 6) // 7)
    dtype = np.uint32 if top < 1 << 32 else np.uint64
    values = matrix.reshape(-1).astype(dtype)
    # Byte k of every value in column k; `keep` marks the bytes a value really has. Boolean
    # indexing of the [values, num_bytes] matrix then yields the varints in row-major order.
    out = np.empty((values.size, num_bytes), dtype=np.uint8)
    keep = np.ones((values.size, num_bytes), dtype=bool)
    for k in range(num_bytes):
        shifted = values >> dtype(7 * k) if k else values
        byte = (shifted & dtype(0x7F)).astype(np.uint8)
        if k + 1 < num_bytes:
            more = shifted >= 0x80
            byte |= more.view(np.uint8) << 7
            keep[:, k + 1] = more
        out[:, k] = byte
    if num_bytes == 1:
        return out.tobytes(), np.full(rows, matrix.shape[1], dtype=np.int64)
    return out[keep].tobytes(), keep.reshape(rows, -1).sum(axis=1)


def _split(data, lengths):
    ends = np.cumsum(lengths).tolist()
    starts = [0] + ends[:-1]
    return [data[s:e] for s, e in zip(starts, ends)]


class _FeatureHeaders:
    """Bytes in front of a feature's packed payload, for each payload length (cached).

    One map entry of `Features.feature` is
      0x0A len(entry) | 0x0A len(key) key | 0x12 len(Feature) |
      Feature: 0x1A (int64_list) or 0x12 (float_list) len(list) | list: 0x0A len(payload) payload
    """

    def __init__(self, name, kind_tag):
        self._key = name.encode("utf-8")
        self._kind_tag = kind_tag
        self._cache = {}

    def __call__(self, payload_length):
        header = self._cache.get(payload_length)
        if header is None:
            if payload_length:
                value_list = b"\x0a" + _varint(payload_length)
            else:  # proto3 omits an empty packed field
                value_list = b""
            list_length = len(value_list) + payload_length
            feature = bytes([self._kind_tag]) + _varint(list_length) + value_list
            feature_length = len(feature) + payload_length
            entry = (b"\x0a" + _varint(len(self._key)) + self._key
                     + b"\x12" + _varint(feature_length) + feature)
            entry_length = len(entry) + payload_length
            header = b"\x0a" + _varint(entry_length) + entry
            self._cache[payload_length] = header
        return header


_INT64_TAG = 0x1A
_FLOAT_TAG = 0x12


class ExampleEncoder:
    """Serializes rows of feature matrices as `tf.train.Example` protos.

    Args:
      features: sequence of (name, kind) with kind "int64" or "float", in the order the
        features are written.
    """

    def __init__(self, features):
        self._features = []
        for name, kind in features:
            if kind not in ("int64", "float"):
                raise ValueError(
                    f"Feature {name!r}: kind must be 'int64' or 'float', got {kind!r}.")
            tag = _INT64_TAG if kind == "int64" else _FLOAT_TAG
            self._features.append((name, kind, _FeatureHeaders(name, tag)))

    def encode(self, arrays):
        """Serializes each row.

        Args:
          arrays: dict name -> 2-D array [num_rows, width] (the same num_rows for all);
            int64 features hold non-negative integers, float features are written as float32.

        Returns:
          list of `bytes`, one serialized `tf.train.Example` per row.
        """
        num_rows = None
        columns = []  # per feature: (header function, list of payload bytes)
        for name, kind, headers in self._features:
            matrix = np.asarray(arrays[name])
            if matrix.ndim != 2:
                raise ValueError(f"Feature {name!r}: expected a 2-D array [rows, width], got "
                                 f"shape {matrix.shape}.")
            if num_rows is None:
                num_rows = matrix.shape[0]
            elif matrix.shape[0] != num_rows:
                raise ValueError(f"Feature {name!r} has {matrix.shape[0]} rows, expected "
                                 f"{num_rows} like the features before it.")
            if kind == "int64":
                data, lengths = _varint_rows(matrix)
                payloads = _split(data, lengths)
            else:
                raw = np.ascontiguousarray(matrix, dtype="<f4").tobytes()
                step = 4 * matrix.shape[1]
                payloads = [raw[i * step:(i + 1) * step] for i in range(num_rows)]
            columns.append((headers, payloads))
        examples = []
        for row in range(num_rows or 0):
            parts = []
            for headers, payloads in columns:
                payload = payloads[row]
                parts.append(headers(len(payload)))
                parts.append(payload)
            body = b"".join(parts)
            examples.append(b"\x0a" + _varint(len(body)) + body)
        return examples
