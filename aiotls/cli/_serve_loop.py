"""The echo server behind ``serve``, on aiotls's own asyncio adapter.

Theory of operation
-------------------
One event loop serves every client: :func:`serve` listens with the loop's plain TCP
server and gives each accepted connection a :class:`_Connection`, which is aiotls's
:class:`~aiotls.asyncio.TLSProtocol` (the adapter ``aiotls.asyncio.create_server``
uses) with a handshake future of its own.  That future carries the failure of a
handshake -- with its cause: the library's :class:`~aiotls.TLSError`, a
:class:`~aiotls.HandshakeTimeoutError` after ``--handshake-timeout``, or the socket
error -- which :func:`aiotls.cli._serve_words.server_words` words from the server's
side, with ``serve``'s flags in the fix.  Once the handshake succeeded, :class:`_Echo`
(the application protocol) sends back whatever arrives and closes a connection idle for
``--timeout``.

A silent TCP connection costs a few objects and one timer, not a thread, and is closed
at its handshake timeout, so connections that never speak cannot starve real clients.
While ``--max-connections`` are open, new connections wait in the listen backlog until
one closes.

Nothing here prints: everything is reported as events (:class:`Listening`,
:class:`ClientConnected`, :class:`ClientHandshake`, ...) handed to ``emit``, from the
loop's thread.
"""

from __future__ import annotations

import asyncio
import ipaddress
import signal
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from ..asyncio import TLSProtocol
from ..connection import TLSConnection
from ..context import TLSContext
from ._common import CLIError, ErrorInfo, load_certificates
from ._facts import certificate_facts, name_text, utcnow
from ._serve_words import ServerSide, server_words

#: How long a closing connection waits for the client's close_notify.
_SHUTDOWN_TIMEOUT = 5.0


# --- events -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DevCertificates:
    """The development certificates ``serve`` made because no ``--cert`` was given."""

    directory: str
    ca_file: str
    ca_reused: bool
    """The CA was already in the directory (clients that trust it keep trusting it)."""
    cert_file: str
    key_file: str
    names: tuple[str, ...]
    client_cert_file: str | None
    """A client certificate for ``connect --cert`` (with ``--require-client-cert``)."""
    client_key_file: str | None


@dataclass(frozen=True)
class ServeSetup:
    """What the server asks of clients and records, as the command line set it."""

    handshake_timeout: float
    idle_timeout: float
    client_ca: str | None = None
    """The CA file client certificates are verified against (None: none asked for)."""
    require_client_cert: bool = False
    keylog: str | None = None
    trace: bool = False
    dev: DevCertificates | None = None
    version_flag: str | None = None
    """``--tls12`` or ``--tls13``, if given."""


@dataclass(frozen=True)
class Listening:
    host: str
    port: int
    subject: str
    """The server certificate's subject."""
    key: str
    max_connections: int
    setup: ServeSetup | None = None
    connect_command: str | None = None
    """The ``connect`` command that reaches (and trusts) this server, when it is known."""


@dataclass(frozen=True)
class ClientConnected:
    client: str
    """``address:port``."""


@dataclass(frozen=True)
class ClientHandshake:
    client: str
    version: str
    cipher: str
    group: str | None
    alpn: str | None
    server_name: str | None
    ignored_server_name: str | None
    """An IP address the client sent as SNI, which the server ignored (RFC 6066)."""
    client_certificate: str | None = None
    """The subject of the client's (verified) certificate, if it sent one."""


@dataclass(frozen=True)
class ClientCloseNotify:
    client: str
    echoed: int
    """Bytes echoed on the connection."""


@dataclass(frozen=True)
class ClientClosed:
    client: str
    truncated: bool
    """The client closed the TCP connection without close_notify (tolerated)."""


@dataclass(frozen=True)
class ClientIdle:
    client: str
    seconds: float
    """``--timeout``: the connection was idle that long, and closed (close_notify sent)."""
    echoed: int


@dataclass(frozen=True)
class ClientFailed:
    client: str
    error: ErrorInfo
    """In the server's words: what happened, the likely cause, the fix."""


@dataclass(frozen=True)
class TraceLine:
    """A record of the handshake trace (logger ``aiotls.trace``), with ``--trace``."""

    text: str


@dataclass(frozen=True)
class ServerError:
    """Something the event loop reported that concerns no one connection (accept failed)."""

    detail: str


@dataclass(frozen=True)
class Stopped:
    pass


Emit = Callable[[object], None]


# --- the connections ----------------------------------------------------------------------------


def _address(peer: Any) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        host = f"[{peer[0]}]" if ":" in str(peer[0]) else str(peer[0])
        return f"{host}:{peer[1]}"
    return str(peer or "?")


class _Server:
    """The listening server's shared state: the context, the limits, the open connections."""

    def __init__(self, loop: asyncio.AbstractEventLoop, ctx: TLSContext, side: ServerSide, *,
                 max_connections: int, idle_timeout: float, emit: Emit) -> None:
        self.loop = loop
        self.ctx = ctx
        self.side = side
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.emit = emit
        self.connections: set[_Connection] = set()
        self.slot_free = asyncio.Event()

    async def accept(self, listener: socket.socket) -> None:
        """Accept connections one by one, each into a :class:`_Connection`; while
        ``max_connections`` are open, wait (new clients queue in the listen backlog)."""
        loop = self.loop
        while True:
            while len(self.connections) >= self.max_connections:
                self.slot_free.clear()
                await self.slot_free.wait()
            try:
                sock, _ = await loop.sock_accept(listener)
            except OSError as exc:  # (out of file descriptors, ...: keep serving)
                self.emit(ServerError(f"accept failed: {exc.strerror or exc}"))
                await asyncio.sleep(0.1)
                continue
            try:
                await loop.connect_accepted_socket(lambda: _Connection(self), sock)
            except OSError:
                sock.close()  # (the client is gone already)

    def closed(self, connection: _Connection) -> None:
        self.connections.discard(connection)
        self.slot_free.set()

    def abort_all(self) -> None:
        for connection in list(self.connections):
            connection.abort()


class _Connection(TLSProtocol):
    """One client: aiotls's TLS protocol with the echo on top; logs a failed handshake."""

    def __init__(self, server: _Server) -> None:
        self.server = server
        self.client = "?"
        self.received = 0
        """Bytes received from the client (to tell a silent client from a slow one)."""
        self.tcp: asyncio.BaseTransport | None = None
        server.connections.add(self)
        handshake: asyncio.Future[None] = server.loop.create_future()
        handshake.add_done_callback(self._handshake_done)
        super().__init__(server.loop, _Echo(self), server.ctx, handshake, server_side=True,
                         ssl_handshake_timeout=server.side.handshake_timeout,
                         ssl_shutdown_timeout=_SHUTDOWN_TIMEOUT)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.tcp = transport
        self.client = _address(transport.get_extra_info("peername"))
        self.server.emit(ClientConnected(self.client))
        super().connection_made(transport)

    def buffer_updated(self, nbytes: int) -> None:
        self.received += nbytes
        super().buffer_updated(nbytes)

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        super().data_received(data)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.server.closed(self)
        super().connection_lost(exc)

    def abort(self) -> None:
        if self.tcp is not None:
            self.tcp.abort()  # type: ignore[attr-defined]

    def _handshake_done(self, handshake: asyncio.Future[None]) -> None:
        if handshake.cancelled() or handshake.exception() is None:
            return  # (a success is reported by _Echo, which sees the negotiated values)
        error = handshake.exception()
        assert error is not None
        self.server.emit(ClientFailed(self.client, server_words(
            error, self.server.side, during_handshake=True, received=self.received)))


class _Echo(asyncio.Protocol):
    """The application protocol, once the handshake succeeded: echo, close when idle."""

    def __init__(self, connection: _Connection) -> None:
        self.connection = connection
        self.transport: asyncio.Transport | None = None
        self.echoed = 0
        self.close_notify = False
        self.idle = False
        self.last_active = 0.0
        self.timer: asyncio.TimerHandle | None = None

    @property
    def client(self) -> str:
        return self.connection.client

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        conn: TLSConnection = transport.get_extra_info("tls_connection")
        chain = transport.get_extra_info("peer_certificates") or ()
        self.connection.server.emit(ClientHandshake(
            self.client, conn.version() or "?", _cipher(conn), conn.group,
            conn.selected_alpn_protocol(), transport.get_extra_info("server_name"),
            conn.ignored_server_name, _subject(chain[0]) if chain else None))
        self.last_active = self.connection.server.loop.time()
        self._arm(self.connection.server.idle_timeout)

    def _arm(self, delay: float) -> None:
        self.timer = self.connection.server.loop.call_later(delay, self._check_idle)

    def _check_idle(self) -> None:
        server = self.connection.server
        left = self.last_active + server.idle_timeout - server.loop.time()
        if left > 0:
            self._arm(left)
            return
        self.timer = None
        self.idle = True
        server.emit(ClientIdle(self.client, server.idle_timeout, self.echoed))
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        self.last_active = self.connection.server.loop.time()
        self.echoed += len(data)
        assert self.transport is not None
        self.transport.write(data)

    def pause_writing(self) -> None:  # the client does not read its echo: stop reading too
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None:
            self.transport.resume_reading()

    def eof_received(self) -> bool:
        conn: TLSConnection | None = (self.transport.get_extra_info("tls_connection")
                                      if self.transport is not None else None)
        if conn is not None and conn.peer_closed:
            self.close_notify = True
            self.connection.server.emit(ClientCloseNotify(self.client, self.echoed))
        return False

    def connection_lost(self, exc: BaseException | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        server = self.connection.server
        if self.idle:
            return  # (reported as ClientIdle)
        if exc is None:
            server.emit(ClientClosed(self.client, truncated=not self.close_notify))
        else:
            server.emit(ClientFailed(self.client, server_words(
                exc, server.side, during_handshake=False, received=self.connection.received)))


def _cipher(conn: TLSConnection) -> str:
    cipher = conn.cipher()
    if cipher is None:
        return "?"
    return f"{cipher[0]} ({cipher[2]}-bit key)" if cipher[2] else cipher[0]


def _subject(der: bytes) -> str:
    try:
        return name_text(x509.load_der_x509_certificate(der).subject)
    except ValueError:
        return "(a certificate that does not parse)"


# --- the server ---------------------------------------------------------------------------------


async def _listen(loop: asyncio.AbstractEventLoop, host: str, port: int) -> socket.socket:
    """A non-blocking socket listening on ``host``:``port``."""
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                       flags=socket.AI_PASSIVE)
        family, address = infos[0][0], infos[0][4]
        listener = socket.create_server(address, family=family, backlog=1024)
    except OSError as exc:
        raise CLIError(f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                       cause="the port is in use, or the address is not local to this machine",
                       hint="pick another --port or --host", code="listen-failed") from None
    listener.setblocking(False)
    return listener


async def _serve(ctx: TLSContext, side: ServerSide, *, host: str, port: int,
                 max_connections: int, idle_timeout: float, emit: Emit,
                 stop: threading.Event | None, describe: Callable[[str, int], Listening]) -> None:
    loop = asyncio.get_running_loop()
    server = _Server(loop, ctx, side, max_connections=max_connections,
                     idle_timeout=idle_timeout, emit=emit)

    def loop_error(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        emit(ServerError(context.get("message", "error") + (f": {exc!r}" if exc else "")))

    loop.set_exception_handler(loop_error)
    listener = await _listen(loop, host, port)
    stopping = asyncio.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stopping.set)
    if stop is not None:
        threading.Thread(target=lambda: (stop.wait(), loop.call_soon_threadsafe(stopping.set)),
                         daemon=True, name="aiotls-serve-stop").start()
    accepting = loop.create_task(server.accept(listener))
    try:
        bound = listener.getsockname()
        emit(describe(bound[0], bound[1]))
        await stopping.wait()
    finally:
        accepting.cancel()
        listener.close()
        server.abort_all()
        await asyncio.sleep(0)  # (the aborted connections' connection_lost)
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
    emit(Stopped())


def serve(ctx: TLSContext, certfile: str, *, host: str, port: int, max_connections: int,
          timeout: float, emit: Emit, stop: threading.Event | None = None,
          handshake_timeout: float = 10.0, setup: ServeSetup | None = None,
          loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None) -> None:
    """Echo for every client until Ctrl-C, SIGTERM or ``stop`` is set, then close every
    connection still open and emit :class:`Stopped`."""
    if setup is None:
        setup = ServeSetup(handshake_timeout=handshake_timeout, idle_timeout=timeout)
    leaf = certificate_facts(load_certificates(certfile)[0], utcnow())
    dev = setup.dev
    side = ServerSide(handshake_timeout=setup.handshake_timeout,
                      require_client_cert=setup.require_client_cert, client_ca=setup.client_ca,
                      dev_ca=dev.ca_file if dev is not None else None,
                      client_hint=f"--cert {dev.client_cert_file} --key {dev.client_key_file}"
                      if dev is not None and dev.client_cert_file is not None else None,
                      version_flag=setup.version_flag)

    def describe(bound_host: str, bound_port: int) -> Listening:
        return Listening(bound_host, bound_port, leaf.subject, leaf.public_key, max_connections,
                         setup, connect_command(setup, bound_host, bound_port))

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(_serve(ctx, side, host=host, port=port, max_connections=max_connections,
                          idle_timeout=setup.idle_timeout, emit=emit, stop=stop, describe=describe))


def connect_command(setup: ServeSetup, host: str, port: int) -> str | None:
    """The ``connect`` command for a server with development certificates (None otherwise)."""
    if setup.dev is None:
        return None
    address = ipaddress.ip_address(host.split("%")[0])
    if address.is_unspecified:
        address = ipaddress.ip_address("::1" if address.version == 6 else "127.0.0.1")
    target = f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"
    command = f"python -m aiotls connect {target} --cafile {setup.dev.ca_file}"
    if setup.require_client_cert and setup.dev.client_cert_file is not None:
        command += f" --cert {setup.dev.client_cert_file} --key {setup.dev.client_key_file}"
    return command


