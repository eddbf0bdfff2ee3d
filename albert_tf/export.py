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

SQuAD and RACE models (head "squad_v1", "squad_v2", "race") have one signature,
`serving_default`, over the task's packed features (`tasks/squad.py`, `tasks/race.py`):
`input_ids`, `input_mask`, `segment_ids` int32 [B, max_seq_length] (RACE [B, C,
max_seq_length]; SQuAD v2.0 also `p_mask`), returning the head's inference outputs only, as
the original run_squad exports: v1.1 `start_logits`, `end_logits` [B, T]; v2.0
`start_top_log_probs`, `start_top_index`, `end_top_log_probs`, `end_top_index`,
`cls_logits`; RACE `logits`, `probabilities` [B, C]. (The original's v1 export also wrote a
TFLite file; `tf.lite.TFLiteConverter.from_saved_model` makes one from this SavedModel.)

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
signatures, length_buckets).

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
import math
import os
import time

import tensorflow as tf

from albert_tf import bucketing
from albert_tf import checkpoints as checkpoints_lib
from albert_tf import files
from albert_tf.config import AlbertConfig
from albert_tf.errors import UserError
# The serving module and the REST helper live in their own modules; their public names are
# albert_tf.export's too.
from albert_tf.export_rest import rest_predict  # noqa: F401
from albert_tf.export_serving import (FEATURE_HEADS, TOKEN_INPUTS,  # noqa: F401
                                      AlbertServingModule, ExportError, head_of)
from albert_tf.heads import AlbertClassifier, AlbertPretrainer
from albert_tf.in_graph_tokenization import InGraphTokenizer
from albert_tf.modeling import AlbertModel

# The heads `build_model` (and the command line) builds from a checkpoint; a SavedModel of
# any head is written by `export_saved_model` from the model itself.
HEADS = ("none", "mlm", "classifier")
FORMATS = ("saved_model", "checkpoint")
EXPORT_INFO = "export_info.json"
DEFAULT_CHECKPOINT_NAME = "model.ckpt-best"


# =========================================================================================
# Models
# =========================================================================================


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


def export_saved_model(model, export_dir, spm_model_file, do_lower_case=True,
                       max_seq_length=128, head=None, labels=None, text_pair=False,
                       versioned=False, overwrite=False, threshold=None,
                       length_buckets="default"):
    """Writes a SavedModel of `model` with the signatures of its head (module docstring).

    Args:
      model: any of our models: `AlbertModel` (head "none"), `AlbertPretrainer` ("mlm"),
        `AlbertClassifier` ("classifier", also regression), `AlbertSquadV1` / `AlbertSquadV2`
        ("squad_v1" / "squad_v2") or `AlbertMultipleChoice` ("race"); e.g. the fine-tuned
        model of run_classifier or run_squad.
      export_dir: the SavedModel folder (or, with `versioned`, the folder of its versions).
      spm_model_file: the SentencePiece model of the vocabulary (copied in as an asset and,
        for the text heads, compiled into the in-graph tokenizer; optional for SQuAD / RACE).
      do_lower_case: the tokenizer's lower-casing (must be what the model was trained with).
      max_seq_length: length of the rows the text signatures pack, or of the SQuAD / RACE
        feature rows (<= the config's max_position_embeddings).
      head: the expected head (checked against the model); None: the model's.
      labels: class names of a classifier, returned as `labels` (optional).
      text_pair: make `serving_default` the text-pair signature (for pair tasks).
      versioned: write into a new `export_dir/<unix time>/` (TensorFlow Serving's layout of
        a model's versions, as the original Estimator exports), else into `export_dir`.
      overwrite: replace a non-empty `export_dir` (otherwise an error).
      threshold: a classifier's decision threshold, added as the constant output
        `threshold` (None or NaN: none).
      length_buckets: what the text signatures cut a request to: the smallest of these
        lengths that holds its longest text (a `--length_buckets` value: "default" is
        64,128,256 below `max_seq_length`; "none" always `max_seq_length`, as the original;
        or comma-separated lengths, or a sequence of ints). The outputs do not change, only
        the work done. The lengths, ending with `max_seq_length`, are recorded in
        `export_info.json` as `length_buckets`.

    Returns the folder written. The SavedModel is written into a hidden temporary folder
    beside the target, which then replaces the target (`files.replace_dir`: a rename on a
    local disk; on an object store such as gs:// a copy with `saved_model.pb` last), so a
    crash never leaves a partial SavedModel under the name.

    Raises:
      ExportError: the head, max_seq_length or SentencePiece model do not fit the model, or
        the target is not empty and `overwrite` is False.
      BucketError: `length_buckets` is not 'default', 'none' or positive lengths (raised
        before anything is written).
      FileNotFoundError / MissingTokenError: the SentencePiece model is missing or lacks
        [CLS], [SEP] or ",".
    """
    # A bad --length_buckets stops the export before anything is written.
    buckets = bucketing.parse_buckets(length_buckets)
    actual = head_of(model)
    if head is not None and head != actual:
        raise ExportError(f"head={head!r}, but the model is a {type(model).__name__} (head "
                          f"{actual!r}).")
    features_only = actual in FEATURE_HEADS
    if not spm_model_file and not features_only:
        raise ExportError("A SavedModel export needs the SentencePiece model (--spm_model_file)"
                          ": its text signatures tokenize in the graph.")
    spm_model_file = os.fspath(spm_model_file) if spm_model_file else None
    if threshold is not None and math.isnan(threshold):
        threshold = None
    config = model.config
    if not 3 <= int(max_seq_length) <= config.max_position_embeddings:
        raise ExportError(f"max_seq_length={max_seq_length} must be between 3 and the "
                          f"config's max_position_embeddings ({config.max_position_embeddings}).")
    target = _target_dir(export_dir, versioned)
    _check_target(target, overwrite)
    tokenizer = None if features_only else _tokenizer(spm_model_file, do_lower_case,
                                                      max_seq_length, config)
    # The SentencePiece model is an asset straight from its path (tf.saved_model.save copies
    # assets through tf.io.gfile, gs:// and ram:// included); the generated asset files are
    # staged beside the target, on the same filesystem.
    with _staging_dir(target) as staging, files.replace_dir(target) as tmp:
        module = AlbertServingModule(model, tokenizer, [spm_model_file] if spm_model_file
                                     else [], do_lower_case, labels, threshold,
                                     max_seq_length=int(max_seq_length),
                                     length_buckets=buckets)
        signatures = module.signatures(text_pair=text_pair)
        info = {
            "head": module.head,
            "do_lower_case": bool(do_lower_case),
            "max_seq_length": int(max_seq_length),
            "labels": module.label_names,
            "num_labels": getattr(model, "num_labels", None),
            "serving_default": ("features" if features_only
                                else "text_pair" if text_pair else "text"),
            "signatures": sorted(signatures),
            "threshold": module.threshold,
            "spm_model_file": spm_model_file and files.basename(spm_model_file),
            "length_buckets": list(bucketing.bucket_lengths(max_seq_length, buckets)),
        }
        config_file = files.join(staging, "albert_config.json")
        files.write_text(config_file, config.to_json_string())
        info_file = files.join(staging, EXPORT_INFO)
        files.write_json(info_file, info, sort_keys=True)
        extra = [config_file, info_file]
        vocab = spm_model_file and _companion_vocab(spm_model_file)
        if vocab:
            extra.append(vocab)
        module.assets.extend(tf.saved_model.Asset(path) for path in extra)
        tf.saved_model.save(module, tmp, signatures=signatures)
    tf.get_logger().info("Exported a SavedModel (head %s, signatures %s) to %s", module.head,
                         ", ".join(sorted(signatures)), target)
    return target


def _tokenizer(spm_model_file, do_lower_case, max_seq_length, config):
    """The in-graph tokenizer of the text signatures, checked against the model's vocabulary."""
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
    return tokenizer


def export_finetuned(model, output_dir, export_dir, init_checkpoint=None, **kwargs):
    """Exports a fine-tuning run's best weights: `<output_dir>/model.ckpt-best` (the
    checkpoint the evaluation picked), else `init_checkpoint`, loaded strictly into `model`.

    What run_squad's `--export_dir` does (the original's export of a fine-tuned model).
    `kwargs` go to `export_saved_model` (e.g. `max_seq_length`); the SavedModel is written
    into a new version folder `<export_dir>/<unix time>/`. Returns that folder.

    Raises:
      ExportError: neither checkpoint exists.
      CheckpointMismatchError: the checkpoint lacks a variable of `model`.
    """
    from albert_tf.finetuning import BEST_PREFIX

    prefix = files.join(output_dir, BEST_PREFIX)
    if not tf.io.gfile.exists(prefix + ".index"):
        prefix = init_checkpoint
        if not prefix:
            raise ExportError(f"Nothing to export: no {output_dir}/{BEST_PREFIX} and no "
                              "--init_checkpoint.")
    checkpoints_lib.load_original_checkpoint(model, prefix, strict=True)
    kwargs.setdefault("versioned", True)
    target = export_saved_model(model, export_dir, kwargs.pop("spm_model_file", None),
                                **kwargs)
    tf.get_logger().info("Exported %s (head %s) to %s.", prefix, head_of(model), target)
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
           num_labels=None, length_buckets="default"):
    """Loads a checkpoint and exports it (what `python -m albert_tf.export` does).

    `head="auto"` takes the head the checkpoint holds (`checkpoint_head`). With
    `random_init=True` (and no `init_checkpoint`) the model is freshly initialised instead,
    seeded by `seed`: a reproducible starting point in the original format (e.g. the
    `--init_checkpoint` of a pretraining run that should start from known weights).

    `length_buckets` is what a SavedModel's text signatures cut a request to
    (`export_saved_model`: "default", "none" or comma-separated lengths); it is checked
    before the checkpoint is read, and unused by `format="checkpoint"`. The other arguments
    are those of `export_saved_model` / `export_checkpoint` and the flags' (`_options`).

    Returns the SavedModel folder or the checkpoint prefix written.

    Raises:
      BucketError: a bad `length_buckets` (before anything is read or written).
    """
    import keras

    if format not in FORMATS:
        raise ExportError(f"Unknown format {format!r}; expected one of {FORMATS}.")
    if format == "saved_model":
        bucketing.parse_buckets(length_buckets)   # a bad value stops before any work
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
                              text_pair=text_pair, versioned=versioned, overwrite=overwrite,
                              length_buckets=length_buckets)


# =========================================================================================
# Command line
# =========================================================================================


def _options():
    """The flags of `python -m albert_tf.export`, named as the arguments of `export`, and
    the original export scripts' (export_checkpoints.py, export_to_tfhub.py)."""
    from albert_tf import cli
    return [
        cli.option("albert_config_file"),
        cli.option("init_checkpoint", help="The original-format checkpoint to export (a "
                   "prefix or a directory)."),
        cli.option("spm_model_file", help="The SentencePiece model of the vocabulary (needed "
                   "for SavedModels; copied beside checkpoints)."),
        cli.option("do_lower_case", help="Lower-case text in the text signatures (True for "
                   "uncased models)."),
        cli.Option("export_dir", None,
                   "The folder to write (local or any tf.io.gfile path, e.g. gs://bucket/x)."),
        cli.Option("format", "saved_model", "saved_model: for serving and Keras; checkpoint: "
                   "an original-format checkpoint directory (the original "
                   "export_checkpoints.py).", choices=FORMATS),
        cli.Option("head", "auto", "What to export on top of the encoder: mlm (the pretraining "
                   "heads), classifier (a run_classifier checkpoint), none; auto: what the "
                   "checkpoint holds.", choices=("auto", *HEADS)),
        cli.Option("max_seq_length", 128, "Row length of the text signatures' packed inputs.",
                   int),
        cli.Option("length_buckets", "default", "What the text signatures cut a request to: "
                   "the smallest of these lengths that holds its longest text ('default': "
                   "64,128,256 below --max_seq_length; 'none': always --max_seq_length, as the "
                   "original). The outputs do not change, only the work done."),
        cli.Option("labels", None, "Class names of a classifier, in id order (optional).",
                   list),
        cli.Option("text_pair", False,
                   "Make serving_default the text-pair signature (pair tasks).", bool),
        cli.Option("versioned", False, "Write into a new <export_dir>/<unix time>/ "
                   "(TensorFlow Serving's version folders).", bool),
        cli.Option("overwrite", False, "Replace a non-empty --export_dir (a SavedModel "
                   "replaces the whole folder; a checkpoint export replaces the files of the "
                   "same names).", bool),
        cli.Option("random_init", False, "Export freshly initialised weights instead of "
                   "--init_checkpoint (a reproducible starting point, seeded by --seed).",
                   bool),
        cli.Option("seed", None, "Seed of the weights of --random_init.", int),
        cli.Option("num_labels", None,
                   "Classifier outputs (default: from the checkpoint's output_weights).", int),
        # The original export scripts' flags.
        cli.Option("albert_directory", None, "Original flag: a folder with albert_config.json "
                   "and the checkpoint --checkpoint_name (used when --albert_config_file / "
                   "--init_checkpoint are not given)."),
        cli.Option("checkpoint_name", DEFAULT_CHECKPOINT_NAME, "Original flag: the checkpoint "
                   "in --albert_directory; also the name of the exported checkpoint."),
        cli.Option("export_path", None, "Original flag: the same as --export_dir."),
        cli.option("use_einsum"),
    ]


def _define_flags():
    """The flags of `python -m albert_tf.export` (kept when another script in the same
    process, or a test, defined a flag of the same name first)."""
    from albert_tf import cli
    cli.define(_options())


def main(argv):
    """`python -m albert_tf.export`: the flags' paths may be on any `tf.io.gfile` filesystem
    (gs://, ...). Bad input (a missing flag, file or checkpoint variable) is one `ERROR:`
    line and exit status 1."""
    from albert_tf import cli

    with cli.script_main(argv) as FLAGS:
        values = cli.values_of(_options(), FLAGS)
        config_file, checkpoint = values.pop("albert_config_file"), values.pop("init_checkpoint")
        directory, export_path = values.pop("albert_directory"), values.pop("export_path")
        del values["use_einsum"]   # the original's, no effect here
        if directory:
            config_file = config_file or files.join(directory, "albert_config.json")
            checkpoint = checkpoint or files.join(directory, values["checkpoint_name"])
        export_dir = values.pop("export_dir") or export_path
        problems = [text for text, missing in (
            ("--albert_config_file (or --albert_directory)", not config_file),
            ("--init_checkpoint (or --albert_directory, or --random_init)",
             not checkpoint and not values["random_init"]),
            ("--export_dir (or --export_path)", not export_dir)) if missing]
        if problems:
            raise ExportError(f"Missing {', '.join(problems)}.")
        written = export(config_file, checkpoint, export_dir, **values)
    print(f"Exported to {written}")

if __name__ == "__main__":
    from albert_tf import cli

    cli.run(main, _define_flags)
