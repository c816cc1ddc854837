"""The official OME-NGFF JSON schemas (0.1 to 0.6, shipped by ngff-zarr) and how a
document is checked against them: which version's tree, strict variants, $ref resolution,
short messages with a JSON path.
"""

from __future__ import annotations

import json
import logging
import re
from functools import cache
from importlib.resources import files
from typing import Any

from jsonschema.exceptions import ValidationError, best_match
from jsonschema.validators import Draft202012Validator, validator_for
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

logger = logging.getLogger(__name__)

_MAX_MESSAGE = 240


def is_prerelease(version: str, base: str) -> bool:
    """0.6rc0, 0.6.dev1, 0.6-dev: development versions of `base`."""
    return bool(re.fullmatch(re.escape(base) + r"[.-]?(rc\d*|dev\d*|a\d+|b\d+)", version))


def schemas_source() -> str:
    """Where the bundled schemas come from, for reports ("ngff-zarr 0.50.0")."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    try:
        return f"ngff-zarr {package_version('ngff-zarr')}"
    except PackageNotFoundError:
        return "ngff-zarr"


_VERSIONED_BLOCKS = ("plate", "well", "image-label")


def _released_versions(attrs: dict[str, Any], base: str) -> dict[str, Any]:
    """A copy of `attrs` whose development version strings of `base` (0.6.dev1,
    0.6-dev, ...) read `base`: the schemas enumerate released versions only."""
    copy = json.loads(json.dumps(attrs))
    ome = copy.get("ome") if isinstance(copy.get("ome"), dict) else copy
    holders = [ome, *(ome.get(k) for k in _VERSIONED_BLOCKS)]
    multiscales = ome.get("multiscales")
    holders += multiscales if isinstance(multiscales, list) else []
    for holder in holders:
        if isinstance(holder, dict) and is_prerelease(str(holder.get("version")), base):
            holder["version"] = base
    return copy


def normalised(attrs: dict[str, Any], version: str) -> dict[str, Any]:
    """Attributes in the form the bundled schemas expect.

    Development versions of `version` (0.6.dev1 for 0.6) are checked as `version`.
    The 0.6 drafts first named a transformation's input and output by plain strings
    (a dataset path, a coordinate system name); the bundled 0.6 schemas use objects
    ({"path": ...} / {"name": ...}). Both forms are accepted by rewriting the first.
    """
    attrs = _released_versions(attrs, version)
    if version != "0.6":
        return attrs
    ome = attrs.get("ome")
    if not isinstance(ome, dict) or not isinstance(ome.get("multiscales"), list):
        return attrs
    copy = attrs
    for ms in copy["ome"]["multiscales"]:
        if not isinstance(ms, dict):
            continue
        for ds in ms.get("datasets", []) if isinstance(ms.get("datasets"), list) else []:
            if isinstance(ds, dict):
                _objectify(ds.get("coordinateTransformations"), "path")
        _objectify(ms.get("coordinateTransformations"), "name")
    return copy


def _objectify(transforms: Any, input_key: str) -> None:
    if not isinstance(transforms, list):
        return
    for t in transforms:
        if not isinstance(t, dict):
            continue
        if isinstance(t.get("input"), str):
            t["input"] = {input_key: t["input"]}
        if isinstance(t.get("output"), str):
            t["output"] = {"name": t["output"]}


@cache
def bundled_versions() -> frozenset[str]:
    """Versions whose official JSON schemas the ngff-zarr package ships."""
    spec = files("ngff_zarr") / "spec"
    return frozenset(p.name for p in spec.iterdir() if (p / "schemas").is_dir())


@cache
def _schemas(version: str) -> tuple[dict[str, dict[str, Any]], Registry]:
    """All schemas of one version by file stem, and a registry resolving their $refs."""
    folder = files("ngff_zarr") / "spec" / version / "schemas"
    schemas: dict[str, dict[str, Any]] = {}
    resources = []
    for entry in folder.iterdir():
        if entry.name.endswith(".schema"):
            contents = json.loads(entry.read_text())
            schemas[entry.name.removesuffix(".schema")] = contents
            uri = contents.get("$id", f"https://ngff.openmicroscopy.org/{version}/{entry.name}")
            resource = Resource.from_contents(contents, default_specification=DRAFT202012)
            resources.append((uri, resource))
    return schemas, Registry().with_resources(resources)


def schema_issues(
    attrs: dict[str, Any], version: str, model: str, *, strict: bool, key: str, pointer: str
) -> list[tuple[str, str]]:
    """(location, message) of each error of `attrs` against the (strict) `model` schema.

    `key` is the document holding the attributes and `pointer` their JSON path in it.
    """
    schemas, registry = _schemas(version)
    schema = schemas.get(f"strict_{model}") if strict else None
    schema = schema or schemas.get(model)
    if schema is None:
        logger.debug("no %s schema for NGFF %s; %s not schema-checked", model, version, key)
        return []
    cls = validator_for(schema, default=Draft202012Validator)
    validator = cls(schema, registry=registry)
    errors = sorted(validator.iter_errors(attrs), key=lambda e: list(e.absolute_path))
    return [(f"{key}#{pointer}{e.json_path[1:]}", _describe(e, model, version)) for e in errors]


def _describe(err: ValidationError, model: str, version: str) -> str:
    """A short message for a schema error, with the most specific cause of a oneOf/anyOf."""
    message = _shorten(err.message)
    if err.context:
        cause = best_match(err.context)
        message = f"{message}; closest match failed: {_shorten(cause.message)}"
    return f"{message} ({model} schema {version})"


def _shorten(text: str) -> str:
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."
