"""A real S3-compatible server for tests: moto's standalone `moto_server`, on a free port.

It speaks S3 over HTTP like any store, so pixfit's boto3 client is the one under test;
nothing is patched in process. Buckets and objects are made over HTTP by `client()`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

# Any key works with moto unless it checks signatures; these stand for real AWS variables.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "pixfit-test",
    "AWS_SECRET_ACCESS_KEY": "pixfit-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def moto_command() -> list[str]:
    script = Path(sys.executable).with_name("moto_server")
    found = str(script) if script.exists() else shutil.which("moto_server")
    if found is None:
        pytest.fail("moto_server is missing: pip install 'moto[server]' (in the dev extra)")
    return [found]


@dataclass(frozen=True)
class MotoServer:
    """A running moto_server; `url` is its endpoint, `log` where it notes each request."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def requests(self, method: str, path: str) -> int:
        """How many `method` requests for `path` (/bucket/key) it has served so far."""
        return self.log.read_text(errors="replace").count(f'"{method} {path} ')

    def client(self, **credentials: str) -> Any:
        """A boto3 S3 client of the test's own (not pixfit's) for set-up and checks."""
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=credentials.get("key", CREDENTIALS["AWS_ACCESS_KEY_ID"]),
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    def bucket(self, name: str) -> Any:
        """Make bucket `name` and return a client to fill it with."""
        client = self.client()
        client.create_bucket(Bucket=name)
        return client


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def moto_server(log: Path, *, check_credentials: bool = False) -> Iterator[MotoServer]:
    """Start moto_server on 127.0.0.1, wait until it answers, stop it at exit.

    With `check_credentials`, moto checks every request's key against its IAM users, of
    which there are none: any key is refused as a real store refuses a wrong one.
    """
    port = free_port()
    env = {**os.environ, **CREDENTIALS}
    if check_credentials:
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = "0"
    with log.open("ab") as sink:
        process = subprocess.Popen(
            [*moto_command(), "-H", "127.0.0.1", "-p", str(port)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/moto-api/data.json", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"moto_server did not start:\n{log.read_text()[-2000:]}")
                time.sleep(0.1)
        yield MotoServer(url, process, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """One moto_server for a test module; tests keep to buckets of their own."""
    folder = tmp_path_factory.mktemp("moto")
    with moto_server(folder / "moto.log") as server:
        yield server
