"""When the buffering worker (worker.py) hands a request to a thread: only once it is whole."""

from __future__ import annotations

import pytest

from pixfit.worker import MAX_BODY_BYTES, MAX_HEAD_BYTES, request_complete

GET = b"GET /images/a.jpg?w=100 HTTP/1.1\r\nHost: x\r\n"


@pytest.mark.parametrize(
    ("data", "complete"),
    [
        (b"", False),
        (b"G", False),
        (GET, False),
        (GET + b"\r\n", True),
        (GET + b"\r\nGET /next HTTP/1.1\r\n", True),  # a pipelined request may follow
        (b"POST /p HTTP/1.1\r\nContent-Length: 5\r\n\r\nabc", False),
        (b"POST /p HTTP/1.1\r\nContent-Length: 5\r\n\r\nabcde", True),
        (b"POST /p HTTP/1.1\r\ncontent-length:  5 \r\n\r\nabcde", True),
        (b"POST /p HTTP/1.1\r\nContent-Length: 0\r\n\r\n", True),
        (b"POST /p HTTP/1.1\r\nX-Content-Length: 5\r\n\r\n", True),  # not the header
        (b"POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", False),
        (b"POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", True),
        (b"POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", True),
        (b"POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: 1\r\n\r\n", True),
        (b"POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n", False),
        (GET + b"X: " + b"a" * MAX_HEAD_BYTES, None),  # a head that never ends
        (GET + b"X: " + b"a" * MAX_HEAD_BYTES + b"\r\n\r\n", None),
        (b"POST /p HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY_BYTES + 1), None),
    ],
)
def test_a_request_is_handed_over_only_when_whole(data: bytes, complete: bool | None) -> None:
    assert request_complete(data) is complete
