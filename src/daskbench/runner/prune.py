"""Worker side of pruning: which running trials the driver told to stop.

With ``sweep.pruner`` set, the driver reads each trial's ``daskbench.report(step=...,
OBJECTIVE=...)``, reports it to the trial's Optuna trial and, when the pruner says
so, marks the trial here, on every worker (``Client.run(mark, ...)``: a set in the
worker process, so checking costs a lookup, not a message). The trial learns it
either by asking (``daskbench.should_stop()``) or at its next ``daskbench.report``,
which raises :class:`TrialPruned`; its row gets status ``pruned`` and the last step
it reported (``last_step``). Pruning reaches trials running in the worker's own
thread (``runner.isolation: thread``, the default without ``timeout_s``).

:mod:`daskbench.observe.live` calls :func:`on_report` from ``report`` through its
``REPORT_HOOKS``, where importing this module puts it.
"""

from __future__ import annotations

import threading
from typing import Dict, Iterable, Optional, Set, Tuple

from ..observe import live

_stopped: Set[str] = set()  # trial ids the driver pruned, in this worker process
_last_step: Dict[str, int] = {}
_lock = threading.Lock()


class TrialPruned(Exception):
    """Raised by ``daskbench.report()`` in a trial the search pruned: let it propagate."""


def mark(trial_ids: Iterable[str]) -> None:
    """The driver's decision (run on each worker by ``Client.run``)."""
    with _lock:
        _stopped.update(trial_ids)


def stopped(trial_id: str) -> bool:
    return trial_id in _stopped


def should_stop() -> bool:
    """Inside a trial: whether the search (``sweep.pruner``) has pruned it; return early if so."""
    ctx = live.current()
    return ctx is not None and ctx.trial_id in _stopped


def on_report(trial_id: str, metrics: Dict[str, float]) -> None:
    """Keep the step reached; raise if the trial has been pruned."""
    step = metrics.get("step")
    if step is not None:
        _last_step[trial_id] = int(step)
    if trial_id in _stopped:
        raise TrialPruned(f"pruned by the search at step {_last_step.get(trial_id)}")


def tracking() -> Tuple[Dict[str, int], Set[str]]:
    """The steps reached and the trials pruned that :func:`finish` forgets: both empty
    unless trials report steps (the same objects for the process's life, to test cheaply)."""
    return _last_step, _stopped


def tracked(trial_id: str) -> bool:
    """Whether :func:`finish` has anything to do for the trial (it reported a step, or was pruned)."""
    return trial_id in _last_step or trial_id in _stopped


def start(trial_id: str) -> None:
    """A trial starts: drop a mark that came after an earlier run of the same trial
    ended (the same point asked again), which would stop this run at once."""
    with _lock:
        _stopped.discard(trial_id)
        _last_step.pop(trial_id, None)


def finish(trial_id: str) -> Optional[int]:
    """The trial ended: forget it; the last step it reported if it was pruned, else None."""
    if trial_id not in _last_step and trial_id not in _stopped:  # nothing to forget: no lock (once per trial)
        return None
    with _lock:
        step = _last_step.pop(trial_id, None)
        if trial_id in _stopped:
            _stopped.discard(trial_id)
            return -1 if step is None else step
    return None


live.REPORT_HOOKS.append(on_report)
