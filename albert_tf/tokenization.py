"""Tokenization for ALBERT: SentencePiece and WordPiece, in Python and in the TensorFlow graph.

Three ways in, one set of ids:

* `FullTokenizer(vocab_file, do_lower_case, spm_model_file)`: the original release's tokenizer
  class with its constructor, methods and attributes (`vocab`, `inv_vocab`, `sp_model`,
  `tokenize`, `convert_tokens_to_ids`, `convert_ids_to_tokens`). On the SentencePiece path its
  `tokenize` also applies the text preprocessing the original *scripts* apply before calling
  the tokenizer (see `FullTokenizer.tokenize`), so that a caller gets the original pipeline's
  ids from one call.
* The original module-level helpers: `preprocess_text`, `encode_pieces`, `encode_ids`,
  `convert_to_unicode`, `printable_text`, `load_vocab`, and `BasicTokenizer` /
  `WordpieceTokenizer` for the WordPiece (Chinese vocabulary) path.
* `InGraphTokenizer`: the same SentencePiece pipeline built from TensorFlow / TensorFlow Text
  ops, packing `[CLS] a [SEP] b [SEP]` features for the model inside `tf.data`, a
  `tf.function` or a SavedModel (the SentencePiece model travels inside the graph).

The original pipeline on the SentencePiece path, which everything here reproduces:
1. `preprocess_text(text, lower=do_lower_case)`: strip and collapse whitespace runs to one
   space, Unicode NFKD, delete every code point whose canonical combining class is not 0
   (accents), then `str.lower()` when lower-casing.
2. SentencePiece segmentation (the model's own normaliser, `nmt_nfkc` for released models).
3. The digit-comma rule: a piece longer than one character that ends in "," right after a
   character for which `str.isdigit()` holds is replaced by the segmentation of that piece
   with its final comma and every "▁" removed, followed by a separate "," piece. The
   original meant to drop the "▁" SentencePiece then puts in front of the re-segmented text,
   but it compares a `str` with a `bytes` constant, so under Python 3 the marker is never
   dropped: "0," becomes "▁" "0" ",", not "0" ",". We keep that on purpose: the original
   scripts gave the released models' training and fine-tuning data these ids.
4. Ids: `PieceToId` per piece (an unknown piece gives the `<unk>` id).
"""

import io
import os
import unicodedata

# Shared with the in-graph tokenizer (and part of this module's public names, as before).
from albert_tf.sentencepiece_model import (  # noqa: F401
    SPIECE_UNDERLINE,
    MissingTokenError,
    VocabularyFileError,
    load_spm_model,
    read_bytes as _read_bytes,
    sentencepiece_from_proto,
    split_digit_comma as _split_digit_comma,
)

# Special tokens as the released SentencePiece vocabularies spell them (ids 0-4 there), and
# what the released WordPiece (Chinese) vocabulary calls the padding and unknown tokens.
SPECIAL_TOKENS = ("<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]")
_WORDPIECE_NAMES = {"<pad>": "[PAD]", "<unk>": "[UNK]"}


# --------------------------------------------------------------------------------------------
# Text helpers of the original module.
# --------------------------------------------------------------------------------------------


def convert_to_unicode(text):
    """Returns `text` as `str`; `bytes` are decoded as UTF-8 and invalid bytes are DROPPED.

    This is the original's behaviour (`errors="ignore"`): b"ab\\xffcd" becomes "abcd".
    Raises ValueError for any other type.
    """
    if isinstance(text, str):
        return text
    if isinstance(text, bytes):
        return text.decode("utf-8", "ignore")
    raise ValueError(f"Expected text as str or bytes, got {type(text).__name__}: {text!r:.80}")


def printable_text(text):
    """Returns `text` as `str` for printing or logging (`bytes` decoded, invalid bytes dropped)."""
    return convert_to_unicode(text)


def preprocess_text(inputs, remove_space=True, lower=False, keep_accents=False):
    """The original text preprocessing of the SentencePiece path.

    Args:
      inputs: `str` (or UTF-8 `bytes`, decoded with `convert_to_unicode` first; the original
        raised a TypeError on bytes under Python 3).
      remove_space: strip, and collapse every run of `str.isspace()` characters to one space.
      lower: apply `str.lower()` at the end.
      keep_accents: skip the NFKD / combining-character removal (Hugging Face's
        `keep_accents=True`; the original always removes them).

    Returns:
      `str`: NFKD-normalised text without combining characters (canonical combining class
      != 0), e.g. "Résumé" -> "Resume", "ﬁ" -> "fi", then lower-cased if `lower`. There is
      no LaTeX-quote replacement here (that exists only in XLNet and in later ports).
    """
    outputs = convert_to_unicode(inputs)
    if remove_space:
        outputs = " ".join(outputs.strip().split())
    # ASCII text is its own NFKD form and has no combining characters.
    if not keep_accents and not outputs.isascii():
        outputs = unicodedata.normalize("NFKD", outputs)
        outputs = "".join(c for c in outputs if not unicodedata.combining(c))
    if lower:
        outputs = outputs.lower()
    return outputs


def _check_encodable(text):
    """Raises a clear ValueError if `text` is a str that UTF-8 cannot encode."""
    if isinstance(text, str):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as err:
            raise ValueError(f"Text cannot be encoded as UTF-8 ({err.reason} at index "
                             f"{err.start}, e.g. a lone surrogate); fix or drop those "
                             f"characters: {text!r:.80}") from None


def encode_pieces(sp_model, text, return_unicode=True, sample=False):
    """SentencePiece segmentation followed by the original digit-comma rule.

    No preprocessing is applied here (as in the original).

    Args:
      sp_model: a loaded `sentencepiece.SentencePieceProcessor`.
      text: `str` or UTF-8 `bytes`.
      return_unicode: kept for the original signature; pieces are always `str` in Python 3.
      sample: segment with `SampleEncodeAsPieces(text, 64, 0.1)` (subword regularisation)
        instead of the best segmentation, as the original does.

    Returns:
      list of `str` pieces, e.g. "in 1990, the" -> ["▁in", "▁199", "▁", "0", ",", "▁the"]
      on a model whose best segmentation is ["▁in", "▁199", "0,", "▁the"].
    """
    del return_unicode  # Python 3 pieces are always str.
    if sample:
        pieces = sp_model.SampleEncodeAsPieces(text, 64, 0.1)
    else:
        pieces = sp_model.EncodeAsPieces(text)
    output = []
    for piece in pieces:
        output.extend(_split_digit_comma(sp_model, piece))
    return output


def encode_ids(sp_model, text, sample=False):
    """`encode_pieces` then `PieceToId` for each piece (unknown pieces give the `<unk>` id)."""
    return [sp_model.PieceToId(p) for p in encode_pieces(sp_model, text, sample=sample)]


# --------------------------------------------------------------------------------------------
# WordPiece path (the released Chinese models ship a BERT-style vocabulary text file).
# --------------------------------------------------------------------------------------------


def load_vocab(vocab_file):
    """Reads a WordPiece vocabulary: first whitespace field of each line, ids in file order.

    A blank line is the token " " (as in the original); a repeated token keeps its first id.
    Returns a dict token -> id in id order.
    """
    path = os.fspath(vocab_file)
    vocab = {}
    # Lines end at b"\n" only, as in a file read line by line.
    for line in io.BytesIO(_read_bytes(path, "WordPiece vocabulary file")):
        line = convert_to_unicode(line)
        token = line.strip().split()[0] if line.strip() else " "
        if token not in vocab:
            vocab[token] = len(vocab)
    return vocab


def convert_by_vocab(vocab, items):
    """Maps each item through the dict `vocab` (a missing item raises KeyError)."""
    return [vocab[item] for item in items]


def convert_tokens_to_ids(vocab, tokens):
    return convert_by_vocab(vocab, tokens)


def convert_ids_to_tokens(inv_vocab, ids):
    return convert_by_vocab(inv_vocab, ids)


def whitespace_tokenize(text):
    """Strips and splits on whitespace runs."""
    return text.split()


def _is_whitespace(char):
    # Tab, newline and carriage return are control characters that count as whitespace.
    return char in " \t\n\r" or unicodedata.category(char) == "Zs"


def _is_control(char):
    if char in "\t\n\r":
        return False
    return unicodedata.category(char) in ("Cc", "Cf")


def _is_punctuation(char):
    # Every non-alphanumeric ASCII character counts ("^", "$", "`" are not Unicode P*).
    cp = ord(char)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


# CJK Unified Ideographs blocks (not Hangul, Hiragana or Katakana: those are space-separated).
_CJK_RANGES = (
    (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F),
)


def _is_chinese_char(cp):
    return any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


class BasicTokenizer:
    """Cleans text, isolates CJK ideographs and punctuation, lower-cases and strips accents.

    Accents are stripped (NFD, then category Mn dropped) only when `do_lower_case`.
    """

    def __init__(self, do_lower_case=True):
        self.do_lower_case = do_lower_case

    def tokenize(self, text):
        """Returns the list of words and punctuation characters of `text`."""
        text = self._clean_text(convert_to_unicode(text))
        text = self._tokenize_chinese_chars(text)
        split_tokens = []
        for token in whitespace_tokenize(text):
            if self.do_lower_case:
                token = self._run_strip_accents(token.lower())
            split_tokens.extend(self._run_split_on_punc(token))
        return whitespace_tokenize(" ".join(split_tokens))

    def _run_strip_accents(self, text):
        text = unicodedata.normalize("NFD", text)
        return "".join(c for c in text if unicodedata.category(c) != "Mn")

    def _run_split_on_punc(self, text):
        words = []
        start_new_word = True
        for char in text:
            if _is_punctuation(char):
                words.append(char)
                start_new_word = True
            else:
                if start_new_word:
                    words.append("")
                start_new_word = False
                words[-1] += char
        return words

    def _tokenize_chinese_chars(self, text):
        return "".join(f" {c} " if _is_chinese_char(ord(c)) else c for c in text)

    def _clean_text(self, text):
        output = []
        for char in text:
            if char in ("\x00", "\ufffd") or _is_control(char):
                continue
            output.append(" " if _is_whitespace(char) else char)
        return "".join(output)


class WordpieceTokenizer:
    """Greedy longest-match-first WordPiece segmentation of whitespace-separated words.

    Continuation pieces carry the prefix "##". A word with a position no vocabulary entry
    matches, or longer than `max_input_chars_per_word` characters, becomes `unk_token` whole.
    Example: "unaffable" -> ["un", "##aff", "##able"].
    """

    def __init__(self, vocab, unk_token="[UNK]", max_input_chars_per_word=200):
        self.vocab = vocab
        self.unk_token = unk_token
        self.max_input_chars_per_word = max_input_chars_per_word

    def tokenize(self, text):
        output_tokens = []
        for token in whitespace_tokenize(convert_to_unicode(text)):
            if len(token) > self.max_input_chars_per_word:
                output_tokens.append(self.unk_token)
                continue
            sub_tokens = []
            start = 0
            while start < len(token):
                end = len(token)
                match = None
                while start < end:
                    candidate = token[start:end] if start == 0 else "##" + token[start:end]
                    if candidate in self.vocab:
                        match = candidate
                        break
                    end -= 1
                if match is None:
                    sub_tokens = [self.unk_token]
                    break
                sub_tokens.append(match)
                start = end
            output_tokens.extend(sub_tokens)
        return output_tokens


# --------------------------------------------------------------------------------------------
# FullTokenizer.
# --------------------------------------------------------------------------------------------


class FullTokenizer:
    """The original end-to-end tokenizer, SentencePiece or WordPiece.

    Args:
      vocab_file: WordPiece vocabulary text file; used only when `spm_model_file` is empty.
      do_lower_case: lower-case the text. SentencePiece path: applied by `tokenize` through
        the preprocessing (the original class ignored it there and left it to its scripts).
        WordPiece path: applied by `BasicTokenizer`, together with accent stripping.
      spm_model_file: SentencePiece `.model` file; when given, `vocab_file` is ignored.
      preprocess: SentencePiece path only. True (default): `tokenize` first applies
        `preprocess_text(text, lower=do_lower_case)`, as the original scripts
        (create_pretraining_data, the GLUE/RACE processors, the SQuAD features) do before
        calling the tokenizer. False: the original class's raw `tokenize`, which segments the
        text as given (no whitespace collapse, no accent stripping, no lower-casing).

    Attributes:
      vocab: dict piece -> id, in id order. `len(tokenizer.vocab)` is the vocabulary size.
      inv_vocab: dict id -> piece.
      sp_model: the `sentencepiece.SentencePieceProcessor` (None on the WordPiece path).
      spm_model_proto: the bytes of the SentencePiece model (None on the WordPiece path).

    Example:
      tok = FullTokenizer(None, do_lower_case=True, spm_model_file="30k-clean.model")
      pieces = tok.tokenize("Héllo,  WORLD 1,000!")
      ids = tok.convert_tokens_to_ids(pieces)
    """

    def __init__(self, vocab_file, do_lower_case=True, spm_model_file=None, *, preprocess=True):
        self.do_lower_case = bool(do_lower_case)
        self.preprocess = bool(preprocess)
        self.sp_model = None
        self.spm_model_proto = None
        if spm_model_file:
            self.vocab_path = os.fspath(spm_model_file)
            self.spm_model_proto, self.sp_model = load_spm_model(spm_model_file)
            self.vocab = {self.sp_model.IdToPiece(i): i
                          for i in range(self.sp_model.GetPieceSize())}
        else:
            if not vocab_file:
                raise ValueError("FullTokenizer needs spm_model_file (SentencePiece) or "
                                 "vocab_file (WordPiece); both are empty.")
            self.vocab_path = os.fspath(vocab_file)
            self.vocab = load_vocab(vocab_file)
            self.basic_tokenizer = BasicTokenizer(do_lower_case=do_lower_case)
            self.wordpiece_tokenizer = WordpieceTokenizer(vocab=self.vocab)
        self.inv_vocab = {v: k for k, v in self.vocab.items()}

    @classmethod
    def from_scratch(cls, vocab_file, do_lower_case, spm_model_file):
        return cls(vocab_file, do_lower_case, spm_model_file)

    def tokenize(self, text):
        """Splits `text` (str, or UTF-8 bytes) into pieces; returns a list of `str`.

        SentencePiece path with `preprocess=True` (default), in this order:
          1. invalid UTF-8 bytes are dropped (bytes input; `convert_to_unicode`),
          2. whitespace stripped and collapsed, NFKD, combining characters removed, and
             `str.lower()` if `do_lower_case` (`preprocess_text`),
          3. SentencePiece segmentation, 4. the digit-comma rule (`encode_pieces`).
        Applying it to text preprocessed already gives the same pieces, so callers that
        preprocess first (as the original scripts do) are unaffected. An empty or all-space
        text gives []. A `str` holding lone surrogates cannot be encoded and raises
        ValueError.
        With `preprocess=False`: steps 3 and 4 only, as the original class.
        WordPiece path: `BasicTokenizer` then `WordpieceTokenizer` (no `preprocess_text`, as
        in the original scripts).
        """
        if self.sp_model is None:
            split_tokens = []
            for token in self.basic_tokenizer.tokenize(text):
                split_tokens.extend(self.wordpiece_tokenizer.tokenize(token))
            return split_tokens
        if self.preprocess:
            text = preprocess_text(text, remove_space=self.remove_space,
                                   lower=self.do_lower_case, keep_accents=self.keep_accents)
        try:
            pieces = self.sp_model.EncodeAsPieces(text)
        except (UnicodeEncodeError, RuntimeError):
            _check_encodable(text)
            raise
        output = []
        for piece in pieces:
            output.extend(_split_digit_comma(self.sp_model, piece))
        return output

    def convert_tokens_to_ids(self, tokens):
        """Piece -> id for each token.

        SentencePiece path: an unknown piece gives the `<unk>` id (as `PieceToId`), except a
        special token (`[CLS]`, `[SEP]`, `[MASK]`, `<pad>`, `<unk>`) the model lacks, which
        raises `MissingTokenError`: mapping `[CLS]` silently to `<unk>` ruins a model.
        WordPiece path: an unknown token raises `MissingTokenError` (a KeyError).
        """
        if self.sp_model is None:
            try:
                return [self.vocab[t] for t in tokens]
            except KeyError as err:
                raise self._missing(err.args[0]) from None
        piece_to_id = self.sp_model.PieceToId
        ids = [piece_to_id(printable_text(t)) for t in tokens]
        unk = self.sp_model.unk_id()
        if unk in ids:
            for token, i in zip(tokens, ids):
                if i == unk and token in SPECIAL_TOKENS and token not in self.vocab:
                    raise self._missing(token)
        return ids

    def convert_ids_to_tokens(self, ids):
        """Id -> piece for each id; an id outside the vocabulary raises ValueError."""
        if self.sp_model is None:
            try:
                return [self.inv_vocab[i] for i in ids]
            except KeyError as err:
                raise ValueError(f"Id {err.args[0]} is not in the vocabulary {self.vocab_path!r} "
                                 f"(ids 0..{len(self.vocab) - 1}).") from None
        size = self.sp_model.GetPieceSize()
        output = []
        for i in ids:
            if not 0 <= int(i) < size:
                raise ValueError(f"Id {i} is not in the SentencePiece model {self.vocab_path!r} "
                                 f"(ids 0..{size - 1}).")
            output.append(self.sp_model.IdToPiece(int(i)))
        return output

    def special_token_id(self, token):
        """Id of a special token: "[CLS]", "[SEP]", "[MASK]", "<pad>" or "<unk>".

        On the WordPiece path "<pad>" and "<unk>" are looked up as "[PAD]" and "[UNK]", the
        names in the released Chinese vocabulary. Raises `MissingTokenError` naming the token
        and the vocabulary file when the vocabulary lacks it.
        """
        if token not in SPECIAL_TOKENS:
            raise ValueError(f"{token!r} is not a special token; expected one of {SPECIAL_TOKENS}.")
        name = token if self.sp_model is not None else _WORDPIECE_NAMES.get(token, token)
        if name not in self.vocab:
            raise self._missing(name)
        return self.vocab[name]

    cls_id = property(lambda self: self.special_token_id("[CLS]"), doc="Id of [CLS].")
    sep_id = property(lambda self: self.special_token_id("[SEP]"), doc="Id of [SEP].")
    mask_id = property(lambda self: self.special_token_id("[MASK]"), doc="Id of [MASK].")
    pad_id = property(lambda self: self.special_token_id("<pad>"), doc="Id of <pad>/[PAD].")
    unk_id = property(lambda self: self.special_token_id("<unk>"), doc="Id of <unk>/[UNK].")

    def _missing(self, token):
        kind = "SentencePiece model" if self.sp_model is not None else "WordPiece vocabulary"
        hint = ""
        if token in SPECIAL_TOKENS or token in _WORDPIECE_NAMES.values():
            hint = (" Special tokens must be in the vocabulary: train SentencePiece models with "
                    "albert_tf.train_sentencepiece (control symbols [CLS],[SEP],[MASK], pad id 0, "
                    "unk id 1), or add the token to the vocabulary file.")
        return MissingTokenError(f"Token {token!r} is not in the {kind} {self.vocab_path!r}.{hint}")

    # === From model hubs ===

    # Hugging Face's `tokenizer_config.json` settings; the original's are these defaults.
    remove_space = True
    keep_accents = False

    @classmethod
    def from_hub_module(cls, hub_module, use_spm=True):
        """The tokenizer of a TF-Hub module, as the original: the vocabulary file and
        `do_lower_case` of its `tokenization_info` signature.

        `hub_module` is the folder of an original-format ALBERT TF-Hub module or of a
        SavedModel written by `albert_tf.export`. `use_spm=False` reads the vocabulary as a
        WordPiece file. Raises ValueError if the module has no `tokenization_info`.
        """
        from albert_tf.convert import tokenization_info
        vocab_file, do_lower_case = tokenization_info(hub_module)
        if vocab_file is None:
            raise ValueError(f"{hub_module} has no tokenization_info signature (not an ALBERT "
                             "TF-Hub module or albert_tf export).")
        if use_spm:
            return cls(None, do_lower_case=do_lower_case, spm_model_file=vocab_file)
        return cls(vocab_file, do_lower_case=do_lower_case)

    @classmethod
    def from_hf_folder(cls, folder, do_lower_case=None):
        """The tokenizer of a Hugging Face ALBERT folder: `spiece.model`, with
        `do_lower_case` (default True), `keep_accents` (default False) and `remove_space`
        (default True) from its `tokenizer_config.json`. `do_lower_case` overrides the file.
        """
        from albert_tf import files
        settings = {}
        config_file = files.join(folder, "tokenizer_config.json")
        if files.exists(config_file):
            settings = files.read_json(config_file, "tokenizer config")
        lower = settings.get("do_lower_case", True) if do_lower_case is None else do_lower_case
        tokenizer = cls(None, do_lower_case=lower,
                        spm_model_file=files.join(folder, "spiece.model"))
        tokenizer.keep_accents = bool(settings.get("keep_accents", False))
        tokenizer.remove_space = bool(settings.get("remove_space", True))
        return tokenizer

    @classmethod
    def from_keras_hub_preset(cls, preset, do_lower_case=True):
        """The tokenizer of a keras-hub ALBERT preset folder
        (`assets/tokenizer/vocabulary.spm`). keras-hub stores no casing: `do_lower_case`
        (default True, as the released uncased models) says it.
        """
        from albert_tf import files
        return cls(None, do_lower_case=do_lower_case,
                   spm_model_file=files.join(preset, "assets", "tokenizer", "vocabulary.spm"))


# --------------------------------------------------------------------------------------------
# Packing model inputs (the original classifier_utils.convert_single_example rules).
# --------------------------------------------------------------------------------------------


def truncate_seq_pair(tokens_a, tokens_b, max_length):
    """Shortens two lists in place until their total length is at most `max_length`.

    The original rule: drop the last token of the longer list, one at a time; on a tie, drop
    from `tokens_b`.
    """
    while len(tokens_a) + len(tokens_b) > max_length:
        if len(tokens_a) > len(tokens_b):
            tokens_a.pop()
        else:
            tokens_b.pop()


def encode_inputs(tokenizer, text_a, text_b=None, max_seq_length=128):
    """Model inputs for one example, as the original classifier scripts build them.

    `[CLS] a [SEP]` (single text, `a` cut to `max_seq_length - 2` tokens) or
    `[CLS] a [SEP] b [SEP]` (pair, `truncate_seq_pair` to `max_seq_length - 3`); segment id 0
    up to the first [SEP] included, 1 after; zero padding. As in the original, a pair whose
    second text gives no tokens, or none left after truncation (max_seq_length 3 or 4), is
    packed as a single text.

    Returns:
      dict of `input_ids`, `input_mask`, `segment_ids`: lists of `max_seq_length` ints.
    """
    if max_seq_length < 3:
        raise ValueError(f"max_seq_length must be at least 3 ([CLS] x [SEP]), got "
                         f"{max_seq_length}.")
    tokens_a = tokenizer.tokenize(text_a)
    tokens_b = tokenizer.tokenize(text_b) if text_b else []
    if tokens_b:
        truncate_seq_pair(tokens_a, tokens_b, max_seq_length - 3)
    else:
        tokens_a = tokens_a[:max_seq_length - 2]
    tokens = ["[CLS]"] + tokens_a + ["[SEP]"]
    segment_ids = [0] * len(tokens)
    if tokens_b:
        tokens += tokens_b + ["[SEP]"]
        segment_ids += [1] * (len(tokens_b) + 1)
    input_ids = tokenizer.convert_tokens_to_ids(tokens)
    padding = [0] * (max_seq_length - len(input_ids))
    return {
        "input_ids": input_ids + padding,
        "input_mask": [1] * len(input_ids) + padding,
        "segment_ids": segment_ids + padding,
    }


def __getattr__(name):
    # The in-graph tokenizer lives in its own module (it needs TensorFlow); importing it on
    # first use keeps `import albert_tf.tokenization` free of TensorFlow.
    if name == "InGraphTokenizer":
        from albert_tf.in_graph_tokenization import InGraphTokenizer
        return InGraphTokenizer
    raise AttributeError(f"module 'albert_tf.tokenization' has no attribute {name!r}")

