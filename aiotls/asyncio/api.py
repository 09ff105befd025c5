"""Drop-ins for the event loop's TLS methods, taking an :class:`aiotls.TLSContext`.

``loop.start_tls()``, ``loop.create_connection(ssl=...)`` and
``loop.create_server(ssl=...)`` (asyncio's and uvloop's) accept only
``ssl.SSLContext``.  These functions have the same signatures (minus ``self``,
plus an optional ``loop``) and the same behaviour, and they work on any loop,
because they only use the loop's plain-TCP methods and the public Transport API.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from ..connection import TLSConnection, TLSSession
from ..context import TLSContext, create_default_context
from .protocol import TLSProtocol

__all__ = ["create_connection", "create_server", "start_tls"]

_P = TypeVar("_P", bound=asyncio.BaseProtocol)


def _context(ssl: Any, server_side: bool) -> TLSContext:
    if ssl is True and not server_side:
        return create_default_context()
    if not isinstance(ssl, TLSContext):
        raise TypeError(f"ssl is expected to be an aiotls.TLSContext, got {ssl!r}")
    return ssl


async def start_tls(
    transport: asyncio.BaseTransport,
    protocol: asyncio.BaseProtocol,
    sslcontext: TLSContext,
    *,
    server_side: bool = False,
    server_hostname: str | None = None,
    ssl_handshake_timeout: float | None = None,
    ssl_shutdown_timeout: float | None = None,
    loop: asyncio.AbstractEventLoop | None = None,
) -> asyncio.Transport:
    """Upgrade an existing connection to TLS, like :meth:`asyncio.loop.start_tls`.

    Returns the new transport that ``protocol`` must use from now on.  The
    protocol's ``connection_made`` is *not* called again.
    """
    loop = loop or asyncio.get_running_loop()
    if not isinstance(sslcontext, TLSContext):
        raise TypeError(f"sslcontext is expected to be an aiotls.TLSContext, got {sslcontext!r}")
    # uvloop's transports are not asyncio.Transport subclasses: check for the API instead.
    if not all(callable(getattr(transport, name, None))
               for name in ("set_protocol", "pause_reading", "resume_reading", "write")):
        raise TypeError(f"transport {transport!r} is not supported by start_tls()")
    waiter: asyncio.Future[None] = loop.create_future()
    tls = TLSProtocol(loop, protocol, sslcontext, waiter, server_side=server_side,
                      server_hostname=server_hostname, call_connection_made=False,
                      ssl_handshake_timeout=ssl_handshake_timeout,
                      ssl_shutdown_timeout=ssl_shutdown_timeout)
    # Pause first so no data reaches the TLS protocol before its connection_made().
    tcp: Any = transport
    tcp.pause_reading()
    tcp.set_protocol(tls)
    conmade_cb = loop.call_soon(tls.connection_made, transport)
    resume_cb = loop.call_soon(tcp.resume_reading)
    app_transport = tls._app_transport  # (the protocol lets go of it once the connection is lost)
    assert app_transport is not None
    try:
        await waiter
    except BaseException:
        transport.close()
        conmade_cb.cancel()
        resume_cb.cancel()
        raise
    return app_transport


async def create_connection(
    protocol_factory: Callable[[], _P],
    host: str | None = None,
    port: int | str | None = None,
    *,
    ssl: TLSContext | bool | None = None,
    family: int = 0,
    proto: int = 0,
    flags: int = 0,
    sock: socket.socket | None = None,
    local_addr: tuple[str, int] | None = None,
    server_hostname: str | None = None,
    ssl_handshake_timeout: float | None = None,
    ssl_shutdown_timeout: float | None = None,
    happy_eyeballs_delay: float | None = None,
    interleave: int | None = None,
    loop: asyncio.AbstractEventLoop | None = None,
    session: TLSSession | None = None,
) -> tuple[asyncio.Transport, _P]:
    """Open a TLS connection, like :meth:`asyncio.loop.create_connection` with ``ssl=``.

    ``ssl`` is an :class:`aiotls.TLSContext` (or ``True`` for
    :func:`aiotls.create_default_context`).  ``server_hostname`` defaults to
    ``host``.  Returns ``(transport, protocol)`` once the handshake is done; a
    failed handshake raises its :class:`aiotls.TLSError`.

    aiotls extension: ``session=`` resumes a session taken from an earlier connection's
    ``transport.get_extra_info("ssl_object").session`` (the stdlib has no such argument).
    """
    loop = loop or asyncio.get_running_loop()
    tcp_kwargs: dict[str, Any] = {"family": family, "proto": proto, "flags": flags,
                                  "sock": sock, "local_addr": local_addr}
    # uvloop does not know the happy-eyeballs arguments: pass them only when used.
    if happy_eyeballs_delay is not None:
        tcp_kwargs["happy_eyeballs_delay"] = happy_eyeballs_delay
    if interleave is not None:
        tcp_kwargs["interleave"] = interleave
    if not ssl:
        if server_hostname is not None:
            raise ValueError("server_hostname is only meaningful with ssl")
        if ssl_handshake_timeout is not None or ssl_shutdown_timeout is not None:
            raise ValueError("ssl_handshake_timeout/ssl_shutdown_timeout are only meaningful "
                             "with ssl")
        tcp_loop: Any = loop  # typeshed's overloads cannot express "same as the caller's"
        return await tcp_loop.create_connection(protocol_factory, host, port,  # type: ignore[no-any-return]
                                                **tcp_kwargs)
    context = _context(ssl, server_side=False)
    if server_hostname is None:
        if not host and context.check_hostname:
            raise ValueError("You must set server_hostname when using ssl without a host")
        server_hostname = host or None
    elif server_hostname == "":
        server_hostname = None
    waiter: asyncio.Future[None] = loop.create_future()
    app_protocol = protocol_factory()
    tls = TLSProtocol(loop, app_protocol, context, waiter, server_hostname=server_hostname,
                      ssl_handshake_timeout=ssl_handshake_timeout,
                      ssl_shutdown_timeout=ssl_shutdown_timeout, session=session)
    tcp: Any = loop
    app_transport = tls._app_transport  # (the protocol lets go of it once the connection is lost)
    assert app_transport is not None
    transport, _ = await tcp.create_connection(lambda: tls, host, port, **tcp_kwargs)
    try:
        await waiter
    except BaseException:
        transport.close()
        raise
    return app_transport, app_protocol


async def create_server(
    protocol_factory: Callable[[], asyncio.BaseProtocol],
    host: str | Sequence[str] | None = None,
    port: int | None = None,
    *,
    family: int = socket.AF_UNSPEC,
    flags: int = socket.AI_PASSIVE,
    sock: socket.socket | None = None,
    backlog: int = 100,
    ssl: TLSContext | None = None,
    reuse_address: bool | None = None,
    reuse_port: bool | None = None,
    ssl_handshake_timeout: float | None = None,
    ssl_shutdown_timeout: float | None = None,
    start_serving: bool = True,
    loop: asyncio.AbstractEventLoop | None = None,
) -> asyncio.Server:
    """Start a TLS server, like :meth:`asyncio.loop.create_server` with ``ssl=``.

    Each accepted connection runs the handshake first; the application protocol's
    ``connection_made`` is called only once it succeeded.  Failed handshakes are
    logged at DEBUG level on the ``aiotls`` logger and the connection is closed.
    """
    loop = loop or asyncio.get_running_loop()
    if ssl is None:
        if ssl_handshake_timeout is not None or ssl_shutdown_timeout is not None:
            raise ValueError("ssl_handshake_timeout/ssl_shutdown_timeout are only meaningful "
                             "with ssl")
        plain: Any = loop
        return await plain.create_server(protocol_factory, host, port, family=family,  # type: ignore[no-any-return]
                                        flags=flags, sock=sock, backlog=backlog,
                                        reuse_address=reuse_address, reuse_port=reuse_port,
                                        start_serving=start_serving)
    context = _context(ssl, server_side=True)
    # Refuse a client context or one without a certificate now, not on every accepted
    # connection (where the failure would only reach a DEBUG log).
    TLSConnection.check_context(context, server_side=True)
    # Validate the timeouts once, up front, rather than on every connection.
    TLSProtocol._validate_timeouts(ssl_handshake_timeout, ssl_shutdown_timeout)

    def factory() -> TLSProtocol:
        return TLSProtocol(loop, protocol_factory(), context, None, server_side=True,
                           ssl_handshake_timeout=ssl_handshake_timeout,
                           ssl_shutdown_timeout=ssl_shutdown_timeout)

    server_loop: Any = loop
    return await server_loop.create_server(factory, host, port, family=family, flags=flags,  # type: ignore[no-any-return]
                                    sock=sock, backlog=backlog, reuse_address=reuse_address,
                                    reuse_port=reuse_port, start_serving=start_serving)
