"""The handshake trace (TLSContext.trace_handshakes, AIOTLS_TRACE, ``connect --trace``).

Each handshake is traced on both ends in memory, with aiotls's lean TLS 1.3 paths on and
off (they read their peer's messages without tlslite's record stack, so each has its own
hook), then against OpenSSL (through the stdlib), and through the command line for real.
What is compared is the sequence of steps, (direction, message name), that each end
logged, and the fields that matter for the case.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import aiotls
from aiotls._engine import (
    accept,
    client13,
    client_hello,
    describe,
    plainread,
    server13,
    tickets,
)
from aiotls._engine.trace import HandshakeTrace
from tests.helpers import (
    PKI,
    ROOT,
    VERSION_NAMES,
    cli_env,
    connect,
    handshake,
    run_cli,
    stdlib_tls_server,
)
from tests.sockloop import SocketTLS, TLSFailed, listen

TLS12 = ssl.TLSVersion.TLSv1_2
C2S, S2C = "client -> server", "server -> client"

#: A TLS 1.3 full handshake's steps, as the client sees them (tickets after it completes;
#: the certificate compressed, RFC 8879, as aiotls does by default).
FULL13_CLIENT = [(C2S, "ClientHello"), (S2C, "ServerHello"), (S2C, "ChangeCipherSpec"),
                 (S2C, "EncryptedExtensions"), (S2C, "CompressedCertificate"),
                 (S2C, "CertificateVerify"), (S2C, "Finished"), (C2S, "ChangeCipherSpec"),
                 (C2S, "Finished"), ("", "handshake complete"), (S2C, "NewSessionTicket"),
                 (S2C, "NewSessionTicket")]
#: The same from OpenSSL, which does not compress certificates (3.0)
FULL13_OPENSSL = [(S2C, "Certificate") if step == (S2C, "CompressedCertificate") else step
                  for step in FULL13_CLIENT]
FULL13_SERVER = [*FULL13_CLIENT[:9], (S2C, "NewSessionTicket"), (S2C, "NewSessionTicket"),
                 ("", "handshake complete")]
FULL12_CLIENT = [(C2S, "ClientHello"), (S2C, "ServerHello"), (S2C, "Certificate"),
                 (S2C, "ServerKeyExchange"), (S2C, "ServerHelloDone"),
                 (C2S, "ClientKeyExchange"), (C2S, "ChangeCipherSpec"), (C2S, "Finished"),
                 (S2C, "NewSessionTicket"), (S2C, "ChangeCipherSpec"), (S2C, "Finished"),
                 ("", "handshake complete")]

_STEP = re.compile(r"^\s*\+\d+\.\d ms  (?:(client -> server|server -> client)  (\S+)|"
                   r"(handshake complete|handshake failed|connection failed))")


class Captured(logging.Handler):
    """Every record of ``aiotls.trace``, by connection."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def lines(self, role: str) -> list[str]:
        """The trace lines (without the connection's label) of the connections of a role."""
        return [r.aiotls_trace for r in self.records  # type: ignore[attr-defined]
                if r.aiotls_connection.startswith(role)]  # type: ignore[attr-defined]

    def steps(self, role: str) -> list[tuple[str, str]]:
        return steps_of(self.lines(role))


def steps_of(lines: list[str]) -> list[tuple[str, str]]:
    """(direction, message name) of each trace line (("", outcome) for the last ones)."""
    out = []
    for line in lines:
        match = _STEP.match(line)
        assert match is not None, line
        out.append((match[1], match[2]) if match[1] else ("", match[3]))
    return out


@pytest.fixture
def trace() -> Iterator[Captured]:
    handler = Captured()
    logger = logging.getLogger("aiotls.trace")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


@pytest.fixture(params=[pytest.param("lean", marks=pytest.mark.speedups), "tlslite"])
def paths(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """aiotls's lean TLS 1.3 paths on (as they are; deselected with AIOTLS_SPEEDUPS=0, where
    they are off), or all off: tlslite's own reading."""
    if request.param == "tlslite":
        for module in (accept, client13, client_hello, plainread, server13, tickets):
            monkeypatch.setattr(module, "ENABLED", False)
    return str(request.param)


def traced(pki: PKI, *, mtls: bool = False) -> tuple[aiotls.TLSContext, aiotls.TLSContext]:
    cctx, sctx = pki.mtls_contexts() if mtls else (pki.client_context(), pki.server_context())
    cctx.trace_handshakes = sctx.trace_handshakes = True
    return cctx, sctx


# --- off, on per context, on by the environment ----------------------------------------------


def test_off_by_default_no_records(pki: PKI, trace: Captured) -> None:
    assert not pki.client_context().trace_handshakes
    client, server = connect(pki.client_context(), pki.server_context())
    assert client.handshake_complete and server.handshake_complete
    assert trace.records == []
    assert client._engine._tl._aiotls_trace is None  # (nothing attached: one None check)


def test_on_per_context_one_end_only(pki: PKI, trace: Captured) -> None:
    cctx = pki.client_context()
    cctx.trace_handshakes = True
    connect(cctx, pki.server_context())
    assert trace.steps("client") == FULL13_CLIENT
    assert trace.lines("server") == []
    assert {r.levelno for r in trace.records} == {logging.INFO}
    assert {r.name for r in trace.records} == {"aiotls.trace"}
    # each record readable alone: the connection's label first, then the step
    assert all(r.getMessage().startswith("client#") and " localhost " in r.getMessage()
               for r in trace.records)


def test_environment_variable_turns_it_on_for_new_contexts(
        pki: PKI, trace: Captured, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIOTLS_TRACE", "1")
    assert aiotls.TLSContext(ssl.PROTOCOL_TLS_CLIENT).trace_handshakes
    assert aiotls.create_default_context().trace_handshakes
    connect(pki.client_context(), pki.server_context())
    assert trace.steps("client") == FULL13_CLIENT and trace.steps("server") == FULL13_SERVER
    monkeypatch.setenv("AIOTLS_TRACE", "0")
    assert not aiotls.TLSContext(ssl.PROTOCOL_TLS_CLIENT).trace_handshakes


def test_environment_variable_in_a_fresh_process(pki: PKI) -> None:
    """AIOTLS_TRACE=1 and a handler (basicConfig): the lines reach it."""
    probe = (
        "import logging, sys, tempfile\n"
        "logging.basicConfig(stream=sys.stdout, format='%(name)s %(message)s')\n"
        "import aiotls\n"
        "from aiotls import testing\n"
        "with tempfile.TemporaryDirectory() as d:\n"
        "    pki = testing.generate_pki(d)\n"
        "    c = aiotls.TLSConnection(pki.client_context(), server_hostname='localhost')\n"
        "    s = aiotls.TLSConnection(pki.server_context(), server_side=True)\n"
        "    for _ in range(3):\n"
        "        s.receive_data(c.data_to_send()); c.receive_data(s.data_to_send())\n"
        "    print('done', c.version())\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=60, check=True, cwd=ROOT,
                         env={**cli_env(), "AIOTLS_TRACE": "1"}).stdout
    assert "done TLSv1.3" in out
    assert re.search(r"^aiotls\.trace client#\d+ localhost +\+\d+\.\d ms  client -> server  "
                     r"ClientHello", out, re.M), out
    assert "handshake complete in" in out


# --- the sequences, both ends, lean paths and tlslite's -------------------------------------


def test_tls13_full(pki: PKI, trace: Captured, paths: str) -> None:
    connect(*traced(pki))
    assert trace.steps("client") == FULL13_CLIENT
    assert trace.steps("server") == FULL13_SERVER
    hello = trace.lines("client")[0]
    assert "TLS 1.3 TLS 1.2 (legacy TLS 1.2), SNI localhost" in hello
    assert "key shares x25519" in hello and "psk/ticket offered: no" in hello
    assert "TLS_AES_256_GCM_SHA384" in hello and "groups x25519 secp256r1" in hello
    server_hello = trace.lines("client")[1]
    assert "ServerHello  TLS 1.3, TLS_AES_256_GCM_SHA384, key share x25519, resumed: no" \
        in server_hello
    assert "1 certificate, leaf CN=localhost, SAN localhost example.test 127.0.0.1 ::1" \
        in trace.lines("client")[4]
    assert "signature scheme ecdsa_secp256r1_sha256" in trace.lines("client")[5]
    assert "lifetime 7200 s" in trace.lines("client")[-1]
    assert "(TLS 1.3, TLS_AES_256_GCM_SHA384, full handshake)" in trace.lines("server")[-1]


def test_tls13_resumed(pki: PKI, trace: Captured, paths: str) -> None:
    cctx, sctx = traced(pki)
    client, _ = connect(cctx, sctx)
    trace.records.clear()
    client, _ = connect(cctx, sctx, session=client.session)
    assert client.session_reused
    expected = [(C2S, "ClientHello"), (S2C, "ServerHello"), (S2C, "ChangeCipherSpec"),
                (S2C, "EncryptedExtensions"), (S2C, "Finished"), (C2S, "ChangeCipherSpec"),
                (C2S, "Finished")]
    assert trace.steps("client") == [*expected, ("", "handshake complete"),
                                     (S2C, "NewSessionTicket")]
    assert trace.steps("server") == [*expected, (S2C, "NewSessionTicket"),
                                     ("", "handshake complete")]
    assert "psk/ticket offered: TLS 1.3 ticket (PSK)" in trace.lines("server")[0]
    assert "resumed: yes" in trace.lines("client")[1]
    assert "(TLS 1.3, TLS_AES_256_GCM_SHA384, resumed)" in trace.lines("server")[-1]


def test_tls13_hello_retry_request(pki: PKI, trace: Captured, paths: str) -> None:
    cctx, sctx = traced(pki)
    sctx.set_groups(["secp256r1"])
    client, _ = connect(cctx, sctx)
    assert client.handshake_complete
    for role in ("client", "server"):
        steps = trace.steps(role)
        # (each end logs steps as it handles them: the client reads the server's
        # ChangeCipherSpec only when it looks for the ServerHello, after its own hello)
        messages = [step for step in steps if step[1] != "ChangeCipherSpec"]
        assert messages[:4] == [(C2S, "ClientHello"), (S2C, "HelloRetryRequest"),
                                (C2S, "ClientHello"), (S2C, "ServerHello")], role
        before = steps[:steps.index((S2C, "ServerHello"))]
        assert (C2S, "ChangeCipherSpec") in before and (S2C, "ChangeCipherSpec") in before
        assert ("", "handshake complete") in steps
        lines = trace.lines(role)
        assert "asks for a key share for secp256r1" in lines[1]
        positions = [i for i, step in enumerate(steps) if step[1] != "ChangeCipherSpec"]
        second, server_hello = lines[positions[2]], lines[positions[3]]
        assert "key shares x25519" in lines[0] and "key shares secp256r1" in second
        assert "key share secp256r1" in server_hello


@pytest.mark.parametrize("role", ["client", "server"])
def test_tls12_full(pki: PKI, trace: Captured, role: str) -> None:
    cctx, sctx = traced(pki)
    cctx.maximum_version = TLS12
    connect(cctx, sctx)
    assert trace.steps(role) == FULL12_CLIENT  # (the same steps on both ends)
    lines = trace.lines(role)
    assert "ECDHE group x25519, signed with ecdsa_" in lines[3]
    assert "extended master secret, resumed: no" in lines[1]
    assert "lifetime hint 7200 s" in lines[8]


def test_tls12_resumed_by_ticket(pki: PKI, trace: Captured) -> None:
    cctx, sctx = traced(pki)
    cctx.maximum_version = TLS12
    client, _ = connect(cctx, sctx)
    trace.records.clear()
    client, _ = connect(cctx, sctx, session=client.session)
    assert client.session_reused
    assert trace.steps("client") == [
        (C2S, "ClientHello"), (S2C, "ServerHello"), (S2C, "ChangeCipherSpec"), (S2C, "Finished"), (C2S, "ChangeCipherSpec"),
        (C2S, "Finished"), ("", "handshake complete")]
    assert "psk/ticket offered: TLS 1.2 ticket" in trace.lines("client")[0]
    assert "resumed: yes" in trace.lines("client")[1]


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_3, TLS12], ids=["TLSv1.3", "TLSv1.2"])
def test_mutual_tls(pki: PKI, trace: Captured, version: ssl.TLSVersion, paths: str) -> None:
    cctx, sctx = traced(pki, mtls=True)
    cctx.maximum_version = version
    client, server = connect(cctx, sctx)
    assert server.getpeercert() and client.version() == VERSION_NAMES[version]
    for role in ("client", "server"):
        steps = trace.steps(role)
        names = [name for _, name in steps]
        request = names.index("CertificateRequest")
        assert steps[request][0] == S2C
        # (TLS 1.3: compressed, RFC 8879; the trace shows what is inside)
        cert = (C2S, "CompressedCertificate" if version == ssl.TLSVersion.TLSv1_3
                else "Certificate")
        assert cert in steps and (C2S, "CertificateVerify") in steps
        assert steps.index(cert) > request
        assert steps.index((C2S, "CertificateVerify")) > steps.index(cert)
        lines = trace.lines(role)
        assert re.search(r"CertificateRequest  \d+ CA names?, signature schemes \w", lines[request])
        client_cert = lines[steps.index(cert)]
        assert "1 certificate, leaf CN=client.example.test" in client_cert


# --- alerts and failures --------------------------------------------------------------------


def test_untrusted_certificate_alert_both_directions(pki: PKI, trace: Captured,
                                                     paths: str) -> None:
    cctx = aiotls.TLSContext(ssl.PROTOCOL_TLS_CLIENT)  # trusts nothing
    sctx = pki.server_context()
    cctx.trace_handshakes = sctx.trace_handshakes = True
    client, server = handshake(cctx, sctx)
    assert isinstance(client.error, aiotls.CertificateError)
    client_lines, server_lines = trace.lines("client"), trace.lines("server")
    sent = [line for line in client_lines if "Alert" in line]
    assert len(sent) == 1
    assert re.search(r"client -> server  Alert  fatal unknown_ca: the peer's certificate chain "
                     r"does not lead to a CA this side trusts", sent[0]), sent
    assert re.search(r"handshake failed: .*server's certificate.* \[certificate-",
                     client_lines[-1])
    received = [line for line in server_lines if "Alert" in line]
    assert re.search(r"client -> server  Alert  fatal unknown_ca: the peer does not trust the CA",
                     received[0]), received
    assert "handshake failed: " in server_lines[-1] and "[alert-unknown-ca]" in server_lines[-1]
    assert "handshake complete" not in "".join(client_lines + server_lines)


def test_no_client_certificate_mtls_required_tls12(pki: PKI, trace: Captured) -> None:
    """A server that requires a certificate and gets none: its alert, on both ends."""
    _, sctx = pki.mtls_contexts()
    cctx = pki.client_context()
    cctx.maximum_version = TLS12
    cctx.trace_handshakes = sctx.trace_handshakes = True
    client, server = handshake(cctx, sctx)
    assert client.error is not None and server.error is not None
    assert (C2S, "Certificate") in trace.steps("client")
    assert "empty (no certificate)" in trace.lines("client")[trace.steps("client").index(
        (C2S, "Certificate"))]
    alerts = [line for line in trace.lines("client") if "Alert" in line]
    assert alerts and "server -> client  Alert  fatal" in alerts[0]
    assert trace.steps("client")[-1] == ("", "handshake failed")


def test_eof_in_the_handshake_ends_the_trace(pki: PKI, trace: Captured) -> None:
    cctx = pki.client_context()
    cctx.trace_handshakes = True
    client = aiotls.TLSConnection(cctx, server_hostname="localhost")
    client.data_to_send()
    client.receive_data(b"")
    assert trace.steps("client") == [(C2S, "ClientHello"), ("", "handshake failed")]
    assert "[eof-in-handshake]" in trace.lines("client")[-1]


def test_a_message_it_cannot_read_is_unparsed_and_the_handshake_goes_on(
        pki: PKI, trace: Captured, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: describe.Describer, data: bytes) -> tuple[str, str]:
        raise ValueError("truncated")

    monkeypatch.setattr(describe.Describer, "message", broken)
    client, server = connect(*traced(pki))
    assert client.handshake_complete and server.handshake_complete
    assert "unparsed handshake message 1  " in trace.lines("client")[0]
    assert trace.steps("client")[9] == ("", "handshake complete")


def test_garbage_is_described_without_raising(trace: Captured) -> None:
    now = __import__("datetime").datetime.now
    tracer = HandshakeTrace(server_side=True, server_hostname=None, now=now)
    tracer.received(22, b"\x02\x00\x00\x05\x03")  # incomplete: waits for the rest
    tracer.received(22, b"\x03\x00\x00\x00")  # the rest: a ServerHello too short to read
    tracer.received(22, b"\x63\x00\x00\x01\x00")  # an unknown type
    tracer.received(21, b"\x02\xff")  # an unknown alert
    tracer.received(21, b"\x02")  # a malformed one
    lines = [r.aiotls_trace for r in trace.records]  # type: ignore[attr-defined]
    assert "unparsed handshake message 2  5 bytes" in lines[0]
    assert "handshake message 99  1 byte" in lines[1]
    assert "Alert  fatal alert_255: the peer sent an alert number" in lines[2]
    assert "Alert  malformed (1 bytes)" in lines[3]


def test_no_secrets_in_the_trace(pki: PKI, trace: Captured) -> None:
    """Names, counts and sizes only: no random, key share, Finished value or ticket."""
    client, _ = connect(*traced(pki))
    text = "\n".join(r.getMessage() for r in trace.records)
    assert not re.search(r"[0-9a-fA-F]{16}", text)
    secret = bytes(client._engine._tl.session.cl_app_secret).hex()
    assert secret not in text


# --- a real peer: OpenSSL (through the stdlib) --------------------------------------------


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_3, TLS12], ids=["TLSv1.3", "TLSv1.2"])
def test_client_against_openssl(pki: PKI, trace: Captured, version: ssl.TLSVersion) -> None:
    server_ctx = pki.stdlib_server_context()
    server_ctx.maximum_version = version
    cctx = pki.client_context()
    cctx.trace_handshakes = True
    with stdlib_tls_server(server_ctx) as port, \
            SocketTLS.connect(cctx, ("127.0.0.1", port), server_hostname="localhost") as tls:
        tls.handshake()
        tls.send(b"ping")
        assert tls.recv_exactly(4) == b"ping"
        with contextlib.suppress(TLSFailed):  # (the echo server closes without one)
            tls.close()
    steps = trace.steps("client")
    if version == TLS12:
        assert steps[:8] == FULL12_CLIENT[:8]
        assert steps[-3:] == [(S2C, "ChangeCipherSpec"), (S2C, "Finished"),
                              ("", "handshake complete")]
    else:
        assert steps[:10] == FULL13_OPENSSL[:10]
        assert steps[10:] == [(S2C, "NewSessionTicket")] * 2  # (OpenSSL's two tickets)


def test_server_against_openssl(pki: PKI, trace: Captured) -> None:
    sctx = pki.server_context()
    sctx.trace_handshakes = True
    client_ctx = pki.stdlib_client_context()
    result: list[bytes] = []

    def client(port: int) -> None:
        import socket

        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock, \
                client_ctx.wrap_socket(sock, server_hostname="localhost") as tls:
            tls.sendall(b"hello")
            result.append(tls.recv(5))

    with listen() as listener:
        thread = threading.Thread(target=client, args=(listener.getsockname()[1],))
        thread.start()
        with SocketTLS.accept(sctx, listener) as tls:
            tls.handshake()
            tls.send(tls.recv_exactly(5))
        thread.join(10)
    assert result == [b"hello"]
    steps = trace.steps("server")
    assert steps[:2] == [(C2S, "ClientHello"), (S2C, "ServerHello")]
    assert (C2S, "Finished") in steps and ("", "handshake complete") in steps
    assert "key shares x25519" in trace.lines("server")[0]  # (OpenSSL's ClientHello, read)


# --- the command line, for real ------------------------------------------------------------


def _cli_trace(output: str) -> list[str]:
    """The lines under "Handshake trace (--trace)" in ``connect``'s text output."""
    block = output.split("Handshake trace (--trace)\n", 1)[1].split("\n\n", 1)[0]
    return block.splitlines()


@pytest.mark.parametrize("version", ["TLSv1.3", "TLSv1.2"])
def test_connect_trace_text(pki: PKI, version: str) -> None:
    server_ctx = pki.stdlib_server_context()
    server_ctx.maximum_version = ssl.TLSVersion[version.replace(".", "_")]
    with stdlib_tls_server(server_ctx) as port:
        flags = ["--tls12"] if version == "TLSv1.2" else []
        out = run_cli("connect", "127.0.0.1", str(port), "--servername", "localhost",
                      "--cafile", pki.ca_file, "--trace", *flags)
    assert out.returncode == 0, out.stderr
    assert out.stdout.index("Handshake trace (--trace)") < out.stdout.index("Handshake OK")
    steps = steps_of(_cli_trace(out.stdout))
    expected = FULL12_CLIENT if version == "TLSv1.2" else FULL13_OPENSSL[:10]
    assert steps[:len(expected)] == expected


def test_connect_trace_json_and_a_failure(pki: PKI) -> None:
    """An untrusted server: the trace up to the alert, then the error."""
    with stdlib_tls_server(pki.stdlib_server_context()) as port:
        out = run_cli("connect", "127.0.0.1", str(port), "--servername", "localhost",
                      "--trace", "--json")
    assert out.returncode == 1
    document = json.loads(out.stdout)
    traces = [r for r in document["results"] if r["type"] == "HandshakeTrace"]
    assert len(traces) == 1
    steps = steps_of(traces[0]["lines"])
    assert steps[-2:] == [(C2S, "Alert"), ("", "handshake failed")]
    assert "fatal unknown_ca" in traces[0]["lines"][-2]
    assert document["error"]["code"].startswith("certificate")


def test_connect_trace_text_when_the_handshake_fails(pki: PKI) -> None:
    with stdlib_tls_server(pki.stdlib_server_context()) as port:
        out = run_cli("connect", "127.0.0.1", str(port), "--servername", "localhost",
                      "--trace")
    assert out.returncode == 1
    assert "client -> server  Alert  fatal unknown_ca" in out.stdout
    assert "handshake failed" in _cli_trace(out.stdout)[-1]
    assert out.stderr.startswith("error: ")


# --- the docs -------------------------------------------------------------------------------


def _doc_traces() -> dict[str, list[tuple[str, str]]]:
    """The traces in docs/troubleshooting.md, by the version their last line names."""
    text = (Path(ROOT) / "docs" / "troubleshooting.md").read_text()
    found = {}
    for block in re.findall(r"```\n(.*?)```", text, re.S):
        if "Handshake trace (--trace)" not in block:
            continue
        lines = _cli_trace(block)
        version = re.search(r"handshake complete in .* \((TLS 1\.\d)", "\n".join(lines))
        assert version is not None, block
        found[version[1]] = steps_of(lines)
    return found


def test_the_docs_traces_have_the_shape_the_code_prints(pki: PKI, trace: Captured) -> None:
    """The docs show a TLS 1.3 and a TLS 1.2 trace as ``connect --trace`` prints them
    against ``python -m aiotls serve``: the same steps as such a handshake now."""
    docs = _doc_traces()
    assert set(docs) == {"TLS 1.3", "TLS 1.2"}
    for name, maximum in (("TLS 1.3", ssl.TLSVersion.TLSv1_3), ("TLS 1.2", TLS12)):
        trace.records.clear()
        cctx = pki.client_context()
        cctx.trace_handshakes = True
        cctx.maximum_version = maximum
        connect(cctx, pki.server_context())
        assert docs[name] == trace.steps("client"), name
