"""A Flask site that serves its photos through pixfit, with responsive <img> tags.

Run it from the repository root:  .venv/bin/flask --app examples/flask_embed.py run
then open http://127.0.0.1:5000/ (the photos are pixfit's bundled samples).
"""

from flask import Flask, render_template_string

import pixfit

config = pixfit.Config()  # or pixfit.Config.load(os.environ, "pixfit.toml")
app = Flask(__name__)
# Images are served at /media/<path>?w=...; templates get pixfit_url() and pixfit_srcset().
app.register_blueprint(pixfit.blueprint(config), url_prefix="/media")

PAGE = """<!doctype html>
<title>Gallery</title>
<h1>Gallery</h1>
{% for name in ["landscape.jpg", "portrait.jpg"] %}
<img src="{{ pixfit_url(name, w=640) }}"
     srcset="{{ pixfit_srcset(name, widths=[320, 640, 1280]) }}"
     sizes="(max-width: 640px) 100vw, 640px" alt="{{ name }}" loading="lazy">
{% endfor %}
"""


@app.get("/")
def gallery() -> str:
    """A page of responsive images."""
    return render_template_string(PAGE)
