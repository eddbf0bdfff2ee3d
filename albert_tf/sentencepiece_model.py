"""What the Python and the in-graph tokenizers share: loading a SentencePiece model from any
filesystem, the original digit-comma rule on one piece, and the vocabulary errors.

`albert_tf.tokenization` (the Python path) and `albert_tf.in_graph_tokenization` (TensorFlow
ops) both import from here, and neither from the other at import time. Importing this module
does not import TensorFlow (`read_bytes` imports `albert_tf.files` on first use).
"""

import os

import sentencepiece as spm

from albert_tf.errors import UserError

# The word-boundary marker SentencePiece puts in front of pieces that start a word.
SPIECE_UNDERLINE = "\u2581"


class MissingTokenError(UserError, KeyError):
    """A token the caller needs is not in the vocabulary (a `KeyError`, as in the original)."""

    def __str__(self):
        # KeyError's own str() shows the repr of its argument; ours is a sentence.
        return str(self.args[0]) if self.args else ""


class VocabularyFileError(UserError, ValueError):
    """A vocabulary or SentencePiece model file that cannot be used (a `ValueError`)."""


def read_bytes(path, what):
    """The bytes of `path` on any filesystem `tf.io.gfile` knows (local, gs://, ram://).

    `albert_tf.files` (and so TensorFlow) is imported here, on first use, so that importing
    this module stays free of TensorFlow. Raises FileNotFoundError naming a missing file.
    """
    from albert_tf import files
    if not files.exists(path):
        raise FileNotFoundError(f"The {what} {path!r} does not exist.")
    return files.read_bytes(path, what)


def load_spm_model(spm_model_file):
    """Reads a SentencePiece model file (any path `tf.io.gfile` reads, e.g. gs://).

    The bytes are read through `tf.io.gfile` and loaded with `sentencepiece_from_proto`
    (SentencePiece itself only opens local files).

    Returns:
      (model_proto_bytes, sentencepiece.SentencePieceProcessor).

    Raises:
      FileNotFoundError: the file does not exist.
      VocabularyFileError: the file is not a SentencePiece model (a ValueError).
    """
    path = os.fspath(spm_model_file)
    try:
        model_proto = read_bytes(path, "SentencePiece model file")
    except FileNotFoundError as error:
        raise FileNotFoundError(
            f"{error} Pass --spm_model_file the `.model` file of the vocabulary (e.g. "
            "30k-clean.model from a released model).") from None
    return model_proto, sentencepiece_from_proto(model_proto, path)


def sentencepiece_from_proto(model_proto, origin="<bytes>"):
    """Loads a serialized SentencePiece model; `origin` names it in errors
    (`VocabularyFileError`, a ValueError, if the bytes are not a model)."""
    sp_model = spm.SentencePieceProcessor()
    try:
        sp_model.LoadFromSerializedProto(model_proto)
    except (RuntimeError, OSError, TypeError) as err:
        raise VocabularyFileError(
            f"{origin} is not a SentencePiece model ({len(model_proto)} bytes could not be "
            f"parsed: {err}). Expected the `.model` file written by spm_train or "
            "albert_tf.train_sentencepiece, not the `.vocab` text file.") from None
    if sp_model.GetPieceSize() == 0:
        raise VocabularyFileError(f"{origin} is a SentencePiece model with no pieces.")
    return sp_model


def split_digit_comma(sp_model, piece):
    """The original digit-comma rule for one piece (tokenization.py's `encode_pieces`).

    Returns the list of pieces replacing `piece`: itself, or, for a piece longer than one
    character ending in "," after a digit, the segmentation of the piece without that comma
    (and without "▁" marks) followed by ",".
    """
    if len(piece) > 1 and piece[-1] == "," and piece[-2].isdigit():
        # Python 3 quirk kept on purpose (albert_tf.tokenization's docstring, step 3): the
        # leading "▁" of the re-segmented text stays.
        pieces = sp_model.EncodeAsPieces(piece[:-1].replace(SPIECE_UNDERLINE, ""))
        pieces.append(",")
        return pieces
    return [piece]
