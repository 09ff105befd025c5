"""Facts about certificates and handshakes, as plain data for the renderer."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm

from .. import _crypto, _verify
from ..connection import TLSConnection
from ..events import HandshakeCompleted
from ._common import cipher_text

Validity = Literal["valid", "expired", "not-yet-valid"]


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def name_text(name: x509.Name) -> str:
    """A distinguished name as RFC 4514 text (``(empty)`` for an empty one)."""
    return name.rfc4514_string() or "(empty)"


def der_name_text(der: bytes) -> str:
    """A DER distinguished name (as a CertificateRequest lists the CAs a server accepts)
    as RFC 4514 text; hex when it does not parse."""
    try:
        rdns = []
        for rdn in _der_items(der, 0x31):  # SEQUENCE OF SET
            attributes = []
            for tag, attribute in _der_values(rdn):  # SET OF SEQUENCE {type, value}
                items = list(_der_values(attribute))
                if tag != 0x30 or len(items) != 2 or items[0][0] != 0x06:
                    raise ValueError("not an attribute")
                value = items[1][1].decode("utf-16-be" if items[1][0] == 0x1E else "utf-8")
                attributes.append(x509.NameAttribute(
                    x509.ObjectIdentifier(_oid_text(items[0][1])), value,
                    _STRING_TAGS.get(items[1][0])))
            rdns.append(x509.RelativeDistinguishedName(attributes))
        return name_text(x509.Name(rdns))
    except (ValueError, UnicodeDecodeError, IndexError):
        return f"(a name that does not parse: {der.hex()})"


#: DER string tags -> cryptography's _ASN1Type (for the attribute's encoding).
_STRING_TAGS = {0x0C: x509.name._ASN1Type.UTF8String, 0x13: x509.name._ASN1Type.PrintableString,
                0x16: x509.name._ASN1Type.IA5String, 0x1E: x509.name._ASN1Type.BMPString,
                0x14: x509.name._ASN1Type.T61String}


def _der_values(data: bytes) -> Iterator[tuple[int, bytes]]:
    """The (tag, contents) of each DER value in ``data``, one after another."""
    at = 0
    while at < len(data):
        tag, size, at = data[at], data[at + 1], at + 2
        if size & 0x80:
            count = size & 0x7F
            if not 0 < count <= 3:
                raise ValueError("unsupported length")
            size, at = int.from_bytes(data[at:at + count], "big"), at + count
        if at + size > len(data):
            raise ValueError("truncated")
        yield tag, data[at:at + size]
        at += size


def _der_items(data: bytes, tag: int) -> Iterator[bytes]:
    """The contents of the elements (each of type ``tag``) of the one SEQUENCE ``data``
    holds."""
    values = list(_der_values(data))
    if len(values) != 1 or values[0][0] != 0x30:
        raise ValueError("not a sequence")
    for inner_tag, contents in _der_values(values[0][1]):
        if inner_tag != tag:
            raise ValueError("unexpected element")
        yield contents


def _oid_text(raw: bytes) -> str:
    """A DER OBJECT IDENTIFIER's contents as dotted text."""
    arcs, value = [], 0
    for byte in raw:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    if not arcs or value:
        raise ValueError("bad OID")
    first = min(arcs[0] // 40, 2)
    return ".".join(str(a) for a in (first, arcs[0] - 40 * first, *arcs[1:]))


@dataclass(frozen=True)
class CertificateFacts:
    """What one certificate says, and whether it is valid at ``checked_at``."""

    subject: str
    issuer: str
    serial: str
    """Hex bytes separated by colons."""
    not_before: datetime.datetime
    not_after: datetime.datetime
    checked_at: datetime.datetime
    validity: Validity
    """At ``checked_at``."""
    names: tuple[str, ...] | None
    """subjectAltName entries (``DNS:x``, ``IP:x``, ``email:x``, ``URI:x``); ``None`` when the
    certificate has no subjectAltName extension."""
    dns_and_ip_names: tuple[str, ...]
    """The DNS names and IP addresses alone: what host names are matched against."""
    public_key: str
    """``ECDSA-secp256r1``, ``RSA-2048``, ``Ed25519``..."""
    signature: str
    """The signature algorithm (``ecdsa-with-SHA256``...)."""
    key_usage: tuple[str, ...] | None
    """``None`` when absent."""
    key_usage_critical: bool
    extended_usage: tuple[str, ...] | None
    """``None`` when absent (any use allowed)."""
    extended_usage_critical: bool
    is_ca: bool | None
    """basicConstraints cA; ``None`` when the extension is absent."""
    path_length: int | None
    basic_constraints_critical: bool
    self_signed: bool
    """Names itself as issuer, and its signature verifies with its own key."""
    sha256: str
    """Colon-separated SHA-256 fingerprint."""


def _oid_name(oid: x509.ObjectIdentifier) -> str:
    name = getattr(oid, "_name", None)
    if not isinstance(name, str) or not name or name == "Unknown OID":
        return oid.dotted_string
    return name


def _serial(cert: x509.Certificate) -> str:
    text = f"{cert.serial_number:X}"
    if len(text) % 2:
        text = "0" + text
    return ":".join(text[i:i + 2] for i in range(0, len(text), 2))


def _san(cert: x509.Certificate) -> tuple[str, ...] | None:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    parts: list[str] = []
    for gn in san:
        if isinstance(gn, x509.DNSName):
            parts.append(f"DNS:{gn.value}")
        elif isinstance(gn, x509.IPAddress):
            parts.append(f"IP:{gn.value}")
        elif isinstance(gn, x509.RFC822Name):
            parts.append(f"email:{gn.value}")
        elif isinstance(gn, x509.UniformResourceIdentifier):
            parts.append(f"URI:{gn.value}")
        else:
            parts.append(type(gn).__name__)
    return tuple(parts)


def _key_usage(cert: x509.Certificate) -> tuple[tuple[str, ...] | None, bool]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.KeyUsage)
    except x509.ExtensionNotFound:
        return None, False
    ku = ext.value
    flags = [
        ("digitalSignature", ku.digital_signature), ("contentCommitment", ku.content_commitment),
        ("keyEncipherment", ku.key_encipherment), ("dataEncipherment", ku.data_encipherment),
        ("keyAgreement", ku.key_agreement), ("keyCertSign", ku.key_cert_sign),
        ("cRLSign", ku.crl_sign),
    ]
    names = [n for n, on in flags if on]
    if ku.key_agreement:
        names += [n for n, on in (("encipherOnly", ku.encipher_only),
                                  ("decipherOnly", ku.decipher_only)) if on]
    return tuple(names), ext.critical


def _extended_usage(cert: x509.Certificate) -> tuple[tuple[str, ...] | None, bool]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        return None, False
    return tuple(_oid_name(o) for o in ext.value), ext.critical


def _basic_constraints(cert: x509.Certificate) -> tuple[bool | None, int | None, bool]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        return None, None, False
    return ext.value.ca, ext.value.path_length, ext.critical


def _public_key(cert: x509.Certificate) -> str:
    try:
        return _crypto.key_description(cert.public_key())
    except (ValueError, UnsupportedAlgorithm) as exc:
        return f"unsupported key ({exc})"


def validity(cert: x509.Certificate, now: datetime.datetime) -> Validity:
    if now < cert.not_valid_before_utc:
        return "not-yet-valid"
    if now > cert.not_valid_after_utc:
        return "expired"
    return "valid"


def certificate_facts(cert: x509.Certificate, now: datetime.datetime) -> CertificateFacts:
    """The facts of ``cert``, its validity judged at ``now``."""
    key_usage, ku_critical = _key_usage(cert)
    extended, eku_critical = _extended_usage(cert)
    is_ca, path_length, bc_critical = _basic_constraints(cert)
    return CertificateFacts(
        subject=name_text(cert.subject), issuer=name_text(cert.issuer), serial=_serial(cert),
        not_before=cert.not_valid_before_utc, not_after=cert.not_valid_after_utc,
        checked_at=now, validity=validity(cert, now), names=_san(cert),
        dns_and_ip_names=tuple(_verify.certificate_names(cert)),
        public_key=_public_key(cert), signature=_oid_name(cert.signature_algorithm_oid),
        key_usage=key_usage, key_usage_critical=ku_critical,
        extended_usage=extended, extended_usage_critical=eku_critical,
        is_ca=is_ca, path_length=path_length, basic_constraints_critical=bc_critical,
        self_signed=_crypto.certificate_is_self_issued_and_signed(cert),
        sha256=_crypto.fingerprint_sha256(cert),
    )


IssuerVerdict = Literal["yes", "name-mismatch", "bad-signature", "signature-not-checked"]


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> tuple[IssuerVerdict, str]:
    """Whether ``issuer`` issued ``cert`` (names, then signature), and why a signature
    could not be checked."""
    if cert.issuer != issuer.subject:
        return "name-mismatch", ""
    try:
        cert.verify_directly_issued_by(issuer)
    except InvalidSignature:
        return "bad-signature", ""
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        return "signature-not-checked", str(exc)
    return "yes", ""


@dataclass(frozen=True)
class HandshakeFacts:
    """What a completed handshake negotiated."""

    version: str
    cipher: str
    """The suite and its key size: ``TLS_AES_128_GCM_SHA256 (128-bit key)``."""
    group: str | None
    """The key-exchange group, if known."""
    alpn: str | None
    server_name: str | None
    """The handshake event's ``server_name``: for a client the name it asked for, for a
    server the SNI name it received."""
    resumed: bool


def handshake_facts(hs: HandshakeCompleted, conn: TLSConnection) -> HandshakeFacts:
    return HandshakeFacts(version=hs.version, cipher=cipher_text(conn), group=hs.group,
                          alpn=hs.alpn_protocol, server_name=hs.server_name,
                          resumed=hs.session_reused)
