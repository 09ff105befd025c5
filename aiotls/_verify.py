"""Certificate path and identity validation.

Theory of operation
-------------------
tlslite-ng checks nothing about the peer's certificate.  aiotls verifies the chain
*inside* the handshake (the engine calls :meth:`Verifier.verify` from its
certificate hook), so a bad certificate aborts the handshake with the right alert
before Finished, and no session ticket is ever issued to an unverified client.

Path building and signature checks are done by ``cryptography.x509.verification``
(Rust, RFC 5280 + CA/B-style profile).  Its default profile is stricter than
OpenSSL's in ways that reject common private PKIs (critical SAN with a non-empty
subject, missing AKI, critical EKU), so aiotls relaxes exactly those points and
checks the extended key usage itself (serverAuth for servers, clientAuth for
clients; anyExtendedKeyUsage accepted).  Failures are classified into OpenSSL's
``X509_V_ERR_*`` codes and TLS alerts so users get stdlib-compatible errors.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import ipaddress
from collections.abc import Iterable, Sequence
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.x509 import DNSName, IPAddress
from cryptography.x509.oid import ExtendedKeyUsageOID, SignatureAlgorithmOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from . import _crypto
from .errors import (
    X509_V_ERR_CERT_HAS_EXPIRED,
    X509_V_ERR_CERT_NOT_YET_VALID,
    X509_V_ERR_CERT_REJECTED,
    X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT,
    X509_V_ERR_HOSTNAME_MISMATCH,
    X509_V_ERR_INVALID_PURPOSE,
    X509_V_ERR_IP_ADDRESS_MISMATCH,
    X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY,
    AlertDescription,
    CertificateError,
)

_AGNOSTIC = Criticality.AGNOSTIC


def _eku_validator(purpose_oid: x509.ObjectIdentifier, role: str) -> Any:
    def validate(policy: Any, cert: x509.Certificate, ext: x509.ExtendedKeyUsage | None) -> None:
        if ext is None:
            return
        if purpose_oid in ext or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in ext:
            return
        raise ValueError(f"extended key usage does not allow use as a TLS {role}")

    return validate


@functools.cache  # four combinations; policies are immutable
def _ee_policy(role: str, require_san: bool) -> ExtensionPolicy:
    oid = ExtendedKeyUsageOID.SERVER_AUTH if role == "server" else ExtendedKeyUsageOID.CLIENT_AUTH
    base = ExtensionPolicy.webpki_defaults_ee()
    if require_san:
        base = base.require_present(x509.SubjectAlternativeName, _AGNOSTIC, None)
    else:
        base = base.may_be_present(x509.SubjectAlternativeName, _AGNOSTIC, None)
    return (base.may_be_present(x509.AuthorityKeyIdentifier, _AGNOSTIC, None)
            .may_be_present(x509.ExtendedKeyUsage, _AGNOSTIC, _eku_validator(oid, role)))


_CA_POLICY = ExtensionPolicy.webpki_defaults_ca().may_be_present(
    x509.AuthorityKeyIdentifier, _AGNOSTIC, None
)


@functools.lru_cache(maxsize=1024)
def is_ip_address(name: str) -> bool:
    """True if ``name`` is an IPv4 or IPv6 literal (brackets allowed)."""
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


@functools.lru_cache(maxsize=1024)  # subjects are immutable; a client meets few names
def parse_hostname(name: str) -> x509.verification.Subject:
    """A verification subject for a host name or IP address literal."""
    bare = name.strip("[]")
    try:
        return IPAddress(ipaddress.ip_address(bare))
    except ValueError:
        pass
    ascii_name = name.rstrip(".").lower()
    with contextlib.suppress(UnicodeError):
        ascii_name = ascii_name.encode("idna").decode("ascii")
    return DNSName(ascii_name)


def certificate_names(cert: x509.Certificate) -> list[str]:
    """DNS names and IP addresses in the certificate's subjectAltName."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    names: list[str] = list(san.get_values_for_type(x509.DNSName))
    names += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return names


#: Chains a trust store remembers as verified (see :meth:`TrustStore.verified`).
VERIFIED_LIMIT = 64

_VerifiedKey = tuple[str, "str | None", tuple[bytes, ...]]


class TrustStore:
    """A de-duplicated set of trust anchors, and the chains verified against them lately.

    A chain verified once is verified again, to the same result, as long as nothing it
    depends on changes: the same certificates (DER bytes), the same peer role and host
    name, the same anchors, and a time inside every path certificate's validity.  The
    store remembers the last :data:`VERIFIED_LIMIT` such paths with that time window;
    outside the window, or for anything else, the chain is verified in full (so every
    failure is found and explained as before).  Adding anchors forgets them all.  A
    client reconnecting to the same server saves the path building and signature checks
    (about 100 us of its handshake); nothing else is cached (aiotls checks no revocation).
    """

    def __init__(self) -> None:
        self._certs: dict[x509.Certificate, None] = {}
        self._store: Store | None = None
        #: (role, host name, chain DER) -> (path, valid from, valid until)
        self._verified: dict[_VerifiedKey, tuple[tuple[x509.Certificate, ...],
                                                 datetime.datetime, datetime.datetime]] = {}

    def add(self, certs: Iterable[x509.Certificate]) -> int:
        added = 0
        for cert in certs:
            if cert not in self._certs:
                self._certs[cert] = None
                added += 1
        if added:
            self._store = None
            self._verified = {}
        return added

    def verified(self, key: _VerifiedKey, now: datetime.datetime) -> list[x509.Certificate] | None:
        """The path of a chain verified lately under ``key``, if ``now`` is inside the
        validity of every certificate on it; else None."""
        found = self._verified.get(key)
        if found is None:
            return None
        path, start, end = found
        return list(path) if start <= now <= end else None

    def remember(self, key: _VerifiedKey, path: Sequence[x509.Certificate]) -> None:
        """Remember a verified path (the oldest one goes beyond :data:`VERIFIED_LIMIT`)."""
        if not path:
            return
        verified = self._verified
        if len(verified) >= VERIFIED_LIMIT:
            with contextlib.suppress(KeyError, RuntimeError, StopIteration):
                del verified[next(iter(verified))]
        verified[key] = (tuple(path), max(c.not_valid_before_utc for c in path),
                         min(c.not_valid_after_utc for c in path))

    def __len__(self) -> int:
        return len(self._certs)

    def certificates(self) -> list[x509.Certificate]:
        return list(self._certs)

    def store(self) -> Store | None:
        if self._store is None and self._certs:
            self._store = Store(list(self._certs))
        return self._store


def _utc(dt: datetime.datetime) -> datetime.datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=datetime.UTC)


def _fmt_time(dt: datetime.datetime) -> str:
    return _utc(dt).strftime("%Y-%m-%d %H:%M:%S UTC")


def _subject(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or "(empty subject)"


def verify_chain(
    chain_der: Sequence[bytes],
    *,
    trust: TrustStore,
    role: str,
    hostname: str | None,
    now: datetime.datetime,
) -> list[x509.Certificate]:
    """Verify a peer chain (leaf first).

    ``role`` is what the peer is: ``"server"`` or ``"client"``.  ``hostname`` is
    checked against the leaf's subjectAltName when given.  Returns the verified
    path (leaf to anchor); raises :class:`CertificateError` (also for certificates
    too malformed to examine).  A chain ``trust`` verified lately is not verified again
    (see :class:`TrustStore`).
    """
    peer = "server" if role == "server" else "client"
    now = _utc(now)
    key = (role, hostname, tuple(bytes(der) for der in chain_der))
    path = trust.verified(key, now)
    if path is not None:
        return path
    try:
        path = _verify_chain(chain_der, trust=trust, role=role, hostname=hostname, now=now)
        trust.remember(key, path)
        return path
    except CertificateError:  # (it is also a ValueError, like ssl.SSLCertVerificationError)
        raise
    except (ValueError, KeyError, TypeError, UnicodeError) as exc:
        raise CertificateError(
            f"the {peer}'s certificate chain is malformed: {exc}",
            cause="a certificate field that cannot be decoded",
            hint=f"re-issue the {peer} certificate",
            alert=AlertDescription.bad_certificate, code="certificate-malformed",
            verify_code=X509_V_ERR_CERT_REJECTED,
        ) from None


def _verify_chain(
    chain_der: Sequence[bytes],
    *,
    trust: TrustStore,
    role: str,
    hostname: str | None,
    now: datetime.datetime,
) -> list[x509.Certificate]:
    peer = "server" if role == "server" else "client"
    if not chain_der:
        raise CertificateError(
            f"the {peer} sent no certificate",
            cause=f"the {peer} is not configured with a certificate"
            + (", or has none that matches the signature algorithms or certificate "
               "authorities this server requested" if role == "client" else ""),
            hint=f"configure a certificate on the {peer} (load_cert_chain)"
            + (" issued by a CA this server trusts, whose signatures use RSA (PKCS#1 v1.5 or "
               "PSS) or ECDSA with SHA-256/384/512" if role == "client" else ""),
            alert=AlertDescription.certificate_required if role == "client"
            else AlertDescription.bad_certificate,
            code="certificate-missing", verify_code=X509_V_ERR_CERT_REJECTED,
        )
    try:
        certs = [_crypto.load_der_certificate(der) for der in chain_der]
    except ValueError as exc:
        raise CertificateError(
            f"the {peer}'s certificate could not be parsed: {exc}",
            cause="a malformed or non-X.509 certificate",
            hint=f"re-issue the {peer} certificate",
            alert=AlertDescription.bad_certificate, code="certificate-malformed",
            verify_code=X509_V_ERR_CERT_REJECTED,
        ) from None
    leaf, intermediates = certs[0], certs[1:]
    now = _utc(now)

    if leaf.not_valid_after_utc < now:
        raise CertificateError(
            f"the {peer}'s certificate for {_subject(leaf)} expired on "
            f"{_fmt_time(leaf.not_valid_after_utc)}",
            cause="the certificate was not renewed, or this machine's clock is wrong",
            hint=f"renew the {peer} certificate (current time here: {_fmt_time(now)})",
            alert=AlertDescription.certificate_expired, code="certificate-expired",
            verify_code=X509_V_ERR_CERT_HAS_EXPIRED, verify_message="certificate has expired",
        )
    if leaf.not_valid_before_utc > now:
        raise CertificateError(
            f"the {peer}'s certificate for {_subject(leaf)} is not valid until "
            f"{_fmt_time(leaf.not_valid_before_utc)}",
            cause="the certificate was issued with a future start date, or a clock is wrong",
            hint=f"check the clocks of this machine and the {peer} (here: {_fmt_time(now)})",
            alert=AlertDescription.certificate_expired, code="certificate-not-yet-valid",
            verify_code=X509_V_ERR_CERT_NOT_YET_VALID, verify_message="certificate is not yet valid",
        )

    store = trust.store()
    if store is None:
        raise CertificateError(
            f"cannot verify the {peer}'s certificate for {_subject(leaf)}: no trusted CA "
            "certificates are loaded",
            cause="the context has an empty trust store",
            hint="call load_verify_locations(cafile=...) or load_default_certs() on the context, "
            "or use create_default_context()",
            alert=AlertDescription.unknown_ca, code="certificate-no-trust-anchors",
            verify_code=X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY,
            verify_message="unable to get local issuer certificate",
        )

    builder = PolicyBuilder().store(store).time(now).max_chain_depth(8)
    subject = parse_hostname(hostname) if hostname else None
    try:
        if subject is not None:
            verifier_s = builder.extension_policies(
                ca_policy=_CA_POLICY, ee_policy=_ee_policy(role, require_san=True)
            ).build_server_verifier(subject)
            return list(verifier_s.verify(leaf, intermediates))
        verifier_c = builder.extension_policies(
            ca_policy=_CA_POLICY, ee_policy=_ee_policy(role, require_san=False)
        ).build_client_verifier()
        return list(verifier_c.verify(leaf, intermediates).chain)
    except VerificationError as exc:
        # (cryptography's message is shown as detail, never parsed: what failed is found
        # out from the certificates themselves, see _classify)
        detail = str(exc).split(" (encountered processing", 1)[0]
        try:
            error = _classify(detail, leaf, intermediates, peer, role, hostname, subject,
                              trust, now)
        except Exception:
            # A malformed certificate can make any accessor raise (a duplicate extension,
            # a bad encoding): the verifier refused it, and it is simply invalid.
            error = _invalid(peer, leaf, detail)
        raise error from None


#: Signature algorithms of the Web PKI profile cryptography's verifier applies.
_PERMITTED_SIGNATURES = frozenset({
    SignatureAlgorithmOID.RSA_WITH_SHA256, SignatureAlgorithmOID.RSA_WITH_SHA384,
    SignatureAlgorithmOID.RSA_WITH_SHA512, SignatureAlgorithmOID.RSASSA_PSS,
    SignatureAlgorithmOID.ECDSA_WITH_SHA256, SignatureAlgorithmOID.ECDSA_WITH_SHA384,
    SignatureAlgorithmOID.ECDSA_WITH_SHA512,
})
_PERMITTED_CURVES = frozenset({"secp256r1", "secp384r1", "secp521r1"})


@functools.cache  # two combinations; policies are immutable
def _ee_policy_any_purpose(require_san: bool) -> ExtensionPolicy:
    """:func:`_ee_policy` without the extended key usage check."""
    base = ExtensionPolicy.webpki_defaults_ee()
    if require_san:
        base = base.require_present(x509.SubjectAlternativeName, _AGNOSTIC, None)
    else:
        base = base.may_be_present(x509.SubjectAlternativeName, _AGNOSTIC, None)
    return (base.may_be_present(x509.AuthorityKeyIdentifier, _AGNOSTIC, None)
            .may_be_present(x509.ExtendedKeyUsage, _AGNOSTIC, None))


def _name_is_the_fault(leaf: x509.Certificate, subject: Any, now: datetime.datetime) -> bool:
    """Whether the leaf alone -- trusted as its own anchor, its purpose aside -- passes when
    no name is asked for, but not for ``subject``: then the name is what failed.  (The name
    matching itself stays the verifier's: RFC 6125 is not written out twice.)"""
    def builder(require_san: bool) -> Any:
        return PolicyBuilder().store(Store([leaf])).time(now).extension_policies(
            ca_policy=_CA_POLICY, ee_policy=_ee_policy_any_purpose(require_san))
    try:
        builder(False).build_client_verifier().verify(leaf, [])
    except VerificationError:
        return False
    try:
        builder(True).build_server_verifier(subject).verify(leaf, [])
    except VerificationError:
        return True
    return False


def _purpose_refused(leaf: x509.Certificate, role: str) -> bool:
    """The leaf's extendedKeyUsage excludes its role (what _eku_validator refuses)."""
    try:
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False
    oid = ExtendedKeyUsageOID.SERVER_AUTH if role == "server" else ExtendedKeyUsageOID.CLIENT_AUTH
    return oid not in eku and ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in eku


def _unsupported_algorithm(leaf: x509.Certificate,
                           intermediates: list[x509.Certificate]) -> str | None:
    """The algorithm outside the Web PKI profile that a signature in the chain uses, or a
    CA key among the intermediates has (the leaf's own key may be anything)."""
    for cert in (leaf, *intermediates):
        oid = cert.signature_algorithm_oid
        if oid not in _PERMITTED_SIGNATURES:
            return _ALGORITHM_NAMES.get(oid, "an algorithm outside the Web PKI profile")
    for cert in intermediates:
        kind = _crypto.key_description(cert.public_key())  # RSA-2048, ECDSA-secp256r1, ...
        if kind in ("Ed25519", "Ed448"):
            return kind
        if not kind.startswith("RSA-") and kind.removeprefix("ECDSA-") not in _PERMITTED_CURVES:
            return "an algorithm outside the Web PKI profile"
    return None


_ALGORITHM_NAMES = {SignatureAlgorithmOID.ED25519: "Ed25519", SignatureAlgorithmOID.ED448: "Ed448"}


def _reaches_anchor(leaf: x509.Certificate, intermediates: list[x509.Certificate],
                    anchors: list[x509.Certificate]) -> bool:
    """Whether some chain of issuer signatures leads from the leaf, through the certificates
    the peer sent, to a trust anchor (validity and extensions aside)."""
    seen: set[x509.Certificate] = set()
    todo = [leaf]
    while todo:
        cert = todo.pop()
        for issuer in (*anchors, *intermediates):
            if issuer.subject != cert.issuer or issuer in seen:
                continue
            try:
                cert.verify_directly_issued_by(issuer)
            except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
                continue
            if issuer in anchors:
                return True
            seen.add(issuer)
            todo.append(issuer)
    return False


def _classify(
    detail: str,
    leaf: x509.Certificate,
    intermediates: list[x509.Certificate],
    peer: str,
    role: str,
    hostname: str | None,
    subject: Any,
    trust: TrustStore,
    now: datetime.datetime,
) -> CertificateError:
    """The error for a chain the verifier refused, found out by examining the chain (the
    verifier's message is only shown, as ``detail``): the first of name, purpose,
    self-signed, algorithm, expired intermediate, unknown CA that applies, else a
    violation of the X.509 profile."""
    if subject is not None and _name_is_the_fault(leaf, subject, now):
        names = certificate_names(leaf)
        shown = ", ".join(repr(n) for n in names) or "no names at all"
        is_ip = isinstance(subject, IPAddress)
        kind = "IP address" if is_ip else "host"
        return CertificateError(
            f"certificate for {shown} does not match the requested {kind} {hostname!r}",
            cause=f"the client asked for a name the {peer} certificate does not list in its "
            "subjectAltName (no common-name fallback)",
            hint="connect with a name listed in the certificate, or fix server_hostname, "
            "or re-issue the certificate with this name",
            alert=AlertDescription.bad_certificate,
            code="ip-address-mismatch" if is_ip else "hostname-mismatch",
            verify_code=X509_V_ERR_IP_ADDRESS_MISMATCH if is_ip else X509_V_ERR_HOSTNAME_MISMATCH,
            verify_message=f"{'IP address' if is_ip else 'Hostname'} mismatch, certificate is "
            f"not valid for {hostname!r}.",
        )
    if _purpose_refused(leaf, role):
        return CertificateError(
            f"the {peer}'s certificate for {_subject(leaf)} may not be used as a TLS {peer} "
            "certificate",
            cause=f"its extendedKeyUsage lacks {'serverAuth' if peer == 'server' else 'clientAuth'}",
            hint=f"re-issue the certificate with the {'serverAuth' if peer == 'server' else 'clientAuth'} "
            "extended key usage",
            alert=AlertDescription.unsupported_certificate, code="certificate-wrong-purpose",
            verify_code=X509_V_ERR_INVALID_PURPOSE, verify_message="unsupported certificate purpose",
        )
    if _crypto.certificate_is_self_issued_and_signed(leaf):
        return CertificateError(
            f"the {peer}'s certificate for {_subject(leaf)} is self-signed and not trusted",
            cause="a self-signed certificate is trusted only if it is loaded as a trust anchor",
            hint="load this certificate with load_verify_locations(), or issue it from a CA you "
            "trust",
            alert=AlertDescription.unknown_ca, code="certificate-self-signed",
            verify_code=X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT,
            verify_message="self-signed certificate",
        )
    algo = _unsupported_algorithm(leaf, intermediates)
    if algo is not None:
        return CertificateError(
            f"the {peer}'s certificate chain for {_subject(leaf)} uses {algo} for a CA key or "
            "signature, which aiotls's verifier does not accept",
            cause="certificate paths are validated with the Web PKI profile: CA keys and "
            "signatures must be RSA (2048+ bits) or ECDSA P-256/P-384/P-521 (Ed25519 leaf keys "
            "are fine)",
            hint="issue the chain from an RSA or ECDSA CA",
            alert=AlertDescription.unsupported_certificate, code="certificate-unsupported-algorithm",
            verify_code=X509_V_ERR_CERT_REJECTED, verify_message=detail,
        )
    expired = [c for c in intermediates if c.not_valid_after_utc < now]
    if not expired and not _reaches_anchor(leaf, intermediates, trust.certificates()):
        return CertificateError(
            f"the {peer}'s certificate for {_subject(leaf)} (issued by "
            f"{leaf.issuer.rfc4514_string()}) does not chain to a trusted CA",
            cause=f"the issuing CA is not in this side's trust store, or the {peer} did not send "
            "its intermediate certificates",
            hint="load the issuing CA with load_verify_locations(), and have the "
            f"{peer} send its full chain (leaf + intermediates)",
            alert=AlertDescription.unknown_ca, code="certificate-unknown-ca",
            verify_code=X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY,
            verify_message="unable to get local issuer certificate",
        )
    if expired:
        return CertificateError(
            f"an intermediate certificate sent by the {peer} ({_subject(expired[0])}) expired on "
            f"{_fmt_time(expired[0].not_valid_after_utc)}",
            cause=f"the {peer} sends an outdated intermediate certificate",
            hint=f"update the intermediate certificates in the {peer}'s chain file",
            alert=AlertDescription.certificate_expired, code="certificate-expired",
            verify_code=X509_V_ERR_CERT_HAS_EXPIRED, verify_message="certificate has expired",
        )
    return _invalid(peer, leaf, detail)


def _invalid(peer: str, leaf: x509.Certificate, detail: str) -> CertificateError:
    """The error for a chain that violates the X.509 profile in a way not named above."""
    try:
        who = f" for {_subject(leaf)}"
    except Exception:  # (malformed: see _verify_chain)
        who = ""
    return CertificateError(
        f"the {peer}'s certificate{who} failed verification: {detail}",
        cause="the certificate or its chain violates the X.509 profile (RFC 5280)",
        hint="inspect the chain with 'python -m aiotls certs FILE' and re-issue the offending "
        "certificate",
        alert=AlertDescription.bad_certificate, code="certificate-invalid",
        verify_code=X509_V_ERR_CERT_REJECTED, verify_message=detail,
    )


# --- getpeercert() -----------------------------------------------------------------------------

_ATTR_NAMES = {
    "2.5.4.3": "commonName", "2.5.4.6": "countryName", "2.5.4.7": "localityName",
    "2.5.4.8": "stateOrProvinceName", "2.5.4.10": "organizationName",
    "2.5.4.11": "organizationalUnitName", "1.2.840.113549.1.9.1": "emailAddress",
    "2.5.4.5": "serialNumber", "2.5.4.9": "streetAddress", "2.5.4.17": "postalCode",
    "0.9.2342.19200300.100.1.25": "domainComponent", "0.9.2342.19200300.100.1.1": "userId",
    "2.5.4.4": "surname", "2.5.4.42": "givenName", "2.5.4.12": "title",
    "1.3.6.1.4.1.311.60.2.1.3": "jurisdictionCountryName", "2.5.4.15": "businessCategory",
}


def _name_tuple(name: x509.Name) -> tuple[tuple[tuple[str, str], ...], ...]:
    out = []
    for rdn in name.rdns:
        out.append(tuple(
            (_ATTR_NAMES.get(a.oid.dotted_string, a.oid.dotted_string),
             a.value if isinstance(a.value, str) else a.value.hex())
            for a in rdn
        ))
    return tuple(out)


def _ssl_time(dt: datetime.datetime) -> str:
    dt = _utc(dt)
    return f"{dt.strftime('%b')} {dt.day:>2} {dt.strftime('%H:%M:%S %Y')} GMT"


def _ssl_serial(serial: int) -> str:
    """The serial number as OpenSSL prints it: upper-case hex, an even number of digits."""
    text = f"{serial:X}"
    return "0" + text if len(text) % 2 else text


def _ssl_ip(ip: Any) -> str:
    """An IP address spelled as OpenSSL/``ssl`` does: IPv6 as eight uncompressed hex groups."""
    if getattr(ip, "version", 4) == 6:
        packed = ip.packed
        return ":".join(f"{(packed[i] << 8) | packed[i + 1]:X}" for i in range(0, 16, 2))
    return str(ip)


def peercert_dict(der: bytes) -> dict[str, Any]:
    """The certificate in the dict shape of :meth:`ssl.SSLSocket.getpeercert`."""
    cert = _crypto.load_der_certificate(der)
    info: dict[str, Any] = {
        "subject": _name_tuple(cert.subject),
        "issuer": _name_tuple(cert.issuer),
        "version": cert.version.value + 1,
        "serialNumber": _ssl_serial(cert.serial_number),
        "notBefore": _ssl_time(cert.not_valid_before_utc),
        "notAfter": _ssl_time(cert.not_valid_after_utc),
    }
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    if san is not None:
        alt: list[tuple[str, str]] = []
        for gn in san:
            if isinstance(gn, x509.DNSName):
                alt.append(("DNS", gn.value))
            elif isinstance(gn, x509.IPAddress):
                alt.append(("IP Address", _ssl_ip(gn.value)))
            elif isinstance(gn, x509.RFC822Name):
                alt.append(("email", gn.value))
            elif isinstance(gn, x509.UniformResourceIdentifier):
                alt.append(("URI", gn.value))
        info["subjectAltName"] = tuple(alt)
    try:
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
        ocsp = tuple(d.access_location.value for d in aia
                     if d.access_method == x509.oid.AuthorityInformationAccessOID.OCSP)
        issuers = tuple(d.access_location.value for d in aia
                        if d.access_method == x509.oid.AuthorityInformationAccessOID.CA_ISSUERS)
        if ocsp:
            info["OCSP"] = ocsp
        if issuers:
            info["caIssuers"] = issuers
    except x509.ExtensionNotFound:
        pass
    try:
        crl = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
        points = tuple(n.value for dp in crl for n in (dp.full_name or ()))
        if points:
            info["crlDistributionPoints"] = points
    except x509.ExtensionNotFound:
        pass
    return info
