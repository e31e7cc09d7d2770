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
    """What one network class may receive."""

    # Byte budget for one image; None means no budget.
    budget: int | None
    # Longest output edge in device pixels; None means only the screen limits it.
    max_edge: int | None
    # Highest device pixel ratio worth sending on this link.
    max_dpr: float
    # Encoder quality range searched for the budget (1..100, ceiling first tried).
    quality_max: int
    quality_min: int
    # Progressive JPEG: a coarse image arrives early, worth its double encode time only on
    # the slowest links.
    progressive: bool = False
    # Under a byte budget, quantise PNG to a palette (far fewer bytes for photos).
    palette: bool = True


# The budgets are each ECT class's downlink ceiling (50, 70, 700 kbps, about 4 Mbps for
# 4g) times the time one image may take on that link: 2 s, 3 s, 1.2 s and 0.8 s.
DEFAULT_PROFILES: dict[NetworkClass, Profile] = {
    NetworkClass.SLOW_2G: Profile(12_000, 480, 1.0, 40, 20, progressive=True),
    NetworkClass.TWO_G: Profile(25_000, 720, 1.0, 50, 25, progressive=True),
    NetworkClass.THREE_G: Profile(100_000, 1280, 2.0, 70, 35),
    NetworkClass.FOUR_G: Profile(400_000, 2560, 3.0, 80, 45),
    NetworkClass.WIFI: Profile(None, None, 4.0, 85, 85),
}
