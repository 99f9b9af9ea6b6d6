"""What a population's agents received this tick: an :class:`Inbox` per kind of message.

The order a receiver sees does not depend on the sharding: an inbox sorts by
(receiver, sender), stably, and every message from one sender comes from the one
shard that holds it, in the order its step sent them (:mod:`daskbench.sim.messages`).
Sums and counts (:meth:`Inbox.count`, :meth:`Inbox.sum`) need no order and skip the sort.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np

from .errors import SimulationError
from .messages import Batch, RowsOf


class Inbox:
    """Messages of one kind received by one population's agents on this shard, this tick.

    ``rows`` (on demand) are the receivers' row numbers in the population's arrays.
    Iterating fields (``inbox.src``, ``inbox["price"]``, ``inbox.rows``) gives
    messages sorted by (receiver, sender); ``count()`` and ``sum(field)`` give one
    value per agent of the population (``sum`` of floats sorts first, so rounding
    does not depend on the sharding). Messages sent without ``src`` (anonymous,
    half the bytes between shards) allow only ``count()`` and integer ``sum()``.

    ``row_of(dst, out=None)`` maps receiver ids to rows (``numpy.intp``, into ``out``
    when given): the rows of all batches go into one array, batch after batch, so a
    count over the messages of several senders is one ``bincount`` with no copy of
    the batches themselves (they are joined only when fields are read).
    """

    def __init__(
        self, batches: List[Batch], row_of: RowsOf, n: int, kind: str, key_rows: Optional[Tuple[int, RowsOf]] = None
    ):
        self._batches = batches
        self._row_of = row_of
        self._key_rows = key_rows  # (r, keys -> rows) for batches cut as keys rotated by r
        self.n = n
        self.kind = kind
        self._merged: Optional[Batch] = None
        self._rows: Optional[np.ndarray] = None  # in the batches' order until sorted
        self._sorted = False

    def __len__(self) -> int:
        return sum(len(b) for b in self._batches)

    def _unsorted_rows(self) -> np.ndarray:
        if self._rows is None:
            batches = self._batches
            if len(batches) > 1:
                Batch.check(batches, self.kind)
            if len(batches) == 1:
                self._rows = self._rows_of(batches[0])
            else:
                rows = np.empty(len(self), dtype=np.intp)
                at = 0
                for b in batches:
                    self._rows_of(b, rows[at : at + len(b)])
                    at += len(b)
                self._rows = rows
        return self._rows

    def _rows_of(self, batch: Batch, out: Optional[np.ndarray] = None) -> np.ndarray:
        keyed = self._key_rows
        if batch.rotated and keyed is not None and keyed[0] == batch.rotated:
            return keyed[1](batch.keys, out)  # no ids needed
        return self._row_of(batch.dst, out)

    def _batch(self) -> Batch:
        if self._merged is None:
            self._merged = (
                Batch.concat(self._batches, self.kind)
                if self._batches
                else Batch(np.empty(0, np.int64), np.empty(0, np.int64), {})
            )
        return self._merged

    def _sort(self) -> Batch:
        b = self._batch()
        if b.src is None and len(b):
            raise SimulationError(
                f"messages of kind {self.kind!r} were sent without src, so they have no order: use "
                "count() or sum() on them, or send them with src= to read them one by one"
            )
        rows = self._unsorted_rows()
        if not self._sorted and len(b):
            order = np.lexsort((b.src, b.dst))  # stable: ties keep the sender's order
            self._merged = b = b.take(order)
            self._rows = rows[order]
            self._sorted = True
        return b

    def count(self) -> np.ndarray:
        """Number of messages each agent received (one int per agent)."""
        return np.bincount(self._unsorted_rows(), minlength=self.n)

    def sum(self, field: str) -> np.ndarray:
        """Sum of ``field`` over the messages each agent received (one float per agent)."""
        b = self._batch()
        if field not in b.fields:
            raise SimulationError(self._no_field(field))
        values = b.fields[field]
        if values.dtype.kind in "iub":  # exact in any order
            return np.bincount(self._unsorted_rows(), weights=values, minlength=self.n)
        # floats: add in the (receiver, sender) order, so rounding is the same on any sharding
        b = self._sort()
        assert self._rows is not None  # set by _sort()
        return np.bincount(self._rows, weights=b.fields[field], minlength=self.n)

    @property
    def rows(self) -> np.ndarray:
        self._sort()
        assert self._rows is not None  # set by _sort()
        return self._rows

    @property
    def dst(self) -> np.ndarray:
        return self._sort().dst

    @property
    def src(self) -> np.ndarray:
        return self._sort().src

    def __getitem__(self, field: str) -> np.ndarray:
        b = self._sort()
        if field not in b.fields:
            raise SimulationError(self._no_field(field))
        return b.fields[field]

    def _no_field(self, field: str) -> str:
        have = sorted(self._batch().fields)
        return f"messages of kind {self.kind!r} have no field {field!r}; they carry {have or 'no fields'}"
