"""The grid's dimensions, crossed without materialising them.

``itertools.product`` first copies every input into a tuple, and zipped axes
were listed pair by pair: an axis ``range(0,10000000)`` then held ten million
Python ints (and as many 1-tuples) for the whole sweep. :class:`Rows` is a
dimension as a view over its axes' values, :func:`product` crosses dimensions
in ``itertools.product``'s order while holding only the current combination.
Pure: no Dask, no files.
"""

from __future__ import annotations

from typing import Any, Iterator, Sequence, Tuple, overload


class Rows(Sequence[Tuple[Any, ...]]):
    """The values of one dimension: row ``i`` is the ``i``-th value of each of
    ``columns`` (one axis, or zipped axes of equal length), as a tuple."""

    def __init__(self, columns: Sequence[Sequence[Any]]) -> None:
        self.columns = list(columns)

    def __len__(self) -> int:
        return min((len(c) for c in self.columns), default=0)

    def __iter__(self) -> Iterator[Tuple[Any, ...]]:
        return zip(*self.columns)

    @overload
    def __getitem__(self, i: int) -> Tuple[Any, ...]: ...

    @overload
    def __getitem__(self, i: slice) -> Sequence[Tuple[Any, ...]]: ...

    def __getitem__(self, i: int | slice) -> Tuple[Any, ...] | Sequence[Tuple[Any, ...]]:
        if isinstance(i, slice):
            return Rows([c[i] for c in self.columns])
        return tuple(c[i] for c in self.columns)


def product(dims: Sequence[Sequence[Any]]) -> Iterator[Tuple[Any, ...]]:
    """``itertools.product(*dims)``, same order (the last dimension varies fastest),
    iterating each dimension again instead of copying it: ``dims`` must be
    re-iterable sequences (tuples, ranges, :class:`Rows`)."""
    if not dims:
        yield ()
        return
    if len(dims) == 1:
        for v in dims[0]:
            yield (v,)
        return
    head, rest = dims[0], dims[1:]
    for v in head:
        for tail in product(rest):
            yield (v, *tail)
