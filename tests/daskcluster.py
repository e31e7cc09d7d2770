"""A real dask.distributed cluster for tests: `dask scheduler` and `dask worker` processes.

Each process is started on 127.0.0.1 with a free port and stopped at exit; the workers
import pixfit from this checkout.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from distributed import Client

REPO = Path(__file__).resolve().parent.parent


def dask_command() -> list[str]:
    script = Path(sys.executable).with_name("dask")
    found = str(script) if script.exists() else shutil.which("dask")
    if found is None:
        pytest.fail("the dask command is missing: pip install 'pixfit[dask]' (in the dev extra)")
    return [found]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def _process(command: list[str], log: Path, env: dict[str, str]) -> Iterator[None]:
    with log.open("ab") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
    try:
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def dask_cluster(
    folder: Path, workers: int = 2, env: dict[str, str] | None = None
) -> Iterator[str]:
    """Start a scheduler and `workers` single-threaded worker processes; yield its address."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    environ = {**os.environ, **(env or {})}
    environ["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(REPO)])
    environ.pop("VIPS_CONCURRENCY", None)  # pixfit must set libvips up by itself
    quiet = ["--no-dashboard"]
    with ExitStack() as stack:
        stack.enter_context(
            _process(
                [*dask_command(), "scheduler", "--host", "127.0.0.1", "--port", str(port), *quiet],
                folder / "scheduler.log",
                environ,
            )
        )
        for number in range(workers):
            stack.enter_context(
                _process(
                    [*dask_command(), "worker", address, "--nthreads", "1", "--host",
                     "127.0.0.1", "--name", f"w{number}", "--local-directory",
                     str(folder / f"w{number}"), *quiet],
                    folder / f"worker{number}.log",
                    environ,
                )
            )  # fmt: skip
        try:
            with Client(address, timeout=60) as client:
                client.wait_for_workers(workers, timeout=120)
        except (OSError, TimeoutError):
            logs = "\n".join(path.read_text()[-1500:] for path in folder.glob("*.log"))
            pytest.fail(f"the dask cluster did not start:\n{logs}")
        yield address
