"""The package's shape stays readable: small modules, short functions, no import cycles.

These read the source (``ast``), import nothing of daskbench, and run in well under
a second. A limit broken on purpose is listed below with the reason.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Set

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "daskbench"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60

#: "module:function" -> why it is longer than MAX_FUNCTION_LINES
LONG_FUNCTIONS: Dict[str, str] = {}


def _modules() -> Dict[str, Path]:
    """Dotted module name -> file, for every module of the package (the shipped
    example experiments are user code and are not held to these limits)."""
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent).with_suffix("")
        if "experiments" in rel.parts:
            continue
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, known: Set[str]) -> Set[str]:
    """Modules of the package that ``name`` imports, at module level or inside a function."""
    is_pkg = path.name == "__init__.py"
    package = name if is_pkg else name.rpartition(".")[0]
    found: Set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            bases = [a.name for a in node.names]
            found.update(b for b in bases if b in known)
            continue
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            base_parts = package.split(".")
            base_parts = base_parts[: len(base_parts) - (node.level - 1)]
            base = ".".join(base_parts + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            if sub in known:
                found.add(sub)
            elif base in known:
                found.add(base)
    found.discard(name)
    return found


def test_no_module_is_too_long():
    long = {n: p.read_text().count("\n") for n, p in _modules().items()}
    assert {n: c for n, c in long.items() if c > MAX_MODULE_LINES} == {}, (
        f"split modules past {MAX_MODULE_LINES} lines into modules that each hold one idea"
    )


def test_no_function_is_too_long():
    too_long: List[str] = []
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                key = f"{name}:{node.name}"
                if length > MAX_FUNCTION_LINES and key not in LONG_FUNCTIONS:
                    too_long.append(f"{key} ({length} lines)")
    assert too_long == [], f"split these, or list them in LONG_FUNCTIONS with the reason: {too_long}"


def test_no_import_cycles():
    mods = _modules()
    known = set(mods)
    graph = {n: _imports(n, p, known) for n, p in mods.items()}
    cycles: List[List[str]] = []
    state: Dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(n: str, path: List[str]) -> None:
        state[n] = 1
        for m in sorted(graph[n]):
            if m not in graph:
                continue
            if state.get(m) == 1:
                cycles.append(path[path.index(m) :] + [m] if m in path else [n, m])
            elif m not in state:
                visit(m, path + [m])
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n, [n])
    # The package's __init__ re-exports the public API lazily; importing a submodule
    # of daskbench imports it implicitly, never the other way round.
    assert cycles == [], "import cycles (including imports inside functions): " + "; ".join(
        " -> ".join(c) for c in cycles
    )


@pytest.mark.parametrize("forbidden", ["experiments"])
def test_wheel_ships_no_top_level_experiments(forbidden):
    import tomllib

    project = tomllib.loads((SRC.parents[1] / "pyproject.toml").read_text())
    wheel = project["tool"]["hatch"]["build"]["targets"]["wheel"]
    assert forbidden not in wheel.get("packages", []), "ship it as daskbench.experiments"
    assert all(not str(v).startswith(forbidden) for v in wheel.get("force-include", {}).values())
    assert (SRC / "experiments").resolve() == (SRC.parents[1] / "experiments").resolve()
