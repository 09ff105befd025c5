"""TLSContext rules: the side a context serves, settings changed after first use, RFC 7627
(extended master secret) in both roles, and the RFC 7919 FFDHE groups.

Peers: aiotls itself, tlslite-ng's own TLSConnection driven in memory (an independent
implementation whose options can leave out EMS or send bad DH values), and the
``openssl`` command-line tool over loopback (bounded waits; processes ended by the
context manager that started them).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import inspect
import os
import ssl
import tempfile
import types
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from tlslite import SessionCache
from tlslite import tlsconnection as tl_tlsconnection
from tlslite.keyexchange import ADHKeyExchange, DHE_RSAKeyExchange
from tlslite.mathtls import RFC7919_GROUPS
from tlslite.messages import ClientHello, KeyShareEntry
from tlslite.utils.codec import Parser

import aiotls
import aiotls.asyncio
from aiotls._engine import speedups
from aiotls.context import DEFAULT_GROUPS, DEFAULT_SUITES, FFDHE_GROUPS
from aiotls.events import DataReceived
from tests.certs import CA
from tests.helpers import PKI, handshake, pump
from tests.sockloop import OpenSSLProcess, SocketTLS, free_port, listen, require_openssl
from tests.tlslite_peer import RawTLS, TlslitePeer, exchange, tlslite_settings

TIMEOUT = 10.0
TLS12 = ssl.TLSVersion.TLSv1_2


def client_hello(ctx: aiotls.TLSContext) -> ClientHello:
    hello = aiotls.TLSConnection(ctx, server_hostname="localhost").data_to_send()
    return ClientHello().parse(Parser(bytearray(hello[6:])))  # record header + type


def offered_groups(ctx: aiotls.TLSContext) -> list[int]:
    ext = client_hello(ctx).getExtension(10)  # supported_groups
    return list(ext.groups) if ext is not None else []


def rsa_server(pki: PKI) -> aiotls.TLSContext:
    return pki.server_context("rsa2048")


# --- 1. the side a context serves --------------------------------------------------------------


def _server_tls_context() -> aiotls.TLSContext:
    return aiotls.TLSContext(ssl.PROTOCOL_TLS_SERVER)


def _server_default_context() -> aiotls.TLSContext:
    return aiotls.create_default_context(ssl.Purpose.CLIENT_AUTH)


SERVER_CONTEXTS: dict[str, Callable[[], aiotls.TLSContext]] = {
    "TLSContext(PROTOCOL_TLS_SERVER)": _server_tls_context,
    "create_default_context(CLIENT_AUTH)": _server_default_context,
}


def _client_contexts(pki: PKI) -> dict[str, aiotls.TLSContext]:
    with_cert = pki.client_context()
    with_cert.load_cert_chain(*pki.server())  # a certificate does not make it a server context
    return {"TLSContext()": aiotls.TLSContext(), "create_default_context()":
            aiotls.create_default_context(cafile=pki.ca_file), "client context with a cert":
            with_cert}


CLIENT_CONTEXT_NAMES = ("TLSContext()", "create_default_context()", "client context with a cert")


def test_protocol_tls_is_refused_with_the_reason() -> None:
    """The generic ssl.PROTOCOL_TLS verifies nothing by default in the ssl module; aiotls
    refuses it rather than guess a side (or verify less than a client context does)."""
    with pytest.raises(aiotls.TLSConfigurationError) as info:
        aiotls.TLSContext(ssl.PROTOCOL_TLS)
    assert "PROTOCOL_TLS_CLIENT" in info.value.hint and "PROTOCOL_TLS_SERVER" in info.value.hint
    assert "verifies nothing" in info.value.cause


def test_protocol_is_read_only() -> None:
    ctx = aiotls.TLSContext(ssl.PROTOCOL_TLS_SERVER)
    with pytest.raises(AttributeError, match="make a new TLSContext"):
        ctx.protocol = ssl.PROTOCOL_TLS_CLIENT  # type: ignore[misc]
    assert ctx.protocol == ssl.PROTOCOL_TLS_SERVER


@pytest.mark.parametrize("make", SERVER_CONTEXTS.values(), ids=SERVER_CONTEXTS.keys())
def test_server_context_is_refused_for_a_client(pki: PKI,
                                                make: Callable[[], aiotls.TLSContext]) -> None:
    ctx = make()
    ctx.load_cert_chain(*pki.server())
    with pytest.raises(aiotls.TLSUsageError) as info:
        aiotls.TLSConnection(ctx, server_hostname="localhost")
    assert info.value.code == "wrong-side-context"
    assert "ssl.PROTOCOL_TLS_CLIENT" in info.value.hint
    assert "server context" in info.value.what


@pytest.mark.parametrize("name", CLIENT_CONTEXT_NAMES)
def test_client_context_is_refused_for_a_server(pki: PKI, name: str) -> None:
    ctx = _client_contexts(pki)[name]
    with pytest.raises(aiotls.TLSUsageError) as info:
        aiotls.TLSConnection(ctx, server_side=True)
    assert info.value.code == "wrong-side-context"
    assert "ssl.PROTOCOL_TLS_SERVER" in info.value.hint
    assert "needs a certificate" not in str(info.value)  # the real mistake, not a symptom


def test_check_context_is_what_a_connection_checks(pki: PKI) -> None:
    aiotls.TLSConnection.check_context(pki.client_context(), server_side=False)
    aiotls.TLSConnection.check_context(pki.server_context(), server_side=True)
    with pytest.raises(aiotls.TLSConfigurationError, match="needs a certificate"):
        aiotls.TLSConnection.check_context(aiotls.TLSContext(ssl.PROTOCOL_TLS_SERVER),
                                           server_side=True)
    with pytest.raises(aiotls.TLSUsageError):
        aiotls.TLSConnection.check_context(pki.server_context(), server_side=False)


@dataclass
class WrongNameServer:
    """A stdlib TLS server whose certificate comes from a CA the client does not trust,
    for a name the client does not ask for; counts completed handshakes."""

    port: int
    handshakes: int = 0


@contextlib.asynccontextmanager
async def wrong_name_server() -> AsyncIterator[WrongNameServer]:
    other = CA().issue("other.test")
    with tempfile.TemporaryDirectory() as directory:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*other.write(directory, name="other"))
        state = WrongNameServer(0)

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            state.handshakes += 1
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx)
        state.port = server.sockets[0].getsockname()[1]
        try:
            yield state
        finally:
            server.close()
            await server.wait_closed()


async def _client_api(api: str, port: int, ctx: aiotls.TLSContext) -> object:
    if api == "open_connection":
        return await aiotls.asyncio.open_connection("127.0.0.1", port, ssl=ctx,
                                                    server_hostname="localhost")
    return await aiotls.asyncio.create_connection(asyncio.Protocol, "127.0.0.1", port, ssl=ctx,
                                                  server_hostname="localhost")


async def _server_api(api: str, ctx: aiotls.TLSContext) -> asyncio.Server:
    if api == "start_server":
        return await aiotls.asyncio.start_server(lambda r, w: None, "127.0.0.1", 0, ssl=ctx)
    return await aiotls.asyncio.create_server(asyncio.Protocol, "127.0.0.1", 0, ssl=ctx)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("api", ["open_connection", "create_connection"])
@pytest.mark.parametrize("make", SERVER_CONTEXTS.values(), ids=SERVER_CONTEXTS.keys())
async def test_asyncio_client_refuses_server_context(api: str,
                                                     make: Callable[[], aiotls.TLSContext]) -> None:
    """The reported case: with a server context, open_connection connected to a server
    with an untrusted certificate for another name and getpeercert() was {}."""
    async with asyncio.timeout(20), wrong_name_server() as server:
        with pytest.raises(aiotls.TLSUsageError, match="PROTOCOL_TLS_CLIENT"):
            await _client_api(api, server.port, make())
        await asyncio.sleep(0.05)
        assert server.handshakes == 0


@pytest.mark.timeout(30)
@pytest.mark.parametrize("api", ["start_server", "create_server"])
@pytest.mark.parametrize("name", CLIENT_CONTEXT_NAMES)
async def test_asyncio_server_refuses_client_context_at_startup(pki: PKI, api: str,
                                                                name: str) -> None:
    """Fails visibly when the server starts, not on every connection (DEBUG log only)."""
    ctx = _client_contexts(pki)[name]
    async with asyncio.timeout(20):
        with pytest.raises(aiotls.TLSUsageError, match="PROTOCOL_TLS_SERVER"):
            await _server_api(api, ctx)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("server_side", [False, True], ids=["client", "server"])
async def test_start_tls_refuses_wrong_side(pki: PKI, server_side: bool) -> None:
    loop = asyncio.get_running_loop()
    accepted: asyncio.Future[asyncio.BaseTransport] = loop.create_future()

    class Accept(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            if not accepted.done():
                accepted.set_result(transport)

    async with asyncio.timeout(20):
        tcp_server = await loop.create_server(Accept, "127.0.0.1", 0)
        port = tcp_server.sockets[0].getsockname()[1]
        transport, protocol = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
        other = await accepted
        try:
            if server_side:
                ctx, needed = pki.client_context(), "PROTOCOL_TLS_SERVER"
                ctx.load_cert_chain(*pki.server())
            else:
                ctx, needed = pki.server_context(), "PROTOCOL_TLS_CLIENT"
            with pytest.raises(aiotls.TLSUsageError, match=needed):
                await aiotls.asyncio.start_tls(transport, protocol, ctx, server_side=server_side,
                                               server_hostname=None if server_side
                                               else "localhost")
            assert not transport.is_closing()  # refused before touching the transport
        finally:
            transport.close()
            other.close()
            tcp_server.close()
            await tcp_server.wait_closed()


# --- 5. every setting takes effect on the next connection ----------------------------------------
#
# One row per public name of TLSContext.  Each row makes a first connection (so the engine
# has prepared and cached the context), changes the setting, and checks that the next
# connection observes the change.  test_every_public_name_has_a_row fails when a new
# attribute or method is added without a row.


def der(cert: Any) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    return bytes(cert.public_bytes(Encoding.DER))


def _ok(client: aiotls.TLSConnection, server: aiotls.TLSConnection) -> None:
    assert client.handshake_complete and server.handshake_complete, (client.error, server.error)


def row_check_hostname(pki: PKI) -> None:
    cctx = pki.client_context()
    cctx.check_hostname = False
    _ok(*handshake(cctx, pki.server_context(), "wrong.example"))
    cctx.check_hostname = True
    client, _ = handshake(cctx, pki.server_context(), "wrong.example")
    assert isinstance(client.error, aiotls.CertificateError)


def row_verify_mode(pki: PKI) -> None:
    cctx = aiotls.TLSContext()  # trusts nothing
    cctx.check_hostname = False
    cctx.verify_mode = ssl.CERT_NONE
    _ok(*handshake(cctx, pki.server_context()))
    cctx.verify_mode = ssl.CERT_REQUIRED
    client, _ = handshake(cctx, pki.server_context())
    assert isinstance(client.error, aiotls.CertificateError)


def row_minimum_version(pki: PKI) -> None:
    sctx = pki.server_context()
    cctx = pki.client_context()
    cctx.maximum_version = TLS12
    _ok(*handshake(cctx, sctx))
    sctx.minimum_version = ssl.TLSVersion.TLSv1_3
    client, server = handshake(cctx, sctx)
    assert not client.handshake_complete and server.error is not None


def row_maximum_version(pki: PKI) -> None:
    cctx = pki.client_context()
    client, _ = handshake(cctx, pki.server_context())
    assert client.version() == "TLSv1.3"
    cctx.maximum_version = TLS12
    client, _ = handshake(cctx, pki.server_context())
    assert client.version() == "TLSv1.2"


def row_load_cert_chain(pki: PKI) -> None:
    sctx = pki.server_context("ecdsa-p256")
    client, _ = handshake(pki.client_context(), sctx)
    assert client.get_unverified_chain()[0] == der(pki.servers["ecdsa-p256"][0].cert)
    sctx.load_cert_chain(*pki.server("rsa2048"))
    client, _ = handshake(pki.client_context(), sctx)
    assert client.get_unverified_chain()[0] == der(pki.servers["rsa2048"][0].cert)


def row_load_verify_locations(pki: PKI) -> None:
    cctx = aiotls.TLSContext()
    client, _ = handshake(cctx, pki.server_context())
    assert isinstance(client.error, aiotls.CertificateError)
    cctx.load_verify_locations(cafile=pki.ca_file)
    _ok(*handshake(cctx, pki.server_context()))


def row_load_default_certs(pki: PKI) -> None:
    cctx = aiotls.TLSContext()
    client, _ = handshake(cctx, pki.server_context())
    assert isinstance(client.error, aiotls.CertificateError)
    paths = types.SimpleNamespace(cafile=pki.ca_file, capath=None, openssl_cafile=None,
                                  openssl_capath=None)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ssl, "get_default_verify_paths", lambda: paths)
        cctx.load_default_certs()
    _ok(*handshake(cctx, pki.server_context()))


def row_set_session_ticket_keys(pki: PKI) -> None:
    sctx, cctx = pki.server_context(), pki.client_context()
    sctx.set_session_ticket_keys([b"k" * 32])
    first, _ = handshake(cctx, sctx)
    again = aiotls.TLSConnection(cctx, server_hostname="localhost", session=first.session)
    server = aiotls.TLSConnection(sctx, server_side=True)
    pump(again, server)
    assert server.session_reused  # the keys in use open the ticket
    sctx.set_session_ticket_keys([b"n" * 32])
    after = aiotls.TLSConnection(cctx, server_hostname="localhost", session=again.session)
    server = aiotls.TLSConnection(sctx, server_side=True)
    pump(after, server)
    _ok(after, server)
    assert not server.session_reused  # new keys: the old ticket no longer opens


def row_set_alpn_protocols(pki: PKI) -> None:
    sctx, cctx = pki.server_context(), pki.client_context()
    sctx.set_alpn_protocols(["h2"])
    client, _ = handshake(cctx, sctx)
    assert client.selected_alpn_protocol() is None
    cctx.set_alpn_protocols(["h2", "http/1.1"])
    client, _ = handshake(cctx, sctx)
    assert client.selected_alpn_protocol() == "h2"


def row_set_ciphers(pki: PKI) -> None:
    cctx = pki.client_context()
    client, _ = handshake(cctx, pki.server_context())
    assert client.cipher()[0] != "TLS_CHACHA20_POLY1305_SHA256"  # type: ignore[index]
    cctx.set_ciphers("TLS_CHACHA20_POLY1305_SHA256")
    client, _ = handshake(cctx, pki.server_context())
    assert client.cipher()[0] == "TLS_CHACHA20_POLY1305_SHA256"  # type: ignore[index]


def row_set_groups(pki: PKI) -> None:
    cctx = pki.client_context()
    client, _ = handshake(cctx, pki.server_context())
    assert client.group == "x25519"
    cctx.set_groups(["secp384r1"])
    client, _ = handshake(cctx, pki.server_context())
    assert client.group == "secp384r1"


def row_suppress_ragged_eofs(pki: PKI) -> None:
    cctx = pki.client_context()
    client, _ = handshake(cctx, pki.server_context())
    client.receive_data(b"")
    assert isinstance(client.error, aiotls.TruncationError)
    cctx.suppress_ragged_eofs = True
    client, _ = handshake(cctx, pki.server_context())
    client.receive_data(b"")
    (*_, last) = client.events()
    assert last.error is None and last.truncated  # type: ignore[union-attr]


def row_max_handshake_size(pki: PKI) -> None:
    cctx = pki.client_context()
    _ok(*handshake(cctx, rsa_server(pki)))
    cctx.max_handshake_size = 1024  # an RSA server's flight is larger
    client, _ = handshake(cctx, rsa_server(pki))
    assert client.error is not None and "handshake exceeded 1024 bytes" in str(client.error)


def row_record_size_limit(pki: PKI) -> None:
    cctx = pki.client_context()
    client, server = handshake(cctx, pki.server_context())
    _ok(client, server)
    assert server._engine._records.send_limit == 2**14
    cctx.record_size_limit = 100
    client, server = handshake(cctx, pki.server_context())
    _ok(client, server)
    assert client._engine._records.recv_limit == server._engine._records.send_limit == 99


def row_record_padding(pki: PKI) -> None:
    sctx = pki.server_context()
    for padding, size in ((None, 1 + 1), (100, 100), (lambda t, n: 3, 1 + 1 + 3)):
        sctx.record_padding = padding
        client, server = handshake(pki.client_context(), sctx)
        _ok(client, server)
        server.send_data(b"x")
        assert len(server.data_to_send()) == 5 + size + 16


def row_certificate_compression(pki: PKI) -> None:
    cctx, sctx = pki.client_context(), pki.server_context()
    for client_side, server_side, used in ((("zlib",), ("zlib",), "zlib"),
                                           ((), ("zlib",), None), (("zlib",), (), None)):
        cctx.certificate_compression = client_side
        sctx.certificate_compression = server_side
        client, server = handshake(cctx, sctx)
        _ok(client, server)
        assert client._engine._tl.server_cert_compression_algo == used


def row_post_handshake_auth(pki: PKI) -> None:
    sctx = pki.server_context()
    sctx.verify_mode = ssl.CERT_REQUIRED
    sctx.load_verify_locations(cafile=pki.ca_file)
    cctx = pki.client_context()
    cctx.load_cert_chain(pki.client[1], pki.client[2])
    _, server = handshake(cctx, sctx)
    assert server.get_unverified_chain()  # asked for during the handshake
    sctx.post_handshake_auth = True
    client, server = handshake(cctx, sctx)
    _ok(client, server)
    assert not server.get_unverified_chain()  # deferred to verify_client_post_handshake()


def _tickets_seen_by_tlslite(sctx: aiotls.TLSContext) -> list[Any]:
    peer = TlslitePeer.client(tlslite_settings())
    server = aiotls.TLSConnection(sctx, server_side=True)
    exchange(peer, server)
    assert peer.handshake_done, (peer.error, server.error)
    return list(peer.tls.tickets)


def row_num_tickets(pki: PKI) -> None:
    sctx = pki.server_context()
    assert len(_tickets_seen_by_tlslite(sctx)) == 2
    sctx.num_tickets = 1
    assert len(_tickets_seen_by_tlslite(sctx)) == 1


def row_session_ticket_lifetime(pki: PKI) -> None:
    sctx = pki.server_context()
    assert {t.ticket_lifetime for t in _tickets_seen_by_tlslite(sctx)} == {7200}
    sctx.session_ticket_lifetime = 60
    assert {t.ticket_lifetime for t in _tickets_seen_by_tlslite(sctx)} == {60}


def _tls12_client_without_ems(sctx: aiotls.TLSContext) -> tuple[TlslitePeer,
                                                                 aiotls.TLSConnection]:
    peer = TlslitePeer.client(tlslite_settings(max_version=(3, 3), ems=False))
    server = aiotls.TLSConnection(sctx, server_side=True)
    exchange(peer, server)
    return peer, server


def row_require_extended_master_secret(pki: PKI) -> None:
    sctx = pki.server_context()
    _, server = _tls12_client_without_ems(sctx)
    assert isinstance(server.error, aiotls.PeerIncompatible)
    sctx.require_extended_master_secret = False
    peer, server = _tls12_client_without_ems(sctx)
    assert server.handshake_complete and peer.handshake_done, (server.error, peer.error)


def row_protocol(pki: PKI) -> None:
    sctx = pki.server_context()
    _ok(*handshake(pki.client_context(), sctx))
    with pytest.raises(AttributeError):
        sctx.protocol = ssl.PROTOCOL_TLS_CLIENT  # type: ignore[misc]
    _ok(*handshake(pki.client_context(), sctx))


def row_get_groups(pki: PKI) -> None:
    cctx = pki.client_context()
    _ok(*handshake(cctx, pki.server_context()))
    cctx.get_groups().insert(0, "secp384r1")  # a copy: changes nothing
    client, _ = handshake(cctx, pki.server_context())
    assert client.group == "x25519" and cctx.get_groups() == list(DEFAULT_GROUPS)


def row_get_ciphers(pki: PKI) -> None:
    cctx = pki.client_context()
    _ok(*handshake(cctx, pki.server_context()))
    cctx.get_ciphers().clear()
    assert [c["iana_name"] for c in cctx.get_ciphers()] == [s.name for s in DEFAULT_SUITES]
    _ok(*handshake(cctx, pki.server_context()))


def row_get_ca_certs(pki: PKI) -> None:
    cctx = pki.client_context()
    _ok(*handshake(cctx, pki.server_context()))
    cctx.get_ca_certs(binary_form=True).clear()
    cctx.get_ca_certs().clear()
    assert len(cctx.get_ca_certs()) == 1
    _ok(*handshake(cctx, pki.server_context()))


def row_cert_store_stats(pki: PKI) -> None:
    cctx = pki.client_context()
    _ok(*handshake(cctx, pki.server_context()))
    cctx.cert_store_stats()["x509"] = 0
    assert cctx.cert_store_stats()["x509"] == 1
    _ok(*handshake(cctx, pki.server_context()))


def row_options(pki: PKI) -> None:
    cctx = pki.client_context()
    assert handshake(cctx, pki.server_context())[0].version() == "TLSv1.3"
    cctx.options |= ssl.OP_NO_TLSv1_3  # (the stdlib way to say maximum_version = TLSv1.2)
    assert cctx.maximum_version == TLS12 and cctx.options & ssl.OP_NO_TLSv1_3
    assert handshake(cctx, pki.server_context())[0].version() == "TLSv1.2"
    cctx.options &= ~ssl.OP_NO_TLSv1_3  # clearing never widens: that is maximum_version's job
    assert cctx.maximum_version == TLS12
    sctx = pki.server_context()
    sctx.options |= ssl.OP_NO_TICKET
    assert sctx.num_tickets == 0 and _tickets_seen_by_tlslite(sctx) == []
    cctx.options |= ssl.OP_IGNORE_UNEXPECTED_EOF
    assert cctx.suppress_ragged_eofs
    with pytest.raises(aiotls.TLSConfigurationError, match="contiguous"):
        cctx.options |= ssl.OP_NO_TLSv1_2  # (nothing left between 1.2 and 1.2)


def row_verify_flags(pki: PKI) -> None:
    cctx = pki.client_context()
    cctx.verify_flags = ssl.VERIFY_DEFAULT
    assert cctx.verify_flags & ssl.VERIFY_X509_STRICT  # always applied, so always reported
    for flag in (ssl.VERIFY_CRL_CHECK_LEAF, ssl.VERIFY_CRL_CHECK_CHAIN):
        with pytest.raises(aiotls.TLSConfigurationError, match="CRL"):
            cctx.verify_flags |= flag
    assert not cctx.verify_flags & ssl.VERIFY_CRL_CHECK_LEAF
    _ok(*handshake(cctx, pki.server_context()))


def _refused_setting(pki: PKI, name: str, value: Any, off: Any) -> None:
    cctx = pki.client_context()
    with pytest.raises(aiotls.TLSConfigurationError):
        setattr(cctx, name, value)
    assert getattr(cctx, name) == off
    setattr(cctx, name, off)  # the value aiotls has is accepted
    _ok(*handshake(cctx, pki.server_context()))


def row_hostname_checks_common_name(pki: PKI) -> None:
    _refused_setting(pki, "hostname_checks_common_name", True, False)


def row_keylog_filename(pki: PKI) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "keys")
        cctx = pki.client_context()
        cctx.keylog_filename = path
        assert cctx.keylog_filename == path
        _ok(*handshake(cctx, pki.server_context()))
        with open(path) as f:
            assert "CLIENT_TRAFFIC_SECRET_0 " in f.read()  # (tests/test_keylog.py: the rest)


def row_trace_handshakes(pki: PKI) -> None:
    import logging

    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("aiotls.trace")
    logger.addHandler(handler)
    try:
        cctx = pki.client_context()
        _ok(*handshake(cctx, pki.server_context()))
        assert records == []  # (off by default: tests/test_trace.py has the rest)
        cctx.trace_handshakes = True
        assert cctx.trace_handshakes
        _ok(*handshake(cctx, pki.server_context()))
        assert "ClientHello" in records[0].getMessage()
    finally:
        logger.removeHandler(handler)


def row_sni_callback(pki: PKI) -> None:
    sctx, other = pki.server_context("ecdsa-p256"), pki.server_context("rsa2048")
    client, _ = handshake(pki.client_context(), sctx)
    assert client.get_unverified_chain()[0] == der(pki.servers["ecdsa-p256"][0].cert)
    names: list[str | None] = []

    def switch(conn: Any, name: str | None, ctx: Any) -> None:
        names.append(name)
        conn.context = other

    sctx.sni_callback = switch
    assert sctx.sni_callback is switch
    client, _ = handshake(pki.client_context(), sctx)
    assert client.get_unverified_chain()[0] == der(pki.servers["rsa2048"][0].cert)
    assert names == ["localhost"]
    sctx.sni_callback = None
    client, _ = handshake(pki.client_context(), sctx)
    assert client.get_unverified_chain()[0] == der(pki.servers["ecdsa-p256"][0].cert)


def row_set_servername_callback(pki: PKI) -> None:
    sctx = pki.server_context()
    _ok(*handshake(pki.client_context(), sctx))
    sctx.set_servername_callback(lambda obj, name, ctx: ssl.ALERT_DESCRIPTION_ACCESS_DENIED)
    assert sctx.sni_callback is not None
    client, server = handshake(pki.client_context(), sctx)
    assert server.error is not None and server.error.code == "sni-refused"
    sctx.set_servername_callback(None)
    _ok(*handshake(pki.client_context(), sctx))


def row_sni_contexts(pki: PKI) -> None:
    sctx, other = pki.server_context("ecdsa-p256"), pki.server_context("rsa2048")
    client, _ = handshake(pki.client_context(), sctx, "example.test")
    assert client.get_unverified_chain()[0] == der(pki.servers["ecdsa-p256"][0].cert)
    sctx.sni_contexts = {"example.test": other}
    client, _ = handshake(pki.client_context(), sctx, "example.test")
    assert client.get_unverified_chain()[0] == der(pki.servers["rsa2048"][0].cert)
    sctx.sni_contexts = {}
    client, _ = handshake(pki.client_context(), sctx, "example.test")
    assert client.get_unverified_chain()[0] == der(pki.servers["ecdsa-p256"][0].cert)


def row_sni_strict(pki: PKI) -> None:
    sctx = pki.server_context()
    sctx.sni_contexts = {"example.test": pki.server_context("rsa2048")}
    _ok(*handshake(pki.client_context(), sctx, "localhost"))
    sctx.sni_strict = True
    client, server = handshake(pki.client_context(), sctx, "localhost")
    assert server.error is not None and server.error.code == "unrecognized-name"
    _ok(*handshake(pki.client_context(), sctx, "example.test"))
    sctx.sni_strict = False
    _ok(*handshake(pki.client_context(), sctx, "localhost"))


def row_alpn_mismatch_alert(pki: PKI) -> None:
    sctx, cctx = pki.server_context(), pki.client_context()
    sctx.set_alpn_protocols(["h2"])
    cctx.set_alpn_protocols(["spdy/3"])
    client, server = handshake(cctx, sctx)
    assert server.error is not None and server.error.alert_number == 120
    sctx.alpn_mismatch_alert = False
    client, server = handshake(cctx, sctx)
    _ok(client, server)
    assert client.selected_alpn_protocol() is None
    sctx.alpn_mismatch_alert = True
    assert handshake(cctx, sctx)[1].error is not None


def row_client_certificate_chooser(pki: PKI) -> None:
    cctx, sctx = pki.mtls_contexts()
    _ok(*handshake(cctx, sctx))
    cctx.client_certificate_chooser = lambda request: None
    client, server = handshake(cctx, sctx)
    assert server.error is not None and not server.handshake_complete
    cctx.client_certificate_chooser = lambda request: request.identities[0]
    _ok(*handshake(cctx, sctx))
    cctx.client_certificate_chooser = None
    _ok(*handshake(cctx, sctx))


def row_security_level(pki: PKI) -> None:
    cctx = pki.client_context()
    with pytest.raises(AttributeError):
        cctx.security_level = 0  # type: ignore[misc]
    assert cctx.security_level == 2


def row_load_dh_params(pki: PKI) -> None:
    sctx = rsa_server(pki)
    with pytest.raises(aiotls.TLSConfigurationError, match="set_groups"):
        sctx.load_dh_params(pki.ca_file)
    _ok(*handshake(pki.client_context(), sctx))


def row_set_ecdh_curve(pki: PKI) -> None:
    cctx = pki.client_context()
    cctx.set_ecdh_curve("secp384r1")
    assert cctx.get_groups() == ["secp384r1"]
    assert handshake(cctx, pki.server_context())[0].group == "secp384r1"


def row_set_npn_protocols(pki: PKI) -> None:
    cctx = pki.client_context()
    with pytest.raises(aiotls.TLSConfigurationError, match="set_alpn_protocols"):
        cctx.set_npn_protocols(["http/1.1"])
    _ok(*handshake(cctx, pki.server_context()))


def row_set_default_verify_paths(pki: PKI) -> None:
    cctx = pki.client_context()
    before = cctx.cert_store_stats()["x509"]
    cctx.set_default_verify_paths()
    assert cctx.cert_store_stats()["x509"] >= before
    _ok(*handshake(cctx, pki.server_context()))  # the test CA is still trusted


def row_session_stats(pki: PKI) -> None:
    with pytest.raises(aiotls.TLSConfigurationError, match="session cache"):
        pki.server_context().session_stats()


def row_sslobject_class(pki: PKI) -> None:
    from aiotls.compat import TLSObject

    assert pki.client_context().sslobject_class is TLSObject


def row_sslsocket_class(pki: PKI) -> None:
    from aiotls.sync import TLSSocket

    assert pki.client_context().sslsocket_class is TLSSocket


def row_wrap_bio(pki: PKI) -> None:
    cctx = pki.client_context()
    first = cctx.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname="localhost")
    cctx.maximum_version = TLS12
    second = cctx.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname="localhost")
    assert isinstance(first, ssl.SSLObject) and isinstance(second, ssl.SSLObject)
    versions = [client_hello_of(obj).getExtension(43) for obj in (first, second)]
    assert [v is not None and (3, 4) in v.versions for v in versions] == [True, False]


def client_hello_of(obj: ssl.SSLObject) -> ClientHello:
    incoming, outgoing = obj._incoming, obj._outgoing  # type: ignore[attr-defined]
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    assert incoming.pending == 0
    hello = outgoing.read()
    return ClientHello().parse(Parser(bytearray(hello[6:])))


def row_wrap_socket(pki: PKI) -> None:
    import socket

    from aiotls.sync import TLSSocket

    a, b = socket.socketpair()
    with a, b:
        wrapped = pki.client_context().wrap_socket(a, server_hostname="localhost",
                                                   do_handshake_on_connect=False)
        assert isinstance(wrapped, TLSSocket)
        wrapped.close()


PSK = bytes(range(32))


def row_set_psk_client_callback(pki: PKI) -> None:
    cctx = pki.client_context()
    sctx = pki.server_context()
    sctx.set_external_psks({"c": PSK})
    assert handshake(cctx, sctx)[0].psk_identity is None
    cctx.set_psk_client_callback(lambda hint: ("c", PSK))
    assert handshake(cctx, sctx)[0].psk_identity == b"c"
    cctx.set_psk_client_callback(None)
    assert handshake(cctx, sctx)[0].psk_identity is None


def row_set_psk_server_callback(pki: PKI) -> None:
    cctx = pki.client_context()
    cctx.set_external_psks({"c": PSK})
    sctx = pki.server_context()
    assert handshake(cctx, sctx)[1].psk_identity is None
    sctx.set_psk_server_callback(lambda identity: PSK)
    assert handshake(cctx, sctx)[1].psk_identity == b"c"
    sctx.set_psk_server_callback(None)
    assert handshake(cctx, sctx)[1].psk_identity is None


def row_set_external_psks(pki: PKI) -> None:
    cctx = pki.client_context()
    sctx = pki.server_context()
    sctx.set_external_psks({"c": PSK})
    assert handshake(cctx, sctx)[0].psk_identity is None
    cctx.set_external_psks({"c": PSK})
    assert handshake(cctx, sctx)[0].psk_identity == b"c"
    sctx.set_external_psks({"c": (PSK, "sha384")})  # both ends' hashes must match
    assert handshake(cctx, sctx)[1].error is not None
    cctx.set_external_psks({"c": PSK}, hash="sha384")
    assert handshake(cctx, sctx)[0].cipher()[0] == "TLS_AES_256_GCM_SHA384"  # type: ignore[index]


def row_get_external_psk_identities(pki: PKI) -> None:
    cctx = pki.client_context()
    assert cctx.get_external_psk_identities() == []
    cctx.set_external_psks({"c": PSK, b"d": PSK})
    assert cctx.get_external_psk_identities() == [b"c", b"d"]


def row_psk_modes(pki: PKI) -> None:
    cctx, sctx = pki.client_context(), pki.server_context()
    cctx.set_external_psks({"c": PSK})
    sctx.set_external_psks({"c": PSK})
    sctx.psk_modes = ("psk_dhe_ke", "psk_ke")
    assert handshake(cctx, sctx)[0].group == "x25519"
    cctx.psk_modes = ("psk_ke",)
    client, _ = handshake(cctx, sctx)
    assert client.psk_identity == b"c" and client.group is None
    sctx.psk_modes = ("psk_dhe_ke",)  # the server refuses psk_ke: the certificate instead
    client, _ = handshake(cctx, sctx)
    assert client.psk_identity is None and client.group == "x25519"


def row_set_ciphersuites(pki: PKI) -> None:
    cctx = pki.client_context()
    client, _ = handshake(cctx, pki.server_context())
    assert client.cipher()[0] == "TLS_AES_256_GCM_SHA384"  # type: ignore[index]
    with pytest.raises(aiotls.TLSConfigurationError, match="would also enable"):
        # (suites go by bulk cipher: the default TLS 1.2 suites keep AES-GCM on)
        cctx.set_ciphersuites("TLS_CHACHA20_POLY1305_SHA256")
    assert handshake(cctx, pki.server_context())[0].cipher()[0] == "TLS_AES_256_GCM_SHA384"  # type: ignore[index]
    cctx.set_ciphers("ECDHE-ECDSA-CHACHA20-POLY1305")  # TLS 1.2 only
    cctx.set_ciphersuites("TLS_CHACHA20_POLY1305_SHA256")
    client, _ = handshake(cctx, pki.server_context())
    assert client.cipher()[0] == "TLS_CHACHA20_POLY1305_SHA256"  # type: ignore[index]
    assert {c["name"] for c in cctx.get_ciphers()} == {"TLS_CHACHA20_POLY1305_SHA256",
                                                       "ECDHE-ECDSA-CHACHA20-POLY1305"}
    with pytest.raises(aiotls.TLSConfigurationError, match="unknown TLS 1\\.3"):
        cctx.set_ciphersuites("ECDHE-ECDSA-AES128-GCM-SHA256")


def row_set_client_sigalgs(pki: PKI) -> None:
    with pytest.raises(aiotls.TLSConfigurationError):
        pki.client_context().set_client_sigalgs("ECDSA+SHA256")


def row_set_server_sigalgs(pki: PKI) -> None:
    with pytest.raises(aiotls.TLSConfigurationError):
        pki.server_context().set_server_sigalgs("ECDSA+SHA256")


ROWS: dict[str, Callable[[PKI], None]] = {
    name[len("row_"):]: fn for name, fn in globals().items() if name.startswith("row_")
}


def _public_names() -> set[str]:
    names = {n for n in dir(aiotls.TLSContext) if not n.startswith("_")}
    for ctx in (aiotls.TLSContext(), aiotls.TLSContext(ssl.PROTOCOL_TLS_SERVER)):
        names |= {n for n in vars(ctx) if not n.startswith("_")}
    return names


def test_every_public_name_has_a_row() -> None:
    """A new TLSContext attribute, property or method needs a row in ROWS showing that a
    change after first use reaches the next connection (or is refused clearly)."""
    assert _public_names() == set(ROWS)


@pytest.mark.parametrize("name", sorted(ROWS))
def test_change_after_first_use_takes_effect(pki: PKI, name: str) -> None:
    ROWS[name](pki)


def test_setting_the_same_alpn_list_keeps_the_prepared_settings(pki: PKI) -> None:
    """httpx calls set_alpn_protocols() with the same list before every connection: that
    must not rebuild the engine's prepared settings (certificate chain, key) each time."""
    cctx = pki.client_context()
    cctx.set_alpn_protocols(["http/1.1"])
    before = cctx._generation
    cctx.set_alpn_protocols(["http/1.1"])
    assert cctx._generation == before
    cctx.set_alpn_protocols(["h2", "http/1.1"])
    assert cctx._generation > before


def test_a_change_made_while_settings_are_prepared_is_not_lost(
        pki: PKI, monkeypatch: pytest.MonkeyPatch) -> None:
    """wrap_bio() may prepare a context's settings in a worker thread while the loop's
    thread changes the context: the change must reach the next connection."""
    from aiotls import _engine

    cctx = pki.client_context()
    original = _engine.settings._settings
    changed = []

    def settings_then_a_change(ctx: aiotls.TLSContext) -> Any:
        result = original(ctx)
        if ctx is cctx and not changed:
            ctx.maximum_version = TLS12  # what another thread did meanwhile
            changed.append(True)
        return result

    monkeypatch.setattr(_engine.settings, "_settings", settings_then_a_change)
    client, _ = handshake(cctx, pki.server_context())
    assert client.version() == "TLSv1.3"  # prepared before the change
    client, _ = handshake(cctx, pki.server_context())
    assert client.version() == "TLSv1.2"


def test_public_assignments_invalidate_the_prepared_settings(pki: PKI) -> None:
    """The safety net for attributes added later: any public assignment moves the
    generation the engine's cache is keyed on (private names do not)."""
    ctx = pki.client_context()
    before = ctx._generation
    ctx.some_future_setting = 1  # type: ignore[attr-defined]
    assert ctx._generation > before
    before = ctx._generation
    ctx._private_scratch = 1  # type: ignore[attr-defined]
    assert ctx._generation == before


def test_prepared_settings_are_kept_until_a_change(pki: PKI) -> None:
    """The cache that makes handshakes cheap stays in use while nothing changes."""
    from aiotls._engine.settings import _prepare

    ctx = pki.server_context()
    _ok(*handshake(pki.client_context(), ctx))
    first = _prepare(ctx)
    _ok(*handshake(pki.client_context(), ctx))
    assert _prepare(ctx) is first
    ctx.num_tickets = 1
    assert _prepare(ctx) is not first
    assert _prepare(ctx).server_settings.ticket_count == 1


@pytest.mark.parametrize(("attr", "bad"), [
    ("num_tickets", -1), ("num_tickets", "2"), ("session_ticket_lifetime", 0),
    ("session_ticket_lifetime", 604801), ("max_handshake_size", 10),
    ("suppress_ragged_eofs", "yes"), ("post_handshake_auth", None),
    ("require_extended_master_secret", "no"), ("trace_handshakes", "yes"),
])
def test_invalid_values_are_refused_when_set(attr: str, bad: object) -> None:
    ctx = aiotls.TLSContext(ssl.PROTOCOL_TLS_SERVER)
    before = getattr(ctx, attr)
    with pytest.raises(aiotls.TLSConfigurationError, match=attr):
        setattr(ctx, attr, bad)
    assert getattr(ctx, attr) == before


def test_every_setter_is_documented() -> None:
    for name, member in inspect.getmembers(aiotls.TLSContext):
        if not name.startswith("_") and isinstance(member, property):
            assert member.__doc__, name


# --- 6. RFC 7627 extended master secret, both roles ----------------------------------------------


def _tlslite_tls12_server(pki: PKI, *, ems: bool,
                          cls: type[RawTLS] = RawTLS) -> TlslitePeer:
    return TlslitePeer.server(tlslite_settings(max_version=(3, 3), ems=ems),
                              pki.server("rsa2048"), tls_class=cls)


@pytest.mark.parametrize("required", [True, False])
def test_client_and_tlslite_server_without_ems(pki: PKI, required: bool) -> None:
    cctx = pki.client_context()
    cctx.require_extended_master_secret = required
    peer = _tlslite_tls12_server(pki, ems=False)
    client = aiotls.TLSConnection(cctx, server_hostname="localhost")
    exchange(peer, client)
    if required:
        err = client.error
        assert isinstance(err, aiotls.PeerIncompatible), err
        assert err.code == "extended-master-secret-required"
        assert err.alert == aiotls.AlertDescription.handshake_failure
        assert "the server does not support" in err.what and "RFC 7627" in err.what
        assert "require_extended_master_secret = False" in err.hint
        assert not peer.handshake_done and peer.error is not None  # it got the alert
    else:
        assert client.version() == "TLSv1.2", client.error
        assert peer.handshake_done and not peer.tls.extendedMasterSecret


@pytest.mark.parametrize("required", [True, False])
def test_server_and_tlslite_client_without_ems(pki: PKI, required: bool) -> None:
    sctx = pki.server_context()
    sctx.require_extended_master_secret = required
    peer, server = _tls12_client_without_ems(sctx)
    if required:
        err = server.error
        assert isinstance(err, aiotls.PeerIncompatible), err
        assert err.code == "extended-master-secret-required"
        assert "the client does not support" in err.what and "RFC 7627" in err.what
        assert "require_extended_master_secret = False" in err.hint
        assert peer.error is not None and not peer.handshake_done
    else:
        assert server.version() == "TLSv1.2" and peer.handshake_done, (server.error, peer.error)
        server.send_data(b"hello")
        exchange(peer, server)
        assert bytes(peer.received) == b"hello"


def test_ems_is_offered_and_used_when_not_required(pki: PKI) -> None:
    cctx = pki.client_context()
    cctx.require_extended_master_secret = False
    assert 23 in {e.extType for e in client_hello(cctx).extensions}
    peer = _tlslite_tls12_server(pki, ems=True)
    client = aiotls.TLSConnection(cctx, server_hostname="localhost")
    exchange(peer, client)
    assert client.version() == "TLSv1.2" and peer.tls.extendedMasterSecret
    # ... and the server role agrees to EMS with a client that offers it
    sctx = pki.server_context()
    sctx.require_extended_master_secret = False
    peer = TlslitePeer.client(tlslite_settings(max_version=(3, 3)))
    server = aiotls.TLSConnection(sctx, server_side=True)
    exchange(peer, server)
    assert peer.handshake_done and peer.tls.extendedMasterSecret


def test_resumption_must_keep_the_sessions_ems_status(pki: PKI) -> None:
    """RFC 7627 5.3 (reachable with require_extended_master_secret = False): a session made
    without EMS that a server resumes *with* EMS (or the reverse) is aborted, not resumed."""
    cctx = pki.client_context()
    cctx.require_extended_master_secret = False
    cache = SessionCache()
    peer = TlslitePeer.server(tlslite_settings(max_version=(3, 3), ems=False),
                              pki.server("rsa2048"), session_cache=cache)
    first = aiotls.TLSConnection(cctx, server_hostname="localhost")
    exchange(peer, first)
    assert first.version() == "TLSv1.2" and peer.handshake_done, first.error
    assert first.session is not None
    # a server that now claims the session had EMS (it resumes and sends the extension)
    cache[peer.tls.session.sessionID].extendedMasterSecret = True
    peer = TlslitePeer.server(tlslite_settings(max_version=(3, 3)), pki.server("rsa2048"),
                              session_cache=cache)
    again = aiotls.TLSConnection(cctx, server_hostname="localhost", session=first.session)
    exchange(peer, again)
    err = again.error
    assert isinstance(err, aiotls.PeerMisbehaved), err
    assert err.code == "extended-master-secret-mismatch" and "RFC 7627" in err.what
    assert not again.handshake_complete


class _TicketAwareTLS(RawTLS):  # type: ignore[misc]
    """tlslite-ng's client takes any ticket-holding TLS 1.2 session as resumed, whatever
    the server answered; this one follows RFC 5077 3.4 (resumed only if the server echoes
    the session ID sent with the ticket)."""

    def _clientResume(self, session: Any, serverHello: Any, *args: Any) -> Any:
        if session is not None and session.tls_1_0_tickets and not (
                session.sessionID and serverHello.session_id == session.sessionID):
            return
        yield from super()._clientResume(session, serverHello, *args)


@pytest.mark.parametrize(("first_ems", "second_ems"),
                         [(True, True), (True, False), (False, False), (False, True)])
def test_server_resumption_keeps_the_sessions_ems_status(pki: PKI, first_ems: bool,
                                                         second_ems: bool) -> None:
    """The server side of RFC 7627 5.3 with aiotls's tickets: a session resumes with the
    EMS status it was made with; made with EMS, it is not resumed without it
    (handshake_failure); made without, it is not resumed with it (a full handshake)."""
    sctx = pki.server_context()
    sctx.require_extended_master_secret = False
    peer = TlslitePeer.client(tlslite_settings(max_version=(3, 3), ems=first_ems))
    server = aiotls.TLSConnection(sctx, server_side=True)
    exchange(peer, server)
    assert peer.handshake_done and peer.tls.session.tls_1_0_tickets, (peer.error, server.error)
    session = copy.copy(peer.tls.session)
    session.sessionID = bytearray(os.urandom(32))
    again = TlslitePeer.client(tlslite_settings(max_version=(3, 3), ems=second_ems),
                               session=session, tls_class=_TicketAwareTLS)
    server = aiotls.TLSConnection(sctx, server_side=True)
    exchange(again, server)
    if first_ems == second_ems:
        assert server.session_reused, server.error
    elif first_ems:
        assert server.error is not None
        assert server.error.alert == aiotls.AlertDescription.handshake_failure
    else:
        assert server.handshake_complete and not server.session_reused, server.error
        assert again.tls.extendedMasterSecret


def test_tls13_is_unaffected_by_the_ems_rule(pki: PKI) -> None:
    """TLS 1.3 has no EMS extension; a required EMS must not fire there."""
    peer = TlslitePeer.client(tlslite_settings(ems=False))
    server = aiotls.TLSConnection(pki.server_context(), server_side=True)
    exchange(peer, server)
    assert server.version() == "TLSv1.3", server.error



@pytest.fixture(scope="module")
def no_ems_conf() -> Iterator[dict[str, str]]:
    """OpenSSL 3.0 has no -no_ems flag: an OPENSSL_CONF that turns EMS off (the
    ``Options = -ExtendedMasterSecret`` command of SSL_CONF_cmd)."""
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "no-ems.cnf")
        with open(path, "w") as f:
            f.write("openssl_conf = openssl_init\n[openssl_init]\nssl_conf = ssl_sect\n"
                    "[ssl_sect]\nsystem_default = system_default_sect\n"
                    "[system_default_sect]\nOptions = -ExtendedMasterSecret\n")
        yield {"OPENSSL_CONF": path}


@pytest.mark.interop
@pytest.mark.parametrize("required", [True, False])
def test_client_and_openssl_s_server_without_ems(pki: PKI, no_ems_conf: dict[str, str],
                                                 required: bool) -> None:
    openssl_bin = require_openssl()
    cctx = pki.client_context()
    cctx.require_extended_master_secret = required
    certfile, keyfile = pki.server("rsa2048")
    port = free_port()
    argv = [openssl_bin, "s_server", "-accept", f"127.0.0.1:{port}", "-cert", certfile,
            "-key", keyfile, "-tls1_2", "-naccept", "1", "-rev"]
    with OpenSSLProcess(argv, env=no_ems_conf) as server:
        server.wait_for_output("ACCEPT", TIMEOUT)
        with SocketTLS.connect(cctx, ("127.0.0.1", port), server_hostname="localhost",
                               timeout=TIMEOUT) as tls:
            if required:
                with pytest.raises(AssertionError) as info:
                    tls.handshake()
                err = tls.conn.error
                assert isinstance(err, aiotls.PeerIncompatible), info.value
                assert "RFC 7627" in err.what and "require_extended_master_secret" in err.hint
            else:
                hs = tls.handshake()
                assert hs.version == "TLSv1.2"
                tls.send(b"abc\n")
                assert tls.recv_line() == b"cba\n"
                tls.close()
        server.wait(TIMEOUT)


@pytest.mark.interop
@pytest.mark.parametrize("required", [True, False])
def test_server_and_openssl_s_client_without_ems(pki: PKI, no_ems_conf: dict[str, str],
                                                 required: bool) -> None:
    openssl_bin = require_openssl()
    sctx = pki.server_context("rsa2048")
    sctx.require_extended_master_secret = required
    with listen("127.0.0.1", TIMEOUT) as listener:
        port = listener.getsockname()[1]
        argv = [openssl_bin, "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_2",
                "-CAfile", pki.ca_file, "-servername", "localhost", "-ign_eof", "-nocommands"]
        with OpenSSLProcess(argv, stdin=b"ping\n", env=no_ems_conf) as client:
            client.close_stdin()
            with SocketTLS.accept(sctx, listener, timeout=TIMEOUT) as tls:
                if required:
                    with pytest.raises(AssertionError):
                        tls.handshake()
                    err = tls.conn.error
                    assert isinstance(err, aiotls.PeerIncompatible), err
                    assert "the client does not support" in err.what
                    assert "RFC 7627" in err.what and "require_extended_master_secret" in err.hint
                else:
                    hs = tls.handshake()
                    assert hs.version == "TLSv1.2"
                    assert tls.recv_line() == b"ping\n"
                    tls.close()
            rc, output = client.wait(TIMEOUT)
    if required:
        assert rc != 0 and "alert insufficient security" in output, output
    else:
        assert rc == 0 and "Extended master secret: no" in output, output


# --- FFDHE (RFC 7919) --------------------------------------------------------------------------


def _ffdhe_pair(pki: PKI, group: str, version: str) -> tuple[aiotls.TLSContext,
                                                             aiotls.TLSContext]:
    sctx = rsa_server(pki)
    sctx.set_groups(["x25519", "secp256r1", group])
    cctx = pki.client_context()
    cctx.set_groups([group])
    if version == "TLSv1.2":
        cctx.maximum_version = TLS12
        sctx.set_ciphers("DEFAULT:DHE-RSA-AES128-GCM-SHA256")
        cctx.set_ciphers("DHE-RSA-AES256-GCM-SHA384:DHE-RSA-AES128-GCM-SHA256")
    return cctx, sctx


def test_ffdhe_is_off_by_default(pki: PKI) -> None:
    ctx = aiotls.TLSContext()
    assert ctx.get_groups() == list(DEFAULT_GROUPS)
    assert not any(g in range(256, 512) for g in offered_groups(ctx))
    assert not any(c["name"][:7] == "DHE-RSA" for c in ctx.get_ciphers())
    # a DHE suite alone changes nothing without an FFDHE group
    ctx.set_ciphers("DEFAULT:DHE-RSA-AES128-GCM-SHA256")
    hello = client_hello(ctx)
    assert 0x009E not in hello.cipher_suites
    assert not any(g in range(256, 512) for g in offered_groups(ctx))


@pytest.mark.parametrize("version", ["TLSv1.3", "TLSv1.2"])
@pytest.mark.parametrize("group", FFDHE_GROUPS)
def test_ffdhe_each_group(pki: PKI, group: str, version: str) -> None:
    cctx, sctx = _ffdhe_pair(pki, group, version)
    client, server = handshake(cctx, sctx)
    assert client.version() == version, client.error or server.error
    assert client.group == server.group == group
    if version == "TLSv1.2":
        assert client.cipher()[0].startswith("DHE-RSA-")  # type: ignore[index]
    client.send_data(b"over " + group.encode())
    pump(client, server)
    assert b"".join(e.data for e in server.events() if isinstance(e, DataReceived)) \
        == b"over " + group.encode()


def test_ffdhe_listed_and_reached_by_hello_retry(pki: PKI) -> None:
    """The client's key share is x25519; a server that takes only ffdhe2048 asks again
    (HelloRetryRequest), which works only if ffdhe2048 was in supported_groups."""
    cctx = pki.client_context()
    cctx.set_groups(["x25519", "ffdhe2048", "ffdhe3072"])
    assert offered_groups(cctx)[:3] == [29, 256, 257]
    sctx = pki.server_context()
    sctx.set_groups(["ffdhe2048"])
    client, server = handshake(cctx, sctx)
    assert client.group == server.group == "ffdhe2048", client.error or server.error


class _BadShareTLS(RawTLS):  # type: ignore[misc]
    """tlslite-ng sending a chosen FFDHE key share value (TLS 1.3) in either role."""

    bad_share: bytes = b""

    @classmethod
    def _genKeyShareEntry(cls, group: int, version: tuple[int, int]) -> Any:
        if group not in range(256, 261):
            return super()._genKeyShareEntry(group, version)
        return KeyShareEntry().create(group, bytearray(cls.bad_share), 1)


_P2048 = RFC7919_GROUPS[0][1]
BAD_SHARES = {
    "zero": bytes(256), "one": (1).to_bytes(256, "big"),
    "p-1": (_P2048 - 1).to_bytes(256, "big"), "p": _P2048.to_bytes(256, "big"),
    "short": (2).to_bytes(255, "big"), "long": (2).to_bytes(257, "big"),
}


@pytest.mark.parametrize("role", ["server", "client"])
@pytest.mark.parametrize("bad", BAD_SHARES.values(), ids=BAD_SHARES.keys())
def test_ffdhe_bad_public_value_tls13(pki: PKI, bad: bytes, role: str) -> None:
    cls = type("BadShare", (_BadShareTLS,), {"bad_share": bad})
    if role == "server":  # aiotls is the server; tlslite the client with a bad share
        sctx = pki.server_context()
        sctx.set_groups(["ffdhe2048"])
        peer = TlslitePeer.client(tlslite_settings(keyShares=["ffdhe2048"]), tls_class=cls)
        conn = aiotls.TLSConnection(sctx, server_side=True)
    else:
        cctx = pki.client_context()
        cctx.set_groups(["ffdhe2048"])
        peer = TlslitePeer.server(tlslite_settings(), pki.server(), tls_class=cls)
        conn = aiotls.TLSConnection(cctx, server_hostname="localhost")
    exchange(peer, conn)
    err = conn.error
    assert isinstance(err, aiotls.PeerMisbehaved), err
    assert err.alert == aiotls.AlertDescription.illegal_parameter
    if speedups.ENABLED:
        # aiotls's own check fired (OpenSSL would also refuse most of these, with less to
        # say; with the speed-ups off, tlslite's own check refuses them)
        assert ("bytes, not 256" if len(bad) != 256 else "(must be 1 < y < p-1)") in err.what
    assert not conn.handshake_complete


def _tls12_dhe_only_client(dh_groups: list[str]) -> TlslitePeer:
    """tlslite's TLS 1.2 client offering DHE key exchange only, with ``dh_groups``."""
    return TlslitePeer.client(tlslite_settings(max_version=(3, 3), dhGroups=dh_groups,
                                               eccCurves=[], keyShares=[],
                                               keyExchangeNames=["dhe_rsa"]))


@pytest.mark.parametrize("bad", [0, 1, _P2048 - 1, _P2048, _P2048 + 5],
                         ids=["0", "1", "p-1", "p", "p+5"])
def test_ffdhe_bad_public_value_tls12_from_client(pki: PKI, bad: int,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    class BadClientDHE(DHE_RSAKeyExchange):  # type: ignore[misc]
        def makeClientKeyExchange(self) -> Any:
            self.dh_Yc = bad
            return super().makeClientKeyExchange()

    monkeypatch.setattr(tl_tlsconnection, "DHE_RSAKeyExchange", BadClientDHE)
    sctx = rsa_server(pki)
    sctx.set_groups(["ffdhe2048"])
    sctx.set_ciphers("DHE-RSA-AES128-GCM-SHA256")
    peer = _tls12_dhe_only_client(["ffdhe2048"])
    server = aiotls.TLSConnection(sctx, server_side=True)
    exchange(peer, server)
    err = server.error
    assert isinstance(err, aiotls.PeerMisbehaved), err
    assert err.alert == aiotls.AlertDescription.illegal_parameter
    assert "(must be 1 < y < p-1)" in err.what


class _BadServerADH(ADHKeyExchange):  # type: ignore[misc]
    bad_ys: int | None = None
    other_group: bool = False

    def makeServerKeyExchange(self) -> Any:
        if self.other_group:
            self.dhGroups = None  # tlslite then uses its default, RFC 5054 group 3
        ske = super().makeServerKeyExchange()
        if self.bad_ys is not None:
            ske.dh_Ys = self.bad_ys
        return ske


def _tls12_dhe_client_against(pki: PKI, monkeypatch: pytest.MonkeyPatch,
                              **bad_server: Any) -> aiotls.TLSConnection:
    """An aiotls TLS 1.2 DHE client (offering ffdhe2048) after a handshake with tlslite's
    server, whose ServerKeyExchange is made by :class:`_BadServerADH` with ``bad_server``
    (``bad_ys=...``, ``other_group=True``)."""
    adh = type("BadADH", (_BadServerADH,), bad_server)
    monkeypatch.setattr(tl_tlsconnection, "DHE_RSAKeyExchange",
                        type("BadDHE", (DHE_RSAKeyExchange, adh), {}))
    peer = TlslitePeer.server(tlslite_settings(max_version=(3, 3)), pki.server("rsa2048"))
    cctx = pki.client_context()
    cctx.maximum_version = TLS12
    cctx.set_groups(["ffdhe2048"])
    cctx.set_ciphers("DHE-RSA-AES128-GCM-SHA256")
    client = aiotls.TLSConnection(cctx, server_hostname="localhost")
    exchange(peer, client)
    return client


@pytest.mark.parametrize("bad", [1, _P2048 - 1, _P2048], ids=["1", "p-1", "p"])
def test_ffdhe_bad_public_value_tls12_from_server(pki: PKI, bad: int,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    client = _tls12_dhe_client_against(pki, monkeypatch, bad_ys=bad)
    err = client.error
    assert isinstance(err, aiotls.PeerMisbehaved), err
    assert err.alert == aiotls.AlertDescription.illegal_parameter
    assert "(must be 1 < y < p-1)" in err.what


def test_tls12_client_refuses_dh_parameters_it_did_not_offer(
        pki: PKI, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that answers with a prime that is not one of the offered RFC 7919 groups
    (here tlslite's default 2048-bit RFC 5054 group) is refused: insufficient_security."""
    client = _tls12_dhe_client_against(pki, monkeypatch, other_group=True)
    err = client.error
    assert isinstance(err, aiotls.PeerIncompatible), err
    assert err.alert == aiotls.AlertDescription.insufficient_security
    assert err.code == "dh-parameters-not-offered" and "RFC 7919" in err.what


def test_server_gives_a_legacy_dhe_client_its_first_ffdhe_group(pki: PKI) -> None:
    """A TLS 1.2 client that lists no FFDHE group (pre-RFC 7919) but offers DHE gets the
    server's first enabled RFC 7919 group (RFC 7919 4), never other parameters."""
    sctx = rsa_server(pki)
    sctx.set_groups(["x25519", "ffdhe3072", "ffdhe2048"])
    sctx.set_ciphers("DEFAULT:DHE-RSA-AES128-GCM-SHA256")
    peer = _tls12_dhe_only_client([])
    server = aiotls.TLSConnection(sctx, server_side=True)
    exchange(peer, server)
    assert peer.handshake_done, (peer.error, server.error)
    assert server.group == "ffdhe3072"
    assert server.cipher()[0].startswith("DHE-RSA-")  # type: ignore[index]


def test_server_without_ffdhe_never_picks_dhe(pki: PKI) -> None:
    """DHE suites enabled but no FFDHE group: a DHE-only client is refused rather than
    given DH parameters outside RFC 7919."""
    sctx = rsa_server(pki)
    sctx.set_ciphers("DEFAULT:DHE-RSA-AES128-GCM-SHA256")
    peer = _tls12_dhe_only_client(["ffdhe2048"])
    server = aiotls.TLSConnection(sctx, server_side=True)
    exchange(peer, server)
    assert server.error is not None and not server.handshake_complete


@pytest.mark.interop
@pytest.mark.parametrize("version", ["TLSv1.3", "TLSv1.2"])
def test_openssl_s_client_ffdhe2048_aiotls_server(pki: PKI, version: str) -> None:
    openssl_bin = require_openssl()
    sctx = rsa_server(pki)
    sctx.set_groups(["x25519", "ffdhe2048"])
    sctx.set_ciphers("DEFAULT:DHE-RSA-AES128-GCM-SHA256")
    flags = ["-tls1_3"] if version == "TLSv1.3" else ["-tls1_2", "-cipher",
                                                      "DHE-RSA-AES128-GCM-SHA256"]
    with listen("127.0.0.1", TIMEOUT) as listener:
        port = listener.getsockname()[1]
        argv = [openssl_bin, "s_client", "-connect", f"127.0.0.1:{port}", "-groups",
                "ffdhe2048", *flags, "-CAfile", pki.ca_file, "-verify_return_error",
                "-servername", "localhost", "-ign_eof", "-nocommands"]
        with OpenSSLProcess(argv, stdin=b"ping\n") as client:
            client.close_stdin()
            with SocketTLS.accept(sctx, listener, timeout=TIMEOUT) as tls:
                hs = tls.handshake()
                assert tls.recv_line() == b"ping\n"
                tls.send(b"pong\n")
                tls.close()
            rc, output = client.wait(TIMEOUT)
    assert rc == 0, output
    assert hs.version == version and hs.group == "ffdhe2048"
    assert "pong" in output
    if version == "TLSv1.3":
        assert "Server Temp Key: DH, 2048 bits" in output or "ffdhe2048" in output, output
    else:
        assert "DHE-RSA-AES128-GCM-SHA256" in output, output


def _ffdhe2048_dhparam(openssl_bin: str, directory: str) -> str:
    """ffdhe2048 as a DH parameter file (OpenSSL's TLS 1.2 server sends these; it does not
    negotiate RFC 7919 groups in TLS 1.2)."""
    path = os.path.join(directory, "ffdhe2048.pem")
    with OpenSSLProcess([openssl_bin, "genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt",
                         "group:ffdhe2048", "-out", path]) as gen:
        rc, output = gen.wait(TIMEOUT)
    assert rc == 0, output
    return path


@pytest.mark.interop
@pytest.mark.parametrize("version", ["TLSv1.3", "TLSv1.2"])
def test_aiotls_client_openssl_s_server_ffdhe2048(pki: PKI, version: str,
                                                  tmp_path: Any) -> None:
    openssl_bin = require_openssl()
    cctx = pki.client_context()
    cctx.set_groups(["x25519", "ffdhe2048"])
    flags = ["-tls1_3"]
    if version == "TLSv1.2":
        cctx.maximum_version = TLS12
        cctx.set_ciphers("DHE-RSA-AES128-GCM-SHA256")
        flags = ["-tls1_2", "-cipher", "DHE-RSA-AES128-GCM-SHA256",
                 "-dhparam", _ffdhe2048_dhparam(openssl_bin, str(tmp_path))]
    certfile, keyfile = pki.server("rsa2048")
    port = free_port()
    argv = [openssl_bin, "s_server", "-accept", f"127.0.0.1:{port}", "-cert", certfile,
            "-key", keyfile, "-groups", "ffdhe2048", *flags, "-naccept", "1", "-rev"]
    with OpenSSLProcess(argv) as server:
        server.wait_for_output("ACCEPT", TIMEOUT)
        with SocketTLS.connect(cctx, ("127.0.0.1", port), server_hostname="localhost",
                               timeout=TIMEOUT) as tls:
            hs = tls.handshake()
            tls.send(b"abc\n")
            assert tls.recv_line() == b"cba\n"
            tls.close()
        rc, output = server.wait(TIMEOUT)
    assert rc == 0, output
    assert hs.version == version and hs.group == "ffdhe2048", hs


@pytest.mark.interop
def test_aiotls_client_refuses_openssl_default_dh_parameters(pki: PKI) -> None:
    """OpenSSL's TLS 1.2 server, left to its own DH parameters, does not use the offered
    RFC 7919 group; aiotls refuses them (insufficient_security) and says why."""
    openssl_bin = require_openssl()
    cctx = pki.client_context()
    cctx.maximum_version = TLS12
    cctx.set_groups(["ffdhe2048"])
    cctx.set_ciphers("DHE-RSA-AES128-GCM-SHA256")
    certfile, keyfile = pki.server("rsa2048")
    port = free_port()
    argv = [openssl_bin, "s_server", "-accept", f"127.0.0.1:{port}", "-cert", certfile,
            "-key", keyfile, "-tls1_2", "-cipher", "DHE-RSA-AES128-GCM-SHA256",
            "-naccept", "1", "-rev"]
    with OpenSSLProcess(argv) as server:
        server.wait_for_output("ACCEPT", TIMEOUT)
        with SocketTLS.connect(cctx, ("127.0.0.1", port), server_hostname="localhost",
                               timeout=TIMEOUT) as tls, pytest.raises(AssertionError):
            tls.handshake()
        server.wait(TIMEOUT)
    err = tls.conn.error
    assert isinstance(err, aiotls.PeerIncompatible), err
    assert err.code == "dh-parameters-not-offered"
    assert err.alert == aiotls.AlertDescription.insufficient_security
