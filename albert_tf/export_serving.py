"""The serving module a SavedModel export saves: one model with a head, its signatures.

`AlbertServingModule` wraps any of our models (`heads.py`; the head is `head_of(model)`) and
turns the outputs the model returns into the exported signatures' outputs. The heads return
the encoder outputs with their own keys, so nothing of a head's arithmetic is repeated here:
this module only casts, renames and adds what serving promises on top (the classifier's
class id and label name, the pretraining heads' log-softmax, a constant threshold).

Two families of heads (`albert_tf.export`'s docstring lists the signatures):
- text heads (`TEXT_HEADS`: "none", "mlm", "classifier"): token-id and raw-text
  signatures, the in-graph tokenizer and `tokenization_info`;
- feature heads (`FEATURE_HEADS`: "squad_v1", "squad_v2", "race"): one `serving_default`
  over the task's packed features (their packing is not a plain text pair: SQuAD's doc
  stride, RACE's options), returning the head's inference outputs only, as the original
  run_squad / run_race exports.
"""

import tensorflow as tf

from albert_tf import bucketing
from albert_tf.errors import UserError
from albert_tf.heads import (AlbertClassifier, AlbertMultipleChoice, AlbertPretrainer,
                             AlbertSquadV1, AlbertSquadV2, head_outputs)
from albert_tf.modeling import AlbertModel

TOKEN_INPUTS = ("input_ids", "input_mask", "segment_ids")
TEXT_HEADS = ("none", "mlm", "classifier")
# head -> the feature inputs of its serving_default (int32, [B, T], RACE [B, C, T]).
FEATURE_HEADS = {
    "squad_v1": TOKEN_INPUTS,
    "squad_v2": TOKEN_INPUTS + ("p_mask",),
    "race": TOKEN_INPUTS,
}
# The model class of each head, most specific first.
_HEAD_CLASSES = (
    (AlbertPretrainer, "mlm"), (AlbertClassifier, "classifier"), (AlbertSquadV1, "squad_v1"),
    (AlbertSquadV2, "squad_v2"), (AlbertMultipleChoice, "race"), (AlbertModel, "none"))


class ExportError(UserError, ValueError):
    """An export that cannot be done as asked (the message says why and what to do)."""


def head_of(model):
    """The export head of a model: "none", "mlm", "classifier", "squad_v1", "squad_v2" or
    "race" (raises TypeError for any other object)."""
    for cls, head in _HEAD_CLASSES:
        if isinstance(model, cls):
            return head
    raise TypeError(f"Cannot export a {type(model).__name__}: expected an AlbertModel (head "
                    "'none'), an AlbertPretrainer ('mlm'), an AlbertClassifier "
                    "('classifier'), an AlbertSquadV1/V2 ('squad_v1'/'squad_v2') or an "
                    "AlbertMultipleChoice ('race').")


def _ids_spec(name, shape=(None, None)):
    return tf.TensorSpec(list(shape), tf.int32, name=name)


def _text_spec(name):
    return tf.TensorSpec([None], tf.string, name=name)


def _cut_to_bucket(features, buckets):
    """Packed text features [B, T] cut to the length bucket of the request's longest text
    (`albert_tf.bucketing`): a batch of short texts does not compute T positions.

    Args:
      features: `input_ids`, `input_mask`, `segment_ids` [B, T] (T static, else uncut).
      buckets: candidate lengths from `bucketing.parse_buckets` (() means no cutting);
        those below T, then T, are the lengths a request may be cut to (`bucketing.bucket_lengths`).

    Returns the features with their last axis cut to the smallest of those lengths that
    holds the longest real row (from `input_mask`); other entries unchanged.
    """
    length = features["input_ids"].shape[-1]
    if length is None:
        return features
    return bucketing.trim_to_bucket(features, bucketing.bucket_lengths(length, buckets))


def _float32(outputs, keys):
    return {key: tf.cast(outputs[key], tf.float32) for key in keys}


class AlbertServingModule(tf.Module):
    """The object a SavedModel export saves: a model, its in-graph tokenizer and assets.

    Args:
      model: one of our models (`head_of`), variables built.
      tokenizer: `in_graph_tokenization.InGraphTokenizer` for the text functions (text
        heads; None for feature heads).
      asset_files: paths copied into the SavedModel's `assets/` folder; for text heads the
        first is the SentencePiece model returned by `tokenization_info`.
      do_lower_case: what `tokenization_info` reports (the tokenizer's setting).
      labels: class names of a classifier (optional).
      threshold: a classifier's decision threshold, returned as a constant output.
      max_seq_length: the feature heads' row length T (their inputs are [B, T], RACE's
        [B, C, T]).
      length_buckets: the lengths the text signatures cut a request to (the smallest that
        holds its longest text; the packed length is always the last): a `--length_buckets`
        flag value ("default": `bucketing.DEFAULT_BUCKETS`; "none": no cutting, every
        request runs at the packed length, as the original; "32,128": those) or a sequence
        of ints. The outputs do not change, only the work done. Feature heads' inputs are
        not cut.

    The functions (each takes one dict; see `albert_tf.export`'s docstring): text heads
    `tokens`, `tokens_training`, `text`, for head "mlm" `mlm` and `sop`, and
    `tokenization_info()`; feature heads `features`.

    Raises:
      ExportError: `labels` do not match a classifier's outputs.
      BucketError: `length_buckets` is not a flag value or positive lengths.
    """

    def __init__(self, model, tokenizer, asset_files, do_lower_case, labels=None,
                 threshold=None, max_seq_length=None, length_buckets="default"):
        super().__init__(name="albert_serving")
        self.head = head_of(model)
        self.model = model
        # Every model variable, tracked directly: SavedModel's object graph does not follow
        # AlbertModel's {group index: sub-blocks} dict (integer keys), so variables reached
        # only through it would be "untracked" captures.
        self.model_variables = list(model.variables)
        self.tokenizer = tokenizer
        self._length_buckets = bucketing.parse_buckets(length_buckets)
        self.assets = [tf.saved_model.Asset(path) for path in asset_files]
        self._do_lower_case = bool(do_lower_case)
        num_labels = getattr(model, "num_labels", None)
        is_classifier = self.head == "classifier"
        if labels is not None and is_classifier:
            labels = [str(label) for label in labels]
            if len(labels) != num_labels:
                raise ExportError(f"{len(labels)} label names ({labels}) for a classifier "
                                  f"with {num_labels} outputs.")
        self.label_names = labels if is_classifier else None
        self._labels = tf.constant(labels) if self.label_names is not None else None
        self._regression = is_classifier and num_labels == 1
        self._threshold = None if threshold is None or not is_classifier else float(threshold)
        if self.head in FEATURE_HEADS:
            self._feature_specs = self._make_feature_specs(max_seq_length)
            self.features = tf.function(self._run_features,
                                        input_signature=[self._feature_specs],
                                        autograph=False)
            return

        token_specs = {name: _ids_spec(name) for name in TOKEN_INPUTS}
        # === Functions taking one dict (Python, Keras' TFSMLayer) ===
        # The model is traced three times at most (tokens, tokens_training, mlm); every other
        # function calls one of these, so its graph holds a call, not another copy.
        self.tokens = tf.function(lambda features: self._run(features),
                                  input_signature=[token_specs], autograph=False)
        self.tokens_training = tf.function(lambda features: self._run(features, training=True),
                                           input_signature=[token_specs], autograph=False)
        self.text = tf.function(self._text_dict, autograph=False)
        self.text.get_concrete_function({"text_a": _text_spec("text_a")})
        self.text.get_concrete_function({"text_a": _text_spec("text_a"),
                                         "text_b": _text_spec("text_b")})
        if self.head == "mlm":
            self.sop = self.tokens
            self.mlm = tf.function(
                lambda features: self._run(features, mlm=True),
                input_signature=[{**token_specs, "mlm_positions": _ids_spec("mlm_positions")}],
                autograph=False)
        self.tokenization_info = tf.function(self._tokenization_info, input_signature=[],
                                             autograph=False)

    @property
    def length_buckets(self):
        """The candidate lengths the text signatures cut a request to (tuple of ints; ()
        means no cutting; `bucketing.bucket_lengths(T, ...)` adds the packed length T)."""
        return tuple(self._length_buckets)

    @property
    def threshold(self):
        """The classifier's constant `threshold` output (float), or None."""
        return self._threshold

    # --- computations -------------------------------------------------------------------

    def _run(self, features, training=False, mlm=False):
        """Encoder and head outputs (float32) for token features [B, T] (text heads)."""
        inputs = {name: tf.cast(features[name], tf.int32) for name in TOKEN_INPUTS}
        if self.head == "mlm":
            if mlm:
                positions = tf.cast(features["mlm_positions"], tf.int32)
            else:
                # The pretrainer computes both heads in one call; one dummy position per
                # example costs one row of vocabulary logits, and is dropped.
                positions = tf.zeros([tf.shape(inputs["input_ids"])[0], 1], tf.int32)
            inputs["masked_lm_positions"] = positions
        outputs = self.model(inputs, training=training)
        result = _float32(outputs, ("sequence_output", "pooled_output"))
        if self.head == "mlm":
            result["sop_log_probs"] = tf.nn.log_softmax(
                tf.cast(outputs["sop_logits"], tf.float32), axis=-1)
            if mlm:
                result["mlm_logits"] = tf.cast(outputs["mlm_logits"], tf.float32)
        elif self.head == "classifier":
            result.update(self._classifier_outputs(outputs["logits"]))
        return result

    def _classifier_outputs(self, logits):
        """What a classifier export returns besides the encoder outputs, from its logits."""
        result = {"logits": logits}
        if self._threshold is not None:
            result["threshold"] = tf.fill(tf.shape(logits)[:1],
                                          tf.constant(self._threshold, tf.float32))
        if self._regression:
            # As the original: the score is also the `probabilities` output [B, 1].
            result["probabilities"] = logits
            result["predictions"] = tf.squeeze(logits, -1)
            return result
        result["probabilities"] = tf.nn.softmax(logits, axis=-1)
        predictions = tf.argmax(logits, axis=-1, output_type=tf.int32)
        result["predictions"] = predictions
        if self._labels is not None:
            result["labels"] = tf.gather(self._labels, predictions)
        return result

    def _run_features(self, features):
        """The head's inference outputs for its packed features (feature heads)."""
        inputs = {name: tf.cast(features[name], tf.int32) for name in FEATURE_HEADS[self.head]}
        return head_outputs(self.model(inputs, training=False))

    def _make_feature_specs(self, max_seq_length):
        shape = [None, max_seq_length]
        if self.head == "race":
            shape = [None, self.model.num_choices, max_seq_length]
        return {name: _ids_spec(name, shape) for name in FEATURE_HEADS[self.head]}

    def _text_dict(self, texts):
        return self._text(texts["text_a"], texts.get("text_b"))

    def _text(self, text_a, text_b=None):
        features = self.tokenizer(text_a, text_b)
        result = dict(self.tokens(_cut_to_bucket(features, self.length_buckets)))
        if "sequence_output" in result:
            # Back to the packed length; positions past the batch's bucket are padding.
            cut = tf.shape(result["sequence_output"])[1]
            padding = tf.shape(features["input_ids"])[1] - cut
            result["sequence_output"] = tf.pad(result["sequence_output"],
                                               [[0, 0], [0, padding], [0, 0]])
        result.update(features)
        return result

    def _tokenization_info(self):
        return {"vocab_file": self.assets[0].asset_path,
                "do_lower_case": tf.constant(self._do_lower_case)}

    # --- signatures ---------------------------------------------------------------------

    def signatures(self, text_pair=False):
        """{name: concrete function} with flat named inputs, for `tf.saved_model.save`."""
        if self.head in FEATURE_HEADS:
            return {"serving_default": self._feature_signature()}

        # Thin wrappers: the work is in the dict functions they call.
        def tokens(input_ids, input_mask, segment_ids):
            return self.tokens({"input_ids": input_ids, "input_mask": input_mask,
                                "segment_ids": segment_ids})

        def mlm(input_ids, input_mask, segment_ids, mlm_positions):
            return self.mlm({"input_ids": input_ids, "input_mask": input_mask,
                             "segment_ids": segment_ids, "mlm_positions": mlm_positions})

        def text(text_a):
            return self.text({"text_a": text_a})

        def text_pair_fn(text_a, text_b):
            return self.text({"text_a": text_a, "text_b": text_b})

        ids = [_ids_spec(name) for name in TOKEN_INPUTS]
        concrete = {
            "tokens": tf.function(tokens, autograph=False).get_concrete_function(*ids),
            "text": tf.function(text, autograph=False).get_concrete_function(
                _text_spec("text_a")),
            "text_pair": tf.function(text_pair_fn, autograph=False).get_concrete_function(
                _text_spec("text_a"), _text_spec("text_b")),
            "tokenization_info": self.tokenization_info.get_concrete_function(),
        }
        if self.head == "mlm":
            concrete["sop"] = concrete["tokens"]
            concrete["mlm"] = tf.function(mlm, autograph=False).get_concrete_function(
                *ids, _ids_spec("mlm_positions"))
        concrete["serving_default"] = concrete["text_pair" if text_pair else "text"]
        return concrete

    def _feature_signature(self):
        specs = self._feature_specs
        if "p_mask" in specs:
            def serve(input_ids, input_mask, segment_ids, p_mask):
                return self.features({"input_ids": input_ids, "input_mask": input_mask,
                                      "segment_ids": segment_ids, "p_mask": p_mask})
        else:
            def serve(input_ids, input_mask, segment_ids):
                return self.features({"input_ids": input_ids, "input_mask": input_mask,
                                      "segment_ids": segment_ids})
        return tf.function(serve, autograph=False).get_concrete_function(*specs.values())
