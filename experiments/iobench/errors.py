"""iobench's own error type, shared by the workspace and the orchestration."""

from __future__ import annotations


class IOBenchError(RuntimeError):
    """An iobench run that could not be carried out (no worker, lost agents, ...)."""
