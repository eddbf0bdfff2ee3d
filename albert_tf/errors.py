"""User errors: the base class of every error caused by what a user gave (a file, a flag, a
config, a checkpoint), which the entry points print as one line with exit status 1.

Each module keeps its own subclass where it names a kind of input (`SettingsError`,
`InputDataError`, `TaskDataError`, `CheckpointMismatchError`, ...); all of them derive from
`UserError`, so `albert_tf.cli` needs no list of them. Messages name the file, line, flag or
variable, say what was expected and what was found.
"""


class UserError(Exception):
    """An error in the user's input; its message is meant to be read as it is, in one line."""
