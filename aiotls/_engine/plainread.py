"""The peer's hello read straight from the socket's inbox.

tlslite reads every handshake message through its generator stack: the record socket, its
record layer (for an unprotected record: a null cipher), the defragmenter, then
``_getMsg``'s checks, the transcript and the message's parser.  The first message of a
handshake -- the server's ClientHello, the client's ServerHello -- nearly always comes
alone in one unprotected record.  :meth:`PlainHellos._getMsg` waits for a whole record as
tlslite does, and if that record holds exactly one whole message of the type asked for,
unprotected, with nothing buffered before it, parses it with the same (quick) message
class, then takes the record, adds the message to the transcript and hands it over, as
tlslite's ``_getMsg`` would.  Anything else -- another record type or message type, more
or less than one message, a record over the limit, keys installed, a message that does not
parse -- is left in the inbox for tlslite's ``_getMsg``, whose errors and alerts it is.
``tests/test_lean13.py`` (side "plain") and ``tests/test_plainread.py`` check bytes and
state against tlslite's reading.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from tlslite.constants import ContentType, HandshakeType

from . import speedups
from .codec import FastParser
from .common import _Hooks
from .quick import _QUICK_MESSAGES

#: Switched off by tests to run tlslite's reading for the same handshake.
ENABLED = speedups.ENABLED

_CLIENT_HELLO = _QUICK_MESSAGES["ClientHello"]
_SERVER_HELLO = _QUICK_MESSAGES["ServerHello"]
_HELLOS = {HandshakeType.client_hello: lambda: _CLIENT_HELLO(False),
           HandshakeType.server_hello: _SERVER_HELLO}


class PlainHellos(_Hooks):  # type: ignore[misc]
    """A lone unprotected hello read without tlslite's record stack (see the module)."""

    #: How many messages this connection read here (not through tlslite's stack).
    _aiotls_plain_reads = 0

    def _getMsg(self, expectedType: Any, secondaryType: Any = None,
                constructorType: Any = None) -> Generator[Any, None, None]:
        make = _HELLOS.get(secondaryType) if ENABLED and expectedType == ContentType.handshake \
            else None
        if make is not None:
            layer = self._recordLayer
            sock = layer._recordSocket
            while not layer._opened and not sock.ready() and not self._defragmenter.buffers[
                    ContentType.handshake]:
                yield 0  # WANT_READ, as tlslite's record socket
            message = self._aiotls_plain_hello(secondaryType, make)
            if message is not None:
                yield message
                return
        yield from super()._getMsg(expectedType, secondaryType, constructorType)

    def _aiotls_plain_hello(self, kind: int, make: Any) -> Any:
        """The message, read and taken as tlslite's ``_getMsg`` would; None, with nothing
        taken, for anything tlslite's reading must see."""
        layer = self._recordLayer
        if layer._opened or layer.records._read is not None or layer.early_data_ok \
                or layer._readState.encContext is not None \
                or layer._readState.macContext is not None \
                or any(self._defragmenter.buffers.values()):
            return None
        inbox = layer._recordSocket._inbox()
        if len(inbox) < 9 or inbox[0] != ContentType.handshake or inbox[5] != kind:
            return None
        length = (inbox[3] << 8) | inbox[4]
        if length > layer.recv_record_limit or len(inbox) < 5 + length or length < 4 \
                or int.from_bytes(inbox[6:9], "big") != length - 4:
            return None
        data = bytearray(inbox[5:5 + length])
        parser = FastParser(data)
        parser.get(1)
        try:
            message = make().parse(parser)
        except Exception:  # (tlslite's reading raises it again, with its alert)
            return None
        del inbox[:5 + length]
        self._handshake_hash.update(data)
        if self._aiotls_trace is not None:
            self._aiotls_trace.received(ContentType.handshake, data)
        self._aiotls_plain_reads += 1
        return message
