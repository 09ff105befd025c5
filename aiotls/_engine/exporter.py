"""Keying material exporters (RFC 5705, RFC 8446 7.5) and the tls-exporter channel binding
(RFC 9266), from the secrets a completed handshake left on tlslite's session.

* TLS 1.3: ``HKDF-Expand-Label(Derive-Secret(exporter_master_secret, label, ""),
  "exporter", Hash(context), length)``; no context and an empty one give the same bytes.
* TLS 1.2: ``PRF(master_secret, label, client_random + server_random [+ uint16 context
  length + context])``, with the suite's PRF hash; no context and an empty one differ.
  Only with the extended master secret (RFC 7627): without it a man in the middle can
  make two connections share a master secret (the triple handshake attack), so the
  exporter is refused, as RFC 9266 requires for tls-exporter.

tlslite-ng derives the TLS 1.3 exporter master secret after the client's Certificate and
CertificateVerify, where RFC 8446 7.1 says after the server's Finished: with a client
certificate its value would differ from every other implementation's.  The
``derive_secret`` of :func:`derive_secret_maker` (a fix installed in the namespace of
tlslite's rebound handshake methods, see :mod:`.rebind`) derives it over the transcript up
to the server's Finished.
"""

from __future__ import annotations

import hashlib
from typing import Any

from tlslite.constants import CipherSuite
from tlslite.mathtls import PRF_1_2, PRF_1_2_SHA384

from .. import _crypto
from ..errors import TLSUsageError

#: RFC 5705 4 (and RFC 7627's label): the PRF labels TLS itself uses.
RESERVED_LABELS = frozenset({b"client finished", b"server finished", b"master secret",
                             b"key expansion", b"extended master secret"})
#: the longest output asked for at once (TLS 1.3 is bounded by HKDF: 255 hash lengths)
MAX_TLS12_LENGTH = 2**16 - 1


def check_arguments(label: Any, context: Any, length: Any) -> tuple[bytes, bytes | None, int]:
    """The arguments as bytes and an int, or ``TypeError``/:class:`TLSUsageError`."""
    if isinstance(label, str):
        if not label.isascii():
            raise TLSUsageError(f"exporter label {label!r} is not ASCII",
                                hint="exporter labels are ASCII strings (RFC 5705 4)")
        label = label.encode("ascii")
    if not isinstance(label, bytes | bytearray | memoryview):
        raise TypeError(f"label must be str or bytes, not {type(label).__name__}")
    label = bytes(label)
    if not label:
        raise TLSUsageError("the exporter label is empty",
                            hint="use the label your protocol registered (e.g. "
                            "'EXPORTER-Channel-Binding'), or one starting with 'EXPERIMENTAL'")
    if label in RESERVED_LABELS:
        raise TLSUsageError(
            f"exporter label {label.decode('ascii', 'replace')!r} is reserved",
            cause="TLS uses this label itself: exporting it would reveal its own secrets "
            "(RFC 5705 4)",
            hint="use the label your protocol registered, or one starting with 'EXPERIMENTAL'")
    if len(label) > 249:
        raise TLSUsageError(f"the exporter label is {len(label)} bytes; at most 249",
                            cause="TLS 1.3 carries it in an HkdfLabel (RFC 8446 7.1)",
                            hint="use a shorter label")
    if context is not None:
        if not isinstance(context, bytes | bytearray | memoryview):
            raise TypeError(f"context must be bytes or None, not {type(context).__name__}")
        context = bytes(context)
        if len(context) >= 2**16:
            raise TLSUsageError(f"the exporter context is {len(context)} bytes; at most 65535",
                                cause="RFC 5705 4 carries its length in two bytes",
                                hint="pass a shorter context (a hash of it, for instance)")
    if isinstance(length, bool) or not isinstance(length, int):
        raise TypeError(f"length must be an int, not {type(length).__name__}")
    if length < 1:
        raise TLSUsageError(f"exporter length {length}: must be at least 1",
                            hint="ask for the number of bytes your protocol needs")
    return label, context, length


def _prf_hash(suite: int) -> str:
    return "sha384" if suite in CipherSuite.sha384PrfSuites else "sha256"


def export(engine: Any, label: bytes, context: bytes | None, length: int) -> bytes:
    """The keying material of ``engine``'s completed handshake (arguments checked)."""
    tl = engine._tl
    version = tuple(tl.version)
    session = tl.session
    hash_name = _prf_hash(int(session.cipherSuite))
    if version > (3, 3):
        hash_len = hashlib.new(hash_name).digest_size
        if length > 255 * hash_len:
            raise TLSUsageError(
                f"exporter length {length}: TLS 1.3 exports at most {255 * hash_len} bytes "
                "with this cipher suite",
                cause="HKDF-Expand gives at most 255 hash lengths (RFC 5869 2.3)",
                hint="ask for fewer bytes, or derive more from them with HKDF")
        empty = hashlib.new(hash_name).digest()
        secret = _crypto.hkdf_expand_label(bytes(session.exporterMasterSecret), label, empty,
                                           hash_len, hash_name)
        digest = hashlib.new(hash_name, context or b"").digest()
        return _crypto.hkdf_expand_label(secret, b"exporter", digest, length, hash_name)
    if not session.extendedMasterSecret:
        raise TLSUsageError(
            "keying material exporters are refused on this TLS 1.2 connection: it did not "
            "use the extended master secret",
            cause="without it (RFC 7627) an attacker can make two connections share one "
            "master secret, so exported values and channel bindings prove nothing "
            "(RFC 9266 4.2)",
            hint="keep require_extended_master_secret on (the default) or use TLS 1.3")
    if length > MAX_TLS12_LENGTH:
        raise TLSUsageError(f"exporter length {length}: at most {MAX_TLS12_LENGTH}",
                            hint="ask for fewer bytes, or derive more from them")
    seed = bytes(tl._clientRandom) + bytes(tl._serverRandom)
    if len(seed) != 64:
        raise TLSUsageError("the hellos' random values of this connection are not known",
                            hint="report this: aiotls should know them after the handshake")
    if context is not None:
        seed += len(context).to_bytes(2, "big") + context
    prf = PRF_1_2_SHA384 if hash_name == "sha384" else PRF_1_2
    return bytes(prf(bytearray(session.masterSecret), bytearray(label), bytearray(seed),
                     length))


# --- the TLS 1.3 exporter master secret over the right transcript -----------------------------


class _Transcript:
    """A transcript hash known already, in the shape ``derive_secret`` reads."""

    __slots__ = ("value",)

    def __init__(self, digest: bytes) -> None:
        self.value = digest

    def digest(self, name: str) -> bytes:
        return self.value


def through_server_finished(handshake_hashes: Any, algorithm: str) -> _Transcript | None:
    """The transcript hash up to the server's Finished (the first Finished of a TLS 1.3
    handshake), if ``handshake_hashes`` holds more (the client's certificate messages);
    None when it ends there."""
    buffer = handshake_hashes.digest("intrinsic")  # (the transcript's bytes, kept by both)
    pos, end = 0, len(buffer)
    while pos + 4 <= end:
        kind = buffer[pos]
        pos += 4 + int.from_bytes(buffer[pos + 1:pos + 4], "big")
        if kind == 20:  # Finished
            break
    if pos >= end:
        return None
    return _Transcript(hashlib.new(algorithm, bytes(buffer[:pos])).digest())


def derive_secret_maker(base: Any) -> Any:
    """tlslite's ``derive_secret`` (``base``), deriving the exporter master secret over the
    transcript up to the server's Finished (RFC 8446 7.1) where tlslite's transcript has
    gone on to the client's Certificate and CertificateVerify."""

    def derive_secret(secret: Any, label: Any, handshake_hashes: Any, algorithm: str) -> Any:
        if label == b"exp master" and handshake_hashes is not None:
            fixed = through_server_finished(handshake_hashes, algorithm)
            if fixed is not None:
                handshake_hashes = fixed
        return base(secret, label, handshake_hashes, algorithm)

    derive_secret.__wrapped__ = base  # type: ignore[attr-defined]
    return derive_secret
