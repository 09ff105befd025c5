"""aiotls versus stdlib asyncio ``ssl`` and uvloop's native TLS, in one process run.

Usage::

    python benchmarks/bench.py            # quick run (small sizes), prints the table
    python benchmarks/bench.py --full     # the sizes of docs/performance.md
    python benchmarks/bench.py --only Streams concurrent   # rows whose name has a word
    python benchmarks/bench.py --json results.json --plot results.png

Every scenario runs for each implementation back to back in this process, over
loopback TCP with client and server in the same event loop (so each figure is
the CPU cost of *both* ends, like for like):

* ``stdlib``         asyncio default loop + ``ssl`` (OpenSSL)
* ``aiotls``         asyncio default loop + aiotls
* ``uvloop``         uvloop + ``ssl`` (uvloop's own TLS protocol, OpenSSL)
* ``aiotls+uvloop``  uvloop + aiotls
* ``facade``         asyncio default loop's own TLS (``sslproto``) handed an aiotls
                     context: the ``ssl`` facade, ``wrap_bio()`` -> ``aiotls.compat.TLSObject``
* ``facade+uvloop``  uvloop's own TLS protocol handed an aiotls context

One row per API users read through, each end using that API:

* bulk (client -> server in 64 KiB writes, then a one-byte acknowledgement), TLS 1.3
  AES-128-GCM, received by a ``BufferedProtocol`` sink, a ``Protocol`` sink
  (``data_received``), and **Streams** at both ends (``start_server`` handler reading
  1 MiB at a time; client ``write`` + ``drain``).  ChaCha20 and TLS 1.2 bulk rows use
  the ``BufferedProtocol`` sink.  The aiotls columns use ``aiotls.asyncio``
  (``create_server``/``create_connection``, ``start_server``/``open_connection``), the
  others asyncio's own functions with the column's context.
* echo of 64 B messages over ``Protocol`` and over Streams.
* ``aiotls.anyio vs anyio TLSStream`` rows (bulk, echo; from ``bench_anyio.py``): here the
  ``stdlib``/``uvloop`` columns are anyio's own ``TLSStream`` over ``ssl``, the ``aiotls``
  columns :class:`aiotls.anyio.TLSStream`, the facade columns anyio's ``TLSStream`` handed
  an aiotls context; on anyio's asyncio backend (default loop, or uvloop) and on trio
  (no uvloop there: those cells print ``-``).
* handshakes (full, resumed; over loopback and in memory), RSS per idle connection.
  Every aiotls context uses X25519 (as OpenSSL 3.0 does in the stdlib columns), except in
  the X25519MLKEM768 rows: full handshakes with X25519 and with X25519MLKEM768 back to back
  in the aiotls columns only (this OpenSSL has no ML-KEM: ``-`` elsewhere), and the ratio
  of their times per handshake (the hybrid's cost; see docs/configuration.md).
* ``concurrent``: N connections (500; 5000 with ``--full``) started at once
  (``asyncio.gather``), each a full TLS 1.3 handshake and then a 1 KiB echo round trip over
  Streams; every implementation in a fresh interpreter.  Rows: wall time, peak RSS of that
  process (``ru_maxrss``) and failures (exceptions, wrong echoes; must be 0).  See
  :func:`concurrent_echo` for the listen backlog.

Ratios printed are aiotls/stdlib (default loop), aiotls+uvloop/uvloop, facade/stdlib and
facade+uvloop/uvloop, within one row.  For the "higher is better" rows (column ``best``:
``high``) a ratio above 1 means aiotls is faster; for the "lower is better" rows (``low``:
memory, wall time) a ratio below 1 means aiotls is better (uses less memory, takes less time).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import json
import os
import platform
import resource
import socket
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import anyio
import bench_anyio
import uvloop

import aiotls
import aiotls.asyncio as aio
from aiotls.testing import generate_pki

IMPLS = ("stdlib", "aiotls", "facade", "uvloop", "aiotls+uvloop", "facade+uvloop")
#: The columns with aiotls contexts: the only ones that can do X25519MLKEM768 (the stdlib's
#: and uvloop's OpenSSL here is 3.0, without ML-KEM: their cells print ``-``).
AIOTLS_IMPLS = tuple(name for name in IMPLS if name.startswith(("aiotls", "facade")))
#: The groups of every aiotls context but the X25519MLKEM768 rows'.
X25519_GROUPS = ["x25519", "secp256r1", "secp384r1"]
HYBRID_GROUPS = ["x25519mlkem768", "x25519", "secp256r1", "secp384r1"]
#: the ratios reported: (aiotls name, baseline)
PAIRS = (("aiotls", "stdlib"), ("aiotls+uvloop", "uvloop"), ("facade", "stdlib"),
         ("facade+uvloop", "uvloop"))


# --- contexts --------------------------------------------------------------------------------


def _ssl_ctx_ptr(ctx: ssl.SSLContext) -> int:
    # PySSLContext starts with PyObject_HEAD followed by the SSL_CTX pointer.
    return ctypes.c_void_p.from_address(id(ctx) + 2 * ctypes.sizeof(ctypes.c_void_p)).value or 0


def _set_tls13_suite(ctx: ssl.SSLContext, suite: str) -> None:
    """The stdlib cannot choose TLS 1.3 suites; call OpenSSL's SSL_CTX_set_ciphersuites."""
    import _ssl

    lib = ctypes.CDLL(_ssl.__file__)
    fn = lib.SSL_CTX_set_ciphersuites
    fn.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    if fn(_ssl_ctx_ptr(ctx), suite.encode()) != 1:
        raise RuntimeError(f"OpenSSL refused TLS 1.3 suite {suite}")


@dataclass
class Suite:
    label: str
    version: str
    aiotls_name: str
    openssl_name: str


SUITES = {
    "tls13-aes128gcm": Suite("TLS 1.3 AES-128-GCM", "TLSv1.3", "TLS_AES_128_GCM_SHA256",
                             "TLS_AES_128_GCM_SHA256"),
    "tls13-chacha20": Suite("TLS 1.3 ChaCha20-Poly1305", "TLSv1.3",
                            "TLS_CHACHA20_POLY1305_SHA256", "TLS_CHACHA20_POLY1305_SHA256"),
    "tls12-aes128gcm": Suite("TLS 1.2 ECDHE-ECDSA-AES128-GCM", "TLSv1.2",
                             "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256"),
}


class ResumingContext(ssl.SSLContext):
    """An ``ssl.SSLContext`` whose connections resume ``session``.

    asyncio's and uvloop's ``create_connection`` take no session argument; both build their
    ``SSLObject`` with ``wrap_bio``, so this is where the session goes in.
    """

    session: ssl.SSLSession | None = None

    def wrap_bio(self, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO, server_side: bool = False,
                 server_hostname: str | bytes | None = None,
                 session: ssl.SSLSession | None = None) -> ssl.SSLObject:
        return super().wrap_bio(incoming, outgoing, server_side, server_hostname,
                                session or self.session)


class ResumingTLSContext(aiotls.TLSContext):
    """The same for an aiotls context handed to the loop's own TLS (the ``ssl`` facade)."""

    _bench_session: aiotls.TLSSession | None = None  # (private: changes no setting)

    def wrap_bio(self, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO, server_side: bool = False,
                 server_hostname: str | bytes | None = None,
                 session: Any = None) -> ssl.SSLObject:
        return super().wrap_bio(incoming, outgoing, server_side, server_hostname,
                                session or self._bench_session)


class Contexts:
    def __init__(self, tmp: str, key_type: Literal["ecdsa", "rsa"]) -> None:
        self.pki = generate_pki(tmp, key_type=key_type)

    def stdlib(self, suite: Suite | None) -> tuple[ssl.SSLContext, ssl.SSLContext]:
        server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server.load_cert_chain(self.pki.cert_file, self.pki.key_file)
        client = ResumingContext(ssl.PROTOCOL_TLS_CLIENT)
        client.load_verify_locations(self.pki.ca_file)
        if suite is not None:
            v = ssl.TLSVersion.TLSv1_3 if suite.version == "TLSv1.3" else ssl.TLSVersion.TLSv1_2
            for c in (server, client):
                c.minimum_version = c.maximum_version = v
                if suite.version == "TLSv1.3":
                    _set_tls13_suite(c, suite.openssl_name)
                else:
                    c.set_ciphers(suite.openssl_name)
        return server, client

    def aiotls(self, suite: Suite | None) -> tuple[aiotls.TLSContext, aiotls.TLSContext]:
        server = aiotls.TLSContext(ssl.PROTOCOL_TLS_SERVER)
        server.load_cert_chain(self.pki.cert_file, self.pki.key_file)
        client = ResumingTLSContext(ssl.PROTOCOL_TLS_CLIENT)
        client.load_verify_locations(self.pki.ca_file)
        for c in (server, client):  # (X25519, as the stdlib's OpenSSL 3.0 columns; the
            c.set_groups(X25519_GROUPS)  # X25519MLKEM768 rows set their own groups)
        if suite is not None:
            v = ssl.TLSVersion.TLSv1_3 if suite.version == "TLSv1.3" else ssl.TLSVersion.TLSv1_2
            for c in (server, client):
                c.minimum_version = c.maximum_version = v
                c.set_ciphers(suite.aiotls_name)
        return server, client


# --- one implementation's server/client plumbing ---------------------------------------------


StreamHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Impl:
    def __init__(self, name: str, contexts: Contexts, suite: Suite | None) -> None:
        self.name = name
        #: aiotls's own asyncio adapter (aiotls.asyncio)
        self.uses_aiotls = name.startswith("aiotls")
        #: aiotls contexts handed to the loop's own TLS machinery (wrap_bio: the ssl facade)
        self.facade = name.startswith("facade")
        self.server_ctx: Any
        self.client_ctx: Any
        if self.uses_aiotls or self.facade:
            self.server_ctx, self.client_ctx = contexts.aiotls(suite)
        else:
            self.server_ctx, self.client_ctx = contexts.stdlib(suite)

    def loop_factory(self) -> Callable[[], asyncio.AbstractEventLoop]:
        return uvloop.new_event_loop if "uvloop" in self.name else asyncio.new_event_loop

    async def start_server(self, factory: Callable[[], asyncio.BaseProtocol]) -> asyncio.Server:
        if self.uses_aiotls:
            return await aio.create_server(factory, "127.0.0.1", 0, ssl=self.server_ctx,
                                           backlog=2048)
        loop = asyncio.get_running_loop()
        return await loop.create_server(factory, "127.0.0.1", 0, ssl=self.server_ctx,
                                        backlog=2048)

    async def connect(self, factory: Callable[[], asyncio.BaseProtocol],
                      port: int, session: Any = None) -> tuple[asyncio.Transport, Any]:
        if self.uses_aiotls:
            return await aio.create_connection(factory, "127.0.0.1", port, ssl=self.client_ctx,
                                               server_hostname="localhost", session=session)
        loop = asyncio.get_running_loop()
        if self.facade:
            self.client_ctx._bench_session = session
        else:
            self.client_ctx.session = session
        transport, protocol = await loop.create_connection(
            factory, "127.0.0.1", port, ssl=self.client_ctx, server_hostname="localhost")
        return transport, protocol

    async def start_streams_server(self, handler: StreamHandler,
                                   backlog: int = 2048) -> asyncio.Server:
        """``start_server`` of aiotls.asyncio, or asyncio's with this column's context."""
        start = aio.start_server if self.uses_aiotls else asyncio.start_server
        return await start(handler, "127.0.0.1", 0, ssl=self.server_ctx, backlog=backlog)

    async def open_connection(self, port: int | None = None, sock: socket.socket | None = None
                              ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """``open_connection`` of aiotls.asyncio, or asyncio's with this column's context
        (to ``port``, or over the connected ``sock``); no session is resumed."""
        if self.facade:
            self.client_ctx._bench_session = None
        elif not self.uses_aiotls:
            self.client_ctx.session = None
        where: dict[str, Any] = {"sock": sock} if sock else {"host": "127.0.0.1", "port": port}
        opener = aio.open_connection if self.uses_aiotls else asyncio.open_connection
        return await opener(ssl=self.client_ctx, server_hostname="localhost", **where)

    def run(self, coro: Callable[[], Awaitable[float]]) -> float:
        with asyncio.Runner(loop_factory=self.loop_factory()) as runner:
            return runner.run(coro())  # type: ignore[arg-type]

    def run_anyio(self, backend: str,
                  scenario: Callable[[bench_anyio.Impl], Awaitable[float]]) -> float:
        """``scenario`` of bench_anyio.py on anyio's ``backend`` (uvloop for the uvloop
        columns): the aiotls columns wrap with aiotls.anyio, the others with anyio's
        own TLSStream and this column's context (``ssl``, or aiotls's: the facade)."""
        streams = bench_anyio.Impl(self.name, self.server_ctx, self.client_ctx,
                                   aiotls_stream=self.uses_aiotls)
        options = {"use_uvloop": True} if "uvloop" in self.name else {}
        return anyio.run(scenario, streams, backend=backend, backend_options=options)


# --- protocols -------------------------------------------------------------------------------


class _Counter:
    """Counts bytes; sets ``done`` and acknowledges with one byte once ``expect`` arrived."""

    def __init__(self, expect: int) -> None:
        self.count = 0
        self.expect = expect
        self.done: asyncio.Future[None] = asyncio.get_event_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def _add(self, nbytes: int) -> None:
        self.count += nbytes
        if self.count >= self.expect > 0 and not self.done.done():
            self.done.set_result(None)
            assert self.transport is not None
            self.transport.write(b"k")  # acknowledge

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


class Sink(_Counter, asyncio.BufferedProtocol):
    """The ``BufferedProtocol`` receiver: one reused 256 KiB buffer."""

    def __init__(self, expect: int) -> None:
        super().__init__(expect)
        self.buf = bytearray(256 * 1024)

    def get_buffer(self, sizehint: int) -> memoryview:
        return memoryview(self.buf)

    def buffer_updated(self, nbytes: int) -> None:
        self._add(nbytes)


class ProtocolSink(_Counter, asyncio.Protocol):
    """The ``Protocol`` receiver: ``data_received`` counts the bytes it is handed."""

    def data_received(self, data: bytes) -> None:
        self._add(len(data))


class Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


class Client(asyncio.Protocol):
    """Writes with flow control; collects replies into a queue."""

    def __init__(self) -> None:
        self.loop = asyncio.get_event_loop()
        self.can_write = asyncio.Event()
        self.can_write.set()
        self.got = bytearray()
        self.waiter: asyncio.Future[None] | None = None
        self.want = 0
        self.closed: asyncio.Future[None] = self.loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def pause_writing(self) -> None:
        self.can_write.clear()

    def resume_writing(self) -> None:
        self.can_write.set()

    def data_received(self, data: bytes) -> None:
        self.got += data
        if self.waiter is not None and len(self.got) >= self.want and not self.waiter.done():
            self.waiter.set_result(None)

    async def read_exactly(self, n: int) -> bytes:
        while len(self.got) < n:
            self.want = n
            self.waiter = self.loop.create_future()
            await self.waiter
        out, self.got = bytes(self.got[:n]), self.got[n:]
        return out

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("lost"))


# --- scenarios -------------------------------------------------------------------------------


async def bulk(impl: Impl, total: int, receiver: Callable[[int], _Counter] = Sink,
               chunk: int = 64 * 1024) -> float:
    """MB/s moving ``total`` bytes client → server in ``chunk``-sized writes, received by
    ``receiver`` (:class:`Sink`: ``BufferedProtocol``; :class:`ProtocolSink`: ``Protocol``)."""
    sinks: list[_Counter] = []

    def sink_factory() -> asyncio.BaseProtocol:
        sinks.append(receiver(total))
        return sinks[-1]  # type: ignore[return-value]

    server = await impl.start_server(sink_factory)
    port = server.sockets[0].getsockname()[1]
    transport, client = await impl.connect(Client, port)
    payload = os.urandom(chunk)
    await asyncio.sleep(0)
    start = time.perf_counter()
    sent = 0
    while sent < total:
        await client.can_write.wait()
        transport.write(payload)
        sent += chunk
    await client.read_exactly(1)  # the server's acknowledgement after the last byte
    elapsed = time.perf_counter() - start
    transport.close()
    await client.closed
    server.close()
    await server.wait_closed()
    assert sinks[0].count >= total
    return total / elapsed / 1e6


async def _close(writer: asyncio.StreamWriter) -> None:
    """Close a stream (TLS close_notify both ways), bounded; errors at close are not timed."""
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
        async with asyncio.timeout(10):
            await writer.wait_closed()


async def bulk_streams(impl: Impl, total: int, chunk: int = 64 * 1024) -> float:
    """MB/s moving ``total`` bytes over asyncio Streams at both ends: the client writes
    ``chunk`` bytes and awaits ``drain()``; the server's ``start_server`` handler reads up
    to 1 MiB at a time until it has ``total``, then writes a one-byte acknowledgement."""
    received: list[int] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        got = 0
        while got < total:
            data = await reader.read(1024 * 1024)
            if not data:
                break
            got += len(data)
        received.append(got)
        writer.write(b"k")
        await writer.drain()
        with contextlib.suppress(OSError, ssl.SSLError):
            await reader.read()  # until the client closes
        await _close(writer)

    server = await impl.start_streams_server(handler)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await impl.open_connection(port)
    payload = os.urandom(chunk)
    start = time.perf_counter()
    for _ in range(total // chunk):
        writer.write(payload)
        await writer.drain()
    assert await reader.readexactly(1) == b"k"
    elapsed = time.perf_counter() - start
    await _close(writer)
    server.close()
    await server.wait_closed()
    assert received == [total // chunk * chunk], received
    return total / elapsed / 1e6


async def echo_streams(impl: Impl, rounds: int, size: int = 64) -> float:
    """Round trips per second of ``size``-byte messages over asyncio Streams: the server's
    handler reads up to 64 KiB and writes it back (with ``drain()``); the client writes a
    message and ``readexactly()`` the reply."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
        await _close(writer)

    server = await impl.start_streams_server(handler)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await impl.open_connection(port)
    msg = os.urandom(size)
    for _ in range(20):  # warm-up
        writer.write(msg)
        await reader.readexactly(size)
    start = time.perf_counter()
    for _ in range(rounds):
        writer.write(msg)
        await reader.readexactly(size)
    elapsed = time.perf_counter() - start
    await _close(writer)
    server.close()
    await server.wait_closed()
    return rounds / elapsed


async def echo_rtt(impl: Impl, rounds: int) -> float:
    """Round trips per second of 64-byte messages."""
    server = await impl.start_server(Echo)
    port = server.sockets[0].getsockname()[1]
    transport, client = await impl.connect(Client, port)
    msg = os.urandom(64)
    for _ in range(20):  # warm-up
        transport.write(msg)
        await client.read_exactly(64)
    start = time.perf_counter()
    for _ in range(rounds):
        transport.write(msg)
        await client.read_exactly(64)
    elapsed = time.perf_counter() - start
    transport.close()
    await client.closed
    server.close()
    await server.wait_closed()
    return rounds / elapsed


async def handshakes(impl: Impl, count: int) -> float:
    """Full handshakes per second (connect, handshake, close), one at a time."""
    server = await impl.start_server(Echo)
    port = server.sockets[0].getsockname()[1]
    for _ in range(3):  # warm-up
        transport, client = await impl.connect(Client, port)
        transport.close()
        await client.closed
    start = time.perf_counter()
    for _ in range(count):
        transport, client = await impl.connect(Client, port)
        transport.close()
        await client.closed
    elapsed = time.perf_counter() - start
    server.close()
    await server.wait_closed()
    return count / elapsed


async def resumed_handshakes(impl: Impl, count: int) -> float:
    """Resumed handshakes per second (connect with a session, handshake, close), one at a
    time, like :func:`handshakes`: every connection resumes the first one's session."""
    server = await impl.start_server(Echo)
    port = server.sockets[0].getsockname()[1]
    transport, client = await impl.connect(Client, port)
    transport.write(b"x")
    await client.read_exactly(1)  # TLS 1.3 tickets come after the handshake
    session = transport.get_extra_info("ssl_object").session
    transport.close()
    await client.closed

    async def once() -> None:
        transport, client = await impl.connect(Client, port, session)
        assert transport.get_extra_info("ssl_object").session_reused
        transport.close()
        await client.closed

    for _ in range(3):  # warm-up
        await once()
    start = time.perf_counter()
    for _ in range(count):
        await once()
    elapsed = time.perf_counter() - start
    server.close()
    await server.wait_closed()
    return count / elapsed


# --- sans-IO handshakes: both ends in memory, no event loop -----------------------------------


def _stdlib_pair(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext,
                 session: ssl.SSLSession | None) -> ssl.SSLObject:
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname="localhost", session=session)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(20):
        for obj in (client, server):
            with contextlib.suppress(ssl.SSLWantReadError):
                obj.do_handshake()
        moved = False
        if c_out.pending:
            s_in.write(c_out.read())
            moved = True
        if s_out.pending:
            c_in.write(s_out.read())
            moved = True
        if not moved:
            break
    # let the client read the TLS 1.3 tickets
    server.write(b"x")
    c_in.write(s_out.read())
    client.read(1)
    return client


def _aiotls_pair(server_ctx: aiotls.TLSContext, client_ctx: aiotls.TLSContext,
                 session: aiotls.TLSSession | None) -> aiotls.TLSConnection:
    client = aiotls.TLSConnection(client_ctx, server_hostname="localhost", session=session)
    server = aiotls.TLSConnection(server_ctx, server_side=True)
    for _ in range(20):
        a = client.data_to_send()
        if a:
            server.receive_data(a)
        b = server.data_to_send()
        if b:
            client.receive_data(b)
        if not a and not b:
            break
    server.send_data(b"x")
    client.receive_data(server.data_to_send())
    return client


def memory_handshakes(impl: Impl, count: int, resumed: bool) -> float:
    """Handshakes per second with both ends in memory (no sockets, no loop)."""
    if impl.uses_aiotls:
        first = _aiotls_pair(impl.server_ctx, impl.client_ctx, None)
        session: Any = first.session if resumed else None
        start = time.perf_counter()
        for _ in range(count):
            conn = _aiotls_pair(impl.server_ctx, impl.client_ctx, session)
            assert conn.session_reused == resumed
    else:
        first_s = _stdlib_pair(impl.server_ctx, impl.client_ctx, None)
        session = first_s.session if resumed else None
        start = time.perf_counter()
        for _ in range(count):
            obj = _stdlib_pair(impl.server_ctx, impl.client_ctx, session)
            assert obj.session_reused == resumed
    return count / (time.perf_counter() - start)


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def idle_memory(impl: Impl, count: int) -> float:
    """Bytes of RSS per idle established connection (client and server ends together)."""
    server = await impl.start_server(Echo)
    port = server.sockets[0].getsockname()[1]
    conns = []
    for _ in range(10):  # warm-up: imports, caches, first buffers
        conns.append(await impl.connect(Client, port))
    gc.collect()
    base = _rss()
    for _ in range(count):
        conns.append(await impl.connect(Client, port))
        # let the server side finish its part of the handshake
    await asyncio.sleep(0.2)
    gc.collect()
    used = _rss() - base
    for transport, _ in conns:
        transport.abort()
    await asyncio.sleep(0.1)
    server.close()
    await server.wait_closed()
    return used / count


def idle_memory_subprocess(name: str, count: int) -> float:
    """Run :func:`idle_memory` in a fresh interpreter, so memory freed by earlier scenarios
    cannot be reused and hide the cost."""
    import subprocess

    out = subprocess.run([sys.executable, __file__, "--memory-child", name, str(count)],
                         capture_output=True, text=True, timeout=600, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def _memory_child(name: str, count: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        impl = Impl(name, Contexts(tmp, "ecdsa"), None)
        print(impl.run(lambda: idle_memory(impl, count)))


# --- N simultaneous handshakes + echo, each implementation in a fresh interpreter -------------

#: the kernel's listen-queue and SYN counters reported around the concurrent run
_TCP_COUNTERS = ("ListenOverflows", "ListenDrops", "TCPSynRetrans")


def _tcp_counters() -> dict[str, int]:
    """TcpExt counters of /proc/net/netstat (this network namespace; empty off Linux)."""
    try:
        with open("/proc/net/netstat") as f:
            lines = f.read().splitlines()
    except OSError:
        return {}
    found: dict[str, int] = {}
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        prefix, *keys = names.split()
        if prefix == "TcpExt:":
            found.update(zip(keys, map(int, values.split()[1:]), strict=False))
    return {key: found[key] for key in _TCP_COUNTERS if key in found}


@contextlib.contextmanager
def _gc_timer() -> Iterator[dict[str, float]]:
    """Seconds spent in the cyclic garbage collector, and its collections, while inside."""
    spent = {"gc_s": 0.0, "gc_collections": 0.0}
    began = [0.0]

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            began[0] = time.perf_counter()
        else:
            spent["gc_s"] += time.perf_counter() - began[0]
            spent["gc_collections"] += 1

    gc.callbacks.append(callback)
    try:
        yield spent
    finally:
        gc.callbacks.remove(callback)


def _somaxconn() -> int:
    """The kernel's cap on a listen backlog (``net.core.somaxconn``; 4096 if unknown)."""
    try:
        with open("/proc/sys/net/core/somaxconn") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 4096


async def concurrent_echo(impl: Impl, n: int, size: int = 1024,
                          timeout: float = 120.0) -> dict[str, float]:
    """``n`` connections started at once (``asyncio.gather``), each a full handshake and
    then one ``size``-byte echo round trip over Streams (``start_server`` handler echoing
    until EOF; ``open_connection``, ``write``, ``readexactly``); all stay open until the
    last echo is back.  Returns the wall time from start to the last echo, the failures
    (exceptions, timeouts after ``timeout`` s, wrong echoes, server handler errors), the
    number of listeners and the change of the kernel's listen-queue and SYN-retransmission
    counters over the run.

    Listen backlog: started at once, the ``n`` connects all complete in the kernel
    (loopback) during the loop's first pass, before the same loop accepts any of them.
    One listener with ``backlog=n`` is capped at ``net.core.somaxconn`` (4096 here): with
    5000 connections ~900 SYNs were dropped and each of those connects waited the 1 s SYN
    retransmission (wall time 14.6 s instead of 9.4 s for the stdlib).  Bounding the
    connects in flight instead (a semaphore around a separate TCP connect) removed the
    drops on the default loop but not on uvloop (some dropped at 64 in flight), and it
    spread the connects over the whole run (the last one began at 10-13 s of 10-14 s on
    the default loop): the handshakes were no longer simultaneous.  So the connections
    are spread over ``ceil(n / (somaxconn / 2))`` listeners (1 for 500, 3 for 5000), each
    ``backlog=somaxconn``: every accept queue holds at most half its length, no SYN is
    dropped, and all ``n`` connections connect and handshake at once, through the plain
    ``open_connection(host, port)``.  The counters are printed to show it.
    """
    msg = os.urandom(size)
    measuring = True
    server_errors = 0
    handlers_running = 0
    handlers_done = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal server_errors, handlers_running
        handlers_running += 1
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (OSError, ssl.SSLError):
            if measuring:  # (once measured, the clients abort their connections)
                server_errors += 1
        finally:
            writer.close()
            handlers_running -= 1
            if not handlers_running and not measuring:
                handlers_done.set()

    async def one(port: int) -> asyncio.StreamWriter:
        async with asyncio.timeout(timeout):
            reader, writer = await impl.open_connection(port)
            writer.write(msg)
            if await reader.readexactly(size) != msg:
                writer.transport.abort()
                raise ValueError("the echo differs from the message")
            return writer

    backlog = _somaxconn()
    servers = [await impl.start_streams_server(handler, backlog=backlog)
               for _ in range(-(-n // max(1, backlog // 2)))]
    ports = [server.sockets[0].getsockname()[1] for server in servers]
    counters = _tcp_counters()
    start = time.perf_counter()
    with _gc_timer() as collector:
        results = await asyncio.gather(*(one(ports[i % len(ports)]) for i in range(n)),
                                       return_exceptions=True)
    wall = time.perf_counter() - start
    measuring = False
    counters = {key: value - counters[key] for key, value in _tcp_counters().items()}
    errors: dict[str, int] = {}
    for result in results:
        if isinstance(result, asyncio.StreamWriter):
            result.transport.abort()
        else:
            errors[type(result).__name__] = errors.get(type(result).__name__, 0) + 1
    if server_errors:
        errors["server handler"] = server_errors
    if errors:
        print(f"  {impl.name}: failures {errors}", file=sys.stderr, flush=True)
    for server in servers:
        server.close()
        await server.wait_closed()
    if handlers_running:  # the server ends of the aborted connections: let them finish
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(60):
                await handlers_done.wait()
    return {"wall": wall, "failures": sum(errors.values()), "listeners": len(servers),
            **collector, **counters}


def concurrent_subprocess(name: str, n: int) -> dict[str, float]:
    """:func:`concurrent_echo` in a fresh interpreter, adding its peak RSS (MiB)."""
    import subprocess

    out = subprocess.run([sys.executable, __file__, "--concurrent-child", name, str(n)],
                         stdout=subprocess.PIPE, text=True, timeout=1800, check=True)
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _concurrent_child(name: str, n: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with tempfile.TemporaryDirectory() as tmp:
        impl = Impl(name, Contexts(tmp, "ecdsa"), SUITES["tls13-aes128gcm"])
        result: dict[str, float] = {}

        async def measure() -> float:
            result.update(await concurrent_echo(impl, n))
            return result["wall"]

        impl.run(measure)
    # ru_maxrss: KiB on Linux
    result["rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def hybrid_cost(impl: Impl, count: int) -> tuple[float, ...]:
    """Full handshakes per second with X25519 and with X25519MLKEM768 (both ends' CPU),
    over loopback and in memory, back to back (see :func:`with_hybrid_cost`)."""
    figures = []
    for measure in (lambda: impl.run(lambda: handshakes(impl, count)),
                    lambda: memory_handshakes(impl, count, False)):
        for groups in (X25519_GROUPS, HYBRID_GROUPS):
            for ctx in (impl.server_ctx, impl.client_ctx):
                ctx.set_groups(groups)
            figures.append(measure())
    for ctx in (impl.server_ctx, impl.client_ctx):
        ctx.set_groups(X25519_GROUPS)
    return tuple(figures)


def with_hybrid_cost(rows: list[Row]) -> list[Row]:
    """After each X25519MLKEM768 row, its cost: time per handshake with X25519MLKEM768 over
    time per handshake with X25519 (the row before), from the best of each, per column;
    its ``runs`` are the ratios within each round (the two ran back to back)."""
    out: list[Row] = []
    for row in rows:
        out.append(row)
        if not row.scenario.endswith(": X25519MLKEM768") or len(out) < 2:
            continue
        base = out[-2]
        cost = Row(row.scenario + " cost, time vs X25519", "x", False)
        for name, value in row.values.items():
            if value and base.values.get(name):
                cost.values[name] = base.values[name] / value
                cost.runs[name] = [b / h for b, h in zip(base.runs[name], row.runs[name],
                                                          strict=True) if h]
        out.append(cost)
    return out


# --- driver ----------------------------------------------------------------------------------


@dataclass
class Row:
    scenario: str
    unit: str
    higher_is_better: bool
    values: dict[str, float] = field(default_factory=dict)
    #: every measurement, in order (``values`` keeps the best of them, or their sum)
    runs: dict[str, list[float]] = field(default_factory=dict)
    #: ``values`` are the sum of the runs (a count, e.g. failures); no ratio is printed
    count: bool = False
    #: anything else measured, per implementation (e.g. the kernel's SYN counters)
    notes: dict[str, dict[str, float]] = field(default_factory=dict)

    def ratio(self, a: str, b: str) -> float | None:
        if (not self.count and a in self.values and b in self.values and self.values[b]):
            return self.values[a] / self.values[b]
        return None

    def round_ratios(self, a: str, b: str) -> list[float]:
        """``a / b`` within each round: the two ran back to back, so slow phases of a shared
        machine hit both (a steadier figure than the ratio of the bests)."""
        if self.count:
            return []
        return [x / y for x, y in zip(self.runs.get(a, []), self.runs.get(b, []), strict=False)
                if y]


@dataclass
class RowSpec:
    """One row a :class:`Plan` fills: its name, unit and direction."""

    scenario: str
    unit: str
    higher_is_better: bool = True
    count: bool = False


@dataclass
class Plan:
    """Scenarios measured together: ``measure`` runs once per implementation and round and
    returns one figure per row of ``rows``."""

    rows: tuple[RowSpec, ...]
    contexts: Contexts
    suite: Suite | None
    measure: Callable[[Impl], tuple[float, ...]]
    impls: tuple[str, ...] = IMPLS
    #: anything else ``measure`` records per implementation (kept in the first row's notes)
    notes: dict[str, dict[str, float]] = field(default_factory=dict)


def _one(label: str, unit: str, contexts: Contexts, suite: Suite | None,
         measure: Callable[[Impl], float], impls: tuple[str, ...] = IMPLS,
         higher_is_better: bool = True) -> Plan:
    return Plan((RowSpec(label, unit, higher_is_better),), contexts, suite,
                lambda impl: (measure(impl),), impls)


def _on_anyio(backend: str, scenario: Callable[[bench_anyio.Impl], Awaitable[float]]
              ) -> Callable[[Impl], float]:
    return lambda impl: impl.run_anyio(backend, scenario)


#: the implementations that exist on trio (anyio's trio backend has no uvloop)
TRIO_IMPLS = tuple(name for name in IMPLS if "uvloop" not in name)


def build_plans(full: bool, ecdsa: Contexts, rsa: Contexts) -> list[Plan]:
    """Every scenario of the table, in order (``--full``: the sizes of docs/performance.md)."""
    mib = 1024 * 1024
    bulk_bytes = 256 * mib if full else 32 * mib
    rounds = 20000 if full else 3000
    hs = 1000 if full else 60  # per cell: longer cells average out a shared machine's bursts
    idle = 1000 if full else 300
    n_concurrent = 5000 if full else 500
    aes = SUITES["tls13-aes128gcm"]
    mb = f"{bulk_bytes // mib} MiB"

    plans: list[Plan] = [
        _one(f"bulk {aes.label}, {mb}: BufferedProtocol", "MB/s", ecdsa, aes,
             lambda impl: impl.run(lambda: bulk(impl, bulk_bytes, Sink))),
        _one(f"bulk {aes.label}, {mb}: Protocol", "MB/s", ecdsa, aes,
             lambda impl: impl.run(lambda: bulk(impl, bulk_bytes, ProtocolSink))),
        _one(f"bulk {aes.label}, {mb}: Streams", "MB/s", ecdsa, aes,
             lambda impl: impl.run(lambda: bulk_streams(impl, bulk_bytes))),
    ]
    for suite in SUITES.values():
        if suite is not aes:
            plans.append(_one(f"bulk {suite.label}, {mb}: BufferedProtocol", "MB/s", ecdsa,
                              suite, lambda impl: impl.run(lambda: bulk(impl, bulk_bytes))))
    plans += [
        _one(f"echo 64 B, TLS 1.3 ({rounds}): Protocol", "round trips/s", ecdsa, None,
             lambda impl: impl.run(lambda: echo_rtt(impl, rounds))),
        _one(f"echo 64 B, TLS 1.3 ({rounds}): Streams", "round trips/s", ecdsa, None,
             lambda impl: impl.run(lambda: echo_streams(impl, rounds))),
    ]
    vs_anyio = "aiotls.anyio vs anyio TLSStream"
    for backend, names in (("asyncio", IMPLS), ("trio", TRIO_IMPLS)):
        plans += [
            _one(f"bulk {aes.label}, {mb}: {vs_anyio} ({backend})", "MB/s", ecdsa, aes,
                 _on_anyio(backend, lambda s: bench_anyio.bulk(s, bulk_bytes)), names),
            _one(f"echo 64 B, TLS 1.3 ({rounds}): {vs_anyio} ({backend})", "round trips/s",
                 ecdsa, None, _on_anyio(backend, lambda s: bench_anyio.echo(s, rounds)),
                 names),
        ]
    plans += [
        _one(f"full handshakes TLS 1.3 X25519 ECDSA P-256 ({hs})", "handshakes/s", ecdsa,
             None, lambda impl: impl.run(lambda: handshakes(impl, hs))),
        _one(f"full handshakes TLS 1.3 X25519 RSA-2048 ({hs})", "handshakes/s", rsa, None,
             lambda impl: impl.run(lambda: handshakes(impl, hs))),
        _one(f"resumed handshakes TLS 1.3 PSK-DHE ({hs})", "handshakes/s", ecdsa, None,
             lambda impl: impl.run(lambda: resumed_handshakes(impl, hs))),
        _one(f"full handshakes TLS 1.3 ECDSA P-256, in memory ({hs})", "handshakes/s",
             ecdsa, None, lambda impl: memory_handshakes(impl, hs, False)),
        _one(f"resumed handshakes TLS 1.3 PSK-DHE, in memory ({hs})", "handshakes/s",
             ecdsa, None, lambda impl: memory_handshakes(impl, hs, True)),
        Plan(tuple(RowSpec(f"full handshakes TLS 1.3 ECDSA P-256{where} ({hs}): {group}",
                           "handshakes/s")
                   for where in ("", ", in memory") for group in ("X25519", "X25519MLKEM768")),
             ecdsa, None, lambda impl: hybrid_cost(impl, hs), AIOTLS_IMPLS),
        _one(f"RSS per idle connection ({idle} connections, both ends)", "bytes", ecdsa,
             None, lambda impl: idle_memory_subprocess(impl.name, idle),
             higher_is_better=False),
    ]
    concurrent = f"concurrent: {n_concurrent} handshakes + 1 KiB echo"
    counters: dict[str, dict[str, float]] = {}
    plans.append(Plan(
        (RowSpec(f"{concurrent}: wall time", "s", False),
         RowSpec(f"{concurrent}: peak RSS", "MiB", False),
         RowSpec(f"{concurrent}: failures", "failures", False, count=True)),
        ecdsa, aes, lambda impl: _concurrent_figures(impl.name, n_concurrent, counters),
        notes=counters))
    return plans


def selected(plans: list[Plan], only: set[str] | None) -> list[Plan]:
    """The plans with a row whose name contains one of the words of ``--only`` (all if none)."""
    return [plan for plan in plans
            if not only or any(word in spec.scenario for word in only for spec in plan.rows)]


def run_all(full: bool, only: set[str] | None, repeat: int) -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        for sub in ("e", "r"):
            os.mkdir(os.path.join(tmp, sub))
        ecdsa = Contexts(os.path.join(tmp, "e"), "ecdsa")
        rsa = Contexts(os.path.join(tmp, "r"), "rsa")
        for plan in selected(build_plans(full, ecdsa, rsa), only):
            impls = {name: Impl(name, plan.contexts, plan.suite) for name in plan.impls}
            measured: dict[str, list[tuple[float, ...]]] = {name: [] for name in impls}
            # Rounds interleave the implementations, in alternating order, so that drift
            # on a shared machine (frequency, neighbours) favours none of them.
            for round_ in range(repeat):
                order = list(impls.items())
                for name, impl in order if round_ % 2 == 0 else reversed(order):
                    figures = plan.measure(impl)
                    measured[name].append(figures)
                    for spec, value in zip(plan.rows, figures, strict=True):
                        print(f"  {spec.scenario:<76} {name:<14} {value:>12.1f} {spec.unit}",
                              file=sys.stderr, flush=True)
            for i, spec in enumerate(plan.rows):
                row = Row(spec.scenario, spec.unit, spec.higher_is_better, count=spec.count,
                          notes=plan.notes if i == 0 else {})
                for name, runs in measured.items():
                    values = [figures[i] for figures in runs]
                    row.runs[name] = values
                    best = max if spec.higher_is_better else min
                    row.values[name] = sum(values) if spec.count else best(values)
                rows.append(row)
    return rows


def _concurrent_figures(name: str, n: int, counters: dict[str, dict[str, float]]
                        ) -> tuple[float, float, float]:
    """Wall time, peak RSS and failures of :func:`concurrent_subprocess`; the kernel's
    counters go to ``counters[name]`` (summed over the rounds)."""
    result = concurrent_subprocess(name, n)
    mine = counters.setdefault(name, {})
    mine["listeners"] = result["listeners"]
    for key in ("gc_s", "gc_collections", *_TCP_COUNTERS):
        mine[key] = mine.get(key, 0) + result.get(key, 0)
    print(f"  concurrent {name}: kernel counters during the run "
          f"{ {key: result.get(key) for key in _TCP_COUNTERS} }", file=sys.stderr, flush=True)
    return result["wall"], result["rss_mib"], result["failures"]


def _pair_label(a: str, b: str) -> str:
    return f"{a.replace('uvloop', 'uv')}/{b.replace('uvloop', 'uv')}"


def _cell(value: float | None, count: bool) -> str:
    if value is None:
        return "-"
    if count:
        return f"{value:.0f}"
    return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"


def print_table(rows: list[Row]) -> None:
    print("ratio = column / baseline of the same row; best 'high': above 1 means aiotls is "
          "faster; best 'low' (time, memory): below 1 means aiotls is better")
    head = (f"{'scenario':<76} {'unit':<13} {'best':<4} " + " ".join(f"{n:>13}" for n in IMPLS)
            + " " + " ".join(f"{_pair_label(a, b):>16}" for a, b in PAIRS))
    print(head)
    print("-" * len(head))
    for row in rows:
        vals = " ".join(f"{_cell(row.values.get(n), row.count):>13}" for n in IMPLS)
        ratios = []
        for a, b in PAIRS:
            r = row.ratio(a, b)
            ratios.append(f"{(f'{r:.2f}x' if r else '-'):>16}")
        best = "high" if row.higher_is_better else "low"
        print(f"{row.scenario:<76} {row.unit:<13} {best:<4} {vals} " + " ".join(ratios))


def print_round_ratios(rows: list[Row]) -> None:
    if not any(len(runs) > 1 for row in rows for runs in row.runs.values()):
        return
    print("\nratios within each round (implementations ran back to back): median [min-max]")
    print(f"{'':<76} " + " ".join(f"{_pair_label(a, b):>24}" for a, b in PAIRS))
    for row in rows:
        cells = []
        for a, b in PAIRS:
            ratios = sorted(row.round_ratios(a, b))
            cells.append(f"{statistics.median(ratios):.2f}x [{ratios[0]:.2f}-{ratios[-1]:.2f}]"
                         if ratios else "-")
        print(f"{row.scenario:<76} " + " ".join(f"{c:>24}" for c in cells))


def print_hybrid_rounds(rows: list[Row]) -> None:
    """The X25519MLKEM768 cost within each round, per column: median [min-max]."""
    costs = [row for row in rows if row.scenario.endswith("cost, time vs X25519")]
    if not costs:
        return
    print("\nX25519MLKEM768 cost within each round (time per handshake vs X25519): "
          "median [min-max]")
    for row in costs:
        cells = [f"{name} {statistics.median(runs):.2f}x [{min(runs):.2f}-{max(runs):.2f}]"
                 for name, runs in row.runs.items() if runs]
        print(f"  {row.scenario}: " + ", ".join(cells))


def plot(rows: list[Row], path: str) -> None:
    import matplotlib  # type: ignore[import-not-found, unused-ignore]  # optional: --plot

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # type: ignore[import-not-found, unused-ignore]

    fig, axes = plt.subplots(len(rows), 1, figsize=(9, 2.2 * len(rows)))
    for ax, row in zip(axes if len(rows) > 1 else [axes], rows, strict=True):
        names = list(row.values)
        ax.barh(names, [row.values[n] for n in names],
                color=["#888", "#2a7", "#7c5", "#88a", "#2a7", "#7c5"][:len(names)])
        ax.set_title(row.scenario, fontsize=9)
        ax.set_xlabel(row.unit, fontsize=8)
        ax.tick_params(labelsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="full sizes (slow)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per cell; best is kept")
    parser.add_argument("--only", nargs="*", help="run scenarios whose name contains a word")
    parser.add_argument("--json", help="write results as JSON to this file")
    parser.add_argument("--plot", help="draw the table as a PNG (needs matplotlib)")
    parser.add_argument("--memory-child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--concurrent-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        _memory_child(args.memory_child[0], int(args.memory_child[1]))
        return 0
    if args.concurrent_child:
        _concurrent_child(args.concurrent_child[0], int(args.concurrent_child[1]))
        return 0
    print(f"aiotls {aiotls.__version__} | Python {platform.python_version()} | "
          f"{ssl.OPENSSL_VERSION} | uvloop {getattr(uvloop, '__version__', '?')} | {os.cpu_count()} CPUs | "
          f"{'full' if args.full else 'quick'} run", flush=True)
    rows = with_hybrid_cost(run_all(args.full, set(args.only) if args.only else None,
                                    args.repeat))
    print_table(rows)
    print_round_ratios(rows)
    print_hybrid_rounds(rows)
    failed = {f"{row.scenario} [{name}]": value for row in rows if row.count
              for name, value in row.values.items() if value}
    for row in rows:
        if row.notes:
            print(f"\n{row.scenario.split(':')[0]}: listeners; summed over the runs: seconds "
                  "in the cyclic GC and its collections during the measured part, and the "
                  "kernel's TCP counters (dropped SYNs show in ListenOverflows, TCPSynRetrans):")
            for name, notes in row.notes.items():
                print(f"  {name:<14} " + " ".join(f"{k}={v:.2f}" if k == "gc_s" else
                                                  f"{k}={v:.0f}" for k, v in notes.items()))
    if failed:
        print(f"\nFAILURES (the figures above are not valid): {failed}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": {"python": platform.python_version(), "openssl": ssl.OPENSSL_VERSION,
                                "full": args.full, "repeat": args.repeat},
                       "rows": [asdict(r) for r in rows]}, f, indent=2)
    if args.plot:
        plot(rows, args.plot)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
