"""Cache hits and 304s answered in the worker's event loop: no thread, no gunicorn parser.

In process, a memory hit costs pixfit about 60 us (bench/hits.py); under gunicorn it cost
four times that, spent around the app: gthread hands every request to a pool thread and
back through a pipe, and gunicorn parses it and builds a WSGI environ in Python. nginx
answers from its cache in its event loop, and so does this. The loop already holds each
whole request (worker.py). Where the cache answers without waiting on the network (memory
or disk), `LoopAnswers` parses the head with httptools (llhttp, Node's parser), asks the
fast path (fastpath.py) with a plain environ, and gives the worker the bytes to send.

Anything out of the ordinary goes to a thread exactly as before, so gunicorn and Flask
still word every error: a miss, a body, a pipelined request, a parse error, a method other
than GET or HEAD, an absolute-form target, `Expect`, `Upgrade`, `Transfer-Encoding`, or a
header name with an underscore (which gunicorn drops).
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, BinaryIO
from urllib.parse import unquote_to_bytes

import httptools
from gunicorn import SERVER

from pixfit.cache import DiskCache, MemoryCache, NoCache
from pixfit.fastpath import FastPath

__all__ = ["LoopAnswers", "LoopReply"]

_END_OF_HEAD = b"\r\n\r\n"
# Request headers that need gunicorn: a body, a protocol switch, or an interim answer.
_FOR_GUNICORN = frozenset(
    {"HTTP_EXPECT", "HTTP_UPGRADE", "HTTP_TRANSFER_ENCODING", "HTTP_SCRIPT_NAME"}
)


@dataclass(frozen=True, slots=True)
class LoopReply:
    """An answer as bytes on the wire: the head, then `body`, or `file` when it is set."""

    head: bytes
    body: bytes
    # A disk-cache hit's file, positioned at the image bytes; the sender closes it.
    file: BinaryIO | None
    # Bytes of `file` to send.
    file_length: int
    keep_alive: bool


class LoopAnswers:
    """Answers the hits and 304s of one app's fast path from whole request heads."""

    def __init__(self, fastpath: FastPath) -> None:
        self.fastpath = fastpath
        self._date = (0, "")

    @classmethod
    def for_app(cls, app: Any) -> LoopAnswers | None:
        """Loop answers for a pixfit app whose cache never waits on the network; else None.

        Without a cache there are still 304s to answer, from a stat of the source.

        A redis or S3 lookup would stall every connection of the worker, and an
        `X-Sendfile` answer is for Apache, not for a client. `server.hits_in_loop` turns
        it off.
        """
        fastpath = getattr(app, "wsgi_app", None)
        if not isinstance(fastpath, FastPath) or fastpath.x_sendfile:
            return None
        if not fastpath.service.config.server.hits_in_loop:
            return None
        if not isinstance(fastpath.service.cache, MemoryCache | DiskCache | NoCache):
            return None
        return cls(fastpath)

    def reply(
        self, data: bytes, peer: Any, sock: socket.socket, may_keep_alive: bool
    ) -> LoopReply | None:
        """The answer to the one request in `data`, or None to hand it to a thread.

        `peer` is the client's address as gunicorn gives it; `may_keep_alive` is False
        when the worker closes the connection after this answer whatever the client asks.
        """
        if data.find(_END_OF_HEAD) != len(data) - len(_END_OF_HEAD):
            return None  # a body, or a pipelined request behind this one
        head = _Head()
        head.parser = httptools.HttpRequestParser(head)
        try:
            head.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):
            return None
        method = head.method
        if not head.complete or method not in (b"GET", b"HEAD") or head.bad:
            return None
        if not head.url.startswith(b"/") or _FOR_GUNICORN.intersection(head.environ):
            return None
        url = httptools.parse_url(head.url)
        environ = head.environ
        environ["REQUEST_METHOD"] = method.decode()
        environ["SCRIPT_NAME"] = ""
        environ["PATH_INFO"] = unquote_to_bytes(url.path).decode("latin-1")
        environ["QUERY_STRING"] = (url.query or b"").decode("latin-1")
        environ["REMOTE_ADDR"] = peer[0] if isinstance(peer, tuple) else ""
        environ["gunicorn.socket"] = sock  # the round trip comes from its TCP_INFO
        reply = self.fastpath.reply(environ)
        if reply is None:
            return None
        keep_alive = may_keep_alive and head.keep_alive
        status = HTTPStatus(reply.status)
        lines = [
            f"HTTP/{head.version} {status.value} {status.phrase}",
            f"Server: {SERVER}",  # what gunicorn sends for the answers it writes
            f"Date: {self._http_date()}",
            f"Connection: {'keep-alive' if keep_alive else 'close'}",
        ]
        lines.extend(f"{name}: {value}" for name, value in reply.headers)
        text = "\r\n".join(lines)
        breaks = len(lines) - 1
        if text.count("\r") != breaks or text.count("\n") != breaks:
            # A line break inside a header: gunicorn refuses it, so let it.
            if reply.file is not None:
                reply.file.close()
            return None
        head_bytes = (text + "\r\n\r\n").encode("latin-1")
        return LoopReply(head_bytes, reply.body, reply.file, reply.file_length, keep_alive)

    def _http_date(self) -> str:
        """The Date header's value, formatted once a second."""
        now = int(time.time())
        if self._date[0] != now:
            self._date = (now, formatdate(now, usegmt=True))
        return self._date[1]


class _Head:
    """httptools' callbacks: the target and the headers, as WSGI names them."""

    def __init__(self) -> None:
        self.parser: Any = None
        self.url = b""
        self.environ: dict[str, Any] = {}
        self.bad = False
        # Read when the headers are complete: llhttp resets them with the message.
        self.method = b""
        self.version = ""
        self.keep_alive = False
        self.complete = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if b"_" in name:
            self.bad = True
            return
        key = name.decode("latin-1").upper().replace("-", "_")
        if key == "CONTENT_LENGTH":
            self.bad = self.bad or value.strip() != b"0"
        elif key != "CONTENT_TYPE":
            key = "HTTP_" + key
        text = value.decode("latin-1")
        known = self.environ.get(key)
        self.environ[key] = text if known is None else f"{known},{text}"

    def on_headers_complete(self) -> None:
        self.method = self.parser.get_method()
        self.version = self.parser.get_http_version()
        self.keep_alive = self.parser.should_keep_alive()

    def on_message_complete(self) -> None:
        self.complete = True
