"""`InGraphTokenizer`: the SentencePiece pipeline of `FullTokenizer` as TensorFlow ops.

Kept apart from `albert_tf.tokenization` so that the Python tokenizer (and the pretraining-data
workers built on it) start without importing TensorFlow; `albert_tf.tokenization.InGraphTokenizer`
still names this class (imported there on first use). What both tokenizers share (loading the
SentencePiece model, the digit-comma rule) is in `albert_tf.sentencepiece_model`, so this module
does not import `albert_tf.tokenization`.
"""

import functools
import os
import unicodedata

import tensorflow as tf

from albert_tf import files
from albert_tf.sentencepiece_model import (
    MissingTokenError,
    load_spm_model,
    sentencepiece_from_proto,
    split_digit_comma,
)


@functools.lru_cache(maxsize=1)
def _python_char_classes():
    """RE2 character classes equal to Python's own predicates, over all code points.

    Built from this interpreter's `unicodedata` so that the graph does exactly what the
    Python path does: `str.isspace` (what `str.split()`/`strip()` use) and a non-zero
    `unicodedata.combining` (what `preprocess_text` deletes; not the same set as category Mn,
    e.g. U+034F COMBINING GRAPHEME JOINER is Mn with class 0 and stays).
    """
    predicates = {
        "space": str.isspace,
        "space_but_blank": lambda c: c != " " and c.isspace(),
        "combining": lambda c: unicodedata.combining(c) != 0,
    }
    ranges = {name: [] for name in predicates}
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        char = chr(cp)
        for name, predicate in predicates.items():
            if predicate(char):
                spans = ranges[name]
                if spans and spans[-1][1] == cp - 1:
                    spans[-1][1] = cp
                else:
                    spans.append([cp, cp])

    def as_class(spans):
        parts = (f"\\x{{{lo:x}}}" if lo == hi else f"\\x{{{lo:x}}}-\\x{{{hi:x}}}"
                 for lo, hi in spans)
        return "[" + "".join(parts) + "]"

    return {name: as_class(spans) for name, spans in ranges.items()}


class InGraphTokenizer(tf.Module):
    """The SentencePiece pipeline of `FullTokenizer` as TensorFlow ops, packing model inputs.

    Gives the ids that `FullTokenizer(None, do_lower_case, spm_model_file)` gives
    (preprocessing, SentencePiece, digit-comma rule), packed as `encode_inputs` packs them,
    for a batch of texts or text pairs. The SentencePiece model is a constant of the graph, so
    a SavedModel holding this module needs no file. Works eagerly, under `tf.function`, in
    `tf.data` and after `tf.saved_model.save` / `load` (use `save`, which keeps the
    single-text and the pair forms).

    How: the preprocessing is TensorFlow string ops whose character classes are generated
    from Python's `unicodedata` (the same sets `preprocess_text` uses); segmentation is
    TensorFlow Text's `FastSentencepieceTokenizer` (it matches the `sentencepiece` package's
    segmentation, where TF Text's `SentencepieceTokenizer` breaks rare ties differently); the
    digit-comma rule depends only on the piece, so the replacement of every vocabulary piece
    is computed once, with the `sentencepiece` package, and looked up in the graph.

    Args:
      spm_model_file: SentencePiece `.model` file (or pass `model_proto=` bytes instead).
      do_lower_case: lower-case during preprocessing.
      max_seq_length: length of every output row, at least 3.
      return_offsets: also return `start_offsets` / `end_offsets` (slower: a second
        segmentation, with offsets, by TF Text's `SentencepieceTokenizer`).
      model_proto: the serialized model, instead of a file.

    Call:
      text_a: string tensor [batch] (or a scalar: outputs then lose the batch dimension).
      text_b: optional string tensor like `text_a`, the second text of each pair. A row
        whose `text_b` gives no tokens (e.g. "") is packed as a single text, as the original.

    Returns:
      dict of int32 tensors [batch, max_seq_length]:
        input_ids: `[CLS] a [SEP] (b [SEP])` then 0 padding. Texts too long are truncated:
          a single text keeps its first `max_seq_length - 2` tokens; for a pair, the longer
          token list loses its last token, one at a time (b on a tie), until both fit in
          `max_seq_length - 3`.
        input_mask: 1 on real tokens, 0 on padding.
        segment_ids: 0 for [CLS], a and the first [SEP]; 1 for b and its [SEP]; 0 padding.
        start_offsets, end_offsets (if `return_offsets`): for each token of a or b, the
          [start, end) offsets, in characters (Unicode code points), of its text in the
          *preprocessed* text it came from (`preprocess(text)`), as SentencePiece reports
          them: a piece "▁word" covers " word" (its "▁" stands for the space before it),
          or "word" at the start of the text. Tokens made by the digit-comma rule share
          the span of the piece they replace, minus its final comma, and the comma gets
          its own. 0 for
          [CLS], [SEP] and padding. -1 for every token of a text that TF Text's
          `SentencepieceTokenizer` segments differently from the ids (a rare tie: 8 of the
          11,395 lines of tests/fixtures/original_pretraining_data/pydoc_corpus.txt.gz).

    Bad input: invalid UTF-8 bytes are dropped (as `convert_to_unicode` does in Python); an
    empty text gives `[CLS] [SEP]`.

    Example:
      layer = InGraphTokenizer("30k-clean.model", do_lower_case=True, max_seq_length=128)
      features = layer(tf.constant(["first text", "second"]), tf.constant(["b1", "b2"]))
      dataset = tf.data.Dataset.from_tensor_slices(texts).batch(256).map(layer)
    """

    def __init__(self, spm_model_file=None, do_lower_case=True, max_seq_length=128, *,
                 return_offsets=False, model_proto=None, name=None):
        super().__init__(name=name)
        import tensorflow_text as tf_text  # Imported here: the Python path does not need it.

        if (spm_model_file is None) == (model_proto is None):
            raise ValueError("Pass exactly one of spm_model_file and model_proto.")
        if model_proto is None:
            model_proto, sp_model = load_spm_model(spm_model_file)
            origin = os.fspath(spm_model_file)
        else:
            origin = "model_proto"
            sp_model = sentencepiece_from_proto(model_proto, origin)
        if int(max_seq_length) < 3:
            raise ValueError(f"max_seq_length must be at least 3 ([CLS] x [SEP]), got "
                             f"{max_seq_length}.")
        self.do_lower_case = bool(do_lower_case)
        self.max_seq_length = int(max_seq_length)
        self.return_offsets = bool(return_offsets)
        self.vocab_size = sp_model.GetPieceSize()

        unk = sp_model.unk_id()

        def required_id(piece, why):
            if sp_model.PieceToId(piece) == unk:
                raise MissingTokenError(
                    f"Token {piece!r} is not in the SentencePiece model {origin!r}; the "
                    f"in-graph tokenizer needs it {why}. Train models with "
                    "albert_tf.train_sentencepiece, or use FullTokenizer.")
            return sp_model.PieceToId(piece)

        self.cls_id = required_id("[CLS]", "to pack inputs")
        self.sep_id = required_id("[SEP]", "to pack inputs")
        # Unknown pieces reach the graph as the <unk> id, without their text. They are runs of
        # characters the model lacks, so the digit-comma rule can only apply to one when ","
        # itself is unknown; with "," in the model, looking the rule up by id is exact.
        required_id(",", "for the digit-comma rule")

        # The digit-comma rule, per vocabulary id: the ids that replace the piece.
        replacement_ids, lengths = [], []
        for i in range(self.vocab_size):
            pieces = split_digit_comma(sp_model, sp_model.IdToPiece(i))
            ids = [i] if len(pieces) == 1 else [sp_model.PieceToId(p) for p in pieces]
            replacement_ids.extend(ids)
            lengths.append(len(ids))
        self._replacements = tf.RaggedTensor.from_row_lengths(
            tf.constant(replacement_ids, tf.int32), tf.constant(lengths, tf.int64))

        self._fast_sp = tf_text.FastSentencepieceTokenizer(model_proto)
        # Offsets come from TF Text's other SentencePiece kernel, the one that reports them.
        self._offsets_sp = (tf_text.SentencepieceTokenizer(model_proto, out_type=tf.int32)
                            if self.return_offsets else None)
        self._normalize_utf8 = tf_text.normalize_utf8

        classes = _python_char_classes()
        # Only runs that change: two or more whitespace characters, or one that is not " ".
        self._space_runs = f"{classes['space']}{{2,}}|{classes['space_but_blank']}"
        self._combining = f"{classes['combining']}+"

    # ---- building blocks -------------------------------------------------------------------

    def preprocess(self, text):
        """`preprocess_text(text, lower=do_lower_case)` in graph; string tensor, any shape.

        Invalid UTF-8 bytes are dropped first (as `convert_to_unicode` does).
        """
        flat = tf.reshape(text, [-1])
        # Plain ASCII text (no NUL) needs no UTF-8 repair, NFKD, accent removal or Unicode
        # lower-casing: it takes a short path, the rest the full one.
        ascii_rows = tf.strings.regex_full_match(flat, "[\\x01-\\x7f]*")
        ascii_at = tf.cast(tf.where(ascii_rows)[:, 0], tf.int32)
        other_at = tf.cast(tf.where(~ascii_rows)[:, 0], tf.int32)
        ascii_text = self._collapse_spaces(tf.gather(flat, ascii_at))
        if self.do_lower_case:
            ascii_text = tf.strings.lower(ascii_text)  # ASCII letters only
        other_text = self._preprocess_unicode(tf.gather(flat, other_at))
        return tf.reshape(tf.dynamic_stitch([ascii_at, other_at], [ascii_text, other_text]),
                          tf.shape(text))

    def _collapse_spaces(self, text):
        # Every whitespace run becomes one " ", which `strip` (ASCII whitespace) then removes
        # at both ends: the same as " ".join(text.strip().split()).
        return tf.strings.strip(tf.strings.regex_replace(text, self._space_runs, " "))

    def _preprocess_unicode(self, text):
        text = tf.strings.unicode_transcode(text, "UTF-8", "UTF-8", errors="ignore")
        text = self._collapse_spaces(text)
        text = self._normalize_utf8(text, "NFKD")
        text = tf.strings.regex_replace(text, self._combining, "")
        if self.do_lower_case:
            text = self._lower(text)
        return text

    @staticmethod
    def _lower(text):
        """`str.lower()` of UTF-8 strings (ICU's full lower-casing, final sigma included)."""
        # tf.strings.lower stops at the first NUL character; strings holding one are lowered
        # piece by piece between NULs.
        def by_pieces():
            parts = tf.strings.split(tf.reshape(text, [-1]), sep="\x00")  # [n, (parts)]
            lowered = tf.strings.lower(parts.flat_values, encoding="utf-8")
            # Put the NULs back after every part but the last (reduce_join's separator
            # attribute would lose a NUL too).
            index = tf.range(tf.size(lowered, out_type=tf.int64))
            last = tf.repeat(parts.row_limits() - 1, parts.row_lengths())
            nul = tf.fill(tf.shape(lowered), tf.constant("\x00"))
            lowered = tf.where(index == last, lowered, tf.strings.join([lowered, nul]))
            joined = tf.strings.reduce_join(parts.with_flat_values(lowered), axis=1)
            return tf.reshape(joined, tf.shape(text))

        has_nul = tf.reduce_any(tf.strings.regex_full_match(text, "(?s).*\\x00.*"))
        lowered = tf.cond(has_nul, by_pieces, lambda: tf.strings.lower(text, encoding="utf-8"))
        lowered.set_shape(text.shape)
        return lowered

    def tokenize(self, text):
        """Ids of each text (preprocessing included): int32 RaggedTensor [batch, (tokens)]."""
        return self._tokenize(self.preprocess(text), with_offsets=False)[0]

    def _tokenize(self, text, with_offsets):
        """Segments preprocessed text [batch] and applies the digit-comma rule.

        Returns (ids, starts, ends): RaggedTensors [batch, (tokens)]; starts/ends are byte
        offsets into `text`, or -1 (see the class docstring); None unless `with_offsets`.
        """
        pieces = self._fast_sp.tokenize(text)  # [batch, (pieces)]
        pieces = pieces.with_row_splits_dtype(tf.int64)
        flat = pieces.flat_values
        count = tf.gather(self._replacements.row_lengths(), flat)  # tokens per piece

        def expand():
            values = tf.gather(self._replacements, flat).flat_values
            lengths = tf.math.unsorted_segment_sum(count, pieces.value_rowids(), pieces.nrows())
            return values, lengths

        # Most batches hold no piece the rule splits; skip the ragged gather for them.
        values, lengths = tf.cond(tf.reduce_any(count > 1), expand,
                                  lambda: (flat, pieces.row_lengths()))
        ids = tf.RaggedTensor.from_row_lengths(values, lengths, validate=False)
        if not with_offsets:
            return ids, None, None

        expanded = tf.gather(self._replacements, flat)  # [n, (replacement)]
        ids_off, starts, ends = self._offsets_sp.tokenize_with_offsets(text)
        # Rows where the two kernels agree on the pieces take the offsets; others get -1.
        ids_off = ids_off.with_row_splits_dtype(tf.int64)
        shape = tf.stack([pieces.nrows(),
                          tf.maximum(pieces.bounding_shape(1), ids_off.bounding_shape(1))])
        same = tf.reduce_all(tf.equal(pieces.to_tensor(-1, shape=shape),
                                      ids_off.to_tensor(-1, shape=shape)), axis=1)
        # Per token: the piece it came from, and whether it is the comma that the digit-comma
        # rule appended (the last of a piece replaced by more than one token).
        count = expanded.row_lengths()
        piece_of_token = tf.repeat(tf.range(tf.size(count, out_type=tf.int64)), count)
        token_count = tf.gather(count, piece_of_token)
        slot = (tf.range(tf.size(piece_of_token, out_type=tf.int64))
                - tf.gather(expanded.row_starts(), piece_of_token))
        is_comma = (token_count > 1) & tf.equal(slot, token_count - 1)
        usable = tf.gather(tf.gather(same, pieces.value_rowids()), piece_of_token)
        p_start = tf.gather(tf.cast(starts.flat_values, tf.int64), piece_of_token)
        p_end = tf.gather(tf.cast(ends.flat_values, tf.int64), piece_of_token)
        missing = tf.constant(-1, tf.int64)
        start = tf.where(usable, tf.where(is_comma, p_end - 1, p_start), missing)
        end = tf.where(usable, tf.where(is_comma | (token_count == 1), p_end, p_end - 1),
                       missing)
        return ids, ids.with_flat_values(start), ids.with_flat_values(end)

    @staticmethod
    def _byte_to_char(text, byte_offsets):
        """Code point offsets in `text` for ragged byte offsets [batch, (t)]; -1 stays -1."""
        _, char_starts = tf.strings.unicode_decode_with_offsets(text, "UTF-8")
        big = tf.constant(tf.int64.max, tf.int64)
        sorted_starts = char_starts.to_tensor(default_value=big)
        # A sentinel column keeps the inner dimension non-empty for all-empty batches.
        sorted_starts = tf.concat(
            [sorted_starts, tf.fill([tf.shape(sorted_starts)[0], 1], big)], axis=1)
        dense = tf.cast(byte_offsets.to_tensor(), tf.int64)
        index = tf.searchsorted(sorted_starts, dense, side="left", out_type=tf.int64)
        index = tf.where(dense < 0, tf.constant(-1, tf.int64), index)
        return tf.RaggedTensor.from_tensor(index, lengths=byte_offsets.row_lengths())

    # ---- packing ---------------------------------------------------------------------------

    def __call__(self, text_a, text_b=None):
        """Model inputs for texts [batch] (or one text, []) and optional second texts."""
        text_a = tf.convert_to_tensor(text_a, tf.string)
        rank = text_a.shape.rank
        if rank not in (0, 1):
            raise ValueError(f"text_a must be a string tensor of shape [batch] or [], got "
                             f"shape {text_a.shape}.")
        if text_b is not None:
            text_b = tf.convert_to_tensor(text_b, tf.string)
            if text_b.shape.rank != rank:
                raise ValueError(f"text_b must have the shape of text_a {text_a.shape}, got "
                                 f"{text_b.shape}.")
        if rank == 0:
            text_a = text_a[None]
            text_b = None if text_b is None else text_b[None]
        if tf.executing_eagerly():
            outputs = (self.encode(text_a) if text_b is None
                       else self.encode_pair(text_a, text_b))
        else:  # Already in a graph (tf.data, tf.function): build the ops in place.
            outputs = self._encode([text_a] if text_b is None else [text_a, text_b])
        if rank == 0:
            outputs = {k: v[0] for k, v in outputs.items()}
        return outputs

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)], autograph=False)
    def encode(self, text_a):
        """`[CLS] a [SEP]` features for texts [batch]; see the class docstring."""
        return self._encode([text_a])

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)] * 2, autograph=False)
    def encode_pair(self, text_a, text_b):
        """`[CLS] a [SEP] b [SEP]` features for text pairs [batch]; see the class docstring."""
        return self._encode([text_a, text_b])

    def _encode(self, texts):
        batch = tf.shape(texts[0], out_type=tf.int64)[0]
        # One call per op for both texts of every pair.
        preprocessed = self.preprocess(tf.concat(texts, axis=0))
        ids, starts, ends = self._tokenize(preprocessed, self.return_offsets)
        if self.return_offsets:
            starts = self._byte_to_char(preprocessed, starts)
            ends = self._byte_to_char(preprocessed, ends)
        return self._pack(ids, starts, ends, batch, paired=len(texts) == 2)

    def _pack(self, ids, starts, ends, batch, paired):
        """[CLS] a [SEP] (b [SEP]) with the original truncation rule, as dense [batch, L]."""
        max_len = self.max_seq_length
        len_a = ids[:batch].row_lengths()
        keep_a = tf.minimum(len_a, tf.constant(max_len - 2, tf.int64))
        if paired:
            len_b = ids[batch:].row_lengths()
            # Closed form of `truncate_seq_pair` with budget B = max_len - 3: the shorter list
            # stays whole if the longer can absorb the cut; otherwise a keeps ceil(B / 2) and
            # b floor(B / 2) (ties drop from b first).
            budget = tf.constant(max_len - 3, tf.int64)
            keep_b = tf.minimum(len_b, tf.maximum(budget // 2, budget - len_a))
            # A pair whose second text gives no tokens is packed as a single text (the
            # original's `if tokens_b:`).
            has_b = len_b > 0
            keep_a = tf.where(has_b, tf.minimum(len_a, budget - keep_b), keep_a)
            keep_b = tf.where(has_b, keep_b, tf.zeros_like(keep_b))
            # The original tests `if tokens_b:` again after truncating: a b cut to nothing
            # (max_seq_length 3 or 4) gets no [SEP] of its own.
            has_b = keep_b > 0
        else:
            keep_b = tf.zeros_like(keep_a)
            has_b = tf.zeros_like(keep_a, tf.bool)

        # Position j of row r holds: 0 [CLS]; 1..ka a; ka+1 [SEP]; ka+2..ka+kb+1 b;
        # ka+kb+2 [SEP] when there is a b; then padding.
        j = tf.range(max_len, dtype=tf.int64)[None, :]
        ka, kb = keep_a[:, None], keep_b[:, None]
        is_first_sep = j == ka + 1
        is_b = (j >= ka + 2) & (j <= ka + kb + 1)
        is_second_sep = (j == ka + kb + 2) & has_b[:, None]
        real = j <= tf.where(has_b, keep_a + keep_b + 2, keep_a + 1)[:, None]

        # Where each kept token goes, as a flat index into [batch * max_len]. Rows
        # 0..batch-1 of `ids` are the a texts, rows batch..2*batch-1 the b texts.
        text_of_token = ids.value_rowids()
        slot = (tf.range(tf.size(text_of_token, out_type=tf.int64))
                - tf.gather(ids.row_starts(), text_of_token))
        in_b = text_of_token >= batch
        row = tf.where(in_b, text_of_token - batch, text_of_token)
        keep = tf.where(in_b, tf.gather(keep_b, row), tf.gather(keep_a, row))
        first = tf.where(in_b, tf.gather(keep_a, row) + 2, tf.ones_like(row))
        kept = slot < keep
        target = tf.boolean_mask(row * max_len + first + slot, kept)[:, None]

        def assemble(values, cls_value, sep_value):
            values = tf.boolean_mask(tf.cast(values.flat_values, tf.int32), kept)
            out = tf.reshape(tf.scatter_nd(target, values, [batch * max_len]), [-1, max_len])
            out = tf.where(j == 0, cls_value, out)
            return tf.where(is_first_sep | is_second_sep, sep_value, out)

        outputs = {
            "input_ids": assemble(ids, self.cls_id, self.sep_id),
            "input_mask": tf.cast(real, tf.int32),
            "segment_ids": tf.cast(is_b | is_second_sep, tf.int32),
        }
        if self.return_offsets:
            outputs["start_offsets"] = assemble(starts, 0, 0)
            outputs["end_offsets"] = assemble(ends, 0, 0)
        return outputs

    def save(self, export_dir):
        """Writes a self-contained SavedModel (the SentencePiece model is inside it).

        `export_dir` may be on any `tf.io.gfile` filesystem; an existing folder there is
        replaced. The reloaded object (`tf.saved_model.load(export_dir)`) is called like this
        module on [batch] string tensors, `loaded(text_a)` or `loaded(text_a, text_b)`, and has
        `encode`, `encode_pair` and the signatures "serving_default" (`text_a`) and "pair"
        (`text_a`, `text_b`).
        """
        spec = tf.TensorSpec([None], tf.string)
        export = tf.Module()
        export.tokenizer = self
        export.encode, export.encode_pair = self.encode, self.encode_pair
        export.__call__ = tf.function(lambda text_a, text_b=None: self(text_a, text_b),
                                      autograph=False)
        export.__call__.get_concrete_function(spec)
        export.__call__.get_concrete_function(spec, spec)
        # Written beside `export_dir`, then moved into place (any filesystem, see
        # `files.replace_dir`): a reader never sees half a SavedModel.
        with files.replace_dir(os.fspath(export_dir)) as tmp:
            tf.saved_model.save(export, tmp,
                                signatures={"serving_default": self.encode,
                                            "pair": self.encode_pair})
