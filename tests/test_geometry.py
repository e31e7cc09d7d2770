import pytest
from hypothesis import given
from hypothesis import strategies as st

from pixfit.geometry import Caps, crop_offset, oriented, resolve
from pixfit.options import Fit, Flip, FocalPoint, Gravity

NONE = Caps()


@pytest.mark.parametrize(
    ("source", "box", "fit", "caps", "enlarge", "resize", "output"),
    [
        # inside: best fit, one or two sides
        ((4000, 3000), (800, 600), Fit.INSIDE, NONE, False, (800, 600), (800, 600)),
        ((4000, 3000), (800, None), Fit.INSIDE, NONE, False, (800, 600), (800, 600)),
        ((4000, 3000), (None, 300), Fit.INSIDE, NONE, False, (400, 300), (400, 300)),
        ((4000, 3000), (800, 800), Fit.INSIDE, NONE, False, (800, 600), (800, 600)),
        ((3000, 4000), (800, 800), Fit.INSIDE, NONE, False, (600, 800), (600, 800)),
        # no enlarge unless asked
        ((400, 300), (800, None), Fit.INSIDE, NONE, False, (400, 300), (400, 300)),
        ((400, 300), (800, None), Fit.INSIDE, NONE, True, (800, 600), (800, 600)),
        # caps: screen and longest edge
        ((4000, 3000), (None, None), Fit.INSIDE, Caps(1280, 720), False, (960, 720), (960, 720)),
        ((4000, 3000), (2000, None), Fit.INSIDE, Caps(max_edge=480), False, (480, 360), (480, 360)),
        ((4000, 3000), (None, None), Fit.INSIDE, NONE, False, (4000, 3000), (4000, 3000)),
        # cover crops to the exact box
        ((4000, 3000), (300, 300), Fit.COVER, NONE, False, (400, 300), (300, 300)),
        ((3000, 4000), (300, 200), Fit.COVER, NONE, False, (300, 400), (300, 200)),
        # cover under a cap shrinks the box, keeping its aspect
        ((4000, 3000), (1000, 500), Fit.COVER, Caps(max_edge=480), False, (480, 360), (480, 240)),
        # cover without enlarge: the box shrinks so the source is not upscaled
        ((400, 300), (800, 800), Fit.COVER, NONE, False, (400, 300), (300, 300)),
        ((400, 300), (800, 800), Fit.COVER, NONE, True, (1067, 800), (800, 800)),
        # contain letterboxes into the exact box
        ((4000, 3000), (300, 300), Fit.CONTAIN, NONE, False, (300, 225), (300, 300)),
        ((400, 300), (800, 800), Fit.CONTAIN, NONE, False, (400, 300), (400, 400)),
        # fill stretches to the exact box
        ((4000, 3000), (300, 300), Fit.FILL, NONE, False, (300, 300), (300, 300)),
        # outside covers without cropping
        ((4000, 3000), (300, 300), Fit.OUTSIDE, NONE, False, (400, 300), (400, 300)),
        ((4000, 3000), (300, 300), Fit.OUTSIDE, Caps(max_edge=200), False, (200, 150), (200, 150)),
        # one side only: nothing to crop, so every fit keeps the aspect
        ((4000, 3000), (800, None), Fit.COVER, NONE, False, (800, 600), (800, 600)),
        ((4000, 3000), (None, 300), Fit.FILL, NONE, False, (400, 300), (400, 300)),
        # degenerate strips never collapse to zero
        ((1, 30000), (300, None), Fit.INSIDE, NONE, False, (1, 30000), (1, 30000)),
        ((1, 30000), (None, 300), Fit.INSIDE, NONE, False, (1, 300), (1, 300)),
        ((30000, 1), (300, None), Fit.INSIDE, NONE, False, (300, 1), (300, 1)),
    ],
)
def test_geometry_table(
    source: tuple[int, int],
    box: tuple[int | None, int | None],
    fit: Fit,
    caps: Caps,
    enlarge: bool,
    resize: tuple[int, int],
    output: tuple[int, int],
) -> None:
    geometry = resolve(*source, *box, fit, caps, enlarge=enlarge)
    assert (geometry.resize_width, geometry.resize_height) == resize
    assert (geometry.width, geometry.height) == output


@pytest.mark.parametrize(
    ("gravity", "offset"),
    [
        (Gravity.CENTRE, (50, 25)),
        (Gravity.NORTH, (50, 0)),
        (Gravity.SOUTH, (50, 50)),
        (Gravity.EAST, (100, 25)),
        (Gravity.WEST, (0, 25)),
        (Gravity.NORTHEAST, (100, 0)),
        (Gravity.SOUTHWEST, (0, 50)),
        (Gravity.NORTHWEST, (0, 0)),
        (Gravity.SOUTHEAST, (100, 50)),
    ],
)
def test_crop_offset_follows_gravity(gravity: Gravity, offset: tuple[int, int]) -> None:
    assert crop_offset(200, 100, 100, 50, gravity) == offset


sides = st.integers(1, 6000)
boxes = st.one_of(st.none(), st.integers(1, 3000))
caps = st.builds(
    Caps, st.one_of(st.none(), sides), st.one_of(st.none(), sides), st.one_of(st.none(), sides)
)


def _within_caps(width: int, height: int, limits: Caps) -> bool:
    return (
        (limits.max_width is None or width <= limits.max_width)
        and (limits.max_height is None or height <= limits.max_height)
        and (limits.max_edge is None or max(width, height) <= limits.max_edge)
    )


@given(sides, sides, boxes, boxes, st.sampled_from(Fit), caps, st.booleans())
def test_output_never_exceeds_the_caps(
    sw: int, sh: int, bw: int | None, bh: int | None, fit: Fit, limits: Caps, enlarge: bool
) -> None:
    geometry = resolve(sw, sh, bw, bh, fit, limits, enlarge=enlarge)
    # A 1 px floor can beat a cap that would round a strip's short side to zero.
    assert (
        _within_caps(geometry.width, geometry.height, limits)
        or min(geometry.width, geometry.height) == 1
    )
    assert geometry.width >= 1 and geometry.height >= 1


@given(sides, sides, boxes, boxes, caps, st.booleans())
def test_inside_never_exceeds_the_box_and_keeps_the_aspect(
    sw: int, sh: int, bw: int | None, bh: int | None, limits: Caps, enlarge: bool
) -> None:
    geometry = resolve(sw, sh, bw, bh, Fit.INSIDE, limits, enlarge=enlarge)
    width, height = geometry.width, geometry.height
    if width > 1 and height > 1:
        assert bw is None or width <= bw
        assert bh is None or height <= bh
        # The aspect ratio holds within a pixel on either side.
        assert abs(width * sh / sw - height) <= 1 or abs(height * sw / sh - width) <= 1
    if not enlarge:
        assert width <= sw and height <= sh


@given(
    sides,
    sides,
    st.integers(1, 3000),
    st.integers(1, 3000),
    st.sampled_from([Fit.COVER, Fit.CONTAIN, Fit.FILL]),
)
def test_exact_fits_give_the_exact_box(sw: int, sh: int, bw: int, bh: int, fit: Fit) -> None:
    geometry = resolve(sw, sh, bw, bh, fit, NONE, enlarge=True)
    assert (geometry.width, geometry.height) == (bw, bh)
    if fit == Fit.COVER:
        assert geometry.resize_width >= bw and geometry.resize_height >= bh
    if fit == Fit.CONTAIN:
        assert geometry.resize_width <= bw and geometry.resize_height <= bh


@given(
    sides,
    sides,
    st.integers(1, 3000),
    st.integers(1, 3000),
    st.sampled_from([Fit.COVER, Fit.CONTAIN, Fit.FILL]),
)
def test_exact_fits_without_enlarge_keep_the_box_aspect(
    sw: int, sh: int, bw: int, bh: int, fit: Fit
) -> None:
    geometry = resolve(sw, sh, bw, bh, fit, NONE, enlarge=False)
    assert geometry.width <= bw and geometry.height <= bh
    if geometry.width > 1 and geometry.height > 1:
        assert (
            abs(geometry.width * bh / bw - geometry.height) <= 1
            or abs(geometry.height * bw / bh - geometry.width) <= 1
        )


@pytest.mark.parametrize(
    ("point", "offset"),
    [
        (FocalPoint(0.5, 0.5), (50, 25)),  # the centre: as a centre crop
        (FocalPoint(0.6, 0.5), (70, 25)),  # room to centre it exactly: x 120 - 50
        (FocalPoint(0.0, 0.0), (0, 0)),  # the box slides back inside the image
        (FocalPoint(1.0, 1.0), (100, 50)),
        (FocalPoint(0.1, 0.9), (0, 50)),
        (FocalPoint(0.3, 0.4), (10, 15)),
    ],
)
def test_crop_offset_centres_the_focal_point_where_it_can(
    point: FocalPoint, offset: tuple[int, int]
) -> None:
    assert crop_offset(200, 100, 100, 50, point) == offset


@given(
    st.integers(1, 400), st.integers(1, 400), st.integers(1, 400), st.integers(1, 400),
    st.floats(0, 1), st.floats(0, 1),
)  # fmt: skip
def test_focal_point_is_inside_the_crop_and_as_central_as_it_can_be(
    width: int, height: int, box_width: int, box_height: int, x: float, y: float
) -> None:
    box_width, box_height = min(box_width, width), min(box_height, height)
    left, top = crop_offset(width, height, box_width, box_height, FocalPoint(x, y))
    assert 0 <= left <= width - box_width
    assert 0 <= top <= height - box_height
    for point, start, box, size in (
        (x * width, left, box_width, width),
        (y * height, top, box_height, height),
    ):
        assert start <= point <= start + box
        # No other crop puts the point nearer the box's centre (to a rounding's half pixel).
        best = min(abs(point - (s + box / 2)) for s in range(size - box + 1))
        assert abs(point - (start + box / 2)) <= best + 0.5


@pytest.mark.parametrize(
    ("rotate", "flip", "expected"),
    [
        (0, None, (0.2, 0.1)),
        (90, None, (0.9, 0.2)),  # a quarter turn clockwise: the top edge becomes the right
        (180, None, (0.8, 0.9)),
        (270, None, (0.1, 0.8)),
        (0, Flip.H, (0.8, 0.1)),
        (0, Flip.V, (0.2, 0.9)),
        (0, Flip.HV, (0.8, 0.9)),
        (90, Flip.H, (0.1, 0.2)),  # the flip mirrors the turned image
    ],
)
def test_focal_points_follow_rotate_and_flip(
    rotate: int, flip: Flip | None, expected: tuple[float, float]
) -> None:
    assert oriented(FocalPoint(0.2, 0.1), rotate, flip) == FocalPoint(*expected)
    # Compass positions name sides of the output, so they do not turn.
    assert oriented(Gravity.NORTH, rotate, flip) == Gravity.NORTH
