"""Defaults have one meaning: the typed dataclasses (config/schema.py) and the shipped,
commented YAML (conf/config.yaml, conf/cluster/*.yaml) say the same thing.

Hydra composes the YAML; code that builds a section itself (tests, the API, a
``LocalClusterConfig()``) gets the dataclass's defaults. Every key in one must be
in the other with the same value, unless listed below with the reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

import pytest
import yaml
from omegaconf import OmegaConf

from daskbench.config import schema

CONF = Path(__file__).resolve().parents[1] / "conf"

#: (file, key) -> why that key is in only one of the two, or differs
EXEMPT: Dict[tuple, str] = {
    ("config.yaml", "defaults"): "Hydra's defaults list (which config group to use), not a setting",
    ("config.yaml", "cluster"): "a config group: its defaults are conf/cluster/<kind>.yaml, compared on their own",
}

PAIRS = [
    ("config.yaml", schema.ExperimentConfig),
    ("cluster/local.yaml", schema.LocalClusterConfig),
    ("cluster/address.yaml", schema.AddressClusterConfig),
    ("cluster/kubernetes.yaml", schema.KubernetesClusterConfig),
]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):  # True == 1 in Python; not in a config
        return a is b
    return a == b


def differences(defaults: Dict[str, Any], doc: Dict[str, Any], prefix: str = "") -> List[str]:
    """Keys in only one of ``defaults`` (a dataclass, as a plain tree) and ``doc``
    (the YAML), or with different values, as ``key: dataclass ... yaml ...`` lines."""
    out = []
    for key in sorted(set(defaults) | set(doc), key=str):
        name = f"{prefix}{key}"
        if key not in doc:
            out.append(f"{name}: in the dataclass ({defaults[key]!r}), not in the YAML")
        elif key not in defaults:
            out.append(f"{name}: in the YAML ({doc[key]!r}), not in the dataclass")
        elif isinstance(defaults[key], dict) and isinstance(doc[key], dict) and defaults[key] and doc[key]:
            out += differences(defaults[key], doc[key], f"{name}.")
        elif not _same(defaults[key], doc[key]):
            out.append(f"{name}: dataclass {defaults[key]!r}, YAML {doc[key]!r}")
    return out


def _dataclass_tree(cls: type) -> Dict[str, Any]:
    tree = OmegaConf.to_container(OmegaConf.structured(cls), resolve=False)
    assert isinstance(tree, dict)
    return tree


@pytest.mark.parametrize("path, cls", PAIRS, ids=[p for p, _ in PAIRS])
def test_yaml_and_dataclass_defaults_agree(path, cls):
    doc = yaml.safe_load((CONF / path).read_text())
    name = Path(path).name
    for key in [k for (f, k) in EXEMPT if f == name]:
        doc.pop(key, None)
    tree = {k: v for k, v in _dataclass_tree(cls).items() if (name, k) not in EXEMPT}
    assert differences(tree, doc) == [], (
        f"conf/{path} and {cls.__name__} disagree; change both, or list the key in EXEMPT"
    )


def test_every_cluster_kind_has_its_yaml():
    assert {p.stem for p in (CONF / "cluster").glob("*.yaml")} == set(schema.CLUSTER_SCHEMAS)
    assert {cls for _, cls in PAIRS} >= set(schema.CLUSTER_SCHEMAS.values())


def test_differences_are_found():
    """The walk itself: a changed value, a missing key, an extra key, nested, bool vs int."""
    tree = _dataclass_tree(schema.LocalClusterConfig)
    doc = yaml.safe_load((CONF / "cluster" / "local.yaml").read_text())
    doc["threads_per_worker"] = 2
    doc["adapt"]["maximum"] = 5
    doc["processes"] = 1
    del doc["host"]
    doc["extra"] = "x"
    assert differences(tree, doc) == [
        "adapt.maximum: dataclass 0, YAML 5",
        "extra: in the YAML ('x'), not in the dataclass",
        "host: in the dataclass ('127.0.0.1'), not in the YAML",
        "processes: dataclass True, YAML 1",
        "threads_per_worker: dataclass 1, YAML 2",
    ]
