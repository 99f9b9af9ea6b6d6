"""What a trial returned, as the ``trials`` table's metrics and per-step tables: split,
converted (numpy scalars to Python) and checked, or a ``TypeError`` that says what was
returned instead. Used by the worker's thread (:mod:`daskbench.runner.execute`)."""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any, Dict, Tuple

from ..results import row as trow

PLAIN = trow.PLAIN


def _is_table(obj: Any) -> bool:
    mod = type(obj).__module__
    return (mod.startswith("pandas") and type(obj).__name__ == "DataFrame") or (
        mod.startswith("pyarrow") and type(obj).__name__ == "Table"
    )


def _scalar(value: Any) -> Tuple[bool, Any]:
    if value is None or isinstance(value, (bool, str)):
        return True, value
    if isinstance(value, numbers.Number) and not isinstance(value, complex):
        if hasattr(value, "item"):
            value = value.item()  # numpy scalars -> Python
        return True, value
    if type(value).__module__ == "numpy" and getattr(value, "shape", None) == ():
        return True, value.item()
    return False, value


def _describe(obj: Any) -> str:
    text = repr(obj)
    return f"{type(obj).__name__} {text[:80]}{'...' if len(text) > 80 else ''}"


def normalise(result: Any) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Split a trial's return value into scalar metrics and tables, or raise
    ``TypeError`` saying what was returned instead."""
    if type(result) is not dict and _is_table(result):
        return {}, {"steps": result}
    if type(result) is not dict and not isinstance(result, Mapping):
        raise TypeError(
            f"trial returned {_describe(result)}; return a mapping of metric name to "
            "scalar (and optionally tables), or a table"
        )
    metrics: Dict[str, Any] = {}
    tables: Dict[str, Any] = {}
    for key, value in result.items():
        name = key if type(key) is str else str(key)
        if type(value) in PLAIN:  # the common case, per trial
            if name in trow.RESERVED:
                raise TypeError(f"metric {name!r} clashes with a column daskbench writes; rename it")
            metrics[name] = value
            continue
        if _is_table(value):
            if name in ("trials", "manifest") or not name.replace("_", "").isalnum():
                raise TypeError(f"table {name!r}: name tables with letters, digits and '_' (not 'trials')")
            tables[name] = value
            continue
        ok, value = _scalar(value)
        if not ok:
            raise TypeError(
                f"metric {name!r} is {_describe(value)}; metrics must be scalars "
                "(numbers, strings, booleans) and per-step data a DataFrame or Arrow table"
            )
        if name in trow.RESERVED:
            raise TypeError(f"metric {name!r} clashes with a column daskbench writes; rename it")
        metrics[name] = value
    return metrics, tables


def keyed(table: Any, trial_id: str) -> Any:
    """A table a trial returned, as Arrow, with its ``trial_id`` column first."""
    import pyarrow as pa  # only trials that return tables pay for it

    t = table if isinstance(table, pa.Table) else pa.Table.from_pandas(table, preserve_index=False)
    return t.add_column(0, "trial_id", pa.array([trial_id] * t.num_rows, pa.string()))
