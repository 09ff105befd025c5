"""In-memory X.509 test PKI built with ``cryptography`` only.

Typical use::

    ca = CA()                                  # self-signed ECDSA P-256 root
    leaf = ca.issue("localhost", "127.0.0.1")  # server certificate
    certfile, keyfile = leaf.write(tmp_path, name="server")

    inter = CA(parent=ca)                      # intermediate signed by ``ca``
    leaf2 = inter.issue("example.test", key_type="rsa2048", client=True)
    leaf2.chain_pem                            # leaf + intermediate (no root)

Nothing here touches the network or the disk except :meth:`Issued.write`.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import tempfile
from dataclasses import dataclass
from typing import Literal, TypeAlias, get_args

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

__all__ = [
    "CA",
    "Issued",
    "KeyType",
    "PrivateKey",
    "generate_key",
    "self_signed",
]

KeyType: TypeAlias = Literal["rsa2048", "rsa1024", "ecdsa-p256", "ecdsa-p384", "ed25519"]
PrivateKey: TypeAlias = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

_KEY_TYPES: frozenset[str] = frozenset(get_args(KeyType))
_ONE_DAY = datetime.timedelta(days=1)
_CA_LIFETIME = datetime.timedelta(days=3650)
_LEAF_LIFETIME = datetime.timedelta(days=365)
_CN_MAX = 64  # ub-common-name (RFC 5280); cryptography rejects longer CNs


def generate_key(kind: KeyType) -> PrivateKey:
    """Generate a fresh private key of the given kind."""
    if kind == "rsa2048":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind == "rsa1024":
        return rsa.generate_private_key(public_exponent=65537, key_size=1024)
    if kind == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "ecdsa-p384":
        return ec.generate_private_key(ec.SECP384R1())
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unknown key type {kind!r}; expected one of {sorted(_KEY_TYPES)}")


# --------------------------------------------------------------------------- helpers


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _aware(when: datetime.datetime) -> datetime.datetime:
    """Treat naive datetimes as UTC; normalise aware ones to UTC."""
    if when.tzinfo is None:
        return when.replace(tzinfo=datetime.UTC)
    return when.astimezone(datetime.UTC)


def _validity(
    not_before: datetime.datetime | None,
    not_after: datetime.datetime | None,
    lifetime: datetime.timedelta,
) -> tuple[datetime.datetime, datetime.datetime]:
    """Fill in missing bounds, keeping ``not_before < not_after``.

    Only one bound given (e.g. an already-expired ``not_after``): the other is
    derived from the default so that the window stays well-formed.
    """
    now = _now()
    nb = _aware(not_before) if not_before is not None else None
    na = _aware(not_after) if not_after is not None else None
    if nb is None:
        nb = now - _ONE_DAY
        if na is not None and na <= nb:
            nb = na - _ONE_DAY
    if na is None:
        na = max(now + lifetime, nb + lifetime)
    if na <= nb:
        raise ValueError(f"not_after ({na}) must be later than not_before ({nb})")
    return nb, na


def _signature_hash(signing_key: PrivateKey) -> hashes.SHA256 | None:
    # Ed25519 signs the message itself; cryptography wants algorithm=None.
    if isinstance(signing_key, ed25519.Ed25519PrivateKey):
        return None
    return hashes.SHA256()


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _general_name(name: str) -> x509.GeneralName:
    """DNS name, IP address or e-mail address (anything containing ``@``)."""
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        pass
    if "@" in name:
        return x509.RFC822Name(name)
    return x509.DNSName(name)


def _ski(key: PrivateKey) -> x509.SubjectKeyIdentifier:
    return x509.SubjectKeyIdentifier.from_public_key(key.public_key())


def _cn(name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])


def _leaf_subject(names: tuple[str, ...], common_name: str | None) -> x509.Name:
    if common_name is None:
        if not names:
            raise ValueError("need at least one name or an explicit common_name")
        common_name = names[0][:_CN_MAX]
    return _cn(common_name)


def _leaf_builder(
    names: tuple[str, ...],
    key: PrivateKey,
    *,
    common_name: str | None,
    server: bool,
    client: bool,
    not_before: datetime.datetime,
    not_after: datetime.datetime,
) -> x509.CertificateBuilder:
    """Everything a leaf needs except the issuer name and AKI."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(_leaf_subject(names, common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=isinstance(key, rsa.RSAPrivateKey),
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(_ski(key), critical=False)
    )
    if names:
        san = x509.SubjectAlternativeName([_general_name(n) for n in names])
        builder = builder.add_extension(san, critical=False)
    usages: list[x509.ObjectIdentifier] = []
    if server:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    if client:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    return builder


# --------------------------------------------------------------------------- public API


@dataclass(frozen=True)
class Issued:
    """A certificate with its private key (and the chain to present with it)."""

    cert_pem: bytes
    """The leaf certificate alone, PEM."""
    key_pem: bytes
    """The private key, unencrypted PKCS#8 PEM."""
    chain_pem: bytes
    """Leaf followed by any intermediates, PEM; never includes the root."""
    cert: x509.Certificate
    key: PrivateKey

    def write(self, dirpath: str | os.PathLike[str], name: str = "leaf") -> tuple[str, str]:
        """Write ``chain_pem`` and ``key_pem`` into *dirpath*.

        File names are unique (``<name>-<random>-cert.pem`` / ``-key.pem``), so
        repeated calls into the same directory never clobber each other.
        Returns ``(certfile, keyfile)`` as absolute paths.
        """
        directory = os.fspath(dirpath)
        return (
            _write_unique(directory, f"{name}-", "-cert.pem", self.chain_pem),
            _write_unique(directory, f"{name}-", "-key.pem", self.key_pem),
        )

    def pkcs12(self, password: bytes, name: bytes = b"leaf") -> bytes:
        """The key and chain as a PKCS#12 keystore (what Java's KeyStore "PKCS12" loads),
        encrypted with *password* (PBES2, AES-256)."""
        chain = x509.load_pem_x509_certificates(self.chain_pem)
        return pkcs12.serialize_key_and_certificates(
            name, self.key, chain[0], chain[1:] or None,
            serialization.BestAvailableEncryption(password),
        )

    def write_pkcs12(self, dirpath: str | os.PathLike[str], password: bytes,
                     name: str = "leaf") -> str:
        """Write :meth:`pkcs12` into *dirpath* under a unique name; its absolute path."""
        return _write_unique(os.fspath(dirpath), f"{name}-", ".p12", self.pkcs12(password))

    def key_pem_encrypted(self, password: bytes) -> bytes:
        """The private key as encrypted PKCS#8 PEM (BestAvailableEncryption)."""
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(password),
        )


def _write_unique(directory: str, prefix: str, suffix: str, data: bytes) -> str:
    fd, path = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=directory)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return os.path.abspath(path)


class CA:
    """A certificate authority: a self-signed root, or an intermediate under *parent*.

    *name* is the subject common name.  It defaults to ``"aiotls test CA"``
    for a root and ``"aiotls test intermediate CA <depth>"`` for an
    intermediate, so that an intermediate never shares its subject with its
    issuer (which would make it look self-issued to path builders).
    """

    cert: x509.Certificate
    key: PrivateKey
    cert_pem: bytes
    parent: CA | None

    def __init__(
        self,
        key_type: KeyType = "ecdsa-p256",
        name: str | None = None,
        parent: CA | None = None,
    ) -> None:
        if name is None:
            name = (
                "aiotls test CA"
                if parent is None
                else f"aiotls test intermediate CA {parent.depth + 1}"
            )
        self.parent = parent
        self.key = generate_key(key_type)
        not_before, not_after = _validity(None, None, _CA_LIFETIME)
        subject = _cn(name)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject if parent is None else parent.cert.subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(_ski(self.key), critical=False)
        )
        if parent is not None:
            builder = builder.add_extension(parent._aki(), critical=False)
        signer = self.key if parent is None else parent.key
        self.cert = builder.sign(signer, _signature_hash(signer))
        self.cert_pem = _cert_pem(self.cert)

    @property
    def depth(self) -> int:
        """0 for a root, 1 for an intermediate directly under it, and so on."""
        return 0 if self.parent is None else self.parent.depth + 1

    def root(self) -> CA:
        """The self-signed root at the top of this CA's chain."""
        ca = self
        while ca.parent is not None:
            ca = ca.parent
        return ca

    def _aki(self) -> x509.AuthorityKeyIdentifier:
        ski = self.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)

    def _intermediates_pem(self) -> bytes:
        """This CA and its ancestors' PEM, excluding the root."""
        parts: list[bytes] = []
        ca: CA | None = self
        while ca is not None and ca.parent is not None:
            parts.append(ca.cert_pem)
            ca = ca.parent
        return b"".join(parts)

    def issue(
        self,
        *names: str,
        key_type: KeyType = "ecdsa-p256",
        not_before: datetime.datetime | None = None,
        not_after: datetime.datetime | None = None,
        client: bool = False,
        server: bool = True,
        common_name: str | None = None,
        ca_issuers_url: str | None = None,
    ) -> Issued:
        """Issue an end-entity certificate for *names*.

        *ca_issuers_url* adds an authorityInformationAccess caIssuers URL (where clients
        may fetch this CA's certificate).

        Names that parse as IP addresses become ``iPAddress`` SANs, names with
        ``@`` become ``rfc822Name`` SANs, everything else is a ``dNSName``.
        The subject CN is *common_name*, else the first name (cut to 64
        characters).  Naive datetimes are taken as UTC.
        """
        key = generate_key(key_type)
        nb, na = _validity(not_before, not_after, _LEAF_LIFETIME)
        builder = (
            _leaf_builder(
                names,
                key,
                common_name=common_name,
                server=server,
                client=client,
                not_before=nb,
                not_after=na,
            )
            .issuer_name(self.cert.subject)
            .add_extension(self._aki(), critical=False)
        )
        if ca_issuers_url is not None:
            builder = builder.add_extension(x509.AuthorityInformationAccess([
                x509.AccessDescription(AuthorityInformationAccessOID.CA_ISSUERS,
                                       x509.UniformResourceIdentifier(ca_issuers_url))]),
                critical=False)
        cert = builder.sign(self.key, _signature_hash(self.key))
        cert_pem = _cert_pem(cert)
        return Issued(
            cert_pem=cert_pem,
            key_pem=_key_pem(key),
            chain_pem=cert_pem + self._intermediates_pem(),
            cert=cert,
            key=key,
        )


def self_signed(*names: str, key_type: KeyType = "ecdsa-p256") -> Issued:
    """A self-signed end-entity certificate (not a CA) with serverAuth EKU."""
    key = generate_key(key_type)
    nb, na = _validity(None, None, _LEAF_LIFETIME)
    builder = _leaf_builder(
        names,
        key,
        common_name=None,
        server=True,
        client=False,
        not_before=nb,
        not_after=na,
    )
    builder = builder.issuer_name(_leaf_subject(names, None)).add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(_ski(key)),
        critical=False,
    )
    cert = builder.sign(key, _signature_hash(key))
    cert_pem = _cert_pem(cert)
    return Issued(cert_pem=cert_pem, key_pem=_key_pem(key), chain_pem=cert_pem, cert=cert, key=key)
