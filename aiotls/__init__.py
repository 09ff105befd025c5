"""aiotls: TLS 1.2 and 1.3 for async Python, built on a sans-IO core you can read and inspect.

:class:`TLSConnection` is one connection with no I/O of its own (bytes in, events and bytes
out), configured by a :class:`TLSContext`, which is also an :class:`ssl.SSLContext`.  What
drives a connection:

* :mod:`aiotls.asyncio` -- the event loop's TLS entry points (``create_connection``,
  ``start_server``, ``start_tls``, ...) over aiotls's own transport, on asyncio and uvloop;
* :mod:`aiotls.anyio` -- ``TLSStream`` and ``TLSListener`` for anyio, on asyncio and trio;
* :mod:`aiotls.compat` -- the ``ssl.SSLObject`` that ``TLSContext.wrap_bio()`` returns, so
  code that takes an ``ssl.SSLContext`` (asyncio's own TLS, uvloop, anyio, trio, httpx,
  aiohttp) runs on aiotls unchanged;
* :mod:`aiotls.sync` -- blocking sockets: ``TLSContext.wrap_socket()`` returns an
  ``ssl.SSLSocket``;
* ``python -m aiotls`` -- a command line to try, inspect and diagnose TLS.

Errors are :class:`TLSError` subclasses (all ``ssl.SSLError``) that say what happened, the
likely cause and the fix.
"""

from __future__ import annotations

from ._identity import CertificateRequest, Identity
from .connection import ConnectionState, TLSConnection, TLSSession
from .context import CipherSuite, TLSContext, create_default_context
from .errors import (
    AlertDescription,
    AlertReceived,
    CertificateError,
    HandshakeTimeoutError,
    InternalError,
    PeerIncompatible,
    PeerMisbehaved,
    ShutdownTimeoutError,
    TLSConfigurationError,
    TLSError,
    TLSUsageError,
    TruncationError,
)
from .events import (
    ClientCertificateReceived,
    CloseNotifyReceived,
    ConnectionTerminated,
    DataReceived,
    Event,
    HandshakeCompleted,
    LentDataReceived,
)

__version__ = "0.1.0"

__all__ = [
    "AlertDescription",
    "AlertReceived",
    "CertificateError",
    "CertificateRequest",
    "CipherSuite",
    "ClientCertificateReceived",
    "CloseNotifyReceived",
    "ConnectionState",
    "ConnectionTerminated",
    "DataReceived",
    "Event",
    "HandshakeCompleted",
    "HandshakeTimeoutError",
    "Identity",
    "InternalError",
    "LentDataReceived",
    "PeerIncompatible",
    "PeerMisbehaved",
    "ShutdownTimeoutError",
    "TLSConfigurationError",
    "TLSConnection",
    "TLSContext",
    "TLSError",
    "TLSSession",
    "TLSUsageError",
    "TruncationError",
    "__version__",
    "create_default_context",
]
