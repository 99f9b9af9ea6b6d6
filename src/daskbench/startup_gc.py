"""Python's garbage collector paused while a process starts, and what it loaded frozen.

A command's driver and the fork server spend their start-up importing (Dask, Hydra,
pyarrow, pandas: ~1 s of CPU each) and composing the config; the cyclic garbage
collector runs a few hundred times meanwhile and finds almost nothing to free, which
cost ~100 ms of the driver's CPU and ~170 ms of the server's, both on the command's
critical path. :func:`pause` turns it off for that while; :func:`resume` moves what
was loaded to the collector's permanent generation (``gc.freeze``: the modules,
classes and config live as long as the process anyway, and the fork server's children
then never scan, nor touch, the pages they share with it) and turns it back on
before any trial's work. The cycles start-up left behind stay unfreed: a few MB, once.

A run in a process that did not start that way (``daskbench.run`` from a script or a
notebook, on the user's own client) gets :func:`frozen_for_run`: what the process held as
the run began is left out of the collector's passes until the run ends. There, a full
pass over the driver's heap (Dask's client, often its scheduler and nannies, Hydra,
pandas, and whatever a notebook holds) took 200 ms of a 5,000-trial run's wall time on
2 cores, with the driver's event loop, and so the scheduler, stopped meanwhile.
"""

from __future__ import annotations

import contextlib
import gc
from typing import Iterator

_paused = False


def pause() -> None:
    """Turn the collector off until :func:`resume` (nothing if it is off already)."""
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def resume() -> None:
    """After :func:`pause`: freeze what is loaded, turn the collector on again."""
    global _paused
    if _paused:
        _paused = False
        gc.freeze()
        gc.enable()


@contextlib.contextmanager
def frozen_for_run() -> Iterator[None]:
    """While a run goes on, the collector passes over only what the run allocates: the
    objects already there are frozen (``gc.freeze``) and handed back (``gc.unfreeze``) at
    its end, so the cycles among them are still freed, later. Nothing is done where
    something is frozen already (the command line's start-up, or the process's own
    ``gc.freeze``, which unfreezing would undo) or the collector is off."""
    if gc.get_freeze_count() or not gc.isenabled():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
