"""Typing a composed config: its top-level keys, each section as its dataclass, and
the rules each section obeys (the dataclasses' own ``problems()``), so that the
code reading a section, cluster code included, trusts it."""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import fields
from typing import Any, Dict, Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ..errors import ConfigError
from . import checks, schema, typed_memo

#: how to set one key of a section, for a section given a single value
_EXAMPLES = {
    "trial": "trial.x=1 (+trial.x=1 for a new key)",
    "vars": "+vars.n=10",
    "sweep": "sweep.replicates=2",
    "results": "results.dir=out",
    "runner": "runner.isolation=process",
    "cluster": "cluster.n_workers=2",
    "resources": "+resources.GPU=1",
}


@functools.cache
def _template(cls: type) -> DictConfig:
    # OmegaConf.structured reads the dataclass's fields and type hints anew each time, and
    # costs several times the merge; a template made once per class is never changed
    # (merge copies its first config) and the dataclasses' defaults are constants
    return OmegaConf.structured(cls)


def typed(section: str, node: Any, cls: type) -> Any:
    """``node`` merged over the dataclass ``cls``; unknown keys and bad types as one line."""
    try:
        return OmegaConf.merge(_template(cls), node)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or getattr(exc, "key", None) or "?"
        names = [f.name for f in fields(cls)]
        bad = str(key).split(".")[-1]
        if bad not in names:
            hint = ""
            if bad.replace(".", "").lstrip("-").isdigit():
                hint = (
                    ". In YAML flow style a comma ends the entry: write {trial.x: '1,2,3'} (quoted) or use block style"
                )
            raise ConfigError(
                f"unknown key {section}.{bad}{checks.suggest(bad, names)}; valid keys under "
                f"{section}: {', '.join(names)}{hint}"
            ) from None
        full = str(getattr(exc, "full_key", None) or bad)
        where = full if section == "config" else f"{section}.{full}"
        raise ConfigError(checks.value_message(exc, where)) from None


def check_top_level(cfg0: DictConfig, choices: Dict[str, Any], raw: Optional[Dict[str, Any]] = None) -> None:
    """Top-level keys are the schema's or config groups'; ``name`` is set; nothing is
    left ``???``; a section holds keys, not a single value (``runner=process``).
    ``raw``: ``cfg0`` as ``OmegaConf.to_container(resolve=False)`` gives it, if known."""
    known = {f.name for f in fields(schema.ExperimentConfig)}
    group_roots = {g.split("/")[0] for g in choices}
    for key in cfg0.keys():
        if key != "hydra" and key not in known and key not in group_roots:
            raise ConfigError(
                f"unknown top-level key {key!r}{checks.suggest(str(key), sorted(known))}; "
                f"valid keys: {', '.join(sorted(known))}, or a config group"
            )
    if "name" not in cfg0 or OmegaConf.is_missing(cfg0, "name"):
        raise ConfigError("the experiment config sets no `name`; add `name: my_experiment`")
    for k in map(str, cfg0.keys()):
        if k != "hydra" and OmegaConf.is_missing(cfg0, k):
            raise ConfigError(f"{k} has no value (???); set it in the experiment config or with {k}=VALUE")
    if raw is None:
        raw = OmegaConf.to_container(cfg0, resolve=False)  # type: ignore[assignment]
        assert isinstance(raw, dict)
    for key in schema.MAPPING_KEYS:
        value = raw.get(key)
        if value is None or isinstance(value, dict) or (isinstance(value, str) and "${" in value):
            continue
        raise ConfigError(
            f"{key}={value!r:.60}: `{key}` is a section of keys, not a single value; set one of its keys, "
            f"e.g. {_EXAMPLES[key]}"
        )


def type_sections(cfg0: DictConfig, raw: Optional[Dict[str, Any]] = None) -> schema.ExperimentConfig:
    """The run's sections as :class:`~daskbench.config.schema.ExperimentConfig`, checked
    (``trial`` stays free: it is checked against the trial function's signature).
    ``raw``: ``cfg0`` as plain containers (``to_container(resolve=False)``), if known: a
    config without interpolations is then typed a section at a time, each section from
    memory when the same content was typed before (:mod:`.typed_memo`)."""
    known = {f.name for f in fields(schema.ExperimentConfig)}
    if raw is not None:
        part = {k: raw[k] for k in raw if k in known and k not in ("trial", "cluster")}
        if typed_memo.key("config", part) is not None:
            try:
                fast = _by_section(part)
            except (ConfigError, OmegaConfBaseException):
                fast = None  # a mistake: the whole config typed below says what it is, as ever
            if fast is not None:
                problems = fast.problems()
                if problems:
                    raise ConfigError("; ".join(problems))
                return fast
    try:
        run_part = {k: cfg0[k] for k in cfg0.keys() if k in known and k not in ("trial", "cluster")}
    except OmegaConfBaseException as exc:  # e.g. name: ${nosuch}
        raise ConfigError(checks.interpolation_message(exc)) from None
    tree = typed("config", OmegaConf.create({}), schema.ExperimentConfig)
    for k, node in run_part.items():
        cls = schema.SECTIONS.get(str(k))
        try:
            tree[k] = typed(str(k), node, cls) if cls else node
        except OmegaConfBaseException as exc:
            full = str(getattr(exc, "full_key", None) or k)
            raise ConfigError(checks.value_message(exc, full if full.startswith(str(k)) else f"{k}.{full}")) from None
    try:
        cfg = OmegaConf.to_object(tree)
    except OmegaConfBaseException as exc:
        raise ConfigError(checks.interpolation_message(exc)) from None
    assert isinstance(cfg, schema.ExperimentConfig)
    problems = cfg.problems()
    if problems:
        raise ConfigError("; ".join(problems))
    return cfg


def _by_section(part: Dict[str, Any]) -> schema.ExperimentConfig:
    """:func:`type_sections`'s answer for ``part`` (the run's keys as plain containers, no
    interpolation): the top-level values and each section typed on their own, by content."""
    top = {k: v for k, v in part.items() if k not in schema.SECTIONS}
    cfg = typed_memo.typed("config", top, lambda: _object("config", top, schema.ExperimentConfig))
    typed_sections = {
        k: typed_memo.typed(k, node, functools.partial(_object, k, node, schema.SECTIONS[k]))
        for k, node in part.items()
        if k in schema.SECTIONS
    }
    return dataclasses.replace(cfg, **typed_sections)


def _object(section: str, node: Any, cls: type) -> Any:
    """``node`` (plain) typed as ``cls``: the dataclass :func:`typed` and ``to_object`` give."""
    return OmegaConf.to_object(typed(section, node, cls))


def cluster(cfg0: DictConfig, raw: Optional[Dict[str, Any]] = None) -> Any:
    """The ``cluster`` section as the dataclass of its kind, checked; from memory when the
    same section was checked before (``raw``: ``cfg0`` as plain containers, if known)."""
    if raw is not None:
        node = raw.get("cluster") or {}
        if isinstance(node, dict):
            return typed_memo.typed("cluster", node, lambda: _cluster(cfg0))
    return _cluster(cfg0)


def _cluster(cfg0: DictConfig) -> Any:
    node = cfg0.get("cluster") or {}
    kind = node.get("kind", "local")
    cls = schema.CLUSTER_SCHEMAS.get(kind)
    if cls is None:
        raise ConfigError(
            f"cluster.kind={kind!r} is unknown; choose cluster=local, cluster=address or cluster=kubernetes"
        )
    merged = typed("cluster", node, cls)
    if kind == "address" and OmegaConf.is_missing(merged, "address"):
        raise ConfigError("cluster=address needs the scheduler's address: cluster.address=tcp://HOST:8786")
    c: Any = OmegaConf.to_object(merged)
    problems = c.problems()
    if problems:
        raise ConfigError("; ".join(problems))
    if isinstance(c, schema.KubernetesClusterConfig):
        from ..cluster import kube  # validates the DaskCluster manifest offline, against the operator's CRDs

        kube.build_spec(c)
    return c
