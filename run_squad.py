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
from albert_tf.settings import SquadSettings

# All flags of the original run_squad_v1.py and run_squad_v2.py, plus the new ones:
# FinetuningSettings (less the flags SQuAD has not: it counts steps from epochs and scores
# with --predict_batch_size) and SquadSettings in albert_tf/settings.py, the model-file,
# TPU and runtime options of cli, and the two below.
OPTIONS = cli.finetuning_options(
    SquadSettings, skip=("eval_batch_size", "train_step", "warmup_step", "optimizer"),
    max_seq_length={"default": 384, "help": "Tokens per window (question + context piece "
                    "window + 3 special tokens); shorter windows are padded."},
    learning_rate={"help": "The peak learning rate of AdamW."},
    save_checkpoints_steps={"help": "Save (and score) a checkpoint every N steps."},
    squad_version={"default": None}) + cli.options("vocab_file", "use_einsum") + [
    cli.Option("export_dir", None, "Export the best checkpoint there as a SavedModel "
               "(serving_default: input_ids, input_mask, segment_ids [and p_mask for v2.0] "
               "-> the head's outputs).")]


def define_squad_flags():
    """All flags of run_squad.py (and of run_squad_v1.py, run_squad_v2.py)."""
    cli.define(OPTIONS)


def settings_from_flags(values):
    """(FinetuningSettings, SquadSettings, config file) from the flag values."""
    return cli.finetuning_from_flags(
        SquadSettings, OPTIONS, values, eval_batch_size=values.predict_batch_size,
        # As the original: a training loop never runs past a checkpoint.
        iterations_per_loop=min(values.iterations_per_loop, values.save_checkpoints_steps))


def main(argv):
    with cli.script_main(argv) as values:
        from albert_tf import training
        from albert_tf.config import AlbertConfig
        from albert_tf import export as export_lib
        from albert_tf.tasks.squad_task import build_squad_model, run_squad
        if not values.squad_version:
            raise training.SettingsError("Set --squad_version=1.1 or --squad_version=2.0 "
                                         "(or run run_squad_v1.py / run_squad_v2.py).")
        settings, squad_settings, config_file = settings_from_flags(values)
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
            path = export_lib.export_finetuned(
                build_squad_model(config, squad_settings), settings.output_dir,
                values.export_dir, init_checkpoint=settings.init_checkpoint,
                max_seq_length=settings.max_seq_length)
            logging.info("Exported the SavedModel to %s.", path)


def run(default_version=None):
    """Defines the flags and runs `main` under absl (`cli.run`: `--debug`, required flags);
    the v1/v2 aliases preset --squad_version."""
    def define_flags():
        define_squad_flags()
        if default_version:
            flags.FLAGS.set_default("squad_version", default_version)

    cli.run(main, define_flags, required=["output_dir"])


if __name__ == "__main__":
    run()
