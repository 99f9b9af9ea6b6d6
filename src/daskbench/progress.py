"""What the terminal shows while a sweep runs: a bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Optional, TextIO


@dataclass
class Counts:
    """Trials of this sweep by outcome; ``skipped`` were already ok on disk."""

    total: int = 0
    skipped: int = 0
    ok: int = 0
    failed: int = 0
    timeout: int = 0
    cancelled: int = 0
    in_flight: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def done(self) -> int:
        return self.ok + self.failed + self.timeout + self.cancelled

    @property
    def bad(self) -> int:
        return self.failed + self.timeout

    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def eta(self) -> Optional[float]:
        rate, left = self.rate(), self.total - self.skipped - self.done
        return left / rate if rate > 0 and left >= 0 else None

    def line(self) -> str:
        eta = self.eta()
        todo = self.total - self.skipped
        return (
            f"{self.done}/{todo} done  ok {self.ok}  failed {self.bad}  in flight {self.in_flight}  "
            f"{self.rate():.1f} trials/s  ETA {_fmt(eta)}"
        )


def _fmt(seconds: Optional[float]) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    """Base: shows nothing."""

    def __init__(self, counts: Counts):
        self.counts = counts

    def start(self) -> None: ...

    def update(self) -> None: ...

    def stop(self) -> None: ...


class PlainProgress(Progress):
    """One line every ``interval`` seconds: for CI logs and non-interactive runs."""

    def __init__(self, counts: Counts, interval: float = 5.0, stream: TextIO = sys.stdout):
        super().__init__(counts)
        self.interval, self.stream = interval, stream
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="daskbench-progress")

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            print(f"[daskbench] {self.counts.line()}", file=self.stream, flush=True)

    def stop(self) -> None:
        self._stop.set()
        print(f"[daskbench] {self.counts.line()}", file=self.stream, flush=True)


class BarProgress(Progress):
    """A rich progress bar with done / failed / in flight / total, rate and ETA."""

    def __init__(self, counts: Counts, description: str):
        super().__init__(counts)
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
        from rich.progress import Progress as RichProgress

        self._bar = RichProgress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("ok {task.fields[ok]}  [red]failed {task.fields[bad]}[/]  in flight {task.fields[flight]}"),
            TextColumn("{task.fields[rate]:.1f}/s"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            refresh_per_second=4,
        )
        self._task = self._bar.add_task(description, total=max(counts.total - counts.skipped, 0),
                                        ok=0, bad=0, flight=0, rate=0.0)

    def start(self) -> None:
        self._bar.start()

    def update(self) -> None:
        c = self.counts
        self._bar.update(self._task, completed=c.done, ok=c.ok, bad=c.bad, flight=c.in_flight, rate=c.rate())

    def stop(self) -> None:
        self.update()
        self._bar.stop()


def make_progress(mode: str, counts: Counts, description: str, interval: float) -> Progress:
    """``auto`` picks a bar on a terminal and plain lines otherwise."""
    if mode == "auto":
        mode = "bar" if sys.stdout.isatty() else "plain"
    if mode == "bar":
        return BarProgress(counts, description)
    if mode == "plain":
        return PlainProgress(counts, interval)
    return Progress(counts)
