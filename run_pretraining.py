r"""Pretrain ALBERT (masked LM + sentence order) on TFRecords, as the original run_pretraining.py.

Every flag of the original keeps its name, meaning and default; new flags choose the
distribution strategy, mixed precision, XLA and gradient accumulation. Example (the README's
recipe on 8 GPUs):

    python run_pretraining.py --input_file="tfrecords/train-*" --output_dir=out \
      --albert_config_file=albert_base/albert_config.json --do_train --do_eval \
      --train_batch_size=4096 --max_seq_length=512 --max_predictions_per_seq=20 \
      --optimizer=lamb --learning_rate=0.00176 --num_train_steps=125000 \
      --num_warmup_steps=3125 --save_checkpoints_steps=5000 \
      --distribution_strategy=mirrored --mixed_precision=bf16 --jit_compile

Running the same command again resumes from the last checkpoint in --output_dir. Every path
(--input_file, --output_dir, --init_checkpoint, --albert_config_file) may be on any
filesystem TensorFlow reads (gs://, ram://, ...).
"""
from albert_tf import cli


def main(argv):
    with cli.script_main(argv) as values:
        from albert_tf.config import AlbertConfig
        from albert_tf.pretraining import run_pretraining
        strategy = cli.strategy_from_flags(values)
        config = AlbertConfig.from_json_file(values.albert_config_file)
        run_pretraining(config, cli.pretraining_settings_from_flags(values), strategy)


# The flags: cli.PRETRAINING_OPTIONS (albert_tf/settings.py's PretrainingSettings and the
# model-file, TPU and runtime options of cli.OPTIONS).
define_flags = cli.define_pretraining_flags

if __name__ == "__main__":
    cli.run(main, define_flags, required=["input_file", "albert_config_file", "output_dir"])
