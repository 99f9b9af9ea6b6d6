"""The trial functions every tool in the suite runs, so they all do the same work.

They import nothing heavy (the module is imported by every worker of every tool,
and an import is part of what a command-line run pays). Each returns the CPU
time its own thread spent, which gives parallel efficiency its numerator:
``sum(cpu_s) / (wall * cores)``.

The work is a CPU busy loop, not a sleep: a sleeping trial keeps no core busy,
so a pool could overlap sleeps on one core and "parallel efficiency" would mean
nothing. The loop burns ``ms`` milliseconds of this thread's CPU time
(``time.thread_time``), so a trial costs the same CPU whatever else the machine
is doing; only the wall clock suffers from a noisy neighbour.
"""

from __future__ import annotations

import time


def busy(ms: float = 0.0, i: int = 0) -> dict:
    """Spin for ``ms`` ms of this thread's CPU time (``ms=0``: a no-op trial)."""
    t0 = time.thread_time()
    if ms > 0:
        end = t0 + ms / 1000.0
        while time.thread_time() < end:
            pass
    return {"cpu_s": time.thread_time() - t0}


def busy_chunk(ms: float, bounds: tuple) -> list:
    """``busy(ms, i)`` for each ``i`` in ``range(*bounds)``: a chunk batched by hand."""
    return [busy(ms, i) for i in range(*bounds)]


def busy_call(args) -> dict:
    """``busy`` taking one tuple, for ``map``-style pools."""
    return busy(*args)


# ----------------------------------------------------------------- a Mesa model as a trial
# Mesa is imported only inside these functions: workers running the plain busy
# loop never pay for it, and the suite still runs where Mesa is not installed.


def mesa_model_cls():
    """The tutorial's Boltzmann wealth model with a CPU-time reporter
    (``benchmarks.mesa_boltzmann.TimedMoneyModel``)."""
    from benchmarks.mesa_boltzmann import TimedMoneyModel

    return TimedMoneyModel


_MODEL = None


def mesa_trial(n: int = 100, steps: int = 100, seed: int = 0, i: int = 0) -> dict:
    """One Mesa run exactly as ``mesa.batch_run`` does it (same loop, same stop rule)."""
    global _MODEL
    if _MODEL is None:
        _MODEL = mesa_model_cls()
    model = _MODEL(n=n, seed=seed, i=i)
    while model.running and model.steps <= steps:
        model.step()
    last = model.datacollector.model_vars
    return {"gini": last["Gini"][-1], "cpu_s": last["cpu_s"][-1]}


def noop(x: float = 0.0, seed: int = 0) -> dict:
    """The no-op trial of the expansion, scale and command-line benchmarks."""
    return {"y": x}


def busy_quad(x: float = 0.0, y: float = 0.0, ms: float = 0.0, seed: int = 0) -> dict:
    """``busy`` for ``ms`` ms, then a smooth objective with its minimum 0 at (1, -0.5):
    the adaptive-search benchmark's trial (bench_optuna.py)."""
    out = busy(ms)
    out["f"] = (x - 1.0) ** 2 + (y + 0.5) ** 2
    return out
