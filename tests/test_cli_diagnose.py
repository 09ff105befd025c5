"""``diagnose`` against real misconfigured servers: each finds the first cause, names it
(and its stable code in ``--json``), exits 1, and does not report what only follows from
it as another cause.

The servers are ``openssl s_server`` and the stdlib's ``ssl`` (OpenSSL) in threads, set up
wrong the way servers are in the field; a few are plain TCP servers that behave as a
firewall or a non-TLS service does.  Every command runs in a subprocess.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import pathlib
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7

import aiotls
from tests.certs import CA, Issued
from tests.helpers import (
    ConcurrencyGauge,
    alert_server,
    plaintext_server,
    resetting_server,
    run_cli,
    silent_server,
    slow_tls_server,
    stdlib_https_server,
    stdlib_tls_server,
)
from tests.sockloop import OpenSSLProcess, free_port, require_openssl

#: Consequences that must never be reported as a cause next to a first cause.
CONSEQUENCES = ("does not verify", "TLS 1.3 is not offered", "no protocol version in common",
                "no cipher suite in common", "no key-exchange group")


@dataclass(frozen=True)
class Diagnosis:
    status: int
    out: str
    err: str
    findings: str
    codes: list[str]


def _diagnose(*args: str) -> Diagnosis:
    """``diagnose ARGS`` twice: as text, and as JSON (for the stable codes)."""
    text = run_cli("diagnose", *args, "--timeout", "3", timeout=120)
    document = json.loads(run_cli("diagnose", *args, "--timeout", "3", "--json",
                                  timeout=120).stdout)
    findings = [r for r in document["results"] if r["type"] == "Findings"]
    codes = findings[0]["codes"] if findings else []
    assert document["exit_status"] == text.returncode
    after = text.stdout.split("\nFindings: ", 1)
    return Diagnosis(text.returncode, text.stdout, text.stderr,
                     after[1] if len(after) > 1 else "", codes)


def _assert_first_cause(d: Diagnosis, code: str, words: str, *, also: str = "") -> None:
    """``code`` is the first finding, in ``words``; no consequence is reported, apart from
    ``also``: a problem of its own the server also has."""
    assert d.status == 1, d.out + d.err
    assert d.codes and d.codes[0] == code, (d.codes, d.out)
    assert d.findings.startswith(words), d.findings
    for consequence in CONSEQUENCES:
        if consequence not in words and consequence != also:
            assert consequence not in d.findings, (consequence, d.findings)


@dataclass(frozen=True)
class Dir:
    path: pathlib.Path
    ca: CA
    ca_file: str

    def write(self, name: str, data: bytes) -> str:
        path = self.path / name
        path.write_bytes(data)
        return str(path)

    def leaf(self, issued: Issued, name: str, chain: bytes | None = None) -> tuple[str, str]:
        return (self.write(f"{name}.pem", chain if chain is not None else issued.chain_pem),
                self.write(f"{name}-key.pem", issued.key_pem))


@pytest.fixture
def pki(tmp_path: pathlib.Path) -> Dir:
    ca = CA(name="diagnose test root")
    return Dir(tmp_path, ca, str(_write(tmp_path / "ca.pem", ca.cert_pem)))


def _write(path: pathlib.Path, data: bytes) -> pathlib.Path:
    path.write_bytes(data)
    return path


def _stdlib_ctx(cert: tuple[str, str], version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*cert)
    if version is not None:
        ctx.maximum_version = version
    return ctx


@pytest.fixture
def s_server() -> Iterator[Callable[..., int]]:
    """Start ``openssl s_server`` with extra arguments: ``start(*args) -> port``."""
    require_openssl()
    with contextlib.ExitStack() as running:
        def start(*args: str) -> int:
            port = free_port()
            proc = running.enter_context(OpenSSLProcess(
                ["openssl", "s_server", "-accept", str(port), *args], stdin=b""))
            proc.wait_for_output("ACCEPT")
            return port

        yield start


# --- before any handshake: the network and the port ----------------------------------------

def test_a_silent_server_is_a_timeout_after_tcp() -> None:
    with silent_server() as port:
        d = _diagnose(f"127.0.0.1:{port}", "--timeout", "1")
    assert d.status == 1
    assert "accepted the TCP connection but does not answer in TLS" in d.err
    assert "Protocol versions" not in d.out  # (no probe: each would time out the same way)
    assert "firewall" not in d.err


def test_a_reset_is_named_with_sni_as_a_possible_cause() -> None:
    with resetting_server() as port:
        d = _diagnose(f"127.0.0.1:{port}")
    assert d.status == 1
    assert "reset the connection" in d.err
    assert "--servername NAME" in d.err  # (an IP address: no SNI was sent)
    assert "Protocol versions" not in d.out


def test_no_common_version(pki: Dir) -> None:
    with alert_server(70) as port:  # protocol_version, to every hello: an SSL 3.0-only server
        d = _diagnose(f"localhost:{port}", "--cafile", pki.ca_file)
    _assert_first_cause(d, "no-common-version", "no protocol version in common")
    assert "Certificate verification" in d.out and len(d.codes) == 1


def test_a_refused_client_certificate(pki: Dir) -> None:
    """A certificate from a CA the server does not trust: named first; the probes still
    count as accepted (the server completed each handshake before its verdict)."""
    cert = pki.leaf(pki.ca.issue("localhost"), "server")
    other = CA(name="another CA").issue("client.test", client=True, server=False)
    client = pki.leaf(other, "client")
    ctx = _stdlib_ctx(cert)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(pki.ca_file)
    with stdlib_tls_server(ctx, parallel=True) as port:
        d = _diagnose(f"localhost:{port}", "--cafile", pki.ca_file, "--cert", client[0],
                      "--key", client[1])
    _assert_first_cause(d, "client-certificate-refused", "the server refused the client "
                        "certificate given with --cert")
    assert d.codes == ["client-certificate-refused"]
    assert "OK: the chain is trusted" in d.out


# --- the hello: names, suites, groups ------------------------------------------------------

def test_sni_required(pki: Dir) -> None:
    cert = pki.leaf(pki.ca.issue("localhost"), "server")
    ctx = _stdlib_ctx(cert)

    def require_sni(sock: ssl.SSLObject | ssl.SSLSocket, name: str | None,
                    _ctx: ssl.SSLContext) -> int | None:
        return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME if name is None else None

    ctx.sni_callback = require_sni
    with stdlib_tls_server(ctx, parallel=True) as port:
        d = _diagnose(f"127.0.0.1:{port}", "--cafile", pki.ca_file)
        named = _diagnose(f"127.0.0.1:{port}", "--cafile", pki.ca_file,
                          "--servername", "localhost")
    _assert_first_cause(d, "sni-required", "the server requires SNI")
    assert "pass --servername NAME" in d.findings
    assert d.codes == ["sni-required"]
    assert named.status == 0, named.out


def test_only_cbc_suites(pki: Dir, s_server: Callable[..., int]) -> None:
    cert = pki.leaf(pki.ca.issue("localhost", key_type="rsa2048"), "server")
    port = s_server("-cert", cert[0], "-key", cert[1], "-no_tls1_3",
                    "-cipher", "ECDHE-RSA-AES128-SHA")
    d = _diagnose(f"localhost:{port}", "--cafile", pki.ca_file)
    _assert_first_cause(d, "no-common-suite", "no cipher suite in common with current "
                        "clients' defaults: the server accepts only ECDHE-RSA-AES128-SHA",
                        also="TLS 1.3 is not offered")  # (-no_tls1_3: true as well)
    assert d.codes == ["no-common-suite", "no-tls13"]


@pytest.mark.parametrize(("cipher", "words"), [
    ("AES128-SHA", "AES128-SHA at TLS 1.2 (a static-RSA suite: RSA key exchange has no "
     "forward secrecy"),
    ("AES256-GCM-SHA384", "AES256-GCM-SHA384 at TLS 1.2 (a static-RSA suite"),
])
def test_only_suites_refused_by_policy(pki: Dir, s_server: Callable[..., int], cipher: str,
                                       words: str) -> None:
    """The same words set_ciphers() uses for a suite aiotls refuses, found on the wire."""
    cert = pki.leaf(pki.ca.issue("localhost", key_type="rsa2048"), "server")
    port = s_server("-cert", cert[0], "-key", cert[1], "-no_tls1_3",
                    "-cipher", cipher)
    d = _diagnose(f"localhost:{port}", "--cafile", pki.ca_file)
    _assert_first_cause(d, "no-common-suite", "no cipher suite in common: the server offers "
                        "only suites current clients refuse by policy: " + words)
    assert "enable ECDHE with AES-GCM or ChaCha20-Poly1305" in d.findings


def test_no_common_group(pki: Dir, s_server: Callable[..., int]) -> None:
    cert = pki.leaf(pki.ca.issue("localhost"), "server")
    port = s_server("-cert", cert[0], "-key", cert[1], "-groups", "ffdhe2048")
    d = _diagnose(f"localhost:{port}", "--cafile", pki.ca_file)
    _assert_first_cause(d, "no-common-group", "no key-exchange group in common with current "
                        "clients' defaults")
    assert "the server accepts only ffdhe2048" in d.findings


def test_alpn_mismatch(pki: Dir) -> None:
    cert = pki.leaf(pki.ca.issue("localhost"), "server")
    ctx = _stdlib_ctx(cert)
    ctx.set_alpn_protocols(["imap"])
    with stdlib_tls_server(ctx, parallel=True) as port:
        d = _diagnose(f"localhost:{port}", "--cafile", pki.ca_file, "--alpn", "h2")
        default = _diagnose(f"localhost:{port}", "--cafile", pki.ca_file)
    _assert_first_cause(d, "alpn-mismatch", "ALPN mismatch: the server selected none of the "
                        "protocols offered (h2)")
    assert default.status == 0, default.out  # (without --alpn, not speaking HTTP is fine)


def test_alpn_refused_with_an_alert(pki: Dir) -> None:
    """aiotls's own server refuses a hello whose protocols it does not speak (RFC 7301)."""
    cert = pki.leaf(pki.ca.issue("localhost"), "server")
    ctx = aiotls.TLSContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*cert)
    ctx.set_alpn_protocols(["imap"])
    with stdlib_tls_server(ctx, parallel=True) as port:  # (TLSContext.wrap_socket)
        d = _diagnose(f"localhost:{port}", "--cafile", pki.ca_file)
    _assert_first_cause(d, "alpn-mismatch", "ALPN mismatch: the server supports none of the "
                        "protocols offered (h2, http/1.1) and refuses the handshake (alert "
                        "no_application_protocol)")
    assert "OK: the chain is trusted" in d.out  # (checked again, without ALPN)
    with stdlib_tls_server(ctx, parallel=True) as port:
        connect = run_cli("connect", f"localhost:{port}", "--cafile", pki.ca_file,
                          "--alpn", "h2")
    assert connect.returncode == 1
    assert "fix: offer a protocol the server speaks with --alpn PROTO" in connect.stderr
    assert "set_alpn_protocols" not in connect.stderr  # (the command line's words)


# --- the certificate and its chain ---------------------------------------------------------

@pytest.mark.parametrize("form", ["der", "p7c"])
def test_missing_intermediate_fetched_from_its_ca_issuers_url(
        pki: Dir, s_server: Callable[..., int], form: str) -> None:
    intermediate = CA(name="diagnose test intermediate", parent=pki.ca)
    der = intermediate.cert.public_bytes(Encoding.DER) if form == "der" else \
        pkcs7.serialize_certificates([intermediate.cert], Encoding.DER)  # (what some CAs serve)
    answer = (b"HTTP/1.1 200 OK\r\nContent-Type: application/pkix-cert\r\nContent-Length: "
              + str(len(der)).encode() + b"\r\nConnection: close\r\n\r\n" + der)
    with plaintext_server(answer=answer) as http_port:
        url = f"http://127.0.0.1:{http_port}/intermediate.der"
        issued = intermediate.issue("localhost", ca_issuers_url=url)
        cert = pki.leaf(issued, "server", chain=issued.cert_pem)  # (the leaf alone)
        port = s_server("-cert", cert[0], "-key", cert[1])
        d = _diagnose(f"localhost:{port}", "--cafile", pki.ca_file)
    _assert_first_cause(d, "chain-incomplete", "missing intermediate: the server sends an "
                        "incomplete chain; CN=localhost is issued by CN=diagnose test "
                        "intermediate, which the server does not send (fetched from " + url)
    assert "add that intermediate certificate to the server's chain file" in d.findings


def test_missing_intermediate_in_a_partial_chain(pki: Dir, s_server: Callable[..., int]) -> None:
    upper = CA(name="diagnose test upper", parent=pki.ca)
    lower = CA(name="diagnose test lower", parent=upper)
    issued = lower.issue("localhost")
    cert = pki.leaf(issued, "server", chain=issued.cert_pem)
    partial = pki.write("chain.pem", lower.cert_pem)  # (upper left out)
    port = s_server("-cert", cert[0], "-key", cert[1], "-cert_chain", partial)
    d = _diagnose(f"localhost:{port}", "--cafile", pki.ca_file)
    _assert_first_cause(d, "chain-incomplete", "missing intermediate: the server sends an "
                        "incomplete chain; the last certificate it sends, CN=diagnose test "
                        "lower, is issued by CN=diagnose test upper")


def test_chain_in_the_wrong_order(pki: Dir, s_server: Callable[..., int]) -> None:
    upper = CA(name="diagnose test upper", parent=pki.ca)
    lower = CA(name="diagnose test lower", parent=upper)
    issued = lower.issue("localhost")
    leaf = pki.write("leaf.pem", issued.cert_pem)
    key = pki.write("leaf-key.pem", issued.key_pem)
    wrong = pki.write("chain.pem", upper.cert_pem + lower.cert_pem)  # (lower must come first)
    port = s_server("-cert", leaf, "-key", key, "-cert_chain", wrong)
    d = _diagnose(f"localhost:{port}", "--cafile", pki.ca_file)
    _assert_first_cause(d, "chain-order", "the server sends its chain in the wrong order "
                        "(CN=localhost -> CN=diagnose test upper -> CN=diagnose test lower)")
    assert "OK: the chain is trusted" in d.out  # (aiotls builds the path; strict clients do not)


def test_expired_with_both_clocks(pki: Dir) -> None:
    now = datetime.datetime.now(datetime.UTC)
    issued = pki.ca.issue("localhost", not_before=now - datetime.timedelta(days=60),
                          not_after=now - datetime.timedelta(days=2))
    with stdlib_https_server(_stdlib_ctx(pki.leaf(issued, "server"))) as port:
        d = _diagnose(f"localhost:{port}", "--cafile", pki.ca_file)
    _assert_first_cause(d, "certificate-expired", "the certificate does not verify: the "
                        "server's certificate for CN=localhost expired on")
    assert "this machine's clock: " + now.strftime("%Y-%m-%d") in d.findings
    assert "the server's clock: " + now.strftime("%Y-%m-%d") in d.findings  # (its HTTP Date)
    assert "server clock" in d.out


def test_not_yet_valid(pki: Dir) -> None:
    now = datetime.datetime.now(datetime.UTC)
    issued = pki.ca.issue("localhost", not_before=now + datetime.timedelta(days=3),
                          not_after=now + datetime.timedelta(days=90))
    with stdlib_tls_server(_stdlib_ctx(pki.leaf(issued, "server")), parallel=True) as port:
        d = _diagnose(f"localhost:{port}", "--cafile", pki.ca_file)
    _assert_first_cause(d, "certificate-not-yet-valid", "the certificate does not verify: "
                        "the server's certificate for CN=localhost is not valid until")
    assert "the server's clock: not known" in d.findings  # (not an HTTP server)


def test_host_name_mismatch_lists_the_names(pki: Dir) -> None:
    issued = pki.ca.issue("www.other.test", "other.test")
    with stdlib_tls_server(_stdlib_ctx(pki.leaf(issued, "server")), parallel=True) as port:
        d = _diagnose(f"localhost:{port}", "--cafile", pki.ca_file)
    _assert_first_cause(d, "hostname-mismatch", "the certificate does not verify: "
                        "certificate for 'www.other.test', 'other.test' does not match")


def test_expiring_within_30_days(pki: Dir) -> None:
    now = datetime.datetime.now(datetime.UTC)
    issued = pki.ca.issue("localhost", not_after=now + datetime.timedelta(days=10, hours=1))
    with stdlib_tls_server(_stdlib_ctx(pki.leaf(issued, "server")), parallel=True) as port:
        d = _diagnose(f"localhost:{port}", "--cafile", pki.ca_file)
    _assert_first_cause(d, "certificate-expires-soon", "the certificate expires in 10 days")


# --- after the handshake: resumption -------------------------------------------------------

def test_resumption_that_fails(pki: Dir) -> None:
    """Tickets the next connection's server cannot open: several servers behind one name
    that do not share their ticket keys (here, a new context per connection)."""
    cert = pki.leaf(pki.ca.issue("localhost"), "server")
    with stdlib_tls_server(lambda: _stdlib_ctx(cert), parallel=True) as port:
        d = _diagnose(f"localhost:{port}", "--cafile", pki.ca_file)
    _assert_first_cause(d, "resumption-fails", "session resumption fails")
    assert "share the ticket keys" in d.findings


def test_resumption_that_works_and_no_tickets(pki: Dir) -> None:
    cert = pki.leaf(pki.ca.issue("localhost"), "server")
    shared = _stdlib_ctx(cert)
    no_tickets = _stdlib_ctx(cert)
    no_tickets.num_tickets = 0
    with stdlib_tls_server(shared, parallel=True) as port:
        works = _diagnose(f"localhost:{port}", "--cafile", pki.ca_file)
    with stdlib_tls_server(no_tickets, parallel=True) as port:
        none = _diagnose(f"localhost:{port}", "--cafile", pki.ca_file)
    assert works.status == 0 and "OK: a session from one connection resumed" in works.out
    assert none.status == 0, none.out  # (a choice, not a fault: a note)
    assert "Note: the server issues no session tickets" in none.out


# --- the probes run at once, within the bound ----------------------------------------------

@pytest.mark.parametrize("bound", [1, 4])
def test_probes_run_concurrently_within_the_bound(pki: Dir, bound: int) -> None:
    cert = pki.leaf(pki.ca.issue("localhost"), "server")
    gauge = ConcurrencyGauge()
    with slow_tls_server(_stdlib_ctx(cert), gauge, delay=0.15) as port:
        result = run_cli("diagnose", f"localhost:{port}", "--cafile", pki.ca_file,
                         "--concurrency", str(bound), timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert gauge.peak <= bound
    if bound > 1:
        assert gauge.peak >= 2  # (the probes did overlap)
