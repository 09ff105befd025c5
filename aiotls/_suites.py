"""What aiotls can negotiate: the cipher-suite catalogue, the key-exchange groups, the
protocol versions, and the option and verification-flag bits that describe what aiotls
always does.  :mod:`aiotls.context` configures connections from these."""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from . import _crypto_pq


@dataclass(frozen=True, slots=True)
class CipherSuite:
    """A cipher suite aiotls can negotiate."""

    #: IANA name, e.g. ``TLS_AES_128_GCM_SHA256``.
    name: str
    #: OpenSSL name (what :meth:`ssl.SSLSocket.cipher` reports).
    openssl_name: str
    #: Code point.
    id: int
    #: ``"TLSv1.3"`` for TLS 1.3 suites, otherwise the lowest version that can use it.
    protocol: str
    #: Key size of the bulk cipher in bits.
    bits: int
    #: Bulk cipher, in tlslite's spelling (``aes128gcm``...).
    cipher: str
    #: Key exchange and authentication (``ecdhe_ecdsa``...), ``None`` for TLS 1.3 suites.
    kex: str | None
    #: Record MAC, ``aead`` for AEAD suites.
    mac: str
    #: True for AEAD suites.
    aead: bool


def _s(name: str, ossl: str, sid: int, proto: str, bits: int, cipher: str,
       kex: str | None, mac: str = "aead") -> CipherSuite:
    return CipherSuite(name, ossl, sid, proto, bits, cipher, kex, mac, mac == "aead")


#: Every suite aiotls knows; the first nine are the defaults.  The order on the wire (and the
#: server's choice among common suites) is tlslite-ng's: AES-256-GCM, AES-128-GCM, ChaCha20.
ALL_SUITES: tuple[CipherSuite, ...] = (
    _s("TLS_AES_128_GCM_SHA256", "TLS_AES_128_GCM_SHA256", 0x1301, "TLSv1.3", 128, "aes128gcm", None),
    _s("TLS_AES_256_GCM_SHA384", "TLS_AES_256_GCM_SHA384", 0x1302, "TLSv1.3", 256, "aes256gcm", None),
    _s("TLS_CHACHA20_POLY1305_SHA256", "TLS_CHACHA20_POLY1305_SHA256", 0x1303, "TLSv1.3", 256,
       "chacha20-poly1305", None),
    _s("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256", 0xC02B,
       "TLSv1.2", 128, "aes128gcm", "ecdhe_ecdsa"),
    _s("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "ECDHE-RSA-AES128-GCM-SHA256", 0xC02F,
       "TLSv1.2", 128, "aes128gcm", "ecdhe_rsa"),
    _s("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "ECDHE-ECDSA-AES256-GCM-SHA384", 0xC02C,
       "TLSv1.2", 256, "aes256gcm", "ecdhe_ecdsa"),
    _s("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "ECDHE-RSA-AES256-GCM-SHA384", 0xC030,
       "TLSv1.2", 256, "aes256gcm", "ecdhe_rsa"),
    _s("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305", 0xCCA9,
       "TLSv1.2", 256, "chacha20-poly1305", "ecdhe_ecdsa"),
    _s("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-RSA-CHACHA20-POLY1305", 0xCCA8,
       "TLSv1.2", 256, "chacha20-poly1305", "ecdhe_rsa"),
    # Off by default; only on explicit request through set_ciphers().
    _s("TLS_AES_128_CCM_SHA256", "TLS_AES_128_CCM_SHA256", 0x1304, "TLSv1.3", 128, "aes128ccm", None),
    _s("TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", "ECDHE-ECDSA-AES128-SHA", 0xC009, "TLSv1", 128,
       "aes128", "ecdhe_ecdsa", "sha"),
    _s("TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", "ECDHE-ECDSA-AES256-SHA", 0xC00A, "TLSv1", 256,
       "aes256", "ecdhe_ecdsa", "sha"),
    _s("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "ECDHE-RSA-AES128-SHA", 0xC013, "TLSv1", 128,
       "aes128", "ecdhe_rsa", "sha"),
    _s("TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", "ECDHE-RSA-AES256-SHA", 0xC014, "TLSv1", 256,
       "aes256", "ecdhe_rsa", "sha"),
    # Finite-field DHE (TLS 1.2, RSA certificates): off by default; they take effect only
    # with an ffdhe group enabled in set_groups() (RFC 7919 negotiation).
    _s("TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", "DHE-RSA-AES128-GCM-SHA256", 0x009E, "TLSv1.2",
       128, "aes128gcm", "dhe_rsa"),
    _s("TLS_DHE_RSA_WITH_AES_256_GCM_SHA384", "DHE-RSA-AES256-GCM-SHA384", 0x009F, "TLSv1.2",
       256, "aes256gcm", "dhe_rsa"),
    _s("TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "DHE-RSA-CHACHA20-POLY1305", 0xCCAA,
       "TLSv1.2", 256, "chacha20-poly1305", "dhe_rsa"),
)
DEFAULT_SUITES: tuple[CipherSuite, ...] = ALL_SUITES[:9]
SUITES_BY_ID: dict[int, CipherSuite] = {s.id: s for s in ALL_SUITES}
_SUITES_BY_NAME: dict[str, CipherSuite] = {
    **{s.name.upper(): s for s in ALL_SUITES},
    **{s.openssl_name.upper(): s for s in ALL_SUITES},
}

#: Finite-field DH groups of RFC 7919 (off by default: slower and larger than ECDHE).
FFDHE_GROUPS: tuple[str, ...] = ("ffdhe2048", "ffdhe3072", "ffdhe4096", "ffdhe6144", "ffdhe8192")
#: The hybrid post-quantum group (draft-ietf-tls-ecdhe-mlkem, 0x11EC; TLS 1.3 only).
HYBRID_GROUPS: tuple[str, ...] = (_crypto_pq.NAME,)
#: Key-exchange groups aiotls can use (X25519MLKEM768 where the installed cryptography has
#: ML-KEM).
ALL_GROUPS: tuple[str, ...] = ("x25519", "secp256r1", "secp384r1", "secp521r1", "x448",
                               *(HYBRID_GROUPS if _crypto_pq.available() else ()),
                               *FFDHE_GROUPS)
#: A client's groups: X25519MLKEM768 is not among them by default, because a full handshake
#: with it costs more than 10% over X25519 alone here (about 1.2-1.4x, both ends' CPU; see
#: docs/configuration.md, "Post-quantum key exchange"): opt in with set_groups().
DEFAULT_GROUPS: tuple[str, ...] = ("x25519", "secp256r1", "secp384r1")
#: A server's groups: X25519MLKEM768 first (where the installed cryptography has ML-KEM), so
#: a client that sends a key share for it gets it; other clients are not asked for one.
DEFAULT_SERVER_GROUPS: tuple[str, ...] = (
    *(HYBRID_GROUPS if _crypto_pq.available() else ()), *DEFAULT_GROUPS)
_GROUP_ALIASES = {"p-256": "secp256r1", "prime256v1": "secp256r1", "p-384": "secp384r1",
                  "p-521": "secp521r1", "x25519": "x25519", "x448": "x448"}

_VERSION_NAMES = {
    ssl.TLSVersion.TLSv1: "TLSv1", ssl.TLSVersion.TLSv1_1: "TLSv1.1",
    ssl.TLSVersion.TLSv1_2: "TLSv1.2", ssl.TLSVersion.TLSv1_3: "TLSv1.3",
}
_SUPPORTED_VERSIONS = (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1,
                       ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3)

#: Option bits that describe what aiotls always does (reported by ``options``; clearing them
#: changes nothing: aiotls never speaks SSL, compresses or renegotiates, and a server picks
#: the suite by its own preference).
_BASE_OPTIONS = (ssl.OP_NO_SSLv2 | ssl.OP_NO_SSLv3 | ssl.OP_NO_COMPRESSION
                 | ssl.OP_NO_RENEGOTIATION | ssl.OP_CIPHER_SERVER_PREFERENCE
                 | ssl.OP_SINGLE_DH_USE | ssl.OP_SINGLE_ECDH_USE)
_VERSION_OPTIONS = {
    ssl.TLSVersion.TLSv1: ssl.OP_NO_TLSv1, ssl.TLSVersion.TLSv1_1: ssl.OP_NO_TLSv1_1,
    ssl.TLSVersion.TLSv1_2: ssl.OP_NO_TLSv1_2, ssl.TLSVersion.TLSv1_3: ssl.OP_NO_TLSv1_3,
}
#: Verification flags that describe what aiotls's verifier always does: RFC 5280 checks
#: as strict as OpenSSL's X509_STRICT, and every certificate in the trust store is an
#: anchor (like PARTIAL_CHAIN), the trusted one preferred (TRUSTED_FIRST).
_ALWAYS_VERIFY_FLAGS = (ssl.VERIFY_X509_STRICT | ssl.VERIFY_X509_PARTIAL_CHAIN
                        | ssl.VERIFY_X509_TRUSTED_FIRST)
_UNSUPPORTED_VERIFY_FLAGS = {
    ssl.VERIFY_CRL_CHECK_LEAF: "CRL checking (VERIFY_CRL_CHECK_LEAF)",
    ssl.VERIFY_CRL_CHECK_CHAIN: "CRL checking (VERIFY_CRL_CHECK_CHAIN)",
    ssl.VERIFY_ALLOW_PROXY_CERTS: "proxy certificates (VERIFY_ALLOW_PROXY_CERTS)",
}
