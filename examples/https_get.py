"""An HTTPS GET with aiotls Streams: prints the status line, the headers and the body size.

Run:  python examples/https_get.py URL [--cafile CA] [--insecure] [--print-body] [--uvloop]

The server's certificate is verified against the system's CA store, or --cafile.
--insecure turns verification off (for testing only: anyone could impersonate the
server).  HTTP/1.1 is negotiated with ALPN.  Exits 0 for a 1xx-3xx response, 1 for
4xx/5xx responses and for errors.  Against examples/https_server.py:

    python examples/https_get.py https://localhost:PORT/ --cafile CA
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ssl
import sys
import urllib.parse
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import aiotls
from aiotls.asyncio import open_connection

MAX_HEAD = 64 * 1024  # largest status line + headers we accept
MAX_BODY = 16 * 1024 * 1024  # largest body we read
SHUTDOWN_TIMEOUT = 5.0  # seconds to wait for the server's close_notify after ours


class HTTPError(Exception):
    """The server's reply is not valid HTTP/1.1 (or too large for us)."""


def client_context(cafile: str | None, insecure: bool) -> aiotls.TLSContext:
    # Verification is on by default: the chain must lead to a trusted CA (the system's,
    # or the ones in cafile) and the certificate must name the host in the URL.
    ctx = aiotls.create_default_context(cafile=cafile)
    if insecure:
        # Two explicit steps, as with ssl.SSLContext: host name checking off, then
        # certificate verification off.
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    # Many HTTPS servers close the TCP connection without sending TLS close_notify.  By
    # default aiotls reports that as a TruncationError, because an attacker who cuts the
    # connection could otherwise pass a truncated stream off as complete; StreamReader
    # then raises it from the next read, even when the whole body is already buffered.
    # HTTP/1.1 does not need TLS to detect truncation: Content-Length (or the last chunk
    # of a chunked body) marks where the body ends, and readexactly() raises if fewer
    # bytes arrive.  So treating an EOF without close_notify as a normal end of stream is
    # safe here.  (The exception, a body delimited only by the connection's end, gets a
    # warning below.)
    ctx.suppress_ragged_eofs = True
    return ctx


async def read_chunked(reader: asyncio.StreamReader) -> bytes:
    """Decode a ``Transfer-Encoding: chunked`` body (RFC 9112 section 7.1)."""
    body = bytearray()
    while True:
        size_line = await reader.readuntil(b"\r\n")
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)  # drop chunk extensions
        except ValueError:
            raise HTTPError(f"bad chunk size line {size_line!r}") from None
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # skip trailer fields
                pass
            return bytes(body)
        if size < 0 or len(body) + size > MAX_BODY:
            raise HTTPError(f"chunked body larger than {MAX_BODY} bytes")
        body += await reader.readexactly(size)
        if await reader.readexactly(2) != b"\r\n":
            raise HTTPError("chunk not followed by CRLF")


async def read_until_eof(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while chunk := await reader.read(65536):
        body += chunk
        if len(body) > MAX_BODY:
            raise HTTPError(f"body larger than {MAX_BODY} bytes")
    return bytes(body)


@dataclass
class Response:
    status_line: str
    header_lines: list[str]
    status: int
    body: bytes


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   target: str, host_header: str) -> Response:
    """Send one GET request and read the complete response."""
    request = (f"GET {target} HTTP/1.1\r\n"
               f"Host: {host_header}\r\n"
               f"User-Agent: aiotls-example/{aiotls.__version__}\r\n"
               "Accept: */*\r\n"
               "Connection: close\r\n\r\n")
    writer.write(request.encode("ascii"))
    await writer.drain()

    # The status line and the header fields end with an empty line.
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise HTTPError(f"response head larger than {MAX_HEAD} bytes") from None
    status_line, *header_lines = head.decode("latin-1")[:-4].split("\r\n")
    try:
        version, status_text, *_ = status_line.split(" ", 2)
        status = int(status_text)
    except ValueError:
        raise HTTPError(f"malformed status line {status_line!r}") from None
    if not version.startswith("HTTP/1."):
        raise HTTPError(f"malformed status line {status_line!r}")
    headers: dict[str, str] = {}
    for line in header_lines:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()

    # Where does the body end?  (RFC 9112 section 6.3)
    if status in (204, 304) or 100 <= status < 200:
        body = b""
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        body = await read_chunked(reader)
    elif "content-length" in headers:
        length = int(headers["content-length"])
        if not 0 <= length <= MAX_BODY:
            raise HTTPError(f"unacceptable Content-Length {length}")
        body = await reader.readexactly(length)  # raises if the body is cut short
    else:
        # Delimited by the end of the connection only: with suppress_ragged_eofs a
        # truncation by an attacker would look like a complete body.
        body = await read_until_eof(reader)
        print("* warning: body delimited by connection close; a truncation would go "
              "unnoticed", file=sys.stderr)
    return Response(status_line, header_lines, status, body)


async def get(args: argparse.Namespace) -> int:
    url = urllib.parse.urlsplit(args.url)
    if url.scheme != "https" or not url.hostname:
        raise HTTPError(f"not an https:// URL: {args.url!r}")
    host = url.hostname  # lower-cased, IPv6 brackets removed
    port = url.port or 443
    target = (url.path or "/") + (f"?{url.query}" if url.query else "")
    host_header = f"[{host}]" if ":" in host else host  # IPv6 literals keep their brackets
    if port != 443:
        host_header += f":{port}"

    ctx = client_context(args.cafile, args.insecure)
    # One deadline for connecting, the handshake and the whole exchange.
    deadline = asyncio.get_running_loop().time() + args.timeout
    async with asyncio.timeout_at(deadline):
        # server_hostname (verified, and sent as SNI unless it is an IP address) is the
        # URL's host; open_connection() returns once the handshake is verified.
        reader, writer = await open_connection(host, port, ssl=ctx, server_hostname=host,
                                               limit=MAX_HEAD,
                                               ssl_shutdown_timeout=SHUTDOWN_TIMEOUT)
    try:
        name, _, bits = writer.get_extra_info("cipher")
        print(f"* connected to {host}:{port}: {writer.get_extra_info('tls_version')}, "
              f"cipher {name} ({bits} bits), ALPN {writer.get_extra_info('alpn_protocol')}",
              file=sys.stderr if args.print_body else sys.stdout)
        async with asyncio.timeout_at(deadline):
            response = await exchange(reader, writer, target, host_header)
    finally:
        # close() sends our close_notify; wait_closed() returns when the server answered or
        # dropped the connection (most HTTPS servers do that right after the response), or
        # after SHUTDOWN_TIMEOUT with a ShutdownTimeoutError: we have the response anyway.
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()

    if args.print_body:
        sys.stdout.buffer.write(response.body)
        sys.stdout.flush()
    else:
        print(response.status_line)
        for line in response.header_lines:
            print(line)
        print()
        print(f"body: {len(response.body)} bytes")
    return 0 if response.status < 400 else 1


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
    parser.add_argument("url", metavar="URL", help="an https:// URL")
    parser.add_argument("--cafile", help="trusted CA certificates (PEM); default: system store")
    parser.add_argument("--insecure", action="store_true",
                        help="do not verify the server's certificate (testing only!)")
    parser.add_argument("--print-body", action="store_true",
                        help="write the body to stdout instead of the status and headers")
    parser.add_argument("--timeout", type=float, default=15.0,
                        help="give up after this many seconds (default: %(default)s)")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop")
    args = parser.parse_args(argv)
    if args.insecure and args.cafile:
        parser.error("--insecure and --cafile exclude each other")
    if args.insecure:
        print("* warning: --insecure: the server's identity is NOT verified", file=sys.stderr)

    try:
        return run(lambda: get(args), args.uvloop)
    except TimeoutError:  # before OSError: TimeoutError is one
        print(f"error: no complete response within {args.timeout:g} seconds", file=sys.stderr)
    except asyncio.IncompleteReadError as exc:
        print(f"error: the server closed the connection early ({len(exc.partial)} bytes of "
              f"{exc.expected} received)", file=sys.stderr)
    except (HTTPError, asyncio.LimitOverrunError, ValueError) as exc:  # ValueError: bad numbers
        print(f"error: {exc}", file=sys.stderr)
    except OSError as exc:  # refused, reset, and every aiotls.TLSError (an ssl.SSLError)
        print(f"error: {exc}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
