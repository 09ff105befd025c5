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
:class:`InternalError`       aiotls itself failed (a bug: please report it)
===========================  ==================================================

:class:`HandshakeTimeoutError` and :class:`ShutdownTimeoutError` (asyncio) report time
limits rather than blame.

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
    "HandshakeTimeoutError",
    "InternalError",
    "PeerIncompatible",
    "PeerMisbehaved",
    "ShutdownTimeoutError",
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
    """The peer ended the connection with a TLS alert: a fatal one, or a warning that the
    protocol still treats as fatal (TLS 1.3 does for every alert but close_notify and
    user_canceled)."""

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

    @classmethod
    def without_close_notify(cls, tolerate: str) -> TruncationError:
        """The error for a clean TCP close that lacked close_notify; ``tolerate`` names
        how this adapter tolerates such peers (its knob)."""
        return cls(
            "the peer closed the connection without sending close_notify",
            cause="the peer's TLS stack skips close_notify (common for HTTPS servers), "
            "or an attacker truncated the data stream",
            hint=f"if the application protocol marks its own message ends (HTTP with "
            f"Content-Length), {tolerate}",
            code="truncated",
        )


class InternalError(TLSError):
    """aiotls itself failed: a bug in aiotls (or tlslite-ng), not the peer's input nor the
    local configuration.  The connection ends with an internal_error alert."""

    code = "internal-error"


class HandshakeTimeoutError(TLSError, ConnectionAbortedError):
    """The TLS handshake did not finish within ``ssl_handshake_timeout`` (asyncio adapter);
    a :class:`ConnectionAbortedError`, as the stdlib's asyncio raises then."""

    code = "handshake-timeout"

    @classmethod
    def after(cls, seconds: float) -> HandshakeTimeoutError:
        """The error for a handshake still unfinished after ``seconds``."""
        return cls(
            f"the TLS handshake did not complete within {seconds:g} seconds",
            cause="the peer is silent or very slow, does not speak TLS on this port, or a "
            "firewall drops the packets",
            hint="check the host and port ('python -m aiotls connect HOST PORT'), or raise "
            "ssl_handshake_timeout",
        )


class ShutdownTimeoutError(TLSError, TimeoutError):
    """The peer did not answer our close_notify within ``ssl_shutdown_timeout`` (asyncio
    adapter); the transport was then aborted.  Also a :class:`TimeoutError`."""

    code = "shutdown-timeout"

    @classmethod
    def after(cls, seconds: float) -> ShutdownTimeoutError:
        """The error for a close_notify still unanswered after ``seconds``."""
        return cls(
            f"the peer did not answer close_notify within {seconds:g} seconds",
            cause="the peer stopped reading, or does not send close_notify when closing",
            hint="this is harmless for most protocols; lower ssl_shutdown_timeout, or use "
            "abort() when you do not need a clean TLS close",
        )


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


_A = AlertDescription
_TRACE = "'python -m aiotls connect --trace HOST PORT'"
_CERTS = "'python -m aiotls certs FILE'"

# --- alert → error translation -----------------------------------------------------------------
#
# For each alert, (likely cause, fix) in two directions (RFC 8446 6.2 says what each alert
# means; the sender is the side that found the fault):
#
# * _SENT_ADVICE: this side sent the alert, so the fault it names is in what the *peer*
#   sent (or, for certificates, the peer's certificate); the fix is on the peer, or in this
#   side's settings where they are what refused it.
# * _RECEIVED_ADVICE: the peer sent it, so the fault is in what *this side* sent; the fix is
#   in this side's configuration, or a report to aiotls for protocol errors.
#
# Every cause names a side ("the peer", "this side") and every fix says what to change
# where (tests/test_versions_and_bounds.py checks each alert).

_SENT_ADVICE: dict[int, tuple[str, str]] = {
    _A.close_notify: (
        "this side closed the connection", "nothing to fix: this is an orderly close"),
    _A.unexpected_message: (
        "the peer sent a message the protocol forbids at that point (a buggy peer, or a peer "
        "not speaking TLS)",
        "check that the peer speaks TLS on this port and that nothing between the two ends "
        "rewrites the byte stream",
    ),
    _A.bad_record_mac: (
        "a record from the peer failed authentication: it was corrupted or altered in "
        "transit, or the two sides derived different keys",
        f"look for a middlebox altering traffic; if it repeats, capture a trace with {_TRACE} "
        "and report it with the peer's TLS library",
    ),
    _A.decryption_failed: (
        "a record from the peer could not be decrypted (an obsolete TLS 1.0 alert)",
        "upgrade the peer's TLS implementation",
    ),
    _A.record_overflow: (
        "the peer sent a record longer than TLS allows (2^14 bytes of plaintext)",
        "the peer's TLS implementation is broken, or it is not speaking TLS: check it",
    ),
    _A.decompression_failure: (
        "the peer sent compressed data (TLS compression is obsolete and never negotiated)",
        "upgrade the peer's TLS implementation",
    ),
    _A.handshake_failure: (
        "the peer offered no cipher suite, key-exchange group or signature algorithm that "
        "this side accepts",
        "compare the peer's offer with this side's set_ciphers() and set_groups(); widen "
        "them only if the peer cannot be upgraded",
    ),
    _A.no_certificate: (
        "the peer sent no certificate (an obsolete SSL 3.0 alert)",
        "load a certificate on the peer",
    ),
    _A.bad_certificate: (
        "the peer's certificate was rejected as invalid (bad signature, wrong host name, "
        "wrong usage)",
        f"fix the peer's certificate (inspect it with {_CERTS}), or this side's "
        "server_hostname if the name is what differs",
    ),
    _A.unsupported_certificate: (
        "the peer's certificate has a key type or extended key usage this side does not "
        "accept for its role",
        "give the peer a certificate with an RSA (2048+ bits), ECDSA or Ed25519 key and the "
        "extended key usage of its role (serverAuth or clientAuth)",
    ),
    _A.certificate_revoked: (
        "the peer's certificate was revoked by its issuer",
        "the peer needs a new certificate",
    ),
    _A.certificate_expired: (
        "the peer's certificate is outside its validity period (expired or not yet valid), "
        "or this machine's clock is wrong",
        "renew the peer's certificate, or fix this machine's clock",
    ),
    _A.certificate_unknown: (
        "the peer's certificate was rejected (the message says why)",
        f"check the peer's certificate chain and names with {_CERTS}",
    ),
    _A.illegal_parameter: (
        "the peer sent a handshake field whose value is out of range or inconsistent with "
        "the rest of the handshake (a buggy peer, or altered traffic)",
        f"report it to the peer's TLS vendor with a trace ({_TRACE}), and look for a "
        "middlebox altering traffic",
    ),
    _A.unknown_ca: (
        "the peer's certificate chain does not lead to a CA this side trusts (an unknown "
        "CA, or intermediates the peer did not send)",
        "load the issuing CA on this side with load_verify_locations(), and have the peer "
        "send its full chain (leaf + intermediates)",
    ),
    _A.access_denied: (
        "the peer's certificate is valid but this side's policy does not admit it",
        "admit that identity in this side's policy, or give the peer an identity it admits",
    ),
    _A.decode_error: (
        "the peer sent a message that could not be parsed (malformed, truncated, or not TLS)",
        "check that the peer speaks TLS on this port; if it does, its TLS implementation "
        "is buggy: report it to its vendor",
    ),
    _A.decrypt_error: (
        "the peer's handshake signature or Finished value did not verify: the peer's "
        "private key does not match its certificate, or the handshake was tampered with",
        "check the peer's key and certificate pair, and look for a middlebox altering "
        "the handshake",
    ),
    _A.export_restriction: (
        "the peer negotiated an export-grade parameter (an obsolete SSL 3.0 alert)",
        "upgrade the peer's TLS implementation",
    ),
    _A.protocol_version: (
        "the peer supports no protocol version this side allows (TLS 1.2 and 1.3 unless "
        "told otherwise)",
        "upgrade the peer to TLS 1.2 or 1.3; only if you must talk to it, lower "
        "minimum_version on this side's context",
    ),
    _A.insufficient_security: (
        "the peer offered only parameters weaker than this side requires (groups, key "
        "sizes, the extended master secret)",
        "configure the peer for stronger groups, keys or extensions; this side's "
        "requirements protect the connection and should stay",
    ),
    _A.internal_error: (
        "this side hit an internal error unrelated to the peer's input",
        f"report it to aiotls with a trace ({_TRACE})",
    ),
    _A.inappropriate_fallback: (
        "the peer retried with a lower protocol version than both sides support "
        "(TLS_FALLBACK_SCSV): a downgrade attack, or a client falling back after another "
        "failure",
        "fix the client's first failure instead of letting it retry with lower versions",
    ),
    _A.user_canceled: (
        "this side's application canceled the handshake",
        "nothing to fix if the cancellation was intended; otherwise see why the "
        "application gave up (a timeout, a close)",
    ),
    _A.no_renegotiation: (
        "the peer asked to renegotiate, which aiotls never does",
        "turn renegotiation off on the peer (TLS 1.3 has none; aiotls refuses it in TLS 1.2)",
    ),
    _A.missing_extension: (
        "the peer's message lacks an extension TLS requires there (key_share, "
        "supported_groups, signature_algorithms...)",
        "the peer's TLS implementation is buggy or misconfigured: report it to its vendor",
    ),
    _A.unsupported_extension: (
        "the peer sent an extension this side never offered, or one not allowed in that "
        "message",
        "the peer's TLS implementation is buggy: report it to its vendor",
    ),
    _A.certificate_unobtainable: (
        "a certificate the peer referred to by URL could not be fetched (RFC 6066)",
        "have the peer send its certificate itself",
    ),
    _A.unrecognized_name: (
        "the peer asked for a host name (SNI) this server is not configured for",
        "configure this server for that name, or have the client connect with a name "
        "this server serves",
    ),
    _A.bad_certificate_status_response: (
        "the peer's OCSP status response (RFC 6066) was invalid",
        "fix the peer's OCSP stapling",
    ),
    _A.bad_certificate_hash_value: (
        "a certificate the peer referred to did not match its hash (RFC 6066)",
        "have the peer send its certificate itself",
    ),
    _A.unknown_psk_identity: (
        "the peer offered a pre-shared key identity this side does not know",
        "configure the same PSK identity on the peer and on this side",
    ),
    _A.certificate_required: (
        "the peer (a client) sent no certificate, and this server requires one",
        "load a client certificate on the peer, or set verify_mode = ssl.CERT_OPTIONAL on "
        "this server's context",
    ),
    _A.no_application_protocol: (
        "the peer offered no ALPN protocol this side accepts",
        "make set_alpn_protocols() on both sides share at least one protocol",
    ),
}

_RECEIVED_ADVICE: dict[int, tuple[str, str]] = {
    _A.close_notify: (
        "the peer closed the connection", "nothing to fix: this is an orderly close"),
    _A.unexpected_message: (
        "the peer got a message from this side in a state where it forbids it (a buggy "
        "peer, or something rewriting the byte stream)",
        "check that this side talks to a TLS endpoint on that port, look for a proxy "
        f"rewriting traffic, and report it with a trace ({_TRACE}) if it repeats",
    ),
    _A.bad_record_mac: (
        "a record from this side failed the peer's authentication check: altered in "
        "transit, or the two sides derived different keys",
        f"look for a middlebox altering traffic; if it repeats, capture a trace with {_TRACE} "
        "and report it to aiotls with the peer's TLS library",
    ),
    _A.decryption_failed: (
        "the peer could not decrypt a record from this side (an obsolete TLS 1.0 alert)",
        "upgrade the peer's TLS implementation",
    ),
    _A.record_overflow: (
        "the peer received a record from aiotls longer than it accepts: it may limit record "
        "sizes (record_size_limit, RFC 8449, or max_fragment_length) in a way aiotls did not "
        "honour, or something between the two ends altered the records",
        "check for a proxy or load balancer rewriting TLS records; if there is none, report "
        "it to aiotls with the peer's TLS library and version",
    ),
    _A.decompression_failure: (
        "the peer reported a decompression failure (an obsolete alert: aiotls never "
        "compresses)",
        "report it with the peer's TLS library",
    ),
    _A.handshake_failure: (
        "the peer found no cipher suite, key-exchange group or signature algorithm in "
        "common with what this side offered, or it requires a client certificate this "
        "side did not send",
        f"compare this side's set_ciphers() and set_groups() with what the peer accepts "
        f"({_TRACE} shows a server's choice), and load a client certificate with "
        "load_cert_chain() if the peer asks for one",
    ),
    _A.no_certificate: (
        "the peer did not get a certificate from this side (an obsolete SSL 3.0 alert)",
        "load a certificate on this side with load_cert_chain()",
    ),
    _A.bad_certificate: (
        "the peer rejected this side's certificate as invalid (bad signature, wrong name, "
        "wrong usage)",
        f"check this side's certificate and chain with {_CERTS} against the name the peer "
        "expects",
    ),
    _A.unsupported_certificate: (
        "the peer does not accept the key type or extended key usage of this side's "
        "certificate",
        "give this side a certificate with a key type the peer supports (RSA or ECDSA are "
        "the most widely accepted) and the extended key usage of its role",
    ),
    _A.certificate_revoked: (
        "the peer considers this side's certificate revoked",
        "obtain a new certificate for this side",
    ),
    _A.certificate_expired: (
        "the peer finds this side's certificate expired or not yet valid (or the peer's "
        "clock is wrong)",
        f"renew this side's certificate (check its dates with {_CERTS}), or have the peer's "
        "clock fixed",
    ),
    _A.certificate_unknown: (
        "the peer rejected this side's certificate without saying why",
        f"check this side's certificate chain and names with {_CERTS}, and ask the peer's "
        "operator which certificates it accepts",
    ),
    _A.illegal_parameter: (
        "the peer found a field sent by this side out of range or inconsistent (or the "
        "traffic was altered)",
        f"report it to aiotls with a trace ({_TRACE}) and the peer's TLS library, and look "
        "for a middlebox altering traffic",
    ),
    _A.unknown_ca: (
        "the peer does not trust the CA that issued this side's certificate, or this side "
        "did not send the intermediate certificates",
        "send the full chain from this side (leaf + intermediates in the file given to "
        "load_cert_chain()), and have the peer trust the issuing CA",
    ),
    _A.access_denied: (
        "the peer accepted this side's certificate but its policy denies access",
        "ask the peer's operator which identities are allowed, and use one of them here",
    ),
    _A.decode_error: (
        "the peer could not parse a message from this side (or something between the two "
        "ends altered it)",
        f"check for a proxy rewriting traffic; if there is none, report it to aiotls with a "
        f"trace ({_TRACE}) and the peer's TLS library",
    ),
    _A.decrypt_error: (
        "the peer could not verify this side's handshake signature or Finished value: this "
        "side's private key does not match its certificate, or the handshake was altered",
        "check that this side's key matches its certificate (load_cert_chain() verifies "
        "this), and look for a middlebox altering the handshake",
    ),
    _A.export_restriction: (
        "the peer reported an export restriction (an obsolete SSL 3.0 alert)",
        "upgrade the peer's TLS implementation",
    ),
    _A.protocol_version: (
        "the peer supports none of the protocol versions this side offered (aiotls offers "
        "TLS 1.2 and 1.3 unless told otherwise)",
        "upgrade the peer to TLS 1.2 or 1.3; only if you must talk to it, lower "
        "minimum_version on this side's context",
    ),
    _A.insufficient_security: (
        "the peer requires stronger parameters than this side offered (cipher suites, "
        "groups, key sizes, the extended master secret)",
        "offer stronger cipher suites and groups from this side (set_ciphers(), "
        "set_groups()) or a larger key, as the peer requires",
    ),
    _A.internal_error: (
        "the peer hit an internal error unrelated to what this side sent",
        "check the peer's logs",
    ),
    _A.inappropriate_fallback: (
        "the peer saw a version-fallback signal (TLS_FALLBACK_SCSV) from this side while "
        "it supports a higher version (aiotls never sends one: something rewrote the "
        "ClientHello)",
        "look for a middlebox altering traffic; do not retry with lower versions",
    ),
    _A.user_canceled: (
        "the peer's application canceled the handshake before it completed "
        "(user_canceled, then close_notify)",
        "check the peer's logs and why it gave up (a timeout, a rejected certificate "
        "prompt, a shutdown)",
    ),
    _A.no_renegotiation: (
        "the peer refused a renegotiation (aiotls never starts one)",
        "report it to aiotls with a trace and the peer's TLS library",
    ),
    _A.missing_extension: (
        "the peer expected an extension this side did not send",
        f"report it to aiotls with a trace ({_TRACE}) and the peer's TLS library",
    ),
    _A.unsupported_extension: (
        "the peer received an extension from this side that it did not offer or does not "
        "allow there",
        f"report it to aiotls with a trace ({_TRACE}) and the peer's TLS library",
    ),
    _A.certificate_unobtainable: (
        "the peer could not fetch a certificate by URL (RFC 6066; aiotls never sends "
        "certificate URLs)",
        "report it with the peer's TLS library",
    ),
    _A.unrecognized_name: (
        "the server does not serve the host name this client asked for (SNI)",
        "check server_hostname against the names the server is configured for",
    ),
    _A.bad_certificate_status_response: (
        "the peer rejected an OCSP status response (RFC 6066; aiotls never staples one)",
        "report it with the peer's TLS library",
    ),
    _A.bad_certificate_hash_value: (
        "the peer reported a certificate hash mismatch (RFC 6066; aiotls never sends "
        "certificate hashes)",
        "report it with the peer's TLS library",
    ),
    _A.unknown_psk_identity: (
        "the peer does not know the pre-shared key identity this side offered",
        "configure the same PSK identity on this side and on the peer",
    ),
    _A.certificate_required: (
        "the server requires a client certificate and this client sent none",
        "load a client certificate with load_cert_chain() on this client's context",
    ),
    _A.no_application_protocol: (
        "the peer accepts none of the ALPN protocols this side offered",
        "make set_alpn_protocols() on both sides share at least one protocol",
    ),
}

_UNKNOWN_SENT = ("this side refused something the peer sent", "see the message for what")
_UNKNOWN_RECEIVED = (
    "the peer sent an alert number that no TLS standard aiotls knows defines",
    "check the peer's logs and its TLS library's documentation for that alert",
)

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


def alert_advice(alert: int, *, sent: bool = False) -> tuple[str, str]:
    """(likely cause, fix) for an alert number: one this side *sent*, or received."""
    if sent:
        return _SENT_ADVICE.get(alert, _UNKNOWN_SENT)
    return _RECEIVED_ADVICE.get(alert, _UNKNOWN_RECEIVED)


def error_for_received_alert(alert: int, *, during_handshake: bool, level: int = 2,
                             tls13: bool = False) -> AlertReceived:
    """The error for an alert the peer sent us that ends the connection.

    *level* is the alert's level as received (1 warning, 2 fatal): a warning-level alert
    that still ends the connection (TLS 1.3 treats every alert but close_notify and
    user_canceled as fatal; TLS 1.2 some alerts) says so instead of "aborted".
    """
    name = AlertDescription.name_of(alert)
    stage = "during the handshake" if during_handshake else "after the handshake"
    cause, hint = alert_advice(alert)
    code = f"alert-{name.replace('_', '-')}"
    if alert == _A.user_canceled and level != 1:
        what = f"the peer ended the connection with a fatal user_canceled alert ({alert}) {stage}"
        if not during_handshake:
            cause = ("the peer's application gave up on the connection and ended it with "
                     "user_canceled instead of a plain close_notify")
            hint = "check the peer's logs for why it closed the connection"
    elif alert == _A.user_canceled:
        what = f"the peer canceled the handshake (alert user_canceled, {alert})"
    elif alert == _A.close_notify:
        # (after the handshake close_notify is a clean close and never an error)
        what = "the peer closed the connection (close_notify) before the handshake completed"
        cause = "the peer gave up on the handshake without saying why"
        hint = "check the peer's logs"
        code = "closed-in-handshake"
    elif alert in _CERTIFICATE:
        what = f"the peer rejected our certificate with alert {name} ({alert}) {stage}"
        if alert == _A.certificate_required:
            what = f"the peer requires a client certificate (alert {name}, {alert})"
    else:
        what = f"the peer aborted the connection with alert {name} ({alert}) {stage}"
    if level == 1 and alert not in (_A.user_canceled, _A.close_notify):
        rule = ("TLS 1.3 treats every alert except close_notify and user_canceled as fatal "
                "(RFC 8446 section 6)" if tls13 else
                "RFC 5246 makes this alert fatal whatever its level"
                if alert in _KNOWN_ALERTS else "aiotls treats unknown alerts as errors, as "
                "RFC 8446 section 6 requires")
        what = (f"the peer sent a warning-level {name} alert ({alert}) {stage}, "
                f"which ends the connection: {rule}")
    return AlertReceived(what, cause=cause, hint=hint, alert=alert, code=code)


def error_for_sent_alert(alert: int, detail: str) -> TLSError:
    """The error for a fatal alert we sent, given the engine's description of the problem."""
    name = AlertDescription.name_of(alert)
    cause, hint = alert_advice(alert, sent=True)
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
        cls = InternalError  # (aiotls sends no other alert for a fault of the peer's)
    return cls(what, cause=cause, hint=hint, alert=alert, code=name.replace("_", "-"))
