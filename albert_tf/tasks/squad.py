"""SQuAD v1.1 and v2.0 data for ALBERT: reading, alignment, windows, features and caches.

The pipeline of the original release (its squad_utils.py, shared by run_squad_v1.py and
run_squad_v2.py), step by step:

1. `read_squad_examples`: one `SquadExample` per question of the official JSON
   (`data -> paragraphs -> qas`). For training, an answerable question needs exactly one
   answer; a SQuAD 2.0 question with `"is_impossible": true` has none.
2. The question becomes the ids of `preprocess_text` + SentencePiece (+ the digit-comma rule),
   cut to its first `max_query_length` ids. The context becomes pieces the same way.
3. `align_context`: SentencePiece pieces do not follow whitespace, and the preprocessing
   changes characters (whitespace runs, accents, case), so the original aligns the characters
   of the raw context with the characters of the joined pieces by a banded longest common
   subsequence, and maps every piece back to a span of raw characters. A context that does
   not align (LCS below 80% of its length) is dropped ("MISMATCH DETECTED!").
4. `doc_spans`: windows of at most `max_seq_length - len(question) - 3` pieces, the next one
   starting `doc_stride` pieces later, each packed as `[CLS] question [SEP] window [SEP]`.
5. Labels (training): the answer's piece span inside the window, offset by
   `len(question) + 2`; an unanswerable question, and a window that does not hold the whole
   answer, point at [CLS] (position 0) with `is_impossible = 1`.

Beyond the original, which never checks it, a training answer whose text is not the context
at its `answer_start` is warned about, counted and skipped (`ReadReport`).

Faster than the original, same output: the alignment of a context is computed once for all
the questions on it (SQuAD has about five per paragraph), the per-character preprocessing
once per character, and the banded LCS one row at a time with numpy (`_banded_lcs`).

Files (the original's formats, so caches made by either side feed the other):
- training / prediction features: TFRecords with `unique_ids`, `input_ids`, `input_mask`,
  `segment_ids`, `p_mask` and, for training, `start_positions`, `end_positions`,
  `is_impossible` (all int64);
- the prediction features post-processing needs (`--predict_feature_left_file`): a pickle.
  Ours holds plain Python values (`EvalFeature` fields); the original's pickle of its
  `InputFeatures` objects is read too.
- the side file `_<feature file name>.settings.json` beside our caches (`files.side_file`,
  so a glob of the feature files skips it) records what they were built from, so a cache
  built with other settings or from another file is refused instead of silently used (the
  original never checks).
"""

import collections
import contextlib
import dataclasses
import functools
import hashlib
import io
import json
import os
import pickle
import random
import time

from absl import logging
import numpy as np
import tensorflow as tf

from albert_tf import files
from albert_tf import tokenization
from albert_tf.tasks import TaskDataError

# The first feature's unique_id (the original's constant).
UNIQUE_ID_START = 1000000000
# Share of the context's characters the alignment must match (the original's 0.8).
MIN_ALIGNED_SHARE = 0.8
# Version tag of our prediction-features pickle.
_LEFT_FILE_FORMAT = "albert_tf.squad.eval_features/1"


# =========================================================================================
# Reading the official JSON
# =========================================================================================

@dataclasses.dataclass
class SquadExample:
    """One question on one context.

    Attributes:
      qas_id: the question's `id`.
      question_text, paragraph_text: raw strings from the file (`question`, `context`).
      orig_answer_text: training only: the answer text (`""` for an unanswerable question).
      start_position: training only: the answer's first character in `paragraph_text`
        (`answer_start`), -1 for an unanswerable question.
      is_impossible: training only: SQuAD 2.0's `is_impossible` (False in v1.1, and at
        prediction time, as the original reads it).
      answers: all gold answer texts (kept for reference; scoring reads the file again).
    """

    qas_id: str
    question_text: str
    paragraph_text: str
    orig_answer_text: str = None
    start_position: int = None
    is_impossible: bool = False
    answers: tuple = ()


@dataclasses.dataclass
class ReadReport:
    """What `read_squad_examples` found in a file (its summary is logged)."""

    path: str = ""
    questions: int = 0
    unanswerable: int = 0
    answer_mismatch: int = 0       # training answers whose text is not at answer_start
    empty_context: int = 0         # questions on an empty context (no features)
    examples: int = 0              # questions kept

    def summary(self):
        parts = [f"{self.examples} of {self.questions} questions kept from {self.path}"]
        if self.unanswerable:
            parts.append(f"{self.unanswerable} unanswerable")
        if self.answer_mismatch:
            parts.append(f"{self.answer_mismatch} skipped: answer text not found at its "
                         "answer_start")
        if self.empty_context:
            parts.append(f"{self.empty_context} on an empty context")
        return "; ".join(parts)


def _where(path, location):
    return f"{path}, {location}"


def _expect(value, kind, path, location, hint=""):
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__
                                                                          for k in kind)
        raise TaskDataError(
            f"{_where(path, location)}: expected a {names}, found {type(value).__name__} "
            f"{json.dumps(value)[:80] if _jsonable(value) else repr(value)[:80]}.{hint}")
    return value


def _jsonable(value):
    try:
        json.dumps(value)
        return True
    except (TypeError, ValueError):
        return False


def _field(obj, key, kind, path, location):
    if key not in obj:
        raise TaskDataError(f"{_where(path, location)}: the field {key!r} is missing (found "
                            f"{sorted(obj)[:8]}). Is this a SQuAD JSON file?")
    return _expect(obj[key], kind, path, f"{location}.{key}")


def load_squad_json(input_file):
    """The `data` list of a SQuAD JSON file; malformed JSON raises `TaskDataError`
    naming the file, line and column."""
    path = os.fspath(input_file)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"SQuAD file {path!r} does not exist.")
    raw = files.read_bytes(path, "SQuAD file")
    try:
        document = json.loads(raw)
    except UnicodeDecodeError as err:
        raise TaskDataError(f"{path}: not UTF-8 text ({err}). SQuAD files are UTF-8 JSON.") \
            from None
    except json.JSONDecodeError as err:
        raise TaskDataError(f"{path}, line {err.lineno}, column {err.colno}: malformed JSON "
                            f"({err.msg}). Expected a SQuAD v1.1/v2.0 file.") from None
    _expect(document, dict, path, "top level",
            " A SQuAD file is an object {\"version\": ..., \"data\": [...]}.")
    return _field(document, "data", list, path, "top level")


def read_squad_examples(input_file, is_training, report=None):
    """Reads a SQuAD v1.1 / v2.0 JSON file into a list of `SquadExample`.

    Args:
      input_file: path (anything `tf.io.gfile` reads).
      is_training: read the answers (as the original, only then): an answerable question
        must have exactly one answer; SQuAD 2.0's `is_impossible` is honoured.
      report: an optional `ReadReport` to fill in.

    Returns:
      list of `SquadExample`, in file order. In training, questions whose answer text does
      not match the context at `answer_start` are left out (warned about and counted), and
      so are questions on an empty context.

    Raises:
      TaskDataError: malformed JSON, a missing or mistyped field, or (training) an
        answerable question without exactly one answer; the message names the file and the
        place inside it, e.g. `data[3].paragraphs[0].qas[2].answers`.
    """
    path = os.fspath(input_file)
    report = report if report is not None else ReadReport()
    report.path = path
    data = load_squad_json(path)
    examples = []
    mismatch_logged = 0
    for a, article in enumerate(data):
        where_a = f"data[{a}]"
        _expect(article, dict, path, where_a)
        for p, paragraph in enumerate(_field(article, "paragraphs", list, path, where_a)):
            where_p = f"{where_a}.paragraphs[{p}]"
            _expect(paragraph, dict, path, where_p)
            context = _field(paragraph, "context", str, path, where_p)
            empty_context = not context.strip()
            for q, qa in enumerate(_field(paragraph, "qas", list, path, where_p)):
                where = f"{where_p}.qas[{q}]"
                _expect(qa, dict, path, where)
                report.questions += 1
                qas_id = _field(qa, "id", str, path, where)
                question = _field(qa, "question", str, path, where)
                answers = qa.get("answers", [])
                _expect(answers, list, path, f"{where}.answers")
                example = SquadExample(qas_id, question, context)
                texts = []
                for k, answer in enumerate(answers):
                    _expect(answer, dict, path, f"{where}.answers[{k}]")
                    texts.append(_field(answer, "text", str, path, f"{where}.answers[{k}]"))
                example.answers = tuple(texts)
                if is_training:
                    impossible = qa.get("is_impossible", False)
                    _expect(impossible, bool, path, f"{where}.is_impossible")
                    example.is_impossible = impossible
                    if impossible:
                        report.unanswerable += 1
                        example.orig_answer_text, example.start_position = "", -1
                    else:
                        if len(answers) != 1:
                            raise TaskDataError(
                                f"{_where(path, where)} (id {qas_id!r}): for training, an "
                                f"answerable question needs exactly 1 answer, found "
                                f"{len(answers)} (the original's rule). Official dev files "
                                "list several answers: pass them as --predict_file, or mark "
                                "the question \"is_impossible\": true.")
                        start = _field(answers[0], "answer_start", int, path,
                                       f"{where}.answers[0]")
                        text = texts[0]
                        if not text or context[start:start + len(text)] != text:
                            report.answer_mismatch += 1
                            if mismatch_logged < 10:
                                mismatch_logged += 1
                                logging.warning(
                                    "%s (id %r): answer %r is not the context at its "
                                    "answer_start %d (the context there reads %r); the "
                                    "question is skipped for training.", _where(path, where),
                                    qas_id, text, start, context[start:start + len(text)])
                            continue
                        example.orig_answer_text, example.start_position = text, start
                if empty_context:
                    report.empty_context += 1
                    if is_training:
                        continue
                examples.append(example)
    report.examples = len(examples)
    if report.answer_mismatch > mismatch_logged:
        logging.warning("%d more answers were not found at their answer_start in %s.",
                        report.answer_mismatch - mismatch_logged, path)
    if report.empty_context:
        logging.warning("%s: %d question(s) on an empty context%s.", path,
                        report.empty_context,
                        " were skipped" if is_training else " get the empty prediction")
    logging.info("%s", report.summary())
    return examples


# =========================================================================================
# Character alignment of the raw context with its SentencePiece pieces
# =========================================================================================

@functools.lru_cache(maxsize=65536)
def _preprocessed_char_code(char, lower):
    """Code point of `preprocess_text(char, remove_space=False)`, or -1 if it is not one
    character (e.g. a lone accent vanishes, "ﬁ" becomes two), which then matches nothing."""
    out = tokenization.preprocess_text(char, remove_space=False, lower=lower)
    return ord(out) if len(out) == 1 else -1


def _banded_lcs(orig_codes, tok_codes, max_dist):
    """The original's banded LCS scores, one row of the raw context at a time.

    Cell (i, j) is visited when `i - max_dist <= j < i + max_dist`; unvisited cells count 0.
    The original's recurrence, f = max(up, left, diag + match), is computed per row as a
    running maximum of max(up, diag + match) over the band, which is the same value.

    Returns S [n + 1, 2 * max_dist + 1] int32: S[i + 1, k] = f(i, j = i - max_dist + k) for
    0 <= j < m (other entries are 0 or never read); row 0 and the last column are 0.
    """
    n, m = len(orig_codes), len(tok_codes)
    width = 2 * max_dist
    # Column k of row i reads tok_codes[j] = padded[i + k]; -2 (outside) matches nothing.
    padded = np.full(n + width + m, -2, np.int64)
    padded[max_dist:max_dist + m] = tok_codes
    match = np.lib.stride_tricks.sliding_window_view(padded, width)[:n] == orig_codes[:, None]
    scores = np.zeros((n + 1, width + 1), np.int32)
    for i in range(n):
        # up = f(i-1, j) = previous[k + 1] (0 beyond the band); diag = f(i-1, j-1) =
        # previous[k]. Left of the band everything stays 0; right of the text (j >= m) the
        # running maximum leaves values that no valid cell reads.
        previous, row = scores[i], scores[i + 1, :width]
        np.add(previous[:-1], match[i], out=row)
        np.maximum(row, previous[1:], out=row)
        np.maximum.accumulate(row, out=row)
    return scores


def _backtrack(scores, orig_codes, tok_codes, max_dist):
    """The original's back-pointer walk from (n-1, m-1): char maps both ways, None where
    unmatched. Pointers are recomputed from the scores with the original's tie rules
    (up first, left if strictly greater, match if strictly better)."""
    n, m = len(orig_codes), len(tok_codes)
    width = 2 * max_dist
    rows = scores.tolist()           # rows[i + 1][k] = f(i, i - max_dist + k)
    orig = orig_codes.tolist()
    tok = tok_codes.tolist()
    orig_to_chartok = [None] * n
    chartok_to_orig = [None] * m
    i, j = n - 1, m - 1
    while i >= 0 and j >= 0:
        k = j - i + max_dist
        if not 0 <= k < width:
            break                               # outside the band: no pointer there
        # Neighbours in row-band coordinates; outside the band or the text they count 0.
        up = rows[i][k + 1] if i > 0 else 0     # f(i-1, j): k + 1 == width reads the 0 column
        left = rows[i + 1][k - 1] if j > 0 and k > 0 else 0
        diag = rows[i][k] if i > 0 and j > 0 else 0
        if orig[i] == tok[j] and diag + 1 > max(up, left):
            orig_to_chartok[i] = j
            chartok_to_orig[j] = i
            i, j = i - 1, j - 1
        elif j > 0 and left > up:
            j -= 1
        elif i > 0:
            i -= 1
        else:
            break                               # (0, j) with nothing: no pointer
    return orig_to_chartok, chartok_to_orig


def _convert_index(index, pos, limit=None, is_start=True):
    """Maps `pos` through `index` (a list with None gaps) as the original does.

    A mapped position maps to itself. In a gap, a start goes just after the nearest mapped
    neighbour on the left (or to the right neighbour if there is no room between them), an
    end just before the right neighbour (or to the left one). At the left edge a start maps
    to 0 and an end to right-1 (if right >= 1); at the right edge, given `limit`, a start
    maps to left+1 and an end to limit-1 (if left < limit-1).
    """
    if index[pos] is not None:
        return index[pos]
    size = len(index)
    rear = pos
    while rear < size - 1 and index[rear] is None:
        rear += 1
    front = pos
    while front > 0 and index[front] is None:
        front -= 1
    left, right = index[front], index[rear]
    if left is None and right is None:
        raise ValueError("Cannot map a position through an alignment without matches.")
    if left is None:
        if right >= 1:
            return 0 if is_start else right - 1
        return right
    if right is None:
        if limit is not None and left < limit - 1:
            return left + 1 if is_start else limit - 1
        return left
    if right > left + 1:
        return left + 1 if is_start else right - 1
    return right if is_start else left


@dataclasses.dataclass
class ContextAlignment:
    """A context's pieces and their map back to raw characters.

    Attributes:
      pieces: SentencePiece pieces of the preprocessed context.
      tok_start_to_orig_index, tok_end_to_orig_index: per piece, its first and last
        character in the raw context (inclusive).
      orig_to_chartok_index: per raw character, its character in the joined pieces (None
        if unmatched).
      chartok_to_tok_index: per character of the joined pieces, its piece.
      lcs: the alignment's length (matched characters).
    """

    pieces: list
    tok_start_to_orig_index: list
    tok_end_to_orig_index: list
    orig_to_chartok_index: list
    chartok_to_tok_index: list
    lcs: int

    def answer_span(self, start_char, end_char):
        """(first piece, last piece) of the raw characters [start_char, end_char]."""
        start = self.chartok_to_tok_index[
            _convert_index(self.orig_to_chartok_index, start_char, is_start=True)]
        end = self.chartok_to_tok_index[
            _convert_index(self.orig_to_chartok_index, end_char, is_start=False)]
        return start, end


def align_context(paragraph_text, pieces, do_lower_case):
    """Aligns raw context characters with the characters of its pieces (the original's way).

    Args:
      paragraph_text: the raw context.
      pieces: its pieces (`tokenizer.tokenize(paragraph_text)`).
      do_lower_case: as the tokenizer (a raw character matches after the same
        preprocessing, without whitespace removal).

    Returns:
      `ContextAlignment`, or None when the context does not align: no character matched, or
      fewer than 80% of them after the band was widened once (the original's
      "MISMATCH DETECTED!"; such an example gets no features).
    """
    chartok_to_tok_index, starts, ends = [], [], []
    count = 0
    for i, piece in enumerate(pieces):
        text = piece.replace(tokenization.SPIECE_UNDERLINE, " ")
        chartok_to_tok_index.extend([i] * len(text))
        starts.append(count)
        count += len(text)
        ends.append(count - 1)
    tok_cat_text = "".join(pieces).replace(tokenization.SPIECE_UNDERLINE, " ")
    n, m = len(paragraph_text), len(tok_cat_text)
    if n == 0 or m == 0:
        return None
    orig_codes = np.fromiter((_preprocessed_char_code(c, do_lower_case)
                              for c in paragraph_text), np.int64, n)
    tok_codes = np.fromiter(map(ord, tok_cat_text), np.int64, m)

    max_dist = abs(n - m) + 5
    for attempt in range(2):
        scores = _banded_lcs(orig_codes, tok_codes, max_dist)
        # (n-1, m-1) is always inside the band, as max_dist > |n - m|.
        lcs = int(scores[n, m - 1 - (n - 1) + max_dist])
        if lcs > MIN_ALIGNED_SHARE * n or attempt == 1:
            break
        max_dist *= 2
    orig_to_chartok, chartok_to_orig = _backtrack(scores, orig_codes, tok_codes, max_dist)
    if lcs < MIN_ALIGNED_SHARE * n or all(v is None for v in orig_to_chartok):
        return None
    tok_start_to_orig = [_convert_index(chartok_to_orig, s, n, is_start=True) for s in starts]
    tok_end_to_orig = [_convert_index(chartok_to_orig, e, n, is_start=False) for e in ends]
    return ContextAlignment(list(pieces), tok_start_to_orig, tok_end_to_orig, orig_to_chartok,
                            chartok_to_tok_index, lcs)


# =========================================================================================
# Windows and features
# =========================================================================================

DocSpan = collections.namedtuple("DocSpan", ["start", "length"])


def doc_spans(num_tokens, max_tokens_for_doc, doc_stride):
    """Windows over `num_tokens` pieces: (start, length) pairs, the original's way.

    Each window takes up to `max_tokens_for_doc` pieces; the next starts
    `min(length, doc_stride)` later, until a window reaches the end.
    """
    spans, start = [], 0
    while start < num_tokens:
        length = min(num_tokens - start, max_tokens_for_doc)
        spans.append(DocSpan(start, length))
        if start + length == num_tokens:
            break
        start += min(length, doc_stride)
    return spans


def best_context_spans(spans, num_tokens):
    """For each of `num_tokens` pieces, the index of its window with the most context.

    A piece's score in a window is min(pieces left of it, pieces right of it) + 0.01 x the
    window's length; the first window with the best score wins (BERT's rule).
    """
    positions = np.arange(num_tokens)[:, None]
    starts = np.array([s.start for s in spans])[None]
    lengths = np.array([s.length for s in spans])[None]
    ends = starts + lengths - 1
    scores = np.minimum(positions - starts, ends - positions) + 0.01 * lengths
    scores[(positions < starts) | (positions > ends)] = -np.inf
    return np.argmax(scores, axis=1)     # the first maximum, as a strict ">" keeps it


def max_context_flags(spans, span_index, best=None):
    """For each piece of window `span_index`: is this its window with the most context?
    (`best`: `best_context_spans` of the document, if computed already.)"""
    span = spans[span_index]
    if best is None:
        best = best_context_spans(spans, span.start + span.length)
    return (best[span.start:span.start + span.length] == span_index).tolist()


@dataclasses.dataclass
class InputFeatures:
    """One window of one example, ready for the model.

    Attributes:
      unique_id: the feature's id (from 1000000000 in order).
      example_index: index of its example in the list converted (None in training, as the
        original).
      doc_span_index: which window of the example.
      doc_offset: position of the window's first piece (len(question) + 2).
      tok_start_to_orig_index, tok_end_to_orig_index: per window piece, its first and last
        raw character.
      token_is_max_context: per window piece, whether this window gives it the most context.
      input_ids, input_mask, segment_ids, p_mask: [max_seq_length] lists (p_mask 1 = cannot
        be part of an answer: question, [SEP], padding; 0 for [CLS] and the window).
      start_position, end_position, is_impossible: training labels (None otherwise).
    """

    unique_id: int
    example_index: int
    doc_span_index: int
    doc_offset: int
    tok_start_to_orig_index: list
    tok_end_to_orig_index: list
    token_is_max_context: list
    input_ids: list
    input_mask: list
    segment_ids: list
    p_mask: list
    start_position: int = None
    end_position: int = None
    is_impossible: bool = None

    @property
    def paragraph_len(self):
        """Real tokens in the feature (the original's misnamed `paragraph_len`)."""
        return sum(self.input_mask)


@dataclasses.dataclass
class ConversionReport:
    """What `convert_examples_to_features` did."""

    examples: int = 0
    features: int = 0
    positive: int = 0            # training windows holding the answer
    negative: int = 0            # training windows pointing at [CLS]
    truncated_questions: int = 0
    alignment_failed: int = 0    # the original's "MISMATCH DETECTED!"
    no_tokens: int = 0           # contexts with no pieces (empty after preprocessing)
    bad_answer_span: int = 0     # training answers that map to an inverted piece span
    seconds: float = 0.0

    def summary(self):
        text = (f"{self.features} features from {self.examples} examples "
                f"({self.examples / max(self.seconds, 1e-9):,.0f} examples/s)")
        if self.positive or self.negative:
            text += f"; {self.positive} windows with the answer, {self.negative} without"
        if self.truncated_questions:
            text += f"; {self.truncated_questions} questions cut to max_query_length"
        if self.alignment_failed:
            text += f"; {self.alignment_failed} contexts failed to align (dropped)"
        if self.no_tokens:
            text += f"; {self.no_tokens} contexts without pieces (dropped)"
        if self.bad_answer_span:
            text += f"; {self.bad_answer_span} answers mapped to no piece span (dropped)"
        return text


_Context = collections.namedtuple(
    "_Context", ["doc_ids", "tok_start_to_orig_index", "tok_end_to_orig_index", "answers",
                 "has_pieces"])


class _ContextCache:
    """Each context's pieces, alignment and (training) answer spans, computed once.

    SQuAD asks about five questions per context, and training examples come shuffled, so
    a context is aligned when its first question comes and kept, in compact arrays, until
    its last question has been converted.
    """

    def __init__(self, examples, tokenizer, is_training):
        self.examples = examples
        self.tokenizer = tokenizer
        self.is_training = is_training
        self.questions = collections.defaultdict(list)
        for index, example in enumerate(examples):
            self.questions[example.paragraph_text].append(index)
        self.remaining = {text: len(indexes) for text, indexes in self.questions.items()}
        self.ready = {}

    def get(self, example_index):
        text = self.examples[example_index].paragraph_text
        context = self.ready.get(text)
        if context is None:
            context = self.ready[text] = self._build(text)
        self.remaining[text] -= 1
        if not self.remaining[text]:
            del self.ready[text], self.remaining[text], self.questions[text]
        return context

    def _build(self, text):
        tokenizer = self.tokenizer
        pieces = tokenizer.tokenize(text)
        alignment = align_context(text, pieces, tokenizer.do_lower_case) if pieces else None
        if alignment is None:
            return _Context(None, None, None, None, bool(pieces))
        answers = {}
        if self.is_training:
            for index in self.questions[text]:
                example = self.examples[index]
                if not example.is_impossible:
                    answers[index] = alignment.answer_span(
                        example.start_position,
                        example.start_position + len(example.orig_answer_text) - 1)
        piece_to_id = tokenizer.sp_model.PieceToId
        return _Context(np.array([piece_to_id(p) for p in pieces], np.int32),
                        np.array(alignment.tok_start_to_orig_index, np.int32),
                        np.array(alignment.tok_end_to_orig_index, np.int32), answers, True)


def _special_ids(tokenizer):
    if getattr(tokenizer, "sp_model", None) is None:
        raise TaskDataError("SQuAD features need a SentencePiece model (--spm_model_file), "
                            "as the original: its character alignment works on pieces.")
    return tokenizer.cls_id, tokenizer.sep_id


def iter_features(examples, tokenizer, max_seq_length, doc_stride, max_query_length,
                  is_training, report=None, log_every_seconds=30.0):
    """Yields `InputFeatures` for `examples` (see `convert_examples_to_features`)."""
    if max_seq_length <= max_query_length + 3:
        raise ValueError(f"max_seq_length ({max_seq_length}) must be greater than "
                         f"max_query_length ({max_query_length}) + 3.")
    if doc_stride <= 0:
        raise ValueError(f"doc_stride must be positive, got {doc_stride}.")
    report = report if report is not None else ConversionReport()
    cls_id, sep_id = _special_ids(tokenizer)
    examples = examples if isinstance(examples, (list, tuple)) else list(examples)
    contexts = _ContextCache(examples, tokenizer, is_training)
    unique_id = UNIQUE_ID_START
    started = last_log = time.perf_counter()
    for example_index, example in enumerate(examples):
        report.examples += 1
        now = time.perf_counter()
        if now - last_log > log_every_seconds:
            last_log = now
            logging.info("Converting SQuAD examples: %d/%d (%.0f examples/s), %d features.",
                         example_index, len(examples), example_index / (now - started),
                         report.features)
        query_ids = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(example.question_text))
        if len(query_ids) > max_query_length:
            report.truncated_questions += 1
            query_ids = query_ids[:max_query_length]

        context = contexts.get(example_index)
        if context.doc_ids is None:
            if context.has_pieces:
                report.alignment_failed += 1
                logging.info("MISMATCH DETECTED! Context of example %r does not align with "
                             "its pieces; the example gets no features.", example.qas_id)
            else:
                report.no_tokens += 1
            continue
        doc_ids = context.doc_ids

        answer = None
        if is_training and not example.is_impossible:
            answer = context.answers[example_index]
            if answer[0] > answer[1]:
                report.bad_answer_span += 1
                logging.warning("Example %r: its answer maps to pieces %d..%d (inverted); "
                                "skipped.", example.qas_id, *answer)
                continue

        max_tokens_for_doc = max_seq_length - len(query_ids) - 3
        spans = doc_spans(len(doc_ids), max_tokens_for_doc, doc_stride)
        best_spans = best_context_spans(spans, len(doc_ids))
        doc_offset = len(query_ids) + 2
        for span_index, span in enumerate(spans):
            window = slice(span.start, span.start + span.length)
            input_ids = [cls_id] + query_ids + [sep_id] + doc_ids[window].tolist() + [sep_id]
            real = len(input_ids)
            pad = max_seq_length - real
            segment_ids = [0] * doc_offset + [1] * (span.length + 1) + [0] * pad
            p_mask = [0] + [1] * (doc_offset - 1) + [0] * span.length + [1] + [1] * pad
            feature = InputFeatures(
                unique_id=unique_id,
                example_index=None if is_training else example_index,
                doc_span_index=span_index, doc_offset=doc_offset,
                tok_start_to_orig_index=context.tok_start_to_orig_index[window].tolist(),
                tok_end_to_orig_index=context.tok_end_to_orig_index[window].tolist(),
                token_is_max_context=max_context_flags(spans, span_index, best_spans),
                input_ids=input_ids + [0] * pad, input_mask=[1] * real + [0] * pad,
                segment_ids=segment_ids, p_mask=p_mask)
            if is_training:
                impossible = example.is_impossible
                start = end = 0
                if not impossible:
                    span_end = span.start + span.length - 1
                    if answer[0] >= span.start and answer[1] <= span_end:
                        start = answer[0] - span.start + doc_offset
                        end = answer[1] - span.start + doc_offset
                    else:
                        # The original's comment says such windows are dropped; its code
                        # keeps them as [CLS]-pointing negatives, and so do we.
                        impossible = True
                feature.start_position, feature.end_position = start, end
                feature.is_impossible = impossible
                if impossible:
                    report.negative += 1
                else:
                    report.positive += 1
            if report.features < 2:
                _log_feature(tokenizer, example, feature)
            report.features += 1
            unique_id += 1
            yield feature
    report.seconds += time.perf_counter() - started


def _log_feature(tokenizer, example, feature):
    real = feature.input_ids[:sum(feature.input_mask)]
    text = " ".join(tokenizer.sp_model.IdToPiece(i) for i in real)
    line = f"SQuAD feature {feature.unique_id} (example {example.qas_id!r}, window " \
           f"{feature.doc_span_index}): {text}"
    if feature.start_position is not None:
        answer = " ".join(tokenizer.sp_model.IdToPiece(i) for i in
                          feature.input_ids[feature.start_position:feature.end_position + 1])
        line += f" | answer [{feature.start_position}, {feature.end_position}]: {answer}"
    logging.info("%s", line)


def convert_examples_to_features(examples, tokenizer, max_seq_length, doc_stride,
                                 max_query_length, is_training, output_fn=None,
                                 do_lower_case=None, report=None):
    """Turns examples into windowed features, as the original.

    Args:
      examples: list of `SquadExample` (the original pre-shuffles training examples).
      tokenizer: `albert_tf.tokenization.FullTokenizer` with a SentencePiece model (its
        `tokenize` applies the original preprocessing with its `do_lower_case`).
      max_seq_length: tokens per feature (> max_query_length + 3).
      doc_stride: pieces between the starts of consecutive windows.
      max_query_length: question pieces kept (the first ones).
      is_training: add labels (and leave `example_index` None, as the original).
      output_fn: called with each `InputFeatures` (the original's callback); None: return
        them as a list.
      do_lower_case: the original's argument; must agree with the tokenizer if given.
      report: an optional `ConversionReport` to fill in (its summary is logged).

    Returns:
      The list of features when `output_fn` is None, else the `ConversionReport`.
    """
    if do_lower_case is not None and bool(do_lower_case) != tokenizer.do_lower_case:
        raise ValueError(f"do_lower_case={do_lower_case} disagrees with the tokenizer's "
                         f"do_lower_case={tokenizer.do_lower_case}.")
    report = report if report is not None else ConversionReport()
    features = iter_features(examples, tokenizer, max_seq_length, doc_stride,
                             max_query_length, is_training, report)
    if output_fn is None:
        result = list(features)
    else:
        for feature in features:
            output_fn(feature)
        result = report
    logging.info("SQuAD conversion: %s", report.summary())
    return result


# =========================================================================================
# TFRecords (the original's feature names and types)
# =========================================================================================

def _int_feature(values):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=values))


def feature_to_tf_example(feature, is_training):
    """A `tf.train.Example` with the original's feature names, as bytes."""
    record = {
        "unique_ids": _int_feature([feature.unique_id]),
        "input_ids": _int_feature(feature.input_ids),
        "input_mask": _int_feature(feature.input_mask),
        "segment_ids": _int_feature(feature.segment_ids),
        "p_mask": _int_feature(feature.p_mask),
    }
    if is_training:
        record["start_positions"] = _int_feature([feature.start_position])
        record["end_positions"] = _int_feature([feature.end_position])
        record["is_impossible"] = _int_feature([int(bool(feature.is_impossible))])
    return tf.train.Example(features=tf.train.Features(feature=record)).SerializeToString()


class FeatureWriter:
    """Writes features to a TFRecord file (any `tf.io.gfile` path) through
    `files.atomic_tfrecord_writer`: `close` gives the file its name, `abort` removes it, so
    an interrupted conversion never leaves a cache that looks complete."""

    def __init__(self, filename, is_training):
        self.filename = os.fspath(filename)
        self.is_training = is_training
        self.num_features = 0
        self._stack = contextlib.ExitStack()
        self._writer = self._stack.enter_context(files.atomic_tfrecord_writer(self.filename))

    def process_feature(self, feature):
        self.num_features += 1
        self._writer.write(feature_to_tf_example(feature, self.is_training))

    def close(self):
        self._stack.close()

    def abort(self):
        # Exiting with an exception removes the temporary file and leaves no final one.
        self._stack.__exit__(RuntimeError, RuntimeError("aborted"), None)


def feature_spec(seq_length, is_training, is_v2=True):
    """The parsing spec of the original's records (`p_mask` only read for v2, as there)."""
    spec = {
        "unique_ids": tf.io.FixedLenFeature([], tf.int64),
        "input_ids": tf.io.FixedLenFeature([seq_length], tf.int64),
        "input_mask": tf.io.FixedLenFeature([seq_length], tf.int64),
        "segment_ids": tf.io.FixedLenFeature([seq_length], tf.int64),
    }
    if is_v2:
        spec["p_mask"] = tf.io.FixedLenFeature([seq_length], tf.int64)
    if is_training:
        for name in ("start_positions", "end_positions", "is_impossible"):
            spec[name] = tf.io.FixedLenFeature([], tf.int64)
    return spec


def squad_dataset(input_file, seq_length, is_training, batch_size, is_v2=True,
                  drop_remainder=None, num_shards=1, shard_index=0, shuffle_buffer=100,
                  seed=None):
    """A `tf.data.Dataset` of batches from a feature TFRecord file.

    Training: repeated, shuffled in a buffer of 100 records (the original's input; the
    examples were shuffled before conversion), whole batches only. Prediction: in file
    order, a final partial batch kept. Every int64 feature becomes int32, as the original.

    Returns batches of dicts: `unique_ids` [B], `input_ids`, `input_mask`, `segment_ids`
    (and `p_mask` for v2) [B, seq_length], and in training `start_positions`,
    `end_positions`, `is_impossible` [B].
    """
    spec = feature_spec(seq_length, is_training, is_v2)
    dataset = tf.data.TFRecordDataset(input_file)
    if num_shards > 1:
        dataset = dataset.shard(num_shards, shard_index)
    if is_training:
        dataset = dataset.repeat().shuffle(shuffle_buffer, seed=seed)
    if drop_remainder is None:
        drop_remainder = is_training
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)

    def parse(records):
        parsed = tf.io.parse_example(records, spec)
        return {name: tf.cast(t, tf.int32) for name, t in parsed.items()}

    return dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def check_feature_file(path, seq_length, is_training):
    """Raises TaskDataError if the first record of `path` does not fit the settings."""
    for record in tf.data.TFRecordDataset(path).take(1):
        example = tf.train.Example.FromString(record.numpy())
        names = example.features.feature
        length = len(names["input_ids"].int64_list.value) if "input_ids" in names else None
        missing = [n for n in feature_spec(seq_length, is_training) if n not in names]
        if missing or length != seq_length:
            raise TaskDataError(
                f"{path}: its records do not fit: "
                + (f"missing {missing}" if missing else f"input_ids of length {length}, "
                   f"but --max_seq_length={seq_length}")
                + ". Delete the file to rebuild it, or pass another feature file path.")


# =========================================================================================
# Prediction features for post-processing (--predict_feature_left_file)
# =========================================================================================

@dataclasses.dataclass
class EvalFeature:
    """What post-processing needs of a feature (the model outputs come separately)."""

    unique_id: int
    example_index: int
    doc_offset: int
    tok_start_to_orig_index: list
    tok_end_to_orig_index: list
    token_is_max_context: list


def to_eval_feature(feature):
    return EvalFeature(feature.unique_id, feature.example_index, feature.doc_offset,
                       list(feature.tok_start_to_orig_index),
                       list(feature.tok_end_to_orig_index),
                       list(feature.token_is_max_context))


class _OriginalFeatures:
    """Stand-in for the original's `squad_utils.InputFeatures` when unpickling its files."""


class _SafeUnpickler(pickle.Unpickler):
    # Only plain values, and the original's InputFeatures class, may be built.
    _ALLOWED = {("collections", "OrderedDict"), ("builtins", "dict"), ("builtins", "list"),
                ("builtins", "tuple"), ("builtins", "set"), ("builtins", "object")}

    def find_class(self, module, name):
        if name == "InputFeatures" and module.endswith("squad_utils"):
            return _OriginalFeatures
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        if module == "copy_reg" and name == "_reconstructor":   # Python 2 pickles
            return super().find_class("copyreg", "_reconstructor")
        if module == "__builtin__" and name == "object":
            return object
        raise pickle.UnpicklingError(f"unexpected object {module}.{name}")


def _from_original(obj):
    doc_offset = obj.tokens.index("[SEP]") + 1
    flags = [bool(obj.token_is_max_context.get(doc_offset + k, False))
             for k in range(len(obj.tok_start_to_orig_index))]
    return EvalFeature(int(obj.unique_id), obj.example_index, doc_offset,
                       list(obj.tok_start_to_orig_index), list(obj.tok_end_to_orig_index), flags)


def save_eval_features(path, features, settings):
    """Writes the post-processing features (plain values) with the settings they came from,
    atomically."""
    payload = {
        "format": _LEFT_FILE_FORMAT,
        "settings": settings,
        "features": [dataclasses.astuple(f) for f in features],
    }
    files.write_bytes(path, pickle.dumps(payload, protocol=4))


def load_eval_features(path):
    """(features, settings) from a file by `save_eval_features`, or from the original's
    pickle of `InputFeatures` (settings None then)."""
    data = files.read_bytes(path, "SQuAD prediction-feature file")
    try:
        payload = _SafeUnpickler(io.BytesIO(data)).load()
    except Exception as err:  # noqa: BLE001 - any unpickling failure means a bad file
        raise TaskDataError(f"{path}: not a SQuAD prediction-feature file ({err}). Delete it "
                            "and the --predict_feature_file beside it to rebuild both.") \
            from None
    if isinstance(payload, dict) and payload.get("format") == _LEFT_FILE_FORMAT:
        return [EvalFeature(*row) for row in payload["features"]], payload["settings"]
    if isinstance(payload, list) and all(isinstance(x, _OriginalFeatures) for x in payload):
        logging.info("%s was written by the original run_squad; its settings are unknown and "
                     "not checked.", path)
        return [_from_original(x) for x in payload], None
    raise TaskDataError(f"{path}: not a SQuAD prediction-feature file. Delete it and the "
                        "--predict_feature_file beside it to rebuild both.")


# =========================================================================================
# Caches: build once, refuse a cache built with other settings
# =========================================================================================

def file_digest(path):
    """SHA-1 of a file's bytes (names the data a cache was built from)."""
    digest = hashlib.sha1()
    with tf.io.gfile.GFile(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_settings(source_file, tokenizer, max_seq_length, doc_stride, max_query_length,
                   is_training):
    """What a feature cache depends on (recorded beside it, compared on reuse)."""
    return {
        "source_sha1": file_digest(source_file),
        "spm_model_sha1": hashlib.sha1(tokenizer.spm_model_proto or b"").hexdigest(),
        "do_lower_case": bool(tokenizer.do_lower_case),
        "max_seq_length": int(max_seq_length),
        "doc_stride": int(doc_stride),
        "max_query_length": int(max_query_length),
        "is_training": bool(is_training),
    }


def _settings_path(feature_file):
    """The side file recording a cache's settings: `<folder>/_<name>.settings.json`."""
    return files.side_file(feature_file, "settings.json")


def _check_cache_settings(feature_file, recorded, wanted, extra_files=()):
    if recorded is None:
        return
    # Counts recorded after the build are not settings.
    diffs = [f"{key}: {recorded.get(key)!r} there, {value!r} now"
             for key, value in wanted.items() if recorded.get(key) != value]
    if diffs:
        files = " and ".join([feature_file, *extra_files])
        raise TaskDataError(
            f"The feature cache {feature_file} was built with other settings or data "
            f"({'; '.join(diffs)}). Delete {files} to rebuild, or pass other cache paths.")


def _read_settings(feature_file):
    """The settings recorded beside `feature_file` (also under the older name
    `<file>.settings.json`), or None."""
    for path in (_settings_path(feature_file), f"{feature_file}.settings.json"):
        if tf.io.gfile.exists(path):
            return files.read_json(path, "feature-cache settings file")
    return None


def _write_settings(feature_file, settings):
    files.write_json(_settings_path(feature_file), settings, sort_keys=True)


count_records = files.count_records


def prepare_train_features(train_file, tokenizer, feature_file, max_seq_length, doc_stride,
                           max_query_length, examples=None, shuffle_seed=12345):
    """Builds the training feature TFRecord unless it exists; returns its feature count.

    Examples are shuffled with `random.Random(shuffle_seed)` before conversion (the
    original's pre-shuffle, which lets the input use a 100-record shuffle buffer). A cache
    written by us records its settings beside it and is refused if they differ; one written
    by the original is used as it is.
    """
    wanted = cache_settings(train_file, tokenizer, max_seq_length, doc_stride,
                            max_query_length, True)
    if tf.io.gfile.exists(feature_file):
        recorded = _read_settings(feature_file)
        _check_cache_settings(feature_file, recorded, wanted)
        check_feature_file(feature_file, max_seq_length, is_training=True)
        count = (recorded or {}).get("num_features") or count_records(feature_file)
        logging.info("Using the cached training features %s (%d features).", feature_file,
                     count)
        return count
    if examples is None:
        examples = read_squad_examples(train_file, is_training=True)
    examples = list(examples)
    random.Random(shuffle_seed).shuffle(examples)
    writer = FeatureWriter(feature_file, is_training=True)
    report = ConversionReport()
    try:
        convert_examples_to_features(examples, tokenizer, max_seq_length, doc_stride,
                                     max_query_length, True, writer.process_feature,
                                     report=report)
    except BaseException:
        writer.abort()
        raise
    writer.close()
    _write_settings(feature_file, {**wanted, "num_features": report.features,
                                   "num_examples": report.examples})
    return report.features


def prepare_eval_features(predict_file, tokenizer, feature_file, left_file, max_seq_length,
                          doc_stride, max_query_length, examples=None):
    """The prediction features: built into `feature_file` (TFRecord) and `left_file` (for
    post-processing) unless both exist; returns the list of `EvalFeature`."""
    wanted = cache_settings(predict_file, tokenizer, max_seq_length, doc_stride,
                            max_query_length, False)
    if tf.io.gfile.exists(feature_file) and tf.io.gfile.exists(left_file):
        features, recorded = load_eval_features(left_file)
        _check_cache_settings(left_file, recorded, wanted, extra_files=[feature_file])
        check_feature_file(feature_file, max_seq_length, is_training=False)
        logging.info("Using the cached prediction features %s and %s (%d features).",
                     feature_file, left_file, len(features))
        return features
    if examples is None:
        examples = read_squad_examples(predict_file, is_training=False)
    writer = FeatureWriter(feature_file, is_training=False)
    eval_features = []

    def keep(feature):
        eval_features.append(to_eval_feature(feature))
        writer.process_feature(feature)

    try:
        convert_examples_to_features(examples, tokenizer, max_seq_length, doc_stride,
                                     max_query_length, False, keep)
    except BaseException:
        writer.abort()
        raise
    writer.close()
    save_eval_features(left_file, eval_features, wanted)
    return eval_features
