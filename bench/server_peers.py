"""Side-by-side HTTP benchmark of pixfit, ipx and thumbor; `bash bench/server.sh` runs it.

    .venv/bin/python bench/server_peers.py --workdir DIR

bench/server.sh installs the peers (thumbor in bench/.peers/thumbor, ipx in bench/.peers/ipx)
and wrk, then calls this. It copies the same photos into DIR/photos and starts every server
on 127.0.0.1 with one worker per core. Then, workload by workload and server by server, it
checks the output for every photo (decoded dimensions and format), loads the server with wrk
(bench/server_rotate.lua rotates over the photos) while sampling the PSS of its whole process
tree every 0.5 s, and at the end stops them all and prints one table and the goal ratios.

Environment: DURATION (seconds per run, 20), WRK_THREADS (2), WRK_CONNECTIONS (8),
WORKERS (cores), PHOTOS (10), VARIANTS (1: also the pixfit and ipx variants), ONLY (comma
separated server names to run, e.g. "pixfit,ipx"), QUIET_WAIT (seconds to wait before each
run until other processes use at most QUIET_MAX_CORES cores, 90; 0.5).

Besides req/s and latency, each row gives the server's CPU time per request (its whole
process tree, from /proc, so libvips threads and recycled workers count), which other
processes on a shared machine disturb far less than throughput, and the cores other
processes used during the run ("others"), so a disturbed row shows as one.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pyvips

REPO = Path(__file__).resolve().parent.parent
PEERS = REPO / "bench" / ".peers"
LUA = REPO / "bench" / "server_rotate.lua"
WALLPAPERS = Path("/usr/share/wallpapers")

DURATION = int(os.environ.get("DURATION", "20"))
WRK_THREADS = int(os.environ.get("WRK_THREADS", "2"))
WRK_CONNECTIONS = int(os.environ.get("WRK_CONNECTIONS", "8"))
WORKERS = int(os.environ.get("WORKERS", str(os.cpu_count() or 1)))
PHOTO_COUNT = int(os.environ.get("PHOTOS", "10"))
VARIANTS = os.environ.get("VARIANTS", "1") not in ("0", "", "no", "false")
ONLY = {name.strip() for name in os.environ.get("ONLY", "").split(",") if name.strip()}
WARM_SECONDS = 3
QUIET_WAIT = float(os.environ.get("QUIET_WAIT", "90"))
QUIET_MAX_CORES = float(os.environ.get("QUIET_MAX_CORES", "0.5"))
SAMPLE_SECONDS = 0.5
LIMITS = "PIXFIT_LIMITS_MAX_"


# --- photos ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Photo:
    name: str
    width: int
    height: int


def pick_photos(out: Path) -> list[Photo]:
    """Copy the largest JPEG (1920-5120 px wide) of the biggest wallpapers into `out`."""
    candidates = []
    for images in sorted(WALLPAPERS.glob("*/contents/images")):
        best = None
        for path in {p.resolve() for p in images.iterdir() if p.suffix.lower() == ".jpg"}:
            header = pyvips.Image.new_from_file(str(path))
            if 1920 <= header.width <= 5120:
                key = (header.width * header.height, path.stat().st_size)
                if best is None or key > best[0]:
                    best = (key, path, header.width, header.height)
        if best:
            candidates.append((best[0], images.parent.parent.name, best[1], best[2], best[3]))
    candidates.sort(key=lambda c: (c[0], c[1]), reverse=True)
    if not candidates:
        sys.exit(f"no JPEGs under {WALLPAPERS} (apt-get install plasma-workspace-wallpapers)")
    out.mkdir(parents=True, exist_ok=True)
    photos = []
    for _, wallpaper, path, width, height in candidates[:PHOTO_COUNT]:
        name = f"{wallpaper}.jpg"
        shutil.copyfile(path, out / name)
        photos.append(Photo(name, width, height))
    return photos


# --- workloads and output checks ------------------------------------------------------


@dataclass(frozen=True)
class Output:
    status: int
    loader: str
    width: int
    height: int
    size: int
    headers: dict[str, str]


Check = Callable[[Photo, Output], str | None]


def _inside(photo: Photo, box_w: int, box_h: int) -> tuple[int, int]:
    scale = min(box_w / photo.width, box_h / photo.height, 1.0)
    return round(photo.width * scale), round(photo.height * scale)


def check_w1(photo: Photo, out: Output) -> str | None:
    want_h = round(800 * photo.height / photo.width)
    if out.loader != "jpegload_buffer":
        return f"expected JPEG, got {out.loader}"
    if out.width != 800 or abs(out.height - want_h) > 1:
        return f"expected 800x{want_h}, got {out.width}x{out.height}"
    return None


def check_w2(_photo: Photo, out: Output) -> str | None:
    if out.loader != "webpload_buffer":
        return f"expected WebP, got {out.loader}"
    if (out.width, out.height) != (300, 300):
        return f"expected 300x300, got {out.width}x{out.height}"
    return None


def check_w3_fixed(photo: Photo, out: Output) -> str | None:
    want = _inside(photo, 1280, 720)
    if out.loader != "jpegload_buffer":
        return f"expected JPEG, got {out.loader}"
    if abs(out.width - want[0]) > 1 or abs(out.height - want[1]) > 1:
        return f"expected {want[0]}x{want[1]}, got {out.width}x{out.height}"
    return None


def check_w3_budget(photo: Photo, out: Output) -> str | None:
    # Within the 3g profile: inside the 1280x720 screen, aspect kept, and either within the
    # 100 KB budget or saying it is not (the dimensions may shrink to meet the budget).
    if out.loader != "jpegload_buffer":
        return f"expected JPEG, got {out.loader}"
    if out.width > 1280 or out.height > 720:
        return f"expected inside 1280x720, got {out.width}x{out.height}"
    if abs(out.width / out.height - photo.width / photo.height) > 0.01 * photo.width / photo.height:
        return f"aspect ratio changed: {out.width}x{out.height}"
    verdict = out.headers.get("x-pixfit-budget", "")
    if out.size > 100_000 and "exceeded" not in verdict:
        return f"{out.size} bytes over the 100 KB budget, but X-Pixfit-Budget says {verdict!r}"
    return None


@dataclass(frozen=True)
class Workload:
    key: str
    title: str
    check: Check
    pixfit: str = ""  # query string
    thumbor: str = ""  # path, {name} is the photo
    ipx: str = ""


W1 = Workload(
    "W1", "800 px JPEG q80", check_w1,
    pixfit="w=800&q=80&format=jpeg",
    thumbor="/unsafe/800x0/filters:quality(80):format(jpeg)/{name}",
    ipx="/w_800,q_80,f_jpeg/{name}",
)  # fmt: skip
W2 = Workload(
    "W2", "300x300 cover WebP q80", check_w2,
    pixfit="w=300&h=300&fit=cover&q=80&format=webp",
    thumbor="/unsafe/300x300/filters:quality(80):format(webp)/{name}",
    ipx="/s_300x300,fit_cover,q_80,f_webp/{name}",
)  # fmt: skip
W3B = Workload("W3 budget", "bw=3g, screen 1280x720", check_w3_budget, "bw=3g&screen=1280x720")
W3F = Workload("W3 fixed", "1280x720 box, q70", check_w3_fixed, "w=1280&h=720&q=70")
W4 = Workload("W4", "W1 from the result cache", check_w1, W1.pixfit, W1.thumbor, W1.ipx)
# W5: a cold fan-out. Each photo at every width times every format, every variant once,
# FANOUT_CONCURRENCY at a time, a new connection per request (not through wrk).
W5_WIDTHS = (320, 640, 960, 1280)
W5_FORMATS = ("jpeg", "webp", "avif")
W5 = Workload("W5", "fan-out: 4 widths x JPEG/WebP/AVIF q80, each once", check_w1)
FANOUT_CONCURRENCY = 4


def w5_targets(kind: str, photo: Photo) -> list[tuple[str, int, str]]:
    """(URL path, width, format) of every W5 variant of `photo`, as `kind` spells them."""
    out = []
    for width in W5_WIDTHS:
        for fmt in W5_FORMATS:
            if kind == "pixfit":
                path = f"/images/{photo.name}?w={width}&q=80&format={fmt}"
            elif kind == "thumbor":
                path = f"/unsafe/{width}x0/filters:quality(80):format({fmt})/{photo.name}"
            else:
                path = f"/w_{width},q_80,f_{fmt}/{photo.name}"
            out.append((path, width, fmt))
    return out


# --- servers --------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    kind: str  # pixfit, ipx or thumbor: how URLs are spelled
    argv: list[str]
    workloads: list[Workload]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path = REPO
    warm: bool = False  # run wrk unrecorded first (result caches)
    main: bool = True  # counted in the ratios

    def target(self, workload: Workload, photo: Photo) -> str:
        if workload is W5:
            # Readiness only: nothing that would warm a fan-out server's masters.
            ready = {"pixfit": "/healthz", "thumbor": "/healthcheck"}
            return ready.get(self.kind, f"/w_16,f_jpeg/{photo.name}")
        if self.kind == "pixfit":
            return f"/images/{photo.name}?{workload.pixfit}"
        template = workload.thumbor if self.kind == "thumbor" else workload.ipx
        return template.format(name=photo.name)


def _clean_env(extra: dict[str, str]) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PIXFIT_", "VIPS_", "IPX_", "UV_THREADPOOL", "PROMETHEUS_"))
    }
    env.update(extra)
    return env


def servers(workdir: Path, photos_dir: Path) -> list[Server]:
    host = ["--host", "127.0.0.1", "--workers", str(WORKERS), "--root", str(photos_dir)]
    pixfit = [str(REPO / ".venv" / "bin" / "pixfit"), "serve", *host]
    node = ["node", str(PEERS / "ipx" / "server.mjs")]
    ipx_env = {"IPX_FS_DIR": str(photos_dir), "HOST": "127.0.0.1"}
    thumbor_bin = str(PEERS / "thumbor" / "bin" / "thumbor")
    plain = thumbor_conf(workdir / "thumbor.conf", photos_dir, None)
    stored = thumbor_conf(workdir / "thumbor-rs.conf", photos_dir, workdir / "thumbor-results")
    thumbor = [thumbor_bin, "--ip", "127.0.0.1", "--processes", str(WORKERS), "-l", "warning"]
    # W1 and W2 measure a render from the original, as the peers do: no result cache and
    # no reduced masters. W5 (a cold fan-out) runs on a fresh server with masters on.
    no_master = {"PIXFIT_CACHE_MASTER_BYTES": "0"}
    ipx_all = {**ipx_env, "IPX_WORKERS": str(WORKERS)}
    main = [
        Server("pixfit", "pixfit", pixfit, [W1, W2, W3B, W3F], no_master),
        Server("pixfit cache=memory", "pixfit", pixfit, [W4], {"PIXFIT_CACHE_KIND": "memory"}),
        Server("pixfit masters", "pixfit", pixfit, [W5]),
        Server("pixfit no masters", "pixfit", pixfit, [W5], no_master),
        Server(
            "pixfit mod_wsgi", "pixfit", mod_wsgi(workdir, "plain", photos_dir, no_master), [W1]
        ),
        Server(
            "pixfit mod_wsgi cache=memory", "pixfit",
            mod_wsgi(workdir, "memory", photos_dir, {"PIXFIT_CACHE_KIND": "memory"}), [W4],
        ),
        # Embedded mode: the app runs in Apache's own 2 processes, with no hop to a daemon.
        Server(
            "pixfit mod_wsgi embedded", "pixfit",
            mod_wsgi(workdir, "embedded", photos_dir, no_master, embedded=True), [W1],
        ),
        Server(
            "pixfit mod_wsgi embedded cache=memory", "pixfit",
            mod_wsgi(
                workdir, "embedded-memory", photos_dir, {"PIXFIT_CACHE_KIND": "memory"},
                embedded=True,
            ),
            [W4],
        ),
        Server("ipx", "ipx", node, [W1, W2], ipx_all),
        Server("ipx fan-out", "ipx", node, [W5], ipx_all),
        Server("thumbor", "thumbor", [*thumbor, "--conf", str(plain)], [W1, W2]),
        Server("thumbor fan-out", "thumbor", [*thumbor, "--conf", str(plain)], [W5]),
        Server("thumbor result-storage", "thumbor", [*thumbor, "--conf", str(stored)], [W4]),
    ]  # fmt: skip
    for server in main:
        server.warm = W4 in server.workloads
        server.main = not server.name.startswith(
            ("pixfit mod_wsgi", "pixfit no masters", "thumbor result")
        )
    # gunicorn's sync workers, against the gthread workers `pixfit serve` runs.
    sync = [str(REPO / ".venv" / "bin" / "gunicorn"), "-k", "sync", "-w", str(WORKERS)]
    sync += ["-b", "127.0.0.1:{port}", "pixfit.wsgi:application"]
    sync_env = {"PIXFIT_SOURCE_ROOT": str(photos_dir)}
    variants = [
        Server("pixfit gunicorn sync", "pixfit", sync, [W1], sync_env),
        Server(
            "pixfit gunicorn sync cache=memory",
            "pixfit",
            sync,
            [W4],
            {**sync_env, "PIXFIT_CACHE_KIND": "memory"},
            warm=True,
        ),
        Server("pixfit VIPS_CONCURRENCY=2", "pixfit", pixfit, [W1, W2], {"VIPS_CONCURRENCY": "2"}),
        Server("pixfit max_concurrent=2", "pixfit", pixfit, [W1, W2], {f"{LIMITS}CONCURRENT": "2"}),
        Server("pixfit max_concurrent=4", "pixfit", pixfit, [W1, W2], {f"{LIMITS}CONCURRENT": "4"}),
        Server("ipx 1 process", "ipx", node, [W1, W2], {**ipx_env, "IPX_WORKERS": "1"}),
    ]
    for server in variants:
        server.main = False
    chosen = main + (variants if VARIANTS else [])
    for server in chosen:
        server.env = _clean_env(server.env)
        if server.kind == "ipx":
            server.cwd = PEERS / "ipx"
    if ONLY:
        chosen = [s for s in chosen if s.name in ONLY or s.name.split()[0] in ONLY]
    return chosen


def mod_wsgi(
    workdir: Path,
    name: str,
    photos_dir: Path,
    env: dict[str, str] | None = None,
    *,
    embedded: bool = False,
    app: str = "from pixfit.wsgi import application\n",
) -> list[str]:
    """mod_wsgi-express serving this checkout's pixfit at /images: 2 processes, as many
    threads as `pixfit serve` gives a gunicorn worker, as www-data when run as root.

    Daemon mode (mod_wsgi-express's default) unless `embedded`. Apache starts under the
    glibc malloc tunables `pixfit serve` gives itself, through an envvars script, as
    README.md tells an operator to do in /etc/apache2/envvars. `app` is the script's code
    that defines `application` (bench/mod_wsgi_hits.py serves a trivial one).
    """
    from pixfit.config import Config  # noqa: PLC0415
    from pixfit.serve import MALLOC_TUNABLES, gunicorn_settings  # noqa: PLC0415

    settings = {"PIXFIT_SOURCE_ROOT": str(photos_dir), **(env or {})}
    # mod_wsgi's SetEnv reaches only the WSGI environ, so the script sets os.environ itself.
    script = workdir / f"mod-wsgi-{name}.wsgi"
    script.write_text(
        "import os, sys\n"
        f"sys.path.insert(0, {str(REPO / 'src')!r})\n"
        f"os.environ.update({settings!r})\n" + app
    )
    script.chmod(0o644)
    envvars = workdir / f"mod-wsgi-{name}.envvars"
    envvars.write_text(f"export GLIBC_TUNABLES={MALLOC_TUNABLES}\n")
    envvars.chmod(0o644)
    argv = [
        str(REPO / ".venv" / "bin" / "mod_wsgi-express"), "start-server", str(script),
        "--host", "127.0.0.1", "--port", "{port}", "--mount-point", "/images",
        "--server-root", str(workdir / f"mod-wsgi-{name}"), "--log-to-terminal",
        "--locale", "C.UTF-8", "--processes", str(WORKERS),
        "--threads", str(gunicorn_settings(Config())["threads"]),
        "--envvars-script", str(envvars),
    ]  # fmt: skip
    if embedded:
        argv.append("--embedded-mode")
    if os.geteuid() == 0:
        # Apache refuses to serve as root; www-data must reach the script and the photos
        # (mkdtemp made the scratch folder 700).
        argv += ["--user", "www-data", "--group", "www-data"]
        for folder in (workdir, photos_dir):
            folder.chmod(0o755)
    return argv


def thumbor_conf(path: Path, photos_dir: Path, results: Path | None) -> Path:
    # The file loader reads the photos; no_storage, because a copy of a local file in
    # thumbor's original-image storage would only read the same bytes from another folder.
    lines = [
        "LOADER = 'thumbor.loaders.file_loader'",
        f"FILE_LOADER_ROOT_PATH = {str(photos_dir)!r}",
        "STORAGE = 'thumbor.storages.no_storage'",
        "ENGINE = 'thumbor.engines.pil'",
    ]
    if results is None:
        lines.append("RESULT_STORAGE = None")
    else:
        lines += [
            "RESULT_STORAGE = 'thumbor.result_storages.file_storage'",
            f"RESULT_STORAGE_FILE_STORAGE_ROOT_PATH = {str(results)!r}",
            "RESULT_STORAGE_STORES_UNSAFE = True",
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


# --- process control ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Running:
    """A server started in its own session, stopped with its whole process group."""

    def __init__(self, server: Server, workdir: Path, pidfile: Path) -> None:
        self.server = server
        self.port = free_port()
        env = {**server.env, "PORT": str(self.port)}
        if any("{port}" in arg for arg in server.argv):
            argv = [arg.replace("{port}", str(self.port)) for arg in server.argv]
        elif server.kind != "ipx":
            argv = [*server.argv, "--port", str(self.port)]
        else:
            argv = server.argv
        slug = re.sub(r"[^a-z0-9]+", "-", server.name.lower())
        self.log = workdir / f"{slug}.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                argv, cwd=server.cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        with pidfile.open("a") as pids:
            pids.write(f"{self.process.pid}\n")
        self.base = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, target: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"exited with {self.process.returncode}; see {self.log}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(self.base + target, timeout=30) as response,
            ):
                response.read()
                return
            time.sleep(0.3)
        raise RuntimeError(f"not ready after {timeout:.0f} s; see {self.log}")

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=20)
        # Leftover children (forked workers) share the group even after the leader exits.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)


# --- memory ---------------------------------------------------------------------------


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def tree_pss_kib(root: int) -> int:
    """Sum of Pss over `root` and all its descendants, in KiB."""
    total = 0
    for pid in _tree(root):
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        match = re.search(r"^Pss:\s+(\d+) kB", text, re.MULTILINE)
        total += int(match.group(1)) if match else 0
    return total


class PssSampler(threading.Thread):
    """Samples the tree's PSS every 0.5 s while its server is under load.

    Only then: walking /proc and reading smaps_rollup for every idle server all the time
    cost this script about 0.4 of a core, which the server under test then lacked.
    """

    def __init__(self, root: int) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.samples: list[tuple[float, int]] = []
        self.halt = threading.Event()
        self.active = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            if not self.active.wait(SAMPLE_SECONDS):
                continue
            self.samples.append((time.monotonic(), tree_pss_kib(self.root)))
            self.halt.wait(SAMPLE_SECONDS)

    @contextlib.contextmanager
    def sampling(self) -> Iterator[None]:
        """Sample for the duration of the block."""
        self.active.set()
        try:
            yield
        finally:
            self.active.clear()

    def peak_mib(self, start: float, end: float) -> float:
        inside = [kib for t, kib in self.samples if start <= t <= end]
        return max(inside, default=0) / 1024


# --- CPU time -------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(root: int) -> float:
    """User plus system time of `root`'s tree, with the reaped children's (recycled workers)."""
    total = 0
    for pid in _tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(n) for n in fields[11:15])  # utime stime cutime cstime
    return total / _TICK


def tree_run_ns(root: int) -> int:
    """Nanoseconds every thread of `root`'s tree has run on a CPU (/proc/.../schedstat).

    Finer than tree_cpu_seconds' 10 ms ticks, for timing one request; threads that have
    exited no longer count, which suits servers whose threads live in pools.
    """
    total = 0
    for pid in _tree(root):
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{pid}/task").iterdir():
                with contextlib.suppress(OSError, ValueError):
                    total += int((task / "schedstat").read_text().split()[0])
    return total


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle since boot."""
    values = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return (sum(values[:8]) - idle) / _TICK


class CpuWindow:
    """The server tree's CPU time over a window, and the cores everything else used."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.start = time.monotonic()
        self.server = tree_cpu_seconds(root)
        self.busy = machine_busy_seconds()
        self.children = _children_cpu()

    def close(self) -> tuple[float, float]:
        """(server CPU seconds, cores used by other processes than the server and wrk)."""
        wall = time.monotonic() - self.start
        server = tree_cpu_seconds(self.root) - self.server
        load = _children_cpu() - self.children  # wrk, reaped by now
        other = machine_busy_seconds() - self.busy - server - load
        return server, max(other, 0.0) / wall


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wait_for_quiet() -> float | None:
    """Wait (up to QUIET_WAIT s) until other processes leave the cores idle.

    Returns None once the machine is quiet, or the cores still busy when the wait ran out.
    The benchmark shares its machine, and another process's test run would halve anyone's
    throughput.
    """
    deadline = time.monotonic() + QUIET_WAIT
    while True:
        busy = machine_busy_seconds()
        time.sleep(2)
        cores = (machine_busy_seconds() - busy) / 2
        if cores <= QUIET_MAX_CORES:
            return None
        if time.monotonic() > deadline:
            return cores
        print(f"   waiting for a quiet machine ({cores:.1f} cores busy)", flush=True)
        time.sleep(3)


# --- checking and loading -------------------------------------------------------------


def fetch(url: str) -> Output:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            data = response.read()
            status = response.status
            headers = {k.lower(): v for k, v in response.headers.items()}
    except urllib.error.HTTPError as error:
        return Output(error.code, "", 0, 0, 0, {})
    image = pyvips.Image.new_from_buffer(data, "")
    return Output(status, image.get("vips-loader"), image.width, image.height, len(data), headers)


def check_outputs(
    running: Running, workload: Workload, photos: list[Photo]
) -> tuple[str | None, float]:
    """The first problem with this workload's output for any photo, and the mean size in KB."""
    sizes = []
    for photo in photos:
        target = running.server.target(workload, photo)
        try:
            out = fetch(running.base + target)
        except (OSError, pyvips.Error) as error:
            return f"{photo.name}: {error}", 0.0
        if out.status != 200:
            return f"{photo.name}: HTTP {out.status}", 0.0
        problem = workload.check(photo, out)
        if problem:
            return f"{photo.name}: {problem}", 0.0
        sizes.append(out.size)
    return None, sum(sizes) / len(sizes) / 1000


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def parse_wrk(text: str) -> dict[str, float]:
    """Requests/s, p50 and p99 in ms, requests, and errors (non-2xx plus socket errors)."""

    def latency(percent: str) -> float:
        match = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.MULTILINE)
        return float(match.group(1)) * _UNITS_MS[match.group(2)] if match else float("nan")

    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    requests = re.search(r"(\d+) requests in", text)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    errors = sum(int(n) for n in sockets.groups()) if sockets else 0
    errors += int(non2xx.group(1)) if non2xx else 0
    return {
        "rps": float(rps.group(1)) if rps else 0.0,
        "p50": latency("50"),
        "p99": latency("99"),
        "requests": float(requests.group(1)) if requests else 0.0,
        "errors": float(errors),
    }


def run_wrk(base: str, paths_file: Path, seconds: int, log: Path) -> dict[str, float]:
    argv = [
        "wrk", f"-t{WRK_THREADS}", f"-c{WRK_CONNECTIONS}", f"-d{seconds}s", "--timeout", "10s",
        "--latency", "-s", str(LUA), base, "--", str(paths_file),
    ]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    log.write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        raise RuntimeError(f"wrk failed ({result.returncode}): {result.stderr.strip()}")
    return parse_wrk(result.stdout)


def pixfit_cache_counts(running: Running) -> dict[str, float]:
    # Under mod_wsgi the whole app, /metrics too, sits under the mount point.
    mount = "/images" if "mod_wsgi" in running.server.name else ""
    with urllib.request.urlopen(f"{running.base}{mount}/metrics", timeout=10) as response:
        text = response.read().decode()
    counts = {}
    for result in ("hit", "miss"):
        match = re.search(rf'^pixfit_cache_total{{result="{result}"}} ([\d.e+]+)', text, re.M)
        counts[result] = float(match.group(1)) if match else 0.0
    return counts


@dataclass
class Row:
    server: str
    workload: str
    main: bool
    rps: float = 0.0
    p50: float = float("nan")
    p99: float = float("nan")
    errors: float = 0.0
    peak_mib: float = 0.0
    out_kb: float = 0.0
    cpu_ms: float = 0.0
    other_cores: float = 0.0
    note: str = ""
    # W1 per photo only: the codec floor's and thumbor's CPU ms for the same photo.
    floor_ms: float = 0.0
    peer_ms: float = 0.0


def bench_all(
    servers: list[Server], photos: list[Photo], workdir: Path, pidfile: Path
) -> list[Row]:
    """Start every server, then run each workload on each server in turn.

    Interleaving (W1 on every server, then W2 on every server...) rather than one server
    after another spreads slow drifts in the machine's other load over all the servers
    alike. An idle server costs no CPU while another is loaded.
    """
    rows: list[Row] = []
    started: list[tuple[Running, PssSampler]] = []
    try:
        for server in servers:
            running = Running(server, workdir, pidfile)
            sampler = PssSampler(running.process.pid)
            try:
                running.wait_ready(server.target(server.workloads[0], photos[0]))
            except RuntimeError as error:
                print(f"== {server.name}: {error}", flush=True)
                running.stop()
                rows += [
                    Row(server.name, w.key, server.main, note=f"failed: {error}")
                    for w in server.workloads
                ]
                continue
            sampler.start()
            started.append((running, sampler))
        for workload in (W1, W2, W3B, W3F, W4, W5):
            for running, sampler in started:
                if workload in running.server.workloads:
                    print(f"== {running.server.name} {workload.key}", flush=True)
                    rows.append(bench_or_fail(running, sampler, workload, photos, workdir))
        rows += profile_w1(started, photos, workdir / "photos")
    finally:
        for running, sampler in started:
            sampler.halt.set()
            running.stop()
    order = {server.name: i for i, server in enumerate(servers)}
    keys = [w.key for w in (W1, W2, W3B, W3F, W4, W5)] + ["W1 per photo"]
    return sorted(rows, key=lambda r: (order.get(r.server, len(order)), keys.index(r.workload)))


def bench_or_fail(
    running: Running, sampler: PssSampler, workload: Workload, photos: list[Photo], workdir: Path
) -> Row:
    """The workload's row, or a row that says why it could not be measured."""
    server = running.server
    if running.process.poll() is not None:
        note = f"failed: the server had exited ({running.process.returncode}); see its log"
        return Row(server.name, workload.key, server.main, note=note)
    try:
        if workload is W5:
            return bench_fanout(running, sampler, photos)
        return bench_workload(running, sampler, workload, photos, workdir)
    except (RuntimeError, OSError) as error:
        print(f"   {workload.key}: {error}", flush=True)
        died = running.process.poll() is not None
        why = f"server exited ({running.process.returncode}) during the run" if died else error
        return Row(server.name, workload.key, server.main, note=f"failed: {why}")


def bench_workload(
    running: Running, sampler: PssSampler, workload: Workload, photos: list[Photo], workdir: Path
) -> Row:
    server = running.server
    row = Row(server.name, workload.key, server.main)
    problem, row.out_kb = check_outputs(running, workload, photos)
    if problem:
        row.note = f"check failed, not timed: {problem}"
        print(f"   {workload.key}: {row.note}", flush=True)
        return row
    slug = re.sub(r"[^a-z0-9]+", "-", f"{server.name}-{workload.key}".lower())
    paths = workdir / f"{slug}.paths"
    paths.write_text("".join(server.target(workload, p) + "\n" for p in photos))
    pixfit_cache = server.warm and server.kind == "pixfit"
    if server.warm:
        warm(running, paths, workdir / f"{slug}.warm.txt", pixfit_cache)
    notes = []
    idle = wait_for_quiet()
    if idle is not None:
        notes.append(f"machine busy before ({idle:.1f} cores)")
    before = pixfit_cache_counts(running) if pixfit_cache else None
    usage = CpuWindow(running.process.pid)
    start = time.monotonic()
    with sampler.sampling():
        stats = run_wrk(running.base, paths, DURATION, workdir / f"{slug}.wrk.txt")
    row.peak_mib = sampler.peak_mib(start, time.monotonic())
    server_cpu, other_cores = usage.close()
    row.rps, row.p50, row.p99 = stats["rps"], stats["p50"], stats["p99"]
    row.errors = stats["errors"]
    row.cpu_ms = server_cpu * 1000 / stats["requests"] if stats["requests"] else 0.0
    row.other_cores = other_cores
    if before is not None:
        after = pixfit_cache_counts(running)
        misses = after["miss"] - before["miss"]
        notes.append(f"{after['hit'] - before['hit']:.0f} hits, {misses:.0f} misses")
    row.note = "; ".join(notes)
    print(
        f"   {workload.key}: {row.rps:.1f} req/s, p50 {row.p50:.1f} ms, p99 {row.p99:.1f} ms, "
        f"{row.errors:.0f} errors, peak {row.peak_mib:.0f} MiB, {row.cpu_ms:.1f} CPU ms/req, "
        f"others {row.other_cores:.2f} cores {row.note}",
        flush=True,
    )
    return row


def bench_fanout(running: Running, sampler: PssSampler, photos: list[Photo]) -> Row:
    """W5: every variant of every photo once, FANOUT_CONCURRENCY at a time, cold.

    Photo by photo, as the pages that show them ask; a new connection per request
    (urllib's default). Outputs are checked after the timed window.
    """
    server = running.server
    row = Row(server.name, W5.key, server.main)
    targets = [t for photo in photos for t in w5_targets(server.kind, photo)]
    notes = []
    idle = wait_for_quiet()
    if idle is not None:
        notes.append(f"machine busy before ({idle:.1f} cores)")

    def get(target: tuple[str, int, str]) -> tuple[int, bytes, float]:
        started = time.monotonic()
        try:
            with urllib.request.urlopen(running.base + target[0], timeout=120) as response:
                return response.status, response.read(), time.monotonic() - started
        except urllib.error.HTTPError as error:
            return error.code, b"", time.monotonic() - started

    usage = CpuWindow(running.process.pid)
    start = time.monotonic()
    with sampler.sampling(), ThreadPoolExecutor(FANOUT_CONCURRENCY) as pool:
        answers = list(pool.map(get, targets))
    wall = time.monotonic() - start
    row.peak_mib = sampler.peak_mib(start, time.monotonic())
    server_cpu, row.other_cores = usage.close()
    row.rps = len(targets) / wall
    row.cpu_ms = server_cpu * 1000 / len(targets)
    latencies = sorted(seconds * 1000 for _, _, seconds in answers)
    row.p50, row.p99 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)]
    sizes = []
    for (path, width, fmt), (status, body, _) in zip(targets, answers, strict=True):
        problem = _fanout_problem(status, body, width, fmt)
        if problem:
            row.errors += 1
            notes.append(f"{path}: {problem}")
        sizes.append(len(body))
    row.out_kb = sum(sizes) / len(sizes) / 1000
    row.note = "; ".join(notes[:3])
    print(
        f"   W5: {row.rps:.1f} req/s over {len(targets)} variants, {row.cpu_ms:.1f} CPU ms each, "
        f"peak {row.peak_mib:.0f} MiB, {row.errors:.0f} errors, others "
        f"{row.other_cores:.2f} cores {row.note}",
        flush=True,
    )
    return row


_LOADERS = {"jpeg": "jpegload_buffer", "webp": "webpload_buffer", "avif": "heifload_buffer"}


def _fanout_problem(status: int, body: bytes, width: int, fmt: str) -> str | None:
    if status != 200:
        return f"HTTP {status}"
    try:
        image = pyvips.Image.new_from_buffer(body, "")
    except pyvips.Error as error:
        return str(error)
    if image.get("vips-loader") != _LOADERS[fmt]:
        return f"expected {fmt}, got {image.get('vips-loader')}"
    if image.width != width:
        return f"expected {width} px wide, got {image.width}"
    return None


def profile_w1(
    started: list[tuple[Running, PssSampler]], photos: list[Photo], photos_dir: Path
) -> list[Row]:
    """W1 photo by photo: CPU per render on pixfit and thumbor against the codec floor.

    Each server renders each photo's W1 URL PROFILE_REPEATS times, one at a time, and its
    process tree's CPU time is read around each request (the scheduler's run time of every
    thread, in nanoseconds). The floor is libjpeg-turbo alone on the same file: djpeg at
    the scale pixfit decodes at, plus cjpeg -quality 80 of the 800 px result (its input
    made beforehand); their CPU time as children of this script. All three take the best
    of PROFILE_REPEATS: other load only ever adds CPU time (caches, memory bandwidth), and
    until issue 14's second session the servers' mean was set against the floor's best.
    """
    chosen = {r.server.name: r for r, _ in started if r.server.name in ("pixfit", "thumbor")}
    if "pixfit" not in chosen or not shutil.which("djpeg"):
        return []
    rows = []
    print("== W1 per photo (CPU ms per render, sequential)", flush=True)
    for photo in photos:
        cpu = {}
        sizes = {}
        for name, running in chosen.items():
            url = running.base + running.server.target(W1, photo)
            fetch(url)  # untimed: first-request costs (imports, pools)
            best = float("inf")
            for _ in range(PROFILE_REPEATS):
                before = tree_run_ns(running.process.pid)
                with urllib.request.urlopen(url, timeout=60) as response:
                    sizes[name] = len(response.read())
                best = min(best, (tree_run_ns(running.process.pid) - before) / 1e6)
            cpu[name] = best
        floor = codec_floor(photos_dir, photo)
        thumbor = cpu.get("thumbor", float("nan"))
        note = (
            f"pixfit {cpu['pixfit']:.1f}, thumbor {thumbor:.1f}, floor {floor:.1f} CPU ms; "
            f"pixfit/floor {cpu['pixfit'] / floor:.2f}, pixfit/thumbor "
            f"{cpu['pixfit'] / thumbor:.2f}; bytes pixfit {sizes['pixfit']}, thumbor "
            f"{sizes.get('thumbor', 0)}"
        )
        print(f"   {photo.name}: {note}", flush=True)
        rows.append(
            Row(
                photo.name, "W1 per photo", False, rps=1.0, cpu_ms=cpu["pixfit"],
                out_kb=sizes["pixfit"] / 1000, note=note, floor_ms=floor,
                peer_ms=cpu.get("thumbor", 0.0),
            )
        )  # fmt: skip
    return rows


PROFILE_REPEATS = 5


def codec_floor(photos_dir: Path, photo: Photo) -> float:
    """CPU ms of djpeg at pixfit's shrink factor plus cjpeg q80 at 800 px, best of 5."""
    from pixfit.pipeline import COARSE_DECODE_QUALITY, SourceInfo, jpeg_shrink  # noqa: PLC0415
    from pixfit.registry import ImageFormat  # noqa: PLC0415

    source = photos_dir / photo.name
    height = round(800 * photo.height / photo.width)
    info = SourceInfo(ImageFormat.JPEG, photo.width, photo.height, has_alpha=False)
    # W1 pins q80: the scale pixfit decodes at for a pinned lossy quality that low.
    shrink = jpeg_shrink(info, 800, height, coarse=COARSE_DECODE_QUALITY >= 80)
    small = photos_dir.parent / f"{photo.name}.800.ppm"
    write_ppm(pyvips.Image.thumbnail(str(source), 800, height=height), small)
    best = float("inf")
    for _ in range(PROFILE_REPEATS):
        before = _children_cpu()
        subprocess.run(
            ["djpeg", "-scale", f"1/{shrink}", "-outfile", os.devnull, str(source)], check=True
        )
        subprocess.run(["cjpeg", "-quality", "80", "-outfile", os.devnull, str(small)], check=True)
        best = min(best, (_children_cpu() - before) * 1000)
    return best


def write_ppm(image: pyvips.Image, path: Path) -> None:
    """A binary PPM, cjpeg's input (the libvips wheel has no ppmsave)."""
    rgb = image.colourspace("srgb").cast("uchar")[:3]
    path.write_bytes(b"P6\n%d %d\n255\n" % (rgb.width, rgb.height) + rgb.write_to_memory())


def warm(running: Running, paths: Path, log: Path, pixfit_cache: bool) -> None:
    """Fill the result cache: wrk rounds until one has no pixfit cache miss (at most 5)."""
    for _ in range(5 if pixfit_cache else 2):
        before = pixfit_cache_counts(running) if pixfit_cache else None
        run_wrk(running.base, paths, WARM_SECONDS, log)
        if before is not None and pixfit_cache_counts(running)["miss"] == before["miss"]:
            return
    # Let renders queued by the last round finish before the timed run.
    time.sleep(1)


# --- report ---------------------------------------------------------------------------


def _find(rows: list[Row], server: str, workload: str) -> Row | None:
    for row in rows:
        if row.server == server and row.workload == workload and row.rps > 0:
            return row
    return None


def _ratio(a: Row | None, b: Row | None) -> float | None:
    return a.rps / b.rps if a and b and b.rps else None


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _cpu_ratio(a: Row | None, b: Row | None) -> float | None:
    return a.cpu_ms / b.cpu_ms if a and b and b.cpu_ms else None


def goals(rows: list[Row]) -> list[tuple[str, float | None, str, bool | None]]:
    """(what, value, goal, met) for each goal of the issues (14's first)."""

    def peak(server: str, workloads: tuple[str, ...]) -> float:
        return max((r.peak_mib for r in rows if r.server == server and r.workload in workloads),
                   default=0.0)  # fmt: skip

    def memory(mine: str, theirs: str, workloads: tuple[str, ...]) -> float | None:
        return peak(mine, workloads) / peak(theirs, workloads) if peak(theirs, workloads) else None

    profile = [r for r in rows if r.workload == "W1 per photo"]
    pixfit_cpu = _mean([r.cpu_ms for r in profile])
    floor = _mean([r.floor_ms for r in profile])
    thumbor_cpu = _mean([r.peer_ms for r in profile if r.peer_ms])
    main_rows = [r for r in rows if r.main]
    errors = sum(r.errors for r in main_rows)
    failed = [r for r in main_rows if r.note.startswith(("check failed", "failed"))]
    pix = {w: _find(rows, "pixfit", w) for w in ("W1", "W2", "W3 budget", "W3 fixed")}
    w4 = _find(rows, "pixfit cache=memory", "W4")
    w5 = _find(rows, "pixfit masters", "W5")
    table: list[tuple[str, float | None, str, float]] = [
        ("W4 req/s pixfit hits / thumbor result storage",
         _ratio(w4, _find(rows, "thumbor result-storage", "W4")), ">= 3", 3.0),
        ("W5 req/s pixfit / ipx", _ratio(w5, _find(rows, "ipx fan-out", "W5")), ">= 2", 2.0),
        ("W5 req/s pixfit / thumbor", _ratio(w5, _find(rows, "thumbor fan-out", "W5")),
         ">= 1.5", 1.5),
        ("W1 req/s pixfit / ipx", _ratio(pix["W1"], _find(rows, "ipx", "W1")), ">= 1.3", 1.3),
        ("W1 CPU per image pixfit / thumbor (wrk runs)",
         _cpu_ratio(pix["W1"], _find(rows, "thumbor", "W1")), "<= 1", 1.0),
        ("W1 CPU per image pixfit / thumbor (per photo, sequential)",
         pixfit_cpu / thumbor_cpu if pixfit_cpu and thumbor_cpu else None, "<= 1", 1.0),
        ("W1 CPU per image pixfit / codec floor (per photo)",
         pixfit_cpu / floor if pixfit_cpu and floor else None, "<= 1.15", 1.15),
        ("W2 req/s pixfit / ipx", _ratio(pix["W2"], _find(rows, "ipx", "W2")), ">= 1.2", 1.2),
        ("peak PSS pixfit / ipx (W1)", memory("pixfit", "ipx", ("W1",)), "<= 0.33", 1 / 3),
        ("peak PSS pixfit / ipx (W5)",
         peak("pixfit masters", ("W5",)) / peak("ipx fan-out", ("W5",))
         if peak("ipx fan-out", ("W5",)) else None, "<= 0.33", 1 / 3),
        ("W1 req/s mod_wsgi / pixfit serve",
         _ratio(_find(rows, "pixfit mod_wsgi", "W1"), pix["W1"]), ">= 0.9", 0.9),
        ("W4 req/s mod_wsgi / pixfit serve",
         _ratio(_find(rows, "pixfit mod_wsgi cache=memory", "W4"), w4), ">= 0.9", 0.9),
        ("W1 req/s mod_wsgi embedded / pixfit serve",
         _ratio(_find(rows, "pixfit mod_wsgi embedded", "W1"), pix["W1"]), ">= 0.9", 0.9),
        ("W4 req/s mod_wsgi embedded / pixfit serve",
         _ratio(_find(rows, "pixfit mod_wsgi embedded cache=memory", "W4"), w4), ">= 0.9",
         0.9),
        ("W3 req/s budget / fixed", _ratio(pix["W3 budget"], pix["W3 fixed"]), ">= 0.75", 0.75),
        ("errors in the main rows", errors if not failed else None, "= 0", 0.0),
    ]  # fmt: skip
    out = []
    for what, value, goal, limit in table:
        if value is None:
            met = None
        elif goal.startswith(">="):
            met = value >= limit
        elif goal.startswith("<="):
            met = value <= limit
        else:
            met = value == limit
        out.append((what, value, goal, met))
    return out


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}"


def report(rows: list[Row], header: list[str]) -> str:
    lines = [*header, ""]
    lines.append(
        "| server | workload | req/s | p50 ms | p99 ms | errors | peak PSS MiB "
        "| CPU ms/req | others (cores) | out KB | note |"
    )
    lines.append("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|---|")
    for r in rows:
        rps = f"{r.rps:.1f}" if r.rps else "-"
        peak = f"{r.peak_mib:.0f}" if r.peak_mib else "-"
        kb = f"{r.out_kb:.1f}" if r.out_kb else "-"
        lines.append(
            f"| {r.server} | {r.workload} | {rps} | {_ms(r.p50)} | {_ms(r.p99)} | "
            f"{r.errors:.0f} | {peak} | {r.cpu_ms:.{1 if r.cpu_ms >= 10 else 2}f} | "
            f"{r.other_cores:.2f} | {kb} | {r.note} |"
        )
    lines += ["", "| goal | measured | target | met |", "|---|--:|--:|---|"]
    for what, value, goal, met in goals(rows):
        shown = "-" if value is None else (f"{value:.0f}" if value >= 100 else f"{value:.2f}")
        verdict = {True: "yes", False: "**no**", None: "n/a"}[met]
        lines.append(f"| {what} | {shown} | {goal} | {verdict} |")
    lines += [
        "",
        "The same speed ratios from CPU time per request (capacity when the server has the",
        "cores to itself; less disturbed by other load than req/s):",
        "",
        "| ratio | CPU-time view |",
        "|---|--:|",
    ]
    for what, fast, slow in (
        ("W1 pixfit / ipx", ("pixfit", "W1"), ("ipx", "W1")),
        ("W1 pixfit / thumbor", ("pixfit", "W1"), ("thumbor", "W1")),
        ("W2 pixfit / ipx", ("pixfit", "W2"), ("ipx", "W2")),
        ("W3 budget / fixed", ("pixfit", "W3 budget"), ("pixfit", "W3 fixed")),
        ("W4 pixfit hits / thumbor result storage",
         ("pixfit cache=memory", "W4"), ("thumbor result-storage", "W4")),
        ("W4 mod_wsgi / pixfit serve",
         ("pixfit mod_wsgi cache=memory", "W4"), ("pixfit cache=memory", "W4")),
        ("W4 mod_wsgi embedded / pixfit serve",
         ("pixfit mod_wsgi embedded cache=memory", "W4"), ("pixfit cache=memory", "W4")),
        ("W5 pixfit / ipx", ("pixfit masters", "W5"), ("ipx fan-out", "W5")),
        ("W5 pixfit / thumbor", ("pixfit masters", "W5"), ("thumbor fan-out", "W5")),
    ):  # fmt: skip
        mine, theirs = _find(rows, *fast), _find(rows, *slow)
        if mine and theirs and mine.cpu_ms:
            lines.append(f"| {what} | {theirs.cpu_ms / mine.cpu_ms:.2f} |")
    return "\n".join(lines)


def _versions() -> str:
    def run(argv: list[str]) -> str:
        try:
            return subprocess.run(argv, capture_output=True, text=True, check=False).stdout.strip()
        except OSError:
            return "?"

    def package(path: Path) -> dict[str, object]:
        try:
            return dict(json.loads(path.read_text()))
        except (OSError, ValueError):
            return {}

    from importlib.metadata import version  # noqa: PLC0415

    from pixfit.config import Config  # noqa: PLC0415
    from pixfit.serve import gunicorn_settings  # noqa: PLC0415

    defaults = Config()
    threads = gunicorn_settings(defaults)["threads"]

    modules = PEERS / "ipx" / "node_modules"
    sharp = package(modules / "sharp" / "package.json")
    config = sharp.get("config")
    libvips = config.get("libvips") if isinstance(config, dict) else "?"
    thumbor_py = str(PEERS / "thumbor" / "bin" / "python")
    peer = run(
        [thumbor_py, "-c", "import thumbor, PIL; print(thumbor.__version__, PIL.__version__)"]
    )
    thumbor, _, pillow = peer.partition(" ")
    return (
        f"pixfit {version('pixfit')} (libvips {pyvips.version(0)}.{pyvips.version(1)}."
        f"{pyvips.version(2)}, gunicorn {version('gunicorn')} with {threads} threads per worker, "
        f"max_concurrent {defaults.limits.max_concurrent}); "
        f"ipx {package(modules / 'ipx' / 'package.json').get('version')} "
        f"(sharp {sharp.get('version')}, libvips "
        f"{libvips}, node {run(['node', '-v'])}); "
        f"thumbor {thumbor} (Pillow {pillow}, Python "
        f"{run([thumbor_py, '-c', 'import platform; print(platform.python_version())'])})"
    )


def _cpu() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


@contextlib.contextmanager
def _stop_on_term() -> Iterator[None]:
    # SIGTERM (from server.sh's trap) unwinds through the finally blocks like Ctrl-C.
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True, help="scratch folder (photos, logs)")
    parser.add_argument("--results", type=Path, default=PEERS / "server-results.md")
    args = parser.parse_args()
    workdir: Path = args.workdir
    photos = pick_photos(workdir / "photos")
    pidfile = workdir / "pids"
    listed = ", ".join(f"{p.name} {p.width}x{p.height}" for p in photos)
    print(f"photos: {listed}", flush=True)
    header = [
        f"{datetime.date.today().isoformat()}, {os.cpu_count()} cores ({_cpu()}), "
        f"{WORKERS} workers per server, wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{DURATION}s, "
        f"{len(photos)} photos ({listed}).",
        "",
        _versions() + ".",
    ]
    with _stop_on_term():
        rows = bench_all(servers(workdir, workdir / "photos"), photos, workdir, pidfile)
    text = report(rows, header)
    print("\n" + text, flush=True)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(text + "\n")
    print(f"\n(also in {args.results}; logs and wrk output in {workdir})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
