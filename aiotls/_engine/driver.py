"""The engine's driver: :class:`Engine`, the in-memory socket, and generator stepping.

:class:`Engine` is what :class:`aiotls.TLSConnection` talks to, through verbs only: it
feeds whole records (:meth:`Engine.feed`), steps the handshake (:meth:`Engine.step_handshake`),
gives post-handshake control records to tlslite (:meth:`Engine.control_record`, or
:meth:`Engine.control_message` for a record the connection decrypted already), takes the
bytes to send (:meth:`Engine.take_output`), and after the handshake lends the connection
its record verbs (:meth:`Engine.take_over_records`).

tlslite reads through ``recv()`` and writes through ``send()``/``sendall()``.  The
:class:`_MemorySocket` hands out the inbox and raises ``OSError(EWOULDBLOCK)`` when it is
empty, which tlslite turns into "yield 0" (a bare ``BlockingIOError()`` would crash it: it
reads ``args[0]``); writes go to an outbox.  :meth:`Engine._drive` runs a generator until
it wants input or a result, and turns anything tlslite raises into an aiotls error
(:mod:`.translate`).  The engine reads no clock: the connection passes ``now``.
"""

from __future__ import annotations

import copy
import datetime
import errno
import secrets
from collections.abc import Callable, Generator
from typing import Any

from tlslite.constants import AlertDescription as _TLAlert
from tlslite.constants import (
    AlertLevel,
    CipherSuite,
    ContentType,
    GroupName,
    HandshakeType,
)
from tlslite.messages import Alert

from .. import _crypto, _verify
from .. import _record as _record_mod
from .._record import RecordError, handshake_fragment_pending
from .._record import RecordLayer as RecordProtection
from ..context import SUITES_BY_ID, TLSContext
from ..errors import AlertDescription, PeerMisbehaved, TLSError, TLSUsageError
from . import keylog, trace
from .accel import _FAST_GROUPS
from .codec import SwitchedParser
from .common import _ALERT, _CERT_OPTIONAL, _CERT_REQUIRED, _CLOSE_NOTIFY, _VERSION_NAMES, WANT_READ
from .quick import _QUICK_MESSAGES
from .settings import _prepare, connection_settings
from .tickets import _one_ticket
from .tlsconn import _SPENT_TRANSCRIPT, make_connection
from .translate import translate
from .verification import _chain_der, _Policy


class _MemorySocket:
    """What tlslite sees as its socket: an inbox of whole records and an outbox."""

    __slots__ = ("discard", "inbox", "outbox")

    def __init__(self) -> None:
        self.inbox = bytearray()
        #: Chunks to transmit, in order (tlslite's writes and aiotls's sealed records); a
        #: list only while there are some (one object less for the GC, docs/performance.md).
        self.outbox: list[bytes | bytearray] | tuple[()] = ()
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
            if self.outbox:
                self.outbox.append(data)
            else:
                self.outbox = [data]
        return len(data)

    def sendall(self, data: bytes | bytearray) -> None:
        self.send(data)

    def close(self, *_: Any) -> None:
        pass

    shutdown = settimeout = close

    def gettimeout(self) -> float | None:
        return None

    def getsockname(self) -> tuple[str, int]:
        return ("0.0.0.0", 0)

    def getpeername(self) -> tuple[str, int]:
        return ("0.0.0.0", 0)


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


class Engine(trace.Traced):
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
        #: The connection's one record layer: every record under keys goes through it.
        self._records = RecordProtection(ctx._padding_fn)
        tl = make_connection(self._sock, self._records)
        tl.closeSocket = False
        tl._aiotls_now = now
        tl._aiotls_defer_client_cert = server_side and ctx.post_handshake_auth
        tl._aiotls_require_ems = ctx.require_extended_master_secret
        if server_side and ctx.num_tickets:
            tl._aiotls_tickets = ctx._ticket_sealer()
        if ctx._keylog is not None:
            keylog.attach(tl, ctx._keylog)
        if ctx._trace_handshakes:
            trace.attach(tl, server_side=server_side, server_hostname=server_hostname, now=now)
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
        self._unused_tickets: list[tuple[Any, Any]] | tuple[()] = ()
        self._reader: Generator[Any, None, None] | None = None
        #: The connection decrypts application data itself (see take_over_records).
        self.records_taken_over = False
        self.tls13 = False
        #: The receive path's verbs once records are taken over (see docs/performance.md)
        self.opener = self._records
        self._peer_input = True
        if server_side:
            # (TLSConnection.check_context has made sure the context has a certificate)
            self._settings = tl._aiotls_settings = connection_settings(ctx, prepared, tl, True)
            self._gen: Any = tl.handshakeServerAsync(
                certChain=prepared.cert_chain, privateKey=prepared.private_key,
                reqCert=verify_mode != 0 and not ctx.post_handshake_auth,
                settings=self._settings, alpn=prepared.alpn,
            )
        else:
            sni = server_hostname
            if sni is not None and _verify.is_ip_address(sni):
                sni = None  # RFC 6066: no IP literals in SNI
            self._settings = connection_settings(ctx, prepared, tl, False)
            tl._aiotls_settings = self._settings
            tl._aiotls_alpn = prepared.alpn
            if prepared.cert_chain is not None:
                tl._aiotls_credentials = (prepared.private_key, prepared.cert_chain)
            if session is not None:
                session, self._unused_tickets = _one_ticket(session, now().timestamp())
            if session is not None and session.tls_1_0_tickets and not session.sessionID:
                # RFC 5077 3.4: present a TLS 1.2 ticket with a session ID of our own; the
                # server echoes it only if it accepts the ticket (see _clientResume).
                session = copy.copy(session)
                session.sessionID = bytearray(secrets.token_bytes(32))
            self._gen = tl.handshakeClientCert(
                certChain=prepared.cert_chain, privateKey=prepared.private_key,
                settings=self._settings, serverName=sni, alpn=prepared.alpn,
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
        self._sock.outbox = ()
        return out  # type: ignore[return-value]

    def _has_input(self) -> bool:
        return bool(self._sock.inbox) or bool(self._tl.sock._read_buffer) \
            or self._tl._recordLayer.has_opened()

    # --- driving -----------------------------------------------------------------------------

    def step_handshake(self) -> bool:
        """Advance the handshake; True once it has completed."""
        if self._drive(self._gen)[0] == WANT_READ:
            return False
        self.handshake_done = True
        self._gen = None  # frees the handshake's messages and intermediate state,
        self._tl._aiotls_spend_transcript()  # and the transcript nothing will read again
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
                # (no blame class fits: a limit of the protocol itself, reached locally)
                raise getattr(exc, "error", None) or TLSError(
                    f"cannot send: {exc}",
                    cause="this connection has protected 2^64 - 1 records, the most TLS allows "
                    "under one key (TLS 1.2 cannot change keys)",
                    hint="open a new connection", alert=exc.alert,
                    code="sequence-exhausted") from None
            self._sock.send(sealed)
            return
        self._drive(self._tl.writeAsync(data), peer_input=False)

    def seal_now(self, data: bytes | bytearray | memoryview) -> bytes | None:
        """The record for ``data`` to send now if the record layer took over, no output
        waits and ``data`` fits one short TLS 1.3 record; else ``None`` (nothing done)."""
        sock = self._sock
        return None if not self.records_taken_over or sock.outbox or sock.discard \
            else self._records.seal_small(data)

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
        engine's record verbs (``opener``'s ``open_small``, ``open_run``, ``open``,
        :meth:`write`), if aiotls's record layer protects both directions (every AEAD suite
        enabled by default; CBC and CCM stay on tlslite's record layer and :meth:`read`)."""
        records = self._records
        if self.version not in ("TLSv1.3", "TLSv1.2") or not (
                records.protects(reading=True) and records.protects(reading=False)):
            return False
        # tlslite's send limit: content bytes per record (RFC 8449 record_size_limit, less
        # TLS 1.3's content type byte; 2^14 without one)
        records.set_send_limit(int(self._tl._recordLayer.send_record_limit))
        self.records_taken_over = True
        self.tls13 = records.tls13
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
    def records(self) -> RecordProtection:
        """The connection's record layer (for tests and diagnostics: the connection itself
        uses the verbs above)."""
        return self._records

    def seal_record(self, content_type: int, content: bytes) -> bytes:
        """One record of any content type under the current write keys, in sequence (for
        tests that need records an honest peer does not send, such as an empty one)."""
        return self._records.seal_record(content_type, content)

    def held_input(self) -> int:
        """Bytes of peer input the engine holds unprocessed: queued records, tlslite's
        read-ahead, partial handshake messages (for tests of memory bounds)."""
        tl = self._tl
        return (len(self._sock.inbox) + len(tl.sock._read_buffer)
                + sum(len(b) for b in tl._defragmenter.buffers.values()))

    def kept_tickets(self) -> list[Any]:
        """Client: the TLS 1.3 tickets kept for the session (tlslite's NewSessionTicket
        objects, with their receipt time), oldest first (for tests)."""
        return list(self._tl.tickets)

    def transcript(self) -> bytes | None:
        """The handshake messages hashed so far (for tests); None once spent."""
        kept = self._tl._handshake_hash
        return None if kept is _SPENT_TRANSCRIPT else bytes(kept.digest("intrinsic"))

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
            parser = SwitchedParser(message)
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
            if tl._aiotls_trace is not None:
                tl._aiotls_trace.received(ContentType.handshake, message)
            ticket.time = tl._aiotls_now().timestamp()
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
            raise (err := translate(self, exc)) from err.__cause__

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

    def requested_cas(self) -> tuple[bytes, ...] | None:
        """Client: the CA names (DER) of the server's CertificateRequest; None without one."""
        return self._tl._aiotls_requested_cas

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
            # tlslite never sets `resumed` on TLS 1.3 servers: no Certificate, no external PSK.
            return self.handshake_done and not tl._aiotls_sent_certificate \
                and tl._aiotls_psk_used is None
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
        """(read, write) AEAD classes, for tests and diagnose: aiotls's record layer's where
        it holds the keys, else tlslite's cipher object's."""
        rl, records = self._tl._recordLayer, self._records
        ciphers = [records._read.aead if records._read else rl._readState.encContext,
                   records._write.aead if records._write else rl._writeState.encContext]
        if None in ciphers:
            return None
        read, write = (type(c).__module__ + "." + type(c).__name__ for c in ciphers)
        return read, write

