# WSGI script file for deploy/apache-pixfit.conf: names the configuration file (mod_wsgi's
# SetEnv never reaches os.environ), then hands over pixfit's WSGI application.
import os

os.environ.setdefault("PIXFIT_CONFIG", "/etc/pixfit/pixfit.toml")
from pixfit.wsgi import application  # noqa: E402
