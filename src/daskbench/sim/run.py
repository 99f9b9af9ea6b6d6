"""Running a simulation: in this process, on a Client, or as a trial of a sweep.

``daskbench.sim.trial`` is the ``trial._target_`` of simulation experiments:
it imports the model, runs it and returns the trial's metrics with the
``steps`` and ``agents`` tables, which daskbench writes to Parquet keyed by
``trial_id`` and ``tick``.

Where the shards live (``shards``: ``auto``, the default, a number, or null):

- ``auto`` on a small model (:mod:`daskbench.sim.parallelism` says which) and
  anything outside Dask: every agent in this process, in the trial's own task,
  no actors (:class:`LocalHost`);
- otherwise, called inside a Dask task (a sweep's trial), the trial opens a
  ``worker_client`` (seceding), reserves a thread on each worker its shards go
  to (:mod:`daskbench.sim.slots`: one sharded trial at a time) and places one
  shard actor per eligible worker in turn (workers with the trial's
  ``resources``); ``auto`` picks the count, null means one per eligible worker;
- given ``client=``, the same on that client's cluster (notebooks).
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, replace
from typing import Any, Callable, Dict, List, Mapping, Optional, Union

import numpy as np

from ..dask_compat import workers_now
from .clock import Clock
from .coordinator import Outcome, Settings, simulate
from .errors import SimulationError
from .host import LocalHost
from .memory import keep_temporaries
from .model import Model
from .parallelism import AUTO, auto_shards, check_shards, estimate_tick_s, worth_asking
from .partition import allocate, cut_fraction
from .shard import Layout

CLOCK_KEYS = ("fast_forward", "realtime_factor", "tick_seconds", "lookahead", "transport")


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
    check_shards(settings.shards, n)
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
        if shards == 1 and settings.allocation == "community" and not graph_cache:
            outcome.metrics["graph_cut_fraction"] = 0.0  # one shard cuts nothing: no need to build the graph
        elif settings.allocation == "community" or graph_cache:
            outcome.metrics["graph_cut_fraction"] = cut_fraction(graph(), assign)
        return outcome

    auto = settings.shards == AUTO
    if not local and auto and not worth_asking(estimate_tick_s(model, layout)):
        local = True  # a small model: no need to ask the cluster how many workers it has
    if local:
        keep_temporaries()  # a trial's own process on a worker has Dask's allocator settings too
        whole = isinstance(settings.shards, (int, np.integer))
        shards = int(settings.shards) if whole else 1  # type: ignore[arg-type]  # auto and null: one here
        assign = _one_shard(model, n) if shards == 1 else allocate(settings.allocation, n, shards, graph, seed)
        host = LocalHost(model, assign, layout, seed, settings.tick_seconds)
        # all in this process, no shard can be lost alone (the task runs to its end or fails
        # whole): checkpoints would be snapshots nobody restarts from
        return finish(simulate(model, host, replace(settings, checkpoint_every=0), clock), shards, assign, 1)

    from .actor import eligible_workers, resource_restrictions

    resources = resource_restrictions()
    if client is None:
        from distributed import get_client

        client_now = get_client()
    else:
        client_now = client
    workers = eligible_workers(workers_now(client_now), resources)
    whole = isinstance(settings.shards, (int, np.integer))
    shards = int(settings.shards) if whole else len(workers)  # type: ignore[arg-type]
    if auto:
        shards = auto_shards(estimate_tick_s(model, layout), n, len(workers))
        if shards == 1:
            return run(model, replace(settings, shards=1), seed, local=True)
    job = _Sharded(model, settings, seed, layout, clock, graph, finish, resources, shards, workers)
    if client is not None:
        return job.on(client)
    return _seceded(job)


def _one_shard(model: Model, n: int) -> np.ndarray:
    """Every agent on shard 0, whatever the allocation (a community allocation would build the
    graph and run Louvain on it, seconds for a few thousand agents, to put them all in one place)."""
    return np.zeros(n, dtype=np.int32)


def _seceded(job: _Sharded) -> Outcome:
    """``job`` from inside a trial's task: seceded, so the worker's thread is free for a shard."""
    from distributed import worker_client

    try:
        with worker_client() as wc:
            return job.on(wc)
    except ValueError as exc:
        if "secede" in str(exc) or "thread" in str(exc):
            raise SimulationError(
                "a simulation trial cannot run with timeout_s set (it runs in a helper thread that cannot "
                "secede from the worker to make room for its shards); remove timeout_s"
            ) from None
        raise


@dataclass
class _Sharded:
    """A simulation whose ``shards`` shards go to actors on ``workers`` in turn."""

    model: Model
    settings: Settings
    seed: int
    layout: Layout
    clock: Clock
    graph: Callable[[], Any]
    finish: Callable[..., Outcome]
    resources: Dict[str, float]
    shards: int
    workers: List[str]

    def on(self, client: Any) -> Outcome:
        from .actor import ActorHost
        from .slots import ReservedHost, lease

        assign = allocate(self.settings.allocation, self.layout.n_agents, self.shards, self.graph, self.seed)
        with lease(client):
            actors = ActorHost(
                client,
                self.model,
                assign,
                self.layout,
                self.seed,
                self.settings.tick_seconds,
                self.workers,
                self.resources,
                transport=self.settings.transport,
            )
            host = ReservedHost(actors, client)
            try:
                outcome = simulate(self.model, host, self.settings, self.clock)
            finally:
                host.close()
        outcome.metrics["shard_transport"] = actors.transport_used
        return self.finish(outcome, self.shards, assign, len(set(actors.placed)))


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
    shards: Union[int, str, None] = "auto",
    allocation: str = "round_robin",
    clock: Optional[Mapping[str, Any]] = None,
    checkpoint_every: int = 0,
    agent_report_every: int = 0,
    max_restarts: int = 3,
    local: Optional[bool] = None,
) -> Dict[str, Any]:
    """A simulation as a trial of a sweep: metrics for the ``trials`` row, ``steps`` and ``agents`` tables.

    - ``model``: import path of a :class:`daskbench.sim.Model` subclass; ``params``: its keyword arguments.
    - ``ticks``: ticks to simulate; ``shards``: ``auto`` (local for a small model, sharded for a
      large one: :mod:`daskbench.sim.parallelism`), a number of shards, or null (one per worker);
      ``allocation``: ``round_robin`` or ``community``.
    - ``clock``: ``fast_forward`` (default true), ``realtime_factor`` (null: as fast as possible),
      ``tick_seconds`` (simulated seconds per tick, default 1), ``lookahead`` (ticks shards
      advance between exchanges, default 1; at most the model's ``message_delay``), ``transport``
      (``socket``, the default: direct connections between shards on ``tcp://`` clusters; ``comm``:
      Dask actor calls, as on TLS clusters; see :mod:`daskbench.sim.barrier`).
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
    shards: Union[int, str, None],
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
    if isinstance(a["shards"], int) and a["shards"] > 1:
        _check_shards_fit(cls, params, a["shards"], a["seed"])


def _check_shards_fit(cls: type, params: Mapping[str, Any], shards: int, seed: Any) -> None:
    """More shards than agents is an error: build the model (cheap for a model that builds its
    agents in ``setup``, as it should) and count its agents."""
    try:
        instance = cls(**params)
        instance.seed = int(seed) if isinstance(seed, int) else 0
        n = Layout.of(instance).n_agents
    except SimulationError:
        raise
    except Exception:  # noqa: BLE001 - the trial itself will say what is wrong, with its traceback
        return
    check_shards(shards, n)


def _params_error(cls: type, exc: TypeError, params: Mapping[str, Any]) -> SimulationError:
    return SimulationError(f"{cls.__name__}: {exc}; check trial.params (given: {', '.join(sorted(params)) or 'none'})")
