"""STARTTLS: a line protocol that starts in plaintext and upgrades to TLS in place.

Run:  python examples/starttls.py [--uvloop]

A server and a client in one process, over loopback, in the style of SMTP/IMAP:
the client may only send its secret after both ends turned the *same* asyncio
streams into TLS with ``aiotls.asyncio.upgrade_stream()``.  Every step is printed:

    S: 220 ...            a line the server sent
    C: STARTTLS           a line the client sent
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ssl
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import aiotls
from aiotls.asyncio import upgrade_stream
from aiotls.testing import temporary_pki

DEADLINE = 15.0  # seconds for the whole demo


async def send(writer: asyncio.StreamWriter, who: str, line: str) -> None:
    print(f"{who}: {line}")
    writer.write(line.encode() + b"\r\n")
    await writer.drain()


async def receive(reader: asyncio.StreamReader) -> str:
    line = await reader.readline()
    if not line:
        raise ConnectionError("the peer closed the connection")
    return line.decode().rstrip("\r\n")


# --- server ------------------------------------------------------------------------------

async def serve_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                       ctx: aiotls.TLSContext) -> None:
    """The server side: an SMTP-like dialogue with STARTTLS."""
    tls = False
    try:
        await send(writer, "S", "220 demo server ready, STARTTLS available")
        while True:
            command = await receive(reader)
            verb = command.split(" ", 1)[0].upper()
            if verb == "NOOP":
                await send(writer, "S", f"250 ok ({'TLS' if tls else 'plaintext'})")
            elif verb == "SECRET":
                if not tls:  # never accept credentials over plaintext
                    await send(writer, "S", "530 issue STARTTLS first")
                else:
                    version = writer.get_extra_info("tls_version")
                    await send(writer, "S", f"250 secret received over {version}")
            elif verb == "STARTTLS":
                if tls:
                    await send(writer, "S", "503 TLS already active")
                    continue
                await send(writer, "S", "220 go ahead")
                # The handshake runs on the same connection; afterwards the same reader
                # and writer carry encrypted data.
                print("server: upgrading to TLS")
                await upgrade_stream(writer, ctx, ssl_handshake_timeout=5.0)
                tls = True
                name, _, bits = writer.get_extra_info("cipher")
                print(f"server: TLS established, {writer.get_extra_info('tls_version')} "
                      f"{name} ({bits} bits)")
            elif verb == "QUIT":
                await send(writer, "S", "221 bye")
                break
            else:
                await send(writer, "S", f"500 unknown command {verb!r}")
    finally:
        # Over TLS, close() sends close_notify; wait_closed() waits for the client's.
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        print("server: connection closed")


# --- client ------------------------------------------------------------------------------

async def client(host: str, port: int, ctx: aiotls.TLSContext) -> None:
    reader, writer = await asyncio.open_connection(host, port)  # an ordinary TCP stream
    print(f"client: connected to {host}:{port} in plaintext")

    async def command(line: str) -> str:
        await send(writer, "C", line)
        return await receive(reader)  # the server printed its reply as it sent it

    try:
        await receive(reader)  # the greeting
        await command("NOOP")
        await command("SECRET hunter2")  # refused: not over TLS yet
        if not (await command("STARTTLS")).startswith("220"):
            raise ConnectionError("the server refused STARTTLS")
        # upgrade_stream() refuses to start TLS if plaintext is already buffered (a reply
        # injected by a man in the middle would otherwise read as if it came over TLS).
        print("client: upgrading to TLS")
        # Verifies the server certificate for "localhost" against our demo CA.
        await upgrade_stream(writer, ctx, server_hostname="localhost",
                             ssl_handshake_timeout=5.0)
        name, _, bits = writer.get_extra_info("cipher")
        print(f"client: TLS established, {writer.get_extra_info('tls_version')} {name} "
              f"({bits} bits), server certificate verified for 'localhost'")
        await command("NOOP")
        await command("SECRET hunter2")  # accepted now
        await command("QUIT")
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        print("client: connection closed")


async def demo() -> int:
    with temporary_pki() as pki:  # throwaway CA + certificate for localhost
        server_ctx = aiotls.TLSContext(ssl.PROTOCOL_TLS_SERVER)
        server_ctx.load_cert_chain(pki.cert_file, pki.key_file)
        client_ctx = aiotls.create_default_context(cafile=pki.ca_file)
    # (The contexts hold the certificates in memory: the files are no longer needed.)

    server_done = asyncio.Event()
    server_errors: list[BaseException] = []

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await serve_client(reader, writer, server_ctx)
        except Exception as exc:  # report it rather than leave it to asyncio's logger
            print(f"server: error: {exc!r}", file=sys.stderr)
            server_errors.append(exc)
        finally:
            server_done.set()  # lets the demo wait for the server side to finish too

    # Both ends start as plain asyncio streams: nothing TLS-specific until STARTTLS.
    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    async with server, asyncio.timeout(DEADLINE):
        port = server.sockets[0].getsockname()[1]
        print(f"server: listening on 127.0.0.1:{port} (plaintext)")
        await client("127.0.0.1", port, client_ctx)
        await server_done.wait()
    if server_errors:
        return 1
    print("done")
    return 0


def run(main: Callable[[], Coroutine[Any, Any, int]], use_uvloop: bool) -> int:
    """Run ``main()`` on a fresh event loop: asyncio's default, or uvloop's."""
    loop_factory = None
    if use_uvloop:
        import uvloop  # optional: the uvloop extra, pip install ".[uvloop]"

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(main())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop")
    args = parser.parse_args(argv)
    try:
        return run(demo, args.uvloop)
    except TimeoutError:
        print(f"error: the demo did not finish within {DEADLINE:g} seconds", file=sys.stderr)
    except OSError as exc:  # ConnectionError, and every aiotls.TLSError (an ssl.SSLError)
        print(f"error: {exc}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
