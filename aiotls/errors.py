"""The aiotls error hierarchy.

Every error aiotls raises or reports derives from :class:`TLSError`, which is an
:class:`ssl.SSLError`, so code written against the stdlib (``except ssl.SSLError``)
keeps working.  Errors are grouped by *blame*, the way rustls does it:

===========================  ==================================================
class                        who is at fault
===========================  ==================================================
:class:`TLSUsageError`       the local program called the API wrongly
:class:`TLSConfigurationError` the local configuration cannot work
:class:`PeerMisbehaved`      the peer broke the protocol (malformed, unexpected)
:class:`PeerIncompatible`    both sides are valid but share no version/suite/...
:class:`AlertReceived`       the peer aborted the connection with a fatal alert
:class:`CertificateError`    a certificate failed verification (also an
                             :class:`ssl.SSLCertVerificationError`)
:class:`TruncationError`     the transport closed without close_notify (also an
                             :class:`ssl.SSLEOFError`)
===========================  ==================================================

Each error carries three human sentences -- :attr:`~TLSError.what` happened, the
likely :attr:`~TLSError.cause`, and the :attr:`~TLSError.hint` to fix it -- a
stable :attr:`~TLSError.code`, and the TLS :attr:`~TLSError.alert` that was (or
will be) sent to the peer, if any.
"""

from __future__ import annotations

import enum
import ssl

__all__ = [
    "AlertDescription",
    "AlertReceived",
    "CertificateError",
    "PeerIncompatible",
    "PeerMisbehaved",
    "TLSConfigurationError",
    "TLSError",
    "TLSUsageError",
    "TruncationError",
]


class AlertDescription(enum.IntEnum):
    """TLS alert descriptions (RFC 8446 section 6, RFC 5246 section 7.2)."""

    close_notify = 0
    unexpected_message = 10
    bad_record_mac = 20
    decryption_failed = 21
    record_overflow = 22
    decompression_failure = 30
    handshake_failure = 40
    no_certificate = 41
    bad_certificate = 42
    unsupported_certificate = 43
    certificate_revoked = 44
    certificate_expired = 45
    certificate_unknown = 46
    illegal_parameter = 47
    unknown_ca = 48
    access_denied = 49
    decode_error = 50
    decrypt_error = 51
    export_restriction = 60
    protocol_version = 70
    insufficient_security = 71
    internal_error = 80
    inappropriate_fallback = 86
    user_canceled = 90
    no_renegotiation = 100
    missing_extension = 109
    unsupported_extension = 110
    certificate_unobtainable = 111
    unrecognized_name = 112
    bad_certificate_status_response = 113
    bad_certificate_hash_value = 114
    unknown_psk_identity = 115
    certificate_required = 116
    no_application_protocol = 120

    @classmethod
    def name_of(cls, value: int) -> str:
        """The RFC name of an alert number, or ``alert_<n>`` for unknown ones."""
        try:
            return cls(value).name
        except ValueError:
            return f"alert_{value}"


class TLSError(ssl.SSLError):
    """Base class of every aiotls error; an :class:`ssl.SSLError`.

    ``str(err)`` is one paragraph: what happened, the likely cause, and the fix.
    """

    #: Stable identifier for the kind of failure, e.g. ``"certificate-expired"``.
    code: str = "tls-error"
    #: The TLS alert sent to (or received from) the peer for this failure, if any.
    alert: AlertDescription | None
    #: One sentence: what happened.
    what: str
    #: One sentence: the most likely cause.
    cause: str
    #: One sentence: what to do about it.
    hint: str

    def __init__(
        self,
        what: str,
        *,
        cause: str = "",
        hint: str = "",
        alert: int | None = None,
        code: str | None = None,
    ) -> None:
        self.what = what
        self.cause = cause
        self.hint = hint
        self.alert = AlertDescription(alert) if alert is not None and alert in _KNOWN_ALERTS else None
        self.alert_number = alert
        if code is not None:
            self.code = code
        message = what
        if cause:
            message += f"; likely cause: {cause}"
        if hint:
            message += f"; fix: {hint}"
        super().__init__(message)
        # ssl.SSLError attributes, so logging code that reads them keeps working.
        self.reason = self.code.upper().replace("-", "_")
        self.library = "aiotls"

    def __str__(self) -> str:
        return str(self.args[0])

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (type(self), self.what, self.cause, self.hint, self.alert_number, self.code))


def _rebuild(
    cls: type[TLSError], what: str, cause: str, hint: str, alert: int | None, code: str
) -> TLSError:
    err = cls.__new__(cls)
    TLSError.__init__(err, what, cause=cause, hint=hint, alert=alert, code=code)
    return err


_KNOWN_ALERTS = frozenset(int(a) for a in AlertDescription)


class TLSUsageError(TLSError):
    """The local program used the API wrongly (for example, sent data after close())."""

    code = "usage"


class TLSConfigurationError(TLSError):
    """The local configuration cannot work (missing certificate, unreadable file, ...)."""

    code = "configuration"


class PeerMisbehaved(TLSError):
    """The peer sent something the protocol forbids: malformed or unexpected data."""

    code = "peer-misbehaved"


class PeerIncompatible(TLSError):
    """The peer is not broken, but shares no protocol version, cipher suite, group or ALPN
    protocol with us."""

    code = "peer-incompatible"


class AlertReceived(TLSError):
    """The peer aborted the connection with a fatal TLS alert."""

    code = "alert-received"


class CertificateError(TLSError, ssl.SSLCertVerificationError):
    """A certificate failed verification.

    Like :class:`ssl.SSLCertVerificationError` it has :attr:`verify_code` (an
    OpenSSL ``X509_V_ERR_*`` number) and :attr:`verify_message`.
    """

    code = "certificate"

    def __init__(
        self,
        what: str,
        *,
        cause: str = "",
        hint: str = "",
        alert: int | None = AlertDescription.bad_certificate,
        code: str | None = None,
        verify_code: int = 0,
        verify_message: str = "",
    ) -> None:
        super().__init__(what, cause=cause, hint=hint, alert=alert, code=code)
        self.verify_code = verify_code
        self.verify_message = verify_message or what

    def __reduce__(self) -> tuple[object, ...]:
        return (
            _rebuild_cert,
            (type(self), self.what, self.cause, self.hint, self.alert_number, self.code,
             self.verify_code, self.verify_message),
        )


def _rebuild_cert(
    cls: type[CertificateError], what: str, cause: str, hint: str, alert: int | None,
    code: str, verify_code: int, verify_message: str,
) -> CertificateError:
    return cls(what, cause=cause, hint=hint, alert=alert, code=code,
               verify_code=verify_code, verify_message=verify_message)


class TruncationError(TLSError, ssl.SSLEOFError):
    """The transport reached EOF before the peer sent close_notify.

    An attacker who can close TCP connections could otherwise truncate the data
    stream undetected.  HTTP-style peers that close without close_notify can be
    tolerated with ``TLSContext.suppress_ragged_eofs = True``.
    """

    code = "truncated"


# OpenSSL X509_V_ERR_* numbers used as CertificateError.verify_code (same as ssl).
X509_V_ERR_UNSPECIFIED = 1
X509_V_ERR_CERT_SIGNATURE_FAILURE = 7
X509_V_ERR_CERT_NOT_YET_VALID = 9
X509_V_ERR_CERT_HAS_EXPIRED = 10
X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT = 18
X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN = 19
X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY = 20
X509_V_ERR_INVALID_PURPOSE = 26
X509_V_ERR_CERT_REJECTED = 28
X509_V_ERR_HOSTNAME_MISMATCH = 62
X509_V_ERR_IP_ADDRESS_MISMATCH = 64


# --- alert → error translation -----------------------------------------------------------------
#
# For each alert: (likely cause, fix).  Used both when the peer sends us an alert and when the
# engine sends one, so the text is written from the point of view of "the other side".

_A = AlertDescription
_ALERT_ADVICE: dict[int, tuple[str, str]] = {
    _A.unexpected_message: (
        "a message arrived in a state where the protocol forbids it (a buggy peer, or not TLS at all)",
        "check that both ends speak TLS on this port and that nothing rewrites the byte stream",
    ),
    _A.bad_record_mac: (
        "a record failed authentication: the data was corrupted or altered in transit, "
        "or the two sides derived different keys",
        "look for a middlebox altering traffic; retry, and capture the handshake with "
        "'python -m aiotls connect HOST PORT' if it repeats",
    ),
    _A.record_overflow: (
        "a record was longer than TLS allows (2^14 bytes of plaintext)",
        "the sender is broken or is not speaking TLS",
    ),
    _A.handshake_failure: (
        "no cipher suite, key-exchange group or signature algorithm in common, "
        "or a required client certificate was not sent",
        "compare both sides' versions, ciphers and groups (python -m aiotls connect HOST PORT "
        "shows what the server accepts), and load a client certificate if the server asks for one",
    ),
    _A.bad_certificate: (
        "the certificate was rejected as invalid (bad signature, wrong host name, wrong usage)",
        "check the certificate chain and names with 'python -m aiotls certs FILE'",
    ),
    _A.unsupported_certificate: (
        "the certificate's key type or extended key usage is not acceptable for this role",
        "issue a certificate with an RSA, ECDSA or Ed25519 key and the right extended key usage",
    ),
    _A.certificate_revoked: ("the certificate was revoked by its issuer", "obtain a new certificate"),
    _A.certificate_expired: (
        "the certificate is outside its validity period (expired, not yet valid, or a wrong clock)",
        "renew the certificate, or fix the system clock",
    ),
    _A.certificate_unknown: (
        "the certificate was rejected for an unspecified reason",
        "check the certificate chain and names with 'python -m aiotls certs FILE'",
    ),
    _A.illegal_parameter: (
        "a handshake field had a value that is out of range or inconsistent",
        "one TLS stack is buggy; report it with a handshake trace",
    ),
    _A.unknown_ca: (
        "the certificate chain does not lead to a trusted root (unknown or missing CA)",
        "send the full chain (leaf + intermediates) from the certificate side, and load the "
        "issuing CA with load_verify_locations() on the verifying side",
    ),
    _A.access_denied: (
        "the certificate was valid but the peer's policy denies access to it",
        "ask the peer's operator which identities are allowed",
    ),
    _A.decode_error: (
        "a message could not be parsed (malformed, truncated, or not TLS)",
        "check that both ends speak TLS on this port",
    ),
    _A.decrypt_error: (
        "a handshake signature or Finished check failed: wrong private key for the certificate, "
        "or the handshake was tampered with",
        "check that the private key matches the certificate (load_cert_chain verifies this)",
    ),
    _A.protocol_version: (
        "no TLS version in common (aiotls allows TLS 1.2 and 1.3 unless told otherwise)",
        "upgrade the peer, or set minimum_version explicitly if you must talk to a legacy peer",
    ),
    _A.insufficient_security: (
        "the peer requires stronger parameters than we offered",
        "enable stronger cipher suites or groups",
    ),
    _A.internal_error: (
        "the peer hit an internal error unrelated to the protocol",
        "check the peer's logs",
    ),
    _A.inappropriate_fallback: (
        "a version-fallback retry was detected (possible downgrade attack)",
        "do not retry with lower versions; fix the original failure",
    ),
    _A.user_canceled: ("the peer canceled the handshake", "check the peer's logs"),
    _A.no_renegotiation: (
        "renegotiation was requested and refused", "do not use renegotiation; aiotls never does"
    ),
    _A.missing_extension: (
        "a mandatory TLS extension was absent", "one TLS stack is buggy; report it with a trace"
    ),
    _A.unsupported_extension: (
        "an extension appeared that was never offered", "one TLS stack is buggy; report it"
    ),
    _A.unrecognized_name: (
        "the server does not serve the requested host name (SNI)",
        "check server_hostname against the names the server is configured for",
    ),
    _A.unknown_psk_identity: (
        "the pre-shared key identity is unknown", "check the PSK identity on both sides"
    ),
    _A.certificate_required: (
        "the server requires a client certificate and none was sent",
        "load a client certificate with load_cert_chain() on the client context",
    ),
    _A.no_application_protocol: (
        "no ALPN protocol in common",
        "make set_alpn_protocols() on both sides share at least one protocol",
    ),
}

_MISBEHAVED = frozenset({
    _A.unexpected_message, _A.bad_record_mac, _A.decryption_failed, _A.record_overflow,
    _A.decompression_failure, _A.illegal_parameter, _A.decode_error, _A.decrypt_error,
    _A.missing_extension, _A.unsupported_extension, _A.bad_certificate_status_response,
})
_INCOMPATIBLE = frozenset({
    _A.handshake_failure, _A.protocol_version, _A.insufficient_security,
    _A.inappropriate_fallback, _A.unrecognized_name, _A.no_application_protocol,
    _A.unknown_psk_identity, _A.no_renegotiation,
})
_CERTIFICATE = frozenset({
    _A.bad_certificate, _A.unsupported_certificate, _A.certificate_revoked,
    _A.certificate_expired, _A.certificate_unknown, _A.unknown_ca, _A.access_denied,
    _A.certificate_required, _A.no_certificate,
})


def alert_advice(alert: int) -> tuple[str, str]:
    """(likely cause, fix) for an alert number."""
    return _ALERT_ADVICE.get(alert, ("the peer reported an error", "check the peer's logs"))


def error_for_received_alert(alert: int, *, during_handshake: bool) -> AlertReceived:
    """The error for a fatal alert the peer sent us."""
    name = AlertDescription.name_of(alert)
    stage = "during the handshake" if during_handshake else "after the handshake"
    cause, hint = alert_advice(alert)
    if alert in _CERTIFICATE:
        what = f"the peer rejected our certificate with alert {name} ({alert}) {stage}"
        if alert == _A.certificate_required:
            what = f"the peer requires a client certificate (alert {name}, {alert})"
    else:
        what = f"the peer aborted the connection with alert {name} ({alert}) {stage}"
    return AlertReceived(what, cause=cause, hint=hint, alert=alert, code=f"alert-{name.replace('_', '-')}")


def error_for_sent_alert(alert: int, detail: str) -> TLSError:
    """The error for a fatal alert we sent, given the engine's description of the problem."""
    name = AlertDescription.name_of(alert)
    cause, hint = alert_advice(alert)
    what = f"{detail or 'protocol error'} (sent alert {name} to the peer)"
    cls: type[TLSError]
    if alert in _MISBEHAVED:
        cls = PeerMisbehaved
    elif alert in _INCOMPATIBLE:
        cls = PeerIncompatible
    elif alert in _CERTIFICATE:
        return CertificateError(what, cause=cause, hint=hint, alert=alert,
                                code=name.replace("_", "-"), verify_code=X509_V_ERR_UNSPECIFIED)
    else:
        cls = TLSError
    return cls(what, cause=cause, hint=hint, alert=alert, code=name.replace("_", "-"))
