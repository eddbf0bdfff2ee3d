"""The frame every entry point shares (`albert_tf.cli`): flag errors and user errors are one
`ERROR:` line with exit status 1, flags shared by entry points in one process take the
defaults of the entry point that defines them last, and inputs that used to slip through
(a folder as output file, invalid UTF-8, an empty TSV) are named."""
import os
import subprocess
import sys

from absl import flags
import pytest

from albert_tf import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_missing_required_flags_are_one_error_line(tmp_path):
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "run_pretraining.py"), "--max_seq_length=abc"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR:")]
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert len(errors) == 1 and "--max_seq_length=abc" in errors[0], result.stderr


def test_a_flag_defined_again_takes_the_later_default():
    name = "entry_point_test_learning_rate"
    cli.define_flag(flags.DEFINE_float, name, 0.00176, "run_pretraining's default")
    flags.FLAGS.mark_as_parsed()
    assert flags.FLAGS[name].value == 0.00176
    cli.define_flag(flags.DEFINE_float, name, 5e-5, "run_classifier's default")
    assert flags.FLAGS[name].value == 5e-5
    flags.FLAGS[name].parse("0.1")          # a value given on the command line is kept
    cli.define_flag(flags.DEFINE_float, name, 0.3, "another default")
    assert flags.FLAGS[name].value == 0.1


def test_user_errors_print_one_line_and_exit_1(capsys):
    from albert_tf.errors import UserError
    with pytest.raises(SystemExit) as exit_:
        with cli.user_errors():
            raise UserError("bad.json, line 3: something\n  wrong")
    assert exit_.value.code == 1
    assert capsys.readouterr().err == "ERROR: bad.json, line 3: something wrong\n"


def test_a_missing_filesystem_plugin_is_a_user_error_with_a_hint(capsys):
    import tensorflow as tf
    with pytest.raises(SystemExit):
        with cli.user_errors():
            tf.io.gfile.exists("s3://bucket/train.tfrecord")
    err = capsys.readouterr().err
    assert err.startswith("ERROR: ") and "s3" in err and "tensorflow-io" in err


def test_an_internal_tensorflow_error_keeps_its_traceback():
    import tensorflow as tf
    with pytest.raises(tf.errors.InvalidArgumentError):
        with cli.user_errors():
            tf.debugging.assert_equal(1, 2)


def test_create_pretraining_data_refuses_a_folder_as_output_file(tmp_path):
    from albert_tf.create_pretraining_data import (PretrainingDataError,
                                                   resolve_output_files)
    with pytest.raises(PretrainingDataError, match="is a folder"):
        resolve_output_files(str(tmp_path))


def test_train_sentencepiece_names_the_line_that_is_not_utf8(tmp_path):
    from albert_tf.train_sentencepiece import SentencePieceTrainingError, iterate_sentences
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(b"good line.\nbad \xff line.\n")
    with pytest.raises(SentencePieceTrainingError, match=r"corpus.txt, line 2: not UTF-8"):
        list(iterate_sentences([str(corpus)]))


def test_export_refuses_a_file_as_export_dir(tmp_path):
    from albert_tf.export import ExportError, _check_target
    target = tmp_path / "model"
    target.write_text("not a folder")
    with pytest.raises(ExportError, match="is a file, not a folder"):
        _check_target(str(target), overwrite=True)


def test_an_empty_tsv_file_is_named_as_empty(tmp_path):
    from albert_tf.tasks import TaskDataError
    from albert_tf.tasks import glue
    task = glue.tsv_task(labels=["0", "1"], text_a_column="sentence", label_column="label")
    (tmp_path / "train.tsv").write_text("")
    with pytest.raises(TaskDataError, match="train.tsv is empty"):
        glue.read_examples(task, task.train, str(tmp_path))
