"""Running a simulation: in this process, on a Client, or as a trial of a sweep.

``daskbench.sim.trial`` is the ``trial._target_`` of simulation experiments:
it imports the model, runs it and returns the trial's metrics with the
``steps`` and ``agents`` tables, which daskbench writes to Parquet keyed by
``trial_id`` and ``tick``.

Where the shards live:

- called inside a Dask task (a sweep's trial), the trial opens a
  ``worker_client`` (seceding, so its thread is free for a shard) and places
  one shard actor per eligible worker in turn (workers with the trial's
  ``resources``); ``shards`` defaults to the number of those workers;
- given ``client=``, the same on that client's cluster (notebooks);
- otherwise every shard in this process (``shards`` defaults to 1).
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any, Dict, Mapping, Optional

import numpy as np

from .clock import Clock
from .coordinator import Outcome, Settings, simulate
from .errors import SimulationError
from .host import LocalHost
from .memory import keep_temporaries
from .model import Model
from .partition import allocate, cut_fraction
from .shard import Layout

CLOCK_KEYS = ("fast_forward", "realtime_factor", "tick_seconds", "lookahead")


def _clock(settings: Settings) -> Clock:
    return Clock(settings.ticks, 0, settings.fast_forward, settings.realtime_factor, settings.tick_seconds)


def _in_task() -> bool:
    try:
        from distributed import get_worker
        from distributed.worker import thread_state

        get_worker()
        return getattr(thread_state, "key", None) is not None
    except (ImportError, ValueError):
        return False


def run(model: Model, settings: Settings, seed: int = 0, client: Any = None, local: Optional[bool] = None) -> Outcome:
    """Run ``model`` to the end; see the module docstring for where shards live."""
    settings.check()
    settings.check_model(type(model))
    model.seed = int(seed)
    layout = Layout.of(model)
    n = layout.n_agents
    clock = _clock(settings)
    if local is None:
        local = client is None and not _in_task()
    graph_cache: Dict[str, Any] = {}

    def graph():
        if "g" not in graph_cache:
            graph_cache["g"] = model.graph()
        return graph_cache["g"]

    def finish(outcome: Outcome, shards: int, assign: np.ndarray, workers: int) -> Outcome:
        outcome.metrics.update(n_agents=n, shards=shards, shard_workers=workers)
        if settings.allocation == "community" or graph_cache:
            outcome.metrics["graph_cut_fraction"] = cut_fraction(graph(), assign)
        return outcome

    if local:
        keep_temporaries()  # a trial's own process on a worker has Dask's allocator settings too
        shards = settings.shards or 1
        assign = allocate(settings.allocation, n, shards, graph, seed)
        host = LocalHost(model, assign, layout, seed, settings.tick_seconds)
        return finish(simulate(model, host, settings, clock), shards, assign, 1)

    from .actor import resource_restrictions

    resources = resource_restrictions()
    if client is not None:
        return _on_client(client, model, settings, seed, layout, clock, graph, finish, resources)
    from distributed import worker_client

    try:
        # secede: the worker's thread is free for a shard while this coordinator waits
        with worker_client() as wc:
            return _on_client(wc, model, settings, seed, layout, clock, graph, finish, resources)
    except ValueError as exc:
        if "secede" in str(exc) or "thread" in str(exc):
            raise SimulationError(
                "a simulation trial cannot run with timeout_s set (it runs in a helper thread that cannot "
                "secede from the worker to make room for its shards); remove timeout_s"
            ) from None
        raise


def _on_client(client, model, settings, seed, layout, clock, graph, finish, resources) -> Outcome:
    from .actor import ActorHost, eligible_workers

    workers = eligible_workers(client.scheduler_info(n_workers=-1)["workers"], resources)
    shards = settings.shards or len(workers)
    assign = allocate(settings.allocation, layout.n_agents, shards, graph, seed)
    host = ActorHost(client, model, assign, layout, seed, settings.tick_seconds, workers, resources)
    try:
        outcome = simulate(model, host, settings, clock)
    finally:
        host.close()
    return finish(outcome, shards, assign, len(set(host.placed)))


def tables(outcome: Outcome) -> Dict[str, Any]:
    """The ``steps`` and ``agents`` tables of an outcome, as Arrow tables."""
    import pyarrow as pa

    out: Dict[str, Any] = {}
    if outcome.steps:
        out["steps"] = pa.Table.from_pylist(outcome.steps)
    parts = []
    for tick, name, ids, cols in outcome.agents:
        arrays = {
            "tick": pa.array(np.full(len(ids), tick, dtype=np.int64)),
            "agent_id": pa.array(ids.astype(np.int64)),
            "population": pa.array([name] * len(ids), pa.string()),
        }
        arrays.update({k: pa.array(v) for k, v in cols.items()})
        parts.append(pa.table(arrays))
    if parts:
        out["agents"] = pa.concat_tables(parts, promote_options="permissive")
    return out


def import_model(path: str) -> type:
    """The model class at ``package.module.Class``."""
    mod, _, attr = str(path).rpartition(".")
    try:
        cls = getattr(importlib.import_module(mod), attr) if mod else None
    except (ImportError, AttributeError) as exc:
        raise SimulationError(
            f"trial.model={path!r} cannot be imported ({exc}); give package.module.ModelClass"
        ) from None
    if not (isinstance(cls, type) and issubclass(cls, Model)):
        raise SimulationError(f"trial.model={path!r} is not a subclass of daskbench.sim.Model")
    return cls


def trial(
    model: str,
    params: Optional[Mapping[str, Any]] = None,
    seed: int = 0,
    ticks: int = 100,
    shards: Optional[int] = None,
    allocation: str = "round_robin",
    clock: Optional[Mapping[str, Any]] = None,
    checkpoint_every: int = 0,
    agent_report_every: int = 0,
    max_restarts: int = 3,
    local: Optional[bool] = None,
) -> Dict[str, Any]:
    """A simulation as a trial of a sweep: metrics for the ``trials`` row, ``steps`` and ``agents`` tables.

    - ``model``: import path of a :class:`daskbench.sim.Model` subclass; ``params``: its keyword arguments.
    - ``ticks``: ticks to simulate; ``shards``: number of shards (null: one per worker);
      ``allocation``: ``round_robin`` or ``community``.
    - ``clock``: ``fast_forward`` (default true), ``realtime_factor`` (null: as fast as possible),
      ``tick_seconds`` (simulated seconds per tick, default 1), ``lookahead`` (ticks shards
      advance between exchanges, default 1; at most the model's ``message_delay``).
    - ``checkpoint_every``: ticks between shard checkpoints (0: restart from the start after a loss);
      ``agent_report_every``: ticks between rows of the ``agents`` table (0: none);
      ``max_restarts``: shard losses survived before the trial fails.
    - ``local``: true runs every shard in the trial's own process.
    """
    settings = _settings(ticks, shards, allocation, clock, checkpoint_every, agent_report_every, max_restarts)
    cls = import_model(model)
    params = dict(params or {})
    try:
        instance = cls(**params)
    except TypeError as exc:
        raise _params_error(cls, exc, params) from None
    outcome = run(instance, settings, seed=seed, local=local)
    result: Dict[str, Any] = dict(outcome.metrics)
    result.update(tables(outcome))
    return result


def _settings(
    ticks: int,
    shards: Optional[int],
    allocation: str,
    clock: Optional[Mapping[str, Any]],
    checkpoint_every: int,
    agent_report_every: int,
    max_restarts: int,
) -> Settings:
    """A trial's ``Settings``, checked (a :class:`SimulationError` names the first bad one)."""
    clock = dict(clock or {})
    unknown = sorted(set(clock) - set(CLOCK_KEYS))
    if unknown:
        raise SimulationError(f"trial.clock.{unknown[0]} is not a clock setting; use {', '.join(CLOCK_KEYS)}")
    settings = Settings(
        ticks=ticks,
        shards=shards,
        allocation=allocation,
        checkpoint_every=checkpoint_every,
        agent_report_every=agent_report_every,
        max_restarts=max_restarts,
        **{k: v for k, v in clock.items() if v is not None or k == "realtime_factor"},
    )
    settings.check()
    return settings


def check(**kwargs: Any) -> None:
    """Raise the :class:`SimulationError` that ``trial(**kwargs)`` would raise before it
    simulates, without building the model or touching Dask: the settings, the model
    class and the names in ``params`` (daskbench calls this when it plans a sweep)."""
    try:
        bound = inspect.signature(trial).bind(**kwargs)
    except TypeError as exc:  # no `model`, or a keyword trial() does not take
        raise SimulationError(f"{exc}; a simulation trial needs trial.model (package.module.ModelClass)") from None
    bound.apply_defaults()
    a = bound.arguments
    settings = _settings(
        a["ticks"],
        a["shards"],
        a["allocation"],
        a["clock"],
        a["checkpoint_every"],
        a["agent_report_every"],
        a["max_restarts"],
    )
    cls = import_model(a["model"])
    settings.check_model(cls)
    params = dict(a["params"] or {})
    try:  # names only: building a model can take long (networks, 100k agents)
        inspect.signature(cls).bind(**params)
    except TypeError as exc:
        raise _params_error(cls, exc, params) from None


def _params_error(cls: type, exc: TypeError, params: Mapping[str, Any]) -> SimulationError:
    return SimulationError(f"{cls.__name__}: {exc}; check trial.params (given: {', '.join(sorted(params)) or 'none'})")
