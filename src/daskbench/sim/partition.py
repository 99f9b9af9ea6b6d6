"""Placement: which shard holds which agent.

``round_robin`` deals agent ids to shards in turn. ``community`` finds the
communities of the model's interaction graph (Louvain, from networkx) and packs
them onto shards, largest first onto the least-loaded shard, so that strongly
connected agents share a shard and shards stay within one agent of equal size;
a community larger than a shard's share is split along the order networkx's
breadth-first search visits it, which keeps its pieces connected.
"""

from __future__ import annotations

import heapq
import math
from typing import Any, List, Sequence

import numpy as np

from .errors import SimulationError

ALLOCATIONS = ("round_robin", "community")


def round_robin(n_agents: int, n_shards: int) -> np.ndarray:
    """Shard of each agent id: ``id % n_shards``."""
    return (np.arange(n_agents, dtype=np.int64) % n_shards).astype(np.int32)


def _bfs_order(graph: Any, nodes: Sequence[int]) -> List[int]:
    import networkx as nx

    sub = graph.subgraph(nodes)
    order: List[int] = []
    seen = set()
    for start in sorted(nodes):
        if start in seen:
            continue
        for node in [start] + [v for _, v in nx.bfs_edges(sub, start, sort_neighbors=sorted)]:
            if node not in seen:
                seen.add(node)
                order.append(node)
    return order


def community(n_agents: int, n_shards: int, graph: Any, seed: int) -> np.ndarray:
    """Shard of each agent id: graph communities packed onto balanced shards."""
    import networkx as nx

    if graph is None:
        raise SimulationError(
            "allocation=community needs the interaction graph: define graph() on the model "
            "(a networkx.Graph over agent ids), or use allocation=round_robin"
        )
    if not isinstance(graph, nx.Graph):
        raise SimulationError(
            f"the model's graph() returned {type(graph).__name__}; return a networkx.Graph over agent ids"
        )
    bad = [v for v in graph.nodes if not (isinstance(v, (int, np.integer)) and 0 <= v < n_agents)]
    if bad:
        raise SimulationError(
            f"the model's graph has node {bad[0]!r}, which is not an agent id (ids are 0..{n_agents - 1})"
        )
    communities = nx.community.louvain_communities(graph, seed=int(seed) % (2**32))
    # agents the graph does not mention are packed like singleton communities
    in_graph = np.zeros(n_agents, dtype=bool)
    in_graph[np.fromiter(graph.nodes, dtype=np.int64, count=graph.number_of_nodes())] = True
    groups = [sorted(int(v) for v in c) for c in communities]
    groups.sort(key=lambda g: (-len(g), g[0]))
    capacity = [n_agents // n_shards + (1 if s < n_agents % n_shards else 0) for s in range(n_shards)]
    assign = np.full(n_agents, -1, dtype=np.int32)
    heap = [(0, s) for s in range(n_shards)]  # (load, shard): least loaded first
    load = [0] * n_shards
    for group in groups:
        members = group if len(group) <= max(capacity) else _bfs_order(graph, group)
        while members:
            _, s = heapq.heappop(heap)
            room = capacity[s] - load[s]
            if room <= 0:
                continue  # full: leaves the heap for good
            if len(members) <= room:
                take, members = members, []
            else:  # does not fit whole: fill the emptiest shard and carry on
                take, members = members[:room], members[room:]
            assign[take] = s
            load[s] += len(take)
            if load[s] < capacity[s]:
                heapq.heappush(heap, (load[s], s))
    for agent in np.flatnonzero(~in_graph).tolist():
        _, s = heapq.heappop(heap)
        assign[agent] = s
        load[s] += 1
        if load[s] < capacity[s]:
            heapq.heappush(heap, (load[s], s))
    assert (assign >= 0).all()
    return assign


def allocate(allocation: str, n_agents: int, n_shards: int, graph_fn, seed: int) -> np.ndarray:
    """Shard of each agent for the named allocation (``graph_fn`` is called only if needed)."""
    if n_shards < 1:
        raise SimulationError(f"sim shards={n_shards}: give at least 1 shard")
    if n_shards > n_agents:
        raise SimulationError(
            f"shards={n_shards} is more than the model's {n_agents} agents; use at most {n_agents} shards"
        )
    if allocation == "round_robin":
        return round_robin(n_agents, n_shards)
    if allocation == "community":
        return community(n_agents, n_shards, graph_fn(), seed)
    raise SimulationError(f"allocation={allocation!r} is not known; use one of {', '.join(ALLOCATIONS)}")


def cut_fraction(graph: Any, assign: np.ndarray) -> float:
    """Fraction of the graph's edges whose ends are on different shards."""
    if graph is None or graph.number_of_edges() == 0:
        return math.nan
    edges = np.asarray(list(graph.edges()), dtype=np.int64)
    return float((assign[edges[:, 0]] != assign[edges[:, 1]]).mean())
