"""``python -m daskbench +experiment=NAME [overrides]``: parse, connect, run, report."""

from __future__ import annotations

import os
import sys

from .errors import DaskbenchError

TYPE_CHECKING = False  # not typing's, nor argparse at import: a command on a kept cluster's
if TYPE_CHECKING:  # driver hands over before it needs them (cluster/keep_client.py)
    import argparse
    from typing import List, Optional

USAGE = """python -m daskbench +experiment=NAME [KEY=VALUE | KEY=a,b,c | 'KEY=range(0,10)' ...]
                   [--config-dir DIR] [--dry-run] [--cfg] [--list] [--report RESULTS_DIR]
       python -m daskbench cluster {start [cluster.KEY=VALUE ...] | stop | status}"""

EPILOG = """examples:
  python -m daskbench +experiment=sweep
  python -m daskbench +experiment=sweep trial.rho=0.5,0.9 'trial.customers=range(1000,5000,1000)'
  python -m daskbench +experiment=sweep cluster=address cluster.address=tcp://HOST:8786
  python -m daskbench --config-dir my_conf +experiment=mine
  python -m daskbench cluster start cluster.n_workers=2   # keep a local cluster for the next runs

Sweep values use Hydra's grammar; no -m flag is needed. Running the same
command again skips the trials already ok and runs only what is missing or failed.
"""


def _parser() -> argparse.ArgumentParser:
    import argparse

    class _Parser(argparse.ArgumentParser):
        """argparse with daskbench's one-line errors (no usage block) and exit status 2."""

        def error(self, message: str) -> None:  # type: ignore[override]
            print(f"daskbench: error: {message}; see `python -m daskbench --help`", file=sys.stderr)
            sys.exit(2)

    p = _Parser(
        prog="python -m daskbench",
        usage=USAGE,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run a parameter sweep on Dask; results go to Parquet.",
    )
    p.add_argument("overrides", nargs="*", help="+experiment=NAME and Hydra overrides")
    p.add_argument("--config-dir", "-cd", help="a folder with your own experiment/NAME.yaml")
    p.add_argument("--dry-run", action="store_true", help="show the sweep's axes and trial count, run nothing")
    p.add_argument("--cfg", action="store_true", help="print the composed config and exit")
    p.add_argument("--list", action="store_true", help="list the experiments and exit")
    p.add_argument(
        "--report",
        metavar="RESULTS_DIR",
        help="write the report (plots, failures, timings) for a results folder and exit",
    )
    return p


def main(argv: Optional[List[str]] = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    if words[:1] == ["cluster"]:  # `cluster start|stop|status`: a local cluster kept between runs
        return _cluster(words[1:])
    if argv is None and not {"-h", "--help"} & set(words):  # the command line: on a kept cluster's driver?
        from .cluster import keep_client

        code = keep_client.run(words)
        if code is not None:
            return code
    # the fork server imports Dask while this process imports Hydra and composes: asked for
    # before argparse (~20 ms) when the words can only be a run, else once they are parsed
    from .startup_gc import pause

    pause()  # until the run begins (api.run): start-up's imports and composing leave next to no garbage
    plain = _plain_run(words)
    if plain is not None and _local_forkserver(plain):
        _warm_up()
    # intermixed: options may come between overrides (`+experiment=x --dry-run trial.a=1`)
    args = _parser().parse_intermixed_args(argv)
    runs = not (args.list or args.report or args.cfg or args.dry_run)
    if plain is None and runs and _local_forkserver(args.overrides):
        _warm_up()
    try:
        return _main(args)
    except DaskbenchError as exc:
        print(f"daskbench: error: {exc}", file=sys.stderr)
        return exc.exit_code


def _warm_up() -> None:
    from .cluster.workers import warm_up

    warm_up()


def _plain_run(words: List[str]) -> Optional[List[str]]:
    """The overrides of a command line of overrides and ``--config-dir`` only (what
    argparse would make of it), or None for any other option: argparse decides then."""
    overrides = []
    rest = iter(words)
    for word in rest:
        if not word.startswith("-"):
            overrides.append(word)
        elif word in ("--config-dir", "-cd"):
            value = next(rest, None)
            if value is None or value.startswith("-"):
                return None
        elif not word.startswith("--config-dir="):
            return None
    return overrides


def _local_forkserver(overrides: List[str]) -> bool:
    """Whether the command line leaves the default: a LocalCluster whose workers
    come from the fork server (an experiment may still choose otherwise; the
    server then goes unused and ends with this process)."""
    from .cluster import keep_paths  # os only: this runs before the fork server is asked for

    if keep_paths.is_kept(os.environ, os.path.expanduser("~")):  # a kept cluster runs the trials: no forks
        return False
    for word in overrides:
        key, _, value = word.lstrip("+~").partition("=")
        if (key == "cluster" and value != "local") or (key == "cluster.start_method" and value != "forkserver"):
            return False
    return True


def _cluster(words: List[str]) -> int:
    from .cluster.keep import main as keep_main

    try:
        return keep_main(words)
    except DaskbenchError as exc:
        print(f"daskbench: error: {exc}", file=sys.stderr)
        return exc.exit_code


def _main(args: argparse.Namespace) -> int:
    from .cluster import dask_import  # noqa: F401  (first: distributed, its config files read by libyaml)

    # isort: split
    from . import api
    from .config.compose import list_experiments

    if args.list:
        print("\n".join(list_experiments(args.config_dir)))
        return 0
    if args.report:
        from .observe.report import write_report
        from .startup_gc import resume

        resume()  # the report's work makes garbage

        print(f"report: {write_report(args.report)}")
        return 0
    if args.cfg or args.dry_run:
        rp = api.plan(None, args.overrides, args.config_dir)
        if args.cfg:
            print(rp.config_yaml, end="")
        if args.dry_run:
            print(f"experiment {rp.name}: {len(rp.plan)} trials -> {rp.results_dir}")
            print(rp.plan.describe() or "(no swept keys)")
        return 0
    result = api.run(None, args.overrides, config_dir=args.config_dir, background_report=True)
    _summary(result)
    return result.exit_code


def _summary(result) -> None:
    c, o = result.counts, result.outcome
    pruned = f"{c.pruned} pruned, " if c.pruned else ""
    print(
        f"\n{result.name}: {c.ok} ok, {pruned}{c.failed} failed, {c.timeout} timed out, {c.cancelled} cancelled, "
        f"{c.skipped} skipped (already ok) of {c.total} trials in {result.duration_s:.1f}s"
    )
    print(f"results: {result.path / 'trials'}  (daskbench.load({str(result.path)!r}))")
    if o.slowest:
        print("slowest trials:")
        for d, tid, cols in o.slowest[:5]:
            shown = " ".join(f"{k}={v}" for k, v in cols.items())
            print(f"  {d:8.3f}s  {tid}  {shown}")
    if o.search:
        _search_summary(o.search)
    if c.bad:
        print(f"{c.bad} trial(s) failed; see the status, error and traceback columns of {result.path / 'trials'}:")
        for tid, err in o.errors:
            print(f"  {tid}: {err.splitlines()[0][:160] if err else ''}")
    if o.stopped_early:
        print("stopped early: max_failures reached; fix the cause, then run the same command again")
    if o.interrupted:
        print("interrupted: finished trials are saved. Resume with:")
        print(f"  {result.resume_command}")
    elif c.bad or o.stopped_early:
        print(f"re-run the failed trials with: {result.resume_command}")


def _search_summary(search: dict) -> None:
    """The best trial of an adaptive search, or its Pareto front."""
    best = search.get("best") or []
    if not best:
        print("optuna: no trial completed yet")
        return
    title = "best trial" if len(best) == 1 else f"Pareto front ({len(best)} trials)"
    print(f"optuna: {title} of {search.get('complete', 0)} complete:")
    for b in best[:10]:
        values = ", ".join(f"{v:.6g}" for v in b["values"])
        params = " ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in b["params"].items())
        print(f"  #{b['number']}  {values}  {params}")


def _exit(status: int) -> None:
    """End the command at once: its results, manifest and report are written and its
    cluster closed by now; the interpreter's teardown of the modules Dask, Hydra and
    pyarrow loaded would only add ~0.4 s."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    _exit(main())
