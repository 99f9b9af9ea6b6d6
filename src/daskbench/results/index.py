"""The index of trial ids already ``ok`` on disk, that a run resumes from: compact for millions.

A trial id is 16 lowercase hexadecimal digits (:mod:`daskbench.sweep.identity`), i.e.
64 bits. A Python set of ten million of them costs about 1 GiB (a ``str`` object and a
hash slot each); :class:`TrialIndex` keeps them as a sorted NumPy array of 64-bit
integers, 8 bytes an id, built batch by batch from the Arrow column, so no Python
object per id is ever alive at once. Ids of any other shape (the Hydra launcher's,
hand-made ones) go into a plain set beside it. It is a read-only ``Set`` of ``str``:
``id in index``, ``len``, iteration, ``index - ids`` (a new index) and ``ids & index``.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from typing import Any, FrozenSet, Iterable, Iterator, List

import numpy as np
import pyarrow as pa

_HEX_ID = "^[0-9a-f]{16}$"


def _hex_to_u64(ids: pa.Array) -> np.ndarray:
    """16-digit lowercase hex strings (type string, no nulls) -> their values as uint64,
    vectorised on the Arrow buffers: no Python string per id."""
    if len(ids) == 0:
        return np.empty(0, np.uint64)
    offsets = np.frombuffer(ids.buffers()[1], dtype=np.int32)[ids.offset : ids.offset + len(ids) + 1]
    digits = np.frombuffer(ids.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]].reshape(-1, 16)
    nibbles = np.where(digits >= ord("a"), digits - (ord("a") - 10), digits - ord("0")).astype(np.uint8)
    octets = (nibbles[:, 0::2] << 4) | nibbles[:, 1::2]  # two digits a byte, most significant first
    return np.ascontiguousarray(octets).view(">u8").ravel().astype(np.uint64)


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values (``np.unique`` hashes first: several times slower here)."""
    values = np.sort(values)
    return values[np.concatenate(([True], values[1:] != values[:-1]))] if len(values) else values


def _split(ids: pa.Array) -> tuple[np.ndarray, List[str]]:
    """(the hex ids as uint64, the other ids as str) of one Arrow array of ids."""
    ids = ids.drop_null()
    if len(ids) == 0:
        return np.empty(0, np.uint64), []
    import pyarrow.compute as pc  # here, not at the top: a fresh run needs none (~40 ms to import)

    if not pa.types.is_string(ids.type):
        ids = ids.cast(pa.string())
    hexy = pc.match_substring_regex(ids, _HEX_ID)
    if pc.all(hexy).as_py():
        return _hex_to_u64(ids), []
    return _hex_to_u64(ids.filter(hexy)), ids.filter(pc.invert(hexy)).to_pylist()


class TrialIndex(AbstractSet[str]):
    """A read-only set of trial ids: hex ids packed in a sorted uint64 array, others in a set."""

    def __init__(self, packed: np.ndarray, other: Iterable[str] = ()):
        self._packed = packed  # sorted, unique
        self._other: FrozenSet[str] = frozenset(other)

    @classmethod
    def from_arrow(cls, batches: Iterable[Any]) -> TrialIndex:
        """From Arrow arrays (or chunked arrays) of ids, streamed one at a time."""
        packed: List[np.ndarray] = []
        other: List[str] = []
        for batch in batches:
            for chunk in batch.chunks if isinstance(batch, pa.ChunkedArray) else [batch]:
                p, o = _split(chunk)
                packed.append(p)
                other += o
        joined = np.concatenate(packed) if packed else np.empty(0, np.uint64)
        return cls(_sorted_unique(joined), other)

    @classmethod
    def of(cls, ids: Iterable[str]) -> TrialIndex:
        """From Python strings (a test's or a caller's few)."""
        return cls.from_arrow([pa.array(list(ids), pa.string())])

    def __contains__(self, trial_id: object) -> bool:
        if not isinstance(trial_id, str):
            return False
        if len(trial_id) == 16 and len(self._packed):
            try:
                v = int(trial_id, 16)
            except ValueError:
                return trial_id in self._other
            i = int(np.searchsorted(self._packed, np.uint64(v)))
            if i < len(self._packed) and int(self._packed[i]) == v and f"{v:016x}" == trial_id:
                return True  # (the last test: int() also reads '0x..', upper case, '_')
        return trial_id in self._other

    def __len__(self) -> int:
        return len(self._packed) + len(self._other)

    def __iter__(self) -> Iterator[str]:
        for v in self._packed:
            yield f"{int(v):016x}"
        yield from self._other

    @classmethod
    def _from_iterable(cls, it: Iterable[str]) -> set:  # type: ignore[override]
        return set(it)  # results of the Set mixins (``ids & index``): small, plain sets

    def __sub__(self, ids: Iterable[Any]) -> TrialIndex:  # type: ignore[override]
        """This index without ``ids`` (a new index; no Python string per kept id)."""
        drop = [i for i in ids if isinstance(i, str)]
        if not drop:
            return self
        p, o = _split(pa.array(drop, pa.string()))
        return TrialIndex(np.setdiff1d(self._packed, p, assume_unique=False), self._other - set(o))

    def contains(self, ids: pa.Array) -> np.ndarray:
        """Which of ``ids`` (an Arrow array of strings) are in the index, as a boolean array."""
        import pyarrow.compute as pc

        ids = ids if pa.types.is_string(ids.type) else ids.cast(pa.string())
        out = np.zeros(len(ids), dtype=bool)
        hexy = pc.fill_null(pc.match_substring_regex(ids, _HEX_ID), False)
        where = np.flatnonzero(hexy.to_numpy(zero_copy_only=False))
        if len(where) and len(self._packed):
            v = _hex_to_u64(ids.take(pa.array(where)))
            pos = np.minimum(np.searchsorted(self._packed, v), len(self._packed) - 1)
            out[where] = self._packed[pos] == v
        if self._other:
            rest = np.flatnonzero(~out)
            out[rest] = [s in self._other for s in ids.take(pa.array(rest, pa.int64())).to_pylist()]
        return out
