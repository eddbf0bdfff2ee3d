"""SQuAD post-processing: model outputs -> answers, output files and the official metrics.

As the original run_squad_v1.py / run_squad_v2.py:

v1.1 (`predictions_v1`): per window, every pair of the `n_best_size` best start logits and
the `n_best_size` best end logits is a candidate unless the start or end lies outside the
window's context pieces, the start is not in its max-context window (this also removes
[CLS] and the question), the end comes before the start, or the span is longer than
`max_answer_length` pieces. Candidates of all windows are ranked by start + end logit, the
text of each is the raw context between its pieces' characters, stripped, duplicates are
dropped, `n_best_size` kept. The answer is the best text; with no candidate it is the
literal "empty". v1.1 never answers null.

v2.0 (`predictions_v2`): candidates come from the model's beam (`start_n_top` starts, each
with `end_n_top` ends), filtered as above plus an explicit start-before-context check, and
ranked by start + end log-probability. The null score of a question is the minimum
`cls_logits` over its windows (1e6 for a question without windows). The answer is "" when
the null score is >= the threshold, else the best text ("" with scores -1e6 when no
candidate survives). `evaluate_v2` chooses the threshold on the evaluated set itself, as the
original: predictions are scored with every question answered, the official script's best-F1
threshold on the raw `cls_logits` is taken, the files are rewritten with it and scored again.

Metrics come from the official SQuAD scripts as tf-models-official ships them
(`official.nlp.tools.squad_evaluate_v1_1` / `squad_evaluate_v2_0`; plain Python).
"""

import collections
import json
import math

from absl import logging
import numpy as np

from albert_tf import files

RawResultV1 = collections.namedtuple("RawResultV1",
                                      ["unique_id", "start_logits", "end_logits"])
RawResultV2 = collections.namedtuple(
    "RawResultV2", ["unique_id", "start_top_log_probs", "start_top_index",
                    "end_top_log_probs", "end_top_index", "cls_logits"])

# What v2 uses when a question has no candidate or no window (the original's constants).
NO_CANDIDATE_SCORE = -1e6
NO_WINDOW_NULL_SCORE = 1e6

_Candidate = collections.namedtuple(
    "_Candidate", ["feature_index", "start", "end", "start_score", "end_score"])


def best_indexes(scores, n_best_size):
    """Indexes of the `n_best_size` largest scores, best first; ties keep index order."""
    scores = np.asarray(scores)
    return np.argsort(-scores, kind="stable")[:n_best_size].tolist()


def softmax(scores):
    """Softmax of a list of floats (the n-best probabilities); [] for []."""
    if not scores:
        return []
    top = max(scores)
    exps = [math.exp(s - top) for s in scores]
    total = sum(exps)
    return [e / total for e in exps]


def _features_by_example(features):
    grouped = collections.defaultdict(list)
    for feature in features:
        grouped[feature.example_index].append(feature)
    return grouped


def _results_by_id(results):
    return {int(r.unique_id): r for r in results}


def _valid_spans(feature, starts, ends, max_answer_length):
    """Which window positions [starts, ends] (int arrays) may be answers: the original's
    filters. The start must be a context piece of the window whose max-context window this
    is (which also rules out [CLS], the question and the [SEP]s); the end must be a context
    piece, not before the start, and the span at most `max_answer_length` pieces. (v2's
    explicit start >= doc_offset check is implied.)"""
    doc_length = len(feature.tok_start_to_orig_index)
    first, last = starts - feature.doc_offset, ends - feature.doc_offset
    valid = ((first >= 0) & (first < doc_length) & (last < doc_length) & (ends >= starts)
             & (ends - starts + 1 <= max_answer_length))
    max_context = np.asarray(feature.token_is_max_context, bool)
    valid[valid] &= max_context[first[valid]]
    return valid


def _nbest(example, features, candidates, n_best_size):
    """Ranked, de-duplicated n-best entries [(text, start_score, end_score)]."""
    # A stable sort keeps the original's order among equal scores (window, then start,
    # then end candidate order).
    candidates = sorted(candidates, key=lambda c: c.start_score + c.end_score, reverse=True)
    seen, nbest = set(), []
    for c in candidates:
        if len(nbest) >= n_best_size:
            break
        feature = features[c.feature_index]
        first = feature.tok_start_to_orig_index[c.start - feature.doc_offset]
        last = feature.tok_end_to_orig_index[c.end - feature.doc_offset]
        text = example.paragraph_text[first:last + 1].strip()
        if text in seen:
            continue
        seen.add(text)
        nbest.append((text, c.start_score, c.end_score))
    return nbest


def _nbest_json(nbest):
    probabilities = softmax([s + e for _, s, e in nbest])
    return [collections.OrderedDict([("text", text), ("probability", p),
                                     ("start_log_prob", float(s)), ("end_log_prob", float(e))])
            for (text, s, e), p in zip(nbest, probabilities)]


def predictions_v1(examples, features, results, n_best_size=20, max_answer_length=30):
    """Answers from v1.1 start/end logits.

    Args:
      examples: the `SquadExample`s the features were made from (in that order).
      features: their features (`InputFeatures` or `EvalFeature`: `unique_id`,
        `example_index`, `doc_offset`, `tok_start_to_orig_index`, `tok_end_to_orig_index`,
        `token_is_max_context`).
      results: `RawResultV1` per feature (`start_logits`, `end_logits` [max_seq_length]).
      n_best_size, max_answer_length: the original's flags.

    Returns:
      (predictions, nbest): OrderedDicts keyed by question id; `nbest[id]` is a list of
      {text, probability, start_log_prob, end_log_prob} (the original's keys, which hold
      logits in v1).
    """
    by_example = _features_by_example(features)
    by_id = _results_by_id(results)
    predictions, all_nbest = collections.OrderedDict(), collections.OrderedDict()
    for example_index, example in enumerate(examples):
        example_features = by_example.get(example_index, [])
        candidates = []
        for feature_index, feature in enumerate(example_features):
            result = by_id[feature.unique_id]
            start_logits = np.asarray(result.start_logits, np.float64)
            end_logits = np.asarray(result.end_logits, np.float64)
            # Every pair of a best start with a best end, start-major (the original's order).
            starts, ends = np.meshgrid(best_indexes(start_logits, n_best_size),
                                       best_indexes(end_logits, n_best_size), indexing="ij")
            valid = _valid_spans(feature, starts, ends, max_answer_length)
            for start, end in zip(starts[valid].tolist(), ends[valid].tolist()):
                candidates.append(_Candidate(feature_index, start, end,
                                             float(start_logits[start]),
                                             float(end_logits[end])))
        nbest = _nbest(example, example_features, candidates, n_best_size)
        if not nbest:
            # The original's placeholder when nothing survives (e.g. a context that did
            # not align): the text "empty" with zero scores.
            nbest = [("empty", 0.0, 0.0)]
        all_nbest[example.qas_id] = _nbest_json(nbest)
        predictions[example.qas_id] = nbest[0][0]
    return predictions, all_nbest


def predictions_v2(examples, features, results, n_best_size=20, max_answer_length=30,
                   null_score_diff_threshold=None):
    """Answers and null scores from the v2.0 beam outputs.

    Args:
      examples, features: as `predictions_v1`.
      results: `RawResultV2` per feature: `start_top_log_probs`, `start_top_index` [k],
        `end_top_log_probs`, `end_top_index` [k * e] (start-major: entry i * e + j is the
        j-th end for the i-th start), `cls_logits` (a float).
      n_best_size, max_answer_length: the original's flags.
      null_score_diff_threshold: answer "" when the question's null score is >= this;
        None: always answer the best span.

    Returns:
      (predictions, nbest, null_odds): OrderedDicts keyed by question id; `null_odds[id]` is
      the null score (the minimum `cls_logits` over the question's windows).
    """
    by_example = _features_by_example(features)
    by_id = _results_by_id(results)
    predictions = collections.OrderedDict()
    all_nbest, null_odds = collections.OrderedDict(), collections.OrderedDict()
    for example_index, example in enumerate(examples):
        example_features = by_example.get(example_index, [])
        candidates = []
        null_score = NO_WINDOW_NULL_SCORE
        for feature_index, feature in enumerate(example_features):
            result = by_id[feature.unique_id]
            null_score = min(null_score, float(result.cls_logits))
            start_index = np.asarray(result.start_top_index, np.int64)
            end_index = np.asarray(result.end_top_index, np.int64)
            start_n_top = len(start_index)
            end_n_top = len(end_index) // max(start_n_top, 1)
            # Beam entry i * end_n_top + j: the j-th end for the i-th start.
            starts = np.repeat(start_index, end_n_top)
            start_scores = np.repeat(np.asarray(result.start_top_log_probs, np.float64),
                                     end_n_top)
            end_scores = np.asarray(result.end_top_log_probs, np.float64)
            valid = _valid_spans(feature, starts, end_index, max_answer_length)
            for k in np.flatnonzero(valid).tolist():
                candidates.append(_Candidate(feature_index, int(starts[k]), int(end_index[k]),
                                             float(start_scores[k]), float(end_scores[k])))
        nbest = _nbest(example, example_features, candidates, n_best_size)
        if not nbest:
            nbest = [("", NO_CANDIDATE_SCORE, NO_CANDIDATE_SCORE)]
        all_nbest[example.qas_id] = _nbest_json(nbest)
        null_odds[example.qas_id] = null_score
        answer_null = (null_score_diff_threshold is not None
                       and null_score >= null_score_diff_threshold)
        predictions[example.qas_id] = "" if answer_null else nbest[0][0]
    return predictions, all_nbest, null_odds


def write_json(path, value):
    """Writes `value` as the original does (indent 4, final newline), atomically."""
    files.write_text(path, json.dumps(value, indent=4) + "\n")


def write_prediction_files(output_dir, predictions, nbest, null_odds=None):
    """predictions.json, nbest_predictions.json and (v2) null_odds.json in `output_dir`
    (nothing when it is None)."""
    if output_dir is None:
        return
    write_json(files.join(output_dir, "predictions.json"), predictions)
    write_json(files.join(output_dir, "nbest_predictions.json"), nbest)
    if null_odds is not None:
        write_json(files.join(output_dir, "null_odds.json"), null_odds)


def evaluate_v1(dataset, predictions):
    """The official SQuAD v1.1 metric: {"exact_match", "f1"} in percent.

    `dataset` is the `data` list of the JSON file; a question without a prediction scores 0.
    """
    from official.nlp.tools import squad_evaluate_v1_1
    scores = squad_evaluate_v1_1.evaluate(dataset, predictions)
    # tf-models-official returns fractions; the official script and the original, percent.
    return {"exact_match": 100.0 * scores["exact_match"], "f1": 100.0 * scores["final_f1"]}


def official_v2_scores(dataset, predictions, null_odds):
    """The official SQuAD v2.0 script's numbers for fixed predictions and null scores.

    Returns a dict: `exact`, `f1`, `total` (a question whose null score is > 1.0 counts as
    answered null, the script's default threshold), `HasAns_*`, `NoAns_*`, and `best_exact`,
    `best_exact_thresh`, `best_f1`, `best_f1_thresh`: the scores with the best null-score
    threshold for these predictions. Also the script's precision-recall figures.
    """
    from official.nlp.tools import squad_evaluate_v2_0
    scores = dict(squad_evaluate_v2_0.evaluate(dataset, predictions, null_odds))
    # tf-models-official renames the script's best_* keys to final_*.
    for key in ("exact", "exact_thresh", "f1", "f1_thresh"):
        if f"final_{key}" in scores:
            scores[f"best_{key}"] = scores.pop(f"final_{key}")
    return scores


def evaluate_v2(dataset, examples, features, results, output_dir, n_best_size=20,
                max_answer_length=30):
    """v2.0 predictions, null-score threshold chosen on this set, files and metrics.

    As the original: (1) predictions with every question answered and the official
    best-F1 threshold on the raw null scores, (2) predictions.json, nbest_predictions.json
    and null_odds.json written with that threshold, (3) scored again.

    Returns a dict: `exact`, `f1`, `total`, `null_score_diff_threshold` (the original's
    result), plus `HasAns_exact`, `HasAns_f1`, `HasAns_total`, `NoAns_*` of the final
    predictions and `best_exact`, `best_exact_thresh`, `best_f1`, `best_f1_thresh` of the
    tuning pass.
    """
    answered, _, null_odds = predictions_v2(examples, features, results, n_best_size,
                                            max_answer_length, None)
    tuning = official_v2_scores(dataset, answered, null_odds)
    threshold = tuning["best_f1_thresh"]
    predictions, nbest, null_odds = predictions_v2(examples, features, results, n_best_size,
                                                   max_answer_length, threshold)
    write_prediction_files(output_dir, predictions, nbest, null_odds)
    final = official_v2_scores(dataset, predictions, null_odds)
    scores = {"exact": final["exact"], "f1": final["f1"], "total": final["total"],
              "null_score_diff_threshold": threshold}
    for key, value in final.items():
        if key.startswith(("HasAns_", "NoAns_")):
            scores[key] = value
    for key in ("best_exact", "best_exact_thresh", "best_f1", "best_f1_thresh"):
        scores[key] = tuning[key]
    logging.info("SQuAD v2.0: exact %.2f, f1 %.2f over %d questions; null threshold %.4f.",
                 scores["exact"], scores["f1"], scores["total"], threshold)
    return scores


def evaluate_v1_and_write(dataset, examples, features, results, output_dir, n_best_size=20,
                          max_answer_length=30):
    """v1.1 predictions, predictions.json + nbest_predictions.json, and the metric."""
    predictions, nbest = predictions_v1(examples, features, results, n_best_size,
                                        max_answer_length)
    write_prediction_files(output_dir, predictions, nbest)
    scores = evaluate_v1(dataset, predictions)
    logging.info("SQuAD v1.1: exact_match %.2f, f1 %.2f.", scores["exact_match"],
                 scores["f1"])
    return scores
