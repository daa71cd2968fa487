"""Exceptions that end a run with one clear line instead of a traceback (see ``cli.run``)."""


class UsageError(Exception):
    """Bad input from the user (a flag, a data file, a checkpoint): one line on stderr, exit 2."""


class TrainingDiverged(Exception):
    """The loss became NaN/Inf; the last good checkpoint is kept. One line on stderr, exit 1."""


class ProcessFailed(Exception):
    """A process the run depends on (e.g. a cell training side by side) ended without a result;
    the checkpoints written so far are kept. One line on stderr, exit 1."""
