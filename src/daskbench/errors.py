"""One exception hierarchy for everything daskbench reports to a user.

Every error a user can cause by what they typed or wrote in a config derives
from :class:`DaskbenchError`; the CLI prints its message (no traceback) and
exits with status 2. Messages name the bad key or token and say how to fix it.
"""

from __future__ import annotations


class DaskbenchError(Exception):
    """Base class of all errors daskbench raises on purpose."""

    exit_code = 2


class ConfigError(DaskbenchError):
    """A config key is unknown, misspelled or has a bad value."""


class ExperimentNotFound(ConfigError):
    """`+experiment=NAME` names no config in the search path."""


class SweepError(ConfigError):
    """A sweep expression or sweep setting cannot be expanded."""


class TrialImportError(ConfigError):
    """`trial._target_` cannot be imported."""


class ResultsError(DaskbenchError):
    """The results folder cannot be read or written."""


class ClusterError(DaskbenchError):
    """The Dask cluster cannot be created, reached, or was lost."""

    exit_code = 3


class ObjectiveMissing(SweepError):
    """The first results of a search lack its objective: a config mistake found only
    once trials ran. The run puts its results folder back as it found it."""
