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

from albert_tf import cli
from albert_tf.settings import RaceSettings

# All flags of the original run_race.py, plus the new ones: FinetuningSettings (AdamW
# only) and RaceSettings in albert_tf/settings.py with run_race's defaults, the model-file,
# TPU and runtime options of cli, and --task_name.
OPTIONS = cli.finetuning_options(
    RaceSettings, skip=("optimizer",),
    max_seq_length={"help": "Pieces per sequence ([CLS] article [SEP] question+option "
                    "[SEP]), one sequence per option; the article is cut to fit, shorter "
                    "ones are padded."},
    train_batch_size={"help": "Total batch size (questions) for training."},
    learning_rate={"default": 1e-5, "help": "The peak learning rate of AdamW."},
    train_step={"default": 12000}, warmup_step={"default": 1000},
    save_checkpoints_steps={"default": 100, "help": "Save (and score on dev) a checkpoint "
                            "every N steps. Scoring the whole dev set takes time: raise "
                            "this on slow machines."},
    keep_checkpoint_max={"name": "num_keep_checkpoint", "help": "Resumable training "
                         "checkpoints kept in output_dir/train_state (unused by the "
                         "original)."}) + [
    cli.Option("task_name", "race", "The name of the task; only 'race'.")]


def define_race_flags():
    """All flags of run_race.py."""
    cli.define(OPTIONS)


def settings_from_flags(values):
    """(FinetuningSettings, RaceSettings, config file) from the flag values."""
    iterations_per_loop = values.iterations_per_loop
    if values.do_train:
        # As the original: a training loop never runs past a checkpoint.
        iterations_per_loop = min(iterations_per_loop, values.save_checkpoints_steps)
    return cli.finetuning_from_flags(RaceSettings, OPTIONS, values,
                                     iterations_per_loop=iterations_per_loop)


def main(argv):
    with cli.script_main(argv) as values:
        from albert_tf import training
        from albert_tf.config import AlbertConfig
        from albert_tf.tasks.race_task import run_race
        if values.task_name.lower() != "race":
            raise training.SettingsError(f"Task not found: {values.task_name!r}; run_race.py "
                                         "runs 'race' (GLUE tasks: run_classifier.py).")
        settings, race, config_file = settings_from_flags(values)
        strategy = cli.strategy_from_flags(values)
        config = AlbertConfig.from_json_file(config_file)
        run_race(config, settings, race, strategy)


def run():
    """Defines the flags and runs `main` under absl (`cli.run`: `--debug`, required flags)."""
    cli.run(main, define_race_flags, required=["data_dir", "output_dir"])


if __name__ == "__main__":
    run()
