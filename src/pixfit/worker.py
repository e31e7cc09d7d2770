"""The gunicorn worker of `pixfit serve`: gthread, with nginx's buffering done in its event loop.

gunicorn's gthread worker hands each connection to a thread as soon as its first byte
arrives, and the thread then reads the request and writes the answer with blocking calls.
Fifty connections dribbling their headers a byte every three seconds held every thread,
and ordinary requests timed out (gunicorn's docs say gthread wants a buffering proxy in
front). This worker is that proxy, inside the worker process:

- The main thread reads each request, headers and body, from non-blocking sockets in its
  selector loop. Only a whole request goes to a thread, so a thread never waits on a
  client. A request must arrive within `server.request_timeout` of the connection (or
  of the end of the previous answer), or it gets a 408 and the connection is closed
  (Apache's mod_reqtimeout does the same).
- A thread writes what the socket takes at once; the rest waits in an outbox that the
  main thread sends as the client reads. The client must take some bytes every
  `server.send_timeout` (nginx's send_timeout), else it is dropped. Past
  `OUTBOX_BYTES_PER_WORKER` held for slow readers, a new answer that does not fit the
  socket at once is cut rather than let a thread wait: memory stays bounded, and the
  threads stay free for everyone else. Files (disk-cache hits) go out by sendfile as far
  as the socket takes them at once, and the rest through the same outbox.
- A whole request that a local cache answers (a hit or a 304) never reaches a thread: the
  main thread answers it itself (inloop.py), and a kept-alive connection then waits in
  the same loop for its next request, up to gunicorn's `keepalive` seconds.

Everything else (threads, keep-alive after a thread's answer, recycling, the hooks) is
gthread's own.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future
from functools import partial
from typing import Any

from gunicorn.workers.gthread import TConn, ThreadWorker

from pixfit import metrics
from pixfit.inloop import LoopAnswers

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_HEAD_BYTES",
    "REQUEST_SECONDS",
    "SEND_STALL_SECONDS",
    "BufferingThreadWorker",
    "request_complete",
]

# Defaults of server.request_timeout and server.send_timeout (see config.py).
REQUEST_SECONDS = 10.0
SEND_STALL_SECONDS = 30.0
# Largest request head (request line and headers) buffered; gunicorn's own parser limits
# still apply after this.
MAX_HEAD_BYTES = 64 * 1024
# Largest request body buffered: pixfit's only body-taking route (purge) takes a few bytes.
MAX_BODY_BYTES = 1024 * 1024
# Response bytes one worker holds for slow readers before threads write blocking again.
OUTBOX_BYTES_PER_WORKER = 256 * 1024 * 1024
_RECV_BYTES = 64 * 1024
_END_OF_HEAD = b"\r\n\r\n"
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)[ \t]*(?=\r\n)", re.IGNORECASE)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding:[^\r]*chunked", re.IGNORECASE)
_LAST_CHUNK = re.compile(rb"(?:^|\r\n)0+(?:;[^\r]*)?\r\n(?:[^\r]+\r\n)*\r\n")


def request_complete(data: bytes) -> bool | None:
    """True when `data` holds a whole request; False while more is needed; None if too big.

    A request is its head up to the blank line, then Content-Length bytes of body, or a
    chunked body up to its last chunk. gunicorn parses it again afterwards; this only
    decides when to hand it over.
    """
    end = data.find(_END_OF_HEAD)
    if end < 0:
        return None if len(data) > MAX_HEAD_BYTES else False
    if end > MAX_HEAD_BYTES:
        return None
    head = b"\r\n" + data[: end + 2]
    body = data[end + len(_END_OF_HEAD) :]
    if _CHUNKED.search(head):
        if len(body) > MAX_BODY_BYTES:
            return None
        return bool(_LAST_CHUNK.search(body))
    length = _CONTENT_LENGTH.search(head)
    if length is None:
        return True
    wanted = int(length.group(1))
    if wanted > MAX_BODY_BYTES:
        return None
    return len(body) >= wanted


class _Outbox:
    """A socket stand-in for one response: sends what the kernel takes, keeps the rest.

    gunicorn's response writes through `sendall`; every other call goes to the socket.
    What is kept are views of the response's own bytes, not copies: a cached image sent to
    a thousand slow readers is held once.
    """

    def __init__(self, sock: socket.socket, worker: BufferingThreadWorker) -> None:
        self._sock = sock
        self._worker = worker
        # A thread's socket blocks, and is made non-blocking for each send; the event
        # loop's already is.
        self._blocking = sock.getblocking()
        self.pending: deque[memoryview] = deque()
        self.pending_bytes = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    def sendall(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data if isinstance(data, bytes) else bytes(data))
        if not self.pending:
            view = view[self._send_now(view) :]
        if not view:
            return
        if not self._worker.outbox_room(len(view)):
            # The worker already holds its bound for slow readers. Waiting here would
            # take a thread from everyone else, so this answer is cut instead (gunicorn
            # treats it as a client gone away), and counted.
            metrics.SLOW_CLIENTS.labels("outbox_full").inc()
            raise BrokenPipeError(errno.EPIPE, "pixfit: outbox full")
        self.pending.append(view)
        self.pending_bytes += len(view)

    def sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int:
        """Send a file's bytes: by the kernel as far as the socket takes them at once
        (disk-cache hits go out like this), the rest read into the outbox."""
        if count is None:
            count = os.fstat(file.fileno()).st_size - offset
        sent = 0
        if not self.pending:
            with self._nonblocking():
                try:
                    while sent < count:
                        done = os.sendfile(
                            self._sock.fileno(), file.fileno(), offset + sent, count - sent
                        )
                        if not done:
                            break
                        sent += done
                except BlockingIOError:
                    pass
        if sent < count:
            self.sendall(os.pread(file.fileno(), count - sent, offset + sent))
        return count

    def _send_now(self, view: memoryview) -> int:
        """Bytes of `view` the socket takes without waiting."""
        sent = 0
        with self._nonblocking():
            try:
                while sent < len(view):
                    sent += self._sock.send(view[sent:])
            except BlockingIOError:
                pass
        return sent

    @contextlib.contextmanager
    def _nonblocking(self) -> Iterator[None]:
        if not self._blocking:
            yield
            return
        self._sock.setblocking(False)
        try:
            yield
        finally:
            self._sock.setblocking(True)

    def send_some(self) -> int:
        """Send from the front of what is kept, on a non-blocking socket (main thread)."""
        sent = self._sock.send(self.pending[0])
        if sent == len(self.pending[0]):
            self.pending.popleft()
        else:
            self.pending[0] = self.pending[0][sent:]
        self.pending_bytes -= sent
        return sent


class BufferingThreadWorker(ThreadWorker):  # type: ignore[misc]
    """gthread that gives threads whole requests and takes slow readers off their hands."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Connections still receiving a request: their bytes so far and their deadline,
        # and the same deadlines in the order they fall (entries of connections that
        # have moved on are skipped when they come up).
        self.receiving: dict[TConn, tuple[bytearray, float]] = {}
        self.deadlines: deque[tuple[float, TConn]] = deque()
        # Connections whose answer is still being sent, and when they last took a byte.
        self.sending: dict[TConn, tuple[_Outbox, float, bool]] = {}
        # Set from the pixfit config after the fork (serve.py), else the defaults.
        self.request_seconds = REQUEST_SECONDS
        self.send_stall_seconds = SEND_STALL_SECONDS
        self.next_stall_check = 0.0
        self.outbox_bytes = 0
        self._outbox_lock = threading.Lock()
        # Set once the app is loaded, for a pixfit app with a local cache.
        self.loop_answers: LoopAnswers | None = None

    def load_wsgi(self) -> None:
        super().load_wsgi()
        self.loop_answers = LoopAnswers.for_app(self.wsgi)

    # -- receiving ---------------------------------------------------------------------

    def accept(self, listener: socket.socket) -> None:
        """Accept a connection and start reading its request in the event loop."""
        try:
            client, address = listener.accept()
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        conn = TConn(self.cfg, client, address, listener.getsockname())  # non-blocking
        self._receive(conn, b"")

    def on_client_socket_readable(self, conn: TConn, client: socket.socket) -> None:
        """A kept-alive connection has a new request coming: read it in the loop too."""
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self._receive(conn, b"")

    def _receive(self, conn: TConn, already: bytes) -> None:
        self._await_request(conn, already, self.request_seconds)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_readable, conn))
        if already:
            self._check_request(conn)

    def _await_request(self, conn: TConn, already: bytes, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        self.receiving[conn] = (bytearray(already), deadline)
        self.deadlines.append((deadline, conn))

    def _on_readable(self, conn: TConn, _client: socket.socket) -> None:
        try:
            chunk = conn.sock.recv(_RECV_BYTES)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:  # the client went away before finishing its request
            self._drop(conn, self.receiving)
            return
        self.receiving[conn][0].extend(chunk)
        self._check_request(conn)

    def _check_request(self, conn: TConn) -> None:
        data = bytes(self.receiving[conn][0])
        complete = request_complete(data)
        if complete is False:
            return
        if complete and self.loop_answers is not None and self._answer_in_loop(conn, data):
            return
        self.poller.unregister(conn.sock)
        del self.receiving[conn]
        if complete is None:
            metrics.SLOW_CLIENTS.labels("too_large").inc()
            self._refuse(conn, 413, "Request Too Large", "Expected a request head under 64 KiB")
            return
        conn.sock.setblocking(True)
        conn.init()  # gunicorn's parser, fed with what was read
        conn.parser.unreader.unread(data)
        conn.data_ready = True
        self.enqueue_req(conn)

    def _answer_in_loop(self, conn: TConn, data: bytes) -> bool:
        """Send a cache hit or a 304 from the loop itself (inloop.py); False: not one.

        The connection is still registered for reading, and the request still counted in
        `receiving`. An answer the socket takes at once on a kept-alive connection leaves it
        so, waiting for the next request as long as gthread's keep-alive would: no thread,
        no selector call.
        """
        assert self.loop_answers is not None
        may_keep_alive = (
            self.alive
            and bool(self.cfg.keepalive)
            and len(self.keepalived_conns) < self.max_keepalived
        )
        try:
            reply = self.loop_answers.reply(data, conn.client, conn.sock, may_keep_alive)
        except Exception:  # a thread will meet it again, and answer it as a problem
            self.log.exception("Error answering in the event loop")
            return False
        if reply is None:
            return False
        outbox = _Outbox(conn.sock, self)
        try:
            outbox.sendall(reply.head + reply.body)
            if reply.file is not None:
                outbox.sendfile(reply.file, reply.file.tell(), reply.file_length)
        except OSError:
            self._drop(conn, self.receiving)
            return True
        finally:
            if reply.file is not None:
                reply.file.close()
        if reply.keep_alive and not outbox.pending:
            self._await_request(conn, b"", self.cfg.keepalive)
            return True
        self.poller.unregister(conn.sock)
        del self.receiving[conn]
        conn.init()  # gunicorn's parser, which finish_request looks into
        conn.pixfit_outbox = outbox
        done: Future[Any] = Future()
        done.set_result(reply.keep_alive)
        self.finish_request(conn, done)
        return True

    def _refuse(self, conn: TConn, status: int, reason: str, detail: str) -> None:
        """A last problem answer, sent only if the socket takes it at once, then close."""
        body = (
            f'{{"type": "about:blank", "title": "{reason}", "status": {status}, '
            f'"detail": "{detail}"}}'
        ).encode()
        head = (
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/problem+json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        try:
            conn.sock.setblocking(False)
            conn.sock.send(head + body)
        except OSError:
            pass
        self.nr_conns -= 1
        conn.close()

    # -- sending -----------------------------------------------------------------------

    def handle_request(self, req: Any, conn: TConn) -> bool:
        """gthread's request handling, writing through an outbox (in a pool thread)."""
        outbox = _Outbox(conn.sock, self)
        conn.sock, real = outbox, conn.sock
        try:
            keep_alive: bool = super().handle_request(req, conn)
        finally:
            conn.sock = real
            conn.pixfit_outbox = outbox
        return keep_alive

    def outbox_room(self, size: int) -> bool:
        """Reserve `size` bytes of outbox if the worker's bound allows (any thread)."""
        with self._outbox_lock:
            if self.outbox_bytes + size > OUTBOX_BYTES_PER_WORKER:
                return False
            self.outbox_bytes += size
            return True

    def outbox_release(self, size: int) -> None:
        with self._outbox_lock:
            self.outbox_bytes -= size

    def finish_request(self, conn: TConn, fs: Future[Any]) -> None:
        """After a thread is done: send what is left, then keep alive or close."""
        outbox: _Outbox | None = getattr(conn, "pixfit_outbox", None)
        conn.pixfit_outbox = None
        keep_alive = not fs.cancelled() and fs.exception() is None and fs.result() is True
        if outbox is not None and outbox.pending:
            conn.sock.setblocking(False)
            self.sending[conn] = (outbox, time.monotonic(), keep_alive)
            writable = partial(self._on_writable, conn)
            self.poller.register(conn.sock, selectors.EVENT_WRITE, writable)
            return
        self._after_answer(conn, fs, keep_alive)

    def _after_answer(self, conn: TConn, fs: Future[Any], keep_alive: bool) -> None:
        leftover = conn.parser.unreader.take_buffered() if keep_alive else b""
        if leftover and self.alive:
            # The client pipelined its next request, perhaps only part of it.
            conn.sock.setblocking(False)
            self._receive(conn, leftover)
            return
        super().finish_request(conn, fs)

    def _on_writable(self, conn: TConn, _client: socket.socket) -> None:
        outbox, _, keep_alive = self.sending[conn]
        try:
            sent = outbox.send_some()
        except BlockingIOError:
            return
        except OSError:
            self._drop(conn, self.sending)
            return
        self.outbox_release(sent)
        if outbox.pending:
            self.sending[conn] = (outbox, time.monotonic(), keep_alive)
            return
        self.poller.unregister(conn.sock)
        del self.sending[conn]
        done: Future[Any] = Future()
        done.set_result(keep_alive)
        self._after_answer(conn, done, keep_alive)

    # -- deadlines ---------------------------------------------------------------------

    def murder_pending(self) -> None:
        """gthread's own reaping, then requests past their deadline and stalled readers.

        gthread calls this on every turn of its loop, so it only looks at what is due.
        """
        super().murder_pending()
        now = time.monotonic()
        # Deadlines hold while the worker stops too: gthread answers a request that arrives
        # on a kept-alive connection meanwhile (with Connection: close) rather than drop it.
        while self.deadlines and self.deadlines[0][0] < now:
            deadline, conn = self.deadlines.popleft()
            if self.receiving.get(conn, (None, 0.0))[1] == deadline:
                self._expire(conn)
        if now < self.next_stall_check:
            return
        self.next_stall_check = now + 1.0
        for conn, (_, last, _) in list(self.sending.items()):
            if now - last > self.send_stall_seconds:
                metrics.SLOW_CLIENTS.labels("send_stalled").inc()
                self._drop(conn, self.sending)

    def _expire(self, conn: TConn) -> None:
        """A request that did not arrive in time: 408, or silence for an idle connection."""
        data, _ = self.receiving.pop(conn)
        self.poller.unregister(conn.sock)
        if not data:  # a connection opened in advance (browsers keep spares): just close
            self.nr_conns -= 1
            conn.close()
            return
        metrics.SLOW_CLIENTS.labels("request_timeout").inc()
        self._refuse(conn, 408, "Request Timeout", "The request took too long to arrive")

    def _drop(self, conn: TConn, table: dict[TConn, Any]) -> None:
        entry = table.pop(conn)
        if table is self.sending:
            self.outbox_release(entry[0].pending_bytes)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(conn.sock)
        self.nr_conns -= 1
        conn.close()
