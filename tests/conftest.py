"""Shared test helpers: images generated with pyvips at run time, and rendered bytes read
back as pixels. Nothing binary is committed.

The helpers are plain functions (import them with `from tests.conftest import ...`);
fixtures that build something costly once belong here too, with a module or session scope.
"""

from __future__ import annotations

import os
import socket
import socketserver
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import pytest
import pyvips
import urllib3.util.connection

import pixfit

RED = (255, 0, 0)
GREEN = (0, 255, 0)
BLUE = (0, 0, 255)
WHITE = (255, 255, 255)
GREY = (128, 128, 128)

# Grain layers of `photo`: (feature size in px, standard deviation in levels).
_GRAIN = ((1, 14), (3, 22), (9, 30), (27, 36))


def solid(width: int, height: int, colour: Sequence[int]) -> pyvips.Image:
    """One colour, 8-bit; one value is greyscale, three sRGB, four sRGB with alpha."""
    image = (pyvips.Image.black(width, height) + list(colour)).cast("uchar")
    return image.copy(interpretation="b-w" if len(colour) == 1 else "srgb")


def grey16(width: int, height: int) -> pyvips.Image:
    """16-bit greyscale of the same level as GREY (128 * 257 = 32896 of 65535)."""
    return (
        (solid(width, height, GREY[:1]).cast("ushort") * 257)
        .cast("ushort")
        .copy(interpretation="grey16")
    )


def halves(
    width: int, height: int, first: Sequence[int], second: Sequence[int], *, vertical: bool
) -> pyvips.Image:
    """`first` on the left (or top, when `vertical`) half and `second` on the other."""
    if vertical:
        top = solid(width, height // 2, first)
        return top.join(solid(width, height - top.height, second), "vertical")
    left = solid(width // 2, height, first)
    return left.join(solid(width - left.width, height, second), "horizontal")


def quadrants(
    width: int,
    height: int,
    colours: tuple[Sequence[int], Sequence[int], Sequence[int], Sequence[int]],
) -> pyvips.Image:
    """Four colour blocks, given as (top left, top right, bottom left, bottom right)."""
    top_left, top_right, bottom_left, bottom_right = colours
    top = halves(width, height // 2, top_left, top_right, vertical=False)
    bottom = halves(width, height - top.height, bottom_left, bottom_right, vertical=False)
    return top.join(bottom, "vertical")


def photo(width: int, height: int, seed: int = 0) -> pyvips.Image:
    """A detailed, photo-like sRGB image in memory: gradients under grain at four scales.

    Grain at several feature sizes keeps detail after downscaling, so it stays as hard to
    compress as a photo at every output size; a seed makes it the same on every run.
    """
    xy = pyvips.Image.xyz(width, height)
    x, y = xy[0] * (120 / width), xy[1] * (120 / height)
    image = x.bandjoin([y, (x + y) / 2]) + 60
    for index, (feature, sigma) in enumerate(_GRAIN):
        grain = pyvips.Image.gaussnoise(
            width // feature + 1, height // feature + 1, sigma=sigma, mean=0, seed=seed + index
        ).copy_memory()
        grain = grain.bandjoin([grain.fliphor(), grain.flipver()])
        if feature > 1:
            grain = grain.resize(feature, kernel="linear")
        image = image + grain.crop(0, 0, width, height)
    return image.cast("uchar").copy(interpretation="srgb").copy_memory()


def with_orientation(image: pyvips.Image, orientation: int) -> pyvips.Image:
    """A copy tagged with an EXIF orientation (1-8), which the JPEG saver writes out."""
    tagged = image.copy()
    tagged.set_type(pyvips.GValue.gint_type, "orientation", orientation)
    return tagged


def decoded(data: bytes) -> pyvips.Image:
    """Encoded bytes decoded by libvips (its loader is in `get("vips-loader")`)."""
    return pyvips.Image.new_from_buffer(data, "")


def shown(data: bytes) -> pyvips.Image:
    """An output decoded in 8 bits per band, as a browser shows it (AVIF is sent with 10)."""
    image = decoded(data)
    return image.cast("uchar", shift=True) if image.format == "ushort" else image


def decoded_output(rendered: pixfit.Rendered) -> pyvips.Image:
    """The rendered bytes as shown, after checking the reported size is the real one."""
    image = shown(rendered.data)
    assert (image.width, image.height) == (rendered.width, rendered.height)
    return image


def pixel(image: pyvips.Image, x: int, y: int) -> tuple[int, ...]:
    """The band values at (x, y), rounded; negative coordinates count from the far edge."""
    return tuple(round(value) for value in image.getpoint(x % image.width, y % image.height))


def near(actual: Sequence[float], expected: Sequence[float], tolerance: float = 12) -> bool:
    """True when every band is within `tolerance` levels (lossy codecs move colours)."""
    return len(actual) == len(expected) and all(
        abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True)
    )


# A "public" address for URL-source tests: the SSRF guard accepts it, and `dialled`
# reroutes connections to it onto loopback, so no packet ever leaves the machine.
FAKE_PUBLIC_IP = "1.2.3.4"


@pytest.fixture
def dialled(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every address urllib3 connects to; fail on any but loopback or the fake."""
    real = urllib3.util.connection.create_connection
    seen: list[str] = []

    def guarded(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        host, port = address
        seen.append(host)
        if host == FAKE_PUBLIC_IP:
            host = "127.0.0.1"
        elif host not in ("127.0.0.1", "::1"):
            pytest.fail(f"the test tried to connect to {host}")
        return real((host, port), *args, **kwargs)

    monkeypatch.setattr(urllib3.util.connection, "create_connection", guarded)
    return seen


# The reason every missing-tool skip starts with, so the run's last line can gather them.
_MISSING = "missing system tool: "
# What `make deps` is, in the words of that last line.
_INSTALL = "`make deps` (as root) installs them from .ci/apt-packages.txt"


def require_tool(tool: str, present: bool, *, module: bool = False) -> None:
    """Skip the test (or, with `module`, the whole module) when `tool` is missing.

    Under CI (`CI` set) a missing tool fails instead: .ci/run installs every one. The
    skips are gathered into one line at the end of the run, naming `make deps`.
    """
    if present:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI must install {tool} (.ci/apt-packages.txt, `make deps`)", pytrace=False)
    pytest.skip(f"{_MISSING}{tool}", allow_module_level=module)


def pytest_unconfigure(config: pytest.Config) -> None:
    """End the run with one plain line naming what did not run for a missing tool.

    Here rather than in pytest_terminal_summary, so that it comes after pytest's own
    "N passed, M skipped" line: the last line is the one people read.
    """
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    files: dict[str, set[str]] = {}
    for report in reporter.stats.get("skipped", []):
        longrepr = getattr(report, "longrepr", None)
        reason = longrepr[2] if isinstance(longrepr, tuple) else ""
        if _MISSING in reason:
            tool = reason.split(_MISSING, 1)[1]
            files.setdefault(tool, set()).add(report.nodeid.split("::")[0])
    if files:
        missing = "; ".join(
            f"{', '.join(sorted(paths))} (needs {tool})" for tool, paths in sorted(files.items())
        )
        reporter.write_line(f"Not run: {missing}. {_INSTALL}, then run `make test` again.")


Server = TypeVar("Server", bound=socketserver.BaseServer)


@contextmanager
def serving(server: Server) -> Iterator[Server]:
    """Run a test server on a thread; on exit release any handler blocked on its
    `stop` event (slow endpoints), shut it down and close its socket."""
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
    )
    thread.start()
    try:
        yield server
    finally:
        stop = getattr(server, "stop", None)
        if isinstance(stop, threading.Event):
            stop.set()
        server.shutdown()
        server.server_close()
        thread.join(5)
