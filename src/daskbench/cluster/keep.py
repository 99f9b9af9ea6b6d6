"""A local cluster kept running between commands: ``python -m daskbench cluster
start|stop|status``, and the hook by which a run with the default local cluster
uses it (:func:`kept_client`, called by :func:`.create.connect`).

``start`` launches :mod:`.keep_serve` as a detached process (its own session,
so a terminal's Ctrl-C never reaches it) that holds the scheduler and the
nannies, bound to 127.0.0.1, and writes the state file once its workers are
up. The pure parts (the record, matching, the status text) are in
:mod:`.keep_state`; distributed is imported only where a client is made.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple

from ..dask_compat import workers_now
from ..errors import ClusterError, ConfigError
from . import keep_paths as kp
from . import keep_state as ks
from .keep_connect import connect_to, fresh_on_workers, take_early

START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0
_STOP_HINT = "`python -m daskbench cluster stop`"


def paths() -> Tuple[Path, Path]:
    """(the state folder, the state file) for this user and environment."""
    folder = ks.state_dir(os.environ, Path.home())
    return folder, folder / ks.STATE_NAME


def is_kept() -> bool:
    """Whether a kept cluster's state file is there: its cluster, not a new one, runs the
    trials of a ``cluster=local`` command (checked again, with its settings, on connecting)."""
    return kp.is_kept(os.environ, str(Path.home()))


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):  # gone, or someone else's process took the id
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return True  # no /proc: kill(0) said it exists


def token_pids(token: str) -> List[int]:
    """This user's processes started by the kept cluster with ``token`` (Linux:
    read from /proc; elsewhere none are found and only the recorded pids count)."""
    found = [int(e.name) for e in Path("/proc").glob("[0-9]*") if _has_token(int(e.name), token)]
    return [p for p in found if p != os.getpid()]


def _has_token(pid: int, token: str) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return f"{ks.TOKEN_ENV}={token}".encode() in f.read().split(b"\0")
    except (OSError, ValueError):
        return False


def _ours(kept: ks.Kept, pid: int) -> bool:
    """Whether ``pid`` is a live process of this kept cluster (not one that took a dead one's id)."""
    return pid_alive(pid) and (_has_token(pid, kept.token) or not os.path.isdir("/proc"))


def read() -> Tuple[Optional[ks.Kept], Optional[str]]:
    """(the running kept cluster, None), (None, why the state file is stale), or
    (None, None) when there is none. A stale file is removed, with the leftovers
    of its cluster."""
    _, state = paths()
    try:
        text = state.read_text()
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, f"cannot read {state} ({exc.strerror})"
    try:
        kept = ks.parse(text)
    except ks.StateCorrupt as exc:
        _remove(state)
        return None, f"the state file {state} is corrupt ({exc}); removed it"
    if not _ours(kept, kept.pid):
        forget(kept)
        return None, f"the kept cluster at {kept.address} is gone (process {kept.pid} no longer runs); removed {state}"
    return kept, None


def forget(kept: ks.Kept) -> None:
    """Kill what is left of a dead or unanswering kept cluster, remove its state file."""
    for pid in {kept.pid, *kept.worker_pids, *token_pids(kept.token)}:
        if _ours(kept, pid):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
    _remove(paths()[1], kept.token)


def _remove(state: Path, token: Optional[str] = None) -> None:
    """Remove the state file (unless it names another cluster than ``token`` by now)."""
    try:
        if token is not None and ks.parse(state.read_text()).token != token:
            return
    except (OSError, ks.StateCorrupt):
        pass
    with contextlib.suppress(OSError):
        state.unlink()


# -- the hook in create.connect -------------------------------------------------


def kept_client(cfg: Any, echo: Callable[[str], None] = print) -> Optional[contextlib.AbstractContextManager]:
    """A context giving a Client on the kept cluster, or None: no cluster is kept,
    it does not fit ``cfg`` or it is stale (each said in one line), and the caller
    starts a LocalCluster as before. ``cfg`` takes the kept cluster's settings."""
    if os.environ.get(ks.TOKEN_ENV):  # inside the kept cluster itself
        return None
    kept, stale = read()
    if stale:
        echo(f"daskbench: {stale}; starting a local cluster for this run")
        return None
    if kept is None:
        return None
    from ..config.schema import LocalClusterConfig

    why = ks.mismatch(ks.settings_of(cfg), kept.settings, ks.settings_of(LocalClusterConfig())) or _other_code(kept)
    if why:
        echo(f"daskbench: not using the kept cluster at {kept.address}: {why}; starting a local cluster for this run")
        return None
    try:
        client, dropped = take_early(kept)  # made while the command composed, if it could be
        if client is None:
            client = connect_to(kept)
    except (OSError, TimeoutError, ValueError) as exc:
        forget(kept)
        echo(
            f"daskbench: the kept cluster at {kept.address} does not answer ({str(exc).splitlines()[0]}); "
            f"stopped it and removed its state file; starting a local cluster for this run"
        )
        return None
    _take_settings(cfg, kept)
    echo(f"using the kept cluster at {kept.address} (up {ks.uptime(time.time() - kept.started_at)}; {_STOP_HINT})")
    return _using(client, echo, dropped)


def _other_code(kept: ks.Kept) -> Optional[str]:
    """Why the kept cluster's workers would not run this command's daskbench, or None.
    They imported daskbench when the cluster started: another install, or this one's
    source edited or upgraded since, would meet chunks and specs it cannot read."""
    from .keep_paths import source_mtime

    started = kept.driver  # recorded by the kept process as its workers were forked
    if not started.get("package"):
        return None  # a cluster kept without a driver zygote: nothing to compare with
    package = Path(__file__).resolve().parents[1]
    if started["package"] != str(package):
        return f"it runs the daskbench in {started['package']}, this command the one in {package}"
    if source_mtime(package) > float(started.get("source_mtime", float("inf"))):
        return (
            "daskbench's source changed since it started, and its workers run the old code; "
            f"to use the new code there: {_STOP_HINT}, then `python -m daskbench cluster start`"
        )
    return None


def _take_settings(cfg: Any, kept: ks.Kept) -> None:
    """The run's cluster is the kept one: its resources, sizes and adaptive bounds."""
    from ..config.schema import AdaptConfig

    s = kept.settings
    cfg.n_workers, cfg.threads_per_worker = s["n_workers"], s["threads_per_worker"]
    cfg.processes, cfg.memory_limit = s["processes"], s["memory_limit"]
    cfg.resources = dict(s["resources"])
    cfg.adapt = AdaptConfig(**s["adapt"])
    cfg.dashboard_address = s.get("dashboard_address")


@contextlib.contextmanager
def _using(client: Any, echo: Callable[[str], None], dropped: Optional[List[str]]) -> Iterator[Any]:
    # as for any remote scheduler (create._quiet_loop_errors): a kept cluster stopped
    # mid-run is reported by the run in one line, not by the event loop's tracebacks
    loop_log = logging.getLogger("tornado.application")
    previous = loop_log.level
    loop_log.setLevel(logging.CRITICAL)
    try:
        if dropped is None:  # not asked by connect_early
            dropped = fresh_on_workers(client)
        if dropped:
            echo(f"the kept cluster's workers import changed code afresh: {', '.join(dropped)}")
        yield client
    finally:
        logging.getLogger("distributed").setLevel(logging.CRITICAL)  # as create._quietly_close does
        with contextlib.suppress(Exception):
            client.close(timeout=10)
        loop_log.setLevel(previous)


# -- the commands ----------------------------------------------------------------


def start(words: Sequence[str], config_dir: Optional[str] = None) -> int:
    """``cluster start [cluster.KEY=VALUE ...]``: launch the kept cluster and wait until it is up."""
    cfg = _cluster_config(words, config_dir)
    settings = ks.settings_of(cfg)
    problems = ks.start_problems(settings)
    if problems:
        raise ConfigError("; ".join(problems))
    kept, stale = read()
    if stale:
        print(f"daskbench: {stale}")
    if kept is not None:
        from ..config.schema import LocalClusterConfig

        why = ks.mismatch(settings, kept.settings, ks.settings_of(LocalClusterConfig()))
        if why:
            raise ConfigError(f"a kept cluster already runs at {kept.address} and {why}; stop it first: {_STOP_HINT}")
        print(f"a kept cluster already runs at {kept.address} (process {kept.pid}); stop it with {_STOP_HINT}")
        return 0
    folder, state = paths()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    token = uuid.uuid4().hex
    log = folder / ks.LOG_NAME
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "daskbench.cluster.keep_serve", str(state), token, json.dumps(settings)],
            cwd=folder,
            env=dict(os.environ, **{ks.TOKEN_ENV: token}),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own session: survives this command and a terminal's Ctrl-C
        )
    kept = _wait_started(proc, state, token, log)
    workers = len(kept.worker_pids)
    print(f"kept cluster started at {kept.address} (process {kept.pid}, {workers} workers)")
    if kept.dashboard:
        print(f"Dask dashboard: {kept.dashboard}")
    print(f"runs with the default local cluster use it until {_STOP_HINT} (state: {state})")
    return 0


def _wait_started(proc: subprocess.Popen, state: Path, token: str, log: Path) -> ks.Kept:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ks.StateCorrupt):
            kept = ks.parse(state.read_text())
            if kept.token == token:
                return kept
        if proc.poll() is not None:
            lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
            last = lines[-1] if lines else f"exit status {proc.returncode}"
            raise ClusterError(f"the kept cluster did not start: {last} (log: {log}); check cluster.* settings")
        time.sleep(0.05)
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)
    raise ClusterError(f"the kept cluster did not start within {START_TIMEOUT_S:g}s (log: {log})")


def _cluster_config(words: Sequence[str], config_dir: Optional[str]) -> Any:
    """The ``cluster=local`` settings of ``cluster.KEY=VALUE`` words, checked as a run checks them."""
    from ..config import compose, sections
    from ..config.schema import LocalClusterConfig

    bad = [w for w in words if not w.lstrip("+~").startswith(("cluster.", "cluster="))]
    if bad:
        raise ConfigError(f"cluster start takes cluster.KEY=VALUE settings only, not {bad[0]!r}")
    cfg = sections.cluster(compose._compose(compose.search_dirs(config_dir), list(words), config_dir))
    if not isinstance(cfg, LocalClusterConfig):
        raise ConfigError(
            "cluster start keeps a local cluster; for a scheduler of your own pass "
            "cluster=address cluster.address=tcp://HOST:8786 to each run instead"
        )
    return cfg


def stop() -> int:
    """``cluster stop``: shut the kept cluster down (SIGTERM: it closes its workers and
    removes its state file), and make sure none of its processes is left."""
    kept, stale = read()
    if stale:
        print(f"daskbench: {stale}")
        return 0
    if kept is None:
        print("no kept cluster is running; nothing to stop")
        return 0
    with contextlib.suppress(ProcessLookupError):
        os.kill(kept.pid, signal.SIGTERM)  # read() checked that the pid is the kept cluster's
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline and (_ours(kept, kept.pid) or token_pids(kept.token)):
        time.sleep(0.05)
    left = [p for p in {kept.pid, *token_pids(kept.token)} if _ours(kept, p)]
    forget(kept)  # whatever did not stop in time, and the state file if it is still there
    extra = f"; killed {len(left)} process(es) that did not stop within {STOP_TIMEOUT_S:g}s" if left else ""
    print(f"stopped the kept cluster at {kept.address}{extra}")
    return 0


def status() -> int:
    """``cluster status``: 0 and what runs, or 1 when no kept cluster runs."""
    kept, stale = read()
    if stale:
        print(f"daskbench: {stale}")
    if kept is None:
        print("no kept cluster is running; start one with `python -m daskbench cluster start`")
        return 1
    try:
        client = connect_to(kept)
    except (OSError, TimeoutError, ValueError) as exc:
        print(f"kept cluster: {kept.address} (process {kept.pid}) does not answer: {str(exc).splitlines()[0]}")
        print(f"stop it with {_STOP_HINT}")
        return 1
    with client:
        workers = workers_now(client)
    print("\n".join(ks.status_lines(kept, workers, time.time(), paths()[1])))
    return 0


USAGE = "python -m daskbench cluster {start [cluster.KEY=VALUE ...] | stop | status}"
HELP = f"""usage: {USAGE}

Keep a local cluster running between commands; runs with the default local
cluster (cluster=local) use it instead of starting their own.

  start [cluster.KEY=VALUE ...]  start it in the background, on 127.0.0.1, with these
                                 cluster=local settings (n_workers, resources, ...)
  status                         its address, workers, dashboard and uptime (exit 1: none)
  stop                           shut it down; none of its processes is left

Its state file: $DASKBENCH_STATE_DIR/cluster.json, else $XDG_STATE_HOME/daskbench/
or ~/.local/state/daskbench/."""


def main(argv: Sequence[str]) -> int:
    """``python -m daskbench cluster ...``; errors as the main command gives them."""
    words = list(argv)
    if words[:1] in (["-h"], ["--help"]):
        print(HELP)
        return 0
    if not words:
        raise ConfigError(f"no cluster command given; use: {USAGE}")
    cmd, rest = words[0], words[1:]
    config_dir = None
    if rest[:1] in (["--config-dir"], ["-cd"]) and len(rest) > 1:
        config_dir, rest = rest[1], rest[2:]
    if cmd == "start":
        return start(rest, config_dir)
    if cmd in ("stop", "status") and not rest:
        return stop() if cmd == "stop" else status()
    raise ConfigError(f"unknown cluster command {' '.join(words)!r}; use: {USAGE}")
