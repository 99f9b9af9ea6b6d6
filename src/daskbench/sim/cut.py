"""Cutting receiver ids by destination shard when agents are dealt round robin to 2**r shards.

Under round robin on ``S = 2**r`` shards agent ``i`` lives on shard ``i & (S - 1)`` at row
``i >> r``. Rotating the 32 bits of ``i`` right by ``r`` gives a *key* with the shard in its
top ``r`` bits and the row below them, so keys sort shard-major: NumPy's ``partition`` (a
vectorised selection, about 0.1 ms per 250,000 keys here) cuts them into one contiguous
run per shard, each a view of one array, and the receiving shard reads its rows as
``key & mask`` as cheaply as it reads them from ids (``id >> r``). Against a mask, index
lists and a take per part this is a third of the work (``benchmarks/profile_shard.py``).

The cut does not keep the order the messages were sent in, so it is used only for
messages with no order to keep: anonymous (no ``src``) and without fields, which a
receiver can only count (see :class:`daskbench.sim.inbox.Inbox`). And only where
``partition`` is vectorised: NumPy's selection of 32-bit keys uses AVX-512
(x86-simd-sort); without it the scalar selection is ~3x *slower* than a mask and
takes, so :func:`rotation` says 0 (the general cut) unless a one-off timing in the
process (:func:`selection_is_fast`) finds the selection the cheaper. Results do not
depend on it: counts have no order, and a shard reads keys or ids from any sender.
"""

from __future__ import annotations

import time
from typing import List, Optional

import numpy as np

from .rng import bits

_BITS = 32


def rotation(n_agents: int, n_shards: int) -> int:
    """``r`` for round robin on ``n_shards = 2**r`` (``r >= 1``) with ids that fit the keys, where
    the selection is fast; else 0."""
    r = n_shards.bit_length() - 1
    if n_shards < 2 or n_shards != 1 << r or n_agents > 2**31 or not selection_is_fast():
        return 0
    return r


_fast: Optional[bool] = None


def selection_is_fast(n: int = 1 << 15, tries: int = 5) -> bool:
    """Does cutting ``n`` keys in two take less CPU than a mask, two index lists and two takes?
    Timed once per process (a few ms; the best of ``tries``, so other load rarely decides it)."""
    global _fast
    if _fast is None:
        ids = (bits(np.arange(n), 0, 0, 0) >> np.uint64(34)).astype(np.int64)  # not numpy.random: slow to import
        keys, far = keys_of(ids, 1), ids.astype(np.int32) & 1 == 1
        best = {"select": float("inf"), "masks": float("inf")}
        for _ in range(tries):
            copy = keys.copy()
            t0 = time.thread_time()
            copy.partition(n // 2)
            t1 = time.thread_time()
            np.take(ids, np.flatnonzero(far)), np.take(ids, np.flatnonzero(~far))
            t2 = time.thread_time()
            best["select"], best["masks"] = min(best["select"], t1 - t0), min(best["masks"], t2 - t1)
        _fast = best["select"] < best["masks"]
    return _fast


def keys_of(ids: np.ndarray, r: int) -> np.ndarray:
    """The keys of ``ids`` (any integer dtype, each >= 0 and < 2**31): a new ``uint32`` array."""
    keys = ids.astype(np.uint32)  # rotated in place: one array, written three times
    top = np.left_shift(keys, _BITS - r)  # the shard's bits, on top
    keys >>= r
    keys |= top
    return keys


def ids_of(keys: np.ndarray, r: int) -> np.ndarray:
    """The ids (``int32``) of ``keys``: the rotation undone."""
    ids = np.left_shift(keys, r)
    ids |= np.right_shift(keys, _BITS - r)
    return ids.view(np.int32)


def rows_of_keys(r: int):
    """Keys -> rows on their shard (``intp``, into ``out`` when given): the bits below the shard's."""
    mask = (1 << (_BITS - r)) - 1

    def rows(keys: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        if out is None:
            out = keys.astype(np.intp)
        else:
            np.copyto(out, keys)
        return np.bitwise_and(out, mask, out=out)

    return rows


def cut(keys: np.ndarray, r: int) -> List[int]:
    """Reorder ``keys`` in place into one run per shard, shard 0 first; the runs' ends."""
    n_shards = 1 << r
    top = _BITS - r
    if n_shards == 2:
        ends = [len(keys) - int(np.count_nonzero(keys >= np.uint32(1 << top))), len(keys)]
    else:
        counts = np.bincount(keys >> np.uint32(top), minlength=n_shards)
        ends = np.cumsum(counts).tolist()
    _select(keys, ends, 0, n_shards)
    return ends


def _select(keys: np.ndarray, ends: List[int], first: int, last: int) -> None:
    """Partition ``keys`` (the runs of shards ``first`` .. ``last - 1``, starting at their first
    key) at the middle shard's start, then each half: one selection per level (NumPy's
    vectorised path takes one ``kth``; with several it is 30x slower here)."""
    if last - first < 2:
        return
    mid = (first + last) // 2
    start = ends[first - 1] if first else 0
    at = ends[mid - 1] - start  # where shard ``mid`` starts, within ``keys``
    if 0 < at < len(keys):
        keys.partition(at)
    _select(keys[:at], ends, first, mid)
    _select(keys[at:], ends, mid, last)
