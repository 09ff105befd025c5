"""TLSContext: the one configuration object.

Names follow :class:`ssl.SSLContext` wherever the stdlib has the concept, so
existing code reads naturally::

    ctx = aiotls.create_default_context()              # verifies servers, system CAs
    ctx.set_alpn_protocols(["h2", "http/1.1"])

    srv = aiotls.TLSContext(ssl.PROTOCOL_TLS_SERVER)
    srv.load_cert_chain("cert.pem", "key.pem")

Secure by default: TLS 1.2 and 1.3 only, AEAD suites with ECDHE only (the RFC 7919
FFDHE groups are available through set_groups), peer certificates and host names
verified on clients, RSA keys under 2048 bits refused, extended master secret
required for TLS 1.2 (require_extended_master_secret), no renegotiation, no
heartbeat, no compression.

A context serves one side: ``PROTOCOL_TLS_CLIENT`` contexts make client connections
only, ``PROTOCOL_TLS_SERVER`` contexts server connections only (see
:meth:`aiotls.TLSConnection.check_context`).  Settings may be changed at any time;
connections made afterwards use them.  Turning verification off is possible only by
first setting ``check_hostname = False`` and then ``verify_mode = ssl.CERT_NONE``,
in so many words.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import sys
import threading
import warnings
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Self

from cryptography import x509

from . import _crypto, _crypto_pq
from ._context_records import RecordSettings
from ._context_surface import SSLContextSurface, _check_bool, _check_int
from ._identity import Identity, IdentitySettings, key_type
from ._keylog import KeyLogFile
from ._legacy import refused_suite
from ._psk import PSKSettings
from ._suites import (
    _ALWAYS_VERIFY_FLAGS,
    _BASE_OPTIONS,
    _GROUP_ALIASES,
    _SUITES_BY_NAME,
    _SUPPORTED_VERSIONS,
    _VERSION_NAMES,
    ALL_GROUPS,
    ALL_SUITES,
    DEFAULT_GROUPS,
    DEFAULT_SERVER_GROUPS,
    DEFAULT_SUITES,
    FFDHE_GROUPS,
    HYBRID_GROUPS,
    SUITES_BY_ID,
    CipherSuite,
)
from ._verify import TrustStore
from .errors import TLSConfigurationError, TLSUsageError

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, StrOrBytesPath

__all__ = ["ALL_GROUPS", "ALL_SUITES", "DEFAULT_GROUPS", "DEFAULT_SERVER_GROUPS", "DEFAULT_SUITES",
           "FFDHE_GROUPS", "SUITES_BY_ID", "CipherSuite", "TLSContext", "create_default_context"]


_SEALER_LOCK = threading.Lock()
_logger = logging.getLogger(__name__)

#: Size of the smallest RSA key aiotls accepts, ours or the peer's.
MIN_RSA_BITS = 2048


def _read(path: StrOrBytesPath, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise TLSConfigurationError(
            f"cannot read the {what} {os.fsdecode(path)!r}: {exc.strerror or exc}",
            cause="the path is wrong or the file is not readable by this process",
            hint="check the path and the file's permissions",
        ) from None


def _load_certificates(data: bytes, source: str) -> list[x509.Certificate]:
    try:
        return _parse_certificates(data)
    except ValueError as exc:
        raise TLSConfigurationError(
            f"no usable certificate in {source}: {exc}",
            cause="the data is not a PEM or DER X.509 certificate",
            hint="pass a PEM file holding '-----BEGIN CERTIFICATE-----' blocks",
        ) from None


def _parse_certificates(data: bytes) -> list[x509.Certificate]:
    with warnings.catch_warnings():
        # System stores carry a few old roots with non-positive serials; accept them quietly.
        warnings.simplefilter("ignore")
        if b"-----BEGIN" in data:
            return list(x509.load_pem_x509_certificates(data))
        return [x509.load_der_x509_certificate(data)]


def _check_protocol(protocol: int) -> None:
    if protocol == ssl.PROTOCOL_TLS:
        # ssl's generic PROTOCOL_TLS serves both sides and verifies nothing by default;
        # aiotls never verifies less than asked, nor guesses the side: refused.
        raise TLSConfigurationError(
            "ssl.PROTOCOL_TLS (a context for either side) is not supported",
            cause="in the ssl module it makes a context that verifies nothing by default "
            "(and is deprecated since Python 3.10); aiotls ties a context to one side so "
            "that a client context always verifies the server",
            hint="use ssl.PROTOCOL_TLS_CLIENT (or aiotls.create_default_context()) for "
            "clients and ssl.PROTOCOL_TLS_SERVER for servers",
        )
    if protocol not in (ssl.PROTOCOL_TLS_CLIENT, ssl.PROTOCOL_TLS_SERVER):
        raise TLSConfigurationError(
            f"unsupported protocol constant {protocol!r}",
            hint="use ssl.PROTOCOL_TLS_CLIENT or ssl.PROTOCOL_TLS_SERVER",
        )


class TLSContext(IdentitySettings, PSKSettings, RecordSettings, SSLContextSurface):
    """Configuration shared by many connections (the aiotls counterpart of ssl.SSLContext).

    ``protocol`` is :data:`ssl.PROTOCOL_TLS_CLIENT` (the default: verify the
    server's certificate and host name) or :data:`ssl.PROTOCOL_TLS_SERVER` (no
    client certificates requested unless ``verify_mode`` says so).  Note that a
    plain ``TLSContext()`` trusts no CA yet: use :func:`create_default_context` to
    load the system's, or :meth:`load_verify_locations`.
    """

    def __new__(cls, protocol: int = ssl.PROTOCOL_TLS_CLIENT, *args: Any,
                **kwargs: Any) -> Self:
        _check_protocol(protocol)
        # ssl.SSLContext makes an OpenSSL context here; aiotls never uses it for TLS (every
        # name below that would reach it is overridden), it is what makes isinstance() and
        # the C-level type checks of asyncio, uvloop, anyio, trio, httpx and aiohttp pass.
        return super().__new__(cls, protocol)

    def __init__(self, protocol: int = ssl.PROTOCOL_TLS_CLIENT) -> None:
        # Set first: every later assignment to a public name goes through __setattr__.
        self._generation = 0
        # (the protocol was checked by __new__, before OpenSSL made its context)
        self._protocol = ssl._SSLMethod(protocol)
        client = protocol == ssl.PROTOCOL_TLS_CLIENT
        self._check_hostname = client
        self._verify_mode = ssl.CERT_REQUIRED if client else ssl.CERT_NONE
        self._options = _BASE_OPTIONS
        self._verify_flags = _ALWAYS_VERIFY_FLAGS
        self._minimum_version = ssl.TLSVersion.TLSv1_2
        self._maximum_version = ssl.TLSVersion.TLSv1_3
        self._suites: tuple[CipherSuite, ...] = DEFAULT_SUITES
        self._groups: tuple[str, ...] = DEFAULT_GROUPS if client else DEFAULT_SERVER_GROUPS
        self._alpn: tuple[str, ...] = ()
        self._trust = TrustStore()
        self._chain_der: tuple[bytes, ...] = ()
        self._key: _crypto.PrivateKey | None = None
        self._suppress_ragged_eofs = False
        self._max_handshake_size = 256 * 1024
        self._post_handshake_auth = False
        self._num_tickets = 2
        self._session_ticket_lifetime = 7200
        self._require_ems = True
        self._ticket_keys: list[bytes] = []
        self._sealer: Any = None
        self._refusal_logged = False
        self._keylog: KeyLogFile | None = None
        self._trace_handshakes = _trace_from_environment()


    # --- change tracking ------------------------------------------------------------------------
    #
    # The engine caches what it derives from a context (tlslite settings, the parsed
    # certificate chain and key) and rebuilds it when ``_generation`` moved.  Every setter and
    # mutating method calls _changed(); __setattr__ also bumps it for any public name, so an
    # attribute added later cannot be forgotten.  Connections made after a change use it;
    # connections already made keep what they started with.

    def _changed(self) -> None:
        self._generation += 1

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "protocol":
            raise AttributeError(
                "TLSContext.protocol cannot be changed: it fixes the side the context serves "
                "(and its verification defaults); make a new TLSContext(ssl.PROTOCOL_TLS_CLIENT "
                "or ssl.PROTOCOL_TLS_SERVER)")
        object.__setattr__(self, name, value)
        if not name.startswith("_"):
            self._generation += 1

    @property
    def protocol(self) -> ssl._SSLMethod:  # type: ignore[override]
        """:data:`ssl.PROTOCOL_TLS_CLIENT` or :data:`ssl.PROTOCOL_TLS_SERVER`: the side this
        context serves (read-only).  A client connection with a server context, or the
        reverse, is refused with :class:`~aiotls.TLSUsageError`."""
        return self._protocol

    # --- connection behaviour -----------------------------------------------------------------

    @property
    def suppress_ragged_eofs(self) -> bool:
        """Treat EOF without close_notify as a clean close (for HTTPS-style peers).

        Off by default: an attacker could otherwise truncate the stream unnoticed."""
        return self._suppress_ragged_eofs

    @suppress_ragged_eofs.setter
    def suppress_ragged_eofs(self, value: bool) -> None:
        self._suppress_ragged_eofs = _check_bool(value, "suppress_ragged_eofs")
        self._changed()

    @property
    def max_handshake_size(self) -> int:
        """Largest total size (bytes) of handshake records accepted before the handshake
        completes (default 256 KiB)."""
        return self._max_handshake_size

    @max_handshake_size.setter
    def max_handshake_size(self, value: int) -> None:
        self._max_handshake_size = _check_int(value, "max_handshake_size", 1024, 2**24)
        self._changed()

    @property
    def post_handshake_auth(self) -> bool:
        """Servers: with verify_mode CERT_OPTIONAL/REQUIRED, do not ask for the client's
        certificate during the handshake but later, with
        TLSConnection.verify_client_post_handshake() (TLS 1.3).  (Clients always accept
        post-handshake authentication when they have a certificate loaded.)"""
        return self._post_handshake_auth

    @post_handshake_auth.setter
    def post_handshake_auth(self, value: bool) -> None:
        self._post_handshake_auth = _check_bool(value, "post_handshake_auth")
        self._changed()

    @property
    def num_tickets(self) -> int:
        """Session tickets a server sends after each full handshake (TLS 1.3; TLS 1.2 sends
        one if this is non-zero, and so does a TLS 1.3 resumption, as in OpenSSL).  0
        disables session resumption.  Like ssl's num_tickets."""
        return self._num_tickets

    @num_tickets.setter
    def num_tickets(self, value: int) -> None:
        self._num_tickets = _check_int(value, "num_tickets", 0, 2**16 - 1)
        self._changed()

    @property
    def session_ticket_lifetime(self) -> int:
        """How long (seconds) a session ticket stays valid: at most 604800 (7 days, the
        RFC 8446 4.6.1 limit); default 7200."""
        return self._session_ticket_lifetime

    @session_ticket_lifetime.setter
    def session_ticket_lifetime(self, value: int) -> None:
        self._session_ticket_lifetime = _check_int(value, "session_ticket_lifetime", 1, 604800)
        self._changed()

    @property
    def require_extended_master_secret(self) -> bool:
        """Refuse TLS 1.2 peers that do not support the extended master secret (RFC 7627).

        On (``True``) by default, in both roles.  Without RFC 7627 the TLS 1.2 master
        secret is not bound to the handshake transcript, so a man in the middle can make
        two connections share one secret and resume or renegotiate one as the other (the
        "triple handshake" attack, which also defeats channel bindings such as
        tls-unique).  Set ``False`` only to admit TLS 1.2 peers that predate RFC 7627
        (older Java, embedded stacks), and prefer TLS 1.3 for them where possible.
        aiotls still offers and uses the extension whenever the peer supports it; TLS 1.3
        is not affected.
        """
        return self._require_ems

    @require_extended_master_secret.setter
    def require_extended_master_secret(self, value: bool) -> None:
        self._require_ems = _check_bool(value, "require_extended_master_secret")
        self._changed()

    # --- verification --------------------------------------------------------------------------

    @property
    def check_hostname(self) -> bool:
        """Match the server's certificate against ``server_hostname`` (clients)."""
        return self._check_hostname

    @check_hostname.setter
    def check_hostname(self, value: bool) -> None:
        value = bool(value)
        if value and self._verify_mode == ssl.CERT_NONE:
            # Same rule as ssl.SSLContext: hostname checking implies verification.
            self._verify_mode = ssl.CERT_REQUIRED
        self._check_hostname = value
        self._changed()

    @property
    def verify_mode(self) -> ssl.VerifyMode:
        """``ssl.CERT_REQUIRED``, ``ssl.CERT_OPTIONAL`` or ``ssl.CERT_NONE``."""
        return ssl.VerifyMode(self._verify_mode)

    @verify_mode.setter
    def verify_mode(self, value: int) -> None:
        if value not in (ssl.CERT_NONE, ssl.CERT_OPTIONAL, ssl.CERT_REQUIRED):
            raise TLSConfigurationError(
                f"invalid verify_mode {value!r}",
                hint="use ssl.CERT_NONE, ssl.CERT_OPTIONAL or ssl.CERT_REQUIRED",
            )
        if value == ssl.CERT_NONE and self._check_hostname:
            raise TLSConfigurationError(
                "cannot set verify_mode to CERT_NONE while check_hostname is enabled",
                cause="turning verification off must be an explicit, two-step decision",
                hint="set check_hostname = False first, then verify_mode = ssl.CERT_NONE "
                "(and only for testing: it lets anyone impersonate the server)",
            )
        self._verify_mode = ssl.VerifyMode(value)
        self._changed()

    def load_verify_locations(
        self,
        cafile: StrOrBytesPath | None = None,
        capath: StrOrBytesPath | None = None,
        cadata: str | ReadableBuffer | None = None,
    ) -> None:
        """Add trusted CA certificates: a PEM file, a directory of PEM/DER files, or data
        (PEM text as ``str``, DER or PEM as ``bytes``)."""
        if cafile is None and capath is None and cadata is None:
            raise TypeError("cafile, capath and cadata cannot be all omitted")
        if cafile is not None:
            self._trust.add(_load_certificates(_read(cafile, "CA file"), os.fsdecode(cafile)))
        if capath is not None:
            path = os.fsdecode(capath)
            if not os.path.isdir(path):
                raise TLSConfigurationError(f"capath {path!r} is not a directory",
                                            hint="pass a directory of CA certificate files")
            for entry in sorted(os.listdir(path)):
                full = os.path.join(path, entry)
                if not os.path.isfile(full):
                    continue
                try:
                    self._trust.add(_load_certificates(_read(full, "CA file"), full))
                except TLSConfigurationError:
                    continue  # like OpenSSL's hashed dirs: skip files that are not certificates
        if cadata is not None:
            data = cadata.encode("ascii") if isinstance(cadata, str) else bytes(cadata)
            self._trust.add(_load_certificates(data, "cadata"))
        self._changed()

    def load_default_certs(self, purpose: ssl.Purpose = ssl.Purpose.SERVER_AUTH) -> None:
        """Trust the system's CA store (or certifi's, if the system has none)."""
        paths = ssl.get_default_verify_paths()
        loaded = 0
        for cafile in (paths.cafile, paths.openssl_cafile):
            if cafile and os.path.isfile(cafile):
                before = len(self._trust)
                self.load_verify_locations(cafile=cafile)
                loaded += len(self._trust) - before
                break
        if not loaded:
            for capath in (paths.capath, paths.openssl_capath):
                if capath and os.path.isdir(capath):
                    before = len(self._trust)
                    self.load_verify_locations(capath=capath)
                    loaded += len(self._trust) - before
                    break
        if not loaded:
            try:
                import certifi  # type: ignore[import-not-found,unused-ignore]
            except ImportError:
                return
            self.load_verify_locations(cafile=certifi.where())

    def cert_store_stats(self) -> dict[str, int]:
        """Counts of loaded trust anchors, like :meth:`ssl.SSLContext.cert_store_stats`."""
        certs = self._trust.certificates()
        ca = sum(1 for c in certs if _is_ca(c))
        return {"x509": len(certs), "crl": 0, "x509_ca": ca}

    def get_ca_certs(self, binary_form: bool = False) -> list[Any]:
        """The loaded trust anchors, as DER bytes or getpeercert()-style dicts."""
        from . import _verify
        from ._crypto import der_bytes

        ders = [der_bytes(c) for c in self._trust.certificates()]
        if binary_form:
            return ders
        return [_verify.peercert_dict(d) for d in ders]

    # --- our identity ------------------------------------------------------------------------

    def load_cert_chain(
        self,
        certfile: StrOrBytesPath,
        keyfile: StrOrBytesPath | None = None,
        password: str | bytes | Any = None,
    ) -> None:
        """Load our certificate chain (leaf first, then intermediates) and private key.

        ``password`` may be a str, bytes, or a callable returning one, for encrypted keys.
        RSA keys must be at least 2048 bits; ECDSA (P-256/P-384/P-521) and Ed25519 keys
        are supported.  The key must match the leaf certificate.

        Called again with a key of another type (RSA, ECDSA P-256, ECDSA P-384, Ed25519...)
        it adds an identity: a server then answers each client with the first identity
        whose certificate and signature algorithms the client accepts, trying the one
        loaded last first.  Called with a key of a type already loaded, it replaces that
        identity.
        """
        cert_data = _read(certfile, "certificate file")
        key_data = _read(keyfile, "key file") if keyfile is not None else cert_data
        certs = _load_certificates(cert_data, os.fsdecode(certfile))
        if callable(password):
            password = password()
        if isinstance(password, str):
            password = password.encode("utf-8")
        if password is not None and not isinstance(password, bytes | bytearray):
            raise TypeError("password should be a string, bytes or a callable returning one")
        try:
            key = _crypto.load_private_key(key_data, bytes(password) if password else None)
        except (ValueError, TypeError) as exc:
            encrypted = b"ENCRYPTED" in key_data
            if encrypted and password is None:
                cause, hint = "the key is encrypted and no password was given", "pass password="
            elif encrypted:
                cause, hint = "the password is wrong", "check the password"
            else:
                cause, hint = ("the file holds no PEM/DER private key", "pass keyfile= pointing to "
                               "the private key (PEM '-----BEGIN PRIVATE KEY-----')")
            raise TLSConfigurationError(
                f"cannot load the private key from "
                f"{os.fspath(keyfile if keyfile is not None else certfile)!r}: {exc}",
                cause=cause, hint=hint,
            ) from None
        self._set_identity(certs, key)

    def _set_identity(self, certs: Sequence[x509.Certificate], key: _crypto.PrivateKey) -> None:
        if not certs:
            raise TLSConfigurationError("the certificate file holds no certificate",
                                        hint="pass a PEM file with the leaf certificate first")
        if not _crypto.key_matches_certificate(key, certs[0]):
            raise TLSConfigurationError(
                "the private key does not match the certificate "
                f"({certs[0].subject.rfc4514_string()})",
                cause="the key file belongs to another certificate, or the chain file does not "
                "start with the leaf certificate",
                hint="pass the key generated with this certificate; put the leaf first in the "
                "chain file",
            )
        bits = _crypto.rsa_key_bits(key)
        if bits is not None and bits < MIN_RSA_BITS:
            raise TLSConfigurationError(
                f"the RSA key is only {bits} bits",
                cause=f"keys under {MIN_RSA_BITS} bits are breakable and refused by modern peers",
                hint=f"generate a key of at least {MIN_RSA_BITS} bits, or use ECDSA P-256",
            )
        from ._crypto import der_bytes

        # One identity per key type, the last loaded first (tried first; see
        # docs/configuration.md, "Several certificates"): the same type again replaces it.
        identity = Identity(tuple(der_bytes(c) for c in certs), key, key_type(key))
        self._cert_identities = (identity, *(i for i in self._cert_identities
                                        if i.key_type != identity.key_type))
        self._chain_der = identity.chain
        self._key = key
        self._changed()

    # --- session resumption ------------------------------------------------------------------

    def set_session_ticket_keys(self, keys: Sequence[bytes]) -> None:
        """Use these 32-byte keys to protect session tickets (servers).

        The first key seals new tickets; all of them open tickets, so keys can be
        rotated (put the new key first, keep the old one for a while) and shared
        between worker processes so that any worker resumes any session.  Without
        a call, each context makes a random key of its own.
        """
        keys = [bytes(k) for k in keys]
        if not keys or any(len(k) != 32 for k in keys):
            raise TLSConfigurationError("session ticket keys must be one or more 32-byte keys",
                                        hint="generate keys with os.urandom(32)")
        self._ticket_keys = keys
        self._sealer = None
        self._changed()

    def _ticket_sealer(self) -> Any:
        if self._sealer is None:
            # (wrap_bio() may run in worker threads: one random key per context, not one
            # per thread that raced here)
            with _SEALER_LOCK:
                if self._sealer is None:
                    if not self._ticket_keys:
                        self._ticket_keys = [os.urandom(32)]
                    self._sealer = _crypto.TicketSealer(self._ticket_keys)
        return self._sealer

    # --- protocol parameters -------------------------------------------------------------------

    @property  # type: ignore[override]
    def minimum_version(self) -> ssl.TLSVersion:
        """Lowest TLS version allowed (default TLS 1.2)."""
        return self._minimum_version

    @minimum_version.setter
    def minimum_version(self, value: ssl.TLSVersion) -> None:
        self._minimum_version = self._check_version(value, "minimum_version")
        self._changed()

    @property  # type: ignore[override]
    def maximum_version(self) -> ssl.TLSVersion:
        """Highest TLS version allowed (default TLS 1.3)."""
        return self._maximum_version

    @maximum_version.setter
    def maximum_version(self, value: ssl.TLSVersion) -> None:
        self._maximum_version = self._check_version(value, "maximum_version")
        self._changed()

    @staticmethod
    def _check_version(value: ssl.TLSVersion, attr: str) -> ssl.TLSVersion:
        value = ssl.TLSVersion(value)
        if value == ssl.TLSVersion.MINIMUM_SUPPORTED:
            return ssl.TLSVersion.TLSv1
        if value == ssl.TLSVersion.MAXIMUM_SUPPORTED:
            return ssl.TLSVersion.TLSv1_3
        if value not in _SUPPORTED_VERSIONS:
            raise TLSConfigurationError(
                f"{attr}={value.name} is not supported",
                cause="SSLv3 is broken and aiotls does not implement it",
                hint="use ssl.TLSVersion.TLSv1_2 or TLSv1_3",
            )
        return value

    def set_alpn_protocols(self, alpn_protocols: Iterable[str]) -> None:
        """Offer (client) or accept (server) these ALPN protocols, in preference order."""
        protos = tuple(alpn_protocols)
        for p in protos:
            raw = p.encode("ascii") if isinstance(p, str) else p
            if not 1 <= len(raw) <= 255:
                raise TLSConfigurationError(f"ALPN protocol {p!r} must be 1 to 255 bytes long")
        alpn = tuple(p if isinstance(p, str) else p.decode("ascii") for p in protos)
        if alpn != self._alpn:
            # (httpx sets the same list before every connection: the prepared settings stay)
            self._alpn = alpn
            self._changed()

    def set_ciphers(self, ciphers: str) -> None:
        """Choose cipher suites by IANA or OpenSSL name, separated by ``:``, ``,`` or spaces.

        ``"DEFAULT"`` stands for the default AEAD suites.  Legacy CBC suites are
        accepted only when named explicitly, and so are the TLS 1.2 finite-field suites
        ``TLS_DHE_RSA_WITH_AES_128_GCM_SHA256`` (``DHE-RSA-AES128-GCM-SHA256``),
        ``..._AES_256_GCM_SHA384`` and ``..._CHACHA20_POLY1305_SHA256``, which also need an
        ``ffdhe*`` group in :meth:`set_groups` (without one they are never negotiated).  The engine selects suites by bulk
        cipher and key exchange, so :meth:`get_ciphers` reports the exact set
        that results.
        """
        chosen: list[CipherSuite] = []
        for token in ciphers.replace(",", ":").replace(" ", ":").split(":"):
            token = token.strip()
            if not token:
                continue
            if token.upper() == "DEFAULT":
                chosen.extend(s for s in DEFAULT_SUITES if s not in chosen)
                continue
            suite = _SUITES_BY_NAME.get(token.upper())
            if suite is None:
                raise refused_suite(token) or TLSConfigurationError(
                    f"unknown cipher suite {token!r}",
                    hint="use one of: " + ", ".join(s.name for s in ALL_SUITES),
                )
            if suite not in chosen:
                chosen.append(suite)
        if not chosen:
            raise TLSConfigurationError("set_ciphers() selected no cipher suite",
                                        hint="name at least one suite, or 'DEFAULT'")
        self._suites = tuple(chosen)
        self._changed()

    def get_ciphers(self) -> list[dict[str, Any]]:  # type: ignore[override]
        """The suites this context enables, like :meth:`ssl.SSLContext.get_ciphers`."""
        return [
            {"id": 0x03000000 | s.id, "name": s.openssl_name, "iana_name": s.name,
             "protocol": s.protocol, "strength_bits": s.bits, "alg_bits": s.bits, "aead": s.aead,
             "description": f"{s.openssl_name} {s.protocol} {s.kex or 'any'} {s.cipher} {s.mac}"}
            for s in self._effective_suites()
        ]

    def _effective_suites(self) -> list[CipherSuite]:
        ciphers = {s.cipher for s in self._suites}
        kexes = {s.kex for s in self._suites if s.kex}
        macs = {s.mac for s in self._suites}
        # (as the engine does: TLS 1.3 suites only if one was chosen, TLS 1.2 ones likewise)
        tls13 = any(s.kex is None for s in self._suites)
        return [s for s in ALL_SUITES if s.cipher in ciphers and s.mac in macs
                and (s.kex in kexes if s.kex else tls13)]

    def set_groups(self, groups: Iterable[str]) -> None:
        """Choose the (EC)DHE key-exchange groups, in preference order.

        Known: ``x25519mlkem768`` (the hybrid post-quantum group X25519MLKEM768, TLS 1.3
        only; first in a server's defaults, not in a client's: see "Post-quantum key
        exchange" in docs/configuration.md), ``x25519``, ``secp256r1``, ``secp384r1``,
        ``secp521r1``, ``x448``, and the finite-field groups of RFC 7919, ``ffdhe2048``,
        ``ffdhe3072``, ``ffdhe4096``, ``ffdhe6144`` and ``ffdhe8192`` (not enabled by
        default); names are case-insensitive.  The client sends a key share for the first
        one (and, when that is ``x25519mlkem768``, one for the first classical curve too).
        A server (TLS 1.3) takes its first group the client sent a key share for, otherwise
        asks (HelloRetryRequest) for its first group the client lists.

        FFDHE in TLS 1.2 needs a DHE suite as well (an RSA certificate, and
        ``set_ciphers("DEFAULT:DHE-RSA-AES128-GCM-SHA256")`` or another
        ``TLS_DHE_RSA_WITH_*`` AEAD suite): it is negotiated per RFC 7919, so the peer
        must list one of these groups; a server never uses other DH parameters, and a
        client refuses a server that picks parameters which are not one of the groups
        it offered (insufficient_security).
        """
        if isinstance(groups, str):  # Python 3.15's form: "x25519:secp256r1"
            groups = [g.strip() for g in groups.split(":") if g.strip()]
        chosen: list[str] = []
        for g in groups:
            name = _GROUP_ALIASES.get(g.lower(), g.lower())
            if name in HYBRID_GROUPS and not _crypto_pq.available():
                raise TLSConfigurationError(
                    f"key-exchange group {g!r} is not available here",
                    cause=str(_crypto_pq.unavailable_reason()),
                    hint="install cryptography 47 or later with an OpenSSL that has ML-KEM "
                    "(the PyPI wheels of 48 have one), or leave the group out")
            if name not in ALL_GROUPS:
                raise TLSConfigurationError(f"unknown key-exchange group {g!r}",
                                            hint="use one of: " + ", ".join(ALL_GROUPS))
            if name not in chosen:
                chosen.append(name)
        if not chosen:
            raise TLSConfigurationError("set_groups() selected no group")
        self._groups = tuple(chosen)
        self._changed()

    def get_groups(self, *, include_aliases: bool = False) -> list[str]:
        """The enabled key-exchange groups, in preference order (``include_aliases``, from
        Python 3.15's signature, adds their other names)."""
        if not include_aliases:
            return list(self._groups)
        return [*self._groups, *(alias for alias, name in _GROUP_ALIASES.items()
                                 if name in self._groups and alias not in self._groups)]

    # --- the ssl.SSLContext factories ----------------------------------------------------------

    def wrap_bio(
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | bytes | None = None,
        session: Any = None,
    ) -> ssl.SSLObject:
        """An :class:`ssl.SSLObject` driven by aiotls over two memory BIOs, like
        :meth:`ssl.SSLContext.wrap_bio`: what asyncio, uvloop, anyio, trio, httpx and
        aiohttp call when given this context (see :mod:`aiotls.compat`)."""
        from .compat import TLSObject

        try:
            return TLSObject(self, incoming, outgoing, server_side=server_side,
                             server_hostname=server_hostname, session=session)
        except (TLSUsageError, TLSConfigurationError) as exc:
            if not server_side or exc.code not in ("wrong-side-context",
                                                   "server-needs-certificate"):
                raise
            # A server's framework (asyncio.start_server, aiohttp...) calls wrap_bio() for
            # each connection it accepted: raising here would leave that connection open
            # and unanswered (asyncio waits for a handshake that never starts) and, outside
            # debug mode, unreported.  So: say it once, and give the framework an object
            # that fails the handshake, which closes the connection.
            if not self._refusal_logged:
                self._refusal_logged = True
                _logger.error("every server connection made with %r will fail: %s", self, exc)
            from .compat import RefusedTLSObject

            return RefusedTLSObject(self, incoming, outgoing, exc)

    def wrap_socket(
        self,
        sock: socket.socket,
        server_side: bool = False,
        do_handshake_on_connect: bool = True,
        suppress_ragged_eofs: bool = True,
        server_hostname: str | bytes | None = None,
        session: Any = None,
    ) -> Any:
        """A blocking TLS socket over ``sock``, like :meth:`ssl.SSLContext.wrap_socket`
        (see :mod:`aiotls.sync`)."""
        from .sync import wrap_socket

        return wrap_socket(sock, self, server_side=server_side,
                           do_handshake_on_connect=do_handshake_on_connect,
                           suppress_ragged_eofs=suppress_ragged_eofs,
                           server_hostname=server_hostname, session=session)

    def __repr__(self) -> str:
        role = "client" if self.protocol == ssl.PROTOCOL_TLS_CLIENT else "server"
        return (f"<aiotls.TLSContext {role} verify={self.verify_mode.name} "
                f"check_hostname={self.check_hostname} "
                f"versions={_VERSION_NAMES[self._minimum_version]}-"
                f"{_VERSION_NAMES[self._maximum_version]} trust={len(self._trust)} "
                f"cert={'yes' if self._chain_der else 'no'}>")


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _trace_from_environment() -> bool:
    """``AIOTLS_TRACE=1`` (any value but ``0`` or empty; read as each context is made,
    ignored under ``python -E``)."""
    return os.environ.get("AIOTLS_TRACE", "0") not in ("", "0") \
        and not sys.flags.ignore_environment


def create_default_context(
    purpose: ssl.Purpose = ssl.Purpose.SERVER_AUTH,
    *,
    cafile: str | os.PathLike[str] | None = None,
    capath: str | os.PathLike[str] | None = None,
    cadata: str | bytes | None = None,
) -> TLSContext:
    """A context with secure defaults, like :func:`ssl.create_default_context`.

    For ``Purpose.SERVER_AUTH`` (a client context): verifies the server certificate and
    host name against ``cafile``/``capath``/``cadata`` if given, else the system CA store.
    For ``Purpose.CLIENT_AUTH`` (a server context): load your certificate with
    :meth:`TLSContext.load_cert_chain`; set ``verify_mode`` to ask for client certificates.
    """
    if purpose == ssl.Purpose.SERVER_AUTH:
        ctx = TLSContext(ssl.PROTOCOL_TLS_CLIENT)
    elif purpose == ssl.Purpose.CLIENT_AUTH:
        ctx = TLSContext(ssl.PROTOCOL_TLS_SERVER)
    else:
        raise TypeError(f"purpose must be an ssl.Purpose, not {purpose!r}")
    if cafile is not None or capath is not None or cadata is not None:
        ctx.load_verify_locations(cafile, capath, cadata)
    elif ctx.verify_mode != ssl.CERT_NONE:
        ctx.load_default_certs(purpose)
    keylog = os.environ.get("SSLKEYLOGFILE")
    if keylog and not sys.flags.ignore_environment:
        ctx.keylog_filename = keylog  # (as ssl.create_default_context)
    return ctx
