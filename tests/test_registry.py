import re
from pathlib import Path

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
    listed,
)
from pixfit.sources import IMAGE_SUFFIXES

SRC = Path(pixfit.__file__).parent


def rgba(width: int = 64, height: int = 48) -> pyvips.Image:
    """A gradient with a half-transparent alpha band, in memory."""
    x = pyvips.Image.xyz(width, height)
    colour = (x[0] * 4).bandjoin([x[1] * 5, x[0] + x[1]]).cast("uchar")
    return colour.bandjoin_const([128]).copy(interpretation="srgb").copy_memory()


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
    data = rgba().gifsave_buffer()
    assert sniff(data) == guess(data) == ImageFormat.GIF
    assert not FORMATS[ImageFormat.GIF].is_output


def test_guess_knows_nothing_else() -> None:
    assert guess(b"") is None
    assert guess(b"<svg xmlns='http://www.w3.org/2000/svg'/>") is None
    assert guess(b"RIFF\x00\x00\x00\x00WAVE") is None


def test_names_and_suffixes_derived_from_the_rows() -> None:
    assert EXTENSIONS == {
        "image/jpeg": "jpg", "image/webp": "webp", "image/avif": "avif", "image/png": "png",
        "image/gif": "gif",
    }  # fmt: skip
    assert sorted(IMAGE_SUFFIXES) == [".avif", ".gif", ".jpeg", ".jpg", ".png", ".webp"]
    assert listed(INPUTS) == "AVIF, WebP, JPEG, PNG or GIF"


def test_each_media_type_is_spelled_in_one_module() -> None:
    sources = {path: path.read_text() for path in SRC.rglob("*.py")}
    for row in FORMATS.values():
        holders = [path.name for path, text in sources.items() if f'"{row.media_type}"' in text]
        assert holders == ["registry.py"], row.media_type
