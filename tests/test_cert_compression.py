"""Certificate compression (RFC 8879, ``TLSContext.certificate_compression``).

aiotls at both ends (OpenSSL 3.0 has no certificate compression: it ignores the offer, as
the trace tests against it show): the server's certificate, and a client certificate,
compressed when both sides have a common algorithm, and not when either turned it off;
the trace shows the CompressedCertificate and what is inside; decompression bombs and
oversized announced lengths are refused without the memory they ask for.
"""

from __future__ import annotations

import logging
import ssl
import tracemalloc
import zlib
from typing import Any

import pytest
from tlslite import messages as tl_messages

import aiotls
from aiotls._context_records import available_compression
from aiotls._engine import server13
from aiotls._engine.certcompress import (
    BoundedCompressedCertificate,
    bounded_decompress,
    compression_choice,
)
from aiotls.errors import AlertDescription, TLSConfigurationError
from tests.helpers import PKI, VERSION_PARAMS, connect, handshake

TLS13 = ssl.TLSVersion.TLSv1_3


def _algorithm(conn: aiotls.TLSConnection, side: str) -> Any:
    return getattr(conn._engine._tl, f"{side}_cert_compression_algo")


@pytest.mark.parametrize("version", VERSION_PARAMS)
def test_the_servers_certificate_is_compressed_by_default(pki: PKI, version: ssl.TLSVersion
                                                          ) -> None:
    """TLS 1.3 only (RFC 8879 is for TLS 1.3); full handshake and resumption."""
    cctx = pki.client_context()
    cctx.maximum_version = version
    assert cctx.certificate_compression == available_compression()
    assert cctx.certificate_compression[0] == "zlib"
    sctx = pki.server_context()
    client, server = connect(cctx, sctx)
    expected = "zlib" if version == TLS13 else None
    assert _algorithm(client, "server") == _algorithm(server, "server") == expected
    assert client.getpeercert()["subject"]  # (verified as usual)
    resumed, _ = connect(cctx, sctx, client.session)
    assert resumed.session_reused


@pytest.mark.parametrize("off", ["client", "server"])
def test_either_side_can_turn_it_off(pki: PKI, off: str) -> None:
    cctx, sctx = pki.client_context(), pki.server_context()
    (cctx if off == "client" else sctx).certificate_compression = ()
    client, server = handshake(cctx, sctx)
    assert client.handshake_complete and _algorithm(client, "server") is None


def test_a_client_certificate_is_compressed_too(pki: PKI) -> None:
    cctx, sctx = pki.mtls_contexts()
    client, server = handshake(cctx, sctx)
    assert server.handshake_complete and server.getpeercert()
    assert _algorithm(client, "client") == "zlib"
    cctx.certificate_compression = ()
    client, server = handshake(cctx, sctx)
    assert server.handshake_complete and _algorithm(client, "client") is None


def test_a_client_compresses_only_when_the_servers_request_asks(pki: PKI) -> None:
    """RFC 8879 3: the CertificateRequest's extension decides, not the client's own offer
    (tlslite-ng compressed whenever the client offered compression: OpenSSL, which has none,
    refused the message -- see the client-certificate cases of test_exporters.py)."""
    cctx, sctx = pki.mtls_contexts()
    sctx.certificate_compression = ()
    client, server = handshake(cctx, sctx)
    assert server.handshake_complete and server.getpeercert(), server.error
    assert _algorithm(client, "client") is None


def test_the_trace_shows_the_compressed_certificate(pki: PKI, caplog: pytest.LogCaptureFixture
                                                    ) -> None:
    cctx = pki.client_context()
    cctx.trace_handshakes = True
    with caplog.at_level(logging.DEBUG, logger="aiotls.trace"):
        handshake(cctx, pki.server_context())
    lines = [r.getMessage() for r in caplog.records if "CompressedCertificate" in r.getMessage()]
    assert len(lines) == 1, caplog.text
    assert "server -> client  CompressedCertificate  zlib, " in lines[0]
    assert "1 certificate, leaf CN=localhost" in lines[0]


def test_the_settings_values() -> None:
    ctx = aiotls.TLSContext()
    for bad in ("zlib", ["gzip"], 5):
        with pytest.raises(TLSConfigurationError, match=r"certificate compression|certificate_c"):
            ctx.certificate_compression = bad  # type: ignore[assignment]
    ctx.certificate_compression = ["zlib", "zlib"]
    assert ctx.certificate_compression == ("zlib",)
    for name, module in (("brotli", "brotli"), ("zstd", "zstandard")):
        try:
            __import__(module)
        except ImportError:
            with pytest.raises(TLSConfigurationError, match=f"needs the '{module}' package"):
                ctx.certificate_compression = [name]


# --- hostile compressed certificates -------------------------------------------------------------


def _serve_compressed(monkeypatch: pytest.MonkeyPatch, payload: bytes,
                      announced: int | None = None, algorithm: int | None = None) -> None:
    """The server (tlslite's method) sends ``payload`` as its compressed certificate,
    announcing ``announced`` bytes (default: the real length)."""
    monkeypatch.setattr(server13, "ENABLED", False)
    original = tl_messages.CompressedCertificate.create

    def create(self: Any, compression_algo: int, cert_chain: Any, context: bytes = b"") -> Any:
        original(self, compression_algo, cert_chain, context)
        self._compressed_msg = payload
        if announced is not None:
            self._uncompressed_msg_len = announced
        if algorithm is not None:
            self.compression_algo = algorithm
        return self

    monkeypatch.setattr(tl_messages.CompressedCertificate, "create", create)


def test_a_decompression_bomb_is_refused_without_growing_memory(
        pki: PKI, monkeypatch: pytest.MonkeyPatch) -> None:
    """64 MB of zeros in ~64 KB, announced as a few hundred bytes: tlslite-ng's own
    decompression inflated all of it before comparing; aiotls stops at the announced length."""
    bomb = zlib.compress(b"\0" * 64_000_000, 9)
    assert len(bomb) < 100_000
    _serve_compressed(monkeypatch, bomb)
    client = aiotls.TLSConnection(pki.client_context(), server_hostname="localhost")
    server = aiotls.TLSConnection(pki.server_context(), server_side=True)
    server.receive_data(client.data_to_send())
    flight = server.data_to_send()
    tracemalloc.start()
    try:
        client.receive_data(flight)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert client.error is not None and client.error.alert == AlertDescription.bad_certificate
    assert peak < 8_000_000, peak


@pytest.mark.parametrize("announced", [300_000, 2**24 - 1, 0])
def test_an_announced_length_over_the_limit_is_refused(
        pki: PKI, monkeypatch: pytest.MonkeyPatch, announced: int) -> None:
    _serve_compressed(monkeypatch, zlib.compress(b"\0" * 100), announced)
    client, _ = handshake(pki.client_context(), pki.server_context())
    assert client.error is not None and client.error.alert == AlertDescription.bad_certificate


def test_a_length_that_does_not_match_is_refused(pki: PKI, monkeypatch: pytest.MonkeyPatch) -> None:
    _serve_compressed(monkeypatch, zlib.compress(b"\0" * 100), 101)
    client, _ = handshake(pki.client_context(), pki.server_context())
    assert client.error is not None and client.error.alert == AlertDescription.bad_certificate


def test_an_unknown_algorithm_is_refused(pki: PKI, monkeypatch: pytest.MonkeyPatch) -> None:
    _serve_compressed(monkeypatch, zlib.compress(b"\0" * 100), algorithm=0x4242)
    client, _ = handshake(pki.client_context(), pki.server_context())
    assert client.error is not None and client.error.alert == AlertDescription.illegal_parameter


def test_bounded_decompress() -> None:
    data = b"certificate" * 100
    packed = zlib.compress(data)
    assert bounded_decompress(1, packed, len(data), 10_000) == data
    for announced, limit in ((len(data) - 1, 10_000), (len(data) + 1, 10_000),
                             (len(data), len(data) - 1), (0, 10)):
        with pytest.raises(SyntaxError):  # (tlslite's BadCertificateError: bad_certificate)
            bounded_decompress(1, packed, announced, limit)
    with pytest.raises(SyntaxError):
        bounded_decompress(1, b"not zlib", 10, 100)
    assert BoundedCompressedCertificate.limit == 256 * 1024


def test_the_senders_choice_follows_the_peers_order() -> None:
    """As tlslite-ng chooses (RFC 8879 leaves it to the sender): the first of the peer's
    algorithms that the sender has."""
    assert compression_choice([2, 1], ["zlib"]) == 1
    assert compression_choice([2, 1], ["zlib", "brotli"]) == 2
    assert compression_choice([3], ["zlib"]) is None
    assert compression_choice([1], []) is None


# --- brotli and zstd (the `compression` extra, installed with `test`) ----------------------------

_CODES = {"brotli": 2, "zstd": 3}


def _compress(name: str, data: bytes) -> bytes:
    if name == "brotli":
        import brotli
        return bytes(brotli.compress(data, quality=5))
    import zstandard
    return bytes(zstandard.ZstdCompressor(level=3).compress(data))


@pytest.mark.parametrize("name", ["brotli", "zstd"])
def test_brotli_and_zstd_at_both_ends(pki: PKI, name: str) -> None:
    """Offered by default when installed; chosen when it is the only common one, for the
    server's certificate (lean path and tlslite-ng's) and a client certificate."""
    assert name in available_compression()
    cctx, sctx = pki.client_context(), pki.server_context()
    cctx.certificate_compression = sctx.certificate_compression = (name,)
    client, server = connect(cctx, sctx)
    assert _algorithm(client, "server") == _algorithm(server, "server") == name
    assert client.getpeercert()["subject"]
    mctx, msctx = pki.mtls_contexts()
    mctx.certificate_compression = msctx.certificate_compression = (name,)
    client, server = connect(mctx, msctx)
    assert _algorithm(server, "client") == name
    assert server.getpeercert()["subject"]


@pytest.mark.parametrize("name", ["brotli", "zstd"])
def test_brotli_and_zstd_decompress_within_the_limit(name: str) -> None:
    data = b"certificate" * 100
    assert bounded_decompress(_CODES[name], _compress(name, data), len(data), 10_000) == data
    with pytest.raises(SyntaxError):
        bounded_decompress(_CODES[name], _compress(name, data), len(data) - 1, 10_000)
    with pytest.raises(SyntaxError):
        bounded_decompress(_CODES[name], b"not compressed at all", 10, 100)
    bomb = _compress(name, b"\0" * 64_000_000)
    assert len(bomb) < 200_000
    tracemalloc.start()
    try:
        with pytest.raises(SyntaxError):  # (bad_certificate: more than announced)
            bounded_decompress(_CODES[name], bomb, 500, 256 * 1024)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8_000_000, peak
