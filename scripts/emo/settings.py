"""Settings: the one source of configuration defaults is the JSON schema.

``workflow/schemas/config.schema.yaml`` holds every key, its type, its description and
its default. This module validates a config against it (unknown keys are errors that
name the key and suggest the closest known one), fills in the defaults, and hands each
stage its section. Library code asks :func:`section` for a stage's settings instead of
keeping its own defaults, so a default cannot differ between the schema, the rules and
the code.
"""

from __future__ import annotations

import copy
import difflib
import functools
from pathlib import Path
from typing import Any, Mapping

from .errors import ConfigError

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


@functools.lru_cache(maxsize=1)
def _schema() -> dict:
    import yaml

    if not SCHEMA_PATH.is_file():
        raise ConfigError(f"the config schema {SCHEMA_PATH} is missing; reinstall emo from its repository")
    return yaml.safe_load(SCHEMA_PATH.read_text())


def schema() -> dict:
    """The config schema (a copy: callers may not change the cached one)."""
    return copy.deepcopy(_schema())


def section_schema(name: str) -> dict:
    properties = _schema()["properties"]
    if name not in properties:
        raise KeyError(f"no config section {name!r} in {SCHEMA_PATH}")
    return properties[name]


def fill_defaults(node_schema: Mapping, value: Any) -> Any:
    """``value`` with the schema's defaults filled in at every depth (a new object)."""
    value = copy.deepcopy(value)
    if not isinstance(value, dict) or "properties" not in node_schema:
        return value
    for key, sub in node_schema["properties"].items():
        if key not in value:
            if "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            elif sub.get("type") == "object" and any("default" in s for s in sub.get("properties", {}).values()):
                value[key] = {}
            else:
                continue
        value[key] = fill_defaults(sub, value[key])
    return value


def _key_path(prefix: str, path) -> str:
    parts = [prefix] if prefix else []
    parts += [f"[{p}]" if isinstance(p, int) else str(p) for p in path]
    return ".".join(parts).replace(".[", "[")


def _describe(error, prefix: str) -> str:
    """One user-facing line for a jsonschema error: the key, what is wrong, what to do."""
    where = _key_path(prefix, error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = sorted(error.schema.get("properties", {}))
        if known:
            unknown = sorted(set(error.instance) - set(known))
            hints = []
            for key in unknown:
                close = difflib.get_close_matches(key, known, n=1)
                full = f"{where}.{key}" if where else key
                hints.append(f"config key '{full}' is not known" + (f" (did you mean '{close[0]}'?)" if close else ""))
            return "; ".join(hints) + f"; known keys{' of ' + repr(where) if where else ''}: {', '.join(known)}"
    if error.validator == "required":
        return f"config {'section ' + repr(where) if where else ''} lacks a required key: {error.message}".replace(
            "config  lacks", "config lacks")
    return f"config key '{where or '(top level)'}': {error.message}"


def validate(config: Mapping, node_schema: Mapping | None = None, prefix: str = "") -> None:
    """Raise :class:`ConfigError` naming the first bad key (in document order)."""
    import jsonschema

    node_schema = _schema() if node_schema is None else node_schema
    validator = jsonschema.Draft202012Validator(node_schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if errors:
        # an unknown key is the most actionable message (a typo silently changes nothing)
        errors.sort(key=lambda e: e.validator != "additionalProperties")
        raise ConfigError(_describe(errors[0], prefix) + ". See docs/configuration.md")


def load(config: Mapping) -> dict:
    """A whole config validated and completed with every default."""
    validate(config)
    completed = fill_defaults(_schema(), dict(config))
    validate(completed)
    return completed


def section(name: str, values: Mapping | None = None) -> dict:
    """Settings of one config section: ``values`` (None = all defaults) validated against
    the section's schema and completed with its defaults."""
    node = section_schema(name)
    values = {} if values is None else dict(values)
    validate(values, node, prefix=name)
    return fill_defaults(node, values)


def defaults(name: str) -> dict:
    """The schema's defaults of one config section."""
    return section(name, None)
