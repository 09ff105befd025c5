"""An aiotls (or asyncio ``sslproto``) TLS protocol over an in-memory transport.

Tests of :mod:`aiotls.asyncio` that must decide exactly how ciphertext is cut into reads, and
when, run the TLS protocol over :class:`MemoryTransport` (what the protocol writes piles up in
``out``; the test hands ciphertext in with :func:`feed`, as a socket transport would) against
a sans-IO :class:`aiotls.TLSConnection` peer.  :func:`memory_tls_pair` builds such a pair and
runs its handshake::

    tls, wire, server = await memory_tls_pair(pki, app, version=ssl.TLSVersion.TLSv1_3)
    server.send_data(b"hello")
    feed(tls, server.data_to_send())     # -> app.data_received(b"hello")
    server.receive_data(wire.take())     # what the protocol wrote back

``MADE``, ``DATA``, ``EOF`` and ``LOST`` name the application callbacks that recording
protocols note down.  This is the one place tests build this pair (tests never import from
another ``tests/test_*.py`` file; tests/test_quality.py checks it).
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import ssl
from typing import Any

import aiotls
import aiotls.asyncio
from tests.helpers import PKI

__all__ = ["DATA", "EOF", "LOST", "MADE", "SNI", "MemoryTransport", "feed", "memory_tls_pair",
           "pin"]

SNI = "localhost"
#: The application callbacks, as recording protocols note them down.
MADE, DATA, EOF, LOST = "connection_made", "data_received", "eof_received", "connection_lost"


def pin(ctx: aiotls.TLSContext, version: ssl.TLSVersion) -> aiotls.TLSContext:
    """``ctx`` allowing ``version`` only (returned, for chaining)."""
    ctx.minimum_version = version
    ctx.maximum_version = version
    return ctx


class MemoryTransport(asyncio.Transport):
    """A transport under a TLSProtocol whose ciphertext the test hands over itself."""

    def __init__(self) -> None:
        super().__init__()
        self.out = bytearray()
        self.closing = False
        self.reading = True
        self.protocol: Any = None

    def write(self, data: Any) -> None:
        self.out += data

    def take(self) -> bytes:
        """What the protocol wrote so far (``out`` starts again empty)."""
        out, self.out = bytes(self.out), bytearray()
        return out

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        if not self.closing:
            self.closing = True
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def abort(self) -> None:
        self.close()

    def _force_close(self, exc: BaseException | None) -> None:  # (sslproto's fatal errors)
        if not self.closing:
            self.closing = True
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, exc)

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True


def feed(protocol: Any, data: bytes) -> None:
    """Hand ``data`` to a BufferedProtocol the way a socket transport does."""
    view = memoryview(data)
    while view:
        buf = protocol.get_buffer(len(view))
        n = min(len(buf), len(view))
        buf[:n] = view[:n]
        protocol.buffer_updated(n)
        view = view[n:]


async def memory_tls_pair(pki: PKI, app: asyncio.BaseProtocol, *, stdlib: bool = False,
                          server_side: bool = False, version: ssl.TLSVersion | None = None,
                          wire: MemoryTransport | None = None,
                          ) -> tuple[Any, MemoryTransport, aiotls.TLSConnection]:
    """A TLS protocol for ``app`` -- aiotls's, or asyncio's own ``sslproto`` -- over an
    in-memory transport, its handshake done against an in-memory aiotls peer (a server, or
    a client when ``server_side``; pinned to ``version`` if given), over ``wire`` if given."""
    loop = asyncio.get_running_loop()
    if server_side:
        peer_context = pki.client_context()
        peer = aiotls.TLSConnection(
            pin(peer_context, version) if version else peer_context, server_hostname=SNI)
    else:
        peer_context = pki.server_context()
        peer = aiotls.TLSConnection(
            pin(peer_context, version) if version else peer_context, server_side=True)
    waiter = loop.create_future()
    tls: Any
    if stdlib:
        context = pki.stdlib_server_context() if server_side else pki.stdlib_client_context()
        tls = asyncio.sslproto.SSLProtocol(loop, app, context, waiter, server_side=server_side,
                                           server_hostname=None if server_side else SNI)
    else:
        context = pki.server_context() if server_side else pki.client_context()
        tls = aiotls.asyncio.TLSProtocol(loop, app, context, waiter, server_side=server_side,
                                         server_hostname=None if server_side else SNI)
    wire = MemoryTransport() if wire is None else wire
    wire.protocol = tls
    tls.connection_made(wire)
    for _ in range(20):
        await asyncio.sleep(0)
        back = peer.data_to_send()
        if back:
            feed(tls, back)
        out = wire.take()
        if out:
            peer.receive_data(out)
        if waiter.done() and not out and not back:
            break
    await waiter
    peer.events()
    return tls, wire, peer
