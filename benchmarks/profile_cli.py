"""Where the time of ``python -m daskbench`` goes for a small no-op sweep.

Runs the CLI's ``main()`` in a subprocess with timers around its phases
(imports, composition, the wait for the LocalCluster started meanwhile, trials,
shut-down), without changing daskbench: the phases are found by wrapping its
functions from here. With ``--cprofile`` the whole in-process run is also profiled
with cProfile and the top functions by cumulative time are printed.
``--no-dashboard`` starts the LocalCluster without its Bokeh dashboard (as
``cluster.dashboard_address=null`` does); ``--no-report`` turns the report off
(``results.report=false``); ``--start-method=M`` sets ``cluster.start_method``.
The child ends as the CLI does (``os._exit`` once the run is over). By default the
shipped defaults hold: dashboard on, report written (by a background process, so
the figure is what a user waits for). ``--repeat=K`` runs K times and reports medians.

    .venv/bin/python benchmarks/profile_cli.py [N] [--cprofile] [--no-dashboard] [--no-report]
        [--start-method=forkserver|fork|spawn] [--repeat=K]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

T_START = time.perf_counter()


def child(conf: str, n: int, use_cprofile: bool, no_dashboard: bool, extra: list) -> None:
    import contextlib

    t0 = time.perf_counter()
    import daskbench.__main__ as cli  # noqa: F401  (what `python -m daskbench` imports first)
    import daskbench.api as api
    import daskbench.cluster.early as early
    import daskbench.runner.driver as runner

    phases = {"import daskbench": time.perf_counter() - t0}
    marks = {}

    real_client = early.ClusterStart.client

    @contextlib.contextmanager
    def client(self, cfg):
        t = time.perf_counter()
        ctx = real_client(self, cfg)
        cl = ctx.__enter__()
        phases["LocalCluster + Client: wait after the checks"] = time.perf_counter() - t
        try:
            yield cl
        finally:
            t = time.perf_counter()
            ctx.__exit__(None, None, None)
            phases["cluster + client close"] = time.perf_counter() - t

    real_build = api.build_plan

    def build_plan(*a, **k):
        t = time.perf_counter()
        try:
            return real_build(*a, **k)
        finally:
            phases["compose + build_plan"] = time.perf_counter() - t

    real_run = runner.Runner.run

    def run(self, done):
        t = time.perf_counter()
        try:
            return real_run(self, done)
        finally:
            phases["Runner.run (all trials)"] = time.perf_counter() - t
            marks["chunks"] = self._n_chunks

    early.ClusterStart.client, api.build_plan, runner.Runner.run = client, build_plan, run
    if no_dashboard:
        import daskbench.cluster.create as cluster_mod

        real_lc = cluster_mod.LocalCluster

        def local_cluster(*a, **k):
            k["dashboard_address"] = None
            return real_lc(*a, **k)

        cluster_mod.LocalCluster = local_cluster
    argv = ["--config-dir", conf, "+experiment=noop", "cluster.n_workers=2", "runner.progress=none", *extra]
    t = time.perf_counter()
    if use_cprofile:
        import cProfile
        import io
        import pstats

        prof = cProfile.Profile()
        rc = prof.runcall(cli.main, argv)
        s = io.StringIO()
        pstats.Stats(prof, stream=s).sort_stats("cumulative").print_stats(35)
        marks["cprofile"] = s.getvalue()
    else:
        rc = cli.main(argv)
    phases["main() total"] = time.perf_counter() - t
    phases["in-process total (from interpreter start)"] = time.perf_counter() - T_START
    print("@@PHASES@@" + json.dumps({"rc": rc, "phases": phases, "marks": marks}), flush=True)
    sys.stderr.flush()
    os._exit(rc)  # as `python -m daskbench` ends


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    n = int(args[0]) if args else 200
    use_cprofile = "--cprofile" in sys.argv
    flags = [a for a in sys.argv[1:] if a in ("--cprofile", "--no-dashboard", "--no-report")]
    flags += [a for a in sys.argv[1:] if a.startswith("--start-method=")]
    repeat = next((int(a.split("=", 1)[1]) for a in sys.argv if a.startswith("--repeat=")), 1)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import shutil

    import _common as C

    runs = []
    for _ in range(repeat):
        work = C.tmpdir("profile")
        try:
            C.write_noop_experiment(work / "conf", work / "results", {"trial.x": f"range(0,{n})"})
            t0 = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, __file__, "--child", str(work / "conf"), str(n)] + flags,
                cwd=work,
                env=C.env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            wall = time.perf_counter() - t0
            if "--no-report" not in flags and proc.returncode == 0:
                C.wait_for_report(work / "results")  # off the clock, as for a user
        finally:
            shutil.rmtree(work, ignore_errors=True)
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("@@PHASES@@")), None)
        if line is None:
            sys.stdout.write(proc.stdout)
            raise SystemExit("child failed")
        data = json.loads(line[len("@@PHASES@@") :])
        ph = data["phases"]
        ph["subprocess wall clock"] = wall
        ph["interpreter start-up + exit (wall - in-process)"] = wall - ph["in-process total (from interpreter start)"]
        runs.append(ph)
    med = {k: C.median([r[k] for r in runs]) for k in runs[0]}
    print(
        f"python -m daskbench, {n} no-op trials, {data['marks'].get('chunks')} chunks"
        f"{', no dashboard' if '--no-dashboard' in flags else ''}; median of {repeat}\n"
    )
    print(C.table([[k, v] for k, v in med.items()], ["phase", "seconds"]))
    if use_cprofile:
        print("\n" + data["marks"]["cprofile"])
    print(json.dumps({"trials": n, "flags": flags, "repeat": repeat, "phases_median": med, "runs": runs}))


def _child_main() -> None:
    extra = ["results.report=false"] if "--no-report" in sys.argv else []
    extra += [f"cluster.start_method={a.split('=', 1)[1]}" for a in sys.argv if a.startswith("--start-method=")]
    child(sys.argv[2], int(sys.argv[3]), "--cprofile" in sys.argv, "--no-dashboard" in sys.argv, extra)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child_main()
    else:
        main()
