"""aiotls: a sans-IO TLS engine for asyncio you can read, inspect and extend.

The core is :class:`TLSConnection` (bytes in, events and bytes out), configured by a
:class:`TLSContext`.  Adapters for asyncio, anyio and an ``ssl``-compatible facade drive
the same state machine.
"""

from __future__ import annotations

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
    "CipherSuite",
    "ClientCertificateReceived",
    "CloseNotifyReceived",
    "ConnectionState",
    "ConnectionTerminated",
    "DataReceived",
    "Event",
    "HandshakeCompleted",
    "HandshakeTimeoutError",
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
