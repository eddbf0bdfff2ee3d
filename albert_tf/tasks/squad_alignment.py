"""SQuAD: the character alignment of a raw context with its SentencePiece pieces.

The original's way (its squad_utils.py): SentencePiece pieces do not follow whitespace, and
the preprocessing changes characters (whitespace runs, accents, case), so the characters of
the raw context are aligned with the characters of the joined pieces by a banded longest
common subsequence, and every piece is mapped back to a span of raw characters. A context
that does not align (LCS below 80% of its length) is dropped ("MISMATCH DETECTED!").

Faster than the original, same output: the per-character preprocessing is computed once per
character (`_preprocessed_char_code`), and the banded LCS one row at a time with numpy
(`_banded_lcs`). `albert_tf.tasks.squad_features` aligns each context once for all the
questions on it.
"""

import dataclasses
import functools

import numpy as np

from albert_tf import tokenization

# Share of the context's characters the alignment must match (the original's 0.8).
MIN_ALIGNED_SHARE = 0.8


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
