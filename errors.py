"""Exceptions that end a run with one clear line instead of a traceback (see ``cli.run``)."""


class UsageError(Exception):
    """Bad input from the user (a flag, a data file, a checkpoint): one line on stderr, exit 2."""


class TrainingDiverged(Exception):
    """The loss became NaN/Inf; the last good checkpoint is kept. One line on stderr, exit 1."""
