"""What the purge-friendly cache keys cost on a hit: one commit against another.

    PYTHONPATH=src .venv/bin/python bench/purge_keys.py [--baseline REV] [--now REV] [--hits 3000]

Keys are `SOURCE/VARIANT` since purge by source (cache.py): one more short hash per
request, and for the disk cache one more folder level. This runs the same cache hit (a
file source, `w=200`, answered by `ImageService.handle` in process, no HTTP) on checkouts
of `--baseline` (default: the commit before purge landed) and `--now` (default: this
tree; 16b3433, the commit that landed purge, isolates the key scheme from later changes),
for the memory, disk and redis caches (redis-server on a free port, when installed), in
fresh child processes taking turns. Each child times 10 batches of hits and keeps the
fastest batch (the least disturbed by other jobs); the table gives the median of those
over the rounds, and the ratio. It also times the key's extra work alone (`source_tag` +
`cache_key`). The machine is shared and noisy: only the ratio and the order of magnitude
mean anything.
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
print(json.dumps(min(batches)))
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


def key_us() -> float:
    """Microseconds to make one purge-friendly key."""
    from pixfit.cache import cache_key  # noqa: PLC0415
    from pixfit.service import SourceKind, source_tag  # noqa: PLC0415

    loops = 100_000
    started = time.perf_counter()
    for _ in range(loops):
        cache_key(source_tag(SourceKind.PATH, "photos/2024/photo.jpg"), "0" * 32)
    return (time.perf_counter() - started) / loops * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", default=BEFORE_PURGE)
    parser.add_argument("--now", help="a commit to measure instead of this tree")
    parser.add_argument("--hits", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    import pyvips  # noqa: PLC0415 (only to write the sample)

    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        baseline = work / "baseline"
        now = work / "now" if args.now else REPO
        for tree, rev in ((baseline, args.baseline), (now, args.now)):
            if rev:
                subprocess.run(
                    ["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), rev],
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
                    for label, tree in (("before", baseline), ("now", now)):
                        cache = dict(settings)
                        if kind == "disk":
                            cache["path"] = str(work / f"disk-{label}-{round_number}")
                        measured = hit_us(tree, root, cache, args.hits)
                        results.setdefault(kind, {}).setdefault(label, []).append(measured)
        finally:
            if redis is not None:
                redis.terminate()
                redis.wait()
            for tree in (baseline, now):
                if tree != REPO:
                    subprocess.run(
                        ["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)],
                        check=False,
                    )
    print(f"the key's extra work per request (source_tag + cache_key): {key_us():.2f} us")
    print(f"cache hit through ImageService.handle, us per hit, median of {args.rounds} rounds")
    print(f"(before = {args.baseline}, flat keys; now = {args.now or 'this tree'}; noisy machine)")
    print(f"{'cache':8} {'before':>9} {'now':>9} {'now/before':>11}")
    for kind, by_label in results.items():
        before = statistics.median(by_label["before"])
        now = statistics.median(by_label["now"])
        print(f"{kind:8} {before:9.1f} {now:9.1f} {now / before:10.3f}x")


if __name__ == "__main__":
    main()
