"""SQuAD: windows over a context and the model features of each, as the original.

After `albert_tf.tasks.squad` has read the examples, for each question (the original's
squad_utils.convert_examples_to_features):

1. The question becomes the ids of `preprocess_text` + SentencePiece (+ the digit-comma
   rule), cut to its first `max_query_length` ids. The context becomes pieces the same way
   and is aligned with its raw characters (`albert_tf.tasks.squad_alignment`), once for all
   the questions on it (SQuAD has about five per paragraph).
2. `doc_spans`: windows of at most `max_seq_length - len(question) - 3` pieces, the next one
   starting `doc_stride` pieces later, each packed as `[CLS] question [SEP] window [SEP]`.
3. Labels (training): the answer's piece span inside the window, offset by
   `len(question) + 2`; an unanswerable question, and a window that does not hold the whole
   answer, point at [CLS] (position 0) with `is_impossible = 1`.

The result is one `InputFeatures` per window; `albert_tf.tasks.squad_records` writes them.
"""

import collections
import dataclasses
import time

from absl import logging
import numpy as np

from albert_tf.tasks import TaskDataError
from albert_tf.tasks.squad_alignment import align_context

# The first feature's unique_id (the original's constant).
UNIQUE_ID_START = 1000000000

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
    tok_start_to_orig_index: list[int]
    tok_end_to_orig_index: list[int]
    token_is_max_context: list[bool]
    input_ids: list[int]
    input_mask: list[int]
    segment_ids: list[int]
    p_mask: list[int]
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
