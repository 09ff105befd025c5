"""Certificate verification inside tlslite's handshake, before any Finished or ticket.

tlslite verifies nothing about a peer's certificate by default.  :class:`_Policy` runs
:mod:`aiotls._verify` (chain, name, validity) with the context's trust anchors, and
:class:`VerificationHooks` calls it where tlslite has the chain: server certificates and
TLS 1.2 client certificates in ``_check_certchain_with_settings``, a missing TLS 1.2
client certificate in ``_serverFinished``, TLS 1.3 client certificates before tickets
(:mod:`.tickets`), and post-handshake authentication.  A failure sends the alert the
error carries.  The hello and CertificateRequest advertise the signature algorithms the
verifier checks (:func:`_advertise_certificate_signatures`); a TLS 1.3 client refuses a
CertificateVerify scheme it did not offer.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from tlslite.constants import AlertDescription as _TLAlert
from tlslite.constants import (
    ExtensionType,
    SignatureScheme,
)
from tlslite.messages import (
    Certificate,
    CertificateRequest,
    ClientHello,
    CompressedCertificate,
)

from .. import _verify
from ..errors import (
    AlertDescription,
    CertificateError,
    TLSError,
)
from .common import _CERT_REQUIRED, _Hooks
from .quick import _QUICK_EXTENSIONS


def _ca_names(request: Any, tls13: bool) -> tuple[bytes, ...]:
    """The distinguished names (DER) of the CAs a CertificateRequest says the server accepts:
    TLS 1.2's list (RFC 5246 7.4.4), TLS 1.3's certificate_authorities extension (RFC 8446
    4.2.4); empty when it names none (or names them in a list that does not parse)."""
    if not tls13:
        return tuple(bytes(name) for name in request.certificate_authorities or ())
    ext = next((e for e in request.extensions or () if e.extType == _CERTIFICATE_AUTHORITIES),
               None)
    data = bytes(ext.extData) if ext is not None else b""
    names, at = [], 2
    if len(data) < 2 or int.from_bytes(data[:2], "big") != len(data) - 2:
        return ()
    while at + 2 <= len(data):
        end = at + 2 + int.from_bytes(data[at:at + 2], "big")
        if end > len(data):
            return ()
        names.append(data[at + 2:end])
        at = end
    return tuple(names) if at == len(data) else ()


#: RFC 8446 4.2.4's extension type.
_CERTIFICATE_AUTHORITIES = 47


@dataclass(slots=True)
class _Policy:
    """What to verify about the peer's certificate on one connection."""

    trust: _verify.TrustStore
    peer_role: str  # "server" or "client": the role of the certificate being checked
    hostname: str | None
    mode: int
    now: Callable[[], datetime.datetime]
    #: the path the last verification built, leaf to trust anchor (serialised only when
    #: asked for: get_verified_chain() is rare, handshakes are not)
    path: list[Any] = field(default_factory=list)

    def verify(self, chain: list[bytes]) -> None:
        if not chain and self.mode != _CERT_REQUIRED:
            return
        self.path = _verify.verify_chain(chain, trust=self.trust, role=self.peer_role,
                                         hostname=self.hostname, now=self.now())


def _chain_der(chain: Any) -> list[bytes]:
    if chain is None:
        return []
    return [bytes(c.bytes) for c in chain.x509List]


#: Signature algorithms aiotls's verifier (cryptography.x509.verification, Web PKI profile)
#: checks in certificates, issuers' signatures that is; Ed25519/Ed448 CAs are refused there,
#: so they are not advertised for certificates (Ed25519 *leaf* keys sign handshakes fine).
_CERT_SIGNATURE_SCHEMES = (
    SignatureScheme.ecdsa_secp256r1_sha256, SignatureScheme.ecdsa_secp384r1_sha384,
    SignatureScheme.ecdsa_secp521r1_sha512,
    SignatureScheme.rsa_pss_rsae_sha256, SignatureScheme.rsa_pss_rsae_sha384,
    SignatureScheme.rsa_pss_rsae_sha512,
    SignatureScheme.rsa_pkcs1_sha256, SignatureScheme.rsa_pkcs1_sha384,
    SignatureScheme.rsa_pkcs1_sha512,
)
#: RSA PKCS#1 v1.5: in TLS 1.3 only for signatures in certificates (RFC 8446 4.2.3), never
#: for CertificateVerify (tlslite's TLS 1.3 lists leave them out; the checks stay its own).
_RSA_PKCS1_SCHEMES = (SignatureScheme.rsa_pkcs1_sha256, SignatureScheme.rsa_pkcs1_sha384,
                      SignatureScheme.rsa_pkcs1_sha512)


def _advertise_certificate_signatures(message: Any, *, cert_extension: bool) -> None:
    """Add what aiotls verifies in certificates to a ClientHello's or a TLS 1.3
    CertificateRequest's signature algorithms.

    tlslite's TLS 1.3 lists hold only handshake (CertificateVerify) schemes, without
    rsa_pkcs1_*, so a TLS 1.3 offer told peers that an RSA CA's signatures cannot be
    checked: Java's server then refused a TLS 1.3-only client, and Java's client sent no
    certificate.  As OpenSSL does, rsa_pkcs1_* join ``signature_algorithms`` (RFC 8446
    4.2.3 allows them there for certificates; they are never accepted for CertificateVerify).

    ``cert_extension``: also send ``signature_algorithms_cert`` with exactly the certificate
    signatures the verifier checks (no Ed25519/Ed448 CA).  A CertificateRequest carries it:
    a client choosing among its certificates (Java keystores) then picks one aiotls can
    verify.  A ClientHello does not: RFC 8446 4.4.2.2 has a server send its chain anyway,
    but OpenSSL servers refuse the handshake instead, which would turn aiotls's precise
    "Ed25519 CA" verification error into a bare handshake_failure, and break CERT_NONE
    clients that never verify the chain at all.
    """
    sig_algs = message.getExtension(ExtensionType.signature_algorithms)
    if sig_algs is None or not sig_algs.sigalgs:
        return
    listed = list(sig_algs.sigalgs)
    sig_algs.sigalgs = listed + [s for s in _RSA_PKCS1_SCHEMES if s not in listed]
    if cert_extension and message.getExtension(ExtensionType.signature_algorithms_cert) is None:
        extensions = message.extensions
        extensions.insert(extensions.index(sig_algs) + 1,
                          _QUICK_EXTENSIONS["SignatureAlgorithmsCertExtension"]().create(
                              list(_CERT_SIGNATURE_SCHEMES)))



class VerificationHooks(_Hooks):  # type: ignore[misc]
    """aiotls's certificate verification, run inside tlslite's handshake."""

    _aiotls_error: TLSError | None
    _aiotls_pha_chain: list[bytes] | None
    #: Client: the CA names (DER) of the server's CertificateRequest, once one came.
    _aiotls_requested_cas: tuple[bytes, ...] | None = None

    def _aiotls_verify(self, chain: list[bytes], missing_alert: int) -> Generator[int, None, None]:
        policy = self._aiotls_policy
        if policy is None:
            return
        try:
            policy.verify(chain)
        except CertificateError as err:
            if not chain:
                err.alert = AlertDescription(missing_alert)
                err.alert_number = missing_alert
            self._aiotls_error = err
            yield from self._sendError(err.alert_number, err.what)

    def _check_certchain_with_settings(self, cert_chain: Any, settings: Any) -> Generator[Any, None, None]:
        result: Any = None
        for result in super()._check_certchain_with_settings(cert_chain, settings):
            if result in (0, 1):
                yield result
            else:
                break
        # (the key already verifies through OpenSSL: see _PeerX509)
        yield from self._aiotls_verify(_chain_der(cert_chain), _TLAlert.bad_certificate)
        yield result

    def _serverFinished(self, *args: Any, **kwargs: Any) -> Generator[Any, None, None]:
        # TLS 1.2 server: the client sent no certificate although one is required.
        chain = args[8] if len(args) > 8 else kwargs.get("client_cert_chain")
        policy = self._aiotls_policy
        if policy is not None and not _chain_der(chain) and not self._aiotls_defer_client_cert:
            yield from self._aiotls_verify([], _TLAlert.handshake_failure)
        yield from super()._serverFinished(*args, **kwargs)

    def _handle_srv_pha(self, cert: Any) -> Generator[Any, None, None]:
        # Post-handshake authentication (server): tlslite checks the signature and Finished
        # but not the chain; verify it like a handshake certificate before accepting it.
        chain = _chain_der(cert.cert_chain if cert is not None else None)
        previous = self.session.clientCertChain if self.session else None
        yield from super()._handle_srv_pha(cert)
        if chain:
            yield from self._aiotls_verify(chain, _TLAlert.bad_certificate)
            self._aiotls_pha_chain = chain
        elif self.session is not None:
            self.session.clientCertChain = previous  # an empty answer changes nothing

    def _queue_message(self, msg: Any) -> None:
        if isinstance(msg, Certificate | CompressedCertificate) and not self._client:
            self._aiotls_sent_certificate = True
        elif isinstance(msg, CertificateRequest) and tuple(self.version) > (3, 3):
            # (TLS 1.2's list has rsa_pkcs1 already, and its CertificateRequest no extensions)
            _advertise_certificate_signatures(msg, cert_extension=True)
            # tlslite attaches compress_certificate even with no algorithm, which RFC 8879
            # makes malformed (a list of at least one): none means no extension
            compress = msg.getExtension(ExtensionType.compress_certificate)
            if compress is not None and not compress.algorithms:
                msg.extensions.remove(compress)
        super()._queue_message(msg)

    def _create_cert_msg(self, peer: str, request_msg: Any, valid_compression_algos: Any,
                         *args: Any, **kwargs: Any) -> Any:
        # tlslite's TLS 1.3 client compressed its certificate (RFC 8879) whenever its own
        # ClientHello offered compression; the server's CertificateRequest decides (RFC 8879
        # 3): OpenSSL, which has no compression, refused the compressed certificate.
        if peer == "client" and isinstance(request_msg, ClientHello):
            request_msg = self._aiotls_certificate_request
            if request_msg is None:
                request_msg, valid_compression_algos = ClientHello(), []
        return super()._create_cert_msg(peer, request_msg, valid_compression_algos,
                                        *args, **kwargs)

    def _aiotls_note_certificate_request(self, request: Any) -> Generator[Any, None, None]:
        """Client: remember the request (for the error if the server then refuses a client
        without a certificate); in TLS 1.3, refuse clearly when our key can make none of
        the handshake signatures the server accepts (tlslite failed with a TypeError, seen
        as a malformed message)."""
        self._aiotls_certificate_requested = True
        self._aiotls_certificate_request = request
        self._aiotls_requested_cas = _ca_names(request, tuple(self.version) > (3, 3))
        requested = request.supported_signature_algs
        credentials = self._aiotls_credentials
        if tuple(self.version) <= (3, 3) or not requested or credentials is None:
            return
        ours = self._sigHashesToList(self._aiotls_settings, *credentials, version=(3, 4))
        if not any(scheme in requested for scheme in ours):
            def names(schemes: Any) -> str:
                return ", ".join(SignatureScheme.toRepr(s) or f"0x{s[0]:02x}{s[1]:02x}"
                                 for s in schemes)
            yield from self._sendError(
                _TLAlert.handshake_failure,
                f"the server asks for a client certificate signing with {names(requested)}, "
                f"and this client's key signs TLS 1.3 handshakes only with {names(ours)}"
                + (" (RSA PKCS#1 v1.5 is not allowed there)"
                   if any(s in _RSA_PKCS1_SCHEMES for s in requested) else ""))

    def _aiotls_check_certificate_verify(self, verify: Any) -> Generator[Any, None, None]:
        """TLS 1.3 client: the server's handshake signature must use a scheme we offered for
        CertificateVerify; rsa_pkcs1_* are offered for certificates only (RFC 8446 4.2.3,
        4.4.3).  tlslite verified any scheme the server chose."""
        if tuple(self.version) <= (3, 3):
            return
        scheme = verify.signatureAlgorithm
        if not self._aiotls_scheme_offered(scheme):
            name = SignatureScheme.toRepr(scheme) or f"0x{scheme[0]:02x}{scheme[1]:02x}"
            yield from self._sendError(
                _TLAlert.illegal_parameter,
                f"the server signed the TLS 1.3 handshake with {name}, which the client did "
                "not offer for handshake signatures"
                + (" (RSA PKCS#1 v1.5 is for certificates only in TLS 1.3)"
                   if scheme in _RSA_PKCS1_SCHEMES else ""))

    def _aiotls_scheme_offered(self, scheme: Any) -> bool:
        """TLS 1.3 client: whether we offered ``scheme`` for the server's CertificateVerify
        (without handshake settings, any is)."""
        settings = self._aiotls_settings
        return settings is None or scheme in self._sigHashesToList(settings, version=(3, 4))

    def _aiotls_scheme_fits(self, settings: Any, scheme: Any, cert_chain: Any) -> bool:
        """TLS 1.3: whether ``scheme`` is one we offered that fits the key of
        ``cert_chain`` (RFC 8446 4.4.3)."""
        valid = self._sigHashesToList(settings, certList=cert_chain, version=(3, 4))
        return tuple(scheme) in [tuple(v) for v in valid]

    def _clientGetKeyFromChain(self, certificate: Any, settings: Any,
                               tack_ext: Any = None) -> Generator[Any, None, None]:
        result: Any = None
        for result in super()._clientGetKeyFromChain(certificate, settings, tack_ext):
            if result in (0, 1):
                yield result
            else:
                break
        scheme = self.serverSigAlg
        # TLS 1.3: the CertificateVerify's scheme (read just before) must be one we offered
        # and fit the certificate's key, as tlslite checks on the server side (RFC 8446
        # 4.4.3); its client took an ECDSA scheme with an RSA key into
        # `publicKey.curve_name` (AttributeError -> internal_error).
        if tuple(self.version) > (3, 3) and scheme is not None and isinstance(result, tuple) \
                and not self._aiotls_scheme_fits(settings, scheme, result[1]):
            yield from self._sendError(
                _TLAlert.illegal_parameter,
                "the server's CertificateVerify uses a signature scheme that it was not "
                "offered or that does not fit the key of its certificate")
        yield result
