"""Client hints: what the request headers say about the browser, its screen and its link."""

from __future__ import annotations

import bisect
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass

from werkzeug.datastructures import MIMEAccept
from werkzeug.http import parse_accept_header

from pixfit.options import Options
from pixfit.profiles import NetworkClass
from pixfit.registry import OUTPUTS, ImageFormat, OutputFormat

__all__ = [
    "ACCEPT_CH",
    "CRITICAL_CH",
    "DOWNLINK_CEILINGS",
    "DPR_LADDER",
    "RTT_FLOORS",
    "WIDTH_LADDER",
    "ClientHints",
    "choose_class",
    "rtt_class",
    "vary_headers",
]

# Hinted sizes snap to these steps so a cache sees a bounded number of variants.
# Widths round up (never blurrier than asked), DPRs to the nearest step.
WIDTH_LADDER = (160, 240, 320, 480, 640, 768, 960, 1080, 1280, 1536, 1920, 2560, 3840)
DPR_LADDER = (1.0, 1.5, 2.0, 3.0, 4.0)

# The Network Information API's ECT thresholds: a class applies at or below its downlink
# (Mbps) and at or above its round-trip time (ms).
DOWNLINK_CEILINGS = (
    (0.05, NetworkClass.SLOW_2G),
    (0.07, NetworkClass.TWO_G),
    (0.7, NetworkClass.THREE_G),
)
RTT_FLOORS = ((2000, NetworkClass.SLOW_2G), (1400, NetworkClass.TWO_G), (270, NetworkClass.THREE_G))

# Everything pixfit can use, for the Accept-CH response header.
ACCEPT_CH = (
    "Sec-CH-DPR",
    "Sec-CH-Width",
    "Sec-CH-Viewport-Width",
    "ECT",
    "Downlink",
    "RTT",
    "Save-Data",
)
# The hints without which a page's first images would be planned differently, for
# Critical-CH: Chromium then retries a navigation that lacked them, so that even the
# first image request carries them. (Sec-CH-Width is never sent on a navigation, and
# Save-Data needs no asking.)
CRITICAL_CH = ("Sec-CH-DPR", "Sec-CH-Viewport-Width", "ECT", "Downlink", "RTT")


@dataclass(frozen=True, slots=True)
class ClientHints:
    """What the headers said; None means the header was absent or unreadable."""

    # The output formats whose Accept token the client lists explicitly (`*/*` and
    # `image/*` name none); formats every client takes are never in it.
    accepts: frozenset[ImageFormat] = frozenset()
    # Device pixel ratio, snapped to DPR_LADDER.
    dpr: float | None = None
    # Intended display width of the image in device pixels, snapped up to WIDTH_LADDER.
    width: int | None = None
    # Layout viewport width in CSS pixels, snapped up to WIDTH_LADDER.
    viewport_width: int | None = None
    # The link's class from ECT, else Downlink, else RTT.
    network: NetworkClass | None = None
    save_data: bool = False

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> ClientHints:
        """Read the hints from headers; malformed hints are ignored, as browsers expect."""
        lower = {key.lower(): value for key, value in headers.items()}
        return _hints_from(tuple(lower.get(name, "") for name in _READ))

    @property
    def asks_for_rendering(self) -> bool:
        """True when a hint alone should change an option-less request's answer."""
        return bool(self.width or self.viewport_width or self.network or self.save_data)


# The request headers the hints are read from, in `_hints_from`'s order.
_READ = (
    "accept",
    "sec-ch-dpr",
    "dpr",
    "sec-ch-width",
    "width",
    "sec-ch-viewport-width",
    "viewport-width",
    "ect",
    "downlink",
    "rtt",
    "save-data",
)


@functools.lru_cache(maxsize=1024)
def _hints_from(values: tuple[str, ...]) -> ClientHints:
    # Memoised: every cache hit reads the hints, a few browsers send a few Accept headers,
    # and parsing one cost about a fifth of a hit's time in the app.
    read = dict(zip(_READ, values, strict=True))

    def get(*names: str) -> str | None:
        return next((read[n] for n in names if read[n].strip()), None)

    accept = parse_accept_header(read["accept"], MIMEAccept)
    explicit = {value.lower() for value, quality in accept if quality > 0}
    dpr = _number(get("sec-ch-dpr", "dpr"))
    width = _number(get("sec-ch-width", "width"))
    viewport = _number(get("sec-ch-viewport-width", "viewport-width"))
    return ClientHints(
        accepts=frozenset(row.name for row in OUTPUTS if row.accept in explicit),
        dpr=_nearest(DPR_LADDER, dpr) if dpr and dpr > 0 else None,
        width=_round_up(width) if width and width >= 1 else None,
        viewport_width=_round_up(viewport) if viewport and viewport >= 1 else None,
        network=_network(get("ect"), _number(get("downlink")), _number(get("rtt"))),
        save_data=(get("save-data") or "").strip().lower() == "on",
    )


def choose_class(
    explicit: NetworkClass | None, hints: ClientHints, default: NetworkClass
) -> NetworkClass:
    """`bw` beats the hinted class, which beats the default; Save-Data lowers it to 3g or less."""
    chosen = explicit or hints.network or default
    if hints.save_data:
        chosen = chosen.lowered().at_most(NetworkClass.THREE_G)
    return chosen


def vary_headers(options: Options) -> tuple[str, ...]:
    """The request headers that can change the answer to a request with these options."""
    vary = []
    if options.format in (None, OutputFormat.AUTO):
        vary.append("Accept")
    if options.dpr is None:
        vary += ["Sec-CH-DPR", "DPR"]
    if options.width is None and options.height is None:
        vary += ["Sec-CH-Width", "Width"]
    if options.screen is None:
        vary += ["Sec-CH-Viewport-Width", "Viewport-Width"]
    if options.network is None:
        vary += ["ECT", "Downlink", "RTT"]
    vary.append("Save-Data")
    return tuple(vary)


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def _nearest(ladder: tuple[float, ...], value: float) -> float:
    return min(ladder, key=lambda step: (abs(step - value), step))


def _round_up(value: float) -> int:
    index = bisect.bisect_left(WIDTH_LADDER, value)
    return WIDTH_LADDER[min(index, len(WIDTH_LADDER) - 1)]


def _network(ect: str | None, downlink: float | None, rtt: float | None) -> NetworkClass | None:
    if ect is not None:
        try:
            hinted = NetworkClass(ect.strip().lower())
        except ValueError:
            hinted = None
        # ECT never says wifi; a client claiming it is treated as the fastest ECT class.
        if hinted is not None:
            return hinted.at_most(NetworkClass.FOUR_G)
    if downlink is not None and downlink >= 0:
        return next(
            (c for ceiling, c in DOWNLINK_CEILINGS if downlink <= ceiling), NetworkClass.FOUR_G
        )
    if rtt is not None and rtt >= 0:
        return rtt_class(rtt) or NetworkClass.FOUR_G
    return None


def rtt_class(rtt_ms: float) -> NetworkClass | None:
    """The class a round trip (ms) shows by the ECT thresholds; None when under 3g's floor.

    None rather than 4g: a short round trip cannot tell 4g from wifi, so a measured one
    leaves the default class standing (the RTT hint, like ECT, says 4g at most).
    """
    return next((c for floor, c in RTT_FLOORS if rtt_ms >= floor), None)
