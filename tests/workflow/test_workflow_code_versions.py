"""Code versions from entry scripts' import closures (emo.workflow.code_versions)."""

from __future__ import annotations

from pathlib import Path

from emo.workflow.code_versions import import_closure, script_code_version
from workflow_runner import make_workspace, parsed_rules

REPO = Path(__file__).resolve().parents[2]


def _library(root: Path) -> Path:
    """A small fake `emo` package: relative, lazy and package-level imports."""
    lib = root / "emo"
    (lib / "stats").mkdir(parents=True)
    (lib / "__init__.py").write_text("__version__ = '0'\n")
    (lib / "errors.py").write_text("class E(Exception):\n    pass\n")
    (lib / "io.py").write_text("from .errors import E\n")
    (lib / "lazy.py").write_text("x = 1\n")
    (lib / "unused.py").write_text("y = 1\n")
    (lib / "stats" / "__init__.py").write_text("from .. import io\n")
    (lib / "stats" / "core.py").write_text("def f():\n    from ..lazy import x\n    return x\n")
    (root / "entry.py").write_text("import numpy\nfrom emo.stats import core\n")
    (root / "other.py").write_text("import emo.unused\n")
    return lib


def test_closure_follows_relative_lazy_and_parent_package_imports(tmp_path):
    lib = _library(tmp_path)
    names = [p.relative_to(lib).as_posix() for p in import_closure(tmp_path / "entry.py", root=tmp_path)]
    assert names == ["__init__.py", "errors.py", "io.py", "lazy.py", "stats/__init__.py", "stats/core.py"]


def test_closure_follows_a_package_init_that_re_exports_its_submodules(tmp_path):
    """A package split into modules (as ``emo/spatial/``): its ``__init__`` re-exports
    with ``from .sub import name`` and ``from . import sub``; the submodules import each
    other and the parent package relatively. Every one of them is in the closure."""
    lib = _library(tmp_path)
    (lib / "pkg").mkdir()
    (lib / "pkg" / "__init__.py").write_text("from . import figures\nfrom .models import run\n")
    (lib / "pkg" / "figures.py").write_text("from .tables import load\n")
    (lib / "pkg" / "models.py").write_text("from ..errors import E\n\ndef run():\n    from .. import lazy\n")
    (lib / "pkg" / "tables.py").write_text("load = 1\n")
    (tmp_path / "split.py").write_text("from emo import pkg\n")
    names = [p.relative_to(lib).as_posix() for p in import_closure(tmp_path / "split.py", root=tmp_path)]
    assert names == ["__init__.py", "errors.py", "lazy.py", "pkg/__init__.py", "pkg/figures.py", "pkg/models.py",
                     "pkg/tables.py"]


def test_version_changes_exactly_with_the_closure(tmp_path):
    lib = _library(tmp_path)
    entry, other = tmp_path / "entry.py", tmp_path / "other.py"
    before = script_code_version(entry, root=tmp_path), script_code_version(other, root=tmp_path)
    (lib / "lazy.py").write_text("x = 2\n")  # reached only by entry.py, through a lazy import
    after = script_code_version(entry, root=tmp_path), script_code_version(other, root=tmp_path)
    assert after[0] != before[0] and after[1] == before[1]
    (lib / "unused.py").write_text("y = 2\n")  # reached only by other.py
    assert script_code_version(entry, root=tmp_path) == after[0]
    assert script_code_version(other, root=tmp_path) != after[1]
    (entry).write_text((entry).read_text() + "# the script itself\n")
    assert script_code_version(entry, root=tmp_path) != after[0]


def test_real_entry_scripts_reach_the_modules_they_use():
    closure = {p.relative_to(REPO / "scripts").as_posix() for p in import_closure(REPO / "scripts/spatial_models.py")}
    # spatial_models uses lme and spatial (a package: its __init__ re-exports every module)
    spatial = {f"emo/spatial/{m}.py" for m in ("__init__", "settings", "geometry", "tables", "probes",
                                                 "roi_predictions", "models", "figures")}
    assert {"emo/lme.py", "emo/stats/core.py", "emo/__init__.py"} | spatial <= closure
    assert "emo/tiling.py" not in closure


def test_every_rule_versions_the_script_it_runs(tmp_path):
    """Each rule's params.code_version is the code version of the script it runs, read
    from the parsed workflow (rules defined in loops included)."""
    rules = parsed_rules(make_workspace(tmp_path), tmp_path)
    scripted = [r for r in rules if r.script]
    for rule in scripted:
        # a script path may name the job's params (rules defined in a loop)
        script = REPO / "scripts" / Path(rule.script).name.format(params=rule.params)
        assert rule.params.code_version == script_code_version(script), rule.name
    assert len(scripted) >= 30, [r.name for r in rules]
    assert sorted(r.name for r in rules if not r.script) == ["all", "demo_cohort"]  # target-only rules
