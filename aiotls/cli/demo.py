"""``demo``: a TLS server and client talking over loopback, in one process.

A throwaway CA and a localhost certificate (:mod:`aiotls.testing`), a server thread and a
client, each a :class:`~aiotls.TLSConnection` over a blocking socket; the client
verifies the certificate and the host name, sends three messages the server echoes in
upper case, and both sides close with close_notify.  :func:`run_demo` returns a
:class:`DemoReport`; nothing here prints.
"""

from __future__ import annotations

import argparse
import socket
import ssl
import tempfile
import threading
import time
from dataclasses import dataclass, field

from cryptography import x509

from .. import testing
from ..connection import TLSConnection
from ..context import TLSContext
from ..events import CloseNotifyReceived, ConnectionTerminated, DataReceived, HandshakeCompleted
from ._args import Render, add_version_options, formatter, port_number, text, version_option
from ._common import EXIT_OK, CLIChannel, CLIError, network_error, set_versions
from ._facts import (
    CertificateFacts,
    HandshakeFacts,
    certificate_facts,
    handshake_facts,
    name_text,
    utcnow,
)

BUDGET = 4.5  # seconds for the whole demo, key generation included
MESSAGES = ("hello", "how are you?", "goodbye")
CLIENT_ALPN = ("h2", "http/1.1")
SERVER_ALPN = ("http/1.1",)
KEY_TYPES = ("ecdsa", "rsa", "ed25519")


@dataclass(frozen=True)
class DemoSetup:
    """The throwaway PKI and the two endpoints."""

    ca_key: str
    server_key: str
    pki_seconds: float
    directory: str
    """Where the PKI was written (deleted when the demo ends)."""
    port: int
    server_alpn: tuple[str, ...]
    client_alpn: tuple[str, ...]
    version: ssl.TLSVersion | None
    """The one version both sides were pinned to, if any."""


@dataclass(frozen=True)
class DemoReport:
    """Everything the demo did and saw."""

    setup: DemoSetup
    tcp_seconds: float
    handshake_seconds: float
    bytes_sent: int
    """By the client during the handshake."""
    bytes_received: int
    handshake: HandshakeFacts
    ca_subject: str
    server_certificate: CertificateFacts
    conversation: tuple[tuple[str, str], ...]
    """(sent, echoed) pairs."""
    conversation_seconds: float
    client_received_close_notify: bool
    server_received_close_notify: bool
    server_closed_cleanly: bool
    total_seconds: float

    @property
    def ok(self) -> bool:
        return (self.client_received_close_notify and self.server_received_close_notify
                and self.server_closed_cleanly)


@dataclass
class _ServerSide:
    """What the demo's server thread saw (filled in by the thread)."""

    handshake: HandshakeCompleted | None = None
    received: list[bytes] = field(default_factory=list)
    close_notify_received: bool = False
    clean: bool = False
    error: BaseException | None = None


def _serve(listener: socket.socket, ctx: TLSContext, seen: _ServerSide, deadline: float) -> None:
    try:
        listener.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            sock, _addr = listener.accept()
        except OSError as exc:
            raise network_error(exc, "waiting for the client to connect") from None
        with sock:
            channel = CLIChannel(sock, TLSConnection(ctx, server_side=True), peer="the client",
                                 io_timeout=2.0)
            seen.handshake = channel.handshake(deadline)
            while True:
                event = channel.next_event(deadline, "waiting for the client's messages")
                if isinstance(event, DataReceived):
                    seen.received.append(event.data)
                    channel.send(event.data.upper())
                elif isinstance(event, CloseNotifyReceived):
                    # The connection answers with its own close_notify; the channel has
                    # already flushed that reply.
                    seen.close_notify_received = True
                elif isinstance(event, ConnectionTerminated):
                    seen.clean = True
                    return
    except BaseException as exc:  # reported by the main thread
        seen.error = exc


@dataclass(frozen=True)
class _ClientSide:
    tcp_seconds: float
    handshake_seconds: float
    bytes_sent: int
    bytes_received: int
    handshake: HandshakeFacts
    leaf: CertificateFacts
    conversation: tuple[tuple[str, str], ...]
    conversation_seconds: float
    close_notify_received: bool


def _client(port: int, ctx: TLSContext, deadline: float) -> _ClientSide:
    t0 = time.perf_counter()
    try:
        sock = socket.create_connection(("127.0.0.1", port),
                                        timeout=max(0.01, deadline - time.monotonic()))
    except OSError as exc:
        raise network_error(exc, f"connecting to 127.0.0.1:{port}") from None
    with sock:
        tcp_seconds = time.perf_counter() - t0
        t1 = time.perf_counter()
        conn = TLSConnection(ctx, server_hostname="localhost")
        channel = CLIChannel(sock, conn, peer="the server", io_timeout=2.0)
        hs = channel.handshake(deadline)
        handshake_seconds = time.perf_counter() - t1
        sent, received = channel.bytes_sent, channel.bytes_received
        leaf = certificate_facts(x509.load_der_x509_certificate(hs.peer_certificates[0]),
                                 utcnow())
        conversation = []
        t2 = time.perf_counter()
        for message in MESSAGES:
            data = message.encode()
            channel.send(data)
            reply = channel.receive(len(data), deadline)
            if reply != data.upper():
                raise CLIError(f"the server answered {reply!r} instead of {data.upper()!r}",
                               cause="data was corrupted (this should be impossible with TLS)",
                               hint="please report this as a bug", code="demo-corrupted")
            conversation.append((message, reply.decode(errors="replace")))
        conversation_seconds = time.perf_counter() - t2
        return _ClientSide(tcp_seconds, handshake_seconds, sent, received,
                           handshake_facts(hs, conn), leaf, tuple(conversation),
                           conversation_seconds, channel.close(deadline))


def run_demo(*, key_type: testing.KeyType = "ecdsa", version: ssl.TLSVersion | None = None,
             port: int = 0) -> DemoReport:
    """Run the demo on 127.0.0.1 (``port`` 0: a free one); raises :class:`CLIError` or an
    aiotls error when something fails, and :class:`CLIError` when close_notify was not
    exchanged both ways."""
    started = time.monotonic()
    deadline = started + BUDGET
    with tempfile.TemporaryDirectory(prefix="aiotls-demo-") as directory:
        t0 = time.perf_counter()
        pki = testing.generate_pki(directory, key_type=key_type,
                                   ca_name="aiotls demo CA (throwaway)")
        pki_seconds = time.perf_counter() - t0

        server_ctx = pki.server_context()
        server_ctx.set_alpn_protocols(SERVER_ALPN)
        set_versions(server_ctx, version)
        client_ctx = pki.client_context()  # verification and check_hostname ON
        client_ctx.set_alpn_protocols(CLIENT_ALPN)
        set_versions(client_ctx, version)

        try:
            listener = socket.create_server(("127.0.0.1", port))
        except OSError as exc:
            raise CLIError(
                f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}",
                cause="another program already uses this port" if port else
                "the operating system refused to open a loopback socket",
                hint="pick another --port, or leave it out to use a free one",
                code="listen-failed",
            ) from None
        with listener:
            setup = DemoSetup(
                ca_key=certificate_facts(pki.ca_cert, utcnow()).public_key,
                server_key=certificate_facts(pki.server_cert, utcnow()).public_key,
                pki_seconds=pki_seconds, directory=directory,
                port=listener.getsockname()[1], server_alpn=SERVER_ALPN,
                client_alpn=CLIENT_ALPN, version=version)
            seen = _ServerSide()
            thread = threading.Thread(target=_serve, name="aiotls-demo-server",
                                      args=(listener, server_ctx, seen, deadline), daemon=True)
            thread.start()
            try:
                client = _client(setup.port, client_ctx, deadline)
            finally:
                thread.join(max(0.1, deadline - time.monotonic()))
            if thread.is_alive():
                raise CLIError("the demo server did not finish in time",
                               cause="the server thread is stuck waiting for the client",
                               hint="this is a bug in the demo; please report it",
                               code="demo-stuck")
            if seen.error is not None:
                raise seen.error
    return DemoReport(
        setup=setup, tcp_seconds=client.tcp_seconds,
        handshake_seconds=client.handshake_seconds, bytes_sent=client.bytes_sent,
        bytes_received=client.bytes_received, handshake=client.handshake,
        ca_subject=name_text(pki.ca_cert.subject), server_certificate=client.leaf,
        conversation=client.conversation, conversation_seconds=client.conversation_seconds,
        client_received_close_notify=client.close_notify_received,
        server_received_close_notify=seen.close_notify_received,
        server_closed_cleanly=seen.clean, total_seconds=time.monotonic() - started,
    )


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = sub.add_parser(
        "demo", formatter_class=formatter,
        help="run a TLS server and client over loopback and explain what happened",
        description=text("""
            Generate a throwaway CA and a certificate for localhost, start a TLS server
            on 127.0.0.1 and connect a client to it (certificate and host name verified),
            exchange a few messages, close with close_notify both ways, and print a
            report: version, cipher suite, key exchange, ALPN, the server certificate,
            timings.  Takes well under 5 seconds; touches only loopback.
        """),
    )
    demo.add_argument("--port", type=port_number, default=0,
                      help="port for the server (default: 0, a free one)")
    demo.add_argument("--key-type", choices=KEY_TYPES, default="ecdsa",
                      help="server key: ecdsa (P-256, default), rsa (2048 bits) or ed25519")
    add_version_options(demo)
    demo.set_defaults(run=run)


def run(args: argparse.Namespace, render: Render) -> int:
    report = run_demo(key_type=args.key_type, version=version_option(args), port=args.port)
    render(report)
    if not report.ok:
        raise CLIError("the demo connection did not close cleanly",
                       cause="close_notify was not exchanged both ways (see 'Close' above)",
                       hint="this is a bug in aiotls; please report it with the output above",
                       code="demo-unclean-close")
    return EXIT_OK
