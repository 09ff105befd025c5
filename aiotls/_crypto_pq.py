"""The hybrid post-quantum key exchange X25519MLKEM768, through ``cryptography``.

The second module allowed to import ``cryptography.hazmat`` (after :mod:`aiotls._crypto`):
it holds only this group, whose ML-KEM half needs a ``cryptography`` that has
``cryptography.hazmat.primitives.asymmetric.mlkem`` and an OpenSSL with ML-KEM-768 (the
wheels of cryptography 48 bring their own; see :func:`unavailable_reason`).

The wire format is draft-ietf-tls-ecdhe-mlkem's (code point 0x11EC), ML-KEM first:

* client key share: ML-KEM-768 encapsulation key (1184 bytes) || X25519 public key (32);
* server key share: ML-KEM-768 ciphertext (1088 bytes) || X25519 public key (32);
* shared secret:    ML-KEM-768 shared secret (32 bytes) || X25519 shared secret (32).

The client makes both key pairs (:meth:`X25519MLKEM768.generate`) and later decapsulates
(:meth:`X25519MLKEM768.client_secret`); the server never has a private key of its own to
keep: it encapsulates to the client's key and answers in one step
(:meth:`X25519MLKEM768.server_answer`).  Bad peer input raises ``ValueError``; the engine
turns that into an ``illegal_parameter`` alert.
"""

from __future__ import annotations

import functools
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import x25519

mlkem: Any
try:  # (cryptography 47 and later)
    from cryptography.hazmat.primitives.asymmetric import mlkem
except ImportError:  # pragma: no cover - an older cryptography
    mlkem = None

#: The group's name in aiotls (as its other names: lowercase) and its code point.
NAME = "x25519mlkem768"
CODE_POINT = 0x11EC

MLKEM768_ENCAPSULATION_KEY = 1184
MLKEM768_CIPHERTEXT = 1088
X25519_SHARE = 32
CLIENT_SHARE_SIZE = MLKEM768_ENCAPSULATION_KEY + X25519_SHARE  # 1216
SERVER_SHARE_SIZE = MLKEM768_CIPHERTEXT + X25519_SHARE  # 1120


@functools.cache
def unavailable_reason() -> str | None:
    """None if ML-KEM-768 works here; otherwise why not (checked once, by making a key)."""
    import cryptography

    if mlkem is None:
        return (f"cryptography {cryptography.__version__} has no ML-KEM "
                "(cryptography.hazmat.primitives.asymmetric.mlkem)")
    try:
        mlkem.MLKEM768PrivateKey.generate()
    except UnsupportedAlgorithm:
        return (f"cryptography {cryptography.__version__} is built against an OpenSSL "
                "without ML-KEM-768")
    return None


def available() -> bool:
    """True if X25519MLKEM768 can be used with the installed ``cryptography``."""
    return unavailable_reason() is None


def _x25519_secret(private: x25519.X25519PrivateKey, share: bytes) -> bytes:
    try:
        secret = private.exchange(x25519.X25519PublicKey.from_public_bytes(share))
    except ValueError as exc:  # (cryptography refuses an all-zero result)
        raise ValueError(f"invalid X25519 part of the {NAME} key share: {exc}") from None
    if not any(secret):
        raise ValueError(f"the X25519 part of the {NAME} shared secret is all zero")
    return secret


class X25519MLKEM768:
    """The hybrid group's three steps (stateless: one object serves every connection)."""

    __slots__ = ()

    @staticmethod
    def generate() -> tuple[Any, x25519.X25519PrivateKey]:
        """The client's private half: (ML-KEM-768 decapsulation key, X25519 private key)."""
        if mlkem is None or not available():
            raise ValueError(f"{NAME} is not available: {unavailable_reason()}")
        return mlkem.MLKEM768PrivateKey.generate(), x25519.X25519PrivateKey.generate()

    @staticmethod
    def client_share(private: tuple[Any, x25519.X25519PrivateKey]) -> bytearray:
        """The client's key share: encapsulation key || X25519 public key (1216 bytes)."""
        return bytearray(private[0].public_key().public_bytes_raw()
                         + private[1].public_key().public_bytes_raw())

    @staticmethod
    def server_answer(client_share: bytes | bytearray) -> tuple[bytearray, bytearray]:
        """The server's (shared secret, key share) for a client's share: ML-KEM
        encapsulation to the client's key and a fresh X25519 exchange."""
        share = bytes(client_share)
        if len(share) != CLIENT_SHARE_SIZE:
            raise ValueError(f"{NAME} client key share must be {CLIENT_SHARE_SIZE} bytes, "
                             f"got {len(share)}")
        if mlkem is None:
            raise ValueError(f"{NAME} is not available: {unavailable_reason()}")
        try:  # (FIPS 203 7.2's modulus check on the encapsulation key)
            peer_key = mlkem.MLKEM768PublicKey.from_public_bytes(
                share[:MLKEM768_ENCAPSULATION_KEY])
            kem_secret, ciphertext = peer_key.encapsulate()
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise ValueError(f"invalid ML-KEM-768 encapsulation key: {exc}") from None
        ours = x25519.X25519PrivateKey.generate()
        ecdh_secret = _x25519_secret(ours, share[MLKEM768_ENCAPSULATION_KEY:])
        return (bytearray(kem_secret + ecdh_secret),
                bytearray(ciphertext + ours.public_key().public_bytes_raw()))

    @staticmethod
    def client_secret(private: tuple[Any, x25519.X25519PrivateKey],
                      server_share: bytes | bytearray) -> bytearray:
        """The client's shared secret from the server's share (decapsulation, X25519)."""
        share = bytes(server_share)
        if len(share) != SERVER_SHARE_SIZE:
            raise ValueError(f"{NAME} server key share must be {SERVER_SHARE_SIZE} bytes, "
                             f"got {len(share)}")
        try:
            kem_secret = private[0].decapsulate(share[:MLKEM768_CIPHERTEXT])
        except ValueError as exc:
            raise ValueError(f"invalid ML-KEM-768 ciphertext: {exc}") from None
        return bytearray(kem_secret + _x25519_secret(private[1], share[MLKEM768_CIPHERTEXT:]))
