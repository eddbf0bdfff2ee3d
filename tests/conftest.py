"""Shared test set-up: quiet TensorFlow, the fixtures written by the original code, and the
helpers several test modules use (entry points in-process and their flag defaults, small
SentencePiece models, task files in the official formats from a seeded generator)."""
import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402



def _split_cpu_in_two():
    """Two logical CPU devices, so MirroredStrategy runs with two replicas in tests."""
    import tensorflow as tf
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
    except RuntimeError:   # already initialised (another conftest got there first)
        pass


_split_cpu_in_two()

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
ORIGINAL_TINY = FIXTURES / "original_tiny"
ORIGINAL_HEADS = FIXTURES / "original_heads"


@pytest.fixture
def fixtures_dir():
    return FIXTURES


def original_reference(directory):
    """The arrays of a fixture's `reference.npz` (written by the original code)."""
    with np.load(pathlib.Path(directory) / "reference.npz") as data:
        return {key: data[key] for key in data.files}


def tiny_config():
    from albert_tf import AlbertConfig
    return AlbertConfig.from_json_file(ORIGINAL_TINY / "albert_config.json")


@pytest.fixture
def ram_dir(monkeypatch, tmp_path):
    """A fresh folder on `ram://` (TensorFlow's in-memory filesystem, reached only through
    `tf.io.gfile`, like an object store). The test runs with a new empty working directory,
    and fails if anything was written under a local folder named `ram:` (a path treated as
    local)."""
    import uuid

    import tensorflow as tf
    root = f"ram://{uuid.uuid4().hex}"
    tf.io.gfile.makedirs(root)
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    yield root
    stray = [str(p) for p in workdir.rglob("ram:*")]
    assert not stray, f"ram:// paths were written to the local disk: {stray}"
    tf.io.gfile.rmtree(root)


def stage_to_ram(local_path, ram_path):
    """Copies a local file or folder (recursively) to `ram_path` through `tf.io.gfile`;
    returns `ram_path`."""
    import tensorflow as tf
    local_path = pathlib.Path(local_path)
    if local_path.is_dir():
        for file in local_path.rglob("*"):
            if file.is_file():
                target = f"{ram_path}/{file.relative_to(local_path).as_posix()}"
                tf.io.gfile.makedirs(target.rsplit("/", 1)[0])
                tf.io.gfile.copy(str(file), target, overwrite=True)
    else:
        tf.io.gfile.makedirs(ram_path.rsplit("/", 1)[0])
        tf.io.gfile.copy(str(local_path), ram_path, overwrite=True)
    return ram_path


def run_entry_point(main, argv, **flag_values):
    """Runs an absl entry point's `main` in this process with `flag_values` set (flags must
    be defined already); returns what it returned. Flags are restored afterwards."""
    from absl import flags
    from absl.testing import flagsaver
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()
    with flagsaver.flagsaver(**flag_values):
        return main(argv)


def entry_point_flag_defaults(module, define):
    """{flag: default} of an entry point, read in a fresh interpreter (so no other test's
    flags mix in): `import <module>; <module>.<define>()`, run from the repository root."""
    import json
    import subprocess
    import sys
    code = (
        f"import json, sys; sys.argv = ['{module}.py']\n"
        f"import {module}; from absl import flags\n"
        f"{module}.{define}(); flags.FLAGS(['x'])\n"
        "print(json.dumps({k: flags.FLAGS[k].default for k in flags.FLAGS}, default=str))\n")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, cwd=FIXTURES.parent.parent, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def pydoc_spm_model(folder):
    """A 300-piece SentencePiece model (the tiny configs' vocab_size) trained with the
    original recipe on the first 3,000 lines of the pydoc corpus; returns its path."""
    import gzip

    from albert_tf.train_sentencepiece import train_sentencepiece
    corpus_gz = FIXTURES / "original_pretraining_data" / "pydoc_corpus.txt.gz"
    with gzip.open(corpus_gz, "rt", encoding="utf-8") as f:
        lines = [next(f) for _ in range(3000)]
    corpus = pathlib.Path(folder) / "corpus.txt"
    corpus.write_text("".join(lines), encoding="utf-8")
    return pathlib.Path(train_sentencepiece([str(corpus)], str(pathlib.Path(folder) / "spm300"),
                                            vocab_size=300))


def sentencepiece_model(pieces, control=("[CLS]", "[SEP]", "[MASK]")):
    """A unigram SentencePiece `ModelProto`: `<pad>` 0, `<unk>` 1, the `control` pieces, then
    `pieces`, (piece, score) pairs; the identity normaliser (only whitespace handling: a
    dummy prefix, extra whitespace removed), so that a test's segmentation is readable."""
    from sentencepiece import sentencepiece_model_pb2 as model_pb2
    model = model_pb2.ModelProto()
    kinds = model_pb2.ModelProto.SentencePiece
    for piece, kind, score in ([("<pad>", kinds.CONTROL, 0.0), ("<unk>", kinds.UNKNOWN, 0.0)]
                               + [(c, kinds.CONTROL, 0.0) for c in control]
                               + [(piece, kinds.NORMAL, score) for piece, score in pieces]):
        entry = model.pieces.add()
        entry.piece, entry.type, entry.score = piece, kind, score
    model.trainer_spec.model_type = model_pb2.TrainerSpec.UNIGRAM
    model.trainer_spec.pad_id, model.trainer_spec.unk_id = 0, 1
    model.trainer_spec.bos_id = model.trainer_spec.eos_id = -1
    model.normalizer_spec.name = "identity"
    model.normalizer_spec.add_dummy_prefix = True
    model.normalizer_spec.remove_extra_whitespaces = True
    return model


# === Task files in the official formats, from a seeded generator ==========================

FARM_ANIMALS = "cat dog fox owl bee cow pig hen".split()
FARM_COLORS = "red blue green black white".split()


def rte_rows(seed, count, labelled=True):
    """An RTE TSV (header `index sentence1 sentence2 [label]`): "The <animal> is <color>."
    pairs, entailment when both name the same animal."""
    import random
    rng = random.Random(seed)
    rows = [["index", "sentence1", "sentence2"] + (["label"] if labelled else [])]
    for i in range(count):
        a, b = rng.sample(FARM_ANIMALS, 2)
        colour = rng.choice(FARM_COLORS)
        same = rng.random() < 0.5
        row = [str(i), f"The {a} is {colour}.", f"The {a if same else b} is {colour}."]
        if labelled:
            row.append("entailment" if same else "not_entailment")
        rows.append(row)
    return "".join("\t".join(r) + "\n" for r in rows)


def race_article(rng, level, number):
    """One RACE article (the official JSON of one file): who is on the farm, four options."""
    animal = rng.choice(FARM_ANIMALS)
    options = rng.sample([a for a in FARM_ANIMALS if a != animal], 3)
    answer = rng.randrange(4)
    options.insert(answer, animal)
    return {"article": f"The {animal} is on the farm.", "questions": ["Who is on the farm?"],
            "options": [options], "answers": ["ABCD"[answer]], "id": f"{level}{number}.txt"}


def write_race_data(data_dir, seed=0, counts=(("train", 4), ("dev", 3), ("test", 2))):
    """RACE in the official layout under `data_dir` (`RACE/<split>/<level>/<n>.txt`, one
    JSON article a file), `count` articles per level and split, from `race_article`."""
    import json
    import random
    rng = random.Random(seed)
    for split, count in counts:
        for level in ("middle", "high"):
            folder = pathlib.Path(data_dir) / "RACE" / split / level
            folder.mkdir(parents=True)
            for i in range(count):
                (folder / f"{i + 1}.txt").write_text(json.dumps(race_article(rng, level, i)))


def synthetic_squad(rng, num_paragraphs, v2, impossible, num_animals=lambda rng: 3,
                    questions=2, qid="p{p}q{k}", animals=FARM_ANIMALS, colors=FARM_COLORS):
    """A SQuAD v1.1 / v2.0 dataset (the official JSON, as a dict): each paragraph says
    "The <animal> is <color>." for `num_animals(rng)` animals; question k of paragraph p
    (id `qid.format(p=p, k=k)`) asks "What color is the <animal>?" of one of them, or, in
    v2.0 when `impossible(rng, p, k)`, of an animal the paragraph does not name (no
    answer). Answers start at the animal's name."""
    data = []
    for p in range(num_paragraphs):
        chosen = rng.sample(animals, num_animals(rng))
        sentences, offsets, position = [], {}, 0
        for animal in chosen:
            sentence = f"The {animal} is {rng.choice(colors)}."
            offsets[animal] = position + len("The ")
            sentences.append(sentence)
            position += len(sentence) + 1
        qas = []
        for k in range(questions):
            qa = {"id": qid.format(p=p, k=k)}
            if v2 and impossible(rng, p, k):
                absent = rng.choice([a for a in animals if a not in chosen])
                qa.update(question=f"What color is the {absent}?", answers=[],
                          is_impossible=True)
            else:
                animal = rng.choice(chosen)
                qa.update(question=f"What color is the {animal}?",
                          answers=[{"text": animal, "answer_start": offsets[animal]}])
                if v2:
                    qa["is_impossible"] = False
            qas.append(qa)
        data.append({"title": f"t{p}", "paragraphs": [{"context": " ".join(sentences),
                                                       "qas": qas}]})
    return {"version": "v2.0" if v2 else "1.1", "data": data}
