"""The report's part for an adaptive search: the optimisation history and the best
trial (or, for several objectives, the Pareto front), read from the study in the
results folder (:mod:`daskbench.results.study`). Reads only; matplotlib's object API,
imported inside the function as the rest of the report does."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Tuple


def images(root: Path, out: Path) -> List[Tuple[str, Path, str]]:
    """(name, png, caption) for the report; none when the folder holds no study."""
    from ..results import study as stored

    path = stored.study_path(root)
    if not path.is_file():
        return []
    studies = stored.read_all(path)
    if not studies:
        return []
    study = studies[0]
    import optuna

    done = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        return []
    best = stored.summary(study)["best"]
    png = out / "optimisation.png"
    if len(study.directions) == 1:
        caption = _history(study, done, png)
        b = best[0]
        caption += f"; best trial #{b['number']}: {b['values'][0]:.6g} at " + _params(b["params"])
    else:
        caption = _front(study, done, best, png)
    return [("optimisation", png, caption)]


def _params(params: Any) -> str:
    return " ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def _history(study: Any, done: List[Any], png: Path) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    objective = (study.user_attrs.get("daskbench.objectives") or ["objective"])[0]
    maximize = study.directions[0].name == "MAXIMIZE"
    xs = [t.number for t in done]
    ys = [float(t.value) for t in done]
    best, run = [], None
    for y in ys:  # best so far, in the order the trials were asked
        run = y if run is None else (max(run, y) if maximize else min(run, y))
        best.append(run)
    fig = Figure(figsize=(7, 4), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.scatter(xs, ys, s=14, alpha=0.6, label=objective)
    ax.step(xs, best, where="post", color="C3", label="best so far")
    ax.set_xlabel("Optuna trial number")
    ax.set_ylabel(objective)
    ax.legend()
    fig.savefig(png, dpi=100)
    return f"optimisation history: {objective} of {len(done)} complete trials ({study.directions[0].name.lower()})"


def _front(study: Any, done: List[Any], best: List[Any], png: Path) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = study.user_attrs.get("daskbench.objectives") or ["objective 0", "objective 1"]
    fig = Figure(figsize=(6, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.scatter([t.values[0] for t in done], [t.values[1] for t in done], s=14, alpha=0.4, label="trials")
    front = sorted((b["values"][0], b["values"][1]) for b in best)
    ax.plot([p[0] for p in front], [p[1] for p in front], "o-", color="C3", label="Pareto front")
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    ax.legend()
    fig.savefig(png, dpi=100)
    return f"Pareto front: {len(best)} of {len(done)} complete trials ({names[0]} against {names[1]})"
