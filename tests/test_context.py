"""TLSContext: loading identities and trust, defaults, and the knobs."""

from __future__ import annotations

import os
import ssl
import types

import pytest

import aiotls
from aiotls.context import DEFAULT_SUITES
from tests.certs import CA
from tests.helpers import PKI, handshake
from tests.stdlib_peer import StdlibPeer, run
from tests.tlslite_peer import TlslitePeer, tlslite_settings


def test_secure_defaults() -> None:
    client = aiotls.TLSContext()
    assert client.verify_mode == ssl.CERT_REQUIRED
    assert client.check_hostname is True
    assert client.minimum_version == ssl.TLSVersion.TLSv1_2
    assert client.maximum_version == ssl.TLSVersion.TLSv1_3
    names = [c["iana_name"] for c in client.get_ciphers()]
    assert names == [s.name for s in DEFAULT_SUITES]
    assert all(c["aead"] for c in client.get_ciphers())
    assert all("ECDHE" in n or n.startswith("TLS_AES") or n.startswith("TLS_CHACHA")
               for n in names)
    assert client.get_groups() == ["x25519", "secp256r1", "secp384r1"]
    assert client.suppress_ragged_eofs is False
    server = aiotls.TLSContext(ssl.PROTOCOL_TLS_SERVER)
    assert server.verify_mode == ssl.CERT_NONE
    assert server.check_hostname is False
    with pytest.raises(aiotls.TLSConfigurationError):
        aiotls.TLSContext(ssl.PROTOCOL_TLSv1_2)  # type: ignore[attr-defined]


def test_client_hello_has_no_heartbeat_and_offers_ems(pki: PKI) -> None:
    hello = aiotls.TLSConnection(pki.client_context(), server_hostname="localhost").data_to_send()
    from tlslite.messages import ClientHello
    from tlslite.utils.codec import Parser

    parsed = ClientHello().parse(Parser(bytearray(hello[6:])))  # record header + msg type
    ext_types = {e.extType for e in parsed.extensions}
    assert 15 not in ext_types  # heartbeat
    assert 23 in ext_types  # extended_master_secret
    assert 0 in ext_types  # server_name
    suites = set(parsed.cipher_suites)
    offered = {s.id for s in DEFAULT_SUITES}
    assert offered <= suites
    # nothing but AEAD/ECDHE suites and the renegotiation SCSV
    assert suites - offered <= {0x00FF}


def test_create_default_context_loads_system_store(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: object) -> None:
    ca = CA()
    cafile = os.path.join(str(tmp_path), "system-ca.pem")
    with open(cafile, "wb") as f:
        f.write(ca.cert_pem)
    fake = types.SimpleNamespace(cafile=cafile, capath=None, openssl_cafile=None,
                                 openssl_capath=None)
    monkeypatch.setattr(ssl, "get_default_verify_paths", lambda: fake)
    ctx = aiotls.create_default_context()
    assert ctx.cert_store_stats() == {"x509": 1, "crl": 0, "x509_ca": 1}
    assert ctx.get_ca_certs()[0]["subject"] == ((("commonName", "aiotls test CA"),),)
    assert ctx.get_ca_certs(binary_form=True)[0].startswith(b"0")


def test_load_default_certs_from_capath(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    d = os.path.join(str(tmp_path), "certs")
    os.mkdir(d)
    for i in range(3):
        with open(os.path.join(d, f"ca{i}.pem"), "wb") as f:
            f.write(CA().cert_pem)
    with open(os.path.join(d, "README"), "w") as f:
        f.write("not a certificate")
    fake = types.SimpleNamespace(cafile=None, capath=d, openssl_cafile=None, openssl_capath=None)
    monkeypatch.setattr(ssl, "get_default_verify_paths", lambda: fake)
    ctx = aiotls.TLSContext()
    ctx.load_default_certs()
    assert ctx.cert_store_stats()["x509"] == 3


def test_real_system_store_is_loaded_when_present() -> None:
    paths = ssl.get_default_verify_paths()
    ctx = aiotls.create_default_context()
    stdlib = ssl.create_default_context()
    if paths.cafile and os.path.isfile(paths.cafile):
        assert ctx.cert_store_stats()["x509"] >= stdlib.cert_store_stats()["x509"] > 0


def test_load_verify_locations_forms(pki: PKI) -> None:
    ctx = aiotls.TLSContext()
    with pytest.raises(TypeError):
        ctx.load_verify_locations()
    ctx.load_verify_locations(cadata=pki.ca.cert_pem.decode())
    ctx.load_verify_locations(cadata=pki.ca.cert.public_bytes(
        __import__("cryptography.hazmat.primitives.serialization",
                   fromlist=["Encoding"]).Encoding.DER))
    ctx.load_verify_locations(cafile=pki.ca_file)
    assert ctx.cert_store_stats()["x509"] == 1  # de-duplicated
    with pytest.raises(aiotls.TLSConfigurationError, match="cannot read the CA file"):
        ctx.load_verify_locations(cafile="/nonexistent/ca.pem")
    with pytest.raises(aiotls.TLSConfigurationError, match="no usable certificate"):
        ctx.load_verify_locations(cadata="garbage")


@pytest.mark.parametrize("key_type", ["rsa2048", "ecdsa-p256", "ecdsa-p384", "ed25519"])
def test_load_cert_chain_key_types(pki: PKI, tmp_path: object, key_type: str) -> None:
    leaf = pki.ca.issue("localhost", key_type=key_type)  # type: ignore[arg-type]
    certfile, keyfile = leaf.write(str(tmp_path), name=key_type)
    ctx = aiotls.TLSContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certfile, keyfile)
    client, server = handshake(pki.client_context(), ctx)
    assert client.version() == "TLSv1.3", client.error


def test_load_cert_chain_combined_file_and_encrypted_key(pki: PKI, tmp_path: object) -> None:
    leaf = pki.ca.issue("localhost")
    combined = os.path.join(str(tmp_path), "combined.pem")
    with open(combined, "wb") as f:
        f.write(leaf.chain_pem + leaf.key_pem)
    ctx = aiotls.TLSContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(combined)

    enc = os.path.join(str(tmp_path), "enc-key.pem")
    with open(enc, "wb") as f:
        f.write(leaf.key_pem_encrypted(b"s3cret"))
    certfile, _ = leaf.write(str(tmp_path), name="enc")
    ctx.load_cert_chain(certfile, enc, password="s3cret")
    ctx.load_cert_chain(certfile, enc, password=lambda: b"s3cret")
    client, _ = handshake(pki.client_context(), ctx)
    assert client.version() == "TLSv1.3"
    with pytest.raises(aiotls.TLSConfigurationError, match="no password"):
        ctx.load_cert_chain(certfile, enc)
    with pytest.raises(aiotls.TLSConfigurationError, match="password is wrong"):
        ctx.load_cert_chain(certfile, enc, password="nope")


def test_load_cert_chain_rejects_mismatched_key(pki: PKI, tmp_path: object) -> None:
    a = pki.ca.issue("localhost")
    b = pki.ca.issue("localhost")
    certfile, _ = a.write(str(tmp_path), name="a")
    _, keyfile = b.write(str(tmp_path), name="b")
    with pytest.raises(aiotls.TLSConfigurationError, match="does not match the certificate"):
        aiotls.TLSContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(certfile, keyfile)
    with pytest.raises(aiotls.TLSConfigurationError, match="cannot read"):
        aiotls.TLSContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain("/nope.pem")


@pytest.mark.parametrize(("name", "what", "why"), [
    ("RC4-SHA", "an RC4 suite", "RFC 7465"),
    ("TLS_RSA_WITH_RC4_128_MD5", "an RC4 suite", "RFC 7465"),
    ("DES-CBC3-SHA", "a 3DES suite", "SWEET32"),
    ("TLS_RSA_WITH_3DES_EDE_CBC_SHA", "a 3DES suite", "SWEET32"),
    ("DES-CBC-SHA", "a single-DES suite", "56-bit"),
    ("AES128-SHA", "a static-RSA suite", "no forward secrecy"),
    ("AES256-GCM-SHA384", "a static-RSA suite", "ROBOT"),
    ("TLS_RSA_WITH_AES_128_CBC_SHA", "a static-RSA suite", "no forward secrecy"),
    ("EXP-RC4-MD5", "an export-grade suite", "FREAK"),
    ("NULL-SHA256", "a suite without encryption", "in the clear"),
    ("ADH-AES128-SHA", "an anonymous suite", "impersonate"),
    ("ECDHE-RSA-AES128-SHA256", "a CBC suite with a SHA-2 MAC", "Lucky Thirteen"),
    ("DHE-RSA-AES256-SHA", "a finite-field DHE suite with CBC or DSA", "AEAD"),
    ("CAMELLIA256-SHA", "a suite with a cipher aiotls does not implement", "needs it"),
])
def test_well_known_refused_suites_are_explained(name: str, what: str, why: str) -> None:
    """Legacy suites copied from old configurations are named, with the reason they are
    refused and what to use instead -- not called unknown."""
    with pytest.raises(aiotls.TLSConfigurationError) as info:
        aiotls.TLSContext().set_ciphers(f"ECDHE-ECDSA-AES128-GCM-SHA256:{name}")
    err = info.value
    assert err.code == "cipher-suite-refused"
    assert err.what == f"cipher suite {name!r} is refused: it is {what}"
    assert why in err.cause and "DEFAULT" in err.hint


@pytest.mark.parametrize("element", ["HIGH", "!aNULL", "ECDHE+AESGCM", "@SECLEVEL=2", "!MD5"])
def test_openssl_cipher_strings_are_explained(element: str) -> None:
    with pytest.raises(aiotls.TLSConfigurationError) as info:
        aiotls.TLSContext().set_ciphers(f"ECDHE-ECDSA-AES128-GCM-SHA256:{element}")
    assert info.value.code == "cipher-string-unsupported"
    assert "OpenSSL cipher-string syntax" in info.value.what


def test_set_ciphers() -> None:
    ctx = aiotls.TLSContext()
    ctx.set_ciphers("ECDHE-RSA-AES128-GCM-SHA256:TLS_AES_256_GCM_SHA384")
    names = {c["name"] for c in ctx.get_ciphers()}
    assert names == {"ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384",
                     "TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384"}
    with pytest.raises(aiotls.TLSConfigurationError, match="unknown cipher suite 'FOO-SHA'"):
        ctx.set_ciphers("FOO-SHA")
    with pytest.raises(aiotls.TLSConfigurationError):
        ctx.set_ciphers("")
    ctx.set_ciphers("DEFAULT")
    assert len(ctx.get_ciphers()) == len(DEFAULT_SUITES)


def test_set_groups_and_alpn_validation() -> None:
    ctx = aiotls.TLSContext()
    ctx.set_groups(["P-256", "x25519"])
    assert ctx.get_groups() == ["secp256r1", "x25519"]
    with pytest.raises(aiotls.TLSConfigurationError, match="ffdhe1024"):
        ctx.set_groups(["ffdhe1024"])  # not an RFC 7919 group
    ctx.set_groups(["x25519", "FFDHE2048"])
    assert ctx.get_groups() == ["x25519", "ffdhe2048"]
    with pytest.raises(aiotls.TLSConfigurationError):
        ctx.set_alpn_protocols(["x" * 256])
    with pytest.raises(aiotls.TLSConfigurationError, match="SSLv3"):
        ctx.minimum_version = ssl.TLSVersion.SSLv3


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_legacy_versions_only_when_asked(pki: PKI, tmp_path: object) -> None:
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    old.set_ciphers("ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0")
    old.minimum_version = ssl.TLSVersion.TLSv1_1
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.load_cert_chain(*pki.server("ecdsa-p256"))

    # Even offering the legacy suite, the default minimum (TLS 1.2) keeps TLS 1.1 out.
    ctx = pki.client_context()
    ctx.set_ciphers("DEFAULT:ECDHE-ECDSA-AES128-SHA")
    conn = aiotls.TLSConnection(ctx, server_hostname="localhost")
    peer = StdlibPeer(old, server_side=True)
    run(conn, peer)
    # The client does not even offer TLS 1.1 (supported_versions lists TLS 1.3 and 1.2
    # only), so the TLS 1.1-only server finds no version in common and says so.
    assert isinstance(conn.error, aiotls.AlertReceived)
    assert conn.error.alert == aiotls.AlertDescription.protocol_version
    assert "minimum_version" in conn.error.hint
    assert conn.version() is None

    ctx = pki.client_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_1
    ctx.set_ciphers("ECDHE-ECDSA-AES128-SHA")
    conn = aiotls.TLSConnection(ctx, server_hostname="localhost")
    peer = StdlibPeer(old, server_side=True)
    run(conn, peer)
    assert conn.version() == "TLSv1.1", conn.error
    conn.send_data(b"legacy works when asked for")
    peer.incoming.write(conn.data_to_send())
    peer.step()
    assert bytes(peer.received) == b"legacy works when asked for"


def test_server_requires_extended_master_secret(pki: PKI) -> None:
    # A TLS 1.2 client that does not offer EMS (tlslite with EMS disabled) is refused.
    peer = TlslitePeer.client(tlslite_settings(max_version=(3, 3), ems=False))
    peer.step()
    assert peer.running and not peer.handshake_done  # its ClientHello sent, it waits
    server = aiotls.TLSConnection(pki.server_context(), server_side=True)
    server.receive_data(peer.sock.take())
    (event,) = server.events()
    assert isinstance(event.error, aiotls.PeerIncompatible)
    assert "RFC 7627" in str(event.error)
    assert "require_extended_master_secret = False" in event.error.hint


def test_encrypt_then_mac_is_offered_only_with_cbc_suites() -> None:
    from tlslite.constants import ExtensionType
    from tlslite.messages import ClientHello
    from tlslite.utils.codec import Parser

    def extensions(ctx: aiotls.TLSContext) -> set[int]:
        hello = aiotls.TLSConnection(ctx, server_hostname="example.com").data_to_send()
        parsed = ClientHello().parse(Parser(bytearray(hello[6:])))
        return {ext.extType for ext in parsed.extensions}

    ctx = aiotls.TLSContext(ssl.PROTOCOL_TLS_CLIENT)
    assert ExtensionType.encrypt_then_mac not in extensions(ctx)
    assert ExtensionType.extended_master_secret in extensions(ctx)
    ctx.set_ciphers("ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES128-GCM-SHA256")
    assert ExtensionType.encrypt_then_mac in extensions(ctx)


@pytest.mark.parametrize("ciphers", [
    "DEFAULT",
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384",  # TLS 1.2 only
    "TLS_CHACHA20_POLY1305_SHA256",  # TLS 1.3 only
    "TLS_AES_128_GCM_SHA256:ECDHE-ECDSA-CHACHA20-POLY1305",
])
def test_get_ciphers_is_exactly_what_a_client_offers(ciphers: str) -> None:
    from tlslite.messages import ClientHello
    from tlslite.utils.codec import Parser

    ctx = aiotls.TLSContext()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_ciphers(ciphers)
    hello = ClientHello().parse(Parser(bytearray(aiotls.TLSConnection(ctx).data_to_send()[6:])))
    offered = set(hello.cipher_suites) - {0xFF}
    versions = hello.getExtension(43)
    if versions is not None and (3, 3) not in versions.versions:
        # TLS 1.3 only: the TLS 1.2 suites tlslite still lists can never be negotiated
        offered = {s for s in offered if s >> 8 == 0x13}
    assert {c["id"] & 0xFFFF for c in ctx.get_ciphers()} == offered
