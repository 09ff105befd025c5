"""A TLS echo server and client on anyio, with aiotls.anyio: runs on asyncio or trio.

Run:  python examples/anyio_echo.py [--backend asyncio|trio] [--uvloop] [LINE ...]

Needs the ``anyio`` extra (``pip install ".[anyio]"`` from a clone; ``".[trio]"`` for
``--backend trio``).  A throwaway CA
and a certificate for localhost/127.0.0.1 are generated in a temporary directory; the
server (an :class:`aiotls.anyio.TLSListener`) listens on 127.0.0.1, the client connects
with :func:`anyio.connect_tcp`, wraps the connection with
:meth:`aiotls.anyio.TLSStream.wrap`, sends each LINE and prints the echo.
"""

from __future__ import annotations

import argparse
import functools
import ssl
import sys
from typing import Any

import anyio
from anyio.abc import SocketAttribute
from anyio.streams.tls import TLSAttribute

import aiotls
from aiotls.anyio import TLSListener, TLSStream
from aiotls.testing import temporary_pki

DEADLINE = 15.0  # seconds for the whole demo
HANDSHAKE_TIMEOUT = 10.0  # seconds a client may take to complete the TLS handshake

log = functools.partial(print, flush=True)


async def echo(stream: TLSStream, finished: anyio.Event) -> None:
    """Serve one client (after its handshake succeeded): echo until it closes."""
    version = stream.extra(TLSAttribute.tls_version)
    log(f"server: client connected, {version}")
    try:
        async with stream:  # leaving it sends close_notify and closes the connection
            try:
                while True:
                    data = await stream.receive()
                    log(f"server: echoing {data!r}")
                    await stream.send(data)
            except anyio.EndOfStream:  # the client's close_notify: a clean end
                log("server: closed by the client")
    finally:
        finished.set()


async def client(port: int, ca_file: str, lines: list[str]) -> None:
    ctx = aiotls.create_default_context(cafile=ca_file)  # verifies the server: on by default
    tcp = await anyio.connect_tcp("127.0.0.1", port)
    tls = await TLSStream.wrap(tcp, hostname="localhost", ssl_context=ctx)
    name, version, bits = tls.extra(TLSAttribute.cipher)
    log(f"client: connected, {version} {name} ({bits} bits), verified for 'localhost'")
    async with tls:
        for line in lines:
            await tls.send(line.encode())
            echoed = b""
            while len(echoed) < len(line.encode()):
                echoed += await tls.receive()
            log(f"client: echo {echoed.decode()}")


async def main_async(ca_file: str, cert_file: str, key_file: str, lines: list[str]) -> None:
    server_ctx = aiotls.TLSContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert_file, key_file)
    with anyio.fail_after(DEADLINE):
        tcp_listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        listener = TLSListener(tcp_listener, server_ctx, handshake_timeout=HANDSHAKE_TIMEOUT)
        port = listener.extra(SocketAttribute.local_port)
        log(f"listening on 127.0.0.1:{port}")
        finished = anyio.Event()
        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, functools.partial(echo, finished=finished))
            await client(port, ca_file, lines)
            await finished.wait()  # the server saw the client's close_notify
            tg.cancel_scope.cancel()
    log("done")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    parser.add_argument("--uvloop", action="store_true", help="asyncio backend on uvloop")
    parser.add_argument("lines", nargs="*", default=["hello", "anyio + aiotls"])
    args = parser.parse_args(argv)
    options: dict[str, Any] = {"use_uvloop": True} if args.uvloop else {}
    if args.uvloop and args.backend != "asyncio":
        parser.error("--uvloop goes with --backend asyncio")
    with temporary_pki() as pki:
        try:
            anyio.run(main_async, pki.ca_file, pki.cert_file, pki.key_file, args.lines,
                      backend=args.backend, backend_options=options)
        except OSError as exc:  # aiotls.TLSError is an ssl.SSLError, an OSError
            print(f"error: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
