"""Benchmark the encoder and libvips settings pixfit has to choose (a benchmark, not a test).

    .venv/bin/python bench/encoders.py [--photos DIR] [--passes N] [--limit N] [--avif-limit N]

The photos are those of bench/pipeline.py: by default the largest JPEG of each wallpaper in
Debian's plasma-workspace-wallpapers. Each is thumbnailed once up front and held in memory, so
sections 1-3 time the encoder alone, by wall clock and by process CPU time. Variants interleave
photo by photo, the order rotating by photo and pass, so machine drift hits every side alike;
every ratio is against a reference measured in this run, pixfit's current setting, marked "ref".
Like the server, this runs libvips with concurrency 1 and no operation cache.

1. JPEG q80 at 1280 and 800 px: optimize_coding, progressive, and mozjpeg's options
   (trellis_quant, overshoot_deringing, optimize_scans, quant_table), after a check that
   this libvips' libjpeg is mozjpeg at all.
2. WebP q80 at 800 px: effort 0 to 6, and smart_subsample.
3. AVIF (AV1) q60 at 800 px: effort 0, 1, 2 and 4, on the first --avif-limit photos.
4. libvips' operation cache, cache_set_max(0) against 100, each photo rendered twice in a row.
5. libvips concurrency 1 against 2 for a whole render (thumbnail_buffer + jpegsave_buffer).

The same Q is not the same quality across these settings, so sections 1-3 also give PSNR
against the unencoded thumbnail, and the bytes each variant takes relative to what the reference
needs for the same PSNR (the reference encoded over a range of Q, interpolated per photo).
Sections 4 and 5 run each setting in a fresh process, so its peak RSS and settings are its own.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import pyvips
from pipeline import WALLPAPERS, Photo, find_photos, load

from pixfit.registry import FORMATS, ImageFormat

# pixfit's own settings, from its format registry: the reference rows below.
JPEG_QUANT_TABLE = FORMATS[ImageFormat.JPEG].settings["quant_table"]
WEBP_EFFORT = FORMATS[ImageFormat.WEBP].settings["effort"]
AVIF_EFFORT = FORMATS[ImageFormat.AVIF].settings["effort"]
JPEG_Q = 80
WEBP_Q = 80
AVIF_Q = 60
JPEG_WIDTHS = (1280, 800)
WIDTH = 800  # WebP, AVIF and the whole renders of sections 4 and 5
# The Q over which a reference is encoded to find its bytes at a given PSNR. JPEG stops
# below 90, where libvips turns chroma subsampling off and the curve jumps.
JPEG_GRID = range(60, 90, 2)
WEBP_GRID = range(60, 100, 5)
AVIF_GRID = range(40, 85, 5)
CACHE_MAX = 100  # pyvips' default operation cache size
RENDERS_PER_PHOTO = 2  # in a row: the repeat is the request a cache could answer

Encode = Callable[[pyvips.Image, int], bytes]  # image, Q -> encoded bytes
Curve = list[tuple[float, float]]  # (PSNR dB, log bytes) per Q, sorted by PSNR


def jpeg(**options: object) -> Encode:
    return lambda image, q: bytes(image.jpegsave_buffer(Q=q, keep="none", **options))


def webp(**options: object) -> Encode:
    return lambda image, q: bytes(image.webpsave_buffer(Q=q, keep="none", **options))


def avif(effort: int) -> Encode:
    return lambda image, q: bytes(
        image.heifsave_buffer(Q=q, keep="none", compression="av1", effort=effort)
    )


OPT = {"optimize_coding": True, "quant_table": JPEG_QUANT_TABLE}
PROGRESSIVE = {**OPT, "interlace": True}
JPEG_REF = f"optimize_coding, quant_table={JPEG_QUANT_TABLE} (ref, pixfit)"
JPEG_VARIANTS = {
    JPEG_REF: jpeg(**OPT),
    "baseline Huffman (optimize_coding off)": jpeg(quant_table=JPEG_QUANT_TABLE),
    "progressive (interlace)": jpeg(**PROGRESSIVE),
    "trellis_quant": jpeg(**OPT, trellis_quant=True),
    "overshoot_deringing": jpeg(**OPT, overshoot_deringing=True),
    "progressive + optimize_scans": jpeg(**PROGRESSIVE, optimize_scans=True),
    "quant_table=0 (libjpeg's Annex K)": jpeg(**{**OPT, "quant_table": 0}),
    # What mozjpeg's cjpeg does by default, and sharp's `mozjpeg: true`.
    "all four mozjpeg options, progressive": jpeg(
        **PROGRESSIVE,
        trellis_quant=True,
        overshoot_deringing=True,
        optimize_scans=True,
    ),
}
WEBP_REF = f"effort {WEBP_EFFORT} (ref, pixfit)"
WEBP_VARIANTS = {
    WEBP_REF: webp(effort=WEBP_EFFORT),
    **{f"effort {e}": webp(effort=e) for e in range(7) if e != WEBP_EFFORT},
    f"effort {WEBP_EFFORT} + smart_subsample": webp(effort=WEBP_EFFORT, smart_subsample=True),
}
AVIF_REF = f"effort {AVIF_EFFORT} (ref, pixfit)"
AVIF_VARIANTS = {
    AVIF_REF: avif(AVIF_EFFORT),
    **{f"effort {e}": avif(e) for e in (0, 1, 2, 4) if e != AVIF_EFFORT},
}


def geomean_ratio(ours: list[float], theirs: list[float]) -> float:
    logs = [math.log(a / b) for a, b in zip(ours, theirs, strict=True)]
    return math.exp(statistics.fmean(logs))


def thumbnails(photos: list[Photo], width: int) -> list[pyvips.Image]:
    # copy_memory runs the decode and resize now, so later timings see only the encoder.
    return [pyvips.Image.thumbnail_buffer(p.data, width).copy_memory() for p in photos]


# --- fidelity -----------------------------------------------------------------------------


def psnr(reference: pyvips.Image, encoded: bytes) -> float:
    """PSNR in dB of the decoded bytes against the image they were encoded from."""
    diff = pyvips.Image.new_from_buffer(encoded, "").cast("float") - reference.cast("float")
    mse = (diff * diff).avg()
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def rd_curve(image: pyvips.Image, encode: Encode, grid: range) -> Curve:
    points = []
    for q in grid:
        out = encode(image, q)
        points.append((psnr(image, out), math.log(len(out))))
    return sorted(points)


def bytes_at(curve: Curve, target: float) -> float | None:
    """The bytes the curve's encoder needs for `target` dB, or None outside the Q grid."""
    for (p0, b0), (p1, b1) in pairwise(curve):
        if p0 <= target <= p1:
            t = (target - p0) / (p1 - p0) if p1 > p0 else 0.0
            return math.exp(b0 + t * (b1 - b0))
    return None


# --- timing -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Result:
    """One variant over the photo set: per-photo medians over the timed passes."""

    name: str
    wall: list[float]  # median wall-clock ms per photo
    cpu: list[float]  # median process CPU ms per photo, all threads
    sizes: list[int]  # output bytes per photo
    psnr: list[float]  # dB against the unencoded thumbnail, per photo

    def same_psnr_ratio(self, curves: list[Curve]) -> tuple[float, int]:
        """Geomean of bytes over the reference's bytes at this PSNR, and photos it covers."""
        ratios = []
        for size, db, curve in zip(self.sizes, self.psnr, curves, strict=True):
            if (ref := bytes_at(curve, db)) is not None:
                ratios.append(size / ref)
        if not ratios:
            return math.nan, 0
        return math.exp(statistics.fmean(math.log(r) for r in ratios)), len(ratios)


def measure(
    images: list[pyvips.Image], variants: dict[str, Encode], quality: int, passes: int
) -> list[Result]:
    """A warm-up pass (which also takes sizes and PSNR), then `passes` timed passes."""
    names = list(variants)
    wall: dict[str, list[list[float]]] = {n: [[] for _ in images] for n in names}
    cpu: dict[str, list[list[float]]] = {n: [[] for _ in images] for n in names}
    sizes = {n: [0] * len(images) for n in names}
    psnrs = {n: [0.0] * len(images) for n in names}
    for run in range(passes + 1):
        for index, image in enumerate(images):
            shift = (run + index) % len(names)
            for name in names[shift:] + names[:shift]:
                cpu_start, start = time.process_time(), time.perf_counter()
                out = variants[name](image, quality)
                elapsed = (time.perf_counter() - start) * 1000
                cpu_elapsed = (time.process_time() - cpu_start) * 1000
                if run == 0:
                    sizes[name][index] = len(out)
                    psnrs[name][index] = psnr(image, out)
                else:
                    wall[name][index].append(elapsed)
                    cpu[name][index].append(cpu_elapsed)
    return [
        Result(
            n,
            [statistics.median(t) for t in wall[n]],
            [statistics.median(t) for t in cpu[n]],
            sizes[n],
            psnrs[n],
        )
        for n in names
    ]


def compare(
    images: list[pyvips.Image],
    variants: dict[str, Encode],
    ref: str,
    quality: int,
    grid: range,
    passes: int,
) -> None:
    """Time the variants at `quality` and print them against `ref`, PSNR-matched bytes too."""
    results = measure(images, variants, quality, passes)
    base = next(r for r in results if r.name == ref)
    curves = [rd_curve(image, variants[ref], grid) for image in images]
    print(
        f"  {'variant':<46} {'ms':>6} {'cpu ms':>6} {'KB':>6} {'ms x':>5} {'cpu x':>5}"
        f" {'bytes x':>7} {'PSNR':>5} {'dPSNR':>6} {'bytes x same PSNR':>17}"
    )
    for r in results:
        same, covered = r.same_psnr_ratio(curves)
        note = "" if covered == len(images) else f" ({covered}/{len(images)})"
        print(
            f"  {r.name:<46} {statistics.fmean(r.wall):6.1f} {statistics.fmean(r.cpu):6.1f}"
            f" {statistics.fmean(r.sizes) / 1000:6.1f} {geomean_ratio(r.wall, base.wall):5.2f}"
            f" {geomean_ratio(r.cpu, base.cpu):5.2f} {geomean_ratio(r.sizes, base.sizes):7.3f}"
            f" {statistics.fmean(r.psnr):5.2f}"
            f" {statistics.fmean(r.psnr) - statistics.fmean(base.psnr):+6.2f}"
            f" {same:17.3f}{note}"
        )


# --- sections 1-3: encoders ---------------------------------------------------------------


def report_mozjpeg(image: pyvips.Image) -> None:
    # Without mozjpeg libvips ignores the trellis options, so the bytes would not change.
    plain = JPEG_VARIANTS[JPEG_REF](image, JPEG_Q)
    trellis = JPEG_VARIANTS["trellis_quant"](image, JPEG_Q)
    if plain != trellis:
        print(
            f"  libjpeg is mozjpeg: trellis_quant changes the bytes, {len(plain)} -> {len(trellis)}"
        )
    else:
        print("  libjpeg is NOT mozjpeg: trellis_quant leaves the output unchanged, so the")
        print("  trellis, deringing, optimize_scans and quant_table rows measure nothing")


def section_jpeg(sized: dict[int, list[pyvips.Image]], passes: int) -> None:
    print(f"\n1. JPEG q{JPEG_Q}, keep=none (ref: pixfit's encoder, interlace off)")
    report_mozjpeg(sized[WIDTH][0])
    for width in JPEG_WIDTHS:
        print(f"  -- {width} px wide, {len(sized[width])} photos")
        compare(sized[width], JPEG_VARIANTS, JPEG_REF, JPEG_Q, JPEG_GRID, passes)


def section_webp(images: list[pyvips.Image], passes: int) -> None:
    print(f"\n2. WebP q{WEBP_Q} at {WIDTH} px, {len(images)} photos (ref: pixfit's effort)")
    compare(images, WEBP_VARIANTS, WEBP_REF, WEBP_Q, WEBP_GRID, passes)


def section_avif(images: list[pyvips.Image], passes: int) -> None:
    print(f"\n3. AVIF (av1) q{AVIF_Q} at {WIDTH} px, {len(images)} photos (ref: pixfit's effort)")
    compare(images, AVIF_VARIANTS, AVIF_REF, AVIF_Q, AVIF_GRID, passes)


# --- sections 4-5: whole renders, one fresh process per setting ---------------------------


def render(data: bytes) -> bytes:
    image = pyvips.Image.thumbnail_buffer(data, WIDTH)
    return bytes(image.jpegsave_buffer(Q=JPEG_Q, keep="none", **OPT))


def max_rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def child(cache_max: int, photos: list[Photo]) -> None:
    """Render every photo RENDERS_PER_PHOTO times in a row; print timings and RSS as JSON."""
    pyvips.cache_set_max(cache_max)
    # A throwaway render of a synthetic image loads libvips' JPEG code before the baseline
    # RSS is taken, without putting any of the photos' operations in the cache.
    render(bytes(pyvips.Image.black(64, 64, bands=3).jpegsave_buffer()))
    rss_before = max_rss_kib()
    wall, cpu = [], []
    for photo in photos:
        wall.append([])
        cpu.append([])
        for _ in range(RENDERS_PER_PHOTO):
            cpu_start, start = time.process_time(), time.perf_counter()
            render(photo.data)
            wall[-1].append((time.perf_counter() - start) * 1000)
            cpu[-1].append((time.process_time() - cpu_start) * 1000)
    report = {
        "concurrency": pyvips.concurrency_get(),
        "wall": wall,
        "cpu": cpu,
        "rss_before_kib": rss_before,
        "rss_peak_kib": max_rss_kib(),
        "cached_ops": pyvips.cache_get_size(),
    }
    print(json.dumps(report))


@dataclass(frozen=True, slots=True)
class Setting:
    cache_max: int
    concurrency: int

    @property
    def label(self) -> str:
        return f"cache_set_max({self.cache_max}), concurrency {self.concurrency}"


@dataclass(frozen=True, slots=True)
class ChildRun:
    wall: list[list[float]]  # ms per photo, per render in a row
    cpu: list[list[float]]
    rss_peak_mib: float
    rss_growth_mib: float  # peak at the end over the peak after imports and warm-up
    cached_ops: int  # operations in libvips' cache at the end


def run_child(setting: Setting, photo_args: list[str]) -> ChildRun:
    env = {**os.environ, "VIPS_CONCURRENCY": str(setting.concurrency)}
    command = [sys.executable, __file__, "--child", f"cache={setting.cache_max}", *photo_args]
    # Through sh, which forks: a child exec'd straight from this process would report this
    # process's own peak as its ru_maxrss (Linux keeps the high-water mark across exec).
    run = subprocess.run(
        ["/bin/sh", "-c", '"$@"; exit $?', "sh", *command],
        check=False,
        capture_output=True,
        text=True,
        env=env,
    )
    if run.returncode != 0:
        sys.exit(f"The {setting.label} process failed:\n{run.stderr}")
    report = json.loads(run.stdout.splitlines()[-1])
    if report["concurrency"] != setting.concurrency:
        sys.exit(f"Expected concurrency {setting.concurrency} but the child ran with {report}")
    return ChildRun(
        report["wall"],
        report["cpu"],
        report["rss_peak_kib"] / 1024,
        (report["rss_peak_kib"] - report["rss_before_kib"]) / 1024,
        report["cached_ops"],
    )


@dataclass(frozen=True, slots=True)
class Renders:
    """One setting over the rounds: per photo and render in a row, the median over rounds."""

    setting: Setting
    wall: list[list[float]]
    cpu: list[list[float]]
    rss_peak_mib: float  # medians over the rounds
    rss_growth_mib: float
    cached_ops: int

    def column(self, times: list[list[float]], nth: int | None) -> list[float]:
        """Per photo: the nth render's ms, or the mean of all renders if nth is None."""
        return [statistics.fmean(t) if nth is None else t[nth] for t in times]


def combine(setting: Setting, runs: list[ChildRun]) -> Renders:
    def medians(pick: Callable[[ChildRun], list[list[float]]]) -> list[list[float]]:
        per_run = [pick(run) for run in runs]
        return [
            [statistics.median(r[p][n] for r in per_run) for n in range(RENDERS_PER_PHOTO)]
            for p in range(len(per_run[0]))
        ]

    return Renders(
        setting,
        medians(lambda r: r.wall),
        medians(lambda r: r.cpu),
        statistics.median(r.rss_peak_mib for r in runs),
        statistics.median(r.rss_growth_mib for r in runs),
        max(r.cached_ops for r in runs),
    )


def run_settings(settings: list[Setting], photo_args: list[str], rounds: int) -> list[Renders]:
    """Each setting `rounds` times in fresh processes, the order rotating by round."""
    runs: dict[Setting, list[ChildRun]] = {s: [] for s in settings}
    for round_ in range(rounds):
        shift = round_ % len(settings)
        for setting in settings[shift:] + settings[:shift]:
            runs[setting].append(run_child(setting, photo_args))
    return [combine(s, runs[s]) for s in settings]


def section_cache(base: Renders, cached: Renders) -> None:
    print(
        f"\n4. libvips operation cache: thumbnail_buffer({WIDTH}) + jpegsave q{JPEG_Q}, each photo"
        f" {RENDERS_PER_PHOTO}x in a row\n  (concurrency 1; 'first' is a photo's first render,"
        " 'repeat' its second; x is against cache 0)"
    )
    print(
        f"  {'setting':<36} {'first ms':>8} {'repeat ms':>9} {'first x':>7} {'repeat x':>8}"
        f" {'cpu ms':>6} {'peak MiB':>8} {'growth MiB':>10} {'ops held':>8}"
    )
    for r in (base, cached):
        first, repeat = r.column(r.wall, 0), r.column(r.wall, 1)
        print(
            f"  {r.setting.label:<36} {statistics.fmean(first):8.1f}"
            f" {statistics.fmean(repeat):9.1f}"
            f" {geomean_ratio(first, base.column(base.wall, 0)):7.3f}"
            f" {geomean_ratio(repeat, base.column(base.wall, 1)):8.3f}"
            f" {statistics.fmean(r.column(r.cpu, None)):6.1f} {r.rss_peak_mib:8.1f}"
            f" {r.rss_growth_mib:10.1f} {r.cached_ops:8d}"
        )


def section_concurrency(base: Renders, threaded: Renders) -> None:
    print(
        f"\n5. libvips concurrency (VIPS_CONCURRENCY): thumbnail_buffer({WIDTH}) + jpegsave"
        f" q{JPEG_Q}, no cache\n  (ms is the mean of a photo's {RENDERS_PER_PHOTO} renders;"
        " x is against concurrency 1)"
    )
    print(f"  {'setting':<36} {'ms':>6} {'cpu ms':>6} {'ms x':>6} {'cpu x':>6} {'peak MiB':>8}")
    for r in (base, threaded):
        wall, cpu = r.column(r.wall, None), r.column(r.cpu, None)
        print(
            f"  {r.setting.label:<36} {statistics.fmean(wall):6.1f} {statistics.fmean(cpu):6.1f}"
            f" {geomean_ratio(wall, base.column(base.wall, None)):6.3f}"
            f" {geomean_ratio(cpu, base.column(base.cpu, None)):6.3f} {r.rss_peak_mib:8.1f}"
        )


# --- main ---------------------------------------------------------------------------------


def describe(photos: list[Photo], origin: Path, args: argparse.Namespace) -> None:
    vips = ".".join(str(pyvips.version(i)) for i in range(3))
    sizes = sorted({f"{p.width}x{p.height}" for p in photos}, key=lambda s: int(s.split("x")[0]))
    print("pixfit encoder and libvips settings benchmark")
    print(f"  load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"  nproc {len(os.sched_getaffinity(0))}, {platform.machine()}")
    print(
        f"  libvips {vips}, pyvips {pyvips.__version__}, Python {platform.python_version()},"
        f" concurrency {pyvips.concurrency_get()}, operation cache {pyvips.cache_get_max()}"
    )
    print(f"  photos: {len(photos)} JPEGs ({', '.join(sizes)}) from {origin}")
    print(
        f"  timing: 1 warm-up pass + {args.passes} timed passes, per photo the median; 'ms' and"
        "\n  'cpu ms' are means over photos (wall clock, process CPU time); 'x' columns are"
        "\n  geometric means over photos of the per-photo ratio to the ref row; KB = bytes/1000;"
        "\n  PSNR is over RGB against the unencoded thumbnail; 'bytes x same PSNR' is the"
        "\n  variant's bytes over the ref's, interpolated to the variant's PSNR per photo"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--photos", type=Path, help="directory of JPEG photos (searched deeply)")
    parser.add_argument("--passes", type=int, default=3, help="timed passes (default 3)")
    parser.add_argument("--limit", type=int, help="use only the first N photos")
    parser.add_argument("--avif-limit", type=int, default=6, help="photos for AVIF (default 6)")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # cache=N: sections 4-5 only
    args = parser.parse_args(argv)
    if args.passes < 1:
        parser.error("--passes must be at least 1")
    if args.child is not None and not args.child.removeprefix("cache=").isdigit():
        parser.error(f"Expected cache=N for --child but received {args.child!r}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # As the server does: one libvips thread per render (unless the operator says otherwise)
    # and no operation cache. Child processes then set their own.
    if "VIPS_CONCURRENCY" not in os.environ:
        pyvips.concurrency_set(1)
    pyvips.cache_set_max(0)
    photos = load(find_photos(args.photos)[: args.limit])
    if args.child is not None:
        child(int(args.child.removeprefix("cache=")), photos)
        return

    started = time.perf_counter()
    describe(photos, args.photos or WALLPAPERS, args)
    sized = {width: thumbnails(photos, width) for width in JPEG_WIDTHS}
    section_jpeg(sized, args.passes)
    section_webp(sized[WIDTH], args.passes)
    section_avif(sized[WIDTH][: args.avif_limit], args.passes)

    # The children find the same photos the same way.
    photo_args = ["--limit", str(len(photos))]
    if args.photos is not None:
        photo_args += ["--photos", str(args.photos)]
    base, cached, threaded = run_settings(
        [Setting(0, 1), Setting(CACHE_MAX, 1), Setting(0, 2)], photo_args, args.passes
    )
    section_cache(base, cached)
    section_concurrency(base, threaded)

    loadavg = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\ntotal time {time.perf_counter() - started:.0f} s; load average at end: {loadavg}")


if __name__ == "__main__":
    main()
