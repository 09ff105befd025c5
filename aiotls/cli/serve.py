"""``serve``: a TLS echo server, one thread per connection.

:func:`serve` accepts connections until interrupted and reports what happens as events
(:class:`Listening`, :class:`ClientConnected`, :class:`ClientHandshake`, ...) handed to
``emit`` -- from several threads, so ``emit`` must be thread-safe.  Nothing here prints.
"""

from __future__ import annotations

import argparse
import signal
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

from ..connection import TLSConnection
from ..context import TLSContext
from ..errors import TLSError
from ..events import CloseNotifyReceived, ConnectionTerminated, DataReceived
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
from ._common import (
    EXIT_OK,
    CLIChannel,
    CLIError,
    ErrorInfo,
    error_info,
    load_certificates,
    set_versions,
)
from ._facts import certificate_facts, utcnow


@dataclass(frozen=True)
class Listening:
    host: str
    port: int
    subject: str
    """The server certificate's subject."""
    key: str
    max_connections: int


@dataclass(frozen=True)
class ClientConnected:
    client: str
    """``address:port``."""


@dataclass(frozen=True)
class ClientHandshake:
    client: str
    version: str
    cipher: str
    group: str | None
    alpn: str | None
    server_name: str | None
    ignored_server_name: str | None
    """An IP address the client sent as SNI, which the server ignored (RFC 6066)."""


@dataclass(frozen=True)
class ClientCloseNotify:
    client: str
    echoed: int
    """Bytes echoed on the connection."""


@dataclass(frozen=True)
class ClientClosed:
    client: str
    truncated: bool
    """The client closed the TCP connection without close_notify (tolerated)."""


@dataclass(frozen=True)
class ClientFailed:
    client: str
    error: ErrorInfo


@dataclass(frozen=True)
class AcceptFailed:
    detail: str


@dataclass(frozen=True)
class Stopped:
    pass


Emit = Callable[[object], None]


def _serve_one(sock: socket.socket, client: str, ctx: TLSContext, timeout: float, emit: Emit,
               done: Callable[[], None]) -> None:
    try:
        with sock:
            conn = TLSConnection(ctx, server_side=True)
            channel = CLIChannel(sock, conn, peer=client, io_timeout=timeout)
            hs = channel.handshake(time.monotonic() + timeout)
            emit(ClientHandshake(client, hs.version, hs.cipher, hs.group, hs.alpn_protocol,
                                 hs.server_name, conn.ignored_server_name))
            echoed = 0
            while True:
                event = channel.next_event(time.monotonic() + timeout, "waiting for data")
                if isinstance(event, DataReceived):
                    channel.send(event.data)
                    echoed += len(event.data)
                elif isinstance(event, CloseNotifyReceived):
                    emit(ClientCloseNotify(client, echoed))
                elif isinstance(event, ConnectionTerminated):
                    emit(ClientClosed(client, event.truncated))
                    return
    except (TLSError, CLIError) as err:
        emit(ClientFailed(client, error_info(err)))
    except Exception as exc:  # keep serving other clients
        emit(ClientFailed(client, ErrorInfo(f"unexpected {type(exc).__name__}: {exc}",
                                            code="internal-error")))
    finally:
        done()


def _accept_loop(listener: socket.socket, slots: threading.BoundedSemaphore, ctx: TLSContext,
                 timeout: float, emit: Emit, stop: threading.Event) -> None:
    """Accept connections until ``stop`` is set, one thread each, never more than ``slots``
    at once."""
    while not stop.is_set():
        if not slots.acquire(timeout=0.5):
            continue  # all slots busy: wait (new clients queue in the listen backlog)
        try:
            sock, peer = listener.accept()
        except TimeoutError:
            slots.release()
            continue
        except OSError as exc:
            slots.release()
            emit(AcceptFailed(str(exc)))
            time.sleep(0.1)
            continue
        client = f"{peer[0]}:{peer[1]}"
        emit(ClientConnected(client))
        threading.Thread(target=_serve_one, name=f"aiotls-serve-{client}", daemon=True,
                         args=(sock, client, ctx, timeout, emit, slots.release)).start()


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def serve(ctx: TLSContext, certfile: str, *, host: str, port: int, max_connections: int,
          timeout: float, emit: Emit, stop: threading.Event | None = None) -> None:
    """Echo for every client until Ctrl-C, SIGTERM or ``stop`` is set (checked twice a
    second), then emit :class:`Stopped`.  Connections still open are left to finish on
    their own (daemon threads, each bounded by ``timeout``)."""
    try:
        listener = socket.create_server((host, port))
    except OSError as exc:
        raise CLIError(f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                       cause="the port is in use, or the address is not local to this machine",
                       hint="pick another --port or --host", code="listen-failed") from None
    slots = threading.BoundedSemaphore(max_connections)
    previous: Any = None
    if threading.current_thread() is threading.main_thread():
        # SIGTERM stops the server like Ctrl-C does: "stopped", exit status 0.
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        with listener:
            listener.settimeout(0.5)  # wake up regularly so Ctrl-C is handled promptly
            bound_host, bound_port = listener.getsockname()[:2]
            leaf = certificate_facts(load_certificates(certfile)[0], utcnow())
            emit(Listening(bound_host, bound_port, leaf.subject, leaf.public_key,
                           max_connections))
            _accept_loop(listener, slots, ctx, timeout, emit, stop or threading.Event())
    except KeyboardInterrupt:
        pass
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    emit(Stopped())


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "serve", formatter_class=formatter,
        help="run a TLS echo server",
        description=text("""
            Serve TLS on HOST:PORT and echo back whatever each client sends, one thread
            per connection (at most --max-connections at once).  Logs handshakes,
            closes and errors.  Stop it with Ctrl-C.
        """),
    )
    parser.add_argument("--cert", required=True, metavar="FILE",
                        help="certificate chain, PEM, leaf first")
    parser.add_argument("--key", required=True, metavar="FILE", help="private key, PEM")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=port_number, default=8443,
                        help="port to listen on (default: 8443; 0 picks a free one)")
    parser.add_argument("--alpn", metavar="PROTO", action="append",
                        help="accept this ALPN protocol (repeat for several)")
    parser.add_argument("--max-connections", type=positive_int, default=16, metavar="N",
                        help="serve at most N connections at once (default: 16)")
    parser.add_argument("--timeout", type=positive, default=30.0, metavar="SECONDS",
                        help="drop a connection idle for this long (default: 30)")
    add_version_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, render: Render) -> int:
    ctx = TLSContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    if args.alpn:
        ctx.set_alpn_protocols(args.alpn)
    set_versions(ctx, version_option(args))
    serve(ctx, args.cert, host=args.host, port=args.port, max_connections=args.max_connections,
          timeout=args.timeout, emit=render)
    return EXIT_OK
