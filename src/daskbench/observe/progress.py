"""What the terminal shows while a sweep runs: a bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, TextIO


@dataclass
class Counts:
    """Trials of this sweep by outcome; ``skipped`` were already ok on disk."""

    total: int = 0
    skipped: int = 0
    ok: int = 0
    failed: int = 0
    timeout: int = 0
    cancelled: int = 0
    pruned: int = 0  # stopped early by an adaptive search's pruner (not bad)
    in_flight: int = 0
    started: float = field(default_factory=time.monotonic)
    live: Optional[Callable[[], str]] = None  # latest aggregate of live metrics

    @property
    def done(self) -> int:
        return self.ok + self.failed + self.timeout + self.cancelled + self.pruned

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
        skipped = f"  skipped {self.skipped}" if self.skipped else ""
        live = self.live() if self.live else ""
        return (
            f"{self.done + self.skipped}/{self.total} done  ok {self.ok}  failed {self.bad}  "
            f"in flight {self.in_flight}{skipped}  {self.rate():.1f} trials/s  ETA {_fmt(self.eta())}"
            + (f"  | {live}" if live else "")
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
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
        from rich.progress import Progress as RichProgress

        self._bar = RichProgress(
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=20),
            MofNCompleteColumn(),
            TextColumn(
                "ok {task.fields[ok]}  [red]failed {task.fields[bad]}[/]  in flight {task.fields[flight]}"
                "  skipped {task.fields[skipped]}"
            ),
            TextColumn("{task.fields[rate]:.1f}/s"),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[live]}"),
            refresh_per_second=4,
        )
        self._task = self._bar.add_task(
            description, total=counts.total, ok=0, bad=0, flight=0, skipped=0, rate=0.0, live=""
        )
        self._stop = threading.Event()
        # refresh the numbers every second even while no trial finishes
        self._ticker = threading.Thread(target=self._tick, daemon=True, name="daskbench-bar")

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            self.update()

    def start(self) -> None:
        self._bar.start()
        self._ticker.start()

    def update(self) -> None:
        c = self.counts
        # skipped trials (already ok on disk) count as complete: they are found lazily
        self._bar.update(
            self._task,
            total=c.total,
            completed=c.done + c.skipped,
            ok=c.ok,
            bad=c.bad,
            flight=c.in_flight,
            skipped=c.skipped,
            rate=c.rate(),
            live=(c.live() if c.live else ""),
        )

    def stop(self) -> None:
        self._stop.set()
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
