"""What a GIF declares, read from its blocks without decoding a frame.

libvips' GIF loader (libnsgif) sizes its canvas from the first frame and clips the others,
so its header can say 1x1 for a file whose logical screen claims 5000x5000, or 16x16 for
one whose second frame claims 6000x6000. A browser allocates what the file declares, and
the limits should not depend on a decoder's repair, so `limits.max_animation_pixels`
counts the largest of the logical screen and every frame's extent, times the frames.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Declared",
    "declared",
]

_EXTENSION = 0x21
_IMAGE = 0x2C
_TRAILER = 0x3B


@dataclass(frozen=True, slots=True)
class Declared:
    """The canvas every frame fits in, and the frames counted."""

    width: int
    height: int
    frames: int


def declared(data: bytes) -> Declared | None:
    """The GIF's declared canvas and frame count; None if its blocks cannot be walked.

    A walk that fails leaves the data to libvips, which refuses it as corrupt (422) or reads
    what it can; a walk never raises.
    """
    if len(data) < 13 or data[:6] not in (b"GIF87a", b"GIF89a"):
        return None
    width, height = _u16(data, 6), _u16(data, 8)
    at = 13 + _colour_table(data[10])
    frames = 0
    while at < len(data):
        kind = data[at]
        if kind == _TRAILER:
            break
        if kind == _EXTENSION:
            at = _skip_sub_blocks(data, at + 2)
        elif kind == _IMAGE and at + 10 <= len(data):
            left, top, frame_width, frame_height = (_u16(data, at + 1 + 2 * i) for i in range(4))
            width, height = max(width, left + frame_width), max(height, top + frame_height)
            frames += 1
            # The descriptor (10 bytes), a local colour table, the LZW code size (1 byte).
            at = _skip_sub_blocks(data, at + 10 + _colour_table(data[at + 9]) + 1)
        else:
            break  # garbage after the last frame: what came before still counts
        if at < 0:
            break  # truncated inside a frame: count what was declared so far
    return Declared(width, height, frames)


def _u16(data: bytes, at: int) -> int:
    return int.from_bytes(data[at : at + 2], "little")


def _colour_table(flags: int) -> int:
    """Bytes of the colour table the flags byte announces."""
    return 3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0


def _skip_sub_blocks(data: bytes, at: int) -> int:
    """The offset after a chain of sub-blocks starting at `at`; -1 if it runs off the end."""
    while at < len(data):
        size = data[at]
        at += 1 + size
        if size == 0:
            return at
    return -1
