"""Unmodified asyncio, uvloop, httpx and aiohttp doing TLS through aiotls.

Each framework is handed an :class:`aiotls.TLSContext` where it expects an
:class:`ssl.SSLContext`; it calls ``wrap_bio()`` and drives the
:class:`aiotls.compat.TLSObject` it gets like the stdlib's ``SSLObject``.  Every test moves
real data over 127.0.0.1, is bounded by ``asyncio.timeout`` and runs on the default loop
and on uvloop (conftest's ``pytest_asyncio_loop_factories``), three ways: aiotls client
against a stdlib ``ssl`` server, stdlib client against an aiotls server, aiotls on both
ends (conftest's ``ends``).  Each checks that aiotls did the TLS on the ends given aiotls:
the transport's ``ssl_object`` is a ``TLSObject`` whose ``connection`` is a
:class:`aiotls.TLSConnection`; the suite either end reports is ChaCha20-Poly1305, the only
one the aiotls ends allow (``set_ciphers`` restricts TLS 1.3 suites in aiotls only; an
OpenSSL pair picks AES-256-GCM, see the first test); aiotls on both ends, the group is
P-384, the only one the aiotls client offers.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, cast

import aiohttp
import httpx
import pytest
from aiohttp import web

import aiotls
from aiotls.compat import TLSObject
from aiotls.connection import ConnectionState
from tests.certs import CA
from tests.helpers import FRAMEWORK_SUITE, PKI
from tests.helpers import FrameworkEnds as Ends

TIMEOUT = 20.0


@pytest.fixture
def no_asyncio_errors(caplog: pytest.LogCaptureFixture) -> Callable[[], None]:
    """Call at the end of a test: asyncio logged no fatal error or exception."""
    caplog.set_level(logging.DEBUG, logger="asyncio")

    def check() -> None:
        bad = [r for r in caplog.records if r.name == "asyncio" and (
            r.levelno >= logging.WARNING or r.exc_info is not None
            or "Fatal error" in r.getMessage() or "exception" in r.getMessage().lower())]
        assert not bad, [r.getMessage() for r in bad]

    return check


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def serve(handler: Handler, ssl_ctx: ssl.SSLContext | None) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=ssl_ctx)
    return server, server.sockets[0].getsockname()[1]


async def stop(server: asyncio.Server) -> None:
    server.close()
    await server.wait_closed()


async def echo_lines(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while line := await reader.readline():
        writer.write(line)
        await writer.drain()
    writer.close()
    await writer.wait_closed()


# --- streams ---------------------------------------------------------------------------------------


async def test_an_openssl_pair_negotiates_another_suite(pki: PKI) -> None:
    """The baseline of the suite check: without aiotls the pair picks something else."""
    server, port = await serve(echo_lines, pki.stdlib_server_context())
    try:
        async with asyncio.timeout(TIMEOUT):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=pki.stdlib_client_context(), server_hostname="localhost")
            writer.write(b"x\n")
            assert await reader.readline() == b"x\n"
            cipher = writer.get_extra_info("cipher")
            writer.close()
            await writer.wait_closed()
    finally:
        await stop(server)
    assert cipher[0] != FRAMEWORK_SUITE


async def test_open_connection_and_start_server(ends: Ends) -> None:
    seen: list[Any] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(writer.get_extra_info("ssl_object"))
        await echo_lines(reader, writer)

    server, port = await serve(handler, ends.server)
    try:
        async with asyncio.timeout(TIMEOUT):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=ends.client, server_hostname="localhost")
            ends.check(writer.get_extra_info("ssl_object"), server_side=False)
            for i in range(5):
                writer.write(b"line %d\n" % i)
                assert await reader.readline() == b"line %d\n" % i
            writer.close()
            await writer.wait_closed()
    finally:
        await stop(server)
    ends.check(seen[0], server_side=True)


# --- transports and protocols ----------------------------------------------------------------------


class Collect(asyncio.Protocol):
    """Collects what arrives; ``done`` resolves at EOF (or with the connection's error)."""

    def __init__(self, reply: bool = False) -> None:
        self.reply = reply
        self.data = bytearray()
        self.transport: asyncio.Transport | None = None
        self.done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # (uvloop's are not subclasses)

    def data_received(self, data: bytes) -> None:
        self.data += data
        if self.reply:
            assert self.transport is not None
            self.transport.write(data.upper())
            if self.data.endswith(b"\n"):
                self.transport.close()

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            if exc is None:
                self.done.set_result(bytes(self.data))
            else:
                self.done.set_exception(exc)


async def test_create_connection_and_create_server(ends: Ends) -> None:
    loop = asyncio.get_running_loop()
    servers: list[Collect] = []

    def factory() -> Collect:
        servers.append(Collect(reply=True))
        return servers[-1]

    server = await loop.create_server(factory, "127.0.0.1", 0, ssl=ends.server)
    port = server.sockets[0].getsockname()[1]
    try:
        async with asyncio.timeout(TIMEOUT):
            transport, client = await loop.create_connection(
                Collect, "127.0.0.1", port, ssl=ends.client, server_hostname="localhost")
            ends.check(transport.get_extra_info("ssl_object"), server_side=False)
            transport.write(b"hello over ")
            transport.write(b"create_connection\n")
            assert await client.done == b"HELLO OVER CREATE_CONNECTION\n"
            assert await servers[0].done == b"hello over create_connection\n"
            assert servers[0].transport is not None
            ends.check(servers[0].transport.get_extra_info("ssl_object"), server_side=True)
    finally:
        await stop(server)


class Chunks(asyncio.BufferedProtocol):
    """A BufferedProtocol app: asyncio's SSL layer reads plaintext straight into its buffer
    (``SSLObject.read(n, buffer)``)."""

    def __init__(self) -> None:
        self.buffer = bytearray(7919)  # odd size: records straddle the buffer's end
        self.received = bytearray()
        self.calls = 0
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def get_buffer(self, sizehint: int) -> memoryview:
        # A memoryview, not the bytearray: asyncio's sslproto fills the rest of a
        # partly filled buffer through buf[offset:], a copy for a bytearray.
        return memoryview(self.buffer)

    def buffer_updated(self, nbytes: int) -> None:
        self.calls += 1
        self.received += self.buffer[:nbytes]

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is None:
            self.done.set_result(None)
        else:
            self.done.set_exception(exc)


async def test_buffered_protocol_client(ends: Ends) -> None:
    payload = os.urandom(1 << 20)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(payload)
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    server, port = await serve(handler, ends.server)
    try:
        async with asyncio.timeout(TIMEOUT):
            transport, app = await asyncio.get_running_loop().create_connection(
                Chunks, "127.0.0.1", port, ssl=ends.client, server_hostname="localhost")
            ends.check(transport.get_extra_info("ssl_object"), server_side=False)
            await app.done
    finally:
        await stop(server)
    assert app.received == payload
    assert app.calls >= len(payload) // len(app.buffer)


class Recorder(asyncio.BufferedProtocol):
    """Records the callbacks it gets; a BufferedProtocol, or, with ``buffered=False``,
    wrapped so that asyncio sees a plain Protocol (``data_received``)."""

    def __init__(self) -> None:
        self.buffer = bytearray(1000)
        self.data = bytearray()
        self.calls: list[str] = []
        self.lost: asyncio.Future[Exception | None] = \
            asyncio.get_running_loop().create_future()

    def get_buffer(self, sizehint: int) -> memoryview:
        return memoryview(self.buffer)

    def buffer_updated(self, nbytes: int) -> None:
        self.data += self.buffer[:nbytes]

    def data_received(self, data: bytes) -> None:
        self.data += data

    def eof_received(self) -> bool | None:
        self.calls.append("eof_received")
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.calls.append("connection_lost")
        self.lost.set_result(exc)


class PlainRecorder(asyncio.Protocol):
    def __init__(self) -> None:
        self.inner = Recorder()

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.inner.connection_lost(exc)


@pytest.mark.parametrize("buffered", [False, True], ids=["Protocol", "BufferedProtocol"])
async def test_last_data_and_close_notify_in_one_segment(pki: PKI, buffered: bool) -> None:
    """A peer writes its last data and its close_notify in one segment, and waits for our
    close_notify before it hangs up.  The application gets all the data, then
    ``eof_received`` (not just ``connection_lost``), and our close_notify goes out.

    (uvloop reads an SSLObject only while ``incoming.pending`` or ``pending()`` is
    non-zero: it saw neither once aiotls had taken the close_notify in with the data.)"""
    last = os.urandom(5000)
    answered = asyncio.Event()

    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = aiotls.TLSConnection(pki.server_context(), server_side=True)
        while not conn.handshake_complete:
            conn.receive_data(await reader.read(65536))
            writer.write(conn.data_to_send())
        conn.send_data(last)
        conn.close()
        writer.write(conn.data_to_send())  # the data and close_notify: one write
        while conn.state is not ConnectionState.CLOSED and (data := await reader.read(65536)):
            conn.receive_data(data)
        if conn.state is ConnectionState.CLOSED and conn.error is None:
            answered.set()
        writer.close()

    server, port = await serve(peer, None)
    try:
        async with asyncio.timeout(TIMEOUT):
            factory = Recorder if buffered else PlainRecorder
            transport, proto = await asyncio.get_running_loop().create_connection(
                factory, "127.0.0.1", port, ssl=pki.client_context(),
                server_hostname="localhost")
            assert isinstance(transport.get_extra_info("ssl_object"), TLSObject)
            app = proto if isinstance(proto, Recorder) else proto.inner
            assert await app.lost is None
            await answered.wait()
    finally:
        await stop(server)
    assert app.data == last
    assert app.calls == ["eof_received", "connection_lost"]


# --- STARTTLS: upgrading a plain connection --------------------------------------------------------


async def test_loop_start_tls(ends: Ends) -> None:
    loop = asyncio.get_running_loop()
    server_objs: list[Any] = []
    tasks: list[asyncio.Task[None]] = []

    class Upgrader(asyncio.Protocol):
        """Plain until "STARTTLS\\n", then TLS: echoes what comes upper-cased."""

        tls: asyncio.Transport | None = None
        early = b""  # TLS data that came before start_tls() returned

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.plain = cast(asyncio.Transport, transport)

        def data_received(self, data: bytes) -> None:
            if data == b"STARTTLS\n" and not server_objs:
                server_objs.append(None)
                self.plain.pause_reading()  # the ClientHello is for start_tls
                self.plain.write(b"GO\n")
                tasks.append(loop.create_task(self.upgrade()))
            elif self.tls is None:
                self.early += data
            else:
                self.tls.write(data.upper())

        async def upgrade(self) -> None:
            tls = await loop.start_tls(self.plain, self, ends.server, server_side=True)
            assert tls is not None
            server_objs[0] = tls.get_extra_info("ssl_object")
            self.tls = tls
            if self.early:
                tls.write(self.early.upper())

    server = await loop.create_server(Upgrader, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with asyncio.timeout(TIMEOUT):
            transport, client = await loop.create_connection(Collect, "127.0.0.1", port)
            transport.write(b"STARTTLS\n")
            while client.data != b"GO\n":
                await asyncio.sleep(0.01)
            client.data.clear()
            tls = await loop.start_tls(transport, client, ends.client,
                                       server_hostname="localhost")
            assert tls is not None
            ends.check(tls.get_extra_info("ssl_object"), server_side=False)
            tls.write(b"secret\n")
            while client.data != b"SECRET\n":
                await asyncio.sleep(0.01)
            tls.close()
            assert await client.done == b"SECRET\n"
            await tasks[0]
    finally:
        await stop(server)
    ends.check(server_objs[0], server_side=True)


async def test_stream_writer_start_tls(ends: Ends) -> None:
    server_objs: list[Any] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert await reader.readline() == b"STARTTLS\n"
        writer.write(b"GO\n")
        await writer.drain()
        await writer.start_tls(ends.server)  # server side: the writer's server made it
        server_objs.append(writer.get_extra_info("ssl_object"))
        await echo_lines(reader, writer)

    server, port = await serve(handler, None)
    try:
        async with asyncio.timeout(TIMEOUT):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"STARTTLS\n")
            assert await reader.readline() == b"GO\n"
            await writer.start_tls(ends.client, server_hostname="localhost")
            ends.check(writer.get_extra_info("ssl_object"), server_side=False)
            writer.write(b"over TLS now\n")
            assert await reader.readline() == b"over TLS now\n"
            writer.close()
            await writer.wait_closed()
    finally:
        await stop(server)
    ends.check(server_objs[0], server_side=True)


# --- volume, close, failures -----------------------------------------------------------------------


async def test_16_mib_both_ways(ends: Ends, no_asyncio_errors: Callable[[], None]) -> None:
    size = 16 << 20
    up = os.urandom(size)
    down = os.urandom(size)
    got_up: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def send() -> None:
            writer.write(down)
            await writer.drain()

        sender = asyncio.create_task(send())
        got_up.append(hashlib.sha256(await reader.readexactly(size)).digest())
        await sender
        writer.close()
        await writer.wait_closed()

    server, port = await serve(handler, ends.server)
    try:
        async with asyncio.timeout(60):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=ends.client, server_hostname="localhost")
            ends.check(writer.get_extra_info("ssl_object"), server_side=False)

            async def send() -> None:
                # In pieces of odd sizes, so record and write boundaries never line up.
                view = memoryview(up)
                for start in range(0, size, 1_000_003):
                    writer.write(view[start:start + 1_000_003])
                    await writer.drain()

            sender = asyncio.create_task(send())
            received = await reader.readexactly(size)
            await sender
            assert await reader.read() == b""  # the server's close_notify
            writer.close()
            await writer.wait_closed()
    finally:
        await stop(server)
    assert hashlib.sha256(received).digest() == hashlib.sha256(down).digest()
    assert got_up == [hashlib.sha256(up).digest()]
    no_asyncio_errors()


async def test_tls12_streams(ends: Ends, pki: PKI,
                             no_asyncio_errors: Callable[[], None]) -> None:
    """The same over TLS 1.2 (its own record layer and close path): 1 MiB each way, a
    clean close."""
    ends.client.maximum_version = ssl.TLSVersion.TLSv1_2
    if ends.aiotls_client:
        # In TLS 1.2 the groups also name the curves the server's ECDSA key may use:
        # P-256 must be there for the test certificate (P-384 stays first).
        ends.client.set_groups(["secp384r1", "secp256r1"])
    payload = os.urandom(1 << 20)
    server_objs: list[Any] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server_objs.append(writer.get_extra_info("ssl_object"))
        writer.write(await reader.readexactly(len(payload)))
        await writer.drain()
        assert await reader.read() == b""
        writer.close()
        await writer.wait_closed()

    server, port = await serve(handler, ends.server)
    try:
        async with asyncio.timeout(TIMEOUT):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=ends.client, server_hostname="localhost")
            obj = writer.get_extra_info("ssl_object")
            assert obj.version() == "TLSv1.2"
            ends.check(obj, server_side=False)
            writer.write(payload)
            assert await reader.readexactly(len(payload)) == payload
            writer.close()
            await writer.wait_closed()
            while not server_objs or server_objs[0].version() is None:
                await asyncio.sleep(0.01)
    finally:
        await stop(server)
    ends.check(server_objs[0], server_side=True)
    no_asyncio_errors()


@pytest.mark.parametrize("closer", ["client", "server"])
async def test_close_notify_both_ways(ends: Ends, closer: str,
                                      no_asyncio_errors: Callable[[], None]) -> None:
    """Whoever closes first sends close_notify; the other reads EOF (not an error), answers
    with its own; both transports end without an error logged."""
    outcome: dict[str, Any] = {}

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        obj = writer.get_extra_info("ssl_object")
        writer.write(b"hello\n")
        await writer.drain()
        if closer == "server":
            writer.close()
            await writer.wait_closed()
        else:
            outcome["server_read"] = await reader.read()  # EOF: the client's close_notify
            writer.close()
            await writer.wait_closed()
        outcome["server_obj"] = obj

    server, port = await serve(handler, ends.server)
    try:
        async with asyncio.timeout(TIMEOUT):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=ends.client, server_hostname="localhost")
            obj = writer.get_extra_info("ssl_object")
            assert await reader.readline() == b"hello\n"
            if closer == "server":
                assert await reader.read() == b""  # the server's close_notify, not an error
            writer.close()
            await writer.wait_closed()
            while "server_obj" not in outcome:
                await asyncio.sleep(0.01)
    finally:
        await stop(server)
    if closer == "client":
        assert outcome["server_read"] == b""
    for side, o in (("client", obj), ("server", outcome["server_obj"])):
        ends.check(o, server_side=side == "server")
        if isinstance(o, TLSObject):
            # CLOSED without error: close_notify went both ways (an EOF without the
            # peer's close_notify would have failed an OPEN connection with TruncationError).
            assert o.connection.state is ConnectionState.CLOSED
            assert o.connection.error is None
    no_asyncio_errors()


async def test_untrusted_certificate_fails_the_handshake(
        ends: Ends, no_asyncio_errors: Callable[[], None]) -> None:
    other = CA(name="a CA nobody here trusts")
    client: ssl.SSLContext
    if ends.aiotls_client:
        client = aiotls.TLSContext(ssl.PROTOCOL_TLS_CLIENT)
        client.load_verify_locations(cadata=other.cert_pem.decode())
    else:
        client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client.load_verify_locations(cadata=other.cert_pem.decode())
    server, port = await serve(echo_lines, ends.server)
    try:
        async with asyncio.timeout(TIMEOUT):
            with pytest.raises(ssl.SSLCertVerificationError) as info:
                await asyncio.open_connection("127.0.0.1", port, ssl=client,
                                              server_hostname="localhost")
    finally:
        await stop(server)
    if ends.aiotls_client:
        assert isinstance(info.value, aiotls.CertificateError)
    no_asyncio_errors()  # a failed handshake is the peer's business, not a loop error


@pytest.mark.parametrize("side", ["client", "server"])
async def test_handshake_timeout_against_a_silent_peer(pki: PKI, side: str) -> None:
    """``ssl_handshake_timeout`` aborts a handshake the peer never answers."""
    silent_done = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # says nothing until the other end gives up
        writer.close()
        silent_done.set()

    if side == "client":
        server, port = await serve(silent, None)
        try:
            async with asyncio.timeout(TIMEOUT):
                with pytest.raises((ConnectionAbortedError, TimeoutError)):
                    await asyncio.open_connection(
                        "127.0.0.1", port, ssl=pki.client_context(),
                        server_hostname="localhost", ssl_handshake_timeout=0.3)
                await silent_done.wait()  # the aborted connection reached the server
        finally:
            await stop(server)
    else:
        reached: list[bool] = []

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            reached.append(True)

        server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=pki.server_context(),
                                            ssl_handshake_timeout=0.3)
        port = server.sockets[0].getsockname()[1]
        try:
            async with asyncio.timeout(TIMEOUT):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                assert await reader.read() == b""  # the server gave up and hung up
                writer.close()
        finally:
            await stop(server)
        assert not reached


async def test_mutual_tls_peercert(ends: Ends, pki: PKI) -> None:
    ends.server.verify_mode = ssl.CERT_REQUIRED
    ends.server.load_verify_locations(pki.ca_file)
    ends.client.load_cert_chain(*pki.client[1:])
    peer: list[Any] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer.append(writer.get_extra_info("peercert"))
        peer.append(writer.get_extra_info("ssl_object"))
        await echo_lines(reader, writer)

    server, port = await serve(handler, ends.server)
    try:
        async with asyncio.timeout(TIMEOUT):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=ends.client, server_hostname="localhost")
            writer.write(b"who am I\n")
            assert await reader.readline() == b"who am I\n"
            server_cert = writer.get_extra_info("peercert")
            writer.close()
            await writer.wait_closed()
    finally:
        await stop(server)
    cert, obj = peer
    assert ("DNS", "client.example.test") in cert["subjectAltName"]
    assert ("DNS", "localhost") in server_cert["subjectAltName"]
    ends.check(obj, server_side=True)


async def test_alpn(ends: Ends) -> None:
    ends.client.set_alpn_protocols(["h2", "http/1.1"])
    ends.server.set_alpn_protocols(["http/1.1"])
    server_alpn: list[str | None] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        obj = writer.get_extra_info("ssl_object")
        ends.check(obj, server_side=True)
        server_alpn.append(obj.selected_alpn_protocol())
        await echo_lines(reader, writer)

    server, port = await serve(handler, ends.server)
    try:
        async with asyncio.timeout(TIMEOUT):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=ends.client, server_hostname="localhost")
            obj = writer.get_extra_info("ssl_object")
            ends.check(obj, server_side=False)
            writer.write(b"x\n")
            assert await reader.readline() == b"x\n"
            assert obj.selected_alpn_protocol() == "http/1.1"
            writer.close()
            await writer.wait_closed()
    finally:
        await stop(server)
    assert server_alpn == ["http/1.1"]


# --- httpx and aiohttp -----------------------------------------------------------------------------


async def http_server(ctx: ssl.SSLContext, seen: list[Any]) -> tuple[asyncio.Server, int]:
    """A minimal HTTPS/1.1 server: answers every request with the TLS version it saw."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        obj = writer.get_extra_info("ssl_object")
        seen.append(obj)
        request = await reader.readuntil(b"\r\n\r\n")
        body = f"{request.split()[1].decode()} over {obj.version()}".encode()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    return await serve(handler, ctx)


async def test_httpx_async_client(ends: Ends) -> None:
    seen: list[Any] = []
    server, port = await http_server(ends.server, seen)
    try:
        async with asyncio.timeout(TIMEOUT), httpx.AsyncClient(verify=ends.client) as client:
            for path in ("/a", "/b"):
                response = await client.get(f"https://127.0.0.1:{port}{path}")
                assert response.status_code == 200
                assert response.text.startswith(f"{path} over TLSv1.")
                ssl_object = response.extensions["network_stream"].get_extra_info("ssl_object")
                ends.check(ssl_object, server_side=False)
    finally:
        await stop(server)
    assert len(seen) == 2
    for obj in seen:
        ends.check(obj, server_side=True)


async def test_aiohttp_client_and_server(ends: Ends) -> None:
    seen: list[Any] = []

    checked = asyncio.Event()

    async def hello(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        obj = request.transport.get_extra_info("ssl_object")
        seen.append(obj)
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(f"hello {request.query['n']} ".encode())
        await checked.wait()  # the client looks at its transport while the body is open
        checked.clear()
        await response.write(f"over {obj.version()}".encode())
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ends.server)
        await site.start()
        port = runner.addresses[0][1]
        async with asyncio.timeout(TIMEOUT):
            connector = aiohttp.TCPConnector(ssl=ends.client)
            async with aiohttp.ClientSession(connector=connector) as session:
                for n in range(3):
                    async with session.get(f"https://127.0.0.1:{port}/?n={n}") as response:
                        assert response.connection is not None
                        transport = response.connection.transport
                        assert transport is not None
                        ends.check(transport.get_extra_info("ssl_object"), server_side=False)
                        checked.set()
                        assert response.status == 200
                        assert (await response.text()).startswith(f"hello {n} over TLSv1.")
                # ssl= per request, on a new connection
                async with session.get(f"https://127.0.0.1:{port}/?n=x", ssl=ends.client,
                                       headers={"Connection": "close"}) as response:
                    checked.set()
                    assert (await response.text()).startswith("hello x over")
    finally:
        await runner.cleanup()
    assert len(seen) == 4
    for obj in seen:
        ends.check(obj, server_side=True)


async def test_a_wrong_side_context_in_start_server_is_logged_once(
        pki: Any, caplog: pytest.LogCaptureFixture) -> None:
    """asyncio drops a server's handshake errors outside debug mode: a client context given
    to start_server would fail every connection in silence (and, raised from wrap_bio(),
    leave each client waiting forever), so aiotls says it once and each client gets an
    alert at once."""
    ctx = pki.client_context()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    caplog.set_level(logging.ERROR, logger="aiotls")
    async with asyncio.timeout(10):
        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx)
        port = server.sockets[0].getsockname()[1]
        for _ in range(2):
            # (asyncio closes at once: an alert, or a reset when the ClientHello was unread)
            with pytest.raises((ssl.SSLError, ConnectionError)):
                await asyncio.open_connection("127.0.0.1", port, server_hostname="localhost",
                                              ssl=pki.stdlib_client_context())
        server.close()
        await server.wait_closed()
    logged = [r for r in caplog.records if r.name.startswith("aiotls")]
    assert len(logged) == 1 and "server connection" in logged[0].getMessage()
    assert "PROTOCOL_TLS_SERVER" in logged[0].getMessage()
