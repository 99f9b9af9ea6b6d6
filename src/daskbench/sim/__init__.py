"""Long-lived simulated agents, sharded over Dask actors.

A model (:class:`Model`) declares populations of agents: columnar
(:class:`Population`, NumPy arrays, one row per agent) or plain objects
(:class:`Agent`). Its agents are split into shards; each shard is one Dask
actor holding many agents; the shards step in lockstep, kept in step among
themselves (a barrier between shards, :mod:`daskbench.sim.window`; the coordinator
hears from them once per window of ticks), with fast-forward over idle ticks,
optional lookahead and optional real-time pacing; agents message each
other by id; placement is ``round_robin`` or by graph ``community``; random
draws come from per-agent streams, so 1, 2 or 4 shards give the same result;
shards are checkpointed every K ticks and restarted when a worker dies.

The core (model, shard, messages, clock, partition, coordinator) imports no
Dask; :mod:`daskbench.sim.actor` is the thin Dask layer.
"""

from .clock import Clock
from .coordinator import Outcome, Settings, simulate
from .errors import ShardLost, SimulationError
from .host import LocalHost
from .inbox import Inbox
from .model import Agent, AgentTick, Message, Model, Population, Tick
from .rng import AgentRandom
from .run import run, tables, trial

__all__ = [
    "Agent",
    "AgentRandom",
    "AgentTick",
    "Clock",
    "Inbox",
    "LocalHost",
    "Message",
    "Model",
    "Outcome",
    "Population",
    "Settings",
    "ShardLost",
    "SimulationError",
    "Tick",
    "run",
    "simulate",
    "tables",
    "trial",
]
