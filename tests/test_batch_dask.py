"""`pixfit batch --scheduler` on a real Dask cluster (a scheduler and two worker processes),
from folders and from s3:// buckets of a real moto_server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pyvips
from distributed import Client

from tests.daskcluster import dask_cluster
from tests.objectstore import CREDENTIALS, MotoServer, moto_server
from tests.test_batch import VARIANTS, pixfit, src, summary

__all__ = ["src"]  # the fixture, used by name

BUCKET = "batch"


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with moto_server(tmp_path_factory.mktemp("moto") / "moto.log") as server:
        yield server


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Two worker processes, which find the bucket's credentials as any host would."""
    with dask_cluster(tmp_path_factory.mktemp("dask"), workers=2, env=CREDENTIALS) as address:
        yield address


def contents(folder: Path) -> dict[str, bytes]:
    files = sorted(path for path in folder.rglob("*") if path.is_file())
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in files}


def objects(client: Any, prefix: str) -> dict[str, bytes]:
    listed = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return {
        item["Key"][len(prefix) :]: client.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
        for item in listed
    }


def test_dask_renders_what_threads_render_byte_for_byte(
    src: Path, tmp_path: Path, cluster: str
) -> None:
    threads, dask = tmp_path / "threads", tmp_path / "dask"
    assert pixfit("batch", str(src), str(threads), "--variants", VARIANTS).returncode == 1
    result = pixfit("batch", str(src), str(dask), "--variants", VARIANTS, "--scheduler", cluster)
    # The corrupt file is reported once, and everything else is rendered.
    assert result.returncode == 1, result.stderr
    assert result.stderr.count(f"{src / 'broken.jpg'}: ") == 1
    counts = summary(result.stderr)
    assert (counts["rendered"], counts["failed"], counts["not images"]) == (12, 4, 1)
    rendered = contents(dask)
    assert len(rendered) == 12 and rendered == contents(threads)

    again = pixfit("batch", str(src), str(dask), "--variants", VARIANTS, "--scheduler", cluster)
    assert summary(again.stderr)["rendered"] == 0 and summary(again.stderr)["skipped"] == 12
    assert contents(dask) == rendered

    # Every worker rendered with one libvips thread.
    with Client(cluster, timeout=30) as client:
        assert set(client.run(pyvips.concurrency_get).values()) == {1}


def test_buckets_as_src_and_out(src: Path, tmp_path: Path, cluster: str, s3: MotoServer) -> None:
    store = s3.bucket(BUCKET)
    for path in sorted(src.rglob("*")):
        if path.is_file():
            key = f"originals/{path.relative_to(src).as_posix()}"
            store.put_object(Bucket=BUCKET, Key=key, Body=path.read_bytes())
    env = {**os.environ, **CREDENTIALS, "PIXFIT_SOURCE_S3_ENDPOINT_URL": s3.url}
    source, out = f"s3://{BUCKET}/originals", f"s3://{BUCKET}/variants/"
    threads = tmp_path / "threads"
    assert pixfit("batch", str(src), str(threads), "--variants", VARIANTS).returncode == 1

    first = pixfit("batch", source, out, "--variants", VARIANTS, "--scheduler", cluster, env=env)
    assert first.returncode == 1, first.stderr
    assert f"s3://{BUCKET}/originals/broken.jpg: " in first.stderr
    assert summary(first.stderr)["rendered"] == 12
    assert objects(store, "variants/") == contents(threads)

    again = pixfit("batch", source, out, "--variants", VARIANTS, "--scheduler", cluster, env=env)
    assert summary(again.stderr)["skipped"] == 12 and summary(again.stderr)["rendered"] == 0

    # A changed original (a new ETag) is rendered again, and only it.
    landscape = pyvips.Image.black(300, 300).new_from_image([10, 200, 40])
    body = landscape.jpegsave_buffer(Q=90)
    store.put_object(Bucket=BUCKET, Key="originals/landscape.jpg", Body=body)
    third = pixfit("batch", source, out, "--variants", VARIANTS, env=env)  # on threads
    assert summary(third.stderr)["rendered"] == 4 and summary(third.stderr)["skipped"] == 8
    changed = objects(store, "variants/landscape/")
    assert pyvips.Image.new_from_buffer(changed["format-jpeg_w-100.jpg"], "").height == 100


def test_an_unreachable_scheduler_is_one_clear_error(src: Path, tmp_path: Path) -> None:
    result = pixfit(
        "batch", str(src), str(tmp_path / "out"), "--w", "50", "--scheduler", "tcp://127.0.0.1:9"
    )
    assert result.returncode == 2
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in result.stderr
    assert "Traceback" not in result.stderr
