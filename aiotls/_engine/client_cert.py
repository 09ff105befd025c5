"""The client's certificate chosen when the server asks for one
(``TLSContext.client_certificate_chooser``).

tlslite-ng takes the client's chain and key when the handshake starts and keeps them in
local variables of the methods that answer a CertificateRequest.  With a chooser, the
client starts with two stand-ins, a chain with no certificate and a key that is not there
(both false, so no post-handshake authentication is offered and an unrequested answer is
an empty Certificate); when the CertificateRequest arrives -- before tlslite-ng reads its
own variables -- the chooser is called and the stand-ins take the chosen chain and key.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from typing import Any

from tlslite.constants import SignatureScheme
from tlslite.x509certchain import X509CertChain

from .._identity import CertificateRequest, Identity
from ..errors import InternalError, TLSError
from .common import _Hooks
from .settings import _tlslite_identity
from .verification import _ca_names

_logger = logging.getLogger("aiotls.sni")


class _ChosenChain(X509CertChain):  # type: ignore[misc]
    """The client's chain: empty (false) until the chooser picked one."""

    def __init__(self) -> None:
        super().__init__([])

    def __bool__(self) -> bool:
        return bool(self.x509List)


class _ChosenKey:
    """The client's private key: absent (false) until the chooser picked one; then
    tlslite-ng's key object, through this one."""

    __slots__ = ("target",)

    def __init__(self) -> None:
        self.target: Any = None

    def __bool__(self) -> bool:
        return self.target is not None

    def __len__(self) -> int:
        return len(self.target) if self.target is not None else 0

    def __getattr__(self, name: str) -> Any:
        target = object.__getattribute__(self, "target")
        if target is None:
            raise AttributeError(name)
        return getattr(target, name)


def _scheme_name(scheme: Any) -> str:
    name = SignatureScheme.toRepr(tuple(scheme))
    return str(name) if name else f"0x{scheme[0]:02x}{scheme[1]:02x}"


class ClientCertificateHooks(_Hooks):  # type: ignore[misc]
    """A client's certificate chosen at the CertificateRequest (see the module)."""

    #: (chooser, server_hostname, the context's identities) when the context has a chooser
    _aiotls_client_chooser: tuple[Any, str | None, tuple[Identity, ...]] | None = None
    _aiotls_chosen: tuple[_ChosenChain, _ChosenKey] | None = None
    _aiotls_credentials: tuple[Any, Any] | None
    _aiotls_error: TLSError | None

    def _handshakeClientAsyncHelper(self, srpParams: Any, certParams: Any, anonParams: Any,
                                    session: Any, settings: Any, serverName: Any,
                                    nextProtos: Any, reqTack: Any,
                                    alpn: Any) -> Generator[Any, None, None]:
        if self._aiotls_client_chooser is not None:
            self._aiotls_chosen = (_ChosenChain(), _ChosenKey())
            certParams = self._aiotls_chosen
        helper: Generator[Any, None, None] = super()._handshakeClientAsyncHelper(
            srpParams, certParams, anonParams, session, settings, serverName, nextProtos,
            reqTack, alpn)
        return helper

    def _aiotls_note_certificate_request(self, request: Any) -> Generator[Any, None, None]:
        chosen, chooser = self._aiotls_chosen, self._aiotls_client_chooser
        if chosen is not None and chooser is not None and not chosen[1]:
            choose, hostname, identities = chooser
            tls13 = tuple(self.version) > (3, 3)
            asked = CertificateRequest(
                ca_names=_ca_names(request, tls13),
                signature_algorithms=tuple(_scheme_name(s) for s in
                                           request.supported_signature_algs or ()),
                server_hostname=hostname, version="TLSv1.3" if tls13 else "TLSv1.2",
                identities=identities)
            try:
                identity = choose(asked)
                if identity is not None and not isinstance(identity, Identity):
                    raise TypeError(f"it returned {identity!r}, not an aiotls.Identity or None")
                if identity is not None:
                    chain, key = _tlslite_identity(identity.chain, identity.key)
                    chosen[0].x509List = chain.x509List
                    chosen[1].target = key
                    self._aiotls_credentials = (key, chain)
            except Exception as exc:
                _logger.exception("client_certificate_chooser %r failed", choose)
                error = self._aiotls_error = InternalError(
                    f"the client_certificate_chooser failed: {type(exc).__name__}: {exc} "
                    "(sent alert internal_error)",
                    cause="a bug in the client's certificate chooser",
                    hint="fix the chooser; the traceback is logged on 'aiotls.sni'",
                    alert=80, code="client-certificate-chooser-failed")
                error.__cause__ = exc
                yield from self._sendError(80, error.what)
        yield from super()._aiotls_note_certificate_request(request)
