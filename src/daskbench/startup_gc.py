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
"""

from __future__ import annotations

import gc

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
