"""``cluster.dask_config``: the Dask settings daskbench's own local clusters start with.

Nested as in Dask's YAML (``distributed: {worker: {profile: {interval: 50ms}}}``), so a
Hydra override names one leaf (``cluster.dask_config.distributed.worker.profile.interval=10ms``);
set leaf by leaf in the driver around the cluster's start (``cluster/create.py``), where the
nannies and the forked scheduler take the driver's config for their processes.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

#: the Dask settings daskbench's own local clusters start with (``cluster.dask_config``):
#: a worker's sampling profiler and every server's event-loop check wake its event loop
#: 100 and 50 times a second, ~25 ms of CPU a second per idle worker and ~25 ms in the
#: scheduler's process (benchmarks/bench_idle.py), taken from the trials on a
#: small machine. Sampled 20 and 10 times a second, the dashboard's profile and event-loop
#: plots still fill; ``cluster.dask_config=null`` keeps Dask's (and your) own values.
QUIET_DASK: Dict[str, Any] = {
    "distributed": {"worker": {"profile": {"interval": "50ms"}}, "admin": {"tick": {"interval": "100ms"}}}
}


def nested_copy(tree: Mapping[str, Any]) -> Dict[str, Any]:
    """A copy of a nested mapping: each config gets its own."""
    return {k: nested_copy(v) if isinstance(v, Mapping) else v for k, v in tree.items()}


def flat_dask_config(tree: Optional[Mapping[str, Any]], prefix: str = "") -> Dict[str, Any]:
    """``cluster.dask_config`` as dotted Dask keys: ``dask.config.set`` replaces a whole
    mapping given as one value, where each leaf must be set on its own."""
    out: Dict[str, Any] = {}
    for k, v in (tree or {}).items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(flat_dask_config(v, key + "."))
        else:
            out[key] = v
    return out


def dask_config_problems(tree: Optional[Mapping[str, Any]]) -> List[str]:
    """``cluster.dask_config``: each leaf a setting Dask knows (a typo would set nothing)."""
    return [
        f"cluster.dask_config.{key}: Dask has no such setting (`dask config list` shows them); "
        "give its full name, e.g. cluster.dask_config.distributed.worker.profile.interval=10ms"
        for key in flat_dask_config(tree)
        if not _known(key)
    ]


def _known(key: str) -> bool:
    import dask

    missing = object()
    if dask.config.get(key, missing) is not missing:  # dask's own, the user's files, distributed if imported
        return True
    node: Any = _distributed_defaults()
    for part in key.split("."):
        if not isinstance(node, dict):
            return False
        part = part if part in node else part.replace("_", "-")
        if part not in node:
            return False
        node = node[part]
    return True


@functools.lru_cache(maxsize=1)
def _distributed_defaults() -> Dict[str, Any]:
    """distributed's settings (its ``distributed.yaml``), read without importing distributed:
    a command checks its config before the cluster's thread imports it (~0.3 s)."""
    import yaml

    spec = importlib.util.find_spec("distributed")
    if spec is None or not spec.origin:
        return {}
    try:
        text = Path(spec.origin).with_name("distributed.yaml").read_text()
    except OSError:
        return {}
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(text, Loader=loader) or {}  # noqa: S506 - a safe loader
