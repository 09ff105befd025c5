"""Failed connections as the server sees them, in ``serve``'s words.

The library's errors are written for whichever side raised them and name its API
(``load_verify_locations()``, ``ssl_handshake_timeout``...).  A server's log must say
what the *client* did, whom to blame, and what to change -- on the client when the
client is at fault (``connect --cafile CA``, ``https://``), in ``serve``'s flags when the
server is (``--cafile``, ``--handshake-timeout``).  :func:`server_words` turns an error
from a server connection into such an :class:`~aiotls.cli._common.ErrorInfo`, keeping
its stable ``code``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import TLSError
from ._common import ErrorInfo, error_info


@dataclass(frozen=True)
class ServerSide:
    """What a server's words depend on: how it was started."""

    handshake_timeout: float
    require_client_cert: bool = False
    client_ca: str | None = None
    """The CA file client certificates are verified against, if any."""
    dev_ca: str | None = None
    """The development CA's file, when ``serve`` made the certificate."""
    client_hint: str | None = None
    """``--cert FILE --key FILE`` of the development client certificate, if one was made."""
    version_flag: str | None = None
    """``--tls12`` or ``--tls13`` when the server was pinned to one version."""


#: Alerts with which a client refuses the server's certificate.
_CERTIFICATE_REFUSED = frozenset({
    "alert-unknown-ca", "alert-bad-certificate", "alert-certificate-unknown",
    "alert-unsupported-certificate", "alert-certificate-expired", "alert-access-denied",
})

#: The library's API names, and the ``serve`` flag that sets each (a last resort for
#: hints no entry below rewrites).
_FLAGS = (
    ("load_cert_chain(certfile, keyfile)", "--cert/--key"),
    ("load_cert_chain()", "--cert/--key"), ("load_cert_chain", "--cert/--key"),
    ("load_verify_locations()", "--cafile"),
    ("minimum_version", "--tls12/--tls13"), ("maximum_version", "--tls12/--tls13"),
    ("set_alpn_protocols()", "--alpn"), ("ssl_handshake_timeout", "--handshake-timeout"),
)


def _flags(hint: str) -> str:
    for api, flag in _FLAGS:
        hint = hint.replace(api, flag)
    return hint


def _give_ca(side: ServerSide) -> str:
    if side.dev_ca is not None:
        return (f"give the client the CA: connect --cafile {side.dev_ca} (curl --cacert, "
                "openssl s_client -CAfile)")
    return ("give the client the CA that issued --cert (connect --cafile CA_FILE), or serve a "
            "certificate from a CA it trusts; put the intermediate certificates after the "
            "leaf in --cert")


def _client_cert_fix(side: ServerSide) -> str:
    ca = f" issued by the CA in {side.client_ca}" if side.client_ca else ""
    files = side.client_hint or "--cert FILE --key FILE"
    return f"the client must present a certificate{ca}: connect {files}"


def server_words(err: BaseException, side: ServerSide, *, during_handshake: bool,
                 received: int) -> ErrorInfo:
    """``err``, which ended a server connection, in the server's words.  ``received``:
    the bytes the client had sent (none: it never started a handshake)."""
    info = error_info(err)
    code, alert = info.code, info.alert
    if isinstance(err, ConnectionResetError | BrokenPipeError | ConnectionAbortedError) \
            and not isinstance(err, TLSError):
        return _reset(side, during_handshake, received)
    if code == "handshake-timeout":
        return _timeout(side, received)
    if code == "eof-in-handshake":
        if not received:
            return ErrorInfo(
                "the client connected and closed the connection without sending a TLS "
                "handshake", cause="a port check or health check that only opens a TCP "
                "connection, or a client that gave up", hint="nothing to change if it is a "
                "health check; a client must start TLS with its ClientHello", code=code)
        return ErrorInfo(
            "the client closed the connection in the middle of the handshake, without an "
            "alert", cause="the client rejected the server's certificate or hello without "
            "saying why (some clients just close), or it gave up",
            hint="read the client's own error; " + _give_ca(side) + " if it does not trust "
            "the certificate", code=code)
    if code == "not-tls-http":
        return ErrorInfo("a client sent plain HTTP to this TLS port: it should use https://",
                         cause="an HTTP client (http:// in a browser or curl) connected to "
                         "the TLS port", hint="use https://HOST:PORT/ on the client; nothing "
                         "to change on the server", code=code, alert=alert)
    if code in ("not-tls", "sslv2-hello"):
        return ErrorInfo(info.what.replace("the peer", "the client"),
                         cause="a client of another protocol, or a scanner, connected to the "
                         "TLS port" if code == "not-tls" else info.cause,
                         hint="the client must speak TLS (1.2 or 1.3) to this port; nothing "
                         "to change on the server", code=code, alert=alert)
    if code in _CERTIFICATE_REFUSED and during_handshake:
        return _certificate_refused(side, info)
    if code == "certificate-missing":
        return ErrorInfo(
            f"the client sent no certificate, and this server requires one "
            f"(--require-client-cert; sent alert {alert or 'certificate_required'})",
            cause="the client has no client certificate configured, or none from the CA "
            "this server trusts", hint=_client_cert_fix(side), code=code, alert=alert)
    if code.startswith("certificate-"):
        return _client_certificate_refused(side, info)
    if code == "protocol-version":
        pinned = f"; or leave out {side.version_flag}" if side.version_flag else ""
        return ErrorInfo(info.what, info.cause, "upgrade the client to TLS 1.2 or later (serve "
                         f"does not offer TLS 1.0 or 1.1){pinned}", code, alert)
    if code == "alert-protocol-version":
        pinned = f"leave out {side.version_flag}, or " if side.version_flag else ""
        return ErrorInfo("the client refused the TLS version this server chose (alert "
                         "protocol_version)", cause="the client allows only versions this "
                         "server does not offer", hint=f"{pinned}enable TLS 1.2 or 1.3 on "
                         "the client", code=code, alert=alert)
    if code == "handshake-failure":
        return ErrorInfo(info.what.replace("the peer", "the client"),
                         cause="the client offered no cipher suite, key-exchange group or "
                         "signature algorithm this server accepts (an old or narrowly "
                         "configured client)", hint="upgrade or reconfigure the client; "
                         "'python -m aiotls diagnose HOST:PORT' lists what this server accepts",
                         code=code, alert=alert)
    if code == "no-application-protocol":
        return ErrorInfo(info.what.replace("the peer", "the client"),
                         cause="the client offered no ALPN protocol among those given with "
                         "--alpn", hint="have the client offer one of them (connect --alpn "
                         "PROTO), or add its protocol with --alpn", code=code, alert=alert)
    what = info.what.replace("the peer", "the client").replace("The peer", "The client")
    return ErrorInfo(what, info.cause.replace("the peer", "the client"), _flags(info.hint),
                     code, alert)


def _reset(side: ServerSide, during_handshake: bool, received: int) -> ErrorInfo:
    if not during_handshake:
        return ErrorInfo("the client reset the TCP connection",
                         cause="the client's process ended or aborted the connection without "
                         "closing TLS", hint="nothing to change on the server; see the "
                         "client's side", code="connection-reset")
    if not received:
        return ErrorInfo("the client reset the TCP connection before sending anything",
                         cause="a port scanner or a health check (connect, then reset)",
                         hint="nothing to change if it is one", code="connection-reset")
    return ErrorInfo("the client reset the TCP connection during the handshake, without an "
                     "alert", cause="the client rejected the server's certificate or hello "
                     "abruptly, or it gave up", hint="read the client's own error; "
                     + _give_ca(side) + " if it does not trust the certificate",
                     code="connection-reset")


def _timeout(side: ServerSide, received: int) -> ErrorInfo:
    seconds = f"{side.handshake_timeout:g} s"
    if not received:
        return ErrorInfo(
            f"the client connected but sent no TLS handshake within {seconds}: a port "
            "scanner, a health check, or a client that expected the server to speak first",
            cause="the client does not speak TLS first (another protocol, or a plaintext "
            "protocol that upgrades with STARTTLS), or it is only holding the connection open",
            hint="nothing to change for scanners and health checks (the connection was "
            "closed); a real client must send its TLS ClientHello first",
            code="handshake-timeout")
    return ErrorInfo(
        f"the client started a handshake but did not finish it within {seconds}",
        cause="a very slow or stalled client or network, or a client waiting for its user",
        hint="raise --handshake-timeout if such clients are legitimate",
        code="handshake-timeout")


def _certificate_refused(side: ServerSide, info: ErrorInfo) -> ErrorInfo:
    alert = info.alert or "?"
    if info.code == "alert-certificate-expired":
        return ErrorInfo("the client refused this server's certificate as expired (alert "
                         "certificate_expired)", cause="the certificate in --cert expired, or "
                         "the client's clock is wrong", hint="renew the certificate (without "
                         "--cert, serve makes a fresh one each run), or fix the client's clock",
                         code=info.code, alert=info.alert)
    cause = ("the client does not trust the CA that issued this server's certificate"
             if alert == "unknown_ca" else "the client does not trust this server's "
             "certificate, or the name it connected to is not in the certificate")
    return ErrorInfo(f"the client does not trust this server's certificate (alert {alert} "
                     "received)", cause=cause, hint=_give_ca(side), code=info.code,
                     alert=info.alert)


def _client_certificate_refused(side: ServerSide, info: ErrorInfo) -> ErrorInfo:
    trusted = f" (client CA: {side.client_ca})" if side.client_ca else ""
    if info.code in ("certificate-unknown-ca", "certificate-self-signed",
                     "certificate-no-trust-anchors"):
        fix = (f"issue the client's certificate from the CA in {side.client_ca}, or pass "
               "--cafile with the CA that issued it" if side.client_ca else
               "pass --cafile with the CA that issued the client's certificate")
        if side.client_hint is not None:
            fix += f" (a certificate that works: connect {side.client_hint})"
        return ErrorInfo(info.what + f": not issued by a CA this server trusts{trusted}",
                         cause="the client presented a certificate from another CA, or did "
                         "not send its intermediate certificates", hint=fix, code=info.code,
                         alert=info.alert)
    if info.code in ("certificate-expired", "certificate-not-yet-valid"):
        return ErrorInfo(info.what, info.cause, "renew the client's certificate (or fix the "
                         "clock of whichever side is wrong)", info.code, info.alert)
    return ErrorInfo(info.what, info.cause, "give the client a certificate for client "
                     f"authentication (clientAuth) from the CA this server trusts{trusted}",
                     info.code, info.alert)
