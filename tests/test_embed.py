import importlib.util
import re
from pathlib import Path

import pyvips
from flask import Flask

from pixfit import Config, image_url, srcset
from pixfit.embed import template_helpers

EXAMPLE = Path(__file__).parent.parent / "examples" / "flask_embed.py"


def test_image_url_and_srcset() -> None:
    assert (
        image_url("a b.jpg", w=300, fit="cover", enlarge=True)
        == "/images/a%20b.jpg?w=300&fit=cover&enlarge=1"
    )
    assert image_url("/a.jpg", prefix="") == "/a.jpg"
    assert srcset("a.jpg", widths=[640, 320], bw="3g") == (
        "/images/a.jpg?bw=3g&w=320 320w, /images/a.jpg?bw=3g&w=640 640w"
    )


def test_urls_are_signed_when_keys_are_configured() -> None:
    config = Config().merged({"security": {"signing_keys": ["k"]}})
    assert re.fullmatch(
        r"/images/a\.jpg\?w=300&sig=[\w-]{43}", image_url("a.jpg", config=config, w=300)
    )


def test_the_script_mode_writes_attributes_for_pixfit_js() -> None:
    config = Config().merged({"security": {"signing_keys": ["k"]}})
    helpers = template_helpers(config, "/media", "/media/pixfit.js?v=1")
    attribute = helpers["pixfit_url"]("a b.jpg", w=300, fit="cover", script=True)
    url = image_url("a b.jpg", config=config, prefix="/media", w=300, fit="cover")
    assert attribute == f'data-pixfit-src="{url.replace("&", "&amp;")}"'
    assert helpers["pixfit_url"]("a.jpg", w=300) == image_url(
        "a.jpg", config=config, prefix="/media", w=300
    )
    assert helpers["pixfit_srcset"]("a.jpg", [320], script=True).startswith(
        'data-pixfit-srcset="/media/a.jpg?w=320&amp;sig='
    )
    tag = helpers["pixfit_script"]()
    assert tag.startswith('<script src="/media/pixfit.js?v=1" async onerror="')


def example_app() -> Flask:
    spec = importlib.util.spec_from_file_location("flask_embed", EXAMPLE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    app: Flask = module.app
    return app


def test_the_flask_example_runs_and_its_images_load() -> None:
    client = example_app().test_client()
    response = client.get("/")
    assert response.headers["Critical-CH"]
    page = response.get_data(as_text=True)
    names = ["landscape.jpg", "portrait.jpg", "wide.jpg", "alpha.png"]
    # For /pixfit.js: data-pixfit-src(set); for browsers without JavaScript: <noscript>.
    assert re.findall(r'data-pixfit-src="([^"]+)"', page) == [f"/media/{n}?w=320" for n in names]
    assert re.findall(r'<noscript><img src="([^"]+)"', page) == [f"/media/{n}?w=320" for n in names]
    (script,) = re.findall(r'<script src="([^"]+)"', page)
    served = client.get(script.replace("&amp;", "&"))
    assert served.status_code == 200
    assert served.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    candidates = re.findall(r"(/media/\S+) (\d+)w", page)
    assert len(candidates) == 2 * len(names) * 3
    for url, width in candidates[:6]:
        response = client.get(url.replace("&amp;", "&"))
        assert response.status_code == 200
        image = pyvips.Image.new_from_buffer(response.data, "")
        assert image.width == int(width)
