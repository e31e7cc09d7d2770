"""W1 renders under glibc malloc settings: CPU (user and system) and the memory kept after.

    PYTHONPATH=src .venv/bin/python bench/malloc.py [--rounds 2] [--passes 3]

For server.sh's photos, each setting runs in a fresh child process (glibc reads
GLIBC_TUNABLES only at start-up) that caps the arenas as a pixfit worker does, renders
every photo once untimed, then `--passes` times timed (800 px JPEG q80), and reports user
and system CPU ms per render, its resident memory after the renders (what a worker keeps
between requests) and its peak. The settings alternate within each of `--rounds` rounds,
so drifts in the machine's other load hit them alike.

- "glibc default": a sliding mmap threshold; the first large buffer freed raises it, and
  later ones (a progressive JPEG's coefficients) stay in the heap;
- "fixed mmap threshold": large buffers are mapped per render and given back, each page
  faulted in afresh (system time);
- "pixfit serve": pixfit.serve.MALLOC_TUNABLES, the same on huge pages.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from server_peers import pick_photos

from pixfit.serve import MALLOC_TUNABLES

SETTINGS = {
    "glibc default": None,
    "fixed mmap threshold": "glibc.malloc.mmap_threshold=4194304",
    "pixfit serve": MALLOC_TUNABLES,
}

CHILD = """
import json, os, resource, sys
import pixfit
from pixfit.rendering import configure, limit_malloc_arenas
configure()
limit_malloc_arenas()
photos = [open(path, "rb").read() for path in sys.argv[2:]]
query = {"w": 800, "q": 80, "format": "jpeg"}
for data in photos:
    pixfit.render(data, query)
before = os.times()
for _ in range(int(sys.argv[1])):
    for data in photos:
        pixfit.render(data, query)
after = os.times()
renders = int(sys.argv[1]) * len(photos)
status = open("/proc/self/status").read()
print(json.dumps({
    "user": (after.user - before.user) * 1000 / renders,
    "sys": (after.system - before.system) * 1000 / renders,
    "rss": int(status.split("VmRSS:")[1].split()[0]) / 1024,
    "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


def run(tunables: str | None, passes: int, paths: list[str]) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    if tunables:
        env["GLIBC_TUNABLES"] = tunables
    argv = [sys.executable, "-c", CHILD, str(passes), *paths]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--passes", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        photos = pick_photos(Path(tmp) / "photos")
        paths = [str(Path(tmp) / "photos" / photo.name) for photo in photos]
        results: dict[str, list[dict[str, float]]] = {name: [] for name in SETTINGS}
        for round_ in range(args.rounds):
            order = list(SETTINGS.items())
            for name, tunables in order if round_ % 2 == 0 else order[::-1]:
                results[name].append(run(tunables, args.passes, paths))
    print(f"{len(paths)} photos, {args.passes} timed passes, {args.rounds} rounds (means)")
    print("| malloc | user ms/render | system ms/render | RSS after MiB | peak RSS MiB |")
    print("|---|--:|--:|--:|--:|")
    for name, runs in results.items():
        mean = {key: sum(r[key] for r in runs) / len(runs) for key in runs[0]}
        print(
            f"| {name} | {mean['user']:.1f} | {mean['sys']:.1f} | {mean['rss']:.0f} "
            f"| {mean['peak']:.0f} |"
        )


if __name__ == "__main__":
    main()
