"""Cache hits while renders run: `pixfit serve`'s gthread workers against gunicorn sync workers.

    .venv/bin/python bench/mixed.py [--seconds 20]

Needs what bench/server.sh installs (wrk, the wallpapers). Each server runs 2 workers with the
memory cache over the same 8 photos. The 8 W1 URLs (800 px JPEG q80) are warmed into every
worker's cache; then two wrk run at once: 4 connections ask for renders that are never cached
(each request a width not asked for before) and 4 ask for the warm URLs. The table gives each
side's req/s and latency per worker class: what a page gets for its cached images while other
visitors' images render.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from server_peers import (
    LUA,
    REPO,
    WORKERS,
    Photo,
    Running,
    Server,
    _clean_env,
    parse_wrk,
    pick_photos,
)

RENDER_QUERY = "q=80&format=jpeg&w={width}"
HIT_QUERY = "w=800&q=80&format=jpeg"
# Widths 600-1599: 8,000 distinct render URLs, more than a run can ask for.
RENDER_WIDTHS = range(600, 1600)
CONNECTIONS = 4  # per side
WARM_SECONDS = 3


def servers(photos_dir: Path) -> list[Server]:
    env = _clean_env({"PIXFIT_CACHE_KIND": "memory", "PIXFIT_SOURCE_ROOT": str(photos_dir)})
    gthread = [str(REPO / ".venv" / "bin" / "pixfit"), "serve", "--host", "127.0.0.1"]
    gthread += ["--workers", str(WORKERS), "--root", str(photos_dir)]
    sync = [str(REPO / ".venv" / "bin" / "gunicorn"), "-k", "sync", "-w", str(WORKERS)]
    sync += ["-b", "127.0.0.1:{port}", "pixfit.wsgi:application"]
    return [
        Server("pixfit serve (gthread)", "pixfit", gthread, [], env),
        Server("gunicorn sync", "pixfit", sync, [], env),
    ]


def wrk(base: str, paths: Path, seconds: int, log: Path) -> subprocess.Popen[str]:
    argv = [
        "wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--timeout", "10s", "--latency",
        "-s", str(LUA), base, "--", str(paths),
    ]  # fmt: skip
    return subprocess.Popen(argv, stdout=log.open("w"), stderr=subprocess.STDOUT, text=True)


def measure(server: Server, photos: list[Photo], workdir: Path, seconds: int) -> dict[str, str]:
    hits = workdir / "hits.paths"
    hits.write_text("".join(f"/images/{p.name}?{HIT_QUERY}\n" for p in photos))
    renders = workdir / "renders.paths"
    renders.write_text(
        "".join(
            f"/images/{p.name}?{RENDER_QUERY.format(width=width)}\n"
            for width in RENDER_WIDTHS
            for p in photos
        )
    )
    running = Running(server, workdir, workdir / "pids")
    try:
        running.wait_ready(f"/images/{photos[0].name}?{HIT_QUERY}")
        wrk(running.base, hits, WARM_SECONDS, workdir / "warm.txt").wait()
        slug = re.sub(r"[^a-z]+", "-", server.name.lower())
        logs = {side: workdir / f"{slug}{side}.txt" for side in ("hits", "renders")}
        runs = [
            wrk(running.base, hits, seconds, logs["hits"]),
            wrk(running.base, renders, seconds, logs["renders"]),
        ]
        for run in runs:
            run.wait(timeout=seconds + 60)
    finally:
        running.stop()
    row = {"server": server.name}
    for side, log in logs.items():
        stats = parse_wrk(log.read_text())
        row[f"{side} req/s"] = f"{stats['rps']:.1f}"
        row[f"{side} p50 ms"] = f"{stats['p50']:.1f}"
        row[f"{side} p99 ms"] = f"{stats['p99']:.1f}"
        row[f"{side} errors"] = f"{stats['errors']:.0f}"
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=20, help="length of each timed run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pixfit-mixed-") as scratch:
        workdir = Path(scratch)
        photos = pick_photos(workdir / "photos")
        rows = [measure(s, photos, workdir, args.seconds) for s in servers(workdir / "photos")]
    columns = list(rows[0])
    print(f"{WORKERS} workers each, {CONNECTIONS}+{CONNECTIONS} connections, {args.seconds} s\n")
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(row[c] for c in columns) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
