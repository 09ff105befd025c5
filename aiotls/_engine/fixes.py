"""Corrections of tlslite-ng's behaviour, each naming the rule or the peer it is for.

tlslite refuses, crashes on or wrongly accepts some inputs that other TLS stacks handle:
:class:`_TolerantServer` lets pass what OpenSSL lets pass in a ClientHello (an expired TACK
draft), and :class:`UpstreamFixes` enforces RFC rules tlslite does not (RFC 7627 extended
master secret, RFC 7301 ALPN answers, RFC 8446 5.1 record interleaving, PSK modes of
4.2.9, extensions a ServerHello may carry), lists FFDHE groups for TLS 1.3, keeps the
record size limit of RFC 8449 in TLS 1.2, and keeps records protected after an error.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from tlslite import HandshakeSettings
from tlslite.constants import AlertDescription as _TLAlert
from tlslite.constants import (
    CipherSuite,
    ContentType,
    ExtensionType,
    GroupName,
    PskKeyExchangeMode,
)
from tlslite.errors import (
    TLSHandshakeFailure,
)
from tlslite.messages import (
    ServerHello,
)

from .._record import handshake_fragment_pending, interleaved_error
from ..errors import (
    PeerIncompatible,
    PeerMisbehaved,
    TLSError,
)
from .accept import FastAccept
from .base import _ReboundTLSConnection
from .common import _Hooks


class _TolerantServer(FastAccept):
    """What a server lets pass in a ClientHello that tlslite refused or crashed on, where
    OpenSSL carries on (see also _ignore_ip_server_name, applied as the hello is parsed)."""

    #: An IP literal the client sent as SNI, ignored (see _ignore_ip_server_name).
    _aiotls_ip_sni: str | None = None

    def _serverGetClientHello(self, *args: Any, **kwargs: Any) -> Generator[Any, None, None]:
        for result in super()._serverGetClientHello(*args, **kwargs):
            if isinstance(result, tuple):
                self._aiotls_ip_sni = result[0].__dict__.get("_aiotls_ip_sni")
                # TACK (0xF300, an expired draft): tlslite answers a TLS 1.2 client offering
                # it with a NameError when the optional tackpy is absent.  OpenSSL ignores
                # the extension; so does aiotls (the transcript keeps the bytes as received).
                if result[0].getExtension(ExtensionType.tack) is not None:
                    result[0].tack = False
            yield result


def _ems_missing(peer: str, alert: int) -> PeerIncompatible:
    """The error for a TLS 1.2 peer without the extended master secret (RFC 7627)."""
    return PeerIncompatible(
        f"the {peer} does not support the extended master secret extension (RFC 7627), which "
        "aiotls requires for TLS 1.2",
        cause=f"the {peer} is an older TLS 1.2 implementation (for example an old Java or "
        "embedded stack) or has the extension turned off",
        hint=f"upgrade the {peer} or enable TLS 1.3 on it; to admit such peers anyway, at the "
        "risk of the triple-handshake attack, set require_extended_master_secret = False on "
        "this side's TLSContext",
        alert=alert, code="extended-master-secret-required",
    )



class UpstreamFixes(_Hooks):  # type: ignore[misc]
    """Corrections of tlslite-ng's behaviour, each named for the RFC rule or the peer it fixes."""

    _aiotls_error: TLSError | None


    @staticmethod
    def _pickServerKeyExchangeSig(settings: Any, clientHello: Any, certList: Any = None,
                                  private_key: Any = None, version: Any = (3, 3),
                                  check_alt: bool = True) -> Any:
        result = _ReboundTLSConnection._pickServerKeyExchangeSig(
            settings, clientHello, certList, private_key, version, check_alt)
        key = result[2] if isinstance(result, tuple) else None
        if result and result[0] == "sha1" and \
                str(getattr(key, "key_type", "")).lower() in ("ed25519", "ed448"):
            # A TLS 1.2 client without signature_algorithms accepts only SHA-1 with RSA or
            # ECDSA (RFC 5246 7.4.1.4.1); tlslite then crashed signing with an EdDSA key.
            raise TLSHandshakeFailure(
                "the client sent no signature_algorithms extension, so TLS 1.2 allows "
                "only SHA-1 signatures with RSA or ECDSA keys, and this server's "
                "certificate has an EdDSA key")
        return result

    #: True while this client builds its ClientHello (see _curveNamesToList).
    _aiotls_in_hello = False
    _aiotls_ff_listed = False

    def _clientSendClientHello(self, *args: Any, **kwargs: Any) -> Generator[Any, None, None]:
        self._aiotls_in_hello, self._aiotls_ff_listed = True, False
        try:
            yield from super()._clientSendClientHello(*args, **kwargs)
        finally:
            self._aiotls_in_hello = False

    def _curveNamesToList(self, settings: Any, version: Any = (3, 4)) -> list[int]:
        groups: list[int] = _ReboundTLSConnection._curveNamesToList(settings, version)
        if self._aiotls_in_hello and settings.dhGroups and settings.maxVersion > (3, 3):
            # tlslite lists FFDHE groups in supported_groups only when it offers a DHE suite;
            # TLS 1.3 needs them listed for FFDHE key shares and HelloRetryRequests too
            # (RFC 8446 4.2.7), so a client lists them with the elliptic curves.
            self._aiotls_ff_listed = True
            groups = groups + [getattr(GroupName, g) for g in settings.dhGroups]
        return groups

    def _groupNamesToList(self, settings: Any) -> list[int]:
        if self._aiotls_in_hello and self._aiotls_ff_listed:
            return []  # listed already (see _curveNamesToList)
        return [getattr(GroupName, g) for g in settings.dhGroups]

    def _getNextRecordFromSocket(self) -> Generator[Any, None, None]:
        # RFC 8446 5.1: no record of another type between the fragments of a handshake
        # message.  tlslite buffers each content type apart and would process an alert,
        # a change_cipher_spec or application data that arrived in between.  TLS 1.2 allows
        # alerts and application data there (RFC 5246 6.2.1), but a change_cipher_spec
        # would change keys in the middle of a message in either version.
        result: Any = None
        for result in super()._getNextRecordFromSocket():
            if result in (0, 1):
                yield result
            else:
                break
        record_type = result[0].type
        if record_type != ContentType.handshake and (
                record_type == ContentType.change_cipher_spec or tuple(self.version) > (3, 3)) \
                and handshake_fragment_pending(self._defragmenter.buffers[ContentType.handshake]):
            err = interleaved_error(record_type)
            self._aiotls_error = err
            yield from self._sendError(_TLAlert.unexpected_message, err.what)
        yield result

    def _serverGetClientHello(self, *args: Any, **kwargs: Any) -> Generator[Any, None, None]:
        for result in super()._serverGetClientHello(*args, **kwargs):
            if isinstance(result, tuple):
                self._aiotls_client_suites = tuple(result[0].cipher_suites)
            if isinstance(result, tuple) and result[1] < (3, 4):
                if self._aiotls_require_ems \
                        and not result[0].getExtension(ExtensionType.extended_master_secret):
                    # RFC 7627 5.2 (tlslite's own check would come later, with a vaguer error)
                    self._aiotls_error = _ems_missing("client", _TLAlert.insufficient_security)
                    yield from self._sendError(_TLAlert.insufficient_security,
                                               self._aiotls_error.what)
                # A TLS 1.2 full handshake.  tlslite issues a ticket only when the client's
                # session_ticket extension is empty, so a client whose ticket could not be
                # used (new ticket keys) never got another: RFC 5077 3.3 lets the server
                # issue a new ticket then, as OpenSSL does.  (The extension is only read
                # again for that decision; the transcript has the bytes as received.)
                extension = result[0].getExtension(ExtensionType.session_ticket)
                if extension is not None and extension.ticket:
                    extension.ticket = bytearray()
                self._aiotls_tls12_send_limit()
            yield result

    def _aiotls_tls12_send_limit(self) -> None:
        # RFC 8449 in TLS 1.2: the peer's record_size_limit bounds the plaintext of the
        # records we protect.  tlslite applies it only at its own Finished (and a client
        # never); from the hellos on, all our records keep to it: smaller records are always
        # allowed, and a peer that wrongly applies its limit to our unprotected records
        # (tlslite's client does, to a TLS 1.2 NewSessionTicket) is satisfied too.
        if self._peer_record_size_limit:
            self._send_record_limit = min(2**14, self._peer_record_size_limit)
            # and our own limit on the peer's protected records, which tlslite never applies
            # in TLS 1.2 (unprotected ones are not subject to it, RFC 8449 4)
            limit = self._aiotls_settings.record_size_limit
            self._recordLayer.records.set_receive_limit(min(2**14, limit or 2**14))

    def _aiotls_screen_client_hello(self, hello: Any) -> Generator[Any, None, None]:
        """Server: a PSK the client allows only in modes this server does not is ignored.

        RFC 8446 4.2.9: the server must not select a mode the client did not list, and
        aiotls uses PSKs only with (EC)DHE (psk_dhe_ke) unless the context's psk_modes
        also allows psk_ke.  A client offering only psk_ke
        therefore gets a full handshake if it sent what one needs (tlslite answered
        handshake_failure); without it (no key_share, supported_groups or
        signature_algorithms) nothing is possible: missing_extension, as OpenSSL sends.
        The extension is dropped from the parsed message only (the transcript holds the
        bytes as received), after the checks tlslite makes on its shape.
        """
        psk = hello.getExtension(ExtensionType.pre_shared_key)
        modes = hello.getExtension(ExtensionType.psk_key_exchange_modes)
        versions = hello.getExtension(ExtensionType.supported_versions)
        settings = self._aiotls_settings
        if psk is None or versions is None or (3, 4) not in (versions.versions or ()) \
                or settings is None or tuple(settings.maxVersion) < (3, 4):
            return  # not a TLS 1.3 handshake: the PSK plays no part
        if modes is None or not modes.modes or hello.extensions[-1] is not psk \
                or not psk.identities or len(psk.identities) != len(psk.binders or ()) \
                or any(getattr(PskKeyExchangeMode, m) in modes.modes
                       for m in settings.psk_modes):
            return  # usable, absent or malformed (tlslite answers those)
        missing = [name for name, ext in (("key_share", ExtensionType.key_share),
                                          ("supported_groups", ExtensionType.supported_groups),
                                          ("signature_algorithms",
                                           ExtensionType.signature_algorithms))
                   if hello.getExtension(ext) is None]
        if missing:
            # (RFC 8446 9.2 lets a PSK-only ClientHello omit these: incompatible, not broken)
            what = ("the client offered a PSK only without (EC)DHE (psk_ke), which this "
                    "server does not allow (no forward secrecy), and its ClientHello lacks "
                    f"{', '.join(missing)} for a full handshake instead")
            self._aiotls_error = PeerIncompatible(
                f"{what} (sent alert missing_extension to the peer)",
                cause="the client is configured for PSKs without key exchange only",
                hint="let the client also offer psk_dhe_ke, or send a key share so that a "
                "full handshake can take place (or, accepting the loss of forward secrecy, "
                "add 'psk_ke' to psk_modes on this server)",
                alert=_TLAlert.missing_extension, code="psk-mode-unsupported")
            yield from self._sendError(_TLAlert.missing_extension, what)
        hello.extensions.remove(psk)
        early_data = hello.getExtension(ExtensionType.early_data)
        if early_data is not None:
            # 0-RTT goes with the PSK; skip the client's early records as tlslite does
            # when it declines early data.
            hello.extensions.remove(early_data)
            self._recordLayer.max_early_data = HandshakeSettings().max_early_data
            self._recordLayer.early_data_ok = True

    def _aiotls_check_alpn(self, encrypted_extensions: Any) -> Generator[Any, None, None]:
        """TLS 1.3 client: the server may only select a protocol we offered (RFC 7301 3.2;
        tlslite checks this in TLS 1.2's ServerHello, not in TLS 1.3's EncryptedExtensions)."""
        problem = self._aiotls_alpn_problem(encrypted_extensions)
        if problem is not None:
            yield from self._sendError(*problem)

    def _aiotls_alpn_problem(self, encrypted_extensions: Any) -> tuple[int, str] | None:
        """(alert, message) if the server's ALPN answer breaks RFC 7301 3.2 (see
        :meth:`_aiotls_check_alpn`), else None."""
        ext = encrypted_extensions.getExtension(ExtensionType.alpn)
        if ext is None:
            return None
        offered = self._aiotls_alpn or []
        names = ext.protocol_names or []
        if not offered:
            return (_TLAlert.unsupported_extension,
                    "the server sent an ALPN protocol although the client offered none")
        if len(names) != 1:
            return (_TLAlert.illegal_parameter,
                    f"the server's ALPN extension names {len(names)} protocols instead of one")
        if names[0] not in offered:
            return (_TLAlert.illegal_parameter,
                    f"the server selected ALPN protocol {bytes(names[0])!r}, which the client "
                    f"did not offer ({', '.join(repr(bytes(p)) for p in offered)})")
        return None

    def _clientGetServerHello(self, *args: Any, **kwargs: Any) -> Generator[Any, None, None]:
        # tlslite's requireExtendedMasterSecret also fires for TLS 1.3 (which has no such
        # extension), so the client enforces RFC 7627 for TLS 1.2 itself, right after ServerHello.
        result: Any = None
        for result in super()._clientGetServerHello(*args, **kwargs):
            if result in (0, 1):
                yield result
            else:
                break
        if not isinstance(result, ServerHello):
            yield result
            return
        hello = args[2] if len(args) > 2 else kwargs.get("clientHello")
        if hello is not None:
            # RFC 8446 4.2, RFC 5246 7.4.1.4: a ServerHello carries only extensions the
            # client offered.  tlslite did not check, and crashed on some of them (a
            # pre_shared_key answering no PSK offer).
            offered = {ext.extType for ext in (hello.extensions or ())}
            if CipherSuite.TLS_EMPTY_RENEGOTIATION_INFO_SCSV in hello.cipher_suites:
                offered.add(ExtensionType.renegotiation_info)
            for ext in result.extensions or ():
                if ext.extType not in offered:
                    yield from self._sendError(
                        _TLAlert.unsupported_extension,
                        f"the ServerHello has an extension the client did not offer "
                        f"({ExtensionType.toStr(ext.extType)})")
        if tuple(self.version) > (3, 3):
            share = result.getExtension(ExtensionType.key_share)
            if share is not None and getattr(share, "server_share", True) is None:
                # an empty key_share in a ServerHello: tlslite read its group from None
                yield from self._sendError(
                    _TLAlert.decode_error, "the ServerHello's key_share extension is empty")
            yield result
            return
        # TLS 1.2
        ems = bool(result.getExtension(ExtensionType.extended_master_secret))
        if self._aiotls_require_ems and not ems:
            self._aiotls_error = _ems_missing("server", _TLAlert.handshake_failure)
            yield from self._sendError(_TLAlert.handshake_failure, self._aiotls_error.what)
        session = args[1] if len(args) > 1 else kwargs.get("session")
        if (session is not None and session.sessionID
                and result.session_id == session.sessionID
                and ems != bool(session.extendedMasterSecret)):
            # RFC 7627 5.3: a resumption keeps the session's EMS status or is aborted (tlslite
            # does not check; reachable only with require_extended_master_secret = False).
            had, now = ("with", "without") if session.extendedMasterSecret else ("without", "with")
            self._aiotls_error = PeerMisbehaved(
                f"the server resumed a TLS 1.2 session {now} the extended master secret "
                f"extension although the session was made {had} it (RFC 7627 5.3)",
                cause="a broken server, or an attacker splicing sessions (triple handshake)",
                hint="check the server's TLS implementation; a new connection without the "
                "session makes a full handshake",
                alert=_TLAlert.handshake_failure, code="extended-master-secret-mismatch")
            yield from self._sendError(_TLAlert.handshake_failure, self._aiotls_error.what)
        self._aiotls_tls12_send_limit()
        yield result

    def _serverTLS13Handshake(self, *args: Any, **kwargs: Any) -> Generator[Any, None, None]:
        # tlslite's TLS 1.3 server looks up the client's ALPN offer in `srv_alpns` even when
        # the server has none configured (None): a TypeError that broke every ALPN-offering
        # client (curl, browsers) against a server without ALPN.  Give it an empty list.
        # (handshakeServerAsync itself refuses alpn=[], hence the fix here.)
        if len(args) > 7 and args[7] is None:
            args = (*args[:7], [], *args[8:])
        elif kwargs.get("srv_alpns", 0) is None:
            kwargs["srv_alpns"] = []
        # RFC 7301 3.2: a server with ALPN protocols and a client offering none of them
        # SHALL answer no_application_protocol (tlslite does in TLS 1.2, but in TLS 1.3 it
        # went on without ALPN).  A client offering no ALPN at all gets none.
        hello = args[1] if len(args) > 1 else kwargs.get("clientHello")
        server_protocols = args[7] if len(args) > 7 else kwargs.get("srv_alpns")
        offer = hello.getExtension(ExtensionType.alpn) if hello is not None else None
        if server_protocols and offer is not None and offer.protocol_names \
                and not any(p in server_protocols for p in offer.protocol_names):
            yield from self._sendError(
                _TLAlert.no_application_protocol,
                "the client offered ALPN protocols "
                f"{', '.join(repr(bytes(p)) for p in offer.protocol_names)}, none of which this "
                f"server accepts ({', '.join(repr(bytes(p)) for p in server_protocols)})")
        yield from super()._serverTLS13Handshake(*args, **kwargs)

    def _shutdown(self, resumable: bool) -> None:
        # Unlike tlslite, keep the record layer keyed: a later alert must stay encrypted.
        self.closed = True
        if not resumable and self.session:
            self.session.resumable = False
