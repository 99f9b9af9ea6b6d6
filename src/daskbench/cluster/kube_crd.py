"""The dask-kubernetes operator's resources, checked offline against its own CRDs.

Manifests are checked against the operator's CustomResourceDefinitions (the
fully rendered CRDs of its Helm chart, shipped inside the installed
``dask_kubernetes`` package, which embed the whole Kubernetes ``PodSpec`` and
``ServiceSpec``), so a misspelt key, a wrong type or a missing field fails here
with its file, line and path instead of being dropped silently by the API
server. YAML files are read keeping the line of every key for those messages.
What the operator relies on beyond the schema is checked in
:mod:`daskbench.cluster.kube`, which builds the ``DaskCluster``.

``dask_kubernetes`` is an optional extra; it is imported inside the functions
that need it, never when this module is imported.
"""

from __future__ import annotations

import copy
import difflib
import functools
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import yaml

from ..errors import ConfigError

KINDS = ("DaskCluster", "DaskWorkerGroup", "DaskAutoscaler", "DaskJob")
API_VERSION = "kubernetes.dask.org/v1"
EXTRA_HINT = "cluster=kubernetes needs the optional extra: pip install 'daskbench[kubernetes]'"
_CRD_DIR = ("operator", "deployment", "helm", "dask-kubernetes-operator", "crds")

Path_ = Tuple[Any, ...]

# --------------------------------------------------------------------------- CRDs


def require_dask_kubernetes() -> Path:
    """The installed ``dask_kubernetes`` package's folder; a ConfigError naming the extra without it."""
    try:
        import dask_kubernetes
    except ImportError:
        raise ConfigError(EXTRA_HINT) from None
    return Path(dask_kubernetes.__file__).resolve().parent


@functools.cache
def _crd_root(kind: str) -> Dict[str, Any]:
    if kind not in KINDS:
        raise ConfigError(
            f"kind {kind!r} is not a dask-kubernetes resource{suggest(kind, KINDS)}; use one of {', '.join(KINDS)}"
        )
    path = require_dask_kubernetes().joinpath(*_CRD_DIR, f"{kind.lower()}.yaml")
    try:
        crd = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        [version] = [v for v in crd["spec"]["versions"] if v["name"] == API_VERSION.split("/")[1]]
        return version["schema"]["openAPIV3Schema"]
    except (OSError, KeyError, ValueError, yaml.YAMLError) as exc:
        raise ConfigError(
            f"cannot read the {kind} CRD at {path} ({type(exc).__name__}: {exc}); reinstall dask-kubernetes"
        ) from None


def crd_schema(kind: str) -> Dict[str, Any]:
    """The ``openAPIV3Schema`` of ``kind`` (``DaskCluster``, ``DaskWorkerGroup``, ...), a copy.

    Read from the Helm chart's rendered CRDs inside the installed package: the
    ``customresources/*.yaml`` beside them are templates with ``$ref``s into a
    resolver package and JSON patches, not schemas.
    """
    return copy.deepcopy(_crd_root(kind))


def _at(schema: Dict[str, Any], *names: str) -> Dict[str, Any]:
    """The sub-schema at a path of property names ("[]": the array's items)."""
    for name in names:
        schema = schema["items"] if name == "[]" else schema["properties"][name]
    return schema


@functools.cache
def _document_schema(kind: str) -> Dict[str, Any]:
    """The CRD schema plus what the API server checks on every object itself."""
    root = crd_schema(kind)
    # The CRD embeds a full ObjectMeta (a PVC template's); reuse it for the root.
    meta = _at(
        _crd_root("DaskCluster"),
        "spec",
        "scheduler",
        "spec",
        "volumes",
        "[]",
        "ephemeral",
        "volumeClaimTemplate",
        "metadata",
    )
    root.setdefault("properties", {}).update(
        apiVersion={"type": "string", "enum": [API_VERSION]},
        kind={"type": "string", "enum": [kind]},
        metadata=dict(copy.deepcopy(meta), required=["name"]),
    )
    required = list(root.get("required", []))
    root["required"] = ["apiVersion", "kind", "metadata"] + required + ([] if "spec" in required else ["spec"])
    return root


# --------------------------------------------------------------------------- YAML


class Manifest(dict):
    """One YAML document, remembering its file and the line of every key and item."""

    source: str = "<manifest>"
    lines: Dict[Path_, int] = {}


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _node_lines(node: yaml.Node, path: Path_, out: Dict[Path_, int], dups: List[Path_]) -> None:
    """Record the line of every key and item; collect keys given twice (YAML keeps the last)."""
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            p = path + (str(k.value),)
            if p in out:
                dups.append(p)
            out[p] = k.start_mark.line + 1
            _node_lines(v, p, out, dups)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            out[path + (i,)] = v.start_mark.line + 1
            _node_lines(v, path + (i,), out, dups)


def load_documents(path: Any) -> List[Manifest]:
    """Every non-empty document of a YAML file; YAML errors name the file and line."""
    path = Path(path)
    source = _display(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read ({exc.strerror or exc})") from None
    loader = yaml.SafeLoader(text)
    docs: List[Manifest] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            data = loader.construct_document(node)
            if data is None:
                continue
            if not isinstance(data, dict):
                raise ConfigError(
                    f"{source}:{node.start_mark.line + 1}: a document must be a mapping "
                    f"(apiVersion, kind, metadata, spec), not {type(data).__name__}"
                )
            doc = Manifest(data)
            doc.source, doc.lines, dups = source, {}, []
            _node_lines(node, (), doc.lines, dups)
            if dups:
                raise ConfigError(
                    f"{source}:{doc.lines[dups[0]]}: {_format_path(dups[0])}: key given twice "
                    "(YAML would keep only the last); remove one"
                )
            docs.append(doc)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(
            f"{source}{where}: not valid YAML ({problem}); fix the indentation or quoting there"
        ) from None
    finally:
        loader.dispose()
    return docs


def load_manifest(path: Any, kind: str = "DaskCluster") -> Manifest:
    """The one document of ``kind`` in a (possibly multi-document) YAML file."""
    docs = load_documents(path)
    found = [d for d in docs if d.get("kind") == kind]
    if len(found) != 1:
        kinds = ", ".join(str(d.get("kind")) for d in docs) or "nothing"
        many = "more than one" if found else "no"
        raise ConfigError(
            f"{_display(Path(path))}: {many} {kind} document (found: {kinds}); give a file with exactly one {kind}"
        )
    return found[0]


# --------------------------------------------------------------------------- validation

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
}
_INT_RANGE = {"int32": 2**31, "int64": 2**63}
_TYPE_NAMES = {dict: "object", list: "array", str: "string", int: "integer", float: "number", bool: "boolean"}


def suggest(word: str, options: Any) -> str:
    """`` (did you mean 'x'?)`` for the option closest to ``word``, or nothing."""
    close = difflib.get_close_matches(str(word), [str(o) for o in options], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check(value: Any, schema: Dict[str, Any], path: Path_, errors: List[Tuple[Path_, str]]) -> None:
    """Append (path, message) for everything in ``value`` that ``schema`` does not allow."""
    if value is None:
        if not schema.get("nullable"):
            errors.append((path, "empty value (null); give a value or remove the key"))
        return
    want = schema.get("type")
    if want and not _TYPES[want](value):
        got = _TYPE_NAMES.get(type(value), type(value).__name__)
        hint = ""
        if want == "string" and got in ("integer", "number", "boolean"):
            hint = f" (quote it: '{value}'" + (
                ", the operator's CRD types int-or-string fields as strings)"
                if schema.get("format") == "int-or-string"
                else ")"
            )
        errors.append((path, f"expected {want}, got {got} {value!r}{hint}"))
        return
    if "enum" in schema and value not in schema["enum"]:
        errors.append(
            (
                path,
                f"{value!r} is not allowed{suggest(value, schema['enum'])}; use one of "
                + ", ".join(map(repr, schema["enum"])),
            )
        )
    if want == "integer" and schema.get("format") in _INT_RANGE:
        bound = _INT_RANGE[schema["format"]]
        if not -bound <= value < bound:
            errors.append((path, f"{value} does not fit in {schema['format']}"))
    if isinstance(value, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties", False)
        free = extra is True or schema.get("x-kubernetes-preserve-unknown-fields")
        for key, item in value.items():  # unknown keys first: a misspelt key explains a missing one
            key = str(key)
            if key in props:
                _check(item, props[key], path + (key,), errors)
            elif isinstance(extra, dict):
                _check(item, extra, path + (key,), errors)
            elif not free:
                errors.append((path + (key,), f"unknown key{suggest(key, props)}"))
        for key in schema.get("required", []):
            if key not in value:
                errors.append((path + (key,), "required key is missing"))
    elif isinstance(value, list):
        items = schema.get("items", {})
        list_type = schema.get("x-kubernetes-list-type")
        keys = schema.get("x-kubernetes-list-map-keys", [])
        defaults = {k: items.get("properties", {}).get(k, {}).get("default") for k in keys}
        seen: Dict[str, int] = {}
        for i, item in enumerate(value):
            _check(item, items, path + (i,), errors)
            if list_type == "map" and isinstance(item, dict):
                ident = ", ".join(f"{k}={item.get(k, defaults[k])}" for k in keys)
            elif list_type == "set":
                ident = repr(item)
            else:
                continue
            if ident in seen:
                errors.append((path + (i,), f"duplicate of item [{seen[ident]}] ({ident})"))
            seen.setdefault(ident, i)


def _format_path(path: Path_) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(document)"


def _raise(errors: List[Tuple[Path_, str]], source: str, lines: Dict[Path_, int]) -> None:
    if not errors:
        return
    path, message = errors[0]
    line = next((lines[path[:n]] for n in range(len(path), 0, -1) if path[:n] in lines), None)
    where = f"{source}:{line}" if line else source
    more = f" (and {len(errors) - 1} more problem(s) after it)" if len(errors) > 1 else ""
    raise ConfigError(f"{where}: {_format_path(path)}: {message}{more}")


def validate(doc: Dict[str, Any], source: Optional[str] = None) -> None:
    """Check one manifest document against its kind's CRD, strictly; raise ConfigError.

    Strict means: a key an object's ``properties`` do not list is an error
    unless the schema has ``additionalProperties`` or
    ``x-kubernetes-preserve-unknown-fields``; types (an integer is not a
    string, a boolean is not an integer), ``required``, ``enum``, integer
    formats and ``x-kubernetes-list-type: map`` uniqueness are checked. The
    operator's rendered CRDs spell out the Kubernetes 1.21 ``PodSpec`` and
    ``ServiceSpec`` in full, so containers are checked key by key too. The API
    server also needs ``apiVersion``, ``kind`` and ``metadata.name``; daskbench
    also wants ``spec``. The message names the file, line and path of the first
    problem, e.g. ``deploy/daskcluster.yaml:12: spec.worker.replica: unknown key
    (did you mean 'replicas'?)``.
    """
    source = source or getattr(doc, "source", "<manifest>")
    lines = getattr(doc, "lines", {})
    if not isinstance(doc, dict):
        raise ConfigError(f"{source}: a manifest must be a mapping, not {type(doc).__name__}")
    kind = doc.get("kind")
    if kind not in KINDS:
        what = "required key is missing" if kind is None else f"{kind!r} is not a dask-kubernetes resource"
        raise ConfigError(
            f"{source}: kind: {what}{suggest(kind, KINDS) if kind else ''}; use one of {', '.join(KINDS)}"
        )
    errors: List[Tuple[Path_, str]] = []
    _check(doc, _document_schema(kind), (), errors)
    _raise(errors, source, lines)
