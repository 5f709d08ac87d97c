"""emo.slides: opening slides, mpp sources and user-facing errors."""

from __future__ import annotations

import shutil

import pytest

from emo import slides
from emo.errors import SlideError
from external_slides import cmu_small_region, openslide_fixture
from tiling_fixtures import synthetic_slides


def test_check_slide_reads_aperio_metadata():
    info = slides.check_slide("S40", synthetic_slides()["x40"])
    assert info.vendor == "aperio"
    assert info.mpp == pytest.approx(0.25)
    assert info.mpp_source == "metadata"
    assert (info.level0_width, info.level0_height) == (2048, 1536)
    assert info.level_downsamples[:3] == (1.0, 2.0, 4.0)


def test_sample_sheet_mpp_overrides_metadata():
    info = slides.check_slide("S40", synthetic_slides()["x40"], mpp_override=0.3)
    assert info.mpp == pytest.approx(0.3)
    assert info.mpp_source == "sample_sheet"


def test_missing_file_names_sample_and_path(tmp_path):
    missing = tmp_path / "nowhere.svs"
    with pytest.raises(SlideError) as error:
        slides.check_slide("TCGA-XX-0001", missing)
    message = str(error.value)
    assert "TCGA-XX-0001" in message and str(missing) in message and "does not exist" in message
    assert "sample sheet" in message


@pytest.mark.parametrize("kind", ["png", "text"])
def test_unsupported_format_is_refused(kind):
    path = synthetic_slides()[kind]
    with pytest.raises(SlideError) as error:
        slides.check_slide("S_bad", path)
    message = str(error.value)
    assert "S_bad" in message and str(path) in message and "format" in message
    assert "SVS" in message  # says what would work


def test_corrupt_slide_is_refused():
    path = openslide_fixture("unreadable.svs")
    with pytest.raises(SlideError) as error:
        slides.check_slide("S_corrupt", path)
    message = str(error.value)
    assert "S_corrupt" in message and "unreadable.svs" in message and "corrupt" in message


def test_unopenable_tiff_is_refused():
    path = openslide_fixture("unopenable.tiff")
    with pytest.raises(SlideError, match="S_tiff"):
        slides.check_slide("S_tiff", path)


def test_missing_mpp_asks_for_sample_sheet_value():
    path = synthetic_slides()["no_mpp"]
    with pytest.raises(SlideError) as error:
        slides.check_slide("S_nompp", path)
    message = str(error.value)
    assert "S_nompp" in message and str(path) in message and "mpp" in message and "sample sheet" in message
    # the documented fix works
    assert slides.check_slide("S_nompp", path, mpp_override=0.5).mpp_source == "sample_sheet"


def test_dicom_folder_opens(tmp_path):
    first = openslide_fixture("boxes_0.dcm")
    folder = tmp_path / "dicom_slide"
    folder.mkdir()
    for name in ("boxes_0.dcm", "boxes_1.dcm"):
        shutil.copy(first.parent / name, folder / name)
    slide = slides.open_slide("S_dcm", folder)
    assert slide.properties["openslide.vendor"] == "dicom"
    slide.close()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SlideError, match="S_empty.*folder without .dcm"):
        slides.open_slide("S_empty", empty)
    # folder digests cover every file
    digest = slides.slide_sha256(folder)
    (folder / "boxes_1.dcm").write_bytes(b"changed")
    assert slides.slide_sha256(folder) != digest


def test_cmu_small_region_metadata():
    path = cmu_small_region()
    info = slides.check_slide("CMU-1-Small-Region", path)
    assert info.vendor == "aperio"
    assert info.mpp == pytest.approx(0.499, abs=1e-3)
    assert (info.level0_width, info.level0_height) == (2220, 2967)


def test_best_level_has_at_least_the_output_resolution():
    ds = (1.0, 4.0000312, 16.00125, 32.0025)
    assert slides.best_level_for_downsample(ds, 4.84) == 1
    assert slides.best_level_for_downsample(ds, 3.9) == 0
    assert slides.best_level_for_downsample(ds, 4.0) == 1  # within rounding of the level's downsample
    assert slides.best_level_for_downsample(ds, 100.0) == 3
    assert slides.best_level_for_downsample(ds, 0.5) == 0


def test_implausible_file_mpp_is_refused_naming_the_slide():
    """A generic TIFF with a 72-dpi header reports 352.8 µm/px (openslide-python's boxes.tiff)."""
    path = openslide_fixture("boxes.tiff")
    with pytest.raises(SlideError) as error:
        slides.check_slide("S_72dpi", path)
    message = str(error.value)
    print(message)
    assert "S_72dpi" in message and "boxes.tiff" in message
    assert "352.8 µm per pixel" in message and "0.05–5 µm/px" in message and "72-dpi" in message
    assert "'mpp' column of the sample sheet" in message
    # the documented fix works: the sheet's value overrides the header
    assert slides.check_slide("S_72dpi", path, mpp_override=0.25).mpp == pytest.approx(0.25)


def test_implausible_sheet_mpp_is_refused_by_the_slide_check_too():
    with pytest.raises(SlideError, match=r"S40.*sample-sheet mpp 25 µm/px is outside .*0.05–5 µm/px"):
        slides.check_slide("S40", synthetic_slides()["x40"], mpp_override=25)


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.99, 0.99975])
def test_truncated_svs_says_truncated_and_to_copy_it_again(tmp_path, keep):
    """A cut-off SVS loses the TIFF directories written after the image data (it then reads
    as no slide format at all), or keeps them but not all the data they point to (it then
    opens); both must say the file is truncated, not advise a conversion."""
    data = cmu_small_region().read_bytes()
    path = tmp_path / "cut.svs"
    path.write_bytes(data[: int(len(data) * keep)])
    if keep > 0.999:  # directories intact: OpenSlide opens it, only the size check sees the cut
        assert slides.openslide.OpenSlide.detect_format(str(path)) == "aperio"
    with pytest.raises(SlideError) as error:
        slides.check_slide("S_cut", path)
    message = str(error.value)
    print(message)
    assert "S_cut" in message and str(path) in message
    assert "truncated" in message and f"the file is {path.stat().st_size:,} bytes" in message
    assert "Copy the slide again" in message and "vips" not in message and "convert other" not in message


def test_complete_slides_are_not_called_truncated():
    assert slides.tiff_truncation(cmu_small_region()) is None
    for name in ("boxes.tiff", "small.svs", "boxes_0.dcm", "unopenable.tiff"):
        assert slides.tiff_truncation(openslide_fixture(name)) is None
    assert slides.tiff_truncation(synthetic_slides()["x40"]) is None
