"""Code versions computed from what an entry script really imports.

A rule's ``code_version`` param is the sha256 of its entry script and of every ``emo``
module in the script's import closure (found with :mod:`ast`, lazy imports inside
functions included, parent packages' ``__init__`` included). Snakemake reruns a job
whose params changed, so editing a library module reruns exactly the rules whose entry
script reaches it, and no hand-written module list can drift.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

PACKAGE = "emo"
LIBRARY_ROOT = Path(__file__).resolve().parents[1]  # scripts/emo
SEARCH_ROOT = LIBRARY_ROOT.parent  # scripts/: where `import emo` resolves


def module_file(module: str, root: Path = SEARCH_ROOT) -> Path | None:
    """Source file of a dotted module name (``emo.stats.core``), or None if it is not one."""
    base = root.joinpath(*module.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _module_name(path: Path, root: Path) -> tuple[str, bool]:
    """Dotted name of a library file and whether it is a package ``__init__``."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts = parts[:-1]
    return ".".join(parts), is_package


def _imported_modules(path: Path, root: Path) -> set[str]:
    """Dotted ``emo`` module names one file imports (at any depth of its AST)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    inside = path.resolve().is_relative_to(root.resolve() / PACKAGE)
    own_name, is_package = _module_name(path.resolve(), root.resolve()) if inside else ("", False)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if not inside:
                    continue
                package = own_name.split(".") if is_package else own_name.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join(package + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.add(base)
            # `from emo import stats` / `from emo.stats import core` import submodules
            found.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return {name for name in found if name == PACKAGE or name.startswith(PACKAGE + ".")}


def import_closure(script: str | Path, root: Path = SEARCH_ROOT) -> list[Path]:
    """Every ``emo`` source file an entry script reaches through imports, sorted.

    Importing ``emo.a.b`` runs ``emo/__init__.py`` and ``emo/a/__init__.py`` too, so
    parent packages are part of the closure.
    """
    seen: set[Path] = set()
    pending = [Path(script)]
    while pending:
        current = pending.pop()
        for name in _imported_modules(current, root):
            parts = name.split(".")
            for depth in range(1, len(parts) + 1):
                found = module_file(".".join(parts[:depth]), root)
                if found is not None and found not in seen:
                    seen.add(found)
                    pending.append(found)
    return sorted(seen)


def script_code_version(script: str | Path, root: Path = SEARCH_ROOT) -> str:
    """sha256 (12 hex) of an entry script and its library import closure."""
    script = Path(script).resolve()
    digest = hashlib.sha256()
    for path in [script, *import_closure(script, root)]:
        label = path.name if path == script else str(path.relative_to(root))
        digest.update(label.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]
