"""Parse request options (query args or CLI flags) into one frozen value. No I/O here."""

from __future__ import annotations

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
    "MAX_SCREEN_EDGE",
    "OPTIONS",
    "RGB",
    "Fit",
    "Gravity",
    "OptionSpec",
    "Options",
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


RGB = tuple[int, int, int]

# Rejected above this, whatever the configured output cap: 4x a 16K screen.
MAX_SCREEN_EDGE = 16384


@dataclass(frozen=True, slots=True)
class Options:
    """What the request asked for; None means "not given"."""

    # The box in CSS pixels.
    width: int | None = None
    height: int | None = None
    fit: Fit = Fit.INSIDE
    gravity: Gravity = Gravity.CENTRE
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

    @property
    def is_empty(self) -> bool:
        """True when the request named no option at all."""
        return self == Options()


T = TypeVar("T")
# Parses one raw value: (option name as given, value, max_edge) -> the field's value.
Parser = Callable[[str, str, int], object]


def parse_options(
    args: Mapping[str, str],
    *,
    max_edge: int = 8192,
    strict: bool = True,
    ignore: frozenset[str] = frozenset(),
) -> Options:
    """Turn string options into `Options`, raising `BadOption` that names what was wrong.

    `max_edge` bounds `w` and `h`; keys in `ignore` belong to the caller (`url`, `sig`).
    """
    values: dict[str, object] = {}
    for raw_key, raw in args.items():
        if raw_key in ignore:
            continue
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
    return Options(**values)  # type: ignore[arg-type]


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


def _choice(kind: type[T], aliases: Mapping[str, T] | None = None) -> Parser:
    def parse(name: str, raw: str, _max_edge: int) -> T:
        value = raw.lower()
        if aliases and value in aliases:
            return aliases[value]
        try:
            return kind(value)  # type: ignore[call-arg]
        except ValueError:
            names = ", ".join(str(member) for member in kind)  # type: ignore[attr-defined]
            raise _bad(name, raw, f"one of {names}") from None

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


def _dpr(name: str, raw: str, _max_edge: int) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not 1 <= value <= 4:  # also refuses nan and inf
        raise _bad(name, raw, "a number 1..4")
    return round(value, 2)


def _colour(name: str, raw: str, _max_edge: int) -> RGB:
    text = raw.removeprefix("#").lower()
    if len(text) == 3:
        text = "".join(c * 2 for c in text)
    if not re.fullmatch(r"[0-9a-f]{6}", text):
        raise _bad(name, raw, "a hex colour such as ff8800 or f80")
    return int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16)


def _one_of(names: Iterable[str]) -> str:
    listed = [str(name) for name in names]
    return f"one of {', '.join(listed[:-1])} or {listed[-1]}"


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
        _choice(Gravity, {"center": Gravity.CENTRE}),
        f"What fit=cover keeps when it crops: {_one_of(Gravity)} (default centre).",
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
    "dpr": OptionSpec("dpr", _dpr, "Device pixel ratio, a number 1..4.", "RATIO"),
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
        f"Output format: {_one_of([*OutputFormat, *_FORMAT_SPELLINGS])} (default auto).",
    ),
    "bg": OptionSpec(
        "background",
        _colour,
        "Background for contain and for flattening alpha, a hex colour such as ff8800 or f80.",
        "HEX",
    ),
    "forcefit": OptionSpec("forcefit", _flag, "Stretch to the box like fit=fill: 0 or 1.", "0|1"),
}
# Other names of options; each parses exactly as the option it names.
ALIASES: Mapping[str, str] = {"width": "w", "height": "h", "f": "format", "max-bytes": "max_bytes"}
_PUBLIC_NAMES = set(OPTIONS) | set(ALIASES)
