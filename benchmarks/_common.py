"""Shared helpers for the benchmark scripts (not part of the daskbench package).

Every benchmark prints a small table, writes its figures as JSON to
``benchmarks/results/<name>.json`` and prints the same JSON as the last line of
stdout, so the suite runner (``python -m benchmarks``) or anyone can pick them up.
Every benchmark takes one of ``--smoke`` (smallest sizes, seconds), ``--quick``
(the default) or ``--full``.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Sequence

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
#: where the JSON goes; the smoke test points it at a temporary folder
RESULTS = Path(os.environ.get("DASKBENCH_BENCH_RESULTS") or HERE / "results")
PY = sys.executable

#: a no-op trial in a module that imports nothing, so start-up figures measure daskbench
NOOP_TARGET = "benchmarks.workloads.noop"
MODES = ("smoke", "quick", "full")


def mode(argv: Sequence[str] = ()) -> str:
    """``smoke``, ``quick`` (default) or ``full`` from ``--smoke``/``--quick``/``--full``."""
    argv = list(argv) or sys.argv[1:]
    picked = [m for m in MODES if f"--{m}" in argv]
    return picked[-1] if picked else "quick"


def env() -> Dict[str, str]:
    """Environment for child processes: the repository root importable (for
    ``benchmarks.workloads``) from any working directory, output unbuffered."""
    path = os.environ.get("PYTHONPATH", "")
    return dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=str(ROOT) + (os.pathsep + path if path else ""))


def cores() -> int:
    return os.cpu_count() or 1


def machine() -> Dict[str, Any]:
    """What the figures were measured on."""
    try:
        import dask
        import distributed  # noqa: E401
        import hydra

        versions = {"dask": dask.__version__, "distributed": distributed.__version__, "hydra": hydra.__version__}
    except ImportError:  # pragma: no cover
        versions = {}
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        **versions,
    }


def write_noop_experiment(
    config_dir: Path, results_dir: Path, params: Dict[str, str], name: str = "noop", extra: str = ""
) -> Path:
    """Write ``config_dir/experiment/<name>.yaml``: the no-op trial over ``params``."""
    exp = config_dir / "experiment"
    exp.mkdir(parents=True, exist_ok=True)
    lines = [
        "# @package _global_",
        f"name: {name}",
        "trial:",
        f"  _target_: {NOOP_TARGET}",
        "  x: 0.0",
        "sweep:",
        "  params:" + ("" if params else " {}"),
    ]
    lines += [f"    {k}: {v}" for k, v in params.items()]
    lines += ["results:", f"  dir: {results_dir}"]
    if extra:
        lines.append(extra)
    path = exp / f"{name}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def write_experiment(
    config_dir: Path, name: str, target: str, trial: Dict[str, Any], results_dir: Path, report: bool = False
) -> Path:
    """Write ``config_dir/experiment/<name>.yaml`` for ``target`` with fixed ``trial``
    keyword arguments and no sweep axes (the caller sweeps on the command line);
    ``report``: the shipped default (written after the run), else off."""
    exp = config_dir / "experiment"
    exp.mkdir(parents=True, exist_ok=True)
    lines = ["# @package _global_", f"name: {name}", "trial:", f"  _target_: {target}"]
    lines += [f"  {k}: {v}" for k, v in trial.items()]
    lines += ["sweep:", "  params: {}", "results:", f"  dir: {results_dir}"] + ([] if report else ["  report: false"])
    path = exp / f"{name}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def tmpdir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"daskbench-{prefix}-"))


def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs))


def table(rows: List[Sequence[Any]], header: Sequence[str]) -> str:
    cells = [[str(h) for h in header]] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    out = []
    for n, r in enumerate(cells):
        out.append("  ".join(c.rjust(w) if n and i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))))
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if v == 0 or abs(v) >= 100:
            return f"{v:,.0f}"
        if abs(v) >= 1:
            return f"{v:.2f}"
        return f"{v:.3g}"
    return str(v)


def src_fingerprint() -> str:
    """sha256 of every .py under src/daskbench (its subpackages too): which state of
    the code the figures belong to."""
    import hashlib

    h = hashlib.sha256()
    for p in sorted((ROOT / "src" / "daskbench").rglob("*.py")):
        rel = p.relative_to(ROOT / "src" / "daskbench").as_posix()
        h.update(rel.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def emit(name: str, data: Dict[str, Any]) -> None:
    """Write ``results/<name>.json`` and print the JSON as the last line of stdout."""
    import datetime

    data = dict(
        data,
        benchmark=name,
        machine=machine(),
        src_sha256=src_fingerprint(),
        measured_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")
    print(json.dumps(data), flush=True)


def wait_for_report(results_dir: Path, timeout_s: float = 180.0) -> float:
    """Wait until the background report of a CLI run in ``results_dir`` has ended
    (its log says how); seconds waited. Not part of any timing: the user does not
    wait for it, but the next command must not compete with it for the cores."""
    import time

    log = Path(results_dir) / "report" / "report.log"
    if not log.exists() and (log.parent / "report.html").is_file():
        return 0.0  # written before the command returned (daskbench before issue 13)
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout_s:
        text = log.read_text(errors="replace") if log.is_file() else ""
        if "report: " in text or "error" in text:
            if "report: " not in text:
                raise SystemExit(f"the report was not written: {text[-2000:]}")
            return time.perf_counter() - t0
        time.sleep(0.05)
    raise SystemExit(f"no report in {results_dir} after {timeout_s:g}s")


def report_drawn(res: Any, timeout_s: float = 300.0) -> None:
    """Wait until the background report of ``daskbench.run``'s result ``res`` is written
    (none if the run wrote none). Not part of any timing: ``run`` returns before the
    report is drawn, but the next run or baseline must not compete with it for the cores."""
    if getattr(res, "report", None) is not None:
        res.wait_report(timeout_s)


def local_cluster(n_workers: int = 2, **options: Any) -> Any:
    """The benchmarks' LocalCluster: worker processes of one thread each on 127.0.0.1,
    its dashboard on (as daskbench ships; on a free port), quiet logs (``options`` add to
    or override these)."""
    import logging

    from distributed import LocalCluster

    kwargs: Dict[str, Any] = dict(
        n_workers=n_workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
        silence_logs=logging.ERROR,
    )
    return LocalCluster(**{**kwargs, **options})
