"""The data tools on any `tf.io.gfile` filesystem, and their one-line errors.

`ram://` is TensorFlow's in-memory filesystem: reachable only through `tf.io.gfile`, it
stands for `gs://` here (a path treated as local would land in a folder named `ram:`, which
the `ram_dir` fixture fails on). References: the same runs on local paths (files compared
byte for byte, records read back with `tf.data`), the `sentencepiece` package's reading of
the models, and the exit status and stderr of the entry points run as a user runs them.
"""

import gzip
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from conftest import run_entry_point, stage_to_ram

from albert_tf import create_pretraining_data as cpd
from albert_tf import files
from albert_tf import pretraining_data_input
from albert_tf import tokenization
from albert_tf import train_sentencepiece as spm_training
from albert_tf._pretraining_instances import PretrainingDataError
from albert_tf.in_graph_tokenization import InGraphTokenizer

ROOT = pathlib.Path(__file__).parent.parent
FIXTURES = pathlib.Path(__file__).parent / "fixtures"
SPM_MODEL = FIXTURES / "original_tokenizer" / "spm1k.model"
PYDOC_CORPUS = FIXTURES / "original_pretraining_data" / "pydoc_corpus.txt.gz"
WORDPIECE_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un", "##want", "##ed",
                   "runn", "##ing", "the", "dog", ",", "."]


def _pydoc_lines(count):
    with gzip.open(PYDOC_CORPUS, "rt", encoding="utf-8") as f:
        return [line for _, line in zip(range(count), f)]


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    """Two corpus files (about 60 KB): plain text and gzip."""
    folder = tmp_path_factory.mktemp("corpus")
    lines = _pydoc_lines(1400)
    (folder / "part-0.txt").write_text("".join(lines[:700]), encoding="utf-8")
    (folder / "part-1.txt.gz").write_bytes(gzip.compress("".join(lines[700:]).encode()))
    return folder


def _records(paths):
    return [record.numpy() for record in tf.data.TFRecordDataset(paths)]


def _data_flags(input_file, output_file, spm_model_file, **overrides):
    values = dict(input_file=input_file, output_file=output_file,
                  spm_model_file=str(spm_model_file), vocab_file=None, do_lower_case=True,
                  max_seq_length=64, max_predictions_per_seq=10, masked_lm_prob=0.15,
                  short_seq_prob=0.1, ngram=3, favor_shorter_ngram=True,
                  do_whole_word_mask=True, do_permutation=False, random_next_sentence=False,
                  random_seed=7, dupe_factor=2, num_workers=2, num_output_shards=2,
                  resume=False, skip_bad_lines=False, shuffle_buffer_size=300)
    values.update(overrides)
    return values


def test_open_binary_reads_lines_and_recognises_gzip_by_content_on_ram(ram_dir):
    packed = gzip.compress(b"one\ntwo\r\nthree")
    files.write_bytes(f"{ram_dir}/corpus.log", packed)  # gzip whatever the name says
    with files.open_binary(f"{ram_dir}/corpus.log", gunzip=True) as reader:
        assert list(reader) == [b"one\n", b"two\r\n", b"three"] and reader.gzipped
    with files.open_binary(f"{ram_dir}/corpus.log") as reader:
        assert b"".join(reader) == packed and reader.position == len(packed)
    with pytest.raises(files.FileError, match=r"input file ram://.*/gone.txt does not exist"):
        with files.open_binary(f"{ram_dir}/gone.txt", "input file"):
            pass


# ------------------------------------------------------------------------------------------
# create_pretraining_data
# ------------------------------------------------------------------------------------------


def test_create_pretraining_data_on_ram_writes_the_records_of_a_local_run(ram_dir, tmp_path,
                                                                          corpus_dir):
    cpd._define_flags()
    local_out = str(tmp_path / "local" / "train.tfrecord")
    run_entry_point(cpd.main, ["create_pretraining_data"], **_data_flags(
        f"{corpus_dir}/part-*", local_out, SPM_MODEL))

    stage_to_ram(corpus_dir, f"{ram_dir}/corpus")
    model = stage_to_ram(SPM_MODEL, f"{ram_dir}/vocab/spm1k.model")
    ram_out = f"{ram_dir}/data/train.tfrecord"
    run_entry_point(cpd.main, ["create_pretraining_data"], **_data_flags(
        f"{ram_dir}/corpus/part-*", ram_out, model))

    names = [f"train.tfrecord-0000{i}-of-00002" for i in range(2)]
    assert sorted(tf.io.gfile.listdir(f"{ram_dir}/data")) == [
        "_train.tfrecord.summary.json"] + names
    for name in names:
        ours = files.read_bytes(f"{ram_dir}/data/{name}")
        assert ours == (tmp_path / "local" / name).read_bytes()
        assert len(_records(f"{ram_dir}/data/{name}")) > 100
    summary = files.read_json(f"{ram_dir}/data/_train.tfrecord.summary.json")
    assert summary["instances"] == len(_records([f"{ram_dir}/data/{n}" for n in names]))


def _fail_after(after):
    real = cpd._run_task
    calls = []

    def run_task(task):
        calls.append(task.index)
        if len(calls) > after:
            raise KeyboardInterrupt  # as Ctrl-C would
        return real(task)

    return run_task


def test_resume_on_ram_continues_to_the_records_of_an_uninterrupted_run(
        ram_dir, corpus_dir, monkeypatch):
    corpus = stage_to_ram(corpus_dir, f"{ram_dir}/corpus") + "/part-*"
    model = stage_to_ram(SPM_MODEL, f"{ram_dir}/spm1k.model")
    settings = dict(spm_model_file=model, max_seq_length=64, dupe_factor=2, num_workers=1,
                    chunk_bytes=8 * 1024, shuffle_buffer_size=100, num_output_shards=2,
                    checkpoint_seconds=0, progress=False)
    cpd.create_pretraining_data(corpus, f"{ram_dir}/ref/train.tfrecord", **settings)

    monkeypatch.setattr(cpd, "_run_task", _fail_after(6))
    with pytest.raises(KeyboardInterrupt):
        cpd.create_pretraining_data(corpus, f"{ram_dir}/cut/train.tfrecord", **settings)
    # Only the work folder, a side file: no file named like the output.
    assert tf.io.gfile.listdir(f"{ram_dir}/cut") == ["_train.tfrecord.work"]
    monkeypatch.undo()
    cpd.create_pretraining_data(corpus, f"{ram_dir}/cut/train.tfrecord", resume=True,
                                **settings)
    for name in [f"train.tfrecord-0000{i}-of-00002" for i in range(2)]:
        assert (files.read_bytes(f"{ram_dir}/cut/{name}")
                == files.read_bytes(f"{ram_dir}/ref/{name}"))
    assert not files.exists(f"{ram_dir}/cut/_train.tfrecord.work")


def test_the_output_glob_selects_only_the_tfrecords_and_feeds_pretraining(ram_dir,
                                                                          corpus_dir):
    # The trap: `--input_file=<output_file>*` used to select the summary JSON as well.
    corpus = stage_to_ram(corpus_dir / "part-0.txt", f"{ram_dir}/part-0.txt")
    output = f"{ram_dir}/out/train.tfrecord"
    cpd.create_pretraining_data(corpus, output, spm_model_file=str(SPM_MODEL),
                                max_seq_length=64, max_predictions_per_seq=10, dupe_factor=1,
                                num_workers=1, num_output_shards=3, progress=False)
    shards = [f"{output}-0000{i}-of-00003" for i in range(3)]
    assert files.expand_globs(output + "*") == shards
    selected = pretraining_data_input.resolve_input_files(output + "*")
    assert selected == shards
    pretraining_data_input.check_record_schema(selected, 64, 10)
    dataset = pretraining_data_input.pretraining_dataset(
        selected, batch_size=4, max_seq_length=64, max_predictions_per_seq=10,
        is_training=True, seed=1)
    batch = next(iter(dataset))
    assert batch["input_ids"].shape == (4, 64) and batch["masked_lm_ids"].shape == (4, 10)


def test_a_finished_summary_under_the_old_name_is_recognised_and_moved(tmp_path, corpus_dir):
    output = str(tmp_path / "out" / "train.tfrecord")
    corpus = str(corpus_dir / "part-0.txt")
    settings = dict(spm_model_file=str(SPM_MODEL), max_seq_length=64, dupe_factor=1,
                    num_workers=1, progress=False)
    cpd.create_pretraining_data(corpus, output, **settings)
    (tmp_path / "out" / "_train.tfrecord.summary.json").rename(
        tmp_path / "out" / "train.tfrecord.summary.json")  # as earlier versions named it
    stamp = os.stat(output).st_mtime_ns
    summary = cpd.create_pretraining_data(corpus, output, **settings)
    assert summary["complete"] and os.stat(output).st_mtime_ns == stamp  # not redone
    assert sorted(os.listdir(tmp_path / "out")) == ["_train.tfrecord.summary.json",
                                                     "train.tfrecord"]


def _raise_in_worker(task):
    raise PretrainingDataError(f"chunk {task.chunk}: a data error raised in a worker")


def test_an_error_raised_in_a_worker_process_arrives_as_the_same_user_error(
        tmp_path, corpus_dir, monkeypatch):
    monkeypatch.setattr(cpd, "_run_task", _raise_in_worker)
    with pytest.raises(PretrainingDataError, match="chunk 0: a data error raised in a worker"):
        cpd.create_pretraining_data(str(corpus_dir / "part-0.txt"),
                                    str(tmp_path / "t.tfrecord"),
                                    spm_model_file=str(SPM_MODEL), max_seq_length=64,
                                    num_workers=2, progress=False)
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------------------------------
# SentencePiece training and the tokenizers
# ------------------------------------------------------------------------------------------


def test_train_sentencepiece_on_ram_writes_the_model_of_a_local_run(ram_dir, tmp_path):
    from test_train_sentencepiece import write_corpus
    corpus = write_corpus(tmp_path / "corpus.txt")
    spm_training._define_flags()
    flags = dict(vocab_size=60, do_lower_case=True, input_sentence_size=10_000,
                 shuffle_input_sentence=True, character_coverage=0.99995, num_threads=1)
    run_entry_point(spm_training.main, ["train_sentencepiece"], input=[corpus],
                    model_prefix=str(tmp_path / "local" / "m"), **flags)
    stage_to_ram(tmp_path / "corpus.txt", f"{ram_dir}/corpus/a.txt")
    run_entry_point(spm_training.main, ["train_sentencepiece"],
                    input=[f"{ram_dir}/corpus/*.txt"], model_prefix=f"{ram_dir}/spm/m",
                    **flags)

    assert sorted(tf.io.gfile.listdir(f"{ram_dir}/spm")) == ["m.model", "m.vocab"]
    for extension in ("model", "vocab"):
        assert (files.read_bytes(f"{ram_dir}/spm/m.{extension}")
                == (tmp_path / "local" / f"m.{extension}").read_bytes())
    ours = tokenization.FullTokenizer(None, True, f"{ram_dir}/spm/m.model")
    local = tokenization.FullTokenizer(None, True, str(tmp_path / "local" / "m.model"))
    text = "Alpha BETA gamma, 1,000 (x) \"q\" end."
    assert ours.tokenize(text) == local.tokenize(text) and len(ours.vocab) == 60


def test_a_path_naming_a_file_is_that_file_even_with_glob_characters(tmp_path):
    # Users' folders may hold "[": a pattern that names a file is not taken as a glob.
    from test_train_sentencepiece import write_corpus
    folder = tmp_path / "run[1]"
    folder.mkdir()
    corpus = write_corpus(folder / "corpus[a].txt")
    assert cpd.resolve_input_files(f"{corpus},{corpus}") == [corpus]
    model = spm_training.train_sentencepiece(corpus, folder / "m", vocab_size=60,
                                             extra_options={"minloglevel": 2})
    assert len(tokenization.FullTokenizer(None, True, model).vocab) == 60


def test_full_tokenizer_reads_sentencepiece_and_wordpiece_files_on_ram(ram_dir, tmp_path):
    model = stage_to_ram(SPM_MODEL, f"{ram_dir}/spm1k.model")
    text = "The quick brown fox, 1,000 times."
    local = tokenization.FullTokenizer(None, True, str(SPM_MODEL))
    assert tokenization.FullTokenizer(None, True, model).tokenize(text) == local.tokenize(text)

    (tmp_path / "vocab.txt").write_text("".join(v + "\n" for v in WORDPIECE_VOCAB))
    vocab = stage_to_ram(tmp_path / "vocab.txt", f"{ram_dir}/vocab.txt")
    wordpiece = tokenization.FullTokenizer(vocab, do_lower_case=True)
    assert wordpiece.tokenize("Unwanted running dog.") == [
        "un", "##want", "##ed", "runn", "##ing", "dog", "."]
    with pytest.raises(FileNotFoundError, match="ram://.*missing.model"):
        tokenization.FullTokenizer(None, True, f"{ram_dir}/missing.model")


TEXTS = ["The quick brown fox.", "1,000 times, Héllo!"]


def test_in_graph_tokenizer_loads_its_model_from_ram(ram_dir):
    model = stage_to_ram(SPM_MODEL, f"{ram_dir}/spm1k.model")
    local = InGraphTokenizer(str(SPM_MODEL), max_seq_length=16)(tf.constant(TEXTS))
    ours = InGraphTokenizer(model, max_seq_length=16)(tf.constant(TEXTS))
    np.testing.assert_array_equal(ours["input_ids"], local["input_ids"])
    with pytest.raises(FileNotFoundError, match="ram://.*gone.model"):
        InGraphTokenizer(f"{ram_dir}/gone.model")


@pytest.mark.slow  # tracing and saving the tokenizer: ~10 s
def test_in_graph_tokenizer_saves_its_saved_model_to_ram(ram_dir):
    tokenizer = InGraphTokenizer(str(SPM_MODEL), max_seq_length=16)
    tokenizer.save(f"{ram_dir}/export/tokenizer")
    assert files.exists(f"{ram_dir}/export/tokenizer/saved_model.pb")
    reloaded = tf.saved_model.load(f"{ram_dir}/export/tokenizer")
    np.testing.assert_array_equal(reloaded(tf.constant(TEXTS))["input_ids"],
                                  tokenizer(tf.constant(TEXTS))["input_ids"])


# ------------------------------------------------------------------------------------------
# Bad input on the command line: one ERROR line, exit status 1, no traceback.
# ------------------------------------------------------------------------------------------


def _write_bad_inputs(folder):
    (folder / "bad.txt").write_bytes(b"good line one.\ngood line two.\nbad \xff\xfe line.\n")
    (folder / "empty.txt").write_bytes(b"\n   \n\n")
    (folder / "ok.txt").write_text("A sentence here.\nAnother one.\n\nA new document.\n")


def _bad_inputs(folder):
    """(name, command, text the error names) for each bad input run as a user runs it."""
    _write_bad_inputs(folder)
    data = [sys.executable, "-m", "albert_tf.create_pretraining_data",
            f"--output_file={folder}/out/train.tfrecord", "--max_seq_length=32",
            "--dupe_factor=1", "--num_workers=1"]
    training = [sys.executable, "-m", "albert_tf.train_sentencepiece", "--vocab_size=60",
                f"--model_prefix={folder}/spm/m"]
    return [
        ("data_invalid_utf8", data + [f"--input_file={folder}/bad.txt",
                                      f"--spm_model_file={SPM_MODEL}"],
         f"{folder}/bad.txt, line 3: not valid UTF-8"),
        ("data_missing_spm_model", data + [f"--input_file={folder}/ok.txt",
                                           f"--spm_model_file={folder}/missing.model"],
         f"{folder}/missing.model"),
        ("spm_glob_matches_nothing", training + [f"--input={folder}/none/*.txt"],
         f"{folder}/none/*.txt"),
        ("spm_empty_input", training + [f"--input={folder}/empty.txt"],
         f"{folder}/empty.txt"),
    ]


@pytest.fixture(scope="module")
def bad_input_runs(tmp_path_factory):
    """Runs every bad-input command at once (each process imports TensorFlow)."""
    folder = tmp_path_factory.mktemp("bad_input")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}
    cases = _bad_inputs(folder)
    processes = {name: subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
                 for name, command, _ in cases}
    results = {}
    for name, _, named in cases:
        out, err = processes[name].communicate(timeout=600)
        results[name] = (processes[name].returncode, out + err, named)
    return results


def _assert_one_error_line(returncode, output, named):
    errors = [line for line in output.splitlines() if line.startswith("ERROR:")]
    assert returncode == 1, output[-3000:]
    assert len(errors) == 1 and named in errors[0], output[-3000:]
    assert "Traceback" not in output


@pytest.mark.parametrize("case", ["data_invalid_utf8", "data_missing_spm_model",
                                  "spm_glob_matches_nothing", "spm_empty_input"])
def test_bad_input_is_one_error_line_naming_it_with_exit_status_1(bad_input_runs, case):
    _assert_one_error_line(*bad_input_runs[case])


@pytest.mark.parametrize("input_name, named", [("none/*.txt", "none/*.txt"),
                                               ("empty.txt", "empty.txt")])
def test_bad_input_in_process_is_one_error_line_with_exit_status_1(tmp_path, capsys,
                                                                   input_name, named):
    # The same frame as above, in this process (no TensorFlow import to wait for).
    _write_bad_inputs(tmp_path)
    cpd._define_flags()
    with pytest.raises(SystemExit) as exit_info:
        run_entry_point(cpd.main, ["create_pretraining_data"], **_data_flags(
            f"{tmp_path}/{input_name}", f"{tmp_path}/out/train.tfrecord", SPM_MODEL,
            max_seq_length=32, dupe_factor=1, num_workers=1, num_output_shards=0))
    captured = capsys.readouterr()
    _assert_one_error_line(exit_info.value.code, captured.out + captured.err,
                           f"{tmp_path}/{named}")
