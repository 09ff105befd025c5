"""The asyncio Protocol/Transport contract of :mod:`aiotls.asyncio`, over real loopback sockets.

``aiotls.asyncio`` is meant as a drop-in for the loop's own TLS support (``asyncio.sslproto``):
the application protocol must see the same callbacks, in the same order, with the same flow
control, as with ``loop.create_connection(ssl=...)``.  These tests drive real TCP connections on
127.0.0.1 (conftest runs every one on the default loop and on uvloop) and watch what a plain
:class:`asyncio.Protocol` is told:

* ``connection_made`` only after the handshake → ``data_received``* → ``eof_received`` (the
  peer's close_notify) → ``connection_lost``, each at most once, on both sides;
* ``get_extra_info`` keys, write and read flow control, ``BufferedProtocol``, ``set_protocol``;
* handshake and shutdown timeouts against peers that stop talking, ``close()`` vs ``abort()``,
  certificate and mid-stream errors.

Peers that misbehave on purpose are plain TCP servers that run the TLS server side by hand with a
sans-IO :class:`aiotls.TLSConnection` (:func:`manual_tls_server`), so they can stop answering
at exactly the right moment.  Every test is bounded with ``asyncio.timeout``; an autouse fixture
fails the test if anything reached the loop's exception handler (an exception escaping a
callback).  A few checks look at ``transport._tls`` (the lower TLSProtocol): those are marked.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import hashlib
import mmap
import os
import random
import ssl
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pytest

import aiotls
import aiotls.asyncio as aa
from aiotls.asyncio.protocol import _RECV_BUFFER, _recv_buffer
from aiotls.errors import AlertDescription, PeerMisbehaved, TLSConfigurationError, TruncationError
from aiotls.events import CloseNotifyReceived, DataReceived, Event
from tests.asyncio_memory import (
    DATA,
    EOF,
    LOST,
    MADE,
    SNI,
    MemoryTransport,
    feed,
    memory_tls_pair,
    pin,
)
from tests.certs import CA
from tests.helpers import PKI, VERSIONS, data_of

pytestmark = pytest.mark.timeout(60)

HOST = "127.0.0.1"
KiB = 1024
MiB = 1024 * KiB
#: aiotls's documented defaults (protocol.py): read high water, write high water, one read.
READ_HIGH = 256 * KiB
WRITE_HIGH = 512 * KiB
RECV_CHUNK = _RECV_BUFFER  # what one read of the shared receive buffer can bring



# --- helpers ------------------------------------------------------------------------------------


def make_payload(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


def digest(data: bytes | bytearray) -> str:
    """Compare big payloads without pytest dumping megabytes into the report."""
    return f"{len(data)} bytes sha256={hashlib.sha256(data).hexdigest()[:16]}"


async def until(predicate: Callable[[], bool], event: asyncio.Event) -> None:
    """Wait until ``predicate()`` holds, re-checking whenever ``event`` fires."""
    while not predicate():
        event.clear()
        await event.wait()


class RecordingProtocol(asyncio.Protocol):
    """Records every callback in order, with an :class:`asyncio.Event` per callback.

    Nothing here raises: a failing assertion inside a callback would only reach the loop's
    exception handler.  Tests compare :func:`lifecycle` and the recorded values instead.
    """

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.transport: Any = None
        self.data = bytearray()
        self.exc: BaseException | str | None = "connection_lost not called"
        self.made_info: dict[str, Any] = {}
        self.writing_paused = False
        self.pause_count = 0
        self.resume_count = 0
        self.write_size_at_pause = -1
        self.made = asyncio.Event()
        self.received = asyncio.Event()
        self.eof = asyncio.Event()
        self.lost = asyncio.Event()
        self.paused = asyncio.Event()
        self.resumed = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.calls.append(MADE)
        self.transport = transport
        # What is known at this moment: the handshake must already be complete.
        obj = transport.get_extra_info("ssl_object")
        self.made_info = {
            "cipher": transport.get_extra_info("cipher"),
            "peercert": transport.get_extra_info("peercert"),
            "version": obj.version() if obj is not None else None,
            "closing": transport.is_closing(),
        }
        self.made.set()

    def data_received(self, data: bytes) -> None:
        self.calls.append(DATA)
        self.data += data
        self.received.set()

    def eof_received(self) -> bool | None:
        self.calls.append(EOF)
        self.eof.set()
        return None

    def connection_lost(self, exc: BaseException | None) -> None:
        self.calls.append(LOST)
        self.exc = exc
        self.lost.set()

    def pause_writing(self) -> None:
        self.writing_paused = True
        self.pause_count += 1
        if self.transport is not None:
            self.write_size_at_pause = self.transport.get_write_buffer_size()
        self.resumed.clear()
        self.paused.set()

    def resume_writing(self) -> None:
        self.writing_paused = False
        self.resume_count += 1
        self.paused.clear()
        self.resumed.set()

    async def drain(self) -> None:
        while self.writing_paused:
            await self.resumed.wait()


def lifecycle(protocol: RecordingProtocol) -> list[str]:
    """The recorded callbacks with each run of ``data_received`` collapsed into one."""
    out: list[str] = []
    for call in protocol.calls:
        if call == DATA and out and out[-1] == DATA:
            continue
        out.append(call)
    return out


class EchoProtocol(RecordingProtocol):
    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self.transport.write(data)


class PausedReader(RecordingProtocol):
    """Pauses reading in ``connection_made``: nothing may be delivered until it resumes."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.transport.pause_reading()


class Sender(RecordingProtocol):
    """Once the peer says ``b"go"``: sends ``payload`` respecting pause_writing, then close()."""

    def __init__(self, payload: bytes, chunk: int = 64 * KiB) -> None:
        super().__init__()
        self.payload = payload
        self.chunk = chunk
        self.task: asyncio.Task[None] | None = None

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.task is None and bytes(self.data) == b"go":
            self.task = asyncio.get_running_loop().create_task(self._send())

    async def _send(self) -> None:
        view = memoryview(self.payload)
        for pos in range(0, len(view), self.chunk):
            await self.drain()
            self.transport.write(view[pos:pos + self.chunk])
        self.transport.close()


class BufferedRecorder(asyncio.BufferedProtocol):
    """An :class:`asyncio.BufferedProtocol` with a fixed-size receive buffer."""

    def __init__(self, size: int) -> None:
        self.calls: list[str] = []
        self.buffer = bytearray(size)
        self.data = bytearray()
        self.problems: list[str] = []
        self.transport: Any = None
        self.exc: BaseException | str | None = "connection_lost not called"
        self.get_buffer_calls = 0
        self.received = asyncio.Event()
        self.lost = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.calls.append(MADE)
        self.transport = transport

    def get_buffer(self, sizehint: int) -> memoryview:
        self.get_buffer_calls += 1
        return memoryview(self.buffer)

    def buffer_updated(self, nbytes: int) -> None:
        self.calls.append(DATA)
        if not 0 < nbytes <= len(self.buffer):
            self.problems.append(f"buffer_updated({nbytes}) with a {len(self.buffer)}-byte buffer")
        self.data += self.buffer[:nbytes]
        self.received.set()

    def data_received(self, data: bytes) -> None:  # must never be used for a BufferedProtocol
        self.problems.append(f"data_received({len(data)} bytes) called on a BufferedProtocol")

    def eof_received(self) -> bool | None:
        self.calls.append(EOF)
        return None

    def connection_lost(self, exc: BaseException | None) -> None:
        self.calls.append(LOST)
        self.exc = exc
        self.lost.set()


@dataclass
class ServerHandle:
    server: asyncio.Server
    protocols: list[Any]
    created: asyncio.Event

    @property
    def port(self) -> int:
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def accepted(self, index: int = 0) -> Any:
        """The application protocol of the ``index``-th accepted TCP connection."""
        await until(lambda: len(self.protocols) > index, self.created)
        return self.protocols[index]

    async def connected(self, index: int = 0) -> Any:
        """Same, once its ``connection_made`` ran (i.e. the TLS handshake completed)."""
        protocol = await self.accepted(index)
        await protocol.made.wait()
        return protocol


@contextlib.asynccontextmanager
async def tls_server(
    ctx: aiotls.TLSContext,
    factory: Callable[[], Any] = RecordingProtocol,
    **kwargs: Any,
) -> AsyncIterator[ServerHandle]:
    """An ``aiotls.asyncio.create_server`` on 127.0.0.1 recording its application protocols."""
    protocols: list[Any] = []
    created = asyncio.Event()

    def make() -> Any:
        protocol = factory()
        protocols.append(protocol)
        created.set()
        return protocol

    server = await aa.create_server(make, HOST, 0, ssl=ctx, **kwargs)
    try:
        yield ServerHandle(server, protocols, created)
    finally:
        server.close()
        for protocol in protocols:
            transport = getattr(protocol, "transport", None)
            if transport is not None and not transport.is_closing():
                transport.abort()
        await asyncio.sleep(0)


async def connect(
    ctx: aiotls.TLSContext,
    port: int,
    factory: Callable[[], Any] = RecordingProtocol,
    **kwargs: Any,
) -> tuple[Any, Any]:
    kwargs.setdefault("server_hostname", SNI)
    return await aa.create_connection(factory, HOST, port, ssl=ctx, **kwargs)


@dataclass
class ManualPeer:
    """The server side of one connection, run by hand (see :func:`manual_tls_server`)."""

    conn: aiotls.TLSConnection
    writer: asyncio.StreamWriter
    events: list[Event] = field(default_factory=list)
    handshake_done: asyncio.Event = field(default_factory=asyncio.Event)
    got_close_notify: asyncio.Event = field(default_factory=asyncio.Event)
    eof: asyncio.Event = field(default_factory=asyncio.Event)


@contextlib.asynccontextmanager
async def manual_tls_server(
    ctx: aiotls.TLSContext,
    after_handshake: Callable[[ManualPeer], None] | None = None,
) -> AsyncIterator[tuple[int, list[ManualPeer]]]:
    """A plain TCP server whose TLS server side is a sans-IO TLSConnection pumped by hand.

    It completes the handshake (and sends whatever the server owes right after it), calls
    ``after_handshake(peer)``, and from then on **never writes again**: it keeps reading and
    records the events (close_notify included) but answers nothing.
    """
    peers: list[ManualPeer] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = ManualPeer(aiotls.TLSConnection(ctx, server_side=True), writer)
        peers.append(peer)
        try:
            while data := await reader.read(64 * KiB):
                with contextlib.suppress(aiotls.TLSError):  # fed after the end: ignore
                    peer.conn.receive_data(data)
                for event in peer.conn.events():
                    peer.events.append(event)
                    if isinstance(event, CloseNotifyReceived):
                        peer.got_close_notify.set()
                if not peer.handshake_done.is_set():
                    writer.write(peer.conn.data_to_send())
                    if peer.conn.handshake_complete:
                        peer.handshake_done.set()
                        if after_handshake is not None:
                            after_handshake(peer)
        except ConnectionError:
            pass
        finally:
            peer.eof.set()
            writer.close()

    server = await asyncio.start_server(handle, HOST, 0)
    try:
        yield server.sockets[0].getsockname()[1], peers
    finally:
        server.close()
        for peer in peers:
            peer.writer.close()
        await asyncio.sleep(0)


def lower_transport(transport: Any) -> Any:
    """White-box: the TCP transport under an aiotls application transport."""
    return transport._tls._transport


@pytest.fixture(autouse=True)
async def loop_errors() -> AsyncIterator[list[dict[str, Any]]]:
    """Fail the test if anything reached the event loop's exception handler."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    try:
        yield errors
        await asyncio.sleep(0.01)  # let callbacks scheduled by the test run
    finally:
        loop.set_exception_handler(previous)
    assert not errors, f"the event loop's exception handler was called: {errors!r}"


@pytest.fixture(scope="module")
def other_ca() -> CA:
    return CA()


# --- 1. callback order --------------------------------------------------------------------------


@pytest.mark.parametrize("closer", ["client", "server"])
async def test_callback_order(pki: PKI, closer: str) -> None:
    async with asyncio.timeout(20), tls_server(pki.server_context(), EchoProtocol) as srv:
        transport, client = await connect(pki.client_context(), srv.port)
        server = await srv.connected()
        for side in (client, server):
            # connection_made came after the handshake: the TLS details were already there.
            assert side.made_info["cipher"] is not None and len(side.made_info["cipher"]) == 3
            assert side.made_info["version"] in ("TLSv1.2", "TLSv1.3")
            assert side.made_info["closing"] is False
        assert isinstance(client.made_info["peercert"], dict) and client.made_info["peercert"]
        assert client.calls == [MADE]
        assert transport.get_protocol() is client

        transport.write(b"hello ")
        transport.writelines([b"wor", bytearray(b"l"), memoryview(b"d")])
        await until(lambda: len(client.data) >= 11, client.received)
        assert bytes(client.data) == b"hello world"
        assert bytes(server.data) == b"hello world"

        (transport if closer == "client" else server.transport).close()
        await asyncio.wait_for(asyncio.gather(client.lost.wait(), server.lost.wait()), 5)
        await asyncio.sleep(0.05)  # a late or duplicated callback would show up now

    passive, active = (server, client) if closer == "client" else (client, server)
    # The side that did not close sees the peer's close_notify as eof_received.
    assert lifecycle(passive) == [MADE, DATA, EOF, LOST]
    # The closing side may see eof_received too (sslproto calls it when the peer's
    # close_notify answers ours), but at most once and before connection_lost.
    assert lifecycle(active) in ([MADE, DATA, LOST], [MADE, DATA, EOF, LOST])
    assert passive.exc is None
    assert active.exc is None
    assert transport.is_closing() and server.transport.is_closing()


# --- 2. get_extra_info --------------------------------------------------------------------------


async def test_get_extra_info(pki: PKI, version: str) -> None:
    sctx = pin(pki.server_context(), VERSIONS[version])
    sctx.set_alpn_protocols(["http/1.1"])
    cctx = pki.client_context()
    cctx.set_alpn_protocols(["h2", "http/1.1"])
    async with asyncio.timeout(20), tls_server(sctx) as srv:
        transport, client = await connect(cctx, srv.port)
        server = await srv.connected()
        for tr, ctx in ((transport, cctx), (server.transport, sctx)):
            assert tr.get_extra_info("sslcontext") is ctx
            obj = tr.get_extra_info("ssl_object")
            for method in ("getpeercert", "cipher", "version", "selected_alpn_protocol"):
                assert callable(getattr(obj, method, None)), method
            assert obj.version() == version
            assert obj.selected_alpn_protocol() == "http/1.1"
            cipher = tr.get_extra_info("cipher")
            assert isinstance(cipher, tuple) and len(cipher) == 3
            assert isinstance(cipher[0], str) and cipher[1] == version
            assert isinstance(cipher[2], int) and cipher[2] >= 128
            assert cipher == obj.cipher()
            assert tr.get_extra_info("compression", "missing") is None
            sock = tr.get_extra_info("socket")
            assert sock is not None and sock.fileno() >= 0
            assert tr.get_extra_info("sockname") == sock.getsockname()
            assert tr.get_extra_info("peername") == sock.getpeername()
            assert tr.get_extra_info("tls_version") == version
            assert tr.get_extra_info("alpn_protocol") == "http/1.1"
            assert tr.get_extra_info("server_name") == SNI
            assert tr.get_extra_info("session_reused") is False
            group = tr.get_extra_info("tls_group")
            assert isinstance(group, str) and group
            conn = tr.get_extra_info("tls_connection")
            assert isinstance(conn, aiotls.TLSConnection) and conn is obj
            assert tr.get_extra_info("no-such-key") is None
            assert tr.get_extra_info("no-such-key", 42) == 42

        # client: the server's certificate
        peercert = transport.get_extra_info("peercert")
        assert isinstance(peercert, dict) and peercert == client.made_info["peercert"]
        assert ("DNS", "localhost") in peercert["subjectAltName"]
        chain = transport.get_extra_info("peer_certificates")
        assert isinstance(chain, tuple) and chain and all(isinstance(c, bytes) for c in chain)
        assert chain[0] == transport.get_extra_info("ssl_object").getpeercert(binary_form=True)
        assert transport.get_extra_info("peername") == (HOST, srv.port)
        # server: no client certificate was asked for
        assert server.transport.get_extra_info("peercert") is None
        assert server.transport.get_extra_info("peer_certificates") == ()
        assert server.transport.get_extra_info("sockname") == (HOST, srv.port)
        transport.close()
        await asyncio.wait_for(client.lost.wait(), 5)


# --- 3. write flow control ----------------------------------------------------------------------


async def test_write_flow_control(pki: PKI) -> None:
    async with asyncio.timeout(40), tls_server(pki.server_context(), PausedReader) as srv:
        transport, client = await connect(pki.client_context(), srv.port)
        server = await srv.connected()
        assert not server.transport.is_reading()
        rng = random.Random(3)
        sent = hashlib.sha256()
        total = 0
        # Write like a well-behaved producer (stop on pause_writing, go on after
        # resume_writing) until the writer stays paused: the socket buffers are full and the
        # paused reader holds everything back.
        while True:
            assert total < 96 * MiB, "the writer was never held back by the paused reader"
            if client.writing_paused:
                try:
                    await asyncio.wait_for(client.resumed.wait(), 0.3)
                except TimeoutError:
                    break
                continue
            chunk = rng.randbytes(256 * KiB)
            transport.write(chunk)
            sent.update(chunk)
            total += len(chunk)
            await asyncio.sleep(0)  # let the loop push bytes into the socket
        assert client.pause_count >= 1
        assert client.resume_count == client.pause_count - 1
        low, high = transport.get_write_buffer_limits()
        assert (low, high) == (WRITE_HIGH // 4, WRITE_HIGH)
        assert client.write_size_at_pause >= high
        assert transport.get_write_buffer_size() > low
        stuck_resumes = client.resume_count
        assert server.data == b"" and server.calls == [MADE]
        assert server.transport.get_read_buffer_size() <= READ_HIGH + RECV_CHUNK

        server.transport.resume_reading()
        assert server.transport.is_reading()
        await asyncio.wait_for(client.resumed.wait(), 20)
        assert client.resume_count == stuck_resumes + 1
        assert transport.get_write_buffer_size() <= low
        tail = rng.randbytes(100_003)
        transport.write(tail)
        sent.update(tail)
        total += len(tail)
        transport.close()
        await asyncio.wait_for(server.lost.wait(), 20)
    assert len(server.data) == total
    assert hashlib.sha256(server.data).hexdigest() == sent.hexdigest()
    assert lifecycle(server) == [MADE, DATA, EOF, LOST] and server.exc is None


async def test_buffer_limits_round_trip(pki: PKI) -> None:
    async with asyncio.timeout(20), tls_server(pki.server_context()) as srv:
        transport, client = await connect(pki.client_context(), srv.port)
        assert transport.get_write_buffer_limits() == (WRITE_HIGH // 4, WRITE_HIGH)
        transport.set_write_buffer_limits(high=40_000, low=10_000)
        assert transport.get_write_buffer_limits() == (10_000, 40_000)
        transport.set_write_buffer_limits(high=40_000)
        assert transport.get_write_buffer_limits() == (10_000, 40_000)
        transport.set_write_buffer_limits(low=1_000)
        assert transport.get_write_buffer_limits() == (1_000, 4_000)
        with pytest.raises(ValueError, match="high"):
            transport.set_write_buffer_limits(high=10, low=20)
        with pytest.raises(ValueError, match="must be >= 0"):
            transport.set_write_buffer_limits(high=-1)
        assert transport.get_write_buffer_limits() == (1_000, 4_000)
        transport.set_write_buffer_limits()
        assert transport.get_write_buffer_limits() == (WRITE_HIGH // 4, WRITE_HIGH)

        assert transport.get_read_buffer_limits() == (READ_HIGH // 4, READ_HIGH)
        transport.set_read_buffer_limits(high=8_000, low=2_000)
        assert transport.get_read_buffer_limits() == (2_000, 8_000)
        with pytest.raises(ValueError, match="high"):
            transport.set_read_buffer_limits(high=10, low=20)
        assert transport.get_read_buffer_limits() == (2_000, 8_000)
        assert transport.get_read_buffer_size() == 0
        assert transport.get_write_buffer_size() == 0
        assert client.pause_count == 0
        # A limit below what is buffered pauses the writer at once.
        transport.set_write_buffer_limits(high=0)
        assert transport.get_write_buffer_limits() == (0, 0)
        assert client.pause_count == 1
        transport.close()
        await asyncio.wait_for(client.lost.wait(), 5)


# --- 4. read flow control -----------------------------------------------------------------------


async def test_pause_reading_stops_delivery(pki: PKI) -> None:
    payload = make_payload(12 * MiB, seed=4)
    async with asyncio.timeout(40), \
            tls_server(pki.server_context(), lambda: Sender(payload)) as srv:
        transport, client = await connect(pki.client_context(), srv.port)
        assert transport.is_reading()
        transport.pause_reading()
        transport.pause_reading()  # idempotent
        assert not transport.is_reading()
        transport.write(b"go")
        server = await srv.connected()

        await asyncio.sleep(0.3)
        assert client.data == b"" and client.calls == [MADE], "data delivered while paused"
        assert transport.get_read_buffer_size() > 0
        # The backlog is bounded: the lower transport stops reading, so the server's writes
        # pile up in its own buffers until it is told to pause.
        await asyncio.wait_for(server.paused.wait(), 10)
        assert not lower_transport(transport).is_reading()  # white-box
        sizes = []
        for _ in range(10):
            sizes.append(transport.get_read_buffer_size())
            await asyncio.sleep(0.03)
        assert 0 < max(sizes) <= READ_HIGH + RECV_CHUNK, sizes
        assert client.data == b"" and not transport.is_reading()
        assert transport.get_extra_info("tls_connection").state is aiotls.ConnectionState.OPEN

        transport.resume_reading()
        assert transport.is_reading()
        await asyncio.wait_for(client.lost.wait(), 20)
    assert digest(client.data) == digest(payload)
    assert lifecycle(client) == [MADE, DATA, EOF, LOST]
    assert client.exc is None


class PausesOnEveryChunk(RecordingProtocol):
    """Pauses reading inside each data_received and resumes on the next loop iteration."""

    def __init__(self) -> None:
        super().__init__()
        self.reading_paused = False
        self.problems: list[str] = []

    def data_received(self, data: bytes) -> None:
        if self.reading_paused:
            self.problems.append(f"data_received({len(data)}) while reading was paused")
        super().data_received(data)
        self.transport.pause_reading()
        self.reading_paused = True
        asyncio.get_running_loop().call_soon(self._resume)

    def eof_received(self) -> bool | None:
        if self.reading_paused:
            self.problems.append("eof_received while reading was paused")
        return super().eof_received()

    def _resume(self) -> None:
        self.reading_paused = False
        self.transport.resume_reading()


async def test_pause_reading_inside_data_received(pki: PKI) -> None:
    payload = make_payload(2 * MiB, seed=5)
    async with asyncio.timeout(30), \
            tls_server(pki.server_context(), lambda: Sender(payload)) as srv:
        transport, client = await connect(pki.client_context(), srv.port, PausesOnEveryChunk)
        transport.write(b"go")
        await asyncio.wait_for(client.lost.wait(), 20)
    assert client.problems == []
    assert digest(client.data) == digest(payload)
    assert lifecycle(client) == [MADE, DATA, EOF, LOST] and client.exc is None


# --- 5. handshake timeout -----------------------------------------------------------------------


async def test_handshake_timeout_client_side(pki: PKI) -> None:
    peer_eof = asyncio.Event()
    writers: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        with contextlib.suppress(ConnectionError):
            await reader.read()  # never writes; returns at EOF
        peer_eof.set()
        writer.close()

    created: list[RecordingProtocol] = []

    def factory() -> RecordingProtocol:
        created.append(RecordingProtocol())
        return created[-1]

    server = await asyncio.start_server(silent, HOST, 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with asyncio.timeout(10):
            start = time.monotonic()
            with pytest.raises(aa.HandshakeTimeoutError) as info:
                await aa.create_connection(factory, HOST, port, ssl=pki.client_context(),
                                           server_hostname=SNI, ssl_handshake_timeout=0.5)
            elapsed = time.monotonic() - start
            assert 0.4 <= elapsed <= 2.0, elapsed
            assert isinstance(info.value, ConnectionAbortedError)
            assert isinstance(info.value, aiotls.TLSError)
            assert info.value.code == "handshake-timeout"
            assert "0.5 seconds" in info.value.what  # names the limit
            assert "ssl_handshake_timeout" in info.value.hint  # and how to change it
            # The connection was closed, not left dangling.
            await asyncio.wait_for(peer_eof.wait(), 2)
            assert all(p.calls == [] for p in created)
    finally:
        server.close()
        for writer in writers:
            writer.close()


async def test_handshake_timeout_server_side(pki: PKI) -> None:
    async with asyncio.timeout(10), \
            tls_server(pki.server_context(), ssl_handshake_timeout=0.5) as srv:
        reader, writer = await asyncio.open_connection(HOST, srv.port)
        try:
            start = time.monotonic()
            await srv.accepted()
            assert await asyncio.wait_for(reader.read(), 3) == b""  # the server hung up
            elapsed = time.monotonic() - start
            assert 0.4 <= elapsed <= 2.0, elapsed
        finally:
            writer.close()
        await asyncio.sleep(0.05)
        assert len(srv.protocols) == 1
        assert srv.protocols[0].calls == []  # never connection_made, so no connection_lost


# --- 6. shutdown ----------------------------------------------------------------------------------


async def test_shutdown_timeout(pki: PKI) -> None:
    async with asyncio.timeout(10), manual_tls_server(pki.server_context()) as (port, peers):
        transport, client = await connect(pki.client_context(), port, ssl_shutdown_timeout=0.5)
        transport.write(b"last words")
        await peers[0].handshake_done.wait()
        start = time.monotonic()
        transport.close()
        assert transport.is_closing()
        await asyncio.wait_for(peers[0].got_close_notify.wait(), 2)  # close() sent it
        await asyncio.wait_for(client.lost.wait(), 3)
        elapsed = time.monotonic() - start
        assert 0.4 <= elapsed <= 2.0, elapsed
        assert isinstance(client.exc, aa.ShutdownTimeoutError)
        assert isinstance(client.exc, TimeoutError)
        assert lifecycle(client) == [MADE, LOST]
        await asyncio.wait_for(peers[0].eof.wait(), 2)  # and the TCP connection is gone


async def test_close_completes_quickly(pki: PKI) -> None:
    async with asyncio.timeout(10), tls_server(pki.server_context()) as srv:
        transport, client = await connect(pki.client_context(), srv.port)
        server = await srv.connected()
        transport.write(b"bye")
        start = time.monotonic()
        transport.close()
        await asyncio.wait_for(client.lost.wait(), 5)
        assert time.monotonic() - start < 1.0
        assert client.exc is None
        await asyncio.wait_for(server.lost.wait(), 5)
        assert bytes(server.data) == b"bye"
        assert lifecycle(server) == [MADE, DATA, EOF, LOST] and server.exc is None


async def test_close_while_reading_paused_completes(pki: PKI) -> None:
    """sslproto runs the close_notify exchange whether or not the app reads (its SHUTDOWN
    state unwraps incoming data regardless of pause_reading), so close() finishes promptly."""
    async with asyncio.timeout(10), tls_server(pki.server_context()) as srv:
        transport, client = await connect(pki.client_context(), srv.port,
                                          ssl_shutdown_timeout=2)
        server = await srv.connected()
        transport.pause_reading()
        start = time.monotonic()
        transport.close()
        await asyncio.wait_for(server.lost.wait(), 5)
        assert lifecycle(server) == [MADE, EOF, LOST] and server.exc is None
        await asyncio.wait_for(client.lost.wait(), 4)
        elapsed = time.monotonic() - start
        assert client.exc is None, f"connection_lost({client.exc!r}) after {elapsed:.1f} s"
        assert elapsed < 1.0, elapsed


# --- 7. close vs abort --------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["close", "abort", "abort-ragged-eof-tolerated"])
async def test_close_vs_abort(pki: PKI, how: str) -> None:
    sctx = pki.server_context()
    if how == "abort-ragged-eof-tolerated":
        sctx.suppress_ragged_eofs = True
    async with asyncio.timeout(10), tls_server(sctx, EchoProtocol) as srv:
        transport, client = await connect(pki.client_context(), srv.port)
        server = await srv.connected()
        transport.write(b"ping")
        await until(lambda: len(client.data) >= 4, client.received)  # nothing left unread
        if how == "close":
            transport.close()
        else:
            transport.abort()
        assert transport.is_closing()
        # Writing to a closed transport is silently ignored, like sslproto.
        transport.write(b"ignored")
        transport.writelines([b"also ignored"])
        await asyncio.wait_for(asyncio.gather(client.lost.wait(), server.lost.wait()), 5)
        await asyncio.sleep(0.05)
    assert bytes(server.data) == b"ping"
    assert client.exc is None
    assert lifecycle(client) in ([MADE, DATA, LOST], [MADE, DATA, EOF, LOST])
    if how == "abort":
        # No close_notify: the peer must not take the end of the TCP stream for a clean EOF.
        assert lifecycle(server) == [MADE, DATA, LOST]
        assert isinstance(server.exc, TruncationError)
    else:
        # close_notify, or a ragged EOF the server tolerates: no error, and like sslproto
        # (which reports a transport EOF without close_notify as eof_received) an EOF.
        assert server.exc is None
        assert lifecycle(server) == [MADE, DATA, EOF, LOST], "eof_received missing"


# --- 8. BufferedProtocol ------------------------------------------------------------------------


@pytest.mark.parametrize("size", [7, 1 * MiB], ids=["7-byte-buffer", "1MiB-buffer"])
async def test_buffered_protocol(pki: PKI, size: int) -> None:
    payload = make_payload(300 * KiB + 5, seed=8)
    async with asyncio.timeout(30), \
            tls_server(pki.server_context(), lambda: Sender(payload)) as srv:
        transport, client = await connect(pki.client_context(), srv.port,
                                          lambda: BufferedRecorder(size))
        transport.write(b"go")
        await asyncio.wait_for(client.lost.wait(), 20)
    assert client.problems == []
    assert digest(client.data) == digest(payload)
    assert client.get_buffer_calls >= len(payload) // size
    assert lifecycle(client) == [MADE, DATA, EOF, LOST]  # type: ignore[arg-type]
    assert client.exc is None


class PausingBufferedRecorder(BufferedRecorder):
    """Pauses reading inside each buffer_updated and resumes on the next loop iteration."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.reading_paused = False
        self.while_paused = 0

    def buffer_updated(self, nbytes: int) -> None:
        if self.reading_paused:
            self.while_paused += 1
        super().buffer_updated(nbytes)
        self.transport.pause_reading()
        self.reading_paused = True
        asyncio.get_running_loop().call_soon(self._resume)

    def _resume(self) -> None:
        self.reading_paused = False
        self.transport.resume_reading()


async def test_buffered_protocol_pause_inside_buffer_updated(pki: PKI) -> None:
    """pause_reading() stops delivery at once for a BufferedProtocol too: no buffer_updated
    until resume_reading(), even when one TLS record fills many small buffers."""
    payload = make_payload(256 * KiB, seed=10)
    async with asyncio.timeout(30), \
            tls_server(pki.server_context(), lambda: Sender(payload)) as srv:
        transport, client = await connect(pki.client_context(), srv.port,
                                          lambda: PausingBufferedRecorder(1000))
        transport.write(b"go")
        await asyncio.wait_for(client.lost.wait(), 20)
    assert digest(client.data) == digest(payload)
    assert client.problems == []
    assert client.while_paused == 0, (
        f"{client.while_paused} of {client.calls.count(DATA)} buffer_updated() calls "
        "came while reading was paused")
    assert client.exc is None


async def test_buffered_protocols_share_the_decryption_buffer_safely(pki: PKI) -> None:
    """BufferedProtocols get plaintext straight from a decryption buffer shared by the
    connections of a thread: many at once, pausing at random, still get exact bytes."""
    payloads = [make_payload(400 * KiB + i * 777, seed=20 + i) for i in range(6)]
    senders: list[Sender] = []

    def sender() -> Sender:
        senders.append(Sender(payloads[len(senders)]))
        return senders[-1]

    async with asyncio.timeout(60), tls_server(pki.server_context(), sender) as srv:
        clients = []
        for i in range(len(payloads)):
            transport, client = await connect(
                pki.client_context(), srv.port,
                lambda i=i: PausingBufferedRecorder(3000) if i % 2 else BufferedRecorder(65536))
            clients.append(client)
            transport.write(b"go")
        await asyncio.wait_for(asyncio.gather(*(c.lost.wait() for c in clients)), 50)
    for client, payload in zip(clients, payloads, strict=True):
        assert client.problems == [] and client.exc is None
        assert digest(client.data) == digest(payload)


def test_receive_buffer_is_per_thread_and_page_aligned() -> None:
    """The kernel copies into a buffer starting a few bytes past a page boundary up to
    6x slower on some CPUs, and a large bytearray starts 16 bytes in: the shared receive
    buffer must start on a page boundary (and be one per thread)."""
    found: list[memoryview] = []

    def fetch() -> None:
        found.append(_recv_buffer())
        assert _recv_buffer() is found[-1]  # kept, not rebuilt per read

    for _ in range(2):
        thread = threading.Thread(target=fetch)
        thread.start()
        thread.join()
    first, second = found
    assert first.obj is not second.obj
    for view in found:
        assert not view.readonly and len(view) == _RECV_BUFFER
        address = ctypes.addressof(ctypes.c_char.from_buffer(view))
        assert address % mmap.PAGESIZE == 0, address % mmap.PAGESIZE


async def test_close_lifecycle_matches_sslproto(pki: PKI) -> None:
    """transport.close(), the peer answers close_notify: the application's callbacks are
    those asyncio's own sslproto gives, driven the same way over the same transport."""
    lifecycles = {}
    for stdlib in (True, False):
        app = RecordingProtocol()
        tls, wire, server = await memory_tls_pair(pki, app, stdlib=stdlib)
        server.send_data(b"before")
        feed(tls, server.data_to_send())
        app.transport.close()  # sends close_notify
        server.receive_data(wire.take())  # the server answers it
        feed(tls, server.data_to_send())
        async with asyncio.timeout(5):
            while not wire.closing or LOST not in app.calls:
                await asyncio.sleep(0)
        assert bytes(app.data) == b"before" and app.exc is None
        lifecycles["sslproto" if stdlib else "aiotls"] = lifecycle(app)
    assert lifecycles["aiotls"] == lifecycles["sslproto"], lifecycles


async def _peer_closes(tls: Any, wire: MemoryTransport, server: aiotls.TLSConnection,
                       app: RecordingProtocol) -> None:
    server.send_data(b"data")
    server.close()
    feed(tls, server.data_to_send())


async def _peer_closes_while_paused(tls: Any, wire: MemoryTransport,
                                    server: aiotls.TLSConnection, app: RecordingProtocol
                                    ) -> None:
    app.transport.pause_reading()
    server.send_data(b"data")
    server.close()
    feed(tls, server.data_to_send())
    for _ in range(5):
        await asyncio.sleep(0)
    assert app.data == b"" and EOF not in app.calls  # nothing while paused
    app.transport.resume_reading()


async def _abort(tls: Any, wire: MemoryTransport, server: aiotls.TLSConnection,
                 app: RecordingProtocol) -> None:
    server.send_data(b"data")
    feed(tls, server.data_to_send())
    app.transport.abort()  # (the transport then reports connection_lost(None))


async def _writes_after_close_ignored(tls: Any, wire: MemoryTransport,
                                      server: aiotls.TLSConnection, app: RecordingProtocol
                                      ) -> None:
    app.transport.write(b"sent")
    app.transport.close()
    app.transport.write(b"ignored")
    app.transport.writelines([b"ignored too"])
    server.receive_data(wire.take())
    got = b"".join(e.data for e in server.events()
                   if isinstance(e, aiotls.events.DataReceived))
    assert got == b"sent"
    feed(tls, server.data_to_send())  # the server's answering close_notify


class RaisingProtocol(RecordingProtocol):
    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        raise ValueError("application bug")


class KeepOpenProtocol(RecordingProtocol):
    def eof_received(self) -> bool | None:
        super().eof_received()
        return True  # has no effect under TLS (both log a warning)


def _outcome(call: Callable[[], Any]) -> Any:
    try:
        result = call()
    except Exception as exc:
        return type(exc).__name__
    return result if isinstance(result, bool | int | tuple | type(None)) else type(result)


async def test_set_protocol_lifecycle_matches_sslproto(pki: PKI) -> None:
    """set_protocol() mid-stream, from a plain Protocol to a BufferedProtocol: who gets
    which data and callbacks is what sslproto does."""
    seen = {}
    for stdlib in (True, False):
        first = RecordingProtocol()
        second = BufferedRecorder(5)
        tls, wire, server = await memory_tls_pair(pki, first, stdlib=stdlib)
        server.send_data(b"one")
        feed(tls, server.data_to_send())
        first.transport.set_protocol(second)
        second.transport = first.transport
        assert first.transport.get_protocol() is second
        server.send_data(b"two and more")
        server.close()
        feed(tls, server.data_to_send())
        async with asyncio.timeout(5):
            while LOST not in second.calls:
                await asyncio.sleep(0)
        seen["sslproto" if stdlib else "aiotls"] = (
            lifecycle(first), bytes(first.data), second.calls[:1] + second.calls[-2:],
            bytes(second.data), second.problems, type(second.exc).__name__)
    assert seen["aiotls"] == seen["sslproto"], seen


async def _client_sends_and_closes(tls: Any, wire: MemoryTransport,
                                   client: aiotls.TLSConnection, app: RecordingProtocol
                                   ) -> None:
    client.send_data(b"request")
    client.close()
    feed(tls, client.data_to_send())
    await asyncio.sleep(0)
    client.receive_data(wire.take())  # the server's answering close_notify


async def _server_app_answers_and_closes(tls: Any, wire: MemoryTransport,
                                         client: aiotls.TLSConnection, app: RecordingProtocol
                                         ) -> None:
    client.send_data(b"request")
    feed(tls, client.data_to_send())
    app.transport.write(b"response")
    app.transport.close()
    client.receive_data(wire.take())
    got = b"".join(e.data for e in client.events()
                   if isinstance(e, aiotls.events.DataReceived))
    assert got == b"response"
    feed(tls, client.data_to_send())  # the client's answering close_notify


@pytest.mark.parametrize("scenario", [_client_sends_and_closes, _server_app_answers_and_closes],
                         ids=["client-closes", "server-app-closes"])
async def test_server_side_lifecycle_matches_sslproto(pki: PKI, scenario: Any) -> None:
    """The same comparison with sslproto on the server side."""
    seen = {}
    for stdlib in (True, False):
        app = RecordingProtocol()
        tls, wire, client = await memory_tls_pair(pki, app, stdlib=stdlib, server_side=True)
        await scenario(tls, wire, client, app)
        async with asyncio.timeout(5):
            while LOST not in app.calls:
                await asyncio.sleep(0)
        seen["sslproto" if stdlib else "aiotls"] = (lifecycle(app), bytes(app.data),
                                                    type(app.exc).__name__)
    assert seen["aiotls"] == seen["sslproto"], seen


async def test_transport_api_edges_match_sslproto(pki: PKI) -> None:
    """Return values and exception types of the transport's API at its edges (bad types,
    half-close, limits, repeated calls) are asyncio's own sslproto's."""
    seen = {}
    for stdlib in (True, False):
        app = RecordingProtocol()
        tls, wire, server = await memory_tls_pair(pki, app, stdlib=stdlib)
        t = app.transport
        seen["sslproto" if stdlib else "aiotls"] = [
            _outcome(partial(t.write, "text")),
            _outcome(partial(t.write, b"")),
            _outcome(t.can_write_eof),
            _outcome(t.write_eof),
            _outcome(t.is_reading),
            _outcome(t.pause_reading), _outcome(t.pause_reading), _outcome(t.is_reading),
            _outcome(t.resume_reading), _outcome(t.resume_reading), _outcome(t.is_reading),
            _outcome(t.get_write_buffer_limits),
            _outcome(partial(t.set_write_buffer_limits, high=10, low=20)),
            _outcome(partial(t.set_write_buffer_limits, high=-1)),
            _outcome(partial(t.set_write_buffer_limits, high=100)),
            _outcome(t.get_write_buffer_limits),
            _outcome(t.get_read_buffer_limits),
            _outcome(partial(t.set_read_buffer_limits, high=10, low=20)),
            _outcome(t.is_closing),
            _outcome(t.close), _outcome(t.is_closing), _outcome(t.abort),
        ]
        async with asyncio.timeout(5):
            while LOST not in app.calls:
                await asyncio.sleep(0)
    assert seen["aiotls"] == seen["sslproto"], seen


async def test_transport_api_after_connection_lost_matches_sslproto(pki: PKI) -> None:
    """Once the connection is lost, the transport's API answers as asyncio's sslproto's:
    nothing raises, the closed state and TLS details stay readable, get_protocol() is None
    (both protocols let go of the application's objects then), and calls that would reach
    the application (limits that pause it, abort) reach nothing."""
    seen = {}
    for stdlib in (True, False):
        app = RecordingProtocol()
        tls, wire, server = await memory_tls_pair(pki, app, stdlib=stdlib)
        t = app.transport
        t.write(b"x" * 100)
        t.close()
        server.receive_data(wire.take())
        feed(tls, server.data_to_send())
        async with asyncio.timeout(5):
            while LOST not in app.calls:
                await asyncio.sleep(0)
        calls_before = list(app.calls)
        seen["sslproto" if stdlib else "aiotls"] = [
            _outcome(t.is_closing),
            _outcome(t.get_protocol),
            t.get_extra_info("ssl_object") is not None,
            t.get_extra_info("cipher") is not None,
            _outcome(partial(t.get_extra_info, "peername")),
            _outcome(partial(t.set_write_buffer_limits, high=1, low=0)),
            _outcome(t.get_write_buffer_size),
            _outcome(partial(t.write, b"late")),
            _outcome(t.pause_reading), _outcome(t.resume_reading),
            _outcome(t.close), _outcome(t.abort), _outcome(t.is_closing),
        ]
        for _ in range(5):
            await asyncio.sleep(0)
        assert app.calls == calls_before  # no callback after connection_lost
    assert seen["aiotls"] == seen["sslproto"], seen


async def test_closed_connections_are_freed_without_the_cycle_collector(pki: PKI) -> None:
    """After connection_lost nothing of a connection is left in a reference cycle: with the
    cyclic garbage collector off, both ends' TLS connections (engine, tlslite state,
    buffers) are freed as soon as the application drops its protocol and transport, as
    asyncio's sslproto's are.  (Objects left in cycles would wait for the collector, whose
    passes over them slowed a busy server by several percent.)"""
    import gc
    import weakref

    server_conns: list[Any] = []

    class Server(RecordingProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            server_conns.append(weakref.ref(transport.get_extra_info("tls_connection")))

    servers: list[Server] = []

    def factory() -> Server:
        servers.append(Server())
        return servers[-1]

    server = await aa.create_server(factory, HOST, 0, ssl=pki.server_context())
    port = server.sockets[0].getsockname()[1]
    gc.collect()
    gc.disable()
    try:
        async with asyncio.timeout(10):
            transport, client = await aa.create_connection(
                RecordingProtocol, HOST, port, ssl=pki.client_context(), server_hostname=SNI)
            client_conn = weakref.ref(transport.get_extra_info("tls_connection"))
            transport.write(b"hello")
            await servers[0].received.wait()
            transport.close()
            await client.lost.wait()
            await servers[0].lost.wait()
            for _ in range(5):  # let the loop drop its own references (callbacks, handles)
                await asyncio.sleep(0)
            assert client_conn() is not None  # still held by the application
            del transport, client
            servers.clear()
            assert client_conn() is None, gc.get_referrers(client_conn())
            assert server_conns and server_conns[0]() is None, \
                gc.get_referrers(server_conns[0]())
    finally:
        gc.enable()
        server.close()
        await server.wait_closed()


async def test_writelines_of_str_fails_at_the_call(pki: PKI) -> None:
    """A wrong type given to writelines() raises TypeError at the call and the connection
    goes on (sslproto accepts it and then aborts the connection with a fatal error)."""
    app = RecordingProtocol()
    tls, wire, server = await memory_tls_pair(pki, app)
    with pytest.raises(TypeError):
        app.transport.writelines([b"ok", "text"])
    app.transport.write(b"still fine")
    server.receive_data(wire.take())
    got = b"".join(e.data for e in server.events() if isinstance(e, aiotls.events.DataReceived))
    assert got == b"still fine"
    assert not app.transport.is_closing() and LOST not in app.calls


class SmallBuffers(BufferedRecorder):
    def __init__(self) -> None:
        super().__init__(3)


async def _peer_sends_one_record_then_closes(tls: Any, wire: MemoryTransport,
                                             server: aiotls.TLSConnection,
                                             app: RecordingProtocol) -> None:
    # one short record per read: the path of interactive traffic (TLSConnection.receive)
    server.send_data(b"one record")
    feed(tls, server.data_to_send())
    if LOST not in app.calls:
        server.close()
        feed(tls, server.data_to_send())


@pytest.mark.parametrize(("scenario", "app_type"), [
    (_peer_closes, RecordingProtocol), (_peer_closes_while_paused, RecordingProtocol),
    (_abort, RecordingProtocol), (_writes_after_close_ignored, RecordingProtocol),
    (_peer_closes, RaisingProtocol), (_peer_closes, KeepOpenProtocol),
    (_peer_closes, SmallBuffers), (_peer_closes_while_paused, SmallBuffers),
    (_peer_sends_one_record_then_closes, RecordingProtocol),
    (_peer_sends_one_record_then_closes, RaisingProtocol),
    (_peer_sends_one_record_then_closes, SmallBuffers),
], ids=["peer-closes", "peer-closes-while-paused", "abort", "writes-after-close",
        "data_received-raises", "eof_received-returns-true", "buffered-peer-closes",
        "buffered-peer-closes-while-paused", "one-record", "one-record-data_received-raises",
        "buffered-one-record"])
async def test_lifecycle_matches_sslproto(pki: PKI, scenario: Any, app_type: Any,
                                          caplog: pytest.LogCaptureFixture) -> None:
    """The application protocol's callbacks, data and connection_lost argument, and what
    reaches the loop's exception handler, are those asyncio's own sslproto gives in the
    same scenario, driven the same way."""
    seen = {}
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    for stdlib in (True, False):
        handled: list[str] = []

        def handler(_: Any, context: dict[str, Any], handled: list[str] = handled) -> None:
            handled.append(type(context.get("exception")).__name__)

        loop.set_exception_handler(handler)
        app = app_type()
        try:
            tls, wire, server = await memory_tls_pair(pki, app, stdlib=stdlib)
            await scenario(tls, wire, server, app)
            async with asyncio.timeout(5):
                while LOST not in app.calls:
                    await asyncio.sleep(0)
        finally:
            loop.set_exception_handler(previous)
        seen["sslproto" if stdlib else "aiotls"] = (lifecycle(app), bytes(app.data),
                                                    type(app.exc).__name__, handled)
    assert seen["aiotls"] == seen["sslproto"], seen


@pytest.mark.parametrize("paused", [False, True], ids=["reading", "paused"])
async def test_no_data_after_close(pki: PKI, paused: bool) -> None:
    """After transport.close() the application gets no more data ("no more data will be
    received"): what the peer sent meanwhile, or while reading was paused, is decrypted
    (the peer's close_notify must be seen) but not delivered, and the close stays clean.
    (sslproto ends such a close with OpenSSL's APPLICATION_DATA_AFTER_CLOSE_NOTIFY error,
    although RFC 8446 6.1 lets the peer send until its own close_notify.)"""
    app = RecordingProtocol()
    tls, wire, server = await memory_tls_pair(pki, app)
    server.send_data(b"before")
    feed(tls, server.data_to_send())
    if paused:
        app.transport.pause_reading()
        server.send_data(b"held")
        feed(tls, server.data_to_send())
    app.transport.close()  # sends close_notify
    server.send_data(b"after")  # crosses it
    server.receive_data(wire.take())  # the client's close_notify: the server answers
    feed(tls, server.data_to_send())
    async with asyncio.timeout(5):
        while not wire.closing or LOST not in app.calls:
            await asyncio.sleep(0)
    assert bytes(app.data) == b"before"
    assert app.exc is None
    assert lifecycle(app)[-1] == LOST and DATA not in lifecycle(app)[2:]


class PauseOnce(RecordingProtocol):
    """Pauses reading in its first data_received."""

    def data_received(self, data: bytes) -> None:
        first = not self.data
        super().data_received(data)
        if first:
            self.transport.pause_reading()


class BufferedPauseOnce(BufferedRecorder):
    """A BufferedProtocol that pauses reading in its first buffer_updated."""

    def buffer_updated(self, nbytes: int) -> None:
        first = not self.data
        super().buffer_updated(nbytes)
        if first:
            self.transport.pause_reading()


@pytest.mark.parametrize("buffered", [False, True], ids=["protocol", "buffered"])
@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3],
                         ids=["tls1.2", "tls1.3"])
async def test_data_arriving_right_after_resume_reading_waits_for_held_data(
        pki: PKI, buffered: bool, version: ssl.TLSVersion) -> None:
    """resume_reading() feeds held-back ciphertext on the next loop iteration; a read or
    the EOF arriving before that must queue behind it, not overtake it."""
    app: Any = BufferedPauseOnce(64 * KiB) if buffered else PauseOnce()
    tls, wire, server = await memory_tls_pair(pki, app, version=version)
    parts = [make_payload(100 * KiB + i, seed=40 + i) for i in range(3)]
    cipher = []
    for part in parts:
        server.send_data(part)
        cipher.append(server.data_to_send())
    server.close()
    cipher.append(server.data_to_send())  # close_notify
    tls.data_received(cipher[0])  # the app pauses in its first callback
    assert app.transport.is_reading() is False
    tls.data_received(cipher[1])  # held back while paused
    app.transport.resume_reading()  # takes effect on the next loop iteration...
    tls.data_received(cipher[2])  # ...and these arrive before it
    tls.data_received(cipher[3])
    tls.eof_received()
    async with asyncio.timeout(10):
        while LOST not in app.calls:
            await asyncio.sleep(0)
    assert digest(app.data) == digest(b"".join(parts))
    assert app.exc is None
    assert app.calls[-2:] == [EOF, LOST]


class SwitchToPlainProtocol(BufferedRecorder):
    """Hands the transport to a plain Protocol in its first buffer_updated."""

    def __init__(self) -> None:
        super().__init__(1000)
        self.successor = RecordingProtocol()
        self.types: list[type] = []

    def buffer_updated(self, nbytes: int) -> None:
        super().buffer_updated(nbytes)
        if self.transport.get_protocol() is self:
            original = self.successor.data_received

            def data_received(data: bytes) -> None:
                self.types.append(type(data))
                original(data)

            self.successor.data_received = data_received  # type: ignore[method-assign]
            self.transport.set_protocol(self.successor)


async def test_switch_from_buffered_to_plain_protocol_mid_batch(pki: PKI) -> None:
    payload = make_payload(200 * KiB, seed=31)
    async with asyncio.timeout(30), \
            tls_server(pki.server_context(), lambda: Sender(payload)) as srv:
        transport, first = await connect(pki.client_context(), srv.port, SwitchToPlainProtocol)
        transport.write(b"go")
        await asyncio.wait_for(first.successor.lost.wait(), 20)
    assert digest(bytes(first.data) + bytes(first.successor.data)) == digest(payload)
    assert first.types and set(first.types) == {bytes}  # never a view of a lent buffer
    assert first.problems == []


# --- 9. set_protocol ------------------------------------------------------------------------------


async def test_set_protocol(pki: PKI) -> None:
    async with asyncio.timeout(20), tls_server(pki.server_context(), EchoProtocol) as srv:
        transport, a = await connect(pki.client_context(), srv.port)
        transport.write(b"to A")
        await until(lambda: len(a.data) >= 4, a.received)

        b = RecordingProtocol()
        transport.set_protocol(b)
        assert transport.get_protocol() is b
        transport.write(b"to B")
        await until(lambda: len(b.data) >= 4, b.received)
        assert bytes(a.data) == b"to A" and bytes(b.data) == b"to B"

        c = BufferedRecorder(5)
        transport.set_protocol(c)
        assert transport.get_protocol() is c
        message = make_payload(50_000, seed=9)
        transport.write(message)
        await until(lambda: len(c.data) >= len(message), c.received)
        transport.close()
        await asyncio.wait_for(c.lost.wait(), 5)
        await asyncio.sleep(0.05)
    assert bytes(a.data) == b"to A" and bytes(b.data) == b"to B"
    assert bytes(c.data) == message and c.problems == []
    assert c.exc is None
    assert a.calls == [MADE, DATA]  # nothing after the switch
    assert b.calls == [DATA]


# --- 10. errors -----------------------------------------------------------------------------------


async def test_certificate_error(pki: PKI, other_ca: CA) -> None:
    cctx = aiotls.TLSContext(ssl.PROTOCOL_TLS_CLIENT)
    cctx.load_verify_locations(cadata=other_ca.cert_pem)  # not the CA that signed the server
    created: list[RecordingProtocol] = []

    def factory() -> RecordingProtocol:
        created.append(RecordingProtocol())
        return created[-1]

    async with asyncio.timeout(10), tls_server(pki.server_context()) as srv:
        with pytest.raises(aiotls.CertificateError) as info:
            await connect(cctx, srv.port, factory)
        assert isinstance(info.value, ssl.SSLCertVerificationError)
        server = await srv.accepted()
        await asyncio.sleep(0.2)
        assert server.calls == []
        assert all(p.calls == [] for p in created)


async def test_garbage_mid_stream(pki: PKI) -> None:
    def send_garbage(peer: ManualPeer) -> None:
        peer.writer.write(b"\x17\x03\x03\x00\x10" + os.urandom(16))

    async with asyncio.timeout(10), \
            manual_tls_server(pki.server_context(), send_garbage) as (port, peers):
        transport, client = await connect(pki.client_context(), port)
        await asyncio.wait_for(client.lost.wait(), 5)
        await asyncio.sleep(0.05)
        assert lifecycle(client) == [MADE, LOST]
        assert isinstance(client.exc, PeerMisbehaved), repr(client.exc)
        assert client.exc.alert is AlertDescription.bad_record_mac
        assert transport.is_closing()
        await asyncio.wait_for(peers[0].eof.wait(), 2)


# --- 11. many small writes ------------------------------------------------------------------------


async def test_many_small_writes(pki: PKI) -> None:
    messages = [b"%09d\n" % i for i in range(10_000)]
    async with asyncio.timeout(30), tls_server(pki.server_context()) as srv:
        transport, client = await connect(pki.client_context(), srv.port)
        server = await srv.connected()
        start = time.monotonic()
        for message in messages:
            transport.write(message)
        transport.close()
        await asyncio.wait_for(server.lost.wait(), 20)
        elapsed = time.monotonic() - start
    assert bytes(server.data) == b"".join(messages)
    assert elapsed < 10, elapsed
    assert lifecycle(server) == [MADE, DATA, EOF, LOST] and server.exc is None


# --- 12. argument validation ----------------------------------------------------------------------


@pytest.mark.parametrize("timeout_kw", ["ssl_handshake_timeout", "ssl_shutdown_timeout"])
@pytest.mark.parametrize("value", [0, -1])
async def test_timeouts_must_be_positive(pki: PKI, timeout_kw: str, value: float) -> None:
    async with asyncio.timeout(10), tls_server(pki.server_context()) as srv:
        with pytest.raises(ValueError, match=timeout_kw):
            await connect(pki.client_context(), srv.port, **{timeout_kw: value})
        with pytest.raises(ValueError, match=timeout_kw):
            await aa.create_server(RecordingProtocol, HOST, 0, ssl=pki.server_context(),
                                   **{timeout_kw: value})
        assert srv.protocols == []  # rejected before connecting


async def test_argument_validation(pki: PKI) -> None:
    async with asyncio.timeout(10), tls_server(pki.server_context()) as srv:
        with pytest.raises(TypeError):
            await aa.create_connection(RecordingProtocol, HOST, srv.port,
                                       ssl=pki.stdlib_client_context(), server_hostname=SNI)
        with pytest.raises(TypeError):
            await aa.create_connection(RecordingProtocol, HOST, srv.port, ssl="yes please")
        with pytest.raises(TypeError):
            await aa.create_server(RecordingProtocol, HOST, 0, ssl=pki.stdlib_server_context())
        with pytest.raises(TLSConfigurationError):
            await aa.create_server(RecordingProtocol, HOST, 0,
                                   ssl=aiotls.TLSContext(ssl.PROTOCOL_TLS_SERVER))
        with pytest.raises(ValueError, match="server_hostname"):
            await aa.create_connection(RecordingProtocol, HOST, srv.port, server_hostname=SNI)
        with pytest.raises(ValueError, match="only meaningful with ssl"):
            await aa.create_connection(RecordingProtocol, HOST, srv.port,
                                       ssl_handshake_timeout=1.0)


# --- start_tls / upgrade_stream: the same contract for upgraded connections ----------------------


async def test_start_tls(pki: PKI) -> None:
    """``start_tls`` works on any loop's plain TCP transport (default loop and uvloop)."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(10), tls_server(pki.server_context(), EchoProtocol) as srv:
        plain, protocol = await loop.create_connection(RecordingProtocol, HOST, srv.port)
        try:
            transport = await aa.start_tls(plain, protocol, pki.client_context(),
                                           server_hostname=SNI)
        except BaseException:
            plain.close()
            raise
        assert transport.get_protocol() is protocol
        assert transport.get_extra_info("cipher") is not None
        assert transport.get_extra_info("peername") == (HOST, srv.port)
        transport.write(b"upgraded")
        await until(lambda: len(protocol.data) >= 8, protocol.received)
        assert bytes(protocol.data) == b"upgraded"
        transport.close()
        await asyncio.wait_for(protocol.lost.wait(), 5)
        # connection_made was not called again for the upgraded transport
        assert lifecycle(protocol) in ([MADE, DATA, LOST], [MADE, DATA, EOF, LOST])
        assert protocol.exc is None

        plain, protocol = await loop.create_connection(RecordingProtocol, HOST, srv.port)
        try:
            with pytest.raises(TypeError):
                await aa.start_tls(plain, protocol, pki.stdlib_client_context(),
                                   server_hostname=SNI)
            with pytest.raises(ValueError, match="ssl_handshake_timeout"):
                await aa.start_tls(plain, protocol, pki.client_context(), server_hostname=SNI,
                                   ssl_handshake_timeout=0)
        finally:
            plain.close()


async def test_upgrade_stream(pki: PKI) -> None:
    async with asyncio.timeout(10), tls_server(pki.server_context(), EchoProtocol) as srv:
        reader, writer = await asyncio.open_connection(HOST, srv.port)
        try:
            await aa.upgrade_stream(writer, pki.client_context(), server_hostname=SNI)
            assert writer.get_extra_info("tls_version") in ("TLSv1.2", "TLSv1.3")
            writer.write(b"over TLS\n")
            assert await reader.readline() == b"over TLS\n"
        finally:
            writer.close()
        await asyncio.wait_for(writer.wait_closed(), 5)


@pytest.mark.timeout(60)
async def test_writes_during_handshake_pause_and_resume_the_app(pki: PKI) -> None:
    """Data written before the handshake completes counts for flow control, and the app is
    resumed once it has been flushed after the handshake."""
    class Writer(asyncio.Protocol):
        def __init__(self) -> None:
            self.paused = 0
            self.resumed = asyncio.Event()

        def pause_writing(self) -> None:
            self.paused += 1

        def resume_writing(self) -> None:
            self.resumed.set()

    received = bytearray()
    done = asyncio.Event()

    class Sink(asyncio.Protocol):
        def data_received(self, data: bytes) -> None:
            received.extend(data)
            if len(received) >= 600_000:
                done.set()

    loop = asyncio.get_running_loop()
    server = await aiotls.asyncio.create_server(Sink, "127.0.0.1", 0, ssl=pki.server_context())
    port = server.sockets[0].getsockname()[1]
    app = Writer()
    tls = aiotls.asyncio.TLSProtocol(loop, app, pki.client_context(), loop.create_future(),
                                     server_hostname="localhost")
    async with asyncio.timeout(20):
        transport, _ = await loop.create_connection(lambda: tls, "127.0.0.1", port)
        app_transport = tls._app_transport
        app_transport.write(b"x" * 600_000)  # before the handshake: above the 512 KiB mark
        assert app.paused == 1
        await app.resumed.wait()  # flushed after the handshake, then the app may write again
        await done.wait()
    assert bytes(received) == b"x" * 600_000
    app_transport.close()
    server.close()
    await server.wait_closed()


# --- large writes reach the transport once per loop iteration --------------------------------


class CountingTransport(MemoryTransport):
    """Records each call that hands ciphertext over, as ``(method, bytes)``."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, int]] = []

    def write(self, data: Any) -> None:
        self.calls.append(("write", len(data)))
        super().write(data)

    def writelines(self, list_of_data: Any) -> None:
        chunks = list(list_of_data)
        self.calls.append(("writelines", sum(map(len, chunks))))
        for chunk in chunks:
            super().write(chunk)


async def coalescing_pair(pki: PKI) -> tuple[Any, CountingTransport, aiotls.TLSConnection,
                                             RecordingProtocol]:
    app = RecordingProtocol()
    counting = CountingTransport()
    tls, _, server = await memory_tls_pair(pki, app, wire=counting)
    counting.calls.clear()  # (the handshake's)
    return tls, counting, server, app


async def test_large_writes_reach_the_transport_together_in_order(pki: PKI) -> None:
    """Writes of a record or more wait for the end of the loop iteration and then go down
    in one writelines call, in order, with a small write made after them: a 64 KiB write
    alone would leave its last 88 bytes as a TCP segment of their own."""
    tls, wire, server, app = await coalescing_pair(pki)
    parts = [os.urandom(65536), os.urandom(70000), b"tail", os.urandom(16384)]
    for part in parts:
        app.transport.write(part)
    assert wire.calls == [] and wire.out == b""  # nothing yet, not even the small write
    queued = app.transport.get_write_buffer_size()
    assert queued > sum(map(len, parts))  # the records, counted for flow control
    await asyncio.sleep(0)
    assert wire.calls == [("writelines", queued)]
    assert app.transport.get_write_buffer_size() == 0
    server.receive_data(wire.take())
    assert data_of(server) == b"".join(parts)


async def test_small_writes_go_down_at_once(pki: PKI) -> None:
    """Interactive traffic is not delayed: a write below a record reaches the transport in
    the call itself."""
    tls, wire, server, app = await coalescing_pair(pki)
    for n in (1, 100, 16383):
        app.transport.write(b"q" * n)
        assert wire.calls[-1][0] == "write" and wire.calls[-1][1] > n
    server.receive_data(wire.take())
    assert data_of(server) == b"q" * (1 + 100 + 16383)


async def test_close_after_large_write_sends_the_data_then_close_notify(pki: PKI) -> None:
    tls, wire, server, app = await coalescing_pair(pki)
    payload = os.urandom(200_000)
    app.transport.write(payload)
    app.transport.close()
    server.receive_data(wire.take())
    events = server.events()
    assert b"".join(e.data for e in events if isinstance(e, DataReceived)) == payload
    kinds = [type(e) for e in events]
    assert CloseNotifyReceived in kinds
    assert DataReceived not in kinds[kinds.index(CloseNotifyReceived):]  # data first


async def test_abort_after_large_write_sends_nothing(pki: PKI) -> None:
    tls, wire, server, app = await coalescing_pair(pki)
    app.transport.write(os.urandom(100_000))
    app.transport.abort()
    assert app.transport.get_write_buffer_size() == 0
    await asyncio.sleep(0)
    assert wire.calls == [] and wire.out == b""


async def test_writing_in_a_loop_pauses_the_application(pki: PKI) -> None:
    """An application writing large chunks without yielding is paused once the queued
    records pass the high-water mark, and resumed when they have gone down."""
    tls, wire, server, app = await coalescing_pair(pki)
    app.transport.set_write_buffer_limits(high=300_000)
    written = 0
    while not app.writing_paused:
        app.transport.write(b"w" * 65536)
        written += 65536
        assert written < 1_000_000
    assert 300_000 <= app.transport.get_write_buffer_size() < 300_000 + 70_000
    await asyncio.sleep(0)
    assert not app.writing_paused and app.resume_count == 1
    server.receive_data(wire.take())
    assert data_of(server) == b"w" * written


async def test_connection_lost_before_the_queued_records_went_down(pki: PKI) -> None:
    """The connection drops while large writes wait for the end of the iteration: the
    records are dropped and the paused application gets connection_lost and nothing after
    it (no resume_writing)."""
    tls, wire, server, app = await coalescing_pair(pki)
    while not app.writing_paused:
        app.transport.write(b"w" * 65536)
    tls.connection_lost(ConnectionResetError("peer reset"))
    async with asyncio.timeout(5):
        await app.lost.wait()
    for _ in range(3):
        await asyncio.sleep(0)
    assert app.resume_count == 0 and app.calls[-1] == LOST
    assert wire.calls == [] and app.transport.get_write_buffer_size() == 0



class JoiningTransport(MemoryTransport):
    """Counts writes; its ``writelines`` is asyncio's default (join, then one write)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[int] = []

    def write(self, data: Any) -> None:
        self.writes.append(len(data))
        super().write(data)


async def test_large_writes_are_not_joined_where_writelines_would_copy(pki: PKI) -> None:
    """Where writelines() is asyncio's default, which joins its arguments into one new
    buffer (the default loop before Python 3.12; a batch is up to the write high-water
    mark, an allocation that malloc maps and unmaps each time), each write's records go
    down in a write() of their own, at the end of the iteration and in order."""
    app = RecordingProtocol()
    wire = JoiningTransport()
    _, _, server = await memory_tls_pair(pki, app, wire=wire)
    wire.writes.clear()  # (the handshake's)
    chunks = [make_payload(64 * 1024, seed) for seed in range(3)]
    for chunk in chunks:
        app.transport.write(chunk)
    assert not wire.writes  # held for the end of the iteration
    await asyncio.sleep(0)
    assert len(wire.writes) == 3 and max(wire.writes) < 64 * 1024 + 200, wire.writes
    server.receive_data(wire.take())
    assert data_of(server) == b"".join(chunks)
