r"""Fine-tune ALBERT on SQuAD v1.1: `run_squad.py --squad_version=1.1` under the original name.

Takes the original run_squad_v1.py's command lines unchanged, e.g.

    python run_squad_v1.py --albert_config_file=albert_base/albert_config.json \
      --spm_model_file=albert_base/30k-clean.model --output_dir=out/squad1 \
      --train_file=train-v1.1.json --predict_file=dev-v1.1.json \
      --train_feature_file=cache/train1.tfrecord --predict_feature_file=cache/dev1.tfrecord \
      --predict_feature_left_file=cache/dev1.pkl \
      --init_checkpoint=albert_base/model.ckpt-best --do_lower_case \
      --max_seq_length=384 --doc_stride=128 --max_query_length=64 --do_train --do_predict \
      --train_batch_size=48 --predict_batch_size=8 --learning_rate=5e-5 \
      --num_train_epochs=2.0 --warmup_proportion=.1 --save_checkpoints_steps=5000 \
      --n_best_size=20 --max_answer_length=30

See run_squad.py for every flag.
"""
import run_squad

if __name__ == "__main__":
    run_squad.run(default_version="1.1")
