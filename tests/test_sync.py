"""aiotls.sync: TLSContext.wrap_socket() and TLSSocket, with real peers over loopback.

Peers: the stdlib ``ssl`` module (OpenSSL) in a thread, aiotls on both ends, and the
stdlib's own blocking clients and servers (http.client, urllib, http.server) given an
aiotls context.  Every wait is bounded by a socket timeout or a bounded join.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import http.server
import os
import select
import socket
import ssl
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator

import pytest
from cryptography.hazmat.primitives import serialization

import aiotls
import aiotls.sync
from aiotls.sync import TLSSocket
from tests.helpers import PKI, VERSION_NAMES, VERSION_PARAMS
from tests.sockloop import listen, peer_thread

TIMEOUT = 5.0


def _pin(ctx: aiotls.TLSContext | ssl.SSLContext, version: ssl.TLSVersion) -> None:
    ctx.minimum_version = version
    ctx.maximum_version = version


def _connect(address: tuple[str, int], timeout: float = TIMEOUT) -> socket.socket:
    return socket.create_connection(address, timeout=timeout)


def _client(pki: PKI, address: tuple[str, int], *, version: ssl.TLSVersion | None = None,
            ctx: aiotls.TLSContext | None = None, **kwargs: object) -> TLSSocket:
    if ctx is None:
        ctx = pki.client_context()
        if version is not None:
            _pin(ctx, version)
    sock = ctx.wrap_socket(_connect(address), server_hostname="localhost", **kwargs)
    assert isinstance(sock, TLSSocket)
    return sock


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    got = bytearray()
    while len(got) < n:
        chunk = sock.recv(min(n - len(got), 1 << 20))
        assert chunk, f"EOF after {len(got)} of {n} bytes"
        got += chunk
    return bytes(got)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = listen()
    yield sock
    sock.close()


def _stdlib_server(listener: socket.socket, ctx: ssl.SSLContext,
                   body: Callable[[ssl.SSLSocket], object]) -> Callable[[], object]:
    def run() -> object:
        raw, _ = listener.accept()
        raw.settimeout(TIMEOUT)
        with ctx.wrap_socket(raw, server_side=True) as tls:
            return body(tls)
    return run


def _aiotls_server(listener: socket.socket, ctx: aiotls.TLSContext,
                   body: Callable[[TLSSocket], object], **kwargs: object) -> Callable[[], object]:
    def run() -> object:
        raw, _ = listener.accept()
        raw.settimeout(TIMEOUT)
        with ctx.wrap_socket(raw, server_side=True, **kwargs) as tls:
            assert isinstance(tls, TLSSocket)
            return body(tls)
    return run


def _echo(tls: socket.socket) -> int:
    total = 0
    while data := tls.recv(65536):
        tls.sendall(data)
        total += len(data)
    return total


# --- interop --------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSION_PARAMS)
def test_aiotls_client_stdlib_server(pki: PKI, listener: socket.socket,
                                     version: ssl.TLSVersion) -> None:
    sctx = pki.stdlib_server_context()
    sctx.set_alpn_protocols(["h2", "http/1.1"])
    _pin(sctx, version)

    def body(tls: ssl.SSLSocket) -> tuple[object, ...]:
        return (_echo(tls), tls.version(), tls.selected_alpn_protocol())

    with peer_thread(_stdlib_server(listener, sctx, body)) as peer:
        ctx = pki.client_context()
        ctx.set_alpn_protocols(["http/1.1"])
        with _client(pki, listener.getsockname(), ctx=ctx) as tls:
            assert isinstance(tls, ssl.SSLSocket)
            assert isinstance(tls.connection, aiotls.TLSConnection)
            assert tls.version() == VERSION_NAMES[version]
            assert tls.selected_alpn_protocol() == "http/1.1"
            cipher = tls.cipher()
            assert cipher is not None and cipher[1] == VERSION_NAMES[version]
            assert tls.shared_ciphers() is None  # (client side, as in the stdlib)
            assert tls.compression() is None and tls.selected_npn_protocol() is None
            assert tls.getpeercert()["subjectAltName"][0] == ("DNS", "localhost")
            assert tls.getpeercert(binary_form=True) == pki.servers["ecdsa-p256"][0].cert.public_bytes(
                serialization.Encoding.DER)
            assert not tls.server_side and tls.server_hostname == "localhost"
            assert tls.context is not None and tls.session_reused is False
            leaf = tls.getpeercert(binary_form=True)
            assert tls.get_unverified_chain() == [leaf]
            verified = tls.get_verified_chain()  # leaf to the trust anchor
            assert verified[0] == leaf and verified[-1] == pki.ca.cert.public_bytes(
                serialization.Encoding.DER)
            tls.sendall(b"ping")
            assert _recv_exactly(tls, 4) == b"ping"
            assert tls.pending() == 0
        # close() sent close_notify: the stdlib server's recv() saw a clean end
        assert peer.result(TIMEOUT) == (4, VERSION_NAMES[version], "http/1.1")


@pytest.mark.parametrize("version", VERSION_PARAMS)
def test_stdlib_client_aiotls_server(pki: PKI, listener: socket.socket,
                                     version: ssl.TLSVersion) -> None:
    sctx = pki.server_context()
    _pin(sctx, version)

    def body(tls: TLSSocket) -> tuple[object, ...]:
        return (_echo(tls), tls.version(), tls.server_side, tls.getpeercert())

    with peer_thread(_aiotls_server(listener, sctx, body)) as peer:
        cctx = pki.stdlib_client_context()
        with cctx.wrap_socket(_connect(listener.getsockname()),
                              server_hostname="localhost") as tls:
            assert tls.version() == VERSION_NAMES[version]
            tls.sendall(b"hello aiotls")
            assert _recv_exactly(tls, 12) == b"hello aiotls"
            tls.unwrap()  # close_notify both ways
        assert peer.result(TIMEOUT) == (12, VERSION_NAMES[version], True, None)


@pytest.mark.parametrize("version", VERSION_PARAMS)
def test_aiotls_on_both_ends(pki: PKI, listener: socket.socket,
                             version: ssl.TLSVersion) -> None:
    sctx = pki.server_context()
    sctx.set_alpn_protocols(["x-test"])

    def body(tls: TLSSocket) -> tuple[object, ...]:
        return (_echo(tls), tls.selected_alpn_protocol(), tls.version())

    with peer_thread(_aiotls_server(listener, sctx, body)) as peer:
        ctx = pki.client_context()
        _pin(ctx, version)
        ctx.set_alpn_protocols(["x-test"])
        with _client(pki, listener.getsockname(), ctx=ctx) as tls:
            for message in (b"a", b"bc" * 1000, b"d" * 70000):
                tls.sendall(message)
                assert _recv_exactly(tls, len(message)) == message
        assert peer.result(TIMEOUT) == (1 + 2000 + 70000, "x-test", VERSION_NAMES[version])


# --- the stdlib's own blocking clients and servers ------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    seen: list[object] = []

    def do_GET(self) -> None:
        type(self).seen.append(type(self.request))
        body = f"hello from {self.path}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def https_server(pki: PKI) -> Iterator[tuple[int, type[_Handler]]]:
    """A ThreadingHTTPServer whose listening socket aiotls wrapped (handshakes in accept)."""
    handler = type("Handler", (_Handler,), {"seen": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.socket = pki.server_context().wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield server.server_address[1], handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(TIMEOUT)
        assert not thread.is_alive()


def test_http_client_get_from_http_server(pki: PKI,
                                          https_server: tuple[int, type[_Handler]]) -> None:
    port, handler = https_server
    conn = http.client.HTTPSConnection("localhost", port, context=pki.client_context(),
                                       timeout=TIMEOUT)
    try:
        conn.request("GET", "/one")
        response = conn.getresponse()
        assert response.status == 200
        assert response.read() == b"hello from /one\n"
        assert isinstance(conn.sock, TLSSocket)  # aiotls did the client's TLS
        conn.request("GET", "/two")  # keep-alive: a second request on the same connection
        assert conn.getresponse().read() == b"hello from /two\n"
    finally:
        conn.close()
    assert handler.seen == [TLSSocket, TLSSocket]  # ... and the server's


def test_urlopen_with_aiotls_context(pki: PKI,
                                     https_server: tuple[int, type[_Handler]]) -> None:
    port, handler = https_server
    with urllib.request.urlopen(f"https://localhost:{port}/url", context=pki.client_context(),
                                timeout=TIMEOUT) as response:
        assert isinstance(response.fp.raw._sock, TLSSocket)  # aiotls did the client's TLS
        assert response.read() == b"hello from /url\n"
    assert handler.seen == [TLSSocket]


def test_http_client_refuses_untrusted_server(pki: PKI,
                                              https_server: tuple[int, type[_Handler]]) -> None:
    port, _ = https_server
    conn = http.client.HTTPSConnection("localhost", port, context=aiotls.TLSContext(),
                                       timeout=TIMEOUT)
    with pytest.raises(ssl.SSLCertVerificationError) as info:
        conn.request("GET", "/")
    assert isinstance(info.value, aiotls.CertificateError)
    conn.close()


def test_smtplib_starttls(pki: PKI, listener: socket.socket) -> None:
    """STARTTLS: smtplib wraps its connected socket in the middle of a plaintext dialogue."""
    import smtplib

    def server() -> list[bytes]:
        raw, _ = listener.accept()
        raw.settimeout(TIMEOUT)
        commands = []
        with raw:
            f = raw.makefile("rb")
            raw.sendall(b"220 test ESMTP\r\n")
            commands.append(f.readline().split()[0].upper())
            raw.sendall(b"250-test\r\n250 STARTTLS\r\n")
            commands.append(f.readline().strip())
            raw.sendall(b"220 go ahead\r\n")
            f.close()
            with pki.stdlib_server_context().wrap_socket(raw, server_side=True) as tls:
                f = tls.makefile("rb")
                for reply in (b"250 test\r\n", b"221 bye\r\n"):
                    commands.append(f.readline().split()[0].upper())
                    tls.sendall(reply)
                f.close()
        return commands

    with peer_thread(server) as peer:
        host, port = listener.getsockname()
        with smtplib.SMTP(host, port, local_hostname="client", timeout=TIMEOUT) as smtp:
            smtp.ehlo()
            assert smtp.starttls(context=pki.client_context())[0] == 220
            assert isinstance(smtp.sock, TLSSocket) and smtp.sock.version() is not None
            assert smtp.ehlo()[0] == 250
        assert peer.result(TIMEOUT) == [b"EHLO", b"STARTTLS", b"EHLO", b"QUIT"]


# --- reading and writing --------------------------------------------------------------------------


def test_makefile_reads_lines(pki: PKI, listener: socket.socket) -> None:
    lines = [b"first line\n", b"x" * 20000 + b"\n", b"last\n"]

    def body(tls: ssl.SSLSocket) -> None:
        tls.sendall(b"".join(lines))
        assert tls.recv(100) == b"thanks\n"

    with peer_thread(_stdlib_server(listener, pki.stdlib_server_context(), body)) as peer:
        with _client(pki, listener.getsockname()) as tls, tls.makefile("rwb") as f:
            assert [f.readline() for _ in lines] == lines
            f.write(b"thanks\n")
            f.flush()
        peer.result(TIMEOUT)


@pytest.mark.parametrize("version", VERSION_PARAMS)
def test_large_transfer_with_concurrent_reader_and_writer(pki: PKI, listener: socket.socket,
                                                          version: ssl.TLSVersion) -> None:
    """8 MiB each way: one thread writes while the other reads the echo (the stdlib
    server echoes, so the two directions overlap all the time)."""
    payload = os.urandom(8 << 20)
    sctx = pki.stdlib_server_context()
    _pin(sctx, version)
    with peer_thread(_stdlib_server(listener, sctx, _echo)) as peer:
        with _client(pki, listener.getsockname(), version=version) as tls:
            tls.settimeout(30.0)
            with peer_thread(tls.sendall, payload) as writer:
                digest = hashlib.sha256()
                got = 0
                while got < len(payload):
                    chunk = tls.recv(1 << 20)
                    assert chunk
                    digest.update(chunk)
                    got += len(chunk)
                writer.result(30.0)
            assert got == len(payload)
            assert digest.digest() == hashlib.sha256(payload).digest()
        assert peer.result(30.0) == len(payload)


def test_concurrent_reader_and_writer_aiotls_both_ends(pki: PKI,
                                                       listener: socket.socket) -> None:
    """The server reads in one thread and writes in another on the same TLSSocket."""
    n = 2000

    def body(tls: TLSSocket) -> int:
        def write() -> None:
            for i in range(n):
                tls.sendall(b"%06d\n" % i)
        with peer_thread(write) as writer:
            received = _recv_exactly(tls, 7 * n)
            writer.result(TIMEOUT)
        assert received == b"".join(b"%06d\n" % i for i in range(n))
        return len(received)

    with peer_thread(_aiotls_server(listener, pki.server_context(), body)) as peer:
        with _client(pki, listener.getsockname()) as tls:
            with peer_thread(tls.sendall, b"".join(b"%06d\n" % i for i in range(n))) as writer:
                echoed = _recv_exactly(tls, 7 * n)
                writer.result(TIMEOUT)
            assert echoed == b"".join(b"%06d\n" % i for i in range(n))
        assert peer.result(TIMEOUT) == 7 * n


def test_recv_into_and_sendfile(pki: PKI, listener: socket.socket) -> None:
    content = os.urandom(300_000)
    def receive(tls: ssl.SSLSocket) -> bytes:
        got = _recv_exactly(tls, len(content))
        tls.sendall(b"ok")
        return got

    with peer_thread(_stdlib_server(listener, pki.stdlib_server_context(), receive)) as peer:
        with _client(pki, listener.getsockname()) as tls, tempfile.TemporaryFile() as f:
            f.write(content)
            f.seek(0)
            assert tls.sendfile(f) == len(content)
            # (closing with unread data -- TLS 1.3 tickets -- would reset the connection)
            assert _recv_exactly(tls, 2) == b"ok"
        assert peer.result(TIMEOUT) == content

    with peer_thread(_stdlib_server(listener, pki.stdlib_server_context(),
                                    lambda tls: tls.sendall(b"0123456789"))) as peer:
        with _client(pki, listener.getsockname()) as tls:
            buf = bytearray(4)
            assert tls.recv_into(buf) == 4 and buf == b"0123"
            assert tls.recv_into(buf, 2) == 2 and buf[:2] == b"45"
            assert tls.pending() == 4  # the rest was decrypted with the same record
            assert tls.read(10) == b"6789"
        peer.result(TIMEOUT)


# --- closing ---------------------------------------------------------------------------------------


def test_unwrap_then_plaintext_on_the_same_socket(pki: PKI, listener: socket.socket) -> None:
    def body(tls: ssl.SSLSocket) -> bytes:
        assert _recv_exactly(tls, 4) == b"STOP"
        plain = tls.unwrap()
        plain.sendall(b"plain text after TLS")  # right behind the close_notify exchange
        return plain.recv(100)

    with peer_thread(_stdlib_server(listener, pki.stdlib_server_context(), body)) as peer:
        with _client(pki, listener.getsockname()) as tls:
            tls.sendall(b"STOP")
            plain = tls.unwrap()
            assert plain is tls and tls.connection is None and tls.version() is None
            assert _recv_exactly(plain, 20) == b"plain text after TLS"
            plain.sendall(b"plain reply")
        assert peer.result(TIMEOUT) == b"plain reply"


def test_aiotls_server_unwrap_with_stdlib_client(pki: PKI, listener: socket.socket) -> None:
    def body(tls: TLSSocket) -> bytes:
        assert _recv_exactly(tls, 4) == b"STOP"
        tls.unwrap()
        return _recv_exactly(tls, 5)

    with peer_thread(_aiotls_server(listener, pki.server_context(), body)) as peer:
        cctx = pki.stdlib_client_context()
        with cctx.wrap_socket(_connect(listener.getsockname()),
                              server_hostname="localhost") as tls:
            tls.sendall(b"STOP")
            plain = tls.unwrap()
            plain.sendall(b"plain")
            assert peer.result(TIMEOUT) == b"plain"


@pytest.mark.parametrize("suppress", [True, False])
def test_eof_without_close_notify(pki: PKI, listener: socket.socket, suppress: bool) -> None:
    """The stdlib's close() sends no close_notify: a truncation, tolerated or not."""
    def body(tls: ssl.SSLSocket) -> None:
        tls.sendall(b"last words")
        assert tls.recv(10) == b"go"

    with (peer_thread(_stdlib_server(listener, pki.stdlib_server_context(), body)) as peer,
          _client(pki, listener.getsockname(), suppress_ragged_eofs=suppress) as tls):
        assert _recv_exactly(tls, 10) == b"last words"
        tls.sendall(b"go")
        peer.result(TIMEOUT)
        if suppress:
            assert tls.recv(10) == b""
        else:
            with pytest.raises(ssl.SSLEOFError) as info:
                tls.recv(10)
            assert isinstance(info.value, aiotls.TruncationError)
            assert not isinstance(info.value, ssl.SSLSyscallError)


def test_tls13_half_close_the_peer_answers_after_our_close_notify(
        pki: PKI, listener: socket.socket) -> None:
    """TLS 1.3 (RFC 8446 6.1): shutdown(SHUT_WR) closes our direction only; the server
    reads the end, still answers, and its close() ends the connection."""
    def body(tls: TLSSocket) -> None:
        request = _recv_until_eof(tls)
        tls.sendall(b"heard: " + request)

    with peer_thread(_aiotls_server(listener, pki.server_context(), body)) as server:
        with _client(pki, listener.getsockname(), suppress_ragged_eofs=False) as tls:
            tls.sendall(b"question")
            tls.shutdown(socket.SHUT_WR)
            assert _recv_until_eof(tls) == b"heard: question"
        server.result(TIMEOUT)


def _recv_until_eof(tls: socket.socket) -> bytes:
    got = b""
    while data := tls.recv(65536):
        got += data
    return got


@pytest.mark.parametrize("how", ["unwrap", "shutdown", "close"])
def test_clean_close_is_not_a_truncation(pki: PKI, listener: socket.socket, how: str) -> None:
    """The peer's close_notify ends recv() with b"" even with suppress_ragged_eofs=False;
    aiotls sends close_notify on unwrap(), shutdown(SHUT_WR) and close()."""
    def body(tls: TLSSocket) -> None:
        tls.sendall(b"bye")
        if how == "unwrap":
            tls.unwrap()
        elif how == "shutdown":
            tls.shutdown(socket.SHUT_WR)
            assert tls.recv(10) == b""  # the client's close_notify answers ours

    def client() -> bytes:
        with _client(pki, listener.getsockname(), suppress_ragged_eofs=False) as tls:
            got = _recv_exactly(tls, 3)
            assert tls.recv(10) == b""
            return got

    with peer_thread(client) as peer:
        _aiotls_server(listener, pki.server_context(), body)()
        assert peer.result(TIMEOUT) == b"bye"
    # and a stdlib client with suppress_ragged_eofs=False sees a clean close too
    with peer_thread(_aiotls_server(listener, pki.server_context(), body)) as server:
        cctx = pki.stdlib_client_context()
        with cctx.wrap_socket(_connect(listener.getsockname()), server_hostname="localhost",
                              suppress_ragged_eofs=False) as tls:
            assert _recv_exactly(tls, 3) == b"bye"
            assert tls.recv(10) == b""
            if how != "close":
                tls.unwrap()
        server.result(TIMEOUT)


# --- timeouts and non-blocking mode ---------------------------------------------------------------


def test_silent_peer_times_out_in_the_handshake(pki: PKI, listener: socket.socket) -> None:
    raw = _connect(listener.getsockname(), timeout=0.3)
    accepted, _ = listener.accept()  # a TCP peer that never answers the ClientHello
    with accepted:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            pki.client_context().wrap_socket(raw, server_hostname="localhost")
        assert time.monotonic() - started < 0.3 + 2.0


def test_recv_times_out_and_the_socket_goes_on(pki: PKI, listener: socket.socket) -> None:
    go = threading.Event()

    def body(tls: ssl.SSLSocket) -> None:
        assert go.wait(TIMEOUT)
        tls.sendall(b"late")
        assert tls.recv(10) == b""

    with peer_thread(_stdlib_server(listener, pki.stdlib_server_context(), body)) as peer:
        with _client(pki, listener.getsockname()) as tls:
            tls.settimeout(0.2)
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                tls.recv(10)
            assert time.monotonic() - started < 2.0
            go.set()
            tls.settimeout(TIMEOUT)
            assert _recv_exactly(tls, 4) == b"late"
        peer.result(TIMEOUT)


def test_non_blocking_handshake_and_reads(pki: PKI, listener: socket.socket) -> None:
    start, go = threading.Event(), threading.Event()

    def server() -> None:
        raw, _ = listener.accept()
        raw.settimeout(TIMEOUT)
        assert start.wait(TIMEOUT)  # the client's first do_handshake() found nothing to read
        with pki.stdlib_server_context().wrap_socket(raw, server_side=True) as tls:
            assert go.wait(TIMEOUT)
            tls.sendall(b"now")
            assert _recv_exactly(tls, 2) == b"ok"

    with peer_thread(server) as peer:
        raw = _connect(listener.getsockname())
        raw.setblocking(False)
        with pytest.raises(ValueError, match="non-blocking"):  # as the stdlib
            pki.client_context().wrap_socket(raw, server_hostname="localhost")
        tls = pki.client_context().wrap_socket(raw, server_hostname="localhost",
                                               do_handshake_on_connect=False)
        with tls:
            deadline = time.monotonic() + TIMEOUT
            wants = set()
            while True:
                try:
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    wants.add("read")
                    start.set()
                    select.select([tls], [], [], deadline - time.monotonic())
                except ssl.SSLWantWriteError:
                    wants.add("write")
                    select.select([], [tls], [], deadline - time.monotonic())
                assert time.monotonic() < deadline
            assert "read" in wants and tls.version() is not None
            with pytest.raises(ssl.SSLWantReadError):
                tls.recv(10)
            go.set()
            got = b""
            while len(got) < 3:
                assert select.select([tls], [], [], TIMEOUT)[0]
                try:
                    got += tls.recv(10)
                except ssl.SSLWantReadError:
                    continue
            assert got == b"now"
            assert tls.send(b"ok") == 2
        peer.result(TIMEOUT)


def test_non_blocking_writes_raise_want_write_and_lose_nothing(pki: PKI,
                                                              listener: socket.socket) -> None:
    reading = threading.Event()

    def body(tls: TLSSocket) -> str:
        assert reading.wait(TIMEOUT)  # nothing read until the client's socket is full
        digest = hashlib.sha256()
        while data := tls.recv(65536):
            digest.update(data)
        return digest.hexdigest()

    with peer_thread(_aiotls_server(listener, pki.server_context(), body)) as peer:
        with _client(pki, listener.getsockname()) as tls:
            tls.setblocking(False)
            sent = hashlib.sha256()
            block = os.urandom(100_000)
            deadline = time.monotonic() + TIMEOUT
            full = False
            while not full:  # until the socket takes no more
                assert time.monotonic() < deadline
                try:
                    sent.update(block[:tls.send(block)])
                except ssl.SSLWantWriteError:
                    full = True
            reading.set()
            for _ in range(20):  # then more, waiting for room each time
                while True:
                    assert select.select([], [tls], [], TIMEOUT)[1]
                    try:
                        sent.update(block[:tls.send(block)])
                        break
                    except ssl.SSLWantWriteError:
                        continue
            tls.settimeout(TIMEOUT)
            tls.unwrap()  # flushes what is queued, then close_notify both ways
        assert peer.result(TIMEOUT) == sent.hexdigest()


# --- accept and connect ---------------------------------------------------------------------------


def test_accept_on_a_wrapped_listener(pki: PKI, listener: socket.socket) -> None:
    wrapped = pki.server_context().wrap_socket(listener, server_side=True)
    assert isinstance(wrapped, TLSSocket) and wrapped.connection is None

    def client() -> bytes:
        with pki.stdlib_client_context().wrap_socket(
                _connect(wrapped.getsockname()), server_hostname="localhost") as tls:
            tls.sendall(b"hi")
            return _recv_exactly(tls, 2)

    with wrapped, peer_thread(client) as peer:
        conn, addr = wrapped.accept()
        with conn:
            assert isinstance(conn, TLSSocket) and conn.server_side
            assert conn.version() is not None  # handshake done in accept()
            assert addr == conn.getpeername()
            assert _recv_exactly(conn, 2) == b"hi"
            conn.sendall(b"yo")
            assert peer.result(TIMEOUT) == b"yo"


def test_connect_on_an_unconnected_wrapped_socket(pki: PKI, listener: socket.socket) -> None:
    with peer_thread(_stdlib_server(listener, pki.stdlib_server_context(), _echo)) as peer:
        tls = pki.client_context().wrap_socket(socket.socket(), server_hostname="localhost")
        with tls:
            tls.settimeout(TIMEOUT)
            assert tls.version() is None
            tls.connect(listener.getsockname())
            assert tls.version() is not None
            with pytest.raises(ValueError, match="already-connected"):
                tls.connect(listener.getsockname())
            tls.sendall(b"echo")
            assert _recv_exactly(tls, 4) == b"echo"
        assert peer.result(TIMEOUT) == 4


def test_connect_ex_then_handshake(pki: PKI, listener: socket.socket) -> None:
    with peer_thread(_stdlib_server(listener, pki.stdlib_server_context(), _echo)) as peer:
        tls = pki.client_context().wrap_socket(socket.socket(), server_hostname="localhost",
                                               do_handshake_on_connect=False)
        with tls:
            tls.settimeout(TIMEOUT)
            assert tls.connect_ex(listener.getsockname()) == 0
            assert tls.version() is None
            tls.do_handshake()
            tls.sendall(b"x")
            assert tls.recv(1) == b"x"
        assert peer.result(TIMEOUT) == 1


# --- errors ---------------------------------------------------------------------------------------


def _failing_stdlib_server(listener: socket.socket, ctx: ssl.SSLContext) -> Callable[[], str]:
    def run() -> str:
        raw, _ = listener.accept()
        raw.settimeout(TIMEOUT)
        with raw, pytest.raises(ssl.SSLError) as info:
            ctx.wrap_socket(raw, server_side=True)
        return str(info.value)
    return run


def test_untrusted_certificate(pki: PKI, listener: socket.socket) -> None:
    with peer_thread(_failing_stdlib_server(listener, pki.stdlib_server_context())) as peer:
        with pytest.raises(ssl.SSLCertVerificationError) as info:
            _client(pki, listener.getsockname(), ctx=aiotls.TLSContext())
        assert isinstance(info.value, aiotls.CertificateError)
        # the alert went out before the error was raised
        assert "ALERT" in peer.result(TIMEOUT).upper()


def test_hostname_mismatch(pki: PKI, listener: socket.socket) -> None:
    with peer_thread(_failing_stdlib_server(listener, pki.stdlib_server_context())) as peer:
        sock = _connect(listener.getsockname())
        with pytest.raises(ssl.SSLCertVerificationError) as info:
            pki.client_context().wrap_socket(sock, server_hostname="other.example")
        assert isinstance(info.value, aiotls.CertificateError)
        assert info.value.code == "hostname-mismatch" and "other.example" in info.value.what
        assert sock.fileno() == -1  # detached; the TLSSocket was closed on failure
        assert "ALERT" in peer.result(TIMEOUT).upper()


def test_garbage_after_the_handshake_is_a_tls_error(pki: PKI, listener: socket.socket) -> None:
    def body(tls: TLSSocket) -> aiotls.TLSError:
        # a forged record (garbage ciphertext) behind the TLS layer's back
        socket.socket.sendall(tls, b"\x17\x03\x03\x00\x20" + b"\x00" * 32)
        with pytest.raises(aiotls.AlertReceived) as info:  # the client's alert
            tls.recv(10)
        return info.value

    with peer_thread(_aiotls_server(listener, pki.server_context(), body)) as peer:
        with _client(pki, listener.getsockname()) as tls:
            with pytest.raises(aiotls.TLSError) as info:
                tls.recv(10)
            assert not isinstance(info.value, ssl.SSLSyscallError)
            assert info.value.alert == aiotls.AlertDescription.bad_record_mac
            with pytest.raises(aiotls.TLSError):  # the connection stays failed
                tls.sendall(b"more")
        assert peer.result(TIMEOUT).alert == aiotls.AlertDescription.bad_record_mac


def test_misuse(pki: PKI, listener: socket.socket) -> None:
    with pytest.raises(TypeError):
        TLSSocket()
    with socket.socket() as raw:
        with pytest.raises(TypeError):
            aiotls.sync.wrap_socket(raw, pki.stdlib_client_context())  # type: ignore[arg-type]
        with pytest.raises(aiotls.TLSUsageError):
            pki.client_context().wrap_socket(raw)  # check_hostname needs server_hostname
        with pytest.raises(aiotls.TLSUsageError):
            pki.client_context().wrap_socket(raw, server_side=True)  # a client context
        assert raw.fileno() != -1  # refused before taking the socket over
    tls = pki.client_context().wrap_socket(socket.socket(), server_hostname="localhost")
    with tls:
        with pytest.raises(aiotls.TLSUsageError):
            pki.client_context().wrap_socket(tls, server_hostname="localhost")
        with pytest.raises(ValueError, match="tls-bogus"):
            tls.get_channel_binding("tls-bogus")
        with pytest.raises(ValueError, match="sendto not allowed"):
            tls.sendto(b"x", ("127.0.0.1", 9))
        with pytest.raises(OSError, match="connected") as info:
            tls.recv(1)
        assert info.value.errno == errno.ENOTCONN


@pytest.mark.parametrize("version", VERSION_PARAMS)
def test_tls_unique_matches_the_stdlib_servers(pki: PKI, listener: socket.socket,
                                               version: ssl.TLSVersion) -> None:
    def body(tls: ssl.SSLSocket) -> bytes | None:
        binding = tls.get_channel_binding()
        _echo(tls)
        return binding

    with peer_thread(_stdlib_server(listener, pki.stdlib_server_context(), body)) as peer:
        with _client(pki, listener.getsockname(), version=version) as tls:
            ours = tls.get_channel_binding()
            tls.unwrap()
        theirs = peer.result(TIMEOUT)
    if version == ssl.TLSVersion.TLSv1_2:
        assert ours is not None and len(ours) == 12 and ours == theirs
    else:
        assert ours is None  # RFC 8446 C.5: undefined for TLS 1.3 (OpenSSL still answers)


# --- sessions and post-handshake authentication ---------------------------------------------------


@pytest.mark.parametrize("version", VERSION_PARAMS)
def test_session_resumption(pki: PKI, listener: socket.socket, version: ssl.TLSVersion) -> None:
    sctx = pki.server_context()

    def serve_twice() -> list[bool | None]:
        reused = []
        for _ in range(2):
            raw, _ = listener.accept()
            raw.settimeout(TIMEOUT)
            with sctx.wrap_socket(raw, server_side=True) as tls:
                _echo(tls)
                reused.append(tls.session_reused)
        return reused

    with peer_thread(serve_twice) as peer:
        ctx = pki.client_context()
        _pin(ctx, version)
        with _client(pki, listener.getsockname(), ctx=ctx) as tls:
            tls.sendall(b"one")
            assert _recv_exactly(tls, 3) == b"one"  # (TLS 1.3 tickets arrive with the data)
            session = tls.session
        assert isinstance(session, aiotls.TLSSession)
        # the session set on an unconnected socket, before connect()
        with ctx.wrap_socket(socket.socket(), server_hostname="localhost") as tls:
            tls.settimeout(TIMEOUT)
            tls.session = session
            tls.connect(listener.getsockname())
            assert tls.session_reused is True
            with pytest.raises(ValueError, match="after handshake"):
                tls.session = session
            with pytest.raises(ValueError, match="after handshake"):
                tls.context = ctx
            tls.sendall(b"two")
            assert _recv_exactly(tls, 3) == b"two"
        assert peer.result(TIMEOUT) == [False, True]


def test_post_handshake_client_authentication(pki: PKI, listener: socket.socket) -> None:
    sctx = pki.server_context()
    sctx.verify_mode = ssl.CERT_REQUIRED
    sctx.load_verify_locations(cafile=pki.ca_file)
    sctx.post_handshake_auth = True

    def body(tls: TLSSocket) -> object:
        assert tls.getpeercert() is None
        tls.verify_client_post_handshake()
        tls.sendall(b"show me")
        assert _recv_exactly(tls, 4) == b"here"
        return tls.getpeercert()["subject"]

    with peer_thread(_aiotls_server(listener, sctx, body)) as peer:
        ctx = pki.client_context()
        ctx.load_cert_chain(pki.client[1], pki.client[2])
        with _client(pki, listener.getsockname(), ctx=ctx) as tls:
            assert _recv_exactly(tls, 7) == b"show me"
            tls.sendall(b"here")
            assert peer.result(TIMEOUT) == ((("commonName", "client.example.test"),),)


# --- Channel: the event-level blocking driver (the command line's) --------------------------------


def test_channel_drives_a_connection_event_by_event(pki: PKI, listener: socket.socket) -> None:
    def body(tls: ssl.SSLSocket) -> bytes:
        got = _recv_exactly(tls, 5)
        tls.sendall(got.upper())
        tls.unwrap()  # close_notify both ways
        return got

    with peer_thread(_stdlib_server(listener, pki.stdlib_server_context(), body)) as peer, \
            _connect(listener.getsockname()) as sock:
        conn = aiotls.TLSConnection(pki.client_context(), server_hostname="localhost")
        channel = aiotls.sync.Channel(sock, conn, peer="the server", io_timeout=TIMEOUT)
        deadline = time.monotonic() + TIMEOUT
        hs = channel.handshake(deadline)
        assert hs.server_name == "localhost" and channel.bytes_received > 0
        channel.send(b"hello")
        event = channel.next_event(deadline, "waiting for the echo")
        assert event == aiotls.DataReceived(b"HELLO")
        assert channel.close(deadline) is True  # the peer's close_notify arrived
        with pytest.raises(aiotls.TLSUsageError, match="already over"):
            channel.next_event(deadline, "waiting for more")
        assert peer.result(TIMEOUT) == b"hello"


def test_channel_deadline(pki: PKI, listener: socket.socket) -> None:
    with _connect(listener.getsockname()) as sock, listener.accept()[0]:
        conn = aiotls.TLSConnection(pki.client_context(), server_hostname="localhost")
        channel = aiotls.sync.Channel(sock, conn, peer="a silent peer", io_timeout=TIMEOUT)
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            channel.handshake(started + 0.3)
        assert time.monotonic() - started < 2.0
