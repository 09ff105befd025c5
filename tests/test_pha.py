"""TLS 1.3 post-handshake client authentication, through aiotls's record layer."""

from __future__ import annotations

import ssl

import pytest

import aiotls
from aiotls.events import ClientCertificateReceived, DataReceived
from tests.certs import CA
from tests.helpers import PKI, handshake, pump, tap_handshake
from tests.stdlib_peer import StdlibPeer, run


def pha_server(pki: PKI, mode: int = ssl.CERT_REQUIRED) -> aiotls.TLSContext:
    ctx = pki.server_context()
    ctx.verify_mode = mode
    ctx.load_verify_locations(cafile=pki.ca_file)
    ctx.post_handshake_auth = True
    return ctx


def test_post_handshake_auth_between_aiotls_peers(pki: PKI) -> None:
    cctx = pki.client_context()
    cctx.load_cert_chain(pki.client[1], pki.client[2])
    client, server = handshake(cctx, pha_server(pki))
    server.events(), client.events()
    assert server.getpeercert() is None  # nothing asked during the handshake
    server.verify_client_post_handshake()
    client.send_data(b"before")
    pump(client, server)
    events = server.events()
    received = [e for e in events if isinstance(e, ClientCertificateReceived)]
    assert len(received) == 1
    assert server.getpeercert()["subject"] == ((("commonName", "client.example.test"),),)
    assert b"".join(e.data for e in events if isinstance(e, DataReceived)) == b"before"
    client.send_data(b"after")  # the connection goes on
    pump(client, server)
    assert server.events() == [DataReceived(b"after")]


def test_post_handshake_auth_rejects_untrusted_certificate(pki: PKI, tmp_path: object) -> None:
    rogue = CA().issue("client.example.test", client=True, server=False)
    cctx = pki.client_context()
    cctx.load_cert_chain(*rogue.write(str(tmp_path), name="rogue"))
    client, server = handshake(cctx, pha_server(pki))
    server.events(), client.events()
    server.verify_client_post_handshake()
    pump(client, server)
    assert isinstance(server.error, aiotls.CertificateError)
    assert server.error.code == "certificate-unknown-ca"
    assert isinstance(client.error, aiotls.AlertReceived)
    assert client.error.alert == aiotls.AlertDescription.unknown_ca


def test_post_handshake_auth_misuse(pki: PKI) -> None:
    client, server = handshake(pki.client_context(), pha_server(pki))
    with pytest.raises(aiotls.TLSUsageError, match="did not offer"):
        server.verify_client_post_handshake()  # the client has no certificate
    assert server.state is aiotls.ConnectionState.OPEN
    with pytest.raises(aiotls.TLSUsageError, match=r"TLS 1\.3 servers"):
        client.verify_client_post_handshake()
    plain = pki.server_context()
    cctx = pki.client_context()
    cctx.load_cert_chain(pki.client[1], pki.client[2])
    _, server = handshake(cctx, plain)
    with pytest.raises(aiotls.TLSUsageError, match="CERT_NONE"):
        server.verify_client_post_handshake()


def test_post_handshake_auth_with_openssl_client(pki: PKI) -> None:
    """An OpenSSL client (stdlib ssl, post_handshake_auth enabled) answers aiotls's request."""
    sctx = pha_server(pki)
    cctx = pki.stdlib_client_context()
    cctx.load_cert_chain(pki.client[1], pki.client[2])
    cctx.post_handshake_auth = True
    peer = StdlibPeer(cctx, server_side=False, server_hostname="localhost")
    server = aiotls.TLSConnection(sctx, server_side=True)
    run(server, peer)
    assert server.version() == "TLSv1.3", server.error
    server.verify_client_post_handshake()
    peer.incoming.write(server.data_to_send())
    peer.step()  # OpenSSL answers the CertificateRequest while reading
    peer.obj.write(b"hi")
    server.receive_data(peer.outgoing.read())
    events = server.events()
    assert any(isinstance(e, ClientCertificateReceived) for e in events), events
    assert server.getpeercert()["subject"] == ((("commonName", "client.example.test"),),)


def test_aiotls_client_answers_openssl_server(pki: PKI) -> None:
    """aiotls answers a post-handshake CertificateRequest from OpenSSL."""
    sctx = pki.stdlib_server_context()
    sctx.verify_mode = ssl.CERT_REQUIRED
    sctx.load_verify_locations(cafile=pki.ca_file)
    sctx.post_handshake_auth = True
    peer = StdlibPeer(sctx, server_side=True)
    cctx = pki.client_context()
    cctx.load_cert_chain(pki.client[1], pki.client[2])
    client = aiotls.TLSConnection(cctx, server_hostname="localhost")
    run(client, peer)
    assert client.version() == "TLSv1.3", client.error
    peer.obj.verify_client_post_handshake()
    peer.obj.write(b"x")  # the request goes out with the next write
    client.receive_data(peer.outgoing.read())
    client.send_data(b"y")
    peer.incoming.write(client.data_to_send())
    peer.step()
    assert peer.error is None
    assert peer.obj.getpeercert()["subject"] == ((("commonName", "client.example.test"),),)


def _duplicate_first_extension(message: bytes) -> bytes:
    """A TLS 1.3 CertificateRequest with its first extension sent twice."""
    if message[0] != 13:
        return message
    body = message[4:]
    context_end = 1 + body[0]
    exts = body[context_end + 2:]
    first = exts[:4 + int.from_bytes(exts[2:4], "big")]
    exts = exts + first
    body = body[:context_end] + len(exts).to_bytes(2, "big") + exts
    return bytes([13]) + len(body).to_bytes(3, "big") + body


def test_post_handshake_request_with_a_duplicate_extension_is_the_servers_fault(
        pki: PKI) -> None:
    """Found by the flight fuzzer: a post-handshake CertificateRequest holding two
    extensions of one type is refused with illegal_parameter, blaming the server (it was
    reported as an internal error of aiotls)."""
    cctx = pki.client_context()
    cctx.load_cert_chain(pki.client[1], pki.client[2])
    client, server = handshake(cctx, pha_server(pki))
    server.events(), client.events()
    tap_handshake(server, _duplicate_first_extension)
    server.verify_client_post_handshake()
    client.receive_data(server.data_to_send())
    err = client.error
    assert isinstance(err, aiotls.PeerMisbehaved), err
    assert err.alert == aiotls.AlertDescription.illegal_parameter
