"""Benchmark pixfit's render pipeline on real photos against bare pyvips (a benchmark, not a test).

    .venv/bin/python bench/pipeline.py [--photos DIR] [--passes N] [--limit N]

By default the photos are the largest JPEG of each wallpaper in Debian's
plasma-workspace-wallpapers (2560x1600 to 5120x2880). Every ratio compares variants measured
in this run, interleaved photo by photo, so machine drift hits both sides alike.

1. 800 px JPEG q80: pixfit.render against bare thumbnail_buffer + jpegsave_buffer with
   libvips' own JPEG shrink-on-load and quant table (goal <= 1.10x). pixfit's whole pipeline
   (sniff, header, plan, copy_memory) against what a bare pyvips user would write.
2. 3g profile: the joint width x quality search (budget and perceptual target) against a fixed
   q70 at the same 1280x800 display size (issue 11's goal: <= 2x).
3. Peak RSS of a fresh process rendering an 8000x6000 JPEG (goal < 150 MB).
4. The 800 px render as WebP and AVIF against JPEG, for orientation.
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyvips

import pixfit
from pixfit.registry import FORMATS, ImageFormat
from pixfit.search import Choice

WALLPAPERS = Path("/usr/share/wallpapers")
WALLPAPER_PACKAGE = "plasma-workspace-wallpapers"
JPEG_SUFFIXES = {".jpg", ".jpeg"}

# The options under test (query-string style, as a client would send them).
JPEG_800 = {"w": 800, "q": 80, "format": "jpeg"}
BUDGET_3G = {"bw": "3g", "screen": "1280x800", "format": "jpeg"}
FIXED_3G = {"bw": "3g", "screen": "1280x800", "q": 70, "format": "jpeg"}

OVERHEAD_GOAL = 1.10
SEARCH_GOAL = 2.0
RSS_GOAL_BYTES = 150_000_000
BIG_WIDTH, BIG_HEIGHT = 8000, 6000

Variant = Callable[[bytes], bytes]

RENDER_MODULE = importlib.import_module("pixfit.rendering")


@dataclass(frozen=True, slots=True)
class Photo:
    path: Path
    data: bytes
    width: int
    height: int

    @property
    def label(self) -> str:
        """The wallpaper's name, or the file name for photos of your own."""
        if self.path.is_relative_to(WALLPAPERS):
            return self.path.parts[len(WALLPAPERS.parts)]
        return self.path.name


@dataclass(frozen=True, slots=True)
class Result:
    """One variant over the photo set: per-photo medians over the timed passes."""

    name: str
    ms: list[float]  # median wall-clock ms per photo over the passes, in photo order
    cpu: list[float]  # median CPU ms (all threads) per photo: steadier on a loaded host
    sizes: list[int]  # output bytes per photo
    dims: list[tuple[int, int]]  # output width x height per photo

    @property
    def median_ms(self) -> float:
        return statistics.median(self.ms)

    @property
    def mean_ms(self) -> float:
        return statistics.fmean(self.ms)

    @property
    def cpu_median_ms(self) -> float:
        return statistics.median(self.cpu)

    @property
    def mean_kb(self) -> float:
        return statistics.fmean(self.sizes) / 1000

    def ratio(self, baseline: Result) -> float:
        """Geometric mean over photos of this variant's median time over the baseline's."""
        return _geomean_ratio(self.ms, baseline.ms)

    def cpu_ratio(self, baseline: Result) -> float:
        """The same by CPU time, which other programs on the host distort far less."""
        return _geomean_ratio(self.cpu, baseline.cpu)


def _geomean_ratio(ours: list[float], theirs: list[float]) -> float:
    logs = [math.log(a / b) for a, b in zip(ours, theirs, strict=True)]
    return math.exp(statistics.fmean(logs))


# --- photos ---------------------------------------------------------------------------


def _header(path: Path) -> pyvips.Image:
    return pyvips.Image.new_from_file(str(path), access="sequential")


def _pixels_then_bytes(path: Path) -> tuple[int, int]:
    header = _header(path)
    return header.width * header.height, path.stat().st_size


def _largest_per_wallpaper() -> list[Path]:
    photos = []
    for images in sorted(WALLPAPERS.glob("*/contents/images")):
        # Most sizes are symlinks to the one real file, so resolve them.
        jpegs = {p.resolve() for p in images.iterdir() if p.suffix.lower() in JPEG_SUFFIXES}
        if jpegs:
            photos.append(max(jpegs, key=_pixels_then_bytes))
    return photos


def _install_wallpapers() -> None:
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        sys.exit(
            f"No JPEG wallpapers under {WALLPAPERS}. Install them with\n"
            f"    sudo apt-get update && sudo apt-get install -y {WALLPAPER_PACKAGE}\n"
            "or point the benchmark at your own photos with --photos DIR."
        )
    print(f"Installing {WALLPAPER_PACKAGE} (apt-get update, then install)...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", WALLPAPER_PACKAGE], check=True, env=env)


def find_photos(directory: Path | None) -> list[Path]:
    """The JPEGs under --photos DIR, or the largest JPEG of each installed wallpaper."""
    if directory is not None:
        found = sorted(
            {p.resolve() for p in directory.rglob("*") if p.suffix.lower() in JPEG_SUFFIXES}
        )
        if not found:
            sys.exit(f"No .jpg or .jpeg files under {directory}")
        return found
    photos = _largest_per_wallpaper()
    if not photos:
        _install_wallpapers()
        photos = _largest_per_wallpaper()
    if not photos:
        sys.exit(f"{WALLPAPER_PACKAGE} is installed but {WALLPAPERS} holds no JPEGs")
    return photos


def load(paths: list[Path]) -> list[Photo]:
    photos = []
    for path in paths:
        header = _header(path)
        photos.append(Photo(path, path.read_bytes(), header.width, header.height))
    return photos


# --- timing ---------------------------------------------------------------------------


def measure(photos: list[Photo], variants: dict[str, Variant], passes: int) -> list[Result]:
    """A warm-up pass, then `passes` timed passes; variants interleave per photo in turn."""
    names = list(variants)
    times: dict[str, list[list[float]]] = {name: [[] for _ in photos] for name in names}
    cpu: dict[str, list[list[float]]] = {name: [[] for _ in photos] for name in names}
    sizes = {name: [0] * len(photos) for name in names}
    dims = {name: [(0, 0)] * len(photos) for name in names}
    for run in range(passes + 1):
        for index, photo in enumerate(photos):
            # Rotate the order by photo and pass, so each variant runs first equally often.
            shift = (run + index) % len(names)
            for name in names[shift:] + names[:shift]:
                cpu_start, start = time.process_time(), time.perf_counter()
                out = variants[name](photo.data)
                elapsed = (time.perf_counter() - start) * 1000
                cpu_elapsed = (time.process_time() - cpu_start) * 1000
                if run == 0:
                    header = pyvips.Image.new_from_buffer(out, "")
                    sizes[name][index] = len(out)
                    dims[name][index] = (header.width, header.height)
                else:
                    times[name][index].append(elapsed)
                    cpu[name][index].append(cpu_elapsed)
    return [
        Result(
            name,
            [statistics.median(t) for t in times[name]],
            [statistics.median(t) for t in cpu[name]],
            sizes[name],
            dims[name],
        )
        for name in names
    ]


def print_table(results: list[Result], baseline: Result) -> None:
    print(
        f"  {'variant':<46} {'median ms':>9} {'mean ms':>8} {'mean KB':>8} {'ratio':>6}"
        f" {'cpu ms':>7} {'cpu ratio':>9}"
    )
    for result in results:
        print(
            f"  {result.name:<46} {result.median_ms:9.1f} {result.mean_ms:8.1f}"
            f" {result.mean_kb:8.1f} {result.ratio(baseline):5.2f}x"
            f" {result.cpu_median_ms:7.1f} {result.cpu_ratio(baseline):8.2f}x"
        )


def verdict(value: float, goal: float, below: bool = False) -> str:
    # Judged on the value as printed (3 decimals): the noise is far above that anyway.
    value = round(value, 3)
    ok = value < goal if below else value <= goal
    return "MET" if ok else "MISSED"


# --- 1. pipeline overhead ---------------------------------------------------------------


def pixfit_variant(options: dict[str, object]) -> Variant:
    return lambda data: pixfit.render(data, options).data


def bare_jpeg_800(data: bytes) -> bytes:
    # As pixfit's Encoder without a budget (optimize_coding on, interlace off), but with
    # libvips' defaults where pixfit chose otherwise: its shrink-on-load, quant table 0.
    image = pyvips.Image.thumbnail_buffer(data, 800)
    return bytes(image.jpegsave_buffer(Q=80, keep="none", optimize_coding=True, interlace=False))


def section_overhead(photos: list[Photo], passes: int) -> float:
    print("\n1. 800 px JPEG q80: pipeline overhead")
    print(
        "  baseline: pyvips.Image.thumbnail_buffer(data, 800).jpegsave_buffer(Q=80, keep='none',\n"
        "  optimize_coding=True, interlace=False): pixfit's encoder settings without a budget,\n"
        "  but libvips' own JPEG shrink-on-load and quant table, where pixfit loads at the\n"
        "  largest factor that covers 800 px and uses table 3. pixfit's overhead (sniff, header,\n"
        "  plan, sRGB check, copy_memory) is inside its row. Same process, so the same libvips\n"
        "  settings (concurrency 1, no cache)."
    )
    bare, ours = measure(
        photos,
        {
            "bare pyvips thumbnail_buffer + jpegsave_buffer": bare_jpeg_800,
            "pixfit.render w=800 q=80 format=jpeg": pixfit_variant(JPEG_800),
        },
        passes,
    )
    print_table([bare, ours], bare)
    same = sum(a == b for a, b in zip(bare.dims, ours.dims, strict=True))
    print(f"  output dims identical on {same}/{len(photos)} photos", end="")
    print(f"; bytes pixfit/bare {statistics.fmean(ours.sizes) / statistics.fmean(bare.sizes):.3f}")
    ratio = ours.ratio(bare)
    ok = verdict(ratio, OVERHEAD_GOAL)
    print(
        f"  overhead ratio {ratio:.3f}x (by CPU time {ours.cpu_ratio(bare):.3f}x),"
        f" goal <= {OVERHEAD_GOAL:.2f}x: {ok}"
    )
    return ratio


# --- 2. budget search -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SearchStats:
    encodes: list[int]
    qualities: list[int]
    met: int
    encode_ms: list[float]  # budget-searched render, Rendered.timings.encode_ms
    fixed_encode_ms: list[float]


def search_stats(photos: list[Photo]) -> SearchStats:
    """One untimed pass through pixfit.render, counting encodes of the real search call."""
    original = RENDER_MODULE.choose
    encodes: list[int] = []

    def counting(*args: object, **kwargs: object) -> Choice:
        choice = original(*args, **kwargs)  # type: ignore[arg-type]
        encodes.append(choice.encodes)
        return choice

    RENDER_MODULE.choose = counting  # type: ignore[assignment]
    try:
        searched = [pixfit.render(photo.data, BUDGET_3G) for photo in photos]
    finally:
        RENDER_MODULE.choose = original
    fixed = [pixfit.render(photo.data, FIXED_3G) for photo in photos]
    return SearchStats(
        encodes=encodes,
        qualities=[r.quality or 0 for r in searched],
        met=sum(bool(r.budget_met) for r in searched),
        encode_ms=[r.timings.encode_ms for r in searched],
        fixed_encode_ms=[r.timings.encode_ms for r in fixed],
    )


def section_search(photos: list[Photo], passes: int) -> float:
    print("\n2. 3g profile: the joint search against a fixed quality at the same display size")
    print(
        "  both in a 1280x800 screen; q=70 turns the search off. The searched render (width,\n"
        "  quality, scored by pixfit.perceptual) and the fixed one are both baseline JPEGs."
    )
    fixed, searched = measure(
        photos,
        {
            "pixfit.render bw=3g q=70 (fixed, 1 encode)": pixfit_variant(FIXED_3G),
            "pixfit.render bw=3g (100 kB, target 70)": pixfit_variant(BUDGET_3G),
        },
        passes,
    )
    print_table([fixed, searched], fixed)
    shrunk = [
        f"{photo.label} {b[0]}x{b[1]}"
        for photo, a, b in zip(photos, fixed.dims, searched.dims, strict=True)
        if a != b
    ]
    print(f"  output dims identical on {len(photos) - len(shrunk)}/{len(photos)} photos")
    if shrunk:
        print(f"  narrower by the search's choice: {', '.join(shrunk)}")
    stats = search_stats(photos)
    spread = ", ".join(f"{k} x {n}" for n, k in sorted(Counter(stats.encodes).items()))
    print(
        f"  encodes per searched render: mean {statistics.fmean(stats.encodes):.2f},"
        f" median {statistics.median(stats.encodes):g} (photos x encodes: {spread})"
    )
    print(
        f"  budget met {stats.met}/{len(photos)}; quality chosen"
        f" {min(stats.qualities)}..{max(stats.qualities)}"
        f" (median {statistics.median(stats.qualities):g})"
    )
    print(
        f"  encode stage (one extra pass, Rendered.timings): searched median"
        f" {statistics.median(stats.encode_ms):.1f} ms, fixed median"
        f" {statistics.median(stats.fixed_encode_ms):.1f} ms"
    )
    ratio = searched.ratio(fixed)
    ok = verdict(ratio, SEARCH_GOAL)
    print(
        f"  search ratio {ratio:.3f}x (by CPU time {searched.cpu_ratio(fixed):.3f}x),"
        f" goal <= {SEARCH_GOAL:.1f}x: {ok}"
    )
    return ratio


# --- 3. peak memory -----------------------------------------------------------------------

RSS_SCRIPT = """\
import resource, sys
import pyvips
import pixfit
path = sys.argv[1]
{action}
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(rss, out_w, out_h, out_bytes)
"""

RSS_CASES = {
    "import pixfit only": "out_w = out_h = out_bytes = 0",
    "bare thumbnail 1920 + jpegsave Q80 (reference)": (
        "data = open(path, 'rb').read()\n"
        "img = pyvips.Image.thumbnail_buffer(data, 1920)\n"
        "out = img.jpegsave_buffer(Q=80, keep='none', optimize_coding=True)\n"
        "out_w, out_h, out_bytes = img.width, img.height, len(out)"
    ),
    "pixfit.render w=1920 format=jpeg": (
        "r = pixfit.render(path, {'w': 1920, 'format': 'jpeg'})\n"
        "out_w, out_h, out_bytes = r.width, r.height, len(r.data)"
    ),
    "pixfit.render bw=3g format=jpeg": (
        "r = pixfit.render(path, {'bw': '3g', 'format': 'jpeg'})\n"
        "out_w, out_h, out_bytes = r.width, r.height, len(r.data)"
    ),
}


def make_big_source(photo: Photo, dest: Path) -> None:
    """A photo-like 8000x6000 JPEG: a real photo cropped to 4:3, upscaled, saved at Q 90."""
    image = pyvips.Image.new_from_file(str(photo.path))
    crop_w = min(image.width, image.height * BIG_WIDTH // BIG_HEIGHT)
    crop_h = crop_w * BIG_HEIGHT // BIG_WIDTH
    image = image.crop((image.width - crop_w) // 2, (image.height - crop_h) // 2, crop_w, crop_h)
    image = image.resize(BIG_WIDTH / crop_w, vscale=BIG_HEIGHT / crop_h)
    image = image.crop(0, 0, min(image.width, BIG_WIDTH), min(image.height, BIG_HEIGHT))
    if (image.width, image.height) != (BIG_WIDTH, BIG_HEIGHT):
        sys.exit(
            f"Expected an {BIG_WIDTH}x{BIG_HEIGHT} source but made {image.width}x{image.height}"
        )
    image.jpegsave(str(dest), Q=90, keep="none")


def section_rss(photos: list[Photo]) -> float:
    print(f"\n3. Peak RSS for an {BIG_WIDTH}x{BIG_HEIGHT} source, each case in a fresh process")
    source = max(photos, key=lambda p: (p.width * p.height, len(p.data)))
    with tempfile.TemporaryDirectory(prefix="pixfit-bench-") as tmp:
        big = Path(tmp) / "big.jpg"
        make_big_source(source, big)
        print(
            f"  source: {source.path}\n  cropped to 4:3, upscaled to {BIG_WIDTH}x{BIG_HEIGHT},"
            f" saved at Q 90 ({big.stat().st_size / 1e6:.1f} MB); peak is ru_maxrss in MiB"
        )
        print(f"  {'case':<46} {'peak MiB':>9} {'delta':>7}  output")
        base_mib = peak = 0.0
        for name, action in RSS_CASES.items():
            script = RSS_SCRIPT.format(action=action)
            # Through sh, which forks: a child exec'd straight from this process would
            # report this process's own peak as its ru_maxrss (Linux keeps the high-water
            # mark of the mm an exec replaces), so every case would read the same.
            run = subprocess.run(
                ["/bin/sh", "-c", '"$@"; exit $?', "sh", sys.executable, "-c", script, str(big)],
                check=False,
                capture_output=True,
                text=True,
            )
            if run.returncode != 0:
                sys.exit(f"The {name!r} process failed:\n{run.stderr}")
            rss_kib, width, height, size = (int(v) for v in run.stdout.split()[-4:])
            mib = rss_kib / 1024
            base_mib = base_mib or mib
            if name.startswith("pixfit.render"):
                peak = max(peak, mib)
            output = f"{width}x{height}, {size / 1000:.0f} kB" if size else "-"
            print(f"  {name:<46} {mib:9.1f} {mib - base_mib:+7.1f}  {output}")
    goal_mib = RSS_GOAL_BYTES / 2**20
    ok = verdict(peak * 2**20, RSS_GOAL_BYTES, below=True)
    print(f"  pixfit peak {peak:.1f} MiB, goal < 150 MB ({goal_mib:.0f} MiB): {ok}")
    return peak


# --- 4. formats ---------------------------------------------------------------------------


def section_formats(photos: list[Photo], passes: int) -> None:
    print("\n4. 800 px q80 by output format, for orientation (ratio against JPEG)")
    webp, avif = (FORMATS[f].settings["effort"] for f in (ImageFormat.WEBP, ImageFormat.AVIF))
    print(f"  pixfit's encoders: WebP effort {webp}, AVIF (av1) effort {avif}")
    results = measure(
        photos,
        {
            f"pixfit.render w=800 q=80 format={fmt}": pixfit_variant({**JPEG_800, "format": fmt})
            for fmt in ("jpeg", "webp", "avif")
        },
        passes,
    )
    print_table(results, results[0])


# --- main ---------------------------------------------------------------------------------


def describe(photos: list[Photo], origin: Path, passes: int) -> None:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown CPU",
    )
    usable = len(os.sched_getaffinity(0))
    vips = ".".join(str(pyvips.version(i)) for i in range(3))
    print("pixfit pipeline benchmark")
    print(f"  load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"  hardware: nproc {usable} (cpu_count {os.cpu_count()}), {model}")
    print(
        f"  libvips {vips}, pyvips {pyvips.__version__}, Python {platform.python_version()},"
        f" libvips concurrency {pyvips.concurrency_get()}"
        f" (VIPS_CONCURRENCY={os.environ.get('VIPS_CONCURRENCY', 'unset')})"
    )
    sizes = sorted({f"{p.width}x{p.height}" for p in photos}, key=lambda s: int(s.split("x")[0]))
    print(
        f"  photos: {len(photos)} JPEGs ({', '.join(sizes)}),"
        f" {sum(len(p.data) for p in photos) / 1e6:.1f} MB in memory,"
        f" from {origin}"
    )
    print(
        f"  timing: 1 warm-up pass + {passes} timed passes; per photo the median of the passes;"
        "\n  'median ms' and 'mean ms' (wall clock, perf_counter) are over photos; 'ratio' is the"
        "\n  geometric mean over photos of the per-photo ratio to the first row; 'cpu ms' and"
        "\n  'cpu ratio' are the same by process CPU time (steadier when other jobs share the"
        "\n  cores); 'mean KB' is output bytes / 1000; goals are judged on the wall-clock ratio"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--photos", type=Path, help="directory of JPEG photos (searched deeply)")
    parser.add_argument("--passes", type=int, default=3, help="timed passes per case (default 3)")
    parser.add_argument("--limit", type=int, help="use only the first N photos")
    args = parser.parse_args(argv)
    if args.passes < 1:
        parser.error("--passes must be at least 1")

    started = time.perf_counter()
    # As every entry point does: libvips set up for serving before anything is timed, so
    # the bare baseline runs with the same settings as pixfit.
    pixfit.configure()
    photos = load(find_photos(args.photos)[: args.limit])
    describe(photos, args.photos or WALLPAPERS, args.passes)
    overhead = section_overhead(photos, args.passes)
    search = section_search(photos, args.passes)
    peak = section_rss(photos)
    section_formats(photos, args.passes)

    print("\nSummary")
    ok = verdict(overhead, OVERHEAD_GOAL)
    print(f"  pipeline overhead   {overhead:6.3f}x    goal <= {OVERHEAD_GOAL:.2f}x   {ok}")
    ok = verdict(search, SEARCH_GOAL)
    print(f"  joint search        {search:6.3f}x    goal <= {SEARCH_GOAL:.2f}x   {ok}")
    rss = verdict(peak * 2**20, RSS_GOAL_BYTES, below=True)
    print(f"  peak RSS 8000x6000  {peak:6.1f} MiB  goal < 150 MB   {rss}")
    loadavg = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"  total time {time.perf_counter() - started:.0f} s; load average at end: {loadavg}")


if __name__ == "__main__":
    main()
