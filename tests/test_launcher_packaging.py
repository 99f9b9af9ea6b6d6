"""The plugin ships in the daskbench distribution, in Hydra's ``hydra_plugins`` namespace
package, and Hydra discovers it both from an editable install and from a built wheel."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

DISCOVER = textwrap.dedent("""
    import hydra_plugins.daskbench_launcher as p
    from hydra.core.plugins import Plugins
    from hydra.plugins.launcher import Launcher
    names = [f"{c.__module__}.{c.__name__}" for c in Plugins.instance().discover(Launcher)]
    assert "hydra_plugins.daskbench_launcher.launcher.DaskbenchLauncher" in names, names
    print(p.__file__)
""")


def test_editable_install_is_discovered():
    out = subprocess.run([sys.executable, "-c", DISCOVER], capture_output=True, text=True, cwd="/")
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()).is_relative_to(ROOT / "src" / "hydra_plugins")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    dist = tmp_path_factory.mktemp("dist")
    r = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if r.returncode != 0:
        pytest.skip(f"cannot build a wheel here (pip needs hatchling from the index): {r.stderr[-300:]}")
    return next(dist.glob("daskbench-*.whl"))


def test_wheel_holds_the_plugin_in_the_namespace_package(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "hydra_plugins/daskbench_launcher/launcher.py" in names
    assert "hydra_plugins/daskbench_launcher/config.py" in names
    assert "hydra_plugins/__init__.py" not in names  # a namespace package: other plugins live there too


def test_installed_wheel_is_discovered_and_runs_a_multirun(wheel, tmp_path):
    target = tmp_path / "installed"
    r = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    # -S: no .pth files, so the editable install's src/ is not on the path; the
    # dependencies still come from this environment's site-packages
    env = {"PYTHONPATH": f"{target}:{sysconfig.get_paths()['purelib']}", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-S", "-c", DISCOVER], capture_output=True, text=True, env=env, cwd="/")
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()).is_relative_to(target)
    (tmp_path / "app.py").write_text(
        textwrap.dedent("""
        import hydra

        @hydra.main(version_base="1.3", config_path=None)
        def main(cfg):
            return cfg.x

        if __name__ == "__main__":
            main()
    """)
    )
    run = subprocess.run(
        [
            sys.executable,
            "-S",
            "app.py",
            "-m",
            "hydra/launcher=daskbench",
            "+x=1,2",
            "hydra.launcher.cluster.n_workers=1",
            "hydra.launcher.cluster.dashboard_address=null",
            "hydra.sweep.dir=ms",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=240,
    )
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "ms" / "results" / "trials").is_dir() and (tmp_path / "ms" / "1" / ".hydra").is_dir()


def test_plugin_modules_and_functions_are_small():
    """The limits tests/test_layout.py sets for src/daskbench, applied to the plugin."""
    import ast

    from tests.test_layout import MAX_FUNCTION_LINES, MAX_MODULE_LINES

    long = []
    for path in sorted((ROOT / "src" / "hydra_plugins").rglob("*.py")):
        text = path.read_text()
        if text.count("\n") > MAX_MODULE_LINES:
            long.append(f"{path.name} ({text.count(chr(10))} lines)")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES:
                    long.append(f"{path.name}:{node.name}")
    assert long == []
    assert not (ROOT / "src" / "hydra_plugins" / "__init__.py").exists()
