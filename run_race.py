r"""Fine-tune ALBERT on RACE (multiple-choice reading comprehension), as the original run_race.py.

Every flag of the original keeps its name, meaning and default; new flags choose the
distribution strategy, mixed precision, XLA and gradient accumulation. The original README's
recipe (these are the defaults):

    python run_race.py --data_dir=data --output_dir=out/race \
      --init_checkpoint=albert_base/model.ckpt-best \
      --albert_config_file=albert_base/albert_config.json \
      --spm_model_file=albert_base/30k-clean.model --do_lower_case --do_train --do_eval \
      --max_seq_length=512 --max_qa_length=128 --train_batch_size=32 --learning_rate=1e-5 \
      --train_step=12000 --warmup_step=1000

--data_dir holds RACE/{train,dev,test}/{middle,high}/, each with all.txt (one JSON article a
line) or the official download's one file per article. Every saved checkpoint is scored on
dev (eval_accuracy, eval_loss, and the accuracy of each level in eval_results.txt); the best
is kept as model.ckpt-best. --do_predict scores it on test (predict_results.txt) and writes
test_predictions.tsv. Running the same command again resumes training from the last
checkpoint; features are converted once and cached.
"""

from absl import flags

from albert_tf import cli


def define_race_flags():
    """All flags of the original run_race.py, plus the new ones."""
    cli.define_finetuning_flags()
    f, _define = flags, cli.define_flag
    _define(f.DEFINE_string, "data_dir", None,
            "The folder holding RACE/ (RACE/train, RACE/dev, RACE/test, each with middle/ "
            "and high/).")
    _define(f.DEFINE_string, "task_name", "race", "The name of the task; only 'race'.")
    _define(f.DEFINE_string, "train_file", None,
            "TFRecord cache of the training features: built if missing, else reused "
            "(default: a file in --output_dir named after the settings and data).")
    _define(f.DEFINE_string, "eval_file", None,
            "TFRecord cache of the dev features: built if missing, else reused.")
    _define(f.DEFINE_string, "predict_file", None,
            "TFRecord cache of the test features: built if missing, else reused (the "
            "original ignored this flag and always rebuilt output_dir/predict.tf_record).")
    _define(f.DEFINE_float, "dropout_prob", 0.1,
            "Dropout on the pooled output in the head (the encoder's come from "
            "--albert_config_file).")
    _define(f.DEFINE_integer, "max_seq_length", 512,
            "Pieces per sequence ([CLS] article [SEP] question+option [SEP]), one sequence "
            "per option; the article is cut to fit, shorter ones are padded.")
    _define(f.DEFINE_integer, "max_qa_length", 128,
            "Pieces kept of question+option: its LAST ones (the end holds the option).")
    _define(f.DEFINE_integer, "num_keep_checkpoint", 5,
            "Resumable training checkpoints kept in output_dir/train_state (unused by the "
            "original).")
    _define(f.DEFINE_bool, "high_only", False, "Use the high-school questions only.")
    _define(f.DEFINE_bool, "middle_only", False, "Use the middle-school questions only.")
    _define(f.DEFINE_bool, "do_train", True, "Whether to run training.")
    _define(f.DEFINE_bool, "do_eval", True,
            "Whether to score every checkpoint on dev and keep the best.")
    _define(f.DEFINE_bool, "do_predict", False,
            "Whether to score model.ckpt-best on test and write test_predictions.tsv.")
    _define(f.DEFINE_integer, "train_batch_size", 32, "Total batch size (questions) for "
            "training.")
    _define(f.DEFINE_integer, "eval_batch_size", 8, "Total batch size for eval.")
    _define(f.DEFINE_float, "learning_rate", 1e-5, "The peak learning rate of AdamW.")
    _define(f.DEFINE_integer, "train_step", 12000,
            "Training steps; the learning rate decays linearly to 0 there.")
    _define(f.DEFINE_integer, "warmup_step", 1000,
            "Steps of linear learning-rate warm-up.")
    _define(f.DEFINE_integer, "save_checkpoints_steps", 100,
            "Save (and score on dev) a checkpoint every N steps. Scoring the whole dev set "
            "takes time: raise this on slow machines.")
    _define(f.DEFINE_bool, "skip_bad_examples", False,
            "Skip (and count in the log) articles that are not valid JSON and questions "
            "without 4 options or an A-D answer, instead of stopping at the first one.")
    _define(f.DEFINE_string, "cached_dir", None,
            "Where the keyed feature files go when --train_file etc. are unset (default: "
            "--output_dir); share it between runs to convert once.")
    flags.adopt_module_key_flags(cli)   # --help lists the shared flags too


def settings_from_flags(values):
    """(FinetuningSettings, RaceSettings, config file) from the flag values."""
    from albert_tf.tasks.race import RaceSettings
    init_checkpoint, spm_model_file, config_file = cli.model_files_from_flags(values)
    iterations_per_loop = values.iterations_per_loop
    if values.do_train:
        # As the original: a training loop never runs past a checkpoint.
        iterations_per_loop = min(iterations_per_loop, values.save_checkpoints_steps)
    settings = cli.finetuning_settings_from_flags(
        values, init_checkpoint, eval_batch_size=values.eval_batch_size,
        train_step=values.train_step, warmup_step=values.warmup_step,
        keep_checkpoint_max=values.num_keep_checkpoint,
        iterations_per_loop=iterations_per_loop, optimizer="adamw")
    race = RaceSettings(
        data_dir=values.data_dir, spm_model_file=spm_model_file,
        vocab_file=values.vocab_file, do_lower_case=values.do_lower_case,
        max_qa_length=values.max_qa_length, dropout_prob=values.dropout_prob,
        high_only=values.high_only, middle_only=values.middle_only,
        do_train=values.do_train, do_eval=values.do_eval, do_predict=values.do_predict,
        train_file=values.train_file, eval_file=values.eval_file,
        predict_file=values.predict_file, cache_dir=values.cached_dir,
        skip_bad_examples=values.skip_bad_examples)
    return settings, race, config_file


def main(argv):
    with cli.script_main(argv) as values:
        from albert_tf import training
        from albert_tf.config import AlbertConfig
        from albert_tf.tasks.race_task import run_race
        if values.task_name.lower() != "race":
            raise training.SettingsError(f"Task not found: {values.task_name!r}; run_race.py "
                                         "runs 'race' (GLUE tasks: run_classifier.py).")
        settings, race, config_file = settings_from_flags(values)
        if not config_file:
            raise training.SettingsError("Set --albert_config_file (the model's config JSON).")
        strategy = cli.strategy_from_flags(values)
        config = AlbertConfig.from_json_file(config_file)
        run_race(config, settings, race, strategy)


def run():
    """Defines the flags and runs `main` under absl (`cli.run`: `--debug`, required flags)."""
    cli.run(main, define_race_flags, required=["data_dir", "output_dir"])


if __name__ == "__main__":
    run()
