"""``python -m aiotls serve``: the echo server, run as a real subprocess on 127.0.0.1.

Real clients (aiotls's ``connect``, ``openssl s_client``, ``curl``, the stdlib's ``ssl``
and plain sockets) meet it, and the tests read what it logs: that silent connections do
not starve real clients and are closed at the handshake timeout, that each failed
handshake is logged with its cause from the server's side and a fix in the right
party's terms, the development certificates and the connect command it prints, mutual
TLS, ALPN, the key log and the trace.  Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pathlib
import shlex
import shutil
import socket
import ssl
import struct
import subprocess
import time
from collections.abc import Iterator

import pytest

from aiotls.cli import serve as cli_serve
from tests.helpers import ServeProcess, run_cli
from tests.sockloop import require_openssl

TIMEOUT = 20.0


def _client_context(ca_file: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca_file)
    return ctx


def _echo_once(port: int, ca_file: str, message: bytes = b"ping") -> bytes:
    """A stdlib (OpenSSL) client: handshake with verification, one message, its echo."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            _client_context(ca_file).wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(message)
        return tls.recv(100)


def _ca(directory: pathlib.Path) -> str:
    return str(directory / "aiotls-dev-certs" / "ca.pem")


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """serve with development certificates (made in its working directory), a short
    handshake timeout and ALPN."""
    cwd = tmp_path_factory.mktemp("serve-dev")
    proc = ServeProcess("--handshake-timeout", "3", "--alpn", "h2", "--alpn", "http/1.1",
                        cwd=str(cwd))
    proc.ca_file = _ca(cwd)  # type: ignore[attr-defined]
    try:
        yield proc
    finally:
        code, out, err = proc.stop()
        assert code == 0, out + err
        assert out.rstrip().endswith("stopped"), out


def _ca_of(server: ServeProcess) -> str:
    ca: str = server.ca_file  # type: ignore[attr-defined]
    return ca


# --- no starvation ------------------------------------------------------------------------------


def test_silent_connections_do_not_starve_real_clients(tmp_path: pathlib.Path) -> None:
    """32 TCP connections that never speak (the old thread-per-connection serve had 16
    slots, so a real client waited for their timeout) do not delay a real client; they
    are closed and logged, with the cause, once the handshake timeout passed."""
    proc = ServeProcess("--handshake-timeout", "3", cwd=str(tmp_path))
    silent: list[socket.socket] = []
    try:
        for _ in range(32):
            silent.append(socket.create_connection(("127.0.0.1", proc.port), timeout=5))
        proc.wait_for("] connected", count=32)
        started = time.monotonic()
        assert _echo_once(proc.port, _ca(tmp_path), b"real client") == b"real client"
        assert time.monotonic() - started < 2.0
        line = proc.wait_for("sent no TLS handshake within 3 s", count=32, timeout=15)
        assert "a port scanner, a health check, or a client that expected the server to " \
            "speak first" in line
        for sock in silent:  # closed by the server
            sock.settimeout(5)
            with contextlib.suppress(ConnectionResetError):
                assert sock.recv(10) == b""
    finally:
        for sock in silent:
            sock.close()
        code, out, err = proc.stop()
    assert code == 0, out + err
    assert out.count("handshake OK") == 1


def test_a_stalled_handshake_is_told_from_a_silent_client(dev_server: ServeProcess) -> None:
    with socket.create_connection(("127.0.0.1", dev_server.port), timeout=5) as sock:
        sock.sendall(b"\x16\x03\x01\x02\x00\x01\x00")  # the start of a ClientHello
        line = dev_server.wait_for("started a handshake but did not finish it within 3 s",
                                   timeout=15)
    assert line.startswith("[127.0.0.1:")
    assert "raise --handshake-timeout" in dev_server.output


# --- failed handshakes, logged with their cause --------------------------------------------------


def test_plain_http_is_blamed_on_the_client(dev_server: ServeProcess) -> None:
    with socket.create_connection(("127.0.0.1", dev_server.port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        sock.recv(100)  # (the alert, then the close)
        port = sock.getsockname()[1]
    line = dev_server.wait_for(f"[127.0.0.1:{port}] error:")
    assert line.endswith("a client sent plain HTTP to this TLS port: it should use https://")
    assert "use https://HOST:PORT/ on the client" in dev_server.output


def test_curl_over_http_to_the_tls_port(dev_server: ServeProcess) -> None:
    curl = shutil.which("curl")
    if curl is None:
        pytest.fail("these tests need curl (apt-get install curl)")
    before = dev_server.output.count("plain HTTP to this TLS port")
    subprocess.run([curl, "-sS", "--max-time", "5", f"http://127.0.0.1:{dev_server.port}/"],
                   capture_output=True, timeout=TIMEOUT, check=False)
    dev_server.wait_for("a client sent plain HTTP to this TLS port", count=before + 1)


@pytest.mark.parametrize("client", ["aiotls", "openssl", "curl"])
def test_a_client_that_does_not_trust_the_certificate(dev_server: ServeProcess,
                                                      client: str) -> None:
    """The client refuses the server's certificate (alert unknown_ca): the server's log
    says so, and that the client needs the CA -- naming the connect flag and the file."""
    before = dev_server.output.count("does not trust this server's certificate")
    target = f"127.0.0.1:{dev_server.port}"
    if client == "aiotls":
        assert run_cli("connect", target, "--timeout", "10").returncode == 1
    elif client == "openssl":
        subprocess.run([require_openssl(), "s_client", "-connect", target,
                        "-verify_return_error"], input=b"", capture_output=True,
                       timeout=TIMEOUT, check=False)
    else:
        curl = shutil.which("curl")
        assert curl is not None, "these tests need curl"
        subprocess.run([curl, "-sS", "--max-time", "5", f"https://{target}/"],
                       capture_output=True, timeout=TIMEOUT, check=False)
    line = dev_server.wait_for("does not trust this server's certificate", count=before + 1)
    assert "(alert unknown_ca received)" in line
    assert f"fix: give the client the CA: connect --cafile {_ca_of(dev_server)}" \
        in dev_server.output


def test_an_obsolete_client_is_told_to_upgrade(dev_server: ServeProcess) -> None:
    subprocess.run([require_openssl(), "s_client", "-connect", f"127.0.0.1:{dev_server.port}",
                    "-tls1_1"], input=b"", capture_output=True, timeout=TIMEOUT, check=False)
    dev_server.wait_for("the client offered only TLS versions this server does not allow")
    assert "fix: upgrade the client to TLS 1.2 or later" in dev_server.output


def test_no_common_cipher_suite(dev_server: ServeProcess) -> None:
    subprocess.run([require_openssl(), "s_client", "-connect", f"127.0.0.1:{dev_server.port}",
                    "-tls1_2", "-cipher", "AES128-SHA"], input=b"", capture_output=True,
                   timeout=TIMEOUT, check=False)
    line = dev_server.wait_for("no mutual ciphersuite")
    assert "alert handshake_failure" in line
    assert "likely cause: the client offered no cipher suite, key-exchange group or " \
        "signature algorithm this server accepts" in dev_server.output


def test_a_tcp_reset_during_the_handshake(dev_server: ServeProcess) -> None:
    sock = socket.create_connection(("127.0.0.1", dev_server.port), timeout=5)
    port = sock.getsockname()[1]
    sock.sendall(b"\x16\x03\x01\x02\x00\x01\x00")
    time.sleep(0.2)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()  # RST
    line = dev_server.wait_for(f"[127.0.0.1:{port}] error:")
    assert "the client reset the TCP connection during the handshake" in line


def test_a_version_pinned_server_names_its_flag(tmp_path: pathlib.Path) -> None:
    proc = ServeProcess("--tls13", cwd=str(tmp_path))
    try:
        result = run_cli("connect", f"127.0.0.1:{proc.port}", "--cafile", _ca(tmp_path),
                         "--tls12", "--timeout", "10")
        proc.wait_for("the client offered only TLS versions this server does not allow")
        proc.wait_for("fix: ")
    finally:
        code, out, err = proc.stop()
    assert result.returncode == 1
    assert "or leave out --tls13" in out, out


# --- what serve sets up -------------------------------------------------------------------------


def test_development_certificates_and_the_connect_command(tmp_path: pathlib.Path) -> None:
    """Without --cert: a development CA and certificate, the CA's path and the exact
    connect command (with the bound port) printed; the command works; a second run reuses
    the CA."""
    proc = ServeProcess(cwd=str(tmp_path))
    try:
        command = proc.wait_for("python -m aiotls connect").strip()
        assert command == (f"python -m aiotls connect 127.0.0.1:{proc.port} --cafile "
                           f"{_ca(tmp_path)}")
        words = shlex.split(command)
        result = run_cli(*words[3:], "--send", "hello")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "received  'hello'" in result.stdout
        proc.wait_for("echoed 5 bytes")
    finally:
        code, out, err = proc.stop()
    assert code == 0, out + err
    assert f"CA               {_ca(tmp_path)} (new: clients must trust it)" in out
    assert "Development certificate for localhost, 127.0.0.1, ::1" in out
    again = ServeProcess(cwd=str(tmp_path))
    try:
        assert _echo_once(again.port, _ca(tmp_path)) == b"ping"
    finally:
        code, out, err = again.stop()
    assert f"{_ca(tmp_path)} (reused)" in out


def test_mutual_tls_with_development_certificates(tmp_path: pathlib.Path) -> None:
    other = run_cli("certs", "create", "other.test", "--dir", str(tmp_path / "other"),
                    "--client", "stranger")
    assert other.returncode == 0, other.stderr
    proc = ServeProcess("--require-client-cert", cwd=str(tmp_path))
    dev = tmp_path / "aiotls-dev-certs"
    try:
        command = proc.wait_for("python -m aiotls connect").strip()
        assert command.endswith(f"--cafile {dev / 'ca.pem'} --cert "
                                f"{dev / 'serve-client-cert.pem'} --key "
                                f"{dev / 'serve-client-key.pem'}")
        good = run_cli(*shlex.split(command)[3:], "--send", "hi")
        assert good.returncode == 0, good.stdout + good.stderr
        proc.wait_for("client-cert=CN=aiotls development client")
        target = f"127.0.0.1:{proc.port}"
        assert run_cli("connect", target, "--cafile", str(dev / "ca.pem"),
                       "--timeout", "10").returncode == 1
        line = proc.wait_for("the client sent no certificate, and this server requires one")
        assert "(--require-client-cert" in line
        proc.wait_for(f"fix: the client must present a certificate issued by the CA in "
                      f"{dev / 'ca.pem'}: connect --cert {dev / 'serve-client-cert.pem'}")
        stranger = run_cli("connect", target, "--cafile", str(dev / "ca.pem"), "--cert",
                           str(tmp_path / "other" / "client-cert.pem"), "--key",
                           str(tmp_path / "other" / "client-key.pem"), "--timeout", "10")
        assert stranger.returncode == 1
        line = proc.wait_for("not issued by a CA this server trusts")
        assert "CN=stranger" in line
    finally:
        code, out, err = proc.stop()
    assert code == 0, out + err
    assert "client certificates: required, issued by a CA in" in out


def test_require_client_cert_with_cert_needs_cafile(tmp_path: pathlib.Path) -> None:
    made = run_cli("certs", "create", "localhost", "--dir", str(tmp_path))
    assert made.returncode == 0, made.stderr
    result = run_cli("serve", "--cert", str(tmp_path / "server-cert.pem"), "--key",
                     str(tmp_path / "server-key.pem"), "--require-client-cert", "--port", "0")
    assert result.returncode == 2
    assert "error: --require-client-cert needs --cafile FILE" in result.stderr
    assert "fix: pass --cafile with the CA that issues the client certificates" in result.stderr


def test_cert_and_key_mistakes_are_explained(tmp_path: pathlib.Path) -> None:
    made = run_cli("certs", "create", "localhost", "--dir", str(tmp_path))
    assert made.returncode == 0, made.stderr
    cert, key = str(tmp_path / "server-cert.pem"), str(tmp_path / "server-key.pem")
    alone = run_cli("serve", "--key", key, "--port", "0")
    assert alone.returncode == 2 and "error: --key was given without --cert" in alone.stderr
    for args in (["--cert", cert], ["--cert", key, "--key", cert]):
        result = run_cli("serve", *args, "--port", "0")
        assert result.returncode == 1, result.stdout + result.stderr
        assert "Traceback" not in result.stderr
        assert f"error: cannot use --cert {args[1]!r}" in result.stderr
        assert "likely cause: a file is missing or unreadable, the two are swapped" \
            in result.stderr


def test_alpn(dev_server: ServeProcess) -> None:
    result = run_cli("connect", f"127.0.0.1:{dev_server.port}", "--cafile", _ca_of(dev_server),
                     "--alpn", "h2", "--timeout", "10")
    assert result.returncode == 0, result.stdout + result.stderr
    dev_server.wait_for("ALPN=h2")
    refused = run_cli("connect", f"127.0.0.1:{dev_server.port}", "--cafile",
                      _ca_of(dev_server), "--alpn", "spdy/1", "--timeout", "10")
    assert refused.returncode == 1
    line = dev_server.wait_for("none of which this server accepts")
    assert "sent alert no_application_protocol" in line
    assert "fix: have the client offer one of them (connect --alpn PROTO), or add its " \
        "protocol with --alpn" in dev_server.output


def test_keylog(tmp_path: pathlib.Path) -> None:
    keylog = tmp_path / "keys.log"
    proc = ServeProcess("--keylog", str(keylog), cwd=str(tmp_path))
    try:
        assert _echo_once(proc.port, _ca(tmp_path)) == b"ping"
        proc.wait_for("handshake OK")
    finally:
        code, out, err = proc.stop()
    assert f"key log          {keylog}" in out
    labels = {line.split()[0] for line in keylog.read_text().splitlines() if line}
    assert {"CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_TRAFFIC_SECRET_0"} <= labels


def test_idle_connections_are_closed(tmp_path: pathlib.Path) -> None:
    proc = ServeProcess("--timeout", "1", cwd=str(tmp_path))
    try:
        with socket.create_connection(("127.0.0.1", proc.port), timeout=5) as raw, \
                _client_context(_ca(tmp_path)).wrap_socket(raw, server_hostname="localhost") \
                as tls:
            tls.sendall(b"abc")
            assert tls.recv(10) == b"abc"
            line = proc.wait_for("(--timeout): closed", timeout=10)
            assert tls.recv(10) == b""  # close_notify
    finally:
        code, out, err = proc.stop()
    assert "idle for 1 s (--timeout): closed; echoed 3 bytes" in line


def test_trace_prints_each_handshake(tmp_path: pathlib.Path) -> None:
    """--trace: serve's output carries each connection's handshake, message by message."""
    proc = ServeProcess("--trace", cwd=str(tmp_path))
    try:
        proc.wait_for("trace            on")
        assert _echo_once(proc.port, _ca(tmp_path)) == b"ping"
        proc.wait_for("handshake complete", timeout=10)
    finally:
        code, out, err = proc.stop()
    assert code == 0, out + err
    steps = [line for line in out.splitlines() if "trace:" in line]
    for message in ("client -> server  ClientHello", "server -> client  ServerHello",
                    "server -> client  Certificate", "client -> server  Finished"):
        assert any(message in line for line in steps), (message, steps)
    events: list[object] = []
    with cli_serve._trace_to(events.append):
        logging.getLogger("aiotls.trace").debug("too detailed")
    logging.getLogger("aiotls.trace").info("after the server stopped")
    assert events == []


def test_help_names_every_option() -> None:
    result = run_cli("serve", "--help")
    assert result.returncode == 0
    for flag in ("--handshake-timeout", "--timeout", "--max-connections", "--alpn",
                 "--require-client-cert", "--cafile", "--keylog", "--trace", "--dev-dir",
                 "--loop", "--cert", "--key"):
        assert flag in result.stdout
    assert "(default: 1000)" in result.stdout


def test_uvloop(tmp_path: pathlib.Path) -> None:
    proc = ServeProcess("--loop", "uvloop", cwd=str(tmp_path))
    try:
        assert _echo_once(proc.port, _ca(tmp_path)) == b"ping"
    finally:
        code, out, err = proc.stop()
    assert code == 0, out + err
    assert os.path.exists(_ca(tmp_path))
