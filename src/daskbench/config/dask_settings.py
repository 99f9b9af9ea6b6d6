"""``cluster.dask_config``: the Dask settings daskbench's own local clusters start with.

Nested as in Dask's YAML (``distributed: {worker: {profile: {interval: 50ms}}}``), so a
Hydra override names one leaf (``cluster.dask_config.distributed.worker.profile.interval=10ms``);
set leaf by leaf in the driver around the cluster's start (``cluster/create.py``), where the
nannies and the forked scheduler take the driver's config for their processes.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

#: the Dask settings daskbench's own local clusters start with (``cluster.dask_config``):
#: a worker's sampling profiler and every server's event-loop check wake its event loop
#: 100 and 50 times a second, ~25 ms of CPU a second per idle worker and ~25 ms in the
#: scheduler's process (benchmarks/bench_idle.py), taken from the trials on a
#: small machine. Sampled 20 and 10 times a second, the dashboard's profile and event-loop
#: plots still fill; ``cluster.dask_config=null`` keeps Dask's (and your) own values.
QUIET_DASK: Dict[str, Any] = {
    "distributed": {"worker": {"profile": {"interval": "50ms"}}, "admin": {"tick": {"interval": "100ms"}}}
}


def flat_dask_config(tree: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """``cluster.dask_config`` as dotted Dask keys: ``dask.config.set`` replaces a whole
    mapping given as one value, where each leaf must be set on its own."""
    from ..sweep.identity import flatten  # the one flattener of nested config (numpy: not at import)

    return flatten(tree or {})


def dask_config_problems(tree: Optional[Mapping[str, Any]]) -> List[str]:
    """``cluster.dask_config``: each leaf a setting Dask knows (a typo would set nothing)."""
    return [
        f"cluster.dask_config.{key}: Dask has no such setting (`dask config list` shows them); "
        "give its full name, e.g. cluster.dask_config.distributed.worker.profile.interval=10ms"
        for key in flat_dask_config(tree)
        if not _known(key)
    ]


def _known(key: str) -> bool:
    dask = sys.modules.get("dask")  # its config as loaded (the user's files too), if imported already
    if dask is not None and dask.config.get(key, _MISSING) is not _MISSING:
        return True
    return any(_in(tree, key.split(".")) for tree in _defaults())


_MISSING = object()


def _in(node: Any, parts: List[str]) -> bool:
    for part in parts:
        if not isinstance(node, dict):
            return False
        part = part if part in node else part.replace("_", "-")  # Dask reads either spelling
        if part not in node:
            return False
        node = node[part]
    return True


@functools.lru_cache(maxsize=1)
def _defaults() -> Tuple[Dict[str, Any], ...]:
    """Dask's and distributed's settings (their ``dask.yaml`` and ``distributed.yaml``), read
    without importing either: planning imports no Dask (a command's cluster thread does)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    out = []
    for package, name in (("dask", "dask.yaml"), ("distributed", "distributed.yaml")):
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.origin:
            continue
        try:
            out.append(yaml.load(Path(spec.origin).with_name(name).read_text(), Loader=loader) or {})  # noqa: S506
        except OSError:
            continue
    return tuple(out)
