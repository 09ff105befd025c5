"""RFC 8449 record_size_limit in both directions and TLS 1.3 record padding
(``TLSContext.record_size_limit``, ``TLSContext.record_padding``).

aiotls at both ends (every record on the wire measured), a peer that ignores the limit it
was given (a forged record must be refused with record_overflow), and ``openssl
s_server``/``s_client`` with ``-record_padding`` and ``-max_send_frag`` (OpenSSL 3.0 does
not implement RFC 8449: it ignores the extension, so aiotls's limit is not in force and
its full-size records must be accepted).
"""

from __future__ import annotations

import os
import ssl

import pytest

import aiotls
from aiotls.errors import AlertDescription, TLSConfigurationError
from tests.helpers import PKI, VERSION_PARAMS, VERSIONS, data_of, handshake, pump, split_records
from tests.sockloop import OpenSSLProcess, SocketTLS, free_port, listen, require_openssl

TLS13 = ssl.TLSVersion.TLSv1_3


def _lengths(data: bytes) -> list[tuple[int, int]]:
    """(content type, length) of each record in ``data``."""
    return [(r[0], int.from_bytes(r[3:5], "big")) for r in split_records(data)]


def _shuttle(client: aiotls.TLSConnection, server: aiotls.TLSConnection
             ) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Pump until quiet; the records each side sent."""
    sent_c: list[tuple[int, int]] = []
    sent_s: list[tuple[int, int]] = []
    for _ in range(50):
        out_c = client.data_to_send()
        sent_c += _lengths(out_c)
        if out_c:
            server.receive_data(out_c)
        out_s = server.data_to_send()
        sent_s += _lengths(out_s)
        if out_s:
            client.receive_data(out_s)
        if not out_c and not out_s:
            break
    return sent_c, sent_s


def _extension(hello: bytes, kind: int) -> bytes | None:
    """The body of extension ``kind`` in a ClientHello record."""
    body = hello[5 + 4:]
    pos = 2 + 32
    pos += 1 + body[pos]
    pos += 2 + int.from_bytes(body[pos:pos + 2], "big")
    pos += 1 + body[pos]
    end = pos + 2 + int.from_bytes(body[pos:pos + 2], "big")
    pos += 2
    while pos < end:
        ext, size = int.from_bytes(body[pos:pos + 2], "big"), int.from_bytes(body[pos + 2:pos + 4],
                                                                              "big")
        if ext == kind:
            return bytes(body[pos + 4:pos + 4 + size])
        pos += 4 + size
    return None


# --- record_size_limit -----------------------------------------------------------------------


def test_the_client_offers_its_limit() -> None:
    ctx = aiotls.TLSContext()
    hello = aiotls.TLSConnection(ctx, server_hostname="localhost").data_to_send()
    assert _extension(hello, 28) == (2**14 + 1).to_bytes(2, "big")
    ctx.record_size_limit = 512
    hello = aiotls.TLSConnection(ctx, server_hostname="localhost").data_to_send()
    assert _extension(hello, 28) == (512).to_bytes(2, "big")


@pytest.mark.parametrize("version", VERSION_PARAMS)
@pytest.mark.parametrize("limited", ["client", "server", "both"])
def test_each_side_keeps_to_the_peers_limit(pki: PKI, version: ssl.TLSVersion,
                                            limited: str) -> None:
    """Every protected record sent towards a side with a limit is within it: the
    handshake flight, tickets and application data in several sizes (TLS 1.3: the limit
    counts the content type, so a 64-byte limit means 63 content bytes + 1 + 16 tag)."""
    client_ctx, server_ctx = pki.client_context(), pki.server_context()
    client_ctx.maximum_version = version
    if limited in ("client", "both"):
        client_ctx.record_size_limit = 64
    if limited in ("server", "both"):
        server_ctx.record_size_limit = 100
    client = aiotls.TLSConnection(client_ctx, server_hostname="localhost")
    server = aiotls.TLSConnection(server_ctx, server_side=True)
    sent_c, sent_s = _shuttle(client, server)
    assert client.handshake_complete and server.handshake_complete
    for size in (1, 63, 64, 1000, 20000):
        payload = os.urandom(size)
        server.send_data(payload)
        client.send_data(payload[::-1])
        more_c, more_s = _shuttle(client, server)
        sent_c += more_c
        sent_s += more_s
        assert data_of(client) == payload and data_of(server) == payload[::-1]
    tls13 = version == TLS13
    # (the tag; TLS 1.2 AES-GCM also carries an 8-byte explicit nonce)
    tag = 16 if tls13 or "GCM" not in client.cipher()[0] else 24  # type: ignore[index]
    # (TLS 1.3: everything after the ServerHello is protected; TLS 1.2: the application data)
    protected_s = [n for t, n in sent_s if t == 23]
    protected_c = [n for t, n in sent_c if t == 23]
    assert protected_s and protected_c
    client_limit = 64 if limited in ("client", "both") else 2**14 + tls13
    server_limit = 100 if limited in ("server", "both") else 2**14 + tls13
    content_s = max(protected_s) - tag
    content_c = max(protected_c) - tag
    assert content_s <= client_limit and content_c <= server_limit
    if limited != "server":
        assert content_s == client_limit  # (full records: the limit itself is used)


@pytest.mark.parametrize("version", VERSION_PARAMS)
def test_a_record_over_our_limit_is_record_overflow(pki: PKI, version: ssl.TLSVersion) -> None:
    """A peer that ignores the limit it was told: its first record over it ends the
    connection with record_overflow (checked once the record is authentic)."""
    client_ctx = pki.client_context()
    client_ctx.maximum_version = version
    client_ctx.record_size_limit = 256
    client, server = handshake(client_ctx, pki.server_context())
    server._engine._records.set_send_limit(2**14)  # (the peer misbehaving)
    server.send_data(b"x" * 200)
    client.receive_data(server.data_to_send())
    assert data_of(client) == b"x" * 200  # (within the limit)
    server.send_data(b"y" * 300)
    client.receive_data(server.data_to_send())
    assert client.error is not None
    assert client.error.alert == AlertDescription.record_overflow
    assert "record_size_limit" in str(client.error)


def test_the_limit_is_not_enforced_unless_the_peer_knows_it(pki: PKI) -> None:
    """A server that does not answer record_size_limit (OpenSSL 3.0, tested below) never
    learned the client's limit: full-size records are accepted (RFC 8449 4)."""
    client_ctx = pki.client_context()
    client_ctx.record_size_limit = 64
    server_ctx = pki.server_context()
    server_ctx.record_size_limit = 2**14 + 1
    client, server = handshake(client_ctx, server_ctx)
    assert client._engine._records.recv_limit == 63  # (negotiated: in force)


def test_record_size_limit_values() -> None:
    ctx = aiotls.TLSContext()
    for bad in (63, 2**14 + 2, "512", True, 0):
        with pytest.raises(TLSConfigurationError, match="record_size_limit"):
            ctx.record_size_limit = bad  # type: ignore[assignment]
    ctx.record_size_limit = 64
    assert ctx.record_size_limit == 64


# --- padding -----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSION_PARAMS)
def test_padding_to_a_block(pki: PKI, version: ssl.TLSVersion) -> None:
    """Every protected TLS 1.3 record the padded side sends (its handshake flight too) is
    a multiple of the block plus the tag; TLS 1.2 has no padding."""
    client_ctx, server_ctx = pki.client_context(), pki.server_context()
    client_ctx.maximum_version = version
    server_ctx.record_padding = 256
    client = aiotls.TLSConnection(client_ctx, server_hostname="localhost")
    server = aiotls.TLSConnection(server_ctx, server_side=True)
    _, sent_s = _shuttle(client, server)
    for size in (0, 1, 255, 256, 5000):
        payload = os.urandom(size)
        server.send_data(payload)
        client.send_data(b"ping")
        more_c, more_s = _shuttle(client, server)
        sent_s += more_s
        assert data_of(server) == b"ping" and data_of(client) == payload
    one_call = server.send(b"one call")  # (the one-call path pads too)
    sent_s += _lengths(one_call)
    client.receive_data(one_call)
    assert data_of(client) == b"one call"
    client.close()
    more_c, more_s = _shuttle(client, server)
    sent_s += more_s
    protected = [n for t, n in sent_s if t == 23 or (t == 21 and n > 2)]
    assert len(protected) >= 5
    if version == TLS13:
        assert all((n - 16) % 256 == 0 for n in protected), protected
    else:
        assert any((n - 16) % 256 for n in protected)


def test_padding_by_a_function_and_within_the_limit(pki: PKI) -> None:
    seen: list[tuple[int, int]] = []

    def policy(content_type: int, length: int) -> int:
        seen.append((content_type, length))
        return 1000

    client_ctx, server_ctx = pki.client_context(), pki.server_context()
    client_ctx.record_padding = policy
    server_ctx.record_size_limit = 600
    client, server = handshake(client_ctx, server_ctx)
    client.send_data(b"a" * 100)
    records = _lengths(client.data_to_send())
    assert records == [(23, 600 + 16)]  # (cut to the server's limit: 100 + 1 + 499)
    assert (23, 100) in seen and any(t == 22 for t, _ in seen)  # (the Finished too)


def test_a_bad_padding_function_fails_the_connection_clearly(pki: PKI) -> None:
    client_ctx = pki.client_context()
    client, server = handshake(client_ctx, pki.server_context())
    client._engine._records.padding = lambda t, n: -1  # (as record_padding would set it)
    with pytest.raises(TLSConfigurationError, match="record_padding function returned -1"):
        client.send_data(b"x")
    assert client.error is not None and client.error.code == "bad-record-padding"
    assert client.state is aiotls.ConnectionState.FAILED
    assert "record_padding" in str(client.error)
    client_ctx.record_padding = lambda t, n: "many"  # type: ignore[assignment,return-value]
    client = aiotls.TLSConnection(client_ctx, server_hostname="localhost")
    server = aiotls.TLSConnection(pki.server_context(), server_side=True)
    pump(client, server)
    assert client.error is not None and client.error.code == "bad-record-padding"
    # (the alert that tells the peer goes out unpadded)
    assert server.error is not None and server.error.alert == AlertDescription.internal_error


def test_record_padding_values() -> None:
    ctx = aiotls.TLSContext()
    assert ctx.record_padding is None
    for bad in (0, 2**14 + 1, "256", 1.5):
        with pytest.raises(TLSConfigurationError, match="record_padding"):
            ctx.record_padding = bad  # type: ignore[assignment]
    ctx.record_padding = 512
    assert ctx.record_padding == 512


# --- OpenSSL ----------------------------------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("version", list(VERSIONS))
def test_openssl_s_server_padding_and_small_fragments(pki: PKI, version: str) -> None:
    """``s_server -record_padding 512 -max_send_frag 512 -rev``: aiotls reads its padded,
    small records; aiotls pads its own (record_padding) and sets a limit OpenSSL ignores."""
    openssl = require_openssl()
    ctx = pki.client_context()
    ctx.maximum_version = VERSIONS[version]
    ctx.record_padding = 1024
    ctx.record_size_limit = 1000  # (OpenSSL 3.0 ignores it: not in force)
    port = free_port()
    argv = [openssl, "s_server", "-accept", f"127.0.0.1:{port}", "-cert", pki.server()[0],
            "-key", pki.server()[1], "-naccept", "1", "-rev", "-record_padding", "512",
            "-max_send_frag", "512", "-tls1_3" if version == "TLSv1.3" else "-tls1_2"]
    with OpenSSLProcess(argv) as server:
        server.wait_for_output("ACCEPT", 20)
        with SocketTLS.connect(ctx, ("127.0.0.1", port), server_hostname="localhost",
                               timeout=20) as tls:
            tls.handshake()
            assert tls.conn._engine._records.recv_limit == 2**14  # (not negotiated)
            line = os.urandom(3000).hex().encode()
            tls.conn.send_data(line + b"\n")
            out = tls.conn.data_to_send()
            if version == "TLSv1.3":
                assert all((n - 16) % 1024 == 0 for _, n in _lengths(out))
            tls.sock.sendall(out)
            assert tls.recv_line() == line[::-1] + b"\n"
            tls.close()
        rc, output = server.wait(20)
    assert rc == 0, output


@pytest.mark.timeout(60)
@pytest.mark.parametrize("version", list(VERSIONS))
def test_openssl_s_client_padding(pki: PKI, version: str) -> None:
    """``s_client -record_padding 300 -max_send_frag 1024`` sends to an aiotls server that
    pads to 128 and limits records to 2000 bytes (not in force: OpenSSL ignores it)."""
    openssl = require_openssl()
    ctx = pki.server_context()
    ctx.record_padding = 128
    ctx.record_size_limit = 2000
    text = os.urandom(2500).hex().encode() + b"\n"
    with listen() as listener:
        argv = [openssl, "s_client", "-connect", f"127.0.0.1:{listener.getsockname()[1]}",
                "-CAfile", pki.ca_file, "-record_padding", "300", "-max_send_frag", "1024",
                "-tls1_3" if version == "TLSv1.3" else "-tls1_2"]
        with OpenSSLProcess(argv, stdin=text) as client:
            with SocketTLS.accept(ctx, listener, timeout=20) as tls:
                tls.handshake()
                assert tls.recv_line() == text
                tls.conn.send_data(b"pong\n")
                out = tls.conn.data_to_send()
                if version == "TLSv1.3":
                    assert [(n - 16) % 128 for _, n in _lengths(out)] == [0]
                tls.sock.sendall(out)
                client.wait_for_output("pong", 20)
                client.close_stdin()
            client.wait(20)
