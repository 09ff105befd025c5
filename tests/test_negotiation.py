"""Handshake negotiation: PSK modes, ALPN, signature algorithms, tickets across
resumptions, and what a client without a certificate is told (issue 11, points 4, 11-14).

Independent peers: tlslite-ng's own TLSConnection driven in memory (it can offer only
``psk_ke``, or play a server that selects an ALPN protocol nobody offered), OpenSSL in
process (the stdlib ``ssl`` module over memory BIOs), and ``openssl s_client``/``s_server``
over loopback.  Wire bytes are parsed here, by hand, where the claim is about the bytes.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Callable, Generator
from typing import Any

import pytest
from tlslite.errors import TLSRemoteAlert

import aiotls
import aiotls.asyncio
from aiotls.errors import AlertDescription
from aiotls.events import DataReceived
from tests.certs import CA, Issued
from tests.helpers import PKI, VERSION_PARAMS, connect, echo_line, session_chain
from tests.sockloop import (
    DEFAULT_TIMEOUT,
    OpenSSLProcess,
    SocketTLS,
    TLSFailed,
    free_port,
    listen,
    require_openssl,
)
from tests.tlslite_peer import RawTLS, TlslitePeer, exchange, tlslite_settings

TLS12, TLS13 = ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3

# Extension types and code points (RFC 8446 4.2, 4.2.3, 4.2.9; RFC 7301)
EXT_SIGNATURE_ALGORITHMS, EXT_SIGNATURE_ALGORITHMS_CERT = 13, 50
EXT_SUPPORTED_GROUPS, EXT_KEY_SHARE, EXT_PRE_SHARED_KEY = 10, 51, 41
EXT_PSK_MODES, EXT_EARLY_DATA, EXT_ALPN = 45, 42, 16
PSK_KE, PSK_DHE_KE = 0, 1
RSA_PKCS1 = {0x0401, 0x0501, 0x0601}
#: What aiotls's verifier checks in certificates: ECDSA, RSA-PSS (rsaEncryption keys) and
#: RSA PKCS#1 v1.5 with SHA-256/384/512; no Ed25519/Ed448 CA.
CERT_SCHEMES = [0x0403, 0x0503, 0x0603, 0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601]
Wire = bytes | bytearray
HRR_RANDOM = bytes.fromhex("CF21AD74E59A6111BE1D8C021E65B891C2A211167ABB8C5E079E09E2C8A8339C")


def context_pair(pki: PKI, version: ssl.TLSVersion | None = None,
                 ) -> tuple[aiotls.TLSContext, aiotls.TLSContext]:
    client, server = pki.client_context(), pki.server_context()
    if version is not None:
        client.minimum_version = client.maximum_version = version
    return client, server


# --- wire parsing -------------------------------------------------------------------------


def u16(data: Wire, i: int) -> int:
    return int.from_bytes(data[i:i + 2], "big")


def extensions(data: Wire, i: int) -> list[tuple[int, bytes]]:
    """A 2-byte-length extension block starting at ``i``: [(type, payload)]."""
    end = i + 2 + u16(data, i)
    i += 2
    found = []
    while i < end:
        size = u16(data, i + 2)
        found.append((u16(data, i), bytes(data[i + 4:i + 4 + size])))
        i += 4 + size
    assert i == end == len(data), "trailing bytes after the extensions"
    return found


def u16_list(payload: Wire) -> list[int]:
    """A 2-byte-length list of 2-byte values (signature algorithms, groups)."""
    assert u16(payload, 0) == len(payload) - 2
    return [u16(payload, i) for i in range(2, len(payload), 2)]


def client_hello_parts(record: Wire) -> tuple[bytes, list[tuple[int, bytes]]]:
    """A ClientHello record: (body up to the extensions, extensions)."""
    assert record[0] == 22 and u16(record, 3) == len(record) - 5, "one handshake record"
    body = record[5:]
    assert body[0] == 1 and int.from_bytes(body[1:4], "big") == len(body) - 4
    msg = body[4:]
    i = 2 + 32
    i += 1 + msg[i]  # session id
    i += 2 + u16(msg, i)  # cipher suites
    i += 1 + msg[i]  # compression methods
    return bytes(msg[:i]), extensions(msg, i)


def client_hello_record(prefix: bytes, exts: list[tuple[int, bytes]]) -> bytes:
    block = b"".join(t.to_bytes(2, "big") + len(d).to_bytes(2, "big") + d for t, d in exts)
    msg = prefix + len(block).to_bytes(2, "big") + block
    body = b"\x01" + len(msg).to_bytes(3, "big") + msg
    return b"\x16\x03\x01" + len(body).to_bytes(2, "big") + body


def server_hello(flight: Wire) -> tuple[bytes, dict[int, bytes]]:
    """The first record of a server's flight as a ServerHello: (random, extensions)."""
    assert flight[0] == 22, f"not a handshake record: {flight[:7].hex()}"
    msg = flight[5 + 4:5 + u16(flight, 3)]
    assert flight[5] == 2
    i = 2 + 32
    i += 1 + msg[i]
    i += 2 + 1  # cipher suite, compression
    return bytes(msg[2:34]), dict(extensions(msg, i))


def psk_identities(record: Wire) -> list[bytes]:
    """The PSK identities a ClientHello offers (RFC 8446 4.2.11)."""
    found = dict(client_hello_parts(record)[1]).get(EXT_PRE_SHARED_KEY)
    if found is None:
        return []
    identities, i = [], 2
    while i < 2 + u16(found, 0):
        size = u16(found, i)
        identities.append(found[i + 2:i + 2 + size])
        i += 2 + size + 4  # identity, obfuscated_ticket_age
    return identities


def alert_of(flight: Wire) -> int | None:
    """The description of a plaintext fatal alert record at the end of a flight."""
    if len(flight) >= 7 and flight[-7] == 21 and flight[-4:-1] == b"\x00\x02\x02":
        return flight[-1]
    return None


# --- tlslite-ng's own TLSConnection as an independent peer, in memory ----------------------

#: tlslite's settings for a TLS 1.3-only peer.
TLS13_ONLY = (3, 4)


def tlslite_client_session(sctx: aiotls.TLSContext) -> Any:
    """A tlslite client's TLS 1.3 session holding the tickets of an aiotls server."""
    peer = TlslitePeer.client(tlslite_settings(min_version=TLS13_ONLY), keep_reading=False)
    server = aiotls.TLSConnection(sctx, server_side=True)
    exchange(peer, server)
    assert server.handshake_complete and peer.error is None, (server.error, peer.error)
    server.send_data(b"x")
    peer.start(peer.tls.readAsync())  # takes the NewSessionTickets, then the data
    exchange(peer, server)
    assert peer.result == b"x"
    assert peer.tls.session.tickets, "the aiotls server sent no ticket"
    return peer.tls.session


# --- point 4: a PSK the server cannot use falls back to a full handshake ------------------


@pytest.mark.parametrize("key_shares", [pytest.param(["x25519"], id="key-share"),
                                        pytest.param([], id="hello-retry")])
def test_psk_ke_only_client_gets_a_full_handshake(pki: PKI, key_shares: list[str]) -> None:
    """tlslite's client resumes with a valid ticket but allows only psk_ke (no (EC)DHE),
    which aiotls never selects: RFC 8446 4.2.9 has the server ignore the PSK, and the
    client's key share (or, after a HelloRetryRequest, its second one) gives a full
    handshake.  (aiotls answered handshake_failure.)"""
    sctx = pki.server_context()
    session = tlslite_client_session(sctx)
    settings = tlslite_settings(min_version=TLS13_ONLY, psk_modes=["psk_ke"],
                                keyShares=key_shares)
    peer = TlslitePeer.client(settings, session=session, keep_reading=False)
    server = aiotls.TLSConnection(sctx, server_side=True)
    exchange(peer, server)
    assert server.error is None and peer.error is None, (server.error, peer.error)
    assert server.handshake_complete and not server.session_reused
    assert not peer.tls.resumed
    assert peer.tls.session.serverCertChain is not None  # authenticated by certificate
    server.send_data(b"full")
    peer.start(peer.tls.readAsync())
    exchange(peer, server)
    assert peer.result == b"full"


def test_client_allowing_both_modes_resumes_with_dhe(pki: PKI) -> None:
    """tlslite's default offer (psk_dhe_ke and psk_ke) resumes, with (EC)DHE."""
    sctx = pki.server_context()
    session = tlslite_client_session(sctx)
    peer = TlslitePeer.client(tlslite_settings(min_version=TLS13_ONLY), session=session,
                              keep_reading=False)
    server = aiotls.TLSConnection(sctx, server_side=True)
    exchange(peer, server)
    assert server.error is None and peer.error is None, (server.error, peer.error)
    assert server.session_reused and peer.tls.resumed
    assert server.group is not None  # a key exchange took place (psk_dhe_ke)


def _resuming_hello(pki: PKI) -> tuple[aiotls.TLSContext, bytes]:
    """A server context and an aiotls client's TLS 1.3 ClientHello carrying its ticket."""
    cctx, sctx = context_pair(pki, TLS13)
    first, _ = connect(cctx, sctx)
    session = first.session
    assert session is not None and session.has_ticket
    hello = aiotls.TLSConnection(cctx, server_hostname="localhost", session=session)
    record = hello.data_to_send()
    assert psk_identities(record)
    return sctx, bytes(record)


def _with_psk_modes(exts: list[tuple[int, bytes]], *modes: int) -> list[tuple[int, bytes]]:
    return [(t, bytes((len(modes), *modes)) if t == EXT_PSK_MODES else d) for t, d in exts]


def _without(exts: list[tuple[int, bytes]], *types: int) -> list[tuple[int, bytes]]:
    return [(t, d) for t, d in exts if t not in types]


def _before_psk(exts: list[tuple[int, bytes]], ext: tuple[int, bytes]) -> list[tuple[int, bytes]]:
    return [*exts[:-1], ext, exts[-1]]


#: (name, ClientHello extensions from the resuming ones, the alert expected or None for a
#: full handshake).  The binders no longer match these hellos; a PSK that is ignored is
#: never checked, and one that is checked would fail (illegal_parameter).
PSK_MODE_CASES: list[tuple[str, Callable[[list[tuple[int, bytes]]], list[tuple[int, bytes]]],
                           int | None]] = [
    ("psk_ke with a key share", lambda e: _with_psk_modes(e, PSK_KE), None),
    ("only an unknown mode", lambda e: _with_psk_modes(e, 7), None),
    ("psk_ke and early_data", lambda e: _before_psk(_with_psk_modes(e, PSK_KE),
                                                    (EXT_EARLY_DATA, b"")), None),
    ("psk_ke without key_share and supported_groups",
     lambda e: _without(_with_psk_modes(e, PSK_KE), EXT_KEY_SHARE, EXT_SUPPORTED_GROUPS),
     AlertDescription.missing_extension),
    ("psk_ke without key_share",
     lambda e: _without(_with_psk_modes(e, PSK_KE), EXT_KEY_SHARE),
     AlertDescription.missing_extension),
    ("psk_ke without signature_algorithms",
     lambda e: _without(_with_psk_modes(e, PSK_KE), EXT_SIGNATURE_ALGORITHMS),
     AlertDescription.missing_extension),
]


@pytest.mark.parametrize(("name", "change", "alert"), PSK_MODE_CASES,
                         ids=[c[0] for c in PSK_MODE_CASES])
def test_psk_mode_table(pki: PKI, name: str,
                        change: Callable[[list[tuple[int, bytes]]], list[tuple[int, bytes]]],
                        alert: int | None) -> None:
    sctx, record = _resuming_hello(pki)
    prefix, exts = client_hello_parts(record)
    server = aiotls.TLSConnection(sctx, server_side=True)
    server.receive_data(client_hello_record(prefix, change(exts)))
    flight = server.data_to_send()
    if alert is None:
        assert server.error is None, server.error
        random, sh_exts = server_hello(flight)
        assert random != HRR_RANDOM
        assert EXT_PRE_SHARED_KEY not in sh_exts  # the PSK was not selected
        assert EXT_KEY_SHARE in sh_exts  # a full (EC)DHE handshake with a certificate
    else:
        assert alert_of(flight) == alert
        assert isinstance(server.error, aiotls.PeerIncompatible)
        assert server.error.alert == alert
        assert server.error.code == "psk-mode-unsupported"
        assert "psk_ke" in server.error.what and "full handshake" in server.error.what
        assert "psk_dhe_ke" in server.error.hint


EXT_SUPPORTED_VERSIONS = 43


@pytest.mark.parametrize("where", ["hello offers TLS 1.2 only", "server allows TLS 1.2 only"])
def test_psk_ke_only_hello_without_key_share_negotiating_tls12(pki: PKI, where: str) -> None:
    """Without TLS 1.3 on both sides the PSK plays no part: no missing_extension for the
    absent key share, a TLS 1.2 handshake."""
    sctx, record = _resuming_hello(pki)
    prefix, exts = client_hello_parts(record)
    exts = _without(_with_psk_modes(exts, PSK_KE), EXT_KEY_SHARE)
    if where.startswith("hello"):
        exts = [(t, b"\x02\x03\x03" if t == EXT_SUPPORTED_VERSIONS else d) for t, d in exts]
    else:
        # (the client was pinned to TLS 1.3: let its hello offer TLS 1.2 as well)
        exts = [(t, b"\x04\x03\x04\x03\x03" if t == EXT_SUPPORTED_VERSIONS else d)
                for t, d in exts]
        sctx.maximum_version = TLS12
    server = aiotls.TLSConnection(sctx, server_side=True)
    server.receive_data(client_hello_record(prefix, exts))
    flight = server.data_to_send()
    assert server.error is None, server.error
    _, sh_exts = server_hello(flight)
    assert EXT_SUPPORTED_VERSIONS not in sh_exts and EXT_PRE_SHARED_KEY not in sh_exts


def test_openssl_client_allowing_psk_ke_resumes(pki: PKI, tmp_path: Any) -> None:
    """``s_client -allow_no_dhe_kex`` offers psk_ke besides psk_dhe_ke: aiotls resumes with
    the latter.  Two connections: the first writes its session, the second reads it."""
    openssl = require_openssl()
    sctx = pki.server_context()
    sess = str(tmp_path / "session.pem")
    reused = []
    with listen() as listener:
        port = listener.getsockname()[1]
        for flag in ("-sess_out", "-sess_in"):
            argv = [openssl, "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_3",
                    "-servername", "localhost", "-allow_no_dhe_kex", flag, sess]
            with OpenSSLProcess(argv, stdin=b"ping\n") as client, \
                    SocketTLS.accept(sctx, listener) as tls:
                tls.handshake()
                assert tls.recv_line() == b"ping\n"
                tls.send(b"pong\n")  # (the tickets went out with it)
                client.wait_for_output("pong")
                tls.close()
                client.wait()
                reused.append(tls.conn.session_reused)
    assert reused == [False, True]


# --- point 12: ALPN ------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSION_PARAMS)
def test_no_common_alpn_protocol_is_refused(pki: PKI, version: ssl.TLSVersion) -> None:
    """RFC 7301 3.2: no_application_protocol in TLS 1.2 and TLS 1.3 alike (TLS 1.3 went on
    without ALPN)."""
    cctx, sctx = context_pair(pki, version)
    cctx.set_alpn_protocols(["http/1.1", "x-other"])
    sctx.set_alpn_protocols(["h2"])
    client, server = connect(cctx, sctx)
    assert not server.handshake_complete and not client.handshake_complete
    assert isinstance(server.error, aiotls.PeerIncompatible)
    assert server.error.alert == AlertDescription.no_application_protocol
    if version == TLS13:  # (TLS 1.2's sentence is tlslite's)
        assert "'http/1.1'" in server.error.what and "'h2'" in server.error.what
    assert isinstance(client.error, aiotls.AlertReceived)
    assert client.error.alert == AlertDescription.no_application_protocol


@pytest.mark.parametrize("version", VERSION_PARAMS)
@pytest.mark.parametrize(("client_alpn", "server_alpn", "expected"), [
    ([], ["h2"], None),
    (["h2"], [], None),
    (["x-other", "h2"], ["http/1.1", "h2"], "h2"),
])
def test_alpn_outcomes(pki: PKI, version: ssl.TLSVersion, client_alpn: list[str],
                       server_alpn: list[str], expected: str | None) -> None:
    cctx, sctx = context_pair(pki, version)
    if client_alpn:
        cctx.set_alpn_protocols(client_alpn)
    if server_alpn:
        sctx.set_alpn_protocols(server_alpn)
    client, server = connect(cctx, sctx)
    assert client.handshake_complete and server.handshake_complete, (client.error, server.error)
    assert client.selected_alpn_protocol() == server.selected_alpn_protocol() == expected


class RogueALPNServer(RawTLS):  # type: ignore[misc]
    """tlslite's server, told (after the client's hello entered the transcript) that the
    client offered b"x-rogue": it selects a protocol the client never offered."""

    def _serverGetClientHello(self, *args: Any, **kwargs: Any) -> Generator[Any, None, None]:
        for result in super()._serverGetClientHello(*args, **kwargs):
            if isinstance(result, tuple):
                ext = result[0].getExtension(EXT_ALPN)
                if ext is not None:
                    ext.protocol_names = [bytearray(b"x-rogue")]
            yield result


def against_tlslite_server(cctx: aiotls.TLSContext, credentials: Issued,
                           server_class: type[RawTLS], **options: Any,
                           ) -> tuple[TlslitePeer, aiotls.TLSConnection]:
    """An aiotls client (``cctx``) after its handshake with tlslite's server of class
    ``server_class`` (one that misbehaves); ``options`` go to tlslite's
    handshakeServerAsync.  Returns (peer, client)."""
    peer = TlslitePeer.server(tlslite_settings(), credentials, tls_class=server_class,
                              keep_reading=False, **options)
    client = aiotls.TLSConnection(cctx, server_hostname="localhost")
    exchange(peer, client)
    return peer, client


@pytest.mark.parametrize("version", VERSION_PARAMS)
def test_client_refuses_an_alpn_protocol_it_did_not_offer(pki: PKI,
                                                          version: ssl.TLSVersion) -> None:
    """A TLS 1.2 ServerHello or TLS 1.3 EncryptedExtensions naming a protocol the client did
    not offer ends the handshake with illegal_parameter (tlslite checked only TLS 1.2)."""
    cctx, _ = context_pair(pki, version)
    cctx.set_alpn_protocols(["h2", "http/1.1"])
    peer, client = against_tlslite_server(cctx, pki.servers["ecdsa-p256"][0], RogueALPNServer,
                                          alpn=[bytearray(b"x-rogue")])
    assert not client.handshake_complete
    assert isinstance(client.error, aiotls.PeerMisbehaved), client.error
    assert client.error.alert == AlertDescription.illegal_parameter
    assert "ALPN protocol" in client.error.what
    assert isinstance(peer.error, TLSRemoteAlert)
    assert peer.error.description == AlertDescription.illegal_parameter


def test_openssl_client_with_no_common_alpn_gets_the_alert(pki: PKI) -> None:
    openssl = require_openssl()
    sctx = pki.server_context()
    sctx.set_alpn_protocols(["h2"])
    with listen() as listener:
        port = listener.getsockname()[1]
        argv = [openssl, "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_3",
                "-servername", "localhost", "-alpn", "http/1.1"]
        with OpenSSLProcess(argv, stdin=b"") as client, \
                SocketTLS.accept(sctx, listener) as tls:
            with pytest.raises(TLSFailed):
                tls.handshake()
            _, output = client.wait()
    assert tls.conn.error is not None
    assert tls.conn.error.alert == AlertDescription.no_application_protocol
    assert "no application protocol" in output


# --- point 11: signature algorithms for certificates ---------------------------------------


@pytest.mark.parametrize("versions", [(TLS13, TLS13), (TLS12, TLS13), (TLS12, TLS12)],
                         ids=["tls1.3-only", "both", "tls1.2-only"])
def test_client_hello_lists_rsa_pkcs1_for_certificates(
        pki: PKI, versions: tuple[ssl.TLSVersion, ssl.TLSVersion]) -> None:
    """The ClientHello's signature_algorithms carry rsa_pkcs1_sha256/384/512 whatever the
    versions (RFC 8446 4.2.3: for certificates in TLS 1.3), as OpenSSL's do; a TLS 1.3-only
    client left them out, and Java's server refused it (RSA-CA-signed chains)."""
    cctx = pki.client_context()
    cctx.minimum_version, cctx.maximum_version = versions
    record = aiotls.TLSConnection(cctx, server_hostname="localhost").data_to_send()
    exts = dict(client_hello_parts(record)[1])
    offered = u16_list(exts[EXT_SIGNATURE_ALGORITHMS])
    assert set(offered) >= RSA_PKCS1
    assert len(offered) == len(set(offered))
    # (no signature_algorithms_cert in the ClientHello: see _advertise_certificate_signatures)
    assert EXT_SIGNATURE_ALGORITHMS_CERT not in exts


def _certificate_request_bytes(output: str) -> bytes:
    """The CertificateRequest that ``s_client -msg`` printed (hex dump after its header)."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines)
                 if line.startswith("<<<") and "CertificateRequest" in line)
    hexdump = []
    for line in lines[start + 1:]:
        if not re.fullmatch(r"\s+([0-9a-f]{2} ?)+", line):
            break
        hexdump.append(line)
    return bytes.fromhex("".join(hexdump))


def test_tls13_certificate_request_lists_certificate_signatures(pki: PKI) -> None:
    """The TLS 1.3 CertificateRequest (bytes as ``s_client -msg`` received them) lists
    rsa_pkcs1_* in signature_algorithms and, in signature_algorithms_cert, exactly the
    certificate signatures aiotls verifies.  Before, a Java client with an RSA-CA-signed
    certificate found nothing it could send."""
    openssl = require_openssl()
    sctx = pki.server_context()
    sctx.verify_mode = ssl.CERT_OPTIONAL
    sctx.load_verify_locations(cafile=pki.ca_file)
    with listen() as listener:
        port = listener.getsockname()[1]
        argv = [openssl, "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_3",
                "-servername", "localhost", "-msg"]
        with OpenSSLProcess(argv, stdin=b"ping\n") as client, \
                SocketTLS.accept(sctx, listener) as tls:
            tls.handshake()
            assert tls.recv_line() == b"ping\n"
            tls.close()
            _, output = client.wait()
    request = _certificate_request_bytes(output)
    assert request[0] == 13 and int.from_bytes(request[1:4], "big") == len(request) - 4
    assert request[4] == 0  # empty certificate_request_context
    exts = dict(extensions(request, 5))
    handshake_schemes = u16_list(exts[EXT_SIGNATURE_ALGORITHMS])
    assert set(handshake_schemes) >= RSA_PKCS1
    assert u16_list(exts[EXT_SIGNATURE_ALGORITHMS_CERT]) == CERT_SCHEMES


class PKCS1SigningServer(RawTLS):  # type: ignore[misc]
    """tlslite's server, made to sign its TLS 1.3 CertificateVerify with rsa_pkcs1_sha256
    (RFC 8446 4.4.3 forbids it)."""

    @staticmethod
    def _pickServerKeyExchangeSig(settings: Any, clientHello: Any, certList: Any = None,
                                  private_key: Any = None, version: Any = (3, 3),
                                  check_alt: bool = True) -> Any:
        if version > (3, 3):
            return "rsa_pkcs1_sha256", certList, private_key
        return RawTLS._pickServerKeyExchangeSig(
            settings, clientHello, certList, private_key, version, check_alt)


def test_tls13_client_refuses_an_rsa_pkcs1_certificate_verify(pki: PKI) -> None:
    """rsa_pkcs1_* are offered for certificates only: a server that signs its TLS 1.3
    handshake with one gets illegal_parameter (tlslite verified any scheme)."""
    cctx, _ = context_pair(pki)  # TLS 1.2 and 1.3: rsa_pkcs1 was offered before too
    peer, client = against_tlslite_server(cctx, pki.servers["rsa2048"][0], PKCS1SigningServer)
    assert peer.tls.serverSigAlg == (4, 1)  # the server did sign with rsa_pkcs1_sha256
    assert not client.handshake_complete
    assert isinstance(client.error, aiotls.PeerMisbehaved), client.error
    assert client.error.alert == AlertDescription.illegal_parameter
    assert "rsa_pkcs1_sha256" in client.error.what


class PKCS1RequestingServer(RawTLS):  # type: ignore[misc]
    """tlslite's server asking, in TLS 1.3, for client signatures in rsa_pkcs1_sha256 only."""

    @staticmethod
    def _sigHashesToList(settings: Any, privateKey: Any = None, certList: Any = None,
                         version: Any = (3, 3)) -> list[Any]:
        if privateKey is None and certList is None and version > (3, 3):
            return [(4, 1)]  # (the CertificateRequest's list)
        return RawTLS._sigHashesToList(  # type: ignore[no-any-return]
            settings, privateKey, certList, version)


def test_tls13_client_never_signs_with_rsa_pkcs1(pki: PKI, tmp_path: Any) -> None:
    """A TLS 1.3 server accepting only rsa_pkcs1_sha256 from an RSA client: the client
    cannot sign (RFC 8446 4.4.3) and says so with handshake_failure (tlslite failed with a
    TypeError, reported as a malformed message from the server)."""
    cctx, _ = context_pair(pki, TLS13)
    issued = pki.ca.issue("client.example.test", key_type="rsa2048", client=True, server=False)
    cctx.load_cert_chain(*issued.write(str(tmp_path), name="rsa-client"))
    peer, client = against_tlslite_server(cctx, pki.servers["ecdsa-p256"][0],
                                          PKCS1RequestingServer, reqCert=True)
    assert not client.handshake_complete
    assert isinstance(client.error, aiotls.PeerIncompatible), client.error
    assert client.error.alert == AlertDescription.handshake_failure
    assert "rsa_pkcs1_sha256" in client.error.what and "rsa_pss_rsae" in client.error.what
    assert isinstance(peer.error, TLSRemoteAlert)


def test_tls13_client_signs_with_pss_when_openssl_asks_for_rsa_pkcs1_first(
        pki: PKI, tmp_path: Any) -> None:
    """``s_server -client_sigalgs RSA+SHA256:RSA-PSS+SHA256`` lists rsa_pkcs1_sha256 first
    in its TLS 1.3 CertificateRequest: aiotls's RSA client still signs with RSA-PSS."""
    openssl = require_openssl()
    certfile, keyfile = pki.server()
    cctx, _ = context_pair(pki, TLS13)
    issued = pki.ca.issue("client.example.test", key_type="rsa2048", client=True, server=False)
    cctx.load_cert_chain(*issued.write(str(tmp_path), name="rsa-client"))
    port = free_port()
    argv = [openssl, "s_server", "-accept", f"127.0.0.1:{port}", "-cert", certfile,
            "-key", keyfile, "-tls1_3", "-Verify", "1", "-CAfile", pki.ca_file,
            "-client_sigalgs", "RSA+SHA256:RSA-PSS+SHA256", "-naccept", "1", "-rev"]
    with OpenSSLProcess(argv) as server:
        server.wait_for_output("ACCEPT", DEFAULT_TIMEOUT)
        with SocketTLS.connect(cctx, ("127.0.0.1", port), server_hostname="localhost") as tls:
            _echo(tls)
            tls.close()
        rc, output = server.wait()
    assert rc == 0, output
    assert "Signature type: RSA-PSS" in output


@pytest.mark.parametrize("version", VERSION_PARAMS)
def test_server_message_for_a_client_without_a_matching_certificate(
        pki: PKI, version: ssl.TLSVersion) -> None:
    """A client that sends no certificate may have none, or none matching what the server
    requested (signature algorithms, CAs): the server's message says both."""
    cctx, sctx = context_pair(pki, version)
    sctx.verify_mode = ssl.CERT_REQUIRED
    sctx.load_verify_locations(cafile=pki.ca_file)
    _, server = connect(cctx, sctx)
    assert isinstance(server.error, aiotls.CertificateError)
    assert server.error.code == "certificate-missing"
    assert "signature algorithms" in server.error.cause
    assert "certificate authorities" in server.error.cause


# --- point 14: what a client without a certificate is told ---------------------------------


def _assert_told_to_load_a_certificate(error: aiotls.TLSError | None, alert: int) -> None:
    assert isinstance(error, aiotls.AlertReceived), error
    assert error.alert == alert
    assert error.code == "client-certificate-required"
    assert "sent none" in error.what
    assert "load_cert_chain" in error.hint
    assert "rejected our certificate" not in str(error)
    assert "both ends speak TLS" not in str(error)


@pytest.mark.parametrize(("version", "alert"), [
    pytest.param(TLS12, AlertDescription.handshake_failure, id="tls1.2"),
    pytest.param(TLS13, AlertDescription.certificate_required, id="tls1.3"),
])
def test_client_without_certificate_is_told_why(pki: PKI, version: ssl.TLSVersion,
                                                alert: int) -> None:
    cctx, sctx = context_pair(pki, version)
    sctx.verify_mode = ssl.CERT_REQUIRED
    sctx.load_verify_locations(cafile=pki.ca_file)
    client, _ = connect(cctx, sctx)
    _assert_told_to_load_a_certificate(client.error, alert)


def _echo(tls: SocketTLS) -> None:
    tls.handshake()
    tls.send(b"abc\n")
    assert tls.recv_line() == b"cba\n"


@pytest.mark.parametrize(("version", "alert"), [
    pytest.param(TLS12, AlertDescription.handshake_failure, id="tls1.2"),
    pytest.param(TLS13, AlertDescription.certificate_required, id="tls1.3"),
])
def test_client_without_certificate_against_openssl(pki: PKI, version: ssl.TLSVersion,
                                                    alert: int) -> None:
    openssl = require_openssl()
    certfile, keyfile = pki.server()
    port = free_port()
    flag = "-tls1_2" if version == TLS12 else "-tls1_3"
    argv = [openssl, "s_server", "-accept", f"127.0.0.1:{port}", "-cert", certfile,
            "-key", keyfile, flag, "-Verify", "1", "-CAfile", pki.ca_file, "-naccept", "1",
            "-rev"]
    cctx, _ = context_pair(pki, version)
    with OpenSSLProcess(argv) as server:
        server.wait_for_output("ACCEPT", DEFAULT_TIMEOUT)
        with SocketTLS.connect(cctx, ("127.0.0.1", port), server_hostname="localhost") as tls, \
                pytest.raises(TLSFailed):
            _echo(tls)  # (TLS 1.3: the client is done before the server decides)
        server.wait()
    _assert_told_to_load_a_certificate(tls.conn.error, alert)


def test_client_with_a_certificate_keeps_the_generic_message(pki: PKI) -> None:
    """Only a client that sent no certificate is told to load one."""
    cctx, sctx = context_pair(pki, TLS12)
    cctx.load_cert_chain(*pki.client[1:])
    sctx.verify_mode = ssl.CERT_REQUIRED  # but trusts no CA of the client's
    sctx.load_verify_locations(cadata=CA().cert_pem.decode())
    client, server = connect(cctx, sctx)
    assert isinstance(server.error, aiotls.CertificateError)
    assert isinstance(client.error, aiotls.AlertReceived)
    assert client.error.code != "client-certificate-required"


# --- point 13: unused TLS 1.3 tickets survive a resumption ---------------------------------


def _chain(cctx: aiotls.TLSContext, sctx: aiotls.TLSContext, tickets: list[bool],
           ) -> list[tuple[aiotls.TLSConnection, aiotls.TLSConnection, list[bytes]]]:
    """One connection per item of ``tickets``, each taking the session of the one before;
    where the item is False the client never sees the server's NewSessionTickets (a server
    that sends none).  Each result: (client, server, PSK identities the client offered)."""
    results = []
    session = None
    for deliver in tickets:
        client = aiotls.TLSConnection(cctx, server_hostname="localhost", session=session)
        server = aiotls.TLSConnection(sctx, server_side=True)
        hello = client.data_to_send()
        server.receive_data(hello)  # ClientHello
        client.receive_data(server.data_to_send())  # ServerHello ... Finished
        server.receive_data(client.data_to_send())  # Finished
        after = server.data_to_send()  # the tickets
        assert client.handshake_complete and server.handshake_complete, (client.error,
                                                                          server.error)
        if deliver:
            client.receive_data(after)
        results.append((client, server, psk_identities(hello)))
        session = client.session
    return results


def test_unused_tickets_survive_a_resumption_without_new_tickets(pki: PKI) -> None:
    """A server that sends no ticket on resumption (node, nginx, OpenSSL with a ticket-key
    callback): the first connection's second ticket resumes the third connection.  Before,
    the second connection's session was empty and every other connection was full."""
    cctx, sctx = pki.client_context(), pki.server_context()
    (c1, _, offered1), (c2, s2, offered2), (c3, s3, offered3) = _chain(
        cctx, sctx, [True, False, False])
    assert not c1.session_reused and offered1 == []
    assert c2.session_reused and s2.session_reused
    assert c2.session is not None and c2.session.has_ticket
    assert c3.session_reused and s3.session_reused
    assert len(offered2) == len(offered3) == 1
    assert offered2 != offered3  # each ticket once (RFC 8446 C.4)
    session = c3.session
    assert session is not None and not session.has_ticket  # both tickets used
    # A session is a value: using it changes nothing (as OpenSSL's sessions).
    assert c1.session is not None and c1.session.has_ticket
    again = aiotls.TLSConnection(cctx, server_hostname="localhost", session=c1.session)
    assert psk_identities(again.data_to_send()) == offered2


def test_a_chain_of_resumptions_uses_every_ticket_once(pki: PKI) -> None:
    """aiotls's server (2 tickets, then 1 per resumption), some tickets lost on the way:
    each connection resumes and offers a ticket never offered before, oldest first."""
    cctx, sctx = pki.client_context(), pki.server_context()
    chain = _chain(cctx, sctx, [True, True, False, True, True, False])
    offered = [identities[0] for _, _, identities in chain[1:]]
    assert all(client.session_reused for client, _, _ in chain[1:])
    assert len(set(offered)) == len(offered) == 5


def test_carried_tickets_are_bounded(pki: PKI) -> None:
    """A server handing out 20 tickets: a session offers one and carries at most 8 more (the
    newest), so a chain without new tickets resumes 9 times, then does a full handshake."""
    cctx, sctx = pki.client_context(), pki.server_context()
    sctx.num_tickets = 20
    chain = _chain(cctx, sctx, [True] + [False] * 10)
    assert [client.session_reused for client, _, _ in chain] == [False] + [True] * 9 + [False]
    offered = [identities for _, _, identities in chain[1:]]
    assert all(len(identities) == 1 for identities in offered[:9]) and offered[9] == []
    assert len({identities[0] for identities in offered[:9]}) == 9


def test_unused_tickets_are_dropped_when_the_server_refuses_one(pki: PKI) -> None:
    """A server that did not take the ticket (other keys) will not take its siblings: the
    next session holds only what that server sent (here nothing)."""
    cctx = pki.client_context()
    first, _ = connect(cctx, pki.server_context())
    stranger = aiotls.TLSConnection(cctx, server_hostname="localhost", session=first.session)
    server = aiotls.TLSConnection(pki.server_context(), server_side=True)  # other keys
    hello = stranger.data_to_send()
    server.receive_data(hello)
    stranger.receive_data(server.data_to_send())
    server.receive_data(stranger.data_to_send())
    assert psk_identities(hello) and stranger.handshake_complete
    assert not stranger.session_reused
    assert stranger.session is not None and not stranger.session.has_ticket


class StdlibServer:
    """An OpenSSL server (the stdlib ``ssl`` module) over memory BIOs, driven against an
    aiotls client."""

    def __init__(self, ctx: ssl.SSLContext) -> None:
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.incoming, self.outgoing, server_side=True)
        self.done = False

    def step(self) -> None:
        try:
            if not self.done:
                self.obj.do_handshake()
                self.done = True
                self.obj.write(b"hello")  # (the tickets go out with it)
            self.obj.read(1024)
        except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
            pass


def test_openssl_server_without_tickets_on_resumption(pki: PKI) -> None:
    """OpenSSL issuing 2 tickets on the first connection and none later (num_tickets set to
    0 on the same context: same ticket keys): the 2nd and 3rd connections both resume."""
    sctx = pki.stdlib_server_context()
    sctx.minimum_version = TLS13
    sctx.num_tickets = 2
    cctx = pki.client_context()
    session = None
    reused = []
    for _ in range(3):
        client = aiotls.TLSConnection(cctx, server_hostname="localhost", session=session)
        server = StdlibServer(sctx)
        for _ in range(20):
            out = client.data_to_send()
            if out:
                server.incoming.write(out)
            server.step()
            back = server.outgoing.read()
            if back:
                client.receive_data(back)
            if not out and not back:
                break
        data = b"".join(e.data for e in client.events() if isinstance(e, DataReceived))
        assert client.handshake_complete and data == b"hello", client.error
        reused.append((client.session_reused, server.obj.session_reused))
        session = client.session
        sctx.num_tickets = 0
    assert reused == [(False, False), (True, True), (True, True)]


# --- openssl ------------------------------------------------------------------------------



@pytest.mark.timeout(60)
async def test_session_chain_over_asyncio_with_an_openssl_server(pki: PKI) -> None:
    """README's recipe over aiotls.asyncio (take the next session from the last connection)
    against an asyncio server on OpenSSL that stops sending tickets after the first
    connection: every connection after the first resumes (the third was a full handshake)."""
    sctx = pki.stdlib_server_context()
    sctx.minimum_version = TLS13
    sctx.num_tickets = 2
    server = await asyncio.start_server(echo_line, "127.0.0.1", 0, ssl=sctx)
    port = server.sockets[0].getsockname()[1]

    def no_more_tickets() -> None:
        sctx.num_tickets = 0

    try:
        reused = await session_chain(port, pki.client_context(), after_each=no_more_tickets)
    finally:
        server.close()
        await server.wait_closed()
    assert reused == [False, True, True]
