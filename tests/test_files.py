"""`albert_tf.files`: paths, globs and atomic writes on a local disk and on `ram://`
(TensorFlow's in-memory filesystem, which behaves like an object store)."""
import pytest
import tensorflow as tf

from albert_tf import files


@pytest.fixture(params=["local", "ram"])
def root(request, tmp_path, ram_dir):
    (tmp_path / "local").mkdir()
    return str(tmp_path / "local") if request.param == "local" else ram_dir


def test_split_keeps_the_scheme():
    assert files.split("gs://bucket/a/b.txt") == ("gs://bucket/a", "b.txt")
    assert files.split("ram://b.txt") == ("ram://", "b.txt")
    assert files.join("gs://bucket/a", "b.txt") == "gs://bucket/a/b.txt"
    assert files.dirname("/x/y/z") == "/x/y"


def test_side_files_never_match_the_data_glob(root):
    data = files.join(root, "train.tfrecord")
    side = files.side_file(data, "summary.json")
    assert side == files.join(root, "_train.tfrecord.summary.json")
    files.write_text(data, "records")
    files.write_text(side, "{}")
    assert files.expand_globs(data + "*") == [data]
    assert files.expand_globs(files.join(root, "*")) == [data]


def test_expand_globs_keeps_pattern_order_and_drops_duplicates(root):
    a, b = files.join(root, "a-1"), files.join(root, "b-1")
    for path in (a, b):
        files.write_text(path, "x")
    assert files.expand_globs(f"{b},{root}/*-1") == [b, a]
    assert files.expand_globs([a]) == [a]


def test_expand_globs_names_the_pattern_that_matched_nothing(root):
    pattern = files.join(root, "missing-*")
    with pytest.raises(files.FileError, match="missing-"):
        files.expand_globs(pattern, what="pretraining input file")


def test_a_failed_atomic_write_leaves_nothing(root):
    path = files.join(root, "out", "result.json")
    with pytest.raises(RuntimeError):
        with files.atomic_write(path) as f:
            f.write("half")
            raise RuntimeError("interrupted")
    assert not tf.io.gfile.exists(path)
    assert tf.io.gfile.listdir(files.join(root, "out")) == []


def test_an_atomic_write_replaces_the_file_whole(root):
    path = files.join(root, "result.json")
    files.write_json(path, {"a": 1})
    files.write_json(path, {"a": 2})
    assert files.read_json(path) == {"a": 2}
    assert tf.io.gfile.listdir(root) == ["result.json"]


def test_replace_dir_moves_every_file_and_replaces_the_old_folder(root):
    target = files.join(root, "export")
    for content in ("first", "second"):
        with files.replace_dir(target) as tmp:
            files.write_text(files.join(tmp, "variables", "variables.index"), content)
            files.write_text(files.join(tmp, "saved_model.pb"), content)
    assert files.read_text(files.join(target, "variables", "variables.index")) == "second"
    assert files.read_text(files.join(target, "saved_model.pb")) == "second"
    assert tf.io.gfile.listdir(root) in (["export"], ["export/"])


def test_replace_dir_leaves_the_old_folder_on_failure(root):
    target = files.join(root, "export")
    with files.replace_dir(target) as tmp:
        files.write_text(files.join(tmp, "saved_model.pb"), "old")
    with pytest.raises(RuntimeError):
        with files.replace_dir(target) as tmp:
            files.write_text(files.join(tmp, "saved_model.pb"), "new")
            raise RuntimeError("interrupted")
    assert files.read_text(files.join(target, "saved_model.pb")) == "old"


def test_read_errors_name_the_file_and_line(root):
    missing = files.join(root, "nope.json")
    with pytest.raises(files.FileError, match="nope.json does not exist"):
        files.read_json(missing, what="config file")
    bad = files.join(root, "bad.txt")
    files.write_bytes(bad, b"fine\n\xff\xfe\n")
    with pytest.raises(files.FileError, match=r"bad.txt is not UTF-8 text: line 2"):
        files.read_text(bad)
    broken = files.join(root, "broken.json")
    files.write_text(broken, '{\n  "a": 1,\n}\n')
    with pytest.raises(files.FileError, match=r"broken.json is not valid JSON: line 3"):
        files.read_json(broken)


def test_records_are_written_atomically_and_counted(root):
    path = files.join(root, "data.tfrecord")
    assert files.write_records(path, (b"r%d" % i for i in range(7))) == 7
    assert files.count_records(path) == 7
    assert [r.numpy() for r in tf.data.TFRecordDataset(path)][:2] == [b"r0", b"r1"]


def test_copy_is_atomic_across_filesystems(tmp_path, ram_dir):
    source = str(tmp_path / "a.bin")
    files.write_bytes(source, b"\x00\x01")
    target = files.join(ram_dir, "deep", "b.bin")
    files.copy(source, target)
    assert files.read_bytes(target) == b"\x00\x01"
