"""pixfit: fit each image to the client's box, screen and network."""

from typing import Any

from pixfit.config import Config, ConfigError
from pixfit.embed import image_url, srcset
from pixfit.errors import PixfitError
from pixfit.hints import ClientHints
from pixfit.options import Fit, Gravity, Options, parse_options
from pixfit.planner import Plan, plan
from pixfit.profiles import NetworkClass, Profile
from pixfit.registry import OutputFormat
from pixfit.render import Rendered, Timings, render, render_plan

__all__ = [
    "ClientHints",
    "Config",
    "ConfigError",
    "Fit",
    "Gravity",
    "NetworkClass",
    "Options",
    "OutputFormat",
    "PixfitError",
    "Plan",
    "Profile",
    "Rendered",
    "Timings",
    "blueprint",
    "create_app",
    "image_url",
    "parse_options",
    "plan",
    "render",
    "render_plan",
    "srcset",
]


def __getattr__(name: str) -> Any:
    # The web entry points load Flask (and the metrics) only when asked for, so the
    # library stays light and `pixfit serve` can set up shared metrics before the import.
    if name in ("create_app", "blueprint"):
        from pixfit import web  # noqa: PLC0415

        return getattr(web, name)
    raise AttributeError(f"module 'pixfit' has no attribute {name!r}")
