"""Peak memory of single renders against memory.py's estimate (a bench, not a test).

    .venv/bin/python bench/memory.py

Each render runs in a fresh process with the memory limits lifted, after a few small
renders have loaded every codec; the peak RSS above that baseline is set against
`memory.render_bytes` for the same header and plan. An estimate under a measured peak
is a bug in memory.py's constants. The machine is shared, so expect a few MiB of noise.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import pyvips  # noqa: E402

from tests import hostile  # noqa: E402

# (source file, options): the rows of memory.py's table.
CASES = [
    ("rgba-9000.png", "format=webp"),
    ("noisy-8000x6000.jpg", "format=webp"),
    ("rgba-9000.png", "format=webp&w=4000"),
    ("rgba-9000.png", "format=avif&w=3000"),
    ("noisy-8000x6000.jpg", "format=avif&w=3000"),
    ("noisy-8000x6000.jpg", "format=jpeg&w=4000"),
    ("noisy-8000x6000.jpg", "format=jpeg"),
    ("rgba-9000.png", "format=png"),
    ("progressive-8000x6000.jpg", "format=jpeg&w=800"),
    ("noisy-8000x6000.jpg", "w=1280&bw=3g"),
]

CHILD = """
import sys
import pixfit
from pixfit.config import Config
from pixfit.memory import RenderSize, render_bytes, MIB
from pixfit.pipeline import inspect
from pixfit.planner import choose_outputs, plan
from pixfit.geometry import resolve
from pixfit.hints import ClientHints
from pixfit.options import parse_options
from pixfit.search import MAX_SEARCHED_PIXELS
import pyvips

config = Config().merged({"limits": {"max_render_memory": 1 << 40, "max_output_pixels": 1 << 40,
                                     "render_timeout": 300}})
for fmt in ("webp", "avif", "jpeg", "png"):
    small = pyvips.Image.black(64, 64, bands=3).pngsave_buffer()
    pixfit.render(small, {"w": 32, "format": fmt}, config=config)


def high_water() -> int:
    # VmHWM is this process's own; getrusage's maxrss survives exec, so a child of a big
    # parent would start with the parent's peak.
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM")


base = high_water()
data = open(sys.argv[1], "rb").read()
options = dict(kv.split("=") for kv in sys.argv[2].split("&"))
hints = {"Accept": "image/avif,image/webp"}
options_ = parse_options(options, max_edge=8192, strict=True)
planned = plan(options_, ClientHints.from_headers(hints), config)
info = inspect(data, config.limits)
geometry = resolve(info.width, info.height, planned.box_width, planned.box_height, planned.fit,
                   planned.caps, enlarge=planned.enlarge)
outputs = choose_outputs(planned, info.format, info.has_alpha)
pixels = geometry.width * geometry.height
searched = planned.target is not None and pixels <= MAX_SEARCHED_PIXELS
estimate = render_bytes(RenderSize(info.held_bytes, pixels, outputs, searched))
rendered = pixfit.render(data, options, hints=hints, config=config)
peak = high_water() - base
size = f"{rendered.width}x{rendered.height}"
print(f"{size} {rendered.media_type:11} {peak // MIB:6} {estimate // MIB:6}")
"""


def sources(folder: Path) -> None:
    xy = pyvips.Image.xyz(9000, 9000)
    rgba = (xy[0] / 36).bandjoin([xy[1] / 36, (xy[0] + xy[1]) / 72, xy[0] * 0 + 200])
    rgba.cast("uchar").copy(interpretation="srgb").write_to_file(str(folder / "rgba-9000.png"))
    noisy = hostile.noisy(8000, 6000)
    noisy.write_to_file(str(folder / "noisy-8000x6000.jpg"), Q=85)
    noisy.write_to_file(str(folder / "progressive-8000x6000.jpg"), Q=85, interlace=True)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="pixfit-memory-") as name:
        folder = Path(name)
        sources(folder)
        print(f"{'source':27} {'options':20} {'output':24} {'peak':>6} {'estim.':>6} (MiB)")
        under = 0
        for source, options in CASES:
            result = subprocess.run(
                [sys.executable, "-c", CHILD, str(folder / source), options],
                capture_output=True,
                text=True,
                check=False,
                env={"PYTHONPATH": str(HERE.parent / "src"), "PATH": "/usr/bin:/bin"},
            )
            line = result.stdout.strip() or result.stderr.strip().splitlines()[-1]
            print(f"{source:27} {options:20} {line}", flush=True)
            fields = line.split()
            if len(fields) == 4 and int(fields[2]) > int(fields[3]):
                under += 1
        print(f"estimates under the measured peak: {under}")
        return 1 if under else 0


if __name__ == "__main__":
    sys.exit(main())
