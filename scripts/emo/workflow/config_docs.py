"""docs/configuration.md, generated from the config schema (the one source of keys,
defaults and descriptions).

    python -m emo.workflow.config_docs > docs/configuration.md      (make docs)

tests/unit/test_workflow_settings.py fails when the committed page differs from this output.
"""

from __future__ import annotations

import json
import sys
from typing import Iterator

from ..settings import SCHEMA_PATH, schema

HEADER = """# Configuration reference

<!-- Generated from workflow/schemas/config.schema.yaml by `make docs`
     (python -m emo.workflow.config_docs); edit the schema, not this page. -->

`config/config.yaml` (the demo) or your own config file is validated against
`workflow/schemas/config.schema.yaml` when the DAG is built: an unknown key (a typo such as
`slide_batch:`) or a bad value fails before any job runs, with the key named. Every
default below is filled in from the schema, and each rule receives the settings it uses
through its `params`, so editing a key reruns exactly the jobs that use it.
Each top-level section belongs to one stage (docs/architecture.md).
"""


def _type(node: dict) -> str:
    if "enum" in node:
        return " | ".join(f"`{v}`" for v in node["enum"])
    if "oneOf" in node:
        return " or ".join(_type(option) for option in node["oneOf"])
    kind = node.get("type", "")
    kinds = kind if isinstance(kind, list) else [kind]
    text = " or ".join(k for k in kinds if k)
    if "array" in kinds and "items" in node and node["items"].get("type"):
        text = text.replace("array", f"array of {node['items']['type']}")
    return text


def _default(node: dict) -> str:
    if "default" not in node:
        return "required" if node.get("x-required") else "—"
    value = node["default"]
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
    if len(text) > 60:
        text = text[:57] + "…"
    return f"`{text}`"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _rows(node: dict, prefix: str) -> Iterator[tuple[str, str, str, str]]:
    """(key, type, default, description) for every leaf key under ``node``."""
    required = set(node.get("required", []))
    for key, sub in node.get("properties", {}).items():
        path = f"{prefix}.{key}" if prefix else key
        sub = dict(sub, **({"x-required": True} if key in required else {}))
        if sub.get("type") == "object" and "properties" in sub:
            yield from _rows(sub, path)
        elif (sub.get("type") == "object" and isinstance(sub.get("additionalProperties"), dict)
              and "properties" in sub["additionalProperties"]):
            yield from _rows(sub["additionalProperties"], f"{path}.<name>")
        else:
            yield path, _type(sub), _default(sub), sub.get("description", "")


def render() -> str:
    root = schema()
    lines = [HEADER]
    top = {k: v for k, v in root["properties"].items()
           if not (v.get("type") == "object" and "properties" in v)}
    sections = {k: v for k, v in root["properties"].items() if k not in top}
    lines += ["## Top level", "", "| key | type | default | meaning |", "|---|---|---|---|"]
    for key, kind, default, text in _rows({"properties": top, "required": root.get("required", [])}, ""):
        lines.append(f"| `{key}` | {_cell(kind)} | {_cell(default)} | {_cell(text)} |")
    for name, node in sections.items():
        lines += ["", f"## {name}", ""]
        if node.get("description"):
            lines += [_cell(node["description"]), ""]
        lines += ["| key | type | default | meaning |", "|---|---|---|---|"]
        for key, kind, default, text in _rows(node, name):
            lines.append(f"| `{key}` | {_cell(kind)} | {_cell(default)} | {_cell(text)} |")
    lines += ["", f"<!-- source: {SCHEMA_PATH.parent.parent.name}/{SCHEMA_PATH.parent.name}/{SCHEMA_PATH.name} -->", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(render())
