"""Interop over real loopback sockets: aiotls against the stdlib ``ssl`` module and the
``openssl`` command-line tool, as client and as server, TLS 1.2 and TLS 1.3.

The aiotls side runs in the test's thread through :class:`tests.sockloop.SocketTLS`;
the stdlib peer runs in a thread, openssl in a subprocess.  Every wait is bounded.
Only the aiotls side is pinned to a protocol version, so these tests also check that
a peer supporting both versions ends up on the one aiotls allows.
"""

from __future__ import annotations

import hashlib
import random
import re
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

import aiotls
from aiotls.context import DEFAULT_SUITES, CipherSuite
from tests.certs import KeyType
from tests.helpers import PKI, VERSION_NAMES, VERSION_PARAMS
from tests.sockloop import (
    DEFAULT_TIMEOUT,
    OpenSSLProcess,
    SocketTLS,
    TLSFailed,
    free_port,
    listen,
    peer_thread,
    require_openssl,
)

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

TIMEOUT = DEFAULT_TIMEOUT
#: Peer threads get a little longer than any single wait of theirs.
JOIN_TIMEOUT = 3 * TIMEOUT

OPENSSL_VERSION_FLAGS = {ssl.TLSVersion.TLSv1_2: "-tls1_2", ssl.TLSVersion.TLSv1_3: "-tls1_3"}
HOSTS = [pytest.param("127.0.0.1", id="ipv4"), pytest.param("::1", id="ipv6")]
CLOSERS = [pytest.param("aiotls", id="aiotls-closes"), pytest.param("peer", id="peer-closes")]

# Only "http/1.1" is common to both lists, so the result does not depend on whose
# preference order wins.
CLIENT_ALPN = ["x-aiotls-test", "http/1.1"]
SERVER_ALPN = ["http/1.1", "h2"]
ALPN_RESULT = "http/1.1"

_rng = random.Random(0xA107)
#: ~1 MiB each way, different in each direction, with a small marker in front.
CLIENT_PAYLOAD = b"hello from the client\n" + _rng.randbytes(1 << 20)
SERVER_PAYLOAD = b"hello from the server\n" + _rng.randbytes((1 << 20) + 17)

CLIENT_CN = "client.example.test"


def _digest(data: bytes) -> str:
    return f"{len(data)} bytes sha256={hashlib.sha256(data).hexdigest()[:16]}"


def assert_same_bytes(got: bytes, expected: bytes) -> None:
    """Compare big payloads without pytest dumping megabytes into the report."""
    assert _digest(got) == _digest(expected)


def pin(ctx: aiotls.TLSContext, version: ssl.TLSVersion) -> None:
    ctx.minimum_version = version
    ctx.maximum_version = version


def subject_cn(cert: dict[str, Any] | None) -> str | None:
    """The commonName from a getpeercert() dict (stdlib or aiotls)."""
    assert cert, f"no verified peer certificate: {cert!r}"
    for rdn in cert["subject"]:
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


def server_der(pki: PKI, key_type: KeyType = "ecdsa-p256") -> bytes:
    return pki.servers[key_type][0].cert.public_bytes(Encoding.DER)


# --- the stdlib peer (runs in a thread) ---------------------------------------------------------


@dataclass
class PeerReport:
    """What the stdlib peer saw."""

    version: str | None
    cipher: tuple[str, str, int] | None
    alpn: str | None
    peercert: dict[str, Any] | None
    received: bytes
    closed_cleanly: bool


def _recv_exactly(tls: ssl.SSLSocket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = tls.recv(min(n - len(buf), 1 << 16))
        if not chunk:
            raise AssertionError(f"stdlib peer: EOF after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def _stdlib_session(tls: ssl.SSLSocket, *, server_side: bool, outgoing: bytes, expect: int,
                    peer_closes: bool) -> PeerReport:
    """Exchange data on a handshaken stdlib socket and close with close_notify both ways.

    The client sends first, then reads; the server reads, then answers.  If
    *peer_closes* this side calls ``unwrap()`` first (send close_notify, wait for the
    reply); otherwise it waits for aiotls's close_notify (``recv`` returns ``b""``;
    the socket has ``suppress_ragged_eofs=False`` so a bare EOF would raise) and then
    answers it with ``unwrap()``.
    """
    report = PeerReport(
        version=tls.version(),
        cipher=tls.cipher(),
        alpn=tls.selected_alpn_protocol(),
        peercert=tls.getpeercert(),
        received=b"",
        closed_cleanly=False,
    )
    if server_side:
        report.received = _recv_exactly(tls, expect)
        tls.sendall(outgoing)
    else:
        tls.sendall(outgoing)
        report.received = _recv_exactly(tls, expect)
    if not peer_closes:
        extra = tls.recv(1)
        assert extra == b"", f"stdlib peer: expected close_notify, got data {extra!r}"
    tls.unwrap()
    report.closed_cleanly = True
    return report


def stdlib_server(listener: socket.socket, ctx: ssl.SSLContext, *, outgoing: bytes, expect: int,
                  peer_closes: bool) -> PeerReport:
    """Accept one connection, handshake with the stdlib, run :func:`_stdlib_session`."""
    raw, _ = listener.accept()
    raw.settimeout(TIMEOUT)
    with ctx.wrap_socket(raw, server_side=True, suppress_ragged_eofs=False) as tls:
        return _stdlib_session(tls, server_side=True, outgoing=outgoing, expect=expect,
                               peer_closes=peer_closes)


def stdlib_client(address: tuple[str, int], ctx: ssl.SSLContext, *, server_hostname: str,
                  outgoing: bytes, expect: int, peer_closes: bool) -> PeerReport:
    """Connect, handshake with the stdlib (verifying the server), run :func:`_stdlib_session`."""
    raw = socket.create_connection(address, timeout=TIMEOUT)
    with ctx.wrap_socket(raw, server_hostname=server_hostname, suppress_ragged_eofs=False) as tls:
        return _stdlib_session(tls, server_side=False, outgoing=outgoing, expect=expect,
                               peer_closes=peer_closes)


# --- the aiotls side ------------------------------------------------------------------------------


def aiotls_session(tls: SocketTLS, *, outgoing: bytes, expect: int, aiotls_closes: bool) -> bytes:
    """The aiotls half of :func:`_stdlib_session`: handshake, exchange, clean close."""
    tls.handshake()
    if tls.conn.server_side:
        received = tls.recv_exactly(expect)
        tls.send(outgoing)
    else:
        tls.send(outgoing)
        received = tls.recv_exactly(expect)
    if aiotls_closes:
        tls.close()
    else:
        tls.wait_closed()
    assert tls.close_notify_received
    assert tls.terminated is not None
    assert tls.terminated.error is None
    assert not tls.terminated.truncated
    assert tls.conn.state is aiotls.ConnectionState.CLOSED
    assert tls.pending == b"", "data after the exchange"
    return received


def run_aiotls_client_vs_stdlib_server(
    client_ctx: aiotls.TLSContext, server_ctx: ssl.SSLContext, *, host: str = "127.0.0.1",
    server_hostname: str = "localhost", aiotls_closes: bool = True,
    outgoing: bytes = CLIENT_PAYLOAD, reply: bytes = SERVER_PAYLOAD,
) -> tuple[SocketTLS, PeerReport]:
    with listen(host, TIMEOUT) as listener, peer_thread(
        stdlib_server, listener, server_ctx, outgoing=reply, expect=len(outgoing),
        peer_closes=not aiotls_closes,
    ) as peer:
        address = listener.getsockname()[:2]
        with SocketTLS.connect(client_ctx, address, server_hostname=server_hostname,
                               timeout=TIMEOUT) as tls:
            received = aiotls_session(tls, outgoing=outgoing, expect=len(reply),
                                      aiotls_closes=aiotls_closes)
        report = peer.result(JOIN_TIMEOUT)
    assert_same_bytes(received, reply)
    assert_same_bytes(report.received, outgoing)
    assert report.closed_cleanly
    return tls, report


def run_stdlib_client_vs_aiotls_server(
    client_ctx: ssl.SSLContext, server_ctx: aiotls.TLSContext, *, host: str = "127.0.0.1",
    server_hostname: str = "localhost", aiotls_closes: bool = True,
    outgoing: bytes = CLIENT_PAYLOAD, reply: bytes = SERVER_PAYLOAD,
) -> tuple[SocketTLS, PeerReport]:
    with listen(host, TIMEOUT) as listener, peer_thread(
        stdlib_client, listener.getsockname()[:2], client_ctx, server_hostname=server_hostname,
        outgoing=outgoing, expect=len(reply), peer_closes=not aiotls_closes,
    ) as peer:
        with SocketTLS.accept(server_ctx, listener, timeout=TIMEOUT) as tls:
            received = aiotls_session(tls, outgoing=reply, expect=len(outgoing),
                                      aiotls_closes=aiotls_closes)
        report = peer.result(JOIN_TIMEOUT)
    assert_same_bytes(received, outgoing)
    assert_same_bytes(report.received, reply)
    assert report.closed_cleanly
    return tls, report


def assert_agree(tls: SocketTLS, report: PeerReport, version: ssl.TLSVersion) -> None:
    """Both sides report the same version, cipher (name, protocol, bits) and ALPN."""
    name = VERSION_NAMES[version]
    hs = tls.handshake_event
    assert hs is not None
    assert tls.conn.version() == name
    assert hs.version == name
    assert report.version == name
    assert report.cipher is not None
    assert tls.conn.cipher() == report.cipher  # (name, protocol, secret bits)
    assert hs.cipher == report.cipher[0]
    assert tls.conn.selected_alpn_protocol() == hs.alpn_protocol == report.alpn


# --- aiotls client <-> stdlib server --------------------------------------------------------------


@pytest.mark.parametrize("closer", CLOSERS)
@pytest.mark.parametrize("host", HOSTS)
@pytest.mark.parametrize("version", VERSION_PARAMS)
def test_aiotls_client_stdlib_server(pki: PKI, version: ssl.TLSVersion, host: str,
                                     closer: str) -> None:
    client_ctx = pki.client_context()
    pin(client_ctx, version)
    client_ctx.set_alpn_protocols(CLIENT_ALPN)
    server_ctx = pki.stdlib_server_context()
    server_ctx.set_alpn_protocols(SERVER_ALPN)

    # server_hostname is the IP literal: verified against the certificate's IP SANs.
    tls, report = run_aiotls_client_vs_stdlib_server(
        client_ctx, server_ctx, host=host, server_hostname=host,
        aiotls_closes=closer == "aiotls")

    assert_agree(tls, report, version)
    assert tls.conn.selected_alpn_protocol() == ALPN_RESULT
    assert report.alpn == ALPN_RESULT
    assert subject_cn(tls.conn.getpeercert()) == "localhost"
    assert tls.conn.getpeercert(binary_form=True) == server_der(pki)
    assert report.peercert is None  # no client certificate requested


# --- stdlib client <-> aiotls server --------------------------------------------------------------


@pytest.mark.parametrize("closer", CLOSERS)
@pytest.mark.parametrize("host", HOSTS)
@pytest.mark.parametrize("version", VERSION_PARAMS)
def test_stdlib_client_aiotls_server(pki: PKI, version: ssl.TLSVersion, host: str,
                                     closer: str) -> None:
    server_ctx = pki.server_context()
    pin(server_ctx, version)
    server_ctx.set_alpn_protocols(SERVER_ALPN)
    client_ctx = pki.stdlib_client_context()
    client_ctx.set_alpn_protocols(CLIENT_ALPN)
    assert client_ctx.check_hostname
    assert client_ctx.verify_mode == ssl.CERT_REQUIRED

    tls, report = run_stdlib_client_vs_aiotls_server(
        client_ctx, server_ctx, host=host, server_hostname="localhost",
        aiotls_closes=closer == "aiotls")

    assert_agree(tls, report, version)
    assert tls.conn.selected_alpn_protocol() == ALPN_RESULT
    assert report.alpn == ALPN_RESULT
    # The stdlib verified our certificate and host name; it reports the verified dict.
    assert subject_cn(report.peercert) == "localhost"
    assert tls.handshake_event is not None
    assert tls.handshake_event.server_name == "localhost"  # SNI as the client sent it
    assert tls.conn.getpeercert() is None  # no client certificate requested


def test_stdlib_client_rejects_wrong_hostname(pki: PKI) -> None:
    """check_hostname on the stdlib side really checks the aiotls server's certificate."""
    client_ctx = pki.stdlib_client_context()

    def connect_wrong_name(address: tuple[str, int]) -> ssl.SSLCertVerificationError:
        raw = socket.create_connection(address, timeout=TIMEOUT)
        with raw:
            try:
                client_ctx.wrap_socket(raw, server_hostname="wrong.example.test")
            except ssl.SSLCertVerificationError as exc:
                return exc
        raise AssertionError("the stdlib accepted a certificate for the wrong host name")

    with listen("127.0.0.1", TIMEOUT) as listener, \
            peer_thread(connect_wrong_name, listener.getsockname()[:2]) as peer:
        with SocketTLS.accept(pki.server_context(), listener, timeout=TIMEOUT) as tls, \
                pytest.raises(TLSFailed) as failed:
            tls.handshake()
        err = peer.result(JOIN_TIMEOUT)
    assert "hostname mismatch" in str(err).lower() or "doesn't match" in str(err)
    assert isinstance(failed.value.error, aiotls.AlertReceived), failed.value


# --- openssl s_server / s_client ------------------------------------------------------------------



def _reversed_lines(count: int) -> list[bytes]:
    rng = random.Random(count)
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,-_"
    return [f"{i:05d} ".encode() + "".join(rng.choice(alphabet) for _ in range(80)).encode()
            for i in range(count)]


@pytest.mark.parametrize("closer", CLOSERS)
@pytest.mark.parametrize("version", VERSION_PARAMS)
def test_aiotls_client_openssl_s_server(pki: PKI, version: ssl.TLSVersion, closer: str) -> None:
    """``s_server -rev`` answers every line reversed; ``CLOSE`` makes it close first."""
    openssl_bin = require_openssl()
    certfile, keyfile = pki.server()
    client_ctx = pki.client_context()
    pin(client_ctx, version)
    client_ctx.set_alpn_protocols(CLIENT_ALPN)
    port = free_port()
    argv = [openssl_bin, "s_server", "-accept", f"127.0.0.1:{port}", "-cert", certfile,
            "-key", keyfile, OPENSSL_VERSION_FLAGS[version], "-alpn", ",".join(SERVER_ALPN),
            "-naccept", "1", "-rev"]
    with OpenSSLProcess(argv) as server:
        # Readiness: s_server prints ACCEPT once it listens.  (Probing with a TCP connect
        # is not an option: with -naccept 1 the probe would use up the only connection.)
        server.wait_for_output("ACCEPT", TIMEOUT)
        with SocketTLS.connect(client_ctx, ("127.0.0.1", port), server_hostname="localhost",
                               timeout=TIMEOUT) as tls:
            hs = tls.handshake()
            lines = _reversed_lines(1500)  # ~130 KB, in batches so neither side stalls
            for start in range(0, len(lines), 100):
                batch = lines[start:start + 100]
                tls.send(b"".join(line + b"\n" for line in batch))
                for line in batch:
                    assert tls.recv_line() == line[::-1] + b"\n"
            if closer == "aiotls":
                tls.close()
            else:
                tls.send(b"CLOSE\n")
                tls.wait_closed()
        rc, output = server.wait(TIMEOUT)

    assert rc == 0, output
    assert ":error:" not in output, output
    assert tls.close_notify_received
    name = VERSION_NAMES[version]
    assert hs.version == name
    assert f"Protocol version: {name}\n" in output
    cipher = tls.conn.cipher()
    assert cipher is not None
    assert f"Ciphersuite: {cipher[0]}\n" in output
    assert tls.conn.selected_alpn_protocol() == ALPN_RESULT
    assert subject_cn(tls.conn.getpeercert()) == "localhost"


@pytest.mark.parametrize("version", VERSION_PARAMS)
def test_openssl_s_client_aiotls_server(pki: PKI, version: ssl.TLSVersion) -> None:
    openssl_bin = require_openssl()
    server_ctx = pki.server_context()
    pin(server_ctx, version)
    server_ctx.set_alpn_protocols(SERVER_ALPN)
    line = b"a line from s_client 8f3a\n"
    with listen("127.0.0.1", TIMEOUT) as listener:
        port = listener.getsockname()[1]
        argv = [openssl_bin, "s_client", "-connect", f"127.0.0.1:{port}",
                "-CAfile", pki.ca_file, "-verify_return_error", "-verify_hostname", "localhost",
                "-servername", "localhost", OPENSSL_VERSION_FLAGS[version],
                "-alpn", ",".join(CLIENT_ALPN),
                # Keep running after stdin EOF until the server closes; no command letters.
                "-ign_eof", "-nocommands"]
        with OpenSSLProcess(argv, stdin=line) as client:
            client.close_stdin()
            with SocketTLS.accept(server_ctx, listener, timeout=TIMEOUT) as tls:
                hs = tls.handshake()
                got = tls.recv_line()
                tls.send(b"echo: " + got)
                tls.close()  # s_client answers close_notify and exits
            rc, output = client.wait(TIMEOUT)

    assert got == line
    assert rc == 0, output
    name = VERSION_NAMES[version]
    cipher = tls.conn.cipher()
    assert cipher is not None
    assert hs.version == name
    assert f"New, {name}, Cipher is {cipher[0]}" in output, output
    if version == ssl.TLSVersion.TLSv1_2:
        # TLS 1.3 sessions are only printed when a ticket arrives; TLS 1.2 always has one.
        assert re.search(rf"Protocol\s*: {re.escape(name)}\n", output), output
        assert re.search(rf"Cipher\s*: {re.escape(cipher[0])}\n", output), output
    assert "Verify return code: 0 (ok)" in output, output
    assert f"ALPN protocol: {ALPN_RESULT}" in output, output
    assert "echo: a line from s_client 8f3a\n" in output, output
    assert hs.server_name == "localhost"
    assert hs.alpn_protocol == ALPN_RESULT


# --- every default cipher suite -----------------------------------------------------------------


def _suite_setup(suite: CipherSuite) -> tuple[KeyType, ssl.TLSVersion]:
    if suite.kex is None:
        return "ecdsa-p256", ssl.TLSVersion.TLSv1_3
    key_type: KeyType = "ecdsa-p256" if suite.kex == "ecdhe_ecdsa" else "rsa2048"
    return key_type, ssl.TLSVersion.TLSv1_2


SUITES = [pytest.param(s, id=s.name) for s in DEFAULT_SUITES]
SMALL = b"x" * 1000


@pytest.mark.parametrize("suite", SUITES)
def test_default_suite_aiotls_client(pki: PKI, suite: CipherSuite) -> None:
    key_type, version = _suite_setup(suite)
    client_ctx = pki.client_context()
    client_ctx.set_ciphers(suite.name)
    pin(client_ctx, version)
    server_ctx = pki.stdlib_server_context(key_type)
    tls, report = run_aiotls_client_vs_stdlib_server(client_ctx, server_ctx,
                                                     outgoing=SMALL, reply=SMALL[::-1] + b"!")
    cipher = tls.conn.cipher()
    assert cipher is not None
    assert cipher[0] == suite.openssl_name
    assert report.cipher is not None
    assert report.cipher[0] == suite.openssl_name
    assert_agree(tls, report, version)


@pytest.mark.parametrize("suite", SUITES)
def test_default_suite_aiotls_server(pki: PKI, suite: CipherSuite) -> None:
    key_type, version = _suite_setup(suite)
    server_ctx = pki.server_context(key_type)
    server_ctx.set_ciphers(suite.name)
    pin(server_ctx, version)
    tls, report = run_stdlib_client_vs_aiotls_server(pki.stdlib_client_context(), server_ctx,
                                                     outgoing=SMALL, reply=SMALL[::-1] + b"!")
    cipher = tls.conn.cipher()
    assert cipher is not None
    assert cipher[0] == suite.openssl_name
    assert report.cipher is not None
    assert report.cipher[0] == suite.openssl_name
    assert_agree(tls, report, version)


# --- mutual TLS -----------------------------------------------------------------------------------


def _client_der(pki: PKI) -> bytes:
    return pki.client[0].cert.public_bytes(Encoding.DER)


@pytest.mark.parametrize("version", VERSION_PARAMS)
def test_mtls_aiotls_server_stdlib_client(pki: PKI, version: ssl.TLSVersion) -> None:
    server_ctx = pki.server_context()
    pin(server_ctx, version)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    server_ctx.load_verify_locations(cafile=pki.ca_file)
    client_ctx = pki.stdlib_client_context()
    client_ctx.load_cert_chain(pki.client[1], pki.client[2])

    tls, report = run_stdlib_client_vs_aiotls_server(client_ctx, server_ctx)

    assert_agree(tls, report, version)
    assert subject_cn(tls.conn.getpeercert()) == CLIENT_CN
    assert tls.conn.getpeercert(binary_form=True) == _client_der(pki)
    assert tls.handshake_event is not None
    assert tls.handshake_event.peer_certificates[0] == _client_der(pki)
    assert subject_cn(report.peercert) == "localhost"


@pytest.mark.parametrize("version", VERSION_PARAMS)
def test_mtls_stdlib_server_aiotls_client(pki: PKI, version: ssl.TLSVersion) -> None:
    server_ctx = pki.stdlib_server_context()
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    server_ctx.load_verify_locations(cafile=pki.ca_file)
    client_ctx = pki.client_context()
    pin(client_ctx, version)
    client_ctx.load_cert_chain(pki.client[1], pki.client[2])

    tls, report = run_aiotls_client_vs_stdlib_server(client_ctx, server_ctx)

    assert_agree(tls, report, version)
    assert subject_cn(report.peercert) == CLIENT_CN
    assert subject_cn(tls.conn.getpeercert()) == "localhost"


def _expect_stdlib_failure(make: Callable[[], ssl.SSLSocket]) -> ssl.SSLError:
    """Handshake (and, for TLS 1.3 clients, read once): the peer must reject us."""
    try:
        with make() as tls:
            tls.recv(1)  # TLS 1.3: the server's verdict on our certificate arrives after Finished
    except ssl.SSLError as exc:
        return exc
    raise AssertionError("the stdlib peer was not rejected")


@pytest.mark.parametrize("version", VERSION_PARAMS)
def test_mtls_aiotls_server_rejects_client_without_certificate(
        pki: PKI, version: ssl.TLSVersion) -> None:
    server_ctx = pki.server_context()
    pin(server_ctx, version)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    server_ctx.load_verify_locations(cafile=pki.ca_file)
    client_ctx = pki.stdlib_client_context()  # no certificate loaded

    def client(address: tuple[str, int]) -> ssl.SSLError:
        def make() -> ssl.SSLSocket:
            raw = socket.create_connection(address, timeout=TIMEOUT)
            return client_ctx.wrap_socket(raw, server_hostname="localhost")
        return _expect_stdlib_failure(make)

    with listen("127.0.0.1", TIMEOUT) as listener, \
            peer_thread(client, listener.getsockname()[:2]) as peer:
        with SocketTLS.accept(server_ctx, listener, timeout=TIMEOUT) as tls, \
                pytest.raises(TLSFailed) as failed:
            tls.handshake()
        err = peer.result(JOIN_TIMEOUT)
    assert isinstance(failed.value.error, aiotls.TLSError)
    assert tls.conn.state is aiotls.ConnectionState.FAILED
    expected = ("certificate required" if version == ssl.TLSVersion.TLSv1_3
                else "handshake failure")
    assert expected in str(err).lower().replace("_", " "), err


@pytest.mark.parametrize("version", VERSION_PARAMS)
def test_mtls_stdlib_server_rejects_aiotls_client_without_certificate(
        pki: PKI, version: ssl.TLSVersion) -> None:
    server_ctx = pki.stdlib_server_context()
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    server_ctx.load_verify_locations(cafile=pki.ca_file)
    client_ctx = pki.client_context()  # no certificate loaded
    pin(client_ctx, version)

    def server(listener: socket.socket) -> ssl.SSLError:
        raw, _ = listener.accept()
        raw.settimeout(TIMEOUT)
        try:
            server_ctx.wrap_socket(raw, server_side=True).close()
        except ssl.SSLError as exc:
            raw.close()
            return exc
        raise AssertionError("the stdlib server accepted a client without a certificate")

    def handshake_and_read(tls: SocketTLS) -> None:
        # TLS 1.2: the handshake fails.  TLS 1.3: our handshake completes, the server's
        # alert arrives with the next read.
        tls.handshake()
        tls.recv_exactly(1)

    with listen("127.0.0.1", TIMEOUT) as listener, peer_thread(server, listener) as peer:
        with SocketTLS.connect(client_ctx, listener.getsockname()[:2],
                               server_hostname="localhost", timeout=TIMEOUT) as tls, \
                pytest.raises(TLSFailed) as failed:
            handshake_and_read(tls)
        err = peer.result(JOIN_TIMEOUT)
    assert "PEER_DID_NOT_RETURN_A_CERTIFICATE" in str(err), err
    error = failed.value.error
    assert isinstance(error, aiotls.AlertReceived), failed.value
    expected = (aiotls.AlertDescription.certificate_required
                if version == ssl.TLSVersion.TLSv1_3 else aiotls.AlertDescription.handshake_failure)
    assert error.alert == expected


# --- server key types and certificate introspection ---------------------------------------------

KEY_TYPES: list[KeyType] = ["ecdsa-p256", "ecdsa-p384", "rsa2048", "ed25519"]


@pytest.mark.parametrize("key_type", KEY_TYPES)
@pytest.mark.parametrize("version", VERSION_PARAMS)
def test_server_key_types_aiotls_client(pki: PKI, version: ssl.TLSVersion,
                                      key_type: KeyType) -> None:
    client_ctx = pki.client_context()
    pin(client_ctx, version)
    server_ctx = pki.stdlib_server_context(key_type)
    tls, report = run_aiotls_client_vs_stdlib_server(client_ctx, server_ctx,
                                                     outgoing=SMALL, reply=SMALL[::-1] + b"!")
    assert_agree(tls, report, version)
    assert tls.conn.getpeercert(binary_form=True) == server_der(pki, key_type)


@pytest.mark.parametrize("key_type", KEY_TYPES)
@pytest.mark.parametrize("version", VERSION_PARAMS)
def test_server_key_types_aiotls_server(pki: PKI, version: ssl.TLSVersion,
                                      key_type: KeyType) -> None:
    server_ctx = pki.server_context(key_type)
    pin(server_ctx, version)
    tls, report = run_stdlib_client_vs_aiotls_server(pki.stdlib_client_context(), server_ctx,
                                                     outgoing=SMALL, reply=SMALL[::-1] + b"!")
    assert_agree(tls, report, version)
    assert subject_cn(report.peercert) == "localhost"


def test_getpeercert_matches_stdlib(pki: PKI) -> None:
    """aiotls's getpeercert() dict is the one the stdlib builds for the same certificates.

    The server certificate has DNS and IP (v4 and v6) SANs; the client certificate is
    compared through mutual TLS in the other direction.
    """
    # The stdlib's view of the server certificate, and aiotls's view of the client's.
    server_ctx = pki.server_context()
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    server_ctx.load_verify_locations(cafile=pki.ca_file)
    client_ctx = pki.stdlib_client_context()
    client_ctx.load_cert_chain(pki.client[1], pki.client[2])
    aiotls_server, stdlib_client_report = run_stdlib_client_vs_aiotls_server(
        client_ctx, server_ctx, outgoing=SMALL, reply=SMALL)
    # aiotls's view of the server certificate, and the stdlib's view of the client's.
    stdlib_server_ctx = pki.stdlib_server_context()
    stdlib_server_ctx.verify_mode = ssl.CERT_REQUIRED
    stdlib_server_ctx.load_verify_locations(cafile=pki.ca_file)
    aiotls_client_ctx = pki.client_context()
    aiotls_client_ctx.load_cert_chain(pki.client[1], pki.client[2])
    aiotls_client, stdlib_server_report = run_aiotls_client_vs_stdlib_server(
        aiotls_client_ctx, stdlib_server_ctx, outgoing=SMALL, reply=SMALL)

    assert aiotls_server.conn.getpeercert() == stdlib_server_report.peercert
    assert aiotls_client.conn.getpeercert() == stdlib_client_report.peercert
