"""Reduced masters: variants rendered from one decode match variants rendered from the source."""

import os
from pathlib import Path

import pytest
import pyvips

from pixfit.config import Config
from pixfit.masters import Master, Masters
from pixfit.rendering import Rendered, render_plan
from pixfit.service import ImageRequest, ImageService, SourceKind
from tests.conftest import decoded_output, photo, shown, with_orientation

LIMITS = Config().limits
# Variants a page asks for, at several widths and fits. The master comes before any
# encode, so the pixels are compared losslessly (PNG): a lossy encode of this grain turns
# a difference of 0.9994 SSIM in its input into 0.994 in its output at 320 px, whichever
# input is the better one.
VARIANTS = [
    {"w": "1000"},
    {"w": "640"},
    {"w": "320"},
    {"w": "150"},
    {"w": "300", "h": "300", "fit": "cover"},
    {"w": "500", "h": "500", "fit": "contain"},
]


@pytest.fixture(scope="module")
def source() -> bytes:
    # A large progressive JPEG turned by EXIF, as phones write them: decode dominates.
    image = with_orientation(photo(3200, 2000, seed=3), 6)
    return bytes(image.jpegsave_buffer(Q=92, interlace=True))


def rendered(data: bytes, query: dict[str, str], masters: Masters | None) -> Rendered:
    planned = ImageService.from_config(Config())._plan(
        ImageRequest(SourceKind.PATH, "photo.jpg", {**query, "format": "png"}, {})
    )
    return render_plan(data, planned, LIMITS, masters=masters, identity="photo.jpg 1 1")


def ssim(a: pyvips.Image, b: pyvips.Image) -> float:
    """Mean SSIM of the luma (Gaussian window, sigma 1.5; Wang et al.'s constants)."""
    assert (a.width, a.height) == (b.width, b.height)
    x, y = (image.colourspace("b-w")[0].cast("double") for image in (a, b))

    def blur(image: pyvips.Image) -> pyvips.Image:
        return image.gaussblur(1.5, precision="float")

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = blur(x), blur(y)
    vx, vy, cov = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    index = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(index.avg())


def test_variants_from_the_master_match_variants_from_the_source(source: bytes) -> None:
    masters = Masters(max_bytes=64_000_000, edge=1280)
    for query in VARIANTS:
        from_master = rendered(source, query, masters)
        from_source = rendered(source, query, None)
        a, b = decoded_output(from_master), decoded_output(from_source)
        assert (a.width, a.height) == (b.width, b.height)
        assert ssim(a, b) >= 0.995, query
    # One master served them all: the source decoded once, at full size (a 1280 px display
    # of a 3200 px source needs more than half of it), turned upright only when each
    # variant is made.
    master = masters.get("photo.jpg 1 1")
    assert master is not None and master.shrink == 1
    assert (master.image.width, master.image.height) == (3200, 2000)
    assert masters.size == 3200 * 2000 * 3


def test_a_display_over_the_master_edge_decodes_the_source(source: bytes) -> None:
    masters = Masters(max_bytes=64_000_000, edge=400)
    # 1000 px needs a decode at 1/1; a master for 400 px displays is made at 1/2 or less.
    big = decoded_output(rendered(source, {"w": "1000", "format": "jpeg"}, masters))
    assert (big.width, big.height) == (1000, 1600)
    assert masters.size == 0  # no master made for a variant it could not serve
    rendered(source, {"w": "200", "format": "jpeg"}, masters)
    made = masters.get("photo.jpg 1 1")
    assert made is not None and made.shrink == 4
    again = decoded_output(rendered(source, {"w": "1000", "format": "jpeg"}, masters))
    assert ssim(again, big) >= 0.999  # the master (1/4) was too small: decoded alone


def test_masters_stay_within_their_bound() -> None:
    masters = Masters(max_bytes=1000, edge=1280)
    small = Master(pyvips.Image.black(10, 10, bands=3), 1)  # 300 bytes
    for name in "abcd":
        masters.put(name, small)
    assert masters.size == 900 and masters.get("a") is None and masters.get("d") is not None
    masters.put("huge", Master(pyvips.Image.black(100, 100, bands=3), 1))
    assert masters.get("huge") is None and masters.size == 900


def test_a_changed_file_gets_a_new_master(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    photo(1600, 1000, seed=1).jpegsave(str(path), Q=90)
    config = Config().merged({"source": {"root": str(tmp_path)}})
    service = ImageService.from_config(config)
    assert service.masters is not None and service.masters.enabled

    def width_and_mean(width: str) -> tuple[int, float]:
        answer = service.handle(
            ImageRequest(SourceKind.PATH, "photo.jpg", {"w": width, "q": "90"}, {})
        )
        image = shown(answer.body)
        return image.width, image.avg()

    assert width_and_mean("400")[0] == 400
    assert service.masters.size > 0
    pyvips.Image.black(1600, 1000, bands=3).jpegsave(str(path))
    os.utime(path, (1, 1))
    width, mean = width_and_mean("300")
    assert width == 300 and mean < 5  # the new, black file, not the old master
