"""The model API: a model declares populations of agents and how they step.

Two kinds of population:

- :class:`Population`, *columnar*: one object holds many agents as NumPy arrays,
  one row per agent (``self.ids[i]`` is the global id of row ``i``). Its
  ``step`` updates all of its agents at once. This is how a shard steps
  hundreds of thousands of agents per tick.
- :class:`Agent`, *plain objects*: one Python object per agent with its own
  ``step``, stepped in id order. Declare a subclass of :class:`Agent` in
  ``Model.populations`` and daskbench wraps the objects in an
  :class:`ObjectPopulation`.

Agents are long-lived: a population object lives on its shard for the whole
simulation and keeps its state between ticks. Agent ids are global and
contiguous per population, in the order ``Model.populations`` declares them.
"""

from __future__ import annotations

import numbers
from typing import Any, Callable, ClassVar, Dict, List, Mapping, Optional, Type, Union

import numpy as np

from .errors import SimulationError
from .inbox import Inbox
from .messages import Outbox
from .rng import AgentRandom, agent_generator


class Model:
    """Base class of a simulation model.

    Subclass it, declare ``populations`` (name -> :class:`Population` or
    :class:`Agent` subclass) and ``sizes()``; the keyword arguments of
    ``__init__`` are the model's parameters (``trial.params`` in a config).
    daskbench sets ``self.seed`` before any other method runs.
    """

    populations: ClassVar[Mapping[str, Union[Type[Population], Type[Agent]]]] = {}
    #: ticks from sending a message to its receiver seeing it (None: 1, undeclared); a model that
    #: declares ``d`` may run with ``clock.lookahead`` up to ``d`` (shards exchange every ``d`` ticks)
    message_delay: ClassVar[Optional[int]] = None
    seed: int = 0

    def sizes(self) -> Mapping[str, int]:
        """Number of agents of each population."""
        raise NotImplementedError(f"{type(self).__name__} must define sizes() -> {{population: count}}")

    def graph(self) -> Any:
        """The interaction graph over agent ids (a ``networkx.Graph``), for ``allocation: community``."""
        return None

    def tick_cost(self) -> Optional[float]:
        """Estimated seconds one tick takes to step all agents on one core, or None (the default:
        daskbench estimates from the number of agents). ``trial.shards: auto`` reads it to choose
        between running in the trial's own task and sharding (:mod:`daskbench.sim.parallelism`)."""
        return None

    def report(self, tick: int, totals: Mapping[str, Any]) -> Mapping[str, Any]:
        """Model-level reporters of one tick, from the populations' ``observe()`` summed over shards.

        Return a mapping of name to scalar; the default returns the totals as they are.
        """
        return totals

    def summary(self, steps: List[Dict[str, Any]]) -> Mapping[str, Any]:
        """Extra metrics for the trial's row, from all rows of the ``steps`` table."""
        return {}


class Tick:
    """What a population's ``step`` sees of one tick."""

    __slots__ = ("tick", "time", "model", "n_agents", "rng", "_inboxes", "_outbox", "_row_of", "_n")

    def __init__(
        self,
        tick: int,
        time: float,
        model: Model,
        n_agents: int,
        rng: AgentRandom,
        inboxes: Dict[str, Inbox],
        outbox: Outbox,
        row_of: Callable[[np.ndarray], np.ndarray],
        n: int,
    ):
        self.tick = tick
        self.time = time
        self.model = model
        self.n_agents = n_agents
        self.rng = rng
        self._inboxes = inboxes
        self._outbox = outbox
        self._row_of = row_of
        self._n = n

    def inbox(self, kind: str = "msg") -> Inbox:
        """Messages of ``kind`` sent to this population's agents during the previous tick."""
        box = self._inboxes.get(kind)
        return box if box is not None else Inbox([], self._row_of, self._n, kind)

    @property
    def kinds(self) -> List[str]:
        """Kinds of the messages received this tick."""
        return sorted(self._inboxes)

    def send(self, dst: Any, src: Any, kind: str = "msg", delay: Optional[int] = None, **fields: Any) -> None:
        """Send messages from agents ``src`` to agents ``dst`` (global ids; arrays or ints).

        Fields are one value per message or one for all. Receivers see them
        ``delay`` ticks later (default: the model's ``message_delay``, else the
        next tick), wherever they live, ordered by (receiver, sender).
        ``src=None`` sends anonymous messages: half the bytes, but receivers can
        only count them or sum integer fields.
        """
        self._outbox.send(dst, src, kind, fields, delay)


class Population:
    """A columnar population: this shard's agents of one type, as arrays.

    daskbench sets ``name``, ``ids`` (sorted global ids), ``n``, ``model`` and
    ``seed``, then calls ``setup``. Override:

    - ``setup(rng)``: create the state arrays (``rng`` draws per agent at tick -1).
    - ``step(t)``: one tick for all of them (``t`` is a :class:`Tick`).
    - ``next_activity(tick)``: the next tick at which any of them has something
      to do; ``None`` = only when a message arrives. Default: every tick.
    - ``observe()``: partial model reporters (numbers or arrays), summed over shards.
    - ``agent_report()``: per-agent columns (arrays of length ``n``) for the ``agents`` table.
    """

    name: str
    ids: np.ndarray
    n: int
    model: Model
    seed: int

    def _bind(self, name: str, ids: np.ndarray, model: Model, seed: int) -> None:
        self.name, self.ids, self.n, self.model, self.seed = name, ids, len(ids), model, int(seed)

    def setup(self, rng: AgentRandom) -> None:
        pass

    def step(self, t: Tick) -> None:
        pass

    def next_activity(self, tick: int) -> Optional[int]:
        return tick + 1

    def observe(self) -> Mapping[str, Any]:
        return {}

    def agent_report(self) -> Mapping[str, Any]:
        return {}

    def agent_steps(self) -> int:
        """Agents stepped by the last ``step`` (for agent-steps per second)."""
        return self.n


class Message:
    """One message as a plain-object agent receives it."""

    __slots__ = ("src", "kind", "fields")

    def __init__(self, src: int, kind: str, fields: Dict[str, Any]):
        self.src, self.kind, self.fields = src, kind, fields

    def __getattr__(self, name: str) -> Any:
        try:
            return self.fields[name]
        except KeyError:
            raise AttributeError(
                f"message of kind {self.kind!r} has no field {name!r}; it carries {sorted(self.fields)}"
            ) from None

    def __repr__(self) -> str:
        return f"Message(src={self.src}, kind={self.kind!r}, {self.fields})"


class AgentTick:
    """What one plain-object agent's ``step`` sees of one tick."""

    __slots__ = ("tick", "time", "model", "n_agents", "inbox", "_agent", "_outbox")

    def __init__(
        self, tick: int, time: float, model: Model, n_agents: int, agent: Agent, inbox: List[Message], outbox: List[Any]
    ):
        self.tick, self.time, self.model, self.n_agents = tick, time, model, n_agents
        self.inbox = inbox
        self._agent = agent
        self._outbox = outbox  # a list of (kind, dst, src, fields, delay), see ObjectPopulation.step

    def send(self, dst: int, kind: str = "msg", delay: Optional[int] = None, **fields: Any) -> None:
        """Send one message from this agent to agent ``dst``, seen ``delay`` ticks later
        (default: the model's ``message_delay``, else the next tick)."""
        # gathered per kind and handed to the shard's outbox as one batch when the population has
        # stepped (one batch per message cost ~70 us each); the order of a kind's messages is kept
        self._outbox.append((kind, dst, self._agent.id, fields, delay))


class Agent:
    """A plain-object agent. daskbench sets ``id``, ``model`` and ``rng`` (a
    NumPy ``Generator`` of its own, spawned from the trial seed and the id).

    Override ``setup()``, ``step(t)`` (``t`` is an :class:`AgentTick`, with
    ``t.inbox`` and ``t.send``), ``next_activity(tick)``, ``report()`` (a dict of
    scalars for the ``agents`` table) and the classmethod ``observe(agents)``
    (partial model reporters over this shard's agents of the type).
    """

    id: int
    model: Model
    rng: np.random.Generator

    def setup(self) -> None:
        pass

    def step(self, t: AgentTick) -> None:
        pass

    def next_activity(self, tick: int) -> Optional[int]:
        return tick + 1

    def report(self) -> Mapping[str, Any]:
        return {}

    @classmethod
    def observe(cls, agents: List[Agent]) -> Mapping[str, Any]:
        return {}


def _flush(sent: List[Any], outbox: Outbox) -> None:
    """The messages plain-object agents sent, ``(kind, dst, src, fields, delay)`` in order, as one batch
    per run of the same kind, delay and field names (one per kind when an agent type sends alike messages)."""
    by_kind: Dict[Any, List[Any]] = {}
    for msg in sent:
        by_kind.setdefault((msg[0], msg[4]), []).append(msg)
    for (kind, delay), msgs in by_kind.items():
        start = 0
        while start < len(msgs):
            names = tuple(msgs[start][3])
            end = start + 1
            while end < len(msgs) and tuple(msgs[end][3]) == names:
                end += 1
            run = msgs[start:end]
            fields = {k: [m[3][k] for m in run] for k in names}
            outbox.send(np.asarray([m[1] for m in run]), np.asarray([m[2] for m in run]), kind, fields, delay)
            start = end


class ObjectPopulation(Population):
    """Plain-object agents of one type held by one shard, stepped in id order."""

    def __init__(self, agent_cls: Type[Agent]):
        self.agent_cls = agent_cls
        self.agents: List[Agent] = []
        self._due: List[Optional[int]] = []
        self._stepped = 0

    def setup(self, rng: AgentRandom) -> None:
        for gid in self.ids.tolist():
            a = self.agent_cls.__new__(self.agent_cls)
            a.id, a.model, a.rng = gid, self.model, agent_generator(self.seed, gid)
            a.setup()
            self.agents.append(a)
        self._due = [0] * len(self.agents)

    def _messages(self, t: Tick) -> Dict[int, List[Message]]:
        by_row: Dict[int, List[Message]] = {}
        for kind in t.kinds:
            box = t.inbox(kind)
            rows, src = box.rows.tolist(), box.src.tolist()
            cols = {k: box[k].tolist() for k in box._batch().fields}
            for i, (row, s) in enumerate(zip(rows, src)):
                by_row.setdefault(row, []).append(Message(s, kind, {k: v[i] for k, v in cols.items()}))
        for msgs in by_row.values():  # all kinds together, in sender order
            msgs.sort(key=lambda m: m.src)
        return by_row

    def step(self, t: Tick) -> None:
        by_row = self._messages(t)
        self._stepped = 0
        sent: List[Any] = []
        for row, agent in enumerate(self.agents):
            due = self._due[row]
            inbox = by_row.get(row, [])
            if inbox or (due is not None and due <= t.tick):
                agent.step(AgentTick(t.tick, t.time, t.model, t.n_agents, agent, inbox, sent))
                self._due[row] = agent.next_activity(t.tick)
                self._stepped += 1
        _flush(sent, t._outbox)

    def next_activity(self, tick: int) -> Optional[int]:
        due = [d for d in self._due if d is not None]
        return max(min(due), tick + 1) if due else None

    def observe(self) -> Mapping[str, Any]:
        return self.agent_cls.observe(self.agents)

    def agent_report(self) -> Mapping[str, Any]:
        rows = [dict(a.report()) for a in self.agents]
        if not rows or not rows[0]:
            return {}
        out: Dict[str, Any] = {}
        for key in rows[0]:
            values = []
            for a, r in zip(self.agents, rows):
                v = r.get(key)
                if not (v is None or isinstance(v, (numbers.Number, str, bool, np.generic))):
                    raise SimulationError(
                        f"agent reporter {key!r} of {self.agent_cls.__name__} {a.id} returned "
                        f"{type(v).__name__}; agent reporters must return scalars"
                    )
                values.append(v)
            out[key] = np.asarray(values)
        return out

    def agent_steps(self) -> int:
        return self._stepped
