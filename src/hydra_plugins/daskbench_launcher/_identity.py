"""A job's content hash: its ``trial_id`` in the trials table, the key of resume.

One small function on purpose: a changed id silently breaks every user's resume,
so what is hashed is fixed here and pinned by tests (``tests/test_launcher_identity.py``).
The shape follows daskbench's own trial ids: the experiment name, the
config-group choices, and the flattened config content (interpolations
unresolved) with the job's own values laid over it, sorted by key.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Dict, Mapping, Sequence


def flatten(tree: Any, prefix: str = "") -> Dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists stay values."""
    if not isinstance(tree, Mapping) or not tree:
        return {prefix: tree} if prefix else {}
    out: Dict[str, Any] = {}
    for k, v in tree.items():
        out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def job_id(name: str, groups: Sequence[str], base: Mapping[str, Any], values: Mapping[str, Any]) -> str:
    """16 hex digits of sha256 over name, group choices and content (values win)."""
    items = dict(base)
    items.update(values)
    payload = json.dumps(
        [name, list(groups), sorted(items.items())], separators=(",", ":"), sort_keys=True, default=repr
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]
