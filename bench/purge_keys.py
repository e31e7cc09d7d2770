"""What the purge-friendly cache keys cost on a hit: this tree against an older checkout.

    PYTHONPATH=src .venv/bin/python bench/purge_keys.py [--baseline REV] [--hits 3000]

Keys are `SOURCE/VARIANT` since purge by source (cache.py): one more short hash per request,
and for the disk cache one more folder level. This runs the same cache hit (a file source,
`w=200`, answered by `ImageService.handle` in process, no HTTP) on this tree and on a
checkout of REV (default: the commit before purge landed), for the memory, disk and redis
caches (redis-server on a free port, when installed), in fresh child processes taking turns,
and prints the median microseconds per hit of each and the ratio. The machine is shared
and noisy: several rounds, medians, and only the ratio means anything.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
# The last commit on main whose cache keys were flat (one hash per variant).
BEFORE_PURGE = "20164f1"

CHILD = """
import json, statistics, sys, time
from pathlib import Path
import pyvips
from pixfit.config import Config
from pixfit.service import ImageRequest, ImageService, SourceKind

root, cache, hits = Path(sys.argv[1]), json.loads(sys.argv[2]), int(sys.argv[3])
service = ImageService.from_config(Config().merged({"source": {"root": str(root)}, "cache": cache}))
request = ImageRequest(SourceKind.PATH, "photo.jpg", {"w": "200"}, {})
service.handle(request)  # a render, or a hit left by an earlier child: warm either way
batches = []
for _ in range(10):
    started = time.perf_counter()
    for _ in range(hits // 10):
        service.handle(request)
    batches.append((time.perf_counter() - started) / (hits // 10) * 1e6)
print(json.dumps(statistics.median(batches)))
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def hit_us(tree: Path, root: Path, cache: dict[str, object], hits: int) -> float:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(root), json.dumps(cache), str(hits)],
        env={**os.environ, "PYTHONPATH": str(tree / "src")},
        capture_output=True,
        text=True,
        check=True,
    )
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", default=BEFORE_PURGE)
    parser.add_argument("--hits", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    import pyvips  # noqa: PLC0415 (only to write the sample)

    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        baseline = work / "baseline"
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "--detach", str(baseline), args.baseline],
            check=True,
            capture_output=True,
        )
        redis = None
        try:
            root = work / "root"
            root.mkdir()
            xy = pyvips.Image.xyz(1200, 800)
            image = (xy[0] * 0.2).bandjoin([xy[1] * 0.3, (xy[0] + xy[1]) * 0.1]).cast("uchar")
            image.copy(interpretation="srgb").jpegsave(str(root / "photo.jpg"), Q=85)
            caches: dict[str, dict[str, object]] = {
                "memory": {"kind": "memory"},
                "disk": {"kind": "disk"},  # a fresh folder per child, below
            }
            if shutil.which("redis-server"):
                port = free_port()
                redis = subprocess.Popen(
                    ["redis-server", "--port", str(port), "--save", "", "--bind", "127.0.0.1"],
                    stdout=subprocess.DEVNULL,
                )
                time.sleep(0.5)
                caches["redis"] = {"kind": "redis", "url": f"redis://127.0.0.1:{port}/0"}
            results: dict[str, dict[str, list[float]]] = {}
            for round_number in range(args.rounds):
                for kind, settings in caches.items():
                    for label, tree in (("before", baseline), ("now", REPO)):
                        cache = dict(settings)
                        if kind == "disk":
                            cache["path"] = str(work / f"disk-{label}-{round_number}")
                        measured = hit_us(tree, root, cache, args.hits)
                        results.setdefault(kind, {}).setdefault(label, []).append(measured)
        finally:
            if redis is not None:
                redis.terminate()
                redis.wait()
            subprocess.run(
                ["git", "-C", str(REPO), "worktree", "remove", "--force", str(baseline)],
                check=False,
            )
    print(f"cache hit through ImageService.handle, median us per hit of {args.rounds} rounds")
    print(f"(before = {args.baseline}, flat keys; noisy shared 2-core machine)")
    print(f"{'cache':8} {'before':>9} {'now':>9} {'now/before':>11}")
    for kind, by_label in results.items():
        before = statistics.median(by_label["before"])
        now = statistics.median(by_label["now"])
        print(f"{kind:8} {before:9.1f} {now:9.1f} {now / before:10.3f}x")


if __name__ == "__main__":
    main()
