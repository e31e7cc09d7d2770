"""pixfit really runs under Apache mod_wsgi.

`mod_wsgi-express` (pip's `mod_wsgi`, built by `make test` when Apache's `apxs` is present)
starts a private Apache on a free port of 127.0.0.1, mounting a WSGI script file that imports
`pixfit.wsgi` at /images, exactly as `WSGIScriptAlias /images` does in production. The tests
then talk HTTP to it. The only reason to skip is a machine without Apache's dev files.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

import pytest
import pyvips

import pixfit
from pixfit.serve import MALLOC_TUNABLES
from tests.conftest import require_tool, shown

EXPRESS = Path(sys.prefix) / "bin" / "mod_wsgi-express"
DEPLOY_CONF = Path(__file__).parent.parent / "deploy" / "apache-pixfit.conf"
IS_ROOT = os.geteuid() == 0
# Every wait is bounded, so a broken Apache fails the run instead of hanging it.
START_TIMEOUT = 30.0
REQUEST_TIMEOUT = 20.0
STOP_TIMEOUT = 20.0


def slow_client_lines() -> str:
    """The vhost's RequestReadTimeout line and its <If> block that refuses request bodies."""
    lines = DEPLOY_CONF.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if "RequestReadTimeout" in line)
    refuse = next(i for i, line in enumerate(lines) if line.strip().startswith("<If "))
    end = next(i for i in range(refuse, len(lines)) if lines[i].strip() == "</If>")
    return "\n".join([lines[start], *lines[refuse : end + 1]]) + "\n"


@dataclass
class Reply:
    status: int
    headers: Message
    body: bytes


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # Report a redirect as it is instead of following it somewhere else.
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


# No proxy: CI may set http_proxy, and 127.0.0.1 must be reached directly.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


def _get(url: str) -> Reply:
    try:
        with _OPENER.open(url, timeout=REQUEST_TIMEOUT) as response:
            return Reply(response.status, response.headers, response.read())
    except urllib.error.HTTPError as error:
        with error:
            return Reply(error.code, error.headers, error.read())


@dataclass
class Apache:
    base: str  # http://127.0.0.1:PORT/images
    source: Path  # the JPEG being served, as photo.jpg
    log: Path  # Apache's error log, which includes pixfit's own stderr

    def get(self, path: str) -> Reply:
        return _get(self.base + path)

    @contextlib.contextmanager
    def log_on_failure(self) -> Iterator[None]:
        """Print Apache's log if the block fails; pytest shows it under the failure."""
        try:
            yield
        except BaseException:
            print(f"--- {self.log} ---\n{self.log.read_text(errors='replace')}")
            raise


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _closed_to_others(paths: list[Path]) -> list[Path]:
    """Directories on the way to `paths` that users other than the owner cannot traverse."""
    closed: list[Path] = []
    for path in paths:
        for directory in [path, *path.parents]:
            if directory.is_dir() and not directory.stat().st_mode & stat.S_IXOTH:
                closed.append(directory)
    return sorted(set(closed))


def _group_alive(pgid: int) -> list[int]:
    """Live (not zombie) processes in process group `pgid`, read from /proc."""
    alive = []
    for entry in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            # pid (comm) state ppid pgrp ...; comm may hold spaces, so split after ")".
            fields = entry.read_text().rpartition(")")[2].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                alive.append(int(entry.parent.name))
    return alive


def _wait_group_gone(pgid: int, timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while (alive := _group_alive(pgid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return alive


@pytest.fixture(scope="module")
def apache() -> Iterator[Apache]:
    yield from _apache(xsendfile=False)


# Debian's libapache2-mod-xsendfile (in .ci/apt-packages.txt, which `make deps` installs).
XSENDFILE_MODULE = Path("/usr/lib/apache2/modules/mod_xsendfile.so")


@pytest.fixture(scope="module")
def apache_xsendfile() -> Iterator[Apache]:
    """Apache with mod_xsendfile, serving pixfit with a disk cache and `server.x_sendfile`."""
    require_tool("mod_xsendfile (apt package libapache2-mod-xsendfile)", XSENDFILE_MODULE.exists())
    yield from _apache(xsendfile=True)


@pytest.fixture(scope="module")
def apache_embedded() -> Iterator[Apache]:
    """pixfit in embedded mode (inside Apache's own process), with a memory cache and the
    malloc tunables README.md gives Apache, as bench/mod_wsgi_hits.py measures it."""
    yield from _apache(xsendfile=False, embedded=True)


def _apache(*, xsendfile: bool, embedded: bool = False) -> Iterator[Apache]:
    if not EXPRESS.exists():
        if shutil.which("apxs") or Path("/usr/bin/apxs").exists():
            pytest.fail(f"apxs is installed but {EXPRESS} is missing: run `make test`")
        require_tool("apxs (Apache's dev files, to build mod_wsgi)", present=False)
    if IS_ROOT:
        # Apache refuses to serve as root, so the app runs as www-data, which must reach
        # the Python, the venv and the source tree (an editable install) to import pixfit.
        closed = _closed_to_others(
            [Path(sys.base_prefix), Path(sys.prefix), Path(pixfit.__file__).parent]
        )
        if closed:
            pytest.fail(
                "www-data cannot traverse "
                + ", ".join(map(str, closed))
                + ": `chmod o+x` them (.ci/run does so for the Python and the checkout)"
            )

    # Our own temp dir, not pytest's tmp_path: /tmp/pytest-of-root is mode 700 (and pytest
    # resets it), and mkdtemp makes 700 too, so open it up for www-data: 755 directories,
    # 644 files. Nothing secret goes in it.
    tmp = Path(tempfile.mkdtemp(prefix="pixfit-mod-wsgi-"))
    try:
        yield from _serve(tmp, xsendfile=xsendfile, embedded=embedded)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _serve(tmp: Path, *, xsendfile: bool, embedded: bool) -> Iterator[Apache]:
    tmp.chmod(0o755)
    images = tmp / "images"
    images.mkdir(mode=0o755)
    images.chmod(0o755)  # mkdir's mode is masked by the umask
    source = images / "photo.jpg"
    pyvips.Image.black(1200, 800, bands=3).draw_rect(
        [200, 120, 40], 300, 200, 600, 400, fill=True
    ).write_to_file(str(source), Q=90)
    source.chmod(0o644)
    # A symlink out of the root: pixfit must refuse it like any other way out.
    (images / "escape.jpg").symlink_to("/etc/passwd")

    # The WSGI script file, as deploy/pixfit.wsgi: mod_wsgi's --setenv (SetEnv) only reaches
    # each request's WSGI environ, never os.environ where pixfit reads its configuration.
    settings = {"PIXFIT_SOURCE_ROOT": str(images)}
    # Extra Apache configuration: the vhost's slow-client lines, as deploy/apache-pixfit.conf
    # has them, and mod_xsendfile when asked for (mod_wsgi-express takes one include file).
    include = tmp / "include.conf"
    included = slow_client_lines()
    if xsendfile:
        # The daemon (www-data) writes the cache; Apache reads the files it names.
        cache = tmp / "cache"
        cache.mkdir(mode=0o777)
        cache.chmod(0o777)
        settings |= {
            "PIXFIT_CACHE_KIND": "disk",
            "PIXFIT_CACHE_PATH": str(cache),
            "PIXFIT_SERVER_X_SENDFILE": "true",
        }
        included += (
            f"LoadModule xsendfile_module {XSENDFILE_MODULE}\nXSendFile On\nXSendFilePath {cache}\n"
        )
    if embedded:
        settings["PIXFIT_CACHE_KIND"] = "memory"
    include.write_text(included)
    include.chmod(0o644)
    script = tmp / "pixfit.wsgi"
    script.write_text(
        textwrap.dedent(f"""\
            import os

            os.environ.update({settings!r})
            from pixfit.wsgi import application  # noqa: E402
            """)
    )
    script.chmod(0o644)

    server_root = tmp / "apache"
    log = tmp / "apache.log"
    port = _free_port()
    command = [
        str(EXPRESS),
        "start-server",
        str(script),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--mount-point",
        "/images",
        "--server-root",
        str(server_root),
        "--log-to-terminal",
        "--locale",
        "C.UTF-8",
        "--processes",
        "1",
        "--threads",
        "2",
        "--startup-timeout",
        "20",
        "--shutdown-timeout",
        "5",
        # Apache threads for the slow clients below (the vhost's comment sizes them for
        # production); the daemon keeps its one process of two threads.
        "--max-clients",
        "150",
        "--include-file",
        str(include),
    ]
    if embedded:
        settings_file = tmp / "envvars"
        settings_file.write_text(f"export GLIBC_TUNABLES={MALLOC_TUNABLES}\n")
        settings_file.chmod(0o644)
        command += ["--embedded-mode", "--envvars-script", str(settings_file)]
    if IS_ROOT:
        command += ["--user", "www-data", "--group", "www-data"]
    # A clean environment for Apache: no PIXFIT_* from the caller, and a locale that exists.
    env = {key: value for key, value in os.environ.items() if not key.startswith("PIXFIT_")}
    env.update(LC_ALL="C.UTF-8", LANG="C.UTF-8")

    with open(log, "wb") as log_file:
        # Its own session, so that the whole Apache process group can be found and killed.
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    server = Apache(f"http://127.0.0.1:{port}/images", source, log)
    try:
        _wait_ready(server, process)
        yield server
    finally:
        _stop(process, server_root, env, log)


def _wait_ready(server: Apache, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    last = "no answer"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            reply = server.get("/photo.jpg")
        except OSError as error:  # refused while Apache starts
            last = repr(error)
        else:
            if reply.status == 200:
                return
            last = f"{reply.status} {reply.body[:500]!r}"
        time.sleep(0.25)
    pytest.fail(
        f"mod_wsgi-express not serving after {START_TIMEOUT:.0f} s "
        f"(exit code {process.poll()}, last: {last}); log:\n"
        + server.log.read_text(errors="replace")
    )


def _stop(
    process: subprocess.Popen[bytes], server_root: Path, env: dict[str, str], log: Path
) -> None:
    """`apachectl stop`, then make sure the whole process group is gone, all bounded."""
    apachectl = server_root / "apachectl"
    if apachectl.exists() and process.poll() is None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            subprocess.run(
                [str(apachectl), "stop"],
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=STOP_TIMEOUT,
                check=False,
            )
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=STOP_TIMEOUT)
    left = _wait_group_gone(process.pid, 5.0)
    if left or process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        _wait_group_gone(process.pid, 5.0)
        pytest.fail(
            f"Apache (pids {left or [process.pid]}) outlived `apachectl stop` and was killed; "
            "log:\n" + log.read_text(errors="replace")
        )


def test_resizes_and_converts_to_webp(apache: Apache) -> None:
    with apache.log_on_failure():
        reply = apache.get("/photo.jpg?w=300&format=webp")
        assert reply.status == 200, reply.body[:1000]
        assert reply.headers["Content-Type"] == "image/webp"
        assert int(reply.headers["Content-Length"]) == len(reply.body)
        image = shown(reply.body)
        assert (image.width, image.height) == (300, 200)


def test_original_bytes_without_options(apache: Apache) -> None:
    with apache.log_on_failure():
        reply = apache.get("/photo.jpg")
        assert reply.status == 200, reply.body[:1000]
        assert reply.headers["Content-Type"] == "image/jpeg"
        assert reply.body == apache.source.read_bytes()


@pytest.mark.parametrize(
    "path",
    [
        "/../etc/passwd",
        "/%2e%2e/etc/passwd",
        "/..%2f..%2f..%2fetc%2fpasswd",
        "/..%5c..%5c..%5cetc%5cpasswd",
        "/escape.jpg",
    ],
)
def test_no_way_out_of_the_root(apache: Apache, path: str) -> None:
    # Apache answers the first three itself (it merges dot segments and refuses encoded
    # slashes, with 404); the backslashes and the symlink reach pixfit, which says 403.
    # Either way nothing outside the image root may be served.
    with apache.log_on_failure():
        reply = apache.get(path)
        assert reply.status in (403, 404), (reply.status, reply.body[:1000])
        assert b"root:" not in reply.body


def test_bad_option_is_a_problem(apache: Apache) -> None:
    with apache.log_on_failure():
        reply = apache.get("/photo.jpg?w=abc")
        assert reply.status == 400, reply.body[:1000]
        assert reply.headers["Content-Type"].startswith("application/problem+json")
        problem = json.loads(reply.body)
        assert problem["status"] == 400
        assert "abc" in problem["detail"]
        assert str(apache.source.parent) not in reply.body.decode()


def test_disk_hits_go_out_through_x_sendfile(apache_xsendfile: Apache) -> None:
    with apache_xsendfile.log_on_failure():
        first = apache_xsendfile.get("/photo.jpg?w=300&q=70&format=jpeg")
        assert first.status == 200 and "decode" in first.headers["Server-Timing"]
        for _ in range(2):
            hit = apache_xsendfile.get("/photo.jpg?w=300&q=70&format=jpeg")
            assert hit.status == 200
            assert hit.headers["Server-Timing"] == 'cache;desc="hit"'
            # Apache sent the cached file itself: the body is whole, the header that named
            # the file (a path inside the server) never reaches the client.
            assert "X-Sendfile" not in hit.headers
            assert hit.body == first.body
            assert int(hit.headers["Content-Length"]) == len(first.body)
            assert hit.headers["Content-Type"] == "image/jpeg"
            assert hit.headers["ETag"] == first.headers["ETag"]
            image = shown(hit.body)
            assert (image.width, image.height) == (300, 200)


def test_embedded_mode_renders_and_answers_hits_from_memory(apache_embedded: Apache) -> None:
    with apache_embedded.log_on_failure():
        first = apache_embedded.get("/photo.jpg?w=300&q=70&format=jpeg")
        assert first.status == 200 and "decode" in first.headers["Server-Timing"]
        image = shown(first.body)
        assert (image.width, image.height) == (300, 200)
        hit = apache_embedded.get("/photo.jpg?w=300&q=70&format=jpeg")
        assert hit.status == 200
        assert hit.headers["Server-Timing"] == 'cache;desc="hit"'
        assert hit.body == first.body
        assert int(hit.headers["Content-Length"]) == len(first.body)
        assert hit.headers["ETag"] == first.headers["ETag"]
        bad = apache_embedded.get("/photo.jpg?w=abc")
        assert bad.status == 400
        assert bad.headers["Content-Type"] == "application/problem+json"


def test_survives_slow_clients_and_cuts_them_by_the_vhost_timeouts(apache: Apache) -> None:
    # More dribbling connections than pixfit's daemon has threads (2) many times over:
    # request heads that never end, and a body that never comes. Apache reads heads in its
    # own threads and mod_reqtimeout cuts them at 10-20 s; bodies are refused at once.
    assert "RequestReadTimeout" in DEPLOY_CONF.read_text()
    port = int(apache.base.split(":")[2].split("/")[0])
    heads = b"GET /images/photo.jpg?w=64 HTTP/1.1\r\nHost: x\r\nX-Slow: a"
    body = b"POST /images/photo.jpg HTTP/1.1\r\nHost: x\r\nContent-Length: 9999\r\n\r\nab"
    slow = []
    with apache.log_on_failure():
        for head in [heads] * 60 + [body] * 20:
            sock = socket.create_connection(("127.0.0.1", port), timeout=REQUEST_TIMEOUT)
            sock.sendall(head)
            slow.append(sock)
        try:
            for _ in range(10):
                reply = apache.get("/photo.jpg?w=120")
                assert reply.status == 200, reply.body[:500]
                assert pyvips.Image.new_from_buffer(reply.body, "").width == 120
            # Every slow head is answered 408 and closed (mod_reqtimeout's own answer).
            for sock in slow[:60]:
                sock.settimeout(40)
                assert sock.makefile("rb").readline().startswith(b"HTTP/1.1 408"), sock
            # The bodies were refused before the daemon saw them (Apache answers once it
            # has discarded the body, or its timeout has passed: 403 or 408).
            for sock in slow[60:]:
                sock.settimeout(60)
                line = sock.makefile("rb").readline()
                assert line.split()[1:2] in ([b"403"], [b"408"]), line
            assert '"POST /photo.jpg' not in apache.log.read_text(errors="replace")
        finally:
            for sock in slow:
                sock.close()
        assert apache.get("/photo.jpg?w=120").status == 200
