"""pixfit: fit each image to the client's box, screen and network."""

from typing import TYPE_CHECKING, Any

from pixfit.config import Config, ConfigError
from pixfit.embed import image_url, srcset
from pixfit.errors import PixfitError
from pixfit.hints import ClientHints
from pixfit.options import Fit, Flip, FocalPoint, Gravity, Options, parse_options
from pixfit.planner import Plan, plan
from pixfit.profiles import NetworkClass, Profile
from pixfit.registry import OutputFormat

if TYPE_CHECKING:
    from pixfit.rendering import Rendered, Timings, configure, render, render_plan
    from pixfit.web import blueprint, create_app

__all__ = [
    "ClientHints",
    "Config",
    "ConfigError",
    "Fit",
    "Flip",
    "FocalPoint",
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
    "configure",
    "create_app",
    "image_url",
    "parse_options",
    "plan",
    "render",
    "render_plan",
    "srcset",
]


# Loaded when first asked for: the renderer brings in pyvips, and the web entry points
# Flask and the metrics. So the cache and the serving core import without either, and
# `pixfit serve` can set up shared metrics before the web module is imported.
_LAZY = {
    "Rendered": "pixfit.rendering",
    "Timings": "pixfit.rendering",
    "render": "pixfit.rendering",
    "render_plan": "pixfit.rendering",
    "configure": "pixfit.rendering",
    "blueprint": "pixfit.web",
    "create_app": "pixfit.web",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib  # noqa: PLC0415

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'pixfit' has no attribute {name!r}")
