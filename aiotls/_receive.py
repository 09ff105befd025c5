"""Record framing and the protected receive path of :class:`aiotls.TLSConnection`.

Theory of operation
-------------------
Bytes from the peer are cut into whole TLS records here (5-byte header, the version's
length limits, a budget for the handshake) before the engine sees any: hostile framing
is refused early with the right alert, and the engine never holds half a record.

During the handshake each record goes to the engine as it is (:meth:`_feed_record`).
Once the engine's record verbs are lent (``Engine.take_over_records``), every record is
decrypted here, once, in :meth:`_process_fast`: the short single record of interactive
traffic (``open_small``), runs of application-data records into one buffer (``open_run``),
anything else one record at a time (``open_record``).  Consecutive application data
becomes one ``DataReceived`` (or ``LentDataReceived``: a view of a per-thread decryption
buffer lent until ``release_plaintext``); the plaintext of every other record goes to
:meth:`_control`, which keeps tickets, handles close_notify (half-close included) and
gives the rest to the engine (``Engine.control_message``).  A record split across two
reads is completed with just the bytes it lacks (:meth:`_complete_split_record`).
"""

from __future__ import annotations

import threading
from collections import deque
from typing import TYPE_CHECKING, Any

from ._record import RecordError, interleaved_error
from ._state import ConnectionState, _Trigger
from .errors import (
    AlertDescription,
    PeerMisbehaved,
    error_for_sent_alert,
)
from .events import (
    CloseNotifyReceived,
    DataReceived,
    Event,
    LentDataReceived,
)

if TYPE_CHECKING:
    from ._engine import Engine
    from .context import TLSContext

_HEADER = 5
_MAX_RECORD = 2**14 + 2048  # TLS 1.2 ciphertext limit (RFC 5246 6.2.3)
_MAX_RECORD_TLS13 = 2**14 + 256  # RFC 8446 5.2
_CONTENT_TYPES = frozenset({20, 21, 22, 23})
_APPLICATION_DATA = 23
_ALERT = 21
_HANDSHAKE = 22
#: Bytes kept in unused_data after a half-closed peer's close_notify (the rest is ignored,
#: as RFC 8446 6.1 says; a peer that keeps sending cannot grow a connection without bound).
_MAX_UNUSED = 256 * 1024
_HTTP_PREFIXES = (b"GET ", b"POST", b"HEAD", b"PUT ", b"HTTP", b"OPTI", b"DELE", b"CONN", b"PATC")
#: How plaintext servers greet a client: SMTP/FTP, POP3, IMAP, SSH (first four characters).
_GREETINGS = frozenset({"220 ", "220-", "+OK ", "* OK", "SSH-"})


_local = threading.local()


#: What :meth:`_RecordReceiver._open_small` returns for input it leaves alone.
_NOT_SMALL = object()


def _scratch(size: int) -> bytearray:
    """A per-thread buffer to decrypt into; its contents are copied out before returning,
    so connections keep no decryption buffer of their own while idle."""
    buf: bytearray | None = getattr(_local, "plain", None)
    if buf is None or len(buf) < size:
        buf = _local.plain = bytearray(max(size, 256 * 1024))
    return buf


def _take_scratch(size: int) -> bytearray:
    """The per-thread buffer, removed from the pool until :func:`_give_back` (a new one
    if it is lent out already or too small)."""
    buf: bytearray | None = getattr(_local, "plain", None)
    if buf is None or len(buf) < size:
        return bytearray(max(size, 256 * 1024))
    _local.plain = None
    return buf


def _give_back(buf: bytearray) -> None:
    current: bytearray | None = getattr(_local, "plain", None)
    if current is None or len(current) < len(buf):
        _local.plain = buf



class _RecordReceiver:
    """The framing and receive-path methods of :class:`aiotls.TLSConnection` (its only
    subclass), apart so that each module reads as one subject."""

    if TYPE_CHECKING:
        # (the connection's state these methods use; see TLSConnection.__init__)
        context: TLSContext
        server_side: bool
        _engine: Engine
        _events: deque[Event] | tuple[()]
        _inbuf: bytearray
        _handshake_bytes: int
        _tls13_limits: bool
        _hs_partial: bool
        _lend: bool
        _lent: list[bytearray] | tuple[()]
        _unused: bytes
        _half_close: bool
        _terminated: bool
        _state: ConnectionState

        @property
        def handshake_complete(self) -> bool: ...
        def _set_state(self, new: ConnectionState, trigger: _Trigger) -> None: ...
        def _advance(self) -> None: ...
        def _check_pha(self) -> None: ...
        def _closed_by_peer(self) -> None: ...


    def _event(self, event: Event) -> None:
        """Queue an event.  The queue is a deque only while it holds some: an idle
        connection keeps one object fewer for the cyclic GC (see docs/performance.md)."""
        if self._events:
            self._events.append(event)
        else:
            self._events = deque((event,))

    def _record_length(self, buf: bytes | bytearray | memoryview, pos: int) -> int:
        """Validate the record header at ``pos``; the record's body length."""
        ctype = buf[pos]
        if ctype not in _CONTENT_TYPES or buf[pos + 1] != 3:
            raise self._not_tls(bytes(buf[pos:pos + 80]))
        length = (buf[pos + 3] << 8) | buf[pos + 4]
        limit = _MAX_RECORD_TLS13 if self._tls13_limits else _MAX_RECORD
        if length > limit:
            raise PeerMisbehaved(
                f"the peer sent a TLS record of {length} bytes (limit {limit})",
                cause="a broken or hostile peer, or data that is not TLS",
                hint="check that the peer speaks TLS on this port",
                alert=AlertDescription.record_overflow, code="record-overflow",
            )
        if ctype != _APPLICATION_DATA and self._tls13_limits and self.handshake_complete:
            # RFC 8446 5: after the handshake every TLS 1.3 record is protected (outer type 23).
            # tlslite would accept an unprotected alert while the read sequence number is 0,
            # which lets an attacker forge a clean close (truncation): refuse it here.
            raise PeerMisbehaved(
                f"the peer sent an unprotected record of type {ctype} after the TLS 1.3 "
                "handshake",
                cause="a forged record injected by an attacker, or a broken peer",
                hint="nothing to configure: the connection was protected from truncation",
                alert=AlertDescription.unexpected_message, code="unprotected-record",
            )
        return length

    def _process_input(self) -> None:
        buf = self._inbuf
        pos = 0
        end = len(buf)
        fed = False
        try:
            while end - pos >= _HEADER:
                length = self._record_length(buf, pos)
                if end - pos < _HEADER + length:
                    break
                pos, end, fed, done = self._feed_record(buf, pos, end, length)
                if done:
                    return
        except PeerMisbehaved:
            if fed:  # deliver what arrived intact before the bad record, then fail
                del buf[:pos]
                self._advance()
            raise
        del buf[:pos]
        if fed:
            self._advance()

    def _feed_record(self, buf: bytearray, pos: int, end: int,
                     length: int) -> tuple[int, int, bool, bool]:
        """Give the engine the whole record at ``pos``.

        Returns ``(pos, end, fed, done)``: where to continue, whether records wait in the
        engine for :meth:`_advance`, and whether processing of this input is finished.
        """
        if not self.handshake_complete:
            self._handshake_bytes += _HEADER + length
            if self._handshake_bytes > self.context.max_handshake_size:
                raise PeerMisbehaved(
                    f"the handshake exceeded {self.context.max_handshake_size} bytes",
                    cause="a hostile peer, or an enormous certificate chain",
                    hint="raise TLSContext.max_handshake_size if the chain is really that big",
                    alert=AlertDescription.illegal_parameter, code="handshake-too-large",
                )
        self._engine.feed(buf[pos:pos + _HEADER + length])
        pos += _HEADER + length
        if self.handshake_complete:
            return pos, end, True, False
        # Feed the handshake one record at a time: the record-size limit changes once
        # TLS 1.3 is negotiated and the byte budget must stop at completion.
        del buf[:pos]
        self._advance()
        if self._terminated:
            return 0, len(buf), False, True
        if self._engine.records_taken_over:
            # aiotls's record layer took over: it handles whatever follows.
            rest = bytes(buf)
            buf.clear()
            if rest:
                self._process_fast(rest)
            return 0, 0, False, True
        return 0, len(buf), False, False

    def _open_small(self, data: bytes | bytearray | memoryview) -> bytes | object | None:
        """``data`` if it is exactly one short TLS 1.3 record (interactive traffic, the
        engine's ``open_small``): its application data as ``bytes``, or ``None`` once a
        control record in it has been handled; ``_NOT_SMALL`` (nothing consumed) for
        anything else, which the rest of :meth:`_process_fast` handles."""
        if self._inbuf or self._hs_partial:
            return _NOT_SMALL
        try:
            small = self._engine.opener.open_small(data)
        except RecordError as exc:
            raise error_for_sent_alert(exc.alert, str(exc)) from None
        if small is None:
            return _NOT_SMALL
        if isinstance(small, bytes):
            return small
        inner, content = small
        self._control(inner, content, memoryview(b""), [])
        return None

    def _process_fast(self, data: bytes | bytearray | memoryview) -> None:
        """Records after the handshake, through the engine's record verbs (see
        ``_record.py``): each record is decrypted once, here; application data of
        consecutive records coalesces into one :class:`DataReceived`, and the content of any
        other record (alert, KeyUpdate, NewSessionTicket...) goes to the engine as plaintext.
        """
        engine = self._engine
        tls13 = engine.tls13
        partial = self._hs_partial
        if tls13:
            small = self._open_small(data)
            if small is not _NOT_SMALL:
                if small:  # (an empty record carries nothing to deliver)
                    self._event(DataReceived(small))  # type: ignore[arg-type]
                return
        segments: list[Any] = [data]
        if self._inbuf:
            # A record split across two reads: complete it with just the bytes it lacks
            # (appending the whole new read behind it would copy all the data once more).
            segments = self._complete_split_record(memoryview(data))
            if not segments:
                return  # still incomplete
        lend = self._lend
        # (plaintext never outgrows its ciphertext, so `plain` is never resized below,
        # which memoryviews lent out would forbid)
        total = sum(len(segment) for segment in segments)
        plain = _take_scratch(total) if lend else _scratch(total)
        plen = base = 0

        def deliver() -> None:
            # consecutive application records become one DataReceived
            nonlocal plen, base
            if plen > base:
                if lend:
                    self._event(LentDataReceived(memoryview(plain)[base:plen]))
                    base = plen
                else:
                    self._event(DataReceived(bytes(memoryview(plain)[:plen])))
                    plen = 0

        try:
            for index, src in enumerate(segments):
                view = memoryview(src)
                end = len(view)
                pos = 0
                while end - pos >= _HEADER:
                    control = None
                    if not partial:
                        pos, plen, failure, control = engine.opener.open_run(view, pos, end, plain,
                                                                      plen)
                        if failure is not None:
                            raise error_for_sent_alert(failure.alert, str(failure))
                    if control is None:
                        if end - pos < _HEADER:
                            break
                        length = self._record_length(view, pos)
                        if end - pos < _HEADER + length:
                            break
                        ctype = view[pos]
                        record = view[pos:pos + _HEADER + length]
                        pos += _HEADER + length
                        if ctype != _APPLICATION_DATA and (ctype != _ALERT or tls13):
                            # a record without protection (a TLS 1.3 CCS) or of a type that
                            # only the engine judges (a TLS 1.2 renegotiation attempt)
                            deliver()
                            if self._engine_took(engine.control_record(bytes(record)),
                                                 view[pos:], segments[index + 1:]):
                                return
                            partial = self._hs_partial
                            continue
                        try:
                            inner, n = engine.opener.open(record, plain, plen)
                        except RecordError as exc:
                            raise error_for_sent_alert(exc.alert, str(exc)) from None
                        if partial and inner != _HANDSHAKE:
                            raise interleaved_error(inner)  # (its content is not delivered)
                        if inner == _APPLICATION_DATA:
                            plen += n
                            continue
                        control = (inner, n)
                    inner, n = control
                    content = bytes(memoryview(plain)[plen:plen + n])
                    deliver()
                    if self._control(inner, content, view[pos:], segments[index + 1:]):
                        return
                    partial = self._hs_partial
                if pos < end:  # (only the last segment can end inside a record)
                    self._inbuf = bytearray(view[pos:])
        finally:
            deliver()  # records before a bad one were authentic: they are delivered first
            if lend:
                if base:
                    if self._lent:
                        self._lent.append(plain)
                    else:
                        self._lent = [plain]
                else:
                    _give_back(plain)

    def _control(self, inner: int, content: bytes, rest: memoryview, later: list[Any]) -> bool:
        """The content of a decrypted record that is not application data; True when the
        connection ended with it (``rest`` and ``later``: the bytes that followed it)."""
        engine = self._engine
        if inner == _HANDSHAKE and engine.take_ticket(content):
            return False  # session tickets, kept by the engine
        if inner == _ALERT and len(content) == 2 and content[0] in (1, 2) and content[1] == 0:
            # close_notify, the usual end of a connection: handled here
            self._keep_unused(rest, later)
            if engine.tls13 and self._half_close and self._state is ConnectionState.OPEN:
                self._set_state(ConnectionState.OPEN,  # our side stays open
                                _Trigger.PEER_HALF_CLOSE)
                self._event(CloseNotifyReceived())
                return True
            engine.peer_closed()
            self._closed_by_peer()
            return True
        return self._engine_took(engine.control_message(inner, content), rest, later)

    def _engine_took(self, result: bytes | None, rest: memoryview, later: list[Any]) -> bool:
        """After the engine processed a control record (``result``: ``b""`` if it was the
        peer's close_notify): True when the connection ended with it."""
        engine = self._engine
        if result == b"":
            self._keep_unused(rest, later)
            self._closed_by_peer()
            return True
        if engine.tls13:
            self._hs_partial = engine.handshake_fragment_pending()
        self._check_pha()
        return False

    def _keep_unused(self, rest: memoryview, later: list[Any]) -> None:
        if len(rest) or any(len(s) for s in later):
            self._unused = bytes(rest) + b"".join(bytes(s) for s in later)

    def _complete_split_record(self, data: memoryview) -> list[Any]:
        """Move into the partial record kept from the previous read the bytes that complete
        it; returns ``[record, rest of data]``, or ``[]`` if data did not complete it."""
        pending = self._inbuf
        used = 0
        if len(pending) < _HEADER:
            used = min(_HEADER - len(pending), len(data))
            pending += data[:used]
            if len(pending) < _HEADER:
                return []
        length = self._record_length(pending, 0)  # a bad header fails here, not later
        take = min(_HEADER + length - len(pending), len(data) - used)
        pending += data[used:used + take]
        used += take
        if len(pending) < _HEADER + length:
            return []
        self._inbuf = bytearray()
        return [pending, data[used:]]

    def _not_tls(self, head: bytes) -> PeerMisbehaved:
        first = head.split(b"\n", 1)[0].strip().decode("ascii", "replace")[:60]
        if not self.server_side and (head.startswith(_HTTP_PREFIXES) or first[:4] in _GREETINGS):
            # a server speaking a plaintext protocol: the blame is on where we connected
            http = head.startswith(_HTTP_PREFIXES)
            return PeerMisbehaved(
                f"the server answered in plain text, not TLS: {first!r}",
                cause="this port serves plain HTTP, not HTTPS" if http else
                "this port speaks a plaintext protocol that starts TLS later, if at all "
                "(STARTTLS), or none",
                hint="connect to the server's TLS port (443 for HTTPS), or use http:// for this "
                "one" if http else "connect to the protocol's implicit-TLS port (465 for SMTP, "
                "993 IMAP, 995 POP3), or use the protocol's STARTTLS",
                alert=AlertDescription.unexpected_message,
                code="not-tls-http" if http else "not-tls-plaintext",
            )
        if head.startswith(_HTTP_PREFIXES):
            return PeerMisbehaved(
                "the peer sent plain HTTP, not TLS",
                cause="an HTTP client connected to a TLS port (http:// instead of https://)",
                hint="use https:// on the client, or serve plain HTTP on another port",
                alert=AlertDescription.unexpected_message, code="not-tls-http",
            )
        if head[:1] and head[0] & 0x80 and len(head) > 2 and head[2] == 1:
            return PeerMisbehaved(
                "the peer sent an SSLv2-format ClientHello",
                cause="a very old client (SSLv2/SSLv3 era) that aiotls does not support",
                hint="upgrade the client to TLS 1.2 or newer",
                alert=AlertDescription.protocol_version, code="sslv2-hello",
            )
        return PeerMisbehaved(
            f"the peer sent data that is not a TLS record (first bytes {head[:5].hex(' ')})",
            cause="the peer does not speak TLS on this port, or the stream is corrupted",
            hint="check the port and protocol; 'python -m aiotls connect HOST PORT' shows what "
            "the server answers",
            alert=AlertDescription.unexpected_message, code="not-tls",
        )

