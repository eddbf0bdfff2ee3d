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
