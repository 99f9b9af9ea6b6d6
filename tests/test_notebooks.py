"""notebooks/ run top to bottom in a real Jupyter kernel (nbclient), each a fresh copy in
a temp folder with no results in it, as on a fresh checkout.

quickstart.ipynb runs the `sweep` experiment on its own LocalCluster and writes results;
analysis.ipynb makes the two runs it compares through the Python API when their folders
hold no results, and analyses the folders that do as they are.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
KERNEL = "daskbench-test-python"
CELL_TIMEOUT = 150  # seconds per cell; each notebook takes 5-20 s here


@pytest.fixture(scope="module")
def jupyter_env(tmp_path_factory):
    """Environment for kernels: a kernelspec that runs *this* Python (the venv's), found
    through JUPYTER_PATH, whatever `python` on PATH is."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "daskbench tests",
                "language": "python",
            }
        )
    )
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["JUPYTER_PATH"] = os.pathsep.join([str(root), env.get("JUPYTER_PATH", "")]).rstrip(os.pathsep)
    for var in ("DASKBENCH_RESULTS", "DASKBENCH_RESULTS_B"):
        env.pop(var, None)
    old = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = env["JUPYTER_PATH"]  # read by the kernel spec manager here
    yield env
    if old is None:
        os.environ.pop("JUPYTER_PATH", None)
    else:
        os.environ["JUPYTER_PATH"] = old


def execute(name: str, cwd: Path, env: dict, **variables):
    """Run a fresh copy of notebooks/NAME.ipynb in `cwd`; returns (notebook with outputs, error or None)."""
    copy = Path(shutil.copy(NOTEBOOKS / f"{name}.ipynb", cwd / f"{name}.ipynb"))
    nb = nbformat.read(copy, as_version=4)
    client = nbclient.NotebookClient(
        nb, kernel_name=KERNEL, timeout=CELL_TIMEOUT, resources={"metadata": {"path": str(cwd)}}
    )
    try:
        client.execute(env=dict(env, **variables))
    except nbclient.exceptions.CellExecutionError as exc:
        return nb, exc
    return nb, None


def outputs(nb, kind: str):
    """All outputs of a kind: 'stream' text, 'text/html', 'text/plain', 'image/png', 'error'."""
    found = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if kind == "stream" and out.output_type == "stream":
                found.append(out.text)
            elif kind == "error" and out.output_type == "error":
                found.append(f"{out.ename}: {out.evalue}")
            elif kind in out.get("data", {}):
                found.append(out.data[kind])
    return found


def test_committed_notebooks_have_no_outputs():
    for name in ("quickstart", "analysis"):
        nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
        nbformat.validate(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, name


@pytest.fixture(scope="module")
def quickstart(jupyter_env, tmp_path_factory):
    work = tmp_path_factory.mktemp("nbwork")
    nb, err = execute("quickstart", work, jupyter_env, DASKBENCH_RESULTS="results/qs")
    assert err is None, err
    return work, nb


@pytest.mark.timeout(180)
def test_quickstart_runs_the_sweep(quickstart):
    work, nb = quickstart
    stream = "".join(outputs(nb, "stream"))
    assert re.search(r"Dask dashboard: http://127\.0\.0\.1:\d+/status", stream)
    assert "exit code: 0 | ok: 72" in stream and "72 trials; {'ok': 72}" in stream
    tables = [h for h in outputs(nb, "text/html") if "<table" in h]
    assert any("trial.rho" in t and "trial.customers" in t and "rel_error" in t for t in tables)
    assert outputs(nb, "image/png"), "the report's plot is shown"
    assert (work / "results" / "qs" / "trials").is_dir()
    assert (work / "results" / "qs" / "report" / "report.html").is_file()


def _check_analysis(nb) -> str:
    """What every complete run of analysis.ipynb shows; returns its printed text."""
    assert len(outputs(nb, "image/png")) == 2  # metric over the swept keys; A vs B
    html = "\n".join(outputs(nb, "text/html"))
    assert "trial.warmup" in html and "0.1" in html and "0.5" in html  # what differs A vs B
    assert "xarray.Dataset" in html or "xr-wrap" in html
    stream = "".join(outputs(nb, "stream"))
    assert "rel_error, B - A, paired by swept keys and replicate (72 pairs)" in stream
    return stream


@pytest.mark.timeout(300)
def test_analysis_on_a_fresh_checkout_makes_its_inputs(jupyter_env, tmp_path):
    """No results anywhere and no setting: it runs the two sweeps itself, then analyses them."""
    nb, err = execute("analysis", tmp_path, jupyter_env)
    assert err is None, err
    stream = _check_analysis(nb)
    for folder in ("results/quickstart", "results/quickstart_warmup50"):
        assert f"{folder}: no results yet" in stream
        trials = pd.read_parquet(tmp_path / folder / "trials")
        assert len(trials) == 72 and (trials["status"] == "ok").all()


@pytest.mark.timeout(300)
def test_analysis_reads_the_quickstart_run_as_it_is(quickstart, jupyter_env):
    work, _ = quickstart
    a = work / "results" / "qs" / "trials"
    before = sorted(p.name for p in a.iterdir())
    nb, err = execute("analysis", work, jupyter_env, DASKBENCH_RESULTS="results/qs")  # run B is missing
    assert err is None, err
    stream = _check_analysis(nb)
    assert "results/qs: results found; analysed as they are" in stream
    assert "results/quickstart_warmup50: no results yet" in stream
    assert sorted(p.name for p in a.iterdir()) == before  # A was read, not run again
    # run again: both are there now, nothing runs
    nb, err = execute("analysis", work, jupyter_env, DASKBENCH_RESULTS="results/qs")
    assert err is None, err
    assert "no results yet" not in _check_analysis(nb)
