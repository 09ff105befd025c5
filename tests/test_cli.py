"""The command line: ``python -m aiotls demo|certs|connect|serve|diagnose``.

Commands run both in-process (``aiotls.cli.main([...])`` with capsys) and as real
subprocesses.  Everything talks over 127.0.0.1 only, with bounded timeouts.
"""

from __future__ import annotations

import dataclasses
import datetime
import io
import os
import pathlib
import re
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import aiotls
import aiotls.__main__
from aiotls import _crypto, cli, testing
from aiotls.cli import certs as cli_certs
from aiotls.cli import connect as cli_connect
from aiotls.cli import demo as cli_demo
from aiotls.cli import diagnose as cli_diagnose
from aiotls.cli import serve as cli_serve
from aiotls.cli._render import TextRenderer
from aiotls.errors import CertificateError
from aiotls.events import ConnectionTerminated
from tests.certs import CA
from tests.helpers import ServeProcess, pump, run_cli
from tests.sockloop import require_openssl


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _assert_error_lines(stderr: str, *fragments: str) -> None:
    """The error is printed as error: / likely cause: / fix: lines, in that order."""
    lines = stderr.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("error: ")]
    assert starts, stderr
    i = starts[0]
    assert lines[i + 1].startswith("likely cause: "), stderr
    assert lines[i + 2].startswith("fix: "), stderr
    for fragment in fragments:
        assert fragment in stderr, stderr


# --- fixtures -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Files:
    directory: str
    ca: CA
    ca_file: str
    server_cert: str
    server_key: str


def _write(directory: str, name: str, data: bytes) -> str:
    path = os.path.join(directory, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    directory = str(tmp_path_factory.mktemp("cli-pki"))
    ca = CA()
    server = ca.issue("localhost", "127.0.0.1")
    return Files(
        directory=directory,
        ca=ca,
        ca_file=_write(directory, "ca.pem", ca.cert_pem),
        server_cert=_write(directory, "server.pem", server.chain_pem),
        server_key=_write(directory, "server-key.pem", server.key_pem),
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(files: Files) -> Iterator[ServeProcess]:
    proc = ServeProcess("--cert", files.server_cert, "--key", files.server_key,
                        "--alpn", "http/1.1", "--timeout", "10")
    try:
        yield proc
    finally:
        proc.stop()


# --- general ----------------------------------------------------------------------------------------


def test_entry_point_is_cli_main() -> None:
    assert aiotls.__main__.main is cli.main


def test_help_lists_every_command() -> None:
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    for command in ("demo", "certs", "connect", "serve", "diagnose"):
        assert command in result.stdout
    assert "examples:" in result.stdout


@pytest.mark.parametrize("command", ["demo", "certs", "connect", "serve", "diagnose"])
def test_each_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main([command, "--help"])
    assert exc.value.code == 0
    assert f"python -m aiotls {command}" in capsys.readouterr().out


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    assert "commands:" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    assert aiotls.__version__ in capsys.readouterr().out


def test_diagnose_reports_capabilities(server: ServeProcess, files: Files,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["diagnose", "localhost", str(server.port), "--cafile", files.ca_file])
    out = capsys.readouterr().out
    assert code == 0, out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert "accepted" in lines["TLS_AES_128_GCM_SHA256"]
    assert "accepted" in lines["ECDHE-ECDSA-AES128-GCM-SHA256"]
    assert "refused" in lines["ECDHE-RSA-AES128-GCM-SHA256"]  # the server key is ECDSA
    assert "accepted" in lines["x25519"]
    assert "refused" in lines["x448"]  # not among aiotls's default server groups
    assert re.search(r"TLS 1\.3\s+accepted", out)
    assert re.search(r"TLS 1\.2\s+accepted", out)
    assert re.search(r"TLS 1\.1\s+refused \(protocol_version\)", out)
    assert re.search(r"TLS 1\.0\s+refused \(protocol_version\)", out)
    assert "OK: the chain is trusted" in out
    assert "Findings: nothing wrong found" in out


def test_diagnose_flags_an_untrusted_certificate(server: ServeProcess,
                                                 capsys: pytest.CaptureFixture[str],
                                                 tmp_path: pathlib.Path) -> None:
    other = _write(str(tmp_path), "other-ca.pem", CA().cert_pem)
    code = cli.main(["diagnose", "localhost", str(server.port), "--cafile", other])
    out = capsys.readouterr().out
    assert code == 1
    assert "does not chain to a trusted CA" in out
    assert "Findings: untrusted issuer: CN=localhost is issued by CN=aiotls test CA, which " \
        "the trust store does not hold and the server does not send" in out


def test_diagnose_nothing_listening(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["diagnose", "127.0.0.1", str(_free_port()), "--timeout", "2"]) == 1
    assert "refused" in capsys.readouterr().err.lower()


# --- demo ---------------------------------------------------------------------------------------------


def test_demo_subprocess_finishes_quickly() -> None:
    started = time.monotonic()
    result = run_cli("demo", timeout=20)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "TLSv1.3" in out
    assert "x25519" in out
    assert "'HELLO'" in out
    assert "clean close" in out
    assert out.rstrip().splitlines()[-1].startswith("OK:")
    assert elapsed < 5.0, f"demo took {elapsed:.2f} s (interpreter start included)"


@pytest.mark.parametrize(("key_type", "description"),
                         [("ecdsa", "ECDSA-secp256r1"), ("rsa", "RSA-2048"),
                          ("ed25519", "Ed25519")])
def test_demo_key_types(key_type: str, description: str,
                        capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    assert cli.main(["demo", "--key-type", key_type]) == 0
    elapsed = time.monotonic() - started
    out = capsys.readouterr().out
    assert f"public key       {description}" in out
    assert "version          TLSv1.3" in out
    assert "ALPN             http/1.1" in out
    assert "names (SAN)      DNS:localhost, IP:127.0.0.1" in out
    assert "subject          CN=localhost" in out
    for message in ("hello", "how are you?", "goodbye"):
        assert f"client -> server  {message!r}" in out
        assert f"server -> client  {message.upper()!r}" in out
    assert "received the server's close_notify" in out
    assert elapsed < 5.0


@pytest.mark.parametrize(("flag", "version", "cipher_prefix"),
                         [("--tls12", "TLSv1.2", "ECDHE-"), ("--tls13", "TLSv1.3", "TLS_")])
@pytest.mark.parametrize("key_type", ["ecdsa", "rsa", "ed25519"])
def test_demo_forced_versions(flag: str, version: str, cipher_prefix: str, key_type: str,
                              capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["demo", flag, "--key-type", key_type]) == 0
    out = capsys.readouterr().out
    assert f"version          {version}" in out
    assert f"cipher suite     {cipher_prefix}" in out
    assert f"over {version} with certificate verification" in out


def test_demo_versions_are_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["demo", "--tls12", "--tls13"])
    assert exc.value.code == 2
    assert "not allowed with" in capsys.readouterr().err


def test_demo_port_in_use_is_explained(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        assert cli.main(["demo", "--port", str(port)]) == 1
    _assert_error_lines(capsys.readouterr().err, f"127.0.0.1:{port}", "--port")


# --- certs -------------------------------------------------------------------------------------------


def test_certs_prints_the_fields(files: Files, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["certs", files.server_cert]) == 0
    out = capsys.readouterr().out
    cert = x509.load_pem_x509_certificate(pathlib.Path(files.server_cert).read_bytes())
    assert "1 certificate" in out
    assert "subject          CN=localhost" in out
    assert "issuer           CN=aiotls test CA" in out
    assert "names (SAN)      DNS:localhost, IP:127.0.0.1" in out
    assert "public key       ECDSA-secp256r1" in out
    assert "signature        ecdsa-with-SHA256" in out
    assert "extended usage   serverAuth" in out
    assert "basic constr.    CA: no (critical)" in out
    assert "valid now, expires in" in out
    assert f"{cert.serial_number:X}"[-6:] in out.replace(":", "")
    assert _crypto.fingerprint_sha256(cert) in out


def test_certs_detects_expired(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    ca = CA()
    expired = ca.issue("localhost", not_after=_now() - datetime.timedelta(days=3))
    path = _write(str(tmp_path), "expired.pem", expired.cert_pem)
    ca_file = _write(str(tmp_path), "ca.pem", ca.cert_pem)
    assert cli.main(["certs", path]) == 0  # inspection alone does not fail
    assert "EXPIRED 3 days ago" in capsys.readouterr().out
    assert cli.main(["certs", path, "--cafile", ca_file]) == 1
    captured = capsys.readouterr()
    assert "FAILED" in captured.out
    _assert_error_lines(captured.err, "expired on")


def test_certs_detects_expired_subprocess(tmp_path: pathlib.Path) -> None:
    ca = CA()
    expired = ca.issue("localhost", not_after=_now() - datetime.timedelta(days=400))
    path = _write(str(tmp_path), "expired.pem", expired.cert_pem)
    ca_file = _write(str(tmp_path), "ca.pem", ca.cert_pem)
    result = run_cli("certs", path, "--cafile", ca_file, "--hostname", "localhost")
    assert result.returncode == 1
    assert "EXPIRED" in result.stdout
    assert "host name 'localhost': matches" in result.stdout
    _assert_error_lines(result.stderr, "expired on")


def test_certs_detects_not_yet_valid(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    future = CA().issue("localhost", not_before=_now() + datetime.timedelta(days=2))
    path = _write(str(tmp_path), "future.pem", future.cert_pem)
    assert cli.main(["certs", path]) == 0
    assert "NOT YET VALID: starts in" in capsys.readouterr().out


def test_certs_hostname_match_and_mismatch(files: Files,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["certs", files.server_cert, "--hostname", "localhost"]) == 0
    assert "host name 'localhost': matches the certificate" in capsys.readouterr().out
    assert cli.main(["certs", files.server_cert, "--hostname", "127.0.0.1"]) == 0
    capsys.readouterr()
    assert cli.main(["certs", files.server_cert, "--hostname", "www.example.com"]) == 1
    captured = capsys.readouterr()
    assert "does NOT match" in captured.out
    _assert_error_lines(captured.err, "'www.example.com'", "'localhost', '127.0.0.1'")


def test_hostname_check_rules() -> None:
    """``certs --hostname`` asks the handshake's verifier: wildcards, IP addresses (with or
    without brackets), IDNA, case and a trailing dot, no common-name fallback."""
    ca = CA()
    wild = ca.issue("*.example.test", "10.0.0.1").cert
    for name in ("www.example.test", "WWW.Example.Test.", "10.0.0.1"):
        assert cli_certs.check_hostname(wild, name).accepted, name
    for name, code in (("example.test", "hostname-mismatch"),  # the wildcard needs a label
                       ("a.b.example.test", "hostname-mismatch"),  # ... exactly one label
                       ("10.0.0.2", "ip-address-mismatch")):
        check = cli_certs.check_hostname(wild, name)
        assert not check.accepted and check.mismatch, name
        assert check.error is not None and check.error.code == code, name
        assert check.names == ("*.example.test", "10.0.0.1")
    plain = ca.issue("localhost", "::1").cert
    assert cli_certs.check_hostname(plain, "localhost").accepted
    assert cli_certs.check_hostname(plain, "[::1]").accepted
    assert cli_certs.check_hostname(plain, "0:0::1").accepted  # the same address, spelled out
    assert cli_certs.check_hostname(plain, "otherhost").mismatch
    no_san = ca.issue(common_name="localhost").cert
    assert cli_certs.check_hostname(no_san, "localhost").mismatch  # no common-name fallback
    idna = testing.CA().issue("bücher.example").cert  # stored as xn--bcher-kva.example
    for name in ("bücher.example", "Bücher.Example", "xn--bcher-kva.example"):
        assert cli_certs.check_hostname(idna, name).accepted, name
    assert cli_certs.check_hostname(idna, "bucher.example").mismatch


def _leaf_with_san(ca: CA, *entries: x509.GeneralName,
                   server: bool = True) -> tuple[x509.Certificate, bytes]:
    """A leaf under ``ca`` with exactly these subjectAltName entries, and its key (PEM).
    tests/certs.py turns IP-looking names into IP entries, so odd certificates are built
    here."""
    issued = ca.issue("unused.test")
    now = _now()
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "odd")]))
            .issuer_name(ca.cert.subject).public_key(issued.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(list(entries)), critical=False)
            .add_extension(x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False)
            .sign(ca.key, hashes.SHA256()))
    return cert, issued.key_pem


def test_hostname_check_follows_the_verifier_where_the_old_matcher_did_not(
        tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The hand-written matcher ``certs`` had before said "matches" in three cases the
    handshake refuses: an IP literal in a *DNS* entry (it compared the text), a trailing dot
    in the certificate's name (it stripped it), and a certificate that may not serve TLS at
    all (it looked only at names).  Each now gets the verifier's answer -- the same error
    code a real handshake with that certificate fails with."""
    ca = CA()
    cases = [
        (_leaf_with_san(ca, x509.DNSName("127.0.0.1")), "127.0.0.1", "ip-address-mismatch"),
        (_leaf_with_san(ca, x509.DNSName("example.test.")), "example.test", "hostname-mismatch"),
        (_leaf_with_san(ca, x509.DNSName("localhost"), server=False), "localhost",
         "certificate-wrong-purpose"),
    ]
    for (cert, key_pem), hostname, code in cases:
        check = cli_certs.check_hostname(cert, hostname)
        assert not check.accepted and check.error is not None
        assert check.error.code == code

        certfile = _write(str(tmp_path), "odd.pem", cert.public_bytes(serialization.Encoding.PEM))
        assert cli.main(["certs", certfile, "--hostname", hostname]) == 1
        captured = capsys.readouterr()
        verdict = "NOT accepted" if code == "certificate-wrong-purpose" else "does NOT match"
        assert f"host name {hostname!r}: {verdict}" in captured.out
        _assert_error_lines(captured.err)

        # A real handshake with this certificate fails with the same code.
        server_ctx = aiotls.TLSContext(ssl.PROTOCOL_TLS_SERVER)
        server_ctx.load_cert_chain(certfile, _write(str(tmp_path), "odd-key.pem", key_pem))
        client_ctx = aiotls.TLSContext(ssl.PROTOCOL_TLS_CLIENT)
        client_ctx.load_verify_locations(cadata=ca.cert_pem.decode())
        client = aiotls.TLSConnection(client_ctx, server_hostname=hostname)
        server = aiotls.TLSConnection(server_ctx, server_side=True)
        pump(client, server)
        ends = [e for e in client.events() if isinstance(e, ConnectionTerminated)]
        assert len(ends) == 1 and isinstance(ends[0].error, CertificateError), ends
        assert ends[0].error.code == code


def test_certs_chain_order(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = CA()
    inter = CA(parent=root)
    leaf = inter.issue("example.test")
    good = _write(str(tmp_path), "chain.pem", leaf.chain_pem)
    root_file = _write(str(tmp_path), "root.pem", root.cert_pem)
    assert cli.main(["certs", good, "--cafile", root_file, "--hostname", "example.test"]) == 0
    out = capsys.readouterr().out
    assert "2 certificates" in out
    assert "issued by next   [2]: yes" in out
    assert "each certificate is issued by the next" in out
    assert "verification against" in out
    assert ": OK" in out
    assert "CN=example.test -> CN=aiotls test intermediate CA 1 -> CN=aiotls test CA" in out

    backwards = _write(str(tmp_path), "backwards.pem", inter.cert_pem + leaf.cert_pem)
    assert cli.main(["certs", backwards]) == 0
    out = capsys.readouterr().out
    assert "issued by next   [2]: NO" in out
    assert "NOT a chain in leaf-first order" in out

    selfsigned = _write(str(tmp_path), "root-only.pem", root.cert_pem)
    assert cli.main(["certs", selfsigned]) == 0
    out = capsys.readouterr().out
    assert "self-signed" in out
    assert "CA: yes" in out


def test_certs_unknown_ca(files: Files, tmp_path: pathlib.Path,
                          capsys: pytest.CaptureFixture[str]) -> None:
    other_ca = _write(str(tmp_path), "other-ca.pem", CA(name="some other CA").cert_pem)
    assert cli.main(["certs", files.server_cert, "--cafile", other_ca]) == 1
    _assert_error_lines(capsys.readouterr().err, "does not chain to a trusted CA")


def test_certs_bad_files(files: Files, tmp_path: pathlib.Path,
                         capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["certs", files.server_key]) == 1
    _assert_error_lines(capsys.readouterr().err, "holds no certificate", "PRIVATE KEY")
    assert cli.main(["certs", os.path.join(str(tmp_path), "missing.pem")]) == 1
    _assert_error_lines(capsys.readouterr().err, "cannot read")
    junk = _write(str(tmp_path), "junk.bin", b"\x00not a certificate")
    assert cli.main(["certs", junk]) == 1
    _assert_error_lines(capsys.readouterr().err, "holds no certificate")


def test_certs_reads_der(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    issued = CA().issue("der.example.test")
    path = _write(str(tmp_path), "cert.der", _crypto.der_bytes(issued.cert))
    assert cli.main(["certs", path]) == 0
    assert "DNS:der.example.test" in capsys.readouterr().out


# --- connect / serve ------------------------------------------------------------------------------------


def test_connect_with_cafile(server: ServeProcess, files: Files) -> None:
    result = run_cli("connect", "127.0.0.1", str(server.port), "--cafile", files.ca_file,
                     "--servername", "localhost", "--send", "hello", "--timeout", "10")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "Handshake OK" in out
    assert "version          TLSv1.3" in out
    assert "verification     OK" in out
    assert "subject          CN=localhost" in out
    assert "names (SAN)      DNS:localhost, IP:127.0.0.1" in out
    assert "received  'hello'" in out
    assert "close_notify exchanged both ways" in out


@pytest.mark.parametrize(("flag", "version"), [("--tls12", "TLSv1.2"), ("--tls13", "TLSv1.3")])
def test_connect_in_process(server: ServeProcess, files: Files, flag: str, version: str,
                            capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["connect", "localhost", str(server.port), "--cafile", files.ca_file, flag,
                     "--alpn", "h2", "--alpn", "http/1.1", "--timeout", "10"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"version          {version}" in out
    assert "ALPN             http/1.1 (offered h2, http/1.1)" in out
    assert "SNI              localhost" in out


def test_connect_by_ip_verifies_the_ip(server: ServeProcess, files: Files,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["connect", "127.0.0.1", str(server.port), "--cafile", files.ca_file]) == 0
    out = capsys.readouterr().out
    assert "'127.0.0.1' matches the certificate" in out
    assert "SNI              not sent (IP address)" in out


def test_connect_without_trust_fails(server: ServeProcess) -> None:
    result = run_cli("connect", "localhost", str(server.port), "--timeout", "10")
    assert result.returncode == 1, result.stdout
    assert "Handshake OK" not in result.stdout
    # Unknown CA against the system store (or no trust anchors at all on a bare system).
    _assert_error_lines(result.stderr, "trusted CA")


def test_connect_wrong_name_fails(server: ServeProcess, files: Files,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["connect", "127.0.0.1", str(server.port), "--cafile", files.ca_file,
                     "--servername", "wrong.example.test"])
    assert code == 1
    _assert_error_lines(capsys.readouterr().err, "does not match", "'wrong.example.test'")


def test_connect_insecure(server: ServeProcess) -> None:
    result = run_cli("connect", "localhost", str(server.port), "--insecure", "--send", "ping")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "NOT authenticated" in result.stdout
    assert "subject          CN=localhost" in result.stdout
    assert "received  'ping'" in result.stdout


def test_connect_insecure_excludes_cafile(files: Files,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["connect", "localhost", "1", "--insecure", "--cafile", files.ca_file])
    assert exc.value.code == 2
    capsys.readouterr()


def test_connect_refused(capsys: pytest.CaptureFixture[str]) -> None:
    port = _free_port()
    assert cli.main(["connect", "127.0.0.1", str(port), "--insecure", "--timeout", "5"]) == 1
    _assert_error_lines(capsys.readouterr().err, "connection refused")


def test_connect_to_a_silent_server_times_out(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        started = time.monotonic()
        code = cli.main(["connect", "127.0.0.1", str(port), "--insecure", "--timeout", "0.5"])
        assert time.monotonic() - started < 5.0
    assert code == 1
    _assert_error_lines(capsys.readouterr().err, "timed out")


def test_serve_logs_and_stops_cleanly(files: Files) -> None:
    proc = ServeProcess("--cert", files.server_cert, "--key", files.server_key,
                        "--max-connections", "2")
    try:
        good = run_cli("connect", "localhost", str(proc.port), "--cafile", files.ca_file,
                       "--send", "hi")
        bad = run_cli("connect", "localhost", str(proc.port))
    finally:
        code, out, err = proc.stop()
    assert good.returncode == 0, good.stdout + good.stderr
    assert bad.returncode == 1
    assert code == 0, out + err
    assert f"listening on 127.0.0.1:{proc.port}" in out
    assert "at most 2 connections" in out
    assert "handshake OK: TLSv1.3" in out
    assert "close_notify received and answered; echoed 2 bytes" in out
    assert "closed cleanly" in out
    assert "alert unknown_ca" in out  # the second client rejected the server's certificate
    assert out.rstrip().endswith("stopped")


def test_serve_logs_an_ip_address_sent_as_sni(files: Files) -> None:
    """RFC 6066 forbids an IP literal as SNI; clients and scanners send one anyway.  The
    server ignores it (no SNI) and its log says so, for diagnosis."""
    openssl = require_openssl()
    proc = ServeProcess("--cert", files.server_cert, "--key", files.server_key,
                        "--max-connections", "1")
    try:
        client = subprocess.run(
            [openssl, "s_client", "-connect", f"127.0.0.1:{proc.port}", "-servername",
             "127.0.0.1", "-CAfile", files.ca_file, "-verify_return_error"],
            input=b"", capture_output=True, timeout=30)
    finally:
        code, out, err = proc.stop()
    assert client.returncode == 0, client.stdout + client.stderr
    assert code == 0, out + err
    assert "handshake OK" in out, out
    assert "SNI=none (ignored the IP address 127.0.0.1 sent as SNI)" in out, out


def test_serve_bad_key_is_explained(files: Files, tmp_path: pathlib.Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    other_key = _write(str(tmp_path), "other-key.pem", CA().issue("x.test").key_pem)
    assert cli.main(["serve", "--cert", files.server_cert, "--key", other_key,
                     "--port", "0"]) == 1
    _assert_error_lines(capsys.readouterr().err, "does not match the certificate")


# --- result objects ----------------------------------------------------------------------------
# Each command computes frozen dataclasses of plain data; the renderer only prints them.


def test_connect_report(server: ServeProcess, files: Files) -> None:
    ctx, trust = cli_connect.client_context(cafile=files.ca_file, insecure=False,
                                            alpn=("h2", "http/1.1"), version=None)
    target = cli_connect.ConnectTarget("127.0.0.1", server.port, "localhost", trust)
    report = cli_connect.connect(target, ctx, alpn_offered=("h2", "http/1.1"), send="hello",
                                 timeout=10)
    assert dataclasses.is_dataclass(report) and trust == files.ca_file
    assert report.target is target
    assert report.handshake.version == "TLSv1.3"
    assert report.handshake.cipher.startswith("TLS_") and report.handshake.cipher.endswith("-bit key)")
    assert report.handshake.group == "x25519"
    assert report.handshake.alpn == "http/1.1"
    assert report.handshake.server_name == "localhost"
    assert report.handshake.resumed is False
    assert report.sni_sent and report.verified
    assert report.alpn_offered == ("h2", "http/1.1")
    assert len(report.chain) == 1
    leaf = report.chain[0]
    assert leaf.subject == "CN=localhost" and leaf.issuer == "CN=aiotls test CA"
    assert leaf.names == ("DNS:localhost", "IP:127.0.0.1")
    assert leaf.dns_and_ip_names == ("localhost", "127.0.0.1")
    assert leaf.validity == "valid" and leaf.public_key == "ECDSA-secp256r1"
    assert leaf.sha256 == _crypto.fingerprint_sha256(files_leaf(files))
    assert report.exchange == cli_connect.Exchange("hello", "hello", None)
    assert report.clean_close and report.close_error is None
    assert 0 < report.tcp_seconds < 10 and 0 < report.handshake_seconds < 10


def files_leaf(files: Files) -> x509.Certificate:
    return x509.load_pem_x509_certificates(pathlib.Path(files.server_cert).read_bytes())[0]


def test_connect_report_insecure_by_ip(server: ServeProcess) -> None:
    ctx, trust = cli_connect.client_context(cafile=None, insecure=True, alpn=(),
                                            version=ssl.TLSVersion.TLSv1_2)
    target = cli_connect.ConnectTarget("127.0.0.1", server.port, "127.0.0.1", trust)
    report = cli_connect.connect(target, ctx, timeout=10)
    assert "DISABLED" in trust
    assert report.handshake.version == "TLSv1.2"
    assert report.handshake.cipher.startswith("ECDHE-ECDSA-")
    assert not report.verified and not report.sni_sent  # an IP address is never sent as SNI
    assert report.handshake.alpn is None and report.exchange is None


@pytest.mark.parametrize(("key_type", "version", "expected"),
                         [("rsa", ssl.TLSVersion.TLSv1_2, "TLSv1.2"),
                          ("ed25519", None, "TLSv1.3")])
def test_demo_report(key_type: testing.KeyType, version: ssl.TLSVersion | None,
                     expected: str) -> None:
    report = cli_demo.run_demo(key_type=key_type, version=version)
    assert report.ok
    assert report.setup.version == version and report.setup.port > 0
    assert report.setup.ca_key == "ECDSA-secp256r1"
    assert report.setup.server_key == {"rsa": "RSA-2048", "ed25519": "Ed25519"}[key_type]
    assert not os.path.exists(report.setup.directory)  # the PKI is gone afterwards
    assert report.handshake.version == expected
    assert report.handshake.alpn == "http/1.1" and report.handshake.server_name == "localhost"
    assert report.server_certificate.names == ("DNS:localhost", "IP:127.0.0.1")
    assert report.server_certificate.issuer == report.ca_subject
    assert report.conversation == tuple((m, m.upper()) for m in cli_demo.MESSAGES)
    assert report.bytes_sent > 0 and report.bytes_received > report.bytes_sent
    assert report.client_received_close_notify and report.server_received_close_notify
    assert report.server_closed_cleanly
    assert report.total_seconds < cli_demo.BUDGET


def test_certs_report(tmp_path: pathlib.Path) -> None:
    root = CA()
    inter = CA(parent=root)
    leaf = inter.issue("example.test")
    chain = _write(str(tmp_path), "chain.pem", leaf.chain_pem)
    root_file = _write(str(tmp_path), "root.pem", root.cert_pem)
    report = cli_certs.inspect([chain, root_file], hostname="example.test", cafile=root_file)
    assert report.ok
    first, second = report.files
    assert [e.number for e in first.certificates] == [1, 2]
    assert [e.number for e in second.certificates] == [3]
    assert first.is_chain
    assert first.certificates[0].issued_by_next == "yes"
    assert first.certificates[0].next_subject == "CN=aiotls test intermediate CA 1"
    assert first.certificates[1].issued_by_next is None
    assert first.certificates[1].issuer_outside == "not-in-file"
    assert second.certificates[0].issuer_outside == "self-signed"
    assert second.certificates[0].facts.is_ca is True
    assert first.certificates[0].facts.is_ca is False
    assert first.certificates[0].facts.extended_usage == ("serverAuth",)
    assert report.hostname == cli_certs.HostnameCheck(
        "example.test", "CN=example.test", ("example.test",), True, None)
    assert report.verification is not None and report.verification.ok
    assert report.verification.anchors == 1
    assert report.verification.path == ("CN=example.test", "CN=aiotls test intermediate CA 1",
                                         "CN=aiotls test CA")

    other = _write(str(tmp_path), "other.pem", CA(name="someone else").cert_pem)
    refused = cli_certs.inspect([chain], hostname="www.example.test", cafile=other)
    assert not refused.ok
    assert refused.hostname is not None and refused.hostname.mismatch
    assert refused.verification is not None and refused.verification.error is not None
    # The verifier checks the leaf (and so the name) before it builds the path.
    assert refused.verification.error.code == "hostname-mismatch"
    unknown_ca = cli_certs.inspect([chain], cafile=other)
    assert unknown_ca.verification is not None and unknown_ca.verification.error is not None
    assert unknown_ca.verification.error.code == "certificate-unknown-ca"
    assert unknown_ca.hostname is None and not unknown_ca.ok


def test_diagnose_report(server: ServeProcess, files: Files) -> None:
    target = cli_diagnose.DiagnoseTarget("localhost", server.port, "localhost")
    sections: list[object] = []
    report = cli_diagnose.diagnose(target, cafile=files.ca_file, timeout=5,
                                   progress=sections.append)
    assert sections == [report.versions, report.suites, report.groups, report.certificate,
                        report.resumption]
    assert report.ok and report.findings.problems == ()
    outcomes = {p.label: p for p in report.versions.probes}
    assert [p.label for p in report.versions.probes] == ["TLS 1.3", "TLS 1.2", "TLS 1.1",
                                                         "TLS 1.0"]
    assert outcomes["TLS 1.3"].outcome == outcomes["TLS 1.2"].outcome == "accepted"
    for old in ("TLS 1.1", "TLS 1.0"):
        error = outcomes[old].error
        assert outcomes[old].outcome == "refused"
        assert error is not None and error.alert == "protocol_version"
    suites = {p.label: p.outcome for p in report.suites.probes}
    assert suites["TLS_AES_128_GCM_SHA256"] == "accepted"
    assert suites["ECDHE-RSA-AES128-GCM-SHA256"] == "refused"  # the server key is ECDSA
    cbc = [p for p in report.suites.probes if p.outcome == "accepted" and p.warning]
    assert all("CBC" in (p.warning or "") for p in cbc)
    groups = {p.label: p.outcome for p in report.groups.probes}
    assert groups["x25519"] == "accepted" and groups["x448"] == "refused"
    cert = report.certificate
    assert cert.ok and cert.error is None
    assert cert.alpn == "http/1.1" and cert.alpn_offered == ("h2", "http/1.1")
    assert cert.leaf is not None
    assert cert.leaf.subject == "CN=localhost" and cert.leaf.validity == "valid"
    assert cert.leaf.names == ("DNS:localhost", "IP:127.0.0.1")


def test_serve_events_in_process(files: Files) -> None:
    """serve() reports each connection as events, and stops when asked."""
    ctx = aiotls.TLSContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(files.server_cert, files.server_key)
    ctx.set_alpn_protocols(["http/1.1"])
    events: list[object] = []
    lock = threading.Lock()

    def emit(event: object) -> None:
        with lock:
            events.append(event)

    def listening() -> cli_serve.Listening | None:
        with lock:
            return next((e for e in events if isinstance(e, cli_serve.Listening)), None)

    stop = threading.Event()
    thread = threading.Thread(target=cli_serve.serve, args=(ctx, files.server_cert), kwargs={
        "host": "127.0.0.1", "port": 0, "max_connections": 2, "timeout": 10.0, "emit": emit,
        "stop": stop}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while listening() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        started = listening()
        assert started is not None
        assert started.subject == "CN=localhost" and started.max_connections == 2
        client_ctx, trust = cli_connect.client_context(
            cafile=files.ca_file, insecure=False, alpn=("http/1.1",), version=None)
        report = cli_connect.connect(
            cli_connect.ConnectTarget("127.0.0.1", started.port, "localhost", trust),
            client_ctx, send="echo me", timeout=10)
        assert report.exchange is not None and report.exchange.reply == "echo me"
        while not any(isinstance(e, cli_serve.ClientClosed) for e in list(events)) \
                and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()
    kinds = [type(e) for e in events]
    assert kinds == [cli_serve.Listening, cli_serve.ClientConnected, cli_serve.ClientHandshake,
                     cli_serve.ClientCloseNotify, cli_serve.ClientClosed, cli_serve.Stopped]
    handshake = events[2]
    assert isinstance(handshake, cli_serve.ClientHandshake)
    assert handshake.version == "TLSv1.3" and handshake.alpn == "http/1.1"
    assert handshake.server_name == "localhost" and handshake.ignored_server_name is None
    assert events[3] == cli_serve.ClientCloseNotify(handshake.client, len("echo me"))
    assert events[4] == cli_serve.ClientClosed(handshake.client, truncated=False)


def test_renderer_refuses_unknown_objects() -> None:
    renderer = TextRenderer(io.StringIO(), io.StringIO())
    with pytest.raises(TypeError, match="no text form for object"):
        renderer(object())


def test_connect_sends_a_unicode_server_name_as_an_a_label(server: ServeProcess) -> None:
    """--servername in Unicode is IDNA-encoded (TLSConnection takes only A-labels), and a
    name IDNA cannot encode is explained, not a traceback."""
    result = run_cli("connect", "127.0.0.1", str(server.port), "--servername", "bücher.example",
                     "--insecure", "--timeout", "10")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "server name 'xn--bcher-kva.example'" in result.stdout
    assert "SNI              xn--bcher-kva.example" in result.stdout
    bad = run_cli("connect", "127.0.0.1", str(server.port), "--servername", "bü..example",
                  "--insecure")
    assert bad.returncode == 1
    _assert_error_lines(bad.stderr, "not a valid host name")
