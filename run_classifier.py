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

from absl import flags

from albert_tf import cli


def define_flags():
    """All flags of run_classifier.py: the original's, the shared runtime ones, the tsv task's."""
    cli.define_finetuning_flags()
    f, _define = flags, cli.define_flag
    _define(f.DEFINE_string, "data_dir", None,
            "The GLUE root: the folder holding MNLI/, QQP/, ... (and diagnostic/), as "
            "download_glue_data.py writes it. For --task_name=tsv, the folder of train.tsv, "
            "dev.tsv and test.tsv.")
    _define(f.DEFINE_string, "task_name", None,
            "The task: CoLA, SST-2, MRPC, STS-B, QQP, MNLI, MisMNLI (MNLI selected and "
            "predicted on its mismatched half), QNLI, RTE, WNLI, AX (predict only, with an "
            "MNLI model), or tsv (your own files). Case does not matter.")
    _define(f.DEFINE_string, "cached_dir", None,
            "Where the converted train/dev/test features are cached as TFRecords (default: "
            "--output_dir). A cache is reused only for the same task, split, data, "
            "--max_seq_length and tokenizer.")
    _define(f.DEFINE_integer, "max_seq_length", 512,
            "Tokens per example after SentencePiece; longer inputs are truncated (the longer "
            "text of a pair first), shorter ones padded.")
    _define(f.DEFINE_bool, "do_train", False, "Whether to run training.")
    _define(f.DEFINE_bool, "do_eval", False,
            "Whether to evaluate every checkpoint on dev and keep the best as "
            "model.ckpt-best.")
    _define(f.DEFINE_bool, "do_predict", False,
            "Whether to predict the test set(s) with model.ckpt-best and write the "
            "submission files.")
    _define(f.DEFINE_integer, "train_batch_size", 32, "Total batch size for training.")
    _define(f.DEFINE_integer, "eval_batch_size", 8, "Total batch size for eval.")
    _define(f.DEFINE_float, "learning_rate", 5e-5, "The peak learning rate for AdamW/LAMB.")
    _define(f.DEFINE_integer, "train_step", 1000,
            "Total number of training steps (the learning rate decays to 0 there).")
    _define(f.DEFINE_integer, "warmup_step", 0,
            "Number of steps of linear learning-rate warm-up.")
    _define(f.DEFINE_integer, "save_checkpoints_steps", 1000,
            "How often to save (and, with --do_eval, evaluate) a checkpoint.")
    _define(f.DEFINE_integer, "keep_checkpoint_max", 5,
            "How many resumable training checkpoints to keep (every checkpoint is still "
            "evaluated).")
    _define(f.DEFINE_enum, "optimizer", "adamw", ["adamw", "lamb"], "Optimizer to use.")
    _define(f.DEFINE_string, "export_dir", None,
            "Export model.ckpt-best there as a SavedModel that takes raw text (text_a, and "
            "text_b for pair tasks) and returns probabilities.")
    _define(f.DEFINE_float, "threshold_to_export", float("nan"),
            "If set, a constant 'threshold' output with this value is added to the "
            "exported model's signature.")
    # The tsv task.
    _define(f.DEFINE_string, "text_a_column", "0",
            "tsv task: column of the first text (0-based index, or header name).")
    _define(f.DEFINE_string, "text_b_column", None,
            "tsv task: column of the second text, for pairs (index or header name).")
    _define(f.DEFINE_string, "label_column", "1",
            "tsv task: column of the label in train.tsv and dev.tsv (index or header name).")
    _define(f.DEFINE_list, "labels", None,
            "tsv task: the class names in id order, comma-separated (e.g. neg,pos). Empty: "
            "the label is a number and the task a regression (scored like STS-B).")
    _define(f.DEFINE_bool, "tsv_header", True,
            "tsv task: whether each file starts with a header row.")
    flags.adopt_module_key_flags(cli)   # --help lists the shared flags too


def settings_from_flags(values):
    """(FinetuningSettings, ClassifierSettings, config file) from the flag values."""
    from albert_tf.tasks.glue import ClassifierSettings
    init_checkpoint, spm_model_file, config_file = cli.model_files_from_flags(values)
    settings = cli.finetuning_settings_from_flags(
        values, init_checkpoint, eval_batch_size=values.eval_batch_size,
        train_step=values.train_step, warmup_step=values.warmup_step,
        keep_checkpoint_max=values.keep_checkpoint_max,
        iterations_per_loop=values.iterations_per_loop, optimizer=values.optimizer)
    classifier = ClassifierSettings(
        task_name=values.task_name, data_dir=values.data_dir,
        spm_model_file=spm_model_file, vocab_file=values.vocab_file,
        do_lower_case=values.do_lower_case, cached_dir=values.cached_dir,
        do_train=values.do_train, do_eval=values.do_eval, do_predict=values.do_predict,
        export_dir=values.export_dir, threshold_to_export=values.threshold_to_export,
        text_a_column=values.text_a_column, text_b_column=values.text_b_column,
        label_column=values.label_column, labels=tuple(values.labels or ()),
        tsv_header=values.tsv_header)
    return settings, classifier, config_file


def main(argv):
    with cli.script_main(argv) as values:
        from albert_tf.config import AlbertConfig
        from albert_tf.tasks.glue_task import run_classifier
        from albert_tf.training import SettingsError

        settings, classifier, config_file = settings_from_flags(values)
        if not config_file:
            raise SettingsError("Set --albert_config_file, or --albert_hub_module_handle to "
                                "a module with assets/albert_config.json.")
        config = AlbertConfig.from_json_file(config_file)
        strategy = cli.strategy_from_flags(values)
        outcome = run_classifier(config, settings, classifier, strategy)
        result = outcome["result"]
        if result is not None and result.best_step is not None:
            print(f"Best checkpoint: step {result.best_step}, {result.metric_key} = "
                  f"{result.best_value:.4f} ({values.output_dir}/eval_results.txt)")


if __name__ == "__main__":
    cli.run(main, define_flags, required=["data_dir", "task_name", "output_dir"])
