"""An in-process memo of Hydra compositions, for a process that runs many sweeps.

A notebook (or a benchmark) that calls :func:`daskbench.run` again and again
composes the same experiment each time, and Hydra's compose is half of such a
run's fixed cost. This memo gives the composed config from memory instead when
nothing Hydra's compose reads has changed since:

* the words that choose configs: config group choices (``+experiment=NAME``,
  ``model=large``), deletions, package overrides and every ``hydra.*`` word
  (``hydra.searchpath`` included). The other words (``results.dir=...``,
  ``trial.x=3``) only set values: Hydra applies those to the composed config
  last, and so does the memo, with Hydra's own function, to a copy of the
  stored composition; only ``hydra.overrides.task`` and ``hydra.job.override_dirname``
  depend on them besides, and both are set here as Hydra sets them;
* the config search path (the primary config folder and the search-path plugins'
  additions), and every file Hydra could read: the folders and ``*.yaml`` files
  (by content, not by modification time) under each source the composition used
  (``hydra.runtime.config_sources``: the package's and the user's config folders,
  Hydra's own ``pkg://hydra.conf``, any ``hydra.searchpath``);
* Hydra's ConfigStore (structured configs) and OmegaConf's resolvers other than the
  three Hydra registers anew on every compose, by the identity of each node and
  function (held, so an identity cannot be reused while its entry lives);
* the working directory (``hydra.runtime.cwd``) and the environment
  (``hydra.job.env_copy``, and ``${oc.env:...}`` in a defaults list or a search path).

Not seen: a resolver whose answer changes between two calls (``${now:...}``) used in
a defaults list or ``hydra.searchpath`` (Hydra resolves those while composing; values
elsewhere stay unresolved and are resolved afresh each run), and a ConfigStore node
changed in place rather than stored again. A process's first composition (which
finds the search path's sources; a one-shot command's only one) is Hydra's alone;
every later one is stored the first time its key is met, so a notebook's third
`run` composes from memory, at most :data:`MAX_ENTRIES` of them; every answer is a new copy (unpickled from what is
stored), so a caller cannot change what is stored. ``DASKBENCH_COMPOSE_MEMO=0`` turns it off.
"""

from __future__ import annotations

import copy
import hashlib
import os
import pickle
import threading
from collections import OrderedDict
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Dict, FrozenSet, List, Optional, Sequence, Tuple

from hydra._internal.config_loader_impl import ConfigLoaderImpl, get_overrides_dirname
from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.types import Override
from hydra.errors import ConfigCompositionException, HydraException
from omegaconf import DictConfig
from omegaconf.basecontainer import BaseContainer
from omegaconf.errors import OmegaConfBaseException

from ..sweep import axes

#: compositions kept (each a composed config with its ``hydra`` node, pickled: ~20 KB)
MAX_ENTRIES = 16
#: folders and files looked at under one run's sources; a bigger tree is not memoised
MAX_FILES = 2000
#: how deep a source's folders are followed (symbolic links included)
MAX_DEPTH = 16
#: resolvers every Hydra compose registers again (a new function each time)
HYDRA_RESOLVERS = frozenset({"now", "hydra", "python_version"})

Compose = Callable[[List[str]], DictConfig]
Sources = Tuple[Tuple[str, str], ...]  # ((scheme, path), ...) as in hydra.runtime.config_sources


@dataclass
class _Entry:
    fingerprint: Tuple[Any, ...]  # the sources' folders and files when composed
    sources: Sources
    stored: Any  # None: met once, not stored yet; else what _keep gave
    held: Tuple[Any, ...]  # the ConfigStore nodes and resolvers whose identities are in the key


@dataclass
class _Listing:
    fingerprint: Tuple[Any, ...]
    groups: FrozenSet[str]  # casefolded folder paths relative to a source: Hydra's config groups


_lock = threading.RLock()
_entries: OrderedDict[Tuple[Any, ...], _Entry] = OrderedDict()
_sources: OrderedDict[Tuple[Any, ...], Sources] = OrderedDict()  # the sources each base last composed from


def enabled() -> bool:
    """Whether the memo is on (``DASKBENCH_COMPOSE_MEMO`` is not ``0``)."""
    return os.environ.get("DASKBENCH_COMPOSE_MEMO", "1") != "0"


def clear() -> None:
    """Forget every stored composition."""
    with _lock:
        _entries.clear()
        _sources.clear()


def compose(main_dir: str, words: List[str], hydra_compose: Compose) -> DictConfig:
    """What ``hydra_compose(words)`` (Hydra's compose of the primary config in ``main_dir``)
    gives, from memory when nothing it reads has changed."""
    if not enabled() or any("shuffle(" in w for w in words):  # shuffle([..]) draws anew each time
        return hydra_compose(words)
    with _lock:  # Hydra's compose is one at a time anyway (its global state)
        if not _sources:  # the process's first composition: Hydra's plugin scan runs in it, as ever
            cfg = hydra_compose(words)
            return _record(_base(main_dir)[0], cfg)
        base, held = _base(main_dir)
        sources = _sources.get(base)
        if sources is None:  # the first composition here: nothing to compare with
            return _record(base, hydra_compose(words))
        try:
            parsed = [axes.parsed(w) for w in words]
        except HydraException:
            return hydra_compose(words)  # Hydra says what is wrong
        if any(o.is_sweep_override() for o in parsed):
            return hydra_compose(words)
        return _compose(words, parsed, hydra_compose, (base, held, sources))


def _compose(
    words: List[str], parsed: List[Override], hydra_compose: Compose, at: Tuple[Any, Any, Sources]
) -> DictConfig:
    base, held, sources = at
    listing = _listing(sources)
    if listing is None:
        return _record(base, hydra_compose(words))
    chosen = [o for o in parsed if not _sets_a_value(o, listing.groups)]
    values = [o for o in parsed if _sets_a_value(o, listing.groups)]
    key = (base, tuple(str(o.input_line) for o in chosen))
    entry = _entries.get(key)
    if entry is None or entry.fingerprint != listing.fingerprint or entry.sources != sources:
        entry = _entries[key] = _Entry(listing.fingerprint, sources, None, held)
        while len(_entries) > MAX_ENTRIES:
            _entries.popitem(last=False)
    _entries.move_to_end(key)
    if entry.stored is not None:
        try:
            cfg = _copy(entry.stored)
        except Exception:  # e.g. a class it names is gone from its module: compose afresh
            del _entries[key]
            return _record(base, hydra_compose(words))
        return _finish(cfg, parsed, values)
    # compose the choosing words alone, keep that, then set the values
    cfg = hydra_compose([str(o.input_line) for o in chosen])
    after = _listing(sources)
    if _config_sources(cfg) != sources or after is None or after.fingerprint != listing.fingerprint:
        # a file changed meanwhile: which words choose configs may have changed too
        del _entries[key]
        return _record(base, hydra_compose(words))
    entry.stored = _keep(cfg)
    return _finish(cfg, parsed, values)


def _keep(cfg: DictConfig) -> Any:
    """What is stored of a composition: its pickle (a copy made from it costs an eighth of a
    deep copy), or a deep copy if something in it cannot be pickled (a class defined in a
    function, say)."""
    try:
        return pickle.dumps(cfg, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        return copy.deepcopy(cfg)


def _copy(stored: Any) -> DictConfig:
    """A new copy of a stored composition, which its caller may change at will."""
    cfg = pickle.loads(stored) if isinstance(stored, bytes) else copy.deepcopy(stored)
    assert isinstance(cfg, DictConfig)
    return cfg


def _record(base: Tuple[Any, ...], cfg: DictConfig) -> DictConfig:
    """Remember the sources a base's composition used (the next one fingerprints them)."""
    _sources[base] = _config_sources(cfg)
    _sources.move_to_end(base)
    while len(_sources) > MAX_ENTRIES:
        _sources.popitem(last=False)
    return cfg


def _finish(cfg: DictConfig, parsed: Sequence[Override], values: List[Override]) -> DictConfig:
    """Set the value words as the tail of Hydra's ``_load_configuration_impl`` does: its
    function applies them, then the task's overrides and their folder name are recorded."""
    try:
        ConfigLoaderImpl._apply_overrides_to_config(values, cfg)
    except OmegaConfBaseException as e:  # as Hydra's load_configuration wraps it
        raise ConfigCompositionException() from e
    app = [o for o in parsed if not o.is_hydra_override()]
    task = cfg.hydra.overrides.task
    task.clear()
    for o in app:
        task.append(o.input_line)
    dirname = cfg.hydra.job.config.override_dirname
    cfg.hydra.job.override_dirname = get_overrides_dirname(
        overrides=app, kv_sep=dirname.kv_sep, item_sep=dirname.item_sep, exclude_keys=dirname.exclude_keys
    )
    return cfg


def _sets_a_value(o: Override, groups: FrozenSet[str]) -> bool:
    """A word Hydra applies to the composed config (not a config group's, not Hydra's own).
    In doubt it counts as choosing: those words are composed by Hydra itself."""
    kog = o.key_or_group
    return (
        o.package is None
        and not o.is_delete()
        and not kog.startswith("hydra")
        and "/" not in kog
        and kog.casefold() not in groups
    )


def _config_sources(cfg: DictConfig) -> Sources:
    return tuple((str(s.schema), str(s.path)) for s in cfg.hydra.runtime.config_sources)


def _base(main_dir: str) -> Tuple[Tuple[Any, ...], Tuple[Any, ...]]:
    """What every composition depends on besides its words and files, and the objects
    whose identities it holds."""
    from hydra._internal.utils import create_config_search_path  # plugins' additions included

    search = tuple((e.provider, e.path) for e in create_config_search_path(main_dir).get_path())
    nodes: List[Tuple[str, Any]] = []
    _store_nodes(ConfigStore.instance().repo, "", nodes)
    resolvers = sorted((k, v) for k, v in BaseContainer._resolvers.items() if k not in HYDRA_RESOLVERS)
    held = tuple(v for _, v in nodes) + tuple(v for _, v in resolvers)
    base = (
        main_dir,
        search,
        os.getcwd(),
        tuple(sorted(os.environ.items())),
        tuple((k, id(v)) for k, v in nodes),
        tuple((k, id(v)) for k, v in resolvers),
    )
    return base, held


def _store_nodes(tree: Dict[str, Any], prefix: str, out: List[Tuple[str, Any]]) -> None:
    for name, node in tree.items():
        if isinstance(node, dict):
            out.append((prefix + name + "/", None))
            _store_nodes(node, prefix + name + "/", out)
        else:
            out.append((prefix + name, node))


def _listing(sources: Sources) -> Optional[_Listing]:
    """The folders and ``*.yaml`` files (their contents' digests) under each source; None
    if a source cannot be read as folders (a zip, an unknown scheme) or is too big."""
    fingerprint: List[Any] = []
    groups: set[str] = set()
    budget = [MAX_FILES]
    for scheme, path in sources:
        if scheme == "structured":
            cs_groups = _store_groups(ConfigStore.instance().repo, "")
            groups.update(g.casefold() for g in cs_groups)
            continue  # its nodes' identities are in the base
        roots = _roots(scheme, path)
        if roots is None:
            return None
        for root in roots:
            items = _walk(root, "", 0, budget)
            if items is None:
                return None
            fingerprint.append((scheme, path, str(root), tuple(items)))
            groups.update(rel.casefold() for rel, digest in items if digest is None)
    return _Listing(tuple(fingerprint), frozenset(groups))


def _store_groups(tree: Dict[str, Any], prefix: str) -> List[str]:
    out = []
    for name, node in tree.items():
        if isinstance(node, dict):
            out.append(prefix + name)
            out.extend(_store_groups(node, prefix + name + "/"))
    return out


def _roots(scheme: str, path: str) -> Optional[List[Path]]:
    if scheme == "file":
        return [Path(path)]
    if scheme != "pkg":
        return None
    try:
        files = resources.files(path.replace("/", ".").rstrip("."))  # as Hydra's pkg source reads it
    except (ValueError, ModuleNotFoundError, TypeError):
        return None
    if isinstance(files, Path):
        return [files]
    paths = getattr(files, "_paths", None)  # a namespace package: importlib's MultiplexedPath
    return list(paths) if isinstance(paths, list) and all(isinstance(p, Path) for p in paths) else None


def _walk(folder: Path, rel: str, depth: int, budget: List[int]) -> Optional[List[Tuple[str, Any]]]:
    """(relative path, digest) of each ``*.yaml`` file and (relative path, None) of each
    folder under ``folder``, sorted; None when over budget or too deep."""
    if depth > MAX_DEPTH:
        return None
    try:
        with os.scandir(folder) as it:
            found = sorted(it, key=lambda e: e.name)
    except FileNotFoundError:
        return []  # Hydra finds nothing there either
    except OSError:
        return None
    out: List[Tuple[str, Any]] = []
    for e in found:
        budget[0] -= 1
        if budget[0] < 0:
            return None
        name = f"{rel}{e.name}"
        try:
            if e.is_dir():  # follows links, as Hydra's os.path.isdir does
                out.append((name, None))
                sub = _walk(Path(e.path), name + "/", depth + 1, budget)
                if sub is None:
                    return None
                out.extend(sub)
            elif e.name.endswith(".yaml"):
                out.append((name, _digest(e.path)))
        except OSError:
            return None
    return out


def _digest(path: str) -> bytes:
    with open(path, "rb") as f:
        return hashlib.blake2b(f.read(), digest_size=16).digest()


def stored() -> int:
    """How many compositions are stored (for tests and benchmarks)."""
    with _lock:
        return sum(1 for e in _entries.values() if e.stored is not None)
