"""Models with heads on the ALBERT encoder, each as the original scripts build it.

- `AlbertPretrainer`: masked LM (`cls/predictions`) + sentence order (`cls/seq_relationship`),
  from the original run_pretraining.py, with `pretraining_losses`.
- `AlbertClassifier`: GLUE classification / regression (run_classifier.py; `output_weights`,
  `output_bias` at the top level).
- `AlbertMultipleChoice`: RACE (run_race.py; one logit per option from the pooled output).
- `AlbertSquadV1`: start/end span logits (`cls/squad/...`, run_squad_v1.py).
- `AlbertSquadV2`: the start/end beam and the answer-class logit (run_squad_v2.py).

Every model returns the encoder's outputs (`sequence_output` [B, S, H], `pooled_output`
[B, H], `embedding_output` [B, S, E], as `AlbertModel` gives them) plus its head's own keys,
so exports and serving need no second copy of a head's arithmetic; `head_outputs` drops the
encoder's keys where only the head's are wanted (predictions gathered over a dataset).

Every head variable is created under name scopes equal to its original checkpoint name, so
`variable.path` is the name the original scripts save; all head arithmetic runs in float32,
also under a mixed-precision policy (logits, softmaxes and the -1e30 masks need the range).
"""

import keras
import tensorflow as tf

from albert_tf.modeling import (AlbertModel, build_under, dense, get_activation, initializer,
                                layer_norm, name_scopes)


# The keys `AlbertModel` may return; every task model passes them on.
ENCODER_OUTPUTS = ("sequence_output", "pooled_output", "embedding_output",
                   "all_encoder_layers")


def head_outputs(outputs):
    """A task model's outputs without the encoder's (`ENCODER_OUTPUTS`): a new dict."""
    return {key: value for key, value in outputs.items() if key not in ENCODER_OUTPUTS}


def original_variable(path, shape, init):
    """A trainable float32 variable whose Keras path is exactly `path` (an original name)."""
    scope, _, name = path.rpartition("/")
    with name_scopes(scope):
        return keras.Variable(init, shape=shape, dtype="float32", trainable=True, name=name)


def _zeros():
    return keras.initializers.Zeros()


def _fine_tuning_initializer():
    # The original classifier / RACE / SQuAD v1 heads hard-code stddev 0.02, whatever the
    # config's initializer_range says.
    return keras.initializers.TruncatedNormal(stddev=0.02)


def _as_float32(x):
    return tf.cast(x, tf.float32)


class _EncoderTask(keras.Model):
    """Base of the models below: an `AlbertModel` named `bert` plus head variables."""

    def __init__(self, config, encoder=None, name=None, **kwargs):
        # The heads compute in float32 whatever the global policy; the encoder follows it.
        kwargs.setdefault("dtype", "float32")
        super().__init__(name=name, **kwargs)
        self.config = config
        self.encoder = encoder if encoder is not None else AlbertModel(config)
        if self.encoder.config is not config and self.encoder.config != config:
            raise ValueError("The encoder passed to a task model has another config than the "
                             "task model.")


# === Pretraining ===

class AlbertPretrainer(_EncoderTask):
    """Encoder + masked-LM head + sentence-order head (the original pretraining graph).

    Call inputs: `input_ids`, `input_mask`, `segment_ids` [B, S] and `masked_lm_positions`
    [B, P] int. Returns a dict: `sequence_output` [B, S, H], `pooled_output` [B, H],
    `mlm_logits` [B, P, V] and `sop_logits` [B, 2] (float32).

    The masked-LM head: dense to E with `hidden_act`, LayerNorm, then the product with the
    transposed word-embedding table (tied; there is no separate decoder) plus its own
    `output_bias` [V]. Sentence order: `pooled_output @ output_weights^T + output_bias` with
    `output_weights` stored [2, H] as in the original. Label 0 = original order, 1 = swapped.

    Example:
    >>> from albert_tf import AlbertConfig
    >>> config = AlbertConfig(vocab_size=100, hidden_size=32, num_attention_heads=4,
    ...                       intermediate_size=64, num_hidden_layers=2, embedding_size=16)
    >>> model = AlbertPretrainer(config)
    >>> out = model({"input_ids": tf.constant([[2, 10, 4, 3]]),
    ...              "masked_lm_positions": tf.constant([[2]])})
    >>> out["mlm_logits"].shape, out["sop_logits"].shape
    (TensorShape([1, 1, 100]), TensorShape([1, 2]))
    """

    def __init__(self, config, encoder=None, name="albert_pretrainer", **kwargs):
        super().__init__(config, encoder, name=name, **kwargs)
        c = config
        # === Layers ===
        self.mlm_transform = dense(c.embedding_size, c, "dense", dtype="float32",
                                   activation=get_activation(c.hidden_act))
        self.mlm_layer_norm = layer_norm()
        build_under(self.mlm_transform, "cls/predictions/transform", (None, c.hidden_size))
        build_under(self.mlm_layer_norm, "cls/predictions/transform",
                    (None, c.embedding_size))
        self.mlm_output_bias = original_variable("cls/predictions/output_bias",
                                                 (c.vocab_size,), _zeros())
        self.sop_output_weights = original_variable("cls/seq_relationship/output_weights",
                                                    (2, c.hidden_size), initializer(c))
        self.sop_output_bias = original_variable("cls/seq_relationship/output_bias", (2,),
                                                 _zeros())
        self.built = True

    def call(self, inputs, training=False):
        if "masked_lm_positions" not in inputs:
            raise ValueError("AlbertPretrainer needs 'masked_lm_positions' [batch, predictions] "
                             "among its inputs.")
        outputs = dict(self.encoder(inputs, training=training))
        positions = tf.cast(inputs["masked_lm_positions"], tf.int32)
        # [B, P, H]: the hidden states at the masked positions.
        masked = tf.gather(_as_float32(outputs["sequence_output"]), positions, batch_dims=1)
        masked = self.mlm_layer_norm(self.mlm_transform(masked))
        table = _as_float32(tf.convert_to_tensor(self.encoder.word_embeddings))
        # One [B*P, E] x [V, E]^T GEMM (transpose_b reads the table in place; the einsum
        # copied the [V, E] table into a transposed batch-matmul operand).
        batch, predictions = tf.shape(positions)[0], tf.shape(positions)[1]
        mlm_logits = tf.matmul(tf.reshape(_as_float32(masked), [-1, self.config.embedding_size]),
                               table, transpose_b=True)
        mlm_logits = tf.nn.bias_add(mlm_logits, self.mlm_output_bias)
        outputs["mlm_logits"] = tf.reshape(mlm_logits,
                                           [batch, predictions, self.config.vocab_size])
        outputs["sop_logits"] = (
            tf.matmul(_as_float32(outputs["pooled_output"]), self.sop_output_weights,
                      transpose_b=True) + self.sop_output_bias)
        return outputs


def pretraining_losses(outputs, features):
    """The original pretraining losses and eval metrics for one batch.

    Args:
      outputs: `AlbertPretrainer` outputs (`mlm_logits` [B, P, V], `sop_logits` [B, 2]).
      features: `masked_lm_ids` [B, P], `masked_lm_weights` [B, P] (1.0 real, 0.0 padding) and
        `next_sentence_labels` ([B] or [B, 1]; the sentence-order label, under BERT's feature
        name; `sentence_order_labels` is accepted too).

    Returns a dict of float32 scalars: `masked_lm_loss` = sum(w * nll) / (sum(w) + 1e-5) (token
    level over the whole batch, as the original), `sentence_order_loss` (batch mean),
    `total_loss` (their sum), `masked_lm_accuracy` (weighted), `sentence_order_accuracy`,
    and `masked_lm_weight` (sum of weights, for averaging across batches).
    """
    mlm_logits = _as_float32(outputs["mlm_logits"])
    ids = tf.cast(features["masked_lm_ids"], tf.int32)
    weights = _as_float32(features["masked_lm_weights"])
    # -log_softmax(logits)[id] as one fused kernel, without the [B, P, V] one-hot product.
    mlm_nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=ids, logits=mlm_logits)
    weight_sum = tf.reduce_sum(weights)
    mlm_loss = tf.reduce_sum(weights * mlm_nll) / (weight_sum + 1e-5)
    mlm_correct = tf.cast(tf.equal(tf.argmax(mlm_logits, -1, output_type=tf.int32), ids),
                          tf.float32)
    mlm_accuracy = tf.math.divide_no_nan(tf.reduce_sum(weights * mlm_correct), weight_sum)

    labels = features.get("next_sentence_labels", features.get("sentence_order_labels"))
    if labels is None:
        raise ValueError("pretraining_losses needs 'next_sentence_labels' (the sentence-order "
                         "label) among the features.")
    labels = tf.reshape(tf.cast(labels, tf.int32), [-1])
    sop_log_probs = tf.nn.log_softmax(_as_float32(outputs["sop_logits"]), axis=-1)
    sop_nll = -tf.reduce_sum(tf.one_hot(labels, 2) * sop_log_probs, -1)
    sop_loss = tf.reduce_mean(sop_nll)
    sop_accuracy = tf.reduce_mean(tf.cast(
        tf.equal(tf.argmax(sop_log_probs, -1, output_type=tf.int32), labels), tf.float32))
    return {
        "masked_lm_loss": mlm_loss,
        "sentence_order_loss": sop_loss,
        "total_loss": mlm_loss + sop_loss,
        "masked_lm_accuracy": mlm_accuracy,
        "sentence_order_accuracy": sop_accuracy,
        "masked_lm_weight": weight_sum,
    }


# === Fine-tuning heads ===

class AlbertClassifier(_EncoderTask):
    """Sentence (pair) classification or regression on the pooled output (run_classifier.py).

    Args:
      config: `AlbertConfig`.
      num_labels: number of classes; 1 makes it the STS-B regression head.
      dropout_prob: dropout on the pooled output in training (the original's 0.1).

    Call inputs `input_ids`, `input_mask`, `segment_ids` [B, S]. Returns the encoder outputs
    and `logits` [B, num_labels] (float32) and, for classification, `probabilities`
    (softmax), for regression, `predictions` [B] (the squeezed logits, as the original
    scores them).
    Variables: the encoder plus top-level `output_weights` [num_labels, H], `output_bias`.
    """

    def __init__(self, config, num_labels, dropout_prob=0.1, encoder=None,
                 name="albert_classifier", **kwargs):
        super().__init__(config, encoder, name=name, **kwargs)
        if num_labels < 1:
            raise ValueError(f"num_labels must be at least 1, got {num_labels}.")
        self.num_labels = num_labels
        self.dropout = keras.layers.Dropout(dropout_prob, dtype="float32")
        self.output_weights = original_variable("output_weights", (num_labels, config.hidden_size),
                                                _fine_tuning_initializer())
        self.output_bias = original_variable("output_bias", (num_labels,), _zeros())
        self.built = True

    def call(self, inputs, training=False):
        outputs = dict(self.encoder(inputs, training=training))
        pooled = self.dropout(_as_float32(outputs["pooled_output"]), training=training)
        logits = tf.matmul(pooled, self.output_weights, transpose_b=True) + self.output_bias
        outputs["logits"] = logits
        if self.num_labels == 1:
            outputs["predictions"] = tf.squeeze(logits, -1)
        else:
            outputs["probabilities"] = tf.nn.softmax(logits, axis=-1)
        return outputs


class AlbertMultipleChoice(_EncoderTask):
    """Multiple choice (RACE, run_race.py): one logit per option from its pooled output.

    Call inputs `input_ids`, `input_mask`, `segment_ids` [B, C, S] with C = num_choices.
    Returns the encoder outputs per option (`sequence_output` [B, C, S, H], `pooled_output`
    [B, C, H], `embedding_output` [B, C, S, E]), `logits` [B, C] and `probabilities`
    (softmax over the options). Variables: the encoder plus top-level `output_weights`
    [1, H] and `output_bias` [1].
    """

    def __init__(self, config, num_choices=4, dropout_prob=0.1, encoder=None,
                 name="albert_multiple_choice", **kwargs):
        super().__init__(config, encoder, name=name, **kwargs)
        self.num_choices = num_choices
        self.dropout = keras.layers.Dropout(dropout_prob, dtype="float32")
        self.output_weights = original_variable("output_weights", (1, config.hidden_size),
                                                _fine_tuning_initializer())
        self.output_bias = original_variable("output_bias", (1,), _zeros())
        self.built = True

    def call(self, inputs, training=False):
        input_ids = tf.convert_to_tensor(inputs["input_ids"])
        input_ids.shape.assert_has_rank(3)
        length = tf.shape(input_ids)[-1]
        flat = {key: tf.reshape(inputs[key], [-1, length])
                for key in ("input_ids", "input_mask", "segment_ids") if key in inputs}
        encoded = self.encoder(flat, training=training)
        pooled = self.dropout(_as_float32(encoded["pooled_output"]), training=training)
        logits = tf.matmul(pooled, self.output_weights, transpose_b=True) + self.output_bias
        logits = tf.reshape(logits, [-1, self.num_choices])
        # [B * C, ...] -> [B, C, ...]: every output has the batch first, as serving needs.
        outputs = {key: tf.reshape(value, tf.concat([[-1, self.num_choices],
                                                     tf.shape(value)[1:]], 0))
                   for key, value in encoded.items() if key in ENCODER_OUTPUTS[:3]}
        outputs["logits"] = logits
        outputs["probabilities"] = tf.nn.softmax(logits, axis=-1)
        return outputs


class AlbertSquadV1(_EncoderTask):
    """SQuAD v1.1 span head (run_squad_v1.py): a [2, H] projection of every position.

    Call inputs `input_ids`, `input_mask`, `segment_ids` [B, S]. Returns the encoder outputs,
    `start_logits` and `end_logits` [B, S] (float32). Variables: `cls/squad/output_weights`
    [2, H], `output_bias`.
    """

    def __init__(self, config, encoder=None, name="albert_squad_v1", **kwargs):
        super().__init__(config, encoder, name=name, **kwargs)
        self.output_weights = original_variable("cls/squad/output_weights",
                                                (2, config.hidden_size),
                                                _fine_tuning_initializer())
        self.output_bias = original_variable("cls/squad/output_bias", (2,), _zeros())
        self.built = True

    def call(self, inputs, training=False):
        outputs = dict(self.encoder(inputs, training=training))
        hidden = _as_float32(outputs["sequence_output"])
        logits = tf.einsum("bsh,oh->obs", hidden, self.output_weights)
        logits += self.output_bias[:, tf.newaxis, tf.newaxis]
        outputs["start_logits"], outputs["end_logits"] = logits[0], logits[1]
        return outputs


class AlbertSquadV2(_EncoderTask):
    """SQuAD v2.0 head (run_squad_v2.py): start/end beam search plus an answer-class logit.

    Args:
      config: `AlbertConfig`.
      start_n_top, end_n_top: beam sizes for starts and, per start, ends.
      dropout_prob: dropout in the answer-class layer in training (the original's 0.1).

    Call inputs: `input_ids`, `input_mask`, `segment_ids` [B, S], `p_mask` [B, S] (1 = not a
    possible answer position: question, special tokens, padding), and in training
    `start_positions` [B] (the end logits are conditioned on the true start).

    Returns the encoder outputs and, in inference (`training=False`, unless
    `start_positions` is given):
    `start_top_log_probs`, `start_top_index` [B, start_n_top], `end_top_log_probs`,
    `end_top_index` [B, start_n_top * end_n_top] (start-major), `cls_logits` [B].
    With `start_positions` (training): `start_log_probs`, `end_log_probs` [B, S] and
    `cls_logits` [B], the inputs of the original loss.

    Positions with p_mask 1 get logit * 0 - 1e30, as the original masks them.
    """

    def __init__(self, config, start_n_top=5, end_n_top=5, dropout_prob=0.1, encoder=None,
                 name="albert_squad_v2", **kwargs):
        super().__init__(config, encoder, name=name, **kwargs)
        self.start_n_top = start_n_top
        self.end_n_top = end_n_top
        H = config.hidden_size
        f32 = {"dtype": "float32"}
        # === Layers ===
        self.start_dense = keras.layers.Dense(1, kernel_initializer=initializer(config),
                                              name="dense", **f32)
        self.end_dense_0 = keras.layers.Dense(H, activation="tanh", name="dense_0",
                                              kernel_initializer=initializer(config), **f32)
        self.end_layer_norm = layer_norm()
        self.end_dense_1 = keras.layers.Dense(1, kernel_initializer=initializer(config),
                                              name="dense_1", **f32)
        self.answer_dense_0 = keras.layers.Dense(H, activation="tanh", name="dense_0",
                                                 kernel_initializer=initializer(config), **f32)
        self.answer_dropout = keras.layers.Dropout(dropout_prob, **f32)
        self.answer_dense_1 = keras.layers.Dense(1, use_bias=False, name="dense_1",
                                                 kernel_initializer=initializer(config), **f32)
        build_under(self.start_dense, "start_logits", (None, H))
        build_under(self.end_dense_0, "end_logits", (None, 2 * H))
        build_under(self.end_layer_norm, "end_logits", (None, H))
        build_under(self.end_dense_1, "end_logits", (None, H))
        build_under(self.answer_dense_0, "answer_class", (None, 2 * H))
        build_under(self.answer_dense_1, "answer_class", (None, H))
        self.built = True

    def _end_logits(self, hidden, start_features):
        # hidden and start_features broadcast to a common [..., S, H] -> end logits [..., S].
        shape = tf.broadcast_dynamic_shape(tf.shape(hidden), tf.shape(start_features))
        x = tf.concat([tf.broadcast_to(hidden, shape), tf.broadcast_to(start_features, shape)],
                      axis=-1)
        x = self.end_dense_0(x)
        x = self.end_dense_1(self.end_layer_norm(x))
        return tf.squeeze(x, -1)

    def call(self, inputs, training=False):
        outputs = dict(self.encoder(inputs, training=training))
        hidden = _as_float32(outputs["sequence_output"])
        p_mask = _as_float32(inputs["p_mask"])
        start_logits = tf.squeeze(self.start_dense(hidden), -1)
        start_logits_masked = start_logits * (1 - p_mask) - 1e30 * p_mask
        start_log_probs = tf.nn.log_softmax(start_logits_masked, -1)

        if inputs.get("start_positions") is not None:
            start_positions = tf.reshape(tf.cast(inputs["start_positions"], tf.int32), [-1])
            start_features = tf.gather(hidden, start_positions, batch_dims=1)   # [B, H]
            end_logits = self._end_logits(hidden, start_features[:, tf.newaxis])
            end_logits_masked = end_logits * (1 - p_mask) - 1e30 * p_mask
            outputs["start_log_probs"] = start_log_probs
            outputs["end_log_probs"] = tf.nn.log_softmax(end_logits_masked, -1)
        else:
            start_top_log_probs, start_top_index = tf.nn.top_k(start_log_probs,
                                                               k=self.start_n_top)
            # [B, k, H] -> one end distribution per start candidate: [B, k, S].
            start_features = tf.gather(hidden, start_top_index, batch_dims=1)
            end_logits = self._end_logits(hidden[:, tf.newaxis],
                                          start_features[:, :, tf.newaxis])
            mask = p_mask[:, tf.newaxis]
            end_log_probs = tf.nn.log_softmax(end_logits * (1 - mask) - 1e30 * mask, -1)
            end_top_log_probs, end_top_index = tf.nn.top_k(end_log_probs, k=self.end_n_top)
            beam = self.start_n_top * self.end_n_top
            outputs.update({
                "start_top_log_probs": start_top_log_probs,
                "start_top_index": start_top_index,
                "end_top_log_probs": tf.reshape(end_top_log_probs, [-1, beam]),
                "end_top_index": tf.reshape(end_top_index, [-1, beam]),
            })

        # Answerability from the [CLS] state and the start-probability-weighted state.
        start_p = tf.nn.softmax(start_logits_masked, axis=-1)
        start_feature = tf.einsum("bsh,bs->bh", hidden, start_p)
        answer = self.answer_dense_0(tf.concat([start_feature, hidden[:, 0]], axis=-1))
        answer = self.answer_dropout(answer, training=training)
        outputs["cls_logits"] = tf.squeeze(self.answer_dense_1(answer), -1)
        return outputs
