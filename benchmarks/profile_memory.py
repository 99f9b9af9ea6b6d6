"""Where the driver's memory goes during a large no-op sweep through ``daskbench.run``.

Samples the driver's RSS (and Arrow's allocated bytes) every 50 ms in a thread
while ``daskbench.run`` executes ``trial.x=range(0,N)`` on a 2-worker
LocalCluster, and marks the phases by wrapping daskbench functions from here
(no change to daskbench): the submit/collect loop (``Runner.run`` until the
store is closed), ``ResultStore.close`` (final flush + compaction of parts),
and ``Dataset.rewrite``, and the report written after the run (``report_data.load``: the
scan of the table; then the plots and the page). Prints the peak RSS inside each phase, both
as sampled and exactly: at each phase boundary the process's ``VmHWM`` (peak RSS) is read
and reset (``/proc/self/clear_refs``), so a short spike between samples is not missed. With
``--tracemalloc`` also prints the top Python allocation sites alive at the end
of the submit loop (slow: use a smaller N). With ``--log-length=K`` the Dask
setting ``distributed.admin.low-level-log-length`` (default 1000: each
``BatchedSend`` keeps its last K message batches, i.e. the scheduler keeps the
last 1000 ``compute-task`` batches it sent each worker, with their chunks of
trial items) is set to K for the cluster, to show its share of the peak.

    .venv/bin/python benchmarks/profile_memory.py [N] [--tracemalloc] [--log-length=K]
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def hwm_mib(reset: bool = False) -> float:
    """This process's peak RSS (``VmHWM``) since the last reset; then reset it (Linux)."""
    with open("/proc/self/status") as f:
        kib = next(int(ln.split()[1]) for ln in f if ln.startswith("VmHWM:"))
    if reset:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # 5: reset the peak RSS to the current RSS
        except OSError:
            pass
    return kib / 1024


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    n = int(args[0]) if args else 1_000_000
    use_tm = "--tracemalloc" in sys.argv
    log_len = next((int(a.split("=", 1)[1]) for a in sys.argv if a.startswith("--log-length=")), None)
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(HERE.parent))  # benchmarks.workloads, the no-op trial
    import _common as C
    import dask
    import pyarrow as pa
    from distributed import Client

    import daskbench
    import daskbench.results.store as store
    import daskbench.runner.driver as runner

    samples = []  # (t, rss, arrow, phase)
    phase = ["setup"]
    exact: dict = {}  # phase -> its exact peak RSS (VmHWM between its boundaries)
    stop = threading.Event()

    def enter(label):
        exact[phase[0]] = max(exact.get(phase[0], 0.0), hwm_mib(reset=True))
        phase[0] = label

    def sampler():
        while not stop.is_set():
            samples.append((time.perf_counter(), rss_mib(), pa.total_allocated_bytes() / 2**20, phase[0]))
            time.sleep(0.05)

    def wrap(obj, name, label):
        real = getattr(obj, name)

        def inner(*a, **k):
            prev = phase[0]
            enter(label)
            try:
                return real(*a, **k)
            finally:
                enter(prev if label != "submit/collect loop" else "after loop")

        setattr(obj, name, inner)

    wrap(runner.Runner, "run", "submit/collect loop")
    chunks = []
    real_submit = runner.Runner._submit

    def submit(self, items, *args, **kwargs):
        chunks.extend(len(c) for c in items)  # a refill of several chunks is one call
        return real_submit(self, items, *args, **kwargs)

    runner.Runner._submit = submit
    wrap(store.ResultStore, "close", "store.close (flush + compaction)")
    wrap(store.Dataset, "rewrite", "Dataset.rewrite (compaction)")
    wrap(store.ResultStore, "open_for_resume", "open_for_resume")
    import daskbench.observe.report as report
    import daskbench.observe.report_data as report_data

    wrap(report, "write_report", "report: plots + page")
    wrap(report_data, "load", "report: report_data.load (scan)")

    snap = {}
    if use_tm:
        import tracemalloc

        real_close = store.ResultStore.close

        def close(self):
            snap["s"] = tracemalloc.take_snapshot()
            return real_close(self)

        store.ResultStore.close = close
        tracemalloc.start(8)

    work = C.tmpdir("memory")
    C.write_noop_experiment(work / "conf", work / "results" / "noop", {"trial.x": f"range(0,{n})"})
    th = threading.Thread(target=sampler, daemon=True)
    if log_len is not None:
        dask.config.set({"distributed.admin.low-level-log-length": log_len})
    try:
        with (
            C.local_cluster(2) as cluster,
            Client(cluster) as client,
        ):
            client.submit(sum, [1, 2]).result()
            th.start()
            t0 = time.perf_counter()
            res = daskbench.run(  # the report drawn in the driver, so its memory is profiled here too
                "noop",
                [],
                client=client,
                config_dir=str(work / "conf"),
                progress="none",
                echo=lambda s: None,
                background_report=False,
            )
            wall = time.perf_counter() - t0
            stop.set()
            th.join()
            enter("end")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert res.counts.ok == n, res.counts

    by_phase = {}
    for t, rss, arrow, ph in samples:
        p = by_phase.setdefault(ph, {"peak_rss_mib": 0.0, "peak_arrow_mib": 0.0, "first_t": t, "last_t": t})
        p["peak_rss_mib"] = max(p["peak_rss_mib"], rss)
        p["peak_arrow_mib"] = max(p["peak_arrow_mib"], arrow)
        p["last_t"] = t
    t_first = samples[0][0]
    rows = [
        [
            ph,
            exact.get(ph, float("nan")),
            v["peak_rss_mib"],
            v["peak_arrow_mib"],
            v["first_t"] - t_first,
            v["last_t"] - t_first,
        ]
        for ph, v in by_phase.items()
    ]
    print(
        f"daskbench.run of {n:,} no-op trials in {wall:.1f}s; driver RSS sampled every 50 ms; "
        f"distributed.admin.low-level-log-length="
        f"{dask.config.get('distributed.admin.low-level-log-length')}\n"
    )
    print(C.table(rows, ["phase", "peak RSS MiB (VmHWM)", "sampled", "peak Arrow MiB", "from s", "to s"]))
    import resource

    print(
        f"\nprocess peak RSS (ru_maxrss, lowered by the VmHWM resets: the phases' peak is the max): "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB; "
        f"{len(chunks):,} chunks (tasks), {min(chunks)}..{max(chunks)} trials each, "
        f"mean {sum(chunks) / len(chunks):,.0f}"
    )
    # RSS along the loop, every ~10% of it
    loop = [s for s in samples if s[3] == "submit/collect loop"]
    if loop:
        print("\nRSS during the submit/collect loop:")
        for i in range(0, len(loop), max(len(loop) // 10, 1)):
            t, rss, arrow, _ = loop[i]
            print(f"  t={t - t_first:6.1f}s  rss={rss:7.0f} MiB  arrow={arrow:6.0f} MiB")
    if use_tm and "s" in snap:
        print("\ntop Python allocations alive when the loop ended (tracemalloc):")
        for st in snap["s"].statistics("traceback")[:8]:
            print(f"  {st.size / 2**20:8.1f} MiB  {st.count:9,d} blocks")
            for line in st.traceback.format()[-6:]:
                print("      " + line)


if __name__ == "__main__":
    main()
