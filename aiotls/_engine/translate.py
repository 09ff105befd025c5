"""tlslite exceptions into aiotls errors: what happened, the likely cause, the fix.

:func:`translate` maps what tlslite raised (a local alert, a remote alert, a parser
failure, a bare Python exception from malformed input) to the aiotls error class whose
blame fits, sending the alert tlslite did not send yet.  Errors the hooks prepared
(``_aiotls_error``) win over tlslite's generic ones.
"""

from __future__ import annotations

import re
import struct
from typing import Any

from tlslite.constants import AlertDescription as _TLAlert
from tlslite.constants import (
    AlertLevel,
)
from tlslite.errors import (
    TLSAbruptCloseError,
    TLSBadRecordMAC,
    TLSDecodeError,
    TLSDecryptionFailed,
    TLSHandshakeFailure,
    TLSIllegalParameterException,
    TLSInsufficientSecurity,
    TLSLocalAlert,
    TLSProtocolException,
    TLSRecordOverflow,
    TLSRemoteAlert,
    TLSUnexpectedMessage,
    TLSUnknownPSKIdentity,
)

from .._record import PaddingError
from ..errors import (
    AlertDescription,
    AlertReceived,
    InternalError,
    PeerIncompatible,
    PeerMisbehaved,
    TLSError,
    error_for_received_alert,
    error_for_sent_alert,
)
from .common import _VERSION_NAMES


def _renegotiation_error(alert: int) -> TLSError:
    """A fatal alert from a TLS 1.2 peer whose renegotiation we refused."""
    name = AlertDescription.name_of(alert)
    return AlertReceived(
        f"the peer tried to renegotiate the TLS 1.2 connection, which aiotls does not "
        f"support (it answered no_renegotiation), and then aborted with alert {name} "
        f"({alert})",
        cause="the peer renegotiates, typically to ask for a client certificate after the "
        "handshake or to refresh keys; aiotls never renegotiates (RFC 5746 lets it refuse)",
        hint="configure the peer not to renegotiate: request the client certificate in the "
        "initial handshake (verify_mode on the server), use TLS 1.3 (post-handshake "
        "authentication, KeyUpdate), or reconnect instead of refreshing keys",
        alert=alert, code="renegotiation-refused",
    )


_PARSER_FAILURES = (KeyError, IndexError, AssertionError, TypeError, ValueError, struct.error,
                    OverflowError, UnicodeError)


_ALERT_FOR_EXCEPTION: dict[type[BaseException], tuple[int, str]] = {
    TLSRecordOverflow: (_TLAlert.record_overflow, "record too long"),
    TLSBadRecordMAC: (_TLAlert.bad_record_mac, "record failed authentication"),
    # tlslite raises it, outside its record layer, for a TLS 1.3 CertificateVerify
    # signature or Finished value that does not verify: decrypt_error (RFC 8446 6.2).
    # decryption_failed is a TLS 1.0 alert that TLS 1.2 and 1.3 must never send.
    TLSDecryptionFailed: (_TLAlert.decrypt_error, "handshake verification failed"),
    TLSUnexpectedMessage: (_TLAlert.unexpected_message, "unexpected message"),
    TLSIllegalParameterException: (_TLAlert.illegal_parameter, "illegal parameter"),
    TLSDecodeError: (_TLAlert.decode_error, "malformed message"),
    TLSHandshakeFailure: (_TLAlert.handshake_failure, "handshake failure"),
    TLSInsufficientSecurity: (_TLAlert.insufficient_security, "insufficient security"),
    TLSUnknownPSKIdentity: (_TLAlert.unknown_psk_identity, "unknown PSK identity"),
    TLSProtocolException: (_TLAlert.decode_error, "protocol violation"),
}


#: Alerts with which servers refuse a client that answered their CertificateRequest with
#: no certificate: certificate_required (TLS 1.3), handshake_failure (TLS 1.2: OpenSSL,
#: aiotls), bad_certificate and certificate_unknown (Java), unexpected_message and
#: decode_error (stacks that cannot take an empty Certificate message).
_MISSING_CLIENT_CERTIFICATE_ALERTS = frozenset({
    _TLAlert.certificate_required, _TLAlert.handshake_failure, _TLAlert.bad_certificate,
    _TLAlert.certificate_unknown, _TLAlert.unexpected_message, _TLAlert.decode_error,
    _TLAlert.access_denied,
})


def _no_client_certificate_error(alert: int, *, during_handshake: bool) -> AlertReceived:
    """The error of a client that sent no certificate to a server that asked for one, and
    was then refused: the received alert's generic advice ("the peer rejected our
    certificate", "check that both ends speak TLS") points away from the cause."""
    name = AlertDescription.name_of(alert)
    stage = "during the handshake" if during_handshake else "just after the handshake"
    return AlertReceived(
        f"the server refused the connection with alert {name} ({alert}) {stage}, after it "
        "asked for a client certificate and this client sent none",
        cause="the server requires a client certificate and none is loaded on the client "
        "context",
        hint="load a certificate the server's CA accepts with load_cert_chain(certfile, "
        "keyfile) on the client context",
        alert=alert, code="client-certificate-required")


_VERSION_TUPLE_RE = re.compile(r"\((3), ([0-4])\)")


def _downgrade_detected(version: Any) -> PeerMisbehaved:
    """The error for a ServerHello whose random carries RFC 8446 4.1.3's downgrade sentinel."""
    chosen = _VERSION_NAMES.get(tuple(version), "an older version") if version else \
        "an older version"
    return PeerMisbehaved(
        f"the server chose {chosen} but its random carries the RFC 8446 4.1.3 downgrade "
        "sentinel, which says it supports a newer version this client also offered (sent "
        "alert illegal_parameter to the peer)",
        cause="something between the two ends removed the newer versions from the "
        "ClientHello (a downgrade attack), or the server is broken",
        hint="check the network path for a TLS-intercepting middlebox; do not lower "
        "maximum_version to get past this",
        alert=_TLAlert.illegal_parameter, code="downgrade-detected")


def _version_refused(server_side: bool, settings: Any,
                     peer_version: tuple[int, int] | None) -> PeerIncompatible:
    """The error for a protocol_version alert this end sent: which side offered what,
    and which side to change (tlslite's own text names neither).  ``peer_version``: the
    highest version the peer offered, or the one it chose (None if its hello is unknown)."""
    lo = _VERSION_NAMES.get(tuple(settings.minVersion), "?") if settings is not None else "?"
    hi = _VERSION_NAMES.get(tuple(settings.maxVersion), "?") if settings is not None else "?"
    allowed = lo if lo == hi else f"{lo} to {hi}"
    version = (_VERSION_NAMES.get((peer_version[0], peer_version[1]), "SSLv3")
               if peer_version is not None else None)
    newer = peer_version is not None and settings is not None \
        and tuple(peer_version) > tuple(settings.maxVersion)
    deprecated = (" (TLS 1.0 and 1.1 are deprecated, RFC 8996)"
                  if version in ("TLSv1", "TLSv1.1", "SSLv3") else "")
    if not server_side:
        what = (f"the server chose {version or 'a protocol version'}, which this client does "
                f"not allow (it allows {allowed})")
        if newer:
            cause = "the server answered with a version the client did not offer (a broken server)"
            hint = "check the server's TLS implementation"
        else:
            cause = f"the server supports only older TLS versions than this client allows{deprecated}"
            hint = (f"upgrade the server to {lo} or later; only if you must talk to it, lower "
                    "minimum_version on this client's context")
    else:
        offered = f"at most {version}" if version else "none of them in its supported_versions"
        what = (f"the client offered only TLS versions this server does not allow "
                f"({offered}; the server allows {allowed})")
        cause = f"the client supports only older TLS versions than this server allows{deprecated}"
        hint = (f"upgrade the client to {lo} or later; only if you must serve it, lower "
                "minimum_version on this server's context")
    return PeerIncompatible(f"{what} (sent alert protocol_version to the peer)", cause=cause,
                            hint=hint, alert=_TLAlert.protocol_version, code="protocol-version")



def _safe_str(value: object) -> str:
    """``str(value)`` for text taken from a tlslite exception, whatever it holds: ``""`` for
    None, the class name if its ``__str__`` fails (a message translated must never raise)."""
    if value is None:
        return ""
    try:
        return str(value)
    except Exception:
        return f"<{type(value).__name__}>"


def _clean_detail(detail: str) -> str:
    """tlslite's message, tidied: version tuples spelled as TLS versions, no trailing dot."""
    detail = _VERSION_TUPLE_RE.sub(
        lambda m: _VERSION_NAMES.get((3, int(m.group(2))), "SSLv3"), detail)
    detail = detail.strip().rstrip(".")
    return detail[:1].lower() + detail[1:] if detail else detail



def translate(engine: Any, exc: BaseException) -> TLSError:
    """Turn a tlslite exception into an aiotls error, sending an alert if tlslite did not."""
    during = not engine.handshake_done
    if isinstance(exc, PaddingError):  # (raised through tlslite's sending code)
        engine.fail(exc.alert)
        return exc.error
    if isinstance(exc, TLSRemoteAlert) and engine.renegotiation_refused and not during:
        # The peer gave up after we refused its renegotiation: name that (the general
        # advice for its alert, handshake_failure, blames cipher suites).
        engine.failed = True
        engine._sock.discard = True
        return _renegotiation_error(exc.description)
    if isinstance(exc, TLSLocalAlert):
        engine.failed = True
        engine._sock.discard = True
        prepared: TLSError | None = engine._tl._aiotls_error
        if prepared is not None:
            return prepared
        detail = _safe_str(exc.message)  # (tlslite sometimes passes an exception)
        if exc.description == _TLAlert.protocol_version:
            return _version_refused(engine.server_side, engine._settings,
                                    engine._tl._aiotls_peer_version)
        if exc.description == _TLAlert.illegal_parameter \
                and engine._tl._aiotls_downgrade_sentinel:
            return _downgrade_detected(engine._tl.version)
        return error_for_sent_alert(exc.description, _clean_detail(detail))
    if isinstance(exc, TLSRemoteAlert) and _refused_without_certificate(engine, exc):
        engine.failed = True
        engine._sock.discard = True
        return _no_client_certificate_error(exc.description, during_handshake=during)
    if isinstance(exc, TLSRemoteAlert):
        engine.failed = True
        engine._sock.discard = True
        explained: TLSError | None = engine._tl._aiotls_remote_error  # (a PSK refused)
        if explained is not None and explained.alert_number == exc.description:
            return explained
        description = exc.description
        if description == _TLAlert.close_notify and during \
                and engine._tl._recordLayer._aiotls_canceled:
            description = _TLAlert.user_canceled  # the close_notify it announced
        return error_for_received_alert(description, during_handshake=during,
                                        level=exc.level,
                                        tls13=engine._tl._recordLayer._version > (3, 3))
    alert, detail = _ALERT_FOR_EXCEPTION.get(type(exc), (None, ""))
    if alert is None:
        for cls, (a, d) in _ALERT_FOR_EXCEPTION.items():
            if isinstance(exc, cls):
                alert, detail = a, d
                break
    if alert is None and isinstance(exc, SyntaxError):  # tlslite's codec.DecodeError
        alert, detail = _TLAlert.decode_error, "malformed message"
    if alert is None and engine._peer_input and isinstance(exc, _PARSER_FAILURES):
        # tlslite's parsers signal many malformed inputs with plain Python exceptions
        alert = _TLAlert.decode_error
        detail = f"malformed message from the peer ({type(exc).__name__} in the parser)"
    if isinstance(exc, TLSAbruptCloseError):
        alert, detail = None, "connection closed"
    if alert is None and not isinstance(exc, TLSAbruptCloseError):
        engine.fail(_TLAlert.internal_error)
        return InternalError(
            f"internal error in the TLS engine: {type(exc).__name__}: {_safe_str(exc)}",
            cause="a bug in aiotls or tlslite-ng, possibly triggered by unusual peer input",
            hint="please report it with the handshake trace (python -m aiotls connect --trace HOST PORT)",
            alert=AlertDescription.internal_error, code="internal-error",
        )
    engine.fail(alert)
    text = _safe_str(exc) or detail
    if alert is None:
        return PeerMisbehaved(
            f"the peer closed the connection without an alert ({_clean_detail(text)})",
            cause="the peer gave up, crashed, or does not speak TLS on this port",
            hint="check the peer's logs, and that it speaks TLS on this port")
    return error_for_sent_alert(alert, _clean_detail(f"{detail}: {text}" if text != detail
                                                     else detail))


def _refused_without_certificate(engine: Any, exc: TLSRemoteAlert) -> bool:
    """A client that answered a CertificateRequest with no certificate, refused now."""
    tl = engine._tl
    return (not engine.server_side and tl._aiotls_certificate_requested
            and tl._aiotls_credentials is None
            and exc.level == AlertLevel.fatal
            and exc.description in _MISSING_CLIENT_CERTIFICATE_ALERTS)
