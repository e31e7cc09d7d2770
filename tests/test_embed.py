import importlib.util
import re
from pathlib import Path

import pyvips

from pixfit import Config, image_url, srcset

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


def test_the_flask_example_runs_and_its_images_load() -> None:
    spec = importlib.util.spec_from_file_location("flask_embed", EXAMPLE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    client = module.app.test_client()
    page = client.get("/").get_data(as_text=True)
    sources = re.findall(r'src="([^"]+)"', page)
    assert sources == ["/media/landscape.jpg?w=640", "/media/portrait.jpg?w=640"]
    candidates = re.findall(r"(/media/\S+) (\d+)w", page)
    assert len(candidates) == 6
    for url, width in candidates:
        response = client.get(url.replace("&amp;", "&"))
        assert response.status_code == 200
        image = pyvips.Image.new_from_buffer(response.data, "")
        assert image.width == min(int(width), 1600 if "landscape" in url else 1000)
