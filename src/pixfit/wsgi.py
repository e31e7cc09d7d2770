"""`application` for mod_wsgi and gunicorn, configured by PIXFIT_CONFIG and PIXFIT_* variables."""

from __future__ import annotations

import os
import sys

from pixfit.config import Config
from pixfit.web import create_app

__all__ = [
    "application",
]


def _prefix() -> str | None:
    # Under mod_wsgi, `WSGIScriptAlias /images` already supplies the prefix as SCRIPT_NAME,
    # so the images sit at the app's root unless the operator names a prefix explicitly.
    if "mod_wsgi" in sys.modules and "PIXFIT_SERVER_PREFIX" not in os.environ:
        return ""
    return None


application = create_app(Config.load(os.environ), prefix=_prefix())
