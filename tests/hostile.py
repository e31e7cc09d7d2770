"""Hostile images, generated in code: each generator returns `(file_name, bytes)`.

Shared by tests/test_hostile.py, tests/test_fuzz.py, bench/fuzz.py and bench/soak.py (the
benches put the repository root on sys.path and import `tests.hostile`). Nothing here is
committed as a binary: every input is built from pyvips, pillow-heif, zlib and struct at run time,
deterministically.
"""

from __future__ import annotations

import io
import random
import socket
import struct
import tempfile
import threading
import zlib
from collections.abc import Callable
from pathlib import Path

import pillow_heif
import pyvips
from PIL import Image

Case = tuple[str, bytes]


# ---------------------------------------------------------------------------------------
# Valid images to start from


def noisy(width: int, height: int, seed: int = 0, bands: int = 3) -> pyvips.Image:
    """A photo-like sRGB image: gradients under per-channel grain (compresses like a photo)."""
    xy = pyvips.Image.xyz(width, height)
    x, y = xy[0], xy[1]
    base = (x * (255 / width)).bandjoin([y * (255 / height), (x + y) * (127 / (width + height))])
    grain = pyvips.Image.gaussnoise(width, height, sigma=20 + seed % 7, mean=0)
    noise = grain.bandjoin([grain.rot180().flip("horizontal"), grain.flip("vertical")])
    image = (base + noise).cast("uchar").copy(interpretation="srgb")
    if bands == 4:
        image = image.bandjoin((x * (255 / width)).cast("uchar"))
    return image


def jpeg(width: int = 64, height: int = 48, seed: int = 0, **save: object) -> bytes:
    """A baseline JPEG (SOF0), unless `save` asks for more."""
    return bytes(noisy(width, height, seed).jpegsave_buffer(Q=85, **save))


def png(width: int = 64, height: int = 48, seed: int = 0, alpha: bool = False) -> bytes:
    """A PNG, RGB or RGBA."""
    return bytes(noisy(width, height, seed, 4 if alpha else 3).pngsave_buffer(compression=6))


def webp(width: int = 64, height: int = 48, seed: int = 0) -> bytes:
    """A lossy WebP."""
    return bytes(noisy(width, height, seed).webpsave_buffer(Q=80))


def avif(width: int = 64, height: int = 48, seed: int = 0) -> bytes:
    """An AVIF (AV1 in HEIF), at the fastest effort."""
    return bytes(noisy(width, height, seed).heifsave_buffer(Q=50, compression="av1", effort=0))


def gif_frames(frames: int, width: int = 8, height: int = 8) -> bytes:
    """An animated GIF with `frames` distinct frames, written by hand.

    pyvips' encoder merges frames and takes seconds for a thousand; this writer emits
    uncompressed LZW (a clear code every 128 literals keeps codes 9 bits wide), so a
    1001-frame file takes milliseconds. Every frame's pixels differ from every other's.
    """
    palette = bytes(channel for i in range(256) for channel in (i, (i * 7) % 256, 255 - i))
    out = bytearray(b"GIF89a" + struct.pack("<HHBBB", width, height, 0xF7, 0, 0) + palette)
    # Netscape loop extension: loop forever.
    out += b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
    for index in range(frames):
        pixels = [
            (index * 31 + p * (1 + index % 13) + (index >> 8) * 101) % 256
            for p in range(width * height)
        ]
        out += b"\x21\xf9\x04\x00" + struct.pack("<H", 2) + b"\x00\x00"  # 20 ms per frame
        out += b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0)
        out += b"\x08" + _sub_blocks(_lzw_literal(pixels))
    return bytes(out + b"\x3b")


def _lzw_literal(pixels: list[int]) -> bytes:
    clear, end = 256, 257
    codes = []
    for start in range(0, len(pixels), 128):
        codes.append(clear)
        codes.extend(pixels[start : start + 128])
    codes.append(end)
    bits = 0
    count = 0
    out = bytearray()
    for code in codes:
        bits |= code << count
        count += 9
        while count >= 8:
            out.append(bits & 0xFF)
            bits >>= 8
            count -= 8
    if count:
        out.append(bits & 0xFF)
    return bytes(out)


def _sub_blocks(data: bytes) -> bytes:
    blocks = b"".join(
        bytes([len(data[i : i + 255])]) + data[i : i + 255] for i in range(0, len(data), 255)
    )
    return blocks + b"\x00"


def gif_clip(frames: int = 8, width: int = 240, height: int = 160, step: int = 8) -> bytes:
    """An animated GIF panning across a photo-like image, 50 ms a frame, looping forever:
    what a screen recording or a clip cut from a video looks like. Written by Pillow."""
    scene = noisy(width + step * frames, height, seed=3)
    shots = [
        Image.frombytes(
            "RGB", (width, height), scene.crop(step * i, 0, width, height).write_to_memory()
        )
        for i in range(frames)
    ]
    buffer = io.BytesIO()
    shots[0].save(buffer, "GIF", save_all=True, append_images=shots[1:], duration=50, loop=0)
    return buffer.getvalue()


def gif(width: int = 64, height: int = 48, seed: int = 0) -> bytes:
    """A single-frame GIF, quantised by pyvips."""
    return bytes(noisy(width, height, seed).gifsave_buffer())


# ---------------------------------------------------------------------------------------
# Over the limits: 413


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_huge_ihdr(width: int = 100_000, height: int = 100_000) -> Case:
    """A PNG whose IHDR (with a correct CRC) claims 100000x100000 grey pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    # A few rows of zeros: enough to look like a start, nowhere near the claimed size.
    idat = zlib.compress(b"\x00" * (width + 1) * 4, 9)
    data = (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )
    return f"huge-ihdr-{width}x{height}.png", data


def jpeg_huge_sof(width: int = 65_500, height: int = 65_500) -> Case:
    """A small valid JPEG with its SOF0 height and width patched to 65500x65500."""
    data = bytearray(jpeg(32, 32))
    sof = data.index(b"\xff\xc0")
    # FFC0, length (2), precision (1), height (2), width (2)
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return f"huge-sof-{width}x{height}.jpg", bytes(data)


def gif_many_frames(frames: int = 1001) -> Case:
    return f"frames-{frames}.gif", gif_frames(frames)


def gif_declared(screen: tuple[int, int], frames: list[tuple[int, int, int, int]]) -> bytes:
    """A GIF whose logical screen and frames (left, top, width, height) claim these sizes.

    Each frame carries at most 64 pixels, however large it claims to be.
    """
    width, height = screen
    out = bytearray(b"GIF89a" + struct.pack("<HHBBB", width, height, 0xF7, 0, 0) + bytes(768))
    out += b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
    for left, top, frame_width, frame_height in frames:
        out += b"\x21\xf9\x04\x00" + struct.pack("<H", 5) + b"\x00\x00"
        out += b"\x2c" + struct.pack("<HHHHB", left, top, frame_width, frame_height, 0)
        pixels = [i % 256 for i in range(min(frame_width * frame_height, 64))]
        out += b"\x08" + _sub_blocks(_lzw_literal(pixels))
    return bytes(out + b"\x3b")


def gif_huge_screen(frames: int = 10) -> Case:
    """A 1 KB GIF whose logical screen claims 5000x5000 (25 MP) and whose frames are 1x1.

    libnsgif sizes its canvas from the first frame (1x1 here), but a browser allocates the
    screen: the frames together claim 250 MP, over limits.max_animation_pixels.
    """
    return "huge-screen.gif", gif_declared((5000, 5000), [(0, 0, 1, 1)] * frames)


def gif_mismatched_frames() -> Case:
    """A 16x16 GIF whose second frame claims 6000x6000 and third 1x1 at (4000, 4000)."""
    frames = [(0, 0, 16, 16), (0, 0, 6000, 6000), (4000, 4000, 1, 1)]
    return "mismatched-frames.gif", gif_declared((16, 16), frames)


def webp_animated(width: int = 48, height: int = 32, frames: int = 4) -> bytes:
    """An animated WebP: `frames` distinct noisy frames, 80 ms each, looping forever."""
    strip = pyvips.Image.arrayjoin(
        [noisy(width, height, seed) for seed in range(frames)], across=1
    ).copy()
    strip.set_type(pyvips.GValue.gint_type, "page-height", height)
    strip.set_type(pyvips.GValue.array_int_type, "delay", [80] * frames)
    strip.set_type(pyvips.GValue.gint_type, "loop", 0)
    return bytes(strip.webpsave_buffer(Q=80))


def heic(width: int = 64, height: int = 48, seed: int = 0) -> bytes:
    """A HEIC (HEVC in HEIF), encoded by pillow-heif."""
    image = noisy(width, height, seed)
    heif = pillow_heif.from_bytes("RGB", (width, height), image.write_to_memory())
    buffer = io.BytesIO()
    heif.save(buffer, quality=70)
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------
# Not an image pixfit serves: 415


def empty() -> Case:
    return "empty.jpg", b""


def text_as_jpeg() -> Case:
    return "text.jpg", b"This is not a JPEG, whatever its name says.\n" * 20


def svg_xxe(port: int) -> Case:
    """An SVG with an external entity on /etc/passwd and an image on 127.0.0.1:`port`."""
    svg = f"""<?xml version="1.0" standalone="no"?>
<!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"
     width="400" height="300" viewBox="0 0 400 300">
  <text x="10" y="20">&x;</text>
  <image href="http://127.0.0.1:{port}/x" xlink:href="http://127.0.0.1:{port}/x"
         x="0" y="0" width="400" height="300"/>
</svg>
"""
    return "xxe.svg", svg.encode()


def pdf() -> Case:
    """A minimal one-page PDF with a correct cross-reference table."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 100] >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return "document.pdf", bytes(out)


def postscript() -> Case:
    return "drawing.eps", (
        b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\n"
        b"newpath 0 0 moveto 100 100 lineto stroke\nshowpage\n%%EOF\n"
    )


def matlab() -> Case:
    """A MATLAB 5 .mat header (116 bytes of text, subsystem offset, version, endian)."""
    text = b"MATLAB 5.0 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024"
    header = text.ljust(116, b" ") + b"\x00" * 8 + struct.pack("<H", 0x0100) + b"IM"
    # One miMATRIX element: an 8x8 double array of zeros named "a".
    flags = struct.pack("<IIII", 6, 8, 6, 0)  # miUINT32, 8 bytes: class double
    dims = struct.pack("<IIii", 5, 8, 8, 8)  # miINT32, 8 bytes: 8 x 8
    name = struct.pack("<II", 1, 1) + b"a" + b"\x00" * 7  # miINT8 "a", padded to 8
    real = struct.pack("<II", 9, 8 * 64) + b"\x00" * 8 * 64  # miDOUBLE
    body = flags + dims + name + real
    return "matrix.mat", header + struct.pack("<II", 14, len(body)) + body


def fits() -> Case:
    """A FITS primary HDU: 2880-byte header of 80-column cards, then 8x8 bytes of data."""
    cards = [
        "SIMPLE  =                    T",
        "BITPIX  =                    8",
        "NAXIS   =                    2",
        "NAXIS1  =                    8",
        "NAXIS2  =                    8",
        "END",
    ]
    header = "".join(card.ljust(80) for card in cards).ljust(2880).encode("ascii")
    return "image.fits", header + bytes(range(64)).ljust(2880, b"\x00")


def tiff() -> Case:
    return "image.tif", bytes(noisy(8, 8).write_to_buffer(".tif"))


def ppm() -> Case:
    """A binary PPM (P6); the wheel has a PPM loader but no saver, so it is written by hand."""
    return "image.ppm", b"P6\n8 8\n255\n" + bytes(range(8 * 8 * 3))


def csv() -> Case:
    return "matrix.csv", bytes(pyvips.Image.black(8, 8).write_to_buffer(".csv"))


def vips_matrix() -> Case:
    """A vips text matrix (header line "8 8", then rows); libvips sniffs it from bytes."""
    return "kernel.mat", bytes(pyvips.Image.black(8, 8).write_to_buffer(".mat"))


def vips_native() -> Case:
    """libvips' own format; its saver only writes to files, so it goes via a temp file."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "image.v"
        noisy(8, 8).write_to_file(str(path))
        return "image.v", path.read_bytes()


# ---------------------------------------------------------------------------------------
# Corrupt: 422 (or a 200 where the decoder copes)


def truncated_jpeg() -> Case:
    data = bytes(noisy(800, 600).jpegsave_buffer(Q=90))
    return "truncated.jpg", data[: len(data) // 2]


def truncated_png() -> Case:
    data = bytes(noisy(800, 600).pngsave_buffer(compression=6))
    return "truncated.png", data[: len(data) // 2]


def jpeg_garbage_icc() -> Case:
    """A JPEG carrying an ICC APP2 segment whose profile bytes are garbage."""
    image = noisy(400, 300).copy()
    garbage = random.Random(7).randbytes(3000)
    image.set_type(pyvips.GValue.blob_type, "icc-profile-data", b"garbage" + garbage)
    return "garbage-icc.jpg", bytes(image.jpegsave_buffer(Q=85))


def png_garbage_icc() -> Case:
    """A PNG with an iCCP chunk (correct CRC) holding a deflated garbage profile."""
    data = bytearray(png(400, 300))
    garbage = random.Random(8).randbytes(2000)
    chunk = _png_chunk(b"iCCP", b"bad\x00\x00" + zlib.compress(b"garbage" + garbage))
    ihdr_end = 8 + 25
    return "garbage-icc.png", bytes(data[:ihdr_end] + chunk + data[ihdr_end:])


def jpeg_huge_app_segments(segments: int = 64) -> Case:
    """A JPEG with `segments` maximal (64 KB) APPn segments spliced in after SOI (~4 MB)."""
    data = jpeg(400, 300)
    rng = random.Random(9)
    spliced = bytearray(data[:2])
    for index in range(segments):
        marker = 0xE1 + index % 15  # APP1..APP15
        body = (b"Exif\x00\x00" if marker == 0xE1 else b"") + rng.randbytes(65533 - 6)
        spliced += struct.pack(">BBH", 0xFF, marker, len(body) + 2) + body
    return "huge-app-segments.jpg", bytes(spliced + data[2:])


def jpeg_huge_exif() -> Case:
    """A JPEG whose APP1 Exif segment is a 64 KB TIFF structure with a huge IFD count."""
    data = jpeg(400, 300)
    tiff_header = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 0xFFFF)
    entries = b"".join(struct.pack("<HHII", 0x010F, 2, 0x7FFFFFFF, 8) for _ in range(5000))
    body = (b"Exif\x00\x00" + tiff_header + entries)[:65533]
    segment = struct.pack(">BBH", 0xFF, 0xE1, len(body) + 2) + body
    return "huge-exif.jpg", data[:2] + segment + data[2:]


# ---------------------------------------------------------------------------------------
# Valid but extreme: 200


def strip(width: int, height: int) -> Case:
    """A valid PNG strip, such as 1x30000."""
    image = (pyvips.Image.xyz(width, height)[1] % 256).cast("uchar")
    image = image.bandjoin([image, image]).copy(interpretation="srgb")
    return f"strip-{width}x{height}.png", bytes(image.pngsave_buffer())


def png_tall_strip(height: int) -> Case:
    """A 1 x `height` 1-bit PNG of zeros: tens of KB however tall (a decode-time bomb)."""
    compressor = zlib.compressobj(9)
    rows = b"\x00\x00"  # filter byte + one byte holding the 1-bit pixel
    parts = [compressor.compress(rows * 65536) for _ in range(height // 65536)]
    parts += [compressor.compress(rows * (height % 65536)), compressor.flush()]
    data = (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 1, height, 1, 0, 0, 0, 0))
        + _png_chunk(b"IDAT", b"".join(parts))
        + _png_chunk(b"IEND", b"")
    )
    return f"strip-1x{height}.png", data


def gif_huge_frame(width: int = 10_000, height: int = 10_000) -> Case:
    """A GIF under 1 KB whose one frame claims width x height but holds 100 pixels.

    Within max_pixels, so it is decoded: the GIF decoder allocates the whole RGBA frame
    (400 MB at 10000x10000) and fills in what the data leaves out.
    """
    out = bytearray(b"GIF89a" + struct.pack("<HHBBB", width, height, 0xF7, 0, 0) + bytes(768))
    out += b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0)
    out += b"\x08" + _sub_blocks(_lzw_literal([0] * 100)) + b"\x3b"
    return f"huge-frame-{width}x{height}.gif", bytes(out)


def jpeg_progressive_huge_sof(width: int = 10_000, height: int = 10_000) -> Case:
    """A 1 KB progressive JPEG whose SOF2 claims width x height.

    Within max_pixels, so it is decoded: libjpeg buffers the coefficients of the whole
    claimed image for a progressive scan, even when it decodes at 1/8 scale.
    """
    data = bytearray(jpeg(32, 32, interlace=True))
    sof = data.index(b"\xff\xc2")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return f"progressive-sof-{width}x{height}.jpg", bytes(data)


# ---------------------------------------------------------------------------------------
# Mutation: the bit-flip variants of the suite and the fuzzer's operators


def seeds() -> dict[str, bytes]:
    """Small valid images of each served format, the fuzzers' starting points."""
    return {
        "jpeg": jpeg(64, 48),
        "jpeg-progressive": jpeg(48, 40, seed=1, interlace=True, optimize_coding=True),
        "png": png(64, 48),
        "png-alpha": png(40, 30, seed=2, alpha=True),
        "png-interlaced": bytes(noisy(40, 30, 3).pngsave_buffer(interlace=True)),
        "webp": webp(64, 48),
        "gif": gif(48, 36),
        "gif-animated": gif_frames(3, 16, 12),
        "webp-animated": webp_animated(24, 16, 3),
        "avif": avif(64, 48),
        "heic": heic(64, 48),
    }


def bit_flips(data: bytes, seed: int, skip: int = 20) -> bytes:
    """`data` with 1-20 bits flipped after its first `skip` bytes, chosen by `seed`."""
    rng = random.Random(seed)
    out = bytearray(data)
    for _ in range(rng.randint(1, 20)):
        position = rng.randrange(skip, len(out))
        out[position] ^= 1 << rng.randrange(8)
    return bytes(out)


def _flip(rng: random.Random, data: bytearray, _pool: list[bytes]) -> bytearray:
    for _ in range(rng.randint(1, 8)):
        if data:
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    return data


def _set_byte(rng: random.Random, data: bytearray, _pool: list[bytes]) -> bytearray:
    if data:
        data[rng.randrange(len(data))] = rng.choice((0x00, 0xFF, 0x7F, 0x80, rng.randrange(256)))
    return data


def _insert(rng: random.Random, data: bytearray, _pool: list[bytes]) -> bytearray:
    at = rng.randrange(len(data) + 1)
    data[at:at] = rng.randbytes(rng.randint(1, 64))
    return data


def _delete(rng: random.Random, data: bytearray, _pool: list[bytes]) -> bytearray:
    if len(data) > 1:
        at = rng.randrange(len(data))
        del data[at : at + rng.randint(1, 64)]
    return data


def _duplicate(rng: random.Random, data: bytearray, _pool: list[bytes]) -> bytearray:
    """Copy a chunk of the file somewhere else in it (repeats markers, chunks, boxes)."""
    if len(data) > 2:
        start = rng.randrange(len(data))
        chunk = data[start : start + rng.randint(1, 512)]
        at = rng.randrange(len(data) + 1)
        data[at:at] = chunk * rng.randint(1, 4)
    return data


def _truncate(rng: random.Random, data: bytearray, _pool: list[bytes]) -> bytearray:
    return data[: rng.randrange(len(data) + 1)] if data else data


def _splice(rng: random.Random, data: bytearray, pool: list[bytes]) -> bytearray:
    """The head of this input with the tail of another seed."""
    other = rng.choice(pool)
    return data[: rng.randrange(len(data) + 1)] + other[rng.randrange(len(other) + 1) :]


def _interesting_int(rng: random.Random, data: bytearray, _pool: list[bytes]) -> bytearray:
    """Overwrite 2 or 4 bytes with a boundary value (sizes, lengths, offsets)."""
    width = rng.choice((2, 4))
    if len(data) >= width:
        value = rng.choice((0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF))
        value &= (1 << (8 * width)) - 1
        at = rng.randrange(len(data) - width + 1)
        data[at : at + width] = value.to_bytes(width, rng.choice(("big", "little")))
    return data


MUTATORS: dict[str, Callable[[random.Random, bytearray, list[bytes]], bytearray]] = {
    "flip": _flip,
    "set-byte": _set_byte,
    "insert": _insert,
    "delete": _delete,
    "duplicate": _duplicate,
    "truncate": _truncate,
    "splice": _splice,
    "interesting-int": _interesting_int,
}


def mutate(rng: random.Random, data: bytes, pool: list[bytes]) -> tuple[bytes, list[str]]:
    """`data` after 1-4 random mutations; also the names of the mutations applied."""
    out = bytearray(data)
    applied = []
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4))):
        name = rng.choice(list(MUTATORS))
        out = MUTATORS[name](rng, out, pool)
        applied.append(name)
    return bytes(out), applied


# ---------------------------------------------------------------------------------------
# Everything, for the soak


def all_cases(port: int = 9) -> list[Case]:
    """Every hostile file above (the SVG's image points at 127.0.0.1:`port`)."""
    return [
        png_huge_ihdr(),
        jpeg_huge_sof(),
        gif_many_frames(),
        gif_many_frames(10_000),
        gif_huge_screen(),
        gif_mismatched_frames(),
        empty(),
        text_as_jpeg(),
        svg_xxe(port),
        pdf(),
        postscript(),
        matlab(),
        fits(),
        tiff(),
        ppm(),
        csv(),
        vips_matrix(),
        vips_native(),
        truncated_jpeg(),
        truncated_png(),
        jpeg_garbage_icc(),
        png_garbage_icc(),
        jpeg_huge_app_segments(),
        jpeg_huge_exif(),
        strip(1, 30000),
        strip(30000, 1),
        gif_huge_frame(),
        jpeg_progressive_huge_sof(),
        ("frames-50.gif", gif_frames(50, 64, 48)),
        ("animated.webp", webp_animated()),
        ("photo.heic", heic()),
    ]


class Listener:
    """A TCP listener on 127.0.0.1 that counts the connections it receives.

    The hostile SVG points at it: any connection would mean a loader followed a link.
    """

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.socket.settimeout(0.1)
        self.port = self.socket.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self.socket.accept()
            except TimeoutError:
                continue
            self.connections += 1
            connection.close()

    def close(self) -> None:
        """Stop accepting and close the socket."""
        self._stop.set()
        self._thread.join()
        self.socket.close()
