"""``serve``: the command line of the TLS echo server (:mod:`aiotls.cli._serve_loop`).

Turns the options into a server context -- with a development CA and certificate made in
``--dev-dir`` when no ``--cert`` is given, the client CA for ``--require-client-cert``,
the key log, the ALPN protocols, the versions -- and runs the server, whose events the
renderer prints.  ``--trace`` prints the records of logger ``aiotls.trace``.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ..context import TLSContext
from ..errors import TLSError
from . import certs_create
from ._args import (
    Render,
    add_version_options,
    formatter,
    port_number,
    positive,
    positive_int,
    text,
    version_option,
)
from ._common import EXIT_OK, CLIError, UsageError, load_cert_files, set_versions
from ._serve_loop import (
    ClientClosed,
    ClientCloseNotify,
    ClientConnected,
    ClientFailed,
    ClientHandshake,
    ClientIdle,
    DevCertificates,
    Emit,
    Listening,
    ServerError,
    ServeSetup,
    Stopped,
    TraceLine,
    connect_command,
    serve,
)

__all__ = [
    "ClientCloseNotify", "ClientClosed", "ClientConnected", "ClientFailed", "ClientHandshake",
    "ClientIdle", "DevCertificates", "Listening", "ServeSetup", "ServerError",
    "Stopped", "TraceLine", "connect_command", "register", "run", "serve",
]

#: The names of the development certificate (besides a specific --host).
DEV_NAMES = ("localhost", "127.0.0.1", "::1")


# --- the handshake trace ------------------------------------------------------------------------


@contextmanager
def _trace_to(emit: Emit) -> Iterator[None]:
    """Print the handshake trace (records of logger ``aiotls.trace`` at INFO and above) as
    :class:`TraceLine` events while the server runs."""
    handler = _TraceHandler(emit)
    logger = logging.getLogger("aiotls.trace")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


class _TraceHandler(logging.Handler):
    def __init__(self, emit: Emit) -> None:
        super().__init__(logging.INFO)
        self.emit_event = emit

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.emit_event(TraceLine(record.getMessage()))
        except Exception:  # (as logging.Handler does: a broken record must not stop serving)
            self.handleError(record)


# --- the command --------------------------------------------------------------------------------


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "serve", formatter_class=formatter,
        help="run a TLS echo server",
        description=text("""
            Serve TLS on HOST:PORT and echo back whatever each client sends, on one event
            loop (aiotls's asyncio adapter).  Logs handshakes, closes, and every failed
            handshake with its cause from the server's side.  Without --cert it makes a
            development CA and certificate (in --dev-dir) and prints the connect command
            that trusts them.  Stop it with Ctrl-C.
        """),
    )
    parser.add_argument("--cert", metavar="FILE",
                        help="certificate chain, PEM, leaf first (default: a development "
                        "certificate for localhost, made in --dev-dir)")
    parser.add_argument("--key", metavar="FILE", help="the certificate's private key, PEM")
    parser.add_argument("--dev-dir", default=certs_create.DEFAULT_DIRECTORY, metavar="DIR",
                        help="where the development CA and certificates go without --cert "
                        f"(default: ./{certs_create.DEFAULT_DIRECTORY}; an existing CA there "
                        "is reused)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=port_number, default=8443,
                        help="port to listen on (default: 8443; 0 picks a free one)")
    parser.add_argument("--alpn", metavar="PROTO", action="append",
                        help="accept this ALPN protocol (repeat for several)")
    parser.add_argument("--require-client-cert", action="store_true",
                        help="require a client certificate issued by the CA in --cafile "
                        "(mutual TLS; default CA: the development CA)")
    parser.add_argument("--cafile", metavar="FILE",
                        help="CA certificates that issue client certificates (asks clients "
                        "for one; required only with --require-client-cert)")
    parser.add_argument("--handshake-timeout", type=positive, default=10.0, metavar="SECONDS",
                        help="close a connection whose handshake is not done by then "
                        "(default: 10)")
    parser.add_argument("--timeout", type=positive, default=30.0, metavar="SECONDS",
                        help="close a connection idle for this long after its handshake "
                        "(default: 30)")
    parser.add_argument("--max-connections", type=positive_int, default=1000, metavar="N",
                        help="serve at most N connections at once; more wait to be accepted "
                        "(default: 1000)")
    parser.add_argument("--keylog", metavar="FILE",
                        help="append the connections' secrets to FILE (NSS key log format, "
                        "for Wireshark)")
    parser.add_argument("--trace", action="store_true",
                        help="print each handshake message as it is sent and received")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio",
                        help="the event loop (default: asyncio)")
    add_version_options(parser)
    parser.set_defaults(run=run)


def _unspecified(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def _dev_certificates(args: argparse.Namespace) -> DevCertificates:
    names: tuple[str, ...] = DEV_NAMES
    if args.host not in names and not _unspecified(args.host):
        names = (*names, args.host)  # (a specific address or host name to listen on)
    try:
        ca, ca_file, reused = certs_create.local_ca(args.dev_dir)
        cert_file, key_file = ca.issue(*names).write(args.dev_dir, "serve")
        client: tuple[str | None, str | None] = (None, None)
        if args.require_client_cert:
            client = ca.issue("aiotls development client", server=False,
                              client=True).write(args.dev_dir, "serve-client")
    except (OSError, ValueError) as exc:
        raise CLIError(f"cannot make development certificates in {args.dev_dir!r}: "
                       f"{getattr(exc, 'strerror', None) or exc}",
                       cause="the directory is not writable, or its ca.pem / ca-key.pem are "
                       "damaged", hint="pick another --dev-dir, or pass --cert and --key",
                       code="dev-certificates-failed") from None
    return DevCertificates(os.path.abspath(args.dev_dir), os.path.abspath(ca_file), reused,
                           cert_file, key_file, names, *client)


def server_context(args: argparse.Namespace) -> tuple[TLSContext, str, ServeSetup]:
    """The server context for the command line, the certificate file, and the setup."""
    if args.key is not None and args.cert is None:
        raise UsageError("--key was given without --cert",
                         hint="give the certificate with --cert FILE and its key with --key "
                         "FILE, or neither for a development certificate")
    dev = _dev_certificates(args) if args.cert is None else None
    cert, key = (dev.cert_file, dev.key_file) if dev is not None else (args.cert, args.key)
    client_ca = args.cafile or (dev.ca_file if dev is not None and args.require_client_cert
                                else None)
    if args.require_client_cert and client_ca is None:
        raise UsageError("--require-client-cert needs --cafile FILE",
                         cause="with --cert the server has no CA of its own to trust client "
                         "certificates from",
                         hint="pass --cafile with the CA that issues the client certificates "
                         "('python -m aiotls certs create NAME --client CLIENT' makes both)")
    ctx = TLSContext(ssl.PROTOCOL_TLS_SERVER)
    load_cert_files(ctx, cert, key, "server-certificate-unusable")
    if client_ca is not None:
        try:
            ctx.load_verify_locations(cafile=client_ca)
        except (OSError, ValueError, TLSError, ssl.SSLError) as exc:
            detail = getattr(exc, "what", None) or getattr(exc, "strerror", None) or str(exc)
            raise CLIError(f"cannot use --cafile {client_ca!r}: {detail}",
                           cause="the file is missing, unreadable or holds no PEM certificate",
                           hint="pass the CA certificate (PEM) that issues the client "
                           "certificates", code="client-ca-unusable") from None
        ctx.verify_mode = ssl.CERT_REQUIRED if args.require_client_cert else ssl.CERT_OPTIONAL
    ctx.suppress_ragged_eofs = True  # (an echo server has no message a truncation could cut)
    if args.alpn:
        ctx.set_alpn_protocols(args.alpn)
    if args.keylog:
        ctx.keylog_filename = args.keylog
    if args.trace:
        ctx.trace_handshakes = True  # (the records are printed by the renderer's handler)
    set_versions(ctx, version_option(args))
    setup = ServeSetup(handshake_timeout=args.handshake_timeout, idle_timeout=args.timeout,
                       client_ca=client_ca, require_client_cert=args.require_client_cert,
                       keylog=args.keylog, trace=args.trace, dev=dev,
                       version_flag="--tls12" if args.tls12 else "--tls13" if args.tls13 else None)
    return ctx, cert, setup


def _loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if name != "uvloop":
        return None
    try:
        import uvloop
    except ImportError:
        raise CLIError("--loop uvloop: uvloop is not installed",
                       cause="uvloop is an optional dependency",
                       hint="install uvloop, or leave out --loop", code="uvloop-missing") from None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run(args: argparse.Namespace, render: Render) -> int:
    ctx, cert, setup = server_context(args)
    factory = _loop_factory(args.loop)
    with _trace_to(render) if args.trace else _no_trace():
        serve(ctx, cert, host=args.host, port=args.port, max_connections=args.max_connections,
              timeout=args.timeout, emit=render, setup=setup, loop_factory=factory)
    return EXIT_OK


@contextmanager
def _no_trace() -> Iterator[None]:
    yield
