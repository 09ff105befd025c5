"""tlslite's handshake settings for a context, prepared once per context generation.

:func:`_prepare` turns a :class:`aiotls.TLSContext` into tlslite ``HandshakeSettings`` for
each role, the parsed certificate chain and private key, and the ALPN list, validated
once (:class:`_ValidatedSettings`), and caches them on the context until a setting changes.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from ssl import TLSVersion
from typing import Any

from tlslite.constants import (
    ECPointFormat,
)
from tlslite.handshakesettings import Keypair, VirtualHost
from tlslite.utils.keyfactory import parsePEMKey
from tlslite.x509 import X509
from tlslite.x509certchain import X509CertChain

from .. import _crypto
from ..context import FFDHE_GROUPS, TLSContext
from ..errors import (
    TLSConfigurationError,
)
from .accel import _accelerate
from .common import _VERSION_NAMES, _VERSION_TUPLES
from .hybrid import HYBRID_GROUPS
from .hybrid import HybridSettings as HandshakeSettings
from .psk import configure as configure_psks
from .psk import connection_settings as connection_settings


@dataclass(slots=True)
class _Prepared:
    generation: int
    client_settings: Any
    server_settings: Any
    cert_chain: Any
    private_key: Any
    alpn: list[bytearray] | None


_HYBRID = frozenset(HYBRID_GROUPS.values())

#: Every protocol version tlslite speaks, newest first.
_ALL_VERSIONS = ((3, 4), (3, 3), (3, 2), (3, 1))


def _settings(ctx: TLSContext) -> Any:
    suites = ctx._suites
    s = HandshakeSettings()
    s.cipherNames = list(dict.fromkeys(x.cipher for x in suites))
    s.macNames = list(dict.fromkeys(x.mac for x in suites))
    ec_groups = [g for g in ctx._groups if g not in FFDHE_GROUPS]
    ff_groups = [g for g in ctx._groups if g in FFDHE_GROUPS]
    kexes = list(dict.fromkeys(x.kex for x in suites if x.kex))
    chosen = kexes
    if not ff_groups:
        kexes = [k for k in kexes if k != "dhe_rsa"]  # DHE only over an RFC 7919 group
    if not [g for g in ec_groups if g not in _HYBRID]:  # (TLS 1.3 only)
        kexes = [k for k in kexes if not k.startswith("ecdhe")]
    if chosen and not kexes and ctx.maximum_version < TLSVersion.TLSv1_3:
        raise TLSConfigurationError(
            "the TLS 1.2 cipher suites chosen cannot be used with the key-exchange groups "
            f"chosen ({', '.join(ctx._groups)})",
            cause="DHE suites need an FFDHE group (ffdhe2048...) and ECDHE suites an "
            "elliptic-curve group (x25519, secp256r1...)",
            hint="add a matching group with set_groups(), or choose other suites with "
            "set_ciphers()",
        )
    s.keyExchangeNames = kexes or ["ecdhe_ecdsa", "ecdhe_rsa"]
    lo = _VERSION_TUPLES[_version_name(ctx.minimum_version)]
    hi = _VERSION_TUPLES[_version_name(ctx.maximum_version)]
    if not kexes:  # only TLS 1.3 suites chosen
        lo = max(lo, (3, 4))
    if not any(x.kex is None for x in suites):  # only TLS 1.2-and-older suites chosen
        hi = min(hi, (3, 3))
    if lo > hi:
        raise TLSConfigurationError(
            f"no protocol version left: minimum {_VERSION_NAMES.get(lo)} > maximum "
            f"{_VERSION_NAMES.get(hi)} (after matching the chosen cipher suites)",
            hint="widen minimum_version/maximum_version or choose suites for those versions",
        )
    s.minVersion, s.maxVersion = lo, hi
    # What a client lists in supported_versions, and what a server accepts from one: only the
    # versions between the minimum and the maximum (tlslite's default lists TLS 1.3 down to
    # 1.0 whatever minVersion says, and a server picks from that list unchecked).
    s.versions = [v for v in _ALL_VERSIONS if lo <= v <= hi]
    s.eccCurves = ec_groups
    s.keyShares = [ctx._groups[0]]
    if ctx._groups[0] in _HYBRID:
        # (as browsers, rustls and Go do: a classical share too, so that a server without
        # the hybrid group answers without a HelloRetryRequest)
        s.keyShares += [g for g in ec_groups if g not in _HYBRID][:1]
    s.dhGroups = ff_groups
    s.use_heartbeat_extension = False
    s.useExtendedMasterSecret = True
    # encrypt_then_mac (RFC 7366) only concerns CBC suites: not offered without them
    s.useEncryptThenMAC = any(x.mac != "aead" for x in suites)
    # RFC 7627 is enforced by aiotls for TLS 1.2 in both roles (see _ems_missing), per
    # TLSContext.require_extended_master_secret; tlslite's own check also fires for TLS 1.3.
    s.requireExtendedMasterSecret = False
    s.minKeySize = 2048
    s.rsaSigHashes = ["sha512", "sha384", "sha256"]
    s.ecdsaSigHashes = ["sha512", "sha384", "sha256"]
    s.dsaSigHashes = []
    s.ec_point_formats = [ECPointFormat.uncompressed]  # RFC 8422 deprecates compressed points
    s.certificate_compression_send = list(ctx.certificate_compression)
    s.certificate_compression_receive = list(ctx.certificate_compression)
    s.record_size_limit = ctx.record_size_limit
    # Ticket contents are sealed by aiotls (_crypto.TicketSealer); tlslite only needs to see
    # that tickets are enabled.
    s.ticketKeys = [bytearray(32)] if ctx.num_tickets else []
    s.ticket_count = ctx.num_tickets
    s.ticketLifetime = ctx.session_ticket_lifetime
    configure_psks(s, ctx)
    s.cipherImplementations = ["python"]
    try:
        return s.validate()
    except (ValueError, TypeError) as exc:
        raise TLSConfigurationError(f"invalid TLS settings: {exc}") from None


class _ValidatedSettings(HandshakeSettings):
    """Settings validated once per context.

    tlslite starts every handshake with ``settings.validate()`` (a deep copy and every
    check, ~40 us); this returns the copy validated when the context was prepared.  tlslite
    only reads it (it validates again before deriving modified settings); aiotls must not
    change it either: use ``fresh_copy()``.
    """

    _aiotls_validated: Any

    def validate(self) -> Any:
        return self._aiotls_validated

    def fresh_copy(self) -> Any:
        return self._aiotls_validated.validate()


def _validated_once(validated: Any) -> _ValidatedSettings:
    settings = copy.copy(validated)
    settings.__class__ = _ValidatedSettings
    settings._aiotls_validated = validated
    return settings  # type: ignore[no-any-return]


def _parse_x509(der: bytes) -> Any:
    cert = X509()
    cert.parseBinary(bytearray(der))
    return cert


def _version_name(v: Any) -> str:
    return {1: "TLSv1", 2: "TLSv1.1", 3: "TLSv1.2", 4: "TLSv1.3"}[int(v) - 0x300]


def _tlslite_identity(chain_der: tuple[bytes, ...], private_key: Any) -> tuple[Any, Any]:
    """tlslite's chain and key objects for one identity."""
    chain = X509CertChain([_parse_x509(d) for d in chain_der])
    key = _accelerate(parsePEMKey(_crypto.private_key_pkcs8_pem(private_key), private=True,
                                  implementations=["python"]), private_key, private=True)
    return chain, key


def _prepare(ctx: TLSContext) -> _Prepared:
    cached: _Prepared | None = getattr(ctx, "_engine_cache", None)
    generation = ctx._generation  # read first: a change made while building is not lost
    if cached is not None and cached.generation == generation:
        return cached
    client_settings = _settings(ctx)
    server_settings = _settings(ctx)
    chain = key = None
    if ctx._chain_der and ctx._key is not None:
        chain, key = _tlslite_identity(ctx._chain_der, ctx._key)
        # The context's other identities (other key types), tried in order after the first
        # by tlslite's certificate selection (_server_select_certificate).
        others = [Keypair(k, c.x509List) for c, k in (
            _tlslite_identity(i.chain, i.key) for i in ctx._cert_identities[1:])]
        if others:
            host = VirtualHost()
            host.keys = others
            server_settings.virtual_hosts = [host]
    alpn = [bytearray(p.encode("ascii")) for p in ctx._alpn] or None
    prepared = _Prepared(generation, _validated_once(client_settings),
                         _validated_once(server_settings), chain, key, alpn)
    ctx._engine_cache = prepared
    return prepared

