"""Shared test set-up: quiet TensorFlow, the fixtures written by the original code."""
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
