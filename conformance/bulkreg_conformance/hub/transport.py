"""Bytes in and out of one non-blocking socket, in the clear or through TLS.

The server's event loop is the only reader; a worker thread sends its answer itself (no wait
for the loop's turn on the GIL) and leaves what the socket does not take at once to the loop.
TLS is ``ssl.SSLObject`` over two memory BIOs on the same socket, so the loop never blocks on a
handshake and every deadline of the server holds for https too. Nothing here is a subclass or
an override: the socket and ssl modules' public calls only.
"""

from __future__ import annotations

import socket
import ssl
import threading

__all__ = ["Plain", "Tls", "TransportError"]

RECV_BYTES = 256 * 1024  # a bulk body in one loop turn, fewer GIL handoffs


class TransportError(Exception):
    """The connection cannot go on: reset, not TLS, a failed handshake."""


class Plain:
    """A socket as it is. ``send`` and ``flush`` may run on any thread; ``recv`` on the loop."""

    handshaken = True

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._out = bytearray()  # bytes the socket has not taken yet
        self._lock = threading.Lock()

    def recv(self) -> tuple[bytes, bool]:
        """Bytes received now, and whether the peer ended its side."""
        try:
            data = self.sock.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return b"", False
        except OSError as exc:
            raise TransportError(str(exc)) from None
        return data, not data

    def send(self, data: bytes) -> None:
        """Send what the socket takes now; keep the rest for ``flush``."""
        with self._lock:
            self._out += data
            self._send_some()

    def flush(self) -> bool:
        """Send what is kept; True when nothing is left."""
        with self._lock:
            self._send_some()
            return not self._out

    def has_output(self) -> bool:
        return bool(self._out)

    def _send_some(self) -> None:
        while self._out:
            try:
                sent = self.sock.send(self._out)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._out.clear()
                raise TransportError(str(exc)) from None
            del self._out[:sent]


class Tls(Plain):
    """The socket carries ciphertext, the caller sees plaintext. One lock covers the TLS object:
    the loop decrypts while a worker encrypts its answer."""

    def __init__(self, sock: socket.socket, context: ssl.SSLContext) -> None:
        super().__init__(sock)
        self._incoming, self._outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self.handshaken = False

    def recv(self) -> tuple[bytes, bool]:
        raw, ended = super().recv()
        if not raw and not ended:
            return b"", False
        with self._lock:
            if raw:
                self._incoming.write(raw)
            else:
                self._incoming.write_eof()
            try:
                plain, closed = self._unwrap()
            except ssl.SSLError as exc:  # not TLS, a bad handshake: nothing to answer
                raise TransportError(str(exc)) from None
            self._out += self._outgoing.read()  # handshake messages, alerts
            self._send_some()
        return plain, closed or ended

    def _unwrap(self) -> tuple[bytes, bool]:
        if not self.handshaken:
            try:
                self._tls.do_handshake()
            except ssl.SSLWantReadError:
                return b"", False
            self.handshaken = True
        plain = bytearray()
        while True:
            try:
                chunk = self._tls.read(RECV_BYTES)
            except ssl.SSLWantReadError:
                return bytes(plain), False
            except ssl.SSLZeroReturnError:
                return bytes(plain), True
            if not chunk:
                return bytes(plain), True
            plain += chunk

    def send(self, data: bytes) -> None:
        with self._lock:
            try:
                self._tls.write(data)
            except ssl.SSLError as exc:
                raise TransportError(str(exc)) from None
            self._out += self._outgoing.read()
            self._send_some()
