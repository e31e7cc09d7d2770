"""Animated GIF and WebP, and HEIC input, measured (a benchmark, not a test).

    .venv/bin/python bench/animation.py [--passes N]

1. Bytes. Three GIFs are made with Pillow from video-like sequences cut out of real photos
   (Debian's wallpapers): a pan, a zoom and a diagonal drift. Each is rendered by pixfit as an
   animated GIF (format=gif), an animated WebP (format=auto for a WebP browser) and a WebP
   still (anim=0), all at wifi, at the source's size; then at every network class, to show
   which classes get the animation and which get the still.
2. Time and peak memory of an animated render against a still of the same clip: each render
   runs in a fresh child process (after its imports), which reports its wall time and how far
   the render raised its peak RSS (VmHWM).
3. HEIC decode against JPEG of the same pixels (the largest JPEG of three wallpapers,
   re-encoded as HEIC q80 by pillow-heif and as JPEG q85 by libvips): the full decode alone,
   and pixfit.render to 800 px (where JPEG also gets libjpeg's shrink-on-load).

Times are medians of --passes interleaved runs on a noisy shared 2-core machine; each table
prints ratios against a baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pillow_heif
import pyvips
from PIL import Image

import pixfit
from pixfit.heic import decode_heic
from pixfit.rendering import configure

WALLPAPERS = Path("/usr/share/wallpapers")
WEBP = {"Accept": "image/avif,image/webp,*/*"}
CLASSES = ("wifi", "4g", "3g", "2g", "slow-2g")


def wallpaper(name: str) -> pyvips.Image:
    """The largest JPEG of one wallpaper, decoded."""
    images = sorted(
        (WALLPAPERS / name / "contents" / "images").glob("*.jpg"),
        key=lambda path: path.stat().st_size,
    )
    if not images:
        sys.exit(
            f"No wallpaper {name} under {WALLPAPERS}: apt-get install plasma-workspace-wallpapers"
        )
    return pyvips.Image.new_from_file(str(images[-1]))


def clip(
    photo: pyvips.Image,
    size: tuple[int, int],
    frames: int,
    move: Callable[[float], tuple[float, float, float]],
) -> bytes:
    """An animated GIF (Pillow, 40 ms a frame): `move(t)` gives the window's centre (fractions
    of the photo) and its width (fraction of the photo's width) at t in 0..1."""
    width, height = size
    shots = []
    for index in range(frames):
        cx, cy, span = move(index / (frames - 1))
        window_w = span * photo.width
        window_h = window_w * height / width
        if window_h > photo.height:  # a taller window than the photo: narrow it
            window_w, window_h = window_w * photo.height / window_h, photo.height
        left = min(max(0, cx * photo.width - window_w / 2), photo.width - window_w)
        top = min(max(0, cy * photo.height - window_h / 2), photo.height - window_h)
        shot = photo.crop(int(left), int(top), int(window_w), int(window_h))
        shot = shot.resize(width / shot.width, vscale=height / shot.height)
        shots.append(Image.frombytes("RGB", size, shot.cast("uchar").write_to_memory()))
    buffer = io.BytesIO()
    shots[0].save(buffer, "GIF", save_all=True, append_images=shots[1:], duration=40, loop=0)
    return buffer.getvalue()


def clips() -> dict[str, bytes]:
    return {
        "pan 480x270x30": clip(
            wallpaper("Autumn"), (480, 270), 30, lambda t: (0.3 + 0.4 * t, 0.5, 0.4)
        ),
        "zoom 400x300x30": clip(
            wallpaper("BytheWater"), (400, 300), 30, lambda t: (0.5, 0.5, 0.9 - 0.5 * t)
        ),
        "drift 320x320x24": clip(
            wallpaper("ColorfulCups"),
            (320, 320),
            24,
            lambda t: (0.35 + 0.3 * t, 0.35 + 0.3 * t, 0.3),
        ),
    }


def frames_of(data: bytes) -> int:
    header = pyvips.Image.new_from_buffer(data, "")
    return int(header.get("n-pages")) if header.get_typeof("n-pages") else 1


def bytes_table(gifs: dict[str, bytes]) -> None:
    print("1. Bytes at wifi, at the source's size (ratio: against the source GIF)")
    columns = ("pixfit GIF", "animated WebP", "anim. WebP q75", "WebP still")
    print(f"  {'clip':<18} {'source GIF':>10} " + " ".join(f"{c:>16}" for c in columns))
    for name, data in gifs.items():
        gif = pixfit.render(data, {"format": "gif", "bw": "wifi"})
        webp = pixfit.render(data, {"bw": "wifi"}, hints=WEBP)
        # A pinned quality, for what the search's choice costs.
        q75 = pixfit.render(data, {"q": 75}, hints=WEBP)
        still = pixfit.render(data, {"bw": "wifi", "anim": 0, "format": "webp"})
        assert webp.media_type == "image/webp" and frames_of(webp.data) > 1
        cells = [
            f"{len(r.data) / 1000:7.1f} KB {len(r.data) / len(data):5.2f}x"
            for r in (gif, webp, q75, still)
        ]
        print(f"  {name:<18} {len(data) / 1000:7.1f} KB " + " ".join(f"{c:>16}" for c in cells))
    print()
    print("   ... and by class (format=auto for a WebP browser): what is sent, KB, quality, score")
    print(f"  {'clip':<18} " + " ".join(f"{c:>24}" for c in CLASSES))
    for name, data in gifs.items():
        cells = []
        for network in CLASSES:
            r = pixfit.render(data, {"bw": network}, hints=WEBP)
            kind = "anim" if r.animation == "animated" else "still"
            score = f"{r.score:.0f}" if r.score is not None else "-"
            cells.append(f"{kind} {len(r.data) / 1000:6.1f} KB q{r.quality} s{score}")
        print(f"  {name:<18} " + " ".join(f"{c:>24}" for c in cells))
    print()


# --- time and memory, one render per child process ----------------------------------------


def peak_rss_kib() -> int:
    """This process's peak RSS (VmHWM). Not ru_maxrss: Linux carries that over from the
    parent through fork and exec, so a child started by a big parent starts at its peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def child(path: str, options: str) -> None:
    """Render once after the imports; print wall ms and the render's rise in peak RSS."""
    data = Path(path).read_bytes()
    configure()
    before = peak_rss_kib()
    started = time.perf_counter()
    rendered = pixfit.render(data, json.loads(options), hints=WEBP)
    elapsed = (time.perf_counter() - started) * 1000
    after = peak_rss_kib()
    print(json.dumps({"ms": elapsed, "rss_kib": after - before, "bytes": len(rendered.data)}))


def run_child(path: Path, options: dict[str, object]) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(path), json.dumps(options)],
        capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def time_table(gifs: dict[str, bytes], passes: int, folder: Path) -> None:
    print("2. An animated render against a still (wifi, WebP), one fresh process a render")
    variants = {
        "still (anim=0)": {"anim": 0, "bw": "wifi"},
        "animated WebP": {"bw": "wifi"},
        "animated, 3g budget": {"bw": "3g"},
    }
    print(
        f"  {'clip':<18} {'variant':<22} {'median ms':>9} {'ratio':>6} "
        f"{'peak RSS rise MiB':>17} {'ratio':>6} {'KB':>7}"
    )
    for name, data in gifs.items():
        path = folder / f"{name.split()[0]}.gif"
        path.write_bytes(data)
        results: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
        for _ in range(passes):
            for variant, options in variants.items():
                results[variant].append(run_child(path, options))
        base_ms = statistics.median(r["ms"] for r in results["still (anim=0)"])
        base_rss = statistics.median(r["rss_kib"] for r in results["still (anim=0)"]) or 1
        for variant, runs in results.items():
            ms = statistics.median(r["ms"] for r in runs)
            rss = statistics.median(r["rss_kib"] for r in runs)
            print(
                f"  {name:<18} {variant:<22} {ms:9.1f} {ms / base_ms:5.2f}x "
                f"{rss / 1024:17.1f} {rss / base_rss:5.2f}x {runs[0]['bytes'] / 1000:7.1f}"
            )
    print()


# --- HEIC against JPEG ----------------------------------------------------------------------


def heic_table(passes: int) -> None:
    print("3. HEIC decode against JPEG of the same pixels (ratio: HEIC / JPEG)")
    print(
        f"  {'photo':<22} {'HEIC KB':>8} {'JPEG KB':>8} {'full decode ms':>22} {'ratio':>6}"
        f" {'render w=800 ms':>22} {'ratio':>6}"
    )
    for name in ("Autumn", "BytheWater", "ColorfulCups"):
        photo = wallpaper(name)
        heif = pillow_heif.from_bytes("RGB", (photo.width, photo.height), photo.write_to_memory())
        buffer = io.BytesIO()
        heif.save(buffer, quality=80)
        heic, jpeg = buffer.getvalue(), bytes(photo.jpegsave_buffer(Q=85, keep="none"))
        sources = {"heic": heic, "jpeg": jpeg}
        decoders: dict[str, Callable[[bytes], pyvips.Image]] = {
            "heic": decode_heic,
            "jpeg": lambda data: pyvips.Image.new_from_buffer(data, ""),
        }
        times: dict[str, list[float]] = {k: [] for k in ("heic-d", "jpeg-d", "heic-r", "jpeg-r")}
        for run in range(passes + 1):
            for kind in ("heic", "jpeg") if run % 2 else ("jpeg", "heic"):
                started = time.perf_counter()
                decoders[kind](sources[kind]).copy_memory()
                decoded = time.perf_counter()
                pixfit.render(sources[kind], {"w": 800, "q": 80, "format": "jpeg"})
                if run:  # the first pass warms up
                    times[f"{kind}-d"].append((decoded - started) * 1000)
                    times[f"{kind}-r"].append((time.perf_counter() - decoded) * 1000)
        m = {key: statistics.median(values) for key, values in times.items()}
        label = f"{name} {photo.width}x{photo.height}"
        print(
            f"  {label:<22} {len(heic) / 1000:8.1f} {len(jpeg) / 1000:8.1f}"
            f" {m['heic-d']:9.1f} vs {m['jpeg-d']:9.1f} {m['heic-d'] / m['jpeg-d']:5.2f}x"
            f" {m['heic-r']:9.1f} vs {m['jpeg-r']:9.1f} {m['heic-r'] / m['jpeg-r']:5.2f}x"
        )
    print()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--child", nargs=2, metavar=("PATH", "OPTIONS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return 0
    gifs = clips()
    bytes_table(gifs)
    with tempfile.TemporaryDirectory() as folder:
        time_table(gifs, args.passes, Path(folder))
    heic_table(args.passes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
