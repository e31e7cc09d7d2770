"""Hit and miss latency with an S3 bucket as the source, against the same photos as local files.

    PYTHONPATH=src .venv/bin/python bench/s3_source.py [--photos 6] [--rounds 5]

The bucket is a moto_server on 127.0.0.1 (as in the tests), so the figures are pixfit's
overhead for an object store (boto3, HTTP on loopback, the HEAD that revalidates), not a
network's. Each service is pixfit's serving core (`ImageService.handle`) in this process,
asked for the same URL of each photo (800 px JPEG q80) in the same run; the table gives
medians in ms and the ratio s3 / local. The machine is shared and noisy: compare ratios.

  miss            no result cache: read the source, decode, resize, encode
  read only       the source's open() alone (file read against a GET)
  hit (fresh)     memory cache, within cache.url_max_age: no request to the store at all
  revalidated     memory cache, url_max_age 0: one HEAD per request, then the stored bytes
  304             no result cache, If-None-Match: one HEAD (files: one stat)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # for tests/objectstore.py

import pyvips  # noqa: E402

from pixfit.config import Config  # noqa: E402
from pixfit.rendering import configure  # noqa: E402
from pixfit.service import ImageRequest, ImageService, SourceKind  # noqa: E402
from tests.objectstore import CREDENTIALS, moto_server  # noqa: E402

WALLPAPERS = Path("/usr/share/wallpapers")
BUCKET = "bench-originals"
QUERY = {"w": "800", "q": "80", "format": "jpeg"}


def photos(count: int) -> list[bytes]:
    """Real photos (1920 px wallpapers) when installed, else generated ones of 1920x1080."""
    found = sorted(WALLPAPERS.glob("*/contents/images/1920x1080.jpg"))[:count]
    if found:
        return [path.read_bytes() for path in found]
    xy = pyvips.Image.xyz(1920, 1080)
    return [
        bytes(((xy[0] * (0.1 + n / 50)) + xy[1] * 0.1).cast("uchar").jpegsave_buffer(Q=90))
        for n in range(count)
    ]


def median_ms(call: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def service(base: dict[str, object], **cache: object) -> ImageService:
    return ImageService.from_config(Config().merged({**base, "cache": cache or {"kind": "none"}}))


def measure(base: dict[str, object], names: list[str], rounds: int) -> dict[str, float]:
    """Median ms of each kind of request, over the photos, for one source."""
    plain = service(base)
    fresh = service(base, kind="memory")
    stale = service(base, kind="memory", url_max_age=0)

    def ask(chosen: ImageService, name: str, etag: str = "") -> int:
        headers = {"If-None-Match": etag} if etag else {}
        return chosen.handle(ImageRequest(SourceKind.PATH, name, QUERY, headers)).status

    etags = {}
    for name in names:  # warm the caches, and learn each variant's ETag
        ask(fresh, name)
        ask(stale, name)
        answer = plain.handle(ImageRequest(SourceKind.PATH, name, QUERY, {}))
        etags[name] = dict(answer.headers)["ETag"]
    figures = {
        "miss": [median_ms(lambda n=n: ask(plain, n), rounds) for n in names],
        "read only": [
            median_ms(lambda n=n: plain.sources.paths.open(n), rounds * 4) for n in names
        ],
        "hit (fresh)": [median_ms(lambda n=n: ask(fresh, n), rounds * 40) for n in names],
        "revalidated": [median_ms(lambda n=n: ask(stale, n), rounds * 8) for n in names],
        "304": [median_ms(lambda n=n: ask(plain, n, etags[n]), rounds * 8) for n in names],
    }
    return {what: statistics.median(values) for what, values in figures.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    os.environ.update(CREDENTIALS)
    configure()
    data = photos(args.photos)
    names = [f"p{n}.jpg" for n in range(len(data))]
    with tempfile.TemporaryDirectory() as folder, moto_server(Path(folder, "moto.log")) as s3:
        root = Path(folder, "root")
        root.mkdir()
        store = s3.bucket(BUCKET)
        for name, body in zip(names, data, strict=True):
            (root / name).write_bytes(body)
            store.put_object(Bucket=BUCKET, Key=name, Body=body)
        sources: dict[str, dict[str, object]] = {
            "local": {"source": {"root": str(root)}},
            "s3": {
                "source": {"kind": "s3", "s3_bucket": BUCKET, "s3_endpoint_url": s3.url},
            },
        }
        rows = {label: measure(base, names, args.rounds) for label, base in sources.items()}
    print(f"{len(data)} photos, {args.rounds} rounds; medians in ms (noisy shared machine)")
    print(f"{'':14} {'local':>9} {'s3':>9} {'s3/local':>9}")
    for what in rows["local"]:
        local, remote = rows["local"][what], rows["s3"][what]
        print(f"{what:14} {local:9.3f} {remote:9.3f} {remote / local:8.2f}x")


if __name__ == "__main__":
    main()
