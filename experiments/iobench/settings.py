"""iobench's parameters: validating them (Settings, make_settings) and the seeded
choice of operations and object sizes each thread makes from them (OpChooser)."""

from __future__ import annotations

import bisect
import math
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Tuple

import numpy as np

OPS = ("write", "read", "list", "delete")
DEFAULT_MIX = {"write": 0.4, "read": 0.4, "list": 0.1, "delete": 0.1}

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


@dataclass(frozen=True)
class Settings:
    """The validated benchmark parameters, shared by every agent."""

    duration_s: float
    concurrency: int
    ops: Tuple[str, ...]  # operations with a positive weight
    op_weights: Tuple[float, ...]
    sizes: Tuple[int, ...]
    size_weights: Optional[Tuple[float, ...]]
    prepare_objects: int
    fsync: bool
    report_interval_s: float


def parse_size(value: Any) -> int:
    """Bytes from ``4096``, ``"4k"``, ``"64KiB"``, ``"1M"``, ``"1MiB"`` (binary units)."""
    if isinstance(value, bool):
        raise ValueError(f"iobench: trial.sizes entry {value!r} is not a size")
    if isinstance(value, (int, np.integer)):
        n = int(value)
    elif isinstance(value, float) and value.is_integer():
        n = int(value)
    elif isinstance(value, str):
        m = re.fullmatch(r"\s*(\d+)\s*([kKmMgG]?)(?:i?[bB])?\s*", value)
        if not m:
            raise ValueError(f"iobench: trial.sizes entry {value!r} is not a size; use bytes (4096) or 4k, 64KiB, 1MiB")
        n = int(m.group(1)) * _UNITS[m.group(2).lower()]
    else:
        raise ValueError(f"iobench: trial.sizes entry {value!r} is not a size; use bytes (4096) or 4k, 64KiB, 1MiB")
    if n <= 0:
        raise ValueError(f"iobench: trial.sizes entry {value!r} must be positive")
    return n


def _weights(values: Sequence[Any], what: str) -> Tuple[float, ...]:
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise ValueError(f"iobench: {what} weight {v!r} is not a number")
        v = float(v)
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"iobench: {what} weight {v!r} must be a finite number >= 0")
        out.append(v)
    if not any(out):
        raise ValueError(f"iobench: {what} weights are all zero; give at least one a positive weight")
    return tuple(out)


def make_settings(duration_s: float = 3.0, concurrency: int = 2, mix: Optional[Mapping] = None,
                  sizes: Sequence[Any] = (4096,), size_weights: Optional[Sequence[Any]] = None,
                  prepare_objects: int = 8, fsync: bool = False, report_interval_s: float = 1.0) -> Settings:
    """Check the trial's parameters; every error names the ``trial.*`` key to fix."""
    try:
        duration_s = float(duration_s)
    except (TypeError, ValueError):
        raise ValueError(f"iobench: trial.duration_s={duration_s!r} is not a number") from None
    if not math.isfinite(duration_s) or duration_s <= 0:
        raise ValueError(f"iobench: trial.duration_s={duration_s!r} must be > 0 seconds")
    if isinstance(concurrency, bool) or not isinstance(concurrency, (int, np.integer)) or concurrency < 1:
        raise ValueError(f"iobench: trial.concurrency={concurrency!r} must be an integer >= 1 (threads per worker)")
    mix = DEFAULT_MIX if mix is None else mix
    if not isinstance(mix, Mapping):
        raise ValueError(f"iobench: trial.mix must be a mapping like {DEFAULT_MIX}, got {mix!r}")
    mix = {str(k): v for k, v in mix.items()}
    unknown = sorted(set(mix) - set(OPS))
    if unknown:
        raise ValueError(f"iobench: trial.mix has unknown operation(s) {unknown}; the operations are {list(OPS)}")
    names = [op for op in OPS if op in mix]
    weights = _weights([mix[op] for op in names], "trial.mix")
    ops = tuple(op for op, w in zip(names, weights) if w > 0)
    op_weights = tuple(w for w in weights if w > 0)
    if isinstance(sizes, (str, int)) or not isinstance(sizes, Sequence) and not hasattr(sizes, "__iter__"):
        sizes = [sizes]
    sizes_t = tuple(parse_size(s) for s in sizes)
    if not sizes_t:
        raise ValueError("iobench: trial.sizes is empty; give at least one object size, e.g. [4096]")
    sw = None
    if size_weights is not None:
        sw = _weights(list(size_weights), "trial.size_weights")
        if len(sw) != len(sizes_t):
            raise ValueError(f"iobench: trial.size_weights has {len(sw)} entries but trial.sizes has "
                             f"{len(sizes_t)}; give one weight per size, or null for uniform")
    if isinstance(prepare_objects, bool) or not isinstance(prepare_objects, (int, np.integer)) or prepare_objects < 0:
        raise ValueError(f"iobench: trial.prepare_objects={prepare_objects!r} must be an integer >= 0")
    report_interval_s = float(report_interval_s)
    if not report_interval_s > 0:
        raise ValueError(f"iobench: trial.report_interval_s={report_interval_s!r} must be > 0")
    return Settings(duration_s, int(concurrency), ops, op_weights, sizes_t, sw, int(prepare_objects),
                    bool(fsync), report_interval_s)


# --------------------------------------------------------------------------- choices


def _seed_int(seed: Any) -> int:
    return 0 if seed is None else int(seed) & ((1 << 128) - 1)


class OpChooser:
    """The seeded sequence of (operation, size) one thread runs.

    Operations and sizes come from separate streams, so the operation sequence
    depends only on the seed, the agent and the thread.
    """

    def __init__(self, settings: Settings, seed: Any, agent: int = 0, thread: int = 0):
        ss = np.random.SeedSequence(_seed_int(seed), spawn_key=(int(agent), int(thread)))
        a, b, c = (int(x) for x in ss.generate_state(3, dtype=np.uint64))
        self._ops_rng, self._size_rng, self.pick_rng = random.Random(a), random.Random(b), random.Random(c)
        self._ops = settings.ops
        self._op_cum = list(np.cumsum(settings.op_weights) / sum(settings.op_weights))
        self._op_cum[-1] = 1.0
        self._sizes = settings.sizes
        if settings.size_weights is None:
            self._size_cum = None
        else:
            self._size_cum = list(np.cumsum(settings.size_weights) / sum(settings.size_weights))
            self._size_cum[-1] = 1.0

    def op(self) -> str:
        return self._ops[bisect.bisect_right(self._op_cum, self._ops_rng.random())]

    def size(self) -> int:
        if self._size_cum is None:
            return self._sizes[self._size_rng.randrange(len(self._sizes))]
        return self._sizes[bisect.bisect_right(self._size_cum, self._size_rng.random())]
