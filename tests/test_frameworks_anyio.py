"""Unmodified anyio, trio and httpx (on both) doing TLS through aiotls.

anyio's ``connect_tcp(ssl_context=...)`` and ``TLSListener``, trio's ``SSLStream`` and
httpx's ``AsyncClient(verify=...)`` are handed :class:`aiotls.TLSContext` objects and call
``wrap_bio()`` (anyio from a worker thread).  Three ways each, as in test_frameworks.py:
aiotls client / stdlib server, stdlib client / aiotls server, aiotls on both ends; every
aiotls end is proven by what only aiotls allows (conftest's ``FrameworkEnds``).

These are plain test functions that call ``anyio.run`` / ``trio.run`` themselves:
pytest-asyncio's auto mode (pyproject) claims every ``async def`` test, ``@pytest.mark.anyio``
ones included -- an anyio test parametrized for trio ran on asyncio -- so anyio's pytest
plugin cannot pick the backend here.  Every wait is bounded by ``fail_after``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import ssl
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest
import trio
from anyio.abc import SocketAttribute
from anyio.streams.tls import TLSAttribute, TLSListener, TLSStream

import aiotls
from tests.certs import CA
from tests.helpers import PKI, FrameworkEnds

TIMEOUT = 20.0
Runner = Callable[..., Any]


@pytest.fixture(params=[pytest.param(("asyncio", {}), id="asyncio"),
                        pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"),
                        pytest.param(("trio", {}), id="trio")])
def run(request: pytest.FixtureRequest) -> Runner:
    """``run(fn, *args)``: ``anyio.run`` on one backend."""
    backend, options = request.param

    def runner(fn: Callable[..., Any], *args: Any) -> Any:
        return anyio.run(fn, *args, backend=backend, backend_options=options)

    return runner


async def receive_exactly(stream: Any, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        data += await stream.receive()
    assert len(data) == n
    return bytes(data)


# --- anyio ---------------------------------------------------------------------------------------


def test_connect_tcp_and_tls_listener(ends: FrameworkEnds, run: Runner) -> None:
    size = 1 << 20
    up, down = os.urandom(size), os.urandom(size)
    seen: dict[str, Any] = {}

    async def main() -> None:
        done = anyio.Event()

        async def handler(stream: TLSStream) -> None:
            seen["server"] = stream.extra(TLSAttribute.ssl_object)
            got = await receive_exactly(stream, size)
            seen["up"] = hashlib.sha256(got).digest()
            await stream.send(down)
            with pytest.raises(anyio.EndOfStream):  # the client's close_notify
                await stream.receive()
            await stream.aclose()
            done.set()

        listener = TLSListener(await anyio.create_tcp_listener(local_host="127.0.0.1"),
                               ends.server)
        port = listener.listener.extra(SocketAttribute.local_port)
        with anyio.fail_after(TIMEOUT):
            async with anyio.create_task_group() as tg:
                tg.start_soon(listener.serve, handler)
                stream = await anyio.connect_tcp("127.0.0.1", port, ssl_context=ends.client,
                                                 tls=True, tls_hostname="localhost")
                ends.check(stream.extra(TLSAttribute.ssl_object), server_side=False)
                await stream.send(up)
                assert await receive_exactly(stream, size) == down
                await stream.aclose()  # sends close_notify
                await done.wait()
                tg.cancel_scope.cancel()
            await listener.aclose()

    run(main)
    assert seen["up"] == hashlib.sha256(up).digest()
    ends.check(seen["server"], server_side=True)


def test_tls_stream_not_standard_compatible(ends: FrameworkEnds, run: Runner) -> None:
    """``standard_compatible=False`` (what httpx uses): the server hangs up without
    close_notify, and the client reads the data, then a plain end of stream."""
    seen: list[Any] = []

    async def main() -> None:
        async def handler(stream: TLSStream) -> None:
            seen.append(stream.extra(TLSAttribute.ssl_object))
            await stream.send(b"all of it")
            await stream.aclose()  # no close_notify in this mode

        tcp = await anyio.create_tcp_listener(local_host="127.0.0.1")
        port = tcp.extra(SocketAttribute.local_port)
        listener = TLSListener(tcp, ends.server, standard_compatible=False)
        with anyio.fail_after(TIMEOUT):
            async with anyio.create_task_group() as tg:
                tg.start_soon(listener.serve, handler)
                stream = await anyio.connect_tcp("127.0.0.1", port, ssl_context=ends.client,
                                                 tls=True, tls_hostname="localhost",
                                                 tls_standard_compatible=False)
                ends.check(stream.extra(TLSAttribute.ssl_object), server_side=False)
                data = await receive_exactly(stream, len(b"all of it"))
                assert data == b"all of it"
                with pytest.raises(anyio.EndOfStream):  # not BrokenResourceError
                    await stream.receive()
                await stream.aclose()
                tg.cancel_scope.cancel()
            await listener.aclose()

    run(main)
    ends.check(seen[0], server_side=True)


@pytest.mark.parametrize("server", ["stdlib", "aiotls"])
def test_connect_tcp_untrusted_certificate(pki: PKI, run: Runner, server: str) -> None:
    client = aiotls.TLSContext(ssl.PROTOCOL_TLS_CLIENT)
    client.load_verify_locations(cadata=CA(name="a CA nobody here trusts").cert_pem.decode())
    server_ctx = pki.stdlib_server_context() if server == "stdlib" else pki.server_context()

    async def main() -> None:
        listener = TLSListener(await anyio.create_tcp_listener(local_host="127.0.0.1"),
                               server_ctx)
        port = listener.listener.extra(SocketAttribute.local_port)

        async def handler(stream: TLSStream) -> None:
            raise AssertionError("the handshake cannot have succeeded")

        with anyio.fail_after(TIMEOUT):
            async with anyio.create_task_group() as tg:
                tg.start_soon(listener.serve, handler)
                with pytest.raises(ssl.SSLCertVerificationError) as info:
                    await anyio.connect_tcp("127.0.0.1", port, ssl_context=client, tls=True,
                                            tls_hostname="localhost")
                assert isinstance(info.value, aiotls.CertificateError)
                tg.cancel_scope.cancel()
            await listener.aclose()

    run(main)


# --- httpx on anyio: asyncio, uvloop and trio ------------------------------------------------------


def test_httpx_async_client(ends: FrameworkEnds, run: Runner) -> None:
    seen: list[Any] = []

    async def handler(stream: TLSStream) -> None:
        obj = stream.extra(TLSAttribute.ssl_object)
        seen.append(obj)
        request = b""
        while b"\r\n\r\n" not in request:
            request += await stream.receive()
        body = f"{request.split()[1].decode()} via {obj.version()}".encode()
        await stream.send(b"HTTP/1.1 200 OK\r\nConnection: close\r\n"
                          b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        # httpx hangs up without close_notify once it has the response (anyio's TLS for
        # httpcore is not standard_compatible), possibly before our close_notify arrives.
        with contextlib.suppress(anyio.BrokenResourceError):
            await stream.aclose()

    async def main() -> None:
        listener = TLSListener(await anyio.create_tcp_listener(local_host="127.0.0.1"),
                               ends.server)
        port = listener.listener.extra(SocketAttribute.local_port)
        with anyio.fail_after(TIMEOUT):
            async with anyio.create_task_group() as tg:
                tg.start_soon(listener.serve, handler)
                async with httpx.AsyncClient(verify=ends.client) as client:
                    for path in ("/one", "/two"):
                        response = await client.get(f"https://127.0.0.1:{port}{path}")
                        assert response.status_code == 200
                        assert response.text.startswith(f"{path} via TLSv1.")
                        stream = response.extensions["network_stream"]
                        ends.check(stream.get_extra_info("ssl_object"), server_side=False)
                tg.cancel_scope.cancel()
            await listener.aclose()

    run(main)
    assert len(seen) == 2
    for obj in seen:
        ends.check(obj, server_side=True)


# --- trio's SSLStream --------------------------------------------------------------------------------


async def trio_pair(ends: FrameworkEnds, **kwargs: Any) -> tuple[trio.SSLStream[Any],
                                                               trio.SSLStream[Any]]:
    """A connected (client, server) pair of SSLStreams over TCP on 127.0.0.1 (no handshake
    yet)."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    try:
        port = listeners[0].socket.getsockname()[1]
        client_tcp = await trio.open_tcp_stream("127.0.0.1", port)
        server_tcp = await listeners[0].accept()
    finally:
        for listener in listeners:
            await listener.aclose()
    client = trio.SSLStream(client_tcp, ends.client, server_hostname="localhost", **kwargs)
    server = trio.SSLStream(server_tcp, ends.server, server_side=True, **kwargs)
    return client, server


async def trio_receive_all(stream: Any) -> bytes:
    """Everything until the stream's end (b"" from receive_some)."""
    data = b""
    while chunk := await stream.receive_some():
        data += chunk
    return data


async def trio_handshake(client: trio.SSLStream[Any], server: trio.SSLStream[Any]) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.do_handshake)
        nursery.start_soon(server.do_handshake)


def check_trio(ends: FrameworkEnds, client: trio.SSLStream[Any],
               server: trio.SSLStream[Any]) -> None:
    """What trio forwards of the SSLObject shows who did the TLS."""
    for stream, is_aiotls in ((client, ends.aiotls_client), (server, ends.aiotls_server)):
        assert isinstance(stream.context, aiotls.TLSContext) == is_aiotls
        ends.check_cipher(stream.cipher())
    # A client's session object is aiotls's own type.
    assert isinstance(client.session, aiotls.TLSSession) == ends.aiotls_client


async def trio_receive_exactly(stream: trio.SSLStream[Any], n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        chunk = await stream.receive_some()
        assert chunk, "EOF too early"
        data += chunk
    return bytes(data)


def test_trio_ssl_stream(ends: FrameworkEnds) -> None:
    size = 1 << 20
    up, down = os.urandom(size), os.urandom(size)

    async def main() -> None:
        with trio.fail_after(TIMEOUT):
            client, server = await trio_pair(ends)
            await trio_handshake(client, server)
            check_trio(ends, client, server)

            async def serve() -> None:
                got = await trio_receive_exactly(server, size)
                assert hashlib.sha256(got).digest() == hashlib.sha256(up).digest()
                await server.send_all(down)
                assert await server.receive_some() == b""  # the client's close_notify
                await server.aclose()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(serve)
                await client.send_all(up)
                assert await trio_receive_exactly(client, size) == down
                await client.aclose()

    trio.run(main)


def test_trio_unwrap_back_to_plaintext(ends: FrameworkEnds) -> None:
    """Both ends unwrap (close_notify each way), then talk in the clear on the same TCP
    connection: what followed the close_notify is handed back, not lost."""

    async def main() -> None:
        with trio.fail_after(TIMEOUT):
            client, server = await trio_pair(ends)
            await trio_handshake(client, server)
            await client.send_all(b"over TLS")
            assert await server.receive_some() == b"over TLS"
            check_trio(ends, client, server)

            async def server_side() -> None:
                assert await server.receive_some() == b""  # the client's close_notify
                transport, trailing = await server.unwrap()
                assert isinstance(transport, trio.SocketStream)
                data = bytes(trailing)
                while len(data) < len(b"in the clear"):
                    data += await transport.receive_some()
                assert data == b"in the clear"
                await transport.send_all(b"plain reply")
                await transport.aclose()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(server_side)
                transport, trailing = await client.unwrap()
                assert trailing == b""
                await transport.send_all(b"in the clear")
                assert await trio_receive_all(transport) == b"plain reply"
                await transport.aclose()

    trio.run(main)


def test_trio_https_compatible(ends: FrameworkEnds) -> None:
    """``https_compatible=True``: the server hangs up without close_notify and the client
    takes the EOF as the end of the data, not as an attack."""

    async def main() -> None:
        with trio.fail_after(TIMEOUT):
            client, server = await trio_pair(ends, https_compatible=True)
            await trio_handshake(client, server)
            await client.send_all(b"GET / HTTP/1.0\r\n\r\n")
            assert await server.receive_some() == b"GET / HTTP/1.0\r\n\r\n"
            check_trio(ends, client, server)
            await server.send_all(b"HTTP/1.0 200 OK\r\n\r\nbody")
            await server.aclose()  # no close_notify in this mode
            assert await trio_receive_all(client) == b"HTTP/1.0 200 OK\r\n\r\nbody"
            await client.aclose()

    trio.run(main)


def test_trio_eof_without_close_notify_is_an_error_by_default(ends: FrameworkEnds) -> None:
    """The default (standard-compliant) mode: a hang-up without close_notify is a possible
    truncation attack and breaks the stream."""

    async def main() -> None:
        with trio.fail_after(TIMEOUT):
            client, server = await trio_pair(ends)
            await trio_handshake(client, server)
            await client.send_all(b"hello")
            assert await server.receive_some() == b"hello"
            await server.send_all(b"partial")
            await server.transport_stream.aclose()  # TCP closed under the TLS layer
            assert await client.receive_some() == b"partial"
            with pytest.raises(trio.BrokenResourceError) as info:
                await client.receive_some()
            assert isinstance(info.value.__cause__, ssl.SSLEOFError)
            if ends.aiotls_client:
                assert isinstance(info.value.__cause__, aiotls.TruncationError)
            await client.aclose()

    trio.run(main)
