"""Certificate verification inside the handshake.

aiotls is the verifying side; the peer is the stdlib ``ssl`` module driven
through memory BIOs, so the test sees both aiotls's error and the alert the
peer received (as the peer's ``ssl.SSLError``).
"""

from __future__ import annotations

import datetime
import ssl

import pytest

import aiotls
from tests.certs import CA, Issued, self_signed
from tests.helpers import PKI, VERSIONS, handshake
from tests.stdlib_peer import StdlibPeer, run

NOW = datetime.datetime.now(datetime.UTC)
DAY = datetime.timedelta(days=1)


def stdlib_server(leaf: Issued, tmp_path: object, version: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*leaf.write(str(tmp_path), name="srv"))
    ctx.maximum_version = VERSIONS[version]
    ctx.minimum_version = VERSIONS[version]
    return ctx


def connect_to_stdlib(pki: PKI, leaf: Issued, tmp_path: object, version: str,
                      hostname: str = "localhost",
                      client_ctx: aiotls.TLSContext | None = None,
                      ) -> tuple[aiotls.TLSConnection, StdlibPeer]:
    peer = StdlibPeer(stdlib_server(leaf, tmp_path, version), server_side=True)
    conn = aiotls.TLSConnection(client_ctx or pki.client_context(), server_hostname=hostname)
    run(conn, peer)
    return conn, peer


def terminal_error(conn: aiotls.TLSConnection) -> aiotls.TLSError:
    events = conn.events()
    assert events, "no events"
    last = events[-1]
    assert isinstance(last, aiotls.ConnectionTerminated), events
    assert last.error is not None
    assert not any(isinstance(e, aiotls.HandshakeCompleted) for e in events)
    return last.error


CASES = {
    # name: (how to issue the leaf, hostname, code, verify_code, alert, peer's reason, words)
    "expired": (lambda ca: ca.issue("localhost", not_before=NOW - 30 * DAY, not_after=NOW - DAY),
                "localhost", "certificate-expired", 10, "certificate_expired",
                "CERTIFICATE_EXPIRED", "expired"),
    "not-yet-valid": (lambda ca: ca.issue("localhost", not_before=NOW + DAY,
                                          not_after=NOW + 30 * DAY),
                      "localhost", "certificate-not-yet-valid", 9, "certificate_expired",
                      "CERTIFICATE_EXPIRED", "not valid until"),
    "wrong-host": (lambda ca: ca.issue("example.org"), "localhost", "hostname-mismatch", 62,
                   "bad_certificate", "BAD_CERTIFICATE",
                   "certificate for 'example.org' does not match the requested host 'localhost'"),
    "wrong-ip": (lambda ca: ca.issue("127.0.0.2"), "127.0.0.1", "ip-address-mismatch", 64,
                 "bad_certificate", "BAD_CERTIFICATE", "requested IP address '127.0.0.1'"),
    "unknown-ca": (lambda ca: CA().issue("localhost"), "localhost", "certificate-unknown-ca", 20,
                   "unknown_ca", "UNKNOWN_CA", "does not chain to a trusted CA"),
    "self-signed": (lambda ca: self_signed("localhost"), "localhost", "certificate-self-signed",
                    18, "unknown_ca", "UNKNOWN_CA", "self-signed"),
    "wrong-purpose": (lambda ca: ca.issue("localhost", server=False, client=True), "localhost",
                      "certificate-wrong-purpose", 26, "unsupported_certificate",
                      "UNSUPPORTED_CERTIFICATE", "may not be used as a TLS server"),
}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("case", CASES)
def test_server_certificate_rejected(pki: PKI, tmp_path: object, version: str, case: str) -> None:
    make, hostname, code, verify_code, alert, peer_reason, words = CASES[case]
    leaf = make(pki.ca)
    conn, peer = connect_to_stdlib(pki, leaf, tmp_path, version, hostname=hostname)

    err = terminal_error(conn)
    assert isinstance(err, aiotls.CertificateError)
    assert isinstance(err, ssl.SSLCertVerificationError)
    assert isinstance(err, ssl.SSLError)
    assert err.code == code
    assert err.verify_code == verify_code
    assert err.alert == aiotls.AlertDescription[alert]
    assert words in str(err)
    assert err.cause and err.hint
    assert conn.state is aiotls.ConnectionState.FAILED
    # the stdlib server received exactly that alert, before it completed the handshake
    assert peer.error is not None, "peer saw no alert"
    assert peer_reason in (peer.error.reason or ""), peer.error
    assert not peer.handshake_done


def test_full_chain_with_intermediate_verifies(pki: PKI, tmp_path: object) -> None:
    inter = CA(parent=pki.ca)
    leaf = inter.issue("localhost", key_type="rsa2048")
    conn, peer = connect_to_stdlib(pki, leaf, tmp_path, "TLSv1.3")
    assert conn.version() == "TLSv1.3", conn.error
    assert len(conn.get_unverified_chain()) == 2


def test_missing_intermediate_is_unknown_ca(pki: PKI, tmp_path: object) -> None:
    inter = CA(parent=pki.ca)
    leaf = inter.issue("localhost")
    bare = Issued(leaf.cert_pem, leaf.key_pem, leaf.cert_pem, leaf.cert, leaf.key)
    conn, peer = connect_to_stdlib(pki, bare, tmp_path, "TLSv1.3")
    err = terminal_error(conn)
    assert isinstance(err, aiotls.CertificateError)
    assert err.code == "certificate-unknown-ca"
    assert "intermediate" in err.cause


def test_ip_address_san_verifies(pki: PKI, tmp_path: object) -> None:
    conn, _ = connect_to_stdlib(pki, pki.ca.issue("127.0.0.1", "::1"), tmp_path, "TLSv1.3",
                                hostname="::1")
    assert conn.version() == "TLSv1.3", conn.error


def test_weak_rsa_server_key_refused(pki: PKI, tmp_path: object) -> None:
    leaf = pki.ca.issue("localhost", key_type="rsa1024")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    ctx.load_cert_chain(*leaf.write(str(tmp_path), name="weak"))
    peer = StdlibPeer(ctx, server_side=True)
    conn = aiotls.TLSConnection(pki.client_context(), server_hostname="localhost")
    run(conn, peer)
    err = terminal_error(conn)
    assert isinstance(err, aiotls.TLSError)
    assert "too small" in str(err)
    with pytest.raises(aiotls.TLSConfigurationError, match="only 1024 bits"):
        aiotls.TLSContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(
            *leaf.write(str(tmp_path), name="weak2"))


def test_cert_none_must_be_explicit(pki: PKI) -> None:
    ctx = aiotls.TLSContext()
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    with pytest.raises(aiotls.TLSConfigurationError, match="check_hostname"):
        ctx.verify_mode = ssl.CERT_NONE
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    # ...and then anything goes, by the user's explicit choice
    client, _ = handshake(ctx, pki.server_context(), server_hostname="not-the-name")
    assert client.version() == "TLSv1.3"
    ctx.check_hostname = True  # turning name checks back on re-enables verification
    assert ctx.verify_mode == ssl.CERT_REQUIRED


def test_check_hostname_off_still_verifies_chain(pki: PKI) -> None:
    ctx = pki.client_context()
    ctx.check_hostname = False
    client, _ = handshake(ctx, pki.server_context(), server_hostname="wrong.name")
    assert client.version() == "TLSv1.3"
    other = aiotls.TLSContext()
    other.check_hostname = False
    other.load_verify_locations(cadata=CA().cert_pem.decode())
    client, _ = handshake(other, pki.server_context(), server_hostname=None)
    assert isinstance(client.error, aiotls.CertificateError)


def test_empty_trust_store_explains_itself(pki: PKI) -> None:
    client, _ = handshake(aiotls.TLSContext(), pki.server_context())
    assert isinstance(client.error, aiotls.CertificateError)
    assert "no trusted CA certificates are loaded" in str(client.error)
    assert "load_verify_locations" in client.error.hint


# --- client certificates, verified by an aiotls server ----------------------------------


def aiotls_server_requiring_client_cert(pki: PKI, mode: int = ssl.CERT_REQUIRED,
                                        version: str = "TLSv1.3") -> aiotls.TLSContext:
    ctx = pki.server_context()
    ctx.verify_mode = mode
    ctx.load_verify_locations(cafile=pki.ca_file)
    ctx.maximum_version = VERSIONS[version]
    return ctx


def stdlib_client(pki: PKI, cert: Issued | None, tmp_path: object) -> ssl.SSLContext:
    ctx = pki.stdlib_client_context()
    if cert is not None:
        ctx.load_cert_chain(*cert.write(str(tmp_path), name="cli"))
    return ctx


@pytest.mark.parametrize("version", VERSIONS)
def test_client_certificate_accepted(pki: PKI, tmp_path: object, version: str) -> None:
    server = aiotls.TLSConnection(aiotls_server_requiring_client_cert(pki, version=version),
                                  server_side=True)
    peer = StdlibPeer(stdlib_client(pki, pki.client[0], tmp_path), server_side=False,
                      server_hostname="localhost")
    run(server, peer)
    assert server.version() == version, server.error
    assert server.getpeercert()["subject"] == ((("commonName", "client.example.test"),),)
    assert peer.error is None


@pytest.mark.parametrize(("version", "peer_reason"), [
    ("TLSv1.3", "CERTIFICATE_REQUIRED"), ("TLSv1.2", "HANDSHAKE_FAILURE")])
def test_client_certificate_missing(pki: PKI, tmp_path: object, version: str,
                                    peer_reason: str) -> None:
    server = aiotls.TLSConnection(aiotls_server_requiring_client_cert(pki, version=version),
                                  server_side=True)
    peer = StdlibPeer(stdlib_client(pki, None, tmp_path), server_side=False,
                      server_hostname="localhost")
    run(server, peer)
    err = terminal_error(server)
    assert isinstance(err, aiotls.CertificateError)
    assert err.code == "certificate-missing"
    assert "sent no certificate" in str(err)
    assert peer.error is not None and peer_reason in (peer.error.reason or ""), peer.error


@pytest.mark.parametrize("version", VERSIONS)
def test_client_certificate_from_unknown_ca(pki: PKI, tmp_path: object, version: str) -> None:
    server = aiotls.TLSConnection(aiotls_server_requiring_client_cert(pki, version=version),
                                  server_side=True)
    rogue = CA().issue("client.example.test", client=True, server=False)
    peer = StdlibPeer(stdlib_client(pki, rogue, tmp_path), server_side=False,
                      server_hostname="localhost")
    run(server, peer)
    err = terminal_error(server)
    assert isinstance(err, aiotls.CertificateError)
    assert err.code == "certificate-unknown-ca"
    assert peer.error is not None and "UNKNOWN_CA" in (peer.error.reason or "")


def test_client_certificate_optional(pki: PKI, tmp_path: object) -> None:
    server = aiotls.TLSConnection(aiotls_server_requiring_client_cert(pki, ssl.CERT_OPTIONAL),
                                  server_side=True)
    peer = StdlibPeer(stdlib_client(pki, None, tmp_path), server_side=False,
                      server_hostname="localhost")
    run(server, peer)
    assert server.version() == "TLSv1.3", server.error
    assert server.getpeercert() is None


def test_aiotls_client_certificate_to_aiotls_server(pki: PKI) -> None:
    cctx = pki.client_context()
    cctx.load_cert_chain(pki.client[1], pki.client[2])
    client, server = handshake(cctx, aiotls_server_requiring_client_cert(pki))
    assert server.version() == "TLSv1.3", server.error
    assert ("email", "client.example.test") not in server.getpeercert().get("subjectAltName", ())
    assert server.getpeercert()["subject"] == ((("commonName", "client.example.test"),),)


def test_ed25519_ca_is_explained(pki: PKI, tmp_path: object) -> None:
    """cryptography's Web PKI profile refuses Ed25519 CA keys; say so instead of 'unknown CA'."""
    ed_ca = CA(key_type="ed25519")
    ctx = aiotls.TLSContext()
    ctx.load_verify_locations(cadata=ed_ca.cert_pem.decode())
    leaf = ed_ca.issue("localhost")
    conn, peer = connect_to_stdlib(pki, leaf, tmp_path, "TLSv1.3", client_ctx=ctx)
    err = terminal_error(conn)
    assert isinstance(err, aiotls.CertificateError)
    assert err.code == "certificate-unsupported-algorithm"
    assert "Ed25519" in str(err)
    assert "RSA or ECDSA CA" in err.hint


def test_ed25519_leaf_under_ecdsa_ca_verifies(pki: PKI, tmp_path: object) -> None:
    conn, _ = connect_to_stdlib(pki, pki.ca.issue("localhost", key_type="ed25519"), tmp_path,
                                "TLSv1.3")
    assert conn.version() == "TLSv1.3", conn.error
