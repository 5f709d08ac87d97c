"""The conda environments in envs/ repeat the pins of pyproject.toml; they must agree."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def _pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        specs.extend(extra)
    pins = {}
    for spec in specs:
        name, _, version = spec.partition("==")
        assert version, f"pyproject.toml: {spec!r} is not pinned with =="
        pins[name.lower()] = version
    return pins


def _env_pip_pins(env_file: Path) -> dict[str, str]:
    env = yaml.safe_load(env_file.read_text())
    pins = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict) and "pip" in dep:
            for spec in dep["pip"]:
                name, _, version = spec.partition("==")
                assert version, f"{env_file.name}: pip entry {spec!r} is not pinned with =="
                pins[name.lower()] = version
    return pins


def test_every_env_pins_match_pyproject():
    pyproject = _pyproject_pins()
    env_files = sorted((REPO / "envs").glob("*.yaml"))
    assert len(env_files) >= 4
    for env_file in env_files:
        env_pins = _env_pip_pins(env_file)
        assert env_pins, f"{env_file.name} has no pip pins"
        for name, version in env_pins.items():
            assert name in pyproject, f"{env_file.name}: {name} is not a dependency in pyproject.toml"
            assert version == pyproject[name], (
                f"{env_file.name}: {name}=={version} but pyproject.toml pins {pyproject[name]}")


def test_installed_versions_match_pins():
    """The running environment (made by `make setup`) is the pinned one."""
    from importlib.metadata import PackageNotFoundError, version

    mismatched = []
    for name, pinned in _pyproject_pins().items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            mismatched.append(f"{name} not installed")
            continue
        if installed.split("+")[0] != pinned:
            mismatched.append(f"{name} {installed} != {pinned}")
    assert not mismatched, mismatched


def test_every_rule_uses_an_existing_env():
    rule_files = sorted((REPO / "workflow" / "rules").glob("*.smk"))
    envs_used = set()
    for rule_file in rule_files:
        text = rule_file.read_text()
        for match in re.finditer(r'conda:\s*\n?\s*"([^"]+)"', text):
            envs_used.add(match.group(1))
            assert (rule_file.parent / match.group(1)).resolve().is_file(), (
                f"{rule_file.name}: conda env {match.group(1)} does not exist")
    for env in envs_used:
        assert env.startswith("../../envs/"), env
