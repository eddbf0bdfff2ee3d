"""The library's layout promises (DESIGN.md, STYLE.md): Keras 3 only, files a person can read."""

import ast
import pathlib

import pytest

LIBRARY = pathlib.Path(__file__).resolve().parents[1] / "albert_tf"
MODULES = sorted(LIBRARY.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(LIBRARY)))
def test_the_library_never_imports_tf_keras(path):
    # tf-models-official's tf_keras objects do not mix with Keras 3; code that needs them
    # (the independent reference runs) lives in benchmarks/.
    tree = ast.parse(path.read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert "tf_keras" not in imported
    assert "TF_USE_LEGACY_KERAS" not in path.read_text()
    # Nor runs such code in its own process by loading a file by path (the demo starts
    # benchmarks/tfm_pretraining.py as a separate process instead).
    assert "spec_from_file_location" not in path.read_text()
    assert "runpy" not in imported


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(LIBRARY)))
def test_no_library_file_is_longer_than_700_lines(path):
    assert len(path.read_text().splitlines()) <= 700
