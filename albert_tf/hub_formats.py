"""Names and configs of ALBERT weights on other hubs: Hugging Face transformers and keras-hub.

Each hub has ONE table here, row by row: the original TF1 name (which is also our Keras
variable path, see `albert_tf/checkpoints.py`), the hub's name, and the rule that turns the
original array into the hub's array and back. `R` stands for the sub-block
`bert/encoder/transformer/group_<g>/inner_group_<k>`; its hub counterpart is in the same row
set (`HF_SUB_BLOCK`, `KERAS_HUB_SUB_BLOCK`).

Hugging Face (`modeling_albert.py`, PyTorch names; `nn.Linear` stores [out, in]):

    original name                               HF name                                  rule
    bert/embeddings/word_embeddings             albert.embeddings.word_embeddings.weight copy
    bert/encoder/embedding_hidden_mapping_in/kernel
                                                albert.encoder.embedding_hidden_mapping_in.weight
                                                                                         transpose
    R/attention_1/self/query/kernel             R'.attention.query.weight                transpose
    R/LayerNorm/gamma                           R'.attention.LayerNorm.weight            copy
    R/ffn_1/intermediate/dense/kernel           R'.ffn.weight                            transpose
    R/ffn_1/intermediate/output/dense/kernel    R'.ffn_output.weight                     transpose
    R/LayerNorm_1/gamma                         R'.full_layer_layer_norm.weight          copy
    cls/seq_relationship/output_weights [2, H]  sop_classifier.classifier.weight         copy
    output_weights [C, H]                       classifier.weight                        copy
    cls/squad/output_weights [2, H]             qa_outputs.weight                        copy
    ... (every row below)

with R' = `albert.encoder.albert_layer_groups.<g>.albert_layers.<k>`. The masked-LM decoder
of Hugging Face is tied to the word embeddings (as the original's output layer is), so
`predictions.decoder.weight` / `.decoder.bias`, when a file has them, are copies of
`albert.embeddings.word_embeddings.weight` / `predictions.bias`. A bare `AlbertModel` saves its
names without the `albert.` prefix.

keras-hub (`AlbertBackbone`, Keras 3 `model.weights.h5`): datasets `layers/<layer>/vars/<i>`
where `<layer>` is Keras' name for the i-th layer of its class in the backbone
(`dense` = the embedding projection, `dense_1` = the pooler, `transformer_encoder_<n>` = group
g, inner k with n = g * K + k, no suffix for n = 0). Attention kernels are stored per head:
query/key/value [H, N, D] and bias [N, D], the output kernel [N, D, H]; ours are [H, N*D],
[N*D] and [N*D, H], head-major, so the rule is a reshape.

Both hubs always have the embedding projection; ours (as the original) has none when
embedding_size == hidden_size, where we write the identity and accept only the identity.
"""

import dataclasses
import json

import numpy as np

from albert_tf.config import AlbertConfig
from albert_tf.errors import UserError


class ConversionError(UserError, ValueError):
    """Weights or a config that cannot be converted; the message names the file and variable."""


# =========================================================================================
# Rules: original array <-> hub array
# =========================================================================================


@dataclasses.dataclass(frozen=True)
class Rule:
    """How one original array becomes the hub's array (`to_hub`) and back (`to_original`).

    Both are exact (transposes and reshapes only), so a round trip is bit-exact. `to_hub`
    takes the config for the head count N and head size D; `hub_shape(shape, config)` is the
    hub's shape of an original shape (for error messages in the hub's own layout).
    """

    name: str
    to_hub: callable
    to_original: callable
    hub_shape: callable = lambda shape, c: tuple(shape)


def _heads(config):
    return config.num_attention_heads, config.hidden_size // config.num_attention_heads


COPY = Rule("copy", lambda a, c: a, lambda a: a)
TRANSPOSE = Rule("transpose", lambda a, c: np.ascontiguousarray(a.T),
                 lambda a: np.ascontiguousarray(a.T), lambda shape, c: tuple(shape)[::-1])
# [H, N*D] <-> [H, N, D]: query, key, value kernels.
SPLIT_HEADS = Rule("[H, N*D] <-> [H, N, D]",
                   lambda a, c: a.reshape(a.shape[0], *_heads(c)),
                   lambda a: a.reshape(a.shape[0], -1),
                   lambda shape, c: (shape[0], *_heads(c)))
# [N*D] <-> [N, D]: query, key, value biases.
SPLIT_HEADS_BIAS = Rule("[N*D] <-> [N, D]", lambda a, c: a.reshape(*_heads(c)),
                        lambda a: a.reshape(-1), lambda shape, c: _heads(c))
# [N*D, H] <-> [N, D, H]: the attention output kernel.
MERGE_HEADS = Rule("[N*D, H] <-> [N, D, H]",
                   lambda a, c: a.reshape(*_heads(c), a.shape[-1]),
                   lambda a: a.reshape(-1, a.shape[-1]),
                   lambda shape, c: (*_heads(c), shape[-1]))

# The sub-block prefix in original names; {g} and {k} are filled in per sub-block.
ORIGINAL_SUB_BLOCK = "bert/encoder/transformer/group_{g}/inner_group_{k}"

# =========================================================================================
# Hugging Face transformers
# =========================================================================================

HF_SUB_BLOCK = "albert.encoder.albert_layer_groups.{g}.albert_layers.{k}"
HF_BASE_PREFIX = "albert."

# (original name, Hugging Face name, rule). "R" / "R'" are the sub-block prefixes.
HF_TABLE = (
    ("bert/embeddings/word_embeddings", "albert.embeddings.word_embeddings.weight", COPY),
    ("bert/embeddings/token_type_embeddings", "albert.embeddings.token_type_embeddings.weight",
     COPY),
    ("bert/embeddings/position_embeddings", "albert.embeddings.position_embeddings.weight",
     COPY),
    ("bert/embeddings/LayerNorm/gamma", "albert.embeddings.LayerNorm.weight", COPY),
    ("bert/embeddings/LayerNorm/beta", "albert.embeddings.LayerNorm.bias", COPY),
    ("bert/encoder/embedding_hidden_mapping_in/kernel",
     "albert.encoder.embedding_hidden_mapping_in.weight", TRANSPOSE),
    ("bert/encoder/embedding_hidden_mapping_in/bias",
     "albert.encoder.embedding_hidden_mapping_in.bias", COPY),
    ("R/attention_1/self/query/kernel", "R'.attention.query.weight", TRANSPOSE),
    ("R/attention_1/self/query/bias", "R'.attention.query.bias", COPY),
    ("R/attention_1/self/key/kernel", "R'.attention.key.weight", TRANSPOSE),
    ("R/attention_1/self/key/bias", "R'.attention.key.bias", COPY),
    ("R/attention_1/self/value/kernel", "R'.attention.value.weight", TRANSPOSE),
    ("R/attention_1/self/value/bias", "R'.attention.value.bias", COPY),
    ("R/attention_1/output/dense/kernel", "R'.attention.dense.weight", TRANSPOSE),
    ("R/attention_1/output/dense/bias", "R'.attention.dense.bias", COPY),
    ("R/LayerNorm/gamma", "R'.attention.LayerNorm.weight", COPY),
    ("R/LayerNorm/beta", "R'.attention.LayerNorm.bias", COPY),
    ("R/ffn_1/intermediate/dense/kernel", "R'.ffn.weight", TRANSPOSE),
    ("R/ffn_1/intermediate/dense/bias", "R'.ffn.bias", COPY),
    ("R/ffn_1/intermediate/output/dense/kernel", "R'.ffn_output.weight", TRANSPOSE),
    ("R/ffn_1/intermediate/output/dense/bias", "R'.ffn_output.bias", COPY),
    ("R/LayerNorm_1/gamma", "R'.full_layer_layer_norm.weight", COPY),
    ("R/LayerNorm_1/beta", "R'.full_layer_layer_norm.bias", COPY),
    ("bert/pooler/dense/kernel", "albert.pooler.weight", TRANSPOSE),
    ("bert/pooler/dense/bias", "albert.pooler.bias", COPY),
    # AlbertForPreTraining / AlbertForMaskedLM
    ("cls/predictions/transform/dense/kernel", "predictions.dense.weight", TRANSPOSE),
    ("cls/predictions/transform/dense/bias", "predictions.dense.bias", COPY),
    ("cls/predictions/transform/LayerNorm/gamma", "predictions.LayerNorm.weight", COPY),
    ("cls/predictions/transform/LayerNorm/beta", "predictions.LayerNorm.bias", COPY),
    ("cls/predictions/output_bias", "predictions.bias", COPY),
    # AlbertForPreTraining: both store [2, H] ([out, in]).
    ("cls/seq_relationship/output_weights", "sop_classifier.classifier.weight", COPY),
    ("cls/seq_relationship/output_bias", "sop_classifier.classifier.bias", COPY),
    # AlbertForSequenceClassification ([C, H]) and AlbertForMultipleChoice ([1, H]).
    ("output_weights", "classifier.weight", COPY),
    ("output_bias", "classifier.bias", COPY),
    # AlbertForQuestionAnswering: row 0 start, row 1 end in both.
    ("cls/squad/output_weights", "qa_outputs.weight", COPY),
    ("cls/squad/output_bias", "qa_outputs.bias", COPY),
)

# Names Hugging Face files may carry that are copies of another entry (tied weights).
HF_TIED = {
    "predictions.decoder.weight": "albert.embeddings.word_embeddings.weight",
    "predictions.decoder.bias": "predictions.bias",
}

# Our heads <-> Hugging Face architectures.
HF_ARCHITECTURES = {
    "none": "AlbertModel",
    "pretraining": "AlbertForPreTraining",
    "masked_lm": "AlbertForMaskedLM",
    "classifier": "AlbertForSequenceClassification",
    "multiple_choice": "AlbertForMultipleChoice",
    "squad_v1": "AlbertForQuestionAnswering",
}
HF_HEADS = {architecture: head for head, architecture in HF_ARCHITECTURES.items()}

# Our hidden_act <-> Hugging Face's. Hugging Face "gelu" is the erf GELU, which the original
# never used; its "gelu_new" is the original's tanh approximation.
_HF_ACTIVATIONS = {"gelu": "gelu_new", "relu": "relu", "tanh": "tanh", "linear": "linear"}
_FROM_HF_ACTIVATIONS = {"gelu_new": "gelu", "gelu_pytorch_tanh": "gelu", "relu": "relu",
                        "tanh": "tanh", "linear": "linear"}


def expand_table(table, sub_block_original, sub_block_hub, config, groups=None):
    """The rows of a table for one config: [(original name, hub name, rule)].

    Rows starting with "R" are repeated for every used group g and inner group k (or for
    `groups`, an iterable of group indices, when given); the embedding projection rows are
    kept only when embedding_size != hidden_size.
    """
    groups = config.used_groups() if groups is None else groups
    rows = []
    for original, hub, rule in table:
        if original.startswith("R/"):
            for g in groups:
                for k in range(config.inner_group_num):
                    rows.append((original.replace("R", ORIGINAL_SUB_BLOCK.format(g=g, k=k), 1),
                                 hub.replace("R'", sub_block_hub(g, k), 1), rule))
        elif "embedding_hidden_mapping_in" in original:
            if config.embedding_size != config.hidden_size:
                rows.append((original, hub, rule))
        else:
            rows.append((original, hub, rule))
    return rows


def hf_rows(config):
    """`HF_TABLE` expanded for `config` (every group Hugging Face creates: 0..G-1)."""
    return expand_table(HF_TABLE, ORIGINAL_SUB_BLOCK,
                        lambda g, k: HF_SUB_BLOCK.format(g=g, k=k), config,
                        groups=range(config.num_hidden_groups))


def hf_projection_names():
    """(kernel, bias) Hugging Face names of the embedding projection."""
    return ("albert.encoder.embedding_hidden_mapping_in.weight",
            "albert.encoder.embedding_hidden_mapping_in.bias")


def config_from_hf(data, path="config.json"):
    """An `AlbertConfig` from a Hugging Face `config.json` (a dict); `path` names it in errors.

    Raises ConversionError for a model type other than "albert", a missing key, or an
    activation the original has no form of (Hugging Face "gelu" is the erf GELU).
    """
    if data.get("model_type", "albert") != "albert":
        raise ConversionError(f"{path}: model_type is {data.get('model_type')!r}, not 'albert'.")
    act = data.get("hidden_act", "gelu_new")
    if act not in _FROM_HF_ACTIVATIONS:
        hint = (" Google's released ALBERT weights were trained with the tanh GELU: if these "
                "are they, set \"hidden_act\": \"gelu_new\" in the file." if act == "gelu"
                else "")
        raise ConversionError(
            f"{path}: hidden_act {act!r} has no counterpart in ALBERT (expected one of "
            f"{sorted(_FROM_HF_ACTIVATIONS)}; Hugging Face 'gelu' is the exact erf GELU, the "
            f"original's is 'gelu_new').{hint}")
    eps = data.get("layer_norm_eps", 1e-12)
    if abs(eps - 1e-12) > 1e-15:
        raise ConversionError(f"{path}: layer_norm_eps is {eps}; ALBERT's LayerNorm uses 1e-12.")
    if data.get("position_embedding_type", "absolute") != "absolute":
        raise ConversionError(f"{path}: position_embedding_type "
                              f"{data['position_embedding_type']!r} is not ALBERT's 'absolute'.")
    try:
        values = {name: data[name] for name in (
            "vocab_size", "embedding_size", "hidden_size", "num_hidden_layers",
            "num_attention_heads", "intermediate_size")}
    except KeyError as error:
        raise ConversionError(f"{path}: no {error.args[0]!r} (a Hugging Face ALBERT config "
                              "has it).") from None
    return AlbertConfig(
        **values,
        num_hidden_groups=data.get("num_hidden_groups", 1),
        inner_group_num=data.get("inner_group_num", 1),
        hidden_act=_FROM_HF_ACTIVATIONS[act],
        hidden_dropout_prob=data.get("hidden_dropout_prob", 0.0),
        attention_probs_dropout_prob=data.get("attention_probs_dropout_prob", 0.0),
        max_position_embeddings=data.get("max_position_embeddings", 512),
        type_vocab_size=data.get("type_vocab_size", 2),
        initializer_range=data.get("initializer_range", 0.02))


def hf_labels(data):
    """The class names of a Hugging Face config's `id2label`, in id order (None if absent)."""
    id2label = data.get("id2label")
    if not id2label:
        return None
    return [str(id2label[key]) for key in sorted(id2label, key=int)]


def config_to_hf(config, head, num_labels=None, labels=None):
    """A Hugging Face `config.json` dict for `config` with `head` (see `HF_ARCHITECTURES`).

    Classifiers get `num_labels` through `id2label`/`label2id` (names from `labels`, else
    "LABEL_<i>"), and `problem_type` "regression" when there is one output.
    """
    if head not in HF_ARCHITECTURES:
        raise ConversionError(f"Hugging Face has no ALBERT model for the head {head!r}; it has "
                              f"{sorted(HF_ARCHITECTURES)}.")
    act = config.hidden_act if config.hidden_act else "linear"
    if str(act).lower() not in _HF_ACTIVATIONS:
        raise ConversionError(f"hidden_act {act!r} has no Hugging Face name.")
    data = {
        "architectures": [HF_ARCHITECTURES[head]],
        "model_type": "albert",
        "vocab_size": config.vocab_size,
        "embedding_size": config.embedding_size,
        "hidden_size": config.hidden_size,
        "num_hidden_layers": config.num_hidden_layers,
        "num_hidden_groups": config.num_hidden_groups,
        "num_attention_heads": config.num_attention_heads,
        "intermediate_size": config.intermediate_size,
        "inner_group_num": config.inner_group_num,
        "hidden_act": _HF_ACTIVATIONS[str(act).lower()],
        "hidden_dropout_prob": config.hidden_dropout_prob,
        "attention_probs_dropout_prob": config.attention_probs_dropout_prob,
        "max_position_embeddings": config.max_position_embeddings,
        "type_vocab_size": config.type_vocab_size,
        "initializer_range": config.initializer_range,
        "layer_norm_eps": 1e-12,
        "classifier_dropout_prob": 0.1,
        "position_embedding_type": "absolute",
        "pad_token_id": 0,
        "bos_token_id": 2,
        "eos_token_id": 3,
        "torch_dtype": "float32",
    }
    if head == "classifier":
        if labels is None:
            labels = [f"LABEL_{i}" for i in range(num_labels)]
        data["id2label"] = {str(i): str(label) for i, label in enumerate(labels)}
        data["label2id"] = {str(label): i for i, label in enumerate(labels)}
        data["problem_type"] = ("regression" if len(labels) == 1
                                else "single_label_classification")
    return data


def hf_tokenizer_config(do_lower_case, keep_accents=False, remove_space=True):
    """`tokenizer_config.json` of a Hugging Face `AlbertTokenizer` folder with `spiece.model`."""
    return {
        "tokenizer_class": "AlbertTokenizer",
        "do_lower_case": bool(do_lower_case),
        "keep_accents": bool(keep_accents),
        "remove_space": bool(remove_space),
        "bos_token": "[CLS]", "eos_token": "[SEP]", "unk_token": "<unk>", "sep_token": "[SEP]",
        "pad_token": "<pad>", "cls_token": "[CLS]",
        # AlbertTokenizer makes a plain-string mask token lstrip=True itself.
        "mask_token": "[MASK]",
        "model_max_length": 512,
    }


# =========================================================================================
# keras-hub
# =========================================================================================

_KH_ATTENTION = "{T}/_self_attention_layer"
# (original name, keras-hub h5 dataset, rule); "R" / "{T}" are the sub-block prefixes.
KERAS_HUB_TABLE = (
    ("bert/embeddings/word_embeddings", "layers/reversible_embedding/vars/0", COPY),
    ("bert/embeddings/token_type_embeddings", "layers/embedding/vars/0", COPY),
    ("bert/embeddings/position_embeddings", "layers/position_embedding/vars/0", COPY),
    ("bert/embeddings/LayerNorm/gamma", "layers/layer_normalization/vars/0", COPY),
    ("bert/embeddings/LayerNorm/beta", "layers/layer_normalization/vars/1", COPY),
    ("bert/encoder/embedding_hidden_mapping_in/kernel", "layers/dense/vars/0", COPY),
    ("bert/encoder/embedding_hidden_mapping_in/bias", "layers/dense/vars/1", COPY),
    ("R/attention_1/self/query/kernel", _KH_ATTENTION + "/query_dense/vars/0", SPLIT_HEADS),
    ("R/attention_1/self/query/bias", _KH_ATTENTION + "/query_dense/vars/1", SPLIT_HEADS_BIAS),
    ("R/attention_1/self/key/kernel", _KH_ATTENTION + "/key_dense/vars/0", SPLIT_HEADS),
    ("R/attention_1/self/key/bias", _KH_ATTENTION + "/key_dense/vars/1", SPLIT_HEADS_BIAS),
    ("R/attention_1/self/value/kernel", _KH_ATTENTION + "/value_dense/vars/0", SPLIT_HEADS),
    ("R/attention_1/self/value/bias", _KH_ATTENTION + "/value_dense/vars/1", SPLIT_HEADS_BIAS),
    ("R/attention_1/output/dense/kernel", _KH_ATTENTION + "/output_dense/vars/0", MERGE_HEADS),
    ("R/attention_1/output/dense/bias", _KH_ATTENTION + "/output_dense/vars/1", COPY),
    ("R/LayerNorm/gamma", "{T}/_self_attention_layer_norm/vars/0", COPY),
    ("R/LayerNorm/beta", "{T}/_self_attention_layer_norm/vars/1", COPY),
    ("R/ffn_1/intermediate/dense/kernel", "{T}/_feedforward_intermediate_dense/vars/0", COPY),
    ("R/ffn_1/intermediate/dense/bias", "{T}/_feedforward_intermediate_dense/vars/1", COPY),
    ("R/ffn_1/intermediate/output/dense/kernel", "{T}/_feedforward_output_dense/vars/0", COPY),
    ("R/ffn_1/intermediate/output/dense/bias", "{T}/_feedforward_output_dense/vars/1", COPY),
    ("R/LayerNorm_1/gamma", "{T}/_feedforward_layer_norm/vars/0", COPY),
    ("R/LayerNorm_1/beta", "{T}/_feedforward_layer_norm/vars/1", COPY),
    ("bert/pooler/dense/kernel", "layers/dense_1/vars/0", COPY),
    ("bert/pooler/dense/bias", "layers/dense_1/vars/1", COPY),
)


def keras_hub_encoder_layer(config, g, k):
    """The h5 group of sub-block (g, k): `layers/transformer_encoder[_<g*K+k>]`."""
    n = g * config.inner_group_num + k
    return "layers/transformer_encoder" + (f"_{n}" if n else "")


def keras_hub_rows(config):
    """`KERAS_HUB_TABLE` expanded for `config`, with the projection rows always present."""
    table = [(original, hub.replace("{T}", "R'"), rule) for original, hub, rule in
             KERAS_HUB_TABLE]
    rows = expand_table(table, ORIGINAL_SUB_BLOCK,
                        lambda g, k: keras_hub_encoder_layer(config, g, k), config,
                        groups=range(config.num_hidden_groups))
    if config.embedding_size == config.hidden_size:
        rows += [row for row in table if "embedding_hidden_mapping_in" in row[0]]
    return rows


def check_keras_hub_layout(config, what="--to=keras_hub"):
    """Raises ConversionError when keras-hub cannot express the layer-to-group layout.

    keras-hub runs layers in G contiguous blocks of L / G, so L must be a multiple of G (the
    original's `int(l / L * G)` is then the same mapping).
    """
    if config.num_hidden_layers % config.num_hidden_groups:
        raise ConversionError(
            f"{what}: keras-hub's AlbertBackbone needs num_hidden_layers "
            f"({config.num_hidden_layers}) to be a multiple of num_hidden_groups "
            f"({config.num_hidden_groups}).")


def config_from_keras_hub(data, path="config.json"):
    """An `AlbertConfig` from a keras-hub preset's `config.json` (a dict).

    keras-hub's ALBERT uses the tanh GELU (`gelu_approximate`), LayerNorm epsilon 1e-12 and
    one dropout rate for both dropouts; it stores no initializer range (0.02 is its default).
    """
    if data.get("class_name") != "AlbertBackbone":
        raise ConversionError(f"{path}: class_name is {data.get('class_name')!r}; expected "
                              "'AlbertBackbone' (a keras-hub ALBERT backbone preset).")
    c = data.get("config", {})
    try:
        return AlbertConfig(
            vocab_size=c["vocabulary_size"], embedding_size=c["embedding_dim"],
            hidden_size=c["hidden_dim"], num_hidden_layers=c["num_layers"],
            num_hidden_groups=c.get("num_groups", 1), num_attention_heads=c["num_heads"],
            intermediate_size=c["intermediate_dim"],
            inner_group_num=c.get("num_inner_repetitions", 1), hidden_act="gelu",
            hidden_dropout_prob=c.get("dropout", 0.0),
            attention_probs_dropout_prob=c.get("dropout", 0.0),
            max_position_embeddings=c.get("max_sequence_length", 512),
            type_vocab_size=c.get("num_segments", 2), initializer_range=0.02)
    except KeyError as error:
        raise ConversionError(f"{path}: its \"config\" has no {error.args[0]!r} (a keras-hub "
                              "AlbertBackbone config has it).") from None


def config_to_keras_hub(config):
    """The `config.json` dict of a keras-hub `AlbertBackbone` preset for `config`."""
    check_keras_hub_layout(config)
    if str(config.hidden_act).lower() != "gelu":
        raise ConversionError(f"--to=keras_hub: keras-hub's ALBERT uses the GELU; this model's "
                              f"hidden_act is {config.hidden_act!r}.")
    if config.hidden_dropout_prob != config.attention_probs_dropout_prob:
        raise ConversionError(
            f"--to=keras_hub: keras-hub's ALBERT has one dropout rate; this config has "
            f"hidden_dropout_prob {config.hidden_dropout_prob} and "
            f"attention_probs_dropout_prob {config.attention_probs_dropout_prob}.")
    return {
        "module": "keras_hub.src.models.albert.albert_backbone",
        "class_name": "AlbertBackbone",
        "config": {
            "name": "albert_backbone",
            "trainable": True,
            "dtype": {"module": "keras", "class_name": "DTypePolicy",
                      "config": {"name": "float32"}, "registered_name": None},
            "vocabulary_size": config.vocab_size,
            "num_layers": config.num_hidden_layers,
            "num_heads": config.num_attention_heads,
            "num_groups": config.num_hidden_groups,
            "num_inner_repetitions": config.inner_group_num,
            "embedding_dim": config.embedding_size,
            "hidden_dim": config.hidden_size,
            "intermediate_dim": config.intermediate_size,
            "dropout": config.hidden_dropout_prob,
            "max_sequence_length": config.max_position_embeddings,
            "num_segments": config.type_vocab_size,
        },
        "registered_name": "keras_hub>AlbertBackbone",
    }


def keras_hub_tokenizer_config():
    """The `tokenizer.json` of a keras-hub `AlbertTokenizer` preset (vocabulary in assets)."""
    return {
        "module": "keras_hub.src.models.albert.albert_tokenizer",
        "class_name": "AlbertTokenizer",
        "config": {
            "name": "albert_tokenizer", "trainable": True,
            "dtype": {"module": "keras", "class_name": "DTypePolicy",
                      "config": {"name": "int32"}, "registered_name": None},
            "config_file": "tokenizer.json", "proto": None, "sequence_length": None,
            "add_bos": False, "add_eos": False,
        },
        "registered_name": "keras_hub>AlbertTokenizer",
    }


def keras_hub_h5_groups(config):
    """[(group path, its `vars` name attribute)] of an AlbertBackbone `model.weights.h5`, in
    the order Keras writes them; layers without weights have their (empty) groups too."""
    groups = [("layers/input_layer", "token_ids"), ("layers/input_layer_1", "segment_ids"),
              ("layers/input_layer_2", "padding_mask"),
              ("layers/reversible_embedding", "token_embedding"),
              ("layers/position_embedding", "position_embedding"),
              ("layers/embedding", "segment_embedding"), ("layers/add", "embeddings_add"),
              ("layers/layer_normalization", "embeddings_layer_norm"),
              ("layers/dropout", "embeddings_dropout"),
              ("layers/dense", "embedding_projection")]
    sub_layers = (("_self_attention_layer", "self_attention_layer"),
                  ("_self_attention_layer/query_dense", "query"),
                  ("_self_attention_layer/key_dense", "key"),
                  ("_self_attention_layer/value_dense", "value"),
                  ("_self_attention_layer/output_dense", "attention_output"),
                  ("_self_attention_layer/_softmax", "softmax"),
                  ("_self_attention_layer/_dropout_layer", "dropout"),
                  ("_self_attention_layer_norm", "self_attention_layer_norm"),
                  ("_self_attention_dropout", "self_attention_dropout"),
                  ("_feedforward_intermediate_dense", "feedforward_intermediate_dense"),
                  ("_feedforward_output_dense", "feedforward_output_dense"),
                  ("_feedforward_layer_norm", "feedforward_layer_norm"),
                  ("_feedforward_dropout", "feedforward_dropout"))
    for g in range(config.num_hidden_groups):
        for k in range(config.inner_group_num):
            layer = keras_hub_encoder_layer(config, g, k)
            groups.append((layer, f"group_{g}_inner_layer_{k}"))
            groups.extend((f"{layer}/{sub}", name) for sub, name in sub_layers)
    groups.append(("layers/dense_1", "pooled_dense"))
    return groups


def keras_hub_metadata(config):
    """`metadata.json` of a preset (keras-hub reads the versions and the parameter count)."""
    return {"keras_version": "3", "keras_hub_version": "0.32.0",
            "parameter_count": int(config.encoder_parameter_count()
                                   + (config.embedding_size * config.hidden_size
                                      + config.hidden_size
                                      if config.embedding_size == config.hidden_size else 0)),
            "tasks": []}


def dumps(data, indent=2):
    """JSON text as the hubs write their config files (indent, trailing newline)."""
    return json.dumps(data, indent=indent) + "\n"
