"""pixfit: fit each image to the client's box, screen and network."""

from pixfit.config import Config, ConfigError
from pixfit.errors import PixfitError
from pixfit.hints import ClientHints
from pixfit.options import Fit, Gravity, Options, OutputFormat, parse_options
from pixfit.planner import Plan, plan
from pixfit.profiles import NetworkClass, Profile
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
    "parse_options",
    "plan",
    "render",
    "render_plan",
]
