"""Trial identity: what a trial id hashes, the hash, and how seeds are spawned.

A trial id is what resume matches on (a trial whose id has an ``ok`` row is
skipped), so it must be stable across runs, processes and machines, and change
only when what the trial computes could change:

* it hashes the experiment's name, the swept config-group choices, and the
  flattened content of the composed config *without* the run keys (how the sweep
  is run, where results go, cluster, resources, retries...: changing them never
  invalidates results) and the trial's own swept values;
* values are serialised as JSON with ``repr`` for anything JSON cannot hold, and
  each value's type matters (``1`` and ``1.0`` are different trials);
* the code that runs is *not* hashed: it is recorded beside each row instead
  (:mod:`daskbench.results.codeversion`), so a fixed bug never orphans old rows.

``tests/test_identity.py`` pins the ids of known configs: if it fails, ids have
changed and every user's next run would silently redo what it had done.
Pure: no Dask, no files.
"""

from __future__ import annotations

import functools
import hashlib
import json
from typing import Any, Dict, Iterable, List, Mapping, Tuple

import numpy as np

#: Top-level keys that steer the run but are not part of a trial's content,
#: so they stay out of the trial id (changing them never invalidates results).
RUN_KEYS = frozenset(
    {"sweep", "results", "runner", "cluster", "resources", "priority", "retries", "timeout_s", "max_failures", "hydra"}
)

#: the key a replicate's spawned seed is passed under
SEED_KEY = "trial.seed"

#: spawn key of the stream that draws sampling designs; replicate ``r`` uses
#: spawn key ``(r,)``, so the two never share a stream while r < 2**32 - 1
DESIGN_STREAM: Tuple[int, ...] = (2**32 - 1,)

#: the swept config-group choices of a trial, sorted: ``(("model", "small"),)``
GroupKey = Tuple[Tuple[str, str], ...]

#: (dotted key, value) pairs of a base config, as hashed
Items = List[Tuple[str, Any]]


def flatten(tree: Mapping[str, Any], prefix: str = "") -> Dict[str, Any]:
    """Nested mapping -> ``{"a.b.c": leaf}``; lists and empty mappings are leaves."""
    out: Dict[str, Any] = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def content(tree: Mapping[str, Any]) -> Dict[str, Any]:
    """The part of a composed (unresolved) config that identifies its trials:
    every key but the run keys, flattened."""
    return flatten({k: v for k, v in tree.items() if k not in RUN_KEYS})


def base_items(flat: Mapping[str, Any], swept: Iterable[str]) -> Items:
    """A base's content without the keys each trial sets itself; computed once
    per group combination, not per trial."""
    own = set(swept)
    return [(k, v) for k, v in flat.items() if k not in own]


def trial_id(name: str, groups: GroupKey, base: Items, params: Mapping[str, Any]) -> str:
    """Stable content hash of a trial: experiment name, group choices, base
    content and the trial's own values (a value in ``params`` wins over none:
    ``base`` holds no swept key)."""
    items = base + sorted(params.items())
    items.sort(key=lambda kv: kv[0])
    payload = json.dumps(
        [name, [list(g) for g in groups], items],
        separators=(",", ":"),
        sort_keys=True,
        default=repr,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


@functools.lru_cache(maxsize=4096)
def spawn_seed(root_seed: int, replicate: int) -> int:
    """Seed of replicate ``r``: ``SeedSequence(root_seed).spawn(...)[r]`` as a 32-bit int."""
    ss = np.random.SeedSequence(int(root_seed), spawn_key=(int(replicate),))
    return int(ss.generate_state(1, dtype=np.uint32)[0])


def design_rng(root_seed: int) -> np.random.Generator:
    """The random stream a sampling design draws its points from."""
    return np.random.default_rng(np.random.SeedSequence(int(root_seed), spawn_key=DESIGN_STREAM))
