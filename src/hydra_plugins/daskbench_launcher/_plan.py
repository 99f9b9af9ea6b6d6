"""Driver side: what each job runs, composed once per set of config-group choices.

Hydra's own launchers compose a whole config per job (``load_sweep_config``,
50-80 ms here). Most jobs of a sweep differ only in values (``x=1``, ``+a=2``);
for them the config is composed once per combination of config-group choices
(the *template*, ``db=mysql`` vs ``db=postgresql``), and each job's value
overrides are applied to a copy of it on the worker, exactly as Hydra applies
them after composing (``ConfigLoaderImpl._apply_overrides_to_config``). Jobs with
anything else (deletions ``~x``, package overrides ``x@y``, Hydra overrides) are
composed whole, Hydra's way.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from omegaconf import DictConfig, OmegaConf, open_dict

from daskbench.sweep import identity


@dataclass
class Job:
    """One job of a batch, as the workers get it."""

    num: int  # hydra.job.num
    overrides: List[str]
    template: Optional[Tuple[str, ...]]  # key of the template; None: ``config`` is composed whole
    trial_id: str
    columns: Dict[str, Any] = field(default_factory=dict)  # override key -> value, for the table
    config: Optional[bytes] = None
    parsed: List[Override] = field(default_factory=list)  # parsed once, in the driver


def column_name(o: Override) -> str:
    """``+a=1`` and ``++a=1`` fill the column ``a``; a group override its group's name."""
    return o.key_or_group


def _column_value(value: Any) -> Any:
    return value if value is None or isinstance(value, (bool, int, float, str)) else str(value)


class Planner:
    """Turns a batch's override lists into :class:`Job` s, composing templates lazily."""

    def __init__(self, loader: Any, master: DictConfig, name: str):
        self.loader = loader
        self.master = master
        self.name = name
        self.parser = OverridesParser.create()
        self.templates: Dict[Tuple[str, ...], bytes] = {}
        self._bases: Dict[Tuple[str, ...], Dict[str, Any]] = {}
        self._group_keys: Dict[Tuple[str, ...], identity.GroupKey] = {}
        self._repo = getattr(loader, "repository", None)
        self._groups = set(OmegaConf.to_container(master.hydra.runtime.choices) or {})
        self._is_group_cache: Dict[str, bool] = {}
        self._parsed: Dict[str, Override] = {}

    def parse(self, overrides: Sequence[str]) -> List[Override]:
        """Hydra's parser (ANTLR, the driver's main cost per job), once per distinct string."""
        new = [o for o in dict.fromkeys(overrides) if o not in self._parsed]
        if new:
            self._parsed.update(zip(new, self.parser.parse_overrides(new)))
        return [self._parsed[o] for o in overrides]

    def _is_group(self, o: Override) -> bool:
        # Hydra's own rule (hydra._internal.defaults_list.Overrides): a dict value is a
        # config override even when the key names a group
        if isinstance(o.value(), dict):
            return False
        key = o.key_or_group
        if key not in self._is_group_cache:  # a look-up in every config source: once per key
            self._is_group_cache[key] = self._repo.group_exists(key) if self._repo is not None else key in self._groups
        return self._is_group_cache[key]

    def _split(self, parsed: Sequence[Override]) -> Optional[Tuple[List[Override], List[Override]]]:
        """(group overrides, value overrides), or None when the job must be composed whole."""
        groups: List[Override] = []
        values: List[Override] = []
        for o in parsed:
            if o.is_hydra_override() or o.is_delete() or o.package is not None:
                return None
            (groups if self._is_group(o) else values).append(o)
        return groups, values

    def plan(self, num: int, overrides: Sequence[str]) -> Job:
        overrides = list(overrides)
        parsed = self.parse(overrides)
        columns = {column_name(o): _column_value(o.value()) for o in parsed if not o.is_hydra_override()}
        split = self._split(parsed)
        if split is None:
            cfg = self.loader.load_sweep_config(self.master, overrides)
            tid = identity.trial_id(self.name, (), [], identity.flatten(_task_content(cfg)))
            return Job(num, overrides, None, tid, columns, pickle.dumps(cfg))
        groups, values = split
        key = tuple(o.input_line for o in groups)
        if key not in self.templates:
            self._compose_template(key, groups)
        own = {o.key_or_group: o.value() for o in values}
        base = identity.base_items(self._bases[key], own)
        tid = identity.trial_id(self.name, self._group_keys[key], base, own)
        return Job(num, overrides, key, tid, columns, parsed=parsed)

    def compose(self, overrides: Sequence[str]) -> DictConfig:
        """``load_sweep_config(master, overrides)``, from the template when the job allows it."""
        overrides = list(overrides)
        parsed = self.parse(overrides)
        split = self._split(parsed)
        if split is None:
            return self.loader.load_sweep_config(self.master, overrides)
        key = tuple(o.input_line for o in split[0])
        if key not in self.templates:
            self._compose_template(key, split[0])
        return finish_config(pickle.loads(self.templates[key]), Job(-1, overrides, key, "", parsed=parsed))

    def _compose_template(self, key: Tuple[str, ...], groups: Sequence[Override]) -> None:
        cfg = self.loader.load_sweep_config(self.master, list(key))
        self.templates[key] = pickle.dumps(cfg)
        self._bases[key] = identity.flatten(_task_content(cfg))
        # the trial id's group choices, as daskbench's sweeps hash them: sorted (group, choice) pairs
        self._group_keys[key] = tuple(sorted((o.key_or_group, str(o.value())) for o in groups))


def _task_content(cfg: DictConfig) -> Dict[str, Any]:
    """The job's own config (no ``hydra`` node), interpolations unresolved: what it computes."""
    content = OmegaConf.to_container(cfg, resolve=False)
    assert isinstance(content, dict)
    content.pop("hydra", None)
    return content


def finish_config(cfg: DictConfig, job: Job) -> DictConfig:
    """On the worker: the template with the job's value overrides applied, and the
    fields Hydra derives from a job's overrides set as ``load_sweep_config`` sets them."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl, get_overrides_dirname

    parsed = job.parsed
    groups = set(job.template or ())
    values = [o for o in parsed if o.input_line not in groups]
    ConfigLoaderImpl._apply_overrides_to_config(values, cfg)
    dirname = cfg.hydra.job.config.override_dirname
    with open_dict(cfg.hydra):
        cfg.hydra.overrides.task = [o.input_line for o in parsed]
        cfg.hydra.job.override_dirname = get_overrides_dirname(
            overrides=list(parsed),
            kv_sep=dirname.kv_sep,
            item_sep=dirname.item_sep,
            exclude_keys=dirname.exclude_keys,
        )
    return cfg


def job_configs(planner: Planner, job: Job) -> Tuple[DictConfig, DictConfig]:
    """(task cfg, hydra cfg) of a job as ``run_job`` puts them in its ``JobReturn``
    (the hydra cfg is the ``hydra`` node alone, as ``HydraConfig.set_config`` keeps it)."""
    if job.template is None:
        assert job.config is not None
        cfg = pickle.loads(job.config)
    else:
        cfg = finish_config(pickle.loads(planner.templates[job.template]), job)
    with open_dict(cfg):
        cfg.hydra.job.id = f"{cfg.hydra.job.name}_{job.num}"
        cfg.hydra.job.num = job.num
    hydra_cfg = OmegaConf.masked_copy(cfg, "hydra")
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg, hydra_cfg
