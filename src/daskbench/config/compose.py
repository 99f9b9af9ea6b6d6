"""Hydra composition: command-line words in, a checked run plan out.

This is the only module that composes Hydra configs. It composes once per
combination of swept config groups (usually once), never once per trial.
Sweep overrides (``trial.rho=0.5,0.9``) are taken out before composing, so
no ``-m`` flag is needed, and handed to the pure expansion in :mod:`sweep`.
"""

from __future__ import annotations

import difflib
import inspect
import itertools
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import yaml
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from . import checks, schema
from ..errors import ConfigError, ExperimentNotFound, TrialImportError
from ..sweep import identity
from ..sweep.plan import SEED_KEY, SweepPlan, axis_from_override, axis_from_param, merge_axes, parse_override
from ..sweep.search import from_config as search_config


def package_conf_dir() -> Path:
    """The shipped ``conf/``: inside the installed package, or the source checkout's."""
    package = Path(__file__).resolve().parents[1]  # src/daskbench, or daskbench in site-packages
    for cand in (package / "conf", package.parents[1] / "conf"):
        if (cand / "config.yaml").is_file():
            return cand
    raise ConfigError("daskbench's own conf/ folder is missing; reinstall the package")


def search_dirs(config_dir: Optional[str]) -> List[Path]:
    """Config folders in the order Hydra searches them (user's first)."""
    dirs = []
    if config_dir:
        p = Path(config_dir).expanduser().resolve()
        if not p.is_dir():
            raise ConfigError(f"--config-dir {config_dir}: no such folder")
        dirs.append(p)
    dirs.append(package_conf_dir())
    return dirs


def list_experiments(config_dir: Optional[str] = None) -> List[str]:
    """Names usable as ``+experiment=NAME``."""
    names = set()
    for d in search_dirs(config_dir):
        names.update(p.stem for p in (d / "experiment").glob("*.yaml"))
    return sorted(names)


def _is_group(key: str, choices: Dict[str, Any], dirs: Sequence[Path]) -> bool:
    return key in choices or any((d / key).is_dir() for d in dirs)


@dataclass
class RunPlan:
    """A composed, validated experiment ready to expand and run."""

    cfg: schema.ExperimentConfig  # typed run sections (trial kept raw below)
    cluster: Any  # LocalClusterConfig | AddressClusterConfig
    plan: SweepPlan
    trial_bases: Dict[Tuple[Tuple[str, str], ...], Dict[str, Any]]  # unresolved full configs
    config_yaml: str
    search_path: List[str]
    results_dir: Path
    sys_path: List[str]  # where trial modules are imported from, for the workers too

    @property
    def name(self) -> str:
        return self.cfg.name


def _suggest(word: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _compose(dirs: Sequence[Path], overrides: List[str], config_dir: Optional[str]) -> DictConfig:
    extra = []
    if config_dir:
        extra.append(f"hydra.searchpath=[file://{dirs[0]}]")
    try:
        with initialize_config_dir(config_dir=str(dirs[-1]), version_base="1.3"):
            return compose("config", overrides=overrides + extra, return_hydra_config=True)
    except yaml.YAMLError as exc:  # a config file Hydra loads is not YAML at all
        raise ConfigError(checks.yaml_message(exc)) from None
    except MissingConfigException as exc:
        msg = str(exc)
        if "experiment/" in msg:
            name = msg.split("experiment/", 1)[1].split("'", 1)[0]
            avail = list_experiments(config_dir)
            raise ExperimentNotFound(
                f"unknown experiment {name!r}{_suggest(name, avail)}; available: "
                f"{', '.join(avail) or '(none)'}. Add your own as DIR/experiment/NAME.yaml "
                "and pass --config-dir DIR"
            ) from None
        if "cluster/" in msg:
            name = msg.split("cluster/", 1)[1].split("'", 1)[0]
            raise ConfigError(
                f"unknown cluster {name!r}; choose cluster=local (default), cluster=kubernetes or cluster=address "
                "cluster.address=tcp://HOST:8786"
            ) from None
        raise ConfigError(msg.splitlines()[0]) from None
    except (HydraException, OmegaConfBaseException) as exc:
        msg = str(exc).strip()
        if msg.startswith("Could not override '"):
            key = msg.split("'", 2)[1]
            section, _, rest = key.partition(".")
            if section == "trial" and rest:
                raise _MissingTrialKey(
                    f"{key} is not in the experiment config; to pass a new argument write +{key}=VALUE", key
                ) from None
            cls = _SECTIONS.get(section)
            if section == "cluster":  # the keys of the chosen kind, e.g. cluster=address
                kind = next((w.split("=", 1)[1] for w in reversed(overrides) if w.startswith("cluster=")), "local")
                cls = schema.CLUSTER_SCHEMAS.get(kind)
                section = f"cluster (cluster={kind})" if kind != "local" else section
            if cls is not None and rest:
                names = [f.name for f in fields(cls)]
                bad = rest.split(".")[0]
                if bad not in names:
                    raise ConfigError(
                        f"unknown key {key.split('.')[0]}.{bad}{_suggest(bad, names)}; valid keys under "
                        f"{section}: {', '.join(names)}"
                    ) from None
        raise ConfigError(" ".join(msg.split("\n")[:2])) from None


_SECTIONS = {"sweep": schema.SweepConfig, "results": schema.ResultsConfig, "runner": schema.RunnerConfig}


class _MissingTrialKey(ConfigError):
    """A plain override of a ``trial.*`` key the composed config does not have."""

    def __init__(self, message: str, key: str):
        super().__init__(message)
        self.key = key


def _typed(section: str, node: Any, cls: type) -> Any:
    try:
        merged = OmegaConf.merge(OmegaConf.structured(cls), node)
        return merged
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or getattr(exc, "key", None) or "?"
        names = [f.name for f in fields(cls)]
        bad = str(key).split(".")[-1]
        if bad not in names:
            hint = ""
            if bad.replace(".", "").lstrip("-").isdigit():
                hint = (". In YAML flow style a comma ends the entry: write {trial.x: '1,2,3'} "
                        "(quoted) or use block style")
            raise ConfigError(
                f"unknown key {section}.{bad}{_suggest(bad, names)}; valid keys under "
                f"{section}: {', '.join(names)}{hint}"
            ) from None
        full = str(getattr(exc, "full_key", None) or bad)
        where = full if section == "config" else f"{section}.{full}"
        raise ConfigError(checks.value_message(exc, where)) from None


def build_plan(experiment: Optional[str], overrides: Sequence[str], config_dir: Optional[str] = None) -> RunPlan:
    """Compose ``+experiment=NAME`` plus overrides and check everything a run needs."""
    dirs = search_dirs(config_dir)
    words = list(overrides)
    if experiment:
        words.insert(0, f"+experiment={experiment}")
    parsed = [parse_override(w) for w in words]
    if not any(o.key_or_group == "experiment" for o in parsed):
        avail = list_experiments(config_dir)
        raise ExperimentNotFound(
            "no experiment given; run `python -m daskbench +experiment=NAME` with one of: "
            + (", ".join(avail) or "(none)")
        )
    plain = [o for o in parsed if not o.is_sweep_override()]
    sweeps = [o for o in parsed if o.is_sweep_override()]
    plain_words = [o.input_line for o in plain]
    for o in plain:
        if o.key_or_group == "experiment" and isinstance(o.value(), str):
            checks.check_experiment_file(o.value(), dirs)

    try:
        cfg0 = _compose(dirs, plain_words, config_dir)
    except _MissingTrialKey as exc:
        raise _explain_trial_key(exc, dirs, plain, config_dir) from None
    choices = {k: v for k, v in cfg0.hydra.runtime.choices.items() if not k.startswith("hydra")}
    for o in sweeps:
        if o.key_or_group == "experiment":
            raise ConfigError("sweeping over experiments is not supported; run each experiment on its own")

    # -- top-level keys: the schema's sections plus config groups, nothing else.
    known = {f.name for f in fields(schema.ExperimentConfig)} | {"hydra"}
    group_roots = {g.split("/")[0] for g in choices}
    for key in cfg0.keys():
        if key not in known and key not in group_roots:
            raise ConfigError(
                f"unknown top-level key {key!r}{_suggest(str(key), sorted(known - {'hydra'}))}; "
                f"valid keys: {', '.join(sorted(known - {'hydra'}))}, or a config group"
            )
    if "name" not in cfg0 or OmegaConf.is_missing(cfg0, "name"):
        raise ConfigError("the experiment config sets no `name`; add `name: my_experiment`")
    for k in cfg0.keys():
        if k != "hydra" and OmegaConf.is_missing(cfg0, k):
            raise ConfigError(f"{k} has no value (???); set it in the experiment config or with {k}=VALUE")
    try:
        run_part = {k: cfg0[k] for k in cfg0.keys() if k in known and k not in ("hydra", "trial", "cluster")}
    except OmegaConfBaseException as exc:  # e.g. name: ${nosuch}
        raise ConfigError(checks.interpolation_message(exc)) from None
    typed = _typed("config", OmegaConf.create({}), schema.ExperimentConfig)
    for k, node in run_part.items():
        cls = _SECTIONS.get(k)
        try:
            typed[k] = _typed(k, node, cls) if cls else node
        except OmegaConfBaseException as exc:
            full = str(getattr(exc, "full_key", None) or k)
            raise ConfigError(checks.value_message(exc, full if full.startswith(str(k)) else f"{k}.{full}")) from None
    if not str(typed.name).strip():  # a missing name was caught above
        raise ConfigError("the experiment config sets no `name`; add `name: my_experiment`")
    cluster = _cluster(cfg0)
    try:
        cfg: schema.ExperimentConfig = OmegaConf.to_object(typed)  # type: ignore[assignment]
    except OmegaConfBaseException as exc:
        raise ConfigError(checks.interpolation_message(exc)) from None
    problems = schema.check_values(cfg) + checks.value_checks(cfg)
    if problems:
        raise ConfigError("; ".join(problems))

    # -- axes: sweep.params first, command line wins.
    params = OmegaConf.to_container(cfg0.sweep.params, resolve=False) if "sweep" in cfg0 else {}
    for k, v in (params or {}).items():
        if v is None:
            raise ConfigError(
                f"sweep.params.{k} has no value. If you wrote {{trial.x: 1,2}} in YAML flow style, "
                "the comma ended the entry: quote it, {trial.x: '1,2'}, or use block style"
            )
    config_axes = [axis_from_param(str(k), v, is_group=_is_group(str(k), choices, dirs)) for k, v in (params or {}).items()]
    cli_axes = [axis_from_override(o, is_group=_is_group(o.key_or_group, choices, dirs)) for o in sweeps]
    axes = merge_axes(config_axes, cli_axes, [o.key_or_group for o in plain])
    fixed = [a for a in axes if a.values is not None and len(a.values) == 1]
    axes = [a for a in axes if a not in fixed]
    for a in axes:
        if not a.is_group and not a.key.startswith("trial.") and OmegaConf.select(cfg0, a.key, default=None) is None and not a.add:
            raise ConfigError(
                f"swept key {a.key!r} is not in the config; to add a new key write +{a.key}=..., "
                "or sweep a key under trial."
            )

    # -- compose once per combination of swept groups.
    group_axes = [a for a in axes if a.is_group]
    fixed_groups = [a for a in fixed if a.is_group]
    fixed_values = [a for a in fixed if not a.is_group]
    base_words = plain_words + [f"{'+' if a.add else ''}{a.key}={a.values[0]}" for a in fixed_groups]
    combos = list(itertools.product(*[[(a, v) for v in a.values] for a in group_axes])) or [()]
    bases: Dict[Tuple[Tuple[str, str], ...], Dict[str, Any]] = {}
    for combo in combos:
        words_c = base_words + [f"{'+' if a.add else ''}{a.key}={v}" for a, v in combo]
        c = cfg0 if (not combo and not fixed_groups) else _compose(dirs, words_c, config_dir)
        tree = OmegaConf.to_container(c, resolve=False)
        tree.pop("hydra", None)
        for a in fixed_values:
            _set(tree, a.key, a.values[0])
        bases[tuple(sorted((a.key, str(v)) for a, v in combo))] = tree

    checks.check_interpolations(bases, axes)
    first = next(iter(bases.values()))
    trial = first.get("trial") or {}
    target = trial.get("_target_") if isinstance(trial, dict) else None
    if not target:
        raise ConfigError("the experiment config has no trial._target_; set it to the import path of your trial function")
    fn = import_target(str(target), dirs)
    accepts_seed, names = _signature(fn)
    for a in axes:
        if a.key.startswith("trial.") and not a.is_group and names is not None:
            arg = a.key.split(".")[1]
            if arg not in names and not arg.startswith("_"):
                raise ConfigError(
                    f"swept key {a.key!r}: {target} has no argument {arg!r}{_suggest(arg, names)}; "
                    f"its arguments: {', '.join(names)}"
                )
    if names is not None:
        for arg in trial:
            if not str(arg).startswith("_") and arg not in names:
                raise ConfigError(
                    f"trial.{arg}: {target} has no argument {arg!r}{_suggest(str(arg), names)}; "
                    f"its arguments: {', '.join(names)}"
                )
    seed_swept = any(a.key == SEED_KEY for a in axes)
    seed_fixed = "seed" in trial
    if cfg.sweep.replicates > 1 and not accepts_seed:
        raise ConfigError(
            f"sweep.replicates={cfg.sweep.replicates} needs {target} to take a `seed` argument"
        )
    inject = accepts_seed and not seed_swept and (cfg.sweep.replicates > 1 or not seed_fixed)
    fixed_seed = trial.get("seed") if seed_fixed and not inject else None

    search = search_config(cfg.sweep, axes, int(cfg.seed))  # None unless sweep.search=optuna
    content = {g: identity.content(tree) for g, tree in bases.items()}
    zip_groups = [list(map(str, z)) for z in cfg.sweep.zip]
    plan = SweepPlan(
        name=cfg.name, axes=axes, bases=content, zip=zip_groups, design=cfg.sweep.design,
        samples=cfg.sweep.samples, replicates=cfg.sweep.replicates, root_seed=int(cfg.seed),
        inject_seed=inject, fixed_seed=fixed_seed if isinstance(fixed_seed, int) else None, search=search,
    )
    shown = OmegaConf.to_container(cfg0, resolve=False)
    shown.pop("hydra", None)
    return RunPlan(
        cfg=cfg, cluster=cluster, plan=plan, trial_bases=bases,
        config_yaml=OmegaConf.to_yaml(shown), search_path=[str(d) for d in dirs],
        results_dir=Path(cfg.results.dir).expanduser(),
        sys_path=_import_roots(dirs),
    )


def _cluster(cfg0: DictConfig) -> Any:
    node = cfg0.get("cluster") or {}
    kind = node.get("kind", "local")
    cls = schema.CLUSTER_SCHEMAS.get(kind)
    if cls is None:
        raise ConfigError(
            f"cluster.kind={kind!r} is unknown; choose cluster=local, cluster=address or cluster=kubernetes"
        )
    merged = _typed("cluster", node, cls)
    if kind == "address" and OmegaConf.is_missing(merged, "address"):
        raise ConfigError(
            "cluster=address needs the scheduler's address: cluster.address=tcp://HOST:8786"
        )
    cluster = OmegaConf.to_object(merged)
    checks.check_cluster(cluster)
    return cluster


def _explain_trial_key(exc: _MissingTrialKey, dirs: Sequence[Path], plain: Sequence[Any],
                       config_dir: Optional[str]) -> ConfigError:
    """``trial.k=v`` for a key the config lacks: say whether the function takes ``k`` at all."""
    try:
        others = [o.input_line for o in plain if o.key_or_group != exc.key]
        trial = _compose(dirs, others, config_dir).get("trial") or {}
        target = str(trial.get("_target_") or "")
        _, names = _signature(import_target(target, dirs)) if target else (False, None)
    except Exception:  # the other words have problems of their own: report the first one
        return exc
    arg = exc.key.split(".")[1]
    if names is not None and arg not in names:
        return ConfigError(f"{exc.key}: {target} has no argument {arg!r}{_suggest(arg, names)}; "
                           f"its arguments: {', '.join(names)}")
    return exc


def _set(tree: Dict[str, Any], dotted: str, value: Any) -> None:
    node = tree
    parts = dotted.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value


def _signature(fn: Any) -> Tuple[bool, Optional[List[str]]]:
    """(takes a seed, argument names or None if it takes **kwargs)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return False, None
    params = sig.parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return "seed" in sig.parameters, None
    names = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    return "seed" in names, names


def _import_roots(dirs: Sequence[Path]) -> List[str]:
    """The working directory, and a user's config folder and its parent."""
    return [os.getcwd()] + [str(d.parent) for d in dirs[:-1]] + [str(d) for d in dirs[:-1]]


def import_target(target: str, dirs: Sequence[Path] = ()) -> Any:
    """Import ``pkg.module.function``, adding the working directory and the user's
    config folder's parent to ``sys.path`` (that is where trial modules live)."""
    import importlib
    import sys

    for p in _import_roots(dirs):
        if p not in sys.path:
            sys.path.append(p)
    mod_name, _, attr = target.rpartition(".")
    if not mod_name:
        raise TrialImportError(f"trial._target_={target!r} must be a dotted path like package.module.function")
    try:
        mod = importlib.import_module(mod_name)
    except ModuleNotFoundError as exc:
        raise TrialImportError(
            f"trial._target_={target!r}: cannot import module {exc.name!r} "
            f"(searched the working directory {os.getcwd()} and the installed packages); "
            "put the module there or install it"
        ) from None
    except Exception as exc:  # the user's module raised while importing
        raise TrialImportError(
            f"trial._target_={target!r}: importing {mod_name!r} raised {type(exc).__name__}: {exc}"
        ) from None
    try:
        fn = getattr(mod, attr)
    except AttributeError:
        names = [n for n in dir(mod) if not n.startswith("_")]
        raise TrialImportError(
            f"trial._target_={target!r}: module {mod_name!r} has no {attr!r}{_suggest(attr, names)}"
        ) from None
    if not callable(fn):
        raise TrialImportError(
            f"trial._target_={target!r} is a {type(fn).__name__}, not a function; give the trial function "
            f"itself, e.g. trial._target_={target}.run"
        )
    return fn
