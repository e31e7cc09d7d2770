"""The cost of converting embedded ICC profiles to sRGB, on real photos (a benchmark, not a test).

    .venv/bin/python bench/colour.py [--photos DIR] [--passes N] [--limit N]

The photos are bench/pipeline.py's (the largest JPEG of each Debian wallpaper, 2560x1600 to
5120x2880). Each is rendered three ways, interleaved photo by photo: with no ICC profile, with
libvips' built-in sRGB profile (which pixfit recognises and skips) and with its Display P3
profile (which it converts). The profile goes into an APP2 segment of the same JPEG bytes
(any profile the photo had is taken out), so only the profile differs.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import pyvips
from pipeline import Photo, Variant, find_photos, load, measure, print_table

import pixfit

ICC_MARKER = b"ICC_PROFILE\0"
SIZES = ({"w": 800, "q": 80, "format": "jpeg"}, {"w": 1920, "q": 80, "format": "jpeg"})


def builtin_profile(name: str) -> bytes:
    """The bytes of one of libvips' built-in profiles ("srgb", "p3", "cmyk")."""
    image = pyvips.Image.black(1, 1, bands=3).copy(interpretation="srgb")
    return bytes(image.icc_transform(name).get("icc-profile-data"))


def with_profile(jpeg: bytes, profile: bytes | None) -> bytes:
    """The same JPEG with its ICC segments (APP2) replaced by `profile`, or removed."""
    start, end = 2, 2
    kept = []
    # APPn segments (0xe0-0xef) follow SOI; each has a 2-byte length that counts itself.
    while jpeg[end] == 0xFF and 0xE0 <= jpeg[end + 1] <= 0xEF:
        length = int.from_bytes(jpeg[end + 2 : end + 4], "big")
        segment = jpeg[end : end + 2 + length]
        if not (jpeg[end + 1] == 0xE2 and segment[4:].startswith(ICC_MARKER)):
            kept.append(segment)
        end += 2 + length
    if profile is not None:
        size = 2 + len(ICC_MARKER) + 2 + len(profile)
        kept.append(b"\xff\xe2" + size.to_bytes(2, "big") + ICC_MARKER + b"\x01\x01" + profile)
    return jpeg[:start] + b"".join(kept) + jpeg[end:]


def variant(sources: dict[bytes, bytes], options: dict[str, object]) -> Variant:
    """Render the prepared source for a photo, so no byte juggling is timed."""

    def render(data: bytes) -> bytes:
        return pixfit.render(sources[data], options).data

    return render


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=None)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--limit", type=int, default=0)
    args = parser.parse_args()
    paths = find_photos(args.photos)
    photos: list[Photo] = load(paths[: args.limit or None])
    profiles = {"none": None, "sRGB": builtin_profile("srgb"), "P3": builtin_profile("p3")}
    sources = {
        name: {photo.data: with_profile(photo.data, profile) for photo in photos}
        for name, profile in profiles.items()
    }
    print(f"{len(photos)} photos, {args.passes} timed passes, libvips {pyvips.version(0)}."
          f"{pyvips.version(1)}.{pyvips.version(2)}")  # fmt: skip
    for options in SIZES:
        print(f"\npixfit.render {options}, by embedded profile")
        results = measure(
            photos,
            {f"{name} profile": variant(sources[name], options) for name in profiles},
            args.passes,
        )
        print_table(results, results[0])
        none = results[0]
        for result in results[1:]:
            added = sorted(b - a for a, b in zip(none.cpu, result.cpu, strict=True))
            print(
                f"  {result.name}: CPU ms added per render, by photo: median"
                f" {statistics.median(added):.1f}, range {added[0]:.1f}..{added[-1]:.1f}"
            )


if __name__ == "__main__":
    main()
