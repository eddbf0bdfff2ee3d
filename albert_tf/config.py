"""`AlbertConfig`: the hyper-parameters of an ALBERT encoder, as the original release has them.

The field names and defaults are the original `modeling.AlbertConfig`'s (its defaults are the
xxlarge model's). Released `albert_config.json` files load unchanged: keys that are not fields
(`net_structure_type`, `gap_size`, `num_memory_blocks`, `layers_to_keep`, ...) are kept as
attributes and written back by `to_dict` / `to_json_file`, as the original does.
"""

import copy
import json
import os
import pathlib

from albert_tf.errors import UserError

# The fields of the original `AlbertConfig.__init__`, in its order, with its defaults.
_FIELDS = (
    ("vocab_size", None),
    ("embedding_size", 128),
    ("hidden_size", 4096),
    ("num_hidden_layers", 12),
    ("num_hidden_groups", 1),
    ("num_attention_heads", 64),
    ("intermediate_size", 16384),
    ("inner_group_num", 1),
    ("down_scale_factor", 1),
    ("hidden_act", "gelu"),
    ("hidden_dropout_prob", 0),
    ("attention_probs_dropout_prob", 0),
    ("max_position_embeddings", 512),
    ("type_vocab_size", 2),
    ("initializer_range", 0.02),
)

# The released models' architectures (from the released config files). All share
# V = 30000, E = 128, T = 2, P = 512, one group with one inner group and "gelu".
PRESETS = {
    #           hidden, layers, heads, intermediate, v1 dropout
    "base": (768, 12, 12, 3072, 0.1),
    "large": (1024, 24, 16, 4096, 0.1),
    "xlarge": (2048, 24, 16, 8192, 0.1),
    "xxlarge": (4096, 12, 64, 16384, 0.0),
}

# Extra keys the released JSON files carry; the model never reads them.
_RELEASED_EXTRA_KEYS = {
    "net_structure_type": 0,
    "gap_size": 0,
    "num_memory_blocks": 0,
    "layers_to_keep": [],
}

# The package's own files (not a user path): pathlib is fine here.
_CONFIGS_DIR = pathlib.Path(__file__).resolve().parent.parent / "data" / "configs"


class ConfigFileError(UserError, ValueError):
    """An ALBERT config file that is not a JSON object; the message names the file."""


class AlbertConfig:
    """Configuration of an ALBERT encoder (the original `modeling.AlbertConfig`).

    Notation used across albert_tf: V vocab_size, E embedding_size, H hidden_size,
    L num_hidden_layers, G num_hidden_groups, K inner_group_num, N num_attention_heads.

    Args:
      vocab_size: V, rows of the word-embedding table and width of the masked-LM output.
      embedding_size: E, width of the three embedding tables (factorized embedding).
      hidden_size: H, width of the transformer layers and the pooler.
      num_hidden_layers: L, how many times a layer is applied.
      num_hidden_groups: G, number of distinct layer parameter sets; layer l uses group
        `int(l / L * G)` (float division, as the original).
      num_attention_heads: N; must divide `hidden_size`.
      intermediate_size: width of the feed-forward inner layer.
      inner_group_num: K, attention + feed-forward sub-blocks per layer, each with its own
        weights.
      down_scale_factor: stored only; the original never reads it.
      hidden_act: "gelu" (tanh approximation), "relu", "tanh", or "linear"/""/None.
      hidden_dropout_prob: dropout after the embedding LayerNorm, the attention output
        projection and the feed-forward output.
      attention_probs_dropout_prob: dropout on the attention probabilities.
      max_position_embeddings: P, rows of the position table; sequences may not be longer.
      type_vocab_size: rows of the segment (token type) table.
      initializer_range: stddev of the truncated-normal initializer.
      **extra: other keys (as found in released JSON files), kept and written back.

    Example:
    >>> config = AlbertConfig.preset("base", version=2)
    >>> config.hidden_size, config.num_attention_heads
    (768, 12)
    """

    def __init__(self, vocab_size, embedding_size=128, hidden_size=4096, num_hidden_layers=12,
                 num_hidden_groups=1, num_attention_heads=64, intermediate_size=16384,
                 inner_group_num=1, down_scale_factor=1, hidden_act="gelu",
                 hidden_dropout_prob=0, attention_probs_dropout_prob=0,
                 max_position_embeddings=512, type_vocab_size=2, initializer_range=0.02,
                 **extra):
        self.vocab_size = vocab_size
        self.embedding_size = embedding_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_hidden_groups = num_hidden_groups
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.inner_group_num = inner_group_num
        self.down_scale_factor = down_scale_factor
        self.hidden_act = hidden_act
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.initializer_range = initializer_range
        for key, value in extra.items():
            setattr(self, key, value)

    # === Construction ===

    @classmethod
    def from_dict(cls, json_object):
        """Builds a config from a dict; every key becomes an attribute (unknown ones too)."""
        if not isinstance(json_object, dict):
            raise TypeError(f"AlbertConfig.from_dict expects a dict, got "
                            f"{type(json_object).__name__}.")
        values = {name: default for name, default in _FIELDS}
        values.update(json_object)
        return cls(**values)

    @classmethod
    def from_json_file(cls, json_file):
        """Reads an `albert_config.json` (a released one, unchanged, or one we wrote).

        Args:
          json_file: a path on any `tf.io.gfile` filesystem (local, `gs://`, `ram://`), as a
            string or a `pathlib.Path`.
        Raises:
          FileNotFoundError: the file does not exist (the message names it).
          ConfigFileError: it cannot be read, is not JSON (naming the line) or not an object.
        """
        from albert_tf import files  # imports TensorFlow, which the config itself needs not
        path = os.fspath(json_file)
        if not files.exists(path):
            raise FileNotFoundError(f"The ALBERT config file {path} does not exist. Pass "
                                    "--albert_config_file=<dir>/albert_config.json.")
        try:
            data = files.read_json(path, what="ALBERT config file")
        except files.FileError as error:
            raise ConfigFileError(str(error)) from None
        if not isinstance(data, dict):
            raise ConfigFileError(f"The ALBERT config file {path} holds a JSON "
                                  f"{type(data).__name__}, not an object of settings.")
        return cls.from_dict(data)

    @classmethod
    def preset(cls, size, version=2):
        """The config of a released model: size in base|large|xlarge|xxlarge, version 1 or 2.

        v2 models were trained without dropout; v1 used 0.1 except for xxlarge.
        """
        if size not in PRESETS:
            raise ValueError(f"Unknown ALBERT size {size!r}; expected one of {sorted(PRESETS)}.")
        if version not in (1, 2):
            raise ValueError(f"Unknown ALBERT version {version!r}; expected 1 or 2.")
        hidden, layers, heads, intermediate, v1_dropout = PRESETS[size]
        dropout = v1_dropout if version == 1 else 0.0
        return cls(vocab_size=30000, embedding_size=128, hidden_size=hidden,
                   num_hidden_layers=layers, num_hidden_groups=1, num_attention_heads=heads,
                   intermediate_size=intermediate, inner_group_num=1, down_scale_factor=1,
                   hidden_act="gelu", hidden_dropout_prob=dropout,
                   attention_probs_dropout_prob=dropout, max_position_embeddings=512,
                   type_vocab_size=2, initializer_range=0.02, **_RELEASED_EXTRA_KEYS)

    @staticmethod
    def preset_file(size, version=2):
        """Path of the shipped JSON file of a preset (`data/configs/albert_<size>_v<version>.json`)."""
        return _CONFIGS_DIR / f"albert_{size}_v{version}.json"

    # === Serialization ===

    def to_dict(self):
        """All attributes (fields and kept extra keys) as a new dict."""
        return copy.deepcopy(self.__dict__)

    def to_json_string(self):
        """JSON with indent 2, sorted keys and a trailing newline, as the original writes it."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def to_json_file(self, json_file):
        """Writes `to_json_string()` to `json_file` (any `tf.io.gfile` filesystem, a string or
        a `pathlib.Path`) atomically: a temporary file beside it, renamed when complete. The
        folder is created."""
        from albert_tf import files
        files.write_text(os.fspath(json_file), self.to_json_string())

    # === Derived values ===

    def validate(self):
        """Raises ValueError with the offending values if the config cannot build a model."""
        if self.vocab_size is None:
            raise ValueError("AlbertConfig.vocab_size is not set; the config file must give it.")
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"The hidden size ({self.hidden_size}) is not a multiple of the number of "
                f"attention heads ({self.num_attention_heads}).")
        if self.num_hidden_groups < 1 or self.inner_group_num < 1:
            raise ValueError(f"num_hidden_groups ({self.num_hidden_groups}) and inner_group_num "
                             f"({self.inner_group_num}) must be at least 1.")
        return self

    def group_index(self, layer_index):
        """The parameter group of a layer: `int(l / L * G)` with float division (original).

        This can differ from `l * G // L` (e.g. L = G = 22, layer 15 -> group 14), which is why
        it is kept as the original computes it.
        """
        return int(layer_index / self.num_hidden_layers * self.num_hidden_groups)

    def used_groups(self):
        """Sorted indices of the groups some layer maps to (the variables that exist)."""
        return sorted({self.group_index(i) for i in range(self.num_hidden_layers)})

    def encoder_parameter_count(self):
        """Number of parameters under `bert/` (embeddings, projection, groups, pooler)."""
        V, E, H, I = self.vocab_size, self.embedding_size, self.hidden_size, self.intermediate_size
        embeddings = (V + self.type_vocab_size + self.max_position_embeddings) * E + 2 * E
        projection = E * H + H if E != H else 0
        sub_block = 4 * (H * H + H) + 2 * 2 * H + (H * I + I) + (I * H + H)
        groups = len(self.used_groups()) * self.inner_group_num * sub_block
        pooler = H * H + H
        return embeddings + projection + groups + pooler

    def pretraining_heads_parameter_count(self):
        """Parameters of the masked-LM transform and bias plus the sentence-order head."""
        V, E, H = self.vocab_size, self.embedding_size, self.hidden_size
        return (H * E + E) + 2 * E + V + (2 * H + 2)

    def __eq__(self, other):
        return isinstance(other, AlbertConfig) and self.__dict__ == other.__dict__

    def __repr__(self):
        fields = ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items())
        return f"AlbertConfig({fields})"
