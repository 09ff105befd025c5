"""The handshake engine: tlslite-ng driven without a socket.  The only importer of tlslite.

Theory of operation
-------------------
tlslite-ng is written for sockets.  Its ``*Async`` methods return generators that
yield ``0`` when they want to read and ``1`` when they want to write, and they
read through ``sock.recv()`` and write through ``sock.send()``/``sendall()``.  We
give it a :class:`_MemorySocket`:

* ``recv()`` hands out bytes from an inbox and raises ``OSError(EWOULDBLOCK)``
  when the inbox is empty, which tlslite turns into "yield 0".  (A bare
  ``BlockingIOError()`` would crash it: it reads ``args[0]``.)
* ``send()``/``sendall()`` append to an outbox and never block, so "yield 1"
  never happens.

The connection layer above frames whole TLS records out of the byte stream and
only then puts them in the inbox.  A tlslite generator that yields 0 is
therefore always suspended at a record boundary, holding no half-read record in
its local variables, and can be resumed later or dropped safely.

Generators in play: the handshake generator until it finishes, then a
``readAsync()`` generator per batch of application data (it also handles
NewSessionTicket, KeyUpdate and close_notify, and may write replies).
Application writes call ``writeAsync()`` to completion at once.

Per-connection seams (private tlslite API; the version is pinned and the seams
are tested):

* :class:`_RecordLayer` overrides ``_getCipherSettings`` so AEAD ciphers come from
  ``cryptography`` (OpenSSL) instead of tlslite's pure Python (0.2 MB/s).
* :class:`_TLSLiteConnection._getKEX` gives TLS 1.3 key shares from ``cryptography``
  (ECDHE, and FFDHE over tlslite's RFC 7919 primes); TLS 1.2 (EC)DHE key exchange
  objects are switched to :class:`_FastECDHE` / :class:`_FastDHE` (OpenSSL arithmetic,
  RFC 7919 groups only for DHE).
* ``_check_certchain_with_settings`` (server certificates; client certificates in
  TLS 1.2), ``_serverSendTickets`` (client certificates in TLS 1.3) and
  ``_serverFinished`` (missing client certificate in TLS 1.2) run aiotls's
  certificate verification inside the handshake, before any Finished or ticket.
* ``_shutdown`` keeps the record protection in place so that alerts sent after
  an error are encrypted like the rest of the traffic.
* ``_getMsg`` passes each received handshake message through a check of aiotls's
  (``_RECEIVED_CHECKS``): a server drops a PSK offered only in modes aiotls never uses
  (full handshake instead); a TLS 1.3 client refuses an ALPN protocol it did not offer
  and a CertificateVerify scheme it did not offer, and notes a CertificateRequest.
* The client's ClientHello and the TLS 1.3 CertificateRequest advertise the signature
  algorithms aiotls verifies in certificates (``_advertise_certificate_signatures``).
* A TLS 1.3 client session carries the tickets it did not use into the next one
  (``_one_ticket``).

Speed without patching tlslite: its handshake methods run as the same code objects
with a copy of their module globals in which the HKDF/HMAC helpers, the cipher-suite
filters and enum-name lookups are faster equivalents (see ``_rebind``).
"""

from __future__ import annotations

import copy
import datetime
import errno
import functools
import hashlib
import re
import secrets
import struct
import types
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from ssl import TLSVersion
from typing import Any

from ecdsa.curves import NIST256p, NIST384p, NIST521p
from tlslite import HandshakeSettings
from tlslite import TLSConnection as _TLSLiteBase
from tlslite import constants as _tl_constants
from tlslite import extensions as _tl_extensions
from tlslite import handshakehelpers as _tl_handshakehelpers
from tlslite import messages as _tl_messages
from tlslite import tlsconnection as _tl_tlsconnection
from tlslite import tlsrecordlayer as _tl_tlsrecordlayer
from tlslite.constants import AlertDescription as _TLAlert
from tlslite.constants import (
    AlertLevel,
    CipherSuite,
    ContentType,
    ECCurveType,
    ECPointFormat,
    ExtensionType,
    GroupName,
    HandshakeType,
    PskKeyExchangeMode,
    SignatureScheme,
)
from tlslite.errors import (
    TLSAbruptCloseError,
    TLSBadRecordMAC,
    TLSDecodeError,
    TLSDecryptionFailed,
    TLSHandshakeFailure,
    TLSIllegalParameterException,
    TLSInsufficientSecurity,
    TLSInternalError,
    TLSLocalAlert,
    TLSProtocolException,
    TLSRecordOverflow,
    TLSRemoteAlert,
    TLSUnexpectedMessage,
    TLSUnknownPSKIdentity,
)
from tlslite.handshakehashes import HandshakeHashes
from tlslite.handshakehelpers import HandshakeHelpers
from tlslite.keyexchange import (
    ADHKeyExchange,
    AECDHKeyExchange,
    DHE_RSAKeyExchange,
    ECDHE_RSAKeyExchange,
)
from tlslite.mathtls import RFC7919_GROUPS
from tlslite.messages import (
    Alert,
    Certificate,
    CertificateRequest,
    CompressedCertificate,
    Finished,
    NewSessionTicket,
    NewSessionTicket1_0,
    RecordHeader3,
    ServerHello,
    ServerKeyExchange,
    SessionTicketPayload,
)
from tlslite.recordlayer import ConnectionState, RecordLayer, RecordSocket
from tlslite.utils.cipherfactory import createAESCCM, createAESCCM_8, createAESGCM, createCHACHA20
from tlslite.utils.codec import Parser
from tlslite.utils.dns_utils import is_valid_hostname as _tl_is_valid_hostname
from tlslite.utils.keyfactory import parsePEMKey
from tlslite.utils.lists import getFirstMatching
from tlslite.utils.python_ecdsakey import Python_ECDSAKey
from tlslite.utils.python_eddsakey import Python_EdDSAKey
from tlslite.utils.python_rsakey import Python_RSAKey
from tlslite.x509 import X509
from tlslite.x509certchain import X509CertChain

from . import _crypto, _verify
from . import _record as _record_mod
from ._record import RecordError, handshake_fragment_pending, interleaved_error
from ._record import RecordLayer as FastRecordLayer
from .context import FFDHE_GROUPS, SUITES_BY_ID, TLSContext
from .errors import (
    X509_V_ERR_CERT_REJECTED,
    AlertDescription,
    AlertReceived,
    CertificateError,
    PeerIncompatible,
    PeerMisbehaved,
    TLSConfigurationError,
    TLSError,
    TLSUsageError,
    error_for_received_alert,
    error_for_sent_alert,
)

#: TLS 1.3 PSK modes aiotls resumes with: with (EC)DHE only, so resumption keeps forward
#: secrecy; a client allowing nothing else gets a full handshake (see
#: _TLSLiteConnection._aiotls_screen_client_hello).
_PSK_MODES = ("psk_dhe_ke",)
_VERSION_TUPLES = {"TLSv1": (3, 1), "TLSv1.1": (3, 2), "TLSv1.2": (3, 3), "TLSv1.3": (3, 4)}
_VERSION_NAMES = {v: k for k, v in _VERSION_TUPLES.items()}
_CERT_REQUIRED, _CERT_OPTIONAL = 2, 1

WANT_READ = 0
_ALERT = 21
#: The close_notify alert body: level warning, description close_notify.
_CLOSE_NOTIFY = bytes((AlertLevel.warning, _TLAlert.close_notify))


# --- the in-memory socket --------------------------------------------------------------------


class _MemorySocket:
    """What tlslite sees as its socket: an inbox of whole records and an outbox."""

    __slots__ = ("discard", "inbox", "outbox")

    def __init__(self) -> None:
        self.inbox = bytearray()
        #: Chunks to transmit, in order (tlslite's writes and aiotls's sealed records).
        self.outbox: list[bytes | bytearray] = []
        #: Once we have sent close_notify nothing more may go out; later writes are dropped.
        self.discard = False

    def recv(self, bufsize: int) -> bytes:
        if not self.inbox:
            raise OSError(errno.EWOULDBLOCK, "no data")
        chunk = bytes(self.inbox[:bufsize])
        del self.inbox[:bufsize]
        return chunk

    def send(self, data: bytes | bytearray) -> int:
        if not self.discard:
            self.outbox.append(data)
        return len(data)

    def sendall(self, data: bytes | bytearray) -> None:
        self.send(data)

    def close(self) -> None:
        pass

    def shutdown(self, how: int) -> None:
        pass

    def settimeout(self, value: float | None) -> None:
        pass

    def gettimeout(self) -> float | None:
        return None

    def getsockname(self) -> tuple[str, int]:
        return ("0.0.0.0", 0)

    def getpeername(self) -> tuple[str, int]:
        return ("0.0.0.0", 0)


# --- cryptography-backed primitives in tlslite's shapes --------------------------------------

_AEAD_FUNCS = {createAESGCM: "gcm", createAESCCM: "ccm", createAESCCM_8: "ccm_8"}
#: Group ids whose key exchange runs in OpenSSL (GroupName.toStr is slow: looked up once here).
_FAST_GROUPS: dict[int, str] = {getattr(GroupName, name): name for name in _crypto.KEX_GROUPS}
#: RFC 7919 group code point -> its name; the (generator, prime) pairs are tlslite's own
#: RFC7919_GROUPS, in code-point order (ffdhe2048 = 256 ... ffdhe8192 = 260).
_FF_GROUPS: dict[int, str] = {getattr(GroupName, name): name for name in FFDHE_GROUPS}


@functools.cache
def _ffdh(group: int) -> _crypto.FFDHGroup:
    """The OpenSSL-backed finite-field DH of one RFC 7919 group (made once)."""
    generator, prime = RFC7919_GROUPS[group - GroupName.ffdhe2048]
    return _crypto.FFDHGroup(prime, generator)


class _RecordSocket(RecordSocket):  # type: ignore[misc]
    """tlslite's record framing over the in-memory socket, one slice per record.

    tlslite reads a record as three socket reads (1 byte, 4 bytes, the body) through two
    buffering layers; the connection layer above only ever queues whole, validated TLS
    records (never SSLv2), so the whole record is taken at once.
    """

    def ready(self) -> bool:
        """True if a whole record waits (or a header that :meth:`recv` refuses)."""
        buffered = self.sock
        inbox = buffered.socket.inbox
        if buffered._read_buffer:
            inbox[:0] = buffered._read_buffer
            buffered._read_buffer.clear()
        return len(inbox) >= 5 and len(inbox) >= 5 + ((inbox[3] << 8) | inbox[4])

    def recv(self) -> Generator[Any, None, None]:
        buffered = self.sock  # tlslite's BufferedSocket around the _MemorySocket
        inbox = buffered.socket.inbox
        while True:
            if buffered._read_buffer:  # read ahead by the BufferedSocket: give it back
                inbox[:0] = buffered._read_buffer
                buffered._read_buffer.clear()
            if len(inbox) >= 5:
                length = (inbox[3] << 8) | inbox[4]
                if length > self.recv_record_limit + 2048 or (
                        self.tls13record and length > self.recv_record_limit + 256):
                    raise TLSRecordOverflow()
                if len(inbox) >= 5 + length:
                    header = RecordHeader3().create((inbox[1], inbox[2]), inbox[0], length)
                    data = inbox[5:5 + length]
                    del inbox[:5 + length]
                    yield header, data
                    return
            yield 0  # WANT_READ

    def send(self, msg: Any, padding: int = 0) -> Generator[Any, None, None]:
        data = msg.write()
        version = self.version
        self.sock.send(bytes((msg.contentType, version[0], version[1], len(data) >> 8,
                              len(data) & 0xFF)) + data)  # never blocks: no "yield 1"
        yield from ()


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


class _RecordLayer(RecordLayer):  # type: ignore[misc]
    """tlslite's record layer whose encrypted records all go through aiotls's.

    Every time tlslite switches keys it assigns ``_readState``/``_writeState``; for the AEAD
    ciphers aiotls handles, the assignment installs a :class:`aiotls._record.Direction` in
    the connection's one :class:`aiotls._record.RecordLayer` (``records``), and from then on
    that direction seals and opens every record: tlslite's state object keeps only the
    cipher's name for its introspection, never a sequence number that is used.  Records
    that the connection already opened (post-handshake control records) arrive through
    :meth:`push_opened` as plaintext and are not decrypted again.
    """

    def __init__(self, sock: Any, records: FastRecordLayer) -> None:
        self.records = records
        self._opened: list[tuple[int, bytes]] = []
        super().__init__(sock)
        self._recordSocket = _RecordSocket(sock)

    def _install(self, state: Any, *, reading: bool) -> None:
        ctx = state.encContext
        if isinstance(ctx, _crypto.AEADCipher) and ctx.name in _record_mod.CIPHERS \
                and self._version >= (3, 3):
            self.records.install(reading=reading, cipher=ctx.name, key=ctx.key,
                                 iv=bytes(state.fixedNonce), tls13=self._is_tls13_plus())
        else:
            self.records.remove(reading=reading)

    @property
    def _readState(self) -> Any:
        return self.__dict__["_aiotls_read_state"]

    @_readState.setter
    def _readState(self, state: Any) -> None:
        self.__dict__["_aiotls_read_state"] = state
        self._install(state, reading=True)

    @property
    def _writeState(self) -> Any:
        return self.__dict__["_aiotls_write_state"]

    @_writeState.setter
    def _writeState(self, state: Any) -> None:
        self.__dict__["_aiotls_write_state"] = state
        self._install(state, reading=False)

    def push_opened(self, content_type: int, content: bytes) -> None:
        """A record the connection already decrypted; :meth:`recvRecord` hands it out next."""
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
        if self.records._write is None or content_type == ContentType.change_cipher_spec:
            yield from super().sendRecord(msg)
            return
        try:
            sealed = self.records.seal_record(content_type, msg.write())
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
            for result in self._recv_one_record():
                if result in (0, 1):
                    yield result
                else:
                    break
            header, parser = result
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

    def _recv_one_record(self) -> Generator[Any, None, None]:
        """The next record: one the connection opened already, one opened here with aiotls's
        record layer (with tlslite's checks and exceptions, in its order: the alerts follow
        from them), or -- no keys yet, or a legacy cipher -- tlslite's."""
        records = self.records
        if records._read is None:
            yield from super().recvRecord()
            return
        while True:
            # (a reader suspended here may be resumed for an opened record or a raw one)
            while not self._opened and not self._recordSocket.ready():
                yield 0  # WANT_READ
            if self._opened:
                content_type, content = self._opened.pop(0)
                version = (3, 4) if self._is_tls13_plus() else tuple(self._version)
                yield RecordHeader3().create(version, content_type, len(content)), \
                    Parser(bytearray(content))
                return
            result: Any = None
            for result in self._recordSocket.recv():
                if result in (0, 1):
                    yield result
                else:
                    break
            header, data = result
            record_type = header.type
            tls13 = self._is_tls13_plus()
            if tls13 and (record_type == ContentType.change_cipher_spec or (
                    record_type == ContentType.alert and len(data) < 3
                    and records._read.seq == 0)):
                # an unprotected CCS, or a plaintext alert from a peer that has no keys yet
                self.early_data_ok = False
                break
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
                    continue
                records._read.seq = seq + 1  # (used up, as in tlslite: the error is fatal)
                raise _RECORD_ERRORS.get(exc.alert, TLSInternalError)(str(exc)) from None
            del out[n:]
            data = out
            self.early_data_ok = False
            header = RecordHeader3().create((3, 4) if tls13 else header.version, record_type, n)
            break
        if len(data) > self.recv_record_limit:
            raise TLSRecordOverflow()
        yield header, Parser(data)

    def calcTLS1_3PendingState(self, cipherSuite: int, cl_traffic_secret: bytearray,
                               sr_traffic_secret: bytearray, implementations: Any) -> None:
        """Traffic keys and IVs from the traffic secrets (RFC 8446 7.3), without tlslite's Python HKDF."""
        prf = "sha384" if cipherSuite in CipherSuite.sha384PrfSuites else "sha256"
        key_length, _, cipher_func = self._getCipherSettings(cipherSuite)
        states = []
        for secret in (cl_traffic_secret, sr_traffic_secret):
            state = ConnectionState()
            state.macContext = None
            state.encContext = cipher_func(
                bytearray(_crypto.hkdf_expand_label(secret, b"key", b"", key_length, prf)),
                implementations)
            state.fixedNonce = bytearray(_crypto.hkdf_expand_label(secret, b"iv", b"", 12, prf))
            states.append(state)
        client, server = states
        if self.client:
            self._pendingWriteState, self._pendingReadState = client, server
        else:
            self._pendingWriteState, self._pendingReadState = server, client


class _KeyExchange:
    """tlslite's ``RawDHKeyExchange`` interface over :class:`aiotls._crypto.ECDHGroup`."""

    def __init__(self, group: int, version: tuple[int, int]) -> None:
        self.group = group
        self.version = version
        self._impl = _crypto.ECDHGroup(_FAST_GROUPS[group])

    def get_random_private_key(self) -> Any:
        return self._impl.generate()

    def calc_public_value(self, private: Any, point_format: str = "uncompressed") -> bytearray:
        return self._impl.public_bytes(private)

    def calc_shared_key(self, private: Any, peer_share: bytearray,
                        valid_point_formats: Any = None) -> bytearray:
        try:
            return self._impl.shared_secret(private, peer_share)
        except ValueError as exc:
            raise TLSIllegalParameterException(str(exc)) from None


class _FFKeyExchange:
    """tlslite's ``RawDHKeyExchange`` interface for the RFC 7919 groups (TLS 1.3 key
    shares), with the arithmetic in OpenSSL (tlslite's ``FFDHKeyExchange`` is pure Python)."""

    def __init__(self, group: int, version: tuple[int, int]) -> None:
        self.group = group
        self.version = version
        self._impl = _ffdh(group)

    def get_random_private_key(self) -> Any:
        return self._impl.generate()

    def calc_public_value(self, private: Any, point_format: str = "uncompressed") -> Any:
        if tuple(self.version) < (3, 4):
            return self._impl.public_value(private)
        return self._impl.public_bytes(private)

    def calc_shared_key(self, private: Any, peer_share: Any,
                        valid_point_formats: Any = None) -> bytearray:
        try:
            secret = self._impl.shared_secret(private, peer_share)
        except ValueError as exc:
            raise TLSIllegalParameterException(str(exc)) from None
        if tuple(self.version) < (3, 4):
            return _strip_zeros(secret)
        return secret


def _strip_zeros(secret: bytearray) -> bytearray:
    """A TLS 1.2 DH premaster secret: leading zero bytes stripped (RFC 5246 8.1.2)."""
    start = 0
    while start < len(secret) - 1 and not secret[start]:
        start += 1
    return secret[start:]


class _FastECDSAKey(Python_ECDSAKey):  # type: ignore[misc]
    """A tlslite ECDSA key whose signing and verification run in OpenSSL."""

    _aiotls_private: Any = None
    _aiotls_public: Any = None
    #: (signature, digest) of the last signature this key made.
    _aiotls_signed: tuple[bytes, bytes] | None = None

    def _sign(self, data: bytearray, hAlg: str) -> bytearray:
        signature = _crypto.ecdsa_sign_digest(self._aiotls_private, data)
        self._aiotls_signed = (signature, bytes(data))
        return bytearray(signature)

    def _hashAndSign(self, data: bytearray, hAlg: str) -> bytearray:
        signature = _crypto.ecdsa_sign(self._aiotls_private, data, hAlg)
        self._aiotls_signed = (signature, hashlib.new(hAlg, data).digest())
        return bytearray(signature)

    def _verify(self, signature: bytearray, hash_bytes: bytearray) -> bool:
        # tlslite verifies every signature it has just made (a guard against faulty
        # signing); the one this key made from OpenSSL a moment ago needs no second pass.
        if self._aiotls_signed == (bytes(signature), bytes(hash_bytes)):
            return True
        return _crypto.ecdsa_verify_digest(self._aiotls_public, signature, hash_bytes)


class _CurveOnly:
    """Stands in for the python-ecdsa key of a public-only _FastECDSAKey: tlslite reads
    nothing but ``public_key.curve`` (its size and order) from it."""

    __slots__ = ("curve",)

    def __init__(self, curve: Any) -> None:
        self.curve = curve


#: python-ecdsa's curve objects (what tlslite names and sizes curves by), by OpenSSL name.
_ECDSA_CURVES = {"secp256r1": NIST256p, "secp384r1": NIST384p, "secp521r1": NIST521p}


def _peer_ecdsa_key(curve_name: str, crypto_key: Any) -> _FastECDSAKey:
    """A tlslite ECDSA public key for a peer's certificate, built without python-ecdsa
    (whose point decoding in Python is most of tlslite's certificate parse)."""
    curve = _ECDSA_CURVES[curve_name]
    key = _FastECDSAKey.__new__(_FastECDSAKey)
    key.curve_name = curve.name
    key.key_type = "ecdsa"
    key.private_key = None
    key.public_key = _CurveOnly(curve)
    key._aiotls_public = crypto_key
    return key


class _PeerX509(X509):  # type: ignore[misc]
    """A peer's certificate as tlslite sees it, from OpenSSL's parse for NIST ECDSA keys.

    tlslite uses ``bytes``, ``certAlg`` and ``publicKey`` of a peer certificate; the other
    fields (serial number, names, signature algorithm) come from tlslite's own parse the
    first time they are read.  Other key types take tlslite's parse, and their public key
    is switched to OpenSSL's operations (every Certificate message from the peer, TLS 1.3
    client certificates included, is parsed through here).
    """

    publicKey: Any

    def parseBinary(self, cert_bytes: Any) -> Any:
        der = bytes(cert_bytes)
        try:
            _crypto.load_der_certificate(der)  # (remembered: the parses below reuse it)
        except ValueError as exc:
            # Not X.509 as OpenSSL reads it (an invalid version, bad DER...): tlslite's
            # lenient parser would take it, and the failure would surface later under
            # another name (a signature check, or internal_error).
            raise CertificateError(
                f"the peer's certificate could not be parsed: {exc}",
                cause="a malformed or non-X.509 certificate",
                hint="re-issue the peer's certificate",
                alert=AlertDescription.bad_certificate, code="certificate-malformed",
                verify_code=X509_V_ERR_CERT_REJECTED,
            ) from None
        found = _crypto.certificate_ec_key(der)
        if found is None:
            X509.parseBinary(self, cert_bytes)
            # the key verifies through OpenSSL all the same (RSA, EdDSA)
            _accelerate(self.publicKey, _crypto.certificate_public_key(der), private=False)
            return self
        self.bytes = bytearray(cert_bytes)
        self.certAlg = "ecdsa"
        self.publicKey = _peer_ecdsa_key(*found)
        for name in _PEER_X509_LAZY:
            self.__dict__.pop(name, None)
        return self


def _lazy_x509_field(name: str) -> property:
    def get(self: Any) -> Any:
        fields = self.__dict__
        if name not in fields:
            full = X509()
            full.parseBinary(self.bytes)
            for field in _PEER_X509_LAZY:
                fields.setdefault(field, getattr(full, field))
        return fields[name]

    def set_(self: Any, value: Any) -> None:
        self.__dict__[name] = value

    return property(get, set_)


_PEER_X509_LAZY = ("serial_number", "subject_public_key", "subject", "issuer", "sigalg")
for _field in _PEER_X509_LAZY:
    setattr(_PeerX509, _field, _lazy_x509_field(_field))


class _FastEdDSAKey(Python_EdDSAKey):  # type: ignore[misc]
    """A tlslite EdDSA key whose signing and verification run in OpenSSL."""

    _aiotls_private: Any = None
    _aiotls_public: Any = None

    def _hashAndSign(self, data: bytearray) -> bytearray:
        return bytearray(_crypto.eddsa_sign(self._aiotls_private, data))

    def _hashAndVerify(self, signature: bytearray, data: bytearray) -> bool:
        return _crypto.eddsa_verify(self._aiotls_public, signature, data)


_RSA_HASHES = _crypto.hash_names()


class _FastRSAKey(Python_RSAKey):  # type: ignore[misc]
    """A tlslite RSA key whose signing and verification run in OpenSSL."""

    _aiotls_private: Any = None
    _aiotls_public: Any = None

    def sign(self, bytes: bytearray, padding: str = "pkcs1", hashAlg: str | None = None,
             saltLen: int | None = None) -> bytearray:
        mode = padding.lower()
        if self._aiotls_private is not None and hashAlg in _RSA_HASHES and mode in ("pkcs1", "pss"):
            return bytearray(_crypto.rsa_sign_digest(self._aiotls_private, bytes, mode, hashAlg,
                                                     saltLen))
        return super().sign(bytes, padding, hashAlg, saltLen)  # type: ignore[no-any-return]

    def verify(self, sigBytes: bytearray, bytes: bytearray, padding: str = "pkcs1",
               hashAlg: str | None = None, saltLen: int | None = None) -> bool:
        mode = padding.lower()
        if mode == "pkcs1" and self.key_type == "rsa-pss":
            return False  # an RSA-PSS-only key never verifies PKCS#1 v1.5 signatures
        digest, name = bytes, hashAlg
        if mode == "pkcs1" and name is None:
            digest, name = _strip_digest_info(bytes)  # TLS 1.2 passes DigestInfo-prefixed
        if (self._aiotls_public is not None and name in _RSA_HASHES and name != "sha1"
                and mode in ("pkcs1", "pss")):
            return _crypto.rsa_verify_digest(self._aiotls_public, sigBytes, digest, mode,
                                             name, saltLen)
        return super().verify(sigBytes, bytes, padding, hashAlg, saltLen)  # type: ignore[no-any-return]


def _strip_digest_info(data: bytearray) -> tuple[bytearray, str | None]:
    for name, prefix in Python_RSAKey._pkcs1Prefixes.items():
        if data.startswith(prefix) and name in _RSA_HASHES:
            return data[len(prefix):], name
    return data, None


def _accelerate(key: Any, crypto_key: Any, *, private: bool) -> Any:
    """Switch one tlslite key object to OpenSSL-backed operations (per object, not global).

    (Only the cryptographic operations change: tlslite still builds and checks the messages.)
    """
    if crypto_key is None:
        return key
    if type(key) is Python_ECDSAKey and _crypto.is_ec_key(crypto_key):
        key.__class__ = _FastECDSAKey
    elif type(key) is Python_EdDSAKey and _crypto.is_eddsa_key(crypto_key):
        key.__class__ = _FastEdDSAKey
    elif type(key) is Python_RSAKey and _crypto.is_rsa_key(crypto_key):
        key.__class__ = _FastRSAKey
    else:
        return key
    key._aiotls_private = crypto_key if private else None
    key._aiotls_public = crypto_key.public_key() if private else crypto_key
    return key


class _FastAECDH(AECDHKeyExchange):  # type: ignore[misc]
    """TLS 1.2 ECDHE with the (EC)DH arithmetic in OpenSSL, for uncompressed points.

    Sits between tlslite's signing layer and its ECDH layer in the MRO of
    :class:`_FastECDHE`, so tlslite still builds, signs and checks the messages.
    """

    def _uncompressed_only(self, group: int) -> bool:
        if _FAST_GROUPS.get(group) in ("x25519", "x448"):
            return True  # point formats do not apply to these (RFC 8422 5.1.2)
        ext_c = self.clientHello.getExtension(ExtensionType.ec_point_formats)
        ext_s = self.serverHello.getExtension(ExtensionType.ec_point_formats)
        if not (ext_c and ext_s):
            return True
        common = [f for f in ext_c.formats if f in ext_s.formats]
        return bool(common) and common[0] == ECPointFormat.uncompressed

    def makeServerKeyExchange(self, sigHash: Any = None) -> Any:
        client_groups = self.clientHello.getExtension(ExtensionType.supported_groups)
        groups = client_groups.groups if client_groups and client_groups.groups \
            else [self.defaultCurve]
        group = getFirstMatching(groups, self.acceptedCurves)
        if group not in _FAST_GROUPS or not self._uncompressed_only(group):
            return super().makeServerKeyExchange(sigHash)
        self.group_id = group
        impl = _crypto.ECDHGroup(_FAST_GROUPS[group])
        self.ecdhXs = impl.generate()
        ske = ServerKeyExchange(self.cipherSuite, self.serverHello.server_version)
        ske.createECDH(ECCurveType.named_curve, named_curve=group,
                       point=impl.public_bytes(self.ecdhXs))
        return ske

    def processClientKeyExchange(self, clientKeyExchange: Any) -> Any:
        if self.group_id not in _FAST_GROUPS or not hasattr(self.ecdhXs, "exchange"):
            return super().processClientKeyExchange(clientKeyExchange)
        share = clientKeyExchange.ecdh_Yc
        if not share:
            raise TLSDecodeError("No key share")
        try:
            return _crypto.ECDHGroup(_FAST_GROUPS[self.group_id]).shared_secret(self.ecdhXs, share)
        except ValueError as exc:
            raise TLSIllegalParameterException(str(exc)) from None

    def processServerKeyExchange(self, srvPublicKey: Any, serverKeyExchange: Any) -> Any:
        group = serverKeyExchange.named_curve
        if serverKeyExchange.curve_type != ECCurveType.named_curve \
                or group not in self.acceptedCurves:
            raise TLSIllegalParameterException("Server picked curve we didn't advertise")
        if group not in _FAST_GROUPS or not self._uncompressed_only(group):
            return super().processServerKeyExchange(srvPublicKey, serverKeyExchange)
        if not serverKeyExchange.ecdh_Ys:
            raise TLSDecodeError("Empty server key share")
        impl = _crypto.ECDHGroup(_FAST_GROUPS[group])
        private = impl.generate()
        self.ecdhYc = impl.public_bytes(private)
        try:
            return impl.shared_secret(private, serverKeyExchange.ecdh_Ys)
        except ValueError as exc:
            raise TLSIllegalParameterException(str(exc)) from None


class _FastECDHE(ECDHE_RSAKeyExchange, _FastAECDH):  # type: ignore[misc]
    """ECDHE_RSAKeyExchange (RSA or ECDSA signed) with :class:`_FastAECDH` underneath."""


class _FastADH(ADHKeyExchange):  # type: ignore[misc]
    """TLS 1.2 DHE restricted to the RFC 7919 groups, with the arithmetic in OpenSSL.

    Server: the first of the client's supported_groups that we enable (RFC 7919 3); a
    client that lists no FFDHE group gets our first one (RFC 7919 4 allows any group then;
    tlslite would use a non-RFC 7919 default).  Client: the server's (p, g) must be one of
    the groups we offered, or the handshake ends with insufficient_security (tlslite
    accepts any prime of 1024 bits or more).
    """

    group_id: int | None = None
    refused_parameters = False

    def makeServerKeyExchange(self, sigHash: Any = None) -> Any:
        ours = list(self.dhGroups or [])
        ext = self.clientHello.getExtension(ExtensionType.supported_groups)
        offered = ext.groups if ext is not None and ext.groups else []
        group = getFirstMatching(offered, ours)
        if group is None:
            if any(g in range(256, 512) for g in offered) or not ours:
                raise TLSInsufficientSecurity("no common FFDHE group")
            group = ours[0]
        impl = _ffdh(group)
        self.group_id = group
        self.dh_g, self.dh_p = RFC7919_GROUPS[group - GroupName.ffdhe2048]
        self.dh_Xs = impl.generate()
        ske = ServerKeyExchange(self.cipherSuite, self.serverHello.server_version)
        ske.createDH(self.dh_p, self.dh_g, impl.public_value(self.dh_Xs))
        return ske

    def processClientKeyExchange(self, clientKeyExchange: Any) -> Any:
        if self.group_id is None:
            raise TLSInternalError("no FFDHE group selected")
        try:
            return _strip_zeros(_ffdh(self.group_id).shared_secret(self.dh_Xs,
                                                                   clientKeyExchange.dh_Yc))
        except ValueError as exc:
            raise TLSIllegalParameterException(str(exc)) from None

    def processServerKeyExchange(self, srvPublicKey: Any, serverKeyExchange: Any) -> Any:
        ext = self.clientHello.getExtension(ExtensionType.supported_groups)
        offered = [g for g in (ext.groups if ext is not None else []) if g in _FF_GROUPS]
        params = (serverKeyExchange.dh_g, serverKeyExchange.dh_p)
        group = next((g for g in offered
                      if RFC7919_GROUPS[g - GroupName.ffdhe2048] == params), None)
        if group is None:
            self.refused_parameters = True
            raise TLSInsufficientSecurity(
                "the server's DH parameters are not one of the RFC 7919 groups we offered")
        impl = _ffdh(group)
        self.group_id = group
        private = impl.generate()
        self.dh_Yc = impl.public_value(private)
        try:
            return _strip_zeros(impl.shared_secret(private, serverKeyExchange.dh_Ys))
        except ValueError as exc:
            raise TLSIllegalParameterException(str(exc)) from None


class _FastDHE(DHE_RSAKeyExchange, _FastADH):  # type: ignore[misc]
    """DHE_RSAKeyExchange (RSA signed) with :class:`_FastADH` underneath."""


def _accelerate_kex(key_exchange: Any) -> None:
    if type(key_exchange) is ECDHE_RSAKeyExchange:
        key_exchange.__class__ = _FastECDHE
    elif type(key_exchange) is DHE_RSAKeyExchange:
        key_exchange.__class__ = _FastDHE


# --- verification policy ---------------------------------------------------------------------


@dataclass(slots=True)
class _Policy:
    """What to verify about the peer's certificate on one connection."""

    trust: _verify.TrustStore
    peer_role: str  # "server" or "client": the role of the certificate being checked
    hostname: str | None
    mode: int
    now: Callable[[], datetime.datetime]
    #: the path the last verification built, leaf to trust anchor (serialised only when
    #: asked for: get_verified_chain() is rare, handshakes are not)
    path: list[Any] = field(default_factory=list)

    def verify(self, chain: list[bytes]) -> None:
        if not chain and self.mode != _CERT_REQUIRED:
            return
        self.path = _verify.verify_chain(chain, trust=self.trust, role=self.peer_role,
                                         hostname=self.hostname, now=self.now())


def _chain_der(chain: Any) -> list[bytes]:
    if chain is None:
        return []
    return [bytes(c.bytes) for c in chain.x509List]


# --- tlslite's handshake code, run with faster helpers ---------------------------------------
#
# tlslite's TLS 1.3 key schedule goes through pure-Python HKDF/HMAC helpers (a Writer, a
# Python ``hmac`` object and two bytearray copies per HKDF step, ~27 steps per handshake),
# it filters the cipher-suite tables from scratch several times per handshake, and it
# looks enum names up with a scan of every class attribute.  Those helpers are module
# globals, so there is no per-connection seam for them -- and patching tlslite's modules
# would change it for every other user in the process.  Instead aiotls runs tlslite's own
# handshake methods (the same code objects) with a *copy* of their module namespace in
# which those names point to equivalent faster versions, and installs them on a class of
# its own.  tlslite itself is not modified; tests check that each rebound method still
# exists with the expected globals, and cross-check the helpers against tlslite's.


def _rebind(func: Any, namespace: dict[str, Any]) -> Any:
    """``func`` (a function, staticmethod or classmethod) with ``namespace`` as its globals."""
    wrapper: Any = None
    if isinstance(func, staticmethod | classmethod):
        wrapper, func = type(func), func.__func__
    new = types.FunctionType(func.__code__, namespace, func.__name__, func.__defaults__,
                             func.__closure__)
    new.__kwdefaults__ = func.__kwdefaults__
    new.__qualname__ = func.__qualname__
    new.__doc__ = func.__doc__
    return wrapper(new) if wrapper is not None else new


def _fast_hmac(k: Any, b: Any, algorithm: str) -> bytearray:
    """tlslite's ``secureHMAC``, without its per-call Python ``hmac`` object."""
    return bytearray(_crypto.hmac_digest(k, b, algorithm))


def _fast_hkdf_expand_label(secret: Any, label: Any, hash_value: Any, length: int,
                            algorithm: str) -> bytearray:
    """tlslite's ``HKDF_expand_label`` (label without the ``tls13 `` prefix)."""
    return bytearray(_crypto.hkdf_expand_label(secret, bytes(label), hash_value, length,
                                               algorithm))


_EMPTY_HASH = {name: hashlib.new(name).digest() for name in ("sha256", "sha384")}
_HASH_SIZE = {name: len(digest) for name, digest in _EMPTY_HASH.items()}


def _fast_derive_secret(secret: Any, label: Any, handshake_hashes: Any,
                        algorithm: str) -> bytearray:
    """tlslite's ``derive_secret`` (RFC 8446 7.1 Derive-Secret)."""
    if handshake_hashes is None:
        transcript = _EMPTY_HASH[algorithm]
    else:
        transcript = handshake_hashes.digest(algorithm)
    return _fast_hkdf_expand_label(secret, label, transcript, _HASH_SIZE[algorithm], algorithm)


class _TranscriptHashes(HandshakeHashes):  # type: ignore[misc]
    """tlslite's HandshakeHashes computing only the digests that are asked for.

    tlslite feeds every handshake message to six running hashes (MD5 to SHA-512); a TLS
    1.3 handshake reads one of them.  Here the transcript is kept (tlslite keeps it too)
    and a hash is started, and caught up, the first time its digest is wanted.
    """

    def __init__(self) -> None:
        self._handshake_buffer = bytearray()
        self._running: dict[str, list[Any]] = {}  # name -> [hash object, bytes fed]

    def update(self, data: Any) -> None:
        self._handshake_buffer += data

    def _caught_up(self, name: str) -> Any:
        buffer = self._handshake_buffer
        entry = self._running.get(name)
        if entry is None:
            entry = self._running[name] = [hashlib.new(name), 0]
        if entry[1] < len(buffer):
            entry[0].update(memoryview(buffer)[entry[1]:])
            entry[1] = len(buffer)
        return entry[0]

    # tlslite's own methods (digestSSL) read these attributes
    _handshakeMD5 = property(lambda self: self._caught_up("md5"))
    _handshakeSHA = property(lambda self: self._caught_up("sha1"))
    _handshakeSHA224 = property(lambda self: self._caught_up("sha224"))
    _handshakeSHA256 = property(lambda self: self._caught_up("sha256"))
    _handshakeSHA384 = property(lambda self: self._caught_up("sha384"))
    _handshakeSHA512 = property(lambda self: self._caught_up("sha512"))

    def digest(self, digest: str | None = None) -> Any:
        if digest is None:
            return self._caught_up("md5").digest() + self._caught_up("sha1").digest()
        if digest == "intrinsic":
            return self._handshake_buffer
        if digest not in _TRANSCRIPT_HASHES:
            raise ValueError("Unknown digest name")
        return self._caught_up(digest).digest()

    def copy(self) -> _TranscriptHashes:
        other = _TranscriptHashes()
        other._handshake_buffer = bytearray(self._handshake_buffer)
        other._running = {name: [h.copy(), fed] for name, (h, fed) in self._running.items()}
        return other


_TRANSCRIPT_HASHES = frozenset({"md5", "sha1", "sha224", "sha256", "sha384", "sha512"})


class _CachedSuites(CipherSuite):  # type: ignore[misc]
    """tlslite's suite tables, with the per-settings filtering remembered."""

    _cache: dict[tuple[Any, ...], list[int]] = {}

    # tlslite only tests membership in these (a ClientHello tests every offered suite)
    ecdhAllSuites = frozenset(CipherSuite.ecdhAllSuites)
    dhAllSuites = frozenset(CipherSuite.dhAllSuites)

    @staticmethod
    def _filterSuites(suites: list[int], settings: Any, version: Any = None) -> list[int]:
        key = (tuple(suites), tuple(settings.macNames), tuple(settings.cipherNames),
               tuple(settings.keyExchangeNames), tuple(version or settings.maxVersion))
        cache = _CachedSuites._cache
        found = cache.get(key)
        if found is None:
            if len(cache) > 512:  # settings are per context: stays tiny unless abused
                cache.clear()
            found = cache[key] = CipherSuite._filterSuites(suites, settings, version)
        return list(found)


def _cached_enum(base: Any) -> Any:
    """A subclass of a tlslite enum whose ``toRepr``/``toStr`` are remembered."""
    reprs: dict[Any, Any] = {}
    base_repr = base.toRepr.__func__
    base_str = base.toStr.__func__

    def to_repr(cls: Any, value: Any, blacklist: Any = None) -> Any:
        if blacklist is not None:
            return base_repr(base, value, blacklist)
        try:
            return reprs[value]
        except KeyError:
            pass
        except TypeError:  # unhashable: not a value any table holds
            return base_repr(base, value)
        found = reprs[value] = base_repr(base, value)
        return found

    def to_str(cls: Any, value: Any, blacklist: Any = None) -> Any:
        if blacklist is not None:
            return base_str(base, value, blacklist)
        found = to_repr(cls, value)
        return found if found is not None else f"{value}"

    return type(base.__name__, (base,), {"toRepr": classmethod(to_repr),
                                         "toStr": classmethod(to_str)})


@functools.lru_cache(maxsize=1024)
def _valid_hostname(name: str | bytes) -> bool:
    return bool(_tl_is_valid_hostname(name))


def _fast_is_valid_hostname(hostname: Any) -> bool:
    """tlslite's ``is_valid_hostname`` (a regular expression per label, ~10 us), remembered
    per name: it runs on every client connection and every SNI a server receives.  The
    cache is bounded, so names a peer makes up cannot grow it."""
    return _valid_hostname(hostname if isinstance(hostname, str) else bytes(hostname))


_FAST_NAMES: dict[str, Any] = {
    "is_valid_hostname": _fast_is_valid_hostname,
    "secureHMAC": _fast_hmac,
    "HKDF_expand_label": _fast_hkdf_expand_label,
    "derive_secret": _fast_derive_secret,
    "CipherSuite": _CachedSuites,
    "HandshakeHashes": _TranscriptHashes,
    "SignatureScheme": _cached_enum(_tl_constants.SignatureScheme),
    "HashAlgorithm": _cached_enum(_tl_constants.HashAlgorithm),
    "GroupName": _cached_enum(_tl_constants.GroupName),
    # Not a speed-up: RFC 8446 4.2.7 has servers ignore the groups they do not support, but
    # tlslite refused (illegal_parameter) a TLS 1.3-only ClientHello that also lists pre-1.3
    # groups (secp160r1, ...), as scanners send.  (Only its ClientHello checks read it.)
    "TLS_1_3_FORBIDDEN_GROUPS": frozenset(),
}


def _namespace(module: Any, **extra: Any) -> dict[str, Any]:
    namespace = dict(vars(module))
    namespace.update({k: v for k, v in _FAST_NAMES.items() if k in namespace}, **extra)
    return namespace


class _QuickFieldMixin:
    """Extension classes with ``CustomNameExtension.__setattr__`` minus its cost.

    tlslite's version calls ``hasattr(self, '_field_name')``, which raises (and formats
    the message of) an AttributeError for every attribute set before that field exists:
    ~200 exceptions per handshake, 10-20 us per extension object.  This one reads the
    instance dict instead, with the same outcome for every attribute.
    """

    __slots__ = ()

    def __setattr__(self, name: str, value: Any) -> None:
        if name == self.__dict__.get("_field_name", _NO_FIELD):
            self.__dict__["_internal_value"] = value
        else:
            object.__setattr__(self, name, value)


_NO_FIELD = object()

def _quick_extension(cls: Any) -> Any:
    """A same-named subclass of a field-name extension class without the slow setattr.

    Where the field's name can be learnt (a bare instance sets it), the field becomes a
    property and every other attribute is set by ``object.__setattr__`` -- no Python call
    at all; otherwise :class:`_QuickFieldMixin` does the same lookup in Python.
    """
    attrs: dict[str, Any] = {"__module__": cls.__module__}
    try:
        field = cls().__dict__.get("_field_name")
    except Exception:  # (abstract bases want arguments: they keep the mixin)
        field = None
    if isinstance(field, str) and not any(field in vars(k) for k in cls.__mro__):
        attrs["__setattr__"] = object.__setattr__
        attrs[field] = property(lambda self: self._internal_value,
                                lambda self, value: object.__setattr__(
                                    self, "_internal_value", value))
    if cls.write is _tl_extensions.TLSExtension.write and cls.extData in _GENERIC_EXT_DATA:
        attrs["write"] = _remembered_write
    return type(cls.__name__, (_QuickFieldMixin, cls), attrs)


#: tlslite's generic payload encoders: a function of the value only (and of the class's
#: constant element and length sizes).
_GENERIC_EXT_DATA = (_tl_extensions.VarListExtension.extData,
                     _tl_extensions.VarSeqListExtension.extData,
                     _tl_extensions.IntExtension.extData)

#: Encodings by (class, extension type, value): a client writes the same lists (signature
#: algorithms, groups, versions...) in every ClientHello.  Bounded: emptied when full.
_WRITTEN: dict[tuple[Any, ...], bytes] = {}


def _remembered_write(self: Any) -> bytearray:
    """``TLSExtension.write`` for the generic list and integer extensions, remembered per
    value (the encoding is a function of the class, the type and the value alone)."""
    value = self._internal_value
    try:
        key = (type(self), self.extType,
               tuple(value) if isinstance(value, list) else value)
        found = _WRITTEN.get(key)
    except TypeError:  # (an unhashable value: not remembered)
        return _tl_extensions.TLSExtension.write(self)  # type: ignore[no-any-return]
    if found is None:
        found = bytes(_tl_extensions.TLSExtension.write(self))  # (raises as tlslite does)
        if len(_WRITTEN) >= 256:
            _WRITTEN.clear()
        _WRITTEN[key] = found
    return bytearray(found)


#: Same-named subclasses of tlslite's field-name extension classes (see _quick_extension).
_QUICK_EXTENSIONS: dict[str, Any] = {
    name: _quick_extension(cls)
    for name, cls in vars(_tl_extensions).items()
    if isinstance(cls, type) and issubclass(cls, _tl_extensions.CustomNameExtension)
}
_QUICK_BY_ORIGINAL = {getattr(_tl_extensions, name): quick
                      for name, quick in _QUICK_EXTENSIONS.items()}

class _NotQuick(Exception):
    """The quick extension parser hands this payload to tlslite's own parser."""


def _payload_list(data: Any, start: int, end: int, elem: int, length_length: int) -> Any:
    """The body of ``Parser.getVarList`` over ``data[start:end]``, which it must fill."""
    if end - start < length_length:
        raise _NotQuick
    if length_length == 2:
        count = (data[start] << 8) | data[start + 1]
    else:
        count = int.from_bytes(data[start:start + length_length], "big")
    start += length_length
    if count != end - start or count % elem:
        raise _NotQuick
    if elem == 1:
        return list(data[start:end])
    if elem == 2:
        unpack = _UNPACK16.get(count)
        if unpack is None:
            unpack = struct.Struct(f">{count // 2}H").unpack_from
            if len(_UNPACK16) < 256:
                _UNPACK16[count] = unpack
        return list(unpack(data, start))
    return [int.from_bytes(data[i:i + elem], "big") for i in range(start, end, elem)]


#: Big-endian 16-bit list decoders by byte count (lists of groups, versions, algorithms).
_UNPACK16: dict[int, Any] = {}


def _var_list(proto: dict[str, Any], data: Any, start: int, end: int) -> Any:
    if start == end:
        return None
    return _payload_list(data, start, end, proto["_elemLength"], proto["_lengthLength"])


def _var_seq_list(proto: dict[str, Any], data: Any, start: int, end: int) -> Any:
    if start == end:
        return None
    if proto["_elemLength"] != 1 or proto["_elemNum"] != 2:
        raise _NotQuick
    pairs = _payload_list(data, start, end, 2, proto["_lengthLength"])
    return [(pair >> 8, pair & 0xFF) for pair in pairs]


def _int_value(proto: dict[str, Any], data: Any, start: int, end: int) -> Any:
    if start == end:
        return None
    if end - start != proto["_elem_length"]:
        raise _NotQuick
    return int.from_bytes(data[start:end], "big")


def _u16(data: bytes | bytearray, i: int) -> int:
    return (data[i] << 8) | data[i + 1]


def _var_bytes16(data: Any, i: int, end: int) -> tuple[bytearray, int]:
    """A 2-byte-length-prefixed byte string at ``i`` that must end by ``end``."""
    if i + 2 > end:
        raise _NotQuick
    stop = i + 2 + _u16(data, i)
    if stop > end:
        raise _NotQuick
    return bytearray(data[i + 2:stop]), stop


def _list16(data: Any, start: int, end: int) -> int:
    """Start of a 2-byte-length-prefixed list that must fill ``data[start:end]`` exactly."""
    if end - start < 2 or _u16(data, start) != end - start - 2:
        raise _NotQuick
    return start + 2


def _key_share_entry(data: Any, i: int, end: int) -> tuple[Any, int]:
    if i + 2 > end:
        raise _NotQuick
    key, stop = _var_bytes16(data, i + 2, end)
    entry = _tl_extensions.KeyShareEntry.__new__(_tl_extensions.KeyShareEntry)
    entry.__dict__.update(group=_u16(data, i), key_exchange=key, private=None)
    return entry, stop


def _sni_attrs(data: Any, start: int, end: int) -> dict[str, Any]:
    if start == end:
        return {}
    names = []
    i = _list16(data, start, end)
    while i < end:
        name_type = data[i]
        name, i = _var_bytes16(data, i + 1, end)
        names.append(_tl_extensions.SNIExtension.ServerName(name_type, name))
    return {"serverNames": names}


def _client_key_share_attrs(data: Any, start: int, end: int) -> dict[str, Any]:
    if start == end:
        return {"client_shares": None}
    shares = []
    i = _list16(data, start, end)
    while i < end:
        entry, i = _key_share_entry(data, i, end)
        shares.append(entry)
    return {"client_shares": shares}


def _server_key_share_attrs(data: Any, start: int, end: int) -> dict[str, Any]:
    if start == end:
        return {"server_share": None}
    entry, stop = _key_share_entry(data, start, end)
    if stop != end:
        raise _NotQuick
    return {"server_share": entry}


def _pre_shared_key_attrs(data: Any, start: int, end: int) -> dict[str, Any]:
    if start == end:
        return {"identities": None, "binders": None}
    if end - start < 2:
        raise _NotQuick
    stop = start + 2 + _u16(data, start)
    if stop > end:
        raise _NotQuick
    identities = []
    i = start + 2
    while i < stop:
        identity, i = _var_bytes16(data, i, stop)
        if i + 4 > stop:
            raise _NotQuick
        entry = _tl_extensions.PskIdentity.__new__(_tl_extensions.PskIdentity)
        entry.__dict__.update(identity=identity,
                              obfuscated_ticket_age=int.from_bytes(data[i:i + 4], "big"))
        identities.append(entry)
        i += 4
    binders = []
    i = _list16(data, stop, end)
    while i < end:
        stop = i + 1 + data[i]
        if stop > end:
            raise _NotQuick
        binders.append(bytearray(data[i + 1:stop]))
        i = stop
    return {"identities": identities, "binders": binders}


def _session_ticket_attrs(data: Any, start: int, end: int) -> dict[str, Any]:
    return {"ticket": bytearray(data[start:end])}


def _srv_supported_versions_attrs(data: Any, start: int, end: int) -> dict[str, Any]:
    if end - start != 2:
        raise _NotQuick
    return {"version": (data[start], data[start + 1])}


#: Payload parsers for the other extensions of a resumed handshake's hellos, by class:
#: each returns the attributes tlslite's ``parse`` would set on a new object of the class,
#: or raises _NotQuick for anything irregular (tlslite then parses it, and raises).
_OBJECT_PAYLOADS: dict[Any, Callable[[Any, int, int], dict[str, Any]]] = {
    _tl_extensions.SNIExtension: _sni_attrs,
    _tl_extensions.ClientKeyShareExtension: _client_key_share_attrs,
    _tl_extensions.ServerKeyShareExtension: _server_key_share_attrs,
    _tl_extensions.PreSharedKeyExtension: _pre_shared_key_attrs,
    _tl_extensions.SessionTicketExtension: _session_ticket_attrs,
    _tl_extensions.SrvSupportedVersionsExtension: _srv_supported_versions_attrs,
}


#: Payload parsers of tlslite's generic extension shapes, by the method they stand for:
#: each returns the ``_internal_value`` tlslite's ``parse`` would set, or raises _NotQuick
#: where tlslite would raise (or might do anything else), so tlslite parses it instead.
_QUICK_PAYLOADS = {
    _tl_extensions.VarListExtension.parse: _var_list,
    _tl_extensions.VarSeqListExtension.parse: _var_seq_list,
    _tl_extensions.IntExtension.parse: _int_value,
}


def _quick_parser(cls: Any) -> Any:
    """``(prototype attributes, payload parser)`` for an extension class whose ``parse`` is
    one of tlslite's generic ones, else ``None``."""
    parse = getattr(cls, "parse", None)
    payload = _QUICK_PAYLOADS.get(parse)
    attrs = _OBJECT_PAYLOADS.get(cls)
    if attrs is not None and parse is vars(cls).get("parse"):
        payload = _object_payload(attrs)
    if payload is None:
        return None
    try:
        proto = dict(vars(cls()))
    except TypeError:  # (abstract bases want arguments)
        return None
    if set(proto) - _PROTO_FIELDS or not isinstance(proto.get("_extData"), bytearray) \
            or any(proto.get(name) is not None for name in _OBJECT_FIELDS):
        return None  # an attribute this copy would not reproduce faithfully
    return proto, payload


class _Attributes(dict):  # type: ignore[type-arg]
    """What an object payload parser found: attributes, not an ``_internal_value``."""

    __slots__ = ()


def _object_payload(attrs: Callable[[Any, int, int], dict[str, Any]]) -> Any:
    def payload(proto: dict[str, Any], data: Any, start: int, end: int) -> _Attributes:
        return _Attributes(attrs(data, start, end))

    return payload


#: The attributes tlslite's generic extension classes set in ``__init__`` (all immutable
#: but ``_extData``, which each copy gets fresh).
#: (The fields of the extensions in _OBJECT_PAYLOADS: None in a new object, set by their
#: parsers.)
_OBJECT_FIELDS = ("serverNames", "client_shares", "server_share", "identities", "binders",
                  "ticket", "version")
_PROTO_FIELDS = frozenset({
    "extType", "_extData", "serverType", "encExtType", "cert", "hrr", "_field_name",
    "_internal_value", "_item_enum", "_elemLength", "_elemNum", "_lengthLength",
    "_elem_length", *_OBJECT_FIELDS,
})


def _quick_ext_parse(self: Any, p: Any) -> Any:
    """tlslite's ``TLSExtension.parse`` for the generic list and integer extensions
    (most of a ClientHello), without a Parser, a constructor chain and a call per element.

    The result is an object of the same class with the same attributes as tlslite's; any
    other extension, and every payload tlslite would reject, goes to tlslite's parser.
    """
    data = p.bytes
    start = p.index
    end = start + 4
    if end > len(data):
        return _tl_ext_parse(self, p)
    ext_type = (data[start] << 8) | data[start + 1]
    end += (data[start + 2] << 8) | data[start + 3]
    if end > len(data):
        return _tl_ext_parse(self, p)
    flags = (type(self), bool(self.cert), bool(self.serverType), bool(self.hrr))
    table = _EXT_DISPATCH.get(flags)
    if table is None:
        table = _EXT_DISPATCH[flags] = _dispatch_table(self)
    found = table.get(ext_type)
    if found is None:
        # no parser of its own: tlslite keeps the raw payload on this object
        self.extType = ext_type
        self._extData = data[start + 4:end]
        p.index = end
        return self
    cls, quick = found
    if quick is None:
        return _tl_ext_parse(self, p)
    proto, payload = quick
    try:
        value = payload(proto, data, start + 4, end)
    except _NotQuick:
        return _tl_ext_parse(self, p)
    ext = cls.__new__(cls)
    attrs = ext.__dict__
    attrs.update(proto)
    attrs["_extData"] = bytearray()
    if type(value) is _Attributes:
        attrs.update(value)
    else:
        attrs["_internal_value"] = value
    p.index = end
    return ext


_tl_ext_parse = _tl_extensions.TLSExtension.parse

#: Per (extension class, certificate, server, HRR context): extension type -> (class that
#: parses it, its quick parser or None), in tlslite's order of precedence between tables.
_EXT_DISPATCH: dict[tuple[Any, ...], dict[int, tuple[Any, Any]]] = {}


def _dispatch_table(ext: Any) -> dict[int, tuple[Any, Any]]:
    """Which class parses each extension type in ``ext``'s context, as tlslite's
    ``TLSExtension.parse`` decides it: the certificate, server and HRR tables where those
    flags are set, then the universal one, the first table holding the type winning."""
    table: dict[int, tuple[Any, Any]] = {}
    for wanted, handlers in ((ext.cert, ext._certificateExtensions),
                             (ext.serverType, ext._serverExtensions),
                             (ext.hrr, ext._hrrExtensions),
                             (True, ext._universalExtensions)):
        if wanted:
            for ext_type, cls in handlers.items():
                table.setdefault(ext_type, (cls, _QUICK_PARSERS.get(cls)))
    return table

#: tlslite's TLSExtension whose parser builds the quick extension classes.
_QuickTLSExtension: Any = type("TLSExtension", (_tl_extensions.TLSExtension,), {
    "__module__": _tl_extensions.__name__,
    "parse": _quick_ext_parse,
    **{attr: {ext_type: _QUICK_BY_ORIGINAL.get(cls, cls) for ext_type, cls in table.items()}
       for attr, table in vars(_tl_extensions.TLSExtension).items()
       if attr.endswith("Extensions") and isinstance(table, dict)},
})

#: Prototype attributes and payload parser per extension class (see _quick_ext_parse).
_QUICK_PARSERS: dict[Any, Any] = {
    cls: parser
    for cls, parser in ((cls, _quick_parser(cls))
                        for attr, table in vars(_QuickTLSExtension).items()
                        if attr.endswith("Extensions") and isinstance(table, dict)
                        for cls in table.values())
    if parser is not None
}


def _code_objects(value: Any) -> Iterator[types.CodeType]:
    """The code of a function, staticmethod or classmethod and every code nested in it
    (none for anything else)."""
    func = value.__func__ if isinstance(value, staticmethod | classmethod) else value
    if not isinstance(func, types.FunctionType):
        return
    pending = [func.__code__]
    while pending:
        code = pending.pop()
        yield code
        pending.extend(c for c in code.co_consts if isinstance(c, types.CodeType))


def _uses(func: Any, names: Any) -> bool:
    """Whether the code of ``func`` refers to any of ``names`` as a global or attribute."""
    wanted = set(names)
    return any(wanted.intersection(code.co_names) for code in _code_objects(func))


def _quick_messages() -> dict[str, Any]:
    """Same-named subclasses of tlslite's message classes whose parsers and builders
    create the quick extension classes (every method that names an extension class
    runs with a namespace where those names are the quick ones)."""
    module = _tl_messages
    originals = {name: cls for name, cls in vars(module).items()
                 if isinstance(cls, type) and cls.__module__ == module.__name__}
    quick = {name: type(cls.__name__, (cls,), {"__module__": cls.__module__,
                                               "__qualname__": cls.__qualname__})
             for name, cls in originals.items()}
    replaced: dict[str, Any] = {name: cls for name, cls in _QUICK_EXTENSIONS.items()
                                if name in vars(module)}
    replaced["TLSExtension"] = _QuickTLSExtension
    replaced["X509"] = _PeerX509
    # Message classes that a method builds (CertificateEntry in Certificate) are the quick
    # ones too -- except the classes named in a super(Class, self) call, which must keep
    # naming the original class.
    replaced.update({name: cls for name, cls in quick.items()
                     if name not in _named_with_super(originals.values())})
    namespace = _namespace(module, **replaced)
    for name, cls in originals.items():
        seen: set[str] = set()
        for klass in cls.__mro__:
            if klass.__module__ != module.__name__:
                continue
            for attr, value in vars(klass).items():
                if attr in seen:
                    continue
                seen.add(attr)  # overridden further down the MRO: leave the base alone
                if isinstance(value, property):
                    parts = (value.fget, value.fset, value.fdel)
                    if any(_uses(part, replaced) for part in parts):
                        fget, fset, fdel = (_rebind(part, namespace) if part else None
                                            for part in parts)
                        setattr(quick[name], attr, property(fget, fset, fdel, value.__doc__))
                elif _uses(value, replaced):
                    setattr(quick[name], attr, _rebind(value, namespace))
    _keep_client_hello_bytes(quick["ClientHello"])
    for cls in quick.values():
        if issubclass(cls, module.HelloMessage):
            cls.getExtension = _get_extension  # type: ignore[attr-defined]
    return quick


def _get_extension(self: Any, extType: int) -> Any:
    """HelloMessage.getExtension without a list built per lookup (same results; it runs
    ~60 times per handshake)."""
    extensions = self.extensions
    if extensions is None:
        return None
    found = None
    for ext in extensions:
        if ext.extType == extType:
            if found is not None:
                raise TLSInternalError("Multiple extensions of the same type present")
            found = ext
    return found


def _named_with_super(classes: Any) -> set[str]:
    """Names used next to ``super`` in any method of ``classes`` (``super(Name, self)``)."""
    return {name for cls in classes for value in vars(cls).values()
            for code in _code_objects(value) if "super" in code.co_names
            for name in code.co_names}


def _ignore_ip_server_name(hello: Any) -> None:
    """A received ClientHello whose server_name is one IP literal: drop the extension
    (the transcript keeps the bytes as received) and keep the literal as
    ``_aiotls_ip_sni``.  RFC 6066 3 forbids IP literals in SNI, but clients and scanners
    (sslscan) send them; tlslite refused them with illegal_parameter, OpenSSL servers
    ignore them, and so does aiotls: the connection has no SNI."""
    ext = hello.getExtension(ExtensionType.server_name)
    names = getattr(ext, "hostNames", None) if ext is not None else None
    if not names or len(names) != 1 or len(ext.serverNames) != 1:
        return
    try:
        name = bytes(names[0]).decode("ascii")
    except UnicodeDecodeError:
        return
    if _verify.is_ip_address(name):
        hello.extensions = [e for e in hello.extensions if e is not ext]
        hello._aiotls_ip_sni = name


def _keep_client_hello_bytes(hello: Any) -> None:
    """A parsed ClientHello keeps its bytes as received, so the PSK binder is checked
    against them (RFC 8446 4.2.11.2) instead of a re-serialisation of the parsed
    message (tlslite writes the whole message again for that); our own ClientHello keeps
    the prefix serialised for its binders, so sending it appends just the binders."""
    parse = hello.parse
    psk_truncate = hello.psk_truncate

    def parse_keeping_bytes(self: Any, p: Any) -> Any:
        start = p.index - 1  # tlslite has read the handshake type byte
        result = parse(self, p)
        if not self.ssl2 and start >= 0 and p.bytes[start] == HandshakeType.client_hello:
            self._aiotls_wire = bytes(p.bytes[start:p.index])
            _ignore_ip_server_name(self)
        return result

    write = hello.write

    def truncate_received(self: Any) -> Any:
        wire = self.__dict__.get("_aiotls_wire")
        ext = self.extensions[-1] if self.extensions else None
        if not isinstance(ext, _tl_extensions.PreSharedKeyExtension):
            return psk_truncate(self)  # (raises as tlslite does)
        # the binders list, last in the message: 2-byte length, then 1-byte-length binders
        binders = 2 + sum(1 + len(binder) for binder in ext.binders)
        if wire is None:
            # Our own ClientHello, truncated to compute its binders, then sent: keep the
            # serialised prefix so that sending it adds just the binders (see
            # write_after_binders) instead of serialising the whole message again.
            full = write(self)
            self._aiotls_prefix = (full[:-binders], [len(b) for b in ext.binders])
            return full[:-binders]
        return bytearray(wire[:-binders])

    def write_after_binders(self: Any) -> Any:
        kept = self.__dict__.pop("_aiotls_prefix", None)  # (one use: then as tlslite)
        ext = self.extensions[-1] if self.extensions else None
        if kept is not None and isinstance(ext, _tl_extensions.PreSharedKeyExtension):
            prefix, lengths = kept
            if [len(binder) for binder in ext.binders] == lengths:
                binders = b"".join(bytes((len(b),)) + bytes(b) for b in ext.binders)
                return prefix + len(binders).to_bytes(2, "big") + binders
        return write(self)

    hello.parse = parse_keeping_bytes
    hello.psk_truncate = truncate_received
    hello.write = write_after_binders


class _FastHandshakeHelpers(HandshakeHelpers):  # type: ignore[misc]
    """tlslite's HandshakeHelpers (PSK binders) with the faster helpers."""

    @staticmethod
    def alignClientHelloPadding(clientHello: Any) -> None:
        # RFC 7685 padding works around 2013-era F5 middleboxes; OpenSSL does not pad by
        # default either, and computing it costs a full extra ClientHello serialisation.
        return


_HELPERS_NS = _namespace(_tl_handshakehelpers, HandshakeHelpers=_FastHandshakeHelpers)
for _name in ("_calc_binder", "calc_res_binder_psk", "update_binders", "verify_binder"):
    setattr(_FastHandshakeHelpers, _name, _rebind(vars(HandshakeHelpers)[_name], _HELPERS_NS))

#: Which tlslite methods run with the faster helpers: every method that uses them, except
#: SRP (not offered by aiotls), ``_getKEX`` (replaced outright below) and TLSRecordLayer's
#: ``__init__`` (its transcript object is replaced by ``_handshakeStart``).
_REBOUND_METHODS = {
    _tl_tlsconnection: (
        "_handshakeClientAsyncHelper", "_clientSendClientHello", "_clientGetServerHello",
        "_getPRFParams", "_clientTLS13Handshake", "_clientKeyExchange",
        "_handshakeServerAsyncHelper", "_derive_key_iv", "_tryDecrypt",
        "_serverTLS13Handshake", "_serverGetClientHello", "_server_select_certificate",
        "keyingMaterialExporter", "_sigHashesToList", "_serverCertKeyExchange",
        "_pickServerKeyExchangeSig", "_curveNamesToList", "_groupNamesToList",
        "request_post_handshake_auth",
    ),
    _tl_tlsrecordlayer: ("_handle_pha", "_handle_srv_pha", "_handshakeStart"),
}


#: Message classes are swapped only where messages are *made from the wire*: tlslite's
#: code elsewhere relies on isinstance() between message classes (CompressedCertificate
#: is a Certificate), which same-named subclasses in its namespace would break.  Parsed
#: messages are instances of subclasses of the originals, so those checks still hold.
_QUICK_MESSAGES = _quick_messages()
_MESSAGE_PARSING_METHODS = ("_getMsg",)


#: Signature algorithms aiotls's verifier (cryptography.x509.verification, Web PKI profile)
#: checks in certificates, issuers' signatures that is; Ed25519/Ed448 CAs are refused there,
#: so they are not advertised for certificates (Ed25519 *leaf* keys sign handshakes fine).
_CERT_SIGNATURE_SCHEMES = (
    SignatureScheme.ecdsa_secp256r1_sha256, SignatureScheme.ecdsa_secp384r1_sha384,
    SignatureScheme.ecdsa_secp521r1_sha512,
    SignatureScheme.rsa_pss_rsae_sha256, SignatureScheme.rsa_pss_rsae_sha384,
    SignatureScheme.rsa_pss_rsae_sha512,
    SignatureScheme.rsa_pkcs1_sha256, SignatureScheme.rsa_pkcs1_sha384,
    SignatureScheme.rsa_pkcs1_sha512,
)
#: RSA PKCS#1 v1.5: in TLS 1.3 only for signatures in certificates (RFC 8446 4.2.3), never
#: for CertificateVerify (tlslite's TLS 1.3 lists leave them out; the checks stay its own).
_RSA_PKCS1_SCHEMES = (SignatureScheme.rsa_pkcs1_sha256, SignatureScheme.rsa_pkcs1_sha384,
                      SignatureScheme.rsa_pkcs1_sha512)


def _advertise_certificate_signatures(message: Any, *, cert_extension: bool) -> None:
    """Add what aiotls verifies in certificates to a ClientHello's or a TLS 1.3
    CertificateRequest's signature algorithms.

    tlslite's TLS 1.3 lists hold only handshake (CertificateVerify) schemes, without
    rsa_pkcs1_*, so a TLS 1.3 offer told peers that an RSA CA's signatures cannot be
    checked: Java's server then refused a TLS 1.3-only client, and Java's client sent no
    certificate.  As OpenSSL does, rsa_pkcs1_* join ``signature_algorithms`` (RFC 8446
    4.2.3 allows them there for certificates; they are never accepted for CertificateVerify).

    ``cert_extension``: also send ``signature_algorithms_cert`` with exactly the certificate
    signatures the verifier checks (no Ed25519/Ed448 CA).  A CertificateRequest carries it:
    a client choosing among its certificates (Java keystores) then picks one aiotls can
    verify.  A ClientHello does not: RFC 8446 4.4.2.2 has a server send its chain anyway,
    but OpenSSL servers refuse the handshake instead, which would turn aiotls's precise
    "Ed25519 CA" verification error into a bare handshake_failure, and break CERT_NONE
    clients that never verify the chain at all.
    """
    sig_algs = message.getExtension(ExtensionType.signature_algorithms)
    if sig_algs is None or not sig_algs.sigalgs:
        return
    listed = list(sig_algs.sigalgs)
    sig_algs.sigalgs = listed + [s for s in _RSA_PKCS1_SCHEMES if s not in listed]
    if cert_extension and message.getExtension(ExtensionType.signature_algorithms_cert) is None:
        extensions = message.extensions
        extensions.insert(extensions.index(sig_algs) + 1,
                          _QUICK_EXTENSIONS["SignatureAlgorithmsCertExtension"]().create(
                              list(_CERT_SIGNATURE_SCHEMES)))


def _client_hello_to_send() -> type:
    quick = _QUICK_MESSAGES["ClientHello"]

    def create(self: Any, *args: Any, **kwargs: Any) -> Any:
        quick.create(self, *args, **kwargs)
        _advertise_certificate_signatures(self, cert_extension=False)
        return self

    return type(quick.__name__, (quick,), {"__module__": quick.__module__, "create": create})


#: The client's own ClientHello: the quick class, plus rsa_pkcs1_* for certificates (see
#: _advertise_certificate_signatures) added as it is created, before any PSK binder.
_ClientHelloToSend = _client_hello_to_send()


def _rebound_base() -> type:
    quick_ext: dict[str, Any] = {name: cls for name, cls in _QUICK_EXTENSIONS.items()
                                 if name in vars(_tl_tlsconnection)}
    namespaces = {
        # (the client's own ClientHello is built from a subclass of the quick class: tlslite's
        # TLSConnection never tests isinstance() against it)
        _tl_tlsconnection: _namespace(_tl_tlsconnection, HandshakeHelpers=_FastHandshakeHelpers,
                                      TLSExtension=_QuickTLSExtension,
                                      ClientHello=_ClientHelloToSend, **quick_ext),
        _tl_tlsrecordlayer: _namespace(_tl_tlsrecordlayer),
    }
    attrs: dict[str, Any] = {}
    for module, names in _REBOUND_METHODS.items():
        owner = (_tl_tlsconnection.TLSConnection if module is _tl_tlsconnection
                 else _tl_tlsrecordlayer.TLSRecordLayer)
        for name in names:
            attrs[name] = _rebind(vars(owner)[name], namespaces[module])
    parsing = _namespace(_tl_tlsrecordlayer, **{name: cls for name, cls in _QUICK_MESSAGES.items()
                                                 if name in vars(_tl_tlsrecordlayer)})
    for name in _MESSAGE_PARSING_METHODS:
        attrs[name] = _rebind(vars(_tl_tlsrecordlayer.TLSRecordLayer)[name], parsing)
    return type("_ReboundTLSConnection", (_TLSLiteBase,), attrs)


_ReboundTLSConnection: Any = _rebound_base()


class _TolerantServer(_ReboundTLSConnection):  # type: ignore[misc]
    """What a server lets pass in a ClientHello that tlslite refused or crashed on, where
    OpenSSL carries on (see also _ignore_ip_server_name, applied as the hello is parsed)."""

    #: An IP literal the client sent as SNI, ignored (see _ignore_ip_server_name).
    _aiotls_ip_sni: str | None = None

    def _serverGetClientHello(self, *args: Any, **kwargs: Any) -> Generator[Any, None, None]:
        for result in super()._serverGetClientHello(*args, **kwargs):
            if isinstance(result, tuple):
                self._aiotls_ip_sni = result[0].__dict__.get("_aiotls_ip_sni")
                # TACK (0xF300, an expired draft): tlslite answers a TLS 1.2 client offering
                # it with a NameError when the optional tackpy is absent.  OpenSSL ignores
                # the extension; so does aiotls (the transcript keeps the bytes as received).
                if result[0].getExtension(ExtensionType.tack) is not None:
                    result[0].tack = False
            yield result


class _TLSLiteConnection(_TolerantServer):
    """tlslite's TLSConnection with aiotls's per-connection seams."""

    _aiotls_policy: _Policy | None = None
    _aiotls_error: TLSError | None = None
    _aiotls_tickets: _crypto.TicketSealer | None = None
    _aiotls_now: Callable[[], datetime.datetime]
    _aiotls_sent_certificate = False
    _aiotls_pha_chain: list[bytes] | None = None
    _aiotls_defer_client_cert = False
    #: verify_data of the first Finished of the handshake, sent or received (tls-unique)
    _aiotls_first_finished: bytes | None = None
    #: server: the cipher suites the client offered
    _aiotls_client_suites: tuple[int, ...] = ()
    #: The handshake settings; client: the ALPN protocols offered, its key and chain if a
    #: certificate is loaded, and whether the server asked for one (CertificateRequest).
    _aiotls_settings: Any = None
    _aiotls_alpn: list[bytearray] | None = None
    _aiotls_credentials: tuple[Any, Any] | None = None  # (private key, chain)
    _aiotls_certificate_requested = False
    #: RFC 7627 required of TLS 1.2 peers (TLSContext.require_extended_master_secret).
    _aiotls_require_ems = True
    #: (id(settings), id(key), id(certs), version) -> (settings, key, certs, result)
    _aiotls_sig_lists: dict[tuple[int, int, int, Any], tuple[Any, Any, Any, list[Any]]] = {}

    @staticmethod
    def _sigHashesToList(settings: Any, privateKey: Any = None, certList: Any = None,
                         version: Any = (3, 3)) -> list[Any]:
        # The signature-scheme list depends only on these arguments, and they are per
        # context (settings are validated once per context and never changed): remembered.
        cache = _TLSLiteConnection._aiotls_sig_lists
        key = (id(settings), id(privateKey), id(certList), tuple(version))
        hit = cache.get(key)
        if hit is None or hit[0] is not settings or hit[1] is not privateKey \
                or hit[2] is not certList:
            if len(cache) > 256:
                cache.clear()
            result = _ReboundTLSConnection._sigHashesToList(settings, privateKey, certList,
                                                            version)
            hit = cache[key] = (settings, privateKey, certList, result)
        return list(hit[3])

    @staticmethod
    def _pickServerKeyExchangeSig(settings: Any, clientHello: Any, certList: Any = None,
                                  private_key: Any = None, version: Any = (3, 3),
                                  check_alt: bool = True) -> Any:
        result = _ReboundTLSConnection._pickServerKeyExchangeSig(
            settings, clientHello, certList, private_key, version, check_alt)
        key = result[2] if isinstance(result, tuple) else None
        if result and result[0] == "sha1" and \
                str(getattr(key, "key_type", "")).lower() in ("ed25519", "ed448"):
            # A TLS 1.2 client without signature_algorithms accepts only SHA-1 with RSA or
            # ECDSA (RFC 5246 7.4.1.4.1); tlslite then crashed signing with an EdDSA key.
            raise TLSHandshakeFailure(
                "the client sent no signature_algorithms extension, so TLS 1.2 allows "
                "only SHA-1 signatures with RSA or ECDSA keys, and this server's "
                "certificate has an EdDSA key")
        return result

    @staticmethod
    def _getKEX(group: int, version: tuple[int, int]) -> Any:
        if group in _FAST_GROUPS:
            return _KeyExchange(group, version)
        if group in _FF_GROUPS:
            return _FFKeyExchange(group, version)
        return _TLSLiteBase._getKEX(group, version)

    #: True while this client builds its ClientHello (see _curveNamesToList).
    _aiotls_in_hello = False
    _aiotls_ff_listed = False

    def _clientSendClientHello(self, *args: Any, **kwargs: Any) -> Generator[Any, None, None]:
        self._aiotls_in_hello, self._aiotls_ff_listed = True, False
        try:
            yield from super()._clientSendClientHello(*args, **kwargs)
        finally:
            self._aiotls_in_hello = False

    def _curveNamesToList(self, settings: Any, version: Any = (3, 4)) -> list[int]:
        groups: list[int] = _ReboundTLSConnection._curveNamesToList(settings, version)
        if self._aiotls_in_hello and settings.dhGroups and settings.maxVersion > (3, 3):
            # tlslite lists FFDHE groups in supported_groups only when it offers a DHE suite;
            # TLS 1.3 needs them listed for FFDHE key shares and HelloRetryRequests too
            # (RFC 8446 4.2.7), so a client lists them with the elliptic curves.
            self._aiotls_ff_listed = True
            groups = groups + [getattr(GroupName, g) for g in settings.dhGroups]
        return groups

    def _groupNamesToList(self, settings: Any) -> list[int]:
        if self._aiotls_in_hello and self._aiotls_ff_listed:
            return []  # listed already (see _curveNamesToList)
        return [getattr(GroupName, g) for g in settings.dhGroups]

    def _aiotls_verify(self, chain: list[bytes], missing_alert: int) -> Generator[int, None, None]:
        policy = self._aiotls_policy
        if policy is None:
            return
        try:
            policy.verify(chain)
        except CertificateError as err:
            if not chain:
                err.alert = AlertDescription(missing_alert)
                err.alert_number = missing_alert
            self._aiotls_error = err
            yield from self._sendError(err.alert_number, err.what)

    def _getNextRecordFromSocket(self) -> Generator[Any, None, None]:
        # RFC 8446 5.1: no record of another type between the fragments of a handshake
        # message.  tlslite buffers each content type apart and would process an alert,
        # a change_cipher_spec or application data that arrived in between.  TLS 1.2 allows
        # alerts and application data there (RFC 5246 6.2.1), but a change_cipher_spec
        # would change keys in the middle of a message in either version.
        result: Any = None
        for result in super()._getNextRecordFromSocket():
            if result in (0, 1):
                yield result
            else:
                break
        record_type = result[0].type
        if record_type != ContentType.handshake and (
                record_type == ContentType.change_cipher_spec or tuple(self.version) > (3, 3)) \
                and handshake_fragment_pending(self._defragmenter.buffers[ContentType.handshake]):
            err = interleaved_error(record_type)
            self._aiotls_error = err
            yield from self._sendError(_TLAlert.unexpected_message, err.what)
        yield result

    def _check_certchain_with_settings(self, cert_chain: Any, settings: Any) -> Generator[Any, None, None]:
        result: Any = None
        for result in super()._check_certchain_with_settings(cert_chain, settings):
            if result in (0, 1):
                yield result
            else:
                break
        # (the key already verifies through OpenSSL: see _PeerX509)
        yield from self._aiotls_verify(_chain_der(cert_chain), _TLAlert.bad_certificate)
        yield result

    def _serverGetClientHello(self, *args: Any, **kwargs: Any) -> Generator[Any, None, None]:
        for result in super()._serverGetClientHello(*args, **kwargs):
            if isinstance(result, tuple):
                self._aiotls_client_suites = tuple(result[0].cipher_suites)
            if isinstance(result, tuple) and result[1] < (3, 4):
                if self._aiotls_require_ems \
                        and not result[0].getExtension(ExtensionType.extended_master_secret):
                    # RFC 7627 5.2 (tlslite's own check would come later, with a vaguer error)
                    self._aiotls_error = _ems_missing("client", _TLAlert.insufficient_security)
                    yield from self._sendError(_TLAlert.insufficient_security,
                                               self._aiotls_error.what)
                # A TLS 1.2 full handshake.  tlslite issues a ticket only when the client's
                # session_ticket extension is empty, so a client whose ticket could not be
                # used (new ticket keys) never got another: RFC 5077 3.3 lets the server
                # issue a new ticket then, as OpenSSL does.  (The extension is only read
                # again for that decision; the transcript has the bytes as received.)
                extension = result[0].getExtension(ExtensionType.session_ticket)
                if extension is not None and extension.ticket:
                    extension.ticket = bytearray()
                self._aiotls_tls12_send_limit()
            yield result

    def _aiotls_tls12_send_limit(self) -> None:
        # RFC 8449 in TLS 1.2: the peer's record_size_limit bounds the plaintext of the
        # records we protect.  tlslite applies it only at its own Finished (and a client
        # never); from the hellos on, all our records keep to it: smaller records are always
        # allowed, and a peer that wrongly applies its limit to our unprotected records
        # (tlslite's client does, to a TLS 1.2 NewSessionTicket) is satisfied too.
        if self._peer_record_size_limit:
            self._send_record_limit = min(2**14, self._peer_record_size_limit)

    def _serverFinished(self, *args: Any, **kwargs: Any) -> Generator[Any, None, None]:
        # TLS 1.2 server: the client sent no certificate although one is required.
        chain = args[8] if len(args) > 8 else kwargs.get("client_cert_chain")
        policy = self._aiotls_policy
        if policy is not None and not _chain_der(chain) and not self._aiotls_defer_client_cert:
            yield from self._aiotls_verify([], _TLAlert.handshake_failure)
        yield from super()._serverFinished(*args, **kwargs)

    def _serverSendTickets(self, settings: Any) -> Generator[Any, None, None]:
        # TLS 1.3 server: the client's Certificate/CertificateVerify/Finished were checked by
        # tlslite; verify the chain before the handshake is declared done or tickets are issued.
        if self.version >= (3, 4) and self._aiotls_policy is not None:
            chain = _chain_der(self.session.clientCertChain if self.session else None)
            if chain or not self._aiotls_defer_client_cert:
                yield from self._aiotls_verify(chain, _TLAlert.certificate_required)
        sealer = self._aiotls_tickets
        count = settings.ticket_count if self.version > (3, 3) else min(1, settings.ticket_count)
        if self.version > (3, 3) and not self._aiotls_sent_certificate:
            count = min(1, count)  # after a resumption one ticket replaces the one used (as OpenSSL)
        if sealer is None or not count:
            return
        secret = self.session.masterSecret if self.version < (3, 4) \
            else self.session.resumptionMasterSecret
        now = int(self._aiotls_now().timestamp())
        for _ in range(count):
            payload = SessionTicketPayload().create(
                secret, self.version, self.session.cipherSuite, now,
                bytearray(secrets.token_bytes(16)),
                client_cert_chain=self.session.clientCertChain,
                encrypt_then_mac=self._recordLayer._get_pending_state_etm(),
                extended_master_secret=self.extendedMasterSecret,
                server_name=self.session.serverName.encode("utf-8")
                if self.session.serverName else bytearray())
            sealed = bytearray(sealer.seal(bytes(payload.write())))
            if self.version < (3, 4):
                ticket_msg = NewSessionTicket1_0().create(settings.ticketLifetime, sealed)
            else:
                ticket_msg = NewSessionTicket().create(
                    settings.ticketLifetime, secrets.randbelow(2**32), payload.nonce, sealed, [])
            self._queue_message(ticket_msg)
        yield from self._queue_flush()

    def _tryDecrypt(self, settings: Any, identity: Any = None, ticket: Any = None) -> Any:
        """Open a session ticket sealed by :meth:`_serverSendTickets` (ours, not tlslite's)."""
        sealer = self._aiotls_tickets
        blob = ticket if self.version < (3, 4) else (identity.identity if identity else None)
        if sealer is None or not blob:
            return None, None
        plain = sealer.open(bytes(blob))
        if plain is None:
            return None, None
        try:
            payload = SessionTicketPayload().parse(Parser(bytearray(plain)))
        except (ValueError, SyntaxError):
            return None, None
        if payload.creation_time + settings.ticketLifetime < self._aiotls_now().timestamp():
            return None, None
        if self.version < (3, 4):
            return None, payload
        prf = "sha384" if payload.cipher_suite in CipherSuite.sha384PrfSuites else "sha256"
        nst = NewSessionTicket()
        nst.ticket_nonce = payload.nonce
        nst.ticket = identity.identity
        psk = _FastHandshakeHelpers.calc_res_binder_psk(identity, payload.master_secret, [nst])
        return (identity.identity, psk, prf), payload

    def _handle_srv_pha(self, cert: Any) -> Generator[Any, None, None]:
        # Post-handshake authentication (server): tlslite checks the signature and Finished
        # but not the chain; verify it like a handshake certificate before accepting it.
        chain = _chain_der(cert.cert_chain if cert is not None else None)
        previous = self.session.clientCertChain if self.session else None
        yield from super()._handle_srv_pha(cert)
        if chain:
            yield from self._aiotls_verify(chain, _TLAlert.bad_certificate)
            self._aiotls_pha_chain = chain
        elif self.session is not None:
            self.session.clientCertChain = previous  # an empty answer changes nothing

    def _queue_message(self, msg: Any) -> None:
        if isinstance(msg, Certificate | CompressedCertificate) and not self._client:
            self._aiotls_sent_certificate = True
        elif isinstance(msg, CertificateRequest) and tuple(self.version) > (3, 3):
            # (TLS 1.2's list has rsa_pkcs1 already, and its CertificateRequest no extensions)
            _advertise_certificate_signatures(msg, cert_extension=True)
        super()._queue_message(msg)

    # --- checks on received handshake messages ------------------------------------------------

    def _getMsg(self, expectedType: Any, secondaryType: Any = None,
                constructorType: Any = None) -> Any:
        messages = super()._getMsg(expectedType, secondaryType, constructorType)
        if expectedType != ContentType.handshake:
            return messages  # (post-handshake reads ask for several content types)
        return self._aiotls_checked(messages)

    def _sendMsg(self, msg: Any, randomizeFirstBlock: bool = True,
                 update_hashes: bool = True) -> Any:
        if self._aiotls_first_finished is None and isinstance(msg, Finished):
            self._aiotls_first_finished = bytes(msg.verify_data)
        return super()._sendMsg(msg, randomizeFirstBlock, update_hashes)

    def _aiotls_checked(self, messages: Any) -> Generator[Any, None, None]:
        for result in messages:
            if not isinstance(result, int):
                if self._aiotls_first_finished is None and isinstance(result, Finished):
                    self._aiotls_first_finished = bytes(result.verify_data)
                check = _RECEIVED_CHECKS.get((self._client, getattr(result, "handshakeType", -1)))
                if check is not None:
                    yield from check(self, result)
            yield result

    def _aiotls_screen_client_hello(self, hello: Any) -> Generator[Any, None, None]:
        """Server: a PSK the client allows only in modes aiotls never uses is ignored.

        RFC 8446 4.2.9: the server must not select a mode the client did not list, and
        aiotls resumes only with (EC)DHE (psk_dhe_ke).  A client offering only psk_ke
        therefore gets a full handshake if it sent what one needs (tlslite answered
        handshake_failure); without it (no key_share, supported_groups or
        signature_algorithms) nothing is possible: missing_extension, as OpenSSL sends.
        The extension is dropped from the parsed message only (the transcript holds the
        bytes as received), after the checks tlslite makes on its shape.
        """
        psk = hello.getExtension(ExtensionType.pre_shared_key)
        modes = hello.getExtension(ExtensionType.psk_key_exchange_modes)
        versions = hello.getExtension(ExtensionType.supported_versions)
        settings = self._aiotls_settings
        if psk is None or versions is None or (3, 4) not in (versions.versions or ()) \
                or settings is None or tuple(settings.maxVersion) < (3, 4):
            return  # not a TLS 1.3 handshake: the PSK plays no part
        if modes is None or not modes.modes or hello.extensions[-1] is not psk \
                or not psk.identities or len(psk.identities) != len(psk.binders or ()) \
                or any(getattr(PskKeyExchangeMode, m) in modes.modes for m in _PSK_MODES):
            return  # usable, absent or malformed (tlslite answers those)
        missing = [name for name, ext in (("key_share", ExtensionType.key_share),
                                          ("supported_groups", ExtensionType.supported_groups),
                                          ("signature_algorithms",
                                           ExtensionType.signature_algorithms))
                   if hello.getExtension(ext) is None]
        if missing:
            # (RFC 8446 9.2 lets a PSK-only ClientHello omit these: incompatible, not broken)
            what = ("the client offered to resume only without (EC)DHE (psk_ke), which aiotls "
                    "does not allow (no forward secrecy), and its ClientHello lacks "
                    f"{', '.join(missing)} for a full handshake instead")
            self._aiotls_error = PeerIncompatible(
                f"{what} (sent alert missing_extension to the peer)",
                cause="the client is configured for PSK resumption without key exchange only",
                hint="let the client also offer psk_dhe_ke, or send a key share so that a "
                "full handshake can take place",
                alert=_TLAlert.missing_extension, code="psk-mode-unsupported")
            yield from self._sendError(_TLAlert.missing_extension, what)
        hello.extensions.remove(psk)
        early_data = hello.getExtension(ExtensionType.early_data)
        if early_data is not None:
            # 0-RTT goes with the PSK; skip the client's early records as tlslite does
            # when it declines early data.
            hello.extensions.remove(early_data)
            self._recordLayer.max_early_data = HandshakeSettings().max_early_data
            self._recordLayer.early_data_ok = True

    def _aiotls_check_alpn(self, encrypted_extensions: Any) -> Generator[Any, None, None]:
        """TLS 1.3 client: the server may only select a protocol we offered (RFC 7301 3.2;
        tlslite checks this in TLS 1.2's ServerHello, not in TLS 1.3's EncryptedExtensions)."""
        ext = encrypted_extensions.getExtension(ExtensionType.alpn)
        if ext is None:
            return
        offered = self._aiotls_alpn or []
        names = ext.protocol_names or []
        if not offered:
            yield from self._sendError(
                _TLAlert.unsupported_extension,
                "the server sent an ALPN protocol although the client offered none")
        if len(names) != 1:
            yield from self._sendError(
                _TLAlert.illegal_parameter,
                f"the server's ALPN extension names {len(names)} protocols instead of one")
        if names[0] not in offered:
            yield from self._sendError(
                _TLAlert.illegal_parameter,
                f"the server selected ALPN protocol {bytes(names[0])!r}, which the client "
                f"did not offer ({', '.join(repr(bytes(p)) for p in offered)})")

    def _aiotls_note_certificate_request(self, request: Any) -> Generator[Any, None, None]:
        """Client: remember the request (for the error if the server then refuses a client
        without a certificate); in TLS 1.3, refuse clearly when our key can make none of
        the handshake signatures the server accepts (tlslite failed with a TypeError, seen
        as a malformed message)."""
        self._aiotls_certificate_requested = True
        requested = request.supported_signature_algs
        credentials = self._aiotls_credentials
        if tuple(self.version) <= (3, 3) or not requested or credentials is None:
            return
        ours = self._sigHashesToList(self._aiotls_settings, *credentials, version=(3, 4))
        if not any(scheme in requested for scheme in ours):
            def names(schemes: Any) -> str:
                return ", ".join(SignatureScheme.toRepr(s) or f"0x{s[0]:02x}{s[1]:02x}"
                                 for s in schemes)
            yield from self._sendError(
                _TLAlert.handshake_failure,
                f"the server asks for a client certificate signing with {names(requested)}, "
                f"and this client's key signs TLS 1.3 handshakes only with {names(ours)}"
                + (" (RSA PKCS#1 v1.5 is not allowed there)"
                   if any(s in _RSA_PKCS1_SCHEMES for s in requested) else ""))

    def _aiotls_check_certificate_verify(self, verify: Any) -> Generator[Any, None, None]:
        """TLS 1.3 client: the server's handshake signature must use a scheme we offered for
        CertificateVerify; rsa_pkcs1_* are offered for certificates only (RFC 8446 4.2.3,
        4.4.3).  tlslite verified any scheme the server chose."""
        if tuple(self.version) <= (3, 3) or self._aiotls_settings is None:
            return
        allowed = self._sigHashesToList(self._aiotls_settings, version=(3, 4))
        scheme = verify.signatureAlgorithm
        if scheme not in allowed:
            name = SignatureScheme.toRepr(scheme) or f"0x{scheme[0]:02x}{scheme[1]:02x}"
            yield from self._sendError(
                _TLAlert.illegal_parameter,
                f"the server signed the TLS 1.3 handshake with {name}, which the client did "
                "not offer for handshake signatures"
                + (" (RSA PKCS#1 v1.5 is for certificates only in TLS 1.3)"
                   if scheme in _RSA_PKCS1_SCHEMES else ""))

    def _clientGetServerHello(self, *args: Any, **kwargs: Any) -> Generator[Any, None, None]:
        # tlslite's requireExtendedMasterSecret also fires for TLS 1.3 (which has no such
        # extension), so the client enforces RFC 7627 for TLS 1.2 itself, right after ServerHello.
        result: Any = None
        for result in super()._clientGetServerHello(*args, **kwargs):
            if result in (0, 1):
                yield result
            else:
                break
        if not isinstance(result, ServerHello):
            yield result
            return
        hello = args[2] if len(args) > 2 else kwargs.get("clientHello")
        if hello is not None:
            # RFC 8446 4.2, RFC 5246 7.4.1.4: a ServerHello carries only extensions the
            # client offered.  tlslite did not check, and crashed on some of them (a
            # pre_shared_key answering no PSK offer).
            offered = {ext.extType for ext in (hello.extensions or ())}
            if CipherSuite.TLS_EMPTY_RENEGOTIATION_INFO_SCSV in hello.cipher_suites:
                offered.add(ExtensionType.renegotiation_info)
            for ext in result.extensions or ():
                if ext.extType not in offered:
                    yield from self._sendError(
                        _TLAlert.unsupported_extension,
                        f"the ServerHello has an extension the client did not offer "
                        f"({ExtensionType.toStr(ext.extType)})")
        if tuple(self.version) > (3, 3):
            share = result.getExtension(ExtensionType.key_share)
            if share is not None and getattr(share, "server_share", True) is None:
                # an empty key_share in a ServerHello: tlslite read its group from None
                yield from self._sendError(
                    _TLAlert.decode_error, "the ServerHello's key_share extension is empty")
            yield result
            return
        # TLS 1.2
        ems = bool(result.getExtension(ExtensionType.extended_master_secret))
        if self._aiotls_require_ems and not ems:
            self._aiotls_error = _ems_missing("server", _TLAlert.handshake_failure)
            yield from self._sendError(_TLAlert.handshake_failure, self._aiotls_error.what)
        session = args[1] if len(args) > 1 else kwargs.get("session")
        if (session is not None and session.sessionID
                and result.session_id == session.sessionID
                and ems != bool(session.extendedMasterSecret)):
            # RFC 7627 5.3: a resumption keeps the session's EMS status or is aborted (tlslite
            # does not check; reachable only with require_extended_master_secret = False).
            had, now = ("with", "without") if session.extendedMasterSecret else ("without", "with")
            self._aiotls_error = PeerMisbehaved(
                f"the server resumed a TLS 1.2 session {now} the extended master secret "
                f"extension although the session was made {had} it (RFC 7627 5.3)",
                cause="a broken server, or an attacker splicing sessions (triple handshake)",
                hint="check the server's TLS implementation; a new connection without the "
                "session makes a full handshake",
                alert=_TLAlert.handshake_failure, code="extended-master-secret-mismatch")
            yield from self._sendError(_TLAlert.handshake_failure, self._aiotls_error.what)
        self._aiotls_tls12_send_limit()
        yield result

    def _serverCertKeyExchange(self, *args: Any, **kwargs: Any) -> Generator[Any, None, None]:
        # TLS 1.2 server: remember the ECDHE group (tlslite only records it for clients).
        key_exchange = args[4] if len(args) > 4 else kwargs.get("keyExchange")
        _accelerate_kex(key_exchange)
        for result in super()._serverCertKeyExchange(*args, **kwargs):
            group = getattr(key_exchange, "group_id", None)
            if group is not None:
                self.ecdhCurve = group
            yield result

    def _serverTLS13Handshake(self, *args: Any, **kwargs: Any) -> Generator[Any, None, None]:
        # tlslite's TLS 1.3 server looks up the client's ALPN offer in `srv_alpns` even when
        # the server has none configured (None): a TypeError that broke every ALPN-offering
        # client (curl, browsers) against a server without ALPN.  Give it an empty list.
        # (handshakeServerAsync itself refuses alpn=[], hence the fix here.)
        if len(args) > 7 and args[7] is None:
            args = (*args[:7], [], *args[8:])
        elif kwargs.get("srv_alpns", 0) is None:
            kwargs["srv_alpns"] = []
        # RFC 7301 3.2: a server with ALPN protocols and a client offering none of them
        # SHALL answer no_application_protocol (tlslite does in TLS 1.2, but in TLS 1.3 it
        # went on without ALPN).  A client offering no ALPN at all gets none.
        hello = args[1] if len(args) > 1 else kwargs.get("clientHello")
        server_protocols = args[7] if len(args) > 7 else kwargs.get("srv_alpns")
        offer = hello.getExtension(ExtensionType.alpn) if hello is not None else None
        if server_protocols and offer is not None and offer.protocol_names \
                and not any(p in server_protocols for p in offer.protocol_names):
            yield from self._sendError(
                _TLAlert.no_application_protocol,
                "the client offered ALPN protocols "
                f"{', '.join(repr(bytes(p)) for p in offer.protocol_names)}, none of which this "
                f"server accepts ({', '.join(repr(bytes(p)) for p in server_protocols)})")
        yield from super()._serverTLS13Handshake(*args, **kwargs)

    def _clientGetKeyFromChain(self, certificate: Any, settings: Any,
                               tack_ext: Any = None) -> Generator[Any, None, None]:
        result: Any = None
        for result in super()._clientGetKeyFromChain(certificate, settings, tack_ext):
            if result in (0, 1):
                yield result
            else:
                break
        scheme = self.serverSigAlg
        if tuple(self.version) > (3, 3) and scheme is not None and isinstance(result, tuple):
            # TLS 1.3: the CertificateVerify's scheme (read just before) must be one we
            # offered and fit the certificate's key, as tlslite checks on the server side
            # (RFC 8446 4.4.3); its client took an ECDSA scheme with an RSA key into
            # `publicKey.curve_name` (AttributeError -> internal_error).
            valid = self._sigHashesToList(settings, certList=result[1], version=(3, 4))
            if tuple(scheme) not in [tuple(v) for v in valid]:
                yield from self._sendError(
                    _TLAlert.illegal_parameter,
                    "the server's CertificateVerify uses a signature scheme that it was not "
                    "offered or that does not fit the key of its certificate")
        yield result

    def _clientResume(self, session: Any, serverHello: Any, *args: Any,
                      **kwargs: Any) -> Generator[Any, None, None]:
        # tlslite's client takes any TLS 1.2 session holding a ticket as resumed, whatever
        # the server answered: a server that rejects the ticket (new ticket keys after a
        # restart, another server behind the name) then failed every reconnection with
        # unexpected_message.  RFC 5077 3.4: the server accepted the ticket only if it
        # echoed the session ID the client sent with it.
        if session is not None and session.tls_1_0_tickets and not (
                session.sessionID and serverHello.session_id == session.sessionID):
            return  # a full handshake follows
        yield from super()._clientResume(session, serverHello, *args, **kwargs)

    def _clientKeyExchange(self, *args: Any, **kwargs: Any) -> Generator[Any, None, None]:
        # TLS 1.2 client: the (EC)DHE arithmetic in OpenSSL (see _FastAECDH, _FastADH).
        key_exchange = args[8] if len(args) > 8 else kwargs.get("keyExchange")
        _accelerate_kex(key_exchange)
        try:
            for result in super()._clientKeyExchange(*args, **kwargs):
                if isinstance(key_exchange, _FastADH) and key_exchange.group_id is not None:
                    self.ecdhCurve = key_exchange.group_id  # (tlslite records ECDHE groups only)
                yield result
        except TLSLocalAlert:
            if isinstance(key_exchange, _FastADH) and key_exchange.refused_parameters:
                self._aiotls_error = PeerIncompatible(
                    "the server chose Diffie-Hellman parameters that are not one of the RFC 7919 "
                    "groups offered (ffdhe2048...)",
                    cause="the server uses DH parameters of its own (a dhparam file, or its "
                    "library's defaults) instead of negotiating a named group",
                    hint="configure the server with ECDHE or an RFC 7919 group; or do not "
                    "enable DHE suites on this client",
                    alert=_TLAlert.insufficient_security, code="dh-parameters-not-offered")
            raise

    def _shutdown(self, resumable: bool) -> None:
        # Unlike tlslite, keep the record layer keyed: a later alert must stay encrypted.
        self.closed = True
        if not resumable and self.session:
            self.session.resumable = False


#: Checks on received handshake messages: (we are the client, handshake type) -> check.
_RECEIVED_CHECKS: dict[tuple[bool, int], Callable[[Any, Any], Generator[Any, None, None]]] = {
    (False, HandshakeType.client_hello): _TLSLiteConnection._aiotls_screen_client_hello,
    (True, HandshakeType.encrypted_extensions): _TLSLiteConnection._aiotls_check_alpn,
    (True, HandshakeType.certificate_request):
        _TLSLiteConnection._aiotls_note_certificate_request,
    (True, HandshakeType.certificate_verify): _TLSLiteConnection._aiotls_check_certificate_verify,
}


# --- TLS 1.3 tickets across resumptions ---------------------------------------------------

#: At most this many unused TLS 1.3 tickets are carried from one session to the next.
_MAX_UNUSED_TICKETS = 8
_TICKET_MAX_AGE = 7 * 24 * 3600  # RFC 8446 4.6.1
#: At most this many TLS 1.3 tickets are kept from one connection (the newest): a server
#: may send any number of NewSessionTickets (RFC 8446 4.6.1), and each one kept is memory.
#: As many as a resumption uses: one offered, the others carried (see _one_ticket).
_MAX_KEPT_TICKETS = _MAX_UNUSED_TICKETS + 1


class _KeptTickets(list):  # type: ignore[type-arg]
    """A client connection's TLS 1.3 tickets: tlslite appends each NewSessionTicket to the
    connection's list (its session shares it), and so does :meth:`Engine.take_ticket`; past
    ``_MAX_KEPT_TICKETS`` the oldest ones are dropped."""

    __slots__ = ()

    def append(self, ticket: Any) -> None:
        super().append(ticket)
        if len(self) > _MAX_KEPT_TICKETS:
            del self[:len(self) - _MAX_KEPT_TICKETS]



def _one_ticket(session: Any) -> tuple[Any, list[tuple[Any, Any]]]:
    """Split a client's session into what this handshake offers and what it keeps.

    A TLS 1.3 session holds tickets, each bound to the resumption secret of the connection
    that received it: the session's own tickets (newest, from its connection) and the
    unused ones carried from the session it resumed (``_aiotls_unused``: (session, ticket)
    pairs).  The oldest fresh ticket is offered, on a copy of its own session holding only
    it (tlslite offers ``tickets[0]`` and filters that list in place: the caller's session
    is never changed).  The others are returned, to be kept by the next session if this
    handshake resumes: so a server that sends no new ticket on resumption (node, nginx,
    OpenSSL with a ticket-key callback) still leaves the next connection something to
    resume with, and following the chain of sessions offers every ticket once (RFC 8446
    C.4).  Passing the same session to several connections offers its first ticket each
    time, as OpenSSL's sessions do.  TLS 1.2 sessions pass through unchanged.
    """
    own = session.tickets or []
    carried = getattr(session, "_aiotls_unused", None) or []
    if not own and not carried:
        return session, []
    now = _tl_tlsrecordlayer.time.time()
    fresh = [(owner, ticket) for owner, ticket in (*carried, *((session, t) for t in own))
             if ticket.time + ticket.ticket_lifetime > now
             and ticket.time + _TICKET_MAX_AGE > now][-(_MAX_UNUSED_TICKETS + 1):]
    if not fresh:
        offered = copy.copy(session)
        offered.tickets = []
        return offered, []
    owner, ticket = fresh[0]
    offered = copy.copy(owner)
    offered.tickets = [ticket]
    offered._aiotls_unused = None
    return offered, fresh[1:]


def _ems_missing(peer: str, alert: int) -> PeerIncompatible:
    """The error for a TLS 1.2 peer without the extended master secret (RFC 7627)."""
    return PeerIncompatible(
        f"the {peer} does not support the extended master secret extension (RFC 7627), which "
        "aiotls requires for TLS 1.2",
        cause=f"the {peer} is an older TLS 1.2 implementation (for example an old Java or "
        "embedded stack) or has the extension turned off",
        hint=f"upgrade the {peer} or enable TLS 1.3 on it; to admit such peers anyway, at the "
        "risk of the triple-handshake attack, set require_extended_master_secret = False on "
        "this side's TLSContext",
        alert=alert, code="extended-master-secret-required",
    )


# --- per-context cached configuration ------------------------------------------------------


@dataclass(slots=True)
class _Prepared:
    generation: int
    client_settings: Any
    server_settings: Any
    cert_chain: Any
    private_key: Any
    alpn: list[bytearray] | None


#: The longest post-handshake handshake message aiotls holds while it arrives, by type
#: (the body's length, RFC 8446 4): at most what the message's fields allow (a ticket and
#: its extensions under 2^16 bytes each...), a certificate chain at most 1 MiB; others
#: (which the engine refuses once whole) as long as a ticket.  Beyond it the connection
#: is aborted at the first fragment instead of buffering up to 16 MiB.
_POST_HANDSHAKE_LIMITS = {
    HandshakeType.key_update: 1,
    HandshakeType.finished: 64,
    HandshakeType.certificate: 1 << 20,
    HandshakeType.compressed_certificate: 1 << 20,
}
_POST_HANDSHAKE_LIMIT = 1 << 17


def _oversized_message(buffered: bytes | bytearray) -> tuple[str, int, int] | None:
    """(type name, declared length, limit) of a handshake message waiting in ``buffered``
    whose declared length is over its limit, else None."""
    pos, n = 0, len(buffered)
    while n - pos >= 4:
        kind = buffered[pos]
        length = int.from_bytes(buffered[pos + 1:pos + 4], "big")
        limit = _POST_HANDSHAKE_LIMITS.get(kind, _POST_HANDSHAKE_LIMIT)
        if length > limit:
            return HandshakeType.toStr(kind), length, limit
        pos += 4 + length
    return None


#: Every protocol version tlslite speaks, newest first.
_ALL_VERSIONS = ((3, 4), (3, 3), (3, 2), (3, 1))


def _settings(ctx: TLSContext) -> Any:
    suites = ctx._suites
    s = HandshakeSettings()
    s.cipherNames = list(dict.fromkeys(x.cipher for x in suites))
    s.macNames = list(dict.fromkeys(x.mac for x in suites))
    ec_groups = [g for g in ctx._groups if g not in FFDHE_GROUPS]
    ff_groups = [g for g in ctx._groups if g in FFDHE_GROUPS]
    kexes = list(dict.fromkeys(x.kex for x in suites if x.kex))
    chosen = kexes
    if not ff_groups:
        kexes = [k for k in kexes if k != "dhe_rsa"]  # DHE only over an RFC 7919 group
    if not ec_groups:
        kexes = [k for k in kexes if not k.startswith("ecdhe")]
    if chosen and not kexes and ctx.maximum_version < TLSVersion.TLSv1_3:
        raise TLSConfigurationError(
            "the TLS 1.2 cipher suites chosen cannot be used with the key-exchange groups "
            f"chosen ({', '.join(ctx._groups)})",
            cause="DHE suites need an FFDHE group (ffdhe2048...) and ECDHE suites an "
            "elliptic-curve group (x25519, secp256r1...)",
            hint="add a matching group with set_groups(), or choose other suites with "
            "set_ciphers()",
        )
    s.keyExchangeNames = kexes or ["ecdhe_ecdsa", "ecdhe_rsa"]
    lo = _VERSION_TUPLES[_version_name(ctx.minimum_version)]
    hi = _VERSION_TUPLES[_version_name(ctx.maximum_version)]
    if not kexes:  # only TLS 1.3 suites chosen
        lo = max(lo, (3, 4))
    if not any(x.kex is None for x in suites):  # only TLS 1.2-and-older suites chosen
        hi = min(hi, (3, 3))
    if lo > hi:
        raise TLSConfigurationError(
            f"no protocol version left: minimum {_VERSION_NAMES.get(lo)} > maximum "
            f"{_VERSION_NAMES.get(hi)} (after matching the chosen cipher suites)",
            hint="widen minimum_version/maximum_version or choose suites for those versions",
        )
    s.minVersion, s.maxVersion = lo, hi
    # What a client lists in supported_versions, and what a server accepts from one: only the
    # versions between the minimum and the maximum (tlslite's default lists TLS 1.3 down to
    # 1.0 whatever minVersion says, and a server picks from that list unchecked).
    s.versions = [v for v in _ALL_VERSIONS if lo <= v <= hi]
    s.eccCurves = ec_groups
    s.keyShares = [ctx._groups[0]]
    s.dhGroups = ff_groups
    s.use_heartbeat_extension = False
    s.useExtendedMasterSecret = True
    # encrypt_then_mac (RFC 7366) only concerns CBC suites: not offered without them
    s.useEncryptThenMAC = any(x.mac != "aead" for x in suites)
    # RFC 7627 is enforced by aiotls for TLS 1.2 in both roles (see _ems_missing), per
    # TLSContext.require_extended_master_secret; tlslite's own check also fires for TLS 1.3.
    s.requireExtendedMasterSecret = False
    s.minKeySize = 2048
    s.rsaSigHashes = ["sha512", "sha384", "sha256"]
    s.ecdsaSigHashes = ["sha512", "sha384", "sha256"]
    s.dsaSigHashes = []
    s.ec_point_formats = [ECPointFormat.uncompressed]  # RFC 8422 deprecates compressed points
    s.certificate_compression_send = []
    s.certificate_compression_receive = []
    # Ticket contents are sealed by aiotls (_crypto.TicketSealer); tlslite only needs to see
    # that tickets are enabled.
    s.ticketKeys = [bytearray(32)] if ctx.num_tickets else []
    s.ticket_count = ctx.num_tickets
    s.ticketLifetime = ctx.session_ticket_lifetime
    s.psk_modes = list(_PSK_MODES)
    s.cipherImplementations = ["python"]
    try:
        return s.validate()
    except (ValueError, TypeError) as exc:
        raise TLSConfigurationError(f"invalid TLS settings: {exc}") from None


class _ValidatedSettings(HandshakeSettings):  # type: ignore[misc]
    """Settings validated once per context.

    tlslite starts every handshake with ``settings.validate()`` (a deep copy and every
    check, ~40 us); this returns the copy validated when the context was prepared.  tlslite
    only reads it (it validates again before deriving modified settings); aiotls must not
    change it either: use ``fresh_copy()``.
    """

    _aiotls_validated: Any

    def validate(self) -> Any:
        return self._aiotls_validated

    def fresh_copy(self) -> Any:
        return self._aiotls_validated.validate()


def _validated_once(validated: Any) -> _ValidatedSettings:
    settings = copy.copy(validated)
    settings.__class__ = _ValidatedSettings
    settings._aiotls_validated = validated
    return settings  # type: ignore[no-any-return]


def _parse_x509(der: bytes) -> Any:
    cert = X509()
    cert.parseBinary(bytearray(der))
    return cert


def _version_name(v: Any) -> str:
    return {1: "TLSv1", 2: "TLSv1.1", 3: "TLSv1.2", 4: "TLSv1.3"}[int(v) - 0x300]


def _prepare(ctx: TLSContext) -> _Prepared:
    cached: _Prepared | None = getattr(ctx, "_engine_cache", None)
    generation = ctx._generation  # read first: a change made while building is not lost
    if cached is not None and cached.generation == generation:
        return cached
    client_settings = _settings(ctx)
    server_settings = _settings(ctx)
    chain = key = None
    if ctx._chain_der and ctx._key is not None:
        chain = X509CertChain([_parse_x509(d) for d in ctx._chain_der])
        key = _accelerate(parsePEMKey(_crypto.private_key_pkcs8_pem(ctx._key), private=True,
                                      implementations=["python"]), ctx._key, private=True)
    alpn = [bytearray(p.encode("ascii")) for p in ctx._alpn] or None
    prepared = _Prepared(generation, _validated_once(client_settings),
                         _validated_once(server_settings), chain, key, alpn)
    ctx._engine_cache = prepared
    return prepared


# --- the engine ------------------------------------------------------------------------------


class Engine:
    """One TLS connection's protocol engine; used only by :class:`aiotls.TLSConnection`."""

    def __init__(
        self,
        ctx: TLSContext,
        *,
        server_side: bool,
        server_hostname: str | None,
        now: Callable[[], datetime.datetime],
        session: Any = None,
    ) -> None:
        prepared = _prepare(ctx)
        self.server_side = server_side
        self.server_hostname = server_hostname
        self._sock = _MemorySocket()
        tl = _TLSLiteConnection(self._sock)
        #: The connection's one record layer: every record under keys goes through it.
        self._records = FastRecordLayer()
        tl._recordLayer = _RecordLayer(tl.sock, self._records)
        tl.tickets = _KeptTickets()
        tl.closeSocket = False
        tl._aiotls_now = now
        tl._aiotls_defer_client_cert = server_side and ctx.post_handshake_auth
        tl._aiotls_require_ems = ctx.require_extended_master_secret
        if server_side and ctx.num_tickets:
            tl._aiotls_tickets = ctx._ticket_sealer()
        self._tl = tl
        self.handshake_done = False
        self.failed = False
        #: A TLS 1.2 peer tried to renegotiate (aiotls never renegotiates).
        self.renegotiation_refused = False
        verify_mode = int(ctx.verify_mode)
        if verify_mode != 0:
            tl._aiotls_policy = _Policy(
                trust=ctx._trust,
                peer_role="client" if server_side else "server",
                hostname=server_hostname if (ctx.check_hostname and not server_side) else None,
                mode=_CERT_REQUIRED if (not server_side or verify_mode == _CERT_REQUIRED)
                else _CERT_OPTIONAL,
                now=now,
            )
        self.verified = tl._aiotls_policy is not None
        #: Client: TLS 1.3 tickets of the resumed session not offered in this handshake,
        #: (their session, ticket); they join this connection's session if it resumes.
        self._unused_tickets: list[tuple[Any, Any]] = []
        self._reader: Generator[Any, None, None] | None = None
        #: The connection decrypts application data itself (see take_over_records).
        self.records_taken_over = False
        self._peer_input = True
        if server_side:
            # (TLSConnection.check_context has made sure the context has a certificate)
            self._settings = tl._aiotls_settings = prepared.server_settings
            self._gen: Any = tl.handshakeServerAsync(
                certChain=prepared.cert_chain, privateKey=prepared.private_key,
                reqCert=verify_mode != 0 and not ctx.post_handshake_auth,
                settings=prepared.server_settings, alpn=prepared.alpn,
            )
        else:
            sni = server_hostname
            if sni is not None and _verify.is_ip_address(sni):
                sni = None  # RFC 6066: no IP literals in SNI
            self._settings = prepared.client_settings
            tl._aiotls_settings = prepared.client_settings
            tl._aiotls_alpn = prepared.alpn
            if prepared.cert_chain is not None:
                tl._aiotls_credentials = (prepared.private_key, prepared.cert_chain)
            if session is not None:
                session, self._unused_tickets = _one_ticket(session)
            if session is not None and session.tls_1_0_tickets and not session.sessionID:
                # RFC 5077 3.4: present a TLS 1.2 ticket with a session ID of our own; the
                # server echoes it only if it accepts the ticket (see _clientResume).
                session = copy.copy(session)
                session.sessionID = bytearray(secrets.token_bytes(32))
            self._gen = tl.handshakeClientCert(
                certChain=prepared.cert_chain, privateKey=prepared.private_key,
                settings=prepared.client_settings, serverName=sni, alpn=prepared.alpn,
                session=session, async_=True,
            )

    # --- I/O with the connection layer -------------------------------------------------------

    def feed(self, record: bytes | bytearray | memoryview) -> None:
        """Queue one whole TLS record (header included)."""
        self._sock.inbox += record

    def take_output(self) -> bytes:
        chunks = self._sock.outbox
        if not chunks:
            return b""
        # A single chunk is handed over as is: chunks are fresh objects nobody else keeps.
        out = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        return out  # type: ignore[return-value]

    def _has_input(self) -> bool:
        return bool(self._sock.inbox) or bool(self._tl.sock._read_buffer) \
            or self._tl._recordLayer.has_opened()

    # --- driving -----------------------------------------------------------------------------

    def step_handshake(self) -> bool:
        """Advance the handshake; True once it has completed."""
        status, _ = self._drive(self._gen)
        if status == WANT_READ:
            return False
        self.handshake_done = True
        self._gen = None  # frees the handshake's messages and intermediate state
        return True

    def read(self) -> bytes | None:
        """Decrypt the next batch of application data.

        Returns data, ``b""`` when the peer sent close_notify, or ``None`` when more
        records are needed.
        """
        if self._reader is None:
            if not self._has_input():
                return None
            self._reader = self._tl.readAsync()
        status, value = self._drive(self._reader)
        if status == WANT_READ:
            return None
        self._reader = None
        return bytes(value) if value is not None else b""

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.records_taken_over:
            records = self._records
            if records.needs_key_update():
                self.update_keys(request_peer=False)
            try:
                sealed = records.seal(data)
            except RecordError as exc:
                raise TLSError(f"cannot send: {exc}", alert=exc.alert,
                               hint="open a new connection") from None
            self._sock.send(sealed)
            return
        self._drive(self._tl.writeAsync(data), peer_input=False)

    def close_notify(self) -> None:
        """Send close_notify; nothing is sent after it."""
        self._flush_queue()
        if self.records_taken_over and not self._sock.discard:
            # (the same record layer as tlslite's path below, without its per-message steps)
            self._sock.send(self._records.seal_record(_ALERT, _CLOSE_NOTIFY))
        else:
            self._send_alert(_TLAlert.close_notify, AlertLevel.warning)
        self._sock.discard = True

    def peer_closed(self) -> None:
        """The record layer received the peer's close_notify: answer it (as tlslite would,
        unless we sent ours already) and shut down.  Nothing is sent after it."""
        if self.records_taken_over and not self._sock.discard:
            self.close_notify()
        self._sock.discard = True
        self._tl._shutdown(True)

    # --- aiotls's record layer takes over after the handshake --------------------------------

    def take_over_records(self) -> bool:
        """Let the connection decrypt and encrypt application data itself, through the
        engine's record verbs (:meth:`open_small`, :meth:`open_run`, :meth:`open_record`,
        :meth:`write`), if aiotls's record layer protects both directions (every AEAD suite
        enabled by default; CBC and CCM stay on tlslite's record layer and :meth:`read`)."""
        records = self._records
        if self.version not in ("TLSv1.3", "TLSv1.2") or not (
                records.protects(reading=True) and records.protects(reading=False)):
            return False
        # tlslite's send limit is in content bytes per record: the peer's record_size_limit
        # (RFC 8449), minus the content type byte in TLS 1.3; 2^14 without one
        records.set_send_limit(int(self._tl._recordLayer.send_record_limit))
        self.records_taken_over = True
        #: Engine verbs for the connection's receive path (see aiotls._record.RecordLayer):
        self.tls13 = records.tls13
        self.open_small = records.open_small
        self.open_run = records.open_run
        self.open_record = records.open
        return True

    def handshake_fragment_pending(self) -> bool:
        """True while the engine holds the first part of a handshake message whose rest has
        not arrived: until then only handshake records may follow (RFC 8446 5.1)."""
        return handshake_fragment_pending(self._tl._defragmenter.buffers[ContentType.handshake])

    def leftover_input(self) -> bytes:
        """Bytes the engine holds but has not processed (given back at takeover)."""
        buffered = self._tl.sock._read_buffer
        data = bytes(buffered) + bytes(self._sock.inbox)
        buffered.clear()
        self._sock.inbox.clear()
        return data

    # --- for tests and diagnostics ------------------------------------------------------------

    def record_keys(self, *, reading: bool) -> _record_mod.DirectionKeys | None:
        """The keys and sequence number of one direction, or ``None`` while aiotls's record
        layer does not protect it (no keys yet, or a legacy cipher that tlslite protects)."""
        return self._records.keys(reading=reading)

    @property
    def records(self) -> FastRecordLayer:
        """The connection's record layer (for tests and diagnostics: the connection itself
        uses the verbs above)."""
        return self._records

    def seal_record(self, content_type: int, content: bytes) -> bytes:
        """One record of any content type under the current write keys, in sequence (for
        tests that need records an honest peer does not send, such as an empty one)."""
        return self._records.seal_record(content_type, content)

    def set_sequence_number(self, *, reading: bool, seq: int) -> None:
        """Jump one direction's sequence number (for tests of the 2^64 limit)."""
        direction = self._records._read if reading else self._records._write
        direction.seq = seq

    def set_key_update_after(self, records: int) -> None:
        """TLS 1.3: send a KeyUpdate once this many records went out under one key."""
        self._records.key_update_after = records

    def take_ticket(self, plaintext: bytes | bytearray | memoryview) -> bool:
        """TLS 1.3 client: keep the NewSessionTickets of a record that aiotls's record layer
        decrypted, as tlslite's ``readAsync`` would: each message enters the transcript, and
        each ticket gets tlslite's receipt time and joins the connection's tickets.

        Only a record made of whole NewSessionTicket messages is taken, and only if tlslite's
        parser accepts every one of them; anything else (another message type, a fragment,
        a server, TLS 1.2) returns False with nothing changed, and the record then goes to
        the engine (:meth:`control_record`), which answers it as tlslite does.
        """
        tl = self._tl
        if self.server_side or self.version != "TLSv1.3" or tl.closed \
                or not tl._defragmenter.is_empty():
            return False
        raw = bytearray(plaintext)
        kept = []
        pos = 0
        while pos < len(raw):
            end = pos + 4 + int.from_bytes(raw[pos + 1:pos + 4], "big")
            if len(raw) - pos < 4 or raw[pos] != HandshakeType.new_session_ticket \
                    or end > len(raw):
                return False
            message = raw[pos:end]
            parser = Parser(message)
            parser.get(1)
            try:
                kept.append((message, _QUICK_MESSAGES["NewSessionTicket"]().parse(parser)))
            except Exception:  # (tlslite's own path sends the right alert for it)
                return False
            pos = end
        if not kept:
            return False
        for message, ticket in kept:
            tl._handshake_hash.update(message)
            ticket.time = _tl_tlsrecordlayer.time.time()
            tl.tickets.append(ticket)
        return True

    def control_record(self, record: bytes) -> bytes | None:
        """Let the engine process one post-handshake non-application-data record
        (alert, KeyUpdate, NewSessionTicket, renegotiation attempt...).

        Returns ``b""`` if it was close_notify, else ``None``.
        """
        if record[0] == ContentType.handshake and self.version == "TLSv1.2":
            # After a TLS 1.2 handshake a handshake record can only start a renegotiation
            # (HelloRequest, ClientHello): tlslite refuses it with a warning
            # no_renegotiation alert, and a peer that gives up then names the failure
            # (see _translate).
            self.renegotiation_refused = True
        self.feed(record)
        return self._control()

    def control_message(self, content_type: int, content: bytes) -> bytes | None:
        """Like :meth:`control_record`, for a record the connection decrypted already (the
        engine does not decrypt it again): its content type and content."""
        self._tl._recordLayer.push_opened(content_type, content)
        return self._control()

    def _control(self) -> bytes | None:
        result = self.read()
        if result:
            # The engine decrypted application data, which must never happen here.
            raise PeerMisbehaved("application data arrived where a control record was expected",
                                 alert=AlertDescription.unexpected_message)
        oversized = _oversized_message(self._tl._defragmenter.buffers[ContentType.handshake])
        if oversized is not None:
            kind, length, limit = oversized
            self.fail(_TLAlert.illegal_parameter)
            raise PeerMisbehaved(
                f"the peer started a post-handshake {kind} message of {length} bytes, more "
                f"than the {limit} bytes aiotls accepts for it (sent alert illegal_parameter "
                "to the peer)",
                cause="a broken or hostile peer: such a message would be held in memory "
                "until its last byte arrived",
                hint="check the peer's TLS implementation",
                alert=AlertDescription.illegal_parameter, code="message-too-large")
        return result

    def request_client_certificate(self) -> None:
        """TLS 1.3 server: send a post-handshake CertificateRequest."""
        tl = self._tl
        if not self.server_side or self.version != "TLSv1.3":
            raise TLSUsageError("post-handshake authentication is for TLS 1.3 servers",
                                hint="request client certificates in the handshake instead "
                                "(verify_mode)")
        if not tl._pha_supported:
            raise TLSUsageError(
                "the client did not offer post-handshake authentication",
                cause="clients offer it only when they have a certificate configured",
                hint="have the client load a certificate (load_cert_chain), or request it in "
                "the handshake with verify_mode",
            )
        if tl._aiotls_policy is None:
            raise TLSUsageError(
                "cannot verify a client certificate: the server context has verify_mode "
                "CERT_NONE",
                hint="set verify_mode = ssl.CERT_OPTIONAL (or CERT_REQUIRED) and load the "
                "client CA with load_verify_locations()",
            )
        tl.client_cert_required = tl._aiotls_policy.mode == _CERT_REQUIRED
        # tlslite always attaches a compress_certificate extension to the request and then
        # refuses its own request if the list is empty: offer zlib for this one message.
        settings = self._settings.fresh_copy()
        settings.certificate_compression_receive = ["zlib"]
        self._drive(tl.request_post_handshake_auth(settings), peer_input=False)

    def take_pha_result(self) -> list[bytes] | None:
        """The client certificate chain from a completed post-handshake authentication."""
        chain, self._tl._aiotls_pha_chain = self._tl._aiotls_pha_chain, None
        return chain

    def update_keys(self, *, request_peer: bool) -> None:
        """TLS 1.3: send KeyUpdate and switch to new write keys."""
        if self.version != "TLSv1.3":
            raise TLSUsageError("KeyUpdate exists only in TLS 1.3",
                                hint="TLS 1.2 connections cannot change keys; reconnect instead")
        self._drive(self._tl.send_keyupdate_request(1 if request_peer else 0),
                    peer_input=False)

    def fail(self, alert: int | None) -> None:
        """Abort: send a fatal alert (if given and none was sent yet), then go quiet."""
        if not self.failed:
            self.failed = True
            if alert is not None:
                self._flush_queue()
                self._send_alert(alert, AlertLevel.fatal)
            self._sock.discard = True
        self._tl.closed = True

    def _flush_queue(self) -> None:
        try:
            self._tl.sock.flush()
        finally:
            self._tl.sock.buffer_writes = False

    def _send_alert(self, description: int, level: int) -> None:
        rl = self._tl._recordLayer
        if tuple(rl.version) == (0, 0):
            rl.version = (3, 1)  # nothing negotiated yet: a record version any peer accepts
        try:
            for _ in self._tl._sendMsg(Alert().create(description, level)):
                pass
        except Exception:
            self._sock.discard = True

    def _drive(self, gen: Any, *, peer_input: bool = True) -> tuple[int, Any]:
        """Run a tlslite generator until it wants input (WANT_READ) or produces a result.

        ``peer_input``: the generator is processing what the peer sent, so an unexpected
        exception from tlslite's parsers means malformed input (decode_error), not a bug.
        """
        self._peer_input = peer_input
        try:
            for result in gen:
                if result == 0 and isinstance(result, int):
                    return WANT_READ, None
                if result == 1 and isinstance(result, int):
                    continue  # "would block on write": cannot happen with our socket
                return 1, result
            return 1, None
        except TLSError:
            raise
        except Exception as exc:
            raise self._translate(exc) from None

    def _translate(self, exc: BaseException) -> TLSError:
        """Turn a tlslite exception into an aiotls error, sending an alert if tlslite did not."""
        during = not self.handshake_done
        if isinstance(exc, TLSRemoteAlert) and self.renegotiation_refused and not during:
            # The peer gave up after we refused its renegotiation: name that (the general
            # advice for its alert, handshake_failure, blames cipher suites).
            self.failed = True
            self._sock.discard = True
            return _renegotiation_error(exc.description)
        if isinstance(exc, TLSLocalAlert):
            self.failed = True
            self._sock.discard = True
            if self._tl._aiotls_error is not None:
                return self._tl._aiotls_error
            detail = _safe_str(exc.message)  # (tlslite sometimes passes an exception)
            if exc.description == _TLAlert.protocol_version:
                return _version_refused(self.server_side, self._settings, detail)
            if exc.description == _TLAlert.illegal_parameter and "downgrade protection" in detail:
                return _downgrade_detected(self._tl.version)
            return error_for_sent_alert(exc.description, _clean_detail(detail))
        if isinstance(exc, TLSRemoteAlert) and self._refused_without_certificate(exc):
            self.failed = True
            self._sock.discard = True
            return _no_client_certificate_error(exc.description, during_handshake=during)
        if isinstance(exc, TLSRemoteAlert):
            self.failed = True
            self._sock.discard = True
            description = exc.description
            if description == _TLAlert.close_notify and during \
                    and self._tl._recordLayer._aiotls_canceled:
                description = _TLAlert.user_canceled  # the close_notify it announced
            return error_for_received_alert(description, during_handshake=during,
                                            level=exc.level,
                                            tls13=self._tl._recordLayer._version > (3, 3))
        alert, detail = _ALERT_FOR_EXCEPTION.get(type(exc), (None, ""))
        if alert is None:
            for cls, (a, d) in _ALERT_FOR_EXCEPTION.items():
                if isinstance(exc, cls):
                    alert, detail = a, d
                    break
        if alert is None and isinstance(exc, SyntaxError):  # tlslite's codec.DecodeError
            alert, detail = _TLAlert.decode_error, "malformed message"
        if alert is None and isinstance(exc, TLSInternalError) and "Multiple extensions" in _safe_str(exc):
            alert, detail = _TLAlert.illegal_parameter, "duplicate extension"
        if alert is None and self._peer_input and isinstance(exc, _PARSER_FAILURES):
            # tlslite's parsers signal many malformed inputs with plain Python exceptions
            alert = _TLAlert.decode_error
            detail = f"malformed message from the peer ({type(exc).__name__} in the parser)"
        if isinstance(exc, TLSAbruptCloseError):
            alert, detail = None, "connection closed"
        if alert is None and not isinstance(exc, TLSAbruptCloseError):
            self.fail(_TLAlert.internal_error)
            return TLSError(
                f"internal error in the TLS engine: {type(exc).__name__}: {_safe_str(exc)}",
                cause="a bug in aiotls or tlslite-ng, possibly triggered by unusual peer input",
                hint="please report it with the handshake trace (python -m aiotls connect HOST PORT)",
                alert=AlertDescription.internal_error, code="internal-error",
            )
        self.fail(alert)
        text = _safe_str(exc) or detail
        if alert is None:
            return PeerMisbehaved(
                f"the peer closed the connection without an alert ({_clean_detail(text)})",
                cause="the peer gave up, crashed, or does not speak TLS on this port",
                hint="check the peer's logs, and that it speaks TLS on this port")
        return error_for_sent_alert(alert, _clean_detail(f"{detail}: {text}" if text != detail
                                                         else detail))

    def _refused_without_certificate(self, exc: TLSRemoteAlert) -> bool:
        """A client that answered a CertificateRequest with no certificate, refused now."""
        tl = self._tl
        return (not self.server_side and tl._aiotls_certificate_requested
                and tl._aiotls_credentials is None
                and exc.level == AlertLevel.fatal
                and exc.description in _MISSING_CLIENT_CERTIFICATE_ALERTS)

    # --- introspection -----------------------------------------------------------------------

    @property
    def version(self) -> str | None:
        v = tuple(self._tl.version) if self._tl.version else None
        return _VERSION_NAMES.get(v) if v else None

    def cipher_suite(self) -> int | None:
        session = self._tl.session
        return int(session.cipherSuite) if session is not None and session.cipherSuite else None

    def cipher_openssl_name(self) -> tuple[str, int] | None:
        sid = self.cipher_suite()
        if sid is None:
            return None
        suite = SUITES_BY_ID.get(sid)
        if suite is not None:
            return suite.openssl_name, suite.bits
        return CipherSuite.ietfNames.get(sid, f"0x{sid:04X}"), 0

    def group(self) -> str | None:
        curve = self._tl.ecdhCurve
        if curve is None:
            return None
        return _FAST_GROUPS.get(curve) or str(GroupName.toStr(curve))

    def alpn(self) -> str | None:
        session = self._tl.session
        proto = session.appProto if session is not None else None
        return bytes(proto).decode("ascii", "replace") if proto else None

    def peer_chain(self) -> list[bytes]:
        session = self._tl.session
        if session is None:
            return []
        chain = session.clientCertChain if self.server_side else session.serverCertChain
        return _chain_der(chain)

    def sni(self) -> str | None:
        if not self.server_side:
            return self.server_hostname
        session = self._tl.session
        name = session.serverName if session is not None else None
        return str(name) if name else None

    def ignored_sni(self) -> str | None:
        """Server side: an IP literal the client sent as SNI, which was ignored."""
        return self._tl._aiotls_ip_sni if self.server_side else None

    def verified_chain(self) -> list[bytes]:
        """The path the peer's certificate was verified along (leaf to trust anchor, DER);
        empty when nothing was verified (CERT_NONE, no certificate, a resumed session)."""
        policy = self._tl._aiotls_policy
        return [_crypto.der_bytes(c) for c in policy.path] if policy is not None else []

    def client_suites(self) -> tuple[int, ...]:
        """Server: the cipher suite code points the client offered."""
        return self._tl._aiotls_client_suites if self.server_side else ()

    def tls_unique(self) -> bytes | None:
        """RFC 5929 tls-unique: the first Finished's verify_data (TLS 1.2 only)."""
        if self.version != "TLSv1.2" or not self.handshake_done:
            return None
        return self._tl._aiotls_first_finished

    def resumed(self) -> bool:
        tl = self._tl
        if self.server_side and self.version == "TLSv1.3":
            # tlslite never sets `resumed` on TLS 1.3 servers: no Certificate sent means PSK.
            return self.handshake_done and not tl._aiotls_sent_certificate
        return bool(tl.resumed)

    def session(self) -> Any:
        """The client's session to resume later: tlslite's Session object (tickets arrive
        into it after the handshake) and, after a TLS 1.3 resumption, the tickets of the
        resumed session that were not used (see :func:`_one_ticket`)."""
        session = self._tl.session
        if session is None or self.server_side:
            return session
        unused = self._unused_tickets if self.resumed() else []
        if not unused and not getattr(session, "_aiotls_unused", None):
            return session
        state = copy.copy(session)  # (shares the list that later tickets arrive into)
        state._aiotls_unused = list(unused)
        return state

    def aead_implementation(self) -> tuple[str, str] | None:
        """(read cipher implementation, write cipher implementation), for tests and diagnose."""
        rl = self._tl._recordLayer
        read = rl._readState.encContext
        write = rl._writeState.encContext
        if read is None or write is None:
            return None
        return type(read).__module__ + "." + type(read).__name__, \
            type(write).__module__ + "." + type(write).__name__


def _renegotiation_error(alert: int) -> TLSError:
    """A fatal alert from a TLS 1.2 peer whose renegotiation we refused."""
    name = AlertDescription.name_of(alert)
    return AlertReceived(
        f"the peer tried to renegotiate the TLS 1.2 connection, which aiotls does not "
        f"support (it answered no_renegotiation), and then aborted with alert {name} "
        f"({alert})",
        cause="the peer renegotiates, typically to ask for a client certificate after the "
        "handshake or to refresh keys; aiotls never renegotiates (RFC 5746 lets it refuse)",
        hint="configure the peer not to renegotiate: request the client certificate in the "
        "initial handshake (verify_mode on the server), use TLS 1.3 (post-handshake "
        "authentication, KeyUpdate), or reconnect instead of refreshing keys",
        alert=alert, code="renegotiation-refused",
    )


_PARSER_FAILURES = (KeyError, IndexError, AssertionError, TypeError, ValueError, struct.error,
                    OverflowError, UnicodeError)


#: RecordError alerts from aiotls's record layer as the tlslite exceptions its handshake code
#: expects (the alert follows from the exception, see _ALERT_FOR_EXCEPTION).
_RECORD_ERRORS: dict[int, type[Exception]] = {
    _TLAlert.bad_record_mac: TLSBadRecordMAC,
    _TLAlert.record_overflow: TLSRecordOverflow,
    _TLAlert.unexpected_message: TLSUnexpectedMessage,
}


_ALERT_FOR_EXCEPTION: dict[type[BaseException], tuple[int, str]] = {
    TLSRecordOverflow: (_TLAlert.record_overflow, "record too long"),
    TLSBadRecordMAC: (_TLAlert.bad_record_mac, "record failed authentication"),
    # tlslite raises it, outside its record layer, for a TLS 1.3 CertificateVerify
    # signature or Finished value that does not verify: decrypt_error (RFC 8446 6.2).
    # decryption_failed is a TLS 1.0 alert that TLS 1.2 and 1.3 must never send.
    TLSDecryptionFailed: (_TLAlert.decrypt_error, "handshake verification failed"),
    TLSUnexpectedMessage: (_TLAlert.unexpected_message, "unexpected message"),
    TLSIllegalParameterException: (_TLAlert.illegal_parameter, "illegal parameter"),
    TLSDecodeError: (_TLAlert.decode_error, "malformed message"),
    TLSHandshakeFailure: (_TLAlert.handshake_failure, "handshake failure"),
    TLSInsufficientSecurity: (_TLAlert.insufficient_security, "insufficient security"),
    TLSUnknownPSKIdentity: (_TLAlert.unknown_psk_identity, "unknown PSK identity"),
    TLSProtocolException: (_TLAlert.decode_error, "protocol violation"),
}


#: Alerts with which servers refuse a client that answered their CertificateRequest with
#: no certificate: certificate_required (TLS 1.3), handshake_failure (TLS 1.2: OpenSSL,
#: aiotls), bad_certificate and certificate_unknown (Java), unexpected_message and
#: decode_error (stacks that cannot take an empty Certificate message).
_MISSING_CLIENT_CERTIFICATE_ALERTS = frozenset({
    _TLAlert.certificate_required, _TLAlert.handshake_failure, _TLAlert.bad_certificate,
    _TLAlert.certificate_unknown, _TLAlert.unexpected_message, _TLAlert.decode_error,
    _TLAlert.access_denied,
})


def _no_client_certificate_error(alert: int, *, during_handshake: bool) -> AlertReceived:
    """The error of a client that sent no certificate to a server that asked for one, and
    was then refused: the received alert's generic advice ("the peer rejected our
    certificate", "check that both ends speak TLS") points away from the cause."""
    name = AlertDescription.name_of(alert)
    stage = "during the handshake" if during_handshake else "just after the handshake"
    return AlertReceived(
        f"the server refused the connection with alert {name} ({alert}) {stage}, after it "
        "asked for a client certificate and this client sent none",
        cause="the server requires a client certificate and none is loaded on the client "
        "context",
        hint="load a certificate the server's CA accepts with load_cert_chain(certfile, "
        "keyfile) on the client context",
        alert=alert, code="client-certificate-required")


_VERSION_TUPLE_RE = re.compile(r"\((3), ([0-4])\)")
_OLD_VERSION_RE = re.compile(r"(?i)too (old|new) version: \(3, ([0-4])\)")


def _downgrade_detected(version: Any) -> PeerMisbehaved:
    """The error for a ServerHello whose random carries RFC 8446 4.1.3's downgrade sentinel."""
    chosen = _VERSION_NAMES.get(tuple(version), "an older version") if version else \
        "an older version"
    return PeerMisbehaved(
        f"the server chose {chosen} but its random carries the RFC 8446 4.1.3 downgrade "
        "sentinel, which says it supports a newer version this client also offered (sent "
        "alert illegal_parameter to the peer)",
        cause="something between the two ends removed the newer versions from the "
        "ClientHello (a downgrade attack), or the server is broken",
        hint="check the network path for a TLS-intercepting middlebox; do not lower "
        "maximum_version to get past this",
        alert=_TLAlert.illegal_parameter, code="downgrade-detected")


def _version_refused(server_side: bool, settings: Any, detail: str) -> PeerIncompatible:
    """The error for a protocol_version alert this end sent: which side offered what,
    and which side to change (tlslite's own text names neither)."""
    lo = _VERSION_NAMES.get(tuple(settings.minVersion), "?") if settings is not None else "?"
    hi = _VERSION_NAMES.get(tuple(settings.maxVersion), "?") if settings is not None else "?"
    allowed = lo if lo == hi else f"{lo} to {hi}"
    found = _OLD_VERSION_RE.search(detail)
    version = _VERSION_NAMES.get((3, int(found.group(2))), "SSLv3") if found else None
    newer = found is not None and found.group(1).lower() == "new"
    deprecated = (" (TLS 1.0 and 1.1 are deprecated, RFC 8996)"
                  if version in ("TLSv1", "TLSv1.1", "SSLv3") else "")
    if not server_side:
        what = (f"the server chose {version or 'a protocol version'}, which this client does "
                f"not allow (it allows {allowed})")
        if newer:
            cause = "the server answered with a version the client did not offer (a broken server)"
            hint = "check the server's TLS implementation"
        else:
            cause = f"the server supports only older TLS versions than this client allows{deprecated}"
            hint = (f"upgrade the server to {lo} or later; only if you must talk to it, lower "
                    "minimum_version on this client's context")
    else:
        offered = f"at most {version}" if version else "none of them in its supported_versions"
        what = (f"the client offered only TLS versions this server does not allow "
                f"({offered}; the server allows {allowed})")
        cause = f"the client supports only older TLS versions than this server allows{deprecated}"
        hint = (f"upgrade the client to {lo} or later; only if you must serve it, lower "
                "minimum_version on this server's context")
    return PeerIncompatible(f"{what} (sent alert protocol_version to the peer)", cause=cause,
                            hint=hint, alert=_TLAlert.protocol_version, code="protocol-version")



def _safe_str(value: object) -> str:
    """``str(value)`` for text taken from a tlslite exception, whatever it holds: ``""`` for
    None, the class name if its ``__str__`` fails (a message translated must never raise)."""
    if value is None:
        return ""
    try:
        return str(value)
    except Exception:
        return f"<{type(value).__name__}>"


def _clean_detail(detail: str) -> str:
    """tlslite's message, tidied: version tuples spelled as TLS versions, no trailing dot."""
    detail = _VERSION_TUPLE_RE.sub(
        lambda m: _VERSION_NAMES.get((3, int(m.group(2))), "SSLv3"), detail)
    detail = detail.strip().rstrip(".")
    return detail[:1].lower() + detail[1:] if detail else detail
