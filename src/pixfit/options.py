"""Parse request options (query args or CLI flags) into one frozen value. No I/O here."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from pixfit.errors import BadOption
from pixfit.profiles import NetworkClass
from pixfit.registry import SPELLINGS, OutputFormat

__all__ = [
    "ALIASES",
    "MAX_PAGE",
    "MAX_SCREEN_EDGE",
    "OPTIONS",
    "PRESET",
    "RGB",
    "ROTATIONS",
    "Fit",
    "Flip",
    "FocalPoint",
    "Gravity",
    "OptionSpec",
    "Options",
    "Position",
    "Presets",
    "check_allowlists",
    "parse_options",
]


class Fit(StrEnum):
    """How the image fills the box (the names of CSS object-fit and sharp)."""

    INSIDE = "inside"  # best fit: no crop, no distortion
    COVER = "cover"  # exact box, cropped
    CONTAIN = "contain"  # exact box, letterboxed
    FILL = "fill"  # exact box, stretched
    OUTSIDE = "outside"  # covers the box, not cropped


class Gravity(StrEnum):
    """What `cover` keeps when it crops."""

    CENTRE = "centre"
    NORTH = "north"
    NORTHEAST = "northeast"
    EAST = "east"
    SOUTHEAST = "southeast"
    SOUTH = "south"
    SOUTHWEST = "southwest"
    WEST = "west"
    NORTHWEST = "northwest"
    ENTROPY = "entropy"
    ATTENTION = "attention"


@dataclass(frozen=True, slots=True)
class FocalPoint:
    """A point of the source that `cover` keeps as near the centre as the crop allows."""

    # Fractions 0..1 of the source's width and height as displayed (after EXIF
    # orientation, before `rotate` and `flip`), from its top left corner.
    x: float
    y: float

    def __str__(self) -> str:
        # The URL spelling, which is also how the plan's key names it.
        return f"fp:{self.x:g},{self.y:g}"


# What `cover` keeps: a compass side, a smart crop, or a focal point.
Position = Gravity | FocalPoint


class Flip(StrEnum):
    """A mirror of the output: left-right, top-bottom, or both."""

    H = "h"
    V = "v"
    HV = "hv"


# Clockwise turns `rotate` takes, in degrees (as in libvips, imgproxy and EXIF).
ROTATIONS = (90, 180, 270)

RGB = tuple[int, int, int]

# Rejected above this, whatever the configured output cap: 4x a 16K screen.
MAX_SCREEN_EDGE = 16384
# Rejected above this, whatever limits.max_frames says; a page past the source's last
# frame is refused once its header is read.
MAX_PAGE = 99_999


@dataclass(frozen=True, slots=True)
class Options:
    """What the request asked for; None means "not given"."""

    # The box in CSS pixels.
    width: int | None = None
    height: int | None = None
    fit: Fit = Fit.INSIDE
    gravity: Position = Gravity.CENTRE
    # Allow output larger than the source.
    enlarge: bool = False
    # The client's screen in CSS pixels, (width, height).
    screen: tuple[int, int] | None = None
    # Device pixel ratio, 1..4.
    dpr: float | None = None
    network: NetworkClass | None = None
    # Fixed encoder quality 1..100; turns the budget search off.
    quality: int | None = None
    # Byte budget overriding the profile's.
    max_bytes: int | None = None
    # None means AUTO, but unlike an explicit `format=auto` it leaves a request passthrough.
    format: OutputFormat | None = None
    # Background for letterboxing and for flattening alpha; None means white or transparent.
    background: RGB | None = None
    # Clockwise degrees (90, 180 or 270) after EXIF orientation; 0 means none.
    rotate: int = 0
    # A mirror of the rotated image; None means none.
    flip: Flip | None = None
    # Gaussian blur and unsharp-mask sigmas, in output pixels; None means none.
    blur: float | None = None
    sharpen: float | None = None
    # Keep an animated source animated where the output format can carry it.
    animate: bool = True
    # The frame (0-based) a still of an animated source shows; None means frame 0. Giving
    # it asks for a still.
    page: int | None = None

    @property
    def is_empty(self) -> bool:
        """True when the request named no option at all."""
        return self == Options()


T = TypeVar("T")
# Parses one raw value: (option name as given, value, max_edge) -> the field's value.
Parser = Callable[[str, str, int], object]


# The query key that names a preset, which stands for the options in its config table.
PRESET = "preset"
# Presets by name, each its options as query strings would give them.
Presets = Mapping[str, Mapping[str, str]]


def parse_options(
    args: Mapping[str, str],
    *,
    max_edge: int = 8192,
    strict: bool = True,
    ignore: frozenset[str] = frozenset(),
    presets: Presets | None = None,
    presets_only: bool = False,
) -> Options:
    """Turn string options into `Options`, raising `BadOption` that names what was wrong.

    `max_edge` bounds `w` and `h`; keys in `ignore` belong to the caller (`url`, `sig`).
    `preset=NAME` stands for the options of `presets[NAME]`, and options given beside it
    override the preset's; `presets_only` refuses anything but a preset alone.
    """
    given = {key: value for key, value in args.items() if key not in ignore}
    name = given.pop(PRESET, None)
    presets = presets or {}
    # Keys that are ignored anyway (unknown ones, when not strict) do not count.
    counted = [key for key in given if strict or ALIASES.get(key, key) in OPTIONS]
    if presets_only and (name is None or counted):
        received = "&".join(f"{key}={value}" for key, value in args.items() if key not in ignore)
        raise BadOption(
            f"Expected only preset=NAME, NAME {_preset_names(presets)}, because the server "
            f"takes presets only, but received {received!r}"
        )
    values: dict[str, object] = {}
    if name is not None:
        name = name.strip()
        if name not in presets:
            raise _bad(PRESET, name, _preset_names(presets))
        values = _fields(presets[name], max_edge, strict=True)
    # Field by field, so that `width=` given here overrides a preset's `w`.
    values |= _fields(given, max_edge, strict)
    if "page" in values and values.setdefault("animate", False):
        raise BadOption("Expected anim=0 or no anim with page, which asks for a still")
    return Options(**values)  # type: ignore[arg-type]


def _fields(args: Mapping[str, str], max_edge: int, strict: bool) -> dict[str, object]:
    """The `Options` fields that `args` set, each parsed and checked."""
    values: dict[str, object] = {}
    for raw_key, raw in args.items():
        key = ALIASES.get(raw_key, raw_key)
        spec = OPTIONS.get(key)
        if spec is None:
            if strict:
                known = ", ".join(sorted(_PUBLIC_NAMES))
                raise BadOption(f"Unknown option {raw_key!r}; expected one of {known}")
            continue
        if spec.field in values:
            raise BadOption(f"Option {raw_key!r} is given twice (directly or by an alias)")
        values[spec.field] = spec.parse(raw_key, raw.strip(), max_edge)
    if values.pop("forcefit", False) and values.setdefault("fit", Fit.FILL) != Fit.FILL:
        raise BadOption("Expected no fit other than fill with forcefit=1")
    return values


def _preset_names(presets: Presets) -> str:
    return _one_of(sorted(presets)) if presets else "a configured preset (there are none)"


def check_allowlists(options: Options, widths: tuple[int, ...], qualities: tuple[int, ...]) -> None:
    """Refuse sizes and qualities outside the operator's lists (empty lists allow all)."""
    for name, value, allowed in (
        ("w", options.width, widths),
        ("h", options.height, widths),
        ("q", options.quality, qualities),
    ):
        if allowed and value is not None and value not in allowed:
            listed = ", ".join(map(str, sorted(allowed)))
            raise _bad(name, str(value), f"one of {listed}")


def _bad(name: str, raw: str, expected: str) -> BadOption:
    return BadOption(f"Expected {expected} for {name} but received {raw!r}")


def _integer(low: int, high: int | None = None) -> Parser:
    def parse(name: str, raw: str, max_edge: int) -> int:
        top = max_edge if high is None else high
        # ASCII digits only: str.isdigit() also takes "²" and other scripts' digits.
        if not re.fullmatch(r"[0-9]{1,10}", raw) or not low <= int(raw) <= top:
            raise _bad(name, raw, f"an integer {low}..{top}")
        return int(raw)

    return parse


def _choice(kind: type[T], aliases: Mapping[str, T] | None = None, *, also: str = "") -> Parser:
    """A parser of one of `kind`'s values; `also` names what else the option takes."""

    def parse(name: str, raw: str, _max_edge: int) -> T:
        value = raw.lower()
        if aliases and value in aliases:
            return aliases[value]
        try:
            return kind(value)  # type: ignore[call-arg]
        except ValueError:
            names = ", ".join(str(member) for member in kind)  # type: ignore[attr-defined]
            raise _bad(name, raw, f"one of {names}{also}") from None

    return parse


def _flag(name: str, raw: str, _max_edge: int) -> bool:
    if raw not in ("0", "1", "true", "false"):
        raise _bad(name, raw, "0 or 1")
    return raw in ("1", "true")


def _screen(name: str, raw: str, _max_edge: int) -> tuple[int, int]:
    match = re.fullmatch(r"([0-9]{1,5})x([0-9]{1,5})", raw.lower())
    if not match or not all(1 <= int(side) <= MAX_SCREEN_EDGE for side in match.groups()):
        raise _bad(name, raw, f"WIDTHxHEIGHT in CSS pixels, each 1..{MAX_SCREEN_EDGE}")
    return int(match[1]), int(match[2])


def _number(low: float, high: float) -> Parser:
    """A decimal in low..high, rounded to 2 places (so caches see fewer variants)."""

    def parse(name: str, raw: str, _max_edge: int) -> float:
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not low <= value <= high:  # also refuses nan and inf
            raise _bad(name, raw, f"a number {low:g}..{high:g}")
        return round(value, 2)

    return parse


_GRAVITY = _choice(
    Gravity, {"center": Gravity.CENTRE}, also=", or fp:X,Y (fractions 0..1 of the source)"
)
_FRACTION = r"([0-9]*\.?[0-9]+)"


def _position(name: str, raw: str, max_edge: int) -> Position:
    if not raw.lower().startswith("fp:"):
        return _GRAVITY(name, raw, max_edge)  # type: ignore[return-value]
    match = re.fullmatch(f"fp:{_FRACTION},{_FRACTION}", raw.lower())
    if not match or not all(0 <= float(part) <= 1 for part in match.groups()):
        raise _bad(name, raw, "fp:X,Y with X and Y fractions 0..1 of the source")
    # 4 places: under a pixel on a 10,000 px source, and one spelling per point.
    return FocalPoint(round(float(match[1]), 4), round(float(match[2]), 4))


def _rotation(name: str, raw: str, _max_edge: int) -> int:
    if raw not in {str(degrees) for degrees in ROTATIONS}:
        raise _bad(name, raw, f"{_one_of(ROTATIONS)} (clockwise degrees)")
    return int(raw)


def _colour(name: str, raw: str, _max_edge: int) -> RGB:
    text = raw.removeprefix("#").lower()
    if len(text) == 3:
        text = "".join(c * 2 for c in text)
    if not re.fullmatch(r"[0-9a-f]{6}", text):
        raise _bad(name, raw, "a hex colour such as ff8800 or f80")
    return int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16)


def _one_of(names: Iterable[object]) -> str:
    listed = [str(name) for name in names]
    if len(listed) == 1:
        return listed[0]
    return f"one of {', '.join(listed[:-1])} or {listed[-1]}"


def _spelled(names: Iterable[str], spellings: Mapping[str, str]) -> list[str]:
    """Each name with its other spellings beside it: "jpeg (or jpg)"."""
    others = {name: [s for s, n in spellings.items() if n == name] for name in names}
    return [f"{name} (or {', '.join(alt)})" if alt else str(name) for name, alt in others.items()]


@dataclass(frozen=True, slots=True)
class OptionSpec:
    """One option of the URL API (and the CLI): what it sets, how it parses, what it means."""

    # The `Options` field it sets (`forcefit` is folded into `fit` after parsing).
    field: str
    parse: Parser
    # One sentence with the allowed values, for `--help`.
    help: str
    # What `--help` shows the flag's value as (`--w PX`); empty means the field's name.
    metavar: str = ""

    @property
    def shown_as(self) -> str:
        """The flag's value placeholder in `--help`."""
        return self.metavar or self.field.upper()


# Spellings of a format beside its name, as in file names: format=jpg.
_FORMAT_SPELLINGS = {
    spelling: OutputFormat(name) for spelling, name in SPELLINGS.items() if spelling != name
}

OPTIONS: Mapping[str, OptionSpec] = {
    "w": OptionSpec("width", _integer(1), "Box width in CSS pixels, 1..max_output_edge.", "PX"),
    "h": OptionSpec("height", _integer(1), "Box height in CSS pixels, 1..max_output_edge.", "PX"),
    "fit": OptionSpec(
        "fit", _choice(Fit), f"How the image fills the box: {_one_of(Fit)} (default inside)."
    ),
    "pos": OptionSpec(
        "gravity",
        _position,
        f"What fit=cover keeps: {_one_of([*Gravity, 'fp:X,Y'])}, a focal point (default centre).",
        "POSITION",
    ),
    "enlarge": OptionSpec(
        "enlarge", _flag, "Allow output larger than the source: 0 (default) or 1.", "0|1"
    ),
    "screen": OptionSpec(
        "screen",
        _screen,
        f"The client's screen as WIDTHxHEIGHT in CSS pixels, each 1..{MAX_SCREEN_EDGE}.",
        "WxH",
    ),
    "dpr": OptionSpec("dpr", _number(1, 4), "Device pixel ratio, a number 1..4.", "RATIO"),
    "bw": OptionSpec(
        "network",
        _choice(NetworkClass),
        f"Network class, which sets the byte budget: {_one_of(NetworkClass)}.",
        "CLASS",
    ),
    "q": OptionSpec(
        "quality",
        _integer(1, 100),
        "Fixed quality 1..100, which turns the budget search off.",
        "1-100",
    ),
    "max_bytes": OptionSpec(
        "max_bytes",
        _integer(1, 1_000_000_000),
        "Byte budget 1..1000000000, which overrides the network class's.",
        "BYTES",
    ),
    "format": OptionSpec(
        "format",
        _choice(OutputFormat, _FORMAT_SPELLINGS),
        f"Output format: {_one_of(_spelled(OutputFormat, _FORMAT_SPELLINGS))} (default auto).",
    ),
    "bg": OptionSpec(
        "background",
        _colour,
        "Background for contain and for flattening alpha, a hex colour such as ff8800 or f80.",
        "HEX",
    ),
    "forcefit": OptionSpec("forcefit", _flag, "Stretch to the box like fit=fill: 0 or 1.", "0|1"),
    "rotate": OptionSpec(
        "rotate",
        _rotation,
        f"Turn clockwise by {_one_of(ROTATIONS)} degrees, after the EXIF orientation.",
        "DEGREES",
    ),
    "flip": OptionSpec(
        "flip",
        _choice(Flip, {"vh": Flip.HV}),
        "Mirror the (rotated) image: h left-right, v top-bottom, hv both.",
        "h|v|hv",
    ),
    "blur": OptionSpec(
        "blur",
        _number(0.3, 100),
        "Gaussian blur of this sigma in output pixels, 0.3..100.",
        "SIGMA",
    ),
    "sharpen": OptionSpec(
        "sharpen",
        _number(0.3, 10),
        "Unsharp mask of this sigma in output pixels, 0.3..10.",
        "SIGMA",
    ),
    "anim": OptionSpec(
        "animate",
        _flag,
        "Keep an animated source animated where the format can: 1 (default), or 0 for a still.",
        "0|1",
    ),
    "page": OptionSpec(
        "page",
        _integer(0, MAX_PAGE),
        f"The frame a still of an animated source shows, 0..{MAX_PAGE} (0-based; implies anim=0).",
        "FRAME",
    ),
}
# Other names of options; each parses exactly as the option it names.
ALIASES: Mapping[str, str] = {"width": "w", "height": "h", "f": "format", "max-bytes": "max_bytes"}
_PUBLIC_NAMES = set(OPTIONS) | set(ALIASES) | {PRESET}
