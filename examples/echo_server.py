"""A TLS echo server on asyncio Streams: every line a client sends comes straight back.

Run:  python examples/echo_server.py [--cert CERT --key KEY] [--host H] [--port P]
                                     [--once] [--uvloop]

Without --cert/--key a throwaway CA and a certificate for localhost/127.0.0.1 are
generated in a temporary directory; the CA file to give clients is printed first.
Then the server prints "listening on HOST:PORT" and serves until Ctrl-C (or, with
--once, until the first client is done).  Try it with examples/echo_client.py.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import ssl
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import aiotls
from aiotls.asyncio import start_server
from aiotls.testing import temporary_pki

HANDSHAKE_TIMEOUT = 10.0  # seconds a client may take to complete the TLS handshake
SHUTDOWN_TIMEOUT = 5.0  # seconds to wait for the client's close_notify after ours
MAX_LINE = 64 * 1024  # longest line we buffer; longer lines end the connection

# Servers usually write into a pipe or a log: flush every line so it shows up at once.
log = functools.partial(print, flush=True)


def server_context(certfile: str, keyfile: str) -> aiotls.TLSContext:
    """A server context: our certificate chain and key, secure defaults for the rest."""
    ctx = aiotls.TLSContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certfile, keyfile)
    return ctx


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
               idle_timeout: float) -> None:
    """Serve one client.  Runs only after its TLS handshake succeeded."""
    host, port = writer.get_extra_info("peername")[:2]
    peer = f"{host}:{port}"
    # The handshake results are available through get_extra_info(), as with ssl.
    name, _, bits = writer.get_extra_info("cipher")
    log(f"{peer}: connected, {writer.get_extra_info('tls_version')} {name} ({bits} bits)")
    try:
        while True:
            # A bounded wait: a client that goes quiet is disconnected.
            line = await asyncio.wait_for(reader.readline(), idle_timeout)
            if not line:  # the client sent close_notify: a clean end of the stream
                log(f"{peer}: closed by the client")
                break
            log(f"{peer}: echoing {line!r}")
            writer.write(line)
            await writer.drain()  # back-pressure: wait if the client reads slowly
    except TimeoutError:
        log(f"{peer}: idle for {idle_timeout:g} s, disconnecting")
    except ValueError:  # StreamReader's limit: a line longer than MAX_LINE
        log(f"{peer}: line too long, disconnecting")
    except OSError as exc:  # includes aiotls.TLSError (an ssl.SSLError) and resets
        log(f"{peer}: connection error: {exc}")
    finally:
        # close() sends our close_notify; wait_closed() returns when the client answered
        # (or after SHUTDOWN_TIMEOUT, raising ShutdownTimeoutError).
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def serve(args: argparse.Namespace, certfile: str, keyfile: str) -> int:
    ctx = server_context(certfile, keyfile)
    first_client_done = asyncio.Event()

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await echo(reader, writer, args.idle_timeout)
        finally:
            first_client_done.set()

    server = await start_server(on_client, args.host, args.port, ssl=ctx, limit=MAX_LINE,
                                ssl_handshake_timeout=HANDSHAKE_TIMEOUT,
                                ssl_shutdown_timeout=SHUTDOWN_TIMEOUT)
    async with server:
        # With --port 0 the OS picks a free port: report the one we actually got.
        host, port = server.sockets[0].getsockname()[:2]
        log(f"listening on {host}:{port}")
        if args.once:
            await first_client_done.wait()
        else:
            await server.serve_forever()
    return 0


def run(main: Callable[[], Coroutine[Any, Any, int]], use_uvloop: bool) -> int:
    """Run ``main()`` on a fresh event loop: asyncio's default, or uvloop's."""
    loop_factory = None
    if use_uvloop:
        import uvloop  # optional: the uvloop extra, pip install ".[uvloop]"

        loop_factory = uvloop.new_event_loop
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(main())
    except KeyboardInterrupt:
        log("stopped")
        return 0
    except OSError as exc:  # unreadable certificate (aiotls.TLSError), port already in use...
        print(f"error: {exc}", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cert", help="certificate chain (PEM); default: a throwaway one")
    parser.add_argument("--key", help="private key of --cert (PEM)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=0, help="port (default: any free port)")
    parser.add_argument("--once", action="store_true", help="exit after the first client")
    parser.add_argument("--idle-timeout", type=float, default=30.0,
                        help="disconnect clients idle this long, in seconds (default: %(default)s)")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop")
    args = parser.parse_args(argv)
    if (args.cert is None) != (args.key is None):
        parser.error("--cert and --key go together")

    if args.cert is not None:
        return run(lambda: serve(args, args.cert, args.key), args.uvloop)
    # No certificate given: make a throwaway PKI that lives as long as the server.
    with temporary_pki() as pki:
        log(f"CA certificate: {pki.ca_file}")
        return run(lambda: serve(args, pki.cert_file, pki.key_file), args.uvloop)


if __name__ == "__main__":
    sys.exit(main())
