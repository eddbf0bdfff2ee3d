"""The demo job's settings, run folder and shared helpers (see albert_tf/demo/__init__.py).

`JobSettings` says what the job does (`full()` is the README's run, `quick()` a reduced one
for tests); a `Job` is a run folder with those settings, where each step writes under
`<run_dir>/<step>/` and marks itself finished with `<step>/manifest.json`. The helpers read
the corpus, write files atomically through `albert_tf.files` and rebuild command lines.
"""

import dataclasses
import gzip
import hashlib
import json
import os
import pathlib
import shlex

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
DATA = ROOT / "data"
STEPS = ("spm", "data", "pretrain", "tfm_check", "eval", "export", "finetune", "curve",
         "report")
STEP_TITLES = {
    "spm": "SentencePiece vocabulary",
    "data": "pretraining data",
    "pretrain": "pretraining",
    "tfm_check": "the same pretraining with tf-models-official's ALBERT",
    "eval": "held-out masked-LM and sentence-order accuracy, fill-the-mask",
    "export": "checkpoint and SavedModel export",
    "finetune": "fine-tuning with run_classifier, exported for serving",
    "curve": "label-efficiency curve, pretrained against initial weights, and baselines",
    "report": "report",
}
# The files the steps read, as `albert_demo.py --steps=...` needs them.
REQUIRES = {"data": ["spm"], "pretrain": ["spm", "data"], "tfm_check": ["data", "pretrain"],
            "eval": ["spm", "data", "pretrain"], "export": ["spm", "data", "pretrain"],
            "finetune": ["spm", "pretrain"], "curve": ["spm", "pretrain"],
            "report": list(STEPS[:-1])}


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
    task_dir: str = "data/tasks/docstring_source"   # the finetune step's task
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
    num_train_steps: int = 200
    num_warmup_steps: int = 20
    save_checkpoints_steps: int = 100
    log_steps: int = 20
    eval_batch_size: int = 64
    # Fine-tuning with run_classifier (its flags), from the pretrained weights.
    finetune_batch_size: int = 32
    finetune_learning_rate: float = 1e-4
    finetune_steps: int = 100
    finetune_warmup_steps: int = 10
    finetune_checkpoint_steps: int = 50
    finetune_log_steps: int = 10
    # The tf-models-official check: the same pretraining recipe for as many steps. Its LAMB
    # keeps Adam's bias correction (which the original's lacks) only if asked.
    tfm_check: bool = True
    tfm_bias_correction: bool = False
    # The label-efficiency curve (see label_efficiency.py): a fine-tuning run per label
    # budget, seed and initialisation, `curve_steps` AdamW steps of `curve_batch_size` each.
    curve_task_dir: str = "data/tasks/word_order"
    curve_budgets: tuple = (32, 128, 512, 0)    # labelled training examples (0: all)
    curve_seeds: tuple = (1, 2, 3)
    curve_steps: int = 60
    curve_warmup_steps: int = 6
    curve_batch_size: int = 16
    curve_learning_rate: float = 1e-4

    @classmethod
    def full(cls):
        return cls()

    @classmethod
    def quick(cls):
        """A run of about 4 minutes on 2 cores: a slice of the corpus and the task, a tiny model."""
        return cls(max_documents=600, max_task_rows=200, vocab_size=400, max_seq_length=32,
                   max_predictions_per_seq=5, dupe_factor=1, train_batch_size=16,
                   num_train_steps=20, num_warmup_steps=2, save_checkpoints_steps=10,
                   log_steps=5, eval_batch_size=16, finetune_batch_size=16,
                   finetune_steps=12, finetune_warmup_steps=2, finetune_checkpoint_steps=6,
                   finetune_log_steps=3, curve_budgets=(16, 0), curve_seeds=(1, 2),
                   curve_steps=6, curve_warmup_steps=1, curve_batch_size=8)

    def with_overrides(self, assignments):
        """A copy with fields changed by "name=value" strings (flag `--set`), each value
        read as the field's type: ints, floats, true/false, text, or a list of ints
        separated by ":" for tuples (e.g. "curve_budgets=32:512:0").

        Raises ValueError naming the assignment when the name is not a field or the value
        does not read as its type.
        """
        fields = {f.name: f for f in dataclasses.fields(self)}
        changes = {}
        for assignment in assignments:
            name, sep, text = assignment.partition("=")
            name = name.strip()
            if name not in fields:
                raise ValueError(f"--set={assignment!r}: unknown setting {name!r}; the "
                                 f"settings are {', '.join(sorted(fields))}.")
            if not sep:
                raise ValueError(f"--set={assignment!r}: expected {name}=value.")
            default = getattr(self, name)
            try:
                if isinstance(default, bool):
                    if text.lower() not in ("true", "false", "1", "0"):
                        raise ValueError(text)
                    value = text.lower() in ("true", "1")
                elif isinstance(default, tuple):
                    value = tuple(int(part) for part in text.split(":"))
                else:
                    value = type(default)(text)
            except ValueError:
                kind = ("integers separated by ':' (e.g. 32:512:0)"
                        if isinstance(default, tuple) else type(default).__name__)
                raise ValueError(f"--set={assignment!r}: {text!r} does not read as "
                                 f"{kind}.") from None
            changes[name] = value
        return dataclasses.replace(self, **changes)

    def validate(self):
        """Raises ValueError naming the first setting out of its range (before any folder
        or file is made)."""
        positive = ("vocab_size", "max_seq_length", "max_predictions_per_seq", "dupe_factor",
                    "train_batch_size", "num_train_steps", "save_checkpoints_steps",
                    "log_steps", "eval_batch_size", "finetune_batch_size", "finetune_steps",
                    "finetune_checkpoint_steps", "finetune_log_steps", "curve_steps",
                    "curve_batch_size", "learning_rate", "finetune_learning_rate",
                    "curve_learning_rate")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}={getattr(self, name)}: expected a number > 0.")
        for name, steps in (("num_warmup_steps", "num_train_steps"),
                            ("finetune_warmup_steps", "finetune_steps"),
                            ("curve_warmup_steps", "curve_steps")):
            if not 0 <= getattr(self, name) <= getattr(self, steps):
                raise ValueError(f"{name}={getattr(self, name)}: expected 0 to {steps} "
                                 f"({getattr(self, steps)}).")
        for name in ("max_documents", "max_task_rows", "num_workers"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)}: expected 0 (all) or more.")
        if not 0 < self.masked_lm_prob < 1:
            raise ValueError(f"masked_lm_prob={self.masked_lm_prob}: expected between 0 and 1.")
        if not self.curve_budgets or min(self.curve_budgets) < 0:
            raise ValueError(f"curve_budgets={self.curve_budgets}: expected one or more label "
                             "counts >= 0 (0: all).")
        if not self.curve_seeds:
            raise ValueError("curve_seeds: expected one or more seeds.")

    @property
    def curve_runs(self):
        """Fine-tuning runs of the label-efficiency curve: budgets x seeds x 2 inits."""
        return len(self.curve_budgets) * len(self.curve_seeds) * 2

    def fingerprint(self):
        """A short hash of the settings: runs with the same one can share steps."""
        # The number of worker processes does not change any output.
        values = {k: list(v) if isinstance(v, tuple) else v
                  for k, v in dataclasses.asdict(self).items() if k != "num_workers"}
        text = json.dumps(values, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def repo_path(path):
    """An absolute path; relative ones are taken from the repository root."""
    path = pathlib.Path(path)
    return path if path.is_absolute() else ROOT / path


def local_folder(path, what):
    """`path`, checked to be on the local disk: the steps reach the run folder with local
    file operations (pathlib), so a `gs://` path would become a local folder named "gs:".
    Raises ValueError naming `what` (the flag)."""
    from albert_tf import files

    if files.has_scheme(path):
        raise ValueError(f"{what}={path}: the demo's run folder must be on the local disk. "
                         "Copy the finished run elsewhere afterwards (e.g. gsutil -m cp -r).")
    return path


def shown(path):
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
            value = shown(value)
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
        self.run_dir = pathlib.Path(local_folder(os.fspath(run_dir), "--run_dir")).resolve()
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
        write_text(self.manifest_path(step), text)
        return json.loads(text)   # as a later run reads it back (tuples become lists)

    def require(self, step):
        manifest = self.manifest(step)
        if manifest is None and self.manifest_path(step).exists():
            raise RuntimeError(f"Step {step!r} in {self.run_dir} ran with other settings than "
                               "these; run it again with these settings (--redo=" + step +
                               ") or use that folder's settings.")
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
            path = repo_path(path)
            if s.max_documents:
                limit = s.max_documents if name == "train" else max(s.max_documents // 4, 50)
                cut = self.run_dir / "corpus" / f"{name}.txt.gz"
                if not cut.exists():
                    docs = read_documents(path)[:limit]
                    cut.parent.mkdir(parents=True, exist_ok=True)
                    write_documents(cut, docs)
                path = cut
            files.append(path)
        return files

    def task_dir(self, task_dir=None, name="task"):
        """A task's folder (default: the finetune step's), cut to `max_task_rows` rows per
        file into `<run_dir>/<name>` if asked."""
        s = self.settings
        source = repo_path(task_dir or s.task_dir)
        if not s.max_task_rows:
            return source
        cut = self.run_dir / name
        if not (cut / "test.tsv").exists():
            cut.mkdir(parents=True, exist_ok=True)
            for name in ("train.tsv", "dev.tsv", "test.tsv"):
                lines = (source / name).read_text(encoding="utf-8").splitlines(True)
                limit = s.max_task_rows if name == "train.tsv" else s.max_task_rows // 2
                write_text(cut / name, "".join(lines[:limit + 1]))
        return cut

    def config_file(self):
        """The run's `albert_config.json`: the demo config with the vocabulary's size."""
        from albert_tf.config import AlbertConfig

        path = self.run_dir / "albert_config.json"
        if not path.exists():
            config = AlbertConfig.from_json_file(repo_path(self.settings.albert_config_file))
            config.vocab_size = self.settings.vocab_size
            if self.settings.max_documents:      # reduced runs: a tiny model
                for key, value in dict(embedding_size=16, hidden_size=32, num_hidden_layers=2,
                                       num_attention_heads=2, intermediate_size=64).items():
                    setattr(config, key, value)
            config.to_json_file(path)
        return path


def write_text(path, text):
    """Writes `text` (UTF-8) to `path` atomically (any `tf.io.gfile` filesystem)."""
    from albert_tf import files

    files.write_text(os.fspath(path), text)


def read_documents(path):
    """Documents of a corpus file (one sentence per line, blank line between documents)."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        text = f.read()
    return [block.splitlines() for block in text.split("\n\n") if block.strip()]


def write_documents(path, documents):
    """Writes documents as a gzipped corpus file, atomically (mtime 0: the same bytes on
    every run)."""
    from albert_tf import files

    data = ("\n\n".join("\n".join(d) for d in documents) + "\n").encode("utf-8")
    files.write_bytes(os.fspath(path), gzip.compress(data, mtime=0))


