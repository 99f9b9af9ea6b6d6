"""The results store: the one place that touches Parquet (through :mod:`.dataset`).

Layout of an experiment's folder::

    results/<name>/trials/part-*.parquet   one row per trial
    results/<name>/steps/part-*.parquet    per-step tables, keyed by trial_id
    results/<name>/manifest.json           config, versions, one entry per run

Every file is written under a hidden temporary name, synced, and renamed into
place, so a reader never sees half a file; a write that fails (disk full, a
folder turned read-only) removes its temporary file and raises
:class:`ResultsError` naming the folder and the cause, and what was written
before stays readable and resumable. Rewrites build a whole new folder and swap
it in (:mod:`.dataset`). A trial id is never present twice: a re-run row replaces
the old one in the same swap. The manifest has its own module, :mod:`.manifest`.
"""

from __future__ import annotations

import contextlib
import errno
import time
import uuid
from pathlib import Path
from typing import AbstractSet, Any, Dict, Iterable, Iterator, List, Optional, Set, Tuple

import pyarrow as pa

from ..errors import ResultsError
from . import manifest
from . import row as trow
from .columns import concat, repeated_string, rows_to_table
from .dataset import Dataset, conform
from .files import CAUSES, write_error
from .index import TrialIndex

CODE = trow.CODE_VERSION

__all__ = ["ResultStore", "rows_to_table"]


class ResultStore:
    """Buffers results and writes them in batches; knows what is already done.

    Opening a store writes nothing: the folder is created by the first write,
    so a run that stops at a config or cluster mistake leaves no trace. After a
    write has failed the store is *broken*: it has raised :class:`ResultsError`
    once, and later flushes and closes write nothing more.
    """

    def __init__(
        self,
        root: Path,
        flush_rows: int = 10_000,
        flush_seconds: float = 10.0,
        compact_parts: int = 64,
        first_columns: Iterable[str] = (),
        code_version: Optional[str] = None,
    ):
        self.root = Path(root)
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.compact_parts = compact_parts
        self.first_columns = list(first_columns)
        self._parts: List[pa.Table] = []  # buffered rows of the trials table, one table per chunk
        self._n = 0  # rows in them
        self._tables: Dict[str, List[pa.Table]] = {}
        self._last_flush = time.monotonic()
        self._superseded: Set[str] = set()  # ids of non-ok rows on disk, and of ok rows to redo
        self._redo: Set[str] = set()  # ok rows on disk made by other code, to be replaced by this run's
        self._has_code = False  # the rows on disk record the code that made them
        self.code_version = code_version  # stamped on every row this store writes
        self.broken: Optional[ResultsError] = None
        self.check_writable()
        with self._writing():  # tidying what an interrupted run left is a write too
            self.trials = Dataset(self.root / "trials")
            self._extra = {p.name: Dataset(p) for p in self._subdirs() if p.name != "trials"}

    def _subdirs(self) -> List[Path]:
        if not self.root.is_dir():
            return []
        return [p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name != "report"]

    def check_writable(self) -> None:
        """Fail before any trial runs if the folder cannot be written, creating nothing:
        the probe goes into the folder, or into its nearest existing parent."""
        where = self.root
        while not where.exists() and not where.is_symlink() and where != where.parent:
            where = where.parent
        try:
            if not where.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, f"{where} is a file, not a folder")
            probe = where / f".daskbench-write-test-{uuid.uuid4().hex[:8]}"
            probe.mkdir()
            probe.rmdir()
        except OSError as exc:
            raise ResultsError(
                f"cannot write results to {self.root}: {exc.strerror or exc}; "
                "choose another folder with results.dir=PATH"
            ) from None

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """Turn a failed write into one ResultsError and mark the store broken."""
        if self.broken is not None:
            raise self.broken
        try:
            yield
        except OSError as exc:  # pyarrow's IO errors are OSErrors too
            self.broken = write_error(self.root, exc)
            raise self.broken from None
        except pa.ArrowException as exc:
            if not any(text in str(exc) for text in CAUSES.values()):
                raise  # not the file system: a bug to see in full
            self.broken = write_error(self.root, exc)
            raise self.broken from None

    # -- resume ---------------------------------------------------------------
    def open_for_resume(self, name: Optional[str] = None) -> TrialIndex:
        """Ids of trials already ``ok`` (a compact :class:`~.index.TrialIndex`: a
        million ids cost 8 MB); checks that the folder holds this experiment's
        results (``name``) and tidies what an interrupted run left. Streams the
        table: it is never read whole."""
        self.check_manifest(name)
        schema = self.trials.schema()
        if schema is None and not self._extra:  # a fresh folder: nothing to resume or tidy
            return TrialIndex.from_arrow(())
        import pyarrow.compute as pc  # these two only here: a fresh folder needs neither (~40 ms),
        import pyarrow.dataset as ds  # and pyarrow.dataset imports pandas (~0.4 s), which a run need not

        if schema is not None and not {"trial_id", "status"} <= set(schema.names):
            raise ResultsError(
                f"{self.trials.path} holds Parquet data daskbench did not write (no trial_id and status "
                "columns); set results.dir=PATH to a folder of its own"
            )
        is_ok = ds.field("status") == "ok"
        ok = TrialIndex.from_arrow(b.column(0) for b in self.trials.batches(["trial_id"], is_ok))
        self._has_code = schema is not None and CODE in schema.names  # older folders recorded none
        for b in self.trials.batches(["trial_id"], ~is_ok):
            self._superseded.update(b.column(0).to_pylist())
        for dset in self._extra.values():
            orphans: Set[str] = set()  # per-step rows written just before a run died
            for b in dset.batches(["trial_id"]) if "trial_id" in (dset.schema() or pa.schema([])).names else ():
                ids = pc.unique(b.column(0)).drop_null()
                orphans.update(ids.filter(pa.array(~ok.contains(ids))).to_pylist())
            if orphans:
                with self._writing():
                    dset.rewrite(drop_ids=orphans)
        return ok

    def ok_rows_by_other_code(self, current: str) -> Tuple[AbstractSet[str], Dict[str, int]]:
        """After :meth:`open_for_resume`: the ids of the ok rows made by code other than
        ``current``, and their number per code version. Rows of unknown code are left out."""
        if not self._has_code:
            return set(), {}
        import pyarrow.compute as pc
        import pyarrow.dataset as ds

        code = ds.field(CODE)
        other = (ds.field("status") == "ok") & code.is_valid() & (code != current)
        counts: Dict[str, int] = {}
        ids: List[pa.Array] = []
        for b in self.trials.batches(["trial_id", CODE], other):
            ids.append(b.column(0))
            for v in pc.value_counts(b.column(1)).to_pylist():
                counts[str(v["values"])] = counts.get(str(v["values"]), 0) + int(v["counts"])
        return TrialIndex.from_arrow(ids), counts

    def redo(self, ids: AbstractSet[str]) -> None:
        """Let this run's rows for these ok trials replace theirs (and their per-step rows)."""
        self._redo.update(ids)
        self._superseded.update(ids)

    def check_manifest(self, name: Optional[str]) -> Dict[str, Any]:
        """The folder's manifest.json ({} if none); a ResultsError if it is not one
        daskbench wrote for experiment ``name``."""
        return manifest.check(self.root, name)

    # -- writing --------------------------------------------------------------
    def add(self, rows: List[Dict[str, Any]], tables: Dict[str, pa.Table]) -> None:
        """Buffer rows (dicts, see :mod:`.row`) and per-step tables."""
        self.add_table(rows_to_table(rows) if rows else None, tables)

    def add_table(self, table: Optional[pa.Table], tables: Dict[str, pa.Table]) -> None:
        """Buffer a chunk's rows as one Arrow table (:func:`.columns.rows_to_table`) and its
        per-step tables: no work per row; they are joined when written."""
        if table is not None and table.num_rows:
            self._parts.append(table)
            self._n += table.num_rows
        for name, t in tables.items():
            self._tables.setdefault(name, []).append(t)
        self.maybe_flush()

    def maybe_flush(self) -> None:
        if self._n and (self._n >= self.flush_rows or time.monotonic() - self._last_flush >= self.flush_seconds):
            self.flush()

    def flush(self) -> None:
        """Write buffered rows: per-step tables first, then the trials that own them."""
        self._last_flush = time.monotonic()
        if not self._n:
            return
        with self._writing():
            self._flush()

    def _flush(self) -> None:
        table = self._table()
        ids = table["trial_id"]
        if self._redo:  # a redo cancelled before it ran leaves the old ok row (and its steps) as they were
            import pyarrow.compute as pc  # only here: a fresh run's flushes need none (~40 ms to import)

            redo = pa.array(sorted(self._redo), pa.string())
            cancelled = pc.and_(pc.equal(table["status"], "cancelled"), pc.is_in(ids, value_set=redo))
            table = table.filter(pc.invert(cancelled))
            ids = table["trial_id"]
        redone = self._redo & _present(ids, self._redo)
        for name in set(self._tables) | (set(self._extra) if redone else set()):
            dset = self._extra.get(name) or self._extra.setdefault(name, Dataset(self.root / name))
            parts = self._tables.get(name, [])
            new = None
            if parts:
                schema = pa.unify_schemas([t.schema for t in parts], promote_options="permissive")
                new = pa.concat_tables([conform(t, schema) for t in parts])
            if redone and dset.parts():
                # steps first, trials below: a run that dies in between leaves the old ok row
                # (beside the new steps), still of other code, so the next rerun=changed redoes it
                dset.rewrite(drop_ids=redone, extra=new)
            elif new is not None:
                dset.append(new)
        self._tables = {}
        self._parts, self._n = [], 0
        if not table.num_rows:
            return
        replaced = _present(ids, self._superseded)
        if replaced:
            # a re-run replaces its old row in the same folder swap: never twice
            self.trials.rewrite(drop_ids=replaced, extra=table)
            self._superseded -= replaced
            self._redo -= replaced
        else:
            self.trials.append(table)

    def _table(self) -> pa.Table:
        """The buffered rows as one table, each stamped with this store's code version."""
        table = concat(self._parts, self.first_columns)
        if self.code_version is not None:
            code = repeated_string(self.code_version, table.num_rows)
            if CODE in table.column_names:
                table = table.set_column(table.column_names.index(CODE), CODE, code)
            else:
                table = concat([table.append_column(CODE, code)], self.first_columns)  # into its place
        return table

    def close(self) -> None:
        """Flush, then compact folders that grew many small parts. A broken store
        has reported its failure already and writes nothing more."""
        if self.broken is not None:
            return
        self.flush()
        with self._writing():
            for dset in [self.trials, *self._extra.values()]:
                if len(dset.parts()) > self.compact_parts:
                    dset.rewrite()

    # -- manifest -------------------------------------------------------------
    def record_run(self, run: Dict[str, Any], config_yaml: str, name: str) -> None:
        """Add (or update, by ``run['id']``) this run's entry in manifest.json."""
        with self._writing():
            manifest.record_run(self.root, run, config_yaml, name)


def _present(ids: pa.ChunkedArray, among: Set[str]) -> Set[str]:
    """Those of ``among`` that are in ``ids`` (an empty ``among`` costs nothing)."""
    if not among:
        return set()
    import pyarrow.compute as pc

    mask = pc.is_in(ids, value_set=pa.array(list(among), pa.string()))
    return set(pc.filter(ids, mask).to_pylist())
