"""Errors of the simulation core (no Dask here)."""

from __future__ import annotations

from ..errors import DaskbenchError


class SimulationError(DaskbenchError):
    """A model, its agents or the simulation settings are wrong; the message names what."""


class ShardLost(Exception):
    """A shard (or the worker holding it) went away; the coordinator restarts from a checkpoint.

    Not a :class:`DaskbenchError`: it is not the user's fault and never reaches them
    unless the restarts run out.
    """
