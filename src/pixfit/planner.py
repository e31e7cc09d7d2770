"""The plan: everything a render needs to know, decided before any byte is decoded."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, fields

from pixfit.config import Config
from pixfit.geometry import Caps
from pixfit.hints import ClientHints, choose_class, vary_headers
from pixfit.options import RGB, Fit, Flip, Options, Position
from pixfit.profiles import NetworkClass
from pixfit.registry import FORMATS, OUTPUTS, ImageFormat, OutputFormat, original_output

__all__ = [
    "NOT_IN_KEY",
    "Plan",
    "animated_output",
    "choose_outputs",
    "plan",
]


@dataclass(frozen=True, slots=True)
class Plan:
    """A normalised render request, independent of the source; its `key` names the variant."""

    # Send the source bytes untouched (no options and no hints that change anything).
    passthrough: bool
    # The box in device pixels; None sides are free.
    box_width: int | None
    box_height: int | None
    fit: Fit
    gravity: Position
    enlarge: bool
    caps: Caps
    # The output formats the client takes, best first; `choose_output` picks one once the
    # source's header is read. Empty for `format=original`: the source's own format.
    formats: tuple[ImageFormat, ...]
    # Encoder quality range; equal ends mean a fixed quality.
    quality_max: int
    quality_min: int
    # Byte budget; None means none.
    budget: int | None
    # The perceptual target (SSIMULACRA2 at the display size) that width, format and
    # quality are searched for; None when `q` pins the quality.
    target: float | None
    # The class's encoder policy: PNG quantised to a palette (only under a budget), and
    # progressive JPEG.
    palette: bool
    progressive: bool
    background: RGB | None
    # Keep an animated source animated where the output can carry it; False asks for a still.
    animate: bool
    # The frame (0-based) a still of an animated source shows.
    page: int
    network: NetworkClass
    # The device pixel ratio used: the client's, capped by the profile.
    dpr: float
    # The request headers that can change this answer, for `Vary`.
    vary: tuple[str, ...]
    # Clockwise degrees after EXIF orientation (0 none), then a mirror (None none).
    rotate: int = 0
    flip: Flip | None = None
    # Gaussian blur and unsharp-mask sigmas in output pixels; None means none.
    blur: float | None = None
    sharpen: float | None = None
    # Search every width, format and quality (offline pre-rendering), not the fast path.
    exhaustive: bool = False
    # The client's round trip in ms as the server measured it, when that chose the class
    # (no `bw`, no network hint, `server.measure_rtt` on): the answer then depends on
    # something not in the request, so shared caches must not store it. None otherwise.
    measured_rtt: float | None = None

    @property
    def key(self) -> str:
        """A canonical string naming this variant, for ETags and cache keys."""
        return _key_of(self)


# Plan fields left out of `key`, each because it cannot change the response's bytes.
# Every other field is in it: forgetting one would let the cache serve the wrong variant.
NOT_IN_KEY = frozenset(
    {
        "passthrough",  # a passthrough plan's key is "original", whatever else it holds
        "dpr",  # already multiplied into the box and the caps; nothing renders by it
        "vary",  # the Vary header, which is written from each request's own plan
        "measured_rtt",  # the class it chose is in the key; the value changes no byte
    }
)
_KEY_FIELDS = tuple(field.name for field in fields(Plan) if field.name not in NOT_IN_KEY)


@functools.lru_cache(maxsize=4096)
def _key_of(planned: Plan) -> str:
    # Memoised (plans are hashable values): every cache hit and 304 needs the key, and
    # spelling it out was a tenth of a hit's time in the app.
    if planned.passthrough:
        return "original"
    return ";".join(f"{name}={_canonical(getattr(planned, name))}" for name in _KEY_FIELDS)


def _canonical(value: object) -> str:
    """A value spelled the same in every process: tuples joined, enums by their value."""
    # str() of a tuple would spell its enums by repr; nested values (Caps) print their fields.
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def plan(options: Options, hints: ClientHints, config: Config) -> Plan:
    """Combine what was asked, what the client said and the config into one plan."""
    network = choose_class(options.network, hints, config.default_class)
    profile = config.profiles[network]
    client_dpr = options.dpr or hints.dpr or 1.0
    dpr = min(client_dpr, profile.max_dpr)

    box_width = _device(options.width, dpr)
    box_height = _device(options.height, dpr)
    if box_width is None and box_height is None and hints.width:
        # Sec-CH-Width is in the client's device pixels; re-scale to the DPR we send.
        box_width = math.ceil(hints.width / (hints.dpr or 1.0) * dpr)

    screen = options.screen or ((hints.viewport_width, None) if hints.viewport_width else None)
    edge_caps = [e for e in (profile.max_edge, config.limits.max_output_edge) if e]
    caps = Caps(
        max_width=_device(screen[0], dpr) if screen else None,
        max_height=_device(screen[1], dpr) if screen else None,
        max_edge=min(edge_caps) if edge_caps else None,
    )

    quality_max, quality_min = profile.quality_max, profile.quality_min
    target: float | None = profile.target
    budget = options.max_bytes if options.max_bytes is not None else profile.budget
    if options.quality is not None:
        # A pinned quality turns the search off, and with it the class's budget; an
        # explicit max_bytes still caps the size.
        quality_max = quality_min = options.quality
        target, budget = None, options.max_bytes

    return Plan(
        passthrough=options.is_empty and not hints.asks_for_rendering,
        box_width=box_width,
        box_height=box_height,
        fit=options.fit,
        gravity=options.gravity,
        enlarge=options.enlarge,
        caps=caps,
        formats=_candidates(options.format or OutputFormat.AUTO, hints),
        quality_max=quality_max,
        quality_min=quality_min,
        budget=budget,
        target=target,
        palette=profile.palette and budget is not None,
        progressive=profile.progressive,
        background=options.background,
        animate=options.animate and options.page is None,
        page=options.page or 0,
        network=network,
        dpr=dpr,
        vary=vary_headers(options),
        rotate=options.rotate,
        flip=options.flip,
        blur=options.blur,
        sharpen=options.sharpen,
    )


def _device(css: int | None, dpr: float) -> int | None:
    return None if css is None else max(1, round(css * dpr))


def _candidates(requested: OutputFormat, hints: ClientHints) -> tuple[ImageFormat, ...]:
    """The output formats to choose from, best first; none for `original`."""
    if requested == OutputFormat.ORIGINAL:
        return ()
    if requested != OutputFormat.AUTO:
        return (ImageFormat(requested),)
    # AUTO: every format all clients take, and those the client names explicitly.
    return tuple(
        row.name
        for row in OUTPUTS
        if row.negotiated and (row.accept is None or row.name in hints.accepts)
    )


def choose_outputs(plan: Plan, source: ImageFormat, has_alpha: bool) -> tuple[ImageFormat, ...]:
    """The output formats to search, best first, once the source's header is known.

    Nothing decides the format after this but the search's measurements. The candidates
    are the plan's, kept to those that agree with the first on alpha (so one decoded image
    serves them all), and without PNG beside a lossy format: its quality steers only a
    palette, which a photo never wins with. An image with alpha prefers formats that keep
    it (an explicit JPEG stays JPEG, flattened); `format=original` maps the source's format.
    """
    if not plan.formats:
        return (original_output(source),)
    formats = plan.formats
    if has_alpha:
        formats = tuple(f for f in formats if FORMATS[f].alpha) or formats[:1]
    alpha = FORMATS[formats[0]].alpha
    lossy = tuple(f for f in formats if FORMATS[f].alpha == alpha and f != ImageFormat.PNG)
    return lossy or formats[:1]


def animated_output(plan: Plan, source: ImageFormat) -> ImageFormat | None:
    """The format an animated source is written in, or None when it must become a still.

    The first of the plan's formats that carries frames (WebP for `format=auto` when the
    client takes it; GIF only by name), or the source's own format for `format=original`.
    """
    if not plan.animate:
        return None
    wanted = plan.formats or (source,)
    return next((f for f in wanted if FORMATS[f].animation and FORMATS[f].is_output), None)
