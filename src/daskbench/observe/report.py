"""A report of one results folder: ``results/<name>/report/``.

``write_report("results/sweep")`` writes ``report.html`` (self-contained: the
plots are embedded), one PNG per numeric metric plus ``timing.png``, and
``summary.md``: trials by status, each metric over the swept keys with the
spread over seeds, the failed trials, and how long trials took.

matplotlib is imported inside the functions, and only its object API is used
(no pyplot), so importing daskbench stays light and a notebook's own plotting
backend is left alone. The pages themselves are rendered by :mod:`.report_page`.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple, Union

from ..errors import ResultsError
from ..results import manifest
from ..results import row as trow
from . import report_data, search_report
from .report_page import render_html, render_markdown
from .report_turns import taking_turns

if TYPE_CHECKING:
    import pandas as pd

STATUSES = list(trow.STATUSES)  # in the order the row declares them
MAX_LINES = 10  # a numeric key with more values than this is a continuous axis
MAX_FACETS = 12  # more panels than this: the facet key is pooled instead
BANDS = {"range": "min–max over replicates", "ci95": "95% CI of the mean over replicates"}


def require_results(results_dir: Union[str, Path], command: Optional[str] = None) -> Path:
    """The experiment folder (``results/NAME``) if it holds trials; else a
    :class:`ResultsError` naming the folder and the ``command`` that creates it."""
    p = Path(results_dir)
    root = p.parent if p.name == "trials" else p
    parts = list((root / "trials").glob("part-*.parquet"))
    if parts:
        return root
    why = (
        "no such folder"
        if not root.exists()
        else "no trials/ in it"
        if not (root / "trials").is_dir()
        else "trials/ holds no results yet"
    )
    raise _no_results(root, why, command)


def _no_results(root: Path, why: str, command: Optional[str] = None) -> ResultsError:
    if command is None:
        name = manifest.experiment_name(root) or root.name or "NAME"
        command = f"python -m daskbench +experiment={name}"
        if root.resolve() != (Path.cwd() / "results" / name).resolve():
            command += f" results.dir={root}"
    return ResultsError(f"no results in {root} ({why}). Create them with: {command}")


def write_report(
    results_dir: Union[str, Path],
    dims: Optional[Sequence[str]] = None,
    band: str = "range",
    slowest: int = 10,
    max_rows: int = report_data.MAX_ROWS,
) -> Path:
    """Write ``report.html``, PNGs and ``summary.md`` into ``<results_dir>/report/``.

    ``dims`` orders the swept keys: the first is the x axis, the second draws one
    line per value, the third and fourth split the plot into panels (default: the
    swept keys of the manifest, continuous ones first). ``band`` is ``"range"``
    (min–max over replicates) or ``"ci95"``. A table of more than ``max_rows`` trials
    is drawn from a sample of them, counted over all (:mod:`.report_data`). Returns
    the path of ``report.html``.
    """
    if band not in BANDS:
        raise ResultsError(f"band={band!r}: use one of {', '.join(BANDS)}")
    root = require_results(results_dir)
    with taking_turns(root / "report"):  # a background report of the same folder may be drawing
        return _write(root, dims, band, slowest, max_rows)


def _write(root: Path, dims: Optional[Sequence[str]], band: str, slowest: int, max_rows: int) -> Path:
    """:func:`write_report`'s work, its turn taken."""
    # the columns the report shows, at most about max_rows rows (the swept keys come from the manifest below)
    df = report_data.load(root, [*(dims or []), *manifest.all_axes(root)], slowest, max_rows)
    if df.empty or "status" not in df.columns:
        raise _no_results(root, "its trials table is empty")
    swept, fixed = _choose_dims(df, root, dims)
    ok = df[df["status"] == "ok"]
    metrics, constants = _split_constant(ok, _metrics(ok, set(swept) | set(fixed)))
    out = root / "report"
    for old in out.glob("*.png"):
        old.unlink()

    images: List[tuple] = []
    for m in metrics:
        path = out / f"metric-{re.sub(r'[^A-Za-z0-9_.-]+', '_', m)}.png"
        images.append((m, path, _plot_metric(ok, m, swept, band, path)))
    images.append(("timing", out / "timing.png", _plot_timing(df, swept[:1], out / "timing.png")))
    images += search_report.images(root, out)  # sweep.search: optimisation history, best trial or front

    title = f"daskbench report: {manifest.experiment_name(root) or root.name}"
    ctx = dict(
        title=title,
        root=root,
        **_tables(df, swept, fixed, slowest),
        images=images,
        metrics=metrics,
        constants=constants,
        band=BANDS[band],
    )
    (out / "summary.md").write_text(render_markdown(**ctx))
    page = out / "report.html"
    partial = out / ".report.html.partial"  # the page appears complete or not at all
    partial.write_text(render_html(**ctx))
    partial.replace(page)
    return page


def _tables(df: pd.DataFrame, dims: List[str], fixed: List[str], slowest: int) -> Dict[str, Any]:
    """The report's tables: trials by status, the swept keys, the failures and their
    errors, the ``slowest`` trials."""
    whole = df.attrs.get("daskbench_whole") or {}  # a sampled table: what was counted over every row
    counts = whole.get("status") or df["status"].value_counts().to_dict()
    status = [(s, int(counts.get(s, 0))) for s in STATUSES + sorted(set(counts) - set(STATUSES))]
    status.append(("total", whole.get("rows", len(df))))
    if whole:
        status.append(("of them in the plots and tables below (a random sample)", whole["in_frame"]))
    bad = df[df["status"] != "ok"]
    fail = bad[["trial_id", "status", *dims, *(["replicate"] if "replicate" in bad else []), "error"]].copy()
    fail["error"] = fail["error"].fillna("").astype(str).str.slice(0, 300)
    slow = df.dropna(subset=["duration_s"]).nlargest(slowest, "duration_s")
    slow = slow[["duration_s", "trial_id", "status", *dims, *(["worker"] if "worker" in slow else [])]]
    slow = slow.assign(duration_s=slow["duration_s"].map("{:.3g}".format))
    errors = fail.groupby(["status", "error"]).size().sort_values(ascending=False).rename("trials").reset_index()
    axes = [(d, whole.get("describe", {}).get(d) or _describe(df[d])) for d in dims] + [
        (d, f"fixed: {df[d].dropna().iloc[0]}") for d in fixed if df[d].notna().any()
    ]
    return dict(status=status, axes=axes, fail=fail, errors=errors, slow=slow)


# -- choosing what to plot ------------------------------------------------------
def _continuous(s: pd.Series) -> bool:
    import pandas as pd

    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s) and s.nunique() > MAX_LINES


def _choose_dims(df: pd.DataFrame, root: Path, dims: Optional[Sequence[str]]) -> Tuple[List[str], List[str]]:
    """(varied swept keys in plotting order, swept keys with a single value)."""
    if dims is not None:
        missing = [d for d in dims if d not in df.columns]
        if missing:
            raise ResultsError(f"dims {missing} are not columns of {root / 'trials'}; columns: {list(df.columns)}")
    keys = list(dims or [])
    # every run's axes: a later run may fix one
    keys += [a for a in manifest.all_axes(root) if a not in keys and a in df.columns]
    keys = keys or [c for c in df.columns if c.startswith("trial.")]
    varied = [k for k in keys if df[k].nunique() > 1]
    if dims is None:
        import pandas as pd

        varied.sort(key=lambda k: (not _continuous(df[k]), not pd.api.types.is_numeric_dtype(df[k])))
    return varied, [k for k in keys if k not in varied]


def _metrics(ok: pd.DataFrame, skip: set) -> List[str]:
    import numbers

    import numpy as np
    import pandas as pd

    def numeric(s: pd.Series) -> bool:  # a boolean metric with nulls (failed rows) is read as object
        vals = s.dropna()
        return len(vals) > 0 and (
            pd.api.types.is_numeric_dtype(s) or all(isinstance(v, (numbers.Real, np.bool_)) for v in vals.iloc[:1000])
        )

    return [c for c in ok.columns if c not in skip and c not in trow.RESERVED and c != "trial_id" and numeric(ok[c])]


def _split_constant(ok: pd.DataFrame, metrics: List[str]) -> Tuple[List[str], List[Tuple[str, str]]]:
    """(the metrics to plot, [(name, value)] of those with one value over every ok trial):
    a flat line says nothing a table row does not (a simulation's shards, restarts, ticks),
    and each plot costs the report process ~0.2 s of CPU."""
    if len(ok) < 2:
        return metrics, []
    plotted, constant = [], []
    for m in metrics:
        values = ok[m].dropna().unique()
        if len(values) == 1:
            constant.append((m, f"{values[0]:.6g}" if isinstance(values[0], float) else str(values[0])))
        else:
            plotted.append(m)
    return plotted, constant


def _describe(s: pd.Series) -> str:
    vals = s.dropna().unique()
    if _continuous(s):
        return f"{len(vals)} values in [{s.min():.4g}, {s.max():.4g}]"
    try:
        vals = sorted(vals)
    except TypeError:
        pass
    return ", ".join(str(v) for v in vals)


# -- plots ----------------------------------------------------------------------
def _figure(n: int, ncols: Optional[int] = None, w: float = 4.4, h: float = 3.4, share: bool = True):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ncols = ncols or min(n, 3)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(w * ncols + 1.6, h * nrows + 0.6), layout="constrained")
    FigureCanvasAgg(fig)
    axs = fig.subplots(nrows, ncols, squeeze=False, sharex=share, sharey=share).ravel()
    for ax in axs[n:]:
        ax.set_visible(False)
    return fig, axs[:n]


def _axis(values: pd.Series):
    """(x position of each value, how to draw the axis: (ticks, labels, log, categorical))."""
    import pandas as pd

    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        v = values.astype(float)
        log = len(v) > 0 and v.min() > 0 and v.max() / v.min() >= 50
        ticks = sorted(v.dropna().unique()) if v.nunique() <= MAX_LINES else None
        return v, (ticks, [f"{t:g}" for t in ticks or []], bool(log), False)
    levels = sorted(values.dropna().unique(), key=str)
    index = {lv: i for i, lv in enumerate(levels)}
    return values.map(index).astype(float), (list(range(len(levels))), [str(x) for x in levels], False, True)


def _set_x(ax, how, label: str) -> None:
    ticks, labels, log, categorical = how
    if log:
        ax.set_xscale("log")
    if ticks is not None:
        ax.set_xticks(ticks, labels)
        ax.set_xticks([], minor=True)
    if categorical:
        ax.set_xlim(-0.5, len(ticks) - 0.5)
    ax.set_xlabel(label)
    ax.grid(True, alpha=0.3)


def _band(st: pd.DataFrame, band: str):
    if band == "range":
        return st["min"], st["max"]
    import numpy as np
    from scipy.stats import t

    n = st["count"].clip(lower=2)
    half = (t.ppf(0.975, n - 1) * st["std"] / np.sqrt(n)).where(st["count"] > 1, 0.0)
    return st["mean"] - half, st["mean"] + half


def _plot_metric(ok: pd.DataFrame, metric: str, dims: List[str], band: str, path: Path) -> str:
    """Plot one metric into ``path``; returns the plot's title."""
    data = ok[dims + [metric]].dropna(subset=[metric]).copy()
    data[metric] = data[metric].astype(float)
    ok_dims = bool(dims)
    if not dims:  # no swept key varies: one point, the spread over seeds
        data["all trials"] = "all"
        dims = ["all trials"]
    x, hue = dims[0], (dims[1] if len(dims) > 1 else None)
    facets = [d for d in dims[2:4] if not _continuous(data[d])]
    while facets and math.prod(data[f].nunique() for f in facets) > MAX_FACETS:
        facets.pop()
    per_point = data.groupby([x] + ([hue] if hue else []) + facets, dropna=False)[metric].size()
    colorbar = bool(hue and _continuous(data[hue]))
    pooled = [d for d in dims[2:] if d not in facets]
    # no line through points that differ in a pooled continuous key, or with no replicates to band
    scatter = colorbar or (_continuous(data[x]) and (per_point.max() == 1 or any(_continuous(data[d]) for d in pooled)))
    data["_x"], how = _axis(data[x])
    panels = [((), data)] if not facets else list(data.groupby(facets, dropna=False))
    fig, axs = _figure(len(panels), data[facets[0]].nunique() if len(facets) == 2 else None)
    levels = sorted(data[hue].dropna().unique(), key=lambda v: (str(type(v)), v)) if hue else [None]
    colors = {lv: f"C{i % 10}" for i, lv in enumerate(levels)}
    dodge = {lv: (i - (len(levels) - 1) / 2) * min(0.6 / len(levels), 0.15) for i, lv in enumerate(levels)}
    y = data[metric]
    for ax, (key, sub) in zip(axs, panels):
        for lv, part in [(None, sub)] if hue is None or colorbar else sub.groupby(hue, dropna=False):
            c, label = colors.get(lv, "C0"), (f"{lv}" if hue else None)
            if scatter:
                kw = (
                    dict(c=part[hue], cmap="viridis", vmin=data[hue].min(), vmax=data[hue].max())
                    if colorbar
                    else dict(color=c, label=label)
                )
                sc = ax.scatter(part["_x"], part[metric], s=14, **kw)
                continue
            _plot_line(ax, part, metric, band, dodge[lv] if how[3] else None, c, label)
        if facets:
            key = key if isinstance(key, tuple) else (key,)
            ax.set_title(", ".join(f"{f} = {v}" for f, v in zip(facets, key)), fontsize=10)
        if y.min() > 0 and y.max() / y.min() >= 1000:
            ax.set_yscale("log")
        _set_x(ax, how, x)
        ax.set_ylabel(metric)
    _legend(fig, axs, hue, sc if colorbar else None)
    title = _title(metric, x if ok_dims else None, hue, None if scatter else int(per_point.median()), pooled, band)
    fig.suptitle(title, fontsize=11)
    fig.savefig(path, dpi=110)
    return title.replace("\n", " ")


def _plot_line(
    ax: Any, part: pd.DataFrame, metric: str, band: str, dodge: Optional[float], c: str, label: Optional[str]
) -> None:
    """One line of a metric's plot: the mean over replicates at each x with its band;
    ``dodge`` not None (categories on x): points with error bars, shifted by ``dodge``."""
    st = part.groupby("_x")[metric].agg(["mean", "min", "max", "std", "count"]).sort_index()
    lo, hi = _band(st, band)
    if dodge is not None:  # categories on x: points with error bars, side by side
        xs = st.index + dodge
        ax.errorbar(
            xs,
            st["mean"],
            yerr=[st["mean"] - lo, hi - st["mean"]],
            fmt="o",
            ms=5,
            capsize=3,
            color=c,
            label=label,
        )
        return
    if len(part) <= 5000:  # each replicate, faintly
        ax.scatter(part["_x"], part[metric], s=6, color=c, alpha=0.3, linewidths=0)
    ax.fill_between(st.index, lo, hi, color=c, alpha=0.2, linewidth=0)
    ax.plot(st.index, st["mean"], marker="o", ms=4, color=c, label=label)


def _legend(fig: Any, axs: Sequence[Any], hue: Optional[str], colorbar: Any) -> None:
    """A colour bar for a continuous ``hue`` (``colorbar``: its scatter), else one legend for all panels."""
    if colorbar is not None:
        fig.colorbar(colorbar, ax=list(axs), label=hue)
    elif hue:
        legend: Dict[str, Any] = {}
        for ax in axs:  # a panel may lack some values
            for hd, nm in zip(*ax.get_legend_handles_labels()):
                legend.setdefault(nm, hd)
        fig.legend(legend.values(), legend.keys(), title=hue, loc="outside right upper")


def _title(
    metric: str, x: Optional[str], hue: Optional[str], n_rep: Optional[int], pooled: List[str], band: str
) -> str:
    """What a metric's plot shows; ``n_rep`` None: each trial as a point, else means of replicates."""
    what = "each trial" if n_rep is None else f"mean of {n_rep} replicate{'s' * (n_rep != 1)}, band: {BANDS[band]}"
    extra = f"; pooled over {', '.join(pooled)}" if pooled else ""
    return (f"{metric} by {x}" if x else metric) + (f" and {hue}" if hue else "") + f"\n({what}{extra})"


def _plot_timing(df: pd.DataFrame, by: List[str], path: Path) -> str:
    import numpy as np

    data = df.dropna(subset=["duration_s"])
    fig, axs = _figure(2 if by else 1, w=5.2, h=3.6, share=False)
    d = data["duration_s"].clip(lower=1e-4)
    log = len(d) > 0 and d.max() / d.min() >= 50
    groups = [(s, d[data["status"] == s]) for s in STATUSES + sorted(set(data["status"]) - set(STATUSES))]
    groups = [(s, v) for s, v in groups if len(v)]
    palette = {"ok": "C2", "failed": "C3", "timeout": "C1", "cancelled": "C7"}
    if groups:
        axs[0].hist(
            [v for _, v in groups],
            bins=np.geomspace(d.min(), d.max(), 30) if log else 30,
            stacked=True,
            label=[f"{s} ({len(v)})" for s, v in groups],
            color=[palette.get(s, "C0") for s, _ in groups],
        )
        axs[0].legend(title="status")
    axs[0].set_xscale("log" if log else "linear")
    axs[0].set(xlabel="duration_s (seconds per trial)", ylabel="trials", title="trial durations")
    axs[0].grid(True, alpha=0.3)
    if by:
        xs, how = _axis(data[by[0]])
        axs[1].scatter(xs, data["duration_s"], s=10, alpha=0.5)
        axs[1].set(ylabel="duration_s", yscale="log" if log else "linear", title=f"duration by {by[0]}")
        _set_x(axs[1], how, by[0])
    title = f"timing: {len(data)} trials, {data['duration_s'].sum():.3g}s of trial time in all"
    fig.suptitle(title)
    fig.savefig(path, dpi=110)
    return title
