"""The fine-tuning tasks' feature cache: records, reuse, rebuild, refusal, atomic writes.

Every test runs on a local folder and on `ram://` (TensorFlow's in-memory filesystem, reached
only through `tf.io.gfile`, like an object store).
"""

import pytest
import tensorflow as tf

from albert_tf import feature_cache, files
from albert_tf.tasks import TaskDataError

# A record layout with an int sequence, a flattened [2, 3] int block and a float scalar.
SPEC = {
    "input_ids": tf.io.FixedLenFeature([3], tf.int64),
    "rows": tf.io.FixedLenFeature([6], tf.int64),
    "score": tf.io.FixedLenFeature([], tf.float32),
}


@pytest.fixture(params=["local", "ram"])
def root(request, tmp_path, ram_dir):
    return str(tmp_path / "local") if request.param == "local" else ram_dir


def _features(n):
    return [{"input_ids": [i, i + 1, i + 2], "rows": [[i] * 3, [-i] * 3], "score": i / 4}
            for i in range(n)]


def _builder(n, calls):
    def build(path):
        calls.append(path)
        feature_cache.write_features(path, _features(n), SPEC)
        return {"num_records": n}
    return build


def _listing(folder):
    return sorted(tf.io.gfile.listdir(folder))


def test_records_hold_the_spec_types_and_read_back_as_int32(root):
    path = files.join(root, "f.tf_record")
    assert feature_cache.write_features(path, _features(3), SPEC) == 3
    first = tf.train.Example.FromString(next(iter(tf.data.TFRecordDataset(path))).numpy())
    feature = first.features.feature
    assert sorted(feature) == sorted(SPEC)
    assert feature["rows"].WhichOneof("kind") == "int64_list"
    assert feature["score"].WhichOneof("kind") == "float_list"
    parse = feature_cache.record_parser(SPEC, {"rows": [2, 3]})
    second = list(feature_cache.load_dataset(path, parse))[1]
    assert second["input_ids"].dtype == tf.int32 and second["score"].dtype == tf.float32
    assert second["rows"].numpy().tolist() == [[1, 1, 1], [-1, -1, -1]]
    assert float(second["score"]) == 0.25


def test_matching_settings_reuse_the_file_without_building(root):
    path, calls = files.join(root, "train.tf_record"), []
    wanted = {"max_seq_length": 3, "split": "train"}
    assert feature_cache.cached(path, wanted, _builder(2, calls)) == (False, None)
    reused, recorded = feature_cache.cached(path, wanted, _builder(2, calls))
    assert reused and len(calls) == 1
    assert recorded == {**wanted, "num_records": 2}   # counts recorded after the build
    assert _listing(root) == ["_train.tf_record.settings.json", "train.tf_record"]


def test_keyed_names_rebuild_when_a_setting_changes(root):
    calls, paths = [], []
    for length in (3, 3, 4):
        wanted = {"max_seq_length": length}
        paths.append(feature_cache.keyed_path(root, "task_train",
                                              feature_cache.settings_key(wanted)))
        feature_cache.cached(paths[-1], wanted, _builder(1, calls))
    assert paths[0] == paths[1] != paths[2]
    assert calls == [paths[0], paths[2]]


def test_a_file_with_other_settings_is_refused_naming_the_difference(root):
    path = files.join(root, "train.tf_record")
    feature_cache.cached(path, {"doc_stride": 2}, _builder(1, []))
    with pytest.raises(TaskDataError, match=r"doc_stride: 2 there, 3 now.*Delete it"):
        feature_cache.cached(path, {"doc_stride": 3}, _builder(1, []))


def test_settings_under_the_older_side_file_name_are_read(root):
    path = files.join(root, "train.tf_record")
    feature_cache.write_features(path, _features(1), SPEC)
    files.write_json(path + ".settings.json", {"doc_stride": 2})
    with pytest.raises(TaskDataError, match=r"doc_stride: 2 there, 3 now"):
        feature_cache.cached(path, {"doc_stride": 3}, _builder(1, []))


def test_a_file_without_settings_is_checked_by_the_task(root):
    # A file the original wrote: no side file; the task checks its records instead.
    path = files.join(root, "original.tf_record")
    feature_cache.write_features(path, _features(2), SPEC)
    other = dict(SPEC, input_ids=tf.io.FixedLenFeature([5], tf.int64), label=SPEC["score"])
    assert feature_cache.first_record_mismatch(path, SPEC) is None
    assert feature_cache.first_record_mismatch(path, other) == (["label"], 3)
    checked = []
    reused, recorded = feature_cache.cached(path, {"x": 1}, _builder(1, []),
                                            check_unrecorded=checked.append)
    assert (reused, recorded, checked) == (True, None, [path])


def test_a_failed_build_leaves_no_file_and_no_temporary_file(root):
    path = files.join(root, "train.tf_record")

    def failing(n):
        for index, features in enumerate(_features(n)):
            if index == 2:
                raise RuntimeError("conversion failed")
            yield features

    with pytest.raises(RuntimeError, match="conversion failed"):
        feature_cache.cached(path, {"a": 1},
                             lambda target: feature_cache.write_features(target, failing(5),
                                                                         SPEC))
    assert _listing(root) == []


def test_digests_name_the_content():
    rows = [["0", "a", None, 1]]
    assert feature_cache.json_digest(rows) == feature_cache.json_digest(iter(rows))
    assert feature_cache.json_digest(rows) != feature_cache.json_digest(rows, header=[1])
    assert feature_cache.settings_key({"a": 1, "b": 2}) == \
        feature_cache.settings_key({"b": 2, "a": 1})
