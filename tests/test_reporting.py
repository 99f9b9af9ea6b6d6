"""write_report on results of real sweeps run on a LocalCluster."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import daskbench
from daskbench.errors import ResultsError
from daskbench.observe.report import require_results, write_report
from tests.conftest import write_experiment

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

SHAPED_PY = '''
import math


def shaped(x=1, y=0, kind="a", z=1, seed=0):
    """Four swept keys, a failure for kind b at x=3, numeric, boolean and text metrics."""
    if kind == "b" and x == 3:
        raise ValueError(f"kind b cannot do x={x}")
    noise = ((seed % 1000) / 1000.0 - 0.5) * 0.2
    return {"f": x * (1 + y) + z + noise, "g": math.log(x) + noise, "big": x > 2, "label": f"{kind}{x}"}
'''


def go(name, overrides=(), client=None):
    return daskbench.run(name, list(overrides), client=client, config_dir="conf", progress="none", echo=lambda *_: None)


def pngs(report: Path):
    return sorted(p.name for p in report.parent.glob("*.png"))


def check_png(path: Path):
    import matplotlib.image as mpimg

    assert path.read_bytes()[:8] == PNG_MAGIC, path
    img = mpimg.imread(path)
    assert img.shape[0] > 200 and img.shape[1] > 300, (path, img.shape)


def test_report_four_keys_with_failures(user_dir, client):
    (user_dir / "shaped.py").write_text(SHAPED_PY)
    write_experiment(
        user_dir / "conf",
        "shaped",
        """
        name: shaped
        seed: 3
        trial: {_target_: shaped.shaped, x: 1, y: 0, kind: a, z: 1}
        sweep:
          params:
            trial.x: 1,2,3,4
            trial.y: 0,1
            trial.kind: a,b
            trial.z: 1,2
          replicates: 2
    """,
    )
    res = go("shaped", client=client)
    assert res.counts.ok == 56 and res.counts.failed == 8
    page = write_report("results/shaped")
    assert page == Path("results/shaped/report/report.html")
    assert pngs(page) == ["metric-big.png", "metric-f.png", "metric-g.png", "timing.png"]
    for p in page.parent.glob("*.png"):
        check_png(p)
    text = page.read_text()
    for metric in ("f", "g", "big"):
        assert f"metric-{metric}.png" in text
    assert "metric-label.png" not in text  # text metrics are not plotted
    assert text.count("data:image/png;base64,") == 4  # self-contained
    df = daskbench.load("results/shaped")
    failed = df[df.status == "failed"]
    for tid in failed.trial_id:
        assert tid in text
    assert "ValueError: kind b cannot do x=3" in text
    assert re.search(r"<td>failed</td>\s*<td>8</td>", text)
    assert re.search(r"<td>ok</td>\s*<td>56</td>", text)
    md = (page.parent / "summary.md").read_text()
    assert "| ok | 56 |" in md and "| failed | 8 |" in md and "![f](metric-f.png)" in md
    assert "## Failed, timed out or cancelled trials (8)" in md and "kind b cannot do x=3" in md
    for key in ("trial.x", "trial.y", "trial.kind", "trial.z"):
        assert f"`{key}`" in md

    # again, with the keys in another order and a confidence band: old PNGs are replaced
    (page.parent / "metric-stale.png").write_bytes(PNG_MAGIC)
    page = write_report("results/shaped/trials", dims=["trial.kind", "trial.x"], band="ci95")
    assert pngs(page) == ["metric-big.png", "metric-f.png", "metric-g.png", "timing.png"]
    assert "95% CI" in page.read_text()
    assert "fixed" not in (page.parent / "summary.md").read_text()
    with pytest.raises(ResultsError, match="trial.nope"):
        write_report("results/shaped", dims=["trial.nope"])
    with pytest.raises(ResultsError, match="band"):
        write_report("results/shaped", band="sd")


def test_report_one_key(user_dir, client):
    write_experiment(
        user_dir / "conf",
        "fails",
        """
        name: fails
        trial: {_target_: usertrials.sometimes_fails, x: 0}
        sweep:
          params:
            trial.x: range(0,6)
          replicates: 2
    """,
    )
    go("fails", client=client)
    page = write_report("results/fails")
    assert pngs(page) == ["metric-y.png", "timing.png"]
    for p in page.parent.glob("*.png"):
        check_png(p)
    text = page.read_text()
    assert "x=0 is a multiple of three" in text and "x=3 is a multiple of three" in text
    assert "| failed | 4 |" in (page.parent / "summary.md").read_text()


@pytest.mark.parametrize(
    "y, replicates, expect",
    [
        ("interval(0,1)", 1, "(each trial)"),  # two continuous keys: scatter, coloured by y
        ("0.0,0.5", 2, "(mean of 2 replicates"),  # continuous x, one line per y, seed band
    ],
)
def test_report_sampled_design(user_dir, client, y, replicates, expect):
    write_experiment(
        user_dir / "conf",
        "sampled",
        f"""
        name: sampled
        seed: 1
        trial: {{_target_: usertrials.quad, x: 0.0, y: 0.0}}
        sweep:
          params:
            trial.x: interval(0,2)
            trial.y: '{y}'
          design: lhs
          samples: 24
          replicates: {replicates}
    """,
    )
    go("sampled", client=client)
    page = write_report("results/sampled")
    seeds = daskbench.load("results/sampled").seed_seen.nunique()
    assert pngs(page) == ["metric-f.png", *(["metric-seed_seen.png"] if seeds > 1 else []), "timing.png"]
    if seeds == 1:  # one replicate: every trial saw the same seed, a line that would say nothing
        assert "The same in every ok trial (not plotted): <code>seed_seen</code> = " in page.read_text()
    check_png(page.parent / "metric-f.png")
    md = (page.parent / "summary.md").read_text()
    assert "`trial.x`: 24 values in [" in md
    assert f"f by trial.x and trial.y {expect}" in page.read_text()  # the figure's caption


def test_report_single_point(user_dir, client):
    write_experiment(
        user_dir / "conf",
        "point",
        """
        name: point
        trial: {_target_: usertrials.quad, x: 2.0, y: 0.5}
        sweep: {replicates: 3}
    """,
    )
    go("point", client=client)
    page = write_report("results/point")
    # f is the same in the 3 replicates: said once in words, not drawn as a flat line
    assert "metric-f.png" not in pngs(page) and "timing.png" in pngs(page)
    assert "(not plotted): `f` = 1.5" in (page.parent / "summary.md").read_text()
    check_png(page.parent / "timing.png")


def test_missing_or_empty_folder(user_dir):
    with pytest.raises(ResultsError) as err:
        write_report("results/nothing")
    msg = str(err.value)
    assert "results/nothing" in msg and "no such folder" in msg
    assert "python -m daskbench +experiment=nothing" in msg
    assert "results.dir" not in msg  # the default folder of experiment `nothing`

    (user_dir / "elsewhere" / "trials").mkdir(parents=True)
    with pytest.raises(ResultsError) as err:
        write_report(user_dir / "elsewhere")
    msg = str(err.value)
    assert "holds no results yet" in msg and f"results.dir={user_dir / 'elsewhere'}" in msg

    with pytest.raises(ResultsError, match="make it with: do this"):
        require_results("results/nothing", command="make it with: do this")
    assert not (user_dir / "results" / "nothing").exists()  # nothing is created


def test_run_returns_before_its_report_and_wait_report_gives_the_page(user_dir, client):
    """daskbench.run draws the report in a process of its own (as the command line does):
    wait_report() gives the whole page; a write_report of the same folder meanwhile takes
    its turn (both pages whole, one PNG set); without a report wait_report says why."""
    (user_dir / "shaped.py").write_text(SHAPED_PY)
    write_experiment(
        user_dir / "conf",
        "later",
        """
        name: later
        trial: {_target_: shaped.shaped}
        sweep: {params: {trial.x: '1,2,4'}}
    """,
    )
    res = go("later", client=client)
    assert res.exit_code == 0 and res.counts.ok == 3
    assert not isinstance(res.report, Path)  # the process drawing it
    again = write_report("results/later")  # waits for the background writer, then draws again
    page = res.wait_report()
    assert page == again == Path("results/later/report/report.html")
    assert page.read_text().rstrip().endswith("</html>")
    assert pngs(page) == ["metric-big.png", "metric-f.png", "metric-g.png", "timing.png"]
    assert "report: " in (page.parent / "report.log").read_text()
    assert not list(page.parent.glob(".*"))  # no partial page, no lock file

    res = go("later", ["results.dir=results/drawn", "trial.x=5,6"], client=client)
    res2 = daskbench.run(
        "later",
        ["results.dir=results/now", "trial.x=5,6"],
        client=client,
        config_dir="conf",
        progress="none",
        echo=lambda *_: None,
        background_report=False,
    )
    assert isinstance(res2.report, Path) and res2.report.is_file()  # drawn before run returned
    assert res2.wait_report() == res2.report
    assert res.wait_report().is_file()

    res = go("later", ["results.dir=results/none", "results.report=false"], client=client)
    with pytest.raises(ResultsError, match=r"wrote no report.*python -m daskbench --report results/none"):
        res.wait_report()
