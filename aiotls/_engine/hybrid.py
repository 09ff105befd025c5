"""X25519MLKEM768 in tlslite's key-exchange shapes, in both speed-up modes.

tlslite-ng 0.8.2 already speaks the hybrid groups of draft-ietf-tls-ecdhe-mlkem: its
handshakes (client and server, HelloRetryRequest included) call ``_getKEX(group)`` and,
for a KEM group, ``get_random_private_key`` / ``calc_public_value`` (client share),
``encapsulate_key`` (server, via ``_KEMEncaps``) and ``calc_shared_key`` (client).  Its own
``KEMKeyExchange`` needs the pure-Python kyber-py, which aiotls does not use: the engine's
``_getKEX`` hands out :class:`HybridKeyExchange` instead (with or without the speed-ups),
backed by :mod:`aiotls._crypto_pq` (ML-KEM-768 and X25519 in OpenSSL).

tlslite's settings check knows the KEM group names only when kyber-py is importable:
:class:`HybridSettings` checks the rest of the settings and puts the hybrid names back.
"""

from __future__ import annotations

from typing import Any

from tlslite import HandshakeSettings
from tlslite.constants import GroupName
from tlslite.errors import TLSIllegalParameterException, TLSInternalError
from tlslite.extensions import KeyShareEntry

from .. import _crypto_pq
from . import speedups

#: Code point -> aiotls name of the hybrid groups aiotls offers.
HYBRID_GROUPS: dict[int, str] = {getattr(GroupName, _crypto_pq.NAME): _crypto_pq.NAME}
assert _crypto_pq.CODE_POINT in HYBRID_GROUPS

_IMPL = _crypto_pq.X25519MLKEM768()


class HybridKeyExchange:
    """tlslite's ``KEMKeyExchange`` interface over :class:`aiotls._crypto_pq.X25519MLKEM768`."""

    __slots__ = ("group", "version")

    def __init__(self, group: int, version: tuple[int, int]) -> None:
        if group not in HYBRID_GROUPS:
            raise TLSInternalError("called with wrong group")
        self.group = group
        self.version = version

    # the client: a key pair for the ClientHello, then the secret from the ServerHello
    def get_random_private_key(self) -> Any:
        try:
            return _IMPL.generate()
        except ValueError as exc:
            raise TLSInternalError(str(exc)) from None

    def calc_public_value(self, private: Any, point_format: str = "uncompressed") -> bytearray:
        return _IMPL.client_share(private)

    def calc_shared_key(self, private: Any, key_encaps: Any,
                        valid_point_formats: Any = None) -> bytearray:
        try:
            return _IMPL.client_secret(private, key_encaps)
        except ValueError as exc:
            raise TLSIllegalParameterException(str(exc)) from None

    # the server: (shared secret, its key share) for the client's share
    def encapsulate_key(self, public: Any) -> tuple[bytearray, bytearray]:
        try:
            return _IMPL.server_answer(public)
        except ValueError as exc:
            raise TLSIllegalParameterException(str(exc)) from None


class HybridShares:
    """A client's X25519 share made right after its X25519MLKEM768 share (the two shares of
    one ClientHello) reuses the hybrid's X25519 key, as Go's client does
    (draft-ietf-tls-hybrid-design 3.2 allows a component key to be reused between the
    shares of one ClientHello): one X25519 key pair fewer per handshake.  Any other share
    made in between (or a HelloRetryRequest's) gets a fresh key.  With the speed-ups on only
    (tlslite's own X25519 keeps its keys in another form)."""

    #: (X25519 public value, private key) of the hybrid share just made, until the next share
    _aiotls_hybrid_x25519: Any = None

    def _genKeyShareEntry(self, group: int, version: tuple[int, int]) -> Any:
        pending, self._aiotls_hybrid_x25519 = self._aiotls_hybrid_x25519, None
        if pending is not None and group == GroupName.x25519:
            return KeyShareEntry().create(group, *pending)
        entry = super()._genKeyShareEntry(group, version)  # type: ignore[misc]
        if group == _CODE_POINT and speedups.ENABLED:
            self._aiotls_hybrid_x25519 = (entry.key_exchange[-_crypto_pq.X25519_SHARE:],
                                          entry.private[1])
        return entry


_CODE_POINT = _crypto_pq.CODE_POINT


class HybridSettings(HandshakeSettings):  # type: ignore[misc]
    """tlslite's settings whose ``validate()`` accepts the hybrid group names: tlslite
    checks the rest without them (it lists them only with kyber-py installed), and the
    validated copy -- of this class too -- gets them back, in their places."""

    eccCurves: list[str]
    keyShares: list[str]

    def validate(self) -> Any:
        names = _NAMES.intersection(self.eccCurves) | _NAMES.intersection(self.keyShares)
        if not names:
            return super().validate()
        curves, shares = list(self.eccCurves), list(self.keyShares)
        self.eccCurves = [c for c in curves if c not in _NAMES]
        self.keyShares = [k for k in shares if k not in _NAMES]
        try:
            validated = super().validate()
        finally:
            self.eccCurves, self.keyShares = curves, shares
        validated.__class__ = HybridSettings
        validated.eccCurves, validated.keyShares = list(curves), list(shares)
        return validated


_NAMES = frozenset(HYBRID_GROUPS.values())
