"""TensorFlow Serving's REST predict format, answered locally with a loaded SavedModel.

`rest_predict` takes the JSON that `POST /v1/models/<name>:predict` takes and returns what
Serving would answer, for trying a request before deploying and for tests. Any SavedModel
of `albert_tf.export` (any signature) can answer it.
"""

import base64
import json

import numpy as np
import tensorflow as tf

from albert_tf.export_serving import ExportError


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

    Raises:
      ExportError: no such signature, or the request lacks an input or is not in either
        format.
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
