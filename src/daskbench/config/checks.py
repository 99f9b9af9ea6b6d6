"""Checks of a composed config that go beyond its types, and the messages they give.

Everything here runs before a cluster starts or a results folder is touched:
a mistake costs a second and changes nothing on disk. Each message names the
bad key or token and says how to fix it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import InterpolationKeyError, OmegaConfBaseException

from . import schema
from ..errors import ConfigError
from ..sweep.plan import Axis

#: sections of an experiment file that must be mappings when given
_MAPPINGS = ("trial", "vars", "sweep", "results", "runner", "cluster", "resources")


def yaml_message(exc: yaml.YAMLError, path: Optional[Path] = None) -> str:
    """One line for a YAML syntax error: file, line, problem, what to look at."""
    mark = getattr(exc, "problem_mark", None)
    where = str(path) if path else (getattr(mark, "name", None) or "a config file")
    line = f":{mark.line + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return (f"{where}{line}: not valid YAML ({problem}); fix the brackets, indentation or quoting there "
            "(in flow style {a: 1, b: 2} every brace must be closed)")


def check_experiment_file(name: str, dirs: Sequence[Path]) -> None:
    """Read ``experiment/NAME.yaml`` before Hydra does, to name its file and line in errors."""
    for d in dirs:
        path = d / "experiment" / f"{name}.yaml"
        if path.is_file():
            break
    else:
        return  # Hydra reports an unknown experiment with the names it knows
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(yaml_message(exc, path)) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if doc is None:
        return
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: an experiment config must be a mapping (key: value lines), "
                          f"not a {type(doc).__name__}")
    for key in _MAPPINGS:
        value = doc.get(key)
        if value is not None and not isinstance(value, dict):
            hint = "; e.g. trial: {_target_: mymodule.run, alpha: 0.1}" if key == "trial" else ""
            raise ConfigError(
                f"{path}: `{key}` must be a mapping (key: value lines, or {{k: v}}), not a "
                f"{type(value).__name__} ({value!r:.60}){hint}"
            )


_CONVERT = re.compile(r"Value '(.*)' of type '\w+' could not be converted to (\w+)")
_KINDS = {"Integer": "an integer (a whole number)", "Float": "a number", "Boolean": "true or false",
          "String": "a string"}


def value_message(exc: Exception, where: str) -> str:
    """'bad value for KEY: ...' with what was given and what is expected."""
    detail = (getattr(exc, "msg", None) or str(exc)).splitlines()[0]
    m = _CONVERT.match(detail)
    if m:
        return (f"bad value for {where}: {m.group(1)!r} is not {_KINDS.get(m.group(2), m.group(2))}; "
                f"fix {where} in the experiment config or on the command line")
    return f"bad value for {where}: {detail}"


def interpolation_message(exc: Exception) -> str:
    key = getattr(exc, "full_key", None)
    detail = (getattr(exc, "msg", None) or str(exc)).splitlines()[0]
    if isinstance(exc, InterpolationKeyError):
        return (f"{key or 'a config value'}: {detail}; define that key (your own values go under vars:) "
                "or fix the ${...} reference")
    return f"bad value for {key}: {detail}" if key else f"bad value: {detail}"


def check_interpolations(bases: Dict[Any, Dict[str, Any]], axes: Sequence[Axis]) -> None:
    """Resolve each trial config once (with each axis at its first value), so a
    ``${...}`` naming no key fails here, not in every trial."""
    for tree in bases.values():
        if "trial" not in tree:
            continue
        cfg = OmegaConf.create({k: v for k, v in tree.items() if k != "hydra"})
        for a in axes:
            if not a.is_group:
                first = a.values[0] if a.values is not None else a.interval[0]
                OmegaConf.update(cfg, a.key, first, force_add=True)
        try:
            OmegaConf.to_container(cfg.trial, resolve=True)
        except InterpolationKeyError as exc:
            raise ConfigError(interpolation_message(exc)) from None
        except OmegaConfBaseException:
            pass  # resolvers only a trial's own process has (e.g. ${hydra:...}): left to the trial


def value_checks(cfg: schema.ExperimentConfig) -> List[str]:
    """Value checks beyond the schema's own (kept here, where the config enters)."""
    bad = []
    if not str(cfg.results.dir).strip():
        bad.append("results.dir is empty; give a folder, e.g. results.dir=results/NAME (the default is results/<name>)")
    if cfg.seed < 0:
        bad.append(f"seed={cfg.seed}: must be >= 0 (NumPy's SeedSequence takes non-negative integers)")
    if cfg.results.flush_seconds < 0:
        bad.append(f"results.flush_seconds={cfg.results.flush_seconds:g}: must be >= 0")
    return bad


_ADDRESS = re.compile(r"^(?:(?P<scheme>[a-z]+)://)?(?P<host>\[[0-9a-fA-F:]+\]|[^\s/:\[\]]+):(?P<port>\d{1,5})$")


def check_cluster(c: Any) -> None:
    """Check cluster settings before anything runs or is written, so a mistake there
    costs no cluster start and leaves the results folder untouched."""
    if isinstance(c, schema.LocalClusterConfig):
        adaptive = c.adapt.maximum > 0
        if c.n_workers is not None and c.n_workers < 1 and not adaptive:
            raise ConfigError(f"cluster.n_workers={c.n_workers}: must be >= 1 (or null: one worker per core; "
                              "for scaling from zero set cluster.adapt.maximum)")
        if c.threads_per_worker < 1:
            raise ConfigError(f"cluster.threads_per_worker={c.threads_per_worker}: must be >= 1")
        if str(c.memory_limit) != "auto":
            from dask.utils import parse_bytes

            try:
                parse_bytes(c.memory_limit)
            except (ValueError, TypeError):
                raise ConfigError(f"cluster.memory_limit={c.memory_limit}: give auto, a size per worker such as "
                                  "4GB or 512MiB, or 0 for no limit") from None
        for k, v in c.resources.items():
            if v <= 0:
                raise ConfigError(f"cluster.resources.{k}={v:g}: must be > 0")
    if isinstance(c, (schema.LocalClusterConfig, schema.KubernetesClusterConfig)):
        a = c.adapt
        if a.minimum < 0 or a.maximum < 0 or (a.maximum > 0 and a.minimum > a.maximum):
            raise ConfigError(f"cluster.adapt.minimum={a.minimum}, cluster.adapt.maximum={a.maximum}: "
                              "need 0 <= minimum <= maximum (maximum=0 turns adaptive scaling off)")
    if isinstance(c, schema.AddressClusterConfig):
        m = _ADDRESS.match(str(c.address).strip())
        if m is None or (m.group("scheme") or "tcp") not in ("tcp", "tls", "ws", "wss", "ucx"):
            raise ConfigError(f"cluster.address={c.address}: not a scheduler address; write "
                              "cluster.address=tcp://HOST:8786 (tls://HOST:8786 with cluster.security)")
        if c.timeout_s <= 0:
            raise ConfigError(f"cluster.timeout_s={c.timeout_s:g}: must be > 0")
        tls = m.group("scheme") == "tls"
        if tls and c.security.mode == "none":
            raise ConfigError(f"cluster.address={c.address} uses TLS but cluster.security.mode is none; set "
                              "cluster.security.mode=files with ca_file, cert_file and key_file")
        if c.security.mode == "temporary":
            raise ConfigError("cluster.security.mode=temporary makes self-signed certificates for a LocalCluster "
                              "only; for a running scheduler set mode=files with ca_file, cert_file and key_file")
        if c.security.mode != "none" and not tls:
            raise ConfigError(f"cluster.security is set but cluster.address={c.address} is not tls://; "
                              "write cluster.address=tls://HOST:PORT")
    sec = getattr(c, "security", None)
    if sec is not None:
        if sec.mode not in ("none", "temporary", "files"):
            raise ConfigError(f"cluster.security.mode={sec.mode!r}: use none, temporary or files")
        if sec.mode == "files":
            for key in ("ca_file", "cert_file", "key_file"):
                path = getattr(sec, key)
                if not path:
                    raise ConfigError(f"cluster.security.mode=files needs cluster.security.{key}=PATH")
                if not os.path.isfile(os.path.expanduser(path)):
                    raise ConfigError(f"cluster.security.{key}={path}: no such file; give the path of the "
                                      "PEM file (the same ones the scheduler was started with)")
    if isinstance(c, schema.KubernetesClusterConfig):
        from ..cluster import kube  # validates the DaskCluster manifest offline, against the operator's CRDs

        kube.build_spec(c)
