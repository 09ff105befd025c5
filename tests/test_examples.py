"""The examples/ scripts, run as a user would: ``python examples/X.py`` in a subprocess.

Servers are started with ``--port 0``; the port is read from their "listening on
HOST:PORT" line.  Everything stays on loopback and every wait is bounded.  The
https_server is also exercised by real clients: ``openssl s_client`` and ``curl``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from aiotls.testing import generate_pki

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
TIMEOUT = 20.0  # upper bound for any single script or external client
LOOPS = [pytest.param([], id="asyncio"), pytest.param(["--uvloop"], id="uvloop")]


def _env() -> dict[str, str]:
    # Run against this checkout even if aiotls is not installed.
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def run_example(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(EXAMPLES / script), *args], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=TIMEOUT)


def run_tool(*argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=TIMEOUT)


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:  # deliberately a failure, not a skip: CI installs both (see .ci/run)
        pytest.fail(f"{tool!r} is not installed, but this interop test needs it: "
                    f"install it (apt-get install -y {tool}) and run the tests again")
    return path


class ServerProcess:
    """An example server in a subprocess; its output is collected by a reader thread."""

    def __init__(self, script: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(EXAMPLES / script), *args], cwd=ROOT, env=_env(),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._eof = False
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        try:
            self.port = int(self.wait_for("listening on ").rsplit(":", 1)[1])
        except BaseException:
            self.stop()
            raise

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    @property
    def output(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def wait_for(self, text: str, timeout: float = TIMEOUT) -> str:
        """The first output line containing ``text``, waiting up to ``timeout`` for it.

        The scripts flush each line, so a line they printed is here promptly."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    if text in line:
                        return line
                remaining = deadline - time.monotonic()
                if self._eof or remaining <= 0:
                    break
                self._cond.wait(remaining)
        state = "exited" if self._eof else f"printed nothing like that within {timeout} s"
        raise AssertionError(f"server {state} before printing {text!r}:\n{self.output}")

    def wait_exit(self, timeout: float = 10.0) -> int:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"server still running after {timeout} s:\n{self.output}") \
                from None
        self._reader.join(5)
        return code

    def stop(self) -> None:
        """Ctrl-C (the scripts exit cleanly on it), then the hard way if needed."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@dataclass(frozen=True)
class DemoPKI:
    ca: str
    cert: str
    key: str


@pytest.fixture(scope="module")
def demo_pki(tmp_path_factory: pytest.TempPathFactory) -> DemoPKI:
    pki = generate_pki(tmp_path_factory.mktemp("examples-pki"))
    return DemoPKI(pki.ca_file, pki.cert_file, pki.key_file)


@pytest.fixture(scope="module")
def https_server(demo_pki: DemoPKI) -> Iterator[ServerProcess]:
    """One long-running https_server for the tests that send it several requests."""
    server = ServerProcess("https_server.py", "--cert", demo_pki.cert, "--key", demo_pki.key)
    try:
        yield server
    finally:
        server.stop()
    assert server.proc.returncode == 0, server.output  # Ctrl-C is a clean exit
    assert "Traceback" not in server.output, server.output


# --- echo ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("loop", LOOPS)
def test_echo_round_trip(loop: list[str]) -> None:
    server = ServerProcess("echo_server.py", "--once", *loop)  # generates its own throwaway PKI
    try:
        ca = server.lines[0].removeprefix("CA certificate: ")
        assert server.lines[0].startswith("CA certificate: ") and os.path.isfile(ca)
        client = run_example("echo_client.py", "127.0.0.1", str(server.port), "--cafile", ca,
                             "--servername", "localhost", *loop, "hello", "second line")
        assert client.returncode == 0, client.stdout + client.stderr
        assert "echo: hello\necho: second line\n" in client.stdout
        assert re.search(r"TLSv1\.3, cipher TLS_\w+", client.stdout), client.stdout
        assert "closed cleanly" in client.stdout
        assert server.wait_exit() == 0, server.output  # --once: done after one client
        assert "echoing b'second line\\n'" in server.output
        assert "closed by the client" in server.output
        assert not os.path.exists(ca)  # the throwaway PKI is removed on exit
    finally:
        server.stop()


def test_echo_client_verifies_the_server() -> None:
    server = ServerProcess("echo_server.py", "--once")
    try:
        ca = server.lines[0].removeprefix("CA certificate: ")
        # Verification is on by default: the system store does not trust the demo CA.
        untrusted = run_example("echo_client.py", "127.0.0.1", str(server.port), "hi")
        assert untrusted.returncode == 1, untrusted.stdout + untrusted.stderr
        assert untrusted.stderr.startswith("error: "), untrusted.stderr
        assert "trusted CA" in untrusted.stderr
        # The failed handshake never reached the echo callback: the server still waits.
        assert server.proc.poll() is None
        # Without --servername the IP address is verified (the certificate has an IP SAN).
        ok = run_example("echo_client.py", "127.0.0.1", str(server.port), "--cafile", ca, "hi")
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert "echo: hi" in ok.stdout
        assert server.wait_exit() == 0, server.output
    finally:
        server.stop()


# --- HTTPS --------------------------------------------------------------------------------------

@pytest.mark.parametrize("loop", LOOPS)
def test_https_get_from_https_server(demo_pki: DemoPKI, loop: list[str]) -> None:
    server = ServerProcess("https_server.py", "--cert", demo_pki.cert, "--key", demo_pki.key,
                   "--once", *loop)
    try:
        get = run_example("https_get.py", f"https://localhost:{server.port}/",
                          "--cafile", demo_pki.ca, *loop)
        assert get.returncode == 0, get.stdout + get.stderr
        lines = get.stdout.splitlines()
        assert re.match(r"\* connected to localhost:\d+: TLSv1\.3, cipher TLS_\w+ \(\d+ bits\), "
                        r"ALPN http/1\.1$", lines[0]), get.stdout
        assert lines[1] == "HTTP/1.1 200 OK", get.stdout
        length = next(int(v) for k, _, v in (x.partition(": ") for x in lines)
                      if k == "Content-Length")
        assert lines[-1] == f"body: {length} bytes", get.stdout
        assert "Connection: close" in lines
        assert server.wait_exit() == 0, server.output
        assert '"GET / HTTP/1.1" 200 TLSv1.3' in server.output
    finally:
        server.stop()


def test_https_get_body_and_404(https_server: ServerProcess, demo_pki: DemoPKI) -> None:
    base = f"https://127.0.0.1:{https_server.port}"  # an IP address: verified against IP SANs
    page = run_example("https_get.py", base + "/", "--cafile", demo_pki.ca, "--print-body")
    assert page.returncode == 0, page.stdout + page.stderr
    assert "<li>TLS version: TLSv1.3</li>" in page.stdout
    assert "<li>ALPN protocol: http/1.1</li>" in page.stdout
    assert "<li>Server name (SNI): None</li>" in page.stdout  # no SNI for IP addresses

    missing = run_example("https_get.py", base + "/missing?x=1", "--cafile", demo_pki.ca)
    assert missing.returncode == 1, missing.stdout + missing.stderr  # 4xx: exit status 1
    assert "HTTP/1.1 404 Not Found" in missing.stdout
    assert https_server.wait_for('"GET /missing?x=1 HTTP/1.1" 404', 5)


def test_https_get_verification(https_server: ServerProcess) -> None:
    url = f"https://localhost:{https_server.port}/"
    refused = run_example("https_get.py", url)  # system store only: the demo CA is unknown
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert refused.stderr.startswith("error: ") and "trusted CA" in refused.stderr
    assert "HTTP/1.1" not in refused.stdout

    insecure = run_example("https_get.py", url, "--insecure")
    assert insecure.returncode == 0, insecure.stdout + insecure.stderr
    assert "NOT verified" in insecure.stderr
    assert "HTTP/1.1 200 OK" in insecure.stdout


def _raw_request(port: int, ca: str, request: bytes) -> bytes:
    """Send ``request`` over stdlib TLS and return the whole response."""
    ctx = ssl.create_default_context(cafile=ca)
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw, \
            ctx.wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(request)
        response = b""
        while chunk := tls.recv(65536):
            response += chunk
        return response


@pytest.mark.parametrize(("request_bytes", "status"), [
    pytest.param(b"HEAD / HTTP/1.1\r\nHost: localhost\r\n\r\n", 200, id="head"),
    pytest.param(b"BOGUS\r\n\r\n", 400, id="garbage"),
    pytest.param(b"GET / HTTP/1.1\r\n\r\n", 400, id="no-host"),
    pytest.param(b"GET / HTTP/1.1\r\nHost : localhost\r\n\r\n", 400, id="space-before-colon"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: localhost\r\nX: \xff\r\n\r\n", 400, id="non-ascii"),
    pytest.param(b"POST / HTTP/1.1\r\nHost: localhost\r\n\r\n", 405, id="post"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: localhost\r\nX: " + b"a" * 20000 + b"\r\n\r\n", 431,
                 id="huge-head"),
])
def test_https_server_status_codes(https_server: ServerProcess, demo_pki: DemoPKI,
                                   request_bytes: bytes, status: int) -> None:
    response = _raw_request(https_server.port, demo_pki.ca, request_bytes)
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status} ".encode()), response[:200]
    assert b"\r\nConnection: close" in head
    match = re.search(rb"\r\nContent-Length: (\d+)\r\n", head + b"\r\n")
    assert match, head
    length = int(match.group(1))
    if request_bytes.startswith(b"HEAD"):
        assert body == b"" and length > 0
    else:
        assert len(body) == length


@contextlib.contextmanager
def canned_https_server(pki: DemoPKI, response: bytes) -> Iterator[int]:
    """A stdlib TLS server thread that answers one request with ``response`` and then
    closes the socket *without* close_notify, as many real HTTPS servers do."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.cert, pki.key)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(TIMEOUT)

    def serve() -> None:
        with contextlib.suppress(OSError), listener.accept()[0] as raw:
            raw.settimeout(TIMEOUT)
            with ctx.wrap_socket(raw, server_side=True) as tls:
                request = b""
                while b"\r\n\r\n" not in request and (chunk := tls.recv(4096)):
                    request += chunk
                tls.sendall(response)
            # Leaving the with-blocks closes the TCP socket; SSLSocket.close() sends no
            # close_notify (only unwrap() would).

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        thread.join(TIMEOUT)
        listener.close()


@pytest.mark.parametrize(("response", "returncode", "expected"), [
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 0, "hello",
                 id="content-length"),
    pytest.param(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n", 0, "hello world",
                 id="chunked"),
    pytest.param(b"HTTP/1.0 200 OK\r\n\r\nuntil eof", 0, "until eof", id="until-eof"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello", 1,
                 "error: the server closed the connection early (5 bytes of 10 received)",
                 id="truncated-body"),
])
def test_https_get_without_close_notify(demo_pki: DemoPKI, response: bytes, returncode: int,
                                        expected: str) -> None:
    with canned_https_server(demo_pki, response) as port:
        result = run_example("https_get.py", f"https://localhost:{port}/", "--cafile",
                             demo_pki.ca, "--print-body")
    assert result.returncode == returncode, result.stdout + result.stderr
    if returncode == 0:
        assert result.stdout == expected
        assert "TLSv1.3" in result.stderr  # the connection line goes to stderr here
        # Only a body delimited by the connection's end gets the truncation warning.
        assert ("truncation would go unnoticed" in result.stderr) == (b"Content" not in response
                                                                      and b"chunked" not in response)
    else:
        assert expected in result.stderr


def test_openssl_s_client(https_server: ServerProcess, demo_pki: DemoPKI) -> None:
    openssl = require("openssl")
    # -ign_eof: without it s_client quits as soon as its stdin (our request) is exhausted,
    # usually before the response arrives; with it, it waits for the server to close.
    result = run_tool(openssl, "s_client", "-connect", f"127.0.0.1:{https_server.port}",
                      "-CAfile", demo_pki.ca, "-verify_return_error",
                      "-servername", "localhost", "-alpn", "http/1.1", "-ign_eof",
                      stdin="GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "HTTP/1.1 200" in out
    assert "Verify return code: 0 (ok)" in out
    assert "ALPN protocol: http/1.1" in out
    assert "<li>Server name (SNI): localhost</li>" in out


@pytest.mark.parametrize(("curl_args", "version"), [
    pytest.param([], "TLSv1.3", id="tls1.3"),
    pytest.param(["--tls-max", "1.2"], "TLSv1.2", id="tls1.2"),
])
def test_curl(https_server: ServerProcess, demo_pki: DemoPKI, curl_args: list[str],
              version: str) -> None:
    curl = require("curl")
    port = https_server.port
    result = run_tool(curl, "-sS", "-v", "-i", "--max-time", "10", *curl_args,
                      "--cacert", demo_pki.ca, "--resolve", f"localhost:{port}:127.0.0.1",
                      f"https://localhost:{port}/")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("HTTP/1.1 200 OK\n"), result.stdout  # text mode: \n
    assert f"<li>TLS version: {version}</li>" in result.stdout
    assert "<li>ALPN protocol: http/1.1</li>" in result.stdout
    assert re.search(rf"SSL connection using {re.escape(version)}\b", result.stderr), \
        result.stderr
    assert re.search(r"ALPN.*server accepted.*http/1\.1", result.stderr), result.stderr


# --- STARTTLS -----------------------------------------------------------------------------------

STARTTLS_STEPS = [
    "S: 220 demo server ready, STARTTLS available",
    "S: 250 ok (plaintext)",
    "C: SECRET hunter2",
    "S: 530 issue STARTTLS first",
    "C: STARTTLS",
    "S: 220 go ahead",
    "client: upgrading to TLS",
    "S: 250 ok (TLS)",
    "S: 250 secret received over TLSv1.3",
    "S: 221 bye",
    "done",
]


@pytest.mark.parametrize("loop", [
    LOOPS[0],
    pytest.param(["--uvloop"], id="uvloop"),
])
def test_starttls(loop: list[str]) -> None:
    result = run_example("starttls.py", *loop)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    positions = [lines.index(step) for step in STARTTLS_STEPS]
    assert positions == sorted(positions), result.stdout  # in protocol order
    assert "server: upgrading to TLS" in lines
    assert any(re.match(r"client: TLS established, TLSv1\.3 .*verified for 'localhost'", line)
               for line in lines), result.stdout
    assert any(line.startswith("server: TLS established, TLSv1.3 ") for line in lines)
    assert result.stderr == ""


# --- anyio --------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", [
    pytest.param([], id="asyncio"),
    pytest.param(["--uvloop"], id="uvloop"),
    pytest.param(["--backend", "trio"], id="trio"),
])
def test_anyio_echo(backend: list[str]) -> None:
    result = run_example("anyio_echo.py", *backend, "first", "second line")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert re.match(r"listening on 127\.0\.0\.1:\d+$", lines[0]), result.stdout
    assert re.match(r"client: connected, TLSv1\.3 TLS_\w+ \(\d+ bits\), verified for "
                    r"'localhost'$", lines[1]), result.stdout
    assert "server: client connected, TLSv1.3" in lines
    positions = [lines.index(step) for step in (
        "server: echoing b'first'", "client: echo first",
        "server: echoing b'second line'", "client: echo second line",
        "server: closed by the client", "done")]
    assert positions == sorted(positions), result.stdout
    assert result.stderr == ""


# --- examples/frameworks_*.py: frameworks handed aiotls contexts ---------------------------------

BACKENDS = [pytest.param("asyncio", id="asyncio"), pytest.param("trio", id="trio")]
#: What only aiotls's connection reports: the server's TLSConnection and the P-384 group
#: the aiotls client asked for with set_groups() (OpenSSL's default pair is x25519).
SERVER_PROOF = "(server: aiotls, secp384r1)"
CLIENT_PROOF = "client: <aiotls.compat.TLSObject <aiotls.TLSConnection client"


def run_ok(script: str, *args: str) -> list[str]:
    result = run_example(script, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    return result.stdout.splitlines()


@pytest.mark.parametrize("loop", LOOPS)
def test_frameworks_asyncio(loop: list[str]) -> None:
    lines = run_ok("frameworks_asyncio.py", *loop)
    assert lines[0] == f"open_connection: hello {SERVER_PROOF}"
    assert lines[1].startswith(f"start_tls: upgraded {SERVER_PROOF} {CLIENT_PROOF}")
    assert "TLSv1.3" in lines[1]
    assert len(lines) == 2


@pytest.mark.parametrize("backend", BACKENDS)
def test_frameworks_anyio(backend: str) -> None:
    lines = run_ok("frameworks_anyio.py", "--backend", backend)
    assert lines == [lines[0]]
    assert lines[0].startswith(f"connect_tcp on {backend}: hello {SERVER_PROOF} {CLIENT_PROOF}")


def test_frameworks_trio() -> None:
    # The client's set_ciphers() restricts TLS 1.3 suites: only aiotls honours that.
    assert run_ok("frameworks_trio.py") == [
        "SSLStream: hello (server: TLSContext), client: TLSContext, "
        "TLSv1.3 TLS_CHACHA20_POLY1305_SHA256"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_frameworks_httpx(backend: str) -> None:
    lines = run_ok("frameworks_httpx.py", "--backend", backend)
    assert lines == [lines[0]]
    assert lines[0].startswith(
        f"httpx on {backend}: 200 'hello from aiotls (secp384r1)', {CLIENT_PROOF}")


@pytest.mark.parametrize("loop", LOOPS)
def test_frameworks_aiohttp(loop: list[str]) -> None:
    assert run_ok("frameworks_aiohttp.py", *loop) == [
        "aiohttp: 200 'hello from aiotls (TLSv1.3, secp384r1)'"]
