"""Sanity checks for the in-memory test PKI in ``tests/certs.py``."""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.certs import CA, KeyType, generate_key, self_signed


@pytest.mark.parametrize(
    ("ca_type", "leaf_type", "key_cls"),
    [
        ("rsa2048", "rsa2048", rsa.RSAPrivateKey),
        ("ecdsa-p256", "ecdsa-p256", ec.EllipticCurvePrivateKey),
        ("ecdsa-p384", "rsa1024", rsa.RSAPrivateKey),
        ("ed25519", "ed25519", ed25519.Ed25519PrivateKey),
    ],
)
def test_leaf_verifies_against_ca(ca_type: KeyType, leaf_type: KeyType, key_cls: type) -> None:
    ca = CA(key_type=ca_type)
    leaf = ca.issue("example.test", key_type=leaf_type)
    leaf.cert.verify_directly_issued_by(ca.cert)
    ca.cert.verify_directly_issued_by(ca.cert)  # root is self-signed
    assert isinstance(leaf.key, key_cls)
    assert leaf.cert.issuer == ca.cert.subject
    assert leaf.chain_pem == leaf.cert_pem  # issued by a root: no intermediates
    # the PEM key matches the certificate
    loaded = serialization.load_pem_private_key(leaf.key_pem, password=None)
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    assert loaded.public_key().public_bytes(enc, pub) == leaf.cert.public_key().public_bytes(
        enc, pub
    )
    ku = leaf.cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical
    assert ku.value.digital_signature
    assert ku.value.key_encipherment == isinstance(leaf.key, rsa.RSAPrivateKey)
    bc = leaf.cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical
    assert not bc.value.ca


def test_ca_extensions() -> None:
    ca = CA()
    bc = ca.cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical
    assert bc.value.ca
    assert bc.value.path_length is None
    ku = ca.cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical
    assert ku.value.key_cert_sign
    assert ku.value.crl_sign
    assert ca.root() is ca


def test_san_dns_ip_email_and_eku() -> None:
    ca = CA()
    leaf = ca.issue("localhost", "127.0.0.1", "::1", "admin@example.test", client=True)
    ext = leaf.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert not ext.critical
    san = ext.value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    assert san.get_values_for_type(x509.RFC822Name) == ["admin@example.test"]
    cn = leaf.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert [a.value for a in cn] == ["localhost"]
    eku = leaf.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert not eku.critical
    assert list(eku.value) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]


def test_client_only_and_common_name() -> None:
    leaf = CA().issue("user.test", client=True, server=False, common_name="Alice")
    eku = leaf.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    cn = leaf.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert [a.value for a in cn] == ["Alice"]


def test_intermediate_chain() -> None:
    root = CA()
    inter = CA(key_type="rsa2048", parent=root)
    leaf = inter.issue("chain.test")
    inter.cert.verify_directly_issued_by(root.cert)
    leaf.cert.verify_directly_issued_by(inter.cert)
    assert inter.root() is root
    assert inter.cert.subject != root.cert.subject
    chain = x509.load_pem_x509_certificates(leaf.chain_pem)
    assert len(chain) == 2
    assert chain[0] == leaf.cert
    assert chain[1] == inter.cert
    # two levels of intermediates: leaf + 2, still no root
    inter2 = CA(parent=inter)
    chain2 = x509.load_pem_x509_certificates(inter2.issue("deep.test").chain_pem)
    assert [c.subject for c in chain2[1:]] == [inter2.cert.subject, inter.cert.subject]
    assert inter2.root() is root


def test_expired_and_not_yet_valid() -> None:
    now = datetime.datetime.now(datetime.UTC)
    ca = CA()
    expired = ca.issue("old.test", not_after=now - datetime.timedelta(days=2))
    assert expired.cert.not_valid_after_utc < now
    assert expired.cert.not_valid_before_utc < expired.cert.not_valid_after_utc
    future = ca.issue("new.test", not_before=now + datetime.timedelta(days=10))
    assert future.cert.not_valid_before_utc > now
    assert future.cert.not_valid_after_utc > future.cert.not_valid_before_utc


def test_encrypted_key_needs_password() -> None:
    leaf = CA().issue("enc.test", key_type="ed25519")
    pem = leaf.key_pem_encrypted(b"s3cret")
    assert b"ENCRYPTED PRIVATE KEY" in pem
    loaded = serialization.load_pem_private_key(pem, password=b"s3cret")
    assert isinstance(loaded, ed25519.Ed25519PrivateKey)
    with pytest.raises(TypeError):
        serialization.load_pem_private_key(pem, password=None)
    with pytest.raises(ValueError):  # noqa: PT011 - cryptography's message varies
        serialization.load_pem_private_key(pem, password=b"wrong")


def test_write_unique_files(tmp_path: Path) -> None:
    ca = CA()
    inter = CA(parent=ca)
    leaf = inter.issue("files.test")
    c1, k1 = leaf.write(tmp_path, name="server")
    c2, k2 = leaf.write(tmp_path, name="server")
    assert len({c1, k1, c2, k2}) == 4
    assert os.path.basename(c1).startswith("server")
    assert Path(c1).read_bytes() == leaf.chain_pem
    assert Path(k1).read_bytes() == leaf.key_pem


def test_self_signed() -> None:
    ss = self_signed("self.test", "10.0.0.1")
    assert ss.cert.issuer == ss.cert.subject
    ss.cert.verify_directly_issued_by(ss.cert)
    bc = ss.cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert not bc.ca
    san = ss.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["self.test"]
    eku = ss.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert ss.chain_pem == ss.cert_pem


def test_webpki_verification_accepts_chain() -> None:
    from cryptography.x509.verification import PolicyBuilder, Store

    root = CA()
    inter = CA(parent=root)
    leaf = inter.issue("verify.test", "127.0.0.1")
    verifier = (
        PolicyBuilder().store(Store([root.cert])).build_server_verifier(x509.DNSName("verify.test"))
    )
    chain = verifier.verify(leaf.cert, [inter.cert])
    assert chain[-1] == root.cert


def test_unknown_key_type() -> None:
    with pytest.raises(ValueError, match="unknown key type"):
        generate_key("dsa")  # type: ignore[arg-type]
