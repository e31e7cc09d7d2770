"""W4 (memory-cache hits) under `pixfit serve` and Apache mod_wsgi, against a trivial app.

    PYTHONPATH=src .venv/bin/python bench/mod_wsgi_hits.py [--seconds 8] [--rounds 2]

Needs what bench/server.sh installs (wrk, the wallpapers, apache2 and mod_wsgi). Starts,
side by side on 127.0.0.1, each with 2 processes:

- `pixfit serve` with the memory cache (gunicorn, the baseline);
- pixfit under mod_wsgi-express in daemon mode (its default: Apache's processes hand each
  request over a UNIX socket to the daemon processes that run Python) and in embedded
  mode (Python runs inside Apache's own processes);
- a trivial WSGI app, which answers every request with the same 51 KB from memory, under
  both modes: what mod_wsgi costs a request with no application work at all.

It fills pixfit's caches with W1's URLs, then runs `wrk` on each server in turn, the order
reversed every round, and prints req/s and the server tree's CPU ms per request (steadier
on a shared machine), each against `pixfit serve` in the same round.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import server_peers as peers

TRIVIAL = """\
BODY = bytes(51_000)


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "image/jpeg"), ("Content-Length", "51000")])
    return [BODY]
"""


def servers(workdir: Path, photos: Path) -> list[peers.Server]:
    memory = {"PIXFIT_CACHE_KIND": "memory"}
    serve = [str(peers.REPO / ".venv" / "bin" / "pixfit"), "serve", "--host", "127.0.0.1"]
    serve += ["--workers", str(peers.WORKERS), "--root", str(photos)]
    chosen = [peers.Server("pixfit serve", "pixfit", serve, [peers.W4], memory)]
    for embedded in (False, True):
        mode = "embedded" if embedded else "daemon"
        pixfit = peers.mod_wsgi(workdir, f"hits-{mode}", photos, memory, embedded=embedded)
        trivial = peers.mod_wsgi(
            workdir, f"trivial-{mode}", photos, memory, embedded=embedded, app=TRIVIAL
        )
        chosen.append(peers.Server(f"pixfit mod_wsgi {mode}", "pixfit", pixfit, [peers.W4]))
        chosen.append(peers.Server(f"trivial mod_wsgi {mode}", "pixfit", trivial, [peers.W4]))
    for server in chosen:
        server.env = peers._clean_env(server.env)
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pixfit-hits-") as tmp:
        workdir = Path(tmp)
        photos = peers.pick_photos(workdir / "photos")
        paths = workdir / "w4.paths"
        paths.write_text("".join(f"/images/{p.name}?{peers.W4.pixfit}\n" for p in photos))
        running = []
        try:
            for server in servers(workdir, workdir / "photos"):
                started = peers.Running(server, workdir, workdir / "pids")
                running.append(started)
                started.wait_ready(server.target(peers.W4, photos[0]), timeout=120)
            for started in running:  # every URL rendered and cached in both processes
                for _ in range(3):
                    peers.run_wrk(started.base, paths, 3, workdir / "warm.txt")
            results: dict[str, list[tuple[float, float]]] = {r.server.name: [] for r in running}
            for round_ in range(args.rounds):
                for started in running if round_ % 2 == 0 else running[::-1]:
                    usage = peers.CpuWindow(started.process.pid)
                    stats = peers.run_wrk(started.base, paths, args.seconds, workdir / "wrk.txt")
                    cpu, others = usage.close()
                    cpu_ms = cpu * 1000 / stats["requests"] if stats["requests"] else 0.0
                    results[started.server.name].append((stats["rps"], cpu_ms))
                    print(
                        f"round {round_} {started.server.name}: {stats['rps']:.0f} req/s, "
                        f"{cpu_ms:.2f} CPU ms/req, {stats['errors']:.0f} errors, "
                        f"others {others:.2f} cores",
                        flush=True,
                    )
        finally:
            for started in running:
                started.stop()
    base_rps = _mean([rps for rps, _ in results["pixfit serve"]])
    base_cpu = _mean([cpu for _, cpu in results["pixfit serve"]])
    print(f"\nMeans over {args.rounds} rounds of {args.seconds} s (2 processes each)")
    print("| server | req/s | / pixfit serve | CPU ms/req | / pixfit serve |")
    print("|---|--:|--:|--:|--:|")
    for name, values in results.items():
        rps, cpu = _mean([v[0] for v in values]), _mean([v[1] for v in values])
        print(f"| {name} | {rps:.0f} | {rps / base_rps:.2f} | {cpu:.2f} | {cpu / base_cpu:.2f} |")


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


if __name__ == "__main__":
    main()
