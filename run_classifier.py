r"""Fine-tune ALBERT on a GLUE task (or your own TSV files), as the original run_classifier.py.

Every flag of the original keeps its name, meaning and default; the strategy, mixed-precision
and XLA flags are those of run_pretraining.py. Example (MNLI, the paper's recipe):

    python run_classifier.py --task_name=MNLI --data_dir=glue --output_dir=out/mnli \
      --init_checkpoint=albert_base/model.ckpt-best \
      --albert_config_file=albert_base/albert_config.json \
      --spm_model_file=albert_base/30k-clean.model --do_lower_case \
      --do_train --do_eval --do_predict --max_seq_length=512 --optimizer=adamw \
      --learning_rate=3e-5 --train_batch_size=128 --train_step=10000 --warmup_step=1000 \
      --save_checkpoints_steps=100

Every saved checkpoint is evaluated on dev; the best is kept as output_dir/model.ckpt-best,
from which --do_predict writes the GLUE-server files (output_dir/glue_submission/*.tsv) and
--export_dir a SavedModel that takes raw text. Running the same command again resumes.
Your own data: --task_name=tsv with train.tsv/dev.tsv/test.tsv in --data_dir and
--text_a_column, --text_b_column, --label_column, --labels.
"""

from albert_tf import cli
from albert_tf.settings import ClassifierSettings

# The original's flags and the new ones: FinetuningSettings and ClassifierSettings (the
# tsv task's too) in albert_tf/settings.py, the model-file, TPU and runtime options of cli.
OPTIONS = cli.finetuning_options(ClassifierSettings)


def define_flags():
    """All flags of run_classifier.py."""
    cli.define(OPTIONS)


def settings_from_flags(values):
    """(FinetuningSettings, ClassifierSettings, config file) from the flag values."""
    return cli.finetuning_from_flags(ClassifierSettings, OPTIONS, values)


def main(argv):
    with cli.script_main(argv) as values:
        from albert_tf.config import AlbertConfig
        from albert_tf.tasks.glue_task import run_classifier

        settings, classifier, config_file = settings_from_flags(values)
        config = AlbertConfig.from_json_file(config_file)
        strategy = cli.strategy_from_flags(values)
        outcome = run_classifier(config, settings, classifier, strategy)
        result = outcome["result"]
        if result is not None and result.best_step is not None:
            print(f"Best checkpoint: step {result.best_step}, {result.metric_key} = "
                  f"{result.best_value:.4f} ({values.output_dir}/eval_results.txt)")


if __name__ == "__main__":
    cli.run(main, define_flags, required=["data_dir", "task_name", "output_dir"])
