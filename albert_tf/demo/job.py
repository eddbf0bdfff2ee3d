"""The demo job: a small ALBERT from raw text to a served model, on a CPU, in minutes.

On the embedded corpus (docstrings of the Python standard library and scikit-learn, see
data/README.md) the job runs every tool of the project, in order:

    spm       train a SentencePiece vocabulary with the original recipe (train_sentencepiece)
    data      write pretraining TFRecords, training and held-out (create_pretraining_data)
    pretrain  write the initial weights (export --random_init), then pretrain them with LAMB,
              checkpointing as it goes (run_pretraining)
    eval      masked-LM and sentence-order accuracy on the held-out documents, of the
              pretrained model and of the same model at initialisation
    export    an original-format checkpoint and a SavedModel (export); reload both and check
              that they agree with the model in memory, and answer a TF Serving REST request
    finetune  fine-tune on the embedded docstring_source task twice with the same recipe, from
              the pretrained weights and from the initial weights (run_classifier, tsv task)
    report    report.md, metrics.json and loss_curves.png in the run folder

Each step is a function `step_<name>(job)` that returns its manifest (figures, files and
the command lines a user would type to do the same); `run_job` writes that manifest to
`<run_dir>/<step>/manifest.json` last, so a manifest marks a finished step and a re-run
skips it. `albert_demo.py` at the repository root is the command line.
"""

import dataclasses
import gzip
import hashlib
import io
import json
import math
import os
import pathlib
import random
import shlex
import shutil
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
STEPS = ("spm", "data", "pretrain", "eval", "export", "finetune", "report")
# The files the steps read, as `albert_demo.py --steps=...` needs them.
_REQUIRES = {"data": ["spm"], "pretrain": ["spm", "data"], "eval": ["data", "pretrain"],
             "export": ["spm", "data", "pretrain"], "finetune": ["spm", "pretrain"],
             "report": ["spm", "data", "pretrain", "eval", "export", "finetune"]}


# =========================================================================================
# Settings
# =========================================================================================


@dataclasses.dataclass
class JobSettings:
    """What the job does; `full()` is the README's run, `quick()` a reduced one for tests.

    Paths are relative to the repository root unless absolute. Sizes of the pretraining and
    fine-tuning are chosen to finish within about 15 minutes on two CPU cores.
    """

    corpus_train: str = "data/corpus/docstrings_train.txt.gz"
    corpus_heldout: str = "data/corpus/docstrings_heldout.txt.gz"
    task_dir: str = "data/tasks/docstring_source"
    albert_config_file: str = "data/configs/albert_demo.json"
    # Reduced runs: keep only the first documents / task rows (0: all).
    max_documents: int = 0
    max_task_rows: int = 0
    # Tokenizer.
    vocab_size: int = 8000
    do_lower_case: bool = True
    # Pretraining data (create_pretraining_data's flags).
    max_seq_length: int = 64
    max_predictions_per_seq: int = 10
    masked_lm_prob: float = 0.15
    dupe_factor: int = 2
    data_seed: int = 12345
    num_workers: int = 0            # 0: all cores
    # Pretraining (run_pretraining's flags).
    seed: int = 1
    train_batch_size: int = 64
    learning_rate: float = 5e-3
    num_train_steps: int = 800
    num_warmup_steps: int = 80
    save_checkpoints_steps: int = 200
    log_steps: int = 20
    eval_batch_size: int = 64
    # Fine-tuning (run_classifier's flags), the same for both runs.
    finetune_batch_size: int = 32
    finetune_learning_rate: float = 1e-4
    finetune_steps: int = 300
    finetune_warmup_steps: int = 30
    finetune_checkpoint_steps: int = 50
    finetune_log_steps: int = 10

    @classmethod
    def full(cls):
        return cls()

    @classmethod
    def quick(cls):
        """A run of a minute or two: a slice of the corpus and the task, a tiny model."""
        return cls(max_documents=600, max_task_rows=200, vocab_size=400, max_seq_length=32,
                   max_predictions_per_seq=5, dupe_factor=1, train_batch_size=16,
                   num_train_steps=20, num_warmup_steps=2, save_checkpoints_steps=10,
                   log_steps=5, eval_batch_size=16, finetune_batch_size=16,
                   finetune_steps=12, finetune_warmup_steps=2, finetune_checkpoint_steps=6,
                   finetune_log_steps=3)

    def fingerprint(self):
        """A short hash of the settings: runs with the same one can share steps."""
        # The number of worker processes does not change any output.
        values = {k: v for k, v in dataclasses.asdict(self).items() if k != "num_workers"}
        text = json.dumps(values, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def _path(path):
    """An absolute path; relative ones are taken from the repository root."""
    path = pathlib.Path(path)
    return path if path.is_absolute() else ROOT / path


def _local_folder(path, what):
    """`path`, checked to be on the local disk: the steps reach the run folder with local
    file operations (pathlib), so a `gs://` path would become a local folder named "gs:".
    Raises ValueError naming `what` (the flag)."""
    from albert_tf import files

    if files.has_scheme(path):
        raise ValueError(f"{what}={path}: the demo's run folder must be on the local disk. "
                         "Copy the finished run elsewhere afterwards (e.g. gsutil -m cp -r).")
    return path


def _shown(path):
    """A path as the report's commands show it: relative to the repository root if inside."""
    path = pathlib.Path(path).resolve()
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def command(program, flags):
    """A command line: `program` then `--name=value` flags (None values left out)."""
    parts = list(program)
    for name, value in flags.items():
        if value is None:
            continue
        if isinstance(value, bool):
            parts.append(f"--{name}" if value else f"--no{name}")
            continue
        if isinstance(value, (list, tuple)):
            value = ",".join(str(v) for v in value)
        if isinstance(value, pathlib.PurePath):
            value = _shown(value)
        parts.append(f"--{name}={value}")
    return " ".join(shlex.quote(p) if i >= len(program) else p for i, p in enumerate(parts))


# =========================================================================================
# The job: run folder, manifests, progress
# =========================================================================================


class Job:
    """A run folder and its settings; steps read and write under `run_dir`.

    Attributes: `settings`, `run_dir` (pathlib.Path), `log` (a print-like function).
    """

    def __init__(self, settings, run_dir, log=None):
        self.settings = settings
        self.run_dir = pathlib.Path(_local_folder(os.fspath(run_dir), "--run_dir")).resolve()
        self.log = log or (lambda text: print(text, flush=True))

    # --- files of the steps -----------------------------------------------------------

    def dir(self, step):
        path = self.run_dir / step
        path.mkdir(parents=True, exist_ok=True)
        return path

    def manifest_path(self, step):
        return self.run_dir / step / "manifest.json"

    def manifest(self, step):
        """The manifest of a finished step, or None."""
        path = self.manifest_path(step)
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        return data if data.get("fingerprint") == self.settings.fingerprint() else None

    def write_manifest(self, step, manifest):
        manifest = {**manifest, "step": step, "fingerprint": self.settings.fingerprint()}
        text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
        _write_text(self.manifest_path(step), text)
        return json.loads(text)   # as a later run reads it back (tuples become lists)

    def require(self, step):
        manifest = self.manifest(step)
        if manifest is None:
            raise RuntimeError(f"Step {step!r} has not run in {self.run_dir} (no "
                               f"{self.manifest_path(step)}). Run it first: albert_demo.py "
                               f"--run_dir={self.run_dir} --steps={step}")
        return manifest

    # --- shared inputs ----------------------------------------------------------------

    def corpus_files(self):
        """(train, held-out) corpus files, cut to `max_documents` for reduced runs."""
        s = self.settings
        files = []
        for name, path in (("train", s.corpus_train), ("heldout", s.corpus_heldout)):
            path = _path(path)
            if s.max_documents:
                limit = s.max_documents if name == "train" else max(s.max_documents // 4, 50)
                cut = self.run_dir / "corpus" / f"{name}.txt.gz"
                if not cut.exists():
                    docs = read_documents(path)[:limit]
                    cut.parent.mkdir(parents=True, exist_ok=True)
                    _write_documents(cut, docs)
                path = cut
            files.append(path)
        return files

    def task_dir(self):
        """The fine-tuning task's folder, cut to `max_task_rows` rows per file if asked."""
        s = self.settings
        source = _path(s.task_dir)
        if not s.max_task_rows:
            return source
        cut = self.run_dir / "task"
        if not (cut / "test.tsv").exists():
            cut.mkdir(parents=True, exist_ok=True)
            for name in ("train.tsv", "dev.tsv", "test.tsv"):
                lines = (source / name).read_text(encoding="utf-8").splitlines(True)
                limit = s.max_task_rows if name == "train.tsv" else s.max_task_rows // 2
                _write_text(cut / name, "".join(lines[:limit + 1]))
        return cut

    def config_file(self):
        """The run's `albert_config.json`: the demo config with the vocabulary's size."""
        from albert_tf.config import AlbertConfig

        path = self.run_dir / "albert_config.json"
        if not path.exists():
            config = AlbertConfig.from_json_file(_path(self.settings.albert_config_file))
            config.vocab_size = self.settings.vocab_size
            if self.settings.max_documents:      # reduced runs: a tiny model
                for key, value in dict(embedding_size=16, hidden_size=32, num_hidden_layers=2,
                                       num_attention_heads=2, intermediate_size=64).items():
                    setattr(config, key, value)
            config.to_json_file(path)
        return path


def _write_text(path, text):
    """Writes `text` (UTF-8) to `path` atomically (any `tf.io.gfile` filesystem)."""
    from albert_tf import files

    files.write_text(os.fspath(path), text)


def read_documents(path):
    """Documents of a corpus file (one sentence per line, blank line between documents)."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        text = f.read()
    return [block.splitlines() for block in text.split("\n\n") if block.strip()]


def _write_documents(path, documents):
    """Writes documents as a gzipped corpus file, atomically (mtime 0: the same bytes on
    every run)."""
    from albert_tf import files

    data = ("\n\n".join("\n".join(d) for d in documents) + "\n").encode("utf-8")
    files.write_bytes(os.fspath(path), gzip.compress(data, mtime=0))


def find_run_dir(runs_root, settings):
    """The newest run folder under `runs_root` started with the same settings, or None."""
    runs_root = pathlib.Path(_local_folder(os.fspath(runs_root), "--runs_root"))
    if not runs_root.exists():
        return None
    for folder in sorted((p for p in runs_root.iterdir() if p.is_dir()), reverse=True):
        job_file = folder / "job.json"
        if job_file.exists():
            try:
                data = json.loads(job_file.read_text())
            except json.JSONDecodeError:
                continue
            if data.get("fingerprint") == settings.fingerprint():
                return folder
    return None


def new_run_dir(runs_root):
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = pathlib.Path(_local_folder(os.fspath(runs_root), "--runs_root")) / stamp
    suffix = 1
    while folder.exists():
        folder = pathlib.Path(runs_root) / f"{stamp}-{suffix}"
        suffix += 1
    return folder


def run_job(settings, run_dir, steps=STEPS, redo=(), log=None):
    """Runs the named steps in order, skipping those already finished (unless in `redo`).

    A step that runs makes every later step of the call run again too (its inputs changed).
    A step run again starts from an empty folder; one interrupted before its manifest was
    written resumes from what its folder holds (a pretraining run from its last checkpoint).
    Returns {step: manifest}.
    """
    job = Job(settings, run_dir, log)
    job.run_dir.mkdir(parents=True, exist_ok=True)
    _write_text(job.run_dir / "job.json", json.dumps(
        {"fingerprint": settings.fingerprint(), "settings": dataclasses.asdict(settings)},
        indent=2, sort_keys=True) + "\n")
    unknown = [s for s in list(steps) + list(redo) if s not in STEPS]
    if unknown:
        raise ValueError(f"Unknown steps {unknown}; the steps are {', '.join(STEPS)}.")
    ordered = [s for s in STEPS if s in steps]
    results, rerun = {}, False
    started = time.time()
    for index, step in enumerate(ordered, 1):
        header = f"[{index}/{len(ordered)} {step}]"
        done = job.manifest(step)
        if done is not None and not rerun and step not in redo:
            job.log(f"{header} done before ({done.get('seconds', 0):.0f} s); reusing "
                    f"{_shown(job.manifest_path(step))}")
            results[step] = done
            continue
        for needed in _REQUIRES.get(step, []):
            if needed not in ordered:
                job.require(needed)
        if rerun or job.manifest_path(step).exists():
            # Its outputs were made from other inputs or settings, or are being redone:
            # start clean (a training run would otherwise resume, already finished). An
            # interrupted step (no manifest, same inputs) keeps its folder and resumes.
            shutil.rmtree(job.run_dir / step, ignore_errors=True)
        job.log(f"{header} {STEP_TITLES[step]} ...")
        begin = time.time()
        manifest = STEP_FUNCTIONS[step](job)
        manifest["seconds"] = time.time() - begin
        results[step] = job.write_manifest(step, manifest)
        job.log(f"{header} finished in {manifest['seconds']:.0f} s"
                f"{': ' + manifest['summary'] if manifest.get('summary') else ''}")
        rerun = True
    job.log(f"All steps done in {time.time() - started:.0f} s; run folder {_shown(job.run_dir)}")
    return results


# =========================================================================================
# 1. SentencePiece
# =========================================================================================


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
        "files": {"spm_model_file": _shown(model_file), "vocab": _shown(f"{prefix}.vocab")},
        "figures": {"vocab_size": s.vocab_size},
        "commands": [command(["python", "-m", "albert_tf.train_sentencepiece"], {
            "input": train, "model_prefix": prefix, "vocab_size": s.vocab_size,
            "do_lower_case": s.do_lower_case})],
        "summary": f"{s.vocab_size} pieces in {_shown(model_file)}",
    }


def _spm_model(job):
    return str(_path(job.require("spm")["files"]["spm_model_file"]))


# =========================================================================================
# 2. Pretraining data
# =========================================================================================


def _data_flags(job, input_file, output_file, seed, dupe_factor, shards):
    s = job.settings
    return {"input_file": input_file, "output_file": output_file,
            "spm_model_file": pathlib.Path(_spm_model(job)), "do_lower_case": s.do_lower_case,
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
            str(source), str(target), spm_model_file=_spm_model(job),
            do_lower_case=s.do_lower_case, max_seq_length=s.max_seq_length,
            max_predictions_per_seq=s.max_predictions_per_seq,
            masked_lm_prob=s.masked_lm_prob, dupe_factor=dupe, random_seed=seed,
            num_workers=s.num_workers or None, num_output_shards=shards, progress=True)
        pattern = f"{target}-*" if shards else str(target)
        files[name] = _shown(pattern)
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
# 3. Pretraining
# =========================================================================================


def pretraining_settings(job):
    """The `PretrainingSettings` of the run (what run_pretraining.py's flags would give)."""
    from albert_tf.pretraining import PretrainingSettings

    s = job.settings
    data = job.require("data")
    return PretrainingSettings(
        input_file=str(_path(data["files"]["train"])),
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
        "input_file": _shown(p.input_file), "output_dir": pathlib.Path(p.output_dir),
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
        "files": {"init_checkpoint": _shown(settings.init_checkpoint),
                  "final_checkpoint": _shown(final), "output_dir": _shown(output)},
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
# 4. Held-out evaluation
# =========================================================================================


def evaluate_pretraining(config, checkpoint, files, settings, batch_size, num_batches):
    """The original's pretraining eval metrics of `checkpoint` on `num_batches` batches."""
    import tensorflow as tf

    from albert_tf import pretraining_data_input as input_lib
    from albert_tf.checkpoints import load_original_checkpoint
    from albert_tf.heads import AlbertPretrainer
    from albert_tf.pretraining import pretraining_eval_results, pretraining_eval_sums

    model = AlbertPretrainer(config)
    load_original_checkpoint(model, checkpoint, strict=True)
    dataset = input_lib.pretraining_dataset(files, batch_size, settings.max_seq_length,
                                            settings.max_predictions_per_seq, is_training=False)
    step = tf.function(lambda batch: pretraining_eval_sums(model, batch))
    totals, losses, ones = {}, [], 0
    for batch in dataset.take(num_batches):
        ones += int(tf.reduce_sum(batch["next_sentence_labels"]))
        sums = {k: float(v) for k, v in step(batch).items()}
        for key, value in sums.items():
            totals[key] = totals.get(key, 0.0) + value
        losses.append(sums["masked_lm_loss_sum"] / (sums["masked_lm_weight"] + 1e-5)
                      + sums["sentence_order_loss_sum"] / sums["examples"])
    totals["loss"] = sum(losses)
    results = pretraining_eval_results(totals, num_batches, 0)
    results.pop("global_step")
    results["examples"] = int(totals["examples"])
    # What always answering the more frequent sentence-order label scores.
    share = ones / totals["examples"]
    results["sentence_order_majority_baseline"] = max(share, 1 - share)
    return results


def step_eval(job):
    from albert_tf.config import AlbertConfig
    from albert_tf.pretraining_data_input import resolve_input_files

    s = job.settings
    data, pretrain = job.require("data"), job.require("pretrain")
    files = resolve_input_files(str(_path(data["files"]["heldout"])))
    num_batches = max(1, data["figures"]["heldout_instances"] // s.eval_batch_size)
    config = AlbertConfig.from_json_file(job.config_file())
    figures = {}
    for name in ("init", "final"):
        checkpoint = _path(pretrain["files"][f"{name}_checkpoint"])
        results = evaluate_pretraining(config, checkpoint, files, s, s.eval_batch_size,
                                       num_batches)
        job.log(f"  held-out, {'at initialisation' if name == 'init' else 'pretrained'}: "
                f"masked-LM accuracy {results['masked_lm_accuracy']:.4f}, sentence-order "
                f"accuracy {results['sentence_order_accuracy']:.4f}")
        figures[name] = results
    return {
        "figures": figures,
        "commands": [f"python albert_demo.py --run_dir={_shown(job.run_dir)} --steps=eval"],
        "summary": (f"masked-LM accuracy {figures['init']['masked_lm_accuracy']:.3f} -> "
                    f"{figures['final']['masked_lm_accuracy']:.3f}, sentence order "
                    f"{figures['init']['sentence_order_accuracy']:.3f} -> "
                    f"{figures['final']['sentence_order_accuracy']:.3f}"),
    }


# =========================================================================================
# 5. Export
# =========================================================================================


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
    source = _path(pretrain["files"]["final_checkpoint"])
    spm_model = _spm_model(job)
    out = job.dir("export")
    checkpoint_dir, saved_model_dir = out / "checkpoint", out / "saved_model"
    common = {"albert_config_file": job.config_file(), "init_checkpoint": source,
              "spm_model_file": pathlib.Path(spm_model), "do_lower_case": s.do_lower_case,
              "head": "mlm"}
    prefix = export_lib.export(job.config_file(), source, checkpoint_dir, spm_model,
                               s.do_lower_case, head="mlm", format="checkpoint", overwrite=True)
    written = export_lib.export(job.config_file(), source, saved_model_dir, spm_model,
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
    files = resolve_input_files(str(_path(data["files"]["heldout"])))
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
    tokenizer = FullTokenizer(None, s.do_lower_case, spm_model)
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
        "files": {"checkpoint": _shown(prefix), "saved_model": _shown(written)},
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


# =========================================================================================
# 6. Fine-tuning
# =========================================================================================

FINETUNE_RUNS = (("pretrained", "final_checkpoint"), ("random", "init_checkpoint"))


def classifier_settings(job, run, init_checkpoint):
    """(FinetuningSettings, ClassifierSettings) of one fine-tuning run."""
    from albert_tf.finetuning import FinetuningSettings
    from albert_tf.tasks.glue import ClassifierSettings

    s = job.settings
    output_dir = job.run_dir / "finetune" / run
    settings = FinetuningSettings(
        output_dir=str(output_dir), init_checkpoint=str(init_checkpoint),
        max_seq_length=s.max_seq_length, train_batch_size=s.finetune_batch_size,
        eval_batch_size=s.finetune_batch_size, predict_batch_size=s.finetune_batch_size,
        learning_rate=s.finetune_learning_rate, train_step=s.finetune_steps,
        warmup_step=s.finetune_warmup_steps,
        save_checkpoints_steps=s.finetune_checkpoint_steps, log_steps=s.finetune_log_steps,
        iterations_per_loop=s.finetune_log_steps, optimizer="adamw", seed=s.seed)
    classifier = ClassifierSettings(
        task_name="tsv", data_dir=str(job.task_dir()), spm_model_file=_spm_model(job),
        do_lower_case=s.do_lower_case, do_train=True, do_eval=True, do_predict=True,
        text_a_column="0", text_b_column=None, label_column="1", labels=TASK_LABELS,
        tsv_header=True,
        # The pretrained model's classifier is also exported for serving (raw text in).
        export_dir=str(output_dir / "saved_model") if run == "pretrained" else None)
    return settings, classifier


def classifier_command(job, settings, classifier):
    f, c = settings, classifier
    return command(["python", "run_classifier.py"], {
        "task_name": c.task_name, "data_dir": pathlib.Path(c.data_dir),
        "text_a_column": c.text_a_column, "text_b_column": c.text_b_column,
        "label_column": c.label_column, "labels": list(c.labels),
        "output_dir": pathlib.Path(f.output_dir),
        "init_checkpoint": pathlib.Path(f.init_checkpoint),
        "albert_config_file": job.config_file(),
        "spm_model_file": pathlib.Path(c.spm_model_file), "do_lower_case": c.do_lower_case,
        "do_train": c.do_train, "do_eval": c.do_eval, "do_predict": c.do_predict,
        "max_seq_length": f.max_seq_length, "train_batch_size": f.train_batch_size,
        "eval_batch_size": f.eval_batch_size, "predict_batch_size": f.predict_batch_size,
        "optimizer": f.optimizer, "learning_rate": f.learning_rate,
        "train_step": f.train_step, "warmup_step": f.warmup_step,
        "save_checkpoints_steps": f.save_checkpoints_steps, "log_steps": f.log_steps,
        "iterations_per_loop": f.iterations_per_loop, "seed": f.seed,
        "export_dir": pathlib.Path(c.export_dir) if c.export_dir else None})


def _test_accuracy(task_dir, output_dir):
    """Accuracy of test_results.tsv (probabilities per row) against test.tsv's labels."""
    lines = (pathlib.Path(task_dir) / "test.tsv").read_text(encoding="utf-8").splitlines()[1:]
    labels = [TASK_LABELS.index(line.split("\t")[1]) for line in lines]
    rows = (pathlib.Path(output_dir) / "test_results.tsv").read_text().splitlines()
    predictions = [max(range(len(TASK_LABELS)), key=lambda i: float(row.split("\t")[i]))
                   for row in rows]
    if len(predictions) != len(labels):
        raise RuntimeError(f"{len(predictions)} test predictions for {len(labels)} rows.")
    return sum(p == y for p, y in zip(predictions, labels)) / len(labels)


def step_finetune(job):
    from albert_tf.config import AlbertConfig
    from albert_tf.tasks.glue import run_classifier

    pretrain = job.require("pretrain")
    config = AlbertConfig.from_json_file(job.config_file())
    figures, curves, commands, exported = {}, {}, [], None
    for run, key in FINETUNE_RUNS:
        init = _path(pretrain["files"][key])
        settings, classifier = classifier_settings(job, run, init)
        job.log(f"  fine-tuning from the {'pretrained' if run == 'pretrained' else 'initial'}"
                f" weights ({_shown(init)})")
        outcome = run_classifier(config, settings, classifier)
        result = outcome["result"]
        evaluations = result.evaluations
        last_step = max(evaluations)
        figures[run] = {
            "best_dev_accuracy": result.best_value, "best_step": result.best_step,
            "final_dev_accuracy": evaluations[last_step]["eval_accuracy"],
            "test_accuracy": _test_accuracy(classifier.data_dir, settings.output_dir),
            "dev_accuracy_by_step": {str(k): v["eval_accuracy"]
                                     for k, v in sorted(evaluations.items())},
        }
        curves[run] = read_scalars(pathlib.Path(settings.output_dir) / "summaries" / "train"
                                   ).get("loss", [])
        commands.append(classifier_command(job, settings, classifier))
        job.log(f"  {run}: best dev accuracy {result.best_value:.4f} (step {result.best_step}),"
                f" test accuracy {figures[run]['test_accuracy']:.4f}")
        if outcome.get("export"):
            exported = outcome["export"]
    gain = figures["pretrained"]["test_accuracy"] - figures["random"]["test_accuracy"]
    if exported is None:
        raise RuntimeError("run_classifier exported no SavedModel (export_dir was set).")
    request, response = _classifier_rest_example(job, exported)
    return {
        "figures": {**figures, "test_accuracy_gain": gain},
        "curves": curves, "commands": commands,
        "rest_request": request, "rest_response": response,
        "files": {"task_dir": _shown(job.task_dir()),
                  "classifier_saved_model": _shown(exported)},
        "summary": (f"test accuracy {figures['pretrained']['test_accuracy']:.3f} pretrained vs "
                    f"{figures['random']['test_accuracy']:.3f} from the initial weights"),
    }


def _classifier_rest_example(job, saved_model):
    """A TF Serving REST request of two test sentences (one per label) and the answer."""
    import tensorflow as tf

    from albert_tf.export import rest_predict

    rows = (job.task_dir() / "test.tsv").read_text(encoding="utf-8").splitlines()[1:]
    firsts = {}
    for row in rows:
        sentence, label = row.split("\t")
        firsts.setdefault(label, sentence)
    request = {"instances": [{"text_a": firsts[label]} for label in TASK_LABELS]}
    response = rest_predict(tf.saved_model.load(str(saved_model)), request)
    head_outputs = ("labels", "predictions", "probabilities", "logits")
    shown = {"predictions": [{key: row[key] for key in head_outputs}
                             for row in response["predictions"]]}
    return request, shown


# =========================================================================================
# 7. Report
# =========================================================================================


def plot_curves(path, pretrain_curves, finetune_curves):
    """loss_curves.png: pretraining losses, and both fine-tuning losses, against the step."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from albert_tf import files

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for tag, label in (("loss", "total"), ("masked_lm_loss", "masked LM"),
                       ("sentence_order_loss", "sentence order")):
        points = pretrain_curves.get(tag) or []
        if points:
            left.plot(*zip(*points), label=label)
    left.set(title="Pretraining (LAMB)", xlabel="step", ylabel="training loss")
    left.legend()
    for run, label in (("pretrained", "from the pretrained weights"),
                       ("random", "from the initial (random) weights")):
        points = finetune_curves.get(run) or []
        if points:
            right.plot(*zip(*points), label=label)
    right.set(title=f"Fine-tuning on {TASK_NAME} (AdamW)", xlabel="step",
              ylabel="training loss")
    right.legend()
    figure.tight_layout()
    # Rendered in memory, then written atomically through tf.io.gfile (any filesystem).
    png = io.BytesIO()
    figure.savefig(png, format="png", dpi=100)
    plt.close(figure)
    files.write_bytes(os.fspath(path), png.getvalue())


def _pct(value):
    return f"{100 * value:.1f}%"


def step_report(job):
    manifests = {step: job.require(step) for step in STEPS[:-1]}
    s = job.settings
    ev = manifests["eval"]["figures"]
    ft = manifests["finetune"]["figures"]
    ex = manifests["export"]["figures"]
    pt = manifests["pretrain"]["figures"]
    metrics = {
        "settings": dataclasses.asdict(s),
        "seconds": {step: m.get("seconds") for step, m in manifests.items()},
        "heldout_masked_lm_accuracy": {"init": ev["init"]["masked_lm_accuracy"],
                                       "pretrained": ev["final"]["masked_lm_accuracy"]},
        "heldout_sentence_order_accuracy": {"init": ev["init"]["sentence_order_accuracy"],
                                            "pretrained": ev["final"]["sentence_order_accuracy"]},
        "heldout_eval": ev,
        "pretraining": pt,
        "export": ex,
        "finetuning": ft,
        "data": manifests["data"]["figures"],
    }
    png = job.run_dir / "loss_curves.png"
    plot_curves(png, manifests["pretrain"].get("curves", {}),
                manifests["finetune"].get("curves", {}))
    _write_text(job.run_dir / "metrics.json", json.dumps(metrics, indent=2, sort_keys=True)
                + "\n")
    _write_text(job.run_dir / "report.md", render_report(job, manifests, metrics))
    return {"files": {"report": _shown(job.run_dir / "report.md"),
                      "metrics": _shown(job.run_dir / "metrics.json"),
                      "loss_curves": _shown(png)},
            "summary": _shown(job.run_dir / "report.md")}


def render_report(job, manifests, metrics):
    """report.md: every figure of the run, the command of every step, the loss curves."""
    s = job.settings
    ev, ft = metrics["heldout_eval"], metrics["finetuning"]
    ex, pt, data = metrics["export"], metrics["pretraining"], metrics["data"]
    seconds = metrics["seconds"]
    gain = ft["test_accuracy_gain"]
    if gain > 0.01:
        verdict = (f"Pretraining helped: the pretrained model reaches "
                   f"{_pct(ft['pretrained']['test_accuracy'])} test accuracy, "
                   f"{100 * gain:.1f} points above the same model fine-tuned "
                   f"from its initial weights ({_pct(ft['random']['test_accuracy'])}).")
    elif gain < -0.01:
        verdict = (f"Pretraining did not help here: the model fine-tuned from its initial "
                   f"weights reaches {_pct(ft['random']['test_accuracy'])} test accuracy, "
                   f"{-100 * gain:.1f} points above the pretrained one "
                   f"({_pct(ft['pretrained']['test_accuracy'])}).")
    else:
        verdict = (f"Pretraining made no clear difference here: "
                   f"{_pct(ft['pretrained']['test_accuracy'])} test accuracy pretrained against "
                   f"{_pct(ft['random']['test_accuracy'])} from the initial weights (within one "
                   "point).")
    by_step = {run: ft[run]["dev_accuracy_by_step"] for run in ("pretrained", "random")}
    steps = sorted(set(by_step["pretrained"]) & set(by_step["random"]), key=int)
    dev_curve = ("Dev accuracy at each fine-tuning checkpoint (step: pretrained / initial "
                 "weights): " + ", ".join(
                     f"{step}: {_pct(by_step['pretrained'][step])} / "
                     f"{_pct(by_step['random'][step])}" for step in steps) + ".")
    sequences = pt["steps"] * s.train_batch_size
    ratio = 125_000 * 4096 * 512 / max(1, sequences * s.max_seq_length)
    scale = (f"This pretraining saw {sequences:,} sequences of {s.max_seq_length} tokens; "
             "ALBERT's released models saw 125,000 steps of 4,096 sequences of 512 tokens, "
             f"about 10^{round(math.log10(ratio))} times as many tokens.")
    config = json.loads(job.config_file().read_text())
    lines = [
        f"# ALBERT demo run `{_shown(job.run_dir)}`",
        "",
        f"Settings fingerprint `{s.fingerprint()}`; total time "
        f"{sum(v for v in seconds.values() if v):.0f} s "
        f"({', '.join(f'{k} {v:.0f} s' for k, v in seconds.items() if v is not None)}).",
        "",
        "## Results",
        "",
        "| figure | at initialisation | pretrained |",
        "|---|---|---|",
        f"| held-out masked-LM accuracy | {_pct(ev['init']['masked_lm_accuracy'])} | "
        f"{_pct(ev['final']['masked_lm_accuracy'])} |",
        f"| held-out masked-LM loss | {ev['init']['masked_lm_loss']:.3f} | "
        f"{ev['final']['masked_lm_loss']:.3f} |",
        f"| held-out sentence-order accuracy | {_pct(ev['init']['sentence_order_accuracy'])} | "
        f"{_pct(ev['final']['sentence_order_accuracy'])} |",
        f"| {TASK_NAME} dev accuracy (best checkpoint) | "
        f"{_pct(ft['random']['best_dev_accuracy'])} | "
        f"{_pct(ft['pretrained']['best_dev_accuracy'])} |",
        f"| {TASK_NAME} test accuracy (that checkpoint) | "
        f"{_pct(ft['random']['test_accuracy'])} | {_pct(ft['pretrained']['test_accuracy'])} |",
        "",
        verdict,
        "",
        dev_curve,
        "",
        scale,
        "",
        f"Held-out figures are over {ev['final']['examples']} pretraining examples made from "
        "documents that pretraining never saw (always answering the more frequent "
        "sentence-order label would score "
        f"{_pct(ev['final']['sentence_order_majority_baseline'])}). The fine-tuning task "
        f"`{TASK_NAME}` asks whether a docstring sentence comes from the Python standard "
        "library or from scikit-learn (balanced; dev and test sentences from held-out "
        "modules; see data/README.md). Fine-tuning used the same recipe for both "
        "models (AdamW, learning rate "
        f"{s.finetune_learning_rate:g}, {s.finetune_steps} steps of {s.finetune_batch_size}, "
        f"{s.finetune_warmup_steps} warm-up steps, seed {s.seed}); the dev set picks the "
        "checkpoint, the test set is scored once.",
        "",
        "![loss curves](loss_curves.png)",
        "",
        "## What ran",
        "",
        f"- Model: `{_shown(job.config_file())}` (hidden {config['hidden_size']}, "
        f"{config['num_hidden_layers']} layers sharing {config['num_hidden_groups']} group, "
        f"embedding {config['embedding_size']}, vocabulary {config['vocab_size']}): "
        f"{pt['parameters']:,} parameters with the pretraining heads.",
        f"- Data: {data['train_instances']:,} training and {data['heldout_instances']:,} "
        f"held-out pretraining instances of {s.max_seq_length} tokens.",
        f"- Pretraining: {pt['steps']} LAMB steps of {s.train_batch_size} (learning rate "
        f"{s.learning_rate:g}, {s.num_warmup_steps} warm-up steps); last logged loss "
        f"{pt['final_train_loss']:.3f}, {pt['examples_per_second'] or 0:.0f} examples/s.",
        f"- Export: the checkpoint reloads with identical values (max difference "
        f"{ex['checkpoint_max_abs_diff']:.1e}); the SavedModel gives the same outputs from "
        f"token ids (max difference {ex['saved_model_tokens_max_abs_diff']:.1e} against the "
        "model in memory run as a graph; run eagerly, which fuses fewer ops, it differs by "
        f"{ex['eager_vs_graph_max_abs_diff']:.1e}) and from raw "
        f"text (ids {'equal to' if ex['saved_model_text_ids_equal_python'] else 'DIFFERENT from'}"
        f" the Python tokenizer's, max difference {ex['saved_model_text_max_abs_diff']:.1e}).",
        "",
        "## The commands of each step",
        "",
        "Each step is one command of the project (run from the repository root); the job "
        "called the same functions in one process.",
        "",
    ]
    for step in STEPS[:-1]:
        lines.append(f"### {step}: {STEP_TITLES[step]}")
        lines.append("")
        lines.append("```")
        lines.extend(manifests[step]["commands"])
        lines.append("```")
        lines.append("")
    lines += [
        "## Serving",
        "",
        f"The fine-tuned classifier (pretrained run) was exported by run_classifier's "
        f"`--export_dir` to `{manifests['finetune']['files']['classifier_saved_model']}`. "
        "With TensorFlow Serving (`--model_base_path` set to its parent folder, which holds "
        "it as a numbered version), a request to `POST /v1/models/docstring_source:predict`:",
        "",
        "```json",
        json.dumps(manifests["finetune"]["rest_request"], indent=2),
        "```",
        "",
        "answers (computed here by `albert_tf.export.rest_predict`, which reads and writes "
        "Serving's REST format; an excerpt: each row also holds the encoder outputs and the "
        "packed ids):",
        "",
        "```json",
        json.dumps(manifests["finetune"]["rest_response"]),
        "```",
        "",
        f"The pretrained encoder's SavedModel `{manifests['export']['files']['saved_model']}` "
        "has the signatures "
        f"{', '.join(f'`{n}`' for n in manifests['export']['signatures'])}. "
        "As a model `albert` (the folder copied to `<base>/albert/1/`), a request to "
        "`POST /v1/models/albert:predict`:",
        "",
        "```json",
        json.dumps(manifests["export"]["rest_request"], indent=2),
        "```",
        "",
        "answers (excerpt):",
        "",
        "```json",
        json.dumps(manifests["export"]["rest_response_excerpt"]),
        "```",
        "",
        "Every figure above is in `metrics.json` beside this file.",
        "",
    ]
    return "\n".join(lines)


STEP_TITLES = {
    "spm": "SentencePiece vocabulary",
    "data": "pretraining data",
    "pretrain": "pretraining",
    "eval": "held-out masked-LM and sentence-order accuracy",
    "export": "checkpoint and SavedModel export",
    "finetune": "fine-tuning, pretrained against initial weights",
    "report": "report",
}
STEP_FUNCTIONS = {"spm": step_spm, "data": step_data, "pretrain": step_pretrain,
                  "eval": step_eval, "export": step_export, "finetune": step_finetune,
                  "report": step_report}


# =========================================================================================
# The embedded fine-tuning task
# =========================================================================================

TASK_NAME = "docstring_source"
TASK_LABELS = ("stdlib", "sklearn")
TASK_COLUMNS = ("sentence", "label")


def documents_by_source(corpus_file):
    """{source name: documents} of a corpus file, from data/corpus/MANIFEST.json's counts."""
    corpus_file = pathlib.Path(corpus_file)
    manifest = json.loads((corpus_file.parent / "MANIFEST.json").read_text())
    counts = manifest["files"][corpus_file.name]["documents_per_source"]
    documents = read_documents(corpus_file)
    if sum(counts.values()) != len(documents):
        raise ValueError(f"{corpus_file} holds {len(documents)} documents, MANIFEST.json says "
                         f"{sum(counts.values())}; rebuild both with build_corpus.py.")
    grouped, start = {}, 0
    for name in manifest["sources"]:
        grouped[name] = documents[start:start + counts[name]]
        start += counts[name]
    return grouped


def source_examples(grouped, per_class, rng, exclude=frozenset()):
    """`per_class` (sentence, source) rows per source, drawn without repetition, shuffled.

    Sentences in `exclude` (e.g. those of the training documents) and sentences that occur
    under both sources are not drawn.
    """
    sentences = {name: {s for doc in docs for s in doc} for name, docs in grouped.items()}
    ambiguous = set.intersection(*sentences.values())
    rows = []
    for name in TASK_LABELS:
        pool = sorted(sentences[name] - ambiguous - set(exclude))
        if len(pool) < per_class:
            raise ValueError(f"{len(pool)} {name} sentences, {per_class} needed.")
        rows.extend((sentence, name) for sentence in rng.sample(pool, per_class))
    rng.shuffle(rows)
    return rows


def build_task_data(out_dir, corpus_train=DATA / "corpus" / "docstrings_train.txt.gz",
                    corpus_heldout=DATA / "corpus" / "docstrings_heldout.txt.gz",
                    train_size=2000, dev_size=400, test_size=400, seed=20191026):
    """Writes the docstring_source task: which library a docstring sentence comes from.

    Single sentences, label `stdlib` (the Python standard library) or `sklearn`
    (scikit-learn), half of each. train.tsv draws from the training documents; dev.tsv and
    test.tsv from the even- and odd-numbered held-out documents, leaving out sentences that
    also occur in the training documents. GLUE-style TSV with a header `sentence<TAB>label`.
    Returns {file name: rows}.
    """
    rng = random.Random(seed)
    train = documents_by_source(corpus_train)
    heldout = documents_by_source(corpus_heldout)
    seen = {s for docs in train.values() for doc in docs for s in doc}
    splits = {
        "train.tsv": source_examples(train, train_size // 2, rng),
        "dev.tsv": source_examples({k: v[0::2] for k, v in heldout.items()}, dev_size // 2,
                                   rng, exclude=seen),
        "test.tsv": source_examples({k: v[1::2] for k, v in heldout.items()}, test_size // 2,
                                    rng, exclude=seen),
    }
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, rows in splits.items():
        text = "\t".join(TASK_COLUMNS) + "\n" + "".join(f"{a}\t{label}\n" for a, label in rows)
        _write_text(out_dir / name, text)
    return {name: len(rows) for name, rows in splits.items()}
