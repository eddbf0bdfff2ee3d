#!/bin/bash
# Fine-tunes ALBERT on the GLUE tasks with the original release's per-task recipes
# (run_glue.sh of google-research/ALBERT: learning rate, steps, warm-up, batch size,
# checkpoint period; max_seq_length 512, AdamW, lower-cased input).
#
# Each task trains, evaluates every checkpoint on dev, keeps the best as model.ckpt-best and
# predicts the test set in one run (the original used a train run, then an eval+predict
# run); rerunning the script resumes unfinished tasks. The GLUE-server files of all tasks
# are gathered in $OUTPUT_DIR/glue_submission (and glue_submission.zip, if zip is there).
#
# Environment (defaults in brackets):
#   ALBERT_ROOT     folder holding glue/ and the model folder               [.]
#   GLUE_DIR        the GLUE data, as download_glue_data.py writes it     [$ALBERT_ROOT/glue]
#   MODEL_DIR       a released model folder (albert_config.json,
#                   30k-clean.model, model.ckpt-best.*)                   [$ALBERT_ROOT/albert_base]
#   INIT_CHECKPOINT the checkpoint to fine-tune                          [$MODEL_DIR/model.ckpt-best]
#   OUTPUT_DIR      one sub-folder per task                               [$ALBERT_ROOT/glue_output]
#   TASKS           the tasks to run, space-separated                     [all eight below]
# Arguments are passed on to every run_classifier.py call, e.g.
#   bash run_glue.sh --distribution_strategy=mirrored --mixed_precision=bf16

set -euo pipefail

ALBERT_ROOT="${ALBERT_ROOT:-.}"
GLUE_DIR="${GLUE_DIR:-${ALBERT_ROOT}/glue}"
MODEL_DIR="${MODEL_DIR:-${ALBERT_ROOT}/albert_base}"
INIT_CHECKPOINT="${INIT_CHECKPOINT:-${MODEL_DIR}/model.ckpt-best}"
OUTPUT_DIR="${OUTPUT_DIR:-${ALBERT_ROOT}/glue_output}"
TASKS="${TASKS:-SST-2 MNLI CoLA QNLI QQP RTE STS-B MRPC}"
PYTHON="${PYTHON:-python3}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# task: warmup_step learning_rate train_step save_checkpoints_steps train_batch_size
declare -A RECIPE=(
  [SST-2]="1256 1e-5 20935 100 32"
  [MNLI]="1000 3e-5 10000 100 128"
  [CoLA]="320 1e-5 5336 100 16"
  [QNLI]="1986 1e-5 33112 200 32"
  [QQP]="1000 5e-5 14000 100 128"
  [RTE]="200 3e-5 800 100 32"
  [STS-B]="214 2e-5 3598 100 16"
  [MRPC]="200 2e-5 800 100 32"
)

run_task() {
  local task="$1"; shift
  read -r warmup lr steps save batch <<< "${RECIPE[$task]}"
  "${PYTHON}" "${HERE}/run_classifier.py" \
    --task_name="${task}" \
    --data_dir="${GLUE_DIR}" \
    --output_dir="${OUTPUT_DIR}/${task}" \
    --init_checkpoint="${INIT_CHECKPOINT}" \
    --albert_config_file="${MODEL_DIR}/albert_config.json" \
    --spm_model_file="${MODEL_DIR}/30k-clean.model" \
    --do_lower_case \
    --max_seq_length=512 \
    --optimizer=adamw \
    --warmup_step="${warmup}" \
    --learning_rate="${lr}" \
    --train_step="${steps}" \
    --save_checkpoints_steps="${save}" \
    --train_batch_size="${batch}" \
    --do_train --do_eval --do_predict \
    "$@"
}

for task in ${TASKS}; do
  if [[ -z "${RECIPE[$task]+x}" ]]; then
    echo "No recipe for task ${task}; expected one of: ${!RECIPE[*]}" >&2
    exit 1
  fi
  run_task "${task}" "$@"
done

mkdir -p "${OUTPUT_DIR}/glue_submission"
for task in ${TASKS}; do
  if compgen -G "${OUTPUT_DIR}/${task}/glue_submission/*.tsv" > /dev/null; then
    cp "${OUTPUT_DIR}/${task}"/glue_submission/*.tsv "${OUTPUT_DIR}/glue_submission/"
  fi
done
if ! compgen -G "${OUTPUT_DIR}/glue_submission/*.tsv" > /dev/null; then
  echo "No submission files were written (is --do_predict failing?)." >&2
elif command -v zip > /dev/null; then
  rm -f "${OUTPUT_DIR}/glue_submission.zip"
  (cd "${OUTPUT_DIR}/glue_submission" && zip -q -j ../glue_submission.zip ./*.tsv)
  echo "GLUE submission: ${OUTPUT_DIR}/glue_submission.zip"
else
  echo "GLUE submission files: ${OUTPUT_DIR}/glue_submission/"
fi
