"""runner.submit.Submitter.results on fakes: every ended future comes out exactly once."""

from __future__ import annotations

from typing import Any, List

from daskbench.runner.submit import Submitter


class FlippingFuture:
    """A future whose status changes as it is read, as one does whose finished result was
    lost with its worker and computed again elsewhere meanwhile."""

    def __init__(self, key: str, statuses: List[str]) -> None:
        self.key, self._statuses = key, list(statuses)

    @property
    def status(self) -> str:
        return self._statuses.pop(0) if len(self._statuses) > 1 else self._statuses[0]

    def result(self) -> Any:
        return f"value of {self.key}"


class Batches:
    def __init__(self, futs: List[Any]) -> None:
        self.futs = futs

    def next_batch(self, block: bool = True) -> List[Any]:
        futs, self.futs = self.futs, []
        return futs

    def is_empty(self) -> bool:
        return not self.futs


class Client:
    scheduler = None

    def gather(self, futs: List[Any], direct: Any = None) -> List[Any]:
        return [f"value of {f.key}" for f in futs]


def test_a_future_whose_status_changes_while_read_comes_out_once():
    futs = [
        FlippingFuture("lost-then-finished", ["lost", "finished"]),
        FlippingFuture("finished-then-lost", ["finished", "lost"]),
        FlippingFuture("error", ["error"]),
    ]
    out = Submitter(Client(), "k-", {}, 0, 0).results(Batches(futs), need=3)  # type: ignore[arg-type]
    assert sorted(f.key for f, _ in out) == sorted(f.key for f in futs)
    assert all(v == f"value of {f.key}" for f, v in out)
