"""One Parquet dataset folder (``trials``, ``steps``, ...): atomic parts and folder swaps.

A part is written whole or not at all (:mod:`.files`). Rewrites (removing
superseded rows, unifying schemas, compacting many parts) stream the old parts
and the new rows into a whole new folder and swap it in; an interrupted swap is
finished or rolled back the next time a writer opens the folder.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Set, Tuple

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import ResultsError
from .files import tmp_file

#: rows per batch read (a row group is read whole, then handed out in batches of this many)
_BATCH = 64_000


def _row_groups(parts: List[Path]) -> Iterator[Tuple[pq.ParquetFile, int]]:
    """(the open part, row group) for every row group of every part, in order."""
    for path in parts:
        f = pq.ParquetFile(path)
        for group in range(f.num_row_groups):
            yield f, group


#: columns dictionary-encoded though not strings: their values repeat (a replicate's seed)
_REPEATING = frozenset({"seed", "replicate", "attempts"})
#: a value of its own in every row: a dictionary of them is all cost (~0.1 us a row each)
_UNIQUE = frozenset({"trial_id"})


def _dictionary(schema: pa.Schema) -> List[str]:
    """The columns worth Parquet's dictionary encoding: strings (statuses, errors, workers,
    group choices) and the repeating integers; numbers (swept values, results, times) are
    written plain, as writing their dictionary cost more than the rest of the row's write.
    Only the file's encoding: the table read back is the same."""
    return [
        f.name
        for f in schema
        if f.name not in _UNIQUE
        and (
            f.name in _REPEATING
            or pa.types.is_string(f.type)
            or pa.types.is_large_string(f.type)
            or pa.types.is_dictionary(f.type)
        )
    ]


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


class Dataset:
    """One Parquet dataset folder (``trials``, ``steps``, ...) with atomic writes."""

    def __init__(self, path: Path, writer: bool = True):
        self.path = path
        self._new = path.with_name(f".{path.name}.new")
        self._old = path.with_name(f".{path.name}.old")
        # each part's schema, read once: a part is never changed in place (a rewrite
        # writes parts of new names), and a sweep of 10^7 trials appends ~1,000 parts
        self._schemas: Dict[str, pa.Schema] = {}
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
        known, self._schemas = self._schemas, {}
        for p in parts:
            self._schemas[p.name] = known.get(p.name) or _read_schema(p)
        try:  # each distinct schema once
            return pa.unify_schemas(list(dict.fromkeys(self._schemas.values())), promote_options="permissive")
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
        assert schema is not None  # there are parts
        cols = [c for c in columns if c in schema.names] if columns else None
        return ds.dataset([str(p) for p in parts], schema=schema, format="parquet").to_table(columns=cols)

    def batches(self, columns: List[str], filter: Optional[Any] = None) -> Iterator[pa.RecordBatch]:
        """The rows of ``columns`` (those the folder has) that match ``filter`` (a
        ``pyarrow.dataset`` expression), batch by batch: a scan of millions of rows
        holds one row group at a time.

        Each row group is scanned as a fragment of its own (cast to the folder's
        schema, filtered): one scanner over the whole folder, or ``iter_batches``
        over a whole compacted file, kept memory that grew with the rows read
        (~40 MiB per 10^6 rows of the report's columns; apache/arrow#39808), and
        at 10^7 trials the report's scan of the one compacted file dominated the
        driver's peak. Per row group it stays flat.
        """
        schema = self.schema()
        if schema is None:
            return
        import pyarrow.dataset as ds
        import pyarrow.fs as pafs

        cols = [c for c in columns if c in schema.names]
        fmt, local = ds.ParquetFileFormat(), pafs.LocalFileSystem()
        for part in self.parts():
            for piece in fmt.make_fragment(str(part), filesystem=local).split_by_row_group():
                yield from piece.to_batches(schema=schema, columns=cols, filter=filter, batch_size=_BATCH)

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
            self._write_part(self.path, conform(table, current))
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
        import pyarrow.compute as pc  # here, not at the top: a fresh run needs none (~40 ms to import)

        drop = pa.array(sorted(drop_ids), pa.string()) if drop_ids else None
        rows = 0
        final = self._new / _part_name()
        with tmp_file(final) as f, pq.ParquetWriter(f, schema, use_dictionary=_dictionary(schema)) as writer:
            # row group by row group: pyarrow.dataset's scanner over ~1,000 parts read ahead
            # of the writer and grew with the table (~100 MiB per 10^6 rows), and iter_batches
            # over a whole compacted file grows too (a rewrite of it: a re-run, a new column)
            for part, group in _row_groups(self.parts()):
                for batch in part.iter_batches(batch_size=_BATCH, row_groups=[group]):
                    t = conform(pa.Table.from_batches([batch]), schema)
                    if drop is not None:
                        t = t.filter(pc.invert(pc.is_in(t["trial_id"], value_set=drop)))
                    if t.num_rows:
                        writer.write_table(t)
                        rows += t.num_rows
            if extra is not None and extra.num_rows:
                writer.write_table(conform(extra, schema))
                rows += extra.num_rows
        if not rows:
            final.unlink()  # nothing left: an empty folder, not an empty part

    @staticmethod
    def _write_part(folder: Path, table: pa.Table) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        with tmp_file(folder / _part_name()) as f:
            pq.write_table(table, f, use_dictionary=_dictionary(table.schema))


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Cast a table to ``schema``, adding missing columns as nulls."""
    cols = []
    for f in schema:
        if f.name in table.column_names:
            col = table[f.name]
            cols.append(col if col.type == f.type else col.cast(f.type))
        else:
            cols.append(pa.nulls(table.num_rows, f.type))
    return pa.table(cols, schema=schema)
