"""Perceptually optimal delivery: pixfit's pick against a brute-force optimum, by SSIMULACRA2.

    .venv/bin/python bench/delivery.py [--photos N] [--classes slow-2g,2g,...] [--before SRC]

Each photo (Debian's plasma-workspace-wallpapers) is shown in a 1280x800 box at DPR 1. Per
network class, three answers are scored by the reference `ssimulacra2` package (pip install
ssimulacra2; numpy, about 2 s a pair) at the display size, each output scaled up to it:

1. pixfit: `pixfit.render(path, {"bw": cls, "screen": "1280x800"})` with a browser's Accept;
2. before (with `--before SRC`, the `src` folder of an older checkout): the same request through
   that version's `pixfit.render`, run in a child process (no CPU figure);
3. best: this file's own brute force: widths 1280..320 by 160 (only the display width without a
   budget), AVIF effort 0, WebP effort 4 and JPEG with optimised coding, the highest quality
   that fits by binary search on real encodes (without a budget: the lowest quality whose
   reference score reaches the target).

gap = min(best reachable, target) - score. CPU ms is process time of the whole request (decode
included) and the ratio is against a fixed-quality render (q=70, 1280 px AVIF) measured in this
run. Reference scores are cached under /tmp/pixfit-delivery-cache. It also prints how well the
server's proxy (pixfit.perceptual) ranks the brute force's candidates against the reference.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pyvips
from ssimulacra2 import compute_ssimulacra2

import pixfit
from pixfit.formats import Encoder
from pixfit.perceptual import Reference
from pixfit.registry import ImageFormat

T = TypeVar("T")

WALLPAPERS = Path("/usr/share/wallpapers")
# Smooth first, then textured; all photographs (the illustrations were the proxy's fit set).
PHOTOS = (
    "DarkestHour", "Kite", "OneStandsOut", "summer_1am",
    "EveningGlow", "ColdRipple", "Path", "FallenLeaf",
)  # fmt: skip
BOX = (1280, 800)
ACCEPT = {"Accept": "image/avif,image/webp,*/*"}
CLASSES = {"slow-2g": (12_000, 50), "2g": (25_000, 60), "3g": (100_000, 70),
           "4g": (400_000, 80), "wifi": (None, 85)}  # fmt: skip
ENCODERS = [
    Encoder(f, palette=True) for f in (ImageFormat.AVIF, ImageFormat.WEBP, ImageFormat.JPEG)
]
BRUTE_WIDTHS = range(1280, 319, -160)
CACHE = Path("/tmp/pixfit-delivery-cache")
pyvips.concurrency_set(1)
pyvips.cache_set_max(0)


@dataclass(frozen=True, slots=True)
class Scored:
    size: int
    score: float  # reference SSIMULACRA2 at the display size
    proxy: float  # pixfit.perceptual at the display size
    label: str


def reference_score(photo: str, display: pyvips.Image, data: bytes) -> float:
    """The package's score of `data` scaled up to the display size, cached on disk."""
    key = hashlib.sha1(photo.encode() + data).hexdigest()
    cached = CACHE / key
    if cached.exists():
        return float(cached.read_text())
    decoded = pyvips.Image.new_from_buffer(data, "").colourspace("srgb")
    if (decoded.width, decoded.height) != (display.width, display.height):
        decoded = decoded.resize(
            display.width / decoded.width, vscale=display.height / decoded.height
        )
    pngs = [io.BytesIO(im.pngsave_buffer(compression=1)) for im in (display, decoded)]
    value = float(compute_ssimulacra2(*pngs))
    CACHE.mkdir(exist_ok=True)
    cached.write_text(repr(value))
    return value


def display_of(path: Path) -> pyvips.Image:
    return (
        pyvips.Image.thumbnail(str(path), BOX[0], height=BOX[1]).colourspace("srgb").copy_memory()
    )


@dataclass(frozen=True, slots=True)
class Scorer:
    """Scores encodes of one photo at its display size, by the reference and by the proxy."""

    photo: str
    display: pyvips.Image
    proxy: Reference

    def __call__(self, encoder: Encoder, image: pyvips.Image, quality: int) -> Scored:
        data = encoder.encode(image, quality)
        decoded = pyvips.Image.new_from_buffer(data, "")
        score = reference_score(self.photo, self.display, data)
        label = f"{image.width}px {encoder.format} q{quality}"
        return Scored(len(data), score, self.proxy.score(decoded), label)


def brute_force(scorer: Scorer, budget: int | None, target: float) -> list[Scored]:
    """Every width and format at its highest fitting quality (or lowest reaching target)."""
    display = scorer.display
    found = []
    # Without a budget only the display width: the reference's binary search on quality costs
    # 7 scores of 2 s each per candidate, and a narrower image reaches 85 only on blank skies.
    widths = [w for w in BRUTE_WIDTHS if w <= display.width] if budget else [display.width]
    for width in widths:
        image = display if width == display.width else display.resize(width / display.width)
        image = image.copy_memory()
        for encoder in ENCODERS:
            low, high = 1, 100
            if budget is None:  # the lowest quality whose reference score reaches the target
                while high - low > 1:
                    middle = (low + high) // 2
                    reaches = scorer(encoder, image, middle).score >= target
                    low, high = (low, middle) if reaches else (middle, high)
                found.append(scorer(encoder, image, high))
                continue
            if len(encoder.encode(image, low)) > budget:
                found.append(scorer(encoder, image, low))
                continue
            while high - low > 1:
                middle = (low + high) // 2
                fits = len(encoder.encode(image, middle)) <= budget
                low, high = (middle, high) if fits else (low, middle)
            found.append(scorer(encoder, image, low))
    return found


def spearman(a: list[float], b: list[float]) -> float:
    def ranks(values: list[float]) -> list[float]:
        order = sorted(range(len(values)), key=values.__getitem__)
        out = [0.0] * len(values)
        for rank, index in enumerate(order):
            out[index] = rank
        return out

    ra, rb = ranks(a), ranks(b)
    ma, mb = statistics.fmean(ra), statistics.fmean(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb, strict=True))
    var = (sum((x - ma) ** 2 for x in ra) * sum((y - mb) ** 2 for y in rb)) ** 0.5
    return cov / var if var else 0.0


def timed(function: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[T, float]:
    """The result and the process CPU ms of one call."""
    start = time.process_time()
    result = function(*args, **kwargs)
    return result, (time.process_time() - start) * 1000


# Renders one request with whatever pixfit the child's PYTHONPATH finds; bytes to stdout.
_CHILD = """
import json, sys, pixfit
request = json.loads(sys.argv[1])
out = pixfit.render(request["path"], request["options"], hints=request["hints"])
sys.stdout.buffer.write(out.data)
"""


def render_before(source: Path, path: Path, options: dict[str, str]) -> bytes:
    """The same request through an older checkout's `pixfit.render`."""
    request = json.dumps({"path": str(path), "options": options, "hints": ACCEPT})
    env = {**os.environ, "PYTHONPATH": str(source)}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, request], env=env, capture_output=True, check=True
    )
    return done.stdout


def summarise(
    rows: dict[str, list[dict[str, float]]],
    who: tuple[str, ...],
    pairs: list[tuple[float, float]],
    picked: str,
) -> None:
    """The per-class table and the proxy's agreement with the reference."""
    print("gap = min(best reachable, target) - score; cpu x against q=70 at the same size;")
    print("B/before: geometric mean over photos of bytes against `before` (1.00 without it)")
    print(f"{'class':8s} {'':6s} {'gap mean':>8s} {'worst':>6s} {'score':>6s} {'mean B':>8s}"
          f" {'B/before':>8s} {'target':>7s} {'over':>5s} {'cpu x':>6s} {'worst':>6s}")  # fmt: skip
    for cls, items in rows.items():
        n = len(items)
        for label in who:
            gaps = [r[f"{label}_gap"] for r in items]
            cpus = [r[f"{label}_cpu"] for r in items]
            sizes = [r[f"{label}_bytes"] for r in items]
            ratios = [b / r.get("before_bytes", b) for b, r in zip(sizes, items, strict=True)]
            print(
                f"{cls:8s} {label:6s} {statistics.fmean(gaps):8.2f} {max(gaps):6.2f}"
                f" {statistics.fmean(r[f'{label}_score'] for r in items):6.1f}"
                f" {statistics.fmean(sizes):8.0f} {statistics.geometric_mean(ratios):8.2f}"
                f" {sum(bool(r[f'{label}_hit']) for r in items)}/{n:<5d}"
                f" {sum(bool(r[f'{label}_over']) for r in items):5d}"
                f" {statistics.fmean(cpus):6.2f} {max(cpus):6.2f}"
            )
    proxies, refs = zip(*pairs, strict=True)
    errors = [abs(r["proxy_error"]) for items in rows.values() for r in items]
    rho = spearman(list(proxies), list(refs))
    print(
        f"\nproxy vs reference over {len(pairs)} brute-force candidates: Spearman {rho:.3f};"
        f" {picked}; |proxy - reference| on pixfit's picks: {statistics.fmean(errors):.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--photos", type=int, default=len(PHOTOS), help="use the first N photos")
    parser.add_argument("--classes", default=",".join(CLASSES), help="comma-separated classes")
    parser.add_argument("--before", type=Path, help="src folder of an older pixfit to compare")
    args = parser.parse_args()
    classes = args.classes.split(",")
    who = ("before", "pixfit", "best") if args.before else ("pixfit", "best")
    rows: dict[str, list[dict[str, float]]] = {c: [] for c in classes}
    pairs: list[tuple[float, float]] = []
    same = picks = 0
    started = time.perf_counter()
    pixfit.configure()
    for name in PHOTOS[: args.photos]:
        path = max((WALLPAPERS / name / "contents/images").glob("*.jpg"))
        display = display_of(path)
        proxy = Reference.of(display)
        fixed = {"screen": "1280x800", "q": "70"}
        for cls in classes:
            budget, target = CLASSES[cls]
            request = {"bw": cls, "screen": "1280x800"}
            _, fixed_ms = timed(pixfit.render, path, fixed, hints=ACCEPT)
            out, ms = timed(pixfit.render, path, request, hints=ACCEPT)
            brute = brute_force(Scorer(name, display, proxy), budget, target)
            fitting = [s for s in brute if budget is None or s.size <= budget] or brute
            pairs += [(s.proxy, s.score) for s in brute]
            if budget is not None:
                picks += 1
                same += max(fitting, key=lambda s: s.proxy) is max(fitting, key=lambda s: s.score)
            reaching = [s for s in fitting if s.score >= target]
            best = (
                min(reaching, key=lambda s: s.size)
                if reaching
                else max(fitting, key=lambda s: s.score)
            )
            reachable = min(max(s.score for s in fitting), target)
            outputs = {"pixfit": out.data}
            if args.before:
                outputs["before"] = render_before(args.before, path, request)
            row: dict[str, float] = {
                "best_gap": 0.0, "best_bytes": best.size, "best_hit": best.score >= target,
                "best_score": best.score,
                "best_over": False, "best_cpu": 0.0, "pixfit_cpu": ms / fixed_ms,
                "before_cpu": 0.0, "proxy_error": (out.score or 0.0) - 0.0,
            }  # fmt: skip
            line = f"  {name:12s} {cls:7s}"
            for label, data in outputs.items():
                score = reference_score(name, display, data)
                row[f"{label}_gap"] = reachable - score
                row[f"{label}_score"] = score
                row[f"{label}_bytes"] = len(data)
                row[f"{label}_hit"] = score >= target
                row[f"{label}_over"] = budget is not None and len(data) > budget
                line += f" | {label} {score:6.1f} {len(data):7d} B"
                if label == "pixfit":
                    row["proxy_error"] = (out.score or 0.0) - score
                    line += (
                        f" {out.width}px {out.media_type.split('/')[1]} q{out.quality}"
                        f" (proxy {out.score or 0.0:5.1f}, x{ms / fixed_ms:.1f} CPU)"
                    )
            print(f"{line} | best {best.score:6.1f} {best.size:7d} B {best.label}", flush=True)
            rows[cls].append(row)
    print(f"\n{args.photos} photos in a 1280x800 box, DPR 1; scores are reference SSIMULACRA2;")
    summarise(rows, who, pairs, f"same best pick {same}/{picks}")
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
