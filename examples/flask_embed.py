"""A Flask site that serves its photos through pixfit, with responsive <img> tags.

Run it from the repository root:  .venv/bin/flask --app examples/flask_embed.py run
then open http://127.0.0.1:5000/ (the photos are pixfit's bundled samples). PIXFIT_*
variables configure it (PIXFIT_CACHE_KIND=memory keeps rendered variants).

The images are written for /pixfit.js: it measures the visitor's link in the browser and
puts the class (bw=) into each URL before the image loads, so Firefox and Safari, which
send no network hints, get the image for their link too. <noscript> keeps the images for
browsers without JavaScript, and the script tag's fallback for pages whose script fails.
"""

import os

from flask import Flask, Response, render_template_string

import pixfit
from pixfit.hints import ACCEPT_CH, CRITICAL_CH

config = pixfit.Config.load(os.environ)
app = Flask(__name__)
# Images are served at /media/<path>?w=...; templates get pixfit_url(), pixfit_srcset()
# and pixfit_script().
app.register_blueprint(pixfit.blueprint(config), url_prefix="/media")

PAGE = """<!doctype html>
<html lang="en">
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Gallery</title>
{{ pixfit_script() }}
<style>img { width: 320px; height: auto; margin: 4px; }</style>
<h1>Gallery</h1>
{% macro photo(name) -%}
<img {{ pixfit_url(name, w=320, script=True) }}
     {{ pixfit_srcset(name, widths=WIDTHS, script=True) }}
     sizes="320px" alt="{{ name }}">
<noscript><img src="{{ pixfit_url(name, w=320) }}"
     srcset="{{ pixfit_srcset(name, widths=WIDTHS) }}" sizes="320px" alt="{{ name }}"></noscript>
{%- endmacro %}
{% for name in ["landscape.jpg", "portrait.jpg", "wide.jpg", "alpha.png"] %}
{{ photo(name) }}
{% endfor %}
</html>
"""


@app.get("/")
def gallery() -> Response:
    """A page of responsive images, asking Chromium for its hints from the first request."""
    response = Response(render_template_string(PAGE, WIDTHS=[160, 320, 640]))
    response.headers["Accept-CH"] = ", ".join(ACCEPT_CH)
    response.headers["Critical-CH"] = ", ".join(CRITICAL_CH)
    return response
