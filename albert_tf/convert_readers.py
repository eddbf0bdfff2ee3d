"""Readers of ALBERT weights, one per format of `albert_tf.convert.FORMATS`: each takes a
path (a checkpoint prefix or a folder) and the optional --albert_config_file and returns a
`Weights` in original names, not yet checked (`convert_weights.check_weights`).

Part of `albert_tf.convert`, which detects the format and re-exports `tokenization_info`.
"""

import io

import numpy as np
import tensorflow as tf

from albert_tf import checkpoints as checkpoints_lib
from albert_tf import files
from albert_tf import hub_formats as hub
from albert_tf.convert_weights import (HEADS, KERAS_HUB_SPM, Weights, config_from_file,
                                       head_of_names)
from albert_tf.hub_formats import ConversionError

# The export heads of `albert_tf.export` SavedModels, as `HEADS` names them.
_EXPORT_HEADS = {"none": "none", "mlm": "pretraining", "classifier": "classifier"}


# =========================================================================================
# The original format: checkpoints, TF-Hub modules, albert_tf exports
# =========================================================================================


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
    """The message of a checkpoint that cannot be read: its index when it cannot be opened
    (`stored` None), else the data file(s) that should hold `stored`."""
    data = sorted(tf.io.gfile.glob(prefix + ".data-*")) or [prefix + ".data-00000-of-00001"]
    paths = ", ".join(data) if stored else ", ".join([prefix + ".index", *data])
    what = f" {stored}" if stored else ""
    reason = " ".join(str(getattr(error, "message", error)).split())
    return (f"Cannot read the checkpoint{what} from {paths} ({reason}): a file is truncated or "
            "damaged (an interrupted copy or download?); copy it again.")


def _original_weights(prefix, config, source, source_format, spm_model=None,
                      do_lower_case=None):
    values, names = _original_values(prefix)
    head = getattr(config, "head", None)
    labels = getattr(config, "labels", None)
    head = head_of_names(values, source, head if head in HEADS else "auto")
    return Weights(config=config, values=values, head=head, source=source,
                   source_format=source_format, names=names, labels=labels,
                   spm_model=spm_model, do_lower_case=do_lower_case)


def resolve_prefix(path):
    """`checkpoints.resolve_checkpoint`, trying the prefix first (on ram:// and object stores a
    prefix also looks like a folder)."""
    if tf.io.gfile.exists(path + ".index"):
        return path
    return checkpoints_lib.resolve_checkpoint(path)


def _read_original(path, albert_config_file):
    prefix = resolve_prefix(path)
    config_file = albert_config_file or files.join(files.dirname(prefix), "albert_config.json")
    if not albert_config_file and not tf.io.gfile.exists(config_file):
        raise ConversionError(f"{prefix}: no albert_config.json beside the checkpoint; pass "
                              "--albert_config_file.")
    spm = sorted(tf.io.gfile.glob(files.join(files.dirname(prefix), "*.model")))
    return _original_weights(prefix, config_from_file(config_file), prefix, "original",
                             spm_model=files.read_bytes(spm[0]) if spm else None)


def _read_tfhub_module(path, albert_config_file):
    from albert_tf.finetuning import resolve_hub_module
    prefix, spm, config_file = resolve_hub_module(path)
    config_file = albert_config_file or config_file
    if not config_file:
        raise ConversionError(f"{path}: a TF-Hub module holds no albert_config.json; pass "
                              "--albert_config_file (the config of the model it was made from).")
    do_lower_case = tokenization_info(path)[1]
    return _original_weights(prefix, config_from_file(config_file), path, "tfhub_module",
                             spm_model=files.read_bytes(spm) if spm else None,
                             do_lower_case=do_lower_case)


def _read_export(path, albert_config_file):
    """A SavedModel of `albert_tf.export`: its `model_variables` list, in the creation order
    of the model its head and config build, so each value gets its original name."""
    from albert_tf import export as export_lib
    info = files.read_json(files.join(path, "assets", "export_info.json"), "export info")
    config = config_from_file(albert_config_file
                               or files.join(path, "assets", "albert_config.json"))
    labels = info.get("labels")
    num_labels = len(labels) if labels else info.get("num_labels")
    prefix = files.join(path, "variables", "variables")
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
    spm = (files.join(path, "assets", files.basename(spm_name)) if spm_name
           else (sorted(tf.io.gfile.glob(files.join(path, "assets", "*.model"))) or [None])[0])
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
    info_file = files.join(handle, "assets", "export_info.json")
    if tf.io.gfile.exists(info_file):
        info = files.read_json(info_file, "export info")
        spm = info.get("spm_model_file")
        return (files.join(handle, "assets", files.basename(spm)) if spm else None,
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
    inside = files.join(handle, "assets", files.basename(vocab))
    if tf.io.gfile.exists(inside):
        vocab = inside
    return vocab, bool(info["do_lower_case"].numpy())


# --- Hugging Face -------------------------------------------------------------------------


def _hf_tensors(folder):
    """{name: np.ndarray} and the file of a Hugging Face folder's weights."""
    safetensors_file = files.join(folder, "model.safetensors")
    index_file = files.join(folder, "model.safetensors.index.json")
    h5_file = files.join(folder, "tf_model.h5")
    bin_file = files.join(folder, "pytorch_model.bin")
    if tf.io.gfile.exists(safetensors_file):
        return _load_safetensors(safetensors_file), safetensors_file
    if tf.io.gfile.exists(index_file):
        weight_map = files.read_json(index_file, "safetensors index").get("weight_map", {})
        tensors = {}
        for shard in sorted(set(weight_map.values())):
            tensors.update(_load_safetensors(files.join(folder, shard)))
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
    config_path = files.join(folder, "config.json")
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
    spm_file = files.join(folder, "spiece.model")
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
    path = files.join(folder, "tokenizer_config.json")
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
    config_path = files.join(folder, "config.json")
    config = hub.config_from_keras_hub(files.read_json(config_path, "keras-hub config"),
                                       config_path)
    hub.check_keras_hub_layout(config, config_path)
    weights_file = files.join(folder, "model.weights.h5")
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
    spm_file = files.join(folder, KERAS_HUB_SPM)
    return Weights(config=config, values=values, head="none", source=weights_file,
                   source_format="keras_hub", names=names, rows=rows, source_shapes=shapes,
                   unused=sorted(n for n in tensors if n not in used),
                   spm_model=(files.read_bytes(spm_file) if tf.io.gfile.exists(spm_file)
                              else None))



def read_source(path, source_format, albert_config_file=None):
    """The `Weights` of `path` read as `source_format` (one of `convert.FORMATS`)."""
    reader = {"original": _read_original, "tfhub_module": _read_tfhub_module,
              "albert_tf_export": _read_export, "hf": _read_hf,
              "keras_hub": _read_keras_hub}[source_format]
    return reader(str(path), albert_config_file)
