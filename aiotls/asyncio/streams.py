"""asyncio Streams over aiotls: ``open_connection``, ``start_server`` and a STARTTLS upgrade.

They return the stdlib :class:`asyncio.StreamReader` / :class:`asyncio.StreamWriter`,
so existing stream code works unchanged; only the ``ssl=`` argument differs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from ..context import TLSContext
from ..errors import PeerMisbehaved
from .api import create_connection, create_server, start_tls

__all__ = ["open_connection", "start_server", "upgrade_stream"]

_DEFAULT_LIMIT = 2**16

ClientConnectedCallback = Callable[
    [asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None] | None
]


async def open_connection(
    host: str | None = None,
    port: int | str | None = None,
    *,
    limit: int = _DEFAULT_LIMIT,
    ssl: TLSContext | bool | None = None,
    **kwds: Any,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Like :func:`asyncio.open_connection`, with ``ssl`` an :class:`aiotls.TLSContext`."""
    loop = kwds.pop("loop", None) or asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=limit, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport, _ = await create_connection(lambda: protocol, host, port, ssl=ssl, loop=loop,
                                           **kwds)
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    return reader, writer


async def start_server(
    client_connected_cb: ClientConnectedCallback,
    host: str | None = None,
    port: int | None = None,
    *,
    limit: int = _DEFAULT_LIMIT,
    ssl: TLSContext | None = None,
    **kwds: Any,
) -> asyncio.Server:
    """Like :func:`asyncio.start_server`, with ``ssl`` an :class:`aiotls.TLSContext`.

    ``client_connected_cb`` runs after each TLS handshake succeeded.
    """
    loop = kwds.pop("loop", None) or asyncio.get_running_loop()

    def factory() -> asyncio.StreamReaderProtocol:
        reader = asyncio.StreamReader(limit=limit, loop=loop)
        return asyncio.StreamReaderProtocol(reader, client_connected_cb, loop=loop)

    return await create_server(factory, host, port, ssl=ssl, loop=loop, **kwds)


async def upgrade_stream(
    writer: asyncio.StreamWriter,
    sslcontext: TLSContext,
    *,
    server_hostname: str | None = None,
    ssl_handshake_timeout: float | None = None,
    ssl_shutdown_timeout: float | None = None,
) -> None:
    """Upgrade a plain stream connection to TLS in place (STARTTLS), like
    :meth:`asyncio.StreamWriter.start_tls`: the same reader and writer go on working,
    now encrypted.  The server side is detected from how the stream was created.

    Unlike the stdlib, plaintext that is already buffered in the reader when the upgrade
    starts is refused with :class:`aiotls.PeerMisbehaved` (code ``starttls-injection``)
    and the connection is aborted: it could have been injected by a man in the middle.
    """
    protocol: Any = writer._protocol  # type: ignore[attr-defined]
    server_side = protocol._client_connected_cb is not None
    await writer.drain()
    # STARTTLS injection (CVE-2011-0411 and kin): bytes already buffered were sent in the
    # clear; they must not be read back as if they had come over TLS.  (start_tls() below
    # pauses reading before any await, so nothing more can slip in.)
    reader = getattr(protocol, "_stream_reader", None)
    pending = len(getattr(reader, "_buffer", b"")) if reader is not None else 0
    if pending:
        writer.transport.abort()
        raise PeerMisbehaved(
            f"{pending} bytes of plaintext arrived before the TLS upgrade",
            cause="the peer (or a man in the middle injecting commands) sent data after "
            "STARTTLS without waiting for the handshake",
            hint="the peer must wait for the upgrade; these bytes were not protected, so "
            "aiotls refuses to treat them as part of the TLS stream",
            alert=None, code="starttls-injection",
        )
    new_transport = await start_tls(
        writer.transport, protocol, sslcontext, server_side=server_side,
        server_hostname=server_hostname, ssl_handshake_timeout=ssl_handshake_timeout,
        ssl_shutdown_timeout=ssl_shutdown_timeout,
    )
    writer._transport = new_transport  # type: ignore[attr-defined]
    protocol._replace_writer(writer)
