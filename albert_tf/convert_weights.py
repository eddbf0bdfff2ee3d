"""ALBERT weights in original names, whatever format they were read from: `Weights`, the
variables each head has (`original_shapes`), and the checks every conversion passes
(`check_weights`: shapes against the config, the head, nothing missing from the encoder).

Part of `albert_tf.convert`, which re-exports these names.
"""

import dataclasses

import tensorflow as tf

from albert_tf import files
from albert_tf import hub_formats as hub
from albert_tf.config import AlbertConfig
from albert_tf.hub_formats import ConversionError

HEADS = ("none", "pretraining", "masked_lm", "classifier", "multiple_choice", "squad_v1",
         "squad_v2")
TARGETS = ("original", "hf", "keras_hub")
FORMATS = ("original", "tfhub_module", "albert_tf_export", "hf", "keras_hub")
CHECKPOINT_NAME = "model.ckpt-best"
SPM_NAME = "spiece.model"
KERAS_HUB_SPM = "assets/tokenizer/vocabulary.spm"

# =========================================================================================
# Weights: arrays in original names plus what travels with them
# =========================================================================================


@dataclasses.dataclass
class Weights:
    """ALBERT weights read from any format, in original names.

    Attributes:
      config: the `AlbertConfig`.
      values: {original name: float32 np.ndarray in the original's layout}.
      head: one of `HEADS`.
      source: the path read; source_format: one of `FORMATS`.
      names: {original name: the source's own name for it}.
      unused: the source's names that no original name took (sorted).
      labels: a classifier's class names (None: unnamed).
      spm_model: the SentencePiece model's bytes (None: unknown).
      do_lower_case, keep_accents, remove_space: tokenizer settings (None: unknown).
      rows: {original name: (the source format's name, `hub_formats.Rule`)} for every
        original name the source's format has a row for, present or not (hub sources).
      source_shapes: {original name: the array's shape in the source's own layout}.
      input: the path given to `read_weights`.
    """

    config: AlbertConfig
    values: dict
    head: str
    source: str
    source_format: str
    names: dict = dataclasses.field(default_factory=dict)
    unused: list = dataclasses.field(default_factory=list)
    labels: list = None
    spm_model: bytes = None
    do_lower_case: bool = None
    keep_accents: bool = None
    remove_space: bool = None
    rows: dict = dataclasses.field(default_factory=dict)
    source_shapes: dict = dataclasses.field(default_factory=dict)
    input: str = None

    @property
    def num_labels(self):
        """Rows of `output_weights` (classifier / multiple choice), else None."""
        weights = self.values.get("output_weights")
        return None if weights is None else int(weights.shape[0])


def original_shapes(config, head, num_labels=None):
    """{original name: shape} of the variables of `head` on `config`, in the original's order.

    The encoder's names (embeddings, the projection when E != H, used groups, pooler) then the
    head's (see `albert_tf/checkpoints.py`). `num_labels` is the classifier's C.
    """
    c = config
    V, E, H, I = c.vocab_size, c.embedding_size, c.hidden_size, c.intermediate_size
    shapes = {
        "bert/embeddings/word_embeddings": (V, E),
        "bert/embeddings/token_type_embeddings": (c.type_vocab_size, E),
        "bert/embeddings/position_embeddings": (c.max_position_embeddings, E),
        "bert/embeddings/LayerNorm/beta": (E,), "bert/embeddings/LayerNorm/gamma": (E,),
    }
    if E != H:
        shapes["bert/encoder/embedding_hidden_mapping_in/kernel"] = (E, H)
        shapes["bert/encoder/embedding_hidden_mapping_in/bias"] = (H,)
    block = {"attention_1/self/query/kernel": (H, H), "attention_1/self/query/bias": (H,),
             "attention_1/self/key/kernel": (H, H), "attention_1/self/key/bias": (H,),
             "attention_1/self/value/kernel": (H, H), "attention_1/self/value/bias": (H,),
             "attention_1/output/dense/kernel": (H, H), "attention_1/output/dense/bias": (H,),
             "LayerNorm/beta": (H,), "LayerNorm/gamma": (H,),
             "ffn_1/intermediate/dense/kernel": (H, I), "ffn_1/intermediate/dense/bias": (I,),
             "ffn_1/intermediate/output/dense/kernel": (I, H),
             "ffn_1/intermediate/output/dense/bias": (H,),
             "LayerNorm_1/beta": (H,), "LayerNorm_1/gamma": (H,)}
    for g in c.used_groups():
        for k in range(c.inner_group_num):
            prefix = hub.ORIGINAL_SUB_BLOCK.format(g=g, k=k)
            shapes.update({f"{prefix}/{name}": shape for name, shape in block.items()})
    shapes["bert/pooler/dense/kernel"] = (H, H)
    shapes["bert/pooler/dense/bias"] = (H,)
    if head in ("pretraining", "masked_lm"):
        shapes.update({"cls/predictions/transform/dense/kernel": (H, E),
                       "cls/predictions/transform/dense/bias": (E,),
                       "cls/predictions/transform/LayerNorm/beta": (E,),
                       "cls/predictions/transform/LayerNorm/gamma": (E,),
                       "cls/predictions/output_bias": (V,)})
    if head == "pretraining":
        shapes.update({"cls/seq_relationship/output_weights": (2, H),
                       "cls/seq_relationship/output_bias": (2,)})
    if head in ("classifier", "multiple_choice"):
        C = 1 if head == "multiple_choice" else num_labels
        shapes.update({"output_weights": (C, H), "output_bias": (C,)})
    if head == "squad_v1":
        shapes.update({"cls/squad/output_weights": (2, H), "cls/squad/output_bias": (2,)})
    if head == "squad_v2":
        shapes.update({"start_logits/dense/kernel": (H, 1), "start_logits/dense/bias": (1,),
                       "end_logits/dense_0/kernel": (2 * H, H), "end_logits/dense_0/bias": (H,),
                       "end_logits/LayerNorm/beta": (H,), "end_logits/LayerNorm/gamma": (H,),
                       "end_logits/dense_1/kernel": (H, 1), "end_logits/dense_1/bias": (1,),
                       "answer_class/dense_0/kernel": (2 * H, H),
                       "answer_class/dense_0/bias": (H,),
                       "answer_class/dense_1/kernel": (H, 1)})
    return shapes


def head_of_names(names, where, head="auto"):
    """The head of a set of original names (or `head` checked against them).

    `output_weights` [1, H] is a regression classifier or a multiple-choice head, which the
    names cannot tell apart: it is read as "classifier" unless `head` says "multiple_choice".
    """
    names = set(names)
    if "start_logits/dense/kernel" in names:
        found = "squad_v2"
    elif "cls/squad/output_weights" in names:
        found = "squad_v1"
    elif "output_weights" in names:
        found = "multiple_choice" if head == "multiple_choice" else "classifier"
    elif "cls/predictions/output_bias" in names:
        found = ("pretraining" if "cls/seq_relationship/output_weights" in names
                 else "masked_lm")
    else:
        found = "none"
    if head in ("auto", None, found, "none"):
        return found if head in ("auto", None) else head
    if head == "masked_lm" and found == "pretraining":
        return head
    raise ConversionError(f"--head={head}, but {where} holds the {found!r} head.")


def _shape_error(weights, name, expected, requested_head):
    """The ConversionError of an array whose shape is not `expected` (an original shape),
    both shapes in the source's own layout (Hugging Face's [out, in], keras-hub's per-head
    kernels) and named as the source names it."""
    stored = weights.names.get(name, name)
    found = weights.source_shapes.get(name, weights.values[name].shape)
    rule = weights.rows.get(name, (None, None))[1]
    wanted = rule.hub_shape(expected, weights.config) if rule else expected
    where = f" (as {name})" if stored != name else ""
    if not name.startswith("bert/") and requested_head not in ("auto", None):
        return ConversionError(
            f"{weights.source}: {stored} has shape {list(found)}, but --head={requested_head} "
            f"needs {list(wanted)}{where}. Is it the source's head? --head=auto reads the "
            "head the source has.")
    return ConversionError(
        f"{weights.source}: {stored} has shape {list(found)}, but its config says "
        f"{list(wanted)}{where}. Is the config the one of these weights?")


def check_weights(weights, head="auto"):
    """Checks the arrays against the config (every shape, nothing missing from the encoder)
    and narrows them to `head`; returns `weights`."""
    requested = head
    head = head_of_names(weights.values, weights.source, head) if head != weights.head else head
    if head == "classifier" and weights.head == "multiple_choice":
        head = "multiple_choice"
    expected = original_shapes(weights.config, head, weights.num_labels)
    for name, array in weights.values.items():
        if name in expected and tuple(array.shape) != tuple(expected[name]):
            raise _shape_error(weights, name, expected[name], requested)
    dropped = sorted(name for name in weights.values if name not in expected)
    if dropped and head != "none" and not all(name.startswith("bert/") for name in dropped):
        raise ConversionError(f"{weights.source}: {weights.names.get(dropped[0], dropped[0])} "
                              f"is not a variable of the {head!r} head.")
    if dropped:
        tf.get_logger().info("Not converted (not part of head %r): %s", head,
                             ", ".join(weights.names.get(n, n) for n in dropped))
    weights.values = {name: weights.values[name] for name in expected if name in weights.values}
    missing = [name for name in expected if name not in weights.values]
    encoder_missing = [name for name in missing if name.startswith("bert/")
                       and not name.startswith("bert/pooler/")]
    if encoder_missing:
        raise ConversionError(f"{weights.source}: no {_source_name(weights, encoder_missing[0])} "
                              f"(nor {len(encoder_missing) - 1} other encoder variables); the "
                              "config does not match these weights or the file is incomplete.")
    if missing:
        tf.get_logger().warning("%s lacks %s (left out of the conversion).", weights.source,
                                ", ".join(_source_name(weights, name) for name in missing))
    weights.head = head
    return weights


def _source_name(weights, name):
    """`name` (an original name) as the source's format names it, with the original name."""
    stored = weights.rows.get(name, (name,))[0]
    return name if stored == name else f"{stored} ({name})"


def config_from_file(path):
    """The `AlbertConfig` of the JSON file `path`; ConversionError naming a missing or bad file."""
    if not tf.io.gfile.exists(path):
        raise ConversionError(f"The ALBERT config file {path} does not exist.")
    try:
        return AlbertConfig.from_dict(files.read_json(path, "ALBERT config file"))
    except TypeError as error:
        raise ConversionError(f"The ALBERT config file {path}: {error}") from None

