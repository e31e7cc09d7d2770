"""What the playground page shows: the samples, the classes and the controls' choices."""

from __future__ import annotations

from pixfit.hints import ACCEPT_CH
from pixfit.options import ROTATIONS, Fit, Flip, Gravity
from pixfit.profiles import NetworkClass
from pixfit.sources import LocalSource

__all__ = ["PAGE_ACCEPT_CH", "PLAYGROUND_WIDTHS", "page"]

# The hints the page asks browsers for: all but the network ones, which its controls set.
# Chromium replaces an ECT header that a script sets with its own measurement once the
# page has asked for ECT, so the page must not ask for the hints it simulates.
PAGE_ACCEPT_CH = tuple(
    hint for hint in ACCEPT_CH if hint not in ("ECT", "Downlink", "RTT", "Save-Data")
)

# Width presets offered by the playground, in CSS pixels.
PLAYGROUND_WIDTHS = (240, 320, 480, 640, 800, 1200)


def page(files: LocalSource, prefix: str) -> dict[str, object]:
    """The playground template's variables, for images served under `prefix`."""
    names = files.names()
    return {
        "prefix": prefix,
        # Original sizes come with the page: a request for the original would carry the
        # browser's client hints (ECT...) and so be rendered for its network.
        "images": [(name, (files.root / name).stat().st_size) for name in names],
        "default_image": "landscape.jpg" if "landscape.jpg" in names else None,
        "classes": [str(network) for network in NetworkClass],
        # ECT never says wifi: it tops out at 4g.
        "ects": [str(network) for network in NetworkClass if network != NetworkClass.WIFI],
        "widths": PLAYGROUND_WIDTHS,
        "heights": PLAYGROUND_WIDTHS,
        "fits": [str(fit) for fit in Fit],
        "dprs": (1, 1.5, 2, 3),
        "screens": ("360x740", "768x1024", "1280x720", "1920x1080"),
        # What fit=cover keeps: the compass and smart crops, and two focal points.
        "positions": [*map(str, Gravity), "fp:0.25,0.5", "fp:0.75,0.5"],
        "rotations": ROTATIONS,
        "flips": [str(flip) for flip in Flip],
        "blurs": (1, 3, 10),
        "sharpens": (0.5, 1, 2),
    }
