r"""Exports for serving and for the original tools: SavedModels and original-format checkpoints.

Two formats, one command (`--format`):

    # A SavedModel: raw strings or token ids in, encoder (and head) outputs out.
    python -m albert_tf.export --albert_config_file=albert_base/albert_config.json \
      --init_checkpoint=albert_base/model.ckpt-best --spm_model_file=albert_base/30k-clean.model \
      --do_lower_case --export_dir=exported/albert_base

    # An original-format checkpoint directory (the original export_checkpoints.py).
    python -m albert_tf.export --format=checkpoint --head=mlm ... --export_dir=exported/ckpt

The original's flags are accepted too: `--albert_directory` (holding `albert_config.json` and
the checkpoint `--checkpoint_name`, default `model.ckpt-best`), `--export_path` (the output)
and `--use_einsum` (no effect: our layers have one implementation, exact with either).

## The SavedModel

It is what the original TF-Hub modules (export_to_tfhub.py) offer, for TensorFlow 2 and for
TensorFlow Serving. Signatures (`loaded.signatures[name](**inputs)`, or Serving's
`signature_name`):

    name               inputs                                       outputs
    tokens             input_ids, input_mask, segment_ids           encoder (+ head) outputs
                       int32 [B, T]
    text               text_a string [B]                            the same + the packed
    text_pair          text_a, text_b string [B]                    input_ids, input_mask,
                                                                    segment_ids [B, max_seq_length]
    serving_default    `text` (or `text_pair` when exported with text_pair=True)
    sop                (head "mlm") as `tokens`                     + sop_log_probs [B, 2]
    mlm                (head "mlm") tokens inputs + mlm_positions   + mlm_logits [B, M, V]
                       int32 [B, M]
    tokenization_info  none                                         vocab_file (path of the
                                                                    SentencePiece .model asset),
                                                                    do_lower_case (bool)

Encoder outputs are `sequence_output` [B, T, H] and `pooled_output` [B, H] (float32). Each
signature also returns every output of the head that its inputs allow:
- head "none": nothing more;
- head "mlm" (the pretraining heads): `sop_log_probs` [B, 2] (log-softmax; 0 = original
  order, 1 = swapped) everywhere, and `mlm_logits` in `mlm`;
- head "classifier": `logits` [B, C]; for classification `probabilities` [B, C] and
  `predictions` [B] (int32 class id), plus `labels` [B] (class names) when they are given;
  for regression (C = 1) `predictions` [B] (the score) and, as the original, the same score
  as `probabilities` [B, 1]; with a `threshold` (run_classifier's `--threshold_to_export`)
  also `threshold` [B], that constant per row.

Texts are packed as the original classifier scripts pack them (`[CLS] a [SEP] b [SEP]`, the
original truncation, zero padding to `max_seq_length`) by
`in_graph_tokenization.InGraphTokenizer`, which gives the ids of `FullTokenizer`
(SentencePiece path); a row whose `text_b` is "" is packed as a single text.

For Python and Keras, the same computations are attributes taking one dict:
`loaded.tokens({"input_ids": ..., "input_mask": ..., "segment_ids": ...})`,
`loaded.text({"text_a": ...})` or `loaded.text({"text_a": ..., "text_b": ...})`, `loaded.mlm`,
`loaded.sop`, and `loaded.tokens_training` (dropout active: the original's "train" variant).
So `keras.layers.TFSMLayer(path, call_endpoint="tokens",
call_training_endpoint="tokens_training")` is a Keras layer. `loaded.tokenizer` is the
in-graph tokenizer (`encode`, `encode_pair`).

Assets (under `assets/`): the SentencePiece `.model` (and its `.vocab` when next to it),
`albert_config.json`, and `export_info.json` (head, do_lower_case, max_seq_length, labels,
signatures).

Differences from the original TF-Hub module: `mlm_logits` is [B, M, V], not flattened to
[B * M, V] (so that every output has the batch first, as TensorFlow Serving's row format
needs; `reshape(-1, V)` gives the original layout); there are text signatures; the
training variant is the `tokens_training` function rather than a second graph under the
"train" tag.

## The checkpoint directory

`export_checkpoint` writes the released models' layout: `albert_config.json`,
`model.ckpt-best.{index,data-00000-of-00001}` (original variable names, with the pretraining
heads for head "mlm", without for "none"), a `checkpoint` file and a copy of the
SentencePiece model (and `.vocab`). Unlike the original export_checkpoints.py, which saves
variables missing from the source checkpoint with random values and no word, a missing
variable is an error here.

Every path (config, checkpoint, SentencePiece model, export folder) may be on any filesystem
`tf.io.gfile` knows (`gs://`, ...). Nothing half-written appears under a final name: a
SavedModel is written into a temporary folder beside the target, which then replaces it
(`files.replace_dir`: a rename on a local disk, a copy with `saved_model.pb` last on an
object store); each file of a checkpoint export is written under a temporary name and
renamed, the `checkpoint` file last.
"""

import contextlib
import json
import math
import os
import time

import numpy as np
import tensorflow as tf

from albert_tf import checkpoints as checkpoints_lib
from albert_tf import files
from albert_tf.config import AlbertConfig
from albert_tf.errors import UserError
from albert_tf.heads import AlbertClassifier, AlbertPretrainer
from albert_tf.in_graph_tokenization import InGraphTokenizer
from albert_tf.modeling import AlbertModel

HEADS = ("none", "mlm", "classifier")
FORMATS = ("saved_model", "checkpoint")
TOKEN_INPUTS = ("input_ids", "input_mask", "segment_ids")
EXPORT_INFO = "export_info.json"
DEFAULT_CHECKPOINT_NAME = "model.ckpt-best"


class ExportError(UserError, ValueError):
    """An export that cannot be done as asked (the message says why and what to do)."""


# =========================================================================================
# Models
# =========================================================================================


def head_of(model):
    """"none", "mlm" or "classifier": which export head a model has."""
    if isinstance(model, AlbertPretrainer):
        return "mlm"
    if isinstance(model, AlbertClassifier):
        return "classifier"
    if isinstance(model, AlbertModel):
        return "none"
    raise TypeError(f"Cannot export a {type(model).__name__}: expected an AlbertModel (head "
                    "'none'), an AlbertPretrainer ('mlm') or an AlbertClassifier "
                    "('classifier').")


def checkpoint_head(checkpoint):
    """The head a checkpoint holds: "classifier", "mlm" or "none" (from its variable names).

    A classifier checkpoint (run_classifier.py's) has top-level `output_weights`; a
    pretraining one has `cls/predictions/output_bias`.
    """
    names = set(checkpoints_lib.checkpoint_variable_shapes(checkpoint))
    names = {n[len("module/"):] if n.startswith("module/") else n for n in names}
    if "output_weights" in names:
        return "classifier"
    if "cls/predictions/output_bias" in names:
        return "mlm"
    return "none"


def build_model(config, head, checkpoint=None, num_labels=None):
    """The model of a head, with `checkpoint` loaded strictly (every variable must be in it).

    Args:
      config: `AlbertConfig`.
      head: one of `HEADS`, or "auto" (from the checkpoint's variable names).
      checkpoint: original-format checkpoint prefix or directory (None: fresh weights).
      num_labels: classifier outputs (default: read from the checkpoint's `output_weights`).

    Returns (model, head).
    """
    if head == "auto":
        if checkpoint is None:
            raise ExportError("head='auto' needs a checkpoint to look at.")
        head = checkpoint_head(checkpoint)
    if head not in HEADS:
        raise ExportError(f"Unknown head {head!r}; expected one of {HEADS} or 'auto'.")
    if head == "classifier" and num_labels is None:
        if checkpoint is None:
            raise ExportError("A classifier without a checkpoint needs num_labels.")
        shapes = checkpoints_lib.checkpoint_variable_shapes(checkpoint)
        shape = shapes.get("output_weights", shapes.get("module/output_weights"))
        if shape is None:
            raise ExportError(
                f"--head=classifier, but {checkpoint} has no 'output_weights' (the classifier "
                "layer run_classifier.py saves). Use --head=none or --head=mlm for it.")
        num_labels = shape[0]
    if head == "none":
        model = AlbertModel(config)
    elif head == "mlm":
        model = AlbertPretrainer(config)
    else:
        model = AlbertClassifier(config, num_labels)
    if checkpoint is not None:
        try:
            checkpoints_lib.load_original_checkpoint(model, checkpoint, strict=True)
        except checkpoints_lib.CheckpointMismatchError as error:
            hint = ""
            if "hape mismatch" in str(error):
                hint = (" Is --albert_config_file the config this checkpoint was trained "
                        "with?")
            elif head == "mlm" and "cls/" in str(error):
                hint = (" The checkpoint lacks the pretraining heads (e.g. a fine-tuned "
                        "checkpoint): export it with --head=none (or --head=classifier).")
            raise checkpoints_lib.CheckpointMismatchError(f"{error}{hint}") from None
    return model, head


# =========================================================================================
# The serving module
# =========================================================================================


def _ids_spec(name):
    return tf.TensorSpec([None, None], tf.int32, name=name)


def _text_spec(name):
    return tf.TensorSpec([None], tf.string, name=name)


class AlbertServingModule(tf.Module):
    """The object a SavedModel export saves: a model, its in-graph tokenizer and assets.

    Args:
      model: `AlbertModel`, `AlbertPretrainer` or `AlbertClassifier` (variables built).
      tokenizer: `in_graph_tokenization.InGraphTokenizer` for the text functions.
      asset_files: paths copied into the SavedModel's `assets/` folder; the first is the
        SentencePiece model returned by `tokenization_info`.
      do_lower_case: what `tokenization_info` reports (the tokenizer's setting).
      labels: class names of a classifier (optional).
      threshold: a classifier's decision threshold, returned as a constant output.

    The functions (each takes one dict; see the module docstring): `tokens`,
    `tokens_training`, `text`, and for head "mlm" `mlm` and `sop`; `tokenization_info()`.
    """

    def __init__(self, model, tokenizer, asset_files, do_lower_case, labels=None,
                 threshold=None):
        super().__init__(name="albert_serving")
        self.head = head_of(model)
        self.model = model
        # Every model variable, tracked directly: SavedModel's object graph does not follow
        # AlbertModel's {group index: sub-blocks} dict (integer keys), so variables reached
        # only through it would be "untracked" captures.
        self.model_variables = list(model.variables)
        self.tokenizer = tokenizer
        self.assets = [tf.saved_model.Asset(path) for path in asset_files]
        self._do_lower_case = bool(do_lower_case)
        num_labels = getattr(model, "num_labels", None)
        if labels is not None and self.head == "classifier":
            labels = [str(label) for label in labels]
            if len(labels) != num_labels:
                raise ExportError(f"{len(labels)} label names ({labels}) for a classifier "
                                  f"with {num_labels} outputs.")
        self._labels = (tf.constant(labels) if labels is not None and self.head == "classifier"
                        else None)
        self._regression = self.head == "classifier" and num_labels == 1
        self._threshold = (None if threshold is None or self.head != "classifier"
                           else float(threshold))

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

    # --- computations -------------------------------------------------------------------

    def _run(self, features, training=False, mlm=False):
        """Encoder and head outputs (float32) for token features [B, T]."""
        inputs = {name: tf.cast(features[name], tf.int32) for name in TOKEN_INPUTS}
        if self.head == "none":
            outputs = self.model(inputs, training=training)
            return self._encoder_outputs(outputs)
        if self.head == "mlm":
            if mlm:
                positions = tf.cast(features["mlm_positions"], tf.int32)
            else:
                # The pretrainer computes both heads in one call; one dummy position per
                # example costs one row of vocabulary logits, and is dropped.
                positions = tf.zeros([tf.shape(inputs["input_ids"])[0], 1], tf.int32)
            outputs = self.model({**inputs, "masked_lm_positions": positions},
                                 training=training)
            result = self._encoder_outputs(outputs)
            result["sop_log_probs"] = tf.nn.log_softmax(
                tf.cast(outputs["sop_logits"], tf.float32), axis=-1)
            if mlm:
                result["mlm_logits"] = tf.cast(outputs["mlm_logits"], tf.float32)
            return result
        # Classifier: the encoder once, then the classifier layer on its pooled output, as
        # AlbertClassifier computes it (its dropout is the identity outside training).
        classifier = self.model
        outputs = classifier.encoder(inputs, training=training)
        result = self._encoder_outputs(outputs)
        pooled = classifier.dropout(result["pooled_output"], training=training)
        logits = (tf.matmul(pooled, classifier.output_weights, transpose_b=True)
                  + classifier.output_bias)
        result["logits"] = logits
        if self._threshold is not None:
            result["threshold"] = tf.fill(tf.shape(logits)[:1],
                                          tf.constant(self._threshold, tf.float32))
        if self._regression:
            result["probabilities"] = logits
            result["predictions"] = tf.squeeze(logits, -1)
            return result
        result["probabilities"] = tf.nn.softmax(logits, axis=-1)
        predictions = tf.argmax(logits, axis=-1, output_type=tf.int32)
        result["predictions"] = predictions
        if self._labels is not None:
            result["labels"] = tf.gather(self._labels, predictions)
        return result

    @staticmethod
    def _encoder_outputs(outputs):
        return {"sequence_output": tf.cast(outputs["sequence_output"], tf.float32),
                "pooled_output": tf.cast(outputs["pooled_output"], tf.float32)}

    def _text_dict(self, texts):
        return self._text(texts["text_a"], texts.get("text_b"))

    def _text(self, text_a, text_b=None):
        features = self.tokenizer(text_a, text_b)
        result = dict(self.tokens(features))
        result.update(features)
        return result

    def _tokenization_info(self):
        return {"vocab_file": self.assets[0].asset_path,
                "do_lower_case": tf.constant(self._do_lower_case)}

    # --- signatures ---------------------------------------------------------------------

    def signatures(self, text_pair=False):
        """{name: concrete function} with flat named inputs, for `tf.saved_model.save`."""
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


# =========================================================================================
# Writing
# =========================================================================================


def _target_dir(export_dir, versioned):
    """The folder to write: `export_dir`, or a new `export_dir/<unix time>` (Serving versions).

    Any `tf.io.gfile` path (local, `gs://`, ...); a local relative path stays relative.
    """
    export_dir = os.fspath(export_dir)
    if not versioned:
        return export_dir
    files.makedirs(export_dir)
    version = int(time.time())
    while tf.io.gfile.exists(files.join(export_dir, str(version))):
        version += 1
    return files.join(export_dir, str(version))


def _check_target(target, overwrite):
    if tf.io.gfile.exists(target) and not tf.io.gfile.isdir(target):
        raise ExportError(f"--export_dir={target} exists and is a file, not a folder.")
    if tf.io.gfile.exists(target) and tf.io.gfile.listdir(target) and not overwrite:
        raise ExportError(f"{target} exists and is not empty. Choose another --export_dir, "
                          "or pass --overwrite (overwrite=True) to replace it.")


def _companion_vocab(spm_model_file):
    """The `.vocab` file next to a `.model` file, if there is one (any filesystem)."""
    path = os.fspath(spm_model_file)
    if not path.endswith(".model"):
        return None
    vocab = path[:-len(".model")] + ".vocab"
    return vocab if tf.io.gfile.exists(vocab) else None


@contextlib.contextmanager
def _staging_dir(target):
    """A hidden temporary folder beside `target` for the asset files a SavedModel copies in
    (`albert_config.json`, `export_info.json`); removed afterwards. Beside the target, so it
    is on the same filesystem (gs:// included) and needs no local disk."""
    staging = files.temporary_name(f"{target.rstrip('/')}-assets")
    files.makedirs(staging)
    try:
        yield staging
    finally:
        if tf.io.gfile.exists(staging):
            tf.io.gfile.rmtree(staging)


def export_saved_model(model, export_dir, spm_model_file, do_lower_case, max_seq_length=128,
                       head=None, labels=None, text_pair=False, versioned=False,
                       overwrite=False, threshold=None):
    """Writes a SavedModel of `model` with token and raw-text signatures (module docstring).

    Args:
      model: an `AlbertModel` (head "none"), `AlbertPretrainer` ("mlm") or
        `AlbertClassifier` ("classifier"), e.g. the fine-tuned model of run_classifier.
      export_dir: the SavedModel folder (or, with `versioned`, the folder of its versions).
      spm_model_file: the SentencePiece model of the vocabulary (copied in as an asset and
        compiled into the in-graph tokenizer).
      do_lower_case: the tokenizer's lower-casing (must be what the model was trained with).
      max_seq_length: length of the rows the text signatures pack (<= the config's
        max_position_embeddings).
      head: the expected head (checked against the model); None: the model's.
      labels: class names of a classifier, returned as `labels` (optional).
      text_pair: make `serving_default` the text-pair signature (for pair tasks).
      versioned: write into a new `export_dir/<unix time>/` (TensorFlow Serving's layout of
        a model's versions, as the original Estimator exports), else into `export_dir`.
      overwrite: replace a non-empty `export_dir` (otherwise an error).
      threshold: a classifier's decision threshold, added as the constant output
        `threshold` (None or NaN: none).

    Returns the folder written. The SavedModel is written into a hidden temporary folder
    beside the target, which then replaces the target (`files.replace_dir`: a rename on a
    local disk; on an object store such as gs:// a copy with `saved_model.pb` last), so a
    crash never leaves a partial SavedModel under the name.

    Raises:
      ExportError: the head, max_seq_length or SentencePiece model do not fit the model, or
        the target is not empty and `overwrite` is False.
      FileNotFoundError / MissingTokenError: the SentencePiece model is missing or lacks
        [CLS], [SEP] or ",".
    """
    actual = head_of(model)
    if head is not None and head != actual:
        raise ExportError(f"head={head!r}, but the model is a {type(model).__name__} (head "
                          f"{actual!r}).")
    if not spm_model_file:
        raise ExportError("A SavedModel export needs the SentencePiece model (--spm_model_file)"
                          ": its text signatures tokenize in the graph.")
    spm_model_file = os.fspath(spm_model_file)
    if threshold is not None and math.isnan(threshold):
        threshold = None
    config = model.config
    if not 3 <= int(max_seq_length) <= config.max_position_embeddings:
        raise ExportError(f"max_seq_length={max_seq_length} must be between 3 and the "
                          f"config's max_position_embeddings ({config.max_position_embeddings}).")
    target = _target_dir(export_dir, versioned)
    _check_target(target, overwrite)

    try:
        tokenizer = InGraphTokenizer(spm_model_file, do_lower_case=do_lower_case,
                                     max_seq_length=max_seq_length)
    except UserError:
        raise
    except ValueError as error:   # not a SentencePiece model
        raise ExportError(f"--spm_model_file: {error}") from None
    if tokenizer.vocab_size > config.vocab_size:
        raise ExportError(f"The SentencePiece model {spm_model_file} has {tokenizer.vocab_size} "
                          f"pieces, more than the model's vocab_size ({config.vocab_size}). Is "
                          "it the vocabulary this model was trained with?")
    # The SentencePiece model is an asset straight from its path (tf.saved_model.save copies
    # assets through tf.io.gfile, gs:// and ram:// included); the generated asset files are
    # staged beside the target, on the same filesystem.
    with _staging_dir(target) as staging, files.replace_dir(target) as tmp:
        module = AlbertServingModule(model, tokenizer, [spm_model_file], do_lower_case,
                                     labels, threshold)
        signatures = module.signatures(text_pair=text_pair)
        info = {
            "head": module.head,
            "do_lower_case": bool(do_lower_case),
            "max_seq_length": int(max_seq_length),
            "labels": None if module._labels is None else [str(x) for x in labels],
            "num_labels": getattr(model, "num_labels", None),
            "serving_default": "text_pair" if text_pair else "text",
            "signatures": sorted(signatures),
            "threshold": module._threshold,
            "spm_model_file": files.basename(spm_model_file),
        }
        config_file = files.join(staging, "albert_config.json")
        files.write_text(config_file, config.to_json_string())
        info_file = files.join(staging, EXPORT_INFO)
        files.write_json(info_file, info, sort_keys=True)
        extra = [config_file, info_file]
        vocab = _companion_vocab(spm_model_file)
        if vocab:
            extra.append(vocab)
        module.assets.extend(tf.saved_model.Asset(path) for path in extra)
        tf.saved_model.save(module, tmp, signatures=signatures)
    tf.get_logger().info("Exported a SavedModel (head %s, signatures %s) to %s", module.head,
                         ", ".join(sorted(signatures)), target)
    return target


def export_checkpoint(model, export_dir, spm_model_file=None,
                      checkpoint_name=DEFAULT_CHECKPOINT_NAME, global_step=None,
                      overwrite=False):
    """Writes an original-format checkpoint directory, laid out like the released models.

    Args:
      model: `AlbertModel` (no heads), `AlbertPretrainer` (with the pretraining heads) or a
        fine-tuned model with a head.
      export_dir: the folder (any `tf.io.gfile` path): `albert_config.json`,
        `<checkpoint_name>.index` / `.data-*`, `checkpoint`, and the SentencePiece model (and
        `.vocab`) when given.
      spm_model_file: copied in under its own name (optional).
      checkpoint_name: the checkpoint prefix in the folder (the released `model.ckpt-best`).
      global_step: stored as `global_step` (default 0).
      overwrite: write into a non-empty `export_dir`, replacing the files of the same names
        (other files stay; the `checkpoint` file names the new checkpoint).

    Returns the checkpoint prefix (`<export_dir>/<checkpoint_name>`).

    Every file appears whole under its name (written under a temporary name, then renamed),
    the checkpoint last: its data shard, its `.index`, then the `checkpoint` file that
    `tf.train.latest_checkpoint` reads, so a reader that finds the checkpoint finds the
    config and vocabulary beside it. Files are written in place rather than in a temporary
    folder: an object store (gs://) has no folder rename, and copying a large checkpoint
    twice would double the export's time.

    Raises:
      ExportError: `export_dir` is not empty and `overwrite` is False.
      FileError: the SentencePiece model cannot be read or a file cannot be written.
    """
    target = os.fspath(export_dir)
    _check_target(target, overwrite)
    files.makedirs(target)
    files.write_text(files.join(target, "albert_config.json"), model.config.to_json_string())
    if spm_model_file:
        spm_model_file = os.fspath(spm_model_file)
        if not tf.io.gfile.exists(spm_model_file):
            raise files.FileError(f"The SentencePiece model {spm_model_file} (--spm_model_file)"
                                  " does not exist.")
        for path in (spm_model_file, _companion_vocab(spm_model_file)):
            if path:
                files.copy(path, files.join(target, files.basename(path)))
    prefix = files.join(target, checkpoint_name)
    checkpoints_lib.save_original_checkpoint(model, prefix, global_step=global_step)
    tf.get_logger().info("Exported an original-format checkpoint to %s", prefix)
    return prefix


def _checkpoint_step(checkpoint):
    """The checkpoint's `global_step`, or None if it has none."""
    prefix = checkpoints_lib.resolve_checkpoint(checkpoint)
    try:
        # The reader takes the prefix as it is; `tf.train.load_variable` would first ask
        # whether it is a folder, which ram:// answers yes for any prefix of a file name.
        reader = tf.compat.v1.train.NewCheckpointReader(prefix)
        return int(reader.get_tensor("global_step")) if reader.has_tensor(
            "global_step") else None
    except (tf.errors.NotFoundError, ValueError):
        return None


def export(albert_config_file, init_checkpoint, export_dir, spm_model_file=None,
           do_lower_case=True, head="auto", format="saved_model", max_seq_length=128,
           labels=None, text_pair=False, versioned=False, overwrite=False,
           checkpoint_name=DEFAULT_CHECKPOINT_NAME, random_init=False, seed=None,
           num_labels=None):
    """Loads a checkpoint and exports it (what `python -m albert_tf.export` does).

    `head="auto"` takes the head the checkpoint holds (`checkpoint_head`). With
    `random_init=True` (and no `init_checkpoint`) the model is freshly initialised instead,
    seeded by `seed`: a reproducible starting point in the original format (e.g. the
    `--init_checkpoint` of a pretraining run that should start from known weights).

    Returns the SavedModel folder or the checkpoint prefix written.
    """
    import keras

    if format not in FORMATS:
        raise ExportError(f"Unknown format {format!r}; expected one of {FORMATS}.")
    if bool(init_checkpoint) == bool(random_init):
        raise ExportError("Give exactly one of --init_checkpoint (the weights to export) and "
                          "--random_init (freshly initialised weights).")
    config = AlbertConfig.from_json_file(albert_config_file)
    if random_init:
        if head == "auto":
            head = "mlm"
        if seed is not None:
            keras.utils.set_random_seed(seed)
        model, head = build_model(config, head, None, num_labels=num_labels)
        step = 0
    else:
        model, head = build_model(config, head, init_checkpoint, num_labels=num_labels)
        step = _checkpoint_step(init_checkpoint)
    if format == "checkpoint":
        return export_checkpoint(model, export_dir, spm_model_file, checkpoint_name,
                                 global_step=step, overwrite=overwrite)
    return export_saved_model(model, export_dir, spm_model_file, do_lower_case,
                              max_seq_length=max_seq_length, head=head, labels=labels,
                              text_pair=text_pair, versioned=versioned, overwrite=overwrite)


# =========================================================================================
# TensorFlow Serving's REST predict format, answered locally
# =========================================================================================


def _to_json(value):
    if isinstance(value, np.ndarray):
        return [_to_json(v) for v in value] if value.ndim else _to_json(value.item())
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, (np.generic,)):
        return value.item()
    return value


def _from_json(value):
    """JSON values as Serving reads them: {"b64": ...} is binary."""
    if isinstance(value, dict) and set(value) == {"b64"}:
        import base64
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    return value


def rest_predict(loaded, body):
    """Answers a TensorFlow Serving REST `:predict` request body with a loaded SavedModel.

    For trying a request before deploying, and for tests: the same JSON in and out as
    `POST /v1/models/<name>:predict` (row format `{"signature_name": ..., "instances":
    [{input: value}, ...]}` -> `{"predictions": [{output: value}, ...]}`; columnar format
    `{"inputs": {input: [values]}}` -> `{"outputs": {output: [values]}}`; a single output is
    given without its name, as Serving does).

    Args:
      loaded: `tf.saved_model.load(path)`.
      body: the request, a dict or a JSON string.

    Returns the response as a dict.
    """
    if isinstance(body, (str, bytes)):
        body = json.loads(body)
    name = body.get("signature_name", "serving_default")
    if name not in loaded.signatures:
        raise ExportError(f"No signature {name!r}; the SavedModel has "
                          f"{sorted(loaded.signatures)}.")
    function = loaded.signatures[name]
    specs = function.structured_input_signature[1]
    if "instances" in body:
        instances = body["instances"]
        if not isinstance(instances, list) or not instances:
            raise ExportError("'instances' must be a non-empty list.")
        if len(specs) == 1 and not isinstance(instances[0], dict):
            instances = [{next(iter(specs)): value} for value in instances]
        missing = [key for key in specs if any(key not in row for row in instances)]
        if missing:
            raise ExportError(f"Every instance needs the inputs {sorted(specs)}; missing "
                              f"{missing}.")
        columns = {key: [_from_json(row[key]) for row in instances] for key in specs}
    elif "inputs" in body:
        inputs = body["inputs"]
        if not isinstance(inputs, dict):
            inputs = {next(iter(specs)): inputs}
        columns = {key: _from_json(inputs[key]) for key in specs}
    else:
        raise ExportError("The request needs 'instances' (row format) or 'inputs' (columnar).")
    tensors = {key: tf.constant(columns[key], dtype=spec.dtype) for key, spec in specs.items()}
    outputs = {key: value.numpy() for key, value in function(**tensors).items()}
    if "instances" in body:
        rows = [{key: _to_json(value[i]) for key, value in outputs.items()}
                for i in range(len(instances))]
        if len(outputs) == 1:
            rows = [next(iter(row.values())) for row in rows]
        return {"predictions": rows}
    result = {key: _to_json(value) for key, value in outputs.items()}
    return {"outputs": next(iter(result.values())) if len(result) == 1 else result}


# =========================================================================================
# Command line
# =========================================================================================


def _define_flags():
    """The flags of `python -m albert_tf.export` (kept when another script in the same
    process, or a test, defined a flag of the same name first)."""
    from absl import flags

    from albert_tf.cli import define_flag

    f = flags
    define_flag(f.DEFINE_string, "albert_config_file", None, "The config JSON of the model.")
    define_flag(f.DEFINE_string, "init_checkpoint", None,
                "The original-format checkpoint to export (a prefix or a directory).")
    define_flag(f.DEFINE_string, "spm_model_file", None,
                "The SentencePiece model of the vocabulary (needed for SavedModels; copied "
                "beside checkpoints).")
    define_flag(f.DEFINE_bool, "do_lower_case", True,
                "Lower-case text in the text signatures (True for uncased models).")
    define_flag(f.DEFINE_string, "export_dir", None,
                "The folder to write (local or any tf.io.gfile path, e.g. gs://bucket/x).")
    define_flag(f.DEFINE_enum, "format", "saved_model", list(FORMATS),
                "saved_model: for serving and Keras; checkpoint: an original-format "
                "checkpoint directory (the original export_checkpoints.py).")
    define_flag(f.DEFINE_enum, "head", "auto", ["auto", *HEADS],
                "What to export on top of the encoder: mlm (the pretraining heads), "
                "classifier (a run_classifier checkpoint), none; auto: what the checkpoint "
                "holds.")
    define_flag(f.DEFINE_integer, "max_seq_length", 128,
                "Row length of the text signatures' packed inputs.")
    define_flag(f.DEFINE_list, "labels", None,
                "Class names of a classifier, in id order (optional).")
    define_flag(f.DEFINE_bool, "text_pair", False,
                "Make serving_default the text-pair signature (pair tasks).")
    define_flag(f.DEFINE_bool, "versioned", False,
                "Write into a new <export_dir>/<unix time>/ (TensorFlow Serving's version "
                "folders).")
    define_flag(f.DEFINE_bool, "overwrite", False,
                "Replace a non-empty --export_dir (a SavedModel replaces the whole folder; a "
                "checkpoint export replaces the files of the same names).")
    define_flag(f.DEFINE_bool, "random_init", False,
                "Export freshly initialised weights instead of --init_checkpoint (a "
                "reproducible starting point, seeded by --seed).")
    define_flag(f.DEFINE_integer, "seed", None, "Seed of the weights of --random_init.")
    define_flag(f.DEFINE_integer, "num_labels", None,
                "Classifier outputs (default: from the checkpoint's output_weights).")
    # The original export scripts' flags.
    define_flag(f.DEFINE_string, "albert_directory", None,
                "Original flag: a folder with albert_config.json and the checkpoint "
                "--checkpoint_name (used when --albert_config_file / --init_checkpoint are "
                "not given).")
    define_flag(f.DEFINE_string, "checkpoint_name", DEFAULT_CHECKPOINT_NAME,
                "Original flag: the checkpoint in --albert_directory; also the name of the "
                "exported checkpoint.")
    define_flag(f.DEFINE_string, "export_path", None,
                "Original flag: the same as --export_dir.")
    define_flag(f.DEFINE_bool, "use_einsum", True,
                "Original flag, accepted for compatibility; our layers give the same numbers "
                "either way.")


def main(argv):
    """`python -m albert_tf.export`: the flags' paths may be on any `tf.io.gfile` filesystem
    (gs://, ...). Bad input (a missing flag, file or checkpoint variable) is one `ERROR:`
    line and exit status 1."""
    from albert_tf import cli

    with cli.script_main(argv) as FLAGS:
        config_file, checkpoint = FLAGS.albert_config_file, FLAGS.init_checkpoint
        if FLAGS.albert_directory:
            config_file = config_file or files.join(FLAGS.albert_directory,
                                                    "albert_config.json")
            checkpoint = checkpoint or files.join(FLAGS.albert_directory,
                                                  FLAGS.checkpoint_name)
        export_dir = FLAGS.export_dir or FLAGS.export_path
        problems = [text for text, missing in (
            ("--albert_config_file (or --albert_directory)", not config_file),
            ("--init_checkpoint (or --albert_directory, or --random_init)",
             not checkpoint and not FLAGS.random_init),
            ("--export_dir (or --export_path)", not export_dir)) if missing]
        if problems:
            raise ExportError(f"Missing {', '.join(problems)}.")
        written = export(config_file, checkpoint, export_dir,
                         spm_model_file=FLAGS.spm_model_file, do_lower_case=FLAGS.do_lower_case,
                         head=FLAGS.head, format=FLAGS.format,
                         max_seq_length=FLAGS.max_seq_length, labels=FLAGS.labels,
                         text_pair=FLAGS.text_pair, versioned=FLAGS.versioned,
                         overwrite=FLAGS.overwrite, checkpoint_name=FLAGS.checkpoint_name,
                         random_init=FLAGS.random_init, seed=FLAGS.seed,
                         num_labels=FLAGS.num_labels)
    print(f"Exported to {written}")


if __name__ == "__main__":
    from albert_tf import cli

    cli.run(main, _define_flags)
