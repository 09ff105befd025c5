"""asyncio Streams over aiotls, end to end on real loopback sockets.

Every test here runs twice, on the default event loop and on uvloop (see the
``pytest_asyncio_loop_factories`` hook in ``conftest.py``).  Each test is bounded
twice: by ``asyncio.timeout`` (a clean failure with a traceback) and by
``pytest.mark.timeout`` (a hard stop if the loop itself hangs).

Covered: bulk full-duplex transfer, write flow control through ``drain()``, the
TLS shutdown behind ``wait_closed()``, certificate errors out of
``open_connection``, truncation reaching a waiting reader, STARTTLS upgrades
(streams and raw protocols), many concurrent connections, IPv6 loopback, and
interop with the stdlib's ``ssl`` over asyncio in both roles.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

import aiotls
import aiotls.asyncio
from tests.certs import CA
from tests.helpers import PKI, echo_line, session_chain

KiB = 1024
MiB = 1024 * KiB

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[Any]]


# --- helpers -----------------------------------------------------------------------------------


class Handled:
    """Runs a server's per-connection coroutine and keeps its outcome for the test.

    ``asyncio.start_server`` swallows exceptions raised by the connection callback (at
    best a log line), so a server-side assertion would otherwise never fail the test.
    """

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.outcomes: list[asyncio.Future[Any]] = []
        self._arrival: asyncio.Event | None = None  # set when a connection arrives

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        outcome: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.outcomes.append(outcome)
        if self._arrival is not None:
            self._arrival.set()
            self._arrival = None
        try:
            outcome.set_result(await self.handler(reader, writer))
        except BaseException as exc:
            outcome.set_exception(exc)
        finally:
            if not writer.is_closing():
                writer.transport.abort()

    async def result(self, index: int = 0) -> Any:
        """The return value of the ``index``-th connection's handler (waits for it)."""
        while len(self.outcomes) <= index:
            if self._arrival is None:
                self._arrival = asyncio.Event()
            await self._arrival.wait()
        return await self.outcomes[index]


@contextlib.asynccontextmanager
async def serving(
    handler: Handler, pki: PKI, host: str = "127.0.0.1", **kwargs: Any
) -> AsyncIterator[tuple[int, Handled]]:
    """An aiotls stream server on ``host``; yields ``(port, handled)``."""
    handled = Handled(handler)
    server = await aiotls.asyncio.start_server(handled, host, 0, ssl=pki.server_context(),
                                               **kwargs)
    try:
        yield server.sockets[0].getsockname()[1], handled
    finally:
        server.close()
        await server.wait_closed()


async def connect(
    pki: PKI, port: int, host: str = "127.0.0.1", server_hostname: str = "localhost",
    ctx: aiotls.TLSContext | None = None, **kwargs: Any,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await aiotls.asyncio.open_connection(
        host, port, ssl=ctx or pki.client_context(), server_hostname=server_hostname, **kwargs)


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    await writer.wait_closed()


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int:
    """Echo until the client closes, then close; returns the number of bytes echoed."""
    total = 0
    while data := await reader.read(64 * KiB):
        total += len(data)
        writer.write(data)
        await writer.drain()
    await close(writer)
    return total


def _mix(block: bytes, size: int) -> bytes:
    """``size`` bytes of rotations of ``block``: no two 1 MiB stretches are alike, so
    reordered, dropped or duplicated records change the digest."""
    out = bytearray()
    i = 0
    while len(out) < size:
        # Each 1 MiB block is rotated by a different offset.
        shift = (i * 4099) % len(block)
        out += block[shift:] + block[:shift]
        i += 1
    return bytes(out[:size])


async def read_exactly_hashed(reader: asyncio.StreamReader, size: int) -> str:
    h = hashlib.sha256()
    got = 0
    while got < size:
        data = await reader.read(min(1 * MiB, size - got))
        if not data:
            raise AssertionError(f"EOF after {got} of {size} bytes")
        h.update(data)
        got += len(data)
    return h.hexdigest()


# --- 1. bulk full-duplex transfer ----------------------------------------------------------------


@pytest.mark.timeout(120)
async def test_echo_64mib_full_duplex(pki: PKI) -> None:
    """64 MiB written in 64 KiB chunks (with drain) while the echo is read concurrently."""
    size = 64 * MiB
    chunk = 64 * KiB
    data = _mix(hashlib.shake_256(b"duplex").digest(1 * MiB), size)
    expected = hashlib.sha256(data).hexdigest()

    async with asyncio.timeout(90):
        async with serving(echo, pki) as (port, handled):
            reader, writer = await connect(pki, port)

            async def send() -> None:
                view = memoryview(data)
                for pos in range(0, size, chunk):
                    writer.write(view[pos:pos + chunk])
                    await writer.drain()

            _, received = await asyncio.gather(send(), read_exactly_hashed(reader, size))
            assert received == expected
            await close(writer)
            assert await handled.result() == size


@pytest.mark.timeout(60)
async def test_stream_reader_takes_plaintext_without_a_bytes_copy(
        pki: PKI, monkeypatch: pytest.MonkeyPatch) -> None:
    """asyncio's own StreamReader is given a view of the decryption buffer (it copies it
    into its buffer at once): no large ``bytes`` per read; what it reads is intact, also
    while it pauses the transport (its limit is small here)."""
    kinds: list[type] = []
    feed = asyncio.StreamReader.feed_data

    def recording(self: asyncio.StreamReader, data: Any) -> None:
        kinds.append(type(data))
        feed(self, data)

    monkeypatch.setattr(asyncio.StreamReader, "feed_data", recording)
    size = 4 * MiB
    data = _mix(hashlib.shake_256(b"view").digest(1 * MiB), size)

    async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> str:
        digest = await read_exactly_hashed(reader, size)
        await close(writer)
        return digest

    async with asyncio.timeout(30):
        async with serving(sink, pki, limit=16 * KiB) as (port, handled):
            _, writer = await connect(pki, port)
            writer.write(data)
            await writer.drain()
            assert await handled.result() == hashlib.sha256(data).hexdigest()
            await close(writer)
    assert memoryview in kinds, kinds[:5]


@pytest.mark.timeout(60)
async def test_stream_reader_subclasses_still_get_bytes(pki: PKI) -> None:
    """A StreamReader or StreamReaderProtocol of the application's own may keep what it
    is given: it gets ``bytes``, as asyncio promises."""
    kinds: list[type] = []

    class KeepingReader(asyncio.StreamReader):
        def feed_data(self, data: Any) -> None:
            kinds.append(type(data))
            super().feed_data(data)

    class Protocol(asyncio.StreamReaderProtocol):
        def data_received(self, data: Any) -> None:
            kinds.append(type(data))
            super().data_received(data)

    async with asyncio.timeout(30):
        async with serving(echo, pki) as (port, handled):
            loop = asyncio.get_running_loop()
            for reader_class, protocol_class in ((KeepingReader, asyncio.StreamReaderProtocol),
                                                 (asyncio.StreamReader, Protocol)):
                reader = reader_class(loop=loop)
                transport, _ = await aiotls.asyncio.create_connection(
                    lambda r=reader, c=protocol_class: c(r), "127.0.0.1", port,
                    ssl=pki.client_context(), server_hostname="localhost")
                writer = asyncio.StreamWriter(transport, transport.get_protocol(), reader, loop)
                writer.write(b"x" * 300_000)
                assert await reader.readexactly(300_000) == b"x" * 300_000
                await close(writer)
    assert kinds and set(kinds) == {bytes}, set(kinds)


# --- 2. write flow control --------------------------------------------------------------------


@pytest.mark.timeout(60)
async def test_drain_blocks_while_the_peer_does_not_read(pki: PKI) -> None:
    """drain() waits while the server does not read, and returns once it does."""
    size = 8 * MiB
    stall = 1.0
    data = os.urandom(size)
    loop = asyncio.get_running_loop()

    reading = asyncio.Event()

    async def late_reader(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Any:
        await asyncio.sleep(stall)
        started = loop.time()
        reading.set()
        digest = await read_exactly_hashed(reader, size)
        writer.write(b"ok")
        await writer.drain()
        await close(writer)
        return started, digest

    async with asyncio.timeout(30):
        async with serving(late_reader, pki) as (port, handled):
            reader, writer = await connect(pki, port)
            # Cap the kernel's send buffer (autotuning may grow it to tcp_wmem's maximum), so
            # that 8 MiB is far more than the kernel can absorb on any host.
            writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF,
                                                       128 * KiB)
            t0 = loop.time()
            writer.write(data)
            assert writer.transport.get_write_buffer_size() > 512 * KiB  # above high water
            drain = asyncio.ensure_future(writer.drain())
            await asyncio.sleep(stall / 2)
            assert reading.is_set() or not drain.done(), \
                "drain() returned while the peer was not reading"
            await drain
            drained = loop.time()
            elapsed = drained - t0
            assert elapsed >= stall - 0.1, f"drain() returned after {elapsed:.3f}s"
            started, digest = await handled.result()
            assert drained >= started, "drain() returned before the server began reading"
            assert digest == hashlib.sha256(data).hexdigest()
            assert await reader.read() == b"ok"
            await close(writer)


# --- 3. wait_closed() and the TLS shutdown --------------------------------------------------------


@pytest.mark.timeout(30)
async def test_server_close_gives_clean_eof_and_wait_closed_completes(pki: PKI) -> None:
    async def bye(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> float:
        writer.write(b"bye")
        t0 = time.monotonic()
        await close(writer)  # close_notify, then wait for the client's answer
        return time.monotonic() - t0

    async with asyncio.timeout(15):
        async with serving(bye, pki) as (port, handled):
            reader, writer = await connect(pki, port)
            assert await reader.read() == b"bye"  # read() up to EOF: close_notify, no error
            assert reader.at_eof()
            assert reader.exception() is None
            assert await reader.read(100) == b""
            # The server's wait_closed() needs our close_notify: aiotls answers at once.
            assert await handled.result() < 5
            t0 = time.monotonic()
            async with asyncio.timeout(2):
                await close(writer)
            assert time.monotonic() - t0 < 2
            assert writer.transport.is_closing()


@pytest.mark.timeout(30)
async def test_client_close_gives_server_clean_eof_and_wait_closed_completes(pki: PKI) -> None:
    async def drain_then_close(reader: asyncio.StreamReader,
                               writer: asyncio.StreamWriter) -> bytes:
        data = await reader.read()  # up to the client's close_notify
        assert reader.exception() is None
        await close(writer)
        return data

    async with asyncio.timeout(15):
        async with serving(drain_then_close, pki) as (port, handled):
            reader, writer = await connect(pki, port)
            writer.write(b"x" * 100_000)
            t0 = time.monotonic()
            async with asyncio.timeout(2):
                await close(writer)  # completes once the server answered close_notify
            assert time.monotonic() - t0 < 2
            assert await handled.result() == b"x" * 100_000
            assert await reader.read() == b""


# --- 4. certificate verification errors -----------------------------------------------------------


@pytest.mark.timeout(30)
async def test_open_connection_wrong_hostname(pki: PKI) -> None:
    async def never(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise AssertionError("the handshake should have failed")

    async with asyncio.timeout(15):
        async with serving(never, pki) as (port, handled):
            with pytest.raises(aiotls.CertificateError) as info:
                await connect(pki, port, server_hostname="wrong.example")
            assert isinstance(info.value, ssl.SSLCertVerificationError)
            assert info.value.code == "hostname-mismatch"
            assert info.value.verify_code == 62  # X509_V_ERR_HOSTNAME_MISMATCH, as in ssl
            await asyncio.sleep(0.1)
            assert handled.outcomes == []


@pytest.mark.timeout(30)
async def test_open_connection_unknown_ca(pki: PKI) -> None:
    async def never(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise AssertionError("the handshake should have failed")

    other = aiotls.TLSContext(ssl.PROTOCOL_TLS_CLIENT)
    other.load_verify_locations(cadata=CA().cert_pem)
    async with asyncio.timeout(15):
        async with serving(never, pki) as (port, handled):
            with pytest.raises(aiotls.CertificateError) as info:
                await connect(pki, port, ctx=other)
            assert isinstance(info.value, ssl.SSLCertVerificationError)
            assert info.value.code == "certificate-unknown-ca"
            assert info.value.verify_code == 20  # X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY
            await asyncio.sleep(0.1)
            assert handled.outcomes == []


# --- 5. truncation reaches a waiting reader -----------------------------------------------------


async def _abort_under_pending_read(pki: PKI, ctx: aiotls.TLSContext) -> asyncio.Task[bytes]:
    """The server aborts (TCP FIN, no close_notify) while the client awaits read(100)."""
    go = asyncio.Event()

    async def aborter(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert await reader.readexactly(5) == b"ready"  # nothing unread: FIN, not RST
        await go.wait()
        writer.transport.abort()

    async with serving(aborter, pki) as (port, handled):
        reader, writer = await connect(pki, port, ctx=ctx)
        writer.write(b"ready")
        pending = asyncio.ensure_future(reader.read(100))
        await asyncio.sleep(0.05)
        assert not pending.done()
        go.set()
        await handled.result()
        await asyncio.wait([pending])
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    return pending


@pytest.mark.timeout(30)
async def test_abort_without_close_notify_raises_truncation_in_reader(pki: PKI) -> None:
    async with asyncio.timeout(15):
        pending = await _abort_under_pending_read(pki, pki.client_context())
    with pytest.raises(aiotls.TruncationError) as info:
        pending.result()
    assert isinstance(info.value, ssl.SSLEOFError)
    assert info.value.code == "truncated"


@pytest.mark.timeout(30)
async def test_abort_with_suppress_ragged_eofs_reads_empty(pki: PKI) -> None:
    ctx = pki.client_context()
    ctx.suppress_ragged_eofs = True
    async with asyncio.timeout(15):
        pending = await _abort_under_pending_read(pki, ctx)
    assert pending.result() == b""


# --- 6. STARTTLS ------------------------------------------------------------------------------


@pytest.mark.timeout(30)
async def test_upgrade_stream_starttls(pki: PKI) -> None:
    async def starttls_server(reader: asyncio.StreamReader,
                              writer: asyncio.StreamWriter) -> tuple[str, bytes]:
        assert writer.get_extra_info("tls_version") is None
        assert await reader.readline() == b"STARTTLS\n"
        writer.write(b"OK\n")
        await aiotls.asyncio.upgrade_stream(writer, pki.server_context())
        version = writer.get_extra_info("tls_version")
        line = await reader.readline()
        writer.write(b"ECHO " + line)
        await writer.drain()
        assert await reader.read() == b""
        await close(writer)
        return version, line

    handled = Handled(starttls_server)
    server = await asyncio.start_server(handled, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with asyncio.timeout(15):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"STARTTLS\n")
            assert await reader.readline() == b"OK\n"
            plain_transport = writer.transport
            await aiotls.asyncio.upgrade_stream(writer, pki.client_context(),
                                                server_hostname="localhost")
            assert writer.transport is not plain_transport
            assert writer.get_extra_info("tls_version") in ("TLSv1.3", "TLSv1.2")
            assert isinstance(writer.get_extra_info("ssl_object"), aiotls.TLSConnection)
            writer.write(b"hello over tls\n")
            assert await reader.readline() == b"ECHO hello over tls\n"
            await close(writer)
            version, line = await handled.result()
            assert version == writer.get_extra_info("tls_version")
            assert line == b"hello over tls\n"
    finally:
        server.close()
        await server.wait_closed()


class LineProtocol(asyncio.Protocol):
    """Plain protocol for the low-level start_tls test: counts callbacks, collects data."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.made = 0
        self.buffer = b""
        self.lines: asyncio.Queue[bytes] = asyncio.Queue()
        self.eof = 0
        self.lost: asyncio.Future[BaseException | None] = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.made += 1
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            self.on_line(line + b"\n")

    def on_line(self, line: bytes) -> None:
        self.lines.put_nowait(line)

    def eof_received(self) -> None:
        self.eof += 1

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self.lost.done():
            self.lost.set_result(exc)


class StartTLSServer(LineProtocol):
    """Answers STARTTLS with OK, upgrades with ``start_tls(server_side=True)``, then echoes."""

    def __init__(self, ctx: aiotls.TLSContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.received: list[bytes] = []
        self.plain_transport: asyncio.Transport | None = None
        self.tls_transport: asyncio.Transport | None = None
        self.early: list[bytes] = []
        self.upgrade_task: asyncio.Task[asyncio.Transport] | None = None

    def on_line(self, line: bytes) -> None:
        self.received.append(line)
        if self.plain_transport is None:
            assert self.transport is not None
            if line != b"STARTTLS\n":
                self.transport.write(b"ERR\n")
                return
            self.plain_transport = self.transport
            # Stop reading before answering, so the ClientHello cannot reach this protocol.
            self.plain_transport.pause_reading()
            self.plain_transport.write(b"OK\n")
            self.upgrade_task = asyncio.ensure_future(self._upgrade())
        elif self.tls_transport is None:
            # As with loop.start_tls(), decrypted data may arrive right after the handshake,
            # before start_tls() has returned the transport to answer on.
            self.early.append(line)
        else:
            self.tls_transport.write(b"ECHO " + line)

    async def _upgrade(self) -> asyncio.Transport:
        assert self.plain_transport is not None
        try:
            new = await aiotls.asyncio.start_tls(self.plain_transport, self, self.ctx,
                                                 server_side=True)
        except BaseException:
            self.plain_transport.abort()  # let the client fail fast
            raise
        self.transport = self.tls_transport = new
        for line in self.early:
            new.write(b"ECHO " + line)
        return new


@pytest.mark.timeout(30)
async def test_low_level_start_tls_both_sides(pki: PKI) -> None:
    loop = asyncio.get_running_loop()
    servers: list[StartTLSServer] = []
    server_ctx = pki.server_context()

    def factory() -> StartTLSServer:
        servers.append(StartTLSServer(server_ctx))
        return servers[-1]

    server = await loop.create_server(factory, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with asyncio.timeout(15):
            transport, client = await loop.create_connection(LineProtocol, "127.0.0.1", port)
            transport.write(b"STARTTLS\n")
            assert await client.lines.get() == b"OK\n"
            new = await aiotls.asyncio.start_tls(transport, client, pki.client_context(),
                                                 server_hostname="localhost")
            assert new is not transport
            assert new.get_protocol() is client
            assert new.get_extra_info("tls_version") in ("TLSv1.3", "TLSv1.2")
            assert new.get_extra_info("peername") == transport.get_extra_info("peername")
            client.transport = new
            new.write(b"one\n")
            new.write(b"two\n")
            assert await client.lines.get() == b"ECHO one\n"
            assert await client.lines.get() == b"ECHO two\n"

            (srv,) = servers
            assert srv.upgrade_task is not None
            server_transport = await srv.upgrade_task
            assert server_transport.get_extra_info("tls_version") == \
                new.get_extra_info("tls_version")
            assert server_transport.get_extra_info("server_name") == "localhost"
            # The server protocol saw plaintext only: STARTTLS, then the decrypted lines.
            assert srv.received == [b"STARTTLS\n", b"one\n", b"two\n"]
            assert srv.made == 1 and client.made == 1
            new.close()
            assert await srv.lost is None
            assert await client.lost is None
            assert srv.eof == 1  # the client's close_notify
            assert srv.made == 1 and client.made == 1
    finally:
        server.close()
        await server.wait_closed()


# --- 7. many concurrent connections -------------------------------------------------------------


async def _many_clients(pki: PKI, count: int) -> float:
    async def one(i: int) -> None:
        reader, writer = await connect(pki, port)
        payload = i.to_bytes(4, "big") * 25  # 100 bytes, distinct per client
        writer.write(payload)
        assert await reader.readexactly(100) == payload
        await close(writer)

    t0 = time.monotonic()
    async with serving(echo, pki, backlog=1024) as (port, handled):
        await asyncio.gather(*(one(i) for i in range(count)))
        totals = await asyncio.gather(*(handled.result(i) for i in range(count)))
    assert totals == [100] * count
    return time.monotonic() - t0


@pytest.mark.timeout(300)
async def test_500_concurrent_connections(pki: PKI) -> None:
    """500 clients at once against one server: connect, echo 100 bytes, close.

    About 4-5 s per loop on a 2-core box (client and server handshakes share one thread).
    """
    async with asyncio.timeout(240):
        elapsed = await _many_clients(pki, 500)
    print(f"500 connections in {elapsed:.1f}s")


# --- 8. IPv6 ----------------------------------------------------------------------------------


@pytest.mark.timeout(30)
async def test_ipv6_loopback(pki: PKI) -> None:
    async with asyncio.timeout(15):
        async with serving(echo, pki, host="::1") as (port, handled):
            reader, writer = await connect(pki, port, host="::1", server_hostname="::1")
            peer = writer.get_extra_info("peername")
            assert len(peer) == 4 and peer[0] == "::1" and peer[1] == port
            assert writer.get_extra_info("socket").family == socket.AF_INET6
            assert writer.get_extra_info("tls_version") in ("TLSv1.3", "TLSv1.2")
            writer.write(b"over ipv6")
            assert await reader.readexactly(9) == b"over ipv6"
            await close(writer)
            assert await handled.result() == 9


# --- 9. interop with the stdlib's ssl over asyncio ----------------------------------------------

EXCHANGE = 1 * MiB + 123


async def _exchange_server_side(reader: asyncio.StreamReader,
                                writer: asyncio.StreamWriter) -> str:
    """Reads EXCHANGE bytes, answers with EXCHANGE different bytes; returns the digest read."""
    digest = await read_exactly_hashed(reader, EXCHANGE)
    writer.write(_mix(hashlib.shake_256(b"from server").digest(1 * MiB), EXCHANGE))
    await writer.drain()
    return digest


@pytest.mark.interop
@pytest.mark.timeout(60)
async def test_interop_aiotls_server_stdlib_client(pki: PKI) -> None:
    to_server = _mix(hashlib.shake_256(b"from client").digest(1 * MiB), EXCHANGE)
    to_client = _mix(hashlib.shake_256(b"from server").digest(1 * MiB), EXCHANGE)

    async def server_side(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Any:
        digest = await _exchange_server_side(reader, writer)
        version = writer.get_extra_info("tls_version")
        await close(writer)  # aiotls closes first: close_notify
        return digest, version

    async with asyncio.timeout(30):
        async with serving(server_side, pki) as (port, handled):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=pki.stdlib_client_context(), server_hostname="localhost")
            writer.write(to_server)
            received = await read_exactly_hashed(reader, EXCHANGE)
            assert received == hashlib.sha256(to_client).hexdigest()
            ssl_object = writer.get_extra_info("ssl_object")
            assert ssl_object.version() == "TLSv1.3"
            assert await reader.read() == b""  # stdlib sees a clean close_notify
            assert reader.exception() is None
            writer.close()
            await writer.wait_closed()
            digest, version = await handled.result()
            assert digest == hashlib.sha256(to_server).hexdigest()
            assert version == ssl_object.version()


@pytest.mark.interop
@pytest.mark.timeout(60)
async def test_interop_aiotls_client_stdlib_server(pki: PKI) -> None:
    to_server = _mix(hashlib.shake_256(b"from client").digest(1 * MiB), EXCHANGE)
    to_client = _mix(hashlib.shake_256(b"from server").digest(1 * MiB), EXCHANGE)

    async def stdlib_side(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Any:
        digest = await _exchange_server_side(reader, writer)
        version = writer.get_extra_info("ssl_object").version()
        rest = await reader.read()  # up to aiotls's close_notify: b"", no error
        assert reader.exception() is None
        writer.close()
        await writer.wait_closed()
        return digest, version, rest

    handled = Handled(stdlib_side)
    server = await asyncio.start_server(handled, "127.0.0.1", 0,
                                        ssl=pki.stdlib_server_context())
    port = server.sockets[0].getsockname()[1]
    try:
        async with asyncio.timeout(30):
            reader, writer = await connect(pki, port)
            writer.write(to_server)
            received = await read_exactly_hashed(reader, EXCHANGE)
            assert received == hashlib.sha256(to_client).hexdigest()
            version = writer.get_extra_info("tls_version")
            assert version == "TLSv1.3"
            await close(writer)  # aiotls closes first; returns once stdlib answered
            digest, stdlib_version, rest = await handled.result()
            assert digest == hashlib.sha256(to_server).hexdigest()
            assert stdlib_version == version
            assert rest == b""
            assert await reader.read() == b""
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.timeout(60)
async def test_session_resumption_over_asyncio(pki: PKI) -> None:
    """aiotls extension: open_connection(..., session=...) resumes an earlier session."""
    server = await aiotls.asyncio.start_server(echo_line, "127.0.0.1", 0,
                                               ssl=pki.server_context())
    port = server.sockets[0].getsockname()[1]
    reused = await session_chain(port, pki.client_context())
    assert reused == [False, True, True]
    server.close()
    await server.wait_closed()
