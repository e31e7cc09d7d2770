"""Signed URLs: an HMAC-SHA256 over the path and the canonical query, without `sig`.

Only the URL is signed. Client-hint headers (DPR, Width, ECT, Save-Data) still change
the answer, but they are snapped to small ladders before use, so an attacker who replays
a signed URL with other headers can only reach a bounded set of variants. For the same
reason `bw` may be added to a signed URL that does not name it: /pixfit.js writes it in
the browser, and it reaches no variant the ECT header could not. A URL signed with `bw`
keeps it: changing or removing it breaks the signature.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pixfit.errors import Forbidden

__all__ = [
    "ADDABLE_KEY",
    "SIGNATURE_KEY",
    "canonical",
    "sign_url",
    "signature",
    "verify",
]

SIGNATURE_KEY = "sig"
# The option a client may add to a signed URL that lacks it (see above).
ADDABLE_KEY = "bw"


def canonical(path: str, args: Mapping[str, str]) -> bytes:
    """The signed message: the path, then the query sorted by key, without `sig`."""
    query = urlencode(sorted((k, v) for k, v in args.items() if k != SIGNATURE_KEY))
    return f"{path}?{query}".encode()


def signature(key: str, path: str, args: Mapping[str, str]) -> str:
    """The URL-safe base64 HMAC-SHA256 of the canonical form."""
    digest = hmac.new(key.encode(), canonical(path, args), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def verify(keys: Sequence[str], path: str, args: Mapping[str, str]) -> None:
    """Raise `Forbidden` unless `sig` matches under one of the keys (any, for rotation)."""
    given = args.get(SIGNATURE_KEY)
    if not given:
        raise Forbidden("Expected a sig parameter: this server only serves signed URLs")
    forms = [args]
    if ADDABLE_KEY in args:
        forms.append({k: v for k, v in args.items() if k != ADDABLE_KEY})
    # Compare every key in constant time, so timing reveals neither the key nor which matched.
    matches = [
        hmac.compare_digest(given, signature(key, path, form)) for key in keys for form in forms
    ]
    if not any(matches):
        raise Forbidden("Expected a valid sig for this path and query")


def sign_url(url: str, key: str) -> str:
    """`url` with a `sig` parameter added (replacing any old one)."""
    parts = urlsplit(url)
    args = {k: v for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != SIGNATURE_KEY}
    args[SIGNATURE_KEY] = signature(key, parts.path, args)
    return urlunsplit(parts._replace(query=urlencode(args)))
