"""`pixfit serve`: the app under gunicorn, one worker process per core."""

from __future__ import annotations

import os
import random
import resource
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from gunicorn.app.base import BaseApplication

from pixfit.config import Config, ServerConfig
from pixfit.limiter import RENDERED_ENVIRON_KEY
from pixfit.rendering import limit_malloc_arenas

__all__ = [
    "MALLOC_TUNABLES",
    "PixfitServer",
    "gunicorn_settings",
    "restart_for_serving",
    "run_server",
    "serving_environ",
]

# Threads per worker beyond the render slots and the render queue (see gunicorn_settings).
SPARE_THREADS = 8
# Connections per worker (gunicorn's default is 1000). The worker raises its soft limit of
# open files to fit them, as far as the hard limit allows.
WORKER_CONNECTIONS = 5000
# prometheus_client's switch to metrics shared by all workers through files in a folder.
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
# glibc's malloc for a render server; glibc reads these only when a process starts, so
# `pixfit serve` restarts itself once with them (see restart_for_serving).
# - A fixed mmap threshold: large buffers (a progressive JPEG's coefficients, 88 MB for a
#   5120x2880 photo at 4:4:4) are mapped for each render and given back after it. glibc's
#   sliding threshold moved them into the heap after the first, where each worker kept
#   them: W1's peak PSS was about 100 MiB higher (bench/README.md, issue 14).
# - Huge pages for those maps (where the kernel's THP mode is madvise or always): mapping
#   88 MB in 4 KiB pages cost 20 ms of page faults per render; in 2 MiB pages about 1 ms.
# - Two arenas, as limit_malloc_arenas sets after start-up for processes pixfit does not
#   start itself.
MALLOC_TUNABLES = (
    "glibc.malloc.hugetlb=1:glibc.malloc.mmap_threshold=4194304:glibc.malloc.arena_max=2"
)
TUNABLES_ENV = "GLIBC_TUNABLES"
# Set beside PROMETHEUS_MULTIPROC_DIR when `pixfit serve` made that folder itself (and so
# removes it at exit); not PIXFIT_*, which the configuration would read as a setting.
OWNER_ENV = "PROMETHEUS_MULTIPROC_DIR_OWNER"
OWNER = "pixfit serve"


class PixfitServer(BaseApplication):  # type: ignore[misc]
    """gunicorn configured from a pixfit `Config` rather than from its own command line."""

    def __init__(self, config: Config, on_exit: Callable[[Any], None] | None = None) -> None:
        self.pixfit_config = config
        self.on_exit = on_exit
        super().__init__()

    def load_config(self) -> None:
        for key, value in gunicorn_settings(self.pixfit_config).items():
            self.cfg.set(key, value)
        if self.on_exit:
            self.cfg.set("on_exit", self.on_exit)

    def load(self) -> Any:
        # Imported here, after `serve` has chosen the metrics folder (see metrics.py).
        from pixfit.web import create_app  # noqa: PLC0415

        return create_app(self.pixfit_config)


def gunicorn_settings(config: Config) -> dict[str, Any]:
    """gunicorn settings that follow from the pixfit config."""
    limits = config.limits
    return {
        "bind": [f"{config.server.host}:{config.server.port}"],
        "workers": config.server.workers,
        # gthread whose event loop reads whole requests and sends to slow readers, so
        # that no thread ever waits on a client (see worker.py).
        "worker_class": "pixfit.worker.BufferingThreadWorker",
        # Threads, not more processes: libvips releases the GIL. Beyond the renders that
        # may run or wait, spare threads answer cheap requests (cache hits, 304s, errors)
        # and refuse surplus renders with an immediate 503 rather than leaving them in
        # gunicorn's accept queue.
        "threads": limits.max_concurrent + limits.max_queue + SPARE_THREADS,
        # Connections a worker holds while they send requests or read answers slowly: each
        # costs a socket and its bytes, never a thread.
        "worker_connections": WORKER_CONNECTIONS,
        # A worker is only killed if a request outlives the render and fetch deadlines.
        "timeout": int(limits.render_timeout + config.source.fetch_timeout + 10),
        # The master kills workers that are still there this long after SIGTERM.
        "graceful_timeout": config.server.grace_period,
        "post_worker_init": partial(_drain_on_sigterm, config.server.grace_period),
        "keepalive": 5,
        # Workers are recycled so that slow heap growth under libvips can never accumulate,
        # but after so many renders, not requests: cache hits and 304s grow nothing, and
        # counting them would throw a warm memory cache away every few seconds under load.
        "max_requests": 0,
        "post_fork": partial(_set_up_worker, config.server),
        "post_request": _count_renders,
        "accesslog": None,  # pixfit writes its own access log ([log] access_file)
        "child_exit": _forget_worker,
        "proc_name": "pixfit",
        "control_socket_disable": True,  # no gunicornc; one socket path per user would clash
    }


def _set_up_worker(server: ServerConfig, _server: Any, worker: Any) -> None:
    recycle_after = server.recycle_after_renders
    worker.request_seconds = server.request_timeout
    worker.send_stall_seconds = server.send_timeout
    _raise_open_files(WORKER_CONNECTIONS + 256)
    limit_malloc_arenas()
    # Up to 10% more, so that workers started together do not all restart together.
    jitter = random.randint(0, recycle_after // 10)
    worker.pixfit_renders_left = recycle_after + jitter if recycle_after else None


def _drain_on_sigterm(grace_period: int, worker: Any) -> None:
    """Make the worker drain on SIGTERM instead of closing its socket at once.

    gunicorn's own SIGTERM stops accepting straight away, so a load balancer that has not
    yet seen /readyz fail gets refused connections. Instead the worker keeps answering:
    /readyz and every new render get 503 with Retry-After, cache hits are still served,
    and once the requests in flight are done (or the grace period is over) gunicorn's
    own graceful exit runs.
    """
    service = worker.wsgi.extensions.get("pixfit")
    if service is None:
        return
    slots = service.slots

    def finish() -> None:
        slots.wait_idle(grace_period)
        worker.handle_exit(signal.SIGTERM, None)

    def drain(_signum: int, _frame: Any) -> None:
        if not slots.closed:
            worker.log.info("draining worker %s", worker.pid)
            slots.close()
            threading.Thread(target=finish, name="pixfit-drain", daemon=True).start()

    signal.signal(signal.SIGTERM, drain)


def _raise_open_files(wanted: int) -> None:
    # systemd and many shells start services with a soft limit of 1024 open files.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def _count_renders(worker: Any, _request: Any, environ: dict[str, Any], _response: Any) -> None:
    # The web layer marks requests that rendered. Clearing `alive` is how gunicorn's own
    # max_requests ends a worker: it finishes the requests in hand, and the master forks
    # a fresh one.
    if worker.pixfit_renders_left is None or not environ.get(RENDERED_ENVIRON_KEY):
        return
    worker.pixfit_renders_left -= 1
    if worker.pixfit_renders_left <= 0 and worker.alive:
        worker.log.info("recycling worker %s after its renders", worker.pid)
        worker.alive = False


def serving_environ(
    environ: Mapping[str, str], libc: str, new_folder: Callable[[], str]
) -> dict[str, str] | None:
    """The environment `pixfit serve` restarts itself in, once; None: go on as is.

    - MALLOC_TUNABLES, on glibc, unless GLIBC_TUNABLES is set: by the restart itself, or
      by an operator, whose own setting (even an empty one) wins.
    - A fresh metrics folder (`new_folder()`) unless PROMETHEUS_MULTIPROC_DIR is set:
      prometheus_client picks its storage when first imported, which the `pixfit` command
      has already done (its `purge` imports the service), so setting the variable later
      left every worker counting alone. OWNER_ENV marks the folder as the server's own.
    """
    wanted = dict(environ)
    if libc.startswith("glibc") and TUNABLES_ENV not in environ:
        wanted[TUNABLES_ENV] = MALLOC_TUNABLES
    if not environ.get(MULTIPROCESS_ENV):
        wanted |= {MULTIPROCESS_ENV: new_folder(), OWNER_ENV: OWNER}
    return wanted if wanted != environ else None


def restart_for_serving() -> None:
    """Replace this process with itself under `serving_environ`, unless it already runs so.

    For the `pixfit serve` command, whose process is pixfit's own; not for `run_server`,
    which a host program may call from a process it owns.
    """
    try:
        libc = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError):  # not glibc
        libc = ""
    environ = serving_environ(os.environ, libc, _new_metrics_folder)
    if environ is not None:
        os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], environ)


def _new_metrics_folder() -> str:
    return tempfile.mkdtemp(prefix="pixfit-metrics-")


def run_server(config: Config) -> None:
    """Run gunicorn in the foreground until it is stopped."""
    folder = os.environ.get(MULTIPROCESS_ENV)
    if folder and os.environ.get(OWNER_ENV) != OWNER:
        PixfitServer(config).run()  # the operator's folder, left as it is
        return
    # Workers share metrics through files in a fresh folder per server run. It is removed
    # by the master's on_exit hook, not by a `with` block here: forked workers inherit
    # this frame and would run the block's clean-up when they exit (recycling, SIGTERM).
    if not folder:
        folder = _new_metrics_folder()
        os.environ[MULTIPROCESS_ENV] = folder
    owned = folder
    PixfitServer(config, on_exit=lambda _arbiter: shutil.rmtree(owned, ignore_errors=True)).run()


def _forget_worker(_server: Any, worker: Any) -> None:
    # Drop a dead worker's live gauges (the queue length) from the sums.
    from prometheus_client import multiprocess  # noqa: PLC0415

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
