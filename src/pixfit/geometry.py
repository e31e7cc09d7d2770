"""Output geometry: pure arithmetic from the source size, the box, the fit and the caps."""

from __future__ import annotations

from dataclasses import dataclass

from pixfit.options import Fit, Flip, FocalPoint, Position

__all__ = [
    "Caps",
    "Geometry",
    "crop_offset",
    "oriented",
    "resolve",
]


@dataclass(frozen=True, slots=True)
class Caps:
    """Upper bounds on the output, in device pixels; None means unbounded."""

    max_width: int | None = None
    max_height: int | None = None
    max_edge: int | None = None


@dataclass(frozen=True, slots=True)
class Geometry:
    """How to turn the source into the output, in device pixels."""

    # Size after scaling, before any crop (cover) or letterbox (contain).
    resize_width: int
    resize_height: int
    # Final output size.
    width: int
    height: int
    fit: Fit

    @property
    def is_identity(self) -> bool:
        """True when the source size is kept (no resampling needed)."""
        return self.resize_width == self.width and self.resize_height == self.height


def resolve(
    source_width: int,
    source_height: int,
    box_width: int | None,
    box_height: int | None,
    fit: Fit,
    caps: Caps,
    *,
    enlarge: bool = False,
) -> Geometry:
    """Fit a source into a box under caps; with no box, fit inside the caps."""
    if box_width is None and box_height is None:
        box_width, box_height, fit = caps.max_width, caps.max_height, Fit.INSIDE
    if box_width is None or box_height is None:
        # One side alone keeps the aspect ratio whatever the fit: there is nothing to crop.
        fit = Fit.INSIDE if fit != Fit.OUTSIDE else fit
    if fit in (Fit.INSIDE, Fit.OUTSIDE) or box_width is None or box_height is None:
        return _scaled(source_width, source_height, box_width, box_height, fit, caps, enlarge)
    return _exact_box(source_width, source_height, box_width, box_height, fit, caps, enlarge)


def crop_offset(
    width: int, height: int, box_width: int, box_height: int, gravity: Position
) -> tuple[int, int]:
    """Left and top of a box_width x box_height crop of a width x height image."""
    spare_x, spare_y = max(0, width - box_width), max(0, height - box_height)
    if isinstance(gravity, FocalPoint):
        # The box centred on the point, then slid back inside the image where it overhangs.
        left = round(gravity.x * width - box_width / 2)
        top = round(gravity.y * height - box_height / 2)
        return min(max(left, 0), spare_x), min(max(top, 0), spare_y)
    name = str(gravity)
    left = 0 if name.endswith("west") else spare_x if name.endswith("east") else spare_x // 2
    top = 0 if name.startswith("north") else spare_y if name.startswith("south") else spare_y // 2
    return left, top


def oriented(gravity: Position, rotate: int, flip: Flip | None) -> Position:
    """Where a focal point lands once the image is turned clockwise, then mirrored.

    A focal point names a spot of the source; compass positions name sides of the
    output, so they stay as they are.
    """
    if not isinstance(gravity, FocalPoint):
        return gravity
    x, y = gravity.x, gravity.y
    for _ in range(rotate // 90):
        # A quarter turn clockwise: the left edge becomes the top, the top the right.
        x, y = 1 - y, x
    if flip is not None and "h" in flip:
        x = 1 - x
    if flip is not None and "v" in flip:
        y = 1 - y
    return FocalPoint(round(x, 4), round(y, 4))


def _scaled(
    source_width: int,
    source_height: int,
    box_width: int | None,
    box_height: int | None,
    fit: Fit,
    caps: Caps,
    enlarge: bool,
) -> Geometry:
    ratios = [r for r in (_ratio(box_width, source_width), _ratio(box_height, source_height)) if r]
    scale = (max(ratios) if fit == Fit.OUTSIDE else min(ratios)) if ratios else 1.0
    scale = min(scale, _cap_scale(source_width, source_height, caps))
    if not enlarge:
        scale = min(scale, 1.0)
    width, height = _round(source_width * scale), _round(source_height * scale)
    return Geometry(width, height, width, height, Fit.INSIDE if fit != Fit.OUTSIDE else fit)


def _exact_box(
    source_width: int,
    source_height: int,
    box_width: int,
    box_height: int,
    fit: Fit,
    caps: Caps,
    enlarge: bool,
) -> Geometry:
    x_ratio, y_ratio = box_width / source_width, box_height / source_height
    # The scale the source needs for this box: covering it, or fitting inside it.
    needed = min(x_ratio, y_ratio) if fit == Fit.CONTAIN else max(x_ratio, y_ratio)
    # Caps and no-enlarge shrink the box itself, keeping the box's aspect ratio.
    shrink = min(1.0, _cap_scale(box_width, box_height, caps))
    if not enlarge:
        shrink = min(shrink, 1.0 / needed)
    width, height = _round(box_width * shrink), _round(box_height * shrink)
    x_ratio, y_ratio = width / source_width, height / source_height
    if fit == Fit.COVER:
        scale = max(x_ratio, y_ratio)
        resize = (
            max(width, _round(source_width * scale)),
            max(height, _round(source_height * scale)),
        )
    elif fit == Fit.CONTAIN:
        scale = min(x_ratio, y_ratio)
        resize = (
            min(width, _round(source_width * scale)),
            min(height, _round(source_height * scale)),
        )
    else:
        resize = width, height
    return Geometry(resize[0], resize[1], width, height, fit)


def _cap_scale(width: int, height: int, caps: Caps) -> float:
    """The largest scale that keeps a width x height rectangle within the caps."""
    limits = [
        _ratio(caps.max_width, width),
        _ratio(caps.max_height, height),
        _ratio(caps.max_edge, max(width, height)),
    ]
    return min((limit for limit in limits if limit), default=float("inf"))


def _ratio(limit: int | None, size: int) -> float | None:
    return limit / size if limit else None


def _round(value: float) -> int:
    return max(1, round(value))
