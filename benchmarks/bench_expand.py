"""Driver cost per trial of expanding a sweep, against Hydra's compose() per trial.

daskbench composes the experiment once and then expands the sweep with pure
Python (``SweepPlan.__iter__``): ids, params and seeds. Here the lazily iterated
SweepPlan of a 100,000-trial value-only sweep is walked in full, building the
same ``(trial_id, groups, params, seed, replicate)`` item the runner submits,
and the time is divided by the number of trials.

Baseline: what a per-trial Hydra composition would cost, i.e.
``hydra.compose("config", overrides=["+experiment=noop", "trial.x=<i>", ...])``
once per trial, on the very same config tree (the shipped conf/ plus the
benchmark's experiment folder), timed over 50 composes.

Target: <= 50 us per trial for daskbench.

    python -m benchmarks.bench_expand [--smoke|--quick|--full]

``--smoke`` expands 10,000 trials (100 x 100) and times 10 composes.
"""

from __future__ import annotations

import gc
import shutil
import sys
import time
from pathlib import Path

if not __package__:  # run as a file: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import _common as C  # noqa: E402

MODE = C.mode()
REPEATS = 1 if MODE == "smoke" else 3
N_COMPOSE = 10 if MODE == "smoke" else 50
TARGET_US = 50.0
X = 100 if MODE == "smoke" else 1000  # x values; times 100 replicates or seeds
VARIANTS = {
    # name: overrides giving X x 100 trials (100,000 unless --smoke)
    f"x=range(0,{X}) x 100 replicates": [f"trial.x=range(0,{X})", "sweep.replicates=100"],
    f"x=range(0,{X}) x seed=range(0,100)": [f"trial.x=range(0,{X})", "trial.seed=range(0,100)"],
}


def time_expand(overrides, config_dir: Path):
    import daskbench

    t0 = time.perf_counter()
    rp = daskbench.plan("noop", overrides, config_dir=str(config_dir))
    build_s = time.perf_counter() - t0
    n_trials = len(rp.plan)
    per = []
    for _ in range(REPEATS):
        gc.collect()
        n = 0
        t0 = time.perf_counter()
        for t in rp.plan:
            item = (t.trial_id, t.groups, t.params, t.seed, t.replicate)  # what the runner submits
            n += 1
        dt = time.perf_counter() - t0
        del item
        assert n == n_trials, (n, n_trials)
        per.append(dt / n * 1e6)
    return {
        "trials": n_trials,
        "build_plan_s": build_s,
        "us_per_trial_runs": per,
        "us_per_trial": C.median(per),
        "us_per_trial_incl_build": C.median(per) + build_s / n_trials * 1e6,
    }


def time_compose(config_dir: Path):
    from hydra import compose, initialize_config_dir

    from daskbench.config.compose import package_conf_dir

    extra = [f"hydra.searchpath=[file://{config_dir}]"]
    per = []
    with initialize_config_dir(config_dir=str(package_conf_dir()), version_base="1.3"):
        for i in range(5):  # warm-up: first compose loads and caches the repository
            compose("config", overrides=["+experiment=noop", f"trial.x={i}"] + extra)
        for _ in range(REPEATS):
            gc.collect()
            t0 = time.perf_counter()
            for i in range(N_COMPOSE):
                cfg = compose("config", overrides=["+experiment=noop", f"trial.x={i}"] + extra)
            dt = time.perf_counter() - t0
            assert cfg.trial.x == N_COMPOSE - 1
            per.append(dt / N_COMPOSE * 1e6)
    return {"composes": N_COMPOSE, "us_per_trial_runs": per, "us_per_trial": C.median(per)}


def main() -> None:
    work = C.tmpdir("expand")
    try:
        C.write_noop_experiment(work / "conf", work / "results", {})
        expand = {name: time_expand(ov, work / "conf") for name, ov in VARIANTS.items()}
        base = time_compose(work / "conf")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    worst = max(v["us_per_trial"] for v in expand.values())
    rows = []
    for name, v in expand.items():
        rows.append(
            [f"daskbench SweepPlan ({name})", v["trials"], v["us_per_trial"], base["us_per_trial"] / v["us_per_trial"]]
        )
    rows.append(["Hydra compose() per trial (baseline)", base["composes"], base["us_per_trial"], 1.0])
    print(f"Sweep expansion, driver cost per trial (median of {REPEATS} runs)\n")
    print(C.table(rows, ["method", "trials", "us/trial", "speed-up vs compose"]))
    for name, v in expand.items():
        print(
            f"  {name}: build_plan {v['build_plan_s'] * 1e3:.0f} ms once; "
            f"{v['us_per_trial_incl_build']:.2f} us/trial including it"
        )
    ratio = base["us_per_trial"] / worst
    met = worst <= TARGET_US
    print(
        f"\nratio compose/expand (slowest variant): {ratio:,.0f}x;  target <= {TARGET_US:g} us/trial: "
        f"{'MET' if met else 'NOT MET'} ({worst:.2f} us)\n"
    )
    C.emit(
        "expand",
        {
            "daskbench": expand,
            "baseline_hydra_compose": base,
            "us_per_trial": worst,
            "baseline_us_per_trial": base["us_per_trial"],
            "ratio": ratio,
            "target": f"<= {TARGET_US:g} us/trial",
            "target_met": met,
            "mode": MODE,
            "command": f"python -m benchmarks.bench_expand --{MODE}",
        },
    )


if __name__ == "__main__":
    main()
