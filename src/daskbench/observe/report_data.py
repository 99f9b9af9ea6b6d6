"""What the report reads of a results folder: the columns it shows, and a bounded number of rows.

A ``trials`` table of up to ``max_rows`` rows is read whole, without the columns no
report shows (tracebacks, seeds, timestamps, code versions). A bigger one, ten million
trials say, is never read whole: it is scanned batch by batch with pyarrow, and the
frame the report draws from holds

- every row that is not ``ok`` (up to ``max_rows``), for the failures and their errors;
- the ``slowest`` slowest trials of the whole table;
- a uniform random sample of the ``ok`` rows (seeded, so the same table gives the
  same report), about ``max_rows`` of them, for the plots;

while what the report counts is counted over every row and kept in
``df.attrs["daskbench_whole"]``: the rows by status, their total, how many of them
are in the frame, and each swept key described over all its values.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence

import numpy as np

from ..results import row as trow
from ..results.dataset import Dataset

if TYPE_CHECKING:
    import pandas as pd

#: a bigger table is sampled for the plots (counts stay over every row)
MAX_ROWS = 250_000
#: the row's own columns a report shows; the others (traceback, seed, ...) are not read
SHOWN = ("trial_id", "replicate", "status", "error", "worker", "duration_s")
MAX_LISTED = 10  # a key with more values than this is described by its range (as the report does)
MAX_DISTINCT = 1_000_000  # distinct values of a key counted exactly up to this many, then "more than"


def load(
    root: Path, keys: Sequence[str] = (), slowest: int = 10, max_rows: int = MAX_ROWS, seed: int = 0
) -> pd.DataFrame:
    """The report's frame of ``root/trials`` (see the module); ``keys``: the swept keys
    to describe over every row when the table is sampled."""
    trials = Dataset(root / "trials", writer=False)
    schema = trials.schema()
    if schema is None:
        import pandas as pd

        return pd.DataFrame()
    columns = [c for c in schema.names if c in SHOWN or c not in trow.RESERVED]
    total = sum(_rows(p) for p in trials.parts())
    if total <= max_rows:
        return trials.read(columns=columns, schema=schema).to_pandas()
    keys = [k for k in keys if k in schema.names] or [c for c in schema.names if c.startswith("trial.")]
    return _sampled(trials, columns, list(dict.fromkeys(keys)), total, slowest, max_rows, seed)


def _rows(part: Path) -> int:
    import pyarrow.parquet as pq

    return int(pq.read_metadata(part).num_rows)


def _sampled(
    trials: Dataset, columns: List[str], keys: List[str], total: int, slowest: int, max_rows: int, seed: int
) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.compute as pc

    rng = np.random.default_rng(seed)
    keep: List[pa.Table] = []  # sampled ok rows and the rows that are not ok
    bad = 0
    slow: Optional[pa.Table] = None
    status: Dict[str, int] = {}
    stats = {k: _KeyStats() for k in keys}
    for batch in trials.batches(columns):
        t = pa.Table.from_batches([batch])
        for v in pc.value_counts(t["status"]).to_pylist():
            status[str(v["values"])] = status.get(str(v["values"]), 0) + int(v["counts"])
        for k in keys:
            stats[k].add(t[k])
        ok = pc.fill_null(pc.equal(t["status"], "ok"), False).to_numpy(zero_copy_only=False)
        take = ok & (rng.random(t.num_rows) < max_rows / total)
        if bad < max_rows:
            take |= ~ok
            bad += int((~ok).sum())
        keep.append(t.filter(pa.array(take)))
        if slowest > 0 and "duration_s" in t.column_names:
            cand = t if slow is None else pa.concat_tables([slow, t])
            slow = pc.take(cand, pc.select_k_unstable(cand, slowest, [("duration_s", "descending")]))
    frame = pa.concat_tables(keep + ([slow] if slow is not None else []), promote_options="permissive")
    df = frame.to_pandas().drop_duplicates(subset=["trial_id"], ignore_index=True)
    df.attrs["daskbench_whole"] = {
        "rows": total,
        "in_frame": len(df),
        "status": status,
        "describe": {k: s.describe() for k, s in stats.items()},
    }
    return df


class _KeyStats:
    """One swept key over every row: its distinct values, made distinct again as they
    grow, up to ``MAX_DISTINCT``, and, for numbers, its range.

    A number key's values are kept as a sorted NumPy array and merged by sorting:
    Arrow's ``unique`` builds a hash table that cost ~240 MiB for 2·10^6 distinct
    integers (a 10^7-trial ``range`` axis reached that before it passed
    ``MAX_DISTINCT``), a sort ~3 times the values' own 8 bytes each."""

    def __init__(self) -> None:
        self.parts: List[Any] = []
        self.size = 0
        self.merged = 0  # distinct values at the last merge
        self.many = False  # more than MAX_DISTINCT distinct values: only the range is kept
        self.numeric = False
        self.lo: Any = None
        self.hi: Any = None

    def add(self, column: Any) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        column = column.combine_chunks()
        self.numeric = pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
        if self.numeric:
            mm = pc.min_max(column)
            lo, hi = mm["min"].as_py(), mm["max"].as_py()
            if lo is not None:
                self.lo = lo if self.lo is None else min(self.lo, lo)
                self.hi = hi if self.hi is None else max(self.hi, hi)
        if self.many:
            return
        u = np.unique(column.drop_null().to_numpy()) if self.numeric else pc.unique(column).drop_null()
        self.parts.append(u)
        self.size += len(u)
        if len(self.parts) > 64 or self.size > max(2 * self.merged, 100_000):
            merged = self._distinct()
            self.parts, self.size, self.merged = [merged], len(merged), len(merged)
            if self.size > MAX_DISTINCT:
                self.many, self.parts = True, []

    def _distinct(self) -> Any:
        import pyarrow as pa
        import pyarrow.compute as pc

        if self.numeric:
            return np.unique(np.concatenate(self.parts))
        return pc.unique(pa.chunked_array(self.parts).combine_chunks())

    def describe(self) -> str:
        if self.many:
            span = f" in [{self.lo:.4g}, {self.hi:.4g}]" if self.lo is not None else ""
            return f"more than {MAX_DISTINCT:,} values{span}"
        if not self.parts:
            return ""
        values = self._distinct()
        if self.numeric and len(values) > MAX_LISTED:  # as the report describes a continuous key
            return f"{len(values)} values in [{self.lo:.4g}, {self.hi:.4g}]"
        listed = values.tolist() if self.numeric else values.to_pylist()
        try:
            listed = sorted(listed)
        except TypeError:
            pass
        return ", ".join(str(v) for v in listed)
