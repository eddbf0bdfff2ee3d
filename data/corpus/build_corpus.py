r"""Builds the demo corpus: docstrings of the Python standard library and of scikit-learn.

    .venv/bin/python data/corpus/build_corpus.py     # writes data/corpus/docstrings_*.txt.gz

Sources: every pure-Python module of the standard library of the Python running this script,
then of the installed scikit-learn package (test suites and scikit-learn's vendored
`externals` excluded), parsed with `ast` (nothing is imported or executed). Each docstring
(module, class, function or method, in source order, modules in sorted path order) becomes
one document: its prose paragraphs (code examples, doctests, reST directives, tables and
field lists dropped), one sentence per line, a blank line between documents, as
create_pretraining_data expects. Docstrings of fewer than two sentences are left out, and
repeated ones are kept once.

Split: the documents of every 10th module (in sorted order, the 5th, 15th, ...) are the
held-out part, `docstrings_heldout.txt.gz`; the rest is `docstrings_train.txt.gz`. Splitting by
module keeps near-duplicate docstrings of one module on one side.

Licences (both allow redistribution with the licence text and copyright notice kept):
the Python standard library is under the PSF License Agreement (LICENSE-PSF.txt in this
folder, copied from the same Python installation), scikit-learn under the BSD 3-Clause
licence (LICENSE-scikit-learn.txt, copied from its installed package).

The gzip files are written with mtime 0 so that the same Python gives identical bytes.
MANIFEST.json records, per file, its documents, sentences, size, SHA-256 and how many of
its documents (which come in source order) each source gave: the fine-tuning task
`docstring_source` takes its labels from there.
"""

import argparse
import ast
import gzip
import hashlib
import io
import json
import os
import pathlib
import re
import sys
import sysconfig

HERE = pathlib.Path(__file__).resolve().parent
HELDOUT_EVERY, HELDOUT_OFFSET = 10, 5
SOURCE_NAMES = ("stdlib", "sklearn")
# Documents of one sentence are left out: create_pretraining_data pairs such a document with
# a random other one (label 1), which would make most sentence-order labels 1.
MIN_SENTENCES = 2
_SKIP_PARTS = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__",
               "_bundled", "__phello__", "externals"}
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z])")
_CODE_LINE = re.compile(r"^\s*(>>>|\.\.\.|\$ |\.\. |:[\w ]+:|[-=~^*+#]{3,}|\|)")
_NUMPYDOC_ITEM = re.compile(r"^[\w*, ]+ : \S")   # "name : type" line of a numpydoc section
_FIELD = re.compile(r"^\s*(@\w+|:\w+|[\w*]+\s*(\([^)]*\))?\s*(--|:)\s)")


def source_files(root):
    """The .py files of a package tree, test suites and vendored code excluded, sorted."""
    root = pathlib.Path(root)
    files = []
    for path in sorted(root.rglob("*.py")):
        parts = set(path.relative_to(root).parts[:-1])
        if parts & _SKIP_PARTS or path.name.startswith("test_"):
            continue
        if any(part.startswith("config-") for part in parts):
            continue
        files.append(path)
    return files


def docstrings(source):
    """The docstrings of a module's source, in source order (module, classes, functions)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    found = []
    kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    for node in ast.walk(tree):   # breadth-first; re-sorted by line below
        if isinstance(node, kinds):
            text = ast.get_docstring(node, clean=True)
            if text:
                found.append((getattr(node, "lineno", 0), text))
    return [text for _, text in sorted(found, key=lambda item: item[0])]


def _is_prose(paragraph):
    lines = paragraph.splitlines()
    if any(_CODE_LINE.match(line) for line in lines):
        return False
    if all(line.startswith((" ", "\t")) for line in lines):
        return False   # an indented block: code or a literal
    if len(lines) > 1 and sum(bool(_FIELD.match(line)) for line in lines) >= len(lines) / 2:
        return False   # a list of fields / arguments
    text = " ".join(lines)
    letters = sum(c.isalpha() or c == " " for c in text)
    return letters >= 0.8 * len(text)


def sentences(docstring):
    """The prose sentences of a docstring, one per string."""
    result = []
    for paragraph in re.split(r"\n\s*\n", docstring):
        lines = paragraph.strip("\n").splitlines()
        if lines and _NUMPYDOC_ITEM.match(lines[0]):
            # Keep a numpydoc item's description, not its "name : type" line.
            paragraph = "\n".join(line.strip() for line in lines[1:])
        if not paragraph.strip() or not _is_prose(paragraph):
            continue
        text = " ".join(paragraph.split())
        for sentence in _SENTENCE_END.split(text):
            sentence = sentence.strip()
            if len(sentence.split()) >= 3 and sentence[:1].isalpha():
                result.append(sentence)
    return result


def build(roots):
    """(train documents, held-out documents, counts) from the package trees.

    Documents are lists of sentences, the trees' documents in the order of `roots`;
    counts[split][i] is how many documents of `split` come from `roots[i]`.
    """
    train, heldout, seen = [], [], set()
    counts = {"train": [0] * len(roots), "heldout": [0] * len(roots)}
    files = [(r, path) for r, root in enumerate(roots) for path in source_files(root)]
    for index, (root_index, path) in enumerate(files):
        split = "heldout" if index % HELDOUT_EVERY == HELDOUT_OFFSET else "train"
        target = heldout if split == "heldout" else train
        source = path.read_text(encoding="utf-8", errors="replace")
        for doc in docstrings(source):
            lines = sentences(doc)
            key = "\n".join(lines)
            if len(lines) >= MIN_SENTENCES and key not in seen:
                seen.add(key)
                target.append(lines)
                counts[split][root_index] += 1
    return train, heldout, counts


def write_documents(path, documents):
    """Writes documents as gzip text (mtime 0: reproducible bytes)."""
    text = "\n\n".join("\n".join(doc) for doc in documents) + "\n"
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=9) as f:
        f.write(text.encode("utf-8"))
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(buffer.getvalue())
    os.replace(tmp, path)
    return len(text.encode("utf-8"))


def default_roots():
    """This Python's standard library, then the installed scikit-learn package."""
    import importlib.util

    sklearn = importlib.util.find_spec("sklearn")
    if sklearn is None:
        raise SystemExit("scikit-learn is not installed; run with the project's .venv.")
    return [sysconfig.get_paths()["stdlib"], os.path.dirname(sklearn.origin)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--roots", nargs="*", default=None,
                        help="package folders, in order (default: stdlib, scikit-learn)")
    parser.add_argument("--names", nargs="*", default=None,
                        help="a short name per root (default: stdlib, sklearn)")
    parser.add_argument("--output_dir", default=str(HERE))
    args = parser.parse_args()
    roots = args.roots or default_roots()
    names = args.names or SOURCE_NAMES[:len(roots)]
    train, heldout, counts = build(roots)
    out = pathlib.Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest = {"python": sys.version.split()[0], "sources": names, "files": {}}
    for split, docs in (("train", train), ("heldout", heldout)):
        name = f"docstrings_{split}.txt.gz"
        size = write_documents(out / name, docs)
        data = (out / name).read_bytes()
        manifest["files"][name] = {
            "documents": len(docs), "sentences": sum(len(d) for d in docs),
            "text_bytes": size, "sha256": hashlib.sha256(data).hexdigest(),
            # Documents are in source order: the first n0 from sources[0], and so on.
            "documents_per_source": dict(zip(names, counts[split]))}
        print(f"{out / name}: {len(docs)} documents "
              f"({', '.join(f'{n} {c}' for n, c in zip(names, counts[split]))}), "
              f"{manifest['files'][name]['sentences']} sentences, {size / 1e6:.2f} MB of text")
    _write_json(out / "MANIFEST.json", manifest)
    print(f"from Python {sys.version.split()[0]}: {', '.join(map(str, roots))}")


def _write_json(path, value):
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
