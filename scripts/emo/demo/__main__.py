"""Command line: ``python -m emo.demo sheet CONFIG.yaml`` prints the demo sample sheet
of a config (run from scripts/, or with scripts/ on PYTHONPATH); ``genes`` prints the
gene list."""

from __future__ import annotations

import sys

import yaml

from . import design


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("sheet", "genes"):
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1]) as handle:
        config = yaml.safe_load(handle)
    cfg = design.settings(config.get("demo"))
    if argv[0] == "sheet":
        sys.stdout.write(design.sheet_text(cfg))
    else:
        sys.stdout.write("\n".join(design.gene_names(cfg)) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
