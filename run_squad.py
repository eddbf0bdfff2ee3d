r"""Fine-tune ALBERT on SQuAD v1.1 or v2.0, as the original run_squad_v1.py / run_squad_v2.py.

Every flag of the two original scripts keeps its name, meaning and default; `--squad_version`
picks the task (run_squad_v1.py and run_squad_v2.py are this script with it preset). New
flags choose the distribution strategy, mixed precision, XLA and gradient accumulation.
Example (the original README's SQuAD 2.0 recipe):

    python run_squad.py --squad_version=2.0 \
      --train_file=train-v2.0.json --predict_file=dev-v2.0.json \
      --init_checkpoint=albert_base/model.ckpt-best \
      --albert_config_file=albert_base/albert_config.json \
      --spm_model_file=albert_base/30k-clean.model --do_lower_case \
      --do_train --do_predict --output_dir=out/squad2 \
      --train_feature_file=cache/train.tfrecord --predict_feature_file=cache/dev.tfrecord \
      --predict_feature_left_file=cache/dev.pkl \
      --max_seq_length=384 --doc_stride=128 --max_query_length=64 \
      --learning_rate=3e-5 --train_batch_size=48 --num_train_epochs=2 --warmup_proportion=0.1

Every saved checkpoint is scored on --predict_file with the official metric and the best
(by F1) is kept as model.ckpt-best, whose predictions.json, nbest_predictions.json (and
null_odds.json) are written last. Running the same command again resumes training from the
last checkpoint in --output_dir; the feature caches are built once.
"""

from absl import flags
from absl import logging

from albert_tf import cli


def define_squad_flags():
    """All flags of the original run_squad_v1.py and run_squad_v2.py, plus the new ones."""
    cli.define_finetuning_flags()
    f, _define = flags, cli.define_flag
    _define(f.DEFINE_enum, "squad_version", None, ["1.1", "2.0"],
            "1.1: the span head of run_squad_v1.py (never answers null). 2.0: the beam and "
            "answerability head of run_squad_v2.py (null answers, threshold tuned on "
            "--predict_file).")
    _define(f.DEFINE_string, "train_file", None, "SQuAD JSON for training, e.g. "
            "train-v1.1.json. Also read for predict-only runs if given (for the step count).")
    _define(f.DEFINE_string, "predict_file", None,
            "SQuAD JSON to predict and score, e.g. dev-v1.1.json.")
    _define(f.DEFINE_string, "train_feature_file", None,
            "TFRecord cache of the training features: written if missing, else read.")
    _define(f.DEFINE_string, "predict_feature_file", None,
            "TFRecord cache of the prediction features: written if it (or the left file) "
            "is missing, else read.")
    _define(f.DEFINE_string, "predict_feature_left_file", None,
            "Cache of what post-processing needs of the prediction features (a pickle): "
            "written if missing, else read. The original's files are read too.")
    _define(f.DEFINE_integer, "max_seq_length", 384,
            "Tokens per window (question + context piece window + 3 special tokens); "
            "shorter windows are padded.")
    _define(f.DEFINE_integer, "doc_stride", 128,
            "Pieces between the starts of consecutive windows over a long context.")
    _define(f.DEFINE_integer, "max_query_length", 64,
            "Question pieces kept; longer questions are cut to their first pieces.")
    _define(f.DEFINE_bool, "do_train", False, "Whether to fine-tune.")
    _define(f.DEFINE_bool, "do_predict", False,
            "Whether to predict and score --predict_file (every checkpoint; the best is "
            "kept).")
    _define(f.DEFINE_integer, "train_batch_size", 32, "Global batch size for training.")
    _define(f.DEFINE_float, "learning_rate", 5e-5, "The peak learning rate of AdamW.")
    _define(f.DEFINE_float, "num_train_epochs", 3.0,
            "Epochs over the training questions (steps = questions / batch x epochs, "
            "counted in questions, not windows, as the original).")
    _define(f.DEFINE_float, "warmup_proportion", 0.1,
            "Share of the steps with a linear learning-rate warm-up, e.g. 0.1 = 10%.")
    _define(f.DEFINE_integer, "save_checkpoints_steps", 1000,
            "Save (and score) a checkpoint every N steps.")
    _define(f.DEFINE_integer, "keep_checkpoint_max", 5,
            "Resumable training checkpoints kept in output_dir/train_state.")
    _define(f.DEFINE_integer, "n_best_size", 20,
            "Candidates per question in nbest_predictions.json (and best starts/ends "
            "paired per window in v1.1).")
    _define(f.DEFINE_integer, "max_answer_length", 30,
            "Longest answer in pieces (start and end are predicted independently).")
    _define(f.DEFINE_integer, "start_n_top", 5, "v2.0: beam size for the start positions.")
    _define(f.DEFINE_integer, "end_n_top", 5, "v2.0: beam size for the end positions.")
    _define(f.DEFINE_float, "dropout_prob", 0.1,
            "v2.0: dropout in the answerability layer (the encoder's dropouts come from "
            "--albert_config_file).")
    _define(f.DEFINE_bool, "use_einsum", True,
            "v1.1 flag of the original (einsum or matmul in dense layers, for TFLite); "
            "accepted for compatibility, it changes nothing here.")
    _define(f.DEFINE_string, "export_dir", None,
            "Export the best checkpoint there as a SavedModel (serving_default: input_ids, "
            "input_mask, segment_ids [and p_mask for v2.0] -> the head's outputs).")


def settings_from_flags(values):
    """(FinetuningSettings, SquadSettings, config file) from the flag values."""
    from albert_tf.tasks.squad_task import SquadSettings
    init_checkpoint, spm_model_file, config_file = cli.model_files_from_flags(values)
    settings = cli.finetuning_settings_from_flags(
        values, init_checkpoint, eval_batch_size=values.predict_batch_size,
        keep_checkpoint_max=values.keep_checkpoint_max,
        # As the original: a training loop never runs past a checkpoint.
        iterations_per_loop=min(values.iterations_per_loop, values.save_checkpoints_steps),
        optimizer="adamw")
    squad_settings = SquadSettings(
        squad_version=values.squad_version, train_file=values.train_file,
        predict_file=values.predict_file, train_feature_file=values.train_feature_file,
        predict_feature_file=values.predict_feature_file,
        predict_feature_left_file=values.predict_feature_left_file,
        spm_model_file=spm_model_file, do_lower_case=values.do_lower_case,
        doc_stride=values.doc_stride, max_query_length=values.max_query_length,
        do_train=values.do_train, do_predict=values.do_predict,
        num_train_epochs=values.num_train_epochs,
        warmup_proportion=values.warmup_proportion, n_best_size=values.n_best_size,
        max_answer_length=values.max_answer_length, start_n_top=values.start_n_top,
        end_n_top=values.end_n_top, dropout_prob=values.dropout_prob)
    return settings, squad_settings, config_file


def main(argv):
    with cli.script_main(argv) as values:
        from albert_tf import training
        from albert_tf.config import AlbertConfig
        from albert_tf.tasks.squad_task import export_squad_model, run_squad
        if not values.squad_version:
            raise training.SettingsError("Set --squad_version=1.1 or --squad_version=2.0 "
                                         "(or run run_squad_v1.py / run_squad_v2.py).")
        settings, squad_settings, config_file = settings_from_flags(values)
        if not config_file:
            raise training.SettingsError("Set --albert_config_file (the model's config JSON).")
        strategy = cli.strategy_from_flags(values)
        config = AlbertConfig.from_json_file(config_file)
        if squad_settings.do_train or squad_settings.do_predict or not values.export_dir:
            outcome = run_squad(config, settings, squad_settings, strategy)
            if outcome["metrics"]:
                print(f"SQuAD {squad_settings.squad_version}: " + ", ".join(
                    f"{key} = {value:.4f}" if isinstance(value, float) else f"{key} = {value}"
                    for key, value in outcome["metrics"].items())
                    + f" ({values.output_dir}/squad_results.json)")
        if values.export_dir:
            path = export_squad_model(config, settings, squad_settings, values.export_dir)
            logging.info("Exported the SavedModel to %s.", path)


def run(default_version=None):
    """Defines the flags and runs `main` under absl (`cli.run`: `--debug`, required flags);
    the v1/v2 aliases preset --squad_version."""
    def define_flags():
        define_squad_flags()
        flags.adopt_module_key_flags(cli)   # --help lists the shared flags too
        if default_version:
            flags.FLAGS.set_default("squad_version", default_version)

    cli.run(main, define_flags, required=["output_dir"])


if __name__ == "__main__":
    run()
