"""Original (TF1, name-based) ALBERT checkpoints: read into our models, write from them.

Our Keras variables are created under the original scopes, so a variable's `path` IS its
original name. The table below lists every name the original graphs create, with its shape;
it is what `save_original_checkpoint` writes and what `load_original_checkpoint` looks for.
R stands for `bert/encoder/transformer/group_<g>/inner_group_<k>`.

    original name                                          shape       created when
    bert/embeddings/word_embeddings                        [V, E]
    bert/embeddings/token_type_embeddings                  [T, E]
    bert/embeddings/position_embeddings                    [P, E]
    bert/embeddings/LayerNorm/{beta,gamma}                 [E]
    bert/encoder/embedding_hidden_mapping_in/{kernel,bias} [E, H] [H]  E != H
    R/attention_1/self/{query,key,value}/{kernel,bias}     [H, H] [H]
    R/attention_1/output/dense/{kernel,bias}               [H, H] [H]
    R/LayerNorm/{beta,gamma}                               [H]         after attention
    R/ffn_1/intermediate/dense/{kernel,bias}               [H, I] [I]
    R/ffn_1/intermediate/output/dense/{kernel,bias}        [I, H] [H]
    R/LayerNorm_1/{beta,gamma}                             [H]         after the FFN
    bert/pooler/dense/{kernel,bias}                        [H, H] [H]
    cls/predictions/transform/dense/{kernel,bias}          [H, E] [E]  pretraining heads
    cls/predictions/transform/LayerNorm/{beta,gamma}       [E]
    cls/predictions/output_bias                            [V]
    cls/seq_relationship/output_weights                    [2, H]      ([out, in])
    cls/seq_relationship/output_bias                       [2]
    output_weights, output_bias                            [C, H] [C]  classifier (C labels),
                                                                       RACE (C = 1)
    cls/squad/output_weights, cls/squad/output_bias        [2, H] [2]  SQuAD v1.1
    start_logits/dense, end_logits/dense_0, end_logits/LayerNorm,
    end_logits/dense_1, answer_class/dense_0, answer_class/dense_1     SQuAD v2.0

Also found in checkpoints, and skipped on purpose: `global_step`, optimizer slots
(`<name>/adam_m`, `<name>/adam_v`, `lamb_m`/`lamb_v`). TF-Hub exports prefix names with
`module/`, which is removed.
"""

import dataclasses
import os
import re

import numpy as np
import tensorflow as tf

from albert_tf import files
from albert_tf.errors import UserError

# Names in a checkpoint that are training state, not model weights.
_IGNORED_PATTERNS = (
    re.compile(r"(^|/)global_step$"),
    re.compile(r"/(adam|lamb)_[mv]$"),
    re.compile(r"(^|/)(beta1_power|beta2_power)$"),
    re.compile(r"^_CHECKPOINTABLE_OBJECT_GRAPH$"),
    re.compile(r"(^|/)(good_steps|current_loss_scale)$"),
)
_HUB_PREFIX = "module/"
_GROUP_RE = re.compile(r"/group_\d+/")


def original_name(variable):
    """The original TF1 name of one of our model's variables (its Keras path)."""
    return variable.path


class CheckpointMismatchError(UserError, ValueError):
    """A checkpoint does not fit the model: nothing matched, a shape differs, or strict failed."""


@dataclasses.dataclass
class LoadReport:
    """What `load_original_checkpoint` did, in original variable names.

    Attributes:
      checkpoint: the checkpoint prefix that was read.
      loaded: model variables that received a value.
      missing: model variables the checkpoint lacks (left as initialised).
      unused: checkpoint variables no model variable took (optimizer slots and `global_step`
        are not counted here).
      skipped: training-state names recognised and ignored (optimizer slots, `global_step`).
      renamed: {model name: checkpoint name} where a name was mapped (TF-Hub `module/`
        prefix, `group_0` fallback).
    """

    checkpoint: str
    loaded: list
    missing: list
    unused: list
    skipped: list
    renamed: dict = dataclasses.field(default_factory=dict)

    def __str__(self):
        lines = [f"Checkpoint {self.checkpoint}: loaded {len(self.loaded)} variables, "
                 f"{len(self.missing)} missing, {len(self.unused)} unused, "
                 f"{len(self.skipped)} training-state entries skipped."]
        for title, names in (("missing (left as initialised)", self.missing),
                             ("unused (in the checkpoint, not in the model)", self.unused)):
            if names:
                lines.append(f"  {title}:")
                lines.extend(f"    {name}" for name in names)
        return "\n".join(lines)


def resolve_checkpoint(path):
    """Turns a checkpoint prefix or a directory into a checkpoint prefix.

    A directory with a `checkpoint` index file gives its latest checkpoint; without one, the
    `model.ckpt-<step>` with the highest step (or a lone `*.index`) is chosen and logged.
    Any `tf.io.gfile` filesystem (`gs://`, `ram://`); `path` may be a `pathlib.Path`.
    Temporary files of an unfinished save (names starting with `.`) are never chosen.
    """
    path = os.fspath(path)
    # A prefix with its index file is a checkpoint, even where `isdir` is true of any name
    # prefix (ram:// says so of `model.ckpt` when `model.ckpt.index` exists).
    if tf.io.gfile.isdir(path) and not tf.io.gfile.exists(path + ".index"):
        latest = tf.train.latest_checkpoint(path)
        if latest:
            return latest
        indexes = [index for index in tf.io.gfile.glob(files.join(path, "*.index"))
                   if not files.is_hidden(index)]
        if not indexes:
            raise FileNotFoundError(f"No checkpoint in directory {path!r}: it has neither a "
                                    "'checkpoint' file nor any '*.index' file.")

        def step(index):
            match = re.search(r"-(\d+)\.index$", index)
            return int(match.group(1)) if match else -1

        chosen = max(indexes, key=lambda index: (step(index), index))[:-len(".index")]
        tf.get_logger().info("Directory %s has no 'checkpoint' file; using %s", path, chosen)
        return chosen
    if tf.io.gfile.exists(path + ".index"):
        return path
    raise FileNotFoundError(f"No checkpoint at {path!r}: expected a directory or a prefix with "
                            f"{path!r}.index next to it (e.g. albert_base/model.ckpt-best).")


def checkpoint_reader(prefix):
    """A reader of the checkpoint at `prefix` (any filesystem).

    `tf.train.load_checkpoint` would first ask whether `prefix` is a folder, which on
    ram:// holds for any prefix of a file name; the prefix is used here as it is.
    """
    return tf.compat.v1.train.NewCheckpointReader(os.fspath(prefix))


def read_checkpoint(path):
    """Returns (prefix, {name: np.ndarray}) for every tensor of a name-based checkpoint."""
    prefix = resolve_checkpoint(path)
    reader = checkpoint_reader(prefix)
    names = reader.get_variable_to_shape_map()
    return prefix, {name: reader.get_tensor(name) for name in names}


def _is_training_state(name):
    return any(pattern.search(name) for pattern in _IGNORED_PATTERNS)


def load_original_checkpoint(model, path, strict=False, init_from_group0=False):
    """Loads an original-format ALBERT checkpoint into one of our models.

    Args:
      model: an `AlbertModel` or a model with a head (`AlbertPretrainer`, `AlbertClassifier`,
        ...). Its variables exist from construction on.
      path: a checkpoint prefix (`albert_base/model.ckpt-best`) or a directory (its
        `checkpoint` file, else the newest `model.ckpt-*`).
      strict: raise if any model variable is missing from the checkpoint.
      init_from_group0: when the model has more groups than the checkpoint, take
        `group_<n>` variables from `group_0` (the original's `--init_from_group0`).

    Returns a `LoadReport`. Raises `CheckpointMismatchError` when no variable matched (a
    fine-tune that silently starts from random weights is worse than an error), on any shape
    mismatch (naming the variable and both shapes), and with `strict` on missing variables.
    """
    prefix = resolve_checkpoint(path)
    reader = checkpoint_reader(prefix)
    shapes = reader.get_variable_to_shape_map()

    skipped = sorted(name for name in shapes if _is_training_state(name))
    available = {}
    for name in shapes:
        if name in skipped:
            continue
        key = name[len(_HUB_PREFIX):] if name.startswith(_HUB_PREFIX) else name
        available[key] = name

    loaded, missing, renamed, used = [], [], {}, set()
    assignments = []
    for variable in model.weights:
        ours = original_name(variable)
        key = ours
        if key not in available and init_from_group0 and _GROUP_RE.search(key):
            key = _GROUP_RE.sub("/group_0/", key, count=1)
        if key not in available:
            missing.append(ours)
            continue
        stored = available[key]
        if stored != ours:
            renamed[ours] = stored
        expected = tuple(variable.shape)
        found = tuple(shapes[stored])
        if expected != found:
            raise CheckpointMismatchError(
                f"Shape mismatch for {ours}: the model has {list(expected)}, the checkpoint "
                f"{prefix} has {list(found)} (as {stored}). Is --albert_config_file the config "
                "this checkpoint was trained with?")
        assignments.append((variable, stored))
        loaded.append(ours)
        used.add(stored)

    if not loaded:
        sample = ", ".join(sorted(available)[:5]) or "(no variables)"
        raise CheckpointMismatchError(
            f"No variable of the model matched the checkpoint {prefix}. The model expects names "
            f"like {original_name(model.weights[0])}; the checkpoint has {sample}, ... "
            "Is this an ALBERT checkpoint in the original (TF1) format?")
    if strict and missing:
        raise CheckpointMismatchError(
            f"strict loading from {prefix}: {len(missing)} model variables are not in the "
            f"checkpoint: {', '.join(missing)}")

    for variable, stored in assignments:
        variable.assign(reader.get_tensor(stored).astype(variable.dtype))
    unused = sorted(name for key, name in available.items() if name not in used)
    report = LoadReport(checkpoint=prefix, loaded=loaded, missing=missing, unused=unused,
                        skipped=skipped, renamed=renamed)
    tf.get_logger().info("%s", report)
    return report


def model_variables_by_original_name(model):
    """{original name: variable} for every variable of the model, in creation order."""
    table = {}
    for variable in model.weights:
        name = original_name(variable)
        if name in table:
            raise ValueError(f"Two variables of {model.name} have the original name {name}.")
        table[name] = variable
    return table


def save_original_checkpoint(model, prefix, global_step=None):
    """Writes the model's weights as an original-format (TF1, name-based) checkpoint.

    The files `<prefix>.index` and `<prefix>.data-00000-of-00001` hold exactly the original
    names and shapes (heads included), readable by the original code, by
    `tf.train.load_variable` and by tf-models-official's converter. A `global_step` (int64)
    is written as the original's checkpoints have one. The files are first written under a
    temporary prefix and then renamed, so a crash never leaves a complete-looking checkpoint;
    a `checkpoint` index file naming it is written beside it.

    Returns the prefix.
    """
    prefix = os.fspath(prefix)
    directory = files.dirname(prefix)
    if directory:
        files.makedirs(directory)
    names, tensors = [], []
    for name, variable in model_variables_by_original_name(model).items():
        names.append(name)
        tensors.append(tf.convert_to_tensor(variable.value
                                            if hasattr(variable, "value") else variable))
    step = 0 if global_step is None else int(global_step)
    names.append("global_step")
    tensors.append(tf.constant(step, tf.int64))

    # `.<name>.tmp-<unique>`: hidden from `*.index` globs and from `resolve_checkpoint`.
    tmp_prefix = files.temporary_name(prefix)
    suffixes = (".data-00000-of-00001", ".index")
    try:
        with tf.device("/cpu:0"):
            tf.raw_ops.SaveV2(prefix=tmp_prefix, tensor_names=names,
                              shape_and_slices=[""] * len(names), tensors=tensors)
        # The data shard first, the index last: a reader looks for the index.
        for suffix in suffixes:
            tf.io.gfile.rename(tmp_prefix + suffix, prefix + suffix, overwrite=True)
    finally:
        for suffix in suffixes:
            if tf.io.gfile.exists(tmp_prefix + suffix):
                tf.io.gfile.remove(tmp_prefix + suffix)
    _write_checkpoint_state(directory, prefix)
    return prefix


def _write_checkpoint_state(directory, prefix):
    """Writes (atomically) the `checkpoint` text file that `tf.train.latest_checkpoint`
    reads, naming `prefix` relative to `directory`."""
    relative = files.basename(prefix)
    text = (f'model_checkpoint_path: "{relative}"\n'
            f'all_model_checkpoint_paths: "{relative}"\n')
    files.write_text(files.join(directory, "checkpoint") if directory else "checkpoint", text)


def checkpoint_variable_shapes(path):
    """{name: shape list} of a checkpoint, as `tf.train.list_variables` reports it."""
    reader = checkpoint_reader(resolve_checkpoint(path))
    return {name: list(shape) for name, shape in reader.get_variable_to_shape_map().items()}


def assert_same_values(model, path, atol=0.0):
    """Raises AssertionError unless every model variable equals the checkpoint's (tests, tools)."""
    _, values = read_checkpoint(path)
    for name, variable in model_variables_by_original_name(model).items():
        np.testing.assert_allclose(np.asarray(variable), values[name], atol=atol, rtol=0,
                                   err_msg=name)
