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

The work is split by concern: `albert_tf/convert_weights.py` (`Weights`, the checks),
`albert_tf/convert_readers.py` (one reader per format), `albert_tf/convert_writers.py` (one
writer per target); this module detects the format, runs the command and re-exports their
public names.

In Python: `read_weights(path)` gives a `Weights` (arrays in original names, config, head,
tokenizer), `write_weights(weights, DIR, to)` writes one, `load_weights(model, path)` loads any
of the formats into one of our models and returns a `checkpoints.LoadReport` in the source's
own names.
"""

import uuid

import tensorflow as tf

from albert_tf import checkpoints as checkpoints_lib
from albert_tf import files
from albert_tf.convert_readers import read_source, resolve_prefix, tokenization_info
from albert_tf.convert_weights import (CHECKPOINT_NAME, FORMATS, HEADS, KERAS_HUB_SPM,
                                       SPM_NAME, TARGETS, Weights, check_weights,
                                       config_from_file, head_of_names, original_shapes)
from albert_tf.convert_writers import check_output, write_weights
from albert_tf.hub_formats import ConversionError

__all__ = ["CHECKPOINT_NAME", "FORMATS", "HEADS", "KERAS_HUB_SPM", "SPM_NAME", "TARGETS",
           "ConversionError", "Weights", "assign_weights", "build_model", "check_output",
           "check_spm_model", "detect_format", "head_of_names", "init_checkpoint_of",
           "is_saved_model_export", "load_weights", "original_checkpoint", "original_shapes",
           "read_weights", "resolve_export", "tokenization_info", "write_weights"]


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
    if albert_config_file and source_format in ("hf", "keras_hub"):
        given = config_from_file(albert_config_file)
    weights = read_source(path, source_format, albert_config_file)
    weights.input = str(path)
    if albert_config_file and source_format in ("hf", "keras_hub"):
        weights.config = _matching_config(given, albert_config_file, weights)
    if spm_model_file:
        # A source's own SentencePiece model travels as it is; one given here is checked.
        weights.spm_model = files.read_bytes(spm_model_file, "SentencePiece model")
        check_spm_model(weights.spm_model, spm_model_file, weights.config)
    if do_lower_case is not None:
        weights.do_lower_case = bool(do_lower_case)
    return check_weights(weights, head)


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
        return resolve_prefix(str(path))
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


def _options():
    """The flags of `python -m albert_tf.convert`."""
    from albert_tf import cli
    return [
        cli.Option("input", None, "The weights to convert: an original checkpoint (prefix or "
                   "folder), a Hugging Face folder, a keras-hub preset, a TF-Hub module or an "
                   "albert_tf export."),
        cli.Option("output", None, "The folder to write."),
        cli.Option("to", None, "original: albert_config.json + model.ckpt-best; hf: a Hugging "
                   "Face folder; keras_hub: a keras-hub AlbertBackbone preset.",
                   choices=TARGETS),
        cli.Option("head", "auto", "The head to convert; auto: the source's. none keeps the "
                   "encoder alone (needed for keras_hub); multiple_choice reads an original "
                   "output_weights [1, H] as RACE's head rather than a regression "
                   "classifier.", choices=("auto", *HEADS)),
        cli.option("albert_config_file", help="The config JSON, for sources that have none "
                   "(TF-Hub modules, bare checkpoints)."),
        cli.option("spm_model_file", help="The SentencePiece model to ship with the output "
                   "(default: the source's)."),
        cli.option("do_lower_case", default=None, help="The tokenizer's lower-casing to record "
                   "(default: the source's, else True)."),
        cli.Option("overwrite", False, "Replace --output if it exists.", bool),
    ]


def _define_flags():
    """Defines the script's flags; see `cli.run`."""
    from albert_tf import cli
    cli.define(_options())


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

