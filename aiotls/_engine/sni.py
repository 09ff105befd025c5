"""The server's decisions made once the ClientHello is read, before it answers: the context
for the server name (SNI callback, ``sni_contexts``) and the ALPN protocol by the server's
preference.

tlslite-ng takes its certificate, key, settings, ALPN list and whether to ask for a client
certificate as arguments of ``_handshakeServerAsyncHelper``, and reads the ClientHello
inside.  :class:`ServerNameHooks` reads the ClientHello first (through the same
``_getMsg``, so the checks, trace and key log see it once), makes those decisions, and
runs tlslite-ng's method with the arguments they give; that method -- or aiotls's lean
accept path -- reads the same hello again from ``_aiotls_replay`` (see
:mod:`.accept`), with the transcript as it was after it.

ALPN: tlslite-ng (and the lean TLS 1.3 flight) pick the first protocol of the *client's*
list that the server has.  Given a list of only the protocol the server prefers among
those offered, they pick that one: servers choose by their own order, as OpenSSL servers
do.  With ``alpn_mismatch_alert`` off and no protocol in common, they are given no list,
so the handshake goes on without ALPN instead of the RFC 7301 alert.

Only a server whose context needs one of these reads the hello first (a virtual host
setting, or an ALPN list of two or more protocols, or the alert turned off); others go
straight to tlslite-ng's method.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

from tlslite.constants import AlertDescription as _TLAlert
from tlslite.constants import ContentType, ExtensionType, HandshakeType

from ..errors import TLSError
from .common import _CERT_OPTIONAL, _CERT_REQUIRED, _Hooks
from .rebind import _fast_is_valid_hostname
from .settings import _prepare
from .verification import _Policy

#: The handshake arguments a context gives: (cert_chain, private_key, reqCert, settings,
#: alpn) in the order of tlslite-ng's ``_handshakeServerAsyncHelper``.
_Args = tuple[Any, Any, bool, Any, Any]


def _server_name(hello: Any) -> tuple[bool, str | None]:
    """(usable, the host name the hello carries or None); not usable when the name is one
    tlslite-ng refuses (it does so, with its alert, after the hello is read again)."""
    ext = hello.getExtension(ExtensionType.server_name)
    names = getattr(ext, "hostNames", None) if ext is not None else None
    if not names:
        return True, None  # (no extension, or an IP literal aiotls ignored)
    try:
        name = bytes(names[0]).decode("ascii")
    except UnicodeDecodeError:
        return False, None
    return (len(names) == 1 and _fast_is_valid_hostname(name)), name


def _narrowed_alpn(alpn: Any, hello: Any, alert: bool) -> Any:
    """The ALPN list to give tlslite-ng: the server's favourite among those the client
    offered, alone; None to go on without ALPN; or ``alpn`` itself (nothing offered, no
    list, or no protocol in common and the alert wanted: tlslite-ng and the fixes refuse)."""
    ext = hello.getExtension(ExtensionType.alpn)
    offered = getattr(ext, "protocol_names", None) if ext is not None else None
    if not alpn or not offered:
        return alpn
    for protocol in alpn:
        if protocol in offered:
            return [protocol]
    return alpn if alert else None


class ServerNameHooks(_Hooks):  # type: ignore[misc]
    """tlslite-ng's server handshake, its arguments decided after the ClientHello."""

    #: Set per connection by :func:`install`: the server name -> new handshake arguments
    #: (or None to keep them); the context's ``alpn_mismatch_alert``.
    _aiotls_choose: Callable[[str | None], _Args | None] | None = None
    _aiotls_alpn_alert = True
    _aiotls_error: TLSError | None
    _aiotls_replay: tuple[Any, Any] | None

    def _handshakeServerAsyncHelper(self, verifierDB: Any, cert_chain: Any, privateKey: Any,
                                    reqCert: Any, sessionCache: Any, settings: Any,
                                    reqCAs: Any, tacks: Any, activationFlags: Any,
                                    nextProtos: Any, anon: Any, alpn: Any,
                                    sni: Any) -> Generator[Any, None, None]:
        args = (verifierDB, cert_chain, privateKey, reqCert, sessionCache, settings, reqCAs,
                tacks, activationFlags, nextProtos, anon, alpn, sni)
        if self._aiotls_choose is None \
                and (not alpn or (len(alpn) < 2 and self._aiotls_alpn_alert)):
            # (nothing to decide: tlslite-ng's generator itself, no frame in between)
            helper: Generator[Any, None, None] = super()._handshakeServerAsyncHelper(*args)
            return helper
        return self._aiotls_decide_after_hello(*args)

    def _aiotls_decide_after_hello(self, verifierDB: Any, cert_chain: Any, privateKey: Any,
                                   reqCert: Any, sessionCache: Any, settings: Any,
                                   reqCAs: Any, tacks: Any, activationFlags: Any,
                                   nextProtos: Any, anon: Any, alpn: Any,
                                   sni: Any) -> Generator[Any, None, None]:
        choose = self._aiotls_choose
        # the ClientHello, read as tlslite-ng's method starts reading it
        self._handshakeStart(client=False)
        self.version = min(settings.maxVersion, (3, 3))  # (the version of an early alert)
        hello: Any = None
        for hello in self._getMsg(ContentType.handshake, HandshakeType.client_hello):
            if hello in (0, 1):
                yield hello
            else:
                break
        if not self._defragmenter.is_empty():
            # (a client sends nothing after its hello before the server answers; tlslite-ng's
            # method would start again from an empty buffer)
            yield from self._sendError(_TLAlert.unexpected_message,
                                       "data followed the ClientHello in its record")
        usable, name = _server_name(hello)
        if choose is not None and usable:
            try:
                switched = choose(name)
            except TLSError as err:
                self._aiotls_error = err
                alert = err.alert_number if err.alert_number is not None \
                    else _TLAlert.internal_error
                yield from self._sendError(alert, err.what)
                return
            if switched is not None:
                cert_chain, privateKey, reqCert, settings, alpn = switched
        alpn = _narrowed_alpn(alpn, hello, self._aiotls_alpn_alert)
        self._aiotls_replay = (hello, self._handshake_hash)
        yield from super()._handshakeServerAsyncHelper(
            verifierDB, cert_chain, privateKey, reqCert, sessionCache, settings, reqCAs,
            tacks, activationFlags, nextProtos, anon, alpn, sni)


def install(engine: Any, ctx: Any, chooser: Callable[[str | None], Any] | None) -> None:
    """Server: make ``engine``'s handshake run ``chooser`` (the server name -> a
    :class:`~aiotls.TLSContext` to switch to, or None) once the ClientHello is read, and
    follow ``ctx``'s ALPN rule.  Client: its context's certificate chooser, if any (see
    :mod:`.client_cert`)."""
    tl = engine._tl
    if not engine.server_side:
        if ctx.client_certificate_chooser is not None:
            tl._aiotls_client_chooser = (ctx.client_certificate_chooser,
                                         engine.server_hostname, ctx._cert_identities)
        return
    tl._aiotls_alpn_alert = ctx.alpn_mismatch_alert
    if chooser is None:
        return

    def choose(name: str | None) -> _Args | None:
        new = chooser(name)
        return None if new is None else switch(engine, new)

    tl._aiotls_choose = choose


def switch(engine: Any, ctx: Any) -> _Args:
    """Make ``engine`` (a server whose ClientHello was read) use ``ctx`` from now on: its
    verification policy, ticket keys and rules; returns the handshake arguments it gives."""
    prepared = _prepare(ctx)
    tl = engine._tl
    verify_mode = int(ctx.verify_mode)
    tl._aiotls_policy = None if verify_mode == 0 else _Policy(
        trust=ctx._trust, peer_role="client", hostname=None,
        mode=_CERT_REQUIRED if verify_mode == _CERT_REQUIRED else _CERT_OPTIONAL,
        now=tl._aiotls_now)
    engine.verified = tl._aiotls_policy is not None
    tl._aiotls_defer_client_cert = ctx.post_handshake_auth
    tl._aiotls_require_ems = ctx.require_extended_master_secret
    tl._aiotls_tickets = ctx._ticket_sealer() if ctx.num_tickets else None
    tl._aiotls_alpn_alert = ctx.alpn_mismatch_alert
    engine._settings = tl._aiotls_settings = prepared.server_settings
    return (prepared.cert_chain, prepared.private_key,
            verify_mode != 0 and not ctx.post_handshake_auth, prepared.server_settings,
            prepared.alpn)
