"""The demo job: a small ALBERT from raw text to a served model, on a CPU, in minutes.

On the embedded corpus (docstrings of the Python standard library and scikit-learn, see
data/README.md) the job runs every tool of the project, in order, and measures what
pretraining buys:

    spm        SentencePiece vocabulary with the original recipe           steps.py
    data       pretraining TFRecords, training and held-out                 steps.py
    pretrain   initial weights, then LAMB pretraining with checkpoints      steps.py
    tfm_check  the same pretraining with tf-models-official's ALBERT        tfm_check.py
    eval       held-out masked-LM / sentence-order accuracy, fill-the-mask  steps.py
    export     original-format checkpoint and SavedModel, reloaded, served  export_step.py
    finetune   run_classifier on docstring_source, exported for serving     finetune.py
    curve      label-efficiency curve (pretrained vs initial weights, seeds
               x label budgets) on word_order, bag-of-words baselines       label_efficiency.py
    report     report.md, metrics.json, loss_curves.png                     report.py

`runner.run_job` runs them in a run folder (`job.Job`) and writes each step's manifest
last, so a re-run skips finished steps; `task_data` builds the embedded tasks.
`albert_demo.py` at the repository root is the command line.
"""

from albert_tf.demo.job import DATA, ROOT, STEP_TITLES, STEPS, Job, JobSettings
from albert_tf.demo.runner import find_run_dir, new_run_dir, run_job

__all__ = ["DATA", "ROOT", "STEPS", "STEP_TITLES", "Job", "JobSettings", "find_run_dir",
           "new_run_dir", "run_job"]
