"""A trial that does nothing, for measuring daskbench's own overhead."""


def trial(x: float = 0.0, seed: int = 0) -> dict:
    return {"y": x}


# --------------------------------------------------------------------------- an idle simulation
from daskbench import sim  # noqa: E402


class Idle(sim.Model):
    """``n_agents`` agents whose step does nothing: measures the clock's own cost per tick."""

    populations = {"agent": sim.Population}

    def __init__(self, n_agents: int = 2):
        self.n_agents = int(n_agents)

    def sizes(self):
        return {"agent": self.n_agents}
