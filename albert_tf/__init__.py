"""albert-tf: ALBERT for TensorFlow 2 / Keras 3, faithful to Google's original release.

The model classes are imported on first use, so that tools that need no TensorFlow (the
pretraining-data writer's worker processes, for example) start fast.
"""

import importlib

_EXPORTS = {
    "AlbertConfig": "albert_tf.config",
    "AlbertModel": "albert_tf.modeling",
    **{name: "albert_tf.heads" for name in (
        "AlbertPretrainer", "AlbertClassifier", "AlbertMultipleChoice", "AlbertSquadV1",
        "AlbertSquadV2", "pretraining_losses")},
}

__all__ = list(_EXPORTS)
__version__ = "0.1.0"


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'albert_tf' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__():
    return sorted(list(globals()) + __all__)
