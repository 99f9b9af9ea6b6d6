"""One chunk's rows of the ``trials`` table, kept column by column as its trials end.

A worker that runs a chunk of short trials in its own thread appends each trial that
returned plain metrics (:meth:`ChunkRows.take`) straight to the chunk's columns: no dict
per trial, no transposing. A trial that ended any other way (it raised, returned a
table or a value to convert, was retried) comes as the row :mod:`.row` builds for it
(:meth:`ChunkRows.row`) and is taken apart into the same columns.

:meth:`ChunkRows.table` is exactly the table :func:`.columns.rows_to_table` makes of the
rows the row path builds for the same trials (each trial's row, then its swept values,
the hidden keys left out): the same columns in the same order, of the same types, with
the same values. The order is the row path's: ``trial_id``; the first trial's metrics;
the swept keys; the metrics first met in later trials; the tail. A metric named as a
swept key holds the swept values (the row path wrote them over it); one named as a
hidden key is left out (the row path popped it).
"""

from __future__ import annotations

from typing import Any, Collection, Dict, List, Optional

import numpy as np

from . import row as trow
from .columns import column

#: the tail fields a row of a trial that did not simply end ok brings, besides its times
_ENDED = ("status", "error", "failure_kind", "traceback", "attempts")


class ChunkRows:
    """The rows of a chunk's trials ``ids`` (with their ``seeds``, ``replicates`` and
    ``swept`` columns, hidden keys left out) run on ``worker``, given in order.
    ``clock0`` (``time.perf_counter``) and ``wall0_us`` (microseconds since the epoch)
    are one moment, from which each trial's start time is told by its clock reading."""

    def __init__(
        self,
        ids: List[str],
        seeds: List[Optional[int]],
        replicates: List[int],
        swept: Dict[str, List[Any]],
        hidden: Collection[str],
        worker: str,
        clock0: float,
        wall0_us: int,
    ) -> None:
        self.ids, self.seeds, self.replicates, self.swept = ids, seeds, replicates, swept
        self.hidden, self.worker = frozenset(hidden), worker
        self.clock0, self.wall0_us = clock0, wall0_us
        self.metrics: Dict[str, List[Any]] = {}  # name -> one value per trial so far (None: it had none)
        self.clocks: List[float] = []  # each trial's clock reading at its start
        self.durations: List[float] = []
        self.ended: Dict[int, Dict[str, Any]] = {}  # trial index -> its _ENDED fields (and last_step)
        self._first: Optional[List[str]] = None  # the first trial's metrics, when it came as a row

    def __len__(self) -> int:
        return len(self.durations)

    def take(self, metrics: Dict[str, Any], clock: float, duration: float) -> bool:
        """The next trial started at ``clock`` (``time.perf_counter``), ran ``duration`` s, and
        returned ``metrics`` in one run: appended and True when they are plain values
        (:data:`.row.PLAIN`) of metrics met before (those it lacks: None); else False, and
        nothing is kept (the trial comes as a row instead, :meth:`row`)."""
        cols, i = self.metrics, len(self.durations)
        for k, v in metrics.items():
            col = cols.get(k)
            if col is None or type(v) not in trow.PLAIN:
                self._undo(i)
                return False
            col.append(v)
        if len(metrics) != len(cols):
            for col in cols.values():
                if len(col) == i:  # a metric this trial did not return
                    col.append(None)
        self.clocks.append(clock)
        self.durations.append(duration)
        return True

    def _undo(self, i: int) -> None:
        for col in self.metrics.values():
            del col[i:]

    def row(self, row: trow.Row, clock: float) -> None:
        """The next trial, started at ``clock``, as the row the row path built for it (before
        its swept values)."""
        i = len(self.durations)
        cols = self.metrics
        mets = [k for k in row if k not in trow.RESERVED]
        if i == 0:
            self._first = mets
        for k in mets:
            col = cols.get(k)
            if col is None:
                cols[k] = col = [None] * i
            col.append(row[k])
        for col in cols.values():
            if len(col) == i:  # a metric this trial did not return
                col.append(None)
        self.clocks.append(clock)
        self.durations.append(row["duration_s"])
        if row["status"] != trow.Status.OK or row["attempts"] != 1:
            ended = {k: row[k] for k in _ENDED}
            if "last_step" in row:
                ended["last_step"] = row["last_step"]
            self.ended[i] = ended

    def cut_to_ran(self) -> None:
        """Keep the trials that ran only (a chunk that stopped at its time budget): the
        columns given for the rest are dropped."""
        n = len(self.durations)
        if n < len(self.ids):
            self.ids, self.seeds, self.replicates = self.ids[:n], self.seeds[:n], self.replicates[:n]
            self.swept = {k: col[:n] for k, col in self.swept.items()}

    def started_at(self, clock: float) -> int:
        """The wall-clock time of the clock reading ``clock``, in microseconds since the epoch."""
        return self.wall0_us + int((clock - self.clock0) * 1e6)

    def statuses(self) -> List[str]:
        """Each trial's status, in order."""
        out = [str(trow.Status.OK)] * len(self.durations)
        for i, e in self.ended.items():
            out[i] = str(e["status"])
        return out

    def table(self) -> Any:
        """The chunk's rows as one Arrow table (see the module's docstring)."""
        import pyarrow as pa

        n = len(self.ids)
        assert len(self.durations) == n, (len(self.durations), n)
        values: Dict[str, List[Any]] = {"trial_id": self.ids}
        first = [k for k in (self._first or []) if k not in self.hidden]
        for k in first:
            values[k] = self.metrics[k]
        values.update(self.swept)  # a metric named as a swept key: the swept values, where it was met
        for k, col in self.metrics.items():
            if k not in self.hidden:
                values.setdefault(k, col)
        values.update(seed=self.seeds, replicate=self.replicates)
        values.update(self._tail(n))
        ordered = trow.order(values)
        return pa.table([column(values[k], trow.arrow_type(k)) for k in ordered], names=ordered)

    def _tail(self, n: int) -> Dict[str, List[Any]]:
        """The tail's columns beyond seed and replicate, patched where a trial did not just end ok."""
        tail: Dict[str, List[Any]] = {"status": self.statuses()}
        for k in ("error", "failure_kind", "traceback"):
            tail[k] = [None] * n
        tail["attempts"] = [1] * n
        steps = [e for e in self.ended.values() if "last_step" in e]
        if steps:
            tail["last_step"] = [None] * n
        for i, e in self.ended.items():
            for k, v in e.items():
                if k != "status":
                    tail[k][i] = v
        # started_at() of every clock reading at once (numpy's float64 and int64 arithmetic: the same values)
        started = ((np.array(self.clocks, dtype=np.float64) - self.clock0) * 1e6).astype(np.int64) + self.wall0_us
        tail.update(worker=[self.worker] * n, started_at=started.tolist(), duration_s=self.durations)
        return tail
