"""The command line against servers that ask for a client certificate (mutual TLS), and
the ways people name a server (``HOST:PORT``, ``[IPv6]:PORT``, ``https://`` URLs).

The servers are real: the stdlib's ``ssl`` (OpenSSL) in a thread, requiring, or only
asking for, a client certificate, in TLS 1.3 (whose refusal comes after the client's
handshake has completed) and TLS 1.2 (refused in the handshake); and ``openssl
s_server -Verify``, which names the CAs it accepts.  Every command runs in a subprocess.
"""

from __future__ import annotations

import json
import pathlib
import socket
import ssl
import subprocess
from dataclasses import dataclass

import pytest

from aiotls.cli._common import UsageError
from aiotls.cli._target import parse_target
from tests.certs import CA
from tests.helpers import plaintext_server, run_cli, stdlib_tls_server
from tests.sockloop import OpenSSLProcess, free_port, require_openssl


@dataclass(frozen=True)
class MTLSFiles:
    ca: str
    server: tuple[str, str]
    client: tuple[str, str]


@pytest.fixture(scope="module")
def mtls(tmp_path_factory: pytest.TempPathFactory) -> MTLSFiles:
    directory = str(tmp_path_factory.mktemp("mtls"))
    ca = CA(name="aiotls mTLS test CA")
    ca_file = f"{directory}/ca.pem"
    with open(ca_file, "wb") as f:
        f.write(ca.cert_pem)
    server = ca.issue("localhost").write(directory, "server")
    client = ca.issue("client.test", client=True, server=False).write(directory, "client")
    return MTLSFiles(ca_file, server, client)


def _server_context(files: MTLSFiles, mode: ssl.VerifyMode,
                    version: ssl.TLSVersion) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*files.server)
    ctx.load_verify_locations(files.ca)
    ctx.verify_mode = mode
    ctx.maximum_version = version
    return ctx


VERSIONS = [ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2]


@pytest.mark.parametrize("version", VERSIONS, ids=["tls13", "tls12"])
def test_connect_names_a_required_client_certificate(mtls: MTLSFiles,
                                                     version: ssl.TLSVersion) -> None:
    with stdlib_tls_server(_server_context(mtls, ssl.CERT_REQUIRED, version)) as port:
        result = run_cli("connect", f"localhost:{port}", "--cafile", mtls.ca)
    assert result.returncode == 1, result.stdout
    assert "likely cause: the server requires mutual TLS (a client certificate)" in result.stderr
    assert "fix: pass --cert FILE --key FILE" in result.stderr
    assert "load_cert_chain" not in result.stderr  # (the command line's words, not the API's)
    assert "Handshake OK" not in result.stdout and "harmless" not in result.stdout


@pytest.mark.parametrize("version", VERSIONS, ids=["tls13", "tls12"])
def test_connect_with_a_client_certificate(mtls: MTLSFiles, version: ssl.TLSVersion) -> None:
    with stdlib_tls_server(_server_context(mtls, ssl.CERT_REQUIRED, version)) as port:
        result = run_cli("connect", "localhost", str(port), "--cafile", mtls.ca,
                         "--cert", mtls.client[0], "--key", mtls.client[1], "--send", "ping")
    assert result.returncode == 0, result.stderr
    assert "sent (--cert) and accepted" in result.stdout
    assert "received  'ping'" in result.stdout


def test_connect_to_a_server_asking_for_an_optional_certificate(mtls: MTLSFiles) -> None:
    ctx = _server_context(mtls, ssl.CERT_OPTIONAL, ssl.TLSVersion.TLSv1_3)
    with stdlib_tls_server(ctx) as port:
        result = run_cli("connect", f"https://localhost:{port}/", "--cafile", mtls.ca)
    assert result.returncode == 0, result.stderr
    assert "asked for, none sent: the server went on without one (optional)" in result.stdout


def test_connect_refused_client_certificate(mtls: MTLSFiles, tmp_path: object) -> None:
    """A certificate from another CA: the server's refusal, blamed on the certificate."""
    other = CA(name="another CA").issue("client.test", client=True, server=False)
    cert, key = other.write(str(tmp_path), "other")
    ctx = _server_context(mtls, ssl.CERT_REQUIRED, ssl.TLSVersion.TLSv1_3)
    with stdlib_tls_server(ctx) as port:
        result = run_cli("connect", f"localhost:{port}", "--cafile", mtls.ca,
                         "--cert", cert, "--key", key)
    assert result.returncode == 1, result.stdout
    assert "likely cause: the server refused the client certificate given with --cert" \
        in result.stderr


@pytest.mark.parametrize("then", ["close_notify", "close"])
def test_connect_does_not_call_a_dropped_client_a_success(mtls: MTLSFiles, then: str) -> None:
    """A server that completes the handshake and drops the client at once: a refusal."""
    ctx = _server_context(mtls, ssl.CERT_NONE, ssl.TLSVersion.TLSv1_3)
    with stdlib_tls_server(ctx, then=then) as port:
        result = run_cli("connect", f"localhost:{port}", "--cafile", mtls.ca)
    assert result.returncode == 1, result.stdout
    assert "error: the server closed the connection right after the handshake" \
        in result.stderr
    assert "Handshake OK" not in result.stdout


def test_connect_swapped_certificate_and_key(mtls: MTLSFiles) -> None:
    result = run_cli("connect", "localhost:1", "--cafile", mtls.ca,
                     "--cert", mtls.client[1], "--key", mtls.client[0])
    assert result.returncode == 1
    assert "cannot use --cert" in result.stderr and "swapped" in result.stderr
    assert "Traceback" not in result.stderr


def test_connect_lists_the_cas_openssl_accepts(mtls: MTLSFiles) -> None:
    require_openssl()
    port = free_port()
    argv = ["openssl", "s_server", "-accept", str(port), "-cert", mtls.server[0],
            "-key", mtls.server[1], "-CAfile", mtls.ca, "-Verify", "1", "-tls1_3",
            "-naccept", "1"]
    with OpenSSLProcess(argv, stdin=b"") as server:  # (stdin open: s_server quits at EOF)
        server.wait_for_output("ACCEPT")
        result = run_cli("connect", f"localhost:{port}", "--cafile", mtls.ca)
    assert result.returncode == 1, result.stdout
    assert "requires mutual TLS" in result.stderr
    assert "It accepts certificates issued by: CN=aiotls mTLS test CA" in result.stderr


def test_diagnose_finds_a_required_client_certificate_first(mtls: MTLSFiles) -> None:
    ctx = _server_context(mtls, ssl.CERT_REQUIRED, ssl.TLSVersion.TLSv1_3)
    with stdlib_tls_server(ctx, parallel=True) as port:  # (diagnose probes at once)
        result = run_cli("diagnose", f"localhost:{port}", "--cafile", mtls.ca,
                         "--timeout", "3", timeout=120)
        with_cert = run_cli("diagnose", f"localhost:{port}", "--cafile", mtls.ca,
                            "--cert", mtls.client[0], "--key", mtls.client[1],
                            "--timeout", "3", timeout=120)
    assert result.returncode == 1, result.stdout
    findings = result.stdout.split("Findings:", 1)[1]
    assert findings.strip().startswith("the server requires a client certificate")
    # the consequences are not reported as causes: TLS 1.3 and the certificate are fine
    assert "TLS 1.3 is not offered" not in findings
    assert "does not verify" not in findings
    assert "accepted" in result.stdout.split("TLS 1.3", 1)[1].splitlines()[0]
    assert with_cert.returncode == 0, with_cert.stdout
    assert "nothing wrong found" in with_cert.stdout


@pytest.mark.parametrize(("host", "port", "expected"), [
    ("example.test", None, ("example.test", 443)),
    ("example.test", 8443, ("example.test", 8443)),
    ("example.test:8443", None, ("example.test", 8443)),
    ("example.test:8443", 8443, ("example.test", 8443)),
    ("[::1]:8443", None, ("::1", 8443)),
    ("[::1]", 9, ("::1", 9)),
    ("::1", 5, ("::1", 5)),
    ("https://example.test/", None, ("example.test", 443)),
    ("https://example.test:4443/path?q", None, ("example.test", 4443)),
    ("HTTPS://[::1]:4443", None, ("::1", 4443)),
])
def test_targets_as_people_write_them(host: str, port: int | None,
                                      expected: tuple[str, int]) -> None:
    assert parse_target(host, port) == expected


@pytest.mark.parametrize(("host", "port"), [
    ("http://example.test", None), ("example.test:abc", None), ("example.test:0", None),
    ("example.test:1", 2), ("[::1", None), ("https://:99", None), (":443", None),
])
def test_malformed_targets_are_usage_errors(host: str, port: int | None) -> None:
    with pytest.raises(UsageError):
        parse_target(host, port)


def test_a_malformed_target_exits_with_status_2() -> None:
    result = run_cli("connect", "http://example.test")
    assert result.returncode == 2
    assert "https://" in result.stderr


# --- the blame on the right side: a port that does not speak TLS ----------------------------

HTTP_400 = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


@pytest.mark.parametrize("command", ["connect", "diagnose"])
def test_a_plain_http_server_is_blamed_on_the_port(command: str) -> None:
    with plaintext_server(answer=HTTP_400) as port:
        result = run_cli(command, f"127.0.0.1:{port}", "--insecure" if command == "connect"
                         else "--timeout", *([] if command == "connect" else ["3"]))
    assert result.returncode == 1, result.stdout
    assert "the server answered in plain text, not TLS: 'HTTP/1.1 400 Bad Request'" \
        in result.stderr
    assert "likely cause: this port serves plain HTTP, not HTTPS" in result.stderr
    assert "use https:// on the client" not in result.stderr  # (the old, reversed blame)
    assert "does not verify" not in result.stdout and "refused" not in result.stdout


def test_a_plaintext_greeting_points_to_the_tls_port() -> None:
    with plaintext_server(greeting=b"220 mail.test ESMTP ready\r\n") as port:
        result = run_cli("connect", f"127.0.0.1:{port}", "--insecure")
    assert result.returncode == 1
    assert "'220 mail.test ESMTP ready'" in result.stderr
    assert "STARTTLS" in result.stderr and "465 for SMTP" in result.stderr


def test_diagnose_a_server_with_only_obsolete_versions(mtls: MTLSFiles) -> None:
    require_openssl()
    port = free_port()
    argv = ["openssl", "s_server", "-accept", str(port), "-cert", mtls.server[0],
            "-key", mtls.server[1], "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"]
    with OpenSSLProcess(argv, stdin=b"") as server:
        server.wait_for_output("ACCEPT")
        result = run_cli("diagnose", f"localhost:{port}", "--cafile", mtls.ca,
                         "--timeout", "3", timeout=120)
    assert result.returncode == 1, result.stderr
    findings = result.stdout.split("Findings:", 1)[1].strip()
    assert findings.startswith("the server offers only obsolete versions (TLS 1.1")
    assert "does not verify" not in findings  # (a consequence, not a cause)
    groups = result.stdout.split("Key-exchange groups", 1)[1].split("Certificate", 1)[0]
    assert "accepted" in groups  # (probed at TLS 1.1, not refused for want of TLS 1.2)


def test_connect_writes_a_key_log(mtls: MTLSFiles, tmp_path: pathlib.Path) -> None:
    ctx = _server_context(mtls, ssl.CERT_NONE, ssl.TLSVersion.TLSv1_3)
    log = tmp_path / "keys"
    with stdlib_tls_server(ctx) as port:
        result = run_cli("connect", f"localhost:{port}", "--cafile", mtls.ca,
                         "--keylog", str(log), "--send", "hi")
    assert result.returncode == 0, result.stderr
    labels = {line.split()[0] for line in log.read_text().splitlines()
              if line and not line.startswith("#")}
    assert labels == {"CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET",
                      "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0", "EXPORTER_SECRET"}


# --- hints in the command line's terms -------------------------------------------------------


def test_an_untrusted_server_is_fixed_with_cafile(mtls: MTLSFiles) -> None:
    with stdlib_tls_server(_server_context(mtls, ssl.CERT_NONE,
                                           ssl.TLSVersion.TLSv1_3)) as port:
        result = run_cli("connect", f"localhost:{port}")  # (the system's CAs: not ours)
    assert result.returncode == 1
    fix = [line for line in result.stderr.splitlines() if line.startswith("fix:")]
    assert fix and "--cafile FILE" in fix[0]
    assert "load_verify_locations" not in result.stderr and "load_default_certs" \
        not in result.stderr


def test_a_name_mismatch_is_fixed_with_servername(mtls: MTLSFiles) -> None:
    with stdlib_tls_server(_server_context(mtls, ssl.CERT_NONE,
                                           ssl.TLSVersion.TLSv1_3)) as port:
        result = run_cli("connect", f"127.0.0.1:{port}", "--cafile", mtls.ca,
                         "--servername", "other.test")
    assert result.returncode == 1
    assert "--servername NAME" in result.stderr and "server_hostname" not in result.stderr


def test_a_silent_server_after_tcp_is_not_blamed_on_the_address() -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # (connects, never answers)
        port = silent.getsockname()[1]
        result = run_cli("connect", f"127.0.0.1:{port}", "--insecure", "--timeout", "1")
    assert result.returncode == 1
    assert "accepted the TCP connection but does not answer in TLS" in result.stderr
    assert "wrong address" not in result.stderr


# --- --json ----------------------------------------------------------------------------------


def _json(result: subprocess.CompletedProcess[str]) -> dict[str, object]:
    document = json.loads(result.stdout)
    assert document["exit_status"] == result.returncode
    return document  # type: ignore[no-any-return]


def test_connect_json(mtls: MTLSFiles) -> None:
    ctx = _server_context(mtls, ssl.CERT_NONE, ssl.TLSVersion.TLSv1_3)
    with stdlib_tls_server(ctx) as port:
        ok = _json(run_cli("connect", f"localhost:{port}", "--cafile", mtls.ca, "--json"))
    assert ok["command"] == "connect" and ok["error"] is None and ok["exit_status"] == 0
    target, report = ok["results"]  # type: ignore[misc]
    assert target["type"] == "ConnectTarget" and target["port"] == port
    assert report["type"] == "ConnectReport" and report["handshake"]["version"] == "TLSv1.3"
    assert report["chain"][0]["dns_and_ip_names"] == ["localhost"]
    refused = _json(run_cli("connect", "127.0.0.1:1", "--json"))
    assert refused["exit_status"] == 1
    assert refused["error"]["code"] == "connection-refused"  # type: ignore[index]
    usage = _json(run_cli("connect", "http://example.test", "--json"))
    assert usage["exit_status"] == 2 and usage["error"]["code"] == "usage"  # type: ignore[index]


def test_diagnose_json_names_the_first_cause(mtls: MTLSFiles) -> None:
    ctx = _server_context(mtls, ssl.CERT_REQUIRED, ssl.TLSVersion.TLSv1_3)
    with stdlib_tls_server(ctx, parallel=True) as port:  # (diagnose probes at once)
        document = _json(run_cli("diagnose", f"localhost:{port}", "--cafile", mtls.ca,
                                 "--timeout", "3", "--json", timeout=120))
    assert document["exit_status"] == 1
    findings = [r for r in document["results"] if r["type"] == "Findings"]  # type: ignore[union-attr]
    assert findings[0]["problems"][0].startswith("the server requires a client certificate")


def test_certs_json(mtls: MTLSFiles) -> None:
    document = _json(run_cli("certs", mtls.ca, "--json"))
    report = document["results"][0]  # type: ignore[index]
    assert report["type"] == "CertsReport"
    assert report["files"][0]["certificates"][0]["facts"]["subject"] == "CN=aiotls mTLS test CA"
