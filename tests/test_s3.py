"""An S3 bucket as the source of paths, against a real moto_server over HTTP."""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from pixfit.config import Config, ConfigError, SourceStore
from pixfit.errors import Forbidden, NotFound, PixfitError
from pixfit.s3 import Bucket, S3Source, parse_s3_url
from pixfit.web import create_app
from tests.conftest import decoded, photo
from tests.objectstore import CREDENTIALS, MotoServer, moto_server, s3

__all__ = ["s3"]  # the fixture, used by name

BUCKET = "originals"


@pytest.fixture(autouse=True)
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """pixfit finds its credentials as on a real host: in the standard AWS variables."""
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)


def jpeg(width: int, height: int, seed: int = 0) -> bytes:
    return bytes(photo(width, height, seed).jpegsave_buffer(Q=85))


@pytest.fixture(scope="module")
def store(s3: MotoServer) -> Any:
    """The bucket, with photos/a.jpg (400x300) and a folder of other objects."""
    client = s3.bucket(BUCKET)
    client.put_object(Bucket=BUCKET, Key="photos/a.jpg", Body=jpeg(400, 300))
    client.put_object(Bucket=BUCKET, Key="a.jpg", Body=jpeg(50, 50))  # outside the folder
    return client


def app_for(s3: MotoServer, **settings: Any) -> Flask:
    source = {
        "kind": "s3",
        "s3_bucket": BUCKET,
        "s3_prefix": "photos/",
        "s3_endpoint_url": s3.url,
        "s3_region": "us-east-1",
        **settings.pop("source", {}),
    }
    return create_app(Config().merged({"source": source, **settings}))


@pytest.fixture
def app(s3: MotoServer, store: Any) -> Flask:
    return app_for(s3, cache={"kind": "memory"})


def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.data
    assert response.mimetype == "application/problem+json"
    body: dict[str, Any] = json.loads(response.data)
    assert body["status"] == status
    return body


def test_the_environment_names_an_s3_source() -> None:
    config = Config.load(
        {
            "PIXFIT_SOURCE_KIND": "s3",
            "PIXFIT_SOURCE_S3_BUCKET": "pics",
            "PIXFIT_SOURCE_S3_PREFIX": "web/",
            "PIXFIT_SOURCE_S3_ENDPOINT_URL": "http://127.0.0.1:9000",
            "PIXFIT_SOURCE_S3_REGION": "eu-west-1",
        }
    )
    assert config.source.kind == SourceStore.S3
    assert Bucket.configured(config.source, 1.0) == Bucket(
        "pics", "web", "http://127.0.0.1:9000", "eu-west-1", 1.0
    )


def test_kind_s3_without_a_bucket_fails_at_start_up_with_its_name() -> None:
    with pytest.raises(ConfigError, match=r"source\.s3_bucket"):
        Config().merged({"source": {"kind": "s3"}})
    with pytest.raises(ConfigError, match=r"cache\.s3_bucket"):
        Config().merged({"cache": {"kind": "s3"}})


@pytest.mark.parametrize(
    ("url", "bucket"),
    [
        ("s3://pics", Bucket("pics")),
        ("s3://pics/", Bucket("pics")),
        ("s3://pics/web/2024/", Bucket("pics", "web/2024")),
    ],
)
def test_s3_urls_name_a_bucket_and_a_folder(url: str, bucket: Bucket) -> None:
    assert parse_s3_url(url) == bucket
    assert bucket.key("a.jpg") == (f"{bucket.prefix}/a.jpg" if bucket.prefix else "a.jpg")
    assert bucket.name_of(bucket.key("x/a.jpg")) == "x/a.jpg"


@pytest.mark.parametrize("url", ["pics/a", "s3://", "s3:///a", "http://pics/a"])
def test_what_is_not_an_s3_url_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="s3://BUCKET"):
        parse_s3_url(url)


def test_an_object_is_served_resized_and_untouched(app: Flask, store: Any) -> None:
    client = app.test_client()
    resized = client.get("/images/a.jpg?w=200")
    assert resized.status_code == 200 and resized.mimetype == "image/jpeg"
    assert (decoded(resized.data).width, decoded(resized.data).height) == (200, 150)
    original = client.get("/images/a.jpg")
    body = store.get_object(Bucket=BUCKET, Key="photos/a.jpg")["Body"].read()
    assert original.status_code == 200 and original.data == body
    assert original.headers["Last-Modified"]


@pytest.mark.parametrize(
    ("ref", "error"),
    [
        ("../a.jpg", Forbidden),
        ("x/../../a.jpg", Forbidden),
        ("a\\b.jpg", Forbidden),
        ("./a.jpg", Forbidden),
        ("/a.jpg", NotFound),
        ("a.jpg/", NotFound),
        ("x//a.jpg", NotFound),
    ],
)
def test_keys_follow_the_rules_of_paths(s3: MotoServer, ref: str, error: type[PixfitError]) -> None:
    source = S3Source(Bucket(BUCKET, "photos", s3.url), 1_000_000)
    with pytest.raises(error):
        source.identify(ref)
    with pytest.raises(error):
        source.open(ref)


def test_a_missing_key_is_404(app: Flask) -> None:
    body = problem(app.test_client().get("/images/nope.jpg?w=100"), 404)
    assert "nope.jpg" in body["detail"] and BUCKET not in body["detail"]


def test_an_object_over_max_source_bytes_is_413(s3: MotoServer, store: Any) -> None:
    app = app_for(s3, source={"max_source_bytes": 1000})
    problem(app.test_client().get("/images/a.jpg?w=100"), 413)


def test_a_changed_object_gets_a_new_etag_and_a_new_variant(s3: MotoServer, store: Any) -> None:
    store.put_object(Bucket=BUCKET, Key="photos/changing.jpg", Body=jpeg(400, 300))
    # url_max_age 0: every request asks the store (one HEAD) whether the object changed.
    client = app_for(s3, cache={"kind": "memory", "url_max_age": 0}).test_client()
    first = client.get("/images/changing.jpg?w=200")
    assert decoded(first.data).height == 150
    same = client.get("/images/changing.jpg?w=200")
    assert same.headers["Server-Timing"].endswith('cache;desc="revalidated"')
    assert same.headers["ETag"] == first.headers["ETag"] and same.data == first.data
    store.put_object(Bucket=BUCKET, Key="photos/changing.jpg", Body=jpeg(400, 400, seed=1))
    changed = client.get("/images/changing.jpg?w=200")
    assert changed.headers["ETag"] != first.headers["ETag"]
    assert "decode;" in changed.headers["Server-Timing"]
    assert decoded(changed.data).height == 200


def test_a_fresh_hit_asks_nothing_and_a_304_costs_one_head(s3: MotoServer, store: Any) -> None:
    key = "photos/counted.jpg"
    store.put_object(Bucket=BUCKET, Key=key, Body=jpeg(300, 200))
    # moto logs each request it serves: its log counts what pixfit asked.
    path = f"/{BUCKET}/{key}"
    client = app_for(s3, cache={"kind": "memory"}).test_client()
    first = client.get("/images/counted.jpg?w=100")
    gets = s3.requests("GET", path)
    heads = s3.requests("HEAD", path)
    store.delete_object(Bucket=BUCKET, Key=key)  # a fresh variant does not need it
    hit = client.get("/images/counted.jpg?w=100")
    assert hit.status_code == 200 and hit.headers["Server-Timing"] == 'cache;desc="hit"'
    assert s3.requests("GET", path) == gets
    assert s3.requests("HEAD", path) == heads

    store.put_object(Bucket=BUCKET, Key=key, Body=jpeg(300, 200))
    uncached = app_for(s3).test_client()
    etag = uncached.get("/images/counted.jpg?w=100").headers["ETag"]
    gets = s3.requests("GET", path)
    heads = s3.requests("HEAD", path)
    again = uncached.get("/images/counted.jpg?w=100", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.headers["ETag"] == etag
    assert s3.requests("GET", path) == gets
    assert s3.requests("HEAD", path) == heads + 1
    assert first.status_code == 200


def test_refused_credentials_are_502_with_the_reason_only_in_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with moto_server(tmp_path / "moto.log", check_credentials=True) as strict:
        app = app_for(strict)
        with caplog.at_level(logging.WARNING, logger="pixfit"):
            body = problem(app.test_client().get("/images/a.jpg?w=100"), 502)
    assert "InvalidAccessKeyId" not in json.dumps(body) and BUCKET not in body["detail"]
    assert any("InvalidAccessKeyId" in record.getMessage() for record in caplog.records)


def test_a_store_that_does_not_answer_is_504(s3: MotoServer) -> None:
    # A socket that listens but never accepts: the connection opens and no answer comes.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        app = app_for(s3, source={"s3_endpoint_url": endpoint, "fetch_timeout": 0.3})
        problem(app.test_client().get("/images/a.jpg?w=100"), 504)
