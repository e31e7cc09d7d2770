"""Network classes and the bandwidth profile each one gets."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "DEFAULT_PROFILES",
    "NetworkClass",
    "Profile",
]


class NetworkClass(StrEnum):
    """The client's link, slowest first (the ECT classes plus wifi)."""

    SLOW_2G = "slow-2g"
    TWO_G = "2g"
    THREE_G = "3g"
    FOUR_G = "4g"
    WIFI = "wifi"

    def lowered(self, steps: int = 1) -> NetworkClass:
        """The class `steps` slower, never below slow-2g."""
        order = list(NetworkClass)
        return order[max(0, order.index(self) - steps)]

    def at_most(self, ceiling: NetworkClass) -> NetworkClass:
        """This class, or `ceiling` if this one is faster."""
        order = list(NetworkClass)
        return order[min(order.index(self), order.index(ceiling))]


@dataclass(frozen=True, slots=True)
class Profile:
    """What one network class may receive: a byte budget, a perceptual target, and bounds.

    The rule: the smallest response that reaches `target` at the display size; when the
    budget cannot buy the target, the best perceived quality that fits the budget.
    """

    # Byte budget for one image; None means no budget.
    budget: int | None
    # SSIMULACRA2 at the display size beyond which more bytes buy nothing that matters on
    # this link (90 is indistinguishable, 80 high, 70 medium, 50 low).
    target: float
    # Highest device pixel ratio worth sending on this link: the display size's bound.
    max_dpr: float
    # Encoder quality range the search may use (1..100).
    quality_max: int
    quality_min: int
    # Longest output edge in device pixels, a bound of the search; None means only the
    # display size bounds it. The old fixed edges (480/720/1280/2560) were sized for JPEG
    # and threw away pixels an AVIF budget could pay for (issue 11's measurements).
    max_edge: int | None = None
    # Progressive JPEG: a coarse image arrives early, worth its double encode time only on
    # the slowest links.
    progressive: bool = False
    # Under a byte budget, quantise PNG to a palette (far fewer bytes for photos).
    palette: bool = True


# The budgets are each ECT class's downlink ceiling (50, 70, 700 kbps, about 4 Mbps for
# 4g) times the time one image may take on that link: 2 s, 3 s, 1.2 s and 0.8 s.
DEFAULT_PROFILES: dict[NetworkClass, Profile] = {
    NetworkClass.SLOW_2G: Profile(12_000, 50, 1.0, 90, 10, progressive=True),
    NetworkClass.TWO_G: Profile(25_000, 60, 1.0, 90, 10, progressive=True),
    NetworkClass.THREE_G: Profile(100_000, 70, 2.0, 90, 15),
    NetworkClass.FOUR_G: Profile(400_000, 80, 3.0, 95, 20),
    NetworkClass.WIFI: Profile(None, 85, 4.0, 95, 30),
}
