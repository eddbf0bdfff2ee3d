"""`albert_tf.train_sentencepiece`: the README recipe, preprocessing, atomic output.

References: SPEC Part 2 sections 1.4 and 2 (the ids the recipe gives), the `.vocab` file that
spm_train wrote for tests/fixtures/original_tokenizer/spm1k.model, and the `sentencepiece`
package's own reading of the models written here.
"""

import gzip
import os
import pathlib
import random
import subprocess
import sys

import pytest
import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as model_pb2

from albert_tf.errors import UserError
from albert_tf.tokenization import FullTokenizer
from albert_tf.train_sentencepiece import (SentencePieceTrainingError, train_sentencepiece,
                                           vocab_text)

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "original_tokenizer"
ROOT = pathlib.Path(__file__).parent.parent

# SPEC Part 2 section 1.4: ids of any model trained with the README's recipe.
RECIPE_IDS = ["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]",
              "(", ")", '"', "-", ".", "\u2013", "\u00a3", "\u20ac"]

QUIET = {"minloglevel": 2}


def write_corpus(path, lines=400):
    """Pseudo-random words (enough distinct pieces for a 60-piece model), upper-case and
    accented letters, numbers with commas and the user-defined symbols."""
    rng = random.Random(1234)
    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZéïÉ"
    extras = ["1,000", "(x)", "\"q\"", "\u2013", "\u00a35", "\u20ac7", "a-b", "end."]
    with open(path, "w", encoding="utf-8") as f:
        for i in range(lines):
            words = ["".join(rng.choice(letters) for _ in range(rng.randint(2, 7)))
                     for _ in range(8)]
            f.write(" ".join(words + [rng.choice(extras)]) + "\n")
            if i % 10 == 9:
                f.write("\n")  # blank lines (document breaks) are skipped
    return str(path)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    work = tmp_path_factory.mktemp("train")
    corpus = write_corpus(work / "corpus.txt")
    model = train_sentencepiece([corpus], work / "out" / "tiny", vocab_size=60,
                                extra_options=QUIET)
    return work, model


def test_recipe_special_ids(trained):
    _, model = trained
    sp = spm.SentencePieceProcessor(model_file=model)
    assert [sp.id_to_piece(i) for i in range(13)] == RECIPE_IDS
    assert sp.get_piece_size() == 60
    assert (sp.pad_id(), sp.unk_id(), sp.bos_id(), sp.eos_id()) == (0, 1, -1, -1)
    proto = model_pb2.ModelProto()
    proto.ParseFromString(pathlib.Path(model).read_bytes())
    kinds = model_pb2.ModelProto.SentencePiece
    assert [p.type for p in proto.pieces[:13]] == (
        [kinds.CONTROL, kinds.UNKNOWN] + [kinds.CONTROL] * 3 + [kinds.USER_DEFINED] * 8)
    assert proto.trainer_spec.model_type == model_pb2.TrainerSpec.UNIGRAM
    assert proto.trainer_spec.character_coverage == pytest.approx(0.99995)
    assert proto.normalizer_spec.name == "nmt_nfkc"


def test_vocab_file_lists_every_piece_with_its_score(trained):
    _, model = trained
    sp = spm.SentencePieceProcessor(model_file=model)
    lines = pathlib.Path(model[:-len(".model")] + ".vocab").read_text("utf-8").splitlines()
    assert [line.split("\t")[0] for line in lines] == \
        [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    assert [line.split("\t")[0] for line in lines[:13]] == RECIPE_IDS


def test_vocab_text_matches_spm_train_output():
    # spm1k.vocab was written by spm_train itself for spm1k.model.
    assert vocab_text((FIXTURES / "spm1k.model").read_bytes()) == \
        (FIXTURES / "spm1k.vocab").read_bytes()


def test_corpus_is_lower_cased_and_accents_removed(trained):
    _, model = trained
    sp = spm.SentencePieceProcessor(model_file=model)
    learnt = "".join(sp.id_to_piece(i) for i in range(13, sp.get_piece_size()))
    assert learnt == learnt.lower()
    assert not set("éïÉ") & set(learnt)


def test_cased_training_keeps_upper_case(tmp_path):
    corpus = write_corpus(tmp_path / "corpus.txt")
    model = train_sentencepiece(corpus, tmp_path / "cased", vocab_size=100,
                                do_lower_case=False, extra_options=QUIET)
    sp = spm.SentencePieceProcessor(model_file=model)
    learnt = "".join(sp.id_to_piece(i) for i in range(13, sp.get_piece_size()))
    assert learnt != learnt.lower()


def test_model_loads_in_full_tokenizer(trained):
    _, model = trained
    tok = FullTokenizer(None, True, model)
    assert tok.convert_tokens_to_ids(["[CLS]", "[SEP]", "[MASK]"]) == [2, 3, 4]
    assert tok.tokenize("ALPHA Alpha") == tok.tokenize("alpha alpha")


def test_output_is_written_atomically(tmp_path):
    corpus = write_corpus(tmp_path / "corpus.txt")
    prefix = tmp_path / "m"
    (tmp_path / "m.model").write_bytes(b"old model")
    (tmp_path / "m.vocab").write_bytes(b"old vocab")
    # A failing training (more pieces than the corpus can give) leaves the old files whole
    # and no temporary file behind.
    with pytest.raises(SentencePieceTrainingError, match="Vocabulary size"):
        train_sentencepiece(corpus, prefix, vocab_size=5000, extra_options=QUIET)
    assert (tmp_path / "m.model").read_bytes() == b"old model"
    assert (tmp_path / "m.vocab").read_bytes() == b"old vocab"
    train_sentencepiece(corpus, prefix, vocab_size=60, extra_options=QUIET)
    assert sorted(os.listdir(tmp_path)) == ["corpus.txt", "m.model", "m.vocab"]
    assert spm.SentencePieceProcessor(model_file=str(prefix) + ".model").get_piece_size() == 60


def test_input_sentence_sampling_and_gzip_input(tmp_path, capfd):
    plain = write_corpus(tmp_path / "corpus.txt", lines=1000)
    packed = tmp_path / "corpus.txt.gz"
    with open(plain, "rb") as f, gzip.open(packed, "wb") as g:
        g.write(f.read())
    train_sentencepiece([str(packed)], tmp_path / "sampled", vocab_size=60,
                        input_sentence_size=300, shuffle_input_sentence=True,
                        extra_options={"minloglevel": 0})
    # SentencePiece's own report: it sampled 300 of the 1,000 non-blank lines streamed in.
    assert "Sampled 300 sentences from 1000 sentences" in capfd.readouterr().err


def test_bad_arguments_are_clear_errors(tmp_path):
    corpus = write_corpus(tmp_path / "corpus.txt")
    with pytest.raises(UserError, match="missing.txt"):
        train_sentencepiece([str(tmp_path / "missing.txt")], tmp_path / "m", vocab_size=60)
    with pytest.raises(ValueError, match="vocab_size must be at least"):
        train_sentencepiece(corpus, tmp_path / "m", vocab_size=10)
    with pytest.raises(ValueError, match="pad_id"):
        train_sentencepiece(corpus, tmp_path / "m", vocab_size=60, extra_options={"pad_id": 3})


def test_command_line(tmp_path):
    corpus = write_corpus(tmp_path / "corpus.txt")
    result = subprocess.run(
        [sys.executable, "-m", "albert_tf.train_sentencepiece", f"--input={corpus}",
         f"--model_prefix={tmp_path / 'cli'}", "--vocab_size=60"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr[-2000:]
    sp = spm.SentencePieceProcessor(model_file=str(tmp_path / "cli.model"))
    assert [sp.id_to_piece(i) for i in range(13)] == RECIPE_IDS
