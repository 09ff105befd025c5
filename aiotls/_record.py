"""The one owner of record protection, from the moment the handshake makes keys.

Theory of operation
-------------------
A connection has one :class:`RecordLayer` holding one :class:`Direction` per direction:
the AEAD object (OpenSSL through ``cryptography``, made once per key), the IV and the
sequence number.  Keys and sequence numbers live nowhere else:

* During the handshake, tlslite-ng's handshake code sends and receives its encrypted
  records through the engine's tlslite record layer, which seals and opens them here
  (``aiotls._engine.records``); each time tlslite switches keys (TLS 1.3 handshake and
  application keys, KeyUpdate; TLS 1.2 at ChangeCipherSpec) the engine installs a new
  :class:`Direction` (sequence number 0).
* After the handshake the connection decrypts every record itself, through the engine's
  verbs (``open_small``, ``open_run``, ``open_record``), one pass per record: application
  data goes to the application, and the *plaintext* of anything else (alerts,
  NewSessionTicket, KeyUpdate, post-handshake authentication) goes to the engine, which
  never decrypts it again.  Whatever the engine sends (a KeyUpdate and its new keys,
  tickets, alerts) is sealed here too, so nothing is ever exported, synchronised or
  rewound.

Only the AEAD ciphers of :data:`CIPHERS` are handled (every suite enabled by default);
the legacy ones a user may enable (CBC, CCM) stay on tlslite-ng's own record layer for the
whole connection, which is then their one owner.

Both roles and both TLS 1.3 and TLS 1.2 AEAD suites are handled:

* TLS 1.3 (RFC 8446 5.2): outer type 23, version 0x0303, AAD = the 5-byte header,
  nonce = iv XOR seq, inner plaintext = data || content type || zero padding.
* TLS 1.2 AES-GCM (RFC 5288): 8-byte explicit nonce (we send the sequence number),
  nonce = 4-byte salt || explicit; ChaCha20-Poly1305 (RFC 7905): nonce = iv XOR seq.
  AAD = seq || type || version || plaintext length.

Size limits, the same on every receive path (``open_small`` takes only short records,
``open_run`` stops before any record that could be too long, ``open`` decides):

* TLS 1.3 (RFC 8446 5.2, 5.4): a header announcing more than 2^14 + 256 bytes is refused
  by the connection before decryption; once a record has authenticated, an inner plaintext
  (content + content type + padding) over 2^14 + 1 bytes is ``record_overflow``.
* TLS 1.2 (RFC 5246 6.2): more than 2^14 + 2048 bytes announced is refused before
  decryption; once authenticated, more than 2^14 bytes of plaintext is ``record_overflow``
  (so an AEAD record is in effect limited to 2^14 + 24 bytes of ciphertext).
  Checking after authentication keeps the blame right: a forged record is bad_record_mac.

Sending keeps to the peer's record_size_limit (RFC 8449), given as ``send_limit`` (content
bytes per record: the limit minus the content type byte in TLS 1.3).  Receiving enforces
this side's own limit (``TLSContext.record_size_limit``, the protocol maximum by default)
once the peer knows it, given as ``recv_limit`` (:meth:`RecordLayer.set_receive_limit`).
TLS 1.3 records are padded as ``TLSContext.record_padding`` says (:attr:`RecordLayer.padding`,
``None`` by default: the unpadded paths above are then the only ones taken).

RFC 8446 5.1 (no other record between the fragments of a handshake message) is enforced
by the connection, which knows from the engine whether a fragment is pending.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from . import _crypto
from .errors import AlertDescription, PeerMisbehaved, TLSConfigurationError

#: Largest plaintext fragment (RFC 8446 5.1, RFC 5246 6.2.1).
MAX_FRAGMENT = 2**14
#: TLS 1.3: largest inner plaintext (content + content type + padding, RFC 8446 5.4).
MAX_INNER_TLS13 = MAX_FRAGMENT + 1
#: TLS 1.3: largest ciphertext the record header may announce (RFC 8446 5.2).
MAX_CIPHERTEXT_TLS13 = 2**14 + 256
#: Send a KeyUpdate (TLS 1.3) after this many records under one key; AES-GCM's
#: confidentiality limit is 2^24.5 full-size records (RFC 8446 5.5).
KEY_UPDATE_AFTER = 2**23
#: Sequence numbers are 64-bit and must never wrap (RFC 8446 5.3, RFC 5246 6.1).
SEQ_LIMIT = 2**64 - 1

APPLICATION_DATA = 23
_INNER_APPLICATION_DATA = bytes((APPLICATION_DATA,))
#: Writes up to this size take the one-record path of :meth:`RecordLayer.seal`.
_SMALL = 2048
_TAG = 16
#: TLS 1.3: the largest ciphertext whose inner plaintext can be within the limit (every
#: suite aiotls's record layer handles has a 16-byte tag).
_MAX_SEALED_TLS13 = MAX_INNER_TLS13 + _TAG


_CONTENT_TYPE_NAMES = {20: "change_cipher_spec", 21: "alert", 22: "handshake",
                       23: "application_data"}


def interleaved_error(content_type: int) -> PeerMisbehaved:
    """The error for a record of another type between the fragments of a handshake message
    (RFC 8446 5.1: "there MUST NOT be any other records between them"; a change_cipher_spec
    there would also change keys in the middle of a message)."""
    name = _CONTENT_TYPE_NAMES.get(content_type, str(content_type))
    return PeerMisbehaved(
        f"the peer sent a record of type {name} between the fragments of a handshake "
        "message",
        cause="a broken TLS stack, or records injected or reordered by an attacker",
        hint="nothing to configure here: the peer's TLS implementation must not interleave "
        "other records with a fragmented handshake message (RFC 8446 5.1)",
        alert=AlertDescription.unexpected_message, code="interleaved-record",
    )


def handshake_fragment_pending(buffered: bytes | bytearray) -> bool:
    """True if ``buffered`` handshake bytes end inside a message (a fragment waits for the
    rest of it); whole messages waiting to be processed do not count."""
    pos, n = 0, len(buffered)
    while pos < n:
        if n - pos < 4:
            return True
        pos += 4 + int.from_bytes(buffered[pos + 1:pos + 4], "big")
    return pos > n


class RecordError(Exception):
    """A record failed protection checks; ``alert`` is the TLS alert to send."""

    def __init__(self, alert: int, message: str) -> None:
        super().__init__(message)
        self.alert = alert


class PaddingError(RecordError):
    """``record_padding``'s function returned something unusable: ``error`` says so.  (Not
    an OSError, as aiotls's errors are: tlslite would take it for its socket's.)"""

    def __init__(self, error: TLSConfigurationError) -> None:
        super().__init__(80, error.what)
        self.error = error


_local = threading.local()


def _seal_scratch() -> bytearray:
    """A per-thread buffer for one TLS 1.3 inner plaintext (data and content type) while it
    is encrypted: sealing is synchronous and keeps no reference, so connections need no
    buffer of their own (16 KiB each, while idle too)."""
    buf: bytearray | None = getattr(_local, "seal", None)
    if buf is None:
        buf = _local.seal = bytearray(MAX_FRAGMENT + 1)
    return buf


class Direction:
    """The keys and sequence number of one direction: the only place they live once the
    handshake has made keys (tlslite-ng's record state for that direction is a shell
    pointing here, see ``aiotls._engine.records``)."""

    __slots__ = ("aead", "cipher", "iv", "iv_int", "key", "seq")

    def __init__(self, cipher: str, key: bytes, iv: bytes) -> None:
        self.cipher = cipher  # tlslite spelling: aes128gcm, aes256gcm, chacha20-poly1305
        self.key = key
        self.iv = iv  # 12 bytes (TLS 1.3 and ChaCha20) or the 4-byte salt (TLS 1.2 AES-GCM)
        self.iv_int = int.from_bytes(iv, "big") if len(iv) == 12 else 0
        self.seq = 0  # new keys always start at sequence number 0
        self.aead: Any = _crypto.new_aead(cipher, key)


#: Ciphers this record layer protects (every AEAD suite aiotls enables by default); others
#: (CBC, CCM, only when a user enables them) stay on tlslite-ng's record layer.
CIPHERS = frozenset({"aes128gcm", "aes256gcm", "chacha20-poly1305"})


@dataclass(frozen=True, slots=True)
class DirectionKeys:
    """A snapshot of one direction's record protection (for tests and diagnostics)."""

    tls13: bool
    cipher: str
    key: bytes
    iv: bytes
    seq: int


class RecordLayer:
    """Protects and unprotects every record of one connection once keys exist.

    The engine installs a :class:`Direction` whenever the handshake switches keys (TLS 1.3
    handshake and application keys, KeyUpdate; TLS 1.2 after ChangeCipherSpec); the
    engine's own handshake records and the connection's application data both go through
    the directions installed here.
    """

    def __init__(self, padding: Any = None) -> None:
        self.tls13 = False
        self.explicit_nonce = False
        if padding is not None:
            self.padding = padding
        # (typed Any: the hot paths run only once both are installed)
        self._read: Any = None
        self._write: Any = None
        self.key_update_after = KEY_UPDATE_AFTER
        self.set_send_limit(MAX_FRAGMENT)
        self.set_receive_limit(MAX_FRAGMENT)

    def install(self, *, reading: bool, cipher: str, key: bytes, iv: bytes,
                tls13: bool) -> None:
        """New keys for one direction (sequence number 0)."""
        direction = Direction(cipher, key, iv)
        self.tls13 = tls13
        self.explicit_nonce = not tls13 and cipher != "chacha20-poly1305"
        if reading:
            self._read = direction
        else:
            self._write = direction

    def remove(self, *, reading: bool) -> None:
        """No protection in one direction any more (the engine's state went back to none, or
        to a cipher this layer does not handle)."""
        if reading:
            self._read = None
        else:
            self._write = None

    def protects(self, *, reading: bool) -> bool:
        return (self._read if reading else self._write) is not None

    def set_send_limit(self, send_limit: int) -> None:
        """Most content bytes per record we send: 2^14, or less when the peer asked for it
        with record_size_limit (RFC 8449; its value minus the content type byte in TLS 1.3)."""
        self.send_limit = max(1, min(MAX_FRAGMENT, send_limit))
        self._small = min(_SMALL, self.send_limit)
        clen = self.send_limit + 1 + _TAG
        self._full_header13 = bytes((APPLICATION_DATA, 3, 3, clen >> 8, clen & 0xFF))

    def set_receive_limit(self, limit: int) -> None:
        """Most content bytes per record we accept: 2^14, or our record_size_limit once the
        peer knows it (RFC 8449; less TLS 1.3's content type byte, as tlslite counts it).
        A protected record over it is ``record_overflow`` once it proved authentic."""
        self.recv_limit = max(1, min(MAX_FRAGMENT, limit))
        self._recv_inner13 = self.recv_limit + 1
        self._recv_sealed13 = self._recv_inner13 + _TAG
        self._small_open = 5 + min(_SMALL + 1, self._recv_inner13) + _TAG

    #: TLS 1.3 record padding (TLSContext.record_padding): ``(content_type, length) ->``
    #: zero bytes to add, or None; every protected record is padded when set.
    padding: Any = None

    def keys(self, *, reading: bool) -> DirectionKeys | None:
        d = self._read if reading else self._write
        return None if d is None else DirectionKeys(self.tls13, d.cipher, d.key, d.iv, d.seq)

    @property
    def read_seq(self) -> int:
        return int(self._read.seq)

    @property
    def write_seq(self) -> int:
        return int(self._write.seq)

    def needs_key_update(self) -> bool:
        """True when the write key has protected enough records to be replaced (TLS 1.3)."""
        return self.tls13 and self._write.seq >= self.key_update_after

    # --- receiving ---------------------------------------------------------------------------

    def open(self, record: memoryview, out: bytearray, offset: int) -> tuple[int, int]:
        """Decrypt one whole record (header included) into ``out`` at ``offset``.

        Returns ``(content_type, plaintext_length)``; the plaintext is
        ``out[offset:offset + length]`` (out grows as needed).  Raises
        :class:`RecordError` on any failure; on failure nothing is consumed.
        """
        d = self._read
        seq = d.seq
        if seq >= SEQ_LIMIT:
            raise RecordError(80, "read sequence number exhausted")  # internal_error
        header = record[:5]
        body = record[5:]
        if self.tls13:
            if record[0] != APPLICATION_DATA:
                raise RecordError(10, f"unexpected outer content type {record[0]} in an "
                                      "encrypted TLS 1.3 record")
            if len(body) > MAX_CIPHERTEXT_TLS13:
                raise RecordError(22, f"encrypted record of {len(body)} bytes is too long")
            if len(body) < _TAG + 1:
                raise RecordError(20, "encrypted record too short")
            nonce = (d.iv_int ^ seq).to_bytes(12, "big")
            n = len(body) - _TAG
            need = offset + n
            if len(out) < need:
                out.extend(bytes(need - len(out)))
            try:
                d.aead.decrypt_into(nonce, body, header, memoryview(out)[offset:need])
            except _crypto.InvalidTag:
                raise RecordError(20, "record failed authentication (bad_record_mac)") from None
            if n > self._recv_inner13:
                # RFC 8446 5.4 (RFC 8449), checked once the record proved authentic: the
                # inner plaintext (content, content type and padding) exceeds 2^14 + 1
                # bytes, or our record_size_limit
                raise RecordError(22, f"the peer sent a record whose inner plaintext of {n} "
                                      f"bytes (content, content type and padding) exceeds "
                                      f"{self._recv_inner13}{_limit_note(self._recv_inner13)}")
            # strip zero padding, then the real content type
            end = need
            while end > offset and out[end - 1] == 0:
                end -= 1
            if end == offset:
                raise RecordError(10, "encrypted record without a content type")
            ctype = out[end - 1]
            length = end - 1 - offset
            d.seq = seq + 1
            return ctype, length
        # TLS 1.2
        ctype = record[0]
        if self.explicit_nonce:
            if len(body) < 8 + _TAG:
                raise RecordError(20, "encrypted record too short")
            nonce = d.iv + bytes(body[:8])
            ciphertext = body[8:]
        else:
            if len(body) < _TAG:
                raise RecordError(20, "encrypted record too short")
            nonce = (d.iv_int ^ seq).to_bytes(12, "big")
            ciphertext = body
        n = len(ciphertext) - _TAG
        aad = seq.to_bytes(8, "big") + bytes(header[:3]) + n.to_bytes(2, "big")
        need = offset + n
        if len(out) < need:
            out.extend(bytes(need - len(out)))
        try:
            d.aead.decrypt_into(nonce, ciphertext, aad, memoryview(out)[offset:need])
        except _crypto.InvalidTag:
            raise RecordError(20, "record failed authentication (bad_record_mac)") from None
        if n > self.recv_limit:
            # RFC 5246 6.2.3 (checked once the record proved authentic): the plaintext must
            # not exceed 2^14 bytes (or our record_size_limit, RFC 8449); an AEAD suite's
            # ciphertext is thus at most 2^14 + 24
            raise RecordError(22, f"the peer sent a record of {n} bytes of plaintext "
                                  f"(limit {self.recv_limit}{_limit_note(self.recv_limit + 1)})")
        d.seq = seq + 1
        return ctype, n

    def open_run(self, view: memoryview, pos: int, end: int, out: bytearray, offset: int
                 ) -> tuple[int, int, RecordError | None, tuple[int, int] | None]:
        """Decrypt consecutive whole records from ``view[pos:end]`` into ``out`` at
        ``offset`` -- the hot loop of the receive path.

        Application data accumulates in ``out``.  The run stops before an incomplete record
        or one whose outer header is not ``23 03 03`` with a length within the limits (RFC
        8446 5.4: an inner plaintext of at most 2^14 + 1 bytes), which :meth:`open` then
        decides; and after a TLS 1.3 record whose inner type is not application data (a
        control record: alert, KeyUpdate, NewSessionTicket...), which is consumed.

        Returns ``(pos, offset, error, control)``: progress after what was decrypted; the
        :class:`RecordError` of a record that failed (progress before it stands: those
        records were authentic); and ``(content_type, length)`` of a control record whose
        content is ``out[offset:offset + length]``.
        """
        if not self.tls13:
            return self._open_run12(view, pos, end, out, offset)
        d = self._read
        aead = d.aead
        iv = d.iv_int
        seq = d.seq
        outview = memoryview(out)
        limit = self._recv_sealed13  # longer ones go to open(), which rejects them
        error: RecordError | None = None
        control: tuple[int, int] | None = None
        try:
            while end - pos >= 5 + _TAG + 1:
                if view[pos] != APPLICATION_DATA or view[pos + 1] != 3 or view[pos + 2] != 3:
                    break
                length = (view[pos + 3] << 8) | view[pos + 4]
                if length > limit or length < _TAG + 1 or end - pos < 5 + length:
                    break
                n = length - _TAG
                if seq >= SEQ_LIMIT:
                    error = RecordError(80, "read sequence number exhausted")
                    break
                try:
                    aead.decrypt_into((iv ^ seq).to_bytes(12, "big"),
                                      view[pos + 5:pos + 5 + length], view[pos:pos + 5],
                                      outview[offset:offset + n])
                except _crypto.InvalidTag:
                    error = RecordError(20, "record failed authentication (bad_record_mac)")
                    break
                last = offset + n - 1
                if out[last] != APPLICATION_DATA:
                    # zero padding, then the real content type (RFC 8446 5.4)
                    while last >= offset and out[last] == 0:
                        last -= 1
                    if last < offset:
                        error = RecordError(10, "encrypted record without a content type")
                        break
                    if out[last] != APPLICATION_DATA:
                        seq += 1
                        pos += 5 + length
                        control = (out[last], last - offset)
                        break
                seq += 1
                offset = last
                pos += 5 + length
        finally:
            d.seq = seq
            outview.release()
        return pos, offset, error, control

    def open_small(self, record: bytes | bytearray | memoryview
                   ) -> bytes | tuple[int, bytes] | None:
        """``record`` if it is exactly one short TLS 1.3 record (the path of interactive
        traffic): its application data as ``bytes``, or ``(content_type, content)`` for a
        control record; ``None`` (nothing consumed) for anything else, which :meth:`open_run`
        and :meth:`open` handle.  Raises :class:`RecordError` if it fails authentication."""
        n = len(record)
        if (n > self._small_open or n < 5 + 1 + _TAG or record[0] != APPLICATION_DATA
                or record[1] != 3 or record[2] != 3 or (record[3] << 8) | record[4] != n - 5):
            return None
        d = self._read
        if d.seq >= SEQ_LIMIT:
            return None
        try:
            plain = d.aead.decrypt((d.iv_int ^ d.seq).to_bytes(12, "big"), record[5:],
                                   record[:5])
        except _crypto.InvalidTag:
            raise RecordError(20, "record failed authentication (bad_record_mac)") from None
        d.seq += 1
        if plain[-1] == APPLICATION_DATA:
            return plain[:-1]  # type: ignore[no-any-return]
        inner = plain.rstrip(b"\0")
        if not inner:
            raise RecordError(10, "encrypted record without a content type")
        if inner[-1] == APPLICATION_DATA:
            return inner[:-1]  # type: ignore[no-any-return]
        return inner[-1], inner[:-1]

    def _open_run12(self, view: memoryview, pos: int, end: int, out: bytearray, offset: int
                    ) -> tuple[int, int, RecordError | None, tuple[int, int] | None]:
        """TLS 1.2 :meth:`open_run`: AAD = seq || header with the plaintext length; GCM
        carries an 8-byte explicit nonce after the header (RFC 5288), ChaCha20 uses
        iv XOR seq (RFC 7905).  Anything unusual is left to :meth:`open`."""
        d = self._read
        aead = d.aead
        seq = d.seq
        explicit = self.explicit_nonce
        salt, iv = d.iv, d.iv_int
        skip = 8 if explicit else 0
        most = self.recv_limit
        outview = memoryview(out)
        error: RecordError | None = None
        try:
            while end - pos >= 5 + skip + _TAG:
                if view[pos] != APPLICATION_DATA or view[pos + 1] != 3 or view[pos + 2] != 3:
                    break
                length = (view[pos + 3] << 8) | view[pos + 4]
                n = length - skip - _TAG
                if n < 0 or n > most or end - pos < 5 + length or seq >= SEQ_LIMIT:
                    break  # short, oversized, incomplete or exhausted: open() decides
                body = pos + 5
                if explicit:
                    nonce = salt + bytes(view[body:body + 8])
                else:
                    nonce = (iv ^ seq).to_bytes(12, "big")
                aad = seq.to_bytes(8, "big") + bytes((APPLICATION_DATA, 3, 3, n >> 8, n & 0xFF))
                try:
                    aead.decrypt_into(nonce, view[body + skip:body + length], aad,
                                      outview[offset:offset + n])
                except _crypto.InvalidTag:
                    error = RecordError(20, "record failed authentication (bad_record_mac)")
                    break
                seq += 1
                offset += n
                pos = body + length
        finally:
            d.seq = seq
            outview.release()
        return pos, offset, error, None

    # --- sending -----------------------------------------------------------------------------

    def seal(self, data: bytes | bytearray | memoryview) -> bytes | bytearray:
        """Encrypt application data as records of at most :attr:`send_limit` bytes of
        content each; returns the records."""
        d = self._write
        total = len(data)
        if self.padding is not None and self.tls13:
            return self._seal_padded13(APPLICATION_DATA, data)
        if self.tls13 and total <= self._small and d.seq + 1 < SEQ_LIMIT:
            # one short record (interactive traffic): no buffers to set up
            seq = d.seq
            clen = total + 1 + _TAG
            header = bytes((APPLICATION_DATA, 3, 3, clen >> 8, clen & 0xFF))
            sealed = d.aead.encrypt((d.iv_int ^ seq).to_bytes(12, "big"),
                                    bytes(data) + _INNER_APPLICATION_DATA, header)
            d.seq = seq + 1
            return header + sealed  # type: ignore[no-any-return]
        view = memoryview(data)
        total = len(view)
        limit = self.send_limit
        nrec = max(1, -(-total // limit))
        if d.seq + nrec >= SEQ_LIMIT:
            raise RecordError(80, "write sequence number exhausted")
        if self.tls13:
            return self._seal13(d, view, total, nrec)
        overhead = 5 + 8 + _TAG if self.explicit_nonce else 5 + _TAG
        out = bytearray(total + nrec * overhead)
        outview = memoryview(out)
        aead = d.aead
        seq = d.seq
        pos = opos = 0
        for _ in range(nrec):
            n = min(limit, total - pos)
            chunk = view[pos:pos + n]
            aad = seq.to_bytes(8, "big") + bytes((APPLICATION_DATA, 3, 3, n >> 8, n & 0xFF))
            if self.explicit_nonce:
                explicit = seq.to_bytes(8, "big")
                clen = 8 + n + _TAG
                out[opos:opos + 13] = bytes((APPLICATION_DATA, 3, 3, clen >> 8,
                                             clen & 0xFF)) + explicit
                aead.encrypt_into(d.iv + explicit, chunk, aad,
                                  outview[opos + 13:opos + 5 + clen])
            else:
                clen = n + _TAG
                out[opos:opos + 5] = bytes((APPLICATION_DATA, 3, 3, clen >> 8, clen & 0xFF))
                aead.encrypt_into((d.iv_int ^ seq).to_bytes(12, "big"), chunk, aad,
                                  outview[opos + 5:opos + 5 + clen])
            seq += 1
            pos += n
            opos += 5 + clen
        d.seq = seq
        return out

    def seal_small(self, data: bytes | bytearray | memoryview) -> bytes | None:
        """``data`` as one TLS 1.3 record if it fits in one short record and the key has
        room for it before its KeyUpdate; ``None`` (nothing done) otherwise, and
        :meth:`seal` with the caller's checks does it."""
        d = self._write
        seq = d.seq
        if not self.tls13 or len(data) > self._small or seq >= self.key_update_after \
                or seq + 1 >= SEQ_LIMIT or self.padding is not None:
            return None
        clen = len(data) + 1 + _TAG
        header = bytes((APPLICATION_DATA, 3, 3, clen >> 8, clen & 0xFF))
        sealed = d.aead.encrypt((d.iv_int ^ seq).to_bytes(12, "big"),
                                bytes(data) + _INNER_APPLICATION_DATA, header)
        d.seq = seq + 1
        return header + sealed  # type: ignore[no-any-return]

    def seal_record(self, content_type: int, data: bytes) -> bytes:
        """Protect one short record of another content type (an alert); not a hot path."""
        d = self._write
        if d.seq + 1 >= SEQ_LIMIT:
            raise RecordError(80, "write sequence number exhausted")
        seq = d.seq
        if self.tls13 and self.padding is not None:
            try:
                return bytes(self._seal_padded13(content_type, data))
            except PaddingError:
                if content_type != 21:
                    raise  # (the alert that reports it goes out unpadded, below)
        if self.tls13:
            inner = bytes(data) + bytes((content_type,))
            clen = len(inner) + _TAG
            header = bytes((APPLICATION_DATA, 3, 3, clen >> 8, clen & 0xFF))
            body = d.aead.encrypt((d.iv_int ^ seq).to_bytes(12, "big"), inner, header)
        else:
            n = len(data)
            aad = seq.to_bytes(8, "big") + bytes((content_type, 3, 3, n >> 8, n & 0xFF))
            if self.explicit_nonce:
                explicit = seq.to_bytes(8, "big")
                body = explicit + d.aead.encrypt(d.iv + explicit, bytes(data), aad)
            else:
                body = d.aead.encrypt((d.iv_int ^ seq).to_bytes(12, "big"), bytes(data), aad)
            header = bytes((content_type, 3, 3, len(body) >> 8, len(body) & 0xFF))
        d.seq = seq + 1
        return bytes(header + body)

    def _seal13(self, d: Direction, view: memoryview, total: int, nrec: int) -> bytearray:
        # TLS 1.3: the inner plaintext is data || 0x17, encrypted straight into `out`.
        out = bytearray(total + nrec * (6 + _TAG))
        outview = memoryview(out)
        scratch = _seal_scratch()
        scratch_view = memoryview(scratch)
        encrypt_into = d.aead.encrypt_into
        iv = d.iv_int
        seq = d.seq
        pos = opos = 0
        full = self._full_header13
        limit = self.send_limit
        while pos < total or opos == 0:
            n = total - pos
            if n >= limit:
                n = limit
                header = full
            else:
                clen = n + 1 + _TAG
                header = bytes((APPLICATION_DATA, 3, 3, clen >> 8, clen & 0xFF))
            scratch[:n] = view[pos:pos + n]
            scratch[n] = APPLICATION_DATA
            end = opos + 5 + n + 1 + _TAG
            out[opos:opos + 5] = header
            encrypt_into((iv ^ seq).to_bytes(12, "big"), scratch_view[:n + 1], header,
                         outview[opos + 5:end])
            seq += 1
            pos += n
            opos = end
        d.seq = seq
        return out

    def _seal_padded13(self, content_type: int, data: bytes | bytearray | memoryview
                       ) -> bytearray:
        """TLS 1.3 records of ``content_type`` with the zero padding :attr:`padding` asks
        for (RFC 8446 5.4), cut to keep each inner plaintext within the peer's limit."""
        d = self._write
        view = memoryview(data)
        total = len(view)
        limit = self.send_limit
        nrec = max(1, -(-total // limit))
        if d.seq + nrec >= SEQ_LIMIT:
            raise RecordError(80, "write sequence number exhausted")
        pad_of = self.padding
        out = bytearray()
        seq = d.seq
        pos = 0
        for _ in range(nrec):
            n = min(limit, total - pos)
            pad = pad_of(content_type, n)
            if isinstance(pad, bool) or not isinstance(pad, int) or pad < 0:
                raise PaddingError(TLSConfigurationError(
                    f"the record_padding function returned {pad!r} for a record of {n} bytes",
                    cause="it must return the number of zero bytes to add: an int >= 0",
                    hint="fix the function given as TLSContext.record_padding",
                    alert=AlertDescription.internal_error, code="bad-record-padding"))
            inner = bytes(view[pos:pos + n]) + bytes((content_type,)) + bytes(min(pad, limit - n))
            clen = len(inner) + _TAG
            header = bytes((APPLICATION_DATA, 3, 3, clen >> 8, clen & 0xFF))
            out += header
            out += d.aead.encrypt((d.iv_int ^ seq).to_bytes(12, "big"), inner, header)
            seq += 1
            pos += n
        d.seq = seq
        return out


def _limit_note(inner: int) -> str:
    return "" if inner > MAX_FRAGMENT else \
        ", the record_size_limit this side advertised (RFC 8449)"
