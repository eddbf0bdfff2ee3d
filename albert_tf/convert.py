r"""ALBERT weights between the original format, Hugging Face, keras-hub and TF-Hub modules.

    python -m albert_tf.convert --input=PATH --output=DIR --to=original|hf|keras_hub \
      [--spm_model_file=...] [--do_lower_case] [--head=auto] [--albert_config_file=...]

The input format is detected (and logged):

    format          what PATH is
    original        an original TF1 checkpoint: a prefix (`model.ckpt-best`) or its folder,
                    with or without heads, `module/` names of TF-Hub exports accepted; the
                    config is `albert_config.json` beside it or --albert_config_file
    tfhub_module    a TF-Hub module folder in the original's format (`tfhub_module.pb` or
                    `saved_model.pb`, `variables/variables.*`, `assets/*.model`)
    albert_tf_export  a SavedModel written by `python -m albert_tf.export`
    hf              a Hugging Face folder: `config.json` and `model.safetensors` (or a sharded
                    `model.safetensors.index.json`), `tf_model.h5`, or `pytorch_model.bin`
                    (needs torch); `spiece.model` and `tokenizer_config.json` when present
    keras_hub       a keras-hub preset folder: `config.json` (AlbertBackbone),
                    `model.weights.h5`, `assets/tokenizer/vocabulary.spm`

Outputs (written into a temporary folder beside DIR and moved into place when complete):
- `--to=original`: `albert_config.json`, `model.ckpt-best.{index,data-00000-of-00001}`, a
  `checkpoint` file, and `spiece.model` when a SentencePiece model is known; what
  `checkpoints.load_original_checkpoint(model, DIR)` and `--init_checkpoint=DIR` read. The
  head (`"head"`) and a classifier's class names (`"labels"`) are kept in the config file, as
  extra keys the original ignores.
- `--to=hf`: `config.json` (`model_type`, `architectures`, labels), `model.safetensors`
  (Hugging Face names), `spiece.model`, `tokenizer_config.json`, `special_tokens_map.json`:
  what `transformers.Albert*.from_pretrained(DIR)` reads.
- `--to=keras_hub`: `config.json`, `metadata.json`, `model.weights.h5`, and with a
  SentencePiece model `tokenizer.json` and `assets/tokenizer/vocabulary.spm`: what
  `keras_hub.models.AlbertBackbone.from_preset(DIR)` reads. keras-hub presets hold the
  backbone only: converting a model with a head needs --head=none.

Heads (`--head`, default "auto": the source's): none, pretraining (masked LM + sentence
order), masked_lm, classifier (GLUE; 1 output = regression), multiple_choice (RACE),
squad_v1, squad_v2 (this project and the original only). Hugging Face names:
`AlbertForPreTraining`, `AlbertForMaskedLM`, `AlbertForSequenceClassification`,
`AlbertForMultipleChoice`, `AlbertForQuestionAnswering` (which has no pooler: it is left out
one way and reported missing the other), `AlbertModel`. The name tables are in
`albert_tf/hub_formats.py`. Every conversion is a transpose or reshape of the same float32
values, so a round trip is bit-exact.

In Python: `read_weights(path)` gives a `Weights` (arrays in original names, config, head,
tokenizer), `write_weights(weights, DIR, to)` writes one, `load_weights(model, path)` loads any
of the formats into one of our models and returns a `checkpoints.LoadReport` in the source's
own names.
"""

import dataclasses
import io
import json
import os
import uuid

import numpy as np
import tensorflow as tf

from albert_tf import checkpoints as checkpoints_lib
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

# Our model class of each head, and the export heads of `albert_tf.export` SavedModels.
_EXPORT_HEADS = {"none": "none", "mlm": "pretraining", "classifier": "classifier"}


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


def _check(weights, head="auto"):
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


# =========================================================================================
# Detecting the format
# =========================================================================================


def _join(folder, *names):
    return files.join(folder, *names)


def detect_format(path):
    """The format of `path` (one of `FORMATS`); raises ConversionError naming what was found."""
    path = str(path)
    if tf.io.gfile.exists(path + ".index"):
        return "original"
    if tf.io.gfile.isdir(path):
        def has(*names):
            return tf.io.gfile.exists(_join(path, *names))
        if has("saved_model.pb") and has("assets", "export_info.json"):
            return "albert_tf_export"
        if has("tfhub_module.pb") or (has("saved_model.pb")
                                      and has("variables", "variables.index")):
            return "tfhub_module"
        if has("config.json"):
            data = files.read_json(_join(path, "config.json"), "config file")
            if data.get("class_name") == "AlbertBackbone":
                return "keras_hub"
            if "model_type" in data or "architectures" in data:
                return "hf"
        if has("checkpoint") or tf.io.gfile.glob(_join(path, "*.index")):
            return "original"
        listing = sorted(tf.io.gfile.listdir(path))[:8]
        raise ConversionError(
            f"{path}: not a folder of ALBERT weights in a known layout (it has "
            f"{listing or 'nothing'}). Expected an original checkpoint (model.ckpt*.index), a "
            "Hugging Face folder (config.json + model.safetensors), a keras-hub preset "
            "(config.json + model.weights.h5), a TF-Hub module or an albert_tf export.")
    if tf.io.gfile.exists(path):
        folder, name = files.dirname(path), files.basename(path)
        for suffix in (".index", ".data-"):
            if suffix in name:
                prefix = files.join(folder, name[:name.index(suffix)])
                raise ConversionError(f"{path} is one file of a checkpoint: pass its prefix "
                                      f"{prefix} (or its folder {folder or '.'}).")
        raise ConversionError(f"{path} is a file: pass the folder that holds it "
                              f"({folder or '.'}); the format is read from the folder's "
                              "files.")
    raise FileNotFoundError(f"{path} does not exist (neither a folder nor a checkpoint prefix "
                            f"with {path}.index).")


# =========================================================================================
# Readers
# =========================================================================================


def read_weights(path, albert_config_file=None, head="auto", spm_model_file=None,
                 do_lower_case=None):
    """Reads ALBERT weights in any format of `FORMATS` (detected) into a `Weights`.

    Args:
      path: a checkpoint prefix or a folder (any `tf.io.gfile` path).
      albert_config_file: the config, for sources that have none (TF-Hub modules, bare
        checkpoints); it overrides a config found beside an original checkpoint.
      head: "auto" (the source's) or one of `HEADS`: "none" keeps the encoder alone;
        "multiple_choice" reads an `output_weights` [1, H] as RACE's head.
      spm_model_file, do_lower_case: the tokenizer, overriding the source's (optional).

    Raises ConversionError (unknown layout, config and weights that disagree, a head that is
    not there), FileNotFoundError.
    """
    if head != "auto" and head not in HEADS:
        raise ConversionError(f"--head={head}: expected 'auto' or one of {HEADS}.")
    source_format = detect_format(path)
    tf.get_logger().info("Reading %s as %s.", path, source_format)
    reader = {"original": _read_original, "tfhub_module": _read_tfhub_module,
              "albert_tf_export": _read_export, "hf": _read_hf,
              "keras_hub": _read_keras_hub}[source_format]
    if albert_config_file and source_format in ("hf", "keras_hub"):
        given = _config_from_file(albert_config_file)
    weights = reader(str(path), albert_config_file)
    weights.input = str(path)
    if albert_config_file and source_format in ("hf", "keras_hub"):
        weights.config = _matching_config(given, albert_config_file, weights)
    if spm_model_file:
        # A source's own SentencePiece model travels as it is; one given here is checked.
        weights.spm_model = files.read_bytes(spm_model_file, "SentencePiece model")
        check_spm_model(weights.spm_model, spm_model_file, weights.config)
    if do_lower_case is not None:
        weights.do_lower_case = bool(do_lower_case)
    return _check(weights, head)


def check_spm_model(model_proto, origin, config):
    """Raises a UserError naming `origin` when the bytes `model_proto` are not a SentencePiece
    model, or one with more pieces than `config.vocab_size` (ids the model has no row for)."""
    from albert_tf.tokenization import sentencepiece_from_proto
    pieces = sentencepiece_from_proto(model_proto, origin).GetPieceSize()
    if pieces > config.vocab_size:
        raise ConversionError(f"The SentencePiece model {origin} has {pieces} pieces, more "
                              f"than the model's vocab_size ({config.vocab_size}). Is it the "
                              "vocabulary this model was trained with?")


# The config fields that shape the weights or change what they compute.
_MODEL_FIELDS = ("vocab_size", "embedding_size", "hidden_size", "num_hidden_layers",
                 "num_hidden_groups", "num_attention_heads", "intermediate_size",
                 "inner_group_num", "hidden_act", "max_position_embeddings", "type_vocab_size")


def _matching_config(given, given_file, weights):
    """`given` (from --albert_config_file) when it agrees with the config of a hub folder on
    every field of `_MODEL_FIELDS`; otherwise a ConversionError naming both files."""
    folder_config = files.join(files.dirname(weights.source), "config.json")
    for field in _MODEL_FIELDS:
        ours, theirs = getattr(given, field), getattr(weights.config, field)
        if ours != theirs:
            raise ConversionError(
                f"--albert_config_file={given_file} says {field}={ours!r}, but the config of "
                f"{weights.input} is its config.json ({folder_config}: {field}={theirs!r}); "
                "leave --albert_config_file out for this format.")
    return given


def _config_from_file(path):
    if not tf.io.gfile.exists(path):
        raise ConversionError(f"The ALBERT config file {path} does not exist.")
    try:
        return AlbertConfig.from_dict(files.read_json(path, "ALBERT config file"))
    except TypeError as error:
        raise ConversionError(f"The ALBERT config file {path}: {error}") from None


def _original_values(prefix):
    """{name without `module/`: array}, {that name: stored name} of a name-based checkpoint,
    without training state (optimizer slots, global_step)."""
    reader = _checkpoint_reader(prefix)
    values, names = {}, {}
    for stored in reader.get_variable_to_shape_map():
        if checkpoints_lib._is_training_state(stored):
            continue
        name = stored[len("module/"):] if stored.startswith("module/") else stored
        values[name] = _checkpoint_tensor(reader, prefix, stored)
        names[name] = stored
    return values, names


def _checkpoint_reader(prefix):
    # Not tf.train.load_checkpoint: on ram:// (and object stores) a prefix is also a "folder".
    try:
        return tf.compat.v1.train.NewCheckpointReader(prefix)
    except (tf.errors.OpError, ValueError, RuntimeError) as error:
        raise ConversionError(_checkpoint_damage(prefix, error)) from None


def _checkpoint_tensor(reader, prefix, stored):
    """`stored`'s array; a ConversionError naming the data file when it cannot be read."""
    try:
        return np.asarray(reader.get_tensor(stored))
    except (tf.errors.OpError, IndexError, ValueError, RuntimeError) as error:
        raise ConversionError(_checkpoint_damage(prefix, error, stored)) from None


def _checkpoint_damage(prefix, error, stored=None):
    data = sorted(tf.io.gfile.glob(prefix + ".data-*")) or [prefix + ".data-00000-of-00001"]
    what = f" {stored}" if stored else ""
    reason = " ".join(str(getattr(error, "message", error)).split())
    return (f"Cannot read the checkpoint{what} from {', '.join(data)} ({reason}): the file is "
            "truncated or damaged (an interrupted copy or download?); copy it again.")


def _original_weights(prefix, config, source, source_format, spm_model=None,
                      do_lower_case=None):
    values, names = _original_values(prefix)
    head = getattr(config, "head", None)
    labels = getattr(config, "labels", None)
    head = head_of_names(values, source, head if head in HEADS else "auto")
    return Weights(config=config, values=values, head=head, source=source,
                   source_format=source_format, names=names, labels=labels,
                   spm_model=spm_model, do_lower_case=do_lower_case)


def _resolve_prefix(path):
    """`checkpoints.resolve_checkpoint`, trying the prefix first (on ram:// and object stores a
    prefix also looks like a folder)."""
    if tf.io.gfile.exists(path + ".index"):
        return path
    return checkpoints_lib.resolve_checkpoint(path)


def _read_original(path, albert_config_file):
    prefix = _resolve_prefix(path)
    config_file = albert_config_file or _join(files.dirname(prefix), "albert_config.json")
    if not albert_config_file and not tf.io.gfile.exists(config_file):
        raise ConversionError(f"{prefix}: no albert_config.json beside the checkpoint; pass "
                              "--albert_config_file.")
    spm = sorted(tf.io.gfile.glob(_join(files.dirname(prefix), "*.model")))
    return _original_weights(prefix, _config_from_file(config_file), prefix, "original",
                             spm_model=files.read_bytes(spm[0]) if spm else None)


def _read_tfhub_module(path, albert_config_file):
    from albert_tf.finetuning import resolve_hub_module
    prefix, spm, config_file = resolve_hub_module(path)
    config_file = albert_config_file or config_file
    if not config_file:
        raise ConversionError(f"{path}: a TF-Hub module holds no albert_config.json; pass "
                              "--albert_config_file (the config of the model it was made from).")
    do_lower_case = tokenization_info(path)[1]
    return _original_weights(prefix, _config_from_file(config_file), path, "tfhub_module",
                             spm_model=files.read_bytes(spm) if spm else None,
                             do_lower_case=do_lower_case)


def _read_export(path, albert_config_file):
    """A SavedModel of `albert_tf.export`: its `model_variables` list, in the creation order
    of the model its head and config build, so each value gets its original name."""
    from albert_tf import export as export_lib
    info = files.read_json(_join(path, "assets", "export_info.json"), "export info")
    config = _config_from_file(albert_config_file
                               or _join(path, "assets", "albert_config.json"))
    labels = info.get("labels")
    num_labels = len(labels) if labels else info.get("num_labels")
    prefix = _join(path, "variables", "variables")
    reader = _checkpoint_reader(prefix)
    shapes = reader.get_variable_to_shape_map()
    keys = _list_checkpoint_keys(reader, "model_variables", path)
    model = _export_model(export_lib, config, info.get("head", "none"), num_labels,
                             [shapes[key] for key in keys])
    if len(keys) != len(model.variables):
        raise ConversionError(f"{path}: {len(keys)} model variables, but the {info.get('head')} "
                              f"model of assets/albert_config.json has {len(model.variables)}.")
    values, names = {}, {}
    # `model.variables` also holds state that is not a weight (dropout seed generators).
    weight_ids = {id(weight) for weight in model.weights}
    for index, (variable, key) in enumerate(zip(model.variables, keys)):
        if id(variable) not in weight_ids:
            continue
        name = checkpoints_lib.original_name(variable)
        if tuple(shapes[key]) != tuple(variable.shape):
            raise ConversionError(
                f"{path}: variable {index} ({key}) has shape {shapes[key]}, not the shape of "
                f"{name} {list(variable.shape)}; is assets/albert_config.json the exported "
                "model's?")
        values[name] = _checkpoint_tensor(reader, prefix, key)
        names[name] = key
    spm_name = info.get("spm_model_file") or info.get("vocab_file")
    spm = (_join(path, "assets", files.basename(spm_name)) if spm_name
           else (sorted(tf.io.gfile.glob(_join(path, "assets", "*.model"))) or [None])[0])
    head = _EXPORT_HEADS[info.get("head", "none")]
    return Weights(config=config, values=values, head=head, source=path,
                   source_format="albert_tf_export", names=names,
                   labels=[str(x) for x in labels] if labels else None,
                   spm_model=files.read_bytes(spm) if spm else None,
                   do_lower_case=info.get("do_lower_case"))


def _export_model(export_lib, config, head, num_labels, shapes):
    """The model an export of `head` was made from (a classifier's number of labels, when
    the export info does not say, from its first variable, `output_weights` [C, H])."""
    if head == "classifier" and num_labels is None:
        num_labels = shapes[0][0]
    return export_lib.build_model(config, head, num_labels=num_labels)[0]


def _list_checkpoint_keys(reader, attribute, path):
    """The checkpoint keys of the variables in the root's list `attribute`, in list order.

    A SavedModel stores each variable once, under the first object path that reaches it
    (`model/output_weights/...` or `model_variables/3/...`), so the keys are found through
    the object graph rather than spelled.
    """
    from tensorflow.core.protobuf import trackable_object_graph_pb2
    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))

    def child(node_id, name):
        for reference in graph.nodes[node_id].children:
            if reference.local_name == name:
                return reference.node_id
        return None

    node = child(0, attribute)
    if node is None:
        raise ConversionError(f"{path}: the SavedModel has no {attribute!r}; not an "
                              "albert_tf export?")
    keys = []
    while (item := child(node, str(len(keys)))) is not None:
        keys.append(next(a.checkpoint_key for a in graph.nodes[item].attributes
                         if a.name == "VARIABLE_VALUE"))
    return keys


def tokenization_info(handle):
    """(SentencePiece model path or None, do_lower_case or None) of a TF-Hub module or an
    `albert_tf.export` SavedModel: what its `tokenization_info` signature returns.

    For our exports the values are read from `assets/export_info.json`, which the export
    writes from the same settings as the signature (no SavedModel load, which takes seconds);
    other modules are loaded and the signature is run, as the original `from_hub_module` does.
    Returns (None, None) for a module without the signature.
    """
    handle = str(handle)
    info_file = _join(handle, "assets", "export_info.json")
    if tf.io.gfile.exists(info_file):
        info = files.read_json(info_file, "export info")
        spm = info.get("spm_model_file")
        return (_join(handle, "assets", files.basename(spm)) if spm else None,
                info.get("do_lower_case"))
    try:
        import tensorflow_text  # noqa: F401  (registers the text ops a module may use)
    except ImportError:
        pass
    signature = None
    for tags in (None, []):  # TF2 SavedModels, then TF1 hub modules (graph with no tags)
        try:
            loaded = tf.saved_model.load(handle, tags=tags)
        except (RuntimeError, ValueError, tf.errors.OpError):
            continue
        signature = getattr(loaded, "signatures", {}).get("tokenization_info")
        if signature is not None:
            break
    if signature is None:
        return None, None
    info = signature()
    vocab = info["vocab_file"].numpy().decode("utf-8")
    # A TF1 module's asset tensor may still hold the path it was exported from: the copy in
    # the module's own assets is the one that travels with it.
    inside = _join(handle, "assets", files.basename(vocab))
    if tf.io.gfile.exists(inside):
        vocab = inside
    return vocab, bool(info["do_lower_case"].numpy())


# --- Hugging Face -------------------------------------------------------------------------


def _hf_tensors(folder):
    """{name: np.ndarray} and the file of a Hugging Face folder's weights."""
    safetensors_file = _join(folder, "model.safetensors")
    index_file = _join(folder, "model.safetensors.index.json")
    h5_file = _join(folder, "tf_model.h5")
    bin_file = _join(folder, "pytorch_model.bin")
    if tf.io.gfile.exists(safetensors_file):
        return _load_safetensors(safetensors_file), safetensors_file
    if tf.io.gfile.exists(index_file):
        weight_map = files.read_json(index_file, "safetensors index").get("weight_map", {})
        tensors = {}
        for shard in sorted(set(weight_map.values())):
            tensors.update(_load_safetensors(_join(folder, shard)))
        return tensors, index_file
    if tf.io.gfile.exists(h5_file):
        return _load_hf_tf_h5(h5_file), h5_file
    if tf.io.gfile.exists(bin_file):
        return _load_pytorch_bin(bin_file), bin_file
    raise ConversionError(f"{folder}: a Hugging Face config.json without weights (expected "
                          "model.safetensors, tf_model.h5 or pytorch_model.bin).")


def _load_safetensors(path):
    from safetensors.numpy import load
    data = files.read_bytes(path, "safetensors file")
    try:
        tensors = load(data)
    except Exception as error:  # safetensors raises its own SafetensorError.
        raise ConversionError(f"{path} is not a readable safetensors file: {error}") from None
    return {name: _float32(array, path, name) for name, array in tensors.items()}


def _float32(array, path, name):
    """Weights as float32 (fp16 / fp64 files are converted exactly or rounded once); other
    arrays (older files' int64 `position_ids` buffers) stay as they are and end up unused."""
    array = np.asarray(array)
    if array.dtype in (np.float16, np.float32, np.float64):
        return array.astype(np.float32, copy=False)
    return array


def _load_pytorch_bin(path):
    try:
        import torch
    except ImportError:
        raise ConversionError(f"{path} is a PyTorch pickle, which needs torch to read: "
                              "`pip install torch` (CPU build is enough), or convert the folder "
                              "to model.safetensors.") from None
    state = torch.load(io.BytesIO(files.read_bytes(path)), map_location="cpu",
                       weights_only=True)
    # bfloat16 has no NumPy type: floats go through float32 (exact for bf16 and fp16).
    return {name: _float32(tensor.float().numpy() if tensor.is_floating_point()
                           else tensor.numpy(), path, name) for name, tensor in state.items()}


def _hf_tf_name(name):
    """Hugging Face's TF name -> its PyTorch name (transformers'
    `convert_tf_weight_name_to_pt_weight_name` rule): drop the model scope and `:0`,
    `_._` separates list items, `/` becomes `.`, kernel/gamma/embeddings become weight and
    beta bias. Returns (name, whether the array is a transposed kernel)."""
    name = name.split(":")[0]
    parts = name.replace("_._", "/").split("/")
    # The first part is the model's own scope (e.g. tf_albert_for_pre_training).
    if parts and parts[0].startswith("tf_albert"):
        parts = parts[1:]
    transpose = parts[-1] == "kernel"
    parts[-1] = {"kernel": "weight", "gamma": "weight", "beta": "bias",
                 "embeddings": "weight"}.get(parts[-1], parts[-1])
    return ".".join(parts), transpose


def _h5_datasets(path, what):
    """{dataset path: array} of every dataset of the HDF5 file `path` (any filesystem); a
    ConversionError naming the file when it is not a readable HDF5 file (truncated, damaged)."""
    import h5py
    data = files.read_bytes(path, what)
    arrays = {}
    try:
        with h5py.File(io.BytesIO(data), "r") as f:
            def visit(name, obj):
                if isinstance(obj, h5py.Dataset):
                    arrays[name] = obj[()]
            f.visititems(visit)
    except (OSError, ValueError, KeyError, RuntimeError) as error:
        raise ConversionError(
            f"The {what} {path} is not a readable HDF5 file ({len(data)} bytes; "
            f"{' '.join(str(error).split())}): it is truncated or damaged (an interrupted copy "
            "or download?); copy it again.") from None
    return arrays


def _load_hf_tf_h5(path):
    tensors = {}
    for name, array in _h5_datasets(path, "tf_model.h5 file").items():
        pt_name, transpose = _hf_tf_name(name.split("/", 1)[1] if "/" in name else name)
        array = _float32(array, path, name)
        tensors[pt_name] = np.ascontiguousarray(array.T) if transpose else array
    return tensors


def _read_hf(folder, albert_config_file):
    config_path = _join(folder, "config.json")
    data = files.read_json(config_path, "Hugging Face config")
    config = hub.config_from_hf(data, config_path)
    tensors, weights_file = _hf_tensors(folder)
    # A bare AlbertModel saves its names without the "albert." prefix.
    prefixed = {}
    for name in tensors:
        bare = not name.startswith(hub.HF_BASE_PREFIX) and name.split(".")[0] in (
            "embeddings", "encoder", "pooler")
        prefixed[hub.HF_BASE_PREFIX + name if bare else name] = name
    bare = any(stored != name for name, stored in prefixed.items())
    values, names, used, rows, shapes = {}, {}, set(), {}, {}
    for original, hf_name, rule in hub.hf_rows(config):
        if hf_name in prefixed:
            stored = prefixed[hf_name]
            values[original] = rule.to_original(tensors[stored])
            names[original] = stored
            shapes[original] = tuple(tensors[stored].shape)
            used.add(stored)
        else:
            stored = hf_name[len(hub.HF_BASE_PREFIX):] if bare and hf_name.startswith(
                hub.HF_BASE_PREFIX) else hf_name
        rows[original] = (stored, rule)
    # Tied copies (the decoder is the word-embedding table, as in the original): they must
    # equal what they copy, and are not converted twice.
    for tied, of in hub.HF_TIED.items():
        if tied in prefixed and of in prefixed:
            if not np.array_equal(tensors[prefixed[tied]], tensors[prefixed[of]]):
                raise ConversionError(
                    f"{weights_file}: {prefixed[tied]} differs from {prefixed[of]}; ALBERT's "
                    "masked-LM output layer is tied to them, so untied weights cannot be "
                    "represented.")
            used.add(prefixed[tied])
    if config.embedding_size == config.hidden_size:
        kernel, bias = (prefixed.get(n) for n in hub.hf_projection_names())
        used.update(_check_identity_projection(tensors, kernel, bias, weights_file, config,
                                               config_path))
    architectures = data.get("architectures") or []
    head = hub.HF_HEADS.get(architectures[0]) if architectures else None
    if architectures and head is None:
        raise ConversionError(f"{config_path}: architecture {architectures[0]!r} has no head "
                              f"here; expected one of {sorted(hub.HF_HEADS)}.")
    if not values:
        raise ConversionError(f"{weights_file}: no ALBERT weight names (it has "
                              f"{sorted(tensors)[:4]}, ...).")
    head = head or head_of_names(values, weights_file)
    if head == "multiple_choice" and "output_weights" not in values:
        head = "none"
    tokenizer = _hf_tokenizer_settings(folder)
    spm_file = _join(folder, "spiece.model")
    labels = hub.hf_labels(data) if head == "classifier" else None
    if labels is not None and "output_weights" in values and \
            len(labels) != values["output_weights"].shape[0]:
        raise ConversionError(
            f"{config_path}: id2label names {len(labels)} labels, but {names['output_weights']} "
            f"in {weights_file} has {values['output_weights'].shape[0]} classes; fix id2label "
            "(and label2id) to name one label per class.")
    unused = sorted(name for name in tensors if name not in used)
    return Weights(config=config, values=values, head=head, source=weights_file,
                   source_format="hf", names=names, unused=unused, labels=labels,
                   rows=rows, source_shapes=shapes,
                   spm_model=(files.read_bytes(spm_file) if tf.io.gfile.exists(spm_file)
                              else None), **tokenizer)


def _hf_tokenizer_settings(folder):
    path = _join(folder, "tokenizer_config.json")
    if not tf.io.gfile.exists(path):
        return {}
    data = files.read_json(path, "tokenizer config")
    return {key: data[key] for key in ("do_lower_case", "keep_accents", "remove_space")
            if key in data}


def _check_identity_projection(tensors, kernel, bias, path, config, config_path):
    """With embedding_size == hidden_size our encoder (as the original) has no projection:
    a hub's one (`tensors[kernel]`, `tensors[bias]`; None when absent) must be the identity
    with a zero bias. Returns the names it consumed."""
    if kernel is None or kernel not in tensors:
        return set()
    matrix = tensors[kernel]
    offset = tensors[bias] if bias in tensors else np.zeros(1, np.float32)
    size = config.hidden_size
    for name, array, shape in ((kernel, matrix, (size, size)), (bias, offset, (size,))):
        if name in tensors and tuple(array.shape) != shape:
            raise ConversionError(
                f"{path}: {name} has shape {list(array.shape)}, but {config_path} says "
                f"embedding_size == hidden_size == {size}, where it would be {list(shape)}. "
                "Is the config the one of these weights?")
    if not (np.array_equal(matrix, np.eye(matrix.shape[0], dtype=matrix.dtype))
            and not np.any(offset)):
        raise ConversionError(
            f"{path}: {kernel} is not the identity (with a zero {bias}), but embedding_size == "
            "hidden_size, where ALBERT has no embedding projection; these weights cannot be "
            "represented.")
    return {name for name in (kernel, bias) if name in tensors}


# --- keras-hub ----------------------------------------------------------------------------


def _read_keras_hub(folder, albert_config_file):
    config_path = _join(folder, "config.json")
    config = hub.config_from_keras_hub(files.read_json(config_path, "keras-hub config"),
                                       config_path)
    hub.check_keras_hub_layout(config, config_path)
    weights_file = _join(folder, "model.weights.h5")
    tensors = {name: _float32(array, weights_file, name) for name, array in
               _h5_datasets(weights_file, "keras-hub weights file").items()}
    values, names, used, rows, shapes = {}, {}, set(), {}, {}
    for original, stored, rule in hub.keras_hub_rows(config):
        if "embedding_hidden_mapping_in" in original and \
                config.embedding_size == config.hidden_size:
            continue   # checked below
        rows[original] = (stored, rule)
        if stored not in tensors:
            continue
        values[original] = rule.to_original(tensors[stored])
        names[original] = stored
        shapes[original] = tuple(tensors[stored].shape)
        used.add(stored)
    if config.embedding_size == config.hidden_size:
        used.update(_check_identity_projection(tensors, "layers/dense/vars/0",
                                               "layers/dense/vars/1", weights_file, config,
                                               config_path))
    spm_file = _join(folder, KERAS_HUB_SPM)
    return Weights(config=config, values=values, head="none", source=weights_file,
                   source_format="keras_hub", names=names, rows=rows, source_shapes=shapes,
                   unused=sorted(n for n in tensors if n not in used),
                   spm_model=(files.read_bytes(spm_file) if tf.io.gfile.exists(spm_file)
                              else None))


# =========================================================================================
# Writers
# =========================================================================================


def write_weights(weights, output, to, overwrite=False):
    """Writes `weights` as `to` (one of `TARGETS`) into the folder `output`.

    The folder is written under a temporary name beside it and moved into place when
    complete. Raises ConversionError when `output` exists (unless `overwrite`) or the target
    has no name for a variable of the head.
    """
    if to not in TARGETS:
        raise ConversionError(f"--to={to}: expected one of {TARGETS}.")
    output = check_output(output, overwrite, weights.input or weights.source)
    writer = {"original": _write_original, "hf": _write_hf,
              "keras_hub": _write_keras_hub}[to]
    marker = {"original": "checkpoint", "hf": "config.json", "keras_hub": "config.json"}[to]
    with files.replace_dir(output, marker=marker) as tmp:
        tf.io.gfile.makedirs(tmp)
        writer(weights, tmp)
    tf.get_logger().info("Converted %s (%s, head %s) to %s (%s).",
                         weights.input or weights.source, weights.source_format, weights.head,
                         output, to)
    return output


def check_output(output, overwrite=False, source=None):
    """`output` (trailing "/" dropped on a filesystem with a scheme) once it is a place a
    conversion may write: not an existing file, not an existing non-empty folder unless
    `overwrite`, and neither the `source` path nor inside or above it. Raises ConversionError.
    """
    output = str(output).rstrip("/") if files.has_scheme(output) else str(output)
    if source is not None:
        inside = _path_relation(output, str(source))
        if inside:
            raise ConversionError(f"--output={output} is {inside} --input={source}; write the "
                                  "conversion to another folder.")
    if tf.io.gfile.exists(output):
        if not tf.io.gfile.isdir(output):
            raise ConversionError(f"--output={output} exists and is not a folder; pass the "
                                  "folder to write (a new one, or an existing one with "
                                  "--overwrite).")
        if tf.io.gfile.listdir(output) and not overwrite:
            raise ConversionError(f"--output={output} exists and is not empty; pass "
                                  "--overwrite to replace it.")
    return output


def _path_relation(output, source):
    """"the same folder as", "inside" or "a folder above" when `output` is one of those of
    `source` (a folder, a file in one, or a checkpoint prefix), else None."""
    def parts(path):
        if not files.has_scheme(path):
            # Local paths only (a URL's "//" must stay): resolve "." and "..".
            path = os.path.abspath(path)
        return [part for part in path.rstrip("/").split("/") if part]
    out = parts(output)
    sources = [parts(source)]
    if not tf.io.gfile.isdir(source):
        sources.append(sources[0][:-1])   # a file or checkpoint prefix: its folder
    for src in sources:
        if out == src:
            return "the same folder as"
        if out[:len(src)] == src and src is sources[0]:
            return "inside"
        if src[:len(out)] == out:
            return "a folder above"
    return None


def _write_original(weights, folder):
    config = weights.config.to_dict()
    config.pop("labels", None)
    config["head"] = weights.head
    if weights.labels:
        config["labels"] = list(weights.labels)
    files.write_text(_join(folder, "albert_config.json"),
                     json.dumps(config, indent=2, sort_keys=True) + "\n")
    names = list(weights.values) + ["global_step"]
    tensors = [tf.constant(weights.values[n]) for n in weights.values]
    tensors.append(tf.constant(0, tf.int64))
    with tf.device("/cpu:0"):
        tf.raw_ops.SaveV2(prefix=_join(folder, CHECKPOINT_NAME), tensor_names=names,
                          shape_and_slices=[""] * len(names), tensors=tensors)
    if weights.spm_model:
        files.write_bytes(_join(folder, SPM_NAME), weights.spm_model)
    files.write_text(_join(folder, "checkpoint"),
                     f'model_checkpoint_path: "{CHECKPOINT_NAME}"\n'
                     f'all_model_checkpoint_paths: "{CHECKPOINT_NAME}"\n')


def _hub_name_error(weights, target, original):
    return ConversionError(
        f"{weights.source}: {weights.names.get(original, original)} ({original}, head "
        f"{weights.head!r}) has no name in the {target} format. Pass --head=none to convert "
        "the encoder alone.")


def _write_hf(weights, folder):
    from safetensors.numpy import save
    config = weights.config
    if weights.head not in hub.HF_ARCHITECTURES:
        head_names = [n for n in weights.values if not n.startswith("bert/")]
        raise _hub_name_error(weights, "Hugging Face", head_names[0])
    if config.inner_group_num > config.num_hidden_layers // config.num_hidden_groups:
        # transformers gives each group a head-mask slice of L / G entries and indexes it by
        # inner layer: its forward pass fails with an IndexError for such a layout.
        tf.get_logger().warning(
            "inner_group_num (%d) > num_hidden_layers / num_hidden_groups (%d / %d): the "
            "weights are written, but transformers' AlbertModel cannot run this layout.",
            config.inner_group_num, config.num_hidden_layers, config.num_hidden_groups)
    rows = {original: (hf_name, rule) for original, hf_name, rule in hub.hf_rows(config)}
    tensors = {}
    for original, array in weights.values.items():
        if original.startswith("bert/pooler/") and weights.head == "squad_v1":
            continue  # AlbertForQuestionAnswering has no pooler.
        if original not in rows:
            raise _hub_name_error(weights, "Hugging Face", original)
        hf_name, rule = rows[original]
        tensors[hf_name] = np.ascontiguousarray(rule.to_hub(array, config))
    if config.embedding_size == config.hidden_size:
        kernel, bias = hub.hf_projection_names()
        tensors[kernel] = np.eye(config.hidden_size, dtype=np.float32)
        tensors[bias] = np.zeros(config.hidden_size, np.float32)
    if weights.head == "none":
        tensors = {name[len(hub.HF_BASE_PREFIX):]: array for name, array in tensors.items()}
    files.write_bytes(_join(folder, "model.safetensors"),
                      save(tensors, metadata={"format": "pt"}))
    if weights.spm_model:
        files.write_bytes(_join(folder, "spiece.model"), weights.spm_model)
        lower = True if weights.do_lower_case is None else weights.do_lower_case
        files.write_text(_join(folder, "tokenizer_config.json"), hub.dumps(
            hub.hf_tokenizer_config(lower, bool(weights.keep_accents),
                                    True if weights.remove_space is None
                                    else weights.remove_space)))
        files.write_text(_join(folder, "special_tokens_map.json"), hub.dumps(
            {"bos_token": "[CLS]", "eos_token": "[SEP]", "unk_token": "<unk>",
             "sep_token": "[SEP]", "pad_token": "<pad>", "cls_token": "[CLS]",
             "mask_token": "[MASK]"}))
    files.write_text(_join(folder, "config.json"), hub.dumps(
        hub.config_to_hf(config, weights.head, weights.num_labels, weights.labels)))


def _write_keras_hub(weights, folder):
    import h5py
    import keras
    config = weights.config
    head_names = [n for n in weights.values if not n.startswith("bert/")]
    if head_names:
        raise _hub_name_error(weights, "keras-hub backbone", head_names[0])
    config_json = hub.config_to_keras_hub(config)
    arrays = {}
    for original, stored, rule in hub.keras_hub_rows(config):
        if original in weights.values:
            arrays[stored] = np.ascontiguousarray(rule.to_hub(weights.values[original], config))
    if config.embedding_size == config.hidden_size:
        arrays["layers/dense/vars/0"] = np.eye(config.hidden_size, dtype=np.float32)
        arrays["layers/dense/vars/1"] = np.zeros(config.hidden_size, np.float32)
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        f.create_group("vars").attrs["name"] = "albert_backbone"
        for group, name in hub.keras_hub_h5_groups(config):
            f.require_group(group).create_group("vars").attrs["name"] = name
        for stored in sorted(arrays, key=lambda n: (n.rsplit("/", 1)[0], int(n.rsplit("/")[-1]))):
            f[stored.rsplit("/", 1)[0]].create_dataset(stored.rsplit("/", 1)[1],
                                                       data=arrays[stored])
    files.write_bytes(_join(folder, "model.weights.h5"), buffer.getvalue())
    if weights.spm_model:
        files.write_bytes(_join(folder, KERAS_HUB_SPM), weights.spm_model)
        files.write_text(_join(folder, "tokenizer.json"), hub.dumps(
            hub.keras_hub_tokenizer_config(), indent=4))
    metadata = hub.keras_hub_metadata(config)
    metadata["keras_version"] = keras.__version__
    files.write_text(_join(folder, "metadata.json"), hub.dumps(metadata, indent=4))
    files.write_text(_join(folder, "config.json"), hub.dumps(config_json, indent=4))


# =========================================================================================
# Loading into our models
# =========================================================================================


def load_weights(model, path, strict=False, albert_config_file=None):
    """Loads ALBERT weights in any format of `FORMATS` into one of our models.

    Args:
      model: an `AlbertModel` or a model with a head (`AlbertPretrainer`, `AlbertClassifier`,
        `AlbertMultipleChoice`, `AlbertSquadV1`, `AlbertSquadV2`).
      path: a checkpoint prefix or folder in any supported format (detected).
      strict: raise if any model variable is missing from the source.
      albert_config_file: the config of a source without one (used for its checks only).

    Returns a `checkpoints.LoadReport` whose names are the source's own (Hugging Face names
    for a Hugging Face folder, h5 paths for keras-hub). Raises
    `checkpoints.CheckpointMismatchError` as `load_original_checkpoint` does: nothing matched,
    a shape mismatch (naming the variable and both shapes), strict with missing variables.
    """
    source_format = detect_format(path)
    if source_format == "original":
        return checkpoints_lib.load_original_checkpoint(model, path, strict=strict)
    weights = read_weights(path, albert_config_file=albert_config_file)
    return assign_weights(model, weights, strict=strict)


def assign_weights(model, weights, strict=False):
    """Assigns a `Weights` to the model's variables by original name; see `load_weights`."""
    loaded, missing, renamed, used, assignments = [], [], {}, set(), []
    for variable in model.weights:
        ours = checkpoints_lib.original_name(variable)
        if ours not in weights.values:
            missing.append(ours)
            continue
        stored = weights.names.get(ours, ours)
        array = weights.values[ours]
        if tuple(variable.shape) != tuple(array.shape):
            raise checkpoints_lib.CheckpointMismatchError(
                f"Shape mismatch for {ours}: the model has {list(variable.shape)}, "
                f"{weights.source} has {list(array.shape)} (as {stored}). Is the model's config "
                "the one of these weights?")
        assignments.append((variable, array))
        loaded.append(stored)
        used.add(ours)
        if stored != ours:
            renamed[ours] = stored
    if not loaded:
        sample = ", ".join(sorted(weights.names.values())[:5]) or "(no variables)"
        raise checkpoints_lib.CheckpointMismatchError(
            f"No variable of the model matched {weights.source}. The model expects names like "
            f"{checkpoints_lib.original_name(model.weights[0])}; the source has {sample}, ...")
    if strict and missing:
        raise checkpoints_lib.CheckpointMismatchError(
            f"strict loading from {weights.source}: {len(missing)} model variables are not in "
            f"it: {', '.join(missing)}")
    for variable, array in assignments:
        variable.assign(array.astype(variable.dtype))
    unused = sorted([weights.names.get(n, n) for n in weights.values if n not in used]
                    + list(weights.unused))
    report = checkpoints_lib.LoadReport(checkpoint=weights.source, loaded=loaded,
                                        missing=missing, unused=unused, skipped=[],
                                        renamed=renamed)
    tf.get_logger().info("%s", report)
    return report


def build_model(weights, num_choices=4):
    """Our model for the head of `weights` (variables initialised, not loaded)."""
    from albert_tf import heads
    from albert_tf.modeling import AlbertModel
    c, head = weights.config, weights.head
    if head == "none":
        return AlbertModel(c)
    if head in ("pretraining", "masked_lm"):
        return heads.AlbertPretrainer(c)
    if head == "classifier":
        return heads.AlbertClassifier(c, weights.num_labels)
    if head == "multiple_choice":
        return heads.AlbertMultipleChoice(c, num_choices=num_choices)
    if head == "squad_v1":
        return heads.AlbertSquadV1(c)
    return heads.AlbertSquadV2(c)


def original_checkpoint(path, albert_config_file=None):
    """A checkpoint prefix with original names for weights in any format of `FORMATS`.

    The prefix itself for an original checkpoint or a TF-Hub module; otherwise the weights are
    converted into a scratch folder of this process (removed at exit). For `--init_checkpoint`
    and `--albert_hub_module_handle`, which `checkpoints.load_original_checkpoint` reads.
    """
    source_format = detect_format(path)
    if source_format == "original":
        return _resolve_prefix(str(path))
    if source_format == "tfhub_module":
        return files.join(str(path), "variables", "variables")
    weights = read_weights(path, albert_config_file=albert_config_file)
    folder = files.join(_scratch_dir(), uuid.uuid4().hex)
    write_weights(weights, folder, "original")
    tf.get_logger().info("Converted %s (%s) to the original format in %s.", path,
                         source_format, folder)
    return files.join(folder, CHECKPOINT_NAME)


def resolve_export(handle):
    """(checkpoint prefix, SentencePiece model, config file) of an `albert_tf.export`
    SavedModel, as `finetuning.resolve_hub_module` returns them for a TF-Hub module."""
    handle = str(handle)
    spm, _ = tokenization_info(handle)
    config = _join(handle, "assets", "albert_config.json")
    return original_checkpoint(handle), spm, config


_SCRATCH = []


def _scratch_dir():
    """A local folder private to this process, removed when it exits (not a user path)."""
    if not _SCRATCH:
        import atexit
        import shutil
        import tempfile
        folder = tempfile.mkdtemp(prefix="albert_tf_converted-")
        atexit.register(shutil.rmtree, folder, True)
        _SCRATCH.append(folder)
    return _SCRATCH[0]


def init_checkpoint_of(path):
    """`--init_checkpoint` as `load_original_checkpoint` reads it: a folder of weights in
    another format (Hugging Face, keras-hub, an `albert_tf.export` SavedModel, a TF-Hub module)
    becomes a converted original checkpoint (`original_checkpoint`); anything else (an original
    checkpoint, a path that does not exist) is returned unchanged."""
    if not path or tf.io.gfile.exists(str(path) + ".index") or not tf.io.gfile.isdir(path):
        return path
    if any(tf.io.gfile.exists(_join(str(path), name))
           for name in ("config.json", "saved_model.pb", "tfhub_module.pb")):
        return original_checkpoint(path)
    return path


def is_saved_model_export(path):
    """Whether `path` is a folder written by `albert_tf.export` (a SavedModel)."""
    return bool(path) and tf.io.gfile.exists(_join(str(path), "assets", "export_info.json"))


# =========================================================================================
# Entry point
# =========================================================================================


def _define_flags():
    from absl import flags
    from albert_tf.cli import define_flag
    define_flag(flags.DEFINE_string, "input", None,
                "The weights to convert: an original checkpoint (prefix or folder), a Hugging "
                "Face folder, a keras-hub preset, a TF-Hub module or an albert_tf export.")
    define_flag(flags.DEFINE_string, "output", None, "The folder to write.")
    define_flag(flags.DEFINE_enum, "to", None, list(TARGETS),
                "original: albert_config.json + model.ckpt-best; hf: a Hugging Face folder; "
                "keras_hub: a keras-hub AlbertBackbone preset.")
    define_flag(flags.DEFINE_enum, "head", "auto", ["auto", *HEADS],
                "The head to convert; auto: the source's. none keeps the encoder alone (needed "
                "for keras_hub); multiple_choice reads an original output_weights [1, H] as "
                "RACE's head rather than a regression classifier.")
    define_flag(flags.DEFINE_string, "albert_config_file", None,
                "The config JSON, for sources that have none (TF-Hub modules, bare "
                "checkpoints).")
    define_flag(flags.DEFINE_string, "spm_model_file", None,
                "The SentencePiece model to ship with the output (default: the source's).")
    define_flag(flags.DEFINE_bool, "do_lower_case", None,
                "The tokenizer's lower-casing to record (default: the source's, else True).")
    define_flag(flags.DEFINE_bool, "overwrite", False, "Replace --output if it exists.")


def main(argv):
    from albert_tf import cli
    with cli.script_main(argv) as values:
        # Refuse a bad --output before the input (which may be gigabytes) is read.
        check_output(values.output, values.overwrite, values.input)
        weights = read_weights(values.input, albert_config_file=values.albert_config_file,
                               head=values.head, spm_model_file=values.spm_model_file,
                               do_lower_case=values.do_lower_case)
        tf.get_logger().info("%s: %s, head %s, %d arrays.", values.input,
                             weights.source_format, weights.head, len(weights.values))
        if weights.unused:
            tf.get_logger().warning("Not converted (no ALBERT variable takes them) from %s: %s",
                                    weights.source, ", ".join(weights.unused))
        write_weights(weights, values.output, values.to, overwrite=values.overwrite)
        print(f"Converted {values.input} ({weights.source_format}, head {weights.head}) to "
              f"{values.output} ({values.to}).")


if __name__ == "__main__":
    from albert_tf import cli
    cli.run(main, _define_flags, required=("input", "output", "to"))
