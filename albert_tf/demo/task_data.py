"""The demo job's embedded fine-tuning tasks, built from the corpus (data/README.md).

    docstring_source  which library a docstring sentence comes from (stdlib or sklearn): a
                      topic task, which word counts alone nearly solve
    word_order        is this docstring sentence as written, or were two adjacent words
                      swapped: a task on word order, where every bag-of-words model is at
                      chance by construction and knowledge of the language is what helps

Both are GLUE-style TSV (header `sentence<TAB>label`); train.tsv from the training
documents, dev.tsv and test.tsv from the even- and odd-numbered held-out documents, never
a sentence of the training documents. `build_all(tasks_dir)` rewrites both folders
(`albert_demo.py --build_task_data=data/tasks`).
"""

import json
import pathlib
import random
import re

from albert_tf.demo.job import DATA, read_documents, write_text

CORPUS_TRAIN = DATA / "corpus" / "docstrings_train.txt.gz"
CORPUS_HELDOUT = DATA / "corpus" / "docstrings_heldout.txt.gz"

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


def build_task_data(out_dir, corpus_train=CORPUS_TRAIN, corpus_heldout=CORPUS_HELDOUT,
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
    return _write_splits(out_dir, splits)


def _write_splits(out_dir, splits):
    """Writes {file name: [(sentence, label)]} as GLUE-style TSV with a header row."""
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, rows in splits.items():
        text = "\t".join(TASK_COLUMNS) + "\n" + "".join(f"{a}\t{label}\n" for a, label in rows)
        write_text(out_dir / name, text)
    return {name: len(rows) for name, rows in splits.items()}


# === word_order ==========================================================================

WORD_ORDER_NAME = "word_order"
WORD_ORDER_LABELS = ("original", "swapped")
_WORD = re.compile(r"^[a-z]+$")


def swappable_positions(words):
    """Indices i (1 <= i) where words i and i+1 are both lower-case letters only and differ.

    Leaving out the first word keeps capitals in place; leaving out punctuation and digits
    keeps commas and the final full stop in place. So a swap changes only the order of two
    words, never which words, characters or capitals a sentence holds.
    """
    return [i for i in range(1, len(words) - 1)
            if _WORD.match(words[i]) and _WORD.match(words[i + 1]) and words[i] != words[i + 1]]


def _word_order_pool(documents, exclude=frozenset()):
    """Sentences of 6 to 30 words with a swappable pair, each once, in a stable order."""
    seen, pool = set(exclude), []
    for doc in documents:
        for sentence in doc:
            words = sentence.split()
            if sentence in seen or not 6 <= len(words) <= 30 or not swappable_positions(words):
                continue
            seen.add(sentence)
            pool.append(sentence)
    return pool


def word_order_examples(pool, size, rng):
    """`size` rows, half `original` sentences and half `swapped` (two adjacent words
    exchanged at a random swappable position), each sentence drawn once, shuffled."""
    if len(pool) < size:
        raise ValueError(f"{len(pool)} sentences with a swappable pair, {size} needed.")
    drawn = rng.sample(pool, size)
    rows = []
    for index, sentence in enumerate(drawn):
        if index < size // 2:
            rows.append((sentence, "original"))
            continue
        words = sentence.split()
        i = rng.choice(swappable_positions(words))
        words[i], words[i + 1] = words[i + 1], words[i]
        rows.append((" ".join(words), "swapped"))
    rng.shuffle(rows)
    return rows


def build_word_order(out_dir, corpus_train=CORPUS_TRAIN, corpus_heldout=CORPUS_HELDOUT,
                     train_size=2000, dev_size=400, test_size=400, seed=20191026):
    """Writes the word_order task: is a docstring sentence as written (`original`) or were
    two adjacent words swapped (`swapped`)?

    Each sentence appears once in the task, either as written or with one swap, so no
    example can be compared with its other version. train.tsv draws from the training
    documents; dev.tsv and test.tsv from the even- and odd-numbered held-out documents,
    leaving out sentences that also occur in the training documents. Sentences are split
    and joined on single spaces (the corpus has no other whitespace inside a sentence).
    Returns {file name: rows}.
    """
    rng = random.Random(seed)
    train = read_documents(corpus_train)
    heldout = read_documents(corpus_heldout)
    seen = {s for doc in train for s in doc}
    splits = {
        "train.tsv": word_order_examples(_word_order_pool(train), train_size, rng),
        "dev.tsv": word_order_examples(_word_order_pool(heldout[0::2], seen), dev_size, rng),
        "test.tsv": word_order_examples(_word_order_pool(heldout[1::2], seen), test_size,
                                        rng),
    }
    return _write_splits(out_dir, splits)


TASKS = {TASK_NAME: (build_task_data, TASK_LABELS),
         WORD_ORDER_NAME: (build_word_order, WORD_ORDER_LABELS)}


def build_all(tasks_dir):
    """Rewrites every embedded task under `tasks_dir/<name>/`; returns {name: {file: rows}}."""
    return {name: build(pathlib.Path(tasks_dir) / name) for name, (build, _) in TASKS.items()}


def read_task(task_dir, name, labels):
    """([sentence], [label index]) of `<task_dir>/<name>` (a TSV written above)."""
    lines = (pathlib.Path(task_dir) / name).read_text(encoding="utf-8").splitlines()[1:]
    rows = [line.split("\t") for line in lines]
    return [r[0] for r in rows], [labels.index(r[1]) for r in rows]
