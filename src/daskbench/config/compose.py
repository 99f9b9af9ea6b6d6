"""Hydra composition: command-line words in, a checked run plan out.

This is the only module that composes Hydra configs. It composes once per
combination of swept config groups (usually once), never once per trial.
Sweep overrides (``trial.rho=0.5,0.9``) are taken out before composing, so
no ``-m`` flag is needed, and handed to the pure expansion in :mod:`sweep`.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import yaml
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ..errors import ConfigError, ExperimentNotFound
from ..sweep import identity
from ..sweep.plan import SEED_KEY, Axis, SweepPlan, parse_override
from ..sweep.search import from_config as search_config
from . import checks, memo, schema, sections, targets, yamldump, yamlload
from .axes import build_axes
from .simcheck import check_simulation

#: a combination of swept config groups: ((group, choice), ...), sorted
GroupKey = Tuple[Tuple[str, str], ...]


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
    names: set[str] = set()
    for d in search_dirs(config_dir):
        names.update(p.stem for p in (d / "experiment").glob("*.yaml"))
    return sorted(names)


@dataclass
class RunPlan:
    """A composed, validated experiment ready to expand and run."""

    cfg: schema.ExperimentConfig  # typed run sections (trial kept raw below)
    cluster: Any  # LocalClusterConfig | AddressClusterConfig
    plan: SweepPlan
    trial_bases: Dict[GroupKey, Dict[str, Any]]  # unresolved full configs
    config_yaml: str
    search_path: List[str]
    results_dir: Path
    sys_path: List[str]  # where trial modules are imported from, for the workers too

    @property
    def name(self) -> str:
        return self.cfg.name


def _compose(dirs: Sequence[Path], overrides: List[str], config_dir: Optional[str]) -> DictConfig:
    extra = []
    if config_dir:
        extra.append(f"hydra.searchpath=[file://{dirs[0]}]")
    try:
        return memo.compose(str(dirs[-1]), overrides + extra, lambda words: _hydra_compose(dirs[-1], words))
    except yaml.YAMLError as exc:  # a config file Hydra loads is not YAML at all
        raise ConfigError(checks.yaml_message(exc)) from None
    except UnicodeDecodeError as exc:  # e.g. a config group file saved as Latin-1
        raise ConfigError(checks.utf8_message(exc)) from None
    except MissingConfigException as exc:
        msg = str(exc)
        if "experiment/" in msg:
            name = msg.split("experiment/", 1)[1].split("'", 1)[0]
            avail = list_experiments(config_dir)
            raise ExperimentNotFound(
                f"unknown experiment {name!r}{checks.suggest(name, avail)}; available: "
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
            cls = schema.SECTIONS.get(section)
            if section == "cluster":  # the keys of the chosen kind, e.g. cluster=address
                kind = next((w.split("=", 1)[1] for w in reversed(overrides) if w.startswith("cluster=")), "local")
                cls = schema.CLUSTER_SCHEMAS.get(kind)
                section = f"cluster (cluster={kind})" if kind != "local" else section
            if cls is not None and rest:
                names = [f.name for f in fields(cls)]
                bad = rest.split(".")[0]
                if bad not in names:
                    raise ConfigError(
                        f"unknown key {key.split('.')[0]}.{bad}{checks.suggest(bad, names)}; valid keys under "
                        f"{section}: {', '.join(names)}"
                    ) from None
        raise ConfigError(" ".join(msg.split("\n")[:2])) from None


def _hydra_compose(main_dir: Path, words: List[str]) -> DictConfig:
    """Hydra's compose, its YAML parsed by libyaml; a composition that fails is done again
    with OmegaConf's own loader, so the error is word for word the one it gives."""
    try:
        with yamlload.libyaml_loader(), initialize_config_dir(config_dir=str(main_dir), version_base="1.3"):
            return compose("config", overrides=words, return_hydra_config=True)
    except Exception:
        if not yamlload.available():
            raise
    with initialize_config_dir(config_dir=str(main_dir), version_base="1.3"):
        return compose("config", overrides=words, return_hydra_config=True)


class _MissingTrialKey(ConfigError):
    """A plain override of a ``trial.*`` key the composed config does not have."""

    def __init__(self, message: str, key: str):
        super().__init__(message)
        self.key = key


def build_plan(
    experiment: Optional[str],
    overrides: Sequence[str],
    config_dir: Optional[str] = None,
    on_cluster: Optional[Callable[[Any], None]] = None,
    on_target: Optional[Callable[[str], None]] = None,
) -> RunPlan:
    """Compose ``+experiment=NAME`` plus overrides and check everything a run needs.

    The stages, in order: parse the words, compose the base config, check its
    top-level keys, type and check the sections (cluster included), build the
    axes, compose once per combination of swept groups, check the trial function
    and its arguments (and a simulation's settings), decide the seeds, plan. ``on_cluster``
    gets the checked cluster section at once (cluster.early), ``on_target`` the trial's path.
    """
    dirs = search_dirs(config_dir)
    plain, sweeps = _words(experiment, overrides, config_dir, dirs)
    cfg0 = _compose_base(dirs, plain, config_dir)
    choices = {k: v for k, v in cfg0.hydra.runtime.choices.items() if not k.startswith("hydra")}
    # the plain tree once: the checks, the typing, the bases and the YAML all read it
    raw: Dict[str, Any] = OmegaConf.to_container(cfg0, resolve=False)  # type: ignore[assignment]
    sections.check_top_level(cfg0, choices, raw)
    cfg = sections.type_sections(cfg0, raw)
    cluster = sections.cluster(cfg0, raw)
    if on_cluster is not None:
        on_cluster(cluster)
    axes, fixed = build_axes(cfg0, plain, sweeps, choices, dirs)
    bases = _group_bases(cfg0, raw, dirs, [str(o.input_line) for o in plain], axes, fixed, config_dir)
    trials = checks.resolved_trials(bases, axes)

    trial = next(iter(bases.values())).get("trial") or {}
    zip_groups = [list(map(str, z)) for z in cfg.sweep.zip]
    target, accepts_seed = _check_trial(trial, trials, axes, dirs, zip_groups)
    if on_target is not None:
        on_target(target)
    inject, fixed_seed = _seeding(cfg, target, accepts_seed, trial, axes)

    plan = SweepPlan(
        name=cfg.name,
        axes=axes,
        bases={g: identity.content(tree) for g, tree in bases.items()},
        zip=zip_groups,
        design=cfg.sweep.design,
        samples=cfg.sweep.samples,
        replicates=cfg.sweep.replicates,
        root_seed=int(cfg.seed),
        inject_seed=inject,
        fixed_seed=fixed_seed,
        search=search_config(cfg.sweep, axes, int(cfg.seed)),  # None unless sweep.search=optuna
    )
    return RunPlan(
        cfg=cfg,
        cluster=cluster,
        plan=plan,
        trial_bases=bases,
        config_yaml=_config_yaml(raw),
        search_path=[str(d) for d in dirs],
        results_dir=Path(cfg.results.dir).expanduser(),
        sys_path=targets.import_roots(dirs),
    )


def _config_yaml(raw: Dict[str, Any]) -> str:
    """The composed config (``raw``: as plain containers) as the YAML ``OmegaConf.to_yaml``
    gives, the ``hydra`` node left out."""
    return yamldump.dump({k: v for k, v in raw.items() if k != "hydra"})


def _check_trial(
    trial: Any, trials: Any, axes: List[Axis], dirs: Sequence[Path], zip_groups: List[List[str]]
) -> Tuple[str, bool]:
    """Import the trial function, check its arguments (and a simulation's settings):
    (its import path, whether it takes ``seed``)."""
    target = trial.get("_target_") if isinstance(trial, dict) else None
    if not target:
        raise ConfigError(
            "the experiment config has no trial._target_; set it to the import path of your trial function"
        )
    fn = targets.import_target(str(target), dirs)
    accepts_seed, names = targets.signature(fn)
    targets.check_arguments(str(target), names, trial, axes)
    check_simulation(fn, trials, axes, zip_groups)
    return str(target), accepts_seed


def _words(
    experiment: Optional[str], overrides: Sequence[str], config_dir: Optional[str], dirs: Sequence[Path]
) -> Tuple[List[Override], List[Override]]:
    """(plain overrides, sweep overrides) of the command line; the experiment file read first."""
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
    if any(o.key_or_group == "experiment" for o in sweeps):
        raise ConfigError("sweeping over experiments is not supported; run each experiment on its own")
    for o in plain:
        name = o.value()
        if o.key_or_group == "experiment" and isinstance(name, str):
            checks.check_experiment_file(name, dirs)
    return plain, sweeps


def _compose_base(dirs: Sequence[Path], plain: Sequence[Override], config_dir: Optional[str]) -> DictConfig:
    """The config of the plain overrides (no sweeps), composed once."""
    try:
        return _compose(dirs, [str(o.input_line) for o in plain], config_dir)
    except _MissingTrialKey as exc:
        raise _explain_trial_key(exc, dirs, plain, config_dir) from None


def _group_bases(
    cfg0: DictConfig,
    raw: Dict[str, Any],
    dirs: Sequence[Path],
    plain_words: List[str],
    axes: Sequence[Axis],
    fixed: Sequence[Axis],
    config_dir: Optional[str],
) -> Dict[GroupKey, Dict[str, Any]]:
    """The unresolved config of each combination of swept config groups (composed
    once each, never per trial), with the one-value axes set in it."""
    group_axes = [a for a in axes if a.is_group]
    fixed_groups = [a for a in fixed if a.is_group]
    fixed_values = [a for a in fixed if not a.is_group]
    # group axes and one-value axes have discrete values (axes.build_axes checked it)
    base_words = plain_words + [f"{'+' if a.add else ''}{a.key}={_values(a)[0]}" for a in fixed_groups]
    combos = list(itertools.product(*[[(a, v) for v in _values(a)] for a in group_axes])) or [()]
    bases: Dict[GroupKey, Dict[str, Any]] = {}
    for combo in combos:
        words_c = base_words + [f"{'+' if a.add else ''}{a.key}={v}" for a, v in combo]
        if not combo and not fixed_groups:  # the base config itself (a copy: it is changed below)
            tree: Dict[str, Any] = copy.deepcopy({k: v for k, v in raw.items() if k != "hydra"})
        else:
            tree = OmegaConf.to_container(_compose(dirs, words_c, config_dir), resolve=False)  # type: ignore[assignment]
            tree.pop("hydra", None)
        for a in fixed_values:
            _set(tree, a.key, _values(a)[0])
        bases[tuple(sorted((a.key, str(v)) for a, v in combo))] = tree
    return bases


def _values(a: Axis) -> Sequence[Any]:
    return a.values or ()


def _seeding(
    cfg: schema.ExperimentConfig, target: str, accepts_seed: bool, trial: Dict[str, Any], axes: Sequence[Axis]
) -> Tuple[bool, Optional[int]]:
    """(inject a spawned seed as ``trial.seed``, the one fixed seed of every trial or None)."""
    seed_swept = any(a.key == SEED_KEY for a in axes)
    seed_fixed = "seed" in trial
    if cfg.sweep.replicates > 1 and not accepts_seed:
        raise ConfigError(f"sweep.replicates={cfg.sweep.replicates} needs {target} to take a `seed` argument")
    inject = accepts_seed and not seed_swept and (cfg.sweep.replicates > 1 or not seed_fixed)
    fixed_seed = trial.get("seed") if seed_fixed and not inject else None
    return inject, fixed_seed if isinstance(fixed_seed, int) else None


def _explain_trial_key(
    exc: _MissingTrialKey, dirs: Sequence[Path], plain: Sequence[Any], config_dir: Optional[str]
) -> ConfigError:
    """``trial.k=v`` for a key the config lacks: say whether the function takes ``k`` at all."""
    try:
        others = [o.input_line for o in plain if o.key_or_group != exc.key]
        trial = _compose(dirs, others, config_dir).get("trial") or {}
        target = str(trial.get("_target_") or "")
        _, names = targets.signature(targets.import_target(target, dirs)) if target else (False, None)
    except Exception:  # the other words have problems of their own: report the first one
        return exc
    arg = exc.key.split(".")[1]
    if names is not None and arg not in names:
        return ConfigError(
            f"{exc.key}: {target} has no argument {arg!r}{checks.suggest(arg, names)}; "
            f"its arguments: {', '.join(names)}"
        )
    return exc


def _set(tree: Dict[str, Any], dotted: str, value: Any) -> None:
    node = tree
    parts = dotted.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value
