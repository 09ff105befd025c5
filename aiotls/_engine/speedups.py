"""The switch that turns every speed-up off: ``AIOTLS_SPEEDUPS=0`` in the environment.

With it, tlslite-ng's own code runs behind the same seams, as it ships: its key schedule,
HKDF/HMAC helpers, transcript hashes, cipher-suite filters and enum lookups
(:mod:`.rebind`), its extension parsers and message serialisation (:mod:`.quick`), its
pure-Python key exchange and signatures (:mod:`.accel`), its ClientHello padding, and
its handshake methods where aiotls has a lean path (:mod:`.client_hello`, :mod:`.plainread`,
:mod:`.server13`, :mod:`.client13`).
What stays is what is not a speed-up: aiotls's record layer (the one owner of record
protection, and the AEAD ciphers of ``cryptography`` that tlslite-ng itself would use
through M2Crypto), certificate verification, tickets, the fixes of :mod:`.fixes`, the
peer's certificates parsed by OpenSSL (tlslite-ng's parser accepts some malformed ones),
and TLS 1.2 DHE through OpenSSL (it also enforces the RFC 7919 groups).

Tests that check the speed-ups themselves (that OpenSSL does the work, that a handshake
never reaches tlslite-ng's slow versions) carry the ``speedups`` marker and are deselected
when the switch is off.  CI runs the whole
suite both ways, so a speed-up that changed behaviour fails a test.

Read once, at import: set the variable before the first ``import aiotls``.
"""

from __future__ import annotations

import os

#: True unless ``AIOTLS_SPEEDUPS`` is ``0``, ``off``, ``false`` or ``no``.
ENABLED: bool = os.environ.get("AIOTLS_SPEEDUPS", "1").strip().lower() not in {
    "0", "off", "false", "no"}
