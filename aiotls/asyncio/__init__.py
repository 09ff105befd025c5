"""asyncio adapters: drop-ins for the loop's TLS methods and for asyncio Streams.

Every function takes an :class:`aiotls.TLSContext` where the stdlib takes an
``ssl.SSLContext``, and works on the default event loop and on uvloop.
"""

from __future__ import annotations

from .api import create_connection, create_server, start_tls
from .protocol import HandshakeTimeoutError, ShutdownTimeoutError, TLSProtocol
from .streams import open_connection, start_server, upgrade_stream
from .tickets import watch_ticket_keys

__all__ = [
    "HandshakeTimeoutError",
    "ShutdownTimeoutError",
    "TLSProtocol",
    "create_connection",
    "create_server",
    "open_connection",
    "start_server",
    "start_tls",
    "upgrade_stream",
    "watch_ticket_keys",
]
