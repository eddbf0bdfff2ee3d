"""Fine-tuning tasks: readers, features, metrics and output files, one module per benchmark.

- `albert_tf.tasks.glue`: the GLUE tasks of the original run_classifier.py (and the AX
  diagnostic set, and a generic `tsv` task for one's own data).
- the SQuAD and RACE modules beside it, for run_squad.py and run_race.py.

Each benchmark's data code (readers, features) lives apart from its run: `glue_task`,
`race_task` and `squad_task` implement the `base.Task` interface, and `base.run` runs every
one of them on the loop of `albert_tf.finetuning`.
"""

from albert_tf.errors import UserError


class TaskDataError(UserError, ValueError):
    """A task's input files are missing or do not hold what the task expects.

    The message names the file, the line and the value, and says what was expected.
    """
