"""Pure sweep expansion: axes and settings in, trials out.

No Dask, no files, no Hydra composition. Sweep expressions are parsed by
Hydra's own override parser, so ``a,b``, ``range(...)``, ``choice(...)``,
quoted strings and ``interval(lo,hi)`` mean exactly what they mean to Hydra.
Trials are generated lazily, so a sweep of millions never sits whole in memory.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep, Override, QuotedString
from hydra.errors import HydraException

from ..errors import SweepError

DESIGNS = ("grid", "random", "lhs", "sobol")
#: the key a replicate's seed is passed under
SEED_KEY = "trial.seed"
# spawn key of the stream that draws sampling designs; distinct from replicate seeds
_DESIGN_STREAM = (2**32 - 1,)

_parser = OverridesParser.create()


@dataclass(frozen=True)
class Axis:
    """One swept dimension: discrete ``values`` or a continuous ``interval``."""

    key: str
    values: Optional[Tuple[Any, ...]] = None
    interval: Optional[Tuple[float, float]] = None
    is_group: bool = False
    add: bool = False  # given with a leading '+' (a key or group not in the defaults)

    @property
    def expr(self) -> str:
        if self.interval is not None:
            return f"interval({self.interval[0]},{self.interval[1]})"
        return ",".join(map(str, self.values or ()))


def parse_override(text: str) -> Override:
    """Parse one command-line override with Hydra's grammar, or say which token is bad."""
    try:
        return _parser.parse_override(text)
    except HydraException as exc:  # OverrideParseException and grammar errors
        # ANTLR lists every token it could have taken ("expecting {':', BRACKET_OPEN, ...}"): noise to a user
        detail = re.sub(r" expecting \{[^}]*\}| expecting \S+", "", str(exc).splitlines()[0])
        raise SweepError(
            f"cannot parse {text!r}: {detail}. "
            "Sweep expressions use Hydra's grammar: key=a,b,c  'key=range(0,10)'  "
            "'key=choice(x,y)'  'key=interval(0,1)'; quote values with spaces or commas."
        ) from None


def _plain(value: Any) -> Any:
    """Hydra's parsed values as the plain Python values a composed config holds."""
    if isinstance(value, QuotedString):
        return value.text
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    return value


def axis_from_override(ov: Override, is_group: bool = False) -> Axis:
    """Turn a parsed sweep override into an :class:`Axis`."""
    key = ov.key_or_group
    add = ov.get_key_element().startswith("+")
    if not ov.is_sweep_override():
        return Axis(key, values=(_plain(ov.value()),), is_group=is_group, add=add)
    if ov.is_discrete_sweep():
        try:
            values = tuple(_plain(v) for v in ov.sweep_iterator())
        except (ValueError, TypeError) as exc:  # e.g. range(0,10,0): Python's range refuses a zero step
            raise SweepError(
                f"axis {key!r}: cannot expand {ov.input_line!r} ({exc}); e.g. {key}=range(0,10,2) "
                f"or {key}=1,2,3"
            ) from None
        if not values:
            raise SweepError(
                f"axis {key!r} is empty ({ov.input_line!r}); give at least one value, "
                f"e.g. {key}=1,2"
            )
        return Axis(key, values=values, is_group=is_group, add=add)
    iv = ov.value()
    assert isinstance(iv, IntervalSweep)
    if not iv.start < iv.end:
        raise SweepError(f"axis {key!r}: interval({iv.start},{iv.end}) needs lo < hi; write "
                         f"{key}=interval({iv.end},{iv.start})" if iv.start > iv.end else
                         f"axis {key!r}: interval({iv.start},{iv.end}) is empty; give lo < hi, e.g. "
                         f"interval({iv.start},{iv.start + 1})")
    return Axis(key, interval=(float(iv.start), float(iv.end)), is_group=is_group, add=add)


def axis_from_param(key: str, expr: Any, is_group: bool = False) -> Axis:
    """An axis from a ``sweep.params`` entry: a sweep string, a list, or one value."""
    if isinstance(expr, str):
        if expr.strip() == "":
            raise SweepError(f"sweep.params.{key} is empty; give values, e.g. '{key}: 1,2'")
        return axis_from_override(parse_override(f"{key}={expr}"), is_group=is_group)
    if isinstance(expr, (list, tuple)):
        if not expr:
            raise SweepError(f"sweep.params.{key} is an empty list; give at least one value")
        return Axis(key, values=tuple(expr), is_group=is_group)
    return Axis(key, values=(expr,), is_group=is_group)


@functools.lru_cache(maxsize=4096)
def spawn_seed(root_seed: int, replicate: int) -> int:
    """Seed of replicate ``r``: ``SeedSequence(root_seed).spawn(...)[r]`` as a 32-bit int."""
    ss = np.random.SeedSequence(int(root_seed), spawn_key=(int(replicate),))
    return int(ss.generate_state(1, dtype=np.uint32)[0])


def flatten(tree: Mapping[str, Any], prefix: str = "") -> Dict[str, Any]:
    """Nested mapping -> ``{"a.b.c": leaf}``; lists are leaves."""
    out: Dict[str, Any] = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


@dataclass(frozen=True)
class Trial:
    """One unit of work: its id, the values of its swept keys, its seed."""

    trial_id: str
    params: Dict[str, Any]
    groups: Tuple[Tuple[str, str], ...]
    seed: Optional[int]
    replicate: int

    def columns(self) -> Dict[str, Any]:
        """The swept values as table columns, named exactly as the keys."""
        cols = dict(self.groups)
        cols.update(self.params)
        return cols


@dataclass
class SweepPlan:
    """Everything needed to enumerate an experiment's trials, without composing.

    ``bases`` maps each combination of swept config-group choices to the
    flattened content of its composed config (run keys removed); the trial id
    hashes that content with the trial's own values, so it is stable across runs
    and machines and only changes when what the trial computes could change.
    """

    name: str
    axes: List[Axis]
    bases: Dict[Tuple[Tuple[str, str], ...], Dict[str, Any]]
    zip: List[List[str]] = field(default_factory=list)
    design: str = "grid"
    samples: Optional[int] = None
    replicates: int = 1
    root_seed: int = 0
    inject_seed: bool = False
    fixed_seed: Optional[int] = None

    def __post_init__(self) -> None:
        self._check()
        swept = {a.key for a in self.axes if not a.is_group}
        if self.inject_seed:
            swept.add(SEED_KEY)
        # Base content without the swept keys, pre-serialised once per group combination.
        self._base_items = {
            g: [(k, v) for k, v in flat.items() if k not in swept]
            for g, flat in self.bases.items()
        }

    # -- validation ---------------------------------------------------------
    def _check(self) -> None:
        if self.design not in DESIGNS:
            raise SweepError(
                f"sweep.design={self.design!r} is not a design; use one of {', '.join(DESIGNS)}"
            )
        if not isinstance(self.replicates, int) or self.replicates < 1:
            raise SweepError(f"sweep.replicates={self.replicates!r}: give an integer >= 1")
        keys = [a.key for a in self.axes]
        intervals = [a.key for a in self.axes if a.interval is not None]
        if self.design == "grid":
            if intervals:
                raise SweepError(
                    f"axis {intervals[0]!r} is an interval, which a grid cannot enumerate; "
                    "set sweep.design=random, lhs or sobol with sweep.samples=N, "
                    "or give discrete values (a,b,c or range(...))"
                )
        else:
            if not intervals:
                raise SweepError(
                    f"sweep.design={self.design} samples interval(lo,hi) axes but none is given; "
                    "add one, e.g. 'trial.x=interval(0,1)', or use sweep.design=grid"
                )
            if not isinstance(self.samples, int) or self.samples < 1:
                raise SweepError(
                    f"sweep.design={self.design} needs sweep.samples=N (a positive integer), "
                    f"got {self.samples!r}"
                )
        seen = set()
        for group in self.zip:
            if len(group) < 2:
                raise SweepError(f"sweep.zip entry {list(group)} needs at least two keys")
            lengths = {}
            for k in group:
                if k not in keys:
                    raise SweepError(
                        f"sweep.zip names {k!r}, which is not a swept key; swept keys: "
                        f"{', '.join(keys) or '(none)'}"
                    )
                if k in seen:
                    raise SweepError(f"sweep.zip names {k!r} twice")
                seen.add(k)
                ax = self._axis(k)
                if ax.values is None:
                    raise SweepError(f"sweep.zip cannot pair the interval axis {k!r}")
                lengths[k] = len(ax.values)
            if len(set(lengths.values())) > 1:
                desc = ", ".join(f"{k} has {n}" for k, n in lengths.items())
                raise SweepError(f"zipped axes must have the same number of values: {desc}")
        if self.replicates > 1 and SEED_KEY in keys:
            raise SweepError(
                f"both sweep.replicates and a swept {SEED_KEY} set the seeds; use one of them"
            )

    def _axis(self, key: str) -> Axis:
        return next(a for a in self.axes if a.key == key)

    # -- enumeration --------------------------------------------------------
    def _units(self) -> List[Tuple[Tuple[Axis, ...], List[Tuple[Any, ...]]]]:
        """Discrete dimensions to cross: single axes, or zipped groups as one."""
        zipped = {k for g in self.zip for k in g}
        units = []
        for group in self.zip:
            axes = tuple(self._axis(k) for k in group)
            units.append((axes, list(zip(*(a.values for a in axes)))))
        for a in self.axes:
            if a.values is not None and a.key not in zipped:
                units.append(((a,), [(v,) for v in a.values]))
        return units

    def _samples(self) -> Tuple[List[Axis], np.ndarray]:
        axes = [a for a in self.axes if a.interval is not None]
        if not axes:
            return [], np.empty((1, 0))
        from scipy.stats import qmc  # imported lazily: only sampled designs need it

        rng = np.random.default_rng(np.random.SeedSequence(int(self.root_seed), spawn_key=_DESIGN_STREAM))
        d, n = len(axes), int(self.samples or 0)
        if self.design == "random":
            u = rng.random((n, d))
        elif self.design == "lhs":
            u = qmc.LatinHypercube(d=d, rng=rng).random(n)
        else:
            sob = qmc.Sobol(d=d, scramble=True, rng=rng)
            m = math.ceil(math.log2(n)) if n > 1 else 0
            u = sob.random_base2(m)[:n]  # a prefix of a 2^m Sobol set keeps its balance best
        lo = np.array([a.interval[0] for a in axes])
        hi = np.array([a.interval[1] for a in axes])
        return axes, lo + u * (hi - lo)

    def may_repeat(self) -> bool:
        """Whether two trials could share an id (an axis lists a value twice)."""
        for a in self.axes:
            if a.values is not None:
                reprs = [json.dumps(v, sort_keys=True, default=repr) + type(v).__name__ for v in a.values]
                if len(set(reprs)) != len(reprs):
                    return True
        return False

    def __len__(self) -> int:
        n = 1
        for _, vals in self._units():
            n *= len(vals)
        if self.design != "grid":
            n *= int(self.samples or 0)
        return n * self.replicates

    def __iter__(self) -> Iterator[Trial]:
        units = self._units()
        s_axes, s_values = self._samples()
        s_keys = [a.key for a in s_axes]
        for combo in itertools.product(*(vals for _, vals in units)):
            groups: List[Tuple[str, str]] = []
            params: Dict[str, Any] = {}
            for (axes, _), values in zip(units, combo):
                for a, v in zip(axes, values):
                    if a.is_group:
                        groups.append((a.key, str(v)))
                    else:
                        params[a.key] = v
            gkey = tuple(sorted(groups))
            for row in s_values:
                point = dict(params)
                for k, v in zip(s_keys, row):
                    point[k] = float(v)
                for r in range(self.replicates):
                    yield self._trial(gkey, point, r)

    def _trial(self, gkey, point: Dict[str, Any], r: int) -> Trial:
        params = dict(point)
        if self.inject_seed:
            seed = spawn_seed(self.root_seed, r)
            params[SEED_KEY] = seed
        else:
            seed = params.get(SEED_KEY, self.fixed_seed)
        return Trial(self.trial_id(gkey, params), params, gkey, seed, r)

    def trial_id(self, gkey, params: Mapping[str, Any]) -> str:
        """Stable content hash of a trial: experiment name, config content, own values."""
        items = self._base_items[gkey] + sorted(params.items())
        items.sort(key=lambda kv: kv[0])
        payload = json.dumps(
            [self.name, [list(g) for g in gkey], items],
            separators=(",", ":"), sort_keys=True, default=repr,
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def describe(self) -> str:
        """One line per axis, for dry runs and the start banner."""
        lines = [f"{a.key} = {a.expr}" for a in self.axes]
        if self.zip:
            lines.append("zip: " + "; ".join(" & ".join(g) for g in self.zip))
        if self.design != "grid":
            lines.append(f"design: {self.design}, {self.samples} samples")
        if self.replicates > 1:
            lines.append(f"replicates: {self.replicates}")
        return "\n".join(lines)


def merge_axes(config_axes: Sequence[Axis], cli_axes: Sequence[Axis], cli_fixed: Sequence[str]) -> List[Axis]:
    """Config axes first, command-line axes win (keeping the config's position, as
    Hydra's BasicSweeper does); a plain command-line value removes the axis."""
    merged: Dict[str, Axis] = {}
    for a in list(config_axes) + list(cli_axes):
        merged[a.key] = a
    for k in cli_fixed:
        merged.pop(k, None)
    # A single value is no sweep: it belongs to the base config (see compose).
    return list(merged.values())
