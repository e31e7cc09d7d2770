"""W1 (800 px JPEG q80) per photo: CPU and quality of shrink-on-load rules, and the codec floor.

    PYTHONPATH=src .venv/bin/python bench/shrink.py [--photos 10] [--repeats 5]

For server.sh's photos (the largest plasma wallpapers), renders W1 in this process under
each shrink-on-load rule and prints, per photo and on average:

- CPU ms per render (process time, best of `--repeats`: decode, resize, colour, encode);
- output bytes at q80;
- SSIMULACRA2 of the decoded-and-resized image (before any encode) against the reference,
  the source decoded whole and resized by libvips, at 800 px: what the rule costs in
  quality before the encoder adds its own loss;
- SSIMULACRA2 of the q80 output itself (decoded) against the same reference: what a
  viewer sees, the rule's loss and the encoder's together;
- the codec floor: libjpeg-turbo's djpeg at the rule's scale plus cjpeg -quality 80 of the
  800 px image (CPU time of the two processes, best of 3).

The rules: "2x" leaves the resize after the decoder's scale-down at least 2x (pixfit's
rule since issue 11, as libvips' thumbnail does, and still its rule for searched, lossless
and high qualities); "1.5x" leaves at least 1.5x (pixfit's rule since issue 14 for a
pinned lossy quality up to COARSE_DECODE_QUALITY, as W1's q80); "draft" takes the largest
scale-down that still covers the target (Pillow's `draft`, which thumbor uses).
CPU times are per process, so other load on the machine disturbs them less than wall time
but still some (shared caches, frequency); the script says how busy the machine was.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pyvips
from ssimulacra2 import compute_ssimulacra2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from server_peers import machine_busy_seconds, pick_photos, write_ppm

from pixfit.formats import Encoder
from pixfit.pipeline import COARSE_RESIZE, FINE_RESIZE, JPEG_SHRINKS
from pixfit.registry import ImageFormat
from pixfit.rendering import configure

WIDTH = 800
Rule = Callable[[float], int]
RULES: dict[str, Rule] = {
    "2x": lambda scale: next((f for f in JPEG_SHRINKS if scale >= FINE_RESIZE * f), 1),
    "1.5x": lambda scale: next((f for f in JPEG_SHRINKS if scale >= COARSE_RESIZE * f), 1),
    "draft": lambda scale: next((f for f in JPEG_SHRINKS if scale >= f), 1),
}


def resized(path: Path, shrink: int, height: int) -> pyvips.Image:
    loaded = pyvips.Image.jpegload(str(path), shrink=shrink, access="sequential")
    return loaded.thumbnail_image(WIDTH, height=height, size="force").colourspace("srgb")


def render_cpu_ms(path: Path, shrink: int, height: int, repeats: int) -> tuple[float, bytes]:
    """Best CPU ms of a whole W1 render (read, decode, resize, encode), and its output."""
    encoder = Encoder(ImageFormat.JPEG)
    best, output = float("inf"), b""
    for _ in range(repeats):
        started = time.process_time()
        output = encoder.encode(resized(path, shrink, height).copy_memory(), 80)
        best = min(best, (time.process_time() - started) * 1000)
    return best, output


def floor_cpu_ms(path: Path, shrink: int, small: Path) -> float:
    best = float("inf")
    for _ in range(3):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(
            ["djpeg", "-scale", f"1/{shrink}", "-outfile", os.devnull, str(path)], check=True
        )
        subprocess.run(["cjpeg", "-quality", "80", "-outfile", os.devnull, str(small)], check=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        best = min(best, used * 1000)
    return best


def score(reference: pyvips.Image, candidate: pyvips.Image) -> float:
    pngs = [io.BytesIO(image.pngsave_buffer(compression=1)) for image in (reference, candidate)]
    return float(compute_ssimulacra2(*pngs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    configure()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        photos = pick_photos(folder / "photos")[: args.photos]
        busy_start, wall_start = machine_busy_seconds(), time.monotonic()
        totals: dict[str, list[float]] = {name: [0.0] * 5 for name in RULES}
        print(
            "| photo | rule | shrink | CPU ms | floor ms | CPU / floor | bytes "
            "| SSIMULACRA2 before encode | after q80 |"
        )
        print("|---|---|--:|--:|--:|--:|--:|--:|--:|")
        for photo in photos:
            path = folder / "photos" / photo.name
            height = round(WIDTH * photo.height / photo.width)
            reference = resized(path, 1, height).copy_memory()
            small = folder / "small.ppm"
            write_ppm(reference, small)
            scale = photo.width / WIDTH
            for name, rule in RULES.items():
                shrink = rule(scale)
                cpu, output = render_cpu_ms(path, shrink, height, args.repeats)
                floor = floor_cpu_ms(path, shrink, small)
                quality = score(reference, resized(path, shrink, height).copy_memory())
                seen = score(reference, pyvips.Image.new_from_buffer(output, ""))
                size = len(output)
                for index, value in enumerate((cpu, floor, size, quality, seen)):
                    totals[name][index] += value
                print(
                    f"| {photo.name} {photo.width}x{photo.height} | {name} | 1/{shrink} | "
                    f"{cpu:.1f} | {floor:.1f} | {cpu / floor:.2f} | {size} | {quality:.1f} "
                    f"| {seen:.1f} |",
                    flush=True,
                )
        cores = (machine_busy_seconds() - busy_start) / (time.monotonic() - wall_start)
    count = len(photos)
    print(
        f"\nMeans over {count} photos (machine busy: {cores:.2f} cores on average, this included)"
    )
    print(
        "| rule | CPU ms | floor ms | CPU / floor | bytes | bytes / 2x "
        "| SSIMULACRA2 before encode | after q80 |"
    )
    print("|---|--:|--:|--:|--:|--:|--:|--:|")
    base_bytes = totals["2x"][2]
    for name, (cpu, floor, size, quality, seen) in totals.items():
        print(
            f"| {name} | {cpu / count:.1f} | {floor / count:.1f} | {cpu / floor:.2f} | "
            f"{size / count:.0f} | {size / base_bytes:.3f} | {quality / count:.1f} "
            f"| {seen / count:.1f} |"
        )


if __name__ == "__main__":
    main()
