"""The peer's first message read straight from the socket (``_engine/plainread.py``) against
tlslite-ng's reading.

Each handshake runs twice with the same randomness, with the hellos read by aiotls's path
and by tlslite-ng's record stack: the same bytes, state and error.  The common handshakes
(and bit flips in the ClientHello's record and in the ServerHello) run in
``test_lean13.py`` (side "plain").  Here: records of other shapes, which tlslite-ng's
reading must see (a hello split over two records or arriving a byte at a time, sharing a
record with another message, with bytes after it, over the size limit, behind an alert,
in SSLv2's format, malformed), a HelloRetryRequest, and OpenSSL at either end.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Callable

import pytest

import aiotls
from tests.helpers import (
    PKI,
    Seeded,
    lean_contexts,
    pump,
    same_both_ways,
    split_records,
)

pytestmark = pytest.mark.speedups  # (with the speed-ups off tlslite's reading runs always)


def _record(content_type: int, body: bytes, version: bytes = b"\x03\x01") -> bytes:
    return bytes((content_type,)) + version + len(body).to_bytes(2, "big") + body


def _hello_body(flight: bytes) -> bytes:
    first = split_records(flight)[0]
    assert first[0] == 22 and first[5] == 1  # (a ClientHello, alone in its record)
    return first[5:]


def _rewrite(make: Callable[[bytes], bytes]) -> Callable[[bytes], bytes]:
    """An ``edit_hello``: the client's first flight replaced by ``make(ClientHello)``."""
    return lambda flight: make(_hello_body(flight))


def _padded(message: bytes, size: int) -> bytes:
    """The ClientHello with a padding extension (RFC 7685) making it ``size`` bytes."""
    at = 4 + 2 + 32
    at += 1 + message[at]  # session ID
    at += 2 + int.from_bytes(message[at:at + 2], "big")  # cipher suites
    at += 1 + message[at]  # compression methods
    extensions = message[at + 2:]
    pad = size - len(message) - 4
    extensions += b"\x00\x15" + pad.to_bytes(2, "big") + b"\x00" * pad
    body = message[4:at] + len(extensions).to_bytes(2, "big") + extensions
    return b"\x01" + len(body).to_bytes(3, "big") + body


_SHAPES: dict[str, Callable[[bytes], bytes]] = {
    "split over two records": lambda m: _record(22, m[:40]) + _record(22, m[40:]),
    "followed by another message": lambda m: _record(22, m + b"\x01\x00\x00\x00"),
    "with a byte after it": lambda m: _record(22, m + b"\x00"),
    "length one short": lambda m: _record(22, m[:1] + (int.from_bytes(m[1:4], "big") - 1)
                                          .to_bytes(3, "big") + m[4:]),
    "over the size limit": lambda m: _record(22, _padded(m, 2**14 + 1)),
    "behind a warning alert": lambda m: _record(21, b"\x01\x70") + _record(22, m),
    "behind a change_cipher_spec": lambda m: _record(20, b"\x01") + _record(22, m),
    "as application data": lambda m: _record(23, m),
    "truncated extensions": lambda m: _record(22, m[:1] + (len(m) - 10).to_bytes(3, "big")
                                              + m[4:-6]),
    "SSLv2's format": lambda m: bytes((0x80 | (len(m) - 1) >> 8, (len(m) - 1) & 0xFF)) + m[1:],
}


@pytest.mark.parametrize("shape", list(_SHAPES))
def test_other_record_shapes_read_as_tlslite(pki: PKI, seeded: Seeded,
                                             monkeypatch: pytest.MonkeyPatch,
                                             shape: str) -> None:
    client_ctx, server_ctx = lean_contexts(pki)
    _, _, server, error = same_both_ways("plain", seeded, monkeypatch, client_ctx, server_ctx,
                                         edit_hello=_rewrite(_SHAPES[shape]), expect_lean=None)
    assert not server._engine._tl._aiotls_plain_reads
    # (a ClientHello in two records, or behind a warning alert TLS 1.2 lets pass, is fine)
    fine = shape in ("split over two records", "behind a warning alert")
    assert (error is None) is fine and (fine or isinstance(error, aiotls.TLSError))


@pytest.mark.parametrize("chunk", [1, 5, 9])
def test_hello_arriving_in_pieces_read_here(pki: PKI, seeded: Seeded,
                                            monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    """A ClientHello arriving a few bytes at a time is waited for, then read here."""
    client_ctx, server_ctx = lean_contexts(pki)
    _, client, server, error = same_both_ways("plain", seeded, monkeypatch, client_ctx,
                                              server_ctx, client_chunk=chunk)
    assert error is None and client.handshake_complete
    assert server._engine._tl._aiotls_plain_reads == 1


def test_hello_retry_same_as_tlslite(pki: PKI, seeded: Seeded,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """HelloRetryRequest: the retry request and the first ClientHello are read here; the
    second ClientHello and ServerHello come behind middlebox change_cipher_spec records,
    so tlslite-ng's reading has them."""
    client_ctx, server_ctx = lean_contexts(pki)
    client_ctx.set_groups(["x25519", "secp256r1"])
    server_ctx.set_groups(["secp256r1"])
    _, client, server, error = same_both_ways("plain", seeded, monkeypatch, client_ctx,
                                              server_ctx)
    assert error is None and client.group == "secp256r1"
    assert client._engine._tl._aiotls_plain_reads == 1
    assert server._engine._tl._aiotls_plain_reads == 1


def test_openssl_client_hello_and_server_hello(pki: PKI) -> None:
    """OpenSSL's ClientHello (aiotls serving) and ServerHello (aiotls connecting) are read
    here, and the handshakes complete."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = pki.stdlib_client_context().wrap_bio(incoming, outgoing, server_hostname="localhost")
    server = aiotls.TLSConnection(pki.server_context(), server_side=True)
    for _ in range(10):
        with contextlib.suppress(ssl.SSLWantReadError):
            obj.do_handshake()
        server.receive_data(outgoing.read())
        incoming.write(server.data_to_send())
    assert server.handshake_complete and server._engine._tl._aiotls_plain_reads == 1

    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = pki.stdlib_server_context().wrap_bio(incoming, outgoing, server_side=True)
    client = aiotls.TLSConnection(pki.client_context(), server_hostname="localhost")
    for _ in range(10):
        incoming.write(client.data_to_send())
        with contextlib.suppress(ssl.SSLWantReadError):
            obj.do_handshake()
        client.receive_data(outgoing.read())
    assert client.handshake_complete and client._engine._tl._aiotls_plain_reads == 1


def test_tls12_hellos_read_here(pki: PKI) -> None:
    client_ctx, server_ctx = lean_contexts(pki)
    server_ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    client = aiotls.TLSConnection(client_ctx, server_hostname="localhost")
    server = aiotls.TLSConnection(server_ctx, server_side=True)
    pump(client, server)
    assert client.version() == "TLSv1.2"
    assert client._engine._tl._aiotls_plain_reads == server._engine._tl._aiotls_plain_reads == 1
