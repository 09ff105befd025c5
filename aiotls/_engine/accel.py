"""Key exchange and signatures through OpenSSL (``cryptography``), in tlslite's shapes.

tlslite does (EC)DH, ECDSA, EdDSA and RSA in pure Python.  These classes have the
attributes and methods tlslite's handshake code uses, backed by :mod:`aiotls._crypto`:
TLS 1.3 key shares (:class:`_KeyExchange`, :class:`_FFKeyExchange` for RFC 7919 groups),
TLS 1.2 (EC)DHE key exchange objects switched in place (:func:`_accelerate_kex`), our own
private keys (:func:`_accelerate`) and the peer's certificate keys (:class:`_PeerX509`).
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any

from ecdsa.curves import NIST256p, NIST384p, NIST521p
from tlslite.constants import (
    ECCurveType,
    ECPointFormat,
    ExtensionType,
    GroupName,
)
from tlslite.errors import (
    TLSDecodeError,
    TLSIllegalParameterException,
    TLSInsufficientSecurity,
    TLSInternalError,
)
from tlslite.keyexchange import (
    ADHKeyExchange,
    AECDHKeyExchange,
    DHE_RSAKeyExchange,
    ECDHE_RSAKeyExchange,
)
from tlslite.mathtls import RFC7919_GROUPS
from tlslite.messages import (
    ServerKeyExchange,
)
from tlslite.utils.lists import getFirstMatching
from tlslite.utils.python_ecdsakey import Python_ECDSAKey
from tlslite.utils.python_eddsakey import Python_EdDSAKey
from tlslite.utils.python_rsakey import Python_RSAKey
from tlslite.x509 import X509

from .. import _crypto
from ..context import FFDHE_GROUPS
from ..errors import (
    X509_V_ERR_CERT_REJECTED,
    AlertDescription,
    CertificateError,
)
from . import speedups

#: Group ids whose key exchange runs in OpenSSL (GroupName.toStr is slow: looked up once here).
_FAST_GROUPS: dict[int, str] = {getattr(GroupName, name): name for name in _crypto.KEX_GROUPS}
#: RFC 7919 group code point -> its name; the (generator, prime) pairs are tlslite's own
#: RFC7919_GROUPS, in code-point order (ffdhe2048 = 256 ... ffdhe8192 = 260).
_FF_GROUPS: dict[int, str] = {getattr(GroupName, name): name for name in FFDHE_GROUPS}


@functools.cache
def _ffdh(group: int) -> _crypto.FFDHGroup:
    """The OpenSSL-backed finite-field DH of one RFC 7919 group (made once)."""
    generator, prime = RFC7919_GROUPS[group - GroupName.ffdhe2048]
    return _crypto.FFDHGroup(prime, generator)


class _KeyExchange:
    """tlslite's ``RawDHKeyExchange`` interface over :class:`aiotls._crypto.ECDHGroup`."""

    def __init__(self, group: int, version: tuple[int, int]) -> None:
        self.group = group
        self.version = version
        self._impl = _crypto.ECDHGroup(_FAST_GROUPS[group])

    def get_random_private_key(self) -> Any:
        return self._impl.generate()

    def calc_public_value(self, private: Any, point_format: str = "uncompressed") -> bytearray:
        return self._impl.public_bytes(private)

    def calc_shared_key(self, private: Any, peer_share: bytearray,
                        valid_point_formats: Any = None) -> bytearray:
        try:
            return self._impl.shared_secret(private, peer_share)
        except ValueError as exc:
            raise TLSIllegalParameterException(str(exc)) from None


class _FFKeyExchange:
    """tlslite's ``RawDHKeyExchange`` interface for the RFC 7919 groups (TLS 1.3 key
    shares), with the arithmetic in OpenSSL (tlslite's ``FFDHKeyExchange`` is pure Python)."""

    def __init__(self, group: int, version: tuple[int, int]) -> None:
        self.group = group
        self.version = version
        self._impl = _ffdh(group)

    def get_random_private_key(self) -> Any:
        return self._impl.generate()

    def calc_public_value(self, private: Any, point_format: str = "uncompressed") -> Any:
        if tuple(self.version) < (3, 4):
            return self._impl.public_value(private)
        return self._impl.public_bytes(private)

    def calc_shared_key(self, private: Any, peer_share: Any,
                        valid_point_formats: Any = None) -> bytearray:
        try:
            secret = self._impl.shared_secret(private, peer_share)
        except ValueError as exc:
            raise TLSIllegalParameterException(str(exc)) from None
        if tuple(self.version) < (3, 4):
            return _strip_zeros(secret)
        return secret


def _strip_zeros(secret: bytearray) -> bytearray:
    """A TLS 1.2 DH premaster secret: leading zero bytes stripped (RFC 5246 8.1.2)."""
    start = 0
    while start < len(secret) - 1 and not secret[start]:
        start += 1
    return secret[start:]


class _FastECDSAKey(Python_ECDSAKey):  # type: ignore[misc]
    """A tlslite ECDSA key whose signing and verification run in OpenSSL."""

    _aiotls_private: Any = None
    _aiotls_public: Any = None
    #: (signature, digest) of the last signature this key made.
    _aiotls_signed: tuple[bytes, bytes] | None = None

    def _sign(self, data: bytearray, hAlg: str) -> bytearray:
        signature = _crypto.ecdsa_sign_digest(self._aiotls_private, data)
        self._aiotls_signed = (signature, bytes(data))
        return bytearray(signature)

    def _hashAndSign(self, data: bytearray, hAlg: str) -> bytearray:
        signature = _crypto.ecdsa_sign(self._aiotls_private, data, hAlg)
        self._aiotls_signed = (signature, hashlib.new(hAlg, data).digest())
        return bytearray(signature)

    def _verify(self, signature: bytearray, hash_bytes: bytearray) -> bool:
        # tlslite verifies every signature it has just made (a guard against faulty
        # signing); the one this key made from OpenSSL a moment ago needs no second pass.
        if self._aiotls_signed == (bytes(signature), bytes(hash_bytes)):
            return True
        return _crypto.ecdsa_verify_digest(self._aiotls_public, signature, hash_bytes)


class _CurveOnly:
    """Stands in for the python-ecdsa key of a public-only _FastECDSAKey: tlslite reads
    nothing but ``public_key.curve`` (its size and order) from it."""

    __slots__ = ("curve",)

    def __init__(self, curve: Any) -> None:
        self.curve = curve


#: python-ecdsa's curve objects (what tlslite names and sizes curves by), by OpenSSL name.
_ECDSA_CURVES = {"secp256r1": NIST256p, "secp384r1": NIST384p, "secp521r1": NIST521p}


def _peer_ecdsa_key(curve_name: str, crypto_key: Any) -> _FastECDSAKey:
    """A tlslite ECDSA public key for a peer's certificate, built without python-ecdsa
    (whose point decoding in Python is most of tlslite's certificate parse)."""
    curve = _ECDSA_CURVES[curve_name]
    key = _FastECDSAKey.__new__(_FastECDSAKey)
    key.curve_name = curve.name
    key.key_type = "ecdsa"
    key.private_key = None
    key.public_key = _CurveOnly(curve)
    key._aiotls_public = crypto_key
    return key


class _PeerX509(X509):  # type: ignore[misc]
    """A peer's certificate as tlslite sees it, from OpenSSL's parse for NIST ECDSA keys.

    tlslite uses ``bytes``, ``certAlg`` and ``publicKey`` of a peer certificate; the other
    fields (serial number, names, signature algorithm) come from tlslite's own parse the
    first time they are read.  Other key types take tlslite's parse, and their public key
    is switched to OpenSSL's operations (every Certificate message from the peer, TLS 1.3
    client certificates included, is parsed through here).
    """

    publicKey: Any

    def parseBinary(self, cert_bytes: Any) -> Any:
        der = bytes(cert_bytes)
        try:
            _crypto.load_der_certificate(der)  # (remembered: the parses below reuse it)
        except ValueError as exc:
            # Not X.509 as OpenSSL reads it (an invalid version, bad DER...): tlslite's
            # lenient parser would take it, and the failure would surface later under
            # another name (a signature check, or internal_error).
            raise CertificateError(
                f"the peer's certificate could not be parsed: {exc}",
                cause="a malformed or non-X.509 certificate",
                hint="re-issue the peer's certificate",
                alert=AlertDescription.bad_certificate, code="certificate-malformed",
                verify_code=X509_V_ERR_CERT_REJECTED,
            ) from None
        found = _crypto.certificate_ec_key(der)
        if found is None:
            X509.parseBinary(self, cert_bytes)
            # the key verifies through OpenSSL all the same (RSA, EdDSA)
            _accelerate(self.publicKey, _crypto.certificate_public_key(der), private=False)
            return self
        self.bytes = bytearray(cert_bytes)
        self.certAlg = "ecdsa"
        self.publicKey = _peer_ecdsa_key(*found)
        for name in _PEER_X509_LAZY:
            self.__dict__.pop(name, None)
        return self


def _lazy_x509_field(name: str) -> property:
    def get(self: Any) -> Any:
        fields = self.__dict__
        if name not in fields:
            full = X509()
            full.parseBinary(self.bytes)
            for field in _PEER_X509_LAZY:
                fields.setdefault(field, getattr(full, field))
        return fields[name]

    def set_(self: Any, value: Any) -> None:
        self.__dict__[name] = value

    return property(get, set_)


_PEER_X509_LAZY = ("serial_number", "subject_public_key", "subject", "issuer", "sigalg")
for _field in _PEER_X509_LAZY:
    setattr(_PeerX509, _field, _lazy_x509_field(_field))


class _FastEdDSAKey(Python_EdDSAKey):  # type: ignore[misc]
    """A tlslite EdDSA key whose signing and verification run in OpenSSL."""

    _aiotls_private: Any = None
    _aiotls_public: Any = None

    def _hashAndSign(self, data: bytearray) -> bytearray:
        return bytearray(_crypto.eddsa_sign(self._aiotls_private, data))

    def _hashAndVerify(self, signature: bytearray, data: bytearray) -> bool:
        return _crypto.eddsa_verify(self._aiotls_public, signature, data)


_RSA_HASHES = _crypto.hash_names()


class _FastRSAKey(Python_RSAKey):  # type: ignore[misc]
    """A tlslite RSA key whose signing and verification run in OpenSSL."""

    _aiotls_private: Any = None
    _aiotls_public: Any = None

    def sign(self, bytes: bytearray, padding: str = "pkcs1", hashAlg: str | None = None,
             saltLen: int | None = None) -> bytearray:
        mode = padding.lower()
        if self._aiotls_private is not None and hashAlg in _RSA_HASHES and mode in ("pkcs1", "pss"):
            return bytearray(_crypto.rsa_sign_digest(self._aiotls_private, bytes, mode, hashAlg,
                                                     saltLen))
        return super().sign(bytes, padding, hashAlg, saltLen)  # type: ignore[no-any-return]

    def verify(self, sigBytes: bytearray, bytes: bytearray, padding: str = "pkcs1",
               hashAlg: str | None = None, saltLen: int | None = None) -> bool:
        mode = padding.lower()
        if mode == "pkcs1" and self.key_type == "rsa-pss":
            return False  # an RSA-PSS-only key never verifies PKCS#1 v1.5 signatures
        digest, name = bytes, hashAlg
        if mode == "pkcs1" and name is None:
            digest, name = _strip_digest_info(bytes)  # TLS 1.2 passes DigestInfo-prefixed
        if (self._aiotls_public is not None and name in _RSA_HASHES and name != "sha1"
                and mode in ("pkcs1", "pss")):
            return _crypto.rsa_verify_digest(self._aiotls_public, sigBytes, digest, mode,
                                             name, saltLen)
        return super().verify(sigBytes, bytes, padding, hashAlg, saltLen)  # type: ignore[no-any-return]


def _strip_digest_info(data: bytearray) -> tuple[bytearray, str | None]:
    for name, prefix in Python_RSAKey._pkcs1Prefixes.items():
        if data.startswith(prefix) and name in _RSA_HASHES:
            return data[len(prefix):], name
    return data, None


def _accelerate(key: Any, crypto_key: Any, *, private: bool) -> Any:
    """Switch one tlslite key object to OpenSSL-backed operations (per object, not global).

    (Only the cryptographic operations change: tlslite still builds and checks the messages.)
    """
    if crypto_key is None or not speedups.ENABLED:
        return key
    if type(key) is Python_ECDSAKey and _crypto.is_ec_key(crypto_key):
        key.__class__ = _FastECDSAKey
    elif type(key) is Python_EdDSAKey and _crypto.is_eddsa_key(crypto_key):
        key.__class__ = _FastEdDSAKey
    elif type(key) is Python_RSAKey and _crypto.is_rsa_key(crypto_key):
        key.__class__ = _FastRSAKey
    else:
        return key
    key._aiotls_private = crypto_key if private else None
    key._aiotls_public = crypto_key.public_key() if private else crypto_key
    return key


class _FastAECDH(AECDHKeyExchange):  # type: ignore[misc]
    """TLS 1.2 ECDHE with the (EC)DH arithmetic in OpenSSL, for uncompressed points.

    Sits between tlslite's signing layer and its ECDH layer in the MRO of
    :class:`_FastECDHE`, so tlslite still builds, signs and checks the messages.
    """

    def _uncompressed_only(self, group: int) -> bool:
        if _FAST_GROUPS.get(group) in ("x25519", "x448"):
            return True  # point formats do not apply to these (RFC 8422 5.1.2)
        ext_c = self.clientHello.getExtension(ExtensionType.ec_point_formats)
        ext_s = self.serverHello.getExtension(ExtensionType.ec_point_formats)
        if not (ext_c and ext_s):
            return True
        common = [f for f in ext_c.formats if f in ext_s.formats]
        return bool(common) and common[0] == ECPointFormat.uncompressed

    def makeServerKeyExchange(self, sigHash: Any = None) -> Any:
        client_groups = self.clientHello.getExtension(ExtensionType.supported_groups)
        groups = client_groups.groups if client_groups and client_groups.groups \
            else [self.defaultCurve]
        group = getFirstMatching(groups, self.acceptedCurves)
        if group not in _FAST_GROUPS or not self._uncompressed_only(group):
            return super().makeServerKeyExchange(sigHash)
        self.group_id = group
        impl = _crypto.ECDHGroup(_FAST_GROUPS[group])
        self.ecdhXs = impl.generate()
        ske = ServerKeyExchange(self.cipherSuite, self.serverHello.server_version)
        ske.createECDH(ECCurveType.named_curve, named_curve=group,
                       point=impl.public_bytes(self.ecdhXs))
        return ske

    def processClientKeyExchange(self, clientKeyExchange: Any) -> Any:
        if self.group_id not in _FAST_GROUPS or not hasattr(self.ecdhXs, "exchange"):
            return super().processClientKeyExchange(clientKeyExchange)
        share = clientKeyExchange.ecdh_Yc
        if not share:
            raise TLSDecodeError("No key share")
        try:
            return _crypto.ECDHGroup(_FAST_GROUPS[self.group_id]).shared_secret(self.ecdhXs, share)
        except ValueError as exc:
            raise TLSIllegalParameterException(str(exc)) from None

    def processServerKeyExchange(self, srvPublicKey: Any, serverKeyExchange: Any) -> Any:
        group = serverKeyExchange.named_curve
        if serverKeyExchange.curve_type != ECCurveType.named_curve \
                or group not in self.acceptedCurves:
            raise TLSIllegalParameterException("Server picked curve we didn't advertise")
        if group not in _FAST_GROUPS or not self._uncompressed_only(group):
            return super().processServerKeyExchange(srvPublicKey, serverKeyExchange)
        if not serverKeyExchange.ecdh_Ys:
            raise TLSDecodeError("Empty server key share")
        impl = _crypto.ECDHGroup(_FAST_GROUPS[group])
        private = impl.generate()
        self.ecdhYc = impl.public_bytes(private)
        try:
            return impl.shared_secret(private, serverKeyExchange.ecdh_Ys)
        except ValueError as exc:
            raise TLSIllegalParameterException(str(exc)) from None


class _FastECDHE(ECDHE_RSAKeyExchange, _FastAECDH):  # type: ignore[misc]
    """ECDHE_RSAKeyExchange (RSA or ECDSA signed) with :class:`_FastAECDH` underneath."""


class _FastADH(ADHKeyExchange):  # type: ignore[misc]
    """TLS 1.2 DHE restricted to the RFC 7919 groups, with the arithmetic in OpenSSL.

    Server: the first of the client's supported_groups that we enable (RFC 7919 3); a
    client that lists no FFDHE group gets our first one (RFC 7919 4 allows any group then;
    tlslite would use a non-RFC 7919 default).  Client: the server's (p, g) must be one of
    the groups we offered, or the handshake ends with insufficient_security (tlslite
    accepts any prime of 1024 bits or more).
    """

    group_id: int | None = None
    refused_parameters = False

    def makeServerKeyExchange(self, sigHash: Any = None) -> Any:
        ours = list(self.dhGroups or [])
        ext = self.clientHello.getExtension(ExtensionType.supported_groups)
        offered = ext.groups if ext is not None and ext.groups else []
        group = getFirstMatching(offered, ours)
        if group is None:
            if any(g in range(256, 512) for g in offered) or not ours:
                raise TLSInsufficientSecurity("no common FFDHE group")
            group = ours[0]
        impl = _ffdh(group)
        self.group_id = group
        self.dh_g, self.dh_p = RFC7919_GROUPS[group - GroupName.ffdhe2048]
        self.dh_Xs = impl.generate()
        ske = ServerKeyExchange(self.cipherSuite, self.serverHello.server_version)
        ske.createDH(self.dh_p, self.dh_g, impl.public_value(self.dh_Xs))
        return ske

    def processClientKeyExchange(self, clientKeyExchange: Any) -> Any:
        if self.group_id is None:
            raise TLSInternalError("no FFDHE group selected")
        try:
            return _strip_zeros(_ffdh(self.group_id).shared_secret(self.dh_Xs,
                                                                   clientKeyExchange.dh_Yc))
        except ValueError as exc:
            raise TLSIllegalParameterException(str(exc)) from None

    def processServerKeyExchange(self, srvPublicKey: Any, serverKeyExchange: Any) -> Any:
        ext = self.clientHello.getExtension(ExtensionType.supported_groups)
        offered = [g for g in (ext.groups if ext is not None else []) if g in _FF_GROUPS]
        params = (serverKeyExchange.dh_g, serverKeyExchange.dh_p)
        group = next((g for g in offered
                      if RFC7919_GROUPS[g - GroupName.ffdhe2048] == params), None)
        if group is None:
            self.refused_parameters = True
            raise TLSInsufficientSecurity(
                "the server's DH parameters are not one of the RFC 7919 groups we offered")
        impl = _ffdh(group)
        self.group_id = group
        private = impl.generate()
        self.dh_Yc = impl.public_value(private)
        try:
            return _strip_zeros(impl.shared_secret(private, serverKeyExchange.dh_Ys))
        except ValueError as exc:
            raise TLSIllegalParameterException(str(exc)) from None


class _FastDHE(DHE_RSAKeyExchange, _FastADH):  # type: ignore[misc]
    """DHE_RSAKeyExchange (RSA signed) with :class:`_FastADH` underneath."""


def _accelerate_kex(key_exchange: Any) -> None:
    if type(key_exchange) is ECDHE_RSAKeyExchange:
        key_exchange.__class__ = _FastECDHE
    elif type(key_exchange) is DHE_RSAKeyExchange:
        key_exchange.__class__ = _FastDHE

