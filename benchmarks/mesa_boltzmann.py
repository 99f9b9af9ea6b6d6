"""The Boltzmann wealth model exactly as Mesa's introductory tutorial writes it (Mesa 3).

Used only by the benchmarks, side by side with ``daskbench.experiments.boltzmann``;
needs ``pip install -e ".[bench]"`` (Mesa is not a dependency of daskbench).
"""

from __future__ import annotations

import time

import mesa


def compute_gini(model: MoneyModel) -> float:
    agent_wealths = [agent.wealth for agent in model.agents]
    x = sorted(agent_wealths)
    n = model.num_agents
    B = sum(xi * (n - i) for i, xi in enumerate(x)) / (n * sum(x))
    return 1 + (1 / n) - 2 * B


class MoneyAgent(mesa.Agent):
    def __init__(self, model):
        super().__init__(model)
        self.wealth = 1

    def exchange(self):
        if self.wealth > 0:
            other_agent = self.random.choice(self.model.agent_list)
            if other_agent is not None:
                other_agent.wealth += 1
                self.wealth -= 1


class MoneyModel(mesa.Model):
    def __init__(self, n, seed=None, collect=True):
        super().__init__(seed=seed)
        self.num_agents = n
        self.collect = collect
        MoneyAgent.create_agents(model=self, n=n)
        # The tutorial writes ``self.random.choice(self.model.agents)``; in Mesa 3.3
        # indexing an AgentSet copies it, so that line costs O(n) and the model
        # O(n^2) per step (about 200 agent-steps/s at 100,000 agents here). A
        # list made once gives Mesa its best speed; the rule is the same.
        self.agent_list = list(self.agents)
        self.datacollector = mesa.DataCollector(model_reporters={"Gini": compute_gini})

    def step(self):
        if self.collect:
            self.datacollector.collect(self)
        self.agents.shuffle_do("exchange")


class TimedMoneyModel(MoneyModel):
    """The same model for trial-throughput runs: data collected after each step (so
    the last row is the final state) and the model's own CPU time as a reporter,
    for parallel efficiency under ``mesa.batch_run`` as under any other tool."""

    def __init__(self, n=100, seed=None, i=0):
        self._t0 = time.thread_time()
        super().__init__(n, seed=seed, collect=False)
        self.datacollector = mesa.DataCollector(model_reporters={"Gini": compute_gini, "cpu_s": _cpu_s})

    def step(self):
        super().step()
        self.datacollector.collect(self)


def _cpu_s(model: TimedMoneyModel) -> float:
    return time.thread_time() - model._t0


def _max_wealth(model: MoneyModel) -> int:
    return max(agent.wealth for agent in model.agents)


def _wealth_total(model: MoneyModel) -> int:
    return sum(agent.wealth for agent in model.agents)


class SweepMoneyModel(MoneyModel):
    """The shipped ``boltzmann`` experiment's reporters in Mesa's terms, for ``mesa.batch_run``:
    the Gini, the largest wealth and the total wealth every step (the ``steps`` table), each
    agent's wealth every ``agent_every`` steps (the ``agents`` table, ``agent_report_every``)."""

    def __init__(self, n=100, seed=None, agent_every=50):
        super().__init__(n, seed=seed, collect=True)
        self.datacollector = mesa.DataCollector(
            model_reporters={"Gini": compute_gini, "max_wealth": _max_wealth, "wealth_total": _wealth_total}
        )
        self.agent_collector = mesa.DataCollector(agent_reporters={"wealth": "wealth"})
        self.agent_every = agent_every
        self.ticks = 0

    def step(self):
        if self.ticks % self.agent_every == 0:
            self.agent_collector.collect(self)
        self.ticks += 1
        super().step()
