"""The results store: the one place that touches Parquet.

Layout of an experiment's folder::

    results/<name>/trials/part-*.parquet   one row per trial
    results/<name>/steps/part-*.parquet    per-step tables, keyed by trial_id
    results/<name>/manifest.json           config, versions, one entry per run

Every file is written under a hidden temporary name, synced, and renamed into
place, so a reader never sees half a file; a write that fails (disk full, a
folder turned read-only) removes its temporary file and raises
:class:`ResultsError` naming the folder and the cause, and what was written
before stays readable and resumable. Rewrites (removing superseded rows, unifying
schemas, compacting many parts) build a whole new folder and swap it in; an
interrupted swap is finished or rolled back the next time the store opens.
A trial id is never present twice: a re-run row replaces the old one in the
same swap.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Set

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import ResultsError
from . import row as trow


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


_CAUSES = {errno.ENOSPC: "No space left on device", errno.EROFS: "Read-only file system",
           errno.EDQUOT: "Disk quota exceeded", errno.EACCES: "Permission denied"}
_FIXES = {
    errno.ENOSPC: "free space there or set results.dir=PATH",
    errno.EDQUOT: "free space there (disk quota) or set results.dir=PATH",
    errno.EROFS: "remount it read-write or set results.dir=PATH",
    errno.EACCES: "make it writable or set results.dir=PATH",
    errno.EPERM: "make it writable or set results.dir=PATH",
}


def write_error(folder: Path, exc: BaseException) -> ResultsError:
    """A write under ``folder`` failed: say where, why, and what to do."""
    code = getattr(exc, "errno", None)
    cause = getattr(exc, "strerror", None) or (str(exc).splitlines() or [type(exc).__name__])[0]
    if code not in _CAUSES:  # pyarrow re-raises OS errors as text: find the cause in it
        for c, text in _CAUSES.items():
            if text in str(exc):
                code, cause = c, text
    fix = _FIXES.get(code, "check the folder or set results.dir=PATH")
    return ResultsError(
        f"cannot write results to {folder}: {cause}; {fix}. What was written before is kept: "
        "run the same command again to resume"
    )


@contextlib.contextmanager
def _tmp_file(final: Path):
    """Open a hidden temporary file next to ``final``; on success sync and rename it
    into place, on any failure remove it, so no partial file is ever left."""
    tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    with _tmp_file(path) as f:
        f.write(data)


def _part_name() -> str:
    return f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"


def _read_schema(part: Path) -> pa.Schema:
    try:
        return pq.read_schema(part)
    except (pa.ArrowException, OSError) as exc:
        raise ResultsError(
            f"{part} is not a Parquet file daskbench can read ({str(exc).splitlines()[0]}); move it out of "
            "the results folder (or set results.dir=PATH to start a new one)"
        ) from None


def _column(values: List[Any], typ: Optional[pa.DataType] = None) -> pa.Array:
    try:
        return pa.array(values, type=typ)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
        # mixed types in one column (e.g. choice(a,1)): keep them readable as text
        return pa.array([None if v is None else str(v) for v in values], type=pa.string())


def rows_to_table(rows: List[Dict[str, Any]], first: Iterable[str] = ()) -> pa.Table:
    """Rows (dicts) -> Arrow table with the column order and types :mod:`.row` declares."""
    keys: Dict[str, None] = {}
    for r in rows:
        keys.update(dict.fromkeys(r))
    ordered = trow.order(keys, first)
    arrays = [_column([r.get(k) for r in rows], trow.arrow_type(k)) for k in ordered]
    return pa.table(arrays, names=ordered)


class Dataset:
    """One Parquet dataset folder (``trials``, ``steps``, ...) with atomic writes."""

    def __init__(self, path: Path, writer: bool = True):
        self.path = path
        self._new = path.with_name(f".{path.name}.new")
        self._old = path.with_name(f".{path.name}.old")
        if writer:  # readers never tidy: a sweep may be writing this folder right now
            self.recover()

    def recover(self) -> None:
        """Finish or roll back a folder swap that an earlier run did not complete."""
        if self.path.exists():
            for p in (self._new, self._old):
                if p.exists():
                    shutil.rmtree(p)
        elif self._new.exists():  # the new folder was complete: the swap had begun
            os.replace(self._new, self.path)
            shutil.rmtree(self._old, ignore_errors=True)
        elif self._old.exists():
            os.replace(self._old, self.path)
        for tmp in self.path.glob(".*.tmp") if self.path.exists() else ():
            tmp.unlink()  # a part that was being written when the run died

    def parts(self) -> List[Path]:
        return sorted(self.path.glob("part-*.parquet")) if self.path.exists() else []

    def schema(self) -> Optional[pa.Schema]:
        parts = self.parts()
        if not parts:
            return None
        try:
            return pa.unify_schemas([_read_schema(p) for p in parts], promote_options="permissive")
        except pa.ArrowException as exc:  # e.g. a column that is text in one part, a list in another
            raise ResultsError(
                f"the parts of {self.path} have clashing column types ({str(exc).splitlines()[0]}); "
                "move the folder away or set results.dir=PATH"
            ) from None

    def read(self, columns: Optional[List[str]] = None, schema: Optional[pa.Schema] = None) -> pa.Table:
        parts = self.parts()
        if not parts:
            return pa.table({})
        import pyarrow.dataset as ds  # lazily: it pulls in pandas, which a run rarely needs

        schema = schema or self.schema()
        cols = [c for c in columns if c in schema.names] if columns else None
        return ds.dataset([str(p) for p in parts], schema=schema, format="parquet").to_table(columns=cols)

    def append(self, table: pa.Table) -> None:
        """Add a part; if its columns or types differ, rewrite to one schema."""
        if table.num_rows == 0:
            return
        current = self.schema()
        if current is None:
            self._write_part(self.path, table)
            return
        merged = pa.unify_schemas([current, table.schema], promote_options="permissive")
        if merged.equals(current):
            self._write_part(self.path, _conform(table, current))
        else:
            self.rewrite(extra=table)

    def rewrite(self, drop_ids: Optional[Set[str]] = None, extra: Optional[pa.Table] = None) -> None:
        """Replace the folder with one part: old rows (minus ``drop_ids``) plus ``extra``.

        Streams batch by batch, so compacting a million rows never holds them all.
        """
        schemas = [sc for sc in (self.schema(), extra.schema if extra is not None else None) if sc is not None]
        if self._new.exists():
            shutil.rmtree(self._new)
        try:
            self._new.mkdir(parents=True)
            if schemas:
                self._write_merged(pa.unify_schemas(schemas, promote_options="permissive"), drop_ids, extra)
        except BaseException:
            # the old folder is untouched until the swap below: drop the half-built new one
            shutil.rmtree(self._new, ignore_errors=True)
            raise
        if self.path.exists():
            os.replace(self.path, self._old)
        os.replace(self._new, self.path)
        shutil.rmtree(self._old, ignore_errors=True)

    def _write_merged(self, schema: pa.Schema, drop_ids: Optional[Set[str]], extra: Optional[pa.Table]) -> None:
        drop = pa.array(sorted(drop_ids), pa.string()) if drop_ids else None
        rows = 0
        final = self._new / _part_name()
        with _tmp_file(final) as f, pq.ParquetWriter(f, schema) as writer:
            parts = self.parts()
            if parts:
                import pyarrow.dataset as ds

                dataset = ds.dataset([str(p) for p in parts], schema=schema, format="parquet")
                for batch in dataset.to_batches(batch_size=64_000):
                    t = pa.Table.from_batches([batch], schema=schema)
                    if drop is not None:
                        t = t.filter(pc.invert(pc.is_in(t["trial_id"], value_set=drop)))
                    if t.num_rows:
                        writer.write_table(t)
                        rows += t.num_rows
            if extra is not None and extra.num_rows:
                writer.write_table(_conform(extra, schema))
                rows += extra.num_rows
        if not rows:
            final.unlink()  # nothing left: an empty folder, not an empty part

    @staticmethod
    def _write_part(folder: Path, table: pa.Table) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        with _tmp_file(folder / _part_name()) as f:
            pq.write_table(table, f)


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Cast a table to ``schema``, adding missing columns as nulls."""
    cols = []
    for f in schema:
        if f.name in table.column_names:
            col = table[f.name]
            cols.append(col if col.type == f.type else col.cast(f.type))
        else:
            cols.append(pa.nulls(table.num_rows, f.type))
    return pa.table(cols, schema=schema)


class ResultStore:
    """Buffers results and writes them in batches; knows what is already done.

    Opening a store writes nothing: the folder is created by the first write,
    so a run that stops at a config or cluster mistake leaves no trace. After a
    write has failed the store is *broken*: it has raised :class:`ResultsError`
    once, and later flushes and closes write nothing more.
    """

    def __init__(self, root: Path, flush_rows: int = 10_000, flush_seconds: float = 10.0,
                 compact_parts: int = 64, first_columns: Iterable[str] = ()):
        self.root = Path(root)
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.compact_parts = compact_parts
        self.first_columns = list(first_columns)
        self._rows: List[Dict[str, Any]] = []
        self._tables: Dict[str, List[pa.Table]] = {}
        self._last_flush = time.monotonic()
        self._superseded: Set[str] = set()  # ids of non-ok rows on disk
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
    def _writing(self):
        """Turn a failed write into one ResultsError and mark the store broken."""
        if self.broken is not None:
            raise self.broken
        try:
            yield
        except OSError as exc:  # pyarrow's IO errors are OSErrors too
            self.broken = write_error(self.root, exc)
            raise self.broken from None
        except pa.ArrowException as exc:
            if not any(text in str(exc) for text in _CAUSES.values()):
                raise  # not the file system: a bug to see in full
            self.broken = write_error(self.root, exc)
            raise self.broken from None

    # -- resume ---------------------------------------------------------------
    def open_for_resume(self, name: Optional[str] = None) -> Set[str]:
        """Ids of trials already ``ok``; checks that the folder holds this
        experiment's results (``name``) and tidies what an interrupted run left."""
        self.check_manifest(name)
        has_parts = bool(self.trials.parts())
        table = self.trials.read(columns=["trial_id", "status"]) if has_parts else pa.table({})
        if has_parts and not {"trial_id", "status"} <= set(table.column_names):
            raise ResultsError(
                f"{self.trials.path} holds Parquet data daskbench did not write (no trial_id and status "
                "columns); set results.dir=PATH to a folder of its own"
            )
        if table.num_rows == 0:
            ok: Set[str] = set()
        else:
            ok_mask = pc.equal(table["status"], "ok")
            ok = set(table.filter(ok_mask)["trial_id"].to_pylist())
            self._superseded = set(table.filter(pc.invert(ok_mask))["trial_id"].to_pylist())
        for dname, dset in self._extra.items():
            ids = dset.read(columns=["trial_id"])
            if ids.num_rows and "trial_id" in ids.column_names:
                orphans = set(pc.unique(ids["trial_id"]).to_pylist()) - ok
                if orphans:  # per-step rows written just before a run died
                    with self._writing():
                        dset.rewrite(drop_ids=orphans)
        return ok

    def check_manifest(self, name: Optional[str]) -> Dict[str, Any]:
        """The folder's manifest.json ({} if none); a ResultsError if it is not one
        daskbench wrote for experiment ``name``."""
        path = self.root / "manifest.json"
        if not path.exists():
            return {}
        try:
            manifest = json.loads(path.read_text())
            if not isinstance(manifest, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:
            raise ResultsError(
                f"{path} is not valid JSON ({str(exc).splitlines()[0]}); daskbench keeps its run history "
                "there and will not overwrite it: move the file away (a new one is written), or set "
                "results.dir=PATH"
            ) from None
        other = manifest.get("name")
        if name is not None and other is not None and other != name:
            raise ResultsError(
                f"{self.root} holds the results of experiment {other!r} (see its manifest.json), not {name!r}; "
                "set results.dir=PATH to a folder of its own"
            )
        return manifest

    # -- writing --------------------------------------------------------------
    def add(self, rows: List[Dict[str, Any]], tables: Dict[str, pa.Table]) -> None:
        self._rows.extend(rows)
        for name, t in tables.items():
            self._tables.setdefault(name, []).append(t)
        self.maybe_flush()

    def maybe_flush(self) -> None:
        if self._rows and (len(self._rows) >= self.flush_rows
                           or time.monotonic() - self._last_flush >= self.flush_seconds):
            self.flush()

    def flush(self) -> None:
        """Write buffered rows: per-step tables first, then the trials that own them."""
        self._last_flush = time.monotonic()
        if not self._rows:
            return
        with self._writing():
            self._flush()

    def _flush(self) -> None:
        for name, parts in self._tables.items():
            dset = self._extra.get(name) or self._extra.setdefault(name, Dataset(self.root / name))
            schema = pa.unify_schemas([t.schema for t in parts], promote_options="permissive")
            dset.append(pa.concat_tables([_conform(t, schema) for t in parts]))
        self._tables = {}
        table = rows_to_table(self._rows, self.first_columns)
        new_ids = set(table["trial_id"].to_pylist())
        replaced = self._superseded & new_ids
        if replaced:
            # a re-run replaces its old failed row in the same folder swap: never twice
            self.trials.rewrite(drop_ids=replaced, extra=table)
            self._superseded -= replaced
        else:
            self.trials.append(table)
        self._rows = []

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
        manifest = self.check_manifest(name)
        manifest["name"] = name
        manifest["config"] = config_yaml
        manifest["versions"] = versions()
        runs = [r for r in manifest.get("runs", []) if r.get("id") != run.get("id")]
        runs.append(run)
        manifest["runs"] = runs
        with self._writing():
            self.root.mkdir(parents=True, exist_ok=True)
            _atomic_write_bytes(self.root / "manifest.json", json.dumps(manifest, indent=2, default=str).encode())


def versions() -> Dict[str, str]:
    """Versions of the packages a result depends on."""
    import platform
    from importlib import metadata

    out = {"python": platform.python_version()}
    for pkg in ("daskbench", "dask", "distributed", "hydra-core", "omegaconf", "pyarrow",
                "pandas", "numpy", "scipy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out
