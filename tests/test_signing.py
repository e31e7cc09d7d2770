import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
import pyvips

from pixfit.config import Config
from pixfit.errors import Forbidden
from pixfit.signing import canonical, sign_url, verify
from pixfit.web import create_app

KEYS = ("new-key", "old-key")


def test_canonical_form_sorts_the_query_and_drops_sig() -> None:
    assert (
        canonical("/images/a.jpg", {"w": "3", "bw": "2g", "sig": "x"}) == b"/images/a.jpg?bw=2g&w=3"
    )


def test_any_configured_key_verifies() -> None:
    for key in KEYS:
        signed = sign_url("/images/a.jpg?w=300&bw=3g", key)
        args = dict(parse_qsl(urlsplit(signed).query))
        verify(KEYS, "/images/a.jpg", args)


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/images/a.jpg", "w=301&bw=3g"),  # a changed option
        ("/images/b.jpg", "w=300&bw=3g"),  # another image
        ("/images/a.jpg", "w=300&bw=3g&q=90"),  # an added option
        ("/images/a.jpg", "w=300"),  # a removed option
        ("/images/a.jpg", "w=300&bw=wifi"),  # a signed bw changed
    ],
)
def test_tampering_fails(path: str, query: str) -> None:
    signature = dict(parse_qsl(urlsplit(sign_url("/images/a.jpg?w=300&bw=3g", "new-key")).query))[
        "sig"
    ]
    with pytest.raises(Forbidden):
        verify(KEYS, path, {**dict(parse_qsl(query)), "sig": signature})


def test_bw_may_be_added_to_a_signed_url_that_lacks_it() -> None:
    # What /pixfit.js does in the browser; ECT could pick the same classes.
    signed = dict(parse_qsl(urlsplit(sign_url("/images/a.jpg?w=300", "old-key")).query))
    verify(KEYS, "/images/a.jpg", {**signed, "bw": "2g"})
    with pytest.raises(Forbidden):
        verify(KEYS, "/images/a.jpg", {**signed, "bw": "2g", "q": "90"})


def test_missing_signature_and_unknown_key_fail() -> None:
    with pytest.raises(Forbidden, match="Expected a sig"):
        verify(KEYS, "/images/a.jpg", {"w": "300"})
    stranger = sign_url("/images/a.jpg?w=300", "some-other-key")
    with pytest.raises(Forbidden, match="valid sig"):
        verify(KEYS, "/images/a.jpg", dict(parse_qsl(urlsplit(stranger).query)))


def test_signed_urls_through_the_app(tmp_path: Path) -> None:
    pyvips.Image.black(64, 32).jpegsave(str(tmp_path / "a.jpg"))
    config = Config().merged(
        {"source": {"root": str(tmp_path)}, "security": {"signing_keys": list(KEYS)}}
    )
    client = create_app(config).test_client()
    good = client.get(sign_url("/images/a.jpg?w=16", "old-key"))
    assert good.status_code == 200
    assert pyvips.Image.new_from_buffer(good.data, "").width == 16
    unsigned = client.get("/images/a.jpg?w=16")
    assert unsigned.status_code == 403
    assert unsigned.mimetype == "application/problem+json"
    forged = client.get(sign_url("/images/a.jpg?w=16", "old-key").replace("w=16", "w=17"))
    assert forged.status_code == 403
    classed = client.get(sign_url("/images/a.jpg?w=16", "old-key") + "&bw=2g")
    assert (classed.status_code, classed.headers["X-Pixfit-Class"]) == (200, "2g")
    bad_class = client.get(sign_url("/images/a.jpg?w=16", "old-key") + "&bw=5g")
    assert bad_class.status_code == 400
    assert "'5g'" in bad_class.get_json()["detail"]


def test_sign_command_prints_a_verifiable_url(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pixfit.cli", "sign", "http://cdn.example/images/a.jpg?w=300"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PIXFIT_SECURITY_SIGNING_KEYS": "k1,k2", "PATH": ""},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    parts = urlsplit(result.stdout.strip())
    assert parts.netloc == "cdn.example"
    verify(("k1",), parts.path, dict(parse_qsl(parts.query)))
