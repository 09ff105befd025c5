"""``connect``: handshake with a TLS server and show what was negotiated.

:func:`connect` opens a TCP connection, runs the handshake (verifying the server unless
told not to), optionally sends one message and reads the reply, closes with
close_notify, and returns a :class:`ConnectReport`.  Nothing here prints.
"""

from __future__ import annotations

import argparse
import socket
import ssl
import time
from dataclasses import dataclass

from cryptography import x509

from .. import _verify
from ..connection import TLSConnection
from ..context import TLSContext
from ..errors import TLSError
from ._args import (
    Render,
    add_version_options,
    formatter,
    port_number,
    positive,
    text,
    version_option,
)
from ._common import (
    EXIT_OK,
    CLIChannel,
    CLIError,
    ErrorInfo,
    error_info,
    network_error,
    server_name,
    set_versions,
)
from ._facts import CertificateFacts, HandshakeFacts, certificate_facts, handshake_facts, utcnow


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
    clean_close: bool
    """Both close_notify alerts were exchanged."""
    close_error: ErrorInfo | None
    """Why the server's close_notify did not arrive, if it did not."""


def client_context(*, cafile: str | None, insecure: bool, alpn: tuple[str, ...],
                   version: ssl.TLSVersion | None) -> tuple[TLSContext, str]:
    """The client context for these options, and a phrase saying whom it trusts."""
    ctx = TLSContext(ssl.PROTOCOL_TLS_CLIENT)
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


def connect(target: ConnectTarget, ctx: TLSContext, *, alpn_offered: tuple[str, ...] = (),
            send: str | None = None, timeout: float = 10.0) -> ConnectReport:
    """Handshake with ``target`` using ``ctx``; raises :class:`CLIError` (network) or an
    aiotls error (TLS) when the handshake fails."""
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
        hs = channel.handshake(deadline)
        handshake_seconds = time.perf_counter() - t1
        now = utcnow()
        chain = tuple(certificate_facts(x509.load_der_x509_certificate(d), now)
                      for d in hs.peer_certificates)
        exchange = None
        if send is not None:
            data = send.encode()
            channel.send(data)
            try:
                reply = channel.receive(len(data), time.monotonic() + min(timeout, 5.0),
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
        clean_close=clean, close_error=close_error,
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
    parser.add_argument("host", metavar="HOST", help="server host name or IP address")
    parser.add_argument("port", metavar="PORT", type=port_number, help="server port")
    parser.add_argument("--servername", metavar="NAME",
                        help="name to send as SNI and to verify (default: HOST)")
    trust = parser.add_mutually_exclusive_group()
    trust.add_argument("--cafile", metavar="FILE",
                       help="trust the CA certificates in FILE (default: the system's CAs)")
    trust.add_argument("--insecure", action="store_true",
                       help="do not verify the server's certificate (testing only!)")
    parser.add_argument("--alpn", metavar="PROTO", action="append",
                        help="offer this ALPN protocol (repeat for several, preferred first)")
    parser.add_argument("--send", metavar="TEXT", help="send TEXT and print the reply")
    parser.add_argument("--timeout", type=positive, default=10.0, metavar="SECONDS",
                        help="give up after this long (default: 10)")
    add_version_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, render: Render) -> int:
    alpn = tuple(args.alpn or ())
    ctx, trust = client_context(cafile=args.cafile, insecure=args.insecure, alpn=alpn,
                                version=version_option(args))
    target = ConnectTarget(args.host, args.port, server_name(args.servername or args.host),
                           trust)
    render(target)
    render(connect(target, ctx, alpn_offered=alpn, send=args.send, timeout=args.timeout))
    return EXIT_OK
