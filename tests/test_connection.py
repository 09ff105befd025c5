"""In-memory tests of TLSConnection: two endpoints wired together, no sockets."""

from __future__ import annotations

import os
import ssl

import pytest

import aiotls
from aiotls.context import DEFAULT_SUITES
from aiotls.events import (
    CloseNotifyReceived,
    ConnectionTerminated,
    DataReceived,
    HandshakeCompleted,
)
from tests.helpers import PKI, VERSIONS, data_of, handshake, pump
from tests.stdlib_peer import StdlibPeer, run

KEY_TYPES = ("rsa2048", "ecdsa-p256", "ed25519")


def _suite_fits(suite_kex: str | None, version: str, key_type: str) -> bool:
    if version == "TLSv1.3":
        return suite_kex is None
    if suite_kex is None:
        return False
    return (suite_kex == "ecdhe_rsa") == (key_type == "rsa2048")


MATRIX = [
    pytest.param(version, key_type, suite.name, id=f"{version}-{key_type}-{suite.name}")
    for version in VERSIONS
    for key_type in KEY_TYPES
    for suite in DEFAULT_SUITES
    if _suite_fits(suite.kex, version, key_type)
]


def received(conn: aiotls.TLSConnection) -> tuple[bytes, list[object]]:
    data = bytearray()
    others = []
    for event in conn.events():
        if isinstance(event, DataReceived):
            data += event.data
        else:
            others.append(event)
    return bytes(data), others


@pytest.mark.parametrize(("version", "key_type", "suite"), MATRIX)
def test_handshake_matrix(pki: PKI, version: str, key_type: str, suite: str) -> None:
    client_ctx = pki.client_context()
    client_ctx.set_ciphers(suite)
    client_ctx.minimum_version = client_ctx.maximum_version = VERSIONS[version]
    client, server = handshake(client_ctx, pki.server_context(key_type))

    expected = next(s for s in DEFAULT_SUITES if s.name == suite)
    for conn in (client, server):
        assert conn.state is aiotls.ConnectionState.OPEN
        assert conn.version() == version
        assert conn.cipher() == (expected.openssl_name, version, expected.bits)
        assert conn.group == "x25519"
    c_events = client.events()
    s_events = server.events()
    assert len(c_events) == 1 and isinstance(c_events[0], HandshakeCompleted)
    assert len(s_events) == 1 and isinstance(s_events[0], HandshakeCompleted)
    assert c_events[0].peer_certificates[0] == pki.servers[key_type][0].cert.public_bytes(
        __import__("cryptography.hazmat.primitives.serialization",
                   fromlist=["Encoding"]).Encoding.DER)
    assert s_events[0].peer_certificates == ()
    assert c_events[0].server_name == "localhost"
    assert s_events[0].server_name == "localhost"

    # data both ways, echoed back and compared
    blob = os.urandom(200_000)
    client.send_data(blob)
    pump(client, server)
    got, _ = received(server)
    assert got == blob
    server.send_data(got[::-1])
    pump(client, server)
    back, _ = received(client)
    assert back == blob[::-1]

    # the AEAD in use really is the OpenSSL-backed one (cryptography's), both directions
    for conn in (client, server):
        impl = conn._engine.aead_implementation()
        assert impl is not None
        assert all(name.startswith("cryptography.hazmat.bindings._rust.openssl.aead.")
                   for name in impl), impl


@pytest.mark.parametrize("version", VERSIONS)
def test_several_mib_both_ways(pki: PKI, version: str) -> None:
    ctx = pki.client_context()
    ctx.maximum_version = VERSIONS[version]
    client, server = handshake(ctx, pki.server_context())
    client.events(), server.events()
    up = os.urandom(3 * 1024 * 1024 + 17)
    down = os.urandom(4 * 1024 * 1024 + 5)
    for i in range(0, len(up), 65536):
        client.send_data(up[i:i + 65536])
    server.send_data(down)
    pump(client, server)
    assert received(server)[0] == up
    assert received(client)[0] == down


@pytest.mark.parametrize("version", VERSIONS)
def test_byte_at_a_time(pki: PKI, version: str) -> None:
    ctx = pki.client_context()
    ctx.maximum_version = VERSIONS[version]
    client = aiotls.TLSConnection(ctx, server_hostname="localhost")
    server = aiotls.TLSConnection(pki.server_context(), server_side=True)
    client.send_data(b"early data queued before the handshake")
    for _ in range(20):
        moved = False
        for src, dst in ((client, server), (server, client)):
            out = src.data_to_send()
            for i in range(len(out)):
                dst.receive_data(out[i:i + 1])
            moved = moved or bool(out)
        if not moved:
            break
    assert client.version() == server.version() == version
    data, others = received(server)
    assert data == b"early data queued before the handshake"
    assert isinstance(others[0], HandshakeCompleted)


def test_application_data_sent_before_handshake_is_delivered_after(pki: PKI) -> None:
    client = aiotls.TLSConnection(pki.client_context(), server_hostname="localhost")
    server = aiotls.TLSConnection(pki.server_context(), server_side=True)
    client.send_data(b"one")
    client.send_data(b"two")
    pump(client, server)
    data, _ = received(server)
    assert data == b"onetwo"


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("closer", ["client", "server"])
def test_close_notify_both_directions(pki: PKI, version: str, closer: str) -> None:
    ctx = pki.client_context()
    ctx.maximum_version = VERSIONS[version]
    client, server = handshake(ctx, pki.server_context())
    client.events(), server.events()
    first, second = (client, server) if closer == "client" else (server, client)
    second.send_data(b"last words")
    first.close()
    assert first.state is aiotls.ConnectionState.CLOSING
    with pytest.raises(aiotls.TLSUsageError):
        first.send_data(b"after close")
    pump(client, server)
    # the side that did not initiate sees close_notify, answers it and is done
    assert second.events() == [CloseNotifyReceived(), ConnectionTerminated(error=None)]
    assert second.state is aiotls.ConnectionState.CLOSED
    # the initiator still receives data sent before the peer's close_notify, then the close
    assert first.events() == [DataReceived(b"last words"), CloseNotifyReceived(),
                              ConnectionTerminated(error=None)]
    assert first.state is aiotls.ConnectionState.CLOSED
    # EOF after a clean close is harmless; more data is a usage error
    first.receive_data(b"")
    with pytest.raises(aiotls.TLSUsageError):
        first.receive_data(b"\x17\x03\x03\x00\x01x")


@pytest.mark.parametrize("version", VERSIONS)
def test_eof_without_close_notify_is_truncation(pki: PKI, version: str) -> None:
    ctx = pki.client_context()
    ctx.maximum_version = VERSIONS[version]
    client, server = handshake(ctx, pki.server_context())
    client.events()
    client.receive_data(b"")
    (event,) = client.events()
    assert isinstance(event, ConnectionTerminated)
    assert isinstance(event.error, aiotls.TruncationError)
    assert isinstance(event.error, ssl.SSLEOFError)
    assert event.error.code == "truncated"
    assert "suppress_ragged_eofs" in event.error.hint
    assert client.state is aiotls.ConnectionState.FAILED
    assert client.data_to_send() == b""  # no alert after EOF: nobody is listening
    with pytest.raises(aiotls.TruncationError):
        client.send_data(b"x")


def test_ragged_eof_tolerated_when_asked(pki: PKI) -> None:
    ctx = pki.client_context()
    ctx.suppress_ragged_eofs = True
    client, server = handshake(ctx, pki.server_context())
    client.events()
    server.send_data(b"body")
    client.receive_data(server.data_to_send())
    client.receive_data(b"")
    assert client.events() == [DataReceived(b"body"),
                               ConnectionTerminated(error=None, truncated=True)]
    assert client.state is aiotls.ConnectionState.CLOSED


def test_eof_in_middle_of_record(pki: PKI) -> None:
    ctx = pki.client_context()
    ctx.suppress_ragged_eofs = True  # even then, half a record is an error
    client, server = handshake(ctx, pki.server_context())
    client.events()
    server.send_data(b"x" * 1000)
    wire = server.data_to_send()
    client.receive_data(wire[:-10])
    client.receive_data(b"")
    (event,) = client.events()
    assert isinstance(event, ConnectionTerminated)
    assert isinstance(event.error, aiotls.TruncationError)
    assert event.error.code == "truncated-record"


def test_eof_during_handshake(pki: PKI) -> None:
    client = aiotls.TLSConnection(pki.client_context(), server_hostname="localhost")
    assert client.data_to_send()[:1] == b"\x16"  # ClientHello ready at once
    client.receive_data(b"")
    (event,) = client.events()
    assert isinstance(event.error, aiotls.TruncationError)
    assert event.error.code == "eof-in-handshake"


def test_alpn_negotiated(pki: PKI) -> None:
    cctx = pki.client_context()
    cctx.set_alpn_protocols(["h2", "http/1.1"])
    sctx = pki.server_context()
    sctx.set_alpn_protocols(["http/1.1"])
    client, server = handshake(cctx, sctx)
    assert client.selected_alpn_protocol() == server.selected_alpn_protocol() == "http/1.1"


def test_getpeercert_shapes(pki: PKI) -> None:
    client, server = handshake(pki.client_context(), pki.server_context())
    cert = client.getpeercert()
    assert ("DNS", "localhost") in cert["subjectAltName"]
    assert ("IP Address", "127.0.0.1") in cert["subjectAltName"]
    assert cert["subject"] == ((("commonName", "localhost"),),)
    assert cert["notAfter"].endswith("GMT")
    assert isinstance(client.getpeercert(binary_form=True), bytes)
    assert server.getpeercert() is None  # no client certificate
    fresh = aiotls.TLSConnection(pki.client_context(), server_hostname="localhost")
    with pytest.raises(ValueError, match="handshake not done"):
        fresh.getpeercert()


def test_unverified_client_gets_empty_peercert_dict(pki: PKI) -> None:
    ctx = aiotls.TLSContext()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    client, _ = handshake(ctx, pki.server_context(), server_hostname=None)
    assert client.getpeercert() == {}
    assert client.getpeercert(binary_form=True)


def test_groups_and_versions_are_honoured(pki: PKI) -> None:
    cctx = pki.client_context()
    cctx.set_groups(["secp384r1"])
    client, server = handshake(cctx, pki.server_context())
    assert client.group == server.group == "secp384r1"

    cctx = pki.client_context()
    cctx.maximum_version = ssl.TLSVersion.TLSv1_2
    sctx = pki.server_context()
    sctx.minimum_version = ssl.TLSVersion.TLSv1_3
    client, server = handshake(cctx, sctx)
    err = server.error
    assert isinstance(err, aiotls.PeerIncompatible)
    assert err.alert == aiotls.AlertDescription.protocol_version
    assert isinstance(client.error, aiotls.AlertReceived)
    assert client.error.alert == aiotls.AlertDescription.protocol_version
    assert "minimum_version" in client.error.hint


def test_no_common_cipher(pki: PKI) -> None:
    cctx = pki.client_context()
    cctx.set_ciphers("TLS_AES_128_GCM_SHA256")
    sctx = pki.server_context()
    sctx.set_ciphers("TLS_CHACHA20_POLY1305_SHA256")
    client, server = handshake(cctx, sctx)
    assert isinstance(server.error, aiotls.PeerIncompatible)
    assert isinstance(client.error, aiotls.AlertReceived)
    assert client.error.alert == aiotls.AlertDescription.handshake_failure


def test_close_during_handshake_terminates(pki: PKI) -> None:
    client = aiotls.TLSConnection(pki.client_context(), server_hostname="localhost")
    client.data_to_send()
    client.close()
    assert client.state is aiotls.ConnectionState.CLOSED
    assert client.events() == [ConnectionTerminated(error=None)]
    assert client.data_to_send()[:1] == b"\x15"  # the close_notify alert


def test_fatal_error_poisons_connection(pki: PKI) -> None:
    client, server = handshake(pki.client_context(), pki.server_context())
    client.events(), server.events()
    client.receive_data(b"\x17\x03\x03\x00\x20" + b"\x00" * 32)  # garbage ciphertext
    (event,) = client.events()
    assert isinstance(event.error, aiotls.PeerMisbehaved)
    assert event.error.alert == aiotls.AlertDescription.bad_record_mac
    alert = client.data_to_send()
    assert alert[:1] == b"\x17"  # the alert is encrypted like all TLS 1.3 traffic
    with pytest.raises(aiotls.PeerMisbehaved):
        client.send_data(b"more")
    with pytest.raises(aiotls.PeerMisbehaved):
        client.receive_data(b"more")
    # the peer decrypts that alert and learns why
    server.receive_data(alert)
    (sev,) = server.events()
    assert isinstance(sev.error, aiotls.AlertReceived)
    assert sev.error.alert == aiotls.AlertDescription.bad_record_mac


def test_usage_errors(pki: PKI) -> None:
    with pytest.raises(aiotls.TLSUsageError, match="server_hostname"):
        aiotls.TLSConnection(pki.client_context())
    with pytest.raises(aiotls.TLSConfigurationError) as config_error:
        aiotls.TLSConnection(aiotls.TLSContext(ssl.PROTOCOL_TLS_SERVER), server_side=True)
    assert config_error.value.code == "server-needs-certificate"
    with pytest.raises(TypeError):
        aiotls.TLSConnection(ssl.create_default_context())  # type: ignore[arg-type]
    with pytest.raises(aiotls.TLSUsageError):
        aiotls.TLSConnection(pki.server_context(), server_side=True, server_hostname="x")


@pytest.mark.parametrize("initiator", ["server", "client"])
def test_renegotiation_is_refused(pki: PKI, initiator: str) -> None:
    """TLS 1.2: a HelloRequest (from the server) or a new ClientHello (from the client) after
    the handshake is answered with a no_renegotiation alert, never with a new handshake."""

    ctx = pki.client_context()
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    client, server = handshake(ctx, pki.server_context())
    client.events(), server.events()
    sender, receiver = (server, client) if initiator == "server" else (client, server)
    hello_type = 0 if initiator == "server" else 1  # hello_request / client_hello
    receiver.receive_data(sender._engine.seal_record(22, bytes([hello_type, 0, 0, 0])))
    answer = receiver.data_to_send()
    assert answer[:1] == b"\x15"  # an alert record, not a handshake record
    assert receiver.events() == []
    # The warning no_renegotiation needs nothing from the sender (aiotls itself never asks
    # to renegotiate): RFC 5246 7.2 lets the connection go on, and it does.
    sender.receive_data(answer)
    assert sender.events() == [] and sender.error is None
    sender.send_data(b"still open")
    receiver.receive_data(sender.data_to_send())
    assert data_of(receiver) == b"still open"


@pytest.mark.parametrize("serial", [0x1, 0xABC, 0x1234, 0xF00D1])
def test_peercert_serial_matches_openssl_spelling(serial: int) -> None:
    """OpenSSL (and so ssl.getpeercert) prints serials as even-length upper-case hex."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from aiotls._verify import peercert_dict

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "x")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(serial).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    text = peercert_dict(cert.public_bytes(serialization.Encoding.DER))["serialNumber"]
    assert len(text) % 2 == 0
    assert int(text, 16) == serial
    assert text == text.upper()


@pytest.mark.parametrize("version", VERSIONS)
def test_client_alpn_offer_to_server_without_alpn(pki: PKI, version: str) -> None:
    """A server with no ALPN configured ignores the client's offer (tlslite's TLS 1.3 server
    used to crash on it, which broke curl and browsers)."""
    cctx = pki.client_context()
    cctx.set_alpn_protocols(["h2", "http/1.1"])
    cctx.maximum_version = VERSIONS[version]
    client, server = handshake(cctx, pki.server_context())
    assert server.error is None
    assert client.version() == version
    assert client.selected_alpn_protocol() is None
    assert server.selected_alpn_protocol() is None


def test_stdlib_client_alpn_offer_to_server_without_alpn(pki: PKI) -> None:
    ctx = pki.stdlib_client_context()
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    peer = StdlibPeer(ctx, server_side=False, server_hostname="localhost")
    server = aiotls.TLSConnection(pki.server_context(), server_side=True)
    run(server, peer)
    assert server.version() == "TLSv1.3", server.error
    assert peer.obj.selected_alpn_protocol() is None


def test_a_non_ascii_server_hostname_is_the_callers_mistake(pki: PKI) -> None:
    """Not a malformed message blamed on the peer: refused at once, with the A-label hint;
    the ssl facade encodes it (IDNA) as the stdlib does."""
    with pytest.raises(aiotls.TLSUsageError, match="not ASCII") as info:
        aiotls.TLSConnection(pki.client_context(), server_hostname="bücher.example")
    assert "idna" in str(info.value)
    obj = pki.client_context().wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(),
                                        server_hostname="bücher.example")
    assert obj.server_hostname == "xn--bcher-kva.example"


def _half_closed_pair(pki: PKI, version: ssl.TLSVersion, half_close: bool
                      ) -> tuple[aiotls.TLSConnection, aiotls.TLSConnection]:
    cctx = pki.client_context()
    cctx.maximum_version = version
    client = aiotls.TLSConnection(cctx, server_hostname="localhost")
    server = aiotls.TLSConnection(pki.server_context(), server_side=True,
                                  half_close=half_close)
    pump(client, server)
    server.events()
    client.events()
    client.close()
    server.receive_data(client.data_to_send() + b"PLAIN")
    return client, server


def test_half_close_keeps_our_side_open_after_the_peers_close_notify(pki: PKI) -> None:
    """TLS 1.3 (RFC 8446 6.1): with half_close the peer's close_notify closes only its
    direction: we can still send, the peer still reads, and our close() ends it."""
    client, server = _half_closed_pair(pki, ssl.TLSVersion.TLSv1_3, half_close=True)
    events = server.events()
    assert any(isinstance(e, CloseNotifyReceived) for e in events)
    assert not any(isinstance(e, ConnectionTerminated) for e in events)
    assert server.peer_closed and server.state is aiotls.ConnectionState.OPEN
    assert server.data_to_send() == b""  # no close_notify sent in reply
    assert server.unused_data == b"PLAIN"
    server.receive_data(b" MORE")  # not TLS any more: kept, not parsed
    server.receive_data(b"")  # the peer's TCP FIN ends nothing we still send
    assert server.unused_data == b"PLAIN MORE"
    server.send_data(b"the answer")
    client.receive_data(server.data_to_send())
    assert data_of(client) == b"the answer"
    server.close()
    assert server.state is aiotls.ConnectionState.CLOSED
    assert isinstance(server.events()[-1], ConnectionTerminated)
    client.receive_data(server.data_to_send())
    assert client.state is aiotls.ConnectionState.CLOSED and client.error is None


@pytest.mark.parametrize(("version", "half_close"), [
    (ssl.TLSVersion.TLSv1_3, False), (ssl.TLSVersion.TLSv1_2, True), (ssl.TLSVersion.TLSv1_2, False)])
def test_without_half_close_or_on_tls12_a_close_notify_is_answered_at_once(
        pki: PKI, version: ssl.TLSVersion, half_close: bool) -> None:
    client, server = _half_closed_pair(pki, version, half_close=half_close)
    assert isinstance(server.events()[-1], ConnectionTerminated)
    assert server.state is aiotls.ConnectionState.CLOSED and server.peer_closed
    with pytest.raises(aiotls.TLSUsageError):
        server.send_data(b"too late")
    client.receive_data(server.data_to_send())  # our close_notify, in reply
    assert client.state is aiotls.ConnectionState.CLOSED and client.error is None
    assert server.unused_data == b"PLAIN"


def test_bytes_after_a_half_closed_peers_close_notify_are_kept_within_a_bound(pki: PKI) -> None:
    """A peer that goes on sending after its close_notify cannot grow the connection."""
    _, server = _half_closed_pair(pki, ssl.TLSVersion.TLSv1_3, half_close=True)
    for _ in range(64):
        server.receive_data(b"x" * 65536)
    assert server.unused_data.startswith(b"PLAIN") and len(server.unused_data) == 256 * 1024
