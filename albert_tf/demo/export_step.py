"""The demo job's export step: an original-format checkpoint and a SavedModel of the
pretrained model (`albert_tf.export`), reloaded and compared with the model in memory, and
a TensorFlow Serving REST request answered by the SavedModel.
"""

import pathlib

from albert_tf.demo.job import command, read_documents, repo_path, shown
from albert_tf.demo.steps import spm_model

def _heldout_pairs(job, count):
    """(text_a, text_b) consecutive sentence pairs of the held-out corpus."""
    _, heldout = job.corpus_files()
    pairs = []
    for doc in read_documents(heldout):
        for a, b in zip(doc, doc[1:]):
            pairs.append((a, b))
            if len(pairs) == count:
                return pairs
    return pairs


def rest_example(pairs):
    """A TensorFlow Serving REST request body for the text-pair signature."""
    return {"signature_name": "text_pair",
            "instances": [{"text_a": a, "text_b": b} for a, b in pairs]}


# The SavedModel against the model in memory run as a graph (tf.function), as it runs
# itself. Eagerly the model fuses fewer ops, which moves float32 outputs by a few ulps
# (reported as `eager_vs_graph_max_abs_diff`).
RELOAD_TOLERANCE = 1e-6


def _max_diff(got, want):
    """max |got - want| over two tensors."""
    import numpy as np

    return float(np.max(np.abs(np.asarray(got, np.float64) - np.asarray(want, np.float64))))


def step_export(job):
    import numpy as np
    import tensorflow as tf

    from albert_tf import export as export_lib
    from albert_tf.checkpoints import load_original_checkpoint, read_checkpoint
    from albert_tf.config import AlbertConfig
    from albert_tf.heads import AlbertPretrainer
    from albert_tf.pretraining_data_input import pretraining_dataset, resolve_input_files
    from albert_tf.tokenization import FullTokenizer, encode_inputs

    s = job.settings
    pretrain, data = job.require("pretrain"), job.require("data")
    source = repo_path(pretrain["files"]["final_checkpoint"])
    spm_file = spm_model(job)
    out = job.dir("export")
    checkpoint_dir, saved_model_dir = out / "checkpoint", out / "saved_model"
    common = {"albert_config_file": job.config_file(), "init_checkpoint": source,
              "spm_model_file": pathlib.Path(spm_file), "do_lower_case": s.do_lower_case,
              "head": "mlm"}
    prefix = export_lib.export(job.config_file(), source, checkpoint_dir, spm_file,
                               s.do_lower_case, head="mlm", format="checkpoint", overwrite=True)
    written = export_lib.export(job.config_file(), source, saved_model_dir, spm_file,
                                s.do_lower_case, head="mlm", format="saved_model",
                                max_seq_length=s.max_seq_length, overwrite=True)

    # 1. The exported checkpoint reloads strictly and holds the trained values.
    config = AlbertConfig.from_json_file(job.config_file())
    model = AlbertPretrainer(config)
    load_original_checkpoint(model, prefix, strict=True)
    _, trained = read_checkpoint(source)
    checkpoint_diff = max(float(np.max(np.abs(np.asarray(v) - trained[v.path])))
                          for v in model.weights)

    # 2. The SavedModel gives the in-memory model's numbers on held-out token ids ...
    loaded = tf.saved_model.load(written)
    files = resolve_input_files(str(repo_path(data["files"]["heldout"])))
    batch = next(iter(pretraining_dataset(files, 8, s.max_seq_length,
                                          s.max_predictions_per_seq, is_training=False)))
    tokens = {k: batch[k] for k in ("input_ids", "input_mask", "segment_ids")}
    run_model = tf.function(lambda features: model(features))
    inputs = {**tokens, "masked_lm_positions": batch["masked_lm_positions"]}
    want = run_model(inputs)
    eager = model(inputs)
    got = loaded.signatures["mlm"](**tokens, mlm_positions=batch["masked_lm_positions"])
    token_keys = ("sequence_output", "pooled_output", "mlm_logits")
    token_diff = max(_max_diff(got[k], want[k]) for k in token_keys)
    eager_diff = max(_max_diff(eager[k], want[k]) for k in token_keys)

    # 3. ... and, from raw text, the Python tokenizer's ids and the same numbers.
    pairs = _heldout_pairs(job, 8)
    tokenizer = FullTokenizer(None, s.do_lower_case, spm_file)
    rows = [encode_inputs(tokenizer, a, b, s.max_seq_length) for a, b in pairs]
    features = {k: tf.constant([r[k] for r in rows]) for k in ("input_ids", "input_mask",
                                                               "segment_ids")}
    want_text = run_model({**features,
                           "masked_lm_positions": tf.zeros([len(rows), 1], tf.int32)})
    got_text = loaded.signatures["text_pair"](text_a=tf.constant([a for a, _ in pairs]),
                                              text_b=tf.constant([b for _, b in pairs]))
    ids_equal = bool(np.array_equal(got_text["input_ids"].numpy(),
                                    features["input_ids"].numpy()))
    text_diff = _max_diff(got_text["pooled_output"], want_text["pooled_output"])

    # 4. A TensorFlow Serving REST request, answered by the SavedModel.
    request = rest_example(pairs[:2])
    response = export_lib.rest_predict(loaded, request)
    shown_response = {"predictions": [{"sop_log_probs": row["sop_log_probs"],
                                       "input_ids": row["input_ids"][:12] + ["..."]}
                                      for row in response["predictions"]]}
    figures = {"checkpoint_max_abs_diff": checkpoint_diff,
               "saved_model_tokens_max_abs_diff": token_diff,
               "saved_model_text_ids_equal_python": ids_equal,
               "saved_model_text_max_abs_diff": text_diff,
               "eager_vs_graph_max_abs_diff": eager_diff}
    agree = (checkpoint_diff == 0 and ids_equal
             and max(token_diff, text_diff) <= RELOAD_TOLERANCE)
    if not agree:
        raise RuntimeError(f"The exports do not agree with the model: {figures}")
    return {
        "files": {"checkpoint": shown(prefix), "saved_model": shown(written)},
        "figures": figures,
        "rest_request": request,
        "rest_response_excerpt": shown_response,
        "signatures": sorted(loaded.signatures),
        "commands": [
            command(["python", "-m", "albert_tf.export"],
                    {**common, "format": "checkpoint", "export_dir": checkpoint_dir}),
            command(["python", "-m", "albert_tf.export"],
                    {**common, "format": "saved_model", "max_seq_length": s.max_seq_length,
                     "export_dir": saved_model_dir}),
        ],
        "summary": (f"checkpoint identical, SavedModel within {max(token_diff, text_diff):.1e}"
                    f", text ids {'equal' if ids_equal else 'DIFFERENT'}"),
    }


