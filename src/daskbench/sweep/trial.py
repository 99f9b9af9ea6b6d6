"""One unit of work: a trial's id, the values of its swept keys, its seed.

A named tuple: the sweep makes one per trial and the driver sends chunks of them
to workers as they are, so it stays cheap to build and to pickle, and this module
imports nothing (a worker unpickling a chunk imports it).
"""

from __future__ import annotations

from typing import Any, Dict, NamedTuple, Optional, Tuple


class Trial(NamedTuple):
    """One unit of work: its id, the values of its swept keys, its seed."""

    trial_id: str
    params: Dict[str, Any]
    groups: Tuple[Tuple[str, str], ...]  # the swept config-group choices, sorted
    seed: Optional[int]
    replicate: int

    def columns(self) -> Dict[str, Any]:
        """The swept values as table columns, named exactly as the keys."""
        cols = dict(self.groups)
        cols.update(self.params)
        return cols
