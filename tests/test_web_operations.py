"""Operations, focal points and presets through the Flask app: status codes, problem
documents, ETags and decoded pixels."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

import pixfit
import pixfit.web
from tests.conftest import photo, shown

PRESETS = {
    "card": {"w": 400, "h": 300, "fit": "cover", "format": "png"},
    "thumb": {"w": 80, "rotate": 90, "format": "png"},
}


def client_for(root: Path, **security: Any) -> FlaskClient:
    config = pixfit.Config().merged(
        {"source": {"root": str(root)}, "presets": PRESETS, "security": security}
    )
    return pixfit.web.create_app(config).test_client()


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("operations")
    (folder / "photo.png").write_bytes(bytes(photo(800, 500, seed=2).pngsave_buffer()))
    return folder


@pytest.fixture(scope="module")
def client(root: Path) -> FlaskClient:
    return client_for(root)


def size(response: TestResponse) -> tuple[int, int]:
    assert response.status_code == 200, response.get_data(as_text=True)
    image = shown(response.get_data())
    return image.width, image.height


def problem(response: TestResponse, status: int = 400) -> str:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.content_type == "application/problem+json"
    body = json.loads(response.get_data())
    assert body["status"] == status
    return str(body["detail"])


def test_a_preset_stands_for_its_options(client: FlaskClient) -> None:
    response = client.get("/images/photo.png?preset=card")
    assert size(response) == (400, 300)
    assert response.content_type == "image/png"
    # thumb turns the 8:5 photo a quarter before fitting its width.
    assert size(client.get("/images/photo.png?preset=thumb")) == (80, 128)


def test_options_beside_a_preset_override_its_own(client: FlaskClient) -> None:
    assert size(client.get("/images/photo.png?preset=card&w=200")) == (200, 300)
    assert size(client.get("/images/photo.png?preset=card&width=200&h=100")) == (200, 100)
    assert size(client.get("/images/photo.png?preset=thumb&rotate=180")) == (80, 50)


def test_a_preset_and_its_options_spelled_out_are_one_variant(client: FlaskClient) -> None:
    by_name = client.get("/images/photo.png?preset=card")
    spelled = client.get("/images/photo.png?w=400&h=300&fit=cover&format=png")
    assert by_name.headers["ETag"] == spelled.headers["ETag"]
    assert by_name.get_data() == spelled.get_data()


def test_an_unknown_preset_is_a_400_naming_the_presets(client: FlaskClient) -> None:
    detail = problem(client.get("/images/photo.png?preset=hero"))
    assert detail == "Expected one of card or thumb for preset but received 'hero'"


@pytest.mark.parametrize(
    "query", ["w=100", "preset=card&w=100", "", "preset=card&rotate=90", "fit=cover"]
)
def test_presets_only_refuses_anything_but_a_preset_alone(root: Path, query: str) -> None:
    strict = client_for(root, presets_only=True)
    detail = problem(strict.get(f"/images/photo.png?{query}"))
    assert "Expected only preset=NAME, NAME one of card or thumb" in detail
    assert size(strict.get("/images/photo.png?preset=card")) == (400, 300)


def test_presets_only_still_refuses_an_unknown_preset(root: Path) -> None:
    strict = client_for(root, presets_only=True)
    assert "for preset but received 'x'" in problem(strict.get("/images/photo.png?preset=x"))


@pytest.mark.parametrize(
    "extra",
    ["rotate=90", "rotate=180", "flip=h", "flip=v", "blur=1", "blur=3", "sharpen=1",
     "pos=fp:0.2,0.5", "pos=fp:0.8,0.5"],
)  # fmt: skip
def test_each_operation_is_its_own_cached_variant(root: Path, extra: str) -> None:
    cached = pixfit.web.create_app(
        pixfit.Config().merged({"source": {"root": str(root)}, "cache": {"kind": "memory"}})
    ).test_client()
    base = "/images/photo.png?w=200&h=200&fit=cover&format=png"
    plain = cached.get(base)
    changed = cached.get(f"{base}&{extra}")
    again = cached.get(f"{base}&{extra}")
    assert plain.headers["ETag"] != changed.headers["ETag"]
    assert plain.get_data() != changed.get_data()
    # The second request is a hit of the operation's own variant, not of the plain one.
    assert again.headers["Server-Timing"] == 'cache;desc="hit"'
    assert again.get_data() == changed.get_data()


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("rotate=45", "Expected one of 90, 180 or 270 (clockwise degrees) for rotate but "
         "received '45'"),
        ("flip=x", "Expected one of h, v, hv for flip but received 'x'"),
        ("blur=0", "Expected a number 0.3..100 for blur but received '0'"),
        ("blur=1e9", "for blur"),
        ("sharpen=20", "Expected a number 0.3..10 for sharpen but received '20'"),
        ("pos=fp:1.2,0.5", "Expected fp:X,Y with X and Y fractions 0..1 of the source for pos "
         "but received 'fp:1.2,0.5'"),
        ("pos=fp:a,b", "for pos but received 'fp:a,b'"),
        ("pos=fp%3A0.5", "for pos but received 'fp:0.5'"),
    ],
)  # fmt: skip
def test_bad_operation_values_are_400_problems(
    client: FlaskClient, query: str, fragment: str
) -> None:
    assert fragment in problem(client.get(f"/images/photo.png?w=100&{query}"))
