"""A trial that does nothing, for measuring daskbench's own overhead."""


def trial(x: float = 0.0, seed: int = 0) -> dict:
    return {"y": x}
