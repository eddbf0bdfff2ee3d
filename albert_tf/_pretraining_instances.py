"""The original create_pretraining_data algorithm on token codes: pairs, truncation, masking.

This is the part of `albert_tf.create_pretraining_data` that turns tokenized documents into
training instances; it follows the original script decision by decision (SPEC Part 2, 3.3 and
3.4) and differs only where noted:

* Tokens are ints, `code = id * 2 + is_word_start`, so the word-start test (`token_boundary`,
  whole-word candidates) is computed once per vocabulary piece instead of per token.
* Every random choice comes from one seeded `random.Random`, including the n-gram length,
  which the original draws from NumPy's global generator that it never seeds.
* The candidate order is a lazily drawn uniform permutation (a Fisher-Yates shuffle stopped
  when enough tokens are masked) instead of a full `rng.shuffle`; the second shuffle the
  original makes when `do_permutation` is off changes nothing and is skipped. The
  distribution of the output is the same; the random stream is not.
* `documents` is the pool the random-document B segment is drawn from: the caller passes a
  chunk of the corpus, where the original holds the whole corpus.

`build_arrays` turns instances into the padded feature matrices of the original TFRecord
schema, and `instance_statistics` summarizes them the way `tests/fixtures/tfrecord_stats.py`
does. `PieceCoder` turns a tokenizer's pieces into codes, and `seeded_rng` gives every random
choice of the job its own stable seed.
"""

import bisect
import dataclasses
import itertools
import random

import numpy as np

from albert_tf.errors import UserError


class PretrainingDataError(UserError, ValueError):
    """Bad pretraining-data settings or input (a `ValueError`, as these errors were before);
    the message names the setting, or the file and line."""


# The original's word-start test for SentencePiece pieces: these single characters, and any
# piece with a character whose lower case is not an ASCII letter or one of them, start a word.
# The literal has `\"` twice and no apostrophe, so "'" makes a word start (SPEC 3.4).
_SP_SPECIAL_CHARS = frozenset('!"#$%&"()*+,-./:;?@[\\]^_`{|}~')
_SP_CONTINUATION_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz") | _SP_SPECIAL_CHARS


def is_start_piece_sentencepiece(piece):
    """The original `_is_start_piece_sp`: True if `piece` starts a word.

    "▁the", "<unk>", ",", "7", "'s", "é" -> True; "ing", "s." -> False.
    """
    return (piece.startswith("\u2581") or piece.startswith("<") or piece in _SP_SPECIAL_CHARS
            or not all(ch.lower() in _SP_CONTINUATION_CHARS for ch in piece))


def is_start_piece_wordpiece(piece):
    """The original `_is_start_piece_bert`: a WordPiece continuation starts with "##"."""
    return not piece.startswith("##")


@dataclasses.dataclass(frozen=True)
class InstanceOptions:
    """The original flags that shape instances (names and defaults of create_pretraining_data).

    Attributes:
      max_seq_length: tokens per instance including [CLS] and the two [SEP] (>= 5).
      max_predictions_per_seq: cap on masked positions per instance.
      masked_lm_prob: share of tokens (specials included) to mask, before the cap.
      short_seq_prob: chance that a document pass uses a random shorter target length.
      ngram: longest n-gram (in candidates, i.e. words) masked as one span.
      favor_shorter_ngram: n-gram weights proportional to 1/n (else reversed).
      do_whole_word_mask: continuation pieces join the previous candidate.
      do_permutation: add up to as many permuted positions as masked ones.
      random_next_sentence: BERT-style random-document negatives instead of swapped order.
    """

    max_seq_length: int = 512
    max_predictions_per_seq: int = 20
    masked_lm_prob: float = 0.15
    short_seq_prob: float = 0.1
    ngram: int = 3
    favor_shorter_ngram: bool = True
    do_whole_word_mask: bool = True
    do_permutation: bool = False
    random_next_sentence: bool = False

    def __post_init__(self):
        checks = [
            (self.max_seq_length >= 5, "max_seq_length must be >= 5 ([CLS] A [SEP] B [SEP] "
                                       "with at least one token in A and in B)"),
            (self.max_predictions_per_seq >= 0, "max_predictions_per_seq must be >= 0"),
            (0.0 <= self.masked_lm_prob <= 1.0, "masked_lm_prob must be in [0, 1]"),
            (0.0 <= self.short_seq_prob <= 1.0, "short_seq_prob must be in [0, 1]"),
            (self.ngram >= 1, "ngram must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise PretrainingDataError(f"{message}; got {self}.")

    @property
    def num_prediction_slots(self):
        """P: length of the masked-LM features (doubled with permutation, as the original)."""
        return self.max_predictions_per_seq * (1 + int(self.do_permutation))

    def ngram_cumulative_weights(self):
        """Cumulative probabilities of n = 1..ngram (6/11, 9/11, 1 for the default 3)."""
        weights = [1.0 / n for n in range(1, self.ngram + 1)]
        if not self.favor_shorter_ngram:
            weights.reverse()
        total = sum(weights)
        cumulative, running = [], 0.0
        for w in weights:
            running += w
            cumulative.append(running / total)
        cumulative[-1] = 1.0
        return cumulative


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """What the algorithm needs from the tokenizer.

    Attributes:
      cls_id, sep_id, mask_id: ids of [CLS], [SEP], [MASK].
      random_ids: the ids a random replacement is drawn from, uniformly: every vocabulary
        entry (the original's `list(tokenizer.vocab)`), special pieces included.
    """

    cls_id: int
    sep_id: int
    mask_id: int
    random_ids: tuple

    @property
    def cls_code(self):
        return self.cls_id * 2 + 1  # [CLS] and [SEP] have token_boundary 1

    @property
    def sep_code(self):
        return self.sep_id * 2 + 1


# One instance, compact: (codes incl. [CLS]/[SEP], len(A), is_random_next,
# masked positions (unsorted), ids written at those positions).
_Instance = tuple


def _truncate_pair(tokens_a, tokens_b, max_num_tokens, rng):
    """The original `truncate_seq_pair`: until the pair fits, drop one token of the longer
    list (B on ties), the first one with probability 1/2, else the last.

    Same steps and draws as the original, counted first and applied with two slices.
    Returns the truncated (tokens_a, tokens_b).
    """
    len_a, len_b = len(tokens_a), len(tokens_b)
    if len_a + len_b <= max_num_tokens:
        return tokens_a, tokens_b
    random = rng.random
    front_a = front_b = 0
    while len_a + len_b > max_num_tokens:
        if len_a > len_b:
            front_a += random() < 0.5
            len_a -= 1
        else:
            front_b += random() < 0.5
            len_b -= 1
    return (tokens_a[front_a:front_a + len_a], tokens_b[front_b:front_b + len_b])


def create_instances_from_document(documents, document_index, options, vocab, rng,
                                   ngram_cumulative=None):
    """Instances of one document for one pass (the original function of the same name).

    Args:
      documents: list of documents, each a list of segments (lists of token codes); the
        pool random B segments are drawn from.
      document_index: which document to cut into instances.
      options: `InstanceOptions`.
      vocab: `Vocabulary`.
      rng: `random.Random`; every draw of this document comes from it.
      ngram_cumulative: `options.ngram_cumulative_weights()`, passed to save recomputing it.

    Returns:
      list of compact instances (see `_Instance`).
    """
    if ngram_cumulative is None:
        ngram_cumulative = options.ngram_cumulative_weights()
    random = rng.random
    document = documents[document_index]
    max_num_tokens = options.max_seq_length - 3
    # A short target length for a share of the document passes (mismatch with fine-tuning).
    target_seq_length = max_num_tokens
    if random() < options.short_seq_prob:
        target_seq_length = rng.randint(2, max_num_tokens)

    instances = []
    chunk = []
    chunk_length = 0
    i = 0
    while i < len(document):
        segment = document[i]
        chunk.append(segment)
        chunk_length += len(segment)
        if i == len(document) - 1 or chunk_length >= target_seq_length:
            a_end = 1
            if len(chunk) >= 2:
                a_end = rng.randint(1, len(chunk) - 1)
            tokens_a = [t for segment in chunk[:a_end] for t in segment]
            # Quirk kept on purpose (SPEC 5.1): a one-segment chunk always gets a B from a
            # random document and label 1, also in sentence-order (SOP) mode.
            if len(chunk) == 1 or (options.random_next_sentence and random() < 0.5):
                is_random_next = True
                target_b_length = target_seq_length - len(tokens_a)
                for _ in range(10):
                    random_index = rng.randint(0, len(documents) - 1)
                    if random_index != document_index:
                        break
                random_document = documents[random_index]
                tokens_b = []
                for j in range(rng.randint(0, len(random_document) - 1), len(random_document)):
                    tokens_b.extend(random_document[j])
                    if len(tokens_b) >= target_b_length:
                        break
                # The unused segments of this chunk go back to the document.
                i -= len(chunk) - a_end
            elif not options.random_next_sentence and random() < 0.5:
                is_random_next = True  # sentence-order negative: A and B swapped
                tokens_b = tokens_a
                tokens_a = [t for segment in chunk[a_end:] for t in segment]
            else:
                is_random_next = False
                tokens_b = [t for segment in chunk[a_end:] for t in segment]
            tokens_a, tokens_b = _truncate_pair(tokens_a, tokens_b, max_num_tokens, rng)
            codes = [vocab.cls_code]
            codes += tokens_a
            codes.append(vocab.sep_code)
            codes += tokens_b
            codes.append(vocab.sep_code)
            positions, new_ids = mask_tokens(codes, len(tokens_a), options, vocab, rng,
                                             ngram_cumulative)
            instances.append((codes, len(tokens_a), is_random_next, positions, new_ids))
            chunk = []
            chunk_length = 0
        i += 1
    return instances


def mask_tokens(codes, len_a, options, vocab, rng, ngram_cumulative):
    """Chooses masked (and, with `do_permutation`, permuted) positions of one instance.

    Args:
      codes: token codes of `[CLS] A [SEP] B [SEP]`.
      len_a: len(A); the middle [SEP] is at `len_a + 1`.

    Returns:
      (positions, new_ids): unsorted positions and the id each one gets in `input_ids`
      ([MASK], the original id, a random id, or for permuted positions a partner's id).
      The labels are the original ids at those positions.
    """
    num_tokens = len(codes)
    if options.masked_lm_prob == 0:
        return [], []
    # Python 3 round() (half to even), as the original under Python 3.
    num_to_predict = min(options.max_predictions_per_seq,
                         max(1, int(round(num_tokens * options.masked_lm_prob))))
    # Candidates live in the space of non-special tokens (j = 0..m-1, position
    # j + 1 + (j >= len_a)); whole words and n-grams of them are contiguous ranges there,
    # also across the middle [SEP] (SPEC 5.4: spans may straddle it).
    inner = codes[1:len_a + 1] + codes[len_a + 2:num_tokens - 1]
    num_inner = len(inner)
    if options.do_whole_word_mask:
        bounds = [j for j, code in enumerate(inner) if code & 1 or j == 0]
    else:
        bounds = list(range(num_inner))
    bounds.append(num_inner)  # candidate k covers inner[bounds[k]:bounds[k + 1]]

    positions, new_ids = [], []
    covered = bytearray(num_inner)
    _walk_spans(bounds, covered, num_to_predict, options.ngram, ngram_cumulative, rng,
                positions)
    random = rng.random
    mask_id = vocab.mask_id
    random_ids = vocab.random_ids
    for k, j in enumerate(positions):
        position = j + 1 + (j >= len_a)
        positions[k] = position
        if random() < 0.8:
            new_ids.append(mask_id)
        elif random() < 0.5:
            new_ids.append(codes[position] >> 1)
        else:
            new_ids.append(random_ids[int(random() * len(random_ids))])

    if options.do_permutation:
        selected = []
        _walk_spans(bounds, covered, num_to_predict, options.ngram, ngram_cumulative, rng,
                    selected)
        selected.sort()
        partners = list(selected)
        rng.shuffle(partners)
        for j, partner in zip(selected, partners):
            positions.append(j + 1 + (j >= len_a))
            new_ids.append(inner[partner] >> 1)
    return positions, new_ids


def _walk_spans(bounds, covered, num_to_predict, ngram, ngram_cumulative, rng, chosen):
    """The original n-gram span walk; appends chosen inner indices to `chosen`.

    Candidates are visited in uniformly random order. For each, n is drawn from the n-gram
    distribution; the n-word span starting there shrinks to n-1, ... 1 words while it would
    overshoot `num_to_predict`; a span that still overshoots, or touches a covered index, is
    skipped. Chosen indices are marked in `covered`. The per-token replacement draws are
    made by the caller, after the walk: they consume the same generator but do not influence
    the walk, so their order does not change the output distribution.
    """
    random = rng.random
    num_candidates = len(bounds) - 1
    order = list(range(num_candidates))
    count = 0
    for t in range(num_candidates):
        if count >= num_to_predict:
            break
        # Lazy Fisher-Yates: order[t] becomes a uniform pick among the unvisited candidates.
        pick = t + int(random() * (num_candidates - t))
        order[t], order[pick] = order[pick], order[t]
        k = order[t]
        n = min(bisect.bisect_right(ngram_cumulative, random()) + 1, ngram)
        low = bounds[k]
        high = bounds[min(k + n, num_candidates)]
        while count + high - low > num_to_predict and n > 1:
            n -= 1
            high = bounds[min(k + n, num_candidates)]
        if count + high - low > num_to_predict:
            continue
        if covered.find(1, low, high) != -1:
            continue
        covered[low:high] = b"\x01" * (high - low)
        chosen.extend(range(low, high))
        count += high - low


def build_arrays(instances, options):
    """Padded feature matrices of the original TFRecord schema (SPEC 3.5).

    Args:
      instances: compact instances from `create_instances_from_document`.
      options: `InstanceOptions`.

    Returns:
      dict of numpy arrays with N = len(instances), L = max_seq_length,
      P = max_predictions_per_seq (x2 with permutation): `input_ids`, `input_mask`,
      `segment_ids`, `token_boundary` int64 [N, L]; `masked_lm_positions`, `masked_lm_ids`
      int64 [N, P]; `masked_lm_weights` float32 [N, P]; `next_sentence_labels` int64 [N, 1].
      Predictions are sorted by position; padding is 0 (weights 0.0).
    """
    num = len(instances)
    seq_len = options.max_seq_length
    slots = options.num_prediction_slots
    lengths = np.fromiter((len(inst[0]) for inst in instances), dtype=np.int64, count=num)
    len_a = np.fromiter((inst[1] for inst in instances), dtype=np.int64, count=num)
    labels = np.fromiter((inst[2] for inst in instances), dtype=np.int64, count=num)
    if num and lengths.max() > seq_len:
        raise AssertionError(f"instance of {lengths.max()} tokens > max_seq_length {seq_len}")

    columns = np.arange(seq_len)
    real = columns[None, :] < lengths[:, None]
    codes = np.zeros((num, seq_len), dtype=np.int64)
    chain = itertools.chain.from_iterable
    codes[real] = np.fromiter(chain(inst[0] for inst in instances), dtype=np.int64,
                              count=int(lengths.sum()))
    input_ids = codes >> 1
    token_boundary = codes & 1
    segment_ids = (real & (columns[None, :] >= (len_a + 2)[:, None])).astype(np.int64)

    num_masked = np.fromiter((len(inst[3]) for inst in instances), dtype=np.int64, count=num)
    rows = np.repeat(np.arange(num), num_masked)
    positions = np.fromiter(chain(inst[3] for inst in instances), dtype=np.int64,
                            count=int(num_masked.sum()))
    new_ids = np.fromiter(chain(inst[4] for inst in instances), dtype=np.int64,
                          count=int(num_masked.sum()))
    order = np.lexsort((positions, rows))  # by row, then position
    rows, positions, new_ids = rows[order], positions[order], new_ids[order]
    slot = np.arange(len(rows)) - np.repeat(np.cumsum(num_masked) - num_masked, num_masked)
    masked_lm_positions = np.zeros((num, slots), dtype=np.int64)
    masked_lm_ids = np.zeros((num, slots), dtype=np.int64)
    masked_lm_weights = np.zeros((num, slots), dtype=np.float32)
    masked_lm_positions[rows, slot] = positions
    masked_lm_ids[rows, slot] = input_ids[rows, positions]  # labels: the original ids
    masked_lm_weights[rows, slot] = 1.0
    input_ids[rows, positions] = new_ids
    return {
        "input_ids": input_ids,
        "input_mask": real.astype(np.int64),
        "segment_ids": segment_ids,
        "token_boundary": token_boundary,
        "masked_lm_positions": masked_lm_positions,
        "masked_lm_ids": masked_lm_ids,
        "masked_lm_weights": masked_lm_weights,
        "next_sentence_labels": labels[:, None],
    }


# Order and kinds of the original writer (`write_instance_to_example_files`).
FEATURES = (
    ("input_ids", "int64"),
    ("input_mask", "int64"),
    ("segment_ids", "int64"),
    ("token_boundary", "int64"),
    ("masked_lm_positions", "int64"),
    ("masked_lm_ids", "int64"),
    ("masked_lm_weights", "float"),
    ("next_sentence_labels", "int64"),
)


class Statistics:
    """Additive counts over instances, from which `summary()` gives the fixture statistics.

    The summary has the fields of `tests/fixtures/tfrecord_stats.py`: mean real length, share
    of instances shorter than 90% of the longest, masked tokens per real token, share of
    masked positions holding [MASK], share of label 1, and the share of runs of 1, 2, 3 and
    more adjacent masked positions.
    """

    def __init__(self, max_seq_length, slots):
        self.length_histogram = np.zeros(max_seq_length + 1, dtype=np.int64)
        self.run_histogram = np.zeros(max(slots, 1) + 1, dtype=np.int64)
        self.masked = 0
        self.mask_token = 0
        self.label_one = 0

    def add_arrays(self, arrays, mask_id):
        lengths = arrays["input_mask"].sum(axis=1)
        self.length_histogram += np.bincount(lengths, minlength=len(self.length_histogram))
        weights = arrays["masked_lm_weights"] > 0
        self.masked += int(weights.sum())
        rows, slots = np.nonzero(weights)
        positions = arrays["masked_lm_positions"][rows, slots]
        self.mask_token += int((arrays["input_ids"][rows, positions] == mask_id).sum())
        self.label_one += int(arrays["next_sentence_labels"].sum())
        if len(positions):
            # A run ends where the next prediction is in another row or not adjacent.
            ends = np.ones(len(positions), dtype=bool)
            ends[:-1] = (rows[1:] != rows[:-1]) | (positions[1:] != positions[:-1] + 1)
            end_index = np.flatnonzero(ends)
            runs = np.diff(np.concatenate(([-1], end_index)))
            self.run_histogram += np.bincount(runs, minlength=len(self.run_histogram))

    def merge(self, other):
        self.length_histogram += other.length_histogram
        self.run_histogram += other.run_histogram
        self.masked += other.masked
        self.mask_token += other.mask_token
        self.label_one += other.label_one

    def to_state(self):
        return {"length_histogram": self.length_histogram.tolist(),
                "run_histogram": self.run_histogram.tolist(), "masked": self.masked,
                "mask_token": self.mask_token, "label_one": self.label_one}

    @classmethod
    def from_state(cls, state):
        stats = cls(len(state["length_histogram"]) - 1, len(state["run_histogram"]) - 1)
        stats.length_histogram = np.asarray(state["length_histogram"], dtype=np.int64)
        stats.run_histogram = np.asarray(state["run_histogram"], dtype=np.int64)
        for key in ("masked", "mask_token", "label_one"):
            setattr(stats, key, int(state[key]))
        return stats

    @property
    def instances(self):
        return int(self.length_histogram.sum())

    @property
    def tokens(self):
        return int((self.length_histogram * np.arange(len(self.length_histogram))).sum())

    def summary(self):
        n = self.instances
        if n == 0:
            return {"instances": 0}
        lengths = np.arange(len(self.length_histogram))
        longest = int(lengths[self.length_histogram > 0].max())
        runs = int(self.run_histogram.sum())

        def run_share(select):
            return float(self.run_histogram[select].sum() / runs) if runs else 0.0

        return {
            "instances": n,
            "tokens": self.tokens,
            "mean_len": self.tokens / n,
            "short_frac": float(self.length_histogram[lengths < 0.9 * longest].sum() / n),
            "mean_masked": self.masked / n,
            "masked_per_token": self.masked / self.tokens,
            "mask_token_frac": self.mask_token / self.masked if self.masked else 0.0,
            "sop_pos_frac": self.label_one / n,
            "run_len_frac": {str(k): run_share(k) for k in (1, 2, 3)},
            "run_len_gt3": run_share(slice(4, None)),
        }


# --------------------------------------------------------------------------------------------
# Tokens as codes (shared by `create_instances` and the job's tasks).
# --------------------------------------------------------------------------------------------


class PieceCoder:
    """Pieces -> codes (`id * 2 + is_word_start`), with the word-start test cached per piece."""

    _MAX_EXTRA = 100000  # cap on cached unknown pieces, so memory stays bounded

    def __init__(self, tokenizer):
        self.sentencepiece = tokenizer.sp_model is not None
        self._is_start = (is_start_piece_sentencepiece if self.sentencepiece
                          else is_start_piece_wordpiece)
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


def seeded_rng(seed, *parts):
    """A `random.Random` for one purpose; str seeds hash with SHA-512 (stable everywhere)."""
    return random.Random(":".join(["albert_tf.pretraining", str(seed), *map(str, parts)]))
