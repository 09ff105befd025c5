"""A server's common TLS 1.3 ClientHello, accepted without tlslite-ng's checks.

tlslite's ``_serverGetClientHello`` reads the ClientHello, then runs some sixty checks
and negotiations before it answers (version, suite, signature scheme, certificate); in a
resumed handshake that walk costs about as much as the PSK's key schedule.  For the
ClientHello nearly every TLS 1.3 client sends (a certificate server, TLS 1.3 offered and
chosen, (EC)DHE key shares, no early data, no heartbeat, no TLS 1.2 session ticket, a key
share the server takes), :meth:`FastAccept._aiotls_accept` makes the same decisions
in one pass and gives the same answer with the same effects on the connection.

It only ever *accepts*: whenever any check tlslite makes would fail, or the hello needs
anything it does not handle (a HelloRetryRequest, psk_ke, SNI that differs from the
expected name, ...), it answers None and tlslite's method runs on the same hello (read
again from :attr:`_aiotls_replay`), with its own alerts and texts.  So a refusal is always
tlslite's, and an acceptance is checked against tlslite's for the same hellos
(``tests/test_accept.py``).
"""

from __future__ import annotations

from collections.abc import Generator
from itertools import chain
from typing import Any

from tlslite.constants import (
    TLS_1_3_FORBIDDEN_GROUPS,
    CertificateType,
    CipherSuite,
    ContentType,
    ExtensionType,
    GroupName,
    HandshakeType,
    PskKeyExchangeMode,
)
from tlslite.extensions import SNIExtension
from tlslite.handshakesettings import KNOWN_VERSIONS
from tlslite.utils.lists import getFirstMatching

from . import speedups
from .base import _ReboundTLSConnection
from .rebind import _fast_is_valid_hostname
from .server13 import _TLS13

#: Switched off by tests to run tlslite's method for every ClientHello.
ENABLED = speedups.ENABLED

_BRAINPOOL = ("brainpoolP512r1", "brainpoolP384r1", "brainpoolP256r1")

#: id(settings) -> (settings, ...) of the per-context lists the checks compare with.
_LISTS: dict[int, tuple[Any, ...]] = {}


def _lists(self: Any, settings: Any) -> tuple[Any, ...]:
    """What tlslite's method computes from the settings alone for TLS 1.3: (settings, the
    suites its certificate branch lists by (an EC group in common, FFDHE allowed), the
    server's EC groups, its FFDHE groups, the groups it takes a key share for); once per
    settings object (kept alive by the entry; at most 64 entries)."""
    hit = _LISTS.get(id(settings))
    if hit is not None and hit[0] is settings:
        return hit
    suites = {}
    for ec, ff in ((True, True), (True, False), (False, True)):
        listed = CipherSuite.getTLS13Suites(settings, _TLS13)
        if ec:
            listed += CipherSuite.getEcdsaSuites(settings, _TLS13)
            listed += CipherSuite.getEcdheCertSuites(settings, _TLS13)
        if ff:
            listed += CipherSuite.getDheCertSuites(settings, _TLS13)
            listed += CipherSuite.getDheDsaSuites(settings, _TLS13)
        listed += CipherSuite.getCertSuites(settings, _TLS13)
        suites[ec, ff] = tuple(CipherSuite.filterForVersion(listed, minVersion=_TLS13,
                                                            maxVersion=_TLS13))
    acceptable = tuple(getattr(GroupName, name) for name in chain(
        settings.keyShares, settings.eccCurves, settings.dhGroups) if name not in _BRAINPOOL)
    hit = (settings, suites, tuple(self._curveNamesToList(settings, _TLS13)),
           tuple(self._groupNamesToList(settings)), acceptable)
    if len(_LISTS) >= 64:
        _LISTS.clear()
    _LISTS[id(settings)] = hit
    return hit


class FastAccept(_ReboundTLSConnection):  # type: ignore[misc]
    """The server's ClientHello step with :meth:`_aiotls_accept` in front of tlslite's."""

    _handshake_hash: Any  # (tlslite's running transcript hashes)
    #: (hello, handshake hash after it) that tlslite's method reads again (see _getMsg).
    _aiotls_replay: tuple[Any, Any] | None = None
    #: How many ClientHellos this connection accepted here (for tests).
    _aiotls_accepted = 0

    def _serverGetClientHello(self, settings: Any, private_key: Any, cert_chain: Any,
                              verifierDB: Any, sessionCache: Any, anon: Any, alpn: Any,
                              sni: Any) -> Generator[Any, None, None]:
        args = (settings, private_key, cert_chain, verifierDB, sessionCache, anon, alpn, sni)
        if not ENABLED or verifierDB or sessionCache or anon or sni or not cert_chain \
                or settings.pskConfigs or settings.virtual_hosts or settings.minVersion > _TLS13:
            yield from super()._serverGetClientHello(*args)
            return
        # tlslite's start: the version for errors, the transcript before the hello, the hello
        self.version = min(settings.maxVersion, (3, 3))
        before = self._handshake_hash.copy()
        self._pre_client_hello_handshake_hash = before
        result: Any = None
        for result in self._getMsg(ContentType.handshake, HandshakeType.client_hello):
            if result in (0, 1):
                yield result
            else:
                break
        accepted = self._aiotls_accept(settings, result, private_key, cert_chain, alpn)
        if accepted is None:
            self._aiotls_replay = (result, self._handshake_hash)
            self._handshake_hash = before.copy()
            yield from super()._serverGetClientHello(*args)
            return
        self._aiotls_accepted += 1
        yield accepted

    def _aiotls_replayed(self, replay: tuple[Any, Any]) -> Generator[Any, None, None]:
        """The ClientHello read again by tlslite's method, with the transcript after it."""
        del self._aiotls_replay  # (back to the class's None)
        self._handshake_hash = replay[1]
        yield replay[0]

    def _aiotls_accept(self, settings: Any, hello: Any, private_key: Any, cert_chain: Any,
                       alpn: Any) -> tuple[Any, ...] | None:
        """tlslite's answer for this hello when every check it makes passes and TLS 1.3 is
        negotiated without a HelloRetryRequest; None for anything else.  The order and the
        conditions follow tlslite-ng's ``_serverGetClientHello``."""
        extensions = hello.extensions
        if hello.ssl2 or not extensions or tuple(hello.client_version) < (3, 3):
            return None
        by_type = {ext.extType: ext for ext in extensions}
        if len(by_type) != len(extensions):
            return None  # (two of a type: tlslite's lookups raise)
        get = by_type.get
        ver_ext = get(ExtensionType.supported_versions)
        if ver_ext is None or not ver_ext.versions or _TLS13 not in ver_ext.versions:
            return None
        real_version = tuple(hello.client_version)
        for v in ver_ext.versions:
            if v in KNOWN_VERSIONS and v > real_version:
                real_version = v
        suites = hello.cipher_suites
        if real_version < settings.minVersion or not suites \
                or not hello.compression_methods or 0 not in hello.compression_methods:
            return None
        sig_algs = get(ExtensionType.signature_algorithms)
        if sig_algs is not None and not sig_algs.sigalgs:
            return None
        alpn_ext = get(ExtensionType.alpn)
        if alpn_ext is not None and (not alpn_ext.protocol_names
                                     or not all(alpn_ext.protocol_names)):
            return None
        sni_ext = get(ExtensionType.server_name)
        if sni_ext is not None:
            # (SNIExtension's extData is empty exactly when serverNames is None)
            if not isinstance(sni_ext, SNIExtension) or not sni_ext.serverNames:
                return None
            names = sni_ext.hostNames
            if names:
                if len(names) != 1 or not names[0]:
                    return None
                try:
                    name = names[0].decode("ascii", "strict")
                except UnicodeDecodeError:
                    return None
                if not _fast_is_valid_hostname(name):
                    return None
            else:
                return None  # (tlslite then reads hostNames[0] of an empty list: its error)
        ems = get(ExtensionType.extended_master_secret)
        if ems is not None and ems.extData:
            return None
        # the TLS 1.3 extensions
        psk = get(ExtensionType.pre_shared_key)
        psk_modes = get(ExtensionType.psk_key_exchange_modes)
        key_share = get(ExtensionType.key_share)
        groups_ext = get(ExtensionType.supported_groups)
        pha = get(ExtensionType.post_handshake_auth)
        if pha is not None and pha.extData:
            return None
        if psk_modes is not None and not psk_modes.modes:
            return None
        if psk is not None:
            identities, binders = psk.identities, psk.binders
            if not identities or not binders or len(identities) != len(binders) \
                    or not all(i.identity for i in identities) or not all(binders) \
                    or psk is not hello.extensions[-1] or not psk_modes \
                    or PskKeyExchangeMode.psk_dhe_ke not in psk_modes.modes:
                return None  # (psk_ke included: tlslite's method)
        if not groups_ext or not key_share or not groups_ext.groups \
                or key_share.client_shares is None:
            return None
        groups = groups_ext.groups
        if TLS_1_3_FORBIDDEN_GROUPS.intersection(groups) and (3, 3) not in ver_ext.versions:
            return None
        share_ids = [entry.group for entry in key_share.client_shares]
        shared = set(share_ids)
        if any(group not in groups for group in share_ids) or len(shared) != len(share_ids) \
                or share_ids != [group for group in groups if group in shared]:
            return None
        if not ((not psk_modes or not psk) and sig_algs) and not psk:
            return None  # (no key exchange tlslite accepts)
        if get(ExtensionType.early_data) is not None:
            return None
        # the version: TLS 1.3, from supported_versions
        if getFirstMatching(settings.versions, ver_ext.versions) != _TLS13:
            return None
        if settings.maxVersion > _TLS13:
            return None  # (tlslite's inappropriate_fallback check applies)
        # groups, and the extensions with effects
        _, suite_lists, server_groups, ff_groups, acceptable = _lists(self, settings)
        ec = bool(getFirstMatching(groups, server_groups))
        ff = bool(getFirstMatching(groups, ff_groups)) \
            or not any(i for i in groups if 256 <= i < 512)
        if not ec and not ff:
            return None  # (no suite: tlslite's handshake_failure)
        if get(ExtensionType.heartbeat) is not None:
            return None
        size_limit = get(ExtensionType.record_size_limit)
        if size_limit is not None and (size_limit.record_size_limit is None
                                       or not size_limit.record_size_limit >= 64):
            return None
        ticket_ext = get(ExtensionType.session_ticket)
        if ticket_ext is not None and ticket_ext.ticket:
            return None  # (tlslite's TLS 1.2 ticket lookup)
        try:
            cipher_suite, sig_scheme, chosen_chain, chosen_key = \
                self._server_select_certificate(settings, hello, list(suite_lists[ec, ff]),
                                                cert_chain, private_key, _TLS13)
        except Exception:  # (tlslite's method meets it again and answers with its alert)
            return None
        if (cipher_suite in CipherSuite.certAllSuites
                or cipher_suite in CipherSuite.ecdheEcdsaSuites) \
                and CertificateType.x509 not in hello.certificate_types:
            return None
        for group in acceptable:
            if group in share_ids:
                break
        else:
            return None  # (a HelloRetryRequest: tlslite's method)
        # accepted: tlslite's effects on the connection
        if pha is not None:
            self._pha_supported = True
        self.version = (3, 3)
        if size_limit is not None and settings.record_size_limit:
            self._send_record_limit = min(2**14, size_limit.record_size_limit - 1)
            self._recv_record_limit = min(2**14, settings.record_size_limit - 1)
        self.version = _TLS13
        return (hello, _TLS13, cipher_suite, sig_scheme, chosen_key, chosen_chain)

