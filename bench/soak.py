"""Soak `pixfit serve` with mixed good and hostile requests, watching memory (a bench, not a test).

    .venv/bin/python bench/soak.py [--seconds 300] [--connections 32] [--workers 2]

1. Builds a temporary image root: photo-like JPEGs and PNGs of 1-3 MP, plus every hostile file
   of tests/hostile.py (over-limit, not-an-image, corrupt, bloated, extreme).
2. Starts `pixfit serve --port FREE --workers N --root TMP` and waits for /healthz.
3. Drives it from `--connections` client threads (one keep-alive urllib3 connection each) for
   `--seconds`: about 70% good renders (several sizes, classes and formats, passthrough,
   304s) and 30% bad requests (hostile files, bad options, missing files, path escapes).
   A thread answered 503 waits its Retry-After before asking again, as a polite client would.
4. Every `--sample` seconds, sums VmRSS (/proc/PID/status) and Pss (/proc/PID/smaps_rollup)
   over the gunicorn master and its workers, and prints the series as it goes.
5. Reports the status mix, unexpected statuses, connection errors, 5xx (503, deliberate
   overload, counted apart), p50/p99 latency, worker restarts, errors from the app log, and
   a verdict on "RSS flat after warm-up": the mean of the last third of the samples against
   the middle third (and the lower quartiles, which spikes from single big renders leave out).
6. Always stops the server it started (SIGTERM to the master, then SIGKILL by PID).
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import urllib3

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # for tests/hostile.py

import pyvips  # noqa: E402

import pixfit  # noqa: E402
from bench.slowloris import SlowClients  # noqa: E402
from tests import hostile  # noqa: E402

# "RSS flat" if the last third's mean is within this fraction of the middle third's
# (issue 13's goal: under 5%).
FLAT_TOLERANCE = 0.05
GOOD_SHARE = 0.7


@dataclass(frozen=True, slots=True)
class Request:
    """One request the clients may send, and the statuses that are right for it."""

    kind: str  # "good" or "bad"
    label: str  # what the report groups it under
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    # 503 is always acceptable: it is the deliberate answer to overload.
    expected: frozenset[int] = frozenset({200})


# ---------------------------------------------------------------------------------------
# The image root


PHOTOS = {
    "photo-a.jpg": (1600, 1000, "jpeg"),  # 1.6 MP
    "photo-b.jpg": (2000, 1500, "jpeg"),  # 3.0 MP
    "photo-c.jpg": (1200, 900, "jpeg"),  # 1.1 MP
    "photo-d.png": (1280, 960, "png"),  # 1.2 MP
    "photo-e.png": (1600, 1200, "png"),  # 1.9 MP
}

# What each hostile file must get at w=300 (as tests/test_hostile.py asserts).
HOSTILE_STATUS = {
    "huge-ihdr-100000x100000.png": {413},
    "huge-sof-65500x65500.jpg": {413},
    "frames-1001.gif": {413},
    "empty.jpg": {415},
    "text.jpg": {415},
    "xxe.svg": {415},
    "document.pdf": {415},
    "drawing.eps": {415},
    "matrix.mat": {415},
    "image.fits": {415},
    "image.tif": {415},
    "image.ppm": {415},
    "matrix.csv": {415},
    "kernel.mat": {415},
    "image.v": {415},
    "truncated.jpg": {422},
    "truncated.png": {422},
    "garbage-icc.jpg": {200, 422},
    "garbage-icc.png": {200, 422},
    "huge-app-segments.jpg": {200, 413, 415, 422},
    "huge-exif.jpg": {200, 413, 415, 422},
    "strip-1x30000.png": {200},
    "strip-30000x1.png": {200},
    "frames-50.gif": {200},
    "animated.webp": {200},
    "photo.heic": {200},
    # Animations over limits.max_frames or limits.max_animation_pixels, from their headers.
    "frames-10000.gif": {413},
    "huge-screen.gif": {413},
    "mismatched-frames.gif": {413},
    # Over max_buffered_pixels (decoding them whole cost 300-430 MB of RSS each).
    "huge-frame-10000x10000.gif": {413},
    "progressive-sof-10000x10000.jpg": {413},
}


def build_root(root: Path, listener_port: int, origins: tuple[int, int] | None) -> list[Request]:
    """Write the photos and hostile files under `root`; return the request mix."""
    for name, (width, height, kind) in PHOTOS.items():
        image = hostile.noisy(width, height, seed=len(name) + width).gaussblur(1.2)
        image = image.cast("uchar").copy(interpretation="srgb")
        data = image.jpegsave_buffer(Q=88) if kind == "jpeg" else image.pngsave_buffer()
        (root / name).write_bytes(bytes(data))
    (root / "clip.gif").write_bytes(hostile.gif_clip(frames=24, width=480, height=270))
    bad: list[Request] = []
    for name, data in hostile.all_cases(listener_port):
        (root / name).write_bytes(data)
        expected = HOSTILE_STATUS.get(name, {200, 413, 415, 422})
        bad.append(
            Request("bad", f"hostile {name}", f"/images/{name}?w=300", {}, frozenset(expected))
        )
    photos = list(PHOTOS)
    good: list[Request] = []
    for name in photos:
        good += [
            Request("good", "w=300", f"/images/{name}?w=300"),
            Request("good", "w=800 bw=3g", f"/images/{name}?w=800&bw=3g"),
            Request("good", "cover 400x400", f"/images/{name}?w=400&h=400&fit=cover"),
            Request("good", "bw=2g", f"/images/{name}?bw=2g"),
            Request(
                "good", "webp by Accept", f"/images/{name}?w=640", {"Accept": "image/webp,*/*"}
            ),
            Request("good", "hints only", f"/images/{name}", {"Sec-CH-Width": "480", "ECT": "4g"}),
            Request("good", "avif w=200", f"/images/{name}?w=200&format=avif"),
            Request(
                "good",
                "turned, focal, filtered",
                f"/images/{name}?w=300&h=300&fit=cover&pos=fp:0.3,0.6&rotate=90&flip=h"
                "&sharpen=1&blur=0.5",
            ),
            Request("good", "passthrough", f"/images/{name}"),
        ]
    webp = {"Accept": "image/webp,*/*"}
    good += [
        Request("good", "animated webp", "/images/clip.gif?w=320", webp),
        Request("good", "animation at 2g: a still", "/images/clip.gif?bw=2g", webp),
        Request("good", "animated gif", "/images/clip.gif?w=240&format=gif"),
        Request("good", "frame 5", "/images/clip.gif?page=5&w=200"),
    ]
    # The issue-13 outlier: a 9000x9000 RGBA PNG (a few MB) asked for as WebP at full size
    # took a worker to 1.4 GiB; now it is a 413 from max_render_memory.
    xy = pyvips.Image.xyz(9000, 9000)
    rgba = (xy[0] / 36).bandjoin([xy[1] / 36, (xy[0] + xy[1]) / 72, xy[0] * 0 + 200])
    rgba.cast("uchar").copy(interpretation="srgb").write_to_file(str(root / "rgba-9000.png"))
    bad += [
        Request(
            "bad",
            "9000x9000 RGBA as WebP",
            "/images/rgba-9000.png?format=webp",
            {},
            frozenset({413}),
        ),
        Request(
            "bad",
            "9000x9000 RGBA at 2000",
            "/images/rgba-9000.png?w=2000&format=webp",
            {},
            frozenset({200}),
        ),
    ]
    if origins is not None:
        # Two hosts: pixfit backs off a failing host as a whole, so the slow paths live on
        # one origin and the good image on another.
        good_at, slow_at = (f"http://127.0.0.1:{port}" for port in origins)
        good.append(Request("good", "url w=300", f"/images/?url={good_at}/good.jpg&w=300"))
        bad += [
            Request(
                "bad", "origin trickling", f"/images/?url={slow_at}/trickle.jpg&w=300", {},
                frozenset({504}),
            ),
            Request(
                "bad", "origin silent", f"/images/?url={slow_at}/silent.jpg&w=300", {},
                frozenset({504}),
            ),
        ]  # fmt: skip
    bad += [
        Request("bad", "bad option", "/images/photo-a.jpg?w=abc", {}, frozenset({400})),
        Request("bad", "page past the end", "/images/clip.gif?page=99", {}, frozenset({400})),
        Request("bad", "unknown option", "/images/photo-a.jpg?wdith=300", {}, frozenset({400})),
        Request("bad", "missing file", "/images/nope.jpg?w=300", {}, frozenset({404})),
        Request(
            "bad", "path escape", "/images/..%2f..%2fetc%2fpasswd?w=300", {}, frozenset({403, 404})
        ),
    ]
    return good + bad


# ---------------------------------------------------------------------------------------
# A slow origin for URL sources


class Origin:
    """An HTTP origin on 127.0.0.1: /good.jpg answers at once, /trickle.jpg sends a byte a
    second, /silent.jpg never answers. Connections are counted."""

    def __init__(self, image: bytes) -> None:
        self.stop = threading.Event()
        origin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                origin.connections += 1
                if self.path == "/good.jpg":
                    self.send_response(200)
                    self.send_header("Content-Type", "image/jpeg")
                    self.send_header("Content-Length", str(len(image)))
                    self.end_headers()
                    self.wfile.write(image)
                    return
                if self.path == "/trickle.jpg":
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(image)))
                    self.end_headers()
                    for byte in image:
                        if origin.stop.wait(1.0):
                            return
                        try:
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                        except OSError:  # pixfit gave up on it, as it should
                            return
                origin.stop.wait(60)  # silent: pixfit gives up first

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.connections = 0
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------------------------------
# The server and its memory


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def pixfit_command() -> list[str]:
    script = Path(sys.executable).parent / "pixfit"
    return [str(script)] if script.exists() else [sys.executable, "-m", "pixfit.cli"]


def snapshot_code(folder: Path) -> Path:
    """Copy the pixfit package aside, so edits to src/ during a run cannot reach the server.

    gunicorn imports the app in each worker as it boots, and a worker replaced mid-run
    would otherwise load whatever src/ holds at that moment (and a half-saved edit makes
    it fail to boot, which stops the whole server).
    """
    package = Path(pixfit.__file__).resolve().parent
    target = folder / "code"
    shutil.copytree(package, target / "pixfit", ignore=shutil.ignore_patterns("__pycache__"))
    return target


def start_server(
    root: Path, port: int, workers: int, logs: Path, code: Path | None, metrics_dir: bool
) -> subprocess.Popen[bytes]:
    """`pixfit serve` on the root, URL sources allowed from 127.0.0.1 (the slow origin)."""
    env = dict(os.environ)
    if metrics_dir:
        # With the variable set, `serve` uses this folder instead of making its own (before
        # 5a0daad a recycled worker deleted that one on its way out, see --help).
        (logs / "metrics").mkdir()
        env["PROMETHEUS_MULTIPROC_DIR"] = str(logs / "metrics")
    else:
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(
        PIXFIT_LOG_FILE=str(logs / "app.log"),
        PIXFIT_LOG_ACCESS_FILE=str(logs / "access.log"),
        PIXFIT_CACHE_KIND="none",
        PIXFIT_SOURCE_ALLOWED_HOSTS="127.0.0.1",
        PIXFIT_SOURCE_ALLOW_PRIVATE_NETWORKS="true",
        PIXFIT_SOURCE_FETCH_TIMEOUT="3",
    )
    if code is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(code), env.get("PYTHONPATH")]))
    command = [*pixfit_command(), "serve", "--port", str(port), "--workers", str(workers)]
    with open(logs / "server.log", "wb") as server_log:
        return subprocess.Popen(
            [*command, "--root", str(root)], env=env, stdout=server_log, stderr=subprocess.STDOUT
        )


def wait_ready(pool: urllib3.HTTPConnectionPool, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"pixfit serve exited with status {server.returncode}")
        try:
            if pool.request("GET", "/healthz", retries=False).status == 200:
                return
        except urllib3.exceptions.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("pixfit serve did not answer /healthz within 60 s")


def children(pid: int) -> list[int]:
    """Direct children of `pid`, from /proc/PID/task/*/children."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def tree(pid: int) -> list[int]:
    pids = [pid]
    for child in children(pid):
        pids += tree(child)
    return pids


def _kib(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass(frozen=True, slots=True)
class Sample:
    """Memory of the server's process tree at one moment."""

    seconds: float  # since the load started
    rss_kib: int  # sum of VmRSS over master and workers
    pss_kib: int  # sum of Pss (shared pages split between processes)
    workers: tuple[int, ...]  # worker PIDs
    requests: int  # answered so far


def sample(master: int, started: float, done: int) -> Sample:
    pids = tree(master)
    rss = sum(_kib(Path(f"/proc/{pid}/status"), "VmRSS:") for pid in pids)
    pss = sum(_kib(Path(f"/proc/{pid}/smaps_rollup"), "Pss:") for pid in pids)
    return Sample(time.monotonic() - started, rss, pss, tuple(children(master)), done)


def stop_server(server: subprocess.Popen[bytes]) -> None:
    """SIGTERM the master (gunicorn stops its workers), then SIGKILL what is left, by PID."""
    if server.poll() is not None:
        return
    workers = {pid: _started_at(pid) for pid in tree(server.pid)[1:]}
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
    for pid, started_at in workers.items():
        # Only the very process seen above: a reused PID has another start time.
        if started_at is not None and _started_at(pid) == started_at:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _started_at(pid: int) -> str | None:
    """The process's start time in clock ticks (field 22 of /proc/PID/stat)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


# ---------------------------------------------------------------------------------------
# The load


@dataclass
class Tally:
    """What one client thread saw."""

    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    unexpected: Counter[tuple[str, int]] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"good": [], "bad": []})

    @property
    def answered(self) -> int:
        return len(self.latencies["good"]) + len(self.latencies["bad"])


def client_loop(
    port: int, requests: list[Request], end: float, seed: int, tally: Tally, stop: threading.Event
) -> None:
    """Send random requests from the mix over one keep-alive connection until `end`."""
    rng = random.Random(seed)
    good = [r for r in requests if r.kind == "good"]
    bad = [r for r in requests if r.kind == "bad"]
    etags: dict[str, str] = {}
    pool = urllib3.HTTPConnectionPool(
        "127.0.0.1", port, maxsize=1, retries=False, timeout=urllib3.Timeout(connect=5, read=60)
    )
    while time.monotonic() < end and not stop.is_set():
        request = rng.choice(good if rng.random() < GOOD_SHARE else bad)
        headers = dict(request.headers)
        expected = set(request.expected) | {503}
        if request.kind == "good" and request.path in etags and rng.random() < 0.1:
            headers["If-None-Match"] = etags[request.path]
            expected.add(304)
        started = time.monotonic()
        try:
            response = pool.request("GET", request.path, headers=headers, preload_content=True)
        except urllib3.exceptions.HTTPError as error:
            tally.errors[f"{request.kind} {type(error).__name__}"] += 1
            continue
        elapsed = time.monotonic() - started
        status = response.status
        tally.statuses[(request.kind, status)] += 1
        tally.latencies[request.kind].append(elapsed)
        if status not in expected:
            tally.unexpected[(request.label, status)] += 1
        if status == 200 and "ETag" in response.headers:
            etags[request.path] = response.headers["ETag"]
        if status == 503:
            # A polite client: without this, a refused connection asks again at once and
            # the run turns into a measure of how fast pixfit says 503.
            stop.wait(float(response.headers.get("Retry-After", "1")))
    pool.close()


# ---------------------------------------------------------------------------------------
# The report


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def verdict(samples: list[Sample]) -> str:
    """Compare the last third of the samples with the middle third (the first is warm-up)."""
    if len(samples) < 6:
        return "too few samples for a verdict (run longer)"
    third = len(samples) // 3
    middle, last = samples[third : 2 * third], samples[2 * third :]

    def change(measure: str, statistic: Callable[[list[int]], float]) -> tuple[float, float]:
        before = statistic([getattr(s, measure) for s in middle])
        after = statistic([getattr(s, measure) for s in last])
        return after / 1024, (after - before) / before

    rss, growth = change("rss_kib", statistics.mean)
    pss, pss_growth = change("pss_kib", statistics.mean)
    # Single renders of big sources make spikes; the lower quartile shows the resting level.
    floor, floor_growth = change("rss_kib", lambda values: statistics.quantiles(values, n=4)[0])
    flat = "FLAT" if growth <= FLAT_TOLERANCE else "GROWING"
    return (
        f"RSS {flat} after warm-up (last third against middle third, tolerance "
        f"{FLAT_TOLERANCE:.0%}): mean RSS {rss:.0f} MiB ({growth:+.1%}), mean PSS "
        f"{pss:.0f} MiB ({pss_growth:+.1%}), resting RSS (lower quartile) {floor:.0f} MiB "
        f"({floor_growth:+.1%})"
    )


def report(
    tallies: list[Tally],
    samples: list[Sample],
    elapsed: float,
    logs: Path,
    listener: hostile.Listener,
    restarts: int,
) -> None:
    statuses: Counter[tuple[str, int]] = Counter()
    unexpected: Counter[tuple[str, int]] = Counter()
    errors: Counter[str] = Counter()
    latencies: dict[str, list[float]] = {"good": [], "bad": []}
    for tally in tallies:
        statuses.update(tally.statuses)
        unexpected.update(tally.unexpected)
        errors.update(tally.errors)
        for kind, values in tally.latencies.items():
            latencies[kind] += values
    total = sum(statuses.values())
    by_status: Counter[int] = Counter()
    for (_, status), count in statuses.items():
        by_status[status] += count
    print(f"\n== soak: {total} responses in {elapsed:.0f} s ({total / elapsed:.1f}/s)")
    print("status mix: " + ", ".join(f"{s}: {c}" for s, c in sorted(by_status.items())))
    for kind in ("good", "bad"):
        mix = ", ".join(f"{s}: {c}" for (k, s), c in sorted(statuses.items()) if k == kind)
        print(f"  {kind:4} requests: {mix}")
    good_5xx = sum(c for (k, s), c in statuses.items() if k == "good" and s >= 500)
    good_errors = sum(c for name, c in errors.items() if name.startswith("good"))
    print(f"good clients: {good_5xx} 5xx (503 included), {good_errors} connection errors")
    server_errors = sum(c for s, c in by_status.items() if s >= 500 and s != 503)
    print(f"5xx other than 503: {server_errors}; 503 (deliberate overload): {by_status[503]}")
    print(f"connection errors: {sum(errors.values())} {dict(errors) or ''}")
    print(f"unexpected statuses: {sum(unexpected.values())}")
    for (label, status), count in unexpected.most_common(10):
        print(f"  {label}: {status} x{count}")
    every = latencies["good"] + latencies["bad"]
    for name, values in (("all", every), ("good", latencies["good"]), ("bad", latencies["bad"])):
        print(
            f"latency {name:4}: p50 {percentile(values, 0.5) * 1000:7.1f} ms, "
            f"p99 {percentile(values, 0.99) * 1000:7.1f} ms, "
            f"max {max(values, default=0) * 1000:7.1f} ms"
        )
    print(f"worker PIDs replaced during the run: {restarts} (recycling after renders, or crashes)")
    print(f"connections to the SVG's 127.0.0.1 target: {listener.connections}")
    app_log = (logs / "app.log").read_text(errors="replace") if (logs / "app.log").exists() else ""
    server_log = (logs / "server.log").read_text(errors="replace")
    unhandled = app_log.count("unhandled error")
    print(f"app log: {unhandled} unhandled errors (each a 500)")
    if unhandled:
        print(app_log[app_log.index("unhandled error") - 40 :][:3000])
    alarms = [
        line
        for line in server_log.splitlines()
        if any(
            word in line
            for word in ("WORKER TIMEOUT", "SIGKILL", "SIGSEGV", "exited with code", "Traceback")
        )
    ]
    print(f"gunicorn alarms: {len(alarms)}")
    if alarms:
        lines = server_log.splitlines()
        first = next(i for i, line in enumerate(lines) if line in alarms)
        print("\n".join(f"  | {line}" for line in lines[max(0, first - 5) : first + 60]))
    print(verdict(samples))


def drive(
    args: argparse.Namespace, port: int, requests: list[Request], server: subprocess.Popen[bytes]
) -> tuple[list[Tally], list[Sample], float]:
    """Run the client threads for `args.seconds`, sampling memory as they go.

    If the server exits, the clients stop at once rather than count refused connections.
    """
    print(f"{'t (s)':>6} {'RSS MiB':>8} {'PSS MiB':>8} {'req/s':>7}  workers")
    started = time.monotonic()
    end = started + args.seconds
    tallies = [Tally() for _ in range(args.connections)]
    stop = threading.Event()
    threads = [
        threading.Thread(target=client_loop, args=(port, requests, end, args.seed + i, tally, stop))
        for i, tally in enumerate(tallies)
    ]
    for thread in threads:
        thread.start()
    samples: list[Sample] = []
    previous = (0.0, 0)
    while any(thread.is_alive() for thread in threads):
        if server.poll() is not None:
            stop.set()
            print(f"!! pixfit serve exited with status {server.returncode}; stopping the load")
            break
        now = sample(server.pid, started, sum(t.answered for t in tallies))
        samples.append(now)
        rate = (now.requests - previous[1]) / max(1e-9, now.seconds - previous[0])
        previous = (now.seconds, now.requests)
        print(
            f"{now.seconds:6.0f} {now.rss_kib / 1024:8.1f} {now.pss_kib / 1024:8.1f} "
            f"{rate:7.1f}  {','.join(map(str, now.workers))}",
            flush=True,
        )
        deadline = time.monotonic() + args.sample
        while time.monotonic() < deadline and any(t.is_alive() for t in threads):
            time.sleep(0.1)
    elapsed = time.monotonic() - started
    for thread in threads:
        thread.join()
    return tallies, samples, elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300.0, help="load duration (300)")
    parser.add_argument("--connections", type=int, default=32, help="client connections (32)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (2)")
    parser.add_argument("--sample", type=float, default=5.0, help="RSS sampling period (5 s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--slow-clients",
        type=int,
        default=0,
        help="slow connections held open all along, a third each dribbling heads, dribbling "
        "bodies and reading a 1-2 MB original a byte every 3 s (0)",
    )
    parser.add_argument(
        "--slow-origin",
        action="store_true",
        help="add URL sources from a local origin: good, trickling a byte a second, silent",
    )
    parser.add_argument("--keep", action="store_true", help="keep the root and logs folder")
    parser.add_argument(
        "--live-code", action="store_true", help="serve src/ itself, not a snapshot of it"
    )
    parser.add_argument(
        "--own-metrics-dir",
        action="store_true",
        help="give the server a PROMETHEUS_MULTIPROC_DIR (works around a bug fixed in 5a0daad: "
        "the first recycled worker deleted serve's own metrics folder and the server stopped)",
    )
    args = parser.parse_args()

    pyvips.cache_set_max(0)
    folder = Path(tempfile.mkdtemp(prefix="pixfit-soak-"))
    root, logs = folder / "root", folder / "logs"
    root.mkdir()
    logs.mkdir()
    listener = hostile.Listener()
    image = hostile.jpeg(1200, 800, seed=9)
    origins = (Origin(image), Origin(image)) if args.slow_origin else ()
    ports = (origins[0].port, origins[1].port) if origins else None
    requests = build_root(root, listener.port, ports)
    port = free_port()
    print(f"root {root}: {len(list(root.iterdir()))} files; {len(requests)} request kinds")
    code = None if args.live_code else snapshot_code(folder)
    server = start_server(root, port, args.workers, logs, code, args.own_metrics_dir)
    try:
        wait_ready(urllib3.HTTPConnectionPool("127.0.0.1", port, maxsize=1), server)
        print(f"pixfit serve on 127.0.0.1:{port}, master PID {server.pid}, {args.workers} workers")
        with contextlib.ExitStack() as slow:
            for kind, path in (
                ("headers", "/images/photo-a.jpg?w=300"),
                ("body", "/images/photo-a.jpg"),
                ("read", "/images/photo-b.jpg"),
            ):
                if args.slow_clients:
                    clients = SlowClients(port, kind, args.slow_clients // 3, path)
                    slow.enter_context(clients)
                    print(f"{clients.open_count} slow clients: {kind}", flush=True)
            tallies, samples, elapsed = drive(args, port, requests, server)
        seen = [set(s.workers) for s in samples]
        restarts = len(set().union(*seen) - seen[0]) if seen else 0
        report(tallies, samples, elapsed, logs, listener, restarts)
        if origins:
            counts = f"{origins[0].connections}, {origins[1].connections}"
            print(f"connections to the good and the slow origin: {counts}")
    finally:
        stop_server(server)
        listener.close()
        for origin in origins:
            origin.close()
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
