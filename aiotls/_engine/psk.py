"""External PSKs (TLS 1.3, RFC 8446 4.2.11) on tlslite-ng's handshake: the engine's side.

tlslite-ng implements external PSKs through ``HandshakeSettings.pskConfigs`` (identity,
key, hash) and ``psk_modes``: the client offers every PSK with its binder, the server takes
the first identity it knows, checks its binder and runs the key schedule from it.  aiotls's
lean paths (accept.py, server13.py, client_hello.py, client13.py) hand any handshake with
``pskConfigs`` to tlslite-ng's methods, so binders, identity selection and key schedule
are tlslite-ng's in both speed-up modes.  This module adds what tlslite-ng lacks:

* :func:`configure` puts the context's PSKs and modes into the prepared settings (a server
  with PSKs and no certificate speaks TLS 1.3 only: TLS 1.2 PSK suites do not exist here);
* :func:`connection_settings` calls Python 3.13's callbacks per connection: the client's
  before its ClientHello, the server's once the ClientHello names its identities (a list
  of this connection's own, filled then; see :class:`ExternalPSKHooks`);
* :class:`ExternalPSKHooks` checks what tlslite-ng does not: the server verifies the
  binder of the external PSK it is about to take first (decrypt_error, "the PSKs differ",
  instead of tlslite-ng's illegal_parameter), refuses a client without a known identity
  when it has no certificate (unknown_psk_identity), and explains a PSK whose hash no
  common suite has; the client checks the ServerHello's choice (RFC 8446 4.2.11: the
  identity offered, the suite's hash, a key share unless psk_ke was offered) and explains
  an alert that answers its PSK.
* Which external PSK a handshake used is kept (``TLSConnection.psk_identity``).

A client whose server takes no PSK verifies the server's certificate as usual: offering a
PSK never lowers verification.  When the server takes the PSK, no certificate is sent in
either direction: the PSK authenticates both ends.
"""

from __future__ import annotations

import copy
import ssl
from collections.abc import Generator
from typing import Any

from tlslite.constants import AlertDescription as _TLAlert
from tlslite.constants import CipherSuite, ExtensionType, PskKeyExchangeMode
from tlslite.errors import TLSIllegalParameterException, TLSRemoteAlert
from tlslite.handshakehelpers import HandshakeHelpers

from .._psk import MAX_CALLBACK_IDENTITY, PSK_HASHES, psk_identity, psk_key
from ..errors import AlertReceived, PeerIncompatible, PeerMisbehaved, TLSConfigurationError
from .common import _Hooks

#: The hash of each TLS 1.3 suite's key schedule.
_SUITE_NAMES = {CipherSuite.TLS_AES_128_GCM_SHA256: "TLS_AES_128_GCM_SHA256",
                CipherSuite.TLS_AES_256_GCM_SHA384: "TLS_AES_256_GCM_SHA384",
                CipherSuite.TLS_CHACHA20_POLY1305_SHA256: "TLS_CHACHA20_POLY1305_SHA256",
                CipherSuite.TLS_AES_128_CCM_SHA256: "TLS_AES_128_CCM_SHA256",
                CipherSuite.TLS_AES_128_CCM_8_SHA256: "TLS_AES_128_CCM_8_SHA256"}
#: Never matches an identity (clients may not send empty ones): keeps a callback server's
#: list non-empty until its ClientHello arrives, so that tlslite-ng and the lean paths
#: treat it as a PSK server from the start.
_PLACEHOLDER = (bytearray(), bytearray(32), "sha256")


def _hash_of(config: Any) -> str:
    return config[2] if len(config) > 2 else "sha256"


def _shown(identity: bytes) -> str:
    try:
        return repr(identity.decode("utf-8"))
    except UnicodeDecodeError:
        return f"0x{identity[:32].hex()}{'...' if len(identity) > 32 else ''}"


# --- settings ----------------------------------------------------------------------------------

def configure(s: Any, ctx: Any) -> None:
    """Put the context's PSKs and PSK modes into tlslite settings ``s`` (prepared once)."""
    s.psk_modes = list(ctx.psk_modes)
    s.pskConfigs = [(bytearray(i), bytearray(key), name)
                    for i, (key, name) in ctx._psk_table.items()]
    if not ctx._has_external_psks():
        return
    hashes = {name for _, name in ctx._psk_table.values()}
    if ctx._psk_client_callback is not None or ctx._psk_server_callback is not None:
        hashes.add("sha256")
    tls13 = {suite.name for suite in ctx._effective_suites() if suite.protocol == "TLSv1.3"}
    for name in sorted(hashes):
        if tuple(s.maxVersion) < (3, 4) or not tls13 & set(PSK_HASHES[name]):
            raise TLSConfigurationError(
                f"external PSKs hashed with {name.upper()} need TLS 1.3 and one of the suites "
                f"{', '.join(PSK_HASHES[name])}, which this context does not enable",
                cause="a TLS 1.3 PSK is bound to the hash of the cipher suite",
                hint="allow TLS 1.3 (maximum_version) and enable a matching suite with "
                "set_ciphers(), or give the PSK the other hash")
    if ctx.protocol == ssl.PROTOCOL_TLS_SERVER and not ctx._chain_der:
        # PSK clients only: TLS 1.3 only (a TLS 1.2 client gets protocol_version at once).
        s.minVersion = (3, 4)
        s.versions = [v for v in s.versions if tuple(v) >= (3, 4)]


def connection_settings(ctx: Any, prepared: Any, tl: Any, server_side: bool) -> Any:
    """The settings of one connection: the prepared ones, or, with a PSK callback, a copy
    with a PSK list of its own (the client's callback is called here)."""
    if server_side:
        callback = ctx._psk_server_callback
        if callback is None:
            return prepared.server_settings
        tl._aiotls_psk_callback = callback
        return _with_psks(prepared.server_settings, [_PLACEHOLDER])
    callback = ctx._psk_client_callback
    if callback is None:
        return prepared.client_settings
    try:
        answer = callback(None)
        identity, key = answer
    except Exception as exc:
        raise TLSConfigurationError(
            f"the PSK client callback failed: {type(exc).__name__}: {exc}",
            cause="set_psk_client_callback()'s callback raised, or did not return a tuple "
            "(identity, psk)", hint="return (identity: str, psk: bytes) from the callback",
            code="psk-callback-failed") from exc
    if isinstance(key, bytes | bytearray | memoryview) and not key:
        raise TLSConfigurationError(
            "the PSK client callback refused the connection (it returned an empty PSK)",
            hint="return a key for this server from the callback", code="psk-callback-refused")
    if identity is None:
        raise TLSConfigurationError(
            "the PSK client callback returned no identity (None)",
            cause="TLS 1.3 sends the identity so that the server can find the key",
            hint="return (identity, psk) with a non-empty identity string",
            code="psk-callback-failed")
    raw = psk_identity(identity, limit=MAX_CALLBACK_IDENTITY)
    return _with_psks(prepared.client_settings,
                      [(bytearray(raw), bytearray(psk_key(key, identity)), "sha256")])


def _with_psks(settings: Any, extra: list[Any]) -> Any:
    from .settings import _validated_once

    validated = copy.copy(settings._aiotls_validated)
    validated.pskConfigs = [*validated.pskConfigs, *extra]
    return _validated_once(validated)


# --- the handshake -----------------------------------------------------------------------------

class ExternalPSKHooks(_Hooks):  # type: ignore[misc]
    """The engine connection's checks and notes for external PSKs (see the module's text)."""

    _aiotls_settings: Any
    _aiotls_error: Any
    _aiotls_policy: Any
    #: server: Python 3.13's callback, asked for each identity the ClientHello offers
    _aiotls_psk_callback: Any = None
    #: the identity of the external PSK this handshake used (None: none)
    _aiotls_psk_used: bytes | None = None
    #: client: an error explaining the alert the server answered our PSK with
    _aiotls_remote_error: Any = None

    def _aiotls_screen_client_hello(self, hello: Any) -> Generator[Any, None, None]:
        callback = self._aiotls_psk_callback
        offer = hello.getExtension(ExtensionType.pre_shared_key)
        if callback is not None and offer is not None and offer.identities:
            configs = self._aiotls_settings.pskConfigs  # (this connection's own list)
            known = {bytes(c[0]) for c in configs}
            for ident in offer.identities:
                raw = bytes(ident.identity or b"")
                if raw in known or not 1 <= len(raw) <= MAX_CALLBACK_IDENTITY:
                    continue
                known.add(raw)
                try:
                    name = raw.decode("utf-8")
                except UnicodeDecodeError:
                    continue  # (a session ticket, most likely)
                try:
                    key = callback(name)
                    if key:
                        configs.append((bytearray(raw), bytearray(psk_key(key, name)), "sha256"))
                except Exception as exc:
                    what = f"the PSK server callback failed: {type(exc).__name__}: {exc}"
                    self._aiotls_error = TLSConfigurationError(
                        what, cause="set_psk_server_callback()'s callback raised or returned "
                        "something other than the key's bytes", hint="return the key (bytes), "
                        "or b'' for an unknown identity", alert=_TLAlert.internal_error,
                        code="psk-callback-failed")
                    yield from self._sendError(_TLAlert.internal_error, what)
        yield from super()._aiotls_screen_client_hello(hello)

    def _serverTLS13Handshake(self, settings: Any, clientHello: Any, cipherSuite: Any,
                              privateKey: Any, serverCertChain: Any,
                              *args: Any) -> Generator[Any, None, None]:
        if settings.pskConfigs:
            yield from self._aiotls_check_external_psk(settings, clientHello, cipherSuite,
                                                       serverCertChain)
        yield from super()._serverTLS13Handshake(settings, clientHello, cipherSuite,
                                                 privateKey, serverCertChain, *args)

    def _aiotls_check_external_psk(self, settings: Any, hello: Any, suite: int,
                                   chain: Any) -> Generator[Any, None, None]:
        """Server: find the PSK tlslite-ng is about to take, as it will (the first identity
        that is a known PSK with the suite's hash, or a ticket); verify an external one's
        binder here for a clear error; fail clearly if no PSK fits and there is no
        certificate to fall back on."""
        prf_name = self._getPRFParams(suite)[0]
        external = {bytes(c[0]): c for c in settings.pskConfigs if c[0]}
        offer = hello.getExtension(ExtensionType.pre_shared_key)
        identities = list(offer.identities) if offer is not None else []
        other_hash: list[tuple[bytes, str]] = []
        for position, ident in enumerate(identities):
            raw = bytes(ident.identity)
            config = external.get(raw)
            if config is None:
                if self._tryDecrypt(settings, ident)[0]:
                    return  # a session ticket comes first: tlslite's resumption
                continue
            if _hash_of(config) != prf_name:
                other_hash.append((raw, _hash_of(config)))
                continue
            try:
                HandshakeHelpers.verify_binder(hello, self._pre_client_hello_handshake_hash,
                                               position, config[1], prf_name, True)
            except TLSIllegalParameterException:
                what = (f"the client's binder for PSK identity {_shown(raw)} does not verify "
                        "with this server's key for it (sent alert decrypt_error to the peer)")
                self._aiotls_error = PeerIncompatible(
                    what, cause="the PSKs differ: the two ends have different keys (or "
                    "hashes) for this identity", hint="configure the same key and hash for "
                    "the identity on both ends", alert=_TLAlert.decrypt_error,
                    code="psk-mismatch")
                yield from self._sendError(_TLAlert.decrypt_error, what)
            self._aiotls_psk_used = raw
            return
        if chain:
            return  # no PSK fits: a full handshake with the certificate
        suite_name = _SUITE_NAMES.get(suite, f"0x{suite:04x}")
        if other_hash:
            raw, name = other_hash[0]
            what = (f"the client's PSK identity {_shown(raw)} is configured here with "
                    f"{name.upper()}, but the handshake's suite is {suite_name} (sent alert "
                    "handshake_failure to the peer)")
            cause = "the two ends give the PSK different hashes, or the client offers no " \
                "suite with this PSK's hash"
            hint = f"use the same hash on both ends, and enable {PSK_HASHES[name][0]} there"
            alert, code = _TLAlert.handshake_failure, "psk-hash-mismatch"
        elif identities:
            shown = ", ".join(_shown(bytes(i.identity)) for i in identities[:4])
            what = (f"the client offered PSK identities this server does not know ({shown}) "
                    "and the server has no certificate to fall back on (sent alert "
                    "unknown_psk_identity to the peer)")
            cause = "the client's PSK identity is not configured on this server"
            hint = "configure the identity and key on both ends (set_external_psks()), or " \
                "load a certificate for clients without a matching PSK"
            alert, code = _TLAlert.unknown_psk_identity, "psk-unknown-identity"
        elif _only_modes_refused(hello, settings):
            what = ("the client offered its PSK only without (EC)DHE (psk_ke), which this "
                    "server does not allow, and the server has no certificate (sent alert "
                    "handshake_failure to the peer)")
            cause = "the client's psk_modes allow psk_ke only; this server's allow psk_dhe_ke"
            hint = "let the client offer psk_dhe_ke (the default psk_modes), or -- losing " \
                "forward secrecy -- add 'psk_ke' to psk_modes on this server"
            alert, code = _TLAlert.handshake_failure, "psk-mode-unsupported"
        else:
            what = ("the client offered no PSK, and this server has no certificate: it "
                    "accepts PSK clients only (sent alert handshake_failure to the peer)")
            cause = "the client has no external PSK configured for this server"
            hint = "give the client the PSK (set_external_psks()), or load a certificate " \
                "on the server with load_cert_chain()"
            alert, code = _TLAlert.handshake_failure, "psk-required"
        self._aiotls_error = PeerIncompatible(what, cause=cause, hint=hint, alert=alert,
                                              code=code)
        yield from self._sendError(alert, what)

    def _serverSendTickets(self, settings: Any) -> Generator[Any, None, None]:
        if self._aiotls_psk_used is not None and self._aiotls_policy is not None:
            # A server that asks for client certificates: the PSK authenticated the client
            # (TLS 1.3 has no CertificateRequest in a PSK handshake), so there is no chain
            # to verify; and no ticket, whose resumption would have no certificate either.
            return
        yield from super()._serverSendTickets(settings)

    def _clientGetServerHello(self, settings: Any, session: Any,
                              clientHello: Any) -> Generator[Any, None, None]:
        offer = clientHello.getExtension(ExtensionType.pre_shared_key)
        if offer is None:  # (no PSK offered: nothing to check)
            yield from super()._clientGetServerHello(settings, session, clientHello)
            return
        external = {bytes(c[0]): c for c in settings.pskConfigs if c[0]}
        offered = [bytes(i.identity) for i in offer.identities]
        mine = [raw for raw in offered if raw in external]
        result: Any = None
        try:
            for result in super()._clientGetServerHello(settings, session, clientHello):
                if result in (0, 1):
                    yield result
                else:
                    break
        except TLSRemoteAlert as alert:
            if mine:
                self._aiotls_remote_error = _refused_psk(alert.description, mine)
            raise
        chosen = result.getExtension(ExtensionType.pre_shared_key)
        if chosen is not None and tuple(self.version) > (3, 3):
            yield from self._aiotls_check_choice(clientHello, result, chosen.selected,
                                                 offered, external)
        yield result

    def _aiotls_check_choice(self, hello: Any, server_hello: Any, selected: int,
                             offered: list[bytes], external: dict[bytes, Any],
                             ) -> Generator[Any, None, None]:
        """Client: RFC 8446 4.2.11's checks of the server's PSK choice (illegal_parameter)."""
        problem = None
        if not 0 <= selected < len(offered):
            problem = (f"the server selected PSK number {selected}, but this client offered "
                       f"{len(offered)}")
        else:
            config = external.get(offered[selected])
            prf_name = self._getPRFParams(server_hello.cipher_suite)[0]
            modes = hello.getExtension(ExtensionType.psk_key_exchange_modes)
            if config is not None and _hash_of(config) != prf_name:
                problem = (f"the server took PSK identity {_shown(offered[selected])}, "
                           f"configured here with {_hash_of(config).upper()}, with suite "
                           f"{_SUITE_NAMES.get(server_hello.cipher_suite, '?')}")
            elif server_hello.getExtension(ExtensionType.key_share) is None and (
                    modes is None or PskKeyExchangeMode.psk_ke not in modes.modes):
                problem = ("the server took a PSK without (EC)DHE (psk_ke), which this client "
                           "did not offer")
            elif config is not None:
                self._aiotls_psk_used = offered[selected]
        if problem is not None:
            self._aiotls_error = PeerMisbehaved(
                f"{problem} (sent alert illegal_parameter to the peer)",
                cause="a broken server (RFC 8446 4.2.11)",
                hint="check the server's TLS implementation and its PSK configuration",
                alert=_TLAlert.illegal_parameter, code="psk-bad-selection")
            yield from self._sendError(_TLAlert.illegal_parameter, problem)


def _only_modes_refused(hello: Any, settings: Any) -> bool:
    """The ClientHello's PSK was set aside because it allows only modes this server does
    not (see fixes.UpstreamFixes._aiotls_screen_client_hello)."""
    modes = hello.getExtension(ExtensionType.psk_key_exchange_modes)
    return modes is not None and bool(modes.modes) and not any(
        getattr(PskKeyExchangeMode, m) in modes.modes for m in settings.psk_modes)


def _refused_psk(alert: int, identities: list[bytes]) -> AlertReceived | None:
    """The error for an alert a server answered this client's external PSK with."""
    shown = ", ".join(_shown(i) for i in identities[:4])
    if alert in (_TLAlert.decrypt_error, _TLAlert.illegal_parameter):
        name = "decrypt_error" if alert == _TLAlert.decrypt_error else "illegal_parameter"
        what = (f"the server refused this client's PSK (identity {shown}) with alert {name} "
                "before its ServerHello: most likely the binder made with this client's key "
                "did not verify (OpenSSL 3.0 answers that with illegal_parameter)")
        cause = "the PSKs differ: the server has another key (or hash) for this identity"
        hint = "configure the same key and hash for the identity on both ends"
        code = "psk-mismatch"
    elif alert in (_TLAlert.unknown_psk_identity, _TLAlert.handshake_failure):
        name = "unknown_psk_identity" if alert == _TLAlert.unknown_psk_identity \
            else "handshake_failure"
        what = (f"the server refused the handshake with alert {name} after this client "
                f"offered the PSK identity {shown}")
        cause = "the server does not know this identity (or has it with another hash) and " \
            "has no certificate to use instead"
        hint = "configure the same identity, key and hash on both ends"
        code = "psk-refused"
    else:
        return None
    return AlertReceived(what, cause=cause, hint=hint, alert=alert, code=code)
