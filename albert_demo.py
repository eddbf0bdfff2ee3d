r"""The demo job: pretrain a small ALBERT on the embedded corpus and measure what it buys.

    python albert_demo.py                      # every step (README: time per part)
    python albert_demo.py --steps=curve,report --run_dir=runs/20261123-170000

Steps: spm (SentencePiece vocabulary), data (pretraining TFRecords), pretrain (LAMB, with
checkpoints), tfm_check (the same pretraining with tf-models-official's ALBERT), eval
(held-out masked-LM and sentence-order accuracy, pretrained and at initialisation;
fill-the-mask examples), export (original-format checkpoint and SavedModel, reloaded and
compared), finetune (run_classifier on the embedded docstring_source task, exported for
serving), curve (label-efficiency curve on the embedded word_order task: pretrained against
initial weights, several label budgets and seeds, and a bag-of-words baseline), report
(runs/<timestamp>/report.md, metrics.json, loss_curves.png).

A run lives in runs/<timestamp>/. Running the command again continues the newest run
started with the same settings, skipping its finished steps (each writes
<step>/manifest.json when done); --fresh starts a new run, --redo=STEP runs a step again.
See albert_tf/demo/ for what each step does, and the report for the command line of
each tool it used.
"""
import logging as pylogging
import os
import sys

# TensorFlow's C++ start-up lines (CPU features, "failed call to cuInit" without a GPU) are
# noise here; --verbose shows them.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2" if "--verbose" in sys.argv else "3")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402

from albert_tf import files  # noqa: E402
from albert_tf import demo  # noqa: E402
from albert_tf.demo import task_data  # noqa: E402
from albert_tf.errors import UserError  # noqa: E402

flags.DEFINE_list("steps", list(demo.STEPS),
                  f"Steps to run, in this order: {','.join(demo.STEPS)}.")
flags.DEFINE_list("redo", [], "Steps to run again even if they finished before.")
flags.DEFINE_string("run_dir", None,
                    "The run folder (default: the newest folder under --runs_root started "
                    "with the same settings, else a new runs/<timestamp>).")
flags.DEFINE_string("runs_root", "runs", "Where run folders are created.")
flags.DEFINE_bool("fresh", False, "Start a new run folder even if one can be continued.")
flags.DEFINE_enum("preset", "full", ["full", "quick"],
                  "full: the README's run; quick: a tiny model on a slice of the data (about "
                  "4 minutes on 2 cores, to try the steps).")
flags.DEFINE_bool("tfm_check", True,
                  "Pretrain tf-models-official's ALBERT with the same recipe and plot both "
                  "masked-LM curves (the tfm_check step; --notfm_check skips it, saving about "
                  "1.6 times as long as pretraining takes, 3.5 minutes on 2 cores).")
flags.DEFINE_list("set", [],
                  "Change settings of the preset, name=value[,name=value...] (the fields of "
                  "albert_tf.demo.JobSettings), e.g. num_train_steps=800,curve_steps=300 "
                  "for a longer run; tuples take values separated by ':' "
                  "(curve_budgets=32:512:0). Runs with other settings get their own folder.")
flags.DEFINE_bool("tfm_bias_correction", False,
                  "Run tf-models-official's LAMB as shipped, with Adam's bias correction, "
                  "which the original's LAMB lacks (by default the check updates with the "
                  "raw moments, as the original).")
flags.DEFINE_integer("num_workers", 0,
                     "Processes for create_pretraining_data (0: all cores).")
flags.DEFINE_bool("verbose", False, "Show the tools' own log lines too.")
flags.DEFINE_string("build_task_data", None,
                    "Only rebuild the embedded tasks (docstring_source, word_order) from the "
                    "corpus into this folder (data/tasks: one sub-folder per task), and exit.")


class _ProgressLinesOnly(pylogging.Filter):
    """Passes warnings, errors and the training loops' progress lines (step, loss, ETA)."""

    def filter(self, record):
        return record.levelno >= pylogging.WARNING or (
            record.module in ("training", "summaries") and str(record.msg).startswith("step"))


def _quiet_logs():
    """Only progress lines and problems from the tools; the job prints its own steps."""
    import tensorflow as tf

    tf.get_logger().setLevel(pylogging.WARNING)
    logging.set_verbosity(logging.INFO)
    handler = logging.get_absl_handler()
    handler.addFilter(_ProgressLinesOnly())
    handler.setFormatter(pylogging.Formatter("    %(message)s"))


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    FLAGS = flags.FLAGS
    if FLAGS.verbose:
        logging.set_verbosity(logging.INFO)
    else:
        _quiet_logs()
    if FLAGS.build_task_data:
        sizes = task_data.build_all(FLAGS.build_task_data)
        print(f"Wrote {FLAGS.build_task_data}: {sizes}")
        return
    settings = (demo.JobSettings.quick() if FLAGS.preset == "quick"
                else demo.JobSettings.full())
    settings.num_workers = FLAGS.num_workers
    settings.tfm_check = FLAGS.tfm_check
    settings.tfm_bias_correction = FLAGS.tfm_bias_correction
    try:
        settings = settings.with_overrides(FLAGS.set)
        # run_job checks the settings and step names before it makes any folder.
        run_dir = FLAGS.run_dir
        if run_dir is None and not FLAGS.fresh:
            run_dir = demo.find_run_dir(FLAGS.runs_root, settings)
            if run_dir is not None:
                print(f"Continuing {run_dir} (same settings; --fresh starts a new run).")
        if run_dir is None:
            run_dir = demo.new_run_dir(FLAGS.runs_root)
        demo.run_job(settings, run_dir, steps=FLAGS.steps, redo=FLAGS.redo)
    except (UserError, RuntimeError, ValueError, OSError) as error:
        print(f"ERROR: {error}", file=sys.stderr)
        sys.exit(1)
    report = files.join(run_dir, "report.md")
    if "report" in FLAGS.steps and files.exists(report):
        print(f"Report: {report}")
    # Pretraining (albert_tf and tf-models-official) and fine-tuning scalars.
    print(f"TensorBoard: tensorboard --logdir {run_dir}")


if __name__ == "__main__":
    app.run(main)
