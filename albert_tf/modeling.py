"""The ALBERT encoder as Keras 3 layers, numerically the original `modeling.AlbertModel`.

Reading order: activations and small helpers, `AlbertEmbeddings`, `AlbertAttention`,
`AlbertFeedForward`, `AlbertSubBlock` (one `inner_group_<k>`), `AlbertModel`.

Every layer builds its variables eagerly, under name scopes that mirror the original TF1 scopes,
so a variable's Keras `path` is its original checkpoint name (`bert/embeddings/word_embeddings`,
`bert/encoder/transformer/group_0/inner_group_0/attention_1/self/query/kernel`, ...). The
checkpoint module relies on that; see `albert_tf/checkpoints.py`.

Mixed precision: under a `mixed_bfloat16` / `mixed_float16` policy the matmuls run in the
compute dtype, while the LayerNorms, the attention softmax and (in the heads) the logits are
computed in float32, as numerically sensitive parts should be.
"""

import contextlib
import math

import keras
import tensorflow as tf

from albert_tf.config import AlbertConfig


# === Helpers ===

def gelu(x):
    """GELU, tanh approximation, as the original (`0.5x(1 + tanh(sqrt(2/pi)(x + 0.044715x^3)))`).

    Not the erf form: converters that call this `gelu` instead of `gelu_new` do not match.
    """
    # x * x * x, not tf.pow(x, 3): the same value, without Pow's slow kernel and its
    # gradient's extra Pow and Log.
    cdf = 0.5 * (1.0 + tf.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * (x * x * x))))
    return x * cdf


def get_activation(name):
    """Maps the original's activation names (case-insensitive) to a function or None."""
    if name is None or callable(name):
        return name
    key = str(name).lower()
    table = {"linear": None, "": None, "relu": tf.nn.relu, "tanh": tf.tanh, "gelu": gelu}
    if key not in table:
        raise ValueError(f"Unsupported activation {name!r} (hidden_act); expected one of "
                         "'gelu', 'relu', 'tanh', 'linear'.")
    return table[key]


def initializer(config):
    """The original's truncated-normal initializer (cut at two standard deviations)."""
    return keras.initializers.TruncatedNormal(stddev=config.initializer_range)


@contextlib.contextmanager
def name_scopes(path):
    """Enters `a`, `b`, `c` for "a/b/c" (Keras refuses '/' inside one scope name)."""
    with contextlib.ExitStack() as stack:
        for part in filter(None, path.split("/")):
            stack.enter_context(keras.name_scope(part))
        yield


class FlatDense(keras.layers.Dense):
    """`keras.layers.Dense` whose matmul flattens the leading axes into one GEMM.

    Keras' Dense multiplies a [B, S, in] input by the kernel as a broadcast batched matmul,
    which is markedly slower on CPU than one [B*S, in] x [in, out] matmul; same variables,
    same numbers.
    """

    def call(self, inputs, training=None):
        shape = tf.shape(inputs)
        flat = tf.reshape(inputs, [-1, shape[-1]])
        outputs = tf.matmul(flat, self.kernel)
        if self.use_bias:
            outputs = tf.nn.bias_add(outputs, self.bias)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return tf.reshape(outputs, tf.concat([shape[:-1], [self.units]], axis=0))


def dense(units, config, name, activation=None, use_bias=True, **kwargs):
    """A Dense layer with the original initializers (truncated normal kernel, zero bias)."""
    return FlatDense(units, activation=activation, use_bias=use_bias,
                     kernel_initializer=initializer(config), name=name, **kwargs)


def layer_norm(name="LayerNorm"):
    """The original's LayerNorm (epsilon 1e-12, last axis), always computed in float32."""
    return keras.layers.LayerNormalization(axis=-1, epsilon=1e-12, dtype="float32", name=name)


def build_under(layer, scope, input_shape):
    """Builds `layer` inside the name scopes `scope` (so its variables get the right paths)."""
    with name_scopes(scope):
        layer.build(input_shape)


# === Layers ===

class AlbertEmbeddings(keras.layers.Layer):
    """Word + segment + position embeddings, LayerNorm and dropout, all at width E.

    Scope `bert/embeddings`. Inputs: `input_ids`, `segment_ids` [B, S] int. Output
    `embedding_output` [B, S, E]. Position vectors are rows 0..S-1 of the position table (there
    is no position-id input, as in the original).
    """

    def __init__(self, config, use_one_hot_embeddings=False, name="embeddings", **kwargs):
        super().__init__(name=name, **kwargs)
        self.config = config
        self.use_one_hot_embeddings = use_one_hot_embeddings
        # === Layers ===
        self.layer_norm = layer_norm()
        self.dropout = keras.layers.Dropout(config.hidden_dropout_prob)

    def build(self, input_shape=None):
        c = self.config
        init = initializer(c)
        self.word_embeddings = self.add_weight(
            name="word_embeddings", shape=(c.vocab_size, c.embedding_size), initializer=init)
        self.token_type_embeddings = self.add_weight(
            name="token_type_embeddings", shape=(c.type_vocab_size, c.embedding_size),
            initializer=init)
        self.position_embeddings = self.add_weight(
            name="position_embeddings", shape=(c.max_position_embeddings, c.embedding_size),
            initializer=init)
        self.layer_norm.build((None, None, c.embedding_size))
        self.built = True

    def _lookup(self, table, ids):
        if self.use_one_hot_embeddings:
            # Same numbers as the gather; faster on TPUs for small tables.
            one_hot = tf.one_hot(ids, depth=tf.shape(table)[0], dtype=table.dtype)
            return tf.einsum("bsv,ve->bse", one_hot, table)
        return tf.gather(table, ids)

    def call(self, input_ids, segment_ids, training=False):
        seq_length = tf.shape(input_ids)[1]
        words = self._lookup(tf.convert_to_tensor(self.word_embeddings), input_ids)
        types = self._lookup(tf.convert_to_tensor(self.token_type_embeddings), segment_ids)
        positions = tf.convert_to_tensor(self.position_embeddings)[:seq_length]
        embeddings = words + types + positions[tf.newaxis]
        embeddings = self.layer_norm(embeddings)
        embeddings = tf.cast(embeddings, self.compute_dtype)
        return self.dropout(embeddings, training=training)


class AlbertAttention(keras.layers.Layer):
    """Multi-head self-attention with its output projection (scope `attention_1`).

    Q, K, V kernels are stored [H, N*D] and the output kernel [N*D, H], head-major (index
    n*D + d), as the original's 2-D variables. Scores get `(1 - mask) * -10000` added (not
    -inf: a fully masked row gets a constant shift and so its unmasked softmax).
    Inputs: hidden [B, S, H], attention_mask [B, 1, 1, S] int32 (1 = attend). Output [B, S, H].
    """

    def __init__(self, config, name="attention_1", **kwargs):
        super().__init__(name=name, **kwargs)
        self.config = config
        self.num_heads = config.num_attention_heads
        self.head_size = config.hidden_size // config.num_attention_heads
        # === Layers ===
        self.query = dense(config.hidden_size, config, "query")
        self.key = dense(config.hidden_size, config, "key")
        self.value = dense(config.hidden_size, config, "value")
        self.output_dense = dense(config.hidden_size, config, "dense")
        self.attention_dropout = keras.layers.Dropout(config.attention_probs_dropout_prob)
        self.output_dropout = keras.layers.Dropout(config.hidden_dropout_prob)

    def build(self, input_shape=None):
        shape = (None, None, self.config.hidden_size)
        for layer in (self.query, self.key, self.value):
            build_under(layer, "self", shape)
        build_under(self.output_dense, "output", shape)
        self.built = True

    def _split_heads(self, x):
        batch, length = tf.shape(x)[0], tf.shape(x)[1]
        return tf.reshape(x, [batch, length, self.num_heads, self.head_size])

    def call(self, hidden, attention_mask, training=False):
        # The mask stays int32 on the way in (Keras would cast a float one to the compute
        # dtype); the -10000 adder and the softmax are float32.
        attention_adder = (1.0 - tf.cast(attention_mask, tf.float32)) * -10000.0
        q = self._split_heads(self.query(hidden))
        k = self._split_heads(self.key(hidden))
        v = self._split_heads(self.value(hidden))
        scores = tf.einsum("bsnd,btnd->bnst", q, k) * (1.0 / math.sqrt(self.head_size))
        scores = tf.cast(scores, tf.float32) + attention_adder
        probs = tf.cast(tf.nn.softmax(scores, axis=-1), self.compute_dtype)
        probs = self.attention_dropout(probs, training=training)
        context = tf.einsum("bnst,btnd->bsnd", probs, v)
        batch, length = tf.shape(hidden)[0], tf.shape(hidden)[1]
        context = tf.reshape(context, [batch, length, self.config.hidden_size])
        return self.output_dropout(self.output_dense(context), training=training)


class AlbertFeedForward(keras.layers.Layer):
    """act(x W1 + b1) W2 + b2, then dropout (scope `ffn_1`).

    The original nests the output projection inside `intermediate`:
    `ffn_1/intermediate/dense` [H, I] and `ffn_1/intermediate/output/dense` [I, H].
    """

    def __init__(self, config, name="ffn_1", **kwargs):
        super().__init__(name=name, **kwargs)
        self.config = config
        # === Layers ===
        self.intermediate = dense(config.intermediate_size, config, "dense",
                                  activation=get_activation(config.hidden_act))
        self.output_dense = dense(config.hidden_size, config, "dense")
        self.dropout = keras.layers.Dropout(config.hidden_dropout_prob)

    def build(self, input_shape=None):
        c = self.config
        build_under(self.intermediate, "intermediate", (None, None, c.hidden_size))
        build_under(self.output_dense, "intermediate/output", (None, None, c.intermediate_size))
        self.built = True

    def call(self, hidden, training=False):
        return self.dropout(self.output_dense(self.intermediate(hidden)), training=training)


class AlbertSubBlock(keras.layers.Layer):
    """One post-LN transformer sub-block (scope `inner_group_<k>`).

    A = LayerNorm(attention(X) + X); out = LayerNorm_1(ffn(A) + A). [B, S, H] -> [B, S, H].
    """

    def __init__(self, config, name="inner_group_0", **kwargs):
        super().__init__(name=name, **kwargs)
        self.config = config
        # === Layers ===
        self.attention = AlbertAttention(config)
        self.attention_layer_norm = layer_norm("LayerNorm")
        self.ffn = AlbertFeedForward(config)
        self.output_layer_norm = layer_norm("LayerNorm_1")

    def build(self, input_shape=None):
        shape = (None, None, self.config.hidden_size)
        for layer in (self.attention, self.attention_layer_norm, self.ffn,
                      self.output_layer_norm):
            layer.build(shape)
        self.built = True

    def call(self, hidden, attention_mask, training=False):
        attended = self.attention(hidden, attention_mask, training=training)
        attended = tf.cast(self.attention_layer_norm(attended + hidden), self.compute_dtype)
        out = self.ffn(attended, training=training)
        return tf.cast(self.output_layer_norm(out + attended), self.compute_dtype)


class AlbertModel(keras.Model):
    """The ALBERT encoder (original scope `bert`).

    Factorized embedding (width E, then an affine E -> H projection when E != H), L layers
    whose weights are shared by group (layer l uses group `int(l / L * G)`), each layer running
    the K sub-blocks of its group, then the pooler `tanh(dense(sequence_output[:, 0]))`.

    Args:
      config: an `AlbertConfig`.
      use_one_hot_embeddings: look embeddings up with a one-hot matmul (TPU-friendly).
      name: the Keras name; keep "bert" so variable paths are the original names.

    Call inputs: a dict with `input_ids` [B, S] int, optional `input_mask` [B, S] (1 = attend;
    default all ones) and optional `segment_ids` [B, S] (default zeros). `training` enables the
    config's dropouts. `output_all_layers=True` adds `all_encoder_layers`, the L*K sub-block
    outputs (each [B, S, H]) as the original's `get_all_encoder_layers()`.

    Returns a dict: `sequence_output` [B, S, H], `pooled_output` [B, H], `embedding_output`
    [B, S, E] (before the projection), and on request `all_encoder_layers`.

    Example:
    >>> config = AlbertConfig(vocab_size=100, hidden_size=32, num_attention_heads=4,
    ...                       intermediate_size=64, num_hidden_layers=2, embedding_size=16)
    >>> model = AlbertModel(config)
    >>> out = model({"input_ids": tf.constant([[2, 10, 3]])})
    >>> out["sequence_output"].shape, out["pooled_output"].shape
    (TensorShape([1, 3, 32]), TensorShape([1, 32]))
    """

    def __init__(self, config, use_one_hot_embeddings=False, name="bert", **kwargs):
        super().__init__(name=name, **kwargs)
        if not isinstance(config, AlbertConfig):
            raise TypeError(f"AlbertModel expects an AlbertConfig, got {type(config).__name__}.")
        self.config = config.validate()
        # === Layers ===
        self.embeddings = AlbertEmbeddings(config, use_one_hot_embeddings)
        self.embedding_projection = None
        if config.embedding_size != config.hidden_size:
            self.embedding_projection = dense(config.hidden_size, config,
                                              "embedding_hidden_mapping_in")
        # `transformer/group_<g>/inner_group_<k>`: only groups some layer maps to exist, as in
        # the original (which creates variables on first use). Each sub-block is an attribute
        # of its own: tf.train.Checkpoint (training state) and SavedModel skip layers held in
        # Keras-tracked lists and dicts.
        self.group_indices = config.used_groups()
        for g in self.group_indices:
            for k in range(config.inner_group_num):
                setattr(self, _sub_block_attribute(g, k),
                        AlbertSubBlock(config, name=f"inner_group_{k}"))
        self.pooler = dense(config.hidden_size, config, "dense", activation="tanh")
        # Variables exist from construction on, so a checkpoint can be loaded before any call.
        self.build()

    def build(self, input_shape=None):
        # Keras enters this model's own name scope ("bert") around build.
        c = self.config
        self.embeddings.build()
        if self.embedding_projection is not None:
            build_under(self.embedding_projection, "encoder", (None, None, c.embedding_size))
        for g in self.group_indices:
            for block in self.group(g):
                build_under(block, f"encoder/transformer/group_{g}", None)
        build_under(self.pooler, "pooler", (None, c.hidden_size))
        self.built = True

    def group(self, group_index):
        """The sub-blocks (`inner_group_0..K-1`) of `transformer/group_<group_index>`."""
        return [getattr(self, _sub_block_attribute(group_index, k))
                for k in range(self.config.inner_group_num)]

    @property
    def word_embeddings(self):
        """The [V, E] word-embedding table (tied to the masked-LM output layer)."""
        return self.embeddings.word_embeddings

    def call(self, inputs, training=False, output_all_layers=False):
        input_ids, input_mask, segment_ids = _unpack_inputs(inputs)
        seq_length = input_ids.shape[1]
        if seq_length is not None and seq_length > self.config.max_position_embeddings:
            raise ValueError(
                f"Sequence length {seq_length} exceeds max_position_embeddings "
                f"({self.config.max_position_embeddings}) of the config.")

        embedding_output = self.embeddings(input_ids, segment_ids, training=training)
        hidden = embedding_output
        if self.embedding_projection is not None:
            hidden = self.embedding_projection(hidden)

        # [B, 1, 1, S]: broadcast over heads and query positions of the [B, N, S, S] scores.
        attention_mask = input_mask[:, tf.newaxis, tf.newaxis, :]

        all_layers = []
        for layer_index in range(self.config.num_hidden_layers):
            for block in self.group(self.config.group_index(layer_index)):
                hidden = block(hidden, attention_mask, training=training)
                all_layers.append(hidden)

        pooled = self.pooler(hidden[:, 0])
        outputs = {"sequence_output": hidden, "pooled_output": pooled,
                   "embedding_output": embedding_output}
        if output_all_layers:
            outputs["all_encoder_layers"] = all_layers
        return outputs


def _sub_block_attribute(group_index, inner_index):
    return f"group_{group_index}_inner_group_{inner_index}"


def _unpack_inputs(inputs):
    """Returns (input_ids, input_mask, segment_ids) as int32 tensors from a dict of inputs."""
    if not isinstance(inputs, dict) or "input_ids" not in inputs:
        raise ValueError("ALBERT models take a dict with at least 'input_ids' (and optionally "
                         f"'input_mask', 'segment_ids'); got {type(inputs).__name__}"
                         + (f" with keys {sorted(inputs)}" if isinstance(inputs, dict) else ""))
    input_ids = tf.cast(inputs["input_ids"], tf.int32)
    input_ids.shape.assert_has_rank(2)
    input_mask = inputs.get("input_mask")
    input_mask = tf.ones_like(input_ids) if input_mask is None else tf.cast(input_mask, tf.int32)
    segment_ids = inputs.get("segment_ids")
    segment_ids = (tf.zeros_like(input_ids) if segment_ids is None
                   else tf.cast(segment_ids, tf.int32))
    return input_ids, input_mask, segment_ids
