"""AlbertConfig against the original's fields, defaults and JSON format, and the released sizes.

References: the original `modeling.AlbertConfig` (defaults are the xxlarge model's), the released
`albert_config.json` files, and the parameter counts of the original graph (SPEC part 1, table).
"""
import json

import pytest

from albert_tf import AlbertConfig
from albert_tf.config import PRESETS

ORIGINAL_DEFAULTS = {
    "embedding_size": 128, "hidden_size": 4096, "num_hidden_layers": 12,
    "num_hidden_groups": 1, "num_attention_heads": 64, "intermediate_size": 16384,
    "inner_group_num": 1, "down_scale_factor": 1, "hidden_act": "gelu",
    "hidden_dropout_prob": 0, "attention_probs_dropout_prob": 0,
    "max_position_embeddings": 512, "type_vocab_size": 2, "initializer_range": 0.02,
}

# A released v2 base config file, verbatim (with its extra keys).
RELEASED_BASE_V2 = {
    "attention_probs_dropout_prob": 0, "hidden_act": "gelu", "hidden_dropout_prob": 0,
    "embedding_size": 128, "hidden_size": 768, "initializer_range": 0.02,
    "intermediate_size": 3072, "max_position_embeddings": 512, "num_attention_heads": 12,
    "num_hidden_layers": 12, "num_hidden_groups": 1, "net_structure_type": 0, "gap_size": 0,
    "num_memory_blocks": 0, "inner_group_num": 1, "down_scale_factor": 1,
    "type_vocab_size": 2, "vocab_size": 30000,
}

# Parameter counts of the original graph's variables (SPEC part 1, released sizes).
PARAMS = {
    "base": (11_683_584, 11_813_810),
    "large": (17_683_968, 17_847_474),
    "xlarge": (58_724_864, 59_021_490),
    "xxlarge": (222_595_584, 223_158_450),
}


def test_defaults_are_the_original_xxlarge_defaults():
    config = AlbertConfig(vocab_size=30000)
    for name, value in ORIGINAL_DEFAULTS.items():
        assert getattr(config, name) == value, name


def test_released_file_loads_unchanged_and_keeps_extra_keys(tmp_path):
    path = tmp_path / "albert_config.json"
    path.write_text(json.dumps(RELEASED_BASE_V2))
    config = AlbertConfig.from_json_file(path)
    assert config.hidden_size == 768 and config.net_structure_type == 0
    assert config.to_dict() == RELEASED_BASE_V2
    out = tmp_path / "written.json"
    config.to_json_file(out)
    text = out.read_text()
    # The original writes indent 2, sorted keys, trailing newline.
    assert text == json.dumps(RELEASED_BASE_V2, indent=2, sort_keys=True) + "\n"


def test_from_dict_fills_missing_fields_with_defaults():
    config = AlbertConfig.from_dict({"vocab_size": 10, "hidden_size": 8,
                                     "num_attention_heads": 2})
    assert config.intermediate_size == 16384 and config.vocab_size == 10


@pytest.mark.parametrize("size", sorted(PRESETS))
@pytest.mark.parametrize("version", [1, 2])
def test_presets_match_shipped_json(size, version):
    shipped = AlbertConfig.from_json_file(AlbertConfig.preset_file(size, version))
    assert shipped == AlbertConfig.preset(size, version)


@pytest.mark.parametrize("size", sorted(PRESETS))
def test_preset_dropout_by_version(size):
    # v2 was trained without dropout; v1 with 0.1 except xxlarge (README of the release).
    assert AlbertConfig.preset(size, 2).hidden_dropout_prob == 0
    v1 = AlbertConfig.preset(size, 1)
    assert v1.hidden_dropout_prob == v1.attention_probs_dropout_prob == (
        0 if size == "xxlarge" else 0.1)


@pytest.mark.parametrize("size", sorted(PARAMS))
def test_parameter_counts_equal_the_original_graph(size):
    config = AlbertConfig.preset(size)
    encoder, with_heads = PARAMS[size]
    assert config.encoder_parameter_count() == encoder
    assert config.encoder_parameter_count() + config.pretraining_heads_parameter_count() == (
        with_heads)


def test_group_index_uses_float_truncation():
    # SPEC: L = G = 22 maps layer 15 to group 14 (int(15/22*22) = 14 in floating point).
    config = AlbertConfig(vocab_size=10, num_hidden_layers=22, num_hidden_groups=22)
    assert config.group_index(15) == 14
    assert 15 not in config.used_groups()


def test_bad_values_are_named():
    with pytest.raises(ValueError, match="768.*5"):
        AlbertConfig(vocab_size=10, hidden_size=768, num_attention_heads=5).validate()
    with pytest.raises(ValueError, match="Unknown ALBERT size"):
        AlbertConfig.preset("huge")
    with pytest.raises(FileNotFoundError, match="no_such.json"):
        AlbertConfig.from_json_file("no_such.json")


def test_invalid_json_names_the_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="broken.json"):
        AlbertConfig.from_json_file(path)


def test_json_file_round_trips_on_ram_filesystem(ram_dir):
    """`to_json_file` / `from_json_file` on an object-store path (ram://, as gs://): written
    atomically through tf.io.gfile (the folder is created), read back the same."""
    import tensorflow as tf
    path = f"{ram_dir}/run/albert_config.json"
    AlbertConfig.from_dict(RELEASED_BASE_V2).to_json_file(path)
    assert tf.io.gfile.listdir(f"{ram_dir}/run") == ["albert_config.json"]
    with tf.io.gfile.GFile(path) as f:
        assert f.read() == json.dumps(RELEASED_BASE_V2, indent=2, sort_keys=True) + "\n"
    assert AlbertConfig.from_json_file(path).to_dict() == RELEASED_BASE_V2


def test_missing_or_broken_file_on_ram_filesystem_is_named(ram_dir):
    import tensorflow as tf
    with pytest.raises(FileNotFoundError, match=f"{ram_dir}/none.json"):
        AlbertConfig.from_json_file(f"{ram_dir}/none.json")
    with tf.io.gfile.GFile(f"{ram_dir}/list.json", "w") as f:
        f.write("[1, 2]")
    with pytest.raises(ValueError, match="list.json holds a JSON list"):
        AlbertConfig.from_json_file(f"{ram_dir}/list.json")
    with tf.io.gfile.GFile(f"{ram_dir}/bad.json", "w") as f:
        f.write('{"vocab_size": 30000,\n oops}')
    with pytest.raises(ValueError, match="bad.json is not valid JSON: line 2"):
        AlbertConfig.from_json_file(f"{ram_dir}/bad.json")
