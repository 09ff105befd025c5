"""A tiny HTTPS server (HTTP/1.1 over aiotls): "/" shows what TLS negotiated.

Run:  python examples/https_server.py [--cert CERT --key KEY] [--host H] [--port P]
                                      [--once] [--uvloop]

Without --cert/--key a throwaway CA and a certificate for localhost/127.0.0.1 are
generated in a temporary directory; the CA file to give clients is printed first.
Then "listening on HOST:PORT".  Try it with examples/https_get.py, curl or a browser:

    curl --cacert CA https://localhost:PORT/

One request per connection (every response says "Connection: close").  GET and HEAD
on "/" answer 200 with a small HTML page, other paths 404, other methods 405,
malformed requests 400 and oversized request heads 431.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import html
import ssl
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import aiotls
from aiotls.asyncio import start_server
from aiotls.testing import temporary_pki

HANDSHAKE_TIMEOUT = 10.0  # seconds a client may take to complete the TLS handshake
REQUEST_TIMEOUT = 10.0  # seconds a client may take to send its request head
SHUTDOWN_TIMEOUT = 5.0  # seconds to wait for the client's close_notify after ours
MAX_HEAD = 16 * 1024  # largest request line + headers we accept

REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
           408: "Request Timeout", 431: "Request Header Fields Too Large"}
TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
                        "ABCDEFGHIJKLMNOPQRSTUVWXYZ")

log = functools.partial(print, flush=True)  # flush: the output often goes to a pipe


class BadRequest(Exception):
    """The request cannot be served; ``status`` says why."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


@dataclass
class Request:
    method: str
    target: str
    version: str
    headers: dict[str, str]  # names lower-cased


def parse_head(head: bytes) -> Request:
    """Parse a request line and header fields (RFC 9112), strictly enough for a demo."""
    try:
        text = head.decode("ascii")
    except UnicodeDecodeError:
        raise BadRequest(400, "non-ASCII bytes in the request head") from None
    lines = text[:-4].split("\r\n")  # ``head`` ends with the empty line's CRLFCRLF
    if lines and lines[0] == "":  # RFC 9112 2.2: ignore one empty line before the request
        lines.pop(0)
    if not lines:
        raise BadRequest(400, "empty request")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        raise BadRequest(400, f"malformed request line {lines[0]!r}")
    method, target, version = parts
    if not method or not set(method) <= TOKEN_CHARS:
        raise BadRequest(400, f"invalid method {method!r}")
    if version not in ("HTTP/1.0", "HTTP/1.1"):
        raise BadRequest(400, f"unsupported version {version!r}")
    if not target.startswith("/"):
        raise BadRequest(400, f"unsupported request target {target!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        # No whitespace before the colon (a request smuggling vector), no obsolete folding.
        if not colon or not name or not set(name) <= TOKEN_CHARS:
            raise BadRequest(400, f"malformed header line {line!r}")
        name = name.lower()
        value = value.strip(" \t")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    if version == "HTTP/1.1" and "host" not in headers:
        raise BadRequest(400, "HTTP/1.1 request without a Host header")
    return Request(method, target, version, headers)


def tls_page(writer: asyncio.StreamWriter) -> bytes:
    """The HTML page for "/": what this connection negotiated."""
    cipher = writer.get_extra_info("cipher")
    host, port = writer.get_extra_info("peername")[:2]
    rows = {
        "TLS version": writer.get_extra_info("tls_version"),
        "Cipher suite": f"{cipher[0]} ({cipher[2]} bits)",
        "Key exchange": writer.get_extra_info("tls_group"),
        "ALPN protocol": writer.get_extra_info("alpn_protocol"),
        "Server name (SNI)": writer.get_extra_info("server_name"),
        "Client": f"{host}:{port}",
    }
    items = "".join(f"<li>{html.escape(k)}: {html.escape(str(v))}</li>\n" for k, v in rows.items())
    return (f"<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>aiotls</title></head>\n"
            f"<body><h1>Hello over TLS from aiotls</h1>\n<ul>\n{items}</ul></body></html>\n"
            ).encode()


def response(status: int, body: bytes, *, content_type: str = "text/plain; charset=utf-8",
             head_only: bool = False, extra: str = "") -> bytes:
    head = (f"HTTP/1.1 {status} {REASONS[status]}\r\n"
            f"Content-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n"  # the body's end: clients need no EOF
            f"Connection: close\r\n"
            f"Server: aiotls-example\r\n{extra}\r\n")
    return head.encode("ascii") + (b"" if head_only else body)


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Serve one request on one connection.  Runs only after the TLS handshake succeeded."""
    host, port = writer.get_extra_info("peername")[:2]
    request_line = "-"
    try:
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                # The reader's limit (MAX_HEAD) bounds how much we buffer.
                head = await reader.readuntil(b"\r\n\r\n")
            request = parse_head(head)
            request_line = f"{request.method} {request.target} {request.version}"
            path = request.target.partition("?")[0]
            if path != "/":
                raise BadRequest(404, f"no page at {path}")
            if request.method not in ("GET", "HEAD"):
                raise BadRequest(405, f"method {request.method} not allowed")
            reply = response(200, tls_page(writer), content_type="text/html; charset=utf-8",
                             head_only=request.method == "HEAD")
            status = 200
        except BadRequest as exc:
            status = exc.status
            extra = "Allow: GET, HEAD\r\n" if status == 405 else ""
            reply = response(status, f"{status} {REASONS[status]}: {exc}\n".encode(),
                             extra=extra)
        except asyncio.LimitOverrunError:
            status, reply = 431, response(431, b"request head too large\n")
        except asyncio.IncompleteReadError as exc:
            if not exc.partial:  # connected, then closed without a request: nothing to say
                log(f"{host}:{port} closed without a request")
                return
            status, reply = 400, response(400, b"incomplete request head\n")
        except TimeoutError:
            status, reply = 408, response(408, b"timed out waiting for the request\n")
        writer.write(reply)
        await writer.drain()
        log(f'{host}:{port} "{request_line}" {status} {writer.get_extra_info("tls_version")}')
    except OSError as exc:  # resets, aiotls.TLSError (an ssl.SSLError) from the peer
        log(f"{host}:{port} connection error: {exc}")
    finally:
        # close() flushes the response, then sends close_notify; wait_closed() returns when
        # the client answered or closed (at most SHUTDOWN_TIMEOUT later).
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def serve(args: argparse.Namespace, certfile: str, keyfile: str) -> int:
    ctx = aiotls.TLSContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certfile, keyfile)
    # ALPN: tell clients that offer h2 and http/1.1 (browsers, curl) to speak HTTP/1.1.
    ctx.set_alpn_protocols(["http/1.1"])
    first_done = asyncio.Event()

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handle(reader, writer)
        finally:
            first_done.set()

    server = await start_server(on_client, args.host, args.port, ssl=ctx, limit=MAX_HEAD,
                                ssl_handshake_timeout=HANDSHAKE_TIMEOUT,
                                ssl_shutdown_timeout=SHUTDOWN_TIMEOUT)
    async with server:
        host, port = server.sockets[0].getsockname()[:2]
        log(f"listening on {host}:{port}")
        if args.once:
            await first_done.wait()
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
    parser.add_argument("--once", action="store_true", help="exit after the first connection")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop")
    args = parser.parse_args(argv)
    if (args.cert is None) != (args.key is None):
        parser.error("--cert and --key go together")

    if args.cert is not None:
        return run(lambda: serve(args, args.cert, args.key), args.uvloop)
    with temporary_pki() as pki:
        log(f"CA certificate: {pki.ca_file}")
        return run(lambda: serve(args, pki.cert_file, pki.key_file), args.uvloop)


if __name__ == "__main__":
    sys.exit(main())
