"""A TLS echo client on asyncio Streams: sends each MESSAGE as a line, prints the echo.

Run:  python examples/echo_client.py HOST PORT [--cafile CA] [--servername NAME]
                                     [--uvloop] MESSAGE...

The server's certificate is verified against --cafile (default: the system's CA
store) for --servername (default: HOST).  Against examples/echo_server.py:

    python examples/echo_server.py            # prints its CA file and port
    python examples/echo_client.py 127.0.0.1 PORT --cafile CA --servername localhost hi
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import aiotls
from aiotls.asyncio import open_connection


async def talk(args: argparse.Namespace) -> int:
    # A client context verifies the server's certificate chain and host name.
    ctx = aiotls.create_default_context(cafile=args.cafile)
    server_hostname = args.servername or args.host

    # One deadline for the whole session (connect, handshake, echoes, close): a silent
    # server cannot hang the client.
    async with asyncio.timeout(args.timeout):
        reader, writer = await open_connection(args.host, args.port, ssl=ctx,
                                               server_hostname=server_hostname)
        # After open_connection() returns, the handshake is complete and verified.
        name, _, bits = writer.get_extra_info("cipher")
        print(f"connected to {args.host}:{args.port} as {server_hostname!r}: "
              f"{writer.get_extra_info('tls_version')}, cipher {name} ({bits} bits), "
              f"key exchange {writer.get_extra_info('tls_group')}")

        mismatches = 0
        for message in args.messages:
            line = message.encode() + b"\n"
            writer.write(line)
            await writer.drain()
            echoed = await reader.readline()
            print(f"echo: {echoed.decode(errors='replace').rstrip()}")
            if echoed != line:
                mismatches += 1
                print(f"  expected {line!r}, got {echoed!r}", file=sys.stderr)

        # close() sends close_notify; wait_closed() returns once the server answered
        # with its own, so both sides know no data was cut off.
        writer.close()
        await writer.wait_closed()
        print("closed cleanly")
    return 1 if mismatches else 0


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
    parser.add_argument("host", metavar="HOST")
    parser.add_argument("port", metavar="PORT", type=int)
    parser.add_argument("messages", metavar="MESSAGE", nargs="+", help="one line each")
    parser.add_argument("--cafile", help="trusted CA certificates (PEM); default: system store")
    parser.add_argument("--servername", help="name to verify and send as SNI (default: HOST)")
    parser.add_argument("--timeout", type=float, default=15.0,
                        help="give up after this many seconds (default: %(default)s)")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop")
    args = parser.parse_args(argv)
    if any("\n" in m or "\r" in m for m in args.messages):
        parser.error("a MESSAGE cannot contain line breaks")

    try:
        return run(lambda: talk(args), args.uvloop)
    except TimeoutError:  # before OSError: TimeoutError is one
        print(f"error: no answer within {args.timeout:g} seconds", file=sys.stderr)
    except OSError as exc:  # refused, reset, and every aiotls.TLSError (an ssl.SSLError)
        print(f"error: {exc}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
