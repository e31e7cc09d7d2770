"""Purge by source: POST /_pixfit/purge and `pixfit purge`, over memory and disk caches.

Redis and S3 purges run against their real servers in test_cache_redis.py and
test_cache_s3.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from pixfit.cache import MemoryCache, cache_key
from pixfit.cli import main
from pixfit.config import Config
from pixfit.service import SourceKind, source_tag
from pixfit.web import create_app
from tests.conftest import photo
from tests.test_cache import variant

TOKEN = "purge-token-1"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "root"
    (folder / "sub").mkdir(parents=True)
    photo(300, 200).jpegsave(str(folder / "a.jpg"), Q=85)
    photo(300, 200, seed=1).jpegsave(str(folder / "sub" / "b.jpg"), Q=85)
    return folder


def app_for(root: Path, **cache: Any) -> Flask:
    return create_app(
        Config().merged(
            {
                "source": {"root": str(root)},
                "cache": cache or {"kind": "memory"},
                "security": {"admin_tokens": ["other-token", TOKEN]},
            }
        )
    )


def timing(client: FlaskClient, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, response.data
    return response.headers["Server-Timing"]


def fill(client: FlaskClient) -> None:
    for url in ("/images/a.jpg?w=100", "/images/a.jpg?w=150", "/images/sub/b.jpg?w=100"):
        timing(client, url)


def assert_purged_a_only(client: FlaskClient) -> None:
    assert "decode;" in timing(client, "/images/a.jpg?w=100")
    assert "decode;" in timing(client, "/images/a.jpg?w=150")
    assert timing(client, "/images/sub/b.jpg?w=100") == 'cache;desc="hit"'


@pytest.mark.parametrize("kind", ["memory", "disk"])
def test_the_endpoint_purges_every_variant_of_one_source(
    root: Path, tmp_path: Path, kind: str
) -> None:
    client = app_for(root, kind=kind, path=str(tmp_path / "cache")).test_client()
    fill(client)
    response = client.post("/_pixfit/purge", json={"path": "a.jpg"}, headers=AUTH)
    assert response.status_code == 200
    assert response.get_json() == {"path": "a.jpg", "purged": 2}
    assert_purged_a_only(client)
    again = client.post("/_pixfit/purge", data={"path": "nothing.jpg"}, headers=AUTH)
    assert again.get_json() == {"path": "nothing.jpg", "purged": 0}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": "Bearer "},
    ],
)
def test_the_endpoint_wants_an_admin_token(root: Path, headers: dict[str, str]) -> None:
    client = app_for(root).test_client()
    fill(client)
    response = client.post("/_pixfit/purge", json={"path": "a.jpg"}, headers=headers)
    assert response.status_code == 401 and response.mimetype == "application/problem+json"
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="pixfit"'
    assert timing(client, "/images/a.jpg?w=100") == 'cache;desc="hit"'


@pytest.mark.parametrize(
    "body",
    [{}, {"path": ""}, {"path": "a.jpg", "url": "https://x.test/a.jpg"}, {"path": 3}, []],
)
def test_the_endpoint_wants_one_path_or_url(root: Path, body: Any) -> None:
    response = app_for(root).test_client().post("/_pixfit/purge", json=body, headers=AUTH)
    assert response.status_code == 400 and response.mimetype == "application/problem+json"
    assert "path or url" in json.loads(response.data)["detail"]


def test_without_admin_tokens_there_is_no_endpoint(root: Path) -> None:
    app = create_app(Config().merged({"source": {"root": str(root)}}))
    response = app.test_client().post("/_pixfit/purge", json={"path": "a.jpg"}, headers=AUTH)
    assert response.status_code == 404 and response.mimetype == "application/problem+json"


def test_a_url_source_is_purged_by_its_url() -> None:
    cache = MemoryCache(1_000_000)
    url, other = "https://img.test/a.jpg", "https://img.test/b.jpg"
    cache.put(cache_key(source_tag(SourceKind.URL, url), "1" * 32), variant(10))
    cache.put(cache_key(source_tag(SourceKind.URL, url), "2" * 32), variant(10))
    cache.put(cache_key(source_tag(SourceKind.URL, other), "1" * 32), variant(10))
    cache.put(cache_key(source_tag(SourceKind.PATH, url), "3" * 32), variant(10))
    assert cache.purge(source_tag(SourceKind.URL, url)) == 2
    assert cache.size == 20


def test_the_command_purges_a_shared_cache(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = tmp_path / "pixfit.toml"
    settings.write_text(
        f'[source]\nroot = "{root}"\n[cache]\nkind = "disk"\npath = "{tmp_path / "cache"}"\n'
    )
    client = create_app(Config.from_toml(settings)).test_client()
    fill(client)
    assert main(["purge", "--config", str(settings), "a.jpg"]) == 0
    assert "purged 2 cached variants of a.jpg" in capsys.readouterr().err
    assert_purged_a_only(client)


def test_the_command_refuses_a_memory_cache(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = tmp_path / "pixfit.toml"
    settings.write_text('[cache]\nkind = "memory"\n')
    assert main(["purge", "--config", str(settings), "a.jpg"]) == 2
    assert "POST /_pixfit/purge" in capsys.readouterr().err
