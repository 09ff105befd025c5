"""Constants shared by the engine's modules."""

from __future__ import annotations

from typing import Any

from tlslite.constants import AlertDescription as _TLAlert
from tlslite.constants import (
    AlertLevel,
)

#: TLS 1.3 PSK modes: TLSContext.psk_modes, by default ("psk_dhe_ke",) -- with (EC)DHE only,
#: so resumption keeps forward secrecy; a client allowing nothing else gets a full handshake
#: (see _TLSLiteConnection._aiotls_screen_client_hello).
_VERSION_TUPLES = {"TLSv1": (3, 1), "TLSv1.1": (3, 2), "TLSv1.2": (3, 3), "TLSv1.3": (3, 4)}
_VERSION_NAMES = {v: k for k, v in _VERSION_TUPLES.items()}
_CERT_REQUIRED, _CERT_OPTIONAL = 2, 1

WANT_READ = 0
_ALERT = 21
#: The close_notify alert body: level warning, description close_notify.
_CLOSE_NOTIFY = bytes((AlertLevel.warning, _TLAlert.close_notify))


#: The base of the mixins that make up the engine's tlslite connection class (tlsconn.py):
#: ``object`` at run time, ``Any`` to the type checker (they extend tlslite's untyped class).
_Hooks: Any = object
