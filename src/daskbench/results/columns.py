"""Rows of the ``trials`` table as Arrow columns: built once per chunk, joined without touching rows.

A worker turns its chunk's rows (dicts built by :mod:`.row`) into one Arrow table
with :func:`rows_to_table`; the store joins many such tables with :func:`concat`.
The two together give exactly the table :func:`rows_to_table` would give for all
the rows at once: the column order :func:`.row.order` declares (columns met in
order across the tables), the declared types of daskbench's own columns, and for
a swept key or a metric the type Arrow infers from all its values (``1`` in one
chunk and ``2.5`` in another make a ``float64`` column; a column that mixes
types it cannot hold together becomes text). Only a column whose parts disagree
in some other way is rebuilt from its values, as the row path would build it.
"""

from __future__ import annotations

import struct
from typing import Any, Dict, Iterable, List, Optional, Sequence

import pyarrow as pa

from . import row as trow

_NULL = pa.null()
_NUMBERS = frozenset({pa.int64(), pa.float64()})


def column(values: List[Any], typ: Optional[pa.DataType] = None) -> pa.Array:
    """Values of one column as an Arrow array of type ``typ`` (inferred when None)."""
    try:
        return pa.array(values, type=typ)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
        # mixed types in one column (e.g. choice(a,1)): keep them readable as text
        return pa.array([None if v is None else str(v) for v in values], type=pa.string())


def rows_to_table(rows: List[Dict[str, Any]], first: Iterable[str] = ()) -> pa.Table:
    """Rows (dicts) -> Arrow table with the column order and types :mod:`.row` declares.
    (``started_at`` may be given as integer microseconds since the epoch, as workers do.)"""
    if rows and _same_keys(rows):  # a chunk's rows usually are: transposed in one pass
        names = list(rows[0])
        values = dict(zip(names, zip(*[r.values() for r in rows])))
        ordered = trow.order(names, first)
        n = len(rows)
        arrays = [column(list(values[k]) if k in values else [None] * n, trow.arrow_type(k)) for k in ordered]
        return pa.table(arrays, names=ordered)
    keys: Dict[str, None] = {}
    for r in rows:
        keys.update(dict.fromkeys(r))
    ordered = trow.order(keys, first)
    arrays = [column([r.get(k) for r in rows], trow.arrow_type(k)) for k in ordered]
    return pa.table(arrays, names=ordered)


def _same_keys(rows: List[Dict[str, Any]]) -> bool:
    """Whether every row holds the same keys in the same order."""
    first = list(rows[0])
    n = len(first)
    return all(len(r) == n and list(r) == first for r in rows)


def concat(tables: Sequence[pa.Table], first: Iterable[str] = ()) -> pa.Table:
    """The tables' rows as one table: what :func:`rows_to_table` gives for all their rows."""
    first = list(first)
    if len(tables) == 1:  # the common case: one chunk's table, already built in order
        ordered = trow.order(tables[0].column_names, first)
        if ordered == tables[0].column_names:
            return tables[0]
        if set(ordered) <= set(tables[0].column_names):
            return tables[0].select(ordered)
        # else a column of `first` the rows lack (cancelled rows carry no swept keys): built below
    elif _one_schema(tables):  # chunks that went as expected: joined by Arrow, no Python per column
        ordered = trow.order(tables[0].column_names, first)
        if set(ordered) == set(tables[0].column_names):
            return pa.concat_tables(tables).select(ordered)
    names: Dict[str, None] = {}
    for t in tables:
        names.update(dict.fromkeys(t.column_names))
    ordered = trow.order(names, first)
    lengths = [t.num_rows for t in tables]
    # each table's names once: Table.column_names builds a new list on every call
    has = [set(t.column_names) for t in tables]
    cols = []
    for name in ordered:
        parts = [t.column(name) if name in h else None for t, h in zip(tables, has)]
        cols.append(_join(parts, lengths, trow.arrow_type(name)))
    return pa.table(cols, names=ordered)


def _one_schema(tables: Sequence[pa.Table]) -> bool:
    """Whether the tables share one schema whose every column already has the type the
    general path would give it (its own, no null column to type, no type to convert)."""
    schema = tables[0].schema
    if not all(t.schema.equals(schema) for t in tables[1:]):
        return False
    for f in schema:
        typ = trow.arrow_type(f.name)
        if f.type == _NULL or (typ is not None and f.type != typ):
            return False
    return True


def _join(parts: List[Optional[pa.ChunkedArray]], lengths: List[int], typ: Optional[pa.DataType]) -> pa.ChunkedArray:
    """One column from its parts (None: the part's rows lack it)."""
    types = {p.type for p in parts if p is not None and p.type != _NULL}
    if typ is not None:
        target: Optional[pa.DataType] = typ if types <= {typ} else None
    elif len(types) <= 1:
        target = next(iter(types), _NULL)
    elif types == _NUMBERS:
        target = pa.float64()  # ints and floats: Arrow infers float64 for them together
    else:
        target = None
    if target is not None:
        try:
            chunks: List[pa.Array] = []
            for p, n in zip(parts, lengths):
                chunks += [pa.nulls(n, target)] if p is None else _cast(p, target).chunks
            return pa.chunked_array(chunks, type=target)
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # e.g. an int64 past float64's exact range
            pass
    values: List[Any] = []
    for p, n in zip(parts, lengths):
        values.extend([None] * n if p is None else p.to_pylist())
    return pa.chunked_array([column(values, typ)])


def _cast(part: pa.ChunkedArray, typ: pa.DataType) -> pa.ChunkedArray:
    return part if part.type == typ else part.cast(typ)


def repeated_string(value: str, n: int) -> pa.Array:
    """``n`` times the string ``value``, made from buffers: ``pa.scalar`` and ``pa.array``
    of Python values import pandas (~0.4 s, in pyarrow's check for pandas objects),
    which a run that only writes Arrow tables the workers made never needs. Made once
    per value and sliced (no copy) for every flush after: the code version of each row
    a store writes."""
    have = _REPEATED.get(value)
    if have is None or len(have) < n:
        data = value.encode()
        one = pa.StringArray.from_buffers(1, pa.py_buffer(struct.pack("=ii", 0, len(data))), pa.py_buffer(data))
        have = pa.repeat(one[0], max(n, 2 * len(have) if have is not None else n))
        _REPEATED.clear()  # one value kept: a run's code version
        _REPEATED[value] = have
    return have.slice(0, n)


_REPEATED: Dict[str, pa.Array] = {}
