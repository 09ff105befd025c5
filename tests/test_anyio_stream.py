"""aiotls.anyio: TLSStream and TLSListener on anyio's asyncio (default loop and uvloop) and
trio backends.

Every test runs on each backend (the ``anyio_backend`` fixture below; anyio's pytest
plugin runs them -- see ``pytest_pycollect_makeitem`` in conftest.py for why that needs a
hand with pytest-asyncio's auto mode).  Real peers talk over loopback TCP; tests that need
exact control of what arrives when (one read carrying a close_notify and cleartext, EOF
without close_notify) use anyio memory object streams.  Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import random
import ssl
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from anyio.abc import ObjectStream, SocketAttribute, SocketStream
from anyio.streams.stapled import StapledObjectStream
from anyio.streams.tls import TLSAttribute
from anyio.streams.tls import TLSStream as AnyioTLSStream
from cryptography.hazmat.primitives.serialization import Encoding

import aiotls
from aiotls.anyio import TLSListener, TLSStream
from aiotls.errors import X509_V_ERR_HOSTNAME_MISMATCH
from tests.certs import CA
from tests.helpers import VERSION_NAMES, VERSION_PARAMS

pytestmark = pytest.mark.anyio

TIMEOUT = 20  # seconds, for any one test's traffic
MiB = 1024 * 1024


@pytest.fixture(params=[
    pytest.param(("asyncio", {"use_uvloop": False}), id="asyncio"),
    pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"),
    pytest.param("trio", id="trio"),
])
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    return request.param


# --- plumbing ------------------------------------------------------------------------------


@asynccontextmanager
async def tcp_pair() -> AsyncIterator[tuple[SocketStream, SocketStream]]:
    """A connected (client, server) pair of TCP streams on 127.0.0.1."""
    multi = await anyio.create_tcp_listener(local_host="127.0.0.1")
    async with multi:
        listener = multi.listeners[0]
        client = await anyio.connect_tcp("127.0.0.1", listener.extra(SocketAttribute.local_port))
        server = await listener.accept()
    async with client, server:
        yield client, server


def memory_pair() -> tuple[StapledObjectStream[bytes], StapledObjectStream[bytes]]:
    """Two connected in-memory byte transports (anyio memory object streams)."""
    a_send, b_receive = anyio.create_memory_object_stream[bytes](math.inf)
    b_send, a_receive = anyio.create_memory_object_stream[bytes](math.inf)
    return StapledObjectStream(a_send, a_receive), StapledObjectStream(b_send, b_receive)


class Corked(ObjectStream[bytes]):
    """A transport that holds back what is sent while corked, then sends it as one item
    (so the peer reads it in one piece)."""

    def __init__(self, inner: ObjectStream[bytes]) -> None:
        self.inner = inner
        self.corked = False
        self.held: list[bytes] = []
        self.sent = 0  # bytes sent through this stream

    async def send(self, item: bytes) -> None:
        self.sent += len(item)
        if self.corked:
            self.held.append(item)
        else:
            await self.inner.send(item)

    async def uncork(self) -> None:
        self.corked = False
        await self.inner.send(b"".join(self.held))
        self.held.clear()

    async def receive(self) -> bytes:
        return await self.inner.receive()

    async def send_eof(self) -> None:
        await self.inner.send_eof()

    async def aclose(self) -> None:
        await self.inner.aclose()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        return self.inner.extra_attributes


class Trickle(ObjectStream[bytes]):
    """A transport that hands over what it receives in small pieces (1 to 7 bytes, from a
    seeded generator), so records and their headers arrive cut anywhere; once
    ``trickling`` is off, each item as it was sent."""

    def __init__(self, inner: ObjectStream[bytes], seed: int) -> None:
        self.inner = inner
        self.random = random.Random(seed)
        self.pending = b""
        self.trickling = True

    async def receive(self) -> bytes:
        if not self.pending:
            item = await self.inner.receive()
            if not self.trickling:
                return item
            self.pending = item
        n = self.random.randint(1, 7)
        piece, self.pending = self.pending[:n], self.pending[n:]
        return piece

    async def send(self, item: bytes) -> None:
        await self.inner.send(item)

    async def send_eof(self) -> None:
        await self.inner.send_eof()

    async def aclose(self) -> None:
        await self.inner.aclose()


async def wrap_pair(client_transport: Any, server_transport: Any,
                    client_ctx: aiotls.TLSContext, server_ctx: aiotls.TLSContext,
                    **kwargs: Any) -> tuple[TLSStream, TLSStream]:
    """Both handshakes, concurrently; ``client_*``/``server_*`` kwargs go to each wrap()."""
    side: dict[str, dict[str, Any]] = {"client": {}, "server": {}}
    for key, value in kwargs.items():
        role, _, name = key.partition("_")
        side[role][name] = value
    streams: dict[str, TLSStream] = {}

    async def server() -> None:
        streams["server"] = await TLSStream.wrap(server_transport, server_side=True,
                                                 ssl_context=server_ctx, **side["server"])

    async with anyio.create_task_group() as tg:
        tg.start_soon(server)
        streams["client"] = await TLSStream.wrap(client_transport, hostname="localhost",
                                                 ssl_context=client_ctx, **side["client"])
    return streams["client"], streams["server"]


async def receive_exactly(stream: Any, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        data += await stream.receive()
    assert len(data) == n, f"got {len(data) - n} bytes more than expected"
    return bytes(data)


async def receive_until_end(stream: Any, *,
                            ends: tuple[type[Exception], ...] = (anyio.EndOfStream,)) -> bytes:
    """Everything until EndOfStream (and not beyond: any other error propagates)."""
    data = bytearray()
    while True:
        try:
            data += await stream.receive()
        except ends:
            return bytes(data)


async def receive_until_closed(stream: Any) -> bytes:
    """Raw transport: everything until the peer closed it (EOF, or reset)."""
    return await receive_until_end(stream, ends=(anyio.EndOfStream, anyio.BrokenResourceError))


def pattern(n: int, seed: int) -> bytes:
    """``n`` bytes that differ with position and seed (so reordering shows)."""
    block = hashlib.sha256(seed.to_bytes(4, "big")).digest() * 2048  # 64 KiB
    return (block * (n // len(block) + 1))[:n]


def tls12(ctx: aiotls.TLSContext) -> aiotls.TLSContext:
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return ctx




# --- the backend is the one the test names -------------------------------------------------


async def test_runs_on_the_backend_it_names(anyio_backend: Any) -> None:
    name, options = (anyio_backend, {}) if isinstance(anyio_backend, str) else anyio_backend
    if name == "trio":
        import trio

        assert trio.lowlevel.current_task() is not None  # (raises outside trio)
        with pytest.raises(RuntimeError):
            asyncio.get_running_loop()
    else:
        loop_module = type(asyncio.get_running_loop()).__module__
        assert loop_module.startswith("uvloop") == options["use_uvloop"]


# --- two-way stream conformance --------------------------------------------------------------


async def test_many_small_sends_arrive_in_order(pki: Any) -> None:
    messages = [pattern(1 + (i * 37) % 300, i) for i in range(2000)]
    expected = b"".join(messages)
    with anyio.fail_after(TIMEOUT):
        async with tcp_pair() as (a, b):
            client, server = await wrap_pair(a, b, pki.client_context(), pki.server_context())

            async def echo() -> None:
                while True:
                    try:
                        data = await server.receive(1000)
                    except anyio.EndOfStream:
                        break
                    assert 1 <= len(data) <= 1000
                    await server.send(data)
                await server.aclose()

            async with anyio.create_task_group() as tg:
                tg.start_soon(echo)
                for message in messages:
                    await client.send(message)
                echoed = await receive_exactly(client, len(expected))
                await client.aclose()
    assert echoed == expected


@pytest.mark.parametrize("version", VERSION_PARAMS)
async def test_large_transfer_both_ways_at_once(pki: Any, version: Any) -> None:
    """8 MiB each way at the same time: each side sends in one task, receives in another."""
    size = 8 * MiB
    up, down = pattern(size, 1), pattern(size, 2)
    client_ctx = pki.client_context()
    client_ctx.maximum_version = version
    received: dict[str, bytes] = {}
    with anyio.fail_after(TIMEOUT):
        async with tcp_pair() as (a, b):
            client, server = await wrap_pair(a, b, client_ctx, pki.server_context())
            assert client.extra(TLSAttribute.tls_version) == VERSION_NAMES[version]

            async def send_all(stream: TLSStream, data: bytes) -> None:
                view = memoryview(data)
                for pos in range(0, len(data), 64 * 1024):
                    await stream.send(bytes(view[pos:pos + 64 * 1024]))

            async def receive(name: str, stream: TLSStream) -> None:
                received[name] = await receive_exactly(stream, size)

            async with anyio.create_task_group() as tg:
                tg.start_soon(send_all, client, up)
                tg.start_soon(send_all, server, down)
                tg.start_soon(receive, "server", server)
                tg.start_soon(receive, "client", client)
            await client.aclose()
            assert await receive_until_end(server) == b""
            await server.aclose()
    assert received["server"] == up
    assert received["client"] == down


async def test_concurrent_send_and_receive_on_one_stream(pki: Any) -> None:
    """An echo peer: the client's sending task would block forever once the echo fills the
    buffers, unless its receiving task reads at the same time."""
    size = 8 * MiB
    data = pattern(size, 3)
    with anyio.fail_after(TIMEOUT):
        async with tcp_pair() as (a, b):
            client, server = await wrap_pair(a, b, pki.client_context(), pki.server_context())

            async def echo() -> None:
                try:
                    while True:
                        await server.send(await server.receive())
                except anyio.EndOfStream:
                    await server.aclose()

            async def send_all() -> None:
                for pos in range(0, size, 64 * 1024):
                    await client.send(data[pos:pos + 64 * 1024])

            async with anyio.create_task_group() as tg:
                tg.start_soon(echo)
                tg.start_soon(send_all)
                echoed = await receive_exactly(client, size)
                await client.aclose()
    assert echoed == data


async def test_send_eof_is_a_half_close_with_a_stdlib_peer(pki: Any) -> None:
    """TLS 1.3: after send_eof() the peer sees the end of our data and can still answer
    (OpenSSL lets a side write after receiving close_notify)."""
    with anyio.fail_after(TIMEOUT):
        async with tcp_pair() as (a, b):
            async def server() -> None:
                tls = await AnyioTLSStream.wrap(b, server_side=True,
                                                ssl_context=pki.stdlib_server_context())
                request = await receive_until_end(tls)
                await tls.send(b"you said: " + request)
                await tls.aclose()

            async with anyio.create_task_group() as tg:
                tg.start_soon(server)
                client = await TLSStream.wrap(a, hostname="localhost",
                                              ssl_context=pki.client_context())
                await client.send(b"question")
                await client.send_eof()
                with pytest.raises(anyio.ClosedResourceError):
                    await client.send(b"more")
                assert await receive_until_end(client) == b"you said: question"
                await client.aclose()


async def test_send_eof_is_a_half_close_with_an_aiotls_peer(pki: Any) -> None:
    """TLS 1.3, aiotls on both ends: the peer gets EndOfStream, still answers, and its
    aclose() ends the connection; we read its answer, then EndOfStream."""
    with anyio.fail_after(TIMEOUT):
        async with tcp_pair() as (a, b):
            client, server = await wrap_pair(a, b, pki.client_context(), pki.server_context())
            await client.send(b"last words")
            await client.send_eof()
            assert await receive_until_end(server) == b"last words"
            await server.send(b"heard: ")
            await server.send(b"last words")
            await server.aclose()
            assert await receive_until_end(client) == b"heard: last words"
            conn = client.extra(TLSAttribute.ssl_object)
            assert conn.state is aiotls.ConnectionState.CLOSED and conn.error is None
            await client.aclose()


async def test_a_tls12_close_notify_ends_both_directions(pki: Any) -> None:
    """TLS 1.2 has no half-close: a peer's close_notify is answered at once, and sending
    after it fails."""
    with anyio.fail_after(TIMEOUT):
        async with tcp_pair() as (a, b):
            client, server = await wrap_pair(a, b, tls12(pki.client_context()),
                                             pki.server_context())
            await client.aclose()
            assert await receive_until_end(server) == b""
            with pytest.raises(anyio.BrokenResourceError):
                await server.send(b"too late")
            await server.aclose()


async def test_send_eof_is_refused_on_tls12(pki: Any) -> None:
    with anyio.fail_after(TIMEOUT):
        async with tcp_pair() as (a, b):
            client, server = await wrap_pair(a, b, tls12(pki.client_context()),
                                             pki.server_context())
            with pytest.raises(NotImplementedError, match=r"TLS 1\.3.*TLSv1\.2"):
                await client.send_eof()
            await client.send(b"still open")  # nothing was sent: the stream goes on
            assert await server.receive() == b"still open"
            await client.aclose()
            await server.aclose()


@pytest.mark.parametrize("standard_compatible", [True, False])
async def test_eof_after_send_eof_without_close_notify(pki: Any,
                                                       standard_compatible: bool) -> None:
    """After our send_eof() the peer's data may still be truncated: a transport EOF
    without its close_notify is reported like any other."""
    a, b = memory_pair()
    with anyio.fail_after(TIMEOUT):
        client, server = await wrap_pair(a, b, pki.client_context(), pki.server_context(),
                                         client_standard_compatible=standard_compatible)
        await server.send(b"partial answer")
        await client.send_eof()
        await b.aclose()  # the server's transport closes without a close_notify
        assert await client.receive() == b"partial answer"
        if standard_compatible:
            with pytest.raises(anyio.BrokenResourceError) as info:
                await client.receive()
            assert isinstance(info.value.__cause__, aiotls.TruncationError)
        else:
            with pytest.raises(anyio.EndOfStream):
                await client.receive()
        await client.aclose()


async def test_aclose_peer_sees_end_of_stream(pki: Any) -> None:
    with anyio.fail_after(TIMEOUT):
        async with tcp_pair() as (a, b):
            client, server = await wrap_pair(a, b, pki.client_context(), pki.server_context())
            await client.send(b"bye")
            await client.aclose()
            assert await receive_until_end(server) == b"bye"
            with pytest.raises(anyio.EndOfStream):  # and again
                await server.receive()
            await server.aclose()
            with pytest.raises(anyio.ClosedResourceError):
                await client.send(b"x")
            with pytest.raises(anyio.ClosedResourceError):
                await client.receive()
            await client.aclose()  # a second close does nothing


async def test_aclose_when_cancelled_closes_the_transport_at_once(pki: Any) -> None:
    """The aclose_forcefully() pattern: no close_notify, no waiting, the transport closes."""
    a, b = memory_pair()
    with anyio.fail_after(TIMEOUT):
        client, server = await wrap_pair(a, b, pki.client_context(), pki.server_context())
        await anyio.aclose_forcefully(client)
        with pytest.raises(anyio.BrokenResourceError) as info:  # EOF, no close_notify
            await server.receive()
        assert isinstance(info.value.__cause__, aiotls.TruncationError)
        await server.aclose()


async def test_aclose_is_bounded_when_the_peer_never_reads(pki: Any) -> None:
    """A transport whose send never completes: aclose() gives up on close_notify after
    close_timeout and closes the transport."""
    a_send, b_receive = anyio.create_memory_object_stream[bytes](1)
    b_send, a_receive = anyio.create_memory_object_stream[bytes](1)
    a, b = StapledObjectStream(a_send, a_receive), StapledObjectStream(b_send, b_receive)
    with anyio.fail_after(TIMEOUT):
        client, server = await wrap_pair(a, b, pki.client_context(), pki.server_context())
        await a.send(b"filler")  # the client-to-server buffer is full now
        client.close_timeout = 0.2
        started = anyio.current_time()
        await client.aclose()  # the server is not receiving: close_notify cannot be sent
        # (1 ms for the float difference of two loop clock readings and asyncio's timers
        # firing up to one clock resolution early: 0.2 came out as 0.19999999999709)
        assert 0.2 - 1e-3 <= anyio.current_time() - started < 5
        assert await b.receive() == b"filler"
        with pytest.raises(anyio.EndOfStream):  # nothing after it: the transport closed
            await b.receive()
        await server.aclose()


async def test_aclose_interrupts_a_pending_receive(pki: Any) -> None:
    with anyio.fail_after(TIMEOUT):
        async with tcp_pair() as (a, b):
            client, server = await wrap_pair(a, b, pki.client_context(), pki.server_context())
            outcome: list[BaseException] = []

            async def reader() -> None:
                try:
                    await client.receive()
                except Exception as exc:
                    outcome.append(exc)

            async with anyio.create_task_group() as tg:
                tg.start_soon(reader)
                await anyio.wait_all_tasks_blocked()
                await client.aclose()
            assert len(outcome) == 1 and isinstance(outcome[0], anyio.ClosedResourceError)
            assert await receive_until_end(server) == b""
            await server.aclose()


@pytest.mark.parametrize("version", VERSION_PARAMS)
async def test_unwrap_hands_back_the_cleartext_that_followed(pki: Any, version: Any) -> None:
    """The peer's close_notify and the cleartext after it arrive in one read: unwrap()
    returns that cleartext as leftover."""
    a, raw_b = memory_pair()
    b = Corked(raw_b)
    client_ctx = pki.client_context()
    client_ctx.maximum_version = version
    with anyio.fail_after(TIMEOUT):
        client, server = await wrap_pair(a, b, client_ctx, pki.server_context())
        await server.send(b"encrypted")
        assert await client.receive() == b"encrypted"
        async with anyio.create_task_group() as tg:
            result: list[tuple[Any, bytes]] = []

            async def client_unwraps() -> None:
                result.append(await client.unwrap())

            tg.start_soon(client_unwraps)
            b.corked = True  # what the server sends from now on arrives as one read
            assert await receive_until_end(server) == b""
            transport, leftover = await server.unwrap()
            assert transport is b and leftover == b""
            await transport.send(b"cleartext after TLS")
            await b.uncork()
        transport, leftover = result[0]
        assert transport is a
        assert leftover == b"cleartext after TLS"
        await a.send(b"cleartext reply")
        assert await raw_b.receive() == b"cleartext reply"
        with pytest.raises(anyio.ClosedResourceError):
            await client.receive()
        await client.aclose()  # the transport is the caller's now: left open
        await a.send(b"still usable")
        assert await raw_b.receive() == b"still usable"


async def test_unwrap_over_tcp(pki: Any) -> None:
    with anyio.fail_after(TIMEOUT):
        async with tcp_pair() as (a, b):
            client, server = await wrap_pair(a, b, pki.client_context(), pki.server_context())
            async with anyio.create_task_group() as tg:
                result: list[tuple[Any, bytes]] = []

                async def client_unwraps() -> None:
                    result.append(await client.unwrap())

                tg.start_soon(client_unwraps)
                assert await receive_until_end(server) == b""
                transport, leftover = await server.unwrap()
                assert transport is b and leftover == b""
                await transport.send(b"PLAIN")
            transport, leftover = result[0]
            assert transport is a
            assert leftover + await receive_exactly(a, 5 - len(leftover)) == b"PLAIN"


async def test_post_handshake_replies_made_while_receiving_are_sent(pki: Any) -> None:
    """TLS 1.3 KeyUpdate(update_requested): the receiving side must answer it, and
    receive() sends that answer itself (no send() follows here)."""
    a, raw_b = memory_pair()
    counted = Corked(a)
    with anyio.fail_after(TIMEOUT):
        client, server = await wrap_pair(counted, raw_b, pki.client_context(),
                                         pki.server_context())
        server_conn = server.extra(TLSAttribute.ssl_object)
        server_conn.update_keys(request_peer_update=True)
        await server.send(b"after the update")
        sent_before = counted.sent
        assert await client.receive() == b"after the update"
        assert counted.sent > sent_before  # the client's KeyUpdate went out
        await client.send(b"under the new keys")
        assert await server.receive() == b"under the new keys"
        await client.aclose()
        await server.aclose()


# --- the end of the stream -------------------------------------------------------------------


@pytest.mark.parametrize("standard_compatible", [True, False])
async def test_eof_without_close_notify(pki: Any, standard_compatible: bool) -> None:
    with anyio.fail_after(TIMEOUT):
        async with tcp_pair() as (a, b):
            client, server = await wrap_pair(a, b, pki.client_context(), pki.server_context(),
                                             client_standard_compatible=standard_compatible,
                                             server_standard_compatible=False)
            await server.send(b"data")
            await server.aclose()  # standard_compatible=False: no close_notify
            assert await client.receive() == b"data"
            if standard_compatible:
                with pytest.raises(anyio.BrokenResourceError) as info:
                    await client.receive()
                assert isinstance(info.value.__cause__, aiotls.TruncationError)
                assert isinstance(info.value.__cause__, ssl.SSLEOFError)
            else:
                with pytest.raises(anyio.EndOfStream):
                    await client.receive()
            await client.aclose()


async def test_suppress_ragged_eofs_context_ends_the_stream_cleanly(pki: Any) -> None:
    client_ctx = pki.client_context()
    client_ctx.suppress_ragged_eofs = True
    a, b = memory_pair()
    with anyio.fail_after(TIMEOUT):
        client, server = await wrap_pair(a, b, client_ctx, pki.server_context())
        await server.send(b"body")
        await b.aclose()
        assert await receive_until_end(client) == b"body"
        await client.aclose()


async def test_corrupt_record_raises_the_tls_error_after_sending_the_alert(pki: Any) -> None:
    a, b = memory_pair()
    with anyio.fail_after(TIMEOUT):
        client, server = await wrap_pair(a, b, pki.client_context(), pki.server_context())
        await b.send(b"\x17\x03\x03\x00\x20" + bytes(32))  # not sealed with the server's keys
        with pytest.raises(aiotls.TLSError) as info:
            await client.receive()
        assert isinstance(info.value, ssl.SSLError)
        assert info.value.alert == aiotls.AlertDescription.bad_record_mac
        alert = await b.receive()  # the alert reached the peer ...
        assert alert[:1] == b"\x17" and len(alert) < 64
        with pytest.raises(anyio.EndOfStream):  # ... before the transport closed
            await b.receive()
        with pytest.raises(anyio.BrokenResourceError):
            await client.receive()
        with pytest.raises(anyio.BrokenResourceError):
            await client.send(b"x")
        await client.aclose()


# --- handshake -------------------------------------------------------------------------------


async def test_untrusted_certificate(pki: Any) -> None:
    untrusting = aiotls.TLSContext(ssl.PROTOCOL_TLS_CLIENT)
    untrusting.load_verify_locations(cadata=CA().cert_pem.decode())
    with anyio.fail_after(TIMEOUT):
        async with tcp_pair() as (a, b):
            server_error: list[BaseException] = []

            async def server() -> None:
                try:
                    await TLSStream.wrap(b, server_side=True, ssl_context=pki.server_context())
                except Exception as exc:
                    server_error.append(exc)

            async with anyio.create_task_group() as tg:
                tg.start_soon(server)
                with pytest.raises(aiotls.CertificateError) as info:
                    await TLSStream.wrap(a, hostname="localhost", ssl_context=untrusting)
            assert isinstance(info.value, ssl.SSLCertVerificationError)
            assert info.value.code == "certificate-unknown-ca"
            # the client's alert reached the server before the client closed
            assert len(server_error) == 1 and isinstance(server_error[0], aiotls.AlertReceived)
            assert server_error[0].alert in (aiotls.AlertDescription.unknown_ca,
                                             aiotls.AlertDescription.bad_certificate)


@pytest.mark.parametrize(("hostname", "in_error"), [
    ("wrong.example", "wrong.example"),
    # as anyio's own stream: an internationalised name goes out as IDNA 2008 A-labels
    ("bücher.example", "xn--bcher-kva.example"),
])
async def test_wrong_hostname(pki: Any, hostname: str, in_error: str) -> None:
    with anyio.fail_after(TIMEOUT):
        async with tcp_pair() as (a, b):
            async def server() -> None:
                with pytest.raises(aiotls.AlertReceived):
                    await TLSStream.wrap(b, server_side=True, ssl_context=pki.server_context())

            async with anyio.create_task_group() as tg:
                tg.start_soon(server)
                with pytest.raises(aiotls.CertificateError) as info:
                    await TLSStream.wrap(a, hostname=hostname, ssl_context=pki.client_context())
            assert info.value.verify_code == X509_V_ERR_HOSTNAME_MISMATCH
            assert info.value.code == "hostname-mismatch"
            assert in_error in info.value.what  # the name that was checked


@pytest.mark.parametrize("standard_compatible", [True, False])
async def test_eof_during_handshake(pki: Any, standard_compatible: bool) -> None:
    a, b = memory_pair()
    with anyio.fail_after(TIMEOUT):
        await b.send_eof()  # the server end closes its side at once
        expected = anyio.BrokenResourceError if standard_compatible else anyio.EndOfStream
        with pytest.raises(expected):
            await TLSStream.wrap(a, hostname="localhost", ssl_context=pki.client_context(),
                                 standard_compatible=standard_compatible)


async def test_wrap_checks_its_arguments(pki: Any) -> None:
    a, b = memory_pair()
    with pytest.raises(TypeError, match=r"anyio\.streams\.tls\.TLSStream"):
        await TLSStream.wrap(a, hostname="localhost", ssl_context=pki.stdlib_client_context())
    with pytest.raises(aiotls.TLSUsageError, match="only meaningful for clients"):
        await TLSStream.wrap(a, server_side=True, hostname="localhost",
                             ssl_context=pki.server_context())
    with pytest.raises(aiotls.TLSUsageError) as info:
        await TLSStream.wrap(a, hostname="localhost", ssl_context=pki.server_context())
    assert info.value.code == "wrong-side-context"


async def test_session_resumption(pki: Any) -> None:
    server_ctx = pki.server_context()
    client_ctx = pki.client_context()
    session = None
    reused = []
    with anyio.fail_after(TIMEOUT):
        for _ in range(2):
            async with tcp_pair() as (a, b):
                client, server = await wrap_pair(a, b, client_ctx, server_ctx,
                                                 client_session=session)
                await server.send(b"ticket first")  # TLS 1.3 tickets come with it
                assert await client.receive() == b"ticket first"
                conn = client.extra(TLSAttribute.ssl_object)
                reused.append(conn.session_reused)
                session = conn.session
                await client.aclose()
                await receive_until_end(server)
                await server.aclose()
    assert reused == [False, True]


# --- attributes ------------------------------------------------------------------------------


async def test_extra_attributes(pki: Any) -> None:
    client_ctx, server_ctx = pki.client_context(), pki.server_context()
    client_ctx.set_alpn_protocols(["h2", "http/1.1"])
    server_ctx.set_alpn_protocols(["http/1.1"])
    with anyio.fail_after(TIMEOUT):
        async with tcp_pair() as (a, b):
            client, server = await wrap_pair(a, b, client_ctx, server_ctx,
                                             server_standard_compatible=False)
            for stream, server_side in ((client, False), (server, True)):
                conn = stream.extra(TLSAttribute.ssl_object)
                assert isinstance(conn, aiotls.TLSConnection)  # aiotls does the TLS
                assert stream.extra(TLSAttribute.server_side) is server_side
                assert stream.extra(TLSAttribute.tls_version) == "TLSv1.3"
                cipher = stream.extra(TLSAttribute.cipher)
                assert cipher == conn.cipher() and cipher[1] == "TLSv1.3" and cipher[2] >= 128
                assert stream.extra(TLSAttribute.alpn_protocol) == "http/1.1"
                assert stream.extra(TLSAttribute.standard_compatible) is not server_side
                # tls-unique: undefined for TLS 1.3 (RFC 8446 C.5)
                assert stream.extra(TLSAttribute.channel_binding_tls_unique) is None
                # the transport's attributes pass through
                assert stream.extra(SocketAttribute.remote_address) == \
                    stream.transport_stream.extra(SocketAttribute.remote_address)
            assert client.extra(TLSAttribute.shared_ciphers) is None  # as in anyio
            shared = server.extra(TLSAttribute.shared_ciphers)
            assert server.extra(TLSAttribute.cipher)[0] in {name for name, _, _ in shared}
            peer = client.extra(TLSAttribute.peer_certificate)
            assert ("commonName", "localhost") in [pair for rdn in peer["subject"] for pair in rdn]
            issued = pki.servers["ecdsa-p256"][0]
            assert client.extra(TLSAttribute.peer_certificate_binary) == issued.cert.public_bytes(Encoding.DER)
            assert server.extra(TLSAttribute.peer_certificate) is None  # no client certificate
            assert server.extra(TLSAttribute.peer_certificate_binary) is None
            await client.aclose()
            await server.aclose()


async def test_tls_unique_on_tls12_is_the_same_on_both_ends(pki: Any) -> None:
    with anyio.fail_after(TIMEOUT):
        async with tcp_pair() as (a, b):
            client, server = await wrap_pair(a, b, tls12(pki.client_context()),
                                             pki.server_context())
            ours = client.extra(TLSAttribute.channel_binding_tls_unique)
            assert ours is not None and len(ours) == 12
            assert server.extra(TLSAttribute.channel_binding_tls_unique) == ours
            await client.aclose()
            await server.aclose()


# --- listener --------------------------------------------------------------------------------


@asynccontextmanager
async def tls_listener(pki: Any, handler: Callable[[TLSStream], Any],
                       **kwargs: Any) -> AsyncIterator[tuple[TLSListener, int]]:
    tcp = await anyio.create_tcp_listener(local_host="127.0.0.1")
    listener = TLSListener(tcp, pki.server_context(), **kwargs)
    port = listener.extra(SocketAttribute.local_port)
    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handler)
        try:
            yield listener, port
        finally:
            tg.cancel_scope.cancel()
    await listener.aclose()


async def echo_once(stream: TLSStream) -> None:
    async with stream:
        await stream.send(await stream.receive())


async def test_listener_serves_and_survives_failed_handshakes(
        pki: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="aiotls.anyio")
    untrusting = aiotls.TLSContext(ssl.PROTOCOL_TLS_CLIENT)
    untrusting.load_verify_locations(cadata=CA().cert_pem.decode())
    with anyio.fail_after(TIMEOUT):
        async with tls_listener(pki, echo_once) as (listener, port):
            assert listener.extra(TLSAttribute.standard_compatible) is True
            # a client that does not trust the server: its handshake fails ...
            async with await anyio.connect_tcp("127.0.0.1", port) as raw:
                with pytest.raises(aiotls.CertificateError):
                    await TLSStream.wrap(raw, hostname="localhost", ssl_context=untrusting)
            # ... a client that speaks no TLS at all ...
            async with await anyio.connect_tcp("127.0.0.1", port) as raw:
                await raw.send(b"GET / HTTP/1.1\r\n\r\n")
                answer = await receive_until_closed(raw)
                assert answer[:1] == b"\x15"  # an alert (unexpected_message), then the close
            # ... and the listener still serves the next one
            for _ in range(2):
                raw = await anyio.connect_tcp("127.0.0.1", port)
                client = await TLSStream.wrap(raw, hostname="localhost",
                                              ssl_context=pki.client_context())
                await client.send(b"ping")
                assert await client.receive() == b"ping"
                assert await receive_until_end(client) == b""
                await client.aclose()
    messages = [r.getMessage() for r in caplog.records if r.name == "aiotls.anyio"]
    assert len(messages) == 2, messages
    assert "TLS handshake with" in messages[0] and "unknown_ca" in messages[0]
    assert "plain HTTP" in messages[1]


async def test_listener_handshake_timeout(pki: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="aiotls.anyio")
    handled: list[TLSStream] = []
    with anyio.fail_after(TIMEOUT):
        async with tls_listener(pki, handled.append, handshake_timeout=0.3) as (_, port), \
                await anyio.connect_tcp("127.0.0.1", port) as raw:
            # a silent client: the server closes the connection after the timeout
            started = anyio.current_time()
            assert await receive_until_closed(raw) == b""
            assert anyio.current_time() - started >= 0.25
    assert handled == []
    assert any("timed out" in r.getMessage() for r in caplog.records if r.name == "aiotls.anyio")


async def test_listener_checks_its_context(pki: Any) -> None:
    tcp = await anyio.create_tcp_listener(local_host="127.0.0.1")
    async with tcp:
        with pytest.raises(aiotls.TLSUsageError) as info:
            TLSListener(tcp, pki.client_context())
        assert info.value.code == "wrong-side-context"


# --- interop with anyio's own TLSStream (stdlib ssl) ----------------------------------------


@pytest.mark.interop
async def test_aiotls_client_with_anyio_stdlib_server(pki: Any) -> None:
    data = pattern(2 * MiB, 4)
    with anyio.fail_after(TIMEOUT):
        async with tcp_pair() as (a, b):
            async def server() -> None:
                tls = await AnyioTLSStream.wrap(b, server_side=True,
                                                ssl_context=pki.stdlib_server_context())
                assert isinstance(tls.extra(TLSAttribute.ssl_object), ssl.SSLObject)
                received = await receive_exactly(tls, len(data))
                await tls.send(hashlib.sha256(received).digest())
                assert await receive_until_end(tls) == b""
                await tls.aclose()

            async with anyio.create_task_group() as tg:
                tg.start_soon(server)
                client = await TLSStream.wrap(a, hostname="localhost",
                                              ssl_context=pki.client_context())
                assert isinstance(client.extra(TLSAttribute.ssl_object), aiotls.TLSConnection)
                for pos in range(0, len(data), 64 * 1024):
                    await client.send(data[pos:pos + 64 * 1024])
                assert await receive_exactly(client, 32) == hashlib.sha256(data).digest()
                await client.aclose()


@pytest.mark.interop
async def test_anyio_stdlib_client_with_aiotls_server(pki: Any) -> None:
    data = pattern(2 * MiB, 5)
    with anyio.fail_after(TIMEOUT):
        async with tcp_pair() as (a, b):
            async def server() -> None:
                tls = await TLSStream.wrap(b, server_side=True, ssl_context=pki.server_context())
                assert isinstance(tls.extra(TLSAttribute.ssl_object), aiotls.TLSConnection)
                await tls.send(data)
                assert await receive_until_end(tls) == b"thanks"
                await tls.aclose()

            async with anyio.create_task_group() as tg:
                tg.start_soon(server)
                client = await AnyioTLSStream.wrap(a, hostname="localhost",
                                                   ssl_context=pki.stdlib_client_context())
                assert await receive_exactly(client, len(data)) == data
                await client.send(b"thanks")
                await client.aclose()  # unwrap(): waits for the aiotls server's close_notify


@pytest.mark.parametrize("seed", range(3))
async def test_records_cut_anywhere_by_the_transport(pki: Any, seed: int) -> None:
    """Reads that cut records and their headers anywhere: data and a KeyUpdate come
    through, and the stream keeps track of where records begin, so that later the peer's
    close_notify and the cleartext after it, read at once, still part at the right byte."""
    raw_a, raw_b = memory_pair()
    a = Trickle(raw_a, seed)
    b = Corked(raw_b)
    with anyio.fail_after(TIMEOUT):
        client, server = await wrap_pair(a, b, pki.client_context(), pki.server_context())
        messages = [pattern(n, n) for n in (1, 30, 300, 5000, 20000)]
        for message in messages:
            await server.send(message)
        server.extra(TLSAttribute.ssl_object).update_keys(request_peer_update=True)
        await server.send(b"after the update")
        expected = b"".join(messages) + b"after the update"
        assert await receive_exactly(client, len(expected)) == expected
        await client.send(b"reply")
        assert await server.receive() == b"reply"
        a.trickling = False
        async with anyio.create_task_group() as tg:
            result: list[tuple[Any, bytes]] = []

            async def client_unwraps() -> None:
                result.append(await client.unwrap())

            tg.start_soon(client_unwraps)
            b.corked = True
            assert await receive_until_end(server) == b""
            transport, _ = await server.unwrap()
            await transport.send(b"cleartext")
            await b.uncork()
        assert result == [(a, b"cleartext")]


async def test_one_large_send_received_in_small_pieces(pki: Any) -> None:
    data = pattern(MiB, 6)
    with anyio.fail_after(TIMEOUT):
        async with tcp_pair() as (a, b):
            client, server = await wrap_pair(a, b, pki.client_context(), pki.server_context())
            async with anyio.create_task_group() as tg:
                tg.start_soon(client.send, data)
                received = bytearray()
                while len(received) < len(data):
                    piece = await server.receive(1000)
                    assert 1 <= len(piece) <= 1000
                    received += piece
            assert received == data
            await client.aclose()
            await server.aclose()


async def test_cancelled_receive_loses_nothing(pki: Any) -> None:
    with anyio.fail_after(TIMEOUT):
        async with tcp_pair() as (a, b):
            client, server = await wrap_pair(a, b, pki.client_context(), pki.server_context())
            with anyio.move_on_after(0.05) as scope:
                await client.receive()  # nothing comes
            assert scope.cancelled_caught
            await server.send(b"after the cancellation")
            assert await client.receive() == b"after the cancellation"
            await client.send(b"and the stream still works")
            assert await server.receive() == b"and the stream still works"
            await client.aclose()
            await server.aclose()


async def test_concurrent_senders_take_turns_and_a_cancelled_waiter_leaves_no_trace(
        pki: Any) -> None:
    """Sends from several tasks go out whole, one after the other; a task cancelled while
    it waits for its turn sends nothing and blocks nobody."""
    a_send, b_receive = anyio.create_memory_object_stream[bytes](1)
    b_send, a_receive = anyio.create_memory_object_stream[bytes](math.inf)
    a, b = StapledObjectStream(a_send, a_receive), StapledObjectStream(b_send, b_receive)
    messages = {name: name.encode() * 40_000 for name in "xyz"}
    scopes: dict[str, anyio.CancelScope] = {}
    with anyio.fail_after(TIMEOUT):
        client, server = await wrap_pair(a, b, pki.client_context(), pki.server_context())

        async def send(name: str) -> None:
            with anyio.CancelScope() as scopes[name]:
                await client.send(messages[name])

        await a.send(b"filler")  # the client-to-server buffer (one item) is full
        async with anyio.create_task_group() as tg:
            for name in "xyz":  # x takes its turn and blocks in the transport; y, z wait
                tg.start_soon(send, name)
                await anyio.wait_all_tasks_blocked()
            scopes["y"].cancel()
            await anyio.wait_all_tasks_blocked()
            assert await b.receive() == b"filler"  # x can go on, then z
            got = await receive_exactly(server, 80_000)
        assert got == messages["x"] + messages["z"]
        assert scopes["y"].cancel_called and not scopes["x"].cancel_called
        await client.send(b"still usable")
        assert await receive_exactly(server, 12) == b"still usable"
        await client.aclose()
        await server.aclose()
