"""The cost of rotate, flip, a focal-point crop, blur and sharpen, on real photos (a benchmark,
not a test).

    .venv/bin/python bench/operations.py [--photos DIR] [--passes N] [--limit N] [--width PX]

The photos are bench/pipeline.py's (the largest JPEG of each Debian wallpaper, 2560x1600 to
5120x2880). Each is rendered to `--width` (default 1280) as JPEG at a pinned q=80, so that
the quality search does not move with the operation, once plainly and once per operation,
interleaved photo by photo. Ratios are against the plain render of the same run. rotate=90
makes a portrait of the same width, so it has more pixels to encode; rotate=180 shows what
the turn itself costs (the extra in-memory copy a turn needs).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pyvips
from pipeline import find_photos, load, measure, pixfit_variant, print_table

OPERATIONS: dict[str, dict[str, object]] = {
    "plain": {},
    "rotate=90": {"rotate": 90},
    "rotate=180": {"rotate": 180},
    "flip=hv": {"flip": "hv"},
    "cover 16:9, pos=fp:0.3,0.6": {"h_ratio": 9 / 16, "fit": "cover", "pos": "fp:0.3,0.6"},
    "cover 16:9, centre": {"h_ratio": 9 / 16, "fit": "cover"},
    "blur=2": {"blur": 2},
    "blur=20": {"blur": 20},
    "blur=100": {"blur": 100},
    "sharpen=1": {"sharpen": 1},
    "sharpen=5": {"sharpen": 5},
}


def options_for(width: int, extra: dict[str, object]) -> dict[str, object]:
    options: dict[str, object] = {"w": width, "q": 80, "format": "jpeg", **extra}
    ratio = options.pop("h_ratio", None)
    if isinstance(ratio, float):
        options["h"] = round(width * ratio)
    return options


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=None)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--width", type=int, default=1280)
    args = parser.parse_args()
    photos = load(find_photos(args.photos)[: args.limit or None])
    print(
        f"{len(photos)} photos, {args.passes} timed passes, w={args.width} q=80 JPEG, libvips "
        f"{pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}; 2 shared cores: "
        "wall times are noisy, CPU times less so"
    )
    variants = {
        name: pixfit_variant(options_for(args.width, extra)) for name, extra in OPERATIONS.items()
    }
    results = measure(photos, variants, args.passes)
    print_table(results, results[0])


if __name__ == "__main__":
    main()
