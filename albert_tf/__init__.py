"""albert-tf: ALBERT for TensorFlow 2 / Keras 3, faithful to Google's original release."""

from albert_tf.config import AlbertConfig
from albert_tf.heads import (AlbertClassifier, AlbertMultipleChoice, AlbertPretrainer,
                             AlbertSquadV1, AlbertSquadV2, pretraining_losses)
from albert_tf.modeling import AlbertModel

__all__ = [
    "AlbertConfig", "AlbertModel", "AlbertPretrainer", "AlbertClassifier",
    "AlbertMultipleChoice", "AlbertSquadV1", "AlbertSquadV2", "pretraining_losses",
]
__version__ = "0.1.0"
