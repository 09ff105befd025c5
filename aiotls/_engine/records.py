"""tlslite-ng's record layer, with every encrypted record sealed and opened by aiotls's.

:class:`_RecordLayer` replaces tlslite's per connection.  Whenever tlslite assigns a new
read or write state (new keys), the assignment installs a :class:`aiotls._record.Direction`
in the connection's one :class:`aiotls._record.RecordLayer`; from then on its
``sendRecord``/``recvRecord`` seal and open through it, with tlslite's checks in tlslite's
order (so the same alerts follow).  Records the connection decrypted already arrive as
plaintext (:meth:`_RecordLayer.push_opened`).  :class:`_RecordSocket` takes whole records
from the in-memory socket at once.  :func:`alert_rule` decides which received alerts the
connection carries on after (tlslite ends the connection on every alert).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from tlslite.constants import AlertDescription as _TLAlert
from tlslite.constants import (
    AlertLevel,
    CipherSuite,
    ContentType,
)
from tlslite.errors import (
    TLSBadRecordMAC,
    TLSIllegalParameterException,
    TLSInternalError,
    TLSRecordOverflow,
    TLSUnexpectedMessage,
)
from tlslite.messages import (
    RecordHeader3,
)
from tlslite.recordlayer import ConnectionState, RecordLayer, RecordSocket
from tlslite.utils.cipherfactory import createAESCCM, createAESCCM_8, createAESGCM, createCHACHA20
from tlslite.utils.codec import Parser

from .. import _crypto
from .. import _record as _record_mod
from .._record import RecordError
from .._record import RecordLayer as RecordProtection
from ..errors import (
    AlertDescription,
    PeerMisbehaved,
)
from . import speedups

_AEAD_FUNCS = {createAESGCM: "gcm", createAESCCM: "ccm", createAESCCM_8: "ccm_8"}


class _RecordSocket(RecordSocket):  # type: ignore[misc]
    """tlslite's record framing over the in-memory socket, one slice per record.

    tlslite reads a record as three socket reads (1 byte, 4 bytes, the body) through two
    buffering layers; the connection layer above only ever queues whole, validated TLS
    records (never SSLv2), so the whole record is taken at once.
    """

    def _inbox(self) -> bytearray:
        """The in-memory socket's inbox, with what tlslite's BufferedSocket read ahead
        given back in front."""
        buffered = self.sock  # tlslite's BufferedSocket around the _MemorySocket
        inbox: bytearray = buffered.socket.inbox
        if buffered._read_buffer:
            inbox[:0] = buffered._read_buffer
            buffered._read_buffer.clear()
        return inbox

    def _too_long(self, length: int) -> bool:
        return bool(length > self.recv_record_limit + 2048 or (
            self.tls13record and length > self.recv_record_limit + 256))

    def ready(self) -> bool:
        """True if :meth:`recv` would not wait: a whole record, or a header it refuses."""
        inbox = self._inbox()
        if len(inbox) < 5:
            return False
        length = (inbox[3] << 8) | inbox[4]
        return self._too_long(length) or len(inbox) >= 5 + length

    def take(self) -> tuple[Any, bytearray]:
        """The next record (header, body) once :meth:`ready` is True, without a generator;
        raises TLSRecordOverflow for a header announcing too long a body."""
        inbox = self._inbox()
        length = (inbox[3] << 8) | inbox[4]
        if self._too_long(length):
            raise TLSRecordOverflow()
        header = RecordHeader3().create((inbox[1], inbox[2]), inbox[0], length)
        data = inbox[5:5 + length]
        del inbox[:5 + length]
        return header, data

    def recv(self) -> Generator[Any, None, None]:
        while not self.ready():
            yield 0  # WANT_READ
        yield self.take()

    def send(self, msg: Any, padding: int = 0) -> Generator[Any, None, None]:
        data = msg.write()
        version = self.version
        self.sock.send(bytes((msg.contentType, version[0], version[1], len(data) >> 8,
                              len(data) & 0xFF)) + data)  # never blocks: no "yield 1"
        yield from ()


#: The middlebox ChangeCipherSpec record (RFC 8446 D.4) as every TLS 1.3 peer sends it.
CCS_RECORD = bytes((ContentType.change_cipher_spec, 3, 3, 0, 1, 1))
#: "Not all of it is here yet" (WANT_READ), from :meth:`_RecordLayer.read_ahead` and the
#: lean paths' direct reads.
WAIT = object()

#: Warning alerts a connection carries on after; one more fails it (``unexpected_message``).
#: Counted over the whole connection: after the handshake only user_canceled (then
#: close_notify) is expected at all, and data records never reach this layer.
MAX_WARNING_ALERTS = 4

#: TLS 1.2 alerts that a peer may send at warning level and then carry on (RFC 5246 7.2.2,
#: RFC 6066 3 and 5-8): aiotls carries on too.  Every other alert ends the connection at
#: either level: the ones RFC 5246 calls "always fatal", the TLS 1.3-only ones, and unknown
#: descriptions (RFC 8446 6 makes those errors; RFC 5246 gives no rule for them).
_IGNORABLE_TLS12_WARNINGS = frozenset({
    _TLAlert.user_canceled,  # announces close_notify (RFC 5246 7.2.1)
    _TLAlert.no_renegotiation,  # "always a warning"; aiotls never asks to renegotiate
    _TLAlert.unrecognized_name,  # RFC 6066 3: GnuTLS sends it before ServerHello
    _TLAlert.no_certificate,  # SSL 3.0's warning, reserved since
    _TLAlert.bad_certificate, _TLAlert.unsupported_certificate,
    _TLAlert.certificate_revoked, _TLAlert.certificate_expired,
    _TLAlert.certificate_unknown,  # the peer complains about our certificate, yet goes on
    _TLAlert.certificate_unobtainable, _TLAlert.bad_certificate_status_response,
    _TLAlert.bad_certificate_hash_value,  # RFC 6066 5-8, may be warnings
})


def alert_rule(tls13: bool, level: int, description: int) -> str:
    """What a received alert means: ``"close"``, ``"ignore"`` or ``"fatal"``.

    ======================================  ===================  ========================
    alert                                   TLS 1.3 (RFC 8446 6)  TLS 1.2 (RFC 5246 7.2)
    ======================================  ===================  ========================
    close_notify                            close                close
    user_canceled                           ignore (any level)   ignore if warning
    no_renegotiation, unrecognized_name,    fatal                ignore if warning
    no_certificate, bad/unsupported/
    revoked/expired/unknown certificate,
    certificate_unobtainable,
    bad_certificate_status_response,
    bad_certificate_hash_value
    every other alert, unknown ones too     fatal                fatal
    anything at fatal level                 fatal                fatal
    ======================================  ===================  ========================

    user_canceled announces a close_notify (RFC 8446 6.1, RFC 5246 7.2.1): the close_notify
    ends the connection (cleanly after the handshake; in the handshake it is reported as
    the peer canceling it).  Before the peer's hello no version is agreed and TLS 1.2's
    rules apply, as in OpenSSL.  A level other than warning or fatal is fatal.
    """
    if description == _TLAlert.close_notify:
        return "close"
    if tls13:
        return "ignore" if description == _TLAlert.user_canceled else "fatal"
    if level == AlertLevel.warning and description in _IGNORABLE_TLS12_WARNINGS:
        return "ignore"
    return "fatal"


def _pending_state(attr: str) -> property:
    """A tlslite pending state kept in ``attr``, where ``None`` stands for a blank one."""
    def get(self: Any) -> Any:
        state = getattr(self, attr)
        if state is None:
            state = ConnectionState()
            setattr(self, attr, state)
        return state

    def set_(self: Any, state: Any) -> None:
        setattr(self, attr, state)

    return property(get, set_)


class _RecordLayer(RecordLayer):  # type: ignore[misc]
    """tlslite's record layer whose encrypted records all go through aiotls's.

    Every time tlslite switches keys it assigns ``_readState``/``_writeState``; for the AEAD
    ciphers aiotls handles, the assignment installs a :class:`aiotls._record.Direction` in
    the connection's one :class:`aiotls._record.RecordLayer` (``records``), and from then on
    that direction seals and opens every record: tlslite's state object keeps only the
    cipher's name for its introspection, never a sequence number that is used.  Records
    that the connection already opened (post-handshake control records) arrive through
    :meth:`push_opened` as plaintext and are not decrypted again.

    An established connection lives long, and every object it keeps is walked by each full
    pass of the cyclic GC: the state objects tlslite keeps for keys aiotls holds share one
    key-less cipher per name (:func:`_held`), the pending states tlslite leaves blank are
    made when read (:attr:`_pendingReadState`), and the list of opened records when one
    comes.
    """

    #: Called with the client's and server's traffic secrets at each TLS 1.3 key change
    #: when the context logs keys (keylog.attach).
    _aiotls_keylog: Any = None
    #: The connection's handshake trace (trace.attach), shown every record's plaintext.
    _aiotls_trace: Any = None

    def __init__(self, sock: Any, records: RecordProtection) -> None:
        self.records = records
        self._opened: list[tuple[int, bytes]] | tuple[()] = ()
        super().__init__(sock)  # (its four states through the properties below)
        self._recordSocket = _RecordSocket(sock)
        self._aiotls_pending_read: Any = None  # (blank: made when read)
        self._aiotls_pending_write: Any = None

    def _install(self, state: Any, *, reading: bool) -> None:
        ctx = state.encContext
        if isinstance(ctx, _HeldCipher):
            return  # (a copy of a state installed before: its keys are held already)
        if isinstance(ctx, _crypto.AEADCipher) and ctx.name in _record_mod.CIPHERS \
                and self._version >= (3, 3):
            self.records.install(reading=reading, cipher=ctx.name, key=ctx.key,
                                 iv=bytes(state.fixedNonce), tls13=self._is_tls13_plus())
            state.encContext = _held(ctx)
        else:
            self.records.remove(reading=reading)

    @property
    def _readState(self) -> Any:
        return self._aiotls_read_state

    @_readState.setter
    def _readState(self, state: Any) -> None:
        self._aiotls_read_state = state
        self._install(state, reading=True)

    @property
    def _writeState(self) -> Any:
        return self._aiotls_write_state

    @_writeState.setter
    def _writeState(self, state: Any) -> None:
        self._aiotls_write_state = state
        self._install(state, reading=False)

    # tlslite's pending states: blank after each change of keys until the next keys are
    # computed; a blank one is made when something reads it.
    _pendingReadState = _pending_state("_aiotls_pending_read")
    _pendingWriteState = _pending_state("_aiotls_pending_write")

    def changeReadState(self) -> None:
        super().changeReadState()
        self._aiotls_pending_read = None  # (tlslite's new blank one)

    def changeWriteState(self) -> None:
        super().changeWriteState()
        self._aiotls_pending_write = None

    #: (tlslite's send limit, content bytes per record: a plain attribute there)
    _aiotls_send_limit = 2**14

    @property
    def send_record_limit(self) -> int:
        return self._aiotls_send_limit

    @send_record_limit.setter
    def send_record_limit(self, value: int) -> None:
        # the peer's record_size_limit, once known: padded records keep to it too
        self._aiotls_send_limit = value
        self.records.set_send_limit(int(value))

    @property
    def recv_record_limit(self) -> int:
        return int(self._recordSocket.recv_record_limit)

    @recv_record_limit.setter
    def recv_record_limit(self, value: int) -> None:
        # tlslite sets it once both hellos carried record_size_limit (RFC 8449): aiotls's
        # record layer enforces it too, on every protected record from then on
        self._recordSocket.recv_record_limit = value
        self.records.set_receive_limit(int(value))

    def push_opened(self, content_type: int, content: bytes) -> None:
        """A record the connection already decrypted; :meth:`recvRecord` hands it out next."""
        if not self._opened:
            self._opened = []
        self._opened.append((content_type, content))

    def has_opened(self) -> bool:
        return bool(self._opened)

    @staticmethod
    def _getCipherSettings(cipherSuite: int) -> tuple[int, int, Any]:
        key_len, iv_len, func = RecordLayer._getCipherSettings(cipherSuite)
        name: str | None = None
        if func in _AEAD_FUNCS:
            size = "128" if key_len == 16 else "256"
            kind = _AEAD_FUNCS[func]
            name = f"aes{size}{kind}"
        elif func is createCHACHA20 and cipherSuite in CipherSuite.chacha20Suites:
            name = "chacha20-poly1305"
        if name is None:
            return key_len, iv_len, func  # legacy CBC / draft ciphers stay on tlslite's code

        def create(key: bytes, implementations: Any = None, _name: str = name) -> _crypto.AEADCipher:
            return _crypto.AEADCipher(_name, key)

        return key_len, iv_len, create

    def sendRecord(self, msg: Any) -> Generator[Any, None, None]:
        """Records under keys that aiotls's record layer holds are sealed there (TLS 1.3:
        inner plaintext, header as additional data, IV XOR sequence number, RFC 8446
        5.2-5.3; TLS 1.2: RFC 5288/7905); plaintext records and CCS are tlslite's."""
        content_type = msg.contentType
        if self._aiotls_trace is not None:
            self._aiotls_trace.sent(content_type, msg.write())
        if self.records._write is None or content_type == ContentType.change_cipher_spec:
            yield from super().sendRecord(msg)
            return
        try:
            sealed = self.records.seal_record(content_type, msg.write())
        except _record_mod.PaddingError:
            raise  # (translate() reports its error)
        except RecordError as exc:
            raise TLSInternalError(str(exc)) from None
        self._recordSocket.sock.send(sealed)
        yield from ()

    #: Warning alerts ignored so far on this connection; see :meth:`recvRecord`.
    _aiotls_warnings = 0
    #: The peer sent user_canceled: its close_notify, if it comes in the handshake, reports it.
    _aiotls_canceled = False

    def recvRecord(self) -> Generator[Any, None, None]:
        """The next record for tlslite, minus the alerts that the RFCs say to carry on after.

        tlslite ends the connection on every alert, whatever its level; aiotls applies
        :func:`alert_rule` first, so a warning that TLS allows to ignore (GnuTLS's TLS 1.2
        ``unrecognized_name`` before ServerHello, Java's TLS 1.3 ``user_canceled`` before its
        close_notify) never reaches it.  At most :data:`MAX_WARNING_ALERTS` per connection:
        one more fails with ``unexpected_message`` (an endless run of warning alerts was
        a denial of service in OpenSSL, CVE-2016-8610).
        """
        while True:
            result: Any = None
            if self.records._read is None:
                # no keys yet, or a legacy cipher: tlslite's own record layer
                for result in super().recvRecord():
                    if result in (0, 1):
                        yield result
                    else:
                        break
            else:
                # (a reader suspended here may be resumed for an opened record or a raw one)
                while not self._opened and not self._recordSocket.ready():
                    yield 0  # WANT_READ
                result = self._open_next()
                if result is None:
                    continue  # a declined 0-RTT record was skipped
            header, parser = result
            if self._aiotls_trace is not None:
                self._aiotls_trace.received(header.type, parser.bytes[parser.index:])
            if header.type != ContentType.alert:
                yield result
                return
            body = parser.bytes[parser.index:]
            if len(body) != 2 or alert_rule(self._version > (3, 3), body[0], body[1]) != "ignore":
                yield result
                return
            self._aiotls_warnings += 1
            if self._aiotls_warnings > MAX_WARNING_ALERTS:
                raise PeerMisbehaved(
                    f"the peer sent more than {MAX_WARNING_ALERTS} warning alerts "
                    f"(the last: {AlertDescription.name_of(body[1])})",
                    cause="a broken or hostile peer flooding the connection with alerts",
                    hint="nothing to configure here: the peer's TLS stack needs fixing",
                    alert=AlertDescription.unexpected_message, code="warning-alert-flood")
            if body[1] == _TLAlert.user_canceled:
                self._aiotls_canceled = True

    def read_ahead(self, pos: int) -> Any:
        """The whole record at ``pos`` in the socket's inbox, read without taking it out:
        ``(content type, content, where the next record starts)``.

        Only what TLS 1.3 peers send in their handshake flights is read here: the middlebox
        ChangeCipherSpec (RFC 8446 D.4) exactly as every peer sends it, or a protected
        record (outer type application_data, version 3.3) that opens with the read keys
        to non-empty content within the limit, of a type other than change_cipher_spec
        (so that type in the result always means the middlebox one) -- its sequence
        number is then used, and
        tlslite's reading of it, if it comes to that, needs it back or new keys.
        :data:`WAIT` while the record is not whole; None, with nothing used, for anything
        else, which tlslite's reading must see.  (The lean TLS 1.3 paths read their peer's
        flight with it: client13.py and server13.py.)
        """
        inbox = self._recordSocket._inbox()
        if len(inbox) - pos < 5:
            return WAIT
        length = (inbox[pos + 3] << 8) | inbox[pos + 4]
        if self._recordSocket._too_long(length):
            return None
        end = pos + 5 + length
        if len(inbox) < end:
            return WAIT
        if inbox[pos] == ContentType.change_cipher_spec:
            return (ContentType.change_cipher_spec, b"\x01", end) \
                if inbox[pos:end] == CCS_RECORD else None
        if inbox[pos] != ContentType.application_data or inbox[pos + 1:pos + 3] != b"\x03\x03" \
                or self.records._read is None:
            return None
        out = bytearray()
        try:
            with memoryview(inbox) as view:
                content_type, n = self.records.open(view[pos:end], out, 0)
        except RecordError:
            return None  # (open() uses nothing when it fails)
        if not n or n > self.recv_record_limit or content_type == ContentType.change_cipher_spec:
            self.records._read.seq -= 1  # (a protected ChangeCipherSpec is not the middlebox one)
            return None
        return content_type, bytes(out[:n]), end

    def _open_next(self) -> tuple[Any, Parser] | None:
        """The next record under aiotls's keys, once one is there (opened by the
        connection already, or whole in the socket): opened here with aiotls's record layer,
        with tlslite's checks and exceptions in its order (the alerts follow from them);
        ``None`` when it was declined 0-RTT data, skipped.  (A plain function, not a
        generator: it runs for every protected handshake record.)"""
        records = self.records
        opened = self._opened
        if opened:
            content_type, content = opened.pop(0)
            if not opened:
                self._opened = ()
            version = (3, 4) if self._is_tls13_plus() else tuple(self._version)
            return RecordHeader3().create(version, content_type, len(content)), \
                Parser(bytearray(content))
        header, data = self._recordSocket.take()
        record_type = header.type
        tls13 = self._is_tls13_plus()
        if tls13 and (record_type == ContentType.change_cipher_spec or (
                record_type == ContentType.alert and len(data) < 3
                and records._read.seq == 0)):
            # an unprotected CCS, or a plaintext alert from a peer that has no keys yet
            self.early_data_ok = False
        else:
            seq = records._read.seq
            if tls13:
                # tlslite's checks, in its order (the alert follows from the first that fails)
                failure: Exception | None = None
                if len(data) < 16:
                    failure = TLSBadRecordMAC("Truncated tag")
                elif record_type != ContentType.application_data:
                    failure = TLSUnexpectedMessage("Invalid ContentType for encrypted record: "
                                                   f"{ContentType.toStr(record_type)}")
                elif header.version != (3, 3):
                    failure = TLSIllegalParameterException(
                        f"Unexpected version in encrypted record: {header.version}")
                if failure is not None:
                    records._read.seq = seq + 1  # (used up, as in tlslite: the error is fatal)
                    raise failure
            record = bytes((record_type, header.version[0], header.version[1],
                            len(data) >> 8, len(data) & 0xFF)) + data
            out = bytearray()
            try:
                record_type, n = records.open(memoryview(record), out, 0)
            except RecordError as exc:
                if exc.alert == _TLAlert.bad_record_mac and self.early_data_ok and (
                        self._early_data_processed + len(data) < self.max_early_data):
                    # RFC 8446 4.2.10: skip the 0-RTT data a server declined (it was
                    # protected with keys this side does not have)
                    self._early_data_processed += len(data)
                    return None
                records._read.seq = seq + 1  # (used up, as in tlslite: the error is fatal)
                raise _RECORD_ERRORS.get(exc.alert, TLSInternalError)(str(exc)) from None
            del out[n:]
            data = out
            self.early_data_ok = False
            header = RecordHeader3().create((3, 4) if tls13 else header.version, record_type, n)
        if len(data) > self.recv_record_limit:
            raise TLSRecordOverflow()
        return header, Parser(data)

    def calcTLS1_3PendingState(self, cipherSuite: int, cl_traffic_secret: bytearray,
                               sr_traffic_secret: bytearray, implementations: Any) -> None:
        """Traffic keys and IVs from the traffic secrets (RFC 8446 7.3), without tlslite's Python HKDF."""
        if self._aiotls_keylog is not None:
            self._aiotls_keylog(cl_traffic_secret, sr_traffic_secret)  # (see keylog.py)
        if not speedups.ENABLED:
            super().calcTLS1_3PendingState(cipherSuite, cl_traffic_secret, sr_traffic_secret,
                                           implementations)
            return
        prf = "sha384" if cipherSuite in CipherSuite.sha384PrfSuites else "sha256"
        key_length, _, cipher_func = self._getCipherSettings(cipherSuite)
        states = []
        for secret in (cl_traffic_secret, sr_traffic_secret):
            key, iv = _crypto.hkdf_expand_labels(
                secret, ((b"key", b"", key_length), (b"iv", b"", 12)), prf)
            state = ConnectionState()
            state.macContext = None
            state.encContext = cipher_func(bytearray(key), implementations)
            state.fixedNonce = bytearray(iv)
            states.append(state)
        client, server = states
        if self.client:
            self._pendingWriteState, self._pendingReadState = client, server
        else:
            self._pendingWriteState, self._pendingReadState = server, client


class _HeldCipher(_crypto.AEADCipher):
    """What tlslite's state keeps of an AEAD cipher whose key aiotls's record layer holds:
    its name and shape for tlslite's introspection, no key; it never seals or opens."""

    __slots__ = ()

    def seal(self, nonce: bytes | bytearray, plaintext: bytes | bytearray,
             data: bytes | bytearray) -> bytearray:
        raise TLSInternalError(f"{self.name}: the key is held by aiotls's record layer")

    def open(self, nonce: bytes | bytearray, ciphertext: bytes | bytearray,
             data: bytes | bytearray) -> bytearray | None:
        raise TLSInternalError(f"{self.name}: the key is held by aiotls's record layer")


#: One key-less cipher per name, shared by every connection (see _RecordLayer).
_HELD: dict[str, _HeldCipher] = {}


def _held(cipher: _crypto.AEADCipher) -> _HeldCipher:
    held = _HELD.get(cipher.name)
    if held is None:
        held = _HELD[cipher.name] = _HeldCipher.__new__(_HeldCipher)
        held.name, held.key, held.tagLength, held._aead = cipher.name, b"", cipher.tagLength, None
    return held


#: RecordError alerts from aiotls's record layer as the tlslite exceptions its handshake code
#: expects (the alert follows from the exception, see _ALERT_FOR_EXCEPTION).
_RECORD_ERRORS: dict[int, type[Exception]] = {
    _TLAlert.bad_record_mac: TLSBadRecordMAC,
    _TLAlert.record_overflow: TLSRecordOverflow,
    _TLAlert.unexpected_message: TLSUnexpectedMessage,
}

