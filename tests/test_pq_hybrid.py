"""The hybrid post-quantum group X25519MLKEM768 (draft-ietf-tls-ecdhe-mlkem, 0x11EC).

Wire format and secret order checked by hand here; handshakes in memory in whichever
speed-up mode the run is in (HelloRetryRequest to it and from it, hostile shares); and
independent peers over loopback, from their own environment (tests/peers/pq_peer.py):
tlslite-ng 0.8.2's own hybrid group over kyber-py (pure-Python ML-KEM and X25519: none of
the OpenSSL code aiotls uses) in both roles, and curl over BoringSSL as a client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519

import aiotls
import aiotls.asyncio
from aiotls import _crypto_pq
from aiotls.context import DEFAULT_GROUPS, DEFAULT_SERVER_GROUPS
from aiotls.errors import AlertDescription, TLSConfigurationError, TLSError
from tests.helpers import (
    PKI,
    PQ_PEER_SCRIPT,
    SUBPROCESS_TIMEOUT,
    handshake,
    lean_path_taken,
    pq_peer_python,
    tap_handshake,
)
from tests.sockloop import free_port

HYBRID = "x25519mlkem768"
HYBRID_ID, X25519_ID, P256_ID = 0x11EC, 0x001D, 0x0017
HRR_RANDOM = bytes.fromhex("CF21AD74E59A6111BE1D8C021E65B891C2A211167ABB8C5E079E09E2C8A8339C")
KEY_SHARE = 51


# --- the bytes ----------------------------------------------------------------------------------


def _extensions(body: bytes, at: int) -> dict[int, bytes]:
    end = at + 2 + int.from_bytes(body[at:at + 2], "big")
    at += 2
    out = {}
    while at < end:
        kind, size = int.from_bytes(body[at:at + 2], "big"), int.from_bytes(body[at + 2:at + 4], "big")
        out[kind] = body[at + 4:at + 4 + size]
        at += 4 + size
    return out


def _handshake_body(flight: bytes) -> bytes:
    """The first handshake message's body in ``flight`` (a ChangeCipherSpec skipped)."""
    while flight[0] == 20:
        flight = flight[5 + int.from_bytes(flight[3:5], "big"):]
    return flight[5 + 4:]  # (record and handshake headers)


def hello_key_shares(flight: bytes) -> list[tuple[int, bytes]]:
    """(group, key_exchange) of each key share of the ClientHello opening ``flight``."""
    body = _handshake_body(flight)
    at = 2 + 32
    at += 1 + body[at]  # session id
    at += 2 + int.from_bytes(body[at:at + 2], "big")  # suites
    at += 1 + body[at]  # compression
    data = _extensions(body, at)[KEY_SHARE]
    shares, at = [], 2
    while at < len(data):
        group, size = int.from_bytes(data[at:at + 2], "big"), int.from_bytes(data[at + 2:at + 4], "big")
        shares.append((group, data[at + 4:at + 4 + size]))
        at += 4 + size
    return shares


def server_hello(flight: bytes) -> tuple[bool, int, bytes]:
    """(is a HelloRetryRequest, group, key_exchange) of the ServerHello opening ``flight``."""
    body = _handshake_body(flight)
    retry = body[2:34] == HRR_RANDOM
    at = 2 + 32
    at += 1 + body[at]
    at += 2 + 1  # suite, compression
    share = _extensions(body, at)[KEY_SHARE]
    return retry, int.from_bytes(share[:2], "big"), share[4:]


def flights(client_ctx: aiotls.TLSContext, server_ctx: aiotls.TLSContext
            ) -> tuple[list[bytes], aiotls.TLSConnection, aiotls.TLSConnection]:
    """A handshake in memory; every flight, client's first."""
    client = aiotls.TLSConnection(client_ctx, server_hostname="localhost")
    server = aiotls.TLSConnection(server_ctx, server_side=True)
    sent = []
    for _ in range(10):
        out = client.data_to_send()
        back = b""
        if out:
            sent.append(out)
            server.receive_data(out)
            back = server.data_to_send()
        if back:
            sent.append(back)
            client.receive_data(back)
        if not out and not back:
            break
    assert client.handshake_complete and server.handshake_complete
    return sent, client, server


def contexts(pki: PKI, client_groups: list[str] | None = None,
             server_groups: list[str] | None = None
             ) -> tuple[aiotls.TLSContext, aiotls.TLSContext]:
    client_ctx, server_ctx = pki.client_context(), pki.server_context()
    if client_groups:
        client_ctx.set_groups(client_groups)
    if server_groups:
        server_ctx.set_groups(server_groups)
    return client_ctx, server_ctx


def test_wire_format_client_share_then_server_share(pki: PKI) -> None:
    """Client share: ML-KEM-768 encapsulation key (1184) || X25519 (32), followed by a plain
    X25519 share; server share: ML-KEM ciphertext (1088) || X25519 (32)."""
    sent, client, server = flights(*contexts(pki, [HYBRID, "x25519"]))
    shares = hello_key_shares(sent[0])
    assert [(g, len(s)) for g, s in shares] == [(HYBRID_ID, 1216), (X25519_ID, 32)]
    mlkem.MLKEM768PublicKey.from_public_bytes(shares[0][1][:1184])  # a valid key, first
    x25519.X25519PublicKey.from_public_bytes(shares[0][1][1184:])
    retry, group, share = server_hello(sent[1])
    assert (retry, group, len(share)) == (False, HYBRID_ID, 1120)
    assert client.group == server.group == HYBRID
    server.send_data(b"post-quantum")
    client.receive_data(server.data_to_send())
    assert b"".join(e.data for e in client.events()  # type: ignore[attr-defined]
                    if hasattr(e, "data")) == b"post-quantum"


@pytest.mark.speedups
def test_the_x25519_share_reuses_the_hybrids_x25519_key(pki: PKI) -> None:
    client_ctx, server_ctx = contexts(pki, [HYBRID, "x25519"], ["x25519"])
    for _ in range(2):  # (tlslite's ClientHello, then the lean one made from it)
        sent, client, _ = flights(client_ctx, server_ctx)
        shares = dict(hello_key_shares(sent[0]))
        assert shares[HYBRID_ID][1184:] == shares[X25519_ID]
        assert client.group == "x25519"  # (and that X25519 key works)


def test_shared_secret_is_mlkem_then_x25519() -> None:
    """draft-ietf-tls-ecdhe-mlkem: for X25519MLKEM768 the ML-KEM parts come first."""
    impl = _crypto_pq.X25519MLKEM768()
    private = impl.generate()
    share = impl.client_share(private)
    assert share[:1184] == private[0].public_key().public_bytes_raw()
    assert share[1184:] == private[1].public_key().public_bytes_raw()
    secret, answer = impl.server_answer(share)
    assert len(secret) == 64 and len(answer) == 1120
    assert secret[:32] == private[0].decapsulate(bytes(answer[:1088]))
    assert secret[32:] == private[1].exchange(
        x25519.X25519PublicKey.from_public_bytes(bytes(answer[1088:])))
    assert impl.client_secret(private, answer) == secret


def test_bad_shares_raise_value_error() -> None:
    impl = _crypto_pq.X25519MLKEM768()
    private = impl.generate()
    share = bytes(impl.client_share(private))
    _, answer = impl.server_answer(share)
    bad = [
        lambda: impl.server_answer(share[:-1]),
        lambda: impl.server_answer(share[:1184] + bytes(32)),  # X25519 low-order point
        lambda: impl.server_answer(b"\xff" * 1184 + share[1184:]),  # FIPS 203 modulus check
        lambda: impl.client_secret(private, answer + b"\x00"),
        lambda: impl.client_secret(private, bytes(answer[:1088]) + bytes(32)),
    ]
    for call in bad:
        with pytest.raises(ValueError, match=r"X25519MLKEM768|x25519mlkem768|ML-KEM"):
            call()


def _zero_x25519_half(kind: int, marker: bytes, size: int) -> object:
    def edit(message: bytes) -> bytes:
        at = message.find(marker) if message[0] == kind else -1
        if at < 0:
            return message
        end = at + len(marker) + size
        return message[:end - 32] + bytes(32) + message[end:]
    return edit


@pytest.mark.parametrize(("side", "kind", "marker", "size"), [
    ("client", 1, b"\x11\xec\x04\xc0", 1216),  # the server refuses the ClientHello
    ("server", 2, b"\x11\xec\x04\x60", 1120),  # the client refuses the ServerHello
])
def test_hostile_x25519_half_gets_illegal_parameter(pki: PKI, side: str, kind: int,
                                                    marker: bytes, size: int) -> None:
    client = aiotls.TLSConnection(contexts(pki, [HYBRID, "x25519"])[0],
                                  server_hostname="localhost")
    server = aiotls.TLSConnection(pki.server_context(), server_side=True)
    edit = _zero_x25519_half(kind, marker, size)
    hello = client.data_to_send()  # (plaintext: edited on the wire)
    if side == "client":
        hello = hello[:5] + edit(hello[5:])
    else:
        tap_handshake(server, edit)
    with contextlib.suppress(TLSError):
        server.receive_data(hello)
        client.receive_data(server.data_to_send())
    refusing = server if side == "client" else client
    assert isinstance(refusing.error, TLSError) and not refusing.handshake_complete
    assert refusing.error.alert == AlertDescription.illegal_parameter
    assert "X25519" in str(refusing.error)


# --- groups, defaults, HelloRetryRequest --------------------------------------------------------


def test_defaults_server_prefers_it_client_does_not_offer_it(pki: PKI) -> None:
    """Measured: a full handshake with it costs more than 10% over X25519 (docs), so a
    client does not offer it by default; a server takes it whenever a client sends it."""
    assert HYBRID not in DEFAULT_GROUPS and DEFAULT_SERVER_GROUPS[0] == HYBRID
    client_ctx, server_ctx = contexts(pki)
    assert server_ctx.get_groups()[0] == HYBRID and HYBRID not in client_ctx.get_groups()
    sent, client, _ = flights(client_ctx, server_ctx)
    assert [g for g, _ in hello_key_shares(sent[0])] == [X25519_ID]
    assert client.group == "x25519" and server_hello(sent[1])[:2] == (False, X25519_ID)
    client_ctx.set_groups(["X25519MLKEM768", "x25519"])  # (names are case-insensitive)
    assert client_ctx.get_groups() == [HYBRID, "x25519"]
    assert flights(client_ctx, server_ctx)[1].group == HYBRID


def test_a_cryptography_without_mlkem_is_refused_clearly(pki: PKI,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_crypto_pq, "unavailable_reason",
                        lambda: "cryptography 45.0.0 has no ML-KEM")
    ctx = pki.client_context()
    with pytest.raises(TLSConfigurationError) as caught:
        ctx.set_groups(["x25519mlkem768", "x25519"])
    assert "not available" in str(caught.value) and "45.0.0" in str(caught.value)
    assert "cryptography 47" in caught.value.hint  # type: ignore[operator]
    ctx.set_groups(["x25519"])


def test_hello_retry_request_to_it(pki: PKI) -> None:
    """The client's first share is P-256; a server with only the hybrid asks for it."""
    sent, client, server = flights(*contexts(pki, ["secp256r1", HYBRID], [HYBRID]))
    assert [g for g, _ in hello_key_shares(sent[0])] == [P256_ID]
    assert server_hello(sent[1])[:2] == (True, HYBRID_ID)
    assert [(g, len(s)) for g, s in hello_key_shares(sent[2])] == [(HYBRID_ID, 1216)]
    assert server_hello(sent[3])[1:] == (HYBRID_ID, server_hello(sent[3])[2])
    assert len(server_hello(sent[3])[2]) == 1120
    assert client.group == server.group == HYBRID


def test_hello_retry_request_from_it(pki: PKI) -> None:
    """Hybrid and P-256 shares offered; a server with only X25519 asks for that, and the
    second ClientHello's X25519 key is a fresh one (not the hybrid's)."""
    sent, client, server = flights(*contexts(pki, [HYBRID, "secp256r1", "x25519"], ["x25519"]))
    first = dict(hello_key_shares(sent[0]))
    assert list(first) == [HYBRID_ID, P256_ID]
    assert server_hello(sent[1])[:2] == (True, X25519_ID)
    second = hello_key_shares(sent[2])
    assert [g for g, _ in second] == [X25519_ID] and second[0][1] != first[HYBRID_ID][1184:]
    assert client.group == server.group == "x25519"


def test_tls12_never_uses_it(pki: PKI) -> None:
    # (secp256r1 listed: the server's ECDSA certificate needs it in TLS 1.2)
    client_ctx, server_ctx = contexts(pki, [HYBRID, "x25519", "secp256r1"])
    client_ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    client, server = handshake(client_ctx, server_ctx)
    assert client.version() == "TLSv1.2" and client.group == server.group == "x25519"


@pytest.mark.speedups
@pytest.mark.parametrize("side", ["hello", "accept", "server", "client"])
def test_lean_paths_take_it(pki: PKI, side: str) -> None:
    assert lean_path_taken(side, *contexts(pki, [HYBRID, "x25519"]))


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.aiotls_trace)  # type: ignore[attr-defined]


@pytest.fixture
def trace_lines() -> Iterator[list[str]]:
    handler = _Lines()
    logger = logging.getLogger("aiotls.trace")
    logger.addHandler(handler)
    try:
        yield handler.lines
    finally:
        logger.removeHandler(handler)


def test_the_trace_names_it(pki: PKI, trace_lines: list[str]) -> None:
    client_ctx, server_ctx = contexts(pki, [HYBRID, "x25519"])
    client_ctx.trace_handshakes = server_ctx.trace_handshakes = True
    flights(client_ctx, server_ctx)
    text = "\n".join(trace_lines)
    assert f"groups {HYBRID} x25519" in text
    assert f"key share {HYBRID}" in text


# --- independent peers, in their own environment ------------------------------------------------


async def _peer(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        pq_peer_python(), PQ_PEER_SCRIPT, *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)


async def _lines(proc: asyncio.subprocess.Process) -> dict[str, str]:
    out, err = await asyncio.wait_for(proc.communicate(), SUBPROCESS_TIMEOUT)
    assert proc.returncode == 0, err.decode()
    return dict(line.split(" ", 1) for line in out.decode().splitlines() if " " in line)


@pytest.mark.interop
async def test_tlslite_kyber_py_server_and_aiotls_client(pki: PKI) -> None:
    """tlslite-ng's hybrid group over kyber-py encapsulates to cryptography's ML-KEM key;
    aiotls decapsulates (and the peer offers nothing but X25519MLKEM768)."""
    port = free_port()
    peer = await _peer("tlslite-server", str(port), *pki.server())
    try:
        assert await asyncio.wait_for(peer.stdout.readline(), SUBPROCESS_TIMEOUT) == b"ready\n"  # type: ignore[union-attr]
        client_ctx = pki.client_context()
        client_ctx.set_groups([HYBRID, "x25519"])
        reader, writer = await aiotls.asyncio.open_connection(
            "127.0.0.1", port, ssl=client_ctx, server_hostname="localhost")
        assert writer.get_extra_info("ssl_object").group == HYBRID
        writer.write(b"through kyber-py\n")
        assert await asyncio.wait_for(reader.readline(), SUBPROCESS_TIMEOUT) == \
            b"through kyber-py\n"
        writer.close()
        assert (await _lines(peer))["group"] == HYBRID
    finally:
        if peer.returncode is None:
            peer.kill()
            await peer.wait()


async def _aiotls_server(pki: PKI, respond: bytes | None) -> tuple[asyncio.Server, list[str]]:
    groups: list[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        groups.append(writer.get_extra_info("ssl_object").group)
        if respond is None:
            writer.write(await reader.readline())
        else:
            while (await reader.readline()) not in (b"\r\n", b""):
                pass
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                         % (len(respond), respond))
        await writer.drain()
        writer.close()

    server = await aiotls.asyncio.start_server(handle, "127.0.0.1", 0,
                                               ssl=pki.server_context())  # (defaults)
    return server, groups


@pytest.mark.interop
async def test_tlslite_kyber_py_client_and_aiotls_server(pki: PKI) -> None:
    """kyber-py's encapsulation key and X25519 share; aiotls encapsulates, with its defaults."""
    server, groups = await _aiotls_server(pki, None)
    async with server:
        port = server.sockets[0].getsockname()[1]
        lines = await _lines(await _peer("tlslite-client", str(port)))
    assert lines["group"] == HYBRID and lines["body"] == "ping" and groups == [HYBRID]


@pytest.mark.interop
async def test_curl_boringssl_client_and_aiotls_server(pki: PKI) -> None:
    """curl over BoringSSL (curl_cffi), offering only X25519MLKEM768, verifies aiotls's
    certificate and gets its answer: BoringSSL's TLS and ML-KEM, none of OpenSSL's."""
    server, groups = await _aiotls_server(pki, b"hello from aiotls")
    async with server:
        port = server.sockets[0].getsockname()[1]
        lines = await _lines(await _peer("curl", str(port), pki.ca_file))
    assert lines["status"] == "200" and lines["body"] == "hello from aiotls"
    assert groups == [HYBRID]
