"""Certificate compression (RFC 8879): bounded decompression, and compressed Certificate
messages made once per chain.

tlslite-ng 0.8.2 implements RFC 8879, but its decompression is not bounded:
``zlib.decompress(data, 15, expected_length)`` takes the announced length as the *initial
buffer size*, not a limit, so a small CompressedCertificate can inflate to hundreds of
megabytes before the length is compared (a decompression bomb); brotli has no limit at
all.  :class:`BoundedCompressedCertificate` (tlslite's message class for the names its
message reading uses, installed by :mod:`.base` in both speed-up modes) checks first:

* the announced uncompressed length must be at least 1 and at most 256 KiB, the default
  ``max_handshake_size`` (RFC 8879 4 allows up to 2^24 - 1; a certificate chain anywhere
  near that is an attack) -- ``bad_certificate``;
* it then decompresses at most that many bytes plus one (zlib's ``max_length``; brotli's
  and zstd's streaming decoders with an output limit), so memory never grows past the
  announced length, and an output of any other length is ``bad_certificate``
  (RFC 8879 4).

:func:`compressed_certificate_message` makes the TLS 1.3 server's CompressedCertificate
for :mod:`.server13` (the same bytes tlslite writes: ``zlib.compress`` at its default
level), once per chain and algorithm.
"""

from __future__ import annotations

import importlib
import io
import zlib
from typing import Any

from tlslite.constants import CertificateCompressionAlgorithm, HandshakeType
from tlslite.errors import TLSIllegalParameterException
from tlslite.messages import CompressedCertificate
from tlslite.utils.codec import BadCertificateError, DecodeError, Parser, Writer

from .quick import _QUICK_MESSAGES

#: RFC 8879 code point -> tlslite's name for it (its enum's toStr scans the class)
ALGORITHM_NAMES = {CertificateCompressionAlgorithm.zlib: "zlib",
                   CertificateCompressionAlgorithm.brotli: "brotli",
                   CertificateCompressionAlgorithm.zstd: "zstd"}

#: Largest uncompressed Certificate message accepted: the default max_handshake_size.
DEFAULT_LIMIT = 256 * 1024


def _decompress_zlib(data: bytes, limit: int) -> bytes:
    # (at most limit + 1 bytes out: more input than that needs stays unconsumed)
    return zlib.decompressobj().decompress(data, limit + 1)


# brotli and zstd: only when their packages are installed (the `compression` extra)
def _decompress_brotli(data: bytes, limit: int) -> bytes:
    decompressor = importlib.import_module("brotli").Decompressor()
    try:
        return bytes(decompressor.process(data, output_buffer_limit=limit + 1))
    except TypeError:
        # an older brotli without output limits: refuse rather than inflate unbounded
        raise BadCertificateError("brotli is too old to decompress within a limit") from None


def _decompress_zstd(data: bytes, limit: int) -> bytes:
    zstandard = importlib.import_module("zstandard")
    with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)) as reader:
        return bytes(reader.read(limit + 1))


_DECOMPRESS = {
    CertificateCompressionAlgorithm.zlib: _decompress_zlib,
    CertificateCompressionAlgorithm.brotli: _decompress_brotli,
    CertificateCompressionAlgorithm.zstd: _decompress_zstd,
}


_CODES = {name: code for code, name in ALGORITHM_NAMES.items()}


def compression_choice(offered: Any, ours: Any) -> int | None:
    """The algorithm a sender compresses its certificate with: the first of the peer's
    ``offered`` code points that ``ours`` (names) has, as tlslite-ng chooses; or None."""
    mine = {_CODES[name] for name in ours if name in _CODES}
    return next((code for code in offered if code in mine), None)


def bounded_decompress(algorithm: int, data: bytes, expected: int, limit: int) -> bytes:
    """``data`` decompressed, exactly ``expected`` bytes (at most ``limit``), or
    ``BadCertificateError``; never more than ``expected + 1`` bytes are produced (zlib)."""
    if not 1 <= expected <= limit:
        raise BadCertificateError(
            f"compressed certificate announces {expected} bytes uncompressed (limit {limit})")
    decompress = _DECOMPRESS.get(algorithm)
    if decompress is None:
        raise TLSIllegalParameterException(f"Unknown compression algorithm code: {algorithm}")
    try:
        out = decompress(data, expected)
    except BadCertificateError:
        raise
    except Exception:
        raise BadCertificateError("Error on decompressing the message.") from None
    if len(out) != expected:
        raise BadCertificateError("the decompressed certificate does not have the length "
                                  "announced")
    return out


class BoundedCompressedCertificate(CompressedCertificate):  # type: ignore[misc]
    """tlslite's CompressedCertificate whose parsing decompresses within limits."""

    #: the largest uncompressed length accepted
    limit = DEFAULT_LIMIT

    def _decompress(self, compressed_msg: Any, expected_length: int) -> bytes:
        return bounded_decompress(self.compression_algo, bytes(compressed_msg),
                                  expected_length, self.limit)

    def parse(self, p: Any) -> Any:
        """tlslite's parse, with the inner Certificate parsed by the quick class (OpenSSL's
        certificate parse, as for an uncompressed one) and the bytes received kept for
        ``write()`` (tlslite compresses them again)."""
        p.startLengthCheck(3)
        self.compression_algo = p.get(2)
        expected_length = p.get(3)
        compressed_msg = p.getVarBytes(3)
        if not compressed_msg:
            raise DecodeError("Empty compress certificate message")
        p.stopLengthCheck()
        inner = self._decompress(compressed_msg, expected_length)
        certificate = _QUICK_MESSAGES["Certificate"](self.certificateType, self.version)
        certificate.parse(Parser(bytearray(expected_length.to_bytes(3, "big") + inner)))
        self.__dict__.update({k: v for k, v in vars(certificate).items()
                           if k != "handshakeType"})
        self._compressed_msg = bytes(compressed_msg)
        self._uncompressed_msg_len = expected_length
        return self


def compressed_certificate_message(certificate_message: bytes, algorithm: int,
                                   cache_on: Any) -> bytes:
    """The CompressedCertificate message (RFC 8879 4) of a serialised TLS 1.3 Certificate
    message, as tlslite writes it, remembered on ``cache_on`` (the chain) per algorithm."""
    cache: dict[int, bytes] | None = getattr(cache_on, "_aiotls_compressed", None)
    if cache is None:
        cache = {}
        cache_on._aiotls_compressed = cache
    found = cache.get(algorithm)
    if found is None:
        body = certificate_message[4:]
        if algorithm != CertificateCompressionAlgorithm.zlib:
            raise ValueError("only zlib is written here")
        compressed = zlib.compress(body)
        writer = Writer()
        writer.add(algorithm, 2)
        writer.add(len(body), 3)
        writer.add(len(compressed), 3)
        payload = bytes(writer.bytes) + compressed
        found = bytes((HandshakeType.compressed_certificate,)) + len(payload).to_bytes(3, "big") \
            + payload
        cache[algorithm] = found
    return found
