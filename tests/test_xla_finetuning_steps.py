"""Every fine-tuning task's train step compiles whole under XLA, and evaluation scores every
example exactly once with static shapes.

Train steps: the batch comes from the task's own training input (GLUE classification and
regression, SQuAD v1.1 and v2.0, RACE), whose shapes must be fully static (the remainder
dropped). `training.xla_train_step` compiles the trainer's per-replica step (forward,
backward, clipping, the AdamW update) with `jit_compile=True` on the CPU; the reference is
the same step run by TensorFlow without XLA from the same seeded weights on the same batch:
XLA may only reorder float arithmetic, so losses and every variable agree to 1e-5. Dropout
is off (XLA draws other random numbers).

Evaluation: the task's evaluation / prediction with a batch size that divides neither the
number of examples nor features (so the last batch is padded) and `jit_compile=True` (so
every batch must have the same shape) must return each example once, in file order, equal
to the model run on that example alone (batch of one, no XLA), and metrics equal to the
task's metric function on those independent per-example outputs (no padding counted).
"""

import json
import random

import numpy as np
import pytest
import tensorflow as tf

from albert_tf.config import AlbertConfig
from albert_tf.finetuning import FineTuner, FinetuningSettings
from albert_tf.heads import AlbertClassifier, AlbertMultipleChoice
from albert_tf.tasks import glue, glue_task, race, race_task, squad
from albert_tf.tasks import squad_task
from albert_tf.tokenization import FullTokenizer
from albert_tf.train_sentencepiece import train_sentencepiece
from conftest import race_article, synthetic_squad
from test_xla_steps import assert_xla_step_matches_plain_step as assert_train_steps_agree

SEQ = 24
ANIMALS = "cat dog fox owl bee cow pig hen".split()
COLORS = "red blue green black white".split()
ATOL = 1e-5


@pytest.fixture(scope="module")
def spm_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("spm")
    lines = [f"The {a} is {c}. What color is the {a}? Who is on the farm? The {a} sees a "
             f"{b}." for a in ANIMALS for b in ANIMALS for c in COLORS]
    (folder / "corpus.txt").write_text("\n".join(lines) + "\n")
    return train_sentencepiece(str(folder / "corpus.txt"), str(folder / "spm"),
                               vocab_size=60, num_threads=1,
                               extra_options={"hard_vocab_limit": False})


@pytest.fixture(scope="module")
def tokenizer(spm_model):
    return FullTokenizer(None, True, spm_model)


def tiny_config():
    return AlbertConfig(vocab_size=64, embedding_size=8, hidden_size=16, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=32,
                        max_position_embeddings=SEQ, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0, initializer_range=0.2)


def make_tuner(tmp_path, build_model, jit_compile=False):
    """A FineTuner on one CPU device, weights seeded the same way each time.

    The learning rate is small because AdamW turns rounding noise into steps of about the
    learning rate x 1e-2 where a gradient is zero in exact arithmetic (the SQuAD v1.1 output
    bias: the softmax over positions ignores a bias shared by every position), and XLA
    rounds differently."""
    settings = FinetuningSettings(output_dir=str(tmp_path / "out"), max_seq_length=SEQ,
                                  train_batch_size=4, learning_rate=1e-3, train_step=10,
                                  warmup_step=0, seed=3, jit_compile=jit_compile)
    return FineTuner(tiny_config(), settings, build_model,
                     tf.distribute.OneDeviceStrategy("/cpu:0"))


def first_batch(dataset):
    for name, spec in dataset.element_spec.items():
        assert spec.shape.is_fully_defined(), (name, spec.shape)
    return next(iter(dataset))


def assert_xla_step_matches_plain_step(tmp_path, build_model, loss_fn, batch, steps=2):
    """Two train steps under XLA and two plain ones from the same weights agree (the loss,
    every variable, the step counter; `test_xla_steps`' check on fine-tuning trainers)."""
    folders = iter(("xla", "plain"))
    assert_train_steps_agree(
        lambda: make_tuner(tmp_path / next(folders), build_model).make_trainer(loss_fn),
        batch, steps, atol=ATOL, names=("loss",))


def one_by_one(model, dataset, output_fn):
    """{name: [N, ...]}: `output_fn` on each example alone (a batch of one, no XLA)."""
    rows = [output_fn(model, {k: v[None] for k, v in example.items()})
            for example in dataset]
    return {name: np.concatenate([np.asarray(r[name]) for r in rows]) for name in rows[0]}


# === GLUE ===============================================================================

def glue_examples(task, count, seed):
    rng = random.Random(seed)
    examples = []
    for i in range(count):
        a, b = rng.sample(ANIMALS, 2)
        label = (rng.uniform(0, 5) if task.is_regression else rng.choice(task.labels))
        examples.append(glue.InputExample(f"dev-{i}", f"The {a} is red.",
                                          f"The {b} sees a {a}.", label))
    return examples


@pytest.mark.parametrize("task_name", ["rte", "sts-b"])
def test_glue_train_step_compiles_whole(tmp_path, tokenizer, task_name):
    task = glue.get_task(task_name)
    path = str(tmp_path / "train.tf_record")
    glue.write_features(glue_examples(task, 10, 1), task, SEQ, tokenizer, path)
    batch = first_batch(glue.train_input(path, SEQ, task.is_regression, seed=1)(4))
    assert_xla_step_matches_plain_step(
        tmp_path, lambda c: AlbertClassifier(c, task.num_labels, dropout_prob=0.0),
        glue_task.classifier_loss_fn(task), batch)


@pytest.mark.parametrize("task_name", ["rte", "sts-b"])
def test_glue_evaluation_scores_every_example_once_without_padding(tmp_path, tokenizer,
                                                                   task_name):
    task = glue.get_task(task_name)
    examples = glue_examples(task, 7, 2)
    path = str(tmp_path / "dev.tf_record")
    glue.write_features(examples, task, SEQ, tokenizer, path)
    tuner = make_tuner(tmp_path, lambda c: AlbertClassifier(c, task.num_labels, dropout_prob=0.0),
                       jit_compile=True)
    # 7 examples in batches of 3: the third batch holds one example and two paddings.
    outputs = tuner.predict(glue.load_features(path, SEQ, task.is_regression),
                            glue_task.classifier_output_fn(task), batch_size=3,
                            keep=("label_ids",))
    metrics = glue_task.compute_metrics(task, outputs["logits"], outputs["label_ids"],
                                        outputs["loss"], 3)
    reference = one_by_one(tuner.model, glue.load_features(path, SEQ, task.is_regression),
                           glue_task.classifier_output_fn(task))
    labels = [task.labels.index(e.label) if not task.is_regression else e.label
              for e in examples]
    np.testing.assert_allclose(outputs["label_ids"], labels, rtol=1e-6)   # file order
    np.testing.assert_allclose(outputs["logits"], reference["logits"], atol=ATOL)
    want = glue_task.compute_metrics(task, reference["logits"], labels, reference["loss"], 3)
    assert sorted(metrics) == sorted(want)
    for key in want:
        assert metrics[key] == pytest.approx(want[key], abs=ATOL), key
    # The batch-mean `loss` averages 3 batches (3, 3 and 1 real examples), not 9 rows.
    losses = reference["loss"]
    assert metrics["loss"] == pytest.approx(
        np.mean([losses[:3].mean(), losses[3:6].mean(), losses[6:].mean()]), abs=ATOL)


# === SQuAD ==============================================================================

def squad_json(seed, paragraphs, v2):
    """Three animals a paragraph; in v2.0 the second question of odd paragraphs has no
    answer."""
    return synthetic_squad(random.Random(seed), paragraphs, v2,
                           impossible=lambda rng, p, k: k == 1 and p % 2)


def squad_settings(version):
    return squad_task.SquadSettings(squad_version=version, max_query_length=8,
                                        doc_stride=8, start_n_top=2, end_n_top=2,
                                        dropout_prob=0.0)


@pytest.mark.parametrize("version", ["1.1", "2.0"])
def test_squad_train_step_compiles_whole(tmp_path, tokenizer, version):
    q = squad_settings(version)
    source = tmp_path / "train.json"
    source.write_text(json.dumps(squad_json(1, 5, q.is_v2)))
    features = str(tmp_path / "train.tfrecord")
    squad.prepare_train_features(str(source), tokenizer, features, SEQ, q.doc_stride,
                                 q.max_query_length)
    batch = first_batch(squad.squad_dataset(features, SEQ, True, 4, is_v2=q.is_v2, seed=1))
    assert_xla_step_matches_plain_step(
        tmp_path, lambda c: squad_task.build_squad_model(c, q),
        squad_task.squad_loss_fn(q), batch)


@pytest.mark.parametrize("version", ["1.1", "2.0"])
def test_squad_prediction_scores_every_feature_once_in_file_order(tmp_path, tokenizer,
                                                                 version):
    q = squad_settings(version)
    source = tmp_path / "dev.json"
    source.write_text(json.dumps(squad_json(2, 4, q.is_v2)))
    features_path, left = str(tmp_path / "dev.tfrecord"), str(tmp_path / "dev.pkl")
    features = squad.prepare_eval_features(str(source), tokenizer, features_path, left, SEQ,
                                           q.doc_stride, q.max_query_length)
    batch_size = 3 if len(features) % 3 else 5
    assert len(features) % batch_size, len(features)
    tuner = make_tuner(tmp_path, lambda c: squad_task.build_squad_model(c, q),
                       jit_compile=True)
    dataset = squad_task.eval_dataset(features_path, SEQ, q.is_v2)
    outputs = tuner.predict(dataset, batch_size=batch_size, keep=("unique_ids",),
                            num_examples=len(features))
    assert outputs["unique_ids"].tolist() == [f.unique_id for f in features]

    def plain(model, batch):
        return {k: v for k, v in model(batch, training=False).items()
                if k in outputs}

    reference = one_by_one(tuner.model, dataset, plain)
    for name in reference:
        if "index" in name:   # beam indices: the same wherever the scores are not tied
            assert np.mean(outputs[name] == reference[name]) > 0.9, name
        else:
            np.testing.assert_allclose(outputs[name], reference[name], atol=ATOL,
                                       err_msg=name)


# === RACE ===============================================================================

def race_split(tmp_path, split, per_level, seed):
    rng = random.Random(seed)
    for level in race.LEVELS:
        folder = tmp_path / "RACE" / split / level
        folder.mkdir(parents=True)
        lines = [json.dumps(race_article(rng, level, i)) for i in range(per_level)]
        (folder / "all.txt").write_text("\n".join(lines) + "\n")
    return race.read_split(str(tmp_path), split).examples


def race_features(tmp_path, tokenizer, split, per_level, seed):
    examples = race_split(tmp_path, split, per_level, seed)
    path = race.cached_features(examples, split, tokenizer, SEQ, 8, str(tmp_path / "cache"))
    return examples, path


def test_race_train_step_compiles_whole(tmp_path, spm_model):
    tokenizer = race.make_tokenizer(spm_model)
    _, path = race_features(tmp_path, tokenizer, "train", 4, 1)
    batch = first_batch(race.train_input(path, SEQ, seed=1)(4))
    assert_xla_step_matches_plain_step(
        tmp_path, lambda c: AlbertMultipleChoice(c, race.NUM_CHOICES, 0.0),
        race_task.race_loss_fn, batch)


def test_race_evaluation_scores_every_question_once_without_padding(tmp_path, spm_model):
    tokenizer = race.make_tokenizer(spm_model)
    examples, path = race_features(tmp_path, tokenizer, "dev", 4, 2)   # 8 questions
    tuner = make_tuner(tmp_path, lambda c: AlbertMultipleChoice(c, race.NUM_CHOICES, 0.0),
                       jit_compile=True)
    outputs = race_task.predict_split(tuner, path, examples, SEQ, 3)
    metrics = race_task.compute_metrics(outputs["logits"], outputs["label_ids"], outputs["loss"],
                                        [e.level for e in examples], 3)
    assert outputs["label_ids"].tolist() == [e.label for e in examples]
    reference = one_by_one(tuner.model, race.load_features(path, SEQ), race_task.race_output_fn)
    np.testing.assert_allclose(outputs["logits"], reference["logits"], atol=ATOL)
    want = race_task.compute_metrics(reference["logits"], [e.label for e in examples],
                                reference["loss"], [e.level for e in examples], 3)
    assert sorted(metrics) == sorted(want)
    for key in want:
        assert metrics[key] == pytest.approx(want[key], abs=ATOL), key
