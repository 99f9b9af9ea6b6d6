"""Sweep axes: Hydra sweep expressions parsed into the dimensions of a sweep.

Sweep expressions are parsed by Hydra's own override parser, so ``a,b``,
``range(...)``, ``choice(...)``, quoted strings and ``interval(lo,hi)`` mean
exactly what they mean to Hydra. Pure: no Dask, no files, no composition.
"""

from __future__ import annotations

import copy
import functools
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep, Override, QuotedString, RangeSweep
from hydra.errors import HydraException

from ..errors import SweepError

_parser = OverridesParser.create()


@dataclass(frozen=True)
class Axis:
    """One swept dimension: discrete ``values`` or a continuous ``interval``."""

    key: str
    #: a tuple, or a ``range`` for ``range(start,stop[,step])`` of integers: ten million
    #: values then cost nothing until a trial asks for one
    values: Optional[Sequence[Any]] = None
    interval: Optional[Tuple[float, float]] = None
    is_group: bool = False
    add: bool = False  # given with a leading '+' (a key or group not in the defaults)
    # How the expression was written, for adaptive search (sweep.search), which maps
    # each axis to an Optuna distribution as Hydra's optuna sweeper does:
    ranged: bool = False  # range(start,stop[,step]): evenly spaced values
    integer: bool = False  # int(interval(lo,hi)): whole numbers, both bounds included
    log: bool = False  # tag(log, interval(lo,hi)): sampled on a log scale

    @property
    def expr(self) -> str:
        if self.interval is not None:
            return f"interval({self.interval[0]},{self.interval[1]})"
        if isinstance(self.values, range):  # as written: not millions of values joined
            r = self.values
            return f"range({r.start},{r.stop}{'' if r.step == 1 else f',{r.step}'})"
        return ",".join(map(str, self.values or ()))


@functools.lru_cache(maxsize=512)
def _parse(text: str) -> Override:
    return _parser.parse_override(text)


def parsed(text: str) -> Override:
    """One override as Hydra's grammar parses it (its ``HydraException`` if it cannot):
    parsed once per process and text (ANTLR takes ~1 ms a word; a notebook's runs repeat
    most of theirs), a copy each time, so a caller cannot change what is kept."""
    return copy.deepcopy(_parse(text))


def parse_override(text: str) -> Override:
    """Parse one command-line override with Hydra's grammar, or say which token is bad."""
    try:
        return parsed(text)
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


def _integer_range(ov: Override) -> Optional[range]:
    """``range(start,stop[,step])`` of integers, unshuffled, as a lazy ``range``: the
    values Hydra's iterator gives, in its order, without a tuple of them all."""
    sweep = ov.value()
    if not isinstance(sweep, RangeSweep) or sweep.shuffle:
        return None
    r = sweep.range()  # a ValueError for a zero step, as Hydra's iterator
    return r if isinstance(r, range) else None


def axis_from_override(ov: Override, is_group: bool = False) -> Axis:
    """Turn a parsed sweep override into an :class:`Axis`."""
    key = ov.key_or_group
    add = ov.get_key_element().startswith("+")
    if not ov.is_sweep_override():
        return Axis(key, values=(_plain(ov.value()),), is_group=is_group, add=add)
    if ov.is_discrete_sweep():
        try:
            values = _integer_range(ov) or tuple(_plain(v) for v in ov.sweep_iterator())
        except (ValueError, TypeError) as exc:  # e.g. range(0,10,0): Python's range refuses a zero step
            raise SweepError(
                f"axis {key!r}: cannot expand {ov.input_line!r} ({exc}); e.g. {key}=range(0,10,2) or {key}=1,2,3"
            ) from None
        if not values:
            raise SweepError(f"axis {key!r} is empty ({ov.input_line!r}); give at least one value, e.g. {key}=1,2")
        return Axis(key, values=values, is_group=is_group, add=add, ranged=ov.is_range_sweep())
    iv = ov.value()
    assert isinstance(iv, IntervalSweep)
    lo, hi = iv.start, iv.end
    if lo is None or hi is None:  # Hydra's type allows it; its grammar never gives one
        raise SweepError(f"axis {key!r}: {ov.input_line!r} needs both bounds, e.g. {key}=interval(0,1)")
    if not lo < hi:
        raise SweepError(
            f"axis {key!r}: interval({lo},{hi}) needs lo < hi; write {key}=interval({hi},{lo})"
            if lo > hi
            else f"axis {key!r}: interval({lo},{hi}) is empty; give lo < hi, e.g. interval({lo},{lo + 1})"
        )
    integer = isinstance(lo, int) and isinstance(hi, int)  # int(interval(...)) casts both bounds
    return Axis(
        key, interval=(float(lo), float(hi)), is_group=is_group, add=add, integer=integer, log="log" in (iv.tags or ())
    )


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
