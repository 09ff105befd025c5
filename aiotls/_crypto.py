"""The only module that imports ``cryptography.hazmat``.

It provides, backed by OpenSSL through ``cryptography``:

* :class:`AEADCipher` -- AES-GCM / ChaCha20-Poly1305 / AES-CCM objects with the
  interface tlslite's record layer expects (``seal``/``open``, ``name``,
  ``tagLength``...), so the engine can use them in place of tlslite's pure-Python
  ciphers.  ``open`` returns ``None`` on authentication failure, as tlslite wants.
* :class:`ECDHGroup` -- X25519, X448 and NIST-curve ECDHE key shares.
* key and certificate loading (PEM, encrypted PEM, DER) and key/certificate matching.

Errors are raised as ``ValueError``; the engine translates them into TLS alerts.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import hmac
import ipaddress
import os
import warnings
from collections.abc import Callable
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dh, ec, ed448, ed25519, rsa, x448, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM, ChaCha20Poly1305
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = (
    rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey
)

# --- AEAD ------------------------------------------------------------------------------------

_AEAD_FACTORIES: dict[str, Callable[[bytes], Any]] = {
    "aes128gcm": AESGCM,
    "aes256gcm": AESGCM,
    "chacha20-poly1305": ChaCha20Poly1305,
    "aes128ccm": AESCCM,
    "aes256ccm": AESCCM,
    "aes128ccm_8": lambda key: AESCCM(key, tag_length=8),
    "aes256ccm_8": lambda key: AESCCM(key, tag_length=8),
}


#: Key sizes each AEAD takes (checked when the cipher object is made, as cryptography would).
_KEY_SIZES: dict[str, tuple[int, ...]] = {
    "aes128gcm": (16, 24, 32), "aes256gcm": (16, 24, 32), "chacha20-poly1305": (32,),
    "aes128ccm": (16, 24, 32), "aes256ccm": (16, 24, 32),
    "aes128ccm_8": (16, 24, 32), "aes256ccm_8": (16, 24, 32),
}


class AEADCipher:
    """An AEAD cipher object, shaped like tlslite's ``AESGCM``/``CHACHA20_POLY1305``."""

    isBlockCipher = False
    isAEAD = True
    nonceLength = 12
    implementation = "openssl"

    __slots__ = ("_aead", "key", "name", "tagLength")

    def __init__(self, name: str, key: bytes | bytearray) -> None:
        if len(key) not in _KEY_SIZES[name]:
            raise ValueError(f"{name} takes a key of {' or '.join(map(str, _KEY_SIZES[name]))}"
                             f" bytes, not {len(key)}")
        self.name = name
        self.key = bytes(key)
        self.tagLength = 8 if name.endswith("_8") else 16
        # Made on first use: a handshake derives traffic keys for both directions, and
        # those that aiotls's record layer takes over are never used here.
        self._aead: Any = None

    def _made(self) -> Any:
        aead = self._aead = _AEAD_FACTORIES[self.name](self.key)
        return aead

    def seal(self, nonce: bytes | bytearray, plaintext: bytes | bytearray,
             data: bytes | bytearray) -> bytearray:
        """Encrypt and authenticate ``plaintext`` with additional data ``data``."""
        aead = self._aead or self._made()
        return bytearray(aead.encrypt(bytes(nonce), bytes(plaintext), bytes(data)))

    def open(self, nonce: bytes | bytearray, ciphertext: bytes | bytearray,
             data: bytes | bytearray) -> bytearray | None:
        """Decrypt and verify; ``None`` if the tag does not match."""
        aead = self._aead or self._made()
        try:
            return bytearray(aead.decrypt(bytes(nonce), bytes(ciphertext), bytes(data)))
        except InvalidTag:
            return None


# --- key exchange ----------------------------------------------------------------------------

_NIST_CURVES: dict[str, type[ec.EllipticCurve]] = {
    "secp256r1": ec.SECP256R1,
    "secp384r1": ec.SECP384R1,
    "secp521r1": ec.SECP521R1,
}
KEX_GROUPS = frozenset({"x25519", "x448", *_NIST_CURVES})


class ECDHGroup:
    """Ephemeral (EC)DH for one named group: make a key share, compute the shared secret."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        if name not in KEX_GROUPS:
            raise ValueError(f"unsupported key-exchange group {name!r}")
        self.name = name

    def generate(self) -> Any:
        """A fresh private key for this group."""
        if self.name == "x25519":
            return x25519.X25519PrivateKey.generate()
        if self.name == "x448":
            return x448.X448PrivateKey.generate()
        return ec.generate_private_key(_NIST_CURVES[self.name]())

    @staticmethod
    def public_bytes(private: Any) -> bytearray:
        """The key share to send: raw for X25519/X448, an uncompressed point for NIST curves."""
        public = private.public_key()
        if isinstance(public, ec.EllipticCurvePublicKey):
            return bytearray(public.public_bytes(serialization.Encoding.X962,
                                                 serialization.PublicFormat.UncompressedPoint))
        return bytearray(public.public_bytes_raw())

    def shared_secret(self, private: Any, peer_share: bytes | bytearray) -> bytearray:
        """ECDH with the peer's share; ``ValueError`` if the share is invalid."""
        share = bytes(peer_share)
        try:
            if self.name == "x25519":
                if len(share) != 32:
                    raise ValueError("X25519 key share must be 32 bytes")
                secret = private.exchange(x25519.X25519PublicKey.from_public_bytes(share))
            elif self.name == "x448":
                if len(share) != 56:
                    raise ValueError("X448 key share must be 56 bytes")
                secret = private.exchange(x448.X448PublicKey.from_public_bytes(share))
            else:
                if not share or share[0] != 4:
                    raise ValueError("only uncompressed EC points are allowed")
                peer = ec.EllipticCurvePublicKey.from_encoded_point(_NIST_CURVES[self.name](), share)
                secret = private.exchange(ec.ECDH(), peer)
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise ValueError(f"invalid {self.name} key share: {exc}") from None
        if not any(secret):
            raise ValueError(f"{self.name} shared secret is all zero")
        return bytearray(secret)


class FFDHGroup:
    """Ephemeral finite-field Diffie-Hellman over one group (the engine passes RFC 7919's).

    Public values and shared secrets are big-endian integers of the prime's length
    (RFC 8446 4.2.8.1, 7.4.1); a TLS 1.2 caller strips the secret's leading zeros itself
    (RFC 5246 8.1.2).
    """

    __slots__ = ("_numbers", "_params", "prime", "size")

    def __init__(self, prime: int, generator: int) -> None:
        self.prime = prime
        self.size = (prime.bit_length() + 7) // 8
        self._numbers = dh.DHParameterNumbers(prime, generator)
        self._params = self._numbers.parameters()

    def generate(self) -> Any:
        """A fresh private key (OpenSSL picks the exponent size for the group's strength)."""
        return self._params.generate_private_key()

    @staticmethod
    def public_value(private: Any) -> int:
        """Our public value ``g^x mod p``."""
        return int(private.public_key().public_numbers().y)

    def public_bytes(self, private: Any) -> bytearray:
        """Our public value as a key share: big-endian, the prime's length."""
        return bytearray(self.public_value(private).to_bytes(self.size, "big"))

    def shared_secret(self, private: Any, peer_value: int | bytes | bytearray) -> bytearray:
        """DH with the peer's public value; ``ValueError`` unless 1 < y < p - 1 (RFC 7919
        5.1: with a safe prime that also rules out the small subgroups)."""
        if isinstance(peer_value, int):
            y = peer_value
        else:
            if len(peer_value) != self.size:
                raise ValueError(f"the FFDHE key share is {len(peer_value)} bytes, not {self.size}")
            y = int.from_bytes(peer_value, "big")
        if not 1 < y < self.prime - 1:
            raise ValueError("the FFDHE public value is out of range (must be 1 < y < p-1)")
        try:
            peer = dh.DHPublicNumbers(y, self._numbers).public_key()
            secret = private.exchange(peer)
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise ValueError(f"invalid FFDHE public value: {exc}") from None
        return bytearray(secret.rjust(self.size, b"\0"))


# --- keys and certificates -------------------------------------------------------------------


def load_private_key(data: bytes, password: bytes | None) -> PrivateKey:
    """Load a PEM (possibly encrypted) or DER private key."""
    loaders: list[Callable[[bytes, bytes | None], Any]] = [serialization.load_pem_private_key]
    if b"-----BEGIN" not in data:
        loaders.append(serialization.load_der_private_key)
    last: Exception | None = None
    for loader in loaders:
        try:
            key = loader(data, password)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            last = exc
            continue
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
                          | ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
            raise ValueError(f"unsupported private key type {type(key).__name__}")
        return key
    raise ValueError(str(last) if last else "no private key found")


def private_key_pkcs8_pem(key: PrivateKey) -> str:
    """The key as unencrypted PKCS#8 PEM text (what tlslite's parser reads)."""
    if isinstance(key, rsa.RSAPrivateKey):
        fmt = serialization.PrivateFormat.TraditionalOpenSSL
    else:
        fmt = serialization.PrivateFormat.PKCS8
    return key.private_bytes(serialization.Encoding.PEM, fmt,
                             serialization.NoEncryption()).decode("ascii")


def key_description(key: Any) -> str:
    """A short human description of a public or private key: ``RSA-2048``, ``ECDSA-P256``..."""
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return f"RSA-{key.key_size}"
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return f"ECDSA-{key.curve.name}"
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(key, ed448.Ed448PrivateKey | ed448.Ed448PublicKey):
        return "Ed448"
    return type(key).__name__


def rsa_key_bits(key: Any) -> int | None:
    """RSA modulus size in bits, or ``None`` for non-RSA keys."""
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return int(key.key_size)
    return None


def key_matches_certificate(key: PrivateKey, cert: x509.Certificate) -> bool:
    """True if ``key`` is the private half of ``cert``'s public key."""
    pub = cert.public_key()
    fmt = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    return bool(key.public_key().public_bytes(der, fmt) == pub.public_bytes(der, fmt))


def certificate_is_self_issued_and_signed(cert: x509.Certificate) -> bool:
    """True if the certificate names itself as issuer and its signature verifies with its own key."""
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, UnsupportedAlgorithm, Exception):  # InvalidSignature et al.
        return False
    return True


def fingerprint_sha256(cert: x509.Certificate) -> str:
    """Colon-separated SHA-256 fingerprint of a certificate."""
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def der_bytes(cert: x509.Certificate) -> bytes:
    """The DER encoding of a certificate."""
    return cert.public_bytes(serialization.Encoding.DER)


# --- raw AEAD objects for aiotls's record layer -------------------------------------------------


class _IntoAdapter:
    """``encrypt_into``/``decrypt_into`` for cryptography versions that lack them."""

    __slots__ = ("_aead",)

    def __init__(self, aead: Any) -> None:
        self._aead = aead

    def encrypt_into(self, nonce: bytes, data: Any, aad: Any, buf: memoryview) -> int:
        out = self._aead.encrypt(nonce, bytes(data), bytes(aad))
        buf[:len(out)] = out
        return len(out)

    def decrypt_into(self, nonce: bytes, data: Any, aad: Any, buf: memoryview) -> int:
        out = self._aead.decrypt(nonce, bytes(data), bytes(aad))
        buf[:len(out)] = out
        return len(out)


def new_aead(name: str, key: bytes) -> Any:
    """A cryptography AEAD object (AESGCM, ChaCha20Poly1305, AESCCM) with ``*_into`` methods.

    ``decrypt_into`` raises :class:`InvalidTag` when authentication fails.
    """
    aead = _AEAD_FACTORIES[name](bytes(key))
    if not hasattr(aead, "encrypt_into"):  # cryptography < 47
        return _IntoAdapter(aead)
    return aead


__all__ = ["AEADCipher", "ECDHGroup", "InvalidTag", "new_aead"]


# --- signatures for the handshake engine -----------------------------------------------------

_DIGEST_BY_LEN: dict[int, type[hashes.HashAlgorithm]] = {
    20: hashes.SHA1, 28: hashes.SHA224, 32: hashes.SHA256, 48: hashes.SHA384, 64: hashes.SHA512,
}
_HASH_BY_NAME: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1, "sha224": hashes.SHA224, "sha256": hashes.SHA256,
    "sha384": hashes.SHA384, "sha512": hashes.SHA512,
}


def _prehashed(digest: bytes) -> Any:
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

    try:
        return Prehashed(_DIGEST_BY_LEN[len(digest)]())
    except KeyError:
        raise ValueError(f"no hash has a {len(digest)}-byte digest") from None


def ecdsa_sign_digest(key: Any, digest: bytes | bytearray) -> bytes:
    """DER ECDSA signature over an already computed (possibly truncated) digest."""
    data = bytes(digest)
    return bytes(key.sign(data, ec.ECDSA(_prehashed(data))))


def ecdsa_verify_digest(key: Any, signature: bytes | bytearray, digest: bytes | bytearray) -> bool:
    """Verify a DER ECDSA signature over a digest.  ECDSA only uses the digest's leftmost
    bits up to the curve size, so a digest TLS 1.2 truncated to the curve size verifies the
    same as the full one."""
    from cryptography.exceptions import InvalidSignature

    data = bytes(digest)
    try:
        key.verify(bytes(signature), data, ec.ECDSA(_prehashed(data)))
    except (InvalidSignature, ValueError):
        return False
    return True


def ecdsa_sign(key: Any, data: bytes | bytearray, hash_name: str) -> bytes:
    return bytes(key.sign(bytes(data), ec.ECDSA(_HASH_BY_NAME[hash_name]())))


def eddsa_sign(key: Any, data: bytes | bytearray) -> bytes:
    return bytes(key.sign(bytes(data)))


def eddsa_verify(key: Any, signature: bytes | bytearray, data: bytes | bytearray) -> bool:
    from cryptography.exceptions import InvalidSignature

    try:
        key.verify(bytes(signature), bytes(data))
    except InvalidSignature:
        return False
    return True


def certificate_public_key(der: bytes) -> Any:
    """The public key of a DER certificate, as a cryptography key object (or None)."""
    try:
        return load_der_certificate(der).public_key()
    except (ValueError, UnsupportedAlgorithm):
        return None


#: NIST curves whose certificates the handshake takes from this module's parse.
_PEER_EC_CURVES = frozenset({"secp256r1", "secp384r1", "secp521r1"})


def certificate_ec_key(der: bytes) -> tuple[str, Any] | None:
    """``(curve name, public key)`` of a certificate with a NIST P-256/384/521 key, parsed by
    OpenSSL (which also checks that the point is on the curve); ``None`` for anything else
    or anything that does not parse."""
    try:
        key = load_der_certificate(der).public_key()
    except (ValueError, UnsupportedAlgorithm):
        return None
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in _PEER_EC_CURVES:
        return key.curve.name, key
    return None


def load_pkcs7_certificates(data: bytes) -> list[x509.Certificate]:
    """The certificates of a PKCS#7 bundle, PEM or DER (ValueError if it is neither)."""
    from cryptography.hazmat.primitives.serialization import pkcs7
    pem = data.lstrip().startswith(b"-----")
    return (pkcs7.load_pem_pkcs7_certificates if pem else pkcs7.load_der_pkcs7_certificates)(data)


def load_der_certificate(der: bytes) -> x509.Certificate:
    """Parse a DER certificate from a peer, without cryptography's deprecation warnings
    (peers send odd certificates; problems are reported as verification errors).

    Parses are remembered (certificates are immutable): the handshake reads the peer's key,
    verification reads the chain and ``getpeercert()`` the leaf, all from the same bytes.

    Every malformed certificate raises :class:`ValueError`: cryptography's
    ``InvalidVersion`` (an X.509 version other than 1 or 3) is not one, and escaped the
    callers' ``except ValueError`` as an aiotls internal error.
    """
    try:
        return _load_der_certificate(bytes(der))
    except x509.InvalidVersion as exc:
        raise ValueError(f"invalid X.509 version: {exc}") from None


@functools.lru_cache(maxsize=256)
def _load_der_certificate(der: bytes) -> x509.Certificate:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return x509.load_der_x509_certificate(der)


def is_ec_key(key: Any) -> bool:
    return isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey)


def is_eddsa_key(key: Any) -> bool:
    return isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey
                      | ed448.Ed448PrivateKey | ed448.Ed448PublicKey)


def _rsa_padding(padding: str, hash_name: str, salt_len: int | None) -> tuple[Any, Any]:
    """``(padding scheme, Prehashed algorithm)`` for an RSA operation over a digest."""
    from cryptography.hazmat.primitives.asymmetric import padding as pad
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

    algorithm = _HASH_BY_NAME[hash_name]()
    scheme: Any
    if padding == "pss":
        scheme = pad.PSS(mgf=pad.MGF1(algorithm),
                         salt_length=salt_len if salt_len is not None else algorithm.digest_size)
    else:
        scheme = pad.PKCS1v15()
    return scheme, Prehashed(algorithm)


def rsa_sign_digest(key: Any, digest: bytes | bytearray, padding: str, hash_name: str,
                    salt_len: int | None) -> bytes:
    """RSA signature (PKCS#1 v1.5 or PSS) over an already computed digest."""
    scheme, prehashed = _rsa_padding(padding, hash_name, salt_len)
    return bytes(key.sign(bytes(digest), scheme, prehashed))


def is_rsa_key(key: Any) -> bool:
    return isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey)


def hash_names() -> frozenset[str]:
    return frozenset(_HASH_BY_NAME)


# --- session ticket protection (server side) ------------------------------------------------


class TicketSealer:
    """Encrypts session-ticket contents under the context's ticket keys.

    A ticket is ``key_id (4) || nonce (12) || AES-256-GCM(payload)``, with the key id
    (the first bytes of SHA-256 of the key) as associated data.  The first key
    seals new tickets; every key opens them, which allows rotation and sharing
    between worker processes.
    """

    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise ValueError("at least one ticket key is needed")
        self._keys: list[tuple[bytes, Any]] = []
        for key in keys:
            if len(key) != 32:
                raise ValueError("session ticket keys must be 32 bytes long")
            digest = hashes.Hash(hashes.SHA256())
            digest.update(key)
            self._keys.append((digest.finalize()[:4], AESGCM(key)))

    def seal(self, payload: bytes) -> bytes:
        key_id, aead = self._keys[0]
        nonce = os.urandom(12)
        return bytes(key_id + nonce + aead.encrypt(nonce, payload, key_id))

    def open(self, ticket: bytes) -> bytes | None:
        if len(ticket) < 4 + 12 + 16:
            return None
        key_id, nonce, body = ticket[:4], ticket[4:16], ticket[16:]
        for kid, aead in self._keys:
            if kid == key_id:
                try:
                    return bytes(aead.decrypt(nonce, body, key_id))
                except InvalidTag:
                    return None
        return None


def rsa_verify_digest(key: Any, signature: bytes | bytearray, digest: bytes | bytearray,
                      padding: str, hash_name: str, salt_len: int | None) -> bool:
    """Verify an RSA signature (PKCS#1 v1.5 or PSS) over an already computed digest."""
    from cryptography.exceptions import InvalidSignature

    scheme, prehashed = _rsa_padding(padding, hash_name, salt_len)
    try:
        key.verify(bytes(signature), bytes(digest), scheme, prehashed)
    except (InvalidSignature, ValueError):
        return False
    return True


_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


def _hmac_with(new: Any, block: int) -> Callable[[bytes | bytearray, bytes | bytearray], bytes]:
    def digest(key: bytes | bytearray, msg: bytes | bytearray) -> bytes:
        if len(key) > block:
            key = new(key).digest()
        key = key.ljust(block, b"\0")
        inner: bytes = new(key.translate(_IPAD) + msg).digest()
        outer: bytes = new(key.translate(_OPAD) + inner).digest()
        return outer

    return digest


#: HMAC (RFC 2104) over the hashlib constructors, per hash name.
_HMACS: dict[str, Callable[[bytes | bytearray, bytes | bytearray], bytes]] = {
    "sha256": _hmac_with(hashlib.sha256, 64),
    "sha384": _hmac_with(hashlib.sha384, 128),
    "sha512": _hmac_with(hashlib.sha512, 128),
}
_DIGEST_SIZE = {"sha256": 32, "sha384": 48, "sha512": 64}


def hmac_digest(key: bytes | bytearray, msg: bytes | bytearray, hash_name: str) -> bytes:
    """HMAC (RFC 2104) over the hashlib constructors.

    OpenSSL 3 looks the digest up by name on every one-shot HMAC call, which costs more than
    the HMAC itself for the short inputs of a TLS key schedule (~2.2 against ~1.4 us here).
    Other hash names go to :func:`hmac.digest`.
    """
    found = _HMACS.get(hash_name)
    if found is None:
        return hmac.digest(key, msg, hash_name)
    return found(key, msg)


@functools.lru_cache(maxsize=256)
def _label_prefix(label: bytes, length: int) -> bytes:
    """The constant start of an HkdfLabel: length, then the length-prefixed ``tls13 `` label."""
    return length.to_bytes(2, "big") + bytes((len(label) + 6,)) + b"tls13 " + label


#: One-byte strings by value (the HkdfLabel's context length).
_BYTE = [bytes((i,)) for i in range(256)]
#: hash name -> (hashlib constructor, block size, digest size) for the one-block HKDF path.
_ONE_BLOCK: dict[str, tuple[Any, int, int]] = {
    "sha256": (hashlib.sha256, 64, 32),
    "sha384": (hashlib.sha384, 128, 48),
    "sha512": (hashlib.sha512, 128, 64),
}


def hkdf_expand_label(secret: bytes | bytearray, label: bytes, context: bytes | bytearray,
                      length: int, hash_name: str) -> bytes:
    """HKDF-Expand-Label (RFC 8446 7.1).

    Every TLS 1.3 key, IV and secret fits one block of the hash: that case runs the HMAC
    (RFC 2104, as :func:`hmac_digest`) inline, as it runs ~25 times per handshake.
    """
    if len(context) > 255:
        raise ValueError("an HkdfLabel context is at most 255 bytes")
    info = _label_prefix(label, length) + _BYTE[len(context)] + context
    one = _ONE_BLOCK.get(hash_name)
    if one is not None and length <= one[2]:
        new, block = one[0], one[1]
        key = secret if len(secret) <= block else new(secret).digest()
        key = key.ljust(block, b"\0")
        inner = new(key.translate(_IPAD) + info + b"\x01").digest()
        return new(key.translate(_OPAD) + inner).digest()[:length]  # type: ignore[no-any-return]
    out = b""
    block_out = b""
    counter = 1
    while len(out) < length:
        block_out = hmac_digest(secret, block_out + info + bytes((counter,)), hash_name)
        out += block_out
        counter += 1
    return out[:length]


def hkdf_expand_labels(secret: bytes | bytearray,
                       labels: tuple[tuple[bytes, bytes | bytearray, int], ...],
                       hash_name: str) -> list[bytes]:
    """:func:`hkdf_expand_label` of one secret for several (label, context, length): the
    HMAC key's inner and outer hash states are computed once (a TLS 1.3 traffic secret
    gives a key and an IV, a master secret two or three traffic secrets)."""
    one = _ONE_BLOCK.get(hash_name)
    if one is None or any(length > one[2] or len(context) > 255
                          for _, context, length in labels):
        return [hkdf_expand_label(secret, *item, hash_name) for item in labels]
    new, block = one[0], one[1]
    key = (secret if len(secret) <= block else new(secret).digest()).ljust(block, b"\0")
    inner, outer = new(key.translate(_IPAD)), new(key.translate(_OPAD))
    out = []
    for label, context, length in labels:
        h = inner.copy()
        h.update(_label_prefix(label, length) + _BYTE[len(context)] + context + b"\x01")
        o = outer.copy()
        o.update(h.digest())
        out.append(o.digest()[:length])
    return out


# --- certificates for aiotls.testing ---------------------------------------------------------

#: Key types :mod:`aiotls.testing` makes: P-256, P-384, RSA 2048 bits, Ed25519.
TESTING_KEY_TYPES = ("ecdsa", "ecdsa-p384", "rsa", "ed25519")


def generate_private_key(kind: str) -> PrivateKey:
    """A fresh private key: ``ecdsa`` (P-256), ``ecdsa-p384``, ``rsa`` (2048), ``ed25519``."""
    if kind == "ecdsa":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "ecdsa-p384":
        return ec.generate_private_key(ec.SECP384R1())
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unknown key type {kind!r}; expected one of {', '.join(TESTING_KEY_TYPES)}")


def private_key_pem(key: PrivateKey) -> bytes:
    """The key as unencrypted PKCS#8 PEM."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def certificate_pem(cert: x509.Certificate) -> bytes:
    """The certificate as PEM."""
    return cert.public_bytes(serialization.Encoding.PEM)


def _subject_alt_name(name: str) -> x509.GeneralName:
    """An IP literal becomes an iPAddress entry; anything else a dNSName (IDNA-encoded)."""
    try:
        return x509.IPAddress(ipaddress.ip_address(name.strip("[]")))
    except ValueError:
        pass
    try:
        ascii_name = name.encode("idna").decode("ascii") if not name.isascii() else name
    except UnicodeError as exc:
        raise ValueError(f"{name!r} is neither an IP address nor a valid host name: {exc}") \
            from None
    return x509.DNSName(ascii_name)


def _key_usage(*, ca: bool, rsa_key: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca, content_commitment=False,
        key_encipherment=rsa_key and not ca, data_encipherment=False, key_agreement=False,
        key_cert_sign=ca, crl_sign=ca, encipher_only=False, decipher_only=False,
    )


def _sign(builder: x509.CertificateBuilder, key: PrivateKey) -> x509.Certificate:
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey) \
        else hashes.SHA256()
    return builder.sign(key, algorithm)


def _common_name(text: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text[:64])])


def make_ca_certificate(
    key: PrivateKey, *, common_name: str, not_before: datetime.datetime,
    not_after: datetime.datetime, issuer: tuple[x509.Certificate, PrivateKey] | None = None,
) -> x509.Certificate:
    """A CA certificate for ``key``: self-signed, or signed by ``issuer`` (certificate, key)
    as an intermediate.  BasicConstraints CA:true (critical), keyCertSign + cRLSign, SKI,
    and an AKI for intermediates."""
    subject = _common_name(common_name)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject if issuer is None else issuer[0].subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(ca=True, rsa_key=False), critical=True)
        .add_extension(ski, critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[1].public_key()),
            critical=False)
    return _sign(builder, key if issuer is None else issuer[1])


def make_leaf_certificate(
    key: PrivateKey, *, names: tuple[str, ...], common_name: str | None,
    issuer: tuple[x509.Certificate, PrivateKey], server: bool, client: bool,
    not_before: datetime.datetime, not_after: datetime.datetime,
) -> x509.Certificate:
    """An end-entity certificate for ``key`` signed by ``issuer`` (certificate, key).

    ``names`` go into the subjectAltName (IP literals as iPAddress, the rest as dNSName,
    IDNA-encoded); the subject CN is ``common_name`` or the first name.  Extended key usage
    serverAuth and/or clientAuth as asked."""
    if not names and common_name is None:
        raise ValueError("a certificate needs at least one name (or a common_name)")
    builder = (
        x509.CertificateBuilder()
        .subject_name(_common_name(common_name if common_name is not None else names[0]))
        .issuer_name(issuer[0].subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False, rsa_key=isinstance(key, rsa.RSAPrivateKey)),
                       critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            issuer[1].public_key()), critical=False)
    )
    if names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([_subject_alt_name(n) for n in names]), critical=False)
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) \
        + ([ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    return _sign(builder, issuer[1])
