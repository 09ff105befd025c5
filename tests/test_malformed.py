"""Malformed and unusual peer input: blamed on the peer, or tolerated as other stacks do.

Regression tests for inputs that ended connections with ``internal_error`` and a message
blaming aiotls ("a bug in aiotls or tlslite-ng") -- found by a mutation fuzz of ClientHellos
and server flights and by tests/test_fuzz.py -- and for places where aiotls was stricter
than the peers people have (IP literals as SNI, pre-1.3 groups in TLS 1.3 ClientHellos),
plus a message that pointed the wrong way (a refused renegotiation).

Each hostile input is fed through the public sans-IO API; the honest side is a real aiotls
connection, whose outgoing handshake messages are rewritten where a test needs hostile
plaintext under real keys (``tap_handshake`` in conftest).
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import serialization

import aiotls
from aiotls.errors import (
    AlertDescription,
    AlertReceived,
    CertificateError,
    PeerIncompatible,
    PeerMisbehaved,
    TLSError,
)
from aiotls.events import ConnectionTerminated, Event, HandshakeCompleted
from tests.helpers import PKI, VERSION_PARAMS, pump, split_handshake_messages, tap_handshake
from tests.sockloop import (
    OpenSSLProcess,
    SocketTLS,
    find_openssl,
    free_port,
    listen,
    peer_thread,
)

A = AlertDescription
State = aiotls.ConnectionState
TLS12, TLS13 = ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3
HANDSHAKE, ALERT = 22, 21
TACK = 0xF300

pytestmark = pytest.mark.timeout(60)

Exts = list[tuple[int, bytes]]


# --- byte helpers ------------------------------------------------------------------------------


def frame(ctype: int, body: bytes, version: bytes = b"\x03\x03") -> bytes:
    return bytes([ctype]) + version + len(body).to_bytes(2, "big") + body


def records(data: bytes) -> list[tuple[int, bytes]]:
    out, pos = [], 0
    while pos < len(data):
        length = int.from_bytes(data[pos + 3:pos + 5], "big")
        out.append((data[pos], data[pos + 5:pos + 5 + length]))
        pos += 5 + length
    assert pos == len(data)
    return out


def hello_ext_offset(msg: bytes) -> int:
    """Offset of the extensions block's length in a ClientHello/ServerHello message."""
    body_start = 4
    pos = body_start + 34
    pos += 1 + msg[pos]  # session id
    if msg[0] == 1:
        pos += 2 + int.from_bytes(msg[pos:pos + 2], "big")  # cipher suites
        pos += 1 + msg[pos]  # compression methods
    else:
        pos += 3  # cipher suite, compression method
    return pos


def parse_exts(blob: bytes) -> Exts:
    out, pos = [], 0
    while pos < len(blob):
        length = int.from_bytes(blob[pos + 2:pos + 4], "big")
        out.append((int.from_bytes(blob[pos:pos + 2], "big"), blob[pos + 4:pos + 4 + length]))
        pos += 4 + length
    return out


def hello_exts(msg: bytes) -> Exts:
    pos = hello_ext_offset(msg)
    return parse_exts(msg[pos + 2:pos + 2 + int.from_bytes(msg[pos:pos + 2], "big")])


def edit_hello(msg: bytes, edit: Callable[[Exts], Exts]) -> bytes:
    """A ClientHello/ServerHello message with its extensions list edited."""
    pos = hello_ext_offset(msg)
    blob = b"".join(t.to_bytes(2, "big") + len(d).to_bytes(2, "big") + d
                    for t, d in edit(hello_exts(msg)))
    body = msg[4:pos] + len(blob).to_bytes(2, "big") + blob
    return msg[:1] + len(body).to_bytes(3, "big") + body


def edit_first_flight(flight: bytes, edit: Callable[[bytes], bytes]) -> bytes:
    """A client's first flight (one plaintext ClientHello record) with the message edited."""
    [(ctype, payload)] = records(flight)
    assert ctype == HANDSHAKE
    return frame(HANDSHAKE, edit(payload), flight[1:3])


def replace_ext(ext_type: int, data: bytes) -> Callable[[Exts], Exts]:
    return lambda exts: [(t, data if t == ext_type else d) for t, d in exts]


def u16_list(values: list[int]) -> bytes:
    blob = b"".join(v.to_bytes(2, "big") for v in values)
    return len(blob).to_bytes(2, "big") + blob


def sni_ext(name: str) -> bytes:
    entry = b"\x00" + len(name).to_bytes(2, "big") + name.encode()
    return len(entry).to_bytes(2, "big") + entry


# --- connection helpers ------------------------------------------------------------------------


def client_ctx(pki: PKI, version: ssl.TLSVersion | None = None, *, only: bool = False,
               cert: bool = False) -> aiotls.TLSContext:
    ctx = pki.client_context()
    if version is not None:
        ctx.maximum_version = version
        if only:
            ctx.minimum_version = version
    if cert:
        _, certfile, keyfile = pki.client
        ctx.load_cert_chain(certfile, keyfile)
    return ctx


def server_ctx(pki: PKI, *, mtls: bool = False) -> aiotls.TLSContext:
    ctx = pki.server_context()
    ctx.certificate_compression = ()  # (the tests edit a plain Certificate message)
    if mtls:
        ctx.load_verify_locations(cafile=pki.ca_file)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def feed(conn: aiotls.TLSConnection, data: bytes) -> list[Event]:
    conn.receive_data(data)  # never raises: errors come as events
    return conn.events()


def failure(conn: aiotls.TLSConnection, events: list[Event]) -> TLSError:
    """The one ConnectionTerminated error; the connection failed and owes the peer its alert."""
    ended = [e for e in events if isinstance(e, ConnectionTerminated)]
    assert len(ended) == 1, events
    err = ended[0].error
    assert isinstance(err, TLSError), err
    assert conn.state is State.FAILED
    assert err.code != "internal-error" and err.alert is not A.internal_error, str(err)
    assert "bug in aiotls" not in str(err), str(err)
    return err


def sent_alert(conn: aiotls.TLSConnection) -> list[int]:
    """The descriptions of the plaintext alert records ``conn`` wants to send."""
    return [body[1] for ctype, body in records(bytes(conn.data_to_send())) if ctype == ALERT]


def server_reply_types(server: aiotls.TLSConnection) -> list[tuple[int, bytes]]:
    """The server's plaintext handshake messages (type, message) in its first flight."""
    out = []
    for ctype, payload in records(bytes(server.data_to_send())):
        assert ctype != ALERT, f"the server sent an alert: {payload.hex()}"
        if ctype == HANDSHAKE:
            messages = split_handshake_messages(payload)
            assert messages is not None
            out += [(m[0], m) for m in messages]
    return out


def client_reads_edited_flight(client: aiotls.TLSConnection, server: aiotls.TLSConnection,
                               msg_type: int, edit: Callable[[bytes], bytes]) -> list[Event]:
    """The client's events after it read the server's first flight, in which each handshake
    message of type ``msg_type`` went through ``edit`` (under real keys: tap_handshake)."""
    tap_handshake(server, lambda m: edit(m) if m[0] == msg_type else m)
    server.receive_data(client.data_to_send())
    return feed(client, bytes(server.data_to_send()))


def handshake_with(client: aiotls.TLSConnection, server: aiotls.TLSConnection
                   ) -> tuple[list[Event], list[Event]]:
    pump(client, server)
    return client.events(), server.events()


# =============================================================================================
# 1. Inputs that were reported as aiotls's own bug (alert internal_error)
# =============================================================================================


@pytest.mark.parametrize("version", VERSION_PARAMS)
def test_empty_tack_extension_is_ignored_like_openssl(pki: PKI, version: ssl.TLSVersion) -> None:
    """A ClientHello with an empty TACK extension (0xF300): tlslite raised NameError
    (TackExtension, from the optional tackpy) -> internal_error.  OpenSSL ignores it."""
    client = aiotls.TLSConnection(client_ctx(pki, version), server_hostname="localhost")
    hello = edit_first_flight(client.data_to_send(),
                              lambda m: edit_hello(m, lambda exts: [*exts, (TACK, b"")]))
    server = aiotls.TLSConnection(server_ctx(pki), server_side=True)
    assert feed(server, hello) == []
    assert server.state is State.HANDSHAKING
    replies = server_reply_types(server)
    assert replies[0][0] == 2  # a ServerHello ...
    assert TACK not in dict(hello_exts(replies[0][1]))  # ... that does not echo TACK


@pytest.mark.parametrize("version", VERSION_PARAMS)
def test_tack_extension_with_data_is_ignored(pki: PKI, version: ssl.TLSVersion) -> None:
    client = aiotls.TLSConnection(client_ctx(pki, version), server_hostname="localhost")
    hello = edit_first_flight(client.data_to_send(), lambda m: edit_hello(
        m, lambda exts: [(TACK, b"\x01\x02\x03"), *exts]))
    server = aiotls.TLSConnection(server_ctx(pki), server_side=True)
    assert feed(server, hello) == []
    assert server_reply_types(server)[0][0] == 2


def test_server_hello_with_empty_key_share_is_decode_error(pki: PKI) -> None:
    """TLS 1.3 ServerHello whose key_share is empty: tlslite raised AttributeError ->
    internal_error.  OpenSSL answers decode_error."""
    client = aiotls.TLSConnection(client_ctx(pki), server_hostname="localhost")
    server = aiotls.TLSConnection(server_ctx(pki), server_side=True)
    events = client_reads_edited_flight(client, server, 2,
                                        lambda m: edit_hello(m, replace_ext(51, b"")))
    err = failure(client, events)
    assert isinstance(err, PeerMisbehaved)
    assert err.alert is A.decode_error
    assert "key_share" in err.what
    assert sent_alert(client) == [A.decode_error]


def bad_x509_version(der: bytes) -> bytes:
    """The certificate with its version field (v3 = 2) set to 7: cryptography raises
    InvalidVersion, which is not a ValueError."""
    marker = b"\xa0\x03\x02\x01\x02"
    assert der.count(marker) == 1
    return der.replace(marker, b"\xa0\x03\x02\x01\x07")


def edit_leaf(message: bytes, tls13: bool, edit: Callable[[bytes], bytes]) -> bytes:
    """A Certificate message with its first certificate's DER edited (same length)."""
    body = message[4:]
    pos = 1 + body[0] if tls13 else 0
    start = pos + 6
    end = start + int.from_bytes(body[pos + 3:pos + 6], "big")
    new = edit(body[start:end])
    assert len(new) == end - start
    return message[:4] + body[:start] + new + body[end:]


@pytest.mark.parametrize("version", VERSION_PARAMS)
def test_server_certificate_with_invalid_x509_version(pki: PKI, version: ssl.TLSVersion) -> None:
    tls13 = version is TLS13
    client = aiotls.TLSConnection(client_ctx(pki, version), server_hostname="localhost")
    server = aiotls.TLSConnection(server_ctx(pki), server_side=True)
    events = client_reads_edited_flight(client, server, 11,
                                        lambda m: edit_leaf(m, tls13, bad_x509_version))
    err = failure(client, events)
    assert isinstance(err, CertificateError)
    assert err.alert is A.bad_certificate
    assert "version" in err.what
    assert not any(isinstance(e, HandshakeCompleted) for e in events)


def duplicate_key_identifier(der: bytes) -> bytes:
    """The certificate with its authorityKeyIdentifier's OID (2.5.29.35) turned into the
    subjectKeyIdentifier's (2.5.29.14): two extensions of one type, which cryptography's
    accessors refuse with DuplicateExtension (found by tests/test_fuzz.py)."""
    aki = b"\x06\x03\x55\x1d\x23"
    assert der.count(aki) == 1 and b"\x06\x03\x55\x1d\x0e" in der
    return der.replace(aki, b"\x06\x03\x55\x1d\x0e")


@pytest.mark.parametrize("version", VERSION_PARAMS)
def test_server_certificate_with_duplicate_extension(pki: PKI, version: ssl.TLSVersion) -> None:
    """A certificate the verifier refuses and that cannot be examined further is invalid
    (bad_certificate), never aiotls's own bug."""
    tls13 = version is TLS13
    client = aiotls.TLSConnection(client_ctx(pki, version), server_hostname="localhost")
    server = aiotls.TLSConnection(server_ctx(pki), server_side=True)
    events = client_reads_edited_flight(client, server, 11,
                                        lambda m: edit_leaf(m, tls13, duplicate_key_identifier))
    err = failure(client, events)
    assert isinstance(err, CertificateError | PeerMisbehaved), err
    assert err.alert in (A.bad_certificate, A.decode_error, A.illegal_parameter), err
    assert not any(isinstance(e, HandshakeCompleted) for e in events)


@pytest.mark.parametrize("version", VERSION_PARAMS)
def test_client_certificate_with_invalid_x509_version(pki: PKI, version: ssl.TLSVersion) -> None:
    """The server parsing a client certificate: the same escape."""
    tls13 = version is TLS13
    client = aiotls.TLSConnection(client_ctx(pki, version, cert=True), server_hostname="localhost")
    server = aiotls.TLSConnection(server_ctx(pki, mtls=True), server_side=True)
    tap_handshake(client, lambda m: edit_leaf(m, tls13, bad_x509_version) if m[0] == 11 else m)
    client_events, server_events = handshake_with(client, server)
    err = failure(server, server_events)
    assert isinstance(err, CertificateError)
    assert err.alert is A.bad_certificate
    assert "version" in err.what
    assert not any(isinstance(e, HandshakeCompleted) for e in server_events)


def test_client_certificate_with_invalid_x509_version_unverified(pki: PKI) -> None:
    """Without verification the parse still must not escape (the key parser runs first)."""
    client_context = client_ctx(pki, TLS12)
    client_context.check_hostname = False
    client_context.verify_mode = ssl.CERT_NONE
    client = aiotls.TLSConnection(client_context)
    server = aiotls.TLSConnection(server_ctx(pki), server_side=True)
    tap_handshake(server, lambda m: edit_leaf(m, False, bad_x509_version) if m[0] == 11 else m)
    client_events, _ = handshake_with(client, server)
    ended = [e for e in client_events if isinstance(e, ConnectionTerminated)]
    if ended:  # refused as malformed
        err = failure(client, client_events)
        assert isinstance(err, CertificateError | PeerMisbehaved)
    else:  # or, unverified, accepted: the key is what it is
        assert any(isinstance(e, HandshakeCompleted) for e in client_events)


# --- found by tests/test_fuzz.py ---------------------------------------------------------------


@pytest.mark.parametrize(("version", "ext_type", "data"), [
    pytest.param(TLS13, 41, b"\x00\x00", id="TLSv1.3-pre_shared_key"),
    pytest.param(TLS13, 41, b"", id="TLSv1.3-empty-pre_shared_key"),
    pytest.param(TLS13, 0x1234, b"", id="TLSv1.3-unknown"),
    pytest.param(TLS12, 41, b"\x00\x00", id="TLSv1.2-pre_shared_key"),
    pytest.param(TLS12, 0x1234, b"\x00", id="TLSv1.2-unknown"),
])
def test_server_hello_with_extension_not_offered(pki: PKI, version: ssl.TLSVersion,
                                                 ext_type: int, data: bytes) -> None:
    """RFC 8446 4.2 / RFC 5246 7.4.1.4: a ServerHello extension the client did not offer is
    unsupported_extension.  An unsolicited pre_shared_key crashed tlslite (AttributeError:
    the client's PSK extension is None) -> internal_error."""
    client = aiotls.TLSConnection(client_ctx(pki, version), server_hostname="localhost")
    server = aiotls.TLSConnection(server_ctx(pki), server_side=True)
    events = client_reads_edited_flight(
        client, server, 2, lambda m: edit_hello(m, lambda exts: [*exts, (ext_type, data)]))
    err = failure(client, events)
    assert isinstance(err, PeerMisbehaved)
    assert err.alert is A.unsupported_extension
    assert "did not offer" in err.what


def replace_leaf(message: bytes, tls13: bool, der: bytes) -> bytes:
    """A Certificate message whose first certificate is ``der`` (lengths fixed)."""
    body = message[4:]
    pos = 1 + body[0] if tls13 else 0
    start = pos + 6
    old_len = int.from_bytes(body[pos + 3:pos + 6], "big")
    list_len = int.from_bytes(body[pos:pos + 3], "big") - old_len + len(der)
    new = (body[:pos] + list_len.to_bytes(3, "big") + len(der).to_bytes(3, "big") + der
           + body[start + old_len:])
    return message[:1] + len(new).to_bytes(3, "big") + new


@pytest.mark.parametrize("key_type", ["rsa2048", "ed25519", "ecdsa-p384"])
def test_tls13_certificate_verify_scheme_not_fitting_the_key(pki: PKI, key_type: str) -> None:
    """TLS 1.3 server whose certificate (valid, trusted, right name) has another key type
    than its CertificateVerify's scheme (ecdsa_secp256r1_sha256): RFC 8446 4.4.3,
    illegal_parameter.  With an RSA key tlslite read ``publicKey.curve_name``
    (AttributeError) -> internal_error."""
    issued = pki.ca.issue("localhost", key_type=key_type)  # type: ignore[arg-type]
    der = issued.cert.public_bytes(serialization.Encoding.DER)
    client = aiotls.TLSConnection(client_ctx(pki), server_hostname="localhost")
    server = aiotls.TLSConnection(server_ctx(pki), server_side=True)  # an ECDSA P-256 key
    err = failure(client, client_reads_edited_flight(client, server, 11,
                                                     lambda m: replace_leaf(m, True, der)))
    assert isinstance(err, PeerMisbehaved)
    assert err.alert is A.illegal_parameter
    assert "CertificateVerify" in err.what


def test_tls12_client_without_signature_algorithms_and_ed25519_server(pki: PKI) -> None:
    """RFC 5246 7.4.1.4.1: without signature_algorithms a TLS 1.2 client accepts SHA-1 with
    RSA or ECDSA only; a server with an Ed25519 certificate has nothing to sign with.
    tlslite crashed (AttributeError: SignatureScheme.sha1) -> internal_error."""
    server_context = pki.server_context("ed25519")
    client = aiotls.TLSConnection(client_ctx(pki, TLS12), server_hostname="localhost")
    hello = edit_first_flight(client.data_to_send(), lambda m: edit_hello(
        m, lambda exts: [(t, d) for t, d in exts if t != 13]))
    server = aiotls.TLSConnection(server_context, server_side=True)
    err = failure(server, feed(server, hello))
    assert isinstance(err, PeerIncompatible)
    assert err.alert is A.handshake_failure
    assert "signature algorithms" in err.what
    assert sent_alert(server) == [A.handshake_failure]


# =============================================================================================
# 2. Stricter than the peers people have
# =============================================================================================


@pytest.mark.parametrize("version", VERSION_PARAMS)
@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "192.0.2.7"])
def test_ip_literal_sni_is_ignored(pki: PKI, version: ssl.TLSVersion, address: str) -> None:
    """RFC 6066 forbids IP literals in SNI, but clients and scanners send them and OpenSSL
    servers ignore them: no illegal_parameter, no SNI, the literal kept for diagnosis."""
    client = aiotls.TLSConnection(client_ctx(pki, version), server_hostname="localhost")
    hello = edit_first_flight(client.data_to_send(),
                              lambda m: edit_hello(m, replace_ext(0, sni_ext(address))))
    server = aiotls.TLSConnection(server_ctx(pki), server_side=True)
    assert server.ignored_server_name is None
    assert feed(server, hello) == []
    assert server.state is State.HANDSHAKING
    replies = server_reply_types(server)
    assert replies[0][0] == 2
    assert 0 not in dict(hello_exts(replies[0][1]))  # no SNI acknowledgement
    assert server.ignored_server_name == address


def test_dns_sni_is_not_reported_as_ignored(pki: PKI) -> None:
    client, server = aiotls.TLSConnection(client_ctx(pki), server_hostname="localhost"), \
        aiotls.TLSConnection(server_ctx(pki), server_side=True)
    _, server_events = handshake_with(client, server)
    [done] = [e for e in server_events if isinstance(e, HandshakeCompleted)]
    assert done.server_name == "localhost"
    assert server.ignored_server_name is None
    assert client.ignored_server_name is None


@pytest.mark.parametrize("name", ["bad..name", "-x.example", "a" * 300])
def test_invalid_dns_sni_is_still_refused(pki: PKI, name: str) -> None:
    """Only IP literals are tolerated: a malformed host name stays a peer error."""
    client = aiotls.TLSConnection(client_ctx(pki), server_hostname="localhost")
    hello = edit_first_flight(client.data_to_send(),
                              lambda m: edit_hello(m, replace_ext(0, sni_ext(name))))
    server = aiotls.TLSConnection(server_ctx(pki), server_side=True)
    err = failure(server, feed(server, hello))
    assert isinstance(err, PeerMisbehaved)
    assert server.ignored_server_name is None


@pytest.mark.skipif(find_openssl() is None, reason="openssl binary not installed")
@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_openssl_client_sending_ip_sni(pki: PKI, version: str) -> None:
    """A real peer: ``openssl s_client -servername 127.0.0.1`` sends the IP literal as SNI
    (checked below from the server's view); the handshake completes without SNI."""
    listener = listen()
    port = listener.getsockname()[1]

    def serve() -> tuple[HandshakeCompleted, str | None]:
        with SocketTLS.accept(server_ctx(pki), listener) as tls:
            done = tls.handshake()
            tls.send(b"hello\n")
            return done, tls.conn.ignored_server_name

    with peer_thread(serve) as thread:
        argv = [find_openssl() or "openssl", "s_client", version, "-connect",
                f"127.0.0.1:{port}", "-servername", "127.0.0.1", "-CAfile", pki.ca_file]
        with OpenSSLProcess(argv, stdin=b"") as proc:
            proc.wait_for_output("hello")
            done, ignored = thread.result()
    listener.close()
    assert ignored == "127.0.0.1"
    assert done.server_name is None


#: Groups a scanner lists in a TLS 1.3 ClientHello: obsolete curves (secp160r1, sect163k1,
#: brainpool, arbitrary_explicit_*), FFDHE and an unassigned codepoint.
ODD_GROUPS = [0x0010, 0x0001, 0x001A, 0xFF01, 0x0100, 0x0101, 0x1234]


@pytest.mark.parametrize("odd", [pytest.param([g], id=f"{g:#06x}") for g in ODD_GROUPS]
                         + [pytest.param(ODD_GROUPS, id="all")])
@pytest.mark.parametrize("where", ["before", "after"])
def test_tls13_only_hello_listing_pre13_groups(pki: PKI, odd: list[int], where: str) -> None:
    """RFC 8446 4.2.7: groups the server does not support are ignored.  A TLS 1.3-only
    ClientHello that also listed obsolete groups got illegal_parameter."""
    client = aiotls.TLSConnection(client_ctx(pki, TLS13, only=True), server_hostname="localhost")

    def edit(exts: Exts) -> Exts:
        out = []
        for t, d in exts:
            if t == 43:
                d = b"\x02\x03\x04"  # TLS 1.3 only, as scanners' TLS 1.3 probes
            if t == 10:
                groups = [int.from_bytes(d[i:i + 2], "big") for i in range(2, len(d), 2)]
                d = u16_list(odd + groups if where == "before" else groups + odd)
            out.append((t, d))
        return out

    hello = edit_first_flight(client.data_to_send(), lambda m: edit_hello(m, edit))
    assert dict(hello_exts(records(hello)[0][1]))[43] == b"\x02\x03\x04"  # TLS 1.3 only
    server = aiotls.TLSConnection(server_ctx(pki), server_side=True)
    assert feed(server, hello) == []
    replies = server_reply_types(server)
    assert replies[0][0] == 2
    share = dict(hello_exts(replies[0][1]))[51]
    assert int.from_bytes(share[:2], "big") not in odd


def test_key_share_for_group_not_offered_is_still_illegal_parameter(pki: PKI) -> None:
    """What RFC 8446 does name stays refused: a key share for a group not in
    supported_groups (4.2.8)."""
    client = aiotls.TLSConnection(client_ctx(pki, TLS13, only=True), server_hostname="localhost")
    hello = edit_first_flight(client.data_to_send(), lambda m: edit_hello(m, lambda exts: [
        (t, u16_list([0x0010, 0x0017]) if t == 10 else b"\x02\x03\x04" if t == 43 else d)
        for t, d in exts]))  # x25519 (the key share) left out
    server = aiotls.TLSConnection(server_ctx(pki), server_side=True)
    err = failure(server, feed(server, hello))
    assert isinstance(err, PeerMisbehaved)
    assert err.alert is A.illegal_parameter


# =============================================================================================
# 3. Messages that pointed the wrong way
# =============================================================================================


@pytest.mark.skipif(find_openssl() is None, reason="openssl binary not installed")
def test_refused_renegotiation_names_renegotiation_server(pki: PKI) -> None:
    """``openssl s_client`` renegotiates on "R" (a new ClientHello): aiotls refuses
    (no_renegotiation) and OpenSSL gives up with handshake_failure, which aiotls reported as
    "no cipher suite, key-exchange group or signature algorithm in common"."""
    listener = listen()
    port = listener.getsockname()[1]

    def serve() -> TLSError | None:
        with SocketTLS.accept(server_ctx(pki), listener) as tls:
            tls.handshake()
            tls.send(b"ready\n")
            with contextlib.suppress(AssertionError):  # (the connection ends)
                tls.recv_exactly(1, timeout=5)
            return tls.conn.error

    with peer_thread(serve) as thread:
        argv = [find_openssl() or "openssl", "s_client", "-tls1_2", "-connect",
                f"127.0.0.1:{port}", "-CAfile", pki.ca_file]
        with OpenSSLProcess(argv, stdin=b"") as proc:
            proc.wait_for_output("ready")
            assert proc.proc.stdin is not None
            proc.proc.stdin.write(b"R\n")
            proc.proc.stdin.flush()
            err = thread.result(timeout=8)
    listener.close()
    assert_renegotiation_error(err)


@pytest.mark.skipif(find_openssl() is None, reason="openssl binary not installed")
def test_refused_renegotiation_names_renegotiation_client(pki: PKI) -> None:
    """``openssl s_server`` renegotiates on "r" (a HelloRequest): the same, client side."""
    port = free_port()
    certfile, keyfile = pki.server()
    argv = [find_openssl() or "openssl", "s_server", "-tls1_2", "-accept", f"127.0.0.1:{port}",
            "-cert", certfile, "-key", keyfile]
    with OpenSSLProcess(argv, stdin=b"") as proc:
        proc.wait_for_output("ACCEPT")
        with SocketTLS.connect(client_ctx(pki), ("127.0.0.1", port),
                               server_hostname="localhost") as tls:
            tls.handshake()
            tls.send(b"ready\n")
            proc.wait_for_output("ready")
            assert proc.proc.stdin is not None
            proc.proc.stdin.write(b"r\n")
            proc.proc.stdin.flush()
            with contextlib.suppress(AssertionError):  # (the connection ends)
                tls.recv_exactly(1, timeout=5)
            err = tls.conn.error
    assert_renegotiation_error(err)


def assert_renegotiation_error(err: TLSError | None) -> None:
    assert isinstance(err, AlertReceived), err
    assert err.code == "renegotiation-refused"
    assert "renegotiat" in err.what and "not support" in err.what
    assert "cipher suite" not in str(err)
    assert "renegotiate" in err.hint

def flip_last_byte(message: bytes) -> bytes:
    return message[:-1] + bytes([message[-1] ^ 0x01])


# (a TLS 1.2 server signs its ServerKeyExchange, not a CertificateVerify)
@pytest.mark.parametrize(("version", "victim", "msg_type"), [
    pytest.param(version, victim, msg_type, id=f"{version.name}-{victim}-{name}")
    for version in (TLS12, TLS13) for victim in ("client", "server")
    for msg_type, name in ((15, "CertificateVerify"), (20, "Finished"))
    if not (msg_type == 15 and victim == "client" and version is TLS12)
])
def test_bad_signature_or_finished_is_decrypt_error(pki: PKI, version: ssl.TLSVersion,
                                                    victim: str, msg_type: int) -> None:
    """RFC 8446 6.2: a signature or Finished value that does not verify is decrypt_error.
    The TLS 1.3 paths sent decryption_failed (21), which TLS 1.2 and 1.3 must never send
    ("record decryption failed")."""
    client = aiotls.TLSConnection(client_ctx(pki, version, cert=True), server_hostname="localhost")
    server = aiotls.TLSConnection(server_ctx(pki, mtls=True), server_side=True)
    sender = server if victim == "client" else client
    tap_handshake(sender, lambda m: flip_last_byte(m) if m[0] == msg_type else m)
    client_events, server_events = handshake_with(client, server)
    conn, events = (client, client_events) if victim == "client" else (server, server_events)
    err = failure(conn, events)
    assert isinstance(err, PeerMisbehaved)
    assert err.alert is A.decrypt_error, str(err)
    assert "record decryption" not in str(err)
    peer_events = server_events if victim == "client" else client_events
    [ended] = [e for e in peer_events if isinstance(e, ConnectionTerminated)]
    assert isinstance(ended.error, AlertReceived)
    assert ended.error.alert is A.decrypt_error
