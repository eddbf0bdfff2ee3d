"""Writers of ALBERT weights: `write_weights` into a folder in the original format, a
Hugging Face folder or a keras-hub preset, and `check_output`, the checks on that folder.

Part of `albert_tf.convert`, which re-exports these names.
"""

import io
import json
import os

import numpy as np
import tensorflow as tf

from albert_tf import files
from albert_tf import hub_formats as hub
from albert_tf.convert_weights import CHECKPOINT_NAME, KERAS_HUB_SPM, SPM_NAME, TARGETS
from albert_tf.hub_formats import ConversionError


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
    files.write_text(files.join(folder, "albert_config.json"),
                     json.dumps(config, indent=2, sort_keys=True) + "\n")
    names = list(weights.values) + ["global_step"]
    tensors = [tf.constant(weights.values[n]) for n in weights.values]
    tensors.append(tf.constant(0, tf.int64))
    with tf.device("/cpu:0"):
        tf.raw_ops.SaveV2(prefix=files.join(folder, CHECKPOINT_NAME), tensor_names=names,
                          shape_and_slices=[""] * len(names), tensors=tensors)
    if weights.spm_model:
        files.write_bytes(files.join(folder, SPM_NAME), weights.spm_model)
    files.write_text(files.join(folder, "checkpoint"),
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
    files.write_bytes(files.join(folder, "model.safetensors"),
                      save(tensors, metadata={"format": "pt"}))
    if weights.spm_model:
        files.write_bytes(files.join(folder, "spiece.model"), weights.spm_model)
        lower = True if weights.do_lower_case is None else weights.do_lower_case
        files.write_text(files.join(folder, "tokenizer_config.json"), hub.dumps(
            hub.hf_tokenizer_config(lower, bool(weights.keep_accents),
                                    True if weights.remove_space is None
                                    else weights.remove_space)))
        files.write_text(files.join(folder, "special_tokens_map.json"), hub.dumps(
            {"bos_token": "[CLS]", "eos_token": "[SEP]", "unk_token": "<unk>",
             "sep_token": "[SEP]", "pad_token": "<pad>", "cls_token": "[CLS]",
             "mask_token": "[MASK]"}))
    files.write_text(files.join(folder, "config.json"), hub.dumps(
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
    files.write_bytes(files.join(folder, "model.weights.h5"), buffer.getvalue())
    if weights.spm_model:
        files.write_bytes(files.join(folder, KERAS_HUB_SPM), weights.spm_model)
        files.write_text(files.join(folder, "tokenizer.json"), hub.dumps(
            hub.keras_hub_tokenizer_config(), indent=4))
    metadata = hub.keras_hub_metadata(config)
    metadata["keras_version"] = keras.__version__
    files.write_text(files.join(folder, "metadata.json"), hub.dumps(metadata, indent=4))
    files.write_text(files.join(folder, "config.json"), hub.dumps(config_json, indent=4))

