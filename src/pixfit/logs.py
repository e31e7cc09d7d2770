"""Logging set-up from `[log]`: files named in the config, stderr when empty."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # config validates addresses with rtt.py, which logs here
    from pixfit.config import LogConfig

__all__ = [
    "ACCESS_LOGGER",
    "APP_LOGGER",
    "configure_logging",
]

APP_LOGGER = "pixfit"
ACCESS_LOGGER = "pixfit.access"


def configure_logging(config: LogConfig) -> None:
    """Point the app and access loggers at their files (or stderr); safe to call twice."""
    _attach(
        logging.getLogger(APP_LOGGER),
        config.file,
        config.level,
        "%(asctime)s %(levelname)s %(message)s",
    )
    access = logging.getLogger(ACCESS_LOGGER)
    access.propagate = False  # access lines go to their own file, not the app log too
    _attach(access, config.access_file, "info", "%(asctime)s %(message)s")


def _attach(logger: logging.Logger, path: str, level: str, fmt: str) -> None:
    for old in list(logger.handlers):
        if getattr(old, "_pixfit", False):
            logger.removeHandler(old)
            old.close()
    handler: logging.Handler = (
        logging.FileHandler(path) if path else logging.StreamHandler(sys.stderr)
    )
    handler._pixfit = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter(fmt))
    logger.addHandler(handler)
    logger.setLevel(level.upper())
