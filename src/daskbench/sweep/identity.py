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
from json.encoder import encode_basestring_ascii
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


def encode(value: Any) -> str:
    """One value as the JSON :func:`trial_id` hashes holds it (the same text, faster
    for the plain types a sweep is made of)."""
    t = type(value)
    if t is str:
        return str(encode_basestring_ascii(value))
    if t is int:
        return int.__repr__(value)
    if t is float:
        if value != value:
            return "NaN"
        if value in (_INF, -_INF):
            return "Infinity" if value > 0 else "-Infinity"
        return float.__repr__(value)
    if t is bool:
        return "true" if value else "false"
    if value is None:
        return "null"
    return json.dumps(value, separators=(",", ":"), sort_keys=True, default=repr)


_INF = float("inf")


class Hasher:
    """:func:`trial_id` for the trials of one experiment and group choice: the base's
    JSON is written once, each trial encodes and hashes only its own values.
    ``tests/test_identity.py`` checks that it gives :func:`trial_id`'s ids."""

    def __init__(self, name: str, groups: GroupKey, base: Items) -> None:
        self._head = "[" + encode(name) + "," + encode([list(g) for g in groups]) + ",["
        self._base = [(k, "[" + encode(k) + "," + encode(v) + "]") for k, v in base]
        self._layouts: Dict[Tuple[str, ...], Tuple[str, List[Tuple[str, str]]]] = {}

    def fixing(self, fixed: Mapping[str, Any]) -> Hasher:
        """The hasher of trials that all hold ``fixed`` (e.g. one replicate's spawned seed)
        besides the values it is called with: those are encoded once too. Called with a
        trial's other values it gives the id of the trial holding both; ``fixed`` keys
        are no key of the base (the base holds no swept key), so :func:`trial_id`'s
        stable sort orders them as it would."""
        h = Hasher.__new__(Hasher)
        h._head = self._head
        h._base = self._base + [(k, "[" + encode(k) + "," + encode(v) + "]") for k, v in fixed.items()]
        h._layouts = {}
        return h

    def _layout(self, keys: Tuple[str, ...]) -> Tuple[str, List[Tuple[str, str]]]:
        """The text before the first value, and (key, text after its value) in hashed order."""
        entries: List[Tuple[str, bool, str]] = [(k, False, text) for k, text in self._base]
        entries += [(k, True, "") for k in sorted(keys)]
        entries.sort(key=lambda e: e[0])  # stable, as trial_id's sort: the base's own first on a tie
        lead = self._head
        slots: List[Tuple[str, str]] = []
        text = ""
        for j, (k, is_param, fixed) in enumerate(entries):
            sep = "," if j else ""
            if is_param:
                if slots:
                    slots[-1] = (slots[-1][0], slots[-1][1] + text + sep + "[" + encode(k) + ",")
                else:
                    lead += text + sep + "[" + encode(k) + ","
                slots.append((k, "]"))
                text = ""
            else:
                text += sep + fixed
        if slots:
            slots[-1] = (slots[-1][0], slots[-1][1] + text + "]]")
        else:
            lead += text + "]]"
        self._layouts[keys] = (lead, slots)
        return lead, slots

    def __call__(self, params: Mapping[str, Any]) -> str:
        keys = tuple(params)
        lead, slots = self._layouts.get(keys) or self._layout(keys)
        if len(slots) == 1:  # one swept value: the common case, and the hot loop of a long range()
            k, after = slots[0]
            text = lead + encode(params[k]) + after
        else:
            text = lead + "".join([encode(params[k]) + after for k, after in slots])
        return _sha256(text.encode()).digest()[:8].hex()

    def around(self, key: str) -> Tuple[str, str]:
        """The hashed text before and after the value of a trial whose one own value is
        ``key``'s: its id hashes ``before + encode(value) + after`` (as :meth:`__call__`
        does), which lets a long axis be hashed a batch at a time (:mod:`.batch`)."""
        lead, slots = self._layouts.get((key,)) or self._layout((key,))
        ((_, after),) = slots
        return lead, after


_sha256 = hashlib.sha256


@functools.lru_cache(maxsize=4096)
def spawn_seed(root_seed: int, replicate: int) -> int:
    """Seed of replicate ``r``: ``SeedSequence(root_seed).spawn(...)[r]`` as a 32-bit int."""
    ss = np.random.SeedSequence(int(root_seed), spawn_key=(int(replicate),))
    return int(ss.generate_state(1, dtype=np.uint32)[0])


def design_rng(root_seed: int) -> np.random.Generator:
    """The random stream a sampling design draws its points from."""
    return np.random.default_rng(np.random.SeedSequence(int(root_seed), spawn_key=DESIGN_STREAM))
