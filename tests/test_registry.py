import io
import re
from pathlib import Path

import pillow_heif
import pytest
import pyvips

import pixfit
from pixfit.batch import EXTENSIONS
from pixfit.formats import Encoder, sniff
from pixfit.registry import (
    FORMATS,
    INPUTS,
    OUTPUTS,
    SPELLINGS,
    ImageFormat,
    OutputFormat,
    guess,
    heif_brand,
    listed,
)
from pixfit.sources import IMAGE_SUFFIXES

SRC = Path(pixfit.__file__).parent


def heic(image: pyvips.Image) -> bytes:
    """HEIC bytes made by pillow-heif's HEVC encoder."""
    pixels = image.write_to_memory()
    mode = "RGBA" if image.bands == 4 else "RGB"
    heif = pillow_heif.from_bytes(mode, (image.width, image.height), pixels)
    buffer = io.BytesIO()
    heif.save(buffer, quality=80)
    return buffer.getvalue()


def rgba(width: int = 64, height: int = 48) -> pyvips.Image:
    """A gradient whose left half is transparent and right half half-transparent."""
    x = pyvips.Image.xyz(width, height)
    colour = (x[0] * 4).bandjoin([x[1] * 5, x[0] + x[1]]).cast("uchar")
    alpha = (x[0] >= width // 2).ifthenelse(128, 0).cast("uchar")
    return colour.bandjoin(alpha).copy(interpretation="srgb").copy_memory()


def test_output_format_names_exactly_the_output_rows() -> None:
    concrete = set(OutputFormat) - {OutputFormat.AUTO, OutputFormat.ORIGINAL}
    assert concrete == {row.name for row in OUTPUTS}
    assert set(SPELLINGS.values()) == {row.name for row in OUTPUTS}
    assert SPELLINGS["jpg"] == ImageFormat.JPEG


def test_rows_name_real_libvips_loaders_and_savers() -> None:
    assert set(FORMATS) == set(ImageFormat)
    for row in FORMATS.values():
        assert row.name == FORMATS[row.name].name
        assert re.fullmatch(r"image/[a-z]+", row.media_type)
        assert row.extensions and row.magic
        if row.loader is not None:
            assert pyvips.vips_lib.g_type_from_name(row.loader.encode()) != 0, row.loader
        if row.saver is not None:
            assert pyvips.type_find("VipsOperation", row.saver) != 0, row.saver
        if row.original_output is not None:
            assert FORMATS[row.original_output].is_output


@pytest.mark.parametrize("fmt", [row.name for row in OUTPUTS], ids=str)
def test_each_output_encodes_sniffs_and_keeps_alpha_as_its_row_says(fmt: ImageFormat) -> None:
    data = Encoder(fmt).encode(rgba(), 60)
    assert sniff(data) == fmt
    assert guess(data) == fmt
    decoded = pyvips.Image.new_from_buffer(data, "")
    assert decoded.hasalpha() == FORMATS[fmt].alpha


def test_an_input_only_format_sniffs_by_its_row() -> None:
    data = heic(rgba())
    assert sniff(data) == guess(data) == ImageFormat.HEIC
    assert not FORMATS[ImageFormat.HEIC].is_output
    assert ImageFormat.HEIC not in SPELLINGS.values()


def test_avif_and_heic_share_a_loader_and_are_told_apart_by_their_brands() -> None:
    avif = Encoder(ImageFormat.AVIF).encode(rgba(), 60)
    assert FORMATS[ImageFormat.AVIF].loader == FORMATS[ImageFormat.HEIC].loader
    assert sniff(avif) == heif_brand(avif) == ImageFormat.AVIF
    assert sniff(heic(rgba())) == ImageFormat.HEIC
    # "mif1" major brand: the compatible brands decide.
    mif1 = b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1heic"
    assert heif_brand(mif1) == ImageFormat.HEIC
    assert heif_brand(mif1.replace(b"mif1heic", b"mif1avif")) == ImageFormat.AVIF
    assert heif_brand(mif1.replace(b"mif1heic", b"mif1jpeg")) is None


def test_guess_knows_nothing_else() -> None:
    assert guess(b"") is None
    assert guess(b"<svg xmlns='http://www.w3.org/2000/svg'/>") is None
    assert guess(b"RIFF\x00\x00\x00\x00WAVE") is None


def test_names_and_suffixes_derived_from_the_rows() -> None:
    assert EXTENSIONS == {
        "image/jpeg": "jpg", "image/webp": "webp", "image/avif": "avif", "image/png": "png",
        "image/gif": "gif", "image/heic": "heic",
    }  # fmt: skip
    assert sorted(IMAGE_SUFFIXES) == [
        ".avif", ".gif", ".heic", ".heif", ".hif", ".jpeg", ".jpg", ".png", ".webp",
    ]  # fmt: skip
    assert listed(INPUTS) == "AVIF, WebP, JPEG, PNG, GIF or HEIC"


def test_each_media_type_is_spelled_in_one_module() -> None:
    sources = {path: path.read_text() for path in SRC.rglob("*.py")}
    for row in FORMATS.values():
        holders = [path.name for path, text in sources.items() if f'"{row.media_type}"' in text]
        assert holders == ["registry.py"], row.media_type
