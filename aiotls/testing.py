"""Throwaway certificates for tests, demos and examples.

A small certificate authority in memory (like `trustme`), the certificates it issues, and
ready :class:`~aiotls.TLSContext` objects that trust them::

    from aiotls.testing import temporary_pki

    with temporary_pki() as pki:            # CA + server certificate for localhost, 127.0.0.1
        server_ctx = pki.server_context()   # loads pki.cert_file / pki.key_file
        client_ctx = pki.client_context()   # trusts only pki.ca_file; verification on

or, piece by piece::

    ca = CA()
    server = ca.issue("example.test", "10.0.0.1", key_type="rsa")
    certfile, keyfile = server.write(directory, "server")
    ca.configure_trust(client_ctx)

Nothing here is for production: keys are never encrypted, certificates live one day by
default, and the private keys are written next to the certificates.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from cryptography import x509

from . import _crypto
from .context import TLSContext

__all__ = [
    "CA",
    "IssuedCertificate",
    "KeyType",
    "ThrowawayPKI",
    "generate_pki",
    "temporary_pki",
]

#: Key types: ``ecdsa`` (P-256), ``ecdsa-p384``, ``rsa`` (2048 bits), ``ed25519``.
KeyType = Literal["ecdsa", "ecdsa-p384", "rsa", "ed25519"]

#: The names a certificate gets when none are given.
DEFAULT_NAMES = ("localhost", "127.0.0.1")

_DEFAULT_LIFETIME = datetime.timedelta(days=1)
_BACKDATE = datetime.timedelta(minutes=5)  # tolerate a peer whose clock is a little behind


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _check_key_type(key_type: str, *, ca: bool = False) -> None:
    if key_type not in _crypto.TESTING_KEY_TYPES:
        raise ValueError(f"unknown key type {key_type!r}; expected one of "
                         f"{', '.join(_crypto.TESTING_KEY_TYPES)}")
    if ca and key_type == "ed25519":
        raise ValueError("a CA key cannot be ed25519: aiotls's verifier (the Web PKI profile) "
                         "accepts only RSA and ECDSA CA keys; use 'ecdsa' or 'rsa' for the CA "
                         "(an ed25519 leaf under it is fine)")


def _write_file(directory: str | os.PathLike[str], name: str, data: bytes, *,
                private: bool = False) -> str:
    path = os.path.abspath(os.path.join(os.fspath(directory), name))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


@dataclass(frozen=True)
class IssuedCertificate:
    """An end-entity certificate and its private key, as issued by a :class:`CA`."""

    names: tuple[str, ...]
    """The subjectAltName entries asked for (host names, IP addresses, ``*.`` wildcards)."""
    key_type: KeyType
    """The kind of key."""
    cert: x509.Certificate
    """The certificate (``cryptography`` object)."""
    cert_pem: bytes
    """The certificate alone, PEM."""
    chain_pem: bytes
    """The certificate followed by its intermediate CAs (never the root), PEM: what a
    server or client presents, and what :meth:`write` writes."""
    key_pem: bytes
    """The private key, unencrypted PKCS#8 PEM."""

    def write(self, directory: str | os.PathLike[str], name: str = "server") -> tuple[str, str]:
        """Write ``<name>-cert.pem`` (:attr:`chain_pem`) and ``<name>-key.pem`` (mode 0600)
        into ``directory``; returns their absolute paths ``(certfile, keyfile)``."""
        return (_write_file(directory, f"{name}-cert.pem", self.chain_pem),
                _write_file(directory, f"{name}-key.pem", self.key_pem, private=True))

    def configure_cert(self, ctx: ssl.SSLContext) -> None:
        """Load this certificate chain and key into ``ctx`` (``load_cert_chain`` through a
        temporary directory that is removed again)."""
        with tempfile.TemporaryDirectory(prefix="aiotls-testing-") as directory:
            ctx.load_cert_chain(*self.write(directory, "identity"))


class CA:
    """A throwaway certificate authority: a self-signed root, or an intermediate under
    ``parent``.

    ``key_type`` is the CA's own key (``ecdsa`` or ``rsa``; aiotls's verifier refuses
    Ed25519 CA keys).  The CA certificate is valid from five minutes ago for
    ``valid_for``.
    """

    def __init__(self, *, name: str | None = None, key_type: KeyType = "ecdsa",
                 parent: CA | None = None,
                 valid_for: datetime.timedelta = _DEFAULT_LIFETIME) -> None:
        _check_key_type(key_type, ca=True)
        if name is None:
            name = "aiotls testing CA" if parent is None else \
                f"aiotls testing intermediate CA {parent.depth + 1}"
        self.parent = parent
        self.key_type: KeyType = key_type
        """The kind of the CA's own key."""
        self.depth: int = 0 if parent is None else parent.depth + 1
        """0 for a root, 1 for an intermediate directly under it, and so on."""
        self._key = _crypto.generate_private_key(key_type)
        now = _now()
        self.cert: x509.Certificate = _crypto.make_ca_certificate(
            self._key, common_name=name, not_before=now - _BACKDATE, not_after=now + valid_for,
            issuer=None if parent is None else (parent.cert, parent._key),
        )
        """The CA certificate (``cryptography`` object)."""
        self.cert_pem: bytes = _crypto.certificate_pem(self.cert)
        """The CA certificate, PEM: what a peer loads as its trust anchor (the root's)."""

    @classmethod
    def from_pem(cls, cert_pem: bytes, key_pem: bytes) -> CA:
        """A root CA loaded from its certificate and unencrypted private key (PEM), to issue
        more certificates from one kept on disk (``python -m aiotls certs create``)."""
        ca = cls.__new__(cls)
        ca.parent = None
        ca.depth = 0
        ca._key = _crypto.load_private_key(key_pem, None)
        ca.cert = x509.load_pem_x509_certificate(cert_pem)
        ca.cert_pem = _crypto.certificate_pem(ca.cert)
        ca.key_type = "rsa" if "RSA" in type(ca._key).__name__ else "ecdsa"
        return ca

    @property
    def key_pem(self) -> bytes:
        """The CA's private key, unencrypted PKCS#8 PEM (keep it private)."""
        return _crypto.private_key_pem(self._key)

    def write_key(self, directory: str | os.PathLike[str], name: str = "ca") -> str:
        """Write :attr:`key_pem` as ``<name>-key.pem`` (mode 0600) into ``directory``; its
        absolute path."""
        return _write_file(directory, f"{name}-key.pem", self.key_pem, private=True)

    def intermediate(self, name: str | None = None) -> CA:
        """A new intermediate CA signed by this one."""
        return CA(name=name, key_type=self.key_type, parent=self)

    def issue(self, *names: str, key_type: KeyType = "ecdsa", server: bool = True,
              client: bool = False, common_name: str | None = None,
              not_before: datetime.datetime | None = None,
              not_after: datetime.datetime | None = None) -> IssuedCertificate:
        """Issue an end-entity certificate for ``names`` (default: localhost and
        127.0.0.1).

        IP literals become iPAddress entries, other names dNSName entries (Unicode names
        IDNA-encoded; ``*.example.test`` is a wildcard).  ``server``/``client`` put
        serverAuth/clientAuth in the extended key usage.  Validity defaults to the CA's
        window start until one day from now; pass ``not_before``/``not_after`` (aware
        datetimes) for expired or not-yet-valid certificates.
        """
        _check_key_type(key_type)
        if not names and common_name is None:
            names = DEFAULT_NAMES
        key = _crypto.generate_private_key(key_type)
        now = _now()
        cert = _crypto.make_leaf_certificate(
            key, names=names, common_name=common_name, issuer=(self.cert, self._key),
            server=server, client=client,
            not_before=not_before if not_before is not None else now - _BACKDATE,
            not_after=not_after if not_after is not None else now + _DEFAULT_LIFETIME,
        )
        cert_pem = _crypto.certificate_pem(cert)
        return IssuedCertificate(names=tuple(names), key_type=key_type, cert=cert,
                                 cert_pem=cert_pem, chain_pem=cert_pem + self._chain_pem(),
                                 key_pem=_crypto.private_key_pem(key))

    def _chain_pem(self) -> bytes:
        """This CA's certificate and its parents', up to but excluding the root."""
        parts: list[bytes] = []
        ca: CA | None = self
        while ca is not None and ca.parent is not None:
            parts.append(ca.cert_pem)
            ca = ca.parent
        return b"".join(parts)

    def root(self) -> CA:
        """The self-signed root above this CA (itself for a root)."""
        ca = self
        while ca.parent is not None:
            ca = ca.parent
        return ca

    def configure_trust(self, ctx: ssl.SSLContext) -> None:
        """Make ``ctx`` trust this CA's root (``load_verify_locations(cadata=...)``)."""
        ctx.load_verify_locations(cadata=self.root().cert_pem.decode("ascii"))

    def write(self, directory: str | os.PathLike[str], name: str = "ca") -> str:
        """Write the root certificate as ``<name>.pem`` into ``directory``; its absolute
        path."""
        return _write_file(directory, f"{name}.pem", self.root().cert_pem)


@dataclass(frozen=True)
class ThrowawayPKI:
    """A CA, a server certificate and optionally a client certificate, written as PEM
    files into one directory, with ready contexts."""

    directory: str
    """Where the files are."""
    ca: CA
    """The issuing CA (issue more certificates with ``pki.ca.issue(...)``)."""
    server: IssuedCertificate
    """The server certificate and key."""
    client: IssuedCertificate | None
    """The client certificate and key, if one was asked for."""
    ca_file: str
    """The CA certificate (PEM): what clients trust."""
    cert_file: str
    """The server's certificate chain (PEM)."""
    key_file: str
    """The server's private key (PEM, mode 0600)."""
    client_cert_file: str | None
    """The client's certificate chain (PEM), if any."""
    client_key_file: str | None
    """The client's private key (PEM), if any."""

    @property
    def ca_cert(self) -> x509.Certificate:
        """The CA certificate."""
        return self.ca.cert

    @property
    def server_cert(self) -> x509.Certificate:
        """The server certificate."""
        return self.server.cert

    def server_context(self, *, require_client_cert: bool = False) -> TLSContext:
        """A server :class:`~aiotls.TLSContext` with the server certificate loaded; with
        ``require_client_cert``, clients must present a certificate from this CA."""
        ctx = TLSContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert_file, self.key_file)
        if require_client_cert:
            ctx.load_verify_locations(cafile=self.ca_file)
            ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx

    def client_context(self) -> TLSContext:
        """A client :class:`~aiotls.TLSContext` that trusts only this CA, with certificate
        and host-name verification on (and the client certificate loaded, if any)."""
        ctx = TLSContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(cafile=self.ca_file)
        if self.client_cert_file is not None and self.client_key_file is not None:
            ctx.load_cert_chain(self.client_cert_file, self.client_key_file)
        return ctx

    def stdlib_server_context(self, *, require_client_cert: bool = False) -> ssl.SSLContext:
        """The same as :meth:`server_context`, as a standard-library (OpenSSL) context: the
        other end for interoperability tests."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert_file, self.key_file)
        if require_client_cert:
            ctx.load_verify_locations(cafile=self.ca_file)
            ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx

    def stdlib_client_context(self) -> ssl.SSLContext:
        """The same as :meth:`client_context`, as a standard-library (OpenSSL) context."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(cafile=self.ca_file)
        if self.client_cert_file is not None and self.client_key_file is not None:
            ctx.load_cert_chain(self.client_cert_file, self.client_key_file)
        return ctx


def generate_pki(directory: str | os.PathLike[str], *names: str, key_type: KeyType = "ecdsa",
                 client_name: str | None = None, ca_key_type: KeyType = "ecdsa",
                 ca_name: str | None = None) -> ThrowawayPKI:
    """Make a throwaway CA and a server certificate for ``names`` (default: localhost and
    127.0.0.1) with a ``key_type`` key, and write them into ``directory`` as ``ca.pem``,
    ``server-cert.pem`` and ``server-key.pem``.

    With ``client_name``, also a client certificate (clientAuth) for that name, as
    ``client-cert.pem`` and ``client-key.pem``.  The CA key is ``ca_key_type`` (ECDSA
    P-256 by default: fast to make, and accepted by every peer) and its common name
    ``ca_name`` (default ``aiotls testing CA``).  Everything is valid for one day.
    """
    ca = CA(name=ca_name, key_type=ca_key_type)
    server = ca.issue(*(names or DEFAULT_NAMES), key_type=key_type)
    cert_file, key_file = server.write(directory, "server")
    client = client_cert_file = client_key_file = None
    if client_name is not None:
        client = ca.issue(client_name, key_type=key_type, server=False, client=True)
        client_cert_file, client_key_file = client.write(directory, "client")
    return ThrowawayPKI(
        directory=os.path.abspath(os.fspath(directory)), ca=ca, server=server, client=client,
        ca_file=ca.write(directory), cert_file=cert_file, key_file=key_file,
        client_cert_file=client_cert_file, client_key_file=client_key_file,
    )


@contextlib.contextmanager
def temporary_pki(*names: str, key_type: KeyType = "ecdsa", client_name: str | None = None,
                  ca_key_type: KeyType = "ecdsa",
                  ca_name: str | None = None) -> Iterator[ThrowawayPKI]:
    """:func:`generate_pki` into a temporary directory that is removed on exit."""
    with tempfile.TemporaryDirectory(prefix="aiotls-pki-") as directory:
        yield generate_pki(directory, *names, key_type=key_type, client_name=client_name,
                           ca_key_type=ca_key_type, ca_name=ca_name)
