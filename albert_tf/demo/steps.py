"""The demo job's steps from raw text to a pretrained model: spm, data, pretrain, eval.

    spm       a SentencePiece vocabulary with the original recipe (train_sentencepiece)
    data      pretraining TFRecords, training and held-out (create_pretraining_data)
    pretrain  the initial weights (export --random_init), then LAMB pretraining from them,
              checkpointing as it goes (run_pretraining)
    eval      masked-LM and sentence-order accuracy on the held-out documents, of the
              pretrained model and of the same model at initialisation
              (`pretraining.evaluate_pretraining`), and fill-the-mask examples

Each `step_<name>(job)` returns its manifest: figures, files and the command lines a user
would type to do the same.
"""

import pathlib

from albert_tf.demo.job import command, read_documents, repo_path, shown

def step_spm(job):
    from albert_tf.train_sentencepiece import train_sentencepiece

    s = job.settings
    train, _ = job.corpus_files()
    prefix = job.dir("spm") / "docstrings"
    # minloglevel only quiets SentencePiece's own log lines (the command line shows them).
    model_file = train_sentencepiece([str(train)], str(prefix), vocab_size=s.vocab_size,
                                     do_lower_case=s.do_lower_case,
                                     extra_options={"minloglevel": 1})
    return {
        "files": {"spm_model_file": shown(model_file), "vocab": shown(f"{prefix}.vocab")},
        "figures": {"vocab_size": s.vocab_size},
        "commands": [command(["python", "-m", "albert_tf.train_sentencepiece"], {
            "input": train, "model_prefix": prefix, "vocab_size": s.vocab_size,
            "do_lower_case": s.do_lower_case})],
        "summary": f"{s.vocab_size} pieces in {shown(model_file)}",
    }


def spm_model(job):
    return str(repo_path(job.require("spm")["files"]["spm_model_file"]))


# =========================================================================================
# Pretraining data
# =========================================================================================


def _data_flags(job, input_file, output_file, seed, dupe_factor, shards):
    s = job.settings
    return {"input_file": input_file, "output_file": output_file,
            "spm_model_file": pathlib.Path(spm_model(job)), "do_lower_case": s.do_lower_case,
            "max_seq_length": s.max_seq_length,
            "max_predictions_per_seq": s.max_predictions_per_seq,
            "masked_lm_prob": s.masked_lm_prob, "dupe_factor": dupe_factor,
            "random_seed": seed, "num_workers": s.num_workers or None,
            "num_output_shards": shards}


def step_data(job):
    from albert_tf.create_pretraining_data import create_pretraining_data

    s = job.settings
    train, heldout = job.corpus_files()
    out = job.dir("data")
    runs = [("train", train, out / "train.tfrecord", s.data_seed, s.dupe_factor, 4),
            ("heldout", heldout, out / "heldout.tfrecord", s.data_seed + 1, 1, 0)]
    files, figures, commands = {}, {}, []
    for name, source, target, seed, dupe, shards in runs:
        flags = _data_flags(job, source, target, seed, dupe, shards)
        summary = create_pretraining_data(
            str(source), str(target), spm_model_file=spm_model(job),
            do_lower_case=s.do_lower_case, max_seq_length=s.max_seq_length,
            max_predictions_per_seq=s.max_predictions_per_seq,
            masked_lm_prob=s.masked_lm_prob, dupe_factor=dupe, random_seed=seed,
            num_workers=s.num_workers or None, num_output_shards=shards, progress=True)
        pattern = f"{target}-*" if shards else str(target)
        files[name] = shown(pattern)
        figures[f"{name}_instances"] = _instances(summary)
        commands.append(command(["python", "-m", "albert_tf.create_pretraining_data"], flags))
    return {"files": files, "figures": figures, "commands": commands,
            "summary": f"{figures['train_instances']} training and "
                       f"{figures['heldout_instances']} held-out instances"}


def _instances(summary):
    for key in ("instances", "total_instances", "num_instances"):
        if key in summary:
            return int(summary[key])
    per_shard = summary.get("instances_per_shard") or summary.get("instances_per_file")
    if per_shard:
        return int(sum(per_shard.values() if isinstance(per_shard, dict) else per_shard))
    raise KeyError(f"No instance count in the create_pretraining_data summary: {sorted(summary)}")


# =========================================================================================
# Pretraining
# =========================================================================================


def pretraining_settings(job):
    """The `PretrainingSettings` of the run (what run_pretraining.py's flags would give)."""
    from albert_tf.settings import PretrainingSettings

    s = job.settings
    data = job.require("data")
    return PretrainingSettings(
        input_file=str(repo_path(data["files"]["train"])),
        output_dir=str(job.run_dir / "pretrain" / "output"),
        init_checkpoint=str(job.run_dir / "pretrain" / "init" / "model.ckpt-best"),
        max_seq_length=s.max_seq_length, max_predictions_per_seq=s.max_predictions_per_seq,
        do_train=True, do_eval=False, train_batch_size=s.train_batch_size,
        eval_batch_size=s.eval_batch_size, optimizer="lamb", learning_rate=s.learning_rate,
        num_train_steps=s.num_train_steps, num_warmup_steps=s.num_warmup_steps,
        save_checkpoints_steps=s.save_checkpoints_steps, log_steps=s.log_steps,
        iterations_per_loop=s.log_steps, seed=s.seed)


def pretraining_command(job, settings):
    """run_pretraining.py's command line for `settings`."""
    p = settings
    return command(["python", "run_pretraining.py"], {
        "input_file": shown(p.input_file), "output_dir": pathlib.Path(p.output_dir),
        "albert_config_file": job.config_file(),
        "init_checkpoint": pathlib.Path(p.init_checkpoint), "do_train": p.do_train,
        "do_eval": p.do_eval, "max_seq_length": p.max_seq_length,
        "max_predictions_per_seq": p.max_predictions_per_seq,
        "train_batch_size": p.train_batch_size, "eval_batch_size": p.eval_batch_size,
        "optimizer": p.optimizer, "learning_rate": p.learning_rate,
        "num_train_steps": p.num_train_steps, "num_warmup_steps": p.num_warmup_steps,
        "save_checkpoints_steps": p.save_checkpoints_steps, "log_steps": p.log_steps,
        "iterations_per_loop": p.iterations_per_loop, "seed": p.seed})


def init_checkpoint_command(job, init_dir):
    return command(["python", "-m", "albert_tf.export"], {
        "albert_config_file": job.config_file(), "random_init": True,
        "seed": job.settings.seed, "head": "mlm", "format": "checkpoint",
        "export_dir": init_dir, "overwrite": True})


def step_pretrain(job):
    from albert_tf import export as export_lib
    from albert_tf.config import AlbertConfig
    from albert_tf.pretraining import run_pretraining

    s = job.settings
    settings = pretraining_settings(job)
    init_dir = pathlib.Path(settings.init_checkpoint).parent
    # The initial weights, in the original format: pretraining starts from them, and the
    # eval and fine-tuning steps compare the pretrained model with them.
    export_lib.export(job.config_file(), None, init_dir, head="mlm", format="checkpoint",
                      random_init=True, seed=s.seed, overwrite=True)
    config = AlbertConfig.from_json_file(job.config_file())
    result = run_pretraining(config, settings)
    output = pathlib.Path(settings.output_dir)
    final = output / f"model.ckpt-{s.num_train_steps}"
    if not pathlib.Path(f"{final}.index").exists():
        raise RuntimeError(f"Pretraining ended without {final}.index (result {result}).")
    curve = read_scalars(output / "summaries" / "train")
    last = {k: v[-1][1] for k, v in curve.items() if v}
    return {
        "files": {"init_checkpoint": shown(settings.init_checkpoint),
                  "final_checkpoint": shown(final), "output_dir": shown(output)},
        "figures": {"steps": s.num_train_steps,
                    "final_train_loss": last.get("loss"),
                    "final_masked_lm_loss": last.get("masked_lm_loss"),
                    "final_sentence_order_loss": last.get("sentence_order_loss"),
                    "examples_per_second": last.get("examples_per_second"),
                    "parameters": config.encoder_parameter_count()
                    + config.pretraining_heads_parameter_count()},
        "curves": {k: curve[k] for k in ("loss", "masked_lm_loss", "sentence_order_loss")
                   if k in curve},
        "commands": [init_checkpoint_command(job, init_dir), pretraining_command(job, settings)],
        "summary": (f"{s.num_train_steps} steps, last logged loss "
                    f"{last.get('loss', float('nan')):.3f}"),
    }


def read_scalars(folder):
    """{tag: [(step, value), ...]} of the TensorBoard scalar summaries in a folder."""
    import tensorflow as tf

    series = {}
    for path in sorted(pathlib.Path(folder).glob("events.out.tfevents.*")):
        for record in tf.data.TFRecordDataset(str(path)):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                if value.HasField("tensor"):
                    number = float(tf.make_ndarray(value.tensor))
                else:
                    number = float(value.simple_value)
                series.setdefault(value.tag, []).append((int(event.step), number))
    return {tag: sorted(dict(points).items()) for tag, points in series.items()}


# =========================================================================================
# Held-out evaluation
# =========================================================================================


def pooled_spread(model, batch):
    """How much the pooled [CLS] vector depends on the input: over the examples of `batch`,
    the mean distance to their mean vector divided by the norm of that mean (0: the same
    vector for every input, which no classifier on top can tell apart)."""
    import numpy as np

    inputs = {k: batch[k] for k in ("input_ids", "input_mask", "segment_ids",
                                    "masked_lm_positions")}
    pooled = np.asarray(model(inputs, training=False)["pooled_output"], np.float64)
    center = pooled.mean(0)
    return float(np.linalg.norm(pooled - center, axis=1).mean() / np.linalg.norm(center))


def heldout_evaluation(job, checkpoint, files, num_batches):
    """The original's pretraining eval metrics of `checkpoint` on the held-out records.

    `albert_tf.pretraining.evaluate_pretraining` (the eval loop of run_pretraining) over the
    first `num_batches` batches of `eval_batch_size`, plus `examples` (how many) and
    `sentence_order_majority_baseline` (what always answering the more frequent
    sentence-order label of those examples scores).
    """
    import dataclasses

    import tensorflow as tf

    from albert_tf import pretraining
    from albert_tf.checkpoints import load_original_checkpoint
    from albert_tf.config import AlbertConfig
    from albert_tf.heads import AlbertPretrainer
    from albert_tf.pretraining_data_input import pretraining_dataset

    s = job.settings
    model = AlbertPretrainer(AlbertConfig.from_json_file(job.config_file()))
    load_original_checkpoint(model, checkpoint, strict=True)
    settings = dataclasses.replace(pretraining_settings(job), max_eval_steps=num_batches)
    results = pretraining.evaluate_pretraining(model, files, settings)
    results.pop("global_step", None)
    examples = num_batches * s.eval_batch_size
    labels = pretraining_dataset(files, s.eval_batch_size, s.max_seq_length,
                                 s.max_predictions_per_seq, is_training=False)
    ones = sum(int(tf.reduce_sum(batch["next_sentence_labels"]))
               for batch in labels.take(num_batches))
    results["examples"] = examples
    results["sentence_order_majority_baseline"] = max(ones, examples - ones) / examples
    results["pooled_spread"] = pooled_spread(model, next(iter(labels)))
    return results


def unigram_reference(job, train_files, heldout_files, num_batches):
    """What predicting token frequencies alone scores on the masked positions.

    The unigram distribution of the masked-LM targets of the training records (add-one
    smoothed over the vocabulary); its cross-entropy and the accuracy of always answering
    its most frequent piece on the held-out examples that the eval step scores. A masked-LM
    loss at this level means the model predicts frequencies and has not learnt to use the
    context. Returns {"train_unigram_entropy", "heldout_unigram_loss",
    "heldout_most_frequent_accuracy"} (nats, nats, fraction).
    """
    import numpy as np

    from albert_tf.pretraining_data_input import pretraining_dataset

    s = job.settings

    def targets(files, batches):
        dataset = pretraining_dataset(files, s.eval_batch_size, s.max_seq_length,
                                      s.max_predictions_per_seq, is_training=False)
        ids = [batch["masked_lm_ids"].numpy()[batch["masked_lm_weights"].numpy() > 0]
               for batch in dataset.take(batches)]
        return np.concatenate(ids)

    train_batches = job.require("data")["figures"]["train_instances"] // s.eval_batch_size
    counts = np.bincount(targets(train_files, train_batches),
                         minlength=s.vocab_size).astype(np.float64)
    frequencies = counts / counts.sum()
    seen = frequencies[frequencies > 0]
    smoothed = (counts + 1) / (counts.sum() + s.vocab_size)
    heldout = targets(heldout_files, num_batches)
    return {"train_unigram_entropy": float(-(seen * np.log(seen)).sum()),
            "heldout_unigram_loss": float(-np.log(smoothed[heldout]).mean()),
            "heldout_most_frequent_accuracy": float(np.mean(heldout == counts.argmax()))}


def step_eval(job):
    from albert_tf.pretraining_data_input import resolve_input_files

    s = job.settings
    data, pretrain = job.require("data"), job.require("pretrain")
    files = resolve_input_files(str(repo_path(data["files"]["heldout"])))
    num_batches = max(1, data["figures"]["heldout_instances"] // s.eval_batch_size)
    figures = {}
    for name in ("init", "final"):
        checkpoint = repo_path(pretrain["files"][f"{name}_checkpoint"])
        results = heldout_evaluation(job, checkpoint, files, num_batches)
        job.log(f"  held-out, {'at initialisation' if name == 'init' else 'pretrained'}: "
                f"masked-LM accuracy {results['masked_lm_accuracy']:.4f}, sentence-order "
                f"accuracy {results['sentence_order_accuracy']:.4f}, pooled [CLS] spread "
                f"{results['pooled_spread']:.4f}")
        figures[name] = results
    figures["unigram"] = unigram_reference(
        job, resolve_input_files(str(repo_path(data["files"]["train"]))), files, num_batches)
    checkpoints = {name: repo_path(pretrain["files"][f"{key}_checkpoint"])
                   for name, key in (("init", "init"), ("pretrained", "final"))}
    examples = fill_mask(job, checkpoints)
    for row in examples:
        job.log(f"  {row['text']!r} ({row['answer']}): pretrained "
                f"{', '.join(p for p, _ in row['pretrained'])}")
    return {
        "figures": figures,
        "fill_mask": examples,
        "commands": [f"python albert_demo.py --run_dir={shown(job.run_dir)} --steps=eval"],
        "summary": (f"masked-LM accuracy {figures['init']['masked_lm_accuracy']:.3f} -> "
                    f"{figures['final']['masked_lm_accuracy']:.3f}, sentence order "
                    f"{figures['init']['sentence_order_accuracy']:.3f} -> "
                    f"{figures['final']['sentence_order_accuracy']:.3f}"),
    }


# =========================================================================================
# Fill-the-mask
# =========================================================================================

FILL_MASK_SENTENCES = 5
FILL_MASK_TOP_K = 5


def fill_mask_inputs(job, count=FILL_MASK_SENTENCES):
    """`count` held-out sentences, each with one whole word (one piece) masked.

    A sentence of 8 to 24 words is taken from documents spread over the held-out corpus;
    its masked word is the middle one of the pieces that are a whole word of 3+ letters.
    Returns [{"text": the sentence as pieces with [MASK], "answer": the masked piece,
    "features": {input_ids, input_mask, segment_ids: [S]; masked_lm_positions: [1]}}].
    """
    from albert_tf.tokenization import FullTokenizer

    s = job.settings
    tokenizer = FullTokenizer(None, s.do_lower_case, spm_model(job))
    _, heldout = job.corpus_files()
    documents = read_documents(heldout)
    stride = max(1, len(documents) // (3 * count))
    chosen = []
    for doc in documents[::stride]:
        for sentence in doc:
            if not 8 <= len(sentence.split()) <= 24:
                continue
            pieces = tokenizer.tokenize(sentence)[:s.max_seq_length - 2]
            candidates = [i for i in range(1, len(pieces))
                          if pieces[i].startswith("\u2581") and len(pieces[i]) >= 4
                          and pieces[i][1:].isalpha()
                          and (i + 1 == len(pieces) or pieces[i + 1].startswith("\u2581"))]
            if not candidates:
                continue
            i = candidates[len(candidates) // 2]
            tokens = ["[CLS]"] + pieces[:i] + ["[MASK]"] + pieces[i + 1:] + ["[SEP]"]
            ids = tokenizer.convert_tokens_to_ids(tokens)
            padding = [0] * (s.max_seq_length - len(ids))
            chosen.append({
                "text": "".join(pieces[:i] + ["\u2581[MASK]"] + pieces[i + 1:]).replace(
                    "\u2581", " ").strip(),
                "answer": pieces[i].lstrip("\u2581"),
                "features": {"input_ids": ids + padding,
                             "input_mask": [1] * len(ids) + padding,
                             "segment_ids": [0] * s.max_seq_length,
                             "masked_lm_positions": [i + 1]}})
            break
        if len(chosen) == count:
            break
    return chosen, tokenizer


def fill_mask(job, checkpoints, top_k=FILL_MASK_TOP_K):
    """Top-k masked-LM predictions of each checkpoint on `fill_mask_inputs`.

    Args: `checkpoints`, {name: original-format checkpoint prefix}.
    Returns [{"text", "answer", <name>: [[piece, probability], ...] (top_k)}].
    """
    import tensorflow as tf

    from albert_tf.checkpoints import load_original_checkpoint
    from albert_tf.config import AlbertConfig
    from albert_tf.heads import AlbertPretrainer

    examples, tokenizer = fill_mask_inputs(job)
    if not examples:
        return []
    config = AlbertConfig.from_json_file(job.config_file())
    features = {key: tf.constant([e["features"][key] for e in examples])
                for key in examples[0]["features"]}
    rows = [{"text": e["text"], "answer": e["answer"]} for e in examples]
    for name, checkpoint in checkpoints.items():
        model = AlbertPretrainer(config)
        load_original_checkpoint(model, checkpoint, strict=True)
        probabilities = tf.nn.softmax(model(features)["mlm_logits"][:, 0, :], -1)
        values, ids = tf.math.top_k(probabilities, top_k)
        for row, v, i in zip(rows, values.numpy(), ids.numpy()):
            pieces = tokenizer.convert_ids_to_tokens([int(x) for x in i])
            row[name] = [[p.lstrip("\u2581") or p, round(float(q), 4)]
                         for p, q in zip(pieces, v)]
    return rows
