"""The handshake trace: each connection's handshake as readable log records.

A context with ``trace_handshakes`` on (``AIOTLS_TRACE=1`` when it was made) gives each
of its connections a :class:`HandshakeTrace`, which logs one INFO record per step on the
``aiotls.trace`` logger: every handshake message, ChangeCipherSpec and alert, sent or
received, with the key fields of each (:mod:`.describe`), and a last line saying the
handshake completed or failed, each with the time since the connection's first handshake
byte::

    client#1 localhost   +0.0 ms  client -> server  ClientHello  TLS 1.3 TLS 1.2 ...
    client#1 localhost   +4.1 ms  server -> client  ServerHello  TLS 1.3, ...

Where it looks: the plaintext of every record the engine sends passes through the record
layer's ``sendRecord`` and of every record it reads through its ``recvRecord``
(:mod:`.records`), whichever path wrote or asked for it; the lean paths that read their
peer's messages straight from the socket report what they take (:mod:`.plainread`,
:mod:`.client13`, :mod:`.server13`, and the engine's ticket intake), and
``_handshakeDone`` (:mod:`.tlsconn`) and the connection's end (:meth:`Traced.ended`)
close it.  Each of those places checks one attribute that is ``None`` when tracing is
off; aiotls's own record layer, which carries the application data after the handshake,
has no check at all.  Nothing here can fail a handshake: a message it cannot read is
logged as ``unparsed``, and any other failure of its own is swallowed.  It never logs
secrets: only names, counts and sizes (:mod:`.describe`).

The time comes from the connection's clock (``TLSConnection(now=...)``), as everything
in the core: the trace reads no clock of its own.
"""

from __future__ import annotations

import datetime
import itertools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tlslite.constants import ContentType

from ..errors import TLSError
from .describe import Describer, alert_text, suite_name, version_name

if TYPE_CHECKING:
    from .tlsconn import _TLSLiteConnection

#: The logger every trace line goes to (INFO).  Its level is INFO unless set otherwise,
#: so a handler anywhere up the tree shows the lines (``logging.basicConfig()``).
LOGGER = logging.getLogger("aiotls.trace")
if LOGGER.level == logging.NOTSET:
    LOGGER.setLevel(logging.INFO)

#: Numbers the connections in the trace (``client#3``), so interleaved lines can be told apart.
_COUNTER = itertools.count(1)


class HandshakeTrace:
    """One connection's trace (see the module): fed the plaintext it sends and receives."""

    def __init__(self, *, server_side: bool, server_hostname: str | None,
                 now: Callable[[], datetime.datetime]) -> None:
        self.server_side = server_side
        role = "server" if server_side else "client"
        self.label = f"{role}#{next(_COUNTER)}" + (f" {server_hostname}" if server_hostname
                                                    else "")
        self._now = now
        self._first_byte_time: datetime.datetime | None = None
        self._record_time: datetime.datetime | None = None
        self._pending = {True: bytearray(), False: bytearray()}  # by "sent"
        self._words = Describer()
        self.complete = False
        self.ended_logged = False

    # --- what the engine hands over ------------------------------------------------------

    def sent(self, content_type: int, data: bytes | bytearray) -> None:
        self._record(True, content_type, data)

    def received(self, content_type: int, data: bytes | bytearray) -> None:
        self._record(False, content_type, data)

    def received_flight(self, ccs: bool, messages: list[bytes]) -> None:
        """Messages a lean path read straight from the socket (after a middlebox
        ChangeCipherSpec if ``ccs``)."""
        if ccs:
            self.received(ContentType.change_cipher_spec, b"\x01")
        for message in messages:
            self.received(ContentType.handshake, message)

    def done(self, tl: Any) -> None:
        """The handshake completed (tlslite's ``_handshakeDone``)."""
        try:
            self.complete = True
            words = self._words
            version = tuple(tl.version) if tl.version else words.version
            session = tl.session
            suite = session.cipherSuite if session is not None and session.cipherSuite \
                else words.suite
            parts = [version_name((version[0] << 8) | version[1]) if version else "?",
                     suite_name(suite) if suite else "?",
                     "resumed" if words.resumed else "full handshake"]
            self._record_time = None
            self._log(f"handshake complete in {self._elapsed_ms():.1f} ms ({', '.join(parts)})")
        except Exception:  # (a trace never fails a handshake)
            LOGGER.debug("trace failed", exc_info=True)

    def ended(self, err: TLSError | None) -> None:
        """The connection ended (failed with ``err``, or closed)."""
        if self.ended_logged or (err is None and self.complete):
            return
        self.ended_logged = True
        self._record_time = None
        try:
            if err is None:
                text = "handshake ended: the connection closed before it completed"
            else:
                stage = "connection failed after the handshake" if self.complete \
                    else "handshake failed"
                text = f"{stage}: {err.what} [{err.code}]"
            self._log(text)
        except Exception:
            LOGGER.debug("trace failed", exc_info=True)

    # --- the byte streams ------------------------------------------------------------------

    def _record(self, sent: bool, content_type: int, data: bytes | bytearray) -> None:
        try:
            self._record_time = self._now()  # (the record's time, for each of its lines)
            if self._first_byte_time is None:
                self._first_byte_time = self._record_time
            if content_type == ContentType.handshake:
                pending = self._pending[sent]
                pending += data
                while len(pending) >= 4:
                    size = 4 + int.from_bytes(pending[1:4], "big")
                    if len(pending) < size:
                        break
                    message = bytes(pending[:size])
                    del pending[:size]
                    self._one_message(sent, message)
            elif content_type == ContentType.alert:
                if len(data) == 2:
                    self._step(sent, "Alert", alert_text(data[0], data[1], sent=sent))
                else:
                    self._step(sent, "Alert", f"malformed ({len(data)} bytes)")
            elif content_type == ContentType.change_cipher_spec:
                self._step(sent, "ChangeCipherSpec",
                           "(middlebox compatibility)" if self._words.tls13 else "")
        except Exception:
            LOGGER.debug("trace failed", exc_info=True)

    def _one_message(self, sent: bool, message: bytes) -> None:
        try:
            name, details = self._words.message(message)
        except Exception:
            name = f"unparsed handshake message {message[0]}"
            details = f"{len(message) - 4} bytes"
        self._step(sent, name, details)

    # --- the lines -----------------------------------------------------------------------------

    def _elapsed_ms(self) -> float:
        """Since the first handshake byte, to the record being described (else now)."""
        if self._first_byte_time is None:
            return 0.0
        return ((self._record_time or self._now()) - self._first_byte_time).total_seconds() * 1000

    def _step(self, sent: bool, name: str, details: str) -> None:
        ours, theirs = ("server", "client") if self.server_side else ("client", "server")
        direction = f"{ours} -> {theirs}" if sent else f"{theirs} -> {ours}"
        self._log(f"{direction}  {name}" + (f"  {details}" if details else ""))

    def _log(self, text: str) -> None:
        elapsed = f"+{self._elapsed_ms():.1f} ms"
        step = f"{elapsed:>10}  {text}"
        LOGGER.info("%s %s", self.label, step,
                    extra={"aiotls_trace": step, "aiotls_connection": self.label})


def attach(tl: Any, *, server_side: bool, server_hostname: str | None,
           now: Callable[[], datetime.datetime]) -> None:
    """Trace the handshake of tlslite's connection ``tl`` (and its record layer)."""
    trace = HandshakeTrace(server_side=server_side, server_hostname=server_hostname, now=now)
    tl._aiotls_trace = tl._recordLayer._aiotls_trace = trace


class Traced:
    """The engine's side of the trace (a base of :class:`aiotls._engine.Engine`)."""

    _tl: _TLSLiteConnection

    def ended(self, err: TLSError | None) -> None:
        """The connection ended: the trace says how, if the handshake is traced."""
        trace = self._tl._aiotls_trace
        if trace is not None:
            trace.ended(err)
