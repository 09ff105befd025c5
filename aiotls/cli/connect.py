"""``connect``: handshake with a TLS server and show what was negotiated.

:func:`connect` opens a TCP connection, runs the handshake (verifying the server unless
told not to; with a client certificate when given one), reads briefly for a refusal that
comes after it (a TLS 1.3 server refuses a client certificate, or its absence, after the
handshake has completed on the client's side; any server may drop a client then),
optionally sends one message and reads the reply, closes with close_notify, and returns a
:class:`ConnectReport`.  Nothing here prints.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass

from cryptography import x509

from .. import _verify
from ..connection import TLSConnection
from ..context import TLSContext
from ..errors import TLSError
from ..events import CloseNotifyReceived, ConnectionTerminated, DataReceived
from ._args import (
    Render,
    add_client_certificate_options,
    add_json_option,
    add_target_arguments,
    add_version_options,
    formatter,
    positive,
    text,
    version_option,
)
from ._common import (
    EXIT_OK,
    CLIChannel,
    CLIError,
    ErrorInfo,
    UsageError,
    error_info,
    load_cert_files,
    network_error,
    server_name,
    set_versions,
)
from ._facts import (
    CertificateFacts,
    HandshakeFacts,
    certificate_facts,
    der_name_text,
    handshake_facts,
    utcnow,
)
from ._target import parse_target

#: The longest connect waits, after a handshake in which the server asked for a client
#: certificate, for the server to refuse it (or the lack of one).
VERDICT_SECONDS = 2.0


def verdict_window(handshake_seconds: float, timeout: float) -> float:
    """How long to wait for that verdict: it comes one round trip after our Finished, so
    twice the handshake's time (at least 0.3 s), within ``VERDICT_SECONDS`` and the timeout."""
    return min(timeout, VERDICT_SECONDS, max(0.3, 2 * handshake_seconds))

@dataclass(frozen=True)
class ConnectTarget:
    """Where we connect, and whom we trust."""

    host: str
    port: int
    servername: str
    trust: str
    """``the system's CA certificates``, a CA file's path, or that verification is off."""


@dataclass(frozen=True)
class Exchange:
    """The message sent with ``--send`` and what came back."""

    sent: str
    reply: str | None
    no_reply: ErrorInfo | None
    """Why nothing came back."""


@dataclass(frozen=True)
class ClientCertificateRequest:
    """The server asked for a client certificate (CertificateRequest)."""

    ca_names: tuple[str, ...]
    """The CAs it said it accepts (often none)."""
    sent: bool
    """We had one to send (--cert)."""


@dataclass(frozen=True)
class HandshakeTrace:
    """The handshake as ``--trace`` shows it, printed before the report (or the error)."""

    lines: tuple[str, ...]
    """One step each: time since the first handshake byte, direction, message and its
    key fields; alerts with their meaning; the last says how the handshake ended."""


class _TraceLines(logging.Handler):
    """Collects the trace lines (``aiotls.trace``) of the connections made meanwhile."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        step = getattr(record, "aiotls_trace", None)
        if isinstance(step, str):
            self.lines.append(step)


@contextlib.contextmanager
def traced(ctx: TLSContext, render: Render) -> Iterator[None]:
    """Trace the handshakes of ``ctx`` made within, and render them as one
    :class:`HandshakeTrace` at the end, whether the connection succeeded or failed."""
    ctx.trace_handshakes = True
    logger = logging.getLogger("aiotls.trace")
    handler = _TraceLines()
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        render(HandshakeTrace(tuple(handler.lines)))


@dataclass(frozen=True)
class ConnectReport:
    target: ConnectTarget
    tcp_seconds: float
    handshake_seconds: float
    handshake: HandshakeFacts
    alpn_offered: tuple[str, ...]
    sni_sent: bool
    """False when the server name is an IP address (RFC 6066 forbids it as SNI)."""
    verified: bool
    """False with ``insecure``: the server was not authenticated."""
    chain: tuple[CertificateFacts, ...]
    """The certificates the server sent, leaf first."""
    exchange: Exchange | None
    client_certificate: ClientCertificateRequest | None
    """Set when the server asked for a client certificate and went on (with ours, or
    without one: it was optional)."""
    clean_close: bool
    """Both close_notify alerts were exchanged."""
    close_error: ErrorInfo | None
    """Why the server's close_notify did not arrive, if it did not."""


def client_context(*, cafile: str | None, insecure: bool, alpn: tuple[str, ...],
                   version: ssl.TLSVersion | None, cert: str | None = None,
                   key: str | None = None) -> tuple[TLSContext, str]:
    """The client context for these options, and a phrase saying whom it trusts."""
    ctx = TLSContext(ssl.PROTOCOL_TLS_CLIENT)
    if cert is not None or key is not None:
        load_client_certificate(ctx, cert, key)
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        trust = "none: verification DISABLED by --insecure"
    elif cafile:
        ctx.load_verify_locations(cafile=cafile)
        trust = cafile
    else:
        ctx.load_default_certs()
        trust = "the system's CA certificates"
    if alpn:
        ctx.set_alpn_protocols(alpn)
    set_versions(ctx, version)
    return ctx, trust


def load_client_certificate(ctx: TLSContext, cert: str | None, key: str | None) -> None:
    """``--cert``/``--key`` into ``ctx``, with an error in the command line's words."""
    if cert is None:
        raise UsageError("--key was given without --cert",
                         hint="give the certificate with --cert FILE (and its key with --key)")
    load_cert_files(ctx, cert, key, "client-certificate-unusable")


def await_verdict(channel: CLIChannel, conn: TLSConnection, deadline: float,
                  with_certificate: bool) -> bytes:
    """After a clean handshake: read until ``deadline`` for a refusal that comes after it
    (TLS 1.3 servers judge a client certificate, or its absence, after the handshake has
    completed on our side; any server may refuse a client then: an alert, a reset, a
    close); raises the refusal in the command line's words.  Silence is acceptance.
    Returns what the server sent first, if it sent data."""
    asked = conn.requested_client_ca_names is not None
    doing = ("waiting for the server's verdict on the client certificate" if asked
             else "reading briefly after the handshake")
    event: object = None
    try:
        event = channel.next_event(deadline, doing)
    except TLSError as err:
        if err.code != "truncated":  # (a bare TCP close: the same refusal, less polite)
            raise _in_cli_words(err, conn) from None
    except CLIError as err:
        if err.code == "timeout":
            return b""  # (no word: the server took what it got)
        if err.code == "connection-reset" and asked and not with_certificate:
            raise _certificate_required(
                f"the server reset the connection right after it asked for a client "
                f"certificate and this client sent none ({err.what})", conn) from None
        if err.code == "connection-reset":
            raise _refused_after_handshake(f"the server reset the connection right after "
                                           f"the handshake ({err.what})") from None
        raise
    if event is None or isinstance(event, CloseNotifyReceived | ConnectionTerminated):
        if asked and not with_certificate:
            raise _certificate_required("the server closed the connection right after it "
                                        "asked for a client certificate and this client "
                                        "sent none", conn)
        raise _refused_after_handshake("the server closed the connection right after the "
                                       "handshake, before any request")
    return bytes(event.data) if isinstance(event, DataReceived) else b""


def _refused_after_handshake(what: str) -> CLIError:
    return CLIError(what, cause="the server completed the handshake and then refused this "
                    "client: an access rule (a client address or certificate it does not "
                    "accept), a server that closes idle connections at once, or a server "
                    "overloaded or shutting down",
                    hint="check the server's logs for why it dropped this client",
                    code="closed-after-handshake")


def _certificate_required(what: str, conn: TLSConnection) -> CLIError:
    """The server requires a client certificate this client does not have."""
    return CLIError(what + "." + _accepted(conn), cause="the server requires mutual TLS (a "
                    "client certificate) and none was given",
                    hint="pass --cert FILE --key FILE with a certificate issued by a CA the "
                    "server accepts", code="client-certificate-required")


def _accepted(conn: TLSConnection) -> str:
    names = ca_names(conn)
    return f" It accepts certificates issued by: {'; '.join(names)}." if names else ""


def _in_cli_words(err: TLSError, conn: TLSConnection) -> Exception:
    """A refused (or missing) client certificate with a hint in the command line's terms."""
    if err.code == "client-certificate-required":
        return _certificate_required(err.what, conn)
    if conn.requested_client_ca_names is not None and err.alert is not None:
        return CLIError(err.what + "." + _accepted(conn), cause="the server refused the client "
                        "certificate given with --cert",
                        hint="use a certificate issued by a CA the server accepts, valid now, "
                        "for client authentication (extended key usage clientAuth)",
                        code=err.code)
    return err


def ca_names(conn: TLSConnection) -> tuple[str, ...]:
    """The CA names of the server's CertificateRequest, as text."""
    return tuple(der_name_text(name) for name in conn.requested_client_ca_names or ())


def connect(target: ConnectTarget, ctx: TLSContext, *, alpn_offered: tuple[str, ...] = (),
            send: str | None = None, timeout: float = 10.0,
            with_certificate: bool = False) -> ConnectReport:
    """Handshake with ``target`` using ``ctx`` (holding a client certificate if
    ``with_certificate``); raises :class:`CLIError` (network, or a refused client
    certificate) or an aiotls error (TLS) when the handshake fails."""
    deadline = time.monotonic() + timeout
    t0 = time.perf_counter()
    try:
        sock = socket.create_connection((target.host, target.port), timeout=timeout)
    except OSError as exc:
        raise network_error(exc, f"connecting to {target.host}:{target.port}") from None
    with sock:
        tcp_seconds = time.perf_counter() - t0
        t1 = time.perf_counter()
        conn = TLSConnection(ctx, server_hostname=target.servername)
        channel = CLIChannel(sock, conn, peer=f"{target.host}:{target.port}", io_timeout=timeout)
        try:
            hs = channel.handshake(deadline)
        except TLSError as err:
            raise _in_cli_words(err, conn) from None
        handshake_seconds = time.perf_counter() - t1
        # (read briefly: a refusal after the handshake is not a success)
        first = await_verdict(
            channel, conn, time.monotonic() + verdict_window(handshake_seconds, timeout),
            with_certificate)
        requested = None
        if conn.requested_client_ca_names is not None:
            requested = ClientCertificateRequest(ca_names(conn), with_certificate)
        now = utcnow()
        chain = tuple(certificate_facts(x509.load_der_x509_certificate(d), now)
                      for d in hs.peer_certificates)
        exchange = None
        if send is not None:
            data = send.encode()
            channel.send(data)
            try:
                reply = first or channel.receive(len(data), time.monotonic() + min(timeout, 5.0),
                                                 at_least_one=True)
            except CLIError as err:
                exchange = Exchange(send, None, error_info(err))
            else:
                exchange = Exchange(send, reply.decode(errors="replace"), None)
        clean, close_error = False, None
        try:
            clean = channel.close(time.monotonic() + min(timeout, 2.0))
        except (CLIError, TLSError) as err:
            close_error = error_info(err)
    return ConnectReport(
        target=target, tcp_seconds=tcp_seconds, handshake_seconds=handshake_seconds,
        handshake=handshake_facts(hs, conn), alpn_offered=alpn_offered,
        sni_sent=not _verify.is_ip_address(target.servername),
        verified=ctx.verify_mode != ssl.CERT_NONE, chain=chain, exchange=exchange,
        client_certificate=requested, clean_close=clean, close_error=close_error,
    )


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "connect", formatter_class=formatter,
        help="handshake with a TLS server and show what was negotiated",
        description=text("""
            Connect to HOST PORT, perform a TLS handshake (verifying the server's
            certificate and name unless --insecure), print the negotiated parameters
            and the server's certificates, optionally send a message and print the
            reply, then close with close_notify.
        """),
    )
    add_target_arguments(parser)
    parser.add_argument("--servername", metavar="NAME",
                        help="name to send as SNI and to verify (default: HOST)")
    trust = parser.add_mutually_exclusive_group()
    trust.add_argument("--cafile", metavar="FILE",
                       help="trust the CA certificates in FILE (default: the system's CAs)")
    trust.add_argument("--insecure", action="store_true",
                       help="do not verify the server's certificate (testing only!)")
    parser.add_argument("--alpn", metavar="PROTO", action="append",
                        help="offer this ALPN protocol (repeat for several, preferred first)")
    add_client_certificate_options(parser)
    parser.add_argument("--keylog", metavar="FILE",
                        help="append the connection's secrets to FILE (NSS key log format, "
                        "for Wireshark); SSLKEYLOGFILE works too")
    parser.add_argument("--trace", action="store_true",
                        help="print the handshake step by step (each message sent and "
                        "received with its key fields, alerts, timings), also when it fails")
    parser.add_argument("--send", metavar="TEXT", help="send TEXT and print the reply")
    parser.add_argument("--timeout", type=positive, default=10.0, metavar="SECONDS",
                        help="give up after this long (default: 10)")
    add_version_options(parser)
    add_json_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, render: Render) -> int:
    alpn = tuple(args.alpn or ())
    host, port = parse_target(args.host, args.port)
    ctx, trust = client_context(cafile=args.cafile, insecure=args.insecure, alpn=alpn,
                                version=version_option(args), cert=args.cert, key=args.key)
    keylog = args.keylog or os.environ.get("SSLKEYLOGFILE")
    if keylog:
        ctx.keylog_filename = keylog
    target = ConnectTarget(host, port, server_name(args.servername or host), trust)
    render(target)
    with traced(ctx, render) if args.trace else contextlib.nullcontext():
        report = connect(target, ctx, alpn_offered=alpn, send=args.send, timeout=args.timeout,
                         with_certificate=args.cert is not None)
    render(report)
    return EXIT_OK
