"""The format registry: one row per image format pixfit reads or writes.

Every other module asks this one: option parsing (`format` names and spellings),
negotiation (Accept tokens), sniffing (libvips loaders), encoding (savers and their
settings), file names (extensions) and Content-Type (media types). Adding a format is
one `ImageFormat` member and one row here (plus its `OutputFormat` member if pixfit
writes it), an encoder hook in formats.py only if a quality alone does not drive its
saver, and tests.

No pyvips here: the web layer, the cache and the planner read this without loading libvips.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = [
    "BY_EXTENSION",
    "BY_MEDIA_TYPE",
    "FORMATS",
    "INPUTS",
    "LOADERS",
    "OUTPUTS",
    "SPELLINGS",
    "Format",
    "ImageFormat",
    "OutputFormat",
    "Setting",
    "guess",
    "listed",
    "original_output",
]


class ImageFormat(StrEnum):
    """Every format with a row in `FORMATS`."""

    AVIF = "avif"
    WEBP = "webp"
    JPEG = "jpeg"
    PNG = "png"
    GIF = "gif"
    HEIC = "heic"


class OutputFormat(StrEnum):
    """What `format=` asks for: AUTO negotiates, ORIGINAL keeps the source's format.

    The other members are the registry's output formats, by the same names (a test
    holds the two together).
    """

    AUTO = "auto"
    JPEG = "jpeg"
    WEBP = "webp"
    AVIF = "avif"
    PNG = "png"
    GIF = "gif"
    ORIGINAL = "original"


# A keyword argument of a libvips saver.
Setting = int | str | bool


@dataclass(frozen=True, slots=True)
class Format:
    """One image format: how it is named, recognised, read, written and negotiated."""

    name: ImageFormat
    # How messages spell it ("WebP").
    label: str
    media_type: str
    # File name extensions without the dot; the first is the one pixfit writes.
    extensions: tuple[str, ...]
    # Signatures at the start of the data, any of which marks the format; "?" is any byte.
    magic: tuple[bytes, ...]
    # The libvips buffer loader class vips_foreign_find_load_buffer names; None: not read.
    # Where one loader claims several rows (libheif: AVIF and HEIC), the magic tells them apart.
    loader: str | None
    # The libvips save operation (called as `<saver>_buffer`); None: not written.
    saver: str | None
    # Whether the format carries transparency, and several frames as libvips writes it.
    alpha: bool
    animation: bool
    # The Accept entry a client must list explicitly (`*/*` and `image/*` do not count) for
    # `format=auto` to choose this format; None: every client takes it.
    accept: str | None
    # Saver keyword arguments every encode passes (effort, quantisation table...).
    settings: Mapping[str, Setting] = field(default_factory=dict)
    # What `format=original` writes for a source in this format; None: the format itself.
    original_output: ImageFormat | None = None
    # Whether `format=auto` may choose it; False: only when asked for by name.
    negotiated: bool = True
    # Whether the saver has a quality that trades bytes for fidelity (the search steers it).
    lossy: bool = True
    # What decodes the pixels: "libvips", or "pillow-heif" for HEVC, which the libvips
    # wheel's libheif cannot decode ("Support for this compression format has not been
    # built in: HEVC"), while pillow-heif's wheels bundle libde265.
    decoder: str = "libvips"

    @property
    def is_input(self) -> bool:
        """True when pixfit decodes this format."""
        return self.loader is not None

    @property
    def is_output(self) -> bool:
        """True when pixfit encodes this format."""
        return self.saver is not None


# Brands of HEIF files whose images are HEVC-coded: still images and image sequences.
_HEVC_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs")
_AV1_BRANDS = (b"avif", b"avis")


# The rows, best first: `format=auto` takes the first output format the client accepts
# (and that carries alpha, when the image has it).
_ROWS = (
    Format(
        ImageFormat.AVIF, "AVIF", "image/avif", ("avif",),
        magic=(b"????ftypavif", b"????ftypavis"),
        # libheif's loader, which also claims HEIC (whose HEVC decoder the wheel lacks).
        loader="VipsForeignLoadHeifBuffer", saver="heifsave",
        # heifsave writes one frame.
        alpha=True, animation=False, accept="image/avif",
        # AV1 is slow, and its effort buys little here. Measured on a 480x300 photo at Q60
        # (concurrency 2): effort 0 53 ms / 23.0 KB, 1 145 ms / 22.0 KB, 2 242 ms / 22.1 KB,
        # 4 2958 ms / 22.6 KB. A budget search encodes several times, so effort 0 it is.
        # Full-resolution chroma and 10 bits: the lowest quality that reached SSIMULACRA2 85
        # at 1280x800 took 8-45% fewer bytes than 4:2:0 at 8 bits on smooth and dark photos
        # (banding and chroma blur are what SSIMULACRA2 and the eye see first there), the same
        # on busy ones, for about 1.6x the encode time (bench/delivery.py). sharp's AVIF
        # default is 4:4:4 as well; every AVIF decoder in browsers reads AV1 High profile.
        settings={"compression": "av1", "effort": 0, "subsample_mode": "off", "bitdepth": 10},
    ),
    Format(
        ImageFormat.WEBP, "WebP", "image/webp", ("webp",),
        magic=(b"RIFF????WEBP",),
        loader="VipsForeignLoadWebpBuffer", saver="webpsave",
        alpha=True, animation=True, accept="image/webp",
        # bench/encoders.py, 18 photos at 1280 and 800 px, WebP Q80: effort 3 and 4 cost the
        # same (47 ms at 800 px), effort 2 takes half the time for 4-9% more bytes, 6 twice
        # the time for 3-4% fewer.
        settings={"effort": 4},
    ),
    Format(
        ImageFormat.JPEG, "JPEG", "image/jpeg", ("jpg", "jpeg"),
        magic=(b"\xff\xd8\xff",),
        loader="VipsForeignLoadJpegBuffer", saver="jpegsave",
        alpha=False, animation=False, accept=None,
        # The libjpeg in pyvips-binary is mozjpeg; its table 3 (N. Robidoux's, mozjpeg's own
        # default) costs no time and gave 6-8% fewer bytes at the same Q with 0.2 dB more
        # PSNR (bench/encoders.py). Trellis quantisation took 5x the time for no gain.
        settings={"quant_table": 3},
    ),
    Format(
        ImageFormat.PNG, "PNG", "image/png", ("png",),
        magic=(b"\x89PNG\r\n\x1a\n",),
        loader="VipsForeignLoadPngBuffer", saver="pngsave",
        alpha=True, animation=False, accept=None, lossy=False,
        # zlib level 6; effort only steers libimagequant when a budget asks for a palette.
        settings={"compression": 6, "effort": 4},
    ),
    Format(
        ImageFormat.GIF, "GIF", "image/gif", ("gif",),
        magic=(b"GIF87a", b"GIF89a"),
        loader="VipsForeignLoadNsgifBuffer", saver="gifsave",
        # gifsave has no quality (libimagequant picks each frame's palette), and format=auto
        # never picks GIF: a still is better as PNG, an animation as WebP (3-5x smaller).
        alpha=True, animation=True, accept=None, negotiated=False, lossy=False,
        # A still GIF's `format=original` is PNG: it keeps the palette look and the
        # transparency without a second quantisation. An animated one stays GIF (pipeline).
        original_output=ImageFormat.PNG,
    ),
    Format(
        ImageFormat.HEIC, "HEIC", "image/heic", ("heic", "heif", "hif"),
        # The major brands of HEVC-coded HEIF (ISO/IEC 23008-12 annex B); "mif1" files are
        # told apart from AVIF by their compatible brands (`heif_brand`).
        magic=tuple(b"????ftyp" + brand for brand in _HEVC_BRANDS),
        # libheif sniffs it (and reads its header), pillow-heif decodes it. It is never an
        # output: browsers other than Safari cannot show it.
        loader="VipsForeignLoadHeifBuffer", saver=None, decoder="pillow-heif",
        alpha=True, animation=False, accept=None,
        original_output=ImageFormat.JPEG,
    ),
)  # fmt: skip

FORMATS: Mapping[ImageFormat, Format] = {row.name: row for row in _ROWS}
INPUTS = tuple(row for row in _ROWS if row.is_input)
OUTPUTS = tuple(row for row in _ROWS if row.is_output)
# By libvips loader class name, the rows it claims: bytes no listed loader claims are
# never decoded.
LOADERS: Mapping[str, tuple[Format, ...]] = {
    loader: tuple(row for row in INPUTS if row.loader == loader)
    for loader in dict.fromkeys(row.loader for row in INPUTS if row.loader is not None)
}
BY_MEDIA_TYPE: Mapping[str, Format] = {row.media_type: row for row in _ROWS}
# By file name extension, lower case and without the dot ("jpg" and "jpeg" for JPEG).
BY_EXTENSION: Mapping[str, Format] = {ext: row for row in _ROWS for ext in row.extensions}
# Every spelling of an output format in `format=` and file names ("jpg" for JPEG).
SPELLINGS: Mapping[str, ImageFormat] = {
    spelling: row.name for row in OUTPUTS for spelling in (row.name, *row.extensions)
}


def original_output(source: ImageFormat) -> ImageFormat:
    """What `format=original` writes for a source in format `source`."""
    return FORMATS[source].original_output or source


def guess(data: bytes) -> ImageFormat | None:
    """The format its magic bytes suggest, without libvips; `formats.sniff` is the gate."""
    heif = heif_brand(data)
    if heif is not None:
        return heif
    for row in _ROWS:
        for signature in row.magic:
            head = data[: len(signature)]
            if len(head) == len(signature) and all(
                want in (ord("?"), got) for want, got in zip(signature, head, strict=True)
            ):
                return row.name
    return None


def heif_brand(data: bytes) -> ImageFormat | None:
    """AVIF or HEIC by the brands of a HEIF `ftyp` box; None for anything else.

    Many AVIF and HEIC files share the major brand "mif1" and differ only in their
    compatible brands, which follow the minor version (ISO/IEC 14496-12 4.3).
    """
    if data[4:8] != b"ftyp":
        return None
    size = int.from_bytes(data[0:4], "big")
    box = data[8 : min(max(size, 16), 4096)]
    brands = {box[i : i + 4] for i in (0, *range(8, len(box) - 3, 4))}
    if brands & set(_AV1_BRANDS):
        return ImageFormat.AVIF
    if brands & set(_HEVC_BRANDS):
        return ImageFormat.HEIC
    return None


def listed(rows: Iterable[Format]) -> str:
    """The rows' labels as prose: "JPEG, PNG or GIF"."""
    labels = [row.label for row in rows]
    return labels[0] if len(labels) == 1 else f"{', '.join(labels[:-1])} or {labels[-1]}"
